/* Unit tests: dependency graph ordering, cycle reports, ancestors, DOT. */
#include "harness.h"

#include <stdlib.h>

#include "iac/core/err.h"
#include "iac/graph/graph.h"
#include "iac/graph/walk.h"

static int pos_of(const int *order, size_t n, int id)
{
	for (size_t i = 0; i < n; i++)
		if (order[i] == id)
			return (int)i;
	return -1;
}

static void test_order_respects_edges(void)
{
	iac_graph *g = iac_graph_new();
	int a = iac_graph_add(g, "a", NULL), b = iac_graph_add(g, "b", NULL);
	int c = iac_graph_add(g, "c", NULL), d = iac_graph_add(g, "d", NULL);
	iac_graph_edge(g, c, b);   /* c before b */
	iac_graph_edge(g, b, a);
	iac_graph_edge(g, d, a);
	int *order = NULL;
	CHECK_INT(iac_graph_toposort(&order, g), 0);
	CHECK(pos_of(order, 4, c) < pos_of(order, 4, b));
	CHECK(pos_of(order, 4, b) < pos_of(order, 4, a));
	CHECK(pos_of(order, 4, d) < pos_of(order, 4, a));
	free(order);
	iac_graph_free(g);
}

static void test_cycle_lists_members(void)
{
	iac_graph *g = iac_graph_new();
	int a = iac_graph_add(g, "res.a", NULL), b = iac_graph_add(g, "res.b", NULL);
	int c = iac_graph_add(g, "res.c", NULL);
	iac_graph_add(g, "res.free", NULL);
	iac_graph_edge(g, a, b);
	iac_graph_edge(g, b, c);
	iac_graph_edge(g, c, a);
	int *order = NULL;
	CHECK_INT(iac_graph_toposort(&order, g), IAC_ERR);
	CHECK(order == NULL);
	const char *msg = iac_err_last();
	CHECK_CONTAINS(msg, "dependency cycle");
	CHECK_CONTAINS(msg, "res.a");
	CHECK_CONTAINS(msg, "res.b");
	CHECK_CONTAINS(msg, "res.c");
	CHECK(strstr(msg, "res.free") == NULL);
	iac_graph_free(g);
}

static void test_duplicate_and_self_edges_ignored(void)
{
	iac_graph *g = iac_graph_new();
	int a = iac_graph_add(g, "a", NULL), b = iac_graph_add(g, "b", NULL);
	iac_graph_edge(g, a, b);
	iac_graph_edge(g, a, b);
	iac_graph_edge(g, a, a);
	size_t n;
	iac_graph_succ(g, a, &n);
	CHECK_INT(n, 1);
	int *order = NULL;
	CHECK_INT(iac_graph_toposort(&order, g), 0);
	free(order);
	iac_graph_free(g);
}

static void test_ancestors(void)
{
	iac_graph *g = iac_graph_new();
	int a = iac_graph_add(g, "a", NULL), b = iac_graph_add(g, "b", NULL);
	int c = iac_graph_add(g, "c", NULL), d = iac_graph_add(g, "d", NULL);
	iac_graph_edge(g, a, b);
	iac_graph_edge(g, b, c);
	unsigned char keep[4] = { 0 };
	keep[c] = 1;
	iac_graph_mark_ancestors(g, keep);
	CHECK(keep[a] && keep[b] && keep[c] && !keep[d]);
	unsigned char down[4] = { 0 };
	down[a] = 1;
	iac_graph_mark_descendants(g, down);
	CHECK(down[a] && down[b] && down[c] && !down[d]);
	iac_graph_free(g);
}

static void test_dot(void)
{
	iac_graph *g = iac_graph_new();
	int a = iac_graph_add(g, "local.file.a", NULL), b = iac_graph_add(g, "local.exec.b", NULL);
	iac_graph_edge(g, a, b);
	iac_buf out = IAC_BUF_INIT;
	iac_graph_dot(&out, g);
	CHECK_CONTAINS(iac_buf_cstr(&out), "digraph iac {");
	CHECK_CONTAINS(iac_buf_cstr(&out), "\"local.exec.b\" -> \"local.file.a\"");
	iac_buf_free(&out);
	iac_graph_free(g);
}

static void test_large_linear(void)
{
	iac_graph *g = iac_graph_new();
	char name[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		iac_graph_add(g, name, NULL);
		if (i)
			iac_graph_edge(g, i - 1, i);
	}
	int *order = NULL;
	CHECK_INT(iac_graph_toposort(&order, g), 0);
	CHECK_INT(order[19999], 19999);
	CHECK_INT(iac_graph_find(g, "n12345"), 12345);
	free(order);
	iac_graph_free(g);
}

/* node 1 halts the walk: node 0 finished, nodes 2..9 (independent of 1)
 * never start */
static int halt_at_1(int node, void *ud)
{
	(void)ud;
	return node == 1 ? IAC_WALK_HALT : 0;
}

static void test_walk_halt(void)
{
	iac_graph *g = iac_graph_new();
	char name[16];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		iac_graph_add(g, name, NULL);
	}
	iac_graph_edge(g, 0, 1);   /* 0 first, then 1; the rest wait behind 1 in the queue */
	for (int i = 2; i < 10; i++)
		iac_graph_edge(g, 0, i);
	unsigned char status[10];
	CHECK_INT(iac_walk(status, g, 1, halt_at_1, NULL, NULL), 1);
	CHECK_INT(status[0], IAC_WALK_OK);
	CHECK_INT(status[1], IAC_WALK_FAILED);
	for (int i = 2; i < 10; i++)
		CHECK_INT(status[i], IAC_WALK_NOT_STARTED);
	iac_graph_free(g);
}

static const iac_test tests[] = {
	TEST(test_order_respects_edges), TEST(test_cycle_lists_members),
	TEST(test_duplicate_and_self_edges_ignored), TEST(test_ancestors), TEST(test_dot),
	TEST(test_large_linear), TEST(test_walk_halt), { 0 },
};

int main(void) { return iac_test_run(tests); }

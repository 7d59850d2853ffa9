/* graph: DAG with topological sort, cycle reports and DOT (see graph.h). */
#include "iac/graph/graph.h"

#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/map.h"
#include "iac/core/util.h"

typedef struct {
	int *v;
	size_t n, cap;
} intvec;

typedef struct {
	char *name;
	void *data;
	intvec succ, pred;
} node;

struct iac_graph {
	node *nodes;
	size_t n, cap;
	iac_map index;   /* name -> id + 1 */
};

static void vec_push(intvec *v, int x)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 4;
		v->v = iac_xrealloc(v->v, v->cap * sizeof(int));
	}
	v->v[v->n++] = x;
}

static int vec_has(const intvec *v, int x)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i] == x)
			return 1;
	return 0;
}

iac_graph *iac_graph_new(void)
{
	return iac_xcalloc(1, sizeof(iac_graph));
}

void iac_graph_free(iac_graph *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++) {
		free(g->nodes[i].name);
		free(g->nodes[i].succ.v);
		free(g->nodes[i].pred.v);
	}
	free(g->nodes);
	iac_map_free(&g->index);
	free(g);
}

int iac_graph_add(iac_graph *g, const char *name, void *data)
{
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->nodes = iac_xrealloc(g->nodes, g->cap * sizeof(node));
	}
	int id = (int)g->n++;
	memset(&g->nodes[id], 0, sizeof(node));
	g->nodes[id].name = iac_xstrdup(name);
	g->nodes[id].data = data;
	iac_map_put(&g->index, name, (void *)(intptr_t)(id + 1));
	return id;
}

int iac_graph_find(const iac_graph *g, const char *name)
{
	intptr_t v = (intptr_t)iac_map_get(&g->index, name);
	return v ? (int)v - 1 : -1;
}

void iac_graph_edge(iac_graph *g, int from, int to)
{
	if (from == to || from < 0 || to < 0)
		return;
	/* Degrees are small (a resource's dependencies); a linear check is
	 * cheaper than a set per node. */
	if (vec_has(&g->nodes[from].succ, to))
		return;
	vec_push(&g->nodes[from].succ, to);
	vec_push(&g->nodes[to].pred, from);
}

size_t iac_graph_count(const iac_graph *g)
{
	return g->n;
}

const char *iac_graph_name(const iac_graph *g, int id)
{
	return g->nodes[id].name;
}

void *iac_graph_data(const iac_graph *g, int id)
{
	return g->nodes[id].data;
}

const int *iac_graph_succ(const iac_graph *g, int id, size_t *n)
{
	*n = g->nodes[id].succ.n;
	return g->nodes[id].succ.v;
}

const int *iac_graph_pred(const iac_graph *g, int id, size_t *n)
{
	*n = g->nodes[id].pred.n;
	return g->nodes[id].pred.v;
}

/* Among the nodes left with in-degree > 0 after Kahn's algorithm, walk
 * predecessors until a node repeats: that loop is a cycle to report. */
static int report_cycle(const iac_graph *g, const int *indeg)
{
	int start = -1;
	for (size_t i = 0; i < g->n && start < 0; i++)
		if (indeg[i] > 0)
			start = (int)i;
	int *seen = iac_xcalloc(g->n, sizeof(int));
	int *path = iac_xmalloc(g->n * sizeof(int));
	size_t plen = 0;
	int cur = start;
	while (!seen[cur]) {
		seen[cur] = (int)plen + 1;
		path[plen++] = cur;
		const node *nd = &g->nodes[cur];
		int next = -1;
		for (size_t j = 0; j < nd->pred.n; j++)
			if (indeg[nd->pred.v[j]] > 0) {
				next = nd->pred.v[j];
				break;
			}
		cur = next;
	}
	/* path[seen[cur]-1 .. plen-1] is the loop, in predecessor order */
	iac_buf b = IAC_BUF_INIT;
	iac_buf_puts(&b, "dependency cycle: ");
	for (size_t k = plen; k-- > (size_t)(seen[cur] - 1);)
		iac_buf_printf(&b, "%s -> ", g->nodes[path[k]].name);
	iac_buf_puts(&b, g->nodes[path[plen - 1]].name);
	iac_err_set("%s", iac_buf_cstr(&b));
	iac_buf_free(&b);
	free(seen);
	free(path);
	return IAC_ERR;
}

int iac_graph_toposort(int **out, const iac_graph *g)
{
	int *indeg = iac_xcalloc(g->n ? g->n : 1, sizeof(int));
	int *order = iac_xmalloc((g->n ? g->n : 1) * sizeof(int));
	size_t head = 0, tail = 0;

	for (size_t i = 0; i < g->n; i++)
		indeg[i] = (int)g->nodes[i].pred.n;
	for (size_t i = 0; i < g->n; i++)
		if (!indeg[i])
			order[tail++] = (int)i;
	while (head < tail) {
		const node *nd = &g->nodes[order[head++]];
		for (size_t j = 0; j < nd->succ.n; j++)
			if (--indeg[nd->succ.v[j]] == 0)
				order[tail++] = nd->succ.v[j];
	}
	if (tail != g->n) {
		report_cycle(g, indeg);
		free(indeg);
		free(order);
		*out = NULL;
		return IAC_ERR;
	}
	free(indeg);
	*out = order;
	return 0;
}

static void mark(const iac_graph *g, unsigned char *keep, int forward)
{
	int *stack = iac_xmalloc((g->n ? g->n : 1) * sizeof(int));
	size_t sp = 0;
	for (size_t i = 0; i < g->n; i++)
		if (keep[i])
			stack[sp++] = (int)i;
	while (sp) {
		const node *nd = &g->nodes[stack[--sp]];
		const intvec *next = forward ? &nd->succ : &nd->pred;
		for (size_t j = 0; j < next->n; j++)
			if (!keep[next->v[j]]) {
				keep[next->v[j]] = 1;
				stack[sp++] = next->v[j];
			}
	}
	free(stack);
}

void iac_graph_mark_ancestors(const iac_graph *g, unsigned char *keep)
{
	mark(g, keep, 0);
}

void iac_graph_mark_descendants(const iac_graph *g, unsigned char *keep)
{
	mark(g, keep, 1);
}

static void dot_quote(iac_buf *out, const char *s)
{
	iac_buf_putc(out, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			iac_buf_putc(out, '\\');
		iac_buf_putc(out, *s);
	}
	iac_buf_putc(out, '"');
}

void iac_graph_dot(iac_buf *out, const iac_graph *g)
{
	iac_buf_puts(out, "digraph iac {\n  rankdir = \"RL\";\n  node [shape = rect];\n");
	for (size_t i = 0; i < g->n; i++) {
		iac_buf_puts(out, "  ");
		dot_quote(out, g->nodes[i].name);
		iac_buf_puts(out, ";\n");
	}
	/* Draw "b depends on a" as b -> a, the way terraform graph does. */
	for (size_t i = 0; i < g->n; i++)
		for (size_t j = 0; j < g->nodes[i].succ.n; j++) {
			iac_buf_puts(out, "  ");
			dot_quote(out, g->nodes[g->nodes[i].succ.v[j]].name);
			iac_buf_puts(out, " -> ");
			dot_quote(out, g->nodes[i].name);
			iac_buf_puts(out, ";\n");
		}
	iac_buf_puts(out, "}\n");
}

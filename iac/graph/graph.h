/* graph: a directed acyclic graph of named nodes; an edge a -> b means "a
 * must finish before b starts". Used for resource ordering (plan/apply), for
 * cycle reports naming every member, and for `iac graph` (DOT).
 *
 * Node names are copied; node data is borrowed. Node ids are dense ints in
 * insertion order, so callers can keep parallel arrays.
 */
#ifndef IAC_GRAPH_GRAPH_H
#define IAC_GRAPH_GRAPH_H

#include <stddef.h>

#include "iac/core/buf.h"

typedef struct iac_graph iac_graph;

iac_graph *iac_graph_new(void);
void iac_graph_free(iac_graph *g);

/* Add a node; returns its id. Names must be unique (not checked). */
int iac_graph_add(iac_graph *g, const char *name, void *data);
/* Id of the node with this name, or -1. */
int iac_graph_find(const iac_graph *g, const char *name);
/* Add edge from -> to (duplicates and self-edges are ignored). */
void iac_graph_edge(iac_graph *g, int from, int to);

size_t iac_graph_count(const iac_graph *g);
const char *iac_graph_name(const iac_graph *g, int id);
void *iac_graph_data(const iac_graph *g, int id);
/* Successors (nodes that wait for id) and predecessors of a node. */
const int *iac_graph_succ(const iac_graph *g, int id, size_t *n);
const int *iac_graph_pred(const iac_graph *g, int id, size_t *n);

/* A topological order into *out (caller frees, count = iac_graph_count).
 * On a cycle: -1 with "dependency cycle: a -> b -> c -> a". */
int iac_graph_toposort(int **out, const iac_graph *g);

/* Mark in `keep` (array of iac_graph_count bytes) every node reachable
 * backwards (its dependencies, transitively) from nodes already marked. */
void iac_graph_mark_ancestors(const iac_graph *g, unsigned char *keep);
/* Same, forwards (everything that depends on marked nodes). */
void iac_graph_mark_descendants(const iac_graph *g, unsigned char *keep);

/* DOT text of the graph ("digraph iac { ... }"). */
void iac_graph_dot(iac_buf *out, const iac_graph *g);

#endif

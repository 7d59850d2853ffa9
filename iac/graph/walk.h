/* walk: run a function over the nodes of a graph, in dependency order, on
 * a pool of worker threads.
 *
 * A node starts once all its predecessors succeeded; a node whose
 * predecessor failed or was skipped is skipped; independent branches go on.
 * When *stop becomes non-zero, or a callback returns IAC_WALK_HALT, no new
 * node starts, running ones finish.
 * The callback runs on worker threads and must touch only its node's data
 * and thread-safe shared structures.
 */
#ifndef IAC_GRAPH_WALK_H
#define IAC_GRAPH_WALK_H

#include "iac/graph/graph.h"

enum iac_walk_status {
	IAC_WALK_PENDING = 0,
	IAC_WALK_OK,
	IAC_WALK_FAILED,
	IAC_WALK_SKIPPED,     /* a dependency failed */
	IAC_WALK_NOT_STARTED, /* stopped (SIGINT) before it could start */
};

/* Return 0 for success, non-zero for failure; IAC_WALK_HALT: a failure after
 * which nothing more may start (what the node needed for every other is gone:
 * the state can no longer be written). */
#define IAC_WALK_HALT 2
typedef int (*iac_walk_fn)(int node, void *ud);

/* status (array of iac_graph_count entries) receives each node's outcome.
 * Returns 0 when every node succeeded, 1 otherwise. */
int iac_walk(unsigned char *status, const iac_graph *g, int parallelism, iac_walk_fn fn,
	     void *ud, const volatile int *stop);

#endif

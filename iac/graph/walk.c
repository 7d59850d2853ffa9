/* walk: parallel, dependency-ordered graph walk (see walk.h).
 *
 * One mutex guards the ready queue and the counters; workers block on a
 * condition variable. The main thread only waits, so a walk with
 * parallelism N runs at most N callbacks at once.
 */
#include "iac/graph/walk.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "iac/core/util.h"

typedef struct {
	const iac_graph *g;
	iac_walk_fn fn;
	void *ud;
	const volatile int *stop;
	int halted;          /* a callback returned IAC_WALK_HALT */
	unsigned char *status;
	int *waiting;        /* predecessors not yet finished */
	int *bad_pred;       /* a predecessor failed or was skipped */
	int *queue;          /* ready nodes */
	size_t qhead, qtail;
	size_t done;         /* nodes with a final status */
	size_t running;
	pthread_mutex_t lock;
	pthread_cond_t cv;
} walker;

/* Caller holds the lock. No new node may start. */
static int stopping(const walker *w)
{
	return w->halted || (w->stop && *w->stop);
}

/* Caller holds the lock. Mark node finished and release its successors. */
static void finish(walker *w, int node, unsigned char st)
{
	size_t n;
	const int *succ = iac_graph_succ(w->g, node, &n);
	w->status[node] = st;
	w->done++;
	for (size_t i = 0; i < n; i++) {
		int s = succ[i];
		if (st != IAC_WALK_OK)
			w->bad_pred[s] = 1;
		if (--w->waiting[s] == 0) {
			if (w->bad_pred[s])
				finish(w, s, IAC_WALK_SKIPPED);
			else
				w->queue[w->qtail++] = s;
		}
	}
}

static void *worker(void *arg)
{
	walker *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		size_t total = iac_graph_count(w->g);
		while (w->qhead == w->qtail && w->done < total && !(stopping(w) && w->running == 0))
			pthread_cond_wait(&w->cv, &w->lock);
		if (w->done >= total || stopping(w)) {
			pthread_cond_broadcast(&w->cv);
			break;
		}
		int node = w->queue[w->qhead++];
		w->running++;
		pthread_mutex_unlock(&w->lock);
		int rc = w->fn(node, w->ud);
		pthread_mutex_lock(&w->lock);
		w->running--;
		if (rc == IAC_WALK_HALT)
			w->halted = 1;
		size_t before = w->qtail;
		finish(w, node, rc == 0 ? IAC_WALK_OK : IAC_WALK_FAILED);
		/* Wake one worker per node made ready (this one takes one
		 * itself); everyone only at the end, or when stopping. A
		 * broadcast per completion costs more than the work for
		 * thousands of small operations. */
		if (w->done >= iac_graph_count(w->g) || stopping(w))
			pthread_cond_broadcast(&w->cv);
		else
			for (size_t k = before + 1; k < w->qtail; k++)
				pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int iac_walk(unsigned char *status, const iac_graph *g, int parallelism, iac_walk_fn fn,
	     void *ud, const volatile int *stop)
{
	size_t total = iac_graph_count(g);
	walker w = { .g = g, .fn = fn, .ud = ud, .stop = stop, .status = status };
	int failed = 0;

	if (parallelism < 1)
		parallelism = 1;
	w.waiting = iac_xcalloc(total + 1, sizeof(int));
	w.bad_pred = iac_xcalloc(total + 1, sizeof(int));
	w.queue = iac_xcalloc(total + 1, sizeof(int));
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cv, NULL);
	for (size_t i = 0; i < total; i++) {
		size_t n;
		iac_graph_pred(g, (int)i, &n);
		w.waiting[i] = (int)n;
		status[i] = IAC_WALK_PENDING;
	}
	for (size_t i = 0; i < total; i++)
		if (!w.waiting[i])
			w.queue[w.qtail++] = (int)i;

	if ((size_t)parallelism > total)
		parallelism = total ? (int)total : 1;
	pthread_t *th = iac_xcalloc((size_t)parallelism, sizeof(pthread_t));
	for (int i = 0; i < parallelism; i++)
		pthread_create(&th[i], NULL, worker, &w);
	/* Wake workers periodically so a stop request is noticed even while
	 * nothing finishes. */
	pthread_mutex_lock(&w.lock);
	while (w.done < total && !(stopping(&w) && w.running == 0)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&w.cv, &w.lock, &ts);
	}
	pthread_cond_broadcast(&w.cv);
	pthread_mutex_unlock(&w.lock);
	for (int i = 0; i < parallelism; i++)
		pthread_join(th[i], NULL);
	free(th);

	for (size_t i = 0; i < total; i++) {
		if (status[i] == IAC_WALK_PENDING)
			status[i] = IAC_WALK_NOT_STARTED;
		if (status[i] != IAC_WALK_OK)
			failed = 1;
	}
	free(w.waiting);
	free(w.bad_pred);
	free(w.queue);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cv);
	return failed;
}

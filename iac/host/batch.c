/* batch: group commit of remote commands (see iac_hosts_batch in host.h).
 *
 * Several threads refresh resources at once. The first thread to ask
 * something of a host runs a command for its own request; requests made
 * while that command runs queue up, and the next thread to go runs one
 * command for all of them. One round trip and one remote shell per batch
 * instead of one per request, and no thread ever waits on a timer for a
 * batch to fill.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/util.h"
#include "iac/host/host_int.h"

#define BATCH_MAX 256   /* items per command: keeps the command short */

typedef struct batch_req {
	void *item;
	int done;
	struct batch_req *next;
} batch_req;

typedef struct {
	pthread_mutex_t lk;
	pthread_cond_t cv;
	batch_req *head, *tail;
	int busy;
} batcher;

static batcher *batcher_for(iac_hosts *h, iac_ssh_conn *c, const char *kind)
{
	batcher *b;
	char key[96];
	snprintf(key, sizeof(key), "%p/%s", (void *)c, kind);
	pthread_mutex_lock(&h->batch_lk);
	b = iac_map_get(&h->batches, key);
	if (!b) {
		b = iac_xcalloc(1, sizeof(*b));
		pthread_mutex_init(&b->lk, NULL);
		pthread_cond_init(&b->cv, NULL);
		iac_map_put(&h->batches, key, b);
	}
	pthread_mutex_unlock(&h->batch_lk);
	return b;
}

void iac_hosts_batch_free(iac_hosts *h)
{
	for (size_t i = 0; i < h->batches.cap; i++) {
		batcher *b = h->batches.slots[i].key ? h->batches.slots[i].value : NULL;
		if (!b)
			continue;
		pthread_mutex_destroy(&b->lk);
		pthread_cond_destroy(&b->cv);
		free(b);
	}
	iac_map_free(&h->batches);
}

void iac_hosts_batch(iac_hosts *h, iac_ssh_conn *c, const char *kind, iac_host_batch_fn run, void *ud,
		     void *item)
{
	batcher *b = batcher_for(h, c, kind);
	batch_req me = { .item = item };
	batch_req *take[BATCH_MAX];
	void *items[BATCH_MAX];

	pthread_mutex_lock(&b->lk);
	if (b->tail)
		b->tail->next = &me;
	else
		b->head = &me;
	b->tail = &me;
	while (!me.done) {
		if (b->busy) {
			pthread_cond_wait(&b->cv, &b->lk);
			continue;
		}
		/* lead the next batch: the oldest requests, so ours goes in
		 * this one or the next */
		size_t n = 0;
		while (b->head && n < BATCH_MAX) {
			take[n] = b->head;
			items[n++] = b->head->item;
			b->head = b->head->next;
		}
		if (!b->head)
			b->tail = NULL;
		b->busy = 1;
		pthread_mutex_unlock(&b->lk);
		run(items, n, ud);
		pthread_mutex_lock(&b->lk);
		for (size_t i = 0; i < n; i++)
			take[i]->done = 1;
		b->busy = 0;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->lk);
}

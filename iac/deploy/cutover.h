/* cutover: move a backend's traffic from one colour's servers to the
 * other's through the HAProxy runtime API, without failing a request.
 *
 * Switch (iac_cutover_switch), the order matters:
 *   0. (when verify_urls are given) a direct GET of each `to` instance's
 *      health URL, retried every 50 ms for at most 500 ms (or up_timeout if
 *      shorter): HAProxy does not check servers in maint, and counts a
 *      server leaving maint as up before its first check, which comes up to
 *      one `inter` later. The deployment's health gate has usually just done
 *      this; a rollback to a standby that sat in maint must.
 *   1. `to` servers -> ready; wait until HAProxy reports each up (with
 *      wait_check, until its own check passed too). A server that is not up
 *      in time is put back in maint and the switch fails: traffic never
 *      left `from`.
 *   2. `from` servers -> drain: from this moment every new request goes to
 *      `to` (result.switch_ms); requests in flight on `from` finish.
 *   3. wait until the `from` servers' sessions (scur + qcur) reach zero,
 *      watching that `to` stays up (if all go down, `from` is made ready
 *      again and the switch fails), then `from` -> maint.
 * Rollback (iac_cutover_rollback) is the same move with an emergency budget
 * (the way Argo Rollouts' abort flips the active service back to the stable
 * pods that scaleDownDelay kept running, rather than Kamal's redeploy): the
 * standby colour is still running, so it is ready + drain in two API round
 * trips; the drain wait is 200 ms at most (and never beyond a 1 s budget),
 * and servers still busy then stay in drain (they get no new requests)
 * instead of delaying the rollback. iac_cutover_finish() puts them in maint
 * later. (HAProxy 2.6 lets requests in flight on a server put in maint
 * finish, as tests/haproxy/test_rollback.sh shows; drain-then-maint keeps
 * the order a graceful switch needs (no new requests, then none at all)
 * and works with `shutdown-sessions` too.)
 *
 * Ownership: the handle and the name arrays are borrowed for the call.
 */
#ifndef IAC_DEPLOY_CUTOVER_H
#define IAC_DEPLOY_CUTOVER_H

#include <stddef.h>

#include <jansson.h>

#include "iac/deploy/haproxy_api.h"

typedef struct {
	const char *backend;
	const char *const *to;      /* servers that take the traffic (the new colour) */
	size_t n_to;
	const char *const *from;    /* servers that give it up (the old colour) */
	size_t n_from;
	double up_timeout_ms;       /* `to` must be up within; <= 0: 3000 (rollback 300) */
	double drain_timeout_ms;    /* `from` sessions must reach 0 within; <= 0: 30000
	                               (rollback: 200, never beyond the 1 s budget) */
	int leave_drain;            /* 1: on drain timeout leave `from` in drain (rollback
	                               default); 0: maint anyway (in-flight requests finish) */
	int wait_check;             /* 1: also wait for HAProxy's own check of `to` after
	                               leaving maint (adds up to one check `inter`) */
	const char *const *verify_urls; /* health URLs of the `to` instances, probed
	                               directly before they get traffic; NULL: skip */
	size_t n_verify;
	long verify_expect;         /* status the verify GET must return; <= 0: 200 */
	double poll_ms;             /* show stat polling period; <= 0: 5 */
	const char *state_file;     /* save `show servers state` here at the end (local
	                               HAProxy only); NULL: the caller persists */
} iac_cutover_opts;

typedef struct {
	double verify_ms;           /* start -> verify_urls answered (0 without) */
	double ready_ms;            /* start -> `to` ready acknowledged */
	double up_ms;               /* start -> every `to` up */
	double switch_ms;           /* start -> `from` drain acknowledged: 100 % of new
	                               requests go to `to` from here */
	double drained_ms;          /* start -> `from` sessions at zero; -1 if not reached */
	double total_ms;            /* whole call */
	long sessions_left;         /* `from` sessions when the wait ended (0 if drained) */
	int drained;                /* 1 when `from` reached zero sessions */
	int from_maint;             /* 1 when `from` ended in maint, 0 when left in drain */
	int persisted;              /* 1 when the state file was written */
} iac_cutover_result;

/* 0 when traffic is on `to`; -1 when it is not (the message says where it
 * is: the steps above undo what they did); IAC_ECONFLICT when someone else
 * changed the servers' states while this call waited (typically an
 * emergency rollback preempting an apply): nothing more is touched. The
 * result is filled in every case. */
int iac_cutover_switch(iac_cutover_result *out, iac_haproxy *h, const iac_cutover_opts *opts);
int iac_cutover_rollback(iac_cutover_result *out, iac_haproxy *h, const iac_cutover_opts *opts);

/* Put `from` servers left in drain into maint once their sessions are zero
 * (or at once when force is set). IAC_ETIMEOUT when sessions remain after
 * timeout_ms. */
int iac_cutover_finish(iac_haproxy *h, const char *backend, const char *const *servers, size_t n,
		       double timeout_ms, int force);

/* {"ready_ms":..,"up_ms":..,"switch_ms":..,"drained_ms":..,"total_ms":..,
 *  "sessions_left":..,"drained":true,"from_state":"maint","persisted":false}
 * New reference. */
json_t *iac_cutover_result_json(const iac_cutover_result *r);

#endif

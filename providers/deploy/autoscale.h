/* autoscale: the pool autoscaler of `iac autoscale`.
 *
 *   app_pool "web" { ..., autoscale = { min = 2, max = 8, metric = "haproxy_scur_per_server",
 *       target = 20, tolerance = 0.1, scale_up = { max_step = 2, period = "15s" },
 *       scale_down = { stabilization = "60s", max_step = 1 } } }
 *
 * Three parts:
 *   - the decision (autoscale_decide.c): pure, Kubernetes HPA semantics,
 *     everything it depends on passed in (the recommendation history and
 *     the past scale events included), so the unit tests drive it through
 *     time without a clock;
 *   - the metric (autoscale.c): read live from HAProxy, hosts or Prometheus;
 *   - the step (autoscale.c, cmd_autoscale.c): start/health-gate/add or
 *     drain/delete/stop instances, recorded in state under the lock.
 *
 * Ownership: the decision borrows its inputs and writes into a caller's
 * struct; nothing is allocated.
 */
#ifndef IAC_PROVIDERS_DEPLOY_AUTOSCALE_H
#define IAC_PROVIDERS_DEPLOY_AUTOSCALE_H

#include <jansson.h>
#include <stddef.h>

/* The pool's `autoscale` table, parsed. Times in seconds. */
typedef struct {
	int min, max;
	double target;             /* the metric's wanted value per instance (> 0) */
	double tolerance;          /* no change while |metric/target - 1| <= this (default 0.1) */
	int up_max_step;           /* at most this many instances added per up_period (default 4) */
	double up_period;          /* default 15 */
	double up_stabilization;   /* lowest recommendation over this window (default 0: none) */
	int down_max_step;         /* at most this many removed per down_period (default 1) */
	double down_period;        /* default 15 */
	double down_stabilization; /* highest recommendation over this window (default 300) */
	char metric[512];          /* "haproxy_scur_per_server", "haproxy_rate_per_server", "cpu", or PromQL */
	char prometheus[256];      /* Prometheus base URL for a PromQL metric ("" when none) */
	double interval;           /* seconds between steps of `iac autoscale` (default up_period) */
} iac_autoscale_spec;

/* A past recommendation (before stabilization) or a past scale event
 * (delta > 0 added, < 0 removed), at time t (seconds, any epoch). */
typedef struct {
	double t;
	int value;
} iac_autoscale_point;

typedef struct {
	const iac_autoscale_spec *spec;
	int current;                          /* instances serving now */
	double metric;                        /* NAN when it could not be read */
	double now;
	const iac_autoscale_point *recs;      /* earlier recommendations, any order */
	size_t n_recs;
	const iac_autoscale_point *events;    /* earlier scale events (value = delta) */
	size_t n_events;
} iac_autoscale_input;

typedef struct {
	int desired;          /* what the pool should have after this step */
	int recommendation;   /* the raw recommendation of this step: record it in the history */
	int record;           /* 1 when recommendation should go into the history */
	char reason[512];     /* one line: the rule that decided, with its figures */
} iac_autoscale_decision;

/* Parse the pool's autoscale table; 0 or IAC_ERR ("autoscale.max: ...").
 * Defaults as above. */
int iac_autoscale_spec_parse(iac_autoscale_spec *out, const json_t *autoscale);

/* The decision, HPA semantics (k8s pkg/controller/podautoscaler):
 *   1. metric unknown: no change;
 *   2. ratio = metric/target; within tolerance: recommendation = current,
 *      else ceil(current * ratio) (at least 1);
 *   3. stabilization: the highest recommendation over down_stabilization
 *      (and this one) caps a scale-down, the lowest over up_stabilization a
 *      scale-up;
 *   4. rate: at most up_max_step added over the last up_period (scale
 *      events in it count), at most down_max_step removed per down_period;
 *   5. clamped to [min, max] (a pool below min is raised to it at once).
 * Pure. */
void iac_autoscale_decide(iac_autoscale_decision *out, const iac_autoscale_input *in);

/* Wall-clock time in seconds (what the history points carry). */
double iac_autoscale_now(void);

/* One step for the deploy.blue_green at addr in st (the caller holds the
 * lock): put back what drifted (spares of a colour no longer live are
 * replaced; spares a reload dropped are added again), read the metric,
 * decide, start/gate/add or drain/delete/stop spares, record it all in
 * state (extra "autoscale": the serving spares, the points the decision
 * needs, the last decisions; a history event when the size changed).
 * *out = the decision (new ref): deployment, at, metric, value, target,
 * current, recommendation, desired, serving, reason, notes, action; or
 * {deployment, at, error} when the step could not run (0 still). IAC_ERR
 * only when state could not be written. */
struct iac_state;
struct iac_rctx;
int iac_autoscale_step(json_t **out, struct iac_state *st, const struct iac_rctx *ctx, const char *addr,
		       double now);

#endif

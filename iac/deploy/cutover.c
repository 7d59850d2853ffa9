/* cutover: blue/green switch and rollback through the runtime API (see cutover.h). */
#include "iac/deploy/cutover.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/deploy/probe.h"

#define ROLLBACK_BUDGET_MS 1000.0
#define ROLLBACK_DRAIN_MS 200.0

static void sleep_ms(double ms)
{
	struct timespec ts = { (time_t)(ms / 1e3), (long)((ms - (double)(time_t)(ms / 1e3) * 1e3) * 1e6) };
	nanosleep(&ts, NULL);
}

static void list_names(iac_buf *b, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		iac_buf_printf(b, "%s%s", i ? ", " : "", names[i]);
}

/* Up and, with wait_check, past its first check since leaving maint:
 * HAProxy shows "UP 1/2" (health = rise, below the maximum) until a check
 * passes, then "UP". */
static int server_ready(const iac_haproxy_stat *row, int wait_check)
{
	if (!iac_haproxy_stat_is_up(row))
		return 0;
	if (!wait_check)
		return 1;
	return strcmp(row->status, "UP") == 0 || iac_str_starts(row->status, "no check") ||
	       strcmp(row->status, "DRAIN") == 0;
}

/* Down, and not on its way up: "DOWN 1/2" is a server whose last check
 * passed and that needs one more (rise 2), as a server just made ready
 * shows; waiting for it is right, giving up is not. */
static int server_down(const iac_haproxy_stat *row)
{
	const char *s = row->status;
	if (iac_str_starts(s, "MAINT"))
		return 1;
	return iac_str_starts(s, "DOWN") && !(s[4] == ' ' && s[5] >= '1' && s[5] <= '9');
}

static void describe(iac_buf *b, const iac_haproxy_stat *row)
{
	iac_buf_printf(b, "'%s' is %s", row->svname, row->status);
	if (row->check_status[0]) {
		iac_buf_printf(b, " (check %s", row->check_status);
		if (row->check_code > 0)
			iac_buf_printf(b, " %ld", row->check_code);
		if (row->check_desc[0])
			iac_buf_printf(b, ": %s", row->check_desc);
		iac_buf_putc(b, ')');
	}
}

/* A fresh `show stat` of the backend. */
static int refresh(iac_haproxy_stat **rows, size_t *n, iac_haproxy *h, const char *backend)
{
	free(*rows);
	*rows = NULL;
	*n = 0;
	return iac_haproxy_show_stat(rows, n, h, backend);
}

/* Point picked[i] at the row of names[i]; -1 when one is not in the backend. */
static int pick(const iac_haproxy_stat **picked, const iac_haproxy_stat *rows, size_t n,
		iac_haproxy *h, const char *backend, const char *const *names, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		picked[i] = iac_haproxy_stat_find(rows, n, backend, names[i]);
		if (!picked[i])
			return iac_err_set("haproxy at '%s': no server '%s' in backend '%s'",
					   iac_haproxy_addr(h), names[i], backend);
	}
	return 0;
}

static long sessions(const iac_haproxy_stat *const *rows, size_t n)
{
	long total = 0;
	for (size_t i = 0; i < n; i++)
		total += (rows[i]->scur > 0 ? rows[i]->scur : 0) + (rows[i]->qcur > 0 ? rows[i]->qcur : 0);
	return total;
}

/* ---- what the rows say (pure) ---- */

/* A server in drain or maint: only someone else's command puts a server
 * there while this switch runs (a rollback preempting an apply, another
 * switch). */
static int held_elsewhere(const iac_haproxy_stat *row)
{
	return iac_str_starts(row->status, "DRAIN") || iac_str_starts(row->status, "MAINT");
}

/* The first `to` server someone else holds, or NULL. */
static const iac_haproxy_stat *first_held(const iac_haproxy_stat *const *to, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (held_elsewhere(to[i]))
			return to[i];
	return NULL;
}

/* During the drain: a `to` server someone else took out, else a `from`
 * server someone made ready again; NULL when the traffic is still ours. */
static const iac_haproxy_stat *traffic_moved(const iac_haproxy_stat *const *to, size_t n_to,
					     const iac_haproxy_stat *const *from, size_t n_from)
{
	const iac_haproxy_stat *moved = first_held(to, n_to);
	for (size_t i = 0; i < n_from && !moved; i++)
		if (iac_str_starts(from[i]->status, "UP"))
			moved = from[i];
	return moved;
}

/* Why the `to` servers are not all ready yet, for the message when the
 * wait gives up: a server that is down says more than one still rising. */
static const iac_haproxy_stat *first_not_ready(const iac_haproxy_stat *const *to, size_t n, int wait_check)
{
	for (size_t i = 0; i < n; i++)
		if (server_down(to[i]))
			return to[i];
	for (size_t i = 0; i < n; i++)
		if (!server_ready(to[i], wait_check))
			return to[i];
	return NULL;
}

static const iac_haproxy_stat *first_down(const iac_haproxy_stat *const *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (server_down(rows[i]))
			return rows[i];
	return NULL;
}

static int all_down(const iac_haproxy_stat *const *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!server_down(rows[i]))
			return 0;
	return 1;
}

/* ---- the options, resolved (pure) ---- */

typedef struct {
	const char *verb;         /* "switch" or "roll back", for messages */
	int rollback;
	double up_timeout_ms;
	double poll_ms;
	int leave_drain;
} cutover_plan;

static void plan_resolve(cutover_plan *p, const iac_cutover_opts *o, int rollback)
{
	p->verb = rollback ? "roll back" : "switch";
	p->rollback = rollback;
	p->up_timeout_ms = o->up_timeout_ms > 0 ? o->up_timeout_ms : (rollback ? 300 : 3000);
	p->poll_ms = o->poll_ms > 0 ? o->poll_ms : 5;
	p->leave_drain = rollback ? 1 : o->leave_drain;
}

/* How long step 3 may wait, given the time the switch took so far. */
static double drain_budget(const iac_cutover_opts *o, int rollback, double elapsed_ms)
{
	double drain_timeout = o->drain_timeout_ms;
	if (rollback) {
		/* short requests finish in this time; a long one must not hold
		 * the operator: its server stays in drain (no new requests) */
		double left = ROLLBACK_BUDGET_MS - 100 - elapsed_ms;
		if (drain_timeout <= 0)
			drain_timeout = ROLLBACK_DRAIN_MS;
		if (drain_timeout > left)
			drain_timeout = left > 0 ? left : 0;
	} else if (drain_timeout <= 0) {
		drain_timeout = 30000;
	}
	return drain_timeout;
}

/* ---- the steps (cutover.h); each returns 0 or an error code ---- */

typedef struct {
	iac_cutover_result *out;
	iac_haproxy *h;
	const iac_cutover_opts *o;
	cutover_plan p;
	double t0;
	iac_haproxy_stat *rows;          /* the latest `show stat` of the backend */
	size_t nrows;
	const iac_haproxy_stat **to_rows, **from_rows;   /* into rows */
	iac_buf names;                   /* "green1, green2", for messages */
} mover;

static double elapsed(const mover *m)
{
	return iac_now_ms() - m->t0;
}

/* Every name must exist before anything changes: a typo in `from` found
 * after `to` went ready would leave the traffic split. */
static int check_names(mover *m)
{
	const iac_cutover_opts *o = m->o;
	if (refresh(&m->rows, &m->nrows, m->h, o->backend) < 0 ||
	    pick(m->to_rows, m->rows, m->nrows, m->h, o->backend, o->to, o->n_to) < 0 ||
	    pick(m->from_rows, m->rows, m->nrows, m->h, o->backend, o->from, o->n_from) < 0) {
		iac_err_prefix("cannot %s backend '%s' to %s", m->p.verb, o->backend, iac_buf_cstr(&m->names));
		return IAC_ERR;
	}
	return 0;
}

/* 0. the standby may have died while HAProxy was not looking */
static int verify_to(mover *m)
{
	const iac_cutover_opts *o = m->o;
	iac_probe_health_result hr;
	/* a sick instance answers at once: fail fast, and leave a rollback
	 * most of its budget */
	double vt = m->p.up_timeout_ms < 500 ? m->p.up_timeout_ms : 500;
	iac_probe_health_opts ho = {
		.urls = o->verify_urls, .n_urls = o->n_verify, .path = "", .expect = o->verify_expect,
		.interval_ms = 50, .healthy = 1, .timeout_ms = vt, .request_timeout_ms = vt,
	};
	int vr = iac_probe_health(&hr, &ho);
	iac_probe_health_free(&hr);
	if (vr < 0) {
		iac_err_prefix("cannot %s backend '%s' to %s: traffic stays where it was", m->p.verb,
			       o->backend, iac_buf_cstr(&m->names));
		return IAC_ERR;
	}
	m->out->verify_ms = elapsed(m);
	return 0;
}

/* Step 1 gave up: traffic never left `from`, so take the new colour out
 * again. */
static int abandon_to(mover *m, const iac_haproxy_stat *why_row)
{
	const iac_cutover_opts *o = m->o;
	iac_buf why = IAC_BUF_INIT;
	describe(&why, why_row);
	iac_haproxy_set_state(m->h, o->backend, o->to, o->n_to, IAC_HAPROXY_MAINT);
	iac_err_set("cannot %s backend '%s' to %s: %s after %.0f ms; the servers were put back in maint "
		    "and traffic stays where it was", m->p.verb, o->backend, iac_buf_cstr(&m->names),
		    iac_buf_cstr(&why), elapsed(m));
	iac_buf_free(&why);
	return IAC_ERR;
}

#define CHECK_GRACE_MS 1500

/* 1. the new colour joins; the old one still serves */
static int bring_up_to(mover *m)
{
	const iac_cutover_opts *o = m->o;
	free(m->rows);
	if (iac_haproxy_set_state_stat(&m->rows, &m->nrows, m->h, o->backend, o->to, o->n_to,
				       IAC_HAPROXY_READY) < 0)
		return IAC_ERR;
	m->out->ready_ms = elapsed(m);
	for (int first = 1;; first = 0) {
		/* the first look comes with the ready commands, in one round trip */
		if ((!first && refresh(&m->rows, &m->nrows, m->h, o->backend) < 0) ||
		    pick(m->to_rows, m->rows, m->nrows, m->h, o->backend, o->to, o->n_to) < 0)
			return IAC_ERR;
		/* just made ready: drain or maint now means someone else acts
		 * on this backend (a rollback); draining `from` would leave
		 * nobody serving */
		const iac_haproxy_stat *held = first_held(m->to_rows, o->n_to);
		if (held) {
			iac_err_set("backend '%s' changed during the %s to %s: '%s' is %s right after being "
				    "made ready (a rollback or another switch?); '%s' keeps its traffic",
				    o->backend, m->p.verb, iac_buf_cstr(&m->names), held->svname, held->status,
				    o->n_from ? o->from[0] : "the old colour");
			return IAC_ECONFLICT;
		}
		size_t ready = 0;
		for (size_t i = 0; i < o->n_to; i++)
			ready += server_ready(m->to_rows[i], o->wait_check);
		if (ready == o->n_to)
			break;
		/* a `to` server whose check failed, or out of time: give up. A
		 * DOWN seen right after the ready may be a check from before it
		 * (a first deploy behind a HAProxy started moments earlier, which
		 * checked the server before the app ran): its checks get
		 * CHECK_GRACE_MS to catch up first */
		double since_ready = elapsed(m) - m->out->ready_ms;
		double grace = CHECK_GRACE_MS < m->p.up_timeout_ms ? CHECK_GRACE_MS : m->p.up_timeout_ms;
		if ((first_down(m->to_rows, o->n_to) && since_ready > grace) || elapsed(m) > m->p.up_timeout_ms)
			return abandon_to(m, first_not_ready(m->to_rows, o->n_to, o->wait_check));
		sleep_ms(m->p.poll_ms);
	}
	m->out->up_ms = elapsed(m);
	return 0;
}

/* 2. the old colour stops taking new requests */
static int drain_from(mover *m)
{
	const iac_cutover_opts *o = m->o;
	if (o->n_from && iac_haproxy_set_state(m->h, o->backend, o->from, o->n_from, IAC_HAPROXY_DRAIN) < 0) {
		iac_err_prefix("cannot %s backend '%s' to %s (the new servers are ready, the old ones "
			       "still take traffic)", m->p.verb, o->backend, iac_buf_cstr(&m->names));
		return IAC_ERR;
	}
	m->out->switch_ms = elapsed(m);
	return 0;
}

/* 3. wait for the old colour's sessions to end, within drain_timeout_ms;
 * running out of time is not an error (step 4 decides). */
static int wait_drained(mover *m, double drain_timeout_ms)
{
	const iac_cutover_opts *o = m->o;
	iac_cutover_result *out = m->out;
	double drain_start = iac_now_ms();

	out->sessions_left = -1;
	if (!o->n_from) {
		out->drained = 1;
		out->drained_ms = out->switch_ms;
		out->sessions_left = 0;
		return 0;
	}
	for (;;) {
		if (refresh(&m->rows, &m->nrows, m->h, o->backend) < 0 ||
		    pick(m->from_rows, m->rows, m->nrows, m->h, o->backend, o->from, o->n_from) < 0 ||
		    pick(m->to_rows, m->rows, m->nrows, m->h, o->backend, o->to, o->n_to) < 0)
			return IAC_ERR;
		out->sessions_left = sessions(m->from_rows, o->n_from);
		/* someone else (a rollback preempting this apply, another
		 * switch) moved the traffic: finishing would put the servers
		 * that now serve in maint, so stop and touch nothing */
		const iac_haproxy_stat *moved = traffic_moved(m->to_rows, o->n_to, m->from_rows, o->n_from);
		if (moved) {
			iac_err_set("backend '%s' changed during the %s to %s: '%s' is %s now (a rollback or "
				    "another switch?); leaving the servers as they are", o->backend, m->p.verb,
				    iac_buf_cstr(&m->names), moved->svname, moved->status);
			return IAC_ECONFLICT;
		}
		if (all_down(m->to_rows, o->n_to)) {
			/* nobody left to serve: bring the old colour back at once */
			iac_buf why = IAC_BUF_INIT;
			describe(&why, first_down(m->to_rows, o->n_to));
			iac_haproxy_set_state(m->h, o->backend, o->from, o->n_from, IAC_HAPROXY_READY);
			iac_err_set("cannot %s backend '%s' to %s: %s during the drain; the old servers were "
				    "made ready again", m->p.verb, o->backend, iac_buf_cstr(&m->names),
				    iac_buf_cstr(&why));
			iac_buf_free(&why);
			return IAC_ERR;
		}
		if (out->sessions_left == 0) {
			out->drained = 1;
			out->drained_ms = elapsed(m);
			return 0;
		}
		if (iac_now_ms() - drain_start >= drain_timeout_ms)
			return 0;
		sleep_ms(m->p.poll_ms);
	}
}

/* 4. the old colour leaves the farm (its processes keep running as the
 * standby a rollback returns to); then the states are saved */
static int retire_from(mover *m)
{
	const iac_cutover_opts *o = m->o;
	if (o->n_from && (m->out->drained || !m->p.leave_drain)) {
		if (iac_haproxy_set_state(m->h, o->backend, o->from, o->n_from, IAC_HAPROXY_MAINT) < 0)
			return IAC_ERR;
		m->out->from_maint = 1;
	}
	if (o->state_file) {
		if (iac_haproxy_save_state(m->h, o->state_file) < 0) {
			iac_err_prefix("traffic is on %s but the switch is not persisted", iac_buf_cstr(&m->names));
			return IAC_ERR;
		}
		m->out->persisted = 1;
	}
	return 0;
}

/* The steps in cutover.h's order. A failing step sets the message and,
 * where cutover.h says so, undoes its own change (`to` back in maint,
 * `from` ready again; nothing on a conflict); the sequence stops there. */
static int move(iac_cutover_result *out, iac_haproxy *h, const iac_cutover_opts *o, int rollback)
{
	mover m = { .out = out, .h = h, .o = o, .t0 = iac_now_ms(), .names = IAC_BUF_INIT };
	int rc;

	plan_resolve(&m.p, o, rollback);
	memset(out, 0, sizeof(*out));
	out->drained_ms = -1;
	if (!o->backend || !o->n_to)
		return iac_err_set("cannot %s: no backend or no servers to send the traffic to", m.p.verb);
	m.to_rows = iac_xcalloc(o->n_to, sizeof(*m.to_rows));
	m.from_rows = iac_xcalloc(o->n_from ? o->n_from : 1, sizeof(*m.from_rows));
	list_names(&m.names, o->to, o->n_to);

	if ((rc = check_names(&m)) < 0 ||
	    (o->n_verify && (rc = verify_to(&m)) < 0) ||
	    (rc = bring_up_to(&m)) < 0 ||
	    (rc = drain_from(&m)) < 0 ||
	    (rc = wait_drained(&m, drain_budget(o, m.p.rollback, elapsed(&m)))) < 0 ||
	    (rc = retire_from(&m)) < 0)
		goto done;
	rc = 0;
done:
	out->total_ms = elapsed(&m);
	free(m.rows);
	free(m.to_rows);
	free(m.from_rows);
	iac_buf_free(&m.names);
	return rc;
}

int iac_cutover_switch(iac_cutover_result *out, iac_haproxy *h, const iac_cutover_opts *opts)
{
	return move(out, h, opts, 0);
}

int iac_cutover_rollback(iac_cutover_result *out, iac_haproxy *h, const iac_cutover_opts *opts)
{
	return move(out, h, opts, 1);
}

int iac_cutover_finish(iac_haproxy *h, const char *backend, const char *const *servers, size_t n,
		       double timeout_ms, int force)
{
	double t0 = iac_now_ms();
	iac_haproxy_stat *rows = NULL;
	size_t nrows = 0;
	const iac_haproxy_stat **picked = iac_xcalloc(n ? n : 1, sizeof(*picked));
	int rc = IAC_ERR;

	while (!force) {
		if (refresh(&rows, &nrows, h, backend) < 0 ||
		    pick(picked, rows, nrows, h, backend, servers, n) < 0)
			goto done;
		long left = sessions(picked, n);
		if (left == 0)
			break;
		if (iac_now_ms() - t0 >= timeout_ms) {
			iac_err_set("haproxy at '%s': backend '%s' still has %ld sessions on the drained "
				    "servers after %.0f ms", iac_haproxy_addr(h), backend, left, timeout_ms);
			rc = IAC_ETIMEOUT;
			goto done;
		}
		sleep_ms(10);
	}
	rc = iac_haproxy_set_state(h, backend, servers, n, IAC_HAPROXY_MAINT);
done:
	free(rows);
	free(picked);
	return rc;
}

json_t *iac_cutover_result_json(const iac_cutover_result *r)
{
	return json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:b,s:s,s:b}",
			 "verify_ms", r->verify_ms, "ready_ms", r->ready_ms, "up_ms", r->up_ms, "switch_ms", r->switch_ms,
			 "drained_ms", r->drained_ms, "total_ms", r->total_ms,
			 "sessions_left", (json_int_t)r->sessions_left, "drained", r->drained,
			 "from_state", r->from_maint ? "maint" : "drain", "persisted", r->persisted);
}

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

static int server_down(const iac_haproxy_stat *row)
{
	return iac_str_starts(row->status, "DOWN") || iac_str_starts(row->status, "MAINT");
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

static int move(iac_cutover_result *out, iac_haproxy *h, const iac_cutover_opts *o, int rollback)
{
	double t0 = iac_now_ms();
	double up_timeout = o->up_timeout_ms > 0 ? o->up_timeout_ms : (rollback ? 300 : 3000);
	double poll = o->poll_ms > 0 ? o->poll_ms : 5;
	int leave_drain = rollback ? 1 : o->leave_drain;
	const char *verb = rollback ? "roll back" : "switch";
	iac_haproxy_stat *rows = NULL;
	size_t nrows = 0;
	const iac_haproxy_stat **to_rows = NULL, **from_rows = NULL;
	iac_buf why = IAC_BUF_INIT, names = IAC_BUF_INIT;
	int rc = IAC_ERR;

	memset(out, 0, sizeof(*out));
	out->drained_ms = -1;
	if (!o->backend || !o->n_to)
		return iac_err_set("cannot %s: no backend or no servers to send the traffic to", verb);
	to_rows = iac_xcalloc(o->n_to, sizeof(*to_rows));
	from_rows = iac_xcalloc(o->n_from ? o->n_from : 1, sizeof(*from_rows));
	list_names(&names, o->to, o->n_to);

	/* every name must exist before anything changes: a typo in `from`
	 * found after `to` went ready would leave the traffic split */
	if (refresh(&rows, &nrows, h, o->backend) < 0 ||
	    pick(to_rows, rows, nrows, h, o->backend, o->to, o->n_to) < 0 ||
	    pick(from_rows, rows, nrows, h, o->backend, o->from, o->n_from) < 0) {
		iac_err_prefix("cannot %s backend '%s' to %s", verb, o->backend, iac_buf_cstr(&names));
		goto fail;
	}

	/* 0. the standby may have died while HAProxy was not looking */
	if (o->n_verify) {
		iac_probe_health_result hr;
		/* a sick instance answers at once: fail fast, and leave a
		 * rollback most of its budget */
		double vt = up_timeout < 500 ? up_timeout : 500;
		iac_probe_health_opts ho = {
			.urls = o->verify_urls, .n_urls = o->n_verify, .path = "", .expect = o->verify_expect,
			.interval_ms = 50, .healthy = 1, .timeout_ms = vt, .request_timeout_ms = vt,
		};
		int vr = iac_probe_health(&hr, &ho);
		iac_probe_health_free(&hr);
		if (vr < 0) {
			iac_err_prefix("cannot %s backend '%s' to %s: traffic stays where it was", verb,
				       o->backend, iac_buf_cstr(&names));
			goto fail;
		}
		out->verify_ms = iac_now_ms() - t0;
	}

	/* 1. the new colour joins; the old one still serves */
	free(rows);
	if (iac_haproxy_set_state_stat(&rows, &nrows, h, o->backend, o->to, o->n_to, IAC_HAPROXY_READY) < 0)
		goto fail;
	out->ready_ms = iac_now_ms() - t0;
	for (int first = 1;; first = 0) {
		size_t ready = 0;
		/* the first look comes with the ready commands, in one round trip */
		if ((!first && refresh(&rows, &nrows, h, o->backend) < 0) ||
		    pick(to_rows, rows, nrows, h, o->backend, o->to, o->n_to) < 0)
			goto fail;
		/* just made ready: drain or maint now means someone else acts
		 * on this backend (a rollback); draining `from` would leave
		 * nobody serving */
		for (size_t i = 0; i < o->n_to; i++)
			if (iac_str_starts(to_rows[i]->status, "DRAIN") || iac_str_starts(to_rows[i]->status, "MAINT")) {
				iac_err_set("backend '%s' changed during the %s to %s: '%s' is %s right after "
					    "being made ready (a rollback or another switch?); '%s' keeps its "
					    "traffic", o->backend, verb, iac_buf_cstr(&names), to_rows[i]->svname,
					    to_rows[i]->status, o->n_from ? o->from[0] : "the old colour");
				rc = IAC_ECONFLICT;
				goto fail;
			}
		for (size_t i = 0; i < o->n_to; i++)
			ready += server_ready(to_rows[i], o->wait_check);
		if (ready == o->n_to)
			break;
		for (size_t i = 0; i < o->n_to && !why.len; i++)
			if (server_down(to_rows[i]))
				describe(&why, to_rows[i]);
		if (why.len || iac_now_ms() - t0 > up_timeout) {
			for (size_t i = 0; i < o->n_to && !why.len; i++)
				if (!server_ready(to_rows[i], o->wait_check))
					describe(&why, to_rows[i]);
			/* traffic never left `from`: take the new colour out again */
			iac_haproxy_set_state(h, o->backend, o->to, o->n_to, IAC_HAPROXY_MAINT);
			iac_err_set("cannot %s backend '%s' to %s: %s after %.0f ms; the servers were put "
				    "back in maint and traffic stays where it was", verb, o->backend,
				    iac_buf_cstr(&names), iac_buf_cstr(&why), iac_now_ms() - t0);
			goto fail;
		}
		sleep_ms(poll);
	}
	out->up_ms = iac_now_ms() - t0;

	/* 2. the old colour stops taking new requests */
	if (o->n_from && iac_haproxy_set_state(h, o->backend, o->from, o->n_from, IAC_HAPROXY_DRAIN) < 0) {
		iac_err_prefix("cannot %s backend '%s' to %s (the new servers are ready, the old ones "
			       "still take traffic)", verb, o->backend, iac_buf_cstr(&names));
		goto fail;
	}
	out->switch_ms = iac_now_ms() - t0;

	/* 3. wait for the old colour's sessions to end */
	double drain_timeout = o->drain_timeout_ms;
	if (rollback) {
		/* short requests finish in this time; a long one must not hold
		 * the operator: its server stays in drain (no new requests) */
		double left = ROLLBACK_BUDGET_MS - 100 - (iac_now_ms() - t0);
		if (drain_timeout <= 0)
			drain_timeout = ROLLBACK_DRAIN_MS;
		if (drain_timeout > left)
			drain_timeout = left > 0 ? left : 0;
	} else if (drain_timeout <= 0) {
		drain_timeout = 30000;
	}
	double drain_start = iac_now_ms();
	out->sessions_left = -1;
	while (o->n_from) {
		if (refresh(&rows, &nrows, h, o->backend) < 0 ||
		    pick(from_rows, rows, nrows, h, o->backend, o->from, o->n_from) < 0 ||
		    pick(to_rows, rows, nrows, h, o->backend, o->to, o->n_to) < 0)
			goto fail;
		out->sessions_left = sessions(from_rows, o->n_from);
		/* someone else (a rollback preempting this apply, another
		 * switch) moved the traffic: finishing would put the servers
		 * that now serve in maint, so stop and touch nothing */
		const iac_haproxy_stat *moved = NULL;
		for (size_t i = 0; i < o->n_to && !moved; i++)
			if (iac_str_starts(to_rows[i]->status, "DRAIN") || iac_str_starts(to_rows[i]->status, "MAINT"))
				moved = to_rows[i];
		for (size_t i = 0; i < o->n_from && !moved; i++)
			if (iac_str_starts(from_rows[i]->status, "UP"))
				moved = from_rows[i];
		if (moved) {
			iac_err_set("backend '%s' changed during the %s to %s: '%s' is %s now (a rollback or "
				    "another switch?); leaving the servers as they are", o->backend,
				    verb, iac_buf_cstr(&names), moved->svname, moved->status);
			rc = IAC_ECONFLICT;
			goto fail;
		}
		size_t down = 0;
		for (size_t i = 0; i < o->n_to; i++)
			if (server_down(to_rows[i])) {
				if (!down)
					describe(&why, to_rows[i]);
				down++;
			}
		if (down == o->n_to) {
			/* nobody left to serve: bring the old colour back at once */
			iac_haproxy_set_state(h, o->backend, o->from, o->n_from, IAC_HAPROXY_READY);
			iac_err_set("cannot %s backend '%s' to %s: %s during the drain; the old servers "
				    "were made ready again", verb, o->backend, iac_buf_cstr(&names),
				    iac_buf_cstr(&why));
			goto fail;
		}
		iac_buf_clear(&why);
		if (out->sessions_left == 0) {
			out->drained = 1;
			out->drained_ms = iac_now_ms() - t0;
			break;
		}
		if (iac_now_ms() - drain_start >= drain_timeout)
			break;
		sleep_ms(poll);
	}
	if (!o->n_from) {
		out->drained = 1;
		out->drained_ms = out->switch_ms;
		out->sessions_left = 0;
	}

	/* 4. the old colour leaves the farm (its processes keep running as the
	 * standby a rollback returns to) */
	if (o->n_from && (out->drained || !leave_drain)) {
		if (iac_haproxy_set_state(h, o->backend, o->from, o->n_from, IAC_HAPROXY_MAINT) < 0)
			goto fail;
		out->from_maint = 1;
	}
	if (o->state_file) {
		if (iac_haproxy_save_state(h, o->state_file) < 0) {
			iac_err_prefix("traffic is on %s but the switch is not persisted", iac_buf_cstr(&names));
			goto fail;
		}
		out->persisted = 1;
	}
	rc = 0;
fail:
	out->total_ms = iac_now_ms() - t0;
	free(rows);
	free(to_rows);
	free(from_rows);
	iac_buf_free(&why);
	iac_buf_free(&names);
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

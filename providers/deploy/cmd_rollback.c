/* cmd_rollback: `iac rollback [DEPLOYMENT...] [-force]` — the emergency
 * switch back to the standby colour.
 *
 * It reads state only: no configuration is loaded (it may be mid-edit and
 * broken), nothing is refreshed. Providers are configured from the copy of
 * their settings the last apply saved in state. If an apply holds the
 * lock, -force stops it (as two Ctrl-C would: nothing new starts, running
 * operations are cancelled) and takes the lock; the preemption is recorded.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "providers/deploy/deploy.h"

#include "iac/cli/session.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/state/history.h"

#define ROLLBACK_FLAGS (IAC_F_JSON | IAC_F_LOCK)

/* The lock's holder now (new ref), or NULL. */
static json_t *holder_now(iac_session *s)
{
	json_t *st = NULL, *h = NULL;
	if (iac_backend_lock_status(&st, s->be) == 0 && json_is_object(json_object_get(st, "holder")))
		h = json_incref(json_object_get(st, "holder"));
	json_decref(st);
	iac_err_clear();
	return h;
}

/* Take the lock; with -force, stop a running holder and take it anyway. */
static int take_lock(iac_session *s, json_t **preempted, int force_flag)
{
	json_t *stale = NULL;
	*preempted = NULL;
	if (iac_session_backend(s, 0) < 0)
		return IAC_ERR;
	int rc = iac_backend_lock(&stale, s->be, "rollback", s->lock_timeout_ms);
	json_decref(stale);
	if (rc == 0)
		s->locked = 1;
	if (rc != IAC_ELOCKED)
		return rc;
	if (!force_flag) {
		iac_log_error("%s\nan emergency rollback can preempt it: iac rollback -force", iac_err_last());
		return IAC_ELOCKED;
	}
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	json_t *holder = holder_now(s);
	if (holder) {
		pid_t pid = (pid_t)json_integer_value(json_object_get(holder, "pid"));
		const char *hh = iac_json_str(holder, "host");
		if (pid > 1 && hh && !strcmp(hh, host)) {
			/* like two Ctrl-C: start nothing new, cancel what runs */
			kill(pid, SIGINT);
			usleep(20 * 1000);
			kill(pid, SIGINT);
			if (iac_backend_lock(NULL, s->be, "rollback", 300) == 0)
				s->locked = 1;
		}
	}
	if (!s->locked && iac_backend_preempt(preempted, s->be, "rollback") < 0) {
		json_decref(holder);
		iac_session_error("cannot take the lock even with -force");
		return IAC_ERR;
	}
	s->locked = 1;
	if (!*preempted)
		*preempted = holder ? holder : json_object();
	else
		json_decref(holder);
	iac_log_warn("preempted the lock held by 'iac %s' (pid %lld); it was told to stop",
		     iac_json_str(*preempted, "command") ?: "?",
		     (long long)json_integer_value(json_object_get(*preempted, "pid")));
	return 0;
}

/* flags_on_rollback: set each flag live, as 'iac flag set NAME VARIANT'
 * would. A flag that cannot be set fails the command (*failed), not the
 * rollback: the traffic is back already. Returns what was done, for the
 * history event. */
static json_t *set_rollback_flags(iac_session *s, const char *addr, int *failed)
{
	const char *fname;
	json_t *fv;
	json_t *frep = json_array();
	json_t *fl = json_object_get(json_object_get(iac_state_get(s->st, addr), "attributes"), "flags_on_rollback");
	const iac_provider_op *set_flag = iac_provider_op_find("flags", "set");

	json_object_foreach(fl, fname, fv) {
		json_t *r2 = NULL, *args = json_pack("{s:s,s:O}", "name", fname, "variant", fv);
		int fok = json_is_string(fv) && set_flag && set_flag->run(&r2, s->st, s->pv, args) == 0;
		if (!set_flag)
			iac_err_set("this iac was built without feature flags");
		json_decref(args);
		if (!fok) {
			iac_log_error("%s: rollback done, but flag '%s' could not be set to '%s': %s", addr, fname,
				      json_is_string(fv) ? json_string_value(fv) : "?", iac_err_last());
			(*failed)++;
		} else if (!s->json) {
			printf("  flag %s -> %s\n", fname, json_string_value(fv));
		}
		json_array_append_new(frep, json_pack("{s:s,s:O?,s:b}", "flag", fname, "variant", fv, "ok", fok));
		json_decref(r2);
	}
	return frep;
}

/* The change-history event of one rollback (also its -json report entry). */
static json_t *rollback_event(const char *addr, const iac_rollback_result *r, int forced, json_t *preempted)
{
	json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:f,s:f,s:b}", "command", "rollback",
			       "deployment", addr, "from_colour", r->from_colour, "to_colour", r->to_colour,
			       "from_version", r->from_version, "to_version", r->to_version,
			       "switch_ms", r->switch_ms, "total_ms", r->total_ms, "forced", forced);
	if (preempted)
		json_object_set(ev, "preempted", preempted);
	if (r->note[0])
		json_object_set_new(ev, "note", json_string(r->note));
	return ev;
}

/* Roll the deployment at addr (state entry e) back, then record it: state,
 * report, history. 0 when rolled back (its flags may still have failed:
 * *failed counts them); -1 when not, reported already. */
static int rollback_one(iac_session *s, json_t *report, const char *addr, const json_t *e, json_t *preempted,
			int forced, int *failed)
{
	iac_rctx ctx;
	json_t *attrs = NULL;
	iac_rollback_result r;

	iac_providers_ctx(&ctx, s->pv, &iac_provider_deploy, addr, &iac_cancel_requested);
	if (iac_deploy_rollback(&attrs, &r, &ctx, json_object_get(e, "attributes")) < 0) {
		iac_log_error("%s: rollback failed: %s", addr, iac_err_last());
		json_array_append_new(report, json_pack("{s:s,s:b,s:s}", "deployment", addr, "ok", 0,
							"error", iac_err_last()));
		return IAC_ERR;
	}
	json_t *entry = json_copy((json_t *)e);
	json_object_set_new(entry, "attributes", attrs);
	json_object_del(entry, "pending");
	iac_state_put(s->st, entry);
	json_t *ev = rollback_event(addr, &r, forced, preempted);
	if (!s->json)
		printf("%s%s%s: rolled back %s (%s) -> %s (%s) in %.0f ms; %s is marked bad\n",
		       iac_color(IAC_C_GREEN), addr, iac_color(IAC_C_RESET), r.from_colour, r.from_version,
		       r.to_colour, r.to_version, r.total_ms, r.from_version);
	if (r.note[0])
		iac_log_warn("%s: %s", addr, r.note);
	json_object_set_new(ev, "flags", set_rollback_flags(s, addr, failed));
	json_array_append(report, ev);
	iac_history_add(s->st, ev);
	return 0;
}

int iac_deploy_cmd_rollback(int argc, char **argv)
{
	iac_session s;
	iac_strlist names = { 0 };
	json_t *preempted = NULL, *report = json_array();
	double t0 = iac_now_ms();
	int rc = 1, done = 0, failed = 0;

	iac_session_init(&s, "rollback");
	int force_flag = 0;
	const iac_opt own[] = {
		{ "force", IAC_OPT_BOOL, &force_flag, "preempt a running apply's lock" },
		{ NULL, 0, NULL, NULL },
	};
	if (iac_session_args_own(&s, ROLLBACK_FLAGS, own, argc, argv, &names) < 0)
		goto out;
	if (take_lock(&s, &preempted, force_flag) < 0)
		goto out;
	if (iac_session_open_state(&s, 0) < 0)
		goto out;
	s.pv = iac_providers_new(iac_state_extra(s.st, "providers"), NULL, ".");
	/* the deployments first, as copies: each rollback changes state (its
	 * entry, flags' entries), and the addresses state lends are valid only
	 * until it changes (state.h) */
	size_t na, nd = 0;
	const char **addrs = iac_state_addresses(s.st, &na);
	char **deps = iac_xcalloc(na + 1, sizeof(char *));
	for (size_t i = 0; i < na; i++)
		if (!strcmp(iac_json_str(iac_state_get(s.st, addrs[i]), "type") ?: "", "deploy.blue_green") &&
		    iac_deploy_addr_matches(addrs[i], &names))
			deps[nd++] = iac_xstrdup(addrs[i]);
	free(addrs);
	for (size_t i = 0; i < nd; i++) {
		json_t *e = iac_state_get(s.st, deps[i]);
		if (e && rollback_one(&s, report, deps[i], e, preempted, force_flag, &failed) == 0)
			done++;
		else if (e)
			failed++;
		free(deps[i]);
	}
	free(deps);
	if (!done && !failed && preempted) {
		/* the preemption happened even though nothing was rolled back: the
		 * history says who stopped whom */
		iac_history_add(s.st, json_pack("{s:s,s:b,s:O,s:s}", "command", "rollback", "forced", 1, "preempted",
						preempted, "note", "nothing to roll back"));
		if (iac_state_flush(s.st) < 0)
			iac_session_error("cannot save state after the preemption");
	}
	if (!done && !failed) {
		iac_log_error(names.n ? "no deployment named '%s' in state; 'iac state list' shows what there is"
				      : "no deployment in state to roll back%s",
			      names.n ? names.items[0] : "");
		goto out;
	}
	if (iac_state_flush(s.st) < 0) {
		iac_session_error("cannot save state after the rollback (the journal has it)");
		goto out;
	}
	rc = failed ? 1 : 0;
out:
	if (s.json) {
		json_t *doc = json_pack("{s:b,s:O,s:f}", "ok", rc == 0, "rollbacks", report,
					"seconds", (iac_now_ms() - t0) / 1e3);
		char *text = json_dumps(doc, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
		json_decref(doc);
	}
	json_decref(report);
	json_decref(preempted);
	iac_session_close(&s);
	iac_strlist_free(&names);
	return rc;
}

void iac_deploy_cmd_rollback_help(void)
{
	printf("\nusage: iac rollback [DEPLOYMENT...] [-force] [-json]\n\n"
	       "Switches each named deployment (all of them when none is named) back to its\n"
	       "standby colour, which is still running: no plan, no refresh, about a second.\n"
	       "The version rolled back from is marked bad; deploying it again needs\n"
	       "'iac apply -allow-bad'. If an apply holds the lock, -force stops it and takes\n"
	       "the lock (recorded in the change history).\n");
	iac_session_usage(ROLLBACK_FLAGS);
	printf("  -force                   preempt a running apply's lock\n");
}

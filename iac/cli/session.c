/* session: shared plumbing of the engine commands (see session.h). */
#include "iac/cli/session.h"
#include "iac/apply/apply.h"
#include "iac/state/history.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"

volatile int iac_stop_requested;
volatile int iac_cancel_requested;

static void on_signal(int sig)
{
	static const char first[] = "\nInterrupt received: no new operations will start; waiting for "
				    "running ones to finish and saving state. Press Ctrl-C again to abort them.\n";
	static const char second[] = "\nSecond interrupt: aborting running operations; state is kept "
				     "consistent.\n";
	(void)sig;
	if (!iac_stop_requested) {
		iac_stop_requested = 1;
		if (write(STDERR_FILENO, first, sizeof(first) - 1) < 0)
			return;
	} else if (!iac_cancel_requested) {
		iac_cancel_requested = 1;
		if (write(STDERR_FILENO, second, sizeof(second) - 1) < 0)
			return;
	}
}

void iac_session_signals(int on)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on ? on_signal : SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void iac_session_init(iac_session *s, const char *command)
{
	memset(s, 0, sizeof(*s));
	s->command = command;
	s->parallelism = 10;
	s->lock = 1;
	s->refresh = 1;
	s->input = 1;
}

static iac_opt opt_table[64];

/* The flags providers add to plan/apply/destroy (-ssh-accept-new). */
static void add_provider_flags(iac_session *s, size_t *n)
{
	size_t k = 0;
	for (const iac_provider *const *p = iac_provider_all(); *p; p++)
		for (const iac_provider_flag *f = (*p)->flags; f && f->flag && k < IAC_SESSION_PFLAGS; f++, k++) {
			s->pflag_of[k] = *p;
			s->pflag_def[k] = f;
			opt_table[(*n)++] = (iac_opt){ f->flag, IAC_OPT_BOOL, &s->pflag[k], f->help };
		}
}

static size_t build_opts(iac_session *s, unsigned which)
{
	size_t n = 0;
#define ADD(name, kind, dest, help) opt_table[n++] = (iac_opt){ name, kind, dest, help }
#define ADD_ARG(name, kind, dest, arg, help) ADD(name, kind, dest, help)
	if (which & IAC_F_VARS) {
		ADD_ARG("var", IAC_OPT_LIST, &s->vars, "NAME=VALUE", "set a variable (repeatable)");
		ADD_ARG("var-file", IAC_OPT_LIST, &s->var_files, "FILE", "read variable values from a file (Lua or .json)");
	}
	if (which & IAC_F_PLAN) {
		ADD_ARG("target", IAC_OPT_LIST, &s->targets, "ADDR", "limit to ADDR and what it depends on (repeatable)");
		ADD_ARG("replace", IAC_OPT_LIST, &s->replace, "ADDR", "force replacement of ADDR (repeatable)");
		ADD_ARG("exclude", IAC_OPT_LIST, &s->excludes, "ADDR", "leave ADDR and what depends on it as they are "
			"(repeatable)");
		ADD_ARG("limit", IAC_OPT_LIST, &s->limits, "HOSTS", "only resources on these hosts: names, addresses "
			"or label=value, comma-separated (repeatable)");
		ADD("refresh", IAC_OPT_BOOL, &s->refresh, "read resources back before planning (default true)");
		ADD("parallelism", IAC_OPT_INT, &s->parallelism, "operations at once (default 10)");
		ADD("require-all-hosts", IAC_OPT_BOOL, &s->require_all_hosts,
		    "fail before changing anything when a host cannot be reached (default: leave its "
		    "resources as they are, converge the rest, exit 1)");
		add_provider_flags(s, &n);
	}
	if (which & IAC_F_LOCK) {
		ADD("lock", IAC_OPT_BOOL, &s->lock, "take the state lock (default true)");
		ADD("lock-timeout", IAC_OPT_DURATION, &s->lock_timeout_ms, "wait this long for the lock (e.g. 30s)");
	}
	if (which & IAC_F_JSON)
		ADD("json", IAC_OPT_BOOL, &s->json, "machine-readable output on stdout");
	if (which & IAC_F_OUT) {
		ADD_ARG("out", IAC_OPT_STRING, &s->out, "FILE", "save the plan to FILE for 'iac apply FILE'");
		ADD("detailed-exitcode", IAC_OPT_BOOL, &s->detailed_exitcode, "exit 0 no changes, 1 error, 2 changes");
		ADD("destroy", IAC_OPT_BOOL, &s->destroy, "plan to destroy everything");
	}
	if (which & IAC_F_APPLY) {
		ADD("auto-approve", IAC_OPT_BOOL, &s->auto_approve, "do not ask for confirmation");
		ADD("input", IAC_OPT_BOOL, &s->input, "ask questions on a terminal (default true)");
	}
	ADD_ARG("backend-config", IAC_OPT_LIST, &s->backend_config, "KEY=VALUE",
		"a setting of the state backend (endpoints, prefix, username, password, ...; repeatable; "
		"never printed)");
	ADD("no-color", IAC_OPT_BOOL, &s->no_color, "no colour in output");
#undef ADD
#undef ADD_ARG
	opt_table[n] = (iac_opt){ 0 };
	return n;
}

int iac_session_args(iac_session *s, unsigned which, int argc, char **argv, iac_strlist *pos)
{
	return iac_session_args_own(s, which, NULL, argc, argv, pos);
}

int iac_session_args_own(iac_session *s, unsigned which, const iac_opt *own, int argc, char **argv,
			 iac_strlist *pos)
{
	size_t n = build_opts(s, which);
	for (const iac_opt *o = own; o && o->name && n + 1 < sizeof(opt_table) / sizeof(*opt_table); o++)
		opt_table[n++] = *o;
	opt_table[n] = (iac_opt){ 0 };
	if (iac_args_parse(opt_table, s->command, argc, argv, pos) < 0) {
		iac_log_error("%s", iac_err_last());
		return IAC_ERR;
	}
	if (s->parallelism < 1) {
		iac_log_error("-parallelism must be 1 or more, not %d", s->parallelism);
		return IAC_ERR;
	}
	if (s->no_color)
		iac_log_set_color(0);
	if (s->json)
		iac_log_set_color(0);
	return 0;
}

/* What the shared flags take, for help. */
static const char *metavar(const char *name)
{
	static const char *const table[][2] = {
		{ "var", "NAME=VALUE" }, { "var-file", "FILE" }, { "target", "ADDR" }, { "replace", "ADDR" },
		{ "exclude", "ADDR" }, { "limit", "HOSTS" }, { "out", "FILE" }, { "backend-config", "KEY=VALUE" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(*table); i++)
		if (!strcmp(table[i][0], name))
			return table[i][1];
	return NULL;
}

void iac_session_usage(unsigned which)
{
	iac_session s;
	iac_session_init(&s, "");
	build_opts(&s, which);
	printf("\nflags:\n");
	iac_args_usage_with(opt_table, metavar);
}

void iac_session_error(const char *what)
{
	const char *msg = iac_err_last();
	if (what)
		iac_log_error("%s: %s", what, msg);
	else
		iac_log_error("%s", msg);
}

int iac_session_load(iac_session *s)
{
	iac_load_opts lo = { 0 };
	iac_strlist vars = { 0 };

	/* values saved in a plan file come first, so -var can still be checked */
	if (s->plan_vars) {
		const char *k;
		json_t *v;
		json_object_foreach(s->plan_vars, k, v) {
			char *text = json_is_string(v) ? iac_xstrdup(json_string_value(v))
							: json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			char *kv = iac_xasprintf("%s=%s", k, text);
			iac_strlist_push(&vars, kv);
			free(kv);
			free(text);
		}
	}
	for (size_t i = 0; i < s->vars.n; i++)
		iac_strlist_push(&vars, s->vars.items[i]);
	lo.vars = (const char *const *)vars.items;
	lo.var_files = (const char *const *)s->var_files.items;
	int rc = iac_config_load(&s->cfg, ".", &lo);
	iac_strlist_free(&vars);
	if (rc < 0) {
		iac_session_error(NULL);
		return IAC_ERR;
	}
	return 0;
}

/* The backend (local .iac/ or etcd) for this command. config_loaded: main.lua
 * was evaluated, so its backend block decides (else .iac/backend.json). */
int iac_session_backend(iac_session *s, int config_loaded)
{
	if (s->be)
		return 0;
	const char *dir = s->cfg ? s->cfg->dir : ".";
	const json_t *decl = s->cfg ? json_object_get(s->cfg->sections, "backend") : NULL;
	if (iac_backend_open(&s->be, dir, config_loaded && s->cfg, decl, &s->backend_config) < 0) {
		iac_session_error(NULL);
		return IAC_ERR;
	}
	iac_backend_set_command(s->be, s->command);
	if (config_loaded && s->cfg && iac_backend_remember(s->be) < 0)
		iac_err_clear();   /* a cache for later commands: never worth failing for */
	int pushed = 0;
	if (iac_history_push_pending(&pushed, s->be) < 0)
		iac_log_warn("%s", iac_err_last());
	else if (pushed)
		iac_log("history: pushed the revisions an earlier command could not push");
	return 0;
}

/* A journal left by an interrupted run was replayed: say so, and fold it
 * into a new snapshot while we hold the lock. */
static int lock_guard(void *ud)
{
	return iac_backend_still_held(ud);
}

/* Each history event becomes a git revision too; a problem there is a
 * warning, never the command's failure. */
static void record_revision(void *ud, const iac_state *st, const json_t *event)
{
	iac_session *s = ud;
	if (iac_state_write_failed((iac_state *)st))
		return;   /* the event is not in state either; the failure was said */
	if (iac_history_record(NULL, s->be, st, event) < 0)
		iac_log_warn("history: %s", iac_err_last());
}

void iac_session_record(iac_session *s, json_t *event)
{
	if (!s->st && iac_backend_state_open(&s->st, s->be) < 0) {
		iac_log_warn("history: %s", iac_err_last());
		json_decref(event);
		return;
	}
	iac_history_stamp(event);   /* who, from where, when: as every other revision */
	record_revision(s, s->st, event);
	json_decref(event);
}

static int recovered(iac_session *s)
{
	iac_state_set_recorder(s->st, record_revision, s);
	if (s->locked)
		iac_state_set_guard(s->st, lock_guard, s->be);
	/* commands a killed run left running stop before anything reruns */
	if (s->locked && iac_apply_reap_leftovers(s->st) < 0) {
		iac_session_error(NULL);
		return IAC_ERR;
	}
	if (iac_state_replayed(s->st) > 0) {
		iac_log_warn("recovered %zu change(s) recorded by an interrupted run; resources that were "
			     "in progress will be checked against reality", iac_state_replayed(s->st));
		if (s->locked && iac_state_flush(s->st) < 0) {
			iac_session_error("cannot save recovered state");
			return IAC_ERR;
		}
	}
	return 0;
}

/* Take the lock unless -lock=false; a stale one is taken over, with a notice. */
static int take_lock_here(iac_session *s)
{
	json_t *stale = NULL;
	if (!s->lock)
		return 0;
	int rc = iac_backend_lock(&stale, s->be, s->command, s->lock_timeout_ms);
	if (rc < 0) {
		iac_session_error(NULL);
		return rc;
	}
	s->locked = 1;
	if (stale) {
		iac_log_warn("took over a stale lock left by 'iac %s' (pid %lld on '%s', since %s), "
			     "which is no longer running",
			     iac_json_str(stale, "command") ?: "?",
			     (long long)json_integer_value(json_object_get(stale, "pid")),
			     iac_json_str(stale, "host") ?: "?",
			     iac_json_str(stale, "started") ?: "?");
		json_decref(stale);
	}
	return 0;
}

static int open_state(iac_session *s)
{
	if (iac_backend_state_open(&s->st, s->be) < 0) {
		iac_session_error(NULL);
		return IAC_ERR;
	}
	return 0;
}

int iac_session_open_state(iac_session *s, int take_lock)
{
	if (iac_session_backend(s, s->cfg != NULL) < 0)
		return IAC_ERR;
	if (take_lock) {
		int rc = take_lock_here(s);
		if (rc < 0)
			return rc;
	}
	if (open_state(s) < 0)
		return IAC_ERR;
	return recovered(s);
}

typedef struct {
	iac_backend *be;
	iac_state *st;
	int rc;
	char err[1024];
} state_job;

static void *open_state_thread(void *arg)
{
	state_job *j = arg;
	j->rc = iac_backend_state_open(&j->st, j->be);
	if (j->rc < 0)
		snprintf(j->err, sizeof(j->err), "%s", iac_err_last());
	return NULL;
}

/* The configuration declares a backend that the fast path (local state read
 * beside the Lua) did not use: start over on the declared one, unless
 * state sits in .iac/ (iac_backend_open says what to run then). */
static int switch_backend(iac_session *s, iac_state *local_st)
{
	iac_backend *declared = NULL;
	const json_t *decl = json_object_get(s->cfg->sections, "backend");
	if (iac_backend_open(&declared, s->cfg->dir, 1, decl, &s->backend_config) < 0) {
		iac_state_free(local_st);
		iac_session_error(NULL);
		return IAC_ERR;
	}
	iac_state_free(local_st);
	iac_backend_free(s->be);   /* drops the local lock */
	s->be = declared;
	iac_backend_set_command(s->be, s->command);
	s->locked = 0;
	if (iac_backend_remember(s->be) < 0)
		iac_err_clear();
	if (take_lock_here(s) < 0 || open_state(s) < 0)
		return IAC_ERR;
	return recovered(s);
}

int iac_session_load_and_open(iac_session *s)
{
	state_job job = { 0 };
	pthread_t th;
	int rc;

	/* a directory that is not a configuration gets the error from the
	 * loader, not a .iac/ made by taking the lock */
	if (access("main.lua", F_OK) < 0 && access(".iac", F_OK) < 0)
		return iac_session_load(s);
	/* -backend-config may hold only part of the settings (the block in
	 * main.lua has the rest): then the backend is known only once main.lua
	 * is loaded, so take the remote path without opening it first */
	if (!s->backend_config.n && iac_session_backend(s, 0) < 0)
		return IAC_ERR;
	if (s->backend_config.n || strcmp(iac_backend_kind(s->be), "local")) {
		/* a remote store: main.lua first (its backend block wins), then
		 * lock, then state as it is once the lock is ours */
		iac_backend_free(s->be);
		s->be = NULL;
		if ((rc = iac_session_load(s)) < 0)
			return rc;
		return iac_session_open_state(s, 1);
	}
	if ((rc = take_lock_here(s)) < 0)
		return rc;
	job.be = s->be;
	int threaded = pthread_create(&th, NULL, open_state_thread, &job) == 0;
	if (!threaded)
		open_state_thread(&job);
	rc = iac_session_load(s);
	if (threaded)
		pthread_join(th, NULL);
	if (rc == 0 && json_object_get(s->cfg->sections, "backend"))
		return switch_backend(s, job.st);
	s->st = job.st;
	if (rc < 0)
		return rc;
	if (job.rc < 0) {
		iac_log_error("%s", job.err);
		return IAC_ERR;
	}
	return recovered(s);
}

void iac_session_providers(iac_session *s)
{
	json_t *extra = json_object();
	for (size_t k = 0; k < IAC_SESSION_PFLAGS && s->pflag_def[k]; k++) {
		if (!s->pflag[k])
			continue;
		const char *name = s->pflag_of[k]->name;
		if (!json_object_get(extra, name))
			json_object_set_new(extra, name, json_object());
		json_object_set_new(json_object_get(extra, name), s->pflag_def[k]->key, json_true());
	}
	s->pv = iac_providers_new(s->cfg->providers, extra, s->cfg->dir);
	json_decref(extra);
}

/* moved { from, to } blocks: a state entry at `from` takes the address
 * `to` before planning, so the object is kept, not destroyed and made
 * again. Applying commands record the move; a plan only shows it. */
static int follow_moves(iac_session *s, json_t **notes)
{
	int durable = strcmp(s->command, "plan") != 0;
	json_t *m;
	size_t i;
	*notes = json_array();
	json_array_foreach(json_object_get(s->cfg->sections, "moved"), i, m) {
		const char *from = iac_json_str(m, "from"), *to = iac_json_str(m, "to");
		const char *file = iac_json_str(m, "file");
		int line = (int)json_integer_value(json_object_get(m, "line"));
		if (!iac_config_get(s->cfg, to))
			return iac_err_set("%s:%d: moved to '%s', which is not declared", file, line, to);
		if (iac_config_get(s->cfg, from))
			return iac_err_set("%s:%d: moved from '%s', which is still declared: remove it (the moved "
					   "block says it is now '%s')", file, line, from, to);
		if (!iac_state_get(s->st, from))
			continue;   /* moved already, or never made */
		if (iac_state_get(s->st, to))
			return iac_err_set("%s:%d: moved from '%s' to '%s', but state has both; 'iac state rm' the "
					   "one that is not real", file, line, from, to);
		if (iac_state_move(s->st, from, to, durable) < 0) {
			iac_err_prefix("%s:%d: moved", file, line);
			return IAC_ERR;
		}
		json_array_append_new(*notes, json_sprintf("%s has moved to %s", from, to));
	}
	return 0;
}

int iac_session_plan(iac_session *s, iac_plan **out)
{
	iac_plan_opts po = { 0 };
	po.destroy = s->destroy;
	po.targets = s->targets.n ? (const char *const *)s->targets.items : NULL;
	po.replace = s->replace.n ? (const char *const *)s->replace.items : NULL;
	po.excludes = s->excludes.n ? (const char *const *)s->excludes.items : NULL;
	po.limits = s->limits.n ? (const char *const *)s->limits.items : NULL;
	po.refresh = s->refresh;
	po.parallelism = s->parallelism;
	po.require_all_hosts = s->require_all_hosts;
	po.stop = &iac_stop_requested;
	po.cancel = &iac_cancel_requested;
	if (!s->pv)
		iac_session_providers(s);
	json_t *moved = NULL;
	if (follow_moves(s, &moved) < 0 || iac_plan_make(out, s->cfg, s->st, s->pv, &po) < 0) {
		iac_session_error(NULL);
		json_decref(moved);
		return IAC_ERR;
	}
	(*out)->moved = moved;
	return 0;
}

void iac_session_close(iac_session *s)
{
	iac_providers_free(s->pv);   /* closes connections */
	iac_backend_unlock(s->be);
	if (iac_free_at_exit()) {
		iac_state_free(s->st);
		iac_config_free(s->cfg);
		iac_backend_free(s->be);
	}
	iac_strlist_free(&s->vars);
	iac_strlist_free(&s->var_files);
	iac_strlist_free(&s->targets);
	iac_strlist_free(&s->replace);
	iac_strlist_free(&s->excludes);
	iac_strlist_free(&s->limits);
	iac_strlist_free(&s->backend_config);
	json_decref(s->plan_vars);
	memset(s, 0, sizeof(*s));
}

/* session: what the engine commands share — the standard flags, loading the
 * configuration, taking the lock, opening state (replaying a journal left
 * by an interrupted run), provider instances and Ctrl-C handling.
 */
#ifndef IAC_CLI_SESSION_H
#define IAC_CLI_SESSION_H

#include <jansson.h>

#include "iac/core/args.h"
#include "iac/load/config.h"
#include "iac/plan/plan.h"
#include "iac/provider/runtime.h"
#include "iac/state/backend.h"
#include "iac/state/state.h"

#define IAC_SESSION_PFLAGS 16

typedef struct {
	/* flags */
	iac_strlist vars, var_files, targets, replace, excludes, limits;
	iac_strlist backend_config;   /* -backend-config KEY=VALUE */
	int parallelism;
	int lock;                 /* -lock=false skips locking */
	double lock_timeout_ms;
	int json;
	int refresh;
	int detailed_exitcode;
	int auto_approve;
	const char *out;          /* -out FILE */
	int destroy;
	int no_color;
	int input;                /* -input=false: never prompt */
	int force;
	int require_all_hosts;    /* an unreachable host fails plan/apply up front */
	/* flags the providers add (iac_provider.flags), in registry order */
	int pflag[IAC_SESSION_PFLAGS];
	const iac_provider *pflag_of[IAC_SESSION_PFLAGS];
	const iac_provider_flag *pflag_def[IAC_SESSION_PFLAGS];

	/* run */
	const char *command;
	iac_config *cfg;
	iac_state *st;
	iac_backend *be;          /* where state and lock live */
	int locked;               /* this command holds the lock */
	iac_providers *pv;
	json_t *plan_vars;        /* variable values from a saved plan */
} iac_session;

/* The flag table for a command; `which` selects groups (IAC_F_*). */
enum {
	IAC_F_VARS = 1 << 0,      /* -var, -var-file */
	IAC_F_PLAN = 1 << 1,      /* -target, -replace, -refresh, -parallelism, -lock... */
	IAC_F_JSON = 1 << 2,
	IAC_F_APPLY = 1 << 3,     /* -auto-approve, -input */
	IAC_F_OUT = 1 << 4,       /* -out, -detailed-exitcode, -destroy */
	IAC_F_LOCK = 1 << 5,      /* -lock, -lock-timeout */
};

void iac_session_init(iac_session *s, const char *command);
/* Parse argv; positional arguments land in *pos. 0 or -1 (message printed).
 * `own` (may be NULL, NULL-name terminated) are the command's own flags,
 * parsed with the shared ones. */
int iac_session_args(iac_session *s, unsigned which, int argc, char **argv, iac_strlist *pos);
int iac_session_args_own(iac_session *s, unsigned which, const iac_opt *own, int argc, char **argv,
			 iac_strlist *pos);
void iac_session_usage(unsigned which);

/* Load the configuration from the current directory. */
int iac_session_load(iac_session *s);
/* Open the backend (once): config_loaded says main.lua was evaluated and
 * its backend block decides; else .iac/backend.json and -backend-config. */
int iac_session_backend(iac_session *s, int config_loaded);
/* Take the lock (unless -lock=false or !take_lock) and open state, through
 * the backend. */
int iac_session_open_state(iac_session *s, int take_lock);
/* Both of the above, with the state read on a second thread while the
 * configuration's Lua runs (they do not depend on each other; with 100,000
 * resources each takes a while). The lock is taken first. */
int iac_session_load_and_open(iac_session *s);
/* Provider instances for this run. */
void iac_session_providers(iac_session *s);
/* Plan with the session's flags. */
int iac_session_plan(iac_session *s, iac_plan **out);
void iac_session_close(iac_session *s);
/* Record an event (stolen) as a history revision of the current state,
 * for commands that change no state themselves (force-unlock). */
void iac_session_record(iac_session *s, json_t *event);

/* iac state pull / push FILE / lock (cmd_backend.c): exit codes. */
int iac_state_pull(iac_session *s);
int iac_state_push(iac_session *s, const char *file);
int iac_state_lock_status(iac_session *s);
/* iac state history / show -rev / diff (cmd_history.c): exit codes. */
int iac_state_history(iac_session *s, const char *addr, long n);
int iac_state_show_rev(iac_session *s, const char *spec, const char *addr);
int iac_state_diff(iac_session *s, const char *spec1, const char *spec2, const char *addr);

/* Ctrl-C: the first press sets stop, the second cancel. */
extern volatile int iac_stop_requested;
extern volatile int iac_cancel_requested;
void iac_session_signals(int on);

/* Print an error from the engine ("error: ..." with the message). */
void iac_session_error(const char *what);

#endif

/* ssh.service: a long-running process on a host.
 *
 * With `unit`, systemd runs it (the host must run systemd): start, stop,
 * reload and is-active through systemctl. Without it, `start` is a command
 * started detached (setsid, stdin from /dev/null, output to `log`) so it
 * survives the channel closing; `pidfile` says which process is the
 * service: written by the service itself (daemons), or by iac with the
 * started process's pid when none appears within 0.5 s (foreground
 * programs). Alive means `kill -0` of that pid succeeds; stop runs `stop`
 * or sends TERM to it (KILL after stop_timeout).
 *
 * What a change does (update):
 *   unit, start, pidfile, log, environment, working_dir, restart_on, host
 *                               -> restart (stop, then start)
 *   reload_on (only)            -> reload (`reload` command, else HUP;
 *                                  systemctl reload with a unit)
 *   reload, stop, timeouts      -> nothing to do, remembered for next time
 *   enabled                     -> systemctl enable/disable
 * restart_on / reload_on list resources (IAC_A_WATCH: each arrives as a
 * digest of that resource's configuration), so a change in one of them
 * shows up as a change of the list.
 */
#include "providers/ssh/ssh.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

static const iac_attr svc_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED, "the host to run on" },
	{ "unit", IAC_T_STRING, 0, "systemd unit name (hosts running systemd)" },
	{ "start", IAC_T_STRING, 0, "command that starts the service (without systemd)" },
	{ "pidfile", IAC_T_STRING, 0, "file holding the service's pid (with start)" },
	{ "stop", IAC_T_STRING, IAC_A_NO_DIFF, "command that stops it (default: TERM to the pid)" },
	{ "reload", IAC_T_STRING, IAC_A_NO_DIFF, "command that reloads it (default: HUP to the pid)" },
	{ "log", IAC_T_STRING, 0, "file on the host receiving the service's output" },
	{ "environment", IAC_T_MAP, 0, "environment variables for start" },
	{ "working_dir", IAC_T_STRING, 0, "directory on the host to start in (default /)" },
	{ "enabled", IAC_T_BOOL, 0, "systemd: start at boot" },
	{ "start_timeout", IAC_T_STRING, IAC_A_NO_DIFF, "how long start may take to show a live pid, default \"10s\"" },
	{ "stop_timeout", IAC_T_STRING, IAC_A_NO_DIFF, "how long to wait after TERM before KILL, default \"10s\"" },
	{ "restart_on", IAC_T_LIST, IAC_A_WATCH, "resources whose change restarts the service" },
	{ "reload_on", IAC_T_LIST, IAC_A_WATCH, "resources whose change reloads the service" },
	{ NULL, 0, 0, NULL },
};

static const char *restart_attrs[] = {
	"unit", "start", "pidfile", "log", "environment", "working_dir", "restart_on", NULL,
};

static const char *sget(const json_t *a, const char *k)
{
	return iac_json_str(a, k);
}

static int duration(double *ms, const json_t *a, const char *k, double dflt)
{
	const char *t = sget(a, k);
	*ms = dflt;
	if (t && iac_duration_parse(ms, t) < 0) {
		iac_err_prefix("attribute '%s'", k);
		return IAC_ERR;
	}
	return 0;
}

static int validate(const json_t *a)
{
	const char *unit = sget(a, "unit"), *start = sget(a, "start"), *pf = sget(a, "pidfile");
	double ms;
	if (unit && start)
		return iac_err_set("set either 'unit' (systemd) or 'start' and 'pidfile', not both");
	if (!unit && !start)
		return iac_err_set("set 'unit' (systemd) or 'start' and 'pidfile'");
	if (start && !pf)
		return iac_err_set("attribute 'pidfile' is required with 'start'");
	if (pf && pf[0] != '/')
		return iac_err_set("attribute 'pidfile': '%s' must be an absolute path", pf);
	if (duration(&ms, a, "start_timeout", 10e3) < 0 || duration(&ms, a, "stop_timeout", 10e3) < 0)
		return IAC_ERR;
	return 0;
}

/* Default log file: /var/log/iac-<resource name>.log. */
static char *log_path(const iac_rctx *ctx, const json_t *a)
{
	if (sget(a, "log"))
		return iac_xstrdup(sget(a, "log"));
	const char *addr = ctx->addr ? ctx->addr : "service";
	const char *dot = strrchr(addr, '.');
	iac_buf b = IAC_BUF_INIT;
	iac_buf_puts(&b, "/var/log/iac-");
	for (const char *p = dot ? dot + 1 : addr; *p; p++)
		iac_buf_putc(&b, isalnum((unsigned char)*p) || *p == '-' || *p == '_' ? *p : '_');
	iac_buf_puts(&b, ".log");
	return iac_buf_detach(&b);
}

static int svc_run(const iac_rctx *ctx, const json_t *a, const char *what, const char *cmd,
		   const char *shown, double timeout_ms)
{
	iac_ssh_conn *c;
	iac_ssh_result res;
	int rc;
	if (iac_ssh_host_conn(&c, ctx, a) < 0)
		return IAC_ERR;
	rc = iac_ssh_run_ok(&res, ctx, c, what, cmd, shown, NULL, 0, timeout_ms);
	iac_ssh_result_free(&res);
	return rc;
}

/* Where a start keeps the pid of the shell it started until the service
 * is up: LOG.start, quoted (caller frees). Beside the log, not the pidfile:
 * the log's directory must exist before the start (the started shell's
 * output goes there), while the pidfile's is often made by the start
 * command itself (install -d /run/x && daemon -P /run/x/pid). */
static char *starting_path(const iac_rctx *ctx, const json_t *a)
{
	char *log = log_path(ctx, a);
	char *path = iac_xasprintf("%s.start", log);
	char *q = iac_ssh_quote(path);
	free(path);
	free(log);
	return q;
}

/* Shell that sets p to the live pid in the pidfile, or fails. */
static void put_alive(iac_buf *b, const char *qpf)
{
	iac_buf_printf(b, "alive() { p=$(cat %s 2>/dev/null) && [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; }; ", qpf);
}

/* `K='V'; export K; ` for each entry of the service's environment. */
static int put_env(iac_buf *cmd, const json_t *env)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)env, k, v) {
		for (const char *p = k; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '_')
				return iac_err_set("attribute 'environment': '%s' is not a variable name", k);
		char *val = json_is_string(v) ? iac_xstrdup(json_string_value(v)) :
			json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		char *q = iac_ssh_quote(val);
		iac_buf_printf(cmd, "%s=%s; export %s; ", k, q, k);
		free(q);
		free(val);
	}
	return 0;
}

static int svc_start(const iac_rctx *ctx, const json_t *a)
{
	double start_ms;
	iac_buf cmd = IAC_BUF_INIT;
	int rc;

	duration(&start_ms, a, "start_timeout", 10e3);
	if (sget(a, "unit")) {
		char *qu = iac_ssh_quote(sget(a, "unit"));
		iac_buf_printf(&cmd, "[ -d /run/systemd/system ] || { echo 'the host does not run systemd: "
			       "use start and pidfile instead of unit' >&2; exit 3; }; ");
		if (json_is_true(json_object_get(a, "enabled")))
			iac_buf_printf(&cmd, "systemctl enable --quiet %s && ", qu);
		iac_buf_printf(&cmd, "systemctl start %s", qu);
		rc = svc_run(ctx, a, "starting a service", iac_buf_cstr(&cmd), NULL, start_ms + 30e3);
		free(qu);
		iac_buf_free(&cmd);
		return rc;
	}
	char *qpf = iac_ssh_quote(sget(a, "pidfile"));
	char *qt = starting_path(ctx, a);
	char *log = log_path(ctx, a);
	char *qlog = iac_ssh_quote(log);
	char *qstart = iac_ssh_quote(sget(a, "start"));
	const char *wd = sget(a, "working_dir");
	char *qwd = iac_ssh_quote(wd ? wd : "/");
	long tries = (long)(start_ms / 50) + 1;

	put_alive(&cmd, qpf);
	iac_buf_printf(&cmd, "alive && exit 0; rm -f %s; cd %s || exit 3; ", qpf, qwd);
	if ((rc = put_env(&cmd, json_object_get(a, "environment"))) < 0)
		goto done;
	/* setsid -f: detached from this channel's session and reparented to
	 * the host's init, which reaps it, so `kill -0` tells the truth.
	 * $$ before exec is the service's pid for foreground programs. */
	/* the started shell's pid goes to a file of this service's (next to
	 * the pidfile, not a new name in /tmp each time): whatever way this
	 * script ends, the trap or the next start or stop removes it; written
	 * with noclobber, so a link planted there after the rm is refused */
	iac_buf_printf(&cmd, "t=%s; rm -f \"$t\"; trap 'rm -f \"$t\"' EXIT; trap 'exit 3' HUP INT TERM; "
		       "setsid -f \"${SHELL:-/bin/sh}\" -c 'set -C; echo $$ > \"$0\" || exit 3; "
		       "exec \"${SHELL:-/bin/sh}\" -c \"$1\"' "
		       "\"$t\" %s </dev/null >>%s 2>&1 || { rm -f \"$t\"; exit 3; }; ", qt, qstart, qlog);
	/* success: a live pid in the pidfile. A started process still alive
	 * after 0.5 s with no pidfile is a foreground program: record its pid.
	 * Failure: nothing alive 2 s after the started process died (a daemon
	 * has written its pidfile by then), or start_timeout passed. */
	iac_buf_printf(&cmd, "i=0; d=0; sp=; while :; do "
		       "alive && { rm -f \"$t\"; exit 0; }; "
		       "[ -n \"$sp\" ] || sp=$(cat \"$t\" 2>/dev/null); "
		       "if [ -n \"$sp\" ] && kill -0 \"$sp\" 2>/dev/null; then "
		       "[ $i -ge 10 ] && [ ! -e %s ] && { echo \"$sp\" > %s; rm -f \"$t\"; exit 0; }; "
		       "elif [ -n \"$sp\" ]; then d=$((d+1)); fi; "
		       "i=$((i+1)); if [ $i -ge %ld ] || [ $d -ge 40 ]; then rm -f \"$t\"; "
		       "printf 'the service did not stay up: no live pid in %%s; last lines of %%s:\\n' %s %s >&2; "
		       "tail -n 15 %s >&2; exit 4; fi; "
		       "sleep 0.05; done",
		       qpf, qpf, tries, qpf, qlog, qlog);
	char *shown = iac_xasprintf("start %s", sget(a, "start"));
	rc = svc_run(ctx, a, "starting a service", iac_buf_cstr(&cmd), shown, start_ms + 30e3);
	free(shown);
done:
	iac_buf_free(&cmd);
	free(qpf);
	free(qt);
	free(log);
	free(qlog);
	free(qstart);
	free(qwd);
	return rc;
}

static int svc_stop(const iac_rctx *ctx, const json_t *a)
{
	double stop_ms;
	iac_buf cmd = IAC_BUF_INIT;
	int rc;

	duration(&stop_ms, a, "stop_timeout", 10e3);
	if (sget(a, "unit")) {
		char *qu = iac_ssh_quote(sget(a, "unit"));
		iac_buf_printf(&cmd, "[ -d /run/systemd/system ] || exit 0; systemctl stop %s", qu);
		if (json_is_true(json_object_get(a, "enabled")))
			iac_buf_printf(&cmd, " && systemctl disable --quiet %s", qu);
		rc = svc_run(ctx, a, "stopping a service", iac_buf_cstr(&cmd), NULL, stop_ms + 30e3);
		free(qu);
		iac_buf_free(&cmd);
		return rc;
	}
	char *qpf = iac_ssh_quote(sget(a, "pidfile"));
	char *qt = starting_path(ctx, a);
	long tries = (long)(stop_ms / 50) + 1;
	put_alive(&cmd, qpf);
	/* a start that was killed may have left its pid file behind */
	iac_buf_printf(&cmd, "rm -f %s; alive || { rm -f %s; exit 0; }; ", qt, qpf);
	free(qt);
	if (sget(a, "stop")) {
		char *q = iac_ssh_quote(sget(a, "stop"));
		iac_buf_printf(&cmd, "\"${SHELL:-/bin/sh}\" -c %s </dev/null >/dev/null 2>&1; ", q);
		free(q);
	} else {
		/* the whole process group when the service leads one (we started
		 * it with setsid), else just the pid */
		iac_buf_printf(&cmd, "kill -TERM -- -\"$p\" 2>/dev/null || kill -TERM \"$p\"; ");
	}
	iac_buf_printf(&cmd, "i=0; while kill -0 \"$p\" 2>/dev/null; do i=$((i+1)); "
		       "if [ $i -ge %ld ]; then kill -KILL -- -\"$p\" 2>/dev/null || kill -KILL \"$p\"; break; fi; "
		       "sleep 0.05; done; rm -f %s", tries, qpf);
	rc = svc_run(ctx, a, "stopping a service", iac_buf_cstr(&cmd), "stop (TERM, then KILL)", stop_ms + 30e3);
	iac_buf_free(&cmd);
	free(qpf);
	return rc;
}

static int svc_reload(const iac_rctx *ctx, const json_t *a)
{
	iac_buf cmd = IAC_BUF_INIT;
	int rc;
	if (sget(a, "unit")) {
		char *qu = iac_ssh_quote(sget(a, "unit"));
		iac_buf_printf(&cmd, "systemctl reload-or-restart %s", qu);
		free(qu);
	} else {
		char *qpf = iac_ssh_quote(sget(a, "pidfile"));
		put_alive(&cmd, qpf);
		iac_buf_printf(&cmd, "alive || { echo 'the service is not running' >&2; exit 3; }; ");
		if (sget(a, "reload")) {
			char *q = iac_ssh_quote(sget(a, "reload"));
			iac_buf_printf(&cmd, "exec \"${SHELL:-/bin/sh}\" -c %s </dev/null", q);
			free(q);
		} else {
			iac_buf_printf(&cmd, "kill -HUP \"$p\"");
		}
		free(qpf);
	}
	rc = svc_run(ctx, a, "reloading a service", iac_buf_cstr(&cmd),
		     sget(a, "reload") ? sget(a, "reload") : "reload (HUP)", iac_ssh_timeout(ctx));
	iac_buf_free(&cmd);
	return rc;
}

static int svc_alive(const iac_rctx *ctx, const json_t *a, int *alive)
{
	iac_buf cmd = IAC_BUF_INIT;
	iac_ssh_result res;
	iac_ssh_conn *c;
	int rc;

	if (iac_ssh_host_conn(&c, ctx, a) < 0)
		return IAC_ERR;
	if (sget(a, "unit")) {
		char *qu = iac_ssh_quote(sget(a, "unit"));
		iac_buf_printf(&cmd, "systemctl is-active --quiet %s", qu);
		free(qu);
	} else {
		char *qpf = iac_ssh_quote(sget(a, "pidfile"));
		put_alive(&cmd, qpf);
		iac_buf_puts(&cmd, "alive");
		free(qpf);
	}
	rc = iac_ssh_run(&res, ctx, c, "checking a service", iac_buf_cstr(&cmd), NULL, 0, iac_ssh_timeout(ctx));
	*alive = rc == 0 && res.status == 0;
	iac_ssh_result_free(&res);
	iac_buf_free(&cmd);
	return rc;
}

static int svc_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	if (iac_value_has_unknown(planned))
		return 0;
	return validate(planned);
}

static int svc_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	int alive;
	*out = NULL;
	if (svc_alive(ctx, prior, &alive) < 0)
		return IAC_ERR;
	if (alive)
		*out = json_deep_copy(prior);
	return 0;
}

static int svc_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	if (validate(planned) < 0 || svc_start(ctx, planned) < 0)
		return IAC_ERR;
	*out = json_deep_copy(planned);
	return 0;
}

static int changed(const json_t *a, const json_t *b, const char *k)
{
	const json_t *x = json_object_get(a, k), *y = json_object_get(b, k);
	if (!x && !y)
		return 0;
	if (!x || !y)
		return 1;
	return !iac_value_equal(x, y);
}

static int svc_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	int restart = !iac_host_same(json_object_get(prior, "host"), json_object_get(planned, "host"));
	int alive = 0;

	if (validate(planned) < 0)
		return IAC_ERR;
	for (size_t i = 0; restart_attrs[i]; i++)
		restart |= changed(prior, planned, restart_attrs[i]);
	if (restart) {
		/* stop the old one as it was described, start the new one */
		if (svc_stop(ctx, prior) < 0 || svc_start(ctx, planned) < 0)
			return IAC_ERR;
	} else {
		if (svc_alive(ctx, planned, &alive) < 0)
			return IAC_ERR;
		if (!alive) {
			if (svc_start(ctx, planned) < 0)
				return IAC_ERR;
		} else if (changed(prior, planned, "reload_on")) {
			if (svc_reload(ctx, planned) < 0)
				return IAC_ERR;
		}
		if (sget(planned, "unit") && changed(prior, planned, "enabled")) {
			char *qu = iac_ssh_quote(sget(planned, "unit"));
			char *cmd = iac_xasprintf("systemctl %s --quiet %s",
						  json_is_true(json_object_get(planned, "enabled")) ? "enable" : "disable", qu);
			int rc = svc_run(ctx, planned, "enabling a service", cmd, NULL, iac_ssh_timeout(ctx));
			free(cmd);
			free(qu);
			if (rc < 0)
				return IAC_ERR;
		}
	}
	*out = json_deep_copy(planned);
	return 0;
}

static int svc_remove(const iac_rctx *ctx, const json_t *prior)
{
	return svc_stop(ctx, prior);
}

const iac_rtype iac_ssh_service_type = {
	.gone_reason = "not running",
	.name = "ssh.service",
	.attrs = svc_attrs,
	.doc = "a long-running process on a host: systemd unit, or start command + pidfile",
	.plan = svc_plan,
	.read = svc_read,
	.create = svc_create,
	.update = svc_update,
	.remove = svc_remove,
	.probe = iac_ssh_probe,
};

/* ssh: provider table, configuration and helpers shared by the resource
 * types (see ssh.h). */
#include "providers/ssh/ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"

#define TAIL_MAX 2048

static const iac_rtype *const ssh_types[] = {
	&iac_ssh_file_type, &iac_ssh_directory_type, &iac_ssh_exec_type, &iac_ssh_service_type,
	&iac_ssh_facts_type, &iac_ssh_line_type, &iac_ssh_user_type, &iac_ssh_package_type, NULL,
};

/* Settings of provider "ssh" { ... }. */
static const char *const known_settings[] = {
	"user", "port", "private_key", "public_key", "passphrase", "known_hosts", "connect_timeout",
	"command_timeout", "accept_new", "max_channels", "sftp", "become", "become_password", NULL,
};

static int get_duration(double *out, const json_t *cfg, const char *key, double dflt)
{
	const json_t *v = json_object_get(cfg, key);
	*out = dflt;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_number(v)) {
		*out = json_number_value(v) * 1000.0;
		return 0;
	}
	if (!json_is_string(v) || iac_duration_parse(out, json_string_value(v)) < 0)
		return iac_err_set("provider \"ssh\": '%s' must be a duration like \"5s\"", key);
	return 0;
}

static const char *get_str(const json_t *cfg, const char *key)
{
	return iac_json_str(cfg, key);
}

static char *resolve_path(const char *p, const char *config_dir)
{
	if (p[0] == '~' && p[1] == '/') {
		const char *home = getenv("HOME");
		return iac_xasprintf("%s/%s", home ? home : "/root", p + 2);
	}
	return iac_path_join(config_dir ? config_dir : ".", p);
}

static int check_settings(const json_t *config)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)config, k, v) {
		int ok = 0;
		for (size_t i = 0; known_settings[i]; i++)
			ok |= !strcmp(k, known_settings[i]);
		if (!ok)
			return iac_err_set("provider \"ssh\": unknown setting '%s'", k);
	}
	return 0;
}

/* The provider's own settings: deadlines for its commands, SFTP. */
static int ssh_configure(void **out, const json_t *config, const char *config_dir)
{
	double ms;
	(void)config_dir;
	*out = NULL;
	if (check_settings(config) < 0 || get_duration(&ms, config, "command_timeout", 120000) < 0)
		return IAC_ERR;
	iac_ssh_pdata *pd = iac_xcalloc(1, sizeof(*pd));
	pd->command_timeout_ms = ms;
	pd->use_sftp = json_is_true(json_object_get(config, "sftp"));
	if (pd->use_sftp && json_is_true(json_object_get(config, "become"))) {
		free(pd);
		return iac_err_set("provider \"ssh\": sftp writes files as the login user, so it cannot be used with "
				   "become; leave sftp out (files then go through sudo like every command)");
	}
	*out = pd;
	return 0;
}

/* How the run's hosts are reached over SSH (iac/host), from the same
 * block: every provider's commands on a host share one connection. */
static int ssh_configure_hosts(iac_hosts *hosts, const json_t *config, const char *config_dir)
{
	iac_ssh_options o = { 0 };
	char *key = NULL, *pub = NULL, *kh = NULL;
	int rc = IAC_ERR;

	if (check_settings(config) < 0)
		return IAC_ERR;
	o.user = get_str(config, "user");
	if (json_is_integer(json_object_get(config, "port")))
		o.port = (int)json_integer_value(json_object_get(config, "port"));
	else if (json_is_real(json_object_get(config, "port")))
		o.port = (int)json_real_value(json_object_get(config, "port"));
	if (o.port < 0 || o.port > 65535) {
		iac_err_set("provider \"ssh\": port %d is out of range", o.port);
		goto done;
	}
	if (get_str(config, "private_key"))
		o.private_key = key = resolve_path(get_str(config, "private_key"), config_dir);
	if (get_str(config, "public_key"))
		o.public_key = pub = resolve_path(get_str(config, "public_key"), config_dir);
	if (get_str(config, "known_hosts"))
		o.known_hosts = kh = resolve_path(get_str(config, "known_hosts"), config_dir);
	o.passphrase = get_str(config, "passphrase");
	if (o.passphrase)
		iac_redact_add(o.passphrase);
	o.accept_new = json_is_true(json_object_get(config, "accept_new"));
	o.become = json_is_true(json_object_get(config, "become"));
	o.become_password = get_str(config, "become_password");
	if (o.become_password)
		iac_redact_add(o.become_password);
	if (get_duration(&o.connect_timeout_ms, config, "connect_timeout", 10000) < 0)
		goto done;
	if (json_is_integer(json_object_get(config, "max_channels")))
		o.max_channels = (int)json_integer_value(json_object_get(config, "max_channels"));
	rc = iac_hosts_set_ssh(hosts, &o);
done:
	free(key);
	free(pub);
	free(kh);
	return rc;
}

static void ssh_close(void *pdata)
{
	free(pdata);
}

static const iac_provider_flag ssh_flags[] = {
	{ "ssh-accept-new", "accept_new", "accept and record unknown SSH host keys" },
	{ NULL, NULL, NULL },
};

const iac_provider iac_provider_ssh = {
	.name = "ssh",
	.types = ssh_types,
	.configure = ssh_configure,
	.close = ssh_close,
	.configure_hosts = ssh_configure_hosts,
	.flags = ssh_flags,
};

/* ---- helpers for the resource types ---------------------------------- */

int iac_ssh_host_conn(iac_ssh_conn **out, const iac_rctx *ctx, const json_t *attrs)
{
	*out = NULL;
	if (!ctx->hosts)
		return iac_err_set("no hosts for this run (a provider call outside the runtime)");
	return iac_hosts_conn(out, ctx->hosts, json_object_get(attrs, "host"), ctx->cancel);
}

int iac_ssh_probe(const iac_rctx *ctx, const json_t *attrs)
{
	iac_ssh_conn *c;
	return iac_ssh_host_conn(&c, ctx, attrs);
}

double iac_ssh_timeout(const iac_rctx *ctx)
{
	iac_ssh_pdata *pd = ctx->pdata;
	return pd && pd->command_timeout_ms > 0 ? pd->command_timeout_ms : 120000;
}

static int run_shown(const iac_rctx *ctx, iac_ssh_conn *c, const char *what, const char *cmd,
		     const char *shown, const void *input, size_t input_len, double timeout_ms,
		     iac_ssh_result *res)
{
	int rc = iac_ssh_exec(res, c, cmd, input, input_len, timeout_ms, ctx->cancel);
	if (rc == IAC_ETIMEOUT)
		return iac_err_set("%s on %s timed out after %.0fs: %s", what, iac_ssh_conn_label(c),
				   timeout_ms / 1e3, shown);
	if (rc == IAC_EINTR)
		return iac_err_set("%s on %s interrupted", what, iac_ssh_conn_label(c));
	return rc < 0 ? IAC_ERR : 0;
}

int iac_ssh_run(iac_ssh_result *res, const iac_rctx *ctx, iac_ssh_conn *c, const char *what,
		const char *cmd, const void *input, size_t input_len, double timeout_ms)
{
	return run_shown(ctx, c, what, cmd, cmd, input, input_len, timeout_ms, res);
}

int iac_ssh_run_ok(iac_ssh_result *res, const iac_rctx *ctx, iac_ssh_conn *c, const char *what,
		   const char *cmd, const char *shown, const void *input, size_t input_len,
		   double timeout_ms)
{
	if (run_shown(ctx, c, what, cmd, shown ? shown : cmd, input, input_len, timeout_ms, res) < 0)
		return IAC_ERR;
	if (res->status == 0)
		return 0;
	iac_buf msg = IAC_BUF_INIT;
	if (res->signal)
		iac_buf_printf(&msg, "%s on %s was killed by signal %s: %s", what, iac_ssh_conn_label(c),
			       res->signal, shown ? shown : cmd);
	else
		iac_buf_printf(&msg, "%s on %s failed with exit status %d: %s", what, iac_ssh_conn_label(c),
			       res->status, shown ? shown : cmd);
	if (res->err_len)
		iac_buf_printf(&msg, "\n  stderr: %s", iac_proc_tail(res->err, TAIL_MAX));
	else if (res->out_len)
		iac_buf_printf(&msg, "\n  stdout: %s", iac_proc_tail(res->out, TAIL_MAX));
	iac_err_set("%s", iac_buf_cstr(&msg));
	iac_buf_free(&msg);
	return IAC_ERR;
}

int iac_ssh_stat_path(iac_host_stat_info *st, const iac_rctx *ctx, const json_t *attrs)
{
	memset(st, 0, sizeof(*st));
	if (!ctx->hosts)
		return iac_err_set("no hosts for this run (a provider call outside the runtime)");
	return iac_host_stat(st, ctx->hosts, json_object_get(attrs, "host"), iac_json_str(attrs, "path"),
			     iac_ssh_timeout(ctx), ctx->cancel);
}

typedef struct {
	const iac_rctx *ctx;
	iac_ssh_conn *c;
	iac_ssh_batch_fn run;
} batch_call;

static void run_batch_call(void **items, size_t n, void *ud)
{
	batch_call *b = ud;
	b->run(b->ctx, b->c, items, n);
}

void iac_ssh_batch(const iac_rctx *ctx, iac_ssh_conn *c, const char *kind, iac_ssh_batch_fn run, void *item)
{
	batch_call b = { ctx, c, run };
	iac_hosts_batch(ctx->hosts, c, kind, run_batch_call, &b, item);
}

int iac_ssh_check_path(const json_t *attrs)
{
	const char *p = iac_json_str(attrs, "path");
	if (!p)
		return iac_err_set("attribute 'path' is required");
	if (p[0] != '/')
		return iac_err_set("attribute 'path': '%s' must be absolute on the host", p);
	if (strchr(p, '\n') || strchr(p, '\t'))
		return iac_err_set("attribute 'path': newlines and tabs are not supported");
	return 0;
}

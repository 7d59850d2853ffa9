/* haproxy_cfg: blue/green HAProxy config rendering (see haproxy_cfg.h). */
#include "iac/deploy/haproxy_cfg.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"

#define PFX "haproxy config"

/* Names HAProxy accepts for proxies and servers. */
static int is_ident(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.:", *s))
			return 0;
	return 1;
}

/* Text pasted as one config word: no blanks, quotes, comments, escapes. */
static int is_word(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || strchr("\"'#\\", *s) || (unsigned char)*s == 0x7f)
			return 0;
	return 1;
}

static int check_keys(const json_t *obj, const char *where, const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(key, *a))
				ok = 1;
		if (!ok) {
			iac_buf list = IAC_BUF_INIT;
			for (const char *const *a = allowed; *a; a++)
				iac_buf_printf(&list, "%s%s", a == allowed ? "" : ", ", *a);
			iac_err_set(PFX ": unknown key '%s%s%s' (expected one of: %s)", where,
				    *where ? "." : "", key, iac_buf_cstr(&list));
			iac_buf_free(&list);
			return IAC_ERR;
		}
	}
	return 0;
}

static int get_obj(const json_t **out, const json_t *parent, const char *key, int required)
{
	json_t *v = json_object_get(parent, key);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return iac_err_set(PFX ": '%s' is missing", key);
		return 0;
	}
	if (!json_is_object(v))
		return iac_err_set(PFX ": '%s' must be an object, not %s", key,
				   json_is_array(v) ? "a list" : "a scalar");
	*out = v;
	return 0;
}

/* A string member; *out borrowed from the JSON, or dflt when absent. */
static int get_str(const char **out, const json_t *obj, const char *where, const char *key,
		   const char *dflt, int word)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	if (!v || json_is_null(v)) {
		*out = dflt;
		if (!dflt)
			return iac_err_set(PFX ": '%s%s%s' is missing", where, *where ? "." : "", key);
		return 0;
	}
	if (!json_is_string(v))
		return iac_err_set(PFX ": '%s%s%s' must be a string", where, *where ? "." : "", key);
	*out = json_string_value(v);
	if (word && !is_word(*out))
		return iac_err_set(PFX ": '%s%s%s' is '%s': it must be one word without blanks, "
				   "quotes or '#'", where, *where ? "." : "", key, *out);
	return 0;
}

static int get_int(long *out, const json_t *obj, const char *where, const char *key, long dflt,
		   long min, long max)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	if (!v || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	double d;
	if (json_is_integer(v))
		d = (double)json_integer_value(v);
	else if (json_is_real(v))
		d = json_real_value(v);
	else if (json_is_string(v)) {
		char *end;
		d = strtod(json_string_value(v), &end);
		if (end == json_string_value(v) || *end)
			d = NAN;
	} else
		d = NAN;
	if (isnan(d) || d != floor(d) || d < (double)min || d > (double)max)
		return iac_err_set(PFX ": '%s%s%s' must be an integer from %ld to %ld", where,
				   *where ? "." : "", key, min, max);
	*out = (long)d;
	return 0;
}

/* A duration ("500ms", "2s", or a number of seconds), rendered in ms. */
static int get_ms(long *out, const json_t *obj, const char *where, const char *key, long dflt_ms)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	double ms;
	if (!v || json_is_null(v)) {
		*out = dflt_ms;
		return 0;
	}
	if (json_is_number(v)) {
		ms = json_number_value(v) * 1e3;
	} else if (json_is_string(v)) {
		if (iac_duration_parse(&ms, json_string_value(v)) < 0) {
			iac_err_prefix(PFX ": '%s%s%s'", where, *where ? "." : "", key);
			return IAC_ERR;
		}
	} else {
		return iac_err_set(PFX ": '%s%s%s' must be a duration like \"500ms\"", where,
				   *where ? "." : "", key);
	}
	if (ms < 1 || ms > 24 * 3600e3)
		return iac_err_set(PFX ": '%s%s%s' must be between 1ms and 24h", where,
				   *where ? "." : "", key);
	*out = (long)(ms + 0.5);
	return 0;
}

static const char *server_colour(const json_t *srv)
{
	json_t *c = json_object_get(srv, "colour");
	if (!c)
		c = json_object_get(srv, "color");
	return json_is_string(c) ? json_string_value(c) : NULL;
}

size_t iac_haproxy_cfg_servers(const char **names, size_t max, const json_t *desc, const char *colour)
{
	json_t *servers = json_object_get(desc, "servers");
	size_t i, count = 0;
	json_t *srv;

	if (!json_is_array(servers) || !colour)
		return 0;
	json_array_foreach(servers, i, srv) {
		const char *c = server_colour(srv);
		json_t *name = json_object_get(srv, "name");
		if (c && !strcmp(c, colour) && json_is_string(name)) {
			if (count < max)
				names[count] = json_string_value(name);
			count++;
		}
	}
	return count;
}

static const char *const top_keys[] = {
	"frontend", "backend", "health", "servers", "live", "stats_socket", "state_file",
	"pidfile", "maxconn", "nbthread", "hard_stop_after", "timeouts", NULL
};
static const char *const frontend_keys[] = { "name", "bind", NULL };
static const char *const backend_keys[] = { "name", "balance", "slowstart", NULL };
static const char *const health_keys[] = { "path", "expect", "interval", "fast_interval", "rise", "fall",
					    "timeout", NULL };
static const char *const server_keys[] = { "name", "address", "port", "colour", "color", "weight", NULL };
static const char *const timeout_keys[] = { "connect", "client", "server", "http_keep_alive", "queue", NULL };
static const char *const balances[] = { "roundrobin", "static-rr", "leastconn", "first", "random", NULL };

void iac_haproxy_cfg_free(iac_haproxy_cfg *cfg)
{
	free(cfg->binds);
	free(cfg->servers);
	cfg->binds = NULL;
	cfg->servers = NULL;
	cfg->n_binds = cfg->n_servers = 0;
}

/* ---- parse: JSON description -> iac_haproxy_cfg ---- */

/* The top level's keys and sub-objects; only frontend is required. */
static int parse_sections(const json_t **fe, const json_t **be, const json_t **health,
			  const json_t **timeouts, const json_t *desc)
{
	if (!json_is_object(desc))
		return iac_err_set(PFX ": the description must be a JSON object");
	if (check_keys(desc, "", top_keys) < 0)
		return IAC_ERR;
	if (get_obj(fe, desc, "frontend", 1) < 0 || check_keys(*fe, "frontend", frontend_keys) < 0 ||
	    get_obj(be, desc, "backend", 0) < 0 || (*be && check_keys(*be, "backend", backend_keys) < 0) ||
	    get_obj(health, desc, "health", 0) < 0 ||
	    (*health && check_keys(*health, "health", health_keys) < 0) ||
	    get_obj(timeouts, desc, "timeouts", 0) < 0 ||
	    (*timeouts && check_keys(*timeouts, "timeouts", timeout_keys) < 0))
		return IAC_ERR;
	return 0;
}

/* Every scalar, in the order the errors are reported; defaults as
 * haproxy_cfg.h documents them. */
static int parse_scalars(iac_haproxy_cfg *c, const json_t *desc, const json_t *fe, const json_t *be,
			 const json_t *health, const json_t *timeouts)
{
	if (get_str(&c->frontend, fe, "frontend", "name", "web", 0) < 0 ||
	    get_str(&c->backend, be, "backend", "name", "app", 0) < 0 ||
	    get_str(&c->balance, be, "backend", "balance", "roundrobin", 1) < 0 ||
	    get_ms(&c->slowstart_ms, be, "backend", "slowstart", 0) < 0 ||
	    get_str(&c->health_path, health, "health", "path", "/health", 1) < 0 ||
	    get_int(&c->health_expect, health, "health", "expect", 200, 100, 599) < 0 ||
	    get_ms(&c->inter_ms, health, "health", "interval", 500) < 0 ||
	    get_ms(&c->fastinter_ms, health, "health", "fast_interval", 100) < 0 ||
	    get_int(&c->rise, health, "health", "rise", 2, 1, 100) < 0 ||
	    get_int(&c->fall, health, "health", "fall", 2, 1, 100) < 0 ||
	    get_ms(&c->check_timeout_ms, health, "health", "timeout", 1000) < 0 ||
	    get_str(&c->live, desc, "", "live", NULL, 1) < 0 ||
	    get_str(&c->stats_socket, desc, "", "stats_socket", "/run/haproxy/api.sock", 1) < 0 ||
	    get_str(&c->state_file, desc, "", "state_file", "/var/lib/haproxy/server-state", 1) < 0 ||
	    get_str(&c->pidfile, desc, "", "pidfile", "", 0) < 0 ||
	    get_int(&c->maxconn, desc, "", "maxconn", 0, 1, 10000000) < 0 ||
	    get_int(&c->nbthread, desc, "", "nbthread", 0, 1, 4096) < 0 ||
	    get_ms(&c->hard_stop_after_ms, desc, "", "hard_stop_after", 60000) < 0 ||
	    get_ms(&c->connect_ms, timeouts, "timeouts", "connect", 2000) < 0 ||
	    get_ms(&c->client_ms, timeouts, "timeouts", "client", 30000) < 0 ||
	    get_ms(&c->server_ms, timeouts, "timeouts", "server", 30000) < 0 ||
	    get_ms(&c->keep_alive_ms, timeouts, "timeouts", "http_keep_alive", 10000) < 0 ||
	    get_ms(&c->queue_ms, timeouts, "timeouts", "queue", 5000) < 0)
		return IAC_ERR;
	return 0;
}

/* What get_str() cannot say alone: names HAProxy accepts, a known
 * balance algorithm, an absolute health path. */
static int check_scalars(const iac_haproxy_cfg *c)
{
	if (!is_ident(c->frontend))
		return iac_err_set(PFX ": 'frontend.name' is '%s': use letters, digits, '-', '_', '.', ':'",
				   c->frontend);
	if (!is_ident(c->backend))
		return iac_err_set(PFX ": 'backend.name' is '%s': use letters, digits, '-', '_', '.', ':'",
				   c->backend);
	if (!strcmp(c->frontend, c->backend))
		return iac_err_set(PFX ": the frontend and the backend are both named '%s'", c->frontend);
	int bal_ok = 0;
	for (const char *const *b = balances; *b; b++)
		if (!strcmp(c->balance, *b))
			bal_ok = 1;
	if (!bal_ok)
		return iac_err_set(PFX ": 'backend.balance' is '%s': expected roundrobin, static-rr, "
				   "leastconn, first or random", c->balance);
	if (c->health_path[0] != '/')
		return iac_err_set(PFX ": 'health.path' is '%s': it must start with '/'", c->health_path);
	if (*c->pidfile && !is_word(c->pidfile))
		return iac_err_set(PFX ": 'pidfile' is '%s': it must be a path without blanks", c->pidfile);
	return 0;
}

/* frontend.bind: one ADDRESS:PORT or a non-empty list of them. */
static int parse_binds(iac_haproxy_cfg *c, const json_t *fe)
{
	json_t *binds = json_object_get(fe, "bind"), *b;
	size_t i;

	if (json_is_string(binds)) {
		if (!is_word(json_string_value(binds)))
			return iac_err_set(PFX ": 'frontend.bind' is '%s': expected ADDRESS:PORT",
					   json_string_value(binds));
		c->binds = iac_xcalloc(1, sizeof(*c->binds));
		c->binds[c->n_binds++] = json_string_value(binds);
		return 0;
	}
	if (!json_is_array(binds) || json_array_size(binds) == 0)
		return iac_err_set(PFX ": 'frontend.bind' is missing (ADDRESS:PORT or a list of them)");
	c->binds = iac_xcalloc(json_array_size(binds), sizeof(*c->binds));
	json_array_foreach(binds, i, b) {
		if (!json_is_string(b) || !is_word(json_string_value(b)))
			return iac_err_set(PFX ": 'frontend.bind[%zu]' must be ADDRESS:PORT", i);
		c->binds[c->n_binds++] = json_string_value(b);
	}
	return 0;
}

/* servers[i], checked against the servers before it (c->servers[0..i-1]). */
static int parse_server(iac_haproxy_cfg_server *out, const json_t *srv, size_t i, const iac_haproxy_cfg *c)
{
	char where[32];
	snprintf(where, sizeof(where), "servers[%zu]", i);
	if (!json_is_object(srv))
		return iac_err_set(PFX ": '%s' must be an object", where);
	if (check_keys(srv, where, server_keys) < 0 ||
	    get_str(&out->name, srv, where, "name", NULL, 0) < 0 ||
	    get_str(&out->address, srv, where, "address", NULL, 1) < 0 ||
	    get_int(&out->port, srv, where, "port", -1, 1, 65535) < 0 ||
	    get_int(&out->weight, srv, where, "weight", 1, 0, 256) < 0)
		return IAC_ERR;
	/* a "weight": null is still written out, as weight 1 */
	if (!json_object_get(srv, "weight"))
		out->weight = -1;
	if (out->port < 0)
		return iac_err_set(PFX ": '%s.port' is missing", where);
	if (!is_ident(out->name))
		return iac_err_set(PFX ": '%s.name' is '%s': use letters, digits, '-', '_', '.', ':'",
				   where, out->name);
	out->colour = server_colour(srv);
	if (!out->colour || !is_word(out->colour))
		return iac_err_set(PFX ": '%s.colour' is missing (the colour of server '%s', "
				   "e.g. \"blue\" or \"green\")", where, out->name);
	for (size_t j = 0; j < i; j++)
		if (!strcmp(c->servers[j].name, out->name))
			return iac_err_set(PFX ": server name '%s' is used twice (servers[%zu] and %s)",
					   out->name, j, where);
	return 0;
}

static int parse_servers(iac_haproxy_cfg *c, const json_t *desc)
{
	json_t *servers = json_object_get(desc, "servers"), *srv;
	size_t i;
	int live_found = 0;

	if (!json_is_array(servers) || json_array_size(servers) == 0)
		return iac_err_set(PFX ": 'servers' must be a non-empty list of {name, address, port, colour}");
	c->servers = iac_xcalloc(json_array_size(servers), sizeof(*c->servers));
	json_array_foreach(servers, i, srv) {
		if (parse_server(&c->servers[i], srv, i, c) < 0)
			return IAC_ERR;
		c->n_servers++;
		if (!strcmp(c->servers[i].colour, c->live))
			live_found = 1;
	}
	/* a config without live servers would take the service down */
	if (!live_found)
		return iac_err_set(PFX ": live colour '%s' has no servers (give servers a \"colour\": \"%s\")",
				   c->live, c->live);
	return 0;
}

int iac_haproxy_cfg_parse(iac_haproxy_cfg *out, const json_t *desc)
{
	const json_t *fe = NULL, *be = NULL, *health = NULL, *timeouts = NULL;

	memset(out, 0, sizeof(*out));
	if (parse_sections(&fe, &be, &health, &timeouts, desc) < 0 ||
	    parse_scalars(out, desc, fe, be, health, timeouts) < 0 ||
	    check_scalars(out) < 0 ||
	    parse_binds(out, fe) < 0 ||
	    parse_servers(out, desc) < 0) {
		iac_haproxy_cfg_free(out);
		return IAC_ERR;
	}
	return 0;
}

/* ---- format: iac_haproxy_cfg -> text (pure; why each line: haproxy_cfg.h) ---- */

static void format_global(iac_buf *b, const iac_haproxy_cfg *c)
{
	const char *sock = c->stats_socket;
	iac_buf_printf(b, "# Rendered by iac: blue/green frontend '%s' -> backend '%s', live colour '%s'.\n"
		       "# iac owns this file and re-renders it; runtime changes go through the API.\n",
		       c->frontend, c->backend, c->live);
	iac_buf_puts(b, "global\n\tmaster-worker\n");
	iac_buf_printf(b, "\tstats socket %s level admin expose-fd listeners%s\n", sock,
		       (sock[0] == '/' || iac_str_starts(sock, "unix@")) ? " mode 600" : "");
	iac_buf_puts(b, "\tstats timeout 30s\n");
	iac_buf_printf(b, "\tserver-state-file %s\n", c->state_file);
	iac_buf_printf(b, "\thard-stop-after %ldms\n", c->hard_stop_after_ms);
	if (*c->pidfile)
		iac_buf_printf(b, "\tpidfile %s\n", c->pidfile);
	if (c->maxconn > 0)
		iac_buf_printf(b, "\tmaxconn %ld\n", c->maxconn);
	if (c->nbthread > 0)
		iac_buf_printf(b, "\tnbthread %ld\n", c->nbthread);
}

static void format_defaults(iac_buf *b, const iac_haproxy_cfg *c)
{
	iac_buf_puts(b, "\ndefaults\n\tmode http\n"
		     "\toption idle-close-on-response\n"
		     "\toption redispatch 1\n"
		     "\tretries 3\n"
		     "\tretry-on conn-failure empty-response\n");
	iac_buf_printf(b, "\ttimeout connect %ldms\n\ttimeout client %ldms\n\ttimeout server %ldms\n"
		       "\ttimeout http-keep-alive %ldms\n\ttimeout http-request 10s\n"
		       "\ttimeout queue %ldms\n\ttimeout check %ldms\n",
		       c->connect_ms, c->client_ms, c->server_ms, c->keep_alive_ms, c->queue_ms,
		       c->check_timeout_ms);
	iac_buf_puts(b, "\tload-server-state-from-file global\n");
}

static void format_frontend(iac_buf *b, const iac_haproxy_cfg *c)
{
	iac_buf_printf(b, "\nfrontend %s\n", c->frontend);
	for (size_t i = 0; i < c->n_binds; i++)
		iac_buf_printf(b, "\tbind %s\n", c->binds[i]);
	iac_buf_printf(b, "\tdefault_backend %s\n", c->backend);
}

char *iac_haproxy_cfg_server_opts(const iac_haproxy_cfg *c)
{
	iac_buf b = IAC_BUF_INIT;
	/* fastinter: once a check fails, confirm the fall quickly */
	iac_buf_printf(&b, "check inter %ldms fastinter %ldms rise %ld fall %ld", c->inter_ms, c->fastinter_ms, c->rise,
		       c->fall);
	/* a server that comes back (a new instance, a restart) gets its share
	 * of new connections gradually instead of a cold flood */
	if (c->slowstart_ms > 0)
		iac_buf_printf(&b, " slowstart %ldms", c->slowstart_ms);
	return iac_buf_detach(&b);
}

static void format_backend(iac_buf *b, const iac_haproxy_cfg *c)
{
	iac_buf_printf(b, "\nbackend %s\n\tbalance %s\n", c->backend, c->balance);
	iac_buf_printf(b, "\toption httpchk GET %s\n\thttp-check expect status %ld\n", c->health_path,
		       c->health_expect);
	char *ds = iac_haproxy_cfg_server_opts(c);
	iac_buf_printf(b, "\tdefault-server %s\n", ds);
	free(ds);
	for (size_t i = 0; i < c->n_servers; i++) {
		const iac_haproxy_cfg_server *s = &c->servers[i];
		iac_buf_printf(b, "\tserver %s %s:%ld", s->name, s->address, s->port);
		if (s->weight >= 0)
			iac_buf_printf(b, " weight %ld", s->weight);
		if (strcmp(s->colour, c->live))
			iac_buf_printf(b, " disabled  # colour %s (standby)", s->colour);
		else
			iac_buf_printf(b, "  # colour %s (live)", s->colour);
		iac_buf_putc(b, '\n');
	}
}

char *iac_haproxy_cfg_format(const iac_haproxy_cfg *cfg)
{
	iac_buf b = IAC_BUF_INIT;
	format_global(&b, cfg);
	format_defaults(&b, cfg);
	format_frontend(&b, cfg);
	format_backend(&b, cfg);
	return iac_buf_detach(&b);
}

int iac_haproxy_cfg_render(char **out, const json_t *desc)
{
	iac_haproxy_cfg cfg;

	*out = NULL;
	if (iac_haproxy_cfg_parse(&cfg, desc) < 0)
		return IAC_ERR;
	*out = iac_haproxy_cfg_format(&cfg);
	iac_haproxy_cfg_free(&cfg);
	return 0;
}

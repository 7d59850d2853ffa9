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
static const char *const backend_keys[] = { "name", "balance", NULL };
static const char *const health_keys[] = { "path", "expect", "interval", "fast_interval", "rise", "fall",
					    "timeout", NULL };
static const char *const server_keys[] = { "name", "address", "port", "colour", "color", "weight", NULL };
static const char *const timeout_keys[] = { "connect", "client", "server", "http_keep_alive", "queue", NULL };
static const char *const balances[] = { "roundrobin", "static-rr", "leastconn", "first", "random", NULL };

int iac_haproxy_cfg_render(char **out, const json_t *desc)
{
	const json_t *fe, *be, *health, *timeouts;
	const char *fe_name = NULL, *be_name = NULL, *balance = NULL, *hpath = NULL, *live = NULL, *sock = NULL,
		   *state_file = NULL, *pidfile = "";
	long expect, inter, fastinter, rise, fall, hto, maxconn, nbthread, hard_stop;
	long t_connect, t_client, t_server, t_keepalive, t_queue;
	json_t *binds, *servers, *srv;
	iac_buf cfg = IAC_BUF_INIT;
	size_t i;
	int live_found = 0;

	*out = NULL;
	if (!json_is_object(desc))
		return iac_err_set(PFX ": the description must be a JSON object");
	if (check_keys(desc, "", top_keys) < 0)
		return IAC_ERR;
	if (get_obj(&fe, desc, "frontend", 1) < 0 || check_keys(fe, "frontend", frontend_keys) < 0 ||
	    get_obj(&be, desc, "backend", 0) < 0 || (be && check_keys(be, "backend", backend_keys) < 0) ||
	    get_obj(&health, desc, "health", 0) < 0 ||
	    (health && check_keys(health, "health", health_keys) < 0) ||
	    get_obj(&timeouts, desc, "timeouts", 0) < 0 ||
	    (timeouts && check_keys(timeouts, "timeouts", timeout_keys) < 0))
		return IAC_ERR;

	if (get_str(&fe_name, fe, "frontend", "name", "web", 0) < 0 ||
	    get_str(&be_name, be, "backend", "name", "app", 0) < 0 ||
	    get_str(&balance, be, "backend", "balance", "roundrobin", 1) < 0 ||
	    get_str(&hpath, health, "health", "path", "/health", 1) < 0 ||
	    get_int(&expect, health, "health", "expect", 200, 100, 599) < 0 ||
	    get_ms(&inter, health, "health", "interval", 500) < 0 ||
	    get_ms(&fastinter, health, "health", "fast_interval", 100) < 0 ||
	    get_int(&rise, health, "health", "rise", 2, 1, 100) < 0 ||
	    get_int(&fall, health, "health", "fall", 2, 1, 100) < 0 ||
	    get_ms(&hto, health, "health", "timeout", 1000) < 0 ||
	    get_str(&live, desc, "", "live", NULL, 1) < 0 ||
	    get_str(&sock, desc, "", "stats_socket", "/run/haproxy/api.sock", 1) < 0 ||
	    get_str(&state_file, desc, "", "state_file", "/var/lib/haproxy/server-state", 1) < 0 ||
	    get_str(&pidfile, desc, "", "pidfile", "", 0) < 0 ||
	    get_int(&maxconn, desc, "", "maxconn", 0, 1, 10000000) < 0 ||
	    get_int(&nbthread, desc, "", "nbthread", 0, 1, 4096) < 0 ||
	    get_ms(&hard_stop, desc, "", "hard_stop_after", 60000) < 0 ||
	    get_ms(&t_connect, timeouts, "timeouts", "connect", 2000) < 0 ||
	    get_ms(&t_client, timeouts, "timeouts", "client", 30000) < 0 ||
	    get_ms(&t_server, timeouts, "timeouts", "server", 30000) < 0 ||
	    get_ms(&t_keepalive, timeouts, "timeouts", "http_keep_alive", 10000) < 0 ||
	    get_ms(&t_queue, timeouts, "timeouts", "queue", 5000) < 0)
		return IAC_ERR;
	if (!is_ident(fe_name))
		return iac_err_set(PFX ": 'frontend.name' is '%s': use letters, digits, '-', '_', '.', ':'", fe_name);
	if (!is_ident(be_name))
		return iac_err_set(PFX ": 'backend.name' is '%s': use letters, digits, '-', '_', '.', ':'", be_name);
	if (!strcmp(fe_name, be_name))
		return iac_err_set(PFX ": the frontend and the backend are both named '%s'", fe_name);
	int bal_ok = 0;
	for (const char *const *b = balances; *b; b++)
		if (!strcmp(balance, *b))
			bal_ok = 1;
	if (!bal_ok)
		return iac_err_set(PFX ": 'backend.balance' is '%s': expected roundrobin, static-rr, "
				   "leastconn, first or random", balance);
	if (hpath[0] != '/')
		return iac_err_set(PFX ": 'health.path' is '%s': it must start with '/'", hpath);
	if (*pidfile && !is_word(pidfile))
		return iac_err_set(PFX ": 'pidfile' is '%s': it must be a path without blanks", pidfile);

	binds = json_object_get(fe, "bind");
	if (json_is_string(binds)) {
		if (!is_word(json_string_value(binds)))
			return iac_err_set(PFX ": 'frontend.bind' is '%s': expected ADDRESS:PORT",
					   json_string_value(binds));
	} else if (json_is_array(binds) && json_array_size(binds) > 0) {
		json_t *b;
		json_array_foreach(binds, i, b)
			if (!json_is_string(b) || !is_word(json_string_value(b)))
				return iac_err_set(PFX ": 'frontend.bind[%zu]' must be ADDRESS:PORT", i);
	} else {
		return iac_err_set(PFX ": 'frontend.bind' is missing (ADDRESS:PORT or a list of them)");
	}

	servers = json_object_get(desc, "servers");
	if (!json_is_array(servers) || json_array_size(servers) == 0)
		return iac_err_set(PFX ": 'servers' must be a non-empty list of {name, address, port, colour}");
	json_array_foreach(servers, i, srv) {
		char where[32];
		const char *name, *addr, *colour;
		long port, weight;
		snprintf(where, sizeof(where), "servers[%zu]", i);
		if (!json_is_object(srv))
			return iac_err_set(PFX ": '%s' must be an object", where);
		if (check_keys(srv, where, server_keys) < 0 ||
		    get_str(&name, srv, where, "name", NULL, 0) < 0 ||
		    get_str(&addr, srv, where, "address", NULL, 1) < 0 ||
		    get_int(&port, srv, where, "port", -1, 1, 65535) < 0 ||
		    get_int(&weight, srv, where, "weight", 1, 0, 256) < 0)
			return IAC_ERR;
		if (port < 0)
			return iac_err_set(PFX ": '%s.port' is missing", where);
		if (!is_ident(name))
			return iac_err_set(PFX ": '%s.name' is '%s': use letters, digits, '-', '_', '.', ':'",
					   where, name);
		colour = server_colour(srv);
		if (!colour || !is_word(colour))
			return iac_err_set(PFX ": '%s.colour' is missing (the colour of server '%s', "
					   "e.g. \"blue\" or \"green\")", where, name);
		for (size_t j = 0; j < i; j++) {
			json_t *other = json_object_get(json_array_get(servers, j), "name");
			if (json_is_string(other) && !strcmp(json_string_value(other), name))
				return iac_err_set(PFX ": server name '%s' is used twice (servers[%zu] and %s)",
						   name, j, where);
		}
		if (!strcmp(colour, live))
			live_found = 1;
	}
	if (!live_found)
		return iac_err_set(PFX ": live colour '%s' has no servers (give servers a \"colour\": \"%s\")",
				   live, live);

	/* ---- global ---- */
	iac_buf_printf(&cfg, "# Rendered by iac: blue/green frontend '%s' -> backend '%s', live colour '%s'.\n"
		       "# iac owns this file and re-renders it; runtime changes go through the API.\n",
		       fe_name, be_name, live);
	iac_buf_puts(&cfg, "global\n\tmaster-worker\n");
	iac_buf_printf(&cfg, "\tstats socket %s level admin expose-fd listeners%s\n", sock,
		       (sock[0] == '/' || iac_str_starts(sock, "unix@")) ? " mode 600" : "");
	iac_buf_puts(&cfg, "\tstats timeout 30s\n");
	iac_buf_printf(&cfg, "\tserver-state-file %s\n", state_file);
	iac_buf_printf(&cfg, "\thard-stop-after %ldms\n", hard_stop);
	if (*pidfile)
		iac_buf_printf(&cfg, "\tpidfile %s\n", pidfile);
	if (maxconn > 0)
		iac_buf_printf(&cfg, "\tmaxconn %ld\n", maxconn);
	if (nbthread > 0)
		iac_buf_printf(&cfg, "\tnbthread %ld\n", nbthread);

	/* ---- defaults ---- */
	iac_buf_puts(&cfg, "\ndefaults\n\tmode http\n"
		     "\toption idle-close-on-response\n"
		     "\toption redispatch 1\n"
		     "\tretries 3\n"
		     "\tretry-on conn-failure empty-response\n");
	iac_buf_printf(&cfg, "\ttimeout connect %ldms\n\ttimeout client %ldms\n\ttimeout server %ldms\n"
		       "\ttimeout http-keep-alive %ldms\n\ttimeout http-request 10s\n"
		       "\ttimeout queue %ldms\n\ttimeout check %ldms\n",
		       t_connect, t_client, t_server, t_keepalive, t_queue, hto);
	iac_buf_puts(&cfg, "\tload-server-state-from-file global\n");

	/* ---- frontend ---- */
	iac_buf_printf(&cfg, "\nfrontend %s\n", fe_name);
	if (json_is_string(binds)) {
		iac_buf_printf(&cfg, "\tbind %s\n", json_string_value(binds));
	} else {
		json_t *b;
		json_array_foreach(binds, i, b)
			iac_buf_printf(&cfg, "\tbind %s\n", json_string_value(b));
	}
	iac_buf_printf(&cfg, "\tdefault_backend %s\n", be_name);

	/* ---- backend ---- */
	iac_buf_printf(&cfg, "\nbackend %s\n\tbalance %s\n", be_name, balance);
	iac_buf_printf(&cfg, "\toption httpchk GET %s\n\thttp-check expect status %ld\n", hpath, expect);
	/* fastinter: once a check fails, confirm the fall quickly */
	iac_buf_printf(&cfg, "\tdefault-server check inter %ldms fastinter %ldms rise %ld fall %ld\n",
		       inter, fastinter, rise, fall);
	json_array_foreach(servers, i, srv) {
		const char *colour = server_colour(srv);
		long weight = 1, port = 0;
		/* both were validated above */
		get_int(&weight, srv, "", "weight", 1, 0, 256);
		get_int(&port, srv, "", "port", 0, 1, 65535);
		iac_buf_printf(&cfg, "\tserver %s %s:%ld", iac_json_str(srv, "name"),
			       iac_json_str(srv, "address"), port);
		if (json_object_get(srv, "weight"))
			iac_buf_printf(&cfg, " weight %ld", weight);
		if (strcmp(colour, live))
			iac_buf_printf(&cfg, " disabled  # colour %s (standby)", colour);
		else
			iac_buf_printf(&cfg, "  # colour %s (live)", colour);
		iac_buf_putc(&cfg, '\n');
	}
	*out = iac_buf_detach(&cfg);
	return 0;
}

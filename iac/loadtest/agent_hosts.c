/* -agents hosts{role="loadgen"}: the agents picked from the topology, with
 * the selector operators already write in main.lua, instead of a list of
 * addresses. The topology (main.lua of the current directory) is loaded as
 * for `iac validate` (variables may be missing); its hosts whose labels
 * match every KEY = "VALUE" of the selector become user@address[:port].
 * How to log in (user, private key, known_hosts) is what the topology's
 * run would use: its hosts layer, as its providers configure it
 * (iac_hosts_ssh), so this file names no provider. */
#include "iac/loadtest/agent.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/host/host.h"
#include "iac/load/config.h"
#include "iac/provider/runtime.h"

int iac_lt_is_selector(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	if (strncmp(s, "hosts", 5))
		return 0;
	s += 5;
	while (isspace((unsigned char)*s))
		s++;
	return *s == '{';
}

static const char *skip(const char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

/* hosts{ k = "v", ... } into an object k -> v. 0, or -1 with a message. */
static int parse_selector(json_t **out, const char *sel)
{
	const char *p = skip(skip(sel) + 5) + 1;   /* past "hosts" and "{" */
	*out = json_object();
	for (;;) {
		p = skip(p);
		if (*p == '}' && !*skip(p + 1))
			return 0;
		const char *k = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		size_t kl = (size_t)(p - k);
		p = skip(p);
		if (!kl || *p != '=')
			break;
		p = skip(p + 1);
		char q = *p;
		if (q != '"' && q != '\'')
			break;
		const char *v = ++p;
		while (*p && *p != q)
			p++;
		if (!*p)
			break;
		char *key = iac_xstrndup(k, kl);
		json_object_set_new(*out, key, json_stringn(v, (size_t)(p - v)));
		free(key);
		p = skip(p + 1);
		if (*p == ',')
			p++;
	}
	json_decref(*out);
	*out = NULL;
	return iac_err_set("flag '-agents': cannot read '%s': expected hosts{ KEY = \"VALUE\", ... } (as in main.lua) or "
			   "user@address,...", sel);
}

static int matches(const json_t *host, const json_t *want)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)want, k, v) {
		const char *have = iac_json_str(json_object_get(host, "labels"), k);
		if (!have && !strcmp(k, "name"))
			have = iac_json_str(host, "name");
		if (!have || strcmp(have, json_string_value(v)))
			return 0;
	}
	return 1;
}

static char *dup_or_null(const char *s)
{
	return s ? iac_xstrdup(s) : NULL;
}

int iac_lt_agents_select(iac_strlist *names, char **ssh_key, char **known_hosts, const char *selector,
			 const char *dir)
{
	json_t *want = NULL;
	iac_config *cfg = NULL;
	iac_providers *pv = NULL;
	iac_ssh_options ssh;
	iac_load_opts o = { .allow_missing_vars = 1 };
	int rc = IAC_ERR;
	*ssh_key = *known_hosts = NULL;
	if (parse_selector(&want, selector) < 0)
		return IAC_ERR;
	if (iac_config_load(&cfg, dir, &o) < 0) {
		iac_err_prefix("flag '-agents %s' picks hosts from main.lua in '%s'", selector, dir);
		goto done;
	}
	/* the providers only say how hosts are reached: nothing connects */
	pv = iac_providers_new(cfg->providers, NULL, cfg->dir);
	if (iac_hosts_ssh(&ssh, iac_providers_hosts(pv)) < 0)
		goto done;
	const char *user = ssh.user ?: "root";
	const char *name;
	json_t *h;
	json_object_foreach(cfg->hosts, name, h) {
		if (!matches(h, want) || !iac_json_str(h, "address"))
			continue;
		const json_t *port = json_object_get(h, "port");
		char *a = json_is_integer(port) && json_integer_value(port) != 22
				  ? iac_xasprintf("%s@%s:%lld", iac_json_str(h, "user") ?: user, iac_json_str(h, "address"),
						  (long long)json_integer_value(port))
				  : iac_xasprintf("%s@%s", iac_json_str(h, "user") ?: user, iac_json_str(h, "address"));
		iac_strlist_push(names, a);
		free(a);
	}
	if (!names->n) {
		iac_err_set("flag '-agents %s': no host in main.lua ('%s') has those labels", selector, dir);
		goto done;
	}
	*ssh_key = dup_or_null(ssh.private_key);
	*known_hosts = dup_or_null(ssh.known_hosts);
	rc = 0;
done:
	iac_providers_free(pv);
	json_decref(want);
	iac_config_free(cfg);
	return rc;
}

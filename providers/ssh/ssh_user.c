/* ssh.user: a local user on a host, like Ansible's user module: uid, shell,
 * home, supplementary groups (exactly these; they must exist), and the
 * authorized SSH keys (exactly these, in ~/.ssh/authorized_keys, 0600; a
 * user with keys gets the password "*" instead of useradd's locked "!", so
 * sshd also lets keys in where it does not use PAM).
 * Read back with getent and id, so a user changed or deleted by hand is
 * drift. Destroy runs userdel (with the home directory when remove_home). */
#include "providers/ssh/ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

static const iac_attr user_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the host" },
	{ "name", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "login name" },
	{ "uid", IAC_T_NUMBER, IAC_A_FORCE_NEW, "user id (default: the next free one)" },
	{ "shell", IAC_T_STRING, 0, "login shell (default: useradd's)" },
	{ "home", IAC_T_STRING, 0, "home directory (default /home/NAME); made when the user is" },
	{ "system", IAC_T_BOOL, IAC_A_FORCE_NEW, "a system user (useradd -r)" },
	{ "groups", IAC_T_LIST, 0, "supplementary groups, exactly these (they must exist)" },
	{ "authorized_keys", IAC_T_LIST, 0, "public keys allowed to log in as the user, exactly these" },
	{ "remove_home", IAC_T_BOOL, IAC_A_NO_DIFF, "destroy deletes the home directory too (default false)" },
	{ NULL, 0, 0, NULL },
};

static int name_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 32 || *s == '-')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

static int user_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	const json_t *n = json_object_get(planned, "name"), *g = json_object_get(planned, "groups"), *v;
	size_t i;
	if (json_is_string(n) && !name_ok(json_string_value(n)))
		return iac_err_set("attribute 'name': '%s' is not a user name (lower-case letters, digits, '_', '-', '.')",
				   json_string_value(n));
	json_array_foreach(g, i, v)
		if (json_is_string(v) && !name_ok(json_string_value(v)))
			return iac_err_set("attribute 'groups': '%s' is not a group name", json_string_value(v));
	json_array_foreach(json_object_get(planned, "authorized_keys"), i, v)
		if (json_is_string(v) && strchr(json_string_value(v), '\n'))
			return iac_err_set("attribute 'authorized_keys': a key holds a newline (one key per item)");
	return 0;
}

static int run(const iac_rctx *ctx, const json_t *attrs, const char *what, const char *cmd, char **out)
{
	iac_ssh_conn *c;
	iac_ssh_result res;
	if (out)
		*out = NULL;
	if (iac_ssh_host_conn(&c, ctx, attrs) < 0)
		return IAC_ERR;
	int rc = iac_ssh_run_ok(&res, ctx, c, what, cmd, NULL, NULL, 0, iac_ssh_timeout(ctx));
	if (rc == 0 && out)
		*out = iac_xstrndup(res.out, res.out_len);
	iac_ssh_result_free(&res);
	return rc;
}

/* Sorted copy of a list of strings (groups compare as sets). */
static json_t *sorted(const json_t *list)
{
	json_t *out = json_array(), *v;
	size_t i, n = json_array_size(list);
	const char **s = iac_xcalloc(n + 1, sizeof(char *));
	json_array_foreach(list, i, v)
		s[i] = json_string_value(v) ?: "";
	for (size_t a = 1; a < n; a++)
		for (size_t b = a; b > 0 && strcmp(s[b - 1], s[b]) > 0; b--) {
			const char *t = s[b];
			s[b] = s[b - 1];
			s[b - 1] = t;
		}
	for (i = 0; i < n; i++)
		json_array_append_new(out, json_string(s[i]));
	free(s);
	return out;
}

/* Parse "uid:home:shell\nprimary\ngroup group...\n--keys--\nkey lines". */
static json_t *parse_read(const json_t *prior, char *text)
{
	char *save = NULL, *l1 = strtok_r(text, "\n", &save);
	char *primary = strtok_r(NULL, "\n", &save), *groups = strtok_r(NULL, "\n", &save);
	if (!l1 || !primary)
		return NULL;
	char *uid = l1, *home = strchr(uid, ':'), *shell = home ? strchr(home + 1, ':') : NULL;
	if (!home || !shell)
		return NULL;
	*home++ = '\0';
	*shell++ = '\0';
	json_t *out = json_deep_copy(prior), *g = json_array(), *keys = json_array();
	/* what the configuration does not set is not managed: left out, so
	 * useradd's defaults are not drift */
	if (json_object_get(prior, "uid"))
		json_object_set_new(out, "uid", json_integer(atoll(uid)));
	if (json_object_get(prior, "home"))
		json_object_set_new(out, "home", json_string(home));
	if (json_object_get(prior, "shell"))
		json_object_set_new(out, "shell", json_string(shell));
	char *gsave = NULL;
	for (char *t = strtok_r(groups && strcmp(groups, "--keys--") ? groups : "", " ", &gsave); t;
	     t = strtok_r(NULL, " ", &gsave))
		if (strcmp(t, primary))
			json_array_append_new(g, json_string(t));
	int in_keys = groups && !strcmp(groups, "--keys--");
	for (char *l = strtok_r(NULL, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strcmp(l, "--keys--"))
			in_keys = 1;
		else if (in_keys && *l)
			json_array_append_new(keys, json_string(l));
	}
	const json_t *want = json_object_get(prior, "groups");
	if (json_is_array(want)) {
		/* a set: the configured order when the members are the same */
		json_t *a = sorted(g), *b = sorted(want);
		json_object_set_new(out, "groups", json_equal(a, b) ? json_deep_copy(want) : json_incref(a));
		json_decref(a);
		json_decref(b);
	}
	if (json_is_array(json_object_get(prior, "authorized_keys")))
		json_object_set(out, "authorized_keys", keys);
	json_decref(g);
	json_decref(keys);
	return out;
}

static int user_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	char *text = NULL, *q = iac_ssh_quote(iac_json_str(prior, "name") ?: "");
	char *cmd = iac_xasprintf("e=$(getent passwd %s) || exit 0; echo \"$e\" | cut -d: -f3,6,7; id -gn %s; "
				  "id -nG %s; echo --keys--; h=$(echo \"$e\" | cut -d: -f6); "
				  "cat \"$h/.ssh/authorized_keys\" 2>/dev/null; exit 0", q, q, q);
	*out = NULL;
	int rc = run(ctx, prior, "reading a user", cmd, &text);
	if (rc == 0 && text && *text)
		*out = parse_read(prior, text);
	free(text);
	free(cmd);
	free(q);
	return rc;
}

/* Shell that makes the key file hold exactly the configured keys. */
static void put_keys(iac_buf *b, const json_t *attrs, const char *qname)
{
	const json_t *keys = json_object_get(attrs, "authorized_keys"), *k;
	size_t i;
	if (!json_is_array(keys))
		return;
	iac_buf_printf(b, " && h=$(getent passwd %s | cut -d: -f6) && g=$(id -gn %s) && install -d -m 0700 -o %s "
		       "-g \"$g\" \"$h/.ssh\" && { :", qname, qname, qname);
	json_array_foreach(keys, i, k) {
		char *q = iac_ssh_quote(json_string_value(k) ?: "");
		iac_buf_printf(b, "; printf '%%s\\n' %s", q);
		free(q);
	}
	iac_buf_printf(b, "; } | install -m 0600 -o %s -g \"$g\" /dev/stdin \"$h/.ssh/authorized_keys\"", qname);
	/* useradd locks the password ("!"), and sshd without PAM refuses keys
	 * of locked accounts: "*" has no password either, but is not locked */
	iac_buf_printf(b, " && { [ \"$(getent shadow %s | cut -d: -f2)\" != '!' ] || usermod -p '*' %s; }", qname, qname);
}

static void opts(iac_buf *b, const json_t *attrs, int create)
{
	const char *shell = iac_json_str(attrs, "shell"), *home = iac_json_str(attrs, "home");
	const json_t *g = json_object_get(attrs, "groups"), *v;
	size_t i;
	if (shell) {
		char *q = iac_ssh_quote(shell);
		iac_buf_printf(b, " -s %s", q);
		free(q);
	}
	if (home) {
		char *q = iac_ssh_quote(home);
		iac_buf_printf(b, create ? " -d %s" : " -d %s -m", q);
		free(q);
	}
	if (json_is_array(g)) {
		iac_buf b2 = IAC_BUF_INIT;
		json_array_foreach(g, i, v)
			iac_buf_printf(&b2, "%s%s", i ? "," : "", json_string_value(v) ?: "");
		char *q = iac_ssh_quote(iac_buf_cstr(&b2));
		iac_buf_printf(b, " -G %s", q);
		free(q);
		iac_buf_free(&b2);
	}
}

static int user_apply(const iac_rctx *ctx, json_t **out, const json_t *planned, int create)
{
	char *q = iac_ssh_quote(iac_json_str(planned, "name"));
	iac_buf cmd = IAC_BUF_INIT;
	if (create) {
		iac_buf_puts(&cmd, "useradd -m");
		if (json_is_true(json_object_get(planned, "system")))
			iac_buf_puts(&cmd, " -r");
		if (json_is_number(json_object_get(planned, "uid")))
			iac_buf_printf(&cmd, " -u %lld", (long long)json_number_value(json_object_get(planned, "uid")));
		opts(&cmd, planned, 1);
		iac_buf_printf(&cmd, " %s", q);
	} else if (json_object_get(planned, "shell") || json_object_get(planned, "home") ||
		   json_is_array(json_object_get(planned, "groups"))) {
		iac_buf_puts(&cmd, "usermod");
		opts(&cmd, planned, 0);
		iac_buf_printf(&cmd, " %s", q);
	} else {
		iac_buf_puts(&cmd, ":");   /* only the keys change */
	}
	put_keys(&cmd, planned, q);
	int rc = run(ctx, planned, create ? "creating a user" : "changing a user", iac_buf_cstr(&cmd), NULL);
	iac_buf_free(&cmd);
	free(q);
	if (rc < 0)
		return IAC_ERR;
	/* what the host made of it (uid, defaults) */
	return user_read(ctx, out, planned);
}

static int user_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return user_apply(ctx, out, planned, 1);
}

static int user_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	return user_apply(ctx, out, planned, 0);
}

static int user_remove(const iac_rctx *ctx, const json_t *prior)
{
	char *q = iac_ssh_quote(iac_json_str(prior, "name") ?: "");
	char *cmd = iac_xasprintf("getent passwd %s >/dev/null || exit 0; userdel %s%s", q,
				  json_is_true(json_object_get(prior, "remove_home")) ? "-r " : "", q);
	int rc = run(ctx, prior, "removing a user", cmd, NULL);
	free(cmd);
	free(q);
	return rc;
}

const iac_rtype iac_ssh_user_type = {
	.name = "ssh.user",
	.attrs = user_attrs,
	.doc = "a local user on a host: uid, shell, home, groups and authorized keys",
	.plan = user_plan,
	.read = user_read,
	.create = user_create,
	.update = user_update,
	.remove = user_remove,
	.probe = iac_ssh_probe,
	.import_attr = "name",
};

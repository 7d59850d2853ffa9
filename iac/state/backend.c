/* backend: local `.iac/` or etcd, behind one set of calls (see backend.h). */
#include "iac/state/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/state/etcd_store.h"
#include "iac/state/lock.h"

struct iac_backend {
	char *dir;
	char *kind;            /* "local" / "etcd" */
	char *label;
	json_t *settings;      /* resolved, without credentials */
	char *username, *password;
	iac_lock *lk;          /* local */
	iac_etcdb *etcd;       /* etcd */
	char *command;
};

static const char *const KEYS[] = {
	"endpoints", "prefix", "lock_ttl", "timeout", "username", "password",
	"cacert_path", "cert_path", "key_path", "history_remote", "history", NULL,
};
#define N_KEYS (sizeof(KEYS) / sizeof(*KEYS) - 1)

static int known_key(const char *k)
{
	for (size_t i = 0; KEYS[i]; i++)
		if (!strcmp(KEYS[i], k))
			return 1;
	return 0;
}

/* "WHERE: " when there is a where (the loader adds its own). */
static const char *at(char *buf, size_t len, const char *where)
{
	snprintf(buf, len, "%s%s", where && *where ? where : "", where && *where ? ": " : "");
	return buf;
}

static int unknown_key(const char *where, const char *k)
{
	char w[320];
	const char *near = iac_suggest(k, KEYS, N_KEYS);
	return iac_err_set("%sbackend \"etcd\" has no setting '%s'%s%s%s (settings: endpoints, prefix, lock_ttl, "
			   "timeout, username, password, cacert_path, cert_path, key_path, history)",
			   at(w, sizeof(w), where), k, near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
}

int iac_backend_check_settings(const json_t *settings, const char *where)
{
	const char *k;
	json_t *v;
	char w[320];
	at(w, sizeof(w), where);
	json_object_foreach((json_t *)settings, k, v) {
		if (!known_key(k))
			return unknown_key(where, k);
		if (!strcmp(k, "endpoints") && !json_is_string(v) && !iac_value_is_string_list(v))
			return iac_err_set("%sbackend endpoints: a list of URLs (\"http://10.0.0.1:2379\")", w);
		if (!strcmp(k, "history")) {
			if (!json_is_object(v) || json_object_size(v) != 1 || !json_is_string(json_object_get(v, "remote")))
				return iac_err_set("%sbackend history: expected history = { remote = \"URL\" } (a git "
						   "remote: file:///srv/git/state.git or ssh://git@host/srv/state.git)", w);
			continue;
		}
		int dur = !strcmp(k, "lock_ttl") || !strcmp(k, "timeout");
		if (strcmp(k, "endpoints") && !json_is_string(v) && !(json_is_number(v) && dur))
			return iac_err_set("%sbackend setting '%s' must be a string", w, k);
	}
	return 0;
}

/* .iac/backend.json, or NULL. */
static json_t *remembered(const char *dir)
{
	char *p = iac_xasprintf("%s/.iac/backend.json", dir);
	char *text = NULL;
	size_t len;
	json_t *j = NULL;
	if (iac_file_read_flags(&text, &len, NULL, p, O_NOFOLLOW) == 0)
		j = json_loadb(text, len, 0, NULL);
	iac_err_clear();
	free(text);
	free(p);
	return json_is_object(j) ? j : (json_decref(j), NULL);
}

/* Is there state in .iac/ (a snapshot or a journal)? */
static int local_state_exists(const char *dir)
{
	char *s = iac_xasprintf("%s/.iac/state.json", dir), *j = iac_xasprintf("%s/.iac/state.journal", dir);
	int yes = access(s, F_OK) == 0 || access(j, F_OK) == 0;
	free(s);
	free(j);
	return yes;
}

/* -backend-config KEY=VALUE over settings (credentials go aside). */
static int apply_overrides(iac_backend *b, json_t *set, const iac_strlist *ov)
{
	for (size_t i = 0; ov && i < ov->n; i++) {
		const char *kv = ov->items[i], *eq = strchr(kv, '=');
		if (!eq || eq == kv)
			return iac_err_set("-backend-config '%s': expected KEY=VALUE", eq ? "=..." : kv);
		char *k = iac_xstrndup(kv, (size_t)(eq - kv));
		int rc = 0;
		if (!known_key(k))
			rc = unknown_key("-backend-config", k);
		else if (!strcmp(k, "password")) {
			free(b->password);
			b->password = iac_xstrdup(eq + 1);
			iac_redact_add(b->password);
		} else if (!strcmp(k, "username")) {
			free(b->username);
			b->username = iac_xstrdup(eq + 1);
		} else
			json_object_set_new(set, k, json_string(eq + 1));
		free(k);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The backend block's settings into set (checked keys; credentials and
 * history are sorted out by take_credentials()). */
static int apply_decl(json_t *set, const json_t *decl)
{
	char where[300];
	snprintf(where, sizeof(where), "%s:%lld", iac_json_str(decl, "file") ?: "main.lua",
		 (long long)json_integer_value(json_object_get(decl, "line")));
	const json_t *settings = json_object_get(decl, "settings");
	if (iac_backend_check_settings(settings, where) < 0)
		return IAC_ERR;
	json_object_update(set, (json_t *)settings);
	return 0;
}

static void take_env(iac_backend *b)
{
	const char *u = getenv("ETCDV3_USERNAME"), *p = getenv("ETCDV3_PASSWORD");
	if (u && *u && !b->username)
		b->username = iac_xstrdup(u);
	if (p && *p && !b->password) {
		b->password = iac_xstrdup(p);
		iac_redact_add(p);
	}
}

/* endpoints as a comma-separated string, whatever form it came in. */
static char *endpoints_text(const json_t *v)
{
	if (json_is_string(v))
		return iac_xstrdup(json_string_value(v));
	iac_buf w = IAC_BUF_INIT;
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e) {
		if (i)
			iac_buf_putc(&w, ',');
		iac_buf_puts(&w, json_string_value(e) ?: "");
	}
	return w.ptr ? w.ptr : iac_xstrdup("");
}

static int duration_of(double *out, const json_t *set, const char *key)
{
	const json_t *v = json_object_get(set, key);
	*out = 0;
	if (!v)
		return 0;
	if (json_is_number(v)) {
		*out = json_number_value(v) * 1000;
		return 0;
	}
	if (!json_is_string(v) || iac_duration_parse(out, json_string_value(v)) < 0)
		return iac_err_set("backend \"etcd\": %s must be a duration like \"15s\"", key);
	return 0;
}

static int connect_etcd(iac_backend *b)
{
	iac_etcdb_opts o = { 0 };
	const json_t *set = b->settings;
	char *eps = endpoints_text(json_object_get(set, "endpoints"));
	int rc;

	if (!*eps) {
		free(eps);
		return iac_err_set("backend \"etcd\" has no endpoints: set endpoints = { \"http://HOST:2379\", ... } "
				   "in main.lua or pass -backend-config endpoints=URL,URL");
	}
	if (duration_of(&o.lock_ttl_ms, set, "lock_ttl") < 0 || duration_of(&o.timeout_ms, set, "timeout") < 0) {
		free(eps);
		return IAC_ERR;
	}
	o.endpoints = eps;
	o.prefix = iac_json_str(set, "prefix");
	o.username = b->username;
	o.password = b->password;
	o.cacert = iac_json_str(set, "cacert_path");
	o.cert = iac_json_str(set, "cert_path");
	o.key = iac_json_str(set, "key_path");
	rc = iac_etcdb_open(&b->etcd, &o);
	free(b->label);
	b->label = iac_xasprintf("etcd '%s' at %s", o.prefix && *o.prefix ? o.prefix : "iac", eps);
	free(eps);
	return rc;
}

/* username and password out of the settings (which get remembered), and
 * history = { remote } as history_remote. */
static void take_credentials(iac_backend *b)
{
	json_t *set = b->settings;
	if (json_object_get(set, "username")) {
		free(b->username);
		b->username = iac_xstrdup(iac_json_str(set, "username") ?: "");
	}
	if (json_object_get(set, "password")) {
		free(b->password);
		b->password = iac_xstrdup(iac_json_str(set, "password") ?: "");
		iac_redact_add(b->password);
	}
	json_object_del(set, "username");
	json_object_del(set, "password");
	if (json_is_object(json_object_get(set, "history"))) {
		json_object_set(set, "history_remote", json_object_get(json_object_get(set, "history"), "remote"));
		json_object_del(set, "history");
	}
}

static iac_backend *backend_new(const char *dir, const char *kind)
{
	iac_backend *b = iac_xcalloc(1, sizeof(*b));
	b->dir = iac_xstrdup(dir);
	b->kind = iac_xstrdup(kind);
	b->settings = json_object();
	b->label = iac_xasprintf("'%s/.iac/state.json'", dir);
	return b;
}

int iac_backend_open_kind(iac_backend **out, const char *dir, const char *kind, const json_t *settings,
			  const iac_strlist *overrides)
{
	iac_backend *b = backend_new(dir, kind);
	int rc = 0;
	*out = NULL;
	if (strcmp(kind, "local") && strcmp(kind, "etcd")) {
		iac_backend_free(b);
		return iac_err_set("unknown backend '%s' (there are: \"local\", \"etcd\")", kind);
	}
	if (settings)
		json_object_update(b->settings, (json_t *)settings);
	take_credentials(b);
	if (!strcmp(kind, "etcd")) {
		rc = apply_overrides(b, b->settings, overrides);
		take_env(b);
		if (rc == 0)
			rc = connect_etcd(b);
	}
	if (rc < 0) {
		iac_backend_free(b);
		return rc;
	}
	*out = b;
	return 0;
}

/* The declared backend does not hold the state: say what to run. */
static int mismatch(const char *dir, const json_t *decl, const json_t *mem)
{
	if (decl)
		return iac_err_set("%s:%lld: backend \"etcd\" is declared, but the state is in '%s/.iac/state.json'; "
				   "nothing was changed. Run 'iac init -migrate-state' to move it to etcd (or remove "
				   "the backend block to keep it here)",
				   iac_json_str(decl, "file") ?: "main.lua",
				   (long long)json_integer_value(json_object_get(decl, "line")), dir);
	return iac_err_set("the state is in etcd '%s' (recorded in .iac/backend.json), but main.lua declares no "
			   "backend; nothing was changed. Put the backend \"etcd\" block back, or run 'iac init "
			   "-migrate-state -backend=local' to bring the state back to .iac/",
			   iac_json_str(mem, "prefix") ?: "iac");
}

int iac_backend_open(iac_backend **out, const char *dir, int config_loaded, const json_t *decl,
		     const iac_strlist *overrides)
{
	json_t *mem = remembered(dir), *set = json_object();
	const json_t *decl_local = NULL;
	const char *kind = "local";
	int rc = 0;

	*out = NULL;
	if (config_loaded) {
		if (decl)
			kind = iac_json_str(decl, "type") ?: "etcd";
		if (!strcmp(kind, "local"))
			decl_local = decl, decl = NULL;   /* the default, with a history remote */
		int mem_etcd = mem && !strcmp(iac_json_str(mem, "type") ?: "", "etcd");
		if (decl && !mem_etcd && local_state_exists(dir))
			rc = mismatch(dir, decl, NULL);
		else if (!decl && mem_etcd)
			rc = mismatch(dir, NULL, mem);
		if (rc == 0 && decl && mem_etcd) {
			/* the block wins; what was remembered fills what it leaves out */
			json_object_update(set, mem);
			json_object_del(set, "type");
		}
	} else if (mem) {
		kind = iac_json_str(mem, "type") ?: "local";
		json_object_update(set, mem);
		json_object_del(set, "type");
	} else if (overrides && overrides->n) {
		kind = "etcd";   /* -backend-config names a backend before any main.lua */
	}
	if (rc == 0 && config_loaded && !decl && !mem && overrides && overrides->n)
		rc = iac_err_set("-backend-config is given, but main.lua declares no backend; add backend \"etcd\" "
				 "{ } to main.lua (settings may all come from -backend-config)");
	if (rc == 0 && decl)
		rc = apply_decl(set, decl);
	char kind_buf[16];
	snprintf(kind_buf, sizeof(kind_buf), "%s", kind);   /* kind may live in mem */
	kind = kind_buf;
	json_decref(mem);
	if (rc < 0) {
		json_decref(set);
		return rc;
	}
	iac_backend *b = NULL;
	rc = iac_backend_open_kind(&b, dir, kind, set, overrides);
	const json_t *h = json_object_get(json_object_get(decl_local, "settings"), "history");
	if (rc == 0 && h)
		json_object_set(b->settings, "history_remote", json_object_get(h, "remote"));
	json_decref(set);
	*out = b;
	return rc;
}

void iac_backend_free(iac_backend *b)
{
	if (!b)
		return;
	iac_backend_unlock(b);
	iac_etcdb_free(b->etcd);
	json_decref(b->settings);
	free(b->dir);
	free(b->kind);
	free(b->label);
	free(b->username);
	free(b->password);
	free(b->command);
	free(b);
}

const char *iac_backend_kind(const iac_backend *b) { return b->kind; }
const char *iac_backend_dir(const iac_backend *b) { return b->dir; }
const char *iac_backend_label(const iac_backend *b) { return b->label; }
const json_t *iac_backend_settings(const iac_backend *b) { return b->settings; }
struct iac_etcdb *iac_backend_etcd(iac_backend *b) { return b->etcd; }

const char *iac_backend_history_remote(const iac_backend *b)
{
	return iac_json_str(b->settings, "history_remote");
}

int iac_backend_remember(iac_backend *b)
{
	char *p = iac_xasprintf("%s/.iac/backend.json", b->dir);
	char *d = iac_xasprintf("%s/.iac", b->dir);
	int rc = 0;
	if (!strcmp(b->kind, "local") && !json_object_size(b->settings)) {
		if (unlink(p) < 0 && errno != ENOENT)
			rc = iac_err_sys("cannot remove '%s'", p);
	} else if ((rc = iac_private_dir(d, NULL)) == 0) {
		json_t *j = json_deep_copy(b->settings);
		json_object_set_new(j, "type", json_string(b->kind));
		char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
		json_t *old = remembered(b->dir);
		if (!old || !json_equal(old, j))
			rc = iac_file_write_atomic(p, text, strlen(text), 0600);
		json_decref(old);
		json_decref(j);
		free(text);
	}
	free(p);
	free(d);
	return rc;
}

/* ---- lock ------------------------------------------------------------------ */

static json_t *who(const char *command)
{
	char host[256] = "", when[32];
	const char *user = getenv("USER");
	if (!user) {
		struct passwd *pw = getpwuid(getuid());
		user = pw ? pw->pw_name : "?";
	}
	gethostname(host, sizeof(host) - 1);
	iac_time_rfc3339(when, sizeof(when));
	return json_pack("{s:s,s:s,s:s,s:i,s:s}", "command", command, "user", user, "host", host, "pid",
			 (int)getpid(), "started", when);
}

int iac_backend_lock(json_t **out_stale, iac_backend *b, const char *command, double timeout_ms)
{
	if (out_stale)
		*out_stale = NULL;
	free(b->command);
	b->command = iac_xstrdup(command);
	if (!b->etcd)
		return iac_lock_acquire(&b->lk, out_stale, b->dir, command, timeout_ms);
	json_t *w = who(command);
	iac_etcdb_set_actor(b->etcd, w);
	int rc = iac_etcdb_lock(b->etcd, w, timeout_ms);
	json_decref(w);
	return rc;
}

int iac_backend_preempt(json_t **out_preempted, iac_backend *b, const char *command)
{
	if (!b->etcd)
		return iac_lock_preempt(&b->lk, out_preempted, b->dir, command);
	json_t *w = who(command);
	iac_etcdb_set_actor(b->etcd, w);
	int rc = iac_etcdb_preempt(out_preempted, b->etcd, w);
	json_decref(w);
	return rc;
}

void iac_backend_unlock(iac_backend *b)
{
	if (!b)
		return;
	iac_lock_release(b->lk);
	b->lk = NULL;
	if (b->etcd)
		iac_etcdb_unlock(b->etcd);
}

int iac_backend_still_held(iac_backend *b)
{
	return b->etcd ? iac_etcdb_still_held(b->etcd) : iac_lock_still_held(b->lk);
}

const char *iac_backend_lock_id(const iac_backend *b)
{
	if (b->etcd)
		return iac_etcdb_lock_id(b->etcd);
	return b->lk ? iac_lock_id(b->lk) : NULL;
}

int iac_backend_lock_status(json_t **out, iac_backend *b)
{
	if (b->etcd)
		return iac_etcdb_lock_status(out, b->etcd);
	json_t *h = NULL;
	int rc = iac_lock_holder(&h, b->dir);
	if (rc < 0 && rc != IAC_ENOTFOUND)
		return rc;
	iac_err_clear();
	*out = json_pack("{s:o,s:[]}", "holder", h ? h : json_null(), "queue");
	return 0;
}

int iac_backend_force_unlock(json_t **out_info, iac_backend *b, const char *id)
{
	if (b->etcd)
		return iac_etcdb_force_unlock(out_info, b->etcd, id);
	*out_info = NULL;
	if (iac_lock_holder(out_info, b->dir) < 0)
		iac_err_clear();
	return iac_lock_force_unlock(b->dir, id);
}

void iac_backend_set_command(iac_backend *b, const char *command)
{
	free(b->command);
	b->command = iac_xstrdup(command);
	if (b->etcd) {
		json_t *w = who(command);
		iac_etcdb_set_actor(b->etcd, w);
		json_decref(w);
	}
}

int iac_backend_state_open(iac_state **out, iac_backend *b)
{
	if (!b->etcd)
		return iac_state_open(out, b->dir);
	if (!b->command) {
		json_t *w = who("?");
		iac_etcdb_set_actor(b->etcd, w);
		json_decref(w);
	}
	return iac_state_open_store(out, iac_etcdb_store(b->etcd), b->dir);
}

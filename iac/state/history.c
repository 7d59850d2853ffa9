/* history: events in state, revisions in git (see history.h). */
#include "iac/state/history.h"

#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/state/etcd_store.h"
#include "iac/state/gitlog.h"

static char *argv_line;

void iac_history_set_argv(int argc, char **argv)
{
	iac_buf b = IAC_BUF_INIT;
	int hide_next = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '=');
		int secretive = !strncmp(a, "-var", 4) || !strncmp(a, "--var", 5) || strstr(a, "backend-config");
		iac_buf_puts(&b, i ? " " : "iac ");
		if (hide_next && eq) {
			iac_buf_put(&b, a, (size_t)(eq - a) + 1);
			iac_buf_puts(&b, "(hidden)");
		} else if (secretive && eq && a[0] == '-' && strchr(eq + 1, '=')) {
			/* -var=name=value */
			const char *eq2 = strchr(eq + 1, '=');
			iac_buf_put(&b, a, (size_t)(eq2 - a) + 1);
			iac_buf_puts(&b, "(hidden)");
		} else {
			iac_buf_puts(&b, a);
		}
		hide_next = secretive && !eq;
	}
	free(argv_line);
	argv_line = b.ptr;
}

void iac_history_stamp(json_t *event)
{
	char when[32], host[256] = "";
	const char *user = getenv("USER");
	if (!user) {
		struct passwd *pw = getpwuid(getuid());
		user = pw ? pw->pw_name : "?";
	}
	gethostname(host, sizeof(host) - 1);
	iac_time_rfc3339(when, sizeof(when));
	json_object_set_new(event, "at", json_string(when));
	json_object_set_new(event, "user", json_string(user));
	json_object_set_new(event, "host", json_string(host));
}

int iac_history_add(iac_state *st, json_t *event)
{
	json_t *old = iac_state_extra(st, "history");
	json_t *h = json_array();
	size_t n = json_array_size(old), from = n >= IAC_HISTORY_MAX ? n - IAC_HISTORY_MAX + 1 : 0;

	iac_history_stamp(event);
	for (size_t i = from; i < n; i++)
		json_array_append(h, json_array_get(old, i));
	json_array_append(h, event);
	int rc = iac_state_set_extra(st, "history", h);
	json_decref(h);
	iac_state_run_recorder(st, event);
	json_decref(event);
	return rc;
}

/* meta.json of a revision: the event, the command line, the state's
 * serial and lineage, exit status and counts in one shape. */
static json_t *meta_of(const iac_state *st, const json_t *event)
{
	json_t *m = json_deep_copy(event);
	if (argv_line && !json_object_get(m, "argv"))
		json_object_set_new(m, "argv", json_string(argv_line));
	json_object_set_new(m, "serial", json_integer((json_int_t)iac_state_serial(st)));
	json_object_set_new(m, "lineage", json_string(iac_state_lineage(st)));
	if (!json_object_get(m, "exit"))
		json_object_set_new(m, "exit", json_integer(json_is_false(json_object_get(event, "ok")) ? 1 : 0));
	if (json_object_get(event, "added"))
		json_object_set_new(m, "summary", json_pack("{s:O,s:O,s:O}", "add", json_object_get(event, "added"),
							  "change", json_object_get(event, "changed"),
							  "destroy", json_object_get(event, "destroyed")));
	return m;
}

static char *repo_path(iac_backend *b)
{
	return iac_xasprintf("%s/.iac/history.git", iac_backend_dir(b));
}

/* ---- etcd: revisions under PREFIX/history/ -------------------------------------
 *   PREFIX/history/head             {"rev": N, "commit": HEX}
 *   PREFIX/history/pack/NNNNNNNNNN/CCCC   the objects revision N added
 * A runner brings its mirror up to date by unpacking what it lacks, records
 * on top, stores the new pack, then moves head by compare-and-swap: two
 * runners recording at once both land, one after the other. */

#define PACK_CHUNK (768 * 1024)

typedef struct {
	int64_t mod_rev;     /* of the head key; 0: none */
	long rev;
	char commit[41];
} etcd_head;

static int read_head(etcd_head *h, iac_etcdb *db)
{
	char *k = iac_xasprintf("%s/history/head", iac_etcdb_prefix(db));
	iac_etcd_kv kv;
	memset(h, 0, sizeof(*h));
	int rc = iac_etcd_get(&kv, iac_etcdb_client(db), k);
	free(k);
	if (rc == IAC_ENOTFOUND) {
		iac_err_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	json_t *j = json_loadb(kv.value, kv.value_len, 0, NULL);
	h->mod_rev = kv.mod_revision;
	h->rev = (long)json_integer_value(json_object_get(j, "rev"));
	snprintf(h->commit, sizeof(h->commit), "%s", json_string_value(json_object_get(j, "commit")) ?: "");
	json_decref(j);
	iac_etcd_kv_free(&kv);
	return 0;
}

static int fetch_pack(iac_gitlog *g, iac_etcdb *db, long rev, const char *set_head)
{
	char *prefix = iac_xasprintf("%s/history/pack/%010ld/", iac_etcdb_prefix(db), rev);
	iac_etcd_kv *kvs;
	size_t n;
	int rc = iac_etcd_range(&kvs, &n, NULL, iac_etcdb_client(db), prefix);
	free(prefix);
	if (rc < 0)
		return rc;
	iac_buf pack = IAC_BUF_INIT;
	for (size_t i = 0; i < n; i++)
		iac_buf_put(&pack, kvs[i].value, kvs[i].value_len);
	iac_etcd_kvs_free(kvs, n);
	rc = iac_gitlog_unpack(g, pack.ptr, pack.len, set_head);
	iac_buf_free(&pack);
	return rc;
}

/* The mirror holds every revision etcd has (and its branch is etcd's). */
static int sync_mirror(iac_gitlog *g, iac_etcdb *db, etcd_head *h)
{
	long mine;
	char commit[41];
	int rc = read_head(h, db);
	if (rc < 0 || (rc = iac_gitlog_head(&mine, commit, g)) < 0)
		return rc;
	if (!h->rev || (mine == h->rev && !strcmp(commit, h->commit)))
		return 0;
	/* a mirror ahead of etcd or on another line follows etcd from its
	 * start again: packs hold objects only, so replaying is cheap */
	long from = mine < h->rev && mine > 0 ? mine + 1 : 1;
	for (long r = from; r <= h->rev && rc == 0; r++)
		rc = fetch_pack(g, db, r, r == h->rev ? h->commit : NULL);
	return rc;
}

static int store_revision(iac_gitlog *g, iac_etcdb *db, const etcd_head *old, long rev)
{
	char *pack = NULL, commit[41];
	size_t len = 0;
	long head_rev;
	int rc = iac_gitlog_head(&head_rev, commit, g);
	if (rc == 0)
		rc = iac_gitlog_pack(&pack, &len, g, old->commit[0] ? old->commit : NULL, commit);
	for (size_t off = 0, i = 0; rc == 0 && (off < len || i == 0); off += PACK_CHUNK, i++) {
		char *k = iac_xasprintf("%s/history/pack/%010ld/%04zu", iac_etcdb_prefix(db), rev, i);
		size_t piece = len - off < PACK_CHUNK ? len - off : PACK_CHUNK;
		rc = iac_etcdb_txn(db, json_array(), json_pack("[o]", iac_etcd_op_put(k, pack + off, piece, 0)));
		free(k);
	}
	free(pack);
	if (rc < 0)
		return rc;
	char *hk = iac_xasprintf("%s/history/head", iac_etcdb_prefix(db));
	char *val = iac_xasprintf("{\"rev\":%ld,\"commit\":\"%s\"}", rev, commit);
	json_t *cmp = json_pack("[o]", iac_etcd_cmp(hk, old->mod_rev ? "MOD" : "CREATE", old->mod_rev));
	rc = iac_etcdb_txn(db, cmp, json_pack("[o]", iac_etcd_op_put(hk, val, strlen(val), 0)));
	free(hk);
	free(val);
	return rc;
}

static int record_etcd(long *out_rev, iac_gitlog *g, iac_etcdb *db, const json_t *doc, const json_t *meta)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		etcd_head h;
		int rc = sync_mirror(g, db, &h);
		if (rc == 0)
			rc = iac_gitlog_record(out_rev, g, doc, meta);
		if (rc == 0)
			rc = store_revision(g, db, &h, *out_rev);
		if (rc != IAC_ECONFLICT)
			return rc;
		/* another runner recorded first: go again on top of theirs */
	}
	return iac_err_set("history: another command kept recording at the same moment; gave up after 5 tries");
}

/* A push that failed leaves PENDING_MARK in the mirror, so that the next
 * command of any kind (a plan too) tries again, and a command with nothing
 * pending pays nothing for it (no connection to the remote). */
#define PENDING_MARK "iac-push-pending"

static void mark_pending(const char *repo, int on)
{
	char *m = iac_xasprintf("%s/" PENDING_MARK, repo);
	if (on)
		(void)iac_file_write_atomic(m, "", 0, 0600);
	else
		(void)unlink(m);
	free(m);
}

int iac_history_push_pending(int *out_pushed, iac_backend *b)
{
	const char *remote = iac_backend_history_remote(b);
	char *path = repo_path(b), *m = iac_xasprintf("%s/" PENDING_MARK, path);
	iac_gitlog *g = NULL;
	int rc = 0;
	*out_pushed = 0;
	if (!remote || access(m, F_OK) != 0)
		goto done;
	rc = iac_gitlog_open(&g, path);
	if (rc == 0 && (rc = iac_gitlog_push(g, remote)) < 0)
		iac_err_prefix("history not pushed to '%s' yet (tried again; the next command tries again)", remote);
	if (rc == 0) {
		mark_pending(path, 0);
		*out_pushed = 1;
	}
done:
	iac_gitlog_free(g);
	free(m);
	free(path);
	return rc;
}

int iac_history_record(long *out_rev, iac_backend *b, const iac_state *st, const json_t *event)
{
	iac_gitlog *g = NULL;
	char *path = repo_path(b);
	long rev = 0;
	json_t *doc = iac_state_to_json(st), *meta = meta_of(st, event);
	int rc;

	/* the git log is the history: the copy of events in state stays out
	 * (of a copy: the document shares "extra" with the live state) */
	json_t *extra = json_copy(json_object_get(doc, "extra"));
	json_object_del(extra, "history");
	json_object_set_new(doc, "extra", extra);
	rc = iac_gitlog_open(&g, path);
	if (rc == 0 && iac_backend_etcd(b))
		rc = record_etcd(&rev, g, iac_backend_etcd(b), doc, meta);
	else if (rc == 0 && (rc = iac_gitlog_record(&rev, g, doc, meta)) == IAC_ECONFLICT)
		rc = iac_gitlog_record(&rev, g, doc, meta);
	const char *remote = iac_backend_history_remote(b);
	if (rc == 0 && remote) {
		if (iac_gitlog_push(g, remote) < 0) {
			mark_pending(path, 1);
			iac_err_prefix("revision %ld recorded, but not pushed to '%s' (the next command "
				       "pushes it)", rev, remote);
			rc = IAC_ERR;
		} else {
			mark_pending(path, 0);
		}
	}
	if (out_rev)
		*out_rev = rev;
	iac_gitlog_free(g);
	json_decref(doc);
	json_decref(meta);
	free(path);
	return rc;
}

int iac_history_open(struct iac_gitlog **out, iac_backend *b)
{
	char *path = repo_path(b);
	int rc = iac_gitlog_open(out, path);
	free(path);
	if (rc == 0 && iac_backend_etcd(b)) {
		etcd_head h;
		rc = sync_mirror(*out, iac_backend_etcd(b), &h);
		if (rc < 0) {
			iac_gitlog_free(*out);
			*out = NULL;
		}
	}
	return rc;
}

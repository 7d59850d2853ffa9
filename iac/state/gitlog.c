/* gitlog: the change history as a git repository (see gitlog.h). */
#include "iac/state/gitlog.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "iac/core/base64.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/state/gitnet.h"

#define MAIN_REF "refs/heads/main"
/* Sorted keys and a fixed layout make equal values equal blobs (that is
 * what lets git share unchanged resources between revisions); 17 digits
 * round-trip every double, as state.json does. */
#define FILE_FLAGS (JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY)
#define NBUCKETS 256

struct iac_gitlog {
	git_repository *repo;
	char *path;
};

/* ---- libgit2 plumbing ------------------------------------------------ */

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int empty = 1;
	if (!d)
		return 0;
	while (empty && (de = readdir(d)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	return empty;
}

static int create_repo(git_repository **out, const char *path)
{
	git_repository_init_options o;
	git_repository_init_options_init(&o, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	if (!dir_is_empty(path))
		return iac_err_set("cannot open the history '%s': the directory is not empty and is not a git "
				   "repository (move it away)", path);
	o.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
	o.mode = GIT_REPOSITORY_INIT_SHARED_UMASK;
	o.initial_head = "main";
	o.description = "iac change history: one commit per recorded event";
	if (git_repository_init_ext(out, path, &o) < 0)
		return iac_git_fail("cannot create the history '%s'", path);
	return 0;
}

int iac_gitlog_open(iac_gitlog **out, const char *path)
{
	git_repository *repo = NULL;
	*out = NULL;
	iac_git_init();
	/* the history holds what state holds (redacted, but still private) */
	if (iac_private_dir(path, NULL) < 0)
		return IAC_ERR;
	int rc = git_repository_open_bare(&repo, path);
	if (rc == GIT_ENOTFOUND)
		rc = create_repo(&repo, path);
	else if (rc < 0)
		rc = iac_git_fail("cannot open the history '%s'", path);
	if (rc < 0)
		return IAC_ERR;
	iac_gitlog *g = iac_xcalloc(1, sizeof(*g));
	g->repo = repo;
	g->path = iac_xstrdup(path);
	*out = g;
	return 0;
}

void iac_gitlog_free(iac_gitlog *g)
{
	if (!g)
		return;
	git_repository_free(g->repo);
	free(g->path);
	free(g);
}

const char *iac_gitlog_path(const iac_gitlog *g)
{
	return g->path;
}

/* ---- reading --------------------------------------------------------- */

static int head_id(git_oid *out, iac_gitlog *g)
{
	int rc = git_reference_name_to_id(out, g->repo, MAIN_REF);
	if (rc == GIT_ENOTFOUND)
		return IAC_ENOTFOUND;
	if (rc < 0)
		return iac_git_fail("cannot read '%s' in the history '%s'", MAIN_REF, g->path);
	return 0;
}

/* The JSON file at path in tree; IAC_ENOTFOUND when there is none. */
static int read_json(json_t **out, iac_gitlog *g, const git_tree *tree, const char *path)
{
	git_tree_entry *e = NULL;
	git_blob *blob = NULL;
	json_error_t jerr;
	int rc = git_tree_entry_bypath(&e, tree, path);
	*out = NULL;
	if (rc == GIT_ENOTFOUND)
		return IAC_ENOTFOUND;
	if (rc < 0)
		return iac_git_fail("cannot read '%s' in the history '%s'", path, g->path);
	rc = IAC_ERR;
	if (git_blob_lookup(&blob, g->repo, git_tree_entry_id(e)) < 0) {
		iac_git_fail("cannot read '%s' in the history '%s'", path, g->path);
		goto done;
	}
	*out = json_loadb(git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob), JSON_DECODE_ANY, &jerr);
	if (!*out) {
		iac_err_set("damaged file '%s' in the history '%s': line %d: %s", path, g->path, jerr.line, jerr.text);
		goto done;
	}
	rc = 0;
done:
	git_blob_free(blob);
	git_tree_entry_free(e);
	return rc;
}

/* read_json for a file every revision has. */
static int read_part(json_t **out, iac_gitlog *g, const git_tree *t, const char *path)
{
	int rc = read_json(out, g, t, path);
	if (rc == IAC_ENOTFOUND)
		return iac_err_set("damaged revision in the history '%s': '%s' is missing", g->path, path);
	return rc;
}

/* The "rev" of a commit (from its meta.json). */
static int commit_rev(long *out, iac_gitlog *g, const git_commit *c)
{
	git_tree *t = NULL;
	json_t *meta = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int rc;
	*out = 0;
	if (git_commit_tree(&t, c) < 0)
		return iac_git_fail("cannot read a commit of the history '%s'", g->path);
	rc = read_json(&meta, g, t, "meta.json");
	git_tree_free(t);
	if (rc < 0 && rc != IAC_ENOTFOUND)
		return rc;
	*out = json_integer_value(json_object_get(meta, "rev"));
	json_decref(meta);
	if (*out <= 0) {
		git_oid_tostr(hex, sizeof(hex), git_commit_id(c));
		return iac_err_set("commit %s in the history '%s' is not an iac revision (no meta.json with a rev)",
				   hex, g->path);
	}
	return 0;
}

/* Head commit and its rev; IAC_ENOTFOUND (no message) when empty. */
static int head_commit(git_commit **out, long *out_rev, iac_gitlog *g)
{
	git_oid id;
	int rc = head_id(&id, g);
	*out = NULL;
	*out_rev = 0;
	if (rc < 0)
		return rc;
	if (git_commit_lookup(out, g->repo, &id) < 0)
		return iac_git_fail("cannot read the head of the history '%s'", g->path);
	if (commit_rev(out_rev, g, *out) < 0) {
		git_commit_free(*out);
		*out = NULL;
		return IAC_ERR;
	}
	return 0;
}

/* Revision rev: rev numbers count commits along main, so rev is
 * (head - rev) first parents below the head. */
static int commit_at_rev(git_commit **out, iac_gitlog *g, long rev)
{
	git_commit *c = NULL, *p = NULL;
	long head = 0, got = 0;
	int rc = head_commit(&c, &head, g);
	*out = NULL;
	if (rc < 0 && rc != IAC_ENOTFOUND)
		return rc;
	if (rev < 1 || rev > head) {
		git_commit_free(c);
		if (head)
			iac_err_set("no revision %ld in the history '%s' (the newest is %ld)", rev, g->path, head);
		else
			iac_err_set("no revision %ld in the history '%s': it is empty", rev, g->path);
		return IAC_ENOTFOUND;
	}
	for (long k = head; k > rev; k--, c = p) {
		rc = git_commit_parent(&p, c, 0);
		git_commit_free(c);
		if (rc < 0)
			return iac_git_fail("cannot walk back to revision %ld in the history '%s'", rev, g->path);
	}
	if (commit_rev(&got, g, c) < 0 || got != rev) {
		git_commit_free(c);
		if (got)
			iac_err_set("the history '%s' is damaged: revision %ld is numbered %ld", g->path, rev, got);
		return IAC_ERR;
	}
	*out = c;
	return 0;
}

int iac_gitlog_head(long *out_rev, char out_commit[41], iac_gitlog *g)
{
	git_commit *c = NULL;
	int rc = head_commit(&c, out_rev, g);
	out_commit[0] = '\0';
	if (rc == IAC_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	git_oid_tostr(out_commit, 41, git_commit_id(c));
	git_commit_free(c);
	return 0;
}

/* ---- resource files -------------------------------------------------- */

/* The address as a file name: '/' cannot be in one, '%' is the escape,
 * control characters would trouble every tool that lists the tree, and a
 * leading '.' could make ".", ".." or ".git". */
static char *file_name(const char *addr)
{
	iac_buf b = IAC_BUF_INIT;
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
		if (*p == '%' || *p == '/' || *p < 0x20 || *p == 0x7f || (*p == '.' && p == (const unsigned char *)addr))
			iac_buf_printf(&b, "%%%02X", *p);
		else
			iac_buf_putc(&b, (char)*p);
	}
	iac_buf_puts(&b, ".json");
	return iac_buf_detach(&b);
}

static int bucket_of(const char *addr)
{
	char hex[65];
	iac_sha256_hex(hex, addr, strlen(addr));
	hex[2] = '\0';
	return (int)strtol(hex, NULL, 16);
}

/* resources/<bb>/<file>: where an address lives in a revision's tree. */
static char *resource_path(const char *addr)
{
	char *name = file_name(addr);
	char *path = iac_xasprintf("resources/%02x/%s", bucket_of(addr), name);
	free(name);
	return path;
}

typedef struct {
	const json_t *entry;
	const char *addr;
	char *name;
	int bucket;
	git_oid id;
	char *text;     /* the file, when its blob is not the parent's */
	size_t len;
} res_item;

/* A revision's resources/, worked out before anything is written: how
 * many blobs are new decides how they are written (see writer_open). */
typedef struct {
	res_item *it;     /* sorted by (bucket, name) */
	size_t n;
	size_t fresh;     /* items whose blob is new */
	git_tree *prev;   /* the parent's resources/, or NULL */
} res_plan;

static int item_cmp(const void *a, const void *b)
{
	const res_item *x = a, *y = b;
	if (x->bucket != y->bucket)
		return x->bucket < y->bucket ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void plan_free(res_plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->it[i].name);
		free(p->it[i].text);
	}
	free(p->it);
	git_tree_free(p->prev);
	memset(p, 0, sizeof(*p));
}

/* The state's resource entries, sorted; every entry must have an
 * address, and no two the same one. */
static int collect_items(res_plan *p, const json_t *resources)
{
	p->it = iac_xcalloc(json_array_size(resources), sizeof(*p->it));
	for (size_t i = 0; i < json_array_size(resources); i++) {
		const json_t *e = json_array_get(resources, i);
		const char *addr = iac_json_str(e, "address");
		if (!addr || !*addr)
			return iac_err_set("cannot record the history: resource entry %zu has no address", i);
		p->it[p->n++] = (res_item){ .entry = e, .addr = addr, .name = file_name(addr), .bucket = bucket_of(addr) };
	}
	qsort(p->it, p->n, sizeof(*p->it), item_cmp);
	for (size_t i = 1; i < p->n; i++)
		if (!strcmp(p->it[i].name, p->it[i - 1].name))
			return iac_err_set("cannot record the history: resource '%s' is in the state twice", p->it[i].addr);
	return 0;
}

static int dump_to_buf(const char *buf, size_t size, void *data)
{
	iac_buf_put(data, buf, size);
	return 0;
}

/* v as a history file: pretty, sorted keys, a final newline (so `git
 * diff` shows one line per field). */
static int json_text(iac_buf *b, const json_t *v, const char *what)
{
	iac_buf_clear(b);
	if (json_dump_callback(v, dump_to_buf, b, FILE_FLAGS) < 0)
		return iac_err_set("cannot record the history: '%s' cannot be written as JSON", what);
	iac_buf_putc(b, '\n');
	return 0;
}

static int put_json(git_treebuilder *bld, iac_gitlog *g, iac_buf *text, const char *name, const json_t *v)
{
	git_oid id;
	if (json_text(text, v, name) < 0)
		return IAC_ERR;
	if (git_blob_create_from_buffer(&id, g->repo, text->ptr, text->len) < 0 ||
	    git_treebuilder_insert(NULL, bld, name, &id, GIT_FILEMODE_BLOB) < 0)
		return iac_git_fail("cannot write '%s' into the history '%s'", name, g->path);
	return 0;
}

/* The subtree at name in tree (NULL, no error, when absent). */
static int subtree(git_tree **out, iac_gitlog *g, const git_tree *tree, const char *name)
{
	const git_tree_entry *e = tree ? git_tree_entry_byname(tree, name) : NULL;
	*out = NULL;
	if (!e || git_tree_entry_type(e) != GIT_OBJECT_TREE)
		return 0;
	if (git_tree_lookup(out, g->repo, git_tree_entry_id(e)) < 0)
		return iac_git_fail("cannot read '%s' in the history '%s'", name, g->path);
	return 0;
}

/* Hash the entries of one bucket as files, keeping the text of those whose
 * blob is not the parent's: the resources an apply did not touch cost one
 * serialisation and a hash each, and nothing on disk. */
static int plan_bucket(res_plan *p, iac_gitlog *g, size_t from, size_t to, iac_buf *text)
{
	git_tree *pb = NULL;
	char bname[3];
	int rc;
	snprintf(bname, sizeof(bname), "%02x", p->it[from].bucket);
	if ((rc = subtree(&pb, g, p->prev, bname)) < 0)
		return rc;
	for (size_t i = from; i < to; i++) {
		res_item *r = &p->it[i];
		if ((rc = json_text(text, r->entry, r->addr)) < 0)
			break;
		if (git_odb_hash(&r->id, text->ptr, text->len, GIT_OBJECT_BLOB) < 0) {
			rc = iac_git_fail("cannot hash '%s' for the history '%s'", r->addr, g->path);
			break;
		}
		const git_tree_entry *pe = pb ? git_tree_entry_byname(pb, r->name) : NULL;
		if (pe && git_oid_equal(git_tree_entry_id(pe), &r->id))
			continue;
		r->text = iac_xmalloc(text->len);
		memcpy(r->text, text->ptr, text->len);
		r->len = text->len;
		p->fresh++;
	}
	git_tree_free(pb);
	return rc;
}

static int plan_resources(res_plan *p, iac_gitlog *g, const git_tree *parent_root, const json_t *resources)
{
	iac_buf text = IAC_BUF_INIT;
	int rc = collect_items(p, resources);
	if (rc == 0)
		rc = subtree(&p->prev, g, parent_root, "resources");
	for (size_t i = 0, j; rc == 0 && i < p->n; i = j) {
		for (j = i; j < p->n && p->it[j].bucket == p->it[i].bucket; j++)
			;
		rc = plan_bucket(p, g, i, j, &text);
	}
	iac_buf_free(&text);
	return rc;
}

/* Where a record writes. A few objects go in loose, as git writes them. A
 * big batch (the first record of a large state, an apply that touched
 * thousands of resources) would cost one file, one disk block and a pack
 * directory rescan in libgit2 per object: it collects in memory instead, on
 * a second handle of the repository, and lands as one pack. */
#define PACK_AT 256

typedef struct {
	iac_gitlog w;           /* the handle objects are written through */
	git_odb_backend *mem;   /* the in-memory store, when packing */
} writer;

static int writer_open(writer *wr, iac_gitlog *g, size_t fresh)
{
	git_odb *odb = NULL;
	wr->w = *g;
	wr->mem = NULL;
	if (fresh < PACK_AT)
		return 0;
	wr->w.repo = NULL;
	if (git_repository_open_bare(&wr->w.repo, g->path) < 0 || git_repository_odb(&odb, wr->w.repo) < 0 ||
	    git_mempack_new(&wr->mem) < 0)
		goto fail;
	/* above every other backend: new objects are written there */
	if (git_odb_add_backend(odb, wr->mem, 1000) < 0) {
		wr->mem->free(wr->mem);
		goto fail;
	}
	git_odb_free(odb);
	return 0;
fail:
	iac_git_fail("cannot write into the history '%s'", g->path);
	git_odb_free(odb);
	git_repository_free(wr->w.repo);
	wr->w.repo = NULL;
	wr->mem = NULL;
	return IAC_ERR;
}

static int writer_blob(writer *wr, const res_item *r)
{
	git_oid id;
	int rc = wr->mem ? wr->mem->write(wr->mem, &r->id, r->text, r->len, GIT_OBJECT_BLOB)
			 : git_blob_create_from_buffer(&id, wr->w.repo, r->text, r->len);
	return rc < 0 ? iac_git_fail("cannot write '%s' into the history '%s'", r->addr, wr->w.path) : 0;
}

static int index_pack(iac_gitlog *g, const char *pack, size_t len);

/* Everything written lands on disk (before the branch may point at it). */
static int writer_finish(writer *wr)
{
	git_buf buf = { 0 };
	int rc = 0;
	if (!wr->mem)
		return 0;
	if (git_mempack_dump(&buf, wr->w.repo, wr->mem) < 0)
		rc = iac_git_fail("cannot pack the new objects of the history '%s'", wr->w.path);
	else
		rc = index_pack(&wr->w, buf.ptr, buf.size);
	git_buf_dispose(&buf);
	git_mempack_reset(wr->mem);
	return rc;
}

static void writer_close(writer *wr)
{
	if (wr->mem)
		git_repository_free(wr->w.repo);   /* and with it the odb and the store */
	wr->mem = NULL;
}

typedef struct {
	const res_item *it;
	size_t n;
} bucket_items;

static int name_cmp(const void *key, const void *item)
{
	return strcmp(key, ((const res_item *)item)->name);
}

/* treebuilder filter: drop the files of resources no longer in state */
static int gone(const git_tree_entry *e, void *payload)
{
	const bucket_items *b = payload;
	return bsearch(git_tree_entry_name(e), b->it, b->n, sizeof(*b->it), name_cmp) == NULL;
}

/* The bucket of items [from, to) into rb, built from the parent's bucket:
 * an unchanged bucket is left as it is, and writes nothing. */
static int write_bucket(git_treebuilder *rb, writer *wr, const res_plan *p, size_t from, size_t to)
{
	git_tree *prev = NULL;
	git_treebuilder *bb = NULL;
	bucket_items items = { p->it + from, to - from };
	char bname[3];
	size_t fresh = 0;
	git_oid tid;
	int rc;

	snprintf(bname, sizeof(bname), "%02x", p->it[from].bucket);
	if ((rc = subtree(&prev, &wr->w, p->prev, bname)) < 0)
		return rc;
	for (size_t i = from; i < to; i++)
		fresh += p->it[i].text != NULL;
	if (prev && !fresh && git_tree_entrycount(prev) == to - from)
		goto done;
	rc = IAC_ERR;
	if (git_treebuilder_new(&bb, wr->w.repo, prev) < 0 || git_treebuilder_filter(bb, gone, &items) < 0)
		goto fail;
	for (size_t i = from; i < to; i++)
		if (p->it[i].text && git_treebuilder_insert(NULL, bb, p->it[i].name, &p->it[i].id, GIT_FILEMODE_BLOB) < 0)
			goto fail;
	if (git_treebuilder_write(&tid, bb) < 0 || git_treebuilder_insert(NULL, rb, bname, &tid, GIT_FILEMODE_TREE) < 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	iac_git_fail("cannot write resources into the history '%s'", wr->w.path);
done:
	git_treebuilder_free(bb);
	git_tree_free(prev);
	return rc;
}

/* The resources/ tree, built from the parent's so that unchanged buckets
 * stay as they are. *out_empty = 1 (and no tree) without resources. */
static int write_resources(git_oid *out, int *out_empty, writer *wr, const res_plan *p)
{
	git_treebuilder *rb = NULL;
	int rc = IAC_ERR;
	*out_empty = p->n == 0;
	if (p->n == 0)
		return 0;
	for (size_t i = 0; i < p->n; i++)
		if (p->it[i].text && writer_blob(wr, &p->it[i]) < 0)
			return IAC_ERR;
	if (git_treebuilder_new(&rb, wr->w.repo, p->prev) < 0)
		goto fail;
	for (size_t i = 0, b = 0; b < NBUCKETS; b++) {
		char bname[3];
		size_t j = i;
		while (j < p->n && p->it[j].bucket == (int)b)
			j++;
		snprintf(bname, sizeof(bname), "%02zx", b);
		if (j == i && git_treebuilder_get(rb, bname) && git_treebuilder_remove(rb, bname) < 0)
			goto fail;
		if (j > i && write_bucket(rb, wr, p, i, j) < 0)
			goto done;
		i = j;
	}
	if (git_treebuilder_write(out, rb) < 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	iac_git_fail("cannot write resources into the history '%s'", wr->w.path);
done:
	git_treebuilder_free(rb);
	return rc;
}

/* The root tree of a revision: meta.json, state-meta.json, outputs.json,
 * extra.json, resources/. */
static int write_root(git_oid *out, writer *wr, const res_plan *p, const json_t *state, const json_t *meta)
{
	iac_gitlog *g = &wr->w;
	git_treebuilder *bld = NULL;
	iac_buf text = IAC_BUF_INIT;
	json_t *sm = json_object(), *empty = json_object(), *v;
	const char *k;
	git_oid rid;
	int no_res = 1, rc = IAC_ERR;

	json_object_foreach((json_t *)state, k, v) {
		if (strcmp(k, "resources") && strcmp(k, "outputs") && strcmp(k, "extra"))
			json_object_set(sm, k, v);
	}
	const json_t *outputs = json_object_get(state, "outputs"), *extra = json_object_get(state, "extra");
	if (git_treebuilder_new(&bld, g->repo, NULL) < 0) {
		iac_git_fail("cannot write into the history '%s'", g->path);
		goto done;
	}
	if (put_json(bld, g, &text, "meta.json", meta) < 0 || put_json(bld, g, &text, "state-meta.json", sm) < 0 ||
	    put_json(bld, g, &text, "outputs.json", outputs ? outputs : empty) < 0 ||
	    put_json(bld, g, &text, "extra.json", extra ? extra : empty) < 0 || write_resources(&rid, &no_res, wr, p) < 0)
		goto done;
	if ((!no_res && git_treebuilder_insert(NULL, bld, "resources", &rid, GIT_FILEMODE_TREE) < 0) ||
	    git_treebuilder_write(out, bld) < 0) {
		iac_git_fail("cannot write into the history '%s'", g->path);
		goto done;
	}
	rc = 0;
done:
	git_treebuilder_free(bld);
	iac_buf_free(&text);
	json_decref(sm);
	json_decref(empty);
	return rc;
}

/* ---- recording ------------------------------------------------------- */

/* Parse RFC 3339 ("2026-11-27T15:37:45Z", "...45.123+02:00"). */
static int parse_time(git_time_t *out, int *out_offset, const char *s)
{
	struct tm tm = { 0 };
	int used = 0, oh = 0, om = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
			 &tm.tm_min, &tm.tm_sec, &used) != 6)
		return -1;
	s += used;
	if (*s == '.')
		for (s++; isdigit((unsigned char)*s); s++)
			;
	int sign = *s == '-' ? -1 : 1;
	if ((*s == '+' || *s == '-') && sscanf(s + 1, "%2d:%2d", &oh, &om) != 2)
		return -1;
	else if (*s != '+' && *s != '-' && *s != 'Z' && *s != 'z')
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out_offset = sign * (oh * 60 + om);
	*out = (git_time_t)timegm(&tm) - (git_time_t)*out_offset * 60;
	return 0;
}

/* A value fit for a signature or a trailer: one line, no angle brackets
 * (libgit2 refuses them in names), never empty. */
static char *one_line(const char *s, const char *dflt)
{
	char *r = iac_xstrdup(s && *s ? s : dflt);
	for (char *p = r; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '<' || *p == '>')
			*p = ' ';
	return r;
}

static int event_signature(git_signature **out, const json_t *meta)
{
	char *user = one_line(iac_json_str(meta, "user"), "unknown");
	char *host = one_line(iac_json_str(meta, "host"), "localhost");
	char *email = iac_xasprintf("%s@%s", user, host);
	git_time_t when;
	int offset = 0, rc;
	if (parse_time(&when, &offset, iac_json_str(meta, "at")) < 0) {
		when = (git_time_t)time(NULL);
		offset = 0;
	}
	rc = git_signature_new(out, user, email, when, offset);
	if (rc < 0)
		iac_git_fail("cannot make the commit author '%s <%s>'", user, email);
	free(user);
	free(host);
	free(email);
	return rc < 0 ? IAC_ERR : 0;
}

static void trailer(iac_buf *b, const char *name, const json_t *v)
{
	char *s = NULL;
	if (json_is_string(v))
		s = one_line(json_string_value(v), "");
	else if (json_is_array(v)) {   /* argv given as a list: words joined */
		iac_buf w = IAC_BUF_INIT;
		size_t i;
		const json_t *e;
		json_array_foreach(v, i, e) {
			const char *word = json_string_value(e);
			iac_buf_printf(&w, "%s%s", i ? " " : "", word ? word : "");
		}
		s = one_line(iac_buf_cstr(&w), "");
		iac_buf_free(&w);
	} else if (json_is_integer(v))
		s = iac_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	if (s)
		iac_buf_printf(b, "%s: %s\n", name, s);
	free(s);
}

/* "rev N: command (+A ~C -D)", a blank line, then trailers. */
static char *commit_message(long rev, const json_t *meta)
{
	iac_buf b = IAC_BUF_INIT;
	char *cmd = one_line(iac_json_str(meta, "command"), "record");
	const json_t *sum = json_object_get(meta, "summary");
	iac_buf_printf(&b, "rev %ld: %s", rev, cmd);
	if (json_is_object(sum))
		iac_buf_printf(&b, " (+%" JSON_INTEGER_FORMAT " ~%" JSON_INTEGER_FORMAT " -%" JSON_INTEGER_FORMAT ")",
			       json_integer_value(json_object_get(sum, "add")),
			       json_integer_value(json_object_get(sum, "change")),
			       json_integer_value(json_object_get(sum, "destroy")));
	iac_buf_puts(&b, "\n\n");
	trailer(&b, "User", json_object_get(meta, "user"));
	trailer(&b, "Host", json_object_get(meta, "host"));
	trailer(&b, "Exit", json_object_get(meta, "exit"));
	trailer(&b, "Command", json_object_get(meta, json_object_get(meta, "argv") ? "argv" : "command"));
	free(cmd);
	return iac_buf_detach(&b);
}

/* Move main from `expect` (NULL: main must not exist yet) to `to`; a
 * writer that got there first makes it IAC_ECONFLICT.
 *
 * Why not git_reference_create_matching() alone: libgit2 1.5 checks that a
 * new ref does not exist *before* it takes the ref's lock file, so two
 * processes recording the first revision at once could both "land" and the
 * second silently replaced the first. The compare and the move therefore
 * happen under an flock of our own (iac is the only writer of this
 * repository); the kernel drops it if we die. */
static int move_main(iac_gitlog *g, const git_oid *to, const git_oid *expect, long rev)
{
	git_reference *ref = NULL;
	git_oid cur;
	char log[64];
	int rc = IAC_ERR, have;
	char *lp = iac_xasprintf("%siac-record.lock", git_repository_path(g->repo));
	int fd = open(lp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		iac_err_set("cannot lock the history '%s': %s", g->path, strerror(errno));
		goto done;
	}
	have = git_reference_name_to_id(&cur, g->repo, MAIN_REF);
	if (have < 0 && have != GIT_ENOTFOUND) {
		rc = iac_git_fail("cannot read '%s' in the history '%s'", MAIN_REF, g->path);
		goto done;
	}
	if (expect ? (have < 0 || !git_oid_equal(&cur, expect)) : have == 0) {
		iac_err_set("cannot record revision %ld in the history '%s': another command recorded one at the "
			    "same time (record again)", rev, g->path);
		rc = IAC_ECONFLICT;
		goto done;
	}
	snprintf(log, sizeof(log), "iac: rev %ld", rev);
	rc = git_reference_create(&ref, g->repo, MAIN_REF, to, 1, log);
	git_reference_free(ref);
	if (rc == GIT_ELOCKED) {
		iac_err_set("cannot record revision %ld in the history '%s': '%s' is locked by another program "
			    "(record again)", rev, g->path, MAIN_REF);
		rc = IAC_ECONFLICT;
	} else if (rc < 0)
		rc = iac_git_fail("cannot move '%s' in the history '%s'", MAIN_REF, g->path);
done:
	if (fd >= 0)
		close(fd); /* drops the flock */
	free(lp);
	return rc;
}

static int write_commit(git_oid *out, iac_gitlog *w, const git_oid *tree_id, const git_oid *parent_id,
			long rev, const json_t *meta)
{
	git_signature *sig = NULL;
	git_tree *tree = NULL;
	git_commit *parent = NULL;
	char *msg = commit_message(rev, meta);
	int rc = IAC_ERR;
	if (event_signature(&sig, meta) < 0)
		goto done;
	/* the parent must be an object of the handle that writes */
	if ((parent_id && git_commit_lookup(&parent, w->repo, parent_id) < 0) ||
	    git_tree_lookup(&tree, w->repo, tree_id) < 0 ||
	    git_commit_create(out, w->repo, NULL, sig, sig, NULL, msg, tree, parent ? 1 : 0,
			      (const git_commit **)&parent) < 0) {
		iac_git_fail("cannot write revision %ld into the history '%s'", rev, w->path);
		goto done;
	}
	rc = 0;
done:
	git_commit_free(parent);
	git_tree_free(tree);
	git_signature_free(sig);
	free(msg);
	return rc;
}

int iac_gitlog_record(long *out_rev, iac_gitlog *g, const json_t *state, const json_t *meta)
{
	git_commit *parent = NULL;
	git_tree *ptree = NULL;
	git_oid tree_id, commit_id;
	const git_oid *parent_id = NULL;
	res_plan plan = { 0 };
	writer wr = { 0 };
	long prev = 0;
	json_t *m = NULL;
	int rc;

	*out_rev = 0;
	if (!json_is_object(state) || (meta && !json_is_object(meta)))
		return iac_err_set("cannot record the history: the state and the event must be JSON objects");
	if (json_object_get(state, "resources") && !json_is_array(json_object_get(state, "resources")))
		return iac_err_set("cannot record the history: the state's 'resources' is not a list");
	rc = head_commit(&parent, &prev, g);
	if (rc < 0 && rc != IAC_ENOTFOUND)
		return rc;
	rc = IAC_ERR;
	if (parent && git_commit_tree(&ptree, parent) < 0) {
		iac_git_fail("cannot read the head of the history '%s'", g->path);
		goto done;
	}
	parent_id = parent ? git_commit_id(parent) : NULL;
	m = meta ? json_deep_copy(meta) : json_object();
	json_object_set_new(m, "rev", json_integer(prev + 1));
	if (plan_resources(&plan, g, ptree, json_object_get(state, "resources")) < 0 ||
	    writer_open(&wr, g, plan.fresh) < 0)
		goto done;
	if (write_root(&tree_id, &wr, &plan, state, m) < 0 ||
	    write_commit(&commit_id, &wr.w, &tree_id, parent_id, prev + 1, m) < 0 || writer_finish(&wr) < 0)
		goto done;
	rc = move_main(g, &commit_id, parent_id, prev + 1);
	if (rc == 0)
		*out_rev = prev + 1;
done:
	writer_close(&wr);
	plan_free(&plan);
	json_decref(m);
	git_tree_free(ptree);
	git_commit_free(parent);
	return rc;
}

/* ---- listing --------------------------------------------------------- */

static void count_bucket(long c[3], const git_tree *nb, const git_tree *ob)
{
	size_t n = nb ? git_tree_entrycount(nb) : 0, o = ob ? git_tree_entrycount(ob) : 0;
	for (size_t i = 0; i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(nb, i);
		const git_tree_entry *oe = ob ? git_tree_entry_byname(ob, git_tree_entry_name(e)) : NULL;
		if (!oe)
			c[0]++;
		else if (!git_oid_equal(git_tree_entry_id(e), git_tree_entry_id(oe)))
			c[1]++;
	}
	for (size_t i = 0; i < o; i++)
		if (!nb || !git_tree_entry_byname(nb, git_tree_entry_name(git_tree_entry_byindex(ob, i))))
			c[2]++;
}

/* Files under resources/ added, changed, deleted (c[0..2]) from the old
 * root tree to the new one; equal buckets are skipped unread. */
static int count_changes(long c[3], iac_gitlog *g, const git_tree *nroot, const git_tree *oroot)
{
	git_tree *nres = NULL, *ores = NULL;
	int rc = IAC_ERR;
	c[0] = c[1] = c[2] = 0;
	if (subtree(&nres, g, nroot, "resources") < 0 || subtree(&ores, g, oroot, "resources") < 0)
		goto done;
	/* each side's buckets: the other side's same-named bucket, if any */
	for (int side = 0; side < 2; side++) {
		const git_tree *a = side ? ores : nres, *b = side ? nres : ores;
		for (size_t i = 0; a && i < git_tree_entrycount(a); i++) {
			const git_tree_entry *e = git_tree_entry_byindex(a, i);
			const git_tree_entry *be = b ? git_tree_entry_byname(b, git_tree_entry_name(e)) : NULL;
			git_tree *at = NULL, *bt = NULL;
			if ((be && git_oid_equal(git_tree_entry_id(e), git_tree_entry_id(be))) || (side && be))
				continue;   /* equal, or already counted from the new side */
			if (subtree(&at, g, a, git_tree_entry_name(e)) < 0 || subtree(&bt, g, b, git_tree_entry_name(e)) < 0) {
				git_tree_free(at);
				goto done;
			}
			count_bucket(c, side ? bt : at, side ? at : bt);
			git_tree_free(at);
			git_tree_free(bt);
		}
	}
	rc = 0;
done:
	git_tree_free(nres);
	git_tree_free(ores);
	return rc;
}

/* Whether the file at path differs between two trees (old may be NULL). */
static int path_changed(const git_tree *nt, const git_tree *ot, const char *path)
{
	git_tree_entry *a = NULL, *b = NULL;
	git_tree_entry_bypath(&a, nt, path);
	if (ot)
		git_tree_entry_bypath(&b, ot, path);
	int changed = (!a != !b) || (a && b && !git_oid_equal(git_tree_entry_id(a), git_tree_entry_id(b)));
	git_tree_entry_free(a);
	git_tree_entry_free(b);
	return changed;
}

/* Append commit id's list element to arr, unless path is given and the
 * commit left that file alone. */
static int list_one(json_t *arr, iac_gitlog *g, const git_oid *id, const char *path)
{
	git_commit *c = NULL, *p = NULL;
	git_tree *t = NULL, *pt = NULL;
	json_t *meta = NULL;
	long cnt[3];
	char hex[GIT_OID_HEXSZ + 1];
	int rc = IAC_ERR;

	if (git_commit_lookup(&c, g->repo, id) < 0 || git_commit_tree(&t, c) < 0 ||
	    (git_commit_parentcount(c) > 0 && (git_commit_parent(&p, c, 0) < 0 || git_commit_tree(&pt, p) < 0))) {
		iac_git_fail("cannot read the history '%s'", g->path);
		goto done;
	}
	rc = 0;
	if (path && !path_changed(t, pt, path))
		goto done;
	rc = IAC_ERR;
	if (read_part(&meta, g, t, "meta.json") < 0 || count_changes(cnt, g, t, pt) < 0)
		goto done;
	if (!json_is_object(meta)) {
		json_decref(meta);
		meta = json_object();
	}
	git_oid_tostr(hex, sizeof(hex), id);
	json_object_set_new(meta, "commit", json_string(hex));
	json_object_set_new(meta, "counts", json_pack("{s:I,s:I,s:I}", "add", (json_int_t)cnt[0], "change",
							(json_int_t)cnt[1], "destroy", (json_int_t)cnt[2]));
	json_array_append(arr, meta);
	rc = 0;
done:
	json_decref(meta);
	git_tree_free(t);
	git_tree_free(pt);
	git_commit_free(p);
	git_commit_free(c);
	return rc;
}

int iac_gitlog_list(json_t **out, iac_gitlog *g, long n, const char *addr)
{
	git_revwalk *w = NULL;
	git_oid id;
	json_t *arr = json_array();
	char *path = addr ? resource_path(addr) : NULL;
	int rc = head_id(&id, g);

	*out = NULL;
	if (rc == IAC_ENOTFOUND) {
		rc = 0;
		goto done;
	}
	if (rc < 0)
		goto done;
	rc = IAC_ERR;
	if (git_revwalk_new(&w, g->repo) < 0 || git_revwalk_push(w, &id) < 0 ||
	    git_revwalk_simplify_first_parent(w) < 0) {
		iac_git_fail("cannot walk the history '%s'", g->path);
		goto done;
	}
	while ((n <= 0 || (long)json_array_size(arr) < n) && git_revwalk_next(&id, w) == 0)
		if (list_one(arr, g, &id, path) < 0)
			goto done;
	rc = 0;
done:
	git_revwalk_free(w);
	free(path);
	if (rc == 0)
		*out = arr;
	else
		json_decref(arr);
	return rc;
}

/* ---- state at a revision --------------------------------------------- */

static int addr_cmp(const void *a, const void *b)
{
	const char *x = iac_json_str(*(json_t *const *)a, "address");
	const char *y = iac_json_str(*(json_t *const *)b, "address");
	return strcmp(x ? x : "", y ? y : "");
}

/* Every resources/<bb>/<file> blob of tree, parsed, into a vector. */
static int load_bucket(json_t ***v, size_t *n, size_t *cap, iac_gitlog *g, const git_tree *bucket)
{
	for (size_t i = 0; i < git_tree_entrycount(bucket); i++) {
		const git_tree_entry *e = git_tree_entry_byindex(bucket, i);
		git_blob *blob = NULL;
		json_error_t jerr;
		if (git_blob_lookup(&blob, g->repo, git_tree_entry_id(e)) < 0)
			return iac_git_fail("cannot read '%s' in the history '%s'", git_tree_entry_name(e), g->path);
		json_t *r = json_loadb(git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob), 0, &jerr);
		git_blob_free(blob);
		if (!r)
			return iac_err_set("damaged resource file '%s' in the history '%s': %s", git_tree_entry_name(e),
					   g->path, jerr.text);
		if (*n == *cap)
			*v = iac_xrealloc(*v, (*cap = *cap ? *cap * 2 : 256) * sizeof(**v));
		(*v)[(*n)++] = r;
	}
	return 0;
}

static int load_resources(json_t **out, iac_gitlog *g, const git_tree *root)
{
	git_tree *res = NULL;
	json_t **v = NULL;
	size_t n = 0, cap = 0;
	int rc = subtree(&res, g, root, "resources");
	for (size_t i = 0; rc == 0 && res && i < git_tree_entrycount(res); i++) {
		git_tree *bucket = NULL;
		rc = subtree(&bucket, g, res, git_tree_entry_name(git_tree_entry_byindex(res, i)));
		if (rc == 0 && bucket)
			rc = load_bucket(&v, &n, &cap, g, bucket);
		git_tree_free(bucket);
	}
	*out = json_array();
	if (rc == 0)
		qsort(v, n, sizeof(*v), addr_cmp);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(*out, v[i]);
	free(v);
	git_tree_free(res);
	if (rc < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

int iac_gitlog_state_at(json_t **out_state, json_t **out_meta, iac_gitlog *g, long rev)
{
	git_commit *c = NULL;
	git_tree *t = NULL;
	json_t *doc = NULL, *outputs = NULL, *extra = NULL, *res = NULL, *meta = NULL;
	int rc = commit_at_rev(&c, g, rev);

	*out_state = NULL;
	if (out_meta)
		*out_meta = NULL;
	if (rc < 0)
		return rc;
	rc = IAC_ERR;
	if (git_commit_tree(&t, c) < 0) {
		iac_git_fail("cannot read revision %ld of the history '%s'", rev, g->path);
		goto done;
	}
	if (read_part(&doc, g, t, "state-meta.json") < 0 || read_part(&outputs, g, t, "outputs.json") < 0 ||
	    read_part(&extra, g, t, "extra.json") < 0 || load_resources(&res, g, t) < 0 ||
	    (out_meta && read_part(&meta, g, t, "meta.json") < 0))
		goto done;
	if (!json_is_object(doc)) {
		iac_err_set("damaged revision %ld in the history '%s': state-meta.json is not an object", rev, g->path);
		goto done;
	}
	json_object_set_new(doc, "resources", res);
	json_object_set(doc, "outputs", outputs);
	json_object_set(doc, "extra", extra);
	res = NULL;
	*out_state = doc;
	doc = NULL;
	if (out_meta) {
		*out_meta = meta;
		meta = NULL;
	}
	rc = 0;
done:
	json_decref(doc);
	json_decref(outputs);
	json_decref(extra);
	json_decref(res);
	json_decref(meta);
	git_tree_free(t);
	git_commit_free(c);
	return rc;
}

/* ---- finding revisions ----------------------------------------------- */

/* A commit named by spec (anything git rev-parse takes); IAC_ENOTFOUND
 * with a message when there is none. */
static int resolve_commit(git_oid *out, iac_gitlog *g, const char *spec)
{
	git_object *o = NULL, *c = NULL;
	int rc = git_revparse_single(&o, g->repo, spec);
	if (rc == GIT_EAMBIGUOUS) {
		iac_err_set("'%s' names more than one commit in the history '%s' (give more digits)", spec, g->path);
		return IAC_ENOTFOUND;
	}
	if (rc < 0 || git_object_peel(&c, o, GIT_OBJECT_COMMIT) < 0) {
		git_object_free(o);
		iac_err_set("no revision '%s' in the history '%s'", spec, g->path);
		return IAC_ENOTFOUND;
	}
	git_oid_cpy(out, git_object_id(c));
	git_object_free(c);
	git_object_free(o);
	return 0;
}

int iac_gitlog_find(long *out_rev, iac_gitlog *g, const char *spec)
{
	git_commit *c = NULL;
	git_oid id;
	long head = 0;
	int rc;

	*out_rev = 0;
	if (!spec || !*spec) {
		iac_err_set("no revision '' in the history '%s'", g->path);
		return IAC_ENOTFOUND;
	}
	/* a number is a rev while there is one; longer digit strings may be
	 * a commit id that happens to have no letter */
	if (strspn(spec, "0123456789") == strlen(spec) && strlen(spec) < 16) {
		rc = head_commit(&c, &head, g);
		git_commit_free(c);
		c = NULL;
		if (rc < 0 && rc != IAC_ENOTFOUND)
			return rc;
		long r = strtol(spec, NULL, 10);
		if (r >= 1 && r <= head) {
			*out_rev = r;
			return 0;
		}
		if (strlen(spec) < 4) {
			iac_err_set("no revision %s in the history '%s' (the newest is %ld)", spec, g->path, head);
			return IAC_ENOTFOUND;
		}
	}
	if ((rc = resolve_commit(&id, g, spec)) < 0)
		return rc;
	if (git_commit_lookup(&c, g->repo, &id) < 0)
		return iac_git_fail("cannot read '%s' in the history '%s'", spec, g->path);
	rc = commit_rev(out_rev, g, c);
	git_commit_free(c);
	return rc;
}

/* ---- packs ----------------------------------------------------------- */

int iac_gitlog_pack(char **out, size_t *out_len, iac_gitlog *g, const char *from, const char *to)
{
	git_packbuilder *pb = NULL;
	git_revwalk *w = NULL;
	git_buf buf = { 0 };
	git_oid to_id, from_id;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (to && *to)
		rc = resolve_commit(&to_id, g, to);
	else if ((rc = head_id(&to_id, g)) == IAC_ENOTFOUND)
		iac_err_set("cannot pack the history '%s': it is empty", g->path);
	if (rc < 0 || (from && *from && (rc = resolve_commit(&from_id, g, from)) < 0))
		return rc;
	rc = IAC_ERR;
	if (git_packbuilder_new(&pb, g->repo) < 0 || git_revwalk_new(&w, g->repo) < 0 ||
	    git_revwalk_push(w, &to_id) < 0 || (from && *from && git_revwalk_hide(w, &from_id) < 0) ||
	    git_packbuilder_insert_walk(pb, w) < 0 || git_packbuilder_write_buf(&buf, pb) < 0) {
		iac_git_fail("cannot pack the history '%s'", g->path);
		goto done;
	}
	*out = iac_xmalloc(buf.size);
	memcpy(*out, buf.ptr, buf.size);
	*out_len = buf.size;
	rc = 0;
done:
	git_buf_dispose(&buf);
	git_revwalk_free(w);
	git_packbuilder_free(pb);
	return rc;
}

static int index_pack(iac_gitlog *g, const char *pack, size_t len)
{
	git_odb *odb = NULL;
	git_odb_writepack *wp = NULL;
	git_indexer_progress st = { 0 };
	int rc = 0;
	if (git_repository_odb(&odb, g->repo) < 0 || git_odb_write_pack(&wp, odb, NULL, NULL) < 0 ||
	    wp->append(wp, pack, len, &st) < 0 || wp->commit(wp, &st) < 0)
		rc = iac_git_fail("cannot add a pack of %zu bytes to the history '%s'", len, g->path);
	if (wp)
		wp->free(wp);
	git_odb_free(odb);
	return rc;
}

int iac_gitlog_unpack(iac_gitlog *g, const char *pack, size_t len, const char *set_head)
{
	git_commit *c = NULL;
	git_tree *t = NULL;
	git_reference *ref = NULL;
	git_oid id;
	size_t hl = set_head ? strlen(set_head) : 0;
	int rc = 0;

	if (len > 0 && index_pack(g, pack, len) < 0)
		return IAC_ERR;
	if (!hl)
		return 0;
	if (hl < 4 || hl > GIT_OID_HEXSZ || strspn(set_head, "0123456789abcdefABCDEF") != hl ||
	    git_oid_fromstrn(&id, set_head, hl) < 0)
		return iac_err_set("cannot move the history '%s' to '%s': not a commit id", g->path, set_head);
	/* the commit and its tree must be here: a head whose objects are
	 * missing would make every later read fail */
	if (git_commit_lookup_prefix(&c, g->repo, &id, hl) < 0 || git_commit_tree(&t, c) < 0)
		rc = iac_git_fail("cannot move the history '%s' to commit %s", g->path, set_head);
	else if (git_reference_create(&ref, g->repo, MAIN_REF, git_commit_id(c), 1, "iac: unpack") < 0)
		rc = iac_git_fail("cannot move '%s' in the history '%s'", MAIN_REF, g->path);
	git_reference_free(ref);
	git_tree_free(t);
	git_commit_free(c);
	return rc;
}

/* ---- push ------------------------------------------------------------ */

typedef struct {
	iac_gitnet net;     /* first: the callbacks' payload */
	char rejected[512];  /* the remote's reason for refusing main */
} push_ctx;

static int update_ref_cb(const char *refname, const char *status, void *payload)
{
	push_ctx *p = payload;
	if (status)
		snprintf(p->rejected, sizeof(p->rejected), "%s: %s", refname, status);
	return 0;
}

int iac_gitlog_push(iac_gitlog *g, const char *remote_url)
{
	git_remote *remote = NULL;
	git_remote_create_options co;
	git_push_options o;
	push_ctx p = { 0 };
	char *spec = MAIN_REF ":" MAIN_REF, *pw = iac_gitnet_url_password(remote_url);
	char *shown = iac_gitnet_url_shown(remote_url);
	git_strarray refs = { &spec, 1 };
	git_oid id;
	int rc = head_id(&id, g);

	if (rc < 0) {
		if (rc == IAC_ENOTFOUND)
			iac_err_set("nothing to push to '%s': the history '%s' is empty", shown, g->path);
		rc = IAC_ERR;
		goto done;
	}
	git_push_options_init(&o, GIT_PUSH_OPTIONS_VERSION);
	iac_gitnet_init(&p.net, remote_url, "IAC_HISTORY_SSH_KEY", "IAC_HISTORY_KNOWN_HOSTS");
	iac_gitnet_callbacks(&o.callbacks, &p.net);
	o.callbacks.push_update_reference = update_ref_cb;
	git_remote_create_options_init(&co, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	co.repository = g->repo;
	/* the URL as given: no url.*.insteadOf rewriting (whose config scan
	 * also leaks in libgit2 1.5.1) */
	co.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	rc = git_remote_create_with_opts(&remote, remote_url, &co);
	if (rc >= 0)
		rc = git_remote_push(remote, &refs, &o);
	if (rc < 0) {
		const git_error *e = git_error_last();
		char *why = iac_gitnet_scrub(p.net.why[0] ? p.net.why : e && e->message ? e->message : "unknown error", pw);
		iac_err_set("cannot push the history to '%s': %s%s", shown, why,
			    rc == GIT_ENONFASTFORWARD ? " (the remote has revisions this history lacks)" : "");
		free(why);
		rc = IAC_ERR;
	} else if (p.rejected[0]) {
		char *why = iac_gitnet_scrub(p.rejected, pw);
		rc = iac_err_set("the remote '%s' refused the history: %s", shown, why);
		free(why);
	}
done:
	git_remote_free(remote);
	free(pw);
	free(shown);
	return rc;
}

/* ---- attribute diff -------------------------------------------------- */

static int is_redacted(const json_t *v)
{
	const char *m = iac_json_str(v, "$iac");
	return (m && !strcmp(m, "redacted")) || (json_is_string(v) && !strcmp(json_string_value(v), "(sensitive)"));
}

/* A copy of v with every redacted value replaced by "(sensitive)". */
static json_t *unredacted_view(const json_t *v)
{
	const char *k;
	json_t *e, *r;
	size_t i;
	if (is_redacted(v))
		return json_string("(sensitive)");
	if (json_is_object(v)) {
		r = json_object();
		json_object_foreach((json_t *)v, k, e) {
			json_object_set_new(r, k, unredacted_view(e));
		}
		return r;
	}
	if (json_is_array(v)) {
		r = json_array();
		json_array_foreach(v, i, e) {
			json_array_append_new(r, unredacted_view(e));
		}
		return r;
	}
	return json_incref((json_t *)v);
}

static void put_value(iac_buf *b, const json_t *v)
{
	if (!v) {
		iac_buf_puts(b, "(absent)");
		return;
	}
	if (is_redacted(v)) {
		iac_buf_puts(b, "(sensitive)");
		return;
	}
	json_t *view = unredacted_view(v);
	char *s = json_dumps(view, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
	iac_buf_puts(b, s ? s : "(unprintable)");
	free(s);
	json_decref(view);
}

static int same(const json_t *a, const json_t *b)
{
	return (!a && !b) || (a && b && json_equal((json_t *)a, (json_t *)b));
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of two objects (either may be NULL), sorted, each once; the
 * strings belong to the objects. */
static const char **key_union(size_t *out_n, const json_t *a, const json_t *b)
{
	const char **k = iac_xcalloc(json_object_size(a) + json_object_size(b) + 1, sizeof(*k));
	const char *key;
	json_t *v;
	size_t n = 0, m = 0;
	json_object_foreach((json_t *)a, key, v) {
		k[n++] = key;
	}
	json_object_foreach((json_t *)b, key, v) {
		k[n++] = key;
	}
	qsort(k, n, sizeof(*k), str_cmp);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || strcmp(k[m - 1], k[i]))
			k[m++] = k[i];
	*out_n = m;
	return k;
}

static void change_line(iac_buf *b, const char *fmt, const char *key, const json_t *o, const json_t *n)
{
	iac_buf_printf(b, fmt, key);
	put_value(b, o);
	iac_buf_puts(b, " -> ");
	put_value(b, n);
	iac_buf_putc(b, '\n');
}

/* "~ ADDR" and its lines when the two entries differ in anything but
 * updated_at (which every write changes). */
static void diff_entry(iac_buf *b, const char *addr, const json_t *o, const json_t *n)
{
	const json_t *oa = json_object_get(o, "attributes"), *na = json_object_get(n, "attributes");
	iac_buf lines = IAC_BUF_INIT;
	size_t cnt;
	const char **keys = key_union(&cnt, oa, na);
	for (size_t i = 0; i < cnt; i++)
		if (!same(json_object_get(oa, keys[i]), json_object_get(na, keys[i])))
			change_line(&lines, "    %s: ", keys[i], json_object_get(oa, keys[i]), json_object_get(na, keys[i]));
	free(keys);
	keys = key_union(&cnt, o, n);
	for (size_t i = 0; i < cnt; i++)
		if (strcmp(keys[i], "attributes") && strcmp(keys[i], "updated_at") &&
		    !same(json_object_get(o, keys[i]), json_object_get(n, keys[i])))
			change_line(&lines, "    (%s): ", keys[i], json_object_get(o, keys[i]), json_object_get(n, keys[i]));
	free(keys);
	if (lines.len)
		iac_buf_printf(b, "~ %s\n%s", addr, iac_buf_cstr(&lines));
	iac_buf_free(&lines);
}

/* address -> entry for a state document's resources (entries borrowed by
 * reference). */
static json_t *index_resources(const json_t *state)
{
	json_t *idx = json_object(), *e;
	size_t i;
	json_array_foreach(json_object_get(state, "resources"), i, e) {
		const char *a = iac_json_str(e, "address");
		if (a)
			json_object_set(idx, a, e);
	}
	return idx;
}

static int addr_in(const char *addr, const char *filter)
{
	size_t l = filter ? strlen(filter) : 0;
	return !filter || !strcmp(addr, filter) ||
	       (!strncmp(addr, filter, l) && (addr[l] == '.' || addr[l] == '['));
}

static void put_output(iac_buf *b, const json_t *out)
{
	if (json_is_true(json_object_get(out, "sensitive")))
		iac_buf_puts(b, "(sensitive)");
	else
		put_value(b, json_object_get(out, "value"));
}

static void diff_outputs(iac_buf *b, const json_t *oo, const json_t *no)
{
	iac_buf lines = IAC_BUF_INIT;
	size_t cnt;
	const char **keys = key_union(&cnt, oo, no);
	for (size_t i = 0; i < cnt; i++) {
		const json_t *o = json_object_get(oo, keys[i]), *n = json_object_get(no, keys[i]);
		if (same(o, n))
			continue;
		iac_buf_printf(&lines, "%c %s", !o ? '+' : !n ? '-' : '~', keys[i]);
		if (n) {
			iac_buf_puts(&lines, ": ");
			if (o) {
				put_output(&lines, o);
				iac_buf_puts(&lines, " -> ");
			}
			put_output(&lines, n);
		}
		iac_buf_putc(&lines, '\n');
	}
	free(keys);
	if (lines.len)
		iac_buf_printf(b, "Outputs:\n%s", iac_buf_cstr(&lines));
	iac_buf_free(&lines);
}

char *iac_gitlog_diff_render(const json_t *old_state, const json_t *new_state, const char *addr_filter)
{
	iac_buf b = IAC_BUF_INIT;
	json_t *oi = index_resources(old_state), *ni = index_resources(new_state);
	size_t cnt;
	const char **addrs = key_union(&cnt, oi, ni);
	for (size_t i = 0; i < cnt; i++) {
		const json_t *o = json_object_get(oi, addrs[i]), *n = json_object_get(ni, addrs[i]);
		if (!addr_in(addrs[i], addr_filter))
			continue;
		if (!o)
			iac_buf_printf(&b, "+ %s\n", addrs[i]);
		else if (!n)
			iac_buf_printf(&b, "- %s\n", addrs[i]);
		else
			diff_entry(&b, addrs[i], o, n);
	}
	free(addrs);
	if (!addr_filter)
		diff_outputs(&b, json_object_get(old_state, "outputs"), json_object_get(new_state, "outputs"));
	json_decref(oi);
	json_decref(ni);
	return iac_buf_detach(&b);
}

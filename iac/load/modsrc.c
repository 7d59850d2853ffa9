/* modsrc: module sources from git, pinned in iac.lock (see modsrc.h). */
#include "iac/load/modsrc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/state/gitnet.h"

#define LOCK_NAME "iac.lock"
#define CACHE_DIR ".iac/modules"
#define KEY_ENV "IAC_MODULES_SSH_KEY"
#define KNOWN_HOSTS_ENV "IAC_MODULES_KNOWN_HOSTS"

/* ---- parsing (pure) --------------------------------------------------- */

int iac_modsrc_is_remote(const char *source)
{
	return !strncmp(source, "git+", 4) || !strncmp(source, "git::", 5) || strstr(source, "://") != NULL;
}

void iac_modsrc_free(iac_modsrc *s)
{
	free(s->scheme);
	free(s->url);
	free(s->subdir);
	free(s->ref);
	memset(s, 0, sizeof(*s));
}

static int bad(char *err, size_t errlen, const char *fmt, const char *a)
{
	snprintf(err, errlen, fmt, a);
	return IAC_ERR;
}

/* A ref as git allows it in a refname, minus what would let it pass for
 * an option or a path outside refs/. */
static int valid_ref(const char *r)
{
	if (!*r || *r == '-' || *r == '/' || strstr(r, "..") || strstr(r, "//") || strstr(r, "@{") ||
	    r[strlen(r) - 1] == '/' || r[strlen(r) - 1] == '.')
		return 0;
	for (const char *p = r; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("._-/+", *p)))
			return 0;
	return 1;
}

static int valid_subdir(const char *s)
{
	const char *p = s;
	while (*p) {
		size_t l = strcspn(p, "/");
		if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		for (size_t i = 0; i < l; i++)
			if ((unsigned char)p[i] < 0x20 || p[i] == '\\')
				return 0;
		p += l;
		if (*p == '/')
			p++;
	}
	return 1;
}

/* "git+SCHEME://": the scheme, one of those supported; *rest is what
 * follows "://". */
static int parse_scheme(char scheme[16], const char **rest, const char *source, char *err, size_t errlen)
{
	static const char *const schemes[] = { "https", "ssh", "file", "git", NULL };
	if (!strncmp(source, "git::", 5))
		return bad(err, errlen, "write git sources as 'git+%s' (the '::' form is not used here)", source + 5);
	if (strncmp(source, "git+", 4))
		return bad(err, errlen, "unsupported source '%s': remote modules come from git, written "
			   "git+https://HOST/REPO//DIR?ref=REF (also git+ssh://, git+file://, git+git://)", source);
	const char *u = source + 4, *colon = strstr(u, "://");
	if (!colon)
		return bad(err, errlen, "source '%s': expected a URL after 'git+' (like git+https://HOST/REPO)", source);
	size_t sl = (size_t)(colon - u);
	snprintf(scheme, 16, "%.*s", (int)(sl < 15 ? sl : 15), u);
	int known = 0;
	for (int i = 0; schemes[i]; i++)
		known |= sl == strlen(schemes[i]) && !strncmp(u, schemes[i], sl);
	if (!known)
		return bad(err, errlen, !strncmp(scheme, "http", 4) && sl == 4
			   ? "unsupported scheme '%s': use https (a module is code that runs here)"
			   : "unsupported scheme '%s': use https, ssh, file or git", scheme);
	*rest = colon + 3;
	return 0;
}

/* The URL's host part [host, host_end): none for file URLs, one for the
 * others, and never a password. */
static int check_host(const char *source, const char *scheme, const char *host, const char *host_end, char *err,
		      size_t errlen)
{
	if (!strcmp(scheme, "file"))
		return host_end != host
			? bad(err, errlen, "source '%s': a file URL names no host: git+file:///absolute/path", source)
			: 0;
	if (host_end == host || (host_end - host == 1 && *host == '@'))
		return bad(err, errlen, "source '%s': the URL names no host", source);
	const char *at = memchr(host, '@', (size_t)(host_end - host));
	if (at && memchr(host, ':', (size_t)(at - host))) {
		/* the message must not repeat the password it refuses */
		char *shown = iac_gitnet_url_shown(source);
		bad(err, errlen, "source '%s': a password in the source would be written to iac.lock and "
		    "to the state; use an ssh key, or for https the user in the URL and the password (a "
		    "token) in IAC_GIT_PASSWORD", shown);
		free(shown);
		return IAC_ERR;
	}
	return 0;
}

/* The module's directory [s, end) after "//", trailing slashes dropped. */
static int parse_subdir(char **out, const char *source, const char *s, const char *end, char *err, size_t errlen)
{
	size_t l = (size_t)(end - s);
	while (l && s[l - 1] == '/')
		l--;
	*out = iac_xstrndup(s, l);
	if (!**out)
		return bad(err, errlen, "source '%s': nothing after '//' (name the module's directory, or drop the '//')",
			   source);
	if (!valid_subdir(*out))
		return bad(err, errlen, "source '%s': the directory after '//' must stay inside the repository "
			   "(no '..', '.' or empty parts)", source);
	return 0;
}

/* The query p (after '?'): ref=REF, once, and nothing else. */
static int parse_query(char **out_ref, const char *source, const char *p, char *err, size_t errlen)
{
	while (*p) {
		size_t l = strcspn(p, "&");
		char *kv = iac_xstrndup(p, l), *eq = strchr(kv, '=');
		if (!eq || strncmp(kv, "ref=", 4) || eq != kv + 3) {
			if (eq)
				*eq = '\0';
			snprintf(err, errlen, "source '%s': unknown parameter '%s' (only ?ref=TAG, BRANCH or COMMIT)",
				 source, kv);
			free(kv);
			return IAC_ERR;
		}
		if (*out_ref || !valid_ref(eq + 1)) {
			snprintf(err, errlen, *out_ref ? "source '%s': ref given twice"
				 : "source '%s': ref '%s' is not a valid tag, branch or commit name", source, eq + 1);
			free(kv);
			return IAC_ERR;
		}
		*out_ref = iac_xstrdup(eq + 1);
		free(kv);
		p += l + (p[l] == '&');
	}
	return *out_ref ? 0 : bad(err, errlen, "source '%s': '?' with no ref=", source);
}

int iac_modsrc_parse(iac_modsrc *out, const char *source, char *err, size_t errlen)
{
	char scheme[16];
	const char *rest;
	memset(out, 0, sizeof(*out));
	if (parse_scheme(scheme, &rest, source, err, errlen) < 0)
		return IAC_ERR;
	const char *u = source + 4;
	const char *q = strchr(rest, '?');
	const char *end = q ? q : rest + strlen(rest);
	/* the subdirectory starts at the first "//" after the host part */
	const char *slash2 = NULL;
	for (const char *p = rest + 1; p + 1 < end; p++)
		if (p[0] == '/' && p[1] == '/') {
			slash2 = p;
			break;
		}
	const char *url_end = slash2 ? slash2 : end;
	const char *host_end = rest + strcspn(rest, "/?");
	if (host_end > url_end)
		host_end = url_end;
	if (check_host(source, scheme, rest, host_end, err, errlen) < 0)
		return IAC_ERR;
	if ((size_t)(url_end - host_end) <= 1)
		return bad(err, errlen, "source '%s': the URL names no repository path", source);
	out->scheme = iac_xstrdup(scheme);
	out->url = iac_xasprintf("%.*s", (int)(url_end - u), u);
	int rc = 0;
	if (slash2)
		rc = parse_subdir(&out->subdir, source, slash2 + 2, end, err, errlen);
	else
		out->subdir = iac_xstrdup("");
	if (rc == 0 && q)
		rc = parse_query(&out->ref, source, q + 1, err, errlen);
	if (rc < 0)
		iac_modsrc_free(out);
	return rc;
}

/* ---- mode and report --------------------------------------------------- */

static int g_mode = IAC_MODSRC_LOCKED;
static json_t *g_report;

void iac_modsrc_set_mode(int mode)
{
	g_mode = mode;
}

int iac_modsrc_mode(void)
{
	return g_mode;
}

const json_t *iac_modsrc_report(void)
{
	return g_report;
}

/* ---- tree checksum ----------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Feed rel (relative path) and what it is into md, recursively, in a fixed
 * order so the same tree always gives the same sum. */
static int hash_dir(EVP_MD_CTX *md, const char *abs, const char *rel)
{
	DIR *d = opendir(abs);
	if (!d)
		return iac_err_sys("cannot read the module directory '%s'", abs);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			names = iac_xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = iac_xstrdup(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *a = iac_path_join(abs, names[i]);
		char *r = *rel ? iac_xasprintf("%s/%s", rel, names[i]) : iac_xstrdup(names[i]);
		struct stat st;
		if (lstat(a, &st) < 0) {
			rc = iac_err_sys("cannot read '%s'", a);
		} else if (S_ISDIR(st.st_mode)) {
			rc = hash_dir(md, a, r);
		} else if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t tl = readlink(a, target, sizeof(target));
			if (tl < 0) {
				rc = iac_err_sys("cannot read the link '%s'", a);
			} else {
				char *head = iac_xasprintf("l %s %zd\n", r, tl);
				EVP_DigestUpdate(md, head, strlen(head) + 1);
				EVP_DigestUpdate(md, target, (size_t)tl);
				free(head);
			}
		} else if (S_ISREG(st.st_mode)) {
			char *data = NULL;
			size_t len = 0;
			if (iac_file_read(&data, &len, a) < 0) {
				rc = IAC_ERR;
			} else {
				char *head = iac_xasprintf("%c %s %zu\n", (st.st_mode & 0111) ? 'x' : 'f', r, len);
				EVP_DigestUpdate(md, head, strlen(head) + 1);
				EVP_DigestUpdate(md, data, len);
				free(head);
			}
			free(data);
		} else {
			rc = iac_err_set("'%s' is neither a file, a directory nor a link", a);
		}
		free(a);
		free(r);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int iac_modsrc_tree_checksum(char **out, const char *dir)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char sum[EVP_MAX_MD_SIZE];
	unsigned int sl = 0;
	*out = NULL;
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(md);
		return iac_err_set("cannot start a sha256 digest");
	}
	int rc = hash_dir(md, dir, "");
	if (rc == 0 && EVP_DigestFinal_ex(md, sum, &sl)) {
		char hex[2 * EVP_MAX_MD_SIZE + 1];
		for (unsigned int i = 0; i < sl; i++)
			snprintf(hex + 2 * i, 3, "%02x", sum[i]);
		*out = iac_xasprintf("sha256:%s", hex);
	} else if (rc == 0) {
		rc = iac_err_set("cannot finish a sha256 digest");
	}
	EVP_MD_CTX_free(md);
	return rc;
}

/* ---- the cache ---------------------------------------------------------- */

struct iac_modcache {
	char *dir;          /* configuration directory */
	char *cache;        /* dir/.iac/modules */
	int mode;
	json_t *lock;       /* iac.lock's "modules" as read (source -> entry); {} when absent */
	int lock_found;     /* iac.lock exists */
	json_t *next;       /* init: the entries of the iac.lock to write */
	json_t *checked;    /* checkout dir -> true: checksum verified in this run */
	json_t *fetched;    /* init: url -> default branch ("" when unknown): fetched in this run */
	json_t *changes;    /* init -upgrade: lines */
};

static char *short_id(const char *commit)
{
	return iac_xstrndup(commit ? commit : "?", 7);
}

int iac_modcache_open(iac_modcache **out, const char *dir)
{
	iac_modcache *c = iac_xcalloc(1, sizeof(*c));
	c->dir = iac_xstrdup(dir);
	c->cache = iac_path_join(dir, CACHE_DIR);
	c->mode = g_mode;
	c->next = json_object();
	c->checked = json_object();
	c->fetched = json_object();
	c->changes = json_array();
	char *path = iac_path_join(dir, LOCK_NAME), *text = NULL;
	size_t len;
	*out = NULL;
	if (access(path, F_OK) == 0) {
		json_error_t jerr;
		c->lock_found = 1;
		if (iac_file_read(&text, &len, path) < 0) {
			free(path);
			iac_modcache_free(c);
			return IAC_ERR;
		}
		json_t *doc = json_loadb(text, len, 0, &jerr);
		free(text);
		json_t *mods = json_object_get(doc, "modules");
		if (!json_is_object(mods)) {
			iac_err_set("%s:%d: '%s' is not a lock file iac can read (%s); fix it, or delete it and run "
				    "'iac init'", LOCK_NAME, doc ? 1 : jerr.line, path, doc ? "no \"modules\" object" : jerr.text);
			json_decref(doc);
			free(path);
			iac_modcache_free(c);
			return IAC_ERR;
		}
		if (json_integer_value(json_object_get(doc, "version")) > 1) {
			iac_err_set("'%s' was written by a newer iac (lock format %lld); upgrade iac", path,
				    (long long)json_integer_value(json_object_get(doc, "version")));
			json_decref(doc);
			free(path);
			iac_modcache_free(c);
			return IAC_ERR;
		}
		c->lock = json_incref(mods);
		json_decref(doc);
	} else {
		c->lock = json_object();
	}
	free(path);
	*out = c;
	return 0;
}

void iac_modcache_free(iac_modcache *c)
{
	if (!c)
		return;
	free(c->dir);
	free(c->cache);
	json_decref(c->lock);
	json_decref(c->next);
	json_decref(c->checked);
	json_decref(c->fetched);
	json_decref(c->changes);
	free(c);
}

/* The cache's directory names: per repository URL, and per source and commit. */
static char *repo_dir(iac_modcache *c, const char *url)
{
	char hex[65];
	iac_sha256_hex(hex, url, strlen(url));
	return iac_xasprintf("%s/repos/%.16s.git", c->cache, hex);
}

static char *checkout_dir(iac_modcache *c, const iac_modsrc *src, const char *commit)
{
	char hex[65];
	char *key = iac_xasprintf("%s//%s", src->url, src->subdir);
	iac_sha256_hex(hex, key, strlen(key));
	free(key);
	/* a readable name: the module's directory (or the repository's) */
	const char *name = *src->subdir ? strrchr(src->subdir, '/') : strrchr(src->url, '/');
	name = name ? name + 1 : *src->subdir ? src->subdir : "module";
	size_t nl = strcspn(name, ".");
	if (!nl) {
		name = "module";
		nl = 6;
	}
	return iac_xasprintf("%s/%.*s-%.12s-%.8s", c->cache, (int)(nl > 40 ? 40 : nl), name, commit, hex);
}

static int dir_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *de;
		if (!d)
			return -1;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char *p = iac_path_join(path, de->d_name);
			rm_rf(p);
			free(p);
		}
		closedir(d);
		return rmdir(path);
	}
	return unlink(path);
}

/* ---- init: fetch and check out -------------------------------------------- */

static int open_repo(git_repository **out, iac_modcache *c, const char *url)
{
	char *path = repo_dir(c, url);
	int rc = 0;
	iac_git_init();
	if (dir_exists(path)) {
		if (git_repository_open_bare(out, path) < 0)
			rc = iac_git_fail("cannot open the module cache '%s' (delete it and run 'iac init')", path);
	} else {
		char *parent = iac_path_join(c->cache, "repos");
		if (iac_mkdir_p(parent, 0700) < 0)
			rc = IAC_ERR;
		else if (git_repository_init(out, path, 1) < 0)
			rc = iac_git_fail("cannot create the module cache '%s'", path);
		free(parent);
	}
	free(path);
	return rc;
}

/* Fetch every branch and tag of url into repo (once per run). The remote's
 * default branch is remembered for sources without a ref. */
static int fetch(iac_modcache *c, git_repository *repo, const char *addr, const char *source, const char *url)
{
	if (json_object_get(c->fetched, url))
		return 0;
	static char *specs[] = { "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*" };
	git_strarray refspecs = { specs, 2 };
	git_remote *remote = NULL;
	git_remote_create_options co;
	git_remote_callbacks cb;
	git_fetch_options fo;
	git_buf dflt = { 0 };
	iac_gitnet net;
	int rc;

	iac_gitnet_init(&net, url, KEY_ENV, KNOWN_HOSTS_ENV);
	git_remote_create_options_init(&co, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	co.repository = repo;
	co.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	git_remote_init_callbacks(&cb, GIT_REMOTE_CALLBACKS_VERSION);
	iac_gitnet_callbacks(&cb, &net);
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.callbacks = cb;
	fo.prune = GIT_FETCH_PRUNE;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	rc = git_remote_create_with_opts(&remote, url, &co);
	if (rc >= 0)
		rc = git_remote_connect(remote, GIT_DIRECTION_FETCH, &cb, NULL, NULL);
	if (rc >= 0) {
		if (git_remote_default_branch(&dflt, remote) < 0)
			git_error_clear();
		rc = git_remote_download(remote, &refspecs, &fo);
	}
	if (rc >= 0)
		rc = git_remote_update_tips(remote, &cb, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE, "iac init");
	if (rc < 0) {
		const git_error *e = git_error_last();
		char *pw = iac_gitnet_url_password(url), *shown = iac_gitnet_url_shown(url);
		char *why = iac_gitnet_scrub(net.why[0] ? net.why : e && e->message ? e->message : "unknown error", pw);
		iac_err_set("module '%s': cannot fetch '%s' from '%s': %s", addr, source, shown, why);
		free(why);
		free(pw);
		free(shown);
		rc = IAC_ERR;
	} else {
		const char *b = dflt.ptr && !strncmp(dflt.ptr, "refs/heads/", 11) ? dflt.ptr + 11 : "";
		json_object_set_new(c->fetched, url, json_string(b));
		rc = 0;
	}
	if (remote)
		git_remote_disconnect(remote);
	git_buf_dispose(&dflt);
	git_remote_free(remote);
	return rc;
}

/* The commit ref names in repo (after a fetch): a tag, a branch, or a
 * commit id (4 to 40 hex digits). */
static int resolve_ref(git_oid *out, iac_modcache *c, git_repository *repo, const char *addr, const char *source,
		       const iac_modsrc *src)
{
	const char *ref = src->ref;
	if (!ref) {
		ref = iac_json_str(c->fetched, src->url);
		if (!ref || !*ref)
			return iac_err_set("module '%s': cannot tell the default branch of '%s'; add ?ref=BRANCH to the "
					   "source '%s'", addr, src->url, source);
	}
	const char *forms[] = { "refs/tags/%s", "refs/remotes/origin/%s", NULL };
	for (int i = 0; forms[i]; i++) {
		char name[600];
		git_object *obj = NULL, *peeled = NULL;
		snprintf(name, sizeof(name), forms[i], ref);
		if (git_revparse_single(&obj, repo, name) < 0) {
			git_error_clear();
			continue;
		}
		int rc = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
		if (rc == 0)
			git_oid_cpy(out, git_object_id(peeled));
		git_object_free(peeled);
		git_object_free(obj);
		if (rc == 0)
			return 0;
		git_error_clear();
	}
	size_t l = strlen(ref);
	if (l >= 4 && l <= 40 && strspn(ref, "0123456789abcdefABCDEF") == l) {
		git_oid id;
		git_object *obj = NULL;
		if (git_oid_fromstrn(&id, ref, l) == 0 && git_object_lookup_prefix(&obj, repo, &id, l, GIT_OBJECT_COMMIT) == 0) {
			git_oid_cpy(out, git_object_id(obj));
			git_object_free(obj);
			return 0;
		}
		git_error_clear();
	}
	return iac_err_set("module '%s': ref '%s' of source '%s' is not a tag, branch or commit of '%s'", addr, ref,
			   source, src->url);
}

typedef struct {
	git_repository *repo;
	const char *root;   /* where the files go */
	int rc;
} write_ctx;

static int write_entry(const char *prefix, const git_tree_entry *e, void *payload)
{
	write_ctx *w = payload;
	char *path = iac_xasprintf("%s/%s%s", w->root, prefix, git_tree_entry_name(e));
	git_filemode_t mode = git_tree_entry_filemode(e);
	git_blob *blob = NULL;
	int rc = 0;
	if (mode == GIT_FILEMODE_TREE) {
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			rc = iac_err_sys("cannot create '%s'", path);
	} else if (mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE || mode == GIT_FILEMODE_LINK) {
		if (git_blob_lookup(&blob, w->repo, git_tree_entry_id(e)) < 0) {
			rc = iac_git_fail("cannot read '%s%s' from the module cache", prefix, git_tree_entry_name(e));
		} else if (mode == GIT_FILEMODE_LINK) {
			char *target = iac_xstrndup(git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
			if (symlink(target, path) < 0)
				rc = iac_err_sys("cannot create the link '%s'", path);
			free(target);
		} else if (iac_file_replace(path, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob),
					    mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0700 : 0600) < 0) {
			rc = IAC_ERR;
		}
	}
	/* submodules (commits) are not fetched: a module's tree is its own files */
	git_blob_free(blob);
	free(path);
	if (rc < 0) {
		w->rc = rc;
		return -1;
	}
	return 0;
}

/* Write src->subdir of commit id to dir, through a temporary directory
 * beside it, so a checkout is either whole or absent. */
static int check_out(iac_modcache *c, git_repository *repo, const git_oid *id, const iac_modsrc *src,
		     const char *addr, const char *source, const char *dir)
{
	git_commit *commit = NULL;
	git_tree *root = NULL, *sub = NULL;
	git_tree_entry *e = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	char *tmp = iac_xasprintf("%s.tmp-%ld", dir, (long)getpid());
	int rc = IAC_ERR;
	git_oid_tostr(hex, sizeof(hex), id);
	if (git_commit_lookup(&commit, repo, id) < 0 || git_commit_tree(&root, commit) < 0) {
		iac_git_fail("module '%s': cannot read commit %.7s of '%s'", addr, hex, src->url);
		goto done;
	}
	if (*src->subdir) {
		if (git_tree_entry_bypath(&e, root, src->subdir) < 0 || git_tree_entry_type(e) != GIT_OBJECT_TREE) {
			git_error_clear();
			iac_err_set("module '%s': source '%s': no directory '%s' in commit %.7s of '%s'", addr, source,
				    src->subdir, hex, src->url);
			goto done;
		}
		if (git_tree_lookup(&sub, repo, git_tree_entry_id(e)) < 0) {
			iac_git_fail("module '%s': cannot read '%s' in commit %.7s", addr, src->subdir, hex);
			goto done;
		}
	}
	rm_rf(tmp);
	if (iac_mkdir_p(c->cache, 0700) < 0 || mkdir(tmp, 0700) < 0) {
		iac_err_sys("cannot create '%s'", tmp);
		goto done;
	}
	write_ctx w = { repo, tmp, 0 };
	if (git_tree_walk(sub ? sub : root, GIT_TREEWALK_PRE, write_entry, &w) < 0) {
		if (w.rc == 0)
			iac_git_fail("module '%s': cannot check out commit %.7s of '%s'", addr, hex, src->url);
		goto done;
	}
	rm_rf(dir);
	if (rename(tmp, dir) < 0) {
		iac_err_sys("cannot move '%s' to '%s'", tmp, dir);
		goto done;
	}
	rc = 0;
done:
	if (rc < 0)
		rm_rf(tmp);
	free(tmp);
	git_tree_entry_free(e);
	git_tree_free(sub);
	git_tree_free(root);
	git_commit_free(commit);
	return rc;
}

static int has_commit(git_repository *repo, const git_oid *id)
{
	git_commit *cm = NULL;
	int ok = git_commit_lookup(&cm, repo, id) == 0;
	git_commit_free(cm);
	if (!ok)
		git_error_clear();
	return ok;
}

/* init / init -upgrade for one source: resolve, fetch when needed, check
 * out, checksum; the entry goes into c->next. */
/* The commit to check out: the one iac.lock pins (fetched when the cache
 * lacks it), or else the one src's ref points at now. */
static int want_commit(git_oid *id, iac_modcache *c, git_repository *repo, const char *addr, const char *source,
		       const iac_modsrc *src, const char *locked)
{
	if (!locked)
		return fetch(c, repo, addr, source, src->url) < 0 || resolve_ref(id, c, repo, addr, source, src) < 0
			? IAC_ERR : 0;
	if (git_oid_fromstr(id, locked) < 0) {
		iac_err_set("module '%s': iac.lock holds '%s' as the commit of '%s', which is not a commit id; fix "
			    "iac.lock or run 'iac init -upgrade'", addr, locked, source);
		git_error_clear();
		return IAC_ERR;
	}
	if (has_commit(repo, id))
		return 0;
	if (fetch(c, repo, addr, source, src->url) < 0)
		return IAC_ERR;
	if (!has_commit(repo, id)) {
		char *s = short_id(locked);
		iac_err_set("module '%s': commit %s that iac.lock pins for source '%s' is gone from '%s' (was "
			    "history rewritten by a force-push?); run 'iac init -upgrade' to lock the commit "
			    "'%s' points at now, and review the change", addr, s, source, src->url,
			    src->ref ? src->ref : "the default branch");
		free(s);
		return IAC_ERR;
	}
	return 0;
}

static int init_one(char **out_dir, iac_modcache *c, const char *addr, const char *source, const iac_modsrc *src)
{
	json_t *done_entry = json_object_get(c->next, source);
	const json_t *old = json_object_get(c->lock, source);
	const char *locked = done_entry ? iac_json_str(done_entry, "commit") : old ? iac_json_str(old, "commit") : NULL;
	const char *want_sum = done_entry ? iac_json_str(done_entry, "checksum") : old ? iac_json_str(old, "checksum") : NULL;
	git_repository *repo = NULL;
	git_oid id;
	char hex[GIT_OID_HEXSZ + 1];
	char *dir = NULL, *sum = NULL;
	int rc = IAC_ERR;

	if (c->mode == IAC_MODSRC_UPGRADE && !done_entry) {
		locked = NULL;   /* resolve the ref again */
		want_sum = NULL;
	}
	if (open_repo(&repo, c, src->url) < 0)
		goto done;
	if (want_commit(&id, c, repo, addr, source, src, locked) < 0)
		goto done;
	git_oid_tostr(hex, sizeof(hex), &id);
	dir = checkout_dir(c, src, hex);
	if (dir_exists(dir) && iac_modsrc_tree_checksum(&sum, dir) < 0)
		goto done;
	if (!sum || (want_sum && strcmp(sum, want_sum))) {
		/* missing, or changed in the cache: write it again from git's objects */
		free(sum);
		sum = NULL;
		if (check_out(c, repo, &id, src, addr, source, dir) < 0 || iac_modsrc_tree_checksum(&sum, dir) < 0)
			goto done;
	}
	if (want_sum && strcmp(sum, want_sum)) {
		char *s = short_id(hex);
		iac_err_set("module '%s': the tree of source '%s' at commit %s has checksum %s, but iac.lock says %s "
			    "(was iac.lock edited?); run 'iac init -upgrade' to lock what the source holds now", addr,
			    source, s, sum, want_sum);
		free(s);
		goto done;
	}
	if (!done_entry)
		json_object_set_new(c->next, source, json_pack("{s:s,s:s,s:s?,s:s,s:s}", "url", src->url, "subdir",
							       src->subdir, "ref", src->ref, "commit", hex, "checksum", sum));
	/* every module of a source that moved, also when several share it */
	const char *oc = old ? iac_json_str(old, "commit") : NULL;
	if (c->mode == IAC_MODSRC_UPGRADE && oc && strcmp(oc, hex)) {
		char *a = short_id(oc), *b = short_id(hex);
		json_array_append_new(c->changes, json_sprintf("module '%s': %s -> %s", addr, a, b));
		free(a);
		free(b);
	}
	json_object_set_new(c->checked, dir, json_true());
	*out_dir = dir;
	dir = NULL;
	rc = 0;
done:
	free(dir);
	free(sum);
	git_repository_free(repo);
	return rc;
}

/* ---- locked: the cache only ---------------------------------------------- */

static int locked_one(char **out_dir, iac_modcache *c, const char *addr, const char *source, const iac_modsrc *src)
{
	const json_t *e = json_object_get(c->lock, source);
	const char *commit = iac_json_str(e, "commit"), *want = iac_json_str(e, "checksum");
	if (!e)
		return iac_err_set("module '%s': source '%s' is not in iac.lock%s; run 'iac init' to fetch it and lock "
				   "its commit (nothing is fetched without it)", addr, source,
				   c->lock_found ? " (the lock file does not match the configuration)" : " (there is no iac.lock)");
	if (!commit || strlen(commit) != GIT_OID_HEXSZ || !want)
		return iac_err_set("module '%s': iac.lock's entry for source '%s' has no commit or checksum; run 'iac "
				   "init -upgrade' to write it again", addr, source);
	char *dir = checkout_dir(c, src, commit), *sum = NULL, *s = short_id(commit);
	int rc = IAC_ERR;
	if (json_object_get(c->checked, dir)) {
		rc = 0;
	} else if (!dir_exists(dir)) {
		iac_err_set("module '%s': source '%s' (commit %s) was never fetched into '%s'; run 'iac init'", addr,
			    source, s, CACHE_DIR);
	} else if (iac_modsrc_tree_checksum(&sum, dir) == 0) {
		if (strcmp(sum, want))
			iac_err_set("module '%s': the cached copy of source '%s' (commit %s) does not match iac.lock "
				    "(checksum %s, locked %s): the cache was changed; run 'iac init' to fetch it again",
				    addr, source, s, sum, want);
		else
			rc = 0;
	}
	if (rc == 0) {
		json_object_set_new(c->checked, dir, json_true());
		*out_dir = dir;
		dir = NULL;
	}
	free(dir);
	free(sum);
	free(s);
	return rc;
}

int iac_modcache_resolve(char **out_dir, iac_modcache *c, const char *addr, const char *source,
			 const iac_modsrc *src)
{
	*out_dir = NULL;
	if (c->mode == IAC_MODSRC_LOCKED)
		return locked_one(out_dir, c, addr, source, src);
	return init_one(out_dir, c, addr, source, src);
}

int iac_modcache_finish(iac_modcache *c)
{
	if (c->mode == IAC_MODSRC_LOCKED)
		return 0;
	json_decref(g_report);
	g_report = json_pack("{s:i,s:i,s:O}", "sources", (int)json_object_size(c->next), "fetched",
			     (int)json_object_size(c->fetched), "changes", c->changes);
	if (!json_object_size(c->next) && !c->lock_found)
		return 0;   /* no git sources, and no lock file to bring up to date */
	json_t *doc = json_pack("{s:i,s:O}", "version", 1, "modules", c->next);
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(doc);
	char *path = iac_path_join(c->dir, LOCK_NAME);
	iac_buf b = IAC_BUF_INIT;
	iac_buf_puts(&b, text);
	iac_buf_puts(&b, "\n");
	int rc = iac_file_write_atomic(path, b.ptr, b.len, 0644);
	iac_buf_free(&b);
	free(text);
	free(path);
	return rc;
}

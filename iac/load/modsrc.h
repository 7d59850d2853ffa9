/* modsrc: module sources from git, pinned in iac.lock.
 *
 *   module "cache" { source = "git+https://git.example.com/infra/modules.git//redis?ref=v1.4.0" }
 *
 * A source names a repository (git+https://, git+ssh://, git+file://,
 * git+git://), an optional subdirectory after "//" (the module's own tree,
 * its main.lua) and an optional ref (tag, branch or commit; default: the
 * remote's default branch).
 *
 * `iac init` fetches each repository with libgit2 into a bare clone under
 * .iac/modules/repos/ (one per repository URL), writes the module's tree at
 * the resolved commit to .iac/modules/<name>-<commit>-<key>/ and records, per
 * source, the commit and the sha256 of that tree in iac.lock (JSON, meant to
 * be committed). Every other command uses the locked commit from the cache
 * and never touches the network: a source missing from iac.lock, a checkout
 * missing from the cache or one whose checksum differs is an error that says
 * what to run. `iac init -upgrade` resolves the refs again.
 *
 * Ownership: iac_modsrc strings are owned by the struct (iac_modsrc_free);
 * an iac_modcache belongs to one loader (one thread).
 */
#ifndef IAC_LOAD_MODSRC_H
#define IAC_LOAD_MODSRC_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
	char *scheme;   /* "https", "ssh", "file", "git" */
	char *url;      /* the repository URL, without "git+" and without "//subdir?ref=" */
	char *subdir;   /* "" (the repository's top) or "a/b": no "..", no leading or trailing '/' */
	char *ref;      /* NULL (the remote's default branch) or a tag, branch or commit (hex) */
} iac_modsrc;

/* Whether a module source is meant to be remote (a URL or "git..."): such a
 * source is parsed by iac_modsrc_parse, never looked up as a path. */
int iac_modsrc_is_remote(const char *source);

/* Parse a source (pure: no I/O). 0, or -1 with err set to what is wrong
 * ("unsupported scheme 'http' ..."); *out is zeroed on failure. */
int iac_modsrc_parse(iac_modsrc *out, const char *source, char *err, size_t errlen);
void iac_modsrc_free(iac_modsrc *s);

/* What the loader does with git sources in this process: */
enum {
	IAC_MODSRC_LOCKED = 0,  /* use iac.lock and the cache; never the network */
	IAC_MODSRC_INIT,        /* fetch what iac.lock lacks, keep locked commits; write iac.lock */
	IAC_MODSRC_UPGRADE,     /* resolve every ref again; write iac.lock */
};
/* Set by `iac init` before it loads the configuration. */
void iac_modsrc_set_mode(int mode);
int iac_modsrc_mode(void);
/* What the last successful init did: {"sources": N, "fetched": N,
 * "changes": ["module 'module.x': 3f2c1e9 -> a1b2c3d", ...]}, or NULL.
 * Borrowed. */
const json_t *iac_modsrc_report(void);

typedef struct iac_modcache iac_modcache;

/* The cache and lock of configuration directory dir (absolute), in the
 * mode set by iac_modsrc_set_mode. Reads iac.lock when present. */
int iac_modcache_open(iac_modcache **out, const char *dir);
void iac_modcache_free(iac_modcache *c);

/* The directory holding module addr's tree (absolute, new string) for
 * source (its text, the lock's key) parsed as src. Errors name the module
 * and the source and say what to run. */
int iac_modcache_resolve(char **out_dir, iac_modcache *c, const char *addr, const char *source,
			 const iac_modsrc *src);

/* In the init modes: write iac.lock with the sources resolved (entries no
 * module uses any more are dropped) and set the report. No-op when locked. */
int iac_modcache_finish(iac_modcache *c);

/* "sha256:<hex>" of the files under dir (paths, executable bits, symbolic
 * link targets, contents), in *out (new string). */
int iac_modsrc_tree_checksum(char **out, const char *dir);

#endif

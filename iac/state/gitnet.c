/* gitnet: what every libgit2 user in iac shares (see gitnet.h). */
#include "iac/state/gitnet.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/base64.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"

static pthread_once_t git_once = PTHREAD_ONCE_INIT;

/* Never shut down: other threads or a later open may still use it, and
 * init/shutdown pairs racing each other are what libgit2 warns about. */
static void git_init_once(void)
{
	git_libgit2_init();
	/* The CA file or directory git users already set for https remotes
	 * (git reads them too): a company CA without touching the system's
	 * bundle. Verification itself is never switched off. */
	const char *file = getenv("GIT_SSL_CAINFO"), *dir = getenv("GIT_SSL_CAPATH");
	if ((file && *file) || (dir && *dir))
		git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file && *file ? file : NULL,
				 dir && *dir ? dir : NULL);
}

void iac_git_init(void)
{
	pthread_once(&git_once, git_init_once);
}

int iac_git_fail(const char *fmt, ...)
{
	char what[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	const git_error *e = git_error_last();
	return iac_err_set("%s: %s", what, e && e->message ? e->message : "unknown libgit2 error");
}

/* ---- remotes: credentials and host keys ------------------------------ */


/* The port of an ssh:// URL (22 for the scp form "user@host:path"). */
static int ssh_port(const char *url)
{
	const char *p = strstr(url, "://");
	if (!p)
		return 22;
	p += 3;
	const char *end = p + strcspn(p, "/");
	const char *at = memchr(p, '@', (size_t)(end - p));
	if (at)
		p = at + 1;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		p = rb ? rb + 1 : end;
	} else
		p += strcspn(p, ":/");
	return *p == ':' && p + 1 < end ? atoi(p + 1) : 22;
}

/* The URL's password, if it has one (to keep it out of messages). */
char *iac_gitnet_url_password(const char *url)
{
	const char *p = strstr(url, "://");
	if (!p)
		return NULL;
	p += 3;
	const char *end = p + strcspn(p, "/");
	const char *at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
	return colon && colon + 1 < at ? iac_xstrndup(colon + 1, (size_t)(at - colon - 1)) : NULL;
}

/* text with every copy of secret replaced by "***". */
char *iac_gitnet_scrub(const char *text, const char *secret)
{
	iac_buf b = IAC_BUF_INIT;
	size_t sl = secret ? strlen(secret) : 0;
	const char *hit;
	while (sl && (hit = strstr(text, secret))) {
		iac_buf_put(&b, text, (size_t)(hit - text));
		iac_buf_puts(&b, "***");
		text = hit + sl;
	}
	iac_buf_puts(&b, text);
	return iac_buf_detach(&b);
}

static const char *local_user(void)
{
	const char *u = getenv("USER");
	struct passwd *pw;
	if (u && *u)
		return u;
	pw = getpwuid(getuid());
	return pw ? pw->pw_name : "root";
}

static char *home_file(const char *rel)
{
	const char *home = getenv("HOME");
	struct passwd *pw;
	if (!home || !*home) {
		pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : "/";
	}
	return iac_xasprintf("%s/%s", home, rel);
}

/* The n-th key file to offer (NULL after the last). */
static char *key_file(const iac_gitnet *p, int n)
{
	const char *k = getenv(p->key_env);
	if (k && *k)
		return n == 0 ? iac_xstrdup(k) : NULL;
	return n == 0 ? home_file(".ssh/id_ed25519") : n == 1 ? home_file(".ssh/id_rsa") : NULL;
}

static int key_credential(git_credential **out, iac_gitnet *p, const char *user, const char *path)
{
	char *pub = iac_xasprintf("%s.pub", path);
	size_t l = strlen(p->tried_list);
	snprintf(p->tried_list + l, sizeof(p->tried_list) - l, "%s%s", l ? ", " : "", path);
	int rc = git_credential_ssh_key_new(out, user, access(pub, R_OK) == 0 ? pub : NULL, path, NULL);
	free(pub);
	return rc;
}

/* https: the password (a token) comes from IAC_GIT_PASSWORD, never from
 * the source URL (it would be written to iac.lock and the state); the
 * user from the URL ("https://ci@host/...") or IAC_GIT_USERNAME. Offered
 * once: asked again means refused. */
static int userpass_credential(git_credential **out, iac_gitnet *p, const char *url_user)
{
	const char *pw = getenv("IAC_GIT_PASSWORD"), *user = getenv("IAC_GIT_USERNAME");
	if (url_user && *url_user)
		user = url_user;
	if (!user || !*user)
		user = "git";
	if (!pw || !*pw) {
		snprintf(p->why, sizeof(p->why), "the server asks for a login: set IAC_GIT_PASSWORD (a token) and "
			 "put the user in the URL (https://USER@HOST/...) or in IAC_GIT_USERNAME");
		return GIT_EUSER;
	}
	iac_redact_add(pw);
	if (p->tried++) {
		snprintf(p->why, sizeof(p->why), "the server refused the login of user '%s' with IAC_GIT_PASSWORD", user);
		return GIT_EUSER;
	}
	return git_credential_userpass_plaintext_new(out, user, pw);
}

/* libgit2 asks again after each refused login: offer the agent, then each
 * key file, then give up with the list of what was tried. */
static int credentials_cb(git_credential **out, const char *url, const char *url_user, unsigned int allowed,
			  void *payload)
{
	iac_gitnet *p = payload;
	const char *user = url_user && *url_user ? url_user : local_user();
	const char *agent = getenv("SSH_AUTH_SOCK");

	(void)url;
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user);
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT)
		return userpass_credential(out, p, url_user);
	if (!(allowed & GIT_CREDENTIAL_SSH_KEY)) {
		snprintf(p->why, sizeof(p->why), "the server asks for a login iac cannot give (iac logs in with ssh keys)");
		return GIT_EUSER;
	}
	for (;;) {
		int step = p->tried++;
		if (step == 0) {
			if (!agent || !*agent)
				continue;
			snprintf(p->tried_list, sizeof(p->tried_list), "the ssh-agent");
			return git_credential_ssh_key_from_agent(out, user);
		}
		char *path = key_file(p, step - 1);
		if (!path) {
			snprintf(p->why, sizeof(p->why), "no key was accepted for user '%s' (tried: %s%s)", user,
				 p->tried_list[0] ? p->tried_list : "no ssh-agent, no key file; set ",
				 p->tried_list[0] ? "" : p->key_env);
			return GIT_EUSER;
		}
		int rc = access(path, R_OK) == 0 ? key_credential(out, p, user, path) : 1;
		free(path);
		if (rc <= 0)
			return rc;
	}
}

/* ---- known_hosts (OpenSSH format, read without libssh2) ---- */

enum { KH_NONE, KH_OTHER_TYPE, KH_MISMATCH, KH_MATCH, KH_REVOKED };

/* OpenSSH host patterns: '*' and '?' only, case-insensitive. */
static int glob_match(const char *pat, size_t pl, const char *s)
{
	if (pl == 0)
		return *s == '\0';
	if (*pat == '*') {
		for (;; s++) {
			if (glob_match(pat + 1, pl - 1, s))
				return 1;
			if (!*s)
				return 0;
		}
	}
	if (!*s || (*pat != '?' && tolower((unsigned char)*pat) != tolower((unsigned char)*s)))
		return 0;
	return glob_match(pat + 1, pl - 1, s + 1);
}

/* "|1|salt|hash": HMAC-SHA1(salt, name) == hash. */
static int hashed_match(const char *pat, size_t pl, const char *name)
{
	char *field = iac_xstrndup(pat + 3, pl - 3), *bar = strchr(field, '|');
	char *salt = NULL, *hash = NULL;
	size_t sl = 0, hl = 0;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;
	int ok = 0;
	if (bar) {
		*bar = '\0';
		if (iac_base64_decode(&salt, &sl, field, strlen(field)) == 0 &&
		    iac_base64_decode(&hash, &hl, bar + 1, strlen(bar + 1)) == 0 &&
		    HMAC(EVP_sha1(), salt, (int)sl, (const unsigned char *)name, strlen(name), md, &ml))
			ok = ml == hl && memcmp(md, hash, hl) == 0;
	}
	iac_err_clear();
	free(salt);
	free(hash);
	free(field);
	return ok;
}

/* Whether a known_hosts host list ("a,b,!c,[d]:2222") names host. */
static int hosts_match(const char *list, const char *name)
{
	int hit = 0;
	while (*list) {
		size_t l = strcspn(list, ",");
		int neg = *list == '!';
		const char *pat = list + neg;
		size_t pl = l - (size_t)neg;
		int m = pl > 3 && !strncmp(pat, "|1|", 3) ? hashed_match(pat, pl, name) : glob_match(pat, pl, name);
		if (m && neg)
			return 0;
		hit |= m;
		list += l + (list[l] == ',');
	}
	return hit;
}

/* The key type named inside an SSH public key blob ("ssh-ed25519"). */
static char *blob_type(const unsigned char *k, size_t len)
{
	if (len < 4)
		return iac_xstrdup("");
	size_t tl = ((size_t)k[0] << 24) | ((size_t)k[1] << 16) | ((size_t)k[2] << 8) | k[3];
	return iac_xstrndup((const char *)k + 4, tl <= len - 4 ? tl : 0);
}

static int key_equal(const git_cert_hostkey *k, const char *blob, size_t bl)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;
	if (k->type & GIT_CERT_SSH_RAW)
		return bl == k->hostkey_len && memcmp(blob, k->hostkey, bl) == 0;
	if ((k->type & GIT_CERT_SSH_SHA256) && EVP_Digest(blob, bl, md, &ml, EVP_sha256(), NULL))
		return ml == 32 && memcmp(md, k->hash_sha256, 32) == 0;
	return 0;
}

/* What one known_hosts line says about (name, key of type ktype). */
static int kh_line(char *line, const char *name, const git_cert_hostkey *k, const char *ktype)
{
	char *f[4] = { 0 }, *save = NULL, *blob = NULL;
	size_t bl = 0;
	int nf = 0, revoked = 0, r = KH_NONE;
	for (char *t = strtok_r(line, " \t\r", &save); t && nf < 4; t = strtok_r(NULL, " \t\r", &save)) {
		if (nf == 0 && *t == '@') {
			if (strcmp(t, "@revoked"))
				return KH_NONE;   /* @cert-authority: host certificates are not checked here */
			revoked = 1;
			continue;
		}
		f[nf++] = t;
	}
	if (nf < 3 || *f[0] == '#' || !hosts_match(f[0], name))
		return KH_NONE;
	if (strcmp(f[1], ktype))
		return revoked ? KH_NONE : KH_OTHER_TYPE;
	if (iac_base64_decode(&blob, &bl, f[2], strlen(f[2])) < 0) {
		iac_err_clear();
		return KH_NONE;
	}
	if (key_equal(k, blob, bl))
		r = revoked ? KH_REVOKED : KH_MATCH;
	else
		r = revoked ? KH_NONE : KH_MISMATCH;
	free(blob);
	return r;
}

/* "SHA256:<base64>" as ssh-keygen -l prints it. */
static void fingerprint(char out[64], const git_cert_hostkey *k)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int ml = 32;
	if (k->type & GIT_CERT_SSH_RAW)
		EVP_Digest(k->hostkey, k->hostkey_len, md, &ml, EVP_sha256(), NULL);
	else
		memcpy(md, k->hash_sha256, 32);
	char *b = iac_base64_encode(md, ml);
	size_t l = strlen(b);
	while (l && b[l - 1] == '=')
		b[--l] = '\0';
	snprintf(out, 64, "SHA256:%s", b);
	free(b);
}

/* The best verdict of all lines of the file for (name, key). */
static int kh_file(const char *path, const char *name, const git_cert_hostkey *k, const char *ktype)
{
	char *text = NULL, *save = NULL;
	size_t len = 0;
	int best = KH_NONE;
	if (iac_file_read(&text, &len, path) < 0) {
		iac_err_clear();
		return KH_NONE;
	}
	for (char *l = strtok_r(text, "\n", &save); l && best != KH_REVOKED; l = strtok_r(NULL, "\n", &save)) {
		int v = kh_line(l, name, k, ktype);
		best = v > best ? v : best;
	}
	free(text);
	return best;
}

static int check_host_key(iac_gitnet *p, const git_cert_hostkey *k, const char *host)
{
	const char *env = getenv(p->known_hosts_env);
	char *path = env && *env ? iac_xstrdup(env) : home_file(".ssh/known_hosts");
	char *name = p->port == 22 ? iac_xstrdup(host) : iac_xasprintf("[%s]:%d", host, p->port);
	char *ktype = k->type & GIT_CERT_SSH_RAW ? blob_type((const unsigned char *)k->hostkey, k->hostkey_len)
						 : iac_xstrdup("");
	char fp[64];
	int v = (k->type & (GIT_CERT_SSH_RAW | GIT_CERT_SSH_SHA256)) ? kh_file(path, name, k, ktype) : -1;

	fingerprint(fp, k);
	if (v == -1)
		snprintf(p->why, sizeof(p->why), "the host key of '%s' cannot be checked (no key or SHA-256 hash from the server)", name);
	else if (v == KH_REVOKED)
		snprintf(p->why, sizeof(p->why), "the host key of '%s' (%s) is marked @revoked in '%s'", name, fp, path);
	else if (v == KH_MISMATCH)
		snprintf(p->why, sizeof(p->why), "the host key of '%s' has CHANGED: it sent %s key %s, which does not "
			 "match '%s'; someone may be intercepting the connection, or the host was reinstalled", name,
			 ktype, fp, path);
	else if (v != KH_MATCH)
		snprintf(p->why, sizeof(p->why), "the host key of '%s' is unknown: it sent %s key %s, which is not in "
			 "'%s'%s (add it: `ssh-keyscan -p %d %s >> %s`, after checking the fingerprint)", name, ktype, fp,
			 path, v == KH_OTHER_TYPE ? " (which has a key of another type for it)" : "", p->port, host, path);
	free(path);
	free(name);
	free(ktype);
	return v == KH_MATCH ? 0 : -1;
}

static int certificate_cb(git_cert *cert, int valid, const char *host, void *payload)
{
	iac_gitnet *p = payload;
	if (cert->cert_type == GIT_CERT_HOSTKEY_LIBSSH2)
		return check_host_key(p, (const git_cert_hostkey *)cert, host) == 0 ? 0 : GIT_ECERTIFICATE;
	if (valid)
		return 0;
	snprintf(p->why, sizeof(p->why), "the certificate of '%s' is not valid", host);
	return GIT_ECERTIFICATE;
}

/* The URL as messages show it: without its password. */
char *iac_gitnet_url_shown(const char *url)
{
	char *pw = iac_gitnet_url_password(url);
	char *s = iac_gitnet_scrub(url, pw);
	free(pw);
	return s;
}

void iac_gitnet_init(iac_gitnet *n, const char *url, const char *key_env, const char *known_hosts_env)
{
	memset(n, 0, sizeof(*n));
	n->port = ssh_port(url);
	n->key_env = key_env;
	n->known_hosts_env = known_hosts_env;
}

void iac_gitnet_callbacks(git_remote_callbacks *cb, iac_gitnet *n)
{
	cb->credentials = credentials_cb;
	cb->certificate_check = certificate_cb;
	cb->payload = n;
}

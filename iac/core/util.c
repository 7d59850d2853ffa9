/* util: allocation, clocks, durations, files, hashing (see util.h). */
#include "iac/core/util.h"
#include "iac/core/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
	fputs("fatal: out of memory\n", stderr);
	abort();
}

void *iac_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *iac_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *iac_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *iac_xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		oom();
	return p;
}

char *iac_xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		oom();
	return p;
}

char *iac_xasprintf(const char *fmt, ...)
{
	char *p = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		oom();
	va_end(ap);
	return p;
}

double iac_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

uint64_t iac_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void iac_time_rfc3339(char *out, size_t outlen)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int iac_duration_parse(double *out_ms, const char *text)
{
	char *end = NULL;
	double v;

	if (!text || !*text)
		return iac_err_set("invalid duration '': expected a number with ms, s, m or h");
	errno = 0;
	v = strtod(text, &end);
	if (errno || end == text || !(v >= 0) || !isfinite(v))
		return iac_err_set("invalid duration '%s': expected a number with ms, s, m or h", text);
	if (!*end || !strcmp(end, "s"))
		*out_ms = v * 1e3;
	else if (!strcmp(end, "ms"))
		*out_ms = v;
	else if (!strcmp(end, "us"))
		*out_ms = v / 1e3;
	else if (!strcmp(end, "m"))
		*out_ms = v * 60e3;
	else if (!strcmp(end, "h"))
		*out_ms = v * 3600e3;
	else
		return iac_err_set("invalid duration '%s': unknown unit '%s' (use ms, s, m or h)", text, end);
	if (!isfinite(*out_ms) || *out_ms > 1e15)   /* ~30,000 years: surely a typo */
		return iac_err_set("invalid duration '%s': too long", text);
	return 0;
}

int iac_file_read(char **out, size_t *out_len, const char *path)
{
	return iac_file_read_stat(out, out_len, NULL, path);
}

int iac_file_read_stat(char **out, size_t *out_len, struct stat *stp, const char *path)
{
	return iac_file_read_flags(out, out_len, stp, path, 0);
}

int iac_file_read_flags(char **out, size_t *out_len, struct stat *stp, const char *path, int oflags)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | oflags);
	struct stat st;
	char *data = NULL;
	size_t len = 0, cap;
	int sized = 0;

	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (fd < 0) {
		int notfound = errno == ENOENT;
		if (errno == ELOOP && (oflags & O_NOFOLLOW))
			iac_err_set("'%s' is a symbolic link, which iac does not follow here", path);
		else
			iac_err_sys("cannot open '%s'", path);
		return notfound ? IAC_ENOTFOUND : IAC_ERR;
	}
	sized = fstat(fd, &st) == 0;
	if (stp && sized)
		*stp = st;
	cap = (sized && st.st_size > 0) ? (size_t)st.st_size + 1 : 4096;
	data = iac_xmalloc(cap);
	for (;;) {
		/* a regular file read up to its size is done: skip the extra
		 * read that would only say EOF (one syscall per file saved) */
		if (sized && S_ISREG(st.st_mode) && st.st_size > 0 && len == (size_t)st.st_size)
			break;
		if (len + 1 >= cap) {
			cap *= 2;
			data = iac_xrealloc(data, cap);
		}
		ssize_t n = read(fd, data + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			iac_err_sys("cannot read '%s'", path);
			free(data);
			close(fd);
			return IAC_ERR;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	data[len] = '\0';
	*out = data;
	if (out_len)
		*out_len = len;
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char *copy = iac_xstrdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int write_replace(const char *path, const void *data, size_t len, mode_t mode, int durable);

int iac_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	return write_replace(path, data, len, mode, 1);
}

int iac_file_replace(const char *path, const void *data, size_t len, mode_t mode)
{
	return write_replace(path, data, len, mode, 0);
}

/* What an existing path is, for "iac replaces only regular files". */
static const char *file_kind(mode_t m)
{
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	return "not a regular file";
}

/* Is name `base` + ".tmp." + six characters of mkostemp's alphabet? */
static int is_temp_of(const char *name, const char *base)
{
	size_t bl = strlen(base);
	if (strncmp(name, base, bl) || strncmp(name + bl, ".tmp.", 5) || strlen(name + bl + 5) != 6)
		return 0;
	for (const char *c = name + bl + 5; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
			return 0;
	return 1;
}

/* Remove the temp files of this target that a write killed before its
 * rename left behind (kill -9): regular files of ours only, by name
 * relative to the directory (unlinkat never follows a link; a link or
 * someone else's file of that name stays). Best effort: a leftover that
 * stays is only clutter. */
static void drop_leftovers(const char *path)
{
	char *dcopy = iac_xstrdup(path), *bcopy = iac_xstrdup(path);
	const char *base = basename(bcopy);
	int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *e;
	struct stat st;
	if (!d && dfd >= 0)
		close(dfd);
	while (d && (e = readdir(d)))
		if (is_temp_of(e->d_name, base) && fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_uid == geteuid())
			unlinkat(dfd, e->d_name, 0);
	if (d)
		closedir(d);
	free(dcopy);
	free(bcopy);
}

/* The temp file is made with O_EXCL under a random name (mkostemp), so a
 * link planted beside the target is never followed: O_CREAT|O_EXCL fails
 * on any existing name, symbolic links included. rename() replaces the
 * target's directory entry without following it, and a target that is not
 * a regular file is refused rather than replaced. Temp files of this
 * target that a killed write left go first (drop_leftovers). */
static int write_replace(const char *path, const void *data, size_t len, mode_t mode, int durable)
{
	char *tmp = iac_xasprintf("%s.tmp.XXXXXX", path);
	const char *p = data;
	int fd = -1, rc = IAC_ERR, made = 0;
	struct stat st;

	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		iac_err_set("'%s' is %s; iac replaces only regular files (remove it, or choose another path)",
			    path, file_kind(st.st_mode));
		goto done;
	}
	drop_leftovers(path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		iac_err_sys("cannot create a temporary file beside '%s'", path);
		goto done;
	}
	made = 1;
	if (fchmod(fd, mode) < 0) {
		iac_err_sys("cannot set mode of '%s'", tmp);
		goto done;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			iac_err_sys("cannot write '%s'", tmp);
			goto done;
		}
		p += n;
		len -= (size_t)n;
	}
	if (durable && fsync(fd) < 0) {
		iac_err_sys("cannot fsync '%s'", tmp);
		goto done;
	}
	if (close(fd) < 0) {
		fd = -1;
		iac_err_sys("cannot close '%s'", tmp);
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		iac_err_sys("cannot rename '%s' to '%s'", tmp, path);
		goto done;
	}
	if (durable)
		fsync_dir_of(path);
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	if (rc != 0 && made)
		unlink(tmp);
	free(tmp);
	return rc;
}

int iac_mkdir_p(const char *path, mode_t mode)
{
	char *copy = iac_xstrdup(path);
	int rc = 0;

	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST) {
			rc = iac_err_sys("cannot create directory '%s'", copy);
			goto done;
		}
		*p = '/';
	}
	if (mkdir(copy, mode) < 0 && errno != EEXIST)
		rc = iac_err_sys("cannot create directory '%s'", copy);
done:
	free(copy);
	return rc;
}

int iac_private_dir(const char *path, int *tightened)
{
	struct stat st;
	if (tightened)
		*tightened = 0;
	if (iac_mkdir_p(path, 0700) < 0)
		return IAC_ERR;
	if (lstat(path, &st) < 0)
		return iac_err_sys("cannot inspect '%s'", path);
	if (S_ISLNK(st.st_mode))
		return iac_err_set("'%s' is a symbolic link; iac keeps state and locks only in a real directory "
				   "(remove the link)", path);
	if (!S_ISDIR(st.st_mode))
		return iac_err_set("'%s' is not a directory", path);
	if (st.st_uid != geteuid())
		return iac_err_set("'%s' belongs to uid %u, not to you (uid %u); iac will not keep state in a "
				   "directory someone else controls", path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 077) {
		if (chmod(path, st.st_mode & 0700) < 0)
			return iac_err_sys("cannot tighten the mode of '%s'", path);
		if (tightened)
			*tightened = 1;
	}
	return 0;
}

/* OpenSSL 3 looks the algorithm up on every EVP_Digest() call; fetch it
 * once and keep a context per thread (hashing is on the refresh path of
 * every file). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha256_key;

static void ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void sha256_init(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	pthread_key_create(&sha256_key, ctx_free);
}

void iac_sha256_hex(char out[65], const void *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static const char hex[] = "0123456789abcdef";

	pthread_once(&sha256_once, sha256_init);
	EVP_MD_CTX *sha256_ctx = pthread_getspecific(sha256_key);
	if (!sha256_ctx) {
		sha256_ctx = EVP_MD_CTX_new();
		pthread_setspecific(sha256_key, sha256_ctx);
	}
	if (!sha256_md || !sha256_ctx || !EVP_DigestInit_ex2(sha256_ctx, sha256_md, NULL) ||
	    !EVP_DigestUpdate(sha256_ctx, data, len) || !EVP_DigestFinal_ex(sha256_ctx, md, &mdlen))
		EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

char *iac_path_join(const char *dir, const char *name)
{
	if (name[0] == '/' || !dir || !*dir || !strcmp(dir, "."))
		return iac_xstrdup(name);
	size_t dl = strlen(dir);
	if (dir[dl - 1] == '/')
		return iac_xasprintf("%s%s", dir, name);
	return iac_xasprintf("%s/%s", dir, name);
}

int iac_free_at_exit(void)
{
#ifdef IAC_FREE_AT_EXIT
	return 1;
#else
	const char *e = getenv("IAC_FREE_AT_EXIT");
	return e && *e && strcmp(e, "0") != 0;
#endif
}

int iac_str_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Edit distance with swaps (Damerau), capped: for "did you mean" hints. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 99;
	size_t d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			size_t x = d[i - 1][j] + 1, y = d[i][j - 1] + 1;
			d[i][j] = c < x ? (c < y ? c : y) : (x < y ? x : y);
			/* two letters swapped is one typo (vaule) */
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < d[i][j])
				d[i][j] = d[i - 2][j - 2] + 1;
		}
	return d[la][lb];
}

const char *iac_suggest(const char *want, const char *const *cands, size_t n)
{
	/* two edits for long names, one for short ones ("b" is not "_G") */
	size_t wl = strlen(want), best = (wl / 3 < 1 ? 1 : wl / 3 > 2 ? 2 : wl / 3) + 1;
	const char *pick = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(want, cands[i]);
		if (d < best) {
			best = d;
			pick = cands[i];
		}
	}
	return pick;
}

/* host_local: the backend for this machine (see host_int.h): commands
 * through core/proc, files through the file system, relative paths under
 * the hosts' local_dir. What stat says is what GNU stat says on a remote
 * host, so a provider sees no difference. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"
#include "iac/host/host_int.h"

static int local_exec(iac_host_result *res, iac_hosts *h, const json_t *host, const char *cmd, const void *input,
		      size_t input_len, double timeout_ms, const volatile int *cancel)
{
	iac_proc_result r;
	(void)host;
	(void)input_len;   /* core/proc takes text: only iac_host_exec's NUL-terminated input comes here */
	if (iac_proc_run(&r, cmd, h->local_dir, NULL, input, timeout_ms, cancel) < 0)
		return IAC_ERR;
	res->status = r.status;
	res->out = r.out;
	res->out_len = r.out_len;
	res->err = r.err;
	res->err_len = r.err_len;
	if (r.timed_out)
		return iac_err_set("command timed out after %.0fs on this machine: %s", timeout_ms / 1e3, cmd);
	return 0;
}

static int local_write(iac_hosts *h, const json_t *host, const char *path, const void *data, size_t len,
		       const char *mode, const volatile int *cancel)
{
	char *full = iac_path_join(h->local_dir, path), *dir = iac_xstrdup(full);
	char *slash = strrchr(dir, '/');
	int rc = 0;
	(void)host;
	(void)cancel;
	if (slash && slash != dir) {
		*slash = '\0';
		rc = iac_mkdir_p(dir, 0755);
	}
	if (rc == 0)
		rc = iac_file_replace(full, data, len, (mode_t)strtoul(mode, NULL, 8));
	free(full);
	free(dir);
	return rc;
}

/* Up to max + 1 bytes of fd: the extra byte says the file is bigger. */
static int read_bounded(char **out, size_t *len, int fd, size_t max, const char *path)
{
	size_t cap = 4096, n = 0;
	char *buf = iac_xmalloc(cap);
	for (;;) {
		if (n + 1 >= cap) {
			cap = cap * 2 > max + 2 ? max + 2 : cap * 2;
			buf = iac_xrealloc(buf, cap);
		}
		ssize_t got = read(fd, buf + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			free(buf);
			return iac_err_sys("cannot read '%s' on this machine", path);
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n > max) {
			free(buf);
			return iac_err_set("cannot read '%s' on this machine: larger than %zu bytes", path, max);
		}
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int local_read(char **out, size_t *len, iac_hosts *h, const json_t *host, const char *path, size_t max,
		      double timeout_ms, const volatile int *cancel)
{
	char *full = iac_path_join(h->local_dir, path);
	int fd = open(full, O_RDONLY | O_CLOEXEC), rc;
	(void)host;
	(void)timeout_ms;
	(void)cancel;
	if (fd < 0 && errno == ENOENT) {
		iac_err_set("'%s' does not exist on this machine", path);
		rc = IAC_ENOTFOUND;
	} else if (fd < 0)
		rc = iac_err_sys("cannot read '%s' on this machine", path);
	else
		rc = read_bounded(out, len, fd, max, path);
	if (fd >= 0)
		close(fd);
	free(full);
	return rc;
}

/* GNU stat's %F words, so that both backends say the same. */
static const char *type_word(mode_t m, off_t size)
{
	if (S_ISREG(m))
		return size ? "regular file" : "regular empty file";
	if (S_ISDIR(m))
		return "directory";
	if (S_ISLNK(m))
		return "symbolic link";
	if (S_ISFIFO(m))
		return "fifo";
	if (S_ISSOCK(m))
		return "socket";
	if (S_ISCHR(m))
		return "character special file";
	if (S_ISBLK(m))
		return "block special file";
	return "weird file";
}

static void id_names(iac_host_stat_info *st, uid_t uid, gid_t gid)
{
	char buf[4096];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp);
	snprintf(st->owner, sizeof(st->owner), "%s", pwp ? pwp->pw_name : "UNKNOWN");
	getgrgid_r(gid, &gr, buf, sizeof(buf), &grp);
	snprintf(st->group, sizeof(st->group), "%s", grp ? grp->gr_name : "UNKNOWN");
}

/* SHA-256 of a file, read in pieces (a file may be bigger than memory). */
static int file_sha256(char hex[65], const char *full, const char *path)
{
	unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
	unsigned int mdlen = 0;
	int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = IAC_ERR;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (fd < 0 || !ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		iac_err_sys("cannot read '%s' on this machine", path);
		goto done;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			iac_err_sys("cannot read '%s' on this machine", path);
			goto done;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	rc = 0;
done:
	EVP_MD_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int local_stat(iac_host_stat_info *st, iac_hosts *h, const json_t *host, const char *path, double timeout_ms,
		      const volatile int *cancel)
{
	char *full = iac_path_join(h->local_dir, path);
	struct stat sb;
	(void)host;
	(void)timeout_ms;
	(void)cancel;
	if (lstat(full, &sb) < 0) {
		/* like GNU stat: a path that cannot be looked at is not there */
		free(full);
		return 0;
	}
	st->exists = 1;
	st->is_file = S_ISREG(sb.st_mode);
	st->is_dir = S_ISDIR(sb.st_mode);
	st->is_link = S_ISLNK(sb.st_mode);
	snprintf(st->type, sizeof(st->type), "%s", type_word(sb.st_mode, sb.st_size));
	snprintf(st->mode, sizeof(st->mode), "%04o", (unsigned)(sb.st_mode & 07777));
	id_names(st, sb.st_uid, sb.st_gid);
	st->size = (long long)sb.st_size;
	if (st->is_link) {
		ssize_t n = readlink(full, st->target, sizeof(st->target) - 1);
		st->target[n > 0 ? n : 0] = '\0';
	}
	/* as sha256sum on a remote host: a file that cannot be read has no
	 * checksum, and the next write says why */
	if (st->is_file && file_sha256(st->sha256, full, path) < 0)
		st->sha256[0] = '\0';
	free(full);
	return 0;
}

const iac_host_backend iac_host_local = {
	.exec = local_exec,
	.write = local_write,
	.read = local_read,
	.stat = local_stat,
};

/* lock: flock-backed lock file with holder info (see lock.h). */
#include "iac/state/lock.h"
#include "iac/core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"

struct iac_lock {
	int fd;
	char *path;
	char id[40];
};

static char *lock_path(const char *dir)
{
	char *d = iac_path_join(dir, ".iac");
	char *p = iac_path_join(d, "lock");
	free(d);
	return p;
}

static json_t *read_info(int fd)
{
	char buf[4096];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return json_loads(buf, 0, NULL);
}

static void describe(char *out, size_t len, const json_t *info)
{
	if (!info) {
		snprintf(out, len, "another iac process (no holder details)");
		return;
	}
	snprintf(out, len, "'iac %s' (pid %lld on '%s', since %s, lock id %s)",
		 iac_json_str(info, "command") ?: "?",
		 (long long)json_integer_value(json_object_get(info, "pid")),
		 iac_json_str(info, "host") ?: "?",
		 iac_json_str(info, "started") ?: "?",
		 iac_json_str(info, "id") ?: "?");
}

static int write_info(iac_lock *lk, const char *command)
{
	char host[256] = "", when[32];
	gethostname(host, sizeof(host) - 1);
	iac_time_rfc3339(when, sizeof(when));
	snprintf(lk->id, sizeof(lk->id), "%08x-%d", (unsigned)(iac_now_us() & 0xffffffffu), (int)getpid());
	json_t *info = json_pack("{s:s,s:i,s:s,s:s,s:s}", "id", lk->id, "pid", (int)getpid(),
				 "host", host, "command", command, "started", when);
	char *text = json_dumps(info, JSON_COMPACT);
	json_decref(info);
	int rc = 0;
	if (ftruncate(lk->fd, 0) < 0 || pwrite(lk->fd, text, strlen(text), 0) < 0 || fsync(lk->fd) < 0)
		rc = iac_err_sys("cannot write lock file '%s'", lk->path);
	free(text);
	return rc;
}

/* One attempt: 0 locked, IAC_ELOCKED held by someone, IAC_ERR error. With
 * `preempt`, a held lock is taken anyway. */
static int try_once(iac_lock *lk, json_t **out_prev, int preempt, const char *command)
{
	for (;;) {
		int fd = open(lk->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno == ELOOP)
			return iac_err_set("lock file '%s' is a symbolic link; iac never follows links in .iac/ "
					   "(remove it)", lk->path);
		if (fd < 0)
			return iac_err_sys("cannot open lock file '%s'", lk->path);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK) {
				close(fd);
				return iac_err_sys("cannot lock '%s'", lk->path);
			}
			json_t *info = read_info(fd);
			if (!preempt) {
				char who[1024];
				describe(who, sizeof(who), info);
				iac_err_set("state is locked by %s; wait for it to finish, or pass "
					    "-lock-timeout=DURATION to wait", who);
				json_decref(info);
				close(fd);
				return IAC_ELOCKED;
			}
			/* Preempt: take the path over with a fresh file; the old
			 * holder keeps its flock on the unlinked inode. */
			unlink(lk->path);
			close(fd);
			*out_prev = info ? info : json_object();
			preempt = 0;
			continue;
		}
		/* We hold an flock, but the file may have been unlinked and
		 * replaced between open and flock: then start over. */
		struct stat a, b;
		if (fstat(fd, &a) < 0 || stat(lk->path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
			close(fd);
			continue;
		}
		json_t *info = read_info(fd);
		if (info && !*out_prev)
			*out_prev = info;   /* stale: its holder died */
		else
			json_decref(info);
		lk->fd = fd;
		return write_info(lk, command);
	}
}

/* A run killed while writing a file in .iac/ leaves its temp file
 * ("state.json.tmp.Ab12Cd", see iac_file_replace). Only lock holders write
 * there, and the holder is dead, so its temp files are removed when its
 * stale lock is taken over (not when one is preempted: that holder lives). */
static void sweep_temps(const char *dir)
{
	char *d = iac_path_join(dir, ".iac");
	DIR *dh = opendir(d);
	struct dirent *e;
	while (dh && (e = readdir(dh))) {
		const char *t = strstr(e->d_name, ".tmp.");
		if (t && strlen(t) == strlen(".tmp.XXXXXX") && e->d_type == DT_REG)
			unlinkat(dirfd(dh), e->d_name, 0);
	}
	if (dh)
		closedir(dh);
	free(d);
}

static int acquire(iac_lock **out, json_t **out_prev, const char *dir, const char *command,
		   double timeout_ms, int preempt)
{
	iac_lock *lk = iac_xcalloc(1, sizeof(*lk));
	double deadline = iac_now_ms() + timeout_ms;
	json_t *prev = NULL;
	int rc;

	lk->fd = -1;
	lk->path = lock_path(dir);
	char *d = iac_path_join(dir, ".iac");
	int tight = 0;
	rc = iac_private_dir(d, &tight);
	if (tight)
		iac_log_warn("'%s' was readable by others; its mode is now 0700", d);
	free(d);
	while (rc == 0) {
		rc = try_once(lk, &prev, preempt, command);
		if (rc != IAC_ELOCKED || iac_now_ms() >= deadline)
			break;
		usleep(100 * 1000);
		rc = 0;
	}
	if (rc != 0) {
		json_decref(prev);
		if (lk->fd >= 0)
			close(lk->fd);
		free(lk->path);
		free(lk);
		*out = NULL;
		if (out_prev)
			*out_prev = NULL;
		return rc;
	}
	if (prev && !preempt)
		sweep_temps(dir);
	if (out_prev)
		*out_prev = prev;
	else
		json_decref(prev);
	*out = lk;
	return 0;
}

int iac_lock_acquire(iac_lock **out, json_t **out_stale, const char *dir,
		     const char *command, double timeout_ms)
{
	return acquire(out, out_stale, dir, command, timeout_ms, 0);
}

int iac_lock_preempt(iac_lock **out, json_t **out_preempted, const char *dir, const char *command)
{
	return acquire(out, out_preempted, dir, command, 0, 1);
}

void iac_lock_release(iac_lock *lk)
{
	if (!lk)
		return;
	/* Remove the file while still holding the flock, so nobody can lock
	 * the old inode and believe they hold the new lock. */
	struct stat a, b;
	if (fstat(lk->fd, &a) == 0 && stat(lk->path, &b) == 0 && a.st_ino == b.st_ino)
		unlink(lk->path);
	close(lk->fd);
	free(lk->path);
	free(lk);
}

int iac_lock_still_held(const iac_lock *lk)
{
	struct stat a, b;
	if (!lk)
		return 1;
	if (fstat(lk->fd, &a) < 0 || stat(lk->path, &b) < 0)
		return 0;
	return a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

const char *iac_lock_id(const iac_lock *lk)
{
	return lk->id;
}

int iac_lock_holder(json_t **out, const char *dir)
{
	char *path = lock_path(dir);
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	*out = NULL;
	if (fd < 0)
		return IAC_ENOTFOUND;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		close(fd);
		return IAC_ENOTFOUND;
	}
	*out = read_info(fd);
	if (!*out)
		*out = json_object();
	close(fd);
	return 0;
}

int iac_lock_force_unlock(const char *dir, const char *id)
{
	json_t *info = NULL;
	char *path = lock_path(dir);
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = iac_err_set("no lock to remove in '%s'", path);
		goto done;
	}
	info = read_info(fd);
	close(fd);
	const char *have = iac_json_str(info, "id");
	json_t *live = NULL;
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	/* a holder alive on this machine is refused: stop it instead. One on
	 * another machine cannot be checked from here: the operator decides */
	if (iac_lock_holder(&live, dir) == 0 &&
	    !strcmp(iac_json_str(live, "host") ?: host, host)) {
		rc = iac_err_set("lock %s is held by a running process (pid %lld on '%s'): stop it instead "
				 "(Ctrl-C, or 'iac rollback -force' for a deployment); force-unlock is for locks "
				 "whose holder is gone", id, (long long)json_integer_value(json_object_get(live, "pid")),
				 iac_json_str(live, "host") ?: "?");
		json_decref(live);
		goto done;
	}
	json_decref(live);
	if (!have || strcmp(have, id) != 0) {
		rc = iac_err_set("lock id '%s' does not match the current lock ('%s')", id, have ? have : "?");
		goto done;
	}
	if (unlink(path) < 0)
		rc = iac_err_sys("cannot remove '%s'", path);
done:
	json_decref(info);
	free(path);
	return rc;
}

/* fuzz_lock: the holder info in .iac/lock as iac/state/lock.c reads it
 * (read_info) on every path that reads it: a lock held by another process
 * (acquire refused, iac_lock_holder, force-unlock), a stale lock taken over,
 * and a held lock preempted. "Another process" is an flock this harness
 * takes on its own descriptor: flock locks belong to open files, so the
 * library's own open conflicts with it as with another process. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/state/lock.h"

static char *dir, *path;

static int hold(const uint8_t *data, size_t size)
{
	fuzz_write(path, data, size);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		perror("fuzz: cannot hold the lock");
		abort();
	}
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	iac_lock *lk = NULL;
	json_t *info = NULL;
	char id[64];

	if (!dir) {
		dir = fuzz_path(fuzz_tmpdir("lock"), "cfg");
		char *iac = fuzz_path(dir, ".iac");
		mkdir(dir, 0700);
		mkdir(iac, 0700);
		path = fuzz_path(iac, "lock");
		free(iac);
	}

	/* held by someone else: refused with the holder named */
	int fd = hold(data, size);
	if (iac_lock_acquire(&lk, &info, dir, "apply", 0) != IAC_ELOCKED || lk || info) {
		fprintf(stderr, "fuzz: a held lock was not refused: %s\n", iac_err_last());
		abort();
	}
	if (iac_lock_holder(&info, dir) != 0 || !info) {
		fprintf(stderr, "fuzz: a held lock has no holder\n");
		abort();
	}
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(info, "id")) ?: "no-such-id");
	json_decref(info);
	info = NULL;
	iac_lock_force_unlock(dir, id);
	close(fd);

	/* stale: its holder is gone, the lock is taken over */
	fuzz_write(path, data, size);
	if (iac_lock_acquire(&lk, &info, dir, "apply", 0) != 0) {
		fprintf(stderr, "fuzz: a stale lock was not taken over: %s\n", iac_err_last());
		abort();
	}
	(void)iac_lock_id(lk);
	if (!iac_lock_still_held(lk)) {
		fprintf(stderr, "fuzz: a lock just taken is not held\n");
		abort();
	}
	json_decref(info);
	info = NULL;
	iac_lock_release(lk);
	lk = NULL;

	/* preempted (iac rollback -force) */
	fd = hold(data, size);
	if (iac_lock_preempt(&lk, &info, dir, "rollback") != 0 || !info) {
		fprintf(stderr, "fuzz: a held lock was not preempted: %s\n", iac_err_last());
		abort();
	}
	json_decref(info);
	iac_lock_release(lk);
	close(fd);
	return 0;
}

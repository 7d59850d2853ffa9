/* host_int: what the files of iac/host share and nobody else may use: the
 * hosts object and the two backends behind host.h's functions (this
 * machine: host_local.c; SSH: host_ssh.c). */
#ifndef IAC_HOST_HOST_INT_H
#define IAC_HOST_HOST_INT_H

#include <pthread.h>

#include "iac/core/map.h"
#include "iac/host/host.h"

struct iac_hosts {
	pthread_mutex_t lk;
	char *local_dir;
	iac_hosts_configure_fn configure;
	void *ud;
	int configured;           /* 0 not yet, 2 configuring, 1 done, -1 failed (error kept) */
	pthread_t configuring;    /* the thread in the configure callback */
	char *error;
	iac_ssh_pool *pool;       /* made on first remote use */
	iac_ssh_options opts;     /* as set, without the secrets (iac_hosts_ssh); strings owned */
	pthread_mutex_t batch_lk;
	iac_map batches;          /* connection + kind -> batcher (batch.c) */
};

/* One way of reaching hosts. Every entry gets the arguments of its host.h
 * function, already checked (timeout_ms > 0, max bounded), and returns
 * what that function returns. `input` of exec is binary safe (a file's
 * content may hold NULs). */
typedef struct {
	int (*exec)(iac_host_result *res, iac_hosts *h, const json_t *host, const char *cmd, const void *input,
		    size_t input_len, double timeout_ms, const volatile int *cancel);
	int (*write)(iac_hosts *h, const json_t *host, const char *path, const void *data, size_t len,
		     const char *mode, const volatile int *cancel);
	int (*read)(char **out, size_t *len, iac_hosts *h, const json_t *host, const char *path, size_t max,
		    double timeout_ms, const volatile int *cancel);
	int (*stat)(iac_host_stat_info *st, iac_hosts *h, const json_t *host, const char *path, double timeout_ms,
		    const volatile int *cancel);
} iac_host_backend;

extern const iac_host_backend iac_host_local;   /* core/proc and the file system */
extern const iac_host_backend iac_host_ssh;     /* the pool of ssh_conn.h */

/* A non-zero status as an error: host, status, command, tail of stderr.
 * Always IAC_ERR. */
int iac_host_status_error(const iac_host_result *res, const json_t *host, const char *cmd);

/* The batchers of h (iac_hosts_free). */
void iac_hosts_batch_free(iac_hosts *h);

#endif

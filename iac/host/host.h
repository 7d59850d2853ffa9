/* host: running things on the machines a configuration manages: a
 * command, a file written or read, what is at a path (stat), a label for
 * messages. On this machine through core/proc and the file system; on a
 * remote host over SSH, through one connection per host (ssh_conn.h)
 * shared by everything in the process that works on it. Both ways behave
 * the same: a provider never needs to know which one a host takes.
 *
 * The provider runtime owns one iac_hosts per run and hands it to every
 * provider call (iac_rctx.hosts); the load tester makes its own to sample
 * hosts. How to reach hosts over SSH is configured once, on first remote
 * use, by the `configure` callback given to iac_hosts_new() (the runtime
 * asks the providers that declare configure_hosts: ssh reads its
 * `provider "ssh" { ... }` block).
 *
 * A host is what a `host "web1" { address = ... }` declaration makes (an
 * object: name, address, port, user), a bare address string, or NULL /
 * JSON null for this machine.
 *
 * Errors name the host and the command and say what failed:
 *   command failed with exit status 2 on 'web1' (10.0.0.2:22): systemctl ...
 *     stderr: ...
 * Threads: every function may be called from any number of threads.
 * Ownership: strings in results belong to the result (iac_host_result_free);
 * buffers returned through `char **out` belong to the caller.
 */
#ifndef IAC_HOST_HOST_H
#define IAC_HOST_HOST_H

#include <jansson.h>
#include <stddef.h>

#include "iac/host/ssh_conn.h"

typedef struct iac_hosts iac_hosts;

/* Called once, on the first remote use, to set how SSH reaches hosts
 * (iac_hosts_set_ssh); without a call, OpenSSH's defaults apply (root,
 * ~/.ssh/known_hosts, the agent). IAC_ERR (message set) fails that use
 * and every later one with the same message. */
typedef int (*iac_hosts_configure_fn)(iac_hosts *h, void *ud);

/* local_dir: where commands on this machine run and where relative paths
 * written there resolve (the configuration directory). configure may be
 * NULL. */
int iac_hosts_new(iac_hosts **out, const char *local_dir, iac_hosts_configure_fn configure, void *ud);
/* Closes every connection. With IAC_SSH_STATS set, logs how much SSH work
 * the run took (for benchmarks). */
void iac_hosts_free(iac_hosts *h);

/* SSH counters since the hosts were made (zero before the first remote
 * use), for benchmarks and tests. */
void iac_hosts_stats(iac_ssh_stats *out, const iac_hosts *h);

/* Set the SSH options (copied); from the configure callback, or before
 * the first remote use. */
int iac_hosts_set_ssh(iac_hosts *h, const iac_ssh_options *opts);

/* How SSH reaches hosts, as set (running the configure callback first when
 * no remote use has yet): NULL / 0 where nothing was set (the pool's
 * defaults apply then: root, port 22, the agent, ~/.ssh/known_hosts). The
 * secrets (passphrase, become_password) are never handed out: NULL. For
 * code that reaches the same hosts another way (the load tester's
 * agents). Strings belong to h, valid until iac_hosts_free() or the next
 * iac_hosts_set_ssh(). IAC_ERR when the configuration failed. */
int iac_hosts_ssh(iac_ssh_options *out, iac_hosts *h);

/* 1 when `host` designates a remote machine. */
int iac_host_is_remote(const json_t *host);
/* "'web1' (10.0.0.2)" or "this machine", for messages (per-thread buffer). */
const char *iac_host_label(const json_t *host);
/* 1 when two hosts designate the same login (address, port, user). */
int iac_host_same(const json_t *a, const json_t *b);

/* The SSH connection to a remote host, connecting on first use. IAC_ERR
 * when it cannot be reached (the host is marked: iac_err_host()). */
int iac_hosts_conn(iac_ssh_conn **out, iac_hosts *h, const json_t *host, const volatile int *cancel);

/* host is a machine iac has just created (an instance made through a
 * cloud API, at an address a deleted one may have had): forget the host
 * keys known for its address and trust the one it presents first
 * (iac_ssh_pool_renew). Nothing to do for this machine. */
int iac_hosts_renew(iac_hosts *h, const json_t *host);

typedef struct {
	int status;       /* exit status; 128+N when killed by signal N */
	char *out;        /* stdout, NUL-terminated (capped) */
	size_t out_len;
	char *err;        /* stderr, NUL-terminated (capped) */
	size_t err_len;
} iac_host_result;

/* Run cmd (POSIX shell) on host with `input` (may be NULL) on its stdin.
 * 0 when it ran, whatever its status; IAC_ERR when it could not run, the
 * host could not be reached, or timeout_ms (<= 0: 60 s) passed. Free the
 * result in every case. */
int iac_host_exec(iac_host_result *res, iac_hosts *h, const json_t *host, const char *cmd,
		  const char *input, double timeout_ms, const volatile int *cancel);
/* Like iac_host_exec, but a non-zero exit status is an error too, with the
 * tail of stderr. *out (may be NULL) receives stdout (caller frees). */
int iac_host_run(char **out, iac_hosts *h, const json_t *host, const char *cmd, double timeout_ms,
		 const volatile int *cancel);
/* The exit status of cmd instead of an error when it is not 0. */
int iac_host_status(int *status, iac_hosts *h, const json_t *host, const char *cmd, double timeout_ms,
		    const volatile int *cancel);
/* Replace path on host with data: written beside and renamed (never seen
 * half-written), parents created, mode ("0644" when NULL). On this machine
 * a relative path is relative to local_dir. */
int iac_host_write(iac_hosts *h, const json_t *host, const char *path, const void *data, size_t len,
		   const char *mode, const volatile int *cancel);
void iac_host_result_free(iac_host_result *res);

/* The most iac_host_read returns: one byte less than an SSH command's
 * output may hold, so that the byte past `max` can say a file is bigger. */
#define IAC_HOST_READ_MAX (IAC_SSH_CAPTURE_MAX - 1)

/* The content of the file at path on host, following symbolic links:
 * *out (caller frees) holds *len bytes, which may include NULs, and a NUL
 * after them. At most `max` bytes (0 or more than IAC_HOST_READ_MAX:
 * IAC_HOST_READ_MAX): a bigger file is an error, never a truncated read.
 * On this machine a relative path is relative to local_dir; over SSH, to
 * the login's home. timeout_ms <= 0: 60 s.
 * Returns 0; IAC_ENOTFOUND when nothing is at path (a dangling link too):
 *   'path' does not exist on 'web1' (10.0.0.2)
 * or IAC_ERR when it cannot be read (a directory, permissions, too big) or
 * the host cannot be reached (then iac_err_host() names the host). *out is
 * NULL unless 0. */
int iac_host_read(char **out, size_t *len, iac_hosts *h, const json_t *host, const char *path, size_t max,
		  double timeout_ms, const volatile int *cancel);

/* What is at a path on a host. */
typedef struct {
	int exists;          /* 0: nothing at path (and every field below empty) */
	int is_file;         /* a regular file (not a link to one) */
	int is_dir;
	int is_link;         /* a symbolic link; never followed */
	char type[32];       /* GNU stat's words: "regular file", "regular empty file",
				"directory", "symbolic link", "fifo", "socket",
				"character special file", "block special file" */
	char mode[8];        /* permission bits, four octal digits: "0644" */
	char owner[64];      /* user name ("UNKNOWN" for an id without one, as GNU stat) */
	char group[64];
	long long size;      /* bytes (of the link itself for a link) */
	char sha256[65];     /* of the content, regular files only; "" otherwise */
	char target[4096];   /* what a symbolic link points to, as written; "" otherwise */
} iac_host_stat_info;

/* Fill *st for path on host (the final symbolic link is not followed).
 * Nothing at path is not an error: st->exists is 0. Paths resolve as for
 * iac_host_read. Over SSH, concurrent calls for one host are merged into
 * one remote command (one stat and one sha256sum for them all); the host
 * needs GNU coreutils. timeout_ms <= 0: 60 s. Returns 0, or IAC_ERR when
 * the host cannot be reached or the command fails. */
int iac_host_stat(iac_host_stat_info *st, iac_hosts *h, const json_t *host, const char *path, double timeout_ms,
		  const volatile int *cancel);

/* Group commit for remote commands. Concurrent requests of one `kind`
 * (one kind per `run` function) for one connection run as one remote
 * command: the first caller runs `run` for its own item; items queued
 * while it runs go, up to 256 at a time, to the next caller to lead.
 * `run` gets every item of its batch (its own included) and must fill each
 * item's result; it runs on the leader's thread with the leader's `ud`
 * while the others wait. Nobody waits on a timer for a batch to fill.
 * Items and ud are the callers' own structures. */
typedef void (*iac_host_batch_fn)(void **items, size_t n, void *ud);
void iac_hosts_batch(iac_hosts *h, iac_ssh_conn *c, const char *kind, iac_host_batch_fn run, void *ud,
		     void *item);

/* A file mode as four octal digits ("644", "0644" or the number 644 ->
 * "0644"); `dflt` when mode is NULL or null. Errors say "attribute 'mode':
 * ...". Shared by every provider that writes files. */
int iac_host_mode_norm(char out[8], const json_t *mode, const char *dflt);

#endif

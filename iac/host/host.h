/* host: running things on the machines a configuration manages: a
 * command, a file written, a label for messages. On this machine through
 * core/proc; on a remote host over SSH, through one connection per host
 * (ssh_conn.h) shared by everything in the process that works on it.
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
 * Ownership: strings in results belong to the result (iac_host_result_free).
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
void iac_hosts_stats(const iac_hosts *h, iac_ssh_stats *out);

/* Set the SSH options (copied); from the configure callback, or before
 * the first remote use. */
int iac_hosts_set_ssh(iac_hosts *h, const iac_ssh_options *opts);

/* 1 when `host` designates a remote machine. */
int iac_host_is_remote(const json_t *host);
/* "'web1' (10.0.0.2)" or "this machine", for messages (per-thread buffer). */
const char *iac_host_label(const json_t *host);
/* 1 when two hosts designate the same login (address, port, user). */
int iac_host_same(const json_t *a, const json_t *b);

/* The SSH connection to a remote host, connecting on first use. IAC_ERR
 * when it cannot be reached (the host is marked: iac_err_host()). */
int iac_hosts_conn(iac_ssh_conn **out, iac_hosts *h, const json_t *host, const volatile int *cancel);

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

/* A file mode as four octal digits ("644", "0644" or the number 644 ->
 * "0644"); `dflt` when mode is NULL or null. Errors say "attribute 'mode':
 * ...". Shared by every provider that writes files. */
int iac_host_mode_norm(char out[8], const json_t *mode, const char *dflt);

#endif

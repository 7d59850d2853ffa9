/* ssh_conn: a pool of SSH connections, one libssh2 session per host for the
 * whole run, shared by every thread that works on that host: the transport
 * under host.h. Code outside iac/host uses it through host.h; the ssh
 * provider also drives connections directly (batching, SFTP).
 *
 * Threads: any number of threads may run commands on the same connection at
 * once; each gets its own channel (at most `max_channels` open at a time,
 * the rest wait). The session itself is driven in non-blocking mode under a
 * per-connection lock that is released while waiting for the network, so a
 * slow command never holds up a quick one on the same host.
 *
 * Failure is cached: when a host cannot be reached, or its connection drops,
 * every later call for it fails at once with the same message, for the
 * rest of the run. Nothing here ever waits without a deadline.
 *
 * Ownership: the pool owns its connections; an iac_ssh_conn pointer stays
 * valid until iac_ssh_pool_free(). Strings in iac_ssh_options and
 * iac_ssh_target are copied.
 */
#ifndef IAC_HOST_SSH_CONN_H
#define IAC_HOST_SSH_CONN_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
	const char *user;            /* default login user (NULL: "root") */
	int port;                    /* default port (0: 22) */
	const char *private_key;     /* absolute path, or NULL to use ssh-agent */
	const char *public_key;      /* optional; NULL: derived by libssh2 */
	const char *passphrase;      /* of private_key, or NULL (never printed) */
	const char *known_hosts;     /* absolute path (NULL: ~/.ssh/known_hosts) */
	int accept_new;              /* add unknown host keys (never changed ones) */
	double connect_timeout_ms;   /* TCP connect + handshake + auth (0: 10 s) */
	int max_channels;            /* channels open at once per host (0: 8) */
	/* Run every command as root through sudo, so the login need not be
	 * root: become_password NULL means NOPASSWD (sudo -n); else sudo is
	 * given the password on stdin, never on a command line. */
	int become;
	const char *become_password;
} iac_ssh_options;

/* Where to connect. user/port NULL/0 fall back to the pool's options. */
typedef struct {
	const char *name;            /* for messages: "web1" (NULL: the address) */
	const char *address;         /* IP or DNS name */
	int port;
	const char *user;
} iac_ssh_target;

typedef struct iac_ssh_pool iac_ssh_pool;
typedef struct iac_ssh_conn iac_ssh_conn;

/* What a remote command did. */
typedef struct {
	int status;       /* exit status; 128+N when killed by signal N; -1 unknown */
	char *signal;     /* exit signal name ("KILL") or NULL */
	char *out;        /* stdout, NUL-terminated (capped at IAC_SSH_CAPTURE_MAX) */
	size_t out_len;
	char *err;        /* stderr, NUL-terminated (capped) */
	size_t err_len;
} iac_ssh_result;

#define IAC_SSH_CAPTURE_MAX (64u << 20)

int iac_ssh_pool_new(iac_ssh_pool **out, const iac_ssh_options *opts);
/* Disconnects every host and frees the pool (not while calls are running). */
void iac_ssh_pool_free(iac_ssh_pool *pool);

/* The connection to a target, connecting on first use (other threads asking
 * for the same host meanwhile wait for that attempt). Returns 0, or IAC_ERR
 * with a message naming the host and what to do, e.g.
 *   cannot connect to 'web1' (10.213.0.2:22): connection refused */
int iac_ssh_pool_get(iac_ssh_conn **out, iac_ssh_pool *pool, const iac_ssh_target *t,
		     const volatile int *cancel);

/* A machine iac has just made at address:port (port 0: the pool's), at an
 * address a machine it deleted may have had: the keys known_hosts holds
 * for it are the old machine's. Its plain known_hosts lines are dropped,
 * the key it presents at its next connection is trusted and recorded
 * (once, as -ssh-accept-new would), and a pooled connection to that
 * address is not used again. Only for machines iac created itself, over
 * an authenticated API. IAC_ERR when known_hosts cannot be rewritten. */
int iac_ssh_pool_renew(iac_ssh_pool *p, const char *address, int port);

/* 0 while the connection is usable; IAC_ERR once it is dead, with its
 * failure as this thread's error, marked as the host's (iac_err_host()). */
int iac_ssh_conn_check(iac_ssh_conn *c);

/* "'web1' (10.213.0.2:22)", for messages; owned by the connection. */
const char *iac_ssh_conn_label(const iac_ssh_conn *c);
/* The host's name ("web1"). */
const char *iac_ssh_conn_name(const iac_ssh_conn *c);

/* Run `cmd` with the login shell of the remote user. `input` (may be NULL)
 * is written to its stdin, which is then closed. Returns 0 when the command
 * ran, whatever its status; IAC_ETIMEOUT when timeout_ms (<= 0: none)
 * passed; IAC_EINTR when *cancel became non-zero; IAC_ERR when the
 * connection failed (message set, connection marked dead). Free the result
 * with iac_ssh_result_free() in every case. */
int iac_ssh_exec(iac_ssh_result *res, iac_ssh_conn *c, const char *cmd,
		 const void *input, size_t input_len, double timeout_ms,
		 const volatile int *cancel);
void iac_ssh_result_free(iac_ssh_result *res);

/* Write `data` to `path` on the host over SFTP (created or truncated, with
 * `mode`). Not atomic by itself: callers write a temp name then rename. */
int iac_ssh_sftp_write(iac_ssh_conn *c, const char *path, const void *data, size_t len,
		       mode_t mode, double timeout_ms, const volatile int *cancel);

/* Counters since the pool was made, for benchmarks and tests. */
typedef struct {
	unsigned long connects;      /* sessions established */
	unsigned long channels;      /* exec channels opened */
	unsigned long sftp_writes;
	double connect_ms_max;       /* slowest connect + handshake + login */
} iac_ssh_stats;
void iac_ssh_pool_stats(iac_ssh_stats *out, const iac_ssh_pool *pool);

/* s quoted for a POSIX shell ('...' with ' escaped). Caller frees. */
char *iac_ssh_quote(const char *s);

#endif

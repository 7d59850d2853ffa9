/* ssh_conn: one libssh2 session per host, shared by threads (see ssh_conn.h).
 *
 * How several threads share one session: libssh2 is not thread-safe, so
 * every libssh2 call on a session is made under the connection's lock `lk`,
 * in non-blocking mode. A call that would block returns EAGAIN; the thread
 * then waits for the network *without* the lock, so other threads can drive
 * their own channels meanwhile. Because any thread's call may read packets
 * meant for another thread's channel off the socket, waking up is driven by
 * a generation counter: our recv callback counts received bytes, and every
 * call that received something bumps `gen` and wakes all waiters. One waiter
 * at a time polls the socket itself (woken early through an eventfd).
 *
 * Two libssh2 rules shape the rest:
 *  - a packet half-sent (EAGAIN while sending) must be finished by the same
 *    call before any other send, so a thread blocked on OUTBOUND keeps the
 *    lock while it waits for the socket to drain;
 *  - opening a channel (and starting SFTP) keeps its progress in the session,
 *    not the channel, and a thread waiting for the reply to its exec request
 *    fails when it reads another channel's reply first, so open + exec are
 *    serialised by `open_lk` (a round trip or two; the commands themselves
 *    still run side by side), and SFTP operations by `sftp_lk`.
 */
#include "iac/host/ssh_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/map.h"
#include "iac/core/util.h"

#define SLICE_MS 100          /* longest sleep before re-checking cancel/deadline */
#define IDLE_ROUNDS 5         /* slices io_wait() sleeps before letting the caller retry */
#define CLOSE_GRACE_MS 2000   /* how long an abandoned channel may take to close */

enum { C_NEW, C_CONNECTING, C_UP, C_DEAD };

struct iac_ssh_conn {
	iac_ssh_pool *pool;
	char *name, *address, *user, *label;
	int port;
	int cstate;               /* pool->lk */
	char *fail;               /* why it is dead; set once, then immutable */

	pthread_mutex_t lk;       /* everything below, and every libssh2 call */
	pthread_cond_t cv;
	LIBSSH2_SESSION *s;
	int sock, evfd;
	uint64_t gen, rx;
	int polling;
	int nchan;
	int dead;
	pthread_mutex_t open_lk;  /* channel opens and sftp_init */
	pthread_mutex_t sftp_lk;  /* one SFTP operation at a time */
	LIBSSH2_SFTP *sftp;
};

struct iac_ssh_pool {
	iac_ssh_options o;
	pthread_mutex_t lk;
	pthread_cond_t cv;
	pthread_mutex_t kh_lk;    /* the known_hosts file */
	iac_map conns;
	iac_map renewed;          /* "address:port" of machines iac has just made (value unused) */
	unsigned long retired;    /* connections to machines since replaced (kept in conns) */
	iac_ssh_stats stats;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void lib_init(void)
{
	init_rc = libssh2_init(0);
}

char *iac_ssh_quote(const char *s)
{
	iac_buf b = IAC_BUF_INIT;
	iac_buf_putc(&b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			iac_buf_puts(&b, "'\\''");
		else
			iac_buf_putc(&b, *s);
	}
	iac_buf_putc(&b, '\'');
	return iac_buf_detach(&b);
}

static char *dup_or_null(const char *s)
{
	return s ? iac_xstrdup(s) : NULL;
}

int iac_ssh_pool_new(iac_ssh_pool **out, const iac_ssh_options *opts)
{
	pthread_once(&init_once, lib_init);
	if (init_rc != 0)
		return iac_err_set("cannot initialise libssh2 (error %d)", init_rc);
	iac_ssh_pool *p = iac_xcalloc(1, sizeof(*p));
	p->o.user = iac_xstrdup(opts->user ? opts->user : "root");
	p->o.port = opts->port > 0 ? opts->port : 22;
	p->o.private_key = dup_or_null(opts->private_key);
	p->o.public_key = dup_or_null(opts->public_key);
	p->o.passphrase = dup_or_null(opts->passphrase);
	p->o.become = opts->become;
	p->o.become_password = dup_or_null(opts->become_password);
	if (opts->known_hosts) {
		p->o.known_hosts = iac_xstrdup(opts->known_hosts);
	} else {
		const char *home = getenv("HOME");
		p->o.known_hosts = iac_xasprintf("%s/.ssh/known_hosts", home ? home : "/root");
	}
	p->o.accept_new = opts->accept_new;
	p->o.connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
	p->o.max_channels = opts->max_channels > 0 ? opts->max_channels : 8;
	pthread_mutex_init(&p->lk, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_mutex_init(&p->kh_lk, NULL);
	*out = p;
	return 0;
}

static void conn_free(iac_ssh_conn *c)
{
	if (c->s) {
		/* a polite goodbye, but never wait long for it */
		libssh2_session_set_blocking(c->s, 1);
		libssh2_session_set_timeout(c->s, 1000);
		if (!c->dead) {
			if (c->sftp)
				libssh2_sftp_shutdown(c->sftp);
			libssh2_session_disconnect(c->s, "iac done");
		}
		libssh2_session_free(c->s);
	}
	if (c->sock >= 0)
		close(c->sock);
	if (c->evfd >= 0)
		close(c->evfd);
	pthread_mutex_destroy(&c->lk);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->open_lk);
	pthread_mutex_destroy(&c->sftp_lk);
	free(c->name);
	free(c->address);
	free(c->user);
	free(c->label);
	free(c->fail);
	free(c);
}

void iac_ssh_pool_free(iac_ssh_pool *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->conns.cap; i++)
		if (p->conns.slots[i].key)
			conn_free(p->conns.slots[i].value);
	iac_map_free(&p->conns);
	iac_map_free(&p->renewed);
	free((char *)p->o.user);
	free((char *)p->o.private_key);
	free((char *)p->o.public_key);
	if (p->o.become_password) {
		memset((char *)p->o.become_password, 0, strlen(p->o.become_password));
		free((char *)p->o.become_password);
	}
	if (p->o.passphrase) {
		memset((char *)p->o.passphrase, 0, strlen(p->o.passphrase));
		free((char *)p->o.passphrase);
	}
	free((char *)p->o.known_hosts);
	pthread_mutex_destroy(&p->lk);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->kh_lk);
	free(p);
}

void iac_ssh_pool_stats(iac_ssh_stats *out, const iac_ssh_pool *p)
{
	out->connects = __atomic_load_n(&p->stats.connects, __ATOMIC_RELAXED);
	out->channels = __atomic_load_n(&p->stats.channels, __ATOMIC_RELAXED);
	out->sftp_writes = __atomic_load_n(&p->stats.sftp_writes, __ATOMIC_RELAXED);
	pthread_mutex_lock((pthread_mutex_t *)&p->lk);
	out->connect_ms_max = p->stats.connect_ms_max;
	pthread_mutex_unlock((pthread_mutex_t *)&p->lk);
}

const char *iac_ssh_conn_label(const iac_ssh_conn *c)
{
	return c->label;
}

const char *iac_ssh_conn_name(const iac_ssh_conn *c)
{
	return c->name;
}

/* ---- waiting ---------------------------------------------------------- */

static double remaining(double deadline)
{
	return deadline > 0 ? deadline - iac_now_ms() : 1e18;
}

static int slice_ms(double deadline)
{
	double r = remaining(deadline);
	if (r > SLICE_MS)
		return SLICE_MS;
	return r < 1 ? 1 : (int)r;
}

/* libssh2's recv hook: count bytes so waiters know something arrived. */
static ssize_t recv_hook(libssh2_socket_t fd, void *buf, size_t len, int flags, void **abstract)
{
	iac_ssh_conn *c = *abstract;
	ssize_t n = recv(fd, buf, len, flags);
	if (n < 0)
		return -errno;
	c->rx += (uint64_t)n;
	/* sshd sends small packets back to back (data, exit-status, eof,
	 * close); with Nagle on its side and delayed ACKs on ours, each
	 * command would wait ~40 ms for an ACK. Quick ACKs avoid that, and
	 * the kernel clears the flag after a while, so set it every time. */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	return n;
}

typedef struct {
	uint64_t g, rx0;
} io_tok;

static void io_enter(iac_ssh_conn *c, io_tok *t)
{
	pthread_mutex_lock(&c->lk);
	t->g = c->gen;
	t->rx0 = c->rx;
}

static void wake_all(iac_ssh_conn *c)
{
	uint64_t one = 1;
	c->gen++;
	pthread_cond_broadcast(&c->cv);
	if (c->polling && write(c->evfd, &one, sizeof(one)) < 0) {
		/* the eventfd counter cannot overflow in practice; the poller
		 * wakes within SLICE_MS anyway */
	}
}

/* After libssh2 calls (lock held): if they received bytes, whatever they
 * queued may be what other threads wait for. */
static void io_note(iac_ssh_conn *c, io_tok *t)
{
	if (c->rx != t->rx0)
		wake_all(c);
	t->g = c->gen;
	t->rx0 = c->rx;
}

static void io_leave(iac_ssh_conn *c, io_tok *t)
{
	io_note(c, t);
	pthread_mutex_unlock(&c->lk);
}

static int outbound_blocked(iac_ssh_conn *c)
{
	return (libssh2_session_block_directions(c->s) & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0;
}

/* The failure of a dead connection as this thread's error, marked as the
 * host's (err.h): the engine reports the host once and leaves its resources
 * alone. The short cause drops the "cannot connect to 'web3' (...): " head
 * the full message starts with. */
static int fail_host(iac_ssh_conn *c)
{
	static const struct { const char *head, *say; } heads[] = {
		{ "cannot connect to %s: ", "" },
		{ "lost the connection to %s: ", "the connection dropped: " },
		{ "host key of %s ", "its host key " },
		{ "cannot log in to %s", "cannot log in" },
	};
	char head[600], why[2048], where[300];
	const char *msg = c->fail ? c->fail : "connection failed";

	snprintf(why, sizeof(why), "%s", msg);
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		snprintf(head, sizeof(head), heads[i].head, c->label);
		if (!strncmp(msg, head, strlen(head))) {
			snprintf(why, sizeof(why), "%s%s", heads[i].say, msg + strlen(head));
			break;
		}
	}
	/* strerror() capitalises; our messages are lower-case */
	if (why[0] >= 'A' && why[0] <= 'Z' && (why[1] < 'A' || why[1] > 'Z'))
		why[0] = (char)(why[0] - 'A' + 'a');
	iac_err_set("%s", msg);
	snprintf(where, sizeof(where), "%s:%d", c->address, c->port);
	iac_err_host_down(c->name, where, why);
	return IAC_ERR;
}

/* Mark the connection dead (lock held); later calls fail with `fail`. */
static int conn_fail(iac_ssh_conn *c, const char *what)
{
	if (!c->dead) {
		c->dead = 1;
		c->fail = iac_xasprintf("lost the connection to %s: %s", c->label, what);
		wake_all(c);
	}
	return fail_host(c);
}

/* What a fatal libssh2 error means for the person reading it. */
static const char *fatal_why(iac_ssh_conn *c, int rc);

static const char *ssh_errmsg(iac_ssh_conn *c)
{
	char *msg = NULL;
	int len = 0;
	libssh2_session_last_error(c->s, &msg, &len, 0);
	return msg && *msg ? msg : "unknown libssh2 error";
}

/* Errors after which the session is unusable. */
static int fatal_rc(int rc)
{
	switch (rc) {
	case LIBSSH2_ERROR_SOCKET_NONE:
	case LIBSSH2_ERROR_BANNER_RECV:
	case LIBSSH2_ERROR_BANNER_SEND:
	case LIBSSH2_ERROR_INVALID_MAC:
	case LIBSSH2_ERROR_KEX_FAILURE:
	case LIBSSH2_ERROR_SOCKET_SEND:
	case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
	case LIBSSH2_ERROR_TIMEOUT:
	case LIBSSH2_ERROR_DECRYPT:
	case LIBSSH2_ERROR_SOCKET_DISCONNECT:
	case LIBSSH2_ERROR_PROTO:
	case LIBSSH2_ERROR_SOCKET_TIMEOUT:
	case LIBSSH2_ERROR_SOCKET_RECV:
	case LIBSSH2_ERROR_ENCRYPT:
	case LIBSSH2_ERROR_BAD_SOCKET:
	case LIBSSH2_ERROR_BAD_USE:
		return 1;
	default:
		return 0;
	}
}

static const char *fatal_why(iac_ssh_conn *c, int rc)
{
	switch (rc) {
	case LIBSSH2_ERROR_SOCKET_RECV:
	case LIBSSH2_ERROR_SOCKET_DISCONNECT:
	case LIBSSH2_ERROR_SOCKET_SEND:
	case LIBSSH2_ERROR_BAD_SOCKET:
	case LIBSSH2_ERROR_SOCKET_NONE:
		return "the connection was closed (host down, rebooted, or sshd stopped?)";
	case LIBSSH2_ERROR_TIMEOUT:
	case LIBSSH2_ERROR_SOCKET_TIMEOUT:
		return "the host stopped answering";
	default:
		return ssh_errmsg(c);
	}
}

/* A libssh2 call failed with `rc` (lock held). An error that leaves the
 * session unusable kills the connection, so every later call fails at once
 * with the same message; returns whether it did. Otherwise the caller
 * reports the failure of just this call. */
static int fail_if_fatal(iac_ssh_conn *c, int rc)
{
	if (!fatal_rc(rc))
		return 0;
	conn_fail(c, fatal_why(c, rc));
	return 1;
}

/* The last call returned EAGAIN (lock held). Wait until retrying may help:
 * returns 0 with the lock held, or IAC_ETIMEOUT / IAC_EINTR / IAC_ERR with
 * the lock released. */
static int io_wait(iac_ssh_conn *c, io_tok *t, double deadline, const volatile int *cancel)
{
	io_note(c, t);
	if (outbound_blocked(c)) {
		/* keep the lock: the half-sent packet must go out first */
		for (;;) {
			if (cancel && *cancel) {
				pthread_mutex_unlock(&c->lk);
				return IAC_EINTR;
			}
			if (remaining(deadline) <= 0) {
				pthread_mutex_unlock(&c->lk);
				return IAC_ETIMEOUT;
			}
			struct pollfd pfd = { .fd = c->sock, .events = POLLOUT };
			int n = poll(&pfd, 1, slice_ms(deadline));
			if (n > 0)
				break;
		}
		t->g = c->gen;
		t->rx0 = c->rx;
		return 0;
	}
	/* Nothing arrived for a while: return anyway and let the caller try
	 * its libssh2 call again. A wakeup lost between threads (another
	 * thread read our channel's data into libssh2's queue, an EOF that
	 * must go out first) then costs half a second, never the command's
	 * whole deadline; an idle waiter pays one libssh2 call per round. */
	int rounds = 0;
	while (c->gen == t->g && rounds++ < IDLE_ROUNDS) {
		if (c->dead) {
			fail_host(c);
			pthread_mutex_unlock(&c->lk);
			return IAC_ERR;
		}
		if (cancel && *cancel) {
			pthread_mutex_unlock(&c->lk);
			return IAC_EINTR;
		}
		if (remaining(deadline) <= 0) {
			pthread_mutex_unlock(&c->lk);
			return IAC_ETIMEOUT;
		}
		if (!c->polling) {
			struct pollfd pfd[2] = {
				{ .fd = c->sock, .events = POLLIN },
				{ .fd = c->evfd, .events = POLLIN },
			};
			c->polling = 1;
			pthread_mutex_unlock(&c->lk);
			int n = poll(pfd, 2, slice_ms(deadline));
			pthread_mutex_lock(&c->lk);
			c->polling = 0;
			if (n > 0 && pfd[1].revents) {
				uint64_t v;
				if (read(c->evfd, &v, sizeof(v)) < 0) {
					/* nothing to drain: another thread raced us */
				}
			}
			if (n > 0 && pfd[0].revents)
				c->gen++;
			/* let another waiter take over polling, or retry */
			pthread_cond_broadcast(&c->cv);
		} else {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			long ns = ts.tv_nsec + (long)slice_ms(deadline) * 1000000L;
			ts.tv_sec += ns / 1000000000L;
			ts.tv_nsec = ns % 1000000000L;
			pthread_cond_timedwait(&c->cv, &c->lk, &ts);
		}
	}
	t->g = c->gen;
	t->rx0 = c->rx;
	return 0;
}

/* Evaluate EXPR (a libssh2 call) until it stops saying EAGAIN; the lock is
 * held before and after. On a wait failure, `werr` is set, the lock is
 * released, and control jumps to LABEL. */
#define CALL_WAIT(c, t, var, expr, deadline, cancel, werr, label) \
	for (;;) { \
		var = (expr); \
		if (var != LIBSSH2_ERROR_EAGAIN) \
			break; \
		if ((werr = io_wait((c), (t), (deadline), (cancel))) != 0) \
			goto label; \
	}

/* Like CALL_WAIT but only waits when a send is half done; an inbound EAGAIN
 * is returned to the caller (which has other channels' streams to try). */
#define CALL_OUT(c, t, var, expr, deadline, cancel, werr, label) \
	for (;;) { \
		var = (expr); \
		if (var != LIBSSH2_ERROR_EAGAIN || !outbound_blocked(c)) \
			break; \
		if ((werr = io_wait((c), (t), (deadline), (cancel))) != 0) \
			goto label; \
	}

static int wait_err(iac_ssh_conn *c, int werr, const char *what, double timeout_ms)
{
	if (werr == IAC_ETIMEOUT)
		iac_err_set("%s on %s timed out after %.0fs", what, c->label, timeout_ms / 1e3);
	else if (werr == IAC_EINTR)
		iac_err_set("%s on %s interrupted", what, c->label);
	return werr;
}

/* ---- connecting ------------------------------------------------------- */

static int tcp_connect(iac_ssh_conn *c, double deadline, const volatile int *cancel)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char port[16];
	int fd = -1, err = 0, rc;

	snprintf(port, sizeof(port), "%d", c->port);
	rc = getaddrinfo(c->address, port, &hints, &ai);
	if (rc != 0)
		return iac_err_set("cannot connect to %s: cannot resolve '%s': %s", c->label,
				   c->address, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return iac_err_sys("cannot connect to %s: socket", c->label);
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
		} else {
			for (;;) {
				if (cancel && *cancel) {
					err = EINTR;
					break;
				}
				if (remaining(deadline) <= 0) {
					err = ETIMEDOUT;
					break;
				}
				struct pollfd pfd = { .fd = fd, .events = POLLOUT };
				if (poll(&pfd, 1, slice_ms(deadline)) > 0) {
					socklen_t len = sizeof(err);
					getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
					break;
				}
			}
		}
	}
	freeaddrinfo(ai);
	if (err) {
		close(fd);
		if (err == ETIMEDOUT)
			return iac_err_set("cannot connect to %s: no answer within %.0fs (is the host up "
					   "and reachable? raise connect_timeout if it is slow)",
					   c->label, c->pool->o.connect_timeout_ms / 1e3);
		if (err == EINTR)
			return iac_err_set("cannot connect to %s: interrupted", c->label);
		return iac_err_set("cannot connect to %s: %s", c->label, strerror(err));
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->sock = fd;
	return 0;
}

static const char *key_type_name(int type)
{
	switch (type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA: return "RSA";
	case LIBSSH2_HOSTKEY_TYPE_DSS: return "DSA";
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return "ECDSA";
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return "ECDSA-384";
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return "ECDSA-521";
	case LIBSSH2_HOSTKEY_TYPE_ED25519: return "ED25519";
	default: return "unknown";
	}
}

static int key_type_kh(int type)
{
	switch (type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
	default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
	}
}

/* "SHA256:base64" as OpenSSH prints it. */
static void fingerprint(iac_ssh_conn *c, char out[80])
{
	const unsigned char *h = (const unsigned char *)libssh2_hostkey_hash(c->s, LIBSSH2_HOSTKEY_HASH_SHA256);
	unsigned char b64[64];
	if (!h) {
		snprintf(out, 80, "SHA256:?");
		return;
	}
	int n = EVP_EncodeBlock(b64, h, 32);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	b64[n] = '\0';
	snprintf(out, 80, "SHA256:%s", (char *)b64);
}

/* known_hosts spelling of the host: "addr" on port 22, "[addr]:port" else. */
static char *kh_host(iac_ssh_conn *c)
{
	return c->port == 22 ? iac_xstrdup(c->address) : iac_xasprintf("[%s]:%d", c->address, c->port);
}

/* The key the server sent, and how to name it in messages. */
typedef struct {
	const char *key;
	size_t len;
	int type;
	char fp[80];          /* fingerprint() */
	char *host;           /* kh_host() */
} host_key;

/* How libssh2's known_hosts calls look a key of this type up. */
static int kh_typemask(int type)
{
	return LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key_type_kh(type);
}

/* The known_hosts file as libssh2 reads it (a missing file is empty), or
 * NULL with a message set. Read under kh_lk: another thread may be
 * appending a key it accepted. */
static LIBSSH2_KNOWNHOSTS *kh_read(iac_ssh_conn *c)
{
	iac_ssh_pool *p = c->pool;
	LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(c->s);
	if (!kh) {
		iac_err_set("cannot connect to %s: out of memory for known_hosts", c->label);
		return NULL;
	}
	pthread_mutex_lock(&p->kh_lk);
	int nread = access(p->o.known_hosts, F_OK) == 0
		? libssh2_knownhost_readfile(kh, p->o.known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) : 0;
	pthread_mutex_unlock(&p->kh_lk);
	if (nread < 0) {
		iac_err_set("cannot read known_hosts '%s': %s (fix or remove the bad lines)",
			    p->o.known_hosts, ssh_errmsg(c));
		libssh2_knownhost_free(kh);
		return NULL;
	}
	return kh;
}

static int key_changed(iac_ssh_conn *c, const host_key *k)
{
	const char *kh = c->pool->o.known_hosts;
	return iac_err_set("host key of %s has CHANGED: it sent %s key %s, which does not match "
			   "known_hosts '%s'. Someone may be intercepting the connection, or the host was "
			   "reinstalled; if you know why, check the new fingerprint on the host "
			   "(ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), remove the old key with "
			   "`ssh-keygen -R %s -f %s` and run again (-ssh-accept-new never replaces a key)",
			   c->label, key_type_name(k->type), k->fp, kh,
			   k->type == LIBSSH2_HOSTKEY_TYPE_ED25519 ? "ed25519" :
			   k->type == LIBSSH2_HOSTKEY_TYPE_RSA ? "rsa" : "ecdsa",
			   k->host, kh);
}

static int key_unknown(iac_ssh_conn *c, const host_key *k)
{
	const char *kh = c->pool->o.known_hosts;
	return iac_err_set("host key of %s is unknown: it sent %s key %s, which is not in known_hosts "
			   "'%s'. Check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
			   "then add it (`ssh-keyscan -p %d %s >> %s`) or run with -ssh-accept-new to trust "
			   "new hosts on first use",
			   c->label, key_type_name(k->type), k->fp, kh, c->port, c->address, kh);
}

/* -ssh-accept-new: trust a host seen for the first time, and remember it. */
static int key_accept(iac_ssh_conn *c, LIBSSH2_KNOWNHOSTS *kh, const host_key *k)
{
	iac_ssh_pool *p = c->pool;
	char line[8192];
	size_t linelen = 0;
	struct libssh2_knownhost *added = NULL;

	if (libssh2_knownhost_addc(kh, k->host, NULL, k->key, k->len, NULL, 0, kh_typemask(k->type), &added) < 0 ||
	    libssh2_knownhost_writeline(kh, added, line, sizeof(line), &linelen, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
		return iac_err_set("cannot add the host key of %s: %s", c->label, ssh_errmsg(c));
	/* append, never rewrite: lines libssh2 does not understand
	 * (certificates, markers) must survive */
	pthread_mutex_lock(&p->kh_lk);
	int fd = open(p->o.known_hosts, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	int ok = fd >= 0 && write(fd, line, linelen) == (ssize_t)linelen;
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&p->kh_lk);
	if (!ok)
		return iac_err_sys("cannot add the host key of %s to '%s'", c->label, p->o.known_hosts);
	iac_log_warn("added the host key of %s to '%s': %s key %s", c->label,
		     p->o.known_hosts, key_type_name(k->type), k->fp);
	return 0;
}

/* "address:port", the key of the renewed map (caller frees). */
static char *renew_key(const char *address, int port)
{
	return iac_xasprintf("%s:%d", address, port);
}

/* 1 once for a machine iac_ssh_pool_renew named: its first key is trusted. */
static int take_renewed(iac_ssh_pool *p, const char *address, int port)
{
	char *k = renew_key(address, port);
	pthread_mutex_lock(&p->lk);
	int was = iac_map_del(&p->renewed, k) != NULL;
	pthread_mutex_unlock(&p->lk);
	free(k);
	return was;
}

/* known_hosts without the plain lines for host (kh_host form): its first
 * field is a comma-separated list of names. Other lines, hashed ones and
 * those libssh2 does not understand included, stay as they are. Under
 * kh_lk. */
static int kh_drop(const char *path, const char *host)
{
	char *text = NULL;
	size_t len = 0;
	if (iac_file_read(&text, &len, path) < 0) {
		iac_err_clear();
		return 0;   /* no file: nothing to drop */
	}
	iac_buf out = IAC_BUF_INIT;
	size_t hl = strlen(host);
	int dropped = 0;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		size_t ll = next ? (size_t)(++next - line) : strlen(line);
		int match = 0;
		for (const char *f = line; f < line + ll && *f != ' ' && *f != '\t';) {
			size_t fl = strcspn(f, ", \t\n");
			match |= fl == hl && !memcmp(f, host, hl);
			f += fl + (f[fl] == ',');
		}
		if (match)
			dropped++;
		else
			iac_buf_put(&out, line, ll);
	}
	int rc = dropped ? iac_file_write_atomic(path, out.ptr ? out.ptr : "", out.len, 0600) : 0;
	iac_buf_free(&out);
	free(text);
	return rc;
}

int iac_ssh_pool_renew(iac_ssh_pool *p, const char *address, int port)
{
	if (port <= 0)
		port = p->o.port;
	char *host = port == 22 ? iac_xstrdup(address) : iac_xasprintf("[%s]:%d", address, port);
	pthread_mutex_lock(&p->kh_lk);
	int rc = kh_drop(p->o.known_hosts, host);
	pthread_mutex_unlock(&p->kh_lk);
	free(host);
	if (rc < 0)
		return rc;
	char *k = renew_key(address, port);
	pthread_mutex_lock(&p->lk);
	iac_map_put(&p->renewed, k, p);
	/* a connection to the machine that had this address is of no use
	 * now (dead, or to the old one): the next use connects afresh; the
	 * old one stays in the map under another name until the pool goes */
	for (size_t i = 0; i < p->conns.cap; i++) {
		iac_ssh_conn *c = p->conns.slots[i].value;
		if (!p->conns.slots[i].key || strncmp(p->conns.slots[i].key, "retired#", 8) == 0 ||
		    strcmp(c->address, address) || c->port != port || c->cstate == C_CONNECTING)
			continue;
		char *old = iac_xstrdup(p->conns.slots[i].key);
		char *rk = iac_xasprintf("retired#%lu", ++p->retired);
		iac_map_del(&p->conns, old);
		iac_map_put(&p->conns, rk, c);
		free(rk);
		free(old);
		i = (size_t)-1;   /* the map changed under us: look again */
	}
	pthread_mutex_unlock(&p->lk);
	free(k);
	return 0;
}

static int verify_host_key(iac_ssh_conn *c)
{
	host_key k = { 0 };
	struct libssh2_knownhost *found = NULL;
	LIBSSH2_KNOWNHOSTS *kh;
	int rc = IAC_ERR;

	k.key = libssh2_session_hostkey(c->s, &k.len, &k.type);
	if (!k.key)
		return iac_err_set("cannot connect to %s: the server sent no host key", c->label);
	fingerprint(c, k.fp);
	kh = kh_read(c);
	if (!kh)
		return IAC_ERR;
	k.host = kh_host(c);
	switch (libssh2_knownhost_checkp(kh, c->address, c->port, k.key, k.len, kh_typemask(k.type), &found)) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		rc = 0;
		break;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		rc = key_changed(c, &k);
		break;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		rc = c->pool->o.accept_new || take_renewed(c->pool, c->address, c->port) ? key_accept(c, kh, &k)
											 : key_unknown(c, &k);
		break;
	default:
		rc = iac_err_set("cannot check the host key of %s: %s", c->label, ssh_errmsg(c));
		break;
	}
	libssh2_knownhost_free(kh);
	free(k.host);
	return rc;
}

static int auth_agent(iac_ssh_conn *c)
{
	LIBSSH2_AGENT *a = libssh2_agent_init(c->s);
	struct libssh2_agent_publickey *id = NULL, *prev = NULL;
	int rc = IAC_ERR, tried = 0;

	if (!a)
		return iac_err_set("cannot log in to %s: cannot use ssh-agent", c->label);
	if (!getenv("SSH_AUTH_SOCK") || libssh2_agent_connect(a) != 0) {
		iac_err_set("cannot log in to %s as '%s': no private_key is set and ssh-agent is not "
			    "reachable (SSH_AUTH_SOCK): set private_key in provider \"ssh\" or start an agent",
			    c->label, c->user);
		goto done;
	}
	if (libssh2_agent_list_identities(a) != 0) {
		iac_err_set("cannot log in to %s: cannot list ssh-agent keys: %s", c->label, ssh_errmsg(c));
		goto disc;
	}
	while (libssh2_agent_get_identity(a, &id, prev) == 0) {
		tried++;
		if (libssh2_agent_userauth(a, c->user, id) == 0) {
			rc = 0;
			break;
		}
		prev = id;
	}
	if (rc != 0)
		iac_err_set("cannot log in to %s as '%s': %s (check the user, and that one of "
			    "the agent's public keys is in the user's ~/.ssh/authorized_keys on the host)",
			    c->label, c->user, tried ? "ssh-agent's keys were refused" : "ssh-agent holds no keys");
disc:
	libssh2_agent_disconnect(a);
done:
	libssh2_agent_free(a);
	return rc;
}

static int auth_key(iac_ssh_conn *c)
{
	const iac_ssh_options *o = &c->pool->o;
	if (access(o->private_key, R_OK) != 0)
		return iac_err_sys("cannot log in to %s: cannot read private key '%s'", c->label, o->private_key);
	int rc = libssh2_userauth_publickey_fromfile_ex(c->s, c->user, (unsigned)strlen(c->user),
							 o->public_key, o->private_key,
							 o->passphrase ? o->passphrase : "");
	if (rc == 0)
		return 0;
	if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED)
		return iac_err_set("cannot log in to %s: cannot use private key '%s': %s (wrong "
				   "passphrase, or a format libssh2 cannot read?)",
				   c->label, o->private_key, ssh_errmsg(c));
	if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
		return iac_err_set("cannot log in to %s as '%s': the server refused key '%s' (check "
				   "the user, and that its public key is in that user's "
				   "~/.ssh/authorized_keys on the host)",
				   c->label, c->user, o->private_key);
	return iac_err_set("cannot log in to %s as '%s': %s", c->label, c->user, ssh_errmsg(c));
}

/* Prefer ed25519 host keys (what a known_hosts line most likely holds).
 * Only algorithms this libssh2 supports are listed: given an unknown one,
 * libssh2 1.10 removes it with an overlapping memcpy. */
static void set_hostkey_pref(LIBSSH2_SESSION *s)
{
	static const char *const want[] = {
		"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
		"rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", NULL,
	};
	const char **algs = NULL;
	int n = libssh2_session_supported_algs(s, LIBSSH2_METHOD_HOSTKEY, &algs);
	iac_buf pref = IAC_BUF_INIT;
	for (size_t i = 0; n > 0 && want[i]; i++)
		for (int j = 0; j < n; j++)
			if (!strcmp(want[i], algs[j])) {
				iac_buf_printf(&pref, "%s%s", pref.len ? "," : "", want[i]);
				break;
			}
	if (algs)
		libssh2_free(s, algs);
	if (pref.len)
		libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, iac_buf_cstr(&pref));
	iac_buf_free(&pref);
}

static int conn_connect(iac_ssh_conn *c, const volatile int *cancel)
{
	double deadline = iac_now_ms() + c->pool->o.connect_timeout_ms;
	int rc;

	if (tcp_connect(c, deadline, cancel) < 0)
		return IAC_ERR;
	c->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->s = libssh2_session_init_ex(NULL, NULL, NULL, c);
	if (!c->s || c->evfd < 0)
		return iac_err_set("cannot connect to %s: out of resources", c->label);
	libssh2_session_callback_set(c->s, LIBSSH2_CALLBACK_RECV, (void *)recv_hook);
	set_hostkey_pref(c->s);
	/* single-threaded until it is up: blocking mode with libssh2's own
	 * timeout keeps this part simple */
	libssh2_session_set_blocking(c->s, 1);
	double left = remaining(deadline);
	libssh2_session_set_timeout(c->s, left < 1 ? 1 : (long)left);
	rc = libssh2_session_handshake(c->s, c->sock);
	if (rc != 0) {
		if (rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT)
			return iac_err_set("cannot connect to %s: the SSH handshake did not finish within %.0fs",
					   c->label, c->pool->o.connect_timeout_ms / 1e3);
		return iac_err_set("cannot connect to %s: SSH handshake failed: %s", c->label, ssh_errmsg(c));
	}
	if (verify_host_key(c) < 0)
		return IAC_ERR;
	left = remaining(deadline);
	libssh2_session_set_timeout(c->s, left < 1 ? 1 : (long)left);
	rc = c->pool->o.private_key ? auth_key(c) : auth_agent(c);
	if (rc < 0)
		return IAC_ERR;
	libssh2_session_set_timeout(c->s, 0);
	libssh2_session_set_blocking(c->s, 0);
	__atomic_fetch_add(&c->pool->stats.connects, 1, __ATOMIC_RELAXED);
	return 0;
}

static iac_ssh_conn *conn_new(iac_ssh_pool *p, const iac_ssh_target *t)
{
	iac_ssh_conn *c = iac_xcalloc(1, sizeof(*c));
	c->pool = p;
	c->address = iac_xstrdup(t->address);
	c->name = iac_xstrdup(t->name ? t->name : t->address);
	c->user = iac_xstrdup(t->user ? t->user : p->o.user);
	c->port = t->port > 0 ? t->port : p->o.port;
	c->label = iac_xasprintf("'%s' (%s:%d)", c->name, c->address, c->port);
	c->sock = -1;
	c->evfd = -1;
	pthread_mutex_init(&c->lk, NULL);
	pthread_cond_init(&c->cv, NULL);
	pthread_mutex_init(&c->open_lk, NULL);
	pthread_mutex_init(&c->sftp_lk, NULL);
	return c;
}

int iac_ssh_pool_get(iac_ssh_conn **out, iac_ssh_pool *p, const iac_ssh_target *t,
		     const volatile int *cancel)
{
	iac_ssh_conn *c;
	char *key;
	int rc;

	*out = NULL;
	if (!t->address || !*t->address)
		return iac_err_set("host '%s' has no address", t->name ? t->name : "?");
	key = iac_xasprintf("%s@%s:%d", t->user ? t->user : p->o.user, t->address,
			    t->port > 0 ? t->port : p->o.port);
	pthread_mutex_lock(&p->lk);
	c = iac_map_get(&p->conns, key);
	if (!c) {
		c = conn_new(p, t);
		iac_map_put(&p->conns, key, c);
	}
	free(key);
	while (c->cstate == C_CONNECTING) {
		if (cancel && *cancel) {
			pthread_mutex_unlock(&p->lk);
			return iac_err_set("connecting to %s: interrupted", c->label);
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += SLICE_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&p->cv, &p->lk, &ts);
	}
	if (c->cstate == C_DEAD) {
		pthread_mutex_unlock(&p->lk);
		return fail_host(c);
	}
	if (c->cstate == C_UP) {
		pthread_mutex_unlock(&p->lk);
		*out = c;
		return 0;
	}
	c->cstate = C_CONNECTING;
	pthread_mutex_unlock(&p->lk);

	double t0 = iac_now_ms();
	rc = conn_connect(c, cancel);

	pthread_mutex_lock(&p->lk);
	if (rc == 0 && iac_now_ms() - t0 > p->stats.connect_ms_max)
		p->stats.connect_ms_max = iac_now_ms() - t0;
	if (rc == 0) {
		c->cstate = C_UP;
		*out = c;
	} else if (cancel && *cancel) {
		/* not the host's fault: let a later run try again */
		c->cstate = C_NEW;
	} else {
		c->cstate = C_DEAD;
		c->fail = iac_xstrdup(iac_err_last());
		pthread_mutex_lock(&c->lk);
		c->dead = 1;
		pthread_mutex_unlock(&c->lk);
		fail_host(c);
	}
	if (rc != 0 && c->s) {
		libssh2_session_free(c->s);
		c->s = NULL;
	}
	if (rc != 0 && c->sock >= 0) {
		close(c->sock);
		c->sock = -1;
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->lk);
	return rc;
}

/* ---- commands --------------------------------------------------------- */

void iac_ssh_result_free(iac_ssh_result *res)
{
	free(res->out);
	free(res->err);
	free(res->signal);
	memset(res, 0, sizeof(*res));
	res->status = -1;
}

int iac_ssh_conn_check(iac_ssh_conn *c)
{
	int dead;
	pthread_mutex_lock(&c->lk);
	dead = c->dead;
	pthread_mutex_unlock(&c->lk);
	return dead ? fail_host(c) : 0;
}

/* Wait for a free channel slot (servers allow ~10 sessions per connection). */
static int slot_take(iac_ssh_conn *c, double deadline, const volatile int *cancel)
{
	pthread_mutex_lock(&c->lk);
	while (c->nchan >= c->pool->o.max_channels && !c->dead) {
		if ((cancel && *cancel) || remaining(deadline) <= 0) {
			pthread_mutex_unlock(&c->lk);
			return cancel && *cancel ? IAC_EINTR : IAC_ETIMEOUT;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long ns = ts.tv_nsec + (long)slice_ms(deadline) * 1000000L;
		ts.tv_sec += ns / 1000000000L;
		ts.tv_nsec = ns % 1000000000L;
		pthread_cond_timedwait(&c->cv, &c->lk, &ts);
	}
	if (c->dead) {
		pthread_mutex_unlock(&c->lk);
		return fail_host(c);
	}
	c->nchan++;
	pthread_mutex_unlock(&c->lk);
	return 0;
}

static void slot_give(iac_ssh_conn *c)
{
	pthread_mutex_lock(&c->lk);
	c->nchan--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lk);
}

static int sig_number(const char *name)
{
	static const struct { const char *n; int s; } t[] = {
		{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL },
		{ "ABRT", SIGABRT }, { "FPE", SIGFPE }, { "KILL", SIGKILL }, { "SEGV", SIGSEGV },
		{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "USR1", SIGUSR1 },
		{ "USR2", SIGUSR2 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].n, name))
			return t[i].s;
	return 0;
}

/* Give an abandoned channel a short chance to close cleanly; a connection
 * that cannot even do that is dead. */
static void channel_abandon(iac_ssh_conn *c, LIBSSH2_CHANNEL *ch)
{
	double deadline = iac_now_ms() + CLOSE_GRACE_MS;
	io_tok t;
	int rc, werr = 0;

	io_enter(c, &t);
	if (c->dead)
		goto out_locked;
	CALL_WAIT(c, &t, rc, libssh2_channel_close(ch), deadline, NULL, werr, out);
	CALL_WAIT(c, &t, rc, libssh2_channel_free(ch), deadline, NULL, werr, out);
	(void)rc;
out_locked:
	io_leave(c, &t);
	return;
out:
	pthread_mutex_lock(&c->lk);
	conn_fail(c, "the host stopped answering");
	pthread_mutex_unlock(&c->lk);
}

/* Strip the "\001PID\n" line our prefix puts first on stderr. */
static void take_pid(iac_buf *err, long *pid)
{
	if (err->len == 0 || err->ptr[0] != '\001')
		return;
	char *nl = memchr(err->ptr, '\n', err->len);
	if (!nl)
		return;
	*pid = strtol(err->ptr + 1, NULL, 10);
	if (*pid <= 0)
		*pid = -1;
	size_t skip = (size_t)(nl - err->ptr) + 1;
	memmove(err->ptr, err->ptr + skip, err->len - skip);
	err->len -= skip;
	err->ptr[err->len] = '\0';
}

/* Stop what a timed-out or cancelled command left running on the host:
 * TERM to its process group, KILL a second later. */
static void kill_remote(iac_ssh_conn *c, long pid)
{
	iac_ssh_result r;
	char cmd[400];
	snprintf(cmd, sizeof(cmd),
		 "kill -TERM -- -%ld 2>/dev/null || exit 0; i=0; while kill -0 -- -%ld 2>/dev/null; do "
		 "i=$((i+1)); [ $i -ge 10 ] && { kill -KILL -- -%ld; exit 0; }; sleep 0.1; done",
		 pid, pid, pid);
	iac_ssh_exec(&r, c, cmd, NULL, 0, 5000, NULL);
	iac_ssh_result_free(&r);
}

/* One command on its way through iac_ssh_exec(). The helpers below share a
 * lock contract, the same as io_wait()'s: called with the connection's lock
 * held, they return 0 with it still held, or the call's result with it
 * released and `ch` left as the channel still to abandon (NULL: none, or
 * the connection is dead and libssh2_session_free() will take it). */
typedef struct {
	iac_ssh_conn *c;
	LIBSSH2_CHANNEL *ch;
	io_tok t;
	double deadline, timeout_ms;
	const volatile int *cancel;
	const char *input;        /* what goes to stdin, and how far it got */
	size_t input_len, off;
	int eof_sent;
	long pid;                 /* the remote shell's, once it said; -1: bad */
	iac_buf out, err;
} exec_run;

/* The command line to exec, pointing x->input at the script when the
 * command goes to the shell on stdin (*script: the caller frees it).
 * sshd makes the command's shell a session leader; its pid, sent first on
 * stderr, lets a timeout kill the whole process group (libssh2 1.10 cannot
 * send signals, and sshd keeps a channel open until its command exits). */
/* With become and a password: sudo reads the password line, then the
 * shell it starts checks that the next line is this marker before it runs
 * anything. A sudo that did not ask (NOPASSWD, say) leaves the password as
 * the first line, which is then refused, never run as a command. */
#define BECOME_MARK "#iac-become"
/* (it goes inside a '...' argument: no single quotes in it) */
#define BECOME_CHECK "IFS= read -r l; [ \"$l\" = \"" BECOME_MARK "\" ] || { echo \"sudo did not ask for the " \
	"password (a NOPASSWD rule?): leave become_password out\" >&2; exit 97; }; "

/* stdin for a become-with-password command: password, marker, input */
static char *become_input(const char *pw, const char *input, size_t len, size_t *out_len)
{
	size_t pl = strlen(pw), ml = strlen(BECOME_MARK);
	char *buf = iac_xmalloc(pl + ml + len + 3);
	memcpy(buf, pw, pl);
	buf[pl] = '\n';
	memcpy(buf + pl + 1, BECOME_MARK, ml);
	buf[pl + 1 + ml] = '\n';
	memcpy(buf + pl + ml + 2, input, len);
	*out_len = pl + ml + 2 + len;
	buf[*out_len] = '\0';
	return buf;
}

/* sudo itself said no (wrong password, not in sudoers): that is not the
 * command failing, and the caller's hint about it would mislead. */
static int become_refused(iac_ssh_conn *c, const iac_ssh_result *res)
{
	static const char *const says[] = { "incorrect password", "a password is required", "is not in the sudoers",
					     "may not run sudo", "not allowed to execute", "sudo did not ask for the password",
					     NULL };
	if ((res->status != 1 && res->status != 97) || !res->err)
		return 0;
	for (int i = 0; says[i]; i++) {
		const char *hit = strstr(res->err, says[i]);
		if (!hit)
			continue;
		const char *line = hit;   /* the whole line that says it */
		while (line > res->err && line[-1] != '\n')
			line--;
		return iac_err_set("sudo on %s did not let '%s' run commands as root (become): %.*s", c->label,
				   c->pool->o.user, (int)strcspn(line, "\n"), line);
	}
	return 0;
}

static char *exec_line(exec_run *x, const char *cmd, char **script)
{
	const iac_ssh_options *o = &x->c->pool->o;
	const char *pw = o->become ? o->become_password : NULL;
	char *line;
	if (x->input && !o->become)
		return iac_xasprintf("printf '\\001%%d\\n' $$ >&2; %s", cmd);
	if (x->input) {
		/* become, with input of its own: sh -c runs the command ($0) */
		char *q = iac_ssh_quote(cmd);
		line = pw ? iac_xasprintf("printf '\\001%%d\\n' $$ >&2; exec sudo -S -p '' -k -- /bin/sh -c '"
					  BECOME_CHECK "eval \"$0\"' %s", q)
			  : iac_xasprintf("printf '\\001%%d\\n' $$ >&2; exec sudo -n -- /bin/sh -c %s", q);
		free(q);
		if (pw) {
			*script = become_input(pw, x->input, x->input_len, &x->input_len);
			x->input = *script;
		}
		return line;
	}
	/* a command with no input of its own goes to the shell on stdin: the
	 * exec line shows in `ps` on the host, with any value in it
	 * (environment, secrets). Braces: the shell reads the whole script
	 * before running any of it, so no command can read the rest of it as
	 * its input (bash reads a pipe byte by byte). */
	char *body = iac_xasprintf("{\n%s\n} </dev/null\n", cmd);
	if (pw) {
		size_t n;
		*script = become_input(pw, body, strlen(body), &n);
		free(body);
		x->input = *script;
		x->input_len = n;
		return iac_xstrdup("printf '\\001%d\\n' $$ >&2; exec sudo -S -p '' -k -- /bin/sh -c '" BECOME_CHECK
				   "exec /bin/sh -s'");
	}
	*script = body;
	x->input = *script;
	x->input_len = strlen(*script);
	if (o->become)
		return iac_xstrdup("printf '\\001%d\\n' $$ >&2; exec sudo -n -- /bin/sh -s");
	return iac_xstrdup("printf '\\001%d\\n' $$ >&2; exec \"${SHELL:-/bin/sh}\" -s");
}

/* A wait during the command failed (lock released by io_wait()). */
static int exec_waitfail(exec_run *x, int werr)
{
	if (werr == IAC_ERR) {
		/* the connection is dead: nothing left to close politely */
		x->ch = NULL;
		return IAC_ERR;
	}
	return wait_err(x->c, werr, "a command", x->timeout_ms);
}

/* Open a channel and start `line` on it, both under open_lk: opening keeps
 * its progress in the session rather than the channel, and libssh2 1.10
 * fails a thread waiting for its CHANNEL_SUCCESS when it reads another
 * channel's SUCCESS first, so only one exec request may be in flight per
 * connection. Takes the lock itself (open_lk first, then lk). */
static int exec_open(exec_run *x, const char *line)
{
	iac_ssh_conn *c = x->c;
	ssize_t n;
	int werr = 0;

	pthread_mutex_lock(&c->open_lk);
	io_enter(c, &x->t);
	CALL_WAIT(c, &x->t, n, (x->ch = libssh2_channel_open_session(c->s)) ? 0 : libssh2_session_last_errno(c->s),
		  x->deadline, x->cancel, werr, open_waitfail);
	if (!x->ch) {
		if (!fail_if_fatal(c, (int)n))
			iac_err_set("cannot open a channel to %s: %s", c->label, ssh_errmsg(c));
		io_leave(c, &x->t);
		pthread_mutex_unlock(&c->open_lk);
		return IAC_ERR;
	}
	__atomic_fetch_add(&c->pool->stats.channels, 1, __ATOMIC_RELAXED);
	/* still under open_lk: one exec request in flight (see above) */
	CALL_WAIT(c, &x->t, n, libssh2_channel_exec(x->ch, line), x->deadline, x->cancel, werr, exec_waitfail);
	pthread_mutex_unlock(&c->open_lk);
	if (n < 0) {
		if (!fail_if_fatal(c, (int)n))
			iac_err_set("cannot start a command on %s: %s", c->label, ssh_errmsg(c));
		io_leave(c, &x->t);
		return IAC_ERR;
	}
	return 0;
open_waitfail:
	pthread_mutex_unlock(&c->open_lk);
	return werr == IAC_ERR ? IAC_ERR : wait_err(c, werr, "opening a channel", x->timeout_ms);
exec_waitfail:
	pthread_mutex_unlock(&c->open_lk);
	return exec_waitfail(x, werr);
}

/* Write the next piece of stdin, or close it once all of it is written.
 * Only a half-sent packet is waited for here: an inbound EAGAIN goes back
 * to exec_pump(), which has the output streams to try meanwhile. */
static int exec_feed(exec_run *x, int *progress)
{
	iac_ssh_conn *c = x->c;
	ssize_t n;
	int werr = 0;

	if (x->off < x->input_len) {
		CALL_OUT(c, &x->t, n, libssh2_channel_write(x->ch, x->input + x->off, x->input_len - x->off),
			 x->deadline, x->cancel, werr, waitfail);
		if (n > 0) {
			x->off += (size_t)n;
			*progress = 1;
		} else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
			/* the command exited without reading all its input:
			 * report its status, not a write error */
			x->off = x->input_len;
		}
	} else if (!x->eof_sent) {
		CALL_OUT(c, &x->t, n, libssh2_channel_send_eof(x->ch), x->deadline, x->cancel, werr, waitfail);
		if (n != LIBSSH2_ERROR_EAGAIN) {
			x->eof_sent = 1;
			*progress = 1;
		}
	}
	return 0;
waitfail:
	return exec_waitfail(x, werr);
}

/* Take what stream `id` (0 stdout, 1 stderr) has; *done once it ended. */
static int exec_read(exec_run *x, int id, int *progress, int *done)
{
	iac_ssh_conn *c = x->c;
	iac_buf *b = id ? &x->err : &x->out;
	char buf[32768];
	ssize_t n;
	int werr = 0;

	CALL_OUT(c, &x->t, n, libssh2_channel_read_ex(x->ch, id, buf, sizeof(buf)),
		 x->deadline, x->cancel, werr, waitfail);
	if (n > 0) {
		if (b->len < IAC_SSH_CAPTURE_MAX)
			iac_buf_put(b, buf, (size_t)n);
		if (id == 1 && x->pid == 0)
			take_pid(b, &x->pid);
		*progress = 1;
	} else if (n == 0) {
		*done = 1;
	} else if (n != LIBSSH2_ERROR_EAGAIN) {
		if (!fail_if_fatal(c, (int)n))
			iac_err_set("command on %s failed: %s", c->label, ssh_errmsg(c));
		io_leave(c, &x->t);
		return IAC_ERR;
	}
	return 0;
waitfail:
	return exec_waitfail(x, werr);
}

/* Feed stdin and collect stdout and stderr until both have ended. */
static int exec_pump(exec_run *x)
{
	for (;;) {
		int progress = 0, done0 = 0, done1 = 0, rc;
		if ((rc = exec_feed(x, &progress)) != 0 || (rc = exec_read(x, 0, &progress, &done0)) != 0 ||
		    (rc = exec_read(x, 1, &progress, &done1)) != 0)
			return rc;
		if (done0 && done1 && libssh2_channel_eof(x->ch))
			return 0;
		if (progress) {
			/* be fair to the other channels between rounds */
			io_leave(x->c, &x->t);
			io_enter(x->c, &x->t);
			continue;
		}
		if ((rc = io_wait(x->c, &x->t, x->deadline, x->cancel)) != 0)
			return exec_waitfail(x, rc);
	}
}

/* The signal that killed the command, if one did: "KILL", status 128+9. */
static void exit_signal(iac_ssh_conn *c, LIBSSH2_CHANNEL *ch, iac_ssh_result *res)
{
	char *sig = NULL;
	size_t siglen = 0;
	if (libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 && sig) {
		res->signal = iac_xstrndup(sig, siglen);
		res->status = 128 + sig_number(res->signal);
		libssh2_free(c->s, sig);
	}
}

/* Close the channel of a command that finished, and take its exit status.
 * Unlike the others, returns with the lock released whatever happened. */
static int exec_finish(exec_run *x, iac_ssh_result *res)
{
	iac_ssh_conn *c = x->c;
	ssize_t n;
	int werr = 0;

	CALL_WAIT(c, &x->t, n, libssh2_channel_close(x->ch), x->deadline, x->cancel, werr, waitfail);
	CALL_WAIT(c, &x->t, n, libssh2_channel_wait_closed(x->ch), x->deadline, x->cancel, werr, waitfail);
	res->status = libssh2_channel_get_exit_status(x->ch);
	exit_signal(c, x->ch, res);
	CALL_WAIT(c, &x->t, n, libssh2_channel_free(x->ch), x->deadline, x->cancel, werr, freefail);
	io_leave(c, &x->t);
	x->ch = NULL;
	return 0;
waitfail:
	return exec_waitfail(x, werr);
freefail:
	/* the command finished; only the bookkeeping timed out */
	x->ch = NULL;
	return 0;
}

/* Give up on a command that failed half way (lock not held). Its slot goes
 * first: kill_remote() needs one, and the slots may all be taken. The error
 * stays the command's, not kill_remote()'s. */
static void exec_abandon(exec_run *x)
{
	slot_give(x->c);
	if (x->pid > 0) {
		char *msg = iac_xstrdup(iac_err_last());
		kill_remote(x->c, x->pid);
		iac_err_set("%s", msg);
		free(msg);
	}
	channel_abandon(x->c, x->ch);
	x->ch = NULL;
}

int iac_ssh_exec(iac_ssh_result *res, iac_ssh_conn *c, const char *cmd,
		 const void *input, size_t input_len, double timeout_ms,
		 const volatile int *cancel)
{
	exec_run x = {
		.c = c, .deadline = timeout_ms > 0 ? iac_now_ms() + timeout_ms : 0, .timeout_ms = timeout_ms,
		.cancel = cancel, .input = input, .input_len = input_len,
		.out = IAC_BUF_INIT, .err = IAC_BUF_INIT,
	};
	char *line, *script = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	res->status = -1;
	if (iac_ssh_conn_check(c) < 0)
		return IAC_ERR;
	if (cancel && *cancel)
		return wait_err(c, IAC_EINTR, "a command", timeout_ms);
	if ((rc = slot_take(c, x.deadline, cancel)) != 0)
		return rc == IAC_ERR ? IAC_ERR : wait_err(c, rc, "waiting for a channel", timeout_ms);
	line = exec_line(&x, cmd, &script);
	rc = exec_open(&x, line);
	if (rc == 0)
		rc = exec_pump(&x);
	if (rc == 0)
		rc = exec_finish(&x, res);
	if (x.ch)
		exec_abandon(&x);
	else
		slot_give(c);
	free(line);
	free(script);
	res->out_len = x.out.len;
	res->out = iac_buf_detach(&x.out);
	res->err_len = x.err.len;
	res->err = iac_buf_detach(&x.err);
	if (rc == 0 && c->pool->o.become)
		rc = become_refused(c, res);
	return rc;
}

/* ---- SFTP --------------------------------------------------------------- */

static const char *sftp_errname(unsigned long e)
{
	switch (e) {
	case LIBSSH2_FX_NO_SUCH_FILE: return "no such file or directory";
	case LIBSSH2_FX_PERMISSION_DENIED: return "permission denied";
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return "no space left";
	case LIBSSH2_FX_NO_SUCH_PATH: return "no such path";
	case LIBSSH2_FX_FILE_ALREADY_EXISTS: return "file exists";
	case LIBSSH2_FX_WRITE_PROTECT: return "read-only file system";
	case LIBSSH2_FX_FAILURE: return "failure";
	default: return "error";
	}
}

/* One SFTP write on its way through iac_ssh_sftp_write(); the helpers keep
 * exec_run's lock contract. */
typedef struct {
	iac_ssh_conn *c;
	io_tok t;
	double deadline, timeout_ms;
	const volatile int *cancel;
	const char *path;
} sftp_op;

/* A wait during an SFTP operation failed (lock released by io_wait()). */
static int sftp_waitfail(sftp_op *o, int werr)
{
	if (werr == IAC_ERR)
		return IAC_ERR;
	wait_err(o->c, werr, "an SFTP write", o->timeout_ms);
	/* the SFTP channel is in an unknown state now */
	pthread_mutex_lock(&o->c->lk);
	conn_fail(o->c, "an SFTP transfer was interrupted");
	pthread_mutex_unlock(&o->c->lk);
	return werr;
}

/* The connection's SFTP session, started on first use (sftp_lk held, lk
 * not: this takes open_lk, then lk, and returns without either). Starting
 * SFTP keeps its progress in the session like opening a channel does,
 * hence open_lk. */
static int sftp_start(sftp_op *o)
{
	iac_ssh_conn *c = o->c;
	ssize_t n;
	int werr = 0;

	if (c->sftp)
		return 0;
	pthread_mutex_lock(&c->open_lk);
	io_enter(c, &o->t);
	CALL_WAIT(c, &o->t, n, (c->sftp = libssh2_sftp_init(c->s)) ? 0 : libssh2_session_last_errno(c->s),
		  o->deadline, o->cancel, werr, waitfail);
	int rc = c->sftp ? 0 : IAC_ERR;
	if (rc != 0 && !fail_if_fatal(c, (int)n))
		iac_err_set("cannot start SFTP on %s: %s", c->label, ssh_errmsg(c));
	io_leave(c, &o->t);
	pthread_mutex_unlock(&c->open_lk);
	return rc;
waitfail:
	pthread_mutex_unlock(&c->open_lk);
	return sftp_waitfail(o, werr);
}

/* Open o->path for writing, created or truncated with `mode`. A missing
 * directory is IAC_ENOTFOUND: the caller may create it and try again. */
static int sftp_open(sftp_op *o, mode_t mode, LIBSSH2_SFTP_HANDLE **h)
{
	iac_ssh_conn *c = o->c;
	ssize_t n;
	int werr = 0, rc = IAC_ERR;

	CALL_WAIT(c, &o->t, n,
		  (*h = libssh2_sftp_open_ex(c->sftp, o->path, (unsigned)strlen(o->path),
					     LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
					     (long)mode, LIBSSH2_SFTP_OPENFILE)) ? 0 : libssh2_session_last_errno(c->s),
		  o->deadline, o->cancel, werr, waitfail);
	if (*h)
		return 0;
	if (n == LIBSSH2_ERROR_SFTP_PROTOCOL) {
		unsigned long e = libssh2_sftp_last_error(c->sftp);
		iac_err_set("cannot write '%s' on %s: %s", o->path, c->label, sftp_errname(e));
		rc = e == LIBSSH2_FX_NO_SUCH_FILE || e == LIBSSH2_FX_NO_SUCH_PATH ? IAC_ENOTFOUND : IAC_ERR;
	} else if (!fail_if_fatal(c, (int)n)) {
		iac_err_set("cannot write '%s' on %s: %s", o->path, c->label, ssh_errmsg(c));
	}
	io_leave(c, &o->t);
	return rc;
waitfail:
	return sftp_waitfail(o, werr);
}

/* Write all of data to the open handle, then close it. */
static int sftp_put(sftp_op *o, LIBSSH2_SFTP_HANDLE *h, const void *data, size_t len)
{
	iac_ssh_conn *c = o->c;
	ssize_t n = 0;
	size_t off = 0;
	int werr = 0;

	while (off < len) {
		CALL_WAIT(c, &o->t, n, libssh2_sftp_write(h, (const char *)data + off, len - off),
			  o->deadline, o->cancel, werr, waitfail);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	int wrc = off < len ? (int)n : 0;
	CALL_WAIT(c, &o->t, n, libssh2_sftp_close_handle(h), o->deadline, o->cancel, werr, waitfail);
	if (wrc < 0 || n < 0) {
		if (fatal_rc(wrc < 0 ? wrc : (int)n))
			conn_fail(c, fatal_why(c, (int)n));
		else
			iac_err_set("cannot write '%s' on %s: %s", o->path, c->label,
				    sftp_errname(libssh2_sftp_last_error(c->sftp)));
		io_leave(c, &o->t);
		return IAC_ERR;
	}
	return 0;
waitfail:
	return sftp_waitfail(o, werr);
}

int iac_ssh_sftp_write(iac_ssh_conn *c, const char *path, const void *data, size_t len,
		       mode_t mode, double timeout_ms, const volatile int *cancel)
{
	sftp_op o = {
		.c = c, .deadline = timeout_ms > 0 ? iac_now_ms() + timeout_ms : 0, .timeout_ms = timeout_ms,
		.cancel = cancel, .path = path,
	};
	LIBSSH2_SFTP_HANDLE *h = NULL;
	int rc;

	if (iac_ssh_conn_check(c) < 0)
		return IAC_ERR;
	/* one SFTP operation at a time: they share the SFTP channel */
	pthread_mutex_lock(&c->sftp_lk);
	rc = sftp_start(&o);
	if (rc == 0) {
		io_enter(c, &o.t);
		rc = sftp_open(&o, mode, &h);
	}
	if (rc == 0)
		rc = sftp_put(&o, h, data, len);
	if (rc == 0) {
		io_leave(c, &o.t);
		__atomic_fetch_add(&c->pool->stats.sftp_writes, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&c->sftp_lk);
	return rc;
}

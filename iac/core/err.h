/* err: return codes and a thread-local error message, the libgit2 way.
 *
 * Functions return 0 on success, -1 (IAC_ERR) on failure, or one of the
 * specific codes below that a caller is expected to act on. The message that
 * explains a failure is kept per thread and read with iac_err_last().
 * Messages are lower-case, problem first, subject in quotes:
 *   cannot connect to 'web-1:22': connection refused
 */
#ifndef IAC_CORE_ERR_H
#define IAC_CORE_ERR_H

#include <stdarg.h>

enum {
	IAC_OK = 0,
	IAC_ERR = -1,        /* generic failure, message set */
	IAC_ENOTFOUND = -3,  /* the thing asked for does not exist */
	IAC_ELOCKED = -4,    /* a lock is held by someone else */
	IAC_ECONFLICT = -5,  /* state or plan changed underneath us */
	IAC_EINTR = -6,      /* interrupted by the user (SIGINT) */
	IAC_ETIMEOUT = -7,   /* a deadline passed */
};

/* Set the message for this thread (printf format). Always returns IAC_ERR so
 * callers can write `return iac_err_set(...)`. */
int iac_err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int iac_err_setv(const char *fmt, va_list ap);

/* Set the message from errno: "<formatted>: <strerror(errno)>". */
int iac_err_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Put context in front of the current message: "<formatted>: <old>". */
void iac_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message set on this thread; never NULL ("" when none). The pointer
 * stays valid until the next iac_err_* call on this thread. */
const char *iac_err_last(void);

/* Clears the message and the host mark below. */
void iac_err_clear(void);

/* Host failures. When a provider cannot use a host at all (no TCP
 * connection, no SSH handshake, a host key that does not match, a login
 * refused, or a connection that dropped), it marks the failure with the
 * host, next to the message. The engine then reports the host once and
 * leaves that host's resources as they are, instead of one error per
 * resource and a failed run for the whole fleet.
 *
 * The mark is per thread like the message, survives iac_err_set() and
 * iac_err_prefix() (callers wrap messages on the way up) and is cleared by
 * iac_err_clear(). `name` is the host's name ("web3"), `address` where it
 * was reached ("10.0.0.4:22"), `why` the short cause ("connection
 * refused"). Strings are copied (truncated at 255/511/2047 bytes). */
void iac_err_host_down(const char *name, const char *address, const char *why);
/* The marked host's name, or NULL when the last failure was not a host's. */
const char *iac_err_host(void);
const char *iac_err_host_address(void); /* "" when not marked */
const char *iac_err_host_why(void);     /* "" when not marked */

#endif

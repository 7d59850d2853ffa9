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

void iac_err_clear(void);

#endif

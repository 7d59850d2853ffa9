/* err: thread-local error messages (see err.h). */
#include "iac/core/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ERR_MAX 4096

static __thread char err_msg[ERR_MAX];

int iac_err_setv(const char *fmt, va_list ap)
{
	/* format aside first: callers may pass iac_err_last() as an argument */
	char tmp[ERR_MAX];
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	memcpy(err_msg, tmp, sizeof(err_msg));
	return IAC_ERR;
}

int iac_err_set(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	iac_err_setv(fmt, ap);
	va_end(ap);
	return IAC_ERR;
}

int iac_err_sys(const char *fmt, ...)
{
	int saved = errno;
	char head[ERR_MAX / 2], tmp[ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	snprintf(tmp, sizeof(tmp), "%.2000s: %s", head, strerror(saved));
	memcpy(err_msg, tmp, sizeof(err_msg));
	errno = saved;
	return IAC_ERR;
}

void iac_err_prefix(const char *fmt, ...)
{
	char head[ERR_MAX / 2], old[ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, err_msg, sizeof(old));
	size_t hl = strlen(head);
	memcpy(err_msg, head, hl + 1);
	if (old[0] && hl + 2 < sizeof(err_msg)) {
		memcpy(err_msg + hl, ": ", 3);
		size_t room = sizeof(err_msg) - hl - 3;
		strncpy(err_msg + hl + 2, old, room);
		err_msg[sizeof(err_msg) - 1] = '\0';
	}
}

const char *iac_err_last(void)
{
	return err_msg;
}

static __thread char host_name[256], host_addr[512], host_why[2048];
static __thread int host_marked;

void iac_err_clear(void)
{
	err_msg[0] = '\0';
	host_marked = 0;
}

void iac_err_host_down(const char *name, const char *address, const char *why)
{
	snprintf(host_name, sizeof(host_name), "%s", name ? name : "?");
	snprintf(host_addr, sizeof(host_addr), "%s", address ? address : "");
	snprintf(host_why, sizeof(host_why), "%s", why ? why : "");
	host_marked = 1;
}

const char *iac_err_host(void)
{
	return host_marked ? host_name : NULL;
}

const char *iac_err_host_address(void)
{
	return host_marked ? host_addr : "";
}

const char *iac_err_host_why(void)
{
	return host_marked ? host_why : "";
}

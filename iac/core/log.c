/* log: coloured, redacted, thread-safe output (see log.h). */
#include "iac/core/log.h"
#include "iac/core/buf.h"
#include "iac/core/util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int color_on = -1;
static int quiet;
static char **secrets;
static size_t nsecrets;

void iac_log_set_color(int force)
{
	if (force >= 0) {
		color_on = force;
		return;
	}
	const char *nc = getenv("NO_COLOR");
	color_on = (!nc || !*nc) && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
}

int iac_log_color_enabled(void)
{
	if (color_on < 0)
		iac_log_set_color(-1);
	return color_on;
}

const char *iac_color(enum iac_color c)
{
	static const char *codes[] = {
		"\033[0m", "\033[1m", "\033[31m", "\033[32m", "\033[33m", "\033[36m", "\033[2m",
	};
	return iac_log_color_enabled() ? codes[c] : "";
}

void iac_log_set_quiet(int q)
{
	quiet = q;
}

static void redact_add_one(const char *secret)
{
	pthread_mutex_lock(&out_lock);
	for (size_t i = 0; i < nsecrets; i++)
		if (!strcmp(secrets[i], secret))
			goto done;
	secrets = iac_xrealloc(secrets, (nsecrets + 1) * sizeof(*secrets));
	secrets[nsecrets++] = iac_xstrdup(secret);
done:
	pthread_mutex_unlock(&out_lock);
}

void iac_redact_add(const char *secret)
{
	if (!secret || strlen(secret) < 3)
		return;
	redact_add_one(secret);
	/* a secret with line breaks or quotes (a PEM key) reads differently
	 * inside JSON text: redact that form too, or it passes through state
	 * and JSON output untouched */
	json_t *j = json_string(secret);
	char *esc = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	size_t n = esc ? strlen(esc) : 0;
	if (n > 2 && esc[0] == '"' && esc[n - 1] == '"') {
		esc[n - 1] = '\0';
		if (strcmp(esc + 1, secret))
			redact_add_one(esc + 1);
	}
	free(esc);
	json_decref(j);
}

static char *redact_locked(const char *text)
{
	char *cur = iac_xstrdup(text);
	for (size_t i = 0; i < nsecrets; i++) {
		const char *s = secrets[i], *p;
		size_t sl = strlen(s);
		if (!strstr(cur, s))
			continue;
		iac_buf b = IAC_BUF_INIT;
		const char *from = cur;
		while ((p = strstr(from, s))) {
			iac_buf_put(&b, from, (size_t)(p - from));
			iac_buf_puts(&b, "(sensitive)");
			from = p + sl;
		}
		iac_buf_puts(&b, from);
		free(cur);
		cur = iac_buf_detach(&b);
	}
	return cur;
}

char *iac_redact(const char *text)
{
	pthread_mutex_lock(&out_lock);
	char *r = redact_locked(text ? text : "");
	pthread_mutex_unlock(&out_lock);
	return r;
}

void iac_log_write(FILE *f, const char *text)
{
	pthread_mutex_lock(&out_lock);
	char *r = redact_locked(text);
	fputs(r, f);
	fflush(f);
	pthread_mutex_unlock(&out_lock);
	free(r);
}

static void vlog(const char *prefix, enum iac_color c, const char *fmt, va_list ap)
{
	iac_buf b = IAC_BUF_INIT;
	if (prefix) {
		/* colour escapes go to stderr, so check stderr's own state */
		iac_buf_printf(&b, "%s%s%s", iac_color(c), prefix, iac_color(IAC_C_RESET));
	}
	iac_buf_vprintf(&b, fmt, ap);
	iac_buf_putc(&b, '\n');
	iac_log_write(stderr, iac_buf_cstr(&b));
	iac_buf_free(&b);
}

void iac_log(const char *fmt, ...)
{
	va_list ap;
	if (quiet)
		return;
	va_start(ap, fmt);
	vlog(NULL, IAC_C_RESET, fmt, ap);
	va_end(ap);
}

void iac_log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("error: ", IAC_C_RED, fmt, ap);
	va_end(ap);
}

void iac_log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("warning: ", IAC_C_YELLOW, fmt, ap);
	va_end(ap);
}

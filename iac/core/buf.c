/* buf: growable byte buffer (see buf.h). */
#include "iac/core/buf.h"
#include "iac/core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void iac_buf_grow(iac_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->ptr = iac_xrealloc(b->ptr, cap);
	b->cap = cap;
}

void iac_buf_put(iac_buf *b, const void *data, size_t len)
{
	iac_buf_grow(b, len);
	if (len)
		memcpy(b->ptr + b->len, data, len);
	b->len += len;
	b->ptr[b->len] = '\0';
}

void iac_buf_puts(iac_buf *b, const char *s)
{
	iac_buf_put(b, s, strlen(s));
}

void iac_buf_putc(iac_buf *b, char c)
{
	iac_buf_put(b, &c, 1);
}

void iac_buf_vprintf(iac_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	iac_buf_grow(b, (size_t)n);
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void iac_buf_printf(iac_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	iac_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void iac_buf_clear(iac_buf *b)
{
	b->len = 0;
	if (b->ptr)
		b->ptr[0] = '\0';
}

char *iac_buf_detach(iac_buf *b)
{
	char *p = b->ptr ? b->ptr : iac_xstrdup("");
	b->ptr = NULL;
	b->len = b->cap = 0;
	return p;
}

void iac_buf_free(iac_buf *b)
{
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->cap = 0;
}

const char *iac_buf_cstr(const iac_buf *b)
{
	return b->ptr ? b->ptr : "";
}

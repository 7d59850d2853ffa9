/* buf: a growable, always NUL-terminated byte buffer.
 *
 * Zero-initialise (`iac_buf b = IAC_BUF_INIT;`), append, then either take the
 * bytes with iac_buf_detach() (caller frees) or release with iac_buf_free().
 * Allocation failure aborts: there is no sane recovery in a CLI tool.
 */
#ifndef IAC_CORE_BUF_H
#define IAC_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
	char *ptr;
	size_t len;
	size_t cap;
} iac_buf;

#define IAC_BUF_INIT { NULL, 0, 0 }

void iac_buf_grow(iac_buf *b, size_t extra);
void iac_buf_put(iac_buf *b, const void *data, size_t len);
void iac_buf_puts(iac_buf *b, const char *s);
void iac_buf_putc(iac_buf *b, char c);
void iac_buf_printf(iac_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void iac_buf_vprintf(iac_buf *b, const char *fmt, va_list ap);
void iac_buf_clear(iac_buf *b);
/* Returns the bytes (never NULL) and resets the buffer; caller frees. */
char *iac_buf_detach(iac_buf *b);
void iac_buf_free(iac_buf *b);
/* "" when empty, never NULL. */
const char *iac_buf_cstr(const iac_buf *b);

#endif

/* log: everything iac prints to a person goes through here.
 *
 * - Colour: on when stdout/stderr is a TTY, off with -no-color or NO_COLOR.
 * - Redaction: every sensitive value the engine learns of is registered with
 *   iac_redact_add(); iac_log_* and iac_redact() replace it with
 *   "(sensitive)", so a secret cannot leak through a provider's error text.
 * - Thread safety: lines from worker threads never interleave.
 */
#ifndef IAC_CORE_LOG_H
#define IAC_CORE_LOG_H

#include <stdio.h>

enum iac_color { IAC_C_RESET, IAC_C_BOLD, IAC_C_RED, IAC_C_GREEN, IAC_C_YELLOW, IAC_C_CYAN, IAC_C_DIM };

/* force: 1 on, 0 off, -1 detect from TTY and NO_COLOR. */
void iac_log_set_color(int force);
/* Escape sequence for stdout ("" when colour is off). */
const char *iac_color(enum iac_color c);
int iac_log_color_enabled(void);

/* Register a secret (copied; strings shorter than 3 bytes are ignored, they
 * would redact half of every message). */
void iac_redact_add(const char *secret);
/* Returns a new string with every registered secret replaced. Caller frees. */
char *iac_redact(const char *text);

/* A line on stderr ("\n" added), redacted, atomic with respect to threads. */
void iac_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "error: <msg>" on stderr, red on a TTY, redacted. */
void iac_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "warning: <msg>" on stderr. */
void iac_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Quiet mode (-quiet / -json): iac_log progress lines are dropped, errors stay. */
void iac_log_set_quiet(int quiet);

/* Write text to a stream, redacted and under the output lock. */
void iac_log_write(FILE *f, const char *text);

#endif

/* util: small helpers every module uses: allocation that aborts on failure,
 * clocks, duration parsing ("500ms", "5s", "2m"), whole-file I/O with atomic
 * replacement, SHA-256 (OpenSSL libcrypto) and path joining.
 */
#ifndef IAC_CORE_UTIL_H
#define IAC_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

void *iac_xmalloc(size_t n);
void *iac_xcalloc(size_t n, size_t size);
void *iac_xrealloc(void *p, size_t n);
char *iac_xstrdup(const char *s);
char *iac_xstrndup(const char *s, size_t n);
char *iac_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock in milliseconds / microseconds; wall clock in seconds. */
double iac_now_ms(void);
uint64_t iac_now_us(void);
/* Current UTC time as RFC 3339 ("2026-11-27T15:37:45Z") into out (>= 32 bytes). */
void iac_time_rfc3339(char *out, size_t outlen);

/* Parse a duration: a number followed by ms, s, m or h ("1.5s"); a bare number
 * means seconds. Returns 0 and sets *out_ms, or -1 with a message. */
int iac_duration_parse(double *out_ms, const char *text);

/* Read a whole file. *out is NUL-terminated, caller frees. -1 with message;
 * IAC_ENOTFOUND when the file does not exist. */
int iac_file_read(char **out, size_t *out_len, const char *path);
/* The same, also filling *st (may be NULL) from the open file. */
int iac_file_read_stat(char **out, size_t *out_len, struct stat *st, const char *path);

/* The same with extra open(2) flags (O_NOFOLLOW: a symbolic link is an
 * error saying so). */
int iac_file_read_flags(char **out, size_t *out_len, struct stat *st, const char *path, int oflags);

/* Replace path atomically: write to a temp file beside it, fsync, rename,
 * fsync the directory. The file never exists half-written. The temp file is
 * created exclusively under a random name (never through a planted link),
 * and a path that exists but is not a regular file (a symbolic link, a
 * device, a directory) is refused, not replaced. Temp files of the same
 * path that a killed write left (PATH.tmp.XXXXXX, regular, ours) are
 * removed first. */
int iac_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* The same without the fsyncs: readers never see a half-written file, but
 * after a power cut the old content may be back. For files whose loss the
 * next refresh notices and repairs (the files iac manages), not for state. */
int iac_file_replace(const char *path, const void *data, size_t len, mode_t mode);

/* A directory only this user controls (.iac/): made 0700 when missing;
 * refused when it is a symbolic link, not a directory, or owned by someone
 * else; group/other permission bits removed (*tightened = 1, may be NULL,
 * so the caller can say so). */
int iac_private_dir(const char *path, int *tightened);

/* mkdir -p with the given mode for created directories. */
int iac_mkdir_p(const char *path, mode_t mode);

/* Lower-case hex SHA-256 of data into out (65 bytes). */
void iac_sha256_hex(char out[65], const void *data, size_t len);

/* Join dir and name ("dir/name"); name absolute -> copy of name. Caller frees. */
char *iac_path_join(const char *dir, const char *name);

/* Whether a command should free its big structures before exiting: yes in
 * sanitizer builds (leak checks) or with IAC_FREE_AT_EXIT=1; otherwise the
 * process exit returns the memory at once (100,000 resources take a while
 * to free one by one). */
int iac_free_at_exit(void);

/* 1 if s starts with prefix. */
int iac_str_starts(const char *s, const char *prefix);

/* The one of the n candidates closest to `want` when it is within two
 * edits, else NULL: for "did you mean" hints on unknown names. */
const char *iac_suggest(const char *want, const char *const *cands, size_t n);

#endif

/* client: the two cache protocols over a plain TCP socket, just what iac's
 * operator commands need (status, invalidation): Redis's RESP (commands as
 * arrays of bulk strings; replies parsed into iac_resp values) and
 * Memcached's text protocol (lines). Replies come from the network and are
 * parsed with limits: a line is at most 64 KiB, a bulk string 64 MiB, an
 * array 1,000,000 elements, nesting 8 levels; anything else is an error
 * naming the server, never a crash.
 *
 * A connection is used by one thread at a time. */
#ifndef IAC_PROVIDERS_CACHE_CLIENT_H
#define IAC_PROVIDERS_CACHE_CLIENT_H

#include <stddef.h>

typedef struct iac_cache_conn iac_cache_conn;

/* Connects to address:port within timeout_ms (also each later read's and
 * write's limit). Free with iac_cache_conn_close() (NULL is fine). */
int iac_cache_conn_open(iac_cache_conn **out, const char *address, unsigned port, double timeout_ms);
void iac_cache_conn_close(iac_cache_conn *c);
/* The socket, to wait on it (poll); and whether bytes already read from
 * it wait in the connection's buffer (then a reply may be complete
 * without the socket becoming readable again). */
int iac_cache_conn_fd(const iac_cache_conn *c);
int iac_cache_conn_buffered(const iac_cache_conn *c);
/* "ADDRESS:PORT", for messages. */
const char *iac_cache_conn_label(const iac_cache_conn *c);

typedef enum {
	IAC_RESP_STRING,  /* +OK */
	IAC_RESP_ERROR,   /* -ERR ...: a reply, not a failure of the exchange */
	IAC_RESP_INT,     /* :42 */
	IAC_RESP_BULK,    /* $3 foo */
	IAC_RESP_NIL,     /* $-1 or *-1 */
	IAC_RESP_ARRAY,   /* *2 ... */
} iac_resp_type;

typedef struct iac_resp {
	iac_resp_type type;
	long long integer;     /* IAC_RESP_INT */
	char *str;             /* STRING, ERROR, BULK: NUL-terminated (may hold NULs) */
	size_t len;
	struct iac_resp *elems;/* ARRAY */
	size_t n;
} iac_resp;

/* Sends one command (argv[i] of lens[i] bytes; lens NULL: strlen). */
int iac_resp_send(iac_cache_conn *c, size_t argc, const char *const *argv, const size_t *lens);
/* Reads one reply into *out (cleared first; free with iac_resp_clear). */
int iac_resp_read(iac_resp *out, iac_cache_conn *c);
/* Both; an error reply becomes IAC_ERR with its text as the message. */
int iac_resp_call(iac_resp *out, iac_cache_conn *c, size_t argc, const char *const *argv, const size_t *lens);
void iac_resp_clear(iac_resp *r);

/* Memcached: sends text as is; reads one line without its CRLF (caller
 * frees). */
int iac_mc_send(iac_cache_conn *c, const char *text, size_t len);
int iac_mc_line(char **line, iac_cache_conn *c);

/* Memcached: `len` bytes of a data block and its CRLF into a new buffer
 * (NUL-terminated; len at most 64 MiB). */
int iac_mc_block(char **data, iac_cache_conn *c, size_t len);

/* Per node figures, from Redis INFO or Memcached stats; -1 when the server
 * did not say. */
typedef struct {
	long long hits, misses, evictions, memory, keys, clients;
} iac_cache_stats;

int iac_cache_stats_redis(iac_cache_stats *out, iac_cache_conn *c);
int iac_cache_stats_memcached(iac_cache_stats *out, iac_cache_conn *c);

/* Redis: one SCAN step from `cursor` (updated in place; "0" again when the
 * scan is over), MATCH `pattern` when not NULL, COUNT 1000. *reply is the
 * whole [cursor, keys] reply (checked: keys is reply->elems[1]); clear it. */
int iac_cache_redis_scan(iac_resp *reply, iac_cache_conn *c, char cursor[32], const char *pattern);

/* Redis: every key matching `pattern` (SCAN MATCH, COUNT 1000) removed with
 * UNLINK; *removed counts what UNLINK reported. */
int iac_cache_redis_unlink(long long *removed, iac_cache_conn *c, const char *pattern);

/* Memcached: the namespace key (INCR; created at the current Unix time when
 * missing, so a lost counter never falls back to a used value); *value gets
 * the new namespace. */
int iac_cache_mc_bump(unsigned long long *value, iac_cache_conn *c, const char *key);

#endif

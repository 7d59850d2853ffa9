/* client: RESP and Memcached text over TCP (client.h). */
#include "providers/cache/client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/util.h"

#define LINE_MAX_BYTES (64 * 1024)
#define BULK_MAX_BYTES (64LL * 1024 * 1024)
#define ARRAY_MAX 1000000LL
#define DEPTH_MAX 8

struct iac_cache_conn {
	int fd;
	double timeout_ms;
	char label[300];
	char buf[16384];
	size_t off, len;     /* unread bytes: buf[off .. len) */
};

int iac_cache_conn_fd(const iac_cache_conn *c)
{
	return c->fd;
}

int iac_cache_conn_buffered(const iac_cache_conn *c)
{
	return c->len > c->off;
}

const char *iac_cache_conn_label(const iac_cache_conn *c)
{
	return c->label;
}

/* Waits for `events` on the socket; a timeout or a hang-up without data is
 * an error naming the server. */
static int wait_fd(iac_cache_conn *c, short events)
{
	struct pollfd p = { c->fd, events, 0 };
	int r;
	do
		r = poll(&p, 1, (int)c->timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return iac_err_set("'%s' did not answer within %.0f ms", c->label, c->timeout_ms);
	if (r < 0)
		return iac_err_sys("cannot wait for '%s'", c->label);
	return 0;
}

int iac_cache_conn_open(iac_cache_conn **out, const char *address, unsigned port, double timeout_ms)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char service[16];
	iac_cache_conn *c = calloc(1, sizeof(*c));
	*out = NULL;
	if (!c)
		return iac_err_set("out of memory");
	c->fd = -1;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	snprintf(c->label, sizeof(c->label), "%s:%u", address, port);
	snprintf(service, sizeof(service), "%u", port);
	int g = getaddrinfo(address, service, &hints, &ai);
	if (g != 0) {
		iac_err_set("cannot resolve '%s': %s", c->label, gai_strerror(g));
		goto fail;
	}
	c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (c->fd < 0) {
		iac_err_sys("cannot connect to '%s'", c->label);
		goto fail;
	}
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (errno != EINPROGRESS || wait_fd(c, POLLOUT) < 0)
			goto connect_failed;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
			errno = err;
			goto connect_failed;
		}
	}
	freeaddrinfo(ai);
	*out = c;
	return 0;
connect_failed:
	if (errno)
		iac_err_set("cannot connect to '%s': %s", c->label, strerror(errno));
fail:
	if (ai)
		freeaddrinfo(ai);
	iac_cache_conn_close(c);
	return IAC_ERR;
}

void iac_cache_conn_close(iac_cache_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static int send_all(iac_cache_conn *c, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c, POLLOUT) < 0)
				return IAC_ERR;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return iac_err_sys("cannot write to '%s'", c->label);
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* More bytes into the buffer (compacting it first). */
static int fill(iac_cache_conn *c)
{
	if (c->off) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	for (;;) {
		ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (r > 0) {
			c->len += (size_t)r;
			return 0;
		}
		if (r == 0)
			return iac_err_set("'%s' closed the connection", c->label);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return iac_err_sys("cannot read from '%s'", c->label);
		if (wait_fd(c, POLLIN) < 0)
			return IAC_ERR;
	}
}

/* One CRLF-terminated line, without the CRLF, into a new string. */
static int read_line(char **out, size_t *out_len, iac_cache_conn *c)
{
	size_t scanned = 0;
	*out = NULL;
	for (;;) {
		char *nl = memchr(c->buf + c->off + scanned, '\n', c->len - c->off - scanned);
		if (nl) {
			size_t n = (size_t)(nl - (c->buf + c->off));
			size_t keep = n && c->buf[c->off + n - 1] == '\r' ? n - 1 : n;
			char *s = malloc(keep + 1);
			if (!s)
				return iac_err_set("out of memory");
			memcpy(s, c->buf + c->off, keep);
			s[keep] = '\0';
			c->off += n + 1;
			*out = s;
			if (out_len)
				*out_len = keep;
			return 0;
		}
		scanned = c->len - c->off;
		if (scanned >= LINE_MAX_BYTES || scanned >= sizeof(c->buf) - 1)
			return iac_err_set("'%s' sent a line longer than %d bytes", c->label, (int)sizeof(c->buf) - 1);
		if (fill(c) < 0)
			return IAC_ERR;
	}
}

static int read_exact(char *dst, size_t n, iac_cache_conn *c)
{
	while (n) {
		if (c->off == c->len && fill(c) < 0)
			return IAC_ERR;
		size_t k = c->len - c->off < n ? c->len - c->off : n;
		memcpy(dst, c->buf + c->off, k);
		c->off += k;
		dst += k;
		n -= k;
	}
	return 0;
}

int iac_resp_send(iac_cache_conn *c, size_t argc, const char *const *argv, const size_t *lens)
{
	size_t cap = 32, n = 0;
	for (size_t i = 0; i < argc; i++)
		cap += (lens ? lens[i] : strlen(argv[i])) + 32;
	char *out = malloc(cap);
	if (!out)
		return iac_err_set("out of memory");
	n += (size_t)snprintf(out + n, cap - n, "*%zu\r\n", argc);
	for (size_t i = 0; i < argc; i++) {
		size_t l = lens ? lens[i] : strlen(argv[i]);
		n += (size_t)snprintf(out + n, cap - n, "$%zu\r\n", l);
		memcpy(out + n, argv[i], l);
		n += l;
		out[n++] = '\r';
		out[n++] = '\n';
	}
	int rc = send_all(c, out, n);
	free(out);
	return rc;
}

void iac_resp_clear(iac_resp *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		iac_resp_clear(&r->elems[i]);
	free(r->elems);
	free(r->str);
	memset(r, 0, sizeof(*r));
}

/* A whole decimal number, within [lo, hi]. */
static int parse_ll(long long *out, const char *s, long long lo, long long hi)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* A bulk string's n bytes, then its CRLF. */
static int read_bulk(iac_resp *out, iac_cache_conn *c, long long n)
{
	out->type = IAC_RESP_BULK;
	out->len = (size_t)n;
	out->str = malloc((size_t)n + 2);
	if (!out->str)
		return iac_err_set("out of memory");
	if (read_exact(out->str, (size_t)n + 2, c) < 0)
		return IAC_ERR;
	if (out->str[n] != '\r' || out->str[n + 1] != '\n')
		return iac_err_set("'%s' sent a bulk string without its CRLF", c->label);
	out->str[n] = '\0';
	return 0;
}

static int read_value(iac_resp *out, iac_cache_conn *c, int depth);

/* An array's n elements, one level deeper; out->n counts those read. */
static int read_array(iac_resp *out, iac_cache_conn *c, long long n, int depth)
{
	out->type = IAC_RESP_ARRAY;
	out->elems = calloc(n ? (size_t)n : 1, sizeof(iac_resp));
	if (!out->elems)
		return iac_err_set("out of memory");
	int rc = 0;
	for (long long i = 0; i < n && rc == 0; i++) {
		rc = read_value(&out->elems[i], c, depth + 1);
		if (rc == 0)
			out->n++;
	}
	return rc;
}

static int read_value(iac_resp *out, iac_cache_conn *c, int depth)
{
	char *line = NULL;
	size_t len = 0;
	long long n = 0;
	int rc = IAC_ERR;
	memset(out, 0, sizeof(*out));
	if (depth > DEPTH_MAX)
		return iac_err_set("'%s' sent replies nested deeper than %d", c->label, DEPTH_MAX);
	if (read_line(&line, &len, c) < 0)
		return IAC_ERR;
	if (len == 0)
		goto bad;
	switch (line[0]) {
	case '+':
	case '-':
		out->type = line[0] == '+' ? IAC_RESP_STRING : IAC_RESP_ERROR;
		out->len = len - 1;
		out->str = line;
		memmove(line, line + 1, len);   /* the NUL comes along */
		return 0;
	case ':':
		if (parse_ll(&out->integer, line + 1, -0x7fffffffffffffffLL, 0x7fffffffffffffffLL) < 0)
			goto bad;
		out->type = IAC_RESP_INT;
		rc = 0;
		break;
	case '$':
		if (parse_ll(&n, line + 1, -1, BULK_MAX_BYTES) < 0)
			goto bad;
		if (n < 0) {
			out->type = IAC_RESP_NIL;
			rc = 0;
			break;
		}
		rc = read_bulk(out, c, n);
		break;
	case '*':
		if (parse_ll(&n, line + 1, -1, ARRAY_MAX) < 0)
			goto bad;
		if (n < 0) {
			out->type = IAC_RESP_NIL;
			rc = 0;
			break;
		}
		rc = read_array(out, c, n, depth);
		break;
	default:
		goto bad;
	}
	free(line);
	if (rc < 0)
		iac_resp_clear(out);
	return rc;
bad:
	iac_err_set("'%s' sent something that is not RESP: '%.40s'", c->label, line);
	free(line);
	iac_resp_clear(out);
	return IAC_ERR;
}

int iac_resp_read(iac_resp *out, iac_cache_conn *c)
{
	return read_value(out, c, 0);
}

int iac_resp_call(iac_resp *out, iac_cache_conn *c, size_t argc, const char *const *argv, const size_t *lens)
{
	memset(out, 0, sizeof(*out));
	if (iac_resp_send(c, argc, argv, lens) < 0 || iac_resp_read(out, c) < 0)
		return IAC_ERR;
	if (out->type == IAC_RESP_ERROR) {
		iac_err_set("'%s' answered %s: %s", c->label, argv[0], out->str);
		iac_resp_clear(out);
		return IAC_ERR;
	}
	return 0;
}

int iac_mc_send(iac_cache_conn *c, const char *text, size_t len)
{
	return send_all(c, text, len);
}

int iac_mc_line(char **line, iac_cache_conn *c)
{
	return read_line(line, NULL, c);
}

int iac_mc_block(char **data, iac_cache_conn *c, size_t len)
{
	*data = NULL;
	if (len > (size_t)BULK_MAX_BYTES)
		return iac_err_set("'%s' sent a value of %zu bytes (over 64 MiB)", c->label, len);
	char *d = malloc(len + 2);
	if (!d)
		return iac_err_set("out of memory");
	if (read_exact(d, len + 2, c) < 0) {
		free(d);
		return IAC_ERR;
	}
	if (d[len] != '\r' || d[len + 1] != '\n') {
		free(d);
		return iac_err_set("'%s' sent a data block without its CRLF", c->label);
	}
	d[len] = '\0';
	*data = d;
	return 0;
}

static void stats_init(iac_cache_stats *s)
{
	s->hits = s->misses = s->evictions = s->memory = s->keys = s->clients = -1;
}

/* "name:value" of INFO, or "STAT name value" of stats, into the field. */
static void stat_field(iac_cache_stats *s, const char *name, const char *value, int redis)
{
	long long v;
	if (parse_ll(&v, value, 0, 0x7fffffffffffffffLL) < 0)
		return;
	static const struct {
		const char *redis, *mc;
		size_t off;
	} map[] = {
		{ "keyspace_hits", "get_hits", offsetof(iac_cache_stats, hits) },
		{ "keyspace_misses", "get_misses", offsetof(iac_cache_stats, misses) },
		{ "evicted_keys", "evictions", offsetof(iac_cache_stats, evictions) },
		{ "used_memory", "bytes", offsetof(iac_cache_stats, memory) },
		{ "connected_clients", "curr_connections", offsetof(iac_cache_stats, clients) },
		{ NULL, "curr_items", offsetof(iac_cache_stats, keys) },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		const char *want = redis ? map[i].redis : map[i].mc;
		if (want && !strcmp(want, name))
			*(long long *)((char *)s + map[i].off) = v;
	}
}

int iac_cache_stats_redis(iac_cache_stats *out, iac_cache_conn *c)
{
	const char *argv[] = { "INFO", "all" };
	iac_resp r;
	stats_init(out);
	if (iac_resp_call(&r, c, 2, argv, NULL) < 0)
		return IAC_ERR;
	if (r.type != IAC_RESP_BULK) {
		iac_resp_clear(&r);
		return iac_err_set("'%s' answered INFO with something other than a bulk string", c->label);
	}
	char *save = NULL;
	for (char *l = strtok_r(r.str, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
		char *colon = strchr(l, ':');
		if (!colon || l[0] == '#')
			continue;
		*colon = '\0';
		/* keys are per database: "db0:keys=12,expires=0,avg_ttl=0" */
		if (!strncmp(l, "db", 2) && !strncmp(colon + 1, "keys=", 5)) {
			long long k = strtoll(colon + 6, NULL, 10);
			out->keys = (out->keys < 0 ? 0 : out->keys) + (k > 0 ? k : 0);
			continue;
		}
		stat_field(out, l, colon + 1, 1);
	}
	if (out->keys < 0)
		out->keys = 0;   /* INFO lists no db line for an empty server */
	iac_resp_clear(&r);
	return 0;
}

int iac_cache_stats_memcached(iac_cache_stats *out, iac_cache_conn *c)
{
	char *line = NULL;
	stats_init(out);
	if (iac_mc_send(c, "stats\r\n", 7) < 0)
		return IAC_ERR;
	for (int i = 0; i < 1000; i++) {
		if (iac_mc_line(&line, c) < 0)
			return IAC_ERR;
		if (!strcmp(line, "END")) {
			free(line);
			return 0;
		}
		char name[128], value[128];
		if (sscanf(line, "STAT %127s %127s", name, value) != 2) {
			iac_err_set("'%s' answered stats with '%.60s'", c->label, line);
			free(line);
			return IAC_ERR;
		}
		stat_field(out, name, value, 0);
		free(line);
	}
	return iac_err_set("'%s' sent more than 1000 stats lines", c->label);
}

/* UNLINK of one SCAN batch; keys are the batch's bulk strings. */
static int unlink_batch(long long *removed, iac_cache_conn *c, const iac_resp *keys)
{
	if (keys->n == 0)
		return 0;
	const char **argv = calloc(keys->n + 1, sizeof(char *));
	size_t *lens = calloc(keys->n + 1, sizeof(size_t));
	iac_resp r;
	int rc = IAC_ERR;
	if (!argv || !lens) {
		iac_err_set("out of memory");
		goto done;
	}
	argv[0] = "UNLINK";
	lens[0] = 6;
	for (size_t i = 0; i < keys->n; i++) {
		if (keys->elems[i].type != IAC_RESP_BULK) {
			iac_err_set("'%s' answered SCAN with a key that is not a string", c->label);
			goto done;
		}
		argv[i + 1] = keys->elems[i].str;
		lens[i + 1] = keys->elems[i].len;
	}
	if (iac_resp_call(&r, c, keys->n + 1, argv, lens) < 0)
		goto done;
	if (r.type == IAC_RESP_INT)
		*removed += r.integer;
	iac_resp_clear(&r);
	rc = 0;
done:
	free(argv);
	free(lens);
	return rc;
}

int iac_cache_redis_scan(iac_resp *reply, iac_cache_conn *c, char cursor[32], const char *pattern)
{
	const char *argv[] = { "SCAN", cursor, "COUNT", "1000", "MATCH", pattern };
	if (iac_resp_call(reply, c, pattern ? 6 : 4, argv, NULL) < 0)
		return IAC_ERR;
	const iac_resp *r = reply;
	if (r->type != IAC_RESP_ARRAY || r->n != 2 || r->elems[0].type != IAC_RESP_BULK || r->elems[0].len >= 32 ||
	    r->elems[1].type != IAC_RESP_ARRAY) {
		iac_resp_clear(reply);
		return iac_err_set("'%s' answered SCAN with something other than [cursor, keys]", c->label);
	}
	memcpy(cursor, r->elems[0].str, r->elems[0].len + 1);
	return 0;
}

int iac_cache_redis_unlink(long long *removed, iac_cache_conn *c, const char *pattern)
{
	char cursor[32] = "0";
	*removed = 0;
	do {
		iac_resp r;
		if (iac_cache_redis_scan(&r, c, cursor, pattern) < 0)
			return IAC_ERR;
		int rc = unlink_batch(removed, c, &r.elems[1]);
		iac_resp_clear(&r);
		if (rc < 0)
			return IAC_ERR;
	} while (strcmp(cursor, "0"));
	return 0;
}

int iac_cache_mc_bump(unsigned long long *value, iac_cache_conn *c, const char *key)
{
	char cmd[400], *line = NULL;
	if (strlen(key) > 250 || strpbrk(key, " \r\n\t"))
		return iac_err_set("memcached key '%s' is too long or has spaces", key);
	for (int attempt = 0; attempt < 3; attempt++) {
		int n = snprintf(cmd, sizeof(cmd), "incr %s 1\r\n", key);
		if (iac_mc_send(c, cmd, (size_t)n) < 0 || iac_mc_line(&line, c) < 0)
			return IAC_ERR;
		if (strcmp(line, "NOT_FOUND")) {
			long long v;
			int ok = parse_ll(&v, line, 0, 0x7fffffffffffffffLL) == 0;
			if (!ok)
				iac_err_set("'%s' answered incr with '%.60s'", c->label, line);
			free(line);
			*value = (unsigned long long)v;
			return ok ? 0 : IAC_ERR;
		}
		free(line);
		/* missing: start at the current time, above any value a lost
		 * counter could have had; `add` loses to a concurrent creator,
		 * then the incr is tried again */
		char now[32];
		long long t = (long long)time(NULL);
		int nl = snprintf(now, sizeof(now), "%lld", t);
		n = snprintf(cmd, sizeof(cmd), "add %s 0 0 %d\r\n%s\r\n", key, nl, now);
		if (iac_mc_send(c, cmd, (size_t)n) < 0 || iac_mc_line(&line, c) < 0)
			return IAC_ERR;
		int stored = !strcmp(line, "STORED");
		free(line);
		if (stored) {
			*value = (unsigned long long)t;
			return 0;
		}
	}
	return iac_err_set("'%s': cannot create the namespace key '%s'", c->label, key);
}

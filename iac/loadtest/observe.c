/* lt_observe: HAProxy `show stat` and host CPU/memory sampling (see observe.h). */
#include "iac/loadtest/observe.h"

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/host/host.h"

/* A stream socket to "unix@/path", "/path", "[ipv4@]HOST:PORT" or
 * "[::1]:PORT" with read and write timeouts; `what` names it in messages
 * ("haproxy stats socket", "cache node"). The fd, or -1 with a message. */
static int connect_addr(const char *addr, double timeout_ms, const char *what)
{
	int fd = -1;
	const char *a = addr;
	struct timeval tv = { (time_t)(timeout_ms / 1e3), (suseconds_t)(fmod(timeout_ms, 1e3) * 1e3) };
	if (iac_str_starts(a, "unix@"))
		a += 5;
	if (a[0] == '/') {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(a) >= sizeof(sun.sun_path))
			return iac_err_set("%s path '%s' is too long", what, a);
		strcpy(sun.sun_path, a);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return iac_err_sys("cannot create a socket");
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			iac_err_sys("cannot connect to %s '%s'", what, a);
			close(fd);
			return IAC_ERR;
		}
		return fd;
	}
	if (iac_str_starts(a, "ipv4@"))
		a += 5;
	else if (iac_str_starts(a, "ipv6@"))
		a += 5;
	const char *colon = strrchr(a, ':');
	if (!colon)
		return iac_err_set("%s address '%s' must be a socket path or IP:PORT", what, addr);
	char *host = iac_xstrndup(a, (size_t)(colon - a));
	if (host[0] == '[') {   /* [::1]:9999 */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = 0;
	}
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(host, colon + 1, &hints, &res);
	free(host);
	if (rc || !res)
		return iac_err_set("cannot resolve %s address '%s': %s", what, addr, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		return iac_err_sys("cannot create a socket");
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		iac_err_sys("cannot connect to %s '%s'", what, addr);
		close(fd);
		freeaddrinfo(res);
		return IAC_ERR;
	}
	freeaddrinfo(res);
	return fd;
}

int iac_lt_haproxy_sample(iac_lt_hap_sample *out, const char *addr, double timeout_ms)
{
	int fd = connect_addr(addr, timeout_ms, "haproxy stats socket");
	if (fd < 0)
		return IAC_ERR;
	static const char cmd[] = "show stat\n";
	if (write(fd, cmd, sizeof(cmd) - 1) != (ssize_t)(sizeof(cmd) - 1)) {
		iac_err_sys("cannot send 'show stat' to haproxy at '%s'", addr);
		close(fd);
		return IAC_ERR;
	}
	iac_buf b = IAC_BUF_INIT;
	char tmp[8192];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n > 0) {
			iac_buf_put(&b, tmp, (size_t)n);
			if (b.len > (8u << 20))
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			iac_err_sys("cannot read haproxy stats from '%s'", addr);
			close(fd);
			iac_buf_free(&b);
			return IAC_ERR;
		}
		break;
	}
	close(fd);
	int rc = iac_lt_haproxy_parse(out, iac_buf_cstr(&b));
	iac_buf_free(&b);
	if (rc < 0)
		iac_err_prefix("haproxy at '%s'", addr);
	return rc;
}

/* Split one CSV line in place (HAProxy's stats CSV has no quoting). */
static size_t split_csv(char *line, char **fields, size_t max)
{
	size_t n = 0;
	char *p = line;
	while (n < max) {
		fields[n++] = p;
		char *c = strchr(p, ',');
		if (!c)
			break;
		*c = 0;
		p = c + 1;
	}
	return n;
}

/* A server row: kept by name, the first IAC_LT_HAP_SERVERS of them. */
static void server_row(iac_lt_hap_sample *out, const char *px, const char *sv, double q, double sc, double rt)
{
	if (out->nservers >= IAC_LT_HAP_SERVERS)
		return;
	iac_lt_hap_server *x = &out->servers[out->nservers++];
	snprintf(x->name, sizeof(x->name), "%s/%s", px, sv);
	x->qcur = q;
	x->scur = sc;
	x->rtime_ms = rt;
}

int iac_lt_haproxy_parse(iac_lt_hap_sample *out, const char *csv)
{
	memset(out, 0, sizeof(*out));
	if (!iac_str_starts(csv, "# "))
		return iac_err_set("'show stat' output does not start with the CSV header: '%.60s'", csv);
	char *text = iac_xstrdup(csv + 2);
	char *save = NULL;
	char *hdr = strtok_r(text, "\n", &save);
	char *names[256];
	size_t nn = split_csv(hdr, names, 256);
	int ipx = -1, isv = -1, iq = -1, is = -1, ir = -1, irate = -1, icl = -1, ich = -1;
	for (size_t i = 0; i < nn; i++) {
		if (!strcmp(names[i], "pxname")) ipx = (int)i;
		else if (!strcmp(names[i], "svname")) isv = (int)i;
		else if (!strcmp(names[i], "qcur")) iq = (int)i;
		else if (!strcmp(names[i], "scur")) is = (int)i;
		else if (!strcmp(names[i], "rtime")) ir = (int)i;
		else if (!strcmp(names[i], "req_rate")) irate = (int)i;
		else if (!strcmp(names[i], "cache_lookups")) icl = (int)i;
		else if (!strcmp(names[i], "cache_hits")) ich = (int)i;
	}
	if (ipx < 0 || isv < 0 || iq < 0 || is < 0 || ir < 0) {
		free(text);
		return iac_err_set("'show stat' output lacks pxname, svname, qcur, scur or rtime");
	}
	double rt_weighted = 0, rt_weight = 0;
	for (char *line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[256];
		size_t n = split_csv(line, f, 256);
		if ((size_t)isv >= n)
			continue;
		if (!strcmp(f[isv], "FRONTEND")) {
			if (irate >= 0 && (size_t)irate < n)
				out->rate += atof(f[irate]);
			continue;
		}
		if ((size_t)ir >= n || (size_t)is >= n || (size_t)iq >= n || !strcmp(f[ipx], "stats"))
			continue;   /* the stats backend itself is not a service */
		if (strcmp(f[isv], "BACKEND")) {
			server_row(out, f[ipx], f[isv], atof(f[iq]), atof(f[is]), atof(f[ir]));
			continue;
		}
		out->backends++;
		if (icl >= 0 && ich >= 0 && (size_t)icl < n && (size_t)ich < n) {
			out->cache_lookups += atof(f[icl]);
			out->cache_hits += atof(f[ich]);
		}
		out->qcur += atof(f[iq]);
		double sc = atof(f[is]);
		out->scur += sc;
		double rt = atof(f[ir]);
		rt_weighted += rt * (sc + 1);
		rt_weight += sc + 1;
	}
	out->rtime_ms = rt_weight > 0 ? rt_weighted / rt_weight : 0;
	if (icl < 0 || ich < 0)
		out->cache_lookups = out->cache_hits = -1;
	free(text);
	return 0;
}

int iac_lt_host_parse(double *cpu_pct, double *mem_pct, iac_lt_cpu_prev *prev, const char *text)
{
	const char *cpu = strstr(text, "cpu ");
	if (!cpu)
		return iac_err_set("no 'cpu' line in /proc/stat output");
	unsigned long long v[10] = { 0 };
	int n = sscanf(cpu, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		       &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
	if (n < 4)
		return iac_err_set("cannot read the 'cpu' line of /proc/stat");
	uint64_t total = 0;
	for (int i = 0; i < 8 && i < n; i++)   /* guest time is already in user */
		total += v[i];
	uint64_t idle = v[3] + (n > 4 ? v[4] : 0);
	uint64_t busy = total - idle;
	*cpu_pct = NAN;
	if (prev->primed && total > prev->total)
		*cpu_pct = 100.0 * (double)(busy - prev->busy) / (double)(total - prev->total);
	prev->busy = busy;
	prev->total = total;
	prev->primed = 1;

	const char *mt = strstr(text, "MemTotal:"), *ma = strstr(text, "MemAvailable:");
	*mem_pct = NAN;
	if (mt && ma) {
		double t = atof(mt + 9), a = atof(ma + 13);
		if (t > 0)
			*mem_pct = 100.0 * (t - a) / t;
	}
	return 0;
}

typedef struct {
	const char *name;             /* as written, borrowed */
	json_t *host;                 /* NULL: this machine */
	int ok;
	iac_lt_cpu_prev prev;
} lt_host;

struct iac_lt_hosts {
	lt_host *h;
	size_t n;
	iac_hosts *hosts;             /* remote ones, over SSH */
};

static int read_local(char **text)
{
	char *a = NULL, *b = NULL;
	size_t al, bl;
	if (iac_file_read(&a, &al, "/proc/stat") < 0)
		return IAC_ERR;
	if (iac_file_read(&b, &bl, "/proc/meminfo") < 0) {
		free(a);
		return IAC_ERR;
	}
	*text = iac_xasprintf("%s\n%s", a, b);
	free(a);
	free(b);
	return 0;
}

static int read_host(iac_lt_hosts *hs, lt_host *h, char **text)
{
	if (!h->host)
		return read_local(text);
	return iac_host_run(text, hs->hosts, h->host, "cat /proc/stat /proc/meminfo", 800, NULL);
}

/* "[user@]address[:port]" as a host object. New reference. */
static json_t *parse_host(const char *name)
{
	char *spec = iac_xstrdup(name), *user = NULL, *addr = spec;
	char *at = strchr(spec, '@');
	int port = 0;
	if (at) {
		*at = 0;
		user = spec;
		addr = at + 1;
	}
	char *colon = strrchr(addr, ':');
	if (colon && !strchr(colon, ']')) {
		*colon = 0;
		port = atoi(colon + 1);
	}
	if (addr[0] == '[') {
		addr++;
		addr[strcspn(addr, "]")] = 0;
	}
	json_t *h = json_pack("{s:s,s:s,s:i,s:s?}", "name", name, "address", addr, "port", port, "user", user);
	free(spec);
	return h;
}

iac_lt_hosts *iac_lt_hosts_open(const iac_strlist *names, const char *ssh_key, const char *known_hosts)
{
	iac_lt_hosts *hs = iac_xcalloc(1, sizeof(*hs));
	hs->n = names->n;
	hs->h = iac_xcalloc(names->n ? names->n : 1, sizeof(*hs->h));
	for (size_t i = 0; i < names->n; i++) {
		lt_host *h = &hs->h[i];
		h->name = names->items[i];
		if (strcmp(h->name, "local") && strcmp(h->name, "localhost")) {
			if (!hs->hosts) {
				iac_ssh_options o = { 0 };
				o.private_key = ssh_key;
				o.known_hosts = known_hosts;
				o.connect_timeout_ms = 5000;
				o.max_channels = 2;
				iac_hosts_new(&hs->hosts, ".", NULL, NULL);
				if (iac_hosts_set_ssh(hs->hosts, &o) < 0) {
					iac_log_warn("cannot observe host '%s': %s; the run continues without it", h->name,
						     iac_err_last());
					continue;
				}
			}
			h->host = parse_host(h->name);
		}
		char *text = NULL;
		double c, m;
		if (read_host(hs, h, &text) < 0 || iac_lt_host_parse(&c, &m, &h->prev, text) < 0) {
			iac_log_warn("cannot observe host '%s': %s; the run continues without it", h->name, iac_err_last());
			free(text);
			continue;
		}
		free(text);
		h->ok = 1;   /* primed: the next sample has a CPU figure */
	}
	return hs;
}

void iac_lt_hosts_sample(iac_lt_hosts *hs, double *cpu_pct, double *mem_pct)
{
	for (size_t i = 0; i < hs->n; i++) {
		lt_host *h = &hs->h[i];
		cpu_pct[i] = mem_pct[i] = NAN;
		char *text = NULL;
		if (!h->ok || read_host(hs, h, &text) < 0) {
			free(text);
			continue;
		}
		iac_lt_host_parse(&cpu_pct[i], &mem_pct[i], &h->prev, text);
		free(text);
	}
}

void iac_lt_hosts_close(iac_lt_hosts *hs)
{
	if (!hs)
		return;
	for (size_t i = 0; i < hs->n; i++)
		json_decref(hs->h[i].host);
	iac_hosts_free(hs->hosts);
	free(hs->h);
	free(hs);
}

/* ---- cache nodes ------------------------------------------------------ */

int iac_lt_cache_parse(iac_lt_cache_counters *out, const char *text)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
		{ "keyspace_hits:", offsetof(iac_lt_cache_counters, hits) },
		{ "keyspace_misses:", offsetof(iac_lt_cache_counters, misses) },
		{ "evicted_keys:", offsetof(iac_lt_cache_counters, evictions) },
		{ "STAT get_hits ", offsetof(iac_lt_cache_counters, hits) },
		{ "STAT get_misses ", offsetof(iac_lt_cache_counters, misses) },
		{ "STAT evictions ", offsetof(iac_lt_cache_counters, evictions) },
	};
	out->hits = out->misses = out->evictions = -1;
	for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (iac_str_starts(line, fields[i].name))
				*(long long *)((char *)out + fields[i].off) = atoll(line + strlen(fields[i].name));
	if (out->hits < 0 && out->misses < 0)
		return iac_err_set("the reply has no hit or miss counters");
	return 0;
}

/* Is `b` a whole reply? Redis: "$LEN\r\n" and LEN bytes and CRLF, or an
 * error line; Memcached: up to "END\r\n", or an "ERROR" line. */
static int reply_complete(const iac_buf *b)
{
	const char *s = iac_buf_cstr(b);
	const char *eol = strstr(s, "\r\n");
	if (!eol)
		return 0;
	if (s[0] == '$') {
		long long n = atoll(s + 1);
		return n < 0 || b->len >= (size_t)(eol - s) + 2 + (size_t)n + 2;
	}
	if (s[0] == '-' || iac_str_starts(s, "ERROR") || iac_str_starts(s, "CLIENT_ERROR") ||
	    iac_str_starts(s, "SERVER_ERROR"))
		return 1;
	return b->len >= 5 && !memcmp(s + b->len - 5, "END\r\n", 5);
}

/* Send `cmd`, read one whole reply into *text (caller frees). 0 or -1. */
static int cache_ask(char **text, const char *addr, const char *cmd, double timeout_ms)
{
	int fd = connect_addr(addr, timeout_ms, "cache node");
	if (fd < 0)
		return IAC_ERR;
	int rc = IAC_ERR;
	iac_buf b = IAC_BUF_INIT;
	size_t len = strlen(cmd);
	if (write(fd, cmd, len) != (ssize_t)len) {
		iac_err_sys("cannot send to cache node '%s'", addr);
		goto done;
	}
	char tmp[8192];
	while (!reply_complete(&b)) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || b.len > (1u << 20)) {
			if (n < 0)
				iac_err_sys("cannot read from cache node '%s'", addr);
			else
				iac_err_set("cache node '%s' sent an incomplete reply", addr);
			goto done;
		}
		iac_buf_put(&b, tmp, (size_t)n);
	}
	*text = iac_xstrdup(iac_buf_cstr(&b));
	rc = 0;
done:
	close(fd);
	iac_buf_free(&b);
	return rc;
}

typedef enum { LT_CACHE_UNKNOWN, LT_CACHE_REDIS, LT_CACHE_MEMCACHED } lt_cache_engine;

typedef struct {
	const char *addr;                 /* as written, borrowed */
	lt_cache_engine engine;
	iac_lt_cache_counters base, last;
	char *error;                      /* why there are no figures, or NULL */
	long long *hits, *misses;         /* at the end of second i; -1: not sampled */
	size_t nsecs;
} lt_cache_node;

struct iac_lt_caches {
	lt_cache_node *n;
	size_t count;
	const char *haproxy;              /* level 1, or NULL; borrowed */
	double l1_base_lookups, l1_base_hits, l1_lookups, l1_hits;   /* -1: not sampled */
};

/* Level 1's counters now, into (lookups, hits); untouched when HAProxy
 * does not answer or has no cache columns. */
static void l1_read(iac_lt_caches *c, double *lookups, double *hits)
{
	iac_lt_hap_sample hs;
	if (!c->haproxy || iac_lt_haproxy_sample(&hs, c->haproxy, 300) < 0 || hs.cache_lookups < 0)
		return;
	*lookups = hs.cache_lookups;
	*hits = hs.cache_hits;
}

/* The node's counters now, finding its engine on the first call. */
static int cache_read(lt_cache_node *node, iac_lt_cache_counters *out, double timeout_ms)
{
	char *text = NULL;
	int rc = IAC_ERR;
	if (node->engine != LT_CACHE_MEMCACHED) {
		if (cache_ask(&text, node->addr, "INFO stats\r\n", timeout_ms) < 0)
			return IAC_ERR;
		if (text[0] == '$') {
			node->engine = LT_CACHE_REDIS;
		} else if (node->engine == LT_CACHE_UNKNOWN && iac_str_starts(text, "ERROR")) {
			node->engine = LT_CACHE_MEMCACHED;
		} else {
			iac_err_set("cache node '%s' answered INFO with '%.*s'", node->addr,
				    (int)strcspn(text, "\r\n"), text);
			goto done;
		}
	}
	if (node->engine == LT_CACHE_MEMCACHED) {
		free(text);
		text = NULL;
		if (cache_ask(&text, node->addr, "stats\r\n", timeout_ms) < 0)
			return IAC_ERR;
	}
	rc = iac_lt_cache_parse(out, text);
	if (rc < 0)
		iac_err_prefix("cache node '%s'", node->addr);
done:
	free(text);
	return rc;
}

iac_lt_caches *iac_lt_caches_open(const iac_strlist *nodes, const char *haproxy)
{
	iac_lt_caches *c = iac_xcalloc(1, sizeof(*c));
	c->haproxy = haproxy;
	c->l1_base_lookups = c->l1_base_hits = c->l1_lookups = c->l1_hits = -1;
	l1_read(c, &c->l1_base_lookups, &c->l1_base_hits);
	c->count = nodes->n;
	c->n = iac_xcalloc(nodes->n ? nodes->n : 1, sizeof(*c->n));
	for (size_t i = 0; i < nodes->n; i++) {
		lt_cache_node *node = &c->n[i];
		node->addr = nodes->items[i];
		if (cache_read(node, &node->base, 1000) < 0) {
			node->error = iac_xstrdup(iac_err_last());
			iac_log_warn("%s; the run continues without it", node->error);
			continue;
		}
		node->last = node->base;
	}
	return c;
}

static void cache_record(lt_cache_node *node, long sec)
{
	if (sec < 0)
		return;
	if ((size_t)sec >= node->nsecs) {
		size_t n = (size_t)sec + 1 > node->nsecs * 2 ? (size_t)sec + 1 : node->nsecs * 2;
		node->hits = iac_xrealloc(node->hits, n * sizeof(long long));
		node->misses = iac_xrealloc(node->misses, n * sizeof(long long));
		for (size_t k = node->nsecs; k < n; k++)
			node->hits[k] = node->misses[k] = -1;
		node->nsecs = n;
	}
	node->hits[sec] = node->last.hits;
	node->misses[sec] = node->last.misses;
}

void iac_lt_caches_sample(iac_lt_caches *c, long sec)
{
	for (size_t i = 0; c && i < c->count; i++) {
		lt_cache_node *node = &c->n[i];
		iac_lt_cache_counters now;
		if (node->error || cache_read(node, &now, 300) < 0)
			continue;   /* one lost sample: the next one covers it */
		node->last = now;
		cache_record(node, sec);
	}
}

void iac_lt_caches_finish(iac_lt_caches *c)
{
	iac_lt_caches_sample(c, -1);
	if (c)
		l1_read(c, &c->l1_lookups, &c->l1_hits);
}

/* Level 1 over the window: 1 when both ends were sampled (and HAProxy was
 * not reloaded in between, which starts its counters again). */
static int l1_window(const iac_lt_caches *c, long long *hits, long long *misses)
{
	if (c->l1_base_lookups < 0 || c->l1_lookups < c->l1_base_lookups || c->l1_hits < c->l1_base_hits)
		return 0;
	*hits = (long long)(c->l1_hits - c->l1_base_hits);
	*misses = (long long)(c->l1_lookups - c->l1_base_lookups) - *hits;
	return 1;
}

/* A counter's growth over the window; -1 when unknown or reset (the
 * server restarted during the run). */
static long long grown(long long base, long long last)
{
	return base < 0 || last < base ? -1 : last - base;
}

typedef struct {
	long long hits, misses, evictions;
} lt_cache_window;

static int window_of(lt_cache_window *w, const lt_cache_node *node)
{
	if (node->error)
		return 0;
	w->hits = grown(node->base.hits, node->last.hits);
	w->misses = grown(node->base.misses, node->last.misses);
	w->evictions = grown(node->base.evictions, node->last.evictions);
	return w->hits >= 0 && w->misses >= 0;
}

static const char *engine_name(lt_cache_engine e)
{
	return e == LT_CACHE_REDIS ? "redis" : e == LT_CACHE_MEMCACHED ? "memcached" : "unknown";
}

static double rate_of(long long hits, long long misses)
{
	return hits + misses > 0 ? (double)hits / (double)(hits + misses) : NAN;
}

static void text_line(iac_buf *out, const char *label, long long h, long long m, long long ev)
{
	double r = rate_of(h, m);
	iac_buf_printf(out, "    %s: %lld hits, %lld misses, hit rate ", label, h, m);
	if (isnan(r))
		iac_buf_printf(out, "-");
	else
		iac_buf_printf(out, "%.1f%%", 100.0 * r);
	if (ev >= 0)
		iac_buf_printf(out, ", %lld evictions", ev);
	iac_buf_printf(out, "\n");
}

void iac_lt_caches_text(iac_buf *out, const iac_lt_caches *c)
{
	if (!c || !c->count)
		return;
	long long th = 0, tm = 0, tev = 0, l1h, l1m;
	if (l1_window(c, &l1h, &l1m)) {
		char label[300];
		snprintf(label, sizeof(label), "level 1, HAProxy cache at %s", c->haproxy);
		text_line(out, label, l1h, l1m, -1);
	}
	size_t ok = 0;
	for (size_t i = 0; i < c->count; i++) {
		const lt_cache_node *node = &c->n[i];
		lt_cache_window w;
		if (!window_of(&w, node)) {
			iac_buf_printf(out, "    cache %s: %s\n", node->addr,
				       node->error ? "not sampled" : "counters reset during the run");
			continue;
		}
		char label[300];
		snprintf(label, sizeof(label), "cache %s (%s)", node->addr, engine_name(node->engine));
		text_line(out, label, w.hits, w.misses, w.evictions);
		th += w.hits;
		tm += w.misses;
		tev += w.evictions > 0 ? w.evictions : 0;
		ok++;
	}
	if (ok > 1 || c->haproxy)
		text_line(out, c->haproxy ? "level 2, all cache nodes" : "cache, all nodes", th, tm, tev);
}

static json_t *num_or_null(double v)
{
	return isnan(v) ? json_null() : json_real(v);
}

json_t *iac_lt_caches_json(const iac_lt_caches *c)
{
	if (!c)
		return NULL;
	json_t *o = json_object(), *nodes = json_array();
	long long th = 0, tm = 0, tev = 0;
	for (size_t i = 0; i < c->count; i++) {
		const lt_cache_node *node = &c->n[i];
		lt_cache_window w;
		json_t *n = json_pack("{s:s}", "address", node->addr);
		if (!window_of(&w, node)) {
			json_object_set_new(n, "error", json_string(node->error ? node->error
									    : "counters reset during the run"));
		} else {
			json_object_set_new(n, "engine", json_string(engine_name(node->engine)));
			json_object_set_new(n, "hits", json_integer(w.hits));
			json_object_set_new(n, "misses", json_integer(w.misses));
			json_object_set_new(n, "hit_rate", num_or_null(rate_of(w.hits, w.misses)));
			json_object_set_new(n, "evictions", w.evictions >= 0 ? json_integer(w.evictions) : json_null());
			th += w.hits;
			tm += w.misses;
			tev += w.evictions > 0 ? w.evictions : 0;
		}
		json_array_append_new(nodes, n);
	}
	json_object_set_new(o, "nodes", nodes);
	json_object_set_new(o, "hits", json_integer(th));
	json_object_set_new(o, "misses", json_integer(tm));
	json_object_set_new(o, "hit_rate", num_or_null(rate_of(th, tm)));
	json_object_set_new(o, "evictions", json_integer(tev));
	long long l1h, l1m;
	if (l1_window(c, &l1h, &l1m))
		json_object_set_new(o, "level1", json_pack("{s:s,s:I,s:I,s:o}", "haproxy", c->haproxy, "hits",
							   (json_int_t)l1h, "misses", (json_int_t)l1m, "hit_rate",
							   num_or_null(rate_of(l1h, l1m))));
	return o;
}

/* The counter at the end of the last sampled second before sec, or the
 * baseline. */
static long long before(const long long *v, size_t sec, long long base)
{
	while (sec-- > 0)
		if (v[sec] >= 0)
			return v[sec];
	return base;
}

json_t *iac_lt_caches_second_json(const iac_lt_caches *c, size_t sec)
{
	if (!c)
		return NULL;
	long long h = 0, m = 0;
	int any = 0;
	for (size_t i = 0; i < c->count; i++) {
		const lt_cache_node *node = &c->n[i];
		if (node->error || sec >= node->nsecs || node->hits[sec] < 0)
			continue;
		long long dh = node->hits[sec] - before(node->hits, sec, node->base.hits);
		long long dm = node->misses[sec] - before(node->misses, sec, node->base.misses);
		if (dh < 0 || dm < 0)
			continue;
		h += dh;
		m += dm;
		any = 1;
	}
	if (!any)
		return NULL;
	return json_pack("{s:I,s:I,s:o}", "hits", (json_int_t)h, "misses", (json_int_t)m, "hit_rate",
			 num_or_null(rate_of(h, m)));
}

void iac_lt_caches_close(iac_lt_caches *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->count; i++) {
		free(c->n[i].error);
		free(c->n[i].hits);
		free(c->n[i].misses);
	}
	free(c->n);
	free(c);
}

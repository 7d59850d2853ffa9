/* lt_observe: HAProxy `show stat` and host CPU/memory sampling (see observe.h). */
#include "iac/loadtest/observe.h"

#include <errno.h>
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

static int connect_stats(const char *addr, double timeout_ms)
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
			return iac_err_set("haproxy stats socket path '%s' is too long", a);
		strcpy(sun.sun_path, a);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return iac_err_sys("cannot create a socket");
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			iac_err_sys("cannot connect to haproxy stats socket '%s'", a);
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
		return iac_err_set("haproxy stats address '%s' must be a socket path or IP:PORT", addr);
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
		return iac_err_set("cannot resolve haproxy stats address '%s': %s", addr, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		return iac_err_sys("cannot create a socket");
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		iac_err_sys("cannot connect to haproxy stats socket '%s'", addr);
		close(fd);
		freeaddrinfo(res);
		return IAC_ERR;
	}
	freeaddrinfo(res);
	return fd;
}

int iac_lt_haproxy_sample(iac_lt_hap_sample *out, const char *addr, double timeout_ms)
{
	int fd = connect_stats(addr, timeout_ms);
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
	int ipx = -1, isv = -1, iq = -1, is = -1, ir = -1, irate = -1;
	for (size_t i = 0; i < nn; i++) {
		if (!strcmp(names[i], "pxname")) ipx = (int)i;
		else if (!strcmp(names[i], "svname")) isv = (int)i;
		else if (!strcmp(names[i], "qcur")) iq = (int)i;
		else if (!strcmp(names[i], "scur")) is = (int)i;
		else if (!strcmp(names[i], "rtime")) ir = (int)i;
		else if (!strcmp(names[i], "req_rate")) irate = (int)i;
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
		if (strcmp(f[isv], "BACKEND") || (size_t)ir >= n || (size_t)is >= n || (size_t)iq >= n)
			continue;
		/* the stats backend itself is not a service */
		if (!strcmp(f[ipx], "stats"))
			continue;
		out->backends++;
		out->qcur += atof(f[iq]);
		double sc = atof(f[is]);
		out->scur += sc;
		double rt = atof(f[ir]);
		rt_weighted += rt * (sc + 1);
		rt_weight += sc + 1;
	}
	out->rtime_ms = rt_weight > 0 ? rt_weighted / rt_weight : 0;
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

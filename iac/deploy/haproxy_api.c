/* haproxy_api: HAProxy runtime API client (see haproxy_api.h). */
#include "iac/deploy/haproxy_api.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/util.h"

struct iac_haproxy {
	char *addr;
	char *target;
	double timeout_ms;
	struct sockaddr_storage sa;
	socklen_t salen;
};

/* HAProxy closes the connection after the answer; a bigger answer than this
 * (show stat of thousands of servers is ~1 MiB) is a misbehaving peer. */
#define ANSWER_MAX (64u << 20)

static int parse_addr(iac_haproxy *h, const char *addr)
{
	const char *a = addr;
	memset(&h->sa, 0, sizeof(h->sa));

	if (iac_str_starts(a, "unix@"))
		a += 5;
	if (a[0] == '/' || a[0] == '.' || (!strchr(a, ':') && !iac_str_starts(addr, "ipv"))) {
		struct sockaddr_un *un = (struct sockaddr_un *)&h->sa;
		if (strlen(a) >= sizeof(un->sun_path))
			return iac_err_set("invalid haproxy socket '%s': path too long", addr);
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, a);
		h->salen = sizeof(*un);
		return 0;
	}
	int family = AF_INET;
	if (iac_str_starts(a, "ipv4@")) {
		a += 5;
	} else if (iac_str_starts(a, "ipv6@")) {
		a += 5;
		family = AF_INET6;
	}
	char host[128];
	const char *colon;
	if (a[0] == '[') {
		const char *close = strchr(a, ']');
		if (!close || close[1] != ':')
			goto bad;
		family = AF_INET6;
		if ((size_t)(close - a - 1) >= sizeof(host))
			goto bad;
		memcpy(host, a + 1, (size_t)(close - a - 1));
		host[close - a - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(a, ':');
		if (!colon || (size_t)(colon - a) >= sizeof(host))
			goto bad;
		memcpy(host, a, (size_t)(colon - a));
		host[colon - a] = '\0';
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535)
		goto bad;
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&h->sa;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			goto bad;
		h->salen = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&h->sa;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			goto bad;
		h->salen = sizeof(*in6);
	}
	return 0;
bad:
	return iac_err_set("invalid haproxy socket '%s': expected a unix path, "
			   "'ipv4@IP:PORT' or 'ipv6@[IP]:PORT'", addr);
}

int iac_haproxy_open(iac_haproxy **out, const char *addr, double timeout_ms)
{
	*out = NULL;
	if (!addr || !*addr)
		return iac_err_set("invalid haproxy socket '': empty address");
	iac_haproxy *h = iac_xcalloc(1, sizeof(*h));
	if (parse_addr(h, addr) < 0) {
		free(h);
		return IAC_ERR;
	}
	h->addr = iac_xstrdup(addr);
	h->timeout_ms = timeout_ms > 0 ? timeout_ms : IAC_HAPROXY_TIMEOUT_MS;
	*out = h;
	return 0;
}

void iac_haproxy_free(iac_haproxy *h)
{
	if (!h)
		return;
	free(h->addr);
	free(h->target);
	free(h);
}

const char *iac_haproxy_addr(const iac_haproxy *h)
{
	return h->addr;
}

void iac_haproxy_set_timeout(iac_haproxy *h, double timeout_ms)
{
	h->timeout_ms = timeout_ms > 0 ? timeout_ms : IAC_HAPROXY_TIMEOUT_MS;
}

void iac_haproxy_set_target(iac_haproxy *h, const char *target)
{
	free(h->target);
	h->target = target && *target ? iac_xstrdup(target) : NULL;
}

/* Wait for fd to become ready for `events` before the deadline: 1 ready,
 * 0 deadline passed, -1 error (errno set). */
static int wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		double left = deadline - iac_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, (int)left + 1);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static int timeout_err(const iac_haproxy *h, const char *what)
{
	return iac_err_set("haproxy at '%s': no answer within %.0f ms (%s)", h->addr, h->timeout_ms, what);
}

static int do_connect(int *out_fd, iac_haproxy *h, double deadline)
{
	for (;;) {
		int fd = socket(h->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return iac_err_sys("haproxy at '%s': cannot create a socket", h->addr);
		if (connect(fd, (struct sockaddr *)&h->sa, h->salen) == 0) {
			*out_fd = fd;
			return 0;
		}
		int e = errno;
		if (e == EINPROGRESS) {
			int r = wait_fd(fd, POLLOUT, deadline);
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) {
				*out_fd = fd;
				return 0;
			}
			close(fd);
			if (r == 0)
				return timeout_err(h, "connect");
			e = soerr ? soerr : errno;
		} else {
			close(fd);
		}
		/* a unix socket with a full backlog says EAGAIN: HAProxy is busy
		 * (typically mid-reload), try again until the deadline */
		if (e == EAGAIN && iac_now_ms() < deadline) {
			struct timespec ts = { 0, 5 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			continue;
		}
		errno = e;
		if (e == ENOENT || e == ECONNREFUSED)
			return iac_err_set("haproxy at '%s': cannot connect: %s (is haproxy running "
					   "with this stats socket?)", h->addr, strerror(e));
		return iac_err_sys("haproxy at '%s': cannot connect", h->addr);
	}
}

/* Send one line, half-close, read everything until HAProxy closes. */
static int exchange(char **out, iac_haproxy *h, const char *line)
{
	double deadline = iac_now_ms() + h->timeout_ms;
	iac_buf ans = IAC_BUF_INIT;
	int fd = -1, rc = IAC_ERR;
	size_t len = strlen(line), sent = 0;

	*out = NULL;
	if (do_connect(&fd, h, deadline) < 0)
		goto done;
	while (sent < len + 1) {
		const char *p = sent < len ? line + sent : "\n";
		size_t chunk = sent < len ? len - sent : 1;
		ssize_t w = send(fd, p, chunk, MSG_NOSIGNAL);
		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			int r = wait_fd(fd, POLLOUT, deadline);
			if (r == 0) {
				timeout_err(h, "send");
				goto done;
			}
			if (r > 0)
				continue;
		}
		iac_err_sys("haproxy at '%s': cannot send the command", h->addr);
		goto done;
	}
	/* the master CLI answers only once it sees the end of input */
	shutdown(fd, SHUT_WR);
	for (;;) {
		char chunk[16384];
		ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
		if (r > 0) {
			if (ans.len + (size_t)r > ANSWER_MAX) {
				iac_err_set("haproxy at '%s': answer larger than %u bytes", h->addr, ANSWER_MAX);
				goto done;
			}
			iac_buf_put(&ans, chunk, (size_t)r);
			continue;
		}
		if (r == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			int w = wait_fd(fd, POLLIN, deadline);
			if (w == 0) {
				timeout_err(h, "read");
				goto done;
			}
			if (w > 0)
				continue;
		}
		if (errno == ECONNRESET)
			break;   /* HAProxy may reset after writing its answer */
		iac_err_sys("haproxy at '%s': cannot read the answer", h->addr);
		goto done;
	}
	*out = iac_buf_detach(&ans);
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	iac_buf_free(&ans);
	return rc;
}

static int check_command(const iac_haproxy *h, const char *cmd, int allow_semicolon)
{
	if (!cmd || !*cmd)
		return iac_err_set("haproxy at '%s': empty command", h->addr);
	if (strchr(cmd, '\n') || strchr(cmd, '\r'))
		return iac_err_set("haproxy at '%s': command '%s' contains a newline", h->addr, cmd);
	if (!allow_semicolon && strchr(cmd, ';'))
		return iac_err_set("haproxy at '%s': command '%s' contains ';' (batches are built "
				   "from separate commands)", h->addr, cmd);
	return 0;
}

static void put_command(iac_buf *line, const iac_haproxy *h, const char *cmd)
{
	if (h->target)
		iac_buf_printf(line, "%s ", h->target);
	iac_buf_puts(line, cmd);
}

int iac_haproxy_cmd(char **out, iac_haproxy *h, const char *cmd)
{
	iac_buf line = IAC_BUF_INIT;
	int rc;

	*out = NULL;
	if (check_command(h, cmd, 1) < 0)
		return IAC_ERR;
	put_command(&line, h, cmd);
	rc = exchange(out, h, iac_buf_cstr(&line));
	iac_buf_free(&line);
	return rc;
}

size_t iac_haproxy_split_answers(iac_strlist *out, const char *raw)
{
	iac_buf cur = IAC_BUF_INIT;
	size_t count = 0;
	const char *p = raw;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len == 0 && nl) {
			/* an empty line closes the current answer */
			iac_strlist_push(out, iac_buf_cstr(&cur));
			iac_buf_clear(&cur);
			count++;
		} else {
			if (cur.len)
				iac_buf_putc(&cur, '\n');
			iac_buf_put(&cur, p, len);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	/* HAProxy closed without the final empty line (e.g. after "reload") */
	if (cur.len) {
		iac_strlist_push(out, iac_buf_cstr(&cur));
		count++;
	}
	iac_buf_free(&cur);
	return count;
}

int iac_haproxy_batch(iac_strlist *out, iac_haproxy *h, const char *const *cmds, size_t n)
{
	iac_buf line = IAC_BUF_INIT;
	char *raw = NULL;
	int rc = IAC_ERR;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (check_command(h, cmds[i], 0) < 0)
			goto done;
		if (i)
			iac_buf_puts(&line, "; ");
		put_command(&line, h, cmds[i]);
	}
	if (exchange(&raw, h, iac_buf_cstr(&line)) < 0)
		goto done;
	size_t got = iac_haproxy_split_answers(out, raw);
	if (got < n) {
		iac_err_set("haproxy at '%s': %zu answers to %zu commands (connection closed early?)",
			    h->addr, got, n);
		iac_strlist_free(out);
		goto done;
	}
	rc = 0;
done:
	free(raw);
	iac_buf_free(&line);
	return rc;
}

char *iac_haproxy_answer_error(const char *answer)
{
	iac_buf b = IAC_BUF_INIT;
	const char *s = answer ? answer : "";

	while (*s && isspace((unsigned char)*s))
		s++;
	if (!*s)
		return NULL;
	if (iac_str_starts(s, "Unknown command")) {
		iac_buf_puts(&b, "Unknown command (not supported by this HAProxy version, or sent to "
			     "the master CLI without a '@' target?)");
		return iac_buf_detach(&b);
	}
	for (const char *p = s; *p; p++) {
		if (*p == '\n' || *p == '\r') {
			if (b.len && b.ptr[b.len - 1] != ' ')
				iac_buf_putc(&b, ' ');
		} else {
			iac_buf_putc(&b, *p);
		}
	}
	while (b.len && b.ptr[b.len - 1] == ' ')
		b.ptr[--b.len] = '\0';
	if (strstr(s, "Permission denied"))
		iac_buf_puts(&b, " (the stats socket needs 'level admin')");
	return iac_buf_detach(&b);
}

/* ---- typed helpers ------------------------------------------------------ */

static const char *const admin_names[] = { "ready", "drain", "maint" };

const char *iac_haproxy_admin_name(enum iac_haproxy_admin st)
{
	return (unsigned)st < 3 ? admin_names[st] : "?";
}

int iac_haproxy_admin_parse(enum iac_haproxy_admin *out, const char *name)
{
	for (int i = 0; i < 3; i++)
		if (name && !strcmp(name, admin_names[i])) {
			*out = (enum iac_haproxy_admin)i;
			return 0;
		}
	return iac_err_set("invalid server state '%s': expected ready, drain or maint", name ? name : "");
}

static int check_name(const iac_haproxy *h, const char *what, const char *name)
{
	if (!name || !*name)
		return iac_err_set("haproxy at '%s': empty %s name", h->addr, what);
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_.:", *p))
			return iac_err_set("haproxy at '%s': invalid %s name '%s' (HAProxy names use "
					   "letters, digits, '-', '_', '.', ':')", h->addr, what, name);
	return 0;
}

int iac_haproxy_set_state_stat(iac_haproxy_stat **rows, size_t *nrows, iac_haproxy *h,
			       const char *backend, const char *const *servers, size_t n,
			       enum iac_haproxy_admin st)
{
	char **cmds = NULL;
	iac_strlist ans = { 0 };
	size_t ncmds = n + (rows ? 1 : 0);
	int rc = IAC_ERR;

	if (rows) {
		*rows = NULL;
		*nrows = 0;
	}
	if (check_name(h, "backend", backend) < 0)
		return IAC_ERR;
	cmds = iac_xcalloc(ncmds ? ncmds : 1, sizeof(*cmds));
	for (size_t i = 0; i < n; i++) {
		if (check_name(h, "server", servers[i]) < 0)
			goto done;
		cmds[i] = iac_xasprintf("set server %s/%s state %s", backend, servers[i],
					iac_haproxy_admin_name(st));
	}
	if (rows)
		cmds[n] = iac_xstrdup("show stat");
	if (iac_haproxy_batch(&ans, h, (const char *const *)cmds, ncmds) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		char *e = iac_haproxy_answer_error(ans.items[i]);
		if (e) {
			iac_err_set("haproxy at '%s': cannot set '%s/%s' to %s: %s", h->addr, backend,
				    servers[i], iac_haproxy_admin_name(st), e);
			free(e);
			goto done;
		}
	}
	if (rows) {
		if (iac_haproxy_stat_parse(rows, nrows, ans.items[n]) < 0) {
			iac_err_prefix("haproxy at '%s'", h->addr);
			goto done;
		}
		size_t k = 0;
		for (size_t i = 0; i < *nrows; i++)
			if (!strcmp((*rows)[i].pxname, backend))
				(*rows)[k++] = (*rows)[i];
		*nrows = k;
	}
	rc = 0;
done:
	for (size_t i = 0; i < ncmds; i++)
		free(cmds[i]);
	free(cmds);
	iac_strlist_free(&ans);
	return rc;
}

int iac_haproxy_set_state(iac_haproxy *h, const char *backend, const char *const *servers,
			  size_t n, enum iac_haproxy_admin st)
{
	return iac_haproxy_set_state_stat(NULL, NULL, h, backend, servers, n, st);
}

int iac_haproxy_add_server(int *existed, iac_haproxy *h, const char *backend, const char *server,
			   const char *address, long port, const char *opts)
{
	iac_strlist ans = { 0 };
	char *cmds[3] = { NULL, NULL, NULL }, *e = NULL;
	int rc = IAC_ERR;

	if (existed)
		*existed = 0;
	if (check_name(h, "backend", backend) < 0 || check_name(h, "server", server) < 0)
		return IAC_ERR;
	if (!address || !*address || strpbrk(address, " \t;\n") || (opts && strpbrk(opts, ";\n")) || port <= 0 ||
	    port > 65535)
		return iac_err_set("haproxy at '%s': invalid address '%s:%ld' or options for '%s/%s'", h->addr,
				   address ? address : "", port, backend, server);
	cmds[0] = iac_xasprintf("add server %s/%s %s:%ld%s%s", backend, server, address, port, opts && *opts ? " " : "",
				opts ? opts : "");
	cmds[1] = iac_xasprintf("enable health %s/%s", backend, server);
	cmds[2] = iac_xasprintf("enable server %s/%s", backend, server);
	if (iac_haproxy_batch(&ans, h, (const char *const *)cmds, 3) < 0)
		goto done;
	const char *a0 = ans.n > 0 ? ans.items[0] : "";
	if (strstr(a0, "Already exists")) {
		if (existed)
			*existed = 1;
	} else if (!strstr(a0, "New server registered")) {
		e = iac_haproxy_answer_error(a0);
		iac_err_set("haproxy at '%s': cannot add server '%s/%s' at %s:%ld: %s", h->addr, backend, server,
			    address, port, e ? e : "no answer");
		goto done;
	}
	for (size_t i = 1; i < 3; i++) {
		free(e);
		e = iac_haproxy_answer_error(i < ans.n ? ans.items[i] : "");
		if (e) {
			iac_err_set("haproxy at '%s': cannot enable '%s/%s': %s", h->addr, backend, server, e);
			goto done;
		}
	}
	rc = 0;
done:
	free(e);
	for (size_t i = 0; i < 3; i++)
		free(cmds[i]);
	iac_strlist_free(&ans);
	return rc;
}

int iac_haproxy_del_server(iac_haproxy *h, const char *backend, const char *server)
{
	iac_strlist ans = { 0 };
	char *cmds[2] = { NULL, NULL }, *e = NULL;
	int rc = IAC_ERR;

	if (check_name(h, "backend", backend) < 0 || check_name(h, "server", server) < 0)
		return IAC_ERR;
	cmds[0] = iac_xasprintf("set server %s/%s state maint", backend, server);
	cmds[1] = iac_xasprintf("del server %s/%s", backend, server);
	if (iac_haproxy_batch(&ans, h, (const char *const *)cmds, 2) < 0)
		goto done;
	const char *a1 = ans.n > 1 ? ans.items[1] : "";
	if (strstr(a1, "Server deleted") || strstr(a1, "No such server") ||
	    (ans.n > 0 && strstr(ans.items[0], "No such server"))) {
		rc = 0;
		goto done;
	}
	e = iac_haproxy_answer_error(a1);
	iac_err_set("haproxy at '%s': cannot delete server '%s/%s': %s", h->addr, backend, server, e ? e : "no answer");
done:
	free(e);
	free(cmds[0]);
	free(cmds[1]);
	iac_strlist_free(&ans);
	return rc;
}

int iac_haproxy_set_weight(iac_haproxy *h, const char *backend, const char *server,
			   const char *weight)
{
	char *cmd = NULL, *ans = NULL, *e = NULL;
	int rc = IAC_ERR;
	char *end;
	long w;

	if (check_name(h, "backend", backend) < 0 || check_name(h, "server", server) < 0)
		return IAC_ERR;
	w = weight ? strtol(weight, &end, 10) : -1;
	if (!weight || end == weight || (*end && strcmp(end, "%")) || w < 0 || w > 256)
		return iac_err_set("haproxy at '%s': invalid weight '%s' for '%s/%s' (0-256 or N%%)",
				   h->addr, weight ? weight : "", backend, server);
	cmd = iac_xasprintf("set weight %s/%s %s", backend, server, weight);
	if (iac_haproxy_cmd(&ans, h, cmd) < 0)
		goto done;
	e = iac_haproxy_answer_error(ans);
	if (e) {
		iac_err_set("haproxy at '%s': cannot set the weight of '%s/%s' to %s: %s", h->addr,
			    backend, server, weight, e);
		goto done;
	}
	rc = 0;
done:
	free(cmd);
	free(ans);
	free(e);
	return rc;
}

/* ---- show stat ---------------------------------------------------------- */

/* Split one CSV line in place-free fashion: fields are copied into `fields`
 * (quoted fields unquoted). Returns the number of fields. */
static size_t csv_split(iac_strlist *fields, const char *line, size_t len)
{
	iac_buf f = IAC_BUF_INIT;
	size_t i = 0, count = 0;

	for (;;) {
		iac_buf_clear(&f);
		if (i < len && line[i] == '"') {
			i++;
			while (i < len) {
				if (line[i] == '"') {
					if (i + 1 < len && line[i + 1] == '"') {
						iac_buf_putc(&f, '"');
						i += 2;
						continue;
					}
					i++;
					break;
				}
				iac_buf_putc(&f, line[i++]);
			}
			while (i < len && line[i] != ',')
				i++;
		} else {
			while (i < len && line[i] != ',')
				iac_buf_putc(&f, line[i++]);
		}
		iac_strlist_push(fields, iac_buf_cstr(&f));
		count++;
		if (i >= len)
			break;
		i++;   /* the comma */
	}
	iac_buf_free(&f);
	return count;
}

enum {
	C_PXNAME, C_SVNAME, C_STATUS, C_CHECK_STATUS, C_CHECK_DESC, C_ADDR,
	C_QCUR, C_QMAX, C_SCUR, C_SMAX, C_STOT, C_WEIGHT, C_ACT, C_BCK, C_CHKFAIL, C_LASTCHG,
	C_LBTOT, C_HRSP_2XX, C_HRSP_5XX, C_REQ_TOT, C_CHECK_CODE,
	C_QTIME, C_CTIME, C_RTIME, C_TTIME, C_TYPE, C_COUNT
};

static const char *const col_names[C_COUNT] = {
	"pxname", "svname", "status", "check_status", "check_desc", "addr",
	"qcur", "qmax", "scur", "smax", "stot", "weight", "act", "bck", "chkfail", "lastchg",
	"lbtot", "hrsp_2xx", "hrsp_5xx", "req_tot", "check_code",
	"qtime", "ctime", "rtime", "ttime", "type",
};

static void copy_field(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

static long num_field(const char *s)
{
	char *end;
	if (!s || !*s)
		return -1;
	long v = strtol(s, &end, 10);
	return *end ? -1 : v;
}

/* One data row from its fields by column (NULL: the column is absent). */
static void fill_row(iac_haproxy_stat *r, const char *v[C_COUNT])
{
	memset(r, 0, sizeof(*r));
	copy_field(r->pxname, sizeof(r->pxname), v[C_PXNAME]);
	copy_field(r->svname, sizeof(r->svname), v[C_SVNAME]);
	copy_field(r->status, sizeof(r->status), v[C_STATUS]);
	copy_field(r->check_status, sizeof(r->check_status), v[C_CHECK_STATUS]);
	copy_field(r->check_desc, sizeof(r->check_desc), v[C_CHECK_DESC]);
	copy_field(r->addr, sizeof(r->addr), v[C_ADDR]);
	r->qcur = num_field(v[C_QCUR]);
	r->qmax = num_field(v[C_QMAX]);
	r->scur = num_field(v[C_SCUR]);
	r->smax = num_field(v[C_SMAX]);
	r->stot = num_field(v[C_STOT]);
	r->weight = num_field(v[C_WEIGHT]);
	r->act = num_field(v[C_ACT]);
	r->bck = num_field(v[C_BCK]);
	r->chkfail = num_field(v[C_CHKFAIL]);
	r->lastchg = num_field(v[C_LASTCHG]);
	r->lbtot = num_field(v[C_LBTOT]);
	r->hrsp_2xx = num_field(v[C_HRSP_2XX]);
	r->hrsp_5xx = num_field(v[C_HRSP_5XX]);
	r->req_tot = num_field(v[C_REQ_TOT]);
	r->check_code = num_field(v[C_CHECK_CODE]);
	r->qtime = num_field(v[C_QTIME]);
	r->ctime = num_field(v[C_CTIME]);
	r->rtime = num_field(v[C_RTIME]);
	r->ttime = num_field(v[C_TTIME]);
	r->type = num_field(v[C_TYPE]);
}

int iac_haproxy_stat_parse(iac_haproxy_stat **out, size_t *n, const char *csv)
{
	int col[C_COUNT];
	iac_haproxy_stat *rows = NULL;
	size_t nrows = 0, cap = 0;
	int have_header = 0;
	const char *p = csv ? csv : "";

	*out = NULL;
	*n = 0;
	for (int c = 0; c < C_COUNT; c++)
		col[c] = -1;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		iac_strlist f = { 0 };
		if (len && p[len - 1] == '\r')
			len--;
		if (len == 0) {
			/* blank line: end of the answer */
		} else if (p[0] == '#') {
			const char *h = p + 1;
			while (*h == ' ')
				h++;
			size_t nf = csv_split(&f, h, len - (size_t)(h - p));
			for (size_t i = 0; i < nf; i++)
				for (int c = 0; c < C_COUNT; c++)
					if (!strcmp(f.items[i], col_names[c]))
						col[c] = (int)i;
			have_header = 1;
		} else {
			if (!have_header || col[C_PXNAME] < 0 || col[C_SVNAME] < 0) {
				iac_strlist_free(&f);
				free(rows);
				return iac_err_set("cannot parse haproxy 'show stat': no '# pxname,svname,...' "
						   "header before the data");
			}
			size_t nf = csv_split(&f, p, len);
			if (nrows == cap) {
				cap = cap ? cap * 2 : 16;
				rows = iac_xrealloc(rows, cap * sizeof(*rows));
			}
			iac_haproxy_stat *r = &rows[nrows++];
			const char *v[C_COUNT];
			for (int c = 0; c < C_COUNT; c++)
				v[c] = col[c] >= 0 && (size_t)col[c] < nf ? f.items[col[c]] : NULL;
			fill_row(r, v);
		}
		iac_strlist_free(&f);
		if (!nl)
			break;
		p = nl + 1;
	}
	if (!have_header)
		return iac_err_set("cannot parse haproxy 'show stat': no '# pxname,svname,...' header");
	*out = rows;
	*n = nrows;
	return 0;
}

int iac_haproxy_show_stat(iac_haproxy_stat **out, size_t *n, iac_haproxy *h, const char *backend)
{
	char *raw = NULL;
	int rc = IAC_ERR;

	*out = NULL;
	*n = 0;
	if (iac_haproxy_cmd(&raw, h, "show stat") < 0)
		goto done;
	if (iac_haproxy_stat_parse(out, n, raw) < 0) {
		char *e = iac_haproxy_answer_error(raw);
		if (e && !iac_str_starts(raw, "#"))
			iac_err_set("haproxy at '%s': cannot read 'show stat': %s", h->addr, e);
		else
			iac_err_prefix("haproxy at '%s'", h->addr);
		free(e);
		goto done;
	}
	if (backend) {
		size_t k = 0;
		for (size_t i = 0; i < *n; i++)
			if (!strcmp((*out)[i].pxname, backend))
				(*out)[k++] = (*out)[i];
		*n = k;
	}
	rc = 0;
done:
	free(raw);
	return rc;
}

const iac_haproxy_stat *iac_haproxy_stat_find(const iac_haproxy_stat *rows, size_t n,
					      const char *backend, const char *server)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rows[i].pxname, backend) && !strcmp(rows[i].svname, server))
			return &rows[i];
	return NULL;
}

int iac_haproxy_stat_is_up(const iac_haproxy_stat *row)
{
	const char *s = row->status;
	return iac_str_starts(s, "UP") || iac_str_starts(s, "DRAIN") ||
	       iac_str_starts(s, "no check") || iac_str_starts(s, "NOLB");
}

/* ---- server state ------------------------------------------------------- */

int iac_haproxy_servers_state(char **out, iac_haproxy *h, const char *backend)
{
	char *cmd = NULL, *raw = NULL;
	int rc = IAC_ERR;

	*out = NULL;
	if (backend && check_name(h, "backend", backend) < 0)
		return IAC_ERR;
	cmd = backend ? iac_xasprintf("show servers state %s", backend) : iac_xstrdup("show servers state");
	if (iac_haproxy_cmd(&raw, h, cmd) < 0)
		goto done;
	/* a state dump starts with its format version ("1") */
	if (!isdigit((unsigned char)raw[0])) {
		char *e = iac_haproxy_answer_error(raw);
		iac_err_set("haproxy at '%s': cannot read 'show servers state': %s", h->addr,
			    e ? e : "empty answer");
		free(e);
		goto done;
	}
	*out = raw;
	raw = NULL;
	rc = 0;
done:
	free(cmd);
	free(raw);
	return rc;
}

int iac_haproxy_save_state(iac_haproxy *h, const char *path)
{
	char *text = NULL;
	int rc = IAC_ERR;

	if (iac_haproxy_servers_state(&text, h, NULL) < 0)
		goto done;
	if (iac_file_write_atomic(path, text, strlen(text), 0644) < 0) {
		iac_err_prefix("cannot save haproxy server states to '%s'", path);
		goto done;
	}
	rc = 0;
done:
	free(text);
	return rc;
}

/* ---- master CLI --------------------------------------------------------- */

int iac_haproxy_procs_parse(iac_haproxy_procs *out, const char *text)
{
	enum { S_HEAD, S_WORKERS, S_OLD, S_OTHER } sec = S_HEAD;
	const char *p = text ? text : "";

	memset(out, 0, sizeof(*out));
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
		if (line[0] == '#') {
			if (strstr(line, "old workers"))
				sec = S_OLD;
			else if (strstr(line, "workers"))
				sec = S_WORKERS;
			else if (strstr(line, "<PID>"))
				sec = S_HEAD;
			else
				sec = S_OTHER;
		} else if (line[0]) {
			long pid = 0;
			char type[32] = "";
			int reloads = 0;
			if (sscanf(line, "%ld %31s %d", &pid, type, &reloads) >= 2) {
				if (!strcmp(type, "master")) {
					const char *f = strstr(line, "[failed:");
					out->master = (pid_t)pid;
					out->reloads = reloads;
					if (f)
						out->failed = atoi(f + 8);
				} else if (!strcmp(type, "worker")) {
					if (sec == S_OLD)
						out->n_old++;
					else if (out->n_workers < sizeof(out->workers) / sizeof(out->workers[0]))
						out->workers[out->n_workers++] = (pid_t)pid;
				}
			}
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	if (!out->master)
		return iac_err_set("cannot parse haproxy 'show proc': no master line");
	return 0;
}

int iac_haproxy_master_cmd(char **out, iac_haproxy *master, const char *cmd)
{
	*out = NULL;
	if (check_command(master, cmd, 1) < 0)
		return IAC_ERR;
	return exchange(out, master, cmd);
}

int iac_haproxy_show_proc(iac_haproxy_procs *out, iac_haproxy *master)
{
	char *raw = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (exchange(&raw, master, "show proc") < 0)
		return IAC_ERR;
	rc = iac_haproxy_procs_parse(out, raw);
	if (rc < 0) {
		char *e = iac_haproxy_answer_error(raw);
		iac_err_set("haproxy at '%s': cannot read 'show proc' (is this the master CLI, "
			    "'haproxy -W -S %s'?): %s", master->addr, master->addr, e ? e : "empty answer");
		free(e);
	}
	free(raw);
	return rc;
}

int iac_haproxy_worker_pid(pid_t *out, iac_haproxy *h)
{
	char *raw = NULL;
	const char *pid;
	int rc = IAC_ERR;

	*out = 0;
	if (iac_haproxy_cmd(&raw, h, "show info") < 0)
		return IAC_ERR;
	pid = strstr(raw, "\nPid: ");
	if (!pid) {
		char *e = iac_haproxy_answer_error(raw);
		iac_err_set("haproxy at '%s': no 'Pid:' in 'show info': %s", h->addr, e ? e : "empty answer");
		free(e);
		goto done;
	}
	*out = (pid_t)atol(pid + 6);
	rc = 0;
done:
	free(raw);
	return rc;
}

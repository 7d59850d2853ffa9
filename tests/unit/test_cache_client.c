/* Unit tests for the cache protocol clients (providers/cache/client.c):
 * RESP replies, well-formed and hostile, and the INFO / stats parsers,
 * against a canned server on 127.0.0.1 (a thread that writes fixed bytes). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "iac/core/err.h"
#include "providers/cache/client.h"

typedef struct {
	int listener;
	const char *reply;
	size_t len;
} canned;

static void *serve(void *arg)
{
	canned *c = arg;
	int fd = accept(c->listener, NULL, NULL);
	if (fd >= 0) {
		char buf[4096];
		/* read the request first, like a server: writes then never race a close */
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		(void)r;
		ssize_t w = send(fd, c->reply, c->len, MSG_NOSIGNAL);
		(void)w;
		shutdown(fd, SHUT_WR);
		usleep(100 * 1000);
		close(fd);
	}
	return NULL;
}

/* Connects to a server that answers `reply`; the first request is sent by the
 * caller. Returns the port's thread to join. */
static iac_cache_conn *with_reply(pthread_t *t, canned *c, const char *reply, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	c->listener = socket(AF_INET, SOCK_STREAM, 0);
	c->reply = reply;
	c->len = len;
	if (bind(c->listener, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(c->listener, 1) < 0 ||
	    getsockname(c->listener, (struct sockaddr *)&a, &al) < 0)
		return NULL;
	pthread_create(t, NULL, serve, c);
	iac_cache_conn *conn = NULL;
	if (iac_cache_conn_open(&conn, "127.0.0.1", ntohs(a.sin_port), 2000) < 0)
		fprintf(stderr, "connect: %s\n", iac_err_last());
	return conn;
}

static void done(pthread_t t, canned *c, iac_cache_conn *conn)
{
	iac_cache_conn_close(conn);
	pthread_join(t, NULL);
	close(c->listener);
}

/* One call of PING answered by `reply`: the return code, the value in *out. */
static int ask(iac_resp *out, const char *reply)
{
	pthread_t t;
	canned c;
	iac_cache_conn *conn = with_reply(&t, &c, reply, strlen(reply));
	const char *argv[] = { "PING" };
	int rc = conn ? iac_resp_send(conn, 1, argv, NULL) : -1;
	if (rc == 0)
		rc = iac_resp_read(out, conn);
	done(t, &c, conn);
	return rc;
}

static void test_resp_values(void)
{
	iac_resp r;
	CHECK(ask(&r, "+PONG\r\n") == 0 && r.type == IAC_RESP_STRING);
	CHECK_STR(r.str, "PONG");
	iac_resp_clear(&r);
	CHECK(ask(&r, ":-42\r\n") == 0 && r.type == IAC_RESP_INT && r.integer == -42);
	iac_resp_clear(&r);
	CHECK(ask(&r, "$-1\r\n") == 0 && r.type == IAC_RESP_NIL);
	iac_resp_clear(&r);
	CHECK(ask(&r, "$5\r\na\r\nbc\r\n") == 0 && r.type == IAC_RESP_BULK && r.len == 5);
	CHECK(r.str && !memcmp(r.str, "a\r\nbc", 5));
	iac_resp_clear(&r);
	/* SCAN's shape: [cursor, [keys...]] */
	CHECK(ask(&r, "*2\r\n$2\r\n17\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n") == 0);
	CHECK(r.type == IAC_RESP_ARRAY && r.n == 2 && r.elems[1].n == 2);
	CHECK_STR(r.elems[0].str, "17");
	CHECK_STR(r.elems[1].elems[1].str, "b");
	iac_resp_clear(&r);
	CHECK(ask(&r, "-ERR unknown command\r\n") == 0 && r.type == IAC_RESP_ERROR);
	CHECK_STR(r.str, "ERR unknown command");
	iac_resp_clear(&r);
}

static void test_resp_hostile(void)
{
	iac_resp r;
	CHECK(ask(&r, "?what\r\n") < 0);
	CHECK_CONTAINS(iac_err_last(), "not RESP");
	CHECK(ask(&r, "$3\r\nabcde\r\n") < 0);                /* no CRLF after the bulk */
	CHECK_CONTAINS(iac_err_last(), "without its CRLF");
	CHECK(ask(&r, "$99999999999\r\n") < 0);               /* over 64 MiB */
	CHECK(ask(&r, "*99999999\r\n") < 0);                  /* over 1,000,000 elements */
	CHECK(ask(&r, ":12x\r\n") < 0);
	CHECK(ask(&r, "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n") < 0);
	CHECK_CONTAINS(iac_err_last(), "nested deeper");
	CHECK(ask(&r, "*3\r\n:1\r\n") < 0);                    /* closed mid-array */
	CHECK_CONTAINS(iac_err_last(), "closed the connection");
	CHECK(ask(&r, "") < 0);
	CHECK(r.type == 0 && r.elems == NULL && r.str == NULL);   /* cleared on failure */
}

static void test_info_and_stats(void)
{
	static const char info[] = "$158\r\n# Stats\r\nkeyspace_hits:12\r\nkeyspace_misses:5\r\nevicted_keys:3\r\n"
				   "used_memory:1048576\r\nconnected_clients:4\r\n# Keyspace\r\n"
				   "db0:keys=100,expires=0,avg_ttl=0\r\ndb1:keys=5,expires=1\r\n\r\n";
	pthread_t t;
	canned c;
	iac_cache_stats st;
	/* the bulk length must be right: count it */
	char buf[512];
	const char *body = strstr(info, "\r\n") + 2;
	size_t blen = strlen(body) - 2;
	int n = snprintf(buf, sizeof(buf), "$%zu\r\n%s", blen, body);
	iac_cache_conn *conn = with_reply(&t, &c, buf, (size_t)n);
	CHECK(conn && iac_cache_stats_redis(&st, conn) == 0);
	done(t, &c, conn);
	CHECK_INT(st.hits, 12);
	CHECK_INT(st.misses, 5);
	CHECK_INT(st.evictions, 3);
	CHECK_INT(st.memory, 1048576);
	CHECK_INT(st.clients, 4);
	CHECK_INT(st.keys, 105);

	static const char stats[] = "STAT pid 1\r\nSTAT get_hits 7\r\nSTAT get_misses 2\r\nSTAT evictions 0\r\n"
				    "STAT bytes 640\r\nSTAT curr_items 9\r\nSTAT curr_connections 3\r\nEND\r\n";
	conn = with_reply(&t, &c, stats, strlen(stats));
	CHECK(conn && iac_cache_stats_memcached(&st, conn) == 0);
	done(t, &c, conn);
	CHECK_INT(st.hits, 7);
	CHECK_INT(st.misses, 2);
	CHECK_INT(st.keys, 9);
	CHECK_INT(st.memory, 640);
	CHECK_INT(st.clients, 3);

	static const char bad[] = "STAT get_hits 7\r\nSERVER_ERROR out of memory\r\n";
	conn = with_reply(&t, &c, bad, strlen(bad));
	CHECK(conn && iac_cache_stats_memcached(&st, conn) < 0);
	CHECK_CONTAINS(iac_err_last(), "SERVER_ERROR");
	done(t, &c, conn);
}

static const iac_test tests[] = {
	TEST(test_resp_values),
	TEST(test_resp_hostile),
	TEST(test_info_and_stats),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}

/* Unit tests for iac/deploy/haproxy_cfg: blue/green config rendering and
 * the validation of its JSON description (haproxy -c: tests/haproxy). */
#include "harness.h"

#include <jansson.h>
#include <stdlib.h>

#include "iac/core/err.h"
#include "iac/deploy/haproxy_cfg.h"

static const char *base_desc =
	"{\"frontend\": {\"name\": \"web\", \"bind\": \"127.0.0.1:18080\"},"
	" \"backend\": {\"name\": \"app\"},"
	" \"health\": {\"path\": \"/health\", \"expect\": 200, \"interval\": \"500ms\", \"rise\": 2, \"fall\": 3},"
	" \"servers\": ["
	"   {\"name\": \"blue1\", \"address\": \"127.0.0.1\", \"port\": 8001, \"colour\": \"blue\"},"
	"   {\"name\": \"blue2\", \"address\": \"127.0.0.1\", \"port\": 8003, \"colour\": \"blue\"},"
	"   {\"name\": \"green1\", \"address\": \"127.0.0.1\", \"port\": 8002, \"colour\": \"green\"},"
	"   {\"name\": \"green2\", \"address\": \"127.0.0.1\", \"port\": \"8004\", \"color\": \"green\"}],"
	" \"live\": \"blue\","
	" \"stats_socket\": \"/run/haproxy/api.sock\","
	" \"state_file\": \"/var/lib/haproxy/server-state\"}";

static json_t *desc(void)
{
	json_error_t e;
	json_t *d = json_loads(base_desc, 0, &e);
	if (!d) {
		fprintf(stderr, "bad test JSON: %s\n", e.text);
		exit(1);
	}
	return d;
}

static void test_render_blue_live(void)
{
	json_t *d = desc();
	char *cfg = NULL;
	CHECK_INT(iac_haproxy_cfg_render(&cfg, d), 0);
	CHECK_CONTAINS(cfg, "global\n\tmaster-worker\n");
	CHECK_CONTAINS(cfg, "\tstats socket /run/haproxy/api.sock level admin expose-fd listeners mode 600\n");
	CHECK_CONTAINS(cfg, "\tserver-state-file /var/lib/haproxy/server-state\n");
	CHECK_CONTAINS(cfg, "\tload-server-state-from-file global\n");
	CHECK_CONTAINS(cfg, "\toption idle-close-on-response\n");
	CHECK_CONTAINS(cfg, "\tmode http\n");
	CHECK_CONTAINS(cfg, "frontend web\n\tbind 127.0.0.1:18080\n\tdefault_backend app\n");
	CHECK_CONTAINS(cfg, "backend app\n\tbalance roundrobin\n");
	CHECK_CONTAINS(cfg, "\toption httpchk GET /health\n");
	CHECK_CONTAINS(cfg, "\thttp-check expect status 200\n");
	CHECK_CONTAINS(cfg, "\tdefault-server check inter 500ms fastinter 100ms rise 2 fall 3\n");
	CHECK_CONTAINS(cfg, "\tserver blue1 127.0.0.1:8001  # colour blue (live)\n");
	CHECK_CONTAINS(cfg, "\tserver blue2 127.0.0.1:8003  # colour blue (live)\n");
	CHECK_CONTAINS(cfg, "\tserver green1 127.0.0.1:8002 disabled  # colour green (standby)\n");
	/* "color" and a port given as a string are accepted */
	CHECK_CONTAINS(cfg, "\tserver green2 127.0.0.1:8004 disabled  # colour green (standby)\n");
	CHECK(strstr(cfg, "pidfile") == NULL);
	free(cfg);
	json_decref(d);
}

static void test_render_green_live_and_options(void)
{
	json_t *d = desc();
	char *cfg = NULL;
	json_object_set_new(d, "live", json_string("green"));
	json_object_set_new(d, "stats_socket", json_string("ipv4@127.0.0.1:9999"));
	json_object_set_new(d, "pidfile", json_string("/run/haproxy.pid"));
	json_object_set_new(d, "maxconn", json_integer(4096));
	json_object_set_new(d, "hard_stop_after", json_string("30s"));
	json_object_set_new(json_object_get(d, "frontend"), "bind",
			    json_pack("[s,s]", "127.0.0.1:18080", "127.0.0.1:18081"));
	json_object_set_new(d, "timeouts", json_pack("{s:s,s:i}", "connect", "1s", "server", 60));
	CHECK_INT(iac_haproxy_cfg_render(&cfg, d), 0);
	CHECK_CONTAINS(cfg, "\tserver blue1 127.0.0.1:8001 disabled  # colour blue (standby)\n");
	CHECK_CONTAINS(cfg, "\tserver green1 127.0.0.1:8002  # colour green (live)\n");
	/* a TCP socket has no file mode */
	CHECK_CONTAINS(cfg, "\tstats socket ipv4@127.0.0.1:9999 level admin expose-fd listeners\n");
	CHECK_CONTAINS(cfg, "\tpidfile /run/haproxy.pid\n");
	CHECK_CONTAINS(cfg, "\tmaxconn 4096\n");
	CHECK_CONTAINS(cfg, "\thard-stop-after 30000ms\n");
	CHECK_CONTAINS(cfg, "\tbind 127.0.0.1:18080\n\tbind 127.0.0.1:18081\n");
	CHECK_CONTAINS(cfg, "\ttimeout connect 1000ms\n");
	CHECK_CONTAINS(cfg, "\ttimeout server 60000ms\n");
	free(cfg);
	json_decref(d);
}

static void test_render_is_deterministic(void)
{
	json_t *d = desc();
	char *a = NULL, *b = NULL;
	CHECK_INT(iac_haproxy_cfg_render(&a, d), 0);
	CHECK_INT(iac_haproxy_cfg_render(&b, d), 0);
	CHECK_STR(a, b);
	free(a);
	free(b);
	json_decref(d);
}

/* Apply a JSON patch to the base description, render, expect an error
 * mentioning `want`. */
static void expect_error(const char *key, json_t *value, const char *want)
{
	json_t *d = desc();
	char *cfg = NULL;
	if (value)
		json_object_set_new(d, key, value);
	else
		json_object_del(d, key);
	if (iac_haproxy_cfg_render(&cfg, d) == 0) {
		fprintf(stderr, "rendering with %s changed did not fail\n", key);
		iac_test_failures++;
		free(cfg);
	} else {
		CHECK_CONTAINS(iac_err_last(), want);
	}
	json_decref(d);
}

static void test_render_errors(void)
{
	expect_error("servers", NULL, "'servers' must be a non-empty list");
	expect_error("servers", json_array(), "'servers' must be a non-empty list");
	expect_error("frontend", NULL, "'frontend' is missing");
	expect_error("live", NULL, "'live' is missing");
	expect_error("live", json_string("red"), "live colour 'red' has no servers");
	expect_error("serverz", json_array(), "unknown key 'serverz'");
	expect_error("frontend", json_pack("{s:s}", "name", "web"), "'frontend.bind' is missing");
	expect_error("frontend", json_pack("{s:s}", "bind", "127.0.0.1:80 ssl crt /x"), "'frontend.bind'");
	expect_error("frontend", json_pack("{s:s,s:s}", "bind", ":80", "nmae", "x"), "unknown key 'frontend.nmae'");
	expect_error("backend", json_pack("{s:s}", "name", "app web"), "'backend.name' is 'app web'");
	expect_error("backend", json_pack("{s:s}", "balance", "weird"), "'backend.balance'");
	expect_error("backend", json_pack("{s:s}", "name", "web"), "both named 'web'");
	expect_error("health", json_pack("{s:s}", "path", "health"), "must start with '/'");
	expect_error("health", json_pack("{s:s}", "path", "/h x"), "one word");
	expect_error("health", json_pack("{s:i}", "expect", 999), "'health.expect' must be an integer from 100 to 599");
	expect_error("health", json_pack("{s:s}", "interval", "fast"), "'health.interval'");
	expect_error("stats_socket", json_string("/run/a sock"), "'stats_socket'");
	expect_error("state_file", json_integer(3), "'state_file' must be a string");
	expect_error("servers", json_pack("[{s:s,s:s,s:i,s:s}]", "name", "b1", "address", "127.0.0.1",
					  "port", 70000, "colour", "blue"), "'servers[0].port' must be an integer from 1 to 65535");
	expect_error("servers", json_pack("[{s:s,s:s,s:s}]", "name", "b1", "address", "127.0.0.1",
					  "colour", "blue"), "'servers[0].port' is missing");
	expect_error("servers", json_pack("[{s:s,s:s,s:i}]", "name", "b1", "address", "127.0.0.1",
					  "port", 80), "'servers[0].colour' is missing");
	expect_error("servers", json_pack("[{s:s,s:s,s:i,s:s},{s:s,s:s,s:i,s:s}]",
					  "name", "b1", "address", "127.0.0.1", "port", 80, "colour", "blue",
					  "name", "b1", "address", "127.0.0.1", "port", 81, "colour", "blue"),
		     "server name 'b1' is used twice");
	expect_error("servers", json_pack("[{s:s,s:s,s:i,s:s}]", "name", "b1\nfrontend evil", "address",
					  "127.0.0.1", "port", 80, "colour", "blue"), "'servers[0].name'");
	expect_error("servers", json_pack("[{s:s,s:s,s:i,s:s}]", "name", "b1", "address",
					  "127.0.0.1 backup", "port", 80, "colour", "blue"), "'servers[0].address'");
	expect_error("servers", json_pack("[{s:s,s:s,s:i,s:s,s:i}]", "name", "b1", "address", "127.0.0.1",
					  "port", 80, "colour", "blue", "wieght", 3), "unknown key 'servers[0].wieght'");

	char *cfg = NULL;
	json_t *arr = json_array();
	CHECK_INT(iac_haproxy_cfg_render(&cfg, arr), -1);
	CHECK_CONTAINS(iac_err_last(), "must be a JSON object");
	json_decref(arr);
}

static void test_servers_of_colour(void)
{
	json_t *d = desc();
	const char *names[4];
	CHECK_INT(iac_haproxy_cfg_servers(names, 4, d, "green"), 2);
	CHECK_STR(names[0], "green1");
	CHECK_STR(names[1], "green2");
	CHECK_INT(iac_haproxy_cfg_servers(names, 1, d, "blue"), 2);
	CHECK_STR(names[0], "blue1");
	CHECK_INT(iac_haproxy_cfg_servers(names, 4, d, "red"), 0);
	json_decref(d);
}

/* The two halves: parse fills in the documented defaults and keeps what
 * format needs (a "weight" given, even null, is written out). */
static void test_parse_defaults(void)
{
	json_t *d = desc();
	iac_haproxy_cfg c;
	json_object_set_new(json_array_get(json_object_get(d, "servers"), 1), "weight", json_null());
	CHECK_INT(iac_haproxy_cfg_parse(&c, d), 0);
	CHECK_STR(c.frontend, "web");
	CHECK_STR(c.balance, "roundrobin");
	CHECK_INT(c.n_binds, 1);
	CHECK_STR(c.binds[0], "127.0.0.1:18080");
	CHECK_INT(c.inter_ms, 500);
	CHECK_INT(c.fastinter_ms, 100);
	CHECK_INT(c.fall, 3);
	CHECK_INT(c.check_timeout_ms, 1000);
	CHECK_INT(c.hard_stop_after_ms, 60000);
	CHECK_INT(c.connect_ms, 2000);
	CHECK_INT(c.keep_alive_ms, 10000);
	CHECK_INT(c.maxconn, 0);
	CHECK_STR(c.pidfile, "");
	CHECK_INT(c.n_servers, 4);
	CHECK_INT(c.servers[0].weight, -1);
	CHECK_INT(c.servers[1].weight, 1);
	CHECK_INT(c.servers[3].port, 8004);
	CHECK_STR(c.servers[3].colour, "green");
	char *text = iac_haproxy_cfg_format(&c);
	CHECK_CONTAINS(text, "\tserver blue2 127.0.0.1:8003 weight 1  # colour blue (live)\n");
	free(text);
	iac_haproxy_cfg_free(&c);
	iac_haproxy_cfg_free(&c);   /* safe twice */

	/* a failed parse leaves nothing to free */
	json_object_set_new(d, "live", json_string("red"));
	CHECK_INT(iac_haproxy_cfg_parse(&c, d), -1);
	CHECK(c.servers == NULL && c.binds == NULL);
	json_decref(d);
}

static void test_format_is_pure(void)
{
	const char *binds[] = { "127.0.0.1:80", "[::1]:80" };
	iac_haproxy_cfg_server srv[] = {
		{ .name = "g1", .address = "10.0.0.2", .port = 8002, .colour = "green", .weight = 0 },
		{ .name = "b1", .address = "10.0.0.1", .port = 8001, .colour = "blue", .weight = -1 },
	};
	iac_haproxy_cfg c = {
		.frontend = "fe", .backend = "be", .balance = "leastconn", .binds = binds, .n_binds = 2,
		.health_path = "/up", .health_expect = 204, .inter_ms = 1000, .fastinter_ms = 50, .rise = 1,
		.fall = 2, .check_timeout_ms = 300, .live = "green", .stats_socket = "ipv4@127.0.0.1:9999",
		.state_file = "/s", .pidfile = "/p", .nbthread = 2, .hard_stop_after_ms = 5000,
		.connect_ms = 1, .client_ms = 2, .server_ms = 3, .keep_alive_ms = 4, .queue_ms = 5,
		.servers = srv, .n_servers = 2,
	};
	char *text = iac_haproxy_cfg_format(&c);
	CHECK_CONTAINS(text, "live colour 'green'");
	CHECK_CONTAINS(text, "\tstats socket ipv4@127.0.0.1:9999 level admin expose-fd listeners\n"
		       "\tstats timeout 30s\n\tserver-state-file /s\n\thard-stop-after 5000ms\n"
		       "\tpidfile /p\n\tnbthread 2\n\ndefaults\n");
	CHECK(strstr(text, "maxconn") == NULL);
	CHECK_CONTAINS(text, "\ttimeout connect 1ms\n\ttimeout client 2ms\n\ttimeout server 3ms\n"
		       "\ttimeout http-keep-alive 4ms\n\ttimeout http-request 10s\n\ttimeout queue 5ms\n"
		       "\ttimeout check 300ms\n");
	CHECK_CONTAINS(text, "frontend fe\n\tbind 127.0.0.1:80\n\tbind [::1]:80\n\tdefault_backend be\n");
	CHECK_CONTAINS(text, "backend be\n\tbalance leastconn\n\toption httpchk GET /up\n"
		       "\thttp-check expect status 204\n"
		       "\tdefault-server check inter 1000ms fastinter 50ms rise 1 fall 2\n"
		       "\tserver g1 10.0.0.2:8002 weight 0  # colour green (live)\n"
		       "\tserver b1 10.0.0.1:8001 disabled  # colour blue (standby)\n");
	free(text);
}

static const iac_test tests[] = {
	TEST(test_render_blue_live),
	TEST(test_render_green_live_and_options),
	TEST(test_render_is_deterministic),
	TEST(test_render_errors),
	TEST(test_servers_of_colour),
	TEST(test_parse_defaults),
	TEST(test_format_is_pure),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}

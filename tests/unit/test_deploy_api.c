/* Unit tests for iac/deploy/haproxy_api: answer splitting, error mapping,
 * show stat / show proc parsing, addresses, and the wire exchange against a
 * fake runtime API on a unix socket (real HAProxy: tests/haproxy). */
#include "harness.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/deploy/cutover.h"
#include "iac/deploy/haproxy_api.h"

/* ---- pure parsing ---- */

static void test_split_answers(void)
{
	iac_strlist a = { 0 };
	/* set ok, set failed, show servers state, set weight ok */
	size_t n = iac_haproxy_split_answers(&a, "\nNo such server.\n\n1\n# be_id be_name\n3 app 1 blue1\n\n\n");
	CHECK_INT(n, 4);
	CHECK_STR(a.items[0], "");
	CHECK_STR(a.items[1], "No such server.");
	CHECK_STR(a.items[2], "1\n# be_id be_name\n3 app 1 blue1");
	CHECK_STR(a.items[3], "");
	iac_strlist_free(&a);

	/* the master closes after "reload" without the empty line */
	n = iac_haproxy_split_answers(&a, "partial answer");
	CHECK_INT(n, 1);
	CHECK_STR(a.items[0], "partial answer");
	iac_strlist_free(&a);

	CHECK_INT(iac_haproxy_split_answers(&a, ""), 0);
	iac_strlist_free(&a);
}

static void test_answer_error(void)
{
	char *e;
	CHECK(iac_haproxy_answer_error("") == NULL);
	CHECK(iac_haproxy_answer_error("\n") == NULL);
	CHECK(iac_haproxy_answer_error(NULL) == NULL);
	e = iac_haproxy_answer_error("No such server.\n");
	CHECK_STR(e, "No such server.");
	free(e);
	e = iac_haproxy_answer_error("Require 'backend/server'.\nsecond line\n");
	CHECK_STR(e, "Require 'backend/server'. second line");
	free(e);
	e = iac_haproxy_answer_error("Permission denied\n");
	CHECK_CONTAINS(e, "Permission denied");
	CHECK_CONTAINS(e, "level admin");
	free(e);
	e = iac_haproxy_answer_error("Unknown command, but maybe one of the following ones is a better match:\n  help\n");
	CHECK_CONTAINS(e, "Unknown command");
	CHECK_CONTAINS(e, "'@' target");
	free(e);
}

/* Trimmed from HAProxy 2.6.12's `show stat` (the real header has 100+
 * columns; parsing goes by name, so the subset and order do not matter). */
static const char *stat_csv =
	"# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
	"status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,"
	"type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,"
	"hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,"
	"comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,"
	"agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,"
	"agent_fall,agent_health,addr,cookie,mode,algo,\n"
	"fe,FRONTEND,,,0,1,9979,1,82,127,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,1,0,1,,,,0,1,0,0,0,0,,1,1,1,,,"
	"0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,\n"
	"app,blue1,0,0,3,7,,120,82,127,,0,,0,0,0,0,UP,50,1,0,0,0,2,0,,1,3,1,,118,,2,1,,1,L7OK,200,0,0,"
	"115,0,0,5,0,,,,120,0,0,,,,,1,,,0,0,4,4,,,,Layer7 check passed,,2,3,4,,,,127.0.0.1:28001,,http,,\n"
	"app,green1,1,2,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,3,1,0,0,,1,3,2,,0,,2,0,,0,L7STS,500,1,0,0,0,0,"
	"0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,\"Layer7 wrong status, code 500\",,2,3,0,,,,127.0.0.1:28002,,http,,\n"
	"app,BACKEND,0,0,3,7,998,120,82,127,0,0,,0,0,0,0,UP,51,2,0,,0,2,0,,1,3,0,,1,,1,1,,1,,,,0,1,0,0,0,"
	"0,,,,1,0,0,0,0,0,0,1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,\n"
	"\n";

static void test_stat_parse(void)
{
	iac_haproxy_stat *rows = NULL;
	size_t n = 0;
	CHECK_INT(iac_haproxy_stat_parse(&rows, &n, stat_csv), 0);
	CHECK_INT(n, 4);
	const iac_haproxy_stat *b = iac_haproxy_stat_find(rows, n, "app", "blue1");
	const iac_haproxy_stat *g = iac_haproxy_stat_find(rows, n, "app", "green1");
	CHECK(b && g);
	if (b && g) {
		CHECK_STR(b->status, "UP");
		CHECK_INT(b->scur, 3);
		CHECK_INT(b->smax, 7);
		CHECK_INT(b->stot, 120);
		CHECK_INT(b->weight, 50);
		CHECK_INT(b->lbtot, 118);
		CHECK_INT(b->hrsp_2xx, 115);
		CHECK_INT(b->hrsp_5xx, 5);
		CHECK_INT(b->rtime, 4);
		CHECK_INT(b->type, 2);
		CHECK_STR(b->check_status, "L7OK");
		CHECK_STR(b->addr, "127.0.0.1:28001");
		CHECK(iac_haproxy_stat_is_up(b));
		CHECK_STR(g->status, "DOWN");
		CHECK_INT(g->qcur, 1);
		CHECK_INT(g->check_code, 500);
		/* a quoted field with a comma stays one field */
		CHECK_STR(g->check_desc, "Layer7 wrong status, code 500");
		CHECK_STR(g->addr, "127.0.0.1:28002");
		CHECK(!iac_haproxy_stat_is_up(g));
	}
	const iac_haproxy_stat *fe = iac_haproxy_stat_find(rows, n, "fe", "FRONTEND");
	CHECK(fe && fe->qcur == -1 && fe->scur == 0);
	CHECK(iac_haproxy_stat_find(rows, n, "app", "nope") == NULL);
	free(rows);

	/* columns found by name: a different order parses the same */
	CHECK_INT(iac_haproxy_stat_parse(&rows, &n, "# svname,status,pxname,scur\nblue1,DRAIN,app,2\n"), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_STR(rows[0].pxname, "app");
		CHECK_STR(rows[0].status, "DRAIN");
		CHECK_INT(rows[0].scur, 2);
		CHECK_INT(rows[0].qcur, -1);
		CHECK(iac_haproxy_stat_is_up(&rows[0]));
	}
	free(rows);

	CHECK_INT(iac_haproxy_stat_parse(&rows, &n, "Permission denied\n"), -1);
	CHECK_CONTAINS(iac_err_last(), "header");
	CHECK_INT(iac_haproxy_stat_parse(&rows, &n, ""), -1);
}

static void test_status_is_up(void)
{
	iac_haproxy_stat r = { 0 };
	const char *up[] = { "UP", "UP 1/2", "DRAIN", "no check", "NOLB" };
	const char *down[] = { "DOWN", "DOWN 1/2", "MAINT", "MAINT (resolution)", "" };
	for (size_t i = 0; i < 5; i++) {
		snprintf(r.status, sizeof(r.status), "%s", up[i]);
		CHECK(iac_haproxy_stat_is_up(&r));
		snprintf(r.status, sizeof(r.status), "%s", down[i]);
		CHECK(!iac_haproxy_stat_is_up(&r));
	}
}

static void test_procs_parse(void)
{
	iac_haproxy_procs p;
	const char *text =
		"#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
		"6824            master          3 [failed: 1]   0d00h10m26s     2.6.12-1+deb12u4\n"
		"# workers\n"
		"13416           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n"
		"# old workers\n"
		"6828            worker          1               0d00h10m26s     2.6.12-1+deb12u4\n"
		"# programs\n\n";
	CHECK_INT(iac_haproxy_procs_parse(&p, text), 0);
	CHECK_INT(p.master, 6824);
	CHECK_INT(p.reloads, 3);
	CHECK_INT(p.failed, 1);
	CHECK_INT(p.n_workers, 1);
	CHECK_INT(p.workers[0], 13416);
	CHECK_INT(p.n_old, 1);
	CHECK_INT(iac_haproxy_procs_parse(&p, "Unknown command.\n"), -1);
}

static void test_addresses(void)
{
	iac_haproxy *h = NULL;
	const char *good[] = { "/run/haproxy.sock", "unix@/run/x.sock", "./rel.sock", "rel.sock",
			       "ipv4@127.0.0.1:9999", "127.0.0.1:9999", "ipv6@[::1]:9999", "[::1]:80",
			       "ipv6@::1:80" };
	const char *bad[] = { "", "ipv4@127.0.0.1", "ipv4@127.0.0.1:0", "ipv4@127.0.0.1:70000",
			      "ipv4@300.1.1.1:80", "ipv4@127.0.0.1:80x", "ipv6@[::1]80" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK_INT(iac_haproxy_open(&h, good[i], 0), 0);
		if (h)
			CHECK_STR(iac_haproxy_addr(h), good[i]);
		iac_haproxy_free(h);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = NULL;
		if (iac_haproxy_open(&h, bad[i], 0) == 0) {
			fprintf(stderr, "accepted bad address '%s'\n", bad[i]);
			iac_test_failures++;
		}
		iac_haproxy_free(h);
	}
	enum iac_haproxy_admin st;
	CHECK_INT(iac_haproxy_admin_parse(&st, "drain"), 0);
	CHECK_INT(st, IAC_HAPROXY_DRAIN);
	CHECK_STR(iac_haproxy_admin_name(IAC_HAPROXY_MAINT), "maint");
	CHECK_INT(iac_haproxy_admin_parse(&st, "up"), -1);
}

/* ---- a fake runtime API: answers canned text, records what it got ---- */

typedef struct {
	char path[200];
	int fd;
	int silent;            /* never answer (timeout test) */
	int connections;       /* how many to serve before exiting */
	char got[4096];        /* the last request line(s) */
	const char *(*answer)(const char *req);
	pthread_t th;
} fake;

static void *fake_main(void *arg)
{
	fake *f = arg;
	for (int i = 0; i < f->connections; i++) {
		int c = accept(f->fd, NULL, NULL);
		if (c < 0)
			break;
		size_t len = 0;
		ssize_t r;
		/* HAProxy's master CLI waits for the half-close; the client sends it */
		while (len < sizeof(f->got) - 1 && (r = read(c, f->got + len, sizeof(f->got) - 1 - len)) > 0)
			len += (size_t)r;
		f->got[len] = '\0';
		if (f->silent) {
			sleep(1);
		} else {
			const char *a = f->answer(f->got);
			if (write(c, a, strlen(a)) < 0)
				perror("fake write");
		}
		close(c);
	}
	return NULL;
}

static void fake_start(fake *f, const char *name, int connections, const char *(*answer)(const char *))
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	snprintf(f->path, sizeof(f->path), "%s/%s", iac_test_tmpdir(), name);
	if (strlen(f->path) >= sizeof(un.sun_path)) {
		fprintf(stderr, "socket path too long: %s\n", f->path);
		exit(1);
	}
	memcpy(un.sun_path, f->path, strlen(f->path) + 1);
	f->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	unlink(f->path);
	if (bind(f->fd, (struct sockaddr *)&un, sizeof(un)) < 0 || listen(f->fd, 8) < 0) {
		perror("fake bind");
		exit(1);
	}
	f->connections = connections;
	f->answer = answer;
	pthread_create(&f->th, NULL, fake_main, f);
}

static void fake_stop(fake *f)
{
	pthread_join(f->th, NULL);
	close(f->fd);
	unlink(f->path);
}

static const char *answer_set(const char *req)
{
	/* "set server app/blue1 state drain; set server app/green state ready\n" */
	static char buf[256];
	buf[0] = '\0';
	for (const char *p = req; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (memmem(p, len, "/green ", 7))
			strcat(buf, "No such server.\n\n");
		else
			strcat(buf, "\n");
	}
	return buf;
}

static void test_set_state_errors(void)
{
	fake f = { 0 };
	iac_haproxy *h = NULL;
	const char *ok[] = { "blue1", "blue2" };
	const char *bad[] = { "blue1", "green" };

	fake_start(&f, "api.sock", 2, answer_set);
	CHECK_INT(iac_haproxy_open(&h, f.path, 1000), 0);
	CHECK_INT(iac_haproxy_set_state(h, "app", ok, 2, IAC_HAPROXY_DRAIN), 0);
	CHECK_STR(f.got, "set server app/blue1 state drain; set server app/blue2 state drain\n");
	CHECK_INT(iac_haproxy_set_state(h, "app", bad, 2, IAC_HAPROXY_READY), -1);
	char want[400];
	snprintf(want, sizeof(want), "haproxy at '%s': cannot set 'app/green' to ready: No such server.", f.path);
	CHECK_STR(iac_err_last(), want);
	fake_stop(&f);

	/* names are checked before anything is sent: no command injection */
	const char *evil[] = { "blue1 state ready; shutdown sessions server app/blue2" };
	CHECK_INT(iac_haproxy_set_state(h, "app", evil, 1, IAC_HAPROXY_READY), -1);
	CHECK_CONTAINS(iac_err_last(), "invalid server name");
	CHECK_INT(iac_haproxy_set_weight(h, "app", "blue1", "300"), -1);
	CHECK_CONTAINS(iac_err_last(), "invalid weight");
	const char *cmds[] = { "show info", "shutdown; x" };
	iac_strlist ans;
	CHECK_INT(iac_haproxy_batch(&ans, h, cmds, 2), -1);
	CHECK_CONTAINS(iac_err_last(), "contains ';'");
	iac_haproxy_free(h);
}

static const char *answer_echo(const char *req)
{
	static char buf[4200];
	snprintf(buf, sizeof(buf), "%s\n", req);
	return buf;
}

static const char *answer_two(const char *req)
{
	(void)req;
	return "Name: HAProxy\n\n# pxname,svname\n\n";
}

static void test_master_target(void)
{
	fake f = { 0 };
	iac_haproxy *h = NULL;
	iac_strlist ans = { 0 };
	const char *cmds[] = { "show info", "show stat" };

	fake_start(&f, "master.sock", 1, answer_two);
	CHECK_INT(iac_haproxy_open(&h, f.path, 1000), 0);
	iac_haproxy_set_target(h, "@1");
	CHECK_INT(iac_haproxy_batch(&ans, h, cmds, 2), 0);
	CHECK_STR(f.got, "@1 show info; @1 show stat\n");
	CHECK_INT(ans.n, 2);
	if (ans.n == 2) {
		CHECK_STR(ans.items[0], "Name: HAProxy");
		CHECK_STR(ans.items[1], "# pxname,svname");
	}
	iac_strlist_free(&ans);
	fake_stop(&f);
	iac_haproxy_free(h);
}

static void test_timeouts_and_connect(void)
{
	fake f = { 0 };
	iac_haproxy *h = NULL;
	char *out = NULL;

	f.silent = 1;
	fake_start(&f, "silent.sock", 1, answer_echo);
	CHECK_INT(iac_haproxy_open(&h, f.path, 200), 0);
	double t0 = iac_now_ms();
	CHECK_INT(iac_haproxy_cmd(&out, h, "show info"), -1);
	double took = iac_now_ms() - t0;
	CHECK(took >= 190 && took < 3000);
	CHECK_CONTAINS(iac_err_last(), "no answer within 200 ms");
	fake_stop(&f);
	iac_haproxy_free(h);

	char path[300];
	snprintf(path, sizeof(path), "%s/nobody.sock", iac_test_tmpdir());
	CHECK_INT(iac_haproxy_open(&h, path, 200), 0);
	CHECK_INT(iac_haproxy_cmd(&out, h, "show info"), -1);
	CHECK_CONTAINS(iac_err_last(), "cannot connect");
	CHECK_CONTAINS(iac_err_last(), "is haproxy running");
	iac_haproxy_free(h);

	/* TCP: nothing listens on port 1 of 127.0.0.1 */
	CHECK_INT(iac_haproxy_open(&h, "ipv4@127.0.0.1:1", 200), 0);
	CHECK_INT(iac_haproxy_cmd(&out, h, "show info"), -1);
	CHECK_CONTAINS(iac_err_last(), "haproxy at 'ipv4@127.0.0.1:1': cannot connect");
	iac_haproxy_free(h);
}

static const char *answer_stat(const char *req)
{
	if (!strncmp(req, "show stat", 9))
		return stat_csv;
	if (!strncmp(req, "show servers state", 18))
		return "1\n# be_id be_name srv_id srv_name\n3 app 1 blue1\n\n";
	return "Unknown command.\n\n";
}

static void test_show_stat_and_state(void)
{
	fake f = { 0 };
	iac_haproxy *h = NULL;
	iac_haproxy_stat *rows = NULL;
	size_t n = 0;
	char *text = NULL, path[300];

	fake_start(&f, "stat.sock", 3, answer_stat);
	CHECK_INT(iac_haproxy_open(&h, f.path, 1000), 0);
	CHECK_INT(iac_haproxy_show_stat(&rows, &n, h, "app"), 0);
	CHECK_INT(n, 3);
	free(rows);
	snprintf(path, sizeof(path), "%s/state", iac_test_tmpdir());
	CHECK_INT(iac_haproxy_save_state(h, path), 0);
	size_t len;
	CHECK_INT(iac_file_read(&text, &len, path), 0);
	CHECK_CONTAINS(text, "3 app 1 blue1");
	free(text);
	/* an answer that is not a state dump is an error, not an empty file */
	CHECK_INT(iac_haproxy_cmd(&text, h, "show nothing"), 0);
	CHECK_STR(text, "Unknown command.\n\n");
	free(text);
	fake_stop(&f);
	iac_haproxy_free(h);
}

/* ---- cutover against a simulated backend: which runtime commands, in
 * which order (the switch's contract, cutover.h); timing: tests/haproxy ---- */

typedef struct {
	const char *name;
	char admin[16];         /* "ready", "drain", "maint" */
	int healthy;            /* its health check passes */
	long scur;              /* sessions in flight */
} sim_server;

static sim_server sim[4];
static char sim_log[8192];      /* commands received, " | " between connections */
static int sim_ignore_ready;    /* someone else holds the servers: ready is ignored */
static int sim_down_on_drain;   /* the ready servers fail their checks at a drain */
static int sim_heal_after;      /* > 0: failing servers pass again after that many `show stat` */
static int sim_rising;          /* failing servers show "DOWN 1/2" (on their way up) */

static void sim_reset(long from_sessions)
{
	static const char *const names[] = { "blue1", "blue2", "green1", "green2" };
	for (int i = 0; i < 4; i++) {
		sim[i].name = names[i];
		snprintf(sim[i].admin, sizeof(sim[i].admin), "%s", i < 2 ? "ready" : "maint");
		sim[i].healthy = 1;
		sim[i].scur = i < 2 ? from_sessions : 0;
	}
	sim_log[0] = '\0';
	sim_ignore_ready = sim_down_on_drain = sim_heal_after = sim_rising = 0;
}

static void sim_put(char *buf, size_t cap, const char *text)
{
	size_t len = strlen(buf);
	snprintf(buf + len, cap - len, "%s", text);
}

static void sim_command(char *buf, size_t cap, const char *cmd)
{
	char srv[64], st[16], row[256];
	if (sscanf(cmd, "set server app/%63s state %15s", srv, st) == 2) {
		sim_server *s = NULL;
		for (int i = 0; i < 4; i++)
			if (!strcmp(sim[i].name, srv))
				s = &sim[i];
		if (!s) {
			sim_put(buf, cap, "No such server.\n\n");
			return;
		}
		if (!(sim_ignore_ready && !strcmp(st, "ready")))
			snprintf(s->admin, sizeof(s->admin), "%s", st);
		for (int i = 0; sim_down_on_drain && !strcmp(st, "drain") && i < 4; i++)
			if (!strcmp(sim[i].admin, "ready"))
				sim[i].healthy = 0;
		sim_put(buf, cap, "\n");
	} else if (!strcmp(cmd, "show stat")) {
		if (sim_heal_after > 0 && --sim_heal_after == 0)
			for (int i = 0; i < 4; i++)
				sim[i].healthy = 1;
		sim_put(buf, cap, "# pxname,svname,qcur,scur,status,check_status\n");
		for (int i = 0; i < 4; i++) {
			const sim_server *s = &sim[i];
			const char *status = !strcmp(s->admin, "maint") ? "MAINT"
					     : !s->healthy ? (sim_rising ? "DOWN 1/2" : "DOWN")
					     : !strcmp(s->admin, "drain") ? "DRAIN" : "UP";
			snprintf(row, sizeof(row), "app,%s,0,%ld,%s,%s\n", s->name, s->scur, status,
				 s->healthy ? "L7OK" : "L7STS");
			sim_put(buf, cap, row);
		}
		sim_put(buf, cap, "\n");
	} else if (!strcmp(cmd, "show servers state")) {
		sim_put(buf, cap, "1\n# be_id be_name srv_id srv_name\n3 app 1 blue1\n\n");
	} else {
		sim_put(buf, cap, "Unknown command.\n\n");
	}
}

static const char *answer_sim(const char *req)
{
	static char buf[8192];
	char line[2048], *save = NULL;
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(req, "\n"), req);
	if (sim_log[0])
		sim_put(sim_log, sizeof(sim_log), " | ");
	sim_put(sim_log, sizeof(sim_log), line);
	buf[0] = '\0';
	for (char *c = strtok_r(line, ";", &save); c; c = strtok_r(NULL, ";", &save))
		sim_command(buf, sizeof(buf), c + strspn(c, " "));
	return buf;
}

#define READY_GREEN "set server app/green1 state ready; set server app/green2 state ready"
#define DRAIN_BLUE "set server app/blue1 state drain; set server app/blue2 state drain"

static void test_cutover_sequence(void)
{
	fake f = { 0 };
	iac_haproxy *h = NULL;
	const char *green[] = { "green1", "green2" }, *blue[] = { "blue1", "blue2" }, *typo[] = { "blue1", "blu2" };
	iac_cutover_opts o = { .backend = "app", .to = green, .n_to = 2, .from = blue, .n_from = 2 };
	iac_cutover_result r;
	char state[300];

	fake_start(&f, "cutover.sock", 100000, answer_sim);
	CHECK_INT(iac_haproxy_open(&h, f.path, 1000), 0);

	/* names first, `to` ready with a look in the same round trip, `from`
	 * drain, a look, `from` maint, the states saved */
	sim_reset(0);
	snprintf(state, sizeof(state), "%s/cutover-state", iac_test_tmpdir());
	o.state_file = state;
	CHECK_INT(iac_cutover_switch(&r, h, &o), 0);
	CHECK_STR(sim_log, "show stat | " READY_GREEN "; show stat | " DRAIN_BLUE " | show stat | "
		  "set server app/blue1 state maint; set server app/blue2 state maint | show servers state");
	CHECK(r.drained && r.from_maint && r.persisted);
	CHECK_INT(r.sessions_left, 0);
	CHECK(r.ready_ms <= r.up_ms && r.up_ms <= r.switch_ms && r.switch_ms <= r.drained_ms &&
	      r.drained_ms <= r.total_ms);
	o.state_file = NULL;

	/* a name missing from the backend: nothing changes */
	sim_reset(0);
	o.from = typo;
	CHECK_INT(iac_cutover_switch(&r, h, &o), -1);
	CHECK_STR(sim_log, "show stat");
	CHECK_CONTAINS(iac_err_last(), "cannot switch backend 'app' to green1, green2: ");
	CHECK_CONTAINS(iac_err_last(), ": no server 'blu2' in backend 'app'");
	o.from = blue;

	/* a `to` server fails its check: once its checks had 1.5 s to catch up
	 * (the DOWN may predate the ready), back to maint, `from` untouched */
	sim_reset(0);
	sim[3].healthy = 0;
	double t0 = iac_now_ms();
	CHECK_INT(iac_cutover_switch(&r, h, &o), -1);
	CHECK(iac_now_ms() - t0 >= 1450);
	CHECK(!strncmp(sim_log, "show stat | " READY_GREEN "; show stat | show stat | ",
		       strlen("show stat | " READY_GREEN "; show stat | show stat | ")));
	const char *maint = " | set server app/green1 state maint; set server app/green2 state maint";
	CHECK(strlen(sim_log) > strlen(maint) && !strcmp(sim_log + strlen(sim_log) - strlen(maint), maint));
	CHECK(!strstr(sim_log, "drain"));
	CHECK_CONTAINS(iac_err_last(), "cannot switch backend 'app' to green1, green2: 'green2' is DOWN "
		       "(check L7STS) after ");
	CHECK_CONTAINS(iac_err_last(), "the servers were put back in maint and traffic stays where it was");

	/* a DOWN from a check made before the ready (a HAProxy started a
	 * moment earlier) that passes within the grace: the switch goes on */
	sim_reset(0);
	sim[3].healthy = 0;
	sim_heal_after = 20;
	CHECK_INT(iac_cutover_switch(&r, h, &o), 0);
	CHECK(r.drained && r.from_maint);

	/* "DOWN 1/2": on its way up, waited for past the grace (up_timeout) */
	sim_reset(0);
	sim[3].healthy = 0;
	sim_rising = 1;
	sim_heal_after = 400;      /* about 2 s of looks */
	t0 = iac_now_ms();
	CHECK_INT(iac_cutover_switch(&r, h, &o), 0);
	CHECK(iac_now_ms() - t0 >= 1500);
	CHECK(r.drained);
	sim_reset(0);
	sim[3].healthy = 0;
	sim_rising = 1;
	sim_heal_after = 100000;   /* never up: up_timeout (3 s) ends it */
	t0 = iac_now_ms();
	CHECK_INT(iac_cutover_switch(&r, h, &o), -1);
	CHECK(iac_now_ms() - t0 >= 2900);
	CHECK_CONTAINS(iac_err_last(), "'green2' is DOWN 1/2");

	/* someone else holds `to` in maint (a rollback): touch nothing more */
	sim_reset(0);
	sim_ignore_ready = 1;
	CHECK_INT(iac_cutover_switch(&r, h, &o), IAC_ECONFLICT);
	CHECK_STR(sim_log, "show stat | " READY_GREEN "; show stat");
	CHECK_CONTAINS(iac_err_last(), "'green1' is MAINT right after being made ready (a rollback or "
		       "another switch?); 'blue1' keeps its traffic");

	/* every `to` server goes down during the drain: `from` back at once */
	sim_reset(1);
	sim_down_on_drain = 1;
	CHECK_INT(iac_cutover_switch(&r, h, &o), -1);
	CHECK_STR(sim_log, "show stat | " READY_GREEN "; show stat | " DRAIN_BLUE " | show stat | "
		  "set server app/blue1 state ready; set server app/blue2 state ready");
	CHECK_CONTAINS(iac_err_last(), "'green1' is DOWN (check L7STS) during the drain; the old servers "
		       "were made ready again");

	/* a rollback does not wait for long requests: `from` stays in drain */
	sim_reset(1);
	t0 = iac_now_ms();
	CHECK_INT(iac_cutover_rollback(&r, h, &o), 0);
	CHECK(iac_now_ms() - t0 < 1000);
	CHECK(!r.drained && !r.from_maint);
	CHECK_INT(r.sessions_left, 2);
	CHECK(r.drained_ms == -1);
	CHECK(!strncmp(sim_log, "show stat | " READY_GREEN "; show stat | " DRAIN_BLUE " | show stat",
		       strlen("show stat | " READY_GREEN "; show stat | " DRAIN_BLUE " | show stat")));
	CHECK(strstr(sim_log, "maint") == NULL);
	sim_log[0] = '\0';
	CHECK_INT(iac_cutover_finish(h, "app", blue, 2, 1000, 1), 0);
	CHECK_STR(sim_log, "set server app/blue1 state maint; set server app/blue2 state maint");

	/* a switch whose drain times out puts `from` in maint all the same */
	sim_reset(1);
	o.drain_timeout_ms = 30;
	CHECK_INT(iac_cutover_switch(&r, h, &o), 0);
	CHECK(!r.drained && r.from_maint);
	CHECK_INT(r.sessions_left, 2);
	size_t ll = strlen(sim_log), tl = strlen(" | set server app/blue1 state maint; set server app/blue2 state maint");
	CHECK(ll > tl && !strcmp(sim_log + ll - tl, " | set server app/blue1 state maint; set server app/blue2 state maint"));

	iac_haproxy_free(h);
	shutdown(f.fd, SHUT_RDWR);   /* wakes the fake's accept() */
	fake_stop(&f);
}

static const iac_test tests[] = {
	TEST(test_split_answers),
	TEST(test_answer_error),
	TEST(test_stat_parse),
	TEST(test_status_is_up),
	TEST(test_procs_parse),
	TEST(test_addresses),
	TEST(test_set_state_errors),
	TEST(test_master_target),
	TEST(test_timeouts_and_connect),
	TEST(test_show_stat_and_state),
	TEST(test_cutover_sequence),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}

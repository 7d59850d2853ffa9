/* ssh.service against real sshd on a test-bed host: start detached,
 * reload, restart, stop, a dead service noticed, a failing start. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/core/util.h"
#include "providers/ssh/ssh.h"
#include "test_ssh_bed.h"
#include "test_ssh_provider.h"

static void test_service(void)
{
	char buf[256];
	const iac_rtype *t = &iac_ssh_service_type;
	configure(0);
	json_t *script = json_pack("{s:o, s:s, s:s}", "host", host(1), "path", "/opt/svc/run.sh", "content",
				   "trap 'echo reload >> /opt/svc/events' HUP\n"
				   "echo start >> /opt/svc/events\n"
				   "while :; do sleep 0.1; done\n");
	json_decref(make(&iac_ssh_file_type, "ssh.file.script", script));
	json_decref(script);
	json_t *planned = json_pack("{s:o, s:s, s:s, s:[s]}", "host", host(1),
				    "start", "bash /opt/svc/run.sh", "pidfile", "/run/svc.pid",
				    "reload_on", "v1");
	json_t *st = make(t, "ssh.service.svc", planned);
	CHECK(st != NULL);
	if (!st)
		return;
	char pid1[32] = "";
	CHECK_INT(bed_on(1, pid1, sizeof(pid1), "kill -0 $(cat /run/svc.pid) && cat /run/svc.pid"), 0);
	json_t *r = readback(t, "ssh.service.svc", st);
	CHECK(r != NULL);
	json_decref(r);

	/* reload_on changed: HUP, same pid */
	iac_rctx ctx = ctx_for("ssh.service.svc");
	json_t *p2 = json_deep_copy(planned), *out = NULL;
	json_object_set_new(p2, "reload_on", json_pack("[s]", "v2"));
	CHECK(t->update(&ctx, &out, st, p2) == 0);
	usleep(300000);
	CHECK_INT(bed_on(1, buf, sizeof(buf), "cat /opt/svc/events"), 0);
	CHECK_STR(buf, "start\nreload\n");
	char pid2[32] = "";
	bed_on(1, pid2, sizeof(pid2), "cat /run/svc.pid");
	CHECK_STR(pid2, pid1);
	json_decref(st);
	st = out;

	/* start changed: restart, new pid */
	json_t *p3 = json_deep_copy(p2);
	json_object_set_new(p3, "start", json_string("bash /opt/svc/run.sh --v3"));
	out = NULL;
	CHECK(t->update(&ctx, &out, st, p3) == 0);
	char pid3[32] = "";
	CHECK_INT(bed_on(1, pid3, sizeof(pid3), "kill -0 $(cat /run/svc.pid) && cat /run/svc.pid"), 0);
	CHECK(strcmp(pid3, pid1) != 0);
	{
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "kill -0 %d", atoi(pid1));
		CHECK_INT(bed_on(1, NULL, 0, cmd), 1);   /* the old process is gone */
	}
	json_decref(st);
	st = out;

	/* killed behind our back: read says gone */
	bed_on(1, NULL, 0, "kill -9 $(cat /run/svc.pid)");
	usleep(100000);
	r = readback(t, "ssh.service.svc", st);
	CHECK(r == NULL);
	/* started again, then removed: stopped, pidfile gone */
	out = NULL;
	CHECK(t->create(&ctx, &out, p3) == 0);
	json_decref(out);
	CHECK(t->remove(&ctx, st) == 0);
	CHECK_INT(bed_on(1, NULL, 0, "test -e /run/svc.pid || pgrep -f run.sh"), 1);

	/* a start command that dies: the error carries its log */
	json_t *bad = json_pack("{s:o, s:s, s:s}", "host", host(1), "start", "echo cannot bind >&2; exit 1",
				"pidfile", "/run/bad.pid");
	out = NULL;
	CHECK(t->create(&ctx, &out, bad) != 0);
	CHECK_CONTAINS(iac_err_last(), "cannot bind");

	/* unit without systemd is refused with a hint */
	json_t *unit = json_pack("{s:o, s:s}", "host", host(1), "unit", "nginx.service");
	CHECK(t->create(&ctx, &out, unit) != 0);
	CHECK_CONTAINS(iac_err_last(), "systemd");
	json_decref(unit);
	json_decref(bad);
	json_decref(st);
	json_decref(planned);
	json_decref(p2);
	json_decref(p3);
}

static void test_close(void)
{
	iac_providers_free(pv);
	pv = NULL;
}

static const iac_test tests[] = {
	TEST(test_service),
	TEST(test_close),
	{ 0 },
};

int main(void)
{
	return iac_bed_main(tests, 1);
}

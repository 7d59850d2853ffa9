/* Unit tests: planning and applying with the local provider — actions,
 * lifecycle rules, unknown values, redaction, ordering. */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "iac/apply/apply.h"
#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/plan/plan.h"
#include "iac/plan/render.h"

static int n_dir;

typedef struct {
	char *dir;
	iac_config *cfg;
	iac_state *st;
	iac_providers *pv;
	iac_plan *plan;
} fixture;

static char *new_dir(void)
{
	char *d = iac_xasprintf("%s/plan%d", iac_test_tmpdir(), n_dir++);
	iac_mkdir_p(d, 0755);
	return d;
}

static void write_main(const char *dir, const char *text)
{
	char *p = iac_xasprintf("%s/main.lua", dir);
	iac_file_write_atomic(p, text, strlen(text), 0644);
	free(p);
}

static void fx_close(fixture *f)
{
	iac_plan_free(f->plan);
	iac_providers_free(f->pv);
	iac_state_free(f->st);
	iac_config_free(f->cfg);
	f->plan = NULL;
	f->pv = NULL;
	f->st = NULL;
	f->cfg = NULL;
}

static int fx_plan(fixture *f, int destroy)
{
	iac_plan_opts po = { .destroy = destroy, .refresh = 1, .parallelism = 4 };
	fx_close(f);
	if (iac_config_load(&f->cfg, f->dir, NULL) < 0 || iac_state_open(&f->st, f->dir) < 0) {
		fprintf(stderr, "setup: %s\n", iac_err_last());
		return -1;
	}
	f->pv = iac_providers_new(f->cfg->providers, NULL, f->cfg->dir);
	return iac_plan_make(&f->plan, f->cfg, f->st, f->pv, &po);
}

static int fx_apply(fixture *f)
{
	iac_apply_opts ao = { .parallelism = 4 };
	iac_apply_result res;
	int rc = iac_apply_run(&res, f->plan, f->cfg, f->st, f->pv, &ao);
	iac_apply_result_free(&res);
	return rc;
}

static iac_action action_of(fixture *f, const char *addr)
{
	iac_change *c = iac_plan_find(f->plan, addr);
	return c ? c->action : (iac_action)-1;
}

static void test_create_noop_update_delete(void)
{
	fixture f = { .dir = new_dir() };
	write_main(f.dir, "resource \"local.file\" \"a\" { path = \"a.txt\", content = \"one\" }\n"
			  "resource \"local.file\" \"b\" { path = \"b.txt\", content = \"b\" }\n");
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(action_of(&f, "local.file.a"), IAC_ACT_CREATE);
	CHECK_INT(f.plan->n_add, 2);
	CHECK_INT(fx_apply(&f), 0);
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(action_of(&f, "local.file.a"), IAC_ACT_NOOP);
	CHECK(!iac_plan_has_changes(f.plan));

	write_main(f.dir, "resource \"local.file\" \"a\" { path = \"a.txt\", content = \"two\" }\n");
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(action_of(&f, "local.file.a"), IAC_ACT_UPDATE);
	CHECK_INT(action_of(&f, "local.file.b"), IAC_ACT_DELETE);
	iac_change *c = iac_plan_find(f.plan, "local.file.a");
	CHECK_INT(json_array_size(c->changed), 1);
	CHECK_STR(json_string_value(json_array_get(c->changed, 0)), "content");
	CHECK_INT(fx_apply(&f), 0);
	char *b = iac_xasprintf("%s/b.txt", f.dir);
	CHECK(access(b, F_OK) != 0);
	free(b);

	/* path forces replacement */
	write_main(f.dir, "resource \"local.file\" \"a\" { path = \"c.txt\", content = \"two\" }\n");
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(action_of(&f, "local.file.a"), IAC_ACT_REPLACE);
	c = iac_plan_find(f.plan, "local.file.a");
	CHECK_STR(json_string_value(json_array_get(c->forces, 0)), "path");
	CHECK_INT(fx_plan(&f, 1), 0);
	CHECK_INT(action_of(&f, "local.file.a"), IAC_ACT_DELETE);
	fx_close(&f);
	free(f.dir);
}

static void test_drift(void)
{
	fixture f = { .dir = new_dir() };
	write_main(f.dir, "resource \"local.file\" \"a\" { path = \"a.txt\", content = \"one\" }\n");
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(fx_apply(&f), 0);
	char *p = iac_xasprintf("%s/a.txt", f.dir);
	iac_file_write_atomic(p, "edited", 6, 0644);
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(action_of(&f, "local.file.a"), IAC_ACT_UPDATE);
	CHECK_STR(iac_plan_find(f.plan, "local.file.a")->reason, "changed outside iac");
	unlink(p);
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(action_of(&f, "local.file.a"), IAC_ACT_CREATE);
	CHECK_STR(iac_plan_find(f.plan, "local.file.a")->reason, "deleted outside iac");
	free(p);
	fx_close(&f);
	free(f.dir);
}

static void test_lifecycle(void)
{
	fixture f = { .dir = new_dir() };
	write_main(f.dir, "resource \"local.file\" \"a\" { path = \"a.txt\", content = \"one\",\n"
			  "  lifecycle = { prevent_destroy = true, ignore_changes = { \"content\" } } }\n");
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(fx_apply(&f), 0);
	write_main(f.dir, "resource \"local.file\" \"a\" { path = \"a.txt\", content = \"two\",\n"
			  "  lifecycle = { prevent_destroy = true, ignore_changes = { \"content\" } } }\n");
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(action_of(&f, "local.file.a"), IAC_ACT_NOOP);
	CHECK_INT(fx_plan(&f, 1), IAC_ERR);
	CHECK_CONTAINS(iac_err_last(), "prevent_destroy");
	CHECK_CONTAINS(iac_err_last(), "main.lua:1");
	fx_close(&f);
	free(f.dir);
}

static void test_triggers_and_unknown(void)
{
	fixture f = { .dir = new_dir() };
	const char *cfg =
		"variable \"v\" { default = \"1\" }\n"
		"local conf = resource \"local.file\" \"conf\" { path = \"c\", content = var.v }\n"
		"local e = resource \"local.exec\" \"e\" { create = \"echo made\", triggers = { h = conf.sha256 } }\n"
		"resource \"local.file\" \"out\" { path = \"o\", content = e.stdout }\n";
	write_main(f.dir, cfg);
	CHECK_INT(fx_plan(&f, 0), 0);
	/* stdout is known only after e is created */
	CHECK(iac_value_is_unknown(json_object_get(iac_plan_find(f.plan, "local.file.out")->planned, "content")));
	CHECK_INT(fx_apply(&f), 0);
	char *o = iac_xasprintf("%s/o", f.dir), *text = NULL;
	size_t len;
	iac_file_read(&text, &len, o);
	CHECK_STR(text, "made\n");
	free(text);
	setenv("IAC_VAR_v", "2", 1);
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(action_of(&f, "local.file.conf"), IAC_ACT_UPDATE);
	CHECK_INT(action_of(&f, "local.exec.e"), IAC_ACT_REPLACE);
	CHECK_STR(json_string_value(json_array_get(iac_plan_find(f.plan, "local.exec.e")->forces, 0)), "triggers");
	unsetenv("IAC_VAR_v");
	free(o);
	fx_close(&f);
	free(f.dir);
}

static void test_sensitive_never_shown_or_stored(void)
{
	fixture f = { .dir = new_dir() };
	setenv("IAC_VAR_pw", "correct-horse-battery", 1);
	write_main(f.dir, "variable \"pw\" { sensitive = true }\n"
			  "resource \"local.file\" \"a\" { path = \"a\", content = \"pw=\" .. var.pw }\n"
			  "output \"o\" { value = var.pw }\n");
	CHECK_INT(fx_plan(&f, 0), 0);
	iac_buf human = IAC_BUF_INIT;
	iac_plan_render(&human, f.plan);
	CHECK(strstr(iac_buf_cstr(&human), "correct-horse") == NULL);
	CHECK_CONTAINS(iac_buf_cstr(&human), "(sensitive)");
	json_t *j = iac_plan_json(f.plan);
	char *js = json_dumps(j, 0);
	CHECK(strstr(js, "correct-horse") == NULL);
	free(js);
	json_decref(j);
	iac_buf_free(&human);
	CHECK_INT(fx_apply(&f), 0);
	char *sp = iac_xasprintf("%s/.iac/state.json", f.dir), *text = NULL;
	size_t len;
	iac_file_read(&text, &len, sp);
	CHECK(text && strstr(text, "correct-horse") == NULL);
	free(text);
	/* the secret is still compared correctly: no change on re-plan */
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK(!iac_plan_has_changes(f.plan));
	setenv("IAC_VAR_pw", "another-secret-value", 1);
	CHECK_INT(fx_plan(&f, 0), 0);
	CHECK_INT(action_of(&f, "local.file.a"), IAC_ACT_UPDATE);
	unsetenv("IAC_VAR_pw");
	free(sp);
	fx_close(&f);
	free(f.dir);
}

static void test_failure_skips_dependents(void)
{
	fixture f = { .dir = new_dir() };
	write_main(f.dir,
		"local bad = resource \"local.exec\" \"bad\" { create = \"echo oops >&2; exit 3\" }\n"
		"resource \"local.exec\" \"child\" { create = \"true\", depends_on = { bad } }\n"
		"resource \"local.exec\" \"other\" { create = \"true\" }\n");
	CHECK_INT(fx_plan(&f, 0), 0);
	iac_apply_opts ao = { .parallelism = 4 };
	iac_apply_result res;
	CHECK_INT(iac_apply_run(&res, f.plan, f.cfg, f.st, f.pv, &ao), IAC_ERR);
	CHECK_INT(res.failed, 1);
	CHECK_INT(res.skipped, 1);
	CHECK_INT(res.added, 1);
	char *fails = json_dumps(res.failures, 0);
	CHECK_CONTAINS(fails, "exit status 3");
	CHECK_CONTAINS(fails, "oops");
	free(fails);
	iac_apply_result_free(&res);
	CHECK(iac_state_get(f.st, "local.exec.other") != NULL);
	CHECK(iac_state_get(f.st, "local.exec.bad") == NULL);
	CHECK(iac_state_get(f.st, "local.exec.child") == NULL);
	fx_close(&f);
	free(f.dir);
}

static const iac_test tests[] = {
	TEST(test_create_noop_update_delete), TEST(test_drift), TEST(test_lifecycle),
	TEST(test_triggers_and_unknown), TEST(test_sensitive_never_shown_or_stored),
	TEST(test_failure_skips_dependents), { 0 },
};

int main(void) { return iac_test_run(tests); }

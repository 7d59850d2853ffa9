/* Unit tests: the Lua loader — sandbox, references, templates, variables,
 * modules, and error locations. */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/load/config.h"

static int n_dir;

/* Write files (name, text, name, text, ..., NULL) into a fresh dir. */
static char *config_dir(const char *first, ...)
{
	char *d = iac_xasprintf("%s/cfg%d", iac_test_tmpdir(), n_dir++);
	va_list ap;
	iac_mkdir_p(d, 0755);
	va_start(ap, first);
	for (const char *name = first; name; name = va_arg(ap, const char *)) {
		const char *text = va_arg(ap, const char *);
		char *p = iac_xasprintf("%s/%s", d, name);
		char *slash = strrchr(p, '/');
		*slash = '\0';
		iac_mkdir_p(p, 0755);
		*slash = '/';
		iac_file_write_atomic(p, text, strlen(text), 0644);
		free(p);
	}
	va_end(ap);
	return d;
}

static iac_config *load_ok(const char *dir, const char *const *vars)
{
	iac_load_opts o = { .vars = vars };
	iac_config *cfg = NULL;
	if (iac_config_load(&cfg, dir, &o) < 0)
		fprintf(stderr, "unexpected load error: %s\n", iac_err_last());
	return cfg;
}

static const char *load_err(const char *dir)
{
	iac_config *cfg = NULL;
	if (iac_config_load(&cfg, dir, NULL) == 0) {
		iac_config_free(cfg);
		return "(loaded fine)";
	}
	return iac_err_last();
}

static void test_reference_and_template(void)
{
	char *d = config_dir("main.lua",
		"local conf = resource \"local.file\" \"conf\" { path = \"a\", content = \"x\" }\n"
		"resource \"local.exec\" \"r\" { create = \"echo \" .. conf.sha256, triggers = { c = conf.sha256 } }\n",
		NULL);
	iac_config *cfg = load_ok(d, NULL);
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	iac_rconf *r = iac_config_get(cfg, "local.exec.r");
	CHECK(r != NULL);
	CHECK_STR(iac_value_marker(json_object_get(r->attrs, "create")), "tpl");
	json_t *t = json_object_get(r->triggers, "c");
	CHECK_STR(iac_value_marker(t), "ref");
	CHECK_STR(json_string_value(json_object_get(t, "addr")), "local.file.conf");
	CHECK_STR(json_string_value(json_object_get(t, "attr")), "sha256");
	CHECK_INT(json_array_size(r->deps), 1);
	CHECK_STR(json_string_value(json_array_get(r->deps, 0)), "local.file.conf");
	CHECK_STR(r->file, "main.lua");
	CHECK_INT(r->line, 2);
	iac_config_free(cfg);
	free(d);
}

static void test_sandbox(void)
{
	char *d = config_dir("main.lua", "local x = 1\nos.execute('touch /tmp/iac-pwned')\n", NULL);
	const char *e = load_err(d);
	CHECK_CONTAINS(e, "main.lua:2:");
	CHECK_CONTAINS(e, "os.execute");
	CHECK(access("/tmp/iac-pwned", F_OK) != 0);
	free(d);
	d = config_dir("main.lua", "local f = io.open('/etc/passwd')\n", NULL);
	CHECK_CONTAINS(load_err(d), "io.open");
	free(d);
	d = config_dir("main.lua", "local s = string.dump(print)\n", NULL);
	CHECK_CONTAINS(load_err(d), "main.lua:1:");
	free(d);
	d = config_dir("main.lua", "load(string.char(27)..'Lua')()\n", NULL);
	CHECK_CONTAINS(load_err(d), "main.lua:1:");   /* binary chunks refused */
	free(d);
	d = config_dir("main.lua", "require 'x'\n", "x.lua", "return { v = debug.getinfo }\n", NULL);
	CHECK_CONTAINS(load_err(d), "x.lua:1:");
	free(d);
	d = config_dir("main.lua", "require '..secret'\n", NULL);
	CHECK_CONTAINS(load_err(d), "not paths");
	free(d);
}

static void test_errors_name_place(void)
{
	char *d = config_dir("main.lua",
		"-- comment\n"
		"resource \"local.file\" \"conf\" { path = \"a\" }\n"
		"\n"
		"resource \"local.file\" \"conf\" { path = \"b\" }\n", NULL);
	const char *e = load_err(d);
	CHECK_CONTAINS(e, "main.lua:4: resource 'local.file.conf' declared twice (first at main.lua:2)");
	free(d);
	d = config_dir("main.lua", "resource \"local.file\" \"a\" { path = \"a\", mode = {} }\n", NULL);
	CHECK_CONTAINS(load_err(d), "attribute 'mode' must be a string");
	free(d);
	d = config_dir("main.lua", "resource \"local.file\" \"a\" { path = \"a\", contents = \"x\" }\n", NULL);
	e = load_err(d);
	CHECK_CONTAINS(e, "unknown attribute 'contents'");
	CHECK_CONTAINS(e, "did you mean 'content'");
	free(d);
}

static void test_variables_precedence(void)
{
	char *d = config_dir("main.lua",
		"variable \"v\" { default = \"d\" }\n"
		"variable \"n\" { default = 1 }\n"
		"variable \"secret\" { sensitive = true, default = \"hunter22\" }\n"
		"resource \"local.file\" \"a\" { path = var.v, content = \"n=\" .. var.n, mode = var.secret }\n",
		NULL);
	iac_config *cfg = load_ok(d, NULL);
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK_STR(json_string_value(json_object_get(iac_config_get(cfg, "local.file.a")->attrs, "path")), "d");
		iac_config_free(cfg);
	}
	setenv("IAC_VAR_v", "env", 1);
	const char *vars[] = { "n=7", NULL };
	cfg = load_ok(d, vars);
	CHECK(cfg != NULL);
	if (cfg) {
		iac_rconf *r = iac_config_get(cfg, "local.file.a");
		CHECK_STR(json_string_value(json_object_get(r->attrs, "path")), "env");
		json_t *content = iac_value_resolve(json_object_get(r->attrs, "content"), NULL, NULL, NULL);
		CHECK_STR(json_string_value(content), "n=7");
		json_decref(content);
		CHECK_STR(iac_value_marker(json_object_get(r->attrs, "mode")), "sensitive");
		iac_config_free(cfg);
	}
	const char *cli[] = { "v=cli", NULL };
	cfg = load_ok(d, cli);
	if (cfg) {
		CHECK_STR(json_string_value(json_object_get(iac_config_get(cfg, "local.file.a")->attrs, "path")), "cli");
		iac_config_free(cfg);
	}
	unsetenv("IAC_VAR_v");
	const char *bad[] = { "n=abc", NULL };
	iac_load_opts o = { .vars = bad };
	cfg = NULL;
	CHECK_INT(iac_config_load(&cfg, d, &o), IAC_ERR);
	CHECK_CONTAINS(iac_err_last(), "must be a finite number");
	const char *undeclared[] = { "zzz=1", NULL };
	o.vars = undeclared;
	CHECK_INT(iac_config_load(&cfg, d, &o), IAC_ERR);
	CHECK_CONTAINS(iac_err_last(), "no variable 'zzz'");
	free(d);
}

static void test_modules(void)
{
	char *d = config_dir("main.lua",
		"local w = module \"web\" { source = \"./mods/web\", n = 2 }\n"
		"resource \"local.exec\" \"after\" { create = \"echo \" .. w.first, depends_on = { w } }\n",
		"mods/web/main.lua",
		"variable \"n\" { }\n"
		"local first\n"
		"for i = 1, var.n do local f = resource \"local.file\" (\"f\" .. i) { path = \"f\" .. i }\n"
		"  first = first or f end\n"
		"output \"first\" { value = first.path }\n", NULL);
	iac_config *cfg = load_ok(d, NULL);
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	CHECK(iac_config_get(cfg, "module.web.local.file.f1") != NULL);
	CHECK(iac_config_get(cfg, "module.web.local.file.f2") != NULL);
	iac_rconf *r = iac_config_get(cfg, "local.exec.after");
	CHECK_INT(json_array_size(r->deps), 2);
	CHECK_STR(iac_config_get(cfg, "module.web.local.file.f1")->file, "mods/web/main.lua");
	iac_config_free(cfg);
	free(d);
	d = config_dir("main.lua", "module \"web\" { source = \"./m\", nn = 1 }\n", "m/main.lua",
		       "variable \"n\" { default = 1 }\n", NULL);
	CHECK_CONTAINS(load_err(d), "module 'module.web' has no variable 'nn'");
	free(d);
}

static void test_hash_stable_and_secret_free(void)
{
	char *d = config_dir("main.lua",
		"variable \"s\" { sensitive = true }\n"
		"resource \"local.file\" \"a\" { path = \"a\", content = var.s }\n", NULL);
	const char *v1[] = { "s=one", NULL }, *v2[] = { "s=two", NULL };
	iac_config *a = load_ok(d, v1), *b = load_ok(d, v1), *c = load_ok(d, v2);
	CHECK(a && b && c);
	if (a && b && c) {
		CHECK_STR(iac_config_hash(a), iac_config_hash(b));
		/* secrets are not part of the hash a plan file carries */
		CHECK_STR(iac_config_hash(a), iac_config_hash(c));
	}
	iac_config_free(a);
	iac_config_free(b);
	iac_config_free(c);
	free(d);
}

static const iac_test tests[] = {
	TEST(test_reference_and_template), TEST(test_sandbox), TEST(test_errors_name_place),
	TEST(test_variables_precedence), TEST(test_modules), TEST(test_hash_stable_and_secret_free), { 0 },
};

int main(void) { return iac_test_run(tests); }

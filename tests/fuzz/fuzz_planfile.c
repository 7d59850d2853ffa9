/* fuzz_planfile: saved plans (`iac plan -out FILE`) as `iac apply FILE`
 * reads them: iac_planfile_read on the file, then iac_planfile_vars and
 * iac_planfile_check against a fresh plan of a small configuration
 * (iac/plan/planfile.c). The configuration, its state (fixed lineage and
 * serial) and its .iac/plan.key are the ones the seed corpus was made with,
 * so seeds get through the lineage, serial and hash checks to the actions,
 * hosts and sensitive variables. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/plan/plan.h"
#include "iac/plan/planfile.h"

static const char main_lua[] =
	"variable \"version\" { default = \"v1\" }\n"
	"variable \"token\" { sensitive = true, default = \"s3cr3t-token\" }\n"
	"local a = resource \"local.file\" \"a\" { path = \"x\", content = \"1\" }\n"
	"resource \"local.file\" \"b\" { path = \"y\", content = \"v=\" .. var.version .. \" \" .. a.sha256, mode = \"0640\" }\n"
	"output \"a_path\" { value = a.path }\n"
	"output \"tok\" { value = var.token, sensitive = true }\n";

static const char state_json[] =
	"{\"format_version\":1,\"lineage\":\"00000000-0000-4000-8000-00000000f022\",\"serial\":1,\"resources\":[]}";

static iac_config *cfg;
static iac_state *st;
static iac_providers *pv;
static iac_plan *plan;
static char *plan_path;

static void setup(void)
{
	char *dir = fuzz_path(fuzz_tmpdir("planfile"), "cfg");
	char *iac = fuzz_path(dir, ".iac");
	mkdir(dir, 0700);
	mkdir(iac, 0700);
	char *p = fuzz_path(dir, "main.lua");
	fuzz_write(p, main_lua, strlen(main_lua));
	free(p);
	p = fuzz_path(iac, "state.json");
	fuzz_write(p, state_json, strlen(state_json));
	free(p);
	unsigned char key[32];
	for (int i = 0; i < 32; i++)
		key[i] = (unsigned char)i;
	p = fuzz_path(iac, "plan.key");
	fuzz_write(p, key, sizeof(key));
	free(p);
	plan_path = fuzz_path(dir, "saved.plan");

	iac_plan_opts po = { .refresh = 1, .parallelism = 1 };
	if (iac_config_load(&cfg, dir, NULL) < 0 || iac_state_open(&st, dir) < 0) {
		fprintf(stderr, "fuzz: setup: %s\n", iac_err_last());
		exit(2);
	}
	pv = iac_providers_new(cfg->providers, NULL, cfg->dir);
	if (iac_plan_make(&plan, cfg, st, pv, &po) < 0) {
		fprintf(stderr, "fuzz: setup: %s\n", iac_err_last());
		exit(2);
	}
	free(iac);
	free(dir);
}

static void teardown(void)
{
	iac_plan_free(plan);
	iac_providers_free(pv);
	iac_state_free(st);
	iac_config_free(cfg);
	free(plan_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = NULL;
	if (!plan) {
		setup();
		atexit(teardown);
	}
	fuzz_write(plan_path, data, size);
	if (iac_planfile_read(&doc, plan_path) < 0)
		return 0;
	char *vars = json_dumps(iac_planfile_vars(doc), JSON_COMPACT);
	free(vars);
	int rc = iac_planfile_check(doc, plan, cfg);
	if (getenv("IAC_FUZZ_DEBUG"))
		fprintf(stderr, "check: %d %s\n", rc, rc ? iac_err_last() : "");
	json_decref(doc);
	return 0;
}

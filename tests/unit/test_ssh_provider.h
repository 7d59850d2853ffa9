/* test_ssh_provider: calling the ssh provider's resource types directly in
 * unit tests (header only, after test_ssh_bed.h): one provider runtime
 * (`pv`, with the run's hosts), contexts for it, plan+create and read
 * helpers that fail the test with the provider's message. */
#ifndef IAC_TEST_SSH_PROVIDER_H
#define IAC_TEST_SSH_PROVIDER_H

#include "iac/core/err.h"
#include "iac/provider/runtime.h"
#include "providers/ssh/ssh.h"
#include "test_ssh_bed.h"

static volatile int no_cancel;
static iac_providers *pv;

__attribute__((unused)) static iac_rctx ctx_for(const char *addr)
{
	iac_rctx c;
	CHECK(iac_providers_ctx(&c, pv, &iac_provider_ssh, addr, &no_cancel) == 0);
	return c;
}

__attribute__((unused)) static json_t *host(int n)
{
	char name[8];
	snprintf(name, sizeof(name), "h%d", n);
	return json_pack("{s:s, s:s, s:{s:s}}", "name", name, "address", bed_addr[n - 1], "labels", "role", "web");
}

__attribute__((unused)) static void configure(int sftp)
{
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:s, s:b}", "user", "root", "private_key", "id_ed25519",
				"known_hosts", "known_hosts", "connect_timeout", "10s", "sftp", sftp);
	iac_providers_free(pv);
	json_t *configs = json_pack("{s:o}", "ssh", cfg);
	pv = iac_providers_new(configs, NULL, bed_dir);
	json_decref(configs);
	void *pd;
	int rc = iac_providers_get(&pd, pv, &iac_provider_ssh);
	if (rc != 0)
		fprintf(stderr, "configure: %s\n", iac_err_last());
	CHECK(rc == 0);
}

/* plan + create, returning the state. */
__attribute__((unused)) static json_t *make(const iac_rtype *t, const char *addr, json_t *planned)
{
	iac_rctx ctx = ctx_for(addr);
	json_t *out = NULL;
	if (t->plan && t->plan(&ctx, planned, NULL) != 0) {
		fprintf(stderr, "plan %s: %s\n", addr, iac_err_last());
		CHECK(0);
		return NULL;
	}
	if (t->create(&ctx, &out, planned) != 0) {
		fprintf(stderr, "create %s: %s\n", addr, iac_err_last());
		CHECK(0);
		return NULL;
	}
	return out;
}

__attribute__((unused)) static json_t *readback(const iac_rtype *t, const char *addr, const json_t *prior)
{
	iac_rctx ctx = ctx_for(addr);
	json_t *out = NULL;
	int rc = t->read(&ctx, &out, prior);
	if (rc != 0)
		fprintf(stderr, "read %s: %s\n", addr, iac_err_last());
	CHECK(rc == 0);
	return out;
}

#endif

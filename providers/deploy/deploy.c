/* deploy: provider table (see deploy.h). */
#include "providers/deploy/deploy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/util.h"

char *iac_deploy_expand(const char *tpl, const json_t *vars)
{
	iac_buf b = IAC_BUF_INIT;
	for (const char *p = tpl; *p;) {
		if (*p == '{') {
			const char *end = strchr(p, '}');
			if (end && end - p < 32) {
				char key[32];
				snprintf(key, sizeof(key), "%.*s", (int)(end - p - 1), p + 1);
				json_t *v = json_object_get(vars, key);
				if (json_is_string(v)) {
					iac_buf_puts(&b, json_string_value(v));
					p = end + 1;
					continue;
				}
				if (json_is_integer(v)) {
					iac_buf_printf(&b, "%lld", (long long)json_integer_value(v));
					p = end + 1;
					continue;
				}
			}
		}
		iac_buf_putc(&b, *p++);
	}
	return iac_buf_detach(&b);
}

int iac_deploy_addr_matches(const char *addr, const iac_strlist *names)
{
	if (!names->n)
		return 1;
	for (size_t i = 0; i < names->n; i++) {
		const char *n = names->items[i];
		size_t al = strlen(addr), nl = strlen(n);
		if (!strcmp(addr, n) || (al > nl && addr[al - nl - 1] == '.' && !strcmp(addr + al - nl, n)))
			return 1;
	}
	return 0;
}

static int deploy_configure(void **out, const json_t *config, const char *dir)
{
	iac_deploy_pdata *pd = iac_xcalloc(1, sizeof(*pd));
	pd->allow_bad = json_is_true(json_object_get(config, "allow_bad"));
	*out = pd;
	return 0;
}

static void deploy_close(void *pdata)
{
	free(pdata);
}

static const iac_rtype *const deploy_types[] = {
	&iac_deploy_haproxy_type, &iac_deploy_bluegreen_type, NULL,
};

static const iac_provider_command deploy_commands[] = {
	{ "rollback", iac_deploy_cmd_rollback, "switch deployments back to their standby colour, now",
	  iac_deploy_cmd_rollback_help },
	{ "pool", iac_deploy_cmd_pool, "a pool's servers, load and balance, live from HAProxy", iac_deploy_cmd_pool_help },
	{ "autoscale", iac_deploy_cmd_autoscale, "scale autoscaled pools with load (HPA rules); 'status' shows decisions",
	  iac_deploy_cmd_autoscale_help },
	{ NULL, NULL, NULL, NULL },
};

static const iac_provider_flag deploy_flags[] = {
	{ "allow-bad", "allow_bad", "deploy a version marked bad by a rollback" },
	{ NULL, NULL, NULL },
};

const iac_provider iac_provider_deploy = {
	.name = "deploy",
	.types = deploy_types,
	.configure = deploy_configure,
	.close = deploy_close,
	.commands = deploy_commands,
	.status_topics = (const char *const[]){ "pool", "autoscale", NULL },
	.flags = deploy_flags,
	.prelude = "prelude/deploy.lua",
};

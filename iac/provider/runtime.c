/* runtime: lazily configured provider instances (see runtime.h). */
#include "iac/provider/runtime.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/host/host.h"

typedef struct {
	const iac_provider *p;
	void *pdata;
	int state;      /* 0 not yet, 1 ready, -1 failed */
	char *error;
} instance;

struct iac_providers {
	pthread_mutex_t lock;
	json_t *configs;
	json_t *extra;
	char *dir;
	instance *inst;
	size_t n;
	iac_hosts *hosts;
};

static json_t *config_of(iac_providers *pv, const iac_provider *p)
{
	json_t *cfg = json_deep_copy(json_object_get(pv->configs, p->name));
	if (!cfg)
		cfg = json_object();
	if (json_is_object(json_object_get(pv->extra, p->name)))
		json_object_update(cfg, json_object_get(pv->extra, p->name));
	return cfg;
}

/* iac_hosts_configure_fn: the providers that say how hosts are reached. */
static int configure_hosts(iac_hosts *h, void *ud)
{
	iac_providers *pv = ud;
	for (const iac_provider *const *p = iac_provider_all(); *p; p++) {
		if (!(*p)->configure_hosts)
			continue;
		json_t *cfg = config_of(pv, *p);
		int rc = (*p)->configure_hosts(h, cfg, pv->dir);
		json_decref(cfg);
		if (rc < 0) {
			iac_err_prefix("provider '%s'", (*p)->name);
			return IAC_ERR;
		}
	}
	return 0;
}

iac_providers *iac_providers_new(const json_t *configs, const json_t *extra, const char *config_dir)
{
	iac_providers *pv = iac_xcalloc(1, sizeof(*pv));
	pthread_mutex_init(&pv->lock, NULL);
	pv->configs = configs ? json_deep_copy(configs) : json_object();
	pv->extra = extra ? json_deep_copy(extra) : json_object();
	pv->dir = iac_xstrdup(config_dir);
	iac_hosts_new(&pv->hosts, pv->dir, configure_hosts, pv);
	return pv;
}

void iac_providers_free(iac_providers *pv)
{
	if (!pv)
		return;
	for (size_t i = 0; i < pv->n; i++) {
		if (pv->inst[i].state == 1 && pv->inst[i].p->close)
			pv->inst[i].p->close(pv->inst[i].pdata);
		free(pv->inst[i].error);
	}
	free(pv->inst);
	iac_hosts_free(pv->hosts);
	json_decref(pv->configs);
	json_decref(pv->extra);
	free(pv->dir);
	pthread_mutex_destroy(&pv->lock);
	free(pv);
}

int iac_providers_get(void **out_pdata, iac_providers *pv, const iac_provider *p)
{
	int rc = 0;
	instance *in = NULL;

	*out_pdata = NULL;
	pthread_mutex_lock(&pv->lock);
	for (size_t i = 0; i < pv->n; i++)
		if (pv->inst[i].p == p)
			in = &pv->inst[i];
	if (!in) {
		pv->inst = iac_xrealloc(pv->inst, (pv->n + 1) * sizeof(*pv->inst));
		in = &pv->inst[pv->n++];
		memset(in, 0, sizeof(*in));
		in->p = p;
	}
	if (in->state == 0) {
		/* Configure under the lock: other threads wanting the same
		 * provider must wait for it anyway. */
		json_t *cfg = config_of(pv, p);
		if (p->configure && p->configure(&in->pdata, cfg, pv->dir) < 0) {
			in->state = -1;
			in->error = iac_xasprintf("provider '%s': %s", p->name, iac_err_last());
		} else {
			in->state = 1;
		}
		json_decref(cfg);
	}
	if (in->state < 0)
		rc = iac_err_set("%s", in->error);
	else
		*out_pdata = in->pdata;
	pthread_mutex_unlock(&pv->lock);
	return rc;
}

int iac_providers_ctx(iac_rctx *ctx, iac_providers *pv, const iac_provider *p, const char *addr,
		      const volatile int *cancel)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->addr = addr;
	ctx->config_dir = pv->dir;
	ctx->cancel = cancel;
	ctx->engine = pv;
	ctx->hosts = pv->hosts;
	return iac_providers_get(&ctx->pdata, pv, p);
}

struct iac_hosts *iac_providers_hosts(iac_providers *pv)
{
	return pv->hosts;
}

const json_t *iac_providers_config(const iac_providers *pv, const char *provider)
{
	return json_object_get(pv->configs, provider);
}

/* The type's context in ctx's run; IAC_ERR when not built in or the
 * provider cannot be configured. */
static const iac_rtype *type_ctx(iac_rctx *out, const iac_rctx *ctx, const char *type, const char *addr)
{
	const iac_provider *p = NULL;
	const iac_rtype *rt = iac_provider_find_type(type, &p);
	if (!rt || !p) {
		iac_err_set("'%s': resource type '%s' is not built into this iac", addr, type);
		return NULL;
	}
	if (!ctx->engine) {
		iac_err_set("'%s': no provider runtime to make a '%s' with", addr, type);
		return NULL;
	}
	iac_providers *pv = ctx->engine;
	if (iac_providers_ctx(out, pv, p, addr, ctx->cancel) < 0) {
		/* commands that run without main.lua (iac autoscale) have only
		 * the blocks state keeps, and it keeps none that holds a secret */
		if (!json_object_get(pv->configs, p->name))
			iac_err_set("'%s': %s (no provider \"%s\" block is known here: state keeps none that "
				    "holds a secret; give its keys as file names and apply again)",
				    addr, iac_err_last(), p->name);
		else
			iac_err_prefix("'%s'", addr);
		return NULL;
	}
	out->progress = ctx->progress;
	return rt;
}

int iac_providers_type_create(json_t **out, const iac_rctx *ctx, const char *type, const char *addr,
			      const json_t *attrs)
{
	iac_rctx c;
	*out = NULL;
	const iac_rtype *rt = type_ctx(&c, ctx, type, addr);
	if (!rt)
		return IAC_ERR;
	json_t *planned = json_deep_copy(attrs);
	int rc = rt->plan ? rt->plan(&c, planned, NULL) : 0;
	if (rc == 0)
		rc = rt->create(&c, out, planned);
	json_decref(planned);
	if (rc < 0)
		iac_err_prefix("cannot create '%s'", addr);
	return rc < 0 ? IAC_ERR : 0;
}

int iac_providers_type_remove(const iac_rctx *ctx, const char *type, const char *addr, const json_t *attrs)
{
	iac_rctx c;
	const iac_rtype *rt = type_ctx(&c, ctx, type, addr);
	if (!rt)
		return IAC_ERR;
	if (rt->remove(&c, attrs) < 0) {
		iac_err_prefix("cannot remove '%s'", addr);
		return IAC_ERR;
	}
	return 0;
}

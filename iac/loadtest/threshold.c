/* lt_threshold: k6-style threshold keys and conditions (see threshold.h). */
#include "iac/loadtest/threshold.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/loadtest/stats.h"

static const struct {
	const char *name;
	enum iac_lt_metric m;
} metrics[] = {
	{ "avg", IAC_LT_M_AVG },
	{ "min", IAC_LT_M_MIN },
	{ "med", IAC_LT_M_MED },
	{ "max", IAC_LT_M_MAX },
	{ "error_rate", IAC_LT_M_ERROR_RATE },
	{ "checks", IAC_LT_M_CHECKS },
	{ "rps", IAC_LT_M_RPS },
	{ "requests", IAC_LT_M_REQUESTS },
	{ "errors", IAC_LT_M_ERRORS },
	{ "dropped_iterations", IAC_LT_M_DROPPED },
	{ "iterations", IAC_LT_M_ITERATIONS },
	{ "http_req_failed", IAC_LT_M_HTTP_REQ_FAILED },
};

const char *iac_lt_metric_list(void)
{
	return "p(N), avg, min, med, max, error_rate, checks, rps, requests, errors, "
	       "dropped_iterations, iterations, http_req_failed (latency and rate metrics also as ENDPOINT:METRIC); "
	       "k6's http_req_duration, http_reqs, group_duration and custom metrics declared above the thresholds, "
	       "as METRIC or METRIC{tag:value}";
}

const char *iac_lt_metric_unit(enum iac_lt_metric m)
{
	switch (m) {
	case IAC_LT_M_PCT:
	case IAC_LT_M_AVG:
	case IAC_LT_M_MIN:
	case IAC_LT_M_MED:
	case IAC_LT_M_MAX:
		return "ms";
	case IAC_LT_M_ERROR_RATE:
	case IAC_LT_M_HTTP_REQ_FAILED:
	case IAC_LT_M_CHECKS:
		return "%";
	case IAC_LT_M_RPS:
	case IAC_LT_M_PER_SEC:
		return "/s";
	case IAC_LT_M_RATE:
		return "%";
	default:
		return "";
	}
}

static int is_latency(enum iac_lt_metric m)
{
	return !strcmp(iac_lt_metric_unit(m), "ms");
}

static int is_rate(enum iac_lt_metric m)
{
	return m == IAC_LT_M_ERROR_RATE || m == IAC_LT_M_HTTP_REQ_FAILED || m == IAC_LT_M_CHECKS || m == IAC_LT_M_RATE;
}

static int parse_metric(iac_lt_threshold *t, const char *full, const char *name)
{
	size_t n = strlen(name);
	if (n > 3 && !strncmp(name, "p(", 2) && name[n - 1] == ')') {
		char *end;
		errno = 0;
		double p = strtod(name + 2, &end);
		if (errno || end != name + n - 1 || end == name + 2 || p < 0 || p > 100)
			return iac_err_set("invalid percentile '%s' in threshold '%s': expected p(N) with N from 0 to 100",
					   name, full);
		t->metric = IAC_LT_M_PCT;
		t->pct = p;
		return 0;
	}
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
		if (!strcmp(metrics[i].name, name)) {
			t->metric = metrics[i].m;
			return 0;
		}
	return iac_err_set("unknown metric '%s' in threshold '%s'; valid metrics: %s",
			   name, full, iac_lt_metric_list());
}

int iac_lt_threshold_parse_key(iac_lt_threshold *t, const char *key)
{
	const char *colon = strrchr(key, ':');
	free(t->key);
	free(t->endpoint);
	t->key = iac_xstrdup(key);
	t->endpoint = NULL;
	if (!colon)
		return parse_metric(t, key, key);
	if (colon == key)
		return iac_err_set("empty endpoint name in threshold '%s'", key);
	if (parse_metric(t, key, colon + 1) < 0)
		return IAC_ERR;
	if (t->metric == IAC_LT_M_CHECKS || t->metric == IAC_LT_M_DROPPED || t->metric == IAC_LT_M_ITERATIONS)
		return iac_err_set("metric '%s' in threshold '%s' is not kept per endpoint; use it without '%.*s:'",
				   colon + 1, key, (int)(colon - key), key);
	t->endpoint = iac_xstrndup(key, (size_t)(colon - key));
	return 0;
}

int iac_lt_threshold_parse_cond(enum iac_lt_op *op, double *limit, enum iac_lt_metric m, const char *cond)
{
	const char *p = cond;
	while (isspace((unsigned char)*p))
		p++;
	/* k6 writes a rate's condition as "rate<0.01": accept it as written */
	if (is_rate(m) && !strncmp(p, "rate", 4)) {
		p += 4;
		while (isspace((unsigned char)*p))
			p++;
	}
	if (!strncmp(p, "<=", 2)) {
		*op = IAC_LT_LE;
		p += 2;
	} else if (!strncmp(p, ">=", 2)) {
		*op = IAC_LT_GE;
		p += 2;
	} else if (!strncmp(p, "==", 2)) {
		*op = IAC_LT_EQ;
		p += 2;
	} else if (!strncmp(p, "!=", 2)) {
		*op = IAC_LT_NE;
		p += 2;
	} else if (*p == '<') {
		*op = IAC_LT_LT;
		p++;
	} else if (*p == '>') {
		*op = IAC_LT_GT;
		p++;
	} else {
		return iac_err_set("invalid threshold condition '%s': expected an operator (<, <=, >, >=, ==, !=) and a value",
				   cond);
	}
	while (isspace((unsigned char)*p))
		p++;
	char *end;
	errno = 0;
	double v = strtod(p, &end);
	if (errno || end == p)
		return iac_err_set("invalid threshold condition '%s': expected a number after the operator", cond);
	char unit[16];
	size_t ul = 0;
	while (*end && !isspace((unsigned char)*end) && ul < sizeof(unit) - 1)
		unit[ul++] = *end++;
	unit[ul] = 0;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return iac_err_set("invalid threshold condition '%s': unexpected '%s' after the value", cond, end);
	if (is_latency(m)) {
		if (!ul || !strcmp(unit, "ms"))
			*limit = v;
		else if (!strcmp(unit, "s"))
			*limit = v * 1e3;
		else if (!strcmp(unit, "us"))
			*limit = v / 1e3;
		else if (!strcmp(unit, "m"))
			*limit = v * 60e3;
		else
			return iac_err_set("invalid unit '%s' in threshold condition '%s': latency takes us, ms, s or m",
					   unit, cond);
	} else if (is_rate(m)) {
		if (!strcmp(unit, "%"))
			*limit = v / 100.0;
		else if (!ul)
			*limit = v;
		else
			return iac_err_set("invalid unit '%s' in threshold condition '%s': a rate takes %% or a fraction",
					   unit, cond);
	} else {
		if (ul && !((m == IAC_LT_M_RPS || m == IAC_LT_M_PER_SEC) && !strcmp(unit, "/s")))
			return iac_err_set("invalid unit '%s' in threshold condition '%s': this metric takes a plain number",
					   unit, cond);
		*limit = v;
	}
	return 0;
}

int iac_lt_threshold_add_cond(iac_lt_threshold *t, const char *cond)
{
	enum iac_lt_op op = IAC_LT_LT;
	double limit = 0;
	/* k6's form: parsed by iac_lt_threshold_resolve, once the type is known */
	if (!t->mname && iac_lt_threshold_parse_cond(&op, &limit, t->metric, cond) < 0)
		return IAC_ERR;
	t->conds = iac_xrealloc(t->conds, (t->nconds + 1) * sizeof(*t->conds));
	t->ops = iac_xrealloc(t->ops, (t->nconds + 1) * sizeof(*t->ops));
	t->limits = iac_xrealloc(t->limits, (t->nconds + 1) * sizeof(*t->limits));
	t->conds[t->nconds] = iac_xstrdup(cond);
	t->ops[t->nconds] = op;
	t->limits[t->nconds] = limit;
	t->nconds++;
	return 0;
}

void iac_lt_threshold_free(iac_lt_threshold *t)
{
	for (size_t i = 0; i < t->nconds; i++)
		free(t->conds[i]);
	free(t->conds);
	free(t->ops);
	free(t->limits);
	free(t->key);
	free(t->endpoint);
	free(t->mname);
	free(t->acc);
	for (size_t i = 0; i < t->ntags; i++) {
		free(t->tagk[i]);
		free(t->tagv[i]);
	}
	free(t->tagk);
	free(t->tagv);
	free(t->caggs);
	free(t->cpcts);
	memset(t, 0, sizeof(*t));
}

int iac_lt_cond_holds(enum iac_lt_op op, double v, double limit)
{
	switch (op) {
	case IAC_LT_LT: return v < limit;
	case IAC_LT_LE: return v <= limit;
	case IAC_LT_GT: return v > limit;
	case IAC_LT_GE: return v >= limit;
	case IAC_LT_EQ: return v == limit;
	case IAC_LT_NE: return v != limit;
	}
	return 0;
}

/* ---- k6's form ----------------------------------------------------- */

static const struct {
	const char *name;
	int type;
} builtins[] = {
	{ "http_req_duration", IAC_LT_TREND },
	{ "http_req_failed", IAC_LT_RATE },
	{ "http_reqs", IAC_LT_COUNTER },
	{ "iterations", IAC_LT_COUNTER },
	{ "dropped_iterations", IAC_LT_COUNTER },
	{ "checks", IAC_LT_RATE },
	{ "group_duration", IAC_LT_TREND },
};

int iac_lt_builtin_mtype(const char *name)
{
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (!strcmp(builtins[i].name, name))
			return builtins[i].type;
	return -1;
}

int iac_lt_threshold_is_k6(const char *key)
{
	return strchr(key, '{') || !strcmp(key, "http_req_duration") || !strcmp(key, "http_reqs") ||
	       !strcmp(key, "group_duration");
}

static int valid_name(const char *s, size_t n)
{
	if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

static char *trimmed(const char *a, const char *b)
{
	while (a < b && isspace((unsigned char)*a))
		a++;
	while (b > a && isspace((unsigned char)b[-1]))
		b--;
	return iac_xstrndup(a, (size_t)(b - a));
}

/* "endpoint:checkout, status:200" into t->tagk/tagv; the canonical name of
 * the sub-metric into t->acc ("METRIC{endpoint:checkout,status:200}"). */
static int parse_tags(iac_lt_threshold *t, const char *key, const char *a, const char *b)
{
	iac_buf acc = IAC_BUF_INIT;
	iac_buf_printf(&acc, "%s{", t->mname);
	while (a < b) {
		const char *comma = memchr(a, ',', (size_t)(b - a));
		const char *end = comma ? comma : b;
		const char *colon = memchr(a, ':', (size_t)(end - a));
		if (!colon) {
			iac_buf_free(&acc);
			return iac_err_set("invalid tag in threshold '%s': expected {name:value, ...}", key);
		}
		char *k = trimmed(a, colon), *v = trimmed(colon + 1, end);
		if (!valid_name(k, strlen(k)) || !*v) {
			iac_err_set("invalid tag '%s:%s' in threshold '%s': expected {name:value, ...}", k, v, key);
			free(k);
			free(v);
			iac_buf_free(&acc);
			return IAC_ERR;
		}
		t->tagk = iac_xrealloc(t->tagk, (t->ntags + 1) * sizeof(*t->tagk));
		t->tagv = iac_xrealloc(t->tagv, (t->ntags + 1) * sizeof(*t->tagv));
		iac_buf_printf(&acc, "%s%s:%s", t->ntags ? "," : "", k, v);
		t->tagk[t->ntags] = k;
		t->tagv[t->ntags++] = v;
		a = comma ? comma + 1 : b;
	}
	iac_buf_putc(&acc, '}');
	if (!t->ntags) {
		iac_buf_free(&acc);
		return iac_err_set("empty tag list in threshold '%s': expected {name:value, ...}", key);
	}
	t->acc = iac_buf_detach(&acc);
	return 0;
}

int iac_lt_threshold_parse_k6(iac_lt_threshold *t, const char *key)
{
	free(t->key);
	t->key = iac_xstrdup(key);
	t->mtype = -1;
	const char *brace = strchr(key, '{');
	size_t n = brace ? (size_t)(brace - key) : strlen(key);
	if (!valid_name(key, n))
		return iac_err_set("invalid metric name in threshold '%s': expected METRIC or METRIC{tag:value}", key);
	t->mname = iac_xstrndup(key, n);
	if (!brace)
		return 0;
	size_t kl = strlen(key);
	if (key[kl - 1] != '}')
		return iac_err_set("threshold '%s' does not end with '}'", key);
	return parse_tags(t, key, brace + 1, key + kl - 1);
}

/* The aggregates a type has, and what unit each one's limit takes. */
static int agg_of(enum iac_lt_metric *agg, enum iac_lt_metric *unit, double *pct, int type, const char *name)
{
	size_t n = strlen(name);
	if (type == IAC_LT_TREND) {
		iac_lt_threshold tmp;
		memset(&tmp, 0, sizeof(tmp));
		if (!strcmp(name, "count")) {
			*agg = *unit = IAC_LT_M_COUNT;
			return 0;
		}
		if ((n > 3 && !strncmp(name, "p(", 2)) || !strcmp(name, "avg") || !strcmp(name, "min") ||
		    !strcmp(name, "med") || !strcmp(name, "max")) {
			if (parse_metric(&tmp, name, name) < 0)
				return IAC_ERR;
			*agg = *unit = tmp.metric;
			*pct = tmp.pct;
			return 0;
		}
	} else if (type == IAC_LT_RATE && !strcmp(name, "rate")) {
		*agg = *unit = IAC_LT_M_RATE;
		return 0;
	} else if (type == IAC_LT_COUNTER && (!strcmp(name, "count") || !strcmp(name, "rate"))) {
		*agg = *unit = name[0] == 'c' ? IAC_LT_M_COUNT : IAC_LT_M_PER_SEC;
		return 0;
	} else if (type == IAC_LT_GAUGE && (!strcmp(name, "value") || !strcmp(name, "min") || !strcmp(name, "max"))) {
		*agg = name[0] == 'v' ? IAC_LT_M_VALUE : name[1] == 'i' ? IAC_LT_M_MIN : IAC_LT_M_MAX;
		*unit = IAC_LT_M_VALUE;
		return 0;
	}
	return -1;
}

static const char *aggs_of(int type)
{
	switch (type) {
	case IAC_LT_TREND: return "p(N), avg, min, med, max, count";
	case IAC_LT_RATE: return "rate";
	case IAC_LT_COUNTER: return "count, rate";
	default: return "value, min, max";
	}
}

int iac_lt_threshold_resolve(iac_lt_threshold *t, int mtype, int plain)
{
	t->mtype = mtype;
	t->plain = plain;
	t->caggs = iac_xcalloc(t->nconds ? t->nconds : 1, sizeof(*t->caggs));
	t->cpcts = iac_xcalloc(t->nconds ? t->nconds : 1, sizeof(*t->cpcts));
	for (size_t c = 0; c < t->nconds; c++) {
		const char *cond = t->conds[c];
		const char *p = cond;
		while (isspace((unsigned char)*p))
			p++;
		const char *a = p;
		while (*p && !strchr("<>=! \t", *p))
			p++;
		char *agg = iac_xstrndup(a, (size_t)(p - a));
		enum iac_lt_metric unit = IAC_LT_M_VALUE;
		int rc = agg_of(&t->caggs[c], &unit, &t->cpcts[c], mtype, agg);
		if (rc < 0) {
			iac_err_set("threshold '%s': condition '%s' needs one of the %s's aggregates (%s) before the operator, "
				    "as in k6: \"%s < 500\"", t->key, cond, iac_lt_mtype_name(mtype), aggs_of(mtype),
				    mtype == IAC_LT_TREND ? "p(95)" : mtype == IAC_LT_GAUGE ? "value" : mtype == IAC_LT_RATE ? "rate" : "count");
			free(agg);
			return IAC_ERR;
		}
		free(agg);
		if (plain && unit != IAC_LT_M_COUNT && mtype == IAC_LT_TREND)
			unit = IAC_LT_M_VALUE;
		if (iac_lt_threshold_parse_cond(&t->ops[c], &t->limits[c], unit, p) < 0)
			return iac_err_set("threshold '%s': %s", t->key, iac_err_last());
	}
	t->metric = t->nconds ? t->caggs[0] : IAC_LT_M_VALUE;
	return 0;
}

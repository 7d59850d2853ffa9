/* lt_threshold: k6-style threshold keys and conditions (see threshold.h). */
#include "iac/loadtest/threshold.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/util.h"

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
	       "dropped_iterations, iterations, http_req_failed (latency and rate metrics also as ENDPOINT:METRIC)";
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
		return "/s";
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
	return m == IAC_LT_M_ERROR_RATE || m == IAC_LT_M_HTTP_REQ_FAILED || m == IAC_LT_M_CHECKS;
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
		if (ul && !(m == IAC_LT_M_RPS && !strcmp(unit, "/s")))
			return iac_err_set("invalid unit '%s' in threshold condition '%s': this metric takes a plain number",
					   unit, cond);
		*limit = v;
	}
	return 0;
}

int iac_lt_threshold_add_cond(iac_lt_threshold *t, const char *cond)
{
	enum iac_lt_op op;
	double limit;
	if (iac_lt_threshold_parse_cond(&op, &limit, t->metric, cond) < 0)
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

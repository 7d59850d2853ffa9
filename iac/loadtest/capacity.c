/* lt_capacity: the capacity search's decisions, as pure functions of the
 * steps run so far (see capacity.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/loadtest/capacity.h"

void iac_lt_cap_step_free(iac_lt_cap_step *s)
{
	free(s->host);
	free(s->why);
	free(s->invalid);
	s->host = s->why = s->invalid = NULL;
}

static char *trimmed(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return iac_xstrndup(s, n);
}

/* One "KEY OP LIMIT" into t. 0 or -1. */
static int parse_one(iac_lt_threshold *t, const char *part)
{
	size_t k = strcspn(part, "<>=!");
	if (!part[k])
		return iac_err_set("capacity condition '%s' has no operator; e.g. -find-capacity 'p(99)<300ms'", part);
	char *key = trimmed(part, k), *cond = trimmed(part + k, strlen(part + k));
	int rc = IAC_ERR;
	if (!*key) {
		iac_err_set("capacity condition '%s' has no metric; e.g. -find-capacity 'p(99)<300ms'", part);
		goto done;
	}
	if (iac_lt_threshold_parse_key(t, key) < 0 || iac_lt_threshold_add_cond(t, cond) < 0) {
		iac_err_prefix("-find-capacity '%s'", part);
		goto done;
	}
	rc = 0;
done:
	free(key);
	free(cond);
	return rc;
}

int iac_lt_capacity_parse(iac_lt_threshold **out, size_t *n, const char *expr)
{
	*out = NULL;
	*n = 0;
	char *copy = iac_xstrdup(expr);
	/* "&&" reads as "," */
	for (char *a; (a = strstr(copy, "&&"));) {
		a[0] = ',';
		memmove(a + 1, a + 2, strlen(a + 2) + 1);
	}
	int rc = 0;
	char *save = NULL;
	for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
		*out = iac_xrealloc(*out, (*n + 1) * sizeof(**out));
		memset(&(*out)[*n], 0, sizeof(**out));
		(*n)++;
		if ((rc = parse_one(&(*out)[*n - 1], part)) < 0)
			break;
	}
	if (!rc && !*n)
		rc = iac_err_set("-find-capacity needs a condition, e.g. 'p(99)<300ms'");
	free(copy);
	if (rc < 0) {
		for (size_t i = 0; i < *n; i++)
			iac_lt_threshold_free(&(*out)[i]);
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

/* The bracket: hi is the lowest failing rate (INFINITY when none failed),
 * lo the highest passing rate below it (0 when none). A pass above a
 * failure is noise and does not move the bracket. */
static void bracket(double *lo, double *hi, const iac_lt_cap_step *steps, size_t n)
{
	*hi = INFINITY;
	for (size_t i = 0; i < n; i++)
		if (!steps[i].pass && steps[i].rate < *hi)
			*hi = steps[i].rate;
	*lo = 0;
	for (size_t i = 0; i < n; i++)
		if (steps[i].pass && steps[i].rate < *hi && steps[i].rate > *lo)
			*lo = steps[i].rate;
}

/* Rates above 20 req/s are whole numbers: nobody reads 212.5 req/s. */
static double tidy(double r)
{
	return r >= 20 ? round(r) : round(r * 10) / 10;
}

int iac_lt_capacity_next(double *next, const iac_lt_cap_plan *p, const iac_lt_cap_step *steps, size_t n)
{
	if (n == 0) {
		*next = p->start;
		return 1;
	}
	if (p->max_steps > 0 && n >= (size_t)p->max_steps)
		return 0;
	double lo, hi;
	bracket(&lo, &hi, steps, n);
	if (lo == 0)   /* the lowest rate tried failed: no capacity to find */
		return 0;
	if (isinf(hi)) {
		if (p->max_rate > 0 && lo >= p->max_rate)
			return 0;
		double r = tidy(p->step > 0 ? lo + p->step : lo * 2);
		if (p->max_rate > 0 && r > p->max_rate)
			r = p->max_rate;
		*next = r;
		return 1;
	}
	if (hi - lo <= p->precision * lo)
		return 0;
	double mid = tidy((lo + hi) / 2);
	if (mid <= lo || mid >= hi)   /* nothing left between them at this rounding */
		return 0;
	*next = mid;
	return 1;
}

static int by_rate(const void *a, const void *b)
{
	const iac_lt_cap_step *x = *(const iac_lt_cap_step *const *)a, *y = *(const iac_lt_cap_step *const *)b;
	return x->rate < y->rate ? -1 : x->rate > y->rate;
}

/* What saturated at step s, in words, or NULL when none of the signals
 * did. The generator is named only when the target was not saturated:
 * the thresholds held (or the client's own CPU ran out). */
static char *saturated_at(const iac_lt_cap_step *s, int *generator)
{
	*generator = 0;
	if (s->gen_short && (s->thresholds_ok || s->client_cpu_max >= 90)) {
		*generator = 1;
		char cpu[48] = "";
		if (!isnan(s->client_cpu_max))
			snprintf(cpu, sizeof(cpu), ", its CPU %.0f %%", s->client_cpu_max);
		return iac_xasprintf("the load generator itself (at %g req/s it achieved %.1f req/s, %llu dropped "
				     "iterations with max_vus %d%s; the target's latency still held): "
				     "raise -vus / max_vus, -threads or use more machines",
				     s->rate, s->achieved, s->dropped, s->max_vus, cpu);
	}
	if (!isnan(s->hap_qmax) && s->hap_qmax >= 1)
		return iac_xasprintf("HAProxy queue (peak %.0f at %g req/s)", s->hap_qmax, s->rate);
	if (!isnan(s->host_cpu_max) && s->host_cpu_max >= 90)
		return iac_xasprintf("server CPU on '%s' (%.0f %% at %g req/s)", s->host ? s->host : "?",
				     s->host_cpu_max, s->rate);
	return NULL;
}

void iac_lt_capacity_conclude(iac_lt_cap_result *r, const iac_lt_cap_step *steps, size_t n, int observed)
{
	memset(r, 0, sizeof(*r));
	r->lowest_fail = NAN;
	r->knee = NAN;
	double lo, hi;
	bracket(&lo, &hi, steps, n);
	r->found = lo > 0;
	r->capacity = lo;
	r->capped = isinf(hi);
	if (!isinf(hi))
		r->lowest_fail = hi;
	if (!n)
		return;
	const iac_lt_cap_step **o = iac_xmalloc(n * sizeof(*o));
	for (size_t i = 0; i < n; i++)
		o[i] = &steps[i];
	qsort(o, n, sizeof(*o), by_rate);

	/* the knee: the first rate from which p99 stays above 3x (and 5 ms
	 * above) its level at the lowest rate, as "where it saturated" does
	 * over the seconds of one run */
	double base = NAN;
	for (size_t i = 0; i < n && isnan(base); i++)
		base = o[i]->p99_ms;
	if (!isnan(base))
		for (size_t i = 0; i < n; i++) {
			double v = o[i]->p99_ms;
			if (!isnan(v) && v > 3 * base && v > base + 5) {
				r->knee = o[i]->rate;
				break;
			}
		}

	/* what saturated first: the lowest rate with a saturated signal, from
	 * where things went wrong (the knee or the lowest failing rate): a
	 * request queued now and then at a rate that held is not saturation */
	double from = r->knee < r->lowest_fail || isnan(r->lowest_fail) ? r->knee : r->lowest_fail;
	for (size_t i = 0; i < n && !r->first; i++)
		if (!(o[i]->rate < from))
			r->first = saturated_at(o[i], &r->generator);
	if (!r->first) {
		const iac_lt_cap_step *f = NULL;
		for (size_t i = 0; i < n && !f; i++)
			if (!o[i]->pass)
				f = o[i];
		if (!f)
			r->first = iac_xstrdup("nothing yet (no rate failed)");
		else if (f->target_down)
			r->first = iac_xasprintf("the target (%s)", f->why ? f->why : "its requests failed");
		else if (!observed)
			r->first = iac_xstrdup("unknown (add observe = { haproxy = \"...\", hosts = { ... } } to name it)");
		else
			r->first = iac_xasprintf("the target's latency, with no observed signal saturated "
						 "(HAProxy queue empty, hosts' CPU below 90 %%) at %g req/s", f->rate);
	}
	free(o);
}

void iac_lt_cap_result_free(iac_lt_cap_result *r)
{
	free(r->first);
	r->first = NULL;
}

static json_t *num_or_null(double v)
{
	return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

json_t *iac_lt_capacity_json(const iac_lt_cap_plan *p, const char *expr, const iac_lt_cap_step *steps, size_t n,
			     const iac_lt_cap_result *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "condition", json_string(expr));
	json_object_set_new(o, "hold_s", json_real(p->hold_s));
	json_object_set_new(o, "start_rate", json_real(p->start));
	json_object_set_new(o, "step", p->step > 0 ? json_real(p->step) : json_string("x2"));
	json_object_set_new(o, "max_rate", p->max_rate > 0 ? json_real(p->max_rate) : json_null());
	json_object_set_new(o, "precision", json_real(p->precision));
	json_object_set_new(o, "found", json_boolean(r->found));
	json_object_set_new(o, "capacity_rps", r->found ? json_real(r->capacity) : json_null());
	json_object_set_new(o, "max_rate_reached", json_boolean(r->found && r->capped));
	json_object_set_new(o, "lowest_failing_rps", num_or_null(r->lowest_fail));
	json_object_set_new(o, "knee_rps", num_or_null(r->knee));
	json_object_set_new(o, "first_to_saturate", json_string(r->first ? r->first : ""));
	json_object_set_new(o, "load_generator_saturated", json_boolean(r->generator));
	json_t *a = json_array();
	double total = 0;
	for (size_t i = 0; i < n; i++) {
		const iac_lt_cap_step *s = &steps[i];
		total += s->elapsed_s;
		json_t *x = json_object();
		json_object_set_new(x, "rate", json_real(s->rate));
		json_object_set_new(x, "achieved_rps", json_real(s->achieved));
		json_object_set_new(x, "requests", json_integer((json_int_t)s->requests));
		json_object_set_new(x, "failed", json_integer((json_int_t)s->failed));
		json_object_set_new(x, "iterations", json_integer((json_int_t)s->iterations));
		json_object_set_new(x, "dropped_iterations", json_integer((json_int_t)s->dropped));
		json_object_set_new(x, "p50_ms", num_or_null(s->p50_ms));
		json_object_set_new(x, "p99_ms", num_or_null(s->p99_ms));
		json_object_set_new(x, "value", num_or_null(s->metric));
		json_object_set_new(x, "pass", json_boolean(s->pass));
		json_object_set_new(x, "reason", s->why ? json_string(s->why) : json_null());
		json_object_set_new(x, "client_cpu_max_pct", num_or_null(s->client_cpu_max));
		json_object_set_new(x, "haproxy_queue_max", num_or_null(s->hap_qmax));
		json_object_set_new(x, "host_cpu_max_pct", num_or_null(s->host_cpu_max));
		json_object_set_new(x, "host", s->host ? json_string(s->host) : json_null());
		json_object_set_new(x, "duration_s", json_real(s->elapsed_s));
		json_object_set_new(x, "valid", json_boolean(s->valid));
		json_object_set_new(x, "invalid_reason", s->invalid ? json_string(s->invalid) : json_null());
		json_array_append_new(a, x);
	}
	json_object_set_new(o, "search_duration_s", json_real(total));
	json_object_set_new(o, "steps", a);
	return o;
}

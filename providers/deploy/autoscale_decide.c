/* autoscale_decide: the autoscaler's decision, pure (see autoscale.h). */
#include "providers/deploy/autoscale.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"

/* A duration: "15s", "1m" or a number of seconds; dflt when absent. */
static int seconds(double *out, const json_t *o, const char *key, double dflt, const char *where)
{
	const json_t *v = json_object_get(o, key);
	double ms;
	if (!v) {
		*out = dflt;
		return 0;
	}
	if (json_is_number(v) && json_number_value(v) >= 0) {
		*out = json_number_value(v);
		return 0;
	}
	if (json_is_string(v) && iac_duration_parse(&ms, json_string_value(v)) == 0 && ms >= 0) {
		*out = ms / 1e3;
		return 0;
	}
	return iac_err_set("autoscale.%s%s: expected a duration such as \"15s\"", where, key);
}

static int count(int *out, const json_t *o, const char *key, int dflt, int lowest, const char *where)
{
	const json_t *v = json_object_get(o, key);
	if (!v) {
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lowest || json_integer_value(v) > 1000)
		return iac_err_set("autoscale.%s%s: expected a whole number from %d to 1000", where, key, lowest);
	*out = (int)json_integer_value(v);
	return 0;
}

static int check_keys(const json_t *o, const char *const *known, const char *where)
{
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		size_t i;
		for (i = 0; known[i] && strcmp(known[i], k); i++)
			;
		if (!known[i])
			return iac_err_set("autoscale%s: unknown setting '%s'", where, k);
	}
	return 0;
}

int iac_autoscale_spec_parse(iac_autoscale_spec *out, const json_t *a)
{
	static const char *const top[] = { "min", "max", "metric", "target", "tolerance", "scale_up", "scale_down",
					   "prometheus", "interval", NULL };
	static const char *const rate[] = { "max_step", "period", "stabilization", NULL };
	const json_t *up = json_object_get(a, "scale_up"), *down = json_object_get(a, "scale_down");
	const json_t *t = json_object_get(a, "target"), *tol = json_object_get(a, "tolerance");
	const char *metric = iac_json_str(a, "metric") ?: "haproxy_scur_per_server";

	memset(out, 0, sizeof(*out));
	if (!json_is_object(a))
		return iac_err_set("autoscale: expected a table { min = ..., max = ..., target = ... }");
	if (check_keys(a, top, "") < 0 || (up && check_keys(up, rate, ".scale_up") < 0) ||
	    (down && check_keys(down, rate, ".scale_down") < 0))
		return IAC_ERR;
	if (count(&out->min, a, "min", 1, 1, "") < 0 || count(&out->max, a, "max", out->min, 1, "") < 0 ||
	    count(&out->up_max_step, up, "max_step", 4, 1, "scale_up.") < 0 ||
	    count(&out->down_max_step, down, "max_step", 1, 1, "scale_down.") < 0 ||
	    seconds(&out->up_period, up, "period", 15, "scale_up.") < 0 ||
	    seconds(&out->up_stabilization, up, "stabilization", 0, "scale_up.") < 0 ||
	    seconds(&out->down_period, down, "period", 15, "scale_down.") < 0 ||
	    seconds(&out->down_stabilization, down, "stabilization", 300, "scale_down.") < 0 ||
	    seconds(&out->interval, a, "interval", 0, "") < 0)
		return IAC_ERR;
	if (out->max < out->min)
		return iac_err_set("autoscale.max (%d) is below autoscale.min (%d)", out->max, out->min);
	if (!json_is_number(t) || json_number_value(t) <= 0)
		return iac_err_set("autoscale.target: expected a number above 0 (the metric's value per instance)");
	out->target = json_number_value(t);
	out->tolerance = 0.1;
	if (tol && (!json_is_number(tol) || json_number_value(tol) < 0 || json_number_value(tol) >= 1))
		return iac_err_set("autoscale.tolerance: expected a number from 0 to 1, such as 0.1");
	if (tol)
		out->tolerance = json_number_value(tol);
	if (out->up_period <= 0 || out->down_period <= 0)
		return iac_err_set("autoscale: scale_up.period and scale_down.period must be above 0");
	if (!out->interval)
		out->interval = out->up_period;
	snprintf(out->metric, sizeof(out->metric), "%s", metric);
	snprintf(out->prometheus, sizeof(out->prometheus), "%s", iac_json_str(a, "prometheus") ?: "");
	return 0;
}

/* Step 2: the raw recommendation. */
static int recommend(const iac_autoscale_input *in, char *why, size_t n)
{
	const iac_autoscale_spec *s = in->spec;
	double ratio = in->metric / s->target;
	if (fabs(ratio - 1) <= s->tolerance) {
		snprintf(why, n, "metric %.2f / target %g = %.2f, within tolerance %g: stay at %d", in->metric, s->target,
			 ratio, s->tolerance, in->current);
		return in->current;
	}
	/* the small epsilon keeps 2 x 1.5 from becoming 4 through rounding */
	int rec = (int)ceil((double)in->current * ratio - 1e-9);
	if (rec < 1)
		rec = 1;
	snprintf(why, n, "metric %.2f / target %g = %.2f: ceil(%d x %.2f) = %d", in->metric, s->target, ratio,
		 in->current, ratio, rec);
	return rec;
}

/* Instances added (sign > 0) or removed (sign < 0) within the last period. */
static int moved_within(const iac_autoscale_input *in, double period, int sign)
{
	int n = 0;
	for (size_t i = 0; i < in->n_events; i++) {
		const iac_autoscale_point *e = &in->events[i];
		if (e->t > in->now - period && e->t <= in->now && (sign > 0 ? e->value > 0 : e->value < 0))
			n += sign > 0 ? e->value : -e->value;
	}
	return n;
}

static void append(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t n, const char *fmt, ...)
{
	size_t len = strlen(buf);
	va_list ap;
	if (len + 1 >= n)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + len, n - len, fmt, ap);
	va_end(ap);
}

void iac_autoscale_decide(iac_autoscale_decision *out, const iac_autoscale_input *in)
{
	const iac_autoscale_spec *s = in->spec;
	int cur = in->current;

	memset(out, 0, sizeof(*out));
	out->desired = cur;
	if (isnan(in->metric) || in->metric < 0) {
		snprintf(out->reason, sizeof(out->reason), "metric unavailable: stay at %d", cur);
		if (cur < s->min || cur > s->max)
			goto clamp;
		return;
	}
	int rec = recommend(in, out->reason, sizeof(out->reason));
	out->recommendation = rec;
	out->record = 1;

	/* step 3: Kubernetes' stabilizeRecommendationWithBehaviors */
	int up_rec = rec, down_rec = rec;
	for (size_t i = 0; i < in->n_recs; i++) {
		const iac_autoscale_point *r = &in->recs[i];
		if (r->t > in->now - s->up_stabilization && r->value < up_rec)
			up_rec = r->value;
		if (r->t > in->now - s->down_stabilization && r->value > down_rec)
			down_rec = r->value;
	}
	int want = cur;
	if (want < up_rec)
		want = up_rec;
	if (want > down_rec)
		want = down_rec;
	if (want > rec && rec < cur)
		append(out->reason, sizeof(out->reason), "; held at %d by the highest recommendation of the last %gs",
		       want, s->down_stabilization);
	else if (want < rec && rec > cur)
		append(out->reason, sizeof(out->reason), "; held at %d by the lowest recommendation of the last %gs",
		       want, s->up_stabilization);

	/* step 4: rate limits, counting what moved within the period already */
	if (want > cur) {
		int limit = cur - moved_within(in, s->up_period, 1) + s->up_max_step;
		if (limit < cur)
			limit = cur;
		if (want > limit) {
			append(out->reason, sizeof(out->reason), "; scale-up limited to +%d per %gs: %d", s->up_max_step,
			       s->up_period, limit);
			want = limit;
		}
	} else if (want < cur) {
		int limit = cur + moved_within(in, s->down_period, -1) - s->down_max_step;
		if (limit > cur)
			limit = cur;
		if (want < limit) {
			append(out->reason, sizeof(out->reason), "; scale-down limited to -%d per %gs: %d",
			       s->down_max_step, s->down_period, limit);
			want = limit;
		}
	}
	out->desired = want;
clamp:
	if (out->desired > s->max) {
		append(out->reason, sizeof(out->reason), "; capped at max %d", s->max);
		out->desired = s->max;
	} else if (out->desired < s->min) {
		append(out->reason, sizeof(out->reason), "; raised to min %d", s->min);
		out->desired = s->min;
	}
}

/* lt_exec: the executors, as k6 names them (see engine_int.h).
 *
 * Closed model (constant-vus, ramping-vus): a number of VUs loop over
 * their iterations; each thread runs its share of the number the stages
 * give for now. Open model (constant-arrival-rate, ramping-arrival-rate):
 * iterations start at the times the rate gives, whatever the server's
 * response time; thread i starts iterations i, i + nthreads, ... so that
 * the threads together follow the rate without talking to each other.
 */
#include "iac/loadtest/engine_int.h"

#include <math.h>

#include "iac/core/util.h"

/* Thread id's part of total, the first ones taking the remainder. */
static int share(int total, int nthreads, int id)
{
	return total / nthreads + (id < total % nthreads);
}

static int pick_scenario(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	if (cfg->nscenarios == 1)
		return 0;
	/* smooth weighted round-robin: exact proportions, no randomness */
	w->scen_total++;
	double wsum = 0;
	for (size_t i = 0; i < cfg->nscenarios; i++)
		wsum += w->scen_weight[i];
	int best = 0;
	double bestd = -1e300;
	for (size_t i = 0; i < cfg->nscenarios; i++) {
		double deficit = w->scen_weight[i] / wsum * (double)w->scen_total - (double)w->scen_count[i];
		if (deficit > bestd) {
			bestd = deficit;
			best = (int)i;
		}
	}
	w->scen_count[best]++;
	return best;
}

void lt_exec_init(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	int nthreads = w->run->nthreads;
	w->open = cfg->executor == IAC_LT_CONSTANT_RATE || cfg->executor == IAC_LT_RAMPING_RATE;
	if (!w->open)
		return;
	w->cap = share(cfg->max_vus, nthreads, w->id);
	int pre = share(cfg->pre_vus, nthreads, w->id);
	w->idle = iac_xcalloc((size_t)(w->cap > 0 ? w->cap : 1), sizeof(*w->idle));
	for (int i = 0; i < pre; i++) {
		lt_vu *vu = lt_vu_new(w, 0);
		vu->state = VU_IDLE;
		w->idle[w->nidle++] = vu;
	}
	w->next_k = (uint64_t)w->id;
}

/* ---- closed model ---------------------------------------------------- */

/* VUs wanted in total at ms since start. */
static double closed_target(const iac_lt_config *cfg, double ms)
{
	if (cfg->executor == IAC_LT_CONSTANT_VUS)
		return cfg->vus;
	double prev = cfg->vus, t = 0;
	for (size_t i = 0; i < cfg->nstages; i++) {
		const iac_lt_stage *s = &cfg->stages[i];
		if (ms < t + s->dur_ms)
			return prev + (s->target - prev) * (ms - t) / s->dur_ms;
		t += s->dur_ms;
		prev = s->target;
	}
	return prev;
}

void lt_exec_closed(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	double ms = (double)(w->now - w->run->start_us) / 1e3;
	int total = (int)floor(closed_target(cfg, ms) + 0.5);
	int want = share(total, w->run->nthreads, w->id);
	int have = atomic_load(&w->active);
	w->target = want;
	for (size_t i = 0; i < w->nvus && have < want; i++) {
		lt_vu *vu = w->vus[i];
		if (vu->stopping) {   /* still finishing an iteration: keep it */
			vu->stopping = 0;
			lt_active_add(w);
			have++;
		}
	}
	for (size_t i = 0; i < w->nvus && have < want; i++) {
		lt_vu *vu = w->vus[i];
		if (vu->state == VU_OFF) {
			lt_active_add(w);
			have++;
			lt_vu_ready(vu);
		}
	}
	while (have < want) {
		lt_vu *vu = lt_vu_new(w, pick_scenario(w));
		lt_active_add(w);
		have++;
		lt_vu_ready(vu);
	}
	/* ramp down from the newest VU, letting iterations finish (k6's
	 * gracefulRampDown); a thinking VU stops at once */
	for (size_t i = w->nvus; i-- > 0 && have > want;) {
		lt_vu *vu = w->vus[i];
		if (vu->state == VU_OFF || vu->stopping)
			continue;
		have--;
		if (!vu->busy) {
			lt_vu_stop(vu);
		} else {
			vu->stopping = 1;
			atomic_fetch_sub(&w->active, 1);
		}
	}
}

/* ---- open model ------------------------------------------------------ */

/* When iteration k should start (ms), or INFINITY past the load phase. */
static double arrival_time(const iac_lt_config *cfg, double k)
{
	if (cfg->executor == IAC_LT_CONSTANT_RATE) {
		if (cfg->rate <= 0)
			return INFINITY;
		return k * cfg->time_unit_ms / cfg->rate;
	}
	double prev = cfg->rate / cfg->time_unit_ms, t = 0, c = 0;
	for (size_t i = 0; i < cfg->nstages; i++) {
		const iac_lt_stage *s = &cfg->stages[i];
		double r1 = s->target / cfg->time_unit_ms;
		double d = s->dur_ms;
		double cs = (prev + r1) * d / 2;
		if (k < c + cs) {
			double need = k - c;   /* solve prev*x + (r1-prev)/(2d) x^2 = need */
			double a = (r1 - prev) / (2 * d);
			double x;
			if (fabs(a) < 1e-15)
				x = need / prev;
			else
				x = (-prev + sqrt(prev * prev + 4 * a * need)) / (2 * a);
			if (x < 0)
				x = 0;
			if (x > d)
				x = d;
			return t + x;
		}
		c += cs;
		t += d;
		prev = r1;
	}
	return INFINITY;
}

void lt_exec_open(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	iac_lt_run *run = w->run;
	for (;;) {
		double at = arrival_time(cfg, (double)w->next_k);
		if (!(at < run->load_ms))
			return;
		uint64_t at_us = run->start_us + (uint64_t)(at * 1e3);
		if (at_us > w->now)
			return;
		w->next_k += (uint64_t)run->nthreads;
		lt_vu *vu = NULL;
		if (w->nidle) {
			vu = w->idle[--w->nidle];
		} else if ((int)w->nvus < w->cap) {
			vu = lt_vu_new(w, 0);
			w->idle = iac_xrealloc(w->idle, w->nvus * sizeof(*w->idle));
		}
		lt_tally_at(w);
		if (!vu) {
			w->d.dropped++;
			continue;
		}
		/* each iteration picks its scenario by weight */
		lt_vu_assign(vu, pick_scenario(w));
		vu->intended = at_us;
		lt_active_add(w);
		lt_vu_start(vu);
	}
}

uint64_t lt_exec_next_arrival(iac_lt_worker *w)
{
	double at = arrival_time(w->run->cfg, (double)w->next_k);
	if (!(at < w->run->load_ms))
		return UINT64_MAX;
	return w->run->start_us + (uint64_t)(at * 1e3);
}

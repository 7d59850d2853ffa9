/* lt_findings: ranked causes of saturation from the run's series (see
 * findings.h). Each rule is a short function returning 0 or 1 finding. */
#include "iac/loadtest/findings.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/util.h"

/* The thresholds, in one place. */
#define CLIENT_CPU_PCT 90.0   /* the generator's own CPU: its figures are suspect */
#define CLIENT_WAIT_PCT 30.0  /* its threads runnable but not running */
#define HOT_CPU_PCT 85.0      /* a host this busy is saturated */
#define COOL_CPU_PCT 60.0     /* ... and one at most this busy had room */
#define SLOW_RATIO 3.0        /* a server this many times slower than the others */
#define SLOW_MIN_MS 20.0      /* ... and at least this much slower */
#define NEAR_KNEE_S 3         /* onset within this many seconds of the knee */
#define DB_LAG_BYTES 1048576.0  /* a replica this far behind serves stale reads */

static double median(const double *v, size_t n)
{
	double *c = iac_xmalloc((n ? n : 1) * sizeof(*c));
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i]))
			continue;
		size_t j = m++;
		while (j > 0 && c[j - 1] > v[i]) {
			c[j] = c[j - 1];
			j--;
		}
		c[j] = v[i];
	}
	double r = m ? (m % 2 ? c[m / 2] : (c[m / 2 - 1] + c[m / 2]) / 2) : NAN;
	free(c);
	return r;
}

size_t iac_lt_p99_knee(double *base, const double *p99, size_t n)
{
	size_t early = n / 5 < 2 ? 2 : n / 5;
	*base = median(p99, early < n ? early : n);
	if (isnan(*base))
		return n;
	for (size_t s = early; s + 1 < n; s++) {
		double lim = fmax(*base * 3, *base + 5);
		if (!isnan(p99[s]) && p99[s] > lim && (isnan(p99[s + 1]) || p99[s + 1] > lim))
			return s;
	}
	return n;
}

/* First second from which v stays at or above lim for `hold` seconds
 * (NaN seconds are skipped, not counted); -1 when never. *peak: highest. */
static long onset(double *peak, const double *v, size_t n, double lim, size_t hold)
{
	size_t run = 0;
	long start = -1, found = -1;
	*peak = NAN;
	for (size_t s = 0; v && s < n; s++) {
		if (isnan(v[s]))
			continue;
		if (isnan(*peak) || v[s] > *peak)
			*peak = v[s];
		if (v[s] >= lim) {
			if (!run++)
				start = (long)s;
			if (run >= hold && found < 0)
				found = start;
		} else {
			run = 0;
		}
	}
	return found;
}

static double mean(const double *v, size_t n)
{
	double sum = 0;
	size_t m = 0;
	for (size_t s = 0; v && s < n; s++)
		if (!isnan(v[s])) {
			sum += v[s];
			m++;
		}
	return m ? sum / (double)m : NAN;
}

typedef struct {
	iac_lt_finding *v;
	size_t n;
	long knee;               /* -1: no knee */
	double base, at_knee;    /* p99 before, at the knee */
} acc;

static void add(acc *a, const char *kind, double score, long at, iac_buf *text)
{
	if (a->knee >= 0 && at >= 0 && labs(at - a->knee) <= NEAR_KNEE_S) {
		score += 1;
		iac_buf_printf(text, "; p99 rose from %.1f ms to %.1f ms at t=%ld s", a->base, a->at_knee, a->knee);
	}
	a->v = iac_xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
	a->v[a->n++] = (iac_lt_finding){ .kind = kind, .score = score, .onset = at, .text = iac_buf_detach(text) };
}

static void rule_client(acc *a, const iac_lt_signals *s)
{
	double peak, wpeak, bpeak;
	long at = onset(&peak, s->client_cpu, s->n, CLIENT_CPU_PCT, 3);
	long wat = onset(&wpeak, s->client_wait, s->n, CLIENT_WAIT_PCT, 3);
	/* on a shared machine a saturated thread splits its time between
	 * running and waiting for a CPU (70 % + 25 %): neither alone says it,
	 * their sum does */
	double *busy = iac_xmalloc((s->n ? s->n : 1) * sizeof(double));
	for (size_t i = 0; i < s->n; i++)
		busy[i] = s->client_cpu && s->client_wait ? s->client_cpu[i] + s->client_wait[i] : NAN;
	long bat = onset(&bpeak, busy, s->n, CLIENT_CPU_PCT, 3);
	free(busy);
	iac_buf b = IAC_BUF_INIT;
	if (at < 0 && wat < 0 && bat < 0)
		return;
	if (at >= 0)
		iac_buf_printf(&b, "bottleneck: the load generator (its CPU at %.0f %% from t=%ld s)", peak, at);
	else if (wat >= 0)
		iac_buf_printf(&b, "bottleneck: the load generator (its threads waited for a CPU %.0f %% of the time "
			       "from t=%ld s)", wpeak, wat);
	else
		iac_buf_printf(&b, "bottleneck: the load generator (its threads ran or waited for a CPU %.0f %% of "
			       "the time from t=%ld s)", bpeak, bat);
	iac_buf_puts(&b, ": the target may take more than these figures; give it more cores, fewer other "
			 "processes, or more load generators");
	/* it invalidates the run: ranked above any server-side finding */
	add(a, "client", 4, at >= 0 ? at : wat >= 0 ? wat : bat, &b);
}

static void rule_queue(acc *a, const iac_lt_signals *s)
{
	double peak;
	long at = onset(&peak, s->lb_queue, s->n, 1, 2);
	if (at < 0)
		return;
	iac_buf b = IAC_BUF_INIT;
	iac_buf_printf(&b, "bottleneck: requests queued in HAProxy (up to %.0f waiting, from t=%ld s): every server "
		       "was at its maxconn; add servers or raise maxconn if they have room", peak, at);
	add(a, "queue", 2 + log10(1 + peak), at, &b);
}

/* One server much slower than the median of the others. */
static void rule_server(acc *a, const iac_lt_signals *s)
{
	if (s->nservers < 2)
		return;
	double *m = iac_xmalloc(s->nservers * sizeof(*m)), *others = iac_xmalloc(s->nservers * sizeof(*others));
	for (size_t i = 0; i < s->nservers; i++)
		m[i] = mean(s->server_rtime[i], s->n);
	for (size_t i = 0; i < s->nservers; i++) {
		size_t k = 0;
		for (size_t j = 0; j < s->nservers; j++)
			if (j != i)
				others[k++] = m[j];
		double rest = median(others, k), peak;
		if (isnan(m[i]) || isnan(rest) || m[i] < rest * SLOW_RATIO || m[i] - rest < SLOW_MIN_MS)
			continue;
		long at = onset(&peak, s->server_rtime[i], s->n, rest * SLOW_RATIO, 2);
		iac_buf b = IAC_BUF_INIT;
		iac_buf_printf(&b, "bottleneck: server '%s' answered slowly (%.0f ms on average against %.0f ms on the "
			       "others): a slow or starved host; the others had room",
			       s->server[i], m[i], rest);
		add(a, "server", 2 + log10(m[i] / fmax(rest, 1)), at, &b);
	}
	free(m);
	free(others);
}

static void rule_cpu(acc *a, const iac_lt_signals *s)
{
	size_t hot = 0, cool = 0;
	long first = -1;
	double *peak = iac_xcalloc(s->nhosts ? s->nhosts : 1, sizeof(*peak));
	long *at = iac_xcalloc(s->nhosts ? s->nhosts : 1, sizeof(*at));
	for (size_t h = 0; h < s->nhosts; h++) {
		at[h] = onset(&peak[h], s->host_cpu[h], s->n, HOT_CPU_PCT, 3);
		hot += at[h] >= 0;
		cool += at[h] < 0 && !isnan(peak[h]) && peak[h] <= COOL_CPU_PCT;
		if (at[h] >= 0 && (first < 0 || at[h] < first))
			first = at[h];
	}
	iac_buf b = IAC_BUF_INIT;
	if (hot && cool) {
		iac_buf_puts(&b, "bottleneck: CPU on");
		for (size_t h = 0, k = 0; h < s->nhosts; h++)
			if (at[h] >= 0)
				iac_buf_printf(&b, "%s %s (%.0f %% from t=%ld s)", k++ ? "," : "", s->host[h], peak[h], at[h]);
		iac_buf_puts(&b, " while");
		for (size_t h = 0, k = 0; h < s->nhosts; h++)
			if (at[h] < 0 && !isnan(peak[h]) && peak[h] <= COOL_CPU_PCT)
				iac_buf_printf(&b, "%s %s stayed at %.0f %%", k++ ? "," : "", s->host[h], peak[h]);
		iac_buf_puts(&b, ": uneven balancing, or a host with less CPU than the others (weights)");
		add(a, "cpu", 3, first, &b);
	} else if (hot) {
		iac_buf_puts(&b, "bottleneck: CPU on every busy host");
		for (size_t h = 0, k = 0; h < s->nhosts; h++)
			if (at[h] >= 0)
				iac_buf_printf(&b, "%s %s %.0f %%", k++ ? "," : "", s->host[h], peak[h]);
		iac_buf_printf(&b, " (from t=%ld s): add capacity", first);
		add(a, "cpu", 2.5, first, &b);
	}
	free(peak);
	free(at);
}

static void rule_db(acc *a, const iac_lt_signals *s)
{
	double peak;
	long at = onset(&peak, s->db_lag_bytes, s->n, DB_LAG_BYTES, 3);
	if (at < 0)
		return;
	/* the highest known lag of the run that made the finding; infinite
	 * (not streaming) only when nothing but that was seen */
	peak = INFINITY;
	for (size_t t = (size_t)at; t < s->n && (isnan(s->db_lag_bytes[t]) || s->db_lag_bytes[t] >= DB_LAG_BYTES); t++)
		if (isfinite(s->db_lag_bytes[t]) && (isinf(peak) || s->db_lag_bytes[t] > peak))
			peak = s->db_lag_bytes[t];
	iac_buf b = IAC_BUF_INIT;
	if (isinf(peak))
		iac_buf_printf(&b, "bottleneck: database replica '%s' stopped replicating (from t=%ld s)",
			       s->db_lagging ? s->db_lagging : "?", at);
	else
		iac_buf_printf(&b, "bottleneck: database replica '%s' fell behind its leader (up to %.1f MB from t=%ld s)",
			       s->db_lagging ? s->db_lagging : "?", peak / 1048576.0, at);
	iac_buf_puts(&b, ": writes outpace replication; reads from it are stale (max_lag takes it out of the ro pool)");
	add(a, "db", 2.5, at, &b);
}

static int by_score(const void *x, const void *y)
{
	const iac_lt_finding *a = x, *b = y;
	return a->score < b->score ? 1 : a->score > b->score ? -1 : 0;
}

size_t iac_lt_findings(iac_lt_finding **out, const iac_lt_signals *s)
{
	acc a = { .knee = -1 };
	size_t k = s->p99_ms ? iac_lt_p99_knee(&a.base, s->p99_ms, s->n) : s->n;
	if (k < s->n) {
		a.knee = (long)k;
		a.at_knee = s->p99_ms[k];
	}
	rule_client(&a, s);
	rule_queue(&a, s);
	rule_server(&a, s);
	rule_cpu(&a, s);
	rule_db(&a, s);
	if (!a.n && a.knee >= 0) {
		iac_buf b = IAC_BUF_INIT;
		iac_buf_printf(&b, "latency: p99 rose from %.1f ms to %.1f ms at t=%ld s with nothing observed saturated; "
			       "observe the hosts and HAProxy (observe = { hosts = {...}, haproxy = ... }) to see why",
			       a.base, a.at_knee, a.knee);
		a.v = iac_xrealloc(a.v, sizeof(*a.v));
		a.v[a.n++] = (iac_lt_finding){ .kind = "latency", .score = 0.5, .onset = a.knee,
					       .text = iac_buf_detach(&b) };
	}
	if (a.n > 1)
		qsort(a.v, a.n, sizeof(*a.v), by_score);
	*out = a.v;
	return a.n;
}

void iac_lt_findings_free(iac_lt_finding *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i].text);
	free(f);
}

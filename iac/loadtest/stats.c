/* lt_stats: per-thread and total load-test figures (see stats.h). */
#include "iac/loadtest/stats.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/util.h"

#define MAX_SCRIPT_MSGS 20

const char *iac_lt_errkind_name(enum iac_lt_errkind k)
{
	static const char *names[] = { "connect", "timeout", "closed", "parse", "tls", "other" };
	return k < IAC_LT_NERR ? names[k] : "other";
}

const char *iac_lt_mtype_name(enum iac_lt_mtype t)
{
	static const char *names[] = { "counter", "gauge", "rate", "trend" };
	return names[t];
}

size_t iac_lt_stats_metric(iac_lt_stats *s, const char *name, enum iac_lt_mtype t)
{
	void *v = iac_map_get(&s->maccmap, name);
	if (v)
		return (size_t)((uintptr_t)v - 1);
	s->macc = iac_xrealloc(s->macc, (s->nmacc + 1) * sizeof(*s->macc));
	iac_lt_macc *m = &s->macc[s->nmacc];
	memset(m, 0, sizeof(*m));
	m->name = iac_xstrdup(name);
	m->type = t;
	iac_map_put(&s->maccmap, name, (void *)(uintptr_t)(s->nmacc + 1));
	return s->nmacc++;
}

const iac_lt_macc *iac_lt_stats_find_metric(const iac_lt_stats *s, const char *name)
{
	void *v = iac_map_get(&s->maccmap, name);
	return v ? &s->macc[(uintptr_t)v - 1] : NULL;
}

void iac_lt_macc_add(iac_lt_macc *m, double v, uint64_t at)
{
	if (m->type == IAC_LT_GAUGE && (!m->n || v < m->min))
		m->min = v;
	if (m->type == IAC_LT_GAUGE && (!m->n || v > m->max))
		m->max = v;
	m->n++;
	switch (m->type) {
	case IAC_LT_COUNTER:
		m->sum += v;
		break;
	case IAC_LT_GAUGE:
		if (at >= m->last_at) {
			m->last = v;
			m->last_at = at;
		}
		break;
	case IAC_LT_RATE:
		m->nonzero += v != 0;
		break;
	case IAC_LT_TREND:
		if (!m->hist) {
			m->hist = iac_xmalloc(sizeof(*m->hist));
			iac_lt_hist_init(m->hist);
		}
		iac_lt_hist_record(m->hist, v > 0 ? (uint64_t)(v * 1e3 + 0.5) : 0);
		break;
	}
}

/* into += from for one metric (same name and type). */
static void macc_merge(iac_lt_macc *t, const iac_lt_macc *f)
{
	if (f->type == IAC_LT_GAUGE) {
		if (!t->n || f->min < t->min)
			t->min = f->min;
		if (!t->n || f->max > t->max)
			t->max = f->max;
		if (f->last_at >= t->last_at) {
			t->last = f->last;
			t->last_at = f->last_at;
		}
	}
	t->n += f->n;
	t->nonzero += f->nonzero;
	t->sum += f->sum;
	if (f->hist && f->hist->count) {
		if (!t->hist) {
			t->hist = iac_xmalloc(sizeof(*t->hist));
			iac_lt_hist_init(t->hist);
		}
		iac_lt_hist_merge(t->hist, f->hist);
	}
}

void iac_lt_stats_init(iac_lt_stats *s)
{
	memset(s, 0, sizeof(*s));
	iac_lt_hist_init(&s->hist);
	iac_lt_hist_init(&s->tls_hist);
}

void iac_lt_stats_free(iac_lt_stats *s)
{
	for (size_t i = 0; i < s->neps; i++) {
		free(s->eps[i]->name);
		free(s->eps[i]);
	}
	free(s->eps);
	iac_map_free(&s->epmap);
	for (size_t i = 0; i < s->nchecks; i++)
		free(s->checks[i].name);
	free(s->checks);
	iac_map_free(&s->checkmap);
	for (size_t i = 0; i < s->nscript_msgs; i++)
		free(s->script_msgs[i]);
	free(s->script_msgs);
	free(s->script_counts);
	for (size_t i = 0; i < s->ntls_msgs; i++)
		free(s->tls_msgs[i]);
	free(s->tls_msgs);
	free(s->tls_counts);
	for (size_t i = 0; i < s->nmacc; i++) {
		free(s->macc[i].name);
		free(s->macc[i].hist);
	}
	free(s->macc);
	iac_map_free(&s->maccmap);
	memset(s, 0, sizeof(*s));
}

size_t iac_lt_stats_endpoint(iac_lt_stats *s, const char *name)
{
	void *v = iac_map_get(&s->epmap, name);
	if (v)
		return (size_t)((uintptr_t)v - 1);
	if (s->neps >= IAC_LT_MAX_ENDPOINTS && strcmp(name, "(other)"))
		return iac_lt_stats_endpoint(s, "(other)");
	iac_lt_endpoint *e = iac_xcalloc(1, sizeof(*e));
	e->name = iac_xstrdup(name);
	iac_lt_hist_init(&e->hist);
	s->eps = iac_xrealloc(s->eps, (s->neps + 1) * sizeof(*s->eps));
	s->eps[s->neps] = e;
	iac_map_put(&s->epmap, name, (void *)(uintptr_t)(s->neps + 1));
	return s->neps++;
}

const iac_lt_endpoint *iac_lt_stats_find_endpoint(const iac_lt_stats *s, const char *name)
{
	void *v = iac_map_get(&s->epmap, name);
	return v ? s->eps[(uintptr_t)v - 1] : NULL;
}

size_t iac_lt_stats_check(iac_lt_stats *s, const char *name)
{
	void *v = iac_map_get(&s->checkmap, name);
	if (v)
		return (size_t)((uintptr_t)v - 1);
	s->checks = iac_xrealloc(s->checks, (s->nchecks + 1) * sizeof(*s->checks));
	s->checks[s->nchecks].name = iac_xstrdup(name);
	s->checks[s->nchecks].pass = s->checks[s->nchecks].fail = 0;
	iac_map_put(&s->checkmap, name, (void *)(uintptr_t)(s->nchecks + 1));
	return s->nchecks++;
}

/* n more of msg in a list of distinct messages (script or TLS errors). */
static void add_msg(char ***msgs, uint64_t **counts, size_t *nmsgs, const char *msg, uint64_t n)
{
	for (size_t i = 0; i < *nmsgs; i++)
		if (!strcmp((*msgs)[i], msg)) {
			(*counts)[i] += n;
			return;
		}
	if (*nmsgs >= MAX_SCRIPT_MSGS)
		return;
	*msgs = iac_xrealloc(*msgs, (*nmsgs + 1) * sizeof(**msgs));
	*counts = iac_xrealloc(*counts, (*nmsgs + 1) * sizeof(**counts));
	(*msgs)[*nmsgs] = iac_xstrdup(msg);
	(*counts)[(*nmsgs)++] = n;
}

void iac_lt_stats_script_error(iac_lt_stats *s, const char *msg)
{
	s->script_errors++;
	add_msg(&s->script_msgs, &s->script_counts, &s->nscript_msgs, msg, 1);
}

void iac_lt_stats_tls_error(iac_lt_stats *s, const char *msg)
{
	add_msg(&s->tls_msgs, &s->tls_counts, &s->ntls_msgs, msg, 1);
}

void iac_lt_stats_merge(iac_lt_stats *into, const iac_lt_stats *from)
{
	into->requests += from->requests;
	into->failed += from->failed;
	into->iterations += from->iterations;
	into->dropped += from->dropped;
	into->script_errors += from->script_errors;
	into->bytes_in += from->bytes_in;
	into->bytes_out += from->bytes_out;
	for (int i = 0; i < IAC_LT_NERR; i++)
		into->transport[i] += from->transport[i];
	for (int i = 0; i < 600; i++)
		into->status[i] += from->status[i];
	iac_lt_hist_merge(&into->hist, &from->hist);
	for (size_t i = 0; i < from->neps; i++) {
		const iac_lt_endpoint *f = from->eps[i];
		if (!f->requests)
			continue;
		size_t ti = iac_lt_stats_endpoint(into, f->name);   /* may move into->eps */
		iac_lt_endpoint *t = into->eps[ti];
		t->requests += f->requests;
		t->failed += f->failed;
		iac_lt_hist_merge(&t->hist, &f->hist);
	}
	for (size_t i = 0; i < from->nchecks; i++) {
		size_t ti = iac_lt_stats_check(into, from->checks[i].name);   /* may move into->checks */
		iac_lt_check *t = &into->checks[ti];
		t->pass += from->checks[i].pass;
		t->fail += from->checks[i].fail;
	}
	for (size_t i = 0; i < from->nscript_msgs; i++)
		if (from->script_counts[i])
			add_msg(&into->script_msgs, &into->script_counts, &into->nscript_msgs, from->script_msgs[i],
				from->script_counts[i]);
	into->tls_handshakes += from->tls_handshakes;
	into->tls_resumed += from->tls_resumed;
	if (from->tls_hist.count)
		iac_lt_hist_merge(&into->tls_hist, &from->tls_hist);
	for (size_t i = 0; i < from->ntls_msgs; i++)
		if (from->tls_counts[i])
			add_msg(&into->tls_msgs, &into->tls_counts, &into->ntls_msgs, from->tls_msgs[i],
				from->tls_counts[i]);
	for (size_t i = 0; i < from->nmacc; i++) {
		const iac_lt_macc *f = &from->macc[i];
		if (!f->n)
			continue;
		size_t ti = iac_lt_stats_metric(into, f->name, f->type);   /* may move into->macc */
		macc_merge(&into->macc[ti], f);
	}
}

void iac_lt_stats_clear(iac_lt_stats *s)
{
	s->requests = s->failed = s->iterations = s->dropped = s->script_errors = 0;
	s->bytes_in = s->bytes_out = 0;
	memset(s->transport, 0, sizeof(s->transport));
	memset(s->status, 0, sizeof(s->status));
	if (s->hist.count)
		iac_lt_hist_init(&s->hist);
	for (size_t i = 0; i < s->neps; i++) {
		iac_lt_endpoint *e = s->eps[i];
		e->requests = e->failed = 0;
		if (e->hist.count)
			iac_lt_hist_init(&e->hist);
	}
	for (size_t i = 0; i < s->nchecks; i++)
		s->checks[i].pass = s->checks[i].fail = 0;
	for (size_t i = 0; i < s->nscript_msgs; i++)
		s->script_counts[i] = 0;
	s->tls_handshakes = s->tls_resumed = 0;
	if (s->tls_hist.count)
		iac_lt_hist_init(&s->tls_hist);
	for (size_t i = 0; i < s->ntls_msgs; i++)
		s->tls_counts[i] = 0;
	for (size_t i = 0; i < s->nmacc; i++) {
		iac_lt_macc *m = &s->macc[i];
		m->n = m->nonzero = 0;
		m->sum = m->last = m->min = m->max = 0;
		m->last_at = 0;
		if (m->hist && m->hist->count)
			iac_lt_hist_init(m->hist);
	}
}

/* lt_hist: HdrHistogram-style latency histogram (see hist.h). Written here
 * because Debian packages no C HdrHistogram (hdrhistogram-c is not in
 * bookworm); it is 150 lines and exactly what the reports need. */
#include "iac/loadtest/hist.h"

#include <math.h>
#include <string.h>

#define HALF_BITS (IAC_LT_HIST_SUB_BITS - 1)
#define HALF_COUNT (1 << HALF_BITS)
#define SUB_MASK ((1ULL << IAC_LT_HIST_SUB_BITS) - 1)

void iac_lt_hist_init(iac_lt_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

int iac_lt_hist_index(uint64_t v)
{
	if (v > IAC_LT_HIST_MAX_US)
		v = IAC_LT_HIST_MAX_US;
	/* bucket b holds [2^(b+7), 2^(b+8)) in steps of 2^b; bucket 0 also
	 * holds everything below 256 exactly */
	int b = 63 - __builtin_clzll(v | SUB_MASK) - HALF_BITS;
	int sb = (int)(v >> b);
	return (b << HALF_BITS) + sb;
}

uint64_t iac_lt_hist_lowest(int i)
{
	if (i < (1 << IAC_LT_HIST_SUB_BITS))
		return (uint64_t)i;
	int b = (i >> HALF_BITS) - 1;
	uint64_t sb = (uint64_t)((i & (HALF_COUNT - 1)) + HALF_COUNT);
	return sb << b;
}

uint64_t iac_lt_hist_highest(int i)
{
	int b = i < (1 << IAC_LT_HIST_SUB_BITS) ? 0 : (i >> HALF_BITS) - 1;
	return iac_lt_hist_lowest(i) + (1ULL << b) - 1;
}

void iac_lt_hist_record_n(iac_lt_hist *h, uint64_t us, uint64_t n)
{
	if (!n)
		return;
	h->counts[iac_lt_hist_index(us)] += n;
	h->count += n;
	h->sum += (double)us * (double)n;
	if (us < h->min)
		h->min = us;
	if (us > h->max)
		h->max = us;
}

void iac_lt_hist_record(iac_lt_hist *h, uint64_t us)
{
	iac_lt_hist_record_n(h, us, 1);
}

void iac_lt_hist_merge(iac_lt_hist *into, const iac_lt_hist *from)
{
	if (!from->count)
		return;
	for (int i = 0; i < IAC_LT_HIST_LEN; i++)
		into->counts[i] += from->counts[i];
	into->count += from->count;
	into->sum += from->sum;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t iac_lt_hist_percentile(const iac_lt_hist *h, double p)
{
	if (!h->count)
		return 0;
	if (p >= 100.0)
		return h->max;
	if (p < 0)
		p = 0;
	uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (want < 1)
		want = 1;
	uint64_t seen = 0;
	for (int i = 0; i < IAC_LT_HIST_LEN; i++) {
		seen += h->counts[i];
		if (seen >= want) {
			uint64_t v = iac_lt_hist_highest(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double iac_lt_hist_mean(const iac_lt_hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}

/* lt_hist: a latency histogram with bounded relative error, HdrHistogram's
 * layout (log-linear buckets).
 *
 * Values are microseconds. Every value up to 2^32-1 us (about 71 minutes) is
 * kept with a relative error below 1/128 (0.8 %); larger values are clamped.
 * Memory is fixed (about 26 KiB per histogram) whatever the number of
 * samples, and two histograms merge by adding their counters, so each worker
 * thread records into its own and the main thread adds them up.
 *
 * The struct is plain data: it may be copied across threads. It owns nothing.
 */
#ifndef IAC_LOADTEST_HIST_H
#define IAC_LOADTEST_HIST_H

#include <stdint.h>

#define IAC_LT_HIST_SUB_BITS 8        /* 256 sub-buckets: 7 bits of precision */
#define IAC_LT_HIST_MAX_US 0xffffffffULL
#define IAC_LT_HIST_LEN 3328          /* (32 - 8) * 128 + 256 */

typedef struct {
	uint64_t count;
	uint64_t min, max;                 /* exact; min is UINT64_MAX when empty */
	double sum;                        /* for the mean */
	uint64_t counts[IAC_LT_HIST_LEN];
} iac_lt_hist;

void iac_lt_hist_init(iac_lt_hist *h);
void iac_lt_hist_record(iac_lt_hist *h, uint64_t us);
/* Add n identical samples. */
void iac_lt_hist_record_n(iac_lt_hist *h, uint64_t us, uint64_t n);
/* into += from */
void iac_lt_hist_merge(iac_lt_hist *into, const iac_lt_hist *from);
/* The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding the ceil(p% * count)-th sample, never above max. 0 if empty. */
uint64_t iac_lt_hist_percentile(const iac_lt_hist *h, double p);
double iac_lt_hist_mean(const iac_lt_hist *h);
/* Index of the bucket holding us, and the bucket's value range (for tests). */
int iac_lt_hist_index(uint64_t us);
uint64_t iac_lt_hist_lowest(int index);
uint64_t iac_lt_hist_highest(int index);

#endif

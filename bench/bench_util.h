/* SPDX-License-Identifier: MIT */
/* Helpers the baseline benchmarks (raw_ofi, raw_verbs, tls_tcp) share. */
#ifndef SRDMA_BENCH_UTIL_H
#define SRDMA_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "64", "4K", "1M", "1G" -> bytes; -1 on anything else. */
static inline int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return -1;
	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	else if (*end == 'g' || *end == 'G')
		v <<= 30, end++;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v and reads its median and 99th percentile (0 when empty). */
static inline void pct(double *v, size_t n, double *p50, double *p99)
{
	qsort(v, n, sizeof(*v), cmp_double);
	*p50 = n ? v[n / 2] : 0;
	*p99 = n ? v[(size_t)((double)(n - 1) * 0.99)] : 0;
}

#endif

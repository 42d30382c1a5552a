// SPDX-License-Identifier: MIT
/*
 * Shared benchmark arithmetic (bench/stats.h).
 */
#include "bench/stats.h"

#include <stdlib.h>
#include <string.h>

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double
bench_median(const double *v, unsigned n)
{
	double s[BENCH_MAX_ROUNDS];

	if (n == 0 || n > BENCH_MAX_ROUNDS)
		abort(); /* a benchmark checks its round count at start */
	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

bool
bench_row_wanted(const char *env, const char *name)
{
	const char *want = getenv(env);
	size_t n = strlen(name);

	for (const char *p = want; p && (p = strstr(p, name)) != NULL; p += n) {
		if ((p == want || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return true;
	}
	return !want || !*want;
}

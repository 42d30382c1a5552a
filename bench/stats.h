/* SPDX-License-Identifier: MIT */
/*
 * What every benchmark in bench/ shares: the median of its rounds and the
 * choice of rows to run from an environment variable.
 */
#ifndef CFS_BENCH_STATS_H
#define CFS_BENCH_STATS_H

#include <stdbool.h>

/* The most rounds a benchmark may run (bench_median's bound). */
#define BENCH_MAX_ROUNDS 64

/** The median of v[0, n), 0 < n <= BENCH_MAX_ROUNDS; v is left as it is. */
double bench_median(const double *v, unsigned n);

/** Whether row `name` runs: the environment variable `env` is unset or empty
 *  (every row), or a comma-separated list that names it. */
bool bench_row_wanted(const char *env, const char *name);

#endif

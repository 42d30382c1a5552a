/* SPDX-License-Identifier: MIT */
/*
 * The fio baseline both storage benchmarks compare with: run fio once and
 * read one number of one direction from its JSON report.
 */
#ifndef CFS_BENCH_FIO_H
#define CFS_BENCH_FIO_H

/**
 * Run `fio ARGS` (the job's options, without output options), for `seconds`
 * (time based; 0: one pass over the job's file), and read field `field` (e.g.
 * "iops", "bw_bytes") of direction `dir` ("read", "write") from its report.
 * @return the value; -1 when fio did not run or reported no such field.
 */
double bench_fio(const char *args, double seconds, const char *dir, const char *field);

#endif

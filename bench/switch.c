// SPDX-License-Identifier: MIT
/*
 * bench_switch: what one wake-up costs on this machine, the unit every
 * request/response round trip between two processes pays twice.
 *
 * Two parties pass one byte back and forth over a pair of pipes, each
 * blocking in read() until the other writes: every pass is a wake-up of a
 * sleeping task. Rows:
 *   - two threads of one process, both on one CPU (a switch that keeps the
 *     address space);
 *   - two processes on one CPU (the switch also changes address space: what
 *     a client process and chainfsd on one CPU pay);
 *   - two threads, and two processes, on two CPUs (each wake-up is an
 *     interprocessor interrupt; on a VM, through the hypervisor).
 * Rounds alternate the rows; medians of the round trip in microseconds.
 * Baseline of the ratios: threads on one CPU.
 *
 * Usage: bench_switch [ROUND_TRIPS [ROUNDS]] (defaults 100000, 5).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/stats.h"

struct party {
	int in, out; /* read from in, write to out */
	int cpu;     /* pinned there */
	unsigned trips;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int
pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -errno;
}

/* The answering side: echo every byte back. */
static void *
echo_main(void *arg)
{
	const struct party *p = arg;
	char c;

	if (pin(p->cpu) != 0)
		return (void *)1;
	for (unsigned i = 0; i < p->trips; i++) {
		if (read(p->in, &c, 1) != 1 || write(p->out, &c, 1) != 1)
			return (void *)1;
	}
	return NULL;
}

/* Microseconds per round trip between this thread on cpu_a and an echoing
 * thread or process on cpu_b; negative errno on failure. */
static double
round_trip_us(bool process, int cpu_a, int cpu_b, unsigned trips)
{
	int ab[2], ba[2];
	struct party echo;
	pthread_t th;
	pid_t pid = -1;
	double t0, t = -EIO;
	char c = 'x';
	void *ret = NULL;

	if (pipe(ab) != 0 || pipe(ba) != 0)
		return -errno;
	echo = (struct party){.in = ab[0], .out = ba[1], .cpu = cpu_b, .trips = trips};
	if (process) {
		pid = fork();
		if (pid < 0)
			goto out;
		if (pid == 0)
			_exit(echo_main(&echo) == NULL ? 0 : 1);
	} else if (pthread_create(&th, NULL, echo_main, &echo) != 0) {
		goto out;
	}
	if (pin(cpu_a) != 0)
		goto join;
	/* One untimed trip: both sides are running and placed. */
	if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
		goto join;
	t0 = now_s();
	for (unsigned i = 1; i < trips; i++) {
		if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
			goto join;
	}
	t = (now_s() - t0) * 1e6 / (trips - 1);
join:
	if (t < 0) {
		/* The echo side blocks in read: closing our end ends it. */
		close(ab[1]);
		ab[1] = -1;
	}
	if (process) {
		int st;

		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			t = -EIO;
	} else if (pthread_join(th, &ret) != 0 || ret != NULL) {
		t = -EIO;
	}
out:
	close(ab[0]);
	if (ab[1] >= 0)
		close(ab[1]);
	close(ba[0]);
	close(ba[1]);
	return t;
}

int
main(int argc, char **argv)
{
	static const char *const names[4] = {"threads, one CPU", "processes, one CPU",
					     "threads, two CPUs", "processes, two CPUs"};
	unsigned trips = argc > 1 ? (unsigned)atoi(argv[1]) : 100000;
	unsigned rounds = argc > 2 ? (unsigned)atoi(argv[2]) : 5;
	double us[4][BENCH_MAX_ROUNDS], med[4];
	cpu_set_t allowed;
	int cpu[2] = {-1, -1}, n = 0;

	if (trips < 2 || rounds == 0 || rounds > BENCH_MAX_ROUNDS) {
		fprintf(stderr, "usage: bench_switch [ROUND_TRIPS (>= 2) [ROUNDS (1..%u)]]\n",
			BENCH_MAX_ROUNDS);
		return 2;
	}
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		perror("sched_getaffinity");
		return 1;
	}
	for (int i = 0; i < CPU_SETSIZE && n < 2; i++)
		if (CPU_ISSET(i, &allowed))
			cpu[n++] = i;
	if (n < 2) {
		fprintf(stderr, "bench_switch: needs two CPUs, has %d\n", n);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bench_switch: %u round trips per row and round, %u rounds, CPUs %d and %d\n", trips,
	       rounds, cpu[0], cpu[1]);
	for (unsigned r = 0; r < rounds; r++) {
		for (int k = 0; k < 4; k++) {
			us[k][r] = round_trip_us(k & 1, cpu[1], k < 2 ? cpu[1] : cpu[0], trips);
			if (us[k][r] < 0) {
				fprintf(stderr, "bench_switch: %s: %s\n", names[k],
					strerror((int)-us[k][r]));
				return 1;
			}
		}
	}
	printf("\n%-22s %14s %8s\n", "row (median)", "us/round trip", "ratio");
	for (int k = 0; k < 4; k++) {
		med[k] = bench_median(us[k], rounds);
		printf("%-22s %14.2f %8.2f\n", names[k], med[k], med[k] / med[0]);
	}
	printf("ratio: process_one_cpu=%.2f thread_two_cpus=%.2f process_two_cpus=%.2f\n",
	       med[1] / med[0], med[2] / med[0], med[3] / med[0]);
	return 0;
}

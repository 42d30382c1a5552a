/* SPDX-License-Identifier: MIT */
/*
 * bench_disk_passes: how the disk under a directory takes a wave of 32 random
 * 4 KiB O_DIRECT reads handed to it in parts. A diagnostic behind the I/O
 * engine's kick (src/disk/aio.c): on a device that works in passes, sending
 * the first part of a wave at once and the rest while the device works can
 * finish the wave sooner than one io_submit of all 32, or split it into two
 * passes, depending on the size of the first part.
 *
 * Usage: bench_disk_passes [DIR [WAVES]]. DIR (default /var/tmp) gets a
 * 256 MiB file written once (reads of never-written extents never reach the
 * device) and removed at the end. Each split below runs WAVES waves (default
 * 2000), the splits taking turns wave by wave so that they share the
 * machine's noise. One aio context, as the engine has per loop; each part is
 * one io_submit, the next one issued as soon as the previous returns; then the
 * program waits for all 32 completions, blocking as the daemon does.
 *
 * Prints, per split, the medians of: the wave (first io_submit called to last
 * completion), the first io_submit call, and the share of waves whose first
 * part completed at least 5 us before the rest (a pass of its own). The last
 * line, "ratio: kick_8_24=X", is the wave of one io_submit of 32 divided by
 * the wave of 8 then 24 (the engine's kick with bench_storage's batches):
 * above 1, the kick finishes waves sooner on this disk.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT */
#endif
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAVE	   32
#define BS	   4096
#define FILE_BYTES (256ull << 20)
#define MAX_WAVES  100000

struct split {
	const char *name;
	unsigned parts[WAVE]; /* reads per io_submit, 0-terminated */
	double *wave, *first; /* per wave, us */
	unsigned separate;
};

static struct split g_splits[] = {
	{.name = "32", .parts = {32}},
	{.name = "1+31", .parts = {1, 31}},
	{.name = "2+30", .parts = {2, 30}},
	{.name = "4+28", .parts = {4, 28}},
	{.name = "8+24", .parts = {8, 24}},
	{.name = "16+16", .parts = {16, 16}},
	{.name = "8+8+8+8", .parts = {8, 8, 8, 8}},
};
#define NSPLITS (sizeof(g_splits) / sizeof(g_splits[0]))

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A file of FILE_BYTES whose every block has been written and synced. */
static int
make_file(const char *path)
{
	size_t chunk = 1 << 20;
	uint8_t *buf = malloc(chunk);
	int fd, rc = 0;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0x5a, chunk);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	for (uint64_t off = 0; off < FILE_BYTES && rc == 0; off += chunk) {
		errno = 0;
		if (pwrite(fd, buf, chunk, (off_t)off) != (ssize_t)chunk)
			rc = errno ? -errno : -EIO;
	}
	if (rc == 0 && fdatasync(fd) != 0)
		rc = -errno;
	close(fd);
out:
	free(buf);
	return rc;
}

/* One wave of WAVE reads in s's parts; returns 0 or a negative errno. */
static int
run_wave(io_context_t ctx, int fd, uint8_t *bufs, uint64_t *seed, struct split *s, unsigned w)
{
	struct iocb cbs[WAVE], *ptrs[WAVE];
	struct io_event ev[WAVE];
	unsigned first_n = s->parts[0], done = 0, at = 0;
	double t0, t1 = 0, last_first = 0, last_rest = 0;

	for (unsigned i = 0; i < WAVE; i++) {
		uint64_t block = rnd(seed) % (FILE_BYTES / BS);

		io_prep_pread(&cbs[i], fd, bufs + (size_t)i * BS, BS, (long long)(block * BS));
		cbs[i].data = (void *)(uintptr_t)i;
		ptrs[i] = &cbs[i];
	}
	t0 = now_us();
	for (unsigned p = 0; s->parts[p] != 0; p++) {
		unsigned n = s->parts[p];

		while (n > 0) {
			int rc = io_submit(ctx, (long)n, &ptrs[at]);

			if (rc <= 0)
				return rc < 0 ? rc : -EIO;
			at += (unsigned)rc;
			n -= (unsigned)rc;
		}
		if (p == 0)
			t1 = now_us();
	}
	while (done < WAVE) {
		int n = io_getevents(ctx, 1, WAVE, ev, NULL);
		double t = now_us();

		if (n < 0) {
			if (n == -EINTR)
				continue;
			return n;
		}
		for (int k = 0; k < n; k++) {
			if ((long)ev[k].res != BS)
				return (long)ev[k].res < 0 ? (int)ev[k].res : -EIO;
			if ((uintptr_t)ev[k].data < first_n)
				last_first = t;
			else
				last_rest = t;
		}
		done += (unsigned)n;
	}
	if (last_rest == 0)
		last_rest = last_first;
	s->wave[w] = (last_first > last_rest ? last_first : last_rest) - t0;
	s->first[w] = t1 - t0;
	if (first_n < WAVE && last_first + 5 < last_rest)
		s->separate++;
	return 0;
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	unsigned waves = argc > 2 ? (unsigned)atoi(argv[2]) : 2000;
	char path[4096];
	io_context_t ctx = 0;
	uint64_t seed = 88172645463325252ull;
	double w32 = 0, w824 = 0;
	uint8_t *bufs = NULL;
	int fd = -1, rc;

	if (waves == 0 || waves > MAX_WAVES) {
		fprintf(stderr, "usage: bench_disk_passes [DIR [WAVES (1..%u)]]\n", MAX_WAVES);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/cfs-disk-passes.%ld", dir, (long)getpid());
	rc = make_file(path);
	if (rc == 0) {
		fd = open(path, O_RDONLY | O_DIRECT);
		if (fd < 0)
			rc = -errno;
	}
	if (rc == 0 && posix_memalign((void **)&bufs, BS, (size_t)WAVE * BS) != 0)
		rc = -ENOMEM;
	if (rc == 0)
		rc = io_setup(WAVE, &ctx);
	for (unsigned i = 0; i < NSPLITS && rc == 0; i++) {
		g_splits[i].wave = calloc(waves, sizeof(double));
		g_splits[i].first = calloc(waves, sizeof(double));
		if (!g_splits[i].wave || !g_splits[i].first)
			rc = -ENOMEM;
	}
	if (rc != 0) {
		fprintf(stderr, "bench_disk_passes: preparing %s: %s\n", path, strerror(-rc));
		goto out;
	}
	printf("bench_disk_passes: %u waves of %u random %u-byte reads per split, file %s\n", waves,
	       WAVE, BS, path);
	for (unsigned w = 0; w < waves && rc == 0; w++) {
		for (unsigned i = 0; i < NSPLITS && rc == 0; i++)
			rc = run_wave(ctx, fd, bufs, &seed, &g_splits[i], w);
	}
	if (rc != 0) {
		fprintf(stderr, "bench_disk_passes: reading %s: %s\n", path, strerror(-rc));
		goto out;
	}
	printf("\n%-10s %12s %14s %18s %12s\n", "split", "wave us", "1st submit us",
	       "1st part alone %", "reads/s");
	for (unsigned i = 0; i < NSPLITS; i++) {
		struct split *s = &g_splits[i];
		double mw = median(s->wave, waves);

		printf("%-10s %12.1f %14.1f %18.1f %12.0f\n", s->name, mw, median(s->first, waves),
		       100.0 * s->separate / waves, WAVE / mw * 1e6);
		if (strcmp(s->name, "32") == 0)
			w32 = mw;
		if (strcmp(s->name, "8+24") == 0)
			w824 = mw;
	}
	printf("ratio: kick_8_24=%.2f\n", w32 / w824);
out:
	for (unsigned i = 0; i < NSPLITS; i++) {
		free(g_splits[i].wave);
		free(g_splits[i].first);
	}
	if (ctx)
		io_destroy(ctx);
	free(bufs);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return rc == 0 ? 0 : 1;
}

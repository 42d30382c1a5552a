# bench/disk_*: micro-benchmark of the chunk engine (src/disk) alone, side by
# side with fio. Owned by the disk helper; included from bench/local.mk.
#   make bench-disk [BENCH_DISK_DIR=/var/tmp] [BENCH_ROUNDS=3]
EXTRA_PROGRAMS += bench/disk_bench
bench_disk_bench_SOURCES = bench/disk_bench.c
bench_disk_bench_LDADD = libcfs_disk.la libcfs_rt.la $(CFS_ALL_LIBS)
dist_noinst_SCRIPTS += bench/disk_compare.sh
# How the device takes a wave handed to it in parts (the engine's kick).
EXTRA_PROGRAMS += bench/bench_disk_passes
bench_bench_disk_passes_SOURCES = bench/disk_passes.c
bench_bench_disk_passes_LDADD = $(CFS_ALL_LIBS)

BENCH_DISK_DIR ?= /var/tmp
.PHONY: bench-disk bench-disk-passes
bench-disk: bench/disk_bench
	$(srcdir)/bench/disk_compare.sh bench/disk_bench $(BENCH_DISK_DIR) $(BENCH_ROUNDS)
bench-disk-passes: bench/bench_disk_passes
	bench/bench_disk_passes $(BENCH_DISK_DIR)

# bench/disk_*: micro-benchmark of the chunk engine (src/disk) alone, side by
# side with fio. Owned by the disk helper; included from bench/local.mk.
#   make bench-disk [BENCH_DISK_DIR=/var/tmp] [BENCH_ROUNDS=3]
EXTRA_PROGRAMS += bench/disk_bench
bench_disk_bench_SOURCES = bench/disk_bench.c
bench_disk_bench_LDADD = libcfs_disk.la libcfs_rt.la $(CFS_ALL_LIBS)
dist_noinst_SCRIPTS += bench/disk_compare.sh

BENCH_DISK_DIR ?= /var/tmp
.PHONY: bench-disk
bench-disk: bench/disk_bench
	$(srcdir)/bench/disk_compare.sh bench/disk_bench $(BENCH_DISK_DIR) $(BENCH_ROUNDS)

# Benchmarks: built by `make bench`, never part of `make check`.
EXTRA_PROGRAMS += bench/bench_rt
bench_bench_rt_SOURCES = bench/rt.c bench/stats.c bench/stats.h bench/net.c bench/net.h
bench_bench_rt_LDADD = libcfs_actors.la tests/libcfsproc.la libcfs_client.la libcfs_net.la libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS)
EXTRA_PROGRAMS += bench/bench_switch
bench_bench_switch_SOURCES = bench/switch.c bench/stats.c bench/stats.h
bench_bench_switch_LDADD = $(PTHREAD_LIBS)
CLEANFILES += $(EXTRA_PROGRAMS)

BENCH_SECONDS ?= 2
BENCH_ROUNDS ?= 3
.PHONY: bench bench-rt bench-switch
bench: bench-rt bench-switch bench-storage bench-replicated bench-disk
bench-rt: bench/bench_rt
	bench/bench_rt $(BENCH_SECONDS) $(BENCH_ROUNDS)
bench-switch: bench/bench_switch
	bench/bench_switch
include bench/disk.mk

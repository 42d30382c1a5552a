# bench/replicated.mk: chains of three against fio (issue 4). mgmtd and three
# storage nodes as separate chainfsd processes on this machine's one disk,
# driven by the chunk client; `make bench-replicated` runs it from the build
# directory, so it finds ./chainfsd. Never part of `make check`.
EXTRA_PROGRAMS += bench/bench_replicated
bench_bench_replicated_SOURCES = bench/replicated.c bench/stats.c bench/stats.h bench/net.c bench/net.h bench/fio.c bench/fio.h
bench_bench_replicated_LDADD = tests/libcfsproc.la libcfs_client.la libcfs_disk.la libcfs_net.la \
	libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS) -lm

.PHONY: bench-replicated
bench-replicated: bench/bench_replicated chainfsd
	bench/bench_replicated $(BENCH_SECONDS) $(BENCH_ROUNDS) $(BENCH_REPL_DIR)

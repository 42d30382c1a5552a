# bench/storage.mk: the storage target against fio (issue 3). Included by
# Makefile.am after bench/local.mk; `make bench-storage` runs it from the build
# directory, so it finds ./chainfsd.
EXTRA_PROGRAMS += bench/bench_storage
bench_bench_storage_SOURCES = bench/storage.c bench/cpu.c bench/cpu.h bench/stats.c bench/stats.h bench/net.c bench/net.h bench/fio.c bench/fio.h
bench_bench_storage_LDADD = libcfs_actors.la tests/libcfsproc.la libcfs_client.la libcfs_disk.la libcfs_net.la \
	libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS) -lm

.PHONY: bench-storage
bench-storage: bench/bench_storage chainfsd
	bench/bench_storage $(BENCH_SECONDS) $(BENCH_ROUNDS)

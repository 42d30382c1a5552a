# src/client: the client runtime (start of libchainfs).
noinst_LTLIBRARIES += libcfs_client.la
libcfs_client_la_SOURCES = src/client/client.c src/client/client.h \
	src/client/targets.c src/client/targets.h \
	src/client/routing.c src/client/routing.h src/client/placement.c src/client/placement.h \
	src/client/chunk_client.c src/client/chunk_client.h

# The chunk client against real chainfsd processes (mgmtd + 3 storage nodes).
check_PROGRAMS += tests/unit/test_chunk_client
TESTS += tests/unit/test_chunk_client
tests_unit_test_chunk_client_SOURCES = tests/unit/test_chunk_client.c
tests_unit_test_chunk_client_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_chunk_client_LDADD = tests/libcfsproc.la libcfs_client.la libcfs_disk.la libcfs_net.la \
	libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS) $(TEST_LIBS)

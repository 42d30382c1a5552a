# actors/: one folder per actor kind, all in one convenience library.
noinst_LTLIBRARIES += libcfs_actors.la
libcfs_actors_la_SOURCES = actors/node/nodectl.c actors/node/nodectl.h \
	actors/storage/storage.h actors/storage/storage_internal.h \
	actors/storage/storage.c actors/storage/write.c actors/storage/read.c \
	actors/storage/admin.c actors/storage/craq.c actors/storage/resync.c
EXTRA_DIST += actors/node/README.md actors/storage/README.md

# The storage actor through a real runtime and engine (link order: actors ->
# client -> disk -> net -> wire -> rt).
check_PROGRAMS += tests/unit/test_storage
TESTS += tests/unit/test_storage
tests_unit_test_storage_SOURCES = tests/unit/test_storage.c
tests_unit_test_storage_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_storage_LDADD = tests/libcfsproc.la libcfs_actors.la libcfs_client.la libcfs_disk.la \
	libcfs_net.la libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS) $(TEST_LIBS)

# CRAQ in the storage actor: three storage actors of one process fed chain
# routing by the test.
check_PROGRAMS += tests/unit/test_craq
TESTS += tests/unit/test_craq
tests_unit_test_craq_SOURCES = tests/unit/test_craq.c
tests_unit_test_craq_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_craq_LDADD = tests/libcfsproc.la libcfs_actors.la libcfs_client.la libcfs_disk.la \
	libcfs_net.la libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS) $(TEST_LIBS)

# src/disk: the chunk engine (libaio I/O engine, storage targets). Owned by the
# disk helper; see src/disk/README.md.
noinst_LTLIBRARIES += libcfs_disk.la
libcfs_disk_la_SOURCES = src/disk/disk.h src/disk/disk_internal.h \
	src/disk/crc.c src/disk/aio.c src/disk/chunkmap.c src/disk/slots.c \
	src/disk/index.c src/disk/sync.c src/disk/write.c src/disk/read.c src/disk/target.c \
	src/disk/probe.c src/disk/removed.c
libcfs_disk_la_LIBADD = $(AIO_LIBS) $(SQLITE_LIBS) $(ISAL_LIBS) $(PTHREAD_LIBS)
EXTRA_DIST += src/disk/README.md

check_PROGRAMS += tests/unit/test_disk
TESTS += tests/unit/test_disk
tests_unit_test_disk_SOURCES = tests/unit/test_disk.c
tests_unit_test_disk_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_disk_LDADD = libcfs_disk.la libcfs_rt.la $(CFS_ALL_LIBS) $(TEST_LIBS)

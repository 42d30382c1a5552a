# actors/mgmtd: the cluster manager (helper "mgmtd"). Its sources join the
# actors library; the test runs the actor in-process on SQLite in a temp dir.
# Include after actors/local.mk and src/client/local.mk.
libcfs_actors_la_SOURCES += actors/mgmtd/mgmtd.h actors/mgmtd/mgmtd_internal.h \
	actors/mgmtd/mgmtd.c actors/mgmtd/db.c actors/mgmtd/chains.c actors/mgmtd/routing.c
EXTRA_DIST += actors/mgmtd/README.md

check_PROGRAMS += tests/unit/test_mgmtd
TESTS += tests/unit/test_mgmtd
tests_unit_test_mgmtd_SOURCES = tests/unit/test_mgmtd.c
tests_unit_test_mgmtd_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_mgmtd_LDADD = libcfs_actors.la libcfs_client.la libcfs_disk.la libcfs_net.la \
	libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS) $(TEST_LIBS)

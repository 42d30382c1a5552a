# chainfsd: the server binary.
sbin_PROGRAMS += chainfsd
chainfsd_SOURCES = src/daemon/main.c src/daemon/daemon.c src/daemon/daemon.h \
	src/daemon/conf.c src/daemon/conf.h src/daemon/config_keys.def
chainfsd_LDADD = libcfs_actors.la libcfs_disk.la libcfs_net.la libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS)

check_PROGRAMS += tests/unit/test_conf
TESTS += tests/unit/test_conf
tests_unit_test_conf_SOURCES = tests/unit/test_conf.c src/daemon/conf.c src/daemon/conf.h
tests_unit_test_conf_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_conf_LDADD = libcfs_rt.la $(CFS_ALL_LIBS) $(TEST_LIBS)

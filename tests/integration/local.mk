# tests/integration: tests that run real chainfsd processes. Each program finds
# the daemon as $(top_builddir)/chainfsd (AM_TESTS_ENVIRONMENT exports
# top_builddir); `make check` builds it first (check depends on all).

# Storage target crash test (issue 3): 16 writers, kill -9, restart, verify.
check_PROGRAMS += tests/integration/crash_storage
TESTS += tests/integration/crash_storage
tests_integration_crash_storage_SOURCES = tests/integration/crash_storage.c
tests_integration_crash_storage_LDADD = tests/libcfsproc.la libcfs_client.la libcfs_disk.la libcfs_net.la \
	libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS)

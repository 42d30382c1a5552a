# tests/integration/cluster.mk: CRAQ with real processes (issue 4): mgmtd and
# three storage nodes, chains of three, faults under load, every history checked
# for linearizability. Owned by the cluster integration tests.
check_PROGRAMS += tests/integration/cluster
TESTS += tests/integration/cluster
tests_integration_cluster_SOURCES = tests/integration/cluster.c
tests_integration_cluster_LDADD = tests/libcfsproc.la libcfs_client.la libcfs_disk.la libcfs_net.la \
	libcfs_wire.la libcfs_rt.la tests/liblincheck.la $(CFS_ALL_LIBS)

# tests/integration/cluster.mk: CRAQ with real processes (issue 4): mgmtd and
# three storage nodes, chains of three, faults under load, every history checked
# for linearizability. Owned by the cluster integration tests.

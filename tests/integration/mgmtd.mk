# tests/integration/mgmtd.sh: cluster membership with real chainfsd processes
# (1 mgmtd node + 3 storage nodes, each on a network-namespace host, or on
# loopback where namespaces cannot be made): registration, heartbeats,
# lease expiry after SIGSTOP, offline/online-target, mgmtd restarts. It runs
# $(top_builddir)/chainfsd and chainfs, which `make check` builds first.
TESTS += tests/integration/mgmtd.sh
dist_noinst_SCRIPTS += tests/integration/mgmtd.sh
EXTRA_DIST += tests/integration/lib.sh

# chainfs: the command line tool.
bin_PROGRAMS += chainfs
chainfs_SOURCES = src/cli/main.c src/cli/cli.h src/cli/ping.c src/cli/admin.c \
	src/cli/chunk.c src/cli/cluster.c src/cli/parse.c
chainfs_LDADD = libcfs_client.la libcfs_disk.la libcfs_net.la libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS)

# `chainfs chunk` in direct and cluster mode against real processes (mgmtd +
# 3 storage nodes), including a kill -9 of the chain's head.
TESTS += tests/integration/chunk_cli.sh
dist_noinst_SCRIPTS += tests/integration/chunk_cli.sh

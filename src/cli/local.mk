# chainfs: the command line tool.
bin_PROGRAMS += chainfs
chainfs_SOURCES = src/cli/main.c src/cli/cli.h src/cli/ping.c src/cli/admin.c \
	src/cli/chunk.c src/cli/cluster.c
chainfs_LDADD = libcfs_client.la libcfs_disk.la libcfs_net.la libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS)

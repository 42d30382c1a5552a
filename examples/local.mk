# Examples: small programs against the project's libraries, built by `make`
# (not installed). scripts/quickstart runs chunk_window against its cluster.
noinst_PROGRAMS += examples/chunk_window
examples_chunk_window_SOURCES = examples/chunk_window.c
examples_chunk_window_LDADD = libcfs_client.la libcfs_disk.la libcfs_net.la libcfs_wire.la libcfs_rt.la $(CFS_ALL_LIBS)

# src/client: the client runtime (start of libchainfs).
noinst_LTLIBRARIES += libcfs_client.la
libcfs_client_la_SOURCES = src/client/client.c src/client/client.h \
	src/client/targets.c src/client/targets.h \
	src/client/routing.c src/client/routing.h src/client/placement.c src/client/placement.h

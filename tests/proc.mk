# tests/proc.mk: the harness for tests and benches that run real chainfsd
# processes (tests/proc.h): configs, fork/exec with a log, waits, signals,
# create-chains. A convenience library; the programs list it in LDADD before
# libcfs_client.la, which it calls.
noinst_LTLIBRARIES += tests/libcfsproc.la
tests_libcfsproc_la_SOURCES = tests/proc.c tests/proc.h

# tests/lincheck.mk: the linearizability checker for register histories and its
# unit test. The checker is a convenience library so the integration tests
# (tests/integration/cluster.mk) link it: tests/liblincheck.la.
noinst_LTLIBRARIES += tests/liblincheck.la
tests_liblincheck_la_SOURCES = tests/lincheck.c tests/lincheck.h
tests_liblincheck_la_LIBADD = $(PTHREAD_LIBS)

check_PROGRAMS += tests/unit/test_lincheck
TESTS += tests/unit/test_lincheck
tests_unit_test_lincheck_SOURCES = tests/unit/test_lincheck.c
tests_unit_test_lincheck_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_lincheck_LDADD = tests/liblincheck.la $(PTHREAD_LIBS) $(TEST_LIBS)

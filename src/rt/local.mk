# src/rt: the runtime (loops, actors, messages, timers, buffers, logging).
# Owned by the rt helper; see src/rt/README.md.
noinst_LTLIBRARIES += libcfs_rt.la
libcfs_rt_la_SOURCES = src/rt/rt.h src/rt/rt_internal.h \
	src/rt/loop.c src/rt/actor.c src/rt/msg.c src/rt/call.c src/rt/mailbox.c \
	src/rt/timer.c src/rt/clock.c src/rt/buf.c src/rt/log.c src/rt/proto.c src/rt/errno.c \
	src/rt/random.c
libcfs_rt_la_LIBADD = $(EV_LIBS) $(PTHREAD_LIBS)
EXTRA_DIST += src/rt/README.md

check_PROGRAMS += tests/unit/test_rt
TESTS += tests/unit/test_rt
tests_unit_test_rt_SOURCES = tests/unit/test_rt.c
tests_unit_test_rt_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_rt_LDADD = libcfs_rt.la $(CFS_CORE_LIBS) $(TEST_LIBS)

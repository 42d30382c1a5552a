# SPDX-License-Identifier: MIT
# src/net wire codec (owned by the wire helper): libcfs_wire.la, its unit test,
# the seed-corpus generator and the libFuzzer target (`make fuzz`).

noinst_LTLIBRARIES += libcfs_wire.la
libcfs_wire_la_SOURCES = src/net/wire.c src/net/wire.h \
	src/net/wire_reader.c src/net/wire_reader.h

# Shared with the tcp helper (they write its "tcp" section).
EXTRA_DIST += src/net/README.md

check_PROGRAMS += tests/unit/test_wire tests/fuzz/gen_corpus
TESTS += tests/unit/test_wire
tests_unit_test_wire_SOURCES = tests/unit/test_wire.c tests/fuzz/wire_sample.h
tests_unit_test_wire_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_wire_LDADD = libcfs_wire.la libcfs_rt.la $(CFS_CORE_LIBS) $(TEST_LIBS)

tests_fuzz_gen_corpus_SOURCES = tests/fuzz/gen_corpus.c tests/fuzz/wire_sample.h
tests_fuzz_gen_corpus_LDADD = libcfs_wire.la libcfs_rt.la $(CFS_CORE_LIBS)

# The fuzz harness is built with clang, not $(CC): automake's rules would use
# gcc, so the harness and everything it links are compiled from source here.
EXTRA_DIST += tests/fuzz/fuzz_frame.c tests/fuzz/README.md tests/fuzz/corpus
CLEANFILES += tests/fuzz/fuzz_frame$(EXEEXT)

FUZZ_SECONDS = 30
FUZZ_FRAME_SRCS = tests/fuzz/fuzz_frame.c src/net/wire.c src/net/wire_reader.c \
	$(filter %.c,$(libcfs_rt_la_SOURCES))
FUZZ_FRAME_DEPS = $(addprefix $(srcdir)/,$(FUZZ_FRAME_SRCS) src/net/wire.h \
	src/net/wire_reader.h $(filter %.h,$(libcfs_rt_la_SOURCES)) \
	include/chainfs/proto.def include/chainfs/proto.h)
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined
FUZZ_RUN_FLAGS = -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1

if HAVE_FUZZ_CC
tests/fuzz/fuzz_frame$(EXEEXT): $(FUZZ_FRAME_DEPS)
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEFS) $(DEFAULT_INCLUDES) $(AM_CPPFLAGS) \
		$(CPPFLAGS) $(MSGPACK_CFLAGS) -o $@ $(addprefix $(srcdir)/,$(FUZZ_FRAME_SRCS)) \
		$(CFS_CORE_LIBS)

# Fuzz a fresh copy of the seeds (committed corpus + frames of every message type
# from gen_corpus) for FUZZ_SECONDS. libFuzzer exits non-zero on a crash, a leak
# or an allocation over the RSS limit, and so does this target; the input that
# did it is left as tests/fuzz/crash-* (or leak-*, oom-*).
fuzz: tests/fuzz/fuzz_frame$(EXEEXT) tests/fuzz/gen_corpus$(EXEEXT)
	rm -rf tests/fuzz/corpus-run
	$(MKDIR_P) tests/fuzz/corpus-run
	cp $(srcdir)/tests/fuzz/corpus/* tests/fuzz/corpus-run/
	chmod u+w tests/fuzz/corpus-run/*
	./tests/fuzz/gen_corpus$(EXEEXT) tests/fuzz/corpus-run
	./tests/fuzz/fuzz_frame$(EXEEXT) $(FUZZ_RUN_FLAGS) -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=tests/fuzz/ tests/fuzz/corpus-run
else
fuzz:
	@echo "make fuzz needs clang with libFuzzer: apt-get install clang-14 libfuzzer-14-dev, then rerun configure" >&2
	@exit 1
endif
.PHONY: fuzz

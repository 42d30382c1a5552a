# tests/: shared test plumbing. Each folder's local.mk adds its own Check
# programs to check_PROGRAMS and TESTS; this fragment sets the environment
# every test runs in and adds the documentation check.
#
# Every test sees top_srcdir and top_builddir (absolute), Check forks each
# test (CK_FORK=yes: a crash fails one test, not the suite) and gets a
# generous default timeout, since the machine is small and noisy. Values
# already in the environment win: `CK_FORK=no make check` for gdb.
AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(abs_top_srcdir)'; top_builddir='$(abs_top_builddir)'; \
	export top_srcdir top_builddir; \
	CK_FORK=$${CK_FORK-yes}; CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT-60}; \
	export CK_FORK CK_DEFAULT_TIMEOUT;

# The documentation check: man pages lint clean, the unit verifies, every
# protocol message, error code and config key is documented, the examples in
# conf/ pass chainfsd --check-config, the Python client of
# chainfs-protocol(7) talks to a live chainfsd. See tests/docs/README.md.
TESTS += tests/docs/check-docs.sh
EXTRA_DIST += tests/docs/check-docs.sh tests/docs/README.md

# The scripts that install packages, build and test (scripts/test is what CI
# runs, through .ci/run): shipped in the tarball too.
dist_noinst_SCRIPTS += scripts/deps scripts/test scripts/quickstart .ci/run

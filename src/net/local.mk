# src/net transport (tcp helper): rt's transport edge (net.c), the connection
# vtable (transport.h) and the TCP connection type. The wire codec has its own
# fragment (wire.mk); this library sits on top of it: net -> wire -> rt.
noinst_LTLIBRARIES += libcfs_net.la
libcfs_net_la_SOURCES = src/net/net.c src/net/net.h src/net/transport.h src/net/tcp.c
# Link it before libcfs_wire.la and libcfs_rt.la (convenience libraries are not
# nested, so each one appears once on a program's link line).

check_PROGRAMS += tests/unit/test_tcp
TESTS += tests/unit/test_tcp
tests_unit_test_tcp_SOURCES = tests/unit/test_tcp.c
tests_unit_test_tcp_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_tcp_LDADD = libcfs_net.la libcfs_wire.la libcfs_rt.la $(CFS_CORE_LIBS) $(TEST_LIBS)

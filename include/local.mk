# Public headers: what a C client of chainfs needs.
chainfsincludedir = $(includedir)/chainfs
chainfsinclude_HEADERS = include/chainfs/export.h include/chainfs/errno.h \
	include/chainfs/errno.def include/chainfs/proto.h include/chainfs/proto.def \
	include/chainfs/types.h include/chainfs/cluster.h

# conf/: example configurations and the systemd unit.
#
# The examples install to $(sysconfdir)/chainfs, where chainfsd@NAME.service
# looks for NAME.conf. The committed unit names the default-prefix paths
# (/usr/local/sbin, /usr/local/etc/chainfs) so that it is usable and
# verifiable as it stands; the installed copy is generated with this build's
# sbindir and sysconfdir and goes to $(prefix)/lib/systemd/system.
chainfsconfdir = $(sysconfdir)/chainfs
dist_chainfsconf_DATA = conf/chainfs.conf conf/quickstart.conf conf/quickstart-node2.conf \
	conf/quickstart-node3.conf

systemdunitdir = $(prefix)/lib/systemd/system
systemdunit_DATA = conf/systemd/chainfsd@.service
EXTRA_DIST += conf/chainfsd@.service conf/README.md
CLEANFILES += conf/systemd/chainfsd@.service

conf/systemd/chainfsd@.service: $(srcdir)/conf/chainfsd@.service Makefile
	$(AM_V_GEN)$(MKDIR_P) conf/systemd && \
	sed -e 's|/usr/local/sbin/|$(sbindir)/|g' \
	    -e 's|/usr/local/etc/chainfs/|$(sysconfdir)/chainfs/|g' \
	    -e 's|/usr/local/share/man/|$(mandir)/|g' \
	    $(srcdir)/conf/chainfsd@.service > $@.tmp && mv $@.tmp $@

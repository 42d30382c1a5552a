# man/: the manual pages, installed by `make install` (man1, man5, man7, man8).
# tests/docs/check-docs.sh lints them and checks them against the code.
dist_man_MANS += man/chainfs.1 man/chainfs.conf.5 man/chainfs-protocol.7 man/chainfsd.8
EXTRA_DIST += man/README.md

# tests/lincheck.mk: the linearizability checker for register histories and its
# unit test.

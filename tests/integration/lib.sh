# SPDX-License-Identifier: MIT
#
# Sourced by the shell integration tests (mgmtd.sh, chunk_cli.sh) after they
# set NAME: the programs under test, a work directory that goes away at exit
# (KEEP=1 keeps it), the daemons started there (their pids in PIDS), stopped
# at exit, and the helpers every such test needs. Needs $top_builddir (make
# check sets it) or runs from the build directory.

B=${top_builddir:-.}
CHAINFSD=$B/chainfsd
CHAINFS=$B/chainfs
[ -x "$CHAINFSD" ] && [ -x "$CHAINFS" ] || { echo "$NAME: build chainfsd and chainfs first" >&2; exit 99; }

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/chainfs-$NAME.XXXXXX")
GUARD=60	# seconds: a hang guard, not a performance bound
PIDS=""

cleanup() {
	for p in $PIDS; do
		kill -CONT "$p" 2>/dev/null || true	# a test may have stopped it
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null || true
	done
	if [ "${KEEP:-}" = "" ]; then rm -rf "$WORK"; else echo "$NAME: kept $WORK"; fi
}
trap cleanup EXIT INT TERM

# fail MSG...: print it and the tail of every daemon log, exit 1.
fail() {
	echo "FAIL: $*" >&2
	for f in "$WORK"/*.log; do
		echo "---- $f (tail)" >&2
		tail -n 15 "$f" >&2
	done
	exit 1
}

step() { echo "== $*"; }

# A loopback port free right now (the daemon binds it a moment later).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for DESC CMD...: rerun CMD until it succeeds, at most GUARD seconds.
wait_for() {
	desc=$1
	shift
	i=0
	while ! "$@" > /dev/null 2>&1; do
		i=$((i + 1))
		[ $i -le $((GUARD * 10)) ] || fail "waited ${GUARD}s for: $desc"
		sleep 0.1
	done
}

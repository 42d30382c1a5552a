#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Cluster membership with real processes: one chainfsd running mgmtd (node 1)
# and three storage nodes (2, 3, 4; one target each), all separate chainfsd
# processes, each on a host of its own (node k in network namespace
# cfs<pid>n<k> at 10.98.0.k:7400, lib.sh; loopback when namespaces cannot be
# made or CFS_TEST_HOSTS=0), driven with the chainfs command from the driver.
#
#   1. every node registers and heartbeats; its target shows up;
#   2. create-chains --replicas 3 builds one chain over three distinct nodes;
#      impossible requests and unknown ids fail with a clear error;
#   3. SIGSTOP a storage node past its lease: mgmtd marks it down, its target
#      offline at the end of the chain, the chain version moves; after SIGCONT
#      the node says its own lease lapsed, heartbeats again and its target
#      comes back as syncing at the tail;
#   4. offline-target / online-target take a target out and let it back in;
#   5. mgmtd restarts (SIGTERM, then kill -9) while the nodes keep beating:
#      they reconnect, and nodes, targets and chains are exactly as before.
#
# Waits poll for a state with a generous hang guard; nothing asserts on time.
# Needs $top_builddir (make check sets it) or runs from the build directory
# (tests/integration/lib.sh).
set -eu

NAME=mgmtd
HOSTS=4
. "$(dirname "$0")/lib.sh"

pid() { cat "$WORK/n$1.pid"; }

admin() { "$CHAINFS" admin "$@"; }

nodes_up() {	# nodes_up N: exactly N nodes up
	[ "$(admin nodes "$MGMTD" | awk '$3 == "up"' | wc -l)" -eq "$1" ]
}
node_state() {	# node_state ID STATE
	admin nodes "$MGMTD" | awk -v id="$1" -v st="$2" '$1 == id && $3 == st { ok = 1 } END { exit !ok }'
}
target_public() {	# target_public ID STATE
	admin targets "$MGMTD" | awk -v id="$1" -v st="$2" '$1 == id && $4 == st { ok = 1 } END { exit !ok }'
}
chain_line() { admin chains "$MGMTD" | awk '$1 == "1"'; }
# Chains and targets without the columns that move by themselves: heartbeat
# ages, and the local state a node reports (an up-to-date report made under
# older routing counts as online, so it flips while nodes catch up).
snapshot() {
	admin chains "$MGMTD"
	admin targets "$MGMTD" | awk '{ $5 = ""; print }'
	admin nodes "$MGMTD" | awk 'NR > 3 { print $1, $2, $3, $7 }'
}

cluster_configs
for n in 1 2 3 4; do start_node $n; done

step "1. registration and heartbeats"
wait_for "4 nodes up" nodes_up 4
wait_for "3 targets known" sh -c "[ \$($CHAINFS admin targets $MGMTD | awk 'NR > 1' | wc -l) -eq 3 ]"
admin nodes "$MGMTD"

step "2. create-chains"
out=$(admin create-chains "$MGMTD" --replicas 4 2>&1) && fail "4 replicas on 3 storage nodes accepted"
echo "$out" | grep -q "4 replicas need 4 distinct nodes" || fail "unclear refusal: $out"
admin create-chains "$MGMTD" --replicas 3 || fail "create-chains --replicas 3"
line=$(chain_line)
echo "$line"
[ "$(echo "$line" | grep -o 'serving' | wc -l)" -eq 3 ] || fail "chain not serving: $line"
# Members on three distinct nodes: the node after each '@'.
[ "$(echo "$line" | grep -o '@[0-9]*' | sort -u | wc -l)" -eq 3 ] || fail "nodes shared: $line"
ver1=$(echo "$line" | awk '{ print $2 }')
out=$(admin create-chains "$MGMTD" --replicas 1 2>&1) && fail "no free targets, yet created: $out"
out=$(admin offline-target "$MGMTD" 999 2>&1) && fail "unknown target accepted"
echo "$out" | grep -q ENOTARGET || fail "unclear error for an unknown target: $out"
rc=0; admin create-chains "$MGMTD" --replicas 0 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "--replicas 0: exit $rc, expected usage error 2"

step "3. SIGSTOP node 3 past its lease"
kill -STOP "$(pid 3)"
wait_for "node 3 down" node_state 3 down
wait_for "target 31 offline" target_public 31 offline
line=$(chain_line)
echo "$line"
echo "$line" | grep -q '31@3 offline$' || fail "target 31 not at the end: $line"
ver2=$(echo "$line" | awk '{ print $2 }')
[ "$ver2" -gt "$ver1" ] || fail "chain version did not move: $ver1 -> $ver2"
kill -CONT "$(pid 3)"
wait_for "node 3 up again" node_state 3 up
# It rejoins at the tail as syncing; its predecessor's resync (nothing to
# copy here) then makes it serving.
wait_for "target 31 serving after resync" target_public 31 serving
line=$(chain_line)
echo "$line"
echo "$line" | grep -q '31@3 serving$' || fail "target 31 not back at the tail: $line"
cat "$WORK"/n*.log | grep -q "resync of target 31 done" || fail "no resync of target 31 by its predecessor"
wait_for "node 3 saw its lease lapse" grep -q "lease at mgmtd lapsed" "$WORK/n3.log"
wait_for "node 3 holds a lease again" awk '/lease at mgmtd lapsed/ { l = NR } /lease held/ && l && NR > l { ok = 1 } END { exit !ok }' "$WORK/n3.log"

step "4. offline-target / online-target"
admin offline-target "$MGMTD" 21 || fail "offline-target 21"
wait_for "target 21 offline" target_public 21 offline
admin online-target "$MGMTD" 21 || fail "online-target 21"
wait_for "target 21 back (serving after resync)" target_public 21 serving
admin chains "$MGMTD"

step "5. mgmtd restarts while the nodes keep beating"
before=$(snapshot)
for how in TERM KILL; do
	kill -"$how" "$(pid 1)"
	wait "$(pid 1)" 2>/dev/null || true
	start_node 1
	wait_for "mgmtd answers after SIGKILL/TERM" nodes_up 4
	after=$(snapshot)
	[ "$before" = "$after" ] || fail "state changed across a restart (SIG$how):
--- before
$before
--- after
$after"
	echo "restart after SIG$how: state intact"
done
# Every storage node reconnected and heartbeats to the new process.
for n in 2 3 4; do
	wait_for "node $n heartbeats to the restarted mgmtd" sh -c \
		"$CHAINFS admin nodes $MGMTD | awk '\$1 == $n && \$3 == \"up\" && \$4 + 0 < 1 { ok = 1 } END { exit !ok }'"
done
admin nodes "$MGMTD"
echo "PASS"

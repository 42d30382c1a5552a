#!/bin/sh
# SPDX-License-Identifier: MIT
#
# `chainfs chunk` in both of its modes against real processes: one chainfsd
# running mgmtd (node 1) and three storage nodes (2, 3, 4; one target each),
# one chain of three replicas. Each node runs on a host of its own (node k in
# network namespace cfs<pid>n<k> at 10.98.0.k:7400, lib.sh; loopback when
# namespaces cannot be made or CFS_TEST_HOSTS=0); the chainfs commands run in
# the driver.
#
#   1. cluster mode (--mgmtd ADDR --chain ID): put, get (whole, --offset/--len,
#      each --replica, --relaxed), stat, list (the head, each --replica, an
#      out-of-range --replica), rm (gone from every replica); usage errors
#      exit 2;
#   2. direct mode (ADDR TARGET) still works on a chained target and sees
#      what cluster mode wrote, on every replica;
#   3. kill -9 the chain's head node: cluster put and get still succeed
#      (the client retries until mgmtd moves the chain on), and cluster list
#      asks the new head.
#
# Waits poll with a hang guard; nothing asserts on time.
set -eu

NAME=chunk-cli
HOSTS=4
. "$(dirname "$0")/lib.sh"

cluster_configs
for n in 1 2 3 4; do
	start_node $n
done

targets3() { [ "$("$CHAINFS" admin targets "$MGMTD" | awk 'NR > 1' | wc -l)" -eq 3 ]; }
wait_for "3 targets registered" targets3
"$CHAINFS" admin create-chains "$MGMTD" --replicas 3 > /dev/null || fail "create-chains"
CHAIN=$("$CHAINFS" admin chains "$MGMTD" | awk 'NR > 1 && $1 ~ /^[0-9]+$/ { print $1; exit }')
[ -n "$CHAIN" ] || fail "no chain listed"
serving3() { [ "$("$CHAINFS" admin chains "$MGMTD" | awk -v c="$CHAIN" '$1 == c' | grep -o serving | wc -l)" -eq 3 ]; }
wait_for "chain $CHAIN serving on 3 replicas" serving3
C="--mgmtd $MGMTD --chain $CHAIN"

step "1. cluster mode"
head -c 300000 /dev/urandom > "$WORK/in"
# shellcheck disable=SC2086
out=$("$CHAINFS" chunk put $C 9:0 "$WORK/in") || fail "cluster put"
echo "$out"
echo "$out" | grep -q "version=1 len=300000" || fail "put said: $out"
# shellcheck disable=SC2086
"$CHAINFS" chunk get $C 9:0 -o "$WORK/out" || fail "cluster get"
cmp "$WORK/in" "$WORK/out" || fail "cluster get returned other bytes"
# An output that cannot be opened: exit 1 and the reason.
rc=0
# shellcheck disable=SC2086
"$CHAINFS" chunk get $C 9:0 -o "$WORK/no/such/dir" 2> "$WORK/err" || rc=$?
[ "$rc" = 1 ] && grep -q "No such file" "$WORK/err" || fail "get into a missing directory: rc=$rc $(cat "$WORK/err")"
# Numbers that would wrap are refused (exit 2), and nothing is written.
for args in "put $C 9:0 $WORK/in --offset 18014398509481985K" \
	"get $C 9:0 --offset 17179869184G --len 10" "get $C 9:0 --len 0x100000000"; do
	rc=0
	# shellcheck disable=SC2086
	"$CHAINFS" chunk $args > /dev/null 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "chunk $args: rc=$rc, expected 2"
done
# Past the largest chunk (64 MiB): exit 2, naming the options.
rc=0
# shellcheck disable=SC2086
"$CHAINFS" chunk get $C 9:0 --offset 60M --len 8M > /dev/null 2> "$WORK/err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--offset 62914560 --len 8388608: past the largest chunk" "$WORK/err" ||
	fail "get past 64 MiB: rc=$rc $(cat "$WORK/err")"
rc=0; "$CHAINFS" -t 4294967297 chunk get $C 9:0 > /dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "-t 4294967297: rc=$rc, expected 2"
# shellcheck disable=SC2086
"$CHAINFS" chunk get $C 9:0 -o "$WORK/out" || fail "cluster get after refused puts"
cmp "$WORK/in" "$WORK/out" || fail "a refused put changed the chunk"
# A file that cannot be read: exit 1 and the reason.
rc=0
# shellcheck disable=SC2086
"$CHAINFS" chunk put $C 9:1 "$WORK/no/such/file" 2> "$WORK/err" || rc=$?
[ "$rc" = 1 ] && grep -q "No such file" "$WORK/err" || fail "put of a missing file: rc=$rc $(cat "$WORK/err")"
for r in 0 1 2; do
	# shellcheck disable=SC2086
	"$CHAINFS" chunk get $C 9:0 --replica $r > "$WORK/out.$r" || fail "get --replica $r"
	cmp "$WORK/in" "$WORK/out.$r" || fail "replica $r returned other bytes"
done
# shellcheck disable=SC2086
"$CHAINFS" chunk get $C 9:0 --relaxed --offset 1000 --len 5000 > "$WORK/part" || fail "get --relaxed"
dd if="$WORK/in" bs=1000 skip=1 count=5 2>/dev/null | cmp - "$WORK/part" || fail "ranged read differs"
# shellcheck disable=SC2086
out=$("$CHAINFS" chunk stat $C 9:0) || fail "cluster stat"
echo "$out" | grep -q "^len *300000$" || fail "stat: $out"
echo "$out" | grep -q "^committed *1$" || fail "stat: $out"
# list: the head by default, then each serving replica; all see 9:0 committed.
ID90=00000000000000090000000000000000
# shellcheck disable=SC2086
out=$("$CHAINFS" -v chunk list $C 2>"$WORK/list.err") || fail "cluster list: $(cat "$WORK/list.err")"
echo "$out"
echo "$out" | grep -Eq "^$ID90 +300000 0x[0-9a-f]{8} +1 +0$" || fail "cluster list: $out"
head_target=$("$CHAINFS" admin chains "$MGMTD" | awk -v c="$CHAIN" '$1 == c { for (i = 3; i <= NF; i++) if ($i ~ /@/) { split($i, a, "@"); print a[1]; exit } }')
grep -q "listing target $head_target on " "$WORK/list.err" ||
	fail "cluster list did not ask the head (target $head_target): $(cat "$WORK/list.err")"
for r in 0 1 2; do
	# shellcheck disable=SC2086
	out=$("$CHAINFS" -v chunk list $C --replica $r 2>"$WORK/list.err.$r") || fail "list --replica $r"
	echo "$out" | grep -Eq "^$ID90 +300000 0x[0-9a-f]{8} +1 +0$" || fail "list --replica $r: $out"
done
# The three replicas are three different targets.
n=$(sed -n 's/.*listing target \([0-9]*\) on .*/\1/p' "$WORK"/list.err.? | sort -u | wc -l)
[ "$n" -eq 3 ] || fail "list --replica 0..2 asked $n distinct targets, expected 3"
# shellcheck disable=SC2086
"$CHAINFS" chunk list $C --replica 0 --limit 0 | grep -q "^CHUNK" || fail "list --limit 0"
rc=0
# shellcheck disable=SC2086
out=$("$CHAINFS" chunk list $C --replica 3 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "list --replica 3 of 3: exit $rc, expected 1"
echo "$out" | grep -q "no replica 3" || fail "unclear error for list --replica 3: $out"
rc=0; "$CHAINFS" chunk list --chain "$CHAIN" 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "list --chain without --mgmtd: exit $rc, expected 2"
rc=0; "$CHAINFS" chunk list "$ADDR2" 21 --replica 1 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "list --replica in direct mode: exit $rc, expected 2"
rc=0
# shellcheck disable=SC2086
"$CHAINFS" chunk list $C "$ADDR2" 21 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "list with both --mgmtd and ADDR TARGET: exit $rc, expected 2"
# shellcheck disable=SC2086
"$CHAINFS" chunk put $C 9:5 "$WORK/in" > /dev/null || fail "cluster put 9:5"
# shellcheck disable=SC2086
"$CHAINFS" chunk rm $C 9:5 || fail "cluster rm"
for r in 0 1 2; do
	# shellcheck disable=SC2086
	out=$("$CHAINFS" chunk get $C 9:5 --replica $r --len 10 2>&1) && fail "replica $r still has 9:5"
	echo "$out" | grep -q ENOCHUNK || fail "unclear error for a removed chunk: $out"
done
rc=0; "$CHAINFS" chunk get --mgmtd "$MGMTD" 9:0 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "--mgmtd without --chain: exit $rc, expected 2"
rc=0; "$CHAINFS" chunk get "$ADDR2" 21 9:0 --replica 1 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "--replica in direct mode: exit $rc, expected 2"
rc=0; "$CHAINFS" chunk put "$ADDR2" 21 9:2 "$WORK/no/such/file" 2> "$WORK/err" || rc=$?
[ "$rc" = 1 ] && grep -q "No such file" "$WORK/err" || fail "direct put of a missing file: rc=$rc $(cat "$WORK/err")"
# shellcheck disable=SC2086
out=$("$CHAINFS" chunk get $C 9:1 2>&1) && fail "get of a missing chunk succeeded"
echo "$out" | grep -q ENOCHUNK || fail "unclear error for a missing chunk: $out"

step "2. direct mode on the chained targets"
for n in 2 3 4; do
	eval "addr=\$ADDR$n"
	"$CHAINFS" chunk get "$addr" "${n}1" 9:0 > "$WORK/direct.$n" || fail "direct get on node $n"
	cmp "$WORK/in" "$WORK/direct.$n" || fail "direct get on node $n: other bytes"
	"$CHAINFS" chunk stat "$addr" "${n}1" 9:0 | grep -q "^committed *1$" || fail "direct stat on node $n"
	"$CHAINFS" chunk list "$addr" "${n}1" | grep -q "^0000000000000009" || fail "direct list on node $n"
done

step "3. kill -9 the head node"
head_node=$("$CHAINFS" admin chains "$MGMTD" | awk -v c="$CHAIN" '$1 == c { for (i = 3; i <= NF; i++) if ($i ~ /@/) { split($i, a, "@"); print a[2]; exit } }')
[ -n "$head_node" ] || fail "no head in: $("$CHAINFS" admin chains "$MGMTD")"
kill -9 "$(cat "$WORK/n$head_node.pid")"
head -c 70000 /dev/urandom > "$WORK/in2"
# shellcheck disable=SC2086
out=$("$CHAINFS" chunk put $C 9:0 "$WORK/in2") || fail "cluster put after the head died"
echo "$out"
echo "$out" | grep -q "version=2 len=300000" || fail "put after failover said: $out"
# shellcheck disable=SC2086
"$CHAINFS" chunk get $C 9:0 --len 70000 -o "$WORK/out2" || fail "cluster get after the head died"
cmp "$WORK/in2" "$WORK/out2" || fail "get after failover returned other bytes"
# shellcheck disable=SC2086
out=$("$CHAINFS" -v chunk list $C 2>"$WORK/list.err") || fail "cluster list after the head died"
echo "$out" | grep -Eq "^$ID90 +300000 0x[0-9a-f]{8} +2 +0$" || fail "list after failover: $out"
dead_addr=$(eval "printf %s \"\$ADDR$head_node\"")
grep -q "listing target [0-9]* on " "$WORK/list.err" || fail "list after failover: $(cat "$WORK/list.err")"
grep -q " on $dead_addr\$" "$WORK/list.err" && fail "list after failover asked the dead head at $dead_addr"
"$CHAINFS" admin chains "$MGMTD"
echo "PASS"

# SPDX-License-Identifier: MIT
#
# Sourced by the shell integration tests (mgmtd.sh, chunk_cli.sh) after they
# set NAME (and HOSTS, the number of nodes): the programs under test, the
# hosts the nodes run on, a work directory that goes away at exit (KEEP=1
# keeps it), the daemons started there (their pids in PIDS), stopped at exit,
# and the helpers every such test needs. Needs $top_builddir (make check sets
# it) or runs from the build directory.
#
# Hosts mode, as tests/proc.c does it for the C tests (README.md, "Hosts
# mode"): the script first re-executes itself inside a private network
# namespace (unshare --net; CFS_TEST_NETNS=<pid> marks that it did, and the
# pid stays the same since unshare execs), brings lo up there, makes the
# bridge cfsbr (10.98.0.254/24: the driver, that is this script and the
# chainfs commands it runs) and, per node k = 1..HOSTS, the named namespace
# cfs<pid>n<k> with a veth pair: cfsv<k> on the bridge, eth0 = 10.98.0.<k>/24
# in the host. 10.98, not the C tests' 10.99: both may run at once under
# make -j (each in its own private namespace, but distinct subnets keep the
# logs unambiguous). Node k listens on `host_listen k` and runs through
# `host_start k`. When namespaces cannot be made (not root, no ip or unshare,
# EPERM) one line says why and every node shares loopback (127.0.0.1, a free
# port each), as before. CFS_TEST_HOSTS=0 forces loopback, CFS_TEST_HOSTS=1
# makes missing namespaces a failure.

B=${top_builddir:-.}
CHAINFSD=$B/chainfsd
CHAINFS=$B/chainfs
[ -x "$CHAINFSD" ] && [ -x "$CHAINFS" ] || { echo "$NAME: build chainfsd and chainfs first" >&2; exit 99; }

HOSTS=${HOSTS:-0}	# nodes the test runs; one host each in hosts mode
HOSTS_ON=0		# 1: node k runs in namespace cfs<pid>n<k> at 10.98.0.<k>
HOSTS_MADE=0		# namespaces named so far (the teardown removes them)
HOSTS_NET=10.98.0
HOSTS_PORT=7400		# every host has its own ports: all nodes listen on this one
HOSTS_WHY=""
HOSTS_PRIVATE=""	# " in a private namespace" once the script runs in one

# hosts_fallback REASON: say why there are no hosts; a failure if they were required.
hosts_fallback() {
	echo "hosts: network namespaces unavailable ($1); nodes share loopback$HOSTS_PRIVATE"
	if [ "${CFS_TEST_HOSTS:-}" = 1 ]; then
		echo "$NAME: CFS_TEST_HOSTS=1 and no hosts" >&2
		exit 1
	fi
}

# Before anything else: move into a private network namespace, once, so
# nothing below touches the machine's own network. Without ip(8) there is
# nothing to do in one (not even bringing its lo up), so stay outside.
hosts_reexec() {
	[ "$HOSTS" -gt 0 ] || return 0
	[ "${CFS_TEST_NETNS:-}" = "$$" ] && return 0
	if [ "${CFS_TEST_HOSTS:-}" = 0 ]; then
		echo "hosts: off (CFS_TEST_HOSTS=0); nodes share loopback"
		return 0
	fi
	command -v ip > /dev/null 2>&1 || { hosts_fallback "no ip(8): install iproute2"; return 0; }
	command -v unshare > /dev/null 2>&1 ||
		{ hosts_fallback "no unshare(1): install util-linux"; return 0; }
	# A probe: once exec'd, a refusal could no longer fall back.
	if ! _h_out=$(unshare --net true 2>&1); then
		hosts_fallback "unshare --net: $(echo "$_h_out" | tail -n 1 | sed 's/^unshare: //')"
		return 0
	fi
	CFS_TEST_NETNS=$$
	export CFS_TEST_NETNS
	exec unshare --net -- /bin/sh "$0" "$@"
}

# run_ip ARGS...: ip ARGS; on failure HOSTS_WHY says which command and why.
run_ip() {
	_h_out=$(ip "$@" 2>&1) && return 0
	HOSTS_WHY="ip $*: $(echo "$_h_out" | tail -n 1)"
	return 1
}

# Remove cfs<pid>n<k> namespaces whose driver <pid> is dead (killed with
# SIGKILL, it could not clean up), and kill what still runs in them: a shell
# driver cannot make its daemons die with it.
hosts_remove_stale() {
	for _h_path in /run/netns/cfs*n*; do
		[ -e "$_h_path" ] || continue
		_h_name=${_h_path##*/}
		_h_pid=$(echo "$_h_name" | sed -n 's/^cfs\([0-9][0-9]*\)n[0-9][0-9]*$/\1/p')
		if [ -z "$_h_pid" ] || [ "$_h_pid" = $$ ]; then
			continue
		fi
		# Alive unless gone or a zombie (killed, not reaped yet: the
		# same as dead here, unlike tests/proc.c's kill(pid, 0)).
		if [ -d "/proc/$_h_pid" ] &&
			[ "$(sed 's/.*) \(.\).*/\1/' "/proc/$_h_pid/stat" 2>/dev/null)" != Z ]; then
			continue
		fi
		echo "hosts: removing stale namespace $_h_name (pid $_h_pid is gone)"
		for _h_p in $(ip netns pids "$_h_name" 2>/dev/null); do
			kill -KILL "$_h_p" 2>/dev/null || true
		done
		ip netns del "$_h_name" 2>/dev/null || umount "$_h_path" 2>/dev/null || true
		rm -f "$_h_path"
	done
}

# The bridge and host k's namespace, veth pair and addresses, for k = 1..HOSTS.
hosts_make() {
	run_ip link add cfsbr type bridge || return 1
	run_ip link set cfsbr up || return 1
	run_ip addr add "$HOSTS_NET.254/24" dev cfsbr || return 1
	_h_k=1
	while [ "$_h_k" -le "$HOSTS" ]; do
		_h_ns=cfs$$n$_h_k
		HOSTS_MADE=$_h_k	# counted for the teardown before it exists
		run_ip netns add "$_h_ns" || return 1
		run_ip link add "cfsv$_h_k" type veth peer name eth0 netns "$_h_ns" || return 1
		run_ip link set "cfsv$_h_k" master cfsbr up || return 1
		run_ip -n "$_h_ns" addr add "$HOSTS_NET.$_h_k/24" dev eth0 || return 1
		run_ip -n "$_h_ns" link set eth0 up || return 1
		run_ip -n "$_h_ns" link set lo up || return 1
		_h_k=$((_h_k + 1))
	done
}

# Kill whatever still runs in the hosts and remove them; the bridge and the
# veth ends go with the namespaces and with this process's private one.
hosts_teardown() {
	_h_k=1
	while [ "$_h_k" -le "$HOSTS_MADE" ]; do
		_h_ns=cfs$$n$_h_k
		if [ -e "/run/netns/$_h_ns" ]; then
			for _h_p in $(ip netns pids "$_h_ns" 2>/dev/null); do
				kill -KILL "$_h_p" 2>/dev/null || true
			done
			ip netns del "$_h_ns" 2>/dev/null ||
				{ umount "/run/netns/$_h_ns" 2>/dev/null || true; rm -f "/run/netns/$_h_ns"; }
		fi
		_h_k=$((_h_k + 1))
	done
	HOSTS_MADE=0
	HOSTS_ON=0
}

# In the private namespace (or not, after a fallback): lo up, then the hosts.
hosts_init() {
	[ "$HOSTS" -gt 0 ] && [ "${CFS_TEST_NETNS:-}" = "$$" ] || return 0
	HOSTS_PRIVATE=" in a private namespace"
	# Without lo not even loopback works in here: a hard failure.
	ip link set lo up || { echo "hosts: lo up in the private namespace failed" >&2; exit 1; }
	hosts_remove_stale
	if ! hosts_make; then
		hosts_teardown
		hosts_fallback "$HOSTS_WHY"
		return 0
	fi
	HOSTS_ON=1
	echo "hosts: $HOSTS network namespaces cfs$$n1..cfs$$n$HOSTS," \
		"$HOSTS_NET.1..$HOSTS_NET.$HOSTS/24 on bridge cfsbr; this driver is" \
		"$HOSTS_NET.254 in a private namespace"
}

hosts_reexec "$@"

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
	PIDS=""
	hosts_teardown
	if [ "${KEEP:-}" = "" ]; then rm -rf "$WORK"; else echo "$NAME: kept $WORK"; fi
}
# A signal exits, and the exit runs cleanup (once).
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

hosts_init

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

# host_addr K: the address of node K: 10.98.0.K in hosts mode, else 127.0.0.1.
host_addr() {
	if [ "$HOSTS_ON" = 1 ]; then echo "$HOSTS_NET.$1"; else echo 127.0.0.1; fi
}

# host_listen K: an address:port for node K to listen on (and register with
# mgmtd): a fixed port on its own host, or a free loopback port.
host_listen() {
	if [ "$HOSTS_ON" = 1 ]; then echo "$HOSTS_NET.$1:$HOSTS_PORT"; else echo "127.0.0.1:$(free_port)"; fi
}

# pid_runs PID COMM: PID has exec'd COMM (the first 15 bytes of its name).
pid_runs() {
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$(printf %.15s "$2")" ]
}

# host_start K LOG CMD...: run CMD on host K (ip netns exec there; just CMD on
# loopback) in the background, output appended to LOG. HOST_PID is CMD's own
# pid, also added to PIDS: the subshell execs ip, which execs CMD in the
# namespace without forking, so signals sent to HOST_PID reach CMD. Checked:
# HOST_PID must come to run CMD.
host_start() {
	_h_k=$1
	_h_log=$2
	shift 2
	if [ "$HOSTS_ON" = 1 ]; then
		(exec ip netns exec "cfs$$n$_h_k" "$@" >> "$_h_log" 2>&1) &
	else
		(exec "$@" >> "$_h_log" 2>&1) &
	fi
	HOST_PID=$!
	PIDS="$PIDS $HOST_PID"
	wait_for "pid $HOST_PID on host $_h_k runs ${1##*/}" pid_runs "$HOST_PID" "${1##*/}"
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

# cluster_configs: $WORK/n1.conf .. n4.conf for the shell tests' cluster: node
# 1 runs mgmtd (heartbeat 200 ms, lease 2 s), nodes 2..4 one 64 MiB target
# each (target k1 on node k). Sets ADDR1..ADDR4 (each node's listen endpoint,
# chosen once: on loopback host_listen picks a new port each call) and MGMTD.
cluster_configs() {
	for n in 1 2 3 4; do
		eval "ADDR$n=$(host_listen $n)"
	done
	MGMTD=$ADDR1
	cat > "$WORK/n1.conf" <<EOF
[node]
id = 1
listen = $MGMTD
loops = 1
pin = no
[mgmtd]
db = $WORK/mgmtd.db
heartbeat_ms = 200
lease_ms = 2000
EOF
	for n in 2 3 4; do
		eval "addr=\$ADDR$n"
		cat > "$WORK/n$n.conf" <<EOF
[node]
id = $n
listen = $addr
loops = 2
pin = no
mgmtd = $MGMTD
[target.${n}1]
path = $WORK/t$n
capacity = 64M
EOF
	done
}

# start_node N: run node N on its host in the background; its pid (chainfsd's
# own, which SIGSTOP and kill -9 must reach) goes to $WORK/nN.pid.
start_node() {
	host_start "$1" "$WORK/n$1.log" "$CHAINFSD" -c "$WORK/n$1.conf"
	echo "$HOST_PID" > "$WORK/n$1.pid"
}

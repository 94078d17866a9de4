#!/bin/bash
# A relay chain (kcopy(1), EXAMPLES; README, "Many machines, one link
# each") over TCP between network namespaces: a source and four nodes,
# each node a kcopy reading its standard input from a socket, writing its
# disk (an image file) and passing the stream on, on its standard output,
# to a socket to the next node.  Every disk must equal the source; a node
# in the middle whose disk is too small (ENOSPC) fails alone and passes the
# whole stream on; a node killed in the middle leaves the node before it
# with its '-' destination's bit (the link lost) and the nodes after it
# with status 0 and the part of the stream that came.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires ip python3 cmp timeout
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

# contrib/bench/relay-node.py ADDR NEXT PIDFILE READY CMD...: one node,
# listening on ADDR:$PORT; kcopy reads and writes the sockets themselves.
NODE=$(cd "${top_srcdir:-$(dirname "$0")/..}" && pwd)/contrib/bench/relay-node.py
[[ -f $NODE ]] || fail "no $NODE"
NODES=4
NS=kcrelay$$
PORT=7000
cd "$T"

# --- The network: namespaces ${NS}0 (the source) to ${NS}4, node i-1 and
# node i joined by a veth pair on 10.77.i.0/24 (i.1 on the left, i.2 on
# the right).  Deleting a namespace deletes its end of the pairs; cleanup
# kills what still runs in them first (cleanup runs in reverse order).
for ((i = 0; i <= NODES; i++)); do
	ip netns add "$NS$i" 2>/dev/null || skip "cannot create a network namespace"
	cleanup_add "ip netns del $NS$i 2>/dev/null"
	cleanup_add "ip netns pids $NS$i 2>/dev/null | xargs -r kill -KILL 2>/dev/null"
	ip -n "$NS$i" link set lo up
done
for ((i = 1; i <= NODES; i++)); do
	ip -n "$NS$((i - 1))" link add "r$i" type veth peer name "l$i" \
		netns "$NS$i" || skip "cannot create a veth pair"
	ip -n "$NS$((i - 1))" addr add "10.77.$i.1/24" dev "r$i"
	ip -n "$NS$i" addr add "10.77.$i.2/24" dev "l$i"
	ip -n "$NS$((i - 1))" link set "r$i" up
	ip -n "$NS$i" link set "l$i" up
done

export PORT

# relay NAME SRC_OPTS DISK1 ... DISK4: start the nodes from the last one
# (each listening before the one before it connects), then the source,
# which sends the source image with bash's /dev/tcp; sets ST0 (the source)
# and ST1..ST4 (the nodes) once every process has ended.  Each process runs
# under a 60 s timeout (status 124).
relay() {
	local name=$1 srcopts=$2 i next
	shift 2
	local -a pids=() disks=("$@")
	for ((i = NODES; i >= 1; i--)); do
		next=-
		((i == NODES)) || next=10.77.$((i + 1)).2
		rm -f "$name.ready$i"
		if ((i == NODES)); then
			ip netns exec "$NS$i" timeout 60 python3 "$NODE" \
				"10.77.$i.2" - "$name.pid$i" "$name.ready$i" \
				"$KCOPY" - "${disks[i - 1]}" 2>"$name.err$i" &
		else
			ip netns exec "$NS$i" timeout 60 python3 "$NODE" \
				"10.77.$i.2" "$next" "$name.pid$i" "$name.ready$i" \
				"$KCOPY" - "${disks[i - 1]}" - 2>"$name.err$i" &
		fi
		pids[i]=$!
		cleanup_add "kill ${pids[i]} 2>/dev/null"
		wait_for 10 test -e "$name.ready$i" || fail "$name: node $i not listening"
	done
	# shellcheck disable=SC2086,SC2016 # $srcopts: words; bash -c expands
	ip netns exec "${NS}0" timeout 60 bash -c \
		'exec "$0" "${@:2}" >"/dev/tcp/$1/$PORT"' \
		"$KCOPY" 10.77.1.2 $srcopts "$SRC" - 2>"$name.err0" &
	pids[0]=$!
	cleanup_add "kill ${pids[0]} 2>/dev/null"
	RELAY_PIDS=("${pids[@]}")
	[[ -z ${RELAY_NOWAIT:-} ]] || return 0
	relay_wait "$name"
}

# relay_wait NAME: wait for every process of the chain, set ST0..ST4.
relay_wait() {
	local name=$1 i st
	for ((i = 0; i <= NODES; i++)); do
		wait "${RELAY_PIDS[i]}" && st=0 || st=$?
		printf -v "ST$i" %s "$st"
		[[ $st != 124 ]] || fail "$name: node $i hung: $(cat "$name.err$i")"
	done
}

SRC=$T/src.img
make_image "$SRC" 40M random
SIZE=$(stat -c %s "$SRC")

# --- Four nodes, every disk exact, every status 0.
relay ok '' ok1.img ok2.img ok3.img ok4.img
for ((i = 0; i <= NODES; i++)); do
	v=ST$i
	assert_eq "${!v}" 0 "relay: node $i's status ($(cat "ok.err$i"))"
done
for ((i = 1; i <= NODES; i++)); do
	cmp "$SRC" "ok$i.img" || fail "relay: node $i's disk differs"
done

# --- Node 2's disk too small (8 MiB of a 40 MiB stream): node 2 exits with
# its disk's bit (destination 1: 2), what fits written, and passes the whole
# stream on; every other node exits 0 with an exact disk.
relay small '' sm1.img sm2.img:0:8M sm3.img sm4.img
expect_status "$ST0" ok "too small: the source"
expect_status "$ST1" ok "too small: node 1"
expect_status "$ST2" dest:1 "too small: node 2"
expect_status "$ST3" ok "too small: node 3"
expect_status "$ST4" ok "too small: node 4"
grep -q "destination 1 'sm2.img': write: No space left on device" small.err2 ||
	fail "too small: node 2 says $(cat small.err2)"
same "$SRC" 0 sm2.img 0 $((8 * 1024 * 1024))
for i in 1 3 4; do
	cmp "$SRC" "sm$i.img" || fail "too small: node $i's disk differs"
done

# --- Node 2 killed in the middle of the stream (the source held to 8 MiB/s):
# node 1 loses its '-' destination (destination 2: 4) and still writes its
# own disk whole; nodes 3 and 4 see their stream end and exit 0 with the
# part that came, the same prefix of the source on both.
RELAY_NOWAIT=1 relay killed '--rate 8M' k1.img k2.img k3.img k4.img
wait_for 10 test -s killed.pid2 || fail "killed: node 2 did not start"
wait_for 10 bash -c "(( \$(stat -c %s k2.img 2>/dev/null || echo 0) >= 4 << 20 ))" ||
	fail "killed: node 2 wrote nothing"
kill -KILL "$(cat killed.pid2)"
relay_wait killed
expect_status "$ST0" ok "killed: the source"
expect_status "$ST1" dest:2 "killed: node 1 (its link to node 2)"
assert_eq "$ST2" 137 "killed: node 2 (SIGKILL)"
expect_status "$ST3" ok "killed: node 3"
expect_status "$ST4" ok "killed: node 4"
grep -q "destination 2 '-': write: " killed.err1 ||
	fail "killed: node 1 says $(cat killed.err1)"
cmp "$SRC" k1.img || fail "killed: node 1's disk differs"
n3=$(stat -c %s k3.img)
((n3 < SIZE)) || fail "killed: node 3 got the whole stream ($n3 bytes)"
size_is k4.img "$n3"
cmp -n "$n3" "$SRC" k3.img || fail "killed: node 3's part differs"
cmp -n "$n3" "$SRC" k4.img || fail "killed: node 4's part differs"
echo "relay chain of $NODES nodes: all cases passed"

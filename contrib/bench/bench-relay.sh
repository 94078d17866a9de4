#!/bin/bash
# bench-relay.sh - a relay chain (kcopy(1), STREAMS, "Relay chains") of
# four nodes against one node, on one machine: a source and the nodes in
# network namespaces, joined by veth pairs, each link shaped to one rate
# (tc tbf) as a network link would be; every node a kcopy reading the
# stream from a TCP socket, writing its disk (an image file) and passing
# the stream on over TCP to the next.  One node: the source sends to one
# node.  Four: to node 1, which passes it to node 2, and so on.  The target
# (SPEC.md, "Many machines"; issue 24): four nodes in at most 1.3x one
# node's time.  Every disk is compared with the source after each run.
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage (as root):  bash contrib/bench/bench-relay.sh KCOPY [OPTION]...
#                   make bench-relay [BENCH_ARGS='--size 1G --runs 3']
# KCOPY must be the installed binary (make bench-relay does that), not
# libtool's wrapper script.  Every namespace, process and file it made is
# removed on exit, also when interrupted.  On a busy machine the nodes
# compete for the CPUs and the disk, which a real chain's nodes do not:
# time it on an idle one.

# "make bench-relay" runs this with $(SHELL), usually a POSIX sh: go to bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

set -euo pipefail
export LC_ALL=C

ME=bench-relay
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

usage() {
	cat <<EOF
Usage: $ME KCOPY [OPTION]...
Time a relay chain of kcopy nodes over TCP between network namespaces
against one node.  Must run as root.

  --size SIZE     bytes of the source image (default 512M)
  --runs N        repetitions of each chain, interleaved (default 3)
  --nodes N       nodes of the long chain (default 4)
  --link RATE     each link's rate, as tc spells it (default 1gbit), or
                  'none' for the veth pairs as they are
  --dir DIR       where the images live (default a directory under
                  /var/tmp; a tmpfs takes the disk out of the measurement)
  --outdir DIR    results directory (default $HERE/results)
EOF
}

[ $# -ge 1 ] || { usage >&2; exit 1; }
case $1 in -h|--help) usage; exit 0;; esac
KCOPY=$1; shift
case $KCOPY in /*) ;; *) KCOPY=$(pwd)/$KCOPY;; esac

SIZE_ARG=512M RUNS=3 NODES=4 LINK=1gbit DIR='' OUTDIR=$HERE/results
while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	--*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue;;
	esac
	case $opt in
	--size|--runs|--nodes|--link|--dir|--outdir)
		[ $# -ge 2 ] || die "$opt needs an argument";;
	esac
	case $opt in
	--size) SIZE_ARG=$2; shift;;
	--runs) RUNS=$2; shift;;
	--nodes) NODES=$2; shift;;
	--link) LINK=$2; shift;;
	--dir) DIR=$2; shift;;
	--outdir) OUTDIR=$2; shift;;
	-h|--help) usage; exit 0;;
	*) usage >&2; die "unknown option '$opt'";;
	esac
	shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: a positive number"
if ! [[ $NODES =~ ^[1-9][0-9]*$ ]] || ((NODES < 2 || NODES > 200)); then
	die "--nodes: 2 to 200"
fi
SIZE=$(numfmt --from=iec "${SIZE_ARG%iB}" 2>/dev/null) ||
	die "--size '$SIZE_ARG': not a size"
((SIZE >= 1048576 && SIZE % 1048576 == 0)) || die "--size: a multiple of 1 MiB"

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces)"
require_kcopy_binary "$KCOPY"
if ldd "$KCOPY" 2>/dev/null | grep -q 'not found'; then
	die "'$KCOPY': a library is not found (set LD_LIBRARY_PATH to its lib directory)"
fi
for t in ip python3 cmp numfmt awk timeout; do
	have "$t" || die "required tool '$t' is missing"
done
[ "$LINK" = none ] || have tc || die "required tool 'tc' is missing (iproute2), or --link none"

NS=kcbench$$
PORT=7000
NODE_PY=$HERE/relay-node.py
made_ns=0
if [ -z "$DIR" ]; then
	WORK=$(mktemp -d /var/tmp/bench-relay.XXXXXX)
else
	mkdir -p "$DIR"
	WORK=$(mktemp -d "$DIR/bench-relay.XXXXXX")
fi
cleanup() {
	local i pid
	for ((i = 0; i < made_ns; i++)); do
		for pid in $(ip netns pids "$NS$i" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$NS$i" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap_cleanup

# The network: namespace $NS0 holds the source, $NS1..$NS$NODES the nodes;
# node i-1 and node i share a veth pair on 10.78.i.0/24 (r$i, l$i), shaped
# on the sending side.
for ((i = 0; i <= NODES; i++)); do
	ip netns add "$NS$i" || die "cannot create a network namespace"
	made_ns=$((i + 1))
	ip -n "$NS$i" link set lo up
done
for ((i = 1; i <= NODES; i++)); do
	ip -n "$NS$((i - 1))" link add "r$i" type veth peer name "l$i" netns "$NS$i"
	ip -n "$NS$((i - 1))" addr add "10.78.$i.1/24" dev "r$i"
	ip -n "$NS$i" addr add "10.78.$i.2/24" dev "l$i"
	ip -n "$NS$((i - 1))" link set "r$i" up
	ip -n "$NS$i" link set "l$i" up
	if [ "$LINK" != none ]; then
		ip netns exec "$NS$((i - 1))" tc qdisc add dev "r$i" root tbf \
			rate "$LINK" burst 1mb latency 50ms ||
			die "tc: cannot shape a link to '$LINK'"
	fi
done
export PORT

say "making a $SIZE_ARG source image of random data in $WORK"
SRC=$WORK/src.img
head -c "$SIZE" /dev/urandom >"$SRC"

# chain N: the source to nodes 1..N, node N the last; sets CHAIN_T to the
# wall time from the source's start to the last process's end, and CHAIN_OK
# to 'ok' or to what went wrong (a status, a disk that differs).
chain() {
	local n=$1 i next t0 t1 st
	local -a pids=()
	CHAIN_OK=ok
	for ((i = n; i >= 1; i--)); do
		rm -f "$WORK/ready$i" "$WORK/disk$i.img"
		next=-
		((i == n)) || next=10.78.$((i + 1)).2
		if ((i == n)); then
			ip netns exec "$NS$i" timeout 600 python3 "$NODE_PY" \
				"10.78.$i.2" - "$WORK/pid$i" "$WORK/ready$i" \
				"$KCOPY" -q - "$WORK/disk$i.img" &
		else
			ip netns exec "$NS$i" timeout 600 python3 "$NODE_PY" \
				"10.78.$i.2" "$next" "$WORK/pid$i" "$WORK/ready$i" \
				"$KCOPY" -q - "$WORK/disk$i.img" - &
		fi
		pids[i]=$!
		while [ ! -e "$WORK/ready$i" ]; do
			kill -0 "${pids[i]}" 2>/dev/null || die "node $i did not start"
			sleep 0.05
		done
	done
	sync
	t0=$(date +%s.%N)
	# shellcheck disable=SC2016 # expanded by the inner bash
	ip netns exec "${NS}0" timeout 600 bash -c \
		'exec "$0" -q "$2" - >"/dev/tcp/$1/$PORT"' \
		"$KCOPY" 10.78.1.2 "$SRC" &
	pids[0]=$!
	for ((i = 0; i <= n; i++)); do
		wait "${pids[i]}" && st=0 || st=$?
		((st == 0)) || CHAIN_OK="node $i exited $st"
	done
	t1=$(date +%s.%N)
	for ((i = 1; i <= n; i++)); do
		cmp -s "$SRC" "$WORK/disk$i.img" || CHAIN_OK="node $i's disk differs"
	done
	CHAIN_T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}

declare -A times=() checks=()
for ((r = 1; r <= RUNS; r++)); do
	for n in 1 "$NODES"; do
		chain "$n"
		times[$n]="${times[$n]:-} $CHAIN_T"
		[ "${checks[$n]:-ok}" != ok ] || checks[$n]=$CHAIN_OK
		say "run $r: $n node(s): $CHAIN_T s ($CHAIN_OK)"
	done
done

mkdir -p "$OUTDIR"
md=$OUTDIR/relay-$SIZE_ARG.md
t1=$(echo "${times[1]}" | median)
tn=$(echo "${times[$NODES]}" | median)
{
	echo "# Relay chain, $SIZE_ARG, 1 against $NODES nodes"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -sr); $(nproc) CPUs;" \
		"load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
		"links: ${LINK}; images in $(df --output=fstype "$WORK" | tail -n 1);" \
		"$("$KCOPY" --version | head -n 1); median of $RUNS runs."
	echo
	echo "| nodes | median s | range s | MiB/s per link | ratio vs 1 node | check |"
	echo "|---:|---:|---:|---:|---:|---|"
	for n in 1 "$NODES"; do
		m=$(echo "${times[$n]}" | median)
		lo=$(echo "${times[$n]}" | tr ' ' '\n' | grep -v '^$' | sort -g | head -n 1)
		hi=$(echo "${times[$n]}" | maxof)
		echo "| $n | $(fmt "$m" 3) | $(fmt "$lo" 2)–$(fmt "$hi" 2) |" \
			"$(awk -v s="$SIZE" -v t="$m" 'BEGIN { printf "%.0f", s / 1048576 / t }') |" \
			"$(awk -v a="$m" -v b="$t1" 'BEGIN { printf "%.2f", a / b }') | ${checks[$n]} |"
	done
	echo
	check "$NODES nodes ≤ 1.3 × one node's time" "$tn" 1.3 "$t1" s
} >"$md"
cat "$md"
say "results: $md"

#!/bin/bash
# bench-mapfile.sh - the mapfile at GNU ddrescue's scale, beside ddrescue's
# own tools, in one run:
#   1. loading a mapfile of LINES lines (default 1,000,000; alternating
#      rescued and bad 4 KiB areas): kcopy --dry-run --mapfile against
#      ddrescuelog -t reading the same file;
#   2. a copy of a source with BAD bad ranges (default 100,000), served by
#      nbdkit's ddrescue filter, with -i --mapfile: the time kcopy spends,
#      against the same copy without the bad ranges (the map's cost is the
#      difference).
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage: bench-mapfile.sh KCOPY [--lines N] [--bad N] [--runs N]
# KCOPY must be the installed binary (make bench-mapfile does that), not
# libtool's wrapper script.  Needs ddrescuelog, nbdkit, python3.
set -euo pipefail
ME=bench-mapfile
. "$(dirname "$0")/common.sh"

[ $# -ge 1 ] || die "usage: $0 KCOPY [--lines N] [--bad N] [--runs N]"
KCOPY=$1
shift
require_kcopy_binary "$KCOPY"
LINES=1000000 BAD=100000 RUNS=3
while [ $# -gt 0 ]; do
	case $1 in
	--lines) LINES=$2; shift 2 ;;
	--bad) BAD=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
for c in ddrescuelog nbdkit python3; do
	command -v $c >/dev/null || die "needs $c"
done
W=$(mktemp -d "${TMPDIR:-/tmp}/kcopy-bench-mapfile.XXXXXX")
NBD_PID=
cleanup() {
	[ -z "$NBD_PID" ] || kill "$NBD_PID" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

# map FILE N: a ddrescue mapfile of N alternating '+' and '-' 4 KiB areas.
map() {
	python3 - "$1" "$2" <<'EOF'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("# Mapfile. Created by GNU ddrescue version 1.27\n"
            "# current_pos  current_status  current_pass\n"
            "0x00000000     +               1\n"
            "#      pos        size  status\n")
    f.writelines("0x%08X  0x%08X  %s\n" % (i * 4096, 4096, "+-"[i % 2])
                 for i in range(n))
EOF
}

# best CMD...: the fastest of RUNS runs' wall time, in seconds.
best() {
	local i t b= TIMEFORMAT=%R
	for ((i = 0; i < RUNS; i++)); do
		t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
		if [ -z "$b" ] || awk "BEGIN { exit !($t < $b) }"; then
			b=$t
		fi
	done
	echo "$b"
}

say "1. loading a $LINES-line mapfile"
map "$W/big.map" "$LINES"
truncate -s $((LINES * 4096)) "$W/src.img"
t_k=$(best "$KCOPY" -q --dry-run --mapfile "$W/big.map" "$W/src.img" "$W/dst.img")
t_d=$(best ddrescuelog -t "$W/big.map")
printf '%-36s %8s s\n' "kcopy --dry-run --mapfile" "$t_k" \
	"ddrescuelog -t" "$t_d"

say "2. a copy with $BAD bad ranges (nbdkit ddrescue filter)"
map "$W/bad.map" $((2 * BAD))
head -c $((2 * BAD * 4096)) /dev/urandom >"$W/sick.img"
nbdkit -f -U "$W/nbd.sock" --filter=ddrescue file "$W/sick.img" \
	ddrescue-mapfile="$W/bad.map" &
NBD_PID=$!
for _ in $(seq 50); do [ -S "$W/nbd.sock" ] && break; sleep 0.1; done
URI="nbd+unix:///?socket=$W/nbd.sock"
run_bad() {
	rm -f "$W/out.img" "$W/out.map"
	"$KCOPY" -q -i --mapfile "$W/out.map" "$URI" "$W/out.img" ||
		[ $? -le 1 ]
}
run_good() {
	rm -f "$W/out.img" "$W/out.map"
	"$KCOPY" -q --mapfile "$W/out.map" "$W/sick.img" "$W/out.img"
}
t_bad=$(best run_bad)
t_good=$(best run_good)
printf '%-36s %8s s\n' "kcopy -i --mapfile, $BAD bad ranges" "$t_bad" \
	"kcopy --mapfile, no bad range" "$t_good"

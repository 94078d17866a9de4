#!/bin/bash
# bench-flash.sh - flashing an image to four disks (kcopy(1), FLASHING
# IMAGES; issue 23), beside the tools users flash with, in one run:
#   1. xz: the image compressed with xz -T2, with its bmap: kcopy --bmap
#      to 4 loop devices against bmaptool copy run once per device;
#   2. zstd: the same with zstd;
#   3. qcow2: the image converted by qemu-img: kcopy from
#      [ qemu-nbd -f qcow2 IMAGE ] to the 4 devices against qemu-img
#      convert -n run once per device;
#   4. pipe: xzcat IMAGE.xz | kcopy - to a new file: the blocks the file
#      allocates against the image's data (no time: a target on space).
# The image is 10% data in extents of assorted sizes (bytes of the
# system's own libraries, which compress as an OS image does), the rest
# holes; the devices hold old random data.  After each tool's first run
# every device is compared with the image over its length: bmaptool leaves
# the old data where the image is empty, which the check column says.
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage (as root):  bash contrib/bench/bench-flash.sh KCOPY [OPTION]...
#                   make bench-flash [BENCH_ARGS='--size 256M --runs 1']
# KCOPY must be the installed binary (make bench-flash does that), not
# libtool's wrapper script.  A tool that is missing or fails is recorded as
# "failed" in its row; the run goes on.  Every loop device, tmpfs and file
# it made is removed on exit, also when interrupted.

# "make bench-flash" runs this with $(SHELL), usually a POSIX sh: go to bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

set -euo pipefail
export LC_ALL=C

ME=bench-flash
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

usage() {
	cat <<EOF
Usage: $ME KCOPY [OPTION]...
Benchmark flashing an xz, zstd and qcow2 image to four loop devices:
KCOPY against bmaptool copy and qemu-img convert run once per device.
Must run as root.

  --size SIZE     the raw image's size (default 1G), 10% of it data
  --runs N        repetitions of every tool (default 3)
  --outdir DIR    results directory (default $HERE/results)
  -h, --help      this text
EOF
}

[ $# -ge 1 ] || { usage >&2; exit 1; }
case $1 in -h|--help) usage; exit 0;; esac
KCOPY=$1; shift
case $KCOPY in /*) ;; *) KCOPY=$(pwd)/$KCOPY;; esac

SIZE_ARG=1G RUNS=3 OUTDIR=$HERE/results NDST=4
while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	--*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue;;
	esac
	case $opt in
	--size|--runs|--outdir) [ $# -ge 2 ] || die "$opt needs an argument";;
	esac
	case $opt in
	--size) SIZE_ARG=$2; shift;;
	--runs) RUNS=$2; shift;;
	--outdir) OUTDIR=$2; shift;;
	-h|--help) usage; exit 0;;
	*) usage >&2; die "unknown option '$opt'";;
	esac
	shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: a positive number"
SIZE=$(numfmt --from=iec "${SIZE_ARG%iB}" 2>/dev/null) ||
	die "--size '$SIZE_ARG': not a size"
((SIZE >= 64 << 20 && SIZE % 1048576 == 0)) ||
	die "--size: a multiple of 1 MiB, at least 64M"

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices)"
require_kcopy_binary "$KCOPY"
for t in losetup cmp xz zstd qemu-img qemu-nbd numfmt awk; do
	have "$t" || die "required tool '$t' is missing"
done

WORK=$(mktemp -d /tmp/bench-flash.XXXXXX)
MNT=$WORK/tmpfs
LOOPS=()
cleanup() {
	local l
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	umount "$MNT" 2>/dev/null || true
	rm -rf "$WORK"
}
trap_cleanup
mkdir -p "$MNT"
mount -t tmpfs -o size=$((SIZE * (NDST + 3) / 1048576 + 512))m bench-flash "$MNT" ||
	die "cannot mount a tmpfs"
IMG=$MNT/image.img

# The image: SIZE with 10% data in extents of 64 KiB to 8 MiB at random
# places (seeded), taken from the system's libraries.
say "making a $SIZE_ARG image with 10% data"
truncate -s "$SIZE" "$IMG"
# (head ends the pipe early: the others' SIGPIPE is no failure)
{ find /usr/lib /usr/bin -type f -size +100k 2>/dev/null | sort |
	xargs cat 2>/dev/null | head -c $((SIZE / 10)) >"$WORK/data"; } || true
DATA=$(stat -c %s "$WORK/data")
((DATA == SIZE / 10)) || die "not enough bytes in /usr/lib and /usr/bin"
awk -v size="$SIZE" -v data="$DATA" 'BEGIN {
	srand(23); at = 0
	while (at < data) {
		len = int(2 ^ (16 + rand() * 7)); if (at + len > data) len = data - at
		off = int(rand() * (size - len) / 65536) * 65536
		printf "%d %d %d\n", at, len, off; at += len
	} }' | while read -r at len off; do
	dd if="$WORK/data" of="$IMG" bs=64K skip="$at" seek="$off" \
		count="$len" iflag=skip_bytes,count_bytes oflag=seek_bytes \
		conv=notrunc status=none
done
rm -f "$WORK/data"
IMG_ALLOC=$(($(stat -c '%b*%B' "$IMG")))
say "image: $((IMG_ALLOC >> 20)) MiB allocated; compressing"
BMAP=$MNT/image.bmap
if have bmaptool; then bmaptool -q create -o "$BMAP" "$IMG"; fi
xz -T2 -k -c "$IMG" >"$MNT/image.img.xz"
zstd -q -T2 -c "$IMG" >"$MNT/image.img.zst"
qemu-img convert -f raw -O qcow2 "$IMG" "$MNT/image.qcow2"

for ((i = 1; i <= NDST; i++)); do
	head -c "$SIZE" /dev/urandom >"$MNT/dst$i.img"
	LOOPS+=("$(losetup --show -f --direct-io=on "$MNT/dst$i.img")")
done

# timed CMD...: run it, adding its wall time to T; 1 if it failed.
timed() {
	local t0 t1 st=0
	t0=$(date +%s.%N)
	"$@" >>"$WORK/log" 2>&1 || st=$?
	t1=$(date +%s.%N)
	T=$(awk -v t="$T" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", t + b - a }')
	return $st
}

# run KIND: one run of a tool to every device; sets T (seconds).
run() {
	local l
	T=0
	case $1 in
	k-xz) timed "$KCOPY" -q --bmap "$BMAP" "$MNT/image.img.xz" "${LOOPS[@]}";;
	k-zst) timed "$KCOPY" -q --bmap "$BMAP" "$MNT/image.img.zst" "${LOOPS[@]}";;
	k-qcow2) timed "$KCOPY" -q [ qemu-nbd -r -f qcow2 "$MNT/image.qcow2" ] "${LOOPS[@]}";;
	b-xz|b-zst)
		for l in "${LOOPS[@]}"; do
			timed bmaptool -q copy --bmap "$BMAP" \
				"$MNT/image.img.${1#b-}" "$l" || return 1
		done;;
	q-qcow2)
		for l in "${LOOPS[@]}"; do
			timed qemu-img convert -n -f qcow2 -O raw \
				"$MNT/image.qcow2" "$l" || return 1
		done;;
	esac
}

# check_devices: every device equal to the image, or where the first
# differs.
check_devices() {
	local l out
	for l in "${LOOPS[@]}"; do
		out=$(cmp -n "$SIZE" "$IMG" "$l" 2>&1) || {
			out=${out##*char }
			echo "$l differs from the image at byte ${out%%,*}"
			return
		}
	done
	echo "ok, $NDST devices equal to the image"
}

# scramble: old data on the devices again, so that no tool finds the
# previous one's copy.
scramble() {
	local l
	for l in "${LOOPS[@]}"; do
		head -c $((SIZE / 16)) /dev/urandom |
			dd of="$l" bs=1M oflag=direct conv=notrunc status=none
	done
	sync
}

KINDS=(k-xz b-xz k-zst b-zst k-qcow2 q-qcow2)
declare -A NAME=(
	[k-xz]="kcopy --bmap, image.img.xz" [b-xz]="bmaptool copy x$NDST, image.img.xz"
	[k-zst]="kcopy --bmap, image.img.zst" [b-zst]="bmaptool copy x$NDST, image.img.zst"
	[k-qcow2]="kcopy [ qemu-nbd ], image.qcow2" [q-qcow2]="qemu-img convert -n x$NDST, image.qcow2")
declare -A TIMES=() CHECK=()
for ((r = 1; r <= RUNS; r++)); do
	for k in "${KINDS[@]}"; do
		case $k in b-*) have bmaptool || { CHECK[$k]="bmaptool missing"; continue; };; esac
		scramble
		if run "$k"; then
			TIMES[$k]="${TIMES[$k]:-} $T"
			[ -n "${CHECK[$k]:-}" ] || CHECK[$k]=$(check_devices)
			say "run $r: ${NAME[$k]}: $T s"
		else
			CHECK[$k]="failed (see below)"
			say "run $r: ${NAME[$k]}: failed: $(tail -n 3 "$WORK/log")"
		fi
	done
done

# The pipe: a new file from xzcat, its allocation against the data.
rm -f "$MNT/new.img"
xzcat "$MNT/image.img.xz" | "$KCOPY" -q - "$MNT/new.img" >>"$WORK/log" 2>&1 &&
	cmp -s "$IMG" "$MNT/new.img" && PIPE_CHECK="ok, equal to the image" ||
	PIPE_CHECK="failed or differs"
NEW_ALLOC=$(($(stat -c '%b*%B' "$MNT/new.img" 2>/dev/null || echo 0)))

mkdir -p "$OUTDIR"
md=$OUTDIR/flash-tmpfs-$SIZE_ARG.md
med() { echo "${TIMES[$1]:-}" | median; }
{
	echo "# Flashing a $SIZE_ARG image (10% data) to $NDST loop devices on tmpfs"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -sr); $(nproc) CPUs;" \
		"load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
		"$("$KCOPY" --version | head -n 1);" \
		"$(bmaptool --version 2>&1 | head -n 1); $(qemu-img --version | head -n 1);" \
		"median of $RUNS runs.  Image: $((IMG_ALLOC >> 20)) MiB of data;" \
		"xz -T2 $(($(stat -c %s "$MNT/image.img.xz") >> 20)) MiB," \
		"zstd $(($(stat -c %s "$MNT/image.img.zst") >> 20)) MiB," \
		"qcow2 $(($(stat -c %s "$MNT/image.qcow2") >> 20)) MiB."
	echo
	echo "| tool | median s | runs s | check |"
	echo "|---|---:|---|---|"
	for k in "${KINDS[@]}"; do
		echo "| ${NAME[$k]} | $(fmt "$(med "$k")" 3) |$(echo "${TIMES[$k]:-}" |
			awk '{ for (i = 1; i <= NF; i++) printf " %.2f", $i }') | ${CHECK[$k]:-not run} |"
	done
	echo
	echo "Pipe: \`xzcat image.img.xz | kcopy - new.img\`: $((NEW_ALLOC >> 20)) MiB" \
		"allocated for $((IMG_ALLOC >> 20)) MiB of data ($PIPE_CHECK)."
	echo
	echo "Targets (issue 23, \"Performance\"):"
	echo
	check "xz + bmap: kcopy ≤ 0.5 × bmaptool copy x$NDST" "$(med k-xz)" 0.5 "$(med b-xz)" s
	check "zstd + bmap: kcopy ≤ 0.5 × bmaptool copy x$NDST" "$(med k-zst)" 0.5 "$(med b-zst)" s
	check "qcow2: kcopy ≤ 0.5 × qemu-img convert x$NDST" "$(med k-qcow2)" 0.5 "$(med q-qcow2)" s
	check "pipe: new file's allocation ≤ 1.2 × the data" \
		"$(awk -v b="$NEW_ALLOC" 'BEGIN { print b / 1048576 }')" 1.2 \
		"$(awk -v b="$IMG_ALLOC" 'BEGIN { print b / 1048576 }')" MiB
	if grep -q . "$WORK/log"; then
		echo
		echo "Messages (the last 20 lines):"
		echo
		tail -n 20 "$WORK/log" | sed 's/^/    /'
	fi
} >"$md"
cat "$md"
say "results: $md"

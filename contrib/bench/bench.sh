#!/bin/bash
# bench.sh - kcopy against dd, dcfldd, dd|tee, nbdcopy and fio, side by side.
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage (as root):  bash contrib/bench/bench.sh /path/to/kcopy [OPTION]...
#                   make bench
#
# Builds loop devices over images on a private tmpfs and/or on the root disk
# (/var/tmp), a source filled with random data and four destinations, then
# runs every tool --runs times, interleaved (one run of each tool per round,
# the order rotated every round), dropping the page cache and zero-filling the
# destinations before every run.  The first run of each tool is checked with
# cmp against the source.  Reports the median wall time, MiB/s, the ratio to
# kcopy, CPU seconds per GiB and peak RSS (GNU time), checks the targets of
# SPEC.md "Performance", and writes Markdown, CSV and (with gnuplot) a PNG
# into contrib/bench/results/.  It installs nothing: a missing tool is named
# and its rows are skipped.  Every loop device and mount it made is removed
# on exit, also when interrupted.

# "make bench" runs this with $(SHELL), usually a POSIX sh: go to bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

set -u
set -o pipefail
export LC_ALL=C

ME=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)

usage() {
	cat <<EOF
Usage: $ME KCOPY [OPTION]...
Benchmark KCOPY (path to the kcopy binary) against dd, dcfldd, dd|tee,
nbdcopy and fio on loop devices.  Must run as root.

  --medium tmpfs|disk|both   where the loop images live (default both);
                             disk = files under /var/tmp (loop direct I/O)
  --size SIZE                bytes copied, K/M/G suffixes (default 1G)
  --runs N                   repetitions of every tool (default 5)
  --disk-runs N              repetitions on the disk medium (default --runs)
  --kcopy-opts 'OPTS'        extra options for kcopy (e.g. '--pages 8192')
  --sweep                    instead of the tool comparison, run kcopy with
                             --pages 512,2048,8192,32768 x --chunk 128K,512K,
                             1M,4M (1->1 and 1->4; dd as reference)
  --sweep-pages 'LIST'       pages to sweep (default '512 2048 8192 32768')
  --sweep-chunks 'LIST'      chunks to sweep (default '128K 512K 1M 4M')
  --no-fio                   skip the fio ceiling
  --sparse                   instead of the tool comparison: a sparse image
                             (10% data in scattered extents, --size, default
                             2G) on each --medium copied to 1 and 4 loop
                             devices (direct I/O) holding old random data
                             and to 4 new files, by kcopy, bmaptool,
                             nbdcopy, qemu-img convert and dd conv=sparse,
                             and kcopy's copy of a dense image of that size
  --scaling                  instead of the tool comparison, on loop
                             devices (--scaling-medium): 1 to N destinations (--size, default
                             512M) against dd run N times and fio's
                             one-read-plus-N-writes ceiling; 1->4 at each
                             size (time per GiB, peak RSS); 1 MiB and
                             16 MiB copies against dd; --verify of 4
                             destinations against the copy alone and one
                             read-back (1G); line charts of the curves
  --scaling-dests 'LIST'     destination counts (default '1 2 4 8 16 32')
  --scaling-sizes 'LIST'     sizes for 1->4 (default '256M 1G 2G')
  --scaling-phases 'LIST'    which of dests, sizes, small, verify to run
                             (default all four)
  --scaling-medium tmpfs|disk
                             where the --scaling images live (default
                             tmpfs; disk holds sizes tmpfs cannot)
  --outdir DIR               results directory (default $HERE/results)
  -h, --help                 this text

Quick run:  $ME /path/to/kcopy --size 256M --runs 3 --medium tmpfs
EOF
}

. "$HERE/common.sh"

[ $# -ge 1 ] || { usage >&2; exit 1; }
case $1 in -h|--help) usage; exit 0;; esac
KCOPY=$1; shift
case $KCOPY in /*) ;; *) KCOPY=$(pwd)/$KCOPY;; esac

MEDIUM=both SIZE_ARG='' RUNS=5 DISK_RUNS='' KOPTS='' SWEEP=0 FIO=1 SPARSE=0
SCALING=0 SCALE_DESTS='1 2 4 8 16 32' SCALE_SIZES='256M 1G 2G' NDST=4
FIO_SECONDS=3 FIO_RAMP=1
SCALE_PHASE=
SWEEP_PAGES='512 2048 8192 32768' SWEEP_CHUNKS='128K 512K 1M 4M'
OUTDIR=$HERE/results
while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	--*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue;;
	esac
	case $opt in
	--medium|--size|--runs|--disk-runs|--kcopy-opts|--outdir|--sweep-pages|--sweep-chunks|--scaling-dests|--scaling-sizes|--scaling-phases|--scaling-medium)
		[ $# -ge 2 ] || die "$opt needs an argument";;
	esac
	case $opt in
	--medium) MEDIUM=$2; shift;;
	--size) SIZE_ARG=$2; shift;;
	--runs) RUNS=$2; shift;;
	--disk-runs) DISK_RUNS=$2; shift;;
	--kcopy-opts) KOPTS=$2; shift;;
	--outdir) OUTDIR=$2; shift;;
	--sweep) SWEEP=1;;
	--sweep-pages) SWEEP_PAGES=$2; shift;;
	--sweep-chunks) SWEEP_CHUNKS=$2; shift;;
	--no-fio) FIO=0;;
	--sparse) SPARSE=1;;
	--scaling) SCALING=1;;
	--scaling-dests) SCALE_DESTS=$2; shift;;
	--scaling-sizes) SCALE_SIZES=$2; shift;;
	--scaling-phases) SCALE_PHASES=$2; shift;;
	--scaling-medium) SCALE_MEDIUM=$2; shift;;
	-h|--help) usage; exit 0;;
	*) usage >&2; die "unknown option '$opt'";;
	esac
	shift
done

case $MEDIUM in tmpfs|disk|both) ;; *) die "--medium: tmpfs, disk or both";; esac
[ $((SPARSE + SWEEP + SCALING)) -le 1 ] ||
	die "--sparse, --sweep and --scaling: one at a time"
for n in $SCALE_DESTS; do
	[[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 32 ] ||
		die "--scaling-dests: numbers from 1 to 32, not '$n'"
done
SCALE_PHASES=${SCALE_PHASES:-dests sizes small verify}
for n in $SCALE_PHASES; do
	case $n in dests|sizes|small|verify) ;;
	*) die "--scaling-phases: dests, sizes, small or verify, not '$n'";;
	esac
done
SCALE_MEDIUM=${SCALE_MEDIUM:-tmpfs}
case $SCALE_MEDIUM in tmpfs|disk) ;; *) die "--scaling-medium: tmpfs or disk";; esac
SIZE_ARG_USER=$SIZE_ARG
if [ -z "$SIZE_ARG" ]; then
	SIZE_ARG=1G
	[ "$SPARSE" = 1 ] && SIZE_ARG=2G
fi
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: a positive number"
DISK_RUNS=${DISK_RUNS:-$RUNS}
[[ $DISK_RUNS =~ ^[1-9][0-9]*$ ]] || die "--disk-runs: a positive number"
SIZE=$(numfmt --from=iec "${SIZE_ARG%iB}" 2>/dev/null) ||
	die "--size '$SIZE_ARG': not a size"
if [ "$SIZE" -lt 1048576 ] || [ $((SIZE % 1048576)) -ne 0 ]; then
	die "--size: a multiple of 1 MiB, at least 1M"
fi
SIZE_MB=$((SIZE / 1048576))

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, drop_caches)"
# "make bench" installs one under the build tree.
require_kcopy_binary "$KCOPY"
# The libkcopyd it loads (an older installed copy would be timed instead).
KLIB=$(ldd "$KCOPY" 2>/dev/null | awk '/libkcopyd/ { print $3 }')
if ldd "$KCOPY" 2>/dev/null | grep -q 'not found'; then
	die "'$KCOPY': $(ldd "$KCOPY" | grep 'not found' | head -n 1 |
		sed 's/^[[:space:]]*//') (set LD_LIBRARY_PATH to its lib directory)"
fi
for t in losetup blockdev blkdiscard cmp dd tee mkfifo numfmt awk; do
	command -v "$t" >/dev/null || die "required tool '$t' is missing"
done

# Optional tools: their rows (or columns) are skipped when missing.
GNU_TIME=
if [ -x /usr/bin/time ] && /usr/bin/time --version 2>&1 | grep -q GNU; then
	GNU_TIME=/usr/bin/time
else
	say "GNU time (/usr/bin/time, package 'time') is missing: no peak RSS column"
fi
for t in nbdcopy dcfldd fio gnuplot; do
	have $t || say "'$t' is missing: its rows are skipped" \
		"(Debian: libnbd-bin, dcfldd, fio, gnuplot-nox)"
done
have fio || FIO=0


# ------------------------------------------------------------ teardown

WORK=$(mktemp -d /tmp/kcopy-bench.XXXXXX) || die "mktemp failed"
LOOPS=() MOUNTS=() DIRS=("$WORK")
cleanup() {
	local rc=$? d i
	trap - EXIT INT TERM HUP
	wait 2>/dev/null	# children of an interrupted run
	for d in "${LOOPS[@]}"; do
		# A device still open (a dying tool, udev) is only marked for
		# detaching on its last close; the unmount below waits for that.
		losetup -d "$d" 2>/dev/null || say "could not detach $d"
	done
	for d in "${MOUNTS[@]}"; do
		for ((i = 0; i < 30; i++)); do
			umount "$d" 2>/dev/null && break
			sleep 0.1
		done
		[ "$i" -lt 30 ] || umount -l "$d" ||
			say "could not unmount $d"
	done
	for d in "${DIRS[@]}"; do rm -rf -- "$d"; done
	exit $rc
}
trap_cleanup

# ------------------------------------------------------------ helpers


drop_caches() {
	sync
	blockdev --flushbufs "${LOOPS[@]}" 2>/dev/null
	echo 3 > /proc/sys/vm/drop_caches
}

# Destinations are zeroed before every run: nothing left from a previous run
# can make a broken tool look right.
zero_dests() {
	local d
	for d in "$@"; do
		blkdiscard -z "$d" 2>/dev/null ||
			dd if=/dev/zero of="$d" bs=1M count="$SIZE_MB" \
				oflag=direct conv=fsync status=none ||
			die "cannot zero $d"
	done
}

# Attach a loop device over an image (direct I/O to the backing file on
# disk); the device is left in ATTACHED and recorded in LOOPS for teardown.
# Not to be called in a subshell: LOOPS must reach the EXIT trap.
attach() {
	local img=$1 dio=$2 dev=
	if [ "$dio" = 1 ]; then
		dev=$(losetup -f --show --direct-io=on "$img" 2>/dev/null) ||
			dev=$(losetup -f --show "$img")
	else
		dev=$(losetup -f --show "$img")
	fi
	[ -n "$dev" ] || die "losetup failed for $img"
	LOOPS+=("$dev")
	ATTACHED=$dev
}

# Make SRC (random) and DST[0..NDST-1] for one medium.
setup_medium() {
	local medium=$1 dir need avail i dio=0
	need=$(((1 + NDST) * SIZE + 64 * 1048576))
	case $medium in
	tmpfs)
		dir=$WORK/tmpfs
		mkdir -p "$dir"
		mount -t tmpfs -o size=$((need / 1048576))m kcopy-bench "$dir" ||
			die "cannot mount a tmpfs of $((need >> 20)) MiB"
		MOUNTS+=("$dir")
		;;
	disk)
		dir=$(mktemp -d /var/tmp/kcopy-bench.XXXXXX) || die "mktemp failed"
		DIRS+=("$dir")
		avail=$(df -B1 --output=avail "$dir" | tail -n 1)
		[ "$avail" -gt "$need" ] ||
			die "/var/tmp: $((need >> 20)) MiB needed, $((avail >> 20)) free"
		dio=1
		;;
	esac
	say "$medium: writing a ${SIZE_ARG} random source and $NDST destinations in $dir"
	dd if=/dev/urandom of="$dir/src.img" bs=1M count="$SIZE_MB" \
		iflag=fullblock status=none || die "cannot write the source image"
	for ((i = 1; i <= NDST; i++)); do
		fallocate -l "$SIZE" "$dir/dst$i.img" 2>/dev/null ||
			dd if=/dev/zero of="$dir/dst$i.img" bs=1M \
				count="$SIZE_MB" status=none ||
			die "cannot make dst$i.img"
	done
	attach "$dir/src.img" $dio
	SRC=$ATTACHED
	DST=()
	for ((i = 1; i <= NDST; i++)); do
		attach "$dir/dst$i.img" $dio
		DST+=("$ATTACHED")
	done
	MEDIUM_DIR=$dir
	say "$medium: source $SRC, destinations ${DST[*]}" \
		"(loop direct I/O: $(cat "/sys/block/${SRC#/dev/}/loop/dio" 2>/dev/null || echo ?))"
}

# ------------------------------------------------------------ --sparse

# On MEDIUM (disk: a new directory under /var/tmp, loop devices in
# direct-I/O mode; tmpfs: a private tmpfs): sparse.img, SIZE bytes of
# which about 10% are data in 256 scattered extents of assorted sizes (one
# per 1/256 of the image, at a random 4 KiB-aligned place in it, 4 KiB to
# 20% of the slot long; fixed seed, so every run copies the same map),
# the rest holes; dense.img, SIZE bytes of random data; old.img, other
# random data that prepare_dests writes to the devices before every run;
# dev1..4.img behind loop devices (DST); the names of the new files (NEWF);
# and the bmap of sparse.img, made once by bmaptool create, as a vendor
# ships it beside an image.  On tmpfs the dense image is not copied to new
# files (4 x SIZE more memory).
setup_sparse() {
	local medium=$1 dir need avail i slot t0 dio=1
	# dense + old + 4 devices + 4 new files (dense copies, disk only) +
	# the sparse data and its sparse copies
	need=$((11 * SIZE))
	[ "$medium" = tmpfs ] && need=$((7 * SIZE + 64 * 1048576))
	if [ "$medium" = tmpfs ]; then
		dir=$WORK/tmpfs-sparse
		mkdir -p "$dir"
		mount -t tmpfs -o size=$((need / 1048576))m kcopy-bench "$dir" ||
			die "cannot mount a tmpfs of $((need >> 20)) MiB"
		MOUNTS+=("$dir")
	else
		dir=$(mktemp -d /var/tmp/kcopy-bench.XXXXXX) || die "mktemp failed"
		DIRS+=("$dir")
		avail=$(df -B1 --output=avail "$dir" | tail -n 1)
		[ "$avail" -gt "$need" ] ||
			die "/var/tmp: $((need >> 20)) MiB needed, $((avail >> 20)) free"
	fi
	MEDIUM_DIR=$dir
	SPARSE_MEDIUM=$medium
	have bmaptool || say "'bmaptool' is missing: its rows are skipped (Debian: bmap-tools)"
	have qemu-img || say "'qemu-img' is missing: its rows are skipped (Debian: qemu-utils)"
	SIMG=$dir/sparse.img DIMG=$dir/dense.img OLD=$dir/old.img
	BMAP=$dir/sparse.bmap
	say "sparse: writing a $SIZE_ARG sparse image (10% data), a dense one and old data in $dir"
	truncate -s "$SIZE" "$SIMG" || die "cannot make $SIMG"
	slot=$((SIZE / 256 / 4096))	# 4 KiB blocks per slot
	[ "$slot" -ge 4 ] || die "--size: at least 4M for --sparse"
	awk -v slot="$slot" 'BEGIN { srand(12)
		for (i = 0; i < 256; i++) {
			len = 1 + int(rand() * (slot * 0.2 - 1))
			off = i * slot + int(rand() * (slot - len + 1))
			print off, len } }' >"$WORK/extents"
	while read -r off len; do
		dd if=/dev/urandom of="$SIMG" bs=4096 seek="$off" count="$len" \
			conv=notrunc iflag=fullblock status=none ||
			die "cannot write the data of $SIMG"
	done <"$WORK/extents"
	SPARSE_DATA=$(awk '{ b += $2 } END { print b * 4096 }' "$WORK/extents")
	SPARSE_ALLOC=$(stat -c '%b %B' "$SIMG" | awk '{ printf "%.0f\n", $1 * $2 }')
	dd if=/dev/urandom of="$DIMG" bs=1M count="$SIZE_MB" iflag=fullblock \
		status=none || die "cannot write $DIMG"
	dd if=/dev/urandom of="$OLD" bs=1M count="$SIZE_MB" iflag=fullblock \
		status=none || die "cannot write $OLD"
	DST=()
	for i in 1 2 3 4; do
		fallocate -l "$SIZE" "$dir/dev$i.img" ||
			die "cannot make $dir/dev$i.img"
		attach "$dir/dev$i.img" $dio
		DST+=("$ATTACHED")
	done
	NEWF=("$dir/new1.img" "$dir/new2.img" "$dir/new3.img" "$dir/new4.img")
	SRC=$SIMG
	BMAP_S=
	if have bmaptool; then
		t0=$EPOCHREALTIME
		bmaptool create -o "$BMAP" "$SIMG" 2>"$WORK/err" ||
			die "bmaptool create failed: $(head -c 300 "$WORK/err")"
		BMAP_S=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	fi
	LOOP_DIO=$(cat "/sys/block/${DST[0]#/dev/}/loop/dio" 2>/dev/null || echo ?)
	case $LOOP_DIO in 1) LOOP_DIO=on;; 0) LOOP_DIO=off;; esac
	say "sparse: $((SPARSE_DATA >> 20)) MiB of data in 256 extents" \
		"($((SPARSE_ALLOC >> 20)) MiB allocated); devices ${DST[*]}" \
		"(loop direct I/O: $LOOP_DIO)"
}

sparse_header() {
	local runs=$1
	local where="on the root disk (ext4, /var/tmp)" on="files on the same disk"
	if [ "$SPARSE_MEDIUM" = tmpfs ]; then
		where="on a tmpfs" on="files on the same tmpfs"
	fi
	echo "Source: a $SIZE_ARG sparse image $where," \
		"$((SPARSE_DATA >> 20)) MiB of random data" \
		"($(awk -v a="$SPARSE_DATA" -v s="$SIZE" 'BEGIN { printf "%.1f", 100 * a / s }')%)" \
		"in 256 scattered extents of 4 KiB to" \
		"$((SIZE / 256 / 5 >> 10)) KiB, the rest holes; the dense" \
		"reference is a $SIZE_ARG image of random data.  1→1 and 1→4:" \
		"loop devices (direct I/O: $LOOP_DIO) over $on, given" \
		"$SIZE_ARG of old random data before every run; 1→4 new files:" \
		"$on, removed before every run.  Median wall" \
		"time of $runs interleaved runs, page cache dropped before each;" \
		"the first run of each tool checked with cmp against the image." \
		"\"x4\": the tool run once per destination, one after another." \
		"The bmap was made once by \`bmaptool create\` (${BMAP_S:-?} s, not" \
		"in the times)."
}

# sparse_targets: issue 12's targets.
sparse_targets() {
	local k1 k4 kd4 b4 i best='' bestname='' okbest='' okname='' v
	k1=$(row 1to1 kcopy) k4=$(row 1to4 kcopy)
	kd4=$(row 1to4 "kcopy (dense image)") b4=$(row 1to4 "bmaptool x4")
	for ((i = 0; i < ${#E_TEST[@]}; i++)); do
		[ "${E_TEST[$i]}" = 1to1 ] && [ -n "${MED[$i]:-}" ] || continue
		case ${E_TOOL[$i]} in kcopy|"kcopy (dense image)") continue;; esac
		v=${MED[$i]}
		if [ -z "$best" ] || awk -v a="$v" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$v bestname=${E_TOOL[$i]}
		fi
		[ -z "${CHECKS[$i]:-}" ] && [ "${STATUS[$i]}" = ok ] || continue
		if [ -z "$okbest" ] || awk -v a="$v" -v b="$okbest" 'BEGIN { exit !(a < b) }'; then
			okbest=$v okname=${E_TOOL[$i]}
		fi
	done
	echo
	echo "Targets (issue 12, \"Performance\"):"
	echo
	check "1→4 wall ≤ 0.5 × bmaptool x4" "$(at MED "$k4")" 0.5 "$(at MED "$b4")" s
	check "1→4 wall ≤ 0.3 × kcopy's dense copy" "$(at MED "$k4")" 0.3 "$(at MED "$kd4")" s
	check "1→1 wall ≤ the fastest peer's (${bestname:-none})" "$(at MED "$k1")" 1 "$best" s
	check "1→1 wall ≤ the fastest peer whose copy is equal (${okname:-none})" \
		"$(at MED "$k1")" 1 "$okbest" s
}

# ------------------------------------------------------------ --scaling

# scaling_targets: issue 14's targets for the phase that just ran.
scaling_targets() {
	local budget_mib lim i k c r n
	budget_mib=$(awk -v p="$PAGES" 'BEGIN { printf "%.1f", p * 4096 / 1048576 }')
	lim=$(awk -v b="$budget_mib" 'BEGIN { print b + 6 }')
	echo
	echo "Targets (issue 14; kcopy budget $PAGES pages = $budget_mib MiB):"
	echo
	case $SCALE_PHASE in
	dests)
		for n in $SCALE_DESTS; do
			k=$(row 1to$n kcopy)
			check "1→$n wall ≤ fio's ceiling" "$(at MED "$k")" 1 \
				"$(at MED "$(row 1to$n "fio 1 read + $n write jobs (ceiling)")")" s
			check "1→$n peak RSS ≤ budget + 6 MiB" "$(at RSSM "$k")" 1 "$lim" MiB
		done;;
	sizes)
		k=$(row 1to4 kcopy)
		check "1→4 wall ≤ fio's ceiling" "$(at MED "$k")" 1 \
			"$(at MED "$(row 1to4 "fio 1 read + 4 write jobs (ceiling)")")" s
		check "1→4 peak RSS ≤ budget + 6 MiB" "$(at RSSM "$k")" 1 "$lim" MiB;;
	small)
		check "$SIZE_ARG copy wall ≤ 2 × dd's" "$(at MED "$(row 1to1 kcopy)")" 2 \
			"$(at MED "$(row 1to1 dd)")" s;;
	verify)
		k=$(row 1to4 kcopy) c=$(row 1to4 "kcopy --verify")
		r=$(row readback "dd of one destination to /dev/null")
		i=
		[ -n "$k" ] && [ -n "$c" ] &&
			i=$(awk -v a="${MED[$c]}" -v b="${MED[$k]}" 'BEGIN { printf "%.3f", a - b }')
		check "--verify of 4 adds ≤ 1.5 × one read-back" "$i" 1.5 "$(at MED "$r")" s;;
	esac
}

# free_medium: detach the medium's loop devices and remove its images.
free_medium() {
	local d x keep
	for d in "$SRC" "${DST[@]}"; do
		[ -b "$d" ] || continue		# --sparse: SRC is a file
		losetup -d "$d" || continue	# the EXIT trap tries again
		keep=()
		for x in "${LOOPS[@]}"; do [ "$x" = "$d" ] || keep+=("$x"); done
		LOOPS=("${keep[@]}")
	done
	if mountpoint -q "$MEDIUM_DIR"; then
		umount "$MEDIUM_DIR" && MOUNTS=()
	else
		rm -rf -- "$MEDIUM_DIR"
	fi
}

# set_size SIZE: the size of the next phase.
set_size() {
	SIZE_ARG=$1
	SIZE=$(numfmt --from=iec "${SIZE_ARG%iB}") || die "'$1': not a size"
	SIZE_MB=$((SIZE / 1048576))
}

# curve_chart LABEL TITLE YLABEL DAT TITLES...: a line chart of DAT (x in
# column 1, a line per further column, named by TITLES).
curve_chart() {
	local label=$1 title=$2 ylabel=$3 dat=$4 png plot='' c=2 t
	shift 4
	png=$OUTDIR/$label.png
	have gnuplot || { say "gnuplot is missing: no chart"; return; }
	for t in "$@"; do
		plot+="${plot:+, }\"$dat\" using 1:$c with linespoints lw 2 title \"$t\""
		c=$((c + 1))
	done
	gnuplot <<GNUPLOT 2>"$WORK/gnuplot.err" || say "gnuplot failed: $(head -c 300 "$WORK/gnuplot.err")"
set terminal pngcairo size 900,560 font ",10"
set output "$png"
set title "$title"
set xlabel "$XLABEL"
set ylabel "$ylabel"
set logscale x 2
set yrange [0:*]
set grid
set key top left
set datafile missing "-"
plot $plot
GNUPLOT
	[ -s "$png" ] && say "chart: $png"
}

# col CSV TEST TOOL FIELD: a field (6: median s, 10: peak RSS MiB) of a
# row of report()'s CSV, or "-".
col() {
	awk -F, -v t="$2" -v n="\"$3\"" -v f="$4" \
		'$4 == t && $5 == n && $f != "" { print $f; found = 1; exit }
		 END { if (!found) print "-" }' "$1"
}

# Is phase $1 among --scaling-phases?
want_phase() { case " $SCALE_PHASES " in *" $1 "*) return 0;; esac; return 1; }

run_scaling() {
	local n s dat csv m=$SCALE_MEDIUM
	# Destinations: 1 to N at one size.
	if want_phase dests; then
	SCALE_PHASE=dests
	NDST=0
	for n in $SCALE_DESTS; do [ "$n" -gt "$NDST" ] && NDST=$n; done
	set_size "${SIZE_ARG_USER:-512M}"
	setup_medium "$m"
	run_medium "$m" "$RUNS" "scaling-dests-$m-$SIZE_ARG"
	free_medium
	csv=$OUTDIR/scaling-dests-$m-$SIZE_ARG.csv
	dat=$OUTDIR/scaling-dests-$m-$SIZE_ARG.dat
	echo "# destinations, kcopy s, dd xN s, fio ceiling s" >"$dat"
	for n in $SCALE_DESTS; do
		echo "$n $(col "$csv" 1to$n kcopy 6) $(col "$csv" 1to$n "dd x$n" 6)" \
			"$(col "$csv" 1to$n "fio 1 read + $n write jobs (ceiling)" 6)" >>"$dat"
	done
	XLABEL=destinations curve_chart "scaling-dests-$m-$SIZE_ARG" \
		"1 to N destinations, $SIZE_ARG, $m loop devices (median of $RUNS; lower is better)" \
		"wall time, s" "$dat" kcopy "dd run N times" "fio: 1 read + N writes (ceiling)"
	fi

	# Sizes, 1->4: time per GiB and peak RSS.
	if want_phase sizes; then
	SCALE_PHASE=sizes NDST=4
	dat=$OUTDIR/scaling-size-$m.dat
	echo "# GiB, kcopy s/GiB, fio ceiling s/GiB, kcopy peak RSS MiB" >"$dat"
	for s in $SCALE_SIZES; do
		set_size "$s"
		setup_medium "$m"
		run_medium "$m" "$RUNS" "scaling-size-$m-$SIZE_ARG"
		free_medium
		csv=$OUTDIR/scaling-size-$m-$SIZE_ARG.csv
		awk -v g="$(awk -v s="$SIZE" 'BEGIN { print s / 1073741824 }')" \
			-v k="$(col "$csv" 1to4 kcopy 6)" \
			-v f="$(col "$csv" 1to4 "fio 1 read + 4 write jobs (ceiling)" 6)" \
			-v r="$(col "$csv" 1to4 kcopy 10)" \
			'BEGIN { printf "%s %s %s %s\n", g, k == "-" ? "-" : k / g,
				 f == "-" ? "-" : f / g, r }' >>"$dat"
	done
	XLABEL="GiB copied" curve_chart "scaling-size-$m" \
		"1 to 4 destinations by size, $m loop devices (median of $RUNS)" \
		"s per GiB; MiB" "$dat" "kcopy, s/GiB" "fio ceiling, s/GiB" \
		"kcopy peak RSS, MiB"
	fi

	# Small copies, 1->1.
	if want_phase small; then
	SCALE_PHASE=small NDST=1
	for s in 1M 16M; do
		set_size "$s"
		setup_medium "$m"
		run_medium "$m" "$RUNS" "scaling-small-$m-$SIZE_ARG"
		free_medium
	done
	fi

	# --verify of 4 destinations.
	if want_phase verify; then
	SCALE_PHASE=verify NDST=4
	set_size "${BENCH_VERIFY_SIZE:-1G}"
	setup_medium "$m"
	run_medium "$m" "$RUNS" "scaling-verify-$m-$SIZE_ARG"
	free_medium
	fi
}

# ------------------------------------------------------------ the entries
#
# An entry: test (1to1, 1to4, fio), tool label, kind, kcopy options.
E_TEST=() E_TOOL=() E_KIND=() E_OPTS=()
add() { E_TEST+=("$1"); E_TOOL+=("$2"); E_KIND+=("$3"); E_OPTS+=("${4:-}"); }

build_entries() {
	E_TEST=() E_TOOL=() E_KIND=() E_OPTS=()
	if [ "$SCALING" = 1 ]; then
		local n
		case $SCALE_PHASE in
		dests)
			for n in $SCALE_DESTS; do
				add 1to$n kcopy kcopy "$KOPTS"
				add 1to$n "dd x$n" dd4
				have fio && add 1to$n \
					"fio 1 read + $n write jobs (ceiling)" fiocopy
			done;;
		sizes)
			add 1to4 kcopy kcopy "$KOPTS"
			have fio && add 1to4 "fio 1 read + 4 write jobs (ceiling)" fiocopy;;
		small)
			add 1to1 kcopy kcopy "$KOPTS"
			add 1to1 "kcopy (libaio)" kcopyaio "$KOPTS"
			add 1to1 dd dd;;
		verify)
			add 1to4 kcopy kcopy "$KOPTS"
			add 1to4 "kcopy --verify" kcopy "$KOPTS --verify"
			add readback "dd of one destination to /dev/null" readback;;
		esac
		return
	fi
	if [ "$SPARSE" = 1 ]; then
		# Peers that copy one destination per run are run once per
		# destination ("x4"), as their users would.
		local t x
		for t in 1to1 1to4 new4; do
			x=
			[ "$t" = 1to1 ] || x=" x4"
			add $t kcopy ksparse "$KOPTS"
			have bmaptool && add $t "bmaptool$x" bmap
			have nbdcopy && add $t "nbdcopy$x" nbdn
			have qemu-img && add $t "qemu-img convert$x" qemu
			add $t "dd conv=sparse$x" ddsparse
			[ "$t" = new4 ] && [ "$SPARSE_MEDIUM" = tmpfs ] ||
				add $t "kcopy (dense image)" kdense "$KOPTS"
		done
		return
	fi
	if [ "$SWEEP" = 1 ]; then
		local t p c
		for t in 1to1 1to4; do
			for p in $SWEEP_PAGES; do
				for c in $SWEEP_CHUNKS; do
					add $t "kcopy p=$p c=$c" kcopy \
						"$KOPTS --pages $p --chunk $c"
				done
			done
		done
		add 1to1 "dd (reference)" dd
		add 1to4 "dd x4 (reference)" dd4
		return
	fi
	# kcopy on its default engine (io_uring where it can) and on libaio
	add 1to1 kcopy kcopy "$KOPTS"
	add 1to1 "kcopy (libaio)" kcopyaio "$KOPTS"
	add 1to1 dd dd
	have nbdcopy && add 1to1 nbdcopy nbdcopy
	have dcfldd && add 1to1 dcfldd dcfldd
	add 1to4 kcopy kcopy "$KOPTS"
	add 1to4 "kcopy (libaio)" kcopyaio "$KOPTS"
	add 1to4 "dd x4" dd4
	have dcfldd && add 1to4 dcfldd dcfldd
	add 1to4 "dd | tee" ddtee
	if [ "$FIO" = 1 ]; then
		# The copy's ceiling: fio reading the source and writing the
		# destinations at once (independent jobs, no data dependency).
		add 1to1 "fio 1 read + 1 write job (ceiling)" fiocopy
		add 1to4 "fio 1 read + 4 write jobs (ceiling)" fiocopy
		add fio "fio seq read" fioread
		add fio "fio seq write" fiowrite
	fi
}

ndests() { case $1 in 1to*) echo "${1#1to}";; new4) echo 4;; *) echo 0;; esac; }

# DESTS: the destinations of test $1 (new4: the new files of --sparse).
entry_dests() {
	local n
	n=$(ndests "$1")
	if [ "$1" = new4 ]; then
		DESTS=("${NEWF[@]}")
	else
		DESTS=("${DST[@]:0:$n}")
	fi
}

# Before every run: zero the destinations, or for --sparse give the devices
# their old random data back and remove the new files of the last run.
prepare_dests() {
	local i=$1 d
	[ "$(ndests "${E_TEST[$i]}")" -gt 0 ] || return 0
	if [ "$SPARSE" != 1 ]; then
		zero_dests "${DST[@]:0:$(ndests "${E_TEST[$i]}")}"
		return
	fi
	entry_dests "${E_TEST[$i]}"
	for d in "${DESTS[@]}"; do
		if [ -b "$d" ]; then
			dd if="$OLD" of="$d" bs=4M iflag=direct oflag=direct \
				status=none || die "cannot restore the old data of $d"
		else
			rm -f -- "$d"
		fi
	done
}

# Run "$@" under GNU time; add to RUN_WALL/RUN_CPU, max into RUN_RSS.
# Output goes to $WORK/out and $WORK/err; returns the command's status.
# CPU seconds (user + sys) of the shell's waited-for children, from the
# "times" builtin (millisecond resolution; GNU time's %U/%S have 10 ms).
# "times" runs in this shell (no fork), so the snapshot is exact.
children_cpu() {
	awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) {
		split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
		printf "%.3f", t }' "$1"
}

# Run "$@": add its wall time to RUN_WALL and its CPU time (with that of
# its children) to RUN_CPU; its peak RSS (GNU time's %M: the largest single
# process of the tree) goes into RUN_RSS when larger.  Output goes to
# $WORK/out and $WORK/err; returns the command's status.
RUN_WALL=0 RUN_CPU=0 RUN_RSS=0
timed() {
	local t0 t1 rc rss
	times >"$WORK/times0"
	t0=$EPOCHREALTIME
	if [ -n "$GNU_TIME" ]; then
		"$GNU_TIME" -f '%M %e %U %S' -o "$WORK/time" "$@" \
			>>"$WORK/out" 2>>"$WORK/err"
		rc=$?
	else
		"$@" >>"$WORK/out" 2>>"$WORK/err"
		rc=$?
	fi
	t1=$EPOCHREALTIME
	times >"$WORK/times1"
	RUN_WALL=$(awk -v w="$RUN_WALL" -v a="$t0" -v b="$t1" \
		'BEGIN { printf "%.6f", w + b - a }')
	RUN_CPU=$(awk -v c="$RUN_CPU" -v a="$(children_cpu "$WORK/times0")" \
		-v b="$(children_cpu "$WORK/times1")" \
		'BEGIN { printf "%.3f", c + b - a }')
	if [ -n "$GNU_TIME" ]; then
		# The last line: "Command exited with non-zero status" may precede.
		read -r rss _ < <(tail -n 1 "$WORK/time")
		[ "${rss:-0}" -gt "$RUN_RSS" ] && RUN_RSS=$rss
	fi
	return $rc
}

# A command whose wall time counts but whose CPU and RSS are not the tool's.
untimed_in_wall() {
	local t0 t1 rc
	t0=$EPOCHREALTIME
	"$@" >>"$WORK/out" 2>>"$WORK/err"
	rc=$?
	t1=$EPOCHREALTIME
	RUN_WALL=$(awk -v w="$RUN_WALL" -v a="$t0" -v b="$t1" \
		'BEGIN { printf "%.6f", w + b - a }')
	return $rc
}

# shellcheck disable=SC2016 # expanded by the inner bash
DDTEE_SCRIPT='
src=$1; shift; n=0
for d; do
	n=$((n + 1)); mkfifo "$W/fifo$n"
	dd if="$W/fifo$n" of="$d" bs=1M iflag=fullblock oflag=direct conv=fsync status=none &
	set -- "$@" "$W/fifo$n"
done
shift $n
dd if="$src" bs=1M iflag=direct status=none | tee "$@" >/dev/null
rc=$?
wait || rc=1
exit $rc'

# Run entry $1 once: sets RUN_WALL, RUN_CPU, RUN_RSS, RUN_BW (fio, KiB/s).
run_entry() {
	local i=$1 n d rc=0
	local kind=${E_KIND[$i]} test=${E_TEST[$i]}
	n=$(ndests "$test")
	local dests=()
	entry_dests "$test"
	dests=("${DESTS[@]}")
	RUN_WALL=0 RUN_CPU=0 RUN_RSS=0 RUN_BW=
	: >"$WORK/out"; : >"$WORK/err"
	case $kind in
	kcopy)
		# shellcheck disable=SC2086
		timed "$KCOPY" ${E_OPTS[$i]} "$SRC" "${dests[@]}" || rc=$?;;
	kcopyaio)
		# shellcheck disable=SC2086
		timed env KCOPYD_IO_ENGINE=libaio "$KCOPY" ${E_OPTS[$i]} \
			"$SRC" "${dests[@]}" || rc=$?;;
	dd)
		timed dd if="$SRC" of="${dests[0]}" bs=1M iflag=direct \
			oflag=direct conv=fsync status=none || rc=$?;;
	dd4)
		for d in "${dests[@]}"; do
			timed dd if="$SRC" of="$d" bs=1M iflag=direct \
				oflag=direct conv=fsync status=none || rc=$?
		done;;
	nbdcopy)
		timed nbdcopy --flush "$SRC" "${dests[0]}" || rc=$?;;
	dcfldd)
		local ofs=()
		for d in "${dests[@]}"; do ofs+=("of=$d"); done
		timed dcfldd if="$SRC" "${ofs[@]}" bs=1M status=off || rc=$?
		# dcfldd has no fsync option: flush inside the timed window.
		untimed_in_wall sync -d "${dests[@]}" || rc=$?;;
	ddtee)
		rm -f "$WORK"/fifo*
		timed env W="$WORK" bash -c "$DDTEE_SCRIPT" ddtee \
			"$SRC" "${dests[@]}" || rc=$?;;
	fiocopy)
		local jobs=() fo="--bs=1M --iodepth=16 --direct=1 --ioengine=libaio"
		# shellcheck disable=SC2206 # fo is split on purpose
		jobs=(--name=read --filename="$SRC" --rw=read $fo)
		for d in "${dests[@]}"; do
			# shellcheck disable=SC2206
			jobs+=(--name=write --filename="$d" --rw=write $fo)
		done
		# The ceiling: the read and the writes running at the same
		# time, measured in their steady state.  Each job loops over
		# its device for FIO_SECONDS after FIO_RAMP seconds that are
		# not counted (fio starts the jobs up to 70 ms apart, and at
		# 1 GiB on tmpfs the read alone is over in 0.2 s: run once
		# through, the jobs did not overlap).  The time is --size at
		# the slowest job's bandwidth; the CPU column is fio's whole
		# run and means nothing here.
		timed fio --minimal --thread --time_based \
			--runtime="$FIO_SECONDS" --ramp_time="$FIO_RAMP" \
			"${jobs[@]}" || rc=$?
		RUN_WALL=$(awk -F';' -v size="$SIZE" 'NF > 100 {
				bw = $7 > 0 ? $7 : $48; n++
				if (bw <= 0) { bad = 1; next }
				t = size / 1024 / bw; if (t > m) m = t }
			END { if (bad || !n) exit 1; printf "%.3f", m }' \
			"$WORK/out") || rc=1;;
	ksparse|kdense)
		local src=$SIMG
		[ "$kind" = kdense ] && src=$DIMG
		# shellcheck disable=SC2086
		timed "$KCOPY" ${E_OPTS[$i]} "$src" "${dests[@]}" || rc=$?;;
	bmap)
		for d in "${dests[@]}"; do
			timed bmaptool copy --bmap "$BMAP" "$SIMG" "$d" || rc=$?
		done;;
	nbdn)
		for d in "${dests[@]}"; do
			timed nbdcopy --flush "$SIMG" "$d" || rc=$?
		done;;
	qemu)
		# -t writeback: flushed at the end (convert's default, unsafe,
		# never flushes); -n: write into the existing device.
		for d in "${dests[@]}"; do
			if [ -b "$d" ]; then
				timed qemu-img convert -t writeback -n -O raw \
					"$SIMG" "$d" || rc=$?
			else
				timed qemu-img convert -t writeback -O raw \
					"$SIMG" "$d" || rc=$?
			fi
		done;;
	ddsparse)
		for d in "${dests[@]}"; do
			timed dd if="$SIMG" of="$d" bs=1M conv=sparse,fsync \
				status=none || rc=$?
		done;;
	readback)
		# The read-back --verify does, of one destination alone.
		timed dd if="${DST[0]}" of=/dev/null bs=1M iflag=direct \
			status=none || rc=$?;;
	fioread|fiowrite)
		local rw=read f=$SRC field=7 extra=
		[ "$kind" = fiowrite ] && { rw=write f=${DST[0]} field=48 extra=--end_fsync=1; }
		timed fio --name="$rw" --filename="$f" --rw=$rw --bs=1M \
			--iodepth=16 --direct=1 --ioengine=libaio --size="$SIZE" \
			$extra --minimal || rc=$?
		RUN_BW=$(awk -F';' -v f=$field 'NF > 100 { print $f; exit }' "$WORK/out");;
	esac
	return $rc
}

# Compare the source with the entry's destinations.  For --sparse, CHECK
# says what differs (old data left in the image's holes, when the first
# differing 4 KiB block equals the old data there) and how much a new file
# allocates.
verify_entry() {
	local i=$1 d src=$SRC out off blk alloc
	CHECK=
	[ "${E_KIND[$i]}" = kdense ] && src=$DIMG
	entry_dests "${E_TEST[$i]}"
	for d in "${DESTS[@]}"; do
		if ! out=$(cmp -n "$SIZE" "$src" "$d" 2>&1); then
			[ "$SPARSE" = 1 ] || return 1
			off=$(sed -nE 's/.* (byte|char) ([0-9]+),.*/\2/p' <<<"$out")
			CHECK="DIFFERS ($d)"
			if [ -n "$off" ]; then
				blk=$(((off - 1) / 4096 * 4096))
				if cmp -s -i "$blk:$blk" -n 4096 "$OLD" "$d"; then
					CHECK="DIFFERS: old data left where the image is empty (first at byte $((off - 1)) of $d)"
				else
					CHECK="DIFFERS at byte $((off - 1)) of $d"
				fi
			fi
			return 1
		fi
	done
	if [ "$SPARSE" = 1 ] && [ "${E_TEST[$i]}" = new4 ]; then
		alloc=$(stat -c '%b %B' "${DESTS[0]}" |
			awk '{ printf "%.0f", $1 * $2 / 1048576 }')
		CHECK="ok, $alloc MiB allocated per file"
	fi
	return 0
}

# ------------------------------------------------------------ one medium

run_medium() {
	local medium=$1 runs=$2 label=$3
	local n i k r idx rc
	build_entries
	n=${#E_TEST[@]}
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	UPTIME_BEFORE=$(uptime)
	declare -gA WALLS=() CPUS=() RSSS=() BWS=() STATUS=() CHECKS=()
	for ((i = 0; i < n; i++)); do STATUS[$i]=ok; done

	local raw=$OUTDIR/$label-runs.csv
	echo "medium,size_bytes,round,test,tool,wall_s,cpu_s,maxrss_kib,fio_kib_s,exit" >"$raw"
	say "$medium: $n entries x $runs rounds, size $SIZE_ARG"
	for ((r = 0; r < runs; r++)); do
		for ((k = 0; k < n; k++)); do
			idx=$(((k + r) % n))	# rotate the order every round
			[ "${STATUS[$idx]}" = ok ] || continue
			n_d=$(ndests "${E_TEST[$idx]}")
			[ "${E_KIND[$idx]}" = fiowrite ] && n_d=1
			[ "$n_d" -gt 0 ] && prepare_dests "$idx"
			drop_caches
			rc=0
			run_entry "$idx" || rc=$?
			printf '%s,%s,%d,%s,%s,%s,%s,%s,%s,%d\n' "$medium" "$SIZE" \
				$((r + 1)) "${E_TEST[$idx]}" "${E_TOOL[$idx]}" \
				"$RUN_WALL" "$RUN_CPU" "$RUN_RSS" "${RUN_BW:-}" \
				"$rc" >>"$raw"
			printf '  round %d/%d  %-5s %-22s %8.3f s  cpu %6s s  rss %6d KiB%s\n' \
				$((r + 1)) "$runs" "${E_TEST[$idx]}" \
				"${E_TOOL[$idx]}" "$RUN_WALL" "$RUN_CPU" \
				"$RUN_RSS" "${RUN_BW:+  ${RUN_BW} KiB/s}" >&2
			if [ "$rc" -ne 0 ]; then
				STATUS[$idx]="FAILED (exit $rc)"
				say "${E_TOOL[$idx]} (${E_TEST[$idx]}) failed: $(head -c 300 "$WORK/err")"
				continue
			fi
			CHECK=
			if [ "$r" -eq 0 ] && [[ ${E_KIND[$idx]} != fio* ]] &&
			   ! verify_entry "$idx"; then
				if [ "$SPARSE" = 1 ]; then
					# A finding, not a failure: keep timing it.
					say "${E_TOOL[$idx]} (${E_TEST[$idx]}): $CHECK"
				else
					STATUS[$idx]="FAILED (cmp)"
					say "${E_TOOL[$idx]} (${E_TEST[$idx]}): destination differs from the source"
					continue
				fi
			fi
			[ "$r" -eq 0 ] && [ -n "${CHECK:-}" ] && CHECKS[$idx]=$CHECK
			WALLS[$idx]+="$RUN_WALL "
			CPUS[$idx]+="$RUN_CPU "
			RSSS[$idx]+="$RUN_RSS "
			BWS[$idx]+="${RUN_BW:+$RUN_BW }"
		done
	done
	report "$medium" "$runs" "$label"
}

# ------------------------------------------------------------ reporting


report() {
	local medium=$1 runs=$2 label=$3
	local md=$OUTDIR/$label.md csv=$OUTDIR/$label.csv dat=$WORK/$label.dat
	local n=${#E_TEST[@]} i test tool cpu ratio kc
	local gib
	gib=$(awk -v s="$SIZE" 'BEGIN { printf "%.6f", s / 1073741824 }')
	declare -gA MED=() MIBS=() CPUG=() RSSM=() RANGE=()

	for ((i = 0; i < n; i++)); do
		[ -n "${WALLS[$i]:-}" ] || continue
		if [ "${E_TEST[$i]}" = fio ]; then
			local bw
			bw=$(median <<<"${BWS[$i]}")
			[ -n "$bw" ] || continue
			MIBS[$i]=$(awk -v b="$bw" 'BEGIN { printf "%.1f", b / 1024 }')
			MED[$i]=$(awk -v b="$bw" -v s="$SIZE" \
				'BEGIN { printf "%.3f", s / 1024 / b }')
		else
			MED[$i]=$(median <<<"${WALLS[$i]}")
			RANGE[$i]=$(tr ' ' '\n' <<<"${WALLS[$i]}" | grep -v '^$' |
				sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
					END { printf "%.2f–%.2f", lo, hi }')
			MIBS[$i]=$(awk -v t="${MED[$i]}" -v m="$SIZE_MB" \
				'BEGIN { printf "%.1f", m / t }')
		fi
		cpu=$(median <<<"${CPUS[$i]}")
		CPUG[$i]=$(awk -v c="$cpu" -v g="$gib" 'BEGIN { printf "%.3f", c / g }')
		if [ -n "$GNU_TIME" ]; then
			RSSM[$i]=$(awk -v r="$(maxof <<<"${RSSS[$i]}")" \
				'BEGIN { printf "%.1f", r / 1024 }')
		fi
	done

	# kcopy's row of each test: "kcopy", or in a sweep the default options.
	declare -gA KROW=()
	for ((i = 0; i < n; i++)); do
		case ${E_TOOL[$i]} in
		kcopy) KROW[${E_TEST[$i]}]=$i;;
		"kcopy p=$DEF_PAGES c=512K") KROW[${E_TEST[$i]}]=$i;;
		esac
	done

	{
		echo "# kcopy benchmark: $medium, $SIZE_ARG, $runs runs"
		echo
		echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), $(nproc) CPUs," \
			"Linux $(uname -r); $("$KCOPY" --version 2>&1 | head -n 1)" \
			"($KCOPY, built $(date -u -r "$KCOPY" '+%Y-%m-%d %H:%M UTC')," \
			"libkcopyd ${KLIB:-linked in})" \
			"${KOPTS:+(options: $KOPTS)}"
		echo
		echo "Load average before/after this medium: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)" \
			"(other work on the machine shows up as noise)."
		echo
		echo "uptime before: \`$UPTIME_BEFORE\`"
		echo
		echo "uptime after: \`$(uptime)\`"
		echo
		if [ "$medium" = sparse ]; then
			sparse_header "$runs"
		else
		echo "Loop devices over $([ "$medium" = tmpfs ] && echo "tmpfs images" ||
			echo "files in /var/tmp (loop direct I/O)"); median wall time of" \
			"$runs interleaved runs, page cache dropped and destinations" \
			"zeroed before each; first run of each tool checked with cmp."
		fi
		echo "MiB/s is source bytes per second (1→4 writes 4× that)." \
			"Ratio = tool time / kcopy time (>1: kcopy faster)." \
			"CPU = user+sys per GiB of source; RSS = largest process's peak."
		echo
		echo "| test | tool | median s | range s | MiB/s | ratio vs kcopy | CPU s/GiB | peak RSS MiB | check |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
	} >"$md"
	echo "medium,size_bytes,runs,test,tool,median_s,mib_s,ratio_vs_kcopy,cpu_s_per_gib,peak_rss_mib,check" >"$csv"
	: >"$dat"
	for ((i = 0; i < n; i++)); do
		test=${E_TEST[$i]} tool=${E_TOOL[$i]}
		ratio=
		kc=${KROW[$test]:-}
		if [ -n "${MED[$i]:-}" ] && [ -n "$kc" ] && [ -n "${MED[$kc]:-}" ]; then
			ratio=$(awk -v a="${MED[$i]}" -v b="${MED[$kc]}" \
				'BEGIN { printf "%.2f", a / b }')
		fi
		local tname=$test
		case $test in 1to*) tname="1→${test#1to}";; new4) tname="1→4 new files";; fio) tname=ceiling;; readback) tname="read-back";; esac
		local chk=${STATUS[$i]}
		[ "$chk" = ok ] && chk=${CHECKS[$i]:-ok}
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$tname" "${tool//|/\\|}" \
			"$(fmt "${MED[$i]:-}" 3)" "${RANGE[$i]:--}" "$(fmt "${MIBS[$i]:-}" 0)" \
			"$(fmt "$ratio" 2)" "$(fmt "${CPUG[$i]:-}" 3)" \
			"$(fmt "${RSSM[$i]:-}" 1)" "$chk" >>"$md"
		printf '%s,%s,%s,%s,"%s",%s,%s,%s,%s,%s,%s\n' "$medium" "$SIZE" \
			"$runs" "$test" "$tool" "${MED[$i]:-}" "${MIBS[$i]:-}" \
			"$ratio" "${CPUG[$i]:-}" "${RSSM[$i]:-}" "\"$chk\"" >>"$csv"
		[ -n "${MIBS[$i]:-}" ] &&
			printf '"%s %s"\t%s\t%d\n' "$tname" "$tool" "${MIBS[$i]}" \
				"$(case $test:${E_KIND[$i]} in *:fio*) echo 3;; 1to1:*) echo 1;; *) echo 2;; esac)" >>"$dat"
	done
	if [ "$SCALING" = 1 ]; then
		scaling_targets >>"$md"
	elif [ "$SPARSE" = 1 ]; then
		sparse_targets >>"$md"
	elif [ "$SWEEP" != 1 ]; then
		targets "$medium" >>"$md"
	fi
	echo >&2
	cat "$md"
	echo
	chart "$medium" "$runs" "$label" "$dat"
}

# Find an entry's index by test and tool.
row() {
	local i
	for ((i = 0; i < ${#E_TEST[@]}; i++)); do
		[ "${E_TEST[$i]}" = "$1" ] && [ "${E_TOOL[$i]}" = "$2" ] &&
			[ -n "${MED[$i]:-}" ] && { echo $i; return 0; }
	done
	return 1
}



targets() {
	local k1 k4 d1 n1 d4 f4 budget_mib lim
	k1=$(row 1to1 kcopy) k4=$(row 1to4 kcopy)
	d1=$(row 1to1 dd) n1=$(row 1to1 nbdcopy) d4=$(row 1to4 "dd x4")
	f4=$(row 1to4 dcfldd)
	budget_mib=$(awk -v p="$PAGES" 'BEGIN { printf "%.1f", p * 4096 / 1048576 }')
	lim=$(awk -v b="$budget_mib" 'BEGIN { print b + 6 }')
	echo
	echo "Targets (SPEC.md \"Performance\" and the issue; kcopy budget $PAGES pages = $budget_mib MiB):"
	echo
	check "1→1 wall ≤ nbdcopy's" "$(at MED "$k1")" 1 "$(at MED "$n1")" s
	check "1→1 wall ≤ 0.8 × dd's" "$(at MED "$k1")" 0.8 "$(at MED "$d1")" s
	check "1→4 wall ≤ 0.4 × dd x4" "$(at MED "$k4")" 0.4 "$(at MED "$d4")" s
	check "1→4 wall ≤ 0.2 × dcfldd's" "$(at MED "$k4")" 0.2 "$(at MED "$f4")" s
	check "1→1 CPU s/GiB ≤ dd's" "$(at CPUG "$k1")" 1 "$(at CPUG "$d1")" s/GiB
	check "1→4 CPU s/GiB ≤ dd x4's" "$(at CPUG "$k4")" 1 "$(at CPUG "$d4")" s/GiB
	# Issue 14's, against the ceiling of the read and the writes at once.
	check "1→1 wall ≤ 1.1 × fio's ceiling" "$(at MED "$k1")" 1.1 \
		"$(at MED "$(row 1to1 "fio 1 read + 1 write job (ceiling)")")" s
	check "1→4 wall ≤ fio's ceiling" "$(at MED "$k4")" 1 \
		"$(at MED "$(row 1to4 "fio 1 read + 4 write jobs (ceiling)")")" s
	check "1→4 CPU s/GiB ≤ 0.5 × dd x4's" "$(at CPUG "$k4")" 0.5 \
		"$(at CPUG "$d4")" s/GiB
	check "1→1 peak RSS ≤ budget + 6 MiB" "$(at RSSM "$k1")" 1 "$lim" MiB
	check "1→4 peak RSS ≤ budget + 6 MiB" "$(at RSSM "$k4")" 1 "$lim" MiB
}

chart() {
	local medium=$1 runs=$2 label=$3 dat=$4 png rows
	png=$OUTDIR/$label.png
	have gnuplot || { say "gnuplot is missing: no chart"; return; }
	rows=$(wc -l <"$dat")
	[ "$rows" -gt 0 ] || return
	gnuplot <<EOF 2>"$WORK/gnuplot.err" || say "gnuplot failed: $(head -c 300 "$WORK/gnuplot.err")"
set terminal pngcairo size $((300 + rows * 70)),720 font ",10"
set output "$png"
set title "kcopy benchmark: $medium, $SIZE_ARG, median of $runs runs (MiB/s of source; higher is better)"
set style fill solid 0.8 border -1
set boxwidth 0.7
set yrange [0:*]
set ylabel "MiB/s"
set xtics rotate by -45 left nomirror
set grid ytics
set bmargin 16
set rmargin 12
unset key
set datafile separator "\t"
plot "$dat" using 0:2:3:xtic(1) with boxes lc variable, \
     "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8 font ",9"
EOF
	[ -s "$png" ] && say "chart: $png"
}

# ------------------------------------------------------------ main

mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
DEF_PAGES=$(budget_pages "")
PAGES=$(budget_pages "$KOPTS")
say "kcopy: $KCOPY ($("$KCOPY" --version 2>&1 | head -n 1)), budget $PAGES pages," \
	"libkcopyd ${KLIB:-linked in}"

if [ "$SCALING" = 1 ]; then
	run_scaling
	say "results in $OUTDIR"
	exit 0
fi

case $MEDIUM in both) media="tmpfs disk";; *) media=$MEDIUM;; esac
for m in $media; do
	r=$RUNS
	[ "$m" = disk ] && r=$DISK_RUNS
	if [ "$SPARSE" = 1 ]; then
		setup_sparse "$m"
		run_medium sparse "$r" "sparse-$m-$SIZE_ARG"
	else
		setup_medium "$m"
		if [ "$SWEEP" = 1 ]; then
			lab=sweep-$m-$SIZE_ARG
		else
			lab=$m-$SIZE_ARG
		fi
		run_medium "$m" "$r" "$lab"
	fi
	free_medium	# before the next one
done
say "results in $OUTDIR"

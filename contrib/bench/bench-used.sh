#!/bin/bash
# bench-used.sh - kcopy --used (only the blocks the source's file system
# uses, the destinations' other blocks left as they are) beside the tools
# that copy a file system's used blocks, in one run:
#   1. ext4: kcopy --used to 4 loop devices against e2image -ra and
#      partclone.ext4 -b run once per destination, and kcopy's full copy;
#   2. XFS: kcopy --used against xfs_copy (which fans out itself) and
#      partclone.xfs -b run once per destination;
#   3. NTFS: kcopy --used against ntfsclone --overwrite and partclone.ntfs
#      -b run once per destination;
#   4. scale: kcopy --used of a 1 TiB sparse ext4 holding 2 GiB of files to
#      two sparse 1 TiB files, against kcopy of a plain 2 GiB file to two
#      files: wall time and peak RSS.
# Every source is an image whose free space is full of old random data (as
# a used disk's is), about 15% used by random files, a few big and many
# small; the destinations hold other old data.
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage (as root):  bash contrib/bench/bench-used.sh KCOPY [OPTION]...
#                   make bench-used [BENCH_ARGS='--size 512M --runs 1']
# KCOPY must be the installed binary (make bench-used does that), not
# libtool's wrapper script.  A tool that is missing or fails is recorded as
# "failed" in its row; the run goes on.  Every loop device, mount, tmpfs
# and file it made is removed on exit, also when interrupted.

# "make bench-used" runs this with $(SHELL), usually a POSIX sh: go to bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

set -euo pipefail
export LC_ALL=C

ME=bench-used
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

usage() {
	cat <<EOF
Usage: $ME KCOPY [OPTION]...
Benchmark KCOPY --used against e2image -ra, partclone, xfs_copy and
ntfsclone on loop devices, and kcopy --used of a 1 TiB sparse ext4.
Must run as root.

  --size SIZE            size of the ext4, XFS and NTFS images (default 2G)
  --runs N               repetitions of every tool (default 3)
  --medium tmpfs|disk    where the images live: a private tmpfs (default)
                         or a directory under /var/tmp (loop direct I/O)
  --only ext4|xfs|ntfs|scale
                         run one part only
  --scale-data SIZE      data written into the 1 TiB ext4 and the size of
                         the plain file of the baseline (default 2G)
  --outdir DIR           results directory (default $HERE/results)
  -h, --help             this text

Quick run:  $ME /path/to/kcopy --size 512M --runs 1 --only ext4
EOF
}

[ $# -ge 1 ] || { usage >&2; exit 1; }
case $1 in -h|--help) usage; exit 0;; esac
KCOPY=$1; shift
case $KCOPY in /*) ;; *) KCOPY=$(pwd)/$KCOPY;; esac

SIZE_ARG=2G RUNS=3 MEDIUM=tmpfs ONLY='' SCALE_DATA_ARG=2G
SCALE_SIZE_ARG=1T NDST=4 OUTDIR=$HERE/results
while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	--*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue;;
	esac
	case $opt in
	--size|--runs|--medium|--only|--scale-data|--outdir)
		[ $# -ge 2 ] || die "$opt needs an argument";;
	esac
	case $opt in
	--size) SIZE_ARG=$2; shift;;
	--runs) RUNS=$2; shift;;
	--medium) MEDIUM=$2; shift;;
	--only) ONLY=$2; shift;;
	--scale-data) SCALE_DATA_ARG=$2; shift;;
	--outdir) OUTDIR=$2; shift;;
	-h|--help) usage; exit 0;;
	*) usage >&2; die "unknown option '$opt'";;
	esac
	shift
done
case $MEDIUM in tmpfs|disk) ;; *) die "--medium: tmpfs or disk";; esac
case $ONLY in ''|ext4|xfs|ntfs|scale) ;; *) die "--only: ext4, xfs, ntfs or scale";; esac
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: a positive number"
SIZE=$(numfmt --from=iec "${SIZE_ARG%iB}" 2>/dev/null) ||
	die "--size '$SIZE_ARG': not a size"
SCALE_DATA=$(numfmt --from=iec "${SCALE_DATA_ARG%iB}" 2>/dev/null) ||
	die "--scale-data '$SCALE_DATA_ARG': not a size"
SCALE_SIZE=$(numfmt --from=iec "$SCALE_SIZE_ARG")
[ "$SIZE" -ge $((512 << 20)) ] && [ $((SIZE % 1048576)) -eq 0 ] ||
	die "--size: a multiple of 1 MiB, at least 512M (XFS's minimum is 300 MiB)"
[ "$SCALE_DATA" -ge $((64 << 20)) ] && [ $((SCALE_DATA % 1048576)) -eq 0 ] ||
	die "--scale-data: a multiple of 1 MiB, at least 64M"

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, mounts, drop_caches)"
require_kcopy_binary "$KCOPY"
KLIB=$(ldd "$KCOPY" 2>/dev/null | awk '/libkcopyd/ { print $3 }') || true
if ldd "$KCOPY" 2>/dev/null | grep -q 'not found'; then
	die "'$KCOPY': a library is not found (set LD_LIBRARY_PATH to its lib directory)"
fi
for t in losetup blockdev mount umount numfmt awk openssl python3 \
	 mkfs.ext4 e2fsck sha1sum cmp; do
	have "$t" || die "required tool '$t' is missing"
done
GNU_TIME=
if [ -x /usr/bin/time ] && /usr/bin/time --version 2>&1 | grep -q GNU; then
	GNU_TIME=/usr/bin/time
else
	say "GNU time (/usr/bin/time, package 'time') is missing: no peak RSS column"
fi
# The peers: a missing one is said here, and its rows read "failed".
for t in e2image partclone.ext4 partclone.xfs partclone.ntfs xfs_copy \
	 xfs_repair mkfs.xfs ntfsclone ntfsfix mkntfs ntfs-3g; do
	have "$t" || say "'$t' is missing: its rows fail" \
		"(Debian: e2fsprogs, partclone, xfsprogs, ntfs-3g)"
done
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

# ------------------------------------------------------------ teardown

WORK=$(mktemp -d /tmp/kcopy-bench-used.XXXXXX) || die "mktemp failed"
LOOPS=() MOUNTS=() DIRS=("$WORK") SRC_IMG='' DST_IMG=()
cleanup() {
	local rc=$? d i
	trap - EXIT INT TERM HUP
	set +e
	wait 2>/dev/null	# children of an interrupted run
	# File systems first (a populate or a check may be interrupted while
	# one is mounted), then the loop devices, then the medium.
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		d=${MOUNTS[$i]}
		mountpoint -q "$d" || continue
		umount "$d" 2>/dev/null || { sleep 1; umount "$d" 2>/dev/null; } ||
			umount -l "$d" || say "could not unmount $d"
	done
	for d in "${LOOPS[@]}"; do
		# Only a device still over one of our images: the number of
		# one that went may now be another program's.
		case $(cat "/sys/block/${d#/dev/}/loop/backing_file" 2>/dev/null) in
		"${MEDIUM_DIR:-/nonexistent}"/*) ;;
		*) continue;;
		esac
		losetup -d "$d" 2>/dev/null || say "could not detach $d"
	done
	# The tmpfs (inside WORK) before any directory is removed.
	[ -z "${MEDIUM_MNT:-}" ] || ! mountpoint -q "$MEDIUM_MNT" ||
		umount "$MEDIUM_MNT" || umount -l "$MEDIUM_MNT" ||
		say "could not unmount $MEDIUM_MNT"
	for d in "${DIRS[@]}"; do rm -rf -- "$d"; done
	exit $rc
}
trap_cleanup

# ------------------------------------------------------------ helpers

# attach IMG [ro]: a loop device over IMG (direct I/O on the disk medium,
# so that the page cache of the backing file does not serve the reads),
# recorded in LOOPS for the teardown; its name in ATTACHED.  Not to be
# called in a subshell: LOOPS must reach the EXIT trap.
attach() {
	local img=$1 ro=() dev=
	[ "${2:-}" = ro ] && ro=(-r)
	if [ "$MEDIUM" = disk ]; then
		dev=$(losetup -f --show "${ro[@]}" --direct-io=on "$img" 2>/dev/null) ||
			dev=$(losetup -f --show "${ro[@]}" "$img")
	else
		dev=$(losetup -f --show "${ro[@]}" "$img")
	fi
	[ -n "$dev" ] || die "losetup failed for $img"
	# Another program on the machine may detach a device by number (a
	# test's teardown detaching one twice): the same device again means
	# that one of ours has gone; ensure_loops attaches it again.
	forget "$dev"
	LOOPS+=("$dev")
	ATTACHED=$dev
}
forget() {
	local x keep=()
	for x in "${LOOPS[@]}"; do [ "$x" = "$1" ] || keep+=("$x"); done
	LOOPS=("${keep[@]}")
}

# ensure_loop VAR IMG [ro]: the loop device named by VAR still over IMG,
# else a new one (VAR set to it).  ensure_loops: SRC (when it is a loop
# device) and every DST, over SRC_IMG and DST_IMG; LOST=1 when one had gone.
backing_of() { cat "/sys/block/${1#/dev/}/loop/backing_file" 2>/dev/null || true; }
ensure_loop() {
	local -n _dev=$1
	[ "$(backing_of "$_dev")" = "$2" ] && return 0
	say "$_dev is no longer over $2 (another program detached it):" \
		"attaching it again"
	LOST=1
	forget "$_dev"
	attach "$2" "${3:-}"
	_dev=$ATTACHED
}
ensure_loops() {
	local i
	LOST=0
	[ -z "${SRC_IMG:-}" ] || ensure_loop SRC "$SRC_IMG" ro
	for ((i = 0; i < ${#DST_IMG[@]}; i++)); do
		ensure_loop "DST[$i]" "${DST_IMG[$i]}"
	done
}

# detach DEV...: detach loop devices made by attach and forget them (the
# number may be given to another loop device, which the EXIT trap must not
# detach).
detach() {
	local d i
	for d; do
		udevadm settle 2>/dev/null || true
		losetup -d "$d" 2>/dev/null ||
			{ sleep 1; losetup -d "$d"; } || { say "could not detach $d"; continue; }
		# A device still open (a FUSE daemon exiting, udev) is only
		# marked for detaching on its last close: wait for that.
		for ((i = 0; i < 100; i++)); do
			[ -e "/sys/block/${d#/dev/}/loop/backing_file" ] || break
			sleep 0.05
		done
		forget "$d"
	done
}

# old_data SIZE SEED FILE|DEV: SIZE bytes of pseudo-random "old data",
# AES-CTR of zeros under a key made of SEED (about 1-2 GB/s, and the same
# bytes every time for a given SEED), written over FILE or DEV.
old_data() {
	local n=$1 seed=$2 out=$3 key
	key=$(printf '%032x' "$seed")
	# head ends openssl with SIGPIPE: that status is not a failure.
	( set +o pipefail
	  openssl enc -aes-128-ctr -nosalt -K "$key" -iv 0 -in /dev/zero \
		2>/dev/null | head -c "$n" |
		dd of="$out" bs=1M iflag=fullblock conv=notrunc,fsync \
			status=none ) || { say "cannot write old data over $out"; return 1; }
}

# drop_caches: nothing of a source or a destination stays cached, so that
# every run reads the source from the medium (the loop devices' buffer
# cache and, on disk, the backing files' page cache).
drop_caches() {
	sync
	[ ${#LOOPS[@]} -eq 0 ] || blockdev --flushbufs "${LOOPS[@]}" 2>/dev/null || true
	echo 3 > /proc/sys/vm/drop_caches
}

# populate DIR BYTES SEED: random files of BYTES in all under DIR: 60% in
# four big files, the rest in small ones of 1 to 64 KiB, 200 per directory;
# and DIR's manifest (sha1sum of every file) in $WORK/manifest.
populate() {
	python3 - "$1" "$2" "$3" <<'EOF'
import os, random, sys
top, total, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
def write(path, n):
    with open(path, "wb") as f:
        while n > 0:
            k = min(n, 1 << 20)
            f.write(os.urandom(k))
            n -= k
big = total * 6 // 10 // 4
for i in range(4):
    write(os.path.join(top, "big%d.bin" % i), big)
left, i = total - 4 * big, 0
while left > 0:
    if i % 200 == 0:
        d = os.path.join(top, "d%04d" % (i // 200))
        os.mkdir(d)
    n = min(left, rnd.randint(1, 64) * 1024 - rnd.randint(0, 1023))
    write(os.path.join(d, "f%05d" % i), n)
    left -= n
    i += 1
EOF
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha1sum) \
		>"$WORK/manifest" || die "cannot list the files of $1"
}

# df_used DIR: bytes used on the file system mounted at DIR.
df_used() { sync -f "$1"; df -B1 --output=used "$1" | tail -n 1 | tr -d ' '; }

# mount_fs FS DEV DIR [ro]: mount FS (ext4, xfs, ntfs) from DEV on DIR;
# read-only mounts replay no log (the destinations are checked as copied).
mount_fs() {
	local fs=$1 dev=$2 dir=$3 mode=${4:-}
	case $fs:$mode in
	ext4:) mount -t ext4 "$dev" "$dir";;
	ext4:ro) mount -t ext4 -o ro,noload "$dev" "$dir";;
	xfs:) mount -t xfs "$dev" "$dir";;
	xfs:ro) mount -t xfs -o ro,norecovery,nouuid "$dev" "$dir";;
	ntfs:) ntfs-3g "$dev" "$dir";;
	ntfs:ro) ntfs-3g -o ro "$dev" "$dir";;
	esac || return 1
	MOUNTS+=("$dir")
}

# umount_fs DIR: unmount DIR and wait for a FUSE daemon (ntfs-3g) to let
# go of the device, so that the next tool finds the file system closed.
umount_fs() {
	local dev i
	dev=$(findmnt -n -o SOURCE "$1" 2>/dev/null) || dev=
	umount "$1" || return 1
	for ((i = 0; i < 100; i++)); do
		[ -n "$dev" ] && pgrep -f "ntfs-3g.* $dev " >/dev/null 2>&1 || break
		sleep 0.1
	done
}

# ------------------------------------------------------------ timing

minof() { tr ' ' '\n' | grep -v '^$' | sort -g | head -n 1; }

# timed CMD...: run CMD, adding its wall time to RUN_WALL; its peak RSS
# (GNU time's %M: the largest single process) goes into RUN_RSS (KiB) when
# larger.  Output is appended to $WORK/out and $WORK/err.
RUN_WALL=0 RUN_RSS=0
timed() {
	local t0 t1 rc=0 rss
	t0=$EPOCHREALTIME
	if [ -n "$GNU_TIME" ]; then
		"$GNU_TIME" -f '%M' -o "$WORK/time" "$@" \
			>>"$WORK/out" 2>>"$WORK/err" || rc=$?
	else
		"$@" >>"$WORK/out" 2>>"$WORK/err" || rc=$?
	fi
	t1=$EPOCHREALTIME
	RUN_WALL=$(awk -v w="$RUN_WALL" -v a="$t0" -v b="$t1" \
		'BEGIN { printf "%.6f", w + b - a }')
	if [ -n "$GNU_TIME" ]; then
		# The last line: "Command exited with non-zero status" may precede.
		rss=$(tail -n 1 "$WORK/time")
		[[ $rss =~ ^[0-9]+$ ]] && [ "$rss" -gt "$RUN_RSS" ] && RUN_RSS=$rss
	fi
	return $rc
}

# ------------------------------------------------------------ the medium

# setup_medium: MEDIUM_DIR, where the images live: a private tmpfs large
# enough for the biggest part, or a new directory under /var/tmp.
setup_medium() {
	local need avail s
	# A file system part: source + 4 destinations.  Scale: the source's
	# data and metadata (about 1.1 x the data), the plain file, the two
	# copies of one of them (removed before the next run), and room for
	# the journal's blocks if a copy writes them (2 x 1 GiB).
	need=0
	if want ext4 || want xfs || want ntfs; then need=$(((1 + NDST) * SIZE)); fi
	if want scale; then
		s=$((SCALE_DATA * 45 / 10 + (2 << 30)))
		[ "$s" -gt "$need" ] && need=$s
	fi
	need=$((need + (256 << 20)))
	if [ "$MEDIUM" = tmpfs ]; then
		MEDIUM_MNT=$WORK/tmpfs
		mkdir -p "$MEDIUM_MNT"
		mount -t tmpfs -o size=$((need >> 20))m kcopy-bench-used "$MEDIUM_MNT" ||
			die "cannot mount a tmpfs of $((need >> 20)) MiB"
		MEDIUM_DIR=$MEDIUM_MNT
	else
		MEDIUM_DIR=$(mktemp -d /var/tmp/kcopy-bench-used.XXXXXX) ||
			die "mktemp failed"
		DIRS+=("$MEDIUM_DIR")
		avail=$(df -B1 --output=avail "$MEDIUM_DIR" | tail -n 1)
		[ "$avail" -gt "$need" ] ||
			die "/var/tmp: $((need >> 20)) MiB needed, $((avail >> 20)) free"
	fi
	say "$MEDIUM: images in $MEDIUM_DIR (up to $((need >> 20)) MiB)"
}

# ------------------------------------------------------------ file systems

# The percentage of the image the files should fill, by file system.
pct_of() { case $1 in xfs) echo 17;; *) echo 15;; esac; }

# make_source FS: $MEDIUM_DIR/src.img, SIZE bytes of old data, FS made on
# it without discarding anything (the old data stays in its free space),
# mounted, filled with random files up to pct_of FS percent used, and
# unmounted; then attached read-only as SRC.  USED: bytes in use, from df.
make_source() {
	local fs=$1 img=$MEDIUM_DIR/src.img mnt=$WORK/mnt dev target used0
	say "$fs: writing $SIZE_ARG of old data and making the file system"
	old_data "$SIZE" 1 "$img" || die "cannot make $img"
	case $fs in
	ext4) mkfs.ext4 -q -F -E nodiscard "$img";;
	xfs) mkfs.xfs -q -f -K -d agcount=4 "$img";;
	ntfs) mkntfs -q -f -F "$img";;
	esac >"$WORK/mkfs.log" 2>&1 ||
		die "mkfs $fs failed: $(head -c 300 "$WORK/mkfs.log")"
	attach "$img"
	dev=$ATTACHED
	mkdir -p "$mnt"
	mount_fs "$fs" "$dev" "$mnt" || die "cannot mount the new $fs"
	used0=$(df_used "$mnt")
	target=$((SIZE * $(pct_of "$fs") / 100 - used0))
	[ "$target" -gt $((16 << 20)) ] || target=$((16 << 20))
	say "$fs: writing $((target >> 20)) MiB of files"
	populate "$mnt" "$target" 7
	USED=$(df_used "$mnt")
	umount_fs "$mnt" || die "cannot unmount the source $fs"
	detach "$dev"
	attach "$img" ro
	SRC=$ATTACHED SRC_IMG=$img
	FILES=$(wc -l <"$WORK/manifest")
	say "$fs: source $SRC, $((USED >> 20)) MiB used" \
		"($(awk -v u="$USED" -v s="$SIZE" 'BEGIN { printf "%.1f", 100 * u / s }')%)," \
		"$FILES files"
}

# make_dests: NDST destination images of SIZE bytes holding other old data,
# attached as DST.
make_dests() {
	local i
	DST=() DST_IMG=()
	for ((i = 1; i <= NDST; i++)); do
		old_data "$SIZE" $((1 + i)) "$MEDIUM_DIR/dst$i.img" ||
			die "cannot make dst$i.img"
		attach "$MEDIUM_DIR/dst$i.img"
		DST+=("$ATTACHED") DST_IMG+=("$MEDIUM_DIR/dst$i.img")
	done
}

# restore_dests: the destinations' old data again, before the checked run
# of each tool, so that no tool is checked on what another one wrote.
restore_dests() {
	local i
	for ((i = 1; i <= NDST; i++)); do
		old_data "$SIZE" $((1 + i)) "${DST[$((i - 1))]}" || return 1
	done
}

# check_fs FS DEV...: the file system checker, read-only, on every
# destination, and the files on the first one against the source's
# manifest (sha1sum -c on a read-only mount).  CHECK: what failed.
check_fs() {
	local fs=$1 d mnt=$WORK/chk
	shift
	CHECK=
	for d; do
		case $fs in
		ext4) e2fsck -fn "$d";;
		xfs) xfs_repair -n "$d";;
		ntfs) ntfsfix -n "$d";;
		esac >"$WORK/fsck.log" 2>&1 || {
			cat "$WORK/fsck.log" >>"$WORK/check.log"
			CHECK="$(fsck_name "$fs") $d: $(grep -m 1 -iE 'bad|error|corrupt' \
				"$WORK/fsck.log" | cut -c 1-80)"
			return 1
		}
	done
	mkdir -p "$mnt"
	mount_fs "$fs" "$1" "$mnt" ro >>"$WORK/check.log" 2>&1 ||
		{ CHECK="cannot mount $1"; return 1; }
	if ! (cd "$mnt" && sha1sum -c --quiet "$WORK/manifest") \
		>>"$WORK/check.log" 2>&1; then
		CHECK="files on $1 differ"
	fi
	umount_fs "$mnt" || say "cannot unmount $mnt"
	[ -z "$CHECK" ]
}
fsck_name() { case $1 in ext4) echo "e2fsck -fn";; xfs) echo "xfs_repair -n";; ntfs) echo "ntfsfix -n";; esac; }

# ------------------------------------------------------------ entries
#
# An entry: a row label and a kind (what run_entry runs).  The peers that
# copy to one device per run are run once per destination, one after the
# other ("x4"), the time being the sum, as their users would.
E_TOOL=() E_KIND=()
add() { E_TOOL+=("$1"); E_KIND+=("$2"); }

entries_fs() {
	E_TOOL=() E_KIND=()
	add "kcopy --used" kused
	case $1 in
	ext4)
		add "e2image -ra x$NDST" e2image
		add "partclone.ext4 -b x$NDST" partclone
		add "kcopy (full copy)" kfull;;
	xfs)
		add "xfs_copy" xfscopy
		add "partclone.xfs -b x$NDST" partclone;;
	ntfs)
		add "ntfsclone --overwrite x$NDST" ntfsclone
		add "partclone.ntfs -b x$NDST" partclone;;
	esac
}

# run_entry I FS: one run of entry I from SRC to DST; sets RUN_WALL and
# RUN_RSS; returns the first failing status.
run_entry() {
	local i=$1 fs=$2 d rc=0
	RUN_WALL=0 RUN_RSS=0
	: >"$WORK/out"; : >"$WORK/err"
	case ${E_KIND[$i]} in
	kused) timed "$KCOPY" --used "$SRC" "${DST[@]}" || rc=$?;;
	kfull) timed "$KCOPY" "$SRC" "${DST[@]}" || rc=$?;;
	kscale) timed "$KCOPY" --used "$MEDIUM_DIR/big.img" "${DST[@]}" || rc=$?;;
	kbase) timed "$KCOPY" "$MEDIUM_DIR/plain.img" "${DST[@]}" || rc=$?;;
	e2image)
		for d in "${DST[@]}"; do
			timed e2image -ra "$SRC" "$d" || { rc=$?; break; }
		done;;
	partclone)
		# -b: device to device; -q: no progress bar; -L: not the
		# default log in /var/log.
		for d in "${DST[@]}"; do
			timed "partclone.$fs" -q -b -L "$WORK/partclone.log" \
				-s "$SRC" -o "$d" || { rc=$?; break; }
		done;;
	xfscopy)
		# -L: its log, which it refuses to overwrite, not in /tmp.
		rm -f "$WORK/xfs_copy.log"
		timed xfs_copy -L "$WORK/xfs_copy.log" "$SRC" "${DST[@]}" || rc=$?;;
	ntfsclone)
		for d in "${DST[@]}"; do
			timed ntfsclone -q --overwrite "$d" "$SRC" || { rc=$?; break; }
		done;;
	esac
	return $rc
}

# ------------------------------------------------------------ results

# Every row of the report: part, tool, median, min, max, ratio, RSS, check.
R_PART=() R_TOOL=() R_MED=() R_MIN=() R_MAX=() R_RATIO=() R_RSS=() R_CHECK=()
RUNS_CSV=
record_run() {	# part round tool wall rss exit
	printf '%s,%s,%s,"%s",%s,%s,%s\n' "$MEDIUM" "$1" "$2" "$3" "$4" "$5" \
		"$6" >>"$RUNS_CSV"
}

# rows PART REF: the rows of the entries just run, the ratio taken
# against the median of entry REF.
rows() {
	local part=$1 ref=$2 i refmed=
	[ -n "${WALLS[$ref]:-}" ] && refmed=$(median <<<"${WALLS[$ref]}")
	for ((i = 0; i < ${#E_TOOL[@]}; i++)); do
		R_PART+=("$part") R_TOOL+=("${E_TOOL[$i]}")
		if [ -n "${WALLS[$i]:-}" ] && [ "${STATUS[$i]}" = ok ]; then
			R_MED+=("$(median <<<"${WALLS[$i]}")")
			R_MIN+=("$(minof <<<"${WALLS[$i]}")")
			R_MAX+=("$(maxof <<<"${WALLS[$i]}")")
			R_RSS+=("$(awk -v r="$(maxof <<<"${RSSS[$i]}")" \
				'BEGIN { if (r > 0) printf "%.1f", r / 1024 }')")
			if [ -n "$refmed" ]; then
				R_RATIO+=("$(awk -v a="${R_MED[-1]}" -v b="$refmed" \
					'BEGIN { printf "%.2f", a / b }')")
			else
				R_RATIO+=("")
			fi
			R_CHECK+=("${CHECKS[$i]:-ok}")
		else
			R_MED+=("") R_MIN+=("") R_MAX+=("") R_RATIO+=("") R_RSS+=("")
			R_CHECK+=("${STATUS[$i]}")
		fi
	done
}

# rounds PART FS: RUNS rounds of the entries, each round running every
# entry once, the order rotated by one each round.  Before every run the
# page cache is dropped; before the first run of each entry the
# destinations get their old data back, and after it the copy is checked
# (not timed).  A run that fails marks the entry failed: it is not run
# again.
rounds() {
	local part=$1 fs=$2 n=${#E_TOOL[@]} r k idx rc
	declare -gA WALLS=() RSSS=() STATUS=() CHECKS=()
	for ((k = 0; k < n; k++)); do STATUS[$k]=ok; done
	for ((r = 0; r < RUNS; r++)); do
		for ((k = 0; k < n; k++)); do
			idx=$(((k + r) % n))
			[ "${STATUS[$idx]}" = ok ] || continue
			for _ in 1 2 3; do
				ensure_loops
				rc=0
				if [ "$r" -eq 0 ]; then
					prepare_first "$fs" || rc=$?
				fi
				if [ "$rc" -eq 0 ]; then
					prepare_run "$fs"
					drop_caches
					run_entry "$idx" "$fs" || rc=$?
				fi
				# A device taken from under the tool by
				# another program: that run again (twice
				# at most).
				[ "$rc" -ne 0 ] || break
				ensure_loops
				[ "$LOST" = 1 ] || break
			done
			record_run "$part" $((r + 1)) "${E_TOOL[$idx]}" \
				"$RUN_WALL" "$RUN_RSS" "$rc"
			printf '  round %d/%d  %-5s %-30s %8.3f s  rss %7d KiB  exit %d\n' \
				$((r + 1)) "$RUNS" "$part" "${E_TOOL[$idx]}" \
				"$RUN_WALL" "$RUN_RSS" "$rc" >&2
			if [ "$rc" -ne 0 ]; then
				STATUS[$idx]="failed (exit $rc)"
				say "${E_TOOL[$idx]} ($part) failed:" \
					"$(tail -c 300 "$WORK/err" | tr '\n' ' ')"
				continue
			fi
			if [ "$r" -eq 0 ]; then
				: >"$WORK/check.log"
				# A copy that fails its check is a finding, not
				# a failure of the run: the tool stays timed, and
				# the check column says what is wrong.
				if ! check_copy "$fs" "$idx"; then
					ensure_loops
					if [ "$LOST" = 1 ]; then
						CHECK="not checked (another program detached a device)"
					else
						CHECK="check FAILED: $CHECK"
					fi
					say "${E_TOOL[$idx]} ($part): $CHECK:" \
						"$(tail -c 300 "$WORK/check.log" | tr '\n' ' ')"
				fi
				CHECKS[$idx]=${CHECK:-ok}
			fi
			WALLS[$idx]+="$RUN_WALL "
			RSSS[$idx]+="$RUN_RSS "
		done
	done
}

# ------------------------------------------------------------ parts 1-3

# The hooks of rounds() for the file system parts.
fs_prepare_first() { restore_dests; }
fs_prepare_run() { :; }
fs_check_copy() { check_fs "$1" "${DST[@]}"; }

# part_fs FS: the source, the destinations, the rounds, the rows; then
# the images are removed, to make room for the next part.
part_fs() {
	local fs=$1 t0
	prepare_first() { fs_prepare_first "$@"; }
	prepare_run() { fs_prepare_run "$@"; }
	check_copy() { fs_check_copy "$@"; }
	t0=$EPOCHREALTIME
	make_source "$fs"
	make_dests
	FS_FACTS[$fs]="$((USED >> 20)) MiB used ($(awk -v u="$USED" -v s="$SIZE" \
		'BEGIN { printf "%.1f", 100 * u / s }')%), $FILES files"
	say "$fs: set up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" \
		'BEGIN { printf "%.0f", b - a }') s; destinations ${DST[*]}"
	entries_fs "$fs"
	rounds "$fs" "$fs"
	rows "$fs" 0
	ensure_loops
	detach "$SRC" "${DST[@]}"
	SRC_IMG='' DST_IMG=()
	rm -f -- "$MEDIUM_DIR"/src.img "$MEDIUM_DIR"/dst*.img
}

# ------------------------------------------------------------ part 4

# make_scale: big.img, a sparse SCALE_SIZE (1 TiB) file holding an ext4
# (mkfs without zeroing the inode tables, the journal or discarding: the
# file stays sparse) with SCALE_DATA of files written through a loop
# mount (noinit_itable: no background zeroing of the inode tables);
# plain.img, SCALE_DATA of random data, the baseline's source.
make_scale() {
	local big=$MEDIUM_DIR/big.img mnt=$WORK/mnt dev
	say "scale: a $SCALE_SIZE_ARG sparse ext4 with $SCALE_DATA_ARG of files"
	truncate -s "$SCALE_SIZE" "$big"
	mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1,nodiscard \
		"$big" >"$WORK/mkfs.log" 2>&1 ||
		die "mkfs.ext4 of $SCALE_SIZE_ARG failed: $(head -c 300 "$WORK/mkfs.log")"
	attach "$big"
	dev=$ATTACHED
	mkdir -p "$mnt"
	mount -t ext4 -o noinit_itable "$dev" "$mnt" || die "cannot mount $big"
	MOUNTS+=("$mnt")
	populate "$mnt" "$SCALE_DATA" 11
	SCALE_USED=$(df_used "$mnt")
	FILES=$(wc -l <"$WORK/manifest")
	umount_fs "$mnt" || die "cannot unmount $big"
	detach "$dev"
	SCALE_ALLOC=$(stat -c '%b %B' "$big" | awk '{ printf "%.0f\n", $1 * $2 }')
	old_data "$SCALE_DATA" 9 "$MEDIUM_DIR/plain.img" || die "cannot make plain.img"
	say "scale: $((SCALE_USED >> 20)) MiB used, $FILES files," \
		"$((SCALE_ALLOC >> 20)) MiB allocated in $big"
}

# Before every run: new sparse destination files of the source's size
# (the last run's are removed first; on tmpfs they take memory).
scale_prepare_first() { :; }
scale_prepare_run() {
	local i s=$SCALE_SIZE
	[ "${E_KIND[$idx]}" = kbase ] && s=$SCALE_DATA
	for i in 1 2; do
		rm -f -- "$MEDIUM_DIR/out$i.img"
		truncate -s "$s" "$MEDIUM_DIR/out$i.img"
	done
}
# The first run: e2fsck -fn and the files of the first copy of the ext4;
# cmp of the plain copies.  SCALE_OUT_ALLOC: what a copy allocates.
scale_check_copy() {
	local i=$2 f mnt=$WORK/chk dev alloc
	CHECK=
	f=$MEDIUM_DIR/out1.img
	alloc=$(stat -c '%b %B' "$f" | awk '{ printf "%.0f", $1 * $2 / 1048576 }')
	if [ "${E_KIND[$i]}" = kbase ]; then
		for f in "$MEDIUM_DIR"/out[12].img; do
			cmp "$MEDIUM_DIR/plain.img" "$f" >>"$WORK/check.log" 2>&1 ||
				{ CHECK="$f differs"; return 1; }
		done
		CHECK="ok, $alloc MiB allocated per file"
		return 0
	fi
	for f in "$MEDIUM_DIR"/out[12].img; do
		e2fsck -fn "$f" >>"$WORK/check.log" 2>&1 ||
			{ CHECK="e2fsck -fn $f: errors"; return 1; }
	done
	attach "$MEDIUM_DIR/out1.img" ro
	dev=$ATTACHED
	mkdir -p "$mnt"
	if mount_fs ext4 "$dev" "$mnt" ro >>"$WORK/check.log" 2>&1; then
		(cd "$mnt" && sha1sum -c --quiet "$WORK/manifest") \
			>>"$WORK/check.log" 2>&1 || CHECK="files differ"
		umount_fs "$mnt" || say "cannot unmount $mnt"
	else
		CHECK="cannot mount the copy"
	fi
	detach "$dev"
	[ -z "$CHECK" ] || return 1
	CHECK="ok, $alloc MiB allocated per file"
}

part_scale() {
	prepare_first() { scale_prepare_first "$@"; }
	prepare_run() { scale_prepare_run "$@"; }
	check_copy() { scale_check_copy "$@"; }
	make_scale
	E_TOOL=() E_KIND=()
	add "kcopy --used, $SCALE_SIZE_ARG ext4 → 2 sparse files" kscale
	add "kcopy, $SCALE_DATA_ARG plain file → 2 files (baseline)" kbase
	SRC=$MEDIUM_DIR/big.img
	DST=("$MEDIUM_DIR/out1.img" "$MEDIUM_DIR/out2.img")
	rounds scale ext4
	rows scale 1
	rm -f -- "$MEDIUM_DIR"/big.img "$MEDIUM_DIR"/plain.img "$MEDIUM_DIR"/out*.img
}

# ------------------------------------------------------------ report

# row PART TOOL: the index of a row, or nothing.
row() {
	local i
	for ((i = 0; i < ${#R_TOOL[@]}; i++)); do
		[ "${R_PART[$i]}" = "$1" ] && [ "${R_TOOL[$i]}" = "$2" ] &&
			{ echo "$i"; return 0; }
	done
	return 0
}


targets() {
	local k b lim budget_mib
	echo
	echo "Targets (issue 22, \"Performance\"):"
	echo
	if want ext4; then
		k=$(at R_MED "$(row ext4 "kcopy --used")")
		check "ext4: kcopy --used ≤ 0.5 × e2image -ra x$NDST" "$k" 0.5 \
			"$(at R_MED "$(row ext4 "e2image -ra x$NDST")")" s
		check "ext4: kcopy --used ≤ 0.25 × partclone.ext4 -b x$NDST" "$k" 0.25 \
			"$(at R_MED "$(row ext4 "partclone.ext4 -b x$NDST")")" s
		check "ext4: kcopy --used ≤ 0.3 × kcopy's full copy" "$k" 0.3 \
			"$(at R_MED "$(row ext4 "kcopy (full copy)")")" s
	fi
	if want xfs; then
		k=$(at R_MED "$(row xfs "kcopy --used")")
		check "XFS: kcopy --used ≤ 0.5 × xfs_copy" "$k" 0.5 \
			"$(at R_MED "$(row xfs xfs_copy)")" s
		check "XFS: kcopy --used ≤ 0.3 × partclone.xfs -b x$NDST" "$k" 0.3 \
			"$(at R_MED "$(row xfs "partclone.xfs -b x$NDST")")" s
	fi
	if want ntfs; then
		check "NTFS: kcopy --used ≤ 0.3 × ntfsclone --overwrite x$NDST" \
			"$(at R_MED "$(row ntfs "kcopy --used")")" 0.3 \
			"$(at R_MED "$(row ntfs "ntfsclone --overwrite x$NDST")")" s
	fi
	if want scale; then
		k=$(row scale "kcopy --used, $SCALE_SIZE_ARG ext4 → 2 sparse files")
		b=$(row scale "kcopy, $SCALE_DATA_ARG plain file → 2 files (baseline)")
		check "scale: kcopy --used of $SCALE_SIZE_ARG ≤ 2 × the plain $SCALE_DATA_ARG copy" \
			"$(at R_MED "$k")" 2 "$(at R_MED "$b")" s
		budget_mib=$(awk -v p="$PAGES" 'BEGIN { printf "%.1f", p * 4096 / 1048576 }')
		lim=$(awk -v b="$budget_mib" 'BEGIN { print b + 32 }')
		check "scale: kcopy --used peak RSS ≤ budget ($budget_mib MiB) + 32 MiB" \
			"$(at R_RSS "$k")" 1 "$lim" MiB
	fi
}

version_of() {
	case $1 in
	e2fsprogs) e2fsck -V 2>&1 | head -n 1;;
	partclone) partclone.ext4 -v 2>&1 | grep -m1 -o 'v[0-9.]*' || true;;
	xfsprogs) xfs_copy -V 2>&1 | head -n 1;;
	ntfs-3g) ntfsclone -V 2>&1 | head -n 1;;
	esac
}

report() {
	local md=$OUTDIR/$LABEL.md csv=$OUTDIR/$LABEL.csv i where
	where="a private tmpfs"
	[ "$MEDIUM" = disk ] &&
		where="files under /var/tmp on the root disk (loop direct I/O)"
	{
		echo "# kcopy --used benchmark: $MEDIUM, $SIZE_ARG, $RUNS runs"
		echo
		echo "$HEADER"
		echo
		echo "Peers: $(version_of e2fsprogs); partclone $(version_of partclone);" \
			"$(version_of xfsprogs); $(version_of ntfs-3g)."
		echo
		echo "Load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)" \
			"(other work on the machine shows up as noise)."
		echo
		echo "Sources: $SIZE_ARG images on $where, first filled with old" \
			"random data, then the file system made without discarding" \
			"(its free space keeps the old data) and filled with random" \
			"files through a mount (60% in four big files, the rest 1-64" \
			"KiB each)$(for f in ext4 xfs ntfs; do
				[ -n "${FS_FACTS[$f]:-}" ] && printf '; %s: %s' "$f" "${FS_FACTS[$f]}"
			done).  Attached read-only to a loop device; the destinations:" \
			"$NDST loop devices over images of the same size holding other" \
			"old data (written again before the first run of each tool)." \
			"Median wall time of $RUNS interleaved runs, the page cache" \
			"dropped before each; \"x$NDST\": the tool run once per" \
			"destination, one after another (the time is the sum)." \
			"Checked once per tool: the file system checker read-only on" \
			"every destination and sha1sum of every file on the first."
		if want scale && [ -n "${SCALE_USED:-}" ]; then
			echo
			echo "Scale: a sparse $SCALE_SIZE_ARG file holding an ext4" \
				"(mkfs.ext4 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard)" \
				"with $SCALE_DATA_ARG of files ($((SCALE_USED >> 20)) MiB used," \
				"$((SCALE_ALLOC >> 20)) MiB allocated), copied by kcopy" \
				"--used to two new sparse files of $SCALE_SIZE_ARG; the" \
				"baseline, kcopy of a plain $SCALE_DATA_ARG file of random" \
				"data to two new files.  kcopy budget: $PAGES pages."
		fi
		echo
		echo "Ratio = the row's median / kcopy --used's (scale: / the" \
			"baseline's); > 1: kcopy --used is faster.  Peak RSS: the" \
			"largest single process (GNU time %M), largest over the runs."
		echo
		echo "| part | tool | median s | min s | max s | ratio | peak RSS MiB | check |"
		echo "|---|---|---:|---:|---:|---:|---:|---|"
	} >"$md"
	echo "medium,size_bytes,runs,part,tool,median_s,min_s,max_s,ratio,peak_rss_mib,check" >"$csv"
	for ((i = 0; i < ${#R_TOOL[@]}; i++)); do
		printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "${R_PART[$i]}" \
			"${R_TOOL[$i]}" "$(fmt "${R_MED[$i]}" 3)" "$(fmt "${R_MIN[$i]}" 3)" \
			"$(fmt "${R_MAX[$i]}" 3)" "$(fmt "${R_RATIO[$i]}" 2)" \
			"$(fmt "${R_RSS[$i]}" 1)" "${R_CHECK[$i]}" >>"$md"
		printf '%s,%s,%s,%s,"%s",%s,%s,%s,%s,%s,"%s"\n' "$MEDIUM" "$SIZE" \
			"$RUNS" "${R_PART[$i]}" "${R_TOOL[$i]}" "${R_MED[$i]}" \
			"${R_MIN[$i]}" "${R_MAX[$i]}" "${R_RATIO[$i]}" "${R_RSS[$i]}" \
			"${R_CHECK[$i]}" >>"$csv"
	done
	targets >>"$md"
	echo >&2
	cat "$md"
	say "results: $md, $csv, $RUNS_CSV"
}

# ------------------------------------------------------------ main

mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
PAGES=$(budget_pages "")
# used-<medium>-<size>.*; one part alone: -<part> added (the scale part
# named by its --scale-data), so that it does not overwrite a whole run.
LABEL=used-$MEDIUM-$SIZE_ARG${ONLY:+-$ONLY}
[ "$ONLY" = scale ] && LABEL=used-$MEDIUM-$SCALE_DATA_ARG-scale
RUNS_CSV=$OUTDIR/$LABEL-runs.csv
echo "medium,part,round,tool,wall_s,maxrss_kib,exit" >"$RUNS_CSV"
HEADER="$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), $(nproc) CPUs, Linux $(uname -r); $("$KCOPY" --version 2>&1 | head -n 1) ($KCOPY, built $(date -u -r "$KCOPY" '+%Y-%m-%d %H:%M UTC'), libkcopyd ${KLIB:-linked in})"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A FS_FACTS=()
say "$HEADER"
say "budget $PAGES pages; load average $LOAD_BEFORE"
setup_medium
for fs in ext4 xfs ntfs; do
	want "$fs" && part_fs "$fs"
done
want scale && part_scale
report

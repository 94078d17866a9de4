#!/bin/bash
# The XFS map reader (src/kcopy/fs-xfs.c) through tests/fsmap-dump: on a
# 512 MiB image of random bytes, an XFS of 4 allocation groups filled
# with random files, a sparse one, a directory of small ones and the
# leftovers of a big deleted one; its used bytes must be exactly the
# blocks outside the free-space trees (xfs_db's count), a copy of them
# over other random bytes must pass xfs_repair -n and mount with the same
# files; the same for 1 KiB blocks and for a v4 (no CRC) file system; a
# log left dirty by a shutdown is reported, and clean again after
# recovery; damaged structures are refused with a reason.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires mkfs.xfs xfs_db xfs_io xfs_repair sha256sum mount umount
grep -qw xfs /proc/filesystems || modprobe xfs 2>/dev/null ||
	skip "no XFS in the kernel"
DUMP=$(__abspath "$top_builddir/tests/fsmap-dump")
[[ -x $DUMP ]] || fail "fsmap-dump not built ($DUMP)"

MiB=$((1024 * 1024))

# mnt IMG DIR [OPTS]: mount IMG on DIR through a loop device, both undone
# at exit unless unmnt did it first.
mnt() {
	local dev
	mkdir -p "$2"
	dev=$(make_loop "$1")
	mount -t xfs ${3:+-o "$3"} "$dev" "$2" || fail "cannot mount $1"
	cleanup_add "umount $(printf '%q' "$2") 2>/dev/null"
	echo "$dev" >"$2.dev"
}
unmnt() {
	umount "$1" || fail "cannot unmount $1"
	__loop_detach "$(cat "$1.dev")" "$(losetup -n -O BACK-FILE "$(cat "$1.dev")")"
}

# db IMG CMD...: xfs_db -r, one -c a command.
db() {
	local img=$1 c args=()
	shift
	for c in "$@"; do
		args+=(-c "$c")
	done
	xfs_db -r "${args[@]}" "$img"
}

# field IMG CMD FIELD: one "FIELD = value" of xfs_db's print.
field() {
	db "$1" "$2" "print $3" | sed -n "s/^$3 = //p"
}

# expect_used IMG: fsmap-dump's used bytes are the blocks outside the
# free-space B+trees (the AGFs' freeblks, which xfs_db's freesp, counting
# the free-list blocks too, confirms); the ranges are whole blocks.
expect_used() {
	local img=$1 head bs dblocks agcount a free=0 fl=0 total
	"$DUMP" "$img" >"$T/dump.out" || fail "fsmap-dump $img failed"
	head=$(head -n1 "$T/dump.out")
	read -r type dbs size used num state <<<"$head"
	bs=$(field "$img" "sb 0" blocksize)
	dblocks=$(field "$img" "sb 0" dblocks)
	agcount=$(field "$img" "sb 0" agcount)
	assert_eq "$type $dbs $size $state" "xfs $bs $((dblocks * bs)) clean" \
		"$img: $head"
	for ((a = 0; a < agcount; a++)); do
		free=$((free + $(field "$img" "agf $a" freeblks)))
		fl=$((fl + $(field "$img" "agf $a" flcount)))
	done
	total=$(db "$img" "freesp -s" | sed -n 's/^total free blocks //p')
	assert_eq $((total - fl)) $free "$img: xfs_db's freesp and the AGFs"
	assert_eq "$used" $(((dblocks - free) * bs)) "$img: used bytes"
	assert_eq "$(sed 1d "$T/dump.out" | wc -l)" "$num" "$img: ranges"
	sed 1d "$T/dump.out" | awk -v bs="$bs" '$1 % bs || $2 % bs || !$2 {
		print "range " $0 " is not whole blocks"; exit 1 }' ||
		fail "$img: ranges"
	echo "$img: $used of $size bytes used in $num ranges" >&2
}

# first IMG: fsmap-dump's first line.
first() {
	"$DUMP" "$1" >"$T/first.out" 2>"$T/err" ||
		fail "fsmap-dump $1 failed: $(cat "$T/err")"
	head -n1 "$T/first.out"
}

# deep IMG: some AG's free-space tree has two levels or more.
deep() {
	local a agcount
	agcount=$(field "$1" "sb 0" agcount)
	for ((a = 0; a < agcount; a++)); do
		(($(field "$1" "agf $a" bnolevel) > 1)) && return 0
	done
	fail "$1: no free-space tree of two levels"
}

# copy_check IMG DEST SUMS: copy the used ranges of IMG over DEST (random
# bytes), which must pass xfs_repair -n and, when SUMS (sha256sum's list,
# relative to the mount point) is given, mount with those files.
copy_check() {
	local img=$1 dest=$2 sums=${3:-}
	"$DUMP" "$img" "$dest" >/dev/null || fail "fsmap-dump $img $dest failed"
	xfs_repair -n -f "$dest" >"$T/repair.out" 2>&1 ||
		fail "xfs_repair -n of the copy of $img: $(tail -n 20 "$T/repair.out")"
	if [[ -n $sums ]]; then
		mnt "$dest" "$T/dest" ro,nouuid
		(cd "$T/dest" && sha256sum --quiet -c "$sums") ||
			fail "the copy of $img holds other files"
		unmnt "$T/dest"
	fi
}

# populate DIR: random files of assorted sizes, a sparse file, a
# directory of small files, and a big file written and deleted (its
# blocks, free again, hold old data); the files' sums in $T/sums.
populate() {
	local d=$1 i
	for i in 1 100 4095 4096 4097 65536 300000 $MiB $((7 * MiB + 3)) $((33 * MiB)); do
		head -c "$i" /dev/urandom >"$d/f$i"
	done
	truncate -s $((200 * MiB)) "$d/sparse"
	dd if=/dev/urandom of="$d/sparse" bs=64K seek=1000 count=16 conv=notrunc status=none
	dd if=/dev/urandom of="$d/sparse" bs=4K seek=50000 count=3 conv=notrunc status=none
	mkdir "$d/small"
	for ((i = 0; i < 300; i++)); do
		head -c $((RANDOM % 3000)) /dev/urandom >"$d/small/$i"
	done
	# 1500 files of 4 KiB, every other one deleted: hundreds of free
	# extents in one AG, a free-space tree of two levels.
	mkdir "$d/holes"
	head -c $((1500 * 4096)) /dev/urandom | (cd "$d/holes" && split -a 4 -b 4096)
	head -c $((120 * MiB)) /dev/urandom >"$d/big"
	sync
	rm "$d/big"
	(cd "$d/holes" && find . -type f -name '*[acegikmoqsuwy]' -delete)
	(cd "$d" && find . -type f -print0 | xargs -0 sha256sum) >"$T/sums"
}

IMG=$T/xfs.img
DEST=$T/dest.img
head -c $((512 * MiB)) /dev/urandom >"$IMG"
head -c $((512 * MiB)) /dev/urandom >"$DEST"

# --- 4 KiB blocks, 4 AGs, filled.
mkfs.xfs -q -f -d agcount=4 "$IMG" || fail "mkfs.xfs"
mnt "$IMG" "$T/mnt"
populate "$T/mnt"
unmnt "$T/mnt"
expect_used "$IMG"
deep "$IMG"
copy_check "$IMG" "$DEST" "$T/sums"

# --- A log left dirty: shut down after a synced write, no unmount record.
mnt "$IMG" "$T/mnt"
head -c $((3 * MiB)) /dev/urandom >"$T/mnt/after"
sync
xfs_io -x -c shutdown "$T/mnt" || fail "xfs_io shutdown"
unmnt "$T/mnt"
out=$(first "$IMG")
[[ $out == *" the log needs recovery (not cleanly unmounted)" ]] ||
	fail "a dirty log: $out"
# Mounting replays the log; unmounted again it is clean.
mnt "$IMG" "$T/mnt"
unmnt "$T/mnt"
expect_used "$IMG"

# --- 1 KiB blocks, 6 AGs, over the same random bytes.
head -c $((512 * MiB)) /dev/urandom >"$IMG"
mkfs.xfs -q -f -b size=1024 -d agcount=6 "$IMG" || fail "mkfs.xfs -b size=1024"
mnt "$IMG" "$T/mnt"
populate "$T/mnt"
unmnt "$T/mnt"
expect_used "$IMG"
deep "$IMG"
head -c $((512 * MiB)) /dev/urandom >"$DEST"
copy_check "$IMG" "$DEST" "$T/sums"

# --- v4 (no CRCs), 3 AGs: the short block headers; not mounted (the
# kernel may not take v4 any more).
SMALL=$T/small.img
truncate -s $((512 * MiB)) "$SMALL"
mkfs.xfs -q -f -m crc=0 -d agcount=3 "$SMALL" 2>/dev/null || fail "mkfs.xfs -m crc=0"
expect_used "$SMALL"
copy_check "$SMALL" "$DEST"

# --- Damage, refused with a reason (xfs_db -x rewrites the CRCs).
truncate -s $((512 * MiB)) "$T/bad.img"
mkfs.xfs -q -f -d agcount=4 "$T/bad.img"
# refused WHAT PATTERN XFS_DB_COMMANDS...: on a copy of bad.img so changed
# (write -d: with a good CRC, past xfs_db's own checks), fsmap-dump fails
# (status 1) with PATTERN in its message.
refused() {
	local what=$1 pat=$2 c args=() err
	shift 2
	cp --sparse=always "$T/bad.img" "$T/worse.img"
	for c in "$@"; do
		args+=(-c "$c")
	done
	xfs_db -x "${args[@]}" "$T/worse.img" >/dev/null 2>&1
	if "$DUMP" "$T/worse.img" >/dev/null 2>"$T/err"; then
		fail "$what: not refused"
	fi
	err=$(cat "$T/err")
	[[ $err == *$pat* ]] || fail "$what: $err"
}
refused "a tree of 20 levels" "free-space tree of 20 levels" "agf 2" "write -d bnolevel 20"
refused "a root in another AG" "tree block 40000: out of the AG" "agf 1" "write -d bnoroot 40000"
refused "a root on the AGI's block" "not a free-space tree block" "agf 3" "write -d bnoroot 2"
refused "an AGF of another AG" "AG 2: the AGF: bad magic" "agf 2" "write -d seqno 1"
refused "extents out of order" "free extent 5+32744 overlaps" "agf 0" "addr bnoroot" "write -d recs[2].startblock 5"
refused "a free superblock" "free extent 0+32758 overlaps" "agf 1" "addr bnoroot" "write -d recs[1].startblock 0"
refused "free space over the log" "free extent 16000+16374 overlaps the log" \
	"agf 2" "addr bnoroot" "write -d recs[1].startblock 16000"
refused "a realtime section" "realtime section" "sb 0" "write -d rblocks 100"
refused "an unknown feature" "unknown incompatible features" "sb 0" "write -d features_incompat 0x1000b"
truncate -s $((300 * MiB)) "$T/worse.img"
"$DUMP" "$T/worse.img" >/dev/null 2>"$T/err" && fail "a source too short: not refused"
grep -q "the source holds" "$T/err" || fail "a source too short: $(cat "$T/err")"
cp --sparse=always "$T/bad.img" "$T/worse.img"
printf "\xff\xff" | dd of="$T/worse.img" bs=1 seek=$((512 + 56)) conv=notrunc status=none
"$DUMP" "$T/worse.img" >/dev/null 2>"$T/err" && fail "a bad checksum: not refused"
grep -q "AG 0: the AGF: bad uuid or checksum" "$T/err" || fail "a bad checksum: $(cat "$T/err")"

# --- The log's head, placed by hand: xfs_db's logformat writes an
# unmount record of cycle 5 in BBs 0-1 and records of cycle 4 after it.
# Turned around so that the unmount record's header is the log's last BB
# (cycle 4) and its operation BB 0 (cycle 5), the record wraps: clean;
# without the unmount flag, or with a BB of cycle 5 after the head, dirty.
# relog MODE: a copy of bad.img with its log so changed in worse.img
# (uuid: the unmount record's file-system uuid changed).
relog() {
	cp --sparse=always "$T/bad.img" "$T/worse.img"
	xfs_db -x -c "logformat -c 5" "$T/worse.img" >/dev/null
	python3 - "$T/worse.img" "$1" \
		"$(db "$T/worse.img" "sb 0" "print logstart agblklog agblocks blocksize logblocks" |
			sed 's/.* = //' | tr '\n' ' ')" <<'PY'
import struct, sys
img, mode, geo = sys.argv[1], sys.argv[2], sys.argv[3].split()
start, aglog, agblocks, bs, blocks = map(int, geo)
off = ((start >> aglog) * agblocks + (start & ((1 << aglog) - 1))) * bs
with open(img, "r+b") as f:
    f.seek(off)
    log = bytearray(f.read(blocks * bs))
    bb = [log[i:i + 512] for i in range(0, len(log), 512)]
    assert struct.unpack(">II", bb[0][:8]) == (0xFEEDBABE, 5)
    assert bb[1][8:10] == b"\xaa\x20"
    hdr = bytearray(bb[0])
    hdr[4:8] = struct.pack(">I", 4)
    bb = [bb[1]] + bb[2:] + [hdr]
    if mode == "noflag":
        bb[0] = bb[0][:9] + b"\0" + bb[0][10:]
    elif mode == "uuid":
        bb[-1][304] ^= 1
    elif mode == "hole":
        bb[1000] = struct.pack(">I", 5) + bb[1000][4:]
    f.seek(off)
    f.write(b"".join(bb))
PY
}
relog wrap
out=$(first "$T/worse.img")
[[ $out == *" clean" ]] || fail "a wrapped unmount record: $out"
relog noflag
out=$(first "$T/worse.img")
[[ $out == *" the log needs recovery (not cleanly unmounted)" ]] ||
	fail "a wrapped record that is no unmount: $out"
relog hole
out=$(first "$T/worse.img")
[[ $out == *" the log needs recovery (not cleanly unmounted)" ]] ||
	fail "a BB of the head's cycle past it: $out"
relog uuid
"$DUMP" "$T/worse.img" >/dev/null 2>"$T/err" &&
	fail "a log record of another file system: not refused"
grep -q "log record header at log block 131071: .* another file system's" "$T/err" ||
	fail "a log record of another file system: $(cat "$T/err")"
# An interrupted mkfs, and a file system marked for repair.
cp --sparse=always "$T/bad.img" "$T/worse.img"
xfs_db -x -c "sb 0" -c "write -d inprogress 1" "$T/worse.img" >/dev/null 2>&1
out=$(first "$T/worse.img")
[[ $out == *" mkfs did not finish" ]] || fail "inprogress: $out"
echo "XFS map: ok"

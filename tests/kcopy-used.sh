#!/bin/bash
# kcopy --used end to end, on loop devices: a file system made by mkfs over
# random bytes (its free blocks hold old data), with files of assorted
# sizes and a sparse one, on a loop device, cloned to two loop devices
# that hold other random bytes (one with 4096-byte sectors).  Each
# destination passes the file system's checker and holds the same files;
# the source device's own counters (/sys/block/DEV/stat) show that about
# the used bytes were read; outside the used blocks the destinations keep
# their bytes (--unused=keep) or read as zeros (--unused=zero, whose
# --hash is the destination's sha256sum).  Refusals write nothing: a
# mounted source, a loop device over the source file mounted, a file
# system with errors (copied with --force, saying so), no file system,
# one without a reader, --hash without --unused=zero.  Also: --dry-run
# and the report name the type and the used bytes; --verify; --mapfile
# marks '+' only what was copied; --domain-mapfile, written by hand and by
# partclone; an NBD source (nbdkit's file plugin).
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires mke2fs e2fsck debugfs dumpe2fs jq cmp python3 sha256sum
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"
DUMP=$(__abspath "${FSMAP_DUMP:-$top_builddir/tests/fsmap-dump}")
[[ -x $DUMP ]] || fail "fsmap-dump not built ($DUMP)"

MiB=$((1024 * 1024))
SIZE=$((128 * MiB))

# The files: assorted sizes, a directory, an empty and a sparse file.
FILES_DIR=$T/files
mkdir -p "$FILES_DIR/dir/sub"
FILES=()
i=0
for n in 1 511 4097 70001 $((MiB + 3)) $((9 * MiB + 12345)); do
	head -c "$n" /dev/urandom >"$FILES_DIR/f$i"
	FILES+=("f$i")
	i=$((i + 1))
done
head -c 12345 /dev/urandom >"$FILES_DIR/dir/sub/deep"
FILES+=(dir/sub/deep)
: >"$FILES_DIR/empty"
FILES+=(empty)
truncate -s $((20 * MiB)) "$FILES_DIR/sparse"
for off in 0 $((3 * MiB + 77)) $((20 * MiB - 100)); do
	dd if=/dev/urandom of="$FILES_DIR/sparse" bs=100 count=1 seek="$off" \
		oflag=seek_bytes conv=notrunc status=none
done
FILES+=(sparse)

# sectors_read DEV: what the block layer counts as read from DEV.
sectors_read() {
	awk '{ print $3 }' "/sys/block/${1#/dev/}/stat"
}

# outside_kept IMG DEST OLD: DEST equals OLD outside the used ranges of IMG
# (fsmap-dump's, widened to 4096-byte blocks as the copy takes them).
outside_kept() {
	"$DUMP" "$1" >"$T/ranges" || fail "fsmap-dump $1 failed"
	python3 - "$T/ranges" "$2" "$3" <<'PY' || fail "$2: changed outside the used blocks"
import sys
lines = open(sys.argv[1]).read().split("\n")[1:]
# data and zero ranges alike: both written, in whole 4 KiB blocks
ranges = [tuple(map(int, l.split()[:2])) for l in lines if l.strip()]
a, b = open(sys.argv[2], "rb"), open(sys.argv[3], "rb")
pos = 0
def same(s, e):
    a.seek(s); b.seek(s)
    while s < e:
        n = min(e - s, 1 << 20)
        if a.read(n) != b.read(n):
            sys.exit("differs in [%d, %d)" % (s, e))
        s += n
size = b.seek(0, 2)
for p, l in ranges:
    s, e = p // 4096 * 4096, (p + l + 4095) // 4096 * 4096
    same(pos, s)
    pos = max(pos, e)
same(pos, size)
PY
}

# ------------------------------------------------------------- the types
# For each: mkfs_TYPE IMG (over the random bytes in IMG), check_TYPE DEV
# (its checker passes), files_TYPE DEV (its files equal $FILES_DIR's).

mkfs_ext() {
	local type=$1 bs=$2 img=$3
	mke2fs -t "$type" -b "$bs" -F -q -E nodiscard,lazy_itable_init=1 \
		-d "$FILES_DIR" "$img" >"$T/mkfs.log" 2>&1 ||
		fail "mke2fs -t $type -b $bs: $(cat "$T/mkfs.log")"
}
check_ext() {
	e2fsck -fn "$1" >"$T/fsck.log" 2>&1 ||
		fail "$2: e2fsck -fn: $(cat "$T/fsck.log")"
}
files_ext() {
	local f
	for f in "${FILES[@]}"; do
		debugfs -R "cat /$f" "$1" 2>/dev/null | cmp -s - "$FILES_DIR/$f" ||
			fail "$2: /$f differs"
	done
}
used_ext() {
	local count free bs
	count=$(dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Block count: *//p')
	free=$(dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Free blocks: *//p')
	bs=$(dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Block size: *//p')
	echo $(((count - free) * bs))
}

# The used bytes by the reader (fsmap-dump: the reader's own test checks
# them against the file system's tools).
used_by_reader() {
	"$DUMP" "$1" | head -n 1 | cut -d' ' -f4
}
# FAT and NTFS are filled without mounting (mtools, ntfscp): the files at
# the top only.
FLAT=()
for f in "${FILES[@]}"; do
	[[ $f == */* ]] || FLAT+=("$f")
done

mkfs_fat() {
	local f
	mkfs.vfat -F "$1" "$2" >/dev/null || fail "mkfs.vfat -F $1"
	for f in "${FLAT[@]}"; do
		MTOOLS_SKIP_CHECK=1 mcopy -i "$2" "$FILES_DIR/$f" "::/$f" ||
			fail "mcopy $f"
	done
}
check_fat() {
	fsck.vfat -n "$1" >"$T/fsck.log" 2>&1 ||
		fail "$2: fsck.vfat -n: $(cat "$T/fsck.log")"
}
files_fat() {
	local f
	for f in "${FLAT[@]}"; do
		MTOOLS_SKIP_CHECK=1 mcopy -i "$1" "::/$f" - 2>/dev/null |
			cmp -s - "$FILES_DIR/$f" || fail "$2: /$f differs"
	done
}
used_fat() { used_by_reader "$1"; }

mkfs_ntfs() {
	local f
	mkntfs -F -f -q "$1" >/dev/null 2>&1 || fail "mkntfs"
	for f in "${FLAT[@]}"; do
		ntfscp "$1" "$FILES_DIR/$f" "/$f" >/dev/null 2>&1 ||
			fail "ntfscp $f"
	done
}
check_ntfs() {
	local out
	out=$(ntfsfix -n "$1" 2>&1) || fail "$2: ntfsfix -n: $out"
	! grep -qi 'bad\|error\|corrupt' <<<"$out" || fail "$2: ntfsfix -n: $out"
}
files_ntfs() {
	local f
	for f in "${FLAT[@]}"; do
		ntfscat "$1" "/$f" 2>/dev/null | cmp -s - "$FILES_DIR/$f" ||
			fail "$2: /$f differs"
	done
}
used_ntfs() { used_by_reader "$1"; }

mkfs_xfs() {
	local img=$1 dev
	# 4096-byte sectors: one destination has them
	mkfs.xfs -q -f -d agcount=4 -s size=4096 "$img" >"$T/mkfs.log" 2>&1 ||
		fail "mkfs.xfs: $(cat "$T/mkfs.log")"
	dev=$(make_loop "$img")
	mkdir -p "$T/xmnt"
	mount "$dev" "$T/xmnt" || fail "cannot mount the XFS"
	cp -a "$FILES_DIR/." "$T/xmnt/" || fail "cannot fill the XFS"
	umount "$T/xmnt" || fail "cannot unmount the XFS"
	losetup -d "$dev"
}
check_xfs() {
	xfs_repair -n "$1" >"$T/fsck.log" 2>&1 ||
		fail "$2: xfs_repair -n: $(cat "$T/fsck.log")"
}
files_xfs() {
	local f
	mkdir -p "$T/xmnt"
	mount -o ro,nouuid "$1" "$T/xmnt" || fail "$2: cannot mount it"
	for f in "${FILES[@]}"; do
		cmp -s "$T/xmnt/$f" "$FILES_DIR/$f" || {
			umount "$T/xmnt"
			fail "$2: /$f differs"
		}
	done
	umount "$T/xmnt"
}
used_xfs() { used_by_reader "$1"; }

mkfs_exfat() {
	local img=$1 dev
	# made on 4096-byte sectors, which both destinations can hold;
	# filled through exfat-fuse, which mounts block devices only
	dev=$(make_loop "$img" -b 4096)
	mkfs.exfat "$dev" >"$T/mkfs.log" 2>&1 || fail "mkfs.exfat: $(cat "$T/mkfs.log")"
	exfat_mount "$dev" "$T/emnt"
	cp -r "$FILES_DIR/." "$T/emnt/" || fail "cannot fill the exFAT"
	umount "$T/emnt" || fail "cannot unmount the exFAT"
	losetup -d "$dev"
}
# exfat_mount DEV DIR [OPTIONS...]: DEV mounted at DIR by exfat-fuse.
exfat_mount() {
	mkdir -p "$2"
	mount.exfat-fuse "${@:3}" "$1" "$2" >"$T/mount.log" 2>&1 ||
		fail "mount.exfat-fuse $1: $(cat "$T/mount.log")"
	cleanup_add "mountpoint -q $(printf %q "$2") && umount $(printf %q "$2")"
}
check_exfat() {
	fsck.exfat -n "$1" >"$T/fsck.log" 2>&1 ||
		fail "$2: fsck.exfat -n: $(cat "$T/fsck.log")"
}
files_exfat() {
	local f
	exfat_mount "$1" "$T/emnt" -o ro
	for f in "${FILES[@]}"; do
		cmp -s "$T/emnt/$f" "$FILES_DIR/$f" || {
			umount "$T/emnt"
			fail "$2: /$f differs"
		}
	done
	umount "$T/emnt"
}
# The used bytes as dump.exfat counts the clusters, and the boot regions
# and FATs from the boot sector.
used_exfat() {
	local free total bps csize
	free=$(dump.exfat "$1" 2>/dev/null | sed -n 's/^Free Clusters:[[:space:]]*//p')
	total=$(dump.exfat "$1" 2>/dev/null | sed -n 's/^Total Clusters:[[:space:]]*//p')
	bps=$((1 << $(le "$1" 108 1)))
	csize=$((bps << $(le "$1" 109 1)))
	echo $((24 * bps + $(le "$1" 110 1) * $(le "$1" 84 4) * bps + (total - free) * csize))
}

# clone WHAT KIND TYPE_NAME MKFS_ARGS...: make the file system KIND over
# random bytes on a loop device, clone it with --used to two loop devices
# and check everything.
clone() {
	local what=$1 kind=$2 name=$3 img src d1 d2 o1 o2 before after read
	local used data zeros report=$T/used.json
	shift 3
	img=$T/src.img
	make_image "$img" "${CLONE_SIZE:-$SIZE}" random
	"mkfs_$kind" "$@" "$img"
	used=$("used_$kind" "$img")
	[[ $used =~ ^[0-9]+$ ]] || fail "$what: used bytes '$used'"
	make_image "$T/d1.img" "${CLONE_SIZE:-$SIZE}" random
	make_image "$T/d2.img" "${CLONE_SIZE:-$SIZE}" random
	cp "$T/d1.img" "$T/o1.img"
	cp "$T/d2.img" "$T/o2.img"
	src=$(make_loop "$img")
	d1=$(make_loop "$T/d1.img")
	d2=$(make_loop "$T/d2.img" -b 4096)

	kcopy_expect ok --used --dry-run "$src" "$d1" >"$T/plan"
	grep -q "file system  $name, blocks of" "$T/plan" ||
		fail "$what: --dry-run names no file system: $(cat "$T/plan")"
	grep -q "used .* bytes" "$T/plan" || fail "$what: --dry-run: no used bytes"
	cmp -s "$T/d1.img" "$T/o1.img" || fail "$what: --dry-run wrote"

	blockdev --flushbufs "$src"
	echo 3 >/proc/sys/vm/drop_caches
	before=$(sectors_read "$src")
	kcopy_expect ok --used --verify --report "$report" "$src" "$d1" "$d2"
	after=$(sectors_read "$src")
	read=$(((after - before) * 512))
	assert_eq "$(report_value "$report" used.type)" "$name" "$what: report type"
	# The used bytes, as the file system's own tools count them, and
	# the 4 KiB blocks the copy rounds them to (up to 4 KiB per extent)
	# and the reads of the map itself: the blocks the map leaves out
	# are not read.
	data=$(report_value "$report" used.bytes_used)
	zeros=$(report_value "$report" used.bytes_zeros)
	echo "$what: $read bytes read from the source; used $used, as" \
		"$data bytes of data and $zeros of zeros" >&2
	# what the file system uses: data, and blocks that need only read
	# as zeros (an ext4's unused inode tables), give or take the 4 KiB
	# blocks data is rounded out to
	((data + zeros + 4 * MiB >= used && data + zeros <= used + used / 16 + MiB)) ||
		fail "$what: $data bytes of data and $zeros of zeros for $used used"
	((read >= data && read <= data + data / 16 + 2 * MiB)) ||
		fail "$what: read $read bytes from the source for $data of data"
	(($(report_value "$report" used.bytes_left_out) > 0)) ||
		fail "$what: nothing left out"
	[[ $(report_value "$report" verified) == true ]] || fail "$what: not verified"
	for d in "$d1" "$d2"; do
		"check_$kind" "$d" "$what, $d"
		"files_$kind" "$d" "$what, $d"
	done
	losetup -d "$d1" "$d2" "$src" 2>/dev/null
	outside_kept "$img" "$T/d1.img" "$T/o1.img"
	outside_kept "$img" "$T/d2.img" "$T/o2.img"
}

clone "ext2, 4 KiB blocks" ext ext2 ext2 4096
clone "ext3, 1 KiB blocks" ext ext3 ext3 1024
clone "ext4, 1 KiB blocks" ext ext4 ext4 1024
if command -v mkfs.vfat >/dev/null && command -v mcopy >/dev/null; then
	clone "FAT16" fat vfat 16
	clone "FAT32" fat vfat 32
fi
if command -v mkntfs >/dev/null && command -v ntfscp >/dev/null; then
	clone "NTFS" ntfs ntfs
fi
if command -v mkfs.exfat >/dev/null && command -v mount.exfat-fuse >/dev/null &&
	[[ -c /dev/fuse ]]; then
	clone "exFAT, 4096-byte sectors" exfat exfat
fi
if command -v mkfs.xfs >/dev/null && command -v xfs_repair >/dev/null; then
	# mkfs.xfs makes nothing under 300 MiB
	CLONE_SIZE=$((320 * MiB)) clone "XFS, 4 allocation groups" xfs xfs
fi
# last: the ext4 the rest of the test uses
clone "ext4, 4 KiB blocks" ext ext4 ext4 4096

# ---------------------------------------------------- the ext4 source again
IMG=$T/src.img		# the last one: ext4, 4 KiB blocks
SRC=$(make_loop "$IMG")
make_image "$T/dst.img" $SIZE random
cp "$T/dst.img" "$T/old.img"

# --unused=zero: the rest reads as zeros, and --hash is of the region as
# every destination then holds it.
kcopy_expect ok --used --unused=zero --hash sha256 --report "$T/z.json" \
	"$SRC" "$T/dst.img"
check_ext "$T/dst.img" "--unused=zero"
assert_eq "$(report_value "$T/z.json" hashes.sha256)" \
	"$(sha256sum <"$T/dst.img" | cut -c1-64)" "--unused=zero: digest"
python3 - "$T/ranges" "$T/dst.img" <<'PY' || fail "--unused=zero: not zero outside"
import sys
# the last outside_kept left $T/ranges of this image
lines = open(sys.argv[1]).read().split("\n")[1:]
ranges = [tuple(map(int, l.split()[:2])) for l in lines if l.strip()]
f = open(sys.argv[2], "rb")
pos = 0
def zero(s, e):
    f.seek(s)
    while s < e:
        n = min(e - s, 1 << 20)
        if f.read(n).strip(b"\0"):
            sys.exit("not zero in [%d, %d)" % (s, e))
        s += n
for p, l in ranges:
    zero(pos, p // 4096 * 4096)
    pos = max(pos, (p + l + 4095) // 4096 * 4096)
zero(pos, f.seek(0, 2))
PY

# A file system inside a disk image, 1 MiB in (a partition): its type,
# map and blocks from the region's start.
head -c $MiB /dev/urandom >"$T/disk.img"
cat "$IMG" >>"$T/disk.img"
cp "$T/old.img" "$T/dst.img"
kcopy_expect ok --used "$T/disk.img:1M" "$T/dst.img"
check_ext "$T/dst.img" "a partition 1 MiB in"
files_ext "$T/dst.img" "a partition 1 MiB in"
rm -f "$T/disk.img"

# --hash without --unused=zero: refused, nothing written.
cp "$T/old.img" "$T/dst.img"
kcopy_expect setup --used --hash sha256 "$SRC" "$T/dst.img"
grep -q "unused=zero" "$ERR_FILE" || fail "--hash --used: no reason"

# --mapfile: '+' only over what was copied, about the used bytes.
kcopy_expect ok --used --mapfile "$T/used.map" "$SRC" "$T/dst.img"
plus=0
while read -r pos size st; do
	[[ $pos == 0x* && $st == + ]] && plus=$((plus + size))
done <"$T/used.map"
# the data the copy read: not the used blocks it only zeroed
data=$(report_value "$T/z.json" used.bytes_used)
((plus >= data - 4 * MiB && plus <= data)) ||
	fail "--mapfile: $plus bytes '+' for $data bytes of data"
grep -q '^0x[0-9A-Fa-f]* *0x[0-9A-Fa-f]* *?' "$T/used.map" ||
	fail "--mapfile: the unused blocks are not left '?'"
check_ext "$T/dst.img" "--mapfile"
# ... and with --verify: what this run copied, through the map.
cp "$T/old.img" "$T/dst.img"
rm -f "$T/used.map"
kcopy_expect ok --used --mapfile "$T/used.map" --verify --report "$T/mv.json" \
	"$SRC" "$T/dst.img"
[[ $(report_value "$T/mv.json" verified) == true ]] || fail "--mapfile --verify"
check_ext "$T/dst.img" "--mapfile --verify"

# --domain-mapfile: by hand, two areas; elsewhere the destination keeps
# its bytes.
cp "$T/old.img" "$T/dst.img"
cat >"$T/domain.map" <<EOF
# Mapfile. Created by hand
0x0     +     1
#      pos        size  status
0x00000000  0x00100000  +
0x00100000  0x00200000  ?
0x00300000  0x00001000  +
0x00301000  0x07CFF000  ?
EOF
kcopy_expect ok --domain-mapfile "$T/domain.map" "$SRC" "$T/dst.img"
cmp -s -n $MiB "$IMG" "$T/dst.img" || fail "domain: first area"
cmp -s -i $((3 * MiB)) -n 4096 "$IMG" "$T/dst.img" || fail "domain: second area"
cmp -s -i $MiB -n $((2 * MiB)) "$T/old.img" "$T/dst.img" || fail "domain: gap written"
cmp -s -i $((3 * MiB + 4096)) "$T/old.img" "$T/dst.img" || fail "domain: tail written"
# ... and from partclone, which knows every file system it clones.
if command -v partclone.extfs >/dev/null; then
	cp "$T/old.img" "$T/dst.img"
	partclone.extfs -D -s "$SRC" -O "$T/pc.map" -q >/dev/null 2>&1 ||
		partclone.extfs -D -s "$SRC" -o "$T/pc.map" >/dev/null 2>&1 ||
		fail "partclone -D failed"
	kcopy_expect ok --domain-mapfile "$T/pc.map" "$SRC" "$T/dst.img"
	check_ext "$T/dst.img" "partclone's domain"
	files_ext "$T/dst.img" "partclone's domain"
fi
kcopy_expect setup --domain-mapfile "$T/none.map" "$SRC" "$T/dst.img"
kcopy_expect setup --used --domain-mapfile "$T/domain.map" "$SRC" "$T/dst.img"

# An NBD source: its map is read through the export.
if have_nbd; then
	uri=$(make_nbd used -r file "$IMG")
	cp "$T/old.img" "$T/dst.img"
	kcopy_expect ok --used "$uri" "$T/dst.img"
	check_ext "$T/dst.img" "NBD source"
	files_ext "$T/dst.img" "NBD source"
fi

# ------------------------------------------------------------- refusals
# refused WHAT EXPECT ARGS...: exits 128 naming EXPECT, destination as it was.
refused() {
	local what=$1 expect=$2
	shift 2
	cp "$T/old.img" "$T/dst.img"
	kcopy_expect setup "$@"
	grep -q -- "$expect" "$ERR_FILE" ||
		fail "$what: the message does not say '$expect': $(cat "$ERR_FILE")"
	cmp -s "$T/old.img" "$T/dst.img" || fail "$what: the destination changed"
}

mkdir -p "$T/mnt"
mount -o ro "$SRC" "$T/mnt" || fail "cannot mount $SRC"
cleanup_add "umount $(printf '%q' "$T/mnt") 2>/dev/null"
refused "mounted" "mounted or in use" --used "$SRC" "$T/dst.img"
umount "$T/mnt"
# The source file, with a loop device over it mounted.
mount -o ro "$SRC" "$T/mnt" || fail "cannot mount $SRC"
refused "loop over the file mounted" "mounted or in use" --used "$IMG" "$T/dst.img"
umount "$T/mnt"

debugfs -w -R "ssv state 2" "$IMG" >/dev/null 2>&1 || fail "debugfs ssv"
blockdev --flushbufs "$SRC"
refused "errors recorded" "not clean: errors recorded" --used "$SRC" "$T/dst.img"
kcopy_expect ok --used --force "$SRC" "$T/dst.img"
grep -q "not clean.*--force" "$ERR_FILE" || fail "--force: no note"
debugfs -w -R "ssv state 1" "$IMG" >/dev/null 2>&1

make_image "$T/junk.img" $((4 * MiB)) random
refused "no file system" "no file system found" --used "$T/junk.img" "$T/dst.img"
if command -v mkswap >/dev/null; then
	make_image "$T/swap.img" $((4 * MiB)) random
	mkswap "$T/swap.img" >/dev/null 2>&1 || fail "mkswap"
	refused "swap" "holds swap" --used "$T/swap.img" "$T/dst.img"
fi
kcopy_expect setup --unused=zero "$SRC" "$T/dst.img"
kcopy_expect setup --unused=both --used "$SRC" "$T/dst.img"
kcopy_expect setup --used - "$T/dst.img" </dev/null
exit 0

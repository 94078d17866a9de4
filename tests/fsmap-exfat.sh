#!/bin/bash
# The exFAT map reader (src/kcopy/fs-exfat.c) through tests/fsmap-dump.
# Volumes made by mkfs.exfat over random bytes, of several geometries
# (clusters of 512 bytes to 32 MiB, the bitmap packed among the FATs),
# and, where root, loop devices and FUSE are there (exfat-fuse writes
# them), volumes with files: a big file written and deleted (old data in
# free clusters), files of assorted sizes and a subdirectory, on 512- and
# 4096-byte sectors.  The used bytes must be both boot regions, every FAT
# (from the boot sector, read here with od) and the clusters dump.exfat
# counts as not free; the used ranges copied over other random bytes must
# make a volume fsck.exfat passes, with every file as in the source.  Then
# a free cluster marked in the bitmap counts as used, VolumeDirty and
# MediaFailure are reported, and a damaged boot checksum, a truncated
# image, a bad field and a root directory the bitmap calls free are
# refused with the field named.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires mkfs.exfat fsck.exfat dump.exfat cmp od
DUMP=$(__abspath "${FSMAP_DUMP:-$top_builddir/tests/fsmap-dump}")
[[ -x $DUMP ]] || fail "fsmap-dump not built ($DUMP): make tests/fsmap-dump"

MiB=$((1024 * 1024))

# refused IMG WHAT TEXT: fsmap-dump fails on IMG saying TEXT (a regex).
refused() {
	"$DUMP" "$1" >/dev/null 2>"$T/err" && fail "$2: accepted"
	grep -q "Structure needs cleaning ($3" "$T/err" ||
		fail "$2: $(cat "$T/err")"
}

# The geometry of IMG's boot sector into bps, csize, vol, fatoff, fatlen,
# nfats, heap, clusters, root; free from dump.exfat.
geometry() {
	bps=$((1 << $(le "$1" 108 1)))
	csize=$((bps << $(le "$1" 109 1)))
	vol=$(le "$1" 72 8)
	fatoff=$(le "$1" 80 4)
	fatlen=$(le "$1" 84 4)
	heap=$(le "$1" 88 4)
	clusters=$(le "$1" 92 4)
	root=$(le "$1" 96 4)
	nfats=$(le "$1" 110 1)
	free=$(dump.exfat "$1" 2>/dev/null | sed -n 's/^Free Clusters:[[:space:]]*//p')
	[[ $free =~ ^[0-9]+$ ]] || fail "$1: no free cluster count from dump.exfat"
	assert_eq "$(dump.exfat "$1" 2>/dev/null | sed -n 's/^Total Clusters:[[:space:]]*//p')" \
		"$clusters" "$1: clusters by dump.exfat and by the boot sector"
}

# check_used WHAT IMG: the reader's used bytes are the boot regions, the
# FATs and the clusters in use; its ranges over random bytes are a volume
# fsck.exfat passes, with the same root entries.
check_used() {
	local what=$1 img=$2 dest=$T/dest.img want line
	geometry "$img"
	want=$((24 * bps + nfats * fatlen * bps + (clusters - free) * csize))
	line=$(fsmap_dump "$img" | head -n 1)
	assert_eq "$line" "exfat $csize $((vol * bps)) $want $(fsmap_dump "$img" | sed 1d | wc -l) clean" \
		"$what: fsmap-dump's summary"
	make_image "$dest" "$(stat -c %s "$img")" random
	fsmap_dump "$img" "$dest" >/dev/null
	line=$(fsck.exfat -n "$dest" 2>&1) || fail "$what: fsck.exfat of the copy: $line"
	assert_eq "$(dump.exfat "$dest" 2>&1)" "$(dump.exfat "$img" 2>&1)" \
		"$what: dump.exfat of the copy"
}

# The refusals and flags, on the volume IMG (changed, then left broken).
check_damage() {
	local what=$1 img=$2 before last n byte
	geometry "$img"

	# The heap's last cluster, free, marked in the bitmap: used, and the
	# last range ends the heap.
	before=$(fsmap_field "$img" 4)
	n=$(dump.exfat "$img" 2>/dev/null | sed -n 's/^Bitmap start cluster:[[:space:]]*//p')
	byte=$(((heap * bps) + (n - 2) * csize + (clusters - 1) / 8))
	last=$(le "$img" "$byte" 1)
	((last >> ((clusters - 1) % 8) & 1)) && fail "$what: last cluster not free"
	poke "$img" "$byte" $((last | 1 << ((clusters - 1) % 8)))
	assert_eq "$(fsmap_field "$img" 4)" $((before + csize)) \
		"$what: a cluster marked in the bitmap is used"
	assert_eq "$(fsmap_dump "$img" | tail -n 1 | awk '{ print $1 + $2 }')" \
		$((heap * bps + clusters * csize)) "$what: its range ends the heap"
	poke "$img" "$byte" "$last"

	# VolumeFlags (byte 106, outside the boot checksum).
	poke "$img" 106 2
	assert_eq "$(fsmap_field "$img" 6-)" \
		"marked dirty (VolumeFlags bit 1, VolumeDirty)" "$what: VolumeDirty"
	poke "$img" 106 6
	assert_eq "$(fsmap_field "$img" 6-)" \
		"marked dirty (VolumeFlags bit 1, VolumeDirty); media failure recorded (VolumeFlags bit 2, MediaFailure)" \
		"$what: VolumeDirty and MediaFailure"
	poke "$img" 106 0
	assert_eq "$(fsmap_field "$img" 6)" clean "$what: flags cleared"

	# The root directory's cluster free in the bitmap.
	byte=$(((heap * bps) + (n - 2) * csize + (root - 2) / 8))
	last=$(le "$img" "$byte" 1)
	poke "$img" "$byte" $((last & ~(1 << ((root - 2) % 8)) & 255))
	refused "$img" "$what: root directory free" \
		"FirstClusterOfRootDirectory $root: free in the Allocation Bitmap"
	poke "$img" "$byte" "$last"

	# A byte of an extended boot sector changed: the checksum fails.
	last=$(le "$img" $((bps + 100)) 1)
	poke "$img" $((bps + 100)) $((last ^ 1))
	refused "$img" "$what: damaged boot region" "boot checksum: sector 11 holds"
	poke "$img" $((bps + 100)) "$last"

	# NumberOfFats out of range, a volume longer than its source.
	poke "$img" 110 3
	refused "$img" "$what: NumberOfFats 3" "NumberOfFats 3 (1 or 2)"
	poke "$img" 110 "$nfats"
	assert_eq "$(fsmap_field "$img" 6)" clean "$what: repaired"
	truncate -s $((vol * bps - bps)) "$img"
	refused "$img" "$what: truncated" "VolumeLength $vol sectors of $bps bytes: not within"
}

# Fresh volumes of several geometries, no root needed.
fresh() {
	local what=$1 size=$2 img=$T/fresh.img
	shift 2
	make_image "$img" "$size" random
	mkfs.exfat "$@" "$img" >"$T/mkfs.log" 2>&1 ||
		fail "$what: mkfs.exfat $*: $(cat "$T/mkfs.log")"
	check_used "$what" "$img"
}
fresh "64 MiB, 4 KiB clusters" 64M
fresh "32 MiB, 512-byte clusters" 32M -c 512
fresh "256 MiB, 1 MiB clusters" 256M -c 1M
fresh "512 MiB, 32 MiB clusters" 512M -c 32M
fresh "64 MiB, bitmap among the FATs" 64M --pack-bitmap
check_damage "64 MiB, bitmap among the FATs" "$T/fresh.img"
rm -f "$T/fresh.img" "$T/dest.img"

# Volumes with files, written by exfat-fuse (which mounts block devices
# only) on loop devices of 512- and 4096-byte sectors.
if [[ $(id -u) != 0 || ! -c /dev/fuse ]] || ! command -v mount.exfat-fuse >/dev/null; then
	skip "volumes with files need root, FUSE and exfat-fuse"
fi
requires_loop
requires mountpoint

# put NAME SIZE: a random file of SIZE bytes as $MNT/NAME, kept in
# $FILES/NAME to compare against.
put() {
	mkdir -p "$(dirname "$FILES/$1")" "$(dirname "$MNT/$1")"
	head -c "$2" /dev/urandom >"$FILES/$1"
	cp "$FILES/$1" "$MNT/$1" || fail "cannot write $1"
	NAMES+=("$1")
}

# mnt DEV [OPTIONS...]: mount DEV at $MNT with exfat-fuse (unmounted at
# exit).
mnt() {
	mount.exfat-fuse "${@:2}" "$1" "$MNT" >/dev/null 2>&1 ||
		fail "mount.exfat-fuse $*"
	cleanup_add "mountpoint -q $(printf %q "$MNT") && umount $(printf %q "$MNT")"
}

with_files() {
	local what=$1 sector=$2 size=$((96 * MiB)) img=$T/files.img dev n name
	local -a NAMES=()
	FILES=$T/files
	MNT=$T/mnt
	mkdir -p "$MNT" "$FILES"
	make_image "$img" "$size" random
	dev=$(make_loop "$img" -b "$sector")
	mkfs.exfat -c 4K "$dev" >"$T/mkfs.log" 2>&1 ||
		fail "$what: mkfs.exfat: $(cat "$T/mkfs.log")"
	mnt "$dev"
	head -c $((size / 2)) /dev/urandom >"$MNT/big" || fail "$what: big file"
	rm "$MNT/big"
	for n in 0 1 511 512 4097 $((MiB + 3)) $((RANDOM * 64 + RANDOM % 512)); do
		put "f$n" "$n"
	done
	for n in 3 2048 $((RANDOM * 4)); do
		put "sub/g$n" "$n"
	done
	umount "$MNT" || fail "$what: cannot unmount"
	losetup -d "$dev"
	assert_eq "$(le "$img" 108 1)" $((sector == 512 ? 9 : 12)) "$what: BytesPerSectorShift"
	check_used "$what" "$img"

	# The copy's files, through a loop device over it.
	dev=$(make_loop "$T/dest.img" -b "$sector")
	mnt "$dev" -o ro
	for name in "${NAMES[@]}"; do
		cmp "$MNT/$name" "$FILES/$name" || fail "$what: $name differs in the copy"
	done
	umount "$MNT" || fail "$what: cannot unmount the copy"
	losetup -d "$dev"
	check_damage "$what" "$img"
	rm -rf "$img" "$T/dest.img" "$FILES"
}
with_files "512-byte sectors" 512
with_files "4096-byte sectors" 4096

#!/bin/bash
# kcopy --dry-run names what it is about to overwrite: on a loop device
# over an image with a GPT (sfdisk; else an MBR) whose first partition holds an ext4
# with a label, mounted, the plan gives the loop device's backing file,
# the partition table's type, the partitions (where they lie, their type,
# the file system and label on the first), and that the first is mounted
# and where; with the partition as the source, its number, its disk and
# the disk's backing file, its label and its mount point; with the image
# file as the source, the loop device attached to it and its partition
# mounted.  A plain image file
# holding a file system shows its type and label.  The whole plan: rate,
# throttle, verify, hash, and what a mapfile says is left.  The dry run
# writes nothing (the devices' and files' checksums, no file created).
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires mkfs.ext4 blockdev mount umount sha256sum
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

# plan_line PLAN PREFIX: the plan's first line that starts with PREFIX.
plan_line() {
	grep -m1 -F -- "$2" "$1" | grep -- "^$(printf '%s' "$2" | sed 's/[][\.*^$]/\\&/g')" ||
		fail "no line '$2' in the plan: $(cat "$1")"
}

# has PLAN TEXT: the plan holds TEXT somewhere.
has() {
	grep -qF -- "$2" "$1" || fail "no '$2' in the plan: $(cat "$1")"
}

# The disk: a GPT of two partitions (an MBR without sfdisk), an ext4
# labelled on the first, mounted read-only (nothing writes to it while the
# plan is made).
DISK=$T/disk.img
truncate -s 64M "$DISK"
if command -v sfdisk >/dev/null 2>&1; then
	PTTYPE=gpt
	printf 'label: gpt\n,16MiB,L\n,,L\n' | sfdisk -q "$DISK" ||
		fail "sfdisk failed"
else
	# Entries 1 and 2: type 0x83, LBA 2048 and 34816, 32768 and 96256
	# sectors (little-endian); 3 and 4 empty.
	PTTYPE=dos
	{
		printf '\x00\x00\x00\x00\x83\x00\x00\x00\x00\x08\x00\x00\x00\x80\x00\x00'
		printf '\x00\x00\x00\x00\x83\x00\x00\x00\x00\x88\x00\x00\x00\x78\x01\x00'
		head -c 32 /dev/zero
		printf '\x55\xaa'
	} | dd of="$DISK" bs=1 seek=446 conv=notrunc status=none
fi
LOOP=$(make_loop "$DISK" -P)
PART=$(loop_partition "$LOOP" 1)
mkfs.ext4 -q -F -L KCDISKFS -E lazy_itable_init=0,lazy_journal_init=0 \
	"$PART" || fail "mkfs.ext4 $PART failed"
blockdev --flushbufs "$LOOP"
mkdir "$T/mnt"
mount -o ro "$PART" "$T/mnt" || fail "cannot mount $PART"
cleanup_add "umount $(printf '%q' "$T/mnt") 2>/dev/null || umount -l $(printf '%q' "$T/mnt")"

# A plain image file holding a file system.
IMG=$T/fs.img
truncate -s 16M "$IMG"
mkfs.ext4 -q -F -L KCIMAGEFS "$IMG" || fail "mkfs.ext4 $IMG failed"

disk_sum=$(sum "$LOOP")
img_sum=$(sum "$IMG")
file_sum=$(sum "$DISK")

# The mounted disk as a destination (--force: it is in use).
"$KCOPY" --dry-run --force --rate 200M --throttle 50 --verify \
	--hash sha256,md5 "$IMG" "$LOOP" >"$T/plan" 2>"$T/err" ||
	fail "dry run failed: $(cat "$T/err")"
has "$T/plan" "  backing file $DISK"
has "$T/plan" "  table        $PTTYPE"
line=$(plan_line "$T/plan" "  partition 1  ")
[[ $line == *"sector 2048, 32768 sectors"* ]] ||
	fail "partition 1 not where sfdisk made it: $line"
[[ $line == *'ext4, label "KCDISKFS"'* ]] ||
	fail "partition 1's file system and label not named: $line"
[[ $line == *"mounted on $T/mnt"* ]] ||
	fail "partition 1's mount point not named: $line"
line=$(plan_line "$T/plan" "  partition 2  ")
[[ $line == *"sector 34816, "* ]] ||
	fail "partition 2 not where sfdisk made it: $line"
# The source image: its file system and label.
has "$T/plan" '  signature    ext4, label "KCIMAGEFS"'
# The whole plan.
has "$T/plan" "rate           200.0 MiB/s (209715200 bytes per second)"
has "$T/plan" "throttle       50% of the time"
has "$T/plan" "verify         each destination read back"
has "$T/plan" "hash           md5, sha256, of the source region"

# The mounted partition as the source: its disk, and where it is mounted.
"$KCOPY" --dry-run --mapfile "$T/run.map" "$PART" "$T/out.img" \
	>"$T/plan2" 2>"$T/err" || fail "dry run failed: $(cat "$T/err")"
has "$T/plan2" "  partition    1 of $LOOP, from byte 1048576"
has "$T/plan2" "  disk         $LOOP, 67108864 bytes"
has "$T/plan2" "  backing file $DISK"
has "$T/plan2" "  in use       mounted on $T/mnt"
has "$T/plan2" '  signature    ext4, label "KCDISKFS"'
has "$T/plan2" "mapfile        $T/run.map, to be created"
has "$T/plan2" "  left         16777216 bytes (16.0 MiB)"

# A mapfile of an earlier run: what it says is done and left.
printf '# Mapfile. Created by hand\n0x0 +\n0x0 0x400000 +\n0x400000 0x100000 -\n0x500000 0xB00000 ?\n' \
	>"$T/half.map"
"$KCOPY" --dry-run --force --mapfile "$T/half.map" "$PART" "$T/out.img" \
	>"$T/plan3" 2>"$T/err" || fail "dry run failed: $(cat "$T/err")"
has "$T/plan3" "mapfile        $T/half.map"
has "$T/plan3" "  done         4194304 bytes (4.0 MiB)"
has "$T/plan3" "  bad          1048576 bytes (1.0 MiB), read again"
has "$T/plan3" "  left         11534336 bytes (11.0 MiB)"

# The disk's image file as the source: the loop device over it.
"$KCOPY" --dry-run "$DISK" "$T/out.img" >"$T/plan4" 2>"$T/err" ||
	fail "dry run failed: $(cat "$T/err")"
has "$T/plan4" "  loop device  $LOOP"
has "$T/plan4" "  loop device  $PART, mounted on $T/mnt"
has "$T/plan4" "  table        $PTTYPE"

# Nothing written, nothing made.
assert_eq "$(sum "$LOOP")" "$disk_sum" "the disk after the dry runs"
assert_eq "$(sum "$DISK")" "$file_sum" "the disk's image after the dry runs"
assert_eq "$(sum "$IMG")" "$img_sum" "the image after the dry runs"
[[ ! -e $T/out.img && ! -e $T/run.map ]] || fail "a dry run created a file"
cmp -s "$T/half.map" <(printf '# Mapfile. Created by hand\n0x0 +\n0x0 0x400000 +\n0x400000 0x100000 -\n0x500000 0xB00000 ?\n') ||
	fail "a dry run changed the mapfile"

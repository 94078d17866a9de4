#!/bin/bash
# kcopy region specs: every PATH[:SECTOR[:COUNT]] form copies the right bytes, files and 512/4096-byte loop devices
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires cmp md5sum
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

MiB=$((1024 * 1024))
SRC=$T/src.img				# 4 MiB = 8192 sectors, every sector different
make_image "$SRC" 4M pattern:SRC
SRC_SECTORS=8192

# ------------------------------------------------------------ file to file

# Whole source to a new file.
kcopy_expect 0 "$SRC" "$T/d1"
[[ -f $T/d1 ]] || fail "destination d1 not created"
cmp "$SRC" "$T/d1" || fail "whole copy d1 differs"

# One source to three files.
kcopy_expect 0 "$SRC" "$T/d2" "$T/d3" "$T/d4"
for d in d2 d3 d4; do
	cmp "$SRC" "$T/$d" || fail "1->3 copy: $d differs"
done

# PATH:SECTOR: from sector 100 to the end of the source.
kcopy_expect 0 "$SRC:100" "$T/d5"
size_is "$T/d5" $(((SRC_SECTORS - 100) * 512))
same_sectors "$SRC" 100 "$T/d5" 0 $((SRC_SECTORS - 100))

# PATH:SECTOR:COUNT, odd numbers.
kcopy_expect 0 "$SRC:101:37" "$T/d6"
size_is "$T/d6" $((37 * 512))
same_sectors "$SRC" 101 "$T/d6" 0 37

# PATH::COUNT: from sector 0.
kcopy_expect 0 "$SRC::64" "$T/d7"
size_is "$T/d7" $((64 * 512))
same_sectors "$SRC" 0 "$T/d7" 0 64

# Byte sizes: img:1M:2M is 2 MiB from byte 1 MiB.
kcopy_expect 0 "$SRC:1M:2M" "$T/d8"
size_is "$T/d8" $((2 * MiB))
same "$SRC" $MiB "$T/d8" 0 $((2 * MiB))

# img:1MiB: from byte 1 MiB to the end.
kcopy_expect 0 "$SRC:1MiB" "$T/d9"
size_is "$T/d9" $((3 * MiB))
same "$SRC" $MiB "$T/d9" 0 $((3 * MiB))

# Decimal multiples: 1024KB = 1024000 bytes = 2000 sectors; 512kB = 1000 sectors.
kcopy_expect 0 "$SRC:512kB:1024KB" "$T/d10"
size_is "$T/d10" 1024000
same "$SRC" 512000 "$T/d10" 0 1024000

# Lower-case and KiB suffixes on both fields.
kcopy_expect 0 "$SRC:4k:8KiB" "$T/d11"
size_is "$T/d11" 8192
same "$SRC" 4096 "$T/d11" 0 8192

# Suffixes on a destination too: 3 sectors at byte 2 KiB of a new file.
kcopy_expect 0 "$SRC:9:3" "$T/d12:2K:3"
size_is "$T/d12" $((2048 + 1536))
is_zero "$T/d12" 0 2048
same_sectors "$SRC" 9 "$T/d12" 4 3

# Relative paths, from the test directory.
(cd "$T" && "$KCOPY" src.img:16:16 rel.img) || fail "relative paths failed"
same_sectors "$SRC" 16 "$T/rel.img" 0 16

# ------------------------------------ destination inside a larger file

BIG=$T/big.img
make_image "$BIG" 8M pattern:BIG
cp "$BIG" "$T/big.orig"
BIG_SIZE=$((8 * MiB))

# A destination without COUNT takes the source's: 20 sectors at sector 200.
kcopy_expect 0 "$SRC:10:20" "$BIG:200"
size_is "$BIG" $BIG_SIZE
same_sectors "$BIG" 0 "$T/big.orig" 0 200
same_sectors "$SRC" 10 "$BIG" 200 20
same "$BIG" $((220 * 512)) "$T/big.orig" $((220 * 512)) $((BIG_SIZE - 220 * 512))

# The same with an explicit, equal COUNT, at sector 5000.
kcopy_expect 0 "$SRC:300:48" "$BIG:5000:48"
size_is "$BIG" $BIG_SIZE
same_sectors "$SRC" 300 "$BIG" 5000 48
same_sectors "$BIG" 220 "$T/big.orig" 220 $((5000 - 220))
same_sectors "$BIG" 5048 "$T/big.orig" 5048 $((BIG_SIZE / 512 - 5048))
same_sectors "$SRC" 10 "$BIG" 200 20	# the first copy is still there

# An existing destination is never truncated: 8 sectors at its start.
KEEP=$T/keep.img
make_image "$KEEP" 1M pattern:KEEP
cp "$KEEP" "$T/keep.orig"
kcopy_expect 0 "$SRC::8" "$KEEP"
size_is "$KEEP" $MiB
same_sectors "$SRC" 0 "$KEEP" 0 8
same "$KEEP" 4096 "$T/keep.orig" 4096 $((MiB - 4096))

# A region that runs past the end of an existing file extends it; what was
# there before the region stays.
kcopy_expect 0 "$SRC:0:16" "$KEEP:2040"
size_is "$KEEP" $((2056 * 512))
same_sectors "$KEEP" 8 "$T/keep.orig" 8 $((2040 - 8))
same_sectors "$SRC" 0 "$KEEP" 2040 16

# --------------------------------------------- paths containing colons

mkdir "$T/by-path"
BYP=$T/by-path/pci-0000:00:1f.2-ata-1
make_image "$BYP" 2M pattern:BYP
cp "$BYP" "$T/byp.orig"

# The whole argument exists: it is the path, colons and all.
kcopy_expect 0 "$BYP" "$T/d13"
cmp "$BYP" "$T/d13" || fail "by-path source copied wrong"

# The same name plus :2048 is a spec: from sector 2048 (1 MiB) to the end.
kcopy_expect 0 "$BYP:2048" "$T/d14"
size_is "$T/d14" $MiB
same "$BYP" $MiB "$T/d14" 0 $MiB

# ... and PATH:SECTOR:COUNT on it.
kcopy_expect 0 "$BYP:2048:10" "$T/d15"
size_is "$T/d15" 5120
same_sectors "$BYP" 2048 "$T/d15" 0 10

# As a destination, whole and at an offset.
kcopy_expect 0 "$SRC:0:4096" "$T/d16"
kcopy_expect 0 "$T/d16" "$BYP"
size_is "$BYP" $((2 * MiB))
same_sectors "$SRC" 0 "$BYP" 0 4096
cp "$T/byp.orig" "$BYP"
kcopy_expect 0 "$SRC:7:5" "$BYP:1000"
size_is "$BYP" $((2 * MiB))
same_sectors "$BYP" 0 "$T/byp.orig" 0 1000
same_sectors "$SRC" 7 "$BYP" 1000 5
same_sectors "$BYP" 1005 "$T/byp.orig" 1005 $((4096 - 1005))

# A new destination whose name has a colon and no number after it.
kcopy_expect 0 "$SRC:0:8" "$T/new:file"
[[ -f $T/new:file ]] || fail "destination 'new:file' not created under its own name"
same_sectors "$SRC" 0 "$T/new:file" 0 8

# ------------------------------------------------------------ loop devices

requires_loop

L512_IMG=$T/l512.img
L4K_IMG=$T/l4k.img
make_image "$L512_IMG" 4M zero
make_image "$L4K_IMG" 4M zero
L512=$(make_loop "$L512_IMG")
L4K=$(make_loop "$L4K_IMG" -b 4096)
assert_eq "$(blockdev --getss "$L512")" 512 "logical block size of $L512"
assert_eq "$(blockdev --getss "$L4K")" 4096 "logical block size of $L4K"

# File -> 512-byte device at sector 1023 (unaligned to 4 KiB is fine here).
kcopy_expect 0 "$SRC:5:2000" "$L512:1023"
same_sectors "$SRC" 5 "$L512" 1023 2000
is_zero "$L512" 0 $((1023 * 512))
is_zero "$L512" $(((1023 + 2000) * 512)) $((4 * MiB - (1023 + 2000) * 512))

# 512-byte device -> file, odd region.
kcopy_expect 0 "$L512:1023:2000" "$T/d17"
size_is "$T/d17" $((2000 * 512))
same_sectors "$SRC" 5 "$T/d17" 0 2000

# File -> 4096-byte device, aligned region (sector 8 = block 1).
kcopy_expect 0 "$SRC:16:2048" "$L4K:8"
same_sectors "$SRC" 16 "$L4K" 8 2048
is_zero "$L4K" 0 4096
is_zero "$L4K" $(((8 + 2048) * 512)) $((4 * MiB - (8 + 2048) * 512))

# A file region at an odd sector still lands on an aligned device region.
kcopy_expect 0 "$SRC:3:16" "$L4K:4096:16"
same_sectors "$SRC" 3 "$L4K" 4096 16

# 4096-byte device -> file, with byte suffixes.
kcopy_expect 0 "$L4K:4K:1M" "$T/d18"
size_is "$T/d18" $MiB
same_sectors "$SRC" 16 "$T/d18" 0 2048

# 4096-byte device (whole) -> new file.
kcopy_expect 0 "$L4K" "$T/d19"
size_is "$T/d19" $((4 * MiB))
same "$L4K" 0 "$T/d19" 0 $((4 * MiB))

# 4096 -> 512 and 512 -> 4096 device to device, aligned regions.
kcopy_expect 0 "$L4K:8:2048" "$L512:4096"
same_sectors "$SRC" 16 "$L512" 4096 2048
kcopy_expect 0 "$L512:1024:1024" "$L4K:6144:1024"
same_sectors "$L512" 1024 "$L4K" 6144 1024

# One source to a file, a 512-byte device and a 4096-byte device at once.
kcopy_expect 0 "$SRC:0:256" "$T/d20" "$L512:7000" "$L4K:7936"
same_sectors "$SRC" 0 "$T/d20" 0 256
same_sectors "$SRC" 0 "$L512" 7000 256
same_sectors "$SRC" 0 "$L4K" 7936 256

# Whole 512-byte device onto the whole 4096-byte device.
kcopy_expect 0 "$L512" "$L4K"
same "$L512" 0 "$L4K" 0 $((4 * MiB))

# A file onto the whole device: the device's size is taken from the source.
make_image "$T/four.img" 4M pattern:FOUR
kcopy_expect 0 "$T/four.img" "$L4K"
same "$T/four.img" 0 "$L4K" 0 $((4 * MiB))
# The same destination twice, disjoint regions: a file, then a device
# (one device named twice shares one exclusive descriptor).
make_image "$T/twice.img" 1M zero
kcopy_expect 0 "$SRC:40:16" "$T/twice.img:0" "$T/twice.img:100"
same_sectors "$SRC" 40 "$T/twice.img" 0 16
same_sectors "$SRC" 40 "$T/twice.img" 100 16
kcopy_expect 0 "$SRC:60:16" "$L512:0" "$L512:100"
same_sectors "$SRC" 60 "$L512" 0 16
same_sectors "$SRC" 60 "$L512" 100 16
kcopy_expect 0 "$SRC:80:16" "$L4K:16" "$T/d21" "$L4K:128"
same_sectors "$SRC" 80 "$L4K" 16 16
same_sectors "$SRC" 80 "$L4K" 128 16
same_sectors "$SRC" 80 "$T/d21" 0 16
exit 0

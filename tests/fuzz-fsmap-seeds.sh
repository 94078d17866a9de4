#!/bin/bash
# fuzz-fsmap-seeds.sh - the seeds of tests/fuzz-fsmap.c: file-system
# images in its compact form (a sparse image: its size, then records of
# the sectors that are not zeros; see the head comment of fuzz-fsmap.c).
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage:
#   fuzz-fsmap-seeds.sh IMAGE SEED   convert one image (a file or a block
#                                    device) into the seed file SEED
#   fuzz-fsmap-seeds.sh [DIR]        make the standard seeds in DIR
#                                    (default tests/fuzz-corpus/fsmap):
#                                    mkfs.vfat -F 12, -F 16, -F 32 with a
#                                    few files (mcopy), mkntfs with a few
#                                    files (ntfscp), also with an
#                                    attribute list, mkfs.xfs with a few
#                                    (from a protofile, mkfs.xfs -p), v5
#                                    and v4 (-m crc=0), mkfs.exfat (4 KiB
#                                    and 512-byte clusters)
#
# A sector of zeros is left out; a run of sectors all one other byte (the
# 0xFF of NTFS's $LogFile) is one fill record; the rest goes in data
# records of up to 4096 bytes, without their trailing zeros.  To add a
# seed of another image: fuzz-fsmap-seeds.sh IMAGE
# tests/fuzz-corpus/fsmap/NAME, and keep it small (under the target's
# -max_len, 256 KiB).
set -eu

me=fuzz-fsmap-seeds
script_dir=$(cd "$(dirname "$0")" && pwd)

convert() {
	python3 - "$1" "$2" <<'PY'
import os, stat, struct, sys

SECTOR, DATA_MAX, FILL_MAX = 512, 4096, 0x3FFF
src, dst = sys.argv[1], sys.argv[2]
fd = os.open(src, os.O_RDONLY)
st = os.fstat(fd)
if stat.S_ISBLK(st.st_mode):
    size = os.lseek(fd, 0, os.SEEK_END)
else:
    size = st.st_size

def extents():
    """The (start, end) byte ranges that may hold data (holes skipped)."""
    pos = 0
    while pos < size:
        try:
            s = os.lseek(fd, pos, os.SEEK_DATA)
            e = os.lseek(fd, s, os.SEEK_HOLE)
        except OSError:             # no data after pos, or no SEEK_DATA
            if pos == 0 and not stat.S_ISREG(st.st_mode):
                s, e = 0, size
            else:
                return
        yield s - s % SECTOR, min(e, size)
        pos = e

out = [struct.pack("<Q", size)]
data_at, data = None, b""           # the data record being built
fill_at, fill_n, fill_v = None, 0, 0

def flush_data():
    global data_at, data
    if data_at is not None:
        d = data.rstrip(b"\0")
        out.append(struct.pack("<IH", data_at, len(d)) + d)
    data_at, data = None, b""

def flush_fill():
    global fill_at, fill_n
    if fill_at is not None:
        out.append(struct.pack("<IHB", fill_at, 0x8000 | fill_n, fill_v))
    fill_at, fill_n = None, 0

for s, e in extents():
    os.lseek(fd, s, os.SEEK_SET)
    pos = s
    while pos < e:
        buf = os.read(fd, min(e - pos, 1 << 20))
        if not buf:
            break
        for i in range(0, len(buf), SECTOR):
            sec, n = buf[i:i + SECTOR], (pos + i) // SECTOR
            if sec.count(sec[0]) == len(sec):       # one byte throughout
                if sec[0] == 0:
                    flush_data(); flush_fill()
                    continue
                flush_data()
                if (fill_at is not None and fill_v == sec[0] and
                        fill_at + fill_n == n and fill_n < FILL_MAX):
                    fill_n += 1
                else:
                    flush_fill()
                    fill_at, fill_n, fill_v = n, 1, sec[0]
                continue
            flush_fill()
            if (data_at is not None and
                    data_at * SECTOR + len(data) == n * SECTOR and
                    len(data) + len(sec) <= DATA_MAX):
                data += sec
            else:
                flush_data()
                data_at, data = n, sec
        pos += len(buf)
    flush_data(); flush_fill()
with open(dst, "wb") as f:
    f.write(b"".join(out))
PY
}

if [[ $# -eq 2 ]]; then
	convert "$1" "$2"
	exit 0
fi
if [[ $# -gt 1 ]]; then
	echo "usage: $me [DIR] | $me IMAGE SEED" >&2
	exit 2
fi
dir=${1:-$script_dir/fuzz-corpus/fsmap}
mkdir -p "$dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/$me.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A few small files of text (data that compresses in no way would only
# make the seeds bigger, and the readers do not read files).
for i in 1 2 3; do
	seq 1 $((i * 150)) >"$tmp/file$i.txt"
done

# FAT: 12, 16 and 32 bits, made to the size each wants.
for fat in 12:4 16:32 32:64; do
	bits=${fat%%:*} mib=${fat#*:}
	img=$tmp/fat$bits.img
	truncate -s "${mib}M" "$img"
	mkfs.vfat -F "$bits" -n "FAT$bits" -i 12345678 "$img" >/dev/null
	mmd -i "$img" ::/dir
	mcopy -i "$img" "$tmp/file1.txt" "$tmp/file2.txt" ::/
	mcopy -i "$img" "$tmp/file3.txt" ::/dir/
	convert "$img" "$dir/fat$bits"
done

# NTFS, 16 MiB.
img=$tmp/ntfs.img
truncate -s 16M "$img"
mkntfs -F -f -q "$img"
for i in 1 2 3; do
	ntfscp -q "$img" "$tmp/file$i.txt" "file$i.txt"
done
convert "$img" "$dir/ntfs"
# The same with $Bitmap's $DATA moved to another MFT record behind an
# $ATTRIBUTE_LIST, by the helper tests/fsmap-ntfs.sh uses.
sed -n '/^cat >"$T\/ntfs.py" <<.PY.$/,/^PY$/p' "$script_dir/fsmap-ntfs.sh" |
	sed '1d;$d' >"$tmp/ntfs.py"
python3 "$tmp/ntfs.py" list "$img" >/dev/null
convert "$img" "$dir/ntfs-list"

# exFAT, 8 MiB, as mkfs.exfat leaves it (files need a mount: exfat-fuse
# mounts block devices only): clusters of 4 KiB, and of 512 bytes with
# the bitmap packed among the FATs.
img=$tmp/exfat.img
truncate -s 8M "$img"
mkfs.exfat -L exFAT "$img" >/dev/null
convert "$img" "$dir/exfat"
rm "$img"
truncate -s 8M "$img"
mkfs.exfat -c 512 --pack-bitmap "$img" >/dev/null
convert "$img" "$dir/exfat-packed"

# XFS: 320 MiB (the least mkfs.xfs makes), populated by mkfs.xfs from a
# protofile: mounting it would write megabytes of log records.
cat >"$tmp/proto" <<EOF
seeds
0 0
d--755 0 0
file1.txt ---644 0 0 $tmp/file1.txt
file2.txt ---644 0 0 $tmp/file2.txt
dir d--755 0 0
file3.txt ---644 0 0 $tmp/file3.txt
\$
\$
EOF
img=$tmp/xfs.img
truncate -s 320M "$img"
mkfs.xfs -q -f -p "$tmp/proto" "$img"
convert "$img" "$dir/xfs"
# And a v4 one (no CRCs: its tree blocks and AGFs mutated still parse).
mkfs.xfs -q -f -m crc=0 -p "$tmp/proto" "$img" 2>/dev/null
convert "$img" "$dir/xfs-v4"

ls -l "$dir"

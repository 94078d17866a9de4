#!/bin/bash
# The NTFS map reader (src/kcopy/fs-ntfs.c) through tests/fsmap-dump, on
# volumes made by mkntfs over random bytes (clusters of 4 KiB, 512 bytes
# with MFT records across two clusters, 64 KiB, and 4096-byte sectors),
# written with ntfscp: the used ranges are exactly the clusters the
# $Bitmap marks (read by ntfscat, decoded here) plus the boot sector and
# its backup, the used bytes what ntfscluster counts, and a copy of the
# used ranges over other random bytes passes ntfsfix -n and reads every
# file back the same.  A copy without the backup boot sector fails
# ntfsfix (the check sees what it is for).  With FUSE, a file deleted
# through ntfs-3g frees its clusters.  A volume marked dirty says so;
# a short device, a torn MFT record and damaged metadata are refused,
# never a crash or a hang.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires mkntfs ntfscp ntfscat ntfsfix ntfscluster python3 cmp timeout
DUMP=$(__abspath "$top_builddir/tests/fsmap-dump")
[[ -x $DUMP ]] || fail "fsmap-dump not built ($DUMP)"

MiB=$((1024 * 1024))
SIZE=$((256 * MiB))
DIRTY="the volume is marked dirty (run chkdsk or ntfsfix)"

# Source files: large, non-resident small, resident tiny.
head -c $((5 * MiB + 12345)) /dev/urandom >"$T/big"
head -c 3000 /dev/urandom >"$T/small"
head -c 100 /dev/urandom >"$T/tiny"
FILES=(big small tiny)

# expected_map IMG: what the map must be, from IMG's boot sector and its
# $Bitmap as ntfscat reads it: fsmap-dump's output with the reason "clean".
expected_map() {
	ntfscat "$1" '$Bitmap' >"$T/bitmap" || fail "ntfscat $1 \$Bitmap"
	python3 - "$1" "$T/bitmap" <<'PY'
import struct, sys
img, bm = sys.argv[1], open(sys.argv[2], "rb").read()
with open(img, "rb") as f:
    b = f.read(512)
bps, spc = struct.unpack_from("<HB", b, 0x0B)
if spc >= 0xF4:
    spc = 1 << (256 - spc)
total = struct.unpack_from("<Q", b, 0x28)[0]
cl, clusters = bps * spc, total // spc
ranges, start = [], None
for c in range(clusters + 1):
    used = c < clusters and bm[c // 8] >> (c % 8) & 1
    if used and start is None:
        start = c
    elif not used and start is not None:
        ranges.append([start * cl, (c - start) * cl])
        start = None
if not ranges or ranges[0][0] != 0:
    ranges.insert(0, [0, bps])
ranges.append([total * bps, bps])
merged = []
for p, n in ranges:
    if merged and p <= merged[-1][0] + merged[-1][1]:
        merged[-1][1] = max(merged[-1][1], p + n - merged[-1][0])
    else:
        merged.append([p, n])
print("ntfs %d %d %d %d clean" % (cl, (total + 1) * bps,
      sum(n for _, n in merged), len(merged)))
for p, n in merged:
    print(p, n)
PY
}

# check_volume IMG NAME FILES...: the map is what it must be, its used
# bytes what ntfscluster counts, and a copy of the used ranges over
# other random bytes is a sound volume holding FILES as they are.
check_volume() {
	local img=$1 name=$2 bps vol free used fix f
	shift 2
	"$DUMP" "$img" >"$T/map" 2>"$T/map.err" ||
		fail "$name: fsmap-dump: $(cat "$T/map.err")"
	expected_map "$img" >"$T/map.want"
	diff -u "$T/map.want" "$T/map" >&2 ||
		fail "$name: the map is not the \$Bitmap's"
	# ntfscluster's count of free bytes: the rest of the clusters is
	# used, and the backup boot sector lies past the last cluster.  (Its
	# counts of sectors and clusters per volume are off; bytes are not.)
	ntfscluster -i "$img" >"$T/info" 2>&1 || fail "$name: ntfscluster -i"
	bps=$(sed -n 's/^bytes per sector *: //p' "$T/info")
	vol=$(sed -n 's/^bytes per volume *: //p' "$T/info")
	free=$(sed -n 's/^bytes of free space *: //p' "$T/info")
	used=$(awk 'NR == 1 { print $4 }' "$T/map")
	assert_eq "$used" $((vol - free + bps)) \
		"$name: used bytes against ntfscluster (+ the backup boot sector)"

	make_image "$T/dest.img" "$SIZE" random
	"$DUMP" "$img" "$T/dest.img" >/dev/null 2>"$T/map.err" ||
		fail "$name: fsmap-dump copy: $(cat "$T/map.err")"
	fix=$(ntfsfix -n "$T/dest.img" 2>&1) || fail "$name: ntfsfix -n: $fix"
	if grep -Eiq 'bad|error|corrupt|fail|mismatch' <<<"$fix" ||
	   ! grep -q 'processed successfully' <<<"$fix"; then
		fail "$name: ntfsfix -n on the copy: $fix"
	fi
	for f in "$@"; do
		ntfscat "$T/dest.img" "/$f" >"$T/back" 2>/dev/null ||
			fail "$name: ntfscat /$f of the copy"
		cmp -s "$T/$f" "$T/back" || fail "$name: /$f differs in the copy"
	done
}

# make_volume IMG MKNTFS_ARGS...: a volume over random bytes with FILES.
make_volume() {
	local img=$1 f
	shift
	make_image "$img" "$SIZE" random
	mkntfs -F -f -q "$@" "$img" >/dev/null 2>&1 || fail "mkntfs $* failed"
	for f in "${FILES[@]}"; do
		ntfscp "$img" "$T/$f" "/$f" >/dev/null 2>&1 ||
			fail "ntfscp $f to $img ($*)"
	done
}

SRC=$T/src.img
for opts in "" "-c 512" "-c 65536" "-s 4096 -c 8192"; do
	echo "== mkntfs $opts" >&2
	# shellcheck disable=SC2086
	make_volume "$SRC" $opts
	check_volume "$SRC" "mkntfs ${opts:-(default)}" "${FILES[@]}"
done

# --- The same copy without its last range, the backup boot sector:
# ntfsfix -n reports it (what copying it is for).
echo "== no backup boot sector" >&2
make_volume "$SRC"
"$DUMP" "$SRC" >"$T/map"
last=$(tail -n 1 "$T/map")
assert_eq "$last" "$((SIZE - 512)) 512" "the last range: the backup boot sector"
make_image "$T/dest.img" "$SIZE" random
# Copy all the ranges but the last (dd, in 512-byte units).
sed '1d;$d' "$T/map" | while read -r pos len; do
	dd if="$SRC" of="$T/dest.img" bs=512 skip=$((pos / 512)) \
		seek=$((pos / 512)) count=$((len / 512)) conv=notrunc status=none
done
if fix=$(ntfsfix -n "$T/dest.img" 2>&1) && ! grep -qi 'bad\|error' <<<"$fix"; then
	fail "ntfsfix -n did not notice a missing backup boot sector: $fix"
fi
echo "without it, ntfsfix -n says: $(grep -i 'bad\|error' <<<"$fix" | head -n 1)" >&2

# --- Deleting a file through ntfs-3g (FUSE) frees its clusters.
if (requires_root && [[ -c /dev/fuse ]] && command -v ntfs-3g &&
	command -v fusermount3 || command -v fusermount) >/dev/null 2>&1; then
	echo "== a file deleted through ntfs-3g" >&2
	before=$(awk 'NR == 1 { print $4 }' "$T/map")
	MNT=$(make_tmpdir)
	if ntfs-3g "$SRC" "$MNT" 2>"$T/mount.err"; then
		cleanup_add "! mountpoint -q $(printf '%q' "$MNT") || umount $(printf '%q' "$MNT") || umount -l $(printf '%q' "$MNT")"
		rm "$MNT/big"
		head -c 70000 /dev/urandom >"$T/later"
		cp "$T/later" "$MNT/later"
		umount "$MNT" || fail "cannot unmount ntfs-3g"
		check_volume "$SRC" "after a deletion" small tiny later
		after=$(awk 'NR == 1 { print $4 }' "$T/map")
		# 5 MiB freed, some 70 KB taken.
		((before - after >= 5 * MiB - 128 * 1024)) ||
			fail "deleting 5 MiB: used $before, then $after bytes"
	else
		echo "ntfs-3g mount failed, part skipped: $(cat "$T/mount.err")" >&2
	fi
fi

# --- A volume marked dirty: $Volume's $VOLUME_INFORMATION flags (record 3;
# the flags are not at a sector's end, so no fixup is in the way).
echo "== marked dirty" >&2
make_volume "$SRC"
python3 - "$SRC" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    b = f.read(512)
    bps, spc = struct.unpack_from("<HB", b, 0x0B)
    cl = bps * spc
    mft = struct.unpack_from("<Q", b, 0x30)[0]
    v = struct.unpack_from("<b", b, 0x40)[0]
    rs = v * cl if v > 0 else 1 << -v
    rec = mft * cl + 3 * rs
    f.seek(rec)
    r = f.read(rs)
    assert r[:4] == b"FILE", "no record 3"
    off = struct.unpack_from("<H", r, 0x14)[0]
    while True:
        t, n = struct.unpack_from("<II", r, off)
        assert t != 0xFFFFFFFF, "no $VOLUME_INFORMATION"
        if t == 0x70:
            break
        off += n
    flags = off + struct.unpack_from("<H", r, off + 0x14)[0] + 0x0A
    assert flags % 512 < 510, "the flags under a fixup"
    f.seek(rec + flags)
    f.write(struct.pack("<H", struct.unpack_from("<H", r, flags)[0] | 1))
PY
"$DUMP" "$SRC" >"$T/map" 2>"$T/map.err" || fail "dirty: $(cat "$T/map.err")"
assert_eq "$(head -n 1 "$T/map" | cut -d' ' -f6-)" "$DIRTY" "dirty: the reason"
ntfsfix -d "$SRC" >/dev/null 2>&1 || fail "ntfsfix -d"
"$DUMP" "$SRC" >"$T/map" || fail "cleared: fsmap-dump"
assert_eq "$(head -n 1 "$T/map" | cut -d' ' -f6)" clean "ntfsfix -d: clean again"

# refused IMG PATTERN NAME: fsmap-dump fails on IMG with PATTERN in why.
refused() {
	local st=0
	"$DUMP" "$1" >/dev/null 2>"$T/ref.err" || st=$?
	assert_eq "$st" 1 "$3: fsmap-dump's exit status ($(cat "$T/ref.err"))"
	grep -q -- "$2" "$T/ref.err" || fail "$3: not '$2': $(cat "$T/ref.err")"
}

# --- A device shorter than the volume: total sectors (0x28) named.
echo "== refused" >&2
head -c $((SIZE / 2)) "$SRC" >"$T/short.img"
refused "$T/short.img" "total sectors (0x28)" "a short device"
rm -f "$T/short.img"

# --- A torn MFT record: $Bitmap's (record 6) first sector does not end
# with its update sequence number.
read -r mft_off rec_size < <(python3 - "$SRC" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read(512)
bps, spc = struct.unpack_from("<HB", b, 0x0B)
v = struct.unpack_from("<b", b, 0x40)[0]
cl = bps * spc
print(struct.unpack_from("<Q", b, 0x30)[0] * cl, v * cl if v > 0 else 1 << -v)
PY
)
cp "$SRC" "$T/torn.img"
printf '\x55\xaa' | dd of="$T/torn.img" bs=1 seek=$((mft_off + 6 * rec_size + 510)) \
	conv=notrunc status=none
refused "$T/torn.img" "MFT record 6: sector 0 does not end with the update sequence number" \
	"a torn record"
rm -f "$T/torn.img"

# --- Damaged metadata (random bytes over the boot sector's numbers and
# the first 16 MFT records, a few at a time): a result or a refusal,
# never a crash, a sanitizer's report or a hang.
echo "== damaged metadata" >&2
python3 - "$SRC" "$DUMP" "$TEST_SEED" "$mft_off" "$rec_size" <<'PY'
import random, subprocess, sys
img, dump, seed, mft, rs = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
with open(img, "r+b") as f:
    for it in range(150):
        spots = []
        for _ in range(rnd.randint(1, 6)):
            if rnd.random() < 0.2:
                pos = rnd.randrange(0x0B, 0x48)
            else:
                pos = mft + rnd.randrange(0, 16 * rs)
            n = rnd.choice([1, 1, 2, 4, 8])
            f.seek(pos)
            spots.append((pos, f.read(n)))
            f.seek(pos)
            f.write(bytes(rnd.randrange(256) for _ in range(n)))
        f.flush()
        try:
            p = subprocess.run([dump, img], capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            sys.exit("damage %d: fsmap-dump hung (seed %d)" % (it, seed))
        err = p.stderr.decode(errors="replace")
        if p.returncode not in (0, 1, 2) or "Sanitizer" in err or \
           "runtime error" in err:
            sys.exit("damage %d: status %d: %s" % (it, p.returncode, err))
        for pos, old in reversed(spots):
            f.seek(pos)
            f.write(old)
PY
echo "ntfs map: ok"

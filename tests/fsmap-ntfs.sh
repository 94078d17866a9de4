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
# through ntfs-3g frees its clusters.  A volume marked dirty says so.
# $Bitmap's $DATA moved out to another MFT record behind an
# $ATTRIBUTE_LIST maps the same.  A short device, a torn MFT record, a
# listed record of another file and damaged metadata are refused, never
# a crash or a hang.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires mkntfs ntfscp ntfscat ntfsfix ntfscluster python3 cmp
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

# $T/ntfs.py: the test's own look at a volume (an independent reading of
# the format, for what the tools do not say).  Subcommands:
#   map IMG BITMAP  the map fsmap-dump must print, from the boot sector and
#                   BITMAP (the $Bitmap as ntfscat reads it), reason "clean"
#   dirty IMG       set VOLUME_IS_DIRTY in $Volume's $VOLUME_INFORMATION
#   list IMG [BAD]  move $Bitmap's $DATA (record 6) to a free MFT record and
#                   give record 6 an $ATTRIBUTE_LIST saying so (BAD: the
#                   new record claims to belong to record 7); prints it
#   where IMG       the $MFT's byte offset and the MFT record size
#   damage IMG DUMP SEED MFT_OFF REC_SIZE   see "damaged metadata" below
cat >"$T/ntfs.py" <<'PY'
import random, struct, subprocess, sys

class Vol:
    def __init__(self, path, mode="rb"):
        self.f = open(path, mode)
        b = self.f.read(512)
        self.bps, spc = struct.unpack_from("<HB", b, 0x0B)
        if spc >= 0xF4:
            spc = 1 << (256 - spc)
        self.cl = self.bps * spc
        self.total = struct.unpack_from("<Q", b, 0x28)[0]
        self.clusters = self.total // spc
        v = struct.unpack_from("<b", b, 0x40)[0]
        self.rs = v * self.cl if v > 0 else 1 << -v
        self.mft = struct.unpack_from("<Q", b, 0x30)[0] * self.cl

    def get(self, n):   # record n, fixups undone (in the $MFT's first run)
        self.f.seek(self.mft + n * self.rs)
        r = bytearray(self.f.read(self.rs))
        assert r[:4] == b"FILE", "no MFT record %d" % n
        uo, uc = struct.unpack_from("<HH", r, 4)
        for i in range(1, uc):
            r[i * 512 - 2:i * 512] = r[uo + 2 * i:uo + 2 * i + 2]
        return r

    def put(self, n, r):
        uo, uc = struct.unpack_from("<HH", r, 4)
        for i in range(1, uc):
            r[uo + 2 * i:uo + 2 * i + 2] = r[i * 512 - 2:i * 512]
            r[i * 512 - 2:i * 512] = r[uo:uo + 2]
        self.f.seek(self.mft + n * self.rs)
        self.f.write(r)

def attrs(r):
    off, out = struct.unpack_from("<H", r, 0x14)[0], []
    while struct.unpack_from("<I", r, off)[0] != 0xFFFFFFFF:
        n = struct.unpack_from("<I", r, off + 4)[0]
        out.append(bytes(r[off:off + n]))
        off += n
    return out

def rebuild(v, r, alist):
    off = struct.unpack_from("<H", r, 0x14)[0]
    body = b"".join(alist) + b"\xff\xff\xff\xff\0\0\0\0"
    assert off + len(body) <= v.rs - 8, "the attributes do not fit"
    r[off:] = body + bytes(v.rs - off - len(body))
    struct.pack_into("<I", r, 0x18, off + len(body))

def cmd_map(img, bitmap):
    v, bm = Vol(img), open(bitmap, "rb").read()
    ranges, start = [[0, v.bps]], None
    for c in range(v.clusters + 1):
        used = c < v.clusters and bm[c // 8] >> (c % 8) & 1
        if used and start is None:
            start = c
        elif not used and start is not None:
            ranges.append([start * v.cl, (c - start) * v.cl])
            start = None
    ranges.append([v.total * v.bps, v.bps])
    merged = []
    for p, n in sorted(ranges):
        if merged and p <= merged[-1][0] + merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], p + n - merged[-1][0])
        else:
            merged.append([p, n])
    print("ntfs %d %d %d %d clean" % (v.cl, (v.total + 1) * v.bps,
          sum(n for _, n in merged), len(merged)))
    for p, n in merged:
        print(p, n)

def cmd_dirty(img):
    v = Vol(img, "r+b")
    r = v.get(3)
    info = [a for a in attrs(r) if struct.unpack_from("<I", a)[0] == 0x70][0]
    flags = r.index(info) + struct.unpack_from("<H", info, 0x14)[0] + 0x0A
    struct.pack_into("<H", r, flags, struct.unpack_from("<H", r, flags)[0] | 1)
    v.put(3, r)

def cmd_list(img, bad=None):
    v = Vol(img, "r+b")
    base = v.get(6)
    seq6 = struct.unpack_from("<H", base, 0x10)[0]
    free = next(n for n in range(16, 64) if not v.get(n)[0x16] & 1)
    ext = v.get(free)
    seqx = struct.unpack_from("<H", ext, 0x10)[0]
    a = attrs(base)
    ext[0x16] = 1
    struct.pack_into("<Q", ext, 0x20, (7 if bad else 6) | seq6 << 48)
    rebuild(v, ext, [x for x in a if struct.unpack_from("<I", x)[0] == 0x80])
    entries = b""          # an entry for every attribute, where it is now
    for x in a:
        t, nl = struct.unpack_from("<I", x)[0], x[9]
        ref = free | seqx << 48 if t == 0x80 else 6 | seq6 << 48
        name = x[struct.unpack_from("<H", x, 10)[0]:][:2 * nl]
        e = struct.pack("<IHBBQQH", t, 0, nl, 0x1A, 0, ref,
                        struct.unpack_from("<H", x, 14)[0]) + name
        e += bytes(-len(e) % 8)
        entries += e[:4] + struct.pack("<H", len(e)) + e[6:]
    la = struct.pack("<IIBBHHHIHBB", 0x20, 0, 0, 0, 0x18, 0, 0xF0,
                     len(entries), 0x18, 0, 0) + entries
    la += bytes(-len(la) % 8)
    la = la[:4] + struct.pack("<I", len(la)) + la[8:]
    t = lambda x: struct.unpack_from("<I", x)[0]
    rebuild(v, base, [x for x in a if t(x) < 0x20] + [la] +
            [x for x in a if 0x20 < t(x) != 0x80])
    v.put(free, ext)
    v.put(6, base)
    print(free)

def cmd_where(img):
    v = Vol(img)
    print(v.mft, v.rs)

def cmd_damage(img, dump, seed, mft, rs):
    rnd, mft, rs = random.Random(int(seed)), int(mft), int(rs)
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
                p = subprocess.run([dump, img], capture_output=True,
                                   timeout=10)
            except subprocess.TimeoutExpired:
                sys.exit("damage %d: fsmap-dump hung" % it)
            err = p.stderr.decode(errors="replace")
            if p.returncode not in (0, 1, 2) or "Sanitizer" in err or \
               "runtime error" in err:
                sys.exit("damage %d: status %d: %s" % (it, p.returncode, err))
            for pos, old in reversed(spots):
                f.seek(pos)
                f.write(old)

globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
PY
ntfs() { python3 "$T/ntfs.py" "$@"; }

# expected_map IMG: the map fsmap-dump must print for IMG.
expected_map() {
	# shellcheck disable=SC2016
	ntfscat "$1" '$Bitmap' >"$T/bitmap" || fail "ntfscat $1 \$Bitmap"
	ntfs map "$1" "$T/bitmap"
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
if (requires_root && [[ -c /dev/fuse ]] && requires ntfs-3g mountpoint) \
	>/dev/null 2>&1; then
	echo "== a file deleted through ntfs-3g" >&2
	before=$("$DUMP" "$SRC" | awk 'NR == 1 { print $4 }')
	MNT=$(make_tmpdir)
	# In the foreground, so that its last writes are known to be done
	# when it exits after the unmount.
	ntfs-3g -o no_detach "$SRC" "$MNT" 2>"$T/mount.err" &
	NTFS3G=$!
	cleanup_add "! mountpoint -q $(printf '%q' "$MNT") || umount $(printf '%q' "$MNT") || umount -l $(printf '%q' "$MNT"); wait $NTFS3G"
	if wait_for 10 mountpoint -q "$MNT"; then
		rm "$MNT/big"
		head -c 70000 /dev/urandom >"$T/later"
		cp "$T/later" "$MNT/later"
		umount "$MNT" || fail "cannot unmount ntfs-3g"
		wait "$NTFS3G" || fail "ntfs-3g: $(cat "$T/mount.err")"
		check_volume "$SRC" "after a deletion" small tiny later
		after=$(awk 'NR == 1 { print $4 }' "$T/map")
		# 5 MiB freed, some 70 KB taken.
		((before - after >= 5 * MiB - 128 * 1024)) ||
			fail "deleting 5 MiB: used $before, then $after bytes"
	else
		kill "$NTFS3G" 2>/dev/null || true
		echo "ntfs-3g mount failed, part skipped: $(cat "$T/mount.err")" >&2
	fi
fi

# --- A volume marked dirty: $Volume's $VOLUME_INFORMATION flags (record 3;
# the flags are not at a sector's end, so no fixup is in the way).
echo "== marked dirty" >&2
make_volume "$SRC"
ntfs dirty "$SRC"
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
read -r mft_off rec_size < <(ntfs where "$SRC")
cp "$SRC" "$T/torn.img"
printf '\x55\xaa' | dd of="$T/torn.img" bs=1 seek=$((mft_off + 6 * rec_size + 510)) \
	conv=notrunc status=none
refused "$T/torn.img" "MFT record 6: sector 0 does not end with the update sequence number" \
	"a torn record"
rm -f "$T/torn.img"

# --- $Bitmap's $DATA moved to another MFT record, which record 6's
# $ATTRIBUTE_LIST names: the same map (ntfs-3g reads it so too), and
# refused where that record claims to belong to another file.
echo "== an attribute list" >&2
"$DUMP" "$SRC" >"$T/map.flat" || fail "before the list: fsmap-dump"
cp "$SRC" "$T/bad-list.img"
ntfs list "$SRC" >/dev/null || fail "cannot give \$Bitmap an attribute list"
check_volume "$SRC" "an attribute list" "${FILES[@]}"
cmp -s "$T/map.flat" "$T/map" || fail "an attribute list: another map"
ext=$(ntfs list "$T/bad-list.img" 7) || fail "cannot make a bad attribute list"
refused "$T/bad-list.img" "MFT record $ext belongs to record 7, not 6" \
	"a record of another file in the list"
rm -f "$T/bad-list.img"

# --- Damaged metadata (random bytes over the boot sector's numbers and
# the first 16 MFT records, a few at a time): a result or a refusal,
# never a crash, a sanitizer's report or a hang.
echo "== damaged metadata" >&2
ntfs damage "$SRC" "$DUMP" "$TEST_SEED" "$mft_off" "$rec_size" ||
	fail "damaged metadata (seed $TEST_SEED)"
echo "ntfs map: ok"

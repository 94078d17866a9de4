#!/bin/bash
# kcopy --bmap end to end: a 64 MiB sparse image with about 10% data in
# scattered extents (unaligned ones, allocated zeros, its last bytes), its
# bmap made by bmaptool create.  Flashed through a loop device over the
# image to two loop devices that hold random bytes (one with 4096-byte
# sectors): both equal the image byte for byte (bmaptool copy would leave
# their old bytes where the image is a hole), the source device's own
# counters (/sys/block/DEV/stat) show that about the mapped bytes were
# read, and --hash is the image's sha256sum.  To new files, with the bmap
# found beside the image (image.img + image.bmap, also for image.img.raw):
# equal and sparse; --no-bmap ignores it (-v and the report say so).
# Refusals, each with the destination unchanged: a range's checksum
# edited with the file's own checksum fixed (a read error naming the
# range) or not (a setup error naming the file); the bmap of an image of
# another size; XML that is not well-formed (the line); --bmap with a
# stream source, with --used, with --mapfile, with --no-bmap.  --dry-run
# and the report name the bmap and its mapped bytes.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires bmaptool jq cmp python3 sha256sum
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

MiB=$((1024 * 1024))
SIZE=$((64 * MiB))
IMG=$T/image.img
BMAP=$T/image.bmap

# The image: holes, and data where put writes it (random bytes; zeros
# with "zero", which bmaptool maps all the same: they are allocated).
: >"$IMG"
truncate -s "$SIZE" "$IMG"
put() {
	local src=/dev/urandom
	[[ ${3:-} == zero ]] && src=/dev/zero
	head -c "$2" $src | dd of="$IMG" bs=64K seek="$1" oflag=seek_bytes \
		conv=notrunc status=none || fail "cannot write the image at $1"
}
for i in $(seq 0 5 59); do
	put $((i * MiB + i * 1000)) $((500 * 1024))	# unaligned, 10 of them
done
put 0 4096					# the first block
put $((7 * MiB)) $((64 * 1024)) zero		# allocated zeros
put $((40 * MiB + 4095)) 2			# across a block boundary
put $((SIZE - 3000)) 3000			# the last bytes
sync "$IMG"
bmaptool create -o "$BMAP" "$IMG" >/dev/null 2>"$T/bmaptool.log" ||
	fail "bmaptool create: $(cat "$T/bmaptool.log")"
MAPPED=$(python3 - "$BMAP" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
bs = int(re.search(r"<BlockSize>\s*(\d+)", s).group(1))
size = int(re.search(r"<ImageSize>\s*(\d+)", s).group(1))
n = 0
for r in re.findall(r"<Range[^>]*>\s*([\d -]+?)\s*</Range>", s):
    a, _, b = r.partition("-")
    a, b = int(a), int(b or a)
    n += min((b + 1) * bs, size) - a * bs
print(n)
PY
) || fail "cannot read the bmap"
((MAPPED > 5 * MiB && MAPPED < 9 * MiB)) ||
	fail "the image maps $MAPPED bytes: expected about 10% of it"
IMG_SUM=$(sha256sum <"$IMG" | cut -d' ' -f1)

# sectors_read DEV: what the block layer counts as read from DEV.
sectors_read() {
	awk '{ print $3 }' "/sys/block/${1#/dev/}/stat"
}
# unchanged FILE SUM WHAT: FILE's sha256 is still SUM.
unchanged() {
	assert_eq "$(sha256sum <"$1" | cut -d' ' -f1)" "$2" "$3: the destination changed"
}

# --- to two loop devices holding random bytes, through a loop device
make_image "$T/d1.img" "$SIZE" random
make_image "$T/d2.img" "$SIZE" random
SRC=$(make_loop "$IMG")
D1=$(make_loop "$T/d1.img")
D2=$(make_loop "$T/d2.img" -b 4096)
before=$(sectors_read "$SRC")
kcopy_expect ok --bmap "$BMAP" --hash sha256 --report "$T/r.json" \
	"$SRC" "$D1" "$D2"
after=$(sectors_read "$SRC")
read=$(((after - before) * 512))
((read >= MAPPED && read <= MAPPED + MAPPED / 10 + 256 * 1024)) ||
	fail "read $read bytes of the source for $MAPPED mapped bytes"
cmp "$D1" "$IMG" || fail "destination 1 differs from the image"
cmp "$D2" "$IMG" || fail "destination 2 (4096-byte sectors) differs from the image"
assert_eq "$(report_value "$T/r.json" .hashes.sha256)" \
	"$IMG_SUM" "--hash with --bmap"
assert_eq "$(report_value "$T/r.json" .bmap.file)" "$BMAP" "report: bmap file"
assert_eq "$(report_value "$T/r.json" .bmap.bytes_mapped)" "$MAPPED" "report: mapped bytes"
assert_eq "$(report_value "$T/r.json" .bmap.image_bytes)" "$SIZE" "report: image bytes"
assert_eq "$(report_value "$T/r.json" .bmap.beside_image)" false "report: beside"

# --- to new files: the bmap beside the image is found; sparse
kcopy_expect ok -v "$IMG" "$T/new1.img" "$T/new2.img"
grep -q "using the bmap '$BMAP' beside it" "$ERR_FILE" ||
	fail "-v does not say the bmap beside the image is used"
for f in new1 new2; do
	cmp "$T/$f.img" "$IMG" || fail "$f.img differs from the image"
	alloc=$(($(stat -c %b "$T/$f.img") * 512))
	((alloc <= MAPPED + MAPPED / 20 + 65536)) ||
		fail "$f.img: $alloc bytes allocated for $MAPPED mapped bytes"
done
# as bmaptool looks: image.img.raw -> image.img.raw.bmap, image.img.bmap,
# image.bmap
ln "$IMG" "$T/image.img.raw"
kcopy_expect ok -v --report "$T/raw.json" "$T/image.img.raw" "$T/new3.img"
assert_eq "$(report_value "$T/raw.json" .bmap.file)" "$BMAP" "the bmap beside image.img.raw"
assert_eq "$(report_value "$T/raw.json" .bmap.beside_image)" true "report: beside"
cmp "$T/new3.img" "$IMG" || fail "new3.img differs from the image"

# --- --no-bmap: not used
kcopy_expect ok -v --no-bmap --report "$T/nob.json" "$IMG" "$T/new4.img"
grep -q -- "--no-bmap: not using '$BMAP'" "$ERR_FILE" ||
	fail "--no-bmap: -v does not say the bmap beside the image is left"
! grep -q "using the bmap" "$ERR_FILE" || fail "--no-bmap: the bmap was used"
assert_eq "$(report_value "$T/nob.json" .bmap)" null "--no-bmap: the report names a bmap"
cmp "$T/new4.img" "$IMG" || fail "--no-bmap: new4.img differs from the image"

# --- --dry-run names the bmap and what it maps
run_kcopy --dry-run --bmap "$BMAP" "$IMG" "$D1" >"$T/plan"
assert_eq "$ST" 0 "--dry-run"
grep -q "bmap *$BMAP, format 2.0" "$T/plan" || fail "--dry-run: no bmap line: $(cat "$T/plan")"
grep -q "image *$SIZE bytes .*, $MAPPED bytes .* mapped" "$T/plan" ||
	fail "--dry-run: no mapped bytes: $(cat "$T/plan")"

# edit_bmap OUT FIX_FILE_SUM: the bmap with its third range's checksum
# changed, and its own checksum made right again (1) or not (0); prints
# the range ("FIRST-LAST").
edit_bmap() {
	python3 - "$BMAP" "$1" "$2" <<'PY'
import hashlib, re, sys
s = open(sys.argv[1]).read()
m = list(re.finditer(r'chksum="(\w+)">\s*([\d-]+)\s*<', s))[2]
old = m.group(1)
new = ("1" if old[0] == "0" else "0") + old[1:]
s = s[:m.start(1)] + new + s[m.end(1):]
if sys.argv[3] == "1":
    fs = re.search(r"<BmapFileChecksum>\s*(\w+)\s*<", s).group(1)
    z = s.replace(fs, "0" * len(fs), 1)
    s = s.replace(fs, hashlib.sha256(z.encode()).hexdigest(), 1)
open(sys.argv[2], "w").write(s)
print(m.group(2))
PY
}
make_image "$T/d3.img" $SIZE random
D3=$(make_loop "$T/d3.img")
D3_SUM=$(sha256sum <"$D3" | cut -d' ' -f1)

# --- a range's checksum wrong, the file's own right: a read error
range=$(edit_bmap "$T/bad-range.bmap" 1) || fail "cannot edit the bmap"
kcopy_expect read --bmap "$T/bad-range.bmap" "$IMG" "$D1"
grep -q "range $range (line [0-9]*; bytes [0-9]* to [0-9]* of the image) does not match its sha256 checksum" \
	"$ERR_FILE" || fail "the mismatch does not name range $range"

# --- the file's own checksum wrong: a setup error naming the file
edit_bmap "$T/bad-file.bmap" 0 >/dev/null || fail "cannot edit the bmap"
kcopy_expect setup --bmap "$T/bad-file.bmap" "$IMG" "$D3"
grep -q "bmap '$T/bad-file.bmap': line [0-9]*: the file's own checksum" \
	"$ERR_FILE" || fail "a wrong BmapFileChecksum is not said"
unchanged "$D3" "$D3_SUM" "a wrong BmapFileChecksum"

# --- the bmap of an image of another size
head -c $((32 * MiB)) "$IMG" >"$T/half.img"
bmaptool create -o "$T/half.bmap" "$T/half.img" >/dev/null 2>&1 ||
	fail "bmaptool create (half)"
kcopy_expect setup --bmap "$T/half.bmap" "$IMG" "$D3"
grep -q "it maps an image of $((32 * MiB)) bytes; the source '$IMG' is $SIZE bytes" \
	"$ERR_FILE" || fail "the bmap of another size is not said"
unchanged "$D3" "$D3_SUM" "the bmap of another size"

# --- not well-formed XML: the line
sed '0,/<\/BlockSize>/s//<\/BlockSiz>/' "$BMAP" >"$T/bad.bmap"
line=$(grep -n '</BlockSiz>' "$T/bad.bmap" | cut -d: -f1)
kcopy_expect setup --bmap "$T/bad.bmap" "$IMG" "$D3"
grep -q "bmap '$T/bad.bmap': line $line: not well-formed XML" "$ERR_FILE" ||
	fail "malformed XML: the line ($line) is not named"
unchanged "$D3" "$D3_SUM" "malformed XML"

# --- refusals of the command line
kcopy_expect setup --bmap "$BMAP" - "$D3" </dev/null
grep -q "source '-' (standard input) is a stream" "$ERR_FILE" ||
	fail "--bmap with a stream is not refused"
kcopy_expect setup --bmap "$BMAP" --no-bmap "$IMG" "$D3"
kcopy_expect setup --bmap "$BMAP" --mapfile "$T/m.map" "$IMG" "$D3"
kcopy_expect setup --bmap "$BMAP" --used "$IMG" "$D3"
unchanged "$D3" "$D3_SUM" "the refusals"
[[ ! -e $T/m.map ]] || fail "--bmap --mapfile made a mapfile"

exit 0

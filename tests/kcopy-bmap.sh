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
# another size; XML that is not well-formed (the line); --bmap with
# --used, with --mapfile, with --no-bmap (tests/kcopy-flash.sh: with a
# compressed or piped image).  --dry-run
# and the report name the bmap and its mapped bytes.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions-bmap.sh"
bmap_test_setup

# sectors_read DEV: what the block layer counts as read from DEV.
sectors_read() {
	awk '{ print $3 }' "/sys/block/${1#/dev/}/stat"
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
	alloc=$(allocated "$T/$f.img")
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

# --- a bmap older than its image: the image's data outside the bmap's
# ranges (written into a hole after bmaptool create) is copied, not
# zeroed, and kcopy says so
cp --sparse=always "$IMG" "$T/stale.img"
cp "$BMAP" "$T/stale.img.bmap"
printf 'data the bmap does not know' |
	dd of="$T/stale.img" bs=1 seek=$((3 * 1024 * 1024 + 100)) conv=notrunc status=none
kcopy_expect ok "$T/stale.img" "$T/new5.img"
cmp "$T/new5.img" "$T/stale.img" ||
	fail "a stale bmap: the image's data outside its ranges was not copied"
grep -q "has data outside the bmap's ranges" "$ERR_FILE" ||
	fail "a stale bmap: kcopy did not say so: $(cat "$ERR_FILE")"

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

make_image "$T/d3.img" $SIZE random
D3=$(make_loop "$T/d3.img")
D3_SUM=$(sha256sum <"$D3" | cut -d' ' -f1)

# --- a range's checksum wrong, the file's own right: a read error
expect_bad_range "$IMG" "$D1"

# --- the file's own checksum wrong: a setup error naming the file
edit_bmap "$BMAP" "$T/bad-file.bmap" 0 >/dev/null || fail "cannot edit the bmap"
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
kcopy_expect setup --bmap "$BMAP" --no-bmap "$IMG" "$D3"
kcopy_expect setup --bmap "$BMAP" --mapfile "$T/m.map" "$IMG" "$D3"
kcopy_expect setup --bmap "$BMAP" --used "$IMG" "$D3"
unchanged "$D3" "$D3_SUM" "the refusals"
[[ ! -e $T/m.map ]] || fail "--bmap --mapfile made a mapfile"

exit 0

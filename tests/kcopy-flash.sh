#!/bin/bash
# kcopy --bmap with a compressed or piped image (kcopy(1), "Flashing
# images"): the 64 MiB image of tests/kcopy-bmap.sh (about 10% data) and
# its bmap by bmaptool create, compressed with xz (-T2, several blocks),
# zstd, gzip and bzip2.  Flashed from each file to two loop devices that hold random bytes
# (one with 4096-byte sectors) and to a new file: all equal to the image
# byte for byte, the new file sparse (at most 1.2x the mapped bytes
# allocated), --hash the image's sha256, the report naming the bmap.  The
# bmap found beside image.img.xz (as image.img.bmap), and left with
# --no-bmap.  From pipes (xzcat, and the compressed bytes through cat),
# equal and sparse.  A range's checksum wrong: a read error naming the
# range, nothing of the destination past it written.  The bmap of another
# size: before anything is written a setup error naming both sizes (the xz
# index tells the image's), a read error from a pipe whose image goes on
# past it, or one that ends short of it; from a pipe, a destination
# smaller than the bmap's image refused.  A source region refused.
# --dry-run names the format and the bmap.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions-bmap.sh"
bmap_test_setup xz zstd gzip bzip2
xz -k -T2 --block-size=4MiB "$IMG" || fail "xz"
xz -l "$IMG.xz" | awk 'NR == 2 { exit !($2 > 1) }' ||
	fail "xz -l: not several blocks: $(xz -l "$IMG.xz")"
zstd -q -k "$IMG" || fail "zstd"
gzip -k "$IMG" || fail "gzip"
bzip2 -k "$IMG" || fail "bzip2"

# sparse FILE: FILE allocates at most 1.2x the bmap's mapped bytes.
sparse() {
	local alloc
	alloc=$(allocated "$1")
	((alloc * 5 <= MAPPED * 6)) ||
		fail "$1: $alloc bytes allocated for $MAPPED mapped bytes"
}
# from CMD TEST...: run TEST (kcopy_expect..., expect_bad_range...) with
# kcopy's standard input the output of the shell command CMD (run_kcopy's watchdog runs it
# in the background, where standard input would be /dev/null).
cat >"$T/from" <<'EOS'
#!/bin/sh
sh -c "$FROM_CMD" | "$FROM_KCOPY" "$@"
EOS
chmod +x "$T/from"
from() {
	local cmd=$1
	shift
	FROM_CMD=$cmd FROM_KCOPY=$KCOPY KCOPY=$T/from "$@"
}

# --- from each compressed file to two loop devices of random bytes and a
# new file
make_image "$T/d1.img" "$SIZE" random
make_image "$T/d2.img" "$SIZE" random
D1=$(make_loop "$T/d1.img")
D2=$(make_loop "$T/d2.img" -b 4096)
for f in image.img.xz image.img.zst image.img.gz image.img.bz2; do
	head -c "$SIZE" /dev/urandom >"$D1"
	head -c "$SIZE" /dev/urandom >"$D2"
	rm -f "$T/new.img"
	kcopy_expect ok --bmap "$BMAP" --hash sha256 --report "$T/r.json" \
		"$T/$f" "$D1" "$D2" "$T/new.img"
	cmp "$D1" "$IMG" || fail "$f: destination 1 differs from the image"
	cmp "$D2" "$IMG" || fail "$f: destination 2 (4096-byte sectors) differs from the image"
	cmp "$T/new.img" "$IMG" || fail "$f: the new file differs from the image"
	sparse "$T/new.img"
	assert_eq "$(report_value "$T/r.json" .hashes.sha256)" "$IMG_SUM" "$f: --hash"
	assert_eq "$(report_value "$T/r.json" .bmap.file)" "$BMAP" "$f: report: bmap file"
	assert_eq "$(report_value "$T/r.json" .bmap.bytes_mapped)" "$MAPPED" "$f: report: mapped bytes"
	assert_eq "$(report_value "$T/r.json" .bmap.image_bytes)" "$SIZE" "$f: report: image bytes"
	assert_eq "$(report_value "$T/r.json" .source.image.bytes_decompressed)" "$SIZE" "$f: report: decompressed"
done

# --- the bmap beside image.img.xz, as bmaptool finds it; --no-bmap
mkdir "$T/beside"
ln "$IMG.xz" "$T/beside/image.img.xz"
cp "$BMAP" "$T/beside/image.img.bmap"
kcopy_expect ok -v --report "$T/b.json" "$T/beside/image.img.xz" "$T/b.img"
grep -q "using the bmap '$T/beside/image.img.bmap' beside it" "$ERR_FILE" ||
	fail "-v does not say the bmap beside image.img.xz is used"
assert_eq "$(report_value "$T/b.json" .bmap.beside_image)" true "beside: report"
cmp "$T/b.img" "$IMG" || fail "beside: the copy differs from the image"
sparse "$T/b.img"
kcopy_expect ok -v --no-bmap --report "$T/nob.json" "$T/beside/image.img.xz" "$T/nob.img"
grep -q -- "--no-bmap: not using '$T/beside/image.img.bmap'" "$ERR_FILE" ||
	fail "--no-bmap: -v does not say the bmap beside the image is left"
assert_eq "$(report_value "$T/nob.json" .bmap)" null "--no-bmap: the report names a bmap"
cmp "$T/nob.img" "$IMG" || fail "--no-bmap: the copy differs from the image"

# --- from pipes: decompressed by xzcat, and compressed
from "xzcat '$IMG.xz'" kcopy_expect ok --bmap "$BMAP" --report "$T/p.json" - "$T/p1.img"
cmp "$T/p1.img" "$IMG" || fail "xzcat | kcopy: the copy differs from the image"
sparse "$T/p1.img"
assert_eq "$(report_value "$T/p.json" .bmap.bytes_mapped)" "$MAPPED" "pipe: report: mapped bytes"
from "cat '$IMG.xz'" kcopy_expect ok --bmap "$BMAP" - "$T/p2.img"
cmp "$T/p2.img" "$IMG" || fail "cat image.img.xz | kcopy: the copy differs from the image"
sparse "$T/p2.img"

# --- a range's checksum wrong: a read error naming it, and the
# destination past it as it was
make_image "$T/d3.img" "$SIZE" random
cp "$T/d3.img" "$T/d3.orig"
D3=$(make_loop "$T/d3.img")
D3_SUM=$(sha256sum <"$D3" | cut -d' ' -f1)
expect_bad_range "$T/image.img.xz" "$D3"
cmp <(tail -c +$((BAD_END + 2)) "$D3") <(tail -c +$((BAD_END + 2)) "$T/d3.orig") ||
	fail "bytes past the bad range (it ends at $BAD_END) were written"
from "cat '$IMG.xz'" expect_bad_range - "$T/bad.img"

# --- the bmap of an image of another size
cp --sparse=always "$IMG" "$T/half.img"
truncate -s $((32 * MiB)) "$T/half.img"
bmaptool create -o "$T/half.bmap" "$T/half.img" >/dev/null 2>&1 ||
	fail "bmaptool create (half)"
head -c "$SIZE" /dev/urandom >"$D3"
D3_SUM=$(sha256sum <"$D3" | cut -d' ' -f1)
kcopy_expect setup --bmap "$T/half.bmap" "$T/image.img.xz" "$D3"
grep -q "it maps an image of $((32 * MiB)) bytes; the xz image '$T/image.img.xz' is $SIZE bytes" \
	"$ERR_FILE" || fail "the bmap of another size is not said"
unchanged "$D3" "$D3_SUM" "the bmap of another size"
# from a pipe the size shows at the end
from "xzcat '$IMG.xz'" kcopy_expect read --bmap "$T/half.bmap" - "$T/long.img"
grep -q "the image goes on past the bmap's $((32 * MiB)) bytes" "$ERR_FILE" ||
	fail "an image longer than the bmap's is not said"
from "head -c $((32 * MiB)) '$IMG'" kcopy_expect read --bmap "$BMAP" - "$T/short.img"
grep -q "the image ended after $((32 * MiB)) bytes, the bmap maps $SIZE" \
	"$ERR_FILE" || fail "an image shorter than the bmap's is not said"

# --- a region of the image: refused
kcopy_expect setup --bmap "$BMAP" "$T/image.img.xz:0:1M" "$D3"
grep -q "a bmap maps the whole image" "$ERR_FILE" || fail "a region with a bmap is not refused"
# from a pipe the bmap tells the image's size, before anything is written
from "cat '$IMG'" kcopy_expect setup --bmap "$BMAP" - "$D3:0:1000"
grep -q "region of 1000 sectors is smaller than the raw image ($SIZE bytes, .*as its bmap says)" \
	"$ERR_FILE" || fail "a destination smaller than the bmap's image is not said"
unchanged "$D3" "$D3_SUM" "the refusals"

# --- --dry-run: the format, the sizes, the bmap
run_kcopy --dry-run --bmap "$BMAP" "$T/image.img.xz" "$D1" >"$T/plan"
assert_eq "$ST" 0 "--dry-run"
grep -q "image *xz, $(stat -c %s "$IMG.xz") bytes .* compressed, $SIZE bytes" "$T/plan" ||
	fail "--dry-run: no image line: $(cat "$T/plan")"
grep -q "bmap *$BMAP, format 2.0" "$T/plan" || fail "--dry-run: no bmap line: $(cat "$T/plan")"
grep -q "image *$SIZE bytes .*, $MAPPED bytes .* mapped .*all of the image decoded" "$T/plan" ||
	fail "--dry-run: no mapped bytes: $(cat "$T/plan")"

exit 0

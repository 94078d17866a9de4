# functions-bmap.sh - the image and bmap the --bmap tests flash.   -*- sh -*-
# Sourced after functions.sh:
#   . "${top_srcdir:-$(dirname "$0")/..}/tests/functions-bmap.sh"

# bmap_test_setup [PROGRAM...]: what a --bmap test needs (root, loop
# devices, bmaptool..., and the PROGRAMs), and IMG ($T/image.img) and BMAP
# ($T/image.bmap) made by make_bmap_image.  Sets MiB too.
bmap_test_setup() {
	requires_root
	requires_loop
	requires bmaptool jq cmp python3 sha256sum "$@"
	[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"
	MiB=$((1024 * 1024))
	IMG=$T/image.img
	BMAP=$T/image.bmap
	make_bmap_image "$IMG" "$BMAP"
}

# make_bmap_image IMAGE BMAP: IMAGE, 64 MiB, sparse with about 10% data in
# scattered extents (unaligned ones, allocated zeros, one across a block
# boundary, its last bytes), and BMAP its bmap by bmaptool create.  Sets
# SIZE (the image's bytes), MAPPED (the bytes the bmap maps) and IMG_SUM
# (the image's sha256).
make_bmap_image() {
	local img=$1 bmap=$2 i MiB=$((1024 * 1024))
	SIZE=$((64 * MiB))
	: >"$img"
	truncate -s "$SIZE" "$img"
	for i in $(seq 0 5 59); do		# unaligned, 12 of them
		__bmap_put "$img" $((i * MiB + i * 1000)) $((500 * 1024))
	done
	__bmap_put "$img" 0 4096			# the first block
	__bmap_put "$img" $((7 * MiB)) $((64 * 1024)) zero	# allocated zeros
	__bmap_put "$img" $((40 * MiB + 4095)) 2	# across a block boundary
	__bmap_put "$img" $((SIZE - 3000)) 3000		# the last bytes
	sync "$img"
	bmaptool create -o "$bmap" "$img" >/dev/null 2>"$T/bmaptool.log" ||
		fail "bmaptool create: $(cat "$T/bmaptool.log")"
	MAPPED=$(bmap_mapped "$bmap") || fail "cannot read the bmap"
	((MAPPED > 5 * MiB && MAPPED < 9 * MiB)) ||
		fail "the image maps $MAPPED bytes: expected about 10% of it"
	IMG_SUM=$(sha256sum <"$img" | cut -d' ' -f1)
}

# __bmap_put IMAGE OFFSET LEN [zero]: LEN random bytes (zeros with
# "zero", which bmaptool maps all the same: they are allocated) at OFFSET.
__bmap_put() {
	local src=/dev/urandom
	[[ ${4:-} == zero ]] && src=/dev/zero
	head -c "$3" $src | dd of="$1" bs=64K seek="$2" oflag=seek_bytes \
		conv=notrunc status=none || fail "cannot write the image at $2"
}

# bmap_mapped BMAP: the bytes of the image BMAP's ranges map.
bmap_mapped() {
	python3 - "$1" <<'PY'
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
}

# edit_bmap BMAP OUT FIX_FILE_SUM: OUT, BMAP with its third range's
# checksum changed, and its own checksum made right again (1) or not (0);
# prints the range ("FIRST-LAST").
edit_bmap() {
	python3 - "$1" "$2" "$3" <<'PY'
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

# expect_bad_range KCOPY-ARGS...: kcopy_expect read --bmap BAD KCOPY-ARGS,
# BAD being $BMAP with a range's checksum wrong (its own right): the
# error names the range.  Sets BAD_END, the range's last byte.
expect_bad_range() {
	local range
	range=$(edit_bmap "$BMAP" "$T/bad-range.bmap" 1) ||
		fail "cannot edit the bmap"
	kcopy_expect read --bmap "$T/bad-range.bmap" "$@"
	BAD_END=$(sed -n "s/.*range $range (line [0-9]*; bytes [0-9]* to \([0-9]*\) of the image) does not match its sha256 checksum.*/\1/p" \
		"$ERR_FILE" | head -n1)
	[[ $BAD_END ]] || fail "kcopy $*: the mismatch does not name range $range"
}

# unchanged FILE SUM WHAT: FILE's sha256 is still SUM.
unchanged() {
	assert_eq "$(sha256sum <"$1" | cut -d' ' -f1)" "$2" "$3: the destination changed"
}

# allocated FILE: the bytes FILE has allocated.
allocated() {
	echo $(($(stat -c %b "$1") * 512))
}

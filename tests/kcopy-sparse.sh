#!/bin/bash
# Sparse and zero-aware copies: a 1 GiB sparse image (data in the first and
# last sectors, across sub-job boundaries, unaligned, long and short)
# copied to a new file (it stays sparse), over old random bytes in a file
# (it becomes sparse), on a loop device and on a 4096-byte-sector loop
# device; zero detection in a file with no holes; --allocated,
# --destination-is-zero, --no-zero-detect; a region that starts and ends
# inside holes; an NBD export, zeroed with WRITE_ZEROES; the image as an NBD
# source, whose block status is its map.  Content is always
# compared byte for byte.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires jq cmp stat
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

GiB=$((1024 * 1024 * 1024))
SRC=$T/sparse.img
: >"$SRC"
truncate -s $GiB "$SRC"
# put SECTOR COUNT: random data there (sub-jobs are 512 KiB: 1024 sectors).
put() {
	dd if=/dev/urandom of="$SRC" bs=512 seek="$1" count="$2" conv=notrunc \
		status=none || fail "cannot write the source at sector $1"
}
put 0 1					# the first sector
put 1023 3				# across the first sub-job boundary
put 16384 2048				# 1 MiB at 8 MiB, aligned
put 131075 200				# 100 KiB, unaligned
put 614401 10240			# 5 MiB at 300 MiB + 512, many sub-jobs
put 1433596 8				# 4 KiB across a 4 KiB boundary
put $((GiB / 512 - 1)) 1		# the last sector
sync "$SRC"
alloc() { echo $(($(stat -c %b "$1") * 512)); }
DATA=$(alloc "$SRC")
((DATA < 32 * 1024 * 1024)) || skip "the file system does not keep holes"
# Within a few percent of the data (and a few blocks of metadata).
sparse_enough() {
	local got
	got=$(alloc "$1")
	((got <= DATA + DATA / 20 + 65536)) ||
		fail "$2: $got bytes allocated for $DATA bytes of data"
}

# --dry-run shows the source's map.  (That it creates nothing is
# kcopy-options.sh's to check.)
kcopy_expect ok --dry-run "$SRC" "$T/none.img" >"$T/plan.txt"
grep -q "map.* bytes holes" "$T/plan.txt" || fail "--dry-run: no map of the source"

# --- To a new file: it stays sparse, the data hook (--verify) sees all.
run_kcopy --verify --report "$T/new.json" "$SRC" "$T/new.img"
assert_eq "$ST" 0 "to a new file"
cmp "$SRC" "$T/new.img" || fail "new file differs"
sparse_enough "$T/new.img" "new file"
assert_eq "$(report_value "$T/new.json" bytes_zeroed)" 0 "new file: zeroed"
read_bytes=$(report_value "$T/new.json" bytes_read)
((read_bytes <= DATA + 1024 * 1024)) || fail "new file: read $read_bytes bytes"
(($(report_value "$T/new.json" bytes_skipped) > GiB - DATA - 2 * 1024 * 1024)) ||
	fail "new file: skipped $(report_value "$T/new.json" bytes_skipped)"
assert_eq "$(report_value "$T/new.json" bytes)" $GiB "new file: bytes"

# Old random bytes, shared by the next destinations.
OLD=$T/old.img
make_image "$OLD" $GiB random

# --- Over a file full of random bytes: holes punched, it becomes sparse.
cp "$OLD" "$T/over.img"
run_kcopy --report "$T/over.json" "$SRC" "$T/over.img"
assert_eq "$ST" 0 "over a file"
cmp "$SRC" "$T/over.img" || fail "file over old data differs"
sparse_enough "$T/over.img" "file over old data"
(($(report_value "$T/over.json" bytes_zeroed) > GiB - DATA - 2 * 1024 * 1024)) ||
	fail "file over old data: zeroed $(report_value "$T/over.json" bytes_zeroed)"
rm -f "$T/over.img"

# --- --allocated: every byte written, the file fully allocated.
run_kcopy --allocated --report "$T/alloc.json" "$SRC" "$T/alloc.img"
assert_eq "$ST" 0 "--allocated"
cmp "$SRC" "$T/alloc.img" || fail "--allocated: differs"
(($(alloc "$T/alloc.img") >= GiB)) ||
	fail "--allocated: only $(alloc "$T/alloc.img") bytes allocated"
assert_eq "$(report_value "$T/alloc.json" bytes_written)" $GiB "--allocated: written"
rm -f "$T/alloc.img"

if (requires_loop) >/dev/null 2>&1; then
	# --- A loop device full of random bytes (BLKZEROOUT), and one with
	# 4096-byte sectors, both destinations of one run.
	cp "$OLD" "$T/loop.img"
	cp "$OLD" "$T/loop4k.img"
	L=$(make_loop "$T/loop.img")
	L4=$(make_loop "$T/loop4k.img" -b 4096)
	run_kcopy --report "$T/loop.json" "$SRC" "$L" "$L4"
	assert_eq "$ST" 0 "to loop devices"
	SRC_SUM=$(sum "$SRC")
	assert_eq "$(sum "$L")" "$SRC_SUM" "loop device: content"
	assert_eq "$(sum "$L4")" "$SRC_SUM" "4096-byte-sector loop device: content"
	(($(report_value "$T/loop.json" bytes_zeroed) > 2 * (GiB - DATA) - 4194304)) ||
		fail "loop devices: zeroed $(report_value "$T/loop.json" bytes_zeroed)"

	# --- --destination-is-zero on a zeroed device: zero ranges left
	# alone, so the device's sparse backing file gets the data only.
	make_image "$T/zero.img" $GiB zero
	LZ=$(make_loop "$T/zero.img")
	run_kcopy --destination-is-zero --report "$T/diz.json" "$SRC" "$LZ"
	assert_eq "$ST" 0 "--destination-is-zero"
	assert_eq "$(sum "$LZ")" "$SRC_SUM" "--destination-is-zero: content"
	assert_eq "$(report_value "$T/diz.json" bytes_zeroed)" 0 \
		"--destination-is-zero: zeroed"
	(($(report_value "$T/diz.json" bytes_skipped) > GiB - DATA - 2 * 1024 * 1024)) ||
		fail "--destination-is-zero: skipped $(report_value "$T/diz.json" bytes_skipped)"
	sync "$T/zero.img"
	sparse_enough "$T/zero.img" "--destination-is-zero's backing file"
fi

# --- A region that starts and ends inside holes (sectors 1000-300000 and
# 2000-300999 of the image), over old data, and to a new file.
head -c $((400000 * 512)) "$OLD" >"$T/part.img"
run_kcopy "$SRC:1000:299000" "$T/part.img:2000"
assert_eq "$ST" 0 "a region inside holes"
same_sectors "$SRC" 1000 "$T/part.img" 2000 299000
same_sectors "$OLD" 0 "$T/part.img" 0 2000
same_sectors "$OLD" 301000 "$T/part.img" 301000 99000
run_kcopy "$SRC:1100:299000" "$T/part-new.img:8"
assert_eq "$ST" 0 "a region inside holes to a new file"
size_is "$T/part-new.img" $(((8 + 299000) * 512))
same_sectors "$SRC" 1100 "$T/part-new.img" 8 299000
rm -f "$T/part.img" "$T/part-new.img"
rm -f "$OLD"

# --- No holes, mostly zero blocks: zero detection keeps the copy sparse;
# --no-zero-detect writes them.
DENSE=$T/dense.img
head -c $((64 * 1024 * 1024)) /dev/zero >"$DENSE"
for s in 0 5000 40000 99999 131065; do
	dd if=/dev/urandom of="$DENSE" bs=512 seek=$s count=7 conv=notrunc \
		status=none
done
sync "$DENSE"
(($(alloc "$DENSE") >= 64 * 1024 * 1024)) || skip "the zeros were not allocated"
run_kcopy --report "$T/dense.json" "$DENSE" "$T/dense-new.img"
assert_eq "$ST" 0 "zero detection"
cmp "$DENSE" "$T/dense-new.img" || fail "zero detection: differs"
assert_eq "$(report_value "$T/dense.json" bytes_holes)" 0 "zero detection: holes"
(($(alloc "$T/dense-new.img") <= 1024 * 1024)) ||
	fail "zero detection: $(alloc "$T/dense-new.img") bytes allocated"
(($(report_value "$T/dense.json" bytes_written) <= 64 * 1024)) ||
	fail "zero detection: wrote $(report_value "$T/dense.json" bytes_written)"
run_kcopy --no-zero-detect --report "$T/nzd.json" "$DENSE" "$T/dense-nzd.img"
assert_eq "$ST" 0 "--no-zero-detect"
cmp "$DENSE" "$T/dense-nzd.img" || fail "--no-zero-detect: differs"
assert_eq "$(report_value "$T/nzd.json" bytes_written)" $((64 * 1024 * 1024)) \
	"--no-zero-detect: written"

# --- An NBD export full of random bytes: zero ranges go as WRITE_ZEROES
# (the log filter shows Zero commands), data as writes of the data only.
if command -v nbdcopy >/dev/null && have_nbd; then
	N=$(make_nbd sp --filter=log memory 64M logfile="$T/sp.nbdlog")
	make_image "$T/rand64.img" 64M random
	nbdcopy "$T/rand64.img" "$N" || fail "nbdcopy to the export"
	: >"$T/sp.nbdlog"
	run_kcopy --report "$T/nbd.json" "$DENSE" "$N"
	assert_eq "$ST" 0 "to an NBD export"
	read_back "$N" "$T/nbd.out"
	cmp "$DENSE" "$T/nbd.out" || fail "the export differs"
	grep -aq ' Zero id=' "$T/sp.nbdlog" || fail "no Zero command in the log"
	written=$(grep -a ' Write id=' "$T/sp.nbdlog" |
		sed -n 's/.* count=\(0x[0-9a-f]*\|[0-9]*\).*/\1/p' |
		while read -r c; do echo $((c)); done | awk '{s += $1} END {print s + 0}')
	((written <= 64 * 1024)) || fail "NBD: $written bytes written as data"
	(($(report_value "$T/nbd.json" bytes_zeroed) >= 60 * 1024 * 1024)) ||
		fail "NBD: zeroed $(report_value "$T/nbd.json" bytes_zeroed)"

	# An export that cannot zero (the nozero filter): the source's holes
	# go out as written zeros, from a buffer whose holes were never read.
	NZ=$(make_nbd nz --filter=nozero memory 64M)
	nbdcopy "$T/rand64.img" "$NZ" || fail "nbdcopy to the nozero export"
	run_kcopy --report "$T/nz.json" "$SRC:0:64M" "$NZ"
	assert_eq "$ST" 0 "to an export that cannot zero"
	read_back "$NZ" "$T/nz.out"
	cmp -n $((64 * 1024 * 1024)) "$SRC" "$T/nz.out" ||
		fail "to an export that cannot zero: differs"

	# --- The 1 GiB sparse image as an NBD source: the server's block
	# status (base:allocation) is its map, so only the data is read,
	# as the server's own log counts it; --dry-run shows that map.
	# logged_reads LOG: the bytes the server was asked to read.
	logged_reads() {
		grep -a ' Read id=' "$1" |
			sed -n 's/.* count=\(0x[0-9a-f]*\|[0-9]*\).*/\1/p' |
			while read -r c; do echo $((c)); done |
			awk '{s += $1} END {print s + 0}'
	}
	S=$(make_nbd srcx -r --filter=log file "$SRC" logfile="$T/srcx.nbdlog")
	"$KCOPY" --dry-run "$S" "$T/none.img" >"$T/dry.out" 2>&1 ||
		fail "--dry-run of an NBD source: $(cat "$T/dry.out")"
	"$KCOPY" --dry-run "$SRC" "$T/none.img" | grep ' map ' >"$T/map.local"
	grep ' map ' "$T/dry.out" | cmp -s - "$T/map.local" ||
		fail "--dry-run: the export's map is not the file's: $(cat "$T/dry.out")"
	: >"$T/srcx.nbdlog"
	run_kcopy --report "$T/nsrc.json" "$S" "$T/from-nbd.img"
	assert_eq "$ST" 0 "from a sparse export"
	cmp "$SRC" "$T/from-nbd.img" || fail "from a sparse export: differs"
	sparse_enough "$T/from-nbd.img" "from a sparse export"
	logged=$(logged_reads "$T/srcx.nbdlog")
	((logged <= DATA + 1024 * 1024)) ||
		fail "sparse export: the server read $logged bytes for $DATA"
	assert_eq "$(report_value "$T/nsrc.json" bytes_read)" "$logged" \
		"sparse export: bytes read (the server's count)"

	# A server whose map says all is data (the noextents filter): read
	# whole, the same content.
	S2=$(make_nbd srcn -r --filter=noextents file "$SRC")
	"$KCOPY" --dry-run "$S2" "$T/none.img" |
		grep -q "map *$GiB bytes data .* 0 bytes holes" ||
		fail "--dry-run: holes where the server says there are none"
	run_kcopy --report "$T/nsrcn.json" "$S2" "$T/from-nbdn.img"
	assert_eq "$ST" 0 "from an export without holes"
	cmp "$SRC" "$T/from-nbdn.img" || fail "no holes: differs"
	assert_eq "$(report_value "$T/nsrcn.json" bytes_read)" $GiB \
		"no holes: bytes read"

	# A server whose block status fails: the map is given up, the copy
	# reads everything and is still right.
	S3=$(make_nbd srce -r eval get_size="echo $GiB" \
		pread="dd if='$SRC' skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none" \
		can_extents='exit 0' extents='echo EIO broken >&2; exit 1')
	"$KCOPY" --dry-run "$S3" "$T/none.img" |
		grep -q 'map .*not known (Input/output error)' ||
		fail "--dry-run: a failed block status is not said"
	run_kcopy --report "$T/nsrce.json" "$S3:0:8M" "$T/from-nbde.img"
	assert_eq "$ST" 0 "from an export whose block status fails"
	cmp -n $((8 * 1024 * 1024)) "$SRC" "$T/from-nbde.img" ||
		fail "failing block status: differs"
	assert_eq "$(report_value "$T/nsrce.json" bytes_read)" $((8 * 1024 * 1024)) \
		"failing block status: bytes read"
fi
# --- To standard output, a pipe: it cannot be zeroed, the holes are
# written as zeros in order.
"$KCOPY" "$SRC:0:64M" - 2>"$T/stream.err" | cat >"$T/stream.out"
assert_eq "${PIPESTATUS[0]}" 0 "to a pipe: $(cat "$T/stream.err")"
size_is "$T/stream.out" $((64 * 1024 * 1024))
cmp -n $((64 * 1024 * 1024)) "$SRC" "$T/stream.out" ||
	fail "to standard output: differs"
echo "sparse copies: ok"

#!/bin/bash
# Zero detection on a stream source: a 64 MiB image with about 10% of data
# in scattered extents, piped in (cat image | kcopy - ...), is not written
# as data where it is zeros.  A new file stays sparse (at most 1.2 times
# the data allocated); two loop devices that held random bytes, one of
# 4096-byte sectors, get the zero ranges zeroed, not written, and equal
# the image over its length, with what lies past it left alone (a stream
# of whole sub-jobs and 100 zero bytes merges its last block on the
# 4096-byte one); streams whose length is not a multiple of 512, ending in
# zeros, in data, or in fewer zero bytes than a sector, make files of their
# exact length and bytes; --allocated and --no-zero-detect write the zeros;
# a stream destination beside a file (kcopy - FILE -) still gets every
# byte; an NBD export gets WRITE_ZEROES.  Content is always compared byte
# for byte.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires jq cmp stat dd
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"
cd "$T"

MiB=$((1024 * 1024))
SIZE=$((64 * MiB))
IMG=$T/image.img
: >"$IMG"
truncate -s $SIZE "$IMG"
# 40 extents of 4 KiB to 300 KiB at random places (the seed replays them),
# some unaligned: about 10% of the image.
for ((i = 0; i < 40; i++)); do
	off=$(((RANDOM * 32768 + RANDOM) % (SIZE / 512 - 1024)))
	len=$((8 + (RANDOM % 592)))
	dd if=/dev/urandom of="$IMG" bs=512 seek=$off count=$len conv=notrunc \
		status=none || fail "cannot write the image at sector $off"
done
sync "$IMG"
alloc() { echo $(($(stat -c %b "$1") * 512)); }
DATA=$(alloc "$IMG")
((DATA < SIZE / 4)) || skip "the file system does not keep holes"
IMG_SUM=$(sum "$IMG")

# stream NAME IMAGE ARGS...: cat IMAGE | kcopy ARGS; it must exit 0.
stream() {
	local name=$1 image=$2
	shift 2
	cat "$image" | run_watchdog 60 "$KCOPY" "$@" 2>"$T/err" && st=0 || st=$?
	assert_eq "$st" 0 "$name: exit status ($(cat "$T/err"))"
}

# --- To a new file: it stays sparse, and ends where the image does.
stream "new file" "$IMG" --report "$T/new.json" - "$T/new.img"
cmp "$IMG" "$T/new.img" || fail "new file: differs from the image"
sync "$T/new.img"
got=$(alloc "$T/new.img")
((got * 10 <= DATA * 12)) || fail "new file: $got bytes allocated for $DATA of data"
(($(report_value "$T/new.json" bytes_skipped) >= SIZE - DATA - 4 * MiB)) ||
	fail "new file: skipped $(report_value "$T/new.json" bytes_skipped)"
(($(report_value "$T/new.json" bytes_written) <= DATA + 4 * MiB)) ||
	fail "new file: wrote $(report_value "$T/new.json" bytes_written)"

# --- --allocated and --no-zero-detect, as for files: the zeros written.
for opt in --allocated --no-zero-detect; do
	stream "$opt" "$IMG" --report "$T/w.json" "$opt" - "$T/w.img"
	cmp "$IMG" "$T/w.img" || fail "$opt: differs from the image"
	assert_eq "$(report_value "$T/w.json" bytes_written)" $SIZE "$opt: written"
	rm -f "$T/w.img"
done

# --- A file of old data, longer than the image: zero ranges punched, and
# what lies past the image left as it was.
make_image "$T/old.img" $((SIZE + MiB)) random
cp "$T/old.img" "$T/over.img"
stream "over old data" "$IMG" --report "$T/over.json" - "$T/over.img"
size_is "$T/over.img" $((SIZE + MiB))
cmp -n $SIZE "$IMG" "$T/over.img" || fail "over old data: differs from the image"
assert_eq "$(sum "$T/over.img" $SIZE)" "$(sum "$T/old.img" $SIZE)" \
	"over old data: changed past the image"
(($(report_value "$T/over.json" bytes_zeroed) >= SIZE - DATA - 4 * MiB)) ||
	fail "over old data: zeroed $(report_value "$T/over.json" bytes_zeroed)"
rm -f "$T/over.img"

# --- Lengths not a multiple of 512, each to a new file and over old data:
# ending in zeros (two blocks and 300 bytes of them), in data, and in 100
# zero bytes after data (less than a sector).
head -c $((MiB + 8192 + 300)) /dev/zero >"$T/tz.bin"
dd if=/dev/urandom of="$T/tz.bin" bs=4096 count=20 conv=notrunc status=none
head -c $((MiB + 300)) /dev/zero >"$T/td.bin"
dd if=/dev/urandom of="$T/td.bin" bs=1 seek=$((MiB + 100)) count=200 \
	conv=notrunc status=none
head -c $((MiB + 4096 + 100)) /dev/zero >"$T/t100.bin"
dd if=/dev/urandom of="$T/t100.bin" bs=4096 seek=256 count=1 conv=notrunc \
	status=none
for t in tz td t100; do
	len=$(stat -c %s "$T/$t.bin")
	stream "$t: new file" "$T/$t.bin" - "$T/$t.out"
	size_is "$T/$t.out" "$len"
	cmp "$T/$t.bin" "$T/$t.out" || fail "$t: new file differs"
	head -c $((2 * MiB)) "$T/old.img" >"$T/$t.old"
	stream "$t: over old data" "$T/$t.bin" - "$T/$t.old"
	size_is "$T/$t.old" $((2 * MiB))
	cmp -n "$len" "$T/$t.bin" "$T/$t.old" || fail "$t: over old data differs"
	assert_eq "$(sum "$T/$t.old" "$len")" "$(sum "$T/old.img" "$len" \
		$((2 * MiB - len)))" "$t: over old data: changed past the stream"
done

# --- An empty stream into a file at an offset past its end changes
# nothing: the file is not extended to where the region begins.
head -c 100 /dev/urandom >"$T/short.bin"
cp "$T/short.bin" "$T/short.keep"
: >"$T/empty.bin"
stream "empty stream" "$T/empty.bin" - "$T/short.bin:8"
size_is "$T/short.bin" 100
cmp "$T/short.keep" "$T/short.bin" || fail "empty stream: the file changed"

# --- A stream destination beside a file: every byte of the image on
# standard output, the file sparse as before.
cat "$IMG" | run_watchdog 60 "$KCOPY" - "$T/fan.img" - >"$T/fan.out" \
	2>"$T/err" && st=0 || st=$?
assert_eq "$st" 0 "kcopy - FILE -: exit status ($(cat "$T/err"))"
cmp "$IMG" "$T/fan.out" || fail "kcopy - FILE -: standard output differs"
cmp "$IMG" "$T/fan.img" || fail "kcopy - FILE -: the file differs"
sync "$T/fan.img"
(($(alloc "$T/fan.img") * 10 <= DATA * 12)) ||
	fail "kcopy - FILE -: $(alloc "$T/fan.img") bytes allocated for $DATA"
rm -f "$T/fan.img" "$T/fan.out" "$T/new.img"

if (requires_loop) >/dev/null 2>&1; then
	# --- Two loop devices of random bytes, 512- and 4096-byte sectors,
	# a MiB longer than the image: equal to it over its length, zero
	# ranges zeroed (BLKZEROOUT), the MiB past it unchanged.
	cp "$T/old.img" "$T/loop.img"
	cp "$T/old.img" "$T/loop4k.img"
	L=$(make_loop "$T/loop.img")
	L4=$(make_loop "$T/loop4k.img" -b 4096)
	stream "loop devices" "$IMG" --report "$T/loop.json" - "$L" "$L4"
	for d in "$L" "$L4"; do
		assert_eq "$(sum "$d" 0 $SIZE)" "$IMG_SUM" "$d: differs from the image"
		assert_eq "$(sum "$d" $SIZE)" "$(sum "$T/old.img" $SIZE)" \
			"$d: changed past the image"
	done
	(($(report_value "$T/loop.json" bytes_zeroed) >= 2 * (SIZE - DATA - 4 * MiB))) ||
		fail "loop devices: zeroed $(report_value "$T/loop.json" bytes_zeroed)"
	(($(report_value "$T/loop.json" bytes_written) <= 2 * (DATA + 4 * MiB))) ||
		fail "loop devices: wrote $(report_value "$T/loop.json" bytes_written)"

	# Whole sub-jobs and 100 bytes, ending in zeros: the last block of
	# the 4096-byte device is merged, the blocks before it zeroed.
	stream "t100 to loop devices" "$T/t100.bin" - "$L" "$L4"
	len=$(stat -c %s "$T/t100.bin")
	for d in "$L" "$L4"; do
		assert_eq "$(sum "$d" 0 "$len")" "$(sum "$T/t100.bin")" \
			"$d: t100 differs"
		assert_eq "$(sum "$d" "$len" $((SIZE - len)))" \
			"$(sum "$IMG" "$len" $((SIZE - len)))" \
			"$d: t100 changed past the stream"
	done
fi

# --- An NBD export of random bytes: the zero ranges go as WRITE_ZEROES
# (the log filter shows Zero commands), the data as writes.
if have_nbd; then
	make_image "$T/nbd.img" $SIZE random
	N=$(make_nbd sz --filter=log file "$T/nbd.img" logfile="$T/sz.nbdlog")
	stream "NBD export" "$IMG" --report "$T/nbd.json" - "$N"
	cmp "$IMG" "$T/nbd.img" || fail "NBD export: differs from the image"
	grep -aq ' Zero id=' "$T/sz.nbdlog" || fail "NBD export: no Zero command"
	(($(report_value "$T/nbd.json" bytes_zeroed) >= SIZE - DATA - 4 * MiB)) ||
		fail "NBD export: zeroed $(report_value "$T/nbd.json" bytes_zeroed)"
fi

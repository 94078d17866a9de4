#!/bin/bash
# libkcopyd on loop devices: 512- and 4096-byte sectors, aligned and
# misaligned regions, two destinations at different offsets, small budgets,
# kcopyd_zero on a device and on a file.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires_root
requires_loop

make_image "$T/src.img" 16M random
make_image "$T/d512.img" 32M zero
make_image "$T/d4k.img" 32M zero
src=$(make_loop "$T/src.img")
d512=$(make_loop "$T/d512.img")
d4k=$(make_loop "$T/d4k.img" -b 4096)
assert_eq "$(blockdev --getss "$d4k")" 4096 "losetup -b 4096"

# expect_run WANT ARGS...: kcopyd-run's first line must be WANT, or
# kcopyd_head WANT for a job that ended with WANT (ok, read, dest:K); the
# peak pages must stay within the budget.
expect_run() {
	local want=$1 out peak budget
	case $want in
	ok | read* | dest:*) want=$(kcopyd_head "$want") ;;
	esac
	shift
	out=$(run_kcopyd "$@")
	[[ $(head -n1 <<<"$out") == "$want" ]] ||
		fail "kcopyd-run $*: wanted '$want', got: $out"
	if [[ $out == *peak_pages=* ]]; then
		peak=$(sed -n 's/^peak_pages=\([0-9]*\) .*/\1/p' <<<"$out")
		budget=$(sed -n 's/.* budget=\([0-9]*\)$/\1/p' <<<"$out")
		((peak > 0 && peak <= budget)) ||
			fail "kcopyd-run $*: peak $peak pages, budget $budget"
	fi
}

# One source to a 512 and a 4096 device, at different offsets.
expect_run ok "$src:0:32768" "$d512:1000:32768" "$d4k:4096:32768"
assert_eq "$(sum "$d512" $((1000 * 512)) 16777216)" "$(sum "$T/src.img")" "512 destination"
assert_eq "$(sum "$d4k" $((4096 * 512)) 16777216)" "$(sum "$T/src.img")" "4096 destination"
is_zero "$d512" 0 $((1000 * 512)) "bytes before the region"

# Budgets of a few pages, odd sub-job sizes.
for pages in 1 2 3 5; do
	expect_run ok -p $pages "$src:8:8192" "$d4k:0:8192"
	assert_eq "$(sum "$d4k" 0 4194304)" "$(sum "$T/src.img" 4096 4194304)" "budget $pages"
done
expect_run ok -p 64 -c 12288 "$src:0:32768" "$d512:0:32768"
assert_eq "$(sum "$d512" 0 16777216)" "$(sum "$T/src.img")" "12 KiB sub-jobs"

# Misaligned regions on the 4096-byte device are refused before any I/O.
before=$(sum "$d4k")
expect_run "copy: -22 Invalid argument" "$src:0:8" "$d4k:1:8"
expect_run "copy: -22 Invalid argument" "$src:0:4" "$d4k:0:4"
expect_run "copy: -22 Invalid argument" "$d4k:3:8" "$d512:0:8"
# Past the end of a device.
expect_run "copy: -22 Invalid argument" "$src:0:32768" "$d512:65535:32768"
expect_run "copy: -22 Invalid argument" "$src:32760:16" "$d512:0:16"
assert_eq "$(sum "$d4k")" "$before" "a refused job wrote"
# ... and the library says why, naming the region.
out=$(run_kcopyd "$src:0:8" "$d512:0:8" "$d4k:1:8")
[[ $(sed -n 2p <<<"$out") == "why: destination 2: region (sector 1, 8 sectors) is not aligned to the logical block size of 4096 bytes" ]] ||
	fail "reason for an unaligned region: $out"
out=$(run_kcopyd "$src:32760:16" "$d512:0:16")
[[ $(sed -n 2p <<<"$out") == "why: source: region (sector 32760, 16 sectors) ends past the end of the device (32768 sectors)" ]] ||
	fail "reason for a region past a device's end: $out"

# A 4096 device as the source, to a file at an odd offset (buffered there).
expect_run ok "$d4k:8:64" "$T/out.bin:3:64"
assert_eq "$(sum "$T/out.bin" 1536 32768)" "$(sum "$d4k" 4096 32768)" "4096 device to a file"

# kcopyd_zero on a loop device and on a file.
expect_run ok -z "$d4k:4096:2048" "$d512:1000:2048"
is_zero "$d4k" $((4096 * 512)) 1048576 "zero 4096 device"
is_zero "$d512" $((1000 * 512)) 1048576 "zero 512 device"
# (bytes 0..4 MiB of $d4k hold the source from byte 4096 on, see above)
assert_eq "$(sum "$d4k" $((6144 * 512)) 1048576)" "$(sum "$T/src.img" $((4096 + 3145728)) 1048576)" "zeroed past the region"
cp "$T/src.img" "$T/zero.img"
expect_run ok -z "$T/zero.img:100:300"
is_zero "$T/zero.img" 51200 153600 "zero a file"
assert_eq "$(sum "$T/zero.img" 0 51200)" "$(sum "$T/src.img" 0 51200)" "zero a file: before"
assert_eq "$(sum "$T/zero.img" 204800)" "$(sum "$T/src.img" 204800)" "zero a file: after"
echo "lib-devices: ok"

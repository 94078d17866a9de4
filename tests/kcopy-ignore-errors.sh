#!/bin/bash
# --ignore-errors: bad sectors isolated to the logical block, zero-filled, and listed exactly as GNU ddrescue maps them
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires_fuse
requires jq cmp ddrescue

SIZE=$((8 * 1024 * 1024))		# 16384 sectors

# merge_ranges: "START END" lines (512-byte sectors, END exclusive) on
# stdin, as sorted "SECTOR COUNT" lines with overlapping or adjacent ranges
# merged.
merge_ranges() {
	sort -n -k1,1 -k2,2 | awk '
		NR == 1 { s = $1; e = $2; next }
		$1 <= e { if ($2 > e) e = $2; next }
		{ print s, e - s; s = $1; e = $2 }
		END { if (NR) print s, e - s }'
}

# expected_ranges LBS OFF:LEN...: the injected byte ranges widened to whole
# logical blocks, as "SECTOR COUNT" lines in 512-byte sectors, merged and
# sorted.
expected_ranges() {
	local lbs=$1 r off len
	shift
	for r in "$@"; do
		off=${r%:*} len=${r#*:}
		echo "$((off / lbs * lbs / 512)) $(((off + len + lbs - 1) / lbs * lbs / 512))"
	done | merge_ranges
}

# ddrescue_ranges MAPFILE: its bad-sector ("-") areas as "SECTOR COUNT"
# lines, merged and sorted.  (Shell arithmetic reads the hexadecimal
# positions: mawk has no strtonum.)
ddrescue_ranges() {
	local pos size st
	grep -v '^#' "$1" | while read -r pos size st; do
		[[ $pos == 0x* && $size == 0x* && $st == - ]] || continue
		echo "$((pos / 512)) $(((pos + size) / 512))"
	done | merge_ranges
}

# layout NAME LBS "KCOPY OPTS;KCOPY OPTS..." OFF:LEN...: a FUSE source of
# logical block LBS with read errors at the byte ranges; map it with
# ddrescue, then copy it with kcopy --ignore-errors once per option set.
layout() {
	local name=$1 lbs=$2 optsets=$3 img dev r nbad want_ranges dd_ranges
	local expect out1 loopimg dest2 want_sum got opts i
	local -a fopts=() kopts
	shift 3
	echo "== $name (logical block $lbs): $*" >&2
	img=$T/$name.img
	make_image "$img" "$SIZE" "pattern:$name"
	for r in "$@"; do
		fopts+=(--read-error "$r")
	done
	dev=$(make_fault_device "$img" "${fopts[@]}" -- -b "$lbs")
	assert_eq "$(blockdev --getss "$dev")" "$lbs" "$name: logical block size"

	want_ranges=$(expected_ranges "$lbs" "$@")
	nbad=$(printf '%s\n' "$want_ranges" | wc -l)

	# GNU ddrescue on the same device: direct I/O, one sector (block) at a
	# time in its trimming and scraping passes, no retries.
	run_watchdog 60 ddrescue -q -d -b "$lbs" -r0 "$dev" "$T/$name.ddr" "$T/$name.map" ||
		fail "$name: ddrescue failed"
	dd_ranges=$(ddrescue_ranges "$T/$name.map")
	grep -q '^0x[0-9A-Fa-f]* *0x[0-9A-Fa-f]* *[?*/]' "$T/$name.map" &&
		fail "$name: ddrescue left areas unresolved: $(cat "$T/$name.map")"
	assert_eq "$dd_ranges" "$want_ranges" "$name: ddrescue's bad areas vs the injected ones"

	# The expected copy: the image with the bad blocks zeroed.
	expect=$T/$name.expect
	# shellcheck disable=SC2086 # "SECTOR COUNT" lines: split into pairs
	copy_zeroed "$img" "$expect" $want_ranges
	# ddrescue's own output, holes where it could not read, agrees.
	truncate -s "$SIZE" "$T/$name.ddr"
	cmp "$T/$name.ddr" "$expect" || fail "$name: ddrescue's copy differs from the expected one"
	want_sum=$(sum "$expect")

	IFS=';' read -r -a optsets_a <<<"$optsets"
	((${#optsets_a[@]} > 0)) || optsets_a=("")
	for ((i = 0; i < ${#optsets_a[@]}; i++)); do
		opts=${optsets_a[i]}
		read -r -a kopts <<<"$opts"
		out1=$T/$name.$i.out1
		# The second destination is a loop device full of other data, so
		# the zeros must really be written.
		loopimg=$T/$name.$i.loop
		make_image "$loopimg" "$SIZE" random
		dest2=$(make_loop "$loopimg")
		run_kcopy --ignore-errors "${kopts[@]}" --report "$T/$name.$i.json" \
			"$dev" "$out1" "$dest2"
		local what="$name${opts:+ ($opts)}"
		expect_status "$ST" read "$what: exit status"
		expect_closing read \
			"; source '$dev': Input/output error ($nbad bad range(s) zero-filled)" \
			"$what: closing line"
		local rep=$T/$name.$i.json
		expect_report_status "$rep" read "$what: report"
		assert_eq "$(jq -r '[.destinations[].write_err] | any' "$rep")" false \
			"$what: a destination is marked failed"
		assert_eq "$(jq -r .bytes "$rep")" "$SIZE" "$what: report bytes"
		got=$(jq -r '.bad_ranges[] | "\(.sector) \(.count)"' "$rep")
		assert_eq "$got" "$dd_ranges" "$what: kcopy's bad_ranges vs ddrescue's map"
		assert_eq "$(jq -r '[.bad_ranges[].device] | unique | join(",")' "$rep")" "$dev" \
			"$what: bad_ranges device"
		assert_eq "$(sum "$out1")" "$want_sum" "$what: destination 1 content"
		assert_eq "$(sum "$dest2")" "$want_sum" "$what: destination 2 content"
	done
}

S512K=524288
S64K=65536

# One 512-byte sector on a 512-byte device.
layout one512 512 "" $((3 * 1024 * 1024 + 7 * 512)):512

# One 4096-byte block on a 4096-byte device.
layout one4096 4096 "" $((5 * 1024 * 1024 + 3 * 4096)):4096

# Sub-block faults on a 4096-byte device: the whole block is bad.
layout sub4096 4096 "" 1000:100 $((SIZE - 4096 + 2000)):2000 $((2 * S512K - 10)):20

# Ranges straddling sub-job boundaries: of 512 KiB (the default), and of
# 64 KiB with --chunk 64K (each 512 KiB boundary is one of 64 KiB too).
layout straddle 512 ";--chunk 64K;--chunk 64K -s" \
	$((S512K - 1536)):3072 $((3 * S64K - 1024)):2048 \
	$((5 * S512K - 512)):1024 $((11 * S64K - 512)):4096

# The first and the last sector.
layout edges 512 ";--chunk 64K" 0:512 $((SIZE - 512)):512

# Many scattered bad sectors: 40 ranges of 1 to 3 sectors, a few of them
# adjacent or overlapping, placed from the test's seed (KCOPY_TEST_SEED;
# each layout reseeds, so it is the same whatever ran before it).
RANDOM=$TEST_SEED
scattered=()
for ((n = 0; n < 40; n++)); do
	s=$(((RANDOM * 32768 + RANDOM) % (SIZE / 512 - 4)))
	len=$((RANDOM % 3 + 1))
	scattered+=("$((s * 512)):$((len * 512))")
	if ((n % 10 == 0)); then
		# an adjacent neighbour, and an overlapping one
		scattered+=("$(((s + len) * 512)):512" "$(((s + 1) * 512)):1024")
	fi
done
layout scatter 512 ";--chunk 4K;--pages 1" "${scattered[@]}"

# Scattered on a 4096-byte device.
RANDOM=$((TEST_SEED + 1))
scattered=()
for ((n = 0; n < 20; n++)); do
	off=$(((RANDOM * 32768 + RANDOM) % (SIZE - 8192)))
	scattered+=("$off:$((RANDOM % 5000 + 1))")
done
layout scatt4k 4096 "" "${scattered[@]}"

echo PASS >&2
exit 0

#!/bin/bash
# --verify finds a destination that silently corrupts writes, at sub-job granularity, and leaves healthy ones alone
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires_fuse
requires jq cmp

SIZE=$((8 * 1024 * 1024))		# 16384 sectors
make_image "$T/src.img" "$SIZE" pattern:src
SRC=$T/src.img
SRC_SUM=$(sum "$SRC")

# expected_mismatches CHUNK DEST_SECTOR OFF:LEN...: the sub-jobs (of CHUNK
# bytes, counted from the start of the region) that the corrupt byte
# ranges OFF:LEN of the destination device touch, as destination sector
# ranges "SECTOR COUNT", merged.
expected_mismatches() {
	local chunk=$1 dsec=$2 r off len first last
	shift 2
	for r in "$@"; do
		off=${r%:*} len=${r#*:}
		# byte offsets inside the region
		off=$((off - dsec * 512))
		first=$((off / chunk))
		last=$(((off + len - 1) / chunk))
		for ((c = first; c <= last; c++)); do
			echo "$c"
		done
	done | sort -n -u | awk -v cs=$((chunk / 512)) -v d="$dsec" -v n=$((SIZE / 512)) '
		function out() { e = (ec + 1) * cs; if (e > n) e = n; print d + sc * cs, e - sc * cs }
		NR == 1 { sc = ec = $1; next }
		$1 == ec + 1 { ec = $1; next }
		{ out(); sc = ec = $1 }
		END { if (NR) out() }'
}

# case NAME DEST_INDEX NUM_DESTS "KCOPY OPTS" CORRUPT_RANGES...: a copy to
# NUM_DESTS destinations with --verify, where destination DEST_INDEX is a
# fresh FUSE device corrupting the byte ranges (device offsets) and the
# others are healthy (new files and a loop device).  Chunk from the opts.
run_case() {
	local name=$1 bad=$2 ndest=$3 opts=$4 chunk=524288 i r img dev status
	local -a kopts fopts=() dests=()
	shift 4
	read -r -a kopts <<<"$opts"
	[[ $opts =~ --chunk\ ([0-9]+)K ]] && chunk=$((BASH_REMATCH[1] * 1024))
	# A budget of fewer than two sub-jobs is cut into two halves (kcopy(1)).
	if [[ $opts =~ --pages\ ([0-9]+) ]] && ((BASH_REMATCH[1] * 4096 < 2 * chunk)); then
		chunk=$((BASH_REMATCH[1] >= 2 ? BASH_REMATCH[1] / 2 * 4096 : 4096))
	fi
	echo "== $name: destination $bad of $ndest corrupts $*${opts:+ ($opts)}" >&2
	for r in "$@"; do
		fopts+=(--corrupt "$r")
	done
	img=$T/$name.fuse.img
	make_image "$img" "$SIZE" zero
	dev=$(make_fault_device "$img" "${fopts[@]}")
	for ((i = 1; i <= ndest; i++)); do
		if ((i == bad)); then
			dests+=("$dev")
		elif ((i == 2 || (i == 1 && bad == 2))); then
			make_image "$T/$name.loop$i.img" "$SIZE" random
			dests+=("$(make_loop "$T/$name.loop$i.img")")
		else
			dests+=("$T/$name.d$i.img")
		fi
	done
	run_kcopy --verify "${kopts[@]}" --report "$T/$name.json" "$SRC" "${dests[@]}"
	# The fixture works: what the device holds differs from the source.
	[[ $(sum "$dev") != "$SRC_SUM" ]] || fail "$name: faultfs did not corrupt"

	local rep=$T/$name.json want got
	expect_status "$ST" "dest:$bad" "$name: exit status"
	expect_report_status "$rep" "dest:$bad" "$name: report"
	assert_eq "$(jq -r .verified "$rep")" true "$name: report verified"
	assert_eq "$(jq -r .bytes "$rep")" "$SIZE" "$name: report bytes"
	want=$(expected_mismatches "$chunk" 0 "$@")
	for ((i = 1; i <= ndest; i++)); do
		local j=".destinations[$((i - 1))]"
		if ((i == bad)); then
			assert_eq "$(jq -r "$j.write_err" "$rep")" true "$name: $j.write_err"
			got=$(jq -r "$j.mismatches[] | \"\(.sector) \(.count)\"" "$rep")
			assert_eq "$got" "$want" "$name: $j.mismatches"
			[[ $(jq -r "$j.error" "$rep") == verify:* ]] ||
				fail "$name: $j.error is '$(jq -r "$j.error" "$rep")', not a verify error"
			grep -q "destination $i '$dev': verify failed: $(printf '%s\n' "$want" | wc -l) mismatched range(s), first at sector ${want%% *}" "$ERR_FILE" ||
				fail "$name: no verify failure message"
			expect_closing "dest:$bad" "; destination $i '$dev': verify: *" \
				"$name: closing line"
		else
			assert_eq "$(jq -r "$j.write_err" "$rep")" false "$name: $j.write_err"
			assert_eq "$(jq -r "$j.error" "$rep")" null "$name: $j.error"
			assert_eq "$(jq -r "$j.mismatches | length" "$rep")" 0 "$name: $j.mismatches"
			assert_eq "$(sum "${dests[i - 1]}")" "$SRC_SUM" "$name: healthy destination $i"
		fi
	done
}

# One small corrupt range inside the fourth sub-job, destination 1 of 2.
run_case small 1 2 "" $((3 * 524288 + 1000)):100
# A range straddling a sub-job boundary and one far away: destination 2
# of 3, two mismatch ranges (the first two sub-jobs merged).
run_case straddle 2 3 "" $((524288 - 1024)):2048 $((7 * 1048576)):512
# 64 KiB sub-jobs; destination 3 of 3.
run_case chunk64 3 3 "--chunk 64K" $((65536 * 5 + 4096)):70000 $((SIZE - 1)):1
# Corruption in the last sub-job and in the first byte; destination 7 of 7
# shares bit 6.
run_case many 7 7 "--chunk 256K" 0:1 $((SIZE - 300000)):10

# A budget smaller than two sub-jobs: 4 pages make sub-jobs of 8 KiB.
run_case budget 1 2 "--pages 4" $((1048576 + 8192 - 2)):4 $((5 * 1048576 + 100)):1

# A clean copy with --verify: status 0.
echo "== clean copy with --verify" >&2
make_image "$T/clean.loop.img" "$SIZE" random
ldev=$(make_loop "$T/clean.loop.img")
make_image "$T/clean.fuse.img" "$SIZE" random
fdev=$(make_fault_device "$T/clean.fuse.img")
run_kcopy --verify --report "$T/clean.json" "$SRC" "$T/clean.d1.img" "$ldev" "$fdev"
assert_eq "$ST" 0 "clean: exit status"
[[ -s $ERR_FILE ]] && fail "clean: stderr not empty"
rep=$T/clean.json
expect_report_status "$rep" ok "clean: report"
assert_eq "$(jq -r .verified "$rep")" true "clean: report verified"
assert_eq "$(jq -r '[.destinations[].mismatches[]] | length' "$rep")" 0 "clean: mismatches"
for d in "$T/clean.d1.img" "$ldev" "$fdev"; do
	assert_eq "$(sum "$d")" "$SRC_SUM" "clean: $d"
done

# --verify with --ignore-errors: the zero-filled bad sectors are what was
# meant to be written, so no destination mismatches; status 1 only.
echo "== --verify --ignore-errors with bad source sectors" >&2
make_image "$T/bad.src.img" "$SIZE" pattern:bad
bad_dev=$(make_fault_device "$T/bad.src.img" --read-error 1048576:512 --read-error 5000000:3000)
copy_zeroed "$T/bad.src.img" "$T/bad.expect" 2048 1 9765 7
make_image "$T/bad.loop.img" "$SIZE" random
bad_loop=$(make_loop "$T/bad.loop.img")
for opts in "" "-s --chunk 4K"; do
	read -r -a o <<<"$opts"
	rm -f "$T/bad.d1.img"
	run_kcopy -i --verify "${o[@]}" --report "$T/bad.json" "$bad_dev" "$T/bad.d1.img" "$bad_loop"
	expect_status "$ST" read "verify -i${opts:+ $opts}: exit status"
	expect_report_status "$T/bad.json" read "verify -i${opts:+ $opts}: report"
	assert_eq "$(jq -r '[.destinations[].mismatches[]] | length' "$T/bad.json")" 0 \
		"verify -i${opts:+ $opts}: mismatches"
	assert_eq "$(jq -c '[.bad_ranges[] | [.sector, .count]]' "$T/bad.json")" \
		"[[2048,1],[9765,7]]" "verify -i${opts:+ $opts}: bad_ranges"
	cmp "$T/bad.expect" "$T/bad.d1.img" || fail "verify -i${opts:+ $opts}: destination 1"
	assert_eq "$(sum "$bad_loop")" "$(sum "$T/bad.expect")" "verify -i${opts:+ $opts}: destination 2"
done

# A region inside the devices: source sectors 2048.., destinations at other
# offsets; the corrupt device range maps to destination sectors.
echo "== offsets" >&2
make_image "$T/off.fuse.img" $((2 * SIZE)) zero
off_dev=$(make_fault_device "$T/off.fuse.img" --corrupt $((4096 * 512 + 600000)):10)
run_kcopy --verify --report "$T/off.json" "$SRC:2048:4096" "$T/off.d1.img:100" "$off_dev:4096"
expect_status "$ST" dest:2 "offsets: exit status"
# region byte 600000 is in sub-job 1 (524288..1048575): destination
# sectors 4096+1024 .. +1024
assert_eq "$(jq -r '.destinations[1].mismatches[] | "\(.sector) \(.count)"' "$T/off.json")" \
	"5120 1024" "offsets: mismatches"
assert_eq "$(jq -r '.destinations[0].mismatches | length' "$T/off.json")" 0 \
	"offsets: healthy destination mismatches"
expect_report_status "$T/off.json" dest:2 "offsets: report"
assert_eq "$(sum "$T/off.d1.img" $((100 * 512)) $((4096 * 512)))" \
	"$(sum "$SRC" $((2048 * 512)) $((4096 * 512)))" "offsets: healthy destination"

echo PASS >&2
exit 0

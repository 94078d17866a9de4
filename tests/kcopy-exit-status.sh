#!/bin/bash
# kcopy's exit status bit mask, closing line and report for each failing destination, and for a read error
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires_fuse
requires jq cmp

SIZE=$((1024 * 1024))			# 1 MiB source: 2048 sectors

make_image "$T/src.img" "$SIZE" pattern:src
SRC=$T/src.img

# Destination k fails with EIO: a FUSE device whose writes in the middle fail.
make_image "$T/eio.img" "$SIZE" zero
EIO_DEV=$(make_fault_device "$T/eio.img" --write-error 524288:4096)
# Destination k fails with ENOSPC: a new file on a tmpfs too small for it.
FULL_DIR=$(make_tmpfs 256k)

# ENOSPC for these, EIO for the others.
declare -A ENOSPC_K=([1]=1 [3]=1 [6]=1 [8]=1)

for k in 1 2 3 4 5 6 7 8; do
	d=$T/one$k
	mkdir "$d"
	rm -f "$FULL_DIR/full.img"
	DESTS=()
	for ((i = 1; i <= 8; i++)); do
		if ((i != k)); then
			DESTS+=("$d/dest$i.img")
		elif [[ -n ${ENOSPC_K[$k]:-} ]]; then
			DESTS+=("$FULL_DIR/full.img")
			text=$ENOSPC_TEXT
		else
			DESTS+=("$EIO_DEV")
			text=$EIO_TEXT
		fi
	done
	echo "== destination $k fails: ${DESTS[k - 1]} ($text)" >&2
	run_kcopy --report "$d/report.json" "$SRC" "${DESTS[@]}"
	check_dest_errors "destination $k" "$d/report.json" "$k:write: $text"
done

# Several failing destinations at once.
for pair in "2:5" "7:8" "1:8"; do
	a=${pair%:*} b=${pair#*:}
	d=$T/two$a$b
	mkdir "$d"
	rm -f "$FULL_DIR/full.img"
	DESTS=()
	# The lower one fails with ENOSPC for 2:5, the other way round else.
	if [[ $pair == 2:5 ]]; then
		enospc=$a eio=$b
	else
		enospc=$b eio=$a
	fi
	for ((i = 1; i <= 8; i++)); do
		if ((i == enospc)); then
			DESTS+=("$FULL_DIR/full.img")
		elif ((i == eio)); then
			DESTS+=("$EIO_DEV")
		else
			DESTS+=("$d/dest$i.img")
		fi
	done
	echo "== destinations $a and $b fail" >&2
	run_kcopy --report "$d/report.json" "$SRC" "${DESTS[@]}"
	declare -A textof=([$enospc]=$ENOSPC_TEXT [$eio]=$EIO_TEXT)
	check_dest_errors "destinations $a and $b" "$d/report.json" \
		"$a:write: ${textof[$a]}" "$b:write: ${textof[$b]}"
	unset textof
done
assert_eq "$ST" 66 "self-check: destinations 1 and 8 give 66"

# Every destination fails: 8 new files on the small tmpfs, none of which
# fits; every bit from 1 to 6 set, the full mask 0xff.
d=$T/all8
mkdir "$d"
rm -f "$FULL_DIR"/*
DESTS=()
failed=()
for ((i = 1; i <= 8; i++)); do
	DESTS+=("$FULL_DIR/all$i.img")
	failed+=("$i:write: $ENOSPC_TEXT")
done
echo "== all 8 destinations fail" >&2
run_kcopy --report "$d/report.json" "$SRC" "${DESTS[@]}"
check_dest_errors "all destinations" "$d/report.json" "${failed[@]}"
assert_eq "$ST" 126 "self-check: every destination failed gives 126"
rm -f "$FULL_DIR"/*

# 32 destinations, the most there may be: the first and the 32nd fail
# (bit 31 of the mask).
d=$T/max32
mkdir "$d"
DESTS=("$FULL_DIR/full.img")
for ((i = 2; i <= 31; i++)); do
	DESTS+=("$d/dest$i.img")
done
DESTS+=("$EIO_DEV")
echo "== 32 destinations, 1 and 32 fail" >&2
run_kcopy --report "$d/report.json" "$SRC" "${DESTS[@]}"
check_dest_errors "32 destinations" "$d/report.json" \
	"1:write: $ENOSPC_TEXT" "32:write: $EIO_TEXT"
assert_eq "$(jq -r .write_err "$d/report.json")" $(((1 << 31) | 1)) \
	"self-check: 32 destinations, 1 and 32 fail: write_err"
assert_eq "$ST" 66 "self-check: 32 destinations, 1 and 32 fail: status"
rm -f "$FULL_DIR"/*

# A read error with --ignore-errors and a write error at once: both bits.
make_image "$T/rw.img" "$SIZE" pattern:rw
RWDEV=$(make_fault_device "$T/rw.img" --read-error 4096:512)
d=$T/readwrite
mkdir "$d"
DESTS=("$d/dest1.img" "$EIO_DEV" "$d/dest3.img")
echo "== read error (--ignore-errors) and destination 2 fails" >&2
run_kcopy --ignore-errors --report "$d/report.json" "$RWDEV" "${DESTS[@]}"
assert_eq "$ST" 5 "read and write error: exit status"
assert_eq "$(closing_line)" \
	"kcopy: exit status 5: read_err=1 write_err=0x2; source '$RWDEV': $EIO_TEXT (1 bad range(s) zero-filled); destination 2 '$EIO_DEV': write: $EIO_TEXT" \
	"read and write error: closing line"
r=$d/report.json
assert_eq "$(jq -r '"\(.read_err) \(.write_err) \(.exit_status)"' "$r")" "1 2 5" \
	"read and write error: report read_err, write_err, exit_status"
assert_eq "$(jq -r '[.destinations[].write_err] | map(tostring) | join(" ")' "$r")" \
	"false true false" "read and write error: destinations' write_err"
assert_eq "$(jq -c '[.bad_ranges[] | [.device, .sector, .count]]' "$r")" \
	"[[\"$RWDEV\",8,1]]" "read and write error: bad_ranges"
copy_zeroed "$T/rw.img" "$d/expect.img" 8 1
cmp "$d/expect.img" "$d/dest1.img" || fail "read and write error: destination 1"
cmp "$d/expect.img" "$d/dest3.img" || fail "read and write error: destination 3"

# A read error on the source, without --ignore-errors: status 1, the copy
# stops.  32 MiB source, a bad 4 KiB block at 1 MiB (in the third 512 KiB
# sub-job).
BIG=$((32 * 1024 * 1024))
BAD=$((1024 * 1024))
make_image "$T/bigsrc.img" "$BIG" pattern:big
RDEV=$(make_fault_device "$T/bigsrc.img" --read-error "$BAD:4096")
d=$T/readerr
mkdir "$d"
DESTS=("$d/dest1.img" "$d/dest2.img")
echo "== read error on the source" >&2
run_kcopy --report "$d/report.json" "$RDEV" "${DESTS[@]}"
assert_eq "$ST" 1 "read error: exit status"
assert_eq "$(closing_line)" \
	"kcopy: exit status 1: read_err=1 write_err=0x0; source '$RDEV': $EIO_TEXT" \
	"read error: closing line"
r=$d/report.json
assert_eq "$(jq -r .read_err "$r")" 1 "read error: report read_err"
assert_eq "$(jq -r .source.read_err "$r")" true "read error: report source.read_err"
assert_eq "$(jq -r .write_err "$r")" 0 "read error: report write_err"
assert_eq "$(jq -r .exit_status "$r")" 1 "read error: report exit_status"
assert_eq "$(jq -r '[.destinations[].write_err] | any' "$r")" false \
	"read error: a destination marked failed"
assert_eq "$(jq -r '.bad_ranges | length' "$r")" 0 "read error: bad_ranges without --ignore-errors"
assert_eq "$(jq -r .bytes_total "$r")" "$BIG" "read error: bytes_total"
bytes=$(jq -r .bytes "$r")
((bytes < BIG / 2)) || fail "read error: copy did not stop ($bytes of $BIG bytes copied)"
# The first failed read is reported: the sub-job with the bad block, or
# one before it (the block layer may merge neighbouring reads into one
# request, which then fails as a whole).
grep -Eq "^kcopy: source '$RDEV': read error at sector [0-9]+ \(1024 sectors\): $EIO_TEXT; stopping\$" "$ERR_FILE" ||
	fail "read error: no message naming the failed read"
s=$(sed -En "s/.*read error at sector ([0-9]+) .*/\1/p" "$ERR_FILE")
((s % 1024 == 0 && s <= BAD / 512)) || fail "read error: reported at sector $s"
# Each 512 KiB sub-job of each destination was either written in full,
# with the source's data, or not at all; the written ones add up to the
# bytes reported; the one with the bad block was not written.
zero_chunk=$(zero_sum 524288)
for p in "${DESTS[@]}"; do
	[[ -f $p ]] || fail "read error: $p not created"
	size=$(stat -c %s "$p")
	((size < BIG / 2)) || fail "read error: $p has $size bytes: the copy did not stop"
	written=0
	for ((off = 0; off < size; off += 524288)); do
		got=$(sum "$p" "$off" 524288)
		if [[ $got == "$(sum "$T/bigsrc.img" "$off" 524288)" ]]; then
			((off / 524288 != BAD / 524288)) ||
				fail "read error: $p: the sub-job with the bad block was written"
			written=$((written + 524288))
		elif [[ $got != "$zero_chunk" ]] && ((off + 524288 <= size)); then
			fail "read error: $p: sub-job at byte $off neither copied nor left alone"
		fi
	done
	assert_eq "$written" "$bytes" "read error: $p: bytes written vs reported"
done

echo "PASS" >&2
exit 0

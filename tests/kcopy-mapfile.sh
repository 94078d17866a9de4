#!/bin/bash
# --mapfile: bad sectors are '-' as GNU ddrescue finds them and are retried
# on resuming (or skipped); ddrescuelog reads kcopy's mapfile and kcopy
# starts from ddrescue's; a failed destination stays failed; a mapfile of
# another copy, garbage or cut short is refused; usage errors.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires_fuse
requires jq ddrescue ddrescuelog

SIZE=$((16 * 1024 * 1024))
IMG=$T/src.img
make_image "$IMG" "$SIZE" random
BAD1=1048576 BAD1LEN=4096 BAD2=5242880 BAD2LEN=8192
DEV=$(make_fault_device "$IMG" --read-error $BAD1:$BAD1LEN --read-error $BAD2:$BAD2LEN)

# ------------------------------------------------- bad sectors, ddrescue
echo "== bad sectors" >&2
OUT=$T/out.img
kcopy_expect read -i --report "$T/r1.json" --mapfile "$T/m" "$DEV" "$OUT"
assert_eq "$(mapfile_ranges "$T/m" -)" "$BAD1 $BAD1LEN
$BAD2 $BAD2LEN" "kcopy's '-' areas"
ddrescue -d -f "$DEV" "$T/dd.img" "$T/dd.map" >/dev/null 2>&1 || true
assert_eq "$(mapfile_ranges "$T/m" -)" "$(mapfile_ranges "$T/dd.map" -)" "kcopy's '-' areas against ddrescue's"
ddrescuelog -t "$T/m" >"$T/t.out" || fail "ddrescuelog -t refuses kcopy's mapfile"
grep -q "bad-sector: *12288 B" "$T/t.out" || fail "ddrescuelog -t: $(cat "$T/t.out")"

# Resumed: the '-' areas are read again (still bad here), and the whole
# copy's report lists them; --skip-bad does not read them.
kcopy_expect read -i --report "$T/r2.json" --mapfile "$T/m" "$DEV" "$OUT"
grep -q "read error at sector $((BAD1 / 512))" "$ERR_FILE" || fail "the '-' areas were not retried"
assert_eq "$(jq -c '[.bad_ranges[] | [.sector, .count]]' "$T/r2.json")" \
	"[[$((BAD1 / 512)),$((BAD1LEN / 512))],[$((BAD2 / 512)),$((BAD2LEN / 512))]]" "report bad_ranges"
assert_eq "$(jq -r .bytes "$T/r2.json")" "$SIZE" "report bytes"
kcopy_expect read -i --skip-bad --mapfile "$T/m" "$DEV" "$OUT"
grep -q "read error at" "$ERR_FILE" && fail "--skip-bad read the '-' areas"

# ddrescue's mapfile as the starting state, the source healed (the image
# itself): only what is not '+' is copied, the bad areas now read fine.
cp "$T/dd.map" "$T/m2"
cp "$T/dd.img" "$T/out2.img"
printf 'MARK' | dd of="$T/out2.img" bs=1 seek=4096 conv=notrunc status=none
kcopy_expect 0 --mapfile "$T/m2" "$IMG" "$T/out2.img"
grep -q "no kcopy lines" "$ERR_FILE" || fail "no note on ddrescue's mapfile"
assert_eq "$(head -c 4100 "$T/out2.img" | tail -c 4)" MARK "a '+' area of ddrescue's map was copied again"
same "$IMG" $BAD1 "$T/out2.img" $BAD1 $BAD1LEN
same "$IMG" $BAD2 "$T/out2.img" $BAD2 $BAD2LEN
assert_eq "$(mapfile_ranges "$T/m2" -)" "" "'-' areas after a good retry"
ddrescuelog -D "$T/m2" || fail "ddrescuelog -D: the copy is not finished"

# ------------------------------------------------ failed destinations
echo "== failed destinations" >&2
make_image "$T/d2.img" "$SIZE" zero
BADDEST=$(make_fault_device "$T/d2.img" --write-error 0:$SIZE)
DESTS=("$T/a.img" "$BADDEST")
kcopy_expect dest:2 --mapfile "$T/m3" "$IMG" "${DESTS[@]}"
grep -q "^# kcopy-failed: 2 write 5 " "$T/m3" || fail "no kcopy-failed line: $(cat "$T/m3")"
kcopy_expect dest:2 --report "$T/r3.json" --mapfile "$T/m3" "$IMG" "${DESTS[@]}"
grep -q "failed in an earlier run" "$ERR_FILE" || fail "no note of the earlier failure"
assert_eq "$(jq -r '.destinations[1].error' "$T/r3.json")" "write: Input/output error" "report error"
kcopy_expect dest:2 --retry-failed --mapfile "$T/m3" "$IMG" "${DESTS[@]}"
grep -q "write error" "$ERR_FILE" || fail "--retry-failed did not write"
same "$IMG" 0 "$T/a.img" 0 "$SIZE"

# -------------------------------------------------- wrong mapfiles
echo "== wrong mapfiles" >&2
kcopy_expect 0 --mapfile "$T/m4" "$IMG" "$T/b.img"
before=$(md5sum <"$T/m4")
expect_refused "other source" "another source" --mapfile "$T/m4" "$T/out2.img" "$T/b.img"
expect_refused "other region" "another source" --mapfile "$T/m4" "$IMG:0:8M" "$T/b.img"
expect_refused "other destinations" "2 destination(s), not 1\|1 destination(s), not 2" \
	--mapfile "$T/m4" "$IMG" "$T/b.img" "$T/c.img"
expect_refused "other destination" "destination 1 is another" --mapfile "$T/m4" "$IMG" "$T/c.img"
assert_eq "$(md5sum <"$T/m4")" "$before" "a refused mapfile was changed"
[[ ! -e $T/c.img ]] || fail "a refused run created its destination"
printf 'hello\n' >"$T/g1"
# 3000 bytes of garbage, drawn from the test's seed (KCOPY_TEST_SEED)
g2='' b=''
for ((i = 0; i < 3000; i++)); do
	printf -v b '\\%03o' $((RANDOM % 256))
	g2+=$b
done
# shellcheck disable=SC2059
printf "$g2" >"$T/g2"
head -n -3 "$T/m4" >"$T/g3"
head -c $(($(stat -c %s "$T/m4") - 20)) "$T/m4" >"$T/g4"
: >"$T/g5"
for g in g1 g2 g3 g4 g5; do
	expect_refused "$g" "refusing to resume" --mapfile "$T/$g" "$IMG" "$T/b.img"
done
kcopy_expect 0 --force --mapfile "$T/g2" "$IMG" "$T/b.img"
grep -q "starting over" "$ERR_FILE" || fail "--force: no note"
same "$IMG" 0 "$T/b.img" 0 "$SIZE"

# ------------------------------------------------------ usage errors
expect_refused "--zero" "not with --zero" --zero --mapfile "$T/m5" "$T/b.img"
expect_refused "stream" "stream" --mapfile "$T/m5" - "$T/b.img" </dev/null
expect_refused "--skip-bad alone" "needs --mapfile" --skip-bad "$IMG" "$T/b.img"
[[ ! -e $T/m5 ]] || fail "a refused run wrote a mapfile"
echo ok

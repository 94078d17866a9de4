#!/bin/bash
# --mapfile under hostile use: the mapfile never lands on the source, a
# destination or the report, whatever the spelling and with --force too; a
# resumed run finds a destination or source that is no longer what the
# mapfile recorded (deleted, emptied, replaced); numbers read from a mapfile
# are checked against this run (a failed destination of another copy).
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires cmp

SIZE=$((4 * 1024 * 1024))
SRC=$T/src.img
make_image "$SRC" "$SIZE" random
src_sum=$(md5sum <"$SRC")

# unchanged FILE SUM NAME: FILE still has the md5 SUM.
unchanged() {
	assert_eq "$(md5sum <"$1")" "$2" "$3: $1 was changed"
}

# ---------------------------------------- a state file over data (class 1)
echo "== the mapfile is not a side of the copy" >&2
expect_refused "new destination" "the same file as destination 1" \
	--mapfile "$T/new.img" "$SRC" "$T/new.img"
[[ ! -e $T/new.img ]] || fail "a refused run created $T/new.img"
mkdir "$T/sub"
expect_refused "new destination, spelled otherwise" \
	"the same file as destination 2" \
	--mapfile "$T/sub/../new.img" "$SRC" "$T/other.img" "$T/./new.img"
[[ ! -e $T/new.img && ! -e $T/other.img ]] || fail "a refused run created a file"
expect_refused "source, --force" "the same file as the source" \
	--force --mapfile "$SRC" "$SRC" "$T/d.img"
unchanged "$SRC" "$src_sum" "--mapfile over the source"
[[ ! -e $T/d.img ]] || fail "a refused run created $T/d.img"
cp "$SRC" "$T/old.img"
old_sum=$(md5sum <"$T/old.img")
expect_refused "existing destination, --force" "the same file as destination 1" \
	--force --mapfile "$T/old.img" "$SRC" "$T/old.img"
ln -s old.img "$T/link.map"
expect_refused "destination through a symbolic link" "the same file as destination 1" \
	--force --mapfile "$T/link.map" "$SRC" "$T/old.img"
ln "$T/old.img" "$T/hard.map"
expect_refused "destination through a hard link" "the same file as destination 1" \
	--force --mapfile "$T/hard.map" "$SRC" "$T/old.img"
unchanged "$T/old.img" "$old_sum" "--mapfile over a destination"
expect_refused "the report" "the same file as the report" \
	--mapfile "$T/sub/../r.json" --report "$T/r.json" "$SRC" "$T/d.img"
[[ ! -e $T/r.json && ! -e $T/d.img ]] || fail "a refused run left a file"
echo '{}' >"$T/r2.json"
expect_refused "an earlier report" "the same file as the report" \
	--force --mapfile "$T/r2.json" --report "$T/./r2.json" "$SRC" "$T/d.img"
if [[ $(id -u) == 0 && -e /dev/loop-control ]]; then
	make_image "$T/back.img" "$SIZE" zero
	LOOP=$(make_loop "$T/back.img")
	back_sum=$(md5sum <"$T/back.img")
	expect_refused "the file behind a destination loop device" \
		"the same file as destination 1" \
		--force --mapfile "$T/back.img" "$SRC" "$LOOP"
	unchanged "$T/back.img" "$back_sum" "--mapfile over a loop device's file"
fi

# ---------------------------------- resume checks the sides (class 2)
echo "== a destination that is no longer what it was" >&2
M=$T/m
kcopy_expect 0 --mapfile "$M" "$SRC" "$T/a.img"
grep -q '^# kcopy-dest: 1 .* size=[0-9]* id=file:' "$M" ||
	fail "no identity recorded: $(grep kcopy-dest "$M")"
# Deleted: made again by this run, so everything is copied again.
rm "$T/a.img"
kcopy_expect 0 --mapfile "$M" "$SRC" "$T/a.img"
grep -q "does not exist any more" "$ERR_FILE" || fail "no note of the deleted destination"
cmp "$SRC" "$T/a.img" || fail "a deleted destination was not copied again"
# Emptied: refused, and --force copies everything again.
: >"$T/a.img"
expect_refused "emptied destination" "emptied or cut short" --mapfile "$M" "$SRC" "$T/a.img"
size_is "$T/a.img" 0
kcopy_expect 0 --force --mapfile "$M" "$SRC" "$T/a.img"
grep -q "copying everything again" "$ERR_FILE" || fail "--force: no note"
cmp "$SRC" "$T/a.img" || fail "--force did not copy an emptied destination again"
# Replaced by another file at the same path, of the same size.
head -c "$SIZE" /dev/zero >"$T/a.new"
mv "$T/a.new" "$T/a.img"
expect_refused "replaced destination" "is not the file it was" --mapfile "$M" "$SRC" "$T/a.img"
# The source replaced (same path, same size).
cp "$SRC" "$T/src.new"
mv "$T/src.new" "$SRC"
cp "$SRC" "$T/a.img"
expect_refused "replaced source" "the source .* is not the file it was" \
	--mapfile "$M" "$SRC" "$T/a.img"
# A mapfile with nothing done: nothing to check, nothing refused.
kcopy_expect 0 --mapfile "$T/m0" "$SRC" "$T/z.img"
sed -i 's/  +$/  ?/' "$T/m0"
rm "$T/z.img"
kcopy_expect 0 --mapfile "$T/m0" "$SRC" "$T/z.img"
cmp "$SRC" "$T/z.img" || fail "copy from an all-'?' mapfile"

# --------------------------------- numbers from the file (class 3)
echo "== numbers read from a mapfile" >&2
M3=$T/m3
kcopy_expect 0 --mapfile "$M3" "$SRC" "$T/b1.img" "$T/b2.img" "$T/b3.img"
# As if destination 3 had failed: a run resumed without it (--force).
sed -i 's/^# current_pos/# kcopy-failed: 3 write 5 Input\/output error\n&/' "$M3"
grep -q '^# kcopy-failed: 3 ' "$M3" || fail "test setup: no kcopy-failed line"
cp "$M3" "$T/m3.orig"
kcopy_expect 0 --force --mapfile "$M3" "$SRC" "$T/b1.img"
grep -q "another copy's destinations" "$ERR_FILE" || fail "no note on the failures of another copy"
# Out of range in the file itself: refused, not trusted.
for bad in 's/^# kcopy-failed: 3 /# kcopy-failed: 4 /' \
	   's/^# kcopy-failed: 3 /# kcopy-failed: 0 /' \
	   's/^# kcopy-failed: 3 write 5 /# kcopy-failed: 3 write -5 /' \
	   's/^# kcopy-failed: 3 write 5 /# kcopy-failed: 3 write 99999999999 /' \
	   's/^# kcopy-dest: 2 /# kcopy-dest: 33 /' \
	   's/^# kcopy-source: sector=0 /# kcopy-source: sector=-1 /' \
	   's/^0x00000000  0x00400000/0x00000000  0xFFFFFFFFFFFFFFFFF/' \
	   's/^0x00000000  0x00400000/-1  0x00400000/'; do
	sed "$bad" "$T/m3.orig" >"$T/m3bad"
	if cmp -s "$T/m3.orig" "$T/m3bad"; then
		fail "test setup: '$bad' changed nothing"
	fi
	expect_refused "$bad" "refusing to resume" --mapfile "$T/m3bad" \
		"$SRC" "$T/b1.img" "$T/b2.img" "$T/b3.img"
done
echo ok

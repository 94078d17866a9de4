#!/bin/bash
# --mapfile with --verify, on image files: a fresh run reads back the
# whole region; a resumed run reads back what it copied (the areas the
# mapfile left, widened to whole sub-jobs), says so, and does not compare
# what earlier runs copied; with --used, what the map copied.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires jq cmp
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

MiB=$((1024 * 1024))
make_image "$T/src.img" 64M pattern

# A fresh run: all of it copied, all of it read back.
kcopy_expect ok --mapfile "$T/a.map" --verify --report "$T/a.json" \
	"$T/src.img" "$T/a.img"
cmp "$T/src.img" "$T/a.img" || fail "fresh: the copy differs"
assert_eq "$(report_value "$T/a.json" verified)" true "fresh: verified"
assert_eq "$(report_value "$T/a.json" bytes_verified)" $((64 * MiB)) \
	"fresh: bytes read back"

# A resumed run: the mapfile says the first 40 MiB + 100 KiB are done.
# The destination holds other bytes there, which this run neither copies
# nor compares; the rest is copied and read back, from the sub-job that
# holds the first sector not done.
make_image "$T/b.img" 64M random
done_bytes=$((40 * MiB + 100 * 1024))
printf '# Mapfile. Created by hand\n0x0 ? 1\n0x%X 0x%X +\n0x%X 0x%X ?\n' \
	0 $done_bytes $done_bytes $((64 * MiB - done_bytes)) >"$T/b.map"
kcopy_expect ok -v --mapfile "$T/b.map" --verify --report "$T/b.json" \
	"$T/src.img" "$T/b.img"
grep -q "read back what this run copied" "$ERR_FILE" ||
	fail "resumed: -v does not say what was read back"
assert_eq "$(report_value "$T/b.json" verified)" true "resumed: verified"
verified=$(report_value "$T/b.json" bytes_verified)
((verified >= 64 * MiB - done_bytes && verified <= 64 * MiB - 40 * MiB)) ||
	fail "resumed: $verified bytes read back for $((64 * MiB - done_bytes)) copied"
cmp -s -i $((40 * MiB)) "$T/src.img" "$T/b.img" ||
	fail "resumed: the part this run copied differs"
cmp -s -n $MiB "$T/src.img" "$T/b.img" &&
	fail "resumed: the part an earlier run 'copied' was written"
# The mapfile now says all of it is done.
grep -q "^0x00000000  0x04000000  +" "$T/b.map" ||
	fail "resumed: the mapfile is not complete: $(cat "$T/b.map")"
exit 0

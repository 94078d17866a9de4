#!/bin/bash
# kcopy options: --help, --version, the man page, standard output full,
# --progress MODE, --dry-run, --report, -q and --zero.  Up to the images
# no root is needed.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires md5sum python3
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

MAN=$top_srcdir/man/kcopy.1
OUT=$T/.out

# Every kcopy_expect's stdout goes to $OUT; its stderr is in $ERR_FILE.
no_stderr() {
	[[ ! -s $ERR_FILE ]] || fail "$1: unexpected stderr: $(cat "$ERR_FILE")"
}

# ------------------------------------------------------------------ --help

kcopy_expect 0 --help >"$OUT"
no_stderr "--help"
HELP=$(cat "$OUT")
for o in -p,--pages --chunk -i,--ignore-errors -s,--sequential -z,--zero \
	--throttle --rate -P,--progress --progress-interval --verify --hash --report \
	--force -n,--dry-run -q,--quiet -v,--verbose -V,--version -h,--help; do
	long=${o#*,}
	grep -qE -- "(^|[^a-z-])$long([=[ ]|$)" <<<"$HELP" ||
		fail "--help does not list $long"
	if [[ $o == *,* ]]; then
		grep -qE -- "(^|[^a-z-])${o%%,*}, $long([=[ ]|$)" <<<"$HELP" ||
			fail "--help does not list ${o%%,*} with $long"
	fi
done
grep -qE '^Usage: kcopy .*SOURCE DEST' <<<"$HELP" ||
	fail "--help does not show the usage line"
grep -qE 'kcopy --zero .*DEST' <<<"$HELP" ||
	fail "--help does not show the --zero usage line"
# -h as GNU tools have it, and popt's -? (not listed): the same help.
for h in -h '-?'; do
	kcopy_expect 0 "$h" >"$OUT"
	no_stderr "$h"
	assert_eq "$(cat "$OUT")" "$HELP" "$h prints what --help prints"
done

# --------------------------------------------------------------- --version

want_version=$(sed -n 's/^AC_INIT(\[kcopy\], *\[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")
[[ -n $want_version ]] || fail "no version in configure.ac"
for v in --version -V; do
	kcopy_expect 0 "$v" >"$OUT"
	no_stderr "$v"
	first=$(head -n 1 "$OUT")
	[[ $first =~ ^kcopy\ ([0-9]+\.[0-9]+\.[0-9]+)([^0-9.]|$) ]] ||
		fail "$v: unexpected output '$first'"
	assert_eq "${BASH_REMATCH[1]}" "$want_version" "$v: version"
done

# ---------------------------------------------------------------- man page
#
# Every option --help prints is documented in man/kcopy.1.  The troff
# source writes hyphens as \- and fonts as \fB...\fP: undo both, then look
# for the long option as a whole word, and for "-X" on the same line as its
# long form.

[[ -f $MAN ]] || fail "man page $MAN does not exist"
MANTEXT=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' "$MAN")
mapfile -t help_longs < <(grep -oE -- '(^|[ ,])--[a-z][a-z-]*' <<<"$HELP" |
	sed 's/^[ ,]*//' | sort -u)
[[ ${#help_longs[@]} -ge 15 ]] || fail "found only ${#help_longs[@]} options in --help"
missing=()
for long in "${help_longs[@]}"; do
	grep -qE -- "(^|[^a-zA-Z0-9-])$long([^a-z0-9-]|$)" <<<"$MANTEXT" ||
		missing+=("$long")
done
re_escape() {
	sed 's/[][\\.*^$?+(){}|/]/\\&/g' <<<"$1"
}
# Short options: the line of --help "  -X, --long..." and a man line with both.
while read -r short long; do
	long=${long%%=*}
	grep -F -- "$long" <<<"$MANTEXT" |
		grep -qE -- "(^|[^a-zA-Z0-9-])$(re_escape "$short")([^a-zA-Z0-9-]|$)" ||
		missing+=("$short (with $long)")
done < <(sed -nE 's/^ +(-[^ ,]), (--[a-z][a-z=-]*).*/\1 \2/p' <<<"$HELP")
((${#missing[@]} == 0)) || fail "not in $MAN: ${missing[*]}"

# ------------------------------------------------- standard output full
#
# What --help, --usage, --version and --dry-run print must reach standard
# output: to a full device they fail (128) with one line saying so, as
# coreutils' tools do; none of them writes anything else.

if [[ -c /dev/full ]]; then
	truncate -s 64K "$T/small.img"
	for args in --help -h --usage --version -V \
		"--dry-run $T/small.img $T/full-new.img"; do
		# shellcheck disable=SC2086
		kcopy_expect setup $args >/dev/full
		mapfile -t lines <"$ERR_FILE"
		[[ ${#lines[@]} == 1 && ${lines[0]} == "kcopy: write error: standard output: "* ]] ||
			fail "$args > /dev/full: not one write error line: $(cat "$ERR_FILE")"
		grep -qF "$ENOSPC_TEXT" "$ERR_FILE" ||
			fail "$args > /dev/full: no '$ENOSPC_TEXT': $(cat "$ERR_FILE")"
	done
	[[ ! -e $T/full-new.img ]] || fail "--dry-run > /dev/full created a file"
fi

# --------------------------------------------------------- --progress MODE
#
# A bare --progress takes no value: "--progress plain" (json, -P plain)
# with no file of that name is a usage error that shows the = form, and
# neither opens nor creates a file named plain; with such a file, it is
# the region it names.

cd "$T"
truncate -s 64K small.img
for args in "--progress plain small.img new.img" \
	"--progress json small.img new.img" "-P plain small.img new.img" \
	"small.img --progress json" "small.img new.img --progress plain"; do
	mode=${args##*--progress }
	mode=${mode##*-P }
	mode=${mode%% *}
	# shellcheck disable=SC2086
	kcopy_expect setup $args >"$OUT"
	grep -qF -- "--progress=$mode" "$ERR_FILE" ||
		fail "kcopy $args: the error does not say --progress=$mode: $(cat "$ERR_FILE")"
	[[ $(grep -c . "$ERR_FILE") == 2 ]] ||
		fail "kcopy $args: not one error and the pointer to --help: $(cat "$ERR_FILE")"
	grep -q "Try 'kcopy --help'" "$ERR_FILE" ||
		fail "kcopy $args: no pointer to --help: $(cat "$ERR_FILE")"
	[[ ! -e plain && ! -e json && ! -e new.img ]] ||
		fail "kcopy $args created a file: $(ls)"
done
# The = form, and a file that is there: no error.
kcopy_expect 0 --progress=plain small.img new.img >"$OUT"
same small.img 0 new.img 0 65536
rm new.img
head -c 65536 /dev/urandom >plain
kcopy_expect 0 --progress plain new.img >"$OUT"
same plain 0 new.img 0 65536
rm -f plain new.img
cd "$OLDPWD"

# ---------------------------------------------------------------- images

requires_loop

MiB=$((1024 * 1024))
SRC=$T/src.img
DST=$T/dst.img
make_image "$SRC" 4M pattern:SRC
make_image "$DST" 2M pattern:DST
cp "$DST" "$T/dst.orig"
make_image "$T/l4k.img" 4M pattern:L4K
cp "$T/l4k.img" "$T/l4k.orig"
L4K=$(make_loop "$T/l4k.img" -b 4096)
make_image "$T/l512.img" 4M pattern:L512
cp "$T/l512.img" "$T/l512.orig"
L512=$(make_loop "$T/l512.img")

# --------------------------------------------------------------- --dry-run

watch_sums() {
	local f
	for f in "$SRC" "$DST" "$L4K" "$L512"; do
		printf '%s %s\n' "$f" "$(sum "$f")"
	done
}
before=$(watch_sums)

# section HEADER: the plan's lines from HEADER to the next unindented line.
section() {
	awk -v h="$1" '
		index($0, h) == 1 { on = 1; print; next }
		on && /^[^ ]/ { on = 0 }
		on { print }' "$OUT"
}

dests=("$T/new.img" "$DST:100" "$L4K:8")
kcopy_expect 0 --dry-run "$SRC:8:16" "${dests[@]}" >"$OUT"
no_stderr "--dry-run"
cat "$OUT" >&2
[[ ! -e $T/new.img ]] || fail "--dry-run created $T/new.img"
assert_eq "$(watch_sums)" "$before" "--dry-run changed the data"

s=$(section source)
[[ -n $s ]] || fail "--dry-run: no 'source' in the plan"
grep -qF -- "$SRC" <<<"$s" || fail "--dry-run: source path missing: $s"
for k in 1 2 3; do
	s=$(section "destination $k")
	[[ -n $s ]] || fail "--dry-run: no 'destination $k' in the plan"
	p=${dests[k - 1]}
	p=${p%:*}
	[[ $k == 1 ]] && p=$T/new.img
	grep -qF -- "$p" <<<"$s" || fail "--dry-run: destination $k path '$p' missing: $s"
done
for h in source "destination 1" "destination 2" "destination 3"; do
	s=$(section "$h")
	grep -qE '(^|[^0-9])16 sectors' <<<"$s" || fail "--dry-run: $h: no '16 sectors': $s"
	grep -qE '(^|[^0-9])8192 bytes' <<<"$s" || fail "--dry-run: $h: no '8192 bytes': $s"
	grep -qE 'direct|buffered' <<<"$s" || fail "--dry-run: $h: direct or buffered? $s"
done
grep -qE 'sector 8([^0-9]|$)' <<<"$(section source)" || fail "--dry-run: source sector 8 not shown"
grep -qE 'sector 100([^0-9]|$)' <<<"$(section "destination 2")" || fail "--dry-run: destination 2 sector 100 not shown"
grep -qiE 'logical block[^0-9]*512([^0-9]|$)' <<<"$(section source)" ||
	fail "--dry-run: source logical block size 512 not shown"
grep -qiE 'logical block[^0-9]*512([^0-9]|$)' <<<"$(section "destination 2")" ||
	fail "--dry-run: destination 2 logical block size 512 not shown"
grep -qiE 'logical block[^0-9]*4096([^0-9]|$)' <<<"$(section "destination 3")" ||
	fail "--dry-run: logical block size 4096 of $L4K not shown"

# A --zero dry run writes nothing either.
kcopy_expect 0 --dry-run --zero "$DST:0:16" "$T/new.img:0:8" >"$OUT"
[[ ! -e $T/new.img ]] || fail "--zero --dry-run created $T/new.img"
assert_eq "$(watch_sums)" "$before" "--zero --dry-run changed the data"
grep -qF -- "$DST" "$OUT" || fail "--zero --dry-run: $DST not in the plan"

# ---------------------------------------------------------------- --report

# check_report FILE SRC SECTOR COUNT DEST:SECTOR:COUNT...: a clean copy.
check_report() {
	python3 - "$@" <<'EOF' || fail "report $1 is wrong (see above)"
import json, sys
path, src, sec, cnt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
dests = [d.rsplit(":", 2) for d in sys.argv[5:]]
r = json.load(open(path))
errs = []
def check(cond, what):
    if not cond:
        errs.append(what)
def isint(v):
    return isinstance(v, int) and not isinstance(v, bool)
for key in ("source", "destinations", "read_err", "write_err", "bytes",
            "seconds", "bad_ranges"):
    check(key in r, "no field %r" % key)
s = r.get("source")
if isinstance(s, dict):
    check(s.get("path") == src, "source.path %r != %r" % (s.get("path"), src))
    check(s.get("sector", sec) == sec, "source.sector %r" % s.get("sector"))
    check(s.get("count", cnt) == cnt, "source.count %r" % s.get("count"))
else:
    check(s == src, "source %r != %r" % (s, src))
ds = r.get("destinations", [])
check(len(ds) == len(dests), "%d destinations, expected %d" % (len(ds), len(dests)))
for i, (d, want) in enumerate(zip(ds, dests)):
    check(d.get("path") == want[0], "destinations[%d].path %r != %r" % (i, d.get("path"), want[0]))
    check(d.get("sector") == int(want[1]) and isint(d.get("sector")), "destinations[%d].sector %r != %s" % (i, d.get("sector"), want[1]))
    check(d.get("count") == int(want[2]) and isint(d.get("count")), "destinations[%d].count %r != %s" % (i, d.get("count"), want[2]))
    check(d.get("write_err", "missing") is False, "destinations[%d].write_err %r" % (i, d.get("write_err", "missing")))
    check("error" in d and d["error"] is None, "destinations[%d].error %r" % (i, d.get("error", "missing")))
check(r.get("read_err") in (0, False), "read_err %r" % r.get("read_err"))
check(isint(r.get("write_err")) and r.get("write_err") == 0, "write_err %r" % r.get("write_err"))
check(isint(r.get("bytes")) and r.get("bytes") == cnt * 512, "bytes %r != %d" % (r.get("bytes"), cnt * 512))
sec_ = r.get("seconds")
check(isinstance(sec_, (int, float)) and not isinstance(sec_, bool) and sec_ >= 0, "seconds %r" % sec_)
check(r.get("bad_ranges") == [], "bad_ranges %r" % r.get("bad_ranges"))
if errs:
    print("report: " + "; ".join(errs), file=sys.stderr)
    sys.exit(1)
EOF
}

kcopy_expect 0 --report "$T/report.json" "$SRC:8:16" "$T/r1.img" "$DST:100" >"$OUT"
no_stderr "--report FILE"
[[ ! -s $OUT ]] || fail "--report FILE wrote to stdout: $(head -n 3 "$OUT")"
cat "$T/report.json" >&2
check_report "$T/report.json" "$SRC" 8 16 "$T/r1.img:0:16" "$DST:100:16"
same_sectors "$SRC" 8 "$T/r1.img" 0 16
same_sectors "$SRC" 8 "$DST" 100 16
same_sectors "$DST" 0 "$T/dst.orig" 0 100
same_sectors "$DST" 116 "$T/dst.orig" 116 $((4096 - 116))
cp "$T/dst.orig" "$DST"

# --report -: the JSON is all there is on stdout.
kcopy_expect 0 --report - "$SRC:1M:64" "$T/r2.img" >"$OUT"
no_stderr "--report -"
check_report "$OUT" "$SRC" 2048 64 "$T/r2.img:0:64"
same_sectors "$SRC" 2048 "$T/r2.img" 0 64

# Devices in the report, with -q.
kcopy_expect 0 --report - "$SRC:0:32" "$L4K:64" >"$OUT"
check_report "$OUT" "$SRC" 0 32 "$L4K:64:32"
same_sectors "$SRC" 0 "$L4K" 64 32
kcopy_expect 0 -q --report - "$L4K:64:32" "$T/r3.img" "$DST:8" >"$OUT"
[[ ! -s $ERR_FILE ]] || fail "-q --report -: stderr: $(cat "$ERR_FILE")"
check_report "$OUT" "$L4K" 64 32 "$T/r3.img:0:32" "$DST:8:32"
same_sectors "$SRC" 0 "$T/r3.img" 0 32
same_sectors "$SRC" 0 "$DST" 8 32
cp "$T/dst.orig" "$DST"
dd if="$T/l4k.orig" of="$L4K" bs=1M oflag=direct conv=fsync status=none
same "$L4K" 0 "$T/l4k.orig" 0 $((4 * MiB))

# ---------------------------------------------------------------------- -q

for q in -q --quiet; do
	rm -f "$T/q.img"
	kcopy_expect 0 "$q" "$SRC:0:64" "$T/q.img" "$DST:16" >"$OUT"
	[[ ! -s $OUT && ! -s $ERR_FILE ]] ||
		fail "$q printed something on success: $(cat "$OUT" "$ERR_FILE")"
	same_sectors "$SRC" 0 "$T/q.img" 0 64
	same_sectors "$SRC" 0 "$DST" 16 64
	cp "$T/dst.orig" "$DST"
done
kcopy_expect 0 -q --zero "$T/qz.img:0:8" >"$OUT"
[[ ! -s $OUT && ! -s $ERR_FILE ]] || fail "-q --zero printed something: $(cat "$OUT" "$ERR_FILE")"

# ------------------------------------------------------------------- --zero

# A region of an existing file; everything else untouched.
kcopy_expect 0 --zero "$DST:100:50" >"$OUT"
size_is "$DST" $((2 * MiB))
is_zero_sectors "$DST" 100 50
same_sectors "$DST" 0 "$T/dst.orig" 0 100
same_sectors "$DST" 150 "$T/dst.orig" 150 $((4096 - 150))
cp "$T/dst.orig" "$DST"

# No COUNT: to the end of the file, which keeps its size.
kcopy_expect 0 -z "$DST:4000" >"$OUT"
size_is "$DST" $((2 * MiB))
is_zero_sectors "$DST" 4000 96
same_sectors "$DST" 0 "$T/dst.orig" 0 4000
cp "$T/dst.orig" "$DST"

# Byte sizes.
kcopy_expect 0 --zero "$DST:1M:4K" >"$OUT"
is_zero_sectors "$DST" 2048 8
same_sectors "$DST" 0 "$T/dst.orig" 0 2048
same_sectors "$DST" 2056 "$T/dst.orig" 2056 $((4096 - 2056))
cp "$T/dst.orig" "$DST"

# Two destinations with different counts (and a third, new file).
cp "$T/dst.orig" "$T/z2.img"
kcopy_expect 0 --zero "$DST:0:10" "$T/z2.img:5:20" "$T/zn.img:8:8" >"$OUT"
is_zero_sectors "$DST" 0 10
same_sectors "$DST" 10 "$T/dst.orig" 10 $((4096 - 10))
is_zero_sectors "$T/z2.img" 5 20
same_sectors "$T/z2.img" 0 "$T/dst.orig" 0 5
same_sectors "$T/z2.img" 25 "$T/dst.orig" 25 $((4096 - 25))
size_is "$T/zn.img" $((16 * 512))
is_zero_sectors "$T/zn.img" 0 16
cp "$T/dst.orig" "$DST"

# A region of a 512-byte device, odd numbers.
kcopy_expect 0 --zero "$L512:7:13" >"$OUT"
is_zero_sectors "$L512" 7 13
same_sectors "$L512" 0 "$T/l512.orig" 0 7
same_sectors "$L512" 20 "$T/l512.orig" 20 $((8192 - 20))
# A region of a 4096-byte device, and the two devices at once with
# different counts.
kcopy_expect 0 --zero "$L4K:8:16" >"$OUT"
is_zero_sectors "$L4K" 8 16
same_sectors "$L4K" 0 "$T/l4k.orig" 0 8
same_sectors "$L4K" 24 "$T/l4k.orig" 24 $((8192 - 24))
kcopy_expect 0 --zero "$L512:4096:64" "$L4K:1M:1M" >"$OUT"
is_zero_sectors "$L512" 4096 64
same_sectors "$L512" 20 "$T/l512.orig" 20 $((4096 - 20))
same_sectors "$L512" 4160 "$T/l512.orig" 4160 $((8192 - 4160))
is_zero_sectors "$L4K" 2048 2048
same_sectors "$L4K" 24 "$T/l4k.orig" 24 $((2048 - 24))
same_sectors "$L4K" 4096 "$T/l4k.orig" 4096 4096
exit 0

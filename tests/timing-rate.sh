#!/bin/bash
# Timing, not run by make check (make check-timing): --rate holds the
# average within 5% of the limit, and --throttle 10 makes a copy take at
# least 1.5 times as long as unthrottled.  Both need an idle machine: on a
# loaded one (other tests, builds) a copy is slower than either expects.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires python3

make_image "$T/src.img" 64M random

# --rate: the average over the copy within 5% of the limit, measured by
# kcopy's own clock in the report.  On a tmpfs where one can be mounted, so
# that other I/O on the machine's disk does not slow the copy below it.
rdir=$T
if [[ $(id -u) == 0 ]]; then
	rdir=$(make_tmpfs 640M)
	cp "$T/src.img" "$rdir/src.img"
else
	cp "$T/src.img" "$rdir/src.img"
fi
"$KCOPY" --rate 16M --report "$T/rate.json" "$rdir/src.img" "$rdir/rate.img" || fail "rate: status $?"
python3 - "$T/rate.json" <<'PY' || fail "rate limit not held"
import json, sys
r = json.load(open(sys.argv[1]))
rate = r["bytes"] / r["seconds"] / (1 << 20)
sys.exit(0 if abs(rate - 16) <= 0.8 else
         "rate %.2f MiB/s over %.2f s, wanted 16 +- 5%%" % (rate, r["seconds"]))
PY
assert_eq "$(sum "$rdir/rate.img")" "$(sum "$T/src.img")" "rate: data"
# --throttle 10: I/O in flight at most a tenth of the time, so the copy
# takes several times as long as unthrottled (measured: 5x when idle, 2x
# with the other core busy and a sanitizer build).
elapsed() {
	local s e
	s=$(now_ms)
	"$KCOPY" "$@" || fail "kcopy $*: status $?"
	e=$(now_ms)
	echo $((e - s))
}
cat "$T/src.img" "$T/src.img" "$T/src.img" "$T/src.img" >"$rdir/big.img"
# The fastest of three unthrottled runs: other work on the machine only
# ever makes a run slower.
full=
for _ in 1 2 3; do
	t=$(elapsed "$rdir/big.img" "$rdir/thr.img")
	[[ -n $full && $full -le $t ]] || full=$t
done
slow=$(elapsed --throttle 10 "$rdir/big.img" "$rdir/thr.img")
((slow * 2 >= 3 * full)) || fail "--throttle 10 took $slow ms, unthrottled $full ms"
assert_eq "$(sum "$rdir/thr.img")" "$(sum "$rdir/big.img")" "throttle: data"
echo "timing-rate: ok"

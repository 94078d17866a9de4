#!/bin/bash
# --progress on a pseudo-terminal (a bar redrawn in place) and off one
# (plain lines), --progress=json lines that parse and end at 100%, and
# --rate holding the average rate.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires script python3

make_image "$T/src.img" 64M random

# Off a terminal: one plain line per interval, the last at 100%.
"$KCOPY" --progress --progress-interval 0.5 --rate 32M "$T/src.img" "$T/plain.img" 2>"$T/plain.err" ||
	fail "plain progress: status $?"
lines=$(grep -c '^kcopy: .* / 64.0 MiB' "$T/plain.err") || true
((lines >= 3 && lines <= 8)) || fail "plain progress: $lines lines in ~2 s at 0.5 s intervals: $(cat "$T/plain.err")"
tail -n1 "$T/plain.err" | grep -q '64.0 MiB / 64.0 MiB (100.0%)' || fail "plain progress: no final 100% line"
grep -q $'\r' "$T/plain.err" && fail "plain progress: carriage returns off a terminal"
assert_eq "$(sum "$T/plain.img")" "$(sum "$T/src.img")" "plain progress: data"

# JSON lines: every line parses, bytes never go down, the last is final.
"$KCOPY" --progress=json --progress-interval 0.25 --rate 64M "$T/src.img" "$T/json.img" 2>"$T/json.err" ||
	fail "json progress: status $?"
python3 - "$T/json.err" <<'PY' || fail "json progress: $(cat "$T/json.err")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) >= 3, "too few lines: %d" % len(lines)
last = 0
for l in lines:
    for key in ("bytes", "total", "percent", "rate", "eta", "elapsed", "failed", "final"):
        assert key in l, key
    assert l["bytes"] >= last, "bytes went down"
    last = l["bytes"]
assert lines[-1]["final"] is True and lines[-1]["percent"] == 100.0, lines[-1]
assert lines[-1]["bytes"] == lines[-1]["total"] == 64 << 20
assert not any(l["final"] for l in lines[:-1])
PY

# On a terminal: the bar is redrawn in place (carriage return, erase line)
# and ends in a newline at 100%.
TERM=xterm script -qec "'$KCOPY' --progress --rate 32M '$T/src.img' '$T/tty.img'" "$T/typescript" >/dev/null ||
	fail "progress on a terminal: status $?"
redraws=$(grep -o $'\r\e\\[K' "$T/typescript" | wc -l)
((redraws >= 4)) || fail "progress on a terminal: $redraws redraws in ~2 s"
grep -q '100% \[========================\]' "$T/typescript" || fail "progress on a terminal: no full bar"
grep -q 'ETA' "$T/typescript" || fail "progress on a terminal: no ETA"

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
	s=$(date +%s%N)
	"$KCOPY" "$@" || fail "kcopy $*: status $?"
	e=$(date +%s%N)
	echo $(((e - s) / 1000000))
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
echo "kcopy-progress: ok"

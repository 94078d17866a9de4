#!/bin/bash
# --progress on a pseudo-terminal (a bar redrawn in place) and off one
# (plain lines), --progress=json lines that parse and end at 100%, and
# --rate holding the average rate.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires script python3

make_image "$T/src.img" 64M random

# Off a terminal: one plain line per interval, the last at 100%.  --rate
# makes the copy last 2 s at least (3 lines or more); on a loaded machine
# it may last longer, so the most lines allowed follow the time it took.
t0=$(now_ms)
"$KCOPY" --progress --progress-interval 0.5 --rate 32M "$T/src.img" "$T/plain.img" 2>"$T/plain.err" ||
	fail "plain progress: status $?"
ms=$(($(now_ms) - t0))
lines=$(grep -c '^kcopy: .* / 64.0 MiB' "$T/plain.err") || true
((lines >= 3 && lines <= ms / 500 + 2)) || fail "plain progress: $lines lines in $ms ms at 0.5 s intervals: $(cat "$T/plain.err")"
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

# --rate: the average over the copy never above the limit (by kcopy's own
# clock in the report), whatever the load.  How close to the limit it
# stays (5%), and how much --throttle slows a copy, depend on the machine
# being idle: tests/timing-rate.sh, make check-timing.
"$KCOPY" --rate 16M --report "$T/rate.json" "$T/src.img" "$T/rate.img" || fail "rate: status $?"
python3 - "$T/rate.json" <<'PY' || fail "rate limit not held"
import json, sys
r = json.load(open(sys.argv[1]))
rate = r["bytes"] / r["seconds"] / (1 << 20)
sys.exit(0 if rate <= 16.8 else
         "rate %.2f MiB/s over %.2f s, wanted at most 16 + 5%%" % (rate, r["seconds"]))
PY
assert_eq "$(sum "$T/rate.img")" "$(sum "$T/src.img")" "rate: data"
# --throttle 10: the data as without it.
"$KCOPY" --throttle 10 "$T/src.img" "$T/thr.img" || fail "throttle: status $?"
assert_eq "$(sum "$T/thr.img")" "$(sum "$T/src.img")" "throttle: data"
echo "kcopy-progress: ok"

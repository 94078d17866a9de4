#!/bin/bash
# --progress on a pseudo-terminal (a bar redrawn in place, as wide as the
# terminal) and off one (plain lines), --progress=json lines that parse and
# end at 100%, the phases (--verify's read-back), --progress=fd:N, and
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
# and ends in a newline at 100%; its line is as wide as the terminal less
# one column, and follows it when it changes (SIGWINCH: stty in the same
# process group, the terminal's foreground one).
TERM=xterm script -qec "stty cols 100 rows 24; '$KCOPY' --progress --rate 32M '$T/src.img' '$T/tty.img' & sleep 1; stty cols 70; wait \$!" "$T/typescript" >/dev/null ||
	fail "progress on a terminal: status $?"
redraws=$(grep -o $'\r\e\\[K' "$T/typescript" | wc -l)
((redraws >= 4)) || fail "progress on a terminal: $redraws redraws in ~2 s"
grep -q 'ETA' "$T/typescript" || fail "progress on a terminal: no ETA"
python3 - "$T/typescript" <<'PY' || fail "progress on a terminal: $(tr '\r' '\n' <"$T/typescript" | tail -n 4)"
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read()
bars = [b.rstrip("\n") for b in text.split("\r\x1b[K")[1:]]
bars = [b.split("\r")[0].split("\n")[0] for b in bars if b.startswith("copy")]
widths = [len(b) for b in bars]
assert 99 in widths and 69 in widths, widths
assert widths.index(69) > widths.index(99), "narrower before wider"
assert max(widths) <= 99, widths
assert re.search(r"100% \[=+\]", bars[-1]), bars[-1]
PY

# --verify: the read-back is a phase of its own, with lines of its own
# before the final line (which comes at the end, after it); the report has
# each phase's seconds, and the run's are all of them.
"$KCOPY" --progress=json --progress-interval 0.2 --rate 64M --verify --report "$T/ver.json" \
	"$T/src.img" "$T/ver1.img" "$T/ver2.img" 2>"$T/ver.err" || fail "verify progress: status $?"
python3 - "$T/ver.err" "$T/ver.json" <<'PY' || fail "verify progress: $(cat "$T/ver.err")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
phases = [l["phase"] for l in lines]
assert phases[0] == "copy" and phases[-1] == "verify", phases
assert phases.count("verify") >= 3, phases        # 128 MiB read back at 64M/s
assert phases == sorted(phases, key=["copy", "flush", "verify"].index), phases
copy_end = [l for l in lines if l["phase_done"] and l["phase"] == "copy"]
assert len(copy_end) == 1 and not copy_end[0]["final"], copy_end
assert copy_end[0]["bytes"] == copy_end[0]["total"] == 64 << 20, copy_end
assert copy_end[0]["written"] == 2 * copy_end[0]["read"] == 128 << 20, copy_end
assert [l["final"] for l in lines].count(True) == 1 and lines[-1]["final"]
last = lines[-1]
assert last["bytes"] == last["total"] == 128 << 20, last  # both read back
assert last["moved"] == 128 << 20 and last["destinations"] == 2, last
r = json.load(open(sys.argv[2]))
p = r["phases"]
assert set(p) <= {"copy", "flush", "verify"} and "copy" in p and "verify" in p, p
assert p["verify"] >= 1.5, p                        # at 64M/s
assert abs(sum(p.values()) - r["seconds"]) < 0.05, (p, r["seconds"])
assert abs(r["seconds"] - last["elapsed"]) < 0.05, (r["seconds"], last)
assert r["verified"] is True and r["bytes_verified"] == 128 << 20, r
PY
# SIGUSR1 during the read-back: the status line says so.
"$KCOPY" --progress=json --progress-interval 0.1 --rate 32M --verify "$T/src.img" "$T/ver1.img" 2>"$T/usr1.err" &
pid=$!
for _ in $(seq 100); do
	grep -q '"phase": "verify"' "$T/usr1.err" && break
	sleep 0.1
done
kill -USR1 "$pid" 2>/dev/null || fail "verify SIGUSR1: kcopy ended before the read-back"
wait "$pid" || fail "verify SIGUSR1: status $?"
grep -Eq '^kcopy: [0-9]+ bytes \([^)]*\) of 67108864 read back \(verify\)' "$T/usr1.err" ||
	fail "verify SIGUSR1: $(grep -v '^{' "$T/usr1.err")"

# -v: the closing line's seconds are the run's, the read-back's in them.
"$KCOPY" -v --verify --rate 64M "$T/src.img" "$T/ver1.img" 2>"$T/v.err" || fail "verify -v: status $?"
grep -Eq 'copied to 1 destination\(s\) and verified in [0-9.]+ s \(copy [0-9.]+ s(, flush [0-9.]+ s)?, verify [0-9.]+ s\)' "$T/v.err" ||
	fail "verify -v: $(cat "$T/v.err")"

# --progress=fd:3: JSON lines to descriptor 3, nothing on standard error;
# plain,fd:3 plain lines.  A descriptor not open for writing is refused.
"$KCOPY" --progress=fd:3 --progress-interval 0.2 --rate 64M "$T/src.img" "$T/fd.img" \
	3>"$T/fd3.out" 2>"$T/fd.err" || fail "progress to fd 3: status $?"
[[ -s $T/fd.err ]] && fail "progress to fd 3: on stderr: $(cat "$T/fd.err")"
python3 - "$T/fd3.out" <<'PY' || fail "progress to fd 3: $(cat "$T/fd3.out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) >= 3 and lines[-1]["final"] and lines[-1]["percent"] == 100.0, lines
PY
"$KCOPY" --progress=plain,fd:3 "$T/src.img" "$T/fd.img" 3>"$T/fd3.out" 2>"$T/fd.err" ||
	fail "plain progress to fd 3: status $?"
grep -q '^kcopy: copy 64.0 MiB / 64.0 MiB (100.0%)' "$T/fd3.out" || fail "plain progress to fd 3: $(cat "$T/fd3.out")"
"$KCOPY" --progress=fd:3 "$T/src.img" "$T/fd.img" 3<"$T/src.img" 2>"$T/fd.err" && fail "fd 3 read-only: accepted"
grep -q "descriptor 3 is not open for writing" "$T/fd.err" || fail "fd 3 read-only: $(cat "$T/fd.err")"

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

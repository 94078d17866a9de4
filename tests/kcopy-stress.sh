#!/bin/bash
# Stress for races between kcopy's threads: 256 MiB to seven destinations,
# three of which run out of space at different points of the copy, with JSON
# progress every millisecond and a SIGUSR1 status request every few
# milliseconds.  The exit status is exactly the failed destinations' bits,
# the healthy ones hold the source, every progress line parses and the
# status lines are whole lines.  Under ThreadSanitizer (CI's thread step)
# this is the test that has the engine thread record destination errors
# while the main thread reads them for progress and status lines.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires python3 jq
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

MiB=$((1024 * 1024))
SIZE=$((256 * MiB))

# Everything on tmpfs, so that the disk's speed does not decide how long
# the copy takes; the three small ones fill up at about 1/8, 3/8 and 5/8 of
# the copy.
big=$(make_tmpfs $((5 * SIZE / MiB + 64))m)
full1=$(make_tmpfs 32m)
full2=$(make_tmpfs 96m)
full3=$(make_tmpfs 160m)
SRC=$big/src.img
make_image "$SRC" "$SIZE" random

DESTS=("$big/d1.img" "$full1/d2.img" "$big/d3.img" "$full2/d4.img"
	"$big/d5.img" "$big/d6.img" "$full3/d7.img")
FAILED=("2:write: $ENOSPC_TEXT" "4:write: $ENOSPC_TEXT" "7:write: $ENOSPC_TEXT")

ERR_FILE=$T/stress.err
# The rate keeps the copy going for about two seconds, long enough for a
# few hundred signals; progress every millisecond.
"$KCOPY" --progress=json --progress-interval 0.001 --rate 128M \
	--report "$T/report.json" "$SRC" "${DESTS[@]}" 2>"$ERR_FILE" &
pid=$!
cleanup_add "kill -KILL $pid 2>/dev/null"
wait_for 10 signal_ready "$pid" 10 || {
	cat "$ERR_FILE" >&2
	fail "kcopy did not install its SIGUSR1 handler"
}
sent=0
while pid_alive "$pid"; do
	kill -USR1 "$pid" 2>/dev/null || break
	sent=$((sent + 1))
	sleep 0.003
	((sent < 100000)) || break
done
if ! wait_gone "$pid" 60; then
	kill -KILL "$pid" 2>/dev/null
	fail "kcopy still running after 60 s"
fi
wait "$pid" && ST=0 || ST=$?
echo "sent $sent SIGUSR1, kcopy exited with $ST" >&2
grep -v -e '^{' -e '^kcopy: [0-9]* bytes ' "$ERR_FILE" >&2 || true
# A sanitizer's report (the process exits at the first one in CI's
# sanitizer steps) is a failure of its own, whatever the status.
if grep -q '^SUMMARY: [A-Za-z]*Sanitizer' "$ERR_FILE"; then
	fail "sanitizer report: $(grep '^SUMMARY: [A-Za-z]*Sanitizer' "$ERR_FILE")"
fi
((sent > 0)) || fail "no SIGUSR1 was sent during the copy"

# stderr holds, one per line: JSON progress, status lines, the failed
# writes' messages and the closing line, and nothing else.  Every JSON
# line parses; bytes and failed never go down; the last is final, at 100%
# of the bytes copied, with three destinations failed.
python3 - "$ERR_FILE" "$SIZE" >"$T/counts" <<'PY' || fail "stderr is not what it should be (see above)"
import json, re, sys
path, size = sys.argv[1], int(sys.argv[2])
status_re = re.compile(r"^kcopy: [0-9]+ bytes .* of %d copied" % size)
other_re = re.compile(r"^kcopy: (destination [0-9]+ '[^']*': write error at sector [0-9]+: "
                      r"No space left on device; dropped|exit status [0-9]+: .*)$")
errs, progress, status = [], [], 0
for n, line in enumerate(open(path), 1):
    line = line.rstrip("\n")
    if line.startswith("{"):
        try:
            p = json.loads(line)
        except ValueError as e:
            errs.append("line %d: not JSON (%s): %r" % (n, e, line))
            continue
        missing = [k for k in ("bytes", "total", "percent", "rate", "eta",
                               "elapsed", "failed", "final") if k not in p]
        if missing:
            errs.append("line %d: no %s: %r" % (n, ", ".join(missing), line))
            continue
        progress.append((n, p))
    elif status_re.match(line):
        status += 1
    elif not other_re.match(line):
        errs.append("line %d: unexpected: %r" % (n, line))
last = None
for n, p in progress:
    if p["total"] != size:
        errs.append("line %d: total %r" % (n, p["total"]))
    if last and (p["bytes"] < last["bytes"] or p["failed"] < last["failed"]):
        errs.append("line %d: bytes or failed went down: %r after %r" % (n, p, last))
    if last and last["final"]:
        errs.append("line %d: progress after the final line" % n)
    last = p
if not progress:
    errs.append("no progress line")
elif not (last["final"] and last["bytes"] == size and last["failed"] == 3):
    errs.append("last progress line: %r" % last)
if errs:
    print("\n".join(errs[:20]), file=sys.stderr)
    sys.exit(1)
print(len(progress), status)
PY
read -r nprogress nstatus <"$T/counts"
echo "$nprogress progress lines, $nstatus status lines" >&2
((nstatus > 0)) || fail "no status line for $sent SIGUSR1"
((nprogress > 100)) || fail "only $nprogress progress lines in a copy of about 2 s"

# The exit status, the closing line, the report and the healthy
# destinations' data.
ALL_ERR=$ERR_FILE
ERR_FILE=$T/closing.err
grep '^kcopy: exit status ' "$ALL_ERR" >"$ERR_FILE" || true
assert_eq "$(wc -l <"$ERR_FILE")" 1 "closing lines"
check_dest_errors stress "$T/report.json" "${FAILED[@]}"
# The failed ones failed mid-copy, when their file systems were full.
for d in 2 4 7; do
	size=$(stat -c %s "${DESTS[d - 1]}")
	((size > 0 && size < SIZE)) || fail "destination $d: $size bytes"
done
echo PASS >&2
exit 0

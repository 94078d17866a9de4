#!/bin/bash
# SIGINT, SIGTERM, SIGHUP stop kcopy after the I/O in flight (exit 128+N, report, copied bytes really there); a second SIGINT exits at once; SIGUSR1 prints a status line
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires_fuse
requires jq

SIZE=$((128 * 1024 * 1024))
make_image "$T/src.img" "$SIZE" random
SRC=$T/src.img

# The destination loop device is reused; it starts out zero each time.
make_image "$T/dest2.img" "$SIZE" zero
DEST2=$(make_loop "$T/dest2.img")

# ------------------------------------------- SIGINT, SIGTERM and SIGHUP
# The last one with --sequential (WRITE_SEQ): sub-jobs read ahead of their
# turn are dropped, not written.
for run in INT TERM HUP INT:-s; do
	sig=${run%%:*}
	extra=()
	[[ $run == *:* ]] && extra=("${run#*:}")
	case $sig in
	INT) n=2 ;;
	TERM) n=15 ;;
	HUP) n=1 ;;
	esac
	echo "== SIG$sig ${extra[*]}" >&2
	out1=$T/sig$sig${extra[0]:-}.out
	rep=$T/sig$sig${extra[0]:-}.json
	err=$T/sig$sig${extra[0]:-}.err
	dd if=/dev/zero of="$DEST2" bs=1M count=128 oflag=direct status=none
	"$KCOPY" "${extra[@]}" --rate 20M --report "$rep" "$SRC" "$out1" "$DEST2" 2>"$err" &
	pid=$!
	wait_for 10 signal_ready "$pid" "$n" || fail "SIG$sig: kcopy did not start"
	sleep 1
	pid_alive "$pid" || fail "SIG$sig: kcopy finished before the signal"
	t0=$(now_ms)
	kill -s "$sig" "$pid"
	# It stops after the I/O in flight (well under a second idle); 10 s
	# leaves room for a loaded machine and a sanitizer build.
	if ! wait_gone "$pid" 10; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || true
		cat "$err" >&2
		fail "SIG$sig: kcopy still running 10 s after the signal"
	fi
	t1=$(now_ms)
	wait "$pid" && st=0 || st=$?
	cat "$err" >&2
	echo "exited $((t1 - t0)) ms after SIG$sig" >&2
	expect_status "$st" "signal:$n" "SIG$sig: exit status"
	[[ -s $rep ]] || fail "SIG$sig: no report"
	bytes=$(jq -r .bytes "$rep")
	assert_eq "$(jq -r .signal "$rep")" "$n" "SIG$sig: report signal"
	expect_report_status "$rep" "signal:$n" "SIG$sig: report"
	assert_eq "$(jq -r .bytes_total "$rep")" "$SIZE" "SIG$sig: report bytes_total"
	((bytes > 0 && bytes < SIZE)) || fail "SIG$sig: report bytes $bytes not in (0, $SIZE)"
	ERR_FILE=$err
	expect_closing "signal:$n" "; stopped by signal $n after $bytes bytes" \
		"SIG$sig: closing line"
	# Every byte reported as copied is there, in every destination.
	want=$(sum "$SRC" 0 "$bytes")
	assert_eq "$(sum "$out1" 0 "$bytes")" "$want" "SIG$sig: destination 1, first $bytes bytes"
	assert_eq "$(sum "$DEST2" 0 "$bytes")" "$want" "SIG$sig: destination 2, first $bytes bytes"
	# No sub-job is left half done: the sub-jobs issued are a prefix, and
	# all of them finished, so nothing lies beyond.
	assert_eq "$(stat -c %s "$out1")" "$bytes" "SIG$sig: size of the new destination 1"
	is_zero "$DEST2" "$bytes" $((SIZE - bytes)) \
		"SIG$sig: destination 2 written past the reported bytes"
done

# ---------------------------------------------------- a second SIGINT
# A destination that does not answer: its faultfs daemon is stopped, so the
# writes in flight to it block.  One SIGINT waits for them; a second one
# exits without waiting.  (The kernel still holds the process until its
# in-flight AIO completes, so the daemon is let go again afterwards.)
make_image "$T/fuse.img" "$SIZE" zero
make_fault_device "$T/fuse.img" >/dev/null
FDEV=$FAULT_DEV FPID=$FAULT_PID

# start_stuck OUT REPORT ERR: a copy to a new file and to FDEV, with FDEV's
# daemon stopped while writes are in flight.  Sets PID.
start_stuck() {
	kill -CONT "$FPID"
	"$KCOPY" --rate 20M --report "$2" "$SRC" "$1" "$FDEV" 2>"$3" &
	PID=$!
	wait_for 10 signal_ready "$PID" 2 || fail "kcopy did not start"
	sleep 0.7
	kill -STOP "$FPID"
	sleep 0.5
	pid_alive "$PID" || fail "kcopy finished too early"
}

# release: let the daemon answer again (on failure paths too).
release() {
	kill -CONT "$FPID" 2>/dev/null || true
}
cleanup_add "kill -CONT $FPID 2>/dev/null"

echo "== one SIGINT with a destination that does not answer: waits" >&2
start_stuck "$T/once.out" "$T/once.json" "$T/once.err"
kill -INT "$PID"
sleep 1.5
if ! pid_alive "$PID"; then
	release
	wait "$PID" || true
	cat "$T/once.err" >&2
	fail "one SIGINT: kcopy did not wait for the writes in flight"
fi
grep -q 'stopping after the I/O in flight' "$T/once.err" ||
	fail "one SIGINT: no message that kcopy is stopping"
[[ -e $T/once.json ]] && fail "one SIGINT: report written before the I/O in flight finished"
release
wait_gone "$PID" 20 || {
	fault_device_kill "$FDEV"
	fail "one SIGINT: kcopy still running 20 s after the destination answered again"
}
wait "$PID" && st=0 || st=$?
cat "$T/once.err" >&2
expect_status "$st" signal:INT "one SIGINT: exit status"
assert_eq "$(jq -r .signal "$T/once.json")" 2 "one SIGINT: report signal"
bytes=$(jq -r .bytes "$T/once.json")
((bytes > 0)) || fail "one SIGINT: nothing copied"
want=$(sum "$SRC" 0 "$bytes")
assert_eq "$(sum "$T/once.out" 0 "$bytes")" "$want" "one SIGINT: destination 1"
assert_eq "$(sum "$FDEV" 0 "$bytes")" "$want" "one SIGINT: destination 2 (FUSE)"

echo "== two SIGINTs with a destination that does not answer: exits at once" >&2
start_stuck "$T/twice.out" "$T/twice.json" "$T/twice.err"
kill -INT "$PID"
sleep 0.1
kill -INT "$PID"
t0=$(now_ms)
# kcopy's user space is gone at once: the message, then no thread of it
# runs any more (the process is only held in the kernel for its AIO).
# At once is well under a second idle; 5 s leaves room for a loaded machine.
ok=0
for ((i = 0; i < 100; i++)); do
	if grep -q 'interrupted again' "$T/twice.err" &&
		! grep -qs '^State:[[:space:]]*[RS]' "/proc/$PID/status"; then
		ok=1
		break
	fi
	sleep 0.05
done
if ((ok == 0)); then
	release
	cat "$T/twice.err" >&2
	fail "two SIGINTs: kcopy still running 5 s after the second SIGINT ($(grep State "/proc/$PID/status" 2>/dev/null))"
fi
release
wait_gone "$PID" 10 || fail "two SIGINTs: kcopy not gone 10 s after the destination answered again"
t1=$(now_ms)
wait "$PID" && st=0 || st=$?
cat "$T/twice.err" >&2
echo "exited $((t1 - t0)) ms after the second SIGINT (daemon stopped in between)" >&2
expect_status "$st" signal:INT "two SIGINTs: exit status"
[[ -e $T/twice.json ]] && fail "two SIGINTs: kcopy waited and wrote its report"
grep -q 'interrupted again: exiting without waiting' "$T/twice.err" ||
	fail "two SIGINTs: no message"

# -------------------------------------------------------------- SIGUSR1
echo "== SIGUSR1" >&2
USIZE=$((32 * 1024 * 1024))
"$KCOPY" --rate 20M --report "$T/usr1.json" "$SRC:0:32M" "$T/usr1.out" 2>"$T/usr1.err" &
pid=$!
wait_for 10 signal_ready "$pid" 10 || fail "SIGUSR1: kcopy did not start"
sleep 0.6
pid_alive "$pid" || fail "SIGUSR1: kcopy finished before the signal"
kill -USR1 "$pid"
wait_gone "$pid" 20 || fail "SIGUSR1: copy did not finish"
wait "$pid" && st=0 || st=$?
cat "$T/usr1.err" >&2
assert_eq "$st" 0 "SIGUSR1: exit status"
assert_eq "$(wc -l <"$T/usr1.err")" 1 "SIGUSR1: lines on stderr"
grep -Eq "^kcopy: [0-9]+ bytes .* of $USIZE copied" "$T/usr1.err" ||
	fail "SIGUSR1: not a status line: $(cat "$T/usr1.err")"
b=$(sed -E 's/^kcopy: ([0-9]+) bytes.*/\1/' "$T/usr1.err")
((b > 0 && b < USIZE)) || fail "SIGUSR1: status line says $b bytes"
assert_eq "$(jq -r .signal "$T/usr1.json")" 0 "SIGUSR1: report signal"
assert_eq "$(jq -r .bytes "$T/usr1.json")" "$USIZE" "SIGUSR1: report bytes"
assert_eq "$(sum "$T/usr1.out")" "$(sum "$SRC" 0 "$USIZE")" "SIGUSR1: destination"

echo PASS >&2
exit 0

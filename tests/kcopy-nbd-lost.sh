#!/bin/bash
# A lost NBD connection (the server stopped, then killed, mid-copy) is not
# a bad sector and never a hang: a lost source ends the read side of the
# copy (exit status bit 0) under --ignore-errors too, without bisecting or
# zero-filling anything, and with --mapfile what was not read stays '?';
# a lost destination is that destination's write error.  On each I/O
# engine the build and the kernel offer; and a server that only stalls,
# dropped by --timeout.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires nbdkit timeout
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

SRC=$T/src.img
make_image "$SRC" 32M pattern:LOST
requires_nbd

engines=(libaio)
if grep -q '^#define HAVE_LIBURING 1' "$top_builddir/config.h" &&
	KCOPYD_IO_ENGINE=io_uring "$KCOPY" -q "$SRC:0:8" "$T/probe.img" \
		2>/dev/null; then
	engines=(io_uring libaio)
fi

# lose NAME: stop the server NAME once the copy is under way, then kill
# it (a stopped server answers nothing; the kill resets its sockets).
lose() {
	local pid
	pid=$(nbd_pid "$1")
	sleep 0.7
	kill -STOP "$pid"
	sleep 0.3
	kill -KILL "$pid"
}

# run_lost NAME ARGS...: kcopy ARGS in the background while lose NAME
# runs; sets ST (124: it hung) and ERR_FILE.
run_lost() {
	local name=$1
	shift
	ERR_FILE=$(mktemp "$T/stderr.XXXXXX")
	timeout -s KILL 30 "$KCOPY" "$@" 2>"$ERR_FILE" &
	local kpid=$!
	lose "$name"
	wait "$kpid" && ST=0 || ST=$?
	cat "$ERR_FILE" >&2
	[[ $ST != 137 ]] || fail "kcopy $* hung after the server was killed"
}

for engine in "${engines[@]}"; do
	export KCOPYD_IO_ENGINE=$engine
	for map in "" "--mapfile"; do
		what="$engine${map:+, $map}"
		echo "== lost source: $what" >&2
		# Each read takes 250 ms: the copy is under way, far from
		# over, when the server goes.
		S=$(make_nbd "s$engine${map:+m}" --filter=delay file "$SRC" \
			delay-read=250ms)
		rm -f "$T/out.img" "$T/m"
		run_lost "s$engine${map:+m}" -i ${map:+--mapfile "$T/m"} \
			"$S" "$T/out.img"
		expect_status "$ST" read "lost source ($what): exit status"
		grep -q "connection lost" "$ERR_FILE" ||
			fail "lost source ($what): stderr does not say so"
		if grep -q "isolating bad sectors" "$ERR_FILE"; then
			fail "lost source ($what): taken for bad sectors"
		fi
		if [[ -n $map ]]; then
			assert_eq "$(mapfile_bytes "$T/m" -)" 0 \
				"lost source ($what): '-' areas in the mapfile"
			[[ $(mapfile_bytes "$T/m" '?') -gt 0 ]] ||
				fail "lost source ($what): nothing left '?': $(cat "$T/m")"
		fi
	done

	echo "== lost destination: $engine" >&2
	for opt in "" "-i"; do
		D=$(make_nbd "d$engine$opt" --filter=delay memory 32M \
			delay-write=250ms)
		run_lost "d$engine$opt" $opt "$SRC" "$D" "$T/other.img"
		expect_status "$ST" dest:1 "lost destination ($engine $opt): exit status"
		grep -q "destination 1 .*connection lost" "$ERR_FILE" ||
			fail "lost destination ($engine $opt): stderr does not say so"
		cmp "$SRC" "$T/other.img" ||
			fail "lost destination ($engine $opt): the other differs"
		rm -f "$T/other.img"
	done
done
# A server that stops answering and stays (SIGSTOP only): --timeout drops
# its connections, which is a lost connection too, not a bad sector.
unset KCOPYD_IO_ENGINE
echo "== stalled source, --timeout 2" >&2
S=$(make_nbd stall --filter=delay file "$SRC" delay-read=250ms)
ERR_FILE=$(mktemp "$T/stderr.XXXXXX")
timeout -s KILL 40 "$KCOPY" -i --timeout 2 --mapfile "$T/ms" "$S" \
	"$T/stall.img" 2>"$ERR_FILE" &
kpid=$!
sleep 0.7
kill -STOP "$(nbd_pid stall)"
wait "$kpid" && ST=0 || ST=$?
kill -CONT "$(nbd_pid stall)"
cat "$ERR_FILE" >&2
[[ $ST != 137 ]] || fail "stalled source: kcopy hung"
expect_status "$ST" read "stalled source: exit status"
grep -q "connection lost.*timed out" "$ERR_FILE" ||
	fail "stalled source: stderr does not say the connection was lost"
assert_eq "$(mapfile_bytes "$T/ms" -)" 0 "stalled source: '-' areas"
exit 0

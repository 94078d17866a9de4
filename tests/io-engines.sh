#!/bin/bash
# The kernel interfaces local I/O goes through: io_uring by default where
# the build has liburing, libaio where io_uring is refused (a seccomp filter,
# as in a container or under kernel.io_uring_disabled) or where
# KCOPYD_IO_ENGINE=libaio chooses it.  The rest of the suite runs on the
# default; here the library's tests and copies to files and loop devices
# (direct I/O, 4096-byte sectors, unaligned regions, a write error) run on each, and
# the interface a running kcopy uses is read from /proc.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires_root
requires_loop
requires cmp prlimit setpriv
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"
NO_URING=$(__abspath "$top_builddir/tests/no-uring")
[[ -x $NO_URING ]] || fail "no $NO_URING: build it first"

have_uring=0
grep -q '^#define HAVE_LIBURING 1' "$top_builddir/config.h" && have_uring=1

make_image "$T/src.img" 24M random

# Built with liburing, but does this kernel let us use io_uring?  If not
# (kernel.io_uring_disabled, a container's seccomp profile), the default
# is libaio, which is what the checks below then expect.
if ((have_uring)) && ! KCOPYD_IO_ENGINE=io_uring "$KCOPY" -q \
	"$T/src.img:0:8" "$T/probe.img" 2>"$T/probe.err"; then
	echo "io_uring refused here: $(cat "$T/probe.err")" >&2
	have_uring=0
fi
engines=(libaio)
((have_uring)) && engines=(io_uring libaio)

# engine_of [ENV...] -- [WRAPPER...]: start a copy held back by --rate in
# the background, and print which interface its process has open:
# "io_uring" (an io_uring file descriptor; "io_uring registered" if the
# budget is registered with it), "libaio" (an aio ring mapped), or what it
# has of both.
engine_of() {
	local envs=() pid i got=""
	while [[ $1 != -- ]]; do envs+=("$1"); shift; done
	shift
	rm -f "$T/slow.img"
	env "${envs[@]}" "$@" "$KCOPY" -q --rate 4M "$T/src.img" \
		"$T/slow.img" 2>"$T/slow.err" &
	pid=$!
	cleanup_add "kill $pid 2>/dev/null || true"
	# the client is created before the first byte is copied (15 s for a
	# loaded machine; it is there in well under a second)
	for ((i = 0; i < 300; i++)); do
		[[ -s $T/slow.img ]] && break
		sleep 0.05
	done
	[[ -s $T/slow.img ]] || fail "the copy did not start: $(cat "$T/slow.err")"
	for fd in "/proc/$pid/fd"/*; do
		[[ $(readlink "$fd" 2>/dev/null) == 'anon_inode:[io_uring]' ]] ||
			continue
		got="io_uring"
		# the page budget registered as fixed buffers
		grep -q '^UserBufs:[[:space:]]*[1-9]' \
			"/proc/$pid/fdinfo/${fd##*/}" && got="$got registered"
	done
	grep -q '/\[aio\]' "/proc/$pid/maps" 2>/dev/null && got="$got${got:+ }libaio"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	echo "$got"
}

# --------------------------------------------------- which one is taken
if ((have_uring)); then
	assert_eq "$(engine_of --)" "io_uring registered" "the default"
	# a memory lock limit too small for the budget (8 MiB) and no
	# CAP_IPC_LOCK: io_uring, the budget not registered, the copy right
	assert_eq "$(engine_of -- prlimit --memlock=65536:65536 \
		setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock)" \
		io_uring "RLIMIT_MEMLOCK 64 KiB"
	rm -f "$T/m.img"
	prlimit --memlock=65536:65536 setpriv --inh-caps=-ipc_lock \
		--bounding-set=-ipc_lock "$KCOPY" -q "$T/src.img" "$T/m.img" ||
		fail "RLIMIT_MEMLOCK 64 KiB: kcopy failed"
	cmp "$T/src.img" "$T/m.img" || fail "RLIMIT_MEMLOCK 64 KiB: the copy differs"
	# refused by the kernel: libaio, whichever errno (EPERM, ENOSYS)
	assert_eq "$(engine_of -- "$NO_URING" 1)" libaio "io_uring refused (EPERM)"
	assert_eq "$(engine_of -- "$NO_URING" 38)" libaio "io_uring refused (ENOSYS)"
	# chosen and refused: a setup error naming the variable
	KCOPYD_IO_ENGINE=io_uring "$NO_URING" 1 "$KCOPY" -q "$T/src.img" \
		"$T/x.img" 2>"$T/err" && st=0 || st=$?
	expect_status "$st" setup "KCOPYD_IO_ENGINE=io_uring, refused: exit status"
	grep -q '^kcopy: cannot set up the copy engine: KCOPYD_IO_ENGINE=io_uring: Operation not permitted$' "$T/err" ||
		fail "KCOPYD_IO_ENGINE=io_uring, refused: $(cat "$T/err")"
	[[ ! -e $T/x.img ]] || fail "KCOPYD_IO_ENGINE=io_uring, refused: created its destination"
else
	assert_eq "$(engine_of --)" libaio "the default without a usable io_uring"
	KCOPYD_IO_ENGINE=io_uring "$KCOPY" -q "$T/src.img" "$T/x.img" \
		2>"$T/err" && st=0 || st=$?
	expect_status "$st" setup "KCOPYD_IO_ENGINE=io_uring without a usable io_uring"
	grep -q '^kcopy: cannot set up the copy engine: KCOPYD_IO_ENGINE=io_uring: ' "$T/err" ||
		fail "KCOPYD_IO_ENGINE=io_uring without io_uring: $(cat "$T/err")"
fi
assert_eq "$(engine_of KCOPYD_IO_ENGINE=libaio --)" libaio "KCOPYD_IO_ENGINE=libaio"
KCOPYD_IO_ENGINE=uring "$KCOPY" -q "$T/src.img" "$T/x.img" 2>"$T/err" &&
	st=0 || st=$?
expect_status "$st" setup "KCOPYD_IO_ENGINE=uring: exit status"
assert_eq "$(cat "$T/err")" "kcopy: cannot set up the copy engine: KCOPYD_IO_ENGINE=uring: expected io_uring or libaio" "KCOPYD_IO_ENGINE=uring"
[[ ! -e $T/x.img ]] || fail "KCOPYD_IO_ENGINE=uring: created its destination"

# ----------------------------------------------------- the work, on each
make_image "$T/d512.img" 32M zero
make_image "$T/d4k.img" 32M zero
d512=$(make_loop "$T/d512.img")
d4k=$(make_loop "$T/d4k.img" -b 4096)
small=$(make_tmpfs 8m)
for e in "${engines[@]}"; do
	export KCOPYD_IO_ENGINE=$e
	# the library's own tests
	run_watchdog 300 "$top_builddir/tests/test-lib" >"$T/lib.out" 2>&1 ||
		fail "$e: test-lib failed: $(tail -n 20 "$T/lib.out")"
	run_watchdog 300 "$top_builddir/tests/test-faults" >"$T/faults.out" 2>&1 ||
		fail "$e: test-faults failed: $(tail -n 20 "$T/faults.out")"
	# a file, a 512 and a 4096 loop device (direct I/O), an odd size
	rm -f "$T/f.img"
	kcopy_expect 0 -q "$T/src.img" "$T/f.img" "$d512" "$d4k"
	cmp "$T/src.img" "$T/f.img" || fail "$e: file destination differs"
	cmp -n $((24 << 20)) "$T/src.img" "$d512" || fail "$e: 512 device differs"
	cmp -n $((24 << 20)) "$T/src.img" "$d4k" || fail "$e: 4096 device differs"
	# regions not aligned for direct I/O: through the page cache
	rm -f "$T/odd.img"
	kcopy_expect 0 -q "$T/src.img:7:1001" "$T/odd.img:3"
	cmp -n $((1001 * 512)) -i $((7 * 512)):$((3 * 512)) "$T/src.img" \
		"$T/odd.img" || fail "$e: unaligned region differs"
	size_is "$T/odd.img" $((1004 * 512))
	# a destination that runs out of space: bit 1, the other one whole
	rm -f "$small/full.img" "$T/ok.img"
	kcopy_expect dest:1 -q "$T/src.img" "$small/full.img" "$T/ok.img"
	grep -q "$ENOSPC_TEXT" "$ERR_FILE" ||
		fail "$e: ENOSPC not reported: $(cat "$ERR_FILE")"
	cmp "$T/src.img" "$T/ok.img" || fail "$e: the healthy destination differs"
	rm -f "$small/full.img"
done
unset KCOPYD_IO_ENGINE

# libaio's completions that cannot be reaped (io_getevents refused by a
# seccomp filter, ENOSYS): the requests in flight fail with that error (the
# source's reads, then the destination's flush), and kcopy ends instead of
# waiting for ever.
rm -f "$T/noreap.img"
KCOPYD_IO_ENGINE=libaio timeout -s KILL 30 "$NO_URING" --getevents 38 \
	"$KCOPY" -q "$T/src.img" "$T/noreap.img" 2>"$T/noreap.err" && st=0 ||
	st=$?
[[ $st != 137 ]] || fail "io_getevents refused: kcopy hung"
assert_eq "$st" 3 "io_getevents refused: exit status ($(cat "$T/noreap.err"))"
grep -q 'Function not implemented' "$T/noreap.err" ||
	fail "io_getevents refused: not reported: $(cat "$T/noreap.err")"
echo "engines: ${engines[*]}"

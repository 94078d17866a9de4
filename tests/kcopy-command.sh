#!/bin/bash
# Regions written "[ CMD ARGS... ]": an NBD server kcopy starts by socket
# activation (qemu-nbd for qcow2, vmdk and vhdx, nbdkit's plugins), as the source and as
# destinations, stopped when kcopy ends (no process left, also after a
# failed copy); ]:SECTOR:COUNT, also on commands of the same text; a server
# that does not start (also from a wrapper: nothing of it left) and a
# malformed command are setup errors naming the command; SIGTERM while a
# server is slow to greet ends kcopy at once.  No root needed.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires qemu-img qemu-nbd qemu-io nbdkit cmp jq perl pgrep timeout
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"
requires_nbd

MiB=$((1024 * 1024))
SIZE=$((16 * MiB))

# no_server_left WHAT: no process started for this test is running (every
# server's command line names a file under $T).
no_server_left() {
	local left
	left=$(pgrep -a -f -- "$T/" | grep -v -- "$KCOPY" || true)
	[[ -z $left ]] || fail "$1: servers left running: $left"
}

# An image with holes and data: 3 MiB of random data in three places.
RAW=$T/raw.img
make_image "$RAW" $SIZE zero
dd if=/dev/urandom of="$RAW" bs=$MiB seek=1 count=1 conv=notrunc status=none
dd if=/dev/urandom of="$RAW" bs=$MiB seek=7 count=1 conv=notrunc status=none
dd if=/dev/urandom of="$RAW" bs=$MiB seek=15 count=1 conv=notrunc status=none
DATA_KIB=$((3 * 1024))
qemu-img convert -q -f raw -O qcow2 "$RAW" "$T/src.qcow2"

# allocated_kib FILE: the KiB FILE takes on disk.
allocated_kib() {
	du -k -- "$1" | cut -f1
}

# --- vmdk and vhdx through qemu-nbd as sources: equal to the raw image.
for fmt in vmdk vhdx; do
	qemu-img convert -q -f raw -O $fmt "$RAW" "$T/src.$fmt"
	rm -f "$T/out-$fmt.raw"
	run_kcopy [ qemu-nbd -r -f $fmt "$T/src.$fmt" ] "$T/out-$fmt.raw"
	assert_eq "$ST" 0 "$fmt source"
	cmp "$RAW" "$T/out-$fmt.raw" || fail "$fmt source: the copy differs from the image"
	rm -f "$T/src.$fmt" "$T/out-$fmt.raw"
done

# --- A qcow2 source through qemu-nbd, to a new file: equal to the raw
# image, and sparse (the export's holes are not written).
run_kcopy --report "$T/r1.json" [ qemu-nbd -f qcow2 "$T/src.qcow2" ] "$T/out.raw"
assert_eq "$ST" 0 "qcow2 source"
cmp "$RAW" "$T/out.raw" || fail "qcow2 source: the copy differs from the image"
(($(allocated_kib "$T/out.raw") <= DATA_KIB + 1024)) ||
	fail "qcow2 source: the new file allocates $(allocated_kib "$T/out.raw") KiB for $DATA_KIB KiB of data"
assert_eq "$(jq -r .source.path "$T/r1.json")" "[ qemu-nbd -f qcow2 $T/src.qcow2 ]" \
	"the report names the command"
no_server_left "qcow2 source"

# --- As root with loop devices: onto a device that held random data, the
# holes of the qcow2 are zeroed there too (the device ends equal to the
# image).
if [[ $(id -u) == 0 ]] && command -v losetup >/dev/null &&
	[[ -e /dev/loop-control ]]; then
	make_image "$T/old.img" $SIZE random
	LOOP=$(make_loop "$T/old.img")
	run_kcopy [ qemu-nbd -f qcow2 "$T/src.qcow2" ] "$LOOP"
	assert_eq "$ST" 0 "qcow2 source to a loop device of random data"
	cmp "$RAW" "$LOOP" || fail "the loop device differs from the image"
else
	echo "kcopy-command: not root or no loop devices: the device case is left out" >&2
fi

# --- qcow2 destinations, a file beside them: one read, three copies equal
# to the image; the qcow2 files stay small (zeros are not written as data).
qemu-img create -q -f qcow2 "$T/a.qcow2" $SIZE
qemu-img create -q -f qcow2 "$T/b.qcow2" $SIZE
run_kcopy "$RAW" [ qemu-nbd -f qcow2 "$T/a.qcow2" ] \
	[ qemu-nbd -f qcow2 "$T/b.qcow2" ] "$T/c.raw"
assert_eq "$ST" 0 "to two qcow2 destinations and a file"
qemu-img compare -q -f raw -F qcow2 "$RAW" "$T/a.qcow2" ||
	fail "qcow2 destination a differs from the image"
qemu-img compare -q -f raw -F qcow2 "$RAW" "$T/b.qcow2" ||
	fail "qcow2 destination b differs from the image"
cmp "$RAW" "$T/c.raw" || fail "the file beside the qcow2 destinations differs"
for q in a b; do
	kib=$(allocated_kib "$T/$q.qcow2")
	((kib <= DATA_KIB + 1024)) ||
		fail "qcow2 destination $q takes $kib KiB for $DATA_KIB KiB of data"
done
no_server_left "qcow2 destinations"

# --- A server that offers multi-conn but takes two connections
# (qemu-nbd --shared=2): the export goes on with two, after a short wait
# for a third, not the --timeout's minute.
t0=$(now_ms)
run_kcopy --dry-run [ qemu-nbd -r -e 2 -f qcow2 "$T/src.qcow2" ] "$T/two.raw" >"$T/two.txt"
assert_eq "$ST" 0 "qemu-nbd --shared=2"
grep -q "2 connection(s), multi-conn" "$T/two.txt" ||
	fail "qemu-nbd --shared=2: not two connections: $(cat "$T/two.txt")"
(($(now_ms) - t0 < 20000)) || fail "qemu-nbd --shared=2: opening took $(($(now_ms) - t0)) ms"
no_server_left "qemu-nbd --shared=2"

# --- The region's fields on the closing bracket: 2 MiB of the image from
# byte 7 MiB to byte 1 MiB of a qcow2 that held data everywhere.
qemu-img create -q -f qcow2 "$T/d.qcow2" $SIZE
qemu-io -f qcow2 -c "write -P 0x5a 0 $SIZE" "$T/d.qcow2" >/dev/null ||
	fail "qemu-io could not fill d.qcow2"
run_kcopy "$RAW:7M:2M" [ qemu-nbd -f qcow2 "$T/d.qcow2" ]:1M
assert_eq "$ST" 0 "]:SECTOR on a qcow2 destination"
qemu-img convert -q -f qcow2 -O raw "$T/d.qcow2" "$T/d.raw"
same_sectors "$RAW" $((7 * 2048)) "$T/d.raw" 2048 4096
run_kcopy [ qemu-nbd -f qcow2 "$T/src.qcow2" ]:7M:1M "$T/e.raw"
assert_eq "$ST" 0 "]:SECTOR:COUNT on a qcow2 source"
assert_eq "$(stat -c %s "$T/e.raw")" $MiB "]:SECTOR:COUNT: the size copied"
same_sectors "$RAW" $((7 * 2048)) "$T/e.raw" 0 2048
expect_refused "a malformed closing bracket" "']:x:'" \
	[ qemu-nbd -f qcow2 "$T/src.qcow2" ]:x: "$T/never.raw"

# --- nbdkit: its pattern plugin as a source (each 8-byte big-endian word
# is its own offset, nbdkit-pattern-plugin(1)), read over four connections
# (multi-conn); its file plugin as a destination.
perl -e 'print pack("Q>", $_ * 8) for 0 .. (8 * 1024 * 1024 / 8 - 1)' >"$T/pattern.expected"
run_kcopy --dry-run [ nbdkit -r pattern 8M ] "$T/pat.raw" >"$T/plan.txt"
assert_eq "$ST" 0 "dry run of a started server"
grep -q "^source *\[ nbdkit -r pattern 8M \]$" "$T/plan.txt" ||
	fail "the plan does not name the command: $(cat "$T/plan.txt")"
grep -q "4 connection(s), multi-conn" "$T/plan.txt" ||
	fail "the plan: not four connections: $(cat "$T/plan.txt")"
[[ ! -e $T/pat.raw ]] || fail "dry run: a file was created"
run_kcopy [ nbdkit -r -P "$T/pat.pid" pattern 8M ] "$T/pat.raw"
assert_eq "$ST" 0 "nbdkit pattern source"
cmp "$T/pattern.expected" "$T/pat.raw" || fail "nbdkit pattern: differs"
truncate -s $SIZE "$T/nbdfile.img"
run_kcopy "$RAW" [ nbdkit file "$T/nbdfile.img" ]
assert_eq "$ST" 0 "nbdkit file destination"
cmp "$RAW" "$T/nbdfile.img" || fail "nbdkit file destination differs"
! pid_alive "$(cat "$T/pat.pid")" || fail "the pattern server still runs"
no_server_left "nbdkit"

# --- A copy that fails (every write to the export fails): the other
# destination is written, and the server is stopped all the same.
truncate -s $SIZE "$T/err.img"
kcopy_expect dest:1 "$RAW" [ nbdkit --filter=error file "$T/err.img" \
	error-pwrite=EIO error-pwrite-rate=100% error-zero=EIO \
	error-zero-rate=100% ] "$T/ok.raw"
cmp "$RAW" "$T/ok.raw" || fail "failed export: the other destination differs"
no_server_left "a failed copy"

# --- A copy stopped by SIGTERM (sent to kcopy alone): kcopy drains, and
# stops the server on its way out.
# 64 MiB of data, every read delayed 1 s: the copy takes 8 s or more.
# Its pid file names the test's directory, for no_server_left.
"$KCOPY" [ nbdkit -r -P "$T/sig.pid" --filter=delay pattern 64M \
	delay-read=1 ] "$T/sig.raw" 2>"$T/sig.err" &
pid=$!
wait_for 10 signal_ready "$pid" 15 || fail "SIGTERM: kcopy did not start"
sleep 0.5
kill -TERM "$pid"
wait_gone "$pid" 30 || fail "SIGTERM: kcopy still runs after 30 s"
wait "$pid" && st=0 || st=$?
expect_status "$st" signal:TERM "SIGTERM with a started server: exit status"
[[ -s $T/sig.pid ]] || fail "SIGTERM: the server wrote no pid file"
! pid_alive "$(cat "$T/sig.pid")" || fail "SIGTERM: the server still runs"
no_server_left "a copy stopped by SIGTERM"

# --- Servers that do not start: setup errors naming the command, nothing
# created, nothing left running.
expect_refused "qemu-nbd on a missing file" \
	"destination 1 '\[ qemu-nbd -f qcow2 $T/missing.qcow2 \]': the NBD server did not start" \
	"$RAW" [ qemu-nbd -f qcow2 "$T/missing.qcow2" ] "$T/new1.raw"
[[ ! -e $T/new1.raw ]] || fail "a server that did not start: a file was created"
expect_refused "a program that does not exist" \
	"source '\[ kcopy-no-such-server $T/x \]': the NBD server did not start" \
	[ kcopy-no-such-server "$T/x" ] "$T/new2.raw"
[[ ! -e $T/new2.raw ]] || fail "a missing program: a file was created"
no_server_left "servers that did not start"

# --- A server that never speaks NBD (sleep, with an argument no other
# process has: this test's pid in it): SIGTERM while kcopy waits for its
# handshake stops kcopy at once (143), with or without a --timeout,
# nothing created, the server killed.
MUTE=98765$$
for to in 0 30; do
	"$KCOPY" --timeout=$to [ sleep $MUTE ] "$T/mute$to.raw" \
		2>"$T/mute.err" &
	pid=$!
	wait_for 10 signal_ready "$pid" 15 ||
		fail "--timeout=$to: SIGTERM in the handshake: kcopy did not start"
	sleep 1
	t0=$(now_ms)
	kill -TERM "$pid"
	wait_gone "$pid" 3 ||
		fail "--timeout=$to: SIGTERM in the handshake: kcopy still runs after 3 s"
	wait "$pid" && st=0 || st=$?
	expect_status "$st" signal:TERM "--timeout=$to: SIGTERM in the handshake"
	(($(now_ms) - t0 < 3000)) ||
		fail "--timeout=$to: SIGTERM in the handshake: took $(($(now_ms) - t0)) ms"
	grep -q "interrupted by a signal" "$T/mute.err" ||
		fail "--timeout=$to: SIGTERM in the handshake: $(cat "$T/mute.err")"
	[[ ! -e $T/mute$to.raw ]] ||
		fail "--timeout=$to: SIGTERM in the handshake: a file was created"
	! pgrep -f "^sleep $MUTE\$" >/dev/null ||
		fail "--timeout=$to: SIGTERM in the handshake: the server still runs"
done

# --- A server that fails to start from inside a wrapper (sh -c starts a
# child, then closes the socket): the wrapper's child is killed too.
CHILD=98764$$
expect_refused "a wrapper that closes the socket" \
	"the NBD server did not start" \
	--timeout=3 [ sh -c "sleep $CHILD 3<&- & exec 3<&-; wait" ] "$T/new5.raw"
sleep 0.2
! pgrep -f "^sleep $CHILD\$" >/dev/null ||
	fail "a wrapper that closes the socket: its child still runs"
[[ ! -e $T/new5.raw ]] || fail "a wrapper that closes the socket: a file was created"

# --- Two commands of the same text with different fields: each region its
# own (not the first's, which would overlap): a 50 KiB file into sectors
# 0-99 and 200-299 of one image.
dd if="$RAW" of="$T/small" bs=512 skip=2048 count=100 status=none
truncate -s $MiB "$T/twice.img"
run_kcopy "$T/small" [ nbdkit file "$T/twice.img" ]:0:100 \
	[ nbdkit file "$T/twice.img" ]:200:100
assert_eq "$ST" 0 "two commands of the same text"
cmp -n $((100 * 512)) "$T/small" "$T/twice.img" ||
	fail "two commands of the same text: sectors 0-99 differ"
cmp -n $((100 * 512)) "$T/small" "$T/twice.img" 0 $((200 * 512)) ||
	fail "two commands of the same text: sectors 200-299 differ"
cmp -n $((100 * 512)) /dev/zero "$T/twice.img" 0 $((100 * 512)) ||
	fail "two commands of the same text: sectors 100-199 were written"
no_server_left "two commands of the same text"

# --- Malformed commands: usage errors naming the bracket.
expect_refused "a '[' without ']'" "'\[' (argument 1) has no matching '\]'" \
	[ qemu-nbd -f qcow2 "$T/src.qcow2" "$T/new3.raw"
expect_refused "an empty command" "no command between the brackets" \
	"$RAW" [ ] "$T/new3.raw"
expect_refused "a nested command" "commands do not nest" \
	[ nbdkit [ x ] ] "$T/new3.raw"
expect_refused "a ']' without '['" "'\]' (argument 2) closes no '\['" \
	"$RAW" ] "$T/new3.raw"
[[ ! -e $T/new3.raw ]] || fail "a malformed command: a file was created"
# An option's value is not a bracket: --report '[' names a file.
(cd "$T" && run_watchdog 60 "$KCOPY" --report [ raw.img new4.raw) ||
	fail "--report '[': kcopy failed"
jq -e .exit_status "$T/[" >/dev/null || fail "--report '[': no report in '['"
no_server_left "the end"
echo "PASS: kcopy-command"

#!/bin/bash
# Write errors of every kind (EIO, ENOSPC, failed flush, a disk that dies) set only their destination's bit; a dying source stops kcopy
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires_fuse
requires jq cmp

SIZE=$((8 * 1024 * 1024))		# 16384 sectors

make_image "$T/src.img" "$SIZE" pattern:src
SRC=$T/src.img

# A healthy loop device destination, filled with something else first.
healthy_loop() {
	local img
	img=$(mktemp "$T/healthy.XXXXXX")
	make_image "$img" "$SIZE" random
	make_loop "$img"
}

# fault_dev [FAULTFS OPTS...]: a fault device over a fresh zero image.
fault_dev() {
	local img
	img=$(mktemp "$T/faulty.XXXXXX")
	make_image "$img" "$SIZE" zero
	make_fault_device "$img" "$@"
}

# ----------------------------------------------------------------- EIO
echo "== EIO (faultfs --write-error) on destination 1" >&2
dev=$(fault_dev --write-error $((3 * 1024 * 1024)):512)
hl=$(healthy_loop)
DESTS=("$dev" "$T/eio-d2.img" "$hl")
run_kcopy --report "$T/eio.json" "$SRC" "${DESTS[@]}"
check_dest_errors EIO "$T/eio.json" "1:write: $EIO_TEXT"
grep -qx "kcopy: destination 1 '$dev': write error at sector 6144: $EIO_TEXT; dropped" "$ERR_FILE" ||
	fail "EIO: no message naming the failed write"

# With --ignore-errors a failed destination keeps being written: all but
# the failed sub-job (from 3 MiB) reach it.  Writes one sub-job at a time
# (--sequential): adjacent writes in flight together may be merged by the
# block layer into one request, which the loop device fails whole (with
# io_uring's batched submission, the next sub-job's write failed with it).
# A small budget alone does not do it: one of 512 KiB is two slots of
# 256 KiB (pages.c), and under ThreadSanitizer's timing the writes of two
# sub-jobs met (the failed request started at sector 5632).
echo "== EIO on destination 2 with --ignore-errors" >&2
dev=$(fault_dev --write-error $((3 * 1024 * 1024)):512)
DESTS=("$T/eioi-d1.img" "$dev")
run_kcopy --pages 128 --sequential --ignore-errors --report "$T/eioi.json" \
	"$SRC" "${DESTS[@]}"
check_dest_errors "EIO --ignore-errors" "$T/eioi.json" "2:write: $EIO_TEXT"
grep -qx "kcopy: destination 2 '$dev': write error at sector 6144: $EIO_TEXT; going on" "$ERR_FILE" ||
	fail "EIO --ignore-errors: no message naming the failed write"
assert_eq "$(sum "$dev" 0 $((3 * 1024 * 1024)))" "$(sum "$SRC" 0 $((3 * 1024 * 1024)))" \
	"EIO --ignore-errors: failed destination before the failed sub-job"
assert_eq "$(sum "$dev" $((7 * 512 * 1024)))" "$(sum "$SRC" $((7 * 512 * 1024)))" \
	"EIO --ignore-errors: failed destination after the failed sub-job"

# ------------------------------------------------------- ENOSPC, tmpfs
echo "== ENOSPC (a tmpfs too small) on destination 2" >&2
small=$(make_tmpfs 2m)
hl=$(healthy_loop)
DESTS=("$T/nospc-d1.img" "$small/dest.img" "$hl")
run_kcopy --report "$T/nospc.json" "$SRC" "${DESTS[@]}"
check_dest_errors "ENOSPC tmpfs" "$T/nospc.json" "2:write: $ENOSPC_TEXT"

# ----------------------------------------------------- ENOSPC, faultfs
echo "== ENOSPC (faultfs --write-enospc) on destination 3" >&2
dev=$(fault_dev --write-enospc $((6 * 1024 * 1024)):4096)
hl=$(healthy_loop)
DESTS=("$hl" "$T/enospc-d2.img" "$dev")
run_kcopy --report "$T/enospc.json" "$SRC" "${DESTS[@]}"
check_dest_errors "ENOSPC faultfs" "$T/enospc.json" "3:write: $ENOSPC_TEXT"

# -------------------------------------------------------- failed flush
echo "== fdatasync fails (faultfs --fsync-error) on destination 2" >&2
dev=$(fault_dev --fsync-error)
hl=$(healthy_loop)
DESTS=("$T/fsync-d1.img" "$dev" "$hl")
run_kcopy --report "$T/fsync.json" "$SRC" "${DESTS[@]}"
check_dest_errors "fsync error" "$T/fsync.json" "2:flush: $EIO_TEXT"
grep -q "destination 2 '$dev': flush failed" "$ERR_FILE" ||
	fail "fsync error: no message about the failed flush"

# ---------------------------------------------- a destination that dies
echo "== destination 3 dies after 5 writes (faultfs --fail-all-after-writes)" >&2
dev=$(fault_dev --fail-all-after-writes 5)
hl=$(healthy_loop)
DESTS=("$T/dies-d1.img" "$hl" "$dev")
run_kcopy --report "$T/dies.json" "$SRC" "${DESTS[@]}"
check_dest_errors "destination dies" "$T/dies.json" "3:write: $EIO_TEXT"

# All of them in one run, each on its own bit; 8 destinations so the last
# two share bit 6.
# Also in sequential mode (WRITE_SEQ), and with the smallest budget.
n=0
for opts in "" "-s" "--pages 1" "--chunk 4K -s"; do
	n=$((n + 1))
	echo "== every kind at once${opts:+ ($opts)}" >&2
	small=$(make_tmpfs 2m)
	d_eio=$(fault_dev --write-error $((3 * 1024 * 1024)):512)
	d_enospc=$(fault_dev --write-enospc $((6 * 1024 * 1024)):4096)
	d_fsync=$(fault_dev --fsync-error)
	d_dies=$(fault_dev --fail-all-after-writes 5)
	hl=$(healthy_loop)
	DESTS=("$T/all$n-d1.img" "$d_eio" "$small/dest.img" "$hl" "$d_enospc" "$T/all$n-d6.img" "$d_fsync" "$d_dies")
	read -r -a o <<<"$opts"
	run_kcopy "${o[@]}" --report "$T/all$n.json" "$SRC" "${DESTS[@]}"
	check_dest_errors "all kinds${opts:+ ($opts)}" "$T/all$n.json" "2:write: $EIO_TEXT" "3:write: $ENOSPC_TEXT" \
		"5:write: $ENOSPC_TEXT" "7:flush: $EIO_TEXT" "8:write: $EIO_TEXT"
done

# ------------------------------ a destination killed while kcopy runs
echo "== destination 2 killed mid-copy" >&2
dev=$(fault_dev)
DESTS=("$T/kill-d1.img" "$dev")
ERR_FILE=$T/kill-dest.err
run_watchdog 30 "$KCOPY" --rate 4M --report "$T/kill-dest.json" "$SRC" "${DESTS[@]}" \
	2>"$ERR_FILE" &
kpid=$!
sleep 0.5
fault_device_kill "$dev"
wait "$kpid" && ST=0 || ST=$?
cat "$ERR_FILE" >&2
[[ $ST != 124 ]] || fail "destination killed: kcopy hung"
check_dest_errors "destination killed" "$T/kill-dest.json" "2:write: $EIO_TEXT"

# ----------------------------------------- the source goes away mid-copy
echo "== the source dies mid-copy" >&2
BIG=$((64 * 1024 * 1024))
make_image "$T/bigsrc.img" "$BIG" pattern:big
sdev=$(make_fault_device "$T/bigsrc.img")
DESTS=("$T/srckill-d1.img" "$T/srckill-d2.img")
ERR_FILE=$T/srckill.err
run_watchdog 30 "$KCOPY" --rate 16M --report "$T/srckill.json" "$sdev" "${DESTS[@]}" \
	2>"$ERR_FILE" &
kpid=$!
sleep 1
fault_device_kill "$sdev"
t0=$(now_ms)
wait "$kpid" && ST=0 || ST=$?
t1=$(now_ms)
cat "$ERR_FILE" >&2
[[ $ST != 124 ]] || fail "source killed: kcopy hung"
expect_status "$ST" read "source killed: exit status"
# Promptly: not after retries or a timeout.  The bound leaves room for a
# loaded machine and a sanitizer build; the watchdog (30 s) is for a hang.
echo "source killed: kcopy exited $((t1 - t0)) ms after the kill" >&2
(((t1 - t0) < 15000)) || fail "source killed: kcopy took $((t1 - t0)) ms to exit"
expect_closing read "; source '$sdev': $EIO_TEXT" "source killed: closing line"
r=$T/srckill.json
expect_report_status "$r" read "source killed: report"
bytes=$(jq -r .bytes "$r")
((bytes > 0 && bytes < BIG)) || fail "source killed: $bytes bytes copied of $BIG"
# Each 512 KiB sub-job of each destination was written in full with the
# source's data, or not at all; the written ones add up to the bytes
# reported.  (They are a prefix too, as the rate limit issues sub-jobs
# one by one, but that is not promised.)
zero_chunk=$(head -c 524288 /dev/zero | md5sum | cut -d' ' -f1)
for p in "${DESTS[@]}"; do
	size=$(stat -c %s "$p")
	((size < BIG)) || fail "source killed: $p has $size bytes: the copy did not stop"
	written=0
	for ((off = 0; off < size; off += 524288)); do
		got=$(sum "$p" "$off" 524288)
		if [[ $got == "$(sum "$T/bigsrc.img" "$off" 524288)" ]]; then
			written=$((written + 524288))
		elif [[ $got != "$zero_chunk" ]]; then
			fail "source killed: $p: sub-job at byte $off neither copied nor left alone"
		fi
	done
	assert_eq "$written" "$bytes" "source killed: $p: bytes written vs reported"
done

echo PASS >&2
exit 0

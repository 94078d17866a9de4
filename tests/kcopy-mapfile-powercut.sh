#!/bin/bash
# --mapfile and a power cut: a 128 MiB copy to a loop device on faultfs
# --volatile (writes held in memory until a flush of the device) and a file,
# slowed by --rate.  At a random moment after a checkpoint with a '+' range,
# kcopy is frozen, the power of the device is cut (everything not flushed
# is dropped) and kcopy is killed: every '+' range of the mapfile must be in
# the device's image file, which holds only what was flushed.  Each round
# resumes the last on a fresh faultfs over the surviving image (a new loop
# device: --force); at least half the cuts must have dropped data.  A last
# run finishes the copy and exits 0, after which a cut drops nothing and
# the image equals the source.  --chunk 64K: a job of many chunks, paced
# by --rate, holds unflushed writes for most of its time.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires_fuse
requires python3

SIZE=$((128 * 1024 * 1024))
ROUNDS=${KCOPY_POWERCUT_ROUNDS:-6}
ram=$(make_tmpfs 320m)
SRC=$ram/src.img
IMG=$ram/dest.img
make_image "$SRC" "$SIZE" random
make_image "$IMG" "$SIZE" zero
# The file on the disk's file system: tmpfs may not take O_DIRECT.
OUT=$T/out.img
MAP=$T/copy.map

# wait_checkpoints N: until N checkpoints of this run have grown the '+'
# bytes (polled every 20 ms) or kcopy has ended; status 1 after 20 s.
wait_checkpoints() {
	local want=$1 seen=0 cur prev=$before i
	for ((i = 0; i < 1000; i++)); do
		pid_alive "$pid" || return 0
		cur=$(mapfile_bytes "$MAP" +)
		if ((cur > prev)); then
			prev=$cur
			((++seen >= want)) && return 0
		fi
		sleep 0.02
	done
	return 1
}

# dropped LOG: the bytes faultfs's power cut dropped.
dropped() {
	sed -n 's/.*power cut: dropped \([0-9]*\) bytes.*/\1/p' "$1"
}

force=() lost=0 last=0
# Rounds while a quarter of the copy is left, for the last run.
for ((round = 1; round <= ROUNDS && last < SIZE * 3 / 4; round++)); do
	make_fault_device "$IMG" --volatile >/dev/null
	dev=$FAULT_DEV log=$FAULT_LOG
	before=$(mapfile_bytes "$MAP" +)
	"$KCOPY" "${force[@]}" --rate 12M --chunk 64K --mapfile-interval 0.2 \
		--mapfile "$MAP" "$SRC" "$dev" "$OUT" 2>>"$T/runs.err" &
	pid=$!
	# After 1 to 3 checkpoints of this run that grew the '+' ranges, a
	# random moment: mostly just after the last (a range marked before
	# its flush would still be held there), at times up to 0.7 s later.
	cps=$((1 + RANDOM % 3))
	wait_checkpoints "$cps" || fail "round $round: no new '+' range within 20 s"
	pid_alive "$pid" || fail "round $round: kcopy ended before the cut: $(tail -n 3 "$T/runs.err")"
	if ((RANDOM % 3)); then
		ms=$((RANDOM % 60))
	else
		ms=$((RANDOM % 700))
	fi
	sleep "0.$(printf %03d "$ms")"
	pid_alive "$pid" || fail "round $round: kcopy ended before the cut: $(tail -n 3 "$T/runs.err")"
	# The power fails: kcopy stops where it is (its mapfile is what it
	# wrote, writes may be in flight), the device loses what it holds.
	kill -STOP "$pid"
	fault_device_cut "$dev"
	kill -KILL "$pid"
	kill -CONT "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	fault_device_kill "$dev"
	drop=$(dropped "$log")
	[[ -n $drop ]] || fail "round $round: no power cut in faultfs's log: $(cat "$log")"
	plus=$(mapfile_holds "$MAP" "$SRC" "$IMG" "$OUT") ||
		fail "round $round: a '+' range of the mapfile did not survive the power cut ($drop bytes dropped)"
	echo "round $round: cut $ms ms after checkpoint $cps, $drop bytes dropped, $plus bytes '+' ($SECONDS s)" >&2
	((plus >= last)) || fail "round $round: '+' shrank from $last to $plus"
	((plus > before)) || fail "round $round: no new '+' range"
	((drop > 0)) && lost=$((lost + 1))
	last=$plus
	# The next run writes to another loop device.
	force=(--force)
done
rounds=$((round - 1))
((rounds >= 3)) || fail "only $rounds rounds before the last quarter"
# Without data held at the cut a round proves nothing.
((lost * 2 >= rounds)) ||
	fail "only $lost of $rounds cuts dropped unflushed data: too few to prove anything"

# The last run finishes the copy; once it exits 0 all of it is flushed.
make_fault_device "$IMG" --volatile >/dev/null
dev=$FAULT_DEV log=$FAULT_LOG
kcopy_expect 0 --force --mapfile "$MAP" "$SRC" "$dev" "$OUT"
grep -q "resuming: $last of $SIZE bytes done" "$ERR_FILE" ||
	fail "the last run did not resume from $last bytes: $(cat "$ERR_FILE")"
fault_device_cut "$dev"
assert_eq "$(dropped "$log")" 0 "bytes not flushed when kcopy exited 0"
fault_device_kill "$dev"
assert_eq "$(mapfile_holds "$MAP" "$SRC" "$IMG" "$OUT")" "$SIZE" "'+' bytes at the end"
same "$SRC" 0 "$IMG" 0 "$SIZE"
echo "$rounds power cuts, $lost with unflushed data dropped"

#!/bin/bash
# libkcopyd against a FUSE-served device with bad sectors: flags 0 stops at a
# read error, KCOPYD_IGNORE_ERROR isolates exactly the bad sectors, a failing
# destination sets exactly its bit, WRITE_SEQ writes in ascending order and
# returns after a write error.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
requires_root
requires_loop
requires_fuse

MiB=1048576
make_image "$T/src.img" 8M random
sectors=16384

# --- a bad 4 KiB at 1 MiB, on a 512-byte-sector device
bad=$(make_fault_device "$T/src.img" --read-error $MiB:4096)

# Flags 0: read_err 1, the job stops: with one small sub-job in flight at
# a time, nothing far past the bad range is written.
out=$(run_kcopyd -p 2 "$bad:0:$sectors" "$T/stop.img:0:$sectors")
[[ $out == "$(kcopyd_head read)"* ]] || fail "flags 0: $out"
size=$(stat -c %s "$T/stop.img")
((size <= MiB + 65536)) || fail "flags 0 went on after the error: $size bytes written"
assert_eq "$(sum "$T/stop.img" 0 $MiB)" "$(sum "$T/src.img" 0 $MiB)" "flags 0: data before the error"

# IGNORE_ERROR: exactly sectors 2048..2055 are bad, zeroed in every
# destination, and everything else is copied; for several sub-job sizes.
copy_zeroed "$T/src.img" "$T/want.img" 2048 8
for chunk in 4096 65536 524288; do
	rm -f "$T/a.img" "$T/b.img"
	out=$(run_kcopyd -c $chunk -f ignore "$bad:0:$sectors" "$T/a.img:0:$sectors" "$T/b.img:0:$sectors")
	assert_eq "$out" "$(kcopyd_head read)"$'\nbad 2048 8\n'"$(tail -n1 <<<"$out")" "ignore, chunk $chunk"
	assert_eq "$(sum "$T/a.img")" "$(sum "$T/want.img")" "ignore, chunk $chunk: destination 0"
	assert_eq "$(sum "$T/b.img")" "$(sum "$T/want.img")" "ignore, chunk $chunk: destination 1"
done

# --- bad 512 bytes inside a 4096-byte block, a bad first and last sector,
# a range across a sub-job boundary: on a 4096-byte-sector device the
# whole logical block is bad.
make_image "$T/src4.img" 8M random
bad4=$(make_fault_device "$T/src4.img" --read-error 0:512 --read-error $((MiB + 1536)):512 \
	--read-error $((2 * MiB - 4096)):8192 --read-error $((8 * MiB - 512)):512 -- -b 4096)
out=$(run_kcopyd -f ignore "$bad4:0:$sectors" "$T/c.img:0:$sectors")
assert_eq "$(sed -n '2,$p' <<<"$out" | grep ^bad)" $'bad 0 8\nbad 2048 8\nbad 4088 16\nbad 16376 8' "4096-byte blocks"
copy_zeroed "$T/src4.img" "$T/want4.img" 0 8 2048 8 4088 16 16376 8
assert_eq "$(sum "$T/c.img")" "$(sum "$T/want4.img")" "4096-byte blocks: data"

# --- a destination that fails its writes sets exactly its bit
make_image "$T/wbad.img" 8M zero
wbad=$(make_fault_device "$T/wbad.img" --write-error $((4 * MiB)):4096)
for flags in drop ""; do
	rm -f "$T/good.img"
	out=$(run_kcopyd ${flags:+-f $flags} "$T/src.img:0:$sectors" "$T/good.img:0:$sectors" "$wbad:0:$sectors")
	[[ $out == "$(kcopyd_head dest:2)"* ]] || fail "write error (flags '$flags'): $out"
done
# With drop (the duplicator mode) the healthy destination is complete.
rm -f "$T/good.img"
out=$(run_kcopyd -f drop "$T/src.img:0:$sectors" "$wbad:0:$sectors" "$T/good.img:0:$sectors")
[[ $out == "$(kcopyd_head dest:1)"* ]] || fail "write error, drop: $out"
assert_eq "$(sum "$T/good.img")" "$(sum "$T/src.img")" "healthy destination complete"

# --- WRITE_SEQ: sub-jobs are written in ascending order, one at a time.
make_image "$T/seq.img" 8M zero
seq=$(make_fault_device "$T/seq.img" --write-log "$T/seq.log")
out=$(run_kcopyd -p 64 -c 65536 -f seq "$T/src.img:0:$sectors" "$seq:0:$sectors")
[[ $out == "$(kcopyd_head ok)"* ]] || fail "WRITE_SEQ: $out"
assert_eq "$(sum "$seq")" "$(sum "$T/src.img")" "WRITE_SEQ data"
awk '{ sj = int($1 / 65536); if (sj < last) { print "write for sub-job " sj " after sub-job " last; bad = 1 } last = sj }
     END { exit bad }' "$T/seq.log" || fail "WRITE_SEQ wrote out of order"

# WRITE_SEQ returns after a write error, and writes nothing after it.
make_image "$T/seqbad.img" 8M zero
: >"$T/seqbad.log"
seqbad=$(make_fault_device "$T/seqbad.img" --write-error $((3 * MiB)):4096 --write-log "$T/seqbad.log")
out=$(run_kcopyd -p 64 -c 65536 -f seq "$T/src.img:0:$sectors" "$seqbad:0:$sectors")
[[ $out == "$(kcopyd_head dest:1)"* ]] || fail "WRITE_SEQ after an error: $out"
last=$(awk '{ if ($1 > m) m = $1 } END { print m + 0 }' "$T/seqbad.log")
((last < 3 * MiB + 65536)) || fail "WRITE_SEQ wrote at $last, past the failed sub-job"
echo "lib-faults: ok"

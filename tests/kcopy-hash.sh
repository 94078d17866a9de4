#!/bin/bash
# --hash: the digests of the source region as read (and, with --verify, of
# each destination's read-back) equal md5sum/sha1sum/sha256sum/sha512sum of
# the region: at an offset, on a 4096-byte-sector device, with unreadable
# sectors zeroed (--ignore-errors), and when sub-job 0 completes last.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires_fuse
requires jq md5sum sha1sum sha256sum sha512sum nbdkit
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

SIZE=$((8 * 1024 * 1024))		# 16384 sectors
SRC=$T/src.img
make_image "$SRC" "$SIZE" pattern:hash
ALGS=(md5 sha1 sha256 sha512)

# digest ALG FILE_OR_DEV [SECTOR COUNT]: ALGsum of the whole file or of
# COUNT 512-byte sectors at SECTOR; a block device is read with O_DIRECT
# (what it holds, not what the page cache does).
digest() {
	local alg=$1 f=$2 out
	local -a args=("if=$f" bs=512 status=none)
	[[ $# -ge 4 ]] && args+=("skip=$3" "count=$4")
	[[ -b $f ]] && args+=(iflag=direct)
	out=$(dd "${args[@]}" | "${alg}sum") || fail "digest: cannot read $f"
	printf '%s\n' "${out%% *}"
}

# check_hashes NAME JQ_PATH FILE [SECTOR COUNT]: the report $REP holds at
# JQ_PATH (.hashes or .destinations[i].hashes) every algorithm of ALGS,
# equal to that algorithm's digest of the region.
check_hashes() {
	local name=$1 path=$2 alg
	shift 2
	for alg in "${ALGS[@]}"; do
		assert_eq "$(jq -r "$path.$alg" "$REP")" "$(digest "$alg" "$@")" \
			"$name: $path.$alg"
	done
}

# --- Usage: unknown names are named; repeated names count once; --zero
# has nothing to read.
expect_refused "unknown" "--hash 'sha256,crc32': unknown algorithm 'crc32'" \
	--hash sha256,crc32 "$SRC" "$T/u.img"
expect_refused "empty" "unknown algorithm ''" --hash sha1, "$SRC" "$T/u.img"
expect_refused "--zero" "--hash has nothing to read with --zero" \
	--zero --hash md5 "$T/u.img"
[[ ! -e $T/u.img ]] || fail "usage errors: a destination was created"
REP=$T/rep.json
kcopy_expect 0 --hash sha1,sha1 --hash sha1 --report "$REP" "$SRC" "$T/rep.img"
assert_eq "$(jq -c '.hashes | keys' "$REP")" '["sha1"]' "repeated names"
# Without --verify there is no read-back, so no destination digests.
assert_eq "$(jq -c '.destinations[0] | has("hashes")' "$REP")" false \
	"no destination hashes without --verify"

# --- The whole source and a region at an offset, with small sub-jobs and a
# small budget (sub-jobs complete out of order); -v prints the digests.
ALGLIST=md5,sha1,sha256,sha512
kcopy_expect 0 -v --hash "$ALGLIST" --report "$REP" "$SRC" "$T/whole.img"
check_hashes "whole" .hashes "$SRC"
for alg in "${ALGS[@]}"; do
	grep -qx "kcopy: source '$SRC': $alg $(digest "$alg" "$SRC")" "$ERR_FILE" ||
		fail "-v: no $alg line: $(cat "$ERR_FILE")"
done
kcopy_expect 0 --chunk 16K --pages 16 --hash "$ALGLIST" --report "$REP" \
	"$SRC:2047:4099" "$T/off.img:5"
check_hashes "offset" .hashes "$SRC" 2047 4099

# --- A 4096-byte-sector loop device as the source, a region inside it.
L4=$(make_loop "$SRC" -b 4096)
assert_eq "$(blockdev --getss "$L4")" 4096 "logical block size"
kcopy_expect 0 --hash "$ALGLIST" --report "$REP" "$L4:4096:8192" "$T/l4.img"
check_hashes "4096-byte sectors" .hashes "$SRC" 4096 8192

# --- --ignore-errors: unreadable blocks count as the zeros written for
# them; the read-back of each destination gives the same digests.  (The
# bad ranges of this copy are kcopy-verify.sh's to check.)
BAD=$(make_fault_device "$SRC" --read-error 1048576:512 --read-error 5000000:3000)
copy_zeroed "$SRC" "$T/bad.expect" 2048 1 9765 7
kcopy_expect read -i --verify --hash "$ALGLIST" --report "$REP" "$BAD" \
	"$T/bad.d1.img" "$T/bad.d2.img"
check_hashes "--ignore-errors" .hashes "$T/bad.expect"
check_hashes "--ignore-errors" ".destinations[0].hashes" "$T/bad.expect"
check_hashes "--ignore-errors" ".destinations[1].hashes" "$T/bad.expect"
# Without it the copy stops at the read error: no digest of a region that
# was not read to its end.
kcopy_expect read --hash sha256 --report "$REP" "$BAD" "$T/bad.d3.img"
assert_eq "$(jq -r .hashes "$REP")" null "stopped copy: no digest"

# --- --verify: each destination's digest of its read-back; one corrupted
# behind kcopy's back (faultfs changes what it stores) differs, and is
# the digest of what that device holds.
make_image "$T/corrupt.img" "$SIZE" zero
CDEV=$(make_fault_device "$T/corrupt.img" --corrupt 3000000:100)
make_image "$T/v.loop.img" "$SIZE" random
VLOOP=$(make_loop "$T/v.loop.img")
kcopy_expect dest:2 --verify --hash "$ALGLIST" --report "$REP" \
	"$SRC" "$T/v1.img" "$CDEV" "$VLOOP"
check_hashes "--verify" .hashes "$SRC"
check_hashes "--verify healthy file" ".destinations[0].hashes" "$SRC"
check_hashes "--verify healthy loop" ".destinations[2].hashes" "$SRC"
check_hashes "--verify corrupt" ".destinations[1].hashes" "$CDEV"
[[ $(jq -r .destinations[1].hashes.sha256 "$REP") != "$(jq -r .hashes.sha256 "$REP")" ]] ||
	fail "--verify: the corrupt destination has the source's digest"
assert_eq "$(jq -r '.destinations[1].mismatches | length' "$REP")" 1 \
	"--verify: the corrupt destination mismatches"

# --- Out of order: an NBD source whose read at offset 0 is slow, so
# sub-job 0 completes after the others: it waits until the 63 other reads
# (each a shell and a dd: 1.3 s in all seen on an idle 2-core VM, much
# longer on a loaded one) have answered, then 1 s more, 30 s at most; the
# digest still follows the source's order.
NSIZE=$((4 * 1024 * 1024))
dd if="$SRC" of="$T/slow.img" bs=1M count=4 status=none
mkdir "$T/answered"
SLOW=$(make_nbd slow --filter=log eval logfile="$T/slow.log" \
	thread_model='echo parallel' get_size="echo $NSIZE" \
	pread="if [ \$4 = 0 ]; then i=0; while [ \$(ls '$T/answered' | wc -l) -lt $((NSIZE / 65536 - 1)) ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i + 1)); done; sleep 1; fi; dd if='$T/slow.img' skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none; [ \$4 = 0 ] || touch '$T/answered/'\$4")
kcopy_expect 0 --chunk 64K --hash sha256,md5 --report "$REP" "$SLOW" "$T/slow.out"
cmp "$T/slow.img" "$T/slow.out" || fail "slow first read: the copy differs"
# The fixture works: the read at offset 0 was the last to be answered.
id0=$(sed -n 's/.* Read id=\([0-9]*\) offset=0x0 .*/\1/p' "$T/slow.log" | head -n 1)
last=$(sed -n 's/.*\.\.\.Read id=\([0-9]*\) return.*/\1/p' "$T/slow.log" | tail -n 1)
[[ -n $id0 && $id0 == "$last" ]] ||
	fail "slow first read: read id $id0 at offset 0 was not answered last ($last)"
assert_eq "$(jq -r .hashes.sha256 "$REP")" "$(digest sha256 "$T/slow.img")" \
	"slow first read: sha256"
assert_eq "$(jq -r .hashes.md5 "$REP")" "$(digest md5 "$T/slow.img")" \
	"slow first read: md5"

# --- Streams: a pipe source, digests equal sha256sum of what went into the
# pipe, also for a length that is not a multiple of 512 (the last sector's
# padding is not hashed; the new file is cut to the stream's length), with
# --verify of the file; a stdout destination carries the same bytes.
for len in "$SIZE" 1000001; do
	want=$(head -c "$len" "$SRC" | sha256sum)
	want=${want%% *}
	rm -f "$T/pipe.img"
	head -c "$len" "$SRC" |
		"$KCOPY" --verify --hash sha256 --report "$T/pipe.json" - \
		"$T/pipe.img" - >"$T/pipe.out" ||
		fail "pipe source, $len bytes: kcopy failed"
	assert_eq "$(jq -r .hashes.sha256 "$T/pipe.json")" "$want" \
		"pipe source, $len bytes: digest"
	assert_eq "$(jq -r '.destinations[0].hashes.sha256' "$T/pipe.json")" \
		"$want" "pipe source, $len bytes: read-back digest"
	assert_eq "$(sha256sum <"$T/pipe.img")" "$want  -" \
		"pipe source, $len bytes: the file"
	assert_eq "$(sha256sum <"$T/pipe.out")" "$want  -" \
		"pipe source, $len bytes: standard output"
done
out=$("$KCOPY" --hash sha256 --report "$T/stdout.json" "$SRC" - | sha256sum)
assert_eq "$out" "$(jq -r .hashes.sha256 "$T/stdout.json")  -" \
	"a stdout destination: the digest of what came out"

echo PASS >&2
exit 0

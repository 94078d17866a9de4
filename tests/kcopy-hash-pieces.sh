#!/bin/bash
# --hash with --mapfile over a source of more than one piece (the copy runs
# as several jobs of up to 64 MiB, some at once): the digest of a fresh,
# complete copy equals sha256sum's, on each I/O engine; a resumed copy that did not read everything gives none
# and says which sectors it did not read, in the report and with -v.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires jq sha256sum
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"
cd "$T"

SIZE=$((150 * 1024 * 1024))		# three pieces: 64 + 64 + 22 MiB
make_image src.img "$SIZE" random
want=$(sha256sum <src.img)
want=${want%% *}

engines=(libaio)
KCOPYD_IO_ENGINE=io_uring "$KCOPY" -q src.img probe.img 2>/dev/null &&
	engines+=(io_uring)
rm -f probe.img

for eng in "${engines[@]}"; do
	# (A small budget: more sub-jobs, of more pieces, at once.)
	for opt in "" "--pages 64 --chunk 64K"; do
		n="$eng${opt:+ $opt}"
		rm -f m out.img
		KCOPYD_IO_ENGINE=$eng run_kcopy $opt --mapfile m --hash sha256 \
			--report r.json src.img out.img
		assert_eq "$ST" 0 "$n: exit status"
		assert_eq "$(jq -r .hashes.sha256 r.json)" "$want" \
			"$n: the source's digest"
		assert_eq "$(jq -r .hashes_missing r.json)" null \
			"$n: nothing missing"
		cmp src.img out.img || fail "$n: the copy differs"
	done
done

# --- Resumed from a mapfile (ddrescue's format) with the first 32 MiB
# done: no digest, and why.
cp src.img part.img
dd if=/dev/zero of=part.img bs=1M seek=32 count=118 conv=notrunc status=none
cat >m2 <<EOF
# Mapfile. Created by GNU ddrescue
# current_pos  current_status  current_pass
0x02000000     ?               1
#      pos        size  status
0x00000000  0x02000000  +
0x02000000  $(printf '0x%08x' $((SIZE - 32 * 1024 * 1024)))  ?
EOF
run_kcopy -v --mapfile m2 --hash sha256 --report r2.json src.img part.img
assert_eq "$ST" 0 "resumed: exit status"
cmp src.img part.img || fail "resumed: the copy differs"
assert_eq "$(jq -c .hashes r2.json)" null "resumed: no digest"
why="this run resumed from the mapfile and did not read sectors 0..65535"
assert_eq "$(jq -r .hashes_missing r2.json)" "$why" "resumed: the report says why"
grep -qF -- "--hash: $why: no digest" "$ERR_FILE" ||
	fail "resumed: -v does not say why"

echo PASS >&2
exit 0

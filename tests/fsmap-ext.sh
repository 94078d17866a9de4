#!/bin/bash
# The ext2/ext3/ext4 map reader (src/kcopy/fs-ext.c) through fsmap-dump:
# for each of ext2, ext3 and ext4 with 1 KiB and 4 KiB blocks, a 96 MiB
# image made over random bytes (so that blocks the file system does not
# use hold garbage) and filled by mke2fs -d with files of assorted sizes,
# a sparse file, an empty one and a directory; the used bytes are exactly
# dumpe2fs's (block count - free blocks) * block size; the used ranges
# copied over other random bytes make a file system e2fsck passes, with
# the same files.  Then: that check fails when the copy lacks an inode
# table; the reasons of a file system that is not clean (errors, not
# cleanly unmounted, needs_recovery, orphans); a feature libext2fs does
# not know (ENOTSUP); an image shorter than its file system (EUCLEAN).
# Needs no root: all is done on image files.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires mke2fs debugfs dumpe2fs e2fsck cmp truncate head
DUMP=$(__abspath "${FSMAP_DUMP:-$top_builddir/tests/fsmap-dump}")
[[ -x $DUMP ]] || fail "fsmap-dump not built ($DUMP)"

MiB=$((1024 * 1024))
SIZE=$((96 * MiB))

# The files: assorted sizes, drawn from $RANDOM (replayable).
SRC=$T/src
mkdir -p "$SRC/dir/sub"
FILES=()
i=0
for max in 1 900 5000 70000 700000 3000000; do
	n=$((1 + (RANDOM * 32768 + RANDOM) % max))
	head -c "$n" /dev/urandom >"$SRC/f$i"
	FILES+=("f$i")
	i=$((i + 1))
done
head -c $((RANDOM + 1)) /dev/urandom >"$SRC/dir/sub/deep"
FILES+=(dir/sub/deep)
: >"$SRC/empty"
FILES+=(empty)
# Sparse: 20 MiB with a few writes, one across a 4 KiB boundary.
truncate -s $((20 * MiB)) "$SRC/sparse"
for off in 0 $((RANDOM * 300)) $((8 * MiB - 7)) $((20 * MiB - 100)); do
	dd if=/dev/urandom of="$SRC/sparse" bs=100 count=1 seek="$off" \
		oflag=seek_bytes conv=notrunc status=none
done
FILES+=(sparse)

make_image "$T/junk" $SIZE random
make_image "$T/other" $SIZE random

# sb_value IMG FIELD: a line of dumpe2fs -h, its value.
sb_value() {
	dumpe2fs -h "$1" 2>/dev/null | sed -n "s/^$2: *//p"
}

# map IMG [DEST]: fsmap-dump's head line into TYPE BS FS_SIZE USED NUM
# STATE, its ranges in $T/map.
map() {
	"$DUMP" "$@" >"$T/map" || fail "fsmap-dump $* failed"
	read -r TYPE BS FS_SIZE USED NUM STATE <"$T/map"
}

# made TYPE BLOCK_SIZE IMG: a file system over random bytes (nodiscard:
# mke2fs leaves the blocks it does not write as they were).
made() {
	cp "$T/junk" "$3"
	mke2fs -t "$1" -b "$2" -F -q -E nodiscard,lazy_itable_init=1 \
		-d "$SRC" "$3" >"$T/mke2fs.log" 2>&1 ||
		fail "mke2fs -t $1 -b $2: $(cat "$T/mke2fs.log")"
}

for type in ext2 ext3 ext4; do
	for bs in 1024 4096; do
		what="$type, $bs-byte blocks"
		img=$T/$type-$bs.img
		made $type $bs "$img"
		count=$(sb_value "$img" "Block count")
		free=$(sb_value "$img" "Free blocks")
		map "$img"
		assert_eq "$TYPE" $type "$what: type"
		assert_eq "$BS" $bs "$what: block size"
		assert_eq "$FS_SIZE" $((count * bs)) "$what: fs size"
		assert_eq "$USED" $(((count - free) * bs)) "$what: used bytes"
		assert_eq "$STATE" clean "$what: state"
		((NUM > 0 && USED < FS_SIZE / 2)) ||
			fail "$what: $NUM ranges, $USED bytes used"

		cp "$T/other" "$T/dest"
		map "$img" "$T/dest"
		e2fsck -fn "$T/dest" >"$T/fsck.log" 2>&1 ||
			fail "$what: e2fsck of the copy: $(cat "$T/fsck.log")"
		for f in "${FILES[@]}"; do
			debugfs -R "cat /$f" "$T/dest" 2>/dev/null |
				cmp - "$SRC/$f" ||
				fail "$what: /$f differs in the copy"
		done
		[[ $type == ext4 ]] || rm -f "$img"	# ext4's are used below
	done
done

# The checks have teeth: the same copy without group 0's inode table.
img=$T/ext4-1024.img
it=$(dumpe2fs "$img" 2>/dev/null | sed -n 's/^ *Inode table at \([0-9]*\)-\([0-9]*\).*/\1 \2/p' |
	head -n 1)
read -r first last <<<"$it"
[[ -n $first && -n $last ]] || fail "no inode table in dumpe2fs"
cp "$T/other" "$T/dest"
map "$img" "$T/dest"
dd if="$T/other" of="$T/dest" bs=1024 skip="$first" seek="$first" \
	count=$((last - first + 1)) conv=notrunc status=none
if e2fsck -fn "$T/dest" >"$T/fsck.log" 2>&1; then
	fail "e2fsck passed a copy without its inode table"
fi

# Not clean: each reason.
img=$T/ext4-4096.img
dirty() {
	cp "$img" "$T/dirty.img"
	debugfs -w -R "$1" "$T/dirty.img" >"$T/debugfs.log" 2>&1 ||
		fail "debugfs $1: $(cat "$T/debugfs.log")"
	map "$T/dirty.img"
	[[ $(head -n 1 "$T/map") == *"$2"* ]] ||
		fail "$1: '$(head -n 1 "$T/map")', not '$2'"
	assert_eq "$USED" "$(sed -n 1p "$T/clean.map" | cut -d' ' -f4)" "$1: used"
}
"$DUMP" "$img" >"$T/clean.map"
dirty "ssv state 3" "errors recorded"
dirty "ssv state 0" "not cleanly unmounted"
dirty "feature needs_recovery" "needs journal recovery"
dirty "ssv last_orphan 12" "has orphan inodes to clean up"

# Features libext2fs does not know: ENOTSUP, named.
cp "$img" "$T/new.img"
incompat=$(od -An -tu4 -j $((1024 + 0x60)) -N 4 "$img" | tr -d ' ')
debugfs -w -R "ssv feature_incompat $((incompat | 0x8000000))" "$T/new.img" \
	>/dev/null 2>&1 || fail "debugfs: cannot set feature_incompat"
st=0
"$DUMP" "$T/new.img" >/dev/null 2>"$T/err" || st=$?
assert_eq $st 1 "unknown feature: exit status ($(cat "$T/err"))"
grep -q "not supported.*unsupported feature.*0x8000000" "$T/err" ||
	fail "unknown feature: $(cat "$T/err")"

# An image shorter than its file system: EUCLEAN, both sizes said.
head -c $((SIZE - 4096)) "$img" >"$T/short.img"
st=0
"$DUMP" "$T/short.img" >/dev/null 2>"$T/err" || st=$?
assert_eq $st 1 "short image: exit status ($(cat "$T/err"))"
grep -q "$SIZE bytes of file system, $((SIZE - 4096)) of source" "$T/err" ||
	fail "short image: $(cat "$T/err")"
exit 0

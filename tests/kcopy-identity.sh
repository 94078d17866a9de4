#!/bin/bash
# What a region is, asked of the kernel, not read from path text: a loop
# device over a file with an unusual name or over a deleted-but-linked file
# is that file; the image behind a mounted loop device is not a destination
# (unless --force); a read-only device is a setup error; kcopy creates no
# file on devtmpfs but does on /dev/shm.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires cmp mkfs.ext4 mount umount
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

SRC=$T/src.img
make_image "$SRC" 4M pattern:SRC

# --- A loop device over a file whose name the sysfs text cannot carry
# (a newline), and the file itself: the same storage.
odd=$T/$'odd\nname (deleted).img'
make_image "$odd" 4M pattern:ODD
ODD=$(make_loop "$odd")
expect_refused "loop over an odd name" "overlaps the source region" \
	"$ODD" "$odd"

# --- A loop device over a file deleted from its first name but linked
# under a second: copying the device onto the second name is a copy onto
# itself.
make_image "$T/first.img" 4M pattern:DEL
ln "$T/first.img" "$T/second.img"
DEL=$(make_loop "$T/first.img")
rm "$T/first.img"
expect_refused "deleted but linked" "overlaps the source region" \
	"$DEL" "$T/second.img"
expect_refused "deleted but linked, reverse" "overlaps the source region" \
	"$T/second.img" "$DEL"

# --- The image behind a mounted loop device is not a destination.
make_image "$T/fs.img" 16M zero
mkfs.ext4 -q -F "$T/fs.img"
FS=$(make_loop "$T/fs.img")
mkdir "$T/mnt"
mount "$FS" "$T/mnt"
cleanup_add "umount '$T/mnt' 2>/dev/null"
echo hello >"$T/mnt/file"
expect_refused "image of a mounted loop device" \
	"backing file of $FS, which is mounted or in use" \
	"$SRC" "$T/fs.img:8192"
umount "$T/mnt"
run_kcopy "$SRC" "$T/fs.img:8192"
assert_eq "$ST" 0 "the same image once unmounted"
same "$SRC" 0 "$T/fs.img" $((8192 * 512)) 4194304

# ... but a loop device this run writes itself does not make its file busy:
# another region of the same file is a destination beside it.
make_image "$T/two.img" 16M zero
TWO=$(make_loop "$T/two.img")
run_kcopy "$SRC" "$TWO" "$T/two.img:16384"
assert_eq "$ST" 0 "a loop device and another region of its file"
same "$SRC" 0 "$T/two.img" 0 4194304
same "$SRC" 0 "$T/two.img" $((16384 * 512)) 4194304

# --- A read-only device is a setup error, not a write error.
make_image "$T/ro.img" 4M zero
RO=$(make_loop "$T/ro.img" --read-only)
expect_refused "read-only device" "device is read-only" "$SRC" "$RO"

# --- devtmpfs is told by its file system, not by the spelling of the path.
name=kcopy-test-$$
cleanup_add "rm -f '/dev/$name' '/dev/shm/$name'"
expect_refused "new file in /dev" "does not create files on devtmpfs" \
	"$SRC" "/dev/$name"
(cd /dev && "$KCOPY" "$SRC" "$name" 2>"$T/cd-dev.err") && st=0 || st=$?
expect_status "$st" setup "cd /dev, relative name: exit status"
[[ ! -e /dev/$name ]] || fail "created /dev/$name"
if [[ -d /dev/shm ]] && [[ $(stat -f -c %T /dev/shm) == tmpfs ]]; then
	run_kcopy "$SRC" "/dev/shm/$name"
	assert_eq "$ST" 0 "a new file on /dev/shm"
	cmp "$SRC" "/dev/shm/$name" || fail "/dev/shm copy differs"
fi
echo "all identity cases passed"

#!/bin/bash
# Hostile inputs and conditions that need no root: closed standard
# descriptors, SIGPIPE and SIGXFSZ, a FIFO as SOURCE, two runs on one file,
# dangling symbolic links, bad size suffixes, offsets past what the kernel
# can address.  Nothing is lost, nothing hangs, no false report.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires cmp timeout
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

SRC=$T/src.img
make_image "$SRC" 4M pattern:SRC
cd "$T"

# --- Standard input, output and error closed: no region may become
# descriptor 0, 1 or 2, or kcopy's own lines land in it.  Existing
# destinations, opened early, are the ones that would get them.
for d in d1.img d2.img d3.img; do make_image "$d" 4M zero; done
"$KCOPY" -v "$SRC" d1.img d2.img d3.img <&- >&- 2>&- && st=0 || st=$?
assert_eq "$st" 0 "closed 0-2: exit status"
for d in d1.img d2.img d3.img; do
	cmp "$SRC" "$d" || fail "closed 0-2: $d differs from the source"
done

# --- SIGPIPE: progress into a pipe that closes must not kill the copy.
( "$KCOPY" --progress=plain --progress-interval 0.05 --rate 16M \
	"$SRC" pipe.img 2>&1 >/dev/null && echo 0 >pipe.st || echo $? >pipe.st
) | head -c 1 >/dev/null
assert_eq "$(cat pipe.st)" 0 "progress into a closed pipe: exit status"
cmp "$SRC" pipe.img || fail "progress into a closed pipe: copy differs"

# --- SIGXFSZ: a destination reaching the file size limit is that
# destination's write error (EFBIG); the others are written.
(ulimit -f 4096; "$KCOPY" "$SRC:0:3M" fsz1.img fsz2.img:2M fsz3.img \
	2>fsz.err && echo 0 >fsz.st || echo $? >fsz.st)
assert_eq "$(cat fsz.st)" 4 "ulimit -f: exit status (destination 2 only)"
grep -q "destination 2 'fsz2.img': write: File too large" fsz.err ||
	fail "ulimit -f: no EFBIG for destination 2: $(cat fsz.err)"
same "$SRC" 0 fsz1.img 0 3145728
same "$SRC" 0 fsz3.img 0 3145728

# --- A FIFO as SOURCE is refused at once, not waited on.
mkfifo fifo
ST=0
timeout 10 "$KCOPY" fifo fifo-dst.img 2>fifo.err || ST=$?
[[ $ST != 124 ]] || fail "FIFO source: kcopy hung"
expect_status "$ST" setup "FIFO source: exit status"
grep -q "not a block device or regular file" fifo.err ||
	fail "FIFO source: $(cat fifo.err)"
[[ ! -e fifo-dst.img ]] || fail "FIFO source: destination created"

# --- Two runs on one destination file: the second is refused while the
# first writes, and --force overrides.
make_image big.img 32M pattern:BIG
"$KCOPY" --rate 8M big.img busy.img 2>busy.err &
first=$!
cleanup_add "kill $first 2>/dev/null"
size_at_least() { [[ $(stat -c %s "$1") -ge $2 ]]; }
wait_for 10 size_at_least busy.img 2097152 || fail "the first run did not start"
expect_refused "second writer" "in use by another process" big.img busy.img
expect_refused "writer of the source" "in use by another process" \
	"$SRC" big.img:0:4M
expect_refused "reader of the destination" "in use by another process" \
	busy.img:0:1M other.img
[[ ! -e other.img ]] || fail "a refused run created its destination"
# Another region of the same file is not in the way.
run_kcopy "$SRC" busy.img:65536
assert_eq "$ST" 0 "another region of the busy file"
run_kcopy --force "$SRC" forced.img
assert_eq "$ST" 0 "--force"
wait "$first" || fail "the first run failed: $(cat busy.err)"
cmp big.img <(head -c 32M busy.img) || fail "the first run's copy differs"
same "$SRC" 0 busy.img $((65536 * 512)) 4194304

# --- A dangling symbolic link is named as such, and nothing is created
# through it.
ln -s nowhere.img dangling.img
expect_refused "dangling symlink" "symbolic link to 'nowhere.img'" \
	"$SRC" dangling.img
[[ ! -e nowhere.img ]] || fail "created a file through a dangling link"

# --- A bad size suffix is named, as SOURCE or as DEST, and no file named
# after the whole argument is created.
expect_refused "bad suffix, source" "'1Ki' is not a SECTOR or COUNT" \
	img:0:1Ki new.img
expect_refused "bad suffix, dest" "'1Ki' is not a SECTOR or COUNT" \
	"$SRC" img:0:1Ki
[[ ! -e img:0:1Ki && ! -e new.img ]] || fail "bad suffix: a file was created"

# --- An offset past what the kernel can address (an off_t) is refused
# before any file is created.
expect_refused "offset past 8 EiB" "largest offset the kernel can address" \
	"$SRC" far.img:18014398509481983
[[ ! -e far.img ]] || fail "offset past 8 EiB: far.img created"
echo "all hostile-input cases passed"

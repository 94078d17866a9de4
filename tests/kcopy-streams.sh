#!/bin/bash
# '-' as SOURCE (standard input) and as one DEST (standard output): one
# read of a stream feeds every destination; a destination too small for
# the stream, a closed pipe and a stalled writer are handled as the
# destination's write error, and a signal still drains and reports.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires xz cmp jq python3 timeout
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

SRC=$T/src.img
make_image "$SRC" 24M pattern:STREAM
cd "$T"

# --- An xz-compressed image through a pipe to three destinations.
xz -1 -T1 -c "$SRC" >src.img.xz
make_image old.img 32M pattern:OLD
cp old.img old.ref
xz -dc src.img.xz | "$KCOPY" --report r1.json - new1.img new2.img old.img \
	2>e1 && st=0 || st=$?
assert_eq "$st" 0 "xz | kcopy - three destinations"
cmp "$SRC" new1.img || fail "new1.img differs"
cmp "$SRC" new2.img || fail "new2.img differs"
same "$SRC" 0 old.img 0 $((24 * 1024 * 1024))
same old.img $((24 * 1024 * 1024)) old.ref $((24 * 1024 * 1024)) \
	$((8 * 1024 * 1024))
assert_eq "$(jq .bytes r1.json)" $((24 * 1024 * 1024)) "report bytes"
assert_eq "$(jq .source.count r1.json)" 49152 "report source count"

# (Standard input from a file is that file; a pipe is a stream.)
"$KCOPY" - fromfile.img <"$SRC" && cmp "$SRC" fromfile.img ||
	fail "standard input from a file"

# --- A stream longer than one destination: that one fails (ENOSPC), with
# what fits written; the others get everything.
cat "$SRC" | "$KCOPY" - small.img:0:8M big.img 2>e2 && st=0 || st=$?
expect_status "$st" dest:1 "stream longer than destination 1"
grep -q "destination 1 'small.img': write: No space left on device" e2 ||
	fail "too small: $(cat e2)"
same "$SRC" 0 small.img 0 $((8 * 1024 * 1024))
cmp "$SRC" big.img || fail "too small: the other destination differs"

# --- A stream of a length that is not a multiple of 512: files get it to
# the byte.
head -c 1000001 "$SRC" | "$KCOPY" - odd.img && st=0 || st=$?
assert_eq "$st" 0 "odd length"
cmp <(head -c 1000001 "$SRC") odd.img || fail "odd length: differs"
# A COUNT on a stream reads that much of it (after --: popt would take
# "-:..." for options).
"$KCOPY" -- -:0:2048 part.img < <(cat "$SRC") && st=0 || st=$?
assert_eq "$st" 0 "a COUNT on standard input"
cmp <(head -c 1048576 "$SRC") part.img || fail "COUNT on a stream: differs"

# --- Standard output as a destination, beside a file.
"$KCOPY" "$SRC" out1.img - >stdout.img && st=0 || st=$?
assert_eq "$st" 0 "to standard output"
cmp "$SRC" stdout.img || fail "standard output differs"
cmp "$SRC" out1.img || fail "the file beside standard output differs"
"$KCOPY" "$SRC" - | cmp - "$SRC" || fail "standard output into a pipe"

# --- A closed pipe (EPIPE; SIGPIPE is ignored) is that destination's
# error, and the disk finishes.
set +o pipefail
"$KCOPY" "$SRC" epipe.img - 2>e3 | head -c 1000 >/dev/null
st=${PIPESTATUS[0]}
set -o pipefail
expect_status "$st" dest:2 "closed pipe: destination 2 only"
grep -q "destination 2 '-': write: Broken pipe" e3 || fail "EPIPE: $(cat e3)"
cmp "$SRC" epipe.img || fail "closed pipe: the file differs"

# --- A socket as standard input.
python3 - "$KCOPY" "$SRC" sock.img <<'PY' || fail "socket source"
import socket, subprocess, sys
kcopy, src, dst = sys.argv[1:]
a, b = socket.socketpair()
p = subprocess.Popen([kcopy, "-", dst], stdin=b)
b.close()
with open(src, "rb") as f:
    a.sendall(f.read())
a.shutdown(socket.SHUT_WR)
sys.exit(p.wait())
PY
cmp "$SRC" sock.img || fail "socket source: differs"

# --- --verify of the disk destinations from a stream: the checksums kept
# during the copy, the stream read once; standard output is not read back.
cat "$SRC" | "$KCOPY" --verify --report r4.json - v1.img - 2>e4 |
	cat >v2.img && st=0 || st=$?
assert_eq "$st" 0 "--verify from a stream"
assert_eq "$(jq .verified r4.json)" true "--verify ran"
grep -q "standard output cannot be read back" e4 || fail "verify: $(cat e4)"
cmp "$SRC" v1.img || fail "verify: v1 differs"
cmp "$SRC" v2.img || fail "verify: standard output differs"

# --- A stalled writer: SIGINT still drains, reports and exits 130.
mkfifo stall.fifo
{ head -c 3M "$SRC"; exec sleep 30; } >stall.fifo &
writer=$!
cleanup_add "kill $writer 2>/dev/null"
"$KCOPY" --report r5.json - stalled.img <stall.fifo 2>e5 &
pid=$!
wait_for 10 test -s stalled.img || fail "stalled: nothing copied"
sleep 0.5
kill -INT "$pid"
wait_gone "$pid" 10 || fail "stalled: SIGINT did not stop kcopy"
wait "$pid" && st=0 || st=$?
expect_status "$st" signal:INT "stalled writer: SIGINT"
assert_eq "$(jq .signal r5.json)" 2 "stalled: the report says SIGINT"
same "$SRC" 0 stalled.img 0 $((3 * 1024 * 1024))

# --- Combinations that cannot work are usage errors.
expect_refused "two '-'" "at most one" "$SRC" - -
expect_refused "report and DEST on stdout" "both write to standard output" \
	--report - "$SRC" -
expect_refused "--zero -" "cannot be zeroed" --zero -
"$KCOPY" -- -:8 x.img < <(cat "$SRC") 2>e6 && st=0 || st=$?
expect_status "$st" setup "a stream with a SECTOR"
grep -q "no SECTOR" e6 || fail "a stream with a SECTOR: $(cat e6)"
echo "all stream cases passed"

#!/bin/bash
# NBD exports as regions, served by nbdkit on Unix sockets (no root): one
# read of the source feeds local files and remote exports alike; a remote
# failure (error replies, a killed server, a stalled one) is that
# destination's write error while the others finish; setup errors for
# exports that are too small or read-only; bad sectors of an NBD source.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires nbdkit nbdcopy cmp jq timeout
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

SRC=$T/src.img
make_image "$SRC" 16M pattern:NBD
requires_nbd
SIZE=$((16 * 1024 * 1024))

# --- One read to three exports and a file; an export as the source; an
# export to an export.
A=$(make_nbd a memory 16M)
B=$(make_nbd b --filter=log memory 16M logfile="$T/b.nbdlog")
A3=$(make_nbd a3 memory 16M)
run_kcopy --report "$T/r1.json" "$SRC" "$A" "$B" "$A3" "$T/f1.img"
assert_eq "$ST" 0 "to three exports and a file"
read_back "$A" "$T/a.out"
read_back "$B" "$T/b.out"
read_back "$A3" "$T/a3.out"
cmp "$SRC" "$T/a.out" || fail "export a differs from the source"
cmp "$SRC" "$T/b.out" || fail "export b differs from the source"
cmp "$SRC" "$T/a3.out" || fail "export a3 differs from the source"
NN=$(make_nbd nn memory 16M)
run_kcopy "$A" "$NN"
assert_eq "$ST" 0 "from an export to an export"
read_back "$NN" "$T/nn.out"
cmp "$SRC" "$T/nn.out" || fail "export to export: differs"

# --- An export of 4096-byte blocks (its minimum block size, enforced by
# the blocksize-policy filter): regions on its blocks, others refused.
B4K=$(make_nbd b4k --filter=blocksize-policy memory 16M \
	blocksize-minimum=4096 blocksize-preferred=4096 blocksize-error-policy=error)
"$KCOPY" --dry-run "$SRC" "$B4K" | grep -q "block 4096 bytes" ||
	fail "4096-byte export: the plan does not say its block"
run_kcopy "$SRC:8:2048" "$B4K:16"
assert_eq "$ST" 0 "4096-byte export, aligned region"
read_back "$B4K" "$T/b4k.out"
same_sectors "$SRC" 8 "$T/b4k.out" 16 2048
expect_refused "4096-byte export, unaligned" "not aligned to the logical block" \
	"$SRC:0:8" "$B4K:1"

# --- A slow destination (every write delayed 100 ms, far above what a
# sanitizer build adds to the others; the rate filter's burst
# would let a copy this small through): the report and the progress lines
# name the one that holds the copy back.
SL=$(make_nbd sl --filter=delay memory 16M delay-write=100ms)
FA=$(make_nbd fa memory 16M)
run_kcopy --progress=json --progress-interval 0.2 --report "$T/rs.json" \
	"$SRC" "$FA" "$SL" "$T/fs.img"
assert_eq "$ST" 0 "a slow destination"
assert_eq "$(jq -c '[.destinations[].held_back] | index(max)' "$T/rs.json")" \
	1 "the report: the rate-limited export held the copy back most"
grep '"final": true' "$ERR_FILE" | grep -q '"slowest": 2' ||
	fail "progress: not the slow destination: $(grep final "$ERR_FILE")"
cmp "$SRC" "$T/f1.img" || fail "the file differs from the source"
assert_eq "$(jq -r '.destinations[1].path' "$T/r1.json")" "$B" "report path"
# The server offers multi-conn: more than one connection carried writes.
conns=$(grep -o 'connection=[0-9]*' "$T/b.nbdlog" | sort -u | wc -l)
[[ $conns -gt 1 ]] || fail "multi-conn: only $conns connection(s) used"
# KCOPYD_FLUSH: the export was flushed after its last write.
last_write=$(grep -n ' Write id=' "$T/b.nbdlog" | tail -1 | cut -d: -f1)
first_flush=$(grep -n ' Flush id=' "$T/b.nbdlog" | tail -1 | cut -d: -f1)
[[ -n $first_flush && $first_flush -gt $last_write ]] ||
	fail "no flush after the last write: $(grep -c Flush "$T/b.nbdlog")"
run_kcopy "$A" "$T/back.img"
assert_eq "$ST" 0 "from an export"
cmp "$SRC" "$T/back.img" || fail "copy from the export differs"

# --- qemu-nbd serving a qcow2 image (multi-conn with --shared): kcopy
# writes it and reads it back; qemu-img sees the same data in the image.
# (autogen.sh installs qemu-utils; without it this case is not run.)
if command -v qemu-nbd >/dev/null && command -v qemu-img >/dev/null; then
	qemu-img create -q -f qcow2 "$T/q.qcow2" 16M
	qemu-nbd -k "$T/q.sock" -f qcow2 --shared=4 --persistent \
		"$T/q.qcow2" >"$T/qemu-nbd.log" 2>&1 &
	qpid=$!
	cleanup_add "kill $qpid 2>/dev/null"
	wait_for 10 test -S "$T/q.sock" || fail "qemu-nbd did not start"
	Q="nbd+unix:///?socket=$T/q.sock"
	run_kcopy --verify "$SRC" "$Q"
	assert_eq "$ST" 0 "to a qcow2 image through qemu-nbd"
	run_kcopy "$Q" "$T/q.back"
	cmp "$SRC" "$T/q.back" || fail "qcow2: the copy back differs"
	kill "$qpid"
	wait "$qpid" 2>/dev/null || true
	qemu-img convert -O raw "$T/q.qcow2" "$T/q.raw"
	cmp "$SRC" "$T/q.raw" || fail "qcow2: the image holds other data"
else
	echo "note: qemu-nbd not installed, qcow2 case not run" >&2
fi

# --- SECTOR and COUNT after a URI; nbd:// over TCP on 127.0.0.1.
for try in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 20000))
	nbdkit -p "$port" -i 127.0.0.1 -P "$T/tcp.pid" memory 16M \
		>"$T/tcp.log" 2>&1 && break
done
cleanup_add "__nbd_stop '$T/tcp.pid'"
wait_for 10 test -s "$T/tcp.pid" || fail "nbdkit on TCP did not start"
TCP=nbd://127.0.0.1:$port/
run_kcopy "$SRC:2048:4096" "$TCP:8192"
assert_eq "$ST" 0 "regions on nbd://"
read_back "$TCP" "$T/tcp.out"
same_sectors "$SRC" 2048 "$T/tcp.out" 8192 4096
is_zero_sectors "$T/tcp.out" 0 8192
# After host:port without a '/', a colon starts the fields too.
run_kcopy "$SRC:0:2048" "nbd://127.0.0.1:$port:16384"
assert_eq "$ST" 0 "a region after nbd://HOST:PORT"
read_back "$TCP" "$T/tcp.out"
same_sectors "$SRC" 0 "$T/tcp.out" 16384 2048
same_sectors "$SRC" 2048 "$T/tcp.out" 8192 4096

# --- nbds:// (TLS, a pre-shared key) where the server requires TLS.
printf 'alice:%s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
	>"$T/keys.psk"
chmod 600 "$T/keys.psk"
TLS=$(make_nbd tls --tls=require --tls-psk="$T/keys.psk" memory 16M)
TLS="${TLS/nbd+unix:\/\//nbds+unix://alice@}&tls-psk-file=$T/keys.psk"
run_kcopy "$SRC" "$TLS"
assert_eq "$ST" 0 "to an export over TLS"
run_kcopy "$TLS" "$T/tls.out"
cmp "$SRC" "$T/tls.out" || fail "TLS: the copy back differs"
expect_refused "plain to a TLS-only server" "cannot open the NBD export" \
	"$SRC" "nbd+unix:///?socket=$T/tls.sock"

# --- --dry-run names each export's size and capabilities.
"$KCOPY" --dry-run "$SRC" "$A" >"$T/plan.txt" || fail "dry run failed"
grep -q "NBD export, $SIZE bytes" "$T/plan.txt" || fail "plan: $(cat "$T/plan.txt")"
grep -q "multi-conn" "$T/plan.txt" || fail "plan: no multi-conn"

# --- Setup errors: too small, read-only, nobody there.
SMALL=$(make_nbd small memory 1M)
RO=$(make_nbd ro -r memory 16M)
expect_refused "export too small" "ends past the end of the NBD export" \
	"$SRC" "$SMALL"
expect_refused "read-only export" "the NBD export is read-only" "$SRC" "$RO"
expect_refused "no server" "cannot open the NBD export" \
	"$SRC" "nbd+unix:///?socket=$T/nobody.sock"

# --- A server refusing writes is one destination's failure.
BAD=$(make_nbd bad --filter=log --filter=error memory 16M error-pwrite=EIO \
	error-pwrite-rate=100% logfile="$T/bad.nbdlog")
C=$(make_nbd c memory 16M)
run_kcopy --report "$T/r2.json" "$SRC" "$BAD" "$C" "$T/f2.img"
expect_status "$ST" dest:1 "error replies: only destination 1 fails"
grep -q "destination 1 '$BAD': write: Input/output error" "$ERR_FILE" ||
	fail "error replies: closing line"
read_back "$C" "$T/c.out"
cmp "$SRC" "$T/c.out" || fail "error replies: the other export differs"
cmp "$SRC" "$T/f2.img" || fail "error replies: the file differs"
assert_eq "$(jq .write_err "$T/r2.json")" "$(write_mask dest:1)" "error replies: report write_err"
! grep -q ' Flush id=' "$T/bad.nbdlog" || fail "a dropped export was flushed"

# --- A failed flush is that destination's write error.
# (nbdkit's eval plugin over a file, its flush failing with EIO: the error
# filter cannot fail flushes.)
truncate -s 16M "$T/nofl.img"
NOFL=$(make_nbd nofl eval get_size="echo $SIZE" can_write='exit 0' \
	pread="dd if='$T/nofl.img' skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none" \
	pwrite="dd of='$T/nofl.img' seek=\$4 conv=notrunc oflag=seek_bytes status=none" \
	can_flush='exit 0' flush='echo "EIO flush refused" >&2; exit 1')
run_kcopy "$SRC" "$NOFL" "$T/f3.img"
expect_status "$ST" dest:1 "failed flush: only destination 1 fails"
grep -q "destination 1 '$NOFL': flush: Input/output error" "$ERR_FILE" ||
	fail "failed flush: closing line"
cmp "$SRC" "$T/f3.img" || fail "failed flush: the file differs"

# --- The connection drops mid-copy (server killed): no hang.
# The server is killed (stopped, below) once writes have reached it, seen
# in its log: not before kcopy has connected, however loaded the machine.
writes_seen() { grep -q ' Write id=' "$1"; }
SLOW=$(make_nbd slow --filter=log --filter=delay memory 16M \
	delay-write=2000ms logfile="$T/slow.nbdlog")
D=$(make_nbd d memory 16M)
(wait_for 20 writes_seen "$T/slow.nbdlog"; kill -KILL "$(nbd_pid slow)") &
killer=$!
run_kcopy "$SRC" "$SLOW" "$D"
wait "$killer" || true
expect_status "$ST" dest:1 "server killed: only destination 1 fails"
read_back "$D" "$T/d.out"
cmp "$SRC" "$T/d.out" || fail "server killed: the other export differs"

# --- A stalled server (stopped) fails after --timeout, not never.
STALL=$(make_nbd stall --filter=log --filter=delay memory 16M \
	delay-write=1000ms logfile="$T/stall.nbdlog")
E=$(make_nbd e memory 16M)
(wait_for 20 writes_seen "$T/stall.nbdlog"; kill -STOP "$(nbd_pid stall)") &
stopper=$!
start=$(date +%s)
run_kcopy --timeout 2 "$SRC" "$STALL" "$E"
wait "$stopper" || true
kill -CONT "$(nbd_pid stall)"
expect_status "$ST" dest:1 "stalled server: only destination 1 fails"
grep -q "Connection timed out" "$ERR_FILE" || fail "stalled: not a timeout"
(($(date +%s) - start < 20)) || fail "stalled server: took too long"
read_back "$E" "$T/e.out"
cmp "$SRC" "$T/e.out" || fail "stalled server: the other export differs"

# --- A server that accepts the connection but never answers: connecting
# is bounded by --timeout too (a setup error, not a hang).
MUTE=$(make_nbd mute memory 16M)
kill -STOP "$(nbd_pid mute)"
start=$(date +%s)
expect_refused "a mute server" "cannot open the NBD export: Connection timed out" \
	--timeout 1 "$SRC" "$MUTE"
(($(date +%s) - start < 15)) || fail "a mute server: took too long"
kill -CONT "$(nbd_pid mute)"

# --- Bad sectors of an NBD source: isolated and listed, as for a disk.
# nbdkit's ddrescue filter fails reads of the '-' ranges of a mapfile.
cat >"$T/bad.map" <<'MAP'
# Mapfile
0x00000000  +  1
0x00000000  0x00100000  +
0x00100000  0x00001000  -
0x00101000  0x004FF000  +
0x00600000  0x00000200  -
0x00600200  0x009FFE00  +
MAP
SICK=$(make_nbd sick --filter=ddrescue file "$SRC" \
	ddrescue-mapfile="$T/bad.map")
run_kcopy --ignore-errors --report "$T/r3.json" "$SICK" "$T/rescued.img"
expect_status "$ST" read "bad sectors: read error bit only"
assert_eq "$(jq -c '[.bad_ranges[] | [.sector, .count]]' "$T/r3.json")" \
	"[[2048,8],[12288,1]]" "bad sectors: bad_ranges"
is_zero_sectors "$T/rescued.img" 2048 8
is_zero_sectors "$T/rescued.img" 12288 1
same_sectors "$SRC" 0 "$T/rescued.img" 0 2048
same_sectors "$SRC" 2056 "$T/rescued.img" 2056 10232
same_sectors "$SRC" 12289 "$T/rescued.img" 12289 $((32768 - 12289))

# --- --zero on an export.
Z=$(make_nbd z memory 16M)
run_kcopy "$SRC" "$Z"
run_kcopy --zero "$Z:2048:2048"
assert_eq "$ST" 0 "--zero on an export"
read_back "$Z" "$T/z.out"
is_zero_sectors "$T/z.out" 2048 2048
same_sectors "$SRC" 0 "$T/z.out" 0 2048
same_sectors "$SRC" 4096 "$T/z.out" 4096 $((32768 - 4096))

# ... with NBD WRITE_ZEROES where the server offers it, else written zeros.
LZ=$(make_nbd lz --filter=log memory 16M logfile="$T/lz.nbdlog")
NZ=$(make_nbd nz --filter=log --filter=nozero memory 16M \
	logfile="$T/nz.nbdlog")
run_kcopy "$SRC" "$LZ" "$NZ"
run_kcopy --zero "$LZ:2048:2048" "$NZ:2048:2048"
assert_eq "$ST" 0 "--zero, with and without WRITE_ZEROES"
for u in "$LZ" "$NZ"; do
	read_back "$u" "$T/zz.out"
	is_zero_sectors "$T/zz.out" 2048 2048
	same_sectors "$SRC" 4096 "$T/zz.out" 4096 $((32768 - 4096))
done
grep -q 'Zero id=' "$T/lz.nbdlog" || fail "--zero: no WRITE_ZEROES sent"
[[ $(grep -n ' Flush id=' "$T/lz.nbdlog" | tail -1 | cut -d: -f1) -gt \
   $(grep -n ' Zero id=' "$T/lz.nbdlog" | tail -1 | cut -d: -f1) ]] ||
	fail "--zero: no flush after the zeroing"
! grep -q 'Zero id=' "$T/nz.nbdlog" || fail "--zero: zero sent to nozero"
[[ $(grep -c 'Write id=.*offset=0x100000 count=0x80000' "$T/nz.nbdlog") -ge 2 ]] ||
	fail "--zero: no zeros written where WRITE_ZEROES is not offered"

# --- --verify reads exports back through the engine: a server that
# returns zeros for one sub-job (the eval plugin, lying on reads at 1 MiB)
# is found out; an honest one verifies.
truncate -s 16M "$T/liar.img"
LIAR=$(make_nbd liar eval get_size="echo $SIZE" can_write='exit 0' \
	pread="if [ \$4 = 1048576 ]; then head -c \$3 /dev/zero; else dd if='$T/liar.img' skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none; fi" \
	pwrite="dd of='$T/liar.img' seek=\$4 conv=notrunc oflag=seek_bytes status=none")
V=$(make_nbd v memory 16M)
run_kcopy --verify --report "$T/rv.json" "$SRC" "$LIAR" "$V"
expect_status "$ST" dest:1 "--verify: only the lying export fails"
assert_eq "$(jq -c '.destinations[0].mismatches' "$T/rv.json")" \
	'[{"sector":2048,"count":1024}]' "--verify: the mismatch"
assert_eq "$(jq -c '.destinations[1].mismatches' "$T/rv.json")" '[]' \
	"--verify: the honest export"
assert_eq "$(jq .verified "$T/rv.json")" true "--verify ran to the end"

# --- SIGINT drains the requests in flight to a slow export.
SLOW2=$(make_nbd slow2 --filter=delay memory 16M delay-write=1000ms)
"$KCOPY" "$SRC" "$SLOW2" 2>"$T/int.err" &
pid=$!
sleep 0.5
kill -INT "$pid"
wait_gone "$pid" 10 || fail "SIGINT: kcopy still running"
wait "$pid" && st=0 || st=$?
expect_status "$st" signal:INT "SIGINT: exit status"
# --- The source's map is fetched without the client's lock held while
# waiting on the network: a server slow to answer block status (2 s) does
# not hold up the progress lines (kcopyd_get_stats) meanwhile.
SX=$(make_nbd sx --filter=delay file "$SRC" delay-extents=2)
run_kcopy --progress=json --progress-interval 0.1 "$SX" "$T/sx.out"
assert_eq "$ST" 0 "slow block status: exit status"
cmp "$SRC" "$T/sx.out" || fail "slow block status: the copy differs"
early=$(grep -o '"elapsed": [0-9.]*' "$ERR_FILE" | awk '$2 < 1.5' | wc -l)
[[ $early -ge 3 ]] ||
	fail "slow block status: progress held up ($early lines in 1.5 s)"
echo "all NBD cases passed"

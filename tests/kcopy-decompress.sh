#!/bin/bash
# Compressed sources (kcopy(1), "Compressed images"): xz (threaded, several
# blocks; single-threaded), zstd (several frames, with and without content
# sizes), gzip (several members) and bzip2 (several streams), from a file
# and from a pipe, each equal to the image; --decompress=none and a forced
# format the input lacks; corrupt and truncated inputs, a read error where
# the decoder found it with nothing claimed past it; the known size checked
# against a destination before anything is written; --hash of the image;
# the report and --dry-run naming the format and sizes; the new files
# sparse (zeros not written).  As root with loop
# devices, also two loop devices that held random data.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires cmp jq xz zstd gzip bzip2 sha256sum python3
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"
cd "$T"

# A 32 MiB image: data, runs of zeros, a tail that is not a whole sector.
IMG=img
make_image part1 12M pattern:DECOMP
make_image part2 16M zero
make_image part3 4M random
cat part1 part2 part3 >"$IMG"
printf 'tail' >>"$IMG"
SIZE=$(stat -c %s "$IMG")
SUM=$(sha256sum <"$IMG" | cut -d' ' -f1)
# The image in two pieces, compressed one by one and put end to end.
head -c 10000000 "$IMG" >piece1
tail -c +10000001 "$IMG" >piece2

# compress NAME CMD...: NAME from the two pieces, each by CMD.
compress() {
	local name=$1
	shift
	"$@" piece1 >"$name" || fail "$* failed"
	"$@" piece2 >>"$name" || fail "$* failed"
}
compress img.xz xz -c -T2 --block-size=1MiB
compress img-st.xz xz -c -T1
compress img.zst zstd -q -c
compress img-nosize.zst zstd -q -c --no-content-size
compress img.gz gzip -c
compress img.bz2 bzip2 -c
xz -l img.xz | grep -q '^ *2 ' || fail "xz -l: not two streams: $(xz -l img.xz)"

# with_stdin FILE file|pipe CMD...: run CMD (run_kcopy, kcopy_expect...)
# with kcopy reading FILE on its standard input, as a file or through a
# pipe (run_kcopy's watchdog runs it in the background, where standard
# input would be /dev/null).
cat >kin <<'EOS'
#!/bin/sh
if [ "$KIN_HOW" = pipe ]; then
	cat "$KIN_FILE" | "$KIN_KCOPY" "$@"
else
	exec "$KIN_KCOPY" "$@" <"$KIN_FILE"
fi
EOS
chmod +x kin
with_stdin() {
	local file=$1 how=$2
	shift 2
	KIN_FILE=$file KIN_HOW=$how KIN_KCOPY=$KCOPY KCOPY=$T/kin "$@"
}

# sparse FILE WHAT: FILE, a new copy of the image, allocates at most 1.2x
# the image's data (the 16 MiB of zeros are not written).
DATA=$((SIZE - 16 * 1024 * 1024))
sparse() {
	local alloc=$(($(stat -c %b "$1") * 512))
	((alloc * 5 <= DATA * 6)) ||
		fail "$2: $alloc bytes allocated for $DATA bytes of data"
}

# Each from a file, from a file on standard input and from a pipe: the
# same bytes as the image; the new files sparse.
for f in img.xz img-st.xz img.zst img-nosize.zst img.gz img.bz2; do
	rm -f out
	kcopy_expect ok "$f" out
	cmp "$IMG" out || fail "$f: the copy differs from the image"
	sparse out "$f"
	rm -f out
	with_stdin "$f" file kcopy_expect ok - out
	cmp "$IMG" out || fail "$f on standard input: the copy differs"
	rm -f out
	with_stdin "$f" pipe kcopy_expect ok - out
	cmp "$IMG" out || fail "$f from a pipe: the copy differs"
	sparse out "$f from a pipe"
done

# A pipe whose first bytes come apart (the magic read off it, and given
# to the decoder, or copied, first), and a socket (its magic peeked at).
cat >apart <<'EOS'
#!/bin/sh
head -c 3 "$1"
sleep 0.3
tail -c +4 "$1"
EOS
chmod +x apart
for f in img.xz "$IMG"; do
	rm -f out
	run_watchdog 60 bash -c './apart "$1" | "$2" - out' _ "$f" "$KCOPY" &&
		st=0 || st=$?
	expect_status "$st" ok "$f, its first bytes apart"
	cmp "$IMG" out || fail "$f, its first bytes apart: the copy differs"
done
rm -f out
run_watchdog 60 python3 -c '
import socket, subprocess, sys
a, b = socket.socketpair()
p = subprocess.Popen([sys.argv[1], "-", "out"], stdin=b)
b.close()
a.sendall(open(sys.argv[2], "rb").read())
a.close()
sys.exit(p.wait())' "$KCOPY" img.zst && st=0 || st=$?
expect_status "$st" ok "img.zst from a socket"
cmp "$IMG" out || fail "img.zst from a socket: the copy differs"

# A pipe that brings nothing yet: kcopy waits for its first bytes, and a
# signal still stops it (its status, nothing made).
rm -f out
mkfifo quiet.fifo
exec 3<>quiet.fifo	# a writer that writes nothing
"$KCOPY" - out <quiet.fifo 2>wait.err &
pid=$!
cleanup_add "kill $pid 2>/dev/null"
sleep 0.5
# SIGWINCH and SIGUSR1 are answered, and it waits on.
kill -WINCH "$pid"
kill -USR1 "$pid"
sleep 0.3
pid_alive "$pid" || fail "SIGWINCH, SIGUSR1 while waiting: kcopy ended"
kill -INT "$pid"
wait_gone "$pid" 10 || fail "SIGINT while waiting for the magic: kcopy hung"
st=0
wait "$pid" || st=$?
expect_status "$st" signal:INT "SIGINT while waiting for the magic"
grep -q "setting up: nothing copied yet" wait.err ||
	fail "SIGUSR1 while waiting for the magic: $(cat wait.err)"
grep -q "interrupted while waiting for its first bytes" wait.err ||
	fail "SIGINT while waiting for the magic: $(cat wait.err)"
[[ ! -e out ]] || fail "SIGINT while waiting for the magic: out made"
exec 3>&-

# The report names the format and both sizes (known from the file), and
# the decoder's memory; --hash digests the image.
rm -f out
kcopy_expect ok --report report.json --hash sha256 img.xz out
jq -e --argjson n "$SIZE" --argjson c "$(stat -c %s img.xz)" \
	'.source.image.format == "xz" and
	 .source.image.bytes_compressed == $c and
	 .source.image.bytes_decompressed == $n and
	 .source.image.decoder_memory > 0 and .bytes == $n' report.json \
	>/dev/null || fail "report of img.xz: $(jq -c .source report.json)"
assert_eq "$(jq -r .hashes.sha256 report.json)" "$SUM" "--hash of img.xz"
# From a pipe the sizes are known at the end.
rm -f out
with_stdin img.bz2 pipe kcopy_expect ok --report report.json \
	--hash sha256 - out
jq -e --argjson n "$SIZE" --argjson c "$(stat -c %s img.bz2)" \
	'.source.image.format == "bzip2" and
	 .source.image.bytes_compressed == $c and
	 .source.image.bytes_decompressed == $n' report.json >/dev/null ||
	fail "report of img.bz2 from a pipe: $(jq -c .source report.json)"
assert_eq "$(jq -r .hashes.sha256 report.json)" "$SUM" "--hash of img.bz2"

# Progress has the image's size as its total from the start.
rm -f out
kcopy_expect ok --progress=json --progress-interval 0.1 --rate 32M \
	img.zst out 2>/dev/null
grep -m 1 '^{' "$ERR_FILE" | jq -e --argjson n "$SIZE" '.total == $n' \
	>/dev/null || fail "progress of img.zst: $(grep -m 1 "^{" "$ERR_FILE")"
# ... names the format, and the last line has read the whole input.
grep '^{' "$ERR_FILE" | tail -n 1 |
	jq -e --argjson c "$(stat -c %s img.zst)" '.image_format == "zstd" and
	   .image_input_read == $c and .image_input_size == $c' >/dev/null ||
	fail "progress's image fields: $(grep '^{' "$ERR_FILE" | tail -n 1)"
rm -f out
kcopy_expect ok --progress=plain img.zst out 2>/dev/null
grep -q "; zstd input .* / " "$ERR_FILE" ||
	fail "the plain progress line names no zstd input: $(cat "$ERR_FILE")"

# --dry-run names the format and the sizes, and writes nothing.
run_kcopy --dry-run img.zst out-dry
expect_status "$ST" ok "--dry-run img.zst"
"$KCOPY" --dry-run img.zst out-dry |
	grep -q "image  *zstd, $(stat -c %s img.zst) bytes .* compressed, $SIZE bytes" ||
	fail "--dry-run: no image line: $("$KCOPY" --dry-run img.zst out-dry)"
[[ ! -e out-dry ]] || fail "--dry-run wrote out-dry"

# --decompress=none: the compressed bytes as they are.
rm -f out
with_stdin img.gz pipe kcopy_expect ok --decompress=none - out
cmp img.gz out || fail "--decompress=none: not the compressed bytes"
# A forced format the input lacks: a setup error, nothing made.
rm -f out
expect_refused "--decompress=xz on gzip" "--decompress=xz, but the input is in the format of gzip" \
	--decompress=xz img.gz out
[[ ! -e out ]] || fail "--decompress=xz on gzip: out made"
expect_refused "--decompress=zstd on raw" "not in that format" \
	--decompress=zstd "$IMG" out
[[ ! -e out ]] || fail "--decompress=zstd on raw: out made"
# A COUNT takes the image's first sectors, and kcopy ends (the decoder
# stopped, not waited for).
rm -f out
kcopy_expect ok img.xz:0:1000 out
size_is out 512000
same "$IMG" 0 out 0 512000
rm -f out
# A COUNT past the image's end, which xz's index tells: refused, nothing
# made.
kcopy_expect setup img.xz:0:$((SIZE / 512 + 8)) out
grep -q "ends past the end of the xz image" "$ERR_FILE" ||
	fail "a COUNT past the xz image: $(cat "$ERR_FILE")"
[[ ! -e out ]] || fail "a COUNT past the xz image: out made"
# Standard input, a compressed file read from its byte 6 on: refused (not
# decoded from the middle), nothing made.
st=0
{ head -c 6 >/dev/null; "$KCOPY" - out 2>"$T/mid.err"; } <img.xz || st=$?
assert_eq "$st" 128 "standard input from the middle of img.xz"
[[ ! -e out ]] || fail "standard input from the middle of img.xz: out made"

# The compressed file itself as a destination: refused, left as it was.
cp img.xz self.xz
expect_refused "img.xz onto itself" "is on the file of the compressed source" \
	self.xz self.xz
cmp img.xz self.xz || fail "img.xz onto itself: the file was written"
rm -f self.xz

# --used: a compressed image has no map.
expect_refused "--used on img.gz" "a compressed image is read as a stream" \
	--used img.gz out
[[ ! -e out ]] || fail "--used on img.gz: out made"
# A forced format that is right decodes it.
kcopy_expect ok --decompress=gzip img.gz out
cmp "$IMG" out || fail "--decompress=gzip: the copy differs"
rm -f out

# A destination smaller than the image the container says it holds is
# refused before anything is written (xz's index, zstd's frame sizes).
make_image small 16M pattern:SMALL
cp small small.orig
for f in xz zst; do
	fmt=${f/zst/zstd}
	expect_refused "$f into 16 MiB" "smaller than the $fmt image" \
		"img.$f" small:0:16M
	cmp small small.orig || fail "$f into 16 MiB: small was written"
done

# Corrupt (four bytes changed in the middle) and truncated (cut in the
# middle) inputs: the read-error status, the offsets named, the copy got
# no more than what was decoded before the failure (of a cut input, the
# image's bytes), no digest.
for f in img.xz img-st.xz img.zst img.gz img.bz2; do
	half=$(($(stat -c %s "$f") / 2))
	cp "$f" bad
	printf '\x55\xaa\x55\xaa' | dd of=bad bs=1 seek="$half" conv=notrunc \
		status=none
	head -c "$half" "$f" >cut
	for kind in bad cut; do
		for how in file pipe; do
			rm -f out
			if [[ $how == file ]]; then
				run_kcopy --report report.json --hash sha256 \
					"$kind" out
			else
				with_stdin "$kind" pipe run_kcopy --report \
					report.json --hash sha256 - out
			fi
			expect_status "$ST" read "$f $kind ($how)"
			fmt=${f#img*.}
			fmt=${fmt/zst/zstd}
			fmt=${fmt/bz2/bzip2}
			fmt=${fmt/gz/gzip}
			grep -q "$fmt: .* at byte [0-9]* of the compressed input, after [0-9]* bytes of the image" \
				"$ERR_FILE" || fail "$f $kind ($how): $(cat "$ERR_FILE")"
			after=$(sed -n 's/.* after \([0-9]*\) bytes of the image.*/\1/p' \
				"$ERR_FILE" | head -n 1)
			bytes=$(jq .bytes report.json)
			((bytes <= after)) ||
				fail "$f $kind ($how): $bytes bytes claimed, decoded $after"
			((after < SIZE)) || [[ $kind == bad ]] ||
				fail "$f cut ($how): all of the image decoded"
			jq -e '.source.image.error != null and .read_err == 1' \
				report.json >/dev/null ||
				fail "$f $kind ($how): report $(jq -c .source report.json)"
			# Cut, what came is the image's; corrupt, the bytes
			# before the check that failed may be wrong already.
			[[ $kind == bad ]] || ((bytes == 0)) ||
				same "$IMG" 0 out 0 "$bytes"
			[[ $(jq -r '.hashes.sha256 // "none"' report.json) == none ]] ||
				fail "$f $kind: a digest of a broken image"
		done
	done
done

# -h lists --decompress.
"$KCOPY" --help >help.txt || fail "--help: exit status $?"
grep -q -- '--decompress=auto|none|FORMAT' help.txt ||
	fail "--help lacks --decompress"

# As root with loop devices: two devices that held random data end equal
# to the image over its length.
if [[ $(id -u) == 0 ]] && losetup -f >/dev/null 2>&1; then
	requires_loop
	make_image disk1 40M random
	make_image disk2 40M random
	d1=$(make_loop disk1)
	d2=$(make_loop disk2)
	kcopy_expect ok img.xz "$d1" "$d2"
	for d in "$d1" "$d2"; do
		cmp -n "$SIZE" "$IMG" "$d" || fail "$d differs from the image"
	done
	# A loop device over the compressed file: refused, as the file.
	head -c 8M /dev/urandom | gzip >self.gz
	truncate -s 9M self.gz
	cp self.gz self.gz.orig
	d3=$(make_loop self.gz)
	expect_refused "loop over img.gz" "is on the file of the compressed source" \
		self.gz "$d3"
	cmp self.gz self.gz.orig || fail "loop over img.gz: the file was written"
fi
exit 0

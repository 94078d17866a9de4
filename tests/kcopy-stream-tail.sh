#!/bin/bash
# A stream whose length is not a multiple of 512 changes exactly its bytes
# of what it is written to (issue 20): a 446-byte boot block piped into an
# image, a 512- and a 4096-byte-sector loop device and an NBD export with a
# 4096-byte minimum block leaves the rest of sector 0 (a partition table)
# and everything after it as it was, with and without --verify; standard
# output opened on an existing image (1<>) is not cut to the stream's
# length, nor refused with >> without harm; --verify of a 1000-byte stream
# to 4096-byte blocks reads whole blocks back and compares the stream's
# bytes.  The block merged comes out of the page budget: in the stream's
# own sub-job (after its data, or over its whole blocks once written), or,
# with sub-jobs of one logical block (--chunk 4096), a second slot lent:
# a 446-byte stream and one of 3 * 4096 + 100 bytes into a 4096-byte-sector
# loop, an export, and four destinations at once, also with a budget of
# two slots (--pages 2); the exports there say they take whole 4096-byte
# blocks only (blocksize-policy).  On each I/O engine.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires cmp dd nbdkit
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"
cd "$T"

SIZE=$((4 * 1024 * 1024))
make_image disk.ref "$SIZE" pattern:DISK
make_image boot.src 4096 pattern:BOOT
head -c 446 boot.src >boot.bin
head -c 1000 boot.src >k1000.bin

# expected STREAM OUT: disk.ref with STREAM written over its start.
expected() {
	cp disk.ref "$2"
	dd if="$1" of="$2" conv=notrunc status=none
}
expected boot.bin boot.exp
expected k1000.bin k1000.exp
head -c $((3 * 4096 + 100)) disk.ref | tr 'A-Za-z' 'a-zA-Z' >k12388.bin
expected k12388.bin k12388.exp
make_image other.ref "$SIZE" pattern:OTHER
cp other.ref other.exp
dd if=boot.bin of=other.exp conv=notrunc status=none

c=0	# names of the images of the --chunk 4096 cases
# An export that says its block is 4096 bytes and refuses less (the
# blocksize filter of nbdkit before 1.34 says 1 and merges itself).
policy=(--filter=blocksize-policy file)
policy4096=(blocksize-minimum=4096 blocksize-error-policy=error)
engines=(libaio)
"$KCOPY" -q disk.ref probe.img 2>/dev/null && KCOPYD_IO_ENGINE=io_uring \
	"$KCOPY" -q disk.ref probe.img 2>/dev/null && engines+=(io_uring)

# into NAME STREAM TARGET [OPTIONS...]: pipe STREAM into kcopy - TARGET;
# it must exit 0.
into() {
	local name=$1 stream=$2 target=$3
	shift 3
	cat "$stream" | run_watchdog 60 "$KCOPY" "$@" - "$target" \
		2>"$T/err" && st=0 || st=$?
	assert_eq "$st" 0 "$name: exit status ($(cat "$T/err"))"
}

for eng in "${engines[@]}"; do
	export KCOPYD_IO_ENGINE=$eng
	for opt in "" --verify; do
		n="$eng${opt:+ $opt}"

		# --- A regular file takes the exact bytes.
		cp disk.ref disk.img
		into "$n: file" boot.bin disk.img $opt
		cmp disk.img boot.exp || fail "$n: file: not only the stream's bytes changed"

		# --- Loop devices of 512- and 4096-byte sectors.
		for ss in 512 4096; do
			# (Left attached to the end: a detached device's
			# number may be another user's by then.)
			f="loop$ss-$eng${opt:+-v}.img"
			cp disk.ref "$f"
			dev=$(make_loop "$f" -b "$ss")
			into "$n: loop $ss" boot.bin "$dev" $opt
			assert_eq "$(sum "$dev")" "$(sum boot.exp)" \
				"$n: loop $ss: not only the stream's bytes changed"
		done

		# --- An export that takes whole 4096-byte blocks only.
		cp disk.ref nbd.img
		uri=$(make_nbd "nbd-$eng$opt" --filter=blocksize file "$T/nbd.img" \
			minblock=4096)
		into "$n: nbd minblock 4096" boot.bin "$uri" $opt
		cmp nbd.img boot.exp ||
			fail "$n: nbd minblock 4096: not only the stream's bytes changed"
	done

	# --- Several destinations at once, each with a content of its own:
	# each keeps its own bytes after the stream.
	cp disk.ref "mA-$eng.img"
	cp other.ref "mB-$eng.img"
	cp other.ref mfile.img
	cp disk.ref mnbd.img
	devA=$(make_loop "mA-$eng.img" -b 4096)
	devB=$(make_loop "mB-$eng.img" -b 512)
	uri=$(make_nbd "mnbd-$eng" --filter=blocksize file "$T/mnbd.img" \
		minblock=4096)
	cat boot.bin | run_watchdog 60 "$KCOPY" --verify - "$devA" "$devB" \
		mfile.img "$uri" 2>"$T/err" && st=0 || st=$?
	assert_eq "$st" 0 "$eng: four destinations: exit status ($(cat "$T/err"))"
	assert_eq "$(sum "$devA")" "$(sum boot.exp)" "$eng: four: 4096 loop"
	assert_eq "$(sum "$devB")" "$(sum other.exp)" "$eng: four: 512 loop"
	cmp mfile.img other.exp || fail "$eng: four: the file"
	cmp mnbd.img boot.exp || fail "$eng: four: the export"

	# --- Sub-jobs of one logical block (--chunk 4096): the merge has no
	# room in its sub-job's slot and takes a second one, lent; with
	# --pages 2, the only other slot.  A stream shorter than one block,
	# and one of whole sub-jobs and 100 bytes; the default sub-jobs too.
	for stream in boot k12388; do
		for opts in "--chunk 4096" "--chunk 4096 --pages 2" \
			    "--chunk 4096 --verify" ""; do
			n="$eng: $stream into a 4096 loop${opts:+ ($opts)}"
			c=$((c + 1))
			f="c4096-$eng-$c.img"
			cp disk.ref "$f"
			dev=$(make_loop "$f" -b 4096)
			# shellcheck disable=SC2086
			into "$n" "$stream.bin" "$dev" $opts
			assert_eq "$(sum "$dev")" "$(sum "$stream.exp")" \
				"$n: not only the stream's bytes changed"
		done
		c=$((c + 1))
		cp disk.ref "cnbd-$c.img"
		uri=$(make_nbd "cnbd-$c" "${policy[@]}" "$T/cnbd-$c.img" \
			"${policy4096[@]}")
		into "$eng: $stream into an export (--chunk 4096 --pages 2)" \
			"$stream.bin" "$uri" --chunk 4096 --pages 2
		cmp "cnbd-$c.img" "$stream.exp" ||
			fail "$eng: $stream into an export, --chunk 4096: content"
	done

	# --- Four destinations, --chunk the largest block: the merges of
	# all four go through the one slot lent, one after another.
	for stream in boot k12388; do
		for opts in "--chunk 4096" "--chunk 4096 --pages 2 --verify"; do
			n="$eng: four destinations, $stream ($opts)"
			c=$((c + 1))
			cp disk.ref "cA-$eng-$c.img"
			cp other.ref "cB-$eng-$c.img"
			cp other.ref cfile.img
			cp disk.ref "cmnbd-$c.img"
			devA=$(make_loop "cA-$eng-$c.img" -b 4096)
			devB=$(make_loop "cB-$eng-$c.img" -b 512)
			uri=$(make_nbd "cmnbd-$c" "${policy[@]}" \
				"$T/cmnbd-$c.img" "${policy4096[@]}")
			cp other.ref oexp.img
			dd if="$stream.bin" of=oexp.img conv=notrunc status=none
			# shellcheck disable=SC2086
			cat "$stream.bin" | run_watchdog 60 "$KCOPY" $opts - \
				"$devA" "$devB" cfile.img "$uri" 2>"$T/err" &&
				st=0 || st=$?
			assert_eq "$st" 0 "$n: exit status ($(cat "$T/err"))"
			assert_eq "$(sum "$devA")" "$(sum "$stream.exp")" \
				"$n: 4096 loop"
			assert_eq "$(sum "$devB")" "$(sum oexp.img)" "$n: 512 loop"
			cmp cfile.img oexp.img || fail "$n: the file"
			cmp "cmnbd-$c.img" "$stream.exp" || fail "$n: the export"
		done
	done

	# --- --verify of 1000 bytes, to 4096-byte blocks: whole blocks read
	# back, the stream's bytes compared.
	cp disk.ref "v4096-$eng.img"
	dev=$(make_loop "v4096-$eng.img" -b 4096)
	into "$eng: --verify 1000 bytes to a 4096-byte-sector loop" k1000.bin \
		"$dev" --verify
	assert_eq "$(sum "$dev")" "$(sum k1000.exp)" \
		"$eng: --verify to a 4096 loop: content"
	cp disk.ref vnbd.img
	uri=$(make_nbd "vnbd-$eng" --filter=blocksize file "$T/vnbd.img" \
		minblock=4096)
	into "$eng: --verify 1000 bytes to a minblock=4096 export" k1000.bin \
		"$uri" --verify
	cmp vnbd.img k1000.exp || fail "$eng: --verify to the export: content"

	# --- --verify of a new file that ends within the stream's last
	# sector, which is read back apart: alone, in the last sub-job, and
	# at the start of a sub-job of its own.
	for len in 446 1000001 $((512 * 1024 + 100)); do
		head -c "$len" disk.ref >part.bin
		rm -f vnew.img
		into "$eng: --verify of $len bytes into a new file" part.bin \
			vnew.img --verify
		cmp part.bin vnew.img || fail "$eng: $len bytes into a new file"
	done

	# --- Standard output on an existing image: not cut (1<>), not harmed
	# (>>, refused: kcopy writes at offsets).
	cp disk.ref std.img
	cat boot.bin | run_watchdog 60 "$KCOPY" - - 1<>std.img 2>"$T/err" &&
		st=0 || st=$?
	assert_eq "$st" 0 "$eng: 1<>: exit status ($(cat "$T/err"))"
	cmp std.img boot.exp || fail "$eng: 1<>: the image was cut or changed"
	cp disk.ref std.img
	cat boot.bin | run_watchdog 60 "$KCOPY" - - >>std.img 2>"$T/err" &&
		st=0 || st=$?
	cmp std.img disk.ref || fail "$eng: >>: the image changed (status $st)"
	expect_status "$st" setup "$eng: >>: a setup error"
	grep -q "standard output is open for appending (>>)" "$T/err" ||
		fail "$eng: >>: $(cat "$T/err")"
	# A file the shell just created takes the stream to the byte.
	cat boot.bin | run_watchdog 60 "$KCOPY" - - >new.img 2>"$T/err" &&
		st=0 || st=$?
	assert_eq "$st" 0 "$eng: >: exit status ($(cat "$T/err"))"
	cmp new.img boot.bin || fail "$eng: >: not the stream"
	# A stream longer than the image grows it to the stream's end only.
	head -c $((SIZE + 1000)) /dev/zero | tr '\0' x >long.bin
	cp disk.ref std.img
	cat long.bin | run_watchdog 60 "$KCOPY" - - 1<>std.img 2>"$T/err" &&
		st=0 || st=$?
	assert_eq "$st" 0 "$eng: 1<>, longer stream: exit status ($(cat "$T/err"))"
	cmp std.img long.bin || fail "$eng: 1<>, longer stream: content"
done
unset KCOPYD_IO_ENGINE
exit 0

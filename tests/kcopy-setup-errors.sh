#!/bin/bash
# kcopy setup errors: exit 128, one "kcopy:" line naming the argument, nothing written, nothing created
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires md5sum python3 mkfs.ext4 mount umount partx
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

# Every case is checked and counted; the test fails at the end if any did,
# so that one bug does not hide the others.
NFAIL=0				# failed cases
NCASES=0
CASE_FAILED=0
bad() {
	echo "FAIL: $*" >&2
	((CASE_FAILED)) || NFAIL=$((NFAIL + 1))
	CASE_FAILED=1
}

# ------------------------------------------------------------------ setup

SRC=$T/src.img				# 4 MiB, 8192 sectors
DST=$T/dst.img				# 4 MiB, existing destination
make_image "$SRC" 4M pattern:SRC
make_image "$DST" 4M pattern:DST
ln "$SRC" "$T/hard.img"			# the source under another name
ln -s src.img "$T/sym.img"		# ... and through a symlink
ln -s new.img "$T/dangling.img"		# points at a destination to be created
mkdir "$T/dir"

# Paths that must never exist after a failed run.
NEW=$T/new.img
NEW2=$T/new2.img
MANY=()
for i in $(seq 1 33); do MANY+=("$T/many$i.img"); done
NEVER=("$NEW" "$NEW2" "${MANY[@]}" "$T/nodir")

# Loop devices over one file: two plain ones and one at an offset of 1 MiB.
LB_IMG=$T/lb.img
make_image "$LB_IMG" 4M pattern:LB
LB=$(make_loop "$LB_IMG")
LB2=$(make_loop "$LB_IMG")
LBO=$(make_loop "$LB_IMG" --offset 1048576)	# its sector 0 = file sector 2048

# A small device (1 MiB, 2048 sectors) and a 4096-byte-sector one.
make_image "$T/small.img" 1M pattern:SM
SM=$(make_loop "$T/small.img")
make_image "$T/l4k.img" 4M pattern:L4K
L4K=$(make_loop "$T/l4k.img" -b 4096)
assert_eq "$(blockdev --getss "$L4K")" 4096 "logical block size of $L4K"

# A disk with a partition table: partition 1 from sector 2048, 8192 sectors.
PD_IMG=$T/disk.img
make_image "$PD_IMG" 8M pattern:DISK
if command -v sfdisk >/dev/null 2>&1; then
	printf 'label: dos\nstart=2048, size=8192, type=83\n' |
		sfdisk -q "$PD_IMG" >/dev/null || fail "sfdisk failed"
else
	# No sfdisk: write the MBR by hand.  Entry 1: type 0x83, LBA 2048
	# (00 08 00 00), 8192 sectors (00 20 00 00); entries 2-4 empty.
	{
		printf '\x00\x00\x00\x00\x83\x00\x00\x00\x00\x08\x00\x00\x00\x20\x00\x00'
		head -c 48 /dev/zero
		printf '\x55\xaa'
	} | dd of="$PD_IMG" bs=1 seek=446 conv=notrunc status=none
fi
PD=$(make_loop "$PD_IMG" -P)
P1=${PD}p1
# The kernel may lack the MBR parser: then add the partition with partx.
if ! wait_for 3 test -b "$P1"; then
	partx -a "$PD" 2>/dev/null || true
	cleanup_add "partx -d $(printf '%q' "$PD") 2>/dev/null"
	wait_for 5 test -b "$P1" || skip "cannot make a partition on $PD"
fi
assert_eq "$(cat "/sys/class/block/${P1#/dev/}/start")" 2048 "start of $P1"

# A mounted ext4 file system (itable/journal initialised now, so the
# kernel does not write to it in the background).
MT_IMG=$T/fs.img
make_image "$MT_IMG" 8M zero
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$MT_IMG" ||
	fail "mkfs.ext4 failed"
MT=$(make_loop "$MT_IMG")
mkdir "$T/mnt"
mount "$MT" "$T/mnt" || skip "cannot mount ext4 on $MT"
cleanup_add "umount $(printf '%q' "$T/mnt") 2>/dev/null || umount -l $(printf '%q' "$T/mnt")"

# A device held open with O_EXCL by another process.
make_image "$T/excl.img" 1M pattern:EXCL
EX=$(make_loop "$T/excl.img")
python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_EXCL)
open(sys.argv[2], "w").close()
time.sleep(300)
' "$EX" "$T/held" </dev/null &
HOLDER=$!
cleanup_add "kill $HOLDER 2>/dev/null; wait $HOLDER 2>/dev/null"
wait_for 10 test -e "$T/held" || fail "the O_EXCL holder did not open $EX"

# Watched storage: nothing may change it.  (Not the mounted device: the
# file system is live.)  The images are checked after every case (the loop
# devices are buffered, so what reaches them reaches the image), the devices
# themselves, read with O_DIRECT, once at the end.
WATCH=("$SRC" "$DST" "$LB_IMG" "$T/small.img" "$T/l4k.img" "$PD_IMG"
	"$T/excl.img")
WATCH_DEVS=("$LB" "$LB2" "$LBO" "$SM" "$L4K" "$PD" "$P1" "$EX")
declare -A WSUM=()
for f in "${WATCH[@]}" "${WATCH_DEVS[@]}"; do
	WSUM[$f]=$(sum "$f")
done

# ---------------------------------------------------------------- checks

OUT=$T/.out
ERR=$T/.err
HINT="Try 'kcopy --help' for more information."

# check_untouched NAME: watched storage unchanged, no new file.
check_untouched() {
	local name=$1 f
	for f in "${WATCH[@]}"; do
		[[ $(sum "$f") == "${WSUM[$f]}" ]] || bad "$name: $f was modified"
	done
	for f in "${NEVER[@]}"; do
		if [[ -e $f || -L $f ]]; then
			bad "$name: $f was created"
			rm -rf "$f"
		fi
	done
	[[ ! -e $T/new.img ]] || bad "$name: $T/new.img exists (through $T/dangling.img?)"
}

# expect_err NAME NEEDLES ARGS...: kcopy ARGS exits 128, prints nothing on
# stdout and exactly one line on stderr starting "kcopy:" (at most followed
# by the --help hint), containing every '|'-separated string of NEEDLES.
expect_err() {
	local name=$1 needles=$2 st n line extra needle
	local -a nd
	shift 2
	NCASES=$((NCASES + 1)) CASE_FAILED=0
	timeout 60 "$KCOPY" "$@" >"$OUT" 2>"$ERR" && st=0 || st=$?
	[[ $st == "$(status_of setup)" ]] || bad "$name: exit status $st, expected a setup error (kcopy $*)"
	[[ ! -s $OUT ]] || bad "$name: wrote to stdout: $(head -n 3 "$OUT")"
	n=$(grep -c '^kcopy:' "$ERR" || true)
	extra=$(grep -v '^kcopy:' "$ERR" | grep -vxF "$HINT" || true)
	if [[ $n != 1 || -n $extra ]]; then
		bad "$name: expected exactly one 'kcopy:' line on stderr, got:$(printf '\n%s' "$(cat "$ERR")")"
	fi
	line=$(grep -m1 '^kcopy:' "$ERR" || true)
	IFS='|' read -r -a nd <<<"$needles"
	for needle in "${nd[@]}"; do
		[[ $line == *"$needle"* ]] ||
			bad "$name: message does not mention '$needle': $line"
	done
	check_untouched "$name"
}

# expect_ok NAME ARGS...: a control, kcopy ARGS (a --dry-run) succeeds.
expect_ok() {
	local name=$1 st
	shift
	NCASES=$((NCASES + 1)) CASE_FAILED=0
	timeout 60 "$KCOPY" "$@" >"$OUT" 2>"$ERR" && st=0 || st=$?
	[[ $st == 0 ]] || bad "$name: exit status $st, expected 0: $(cat "$ERR")"
	check_untouched "$name"
}

# ------------------------------------------------------------- options

expect_err "unknown long option" "--bogus" --bogus "$SRC" "$NEW"
expect_err "unknown short option" "-y" -y "$SRC" "$NEW"
expect_err "--pages abc" "--pages|abc" --pages abc "$SRC" "$NEW"
expect_err "--pages 0" "--pages|'0'" --pages 0 "$SRC" "$NEW"
expect_err "--pages too large" "--pages|99999999" --pages 99999999 "$SRC" "$NEW"
expect_err "--pages missing argument" "--pages" "$SRC" "$NEW" --pages
expect_err "--chunk 1000" "--chunk|1000" --chunk 1000 "$SRC" "$NEW"
expect_err "--chunk 0" "--chunk|'0'" --chunk 0 "$SRC" "$NEW"
expect_err "--throttle 0" "--throttle|'0'" --throttle 0 "$SRC" "$NEW"
expect_err "--throttle 101" "--throttle|101" --throttle 101 "$SRC" "$NEW"
expect_err "--throttle abc" "--throttle|abc" --throttle abc "$SRC" "$NEW"
expect_err "--rate x" "--rate|'x'" --rate x "$SRC" "$NEW"
expect_err "--rate 0" "--rate|'0'" --rate 0 "$SRC" "$NEW"
expect_err "--progress=bogus" "--progress|bogus" --progress=bogus "$SRC" "$NEW"
expect_err "--verify --zero" "--verify|--zero" --verify --zero "$DST"
expect_err "--quiet --progress" "--quiet|--progress" -q --progress "$SRC" "$NEW"

# ---------------------------------------------------------- malformed specs

expect_err "empty SECTOR field" "$SRC:" "$SRC:" "$NEW"
expect_err "SECTOR not a multiple of 512 bytes" "$SRC:1KB" "$SRC:1KB" "$NEW"
expect_err "COUNT not a multiple of 512 bytes" "$SRC:0:1000KB" "$SRC:0:1000KB" "$NEW"
expect_err "empty PATH" "':8'" ":8" "$NEW"
expect_err "empty PATH with COUNT" "':8:16'" ":8:16" "$NEW"
expect_err "empty COUNT field" "$SRC:8:" "$SRC:8:" "$NEW"
expect_err "empty SECTOR and COUNT" "$SRC::" "$SRC::" "$NEW"
expect_err "COUNT zero" "$SRC:0:0" "$SRC:0:0" "$NEW"
expect_err "COUNT too large" "$SRC:0:99999999999999999999" \
	"$SRC:0:99999999999999999999" "$NEW"
expect_err "malformed DEST" "$NEW:" "$SRC" "$NEW:"
expect_err "DEST not a multiple of 512 bytes" "$NEW:1KB" "$SRC" "$NEW:1KB"

# ------------------------------------------------------ missing arguments

expect_err "missing source file" "$T/nosuch.img" "$T/nosuch.img" "$NEW"
expect_err "missing source file with a region" "$T/nosuch.img:8:8" \
	"$T/nosuch.img:8:8" "$NEW"
expect_err "missing DEST" "DEST|$SRC" "$SRC"
expect_err "missing SOURCE and DEST" "SOURCE|DEST"
expect_err "--zero without DEST" "DEST" --zero
expect_err "source is a directory" "$T/dir" "$T/dir" "$NEW"
expect_err "destination is a directory" "$T/dir" "$SRC" "$T/dir"
expect_err "destination is a character device" "/dev/null" "$SRC:0:8" /dev/null
expect_err "destination directory missing" "$T/nodir/x.img" "$SRC" "$T/nodir/x.img"
expect_err "--zero, missing file, no COUNT" "$NEW" --zero "$NEW"
expect_err "--zero, missing file, SECTOR only" "$NEW:8" --zero "$NEW:8"

# ------------------------------------------------------ regions and sizes

expect_err "source region past the end of the file" "$SRC:0:8193" "$SRC:0:8193" "$NEW"
expect_err "source region straddles the end" "$SRC:8000:500" "$SRC:8000:500" "$NEW"
expect_err "source SECTOR past the end, no COUNT" "$SRC:9000" "$SRC:9000" "$NEW"
expect_err "source region past the end of a device" "$LB:0:8193" "$LB:0:8193" "$NEW"
expect_err "source region past the end of a 4096 device" "$L4K:8184:16" \
	"$L4K:8184:16" "$NEW"
expect_err "destination device smaller than the source" "$SM" "$SRC" "$SM"
expect_err "destination device region ends past its end" "$SM:8" "$SRC:0:2048" "$SM:8"
expect_err "destination device SECTOR past its end" "$SM:4096" "$SRC:0:8" "$SM:4096"
expect_err "destination COUNT smaller" "$DST:0:8" "$SRC:0:16" "$DST:0:8"
expect_err "destination COUNT larger" "$DST:0:32" "$SRC:0:16" "$DST:0:32"
expect_err "new destination COUNT different" "$NEW:0:8" "$SRC:0:16" "$NEW:0:8"
expect_err "device destination COUNT different" "$SM:0:32" "$SRC:0:16" "$SM:0:32"
expect_err "--zero region past the end of a device" "$SM:0:4096" --zero "$SM:0:4096"
expect_err "--zero SECTOR past the end of a file" "$DST:9000" --zero "$DST:9000"
# The second destination fails: the first, new one must not be created.
expect_err "bad second destination" "$SM" "$SRC" "$NEW" "$SM"

# ------------------------------------------------------------- alignment

expect_err "4096 device, destination sector 1" "$L4K:1" "$SRC:0:8" "$L4K:1"
expect_err "4096 device, source sector 1" "$L4K:1:8" "$L4K:1:8" "$NEW"
expect_err "4096 device, COUNT 7" "$L4K:0:7" "$SRC:0:7" "$L4K:0:7"
expect_err "4096 device, COUNT from the source" "$L4K" "$SRC:0:4" "$L4K"
expect_err "4096 device, byte sizes" "$L4K:4K:2K" "$L4K:4K:2K" "$NEW"
expect_err "4096 device, --zero sector 1" "$L4K:1:8" --zero "$L4K:1:8"
expect_ok "4096 device, aligned (control)" --dry-run "$SRC:1:8" "$L4K:8"

# --------------------------------------------------------------- overlaps

expect_err "same file, overlapping" "$SRC:8:16|source" "$SRC:0:16" "$SRC:8:16"
expect_err "same file, whole" "$SRC" "$SRC" "$SRC"
expect_err "same file, another spelling" "$T/./src.img:15" "$SRC:0:16" "$T/./src.img:15"
expect_err "same file, hard link" "$T/hard.img:4" "$SRC:0:16" "$T/hard.img:4"
expect_err "same file, symlink" "$SRC:10" "$T/sym.img:0:16" "$SRC:10"
expect_ok "same file, adjacent (control)" --dry-run "$SRC:0:16" "$SRC:16"
expect_err "same destination twice" "$DST:15|destination 1" "$SRC:0:16" "$DST:0" "$DST:15"
expect_err "same new destination twice" "$NEW:8|destination 1" "$SRC:0:16" "$NEW" "$NEW:8"
expect_err "same new destination, two spellings" "$T/./new.img|destination 1" \
	"$SRC:0:16" "$NEW" "$T/./new.img"
expect_err "same device twice" "$LB:8|destination 1" "$SRC:0:16" "$LB:0" "$LB:8"
expect_err "same device as source and destination" "$LB:4" "$LB:0:16" "$LB:4"
expect_ok "same device, adjacent (control)" --dry-run "$LB:0:16" "$LB:16"
expect_err "backing file -> its loop device" "$LB:8:16" "$LB_IMG:0:16" "$LB:8:16"
expect_err "loop device -> its backing file" "$LB_IMG:8" "$LB:0:16" "$LB_IMG:8"
expect_err "backing file -> loop device at an offset" "$LBO:0:16" \
	"$LB_IMG:2050:16" "$LBO:0:16"
expect_ok "backing file -> loop device at an offset, apart (control)" \
	--dry-run "$LB_IMG:0:16" "$LBO:0:16"
expect_err "two loop devices over one file" "$LB2:8:16" "$LB:0:16" "$LB2:8:16"
expect_err "two loop devices over one file, as destinations" \
	"$LBO:8|destination 1" "$SRC:0:16" "$LB2:2048" "$LBO:8"
expect_ok "two loop devices over one file, apart (control)" \
	--dry-run "$LB:0:16" "$LB2:16:16"
expect_err "partition -> its whole disk" "$PD:2040:16" "$P1:0:16" "$PD:2040:16"
expect_err "whole disk -> its partition" "$P1:0:16" "$PD:2050:16" "$P1:0:16"
expect_err "disk image -> partition of its loop device" "$P1:4" \
	"$PD_IMG:2048:16" "$P1:4"
expect_ok "partition and whole disk, adjacent (control)" \
	--dry-run "$P1:0:16" "$PD:2032:16"
# An unreadable sysfs attribute (the partition's start, hidden by an empty
# file in a mount namespace of kcopy's own) is a setup error that names
# it, not a start of 0 that the overlap checks would go by.
P1_START=$(realpath "/sys/class/block/${P1#/dev/}")/start
cat >"$T/nostart.sh" <<EOS
#!/bin/bash
exec unshare -m bash -c 'mount --bind /dev/null "\$0" && exec "\$@"' \\
	$(printf '%q' "$P1_START") $(printf '%q' "$KCOPY") "\$@"
EOS
chmod +x "$T/nostart.sh"
KCOPY=$T/nostart.sh expect_err "unreadable partition start" \
	"$P1|start|cannot tell what storage" "$P1:0:16" "$PD:2040:16"

# ------------------------------------------------------- 33 destinations

expect_err "33 destinations" "33|32" "$SRC:0:1" "${MANY[@]}"
expect_ok "32 destinations (control)" --dry-run "$SRC:0:1" "${MANY[@]:0:32}"

# ------------------------------------------------- devices in use

expect_err "mounted destination" "$MT|mounted or in use|--force" "$SRC:0:16" "$MT"
expect_err "mounted second destination" "$MT|mounted or in use" "$SRC:0:16" "$NEW" "$MT"
expect_ok "mounted destination with --force (dry run)" --force --dry-run "$SRC:0:16" "$MT"
expect_err "destination held with O_EXCL" "$EX|in use|--force" "$SRC:0:16" "$EX"
expect_ok "destination held with O_EXCL, --force (dry run)" --force --dry-run "$SRC:0:16" "$EX"

# --------------------------------------- found while writing this test

# A new destination, then a dangling symlink to the same new file: the
# two are one file.  Either way it is a setup error, and the first
# destination must not be left behind.
expect_err "new destination and a dangling symlink to it" "$T/dangling.img" \
	"$SRC:0:16" "$NEW" "$T/dangling.img"

# SECTOR at the very end of the source and no COUNT: an empty region.
# The dry run must fail as the real run does, naming the argument.
expect_err "empty source region at the end (dry run)" "$SRC:8192" \
	--dry-run "$SRC:8192" "$DST"
expect_err "empty source region at the end" "$SRC:8192" "$SRC:8192" "$DST"

NCASES=$((NCASES + 1)) CASE_FAILED=0
for f in "${WATCH_DEVS[@]}"; do
	[[ $(sum "$f") == "${WSUM[$f]}" ]] || bad "device $f was modified"
done

echo "$NCASES cases, $NFAIL failed" >&2
((NFAIL == 0)) || fail "$NFAIL of $NCASES setup-error cases failed"
exit 0

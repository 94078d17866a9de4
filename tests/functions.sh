# functions.sh - shared helpers for kcopy's shell tests.   -*- sh -*-
#
# Source it first thing in every test:
#   . "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
# (make check exports top_srcdir and top_builddir).  It turns on
# `set -euo pipefail`, creates a fresh per-test directory $T and installs an
# EXIT trap that tears everything down.
#
# Conventions
# -----------
# * Exit codes follow automake: 0 pass, 1 fail, 77 skip, 99 hard error.
#   skip/fail print their message to stderr (stdout may be captured by $(...)).
#   With KCOPY_NO_SKIP=1 in the environment a skip becomes a hard error (99),
#   so CI can insist that nothing is skipped where it could run.
# * Paths: $FAULTFS (faultfs helper), $KCOPY (the tool) and $KCOPYD_RUN
#   (the library's test driver) default to $top_builddir/tests/faultfs,
#   $top_builddir/src/kcopy/kcopy and $top_builddir/tests/kcopyd-run; each
#   may be overridden from the environment.  top_builddir defaults to ".", since
#   tests run with the top build directory as their working directory.
# * Scratch space: $T, a fresh directory under ${TMPDIR:-/tmp}, removed at
#   exit (set KCOPY_TEST_KEEP=1 to keep it).  make_tmpdir gives
#   sub-directories of it.
# * Cleanup: `cleanup_add "shell command"` appends one line to a registry
#   FILE ($T/.cleanup), not to a shell variable.  The EXIT trap (also run on
#   fail, skip, `set -e` errors and INT/TERM/HUP) runs the commands in reverse
#   order, in the test's own shell, each with errors ignored (a command must
#   not call exit or fail).  Because the registry is a file, every
#   helper is safe to call inside a command substitution:
#
#       dev=$(make_fault_device "$img" --read-error 1048576:4096)
#
#   is the normal way to use the make_* helpers: each prints its result on
#   stdout (one line).  When called directly (not in $(...)) they also set a
#   global variable (LOOP_DEV, FAULT_DEV/FAULT_MNT/FAULT_PID/FAULT_LOG,
#   TMPFS_DIR), e.g.  make_fault_device "$img" >/dev/null; dev=$FAULT_DEV.
#   Per-device state (mount point, daemon pid) is kept in files under $T,
#   so fault_device_kill works with a device name obtained either way.
#   Write `x=$(helper ...)`, not `local x=$(helper ...)`: `local` hides the
#   helper's exit status (and with it a fail or skip inside the helper).
#   One difference: a faultfs started inside $(...) is orphaned, so the test
#   shell cannot reap it and it may linger as a zombie under init after
#   teardown (harmless; teardown treats a zombie as exited).  Called
#   directly, make_fault_device leaves the daemon a child of the test shell.
# * Teardown order is the reverse of creation: loop devices are detached
#   before the FUSE file system under them is unmounted, and the faultfs
#   daemon is waited for (killed if it does not go away).  As a safety net,
#   anything still mounted under $T is lazily unmounted and any loop device
#   whose backing file lies under $T is detached before $T is removed.
# * A FUSE daemon that stops answering leaves block I/O on its loop device
#   blocked in the kernel (uninterruptible: `timeout` cannot kill it).
#   fault_device_kill aborts the FUSE connection, after which all I/O fails
#   with EIO at once; run_watchdog does that automatically on a time limit.
#   bash runs the INT/TERM trap only once the current foreground command
#   has finished.
# * The loop device's page cache: use iflag=direct/oflag=direct (or
#   drop_cache) so reads and writes of a device really reach faultfs.
# * Random choices are replayable: sourcing this file seeds bash's $RANDOM
#   with KCOPY_TEST_SEED (default: from the clock and the pid), sets
#   TEST_SEED to it and prints "NAME: seed N" on stderr, so a failure in
#   tests/NAME.log is replayed with
#       KCOPY_TEST_SEED=N make check TESTS=tests/NAME.sh
#   Draw $RANDOM in the test's own shell only: a subshell, $(...) included,
#   reseeds it from the clock.  A test choosing things some other way
#   (python, awk) seeds it from $TEST_SEED.  Random data (make_image
#   random, /dev/urandom) is fine where no choice depends on it.
#   Timing is not replayed: a kill "700 ms in" lands elsewhere under load.
#
# API (see each function for details)
#   skip MSG | fail MSG | requires CMD... | requires_root | requires_loop
#   requires_fuse | cleanup_add CMD | make_tmpdir | t_dir
#   make_image FILE SIZE [pattern[:TAG]|zero|random]
#   copy_zeroed IMAGE OUT [SECTOR COUNT]...
#   make_loop FILE [LOSETUP_ARGS...] | loop_partition DEV N
#   make_fault_device IMAGE [FAULTFS_OPTS...] [-- LOSETUP_ARGS...]
#   fault_device_kill [DEV] | fault_device_cut [DEV]
#   make_tmpfs SIZE | sum FILE [OFF LEN]
#   zero_sum LEN | drop_cache FILE_OR_DEV | wait_for SECS CMD...
#   run_watchdog SECS CMD... | pid_alive PID | wait_gone PID SECS
#   assert_eq A B [MSG] | size_is FILE BYTES
#   run_kcopy ARGS... (sets ST, ERR_FILE) | kcopy_expect WHAT ARGS...
#   expect_refused NAME PATTERN ARGS...
#   run_kcopyd ARGS... | check_dest_errors NAME REPORT [K:ERROR]...
#   status_of WHAT... | write_mask WHAT... | expect_status ACTUAL WHAT [MSG]
#   kcopyd_head WHAT | closing_line | closing_head WHAT
#   expect_closing WHAT REST [MSG]
#   expect_report_status REPORT WHAT [MSG] | report_value REPORT JQ
#   signal_ready PID SIGNUM | now_ms
#   $EIO_TEXT, $ENOSPC_TEXT: the error texts of EIO and ENOSPC
#   (WHAT: kcopy's exit status in words, e.g. ok, read, dest:2, read+dest:1,3,
#   setup, signal:INT; see status_of)
#   same A AOFF B BOFF LEN | same_sectors A ASEC B BSEC COUNT
#   is_zero FILE OFF LEN [MSG] | is_zero_sectors FILE SECTOR COUNT [MSG]
#   make_nbd NAME NBDKIT_ARGS... (prints the URI) | nbd_pid NAME
#   requires_nbd | have_nbd | read_back URI OUT
#   mapfile_ranges MAP STATUS | mapfile_bytes MAP STATUS
#   mapfile_holds MAP SRC FILE...

# Result variables (LOOP_DEV, FAULT_*, TMPFS_DIR...) are read by the tests.
# shellcheck disable=SC2034
set -euo pipefail

# ------------------------------------------------------------------ paths

: "${top_builddir:=.}"
if [[ -z ${top_srcdir:-} ]]; then
	top_srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fi

__abspath() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s\n' "$PWD/$1" ;;
	esac
}

FAULTFS=$(__abspath "${FAULTFS:-$top_builddir/tests/faultfs}")
KCOPY=$(__abspath "${KCOPY:-$top_builddir/src/kcopy/kcopy}")
KCOPYD_RUN=$(__abspath "${KCOPYD_RUN:-$top_builddir/tests/kcopyd-run}")

# ------------------------------------------------------ results and checks

skip() {
	if [[ ${KCOPY_NO_SKIP:-0} == 1 ]]; then
		echo "ERROR: test would be skipped, but KCOPY_NO_SKIP=1: $*" >&2
		exit 99
	fi
	echo "SKIP: $*" >&2
	exit 77
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# requires CMD...: skip unless every command is available.
requires() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "required command '$c' not found"
	done
}

requires_root() {
	[[ $(id -u) == 0 ]] || skip "must run as root"
}

# requires_loop: skip unless a loop device can really be attached.
requires_loop() {
	local img dev
	requires_root
	requires losetup blockdev
	[[ -e /dev/loop-control ]] || skip "/dev/loop-control missing"
	losetup -f >/dev/null 2>&1 || skip "losetup -f: no free loop device"
	img=$T/.loopprobe.img
	truncate -s 65536 "$img"
	dev=$(losetup --find --show "$img" 2>/dev/null) ||
		skip "cannot attach a loop device"
	losetup -d "$dev" 2>/dev/null || true
	rm -f "$img"
}

# requires_fuse: skip unless FUSE is usable and faultfs was built.
requires_fuse() {
	requires_root
	[[ -c /dev/fuse ]] || skip "/dev/fuse missing"
	requires fusermount3 mountpoint
	[[ -x $FAULTFS ]] || skip "faultfs helper not built ($FAULTFS)"
}

assert_eq() {
	[[ "$1" == "$2" ]] || fail "${3:-assert_eq}: '$1' != '$2'"
}

# size_is FILE BYTES: FILE is BYTES long.
size_is() {
	assert_eq "$(stat -c %s "$1")" "$2" "size of $1"
}

# wait_for SECS CMD...: poll CMD every 0.1 s until it succeeds; status 1 on
# timeout.
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}

# ---------------------------------------------------------------- cleanup

# cleanup_add "CMD": register a one-line shell command for the EXIT trap.
cleanup_add() {
	case $* in
	*$'\n'*) fail "cleanup_add: command must be one line: $*" ;;
	esac
	printf '%s\n' "$*" >>"$__CLEANUP_FILE"
}

__cleanup_run() {
	local rc=$? cmd m
	# Only the shell that sourced us cleans up, and only once.
	[[ $BASHPID == "$__CLEANUP_OWNER" ]] || return "$rc"
	trap - EXIT INT TERM HUP
	set +e +u
	if [[ -s $__CLEANUP_FILE ]]; then
		tac "$__CLEANUP_FILE" >"$__CLEANUP_FILE.run"
		: >"$__CLEANUP_FILE"
		while IFS= read -r cmd; do
			eval "$cmd" </dev/null >&2 || true
		done <"$__CLEANUP_FILE.run"
	fi
	# Safety net: loop devices backed by files under $T, then mounts.
	losetup -n -O NAME,BACK-FILE 2>/dev/null | while read -r dev m; do
		[[ $m == "$T"/* ]] && losetup -d "$dev" 2>/dev/null
	done
	awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts 2>/dev/null |
		sort -r | while read -r m; do
			umount -l "$m" 2>/dev/null
		done
	if [[ ${KCOPY_TEST_KEEP:-0} == 1 ]]; then
		echo "keeping test directory $T" >&2
	else
		rm -rf --one-file-system "$T"
	fi
	exit "$rc"
}

__on_signal() {
	echo "interrupted by SIG$1" >&2
	case $1 in
	HUP) exit 129 ;;
	INT) exit 130 ;;
	*) exit 143 ;;
	esac
}

# ------------------------------------------------------------------ seed

TEST_SEED=${KCOPY_TEST_SEED:-$((($(date +%s%N) / 1000 + $$) % 1000000))}
[[ $TEST_SEED =~ ^[0-9]+$ ]] ||
	fail "KCOPY_TEST_SEED must be a whole number, not '$TEST_SEED'"
RANDOM=$TEST_SEED
echo "$(basename "$0" .sh): seed $TEST_SEED (replay: KCOPY_TEST_SEED=$TEST_SEED)" >&2

T=$(mktemp -d "${TMPDIR:-/tmp}/kcopy-test.XXXXXX")
T=$(cd "$T" && pwd)
__CLEANUP_FILE=$T/.cleanup
__CLEANUP_OWNER=$BASHPID
: >"$__CLEANUP_FILE"
mkdir "$T/.fault"
trap __cleanup_run EXIT
trap '__on_signal INT' INT
trap '__on_signal TERM' TERM
trap '__on_signal HUP' HUP

# t_dir: print the per-test directory ($T).
t_dir() {
	printf '%s\n' "$T"
}

# make_tmpdir: print a fresh empty directory under $T (removed at exit).
make_tmpdir() {
	mktemp -d "$T/tmp.XXXXXX"
}

# ----------------------------------------------------------------- images

# __bytes SIZE: 4096, 16M, 16MiB, 1.5K -> bytes (binary multiples).
__bytes() {
	local s=$1
	if [[ $s =~ ^[0-9]+$ ]]; then
		printf '%s\n' "$s"
		return
	fi
	s=${s%B}
	if [[ $s == *i ]]; then
		numfmt --from=iec-i "$s" 2>/dev/null || fail "bad size '$1'"
	else
		numfmt --from=iec "$s" 2>/dev/null || fail "bad size '$1'"
	fi
}

# make_image FILE SIZE [KIND]: create FILE of SIZE bytes (suffixes K, M, G,
# KiB... are powers of 1024).  KIND:
#   zero         sparse, all zeros (the default)
#   random       from /dev/urandom
#   pattern      each 16-byte record is its own index, "%015d\n": every
#                sector differs from every other, and any byte shows where
#                it came from (byte offset = 16 * record number);
#   pattern:TAG  same with TAG (up to 8 of [A-Za-z0-9_-]) at the start of
#                each record, so images made with different tags differ too.
# Deterministic except for random.  About 1.3 s per 64 MiB for pattern.
make_image() {
	local file=$1 size kind=${3:-zero} tag='' width n rem
	[[ $# -ge 2 ]] || fail "usage: make_image FILE SIZE [pattern|zero|random]"
	size=$(__bytes "$2")
	case $kind in
	zero)
		: >"$file"
		truncate -s "$size" "$file"
		;;
	random)
		head -c "$size" /dev/urandom >"$file"
		[[ $(stat -c %s "$file") == "$size" ]] || fail "make_image: short $file"
		;;
	pattern | pattern:*)
		if [[ $kind == pattern:* ]]; then
			tag=${kind#pattern:}
			[[ $tag =~ ^[A-Za-z0-9_-]{1,8}$ ]] ||
				fail "make_image: bad pattern tag '$tag'"
		fi
		width=$((15 - ${#tag}))
		n=$((size / 16))
		rem=$((size % 16))
		: >"$file"
		if ((n > 0)); then
			seq -f "$tag%0$width.0f" 0 $((n - 1)) >"$file"
		fi
		if ((rem > 0)); then
			printf "%s%0${width}d\n" "$tag" "$n" | head -c "$rem" >>"$file"
		fi
		;;
	*)
		fail "make_image: unknown kind '$kind' (pattern, zero, random)"
		;;
	esac
}

# copy_zeroed IMAGE OUT [SECTOR COUNT]...: OUT is a copy of IMAGE with
# those ranges of 512-byte sectors zeroed (what a copy with bad sectors
# zero-filled must hold).
copy_zeroed() {
	local out=$2
	[[ $# -ge 2 && $(($# % 2)) == 0 ]] ||
		fail "usage: copy_zeroed IMAGE OUT [SECTOR COUNT]..."
	cp "$1" "$out" || fail "copy_zeroed: cannot copy $1"
	shift 2
	while (($#)); do
		dd if=/dev/zero of="$out" bs=512 seek="$1" count="$2" conv=notrunc status=none ||
			fail "copy_zeroed: cannot zero sectors $1+$2 of $out"
		shift 2
	done
}

# le FILE OFF LEN: the little-endian number of LEN bytes at OFF of FILE.
le() {
	local v=0 i
	local -a b
	read -ra b < <(od -An -tu1 -j "$2" -N "$3" -v "$1")
	for ((i = $3 - 1; i >= 0; i--)); do
		v=$((v * 256 + b[i]))
	done
	echo "$v"
}

# poke FILE OFF BYTE: write the byte BYTE (0 to 255) at OFF of FILE.
poke() {
	printf %b "\\0$(printf %03o "$3")" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none ||
		fail "cannot write byte $2 of $1"
}

# fsmap_dump IMG [DEST]: the output of $DUMP (tests/fsmap-dump, which a
# test sets), failing if it does.
fsmap_dump() {
	"$DUMP" "$@" || fail "fsmap-dump $* exited with $?"
}

# fsmap_field IMG N: field N (1-based, or a cut range) of fsmap-dump's
# first line.
fsmap_field() {
	fsmap_dump "$1" | head -n 1 | cut -d ' ' -f "$2"
}

# ------------------------------------------------------------ loop devices

# __loop_detach DEV BACKING: detach and wait (up to 10 s) until the kernel
# has really let go of BACKING (detach is deferred while DEV is open).
__loop_detach() {
	local dev=$1 back=$2 sysf i
	sysf=/sys/block/${dev#/dev/}/loop/backing_file
	# Only if DEV is still ours: a test may have detached it already,
	# and the number since gone to another program.
	case $(cat "$sysf" 2>/dev/null) in
	"$back" | "$back (deleted)") ;;
	*) return 0 ;;
	esac
	losetup -d "$dev" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		[[ -r $sysf && $(cat "$sysf" 2>/dev/null) == "$back"* ]] || return 0
		sleep 0.1
	done
	echo "warning: $dev still attached to $back" >&2
	return 1
}

# make_loop FILE [LOSETUP_ARGS...]: attach FILE to a free loop device
# (buffered: --direct-io=off, overridable in ARGS, e.g. -b 4096), register its
# detach, print the device and set LOOP_DEV.
LOOP_DEV=
make_loop() {
	local file dev
	[[ $# -ge 1 ]] || fail "usage: make_loop FILE [losetup args...]"
	file=$(__abspath "$1")
	shift
	dev=$(losetup --find --show --direct-io=off "$@" "$file") ||
		fail "losetup $* $file failed"
	cleanup_add "__loop_detach $(printf '%q %q' "$dev" "$file")"
	LOOP_DEV=$dev
	printf '%s\n' "$dev"
}

# loop_partition DEV N: the device of partition N of loop device DEV
# (attached with -P), printed; where the kernel lacks the table's parser,
# added with partx (its removal registered); skip if there is none.
loop_partition() {
	local part
	[[ $# -eq 2 ]] || fail "usage: loop_partition DEV N"
	part=$1p$2
	if ! wait_for 3 test -b "$part"; then
		partx -a "$1" 2>/dev/null || true
		cleanup_add "partx -d $(printf '%q' "$1") 2>/dev/null"
		wait_for 5 test -b "$part" || skip "cannot make a partition on $1"
	fi
	printf '%s\n' "$part"
}

# ------------------------------------------------------------------ tmpfs

# make_tmpfs SIZE: mount a tmpfs of SIZE (mount's syntax: 8m, 100k, bytes)
# on a fresh directory, register its unmount, print it and set TMPFS_DIR.
TMPFS_DIR=
make_tmpfs() {
	local dir
	[[ $# -eq 1 ]] || fail "usage: make_tmpfs SIZE"
	dir=$(mktemp -d "$T/tmpfs.XXXXXX")
	mount -t tmpfs -o "size=$1,mode=0755" kcopy-test "$dir" ||
		fail "cannot mount a tmpfs of size $1"
	cleanup_add "umount $(printf '%q' "$dir") 2>/dev/null || umount -l $(printf '%q' "$dir")"
	TMPFS_DIR=$dir
	printf '%s\n' "$dir"
}

# ------------------------------------------------------------ NBD servers

# make_nbd NAME NBDKIT_ARGS...: start an nbdkit server on the Unix socket
# $T/NAME.sock (its pid in $T/NAME.pid, its messages in $T/NAME.log), wait
# until it listens, register its teardown (SIGCONT first, in case a test
# stopped it) and print its URI.
# NBDKIT_ARGS are nbdkit's: [--filter=F]... PLUGIN [KEY=VALUE]...
make_nbd() {
	local name=$1 sock pidf
	shift
	requires nbdkit
	sock=$T/$name.sock
	pidf=$T/$name.pid
	rm -f "$sock" "$pidf"
	# nbdkit daemonizes once its socket listens (in the foreground it
	# would go down with the command substitution make_nbd usually runs
	# in); its errors go to the log.
	nbdkit -U "$sock" -P "$pidf" --log=stderr "$@" >"$T/$name.log" 2>&1 ||
		fail "nbdkit $* did not start: $(cat "$T/$name.log")"
	cleanup_add "__nbd_stop $(printf '%q' "$pidf")"
	wait_for 10 test -S "$sock" -a -s "$pidf" ||
		fail "nbdkit $* did not start: $(cat "$T/$name.log")"
	printf 'nbd+unix:///?socket=%s\n' "$sock"
}

# have_nbd: nbdkit is installed and kcopy was built with libnbd (it opens
# nbd:// URIs).  requires_nbd: skip unless so.
have_nbd() {
	local out
	command -v nbdkit >/dev/null 2>&1 || return 1
	[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"
	[[ -e $T/.nbd-probe ]] || head -c 4096 /dev/zero >"$T/.nbd-probe"
	out=$("$KCOPY" --dry-run "$T/.nbd-probe" "nbd+unix:///?socket=$T/none" 2>&1) || :
	[[ $out != *"built without"* ]]
}

requires_nbd() {
	requires nbdkit
	have_nbd || skip "kcopy was built without libnbd"
}

# read_back URI OUT: the export's content, read by nbdcopy (not by kcopy).
read_back() {
	nbdcopy "$1" "$2" || fail "nbdcopy $1 failed"
}

# nbd_pid NAME: the pid of make_nbd's server NAME.
nbd_pid() {
	cat "$T/$1.pid"
}

__nbd_stop() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 0
	kill -CONT "$pid" 2>/dev/null
	kill "$pid" 2>/dev/null
	wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null
	return 0
}

# ---------------------------------------------------------- fault devices

# now_ms: the time in milliseconds (for measuring how long a thing took).
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# signal_ready PID SIGNUM: PID is kcopy itself (not libtool's wrapper
# script, which execs it) and blocks or catches the signal: before that,
# the signal would kill it, however long a loaded machine takes to start it.
# For wait_for: wait_for 10 signal_ready "$pid" 10.
signal_ready() {
	local blk cgt
	[[ $(readlink "/proc/$1/exe" 2>/dev/null) == *kcopy* ]] || return 1
	blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)
	cgt=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)
	[[ -n $blk && -n $cgt ]] && ((((0x$blk | 0x$cgt) >> ($2 - 1)) & 1))
}

# pid_alive PID: running (a zombie counts as gone; this machine's init
# may never reap orphans).
pid_alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s%% *} != Z ]]
}

# wait_gone PID SECS: poll every 0.05 s until PID has exited (or is a
# zombie); status 1 if it is still running after SECS.  Does not reap it:
# `wait PID` still gives a child's exit status.
wait_gone() {
	local pid=$1 secs=$2 i
	for ((i = 0; i < secs * 20; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.05
	done
	! pid_alive "$pid"
}

__pid_stopped() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s%% *} == [Tt] ]]
}

# __fuse_abort MNT: abort the FUSE connection of the file system mounted on
# MNT.  Never stats MNT (that would hang on a stuck daemon): the device
# number comes from /proc/self/mountinfo.
__fuse_abort() {
	local mnt=$1 majmin id conn=/sys/fs/fuse/connections
	majmin=$(awk -v m="$mnt" '$5 == m { print $3; exit }' /proc/self/mountinfo)
	[[ -n $majmin ]] || return 0
	id=$(((${majmin%%:*} << 20) | ${majmin##*:}))
	if [[ ! -e $conn/$id/abort ]]; then
		mount -t fusectl fusectl "$conn" 2>/dev/null || true
	fi
	if [[ -e $conn/$id/abort ]]; then
		echo 1 >"$conn/$id/abort"
	else
		echo "warning: no fusectl entry for $mnt ($majmin)" >&2
		return 1
	fi
}

# __pid_reap PID SECS: wait up to SECS for PID to exit; reap it if it is our
# child.  Status 1 if it is still running.
__pid_reap() {
	wait_gone "$1" "$2" || return 1
	wait "$1" 2>/dev/null || true
	return 0
}

__fault_teardown() {
	local mnt=$1 pid=$2 i f
	# A stopped or dead daemon cannot answer: abort so nothing blocks.
	if ! pid_alive "$pid" || __pid_stopped "$pid"; then
		__fuse_abort "$mnt"
		kill -CONT "$pid" 2>/dev/null
	fi
	# The loop device was detached by its own, later registered, entry;
	# make sure no loop device still holds the image.
	for ((i = 0; i < 50; i++)); do
		grep -qsxF "$mnt/image" /sys/block/loop*/loop/backing_file || break
		sleep 0.1
	done
	if grep -qs " $mnt fuse" /proc/mounts; then
		fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || {
			__fuse_abort "$mnt"
			umount -l "$mnt"
		}
	fi
	if ! __pid_reap "$pid" 5; then
		kill -TERM "$pid" 2>/dev/null
		if ! __pid_reap "$pid" 2; then
			__fuse_abort "$mnt"
			kill -KILL "$pid" 2>/dev/null
			__pid_reap "$pid" 5 || echo "warning: faultfs $pid will not die" >&2
		fi
	fi
	rmdir "$mnt" 2>/dev/null
	for f in "$T"/.fault/*; do
		[[ -f $f && $(cat "$f") == "$mnt $pid" ]] && rm -f "$f"
	done
	return 0
}

# make_fault_device IMAGE [FAULTFS_OPTS...] [-- LOSETUP_ARGS...]
# Serve IMAGE through faultfs (options as in `faultfs --help`, e.g.
# --read-error 1048576:4096 --write-log "$T/wlog") on a fresh mount point,
# attach MOUNT/image to a loop device (LOSETUP_ARGS e.g. -b 4096), register
# the teardown, print the device.  When called directly, also sets FAULT_DEV,
# FAULT_MNT, FAULT_PID and FAULT_LOG (faultfs's own stdout/stderr).
FAULT_DEV='' FAULT_MNT='' FAULT_PID='' FAULT_LOG=''
make_fault_device() {
	local image mnt log pid dev
	local -a fopts=() lopts=()
	[[ $# -ge 1 ]] || fail "usage: make_fault_device IMAGE [faultfs opts] [-- losetup args]"
	image=$(__abspath "$1")
	shift
	while [[ $# -gt 0 && $1 != -- ]]; do
		fopts+=("$1")
		shift
	done
	[[ $# -gt 0 ]] && shift
	lopts=("$@")
	[[ -f $image ]] || fail "make_fault_device: no image '$image'"
	[[ -x $FAULTFS ]] || fail "make_fault_device: faultfs not built ($FAULTFS)"

	mnt=$(mktemp -d "$T/fuse.XXXXXX")
	log=$mnt.log
	"$FAULTFS" -f "${fopts[@]}" "$image" "$mnt" </dev/null >"$log" 2>&1 &
	pid=$!
	# No "Killed" job notice when it is killed; bash still reaps it.
	disown "$pid"
	cleanup_add "__fault_teardown $(printf '%q %q' "$mnt" "$pid")"
	if ! wait_for 10 __fault_mounted "$mnt" "$pid"; then
		cat "$log" >&2
		fail "faultfs did not mount ${fopts[*]} $image"
	fi
	dev=$(make_loop "$mnt/image" "${lopts[@]}")
	printf '%s %s\n' "$mnt" "$pid" >"$T/.fault/${dev#/dev/}"
	FAULT_DEV=$dev FAULT_MNT=$mnt FAULT_PID=$pid FAULT_LOG=$log
	LOOP_DEV=$dev
	printf '%s\n' "$dev"
}

__fault_mounted() {
	pid_alive "$2" || return 1
	grep -qs " $1 fuse" /proc/mounts
}

# fault_device_kill [DEV]: the disk dies.  Abort DEV's FUSE connection
# (default $FAULT_DEV) and kill its faultfs daemon: from then on every read,
# write and flush of DEV fails with EIO immediately, and I/O that was
# blocked in a stuck daemon is released with EIO.  Teardown still works.
fault_device_kill() {
	local dev=${1:-$FAULT_DEV} mnt pid
	[[ -n $dev && -f $T/.fault/${dev#/dev/} ]] ||
		fail "fault_device_kill: '$dev' is not a fault device"
	read -r mnt pid <"$T/.fault/${dev#/dev/}"
	__fuse_abort "$mnt" || true
	kill -KILL "$pid" 2>/dev/null || true
	__pid_reap "$pid" 5 || true
}

# fault_device_cut [DEV]: the power of DEV (default $FAULT_DEV, a fault
# device made with faultfs --volatile) is cut: the writes it holds, not
# flushed, are lost, and every later read, write and flush of DEV fails
# with EIO.  When it returns, DEV's image file holds exactly what was
# flushed; faultfs's log (FAULT_LOG) says how many bytes were dropped.
fault_device_cut() {
	local dev=${1:-$FAULT_DEV} mnt pid
	[[ -n $dev && -f $T/.fault/${dev#/dev/} ]] ||
		fail "fault_device_cut: '$dev' is not a fault device"
	read -r mnt pid <"$T/.fault/${dev#/dev/}"
	[[ -e $mnt/powercut ]] ||
		fail "fault_device_cut: '$dev' is not served with faultfs --volatile"
	echo off >"$mnt/powercut" || fail "fault_device_cut: cannot cut '$dev'"
}

# run_watchdog SECS CMD...: run CMD; if it is still running after SECS,
# abort every fault device of this test (so block I/O stuck in FUSE fails)
# and kill CMD.  Returns CMD's status, or 124 after a timeout.
run_watchdog() {
	local secs=$1 cpid st i f mnt pid
	shift
	"$@" &
	cpid=$!
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$cpid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$cpid" 2>/dev/null; then
		echo "run_watchdog: '$*' still running after ${secs}s, aborting fault devices" >&2
		for f in "$T"/.fault/*; do
			[[ -f $f ]] || continue
			read -r mnt pid <"$f"
			__fuse_abort "$mnt" || true
		done
		sleep 1
		kill -TERM "$cpid" 2>/dev/null || true
		wait "$cpid" 2>/dev/null || true
		return 124
	fi
	wait "$cpid" && st=0 || st=$?
	return "$st"
}

# -------------------------------------------------------------- checksums

# sum FILE_OR_DEV [OFFSET LENGTH]: print the md5 of the whole file or of
# LENGTH bytes at byte OFFSET (LENGTH may be omitted: to the end).  Block
# devices are read with O_DIRECT when the range is aligned to their logical
# block size, so the page cache cannot hide what the device holds.  Fails
# (status 1) if the data cannot be read.
sum() {
	local f=$1 off=${2:-0} len=${3:-} ss flags=skip_bytes
	local -a args=("if=$f" bs=1M status=none)
	[[ -e $f ]] || fail "sum: no such file '$f'"
	if [[ -n $len ]]; then
		flags+=,count_bytes
		args+=("count=$len")
	fi
	((off == 0)) || args+=("skip=$off")
	if [[ -b $f ]]; then
		ss=$(blockdev --getss "$f")
		if ((off % ss == 0)) && [[ -z $len || $((len % ss)) == 0 ]]; then
			flags+=,direct
		fi
	fi
	args+=("iflag=$flags")
	local out
	out=$(dd "${args[@]}" | md5sum) || {
		echo "sum: cannot read $f${len:+ ($len bytes at $off)}" >&2
		return 1
	}
	printf '%s\n' "${out%% *}"
}

# zero_sum LEN: print the md5 of LEN zero bytes (what sum prints for them).
zero_sum() {
	local out
	out=$(head -c "$1" /dev/zero | md5sum)
	printf '%s\n' "${out%% *}"
}

# drop_cache FILE_OR_DEV: make the next buffered read go to the medium.
drop_cache() {
	if [[ -b $1 ]]; then
		blockdev --flushbufs "$1"
	else
		dd if="$1" iflag=nocache count=0 status=none
	fi
}

# run_kcopy ARGS...: run $KCOPY under a 60 s watchdog; its status goes to
# $ST and its stderr to the file $ERR_FILE (and to stderr).  A hang fails.
ST=0 ERR_FILE=
run_kcopy() {
	ERR_FILE=$(mktemp "$T/stderr.XXXXXX")
	run_watchdog 60 "$KCOPY" "$@" 2>"$ERR_FILE" && ST=0 || ST=$?
	cat "$ERR_FILE" >&2
	[[ $ST != 124 ]] || fail "kcopy $* hung (watchdog)"
}

# kcopy_expect WHAT ARGS...: run_kcopy ARGS (its stdout passes through);
# fail unless it exits with the status WHAT (one argument: ok, read,
# dest:2, read+dest:1... see status_of).
kcopy_expect() {
	local expected
	expected=$(status_of "$1")
	shift
	run_kcopy "$@"
	[[ $ST == "$expected" ]] ||
		fail "kcopy $* exited with $ST, expected $expected; stderr: $(cat "$ERR_FILE")"
}

# run_kcopyd ARGS...: run $KCOPYD_RUN (the library's test driver) under a
# 60 s watchdog and print what it printed.  It exits 0, or 3 when the library
# refused the job (its first line says why); anything else (a crash, a
# usage error, a hang) fails.
run_kcopyd() {
	local out st
	[[ -x $KCOPYD_RUN ]] || fail "no $KCOPYD_RUN: build it first"
	out=$(mktemp "$T/kcopyd-run.XXXXXX")
	run_watchdog 60 "$KCOPYD_RUN" "$@" >"$out" && st=0 || st=$?
	[[ $st == 0 || $st == 3 ]] ||
		fail "kcopyd-run $* exited with $st (crash, usage or hang): $(cat "$out")"
	cat "$out"
}

# ------------------------------------------------------- exit status bits
# The error texts kcopy's closing line and report give for EIO and ENOSPC.
EIO_TEXT='Input/output error'
ENOSPC_TEXT='No space left on device'

# The one place the tests spell out kcopy's exit status (kcopy-exit-status.sh
# checks the mapping itself): bit 0 (1) a read error, bit K (2^K) a write
# error on destination K, destinations after the sixth sharing bit 6 (64);
# 128 a setup error; 128+N killed by, or stopped on, signal N.  The report's
# and the closing line's write_err is a mask with bit K-1 for destination K.
# WHAT names a status in words, joined by '+' or spaces, in one argument or
# several:
#   ok (or 0)        no error
#   read             a read error
#   dest:K[,K...]    write errors on destinations K (1-based)
#   setup            a setup error (128)
#   signal:N|NAME    signal N, e.g. signal:2 or signal:INT (128+N)

# __status_words WHAT...: the words of WHAT, one a line.
__status_words() {
	local w
	for w in "$@"; do
		tr '+ ' '\n\n' <<<"$w" | grep -v '^$' || :
	done
}

# status_of WHAT...: kcopy's exit status for WHAT.
status_of() {
	local w k n ks st=0
	while read -r w; do
		case $w in
		ok | 0) ;;
		read) st=$((st | 1)) ;;
		dest:*)
			IFS=, read -ra ks <<<"${w#dest:}"
			for k in "${ks[@]}"; do
				[[ $k =~ ^[1-9][0-9]*$ ]] || fail "status_of: bad destination in '$w'"
				((k > 6)) && k=6
				st=$((st | 1 << k))
			done
			;;
		setup) st=$((st | 128)) ;;
		signal:*)
			n=${w#signal:}
			[[ $n =~ ^[0-9]+$ ]] || n=$(kill -l "${n#SIG}" 2>/dev/null) ||
				fail "status_of: unknown signal in '$w'"
			st=$((128 + n))
			;;
		*) fail "status_of: unknown word '$w' (ok, read, dest:K, setup, signal:N)" ;;
		esac
	done < <(__status_words "$@")
	echo "$st"
}

# write_mask WHAT...: the write_err mask for WHAT (bit K-1 for dest:K).
write_mask() {
	local w k ks mask=0
	while read -r w; do
		[[ $w == dest:* ]] || continue
		IFS=, read -ra ks <<<"${w#dest:}"
		for k in "${ks[@]}"; do
			mask=$((mask | 1 << (k - 1)))
		done
	done < <(__status_words "$@")
	echo "$mask"
}

# __read_err WHAT...: 1 if WHAT has a read error, else 0.
__read_err() {
	__status_words "$@" | grep -qx read && echo 1 || echo 0
}

# kcopyd_head WHAT: how kcopyd-run's first line starts for a job that ends
# with WHAT (read and dest:K only): "read_err=R write_err=M", the library's
# mask in decimal.
kcopyd_head() {
	local mask
	mask=$(write_mask "$1")
	echo "read_err=$(__read_err "$1") write_err=$mask"
}

# expect_status ACTUAL WHAT [MSG]: fail unless ACTUAL is the status WHAT.
expect_status() {
	local want
	want=$(status_of "$2")
	assert_eq "$1" "$want" "${3:-exit status} (expected $2)"
}

# closing_line: the last line kcopy wrote to $ERR_FILE (run_kcopy's).
closing_line() {
	tail -n 1 "$ERR_FILE"
}

# closing_head WHAT: how kcopy's closing line starts for WHAT:
# "kcopy: exit status S: read_err=R write_err=0xM".
closing_head() {
	local st mask
	st=$(status_of "$1")
	mask=$(write_mask "$1")
	printf 'kcopy: exit status %s: read_err=%s write_err=0x%x\n' \
		"$st" "$(__read_err "$1")" "$mask"
}

# expect_closing WHAT REST [MSG]: the closing line is closing_head WHAT
# followed by REST (e.g. "; destination 2 '/dev/loop3': write: ...").
# REST ending in '*' matches any ending.
expect_closing() {
	local want got
	want=$(closing_head "$1")$2
	got=$(closing_line)
	if [[ $want == *'*' ]]; then
		[[ $got == "${want%'*'}"* ]] ||
			fail "${3:-closing line}: '$got' does not start with '${want%'*'}'"
	else
		assert_eq "$got" "$want" "${3:-closing line}"
	fi
}

# report_value REPORT JQ: jq -r JQ of the JSON report REPORT (a leading '.'
# may be left out: report_value r.json bytes).
report_value() {
	local q=$2
	[[ $q == .* ]] || q=.$q
	jq -r "$q" "$1"
}

# expect_report_status REPORT WHAT [MSG]: the report's exit_status,
# read_err and write_err are those of WHAT.
expect_report_status() {
	local name=${3:-report}
	assert_eq "$(report_value "$1" exit_status)" "$(status_of "$2")" "$name: exit_status"
	assert_eq "$(report_value "$1" read_err)" "$(__read_err "$2")" "$name: read_err"
	assert_eq "$(report_value "$1" write_err)" "$(write_mask "$2")" "$name: write_err"
}

# check_dest_errors NAME REPORT [K:ERROR]...: the kcopy run just made by
# run_kcopy (ST, ERR_FILE) copied all of $SRC to the destinations in the
# array DESTS, and exactly destinations K (1-based, in ascending order)
# failed, with the report error ERROR (e.g. "write: Input/output error").
# Checks the exit status, the closing line, the JSON report REPORT (no read
# error, every byte counted, each destination's path, write_err and
# error), and that every other destination holds the source.
check_dest_errors() {
	local name=$1 report=$2 f k i j what rest="" src_sum
	local -A failing=()
	local -a ks=()
	shift 2
	for f in "$@"; do
		k=${f%%:*}
		failing[$k]=${f#*:}
		ks+=("$k")
	done
	what=ok
	((${#ks[@]})) && what=dest:$(IFS=,; echo "${ks[*]}")
	expect_status "$ST" "$what" "$name: exit status"
	for ((i = 1; i <= ${#DESTS[@]}; i++)); do
		[[ -n ${failing[$i]:-} ]] &&
			rest+="; destination $i '${DESTS[i - 1]}': ${failing[$i]}"
	done
	expect_closing "$what" "$rest" "$name: closing line"
	[[ -s $report ]] || fail "$name: no report"
	expect_report_status "$report" "$what" "$name: report"
	assert_eq "$(jq -r .signal "$report")" 0 "$name: report signal"
	assert_eq "$(jq -r .source.read_err "$report")" false "$name: report source.read_err"
	assert_eq "$(jq -r '.bad_ranges | length' "$report")" 0 "$name: report bad_ranges"
	assert_eq "$(jq -r .bytes_total "$report")" "$(stat -L -c %s "$SRC")" \
		"$name: report bytes_total"
	# Bytes copied count those that reached a destination: all of them
	# while one destination is healthy.
	if ((${#failing[@]} < ${#DESTS[@]})); then
		assert_eq "$(jq -r .bytes "$report")" "$(jq -r .bytes_total "$report")" \
			"$name: report bytes"
	fi
	assert_eq "$(jq -r '.destinations | length' "$report")" "${#DESTS[@]}" \
		"$name: report destinations"
	src_sum=$(sum "$SRC")
	for ((i = 1; i <= ${#DESTS[@]}; i++)); do
		j=".destinations[$((i - 1))]"
		assert_eq "$(jq -r "$j.path" "$report")" "${DESTS[i - 1]}" "$name: $j.path"
		if [[ -n ${failing[$i]:-} ]]; then
			assert_eq "$(jq -r "$j.write_err" "$report")" true "$name: $j.write_err"
			assert_eq "$(jq -r "$j.error" "$report")" "${failing[$i]}" "$name: $j.error"
		else
			assert_eq "$(jq -r "$j.write_err" "$report")" false "$name: $j.write_err"
			assert_eq "$(jq -r "$j.error" "$report")" null "$name: $j.error"
			assert_eq "$(sum "${DESTS[i - 1]}")" "$src_sum" \
				"$name: healthy destination $i '${DESTS[i - 1]}' content"
		fi
	done
}

# same A AOFF B BOFF LEN: LEN bytes of A at byte AOFF equal those of B at BOFF.
same() {
	local a b
	a=$(sum "$1" "$2" "$5") || fail "cannot read $1"
	b=$(sum "$3" "$4" "$5") || fail "cannot read $3"
	assert_eq "$a" "$b" "$1 @$2 vs $3 @$4 ($5 bytes)"
}

# same_sectors A ASEC B BSEC COUNT: the same, in 512-byte sectors.
same_sectors() {
	same "$1" $(($2 * 512)) "$3" $(($4 * 512)) $(($5 * 512))
}

# expect_refused NAME PATTERN ARGS...: run kcopy ARGS (run_kcopy); fail
# unless it exits 128 (a setup error) with PATTERN (grep) in its stderr.
expect_refused() {
	local name=$1 pattern=$2
	shift 2
	run_kcopy "$@"
	expect_status "$ST" setup "$name: exit status"
	grep -q -- "$pattern" "$ERR_FILE" ||
		fail "$name: no '$pattern' in: $(cat "$ERR_FILE")"
}

# is_zero FILE OFF LEN [MSG]: LEN bytes of FILE at byte OFF are all zero
# (read as sum reads them: a device with O_DIRECT where aligned).
is_zero() {
	local got
	got=$(sum "$1" "$2" "$3") || fail "cannot read $1"
	assert_eq "$got" "$(zero_sum "$3")" "${4:-$1 @$2 ($3 bytes) is zero}"
}

# is_zero_sectors FILE SECTOR COUNT [MSG]: the same, in 512-byte sectors.
is_zero_sectors() {
	is_zero "$1" $(($2 * 512)) $(($3 * 512)) "${4:-$1: sectors $2+$3 are zero}"
}

# --------------------------------------------------------------- mapfiles

# mapfile_ranges MAP STATUS: the blocks of the ddrescue-style mapfile MAP
# whose status is STATUS ('+', '-', '?'...), "POS SIZE" in decimal, one a
# line; nothing while MAP does not exist.
mapfile_ranges() {
	local pos size st first=1
	[[ -e $1 ]] || return 0
	while read -r pos size st; do
		[[ -z $pos || $pos == \#* ]] && continue
		if ((first)); then
			first=0 # the current position and status
			continue
		fi
		[[ $st == "$2" ]] && echo $((pos)) $((size))
	done <"$1"
	return 0
}

# mapfile_bytes MAP STATUS: how many bytes of MAP have status STATUS (0
# while MAP does not exist).
mapfile_bytes() {
	local pos size n=0
	while read -r pos size; do
		n=$((n + size))
	done < <(mapfile_ranges "$1" "$2")
	echo "$n"
}

# mapfile_holds MAP SRC FILE...: every '+' block of MAP holds in each FILE
# (a file or a device, read with O_DIRECT where it may be, so that a
# device's page cache does not answer) what SRC holds there; prints the
# bytes '+'.  Fails (status 1, a message on stderr) at the first difference.
mapfile_holds() {
	local map=$1 src=$2 ranges
	shift 2
	ranges=$(mktemp "$T/ranges.XXXXXX")
	mapfile_ranges "$map" + >"$ranges"
	python3 - "$ranges" "$src" "$@" <<'PY'
import mmap, os, sys

ranges = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
src, files = sys.argv[2], sys.argv[3:]
BS = 8 << 20
buf = mmap.mmap(-1, BS)
sfd = os.open(src, os.O_RDONLY)
for name in files:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        fd = os.open(name, os.O_RDONLY)
    for pos, size in ranges:
        off = pos
        while off < pos + size:
            n = min(BS, pos + size - off)
            got = os.preadv(fd, [memoryview(buf)[:n]], off)
            if got != n or buf[:n] != os.pread(sfd, n, off):
                sys.exit(f"{name}: bytes {off}+{n} of '+' range "
                         f"{pos:#x}+{size:#x} differ from the source")
            off += n
    os.close(fd)
print(sum(size for _, size in ranges))
PY
}

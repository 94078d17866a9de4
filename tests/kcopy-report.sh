#!/bin/bash
# kcopy --report FILE: checked at setup (aliases of the regions, where it can be written), written whole and renamed into place, a placeholder while the copy runs, exit status when it cannot be written, JSON for any path
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
export LC_ALL=C
requires jq python3 cmp setpriv mkfifo
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

SRC=$T/src.img				# 1 MiB, 2048 sectors
make_image "$T/.src.orig" 1M pattern:SRC
SRC_SUM=$(sum "$T/.src.orig")

# Every case runs in a subshell of its own (set -e and fail work there) and is
# counted; the test fails at the end if any did, so that one bug does not hide
# the others.  A case that skips is listed and does not count.
FAILED=()
SKIPPED=()
run_case() {
	local rc
	cp "$T/.src.orig" "$SRC"	# a case that fails may have overwritten it
	set +e
	(
		set -e
		"$1"
	)
	rc=$?
	set -e
	case $rc in
	0) echo "ok: $1" >&2 ;;
	77) SKIPPED+=("$1") ;;
	*) FAILED+=("$1") ;;
	esac
}

# expect_setup_error NAME NEW... -- ARGS...: kcopy ARGS exits 128 with one
# line on stderr that names --report; the source is unchanged and none of the
# paths NEW exists afterwards.
expect_setup_error() {
	local name=$1 p
	local -a new=()
	shift
	while [[ $1 != -- ]]; do
		new+=("$1")
		shift
	done
	shift
	run_kcopy "$@"
	expect_status "$ST" setup "$name: exit status"
	assert_eq "$(wc -l <"$ERR_FILE")" 1 "$name: lines on stderr"
	grep -q -- "--report" "$ERR_FILE" || fail "$name: the message does not name --report"
	assert_eq "$(sum "$SRC")" "$SRC_SUM" "$name: the source changed"
	for p in "${new[@]}"; do
		[[ ! -e $p && ! -L $p ]] || fail "$name: $p was created"
	done
}

# only_files DIR NAME...: DIR holds the named files and nothing else (no
# temporary file left behind).
only_files() {
	local dir=$1 got want
	shift
	got=$(cd "$dir" && ls -A | sort)
	want=$(printf '%s\n' "$@" | sort)
	assert_eq "$got" "$want" "files in $dir"
}

# ------------------------------------------------ 1. the regions' aliases

alias_source() {
	expect_setup_error "the source" "$T/d1.img" -- --report "$SRC" "$SRC" "$T/d1.img"
	grep -qF "$SRC" "$ERR_FILE" || fail "the message does not name the path"
}

alias_hard_link() {
	ln "$SRC" "$T/hard.img"
	expect_setup_error "hard link" "$T/d2.img" -- --report "$T/hard.img" "$SRC" "$T/d2.img"
}

alias_symlink() {
	ln -s src.img "$T/sym.img"
	expect_setup_error "symlink" "$T/d3.img" -- --report "$T/sym.img" "$SRC" "$T/d3.img"
	# A dangling one, to a destination that is to be created.
	ln -s d3.img "$T/dangling.img"
	expect_setup_error "dangling symlink" "$T/d3.img" -- \
		--report "$T/dangling.img" "$SRC" "$T/d3.img"
}

alias_spelling() {
	mkdir -p "$T/sub"
	expect_setup_error "other spelling" "$T/d4.img" -- \
		--report "$T/sub/.././/src.img" "$SRC" "$T/d4.img"
}

alias_proc_fd() {
	expect_setup_error "/proc/self/fd" "$T/d5.img" -- \
		--report /proc/self/fd/7 "$SRC" "$T/d5.img" 7<"$SRC"
}

alias_stdout() {
	cp "$SRC" "$T/out.img"
	expect_setup_error "standard output" "$T/d6.img" -- \
		--report - "$T/out.img" "$T/d6.img" >>"$T/out.img"
	cmp "$SRC" "$T/out.img" || fail "standard output: the source changed"
}

alias_dest_existing() {
	make_image "$T/old.img" 1M pattern:OLD
	local s
	s=$(sum "$T/old.img")
	expect_setup_error "existing destination" -- \
		--report "$T/old.img" "$SRC" "$T/d7.img" "$T/old.img:0"
	assert_eq "$(sum "$T/old.img")" "$s" "existing destination: changed"
	[[ ! -e $T/d7.img ]] || fail "existing destination: $T/d7.img created"
}

alias_dest_new() {
	mkdir -p "$T/sub"
	expect_setup_error "new destination" "$T/new.img" -- \
		--report "$T/new.img" "$SRC" "$T/new.img"
	expect_setup_error "new destination, other spelling" "$T/new.img" -- \
		--report "$T/sub/../new.img" "$SRC" "$T/new.img"
}

alias_block_device() {
	requires_loop
	make_image "$T/dev.img" 1M pattern:DEV
	local dev s
	dev=$(make_loop "$T/dev.img")
	s=$(sum "$dev")
	expect_setup_error "block device" "$T/d8.img" -- --report "$dev" "$SRC" "$T/d8.img"
	assert_eq "$(sum "$dev")" "$s" "block device: changed"
}

# ------------------------------------------- 2. written whole, renamed in

atomic_replace() {
	local dir
	dir=$(make_tmpdir)
	echo '{"old": true}' >"$dir/r.json"
	chmod 640 "$dir/r.json"
	# A second name keeps the old inode: rewritten in place, it changes.
	ln "$dir/r.json" "$dir/old.json"
	run_kcopy --report "$dir/r.json" "$SRC" "$dir/d.img"
	assert_eq "$ST" 0 "atomic: exit status"
	assert_eq "$(cat "$dir/old.json")" '{"old": true}' \
		"atomic: the report was rewritten in place, not renamed over"
	assert_eq "$(stat -c %a "$dir/r.json")" 640 "atomic: mode"
	assert_eq "$(jq -r .exit_status "$dir/r.json")" 0 "atomic: exit_status"
	assert_eq "$(jq -r .state "$dir/r.json")" done "atomic: state"
	only_files "$dir" r.json old.json d.img

	# Through a symlink: the file it points at is replaced, the link stays.
	mkdir "$dir/real"
	ln -s real/r2.json "$dir/link.json"
	run_kcopy --report "$dir/link.json" "$SRC" "$dir/d.img"
	assert_eq "$ST" 0 "atomic symlink: exit status"
	[[ -L $dir/link.json ]] || fail "atomic symlink: the link was replaced"
	assert_eq "$(jq -r .exit_status "$dir/real/r2.json")" 0 "atomic symlink: exit_status"
	only_files "$dir/real" r2.json
}

# ------------------------------------------------------ 3. checked at setup

setup_missing_dir() {
	expect_setup_error "missing directory" "$T/d9.img" -- \
		--report "$T/nodir/r.json" "$SRC" "$T/d9.img"
	grep -qF "$T/nodir/r.json" "$ERR_FILE" || fail "missing directory: path not named"
}

setup_directory() {
	mkdir -p "$T/adir"
	expect_setup_error "a directory" "$T/d10.img" -- --report "$T/adir" "$SRC" "$T/d10.img"
	only_files "$T/adir"
}

setup_fifo() {
	mkfifo "$T/fifo"
	ERR_FILE=$T/fifo.err
	timeout -s KILL 10 "$KCOPY" --report "$T/fifo" "$SRC" "$T/d11.img" \
		2>"$ERR_FILE" && ST=0 || ST=$?
	cat "$ERR_FILE" >&2
	[[ $ST != 137 ]] || fail "FIFO: kcopy blocked"
	expect_status "$ST" setup "FIFO: exit status"
	grep -q -- "--report" "$ERR_FILE" || fail "FIFO: --report not named"
	[[ ! -e $T/d11.img ]] || fail "FIFO: destination created"
}

setup_read_only() {
	local ro
	ro=$(make_tmpfs 1m)
	mount -o remount,ro "$ro"
	expect_setup_error "read-only" "$T/d12.img" -- --report "$ro/r.json" "$SRC" "$T/d12.img"
}

setup_permission() {
	local dir out
	chmod 755 "$T"
	dir=$(make_tmpdir)
	out=$(make_tmpdir)
	chmod 755 "$dir"
	chmod 777 "$out"
	chmod 644 "$SRC"
	# As nobody: root may write anywhere.
	printf '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups %q "$@"\n' \
		"$KCOPY" >"$T/as-nobody"
	chmod 755 "$T/as-nobody"
	KCOPY=$T/as-nobody
	run_kcopy "$SRC" "$out/ok.img"
	assert_eq "$ST" 0 "no permission: kcopy as nobody"
	expect_setup_error "no permission" "$out/d.img" -- \
		--report "$dir/r.json" "$SRC" "$out/d.img"
}

setup_dry_run() {
	local dir
	dir=$(make_tmpdir)
	run_kcopy --dry-run --report "$dir/r.json" "$SRC" "$dir/d.img"
	assert_eq "$ST" 0 "dry run: exit status"
	only_files "$dir"
	expect_setup_error "dry run, missing directory" -- \
		--dry-run --report "$T/nodir/r.json" "$SRC" "$dir/d.img"
}

# ------------------------------------------------ 4. cannot be written at the end

# fill DIR: fill the tmpfs DIR (an empty file can still be made there: the
# temporary file at setup).
fill() {
	dd if=/dev/zero of="$1/fill" bs=4096 status=none 2>/dev/null || true
}

end_full() {
	local full
	full=$(make_tmpfs 64k)
	fill "$full"
	run_kcopy --report "$full/r.json" "$SRC" "$T/d13.img"
	expect_status "$ST" setup "full: exit status"
	grep -q "report '$full/r.json'.*No space left on device" "$ERR_FILE" ||
		fail "full: no message naming the report and the error"
	cmp "$SRC" "$T/d13.img" || fail "full: the copy itself went wrong"
	only_files "$full" fill
}

end_full_copy_failed() {
	local full small
	full=$(make_tmpfs 64k)
	small=$(make_tmpfs 256k)
	fill "$full"
	run_kcopy --report "$full/r.json" "$SRC" "$T/d14.img" "$small/d.img"
	expect_status "$ST" dest:2 "full, destination 2 failed: exit status"
	grep -q "report '$full/r.json'.*No space left on device" "$ERR_FILE" ||
		fail "full, destination 2 failed: no message naming the report"
}

end_closed_pipe() {
	local fifo=$T/pipe
	mkfifo "$fifo"
	exec 8<>"$fifo"
	exec 9>"$fifo"
	exec 8<&-
	run_kcopy --report - "$SRC" "$T/d15.img" >&9
	exec 9>&-
	expect_status "$ST" setup "closed pipe: exit status"
	grep -q "report.*Broken pipe" "$ERR_FILE" || fail "closed pipe: no message"
}

end_stdout_closed() {
	run_kcopy --report - "$SRC" "$T/d16.img" >&-
	[[ $ST != 0 ]] || fail "closed standard output: exit status 0"
	grep -q -- "report" "$ERR_FILE" || fail "closed standard output: no message"
}

# ---------------------------------------------- 5. a placeholder while it runs

# kill_mid_copy REPORT DEST: a slow copy of 16 MiB to DEST, killed with
# SIGKILL a second after it started.  Sets PID.
kill_mid_copy() {
	"$KCOPY" --rate 1M --report "$1" "$T/big.img" "$2" &
	PID=$!
	cleanup_add "kill -9 $PID 2>/dev/null"
	wait_for 10 test -e "$2" || fail "placeholder: the copy did not start"
	sleep 1
	kill -9 "$PID"
	wait "$PID" 2>/dev/null || true
}

placeholder() {
	local dir pid
	dir=$(make_tmpdir)
	make_image "$T/big.img" 16M pattern:BIG
	run_kcopy --report "$dir/r.json" "$SRC" "$dir/d.img"
	assert_eq "$(jq -r .exit_status "$dir/r.json")" 0 "placeholder: first run"
	kill_mid_copy "$dir/r.json" "$dir/big.img"
	pid=$PID
	jq . "$dir/r.json" >/dev/null || fail "placeholder: not JSON"
	assert_eq "$(jq -r .exit_status "$dir/r.json")" null "placeholder: exit_status"
	assert_eq "$(jq -r .state "$dir/r.json")" running "placeholder: state"
	assert_eq "$(jq -r .pid "$dir/r.json")" "$pid" "placeholder: pid"
	only_files "$dir" r.json d.img big.img

	# Without an earlier report: no placeholder, nothing left behind.
	kill_mid_copy "$dir/r2.json" "$dir/big2.img"
	only_files "$dir" r.json d.img big.img big2.img

	run_kcopy --report "$dir/r.json" "$SRC" "$dir/d.img"
	assert_eq "$ST" 0 "placeholder: next run"
	assert_eq "$(jq -r .state "$dir/r.json")" done "placeholder: next run's state"
	assert_eq "$(jq -r .exit_status "$dir/r.json")" 0 "placeholder: next run's exit_status"
}

# ------------------------------------------------------ 6. JSON for any path

# Names with every kind of byte, and a path whose escaped form is far longer
# than 8192 bytes: directories named by 200 bytes 0xff each (6 bytes each in
# JSON), nested to near PATH_MAX.
json_paths() {
	local base deep name s d
	base=$(make_tmpdir)
	deep=$base
	name=$(printf '\xff%.0s' {1..200})
	while ((${#deep} < 3400)); do
		deep+=/$name
	done
	mkdir -p "$deep"
	s=$base/$'src\xff\xc3(\n"\\\x01'.img
	d=$deep/$'dst\xe2\x82\xac\xed\xa0\x80\xf4\x90\x80\x80'$(printf 'x%.0s' {1..230}).img
	cp "$SRC" "$s"
	run_kcopy --report "$base/r.json" "$s" "$d" "$deep/plain.img"
	assert_eq "$ST" 0 "json: exit status"
	python3 - "$base/r.json" "$s" "$d" "$deep/plain.img" <<-'EOF' || fail "json: paths do not round-trip"
	import json, os, sys
	r = json.load(open(sys.argv[1], encoding="utf-8"))
	want = [os.fsencode(a) for a in sys.argv[2:]]
	got = [os.fsencode(r["source"]["path"])] + \
	      [os.fsencode(x["path"]) for x in r["destinations"]]
	if got != want:
	    print("got", got, "want", want, file=sys.stderr)
	    sys.exit(1)
	EOF
}

# bad_ranges' device names and the error texts are escaped the same way.
json_bad_ranges() {
	requires_fuse
	local dev base s d full
	base=$(make_tmpdir)
	s=$base/$'bad\xff"\n'.img
	d=$base/$'d\xfe'.img
	make_image "$T/bad.img" 1M pattern:BAD
	dev=$(make_fault_device "$T/bad.img" --read-error 524288:4096)
	full=$(make_tmpfs 256k)/$'full\xfe'.img
	ln -s "$dev" "$s"
	run_kcopy --ignore-errors --report "$base/r.json" "$s" "$d" "$full"
	expect_status "$ST" read+dest:2 "bad ranges: exit status"
	python3 - "$base/r.json" "$s" <<-'EOF' || fail "bad ranges: not escaped"
	import json, os, sys
	r = json.load(open(sys.argv[1], encoding="utf-8"))
	assert r["bad_ranges"], r
	for b in r["bad_ranges"]:
	    assert os.fsencode(b["device"]) == os.fsencode(sys.argv[2]), b
	assert r["destinations"][1]["error"].startswith("write: "), r
	EOF
}

# ------------------------------------------------------------------- run

CASES=(alias_source alias_hard_link alias_symlink alias_spelling alias_proc_fd
	alias_stdout alias_dest_existing alias_dest_new alias_block_device
	atomic_replace setup_missing_dir setup_directory setup_fifo
	setup_read_only setup_permission setup_dry_run end_full
	end_full_copy_failed end_closed_pipe end_stdout_closed placeholder
	json_paths json_bad_ranges)
for c in "${CASES[@]}"; do
	run_case "$c"
done
((${#SKIPPED[@]} == 0)) || echo "skipped: ${SKIPPED[*]}" >&2
((${#FAILED[@]} == 0)) || fail "${#FAILED[@]} of ${#CASES[@]} case(s) failed: ${FAILED[*]}"

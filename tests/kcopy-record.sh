#!/bin/bash
# kcopy --report for the record (versions, host, command line, start and end time, real paths, each failed destination's failure and its first failing offset) and --hash-file (the digests as 'sha256sum --tag' writes them, which sha256sum -c checks); image files only, no loop device
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

export LC_ALL=C
requires jq sha256sum md5sum cmp
[[ -x $KCOPY ]] || fail "kcopy not built ($KCOPY)"

# Every case runs in a subshell of its own, in a fresh directory, and is
# counted; the test fails at the end if any did.
FAILED=()
n=0
run_case() {
	local rc
	n=$((n + 1))
	mkdir "$T/case$n"
	set +e
	(
		set -e
		cd "$T/case$n"
		make_image src.img 1M random
		"$1"
	)
	rc=$?
	set -e
	case $rc in
	0) echo "ok: $1" >&2 ;;
	77) echo "skipped: $1" >&2 ;;
	*) FAILED+=("$1") ;;
	esac
}

ISO='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'

# ------------------------------------------------------------ the report

fields() {
	local before after version start end
	ln -s src.img link.img
	before=$(date -u +%s)
	kcopy_expect ok --report r.json link.img 'd 1.img' - >out.img
	after=$(date -u +%s)
	cmp src.img 'd 1.img'
	cmp src.img out.img
	version=$("$KCOPY" --version | awk '{print $2; exit}')
	assert_eq "$(report_value r.json version)" "$version" "version"
	assert_eq "$(report_value r.json libkcopyd_version)" "$version" \
		"libkcopyd_version"
	assert_eq "$(report_value r.json host)" "$(uname -n)" "host"
	# the command line, as an array and as a string the shell takes apart
	# into the same words
	assert_eq "$(jq -c '.argv[1:]' r.json)" \
		'["--report","r.json","link.img","d 1.img","-"]' "argv"
	eval "set -- $(report_value r.json command_line)"
	assert_eq "$(printf '%s|' "${@:2}")" "--report|r.json|link.img|d 1.img|-|" \
		"command_line, taken apart"
	assert_eq "$1" "$(report_value r.json '.argv[0]')" "command_line's program"
	start=$(report_value r.json start_time)
	end=$(report_value r.json end_time)
	[[ $start =~ $ISO && $end =~ $ISO ]] ||
		fail "start_time '$start', end_time '$end': not ISO 8601 UTC"
	start=$(date -u -d "$start" +%s)
	end=$(date -u -d "$end" +%s)
	((before <= start && start <= end && end <= after)) ||
		fail "start_time $start, end_time $end not within $before..$after"
	assert_eq "$(report_value r.json source.path)" link.img "source path"
	assert_eq "$(report_value r.json source.real_path)" "$PWD/src.img" \
		"source real_path (the link resolved)"
	assert_eq "$(report_value r.json '.destinations[0].real_path')" \
		"$PWD/d 1.img" "destination 1 real_path"
	assert_eq "$(report_value r.json '.destinations[1].real_path')" null \
		"'-' has no real_path"
	assert_eq "$(jq -c '[.destinations[].failure]' r.json)" '[null,null]' \
		"no failure"
}

# A shell-quoted argument with a quote, a space, a newline and '$' in it.
command_line_quoting() {
	local d=$'it\'s $HOME\nand more'
	kcopy_expect ok --report r.json src.img "$d"
	eval "set -- $(report_value r.json command_line)"
	assert_eq "$5" "$d" "the destination's name, back from command_line"
	assert_eq "$(report_value r.json '.argv[4]')" "$d" "argv[4]"
}

# The file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) fails the writes past
# 300 KiB with EFBIG: the failure's offset is the start of the lowest
# write that failed, the one that holds byte 307200.
failure() {
	local limit=307200 off
	ulimit -S -f $((limit / 1024))
	run_kcopy --chunk 64K --report r.json src.img d1.img
	ulimit -S -f unlimited
	expect_status "$ST" dest:1
	assert_eq "$(report_value r.json '.destinations[0].failure.op')" write "op"
	assert_eq "$(report_value r.json '.destinations[0].failure.errno')" 27 \
		"errno (EFBIG)"
	assert_eq "$(report_value r.json '.destinations[0].failure.message')" \
		"$(report_value r.json '.destinations[0].error' | sed 's/^write: //')" \
		"message, as in error"
	off=$(report_value r.json '.destinations[0].failure.offset')
	((off % 512 == 0 && off <= limit && off > limit - 65536)) ||
		fail "offset $off: not the write that holds byte $limit"
	assert_eq "$(report_value r.json '.destinations[0].error')" \
		"write: File too large" "error"
}

# In the placeholder the outcome is not known: end_time and failure are
# null, the rest is there.
placeholder() {
	local pid
	echo '{}' >r.json
	echo 'SHA256 (src.img) = 0' >sums
	"$KCOPY" --rate 512K --report r.json --hash sha256 --hash-file sums \
		src.img d.img 2>err &
	pid=$!
	wait_for 5 grep -q running r.json
	wait_for 5 grep -q running sums
	assert_eq "$(report_value r.json state)" running "state"
	assert_eq "$(report_value r.json end_time)" null "end_time"
	[[ $(report_value r.json start_time) =~ $ISO ]] || fail "start_time"
	assert_eq "$(report_value r.json '.destinations[0].failure')" null \
		"failure"
	if sha256sum -c sums >/dev/null 2>&1; then
		fail "sha256sum -c passes on the placeholder"
	fi
	wait "$pid" || fail "kcopy failed: $(cat err)"
	assert_eq "$(report_value r.json state)" done "state at the end"
	sha256sum -c sums
}

# -------------------------------------------------------------- --hash-file

hash_file_checks() {
	kcopy_expect ok --verify --hash sha256,md5 --hash-file sums \
		src.img d1.img d2.img
	assert_eq "$(grep -c '^SHA256 (' sums)" 3 "SHA256 lines"
	assert_eq "$(grep -c '^MD5 (' sums)" 3 "MD5 lines"
	assert_eq "$(grep '^SHA256 (src.img) = ' sums)" \
		"$(sha256sum --tag src.img)" "the source's line"
	sha256sum -c --quiet sums
	md5sum -c --quiet sums
	# a destination changed afterwards: -c fails, and names it
	printf 'X' | dd of=d2.img bs=1 seek=4096 conv=notrunc status=none
	if sha256sum -c sums >out 2>&1; then
		fail "sha256sum -c passes with d2.img changed"
	fi
	grep -qx 'd2.img: FAILED' out || fail "d2.img not named: $(cat out)"
	grep -qx 'd1.img: OK' out || fail "d1.img not checked: $(cat out)"
}

# Names with a backslash and a newline are escaped as coreutils does.
hash_file_names() {
	local odd=$'we\\ird\nname'
	kcopy_expect ok --verify --hash sha256 --hash-file sums src.img "$odd"
	(cd "$T" && mkdir -p ref && cd ref && cp ../case$n/src.img "$odd" &&
	 sha256sum --tag "$odd") >want
	assert_eq "$(grep -F 'SHA256 (we' sums)" "$(cat want)" "the escaped line"
	sha256sum -c --quiet sums
}

# Without --verify only the source is listed; a region that is not the
# whole file is a comment, and so is a destination that failed.
hash_file_comments() {
	kcopy_expect ok --hash sha256 --hash-file sums src.img d.img
	assert_eq "$(grep -c '^SHA256' sums)" 1 "lines without --verify"
	grep -q '^# the destinations: not read back' sums ||
		fail "no comment on the destinations"
	sha256sum -c --quiet sums

	kcopy_expect ok --verify --hash sha256 --hash-file part src.img:0:1024 \
		d.img:0:1024
	assert_eq "$(grep -c '^SHA256' part)" 0 "lines of regions"
	assert_eq "$(grep -c '^# SHA256' part)" 2 "commented lines of regions"
	grep -q "^# SHA256 (src.img) = $(head -c 512K src.img | sha256sum |
		cut -d' ' -f1)\$" part || fail "the region's digest"

	ulimit -S -f 300
	run_kcopy --verify -i --hash sha256 --hash-file fail src.img bad.img
	ulimit -S -f unlimited
	expect_status "$ST" dest:1
	assert_eq "$(grep -c '^SHA256' fail)" 1 "lines with a failed destination"
	grep -q '^# destination 1: no digest of its read-back: write: File too large' \
		fail || fail "no comment on the failed destination: $(cat fail)"
}

hash_file_stdout() {
	kcopy_expect ok --hash sha1 --hash-file - src.img d.img >out
	assert_eq "$(grep '^SHA1' out)" "$(sha1sum --tag src.img)" "on stdout"
}

hash_file_errors() {
	kcopy_expect setup --hash-file sums src.img d.img
	grep -q -- "--hash-file 'sums': needs --hash" "$ERR_FILE" ||
		fail "no --hash: $(cat "$ERR_FILE")"
	kcopy_expect setup --hash sha256 --hash-file src.img src.img d.img
	grep -q -- "--hash-file 'src.img': the same file as the source" \
		"$ERR_FILE" || fail "the source: $(cat "$ERR_FILE")"
	kcopy_expect setup --hash sha256 --hash-file d.img src.img d.img
	grep -q -- "the same file as destination 1" "$ERR_FILE" ||
		fail "a destination: $(cat "$ERR_FILE")"
	kcopy_expect setup --hash sha256 --hash-file r --report ./r src.img d.img
	grep -q -- "--hash-file 'r': the same file as the report" \
		"$ERR_FILE" || fail "the report: $(cat "$ERR_FILE")"
	kcopy_expect setup --hash sha256 --hash-file - --report - src.img d.img
	kcopy_expect setup --hash sha256 --hash-file m --mapfile m src.img d.img
	[[ ! -e d.img && ! -e r && ! -e m ]] || fail "a setup error wrote a file"
	# written whole: an earlier file replaced, nothing else left behind
	echo old >sums
	kcopy_expect ok --hash sha256 --hash-file sums src.img d.img
	sha256sum -c --quiet sums
	assert_eq "$(ls -A | sort | tr '\n' ' ')" "d.img src.img sums " \
		"files left"
}

for c in fields command_line_quoting failure placeholder hash_file_checks \
	hash_file_names hash_file_comments hash_file_stdout hash_file_errors; do
	run_case "$c"
done
((${#FAILED[@]} == 0)) || fail "failed: ${FAILED[*]}"

#!/bin/sh
# fuzz-spec.sh - build and run the libFuzzer target for the kcopy tool's
# argument parsers (tests/fuzz-spec.c over src/kcopy/spec.c).
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Needs clang with -fsanitize=fuzzer,address,undefined; exits 77 (skip)
# where that cannot build.  Runs for FUZZ_SECONDS (default 30) and exits
# non-zero if the fuzzer finds a crash, a leak or a broken invariant, after
# printing the offending input.  Environment:
#   top_srcdir    source tree (default: the directory above this script's)
#   CLANG         compiler (default: clang)
#   FUZZ_SECONDS  time budget in seconds (default: 30)
#   FUZZ_KEEP     if set, a directory to copy any crash artifact into

set -u

me=fuzz-spec
script_dir=$(cd "$(dirname "$0")" && pwd) || exit 99
top_srcdir=${top_srcdir:-$script_dir/..}
CLANG=${CLANG:-clang}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

case $FUZZ_SECONDS in
''|*[!0-9]*) echo "$me: FUZZ_SECONDS must be a whole number of seconds" >&2
	exit 99 ;;
esac

for f in src/kcopy/spec.c src/kcopy/spec.h tests/fuzz-spec.c; do
	if [ ! -f "$top_srcdir/$f" ]; then
		echo "$me: $top_srcdir/$f not found (set top_srcdir)" >&2
		exit 99
	fi
done

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "$me: SKIP: $CLANG not found"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-spec.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# $SAN is split into words on purpose where it is used.
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

# Can this clang build a fuzzer at all (compiler-rt's libFuzzer present)?
cat >"$tmp/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)data;
	(void)size;
	return 0;
}
EOF
# shellcheck disable=SC2086
if ! "$CLANG" $SAN "$tmp/probe.c" -o "$tmp/probe" >"$tmp/probe.log" 2>&1 ||
   ! "$tmp/probe" -runs=1 >>"$tmp/probe.log" 2>&1; then
	echo "$me: SKIP: $CLANG cannot build or run a fuzzer with $SAN:"
	sed 's/^/  /' "$tmp/probe.log" | head -n 5
	exit 77
fi

# shellcheck disable=SC2086
if ! "$CLANG" -std=gnu11 -g -O1 -fno-omit-frame-pointer $SAN \
	-Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-Wformat=2 -Wvla -Werror \
	-I"$top_srcdir/src/kcopy" \
	"$top_srcdir/src/kcopy/spec.c" "$top_srcdir/tests/fuzz-spec.c" \
	-o "$tmp/fuzz-spec"; then
	echo "$me: FAIL: the fuzz target does not build" >&2
	exit 1
fi

# Seed corpus: the first byte is the control byte (bit 0: the whole
# argument exists), the rest the argument.
mkdir "$tmp/corpus" "$tmp/artifacts" || exit 99
n=0
seed() {
	n=$((n + 1))
	printf '%s%s' "$1" "$2" >"$tmp/corpus/seed-$n"
}
seed 0 "img"
seed 0 "img:8"
seed 0 "img:8:16"
seed 0 "img:1M:2M"
seed 0 "img::16"
seed 0 "img:"
seed 0 "img:8:"
seed 0 ":8:16"
seed 0 "a:b:c"
seed 0 "a:b:8"
seed 0 "img:1KB"
seed 0 "img:1KiB:4GiB"
seed 0 "img:15E"
seed 0 "img:36028797018963967:1"
seed 0 "20000000000000000000"
seed 0 "16E"
seed 0 "18EB"
seed 0 "0.5"
seed 0 "50%"
seed 1 "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"
seed 0 "/dev/disk/by-path/pci-0000:00:1f.2-ata-1:2048"
seed 1 "backup-12:30:00"

echo "$me: fuzzing for $FUZZ_SECONDS s"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
"$tmp/fuzz-spec" \
	-max_total_time="$FUZZ_SECONDS" \
	-timeout=10 \
	-rss_limit_mb=1024 \
	-max_len=512 \
	-print_final_stats=1 \
	-artifact_prefix="$tmp/artifacts/" \
	"$tmp/corpus" >"$tmp/fuzz.log" 2>&1
rc=$?

# libFuzzer's summary lines, not its every new-coverage line
grep -E '^(Done|INFO: (Loaded|seed corpus)|stat::number_of_executed_units|stat::peak_rss_mb)' \
	"$tmp/fuzz.log" | sed "s/^/$me: /"

found=$(find "$tmp/artifacts" -type f | head -n 1)
if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
	echo "$me: FAIL: the fuzzer exited $rc" >&2
	tail -n 40 "$tmp/fuzz.log" >&2
	for a in "$tmp"/artifacts/*; do
		[ -f "$a" ] || continue
		echo "$me: input $(basename "$a"):" >&2
		od -A d -c "$a" | head -n 20 >&2
		if [ -n "${FUZZ_KEEP:-}" ]; then
			mkdir -p "$FUZZ_KEEP" && cp "$a" "$FUZZ_KEEP/"
		fi
	done
	exit 1
fi

echo "$me: PASS: no crash in $FUZZ_SECONDS s"
exit 0

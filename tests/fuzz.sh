#!/bin/bash
# fuzz.sh - build and run the libFuzzer targets over the parsers of
# untrusted text and file systems: the smoke test of make check (a few
# seconds per target) and make fuzz (FUZZ_SECONDS per target).
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage: fuzz.sh [NAME...]   (default: every target in FUZZ_TARGETS)
#
# Each target is built with $CLANG -fsanitize=fuzzer,address,undefined
# (not with the configured compiler and flags, so it builds the same in a
# sanitizer or TSan build tree) and run on its seed corpus.  It fails on a
# crash, a leak, undefined behaviour, a timeout or a broken invariant of
# the harness, after printing the offending input.  Exits 77 (skip) only
# where $CLANG is missing or cannot build and run a fuzzer at all.
#
# Targets
# -------
# A target NAME is one file, tests/fuzz-NAME.c, defining
# LLVMFuzzerTestOneInput, plus the word tests/fuzz-NAME in FUZZ_TARGETS in
# Makefile.am (make check and make fuzz take the list from there; it also
# puts the harness in the tarball).  Its header comment holds the lines
#
#   fuzz-sources: src/kcopy/spec.c          (required; paths from the top
#                                            of the source tree)
#   fuzz-options: -max_len=512              (optional; libFuzzer flags)
#   fuzz-libs: -lexpat                      (optional; the libraries the
#                                            sources need)
#
# The harness is compiled together with those sources, with -I src and
# -I src/kcopy, without config.h and without the library: a parser to fuzz
# must be a file of its own that needs neither.  Seeds, one input per file,
# go in tests/fuzz-corpus/NAME/ (valid inputs and tricky ones; the whole
# directory is in EXTRA_DIST), and an optional libFuzzer dictionary in
# tests/fuzz-corpus/NAME.dict.  A target whose input is not the raw data
# has a script that makes its seeds: tests/fuzz-fsmap.c (the XFS, FAT and
# NTFS map readers, on sparse images in a compact form) has
# tests/fuzz-fsmap-seeds.sh, which converts an image into a seed
# (fuzz-fsmap-seeds.sh IMAGE tests/fuzz-corpus/fsmap/NAME) or makes the
# standard ones from mkfs.xfs, mkfs.vfat and mkntfs.
#
# tests/fuzz-mapfile.c (the mapfile's text, src/kcopy/mapfmt.c over
# src/kcopy/rangemap.c) is an example of a parser with a writer: whatever
# it accepts, written again and read back, must be the same.
# make check then smokes it with the others.
#
# Environment
# -----------
#   FUZZ_TARGETS   the targets, words tests/fuzz-NAME (set by make)
#   FUZZ_SECONDS   seconds per target (make fuzz: 60); unset, the smoke
#                  budget: FUZZ_SMOKE_TOTAL (default 20) seconds shared by
#                  the targets, 2 to 5 s each
#   FUZZ_WORKDIR   where the binaries, the corpus a run grows, crash
#                  artifacts and logs go, one directory per target (make
#                  fuzz: fuzz-out/ in the build tree, kept); unset, a
#                  temporary directory removed at exit
#   FUZZ_MERGE     1: afterwards, merge the new inputs that add coverage
#                  into tests/fuzz-corpus/NAME/ in the source tree
#   FUZZ_KEEP      a directory to copy any crash artifact into
#   CLANG          the compiler (default: clang)
#   top_srcdir     the source tree (default: the directory above this one)
#
# Replaying a crash: make fuzz leaves fuzz-out/NAME/fuzz-NAME; run it with
# the artifact as its argument (fuzz-out/NAME/fuzz-NAME crash-...).

set -u

me=fuzz
script_dir=$(cd "$(dirname "$0")" && pwd) || exit 99
top_srcdir=${top_srcdir:-$script_dir/..}
CLANG=${CLANG:-clang}

if [[ $# -gt 0 ]]; then
	targets=("$@")
elif [[ -n ${FUZZ_TARGETS:-} ]]; then
	read -r -a targets <<<"$FUZZ_TARGETS"
else
	targets=()
	for f in "$top_srcdir"/tests/fuzz-*.c; do
		[[ -f $f ]] && targets+=("$f")
	done
fi
# tests/fuzz-NAME, fuzz-NAME.c or NAME: all name target NAME.
names=()
for t in "${targets[@]}"; do
	t=${t##*/}
	t=${t%.c}
	names+=("${t#fuzz-}")
done
if [[ ${#names[@]} -eq 0 ]]; then
	echo "$me: no targets" >&2
	exit 99
fi

if [[ -n ${FUZZ_SECONDS:-} ]]; then
	per=$FUZZ_SECONDS
else
	total=${FUZZ_SMOKE_TOTAL:-20}
	case $total in
	''|*[!0-9]*) echo "$me: FUZZ_SMOKE_TOTAL must be a whole number" >&2
		exit 99 ;;
	esac
	per=$((total / ${#names[@]}))
	((per > 5)) && per=5
	((per < 2)) && per=2
fi
case $per in
''|*[!0-9]*|0) echo "$me: FUZZ_SECONDS must be a whole number of seconds" >&2
	exit 99 ;;
esac

for n in "${names[@]}"; do
	if [[ ! -f $top_srcdir/tests/fuzz-$n.c ]]; then
		echo "$me: $top_srcdir/tests/fuzz-$n.c not found (set top_srcdir)" >&2
		exit 99
	fi
done

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "$me: SKIP: $CLANG not found"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kcopy-fuzz.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
work=${FUZZ_WORKDIR:-$tmp/work}
mkdir -p "$work" || exit 99

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

# The value of a "fuzz-KEY:" line in a harness's header comment.
header_field() {
	sed -n "s/^[ /*]*fuzz-$2:[[:space:]]*//p" "$1" | head -n 1
}

# run_target NAME: build, run, report; returns non-zero on a finding.
run_target() {
	local n=$1 src=$top_srcdir/tests/fuzz-$1.c
	local dir=$work/$1 seeds=$top_srcdir/tests/fuzz-corpus/$1
	local dict=$top_srcdir/tests/fuzz-corpus/$1.dict
	local sources options libs f rc execs found
	local srcs=() opts=() corpora=() libv=()

	sources=$(header_field "$src" sources)
	options=$(header_field "$src" options)
	libs=$(header_field "$src" libs)
	if [[ -z $sources ]]; then
		echo "$me: $n: FAIL: no 'fuzz-sources:' line in $src" >&2
		return 1
	fi
	for f in $sources; do
		srcs+=("$top_srcdir/$f")
	done
	read -r -a opts <<<"$options"
	read -r -a libv <<<"$libs"
	[[ -f $dict ]] && opts+=("-dict=$dict")

	# A previous run's findings are kept aside, not counted again.
	if [[ -n $(find "$dir/artifacts" -type f 2>/dev/null | head -n 1) ]]; then
		rm -rf "$dir/artifacts.prev"
		mv "$dir/artifacts" "$dir/artifacts.prev" || return 1
		echo "$me: $n: the last run's artifacts are in $dir/artifacts.prev"
	fi
	mkdir -p "$dir/corpus" "$dir/artifacts" || return 1
	# shellcheck disable=SC2086
	if ! "$CLANG" -std=gnu11 -g -O1 -fno-omit-frame-pointer $SAN \
		-Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
		-Wformat=2 -Wvla -Werror \
		-I"$top_srcdir/src" -I"$top_srcdir/src/kcopy" \
		"${srcs[@]}" "$src" "${libv[@]}" -o "$dir/fuzz-$n"; then
		echo "$me: $n: FAIL: the fuzz target does not build" >&2
		return 1
	fi

	# New inputs go to the first directory (the work one); the seeds in
	# the source tree are only read.
	corpora=("$dir/corpus")
	[[ -d $seeds ]] && corpora+=("$seeds")
	echo "$me: $n: fuzzing for $per s"
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0 \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$dir/fuzz-$n" \
		-max_total_time="$per" \
		-timeout=10 \
		-rss_limit_mb=1024 \
		-print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/" \
		"${opts[@]}" \
		"${corpora[@]}" >"$dir/fuzz.log" 2>&1
	rc=$?

	# libFuzzer's summary lines, not its every new-coverage line
	grep -E '^(Done|INFO: (Loaded|seed corpus)|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)' \
		"$dir/fuzz.log" | sed "s/^/$me: $n: /"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log")

	found=$(find "$dir/artifacts" -type f | head -n 1)
	if [[ $rc -ne 0 || -n $found ]]; then
		echo "$me: $n: FAIL: the fuzzer exited $rc" >&2
		tail -n 40 "$dir/fuzz.log" >&2
		for a in "$dir"/artifacts/*; do
			[[ -f $a ]] || continue
			echo "$me: $n: input $(basename "$a"):" >&2
			od -A d -c "$a" | head -n 20 >&2
			if [[ -n ${FUZZ_KEEP:-} ]]; then
				mkdir -p "$FUZZ_KEEP" && cp "$a" "$FUZZ_KEEP/"
			fi
		done
		return 1
	fi

	if [[ ${FUZZ_MERGE:-} == 1 ]]; then
		mkdir -p "$seeds" || return 1
		"$dir/fuzz-$n" -merge=1 "${opts[@]}" "$seeds" "$dir/corpus" \
			>"$dir/merge.log" 2>&1 || {
			echo "$me: $n: FAIL: merging into $seeds" >&2
			tail -n 20 "$dir/merge.log" >&2
			return 1
		}
		echo "$me: $n: merged into $seeds: $(grep -o 'MERGE-OUTER: [0-9]* new files.*' "$dir/merge.log")"
	fi
	echo "$me: $n: PASS: ${execs:-?} executions in $per s, no finding"
	return 0
}

failed=()
for n in "${names[@]}"; do
	run_target "$n" || failed+=("$n")
done
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "$me: FAIL: ${failed[*]}" >&2
	exit 1
fi
echo "$me: PASS: ${names[*]}"
exit 0

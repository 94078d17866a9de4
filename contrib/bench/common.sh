# common.sh - what the benchmark scripts share; sourced after they define
# ME (their name).   -*- sh -*-
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash

die() { echo "$ME: $*" >&2; exit 1; }
say() { echo "$ME: $*" >&2; }

# require_kcopy_binary KCOPY: time the program, not a script in front of
# it: src/kcopy/kcopy in a build tree is libtool's wrapper, which starts
# bash (and sets up the library path) on every run, adding about 0.1 s and
# 0.1 CPU-s per copy.  Only an executable ELF file is accepted.
require_kcopy_binary() {
	[ -f "$1" ] && [ -x "$1" ] || die "'$1' is not an executable kcopy"
	[ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ] ||
		die "'$1' is not an ELF binary: in a build tree" \
		    "src/kcopy/kcopy is libtool's wrapper script, and timing" \
		    "it times bash.  Run 'make bench', or install kcopy (make" \
		    "install DESTDIR=/tmp/k) and pass the installed binary," \
		    "with LD_LIBRARY_PATH set to its lib directory when needed"
}

have() { command -v "$1" >/dev/null 2>&1; }

# budget_pages KCOPY_OPTS: kcopy's memory budget in pages, from the options
# given to $KCOPY (--pages/-p), else from its --help ("default 2048").
budget_pages() {
	local p
	p=$(sed -nE 's/.*(--pages[= ]|-p ?)([0-9]+).*/\2/p' <<<"$1")
	[ -n "$p" ] && { echo "$p"; return; }
	p=$("$KCOPY" --help 2>&1 | tr '\n' ' ' |
		sed -nE 's/.*--pages[^(]*\(default ([0-9]+).*/\1/p')
	echo "${p:-2048}"
}

# median, maxof: of the numbers on standard input (spaces or newlines).
median() { tr ' ' '\n' | grep -v '^$' | sort -g |
	awk '{ v[NR] = $1 } END { if (!NR) exit;
		if (NR % 2) print v[(NR + 1) / 2];
		else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -n 1; }

# fmt VALUE [DECIMALS]: VALUE rounded, or "-" when empty.
fmt() { awk -v v="$1" -v p="${2:-2}" 'BEGIN { if (v == "") print "-";
	else printf "%.*f\n", p, v }'; }

# check WHAT KCOPY_VALUE FACTOR OTHER_VALUE UNIT: PASS when kcopy <= FACTOR x OTHER
check() {
	local what=$1 a=$2 f=$3 b=$4 unit=$5 verdict lim
	if [ -z "$a" ] || [ -z "$b" ]; then
		echo "- $what: n/a (not measured)"
		return
	fi
	lim=$(awk -v f="$f" -v b="$b" 'BEGIN { printf "%.3f", f * b }')
	verdict=$(awk -v a="$a" -v l="$lim" 'BEGIN { print (a <= l) ? "PASS" : "FAIL" }')
	a=$(awk -v a="$a" 'BEGIN { printf "%.3f", a }')
	echo "- $what: **$verdict** (kcopy $a $unit, limit $lim $unit)"
}

# The value of array $1 at index $2, empty when $2 is.
at() { local -n _a=$1; [ -n "$2" ] && echo "${_a[$2]:-}"; return 0; }

# trap_cleanup: run cleanup (the script's) on exit, also on Ctrl-C,
# SIGTERM and SIGHUP, with the shell's usual status for each.
trap_cleanup() {
	trap cleanup EXIT
	trap 'say interrupted; exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
}

# common.sh - what the benchmark scripts share; sourced after they define
# ME (their name).   -*- sh -*-
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later

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

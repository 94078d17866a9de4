#!/bin/sh
# demo.sh - clone a sample disk image to three image files with kcopy.
#
# Run by `make demo` as: sh contrib/demo.sh /abs/path/to/kcopy
# Works in ./demo (removed and made again on every run); needs no root.
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -eu

KCOPY=${1:-}
if [ -z "$KCOPY" ] || [ ! -x "$KCOPY" ]; then
	echo "usage: sh contrib/demo.sh /path/to/kcopy (built first: make)" >&2
	exit 2
fi

DEMO=demo
SIZE_MIB=64

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
# Print a command, then run it.  cmd only prints: for commands whose output
# is redirected (the redirection would take the printed line too).
cmd() { printf '$ %s\n' "$*"; }
show() { cmd "$@"; "$@"; }

# mkfs.ext4 and e2fsck live in /sbin, which is not in a user's PATH on Debian.
find_tool() {
	for d in $(printf '%s' "$PATH" | tr ':' ' ') /usr/sbin /sbin; do
		if [ -x "$d/$1" ]; then
			printf '%s\n' "$d/$1"
			return 0
		fi
	done
	return 1
}

# What kcopy's exit status means (see kcopy(1), EXIT STATUS).
explain_status() {
	st=$1
	if [ "$st" -eq 0 ]; then
		say "exit status 0: every sector copied to every destination, flushed and verified"
		return
	fi
	if [ "$st" -eq 128 ]; then
		say "exit status 128: usage or setup error, nothing was written"
		return
	fi
	if [ "$st" -gt 128 ]; then
		say "exit status $st: stopped by signal $((st - 128))"
		return
	fi
	say "exit status $st (a bit mask):"
	if [ $((st & 1)) -ne 0 ]; then
		say "  bit 0 (1): read error on the source"
	fi
	k=1
	while [ "$k" -le 6 ]; do
		if [ $((st & (1 << k))) -ne 0 ]; then
			say "  bit $k ($((1 << k))): write or verify error on destination $k (demo/clone$k.img)"
		fi
		k=$((k + 1))
	done
}

step "Preparing $DEMO/"
rm -rf "$DEMO"
mkdir -p "$DEMO/tree/docs" "$DEMO/tree/data/blobs" "$DEMO/tree/empty"

# A small tree of generated files: text, a long listing, random blobs.
cat > "$DEMO/tree/docs/hello.txt" <<EOF
This file system was made by kcopy's demo on $(date -u '+%Y-%m-%d %H:%M UTC').
kcopy read it once and wrote it to three clones at the same time.
EOF
i=1
while [ "$i" -le 2000 ]; do
	printf 'line %05d: the quick brown fox jumps over the lazy dog\n' "$i"
	i=$((i + 1))
done > "$DEMO/tree/docs/lines.txt"
for n in 1 2 3 4; do
	head -c $((n * 256 * 1024)) /dev/urandom > "$DEMO/tree/data/blobs/blob$n.bin"
done
ln -s ../docs/hello.txt "$DEMO/tree/data/hello-link.txt"

fs=ext4
if MKFS=$(find_tool mkfs.ext4); then
	cmd "$MKFS" -q -F -d "$DEMO/tree" "$DEMO/source.img" "${SIZE_MIB}M"
	"$MKFS" -q -F -d "$DEMO/tree" "$DEMO/source.img" "${SIZE_MIB}M" \
		> /dev/null || fs=""
else
	say "mkfs.ext4 not found (Debian: apt-get install e2fsprogs)"
	fs=""
fi
if [ -z "$fs" ]; then
	say "making a ${SIZE_MIB} MiB pattern image from /dev/urandom instead"
	rm -f "$DEMO/source.img"
	cmd "head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > $DEMO/source.img"
	head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$DEMO/source.img"
	fs=pattern
fi
say "source: $DEMO/source.img, ${SIZE_MIB} MiB ($fs)"

step "Cloning it to three files, one read feeding every destination"
status=0
show "$KCOPY" --progress=plain --report "$DEMO/report.json" --verify \
	"$DEMO/source.img" "$DEMO/clone1.img" "$DEMO/clone2.img" \
	"$DEMO/clone3.img" || status=$?
explain_status "$status"

step "Comparing checksums"
differ=0
if command -v sha256sum > /dev/null 2>&1; then
	set -- "$DEMO/source.img" "$DEMO/clone1.img" "$DEMO/clone2.img" \
		"$DEMO/clone3.img"
	cmd sha256sum "$@"
	sha256sum "$@" > "$DEMO/sha256.txt" || differ=1
	cat "$DEMO/sha256.txt"
	want=$(sed -n '1s/ .*//p' "$DEMO/sha256.txt")
	for n in 1 2 3; do
		got=$(sed -n "$((n + 1))s/ .*//p" "$DEMO/sha256.txt")
		if [ "$got" != "$want" ]; then
			say "clone$n.img DIFFERS from the source"
			differ=1
		fi
	done
else
	for n in 1 2 3; do
		show cmp "$DEMO/source.img" "$DEMO/clone$n.img" || differ=1
	done
fi
if [ "$differ" -eq 0 ]; then
	say "all three clones are identical to the source"
fi

if [ "$fs" = ext4 ] && [ "$status" -eq 0 ] && FSCK=$(find_tool e2fsck); then
	step "Checking one clone's file system (read-only)"
	cmd "$FSCK" -fn "$DEMO/clone1.img"
	if "$FSCK" -fn "$DEMO/clone1.img" > "$DEMO/e2fsck.log" 2>&1; then
		say "e2fsck: clone1.img is clean"
	else
		say "e2fsck found problems in clone1.img, see $DEMO/e2fsck.log"
		differ=1
	fi
fi

step "Done"
say "report: $(pwd)/$DEMO/report.json"
if [ "$status" -ne 0 ] || [ "$differ" -ne 0 ]; then
	say "the demo FAILED"
	exit 1
fi
say "try: $KCOPY --help"

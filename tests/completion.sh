#!/bin/bash
# completion.sh - check contrib/kcopy.bash-completion by calling _kcopy the
# way bash does: COMP_WORDS split at COMP_WORDBREAKS, COMP_CWORD, COMP_LINE,
# COMP_POINT.  Run with and without bash-completion's own library loaded.
#
# Exit 0 if every check passes, 1 if one fails, 77 (skip) without
# /usr/share/bash-completion/bash_completion.  Needs the built kcopy.
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${top_srcdir:=$(cd "$here/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
BASH_COMPLETION_LIB=${BASH_COMPLETION_LIB:-/usr/share/bash-completion/bash_completion}
script=$top_srcdir/contrib/kcopy.bash-completion
kcopy=$top_builddir/src/kcopy/kcopy

if [[ ! -r $BASH_COMPLETION_LIB ]]; then
	echo "SKIP: $BASH_COMPLETION_LIB is missing (install bash-completion)"
	exit 77
fi
if [[ ! -r $script ]]; then
	echo "FAIL: $script is missing"
	exit 1
fi
if [[ ! -x $kcopy ]]; then
	echo "FAIL: $kcopy is not built (run make first)"
	exit 1
fi

# The checks, run in a fresh bash: with bash-completion loaded ($1 = full)
# or with only our script ($1 = bare, the fallback code paths).
run_checks()
{
	local mode=$1
	bash --norc --noprofile -s "$mode" "$script" "$kcopy" \
		"$BASH_COMPLETION_LIB" <<'CHECKS'
mode=$1 script=$2 kcopy=$3 lib=$4
failures=0
if [[ $mode == full ]]; then
	# bash_completion reads its own config; keep it from user files.
	export BASH_COMPLETION_USER_DIR=/nonexistent
	# shellcheck source=/dev/null
	. "$lib" || { echo "not ok - [$mode] sourcing $lib"; exit 1; }
fi
# shellcheck source=/dev/null
. "$script" || { echo "not ok - [$mode] sourcing $script"; exit 1; }
if [[ $mode == full ]] && ! declare -F _get_comp_words_by_ref > /dev/null; then
	echo "not ok - [$mode] bash-completion's library did not load"
	exit 1
fi
if [[ $mode == bare ]] && declare -F _get_comp_words_by_ref > /dev/null; then
	echo "not ok - [$mode] bash-completion is loaded in the bare run"
	exit 1
fi
if [[ $(complete -p kcopy 2> /dev/null) != "complete -F _kcopy kcopy" ]]; then
	echo "not ok - [$mode] 'complete -F _kcopy kcopy' is not registered"
	failures=$((failures + 1))
fi
COMP_WORDBREAKS=$' \t\n"\'><=;|&(:'

# Split LINE into COMP_WORDS as bash does: at blanks, and runs of the
# word-break characters '=' and ':' are words of their own.
set_line()
{
	local line=$1 c i word="" inbrk=0
	COMP_WORDS=()
	for ((i = 0; i < ${#line}; i++)); do
		c=${line:i:1}
		if [[ $c == [[:blank:]] ]]; then
			[[ -n $word ]] && COMP_WORDS+=("$word")
			word="" inbrk=0
		elif [[ $c == [=:] ]]; then
			if ((!inbrk)) && [[ -n $word ]]; then
				COMP_WORDS+=("$word")
				word=""
			fi
			word+=$c inbrk=1
		else
			if ((inbrk)); then
				COMP_WORDS+=("$word")
				word="" inbrk=0
			fi
			word+=$c
		fi
	done
	COMP_WORDS+=("$word")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE=$line
	COMP_POINT=${#line}
	COMP_TYPE=9 COMP_KEY=9
}

# complete LINE: run _kcopy, leave the sorted candidates in $got, one a line.
complete_line()
{
	set_line "$1"
	COMPREPLY=()
	_kcopy kcopy "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
	got=$(printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort)
}

# expect LINE WANTED...: the candidates are exactly WANTED.
expect()
{
	local line=$1 want
	shift
	complete_line "$line"
	want=$(printf '%s\n' "$@" | LC_ALL=C sort)
	if (($# == 0)); then want=""; fi
	if [[ $got == "$want" ]]; then
		echo "ok - [$mode] '$line' -> ${got//$'\n'/ }"
	else
		echo "not ok - [$mode] '$line'"
		echo "#   got:  ${got//$'\n'/ }"
		echo "#   want: ${want//$'\n'/ }"
		failures=$((failures + 1))
	fi
}

# offers LINE WORD...: every WORD is among the candidates.
offers()
{
	local line=$1 w missing=""
	shift
	complete_line "$line"
	for w in "$@"; do
		grep -qxF -- "$w" <<< "$got" || missing+=" $w"
	done
	if [[ -z $missing ]]; then
		echo "ok - [$mode] '$line' offers all $# expected -> ${got//$'\n'/ }"
	else
		echo "not ok - [$mode] '$line' does not offer:$missing"
		failures=$((failures + 1))
	fi
}

expect 'kcopy --ver' --verbose --verify --version
expect 'kcopy --de' --decompress --destination-is-zero
expect 'kcopy --decompress ' auto none xz zstd gzip bzip2
expect 'kcopy --decompress=z' zstd
expect 'kcopy --no-z' --no-zero-detect
expect 'kcopy --progress=' plain json fd:3 plain,fd:3 json,fd:3
expect 'kcopy --progress=j' json json,fd:3
expect 'kcopy --progress=f' fd:3
expect 'kcopy --progress=plain,' plain,fd:3
expect 'kcopy --throttle ' 10 25 50 75 100
expect 'kcopy --ti' --timeout
expect 'kcopy --timeout ' 0 10 30 60 120 300
expect 'kcopy --timeout=1' 10 120
expect 'kcopy --hash ' md5 sha1 sha256 sha512
expect 'kcopy --hash sha256,sha' sha256,sha1 sha256,sha256 sha256,sha512
expect 'kcopy --hash=md5,s' md5,sha1 md5,sha256 md5,sha512

# /dev/loo: the loop block devices there are, never /dev/loop-control.
loops=()
for f in /dev/loo*; do
	[[ -b $f ]] && loops+=("$f")
done
[[ -d /dev/loop ]] && loops+=("/dev/loop/")
expect 'kcopy /dev/loo' "${loops[@]}"
complete_line 'kcopy /dev/loo'
if grep -q loop-control <<< "$got"; then
	echo "not ok - [$mode] '/dev/loo' offers /dev/loop-control"
	failures=$((failures + 1))
fi

# Every short option of the popt table, and the long ones.
offers 'kcopy -' -p -i -s -z -P -m -n -q -v -V -h '-?' --pages --zero --help
# And every short option kcopy --help lists.
help_shorts=$("$kcopy" --help | sed -n -E 's/^ {2,6}(-[^-]), --.*/\1/p')
# shellcheck disable=SC2086
offers 'kcopy -' $help_shorts

# Every long option kcopy --help lists is offered for "kcopy --", and
# every one offered is in --help.
help_opts=$("$kcopy" --help |
	sed -n -E 's/^ {2,6}(-[^ ,]+, )?(--[a-z][a-z-]*).*/\2/p' | sort -u)
if [[ -z $help_opts ]]; then
	echo "not ok - [$mode] no long option found in kcopy --help"
	failures=$((failures + 1))
fi
# shellcheck disable=SC2086
offers 'kcopy --' $help_opts
complete_line 'kcopy --'
extra=""
mapfile -t offered <<< "$got"
for w in "${offered[@]}"; do
	grep -qxF -- "${w%=}" <<< "$help_opts" || extra+=" $w"
done
if [[ -z $extra ]]; then
	echo "ok - [$mode] 'kcopy --' offers nothing that --help lacks"
else
	echo "not ok - [$mode] 'kcopy --' offers options --help lacks:$extra"
	failures=$((failures + 1))
fi

# Colons: a by-path style name, and bash replaces only the text after the
# last colon, so the candidates start there.
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/pci-0000:00:1f.2-ata-1"
expect "kcopy $tmp/pci-0000:00" "00:1f.2-ata-1"
expect "kcopy --report=$tmp/pci-0000:00:1f" "1f.2-ata-1"
expect "kcopy $tmp/pci-0000:00:1f.2-ata-1:" 
expect 'kcopy --chunk=5' 512K
expect 'kcopy --mapfile-interval=3' 30 300
expect "kcopy --mapfile=$tmp/pci-0000:00:1f" "1f.2-ata-1"

# "[ CMD ARGS... ]": after '[' the servers (commands), then files and ']';
# kcopy's options are not offered inside, and are again after ']'.
expect 'kcopy [ qemu-nb' qemu-nbd
expect 'kcopy [ nbdki' nbdkit
offers 'kcopy disk.img [ nbd' nbdkit
: > "$tmp/disk.qcow2"
expect "kcopy [ qemu-nbd -f qcow2 $tmp/disk.q" "$tmp/disk.qcow2"
expect 'kcopy [ qemu-nbd --for' 
offers "kcopy [ qemu-nbd -f qcow2 $tmp/disk.qcow2 " "]"
expect "kcopy [ qemu-nbd $tmp/disk.qcow2 ] --ver" --verbose --verify --version

exit $((failures != 0))
CHECKS
}

status=0
run_checks full || status=1
run_checks bare || status=1
if ((status)); then
	echo "FAIL: bash completion"
else
	echo "PASS: bash completion"
fi
exit $status

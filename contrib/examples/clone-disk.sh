#!/bin/bash
# clone-disk.sh - clone one disk or partition to several at once with kcopy.
#
# usage: clone-disk.sh [-y] SOURCE DEST...
#
#   -y   do not ask for confirmation
#
# Shows every device involved (lsblk), refuses destinations that are
# mounted or in use, asks you to type "yes", then runs
#   kcopy --progress --verify --report REPORT SOURCE DEST...
# and explains kcopy's exit status bit by bit.  SOURCE and DEST are whole
# block devices (disks or partitions) or image files; for parts of them
# (PATH:SECTOR:COUNT) call kcopy directly.  Run as root for block devices.
#
# Environment: KCOPY (default: kcopy in PATH), REPORT_DIR (default: the
# current directory), KCOPY_OPTS (more kcopy options, e.g. "--rate 200M").
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -euo pipefail

KCOPY=${KCOPY:-kcopy}
REPORT_DIR=${REPORT_DIR:-.}
KCOPY_OPTS=${KCOPY_OPTS:-}
prog=${0##*/}

usage()
{
	echo "usage: $prog [-y] SOURCE DEST..." >&2
	echo "Clone SOURCE (a disk, partition or image) to every DEST at once." >&2
	exit 2
}

die()
{
	echo "$prog: $*" >&2
	exit 1
}

assume_yes=0
while getopts yh opt; do
	case $opt in
	y) assume_yes=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# >= 2)) || usage
source_dev=$1
shift
dests=("$@")

command -v "$KCOPY" > /dev/null 2>&1 || die "kcopy not found (set KCOPY=/path/to/kcopy)"

# lsblk's column of mount points: MOUNTPOINTS (util-linux 2.37+) lists them
# all, older versions have only MOUNTPOINT.
mp_col=MOUNTPOINT
if lsblk -n -o MOUNTPOINTS > /dev/null 2>&1; then
	mp_col=MOUNTPOINTS
fi

# Where block device $1 or any of its partitions is mounted or used as
# swap, one a line; nothing if it is free.
mounts_of()
{
	lsblk -n -l -o MOUNTPOINT "$1" 2> /dev/null | sed '/^[[:space:]]*$/d'
}

# Is block device $1 held by something (LVM, RAID, dm-crypt)?
holders_of()
{
	local name sys
	name=$(basename "$(readlink -f "$1")")
	sys=/sys/class/block/$name/holders
	if [[ -d $sys ]]; then
		ls "$sys"
	fi
}

# ---------------------------------------------------------------- the table
blockdevs=()
for path in "$source_dev" "${dests[@]}"; do
	if [[ ! -e $path && $path == *:* ]]; then
		die "'$path': region specs (PATH:SECTOR:COUNT) are for kcopy" \
		    "itself; this script copies whole devices and files"
	fi
	# kcopy creates a missing destination as a regular file: under /dev
	# that is a typo or an unplugged disk, and a file in RAM.
	if [[ $path == /dev/* && ! -b $path ]]; then
		die "'$path' is not a block device (unplugged? a typo?)"
	fi
	if [[ -b $path ]]; then
		blockdevs+=("$path")
	elif [[ $path == "$source_dev" && ! -e $path ]]; then
		die "source '$path' does not exist"
	elif [[ -e $path && ! -f $path ]]; then
		die "'$path' is neither a block device nor a regular file"
	fi
done

echo "Devices:"
if ((${#blockdevs[@]})); then
	lsblk -d -o "NAME,MODEL,SIZE,TYPE,$mp_col" "${blockdevs[@]}" |
		sed 's/^/  /'
fi
echo

echo "Plan:"
refuse=0
n=0
for path in "$source_dev" "${dests[@]}"; do
	if ((n == 0)); then
		role="source"
	else
		role="destination $n"
	fi
	state=""
	if [[ -b $path ]]; then
		where=$(mounts_of "$path" | paste -sd, -)
		held=$(holders_of "$path" | paste -sd, -)
		if [[ -n $where ]]; then
			state="MOUNTED at $where"
		elif [[ -n $held ]]; then
			state="IN USE by $held"
		else
			state="not mounted"
		fi
		if ((n > 0)) && [[ $state != "not mounted" ]]; then
			state="$state -- refusing to overwrite it"
			refuse=1
		fi
	elif [[ -f $path ]]; then
		state="image file, $(du -h --apparent-size "$path" | cut -f1)"
		((n > 0)) && state="$state (will be overwritten, not truncated)"
	else
		state="image file, will be created"
	fi
	printf '  %-14s %-40s %s\n' "$role" "$path" "$state"
	n=$((n + 1))
done
echo

if ((refuse)); then
	die "unmount the destinations above (and stop what holds them) first"
fi

if ((!assume_yes)); then
	if [[ ! -t 0 ]]; then
		die "not asking on a non-terminal: use -y to confirm"
	fi
	echo "Everything on the destinations above will be overwritten."
	read -r -p 'Type "yes" to go on: ' answer
	[[ $answer == yes ]] || die "not confirmed, nothing done"
fi

# ---------------------------------------------------------------- the copy
mkdir -p "$REPORT_DIR"
report=$REPORT_DIR/kcopy-$(date +%Y%m%d-%H%M%S).json
# shellcheck disable=SC2206 # KCOPY_OPTS is a list of words on purpose
cmd=("$KCOPY" --progress --verify --report "$report" $KCOPY_OPTS
	"$source_dev" "${dests[@]}")
echo "+ ${cmd[*]}"
status=0
"${cmd[@]}" || status=$?
echo

# ---------------------------------------------------------------- the result
# The error text of destination $1 (1-based) from the report, if any.
report_error()
{
	[[ -r $report ]] || return 0
	if command -v jq > /dev/null 2>&1; then
		jq -r --argjson i "$1" \
			'.destinations[] | select(.index == $i) | .error // empty' \
			"$report"
	else
		grep "\"index\": $1," "$report" |
			sed -n 's/.*"error": "\([^"]*\)".*/\1/p'
	fi
}

if ((status == 0)); then
	echo "Success: every sector copied to all ${#dests[@]} destination(s)," \
	     "flushed and verified."
elif ((status == 128)); then
	echo "Exit status 128: usage or setup error, nothing was written" \
	     "(kcopy's message is above)."
elif ((status > 128)); then
	echo "Exit status $status: stopped by signal $((status - 128))" \
	     "($(kill -l $((status - 128)) 2> /dev/null || echo '?'))" \
	     "after the I/O in flight; the destinations are incomplete."
else
	echo "Exit status $status = bit mask:"
	if ((status & 1)) && [[ " $KCOPY_OPTS " == *" -i "* ||
				 " $KCOPY_OPTS " == *" --ignore-errors "* ]]; then
		echo "  bit 0 (1): read errors on the source $source_dev:" \
		     "unreadable sectors were written as zeros (bad_ranges" \
		     "in the report)"
	elif ((status & 1)); then
		echo "  bit 0 (1): read error on the source $source_dev:" \
		     "the copy stopped, the destinations are incomplete" \
		     "(KCOPY_OPTS=--ignore-errors zero-fills unreadable" \
		     "sectors and goes on)"
	fi
	for ((k = 1; k <= 6; k++)); do
		((status & (1 << k))) || continue
		if ((k < 6 || ${#dests[@]} == 6)); then
			err=$(report_error "$k")
			echo "  bit $k ($((1 << k))): destination $k" \
			     "${dests[k - 1]} FAILED${err:+: $err}"
		else
			echo "  bit 6 (64): one or more of destinations" \
			     "6..${#dests[@]} FAILED:"
			for ((d = 6; d <= ${#dests[@]}; d++)); do
				err=$(report_error "$d")
				[[ -n $err ]] && echo "      destination $d" \
					"${dests[d - 1]}: $err"
			done
		fi
	done
	if ((!(status & 1))); then
		echo "  Every destination not listed was copied completely."
	fi
fi
if [[ -r $report ]]; then
	echo "Report: $report"
fi
exit "$status"

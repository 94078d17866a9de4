#!/bin/bash
# relay-clone.sh - clone one disk to disks on many machines through a relay
# chain over ssh: every machine writes its disk and passes the stream on to
# the next, so every network link carries the image once, at its own rate,
# for any number of machines.
#
# usage: relay-clone.sh [-n] SOURCE HOST:DISK...
#
#   -n   print the command, run nothing
#
# The chain for "relay-clone.sh /dev/sda b:/dev/sdb c:/dev/sdc d:/dev/sdd":
#
#   kcopy /dev/sda - | ssh b 'kcopy - /dev/sdb - | ssh c '\''kcopy - ...'\'''
#
# that is, on this machine kcopy SOURCE -, on every host but the last
# kcopy - DISK - (its disk, and standard output into the ssh to the next
# host), on the last kcopy - DISK.  Each host must reach the next by ssh
# without a password (an agent forwarded with SSH_OPTS="-A", or keys of its
# own) and have kcopy; DISK must not be mounted there.
#
# What each node's exit status says (kcopy(1), EXAMPLES, the relay chain):
#   this machine   1 read error on SOURCE; 2 the link to the first host lost
#   a middle host  1 its input broke; 2 its disk failed (it still passes the
#                  whole stream on); 4 the link to the next host lost (its
#                  own disk still gets all that comes)
#   the last host  1 its input broke; 2 its disk failed
#   any            128 setup error (nothing written, the chain stops there),
#                  128+N stopped by signal N
# A node whose stream ended early (a node before it was lost) cannot tell:
# it exits 0 with what came.  So this script reads the chain as a whole:
# from the first node whose output did not go on whole, every node after it
# is reported incomplete, whatever its own status.  The script exits 0 only
# when every disk has the whole image, and 1 otherwise.
#
# Each node prints its status on standard error as one line
# "relay-clone: node I status N", which ssh carries back here.
#
# Environment: KCOPY (kcopy on this machine, default kcopy in PATH),
# KCOPY_OPTS (its options, e.g. "--progress --rate 100M"), REMOTE_KCOPY
# (kcopy on the hosts, default kcopy), REMOTE_OPTS (their options, e.g.
# "--quiet"), SSH (default ssh), SSH_OPTS (default: batch mode, and a
# link silent for a minute is ended rather than held forever).
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -euo pipefail

KCOPY=${KCOPY:-kcopy}
KCOPY_OPTS=${KCOPY_OPTS:-}
REMOTE_KCOPY=${REMOTE_KCOPY:-kcopy}
REMOTE_OPTS=${REMOTE_OPTS:-}
SSH=${SSH:-ssh}
SSH_OPTS=${SSH_OPTS:--o BatchMode=yes -o ServerAliveInterval=15 -o ServerAliveCountMax=4}
prog=${0##*/}

usage()
{
	echo "usage: $prog [-n] SOURCE HOST:DISK..." >&2
	echo "Clone SOURCE to DISK on every HOST, each host passing it on to the next." >&2
	exit 2
}

die()
{
	echo "$prog: $*" >&2
	exit 1
}

# quote WORD: WORD as one word for a POSIX shell, in single quotes.
quote()
{
	printf "'%s'" "${1//\'/\'\\\'\'}"
}

print_only=0
while getopts nh opt; do
	case $opt in
	n) print_only=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# >= 2)) || usage
source_dev=$1
shift

hosts=() disks=()
for pair in "$@"; do
	[[ $pair == ?*:?* ]] || die "'$pair' is not HOST:DISK"
	hosts+=("${pair%%:*}")
	disks+=("${pair#*:}")
done
n=${#hosts[@]}

# Build the chain from its end: the command of host i runs kcopy - DISK and,
# but for the last host, pipes its standard output into the ssh to host
# i+1, whose command is quoted once more for host i's shell.  Node 0 is this
# machine, node i (1..n) host i.
cmd=""
for ((i = n; i >= 1; i--)); do
	node="$REMOTE_KCOPY${REMOTE_OPTS:+ $REMOTE_OPTS} - $(quote "${disks[i - 1]}")"
	if ((i == n)); then
		cmd="$node; echo \"relay-clone: node $i status \$?\" >&2"
	else
		# shellcheck disable=SC2016 # $? is for the remote shell
		cmd="{ $node -; echo \"relay-clone: node $i status \$?\" >&2; } | $SSH $SSH_OPTS $(quote "${hosts[i]}") $(quote "$cmd")"
	fi
done

if ((print_only)); then
	printf '%s %s %s - | %s %s %s %s\n' "$KCOPY" "$KCOPY_OPTS" \
		"$(quote "$source_dev")" "$SSH" "$SSH_OPTS" \
		"$(quote "${hosts[0]}")" "$(quote "$cmd")"
	exit 0
fi
command -v "$KCOPY" >/dev/null 2>&1 || die "kcopy not found (set KCOPY=/path/to/kcopy)"

# Run the chain; everything the nodes say comes back on standard error and
# is shown as it comes and kept for the verdict.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# shellcheck disable=SC2086 # the options are words on purpose
{
	{
		"$KCOPY" $KCOPY_OPTS "$source_dev" -
		echo "relay-clone: node 0 status $?" >&2
	} | $SSH $SSH_OPTS "${hosts[0]}" "$cmd"
} 2>&1 | tee "$log" >&2
set -e

# The verdict, node by node, in the order of the chain.
status_of()
{
	sed -n "s/^relay-clone: node $1 status \([0-9]*\)\$/\1/p" "$log" | tail -n 1
}

describe()
{
	local i=$1 st=$2 out_bit=$3
	if ((st >= 128)); then
		if ((st == 128)); then
			echo "setup error, nothing written"
		else
			echo "stopped by signal $((st - 128))"
		fi
		return
	fi
	((st & 1)) && echo "read error on its input"
	((i > 0 && (st & 2))) && echo "its disk failed"
	((st & out_bit)) && echo "the link to the next node was lost (that node or the network failed)"
	return 0
}

whole=1 bad=0
for ((i = 0; i <= n; i++)); do
	if ((i == 0)); then
		name="this machine ($source_dev)"
		out_bit=2
	else
		name="${hosts[i - 1]}:${disks[i - 1]}"
		out_bit=4
	fi
	st=$(status_of "$i")
	what=""
	if [[ -z $st ]]; then
		what="no status: its ssh failed or it was killed"
	else
		what=$(describe "$i" "$st" "$out_bit" | paste -sd ';' -)
	fi
	if [[ -z $st || $st != 0 ]]; then
		echo "$prog: $name: status ${st:-none}: $what" >&2
		bad=1
	elif ((!whole)); then
		echo "$prog: $name: incomplete: status 0, but the stream stopped before it" >&2
		bad=1
	else
		echo "$prog: $name: ok" >&2
	fi
	# After this node the stream goes on whole only if this node read it
	# all and passed it all on.
	if [[ -z $st ]] || ((st >= 128 || (st & 1) || (st & out_bit))); then
		whole=0
	fi
done
exit $bad

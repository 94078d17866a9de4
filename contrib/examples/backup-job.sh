#!/bin/bash
# backup-job.sh - a cron or systemd-timer job: copy a source device or image
# to one or more backup targets with kcopy, and act on the exit status.
#
# Configure with the variables below (or the same names in the environment),
# or better in /etc/default/kcopy-backup (another file:
# KCOPY_BACKUP_CONFIG=/path/to/file), a shell fragment that overrides both:
#
#   SOURCE=/dev/disk/by-id/ata-Samsung_SSD_870_EVO_1TB_S6P...-part2
#   TARGETS="/dev/disk/by-id/usb-WD_Elements_...-0:0 /srv/backup/root.img"
#   LOGDIR=/var/log/kcopy-backup
#   KCOPY_OPTS="--verify --rate 200M"
#
# Every run writes $LOGDIR/kcopy-DATE.json (kcopy's report) and
# $LOGDIR/kcopy-DATE.log (kcopy's messages), and logs one line per failed
# destination through logger -t kcopy-backup (stderr when there is no
# logger or no syslog socket; failures go to stderr too, for cron's mail).
# Exit status: 0 when every target got every sector; else kcopy's own:
# bit 0 source read error, bit k target k failed (targets 6 and later share
# bit 6), 128 setup error (nothing written), 128+N stopped by signal N.
# The source should not be mounted read-write while it is copied.
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -uo pipefail

# ------------------------------------------------------------ configuration
SOURCE=${SOURCE:-}		# device or image to back up
TARGETS=${TARGETS:-}		# one or more devices or image files, by blanks
LOGDIR=${LOGDIR:-/var/log/kcopy-backup}
KCOPY=${KCOPY:-kcopy}
KCOPY_OPTS=${KCOPY_OPTS:-}	# e.g. "--verify --rate 200M --ignore-errors"
KEEP_DAYS=${KEEP_DAYS:-30}	# delete reports and logs older than this; 0 keeps all
KCOPY_BACKUP_CONFIG=${KCOPY_BACKUP_CONFIG:-/etc/default/kcopy-backup}

if [[ -r $KCOPY_BACKUP_CONFIG ]]; then
	# shellcheck source=/dev/null
	. "$KCOPY_BACKUP_CONFIG"
fi

TAG=kcopy-backup

# ------------------------------------------------------------ logging
# log PRIORITY MESSAGE: to syslog or the journal through logger, else to
# stderr.  logger says nothing when no syslog socket listens, so look first.
use_logger=0
if command -v logger > /dev/null 2>&1 && [[ -S /dev/log ]]; then
	use_logger=1
fi
log()
{
	local prio=$1
	shift
	if ((use_logger)) &&
	   logger -t "$TAG" -p "user.$prio" -- "$*" 2> /dev/null; then
		# Also on stderr when run by hand, and failures when run by
		# cron (which mails them); not under systemd, whose journal
		# has them already.
		if [[ -t 2 ]] || { [[ -z ${JOURNAL_STREAM:-} ]] &&
				    [[ $prio == err || $prio == warning ]]; }; then
			echo "$TAG: $*" >&2
		fi
	else
		echo "$TAG: $prio: $*" >&2
	fi
}

die_setup()
{
	log err "$*"
	exit 128
}

[[ -n $SOURCE ]] || die_setup "SOURCE is not set (see $KCOPY_BACKUP_CONFIG)"
[[ -n $TARGETS ]] || die_setup "TARGETS is not set (see $KCOPY_BACKUP_CONFIG)"
command -v "$KCOPY" > /dev/null 2>&1 || die_setup "kcopy not found: '$KCOPY'"
mkdir -p "$LOGDIR" || die_setup "cannot create LOGDIR $LOGDIR"

read -r -a targets <<< "$TARGETS"
# kcopy creates a missing destination as a regular file.  Under /dev that
# means an unplugged backup disk, and the backup would go to a file in RAM.
for t in "$SOURCE" "${targets[@]}"; do
	if [[ $t == /dev/* && ! -b $t ]]; then
		die_setup "$t is not a block device (unplugged?); nothing done"
	fi
done
# shellcheck disable=SC2206 # a list of words on purpose
opts=($KCOPY_OPTS)

# One run at a time: a slow copy must not be overtaken by the next one.
if command -v flock > /dev/null 2>&1; then
	exec 9> "$LOGDIR/.lock"
	if ! flock -n 9; then
		log warning "another backup is still running; skipped"
		exit 128
	fi
fi

DATE=$(date +%Y%m%d-%H%M%S)
report=$LOGDIR/kcopy-$DATE.json
msglog=$LOGDIR/kcopy-$DATE.log

# ------------------------------------------------------------ the copy
log info "copying $SOURCE to ${#targets[@]} target(s): ${targets[*]}"
# In the background, so that a SIGTERM (systemctl stop), SIGINT or SIGHUP
# sent to this script reaches kcopy, which then stops after the I/O in flight
# and exits 128+N; this script waits for it and logs what happened.
"$KCOPY" --report "$report" -q "${opts[@]}" "$SOURCE" "${targets[@]}" \
	2> "$msglog" &
kcopy_pid=$!
trap 'kill -TERM "$kcopy_pid" 2> /dev/null' TERM INT HUP
wait "$kcopy_pid"
while kill -0 "$kcopy_pid" 2> /dev/null; do
	wait "$kcopy_pid"	# interrupted by a signal: wait on
done
status=0
wait "$kcopy_pid" || status=$?	# bash keeps the status of a reaped child
trap - TERM INT HUP

# ------------------------------------------------------------ the report
have_report=0
[[ -s $report ]] && have_report=1

# The failed destinations, one a line: INDEX<tab>PATH<tab>ERROR.
failed_from_report()
{
	if command -v jq > /dev/null 2>&1; then
		jq -r '.destinations[] | select(.write_err) |
			"\(.index)\t\(.path)\t\(.error // "write error")"' \
			"$report"
	else
		# One destination per line in kcopy's report.
		grep '"write_err": true' "$report" | sed -n \
			-e 's/.*"index": \([0-9]*\), "path": "\(.*\)", "sector".*"error": "\([^"]*\)".*/\1\t\2\t\3/p' \
			-e 's/.*"index": \([0-9]*\), "path": "\(.*\)", "sector".*"error": null.*/\1\t\2\twrite error/p'
	fi
}

# A number from the top level of the report.
report_number()
{
	if command -v jq > /dev/null 2>&1; then
		jq -r ".$1 | if type == \"array\" then length else . end" "$report"
	elif [[ $1 == bad_ranges ]]; then
		grep -c '"device": ' "$report"
	else
		sed -n "s/^  \"$1\": \\([0-9.]*\\),*\$/\\1/p" "$report"
	fi
}

# kcopy's own messages (setup errors, the closing line) into the log too.
log_messages()
{
	local prio=$1 line
	while IFS= read -r line; do
		[[ -n $line ]] && log "$prio" "$line"
	done < "$msglog"
}

if ((status == 0)); then
	if ((have_report)); then
		log info "done: $(report_number bytes) bytes to ${#targets[@]} target(s) in $(report_number seconds) s; report $report"
	else
		log info "done; no report at $report"
	fi
	[[ -s $msglog ]] || rm -f "$msglog"
elif ((status == 128)); then
	log_messages err
	log err "setup error (exit 128): nothing was written; see $msglog"
elif ((status > 128)); then
	log_messages warning
	log err "stopped by signal $((status - 128)) (exit $status): the targets are incomplete"
else
	log_messages warning
	if ((status & 1)); then
		if ((have_report)) && (($(report_number bad_ranges) > 0)); then
			log err "read errors on $SOURCE: $(report_number bad_ranges) bad range(s) written as zeros (bad_ranges in $report)"
		else
			log err "read error on $SOURCE: the copy stopped, every target is incomplete"
		fi
	fi
	if ((have_report)); then
		while IFS=$'\t' read -r index path error; do
			log err "target $index ($path) FAILED: $error"
		done < <(failed_from_report)
	else
		# No report: the exit bits still say which target failed.
		for ((k = 1; k <= 6; k++)); do
			((status & (1 << k))) || continue
			if ((k < 6)); then
				log err "target $k (${targets[k - 1]}) FAILED"
			else
				log err "one of targets 6..${#targets[@]} FAILED"
			fi
		done
	fi
	log err "exit status $status; report $report"
fi

# ------------------------------------------------------------ housekeeping
if ((KEEP_DAYS > 0)); then
	find "$LOGDIR" -maxdepth 1 -type f -name 'kcopy-*.json' -mtime +"$KEEP_DAYS" -delete
	find "$LOGDIR" -maxdepth 1 -type f -name 'kcopy-*.log' -mtime +"$KEEP_DAYS" -delete
fi
exit "$status"

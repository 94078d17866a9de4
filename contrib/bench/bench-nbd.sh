#!/bin/bash
# bench-nbd.sh - kcopy against nbdcopy, writing to nbdkit exports.
#
# Copyright (C) 2026 The kcopy authors.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage (as root):  bash contrib/bench/bench-nbd.sh /path/to/kcopy [OPTION]...
#
# The source is a file of random data on a private tmpfs; the destinations
# are nbdkit memory exports on Unix sockets (nbdkit -U SOCK -P PIDFILE memory
# SIZE), started fresh before every run and killed (by pid file) after it, so
# that every tool writes to empty servers.  Rows: kcopy 1->1, nbdcopy 1->1,
# kcopy 1->4, nbdcopy run once per destination in a row, 4 nbdcopy processes
# at once, and kcopy 1->4 with the 4th export behind nbdkit's rate filter.
# Runs are interleaved (one run of each row per round, the order rotated by
# one every round) and the page cache is dropped before each.  The first run
# of every row is checked: every export it wrote is read back with nbdcopy
# and compared with the source.  Writes nbd-SIZE.{md,csv} and
# nbd-SIZE-runs.csv into the results directory.  Every server, file and
# mount it made is removed on exit, also when interrupted.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

set -u
set -o pipefail
export LC_ALL=C

ME=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)

usage() {
	cat <<EOF
Usage: $ME KCOPY [OPTION]...
Benchmark KCOPY (the installed kcopy ELF binary, not libtool's wrapper
script) against nbdcopy, with nbdkit memory exports as destinations.
Must run as root (mounts a tmpfs, drops the page cache).

  --size SIZE           bytes copied, K/M/G suffixes (default 1G)
  --runs N              interleaved runs of every row (default 3)
  --rate BITSPERSEC     nbdkit rate filter on the slow export, in bits per
                        second as nbdkit takes it (default 1G = 2^30 bit/s)
  --kcopy-opts 'OPTS'   extra options for kcopy
  --outdir DIR          results directory (default $HERE/results)
  -h, --help            this text

If KCOPY sits in PREFIX/bin and PREFIX/lib holds libkcopyd, that directory
is put in front of LD_LIBRARY_PATH for kcopy's runs, e.g. after
  make install DESTDIR=\$PWD/_inst
  sudo bash $ME _inst/usr/local/bin/kcopy
EOF
}

. "$HERE/common.sh"

[ $# -ge 1 ] || { usage >&2; exit 1; }
case $1 in -h|--help) usage; exit 0;; esac
KCOPY=$1; shift
case $KCOPY in /*) ;; *) KCOPY=$(pwd)/$KCOPY;; esac

SIZE_ARG=1G RUNS=3 RATE=1G KOPTS='' OUTDIR=$HERE/results
while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	--*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue;;
	esac
	case $opt in
	--size|--runs|--rate|--kcopy-opts|--outdir)
		[ $# -ge 2 ] || die "$opt needs an argument";;
	esac
	case $opt in
	--size) SIZE_ARG=$2; shift;;
	--runs) RUNS=$2; shift;;
	--rate) RATE=$2; shift;;
	--kcopy-opts) KOPTS=$2; shift;;
	--outdir) OUTDIR=$2; shift;;
	-h|--help) usage; exit 0;;
	*) die "unknown option: $opt";;
	esac
	shift
done

to_bytes() {
	local n=${1%[KkMmGg]} m=1
	case $1 in
	*[Kk]) m=1024;; *[Mm]) m=1048576;; *[Gg]) m=1073741824;;
	esac
	case $n in ''|*[!0-9]*) return 1;; esac
	echo $((n * m))
}
SIZE=$(to_bytes "$SIZE_ARG") || die "bad --size: $SIZE_ARG"
RATE_BITS=$(to_bytes "$RATE") || die "bad --rate: $RATE"
[ "$SIZE" -gt 0 ] && [ $((SIZE % 1048576)) -eq 0 ] ||
	die "--size must be a positive multiple of 1M"
case $RUNS in ''|*[!0-9]*|0) die "bad --runs: $RUNS";; esac

# --- prerequisites --------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "must run as root (tmpfs mount, drop_caches)"
require_kcopy_binary "$KCOPY"
for t in nbdkit nbdcopy cmp awk od mount; do
	command -v "$t" >/dev/null || die "$t not found"
done
nbdkit --dump-plugin memory >/dev/null 2>&1 || die "nbdkit memory plugin missing"
nbdkit --filter=rate memory 1M --dump-plugin >/dev/null 2>&1 ||
	die "nbdkit rate filter missing"

KLIB=$(cd "$(dirname "$KCOPY")/.." && pwd)/lib
if ls "$KLIB"/libkcopyd.so* >/dev/null 2>&1; then
	KLDPATH=$KLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
	KLDPATH=${LD_LIBRARY_PATH:-}
fi
LD_LIBRARY_PATH=$KLDPATH "$KCOPY" --version >/dev/null 2>&1 ||
	die "$KCOPY --version fails (LD_LIBRARY_PATH=$KLDPATH)"
KLIBUSED=$(LD_LIBRARY_PATH=$KLDPATH ldd "$KCOPY" 2>/dev/null |
	awk '/libkcopyd/ { print $3 }')

GNUTIME=''
if [ -x /usr/bin/time ] && /usr/bin/time -f %M true >/dev/null 2>&1; then
	GNUTIME=/usr/bin/time
else
	say "GNU time not found (package 'time'): CPU from bash's times, no peak RSS"
fi
CLK_TCK=$(getconf CLK_TCK)

mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

# --- work area and cleanup ------------------------------------------------

WORK=''
MOUNTED=0
cleanup() {
	trap - EXIT INT TERM HUP
	if [ -n "$WORK" ]; then
		stop_servers
		if [ "$MOUNTED" = 1 ]; then
			umount "$WORK" 2>/dev/null || umount -l "$WORK"
		fi
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
trap 'say "hangup"; exit 129' HUP

WORK=$(mktemp -d /tmp/bench-nbd.XXXXXX) || die "mktemp failed"
mount -t tmpfs -o size=$((SIZE + 64 * 1048576)),mode=0700 bench-nbd "$WORK" ||
	die "cannot mount tmpfs on $WORK"
MOUNTED=1
SRC=$WORK/src.img
say "writing $SIZE_ARG of random data to $SRC"
dd if=/dev/urandom of="$SRC" bs=1M count=$((SIZE / 1048576)) status=none ||
	die "cannot write $SRC"

sock() { echo "$WORK/s$1.sock"; }
uri() { echo "nbd+unix:///?socket=$(sock "$1")"; }

# start_servers N SLOW: N fresh memory exports of SIZE bytes; with SLOW=1
# the last one is behind the rate filter.
start_servers() {
	local n=$1 slow=$2 i j filt
	for ((i = 1; i <= n; i++)); do
		filt=()
		if [ "$slow" = 1 ] && [ "$i" = "$n" ]; then
			filt=(--filter=rate)
		fi
		rm -f "$(sock $i)" "$WORK/s$i.pid"
		nbdkit -U "$(sock $i)" -P "$WORK/s$i.pid" "${filt[@]}" \
			memory "$SIZE" ${filt:+rate=$RATE} ||
			die "nbdkit $i failed to start"
		for ((j = 0; j < 500; j++)); do
			[ -s "$WORK/s$i.pid" ] && [ -S "$(sock $i)" ] && break
			sleep 0.01
		done
		[ -S "$(sock $i)" ] || die "nbdkit $i: no socket"
	done
}

# servers_cpu N: user+sys seconds used so far by servers 1..N (fields 14
# and 15 of /proc/PID/stat, counted after the ") " that ends the name).
servers_cpu() {
	local i pid ticks tot=0
	for ((i = 1; i <= $1; i++)); do
		pid=$(cat "$WORK/s$i.pid" 2>/dev/null) || continue
		ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null) || continue
		tot=$((tot + ${ticks:-0}))
	done
	awk -v t="$tot" -v h="$CLK_TCK" 'BEGIN { printf "%.3f", t / h }'
}

# stop_servers: SIGTERM every server at once (an nbdkit takes about a second
# to exit), then wait for each.
stop_servers() {
	local p pid pids=() i
	for p in "$WORK"/s*.pid; do
		[ -f "$p" ] || continue
		pid=$(cat "$p" 2>/dev/null)
		[ -n "$pid" ] && kill "$pid" 2>/dev/null && pids+=("$pid")
	done
	for pid in "${pids[@]}"; do
		for ((i = 0; i < 1000; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.01
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	done
	rm -f "$WORK"/s*.pid "$WORK"/s*.sock
	return 0
}

drop_caches() {
	sync
	echo 3 > /proc/sys/vm/drop_caches 2>/dev/null ||
		say "could not drop the page cache"
}

# --- rows -----------------------------------------------------------------

ROWS=(kcopy11 nbdcopy11 kcopy14 nbdcopyseq nbdcopypar kcopyslow)
declare -A TEST TOOL NDEST SLOW
TEST=([kcopy11]='1→1' [nbdcopy11]='1→1' [kcopy14]='1→4' [nbdcopyseq]='1→4'
      [nbdcopypar]='1→4' [kcopyslow]='1→4 slow')
TOOL=([kcopy11]=kcopy [nbdcopy11]=nbdcopy [kcopy14]=kcopy
      [nbdcopyseq]='nbdcopy x4 in a row' [nbdcopypar]='4 nbdcopy at once'
      [kcopyslow]="kcopy (export 4 at rate=$RATE)")
NDEST=([kcopy11]=1 [nbdcopy11]=1 [kcopy14]=4 [nbdcopyseq]=4 [nbdcopypar]=4
       [kcopyslow]=4)
SLOW=([kcopyslow]=1)

# row_argv ROW: set ARGV to the row's command.
row_argv() {
	local r=$1 i
	ARGV=()
	case $r in
	kcopy11) ARGV=(env LD_LIBRARY_PATH="$KLDPATH" "$KCOPY" $KOPTS "$SRC" "$(uri 1)");;
	nbdcopy11) ARGV=(nbdcopy --flush "$SRC" "$(uri 1)");;
	kcopy14|kcopyslow)
		ARGV=(env LD_LIBRARY_PATH="$KLDPATH" "$KCOPY" $KOPTS "$SRC")
		for i in 1 2 3 4; do ARGV+=("$(uri $i)"); done;;
	nbdcopyseq)
		ARGV=(bash -c 'src=$1; shift; for u; do nbdcopy --flush "$src" "$u" || exit; done' _ "$SRC")
		for i in 1 2 3 4; do ARGV+=("$(uri $i)"); done;;
	nbdcopypar)
		ARGV=(bash -c 'src=$1; shift; p=(); for u; do nbdcopy --flush "$src" "$u" & p+=($!); done; rc=0; for q in "${p[@]}"; do wait "$q" || rc=1; done; exit $rc' _ "$SRC")
		for i in 1 2 3 4; do ARGV+=("$(uri $i)"); done;;
	esac
}

# check_row ROW: every export the row wrote equals the source.
check_row() {
	local i
	for ((i = 1; i <= ${NDEST[$1]}; i++)); do
		nbdcopy "$(uri $i)" - | cmp -s - "$SRC" || {
			say "$1: export $i differs from the source"
			return 1
		}
	done
}

RUNSCSV=$OUTDIR/nbd-$SIZE_ARG-runs.csv
echo 'row,test,tool,round,wall_s,user_s,sys_s,maxrss_kib,server_cpu_s,exit,check' > "$RUNSCSV"
declare -A STATUS
for r in "${ROWS[@]}"; do STATUS[$r]=ok; done

# run_row ROW ROUND
run_row() {
	local r=$1 round=$2 t0 t1 rc wall user sys rss scpu chk=- tf=$WORK/time.out
	local -a tb ta
	start_servers "${NDEST[$r]}" "${SLOW[$r]:-0}"
	drop_caches
	row_argv "$r"
	rm -f "$tf"
	if [ -n "$GNUTIME" ]; then
		t0=$EPOCHREALTIME
		"$GNUTIME" -f '%U %S %M' -o "$tf" "${ARGV[@]}" >"$WORK/out" 2>&1
		rc=$?
		t1=$EPOCHREALTIME
		read -r user sys rss < <(tail -n 1 "$tf")
	else
		tb=($(times | tail -n 1))
		t0=$EPOCHREALTIME
		"${ARGV[@]}" >"$WORK/out" 2>&1
		rc=$?
		t1=$EPOCHREALTIME
		ta=($(times | tail -n 1))
		user=$(awk -v a="${tb[0]}" -v b="${ta[0]}" 'function s(x){ split(x, m, "m"); return m[1]*60 + m[2] } BEGIN { printf "%.3f", s(b) - s(a) }')
		sys=$(awk -v a="${tb[1]}" -v b="${ta[1]}" 'function s(x){ split(x, m, "m"); return m[1]*60 + m[2] } BEGIN { printf "%.3f", s(b) - s(a) }')
		rss=''
	fi
	scpu=$(servers_cpu "${NDEST[$r]}")
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	if [ "$rc" -ne 0 ]; then
		say "$r: exit status $rc:"; sed 's/^/  /' "$WORK/out" >&2
		STATUS[$r]="FAILED (exit $rc)"
	elif [ "$round" = 1 ]; then
		if check_row "$r"; then chk=ok; else chk=FAILED; STATUS[$r]='FAILED (cmp)'; fi
	fi
	stop_servers
	echo "$r,${TEST[$r]},${TOOL[$r]},$round,$wall,$user,$sys,$rss,$scpu,$rc,$chk" >> "$RUNSCSV"
	say "round $round  $(printf '%-10s' "$r") ${wall} s  (user $user sys $sys, servers $scpu)  $chk"
}

# --- environment record -----------------------------------------------------

DATE_START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
UPTIME_BEFORE=$(uptime)
KVERSION=$(LD_LIBRARY_PATH=$KLDPATH "$KCOPY" --version 2>&1 | head -n 1)
NBDCOPY_VERSION=$(nbdcopy --version 2>&1 | head -n 1)
NBDKIT_VERSION=$(nbdkit --version 2>&1 | head -n 1)
say "start $DATE_START; $UPTIME_BEFORE"

# --- runs -----------------------------------------------------------------

n=${#ROWS[@]}
for ((round = 1; round <= RUNS; round++)); do
	for ((k = 0; k < n; k++)); do
		r=${ROWS[$(((k + round - 1) % n))]}
		case ${STATUS[$r]} in FAILED*) continue;; esac
		run_row "$r" "$round"
	done
done

DATE_END=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
UPTIME_AFTER=$(uptime)
say "end $DATE_END; $UPTIME_AFTER"

# --- summary --------------------------------------------------------------

# stats ROW: "median min max cpu_median server_cpu_median peak_rss_kib count"
stats() {
	awk -F, -v r="$1" '
	function med(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	$1 == r && $10 == 0 { n++; w[n] = $5; c[n] = $6 + $7; s[n] = $9; if ($8 > rss) rss = $8 }
	END {
		if (!n) { print "- - - - - - 0"; exit }
		for (i = 1; i <= n; i++) { ww[i] = w[i]; if (i == 1 || w[i] < lo) lo = w[i]; if (w[i] > hi) hi = w[i] }
		printf "%.3f %.2f %.2f %.3f %.3f %s %d\n", med(ww, n), lo, hi, med(c, n), med(s, n), rss == "" ? "-" : rss, n
	}' "$RUNSCSV"
}

declare -A MED LO HI CPU SCPU RSS CNT
for r in "${ROWS[@]}"; do
	read -r MED[$r] LO[$r] HI[$r] CPU[$r] SCPU[$r] RSS[$r] CNT[$r] < <(stats "$r")
done

GIB=$(awk -v s="$SIZE" 'BEGIN { print s / 1073741824 }')
MIB=$((SIZE / 1048576))
isnum() { case $1 in ''|-|*[!0-9.]*) return 1;; esac; }

CSV=$OUTDIR/nbd-$SIZE_ARG.csv
MD=$OUTDIR/nbd-$SIZE_ARG.md
echo 'test,tool,median_s,min_s,max_s,mib_per_s,ratio_vs_kcopy,client_cpu_s_per_gib,server_cpu_s_per_gib,peak_rss_mib,runs,check' > "$CSV"
TABLE='| test | tool | median s | range s | MiB/s | ratio vs kcopy | client CPU s/GiB | nbdkit CPU s/GiB | peak RSS MiB | check |
|---|---|---:|---:|---:|---:|---:|---:|---:|---|'
for r in "${ROWS[@]}"; do
	case ${TEST[$r]} in 1→1) ref=kcopy11;; *) ref=kcopy14;; esac
	if isnum "${MED[$r]}"; then
		mibs=$(awk -v m="$MIB" -v t="${MED[$r]}" 'BEGIN { printf "%.0f", m / t }')
		ratio=-
		isnum "${MED[$ref]}" && ratio=$(awk -v a="${MED[$r]}" -v b="${MED[$ref]}" 'BEGIN { printf "%.2f", a / b }')
		cpu=$(awk -v c="${CPU[$r]}" -v g="$GIB" 'BEGIN { printf "%.3f", c / g }')
		scpu=$(awk -v c="${SCPU[$r]}" -v g="$GIB" 'BEGIN { printf "%.3f", c / g }')
		rss=-
		isnum "${RSS[$r]}" && rss=$(awk -v k="${RSS[$r]}" 'BEGIN { printf "%.1f", k / 1024 }')
		range="${LO[$r]}–${HI[$r]}"
	else
		mibs=- ratio=- cpu=- scpu=- rss=- range=-
	fi
	echo "${TEST[$r]},${TOOL[$r]},${MED[$r]},${LO[$r]},${HI[$r]},$mibs,$ratio,$cpu,$scpu,$rss,${CNT[$r]},${STATUS[$r]}" >> "$CSV"
	TABLE+=$'\n'"| ${TEST[$r]} | ${TOOL[$r]} | ${MED[$r]} | $range | $mibs | $ratio | $cpu | $scpu | $rss | ${STATUS[$r]} |"
done

# Targets (issue "NBD", Performance): 1->1 no slower than nbdcopy; 1->4 at
# most 0.5 x nbdcopy run once per destination.
target() {	# target NAME VALUE LIMIT
	if isnum "$2" && isnum "$3"; then
		if awk -v v="$2" -v l="$3" 'BEGIN { exit !(v <= l) }'; then
			echo "- $1: PASS ($2 s ≤ $3 s)"
		else
			echo "- $1: FAIL ($2 s > $3 s)"
		fi
	else
		echo "- $1: not measured"
	fi
}
LIM14=-
isnum "${MED[nbdcopyseq]}" && LIM14=$(awk -v t="${MED[nbdcopyseq]}" 'BEGIN { printf "%.3f", t / 2 }')
TARGETS=$(target "1→1 kcopy ≤ nbdcopy" "${MED[kcopy11]}" "${MED[nbdcopy11]}"
	  target "1→4 kcopy ≤ 0.5 × nbdcopy x4 in a row" "${MED[kcopy14]}" "$LIM14")
RATE_FLOOR=$(awk -v s="$SIZE" -v b="$RATE_BITS" 'BEGIN { printf "%.2f", s * 8 / b }')

{
	echo "# kcopy vs nbdcopy to nbdkit exports, $SIZE_ARG"
	echo
	echo "Run $DATE_START – $DATE_END; $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr)."
	echo "kcopy: $KVERSION ($KCOPY; libkcopyd ${KLIBUSED:-from the system})."
	echo "$NBDCOPY_VERSION; $NBDKIT_VERSION."
	echo "Command: bash contrib/bench/bench-nbd.sh KCOPY --size $SIZE_ARG --runs $RUNS --rate $RATE${KOPTS:+ --kcopy-opts '$KOPTS'}"
	echo
	echo "Load (other work may have been running on the machine):"
	echo
	echo "    before: $UPTIME_BEFORE"
	echo "    after:  $UPTIME_AFTER"
	echo
	echo "Source: a $SIZE_ARG file of random data on a private tmpfs.  Destinations:"
	echo "\`nbdkit -U SOCK -P PIDFILE memory $SIZE\` on Unix sockets, fresh servers for"
	echo "every run; the slow row puts the 4th export behind \`--filter=rate"
	echo "rate=$RATE\` (bits/s; $SIZE_ARG through it takes at least about $RATE_FLOOR s, less"
	echo "the filter's 2 s burst).  Median of $RUNS interleaved runs, page cache dropped"
	echo "before each.  nbdcopy runs with --flush (kcopy flushes every export before"
	echo "it exits).  Client CPU = user+sys of the tool and its children (GNU time or"
	echo "bash times); nbdkit CPU = user+sys of the servers during the run (from"
	echo "/proc); peak RSS = largest single process (GNU time %M)."
	echo
	echo "$TABLE"
	echo
	echo "Targets:"
	echo
	echo "$TARGETS"
	echo "- (for reference) 4 nbdcopy at once: ${MED[nbdcopypar]} s; kcopy 1→4 with one export at rate=$RATE: ${MED[kcopyslow]} s."
} > "$MD"

cat "$MD"
say "wrote $MD, $CSV, $RUNSCSV"

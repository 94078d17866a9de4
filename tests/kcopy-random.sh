#!/bin/bash
# Randomized differential test: random sources, regions, destinations and options, checked byte for byte against dd
# (KCOPY_RANDOM_SEED is the older name of KCOPY_TEST_SEED.)
[[ -n ${KCOPY_RANDOM_SEED:-} && -z ${KCOPY_TEST_SEED:-} ]] &&
	export KCOPY_TEST_SEED=$KCOPY_RANDOM_SEED
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

# KCOPY_RANDOM_ITERATIONS  number of iterations (default 25)
# KCOPY_TEST_SEED          seed (default: from the clock); printed first
# KCOPY_RANDOM_ITERATION   run only this iteration of that seed
#
# Every iteration builds a random copy: a source file or loop device
# (logical block 512 or 4096), a random aligned region of it, 1 to 5
# destinations (new files, existing files of other content that may have
# to grow, loop devices, the source's own file or device, a loop device
# with an offset over another target's file, twice the same file or device)
# at random aligned offsets, random --pages, --chunk and -s.  The expected
# result is built with dd from copies of everything taken before the run;
# every file (every byte of it, so untouched bytes too) must match.
# Some iterations add a destination overlapping another region on the same
# storage: kcopy must refuse with status 128 and change nothing.
# Every iteration runs; failures are listed at the end with how to rerun.

requires_root
requires_loop
requires jq cmp

ITERATIONS=${KCOPY_RANDOM_ITERATIONS:-25}
SEED=$TEST_SEED	# functions.sh's, from KCOPY_TEST_SEED or the clock
ONLY=${KCOPY_RANDOM_ITERATION:-}
echo "kcopy-random: seed $SEED, $ITERATIONS iterations (rerun: KCOPY_TEST_SEED=$SEED)" >&2

# rnd N: R = a random number in [0, N).  Never call it in $(...): a
# subshell's RANDOM would not advance ours.
R=0
rnd() {
	R=$((((RANDOM << 15) | RANDOM) % $1))
}

# Loop devices of the current iteration, detached at its end (and by the
# safety net of functions.sh should the test die).
ITER_LOOPS=()
attach() { # FILE [LOSETUP ARGS...] -> LOOP
	local file=$1 dev
	shift
	dev=$(losetup --find --show --direct-io=off "$@" "$file") ||
		fail "losetup $* $file failed"
	ITER_LOOPS+=("$dev $file")
	LOOP=$dev
}
detach_all() {
	local e dev file sysf i
	for e in "${ITER_LOOPS[@]}"; do
		dev=${e%% *} file=${e#* }
		sysf=/sys/block/${dev#/dev/}/loop/backing_file
		# Only ours: a freed device may already be someone else's.
		[[ $(cat "$sysf" 2>/dev/null) == "$file" ]] || continue
		losetup -d "$dev" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			[[ $(cat "$sysf" 2>/dev/null) == "$file" ]] || break
			sleep 0.1
		done
	done
	ITER_LOOPS=()
}

# fmt_sectors N: N as a spec number, sometimes as a byte size with suffix.
fmt_sectors() { # sets F
	local n=$1
	rnd 4
	if ((R == 0 && n > 0 && n % 2048 == 0)); then
		F=$((n / 2048))M
	elif ((R == 1 && n > 0 && n % 2 == 0)); then
		F=$((n / 2))K
	elif ((R == 2 && n > 0 && n % 2 == 0)); then
		F=$((n / 2))KiB
	else
		F=$n
	fi
}

FAILURES=()
iter_fail() {
	echo "FAIL (iteration $IT): $*" >&2
	FAILURES+=("iteration $IT: $*")
	return 1
}

# ------------------------------------------------------------ the model
# Storages (files): S_FILE, S_EXISTS (before the run), S_SIZE (bytes, if it
# exists).  Targets, 0 the source, then the destinations: T_PATH (what kcopy
# is given), T_STOR, T_BASE (byte offset of the target's sector 0 in its
# storage), T_LBS, T_LIMIT (sectors the target has, -1 for a destination
# file that may grow), T_SECT, T_ARG.
declare -a S_FILE S_EXISTS S_SIZE T_PATH T_STOR T_BASE T_LBS T_LIMIT T_SECT T_ARG T_KIND

new_storage() { # FILE EXISTS SIZE -> SID
	SID=${#S_FILE[@]}
	S_FILE[SID]=$1 S_EXISTS[SID]=$2 S_SIZE[SID]=$3
}

# overlaps_any T SECT COUNT: does region SECT/COUNT of target T overlap a
# region of an earlier target on the same storage?
overlaps_any() {
	local t=$1 s=$2 c=$3 u a0 a1 b0 b1
	a0=$((T_BASE[t] + s * 512))
	a1=$((a0 + c * 512))
	for ((u = 0; u < t; u++)); do
		[[ ${T_STOR[u]} == "${T_STOR[t]}" ]] || continue
		b0=$((T_BASE[u] + T_SECT[u] * 512))
		b1=$((b0 + COUNT * 512))
		((a0 < b1 && b0 < a1)) && return 0
	done
	return 1
}

# place T: a random aligned sector for destination T that fits and
# overlaps nothing; status 1 if none was found.
place() {
	local t=$1 al max try
	al=$((T_LBS[t] / 512))
	if ((T_LIMIT[t] >= 0)); then
		max=$((T_LIMIT[t] - COUNT))
		((max >= 0)) || return 1
	else
		max=$(((S_EXISTS[T_STOR[t]] ? S_SIZE[T_STOR[t]] / 512 : 0) + 3000))
	fi
	for ((try = 0; try < 40; try++)); do
		rnd $((max / al + 1))
		# Sector 0 now and then.
		((try == 0 && RANDOM % 4 == 0)) && R=0
		T_SECT[t]=$((R * al))
		overlaps_any "$t" "${T_SECT[t]}" "$COUNT" || return 0
	done
	return 1
}

# new_file_dest T: a destination file that does not exist yet.
new_file_dest() {
	local t=$1
	new_storage "$D/new$t.img" 0 0
	T_KIND[t]=new T_PATH[t]=$D/new$t.img T_STOR[t]=$SID T_BASE[t]=0
	T_LBS[t]=512 T_LIMIT[t]=-1
}

# ------------------------------------------------------------ iteration
run_iteration() {
	local nd t u k al kind size img args st err rep i sid
	local src_al want got overlap_case=0 bad
	S_FILE=() S_EXISTS=() S_SIZE=() T_PATH=() T_STOR=() T_BASE=()
	T_LBS=() T_LIMIT=() T_SECT=() T_ARG=() T_KIND=()
	D=$T/it$IT
	mkdir -p "$D"

	# --- destinations' kinds first: they decide the alignment of COUNT.
	rnd 5
	nd=$((R + 1))
	local -a kinds=()
	for ((t = 1; t <= nd; t++)); do
		rnd 100
		if ((R < 20)); then kinds[t]=new
		elif ((R < 38)); then kinds[t]=file
		elif ((R < 52)); then kinds[t]=loop512
		elif ((R < 64)); then kinds[t]=loop4096
		elif ((R < 78)); then kinds[t]=same
		elif ((R < 94)); then kinds[t]=alias
		else kinds[t]=samenew
		fi
	done

	# --- the source
	rnd 4
	case $R in
	0 | 1) kind=file ;;
	2) kind=loop512 ;;
	3) kind=loop4096 ;;
	esac
	rnd 2048
	size=$(((R + 1) * 4096))
	if [[ $kind == file ]]; then
		rnd 3
		# Sometimes a size that is not a multiple of 4096, or of 512.
		((R == 1)) && size=$((size + 512 * (RANDOM % 7 + 1)))
		((R == 2)) && size=$((size + RANDOM % 511 + 1))
	fi
	img=$D/src.img
	make_image "$img" "$size" "pattern:s$IT"
	new_storage "$img" 1 "$size"
	T_STOR[0]=$SID T_BASE[0]=0 T_KIND[0]=$kind
	case $kind in
	file)
		T_PATH[0]=$img T_LBS[0]=512 T_LIMIT[0]=$((size / 512))
		;;
	loop512 | loop4096)
		T_LBS[0]=${kind#loop}
		attach "$img" -b "${T_LBS[0]}"
		T_PATH[0]=$LOOP T_LIMIT[0]=$((size / T_LBS[0] * T_LBS[0] / 512))
		;;
	esac
	src_al=$((T_LBS[0] / 512))
	al=$src_al
	for ((t = 1; t <= nd; t++)); do
		[[ ${kinds[t]} == loop4096 || ${kinds[t]} == same ]] && al=8
	done

	# --- the region: COUNT a multiple of al, SECTOR of the source's block
	rnd $((T_LIMIT[0] / al))
	COUNT=$(((R + 1) * al))
	((COUNT > T_LIMIT[0])) && COUNT=$((T_LIMIT[0] / al * al))
	((COUNT > 0)) || { detach_all; rm -rf "$D"; return 0; }
	rnd $(((T_LIMIT[0] - COUNT) / src_al + 1))
	T_SECT[0]=$((R * src_al))
	local src_to_end=0
	rnd 5
	if ((R == 0 && size % 512 == 0)); then
		T_SECT[0]=$(((T_LIMIT[0] - COUNT) / src_al * src_al))
		COUNT=$((T_LIMIT[0] - T_SECT[0]))
		((COUNT % al == 0)) && src_to_end=1 ||
			COUNT=$((COUNT / al * al))
	fi
	if ((src_to_end)); then
		if ((T_SECT[0] == 0)); then
			T_ARG[0]=${T_PATH[0]}
		else
			fmt_sectors "${T_SECT[0]}"
			T_ARG[0]=${T_PATH[0]}:$F
		fi
	else
		fmt_sectors "${T_SECT[0]}"
		T_ARG[0]=${T_PATH[0]}:$F
		fmt_sectors "$COUNT"
		T_ARG[0]+=:$F
	fi

	# --- the destinations
	for ((t = 1; t <= nd; t++)); do
		kind=${kinds[t]}
		T_KIND[t]=$kind
		case $kind in
		new)
			new_file_dest "$t"
			;;
		file)
			rnd 1024
			size=$((R * 4096))
			rnd 2
			((R)) && size=$((size + RANDOM % 4096))
			img=$D/file$t.img
			make_image "$img" "$size" "pattern:d${IT}x$t"
			new_storage "$img" 1 "$size"
			T_PATH[t]=$img T_STOR[t]=$SID T_BASE[t]=0 T_LBS[t]=512 T_LIMIT[t]=-1
			;;
		loop512 | loop4096)
			T_LBS[t]=${kind#loop}
			rnd 256
			size=$(((COUNT * 512 + T_LBS[t] - 1) / 4096 * 4096 + R * 4096))
			((size >= COUNT * 512)) || size=$((size + 4096))
			img=$D/loop$t.img
			make_image "$img" "$size" "pattern:d${IT}x$t"
			new_storage "$img" 1 "$size"
			attach "$img" -b "${T_LBS[t]}"
			T_PATH[t]=$LOOP T_STOR[t]=$SID T_BASE[t]=0
			T_LIMIT[t]=$((size / T_LBS[t] * T_LBS[t] / 512))
			;;
		same)
			# the path of an earlier target: its file or its device
			rnd "$t"
			u=$R
			T_PATH[t]=${T_PATH[u]} T_STOR[t]=${T_STOR[u]} T_BASE[t]=${T_BASE[u]}
			T_LBS[t]=${T_LBS[u]} T_LIMIT[t]=${T_LIMIT[u]}
			# the source file as a destination may grow
			[[ $u == 0 && ${T_KIND[0]} == file ]] && T_LIMIT[t]=-1
			# with 512-byte alignment of COUNT, only 512-byte devices
			if [[ ${T_KIND[u]} == new || ${T_KIND[u]} == samenew ]]; then
				new_file_dest "$t"
			fi
			;;
		alias)
			# a loop device at an offset into an existing storage
			# file (the source's, another destination's)
			local -a cands=()
			for ((i = 0; i < ${#S_FILE[@]}; i++)); do
				((S_EXISTS[i] && S_SIZE[i] >= 8192 + COUNT * 512)) && cands+=("$i")
			done
			if ((${#cands[@]} == 0)); then
				new_file_dest "$t"
			else
				rnd ${#cands[@]}
				sid=${cands[R]}
				rnd $(((S_SIZE[sid] - COUNT * 512) / 4096))
				T_BASE[t]=$((R * 4096))
				attach "${S_FILE[sid]}" --offset "${T_BASE[t]}"
				T_PATH[t]=$LOOP T_STOR[t]=$sid T_LBS[t]=512
				T_LIMIT[t]=$(((S_SIZE[sid] - T_BASE[t]) / 512))
			fi
			;;
		samenew)
			# a second region of a new file an earlier destination
			# creates
			u=0
			for ((k = 1; k < t; k++)); do
				[[ ${T_KIND[k]} == new ]] && u=$k
			done
			if ((u)); then
				T_PATH[t]=${T_PATH[u]} T_STOR[t]=${T_STOR[u]} T_BASE[t]=0
				T_LBS[t]=512 T_LIMIT[t]=-1
			else
				new_file_dest "$t"
			fi
			;;
		esac
		if ! place "$t"; then
			# No room that overlaps nothing: a new file instead.
			new_file_dest "$t"
			place "$t" || fail "internal: cannot place a new file"
		fi
		if ((T_SECT[t] == 0 && RANDOM % 3 == 0)); then
			T_ARG[t]=${T_PATH[t]}
		else
			fmt_sectors "${T_SECT[t]}"
			T_ARG[t]=${T_PATH[t]}:$F
			if ((RANDOM % 3 == 0)); then
				fmt_sectors "$COUNT"
				T_ARG[t]+=:$F
			fi
		fi
	done

	# --- sometimes one more destination, overlapping an earlier region
	rnd 100
	if ((R < 15 && nd < 32)); then
		overlap_case=1
		t=$((nd + 1))
		nd=$t
		rnd "$t"
		u=$R
		sid=${T_STOR[u]}
		if ((S_EXISTS[sid] && RANDOM % 2)); then
			# through a loop device at an offset into u's file
			T_KIND[t]=overlap-alias
			local start=$((T_BASE[u] + T_SECT[u] * 512))
			rnd $((2 * COUNT - 1))
			start=$((start + (R - COUNT + 1) * 512))
			((start < 0)) && start=0
			rnd 4
			T_BASE[t]=$((start / 4096 * 4096 - R * 4096))
			((T_BASE[t] < 0)) && T_BASE[t]=0
			T_STOR[t]=$sid T_LBS[t]=512
			T_LIMIT[t]=$(((S_SIZE[sid] - T_BASE[t]) / 512))
			T_SECT[t]=$(((start - T_BASE[t]) / 512))
			((T_SECT[t] + COUNT > T_LIMIT[t])) && T_SECT[t]=$((T_LIMIT[t] - COUNT))
			if ((T_SECT[t] >= 0)); then
				attach "${S_FILE[sid]}" --offset "${T_BASE[t]}"
				T_PATH[t]=$LOOP
			fi
		else
			T_KIND[t]=overlap
			T_PATH[t]=${T_PATH[u]} T_STOR[t]=${T_STOR[u]} T_BASE[t]=${T_BASE[u]}
			T_LBS[t]=${T_LBS[u]} T_LIMIT[t]=${T_LIMIT[u]}
			[[ $u == 0 && ${T_KIND[0]} == file ]] && T_LIMIT[t]=-1
			k=$((T_LBS[t] / 512))
			# a shift of less than COUNT either way, aligned, that fits
			rnd $((2 * COUNT / k - 1))
			T_SECT[t]=$((T_SECT[u] + (R - COUNT / k + 1) * k))
			((T_SECT[t] < 0)) && T_SECT[t]=0
			if ((T_LIMIT[t] >= 0 && T_SECT[t] + COUNT > T_LIMIT[t])); then
				T_SECT[t]=$(((T_LIMIT[t] - COUNT) / k * k))
			fi
			((COUNT % k == 0)) || T_SECT[t]=-1
		fi
		T_ARG[t]=${T_PATH[t]:-}:${T_SECT[t]}
		if ((T_SECT[t] < 0)) || ! overlaps_any "$t" "${T_SECT[t]}" "$COUNT"; then
			overlap_case=0
			nd=$((nd - 1))	# could not make one: leave it out
		fi
	fi

	# --- options
	local -a opts=()
	rnd 3
	((R == 0)) && { rnd 4096; opts+=(--pages $((R + 1))); }
	((R == 1)) && { rnd 64; opts+=(--pages $((R + 1))); }
	rnd 2
	((R)) && { rnd 512; opts+=(--chunk $(((R + 1) * 4))K); }
	rnd 3
	((R == 0)) && opts+=(-s)

	# --- snapshot every existing storage, build the expectation
	for ((i = 0; i < ${#S_FILE[@]}; i++)); do
		if ((S_EXISTS[i])); then
			cp "${S_FILE[i]}" "$D/pre.$i"
			cp "${S_FILE[i]}" "$D/exp.$i"
		else
			rm -f "$D/exp.$i"
		fi
	done
	if ((!overlap_case)); then
		for ((t = 1; t <= nd; t++)); do
			dd if="$D/pre.${T_STOR[0]}" of="$D/exp.${T_STOR[t]}" bs=64K \
				iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc \
				skip=$((T_BASE[0] + T_SECT[0] * 512)) count=$((COUNT * 512)) \
				seek=$((T_BASE[t] + T_SECT[t] * 512)) status=none
		done
	fi

	args=("${opts[@]}" --report "$D/report.json" "${T_ARG[0]}")
	for ((t = 1; t <= nd; t++)); do
		args+=("${T_ARG[t]}")
	done
	local desc="kcopy ${args[*]}  [source ${T_KIND[0]}, destinations:"
	for ((t = 1; t <= nd; t++)); do
		desc+=" ${T_KIND[t]}"
	done
	desc+="]"
	echo "-- iteration $IT: $desc" >&2

	err=$D/stderr
	run_watchdog 60 "$KCOPY" "${args[@]}" 2>"$err" && st=0 || st=$?
	cat "$err" >&2
	bad=0
	if ((overlap_case)); then
		if [[ $st != 128 ]]; then
			iter_fail "$desc: overlapping destination $nd: status $st, expected 128" || bad=1
		elif ! grep -q "destination $nd '${T_ARG[nd]}': overlaps" "$err"; then
			iter_fail "$desc: no message that destination $nd overlaps" || bad=1
		fi
		[[ -e $D/report.json ]] && { iter_fail "$desc: report written for a setup error" || bad=1; }
	else
		if [[ $st != 0 ]]; then
			iter_fail "$desc: status $st, expected 0: $(tail -n 1 "$err")" || bad=1
		else
			[[ -s $err ]] && { iter_fail "$desc: stderr not empty" || bad=1; }
			rep=$D/report.json
			got=$(jq -r '"\(.bytes) \(.bytes_total) \(.read_err) \(.write_err) \(.exit_status)"' "$rep" 2>/dev/null) || got="unreadable"
			want="$((COUNT * 512)) $((COUNT * 512)) 0 0 0"
			[[ $got == "$want" ]] || { iter_fail "$desc: report bytes/bytes_total/read_err/write_err/exit_status '$got', expected '$want'" || bad=1; }
		fi
	fi
	# Every storage, every byte: as expected (unchanged for a setup error).
	for ((i = 0; i < ${#S_FILE[@]}; i++)); do
		if [[ -e $D/exp.$i ]]; then
			if [[ ! -e ${S_FILE[i]} ]]; then
				iter_fail "$desc: ${S_FILE[i]} was not created" || bad=1
			elif ! cmp "$D/exp.$i" "${S_FILE[i]}" >&2; then
				iter_fail "$desc: ${S_FILE[i]} differs from the expected content" || bad=1
			fi
		elif [[ -e ${S_FILE[i]} ]]; then
			iter_fail "$desc: ${S_FILE[i]} exists, but nothing should have created it" || bad=1
		fi
	done
	# The loop devices show the same through the device.
	if ((!bad)); then
		for ((t = 0; t <= nd; t++)); do
			[[ -b ${T_PATH[t]} ]] || continue
			want=$(sum "$D/exp.${T_STOR[t]}" "${T_BASE[t]}" $((T_LIMIT[t] * 512)))
			got=$(sum "${T_PATH[t]}" 0 $((T_LIMIT[t] * 512)))
			[[ $got == "$want" ]] || { iter_fail "$desc: ${T_PATH[t]} reads back differently" || bad=1; }
		done
	fi
	detach_all
	# A failed iteration's files stay for a look (KCOPY_TEST_KEEP=1).
	((bad)) || rm -rf "$D"
	return 0
}

for ((IT = 1; IT <= ITERATIONS; IT++)); do
	[[ -n $ONLY && $ONLY != "$IT" ]] && continue
	RANDOM=$((SEED * 1000 + IT))
	run_iteration
done

if ((${#FAILURES[@]})); then
	echo "kcopy-random: ${#FAILURES[@]} failed iteration(s), seed $SEED:" >&2
	printf '  %s\n' "${FAILURES[@]}" >&2
	echo "rerun one: KCOPY_TEST_SEED=$SEED KCOPY_RANDOM_ITERATION=N" >&2
	fail "kcopy-random: seed $SEED"
fi
echo PASS >&2
exit 0

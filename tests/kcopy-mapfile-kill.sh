#!/bin/bash
# --mapfile: a 512 MiB copy to 3 loop devices and a file, killed with
# SIGKILL at 20 random moments and resumed each time: after every kill each
# '+' range of the mapfile already holds the source on every destination
# (read with O_DIRECT); the last run copies the rest and exits 0.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires_loop
requires python3 jq

SIZE=$((512 * 1024 * 1024))
KILLS=${KCOPY_MAPFILE_KILLS:-20}
ram=$(make_tmpfs 2200m)
SRC=$ram/src.img
make_image "$SRC" "$SIZE" random
DESTS=()
for i in 1 2 3; do
	make_image "$ram/d$i.img" "$SIZE" zero
	DESTS+=("$(make_loop "$ram/d$i.img")")
done
# The file on the disk's file system: tmpfs may not take O_DIRECT.
DESTS+=("$T/out.img")
MAP=$T/copy.map

kills=0 grew=0 last=0 extra=0
while ((kills < KILLS)); do
	"$KCOPY" --rate 24M --mapfile-interval 0.5 --mapfile "$MAP" "$SRC" \
		"${DESTS[@]}" 2>>"$T/runs.err" &
	pid=$!
	# The first 16 MiB piece is '+' about 0.9 s into a run at 24 MB/s:
	# kills from 0.7 to 1.7 s let most runs add to the mapfile (from 0.4
	# to 1.2 s, 5 of 20 did only most of the time).  On a loaded machine
	# the first piece comes later: each kill that finds no new '+' range
	# puts the next ones 0.25 s later (up to 2 s), each that finds one
	# brings them back as much, so that enough runs grow the mapfile.
	ms=$((700 + extra + RANDOM % 1000))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	pid_alive "$pid" || fail "run $((kills + 1)) ended before its kill: $(tail -n 3 "$T/runs.err")"
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	kills=$((kills + 1))
	if [[ ! -e $MAP ]]; then
		((extra < 2000)) && extra=$((extra + 250))
		continue
	fi
	plus=$(mapfile_holds "$MAP" "$SRC" "${DESTS[@]}") || fail "after kill $kills: a '+' range is not on every destination"
	echo "kill $kills after $ms ms: $plus bytes '+' ($SECONDS s)" >&2
	((plus >= last)) || fail "after kill $kills: '+' shrank from $last to $plus"
	if ((plus > last)); then
		grew=$((grew + 1))
		((extra > 0)) && extra=$((extra - 250))
	else
		((extra < 2000)) && extra=$((extra + 250))
	fi
	last=$plus
done
((grew >= 5)) || fail "the mapfile grew after only $grew of $KILLS kills"
# A SIGKILL while the mapfile is written leaves its temporary file (the
# mapfile itself is whole); a run that ends leaves none of its own.
temps=$(find "$T" -maxdepth 1 -name '.kcopy-map.*' | wc -l)

t0=$SECONDS
kcopy_expect ok --report "$T/r.json" --mapfile "$MAP" "$SRC" "${DESTS[@]}"
grep -q "resuming: $last of $SIZE bytes done" "$ERR_FILE" ||
	fail "the last run did not resume from $last bytes"
echo "the last run took $((SECONDS - t0)) s" >&2
assert_eq "$(find "$T" -maxdepth 1 -name '.kcopy-map.*' | wc -l)" "$temps" \
	"temporary mapfiles after the last run"
# All of it '+': every destination equals the source.
assert_eq "$(mapfile_holds "$MAP" "$SRC" "${DESTS[@]}")" "$SIZE" "'+' bytes at the end"
assert_eq "$(jq -r .bytes "$T/r.json")" "$SIZE" "report bytes (the whole copy)"
assert_eq "$(jq -r .exit_status "$T/r.json")" 0 "report exit_status"
echo "$KILLS kills, the mapfile grew after $grew"

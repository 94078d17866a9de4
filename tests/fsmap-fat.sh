#!/bin/bash
# The FAT map reader (src/kcopy/fs-fat.c) through tests/fsmap-dump, no root
# needed: FAT12 (4 MiB), FAT16 (64 MiB) and FAT32 (300 MiB) made by
# mkfs.vfat over random bytes, a big file written and deleted (old data in
# free clusters), then files of assorted sizes and a subdirectory.  The
# used bytes must be the reserved sectors, FATs and root directory (from
# the boot sector, read here with od) plus the clusters fsck.vfat counts
# in use; the used ranges copied over other random bytes must make a
# volume fsck.vfat passes, with every file and the listing as in the
# source.  Then a cluster marked bad counts as used, the boot sector's
# dirty flag and FAT[1]'s clean and error bits are reported, and a
# truncated image and a bad BPB field are refused with the field named.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires mkfs.vfat fsck.vfat mcopy mdel mdir mmd cmp od
DUMP=$(__abspath "${FSMAP_DUMP:-$top_builddir/tests/fsmap-dump}")
[[ -x $DUMP ]] || fail "fsmap-dump not built ($DUMP): make tests/fsmap-dump"
export MTOOLS_SKIP_CHECK=1

MiB=$((1024 * 1024))

# put IMG NAME SIZE: a random file of SIZE bytes as ::/NAME, kept in
# $FILES/NAME to compare against.
put() {
	mkdir -p "$(dirname "$FILES/$2")"
	head -c "$3" /dev/urandom >"$FILES/$2"
	mcopy -i "$1" "$FILES/$2" "::/$2" || fail "mcopy $2 into $1"
	NAMES+=("$2")
}

check_fat() {
	local bits=$1 size=$(($2 * MiB)) img=$T/fat$1.img dest=$T/fat$1.dest
	local bps spc rsvd nfats roots tot fatsz first clusters csize
	local fsck used total want line got name n fat1 cb eb before
	local -a NAMES=()
	FILES=$T/files$bits
	mkdir -p "$FILES/sub"

	make_image "$img" "$size" random
	mkfs.vfat -F "$bits" "$img" >/dev/null || fail "mkfs.vfat -F $bits"
	head -c $((size * 2 / 3)) /dev/urandom >"$T/big"
	mcopy -i "$img" "$T/big" ::/big || fail "FAT$bits: mcopy big"
	mdel -i "$img" ::/big || fail "FAT$bits: mdel big"
	rm -f "$T/big"
	for n in 0 1 511 512 4097 $((MiB + 3)) $((RANDOM * 8 + RANDOM % 512)); do
		put "$img" "f$n" "$n"
	done
	mmd -i "$img" ::/sub || fail "FAT$bits: mmd sub"
	for n in 3 2048 $((RANDOM * 4)); do
		put "$img" "sub/g$n" "$n"
	done

	# The layout by the boot sector, and fsck.vfat's count of clusters.
	bps=$(le "$img" 11 2)
	spc=$(le "$img" 13 1)
	rsvd=$(le "$img" 14 2)
	nfats=$(le "$img" 16 1)
	roots=$(le "$img" 17 2)
	tot=$(le "$img" 19 2)
	((tot)) || tot=$(le "$img" 32 4)
	fatsz=$(le "$img" 22 2)
	((fatsz)) || fatsz=$(le "$img" 36 4)
	first=$((rsvd + nfats * fatsz + (roots * 32 + bps - 1) / bps))
	clusters=$(((tot - first) / spc))
	csize=$((spc * bps))
	fsck=$(fsck.vfat -n -v "$img" 2>&1) || fail "FAT$bits: fsck.vfat source: $fsck"
	line=$(tail -n 1 <<<"$fsck")
	[[ $line =~ ([0-9]+)/([0-9]+)\ clusters ]] ||
		fail "FAT$bits: no cluster count from fsck.vfat: $line"
	used=${BASH_REMATCH[1]}
	total=${BASH_REMATCH[2]}
	assert_eq "$total" "$clusters" "FAT$bits: clusters by fsck.vfat and by the BPB"
	want=$((first * bps + used * csize))

	line=$(fsmap_dump "$img" | head -n 1)
	assert_eq "$line" "vfat $csize $((tot * bps)) $want $(fsmap_dump "$img" | sed 1d | wc -l) clean" \
		"FAT$bits: fsmap-dump's summary"
	# The first range starts at 0 and spans at least up to the clusters.
	read -r got n < <(fsmap_dump "$img" | sed -n 2p)
	assert_eq "$got" 0 "FAT$bits: first range"
	((n >= first * bps)) || fail "FAT$bits: first range $n bytes, below $((first * bps))"

	# The used ranges over other random bytes: a whole volume.
	make_image "$dest" "$size" random
	fsmap_dump "$img" "$dest" >/dev/null
	fsck=$(fsck.vfat -n "$dest" 2>&1) || fail "FAT$bits: fsck.vfat of the copy: $fsck"
	for name in "${NAMES[@]}"; do
		mcopy -n -i "$dest" "::/$name" - >"$T/out" ||
			fail "FAT$bits: mcopy $name from the copy"
		cmp "$T/out" "$FILES/$name" || fail "FAT$bits: $name differs in the copy"
	done
	assert_eq "$(mdir -/ -a -i "$dest" ::/)" "$(mdir -/ -a -i "$img" ::/)" \
		"FAT$bits: listing of the copy"

	# The last cluster, free after the files, marked bad: used.
	n=$((clusters + 1))
	before=$(fsmap_field "$img" 4)
	case $bits in
	12)
		got=$(le "$img" $((rsvd * bps + n + n / 2)) 2)
		if ((n & 1)); then
			((got >> 4 == 0)) || fail "FAT12: cluster $n not free"
			got=$(((got & 0xf) | 0xff70))
		else
			((got & 0xfff)) && fail "FAT12: cluster $n not free"
			got=$(((got & 0xf000) | 0xff7))
		fi
		poke "$img" $((rsvd * bps + n + n / 2)) $((got & 255))
		poke "$img" $((rsvd * bps + n + n / 2 + 1)) $((got >> 8))
		;;
	16)
		assert_eq "$(le "$img" $((rsvd * bps + 2 * n)) 2)" 0 "FAT16: cluster $n free"
		poke "$img" $((rsvd * bps + 2 * n)) 0xf7
		poke "$img" $((rsvd * bps + 2 * n + 1)) 0xff
		;;
	32)
		assert_eq "$(le "$img" $((rsvd * bps + 4 * n)) 4)" 0 "FAT32: cluster $n free"
		poke "$img" $((rsvd * bps + 4 * n)) 0xf7
		poke "$img" $((rsvd * bps + 4 * n + 1)) 0xff
		poke "$img" $((rsvd * bps + 4 * n + 2)) 0xff
		poke "$img" $((rsvd * bps + 4 * n + 3)) 0x0f
		;;
	esac
	assert_eq "$(fsmap_field "$img" 4)" $((before + csize)) "FAT$bits: a bad cluster is used"
	assert_eq "$(fsmap_dump "$img" | tail -n 1 | awk '{ print $1 + $2 }')" \
		$(((first + clusters * spc) * bps)) "FAT$bits: the bad cluster's range ends the volume"

	# The boot sector's dirty flag.
	if ((bits == 32)); then n=0x41; else n=0x25; fi
	poke "$img" $((n)) 1
	assert_eq "$(fsmap_field "$img" 6-)" "marked dirty (boot sector byte $n bit 0)" \
		"FAT$bits: dirty flag"
	poke "$img" $((n)) 0
	assert_eq "$(fsmap_field "$img" 6)" clean "FAT$bits: dirty flag cleared"
	# FAT[1]'s clean and error bits: bits 15 and 14 on FAT16, in its
	# second byte; 27 and 26 on FAT32, in its fourth.  FAT12 has none.
	if ((bits != 12)); then
		if ((bits == 16)); then
			fat1=$((rsvd * bps + 3)) cb=15 eb=14
		else
			fat1=$((rsvd * bps + 7)) cb=27 eb=26
		fi
		poke "$img" $fat1 $(($(le "$img" $fat1 1) & ~(1 << cb % 8) & 255))
		assert_eq "$(fsmap_field "$img" 6-)" \
			"not cleanly unmounted (FAT[1] bit $cb clear)" "FAT$bits: clean bit"
		poke "$img" $fat1 $(($(le "$img" $fat1 1) & ~(1 << eb % 8) & 255))
		poke "$img" $((n)) 1
		assert_eq "$(fsmap_field "$img" 6-)" \
			"marked dirty (boot sector byte $n bit 0); not cleanly unmounted (FAT[1] bit $cb clear); disk errors recorded (FAT[1] bit $eb clear)" \
			"FAT$bits: all three"
	fi

	# Refused: a volume longer than its source, a bad field.
	truncate -s $((tot * bps - csize)) "$img"
	"$DUMP" "$img" >/dev/null 2>"$T/err" && fail "FAT$bits: truncated image accepted"
	grep -q "BPB_TotSec.*past the end" "$T/err" ||
		fail "FAT$bits: truncated image: $(cat "$T/err")"
	truncate -s "$size" "$img"
	# (Fields libblkid checks itself, BPB_SecPerClus say, never get here.)
	if ((bits == 32)); then
		poke "$img" 50 $((rsvd + 1))
		poke "$img" 51 0
		want="BPB_BkBootSec $((rsvd + 1)) past the $rsvd reserved sectors"
	else
		poke "$img" 22 1
		poke "$img" 23 0
		n=$(((tot - rsvd - nfats - (roots * 32 + bps - 1) / bps) / spc))
		want="BPB_FATSz16 1 sectors: too small for $n clusters"
	fi
	"$DUMP" "$img" >/dev/null 2>"$T/err" && fail "FAT$bits: $want: accepted"
	grep -qF "Structure needs cleaning ($want)" "$T/err" ||
		fail "FAT$bits: $want: $(cat "$T/err")"
	rm -rf "$img" "$dest" "$FILES"
}

check_fat 12 4
check_fat 16 64
check_fat 32 300

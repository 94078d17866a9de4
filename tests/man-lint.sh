#!/bin/bash
# Man pages: every man/*.1 and man/*.3 passes mandoc -Tlint with no warning
# (groff -ww -z without mandoc), no page is a .so stub (a second name is a
# link made at install: man3_links in Makefile.am), every example (.EX)
# ends (.EE) before the text goes on, and kcopy(1) renders the sentences a
# font macro once glued together as words.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

if command -v mandoc >/dev/null 2>&1; then
	lint=mandoc
elif command -v groff >/dev/null 2>&1; then
	lint=groff
else
	skip "neither mandoc nor groff is installed"
fi

pages=("$top_srcdir"/man/*.1 "$top_srcdir"/man/*.3)
[[ ${#pages[@]} -ge 20 && -f ${pages[0]} ]] ||
	fail "found only ${#pages[@]} man pages in $top_srcdir/man"

bad=()
for p in "${pages[@]}"; do
	name=${p##*/}
	if [[ $(head -n 1 "$p") == .so* ]]; then
		bad+=("$name: a .so stub (list it in man3_links instead)")
		continue
	fi
	if [[ $lint == mandoc ]]; then
		out=$(mandoc -Tlint -W warning "$p" 2>&1) || true
	else
		out=$(groff -ww -z -man "$p" 2>&1) || true
	fi
	[[ -z $out ]] || bad+=("$out")
	# .EX to .EE holds the example only: no new paragraph, section or
	# example before its .EE (the text after it would print unfilled).
	out=$(awk -v f="$name" '
		/^\.EX/ { if (ex) print f ":" NR ": .EX inside the example of line " ex; ex = NR; next }
		/^\.EE/ { if (!ex) print f ":" NR ": .EE without .EX"; ex = 0; next }
		ex && /^\.(SH|SS|PP|P|LP|TP|IP|HP)( |$)/ {
			print f ":" NR ": " $1 " inside the example of line " ex; ex = 0 }
		END { if (ex) print f ": the example of line " ex " has no .EE" }' "$p")
	[[ -z $out ]] || bad+=("$out")
done

# kcopy(1) as a reader sees it, white space folded.
if [[ $lint == mandoc ]]; then
	text=$(mandoc -Tascii "$top_srcdir/man/kcopy.1" | col -bx)
else
	text=$(groff -man -Tascii -P-c "$top_srcdir/man/kcopy.1" 2>/dev/null | col -bx)
fi
flat=$(tr -s ' \n' '  ' <<<"$text")
for want in "see STREAMS), and a destination reaching the file size limit" \
	"clone.json Write a compressed image to two disks"; do
	grep -qF -- "$want" <<<"$flat" || bad+=("kcopy.1 does not render '$want'")
done
# The paragraph after an example is filled text at the section's indent.
grep -qE '^       Write +a +compressed +image' <<<"$text" ||
	bad+=("kcopy.1: the paragraph after the sha256 example is not filled text")
for peer in bmaptool partclone qemu-img dc3dd ddrescue nbdcopy; do
	sed -n '/^SEE ALSO/,$p' <<<"$text" | grep -qE "(^|[ ,])$peer\([18]\)" ||
		bad+=("kcopy.1: SEE ALSO does not name $peer")
done

if ((${#bad[@]})); then
	printf '%s\n' "${bad[@]}" >&2
	fail "${#bad[@]} man page problem(s) ($lint)"
fi
echo "man-lint: ${#pages[@]} pages clean ($lint)"

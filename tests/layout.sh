#!/bin/bash
# Layout: no two source files call into each other, directly or around a
# cycle, in the library or in the tool (kcopy.h and kcopyd-private.h say
# who calls whom).  Read from the symbols of the objects the build made.
. "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires nm python3

lib_objs=("$top_builddir"/src/.libs/*.o)
[[ -e ${lib_objs[0]} ]] || lib_objs=("$top_builddir"/src/*.o)
tool_objs=("$top_builddir"/src/kcopy/kcopy-*.o)
[[ -e ${lib_objs[0]} && -e ${tool_objs[0]} ]] || fail "objects not built"

# Prints one line per cycle: the files and the functions of the first edge.
cycles() {
	python3 - "$@" <<'PY'
import os, subprocess, sys

defined, used = {}, {}
for obj in sys.argv[1:]:
    name = os.path.basename(obj)
    defined[name], used[name] = set(), set()
    out = subprocess.run(["nm", obj], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "TDBR":
            defined[name].add(f[2])
        elif len(f) == 2 and f[0] == "U":
            used[name].add(f[1])
calls = {a: {b for b in defined if b != a and used[a] & defined[b]}
         for a in defined}

def path(a, goal, seen):
    for b in sorted(calls[a]):
        if b == goal:
            return [b]
        if b not in seen:
            seen.add(b)
            rest = path(b, goal, seen)
            if rest:
                return [b] + rest
    return None

for a in sorted(calls):
    back = path(a, a, set())
    if back:
        first = sorted(used[a] & defined[back[0]])
        print(" -> ".join([a] + back), "(" + ", ".join(first) + ")")
PY
}

found=$(cycles "${lib_objs[@]}" ; cycles "${tool_objs[@]}")
[[ -z $found ]] || fail "files that call each other:
$found"
echo "no cycles among ${#lib_objs[@]} library and ${#tool_objs[@]} tool objects"

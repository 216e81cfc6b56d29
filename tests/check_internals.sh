#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check_internals.sh SRCDIR - every "path:function()" that docs/internals.rst
# names must be a function defined in that file, so the page's walk through
# the code cannot go stale unnoticed.
set -u
src=${1:?usage: check_internals.sh SRCDIR}
doc=$src/docs/internals.rst
[ -f "$doc" ] || { echo "check_internals: $doc is missing" >&2; exit 1; }

fail=0 n=0
# Each reference: a path with a slash and a .c/.h ending, a colon, a C
# identifier and "()".
while IFS= read -r ref; do
	file=${ref%%:*}
	fn=${ref#*:}
	fn=${fn%()}
	n=$((n + 1))
	if [ ! -f "$src/$file" ]; then
		echo "check_internals: $ref: no file $file" >&2
		fail=1
		continue
	fi
	# A definition: the name at the start of a declarator followed by "(",
	# on a line that does not end in ";" (a prototype or a call).
	if ! grep -Eq "^([a-z_].*[ *])?$fn\(.*[^;]\$|^([a-z_].*[ *])?$fn\(\$" \
		"$src/$file"; then
		echo "check_internals: $ref: $fn() is not defined in $file" >&2
		fail=1
	fi
done < <(grep -oE '[a-z_]+(/[a-z_]+)+\.[ch]:[A-Za-z_][A-Za-z0-9_]*\(\)' "$doc" | sort -u)

if [ "$n" -eq 0 ]; then
	echo "check_internals: no path:function() reference found in $doc" >&2
	exit 1
fi
[ "$fail" -eq 0 ] && echo "check_internals: $n references, all defined"
exit "$fail"

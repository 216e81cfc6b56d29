#!/usr/bin/env bash
# The shared library exports exactly the symbols listed in lib/librmig.map,
# all versioned, and nothing else (no provider or internal symbol leaks).
set -euo pipefail
lib=$1 map=$2
want=$(sed -n 's/^[[:space:]]*\(rmig_[a-z0-9_]*\);/\1/p' "$map" | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' |
       sed 's/@.*//' | sort)
if [ "$want" != "$have" ]; then
	echo "exported symbols differ from $map:"
	diff <(echo "$want") <(echo "$have") || true
	exit 1
fi
unversioned=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ && $3 !~ /@@RMIG_/ {print $3}')
if [ -n "$unversioned" ]; then
	echo "unversioned exports: $unversioned"
	exit 1
fi
echo "exports ok: $(echo "$want" | wc -l) symbols"

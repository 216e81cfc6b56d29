# SPDX-License-Identifier: MIT
#
# bench-stats.sh - statistics helpers sourced by bench-loopback.sh and
# bench-rxe.sh.  Lists are space-separated numbers.

# stats "V1 V2 ...": "min median max" (median of an even count: the mean
# of the middle two); "- - -" when empty.
stats() {
	tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 }
		END { if (!NR) { print "- - -"; exit }
		      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "%.2f %.2f %.2f\n", v[1], m, v[NR] }'
}

# spread "S1 S2 ...": (slowest - fastest) / fastest, in percent; "-" when
# empty.
spread() {
	tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 }
		END { if (!NR) { print "-"; exit }
		      printf "%.1f\n", (v[1] > 0) ? (v[NR] - v[1]) / v[1] * 100 : 0 }'
}

# ratio A B: A / B with 3 decimals; "-" when either is missing or B <= 0.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.3f\n", a / b }'
}

# jlist "V1 V2 ...": "V1,V2,..." for a JSON array.
jlist() { tr -s ' ' <<<"$1" | sed 's/^ //; s/ $//; s/ /,/g'; }

# jval V: V, or null for "-".
jval() { if [ "$1" = - ]; then echo null; else echo "$1"; fi; }

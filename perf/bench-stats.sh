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

# paired "C1 C2 ..." "B1 B2 ...": the median of the run-by-run ratios
# Ci / Bi (3 decimals), "-" when the lists are empty or of unequal length.
# Current and baseline alternate within a run, so each pair shared the
# machine's state of the moment: a slow spell spanning a few runs moves the
# medians of both lists apart but leaves the paired ratios alone.
paired() {
	awk -v c="$1" -v b="$2" 'BEGIN {
		n = split(c, cv, " "); m = split(b, bv, " ")
		if (!n || n != m) { print "-"; exit }
		for (i = 1; i <= n; i++) {
			if (bv[i] <= 0) { print "-"; exit }
			r[i] = cv[i] / bv[i]
		}
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
		printf "%.3f\n", (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2 }'
}

# order_for RUN: sets the array order to the trees (array trees: cur, or
# cur base) in the order run RUN measures them: current first in odd runs,
# the baseline first in even ones, so that whatever favours the first (or
# the second) of two back-to-back processes weighs on both trees alike.
order_for() {
	order=("${trees[@]}")
	if [ "${#trees[@]}" -eq 2 ] && [ $(($1 % 2)) -eq 0 ]; then
		order=(base cur)
	fi
}

# jlist "V1 V2 ...": "V1,V2,..." for a JSON array.
jlist() { tr -s ' ' <<<"$1" | sed 's/^ //; s/ $//; s/ /,/g'; }

# jval V: V, or null for "-".
jval() { if [ "$1" = - ]; then echo null; else echo "$1"; fi; }

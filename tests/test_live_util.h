/* SPDX-License-Identifier: MIT */
/*
 * test_live_util - what the live-migration tests share: reserving 2 MiB
 * huge pages for a hugetlb guest and giving them back.
 */
#ifndef RMIG_TEST_LIVE_UTIL_H
#define RMIG_TEST_LIVE_UTIL_H

#include <stdbool.h>
#include <stddef.h>

struct hugepage_reservation {
	bool changed;      /* nr_hugepages was raised: restore old_nr */
	long old_nr;
};

/*
 * Make sure @n free 2 MiB huge pages exist: when fewer are free, raise
 * /proc/sys/vm/nr_hugepages by the difference (root).  0, or -1 with the
 * reason in @err (the caller skips with it).
 */
int hugepages_reserve(struct hugepage_reservation *r, size_t n, char *err,
		      size_t errlen);
/* Give back what hugepages_reserve() added. */
void hugepages_release(struct hugepage_reservation *r);

#endif /* RMIG_TEST_LIVE_UTIL_H */

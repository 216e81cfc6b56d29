/* SPDX-License-Identifier: MIT */
/*
 * test_live_util - huge-page reservation for the live tests (see
 * test_live_util.h).
 */
#include "test_live_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NR_PATH "/proc/sys/vm/nr_hugepages"

static long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;
	size_t k = strlen(key);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, k) && line[k] == ':') {
			sscanf(line + k + 1, "%ld", &v);
			break;
		}
	fclose(f);
	return v;
}

static long read_nr(void)
{
	FILE *f = fopen(NR_PATH, "r");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int write_nr(long v)
{
	FILE *f = fopen(NR_PATH, "w");
	int ret = 0;

	if (!f)
		return -errno;
	if (fprintf(f, "%ld\n", v) < 0)
		ret = -EIO;
	if (fclose(f))
		ret = -errno;
	return ret;
}

int hugepages_reserve(struct hugepage_reservation *r, size_t n, char *err,
		      size_t errlen)
{
	long size_kb = meminfo("Hugepagesize");
	long free_pages = meminfo("HugePages_Free");
	long nr;
	int ret;

	r->changed = false;
	if (size_kb != 2048) {
		snprintf(err, errlen, "the default huge page size is %ld kB, "
			 "not 2048 (or there are no huge pages)", size_kb);
		return -1;
	}
	if (free_pages >= (long)n)
		return 0;
	nr = read_nr();
	if (nr < 0) {
		snprintf(err, errlen, "cannot read %s", NR_PATH);
		return -1;
	}
	ret = write_nr(nr + ((long)n - free_pages));
	if (ret) {
		snprintf(err, errlen, "only %ld free 2 MiB huge pages, %zu "
			 "needed, and %s cannot be raised: %s", free_pages, n,
			 NR_PATH, strerror(-ret));
		return -1;
	}
	r->changed = true;
	r->old_nr = nr;
	free_pages = meminfo("HugePages_Free");
	if (free_pages < (long)n) {
		snprintf(err, errlen, "raised %s to %ld but only %ld huge "
			 "pages are free, %zu needed (memory too fragmented)",
			 NR_PATH, nr + (long)n, free_pages, n);
		hugepages_release(r);
		return -1;
	}
	return 0;
}

void hugepages_release(struct hugepage_reservation *r)
{
	if (!r->changed)
		return;
	if (write_nr(r->old_nr))
		fprintf(stderr, "warning: could not restore %s to %ld\n",
			NR_PATH, r->old_nr);
	r->changed = false;
}

/* SPDX-License-Identifier: MIT */
/*
 * dirty - which pages of a memory range were written, tracked with
 * userfaultfd write-protection (what a hypervisor's dirty log does for a
 * VM's RAM; here for rmig-migrate's guest, see guest.h).
 *
 * Two modes, chosen at run time (dirty_open() with DIRTY_AUTO) or forced:
 *
 *   async  UFFD_FEATURE_WP_ASYNC (Linux 6.7+): the kernel resolves a write
 *          to a write-protected page by itself and leaves the page marked
 *          written; dirty_harvest() reads the written pages back and
 *          write-protects them again in one PAGEMAP_SCAN ioctl
 *          (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, category
 *          PAGE_IS_WRITTEN) on /proc/self/pagemap.  No fault reaches user
 *          space.
 *   sync   the classic write-protect fault: a thread reads each fault off
 *          the userfaultfd, sets the page's bit and removes the protection;
 *          dirty_harvest() takes the bits and protects those pages again.
 *
 * memfd (shmem) and hugetlbfs memory need UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
 * WP_UNPOPULATED is used where offered.  What the kernel lacks is reported
 * by dirty_open() with a message naming the feature.
 */
#ifndef RMIG_TOOLS_DIRTY_H
#define RMIG_TOOLS_DIRTY_H

#include <stddef.h>
#include <stdint.h>

#include "guest.h"

enum dirty_mode { DIRTY_AUTO = 0, DIRTY_ASYNC = 1, DIRTY_SYNC = 2 };

struct dirty;

/* "auto|async|sync"; 0 or -1. */
int dirty_parse_mode(const char *s, enum dirty_mode *out);
/* "uffd-wp-async+pagemap-scan", "uffd-wp-sync", "auto" */
const char *dirty_mode_name(enum dirty_mode m);

/*
 * Register [@base, @base+@len) (page-aligned to @page_size, memory of type
 * @mem) for write-protect tracking in mode @want.  Nothing is protected
 * yet (see dirty_start()).  0, or -errno with a message in @err:
 * -ENOSYS/-EPERM (no userfaultfd), -EOPNOTSUPP (the mode or the memory
 * type is not supported by this kernel; the message names the feature).
 */
int dirty_open(struct dirty **out, void *base, size_t len, size_t page_size,
	       enum guest_mem mem, enum dirty_mode want, char *err,
	       size_t errlen);

/* The mode in use (async or sync). */
enum dirty_mode dirty_mode(const struct dirty *d);
/* The features UFFDIO_API reported for this kernel. */
uint64_t dirty_kernel_features(const struct dirty *d);
/* Write faults handled by the sync mode's thread (0 in async mode). */
uint64_t dirty_faults(const struct dirty *d);

/* Write-protect the whole range and forget earlier writes: from now on
 * every written page is reported.  0 or -errno with @err. */
int dirty_start(struct dirty *d, char *err, size_t errlen);

/*
 * OR into the bitmap @bits (one bit per page, page i = bit i%64 of word
 * i/64) every page written since dirty_start() or the last harvest, and
 * protect those pages again.  *@newly gets the number of bits that were
 * clear before.  A page written while the harvest runs is reported by
 * this harvest or by the next.  0 or -errno with @err.
 */
int dirty_harvest(struct dirty *d, uint64_t *bits, uint64_t *newly, char *err,
		  size_t errlen);

/* A new userfaultfd (O_CLOEXEC | O_NONBLOCK, user-mode faults only): the
 * syscall, else /dev/userfaultfd.  The descriptor, or -1 with errno. */
int dirty_uffd_new(void);

/* Remove every protection, unregister, stop the thread, close: the memory
 * is writable as before dirty_open(), its content untouched.  NULL ok. */
void dirty_close(struct dirty *d);

#endif /* RMIG_TOOLS_DIRTY_H */

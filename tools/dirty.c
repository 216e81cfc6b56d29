/* SPDX-License-Identifier: MIT */
/*
 * dirty - write tracking with userfaultfd write-protection (see dirty.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "dirty.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Kernel ABI newer than this system's headers (Debian 12 ships the 6.1
 * UAPI); the values are fixed UAPI (include/uapi/linux/userfaultfd.h and
 * include/uapi/linux/fs.h of Linux 6.7). */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1ull << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1ull << 15)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#ifndef PAGEMAP_SCAN
#define PAGE_IS_WRITTEN (1ull << 1)
#define PM_SCAN_WP_MATCHING (1ull << 0)
#define PM_SCAN_CHECK_WPASYNC (1ull << 1)
struct page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};
struct pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#define SCAN_VEC 1024 /* page_region entries per PAGEMAP_SCAN call */
#define PROTECT_CHUNK 64 /* pages per lock hold in the sync harvest */

struct dirty {
	enum dirty_mode mode;
	int uffd;
	int pagemap;      /* async: /proc/self/pagemap */
	uint8_t *base;
	size_t len;
	size_t page_size;
	uint64_t pages;
	uint64_t features; /* what the kernel offers */
	struct page_region *vec;

	/* sync mode */
	_Atomic uint64_t *fault_bits;
	pthread_mutex_t lock; /* fault bit + unprotect vs. take + protect */
	pthread_t thread;
	bool thread_started;
	int stop_pipe[2];
	_Atomic uint64_t faults;
	_Atomic int thread_err; /* errno of a failed fault-thread ioctl */
};

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

int dirty_parse_mode(const char *s, enum dirty_mode *out)
{
	if (!strcmp(s, "auto"))
		*out = DIRTY_AUTO;
	else if (!strcmp(s, "async"))
		*out = DIRTY_ASYNC;
	else if (!strcmp(s, "sync"))
		*out = DIRTY_SYNC;
	else
		return -1;
	return 0;
}

const char *dirty_mode_name(enum dirty_mode m)
{
	switch (m) {
	case DIRTY_ASYNC:
		return "uffd-wp-async+pagemap-scan";
	case DIRTY_SYNC:
		return "uffd-wp-sync";
	default:
		return "auto";
	}
}

enum dirty_mode dirty_mode(const struct dirty *d)
{
	return d->mode;
}

uint64_t dirty_kernel_features(const struct dirty *d)
{
	return d->features;
}

uint64_t dirty_faults(const struct dirty *d)
{
	return atomic_load_explicit(&d->faults, memory_order_relaxed);
}

int dirty_uffd_new(void)
{
	int fd = (int)syscall(SYS_userfaultfd,
			      O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	int dev;

	if (fd >= 0)
		return fd;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -1;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	return fd;
}

static int wp_range(struct dirty *d, uint64_t first, uint64_t n, bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)(d->base + first * d->page_size),
			   .len = n * d->page_size },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	while (ioctl(d->uffd, UFFDIO_WRITEPROTECT, &wp)) {
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Does this kernel have PAGEMAP_SCAN? (an empty scan) */
static bool have_pagemap_scan(int fd, void *base)
{
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.start = (uintptr_t)base,
		.end = (uintptr_t)base,
	};

	return ioctl(fd, PAGEMAP_SCAN, &a) >= 0 || errno != ENOTTY;
}

static void *fault_thread(void *arg)
{
	struct dirty *d = arg;
	struct uffd_msg msg[64];

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = d->uffd, .events = POLLIN },
			{ .fd = d->stop_pipe[0], .events = POLLIN },
		};
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			atomic_store(&d->thread_err, errno);
			goto dead;
		}
		if (p[1].revents)
			return NULL;
		n = read(d->uffd, msg, sizeof(msg));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			atomic_store(&d->thread_err, errno);
			goto dead;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
			uint64_t page;
			int ret;

			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			page = (msg[i].arg.pagefault.address -
				(uintptr_t)d->base) / d->page_size;
			if (page >= d->pages)
				continue;
			/* The bit and the unprotect together, so that a
			 * harvest never protects a page whose unprotect is
			 * still to come. */
			pthread_mutex_lock(&d->lock);
			atomic_fetch_or_explicit(&d->fault_bits[page / 64],
						 1ull << (page % 64),
						 memory_order_relaxed);
			ret = wp_range(d, page, 1, false);
			pthread_mutex_unlock(&d->lock);
			atomic_fetch_add_explicit(&d->faults, 1,
						  memory_order_relaxed);
			if (ret) {
				atomic_store(&d->thread_err, -ret);
				goto dead;
			}
		}
	}
dead:
	/* Nobody serves faults any more: let every writer go (the error is
	 * stored first, so the harvest that follows these writes reports
	 * it, see harvest_sync()), rather than leave a vCPU waiting on a
	 * fault until dirty_close(). */
	pthread_mutex_lock(&d->lock);
	wp_range(d, 0, d->pages, false);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int dirty_open(struct dirty **out, void *base, size_t len, size_t page_size,
	       enum guest_mem mem, enum dirty_mode want, char *err,
	       size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	struct dirty *d;
	uint64_t need = 0;
	bool scan = false;
	int probe, ret;

	if (!base || !len || len % page_size ||
	    (uintptr_t)base % page_size) {
		set_err(err, errlen, "dirty tracking: range %p + %zu is not "
			"aligned to the page size %zu", base, len, page_size);
		return -EINVAL;
	}
	/* Probe what the kernel offers (UFFDIO_API may be called once per
	 * descriptor: a second one gets the features we pick). */
	probe = dirty_uffd_new();
	if (probe < 0) {
		ret = -errno;
		set_err(err, errlen, "dirty tracking: no userfaultfd (%s; "
			"needs CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 "
			"or access to /dev/userfaultfd)", strerror(errno));
		return ret;
	}
	if (ioctl(probe, UFFDIO_API, &api)) {
		ret = -errno;
		close(probe);
		set_err(err, errlen, "dirty tracking: UFFDIO_API: %s",
			strerror(-ret));
		return ret;
	}
	close(probe);

	d = calloc(1, sizeof(*d));
	if (!d) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->uffd = -1;
	d->pagemap = -1;
	d->stop_pipe[0] = d->stop_pipe[1] = -1;
	d->base = base;
	d->len = len;
	d->page_size = page_size;
	d->pages = len / page_size;
	d->features = api.features;
	pthread_mutex_init(&d->lock, NULL);

	if (mem != GUEST_ANON) {
		if (!(api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)) {
			set_err(err, errlen, "dirty tracking: this kernel's "
				"userfaultfd cannot write-protect %s memory "
				"(UFFD_FEATURE_WP_HUGETLBFS_SHMEM missing); use "
				"anonymous memory", guest_mem_name(mem));
			ret = -EOPNOTSUPP;
			goto err_free;
		}
		need |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	}
	if (want != DIRTY_SYNC) {
		d->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		scan = d->pagemap >= 0 && have_pagemap_scan(d->pagemap, base);
	}
	if (want == DIRTY_ASYNC || want == DIRTY_AUTO) {
		if ((api.features & UFFD_FEATURE_WP_ASYNC) && scan) {
			d->mode = DIRTY_ASYNC;
		} else if (want == DIRTY_ASYNC) {
			set_err(err, errlen, "dirty tracking: the async mode "
				"needs UFFD_FEATURE_WP_ASYNC and the PAGEMAP_SCAN "
				"ioctl (Linux 6.7+); this kernel has %s%s; use "
				"--dirty-tracking sync",
				api.features & UFFD_FEATURE_WP_ASYNC ?
				"WP_ASYNC" : "no WP_ASYNC",
				scan ? " and PAGEMAP_SCAN" : " and no PAGEMAP_SCAN");
			ret = -EOPNOTSUPP;
			goto err_free;
		} else {
			d->mode = DIRTY_SYNC;
		}
	} else {
		d->mode = DIRTY_SYNC;
	}
	if (d->mode == DIRTY_ASYNC)
		need |= UFFD_FEATURE_WP_ASYNC;
	else if (d->pagemap >= 0) {
		close(d->pagemap);
		d->pagemap = -1;
	}
	if (api.features & UFFD_FEATURE_WP_UNPOPULATED)
		need |= UFFD_FEATURE_WP_UNPOPULATED;

	d->uffd = dirty_uffd_new();
	if (d->uffd < 0) {
		ret = -errno;
		set_err(err, errlen, "dirty tracking: userfaultfd: %s",
			strerror(errno));
		goto err_free;
	}
	api = (struct uffdio_api){ .api = UFFD_API, .features = need };
	if (ioctl(d->uffd, UFFDIO_API, &api)) {
		ret = -errno;
		set_err(err, errlen, "dirty tracking: UFFDIO_API with features "
			"0x%" PRIx64 ": %s", need, strerror(errno));
		goto err_free;
	}
	reg = (struct uffdio_register){
		.range = { .start = (uintptr_t)base, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(d->uffd, UFFDIO_REGISTER, &reg)) {
		ret = -errno;
		set_err(err, errlen, "dirty tracking: UFFDIO_REGISTER (write-"
			"protect) of %s memory, %zu bytes: %s",
			guest_mem_name(mem), len, strerror(errno));
		goto err_free;
	}
	if (!(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT))) {
		set_err(err, errlen, "dirty tracking: UFFDIO_WRITEPROTECT is "
			"not offered for %s memory", guest_mem_name(mem));
		ret = -EOPNOTSUPP;
		goto err_unreg;
	}
	if (d->mode == DIRTY_SYNC) {
		d->fault_bits = calloc((d->pages + 63) / 64, 8);
		if (!d->fault_bits || pipe2(d->stop_pipe, O_CLOEXEC)) {
			set_err(err, errlen, "dirty tracking: out of memory or "
				"descriptors");
			ret = -ENOMEM;
			goto err_unreg;
		}
		ret = pthread_create(&d->thread, NULL, fault_thread, d);
		if (ret) {
			set_err(err, errlen, "dirty tracking: fault thread: %s",
				strerror(ret));
			ret = -ret;
			goto err_unreg;
		}
		d->thread_started = true;
	} else {
		d->vec = calloc(SCAN_VEC, sizeof(*d->vec));
		if (!d->vec) {
			set_err(err, errlen, "out of memory");
			ret = -ENOMEM;
			goto err_unreg;
		}
	}
	*out = d;
	return 0;

err_unreg:
	dirty_close(d);
	return ret;
err_free:
	if (d->uffd >= 0)
		close(d->uffd);
	if (d->pagemap >= 0)
		close(d->pagemap);
	pthread_mutex_destroy(&d->lock);
	free(d);
	return ret;
}

int dirty_start(struct dirty *d, char *err, size_t errlen)
{
	int ret;

	pthread_mutex_lock(&d->lock);
	ret = wp_range(d, 0, d->pages, true);
	if (!ret && d->fault_bits)
		for (uint64_t w = 0; w < (d->pages + 63) / 64; w++)
			atomic_store_explicit(&d->fault_bits[w], 0,
					      memory_order_relaxed);
	pthread_mutex_unlock(&d->lock);
	if (ret)
		set_err(err, errlen, "dirty tracking: write-protecting %" PRIu64
			" pages: %s", d->pages, strerror(-ret));
	return ret;
}

static uint64_t mark(uint64_t *bits, uint64_t first, uint64_t end)
{
	uint64_t newly = 0;

	for (uint64_t p = first; p < end; p++) {
		uint64_t m = 1ull << (p % 64);

		if (!(bits[p / 64] & m)) {
			bits[p / 64] |= m;
			newly++;
		}
	}
	return newly;
}

static int harvest_async(struct dirty *d, uint64_t *bits, uint64_t *newly,
			 char *err, size_t errlen)
{
	uintptr_t base = (uintptr_t)d->base;
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = base,
		.end = base + d->len,
		.vec = (uintptr_t)d->vec,
		.vec_len = SCAN_VEC,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};

	for (;;) {
		long n = ioctl(d->pagemap, PAGEMAP_SCAN, &a);

		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			set_err(err, errlen, "dirty tracking: PAGEMAP_SCAN: %s",
				strerror(errno));
			return -errno;
		}
		for (long i = 0; i < n; i++) {
			uint64_t s = (d->vec[i].start - base) / d->page_size;
			uint64_t e = (d->vec[i].end - base + d->page_size - 1) /
				     d->page_size;

			if (e > d->pages)
				e = d->pages;
			*newly += mark(bits, s, e);
		}
		if (a.walk_end >= a.end)
			return 0;
		a.start = a.walk_end;
	}
}

static int thread_failed(struct dirty *d, char *err, size_t errlen)
{
	int terr = atomic_load(&d->thread_err);

	if (terr)
		set_err(err, errlen, "dirty tracking: the fault thread failed "
			"(%s); writes are no longer tracked", strerror(terr));
	return -terr;
}

static int harvest_sync(struct dirty *d, uint64_t *bits, uint64_t *newly,
			char *err, size_t errlen)
{
	int ret = thread_failed(d, err, errlen);

	if (ret)
		return ret;
	for (uint64_t w = 0; w < (d->pages + 63) / 64; w++) {
		uint64_t x;

		if (!atomic_load_explicit(&d->fault_bits[w],
					  memory_order_relaxed))
			continue;
		/* Take the word's bits and protect their pages again while
		 * the fault thread cannot unprotect one in between. */
		pthread_mutex_lock(&d->lock);
		x = atomic_exchange_explicit(&d->fault_bits[w], 0,
					     memory_order_relaxed);
		for (unsigned b = 0; b < 64 && x; ) {
			unsigned e;

			if (!(x >> b & 1)) {
				b++;
				continue;
			}
			for (e = b; e < 64 && (x >> e & 1); e++)
				;
			ret = wp_range(d, w * 64 + b, e - b, true);
			if (ret) {
				pthread_mutex_unlock(&d->lock);
				set_err(err, errlen, "dirty tracking: re-protecting "
					"pages: %s", strerror(-ret));
				return ret;
			}
			*newly += mark(bits, w * 64 + b, w * 64 + e);
			b = e;
		}
		pthread_mutex_unlock(&d->lock);
	}
	/* Again at the end: a fault thread that failed during this harvest
	 * unprotected everything after storing its error (seq_cst, both
	 * sides), so writes this harvest missed show up here. */
	return thread_failed(d, err, errlen);
}

int dirty_harvest(struct dirty *d, uint64_t *bits, uint64_t *newly, char *err,
		  size_t errlen)
{
	*newly = 0;
	return d->mode == DIRTY_ASYNC ? harvest_async(d, bits, newly, err, errlen)
				      : harvest_sync(d, bits, newly, err, errlen);
}

void dirty_close(struct dirty *d)
{
	if (!d)
		return;
	if (d->thread_started) {
		char c = 1;

		if (write(d->stop_pipe[1], &c, 1) != 1)
			pthread_cancel(d->thread);
		pthread_join(d->thread, NULL);
	}
	if (d->uffd >= 0) {
		struct uffdio_range r = { .start = (uintptr_t)d->base,
					  .len = d->len };

		/* Unprotect (and wake any writer still waiting), then let
		 * the range go. */
		wp_range(d, 0, d->pages, false);
		ioctl(d->uffd, UFFDIO_UNREGISTER, &r);
		close(d->uffd);
	}
	if (d->pagemap >= 0)
		close(d->pagemap);
	if (d->stop_pipe[0] >= 0) {
		close(d->stop_pipe[0]);
		close(d->stop_pipe[1]);
	}
	pthread_mutex_destroy(&d->lock);
	free(d->fault_bits);
	free(d->vec);
	free(d);
}

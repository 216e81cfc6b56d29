/* SPDX-License-Identifier: MIT */
/*
 * postcopy_pull - the destination's post-copy threads: faults served by
 * urgent RDMA READs, the background pull, every completion placed once
 * (see postcopy.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "postcopy_int.h"
#include "postcopy.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

uint64_t pc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *pc_lib_err(int ret)
{
	return rmig_last_error()[0] ? rmig_last_error() : strerror(-ret);
}

void pc_fail(struct pc *pc, int err, const char *fmt, ...)
{
	int none = 0;
	va_list ap;

	if (!atomic_compare_exchange_strong(&pc->err, &none, err))
		return;
	va_start(ap, fmt);
	vsnprintf(pc->errmsg, sizeof(pc->errmsg), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Placing pages                                                       */

/* Where @sl's pages land. */
static uint8_t *slot_buf(struct pc *pc, struct pc_slot *sl)
{
	return pc->minor ? pc->alias + sl->first * pc->ps : sl->land;
}

/* One UFFDIO_COPY (anonymous) or UFFDIO_CONTINUE (memfd, hugetlb) of
 * @len bytes at byte @off of @sl; 0, or -1 with errno and *@done the
 * bytes placed before the failure. */
static int place_ioctl(struct pc *pc, struct pc_slot *sl, uint64_t off,
		       uint64_t len, uint64_t *done)
{
	uintptr_t dst = (uintptr_t)(pc->g->mem + sl->first * pc->ps + off);
	int ret;

	*done = 0;
	if (pc->minor) {
		struct uffdio_continue c = {
			.range = { .start = dst, .len = len } };

		ret = ioctl(pc->uffd, UFFDIO_CONTINUE, &c);
		if (ret && c.mapped > 0)
			*done = (uint64_t)c.mapped;
	} else {
		struct uffdio_copy c = {
			.dst = dst, .src = (uintptr_t)(sl->land + off),
			.len = len };

		ret = ioctl(pc->uffd, UFFDIO_COPY, &c);
		if (ret && c.copy > 0)
			*done = (uint64_t)c.copy;
	}
	return ret;
}

/* Compare each page of @sl's landing bytes with the list, place the run
 * (it wakes the vCPUs waiting on it), mark it present. */
static int place(struct pc *pc, struct pc_slot *sl)
{
	uint8_t *src = slot_buf(pc, sl);
	uint64_t len = sl->n * pc->ps, off = 0, done;

	for (uint64_t i = 0; i < sl->n; i++)
		if (guest_page_hash(src + i * pc->ps, pc->ps) !=
		    pc->hashes[sl->first + i] && !pc->mismatched++)
			pc->first_mismatch = (int64_t)(sl->first + i);
	while (off < len) {
		if (place_ioctl(pc, sl, off, len - off, &done) == 0)
			break;
		if (errno == EAGAIN) {
			off += done;
		} else if (errno == EEXIST) {
			/* Present already: never overwritten. */
			atomic_fetch_add_explicit(&pc->eexist, 1,
						  memory_order_relaxed);
			off += done / pc->ps * pc->ps + pc->ps;
		} else {
			int e = errno;

			pc_fail(pc, -e, "%s of page %" PRIu64 ": %s",
				pc->minor ? "UFFDIO_CONTINUE" : "UFFDIO_COPY",
				sl->first + off / pc->ps, strerror(e));
			return -e;
		}
	}
	for (uint64_t i = 0; i < sl->n; i++)
		/* Pairs with the acquire loads of the fault thread and the
		 * claims: the page is in place before it says present. */
		atomic_store_explicit(&pc->st[sl->first + i], PG_PRESENT,
				      memory_order_release);
	pc->present += sl->n;
	if (!pc->connected)
		pc->outage_placed += sl->n; /* never: the check */
	if (pc->recoveries < LIVE_MAX_SESSIONS)
		pc->session_pages[pc->recoveries] += sl->n;
	return 0;
}

/* @sl's reads failed (the session is lost): its pages are missing again,
 * wanted first once resumed (a vCPU may wait on any of them). */
static void unclaim(struct pc *pc, struct pc_slot *sl)
{
	if (sl->urgent)
		atomic_fetch_add_explicit(&pc->waited, 1,
					  memory_order_relaxed);
	for (uint64_t i = 0; i < sl->n; i++) {
		atomic_store_explicit(&pc->want[sl->first + i], 1,
				      memory_order_relaxed);
		/* Pairs with the claims' acquire: a page is claimed anew
		 * only after this slot let it go. */
		atomic_store_explicit(&pc->st[sl->first + i], PG_MISSING,
				      memory_order_release);
	}
}

static bool claim(struct pc *pc, uint64_t p)
{
	uint8_t want = PG_MISSING;

	/* Acquire-release: pairs with the other claimer and with place(). */
	return atomic_compare_exchange_strong_explicit(
		&pc->st[p], &want, PG_FETCHING, memory_order_acq_rel,
		memory_order_acquire);
}

/* Read @sl's pages (first, n set), in pieces of at most RMIG_READ_MAX. */
static int submit(struct pc *pc, struct pc_slot *sl, unsigned flags)
{
	uint64_t len = sl->n * pc->ps;
	uint8_t *buf = slot_buf(pc, sl);
	unsigned k;
	int ret = 0;

	sl->nreq = (unsigned)((len + RMIG_READ_MAX - 1) / RMIG_READ_MAX);
	sl->status = 0;
	atomic_store_explicit(&sl->pending, sl->nreq, memory_order_relaxed);
	for (k = 0; k < sl->nreq; k++) {
		struct rmig_read_req *r = &sl->req[k];
		uint64_t at = (uint64_t)k * RMIG_READ_MAX;

		r->block = pc->block;
		r->offset = sl->first * pc->ps + at;
		r->len = len - at < RMIG_READ_MAX ? len - at : RMIG_READ_MAX;
		r->buf = buf + at;
		r->user = sl;
		ret = rmig_dest_read_submit(pc->d, r, flags);
		if (ret < 0)
			break;
	}
	if (ret < 0) {
		/* A lost session: the pull thread recovers (with rec) when
		 * rmig_dest_read_wait() says so; anything else fails. */
		if (!pc->rec || rmig_dest_state(pc->d) != RMIG_STATE_FAILED)
			pc_fail(pc, ret, "the %s read of pages %" PRIu64 "..%"
				PRIu64 ": %s", flags & RMIG_READ_URGENT ?
				"fault's" : "background", sl->first,
				sl->first + sl->n - 1, pc_lib_err(ret));
		sl->status = ret;
		/* The reads submitted come back; the others never will. */
		atomic_fetch_sub_explicit(&sl->pending, sl->nreq - k,
					  memory_order_relaxed);
		if (!k)
			unclaim(pc, sl);
		return k ? 0 : ret;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Fault thread                                                        */

static struct pc_slot *urgent_slot(struct pc *pc)
{
	struct pc_slot *sl;

	pthread_mutex_lock(&pc->lock);
	while (!pc->ufree && !pc->stopping)
		pthread_cond_wait(&pc->cond, &pc->lock);
	sl = pc->ufree;
	if (sl)
		pc->ufree = sl->next;
	pthread_mutex_unlock(&pc->lock);
	return sl;
}

static void release_urgent(struct pc *pc, struct pc_slot *sl)
{
	pthread_mutex_lock(&pc->lock);
	sl->next = pc->ufree;
	pc->ufree = sl;
	pthread_cond_signal(&pc->cond);
	pthread_mutex_unlock(&pc->lock);
}

static void serve_claimed(struct pc *pc, uint64_t p, uint64_t t);

static void serve_fault(struct pc *pc, uint64_t addr, uint64_t t)
{
	uint64_t p = (addr - (uintptr_t)pc->g->mem) / pc->ps;

	if (p >= pc->pages)
		return;
	/* Read: nothing submits to a session being replaced. */
	pthread_rwlock_rdlock(&pc->sess_lock);
	if (!pc->connected &&
	    /* Pairs with the release store in place(). */
	    atomic_load_explicit(&pc->st[p], memory_order_acquire) !=
	    PG_PRESENT) {
		/* Disconnected: the vCPU waits; its page is read first once
		 * a session is resumed. */
		atomic_store_explicit(&pc->want[p], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&pc->outage_faults, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&pc->waited, 1,
					  memory_order_relaxed);
	} else {
		serve_claimed(pc, p, t);
	}
	pthread_rwlock_unlock(&pc->sess_lock);
}

/* serve_fault() connected (or the page present). */
static void serve_claimed(struct pc *pc, uint64_t p, uint64_t t)
{
	struct pc_slot *sl;

	if (!claim(pc, p)) {
		/* Pairs with the release store in place(). */
		if (atomic_load_explicit(&pc->st[p], memory_order_acquire) ==
		    PG_PRESENT) {
			struct uffdio_range r = {
				.start = (uintptr_t)pc->g->mem + p * pc->ps,
				.len = pc->ps };

			atomic_fetch_add_explicit(&pc->faults_present, 1,
						  memory_order_relaxed);
			ioctl(pc->uffd, UFFDIO_WAKE, &r);
		} else {
			/* Its read is in flight: its placing wakes the vCPU. */
			atomic_fetch_add_explicit(&pc->faults_joined, 1,
						  memory_order_relaxed);
		}
		return;
	}
	sl = urgent_slot(pc);
	if (!sl)
		return;
	sl->first = p;
	sl->n = 1;
	sl->t_fault_ns = t;
	if (submit(pc, sl, RMIG_READ_URGENT))
		release_urgent(pc, sl);
	else
		atomic_fetch_add_explicit(&pc->fault_pages, 1,
					  memory_order_relaxed);
}

void *pc_fault_main(void *arg)
{
	struct pc *pc = arg;
	struct uffd_msg msg[64];

	while (!atomic_load(&pc->err)) {
		struct pollfd f[2] = {
			{ .fd = pc->uffd, .events = POLLIN },
			{ .fd = pc->stop_pipe[0], .events = POLLIN },
		};
		ssize_t n;
		uint64_t t;

		if (poll(f, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			pc_fail(pc, -errno, "fault thread: poll: %s",
				strerror(errno));
			break;
		}
		if (f[1].revents)
			break;
		n = read(pc->uffd, msg, sizeof(msg));
		t = pc_now_ns();
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			pc_fail(pc, -errno, "fault thread: reading the "
				"userfaultfd: %s", strerror(errno));
			break;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				serve_fault(pc, msg[i].arg.pagefault.address, t);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Pull thread                                                         */

/* Claim the next run of missing pages and read it; false when none is
 * left to claim (or the submit failed). */
static bool pull_more(struct pc *pc)
{
	struct pc_slot *sl = pc->bfree;
	uint64_t p = pc->cursor, n = 1;
	unsigned flags = 0;

	/* Resumed: the pages vCPUs may wait on first, one a read. */
	while (pc->want_scan && pc->want_cursor < pc->pages) {
		uint64_t w = pc->want_cursor++;

		if (atomic_exchange_explicit(&pc->want[w], 0,
					     memory_order_relaxed) &&
		    claim(pc, w)) {
			pc->bfree = sl->next;
			sl->first = w;
			sl->n = 1;
			flags = RMIG_READ_URGENT;
			goto read;
		}
	}
	pc->want_scan = false;
	while (p < pc->pages && !claim(pc, p))
		p++;
	if (p >= pc->pages) {
		pc->cursor = p;
		return false;
	}
	while (n < pc->run && p + n < pc->pages && claim(pc, p + n))
		n++;
	pc->cursor = p + n;
	pc->bfree = sl->next;
	sl->first = p;
	sl->n = n;
read:
	if (submit(pc, sl, flags)) {
		sl->next = pc->bfree;
		pc->bfree = sl;
		return false;
	}
	atomic_fetch_add_explicit(&pc->bg_pages, sl->n, memory_order_relaxed);
	return true;
}

/* Every read of @sl came back. */
static void slot_done(struct pc *pc, struct pc_slot *sl)
{
	if (sl->status < 0 && pc->rec) {
		/* The session is lost: read again in the next. */
		unclaim(pc, sl);
	} else if (sl->status < 0) {
		pc_fail(pc, sl->status, "an RDMA READ of pages %" PRIu64
			"..%" PRIu64 " failed: %s", sl->first,
			sl->first + sl->n - 1, strerror(-sl->status));
	} else if (!atomic_load(&pc->err) && place(pc, sl) == 0 &&
		   sl->urgent) {
		uint64_t us = (pc_now_ns() - sl->t_fault_ns) / 1000;

		pc->lat_us[pc->nlat++] = us > UINT32_MAX ? UINT32_MAX :
					 (uint32_t)us;
	}
	if (sl->urgent) {
		release_urgent(pc, sl);
	} else {
		sl->next = pc->bfree;
		pc->bfree = sl;
	}
}

static void read_done(struct pc *pc, struct rmig_read_req *r)
{
	struct pc_slot *sl = r->user;

	if (r->status < 0 && !sl->status)
		sl->status = r->status;
	/* Relaxed: the slot's fields were handed over by the library's
	 * submit and wait (its lock); this thread alone counts down. */
	if (atomic_fetch_sub_explicit(&sl->pending, 1,
				      memory_order_relaxed) == 1)
		slot_done(pc, sl);
}

/*
 * The session failed (@why) and every read came back: stop the fault
 * thread's reads, replace the session (pc->rec) and register where reads
 * land in the new one.  0 when resumed; -1 when recovery gave up
 * (pc_fail() said why).
 */
static int recover(struct pc *pc, int why)
{
	struct rmig_read_req *done[PC_WAIT_MAX];
	uint64_t t = pc_now_ns();
	rmig_dest *d = pc->d;
	int block = pc->block, n, ret;
	char lost[256], err[512] = "";

	snprintf(lost, sizeof(lost), "%s", pc_lib_err(why));
	pthread_rwlock_wrlock(&pc->sess_lock);
	pc->connected = false;
	pthread_rwlock_unlock(&pc->sess_lock);
	/* A fault's read submitted as the session failed: back now. */
	while ((n = rmig_dest_read_wait(d, done, PC_WAIT_MAX, 0)) > 0)
		for (int i = 0; i < n; i++)
			read_done(pc, done[i]);
	ret = pc->rec->reconnect(pc->recoveries + 1, pc->b->uuid, &d, &block,
				 err, sizeof(err), pc->rec->arg);
	if (!ret) {
		ret = rmig_dest_read_region(d, pc->b->landing,
					    pc->b->landing_len);
		if (ret < 0)
			snprintf(err, sizeof(err), "registering where reads "
				 "land in the resumed session: %s",
				 pc_lib_err(ret));
	}
	pthread_rwlock_wrlock(&pc->sess_lock);
	pc->d = d;
	pc->block = block;
	pc->connected = ret == 0;
	pthread_rwlock_unlock(&pc->sess_lock);
	pc->outage_s += (double)(pc_now_ns() - t) / 1e9;
	if (ret) {
		pc_fail(pc, ret, "the session was lost (%s) and recovery gave "
			"up: %s", lost, err);
		return -1;
	}
	pc->recoveries++;
	pc->want_scan = true;
	pc->want_cursor = 0;
	pc->cursor = 0;
	return 0;
}

void *pc_pull_main(void *arg)
{
	struct pc *pc = arg;
	struct rmig_read_req *done[PC_WAIT_MAX];

	for (;;) {
		int n;

		if (!atomic_load(&pc->err)) {
			if (pc->present == pc->pages)
				break;
			while (pc->bfree && pull_more(pc))
				;
		}
		if (pc->rec && pc->rec->pull_hook)
			pc->rec->pull_hook(atomic_load(&pc->bg_pages) +
					   atomic_load(&pc->fault_pages),
					   pc->rec->arg);
		n = rmig_dest_read_wait(pc->d, done, PC_WAIT_BATCH, 200);
		if (n < 0 && pc->rec && !atomic_load(&pc->err)) {
			/* Every request came back (the failed ones' pages
			 * are missing again). */
			if (recover(pc, n))
				break;
			continue;
		}
		if (n < 0) {
			/* Every request came back: nothing writes where the
			 * reads land any more. */
			pc_fail(pc, n, "%s", pc_lib_err(n));
			break;
		}
		for (int i = 0; i < n; i++)
			read_done(pc, done[i]);
	}
	return NULL;
}

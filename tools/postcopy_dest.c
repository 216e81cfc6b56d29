/* SPDX-License-Identifier: MIT */
/*
 * postcopy_dest - the destination's post-copy: userfaultfd MISSING faults
 * served by RDMA READ, a deep-queued background pull, the proof (see
 * postcopy.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "postcopy.h"
#include "dirty.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PC_DEPTH 128   /* background reads in flight */
#define PC_RUN 32      /* pages a background read, at most */
#define PC_URGENT (GUEST_MAX_VCPUS + 2) /* one-page fault slots */
#define PC_WAIT_MAX 64 /* completions taken a call */

enum { PG_PRESENT = 0, PG_MISSING = 1, PG_FETCHING = 2 };

struct pc_slot {
	struct rmig_read_req req; /* first: done[] points here */
	uint64_t first, n;        /* pages */
	uint64_t t_fault_ns;      /* urgent: when the fault was read */
	bool urgent;
	struct pc_slot *next;     /* on a free list */
};

struct pc {
	struct guest *g;
	rmig_dest *d;
	int block;
	uint64_t pages;
	size_t ps;
	_Atomic uint8_t *st;      /* per page: PG_* */
	const uint64_t *hashes;
	int uffd;
	int stop_pipe[2];
	uint8_t *landing;         /* the live_blobs' */
	struct pc_slot slots[PC_URGENT + PC_DEPTH];

	pthread_mutex_t lock;     /* ufree */
	pthread_cond_t cond;
	struct pc_slot *ufree;    /* free urgent slots */
	bool stopping;            /* under lock: the fault thread ends */

	/* The pull thread's own. */
	struct pc_slot *bfree;    /* free background slots */
	unsigned bg_inflight;
	uint64_t cursor;          /* next page the pull looks at */
	uint32_t *lat_us;         /* fault service times */
	uint64_t nlat;
	uint64_t present;         /* pages present */
	uint64_t mismatched;
	int64_t first_mismatch;

	_Atomic int err;          /* first failure, negative errno */
	char errmsg[512];         /* set by the thread that set err */
	_Atomic uint64_t fault_pages, bg_pages, faults_joined, faults_present;
	_Atomic uint64_t eexist;
};

/* A lost guest's post-copy state, which its blocked threads may touch. */
static struct pc *lost_pc;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf[0])
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* The first failure of either thread wins; the other threads see it. */
static void pc_fail(struct pc *pc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void pc_fail(struct pc *pc, int err, const char *fmt, ...)
{
	int none = 0;
	va_list ap;

	if (!atomic_compare_exchange_strong(&pc->err, &none, err))
		return;
	va_start(ap, fmt);
	vsnprintf(pc->errmsg, sizeof(pc->errmsg), fmt, ap);
	va_end(ap);
}

static const char *lib_err(int ret)
{
	return rmig_last_error()[0] ? rmig_last_error() : strerror(-ret);
}

/* ------------------------------------------------------------------ */
/* Placing pages                                                       */

/* Compare each page of @sl's landing bytes with the list, place the run
 * by UFFDIO_COPY (it wakes the vCPUs waiting on it), mark it present. */
static int place(struct pc *pc, struct pc_slot *sl)
{
	uint8_t *src = sl->req.buf;
	uint64_t len = sl->n * pc->ps, off = 0;

	for (uint64_t i = 0; i < sl->n; i++)
		if (guest_page_hash(src + i * pc->ps, pc->ps) !=
		    pc->hashes[sl->first + i] && !pc->mismatched++)
			pc->first_mismatch = (int64_t)(sl->first + i);
	while (off < len) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)(pc->g->mem + sl->first * pc->ps + off),
			.src = (uintptr_t)(src + off),
			.len = len - off,
		};

		if (ioctl(pc->uffd, UFFDIO_COPY, &c) == 0)
			break;
		if (errno == EAGAIN) {
			if (c.copy > 0)
				off += (uint64_t)c.copy;
		} else if (errno == EEXIST) {
			/* Present already: never overwritten. */
			atomic_fetch_add_explicit(&pc->eexist, 1,
						  memory_order_relaxed);
			off += pc->ps;
		} else {
			int e = errno;

			pc_fail(pc, -e, "UFFDIO_COPY of page %" PRIu64 ": %s",
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
	return 0;
}

static bool claim(struct pc *pc, uint64_t p)
{
	uint8_t want = PG_MISSING;

	/* Acquire-release: pairs with the other claimer and with place(). */
	return atomic_compare_exchange_strong_explicit(
		&pc->st[p], &want, PG_FETCHING, memory_order_acq_rel,
		memory_order_acquire);
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

static void serve_fault(struct pc *pc, uint64_t addr, uint64_t t)
{
	uint64_t p = (addr - (uintptr_t)pc->g->mem) / pc->ps;
	struct pc_slot *sl;
	int ret;

	if (p >= pc->pages)
		return;
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
			/* Its read is in flight: its copy wakes the vCPU. */
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
	sl->req.offset = p * pc->ps;
	sl->req.len = pc->ps;
	ret = rmig_dest_read_submit(pc->d, &sl->req, RMIG_READ_URGENT);
	if (ret < 0)
		pc_fail(pc, ret, "the read of faulting page %" PRIu64 ": %s", p,
			lib_err(ret));
	else
		atomic_fetch_add_explicit(&pc->fault_pages, 1,
					  memory_order_relaxed);
}

static void *fault_main(void *arg)
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
		t = now_ns();
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
	int ret;

	while (p < pc->pages && !claim(pc, p))
		p++;
	if (p >= pc->pages) {
		pc->cursor = p;
		return false;
	}
	while (n < PC_RUN && p + n < pc->pages && claim(pc, p + n))
		n++;
	pc->cursor = p + n;
	pc->bfree = sl->next;
	sl->first = p;
	sl->n = n;
	sl->req.offset = p * pc->ps;
	sl->req.len = n * pc->ps;
	ret = rmig_dest_read_submit(pc->d, &sl->req, 0);
	if (ret < 0) {
		pc_fail(pc, ret, "the background read of pages %" PRIu64
			"..%" PRIu64 ": %s", p, p + n - 1, lib_err(ret));
		return false;
	}
	pc->bg_inflight++;
	atomic_fetch_add_explicit(&pc->bg_pages, n, memory_order_relaxed);
	return true;
}

static void done_one(struct pc *pc, struct pc_slot *sl)
{
	if (sl->req.status < 0) {
		pc_fail(pc, sl->req.status, "an RDMA READ of pages %" PRIu64
			"..%" PRIu64 " failed: %s", sl->first,
			sl->first + sl->n - 1, strerror(-sl->req.status));
	} else if (!atomic_load(&pc->err) && place(pc, sl) == 0 &&
		   sl->urgent) {
		uint64_t us = (now_ns() - sl->t_fault_ns) / 1000;

		pc->lat_us[pc->nlat++] = us > UINT32_MAX ? UINT32_MAX :
					 (uint32_t)us;
	}
	if (sl->urgent) {
		pthread_mutex_lock(&pc->lock);
		sl->next = pc->ufree;
		pc->ufree = sl;
		pthread_cond_signal(&pc->cond);
		pthread_mutex_unlock(&pc->lock);
	} else {
		sl->next = pc->bfree;
		pc->bfree = sl;
		pc->bg_inflight--;
	}
}

static void *pull_main(void *arg)
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
		n = rmig_dest_read_wait(pc->d, done, PC_WAIT_MAX, 200);
		if (n < 0) {
			/* Every request came back: nothing writes the
			 * landing buffer any more. */
			pc_fail(pc, n, "%s", lib_err(n));
			break;
		}
		for (int i = 0; i < n; i++)
			done_one(pc, (struct pc_slot *)done[i]);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Setup, the end, the proof                                           */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void fault_stats(struct pc *pc, struct live_dest_result *r)
{
	if (!pc->nlat)
		return;
	qsort(pc->lat_us, pc->nlat, sizeof(pc->lat_us[0]), cmp_u32);
	r->fault_p50_us = pc->lat_us[(pc->nlat - 1) / 2];
	r->fault_p99_us = pc->lat_us[(pc->nlat - 1) * 99 / 100];
	r->fault_max_us = pc->lat_us[pc->nlat - 1];
}

void postcopy_prepare(rmig_dest *d, size_t page_size, struct live_blobs *b)
{
	size_t len = (PC_URGENT + (size_t)PC_DEPTH * PC_RUN) * page_size;
	void *p;
	int ret;

	if (page_size > RMIG_READ_MAX) {
		snprintf(b->landing_err, sizeof(b->landing_err), "post-copy "
			 "with %zu-byte pages is not implemented", page_size);
		return;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		snprintf(b->landing_err, sizeof(b->landing_err), "cannot map "
			 "%zu bytes of landing buffer: %s", len,
			 strerror(errno));
		return;
	}
	madvise(p, len, MADV_POPULATE_WRITE);
	ret = rmig_dest_read_region(d, p, len);
	if (ret < 0) {
		snprintf(b->landing_err, sizeof(b->landing_err), "registering "
			 "the landing buffer: %s", lib_err(ret));
		munmap(p, len);
		return;
	}
	b->landing = p;
	b->landing_len = len;
}

/* Drop the missing pages, register the RAM for MISSING faults, carve the
 * landing buffer into slots. */
static int pc_setup(struct pc *pc, struct live_blobs *b, char *err,
		    size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)pc->g->mem,
			   .len = pc->pages * pc->ps },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	unsigned nslots = PC_URGENT + PC_DEPTH;

	for (uint64_t p = 0; p < pc->pages; ) {
		uint64_t e = p;

		while (e < pc->pages && (b->missing[e / 64] >> (e % 64) & 1))
			e++;
		if (e > p && madvise(pc->g->mem + p * pc->ps, (e - p) * pc->ps,
				     MADV_DONTNEED)) {
			fail(err, errlen, "MADV_DONTNEED of pages %" PRIu64 "..%"
			     PRIu64 ": %s", p, e - 1, strerror(errno));
			return -errno;
		}
		for (uint64_t i = p; i < e; i++)
			atomic_init(&pc->st[i], PG_MISSING);
		p = e > p ? e : p + 1;
	}
	pc->uffd = dirty_uffd_new();
	if (pc->uffd < 0) {
		fail(err, errlen, "post-copy needs userfaultfd: %s (root, "
		     "vm.unprivileged_userfaultfd=1 or /dev/userfaultfd)",
		     strerror(errno));
		return -errno;
	}
	if (ioctl(pc->uffd, UFFDIO_API, &api) ||
	    ioctl(pc->uffd, UFFDIO_REGISTER, &reg)) {
		fail(err, errlen, "userfaultfd: %s of the guest's %s memory "
		     "for MISSING faults: %s", api.ioctls ? "UFFDIO_REGISTER" :
		     "UFFDIO_API", guest_mem_name(pc->g->cfg.mem),
		     strerror(errno));
		return -errno;
	}
	if (!(reg.ioctls & (1ull << _UFFDIO_COPY))) {
		fail(err, errlen, "userfaultfd: no UFFDIO_COPY for this memory");
		return -EOPNOTSUPP;
	}
	if (pipe2(pc->stop_pipe, O_CLOEXEC)) {
		fail(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	pc->landing = b->landing;
	if (!pc->landing) {
		fail(err, errlen, "%s", b->landing_err);
		return -EOPNOTSUPP;
	}
	for (unsigned i = 0; i < nslots; i++) {
		struct pc_slot *sl = &pc->slots[i];
		bool urgent = i < PC_URGENT;

		sl->urgent = urgent;
		sl->req.block = pc->block;
		sl->req.buf = pc->landing + (urgent ? i : PC_URGENT +
			      (size_t)(i - PC_URGENT) * PC_RUN) * pc->ps;
		if (urgent) {
			sl->next = pc->ufree;
			pc->ufree = sl;
		} else {
			sl->next = pc->bfree;
			pc->bfree = sl;
		}
	}
	return 0;
}

/* Every page present: the proof.  Pause, compare the pages the guest did
 * not write since the switch with the list, then run @resume_steps more
 * and compare with a never-migrated replay. */
static int prove(struct pc *pc, struct live_blobs *b, uint64_t resume_steps,
		 struct live_dest_result *r)
{
	struct guest *g = pc->g;
	uint64_t from[GUEST_MAX_VCPUS], to[GUEST_MAX_VCPUS];
	uint64_t *touched = calloc((pc->pages + 63) / 64, 8);
	int ret;

	if (!touched) {
		fail(r->error, sizeof(r->error), "out of memory");
		return -ENOMEM;
	}
	guest_pause(g);
	for (unsigned v = 0; v < g->cfg.vcpus; v++) {
		from[v] = b->st[v].steps;
		to[v] = g->vcpu[v].st.steps;
	}
	guest_touched(g, from, to, touched);
	for (uint64_t p = 0; p < pc->pages; p++) {
		if (touched[p / 64] >> (p % 64) & 1)
			continue;
		r->untouched_checked++;
		if (guest_page_hash(g->mem + p * pc->ps, pc->ps) !=
		    b->hashes[p] && !r->untouched_mismatched++)
			r->first_mismatch = (int64_t)p;
	}
	free(touched);
	r->mismatched_pages = pc->mismatched + r->untouched_mismatched;
	if (pc->mismatched && (r->first_mismatch < 0 ||
			       pc->first_mismatch < r->first_mismatch))
		r->first_mismatch = pc->first_mismatch;
	if (r->mismatched_pages) {
		fail(r->error, sizeof(r->error), "%" PRIu64 " pulled and %"
		     PRIu64 " unwritten pages differ from the source's final "
		     "image (first: page %" PRId64 ")", pc->mismatched,
		     r->untouched_mismatched, r->first_mismatch);
		return -EIO;
	}
	r->verified = true;
	guest_stop(g); /* the threads end; the rest runs here */
	r->resume_steps = resume_steps;
	for (unsigned v = 0; v < g->cfg.vcpus; v++)
		to[v] += resume_steps;
	guest_run_to(g, to);
	r->checksum = guest_checksum(g);
	ret = guest_replay(&g->cfg, to, &r->replay_checksum, r->error,
			   sizeof(r->error));
	if (ret)
		return ret;
	if (r->checksum != r->replay_checksum) {
		fail(r->error, sizeof(r->error), "after the pull and %" PRIu64
		     " more steps, checksum 0x%016" PRIx64 " differs from the "
		     "never-migrated replay's 0x%016" PRIx64, resume_steps,
		     r->checksum, r->replay_checksum);
		return -EIO;
	}
	return 0;
}

int postcopy_dest(struct guest *g, rmig_dest *d, int block,
		  uint64_t resume_steps, bool same_host, struct live_blobs *b,
		  struct live_dest_result *r)
{
	struct pc *pc = calloc(1, sizeof(*pc));
	pthread_t ft, pt;
	bool ft_on = false, pt_on = false;
	uint64_t t_switch = now_ns();
	int ret;

	r->postcopy = true;
	if (!pc) {
		fail(r->error, sizeof(r->error), "out of memory");
		return -ENOMEM;
	}
	pc->g = g;
	pc->d = d;
	pc->block = block;
	pc->pages = g->pages;
	pc->ps = g->cfg.page_size;
	pc->hashes = b->hashes;
	pc->uffd = pc->stop_pipe[0] = pc->stop_pipe[1] = -1;
	pc->first_mismatch = -1;
	pthread_mutex_init(&pc->lock, NULL);
	pthread_cond_init(&pc->cond, NULL);
	pc->st = calloc(pc->pages, 1);
	ret = -EPROTO;
	if (!b->have_state)
		fail(r->error, sizeof(r->error), "the source switched to "
		     "post-copy without sending the guest state");
	else if (b->nhash != pc->pages ||
		 b->nmissing_words != (pc->pages + 63) / 64)
		fail(r->error, sizeof(r->error), "the source switched with %"
		     PRIu64 " page hashes and %" PRIu64 " words of missing "
		     "pages for %" PRIu64 " pages", b->nhash,
		     b->nmissing_words, pc->pages);
	else if ((ret = guest_adopt(g, &r->cfg, r->error,
				    sizeof(r->error))) == 0) {
		ret = -EOPNOTSUPP;
		if (g->cfg.mem != GUEST_ANON)
			fail(r->error, sizeof(r->error), "post-copy into %s "
			     "memory is not implemented (anonymous memory "
			     "only)", guest_mem_name(g->cfg.mem));
		else if (pc->ps > RMIG_READ_MAX)
			fail(r->error, sizeof(r->error), "post-copy with %zu-"
			     "byte pages is not implemented", pc->ps);
		else
			ret = 0;
	}
	if (!ret && (!pc->st || !(pc->lat_us = malloc(pc->pages * 4)))) {
		fail(r->error, sizeof(r->error), "out of memory");
		ret = -ENOMEM;
	}
	if (!ret) {
		for (uint64_t p = 0; p < pc->pages; p++)
			if (!(b->missing[p / 64] >> (p % 64) & 1))
				pc->present++;
		r->missing_pages = pc->pages - pc->present;
		ret = pc_setup(pc, b, r->error, sizeof(r->error));
	}
	if (ret)
		goto lost;

	/* The guest runs here from now on. */
	guest_set_state(g, b->st);
	ret = guest_start(g);
	if (ret) {
		fail(r->error, sizeof(r->error), "cannot start the vCPU "
		     "threads: %s", strerror(-ret));
		goto lost;
	}
	if (same_host && now_ns() > b->pause_ns)
		r->downtime_ms = (double)(now_ns() - b->pause_ns) / 1e6;
	ret = pthread_create(&ft, NULL, fault_main, pc);
	ft_on = ret == 0;
	if (!ret)
		ret = pthread_create(&pt, NULL, pull_main, pc);
	pt_on = ft_on && ret == 0;
	if (ret)
		pc_fail(pc, -ret, "cannot start the post-copy threads: %s",
			strerror(ret));
	if (pt_on)
		pthread_join(pt, NULL);
	pthread_mutex_lock(&pc->lock);
	pc->stopping = true;
	pthread_cond_broadcast(&pc->cond);
	pthread_mutex_unlock(&pc->lock);
	if (ft_on) {
		char c = 1;

		if (write(pc->stop_pipe[1], &c, 1) != 1)
			pthread_cancel(ft);
		pthread_join(ft, NULL);
	}
	r->pull_s = (double)(now_ns() - t_switch) / 1e9;
	r->fault_pages = atomic_load(&pc->fault_pages);
	r->background_pages = atomic_load(&pc->bg_pages);
	r->faults_joined = atomic_load(&pc->faults_joined);
	r->faults_present = atomic_load(&pc->faults_present);
	r->eexist_pages = atomic_load(&pc->eexist);
	fault_stats(pc, r);
	ret = atomic_load(&pc->err);
	if (ret) {
		fail(r->error, sizeof(r->error), "%s", pc->errmsg);
		goto lost;
	}

	/* Every page is here. */
	{
		struct uffdio_range all = { .start = (uintptr_t)g->mem,
					    .len = pc->pages * pc->ps };

		ioctl(pc->uffd, UFFDIO_UNREGISTER, &all);
	}
	ret = rmig_dest_wait_sync(d, -1);
	if (ret >= 0 && ret != 1) {
		ret = -EPROTO;
		fail(r->error, sizeof(r->error), "after the pull the source's "
		     "sync is not the final one");
	} else if (ret >= 0) {
		ret = rmig_dest_finish(d);
	}
	if (ret < 0) {
		fail(r->error, sizeof(r->error), "%s", lib_err(ret));
		/* Every page is here: the guest is whole, not proven. */
		guest_pause(g);
		goto out;
	}
	ret = prove(pc, b, resume_steps, r);
	goto out;

lost:
	r->lost = true;
	r->never_arrived = pc->pages - pc->present;
	{
		char why[sizeof(r->error)];

		snprintf(why, sizeof(why), "%s", r->error);
		r->error[0] = '\0';
		if (ft_on || rmig_dest_state(d) == RMIG_STATE_FAILED)
			fail(r->error, sizeof(r->error), "guest lost: the "
			     "source went away during post-copy; %" PRIu64
			     " of %" PRIu64 " pages never arrived (%s)",
			     r->never_arrived, pc->pages, why);
		else
			fail(r->error, sizeof(r->error), "guest lost: the "
			     "source switched to post-copy, which cannot run "
			     "here: %s; %" PRIu64 " of %" PRIu64 " pages never "
			     "arrived", why, r->never_arrived, pc->pages);
	}
	/* Its vCPUs that wait on a missing page wait until the process
	 * ends; the others stop.  The userfaultfd stays open (closing it
	 * would let them run on zero pages), and so does everything the
	 * threads may still touch: freed by the process's exit. */
	guest_abandon(g);
	lost_pc = pc; /* kept, and reachable, until the exit */
	return ret < 0 ? ret : -EIO;
out:
	if (pc->uffd >= 0)
		close(pc->uffd);
	if (pc->stop_pipe[0] >= 0) {
		close(pc->stop_pipe[0]);
		close(pc->stop_pipe[1]);
	}
	pthread_cond_destroy(&pc->cond);
	pthread_mutex_destroy(&pc->lock);
	free(pc->lat_us);
	free(pc->st);
	free(pc);
	return ret;
}

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
#include "postcopy_int.h"
#include "dirty.h"
#include "par.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>


/* A lost guest's post-copy state, which its blocked threads may touch. */
static struct pc *lost_pc;

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4 /* Linux 5.7 */
#endif
/* A missing run of anonymous memory this long or longer is moved out of
 * the guest's mapping rather than dropped where it is. */
#define PC_MOVE_BYTES (2u << 20)
/* Dropping many pages: a part (par.h) has this many pages at least. */
#define DROP_PART_PAGES 4096

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

/* Pages a background read takes at most. */
static uint64_t run_pages(size_t page_size)
{
	return page_size >= PC_RUN_BYTES ? 1 : PC_RUN_BYTES / page_size;
}

void postcopy_prepare(rmig_dest *d, const struct guest *g,
		      struct live_blobs *b)
{
	size_t ps = g->cfg.page_size;
	size_t len = g->memfd >= 0 ? (size_t)g->cfg.size :
		     (PC_URGENT + (size_t)PC_DEPTH * run_pages(ps)) * ps;
	void *p;
	int ret;

	if (ps > (size_t)PC_SPLIT * RMIG_READ_MAX ||
	    (g->memfd < 0 && ps != 4096)) {
		snprintf(b->landing_err, sizeof(b->landing_err), "post-copy "
			 "into %s memory with %zu-byte pages is not "
			 "implemented", guest_mem_name(g->cfg.mem), ps);
		return;
	}
	/* memfd, hugetlb: a second mapping of the guest's file. */
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, g->memfd >= 0 ?
		 MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, g->memfd, 0);
	if (p == MAP_FAILED) {
		snprintf(b->landing_err, sizeof(b->landing_err), "cannot map "
			 "%zu bytes %s: %s", len, g->memfd >= 0 ?
			 "of the guest's second mapping" : "of landing buffer",
			 strerror(errno));
		return;
	}
	madvise(p, len, MADV_POPULATE_WRITE);
	ret = rmig_dest_read_region(d, p, len);
	if (ret < 0) {
		snprintf(b->landing_err, sizeof(b->landing_err), "registering "
			 "where reads land: %s", pc_lib_err(ret));
		munmap(p, len);
		return;
	}
	b->landing = p;
	b->landing_len = len;
}

/* A userfaultfd with what @pc's memory needs, its RAM registered. */
static int pc_uffd(struct pc *pc, char *err, size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)pc->g->mem,
			   .len = pc->pages * pc->ps },
		.mode = pc->minor ? UFFDIO_REGISTER_MODE_MINOR :
				    UFFDIO_REGISTER_MODE_MISSING,
	};
	uint64_t need = !pc->minor ? 0 : pc->g->cfg.mem == GUEST_HUGETLB ?
			UFFD_FEATURE_MINOR_HUGETLBFS : UFFD_FEATURE_MINOR_SHMEM;
	unsigned op = pc->minor ? _UFFDIO_CONTINUE : _UFFDIO_COPY;
	int probe = dirty_uffd_new();

	if (probe < 0) {
		live_fail(err, errlen, "post-copy needs userfaultfd: %s (root, "
		     "vm.unprivileged_userfaultfd=1 or /dev/userfaultfd)",
		     strerror(errno));
		return -errno;
	}
	/* What the kernel offers (UFFDIO_API once per descriptor). */
	if (ioctl(probe, UFFDIO_API, &api)) {
		live_fail(err, errlen, "userfaultfd: UFFDIO_API: %s",
		     strerror(errno));
		close(probe);
		return -errno;
	}
	close(probe);
	if ((api.features & need) != need) {
		live_fail(err, errlen, "this kernel's userfaultfd has no %s: "
		     "post-copy into %s memory needs MINOR faults",
		     need == UFFD_FEATURE_MINOR_SHMEM ?
		     "UFFD_FEATURE_MINOR_SHMEM (Linux 5.14+)" :
		     "UFFD_FEATURE_MINOR_HUGETLBFS (Linux 5.13+)",
		     guest_mem_name(pc->g->cfg.mem));
		return -EOPNOTSUPP;
	}
	pc->uffd = dirty_uffd_new();
	api = (struct uffdio_api){ .api = UFFD_API, .features = need };
	if (pc->uffd < 0 || ioctl(pc->uffd, UFFDIO_API, &api) ||
	    ioctl(pc->uffd, UFFDIO_REGISTER, &reg)) {
		live_fail(err, errlen, "userfaultfd: registering the guest's %s "
		     "memory for %s faults: %s", guest_mem_name(pc->g->cfg.mem),
		     pc->minor ? "MINOR" : "MISSING", strerror(errno));
		return -errno;
	}
	if (!(reg.ioctls & (1ull << op))) {
		live_fail(err, errlen, "userfaultfd: no %s for %s memory",
		     pc->minor ? "UFFDIO_CONTINUE" : "UFFDIO_COPY",
		     guest_mem_name(pc->g->cfg.mem));
		return -EOPNOTSUPP;
	}
	return 0;
}

/* MADV_DONTNEED of @n ranges: a few process_madvise() calls on this
 * process (@pidfd) where the kernel takes MADV_DONTNEED there (Linux
 * 6.13+; one TLB flush a call), else one madvise() a range. */
static int dontneed(const struct iovec *iov, size_t n, int pidfd)
{
	size_t done = 0;

	while (pidfd >= 0 && done < n) {
		size_t k = n - done < IOV_MAX ? n - done : IOV_MAX;
		size_t want = 0;
		long got;

		for (size_t i = 0; i < k; i++)
			want += iov[done + i].iov_len;
		got = syscall(SYS_process_madvise, pidfd, iov + done, k,
			      MADV_DONTNEED, 0);
		if (got < 0 || (size_t)got != want)
			break; /* not offered here, or cut short: the rest
				* one by one (dropping twice is harmless) */
		done += k;
	}
	for (; done < n; done++)
		if (madvise(iov[done].iov_base, iov[done].iov_len,
			    MADV_DONTNEED))
			return -errno;
	return 0;
}

struct drop_job {
	const struct iovec *iov;
	size_t n;
	int pidfd;
	int ret[PAR_MAX];
};

/* Part @i of @k: about as many ranges as the others. */
static void drop_part(void *arg, unsigned i, unsigned k)
{
	struct drop_job *j = arg;
	size_t first = j->n * i / k;

	j->ret[i] = dontneed(j->iov + first, j->n * (i + 1) / k - first,
			     j->pidfd);
}

/* dontneed() of @n ranges (@pages pages) on a thread a CPU when there are
 * many: both guests are paused, the CPUs are free, and freeing the pages
 * is what takes the time (some 1 us a page). */
static int dontneed_all(const struct iovec *iov, size_t n, uint64_t pages)
{
	struct drop_job j = {
		.iov = iov, .n = n,
		.pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0),
	};
	unsigned k = par_parts(pages, DROP_PART_PAGES);
	int ret = 0;

	if (k > n)
		k = n ? (unsigned)n : 1;
	par_run(k, drop_part, &j);
	for (unsigned i = 0; i < k && !ret; i++)
		ret = j.ret[i];
	if (j.pidfd >= 0)
		close(j.pidfd);
	return ret;
}

/* Anonymous memory: move the pages of @len bytes at @at out of the
 * guest's mapping, which keeps the range, now empty (its next touch a
 * MISSING fault), and note where they went for the reaper.  Freeing the
 * pages is most of what MADV_DONTNEED costs (some 30-60 ms for 512 MiB
 * here); moving the page tables is not (0.1 ms), so it is what happens
 * in the pause.  False when the kernel will not (before Linux 5.7, or no
 * room for one more mapping): the caller drops them. */
static bool move_out(struct pc *pc, void *at, size_t len, size_t *cap)
{
	void *to;

	if (pc->ngraves == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		struct pc_grave *gr = realloc(pc->graves, c * sizeof(*gr));

		if (!gr)
			return false;
		pc->graves = gr;
		*cap = c;
	}
	to = mremap(at, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
	if (to == MAP_FAILED)
		return false;
	pc->graves[pc->ngraves++] = (struct pc_grave){ to, len };
	pc->moved += len / pc->ps;
	return true;
}

/* Unmap what move_out() moved (the reaper thread, or the caller's). */
static void *reap_main(void *arg)
{
	struct pc *pc = arg;

	for (size_t i = 0; i < pc->ngraves; i++)
		munmap(pc->graves[i].at, pc->graves[i].len);
	return NULL;
}

/* The moved pages are gone once this returns. */
static void reap_join(struct pc *pc)
{
	if (pc->reaper_on)
		pthread_join(pc->reaper, NULL);
	else
		reap_main(pc);
	pc->reaper_on = false;
	free(pc->graves);
	pc->graves = NULL;
	pc->ngraves = 0;
}

/* Mark the missing pages and drop them from the guest's mapping: long
 * runs of anonymous memory moved out (move_out()), the rest dropped. */
static int drop_missing(struct pc *pc, const uint64_t *missing, char *err,
			size_t errlen)
{
	struct iovec *iov = NULL;
	size_t n = 0, ncap = 0, cap = 0;
	uint64_t dropped = 0;
	bool move = !pc->minor;
	int ret = 0;

	for (uint64_t p = 0; p < pc->pages && !ret; ) {
		uint64_t e = p;

		while (e < pc->pages && (missing[e / 64] >> (e % 64) & 1))
			e++;
		for (uint64_t i = p; i < e; i++)
			atomic_init(&pc->st[i], PG_MISSING);
		if (e > p && move && (e - p) * pc->ps >= PC_MOVE_BYTES) {
			if (move_out(pc, pc->g->mem + p * pc->ps,
				     (e - p) * pc->ps, &cap)) {
				p = e;
				continue;
			}
			move = false; /* dropped from now on */
		}
		if (e > p) {
			if (n == ncap) {
				size_t c = ncap ? 2 * ncap : 1024;
				struct iovec *v = realloc(iov, c * sizeof(*v));

				if (!v) {
					ret = -ENOMEM;
					break;
				}
				iov = v;
				ncap = c;
			}
			iov[n++] = (struct iovec){
				.iov_base = pc->g->mem + p * pc->ps,
				.iov_len = (e - p) * pc->ps };
			dropped += e - p;
		}
		p = e > p ? e : p + 1;
	}
	if (!ret)
		ret = dontneed_all(iov, n, dropped);
	pc->dropped = dropped;
	free(iov);
	if (ret)
		live_fail(err, errlen, "MADV_DONTNEED of the missing pages: %s",
		     strerror(-ret));
	return ret;
}

/* Drop the missing pages from the guest's mapping (anonymous memory:
 * the pages; memfd and hugetlb: only the mapping, the file keeps the stale
 * page for the read to overwrite through the second mapping), register
 * the RAM, carve the landing buffer into slots. */
static int pc_setup(struct pc *pc, struct live_blobs *b, char *err,
		    size_t errlen)
{
	unsigned nslots = PC_URGENT + PC_DEPTH;
	int ret;

	if (!b->landing) {
		live_fail(err, errlen, "%s", b->landing_err);
		return -EOPNOTSUPP;
	}
	pc->minor = pc->g->memfd >= 0;
	if (pc->minor)
		pc->alias = b->landing;
	else
		pc->landing = b->landing;
	pc->run = run_pages(pc->ps);
	ret = drop_missing(pc, b->missing, err, errlen);
	if (ret)
		return ret;
	ret = pc_uffd(pc, err, errlen);
	if (ret)
		return ret;
	if (pipe2(pc->stop_pipe, O_CLOEXEC)) {
		live_fail(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	for (unsigned i = 0; i < nslots; i++) {
		struct pc_slot *sl = &pc->slots[i];
		bool urgent = i < PC_URGENT;

		sl->urgent = urgent;
		if (!pc->minor)
			sl->land = pc->landing + (urgent ? i : PC_URGENT +
				   (size_t)(i - PC_URGENT) * pc->run) * pc->ps;
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
	char what[64];
	uint64_t *touched = calloc((pc->pages + 63) / 64, 8);

	if (!touched) {
		live_fail(r->error, sizeof(r->error), "out of memory");
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
		live_fail(r->error, sizeof(r->error), "%" PRIu64 " pulled and %"
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
	snprintf(what, sizeof(what), "after the pull and %" PRIu64 " more "
		 "steps, ", resume_steps);
	return live_compare_replay(g, to, what, &r->checksum,
				   &r->replay_checksum, r->error,
				   sizeof(r->error));
}

int postcopy_dest(struct guest *g, rmig_dest **dp, int block,
		  uint64_t resume_steps, bool same_host, struct live_blobs *b,
		  const struct live_recover *rec, struct live_dest_result *r)
{
	rmig_dest *d = *dp;
	struct pc *pc = calloc(1, sizeof(*pc));
	pthread_t ft, pt;
	bool ft_on = false, pt_on = false;
	uint64_t t_switch = pc_now_ns();
	int ret;

	r->postcopy = true;
	if (!pc) {
		live_fail(r->error, sizeof(r->error), "out of memory");
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
	pthread_rwlock_init(&pc->sess_lock, NULL);
	pc->connected = true;
	pc->rec = rec && rec->reconnect && b->have_uuid ? rec : NULL;
	pc->b = b;
	pc->st = calloc(pc->pages, 1);
	pc->want = calloc(pc->pages, 1);
	ret = -EPROTO;
	if (!b->have_state)
		live_fail(r->error, sizeof(r->error), "the source switched to "
		     "post-copy without sending the guest state");
	else if (b->nhash != pc->pages ||
		 b->nmissing_words != (pc->pages + 63) / 64)
		live_fail(r->error, sizeof(r->error), "the source switched with %"
		     PRIu64 " page hashes and %" PRIu64 " words of missing "
		     "pages for %" PRIu64 " pages", b->nhash,
		     b->nmissing_words, pc->pages);
	else if ((ret = guest_adopt(g, &r->cfg, r->error,
				    sizeof(r->error))) == 0) {
	}
	if (!ret && (!pc->st || !pc->want ||
		     !(pc->lat_us = malloc(pc->pages * 4)))) {
		live_fail(r->error, sizeof(r->error), "out of memory");
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
		live_fail(r->error, sizeof(r->error), "cannot start the vCPU "
		     "threads: %s", strerror(-ret));
		goto lost;
	}
	if (same_host && pc_now_ns() > b->pause_ns)
		r->downtime_ms = (double)(pc_now_ns() - b->pause_ns) / 1e6;
	/* The moved-out pages freed as the guest runs (or by reap_join()). */
	if (pc->ngraves)
		pc->reaper_on = !pthread_create(&pc->reaper, NULL, reap_main,
						pc);
	ret = pthread_create(&ft, NULL, pc_fault_main, pc);
	ft_on = ret == 0;
	if (!ret)
		ret = pthread_create(&pt, NULL, pc_pull_main, pc);
	pt_on = ft_on && ret == 0;
	if (ret)
		pc_fail(pc, -ret, "cannot start the post-copy threads: %s",
			strerror(ret));
	if (pt_on)
		pthread_join(pt, NULL);
	reap_join(pc);
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
	r->pull_s = (double)(pc_now_ns() - t_switch) / 1e9;
	r->fault_pages = atomic_load(&pc->fault_pages);
	r->background_pages = atomic_load(&pc->bg_pages);
	r->faults_joined = atomic_load(&pc->faults_joined);
	r->faults_present = atomic_load(&pc->faults_present);
	r->eexist_pages = atomic_load(&pc->eexist);
	r->moved_out_pages = pc->moved;
	r->dropped_pages = pc->dropped;
	r->recoveries = pc->recoveries;
	r->outage_s = pc->outage_s;
	r->outage_faults = atomic_load(&pc->outage_faults);
	r->waited_faults = atomic_load(&pc->waited);
	r->outage_placed = pc->outage_placed;
	memcpy(r->session_pages, pc->session_pages, sizeof(r->session_pages));
	fault_stats(pc, r);
	/* The session in use now (the pull thread has ended). */
	d = *dp = pc->d;
	ret = atomic_load(&pc->err);
	if (ret) {
		live_fail(r->error, sizeof(r->error), "%s", pc->errmsg);
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
		live_fail(r->error, sizeof(r->error), "after the pull the source's "
		     "sync is not the final one");
	} else if (ret >= 0) {
		ret = rmig_dest_finish(d);
	}
	if (ret < 0) {
		live_fail(r->error, sizeof(r->error), "%s", pc_lib_err(ret));
		/* Every page is here: the guest is whole, not proven. */
		guest_pause(g);
		goto out;
	}
	ret = prove(pc, b, resume_steps, r);
	goto out;

lost:
	reap_join(pc);
	r->lost = true;
	r->never_arrived = pc->pages - pc->present;
	{
		char why[sizeof(r->error)];

		snprintf(why, sizeof(why), "%s", r->error);
		r->error[0] = '\0';
		if (ft_on || (d && rmig_dest_state(d) == RMIG_STATE_FAILED))
			live_fail(r->error, sizeof(r->error), "guest lost: the "
			     "source went away during post-copy; %" PRIu64
			     " of %" PRIu64 " pages never arrived (%s)",
			     r->never_arrived, pc->pages, why);
		else
			live_fail(r->error, sizeof(r->error), "guest lost: the "
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
	pthread_rwlock_destroy(&pc->sess_lock);
	free(pc->lat_us);
	free(pc->want);
	free(pc->st);
	free(pc);
	return ret;
}

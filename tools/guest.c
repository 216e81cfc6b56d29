/* SPDX-License-Identifier: MIT */
/*
 * guest - the workload of rmig-migrate's live migration (see guest.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "guest.h"
#include "mix64.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif

#define HUGE_2M (2u << 20)
#define PERIOD_NS 10000000ll /* throttle period: 10 ms */
#define STATE_MAGIC 0x31545347474d4952ull /* "RMIGGST1" */

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

static inline uint64_t mulhi(uint64_t a, uint64_t b)
{
	return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */

static const char *const mem_names[] = { "anon", "memfd", "hugetlb" };
static const char *const pat_names[] = { "random", "hot", "seq" };

int guest_parse_mem(const char *s, enum guest_mem *out)
{
	for (unsigned i = 0; i < 3; i++)
		if (!strcmp(s, mem_names[i])) {
			*out = (enum guest_mem)i;
			return 0;
		}
	return -1;
}

int guest_parse_pattern(const char *s, enum guest_pattern *out)
{
	for (unsigned i = 0; i < 3; i++)
		if (!strcmp(s, pat_names[i])) {
			*out = (enum guest_pattern)i;
			return 0;
		}
	return -1;
}

const char *guest_mem_name(enum guest_mem m)
{
	return (unsigned)m < 3 ? mem_names[m] : "?";
}

const char *guest_pattern_name(enum guest_pattern p)
{
	return (unsigned)p < 3 ? pat_names[p] : "?";
}

int guest_config_check(const struct guest_config *c, char *err, size_t len)
{
	if ((unsigned)c->mem > GUEST_HUGETLB) {
		set_err(err, len, "memory type %d is not anon, memfd or "
			"hugetlb", (int)c->mem);
		return -1;
	}
	if (c->page_size != 4096 && c->page_size != HUGE_2M) {
		set_err(err, len, "page size %zu: expected 4096 or 2097152",
			c->page_size);
		return -1;
	}
	if (c->mem == GUEST_HUGETLB && c->page_size != HUGE_2M) {
		set_err(err, len, "hugetlb memory has 2 MiB pages: use page "
			"size 2m (got %zu)", c->page_size);
		return -1;
	}
	if (!c->size || c->size % c->page_size) {
		set_err(err, len, "guest size %" PRIu64 " is not a positive "
			"multiple of the page size %zu", c->size, c->page_size);
		return -1;
	}
	if (!c->vcpus || c->vcpus > GUEST_MAX_VCPUS) {
		set_err(err, len, "vCPUs %u: expected 1..%d", c->vcpus,
			GUEST_MAX_VCPUS);
		return -1;
	}
	if (c->size / c->page_size < c->vcpus) {
		set_err(err, len, "%" PRIu64 " pages cannot give each of %u "
			"vCPUs a page", c->size / c->page_size, c->vcpus);
		return -1;
	}
	if ((unsigned)c->pattern > GUEST_SEQ) {
		set_err(err, len, "pattern %d is not random, hot or seq",
			(int)c->pattern);
		return -1;
	}
	if (c->hot_percent < 1 || c->hot_percent > 100) {
		set_err(err, len, "hot set %u %%: expected 1..100",
			c->hot_percent);
		return -1;
	}
	if (c->fill_percent > 100) {
		set_err(err, len, "fill %u %%: expected 0..100",
			c->fill_percent);
		return -1;
	}
	if (isnan(c->rate_mbs) || isinf(c->rate_mbs)) {
		set_err(err, len, "dirty rate is not a number");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The computation                                                     */

static void layout(struct guest *g)
{
	uint64_t slice = g->pages / g->cfg.vcpus;

	for (unsigned v = 0; v < g->cfg.vcpus; v++) {
		struct guest_vcpu *c = &g->vcpu[v];

		c->g = g;
		c->id = v;
		c->first = v * slice;
		c->npages = v + 1 == g->cfg.vcpus ? g->pages - c->first : slice;
	}
}

/*
 * The guest's stores race with the library reading the same pages on
 * purpose: pre-copy sends pages while the guest writes them, and the dirty
 * log sends a page again when it was written after being harvested.  A real
 * VM's stores are invisible to the VMM's ThreadSanitizer; so are these.
 */
#if defined(__SANITIZE_THREAD__)
#define GUEST_STORES __attribute__((no_sanitize_thread))
#else
#define GUEST_STORES
#endif

/* The page of its slice vCPU @c's step @n writes, and the step's draws. */
static uint64_t step_page(const struct guest_config *cfg,
			  const struct guest_vcpu *c, uint64_t n,
			  uint64_t *rp, uint64_t *r2p)
{
	uint64_t r = mix64(mix64(cfg->seed ^ ((uint64_t)(c->id + 1) << 40)) +
			   (n + 1) * GOLDEN);
	uint64_t r2 = mix64(r + GOLDEN);
	uint64_t idx;

	*rp = r;
	*r2p = r2;
	switch (cfg->pattern) {
	case GUEST_HOT: {
		uint64_t hot = c->npages * cfg->hot_percent / 100;

		if (!hot)
			hot = 1;
		/* 90 % of the writes into the hot set */
		idx = (r2 & 0xff) < 230 ? mulhi(r, hot) : mulhi(r, c->npages);
		break;
	}
	case GUEST_SEQ:
		idx = n % c->npages;
		break;
	default:
		idx = mulhi(r, c->npages);
		break;
	}
	return idx;
}

GUEST_STORES
static void vcpu_step(const struct guest_config *cfg, uint8_t *mem,
		      struct guest_vcpu *c)
{
	uint64_t n = c->st.steps;
	uint64_t r, r2, idx = step_page(cfg, c, n, &r, &r2), *w;
	size_t lines = cfg->page_size / GUEST_LINE;

	c->st.acc = mix64(c->st.acc ^ r);
	w = (uint64_t *)(mem + (c->first + idx) * cfg->page_size +
			 ((r2 >> 8) % lines) * GUEST_LINE);
	for (unsigned i = 0; i < GUEST_LINE / 8; i++)
		w[i] = c->st.acc + (i + 1) * GOLDEN;
	c->st.steps = n + 1;
}

static void boot(struct guest *g)
{
	size_t words = g->cfg.page_size / 8;

	for (uint64_t p = 0; p < g->pages; p++) {
		uint64_t key = mix64(mix64(g->cfg.seed + GOLDEN) ^ (p + 1));
		uint64_t *w = (uint64_t *)(g->mem + p * g->cfg.page_size);

		if (mulhi(key, 100) >= g->cfg.fill_percent)
			continue;
		for (size_t i = 0; i < words; i++)
			w[i] = key ^ ((i + 1) * GOLDEN);
	}
}

uint64_t guest_page_hash(const void *page, size_t len)
{
	const uint64_t *w = page;
	uint64_t h0 = 1, h1 = 2, h2 = 3, h3 = 4;
	const uint64_t k = 0x100000001b3ull;

	for (size_t i = 0; i + 4 <= len / 8; i += 4) {
		h0 = (h0 ^ w[i]) * k;
		h1 = (h1 ^ w[i + 1]) * k;
		h2 = (h2 ^ w[i + 2]) * k;
		h3 = (h3 ^ w[i + 3]) * k;
	}
	return mix64(h0 ^ mix64(h1 ^ mix64(h2 ^ mix64(h3 ^ len))));
}

uint64_t guest_checksum(const struct guest *g)
{
	uint64_t sum = mix64(g->pages);

	for (uint64_t p = 0; p < g->pages; p++)
		sum = mix64(sum ^ guest_page_hash(g->mem + p * g->cfg.page_size,
						  g->cfg.page_size));
	for (unsigned v = 0; v < g->cfg.vcpus; v++)
		sum = mix64(sum ^ mix64(g->vcpu[v].st.steps) ^ g->vcpu[v].st.acc);
	return sum;
}

void guest_touched(const struct guest *g, const uint64_t *from,
		   const uint64_t *to, uint64_t *bits)
{
	for (unsigned v = 0; v < g->cfg.vcpus; v++) {
		const struct guest_vcpu *c = &g->vcpu[v];

		for (uint64_t n = from[v]; n < to[v]; n++) {
			uint64_t r, r2;
			uint64_t p = c->first + step_page(&g->cfg, c, n, &r, &r2);

			bits[p / 64] |= 1ull << (p % 64);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Region                                                              */

int guest_create(struct guest *g, const struct guest_config *cfg, bool do_boot,
		 char *err, size_t errlen)
{
	size_t len;
	int ret;

	memset(g, 0, sizeof(*g));
	g->memfd = -1;
	if (guest_config_check(cfg, err, errlen))
		return -EINVAL;
	g->cfg = *cfg;
	g->pages = cfg->size / cfg->page_size;
	len = (size_t)cfg->size;

	if (cfg->mem == GUEST_ANON) {
		/* Over-map by one page to align to the page size. */
		size_t map = len + cfg->page_size;
		uint8_t *p = mmap(NULL, map, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				  -1, 0);
		uintptr_t a;

		if (p == MAP_FAILED) {
			ret = -errno;
			set_err(err, errlen, "cannot map %zu bytes of anonymous "
				"memory: %s", len, strerror(errno));
			return ret;
		}
		a = ((uintptr_t)p + cfg->page_size - 1) &
		    ~(uintptr_t)(cfg->page_size - 1);
		/* Unmap the slack so that the region is exactly one mapping. */
		if (a > (uintptr_t)p)
			munmap(p, a - (uintptr_t)p);
		if ((uintptr_t)p + map > a + len)
			munmap((void *)(a + len), (uintptr_t)p + map - (a + len));
		g->mem = (uint8_t *)a;
		g->map_len = len;
		/* 4 KiB pages: track at 4 KiB, no transparent huge pages. */
		madvise(g->mem, len, cfg->page_size == 4096 ? MADV_NOHUGEPAGE :
			MADV_HUGEPAGE);
	} else {
		unsigned flags = MFD_CLOEXEC;

		if (cfg->mem == GUEST_HUGETLB)
			flags |= MFD_HUGETLB | MFD_HUGE_2MB;
		g->memfd = memfd_create("rmig-guest", flags);
		if (g->memfd < 0) {
			ret = -errno;
			set_err(err, errlen, "memfd_create(%s): %s",
				guest_mem_name(cfg->mem), strerror(errno));
			return ret;
		}
		if (ftruncate(g->memfd, (off_t)len)) {
			ret = -errno;
			set_err(err, errlen, "ftruncate of the %s guest to %zu "
				"bytes: %s", guest_mem_name(cfg->mem), len,
				strerror(errno));
			goto err_close;
		}
		g->mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			      g->memfd, 0);
		if (g->mem == MAP_FAILED) {
			ret = -errno;
			g->mem = NULL;
			if (cfg->mem == GUEST_HUGETLB)
				set_err(err, errlen, "cannot map %zu MiB of 2 MiB "
					"huge pages: %s (free huge pages are "
					"reserved via /proc/sys/vm/nr_hugepages)",
					len >> 20, strerror(errno));
			else
				set_err(err, errlen, "cannot map the memfd guest: "
					"%s", strerror(errno));
			goto err_close;
		}
		g->map_len = len;
	}
	/* Fault every page in for writing now: the first touch is slow here
	 * and must not land in a timed phase; write-protection then covers
	 * every page. */
	if (madvise(g->mem, len, MADV_POPULATE_WRITE)) {
		ret = -errno;
		set_err(err, errlen, "cannot fault in the %s guest (%zu MiB): "
			"%s%s", guest_mem_name(cfg->mem), len >> 20,
			strerror(errno), cfg->mem == GUEST_HUGETLB ?
			" (not enough free huge pages: see "
			"/proc/sys/vm/nr_hugepages)" : "");
		goto err_unmap;
	}
	layout(g);
	if (do_boot)
		boot(g);
	pthread_mutex_init(&g->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&g->cond, &ca);
		pthread_cond_init(&g->paused_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	return 0;

err_unmap:
	munmap(g->mem, len);
	g->mem = NULL;
err_close:
	if (g->memfd >= 0)
		close(g->memfd);
	g->memfd = -1;
	return ret;
}

void guest_destroy(struct guest *g)
{
	if (!g->mem)
		return;
	guest_stop(g);
	pthread_cond_destroy(&g->cond);
	pthread_cond_destroy(&g->paused_cond);
	pthread_mutex_destroy(&g->lock);
	munmap(g->mem, g->map_len);
	g->mem = NULL;
	if (g->memfd >= 0)
		close(g->memfd);
	g->memfd = -1;
}

int guest_adopt(struct guest *g, const struct guest_config *cfg, char *err,
		size_t errlen)
{
	if (cfg->size != g->cfg.size || cfg->page_size != g->cfg.page_size) {
		set_err(err, errlen, "the source's guest has %" PRIu64 " bytes "
			"in pages of %zu, this side %" PRIu64 " in pages of %zu: "
			"use the same --size and --page-size/--memory on both "
			"sides", cfg->size, cfg->page_size, g->cfg.size,
			g->cfg.page_size);
		return -EINVAL;
	}
	g->cfg.vcpus = cfg->vcpus;
	g->cfg.pattern = cfg->pattern;
	g->cfg.hot_percent = cfg->hot_percent;
	g->cfg.fill_percent = cfg->fill_percent;
	g->cfg.seed = cfg->seed;
	g->cfg.rate_mbs = cfg->rate_mbs;
	layout(g);
	return 0;
}

void guest_set_state(struct guest *g, const struct guest_vcpu_state *st)
{
	for (unsigned v = 0; v < g->cfg.vcpus; v++)
		g->vcpu[v].st = st[v];
}

void guest_get_state(const struct guest *g, struct guest_vcpu_state *st)
{
	for (unsigned v = 0; v < g->cfg.vcpus; v++)
		st[v] = g->vcpu[v].st;
}

void guest_run_to(struct guest *g, const uint64_t *steps)
{
	for (unsigned v = 0; v < g->cfg.vcpus; v++)
		while (g->vcpu[v].st.steps < steps[v])
			vcpu_step(&g->cfg, g->mem, &g->vcpu[v]);
}

/* ------------------------------------------------------------------ */
/* vCPU threads                                                        */

/* Sleep on g->cond until @until_ns (absolute CLOCK_MONOTONIC) or a pause
 * or stop request.  Called with g->lock not held. */
static void nap_until(struct guest *g, int64_t until_ns)
{
	struct timespec ts = { .tv_sec = until_ns / 1000000000ll,
			       .tv_nsec = until_ns % 1000000000ll };

	pthread_mutex_lock(&g->lock);
	if (!g->pause_req && !g->stop)
		pthread_cond_timedwait(&g->cond, &g->lock, &ts);
	pthread_mutex_unlock(&g->lock);
}

/* Park at a step boundary while a pause is requested.  True on stop. */
static bool park(struct guest *g)
{
	bool stop;

	pthread_mutex_lock(&g->lock);
	if (g->pause_req && !g->stop) {
		g->paused++;
		pthread_cond_broadcast(&g->paused_cond);
		while (g->pause_req && !g->stop)
			pthread_cond_wait(&g->cond, &g->lock);
		g->paused--;
	}
	stop = g->stop;
	pthread_mutex_unlock(&g->lock);
	return stop;
}

static void *vcpu_main(void *arg)
{
	struct guest_vcpu *c = arg;
	struct guest *g = c->g;
	const struct guest_config *cfg = &g->cfg;
	bool unlimited = cfg->rate_mbs < 0;
	/* pages per second for this vCPU */
	double pps = unlimited ? 0 : cfg->rate_mbs * 1e6 /
		     (double)cfg->page_size / cfg->vcpus;
	double credit = 0;

	for (;;) {
		unsigned thr;
		int64_t t0, run_end, period_end, t;
		uint64_t used = 0;

		/* Relaxed: a hint to take the lock; park() decides under it. */
		if (atomic_load_explicit(&g->pause_flag, memory_order_relaxed)) {
			if (park(g))
				break;
			credit = 0;
			continue;
		}
		thr = atomic_load_explicit(&g->throttle, memory_order_relaxed);
		t0 = now_ns();
		period_end = t0 + PERIOD_NS;
		run_end = t0 + PERIOD_NS * (100 - (int64_t)thr) / 100;
		if (!unlimited && pps <= 0) {
			nap_until(g, period_end);
			continue;
		}
		while ((t = now_ns()) < run_end &&
		       !atomic_load_explicit(&g->pause_flag,
					     memory_order_relaxed)) {
			double allowed = unlimited ? (double)used + 64 :
					 credit + pps * (double)(t - t0) / 1e9;
			uint64_t n = 0;

			while (n < 64 && (double)(used + 1) <= allowed &&
			       !atomic_load_explicit(&g->pause_flag,
						     memory_order_relaxed)) {
				vcpu_step(cfg, g->mem, c);
				used++;
				n++;
			}
			if (!n && !unlimited) {
				int64_t next = t0 + (int64_t)(((double)(used + 1) -
						credit) / pps * 1e9);

				nap_until(g, next < run_end ? next : run_end);
			}
		}
		if (!unlimited) {
			int64_t ran = (t < run_end ? t : run_end) - t0;

			credit += pps * (double)ran / 1e9 - (double)used;
			/* No bursts after a stall: at most 20 ms of backlog. */
			if (credit > pps * 0.02 + 1)
				credit = pps * 0.02 + 1;
			if (credit < 0)
				credit = 0;
		}
		if (thr && !atomic_load_explicit(&g->pause_flag,
						 memory_order_relaxed))
			nap_until(g, period_end);
	}
	return NULL;
}

int guest_start(struct guest *g)
{
	g->stop = false;
	g->pause_req = false;
	atomic_store(&g->pause_flag, false);
	for (unsigned v = 0; v < g->cfg.vcpus; v++) {
		int ret = pthread_create(&g->vcpu[v].thread, NULL, vcpu_main,
					 &g->vcpu[v]);

		if (ret) {
			guest_stop(g);
			return -ret;
		}
		g->vcpu[v].started = true;
		pthread_mutex_lock(&g->lock);
		g->running++;
		pthread_mutex_unlock(&g->lock);
	}
	return 0;
}

void guest_pause(struct guest *g)
{
	pthread_mutex_lock(&g->lock);
	g->pause_req = true;
	atomic_store(&g->pause_flag, true);
	pthread_cond_broadcast(&g->cond);
	while (g->paused < g->running && !g->stop)
		pthread_cond_wait(&g->paused_cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

void guest_resume(struct guest *g)
{
	pthread_mutex_lock(&g->lock);
	g->pause_req = false;
	atomic_store(&g->pause_flag, g->stop);
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void guest_abandon(struct guest *g)
{
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	atomic_store(&g->pause_flag, true);
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void guest_set_throttle(struct guest *g, unsigned percent)
{
	atomic_store(&g->throttle, percent > 99 ? 99 : percent);
}

void guest_stop(struct guest *g)
{
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	atomic_store(&g->pause_flag, true);
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	for (unsigned v = 0; v < g->cfg.vcpus; v++) {
		if (!g->vcpu[v].started)
			continue;
		pthread_join(g->vcpu[v].thread, NULL);
		g->vcpu[v].started = false;
	}
	pthread_mutex_lock(&g->lock);
	g->running = 0;
	g->paused = 0;
	g->stop = false;
	g->pause_req = false;
	atomic_store(&g->pause_flag, false);
	pthread_mutex_unlock(&g->lock);
}

/* ------------------------------------------------------------------ */
/* Replay                                                              */

int guest_replay(const struct guest_config *cfg, const uint64_t *steps,
		 uint64_t *sum, char *err, size_t errlen)
{
	struct guest_config c = *cfg;
	struct guest *r = malloc(sizeof(*r));
	int ret;

	if (!r) {
		set_err(err, errlen, "out of memory for the replay");
		return -ENOMEM;
	}
	c.mem = GUEST_ANON;
	ret = guest_create(r, &c, true, err, errlen);
	if (ret) {
		free(r);
		return ret;
	}
	guest_run_to(r, steps);
	*sum = guest_checksum(r);
	guest_destroy(r);
	free(r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Device state                                                        */

#define STATE_HDR_WORDS 13

size_t guest_state_size(unsigned vcpus)
{
	return (STATE_HDR_WORDS + 2 * (size_t)vcpus) * 8;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

void guest_state_encode(const struct guest *g, uint64_t pause_ns, void *buf)
{
	const struct guest_config *c = &g->cfg;
	uint8_t *p = buf;
	uint64_t rate;
	uint64_t hdr[STATE_HDR_WORDS];

	memcpy(&rate, &c->rate_mbs, 8);
	hdr[0] = STATE_MAGIC;
	hdr[1] = c->size;
	hdr[2] = c->page_size;
	hdr[3] = (uint64_t)c->mem;
	hdr[4] = c->vcpus;
	hdr[5] = (uint64_t)c->pattern;
	hdr[6] = c->hot_percent;
	hdr[7] = c->fill_percent;
	hdr[8] = c->seed;
	hdr[9] = rate;
	hdr[10] = pause_ns;
	hdr[11] = g->pages;
	hdr[12] = 0;
	for (unsigned i = 0; i < STATE_HDR_WORDS; i++)
		put64(p + 8 * i, hdr[i]);
	p += STATE_HDR_WORDS * 8;
	for (unsigned v = 0; v < c->vcpus; v++) {
		put64(p, g->vcpu[v].st.steps);
		put64(p + 8, g->vcpu[v].st.acc);
		p += 16;
	}
}

int guest_state_decode(const void *buf, size_t len, struct guest_config *cfg,
		       struct guest_vcpu_state *st, uint64_t *pause_ns,
		       char *err, size_t errlen)
{
	const uint8_t *p = buf;
	uint64_t hdr[STATE_HDR_WORDS];
	struct guest_config c;

	if (len < STATE_HDR_WORDS * 8) {
		set_err(err, errlen, "guest state of %zu bytes is shorter than "
			"its header (%d)", len, STATE_HDR_WORDS * 8);
		return -EPROTO;
	}
	for (unsigned i = 0; i < STATE_HDR_WORDS; i++)
		hdr[i] = get64(p + 8 * i);
	if (hdr[0] != STATE_MAGIC) {
		set_err(err, errlen, "guest state: bad magic 0x%016" PRIx64,
			hdr[0]);
		return -EPROTO;
	}
	if (hdr[4] < 1 || hdr[4] > GUEST_MAX_VCPUS ||
	    len != guest_state_size((unsigned)hdr[4])) {
		set_err(err, errlen, "guest state: %" PRIu64 " vCPUs in %zu "
			"bytes", hdr[4], len);
		return -EPROTO;
	}
	memset(&c, 0, sizeof(c));
	c.size = hdr[1];
	c.page_size = (size_t)hdr[2];
	c.mem = hdr[3] > GUEST_HUGETLB ? (enum guest_mem)99 :
					 (enum guest_mem)hdr[3];
	c.vcpus = (unsigned)hdr[4];
	c.pattern = hdr[5] > GUEST_SEQ ? (enum guest_pattern)99 :
					 (enum guest_pattern)hdr[5];
	c.hot_percent = hdr[6] > 100 ? 0 : (unsigned)hdr[6];
	c.fill_percent = hdr[7] > 100 ? 101 : (unsigned)hdr[7];
	c.seed = hdr[8];
	memcpy(&c.rate_mbs, &hdr[9], 8);
	if (guest_config_check(&c, err, errlen) ||
	    hdr[11] != c.size / c.page_size) {
		char why[200];

		snprintf(why, sizeof(why), "%s", err ? err : "");
		set_err(err, errlen, "guest state: %s", why[0] ? why :
			"page count does not match the size");
		return -EPROTO;
	}
	p += STATE_HDR_WORDS * 8;
	for (unsigned v = 0; v < c.vcpus; v++) {
		st[v].steps = get64(p);
		st[v].acc = get64(p + 8);
		p += 16;
	}
	*cfg = c;
	*pause_ns = hdr[10];
	return 0;
}

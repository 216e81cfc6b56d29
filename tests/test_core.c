/* SPDX-License-Identifier: MIT */
/*
 * test_core.c - the core (sessions, channel threads, batching, sync,
 * device state, errors) end to end in ONE process over the in-process mock
 * provider: the source is driven by the test's main thread, the destination
 * by a second thread (accept, wait_sync until the final sync, finish).
 *
 * Covered: batch handoff (every queued page arrives exactly once, byte for
 * byte, for 1/2/8 channels and 1/7/128 pages per packet; zero pages arrive
 * as zeros, clearing what the destination held; block_received counts),
 * backpressure (with a slow write, the caller blocks and never more than
 * `channels` batches are in flight), device-state blobs in order with exact
 * bytes (one larger than a 64 KiB message), several rounds of changing
 * memory, the sync contract, error propagation from an injected write or
 * send failure (on posting and on completion), cancel from another thread,
 * bad arguments, and block tables that do not match.  Issue 3: a failed
 * completion names the write's block/offset/length (signaled or not) or
 * the SEND's message; on-demand registration with a cache smaller than RAM
 * (data intact, evictions counted, the cache bound and "never deregister
 * under an in-flight write" checked by the mock), bad registration and
 * NUMA values, an explicit NUMA node, and transport auto with the mock
 * registered as "verbs" (fallback with the reason logged, verbs on both
 * sides, an auto destination serving either kind of source).
 *
 * Run it under TSan and ASan too: the mock adds no happens-before edge a
 * real transport would not give, so a race on page data shows up.  Blocking
 * source calls (sync, finish) run with a deadline (src_call()), so a core
 * that hangs fails one test instead of timing out the program; teardown
 * checks that no provider object outlives the sessions and that the mock
 * saw no misuse (receiver-not-ready, a send buffer reused early, a
 * connection driven by two threads).  RMIG_TEST_FILTER=<glob> runs a subset.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <numa.h>

#include "unit_util.h"
#include "core.h"
#include "log_capture.h"
#include "mock_provider.h"
#include "rmig/rmig.h"
#include "wire.h"

#define PS 4096u
#define JOIN_TIMEOUT_S 30

#define assert_err_has(msg, substr)                                          \
	do {                                                                 \
		const char *m_ = (msg);                                      \
		if (!strstr(m_, (substr)))                                   \
			fail_msg("message '%s' lacks '%s'", m_, (substr));   \
	} while (0)

#define assert_last_err_has(substr) assert_err_has(rmig_last_error(), substr)

/* Check an rmig call returned 0, printing rmig_last_error() otherwise. */
#define assert_ok(call)                                                      \
	do {                                                                 \
		int r_ = (int)(call);                                        \
		if (r_ != 0)                                                 \
			fail_msg("%s returned %d: %s", #call, r_,            \
				 rmig_last_error());                         \
	} while (0)

/* ------------------------------------------------------------------ */
/* Guest memory: two blocks carved from one source and one destination  */
/* allocation, so the write hook can map a remote address to a page.    */

#define NBLK 2
static const char *const blk_name[NBLK] = { "pc.ram", "vga.vram" };

enum kind { K_ZERO, K_DATA, K_SPARSE };

struct mem {
	size_t pages[NBLK];
	size_t base[NBLK]; /* first page of block b in the allocations */
	size_t total;      /* pages */
	uint8_t *s, *d;
	_Atomic unsigned *writes; /* per destination page, by the hook */
};

static void mem_alloc(struct mem *m, size_t p0, size_t p1)
{
	memset(m, 0, sizeof(*m));
	m->pages[0] = p0;
	m->pages[1] = p1;
	m->base[0] = 0;
	m->base[1] = p0;
	m->total = p0 + p1;
	m->s = aligned_alloc(PS, m->total * PS);
	m->d = aligned_alloc(PS, m->total * PS);
	m->writes = calloc(m->total, sizeof(*m->writes));
	assert_non_null(m->s);
	assert_non_null(m->d);
	assert_non_null(m->writes);
	memset(m->s, 0, m->total * PS);
	/* The destination holds garbage everywhere: zero pages must end
	 * zero, not merely stay zero. */
	memset(m->d, 0xa5, m->total * PS);
}

static void mem_free(struct mem *m)
{
	free(m->s);
	free(m->d);
	free(m->writes);
	memset(m, 0, sizeof(*m));
}

static uint8_t *spage(struct mem *m, unsigned b, size_t page)
{
	return m->s + (m->base[b] + page) * PS;
}

static uint8_t *dpage(struct mem *m, unsigned b, size_t page)
{
	return m->d + (m->base[b] + page) * PS;
}

static enum kind fill_page(struct mem *m, unsigned b, size_t page,
			   enum kind k)
{
	uint8_t *p = spage(m, b, page);

	memset(p, 0, PS);
	if (k == K_SPARSE) {
		p[PS - 1] = (uint8_t)(1 + rng() % 255);
	} else if (k == K_DATA) {
		for (size_t i = 0; i < PS; i += 8) {
			uint64_t v = rng();

			memcpy(p + i, &v, 8);
		}
	}
	return k;
}

static enum kind kind_for(size_t page)
{
	switch (page % 8) {
	case 1: case 4: return K_ZERO;
	case 6: return K_SPARSE;
	default: return K_DATA;
	}
}

/* Fill every page of both blocks; returns the number of zero pages. */
static size_t mem_fill(struct mem *m)
{
	size_t zeros = 0;

	for (unsigned b = 0; b < NBLK; b++)
		for (size_t i = 0; i < m->pages[b]; i++)
			zeros += fill_page(m, b, i, kind_for(i + b)) == K_ZERO;
	return zeros;
}

/* Pages of block b equal on both sides?  Prints the first mismatch. */
static size_t mem_diff(struct mem *m, unsigned b, size_t first, size_t n)
{
	size_t bad = 0;

	for (size_t i = first; i < first + n; i++) {
		if (!memcmp(spage(m, b, i), dpage(m, b, i), PS))
			continue;
		if (!bad++) {
			size_t at = 0;

			while (spage(m, b, i)[at] == dpage(m, b, i)[at])
				at++;
			fprintf(stderr, "block %s page %zu differs at byte %zu "
				"(source 0x%02x, destination 0x%02x)\n",
				blk_name[b], i, at, spage(m, b, i)[at],
				dpage(m, b, i)[at]);
		}
	}
	return bad;
}

static size_t mem_diff_all(struct mem *m)
{
	return mem_diff(m, 0, 0, m->pages[0]) + mem_diff(m, 1, 0, m->pages[1]);
}

/* The mock's write hook: count writes per destination page. */
static void count_writes(uint64_t raddr, size_t len, void *arg)
{
	struct mem *m = arg;
	uintptr_t d = (uintptr_t)m->d;

	if (raddr < d || raddr + len > d + m->total * PS || !len)
		return;
	for (size_t p = (raddr - d) / PS; p <= (raddr + len - 1 - d) / PS;
	     p++)
		atomic_fetch_add_explicit(&m->writes[p], 1,
					  memory_order_relaxed);
}

static unsigned writes_of(struct mem *m, unsigned b, size_t page)
{
	return atomic_load_explicit(&m->writes[m->base[b] + page],
				    memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* The destination, driven from its own thread                         */

#define MAX_SYNCS 16
#define MAX_BLOBS 32

struct driver {
	rmig_dest *d;
	int dblk[NBLK]; /* destination index of source block b */
	int accept_timeout_ms;
	/* Hold: after accept, wait for `go` before the first wait_sync. */
	bool hold;
	_Atomic bool go;

	/* Written by the driver thread, read by the test after the join
	 * (accept_ret and, on failure, err: once `accepted` is set). */
	int accept_ret;
	int last_ret;   /* last wait_sync result (1: final) */
	int finish_ret;
	char err[RMIG_ERR_MSG_MAX];
	unsigned syncs; /* wait_sync returns of 0 or 1 */
	int64_t received[MAX_SYNCS][NBLK];
	unsigned blobs_at[MAX_SYNCS]; /* blobs collected by each sync */
	struct rmig_devstate *blob[MAX_BLOBS];
	unsigned nblobs;
	bool extra_blobs; /* more than MAX_BLOBS */
	/* rmig_dest_accept() has returned (driver_wait_accept()). */
	_Atomic bool accepted;
	_Atomic bool done;
};

static void collect_blobs(struct driver *dv)
{
	struct rmig_devstate *ds;

	while (rmig_dest_recv_devstate(dv->d, &ds) == 0) {
		if (dv->nblobs < MAX_BLOBS) {
			dv->blob[dv->nblobs++] = ds;
		} else {
			dv->extra_blobs = true;
			rmig_devstate_free(ds);
		}
	}
}

static void *driver_main(void *arg)
{
	struct driver *dv = arg;

	dv->finish_ret = 1;
	dv->accept_ret = rmig_dest_accept(dv->d, dv->accept_timeout_ms);
	if (dv->accept_ret)
		snprintf(dv->err, sizeof(dv->err), "%s", rmig_last_error());
	/* Release: publishes accept_ret and err; pairs with the acquire
	 * load in driver_wait_accept(). */
	atomic_store_explicit(&dv->accepted, true, memory_order_release);
	if (dv->accept_ret)
		goto out;
	while (dv->hold && !atomic_load(&dv->go))
		sleep_ms(5);
	for (;;) {
		int r = rmig_dest_wait_sync(dv->d, -1);

		dv->last_ret = r;
		if (r < 0) {
			snprintf(dv->err, sizeof(dv->err), "%s",
				 rmig_last_error());
			break;
		}
		collect_blobs(dv);
		if (dv->syncs < MAX_SYNCS) {
			for (unsigned b = 0; b < NBLK; b++)
				dv->received[dv->syncs][b] =
					rmig_dest_block_received(dv->d,
								 dv->dblk[b]);
			dv->blobs_at[dv->syncs] = dv->nblobs;
		}
		dv->syncs++;
		if (r == 1) {
			dv->finish_ret = rmig_dest_finish(dv->d);
			if (dv->finish_ret)
				snprintf(dv->err, sizeof(dv->err), "%s",
					 rmig_last_error());
			break;
		}
	}
out:
	atomic_store(&dv->done, true);
	return NULL;
}

struct spinner {
	_Atomic bool stop;
	bool running;
	pthread_t t[3];
};

/* Keep the CPUs busy so that threads get preempted anywhere. */
static void *spin_thread(void *arg)
{
	struct spinner *sp = arg;
	volatile uint64_t x = 0;

	while (!atomic_load_explicit(&sp->stop, memory_order_relaxed))
		x++;
	return NULL;
}

static void spinners_start(struct spinner *sp)
{
	atomic_init(&sp->stop, false);
	sp->running = true;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&sp->t[i], NULL, spin_thread,
						sp), 0);
}

static void spinners_stop(struct spinner *sp)
{
	if (!sp->running)
		return;
	sp->running = false;
	atomic_store(&sp->stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(sp->t[i], NULL);
}

/* ------------------------------------------------------------------ */
/* One migration: both sessions, their memory, the driver              */

struct mig {
	char addr[64];
	unsigned channels, ppp;
	struct mem mem;
	rmig_src *src;
	rmig_dest *dst;
	int sblk[NBLK];
	struct driver dv;
	pthread_t dthr;
	bool dthr_running;
	struct spinner spin;
	/* Extra source config (field_mask bits and their fields), and
	 * transport auto: when set, the side is created with
	 * rmig_*_create_auto(cfg, *_verbs, &rmig_mock_provider). */
	struct rmig_config src_extra;
	const struct rmig_provider_ops *src_verbs, *dst_verbs;
};

static unsigned addr_seq;

static void cfg_init(struct rmig_config *c, const char *addr,
		     unsigned channels, unsigned ppp)
{
	memset(c, 0, sizeof(*c));
	c->field_mask = RMIG_CFG_ADDRESS | RMIG_CFG_CHANNELS |
			RMIG_CFG_PAGES_PER_PACKET | RMIG_CFG_CONNECT_TIMEOUT;
	c->address = addr;
	c->channels = channels;
	c->pages_per_packet = ppp;
	c->connect_timeout_ms = 10000;
}

/* Join the driver, waiting at most @s seconds.  True if joined. */
static bool driver_join(struct mig *m, unsigned s)
{
	struct timespec ts;

	if (!m->dthr_running)
		return true;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += s;
	if (pthread_timedjoin_np(m->dthr, NULL, &ts))
		return false;
	m->dthr_running = false;
	return true;
}

/*
 * Run a blocking source call (sync, finish) with a deadline, so that a core
 * that hangs fails this test instead of timing out the whole program.  The
 * call runs on a helper thread while this one waits (the session is still
 * driven by one thread at a time); on expiry both sessions are cancelled,
 * which must release it.  The callee's rmig_last_error() is carried back.
 */
#define CALL_DEADLINE_S 10

struct src_call {
	int (*fn)(rmig_src *);
	rmig_src *src;
	int ret;
	char err[RMIG_ERR_MSG_MAX];
};

static void *src_call_thread(void *arg)
{
	struct src_call *c = arg;

	c->ret = c->fn(c->src);
	snprintf(c->err, sizeof(c->err), "%s", rmig_last_error());
	return NULL;
}

static int src_call(struct mig *m, int (*fn)(rmig_src *), const char *what)
{
	struct src_call c = { .fn = fn, .src = m->src };
	struct timespec ts;
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, src_call_thread, &c), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += CALL_DEADLINE_S;
	if (pthread_timedjoin_np(t, NULL, &ts)) {
		rmig_src_cancel(m->src);
		if (m->dst)
			rmig_dest_cancel(m->dst);
		pthread_join(t, NULL);
		fail_msg("%s did not return within %d s (returned %d after "
			 "cancel: %s)", what, CALL_DEADLINE_S, c.ret, c.err);
	}
	if (c.ret)
		rmig_err(c.ret, "%s", c.err);
	return c.ret;
}

static int src_sync(struct mig *m)
{
	return src_call(m, rmig_src_sync, "rmig_src_sync");
}

static int src_finish(struct mig *m)
{
	return src_call(m, rmig_src_finish, "rmig_src_finish");
}

/* Destination: blocks added in the reverse order of the source's, so the
 * source must map block indices by name. */
static void dest_up(struct mig *m, const char *const names[NBLK],
		    const size_t pages[NBLK])
{
	struct rmig_config c;
	char bound[64];

	cfg_init(&c, m->addr, m->channels, m->ppp);
	if (m->dst_verbs)
		assert_ok(rmig_dest_create_auto(&c, m->dst_verbs,
						&rmig_mock_provider, &m->dst));
	else
		assert_ok(rmig_dest_create_prov(&c, &rmig_mock_provider,
						&m->dst));
	for (int b = NBLK - 1; b >= 0; b--) {
		int idx = rmig_dest_add_block(m->dst, names[b],
					      dpage(&m->mem, (unsigned)b, 0),
					      pages[b] * PS);

		assert_true(idx >= 0);
		m->dv.dblk[b] = idx;
	}
	assert_ok(rmig_dest_listen(m->dst));
	assert_ok(rmig_dest_get_address(m->dst, bound, sizeof(bound)));
	assert_string_equal(bound, m->addr);
	m->dv.d = m->dst;
	if (!m->dv.accept_timeout_ms)
		m->dv.accept_timeout_ms = 20000;
	assert_int_equal(pthread_create(&m->dthr, NULL, driver_main, &m->dv),
			 0);
	m->dthr_running = true;
}

static void src_up(struct mig *m)
{
	struct rmig_config c;

	cfg_init(&c, m->addr, m->channels, m->ppp);
	c.field_mask |= m->src_extra.field_mask;
	c.reg_mode = m->src_extra.reg_mode;
	c.reg_chunk_size = m->src_extra.reg_chunk_size;
	c.reg_cache_chunks = m->src_extra.reg_cache_chunks;
	c.numa_node = m->src_extra.numa_node;
	if (m->src_verbs)
		assert_ok(rmig_src_create_auto(&c, m->src_verbs,
					       &rmig_mock_provider, &m->src));
	else
		assert_ok(rmig_src_create_prov(&c, &rmig_mock_provider,
					       &m->src));
	for (unsigned b = 0; b < NBLK; b++) {
		m->sblk[b] = rmig_src_add_block(m->src, blk_name[b],
						spage(&m->mem, b, 0),
						m->mem.pages[b] * PS);
		assert_int_equal(m->sblk[b], (int)b);
	}
}

/*
 * Wait until the destination's rmig_dest_accept() has returned, and check
 * it succeeded.  The source's rmig_src_connect() returns once the last
 * ACCEPT has arrived, while the destination's accept still starts its
 * channel threads and only then turns the session ACTIVE: on a loaded
 * machine that can take longer than a test's delay before it cancels or
 * destroys a side.  A cancel in that window fails the accept instead of
 * the wait_sync a test means to cancel; so the tests start from here,
 * with both sides ACTIVE.
 */
static void driver_wait_accept(struct mig *m)
{
	uint64_t dl = now_ms() + (uint64_t)m->dv.accept_timeout_ms +
		      JOIN_TIMEOUT_S * 1000u;

	/* Acquire pairs with the release store in driver_main() after
	 * rmig_dest_accept(): accept_ret and err are the driver's. */
	while (!atomic_load_explicit(&m->dv.accepted, memory_order_acquire)) {
		if (now_ms() > dl)
			fail_msg("rmig_dest_accept() still running %d s after "
				 "its timeout, the source connected",
				 JOIN_TIMEOUT_S);
		sleep_ms(1);
	}
	if (m->dv.accept_ret)
		fail_msg("destination: accept returned %d after the source "
			 "connected: %s", m->dv.accept_ret, m->dv.err);
	assert_int_equal(rmig_dest_state(m->dst), RMIG_STATE_ACTIVE);
}

/* Both sessions up and connected: the source's connect and the
 * destination's accept have returned. */
static void mig_start(struct mig *m, unsigned channels, unsigned ppp,
		      size_t p0, size_t p1)
{
	m->channels = channels;
	m->ppp = ppp;
	if (!m->mem.s)
		mem_alloc(&m->mem, p0, p1);
	dest_up(m, blk_name, m->mem.pages);
	src_up(m);
	assert_ok(rmig_src_connect(m->src));
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_ACTIVE);
	driver_wait_accept(m);
}

/* Final sync on both sides; both sessions end COMPLETED. */
static void mig_finish(struct mig *m)
{
	assert_ok(src_finish(m));
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_COMPLETED);
	if (!driver_join(m, JOIN_TIMEOUT_S))
		fail_msg("destination driver still running %d s after the "
			 "source finished", JOIN_TIMEOUT_S);
	if (m->dv.accept_ret || m->dv.last_ret != 1 || m->dv.finish_ret)
		fail_msg("destination: accept %d, last wait_sync %d, finish "
			 "%d: %s", m->dv.accept_ret, m->dv.last_ret,
			 m->dv.finish_ret, m->dv.err);
	assert_int_equal(rmig_dest_state(m->dst), RMIG_STATE_COMPLETED);
}

static int setup(void **state)
{
	struct mig *m = calloc(1, sizeof(*m));

	if (!m)
		return -1;
	mock_reset();
	rmig_err_clear();
	snprintf(m->addr, sizeof(m->addr), "core-test:%u", ++addr_seq);
	*state = m;
	return 0;
}

/* Destroy both sessions (the source first: the destination must notice
 * by itself; if it does not within 2 s, cancel it) and forget them. */
static void mig_stop(struct mig *m)
{
	if (m->src)
		rmig_src_destroy(m->src);
	m->src = NULL;
	/* A driver held before its first wait_sync (a test that failed
	 * before letting it go) must get to see the end too. */
	atomic_store(&m->dv.go, true);
	if (m->dthr_running && !driver_join(m, 2)) {
		/* The test did not expect it to end by itself here. */
		rmig_dest_cancel(m->dst);
		if (!driver_join(m, JOIN_TIMEOUT_S)) {
			fprintf(stderr, "destination driver does not end after "
				"cancel\n");
			abort();
		}
	}
	if (m->dst)
		rmig_dest_destroy(m->dst);
	m->dst = NULL;
	for (unsigned i = 0; i < m->dv.nblobs; i++)
		rmig_devstate_free(m->dv.blob[i]);
	memset(&m->dv, 0, sizeof(m->dv));
}

/* Runs after every test, passed or failed: nothing may be left. */
static int teardown(void **state)
{
	struct mig *m = *state;
	int ret = 0;

	spinners_stop(&m->spin);
	mig_stop(m);
	/* A test's log handler (log_capture_start()) goes only now, with no session
	 * left: the library reads it from channel threads without a lock
	 * (rmig_set_log_handler(): "call before creating sessions"). */
	rmig_set_log_handler(NULL, NULL, RMIG_LOG_WARN);
	mem_free(&m->mem);
	if (mock_live_objects()) {
		struct mock_counters c;

		mock_get_counters(&c);
		fprintf(stderr, "provider objects left after destroy: %llu "
			"domains, %llu registrations, %llu listeners, %llu "
			"connections\n", (unsigned long long)c.live_domains,
			(unsigned long long)c.live_mrs,
			(unsigned long long)c.live_listeners,
			(unsigned long long)c.live_conns);
		ret = -1;
	}
	{
		struct mock_counters c;

		mock_get_counters(&c);
		if (c.concurrent_use || c.send_buf_modified || c.rnr ||
		    c.domain_close_busy || c.dereg_inflight) {
			fprintf(stderr, "provider misuse: %llu concurrent uses, "
				"%llu send buffers modified early, %llu "
				"receiver-not-ready, %llu busy domain "
				"closes, %llu registrations dropped under a "
				"write\n",
				(unsigned long long)c.concurrent_use,
				(unsigned long long)c.send_buf_modified,
				(unsigned long long)c.rnr,
				(unsigned long long)c.domain_close_busy,
				(unsigned long long)c.dereg_inflight);
			ret = -1;
		}
	}
	mock_reset();
	free(m);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Batch handoff                                                       */

/* The registrations the core asked of the provider, by access: message
 * buffers per channel on each side, the source's RAM only ever as a write
 * source (no write access: see provider.h), the destination's as a write
 * target.  (The mock also refuses any other use at each post.) */
static void assert_reg_access(unsigned channels, uint64_t sources,
			      uint64_t targets)
{
	struct mock_counters c;

	mock_get_counters(&c);
	assert_int_equal(c.mr_regs[RMIG_MR_MSG_BUF], 2 * channels);
	assert_int_equal(c.mr_regs[RMIG_MR_WRITE_SOURCE], sources);
	assert_int_equal(c.mr_regs[RMIG_MR_WRITE_TARGET], targets);
	assert_int_equal(c.local_access_errors, 0);
	assert_int_equal(c.access_errors, 0);
}

static void get_stats(struct rmig_stats *st, bool dest, struct mig *m)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	if (dest)
		assert_ok(rmig_dest_get_stats(m->dst, st));
	else
		assert_ok(rmig_src_get_stats(m->src, st));
}

/* The offsets of pages 0..@n-1 in a shuffled order (rng()), in a new
 * array. */
static uint64_t *shuffled_offsets(size_t n)
{
	uint64_t *offs = calloc(n, sizeof(*offs));

	assert_non_null(offs);
	for (size_t i = 0; i < n; i++)
		offs[i] = i * PS;
	for (size_t k = n; k > 1; k--) { /* Fisher-Yates: swap k-1 and j < k */
		size_t j = rng() % k;
		uint64_t t = offs[k - 1];

		offs[k - 1] = offs[j];
		offs[j] = t;
	}
	return offs;
}

static void handoff(struct mig *m, unsigned channels, unsigned ppp)
{
	const size_t p0 = 200, p1 = 60;
	size_t zeros, zero_in_phase1 = 0;
	struct rmig_stats ss, ds;
	uint64_t *offs;

	mem_alloc(&m->mem, p0, p1);
	zeros = mem_fill(&m->mem);
	mock_set_write_hook(count_writes, &m->mem);
	mig_start(m, channels, ppp, p0, p1);

	/* Phase 1: block 0 page by page in a shuffled order, the first half
	 * of block 1 in one queue_pages call. */
	offs = shuffled_offsets(p0);
	for (size_t i = 0; i < p0; i++) {
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], offs[i]));
		zero_in_phase1 += kind_for(offs[i] / PS) == K_ZERO;
	}
	for (size_t i = 0; i < p1 / 2; i++)
		offs[i] = i * PS;
	assert_ok(rmig_src_queue_pages(m->src, m->sblk[1], offs, p1 / 2));
	assert_ok(src_sync(m));
	/* The sync contract: everything queued so far is in place. */
	assert_int_equal(mem_diff(&m->mem, 0, 0, p0), 0);
	assert_int_equal(mem_diff(&m->mem, 1, 0, p1 / 2), 0);
	/* The second half of block 1 was not sent: still garbage. */
	assert_int_equal(dpage(&m->mem, 1, p1 - 1)[0], 0xa5);
	/* Nothing is in flight now, so the received bitmaps are exact.
	 * (Read from this thread: it only loads the session's atomics.) */
	assert_int_equal(rmig_dest_block_received(m->dst, m->dv.dblk[0]),
			 (int64_t)p0);
	assert_int_equal(rmig_dest_block_received(m->dst, m->dv.dblk[1]),
			 (int64_t)(p1 / 2));

	/* Phase 2: the rest of block 1, mixing both calls. */
	for (size_t i = p1 / 2; i < p1; i += 2)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[1], i * PS));
	for (size_t i = p1 / 2 + 1, n = 0; i < p1; i += 2)
		offs[n++] = i * PS;
	assert_ok(rmig_src_queue_pages(m->src, m->sblk[1], offs,
				       (p1 - p1 / 2) / 2));
	free(offs);
	mig_finish(m);

	assert_int_equal(mem_diff_all(&m->mem), 0);
	/* Exactly once: every normal page written once, zero pages never
	 * (they travel in the header and are cleared on arrival). */
	for (unsigned b = 0; b < NBLK; b++)
		for (size_t i = 0; i < m->mem.pages[b]; i++) {
			unsigned want = kind_for(i + b) == K_ZERO ? 0 : 1;

			if (writes_of(&m->mem, b, i) != want)
				fail_msg("block %s page %zu written %u times, "
					 "expected %u", blk_name[b], i,
					 writes_of(&m->mem, b, i), want);
		}
	/* Received bitmap counts, seen by the destination's caller at each
	 * sync (after the first one the source may already be sending the
	 * next pages) and at the end. */
	assert_true(m->dv.syncs == 2);
	assert_int_equal(m->dv.received[0][0], (int64_t)p0);
	assert_true(m->dv.received[0][1] >= (int64_t)(p1 / 2));
	assert_int_equal(m->dv.received[1][0], (int64_t)p0);
	assert_int_equal(m->dv.received[1][1], (int64_t)p1);
	assert_int_equal(rmig_dest_block_received(m->dst, m->dv.dblk[0]),
			 (int64_t)p0);
	assert_int_equal(rmig_dest_block_received(m->dst, m->dv.dblk[1]),
			 (int64_t)p1);

	/* Statistics agree on both sides. */
	get_stats(&ss, false, m);
	get_stats(&ds, true, m);
	assert_int_equal(ss.channels, channels);
	assert_int_equal(ds.channels, channels);
	assert_int_equal(ss.normal_pages + ss.zero_pages, p0 + p1);
	assert_int_equal(ss.zero_pages, zeros);
	assert_int_equal(ds.normal_pages, ss.normal_pages);
	assert_int_equal(ds.zero_pages, ss.zero_pages);
	assert_int_equal(ds.packets, ss.packets);
	assert_int_equal(ds.zero_pages_cleared, zeros);
	assert_true(ss.packets >= (p0 + p1 + ppp - 1) / ppp);
	assert_int_equal(mock_count_sends_type(RMIG_MSG_PACKET), ss.packets);
	assert_true(zero_in_phase1 > 0);
	assert_reg_access(channels, NBLK, NBLK);
}

#define HANDOFF(c, p)                                                        \
	static void test_handoff_##c##ch_##p##ppp(void **state)              \
	{                                                                    \
		handoff(*state, c, p);                                       \
	}
HANDOFF(1, 1)
HANDOFF(1, 7)
HANDOFF(1, 128)
HANDOFF(2, 1)
HANDOFF(2, 7)
HANDOFF(2, 128)
HANDOFF(8, 1)
HANDOFF(8, 7)
HANDOFF(8, 128)

/* ------------------------------------------------------------------ */
/* Backpressure                                                        */

static void test_backpressure(void **state)
{
	struct mig *m = *state;
	const unsigned channels = 2, ppp = 4, batches = 12;
	const unsigned delay_ms = 25;
	uint64_t t0, elapsed, max_inflight = 0;

	mem_alloc(&m->mem, batches * ppp, 8);
	/* Data pages only: each batch is one contiguous run, one write. */
	for (size_t i = 0; i < m->mem.pages[0]; i++)
		fill_page(&m->mem, 0, i, K_DATA);
	mig_start(m, channels, ppp, 0, 0);
	mock_set_delay_us(delay_ms * 1000);

	t0 = now_ms();
	for (unsigned i = 0; i < batches * ppp; i++) {
		uint64_t handed, sent;

		assert_ok(rmig_src_queue_page(m->src, m->sblk[0],
					      (uint64_t)i * PS));
		/* A batch is handed to a channel when it is full; a channel
		 * takes the next only after sending the last one's
		 * header. */
		handed = (i + 1) / ppp;
		sent = mock_count_sends_type(RMIG_MSG_PACKET);
		if (handed > sent && handed - sent > max_inflight)
			max_inflight = handed - sent;
		if (handed > sent + channels)
			fail_msg("after page %u: %llu batches handed, %llu "
				 "sent: more than %u in flight", i,
				 (unsigned long long)handed,
				 (unsigned long long)sent, channels);
	}
	elapsed = now_ms() - t0;
	/* The caller waited: all but the last `channels` batches (and the
	 * one it just handed) were written, `channels` at a time. */
	if (elapsed < (uint64_t)((batches - channels - 1) / channels) *
		      delay_ms)
		fail_msg("queueing %u batches took %llu ms: the caller did not "
			 "wait for busy channels", batches,
			 (unsigned long long)elapsed);
	assert_true(max_inflight >= 1);
	assert_true(mock_max_concurrent_writes() <= channels);
	mock_set_delay_us(0);
	mig_finish(m);
	assert_int_equal(mem_diff(&m->mem, 0, 0, m->mem.pages[0]), 0);
}

/* ------------------------------------------------------------------ */
/* Device state                                                        */

struct blob {
	char idstr[RMIG_IDSTR_MAX];
	uint32_t instance;
	size_t len;
	uint8_t *data;
};

static void blob_make(struct blob *b, const char *idstr, uint32_t instance,
		      size_t len)
{
	snprintf(b->idstr, sizeof(b->idstr), "%s", idstr);
	b->instance = instance;
	b->len = len;
	b->data = malloc(len ? len : 1);
	assert_non_null(b->data);
	for (size_t i = 0; i < len; i++)
		b->data[i] = (uint8_t)rng();
}

static void blob_send(struct mig *m, struct blob *b)
{
	uint8_t *scratch = malloc(b->len ? b->len : 1);

	assert_non_null(scratch);
	memcpy(scratch, b->data, b->len);
	assert_ok(rmig_src_send_devstate(m->src, b->idstr, b->instance,
					 scratch, b->len));
	/* "The bytes are copied before the call returns." */
	memset(scratch, 0xee, b->len);
	free(scratch);
}

static void blob_check(const struct rmig_devstate *got, const struct blob *b,
		       unsigned i)
{
	if (strcmp(got->idstr, b->idstr) || got->instance_id != b->instance ||
	    got->len != b->len)
		fail_msg("blob %u: got '%s' instance %u, %zu bytes; expected "
			 "'%s' instance %u, %zu bytes", i, got->idstr,
			 got->instance_id, got->len, b->idstr, b->instance,
			 b->len);
	if (b->len && memcmp(got->data, b->data, b->len))
		fail_msg("blob %u ('%s'): bytes differ", i, b->idstr);
}

static void test_devstate(void **state)
{
	struct mig *m = *state;
	struct blob b[12];
	unsigned nb = 0, before_sync;
	char name[32];

	mem_alloc(&m->mem, 64, 8);
	mem_fill(&m->mem);
	mig_start(m, 4, 16, 0, 0);

	blob_make(&b[nb++], "0000:00:02.0/vfio", 0, 10);
	blob_make(&b[nb++], "empty", 1, 0);
	/* Larger than one 64 KiB message: fragments on one channel. */
	blob_make(&b[nb++], "big/ram-like", 2, 200 * 1024 + 13);
	for (unsigned i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "cpu/%u", i);
		blob_make(&b[nb++], name, 10 + i, 100 * i + 1);
	}
	for (unsigned i = 0; i < nb; i++) {
		blob_send(m, &b[i]);
		/* Pages in between, on the same channels. */
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0],
					      (uint64_t)i * PS));
	}
	before_sync = nb;
	assert_ok(src_sync(m));
	blob_make(&b[nb++], "after-sync", 99, 65536 * 2);
	blob_send(m, &b[nb - 1]);
	mig_finish(m);

	/* Everything sent before the sync was there when it completed. */
	assert_true(m->dv.syncs == 2);
	assert_int_equal(m->dv.blobs_at[0], before_sync);
	assert_int_equal(m->dv.nblobs, nb);
	assert_false(m->dv.extra_blobs);
	for (unsigned i = 0; i < nb; i++)
		blob_check(m->dv.blob[i], &b[i], i);
	for (unsigned i = 0; i < nb; i++)
		free(b[i].data);
	{
		struct rmig_stats ss, ds;
		uint64_t bytes = 0;

		for (unsigned i = 0; i < nb; i++)
			bytes += b[i].len;
		get_stats(&ss, false, m);
		get_stats(&ds, true, m);
		assert_int_equal(ss.devstate_blobs, nb);
		assert_int_equal(ds.devstate_blobs, nb);
		assert_int_equal(ss.devstate_bytes, bytes);
		assert_int_equal(ds.devstate_bytes, bytes);
	}
}

/* ------------------------------------------------------------------ */
/* Rounds and the sync contract                                        */

static void test_rounds(void **state)
{
	struct mig *m = *state;
	const unsigned rounds = 5;
	uint64_t *offs;

	mem_alloc(&m->mem, 256, 32);
	mem_fill(&m->mem);
	mig_start(m, 4, 32, 0, 0);
	offs = calloc(m->mem.total, sizeof(*offs));
	assert_non_null(offs);

	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned b = 0; b < NBLK; b++) {
			size_t n = 0;

			for (size_t i = 0; i < m->mem.pages[b]; i++) {
				if (r && rng() % 100 >= 20)
					continue;
				if (r) /* changed: to zero, data or sparse */
					fill_page(&m->mem, b, i,
						  (enum kind)(rng() % 3));
				offs[n++] = i * PS;
			}
			assert_ok(rmig_src_queue_pages(m->src, m->sblk[b], offs,
						       n));
		}
		assert_ok(src_sync(m));
		if (mem_diff_all(&m->mem))
			fail_msg("round %u: destination differs after sync", r);
	}
	free(offs);
	mig_finish(m);
	assert_int_equal(mem_diff_all(&m->mem), 0);
	assert_int_equal(m->dv.syncs, rounds + 1);
	{
		struct rmig_stats ss, ds;

		get_stats(&ss, false, m);
		get_stats(&ds, true, m);
		/* The final sync is a sync too. */
		assert_int_equal(ss.syncs, rounds + 1);
		assert_int_equal(ds.syncs, rounds + 1);
	}
}

/* Many small syncs, each with a partial batch (flushed by the sync): when
 * rmig_src_sync() returns, the pages queued before it are in place. */
static void test_sync_contract(void **state)
{
	struct mig *m = *state;

	mem_alloc(&m->mem, 64, 8);
	mig_start(m, 3, 7, 0, 0);
	for (unsigned it = 0; it < 30; it++) {
		size_t pages[5];

		for (unsigned k = 0; k < 5; k++) {
			/* Distinct pages: a page is queued once per sync. */
			bool dup;

			do {
				pages[k] = rng() % m->mem.pages[0];
				dup = false;
				for (unsigned j = 0; j < k; j++)
					dup |= pages[j] == pages[k];
			} while (dup);
			fill_page(&m->mem, 0, pages[k],
				  k == 0 ? K_ZERO : K_DATA);
			assert_ok(rmig_src_queue_page(m->src, m->sblk[0],
						      pages[k] * PS));
		}
		assert_ok(src_sync(m));
		for (unsigned k = 0; k < 5; k++)
			if (mem_diff(&m->mem, 0, pages[k], 1))
				fail_msg("iteration %u: page %zu not in place "
					 "after sync", it, pages[k]);
	}
	mig_finish(m);
}

/*
 * A sync, then more batches, then the final sync, in fresh sessions: every
 * channel must take part in each sync exactly once (the final sync must not
 * be mistaken for the previous one, or be missed: either leaves the
 * destination waiting for a marker that never comes).  Repeated because
 * the window is a scheduling one: the batches after the sync let the
 * caller run ahead of a channel thread that has not yet left the previous
 * sync.
 */
static void test_sync_batches_finish(void **state)
{
	struct mig *m = *state;

	mem_alloc(&m->mem, 64, 8);
	mem_fill(&m->mem);
	spinners_start(&m->spin);
	for (unsigned it = 0; it < 20; it++) {
		snprintf(m->addr, sizeof(m->addr), "core-test:%u.%u", addr_seq,
			 it);
		mig_start(m, 8, 4, 0, 0);
		for (size_t i = 0; i < 32; i++)
			assert_ok(rmig_src_queue_page(m->src, m->sblk[0],
						      i * PS));
		assert_ok(src_sync(m));
		for (size_t i = 32; i < 64; i++)
			assert_ok(rmig_src_queue_page(m->src, m->sblk[0],
						      i * PS));
		mig_finish(m);
		assert_int_equal(m->dv.syncs, 2);
		mig_stop(m);
		assert_int_equal(mock_live_objects(), 0);
	}
	spinners_stop(&m->spin);
	assert_int_equal(mem_diff(&m->mem, 0, 0, 64), 0);
}

/* ------------------------------------------------------------------ */
/* Error propagation                                                   */

/*
 * Inject @op's failure on the @nth call after connecting, keep queueing;
 * the caller's next call returns @err with a message naming the channel,
 * the source is FAILED, the destination notices by itself, and both
 * destroys return (teardown checks nothing is left).
 */
static void error_case(struct mig *m, const char *op, unsigned nth, int err)
{
	int ret = 0;
	size_t i;

	mem_alloc(&m->mem, 128, 8);
	for (i = 0; i < m->mem.pages[0]; i++)
		fill_page(&m->mem, 0, i, K_DATA);
	mig_start(m, 4, 4, 0, 0);
	assert_int_equal(mock_fail_after(op, nth, err), 0);
	for (unsigned pass = 0; pass < 50 && !ret; pass++) {
		for (i = 0; i < m->mem.pages[0] && !ret; i++)
			ret = rmig_src_queue_page(m->src, m->sblk[0], i * PS);
		if (!ret)
			ret = src_sync(m);
	}
	/* The failing channel reports the injected errno, unless the
	 * destination saw the broken connection first and its ERROR message
	 * (which carries the cause) arrived on another channel before. */
	if (ret != err && !(ret < 0 && strstr(rmig_last_error(), "peer "
					      "reported") &&
			    strstr(rmig_last_error(), "injected")))
		fail_msg("injected %s failure %d: caller got %d (%s)", op, err,
			 ret, rmig_last_error());
	assert_last_err_has("channel");
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_FAILED);
	assert_err_has(rmig_src_error(m->src), "channel");
	assert_err_has(rmig_src_error(m->src), "injected");
	/* Later calls keep returning it. */
	assert_int_equal(rmig_src_queue_page(m->src, m->sblk[0], 0), ret);
	assert_int_equal(rmig_src_sync(m->src), ret);
	assert_int_equal(rmig_src_finish(m->src), ret);

	/* Source gone: the destination fails by itself, no cancel. */
	rmig_src_destroy(m->src);
	m->src = NULL;
	if (!driver_join(m, JOIN_TIMEOUT_S))
		fail_msg("destination still waiting %d s after the source "
			 "failed and was destroyed", JOIN_TIMEOUT_S);
	/* Where it surfaces depends on timing: accept (the source failed
	 * while the channel threads were starting), wait_sync or finish. */
	if (!(m->dv.accept_ret < 0 || m->dv.last_ret < 0 ||
	      m->dv.finish_ret < 0))
		fail_msg("destination did not fail: accept %d, last wait_sync "
			 "%d, finish %d, syncs %u: %s", m->dv.accept_ret,
			 m->dv.last_ret, m->dv.finish_ret, m->dv.syncs,
			 m->dv.err);
	assert_int_equal(rmig_dest_state(m->dst), RMIG_STATE_FAILED);
	assert_err_has(rmig_dest_error(m->dst), "channel");
}

static void test_error_write_post(void **state)
{
	error_case(*state, "write", 3, -EIO);
}

static void test_error_write_completion(void **state)
{
	error_case(*state, "write_cqe", 5, -EIO);
}

static void test_error_send_post(void **state)
{
	error_case(*state, "send", 4, -ENOBUFS);
}

static void test_error_send_completion(void **state)
{
	error_case(*state, "send_cqe", 6, -EHOSTUNREACH);
}

/* ------------------------------------------------------------------ */
/* Cancel                                                              */

struct canceller {
	rmig_src *src;
	rmig_dest *dst;
	unsigned after_ms;
};

/* A 2-channel session whose destination holds off its first wait_sync, so
 * a sync of the 10 pages queued here blocks until something gives.  The
 * destination's accept is slow (its ACCEPT sends take 200 ms), as on a
 * loaded machine: the tests' cancels come 150 ms after mig_start(). */
static void start_held_with_pages(struct mig *m)
{
	mem_alloc(&m->mem, 16, 8);
	mem_fill(&m->mem);
	m->dv.hold = true;
	mock_set_send_delay_us(RMIG_MSG_ACCEPT, 200 * 1000);
	mig_start(m, 2, 4, 0, 0);
	mock_set_send_delay_us(0, 0);
	for (size_t i = 0; i < 10; i++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], i * PS));
}

static void *cancel_thread(void *arg)
{
	struct canceller *c = arg;

	sleep_ms(c->after_ms);
	if (c->src)
		rmig_src_cancel(c->src);
	if (c->dst)
		rmig_dest_cancel(c->dst);
	return NULL;
}

/* The caller blocked in queue_page (every channel busy) returns
 * -ECANCELED when another thread cancels, without waiting for the
 * channel: the one write in flight (3 s in the mock) has not landed when
 * it returns.  (No bound on the time taken: the write's own delay is the
 * yardstick, far above a loaded machine's scheduling delays.) */
static void test_cancel_blocked_queue(void **state)
{
	struct mig *m = *state;
	struct canceller c;
	pthread_t t;
	uint64_t landed;
	int ret = 0;

	mem_alloc(&m->mem, 16, 8);
	for (size_t i = 0; i < 16; i++)
		fill_page(&m->mem, 0, i, K_DATA);
	mig_start(m, 1, 1, 0, 0);
	mock_set_delay_us(3000 * 1000); /* 3 s per write */
	c = (struct canceller){ .src = m->src, .after_ms = 150 };
	assert_int_equal(pthread_create(&t, NULL, cancel_thread, &c), 0);
	for (size_t i = 0; i < 16 && !ret; i++)
		ret = rmig_src_queue_page(m->src, m->sblk[0], i * PS);
	landed = mock_count_writes();
	pthread_join(t, NULL);
	assert_int_equal(ret, -ECANCELED);
	if (landed)
		fail_msg("queue_page returned -ECANCELED after %llu write(s) "
			 "landed, each 3 s after it began (the cancel was at "
			 "150 ms): it waited for the channel",
			 (unsigned long long)landed);
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_CANCELLED);
	assert_err_has(rmig_src_error(m->src), "cancel");
	assert_int_equal(rmig_src_sync(m->src), -ECANCELED);
}

/* A source blocked in sync (the destination's caller is not at
 * wait_sync) returns -ECANCELED. */
static void test_cancel_blocked_sync(void **state)
{
	struct mig *m = *state;
	struct canceller c;
	pthread_t t;
	int ret;

	start_held_with_pages(m);
	c = (struct canceller){ .src = m->src, .after_ms = 150 };
	assert_int_equal(pthread_create(&t, NULL, cancel_thread, &c), 0);
	ret = src_sync(m);
	pthread_join(t, NULL);
	assert_int_equal(ret, -ECANCELED);
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_CANCELLED);
	/* Let the destination go on: it sees the source disappear. */
	rmig_src_destroy(m->src);
	m->src = NULL;
	atomic_store(&m->dv.go, true);
	if (!driver_join(m, JOIN_TIMEOUT_S))
		fail_msg("destination still waiting %d s after the source "
			 "was cancelled and destroyed", JOIN_TIMEOUT_S);
	assert_true(m->dv.last_ret < 0);
}

/* The destination's caller blocked in wait_sync returns -ECANCELED; the
 * source then fails instead of waiting forever.  @accept_delay_us: the
 * destination's ACCEPT sends take that long to return (the mock), so the
 * source is connected well before the destination's rmig_dest_accept()
 * returns. */
static void cancel_dest(struct mig *m, unsigned accept_delay_us)
{
	struct canceller c;
	pthread_t t;
	int ret = 0;

	mem_alloc(&m->mem, 16, 8);
	mem_fill(&m->mem);
	mock_set_send_delay_us(RMIG_MSG_ACCEPT, accept_delay_us);
	mig_start(m, 2, 4, 0, 0);
	mock_set_send_delay_us(0, 0);
	c = (struct canceller){ .dst = m->dst, .after_ms = 100 };
	assert_int_equal(pthread_create(&t, NULL, cancel_thread, &c), 0);
	pthread_join(t, NULL);
	if (!driver_join(m, JOIN_TIMEOUT_S))
		fail_msg("destination wait_sync not released by cancel");
	assert_int_equal(m->dv.last_ret, -ECANCELED);
	assert_int_equal(rmig_dest_state(m->dst), RMIG_STATE_CANCELLED);
	rmig_dest_destroy(m->dst);
	m->dst = NULL;
	for (size_t i = 0; i < 16 && !ret; i++)
		ret = rmig_src_queue_page(m->src, m->sblk[0], i * PS);
	if (!ret)
		ret = src_sync(m);
	assert_true(ret < 0);
	assert_last_err_has("channel");
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_FAILED);
}

static void test_cancel_dest(void **state)
{
	cancel_dest(*state, 0);
}

/* The same with a destination slow to finish its accept (a loaded
 * machine): the cancel still finds its caller in wait_sync, because
 * mig_start() returns only once the destination's accept has. */
static void test_cancel_dest_slow_accept(void **state)
{
	cancel_dest(*state, 300 * 1000);
}

/*
 * The destination is cancelled while the source's caller is blocked in
 * rmig_src_sync() (the destination's caller is held before wait_sync, so
 * every source channel waits for its SYNC_ACK).  Each destination channel
 * sends an ERROR carrying the errno before it leaves, so the source's sync
 * fails promptly with the destination's reason and errno (-ECANCELED), not
 * with a reset, and not only once the destination is destroyed.  (The
 * destination's connections stay open until rmig_dest_destroy(), which
 * this test calls only afterwards: the ERROR is the only way the source can
 * learn of the cancel, so the outcome is deterministic.)
 */
static void test_cancel_dest_in_sync(void **state)
{
	struct mig *m = *state;
	struct canceller c;
	pthread_t t;
	uint64_t t0, took;
	int ret;

	start_held_with_pages(m);
	c = (struct canceller){ .dst = m->dst, .after_ms = 150 };
	t0 = now_ms();
	assert_int_equal(pthread_create(&t, NULL, cancel_thread, &c), 0);
	/* src_call(): fails the test if the sync is still blocked after
	 * CALL_DEADLINE_S (it then cancels both sides to get it back). */
	ret = src_sync(m);
	took = now_ms() - t0;
	pthread_join(t, NULL);
	if (ret != -ECANCELED)
		fail_msg("rmig_src_sync after the destination was cancelled: "
			 "%d (%s), want -ECANCELED from the peer's ERROR", ret,
			 rmig_last_error());
	assert_last_err_has("peer reported");
	assert_last_err_has("cancelled");
	assert_last_err_has("channel");
	if (took > 5000)
		fail_msg("rmig_src_sync returned %llu ms after the start, the "
			 "cancel was at 150 ms", (unsigned long long)took);
	/* The source did not cancel: it failed, with the peer's reason. */
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_FAILED);
	assert_err_has(rmig_src_error(m->src), "peer reported");
	assert_err_has(rmig_src_error(m->src), "cancelled");
	/* Sticky. */
	assert_int_equal(rmig_src_sync(m->src), -ECANCELED);
	/* The destination's caller, let go, sees its own cancel. */
	atomic_store(&m->dv.go, true);
	if (!driver_join(m, JOIN_TIMEOUT_S))
		fail_msg("destination driver still running %d s after its "
			 "cancel", JOIN_TIMEOUT_S);
	assert_int_equal(m->dv.last_ret, -ECANCELED);
	assert_int_equal(rmig_dest_state(m->dst), RMIG_STATE_CANCELLED);
}

/* ------------------------------------------------------------------ */
/* Bad arguments                                                       */

static void expect_create_einval(struct rmig_config *c, const char *field)
{
	rmig_src *s = NULL;
	rmig_dest *d = NULL;

	assert_int_equal(rmig_src_create_prov(c, &rmig_mock_provider, &s),
			 -EINVAL);
	assert_last_err_has(field);
	assert_null(s);
	assert_int_equal(rmig_dest_create_prov(c, &rmig_mock_provider, &d),
			 -EINVAL);
	assert_last_err_has(field);
	assert_null(d);
}

static void expect_src_einval(struct rmig_config *c, const char *what)
{
	rmig_src *s = NULL;

	assert_int_equal(rmig_src_create_prov(c, &rmig_mock_provider, &s),
			 -EINVAL);
	assert_last_err_has(what);
	assert_null(s);
}

static void test_bad_config(void **state)
{
	struct mig *m = *state;
	struct rmig_config c;
	rmig_src *s = NULL;

	assert_int_equal(rmig_src_create_prov(NULL, &rmig_mock_provider, &s),
			 -EINVAL);
	assert_last_err_has("config");
	cfg_init(&c, m->addr, 2, 16);
	assert_int_equal(rmig_src_create_prov(&c, &rmig_mock_provider, NULL),
			 -EINVAL);
	assert_last_err_has("out");

	cfg_init(&c, m->addr, 0, 16);
	expect_create_einval(&c, "channels");
	cfg_init(&c, m->addr, 65, 16);
	expect_create_einval(&c, "channels");
	cfg_init(&c, m->addr, 2, 16);
	c.field_mask |= RMIG_CFG_PAGE_SIZE;
	c.page_size = 8192;
	expect_create_einval(&c, "page_size");
	cfg_init(&c, m->addr, 2, 0);
	expect_create_einval(&c, "pages_per_packet");
	cfg_init(&c, m->addr, 2, RMIG_MAX_PAGES_PER_PACKET + 1);
	expect_create_einval(&c, "pages_per_packet");
	cfg_init(&c, NULL, 2, 16);
	expect_create_einval(&c, "address");
	cfg_init(&c, m->addr, 2, 16);
	c.field_mask |= 1ull << 40;
	expect_create_einval(&c, "field_mask");
}

static void test_bad_blocks(void **state)
{
	struct mig *m = *state;
	char longname[RMIG_BLOCK_NAME_MAX + 8];
	struct rmig_config c;
	rmig_src *s;

	mem_alloc(&m->mem, 8, 8);
	cfg_init(&c, m->addr, 1, 16);
	assert_ok(rmig_src_create_prov(&c, &rmig_mock_provider, &s));
	m->src = s;
	assert_int_equal(rmig_src_add_block(NULL, "x", m->mem.s, PS), -EINVAL);
	assert_last_err_has("session");
	assert_int_equal(rmig_src_add_block(s, NULL, m->mem.s, PS), -EINVAL);
	assert_last_err_has("name");
	assert_int_equal(rmig_src_add_block(s, "", m->mem.s, PS), -EINVAL);
	assert_last_err_has("name");
	memset(longname, 'n', sizeof(longname) - 1);
	longname[RMIG_BLOCK_NAME_MAX] = '\0'; /* 64 characters: one too many */
	assert_int_equal(rmig_src_add_block(s, longname, m->mem.s, PS),
			 -EINVAL);
	assert_last_err_has("name");
	longname[RMIG_BLOCK_NAME_MAX - 1] = '\0'; /* 63: fits */
	assert_int_equal(rmig_src_add_block(s, longname, m->mem.s, PS), 0);
	assert_int_equal(rmig_src_add_block(s, "ram", NULL, PS), -EINVAL);
	assert_last_err_has("host");
	assert_int_equal(rmig_src_add_block(s, "ram", m->mem.s + 8, PS),
			 -EINVAL);
	assert_last_err_has("host");
	assert_int_equal(rmig_src_add_block(s, "ram", m->mem.s, PS + 1),
			 -EINVAL);
	assert_last_err_has("length");
	assert_int_equal(rmig_src_add_block(s, "ram", m->mem.s, 0), -EINVAL);
	assert_last_err_has("length");
	assert_int_equal(rmig_src_add_block(s, "ram", m->mem.s + PS, PS), 1);
	/* The destination checks the same. */
	{
		rmig_dest *d;

		assert_ok(rmig_dest_create_prov(&c, &rmig_mock_provider, &d));
		m->dst = d;
		assert_int_equal(rmig_dest_add_block(NULL, "x", m->mem.d, PS),
				 -EINVAL);
		assert_last_err_has("session");
		assert_int_equal(rmig_dest_add_block(d, longname, m->mem.d,
						     PS + 1), -EINVAL);
		assert_last_err_has("length");
		assert_int_equal(rmig_dest_add_block(d, "ram", m->mem.d, PS),
				 0);
		assert_int_equal(rmig_dest_add_block(d, "ram", m->mem.d + PS,
						     PS), -EEXIST);
		assert_last_err_has("ram");
		assert_last_err_has("name");
	}
	/* Duplicate name: -EEXIST, as documented. */
	assert_int_equal(rmig_src_add_block(s, "ram", m->mem.s + 2 * PS, PS),
			 -EEXIST);
	assert_last_err_has("ram");
	assert_last_err_has("name");
}

static void test_bad_queue_args(void **state)
{
	struct mig *m = *state;
	uint64_t offs[3] = { 0, PS, 3 };
	uint8_t blob[8] = { 0 };
	char longid[RMIG_IDSTR_MAX + 1];

	mem_alloc(&m->mem, 16, 8);
	mem_fill(&m->mem);
	mig_start(m, 2, 4, 0, 0);

	assert_int_equal(rmig_src_queue_page(NULL, 0, 0), -EINVAL);
	assert_last_err_has("session");
	assert_int_equal(rmig_src_queue_page(m->src, -1, 0), -EINVAL);
	assert_last_err_has("block");
	assert_int_equal(rmig_src_queue_page(m->src, NBLK, 0), -EINVAL);
	assert_last_err_has("block");
	assert_int_equal(rmig_src_queue_page(m->src, 0, 100), -EINVAL);
	assert_last_err_has("offset");
	assert_last_err_has("aligned");
	assert_int_equal(rmig_src_queue_page(m->src, 0, 16 * PS), -EINVAL);
	assert_last_err_has("offset");
	assert_last_err_has("past the end");
	assert_int_equal(rmig_src_queue_page(m->src, 1, UINT64_MAX & ~4095ull),
			 -EINVAL);
	assert_last_err_has("offset");
	assert_int_equal(rmig_src_queue_pages(m->src, 0, NULL, 2), -EINVAL);
	assert_last_err_has("offsets");
	assert_int_equal(rmig_src_queue_pages(m->src, 0, offs, 3), -EINVAL);
	assert_last_err_has("offset");
	assert_int_equal(rmig_src_queue_pages(m->src, 7, offs, 1), -EINVAL);
	assert_last_err_has("block");

	assert_int_equal(rmig_src_send_devstate(m->src, NULL, 0, blob, 8),
			 -EINVAL);
	assert_last_err_has("idstr");
	memset(longid, 'i', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(rmig_src_send_devstate(m->src, longid, 0, blob, 8),
			 -EINVAL);
	assert_last_err_has("idstr");
	assert_int_equal(rmig_src_send_devstate(m->src, "dev", 0, NULL, 8),
			 -EINVAL);
	assert_last_err_has("data");
	assert_int_equal(rmig_dest_block_received(m->dst, 5), -EINVAL);
	assert_last_err_has("block");

	/* Bad arguments do not fail the session. */
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_ACTIVE);
	assert_ok(rmig_src_queue_pages(m->src, 0, offs, 2));
	mig_finish(m);
	assert_int_equal(mem_diff(&m->mem, 0, 0, 2), 0);
}

/* A page is queued at most once per sync: the second time is -EBUSY with
 * the block and offset named, queue_pages is all or nothing, and after a
 * sync the page may be queued again. */
static void test_queue_twice(void **state)
{
	struct mig *m = *state;
	uint64_t dup[3] = { 4 * PS, 5 * PS, 4 * PS };
	uint64_t two[2] = { 5 * PS, 6 * PS };

	mem_alloc(&m->mem, 16, 8);
	mem_fill(&m->mem);
	mig_start(m, 2, 4, 0, 0);

	assert_ok(rmig_src_queue_page(m->src, 0, PS));
	assert_int_equal(rmig_src_queue_page(m->src, 0, PS), -EBUSY);
	assert_last_err_has("queued twice");
	assert_last_err_has("0x1000");
	/* Duplicate inside one call: nothing of it is queued... */
	assert_int_equal(rmig_src_queue_pages(m->src, 0, dup, 3), -EBUSY);
	assert_last_err_has("page 2");
	/* ...so 5 * PS is still free to queue. */
	assert_ok(rmig_src_queue_pages(m->src, 0, two, 2));
	assert_int_equal(rmig_src_queue_page(m->src, 0, 6 * PS), -EBUSY);
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_ACTIVE);
	assert_ok(src_sync(m));
	/* After the sync, every page may go again. */
	assert_ok(rmig_src_queue_page(m->src, 0, PS));
	assert_ok(rmig_src_queue_pages(m->src, 0, two, 2));
	mig_finish(m);
	assert_int_equal(mem_diff(&m->mem, 0, 1, 1), 0);
	assert_int_equal(mem_diff(&m->mem, 0, 5, 2), 0);
}

/* ------------------------------------------------------------------ */
/* Block tables that do not match                                      */

static void mismatch(struct mig *m, const char *const dnames[NBLK],
		     const size_t dpages[NBLK], const char *const expect[2])
{
	int ret;

	m->channels = 2;
	m->ppp = 16;
	mem_alloc(&m->mem, 16, 8);
	dest_up(m, dnames, dpages);
	src_up(m);
	ret = rmig_src_connect(m->src);
	if (ret != -EINVAL)
		fail_msg("connect returned %d, expected -EINVAL (%s)", ret,
			 rmig_last_error());
	for (int i = 0; i < 2; i++)
		assert_last_err_has(expect[i]);
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_FAILED);
	/* Nothing was written into the destination. */
	for (size_t i = 0; i < m->mem.total * PS; i++)
		if (m->mem.d[i] != 0xa5)
			fail_msg("destination byte %zu changed", i);
}

static void test_mismatch_name(void **state)
{
	static const char *const names[NBLK] = { "pc.ram", "vga.ram" };
	static const size_t pages[NBLK] = { 16, 8 };
	static const char *const expect[2] = { "vga.vram",
					       "does not exist" };

	mismatch(*state, names, pages, expect);
}

static void test_mismatch_length(void **state)
{
	static const size_t pages[NBLK] = { 16, 4 };
	static const char *const expect[2] = { "vga.vram", "length" };

	mismatch(*state, blk_name, pages, expect);
}

/* Extra checks of the setup path. */
static void test_connect_refused(void **state)
{
	struct mig *m = *state;
	int ret;

	m->channels = 2;
	m->ppp = 16;
	mem_alloc(&m->mem, 16, 8);
	src_up(m); /* nobody listens on m->addr */
	ret = rmig_src_connect(m->src);
	assert_int_equal(ret, -ECONNREFUSED);
	assert_last_err_has(m->addr);
	assert_last_err_has("channel 0");
}

/* ------------------------------------------------------------------ */
/* Work-completion errors name the operation                           */

/* One channel, 4 data pages a packet: the packets' writes are the runs
 * [4k, 4k+4) pages.  The 3rd write (unsignaled: its context is the
 * channel's write log) completes in error; the message names the block,
 * the offset and the length. */
static void test_wc_error_names_write(void **state)
{
	struct mig *m = *state;
	int ret = 0;

	mem_alloc(&m->mem, 64, 8);
	for (size_t i = 0; i < 64; i++)
		fill_page(&m->mem, 0, i, K_DATA);
	mig_start(m, 1, 4, 0, 0);
	assert_int_equal(mock_fail_after("write_cqe", 3, -EIO), 0);
	for (size_t i = 0; i < 64 && !ret; i++)
		ret = rmig_src_queue_page(m->src, m->sblk[0], i * PS);
	if (!ret)
		ret = src_sync(m);
	assert_int_equal(ret, -EIO);
	assert_err_has(rmig_src_error(m->src), "channel 0");
	assert_err_has(rmig_src_error(m->src), "RDMA WRITE to block 'pc.ram' "
		       "offset 0x8000 (16384 bytes) failed: ");
	assert_err_has(rmig_src_error(m->src), "injected write completion");
}

/* A signaled write (the max_ops/4-th of a run) is named from its tx
 * record. */
static void test_wc_error_names_signaled_write(void **state)
{
	struct mig *m = *state;
	char want[128];
	int ret = 0;
	/* With max_write_ops 256 every 64th write is signaled. */
	const unsigned nth = 64;

	mem_alloc(&m->mem, 2 * nth + 8, 8);
	/* Every other page is data, so each data page is a write of its
	 * own; 1 channel, 128 pages (64 writes) in the first packet. */
	for (size_t i = 0; i < m->mem.pages[0]; i++)
		fill_page(&m->mem, 0, i, i % 2 ? K_ZERO : K_DATA);
	mig_start(m, 1, 128, 0, 0);
	assert_int_equal(mock_fail_after("write_cqe", nth, -EREMOTEIO), 0);
	for (size_t i = 0; i < m->mem.pages[0] && !ret; i++)
		ret = rmig_src_queue_page(m->src, m->sblk[0], i * PS);
	if (!ret)
		ret = src_sync(m);
	assert_int_equal(ret, -EREMOTEIO);
	snprintf(want, sizeof(want), "RDMA WRITE to block 'pc.ram' offset "
		 "0x%x (4096 bytes) failed", 2 * (nth - 1) * PS);
	assert_err_has(rmig_src_error(m->src), want);
}

/* A failed SEND names the message. */
static void test_wc_error_names_send(void **state)
{
	struct mig *m = *state;
	int ret = 0;

	mem_alloc(&m->mem, 16, 8);
	mem_fill(&m->mem);
	mig_start(m, 1, 4, 0, 0);
	assert_int_equal(mock_fail_after("send_cqe", 1, -EIO), 0);
	for (size_t i = 0; i < 16 && !ret; i++)
		ret = rmig_src_queue_page(m->src, m->sblk[0], i * PS);
	if (!ret)
		ret = src_sync(m);
	assert_int_equal(ret, -EIO);
	assert_err_has(rmig_src_error(m->src), "channel 0");
	assert_err_has(rmig_src_error(m->src), "SEND of a PACKET message");
}

/* ------------------------------------------------------------------ */
/* Registration on demand                                              */

static void ondemand(struct mig *m, unsigned channels, unsigned ppp,
		     unsigned chunk_pages, unsigned cache)
{
	const size_t p0 = 200, p1 = 60;
	struct rmig_stats ss, ds;
	struct mock_counters c;
	uint64_t *offs;
	size_t zeros;

	mem_alloc(&m->mem, p0, p1);
	zeros = mem_fill(&m->mem);
	m->src_extra.field_mask = RMIG_CFG_REG_MODE;
	m->src_extra.reg_mode = RMIG_REG_ON_DEMAND;
	m->src_extra.reg_chunk_size = (uint64_t)chunk_pages * PS;
	m->src_extra.reg_cache_chunks = cache;
	mig_start(m, channels, ppp, p0, p1);
	/* Two rounds: block 0 in a shuffled order (chunks come and go),
	 * then everything again in order. */
	offs = shuffled_offsets(p0);
	for (size_t i = 0; i < p0; i++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], offs[i]));
	assert_ok(src_sync(m));
	assert_int_equal(mem_diff(&m->mem, 0, 0, p0), 0);
	mem_fill(&m->mem); /* new data everywhere */
	for (unsigned b = 0; b < NBLK; b++) {
		for (size_t i = 0; i < m->mem.pages[b]; i++)
			offs[i] = i * PS;
		assert_ok(rmig_src_queue_pages(m->src, m->sblk[b], offs,
					       m->mem.pages[b]));
	}
	free(offs);
	mig_finish(m);
	assert_int_equal(mem_diff_all(&m->mem), 0);

	get_stats(&ss, false, m);
	get_stats(&ds, true, m);
	assert_int_equal(ss.zero_pages + ds.normal_pages, ss.zero_pages +
			 ss.normal_pages);
	assert_true(ss.zero_pages >= zeros);
	/* More chunks than the cache holds were used, so some went. */
	assert_true(ss.registrations > cache);
	assert_true(ss.reg_evictions > 0);
	assert_true(ss.reg_evictions <= ss.registrations);
	assert_true(ss.reg_cached_max >= 1);
	assert_true(ss.reg_cached_max <= cache);
	assert_true(ss.registration_ns > 0);
	/* Pin-all destination: one registration a block. */
	assert_int_equal(ds.registrations, NBLK);
	assert_int_equal(ds.reg_evictions, 0);
	/* The provider never saw more registrations at once than: the
	 * destination's blocks, one message-buffer registration per channel
	 * on each side, and the source's cache. */
	mock_get_counters(&c);
	if (c.max_live_mrs > NBLK + 2 * channels + cache)
		fail_msg("%llu registrations open at once, bound %u",
			 (unsigned long long)c.max_live_mrs,
			 NBLK + 2 * channels + cache);
	assert_true(c.max_live_mrs >= NBLK + 2 * channels + 1);
	/* Every chunk registration a write source. */
	assert_reg_access(channels, ss.registrations, NBLK);
}

/* Runs of 7 pages across 4-page chunks (split), cache of 3. */
static void test_ondemand_2ch(void **state)
{
	ondemand(*state, 2, 7, 4, 3);
}

/* One chunk for 4 channels: every channel waits for the others. */
static void test_ondemand_cache1_4ch(void **state)
{
	ondemand(*state, 4, 16, 8, 1);
}

/* Chunks of one page, 8 channels, a cache of 5. */
static void test_ondemand_page_chunks_8ch(void **state)
{
	ondemand(*state, 8, 128, 1, 5);
}

/* A chunk registration that fails fails the migration, naming the block
 * and chunk. */
static void test_ondemand_reg_failure(void **state)
{
	struct mig *m = *state;
	int ret = 0;

	mem_alloc(&m->mem, 64, 8);
	for (size_t i = 0; i < 64; i++)
		fill_page(&m->mem, 0, i, K_DATA);
	m->src_extra.field_mask = RMIG_CFG_REG_MODE;
	m->src_extra.reg_mode = RMIG_REG_ON_DEMAND;
	m->src_extra.reg_chunk_size = 8 * PS;
	m->src_extra.reg_cache_chunks = 2;
	mig_start(m, 1, 8, 0, 0);
	assert_int_equal(mock_fail_after("mr_reg", 3, -ENOMEM), 0);
	for (size_t i = 0; i < 64 && !ret; i++)
		ret = rmig_src_queue_page(m->src, m->sblk[0], i * PS);
	if (!ret)
		ret = src_sync(m);
	assert_int_equal(ret, -ENOMEM);
	assert_err_has(rmig_src_error(m->src), "chunk 2 of RAM block "
		       "'pc.ram' (offset 0x10000");
}

static void test_bad_reg_config(void **state)
{
	struct mig *m = *state;
	struct rmig_config c;
	rmig_dest *d = NULL;

	cfg_init(&c, m->addr, 2, 16);
	c.field_mask |= RMIG_CFG_REG_MODE;
	c.reg_mode = (enum rmig_reg_mode)7;
	expect_create_einval(&c, "reg_mode 7 unknown");
	c.reg_mode = RMIG_REG_ON_DEMAND;
	c.reg_chunk_size = 3 * PS;
	expect_src_einval(&c, "reg_chunk_size 12288 must be a power of two");
	c.reg_chunk_size = PS / 2;
	expect_src_einval(&c, "reg_chunk_size");
	c.reg_chunk_size = RMIG_REG_CHUNK_MAX * 2;
	expect_src_einval(&c, "reg_chunk_size");
	c.reg_chunk_size = 0;
	c.reg_cache_chunks = RMIG_REG_CACHE_CHUNKS_MAX + 1;
	expect_src_einval(&c, "reg_cache_chunks 65537 out of range");
	/* The destination stays pin-all, and says so. */
	c.reg_cache_chunks = 0;
	assert_int_equal(rmig_dest_create_prov(&c, &rmig_mock_provider, &d),
			 -ENOTSUP);
	assert_last_err_has("source only");
	assert_last_err_has("pin-all");
	assert_null(d);
	/* Pin-all is accepted on both sides, with any chunk fields. */
	c.reg_mode = RMIG_REG_PIN_ALL;
	c.reg_chunk_size = 3;
	assert_ok(rmig_dest_create_prov(&c, &rmig_mock_provider, &d));
	rmig_dest_destroy(d);

	cfg_init(&c, m->addr, 2, 16);
	c.field_mask |= RMIG_CFG_NUMA_NODE;
	c.numa_node = -3;
	expect_create_einval(&c, "numa_node -3 invalid");
	if (numa_available() >= 0) {
		c.numa_node = numa_max_node() + 1;
		expect_create_einval(&c, "above the highest node");
	}
}

/* An explicit node binds the channel threads there (where libnuma works)
 * and the stats say so; none binds nothing. */
static void test_numa_explicit(void **state)
{
	struct mig *m = *state;
	struct rmig_stats ss, ds;

	mem_alloc(&m->mem, 32, 8);
	mem_fill(&m->mem);
	m->src_extra.field_mask = RMIG_CFG_NUMA_NODE;
	m->src_extra.numa_node = 0;
	mig_start(m, 2, 8, 0, 0);
	for (size_t i = 0; i < 32; i++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], i * PS));
	mig_finish(m);
	assert_int_equal(mem_diff(&m->mem, 0, 0, 32), 0);
	get_stats(&ss, false, m);
	get_stats(&ds, true, m);
	assert_int_equal(ss.numa_node, numa_available() >= 0 ? 0 : -1);
	/* The mock has no device: auto binds nothing. */
	assert_int_equal(ds.numa_node, -1);
}

/* A channel frees its message buffers with the allocator they came from
 * (numa_free for a node, free for none), even when the session's node
 * changed in between, as an auto destination's switch to its other
 * transport re-chooses it.  Before the fix, free() got libnuma's mmap. */
static void test_chan_buffers_keep_node(void **state)
{
	struct mig *m = *state;
	struct rmig_session s;
	struct rmig_config c;
	struct rmig_prov_conn *conn;
	struct rmig_chan ch;

	if (numa_available() < 0) {
		printf("# libnuma reports no NUMA support: nothing to mix\n");
		skip();
	}
	mem_alloc(&m->mem, 4, 4);
	cfg_init(&c, m->addr, 1, 8);
	c.field_mask |= RMIG_CFG_NUMA_NODE;
	c.numa_node = 0;
	assert_ok(rmig_sess_init(&s, &c, &rmig_mock_provider, false));
	assert_int_equal(rmig_sess_add_block(&s, blk_name[0], m->mem.s,
					     4 * PS), 0);
	assert_ok(rmig_sess_open_domain(&s, RMIG_MR_WRITE_SOURCE));
	assert_int_equal(s.numa_node, 0);
	assert_ok(rmig_tp_conn_create(s.tp, &conn));
	assert_ok(rmig_chan_init(&ch, &s, 0, conn));
	assert_int_equal(ch.bufs_node, 0);
	/* The session moves to a transport without a node. */
	s.numa_node = -1;
	rmig_chan_fini(&ch);
	/* And the other way round. */
	assert_ok(rmig_tp_conn_create(s.tp, &conn));
	assert_ok(rmig_chan_init(&ch, &s, 1, conn));
	assert_int_equal(ch.bufs_node, -1);
	s.numa_node = 0;
	rmig_chan_fini(&ch);
	rmig_sess_fini(&s);
}

/* ------------------------------------------------------------------ */
/* Transport auto                                                      */

static void small_migration(struct mig *m)
{
	mem_fill(&m->mem);
	for (size_t i = 0; i < m->mem.pages[0]; i++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], i * PS));
	mig_finish(m);
	assert_int_equal(mem_diff(&m->mem, 0, 0, m->mem.pages[0]), 0);
}

static void transports(struct mig *m, const char *src, const char *dst)
{
	struct rmig_stats ss, ds;

	get_stats(&ss, false, m);
	get_stats(&ds, true, m);
	assert_string_equal(ss.transport, src);
	assert_string_equal(ds.transport, dst);
}

/* No RDMA device: the source falls back, and says why. */
static void test_auto_src_no_device(void **state)
{
	struct mig *m = *state;
	uint64_t opens = mock_verbs_opens();

	mock_verbs_set_open_error(-ENODEV);
	log_capture_start();
	m->src_verbs = &rmig_mock_verbs_provider;
	mem_alloc(&m->mem, 16, 8);
	mig_start(m, 2, 4, 0, 0);
	assert_int_equal(mock_verbs_opens(), opens + 1);
	small_migration(m);
	transports(m, "mock", "mock");
	log_expect("transport auto: verbs unavailable for ");
	log_expect("no RDMA device found");
	log_expect("falling back to mock");
}

/* Both sides auto with a working "verbs": verbs is used, and the
 * destination closes its other listener. */
static void test_auto_both_verbs(void **state)
{
	struct mig *m = *state;
	struct mock_counters c;

	mock_verbs_set_open_error(0);
	log_capture_start();
	m->src_verbs = m->dst_verbs = &rmig_mock_verbs_provider;
	mem_alloc(&m->mem, 16, 8);
	mig_start(m, 4, 4, 0, 0);
	small_migration(m);
	transports(m, "verbs/mock0", "verbs/mock0");
	mock_get_counters(&c);
	/* The mock listener is closed; the verbs one stays until destroy. */
	assert_int_equal(c.live_listeners, 1);
	log_expect("transport auto: using verbs/mock0");
	log_expect("listening on ");
	log_expect("with both mock and verbs/mock0");
	log_expect("the source came over verbs/mock0; closed the mock "
		   "listener");
}

/* An auto destination serves a source of the other kind too (here a
 * plain mock source: the destination's verbs listener goes). */
static void test_auto_dest_fallback_source(void **state)
{
	struct mig *m = *state;
	struct rmig_stats ds;

	mock_verbs_set_open_error(0);
	log_capture_start();
	m->dst_verbs = &rmig_mock_verbs_provider;
	mem_alloc(&m->mem, 16, 8);
	mig_start(m, 3, 4, 0, 0);
	small_migration(m);
	transports(m, "mock", "mock");
	log_expect("the source came over mock; closed the verbs/mock0 "
		   "listener");
	get_stats(&ds, true, m);
	/* Registered in both domains before the choice, as targets. */
	assert_int_equal(ds.registrations, 2 * NBLK);
	assert_reg_access(3, NBLK, 2 * NBLK);
}

/* Auto destination where verbs cannot open: the fallback alone, fixed at
 * listen. */
static void test_auto_dest_no_device(void **state)
{
	struct mig *m = *state;
	struct rmig_stats ds;

	mock_verbs_set_open_error(-ENODEV);
	log_capture_start();
	m->dst_verbs = &rmig_mock_verbs_provider;
	mem_alloc(&m->mem, 16, 8);
	m->channels = 2;
	m->ppp = 4;
	dest_up(m, blk_name, m->mem.pages);
	get_stats(&ds, true, m);
	assert_string_equal(ds.transport, "mock");
	log_expect("transport auto: listening with mock only; verbs "
		   "unavailable");
	log_expect("no RDMA device found");
	src_up(m);
	assert_ok(rmig_src_connect(m->src));
	driver_wait_accept(m);
	small_migration(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_handoff_1ch_1ppp),
		T(test_handoff_1ch_7ppp),
		T(test_handoff_1ch_128ppp),
		T(test_handoff_2ch_1ppp),
		T(test_handoff_2ch_7ppp),
		T(test_handoff_2ch_128ppp),
		T(test_handoff_8ch_1ppp),
		T(test_handoff_8ch_7ppp),
		T(test_handoff_8ch_128ppp),
		T(test_backpressure),
		T(test_devstate),
		T(test_rounds),
		T(test_sync_contract),
		T(test_sync_batches_finish),
		T(test_error_write_post),
		T(test_error_write_completion),
		T(test_error_send_post),
		T(test_error_send_completion),
		T(test_cancel_blocked_queue),
		T(test_cancel_blocked_sync),
		T(test_cancel_dest),
		T(test_cancel_dest_slow_accept),
		T(test_cancel_dest_in_sync),
		T(test_bad_config),
		T(test_bad_blocks),
		T(test_bad_queue_args),
		T(test_queue_twice),
		T(test_mismatch_name),
		T(test_mismatch_length),
		T(test_connect_refused),
		T(test_wc_error_names_write),
		T(test_wc_error_names_signaled_write),
		T(test_wc_error_names_send),
		T(test_ondemand_2ch),
		T(test_ondemand_cache1_4ch),
		T(test_ondemand_page_chunks_8ch),
		T(test_ondemand_reg_failure),
		T(test_bad_reg_config),
		T(test_numa_explicit),
		T(test_chan_buffers_keep_node),
		T(test_auto_src_no_device),
		T(test_auto_both_verbs),
		T(test_auto_dest_fallback_source),
		T(test_auto_dest_no_device),
#undef T
	};

	/* RMIG_TEST_FILTER=pattern runs only the matching tests. */
	if (getenv("RMIG_TEST_FILTER"))
		cmocka_set_test_filter(getenv("RMIG_TEST_FILTER"));
	return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* core_util.c - the fixture of the core tests (core_util.h says what). */
#include "core_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "test_secret.h"
#include "unit_util.h"

void core_test_filter(void)
{
	if (getenv("RMIG_TEST_FILTER"))
		cmocka_set_test_filter(getenv("RMIG_TEST_FILTER"));
}

uint64_t core_rng(void)
{
	return rng();
}

/* ------------------------------------------------------------------ */
/* Guest memory: two blocks carved from one source and one destination  */
/* allocation, so the write hook can map a remote address to a page.    */

const char *const blk_name[NBLK] = { "pc.ram", "vga.vram" };

void mem_alloc(struct mem *m, size_t p0, size_t p1)
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

void mem_free(struct mem *m)
{
	free(m->s);
	free(m->d);
	free(m->writes);
	memset(m, 0, sizeof(*m));
}

uint8_t *spage(struct mem *m, unsigned b, size_t page)
{
	return m->s + (m->base[b] + page) * PS;
}

uint8_t *dpage(struct mem *m, unsigned b, size_t page)
{
	return m->d + (m->base[b] + page) * PS;
}

enum kind fill_page(struct mem *m, unsigned b, size_t page,
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

enum kind kind_for(size_t page)
{
	switch (page % 8) {
	case 1: case 4: return K_ZERO;
	case 6: return K_SPARSE;
	default: return K_DATA;
	}
}

/* Fill every page of both blocks; returns the number of zero pages. */
size_t mem_fill(struct mem *m)
{
	size_t zeros = 0;

	for (unsigned b = 0; b < NBLK; b++)
		for (size_t i = 0; i < m->pages[b]; i++)
			zeros += fill_page(m, b, i, kind_for(i + b)) == K_ZERO;
	return zeros;
}

/* Pages of block b equal on both sides?  Prints the first mismatch. */
size_t mem_diff(struct mem *m, unsigned b, size_t first, size_t n)
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

size_t mem_diff_all(struct mem *m)
{
	return mem_diff(m, 0, 0, m->pages[0]) + mem_diff(m, 1, 0, m->pages[1]);
}

/* The mock's write hook: count writes per destination page. */
void count_writes(uint64_t raddr, size_t len, void *arg)
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

unsigned writes_of(struct mem *m, unsigned b, size_t page)
{
	return atomic_load_explicit(&m->writes[m->base[b] + page],
				    memory_order_relaxed);
}


/* ------------------------------------------------------------------ */
/* The destination, driven from its own thread                         */

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
		if (r == RMIG_SYNC_POSTCOPY_SWITCH) {
			dv->switches++;
			if (dv->on_switch)
				dv->pull_ret = dv->on_switch(dv,
							     dv->switch_arg);
			continue;
		}
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

/* Keep the CPUs busy so that threads get preempted anywhere. */
static void *spin_thread(void *arg)
{
	struct spinner *sp = arg;
	volatile uint64_t x = 0;

	while (!atomic_load_explicit(&sp->stop, memory_order_relaxed))
		x++;
	return NULL;
}

void spinners_start(struct spinner *sp)
{
	atomic_init(&sp->stop, false);
	sp->running = true;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&sp->t[i], NULL, spin_thread,
						sp), 0);
}

void spinners_stop(struct spinner *sp)
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

unsigned addr_seq;

void cfg_init(struct rmig_config *c, const char *addr,
		     unsigned channels, unsigned ppp)
{
	memset(c, 0, sizeof(*c));
	c->field_mask = RMIG_CFG_ADDRESS | RMIG_CFG_CHANNELS |
			RMIG_CFG_PAGES_PER_PACKET | RMIG_CFG_CONNECT_TIMEOUT;
	c->address = addr;
	c->channels = channels;
	c->pages_per_packet = ppp;
	c->connect_timeout_ms = 10000;
	test_cfg_auth(c);
}

/* Join the driver, waiting at most @s seconds.  True if joined. */
bool driver_join(struct mig *m, unsigned s)
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

int src_sync(struct mig *m)
{
	return src_call(m, rmig_src_sync, "rmig_src_sync");
}

int src_finish(struct mig *m)
{
	return src_call(m, rmig_src_finish, "rmig_src_finish");
}

/* Destination: blocks added in the reverse order of the source's, so the
 * source must map block indices by name. */
/* The authentication of @x, if it has any, instead of the shared secret
 * cfg_init() gave @c. */
static void auth_override(struct rmig_config *c, const struct rmig_config *x)
{
	const uint64_t auth = RMIG_CFG_AUTH_KEY | RMIG_CFG_AUTH_KEY_FILE |
			      RMIG_CFG_INSECURE;

	if (!(x->field_mask & auth))
		return;
	c->field_mask = (c->field_mask & ~auth) | (x->field_mask & auth);
	c->auth_key = x->auth_key;
	c->auth_key_len = x->auth_key_len;
	c->auth_key_file = x->auth_key_file;
	c->insecure = x->insecure;
	if (x->field_mask & RMIG_CFG_ALLOWED_SOURCES) {
		c->field_mask |= RMIG_CFG_ALLOWED_SOURCES;
		c->allowed_sources = x->allowed_sources;
	}
}

void dest_up(struct mig *m, const char *const names[NBLK],
		    const size_t pages[NBLK])
{
	struct rmig_config c;
	char bound[64];

	cfg_init(&c, m->addr, m->channels, m->ppp);
	auth_override(&c, &m->dst_auth);
	c.field_mask |= m->dst_extra.field_mask;
	c.idle_timeout_ms = m->dst_extra.idle_timeout_ms;
	c.devstate_max = m->dst_extra.devstate_max;
	c.postcopy_resume = m->dst_extra.postcopy_resume;
	if (m->dst_verbs)
		assert_ok(rmig_dest_create_auto(&c, m->dst_verbs,
						&rmig_mock_provider, &m->dst));
	else
		assert_ok(rmig_dest_create_prov(&c, m->prov ? m->prov :
						&rmig_mock_provider, &m->dst));
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

void src_up(struct mig *m)
{
	struct rmig_config c;

	cfg_init(&c, m->addr, m->channels, m->ppp);
	c.field_mask |= m->src_extra.field_mask;
	c.reg_mode = m->src_extra.reg_mode;
	c.reg_chunk_size = m->src_extra.reg_chunk_size;
	c.reg_cache_chunks = m->src_extra.reg_cache_chunks;
	c.numa_node = m->src_extra.numa_node;
	memcpy(c.uuid, m->src_extra.uuid, 16);
	auth_override(&c, &m->src_extra);
	c.idle_timeout_ms = m->src_extra.idle_timeout_ms;
	c.no_zero_detect = m->src_extra.no_zero_detect;
	c.devstate_max = m->src_extra.devstate_max;
	c.postcopy_resume = m->src_extra.postcopy_resume;
	if (m->src_verbs)
		assert_ok(rmig_src_create_auto(&c, m->src_verbs,
					       &rmig_mock_provider, &m->src));
	else
		assert_ok(rmig_src_create_prov(&c, m->prov ? m->prov :
					       &rmig_mock_provider, &m->src));
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
void driver_wait_accept(struct mig *m)
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
void mig_start(struct mig *m, unsigned channels, unsigned ppp,
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
void mig_finish(struct mig *m)
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

void small_migration(struct mig *m)
{
	mem_fill(&m->mem);
	for (size_t i = 0; i < m->mem.pages[0]; i++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], i * PS));
	mig_finish(m);
	assert_int_equal(mem_diff(&m->mem, 0, 0, m->mem.pages[0]), 0);
}

int setup(void **state)
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
void mig_stop(struct mig *m)
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
int teardown(void **state)
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
/* Checks several areas make                                           */

/* The registrations the core asked of the provider, by access: message
 * buffers per channel on each side, the source's RAM only ever as a write
 * source (no write access: see provider.h), the destination's as a write
 * target.  (The mock also refuses any other use at each post.) */
void assert_reg_access(unsigned channels, uint64_t sources,
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

void get_stats(struct rmig_stats *st, bool dest, struct mig *m)
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
uint64_t *shuffled_offsets(size_t n)
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

void expect_create_einval(struct rmig_config *c, const char *field)
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

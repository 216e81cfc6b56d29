/* SPDX-License-Identifier: MIT */
/*
 * test_core_idle.c - the limits of an established session: the idle limit
 * (idle_timeout_ms) with its keepalives, and the destination's device-state
 * budget (devstate_max, every blob held counted).
 *
 *   - a peer that goes silent mid-session (the mock's mock_set_silent():
 *     nothing it sends arrives, no reset): the other side fails with
 *     -ETIMEDOUT and a message naming the wait, and the source's memory is
 *     unchanged;
 *   - a quiet but live peer (the destination's caller holding a sync, then
 *     the source's caller sleeping, each for three idle limits) does not
 *     trip it: the keepalives keep both sides alive;
 *   - device state beyond devstate_max in total fails the destination with
 *     -ENOSPC and a message naming the sizes, and it never held more.
 *
 * Over the in-process mock provider, with the fixture of tests/core_util.h.
 * No assertion on time: the outcomes and the messages only.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core_util.h"
#include "unit_util.h"

/* Short, so a silent peer is noticed fast; the quiet tests use a longer
 * one, so that a loaded machine's scheduling never looks like silence. */
#define IDLE_SHORT_MS 300u
#define IDLE_QUIET_MS 1000u

static void set_idle(struct mig *m, unsigned ms)
{
	m->src_extra.field_mask |= RMIG_CFG_IDLE_TIMEOUT;
	m->src_extra.idle_timeout_ms = ms;
	m->dst_extra.field_mask |= RMIG_CFG_IDLE_TIMEOUT;
	m->dst_extra.idle_timeout_ms = ms;
}

/* FNV-1a of the source's memory (both blocks). */
static uint64_t src_hash(struct mig *m)
{
	const uint8_t *p = m->mem.s;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < m->mem.total * PS; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void queue_block0(struct mig *m, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], i * PS));
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

/* 0 (no "forever"), below the minimum and above the maximum are refused,
 * naming the field; the bounds themselves are taken. */
static void test_idle_config(void **state)
{
	struct mig *m = *state;
	const unsigned bad[] = { 0, RMIG_IDLE_TIMEOUT_MIN_MS - 1,
				 RMIG_IDLE_TIMEOUT_MAX_MS + 1 };
	const unsigned good[] = { RMIG_IDLE_TIMEOUT_MIN_MS,
				  RMIG_IDLE_TIMEOUT_MAX_MS };
	struct rmig_config c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg_init(&c, m->addr, 1, 1);
		c.field_mask |= RMIG_CFG_IDLE_TIMEOUT;
		c.idle_timeout_ms = bad[i];
		expect_create_einval(&c, "idle_timeout_ms");
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		rmig_src *s = NULL;
		rmig_dest *d = NULL;

		cfg_init(&c, m->addr, 1, 1);
		c.field_mask |= RMIG_CFG_IDLE_TIMEOUT;
		c.idle_timeout_ms = good[i];
		assert_ok(rmig_src_create_prov(&c, &rmig_mock_provider, &s));
		assert_ok(rmig_dest_create_prov(&c, &rmig_mock_provider, &d));
		rmig_src_destroy(s);
		rmig_dest_destroy(d);
	}
}

/* ------------------------------------------------------------------ */
/* A silent peer                                                       */

/* A 2-channel migration with a short idle limit syncs 8 pages; then
 * side @which goes silent and the source syncs 8 more: that sync's
 * result.  *@h0: the hash of the source's memory before it all. */
static int sync_then_silence(struct mig *m, enum mock_silent which,
			     uint64_t *h0)
{
	mem_alloc(&m->mem, 32, 8);
	mem_fill(&m->mem);
	set_idle(m, IDLE_SHORT_MS);
	mig_start(m, 2, 4, 0, 0);
	*h0 = src_hash(m);
	queue_block0(m, 0, 8);
	assert_ok(src_sync(m));
	mock_set_silent(which);
	queue_block0(m, 8, 8);
	return src_sync(m);
}

/* The source goes silent after a first sync (its packets, SYNC and
 * keepalives vanish): the destination's channels, waiting for a packet or
 * SYNC, fail with -ETIMEDOUT naming the wait and the limit; the source
 * then fails with the destination's reason (its ERROR still arrives). */
static void test_idle_silent_source(void **state)
{
	struct mig *m = *state;
	uint64_t h0;
	int ret = sync_then_silence(m, MOCK_SILENT_ACTIVE, &h0);

	if (!driver_join(m, JOIN_TIMEOUT_S))
		fail_msg("destination still waiting %d s after its source went "
			 "silent", JOIN_TIMEOUT_S);
	assert_int_equal(m->dv.last_ret, -ETIMEDOUT);
	assert_err_has(m->dv.err, "nothing received from the peer for");
	assert_err_has(m->dv.err, "while waiting for a packet, device state "
		       "or SYNC (idle limit 300 ms)");
	assert_err_has(m->dv.err, "channel ");
	assert_int_equal(rmig_dest_state(m->dst), RMIG_STATE_FAILED);
	assert_int_equal(ret, -ETIMEDOUT);
	assert_last_err_has("peer reported: destination: channel ");
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_FAILED);
	assert_true(src_hash(m) == h0);
}

/* The destination goes silent (its credits, SYNC_ACKs and keepalives
 * vanish) while the source waits for SYNC_ACK: the source fails with
 * -ETIMEDOUT naming SYNC_ACK; its memory is unchanged. */
static void test_idle_silent_dest(void **state)
{
	struct mig *m = *state;
	uint64_t h0;
	int ret = sync_then_silence(m, MOCK_SILENT_PASSIVE, &h0);

	assert_int_equal(ret, -ETIMEDOUT);
	assert_last_err_has("nothing received from the peer for");
	assert_last_err_has("while waiting for SYNC_ACK (idle limit 300 ms)");
	assert_last_err_has("channel ");
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_FAILED);
	assert_true(src_hash(m) == h0);
	/* The source's ERROR reaches the destination, which fails too. */
	if (!driver_join(m, JOIN_TIMEOUT_S))
		fail_msg("destination still running %d s after its source "
			 "failed", JOIN_TIMEOUT_S);
	assert_true(m->dv.last_ret < 0);
}

/* A source silent from the start, its caller idle (no call in flight):
 * the destination waits in wait_sync and fails all the same. */
static void test_idle_silent_idle_source(void **state)
{
	struct mig *m = *state;

	mem_alloc(&m->mem, 8, 8);
	set_idle(m, IDLE_SHORT_MS);
	mig_start(m, 3, 4, 0, 0);
	mock_set_silent(MOCK_SILENT_ACTIVE);
	if (!driver_join(m, JOIN_TIMEOUT_S))
		fail_msg("destination still waiting %d s after its source went "
			 "silent", JOIN_TIMEOUT_S);
	assert_int_equal(m->dv.last_ret, -ETIMEDOUT);
	assert_err_has(m->dv.err, "nothing received from the peer");
	/* The source's channels, idle, hear nothing from the destination
	 * after its ERROR either: its next call fails. */
	assert_true(src_sync(m) < 0);
}

/* ------------------------------------------------------------------ */
/* A quiet but live peer                                               */

struct sync_call {
	struct mig *m;
	int ret;
	char err[RMIG_ERR_MSG_MAX];
};

static void *sync_thread(void *arg)
{
	struct sync_call *c = arg;

	c->ret = rmig_src_sync(c->m->src);
	snprintf(c->err, sizeof(c->err), "%s", rmig_last_error());
	return NULL;
}

/* The destination's caller holds its first wait_sync for three idle
 * limits while the source waits for SYNC_ACK (the destination's channels
 * are parked at the marker), then the source's caller sleeps three idle
 * limits between syncs (the destination waits for packets): keepalives
 * carry both, and the migration completes with every page in place. */
static void test_idle_quiet_peer(void **state)
{
	struct mig *m = *state;
	struct sync_call c = { .m = m };
	pthread_t t;

	mem_alloc(&m->mem, 32, 8);
	mem_fill(&m->mem);
	set_idle(m, IDLE_QUIET_MS);
	m->dv.hold = true;
	mig_start(m, 2, 4, 0, 0);
	queue_block0(m, 0, 16);
	assert_int_equal(pthread_create(&t, NULL, sync_thread, &c), 0);
	sleep_ms(3 * IDLE_QUIET_MS);
	atomic_store(&m->dv.go, true);
	pthread_join(t, NULL);
	if (c.ret)
		fail_msg("sync with the destination's caller slow failed: %d "
			 "(%s)", c.ret, c.err);
	sleep_ms(3 * IDLE_QUIET_MS);
	queue_block0(m, 16, 16);
	assert_ok(src_sync(m));
	sleep_ms(3 * IDLE_QUIET_MS);
	for (size_t i = 0; i < m->mem.pages[1]; i++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[1], i * PS));
	mig_finish(m);
	assert_int_equal(mem_diff_all(&m->mem), 0);
}

/* ------------------------------------------------------------------ */
/* Device-state budget                                                 */

#define BUDGET 100000u

static void send_blobs(struct mig *m, unsigned first, unsigned n,
		       size_t len)
{
	static uint8_t data[BUDGET];

	for (unsigned i = first; i < first + n; i++) {
		char id[32];

		memset(data, (int)i + 1, len);
		snprintf(id, sizeof(id), "dev%u", i);
		assert_ok(rmig_src_send_devstate(m->src, id, i, data, len));
	}
}

/* Blobs making exactly the budget, held until the caller takes them after
 * the final sync: they arrive whole, and the most held was the budget. */
static void test_devstate_budget_fits(void **state)
{
	struct mig *m = *state;

	mem_alloc(&m->mem, 8, 8);
	m->dst_extra.field_mask |= RMIG_CFG_DEVSTATE_MAX;
	m->dst_extra.devstate_max = BUDGET;
	mig_start(m, 2, 4, 0, 0);
	send_blobs(m, 0, 2, BUDGET / 2);
	mig_finish(m);
	assert_int_equal(m->dv.nblobs, 2);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(m->dv.blob[i]->len, BUDGET / 2);
	assert_true(rmig_dest_devstate_held_max(m->dst) == BUDGET);
}

/* Three blobs before one sync exceed it: the destination fails with
 * -ENOSPC at the last to come, naming its size, the total and the budget, and
 * never held more than the budget; the source fails with its reason. */
static void test_devstate_budget_exceeded(void **state)
{
	struct mig *m = *state;
	int ret;

	mem_alloc(&m->mem, 8, 8);
	m->dst_extra.field_mask |= RMIG_CFG_DEVSTATE_MAX;
	m->dst_extra.devstate_max = BUDGET;
	mig_start(m, 2, 4, 0, 0);
	send_blobs(m, 0, 3, 40000);
	ret = src_sync(m);
	if (!driver_join(m, JOIN_TIMEOUT_S))
		fail_msg("destination still running %d s after the device "
			 "state went over its budget", JOIN_TIMEOUT_S);
	assert_int_equal(m->dv.last_ret, -ENOSPC);
	/* Blob 1 or 2, whichever came last (two channels). */
	assert_err_has(m->dv.err, "40000 bytes) would make 120000 bytes "
		       "held, above devstate_max 100000 (80000 held already");
	assert_true(rmig_dest_devstate_held_max(m->dst) <= BUDGET);
	assert_int_equal(ret, -ENOSPC);
	assert_last_err_has("peer reported: destination: ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_idle_config),
		CORE_TEST(test_idle_silent_source),
		CORE_TEST(test_idle_silent_dest),
		CORE_TEST(test_idle_silent_idle_source),
		CORE_TEST(test_idle_quiet_peer),
		CORE_TEST(test_devstate_budget_fits),
		CORE_TEST(test_devstate_budget_exceeded),
	};

	core_test_filter();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

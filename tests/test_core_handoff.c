/* SPDX-License-Identifier: MIT */
/*
 * test_core_handoff.c - batch handoff: every queued page arrives exactly
 * once, byte for byte, for 1/2/8 channels and 1/7/128 pages per packet;
 * zero pages arrive as zeros, clearing what the destination held;
 * block_received counts; with no_zero_detect, zero pages are written like
 * any other, once each.  Backpressure: with a slow write, the caller
 * blocks and never more than `channels` batches are in flight.
 *
 * Over the in-process mock provider, with the fixture of tests/core_util.h.
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

/* ------------------------------------------------------------------ */
/* Batch handoff                                                       */

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

/* Zero-page detection off (QEMU's zero-page-detection=none): every page,
 * zero or not, is written once as a normal page; the destination's
 * garbage under the zero pages is overwritten by the write, not cleared.
 * A destination refuses the setting. */
static void test_no_zero_detect(void **state)
{
	struct mig *m = *state;
	const size_t p0 = 90, p1 = 30;
	struct rmig_stats ss, ds;
	struct rmig_config c;
	rmig_dest *d = NULL;
	size_t zeros;

	cfg_init(&c, m->addr, 2, 16);
	c.field_mask |= RMIG_CFG_NO_ZERO_DETECT;
	c.no_zero_detect = 1;
	assert_int_equal(rmig_dest_create_prov(&c, &rmig_mock_provider, &d),
			 -EINVAL);
	assert_last_err_has("no_zero_detect is a source setting");

	mem_alloc(&m->mem, p0, p1);
	zeros = mem_fill(&m->mem);
	assert_true(zeros > 0);
	mock_set_write_hook(count_writes, &m->mem);
	m->src_extra.field_mask |= RMIG_CFG_NO_ZERO_DETECT;
	m->src_extra.no_zero_detect = 1;
	mig_start(m, 2, 7, p0, p1);
	for (size_t i = 0; i < p0; i++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], i * PS));
	for (size_t i = 0; i < p1; i++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[1], i * PS));
	mig_finish(m);

	assert_int_equal(mem_diff_all(&m->mem), 0);
	for (unsigned b = 0; b < NBLK; b++)
		for (size_t i = 0; i < m->mem.pages[b]; i++)
			if (writes_of(&m->mem, b, i) != 1)
				fail_msg("block %s page %zu written %u times, "
					 "expected once", blk_name[b], i,
					 writes_of(&m->mem, b, i));
	get_stats(&ss, false, m);
	get_stats(&ds, true, m);
	assert_int_equal(ss.normal_pages, p0 + p1);
	assert_int_equal(ss.zero_pages, 0);
	assert_int_equal(ds.normal_pages, p0 + p1);
	assert_int_equal(ds.zero_pages, 0);
	assert_int_equal(ds.zero_pages_cleared, 0);
}

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_handoff_1ch_1ppp),
		CORE_TEST(test_handoff_1ch_7ppp),
		CORE_TEST(test_handoff_1ch_128ppp),
		CORE_TEST(test_handoff_2ch_1ppp),
		CORE_TEST(test_handoff_2ch_7ppp),
		CORE_TEST(test_handoff_2ch_128ppp),
		CORE_TEST(test_handoff_8ch_1ppp),
		CORE_TEST(test_handoff_8ch_7ppp),
		CORE_TEST(test_handoff_8ch_128ppp),
		CORE_TEST(test_no_zero_detect),
		CORE_TEST(test_backpressure),
	};

	core_test_filter();
	return cmocka_run_group_tests_name("core_handoff", tests, NULL, NULL);
}

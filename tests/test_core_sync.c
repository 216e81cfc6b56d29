/* SPDX-License-Identifier: MIT */
/*
 * test_core_sync.c - device-state blobs in order with exact bytes (one
 * larger than a 64 KiB message), several rounds of changing memory, and
 * the sync contract: what was queued before a sync is in place when it
 * returns, and every channel takes part in each sync exactly once.
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
		b->data[i] = (uint8_t)core_rng();
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
				if (r && core_rng() % 100 >= 20)
					continue;
				if (r) /* changed: to zero, data or sparse */
					fill_page(&m->mem, b, i,
						  (enum kind)(core_rng() % 3));
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
				pages[k] = core_rng() % m->mem.pages[0];
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_devstate),
		CORE_TEST(test_rounds),
		CORE_TEST(test_sync_contract),
		CORE_TEST(test_sync_batches_finish),
	};

	core_test_filter();
	return cmocka_run_group_tests_name("core_sync", tests, NULL, NULL);
}

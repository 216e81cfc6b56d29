/* SPDX-License-Identifier: MIT */
/*
 * test_core_regcache.c - on-demand registration with a cache smaller than
 * RAM: data intact, evictions counted, the cache bound and "never
 * deregister under an in-flight write" checked by the mock; a failed chunk
 * registration; bad registration and NUMA values.
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
#include <numa.h>

#include "core_util.h"

/* ------------------------------------------------------------------ */
/* Registration on demand                                              */

/* rmig_src_create_prov() refuses @c with -EINVAL, naming @what. */
static void expect_src_einval(struct rmig_config *c, const char *what)
{
	rmig_src *s = NULL;

	assert_int_equal(rmig_src_create_prov(c, &rmig_mock_provider, &s),
			 -EINVAL);
	assert_last_err_has(what);
	assert_null(s);
}

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_ondemand_2ch),
		CORE_TEST(test_ondemand_cache1_4ch),
		CORE_TEST(test_ondemand_page_chunks_8ch),
		CORE_TEST(test_ondemand_reg_failure),
		CORE_TEST(test_bad_reg_config),
	};

	core_test_filter();
	return cmocka_run_group_tests_name("core_regcache", tests, NULL, NULL);
}

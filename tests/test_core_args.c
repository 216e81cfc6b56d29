/* SPDX-License-Identifier: MIT */
/*
 * test_core_args.c - bad arguments (configuration, blocks, queue and
 * device-state calls, a page queued twice) and block tables that do not
 * match; a connect that nobody answers.
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
/* Bad arguments                                                       */

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_bad_config),
		CORE_TEST(test_bad_blocks),
		CORE_TEST(test_bad_queue_args),
		CORE_TEST(test_queue_twice),
		CORE_TEST(test_mismatch_name),
		CORE_TEST(test_mismatch_length),
		CORE_TEST(test_connect_refused),
	};

	core_test_filter();
	return cmocka_run_group_tests_name("core_args", tests, NULL, NULL);
}

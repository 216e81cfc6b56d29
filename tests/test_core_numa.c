/* SPDX-License-Identifier: MIT */
/*
 * test_core_numa.c - an explicit NUMA node binds the channel threads and
 * shows in the stats; a channel frees its message buffers with the
 * allocator they came from.
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
/* NUMA                                                                */

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_numa_explicit),
		CORE_TEST(test_chan_buffers_keep_node),
	};

	core_test_filter();
	return cmocka_run_group_tests_name("core_numa", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * test_core_auto.c - transport auto with the mock registered as "verbs":
 * fallback with the reason logged, verbs on both sides, an auto
 * destination serving either kind of source.
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
#include "log_capture.h"

/* ------------------------------------------------------------------ */
/* Transport auto                                                      */

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
	/* The mock listener is closed when the source came over verbs;
	 * the verbs one once every channel is accepted (no connection
	 * that has not authenticated may exist while the RAM's keys do). */
	assert_int_equal(c.live_listeners, 0);
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
	/* Registered once, as targets, in the domain chosen, when every
	 * channel authenticated. */
	assert_int_equal(ds.registrations, NBLK);
	assert_reg_access(3, NBLK, NBLK);
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
		CORE_TEST(test_auto_src_no_device),
		CORE_TEST(test_auto_both_verbs),
		CORE_TEST(test_auto_dest_fallback_source),
		CORE_TEST(test_auto_dest_no_device),
	};

	core_test_filter();
	return cmocka_run_group_tests_name("core_auto", tests, NULL, NULL);
}

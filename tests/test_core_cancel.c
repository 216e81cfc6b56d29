/* SPDX-License-Identifier: MIT */
/*
 * test_core_cancel.c - cancel from another thread: a source blocked in
 * queue_page or sync, a destination blocked in wait_sync (also one slow to
 * finish its accept), and a destination cancelled while the source waits
 * in sync (the source fails with the peer's reason).
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_cancel_blocked_queue),
		CORE_TEST(test_cancel_blocked_sync),
		CORE_TEST(test_cancel_dest),
		CORE_TEST(test_cancel_dest_slow_accept),
		CORE_TEST(test_cancel_dest_in_sync),
	};

	core_test_filter();
	return cmocka_run_group_tests_name("core_cancel", tests, NULL, NULL);
}

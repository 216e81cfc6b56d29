/* SPDX-License-Identifier: MIT */
/*
 * test_core_errors.c - error propagation from an injected write or send
 * failure (on posting and on completion): the caller gets the errno and
 * the channel, the destination fails by itself.  A failed completion names
 * the write's block/offset/length (signaled or not) or the SEND's message.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_error_write_post),
		CORE_TEST(test_error_write_completion),
		CORE_TEST(test_error_send_post),
		CORE_TEST(test_error_send_completion),
		CORE_TEST(test_wc_error_names_write),
		CORE_TEST(test_wc_error_names_signaled_write),
		CORE_TEST(test_wc_error_names_send),
	};

	core_test_filter();
	return cmocka_run_group_tests_name("core_errors", tests, NULL, NULL);
}

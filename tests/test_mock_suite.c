/* SPDX-License-Identifier: MIT */
/*
 * test_mock_suite.c - the provider suite (provider_suite.c), which
 * test_fabric_provider and test_verbs_provider run on the real providers,
 * run on the in-process mock provider (mock_provider.c): the mock the core
 * is tested on keeps the same contract (lib/provider.h) as the real ones.
 *
 * Addresses are the mock's own ("mocksuite:0"); nothing touches the
 * network.  Every wait is bounded: polls use timeouts, threads are joined
 * with a deadline, and alarm() ends a stuck run below the ctest TIMEOUT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "mock_provider.h"
#include "provider_suite.h"

/* The suite's settings (provider_suite.h). */
const struct rmig_provider_ops *ops = &rmig_mock_provider;
const char *prov;              /* no subprovider */
const char *host = "mocksuite";
char listen_addr[96] = "mocksuite:0";
unsigned depth = DEPTH;        /* for the next pair_setup */
const int ps_wait_ms = 5000;
const int ps_par_join_ms = 4 * 5000;
const int ps_par_rounds = 40;
/* max_tx is the tx_depth asked for, and enforced. */
const bool ps_queue_enforced = true;
/* A read with a key that is not a read source's: a remote access error. */
int ps_read_key_err = -EACCES;
bool ps_mr_cache;

#define PAIR(f) cmocka_unit_test_setup_teardown(f, pair_setup, pair_teardown)
#define SMALL(f) cmocka_unit_test_setup_teardown(f, pair_setup_small, \
						 pair_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		PAIR(test_send_both_ways),
		PAIR(test_many_messages),
		PAIR(test_write_then_send),
		PAIR(test_signaled_write),
		PAIR(test_wake),
		PAIR(test_batch_post),
		PAIR(test_read),
		PAIR(test_read_beyond_max),
		PAIR(test_read_write_target_key),
		PAIR(test_read_stale_key),
		PAIR(test_read_from_read_only),
		SMALL(test_writes_beyond_depth),
		SMALL(test_batch_beyond_depth),
		PAIR(test_parallel_conns),
		cmocka_unit_test(test_no_fd_leak),
	};

	mock_reset();
	/* Last resort below the ctest TIMEOUT. */
	alarm(55);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

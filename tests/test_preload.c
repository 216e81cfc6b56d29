/* SPDX-License-Identifier: MIT */
/*
 * test_preload.c - rmig_preload(): an unknown transport is refused with a
 * message; every known one returns 0 at once, from several threads at a
 * time and again later; and sessions set up while the preload thread may
 * still be inside libfabric's initialisation (destination listening, a
 * source connecting over libfabric tcp on 127.0.0.1) work as without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <rmig/rmig.h>

#include "test_secret.h"

#define THREADS 4

static void test_unknown_transport(void **state)
{
	(void)state;
	assert_int_equal(rmig_preload((enum rmig_transport)99), -EINVAL);
	assert_non_null(strstr(rmig_last_error(), "transport 99"));
}

static void *preload_main(void *arg)
{
	return (void *)(intptr_t)rmig_preload(*(enum rmig_transport *)arg);
}

/* The process's first calls race each other (one of them starts each
 * provider's work). */
static void test_concurrent_calls(void **state)
{
	enum rmig_transport tp[THREADS] = {
		RMIG_TRANSPORT_FABRIC, RMIG_TRANSPORT_AUTO,
		RMIG_TRANSPORT_FABRIC, RMIG_TRANSPORT_VERBS,
	};
	pthread_t t[THREADS];

	(void)state;
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, preload_main,
						&tp[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		void *ret;

		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_int_equal((intptr_t)ret, 0);
	}
	assert_int_equal(rmig_preload(RMIG_TRANSPORT_AUTO), 0);
}

struct acc {
	rmig_dest *d;
	int ret;
};

/* The destination's caller: accept, then the syncs up to the final. */
static void *dest_main(void *arg)
{
	struct acc *a = arg;
	int r;

	a->ret = rmig_dest_accept(a->d, 20000);
	if (a->ret)
		return NULL;
	while ((r = rmig_dest_wait_sync(a->d, 20000)) == 0)
		;
	a->ret = r == 1 ? rmig_dest_finish(a->d) : r;
	return NULL;
}

/* libfabric tcp, two channels, the tests' secret. */
static void config(struct rmig_config *c, const char *addr)
{
	*c = (struct rmig_config){
		.field_mask = RMIG_CFG_ADDRESS | RMIG_CFG_TRANSPORT |
			      RMIG_CFG_CHANNELS,
		.address = addr,
		.transport = RMIG_TRANSPORT_FABRIC,
		.channels = 2,
	};
	test_cfg_auth(c);
}

/* Right after the first preload (its thread may still be in libfabric's
 * first fi_getinfo()): a whole session. */
static void test_session_after_preload(void **state)
{
	static uint8_t dram[4 * 4096] __attribute__((aligned(4096)));
	static uint8_t sram[4 * 4096] __attribute__((aligned(4096)));
	struct acc a = { 0 };
	struct rmig_config c;
	rmig_src *s = NULL;
	char addr[128];
	pthread_t t;

	(void)state;
	assert_int_equal(rmig_preload(RMIG_TRANSPORT_FABRIC), 0);
	memset(sram, 7, sizeof(sram));
	config(&c, "127.0.0.1:0");
	assert_int_equal(rmig_dest_create(&c, &a.d), 0);
	assert_int_equal(rmig_dest_add_block(a.d, "ram", dram, sizeof(dram)),
			 0);
	assert_int_equal(rmig_dest_listen(a.d), 0);
	assert_int_equal(rmig_dest_get_address(a.d, addr, sizeof(addr)), 0);
	assert_int_equal(pthread_create(&t, NULL, dest_main, &a), 0);
	config(&c, addr);
	assert_int_equal(rmig_src_create(&c, &s), 0);
	assert_int_equal(rmig_src_add_block(s, "ram", sram, sizeof(sram)), 0);
	if (rmig_src_connect(s) == 0) {
		for (uint64_t off = 0; off < sizeof(sram); off += 4096)
			assert_int_equal(rmig_src_queue_page(s, 0, off), 0);
		assert_int_equal(rmig_src_finish(s), 0);
	} else {
		fprintf(stderr, "connect: %s\n", rmig_last_error());
		rmig_dest_cancel(a.d);
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(a.ret, 0);
	assert_int_equal(rmig_src_state(s), RMIG_STATE_COMPLETED);
	assert_memory_equal(dram, sram, sizeof(sram));
	rmig_src_destroy(s);
	rmig_dest_destroy(a.d);
}

int main(void)
{
	/* The concurrent calls first: they race to start the process's
	 * preload threads, and the session's domains then race the fabric
	 * one (libfabric's first initialisation takes 100 ms and more). */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_transport),
		cmocka_unit_test(test_concurrent_calls),
		cmocka_unit_test(test_session_after_preload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

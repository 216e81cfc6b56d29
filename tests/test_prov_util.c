/* SPDX-License-Identifier: MIT */
/*
 * test_prov_util.c - what the providers share (providers/util): the
 * first-error record, the domain address and role checks, the wait budget
 * and container_of.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../providers/util/util.h"

static void test_err_first_wins(void **state)
{
	struct rutl_err e = { 0 };
	struct rmig_cqe cqe;
	int ctx;

	(void)state;
	assert_int_equal(rutl_err_set(&e, -ECONNRESET, RMIG_CQE_WRITE, &ctx,
				      "conn %s: %d", "peer", 7), -ECONNRESET);
	assert_string_equal(rmig_err_msg(), "conn peer: 7");
	/* A later failure neither replaces it nor its operation. */
	assert_int_equal(rutl_err_set(&e, -EIO, RMIG_CQE_SEND, NULL, "later"),
			 -ECONNRESET);
	assert_string_equal(rmig_err_msg(), "conn peer: 7");
	rmig_err_clear();
	memset(&cqe, 0xff, sizeof(cqe));
	assert_int_equal(rutl_err_get(&e, &cqe), -ECONNRESET);
	assert_string_equal(rmig_err_msg(), "conn peer: 7");
	assert_int_equal(cqe.op, RMIG_CQE_WRITE);
	assert_ptr_equal(cqe.ctx, &ctx);
	assert_int_equal(cqe.len, 0);
	assert_int_equal(rutl_err_get(&e, NULL), -ECONNRESET);
}

static void test_domain_checks(void **state)
{
	struct rmig_prov_params p = { .address = ":5000", .passive = true };
	char node[16], svc[8];

	(void)state;
	assert_int_equal(rutl_addr_split("fabric", &p, node, sizeof(node), svc,
					 sizeof(svc)), 0);
	assert_string_equal(node, "");
	assert_string_equal(svc, "5000");
	p.passive = false;
	assert_int_equal(rutl_addr_split("verbs", &p, node, sizeof(node), svc,
					 sizeof(svc)), -EINVAL);
	assert_string_equal(rmig_err_msg(),
			    "verbs domain_open: address \":5000\" names no host to connect to");
	p.address = "5000";
	assert_int_equal(rutl_addr_split("verbs", &p, node, sizeof(node), svc,
					 sizeof(svc)), -EINVAL);
	assert_non_null(strstr(rmig_err_msg(), "has no port"));

	assert_int_equal(rutl_domain_role("x listen", "h:1", true, true), 0);
	assert_int_equal(rutl_domain_role("x conn_create", "h:1", false, false), 0);
	assert_int_equal(rutl_domain_role("x listen", "h:1", false, true),
			 -EINVAL);
	assert_string_equal(rmig_err_msg(),
			    "x listen: domain for h:1 was opened for connecting, not listening");
	assert_int_equal(rutl_domain_role("x conn_create", "h:1", true, false),
			 -EINVAL);
	assert_string_equal(rmig_err_msg(),
			    "x conn_create: domain for h:1 was opened for listening, not connecting");
}

/* Deadlines far from now, so the clock's progress during the test does
 * not matter. */
static void test_wait_budget(void **state)
{
	int64_t now = rmig_now_ms();

	(void)state;
	assert_int_equal(rutl_wait_left(-1, 0), -1);
	assert_int_equal(rutl_wait_left(0, now + 100000), 0);
	assert_int_equal(rutl_wait_left(500, now - 1), 0);
	assert_in_range(rutl_wait_left(100000, now + 100000), 1, 100000);

	assert_int_equal(rutl_slice_ms(-1, 0), RUTL_SLICE_MS);
	assert_int_equal(rutl_slice_ms(100000, now + 100000), RUTL_SLICE_MS);
	assert_int_equal(rutl_slice_ms(500, now - 1), 0);
	assert_in_range(rutl_slice_ms(50, now + 50), 0, 50);
}

struct outer {
	int before;
	struct rmig_prov_conn base;
};

static void test_container_of(void **state)
{
	struct outer o;

	(void)state;
	assert_ptr_equal(rutl_container_of(&o.base, struct outer, base), &o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_first_wins),
		cmocka_unit_test(test_domain_checks),
		cmocka_unit_test(test_wait_budget),
		cmocka_unit_test(test_container_of),
	};

	return cmocka_run_group_tests_name("prov_util", tests, NULL, NULL);
}

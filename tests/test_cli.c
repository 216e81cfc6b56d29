/* SPDX-License-Identifier: MIT */
/*
 * test_cli.c - the command-line value parsers for registration and NUMA
 * (tools/cli.c) and the config cli_make_config() builds from them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"

static void test_reg_mode(void **state)
{
	struct cli_session_opts so = { .page_size = 4096 };
	struct rmig_config c;

	cli_make_config(&so, &c, "h:1");
	assert_false(c.field_mask & RMIG_CFG_REG_MODE);
	assert_false(c.field_mask & RMIG_CFG_NUMA_NODE);

	assert_int_equal(cli_parse_reg_mode("on-demand", &so), 0);
	assert_int_equal(so.reg_mode, RMIG_REG_ON_DEMAND);
	assert_int_equal(cli_parse_reg_mode("pin-all", &so), 0);
	assert_int_equal(so.reg_mode, RMIG_REG_PIN_ALL);
	assert_int_equal(cli_parse_reg_mode("pinall", &so), -1);
	assert_int_equal(cli_parse_reg_mode("", &so), -1);
	cli_make_config(&so, &c, "h:1");
	assert_true(c.field_mask & RMIG_CFG_REG_MODE);
	assert_int_equal(c.reg_mode, RMIG_REG_PIN_ALL);
}

static void test_reg_chunk_cache(void **state)
{
	struct cli_session_opts so = { .page_size = 4096 };
	struct rmig_config c;

	assert_int_equal(cli_parse_reg_chunk("64", &so), 0);
	assert_int_equal(so.reg_chunk_size, 64ull << 20);
	assert_int_equal(cli_parse_reg_chunk("4k", &so), 0);
	assert_int_equal(so.reg_chunk_size, 4096);
	assert_int_equal(cli_parse_reg_chunk("1g", &so), 0);
	assert_int_equal(so.reg_chunk_size, 1ull << 30);
	assert_int_equal(cli_parse_reg_chunk("3m", &so), -1);
	assert_int_equal(cli_parse_reg_chunk("2k", &so), -1);
	assert_int_equal(cli_parse_reg_chunk("2t", &so), -1);
	assert_int_equal(cli_parse_reg_chunk("x", &so), -1);
	assert_int_equal(so.reg_chunk_size, 1ull << 30);
	assert_int_equal(cli_parse_reg_cache("16", &so), 0);
	assert_int_equal(so.reg_cache_chunks, 16);
	assert_int_equal(cli_parse_reg_cache("0", &so), -1);
	assert_int_equal(cli_parse_reg_cache("65537", &so), -1);
	/* A chunk size or cache without a mode means on-demand. */
	cli_make_config(&so, &c, "h:1");
	assert_true(c.field_mask & RMIG_CFG_REG_MODE);
	assert_int_equal(c.reg_mode, RMIG_REG_ON_DEMAND);
	assert_int_equal(c.reg_chunk_size, 1ull << 30);
	assert_int_equal(c.reg_cache_chunks, 16);
	/* The library accepts what the parsers let through. */
	rmig_src *s = NULL;

	assert_int_equal(rmig_src_create(&c, &s), 0);
	rmig_src_destroy(s);
}

static void test_numa(void **state)
{
	struct cli_session_opts so = { .page_size = 4096 };
	struct rmig_config c;

	assert_int_equal(cli_parse_numa("auto", &so), 0);
	assert_int_equal(so.numa_node, RMIG_NUMA_AUTO);
	assert_int_equal(cli_parse_numa("none", &so), 0);
	assert_int_equal(so.numa_node, RMIG_NUMA_NONE);
	assert_int_equal(cli_parse_numa("1", &so), 0);
	assert_int_equal(so.numa_node, 1);
	assert_int_equal(cli_parse_numa("-1", &so), -1);
	assert_int_equal(cli_parse_numa("4096", &so), -1);
	assert_int_equal(cli_parse_numa("node0", &so), -1);
	assert_int_equal(so.numa_node, 1);
	cli_make_config(&so, &c, "h:1");
	assert_true(c.field_mask & RMIG_CFG_NUMA_NODE);
	assert_int_equal(c.numa_node, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reg_mode),
		cmocka_unit_test(test_reg_chunk_cache),
		cmocka_unit_test(test_numa),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}

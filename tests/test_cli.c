/* SPDX-License-Identifier: MIT */
/*
 * test_cli.c - the command-line value parsers for registration, NUMA and
 * authentication (tools/cli.c), the config cli_make_config() builds from them, and the
 * list of tunables for --help.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

	so.insecure = true;
	cli_make_config(&so, &c, "h:1");

	assert_int_equal(rmig_src_create(&c, &s), 0);
	rmig_src_destroy(s);
}

/* --auth-key-file and --insecure: exclusive, one of them (or a secret in
 * memory) required, each mapped to its config field. */
static void test_auth_options(void **state)
{
	struct cli_session_opts so = { .page_size = 4096 };
	struct rmig_config c;

	(void)state;
	assert_int_equal(cli_check_auth("prog", &so), -1);
	cli_make_config(&so, &c, "h:1");
	assert_false(c.field_mask & (RMIG_CFG_AUTH_KEY | RMIG_CFG_AUTH_KEY_FILE |
				     RMIG_CFG_INSECURE));
	assert_int_equal(cli_session_option(CLI_OPT_AUTH_KEY_FILE, "", &so),
			 -1);
	assert_int_equal(cli_session_option(CLI_OPT_AUTH_KEY_FILE, "/k", &so),
			 0);
	assert_int_equal(cli_session_option(CLI_OPT_INSECURE, NULL, &so), -1);
	assert_int_equal(cli_check_auth("prog", &so), 0);
	cli_make_config(&so, &c, "h:1");
	assert_true(c.field_mask & RMIG_CFG_AUTH_KEY_FILE);
	assert_string_equal(c.auth_key_file, "/k");
	assert_false(c.field_mask & RMIG_CFG_INSECURE);

	so = (struct cli_session_opts){ .page_size = 4096 };
	assert_int_equal(cli_session_option(CLI_OPT_INSECURE, NULL, &so), 0);
	assert_int_equal(cli_session_option(CLI_OPT_AUTH_KEY_FILE, "/k", &so),
			 -1);
	cli_make_config(&so, &c, "h:1");
	assert_true(c.field_mask & RMIG_CFG_INSECURE);
	assert_int_equal(c.insecure, 1);

	assert_int_equal(cli_session_option(CLI_OPT_ALLOWED_SOURCES, "", &so),
			 -1);
	assert_int_equal(cli_session_option(CLI_OPT_ALLOWED_SOURCES,
					    "127.0.0.1,::1", &so), 0);
	cli_make_config(&so, &c, "h:1");
	assert_true(c.field_mask & RMIG_CFG_ALLOWED_SOURCES);
	assert_string_equal(c.allowed_sources, "127.0.0.1,::1");

	so = (struct cli_session_opts){ .page_size = 4096,
					.auth_key_len = 32 };
	cli_make_config(&so, &c, "h:1");
	assert_true(c.field_mask & RMIG_CFG_AUTH_KEY);
	assert_ptr_equal(c.auth_key, so.auth_key);
	assert_int_equal(c.auth_key_len, 32);
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

/* --idle-timeout MS: 100..3600000 (no 0), into RMIG_CFG_IDLE_TIMEOUT; no
 * option, no bit (the library's default). */
static void test_idle_timeout(void **state)
{
	struct cli_session_opts so = { .page_size = 4096 };
	struct rmig_config c;
	rmig_src *s = NULL;

	(void)state;
	cli_make_config(&so, &c, "h:1");
	assert_false(c.field_mask & RMIG_CFG_IDLE_TIMEOUT);
	assert_int_equal(cli_session_option(CLI_OPT_IDLE_TIMEOUT, "0", &so),
			 -1);
	assert_int_equal(cli_session_option(CLI_OPT_IDLE_TIMEOUT, "99", &so),
			 -1);
	assert_int_equal(cli_session_option(CLI_OPT_IDLE_TIMEOUT, "3600001",
					     &so), -1);
	assert_int_equal(cli_session_option(CLI_OPT_IDLE_TIMEOUT, "5000",
					     &so), 0);
	so.insecure = true; /* create needs a secret or the opt-in */
	cli_make_config(&so, &c, "h:1");
	assert_true(c.field_mask & RMIG_CFG_IDLE_TIMEOUT);
	assert_int_equal(c.idle_timeout_ms, 5000);
	assert_int_equal(rmig_src_create(&c, &s), 0);
	rmig_src_destroy(s);
}

/* Every tunable with its environment variable and description; the one
 * main() changed with its effective value. */
static void test_print_params(void **state)
{
	struct rmig_param_desc d = { .size = sizeof(d) };
	char *text = NULL, line[256];
	size_t len = 0;
	unsigned i;
	FILE *f;

	(void)state;
	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(cli_print_params(f), 0);
	assert_int_equal(fclose(f), 0);
	assert_non_null(strstr(text, "Tunables"));
	for (i = 0; rmig_param_describe(i, &d) == 0; i++) {
		snprintf(line, sizeof(line), "  %s (default %lld, %lld..%lld",
			 d.env, d.default_value, d.min, d.max);
		assert_non_null(strstr(text, line));
		snprintf(line, sizeof(line), "\n      %s\n", d.help);
		assert_non_null(strstr(text, line));
	}
	assert_true(i >= 5);
	assert_non_null(strstr(text, "  RMIG_VERBS_SPIN_US (default 50, 0..1000000; now 3)\n"));
	assert_null(strstr(text, "RMIG_RX_DEPTH (default 32, 2..4095;"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reg_mode),
		cmocka_unit_test(test_reg_chunk_cache),
		cmocka_unit_test(test_numa),
		cmocka_unit_test(test_auth_options),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_print_params),
	};

	/* Before the library reads its tunables (once). */
	if (setenv("RMIG_VERBS_SPIN_US", "3", 1))
		return 1;
	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}

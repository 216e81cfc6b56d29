/* SPDX-License-Identifier: MIT */
/*
 * test_params.c - the table of tunables through the public listing
 * (rmig_param_describe(), rmig_param_get()) and the internal rmig_param():
 * every tunable complete and consistent, the environment applied once,
 * bad values refused, the end of the list, a caller's older struct.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "params.h"
#include "rmig/rmig.h"

/* Tunable @name described into @d; fails the test when there is none. */
static unsigned find(const char *name, struct rmig_param_desc *d)
{
	for (unsigned i = 0; i < RMIG_PARAM_COUNT; i++) {
		d->size = sizeof(*d);
		assert_int_equal(rmig_param_describe(i, d), 0);
		if (!strcmp(d->name, name))
			return i;
	}
	fail_msg("no tunable \"%s\"", name);
	return 0;
}

static void test_every_tunable(void **state)
{
	struct rmig_param_desc d;
	struct rmig_param_info info;
	unsigned i;

	(void)state;
	for (i = 0; i < RMIG_PARAM_COUNT; i++) {
		char env[64] = "RMIG_";
		size_t n = strlen(env);

		memset(&d, 0xa5, sizeof(d));
		d.size = sizeof(d);
		assert_int_equal(rmig_param_describe(i, &d), 0);
		assert_int_equal(d.size, sizeof(d));
		assert_non_null(d.name);
		assert_non_null(d.help);
		assert_true(strlen(d.help) > 10 && !strchr(d.help, '\n'));
		/* The environment variable is RMIG_<NAME>. */
		for (const char *p = d.name; *p && n < sizeof(env) - 1; p++)
			env[n++] = (char)toupper((unsigned char)*p);
		env[n] = '\0';
		assert_string_equal(d.env, env);
		assert_true(d.min <= d.default_value &&
			    d.default_value <= d.max);
		assert_true(d.min <= d.value && d.value <= d.max);
		assert_true(d.value == rmig_param((enum rmig_param_id)i));
		/* The older listing agrees. */
		assert_int_equal(rmig_param_get(i, &info), 0);
		assert_string_equal(info.name, d.name);
		assert_string_equal(info.help, d.help);
		assert_true(info.default_value == d.default_value);
		assert_true(info.value == d.value);
	}
	d.size = sizeof(d);
	assert_int_equal(rmig_param_describe(i, &d), -ENOENT);
	assert_non_null(strstr(rmig_last_error(), "no tunable"));
	assert_int_equal(rmig_param_get(i, &info), -ENOENT);
	assert_int_equal(rmig_param_describe(0, NULL), -EINVAL);
	assert_int_equal(rmig_param_get(0, NULL), -EINVAL);
}

/* main() set the environment before the first read. */
static void test_environment(void **state)
{
	struct rmig_param_desc d;

	(void)state;
	find("verbs_spin_us", &d);
	assert_string_equal(d.env, "RMIG_VERBS_SPIN_US");
	assert_true(d.default_value == 50 && d.value == 7);
	assert_true(rmig_param(RMIG_PARAM_VERBS_SPIN_US) == 7);
	/* Not a number, and out of range: the default. */
	find("tx_depth", &d);
	assert_true(d.value == d.default_value);
	find("rx_depth", &d);
	assert_true(d.value == d.default_value);
	/* Read once: a later change is not seen. */
	assert_int_equal(setenv("RMIG_VERBS_SPIN_US", "8", 1), 0);
	find("verbs_spin_us", &d);
	assert_true(d.value == 7);
}

/* A caller built against a shorter struct gets only what fits. */
static void test_older_struct(void **state)
{
	union {
		struct rmig_param_desc d;
		unsigned char raw[sizeof(struct rmig_param_desc)];
	} u;
	size_t part = offsetof(struct rmig_param_desc, help);

	(void)state;
	memset(&u, 0x5a, sizeof(u));
	u.d.size = part;
	assert_int_equal(rmig_param_describe(0, &u.d), 0);
	assert_int_equal(u.d.size, part);
	assert_non_null(u.d.name);
	assert_non_null(u.d.env);
	for (size_t k = part; k < sizeof(u.raw); k++)
		assert_int_equal(u.raw[k], 0x5a);
	u.d.size = sizeof(size_t) - 1;
	assert_int_equal(rmig_param_describe(0, &u.d), -EINVAL);
	assert_non_null(strstr(rmig_last_error(), "too small"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_tunable),
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_older_struct),
	};

	/* Before anything reads the table (it is read once). */
	if (setenv("RMIG_VERBS_SPIN_US", "7", 1) ||
	    setenv("RMIG_TX_DEPTH", "16x", 1) ||
	    setenv("RMIG_RX_DEPTH", "99999", 1))
		return 1;
	return cmocka_run_group_tests_name("params", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * cmocka_assert.h - assertions shared by the cmocka unit tests on top of
 * cmocka's own: a message containing a text, a call failing with -EPROTO
 * and a message naming a field, a call succeeding (its message shown if
 * not).  Include after <cmocka.h> and "error.h".
 */
#ifndef RMIG_TESTS_CMOCKA_ASSERT_H
#define RMIG_TESTS_CMOCKA_ASSERT_H

#include <string.h>

#define assert_contains(hay, needle)                                      \
	do {                                                              \
		const char *h_ = (hay);                                   \
		const char *n_ = (needle);                                \
		if (!strstr(h_, n_))                                      \
			fail_msg("\"%s\" does not contain \"%s\"", h_, n_); \
	} while (0)

/* Decoder call must fail with -EPROTO and a message naming @needle. */
#define assert_eproto(call, needle)                                       \
	do {                                                              \
		int r_;                                                   \
		rmig_err_clear();                                         \
		r_ = (call);                                              \
		if (r_ != -EPROTO)                                        \
			fail_msg("%s returned %d (expected -EPROTO), message \"%s\"", \
				 #call, r_, rmig_err_msg());              \
		assert_contains(rmig_err_msg(), needle);                  \
	} while (0)

#define assert_ok(call)                                                   \
	do {                                                              \
		int r_;                                                   \
		rmig_err_clear();                                         \
		r_ = (call);                                              \
		if (r_ != 0)                                              \
			fail_msg("%s returned %d: %s", #call, r_,         \
				 rmig_err_msg());                         \
	} while (0)

#endif /* RMIG_TESTS_CMOCKA_ASSERT_H */

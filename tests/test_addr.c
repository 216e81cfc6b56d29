/* SPDX-License-Identifier: MIT */
/*
 * test_addr.c - rmig_addr_split() and rmig_addr_format(): the
 * "host:port" / "[v6]:port" splitter and formatter both providers use, their
 * results and every error with its message.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "addr.h"
#include "error.h"

static void ok(const char *addr, const char *want_node, const char *want_svc)
{
	char node[64], svc[16];

	memset(node, 'x', sizeof(node));
	memset(svc, 'x', sizeof(svc));
	assert_int_equal(rmig_addr_split("t", addr, node, sizeof(node), svc,
					 sizeof(svc)), 0);
	assert_string_equal(node, want_node);
	assert_string_equal(svc, want_svc);
}

/* @addr fails with @code and a message that holds @who and @part. */
static void bad(const char *who, const char *addr, size_t nlen, size_t slen,
		int code, const char *part)
{
	char node[64], svc[16];

	assert_true(nlen <= sizeof(node) && slen <= sizeof(svc));
	assert_int_equal(rmig_addr_split(who, addr, node, nlen, svc, slen),
			 code);
	if (!strstr(rmig_err_msg(), part) || !strstr(rmig_err_msg(), who) ||
	    strncmp(rmig_err_msg(), who, strlen(who)))
		fail_msg("\"%s\": message \"%s\" lacks \"%s: \" or \"%s\"",
			 addr ? addr : "(null)", rmig_err_msg(), who, part);
}

static void test_split_ok(void **state)
{
	(void)state;
	ok("127.0.0.1:5000", "127.0.0.1", "5000");
	ok(":0", "", "0");
	ok("host.invalid:65535", "host.invalid", "65535");
	ok("[::1]:7", "::1", "7");
	ok("[]:9", "", "9");
	ok("[fe80::1%lo]:12345", "fe80::1%lo", "12345");
	ok("127.0.0.1:007", "127.0.0.1", "007");
}

static void test_split_bad(void **state)
{
	(void)state;
	bad("verbs", NULL, 64, 16, -EINVAL, "no address given");
	bad("fabric", "", 64, 16, -EINVAL, "no address given");
	bad("verbs", "127.0.0.1", 64, 16, -EINVAL, "has no port");
	bad("verbs", "::1:5000", 64, 16, -EINVAL,
	    "write IPv6 addresses as [addr]:port");
	bad("fabric", "[::1]5000", 64, 16, -EINVAL, "want [addr]:port");
	bad("fabric", "[::1:5000", 64, 16, -EINVAL, "want [addr]:port");
	bad("verbs", "127.0.0.1:", 64, 16, -EINVAL,
	    "port \"\" is not 0..65535");
	bad("verbs", "127.0.0.1:65536", 64, 16, -EINVAL,
	    "port \"65536\" is not 0..65535");
	bad("verbs", "127.0.0.1:-1", 64, 16, -EINVAL,
	    "port \"-1\" is not 0..65535");
	bad("verbs", "127.0.0.1:+1", 64, 16, -EINVAL,
	    "port \"+1\" is not 0..65535");
	bad("fabric", "127.0.0.1:12a", 64, 16, -EINVAL,
	    "port \"12a\" is not 0..65535");
	bad("fabric", "127.0.0.1:99999999999999999999999", 64, 16, -EINVAL,
	    "is not 0..65535");
	/* The host needs its NUL too: 9 characters do not fit 9 bytes. */
	bad("verbs", "127.0.0.1:5", 9, 16, -ENAMETOOLONG,
	    "address \"127.0.0.1:5\" too long");
	bad("fabric", "1:12345", 64, 5, -ENAMETOOLONG,
	    "address \"1:12345\" too long");
}

static void test_split_fits_exactly(void **state)
{
	char node[9], svc[6];

	(void)state;
	assert_int_equal(rmig_addr_split("t", "10.0.0.1:12345", node,
					 sizeof(node), svc, sizeof(svc)), 0);
	assert_string_equal(node, "10.0.0.1");
	assert_string_equal(svc, "12345");
}

static void test_format(void **state)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
				  .sin_port = htons(5000) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6,
				    .sin6_port = htons(7) };
	struct sockaddr_storage none = { .ss_family = AF_UNIX };
	char buf[64];

	(void)state;
	assert_int_equal(inet_pton(AF_INET, "10.0.0.1", &in.sin_addr), 1);
	assert_int_equal(inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr), 1);
	assert_int_equal(rmig_addr_format("t", &in, sizeof(in), buf,
					  sizeof(buf)), 0);
	assert_string_equal(buf, "10.0.0.1:5000");
	assert_int_equal(rmig_addr_format("t", &in6, sizeof(in6), buf,
					  sizeof(buf)), 0);
	assert_string_equal(buf, "[fe80::1]:7");
	/* Exactly fits: 13 characters and the NUL. */
	assert_int_equal(rmig_addr_format("t", &in, sizeof(in), buf, 14), 0);
	assert_string_equal(buf, "10.0.0.1:5000");

	assert_int_equal(rmig_addr_format("fabric", &in, sizeof(in), buf, 13),
			 -ENOSPC);
	assert_non_null(strstr(rmig_err_msg(), "fabric: address needs 14 bytes"));
	assert_int_equal(rmig_addr_format("verbs", NULL, 0, buf, sizeof(buf)),
			 -ENOTCONN);
	assert_non_null(strstr(rmig_err_msg(), "verbs: no address"));
	assert_int_equal(rmig_addr_format("verbs", &none, sizeof(none), buf,
					  sizeof(buf)), -EAFNOSUPPORT);
	assert_non_null(strstr(rmig_err_msg(), "is not IPv4 or IPv6"));
	/* An IPv6 family in too short a length is refused, not read past. */
	assert_int_equal(rmig_addr_format("fabric", &in6, sizeof(in), buf,
					  sizeof(buf)), -EAFNOSUPPORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_ok),
		cmocka_unit_test(test_split_bad),
		cmocka_unit_test(test_split_fits_exactly),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

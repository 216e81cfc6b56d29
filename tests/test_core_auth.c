/* SPDX-License-Identifier: MIT */
/*
 * test_core_auth.c - authenticated sessions through the public API: the
 * configuration of the secret (bytes, file, the insecure opt-in, and what
 * is refused), a source with the wrong secret or UUID (refused before it
 * sends anything, the destination's RAM unchanged, a right source then
 * migrates), insecure and authenticating ends that do not match, and when
 * the destination's RAM is registered (only once every channel
 * authenticated; gone after the final sync).
 *
 * Over the in-process mock provider, with the fixture of tests/core_util.h.
 * Hostile peers in separate processes over libfabric: tests/hostile/.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core_util.h"
#include "log_capture.h"
#include "test_secret.h"

/* A key file of @len bytes with @mode in a fresh directory; its path in
 * @path (removed by unlink_key()). */
static void key_file(char path[64], size_t len, mode_t mode)
{
	uint8_t buf[64] = { 0 };
	int fd;

	snprintf(path, 64, "/tmp/rmig-key-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	memcpy(buf, test_secret, sizeof(test_secret));
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_auth_config(void **state)
{
	struct mig *m = *state;
	struct rmig_config c;
	char path[64];
	rmig_src *s = NULL;
	rmig_dest *d = NULL;

	/* Neither a secret nor the opt-in: refused, naming both. */
	cfg_init(&c, m->addr, 2, 16);
	c.field_mask &= ~(uint64_t)RMIG_CFG_AUTH_KEY;
	expect_create_einval(&c, "no secret");
	expect_create_einval(&c, "RMIG_CFG_INSECURE");
	/* Both a secret and the opt-in. */
	cfg_init(&c, m->addr, 2, 16);
	c.field_mask |= RMIG_CFG_INSECURE;
	c.insecure = 1;
	expect_create_einval(&c, "insecure set together with a secret");
	/* The opt-in bit with insecure = 0 opts in to nothing. */
	cfg_init(&c, m->addr, 2, 16);
	c.field_mask = (c.field_mask & ~(uint64_t)RMIG_CFG_AUTH_KEY) |
		       RMIG_CFG_INSECURE;
	expect_create_einval(&c, "no secret");
	/* Lengths. */
	cfg_init(&c, m->addr, 2, 16);
	c.auth_key_len = 31;
	expect_create_einval(&c, "auth_key");
	expect_create_einval(&c, "31 bytes");
	c.auth_key_len = RMIG_AUTH_KEY_MAX_LEN + 1;
	expect_create_einval(&c, "1025 bytes");
	c.auth_key_len = 32;
	c.auth_key = NULL;
	expect_create_einval(&c, "auth_key is NULL");
	/* Bytes and a file at once. */
	cfg_init(&c, m->addr, 2, 16);
	c.field_mask |= RMIG_CFG_AUTH_KEY_FILE;
	c.auth_key_file = "/nonexistent";
	expect_create_einval(&c, "both set");

	/* A file readable by others: -EPERM, naming the path and the fix. */
	key_file(path, 32, 0644);
	cfg_init(&c, m->addr, 2, 16);
	c.field_mask = (c.field_mask & ~(uint64_t)RMIG_CFG_AUTH_KEY) |
		       RMIG_CFG_AUTH_KEY_FILE;
	c.auth_key_file = path;
	assert_int_equal(rmig_src_create_prov(&c, &rmig_mock_provider, &s),
			 -EPERM);
	assert_null(s);
	assert_last_err_has("auth_key_file");
	assert_last_err_has(path);
	/* 0600: taken, by both sides. */
	assert_int_equal(chmod(path, 0600), 0);
	assert_ok(rmig_src_create_prov(&c, &rmig_mock_provider, &s));
	assert_ok(rmig_dest_create_prov(&c, &rmig_mock_provider, &d));
	rmig_src_destroy(s);
	rmig_dest_destroy(d);
	unlink(path);
	/* Too short a file. */
	key_file(path, 16, 0600);
	c.auth_key_file = path;
	expect_create_einval(&c, "16");
	unlink(path);
}

/* The destination's RAM stays as mem_alloc() left it (0xa5). */
static void assert_dest_untouched(struct mig *m)
{
	for (size_t i = 0; i < m->mem.total * PS; i++)
		if (m->mem.d[i] != 0xa5)
			fail_msg("destination byte %zu changed", i);
}

/* Both sessions set up (2 channels, 16 pages per packet) and the source's
 * connect tried: its return. */
static int try_connect(struct mig *m)
{
	m->channels = 2;
	m->ppp = 16;
	mem_alloc(&m->mem, 16, 8);
	dest_up(m, blk_name, m->mem.pages);
	src_up(m);
	return rmig_src_connect(m->src);
}

/* A source that fails to connect to the destination with @expect_ret and
 * @expect in its message, never having written; then one with the tests'
 * secret migrates (the destination's accept kept waiting). */
static void refused_then_good(struct mig *m, int expect_ret,
			      const char *expect)
{
	struct mock_counters c;
	struct rmig_stats ds;
	int ret = try_connect(m);

	if (ret != expect_ret)
		fail_msg("connect returned %d, expected %d (%s)", ret,
			 expect_ret, rmig_last_error());
	assert_last_err_has(expect);
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_FAILED);
	mock_get_counters(&c);
	/* Nothing registered on the destination, nothing written. */
	assert_int_equal(c.mr_regs[RMIG_MR_WRITE_TARGET], 0);
	assert_int_equal(c.writes, 0);
	assert_dest_untouched(m);
	rmig_src_destroy(m->src);
	m->src = NULL;

	memset(&m->src_extra, 0, sizeof(m->src_extra));
	src_up(m);
	assert_ok(rmig_src_connect(m->src));
	driver_wait_accept(m);
	small_migration(m);
	get_stats(&ds, true, m);
	assert_true(ds.rejected_handshakes >= 1);
}

static void test_wrong_secret(void **state)
{
	struct mig *m = *state;

	test_cfg_secret(&m->src_extra, test_secret_other);
	log_capture_start();
	refused_then_good(m, -EACCES, "did not prove the secret");
	/* The source stopped after the CHALLENGE: the destination saw it
	 * go without a proof. */
	log_expect("refused a connection from");
}

/* A UUID on one side only is a failed authentication too. */
static void test_uuid_one_side(void **state)
{
	struct mig *m = *state;

	m->src_extra.field_mask |= RMIG_CFG_UUID;
	memset(m->src_extra.uuid, 0x42, 16);
	refused_then_good(m, -EACCES, "did not prove the secret");
}

static void test_insecure_source(void **state)
{
	struct mig *m = *state;

	m->src_extra.field_mask |= RMIG_CFG_INSECURE;
	m->src_extra.insecure = 1;
	log_capture_start();
	refused_then_good(m, -ECONNREFUSED, "requires authentication");
	log_expect("running WITHOUT authentication");
}

static void test_insecure_dest(void **state)
{
	struct mig *m = *state;

	m->dst_auth.field_mask = RMIG_CFG_INSECURE;
	m->dst_auth.insecure = 1;
	assert_int_equal(try_connect(m), -ECONNREFUSED);
	assert_last_err_has("without authentication");
	assert_dest_untouched(m);
}

/* Both insecure, by explicit opt-in: the 0.1 protocol, and it works. */
static void test_both_insecure(void **state)
{
	struct mig *m = *state;

	m->dst_auth.field_mask = RMIG_CFG_INSECURE;
	m->dst_auth.insecure = 1;
	m->src_extra.field_mask |= RMIG_CFG_INSECURE;
	m->src_extra.insecure = 1;
	mem_alloc(&m->mem, 16, 8);
	mig_start(m, 2, 16, 0, 0);
	small_migration(m);
}

/* The destination registers its RAM only once every channel has
 * authenticated, and deregisters it at the final sync. */
static void test_registration_window(void **state)
{
	struct mig *m = *state;
	struct mock_counters c;
	uint64_t raddr, rkey;

	m->channels = 3;
	m->ppp = 16;
	mem_alloc(&m->mem, 16, 8);
	dest_up(m, blk_name, m->mem.pages);
	mock_get_counters(&c);
	assert_int_equal(c.mr_regs[RMIG_MR_WRITE_TARGET], 0);
	assert_int_equal(rmig_dest_block_remote(m->dst, 0, &raddr, &rkey),
			 -EINVAL);
	src_up(m);
	assert_ok(rmig_src_connect(m->src));
	driver_wait_accept(m);
	mock_get_counters(&c);
	assert_int_equal(c.mr_regs[RMIG_MR_WRITE_TARGET], NBLK);
	assert_ok(rmig_dest_block_remote(m->dst, 0, &raddr, &rkey));
	assert_int_equal(c.live_listeners, 0);
	small_migration(m);
	/* Revoked at the final sync, before destroy. */
	assert_int_equal(rmig_dest_block_remote(m->dst, 0, &raddr, &rkey),
			 -EINVAL);
}

/* allowed_sources: refused where it does not belong or does not parse;
 * a connection from elsewhere (the mock's peers have no IP address) is
 * closed before it is read, and nothing is registered or written. */
static void test_allowed_sources(void **state)
{
	struct mig *m = *state;
	struct rmig_config c;
	rmig_src *s = NULL;
	int ret;

	cfg_init(&c, m->addr, 2, 16);
	c.field_mask |= RMIG_CFG_ALLOWED_SOURCES;
	c.allowed_sources = "10.0.0.1";
	assert_int_equal(rmig_src_create_prov(&c, &rmig_mock_provider, &s),
			 -EINVAL);
	assert_last_err_has("destination setting");
	for (unsigned i = 0; i < 3; i++) {
		static const char *const bad[] = { "", "10.0.0.1,host.example",
						   "10.0.0.1:5" };
		rmig_dest *d = NULL;

		c.allowed_sources = bad[i];
		assert_int_equal(rmig_dest_create_prov(&c, &rmig_mock_provider,
						       &d), -EINVAL);
		assert_last_err_has("allowed_sources");
	}

	m->dst_auth = (struct rmig_config){ 0 };
	m->channels = 2;
	m->ppp = 16;
	mem_alloc(&m->mem, 16, 8);
	log_capture_start();
	/* dest_up() takes allowed_sources from nowhere: set it by hand. */
	cfg_init(&c, m->addr, 2, 16);
	c.field_mask |= RMIG_CFG_ALLOWED_SOURCES;
	c.allowed_sources = "192.0.2.1";
	m->dst_auth = c;
	m->dst_auth.field_mask = RMIG_CFG_AUTH_KEY | RMIG_CFG_ALLOWED_SOURCES;
	dest_up(m, blk_name, m->mem.pages);
	src_up(m);
	ret = rmig_src_connect(m->src);
	assert_true(ret < 0);
	log_expect("not in allowed_sources");
	assert_dest_untouched(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_auth_config),
		CORE_TEST(test_wrong_secret),
		CORE_TEST(test_uuid_one_side),
		CORE_TEST(test_insecure_source),
		CORE_TEST(test_insecure_dest),
		CORE_TEST(test_both_insecure),
		CORE_TEST(test_registration_window),
		CORE_TEST(test_allowed_sources),
	};

	core_test_filter();
	return cmocka_run_group_tests_name("core_auth", tests, NULL, NULL);
}

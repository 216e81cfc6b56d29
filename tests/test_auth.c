/* SPDX-License-Identifier: MIT */
/*
 * test_auth.c - lib/auth.c: HMAC-SHA-256 against RFC 4231, the transcript
 * MAC against a vector computed independently (Python's hmac module over
 * the layout of auth.h), every transcript field changing the MAC, a
 * reflected MAC and a wrong key failing, fresh nonces, key lengths, and the
 * key file's checks (mode, owner, symlink, type, size).
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

#include "auth.h"
#include "cmocka_assert.h"
#include "error.h"

static void hex_decode(const char *hex, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void fill(uint8_t *p, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(start + i);
}

/* RFC 4231 ------------------------------------------------------------- */

struct kat {
	uint8_t key[131];
	size_t keylen;
	uint8_t data[160];
	size_t datalen;
	const char *mac;
	size_t maclen; /* test case 5 is truncated to 128 bits */
};

static void set_text(struct kat *k, const char *s)
{
	k->datalen = strlen(s);
	memcpy(k->data, s, k->datalen);
}

static void rfc4231_case(int n, struct kat *k)
{
	memset(k, 0, sizeof(*k));
	k->maclen = 32;
	switch (n) {
	case 1:
		memset(k->key, 0x0b, k->keylen = 20);
		set_text(k, "Hi There");
		k->mac = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
		break;
	case 2:
		memcpy(k->key, "Jefe", k->keylen = 4);
		set_text(k, "what do ya want for nothing?");
		k->mac = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
		break;
	case 3:
		memset(k->key, 0xaa, k->keylen = 20);
		memset(k->data, 0xdd, k->datalen = 50);
		k->mac = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe";
		break;
	case 4:
		fill(k->key, k->keylen = 25, 1);
		memset(k->data, 0xcd, k->datalen = 50);
		k->mac = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b";
		break;
	case 5:
		memset(k->key, 0x0c, k->keylen = 20);
		set_text(k, "Test With Truncation");
		k->mac = "a3b6167473100ee06e0c796c2955552b";
		k->maclen = 16;
		break;
	case 6:
		memset(k->key, 0xaa, k->keylen = 131);
		set_text(k, "Test Using Larger Than Block-Size Key - Hash Key First");
		k->mac = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
		break;
	case 7:
		memset(k->key, 0xaa, k->keylen = 131);
		set_text(k, "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.");
		k->mac = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2";
		break;
	default:
		fail();
	}
}

static void test_rfc4231(void **state)
{
	for (int n = 1; n <= 7; n++) {
		struct kat k;
		uint8_t want[32], got[32];

		rfc4231_case(n, &k);
		hex_decode(k.mac, want, k.maclen);
		assert_int_equal(rmig_auth_hmac_sha256(k.key, k.keylen, k.data,
						       k.datalen, got), 0);
		if (memcmp(got, want, k.maclen))
			fail_msg("RFC 4231 test case %d: wrong HMAC-SHA-256", n);
	}
}

/* The transcript MAC -------------------------------------------------- */

static struct rmig_auth_key *key_from(uint8_t start, size_t len)
{
	uint8_t secret[RMIG_AUTH_KEY_MAX];
	struct rmig_auth_key *k = NULL;

	fill(secret, len, start);
	assert_int_equal(rmig_auth_key_new(secret, len, &k), 0);
	assert_non_null(k);
	assert_int_equal(rmig_auth_key_len(k), len);
	return k;
}

static void base_transcript(struct rmig_auth_transcript *t)
{
	memset(t, 0, sizeof(*t));
	fill(t->src_nonce, sizeof(t->src_nonce), 0);
	fill(t->dest_nonce, sizeof(t->dest_nonce), 32);
	fill(t->uuid, sizeof(t->uuid), 64);
	t->channel_id = 3;
	t->channel_count = 4;
	t->page_size = 4096;
	t->pages_per_packet = 64;
	t->transport = "fabric";
}

/* Computed with Python's hmac over the bytes auth.h lays out: label,
 * role, nonces 0x00.. and 0x20.., UUID 0x40.., channel 3 of 4, 4096,
 * 64, "fabric"; key 0x80..0x9f. */
static void test_transcript_kat(void **state)
{
	static const char *const want_hex[] = {
		[RMIG_AUTH_SOURCE_TO_DEST] =
			"85b2f075201d2ed3d9291478bc4eeb6f8fe58edae647b8ab556649aff2d88e3e",
		[RMIG_AUTH_DEST_TO_SOURCE] =
			"ae672918e532aff4861fbf4a4e2c9957a45337397ed56341e19ad348754d391d",
	};
	struct rmig_auth_key *k = key_from(0x80, 32);
	struct rmig_auth_transcript t;
	uint8_t buf[RMIG_AUTH_TRANSCRIPT_MAX];

	base_transcript(&t);
	assert_int_equal(rmig_auth_transcript_encode(RMIG_AUTH_SOURCE_TO_DEST,
						     &t, buf, sizeof(buf)),
			 116);
	assert_memory_equal(buf, "rmig-auth-v1\0\0\0\0\1", 17);
	for (int role = RMIG_AUTH_SOURCE_TO_DEST;
	     role <= RMIG_AUTH_DEST_TO_SOURCE; role++) {
		uint8_t want[32], got[32];

		hex_decode(want_hex[role], want, sizeof(want));
		assert_int_equal(rmig_auth_mac(k, role, &t, got), 0);
		assert_memory_equal(got, want, sizeof(want));
		assert_int_equal(rmig_auth_verify(k, role, &t, want), 0);
	}
	rmig_auth_key_free(k);
}

/* Each way of changing one field of the transcript. */
static void mutate(struct rmig_auth_transcript *t, int field)
{
	switch (field) {
	case 0: t->src_nonce[0] ^= 1; break;
	case 1: t->src_nonce[31] ^= 0x80; break;
	case 2: t->dest_nonce[0] ^= 1; break;
	case 3: t->dest_nonce[31] ^= 0x80; break;
	case 4: t->uuid[0] ^= 1; break;
	case 5: t->uuid[15] ^= 1; break;
	case 6: t->channel_id = 2; break;
	case 7: t->channel_count = 5; break;
	case 8: t->page_size = 8192; break;
	case 9: t->pages_per_packet = 65; break;
	case 10: t->transport = "verbs"; break;
	case 11: t->transport = "fabri"; break;
	case 12: t->transport = "fabricx"; break;
	/* The two nonces swapped: which side chose which nonce counts. */
	case 13:
		memcpy(t->src_nonce, t->dest_nonce, sizeof(t->src_nonce));
		fill(t->dest_nonce, sizeof(t->dest_nonce), 0);
		break;
	}
}
#define N_MUTATIONS 14

static void test_each_field_counts(void **state)
{
	struct rmig_auth_key *k = key_from(1, 32);
	struct rmig_auth_transcript t;
	uint8_t base[32];

	base_transcript(&t);
	assert_int_equal(rmig_auth_mac(k, RMIG_AUTH_SOURCE_TO_DEST, &t, base), 0);
	for (int f = 0; f < N_MUTATIONS; f++) {
		struct rmig_auth_transcript m;
		uint8_t mac[32];

		base_transcript(&m);
		mutate(&m, f);
		assert_int_equal(rmig_auth_mac(k, RMIG_AUTH_SOURCE_TO_DEST, &m,
					       mac), 0);
		if (!memcmp(mac, base, sizeof(mac)))
			fail_msg("mutation %d left the MAC unchanged", f);
		rmig_err_clear();
		assert_int_equal(rmig_auth_verify(k, RMIG_AUTH_SOURCE_TO_DEST,
						  &m, base), -EACCES);
		assert_contains(rmig_err_msg(), "source->destination MAC does not verify");
	}
	rmig_auth_key_free(k);
}

static void test_reflection_fails(void **state)
{
	struct rmig_auth_key *k = key_from(1, 32);
	struct rmig_auth_transcript t;
	uint8_t s2d[32], d2s[32];

	base_transcript(&t);
	assert_int_equal(rmig_auth_mac(k, RMIG_AUTH_SOURCE_TO_DEST, &t, s2d), 0);
	assert_int_equal(rmig_auth_mac(k, RMIG_AUTH_DEST_TO_SOURCE, &t, d2s), 0);
	assert_memory_not_equal(s2d, d2s, sizeof(s2d));
	/* A destination's MAC sent back to it as the source's proof. */
	assert_int_equal(rmig_auth_verify(k, RMIG_AUTH_SOURCE_TO_DEST, &t, d2s),
			 -EACCES);
	assert_int_equal(rmig_auth_verify(k, RMIG_AUTH_DEST_TO_SOURCE, &t, s2d),
			 -EACCES);
	assert_int_equal(rmig_auth_verify(k, RMIG_AUTH_SOURCE_TO_DEST, &t, s2d), 0);
	rmig_auth_key_free(k);
}

static void test_wrong_key_fails(void **state)
{
	struct rmig_auth_key *a = key_from(1, 32);
	struct rmig_auth_key *b = key_from(2, 32);
	struct rmig_auth_key *c = key_from(1, 33); /* a's bytes and one more */
	struct rmig_auth_transcript t;
	uint8_t mac[32];

	base_transcript(&t);
	assert_int_equal(rmig_auth_mac(a, RMIG_AUTH_DEST_TO_SOURCE, &t, mac), 0);
	assert_int_equal(rmig_auth_verify(b, RMIG_AUTH_DEST_TO_SOURCE, &t, mac),
			 -EACCES);
	assert_int_equal(rmig_auth_verify(c, RMIG_AUTH_DEST_TO_SOURCE, &t, mac),
			 -EACCES);
	assert_int_equal(rmig_auth_verify(a, RMIG_AUTH_DEST_TO_SOURCE, &t, mac), 0);
	mac[31] ^= 1;
	assert_int_equal(rmig_auth_verify(a, RMIG_AUTH_DEST_TO_SOURCE, &t, mac),
			 -EACCES);
	rmig_auth_key_free(a);
	rmig_auth_key_free(b);
	rmig_auth_key_free(c);
}

static void test_transcript_invalid(void **state)
{
	static const char long_name[] = "a-transport-name-of-33-characters";
	struct rmig_auth_key *k = key_from(1, 32);
	struct rmig_auth_transcript t;
	uint8_t buf[RMIG_AUTH_TRANSCRIPT_MAX], mac[32];

	assert_int_equal(sizeof(long_name) - 1, RMIG_AUTH_TRANSPORT_MAX + 1);
	base_transcript(&t);
	assert_int_equal(rmig_auth_transcript_encode(3, &t, buf, sizeof(buf)),
			 -EINVAL);
	assert_int_equal(rmig_auth_transcript_encode(0, &t, buf, sizeof(buf)),
			 -EINVAL);
	assert_int_equal(rmig_auth_transcript_encode(RMIG_AUTH_SOURCE_TO_DEST,
						     &t, buf, 115), -EINVAL);
	t.transport = NULL;
	assert_int_equal(rmig_auth_mac(k, RMIG_AUTH_SOURCE_TO_DEST, &t, mac),
			 -EINVAL);
	t.transport = "";
	assert_int_equal(rmig_auth_verify(k, RMIG_AUTH_SOURCE_TO_DEST, &t, mac),
			 -EINVAL);
	t.transport = long_name;
	rmig_err_clear();
	assert_int_equal(rmig_auth_mac(k, RMIG_AUTH_SOURCE_TO_DEST, &t, mac),
			 -EINVAL);
	assert_contains(rmig_err_msg(), "transport name");
	/* 32 characters: the longest accepted. */
	t.transport = long_name + 1;
	assert_int_equal(rmig_auth_transcript_encode(RMIG_AUTH_DEST_TO_SOURCE,
						     &t, buf, sizeof(buf)),
			 (int)RMIG_AUTH_TRANSCRIPT_MAX);
	rmig_auth_key_free(k);
}

static void test_nonces_differ(void **state)
{
	static const uint8_t zero[RMIG_AUTH_NONCE_LEN];
	uint8_t a[RMIG_AUTH_NONCE_LEN], b[RMIG_AUTH_NONCE_LEN];

	assert_int_equal(rmig_auth_nonce(a), 0);
	assert_int_equal(rmig_auth_nonce(b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_memory_not_equal(b, zero, sizeof(b));
}

static void test_key_lengths(void **state)
{
	uint8_t secret[RMIG_AUTH_KEY_MAX + 1] = { 0 };
	struct rmig_auth_key *k = NULL;

	rmig_err_clear();
	assert_int_equal(rmig_auth_key_new(secret, RMIG_AUTH_KEY_MIN - 1, &k),
			 -EINVAL);
	assert_contains(rmig_err_msg(), "31 bytes (expected 32..1024)");
	assert_int_equal(rmig_auth_key_new(secret, RMIG_AUTH_KEY_MAX + 1, &k),
			 -EINVAL);
	assert_int_equal(rmig_auth_key_new(secret, 0, &k), -EINVAL);
	assert_null(k);
	rmig_auth_key_free(key_from(0, RMIG_AUTH_KEY_MIN));
	k = key_from(0, RMIG_AUTH_KEY_MAX);
	/* Locking may be refused by RLIMIT_MEMLOCK; either way it is said. */
	print_message("key locked in memory: %s\n",
		      rmig_auth_key_locked(k) ? "yes" : "no");
	rmig_auth_key_free(k);
	rmig_auth_key_free(NULL);
}

/* Key files ------------------------------------------------------------ */

struct kf {
	char dir[64];
	char path[128];
};

static int kf_setup(void **state)
{
	struct kf *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_auth.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/key", f->dir);
	*state = f;
	return 0;
}

static int kf_teardown(void **state)
{
	struct kf *f = *state;
	char link[160];

	snprintf(link, sizeof(link), "%s/link", f->dir);
	unlink(link);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/** Write @len bytes starting at @start to the key file, mode @mode. */
static void kf_write(struct kf *f, size_t len, uint8_t start, mode_t mode)
{
	uint8_t buf[2048];
	int fd;

	unlink(f->path);
	fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	fill(buf, len, start);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(f->path, mode), 0);
}

static void expect_load_fail(const char *path, int code, const char *why)
{
	struct rmig_auth_key *k = NULL;

	rmig_err_clear();
	assert_int_equal(rmig_auth_key_load(path, &k), code);
	assert_null(k);
	assert_contains(rmig_err_msg(), path);
	assert_contains(rmig_err_msg(), why);
}

static void test_key_file_modes(void **state)
{
	static const mode_t refused[] = { 0644, 0640, 0604, 0660, 0602, 0620,
					  0610, 0601, 0666 };
	struct kf *f = *state;

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		kf_write(f, 32, 0, refused[i]);
		expect_load_fail(f->path, -EPERM,
				 "gives access to group or others");
	}
}

static void test_key_file_accepted(void **state)
{
	static const mode_t ok[] = { 0600, 0400 };
	static const size_t lens[] = { RMIG_AUTH_KEY_MIN, 100,
				       RMIG_AUTH_KEY_MAX };
	struct kf *f = *state;

	for (size_t m = 0; m < 2; m++) {
		for (size_t i = 0; i < 3; i++) {
			struct rmig_auth_key *k = NULL, *ref;
			struct rmig_auth_transcript t;
			uint8_t a[32], b[32];

			kf_write(f, lens[i], 7, ok[m]);
			if (rmig_auth_key_load(f->path, &k))
				fail_msg("mode %04o, %zu bytes: %s",
					 (unsigned)ok[m], lens[i],
					 rmig_err_msg());
			assert_int_equal(rmig_auth_key_len(k), lens[i]);
			/* The file's bytes are the key. */
			ref = key_from(7, lens[i]);
			base_transcript(&t);
			assert_int_equal(rmig_auth_mac(k, 1, &t, a), 0);
			assert_int_equal(rmig_auth_mac(ref, 1, &t, b), 0);
			assert_memory_equal(a, b, sizeof(a));
			rmig_auth_key_free(ref);
			rmig_auth_key_free(k);
		}
	}
}

static void test_key_file_sizes(void **state)
{
	struct kf *f = *state;

	kf_write(f, 0, 0, 0600);
	expect_load_fail(f->path, -EINVAL, "0 bytes (expected 32..1024");
	kf_write(f, RMIG_AUTH_KEY_MIN - 1, 0, 0600);
	expect_load_fail(f->path, -EINVAL, "31 bytes (expected 32..1024");
	kf_write(f, RMIG_AUTH_KEY_MAX + 1, 0, 0600);
	expect_load_fail(f->path, -EINVAL, "1025 bytes (expected 32..1024");
}

/* A symlink is refused even when its target would be accepted: the
 * management layer names the file it wrote. */
static void test_key_file_symlink(void **state)
{
	struct kf *f = *state;
	char link[160];

	snprintf(link, sizeof(link), "%s/link", f->dir);
	kf_write(f, 32, 0, 0600);
	assert_int_equal(symlink(f->path, link), 0);
	expect_load_fail(link, -ELOOP, "is a symbolic link");
}

static void test_key_file_not_regular(void **state)
{
	struct kf *f = *state;

	expect_load_fail(f->dir, -EINVAL, "not a regular file");
	/* A FIFO: opened without blocking, refused before any read. */
	assert_int_equal(mkfifo(f->path, 0600), 0);
	expect_load_fail(f->path, -EINVAL, "not a regular file");
	unlink(f->path);
	expect_load_fail(f->path, -ENOENT, "open: No such file or directory");
}

static void test_key_file_owner(void **state)
{
	struct kf *f = *state;

	/* Giving a file away needs root; as root, uid 65534 is "another". */
	if (geteuid() != 0)
		skip();
	kf_write(f, 32, 0, 0600);
	assert_int_equal(chown(f->path, 65534, 65534), 0);
	expect_load_fail(f->path, -EPERM, "owned by uid 65534 (expected uid 0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4231),
		cmocka_unit_test(test_transcript_kat),
		cmocka_unit_test(test_each_field_counts),
		cmocka_unit_test(test_reflection_fails),
		cmocka_unit_test(test_wrong_key_fails),
		cmocka_unit_test(test_transcript_invalid),
		cmocka_unit_test(test_nonces_differ),
		cmocka_unit_test(test_key_lengths),
		cmocka_unit_test_setup_teardown(test_key_file_modes, kf_setup,
						kf_teardown),
		cmocka_unit_test_setup_teardown(test_key_file_accepted,
						kf_setup, kf_teardown),
		cmocka_unit_test_setup_teardown(test_key_file_sizes, kf_setup,
						kf_teardown),
		cmocka_unit_test_setup_teardown(test_key_file_symlink,
						kf_setup, kf_teardown),
		cmocka_unit_test_setup_teardown(test_key_file_not_regular,
						kf_setup, kf_teardown),
		cmocka_unit_test_setup_teardown(test_key_file_owner, kf_setup,
						kf_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * test_wire_auth.c - the authentication messages of wire.h: the byte
 * layout, round trips, every malformed case of each decoder (code, the
 * field named, outputs untouched), and the whole challenge-response played
 * in memory with lib/auth.c: both sides agree, and a wrong key, a
 * reflected MAC, a replayed proof and a changed parameter each fail.
 *
 * Each decoder sees its input in an exact-size heap copy, so under ASan a
 * read past the message is an error, not a silent pass.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "cmocka_assert.h"
#include "error.h"
#include "wire.h"

/* wire.h does not include auth.h (the wire format needs no crypto): the
 * sizes the two name must agree. */
_Static_assert(RMIG_AUTH_WIRE_NONCE_LEN == RMIG_AUTH_NONCE_LEN,
	       "wire.h and auth.h disagree on the nonce length");
_Static_assert(RMIG_AUTH_WIRE_MAC_LEN == RMIG_AUTH_MAC_LEN,
	       "wire.h and auth.h disagree on the MAC length");

/* An exact-size heap copy of @len bytes of @src. */
static uint8_t *dup_exact(const uint8_t *src, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	memcpy(p, src, len);
	return p;
}

static const struct rmig_auth_hello base_hello = {
	.channel_id = 2,
	.channel_count = 4,
	.page_size = 4096,
	.pages_per_packet = 64,
	.nonce = { 0xa0, 0xa1, 0xa2, [31] = 0xbf },
};

/* Byte layout and round trips ----------------------------------------- */

static void test_hello_layout(void **state)
{
	uint8_t buf[RMIG_AUTH_HELLO_LEN + 8];
	struct rmig_auth_hello h;
	static const uint8_t head[24] = {
		0x52, 0x4d, 0x49, 0x47, 0, 1, 0, 0, /* magic, version, flags */
		0, 2, 0, 4,                         /* channel 2 of 4 */
		0, 0, 0x10, 0, 0, 0, 0, 64,         /* 4096, 64 */
		0, 0, 0, 0,                         /* reserved */
	};

	assert_int_equal(rmig_auth_hello_encode(&base_hello, buf),
			 RMIG_AUTH_HELLO_LEN);
	assert_memory_equal(buf, head, sizeof(head));
	assert_memory_equal(buf + 24, base_hello.nonce, 32);
	memset(&h, 0x55, sizeof(h));
	assert_ok(rmig_auth_hello_decode(buf, RMIG_AUTH_HELLO_LEN, &h));
	assert_memory_equal(&h, &base_hello, sizeof(h));
}

static void test_challenge_proof_reject_layout(void **state)
{
	struct rmig_auth_challenge c, d;
	uint8_t buf[RMIG_AUTH_CHALLENGE_LEN], mac[32], got[32];
	enum rmig_auth_reject r;

	for (int i = 0; i < 32; i++) {
		c.nonce[i] = (uint8_t)i;
		c.mac[i] = (uint8_t)(0x80 + i);
		mac[i] = (uint8_t)(0x40 + i);
	}
	assert_int_equal(rmig_auth_challenge_encode(&c, buf),
			 RMIG_AUTH_CHALLENGE_LEN);
	assert_memory_equal(buf, "RMIG\0\1\0\0", 8);
	assert_memory_equal(buf + 8, c.nonce, 32);
	assert_memory_equal(buf + 40, c.mac, 32);
	assert_ok(rmig_auth_challenge_decode(buf, sizeof(buf), &d));
	assert_memory_equal(&c, &d, sizeof(c));

	assert_int_equal(rmig_auth_proof_encode(mac, buf), RMIG_AUTH_PROOF_LEN);
	assert_memory_equal(buf, "RMIG\0\1\0\0", 8);
	assert_memory_equal(buf + 8, mac, 32);
	assert_ok(rmig_auth_proof_decode(buf, RMIG_AUTH_PROOF_LEN, got));
	assert_memory_equal(got, mac, 32);

	for (unsigned reason = 1; reason <= RMIG_AUTH_REJECT_MAX; reason++) {
		assert_int_equal(rmig_auth_reject_encode(reason, buf),
				 RMIG_AUTH_REJECT_LEN);
		assert_memory_equal(buf, ((uint8_t[]){ 0, 0, 0, (uint8_t)reason,
						       0, 0, 0, 0 }), 8);
		assert_ok(rmig_auth_reject_decode(buf, RMIG_AUTH_REJECT_LEN, &r));
		assert_int_equal(r, reason);
		assert_string_not_equal(rmig_auth_reject_name(reason), "unknown");
	}
	assert_string_equal(rmig_auth_reject_name(0), "unknown");
	assert_string_equal(rmig_auth_reject_name(RMIG_AUTH_REJECT_MAX + 1),
			    "unknown");
}

/* Malformed messages -------------------------------------------------- */

/* Patch @off..@off+n-1 of an encoded HELLO with @bytes, decode, expect
 * -EPROTO naming @needle and the output untouched. */
static void hello_bad(size_t off, const uint8_t *bytes, size_t n,
		      const char *needle)
{
	uint8_t buf[RMIG_AUTH_HELLO_LEN], *p;
	struct rmig_auth_hello h, sentinel;

	rmig_auth_hello_encode(&base_hello, buf);
	memcpy(buf + off, bytes, n);
	p = dup_exact(buf, sizeof(buf));
	memset(&h, 0x5a, sizeof(h));
	sentinel = h;
	assert_eproto(rmig_auth_hello_decode(p, sizeof(buf), &h), needle);
	assert_memory_equal(&h, &sentinel, sizeof(h));
	free(p);
}

#define BYTES(...) ((const uint8_t[]){ __VA_ARGS__ }), \
	sizeof((const uint8_t[]){ __VA_ARGS__ })

static void test_hello_malformed(void **state)
{
	uint8_t buf[RMIG_AUTH_HELLO_LEN + 1] = { 0 };
	struct rmig_auth_hello h;

	rmig_auth_hello_encode(&base_hello, buf);
	for (size_t len = 0; len <= RMIG_AUTH_HELLO_LEN + 1; len++) {
		uint8_t *p;

		if (len == RMIG_AUTH_HELLO_LEN)
			continue;
		p = dup_exact(buf, len);
		assert_eproto(rmig_auth_hello_decode(p, len, &h),
			      "auth hello: length");
		free(p);
	}
	hello_bad(0, BYTES(0x52, 0x4d, 0x49, 0x48), "bad magic 0x524d4948");
	hello_bad(4, BYTES(0, 2), "auth version 2 (expected 1)");
	hello_bad(4, BYTES(0, 0), "auth version 0");
	hello_bad(6, BYTES(0x80, 0), "unknown flags 0x8000");
	hello_bad(6, BYTES(0, 1), "unknown flags 0x0001");
	hello_bad(23, BYTES(1), "reserved 0x00000001");
	hello_bad(20, BYTES(0x80), "reserved 0x80000000");
	hello_bad(10, BYTES(0, 0), "channel count 0 (expected 1..64)");
	hello_bad(10, BYTES(0, 65), "channel count 65");
	hello_bad(10, BYTES(0xff, 0xff), "channel count 65535");
	hello_bad(8, BYTES(0, 4), "channel id 4 (expected 0..3");
	hello_bad(8, BYTES(0xff, 0xff), "channel id 65535");
	hello_bad(12, BYTES(0, 0, 0, 0), "page size 0 (expected a power of two >= 4096)");
	hello_bad(12, BYTES(0, 0, 0x08, 0), "page size 2048");
	hello_bad(12, BYTES(0, 0, 0x10, 1), "page size 4097");
	hello_bad(12, BYTES(0, 0, 0x30, 0), "page size 12288");
	hello_bad(16, BYTES(0, 0, 0, 0), "pages per packet 0 (expected 1..4096)");
	hello_bad(16, BYTES(0, 0, 0x10, 1), "pages per packet 4097");
	hello_bad(16, BYTES(0xff, 0xff, 0xff, 0xff), "pages per packet 4294967295");
}

static void test_hello_limits_accepted(void **state)
{
	struct rmig_auth_hello a = base_hello, b;
	uint8_t buf[RMIG_AUTH_HELLO_LEN];

	a.channel_count = RMIG_MAX_CHANNELS;
	a.channel_id = RMIG_MAX_CHANNELS - 1;
	a.page_size = 1u << 31;
	a.pages_per_packet = RMIG_MAX_PAGES_PER_PACKET;
	rmig_auth_hello_encode(&a, buf);
	assert_ok(rmig_auth_hello_decode(buf, sizeof(buf), &b));
	assert_memory_equal(&a, &b, sizeof(a));
	a.channel_count = 1;
	a.channel_id = 0;
	a.pages_per_packet = 1;
	rmig_auth_hello_encode(&a, buf);
	assert_ok(rmig_auth_hello_decode(buf, sizeof(buf), &b));
	assert_memory_equal(&a, &b, sizeof(a));
}

/* The common header of CHALLENGE and PROOF, and their lengths. */
static void test_challenge_proof_malformed(void **state)
{
	static const struct {
		size_t off;
		uint8_t byte;
		const char *needle;
	} bad[] = {
		{ 0, 0x53, "bad magic 0x534d4947" },
		{ 3, 0x48, "bad magic 0x524d4948" },
		{ 5, 2, "auth version 2" },
		{ 4, 1, "auth version 257" },
		{ 6, 1, "unknown flags 0x0100" },
		{ 7, 1, "unknown flags 0x0001" },
	};
	struct rmig_auth_challenge c = { .nonce = { 1 }, .mac = { 2 } }, out;
	uint8_t cbuf[RMIG_AUTH_CHALLENGE_LEN + 1] = { 0 };
	uint8_t pbuf[RMIG_AUTH_PROOF_LEN + 1] = { 0 };
	uint8_t mac[32] = { 3 }, got[32];

	rmig_auth_challenge_encode(&c, cbuf);
	rmig_auth_proof_encode(mac, pbuf);
	for (size_t len = 0; len <= RMIG_AUTH_CHALLENGE_LEN + 1; len++) {
		uint8_t *p;

		if (len != RMIG_AUTH_CHALLENGE_LEN) {
			p = dup_exact(cbuf, len);
			assert_eproto(rmig_auth_challenge_decode(p, len, &out),
				      "auth challenge: length");
			free(p);
		}
		if (len != RMIG_AUTH_PROOF_LEN && len <= sizeof(pbuf)) {
			p = dup_exact(pbuf, len);
			assert_eproto(rmig_auth_proof_decode(p, len, got),
				      "auth proof: length");
			free(p);
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t cb[RMIG_AUTH_CHALLENGE_LEN], pb[RMIG_AUTH_PROOF_LEN];
		struct rmig_auth_challenge sentinel;
		uint8_t gsent[32];

		memcpy(cb, cbuf, sizeof(cb));
		memcpy(pb, pbuf, sizeof(pb));
		cb[bad[i].off] = bad[i].byte;
		pb[bad[i].off] = bad[i].byte;
		memset(&out, 0x5a, sizeof(out));
		sentinel = out;
		memset(got, 0x5a, sizeof(got));
		memcpy(gsent, got, sizeof(got));
		assert_eproto(rmig_auth_challenge_decode(cb, sizeof(cb), &out),
			      bad[i].needle);
		assert_eproto(rmig_auth_proof_decode(pb, sizeof(pb), got),
			      bad[i].needle);
		assert_memory_equal(&out, &sentinel, sizeof(out));
		assert_memory_equal(got, gsent, sizeof(got));
	}
}

static void test_reject_malformed(void **state)
{
	uint8_t buf[RMIG_AUTH_REJECT_LEN + 1] = { 0 };
	enum rmig_auth_reject r = 0;

	rmig_auth_reject_encode(RMIG_AUTH_REJECT_FAILED, buf);
	for (size_t len = 0; len <= RMIG_AUTH_REJECT_LEN + 1; len++) {
		uint8_t *p;

		if (len == RMIG_AUTH_REJECT_LEN)
			continue;
		p = dup_exact(buf, len);
		assert_eproto(rmig_auth_reject_decode(p, len, &r),
			      "auth reject: length");
		free(p);
	}
	buf[3] = 0;
	assert_eproto(rmig_auth_reject_decode(buf, 8, &r),
		      "reason 0 (expected 1..7)");
	buf[3] = RMIG_AUTH_REJECT_MAX + 1;
	assert_eproto(rmig_auth_reject_decode(buf, 8, &r), "reason 8");
	buf[3] = 1;
	buf[0] = 1;
	assert_eproto(rmig_auth_reject_decode(buf, 8, &r), "reason 16777217");
	buf[0] = 0;
	buf[7] = 1;
	assert_eproto(rmig_auth_reject_decode(buf, 8, &r),
		      "reserved 0x00000001");
	assert_int_equal(r, 0);
}

/* The exchange, in memory --------------------------------------------- */

struct side {
	struct rmig_auth_key *key;
	uint8_t uuid[16];
	const char *transport;
};

/** The transcript a side builds from a HELLO and a destination nonce. */
static void transcript(const struct side *s, const struct rmig_auth_hello *h,
		       const uint8_t *dest_nonce, struct rmig_auth_transcript *t)
{
	memcpy(t->src_nonce, h->nonce, 32);
	memcpy(t->dest_nonce, dest_nonce, 32);
	memcpy(t->uuid, s->uuid, 16);
	t->channel_id = h->channel_id;
	t->channel_count = h->channel_count;
	t->page_size = h->page_size;
	t->pages_per_packet = h->pages_per_packet;
	t->transport = s->transport;
}

/*
 * Play HELLO, CHALLENGE, PROOF between @src and @dst, each message through
 * its encoder and decoder.  Returns 0 when both verified, 1 when the source
 * refused the destination's MAC, 2 when the destination refused the
 * source's.  @replay, when not NULL, replaces the source's proof (an
 * attacker's recorded one); @proof_out records it.
 */
static int exchange(const struct side *src, const struct side *dst,
		    const uint8_t *replay, uint8_t *proof_out)
{
	struct rmig_auth_hello sh = base_hello, dh;
	struct rmig_auth_challenge dc, sc;
	struct rmig_auth_transcript st, dt;
	uint8_t msg[RMIG_AUTH_CHALLENGE_LEN], dnonce[32], smac[32], dmac[32];

	assert_ok(rmig_auth_nonce(sh.nonce));
	rmig_auth_hello_encode(&sh, msg);
	assert_ok(rmig_auth_hello_decode(msg, RMIG_AUTH_HELLO_LEN, &dh));

	/* Destination: its nonce and its MAC over what it knows. */
	assert_ok(rmig_auth_nonce(dnonce));
	transcript(dst, &dh, dnonce, &dt);
	memcpy(dc.nonce, dnonce, 32);
	assert_ok(rmig_auth_mac(dst->key, RMIG_AUTH_DEST_TO_SOURCE, &dt, dc.mac));
	rmig_auth_challenge_encode(&dc, msg);

	/* Source: check the destination before proving anything. */
	assert_ok(rmig_auth_challenge_decode(msg, RMIG_AUTH_CHALLENGE_LEN, &sc));
	transcript(src, &sh, sc.nonce, &st);
	if (rmig_auth_verify(src->key, RMIG_AUTH_DEST_TO_SOURCE, &st, sc.mac))
		return 1;
	assert_ok(rmig_auth_mac(src->key, RMIG_AUTH_SOURCE_TO_DEST, &st, smac));
	if (proof_out)
		memcpy(proof_out, smac, 32);
	rmig_auth_proof_encode(replay ? replay : smac, msg);

	assert_ok(rmig_auth_proof_decode(msg, RMIG_AUTH_PROOF_LEN, dmac));
	if (rmig_auth_verify(dst->key, RMIG_AUTH_SOURCE_TO_DEST, &dt, dmac))
		return 2;
	return 0;
}

static struct rmig_auth_key *key_of(uint8_t b)
{
	uint8_t secret[32];
	struct rmig_auth_key *k;

	memset(secret, b, sizeof(secret));
	assert_int_equal(rmig_auth_key_new(secret, sizeof(secret), &k), 0);
	return k;
}

static void test_exchange(void **state)
{
	struct side src = { key_of(1), { 9, 9 }, "fabric" };
	struct side dst = { key_of(1), { 9, 9 }, "fabric" };
	struct side other = dst;
	struct rmig_auth_key *impostor = key_of(2);
	uint8_t proof[32];

	assert_int_equal(exchange(&src, &dst, NULL, proof), 0);
	/* A proof recorded from that session, replayed: the destination's
	 * fresh nonce makes it worthless. */
	assert_int_equal(exchange(&src, &dst, proof, NULL), 2);
	/* The destination's own MAC reflected as the proof. */
	{
		struct rmig_auth_transcript t;
		struct rmig_auth_hello h = base_hello;
		uint8_t dn[32] = { 7 }, dmac[32];

		transcript(&dst, &h, dn, &t);
		assert_ok(rmig_auth_mac(dst.key, RMIG_AUTH_DEST_TO_SOURCE, &t, dmac));
		assert_int_equal(rmig_auth_verify(dst.key,
						  RMIG_AUTH_SOURCE_TO_DEST, &t,
						  dmac), -EACCES);
	}
	/* An impostor destination without the key: the source refuses
	 * before it proves anything (nothing sent but the HELLO). */
	other.key = impostor;
	assert_int_equal(exchange(&src, &other, NULL, NULL), 1);
	/* A session UUID or transport differing: refused the same way. */
	other.key = dst.key;
	other.uuid[15] = 1;
	assert_int_equal(exchange(&src, &other, NULL, NULL), 1);
	other.uuid[15] = 0;
	other.transport = "verbs";
	assert_int_equal(exchange(&src, &other, NULL, NULL), 1);
	rmig_auth_key_free(src.key);
	rmig_auth_key_free(dst.key);
	rmig_auth_key_free(impostor);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_layout),
		cmocka_unit_test(test_challenge_proof_reject_layout),
		cmocka_unit_test(test_hello_malformed),
		cmocka_unit_test(test_hello_limits_accepted),
		cmocka_unit_test(test_challenge_proof_malformed),
		cmocka_unit_test(test_reject_malformed),
		cmocka_unit_test(test_exchange),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

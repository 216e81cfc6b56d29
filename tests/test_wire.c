/* SPDX-License-Identifier: MIT */
/*
 * test_wire.c - the wire format: round trips of every message, the exact
 * byte layout of wire.h, every rejection of rmig_handshake_check() and of
 * each decoder (return code and the field named in the message), and a
 * deterministic mutation fuzzer whose accepted messages must satisfy every
 * promise the decoders make.
 *
 * Each decoder sees its input in an exact-size heap copy, so under ASan a
 * read past the message is an error, not a silent pass.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmocka_assert.h"
#include "unit_util.h"
#include "error.h"
#include "wire.h"

#define MiB (1024u * 1024u)

/* Helpers ------------------------------------------------------------- */

/* Independent big-endian writers (not wire.c's) to build hostile input. */
static void be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* An exact-size heap copy of @len bytes (never NULL, even for 0). */
static uint8_t *dup_exact(const void *src, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	if (len)
		memcpy(p, src, len);
	return p;
}

/* Message types and immediates ---------------------------------------- */

static void test_msg_type_name(void **state)
{
	(void)state;
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_HANDSHAKE), "HANDSHAKE");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_ACCEPT), "ACCEPT");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_REJECT), "REJECT");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_PACKET), "PACKET");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_SYNC), "SYNC");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_SYNC_ACK), "SYNC_ACK");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_DEVSTATE), "DEVSTATE");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_CREDIT), "CREDIT");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_ERROR), "ERROR");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_AUTH_REJECT),
			    "AUTH_REJECT");
	assert_string_equal(rmig_msg_type_name(RMIG_MSG_READ_KEYS),
			    "READ_KEYS");
	assert_string_equal(rmig_msg_type_name(0), "UNKNOWN");
	assert_string_equal(rmig_msg_type_name(15), "UNKNOWN");
	assert_string_equal(rmig_msg_type_name(~0u), "UNKNOWN");
}

static void test_imm_roundtrip(void **state)
{
	static const unsigned credits[] = { 0, 1, 2, 127, 128, 4094, 4095 };

	(void)state;
	assert_int_equal(rmig_imm_make(RMIG_MSG_PACKET, 3), 0x40030000u);
	assert_int_equal(rmig_imm_make(RMIG_MSG_ERROR, 4095), 0x9fff0000u);
	assert_int_equal(rmig_imm_make(RMIG_MSG_HANDSHAKE, 0), 0x10000000u);
	for (unsigned t = RMIG_MSG_HANDSHAKE; t <= RMIG_MSG_TYPE_MAX; t++) {
		for (size_t i = 0; i < sizeof(credits) / sizeof(credits[0]); i++) {
			uint32_t imm = rmig_imm_make((enum rmig_msg_type)t,
						     credits[i]);
			enum rmig_msg_type type;
			unsigned c;

			assert_int_equal(imm & 0xffffu, 0);
			assert_ok(rmig_imm_parse(imm, &type, &c));
			assert_int_equal(type, t);
			assert_int_equal(c, credits[i]);
		}
	}
}

static void test_imm_credits_clamped(void **state)
{
	enum rmig_msg_type type;
	unsigned c;

	(void)state;
	/* 4096 must not wrap to 0: the peer would lose every credit. */
	assert_ok(rmig_imm_parse(rmig_imm_make(RMIG_MSG_CREDIT, 4096), &type, &c));
	assert_int_equal(type, RMIG_MSG_CREDIT);
	assert_int_equal(c, RMIG_IMM_CREDITS_MAX);
	assert_ok(rmig_imm_parse(rmig_imm_make(RMIG_MSG_CREDIT, ~0u), &type, &c));
	assert_int_equal(c, RMIG_IMM_CREDITS_MAX);
}

static void test_imm_reject_unknown_type(void **state)
{
	enum rmig_msg_type type = RMIG_MSG_SYNC;
	unsigned c = 77;

	(void)state;
	assert_eproto(rmig_imm_parse(0x00000000u, &type, &c), "message type 0");
	assert_eproto(rmig_imm_parse(0x00050000u, &type, &c), "message type 0");
	assert_eproto(rmig_imm_parse(0xf0010000u, &type, &c), "message type 15");
	/* Outputs untouched on failure. */
	assert_int_equal(type, RMIG_MSG_SYNC);
	assert_int_equal(c, 77);
}

/* The highest type, READ_KEYS (14), is spoken. */
static void test_imm_read_keys(void **state)
{
	enum rmig_msg_type type = RMIG_MSG_SYNC;
	unsigned c = 0;

	(void)state;
	assert_ok(rmig_imm_parse(0xe0030000u, &type, &c));
	assert_int_equal(type, RMIG_MSG_READ_KEYS);
	assert_int_equal(c, 3);
}

static void test_imm_reject_low_bits(void **state)
{
	uint32_t imm = rmig_imm_make(RMIG_MSG_PACKET, 5);
	enum rmig_msg_type type;
	unsigned c;

	(void)state;
	assert_eproto(rmig_imm_parse(imm | 1, &type, &c), "low 16 bits 0x0001");
	assert_eproto(rmig_imm_parse(imm | 0x8000, &type, &c), "low 16 bits");
	assert_eproto(rmig_imm_parse(imm | 0xffff, &type, &c), "expected 0");
}

/* Handshake ----------------------------------------------------------- */

static const uint8_t uuid_a[16] = { 0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1,
				    0x11, 0xd2, 0x88, 0x3f, 0x00, 0x16,
				    0xd3, 0xcc, 0x42, 0x7e };
static const uint8_t uuid_b[16] = { 0x9f, 0x2c, 0x01, 0x02, 0x03, 0x04,
				    0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
				    0x0b, 0x0c, 0x0d, 0x0e };

static struct rmig_handshake good_hs(void)
{
	struct rmig_handshake h = {
		.magic = RMIG_WIRE_MAGIC,
		.version = RMIG_WIRE_VERSION,
		.flags = 0,
		.channel_id = 2,
		.channel_count = 4,
		.page_size = 4096,
		.pages_per_packet = 128,
		.features = 0,
		.rx_depth = 64,
		.msg_size = RMIG_MSG_SIZE,
	};

	memcpy(h.uuid, uuid_a, 16);
	return h;
}

static uint64_t seen_none;

static struct rmig_handshake_expect good_expect(void)
{
	struct rmig_handshake_expect e = {
		.uuid_set = true,
		.channel_count = 4,
		.page_size = 4096,
		.seen = &seen_none,
	};

	memcpy(e.uuid, uuid_a, 16);
	return e;
}

static void test_handshake_roundtrip(void **state)
{
	static const uint8_t want[RMIG_HANDSHAKE_LEN] = {
		'R', 'M', 'I', 'G', 0, 1, 0, 0,
		0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1, 0x11, 0xd2,
		0x88, 0x3f, 0x00, 0x16, 0xd3, 0xcc, 0x42, 0x7e,
		0, 2, 0, 4, 0, 0, 0x10, 0,
		0, 0, 0, 128, 0, 0, 0, 0,
		0, 0, 0, 64, 0, 1, 0, 0,
	};
	struct rmig_handshake h = good_hs(), d;
	uint8_t buf[RMIG_HANDSHAKE_LEN + 8];
	uint8_t *x;

	(void)state;
	assert_int_equal(rmig_handshake_encode(&h, buf), RMIG_HANDSHAKE_LEN);
	assert_memory_equal(buf, want, RMIG_HANDSHAKE_LEN);
	x = dup_exact(buf, RMIG_HANDSHAKE_LEN);
	memset(&d, 0, sizeof(d));
	assert_ok(rmig_handshake_decode(x, RMIG_HANDSHAKE_LEN, &d));
	assert_int_equal(d.magic, h.magic);
	assert_int_equal(d.version, h.version);
	assert_int_equal(d.flags, h.flags);
	assert_memory_equal(d.uuid, h.uuid, 16);
	assert_int_equal(d.channel_id, h.channel_id);
	assert_int_equal(d.channel_count, h.channel_count);
	assert_int_equal(d.page_size, h.page_size);
	assert_int_equal(d.pages_per_packet, h.pages_per_packet);
	assert_int_equal(d.features, h.features);
	assert_int_equal(d.rx_depth, h.rx_depth);
	assert_int_equal(d.msg_size, h.msg_size);
	free(x);

	/* Decode does not judge: odd values come through unchanged. */
	h.magic = 0xdeadbeef;
	h.channel_id = 0xffff;
	h.page_size = 0x80000000u;
	rmig_handshake_encode(&h, buf);
	assert_ok(rmig_handshake_decode(buf, RMIG_HANDSHAKE_LEN, &d));
	assert_int_equal(d.magic, 0xdeadbeef);
	assert_int_equal(d.channel_id, 0xffff);
	assert_int_equal(d.page_size, 0x80000000u);
}

static void test_handshake_decode_length(void **state)
{
	uint8_t buf[RMIG_HANDSHAKE_LEN + 1] = { 0 };
	struct rmig_handshake d;

	(void)state;
	assert_eproto(rmig_handshake_decode(buf, 0, &d), "length 0");
	assert_eproto(rmig_handshake_decode(buf, 47, &d), "length 47 (expected 48)");
	assert_eproto(rmig_handshake_decode(buf, 49, &d), "length 49 (expected 48)");
}

static void test_handshake_accepts_good(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();
	uint64_t seen = 0xfffffffffffffffbull; /* all but channel 2 */
	char why[RMIG_REJECT_TEXT_MAX];

	(void)state;
	strcpy(why, "stale");
	assert_int_equal(rmig_handshake_check(&h, &e, why, sizeof(why)),
			 RMIG_REJECT_NONE);
	assert_string_equal(why, "");

	e.seen = &seen;
	assert_int_equal(rmig_handshake_check(&h, &e, why, sizeof(why)),
			 RMIG_REJECT_NONE);
	/* No seen bitmap, any channel count, any UUID, 2 MiB pages. */
	e.seen = NULL;
	e.channel_count = 0;
	e.uuid_set = false;
	memcpy(h.uuid, uuid_b, 16);
	h.channel_count = RMIG_MAX_CHANNELS;
	h.channel_id = RMIG_MAX_CHANNELS - 1;
	h.page_size = 2 * MiB;
	e.page_size = 2 * MiB;
	h.pages_per_packet = RMIG_MAX_PAGES_PER_PACKET;
	assert_int_equal(rmig_handshake_check(&h, &e, why, sizeof(why)),
			 RMIG_REJECT_NONE);
	/* why may be NULL. */
	assert_int_equal(rmig_handshake_check(&h, &e, NULL, 0),
			 RMIG_REJECT_NONE);
	/* Destination without a page size of its own: any valid one. */
	e.page_size = 0;
	h.page_size = 65536;
	assert_int_equal(rmig_handshake_check(&h, &e, why, sizeof(why)),
			 RMIG_REJECT_NONE);
}

static void check_reject(const struct rmig_handshake *h,
			 const struct rmig_handshake_expect *e,
			 enum rmig_reject want, const char *n1, const char *n2)
{
	char why[RMIG_REJECT_TEXT_MAX + 64];
	enum rmig_reject r;

	memset(why, 'x', sizeof(why));
	r = rmig_handshake_check(h, e, why, sizeof(why));
	if (r != want)
		fail_msg("reason %d (expected %d): \"%.*s\"", r, want,
			 RMIG_REJECT_TEXT_MAX, why);
	/* Bounded by RMIG_REJECT_TEXT_MAX even with a bigger buffer. */
	assert_true(strnlen(why, sizeof(why)) < RMIG_REJECT_TEXT_MAX);
	assert_contains(why, n1);
	if (n2)
		assert_contains(why, n2);
	/* A tiny buffer is truncated, still terminated; NULL is fine. */
	memset(why, 'x', sizeof(why));
	assert_int_equal(rmig_handshake_check(h, e, why, 5), want);
	assert_int_equal(strlen(why), 4);
	assert_int_equal(rmig_handshake_check(h, e, NULL, 0), want);
}

static void test_handshake_reject_magic(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();

	(void)state;
	h.magic = 0x12345678;
	check_reject(&h, &e, RMIG_REJECT_MAGIC, "magic 0x12345678",
		     "expected 0x524d4947");
}

static void test_handshake_reject_version(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();

	(void)state;
	h.version = 2;
	check_reject(&h, &e, RMIG_REJECT_VERSION, "version 2", "expected 1");
	h.version = 0;
	check_reject(&h, &e, RMIG_REJECT_VERSION, "version 0", "expected 1");
}

static void test_handshake_reject_uuid(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();

	(void)state;
	memcpy(h.uuid, uuid_b, 16);
	check_reject(&h, &e, RMIG_REJECT_UUID,
		     "UUID mismatch: source 9f2c0102030405060708090a0b0c0d0e",
		     "expected 1b4e28ba2fa111d2883f0016d3cc427e");
	/* One bit off in the last byte is still a mismatch. */
	memcpy(h.uuid, uuid_a, 16);
	h.uuid[15] ^= 1;
	check_reject(&h, &e, RMIG_REJECT_UUID, "UUID", "427f");
	/* Not checked when the destination has no UUID. */
	e.uuid_set = false;
	assert_int_equal(rmig_handshake_check(&h, &e, NULL, 0),
			 RMIG_REJECT_NONE);
}

static void test_handshake_reject_channel_id(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();

	(void)state;
	h.channel_id = 4;
	check_reject(&h, &e, RMIG_REJECT_CHANNEL_ID, "channel id 4",
		     "channel count 4");
	h.channel_id = 0xffff;
	check_reject(&h, &e, RMIG_REJECT_CHANNEL_ID, "channel id 65535", NULL);
	/* Also when the destination takes any count. */
	e.channel_count = 0;
	h.channel_id = 64;
	h.channel_count = 64;
	check_reject(&h, &e, RMIG_REJECT_CHANNEL_ID, "channel id 64", NULL);
}

static void test_handshake_reject_duplicate(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();
	uint64_t seen = 1ull << 2;

	(void)state;
	e.seen = &seen;
	check_reject(&h, &e, RMIG_REJECT_DUPLICATE_CHANNEL,
		     "duplicate channel id 2", NULL);
	/* Highest channel id uses the top bit. */
	seen = 1ull << 63;
	e.channel_count = 64;
	h.channel_count = 64;
	h.channel_id = 63;
	check_reject(&h, &e, RMIG_REJECT_DUPLICATE_CHANNEL,
		     "duplicate channel id 63", NULL);
}

static void test_handshake_reject_channel_count(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();

	(void)state;
	h.channel_count = 3; /* destination expects 4 */
	h.channel_id = 0;
	check_reject(&h, &e, RMIG_REJECT_CHANNEL_COUNT, "channel count 3",
		     "expected 4");
	e.channel_count = 0; /* any count, but within 1..64 */
	h.channel_count = 0;
	check_reject(&h, &e, RMIG_REJECT_CHANNEL_COUNT, "channel count 0",
		     "expected 1..64");
	h.channel_count = RMIG_MAX_CHANNELS + 1;
	check_reject(&h, &e, RMIG_REJECT_CHANNEL_COUNT, "channel count 65",
		     "expected 1..64");
	h.channel_count = 0xffff;
	check_reject(&h, &e, RMIG_REJECT_CHANNEL_COUNT, "channel count 65535",
		     NULL);
}

static void test_handshake_reject_page_size(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();

	(void)state;
	h.page_size = 2 * MiB;
	check_reject(&h, &e, RMIG_REJECT_PAGE_SIZE, "page size 2097152",
		     "expected 4096");
	h.page_size = 0;
	check_reject(&h, &e, RMIG_REJECT_PAGE_SIZE, "page size 0", NULL);
	e.page_size = 0; /* any valid */
	h.page_size = 4097;
	check_reject(&h, &e, RMIG_REJECT_PAGE_SIZE, "page size 4097",
		     "power of two");
	h.page_size = 2048;
	check_reject(&h, &e, RMIG_REJECT_PAGE_SIZE, "page size 2048", NULL);
}

static void test_handshake_reject_packet_size(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();

	(void)state;
	h.pages_per_packet = 0;
	check_reject(&h, &e, RMIG_REJECT_PACKET_SIZE, "pages per packet 0",
		     "expected 1..4096");
	h.pages_per_packet = RMIG_MAX_PAGES_PER_PACKET + 1;
	check_reject(&h, &e, RMIG_REJECT_PACKET_SIZE, "pages per packet 4097",
		     NULL);
	h.pages_per_packet = 0xffffffffu;
	check_reject(&h, &e, RMIG_REJECT_PACKET_SIZE,
		     "pages per packet 4294967295", NULL);
	/* The largest allowed count still fits one message. */
	assert_true(rmig_packet_len(RMIG_MAX_PAGES_PER_PACKET, 0) <= RMIG_MSG_SIZE);
}

static void test_handshake_reject_features(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();

	(void)state;
	h.features = 0x4;
	check_reject(&h, &e, RMIG_REJECT_FEATURES, "features 0x00000004",
		     "expected 0");
	/* Resuming a post-copy: both sides or neither. */
	h.features = RMIG_FEAT_POSTCOPY_RESUME;
	check_reject(&h, &e, RMIG_REJECT_FEATURES, "does not resume a post-copy",
		     "expected 0x00000000");
	e.features = RMIG_FEAT_POSTCOPY_RESUME;
	assert_int_equal(rmig_handshake_check(&h, &e, NULL, 0),
			 RMIG_REJECT_NONE);
	h.features = 0;
	check_reject(&h, &e, RMIG_REJECT_FEATURES, "resumes a lost post-copy",
		     "expected 0x00000001");
	e.features = 0;
	h.flags = 0x8000;
	check_reject(&h, &e, RMIG_REJECT_FEATURES, "flags 0x8000",
		     "expected 0");
}

static void test_handshake_reject_malformed(void **state)
{
	struct rmig_handshake h = good_hs();
	struct rmig_handshake_expect e = good_expect();

	(void)state;
	h.msg_size = 4096;
	check_reject(&h, &e, RMIG_REJECT_MALFORMED, "message size 4096",
		     "expected 65536");
	h.msg_size = RMIG_MSG_SIZE;
	h.rx_depth = 0;
	check_reject(&h, &e, RMIG_REJECT_MALFORMED, "rx depth 0", NULL);
}

/* Accept -------------------------------------------------------------- */

static struct rmig_wire_block make_block(unsigned i)
{
	struct rmig_wire_block b;

	memset(&b, 0, sizeof(b));
	snprintf(b.name, sizeof(b.name), "block%u", i);
	b.page_size = (i % 2) ? 2 * MiB : 4096;
	b.length = (uint64_t)b.page_size * (i + 1);
	b.raddr = 0x7f0000000000ull + (uint64_t)i * 0x100000000ull;
	b.rkey = 0xabcd0000ull + i;
	return b;
}

/* A valid ACCEPT with @n blocks in @buf (room for RMIG_MAX_BLOCKS + 1). */
static size_t build_accept(uint8_t *buf, size_t cap, unsigned n)
{
	struct rmig_wire_block b[RMIG_MAX_BLOCKS];

	for (unsigned i = 0; i < n; i++)
		b[i] = make_block(i);
	return rmig_accept_encode(32, b, n, buf, cap);
}

#define ACCEPT_CAP (RMIG_ACCEPT_HDR_LEN + (RMIG_MAX_BLOCKS + 1) * RMIG_ACCEPT_BLOCK_LEN + 64)

static void test_accept_roundtrip(void **state)
{
	struct rmig_wire_block in[3], out[RMIG_MAX_BLOCKS];
	static uint8_t buf[ACCEPT_CAP];
	uint32_t rx = 0;
	unsigned n = 0;
	size_t len;
	uint8_t *x;

	(void)state;
	memset(in, 0, sizeof(in));
	strcpy(in[0].name, "pc.ram");
	in[0].length = 4ull << 30;
	in[0].raddr = 0x7f1234560000ull;
	in[0].rkey = 0x1122334455667788ull;
	in[0].page_size = 4096;
	strcpy(in[1].name, "/rom@etc/acpi/tables");
	in[1].length = 2 * MiB;
	in[1].raddr = 0;
	in[1].rkey = 7;
	in[1].page_size = 2 * MiB;
	memset(in[2].name, 'n', RMIG_BLOCK_NAME_MAX - 1); /* 63 bytes */
	in[2].length = 3 * 4096;
	in[2].raddr = UINT64_MAX - 3 * 4096; /* ends exactly at 2^64 - 1 */
	in[2].rkey = UINT64_MAX;
	in[2].page_size = 4096;

	assert_int_equal(rmig_accept_len(3), 16 + 3 * 96);
	assert_int_equal(rmig_accept_encode(500, in, 3, buf, rmig_accept_len(3) - 1), 0);
	len = rmig_accept_encode(500, in, 3, buf, sizeof(buf));
	assert_int_equal(len, rmig_accept_len(3));

	/* Layout. */
	assert_memory_equal(buf, "RMIG\0\1\0\3\0\0\1\364\0\0\0\0", 16);
	assert_string_equal((char *)buf + 16, "pc.ram");
	for (size_t i = 16 + 6; i < 16 + 64; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(rd64(buf + 16 + 64), 4ull << 30);
	assert_int_equal(rd64(buf + 16 + 72), 0x7f1234560000ull);
	assert_int_equal(rd64(buf + 16 + 80), 0x1122334455667788ull);
	assert_memory_equal(buf + 16 + 88, "\0\0\x10\0\0\0\0\0", 8);

	x = dup_exact(buf, len);
	assert_ok(rmig_accept_decode(x, len, &rx, out, &n));
	assert_int_equal(rx, 500);
	assert_int_equal(n, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_string_equal(out[i].name, in[i].name);
		assert_int_equal(out[i].length, in[i].length);
		assert_int_equal(out[i].raddr, in[i].raddr);
		assert_int_equal(out[i].rkey, in[i].rkey);
		assert_int_equal(out[i].page_size, in[i].page_size);
	}
	free(x);
}

static void test_accept_max_blocks(void **state)
{
	static uint8_t buf[ACCEPT_CAP];
	struct rmig_wire_block out[RMIG_MAX_BLOCKS];
	uint32_t rx;
	unsigned n;
	size_t len;

	(void)state;
	len = build_accept(buf, sizeof(buf), RMIG_MAX_BLOCKS);
	assert_int_equal(len, rmig_accept_len(RMIG_MAX_BLOCKS));
	assert_true(len <= RMIG_MSG_SIZE);
	assert_ok(rmig_accept_decode(buf, len, &rx, out, &n));
	assert_int_equal(n, RMIG_MAX_BLOCKS);
	assert_string_equal(out[255].name, "block255");
	/* Encoder refuses counts no decoder takes. */
	assert_int_equal(rmig_accept_encode(1, out, 0, buf, sizeof(buf)), 0);
	assert_int_equal(rmig_accept_encode(1, out, RMIG_MAX_BLOCKS + 1, buf,
					    sizeof(buf)), 0);
}

static void test_accept_reject_header(void **state)
{
	static uint8_t buf[ACCEPT_CAP];
	struct rmig_wire_block out[RMIG_MAX_BLOCKS];
	uint32_t rx = 99;
	unsigned n = 99;
	size_t len;

	(void)state;
	len = build_accept(buf, sizeof(buf), 2);
	assert_eproto(rmig_accept_decode(buf, 0, &rx, out, &n), "length 0");
	assert_eproto(rmig_accept_decode(buf, 15, &rx, out, &n), "header");

	be32(buf, 0x12345678);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "bad magic 0x12345678 (expected 0x524d4947)");
	be32(buf, RMIG_WIRE_MAGIC);

	be16(buf + 4, 2);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n), "version 2");
	be16(buf + 4, 1);

	be32(buf + 8, 0);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n), "rx depth 0");
	be32(buf + 8, 32);

	be32(buf + 12, 1);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n), "reserved");
	be32(buf + 12, 0);

	assert_ok(rmig_accept_decode(buf, len, &rx, out, &n));
	assert_int_equal(n, 2);
}

static void test_accept_reject_block_count(void **state)
{
	static uint8_t buf[ACCEPT_CAP];
	struct rmig_wire_block out[RMIG_MAX_BLOCKS];
	uint32_t rx = 99;
	unsigned n = 99;
	size_t len;

	(void)state;
	/* 0 blocks, length of a bare header. */
	len = build_accept(buf, sizeof(buf), 1);
	be16(buf + 6, 0);
	assert_eproto(rmig_accept_decode(buf, RMIG_ACCEPT_HDR_LEN, &rx, out, &n),
		      "block count 0 (expected 1..256)");
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block count 0");

	/* 257 blocks, with the length for 257 blocks. */
	build_accept(buf, sizeof(buf), RMIG_MAX_BLOCKS);
	memcpy(buf + rmig_accept_len(RMIG_MAX_BLOCKS),
	       buf + rmig_accept_len(RMIG_MAX_BLOCKS - 1), RMIG_ACCEPT_BLOCK_LEN);
	be16(buf + 6, RMIG_MAX_BLOCKS + 1);
	len = RMIG_ACCEPT_HDR_LEN + (RMIG_MAX_BLOCKS + 1) * RMIG_ACCEPT_BLOCK_LEN;
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block count 257");
	be16(buf + 6, 0xffff);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block count 65535");

	/* Count inconsistent with the length, both ways. */
	len = build_accept(buf, sizeof(buf), 3);
	assert_eproto(rmig_accept_decode(buf, len - RMIG_ACCEPT_BLOCK_LEN, &rx,
					 out, &n), "block count 3");
	be16(buf + 6, 2);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "holds 3 blocks");
	be16(buf + 6, 4);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block count 4");
	assert_int_equal(rx, 99);
	assert_int_equal(n, 99);
}

static void test_accept_reject_length_multiple(void **state)
{
	static uint8_t buf[ACCEPT_CAP];
	struct rmig_wire_block out[RMIG_MAX_BLOCKS];
	uint32_t rx;
	unsigned n;
	size_t len;

	(void)state;
	len = build_accept(buf, sizeof(buf), 3);
	assert_eproto(rmig_accept_decode(buf, len + 1, &rx, out, &n),
		      "a multiple of 96");
	assert_eproto(rmig_accept_decode(buf, len - 1, &rx, out, &n),
		      "a multiple of 96");
	assert_eproto(rmig_accept_decode(buf, len + 95, &rx, out, &n),
		      "length 399");
	assert_eproto(rmig_accept_decode(buf, 17, &rx, out, &n), "length 17");
}

static void test_accept_reject_name(void **state)
{
	static uint8_t buf[ACCEPT_CAP];
	struct rmig_wire_block out[RMIG_MAX_BLOCKS];
	uint8_t *name;
	uint32_t rx;
	unsigned n;
	size_t len;

	(void)state;
	len = build_accept(buf, sizeof(buf), 3);
	name = buf + RMIG_ACCEPT_HDR_LEN + 2 * RMIG_ACCEPT_BLOCK_LEN;

	memset(name, 'a', RMIG_BLOCK_NAME_MAX); /* no NUL in 64 bytes */
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block 2: name not NUL-terminated");

	memset(name, 0, RMIG_BLOCK_NAME_MAX);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block 2: empty name");

	strcpy((char *)name, "ok");
	name[40] = 'z'; /* junk in the padding */
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block 2: name byte 40 is 0x7a");
	name[40] = 0;
	name[63] = 1;
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "zero padding");
	name[63] = 0;

	strcpy((char *)name, "block0"); /* same as block 0 */
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block 2: name duplicates block 0");

	strcpy((char *)name, "block2");
	assert_ok(rmig_accept_decode(buf, len, &rx, out, &n));
}

static void test_accept_reject_page_size(void **state)
{
	static const uint32_t bad[] = { 0, 1, 2048, 4095, 4097, 6144,
					0x80000001u, 0xffffffffu };
	static uint8_t buf[ACCEPT_CAP];
	struct rmig_wire_block out[RMIG_MAX_BLOCKS];
	uint8_t *blk;
	uint32_t rx;
	unsigned n;
	size_t len;

	(void)state;
	len = build_accept(buf, sizeof(buf), 2);
	blk = buf + RMIG_ACCEPT_HDR_LEN + RMIG_ACCEPT_BLOCK_LEN;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[64];

		be32(blk + 88, bad[i]);
		snprintf(want, sizeof(want), "block 1: page size %" PRIu32,
			 bad[i]);
		assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n), want);
	}
	/* 2^31 is a power of two; the length must then be a multiple. */
	be32(blk + 88, 0x80000000u);
	be64(blk + 64, 0x80000000ull * 3);
	assert_ok(rmig_accept_decode(buf, len, &rx, out, &n));
}

static void test_accept_reject_block_fields(void **state)
{
	static uint8_t buf[ACCEPT_CAP];
	struct rmig_wire_block out[RMIG_MAX_BLOCKS];
	uint8_t *blk;
	uint32_t rx;
	unsigned n;
	size_t len;

	(void)state;
	len = build_accept(buf, sizeof(buf), 1);
	blk = buf + RMIG_ACCEPT_HDR_LEN;

	be64(blk + 64, 0);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block 0: length 0");
	be64(blk + 64, 4096 * 3 + 1);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "multiple of the page size 4096");
	be64(blk + 64, 4096);

	be64(blk + 72, UINT64_MAX - 4095); /* raddr + length = 2^64 */
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "wraps around");
	be64(blk + 72, UINT64_MAX - 4096);
	assert_ok(rmig_accept_decode(buf, len, &rx, out, &n));

	be32(blk + 92, 5);
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n),
		      "block 0: reserved");
}

static void test_accept_outputs_untouched(void **state)
{
	static uint8_t buf[ACCEPT_CAP];
	struct rmig_wire_block out[RMIG_MAX_BLOCKS], ref[RMIG_MAX_BLOCKS];
	uint32_t rx = 11;
	unsigned n = 22;
	size_t len;

	(void)state;
	len = build_accept(buf, sizeof(buf), 4);
	/* The last block is bad: nothing may be written for the others. */
	be32(buf + RMIG_ACCEPT_HDR_LEN + 3 * RMIG_ACCEPT_BLOCK_LEN + 88, 4095);
	memset(out, 0x5a, sizeof(out));
	memcpy(ref, out, sizeof(out));
	assert_eproto(rmig_accept_decode(buf, len, &rx, out, &n), "block 3");
	assert_memory_equal(out, ref, sizeof(out));
	assert_int_equal(rx, 11);
	assert_int_equal(n, 22);
}

/* Reject / error ------------------------------------------------------ */

static void test_reject_roundtrip(void **state)
{
	uint8_t buf[RMIG_REJECT_TEXT_MAX + 64];
	char text[RMIG_REJECT_TEXT_MAX];
	enum rmig_reject r = RMIG_REJECT_NONE;
	const char *msg = "UUID mismatch: source 1b4e expected 9f2c";
	size_t len;
	uint8_t *x;

	(void)state;
	len = rmig_reject_encode(RMIG_REJECT_UUID, msg, buf, sizeof(buf));
	assert_int_equal(len, 8 + strlen(msg) + 1);
	assert_memory_equal(buf, "\0\0\0\3", 4);
	assert_int_equal(rd64(buf) & 0xffffffffu, strlen(msg) + 1);
	x = dup_exact(buf, len);
	assert_ok(rmig_reject_decode(x, len, &r, text, sizeof(text)));
	assert_int_equal(r, RMIG_REJECT_UUID);
	assert_string_equal(text, msg);
	free(x);

	/* ERROR: reason 0; empty and NULL text. */
	len = rmig_reject_encode(RMIG_REJECT_NONE, "", buf, sizeof(buf));
	assert_int_equal(len, 9);
	assert_ok(rmig_reject_decode(buf, len, &r, text, sizeof(text)));
	assert_int_equal(r, RMIG_REJECT_NONE);
	assert_string_equal(text, "");
	len = rmig_reject_encode(RMIG_REJECT_MALFORMED, NULL, buf, sizeof(buf));
	assert_int_equal(len, 9);
	assert_ok(rmig_reject_decode(buf, len, &r, NULL, 0));
	assert_int_equal(r, RMIG_REJECT_MALFORMED);

	/* Too small a buffer. */
	assert_int_equal(rmig_reject_encode(RMIG_REJECT_UUID, msg, buf, 8 + strlen(msg)), 0);
}

static void test_reject_long_text(void **state)
{
	uint8_t buf[RMIG_REJECT_TEXT_MAX + 64];
	char longtext[400], text[RMIG_REJECT_TEXT_MAX], small[8];
	enum rmig_reject r;
	size_t len;

	(void)state;
	memset(longtext, 'L', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	len = rmig_reject_encode(RMIG_REJECT_VERSION, longtext, buf, sizeof(buf));
	assert_int_equal(len, 8 + RMIG_REJECT_TEXT_MAX);
	assert_ok(rmig_reject_decode(buf, len, &r, text, sizeof(text)));
	assert_int_equal(strlen(text), RMIG_REJECT_TEXT_MAX - 1);
	/* Truncated to the caller's buffer. */
	assert_ok(rmig_reject_decode(buf, len, &r, small, sizeof(small)));
	assert_string_equal(small, "LLLLLLL");
}

static void test_reject_control_chars(void **state)
{
	uint8_t buf[64];
	char text[64];
	enum rmig_reject r;
	size_t len;

	(void)state;
	len = rmig_reject_encode(RMIG_REJECT_MAGIC, "a\033[2Jb\nc\x7f", buf,
				 sizeof(buf));
	assert_ok(rmig_reject_decode(buf, len, &r, text, sizeof(text)));
	assert_string_equal(text, "a?[2Jb?c?");
}

static void test_reject_decode_rejections(void **state)
{
	uint8_t buf[RMIG_REJECT_TEXT_MAX + 64];
	char text[64] = "keep";
	enum rmig_reject r = RMIG_REJECT_UUID;
	size_t len;

	(void)state;
	len = rmig_reject_encode(RMIG_REJECT_MAGIC, "hello", buf, sizeof(buf));
	assert_eproto(rmig_reject_decode(buf, 7, &r, text, sizeof(text)),
		      "shorter than the 8-byte header");
	assert_eproto(rmig_reject_decode(buf, len - 1, &r, text, sizeof(text)),
		      "length 13 (expected 14");
	assert_eproto(rmig_reject_decode(buf, len + 1, &r, text, sizeof(text)),
		      "length 15 (expected 14");

	be32(buf, RMIG_REJECT_MALFORMED + 1);
	assert_eproto(rmig_reject_decode(buf, len, &r, text, sizeof(text)),
		      "unknown code 11");
	be32(buf, RMIG_REJECT_MAGIC);

	be32(buf + 4, 0);
	assert_eproto(rmig_reject_decode(buf, 8, &r, text, sizeof(text)),
		      "text length 0");
	be32(buf + 4, RMIG_REJECT_TEXT_MAX + 1);
	assert_eproto(rmig_reject_decode(buf, 8 + RMIG_REJECT_TEXT_MAX + 1, &r,
					 text, sizeof(text)), "text length 201");
	be32(buf + 4, 0xffffffffu);
	assert_eproto(rmig_reject_decode(buf, len, &r, text, sizeof(text)),
		      "text length 4294967295");
	be32(buf + 4, 6);

	buf[8 + 5] = '!';
	assert_eproto(rmig_reject_decode(buf, len, &r, text, sizeof(text)),
		      "not NUL-terminated");
	buf[8 + 5] = 0;
	buf[8 + 2] = 0;
	assert_eproto(rmig_reject_decode(buf, len, &r, text, sizeof(text)),
		      "NUL inside the text at byte 2");
	assert_string_equal(text, "keep");
	assert_int_equal(r, RMIG_REJECT_UUID);
}

/* Packet header ------------------------------------------------------- */

static const uint64_t blk_len[3] = { 1 * MiB, 64 * 1024, 2 * 4096 };

static struct rmig_packet_limits limits(void)
{
	struct rmig_packet_limits l = {
		.nblocks = 3,
		.block_len = blk_len,
		.page_size = 4096,
		.pages_per_packet = 128,
	};

	return l;
}

static size_t build_packet(uint8_t *buf, size_t cap, uint32_t block,
			   const uint64_t *normal, uint32_t nn,
			   const uint64_t *zero, uint32_t nz)
{
	struct rmig_packet_hdr h = {
		.flags = 0,
		.block = block,
		.packet_num = 0x0102030405060708ull,
		.normal_count = nn,
		.zero_count = nz,
	};

	return rmig_packet_encode(&h, normal, zero, buf, cap);
}

static void test_packet_roundtrip(void **state)
{
	static const uint64_t normal[] = { 0, 4096, 1 * MiB - 4096 };
	static const uint64_t zero[] = { 8192, 12288 };
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint8_t buf[256];
	size_t len;
	uint8_t *x;

	(void)state;
	assert_int_equal(rmig_packet_len(3, 2), 24 + 5 * 8);
	assert_int_equal(build_packet(buf, rmig_packet_len(3, 2) - 1, 0,
				      normal, 3, zero, 2), 0);
	len = build_packet(buf, sizeof(buf), 0, normal, 3, zero, 2);
	assert_int_equal(len, rmig_packet_len(3, 2));
	assert_memory_equal(buf, "\0\0\0\0\0\0\0\0\1\2\3\4\5\6\7\10\0\0\0\3\0\0\0\2", 24);
	assert_int_equal(rd64(buf + 24 + 16), 1 * MiB - 4096);
	assert_int_equal(rd64(buf + 24 + 24), 8192);

	x = dup_exact(buf, len);
	assert_ok(rmig_packet_decode(x, len, &l, &h));
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.block, 0);
	assert_int_equal(h.packet_num, 0x0102030405060708ull);
	assert_int_equal(h.normal_count, 3);
	assert_int_equal(h.zero_count, 2);
	assert_ptr_equal(h.offsets, x + 24);
	for (uint32_t i = 0; i < 3; i++)
		assert_int_equal(rmig_packet_offset(&h, i), normal[i]);
	for (uint32_t i = 0; i < 2; i++)
		assert_int_equal(rmig_packet_offset(&h, 3 + i), zero[i]);
	free(x);
}

static void test_packet_only_zero_or_normal(void **state)
{
	static const uint64_t offs[] = { 4096, 0 };
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint8_t buf[256];
	size_t len;

	(void)state;
	len = build_packet(buf, sizeof(buf), 2, NULL, 0, offs, 2);
	assert_ok(rmig_packet_decode(buf, len, &l, &h));
	assert_int_equal(h.block, 2);
	assert_int_equal(h.normal_count, 0);
	assert_int_equal(h.zero_count, 2);
	assert_int_equal(rmig_packet_offset(&h, 0), 4096);

	len = build_packet(buf, sizeof(buf), 1, offs, 2, NULL, 0);
	assert_ok(rmig_packet_decode(buf, len, &l, &h));
	assert_int_equal(h.normal_count, 2);
	assert_int_equal(h.zero_count, 0);
}

static void test_packet_full(void **state)
{
	struct rmig_packet_limits l = limits();
	uint64_t normal[RMIG_MAX_PAGES_PER_PACKET], zero[RMIG_MAX_PAGES_PER_PACKET];
	static uint8_t buf[RMIG_MSG_SIZE];
	struct rmig_packet_hdr h;
	size_t len;

	(void)state;
	for (uint32_t i = 0; i < 64; i++) {
		normal[i] = (uint64_t)i * 2 * 4096;
		zero[i] = normal[i] + 4096;
	}
	len = build_packet(buf, sizeof(buf), 0, normal, 64, zero, 64);
	assert_ok(rmig_packet_decode(buf, len, &l, &h));
	assert_int_equal(rmig_packet_offset(&h, 127), 127 * 4096);

	/* RMIG_MAX_PAGES_PER_PACKET pages of 2 MiB in a 16 GiB block. */
	{
		static const uint64_t big[1] = { 16ull << 30 };
		struct rmig_packet_limits lb = {
			.nblocks = 1, .block_len = big, .page_size = 2 * MiB,
			.pages_per_packet = RMIG_MAX_PAGES_PER_PACKET,
		};

		for (uint32_t i = 0; i < RMIG_MAX_PAGES_PER_PACKET / 2; i++) {
			normal[i] = (uint64_t)i * 4 * MiB;
			zero[i] = normal[i] + 2 * MiB;
		}
		len = build_packet(buf, sizeof(buf), 0, normal,
				   RMIG_MAX_PAGES_PER_PACKET / 2, zero,
				   RMIG_MAX_PAGES_PER_PACKET / 2);
		assert_true(len <= RMIG_MSG_SIZE);
		assert_ok(rmig_packet_decode(buf, len, &lb, &h));
		assert_int_equal(rmig_packet_offset(&h, RMIG_MAX_PAGES_PER_PACKET - 1),
				 (8ull << 30) - 2 * MiB);
	}
}

static void test_packet_reject_flags(void **state)
{
	static const uint64_t offs[] = { 0 };
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint8_t buf[64];
	size_t len;

	(void)state;
	len = build_packet(buf, sizeof(buf), 0, offs, 1, NULL, 0);
	be32(buf, 1);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "unknown flags 0x00000001");
	be32(buf, 0x80000000u);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h), "flags");
}

static void test_packet_reject_block_index(void **state)
{
	static const uint64_t offs[] = { 0 };
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint8_t buf[64];
	size_t len;

	(void)state;
	len = build_packet(buf, sizeof(buf), 3, offs, 1, NULL, 0);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "block index 3 out of range (3 blocks)");
	be32(buf + 4, 7);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "packet header: block index 7 out of range (3 blocks)");
	be32(buf + 4, 0xffffffffu);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "block index 4294967295");
	l.nblocks = 0;
	l.block_len = NULL;
	be32(buf + 4, 0);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "block index 0 out of range (0 blocks)");
}

static void test_packet_reject_unaligned(void **state)
{
	uint64_t offs[] = { 0, 4096 };
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint8_t buf[64];
	size_t len;

	(void)state;
	offs[1] = 4097;
	len = build_packet(buf, sizeof(buf), 0, offs, 2, NULL, 0);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "normal page 1 offset 0x1001 not aligned to the page size 4096");
	offs[1] = 2048;
	len = build_packet(buf, sizeof(buf), 0, offs, 1, offs + 1, 1);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "zero page 0 offset 0x800 not aligned");
	/* With 2 MiB pages, a 4 KiB-aligned offset is not aligned. */
	{
		static const uint64_t big[1] = { 8 * MiB };
		struct rmig_packet_limits lb = {
			.nblocks = 1, .block_len = big, .page_size = 2 * MiB,
			.pages_per_packet = 8,
		};

		offs[0] = 2 * MiB;
		offs[1] = 4096;
		len = build_packet(buf, sizeof(buf), 0, offs, 2, NULL, 0);
		assert_eproto(rmig_packet_decode(buf, len, &lb, &h),
			      "not aligned to the page size 2097152");
	}
}

static void test_packet_reject_past_end(void **state)
{
	uint64_t offs[2];
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint8_t buf[64];
	size_t len;

	(void)state;
	/* Exactly the block length: the page would start at the end. */
	offs[0] = 0;
	offs[1] = 2 * 4096;
	len = build_packet(buf, sizeof(buf), 2, offs, 2, NULL, 0);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "normal page 1 offset 0x2000 past the end of block 2 (length 0x2000)");
	/* Last page is fine. */
	offs[1] = 4096;
	len = build_packet(buf, sizeof(buf), 2, offs, 2, NULL, 0);
	assert_ok(rmig_packet_decode(buf, len, &l, &h));
	/* Far beyond, in the zero list. */
	offs[1] = 1ull << 40;
	len = build_packet(buf, sizeof(buf), 1, offs, 1, offs + 1, 1);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "zero page 0 offset 0x10000000000 past the end of block 1");
}

static void test_packet_reject_offset_overflow(void **state)
{
	/* Page-aligned offsets whose offset + page size wraps past 2^64 to
	 * a small number: an `off + ps <= len` check would let them in. */
	static const uint64_t wraps[] = { UINT64_MAX & ~4095ull,
					  UINT64_MAX - 4096 * 2 + 1,
					  1ull << 63 };
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint8_t buf[64];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(wraps) / sizeof(wraps[0]); i++) {
		assert_int_equal(wraps[i] % 4096, 0);
		len = build_packet(buf, sizeof(buf), 0, wraps + i, 1, NULL, 0);
		assert_eproto(rmig_packet_decode(buf, len, &l, &h), "past the end");
		len = build_packet(buf, sizeof(buf), 0, NULL, 0, wraps + i, 1);
		assert_eproto(rmig_packet_decode(buf, len, &l, &h), "past the end");
	}
	/* A block whose length is below the page size takes no page. */
	{
		static const uint64_t tiny[1] = { 100 };
		struct rmig_packet_limits lt = l;
		static const uint64_t zero_off[1] = { 0 };

		lt.nblocks = 1;
		lt.block_len = tiny;
		len = build_packet(buf, sizeof(buf), 0, zero_off, 1, NULL, 0);
		assert_eproto(rmig_packet_decode(buf, len, &lt, &h),
			      "past the end of block 0 (length 0x64)");
	}
}

static void test_packet_reject_counts(void **state)
{
	static uint64_t offs[RMIG_MAX_PAGES_PER_PACKET + 1];
	static uint8_t buf[RMIG_MSG_SIZE];
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	size_t len;

	(void)state;
	for (uint32_t i = 0; i <= RMIG_MAX_PAGES_PER_PACKET; i++)
		offs[i] = 0;
	/* No pages at all. */
	len = build_packet(buf, sizeof(buf), 0, NULL, 0, NULL, 0);
	assert_int_equal(len, 24);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h), "no pages");
	/* 100 + 29 > 128. */
	len = build_packet(buf, sizeof(buf), 0, offs, 100, offs, 29);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "normal count 100 + zero count 29 above pages per packet 128");
	/* 100 + 28 = 128 is fine. */
	len = build_packet(buf, sizeof(buf), 0, offs, 100, offs, 28);
	assert_ok(rmig_packet_decode(buf, len, &l, &h));
	/* Counts whose sum wraps 32 bits: 0xffffffff + 1 = 0 in u32. */
	be32(buf + 16, 0xffffffffu);
	be32(buf + 20, 1);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "above pages per packet");
	be32(buf + 16, 0xffffffffu);
	be32(buf + 20, 0xffffffffu);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "above pages per packet");
	/* Limits above RMIG_MAX_PAGES_PER_PACKET are capped. */
	l.pages_per_packet = 1u << 30;
	len = build_packet(buf, sizeof(buf), 0, offs,
			   RMIG_MAX_PAGES_PER_PACKET, offs, 1);
	assert_eproto(rmig_packet_decode(buf, len, &l, &h),
		      "above pages per packet 4096");
}

static void test_packet_reject_length(void **state)
{
	static const uint64_t offs[] = { 0, 4096, 8192 };
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint8_t buf[128];
	size_t len;
	uint8_t *x;

	(void)state;
	len = build_packet(buf, sizeof(buf), 0, offs, 2, offs + 2, 1);
	assert_int_equal(len, 48);
	/* Truncated: by a byte, by an offset, to the header, below it. */
	x = dup_exact(buf, len - 1);
	assert_eproto(rmig_packet_decode(x, len - 1, &l, &h),
		      "length 47 (expected 48 for 2 normal + 1 zero pages)");
	free(x);
	x = dup_exact(buf, len - 8);
	assert_eproto(rmig_packet_decode(x, len - 8, &l, &h), "length 40");
	free(x);
	x = dup_exact(buf, 24);
	assert_eproto(rmig_packet_decode(x, 24, &l, &h), "length 24");
	free(x);
	x = dup_exact(buf, 23);
	assert_eproto(rmig_packet_decode(x, 23, &l, &h),
		      "length 23 shorter than the 24-byte header");
	free(x);
	assert_eproto(rmig_packet_decode(buf, 0, &l, &h), "length 0");
	/* Trailing bytes. */
	assert_eproto(rmig_packet_decode(buf, len + 1, &l, &h), "length 49");
	assert_eproto(rmig_packet_decode(buf, len + 8, &l, &h), "length 56");
}

static void test_packet_bad_limits(void **state)
{
	static const uint64_t offs[] = { 0 };
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint8_t buf[64];
	size_t len;

	(void)state;
	len = build_packet(buf, sizeof(buf), 0, offs, 1, NULL, 0);
	l.page_size = 0;
	assert_int_equal(rmig_packet_decode(buf, len, &l, &h), -EINVAL);
	l.page_size = 3000;
	assert_int_equal(rmig_packet_decode(buf, len, &l, &h), -EINVAL);
	assert_contains(rmig_err_msg(), "page size 3000");
}

static void test_packet_outputs_untouched(void **state)
{
	static const uint64_t offs[] = { 0, 1ull << 40 };
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h, ref;
	uint8_t buf[64];
	size_t len;

	(void)state;
	len = build_packet(buf, sizeof(buf), 0, offs, 2, NULL, 0);
	memset(&h, 0x5a, sizeof(h));
	ref = h;
	assert_eproto(rmig_packet_decode(buf, len, &l, &h), "past the end");
	assert_memory_equal(&h, &ref, sizeof(h));
}

/* Sync ---------------------------------------------------------------- */

static void test_sync_roundtrip(void **state)
{
	struct rmig_sync_msg m = { .flags = RMIG_SYNC_FINAL,
				   .sync_num = 0x1122334455667788ull,
				   .packets = 12345 }, d;
	uint8_t buf[RMIG_SYNC_LEN];
	uint8_t *x;

	(void)state;
	assert_int_equal(rmig_sync_encode(&m, buf), RMIG_SYNC_LEN);
	assert_memory_equal(buf, "\0\0\0\1\0\0\0\0\x11\x22\x33\x44\x55\x66\x77\x88", 16);
	assert_int_equal(rd64(buf + 16), 12345);
	x = dup_exact(buf, RMIG_SYNC_LEN);
	assert_ok(rmig_sync_decode(x, RMIG_SYNC_LEN, &d));
	assert_int_equal(d.flags, RMIG_SYNC_FINAL);
	assert_int_equal(d.sync_num, m.sync_num);
	assert_int_equal(d.packets, m.packets);
	free(x);

	m.flags = 0;
	m.packets = UINT64_MAX;
	rmig_sync_encode(&m, buf);
	assert_ok(rmig_sync_decode(buf, RMIG_SYNC_LEN, &d));
	assert_int_equal(d.flags, 0);
	assert_int_equal(d.packets, UINT64_MAX);
}

static void test_sync_reject(void **state)
{
	struct rmig_sync_msg m = { .flags = 0, .sync_num = 1, .packets = 2 }, d;
	uint8_t buf[RMIG_SYNC_LEN + 8] = { 0 };

	(void)state;
	rmig_sync_encode(&m, buf);
	assert_eproto(rmig_sync_decode(buf, RMIG_SYNC_LEN - 1, &d),
		      "sync: length 23 (expected 24)");
	assert_eproto(rmig_sync_decode(buf, RMIG_SYNC_LEN + 1, &d), "length 25");
	assert_eproto(rmig_sync_decode(buf, 0, &d), "length 0");
	be32(buf, 4);
	assert_eproto(rmig_sync_decode(buf, RMIG_SYNC_LEN, &d),
		      "unknown flags 0x00000004");
	be32(buf, RMIG_SYNC_FINAL | RMIG_SYNC_POSTCOPY);
	assert_eproto(rmig_sync_decode(buf, RMIG_SYNC_LEN, &d),
		      "both final and the post-copy switch");
	be32(buf, RMIG_SYNC_POSTCOPY);
	assert_ok(rmig_sync_decode(buf, RMIG_SYNC_LEN, &d));
	assert_int_equal(d.flags, RMIG_SYNC_POSTCOPY);
	be32(buf, 0x80000001u);
	assert_eproto(rmig_sync_decode(buf, RMIG_SYNC_LEN, &d), "flags");
	be32(buf, 1);
	be32(buf + 4, 1);
	assert_eproto(rmig_sync_decode(buf, RMIG_SYNC_LEN, &d), "reserved");
}

static void test_sync_ack(void **state)
{
	uint8_t buf[16] = { 0 };
	uint64_t v = 0;
	uint8_t *x;

	(void)state;
	assert_int_equal(rmig_sync_ack_encode(0xa1b2c3d4e5f60718ull, buf),
			 RMIG_SYNC_ACK_LEN);
	assert_memory_equal(buf, "\xa1\xb2\xc3\xd4\xe5\xf6\x07\x18", 8);
	x = dup_exact(buf, RMIG_SYNC_ACK_LEN);
	assert_ok(rmig_sync_ack_decode(x, RMIG_SYNC_ACK_LEN, &v));
	assert_int_equal(v, 0xa1b2c3d4e5f60718ull);
	free(x);
	assert_eproto(rmig_sync_ack_decode(buf, 7, &v), "sync ack: length 7");
	assert_eproto(rmig_sync_ack_decode(buf, 9, &v), "length 9 (expected 8)");
	assert_eproto(rmig_sync_ack_decode(buf, 0, &v), "length 0");
}

/* Read keys (post-copy) ----------------------------------------------- */

#define RK_PS 4096u

static void test_read_keys_roundtrip(void **state)
{
	const struct rmig_read_key k[3] = {
		{ .block = 2, .length = 8 * RK_PS, .raddr = 0x7f0011223000ull,
		  .rkey = 0xdeadbeefcafeull },
		{ .block = 0, .length = RK_PS, .raddr = 0, .rkey = 1 },
		{ .block = 1, .length = 1ull << 40, .raddr = UINT64_MAX,
		  .rkey = UINT64_MAX },
	};
	static struct rmig_read_key d[RMIG_MAX_BLOCKS];
	uint8_t buf[RMIG_READ_KEYS_HDR_LEN + 3 * RMIG_READ_KEYS_ENTRY_LEN];
	unsigned n = 0;
	uint8_t *x;

	(void)state;
	assert_int_equal(rmig_read_keys_len(3), sizeof(buf));
	assert_int_equal(rmig_read_keys_encode(k, 3, buf, sizeof(buf)),
			 sizeof(buf));
	assert_memory_equal(buf, "\0\0\0\3\0\0\0\0\0\0\0\2\0\0\0\0", 16);
	assert_int_equal(rd64(buf + 16), 8 * RK_PS);
	assert_int_equal(rd64(buf + 24), 0x7f0011223000ull);
	assert_int_equal(rd64(buf + 32), 0xdeadbeefcafeull);
	x = dup_exact(buf, sizeof(buf));
	assert_ok(rmig_read_keys_decode(x, sizeof(buf), 3, RK_PS, d, &n));
	free(x);
	assert_int_equal(n, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(d[i].block, k[i].block);
		assert_int_equal(d[i].length, k[i].length);
		assert_int_equal(d[i].raddr, k[i].raddr);
		assert_int_equal(d[i].rkey, k[i].rkey);
	}
	/* Encoding refuses what it cannot send. */
	assert_int_equal(rmig_read_keys_encode(k, 0, buf, sizeof(buf)), 0);
	assert_int_equal(rmig_read_keys_encode(k, 3, buf, sizeof(buf) - 1), 0);
	assert_int_equal(rmig_read_keys_encode(k, RMIG_MAX_BLOCKS + 1, buf,
					       sizeof(buf)), 0);
}

static void test_read_keys_reject(void **state)
{
	const struct rmig_read_key k[2] = {
		{ .block = 0, .length = 2 * RK_PS, .raddr = 1, .rkey = 2 },
		{ .block = 1, .length = RK_PS, .raddr = 3, .rkey = 4 },
	};
	static struct rmig_read_key d[RMIG_MAX_BLOCKS];
	uint8_t buf[RMIG_READ_KEYS_HDR_LEN + 2 * RMIG_READ_KEYS_ENTRY_LEN];
	uint8_t *e1 = buf + RMIG_READ_KEYS_HDR_LEN + RMIG_READ_KEYS_ENTRY_LEN;
	unsigned n = 99;

	(void)state;
#define RK_FRESH() rmig_read_keys_encode(k, 2, buf, sizeof(buf))
	RK_FRESH();
	assert_eproto(rmig_read_keys_decode(buf, 7, 2, RK_PS, d, &n),
		      "read keys: length 7 shorter than the 8-byte header");
	assert_eproto(rmig_read_keys_decode(buf, sizeof(buf) - 1, 2, RK_PS, d,
					    &n),
		      "length 71 for 2 entries (expected 72)");
	/* More entries than the destination has blocks. */
	assert_eproto(rmig_read_keys_decode(buf, sizeof(buf), 1, RK_PS, d, &n),
		      "entry count 2 (expected 1..1)");
	be32(buf, 0);
	assert_eproto(rmig_read_keys_decode(buf, sizeof(buf), 2, RK_PS, d, &n),
		      "entry count 0");
	RK_FRESH();
	be32(buf + 4, 1);
	assert_eproto(rmig_read_keys_decode(buf, sizeof(buf), 2, RK_PS, d, &n),
		      "read keys: reserved field 0x00000001");
	RK_FRESH();
	be32(e1, 5);
	assert_eproto(rmig_read_keys_decode(buf, sizeof(buf), 2, RK_PS, d, &n),
		      "entry 1: block 5 (expected < 2)");
	be32(e1, 0);
	assert_eproto(rmig_read_keys_decode(buf, sizeof(buf), 2, RK_PS, d, &n),
		      "entry 1: block 0 listed twice");
	RK_FRESH();
	be32(e1 + 4, 9);
	assert_eproto(rmig_read_keys_decode(buf, sizeof(buf), 2, RK_PS, d, &n),
		      "entry 1: reserved field 0x00000009");
	RK_FRESH();
	be64(e1 + 8, 0);
	assert_eproto(rmig_read_keys_decode(buf, sizeof(buf), 2, RK_PS, d, &n),
		      "entry 1: length 0 (expected a nonzero multiple");
	be64(e1 + 8, RK_PS + 1);
	assert_eproto(rmig_read_keys_decode(buf, sizeof(buf), 2, RK_PS, d, &n),
		      "length 4097");
	/* Nothing written on failure. */
	assert_int_equal(n, 99);
#undef RK_FRESH
}

/* Device state -------------------------------------------------------- */

#define DS_MAX (64ull << 20)

static void test_devstate_roundtrip(void **state)
{
	const char *id = "0000:00:02.0/virtio-net";
	uint8_t data[300], buf[1024];
	struct rmig_devstate_frag f = {
		.seq = 9, .instance_id = 3, .total_len = 1000,
		.frag_off = 200, .frag_len = sizeof(data), .idstr = id,
		.data = data,
	}, d;
	size_t len, n = strlen(id) + 1;
	uint8_t *x;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	len = rmig_devstate_encode(&f, buf, sizeof(buf));
	assert_int_equal(len, RMIG_DEVSTATE_HDR_LEN + n + sizeof(data));
	assert_memory_equal(buf, "\0\0\0\x09\0\0\0\x03", 8);
	assert_int_equal(rd64(buf + 8), 1000);
	assert_int_equal(rd64(buf + 16), 200);
	assert_int_equal(buf[24], 0);
	assert_int_equal(buf[25], n);
	assert_memory_equal(buf + 26, "\0\0\0\0\x01\x2c", 6);
	assert_string_equal((char *)buf + 32, id);

	x = dup_exact(buf, len);
	memset(&d, 0, sizeof(d));
	assert_ok(rmig_devstate_decode(x, len, DS_MAX, &d));
	assert_int_equal(d.seq, 9);
	assert_int_equal(d.instance_id, 3);
	assert_int_equal(d.total_len, 1000);
	assert_int_equal(d.frag_off, 200);
	assert_int_equal(d.frag_len, sizeof(data));
	assert_int_equal(d.idstr_len, n);
	assert_string_equal(d.idstr, id);
	assert_ptr_equal(d.idstr, (char *)x + 32);
	assert_ptr_equal(d.data, x + 32 + n);
	assert_memory_equal(d.data, data, sizeof(data));
	free(x);

	/* idstr_len given and consistent; inconsistent is refused. */
	f.idstr_len = (uint16_t)n;
	assert_int_equal(rmig_devstate_encode(&f, buf, sizeof(buf)), len);
	f.idstr_len = (uint16_t)(n + 1);
	assert_int_equal(rmig_devstate_encode(&f, buf, sizeof(buf)), 0);
}

static void test_devstate_edges(void **state)
{
	static uint8_t buf[RMIG_MSG_SIZE + 16], data[RMIG_MSG_SIZE];
	char id[RMIG_IDSTR_MAX + 1];
	struct rmig_devstate_frag f = { 0 }, d;
	size_t len, room;

	(void)state;
	/* Empty blob, empty idstr. */
	f.idstr = "";
	len = rmig_devstate_encode(&f, buf, sizeof(buf));
	assert_int_equal(len, RMIG_DEVSTATE_HDR_LEN + 1);
	assert_ok(rmig_devstate_decode(buf, len, DS_MAX, &d));
	assert_int_equal(d.idstr_len, 1);
	assert_int_equal(d.frag_len, 0);
	assert_int_equal(d.total_len, 0);

	/* Longest idstr, largest fragment: exactly one message. */
	memset(id, 'i', RMIG_IDSTR_MAX - 1);
	id[RMIG_IDSTR_MAX - 1] = '\0';
	room = rmig_devstate_frag_room(RMIG_IDSTR_MAX);
	assert_int_equal(room, RMIG_MSG_SIZE - RMIG_DEVSTATE_HDR_LEN - RMIG_IDSTR_MAX);
	f.idstr = id;
	f.data = data;
	f.frag_len = (uint32_t)room;
	f.total_len = DS_MAX;
	f.frag_off = DS_MAX - room;
	len = rmig_devstate_encode(&f, buf, sizeof(buf));
	assert_int_equal(len, RMIG_MSG_SIZE);
	assert_ok(rmig_devstate_decode(buf, len, DS_MAX, &d));
	assert_int_equal(d.idstr_len, RMIG_IDSTR_MAX);
	assert_int_equal(d.frag_off + d.frag_len, DS_MAX);

	/* Encoder refusals: too big a fragment, past the total, idstr too
	 * long, buffer too small. */
	f.frag_len = (uint32_t)room + 1;
	f.frag_off = 0;
	assert_int_equal(rmig_devstate_encode(&f, buf, sizeof(buf)), 0);
	f.frag_len = 10;
	f.total_len = 5;
	assert_int_equal(rmig_devstate_encode(&f, buf, sizeof(buf)), 0);
	f.total_len = 10;
	assert_int_equal(rmig_devstate_encode(&f, buf, RMIG_DEVSTATE_HDR_LEN + RMIG_IDSTR_MAX + 9), 0);
	assert_int_equal(rmig_devstate_encode(&f, buf, RMIG_DEVSTATE_HDR_LEN + RMIG_IDSTR_MAX + 10),
			 RMIG_DEVSTATE_HDR_LEN + RMIG_IDSTR_MAX + 10);
	memset(id, 'i', RMIG_IDSTR_MAX);
	id[RMIG_IDSTR_MAX] = '\0';
	assert_int_equal(rmig_devstate_encode(&f, buf, sizeof(buf)), 0);
	assert_int_equal(rmig_devstate_frag_room(RMIG_MSG_SIZE), 0);
}

/* A valid fragment with idstr "dev" and 16 data bytes in @buf. */
static size_t build_devstate(uint8_t *buf, size_t cap)
{
	static const uint8_t data[16] = { 1, 2, 3, 4, 5, 6, 7, 8,
					  9, 10, 11, 12, 13, 14, 15, 16 };
	struct rmig_devstate_frag f = {
		.seq = 1, .instance_id = 0, .total_len = 100, .frag_off = 50,
		.frag_len = sizeof(data), .idstr = "dev", .data = data,
	};

	return rmig_devstate_encode(&f, buf, cap);
}

static void test_devstate_reject_idstr(void **state)
{
	static uint8_t buf[1024];
	struct rmig_devstate_frag d, ref;
	size_t len;

	(void)state;
	len = build_devstate(buf, sizeof(buf));
	assert_int_equal(len, 32 + 4 + 16);
	memset(&d, 0x5a, sizeof(d));
	ref = d;

	buf[32 + 3] = 'X'; /* the NUL of "dev" */
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "idstr not NUL-terminated");
	buf[32 + 3] = 0;

	buf[32 + 1] = 0; /* "d\0v\0" */
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "NUL inside idstr at byte 1");
	buf[32 + 1] = 'e';

	be16(buf + 24, 0);
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "idstr length 0 (expected 1..256");
	be16(buf + 24, RMIG_IDSTR_MAX + 1);
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "idstr length 257");
	be16(buf + 24, 0xffff);
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "idstr length 65535");
	be16(buf + 24, 4);

	/* An idstr of RMIG_IDSTR_MAX + 1 bytes with its NUL: built by hand. */
	{
		static uint8_t big[32 + RMIG_IDSTR_MAX + 1];

		memcpy(big, buf, 32);
		be16(big + 24, RMIG_IDSTR_MAX + 1);
		be32(big + 28, 0);
		memset(big + 32, 'a', RMIG_IDSTR_MAX);
		big[32 + RMIG_IDSTR_MAX] = 0;
		assert_eproto(rmig_devstate_decode(big, sizeof(big), DS_MAX, &d),
			      "idstr length 257");
	}

	be16(buf + 26, 1);
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d), "reserved");
	be16(buf + 26, 0);
	assert_memory_equal(&d, &ref, sizeof(d));
	assert_ok(rmig_devstate_decode(buf, len, DS_MAX, &d));
}

static void test_devstate_reject_total(void **state)
{
	static uint8_t buf[1024];
	struct rmig_devstate_frag d;
	size_t len;

	(void)state;
	len = build_devstate(buf, sizeof(buf));
	assert_eproto(rmig_devstate_decode(buf, len, 99, &d),
		      "total length 100 above the limit 99");
	be64(buf + 8, UINT64_MAX);
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "total length 18446744073709551615");
	be64(buf + 8, DS_MAX);
	assert_ok(rmig_devstate_decode(buf, len, DS_MAX, &d));
}

static void test_devstate_reject_fragment(void **state)
{
	static uint8_t buf[1024];
	struct rmig_devstate_frag d;
	size_t len;

	(void)state;
	len = build_devstate(buf, sizeof(buf)); /* 50 + 16 of 100 */
	be64(buf + 16, 85);                   /* 85 + 16 = 101 */
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "fragment at 85 of 16 bytes past the total length 100");
	be64(buf + 16, 84);
	assert_ok(rmig_devstate_decode(buf, len, DS_MAX, &d));
	be64(buf + 16, 101); /* offset alone past the total */
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "past the total");
	/* Offset near 2^64: off + len wraps to a small number. */
	be64(buf + 8, DS_MAX);
	be64(buf + 16, UINT64_MAX - 7);
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "past the total");
	/* Fragment length alone beyond the total. */
	be64(buf + 16, 0);
	be64(buf + 8, 10);
	assert_eproto(rmig_devstate_decode(buf, len, DS_MAX, &d),
		      "past the total");
}

static void test_devstate_reject_length(void **state)
{
	static uint8_t buf[1024];
	struct rmig_devstate_frag d;
	size_t len;
	uint8_t *x;

	(void)state;
	len = build_devstate(buf, sizeof(buf));
	x = dup_exact(buf, len - 1);
	assert_eproto(rmig_devstate_decode(x, len - 1, DS_MAX, &d),
		      "length 51 (expected 52 for a 4-byte idstr and a 16-byte fragment)");
	free(x);
	assert_eproto(rmig_devstate_decode(buf, len + 1, DS_MAX, &d),
		      "length 53 (expected 52");
	x = dup_exact(buf, 31);
	assert_eproto(rmig_devstate_decode(x, 31, DS_MAX, &d),
		      "shorter than the 32-byte header");
	free(x);
	/* A fragment length that claims far more than the message holds. */
	be64(buf + 8, 1ull << 40);
	be32(buf + 28, 0xffffffffu);
	be64(buf + 16, 0);
	assert_eproto(rmig_devstate_decode(buf, len, UINT64_MAX, &d),
		      "expected 4294967331");
	/* An idstr length that runs past the end of the message. */
	be64(buf + 8, 100);
	be32(buf + 28, 0);
	be16(buf + 24, 200);
	x = dup_exact(buf, 40);
	assert_eproto(rmig_devstate_decode(x, 40, DS_MAX, &d), "length 40");
	free(x);
}

/* Fuzz ------------------------------------------------------------------ */

#define FUZZ_ITERS 20000
#define FUZZ_CAP (RMIG_MSG_SIZE + 64)

static const uint64_t interesting[] = {
	0, 1, 2, 3, 0x7f, 0x80, 0xff, 0x100, 0xfff, 0x1000, 0x1001, 0x2000,
	0x7fff, 0x8000, 0xffff, 0x10000, 0x10001, 64 * 1024 - 4096,
	1 * MiB - 4096, 1 * MiB, 2 * MiB, 0x7fffffff, 0x80000000,
	0xffffffff, 0x100000000ull, 0xfffffffffffff000ull,
	0x7ffffffffffff000ull, 0x8000000000000000ull, UINT64_MAX,
	UINT64_MAX - 1, RMIG_WIRE_MAGIC, RMIG_MSG_SIZE, 128, 129, 4096, 4097,
	RMIG_IDSTR_MAX, RMIG_IDSTR_MAX + 1, RMIG_MAX_BLOCKS,
	RMIG_MAX_BLOCKS + 1, 96, 16, 24, 32,
};

/* 1..4 mutations of @buf[0..*len) within @cap bytes. */
static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
	int rounds = 1 + (int)(rng() % 4);

	for (int r = 0; r < rounds; r++) {
		size_t n = *len;
		uint64_t v = interesting[rng() % (sizeof(interesting) / sizeof(interesting[0]))];
		size_t at;

		switch (rng() % 9) {
		case 0: /* flip a bit */
			if (n)
				buf[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
			break;
		case 1: /* random byte */
			if (n)
				buf[rng() % n] = (uint8_t)rng();
			break;
		case 2: /* interesting u16, aligned to a field boundary */
			if (n >= 2) {
				at = (rng() % (n - 1)) & ~(size_t)1;
				be16(buf + at, (uint16_t)v);
			}
			break;
		case 3: /* interesting u32 */
			if (n >= 4) {
				at = (rng() % (n - 3)) & ~(size_t)3;
				be32(buf + at, (uint32_t)v);
			}
			break;
		case 4: /* interesting u64, or off by one of it */
			if (n >= 8) {
				at = (rng() % (n - 7)) & ~(size_t)7;
				be64(buf + at, v + (rng() % 3) - 1);
			}
			break;
		case 5: /* truncate */
			if (n)
				*len = rng() % n;
			break;
		case 6: /* extend with random bytes */
		{
			size_t add = 1 + rng() % 64;

			if (n + add <= cap) {
				for (size_t i = 0; i < add; i++)
					buf[n + i] = (uint8_t)rng();
				*len = n + add;
			}
			break;
		}
		case 7: /* extend by whole 8- or 96-byte units */
		{
			size_t add = (rng() % 2) ? 8 : 96;

			if (n + add <= cap) {
				memset(buf + n, 0, add);
				*len = n + add;
			}
			break;
		}
		default: /* copy a chunk over another place */
			if (n >= 16) {
				size_t a = rng() % (n - 8), b = rng() % (n - 8);

				memmove(buf + a, buf + b, 8);
			}
			break;
		}
	}
}

/* Returns whether the decoder accepted the input. */
typedef bool (*fuzz_fn)(const uint8_t *buf, size_t len);

static bool fuzz_handshake(const uint8_t *buf, size_t len)
{
	struct rmig_handshake h;
	struct rmig_handshake_expect e = good_expect();
	uint64_t seen = 1;
	char why[RMIG_REJECT_TEXT_MAX];
	enum rmig_reject r;

	if (rmig_handshake_decode(buf, len, &h))
		return false;
	assert_int_equal(len, RMIG_HANDSHAKE_LEN);
	e.seen = &seen;
	if (rng() % 2) {
		e.uuid_set = false;
		e.channel_count = 0;
		e.page_size = 0;
	}
	r = rmig_handshake_check(&h, &e, why, sizeof(why));
	assert_true(strnlen(why, sizeof(why)) < sizeof(why));
	assert_true(r >= RMIG_REJECT_NONE && r <= RMIG_REJECT_MALFORMED);
	if (r != RMIG_REJECT_NONE)
		return true; /* decoded: the check may still refuse it */
	assert_int_equal(h.magic, RMIG_WIRE_MAGIC);
	assert_int_equal(h.version, RMIG_WIRE_VERSION);
	assert_true(h.channel_count >= 1 && h.channel_count <= RMIG_MAX_CHANNELS);
	assert_true(h.channel_id < h.channel_count);
	assert_true(h.channel_id != 0); /* seen */
	assert_true(h.page_size >= 4096 && !(h.page_size & (h.page_size - 1)));
	assert_true(h.pages_per_packet >= 1 &&
		    h.pages_per_packet <= RMIG_MAX_PAGES_PER_PACKET);
	assert_int_equal(h.msg_size, RMIG_MSG_SIZE);
	assert_true(h.rx_depth > 0);
	return true;
}

static bool fuzz_accept(const uint8_t *buf, size_t len)
{
	static struct rmig_wire_block b[RMIG_MAX_BLOCKS + 1];
	uint32_t rx;
	unsigned n = 0;

	/* A canary after the RMIG_MAX_BLOCKS the decoder may write. */
	memset(&b[RMIG_MAX_BLOCKS], 0xee, sizeof(b[0]));
	if (rmig_accept_decode(buf, len, &rx, b, &n))
		return false;
	assert_true(n >= 1 && n <= RMIG_MAX_BLOCKS);
	assert_int_equal(len, rmig_accept_len(n));
	assert_true(rx > 0);
	for (unsigned i = 0; i < n; i++) {
		size_t nl = strnlen(b[i].name, RMIG_BLOCK_NAME_MAX);

		assert_true(nl > 0 && nl < RMIG_BLOCK_NAME_MAX);
		assert_true(b[i].page_size >= 4096 &&
			    !(b[i].page_size & (b[i].page_size - 1)));
		assert_true(b[i].length > 0 && b[i].length % b[i].page_size == 0);
		assert_true(b[i].raddr <= UINT64_MAX - b[i].length);
	}
	for (size_t i = 0; i < sizeof(b[0]); i++)
		assert_int_equal(((uint8_t *)&b[RMIG_MAX_BLOCKS])[i], 0xee);
	return true;
}

static bool fuzz_reject(const uint8_t *buf, size_t len)
{
	char text[64];
	enum rmig_reject r;

	if (rmig_reject_decode(buf, len, &r, text, sizeof(text)))
		return false;
	assert_true(r <= RMIG_REJECT_MALFORMED);
	assert_true(strnlen(text, sizeof(text)) < sizeof(text));
	for (const char *c = text; *c; c++)
		assert_true((unsigned char)*c >= 0x20 && *c != 0x7f);
	return true;
}

static bool fuzz_packet(const uint8_t *buf, size_t len)
{
	struct rmig_packet_limits l = limits();
	struct rmig_packet_hdr h;
	uint32_t total;

	if (rng() % 2) {
		l.pages_per_packet = RMIG_MAX_PAGES_PER_PACKET;
	}
	if (rmig_packet_decode(buf, len, &l, &h))
		return false;
	assert_true(h.block < l.nblocks);
	assert_int_equal(h.flags, 0);
	total = h.normal_count + h.zero_count; /* both <= 4096 here */
	assert_true(h.normal_count <= l.pages_per_packet &&
		    h.zero_count <= l.pages_per_packet);
	assert_true(total >= 1 && total <= l.pages_per_packet);
	assert_int_equal(len, rmig_packet_len(h.normal_count, h.zero_count));
	assert_ptr_equal(h.offsets + (size_t)total * 8, buf + len);
	for (uint32_t i = 0; i < total; i++) {
		uint64_t off = rmig_packet_offset(&h, i);

		assert_int_equal(off % l.page_size, 0);
		assert_true(off < blk_len[h.block]);
		assert_true(blk_len[h.block] - off >= l.page_size);
	}
	return true;
}

static bool fuzz_sync(const uint8_t *buf, size_t len)
{
	struct rmig_sync_msg m;
	uint64_t v;
	bool ok = false;

	if (!rmig_sync_decode(buf, len, &m)) {
		assert_int_equal(len, RMIG_SYNC_LEN);
		assert_true(m.flags == 0 || m.flags == RMIG_SYNC_FINAL ||
			    m.flags == RMIG_SYNC_POSTCOPY);
		ok = true;
	}
	if (!rmig_sync_ack_decode(buf, len, &v)) {
		assert_int_equal(len, RMIG_SYNC_ACK_LEN);
		ok = true;
	}
	return ok;
}

static bool fuzz_devstate(const uint8_t *buf, size_t len)
{
	struct rmig_devstate_frag f;
	uint64_t max = (rng() % 2) ? DS_MAX : 1000;

	if (rmig_devstate_decode(buf, len, max, &f))
		return false;
	assert_true(f.idstr_len >= 1 && f.idstr_len <= RMIG_IDSTR_MAX);
	assert_ptr_equal(f.idstr, (const char *)buf + RMIG_DEVSTATE_HDR_LEN);
	assert_int_equal(strlen(f.idstr), f.idstr_len - 1u);
	assert_true(f.total_len <= max);
	assert_true(f.frag_off <= f.total_len);
	assert_true(f.frag_len <= f.total_len - f.frag_off);
	assert_ptr_equal((const uint8_t *)f.data + f.frag_len, buf + len);
	assert_ptr_equal(f.data, f.idstr + f.idstr_len);
	return true;
}

/* Seeds: valid messages the mutations start from. */
struct seed {
	uint8_t buf[FUZZ_CAP];
	size_t len;
};

static void run_fuzz(const char *what, const struct seed *seeds,
		     size_t nseeds, fuzz_fn fn)
{
	static uint8_t work[FUZZ_CAP];
	unsigned accepted = 0;

	for (int it = 0; it < FUZZ_ITERS; it++) {
		const struct seed *s = &seeds[rng() % nseeds];
		size_t len = s->len;
		uint8_t *x;

		memcpy(work, s->buf, s->len);
		if (it % 16) /* 1 in 16 unmutated: must pass */
			mutate(work, &len, FUZZ_CAP);
		x = dup_exact(work, len);
		if (fn(x, len))
			accepted += it % 16 != 0;
		else if (it % 16 == 0)
			fail_msg("%s: unmutated seed %td refused: %s", what,
				 s - seeds, rmig_err_msg());
		free(x);
	}
	print_message("fuzz %s: %d inputs, %u mutated ones accepted\n", what,
		      FUZZ_ITERS, accepted);
}

static struct seed seeds[8];

static void test_fuzz_handshake(void **state)
{
	struct rmig_handshake h = good_hs();

	(void)state;
	seeds[0].len = rmig_handshake_encode(&h, seeds[0].buf);
	h.channel_count = 64;
	h.channel_id = 63;
	h.page_size = 2 * MiB;
	seeds[1].len = rmig_handshake_encode(&h, seeds[1].buf);
	run_fuzz("handshake", seeds, 2, fuzz_handshake);
}

static void test_fuzz_accept(void **state)
{
	(void)state;
	seeds[0].len = build_accept(seeds[0].buf, FUZZ_CAP, 1);
	seeds[1].len = build_accept(seeds[1].buf, FUZZ_CAP, 3);
	seeds[2].len = build_accept(seeds[2].buf, FUZZ_CAP, 40);
	run_fuzz("accept", seeds, 3, fuzz_accept);
}

static void test_fuzz_reject(void **state)
{
	(void)state;
	seeds[0].len = rmig_reject_encode(RMIG_REJECT_UUID, "UUID mismatch",
					  seeds[0].buf, FUZZ_CAP);
	seeds[1].len = rmig_reject_encode(RMIG_REJECT_NONE, "",
					  seeds[1].buf, FUZZ_CAP);
	run_fuzz("reject", seeds, 2, fuzz_reject);
}

static void test_fuzz_packet(void **state)
{
	static const uint64_t a[] = { 0, 4096, 1 * MiB - 4096, 8192 };
	static const uint64_t b[] = { 64 * 1024 - 4096, 4096 };
	uint64_t many[128];

	(void)state;
	for (int i = 0; i < 128; i++)
		many[i] = (uint64_t)i * 4096;
	seeds[0].len = build_packet(seeds[0].buf, FUZZ_CAP, 0, a, 2, a + 2, 2);
	seeds[1].len = build_packet(seeds[1].buf, FUZZ_CAP, 1, b, 1, b + 1, 1);
	seeds[2].len = build_packet(seeds[2].buf, FUZZ_CAP, 2, NULL, 0, b + 1, 1);
	seeds[3].len = build_packet(seeds[3].buf, FUZZ_CAP, 0, many, 100, many, 28);
	seeds[4].len = build_packet(seeds[4].buf, FUZZ_CAP, 0, a, 1, NULL, 0);
	run_fuzz("packet", seeds, 5, fuzz_packet);
}

static bool fuzz_read_keys(const uint8_t *buf, size_t len)
{
	static struct rmig_read_key k[RMIG_MAX_BLOCKS];
	static uint8_t back[RMIG_MSG_SIZE];
	unsigned n;

	if (rmig_read_keys_decode(buf, len, 4, RK_PS, k, &n))
		return false;
	assert_true(n >= 1 && n <= 4);
	assert_int_equal(len, rmig_read_keys_len(n));
	for (unsigned i = 0; i < n; i++) {
		assert_true(k[i].block < 4);
		assert_true(k[i].length && k[i].length % RK_PS == 0);
	}
	assert_int_equal(rmig_read_keys_encode(k, n, back, sizeof(back)), len);
	assert_memory_equal(back, buf, len);
	return true;
}

static void test_fuzz_read_keys(void **state)
{
	const struct rmig_read_key k[3] = {
		{ .block = 3, .length = RK_PS, .raddr = 1, .rkey = 2 },
		{ .block = 0, .length = 64 * RK_PS, .raddr = 3, .rkey = 4 },
		{ .block = 1, .length = 2 * RK_PS, .raddr = 5, .rkey = 6 },
	};

	(void)state;
	seeds[0].len = rmig_read_keys_encode(k, 1, seeds[0].buf, FUZZ_CAP);
	seeds[1].len = rmig_read_keys_encode(k, 3, seeds[1].buf, FUZZ_CAP);
	run_fuzz("read keys", seeds, 2, fuzz_read_keys);
}

static void test_fuzz_sync(void **state)
{
	struct rmig_sync_msg m = { .flags = RMIG_SYNC_FINAL, .sync_num = 5,
				   .packets = 77 };

	(void)state;
	seeds[0].len = rmig_sync_encode(&m, seeds[0].buf);
	seeds[1].len = rmig_sync_ack_encode(5, seeds[1].buf);
	run_fuzz("sync", seeds, 2, fuzz_sync);
}

static void test_fuzz_devstate(void **state)
{
	static uint8_t data[2000];
	struct rmig_devstate_frag f = {
		.seq = 1, .instance_id = 2, .total_len = 1000, .frag_off = 0,
		.frag_len = 1000, .idstr = "ram", .data = data,
	};

	(void)state;
	seeds[0].len = build_devstate(seeds[0].buf, FUZZ_CAP);
	seeds[1].len = rmig_devstate_encode(&f, seeds[1].buf, FUZZ_CAP);
	f.idstr = "";
	f.frag_len = 0;
	f.total_len = 0;
	seeds[2].len = rmig_devstate_encode(&f, seeds[2].buf, FUZZ_CAP);
	assert_true(seeds[0].len && seeds[1].len && seeds[2].len);
	run_fuzz("devstate", seeds, 3, fuzz_devstate);
}

static void test_fuzz_imm(void **state)
{
	(void)state;
	for (int it = 0; it < 200000; it++) {
		uint32_t imm = (uint32_t)rng();
		enum rmig_msg_type t;
		unsigned c;

		if (it % 2)
			imm &= 0xffff0000u; /* valid low bits half the time */
		if (rmig_imm_parse(imm, &t, &c))
			continue;
		assert_true(t >= RMIG_MSG_HANDSHAKE && t <= RMIG_MSG_TYPE_MAX);
		assert_true(c <= RMIG_IMM_CREDITS_MAX);
		assert_int_equal(rmig_imm_make(t, c), imm);
		assert_string_not_equal(rmig_msg_type_name(t), "UNKNOWN");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_type_name),
		cmocka_unit_test(test_imm_roundtrip),
		cmocka_unit_test(test_imm_credits_clamped),
		cmocka_unit_test(test_imm_reject_unknown_type),
		cmocka_unit_test(test_imm_read_keys),
		cmocka_unit_test(test_imm_reject_low_bits),

		cmocka_unit_test(test_handshake_roundtrip),
		cmocka_unit_test(test_handshake_decode_length),
		cmocka_unit_test(test_handshake_accepts_good),
		cmocka_unit_test(test_handshake_reject_magic),
		cmocka_unit_test(test_handshake_reject_version),
		cmocka_unit_test(test_handshake_reject_uuid),
		cmocka_unit_test(test_handshake_reject_channel_id),
		cmocka_unit_test(test_handshake_reject_duplicate),
		cmocka_unit_test(test_handshake_reject_channel_count),
		cmocka_unit_test(test_handshake_reject_page_size),
		cmocka_unit_test(test_handshake_reject_packet_size),
		cmocka_unit_test(test_handshake_reject_features),
		cmocka_unit_test(test_handshake_reject_malformed),

		cmocka_unit_test(test_accept_roundtrip),
		cmocka_unit_test(test_accept_max_blocks),
		cmocka_unit_test(test_accept_reject_header),
		cmocka_unit_test(test_accept_reject_block_count),
		cmocka_unit_test(test_accept_reject_length_multiple),
		cmocka_unit_test(test_accept_reject_name),
		cmocka_unit_test(test_accept_reject_page_size),
		cmocka_unit_test(test_accept_reject_block_fields),
		cmocka_unit_test(test_accept_outputs_untouched),

		cmocka_unit_test(test_reject_roundtrip),
		cmocka_unit_test(test_reject_long_text),
		cmocka_unit_test(test_reject_control_chars),
		cmocka_unit_test(test_reject_decode_rejections),

		cmocka_unit_test(test_packet_roundtrip),
		cmocka_unit_test(test_packet_only_zero_or_normal),
		cmocka_unit_test(test_packet_full),
		cmocka_unit_test(test_packet_reject_flags),
		cmocka_unit_test(test_packet_reject_block_index),
		cmocka_unit_test(test_packet_reject_unaligned),
		cmocka_unit_test(test_packet_reject_past_end),
		cmocka_unit_test(test_packet_reject_offset_overflow),
		cmocka_unit_test(test_packet_reject_counts),
		cmocka_unit_test(test_packet_reject_length),
		cmocka_unit_test(test_packet_bad_limits),
		cmocka_unit_test(test_packet_outputs_untouched),

		cmocka_unit_test(test_sync_roundtrip),
		cmocka_unit_test(test_sync_reject),
		cmocka_unit_test(test_sync_ack),
		cmocka_unit_test(test_read_keys_roundtrip),
		cmocka_unit_test(test_read_keys_reject),

		cmocka_unit_test(test_devstate_roundtrip),
		cmocka_unit_test(test_devstate_edges),
		cmocka_unit_test(test_devstate_reject_idstr),
		cmocka_unit_test(test_devstate_reject_total),
		cmocka_unit_test(test_devstate_reject_fragment),
		cmocka_unit_test(test_devstate_reject_length),

		cmocka_unit_test(test_fuzz_handshake),
		cmocka_unit_test(test_fuzz_accept),
		cmocka_unit_test(test_fuzz_reject),
		cmocka_unit_test(test_fuzz_packet),
		cmocka_unit_test(test_fuzz_sync),
		cmocka_unit_test(test_fuzz_read_keys),
		cmocka_unit_test(test_fuzz_devstate),
		cmocka_unit_test(test_fuzz_imm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

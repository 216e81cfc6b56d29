/* SPDX-License-Identifier: MIT */
/*
 * fuzz_wire.c - libFuzzer harnesses for every decoder of wire.h, one
 * executable per decoder: compiled once per target with
 * -DFUZZ_TARGET=<name> (tests/fuzz/CMakeLists.txt), which selects the
 * function LLVMFuzzerTestOneInput calls.
 *
 * Beyond "no crash under ASan/UBSan", each harness checks what the decoder
 * promises when it accepts: the message encodes back to the same bytes (or,
 * where the decoder normalises, decodes back to the same values), packet
 * offsets lie inside their block, device-state fragments inside their blob.
 * A broken promise is __builtin_trap(), a crash libFuzzer reports.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_params.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UNUSED __attribute__((unused))

static void expect(bool ok)
{
	if (!ok)
		__builtin_trap();
}

static UNUSED void fuzz_imm(const uint8_t *d, size_t n)
{
	enum rmig_msg_type type;
	unsigned credits;
	uint32_t imm;

	if (n != 4)
		return;
	imm = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 |
	      (uint32_t)d[2] << 8 | d[3];
	if (rmig_imm_parse(imm, &type, &credits) == 0)
		expect(rmig_imm_make(type, credits) == imm);
}

static UNUSED void fuzz_handshake(const uint8_t *d, size_t n)
{
	uint64_t seen[1] = { FUZZ_SEEN_CHANNELS };
	struct rmig_handshake_expect e = { .uuid_set = true, .seen = seen };
	uint8_t buf[RMIG_HANDSHAKE_LEN];
	struct rmig_handshake h;
	char why[RMIG_REJECT_TEXT_MAX];
	enum rmig_reject r;

	if (rmig_handshake_decode(d, n, &h))
		return;
	expect(rmig_handshake_encode(&h, buf) == n && !memcmp(buf, d, n));
	memcpy(e.uuid, fuzz_uuid, sizeof(e.uuid));
	r = rmig_handshake_check(&h, &e, why, sizeof(why));
	expect(strnlen(why, sizeof(why)) < sizeof(why));
	expect((r == RMIG_REJECT_NONE) == (why[0] == '\0'));
}

static UNUSED void fuzz_accept(const uint8_t *d, size_t n)
{
	static struct rmig_wire_block b[RMIG_MAX_BLOCKS], b2[RMIG_MAX_BLOCKS];
	static uint8_t buf[RMIG_MSG_SIZE];
	unsigned nb, nb2;
	uint32_t depth, depth2;
	size_t len;

	if (rmig_accept_decode(d, n, &depth, b, &nb))
		return;
	expect(nb >= 1 && nb <= RMIG_MAX_BLOCKS);
	len = rmig_accept_len(nb);
	expect(len == n);
	expect(rmig_accept_encode(depth, b, nb, buf, len) == len);
	expect(rmig_accept_decode(buf, len, &depth2, b2, &nb2) == 0);
	expect(depth2 == depth && nb2 == nb);
	for (unsigned i = 0; i < nb; i++) {
		expect(strcmp(b[i].name, b2[i].name) == 0 && b[i].name[0]);
		expect(b[i].length == b2[i].length && b[i].raddr == b2[i].raddr &&
		       b[i].rkey == b2[i].rkey &&
		       b[i].page_size == b2[i].page_size);
		expect(b[i].length % b[i].page_size == 0);
	}
}

/* REJECT and ERROR: the text comes out NUL-terminated and printable, and
 * decoding its encoding gives the same code and text. */
static UNUSED void fuzz_reject(const uint8_t *d, size_t n)
{
	char text[RMIG_REJECT_TEXT_MAX], text2[RMIG_REJECT_TEXT_MAX];
	uint8_t buf[8 + RMIG_REJECT_TEXT_MAX];
	enum rmig_reject r, r2;
	size_t len;

	if (rmig_reject_decode(d, n, &r, text, sizeof(text)))
		return;
	for (size_t i = 0; text[i]; i++)
		expect((unsigned char)text[i] >= 0x20 && text[i] != 0x7f);
	len = rmig_reject_encode(r, text, buf, sizeof(buf));
	expect(rmig_reject_decode(buf, len, &r2, text2, sizeof(text2)) == 0);
	expect(r2 == r && strcmp(text, text2) == 0);
}

static UNUSED void fuzz_error(const uint8_t *d, size_t n)
{
	char text[RMIG_ERROR_TEXT_MAX], text2[RMIG_ERROR_TEXT_MAX];
	uint8_t buf[8 + RMIG_ERROR_TEXT_MAX];
	int e, e2;
	size_t len;

	if (rmig_error_decode(d, n, &e, text, sizeof(text)))
		return;
	expect(e >= 1 && (unsigned)e <= RMIG_ERROR_ERRNO_MAX);
	len = rmig_error_encode(e, text, buf, sizeof(buf));
	expect(rmig_error_decode(buf, len, &e2, text2, sizeof(text2)) == 0);
	expect(e2 == e && strcmp(text, text2) == 0);
}

static UNUSED void fuzz_packet(const uint8_t *d, size_t n)
{
	const struct rmig_packet_limits lim = {
		.nblocks = FUZZ_NBLOCKS,
		.block_len = fuzz_block_len,
		.page_size = FUZZ_PAGE_SIZE,
		.pages_per_packet = FUZZ_PAGES_PER_PACKET,
	};
	struct rmig_packet_hdr h;
	uint32_t count;

	if (rmig_packet_decode(d, n, &lim, &h))
		return;
	count = h.normal_count + h.zero_count;
	expect(h.block < FUZZ_NBLOCKS);
	expect(count >= 1 && count <= FUZZ_PAGES_PER_PACKET);
	expect(n == rmig_packet_len(h.normal_count, h.zero_count));
	for (uint32_t i = 0; i < count; i++) {
		uint64_t off = rmig_packet_offset(&h, i);

		expect(off % FUZZ_PAGE_SIZE == 0);
		expect(off <= fuzz_block_len[h.block] - FUZZ_PAGE_SIZE);
	}
}

/* READ_KEYS against a destination of FUZZ_NBLOCKS blocks: accepted keys
 * name distinct blocks, lengths are whole pages, and re-encode to the
 * same bytes. */
static UNUSED void fuzz_read_keys(const uint8_t *d, size_t n)
{
	static struct rmig_read_key k[RMIG_MAX_BLOCKS];
	static uint8_t buf[RMIG_MSG_SIZE];
	unsigned nk;

	if (rmig_read_keys_decode(d, n, FUZZ_NBLOCKS, FUZZ_PAGE_SIZE, k, &nk))
		return;
	expect(nk >= 1 && nk <= FUZZ_NBLOCKS);
	for (unsigned i = 0; i < nk; i++) {
		expect(k[i].block < FUZZ_NBLOCKS);
		expect(k[i].length && k[i].length % FUZZ_PAGE_SIZE == 0);
		for (unsigned j = 0; j < i; j++)
			expect(k[j].block != k[i].block);
	}
	expect(rmig_read_keys_encode(k, nk, buf, sizeof(buf)) == n &&
	       !memcmp(buf, d, n));
}

static UNUSED void fuzz_sync(const uint8_t *d, size_t n)
{
	uint8_t buf[RMIG_SYNC_LEN];
	struct rmig_sync_msg m;

	if (rmig_sync_decode(d, n, &m))
		return;
	expect(rmig_sync_encode(&m, buf) == n && !memcmp(buf, d, n));
}

static UNUSED void fuzz_sync_ack(const uint8_t *d, size_t n)
{
	uint8_t buf[RMIG_SYNC_ACK_LEN];
	uint64_t num;

	if (rmig_sync_ack_decode(d, n, &num))
		return;
	expect(rmig_sync_ack_encode(num, buf) == n && !memcmp(buf, d, n));
}

static UNUSED void fuzz_devstate(const uint8_t *d, size_t n)
{
	struct rmig_devstate_frag f;
	const uint8_t *data;
	unsigned sum = 0;

	if (rmig_devstate_decode(d, n, FUZZ_DEVSTATE_MAX, &f))
		return;
	expect(f.idstr_len >= 1 && f.idstr_len <= RMIG_IDSTR_MAX);
	expect(strlen(f.idstr) + 1 == f.idstr_len);
	expect(f.total_len <= FUZZ_DEVSTATE_MAX);
	expect(f.frag_off <= f.total_len &&
	       f.frag_len <= f.total_len - f.frag_off);
	expect(n == RMIG_DEVSTATE_HDR_LEN + f.idstr_len + (size_t)f.frag_len);
	/* Every data byte is inside the message: ASan checks the reads. */
	data = f.data;
	for (uint32_t i = 0; i < f.frag_len; i++)
		sum += data[i];
	(void)sum;
}

static UNUSED void fuzz_auth_hello(const uint8_t *d, size_t n)
{
	uint8_t buf[RMIG_AUTH_HELLO_LEN];
	struct rmig_auth_hello h;

	if (rmig_auth_hello_decode(d, n, &h))
		return;
	expect(h.channel_id < h.channel_count &&
	       h.channel_count <= RMIG_MAX_CHANNELS);
	expect(rmig_auth_hello_encode(&h, buf) == n && !memcmp(buf, d, n));
}

static UNUSED void fuzz_auth_challenge(const uint8_t *d, size_t n)
{
	uint8_t buf[RMIG_AUTH_CHALLENGE_LEN];
	struct rmig_auth_challenge c;

	if (rmig_auth_challenge_decode(d, n, &c))
		return;
	expect(rmig_auth_challenge_encode(&c, buf) == n && !memcmp(buf, d, n));
}

static UNUSED void fuzz_auth_proof(const uint8_t *d, size_t n)
{
	uint8_t buf[RMIG_AUTH_PROOF_LEN], mac[RMIG_AUTH_WIRE_MAC_LEN];

	if (rmig_auth_proof_decode(d, n, mac))
		return;
	expect(rmig_auth_proof_encode(mac, buf) == n && !memcmp(buf, d, n));
}

static UNUSED void fuzz_auth_reject(const uint8_t *d, size_t n)
{
	uint8_t buf[RMIG_AUTH_REJECT_LEN];
	enum rmig_auth_reject r;

	if (rmig_auth_reject_decode(d, n, &r))
		return;
	expect(strcmp(rmig_auth_reject_name(r), "unknown") != 0);
	expect(rmig_auth_reject_encode(r, buf) == n && !memcmp(buf, d, n));
}

#define FUZZ_FN_(t) fuzz_##t
#define FUZZ_FN(t) FUZZ_FN_(t)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FUZZ_FN(FUZZ_TARGET)(data, size);
	return 0;
}

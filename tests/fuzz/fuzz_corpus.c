/* SPDX-License-Identifier: MIT */
/*
 * fuzz_corpus.c - write the fuzz harnesses' seed corpus: a few accepted
 * messages of every kind (and a near miss or two), produced by the
 * encoders of wire.h, one file each, into OUTDIR/<target>/<name>.
 *
 *   fuzz_corpus OUTDIR
 *
 * tests/fuzz/corpus/ is this program's output, committed; the test
 * fuzz_corpus regenerates it and compares, so a change of the wire format
 * shows up as a changed corpus to commit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_params.h"
#include "wire.h"

static const char *outdir;
static int failed;

static void put(const char *target, const char *name, const void *buf,
		size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir(path, 0755) && errno != EEXIST) {
		perror(path);
		failed = 1;
		return;
	}
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
		perror(path);
		failed = 1;
	}
}

static void gen_imm(void)
{
	for (unsigned t = RMIG_MSG_HANDSHAKE; t <= RMIG_MSG_AUTH_REJECT; t++) {
		uint32_t imm = rmig_imm_make(t, t == RMIG_MSG_CREDIT ? 4095 : t);
		uint8_t b[4] = { (uint8_t)(imm >> 24), (uint8_t)(imm >> 16),
				 (uint8_t)(imm >> 8), (uint8_t)imm };
		char name[32];

		snprintf(name, sizeof(name), "type-%u", t);
		put("imm", name, b, sizeof(b));
	}
}

static void gen_handshake(void)
{
	struct rmig_handshake h = {
		.magic = RMIG_WIRE_MAGIC, .version = RMIG_WIRE_VERSION,
		.channel_id = 1, .channel_count = 4, .page_size = 4096,
		.pages_per_packet = 64, .rx_depth = 64,
		.msg_size = RMIG_MSG_SIZE,
	};
	uint8_t b[RMIG_HANDSHAKE_LEN];

	memcpy(h.uuid, fuzz_uuid, sizeof(h.uuid));
	put("handshake", "accepted", b, rmig_handshake_encode(&h, b));
	h.channel_id = 2; /* already seen */
	put("handshake", "duplicate-channel", b, rmig_handshake_encode(&h, b));
	h.channel_id = 0;
	h.uuid[15] ^= 1;
	put("handshake", "other-uuid", b, rmig_handshake_encode(&h, b));
}

static void gen_accept(void)
{
	struct rmig_wire_block blk[3];
	uint8_t b[512];

	memset(blk, 0, sizeof(blk));
	for (unsigned i = 0; i < 3; i++) {
		snprintf(blk[i].name, sizeof(blk[i].name), "pc.ram%u", i);
		blk[i].page_size = 4096u << (i * 9); /* 4K, 2M, 1G */
		blk[i].length = (uint64_t)blk[i].page_size * (i + 1);
		blk[i].raddr = 0x7f0000000000ull + i * 0x40000000ull;
		blk[i].rkey = 0x1234 + i;
	}
	put("accept", "one-block", b,
	    rmig_accept_encode(64, blk, 1, b, sizeof(b)));
	put("accept", "three-blocks", b,
	    rmig_accept_encode(128, blk, 3, b, sizeof(b)));
}

static void gen_notices(void)
{
	uint8_t b[8 + RMIG_ERROR_TEXT_MAX];

	put("reject", "uuid", b,
	    rmig_reject_encode(RMIG_REJECT_UUID, "UUID mismatch", b,
			       sizeof(b)));
	put("reject", "page-size", b,
	    rmig_reject_encode(RMIG_REJECT_PAGE_SIZE,
			       "page size 8192 (expected 4096)", b, sizeof(b)));
	put("error", "eio", b,
	    rmig_error_encode(EIO, "devstate: blob 3 incomplete", b,
			      sizeof(b)));
	put("error", "econnreset", b,
	    rmig_error_encode(ECONNRESET, "x", b, sizeof(b)));
}

static void gen_packet(void)
{
	uint64_t normal[64], zero[2] = { 0, 4096 };
	struct rmig_packet_hdr h = { .block = 0, .packet_num = 7,
				     .normal_count = 3, .zero_count = 2 };
	uint8_t b[RMIG_PACKET_HDR_LEN + 64 * 8];

	for (unsigned i = 0; i < 64; i++)
		normal[i] = (uint64_t)(i + 2) * FUZZ_PAGE_SIZE;
	put("packet", "mixed", b, rmig_packet_encode(&h, normal, zero, b,
						     sizeof(b)));
	h.block = 1;
	h.normal_count = 64;
	h.zero_count = 0;
	put("packet", "full", b, rmig_packet_encode(&h, normal, zero, b,
						    sizeof(b)));
	h.normal_count = 0;
	h.zero_count = 1;
	put("packet", "zero-only", b, rmig_packet_encode(&h, normal, zero, b,
							 sizeof(b)));
}

static void gen_sync(void)
{
	struct rmig_sync_msg m = { .flags = 0, .sync_num = 3, .packets = 1000 };
	uint8_t b[RMIG_SYNC_LEN];

	put("sync", "round", b, rmig_sync_encode(&m, b));
	m.flags = RMIG_SYNC_FINAL;
	put("sync", "final", b, rmig_sync_encode(&m, b));
	m.flags = RMIG_SYNC_POSTCOPY;
	put("sync", "postcopy", b, rmig_sync_encode(&m, b));
	put("sync_ack", "ack", b, rmig_sync_ack_encode(3, b));
}

static void gen_read_keys(void)
{
	const struct rmig_read_key k[FUZZ_NBLOCKS] = {
		{ .block = 1, .length = 1ull << 40, .raddr = 0x7f0000000000ull,
		  .rkey = 0x1234 },
		{ .block = 0, .length = 1u << 20, .raddr = 0, .rkey = 7 },
	};
	uint8_t b[RMIG_READ_KEYS_HDR_LEN +
		  FUZZ_NBLOCKS * RMIG_READ_KEYS_ENTRY_LEN];

	put("read_keys", "one", b, rmig_read_keys_encode(k, 1, b, sizeof(b)));
	put("read_keys", "both", b, rmig_read_keys_encode(k, FUZZ_NBLOCKS, b,
							  sizeof(b)));
}

static void gen_devstate(void)
{
	static const char data[] = "vcpu0 registers and the rest";
	struct rmig_devstate_frag f = {
		.seq = 0, .instance_id = 0, .total_len = sizeof(data),
		.frag_off = 0, .frag_len = sizeof(data), .idstr = "cpu",
		.idstr_len = 4, .data = data,
	};
	uint8_t b[256];

	put("devstate", "whole", b, rmig_devstate_encode(&f, b, sizeof(b)));
	f.seq = 1;
	f.total_len = 4096;
	f.frag_off = 1000;
	f.frag_len = 8;
	f.idstr = "0000:00:02.0/virtio-net";
	f.idstr_len = 24;
	put("devstate", "fragment", b, rmig_devstate_encode(&f, b, sizeof(b)));
}

static void gen_auth(void)
{
	struct rmig_auth_hello h = { .channel_id = 0, .channel_count = 4,
				     .page_size = 4096,
				     .pages_per_packet = 64 };
	struct rmig_auth_challenge c;
	uint8_t b[RMIG_AUTH_CHALLENGE_LEN];

	for (unsigned i = 0; i < 32; i++) {
		h.nonce[i] = (uint8_t)(0x11 * i);
		c.nonce[i] = (uint8_t)(0x5a ^ i);
		c.mac[i] = (uint8_t)(0xa5 + 3 * i);
	}
	put("auth_hello", "channel-0", b, rmig_auth_hello_encode(&h, b));
	h.channel_id = 63;
	h.channel_count = 64;
	h.page_size = 2u << 20;
	h.pages_per_packet = RMIG_MAX_PAGES_PER_PACKET;
	put("auth_hello", "limits", b, rmig_auth_hello_encode(&h, b));
	put("auth_challenge", "challenge", b, rmig_auth_challenge_encode(&c, b));
	put("auth_proof", "proof", b, rmig_auth_proof_encode(c.mac, b));
	for (unsigned r = 1; r <= RMIG_AUTH_REJECT_MAX; r++) {
		char name[32];

		snprintf(name, sizeof(name), "reason-%u", r);
		put("auth_reject", name, b, rmig_auth_reject_encode(r, b));
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) && errno != EEXIST) {
		perror(outdir);
		return 1;
	}
	gen_imm();
	gen_handshake();
	gen_accept();
	gen_notices();
	gen_packet();
	gen_sync();
	gen_read_keys();
	gen_devstate();
	gen_auth();
	return failed;
}

/* SPDX-License-Identifier: MIT */
/*
 * wire_auth.c - encode and decode the authentication messages (layout in
 * wire.h).  The decoders follow wire.c's rules: exact length checked before
 * any field is read, reserved fields and flags zero, outputs written only
 * once every check passed, -EPROTO and a message naming the message, the
 * field, the value and what was expected.
 */
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "wire_codec.h"
#include "error.h"

#define AUTH_HDR_LEN 8u
#define PAGE_SIZE_MIN 4096u

const char *rmig_auth_reject_name(unsigned reason)
{
	static const char *const names[] = {
		[RMIG_AUTH_REJECT_MALFORMED] = "malformed",
		[RMIG_AUTH_REJECT_VERSION] = "version",
		[RMIG_AUTH_REJECT_REQUIRED] = "authentication required",
		[RMIG_AUTH_REJECT_FAILED] = "authentication failed",
		[RMIG_AUTH_REJECT_BUSY] = "busy",
		[RMIG_AUTH_REJECT_TIMEOUT] = "timeout",
		[RMIG_AUTH_REJECT_INSECURE] = "no secret configured",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "unknown";
}

static void put_hdr(uint8_t *p)
{
	rmig_put_u32(p, RMIG_WIRE_MAGIC);
	rmig_put_u16(p + 4, RMIG_AUTH_VERSION);
	rmig_put_u16(p + 6, 0);
}

/** Length, magic, version and flags of an auth message named @what. */
static int check_hdr(const char *what, const uint8_t *p, size_t len,
		     size_t want)
{
	uint32_t magic;
	uint16_t version, flags;

	if (len != want)
		return rmig_err(-EPROTO, "%s: length %zu (expected %zu)", what,
				len, want);
	magic = rmig_get_u32(p);
	version = rmig_get_u16(p + 4);
	flags = rmig_get_u16(p + 6);
	if (magic != RMIG_WIRE_MAGIC)
		return rmig_err(-EPROTO,
				"%s: bad magic 0x%08" PRIx32 " (expected 0x%08x)",
				what, magic, RMIG_WIRE_MAGIC);
	if (version != RMIG_AUTH_VERSION)
		return rmig_err(-EPROTO, "%s: auth version %u (expected %d)",
				what, version, RMIG_AUTH_VERSION);
	if (flags)
		return rmig_err(-EPROTO,
				"%s: unknown flags 0x%04x (expected 0)", what,
				flags);
	return 0;
}

/* HELLO --------------------------------------------------------------- */

size_t rmig_auth_hello_encode(const struct rmig_auth_hello *h, void *buf)
{
	uint8_t *p = buf;

	put_hdr(p);
	rmig_put_u16(p + 8, h->channel_id);
	rmig_put_u16(p + 10, h->channel_count);
	rmig_put_u32(p + 12, h->page_size);
	rmig_put_u32(p + 16, h->pages_per_packet);
	rmig_put_u32(p + 20, 0);
	memcpy(p + 24, h->nonce, RMIG_AUTH_WIRE_NONCE_LEN);
	return RMIG_AUTH_HELLO_LEN;
}

int rmig_auth_hello_decode(const void *buf, size_t len,
			   struct rmig_auth_hello *h)
{
	const uint8_t *p = buf;
	uint16_t id, count;
	uint32_t ps, ppp, reserved;
	int ret = check_hdr("auth hello", p, len, RMIG_AUTH_HELLO_LEN);

	if (ret)
		return ret;
	id = rmig_get_u16(p + 8);
	count = rmig_get_u16(p + 10);
	ps = rmig_get_u32(p + 12);
	ppp = rmig_get_u32(p + 16);
	reserved = rmig_get_u32(p + 20);
	if (reserved)
		return rmig_err(-EPROTO,
				"auth hello: reserved 0x%08" PRIx32 " (expected 0)",
				reserved);
	if (count == 0 || count > RMIG_MAX_CHANNELS)
		return rmig_err(-EPROTO,
				"auth hello: channel count %u (expected 1..%d)",
				count, RMIG_MAX_CHANNELS);
	if (id >= count)
		return rmig_err(-EPROTO,
				"auth hello: channel id %u (expected 0..%u for channel count %u)",
				id, count - 1u, count);
	if (ps < PAGE_SIZE_MIN || (ps & (ps - 1)))
		return rmig_err(-EPROTO,
				"auth hello: page size %" PRIu32
				" (expected a power of two >= %u)",
				ps, PAGE_SIZE_MIN);
	if (ppp == 0 || ppp > RMIG_MAX_PAGES_PER_PACKET)
		return rmig_err(-EPROTO,
				"auth hello: pages per packet %" PRIu32
				" (expected 1..%d)",
				ppp, RMIG_MAX_PAGES_PER_PACKET);
	h->channel_id = id;
	h->channel_count = count;
	h->page_size = ps;
	h->pages_per_packet = ppp;
	memcpy(h->nonce, p + 24, RMIG_AUTH_WIRE_NONCE_LEN);
	return 0;
}

/* CHALLENGE, PROOF ---------------------------------------------------- */

size_t rmig_auth_challenge_encode(const struct rmig_auth_challenge *c,
				  void *buf)
{
	uint8_t *p = buf;

	put_hdr(p);
	memcpy(p + 8, c->nonce, RMIG_AUTH_WIRE_NONCE_LEN);
	memcpy(p + 40, c->mac, RMIG_AUTH_WIRE_MAC_LEN);
	return RMIG_AUTH_CHALLENGE_LEN;
}

int rmig_auth_challenge_decode(const void *buf, size_t len,
			       struct rmig_auth_challenge *c)
{
	const uint8_t *p = buf;
	int ret = check_hdr("auth challenge", p, len, RMIG_AUTH_CHALLENGE_LEN);

	if (ret)
		return ret;
	memcpy(c->nonce, p + 8, RMIG_AUTH_WIRE_NONCE_LEN);
	memcpy(c->mac, p + 40, RMIG_AUTH_WIRE_MAC_LEN);
	return 0;
}

size_t rmig_auth_proof_encode(const uint8_t mac[RMIG_AUTH_WIRE_MAC_LEN],
			      void *buf)
{
	uint8_t *p = buf;

	put_hdr(p);
	memcpy(p + 8, mac, RMIG_AUTH_WIRE_MAC_LEN);
	return RMIG_AUTH_PROOF_LEN;
}

int rmig_auth_proof_decode(const void *buf, size_t len,
			   uint8_t mac[RMIG_AUTH_WIRE_MAC_LEN])
{
	const uint8_t *p = buf;
	int ret = check_hdr("auth proof", p, len, RMIG_AUTH_PROOF_LEN);

	if (ret)
		return ret;
	memcpy(mac, p + 8, RMIG_AUTH_WIRE_MAC_LEN);
	return 0;
}

/* REJECT -------------------------------------------------------------- */

size_t rmig_auth_reject_encode(enum rmig_auth_reject reason, void *buf)
{
	uint8_t *p = buf;

	rmig_put_u32(p, (uint32_t)reason);
	rmig_put_u32(p + 4, 0);
	return RMIG_AUTH_REJECT_LEN;
}

int rmig_auth_reject_decode(const void *buf, size_t len,
			    enum rmig_auth_reject *reason)
{
	const uint8_t *p = buf;
	uint32_t r, reserved;

	if (len != RMIG_AUTH_REJECT_LEN)
		return rmig_err(-EPROTO, "auth reject: length %zu (expected %u)",
				len, RMIG_AUTH_REJECT_LEN);
	r = rmig_get_u32(p);
	reserved = rmig_get_u32(p + 4);
	if (r < RMIG_AUTH_REJECT_MALFORMED || r > RMIG_AUTH_REJECT_MAX)
		return rmig_err(-EPROTO,
				"auth reject: reason %" PRIu32 " (expected 1..%d)",
				r, RMIG_AUTH_REJECT_MAX);
	if (reserved)
		return rmig_err(-EPROTO,
				"auth reject: reserved 0x%08" PRIx32 " (expected 0)",
				reserved);
	*reason = (enum rmig_auth_reject)r;
	return 0;
}

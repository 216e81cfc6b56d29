/* SPDX-License-Identifier: MIT */
/*
 * wire.c - encode and decode the rmig wire format (layout in wire.h): the
 * immediates and the messages that set a channel up (HANDSHAKE, ACCEPT,
 * REJECT, ERROR).  wire_stream.c has the migration stream's (PACKET, SYNC,
 * SYNC_ACK, DEVSTATE); the byte helpers and the rules every decoder
 * follows are in wire_codec.h.
 */
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "wire_codec.h"

#define IMM_TYPE_SHIFT 28
#define IMM_CREDITS_SHIFT 16
#define IMM_LOW_MASK 0xffffu
#define PAGE_SIZE_MIN 4096u

/** A page size the decoders accept: a power of two, at least 4096. */
static bool page_size_valid(uint64_t ps)
{
	return ps >= PAGE_SIZE_MIN && (ps & (ps - 1)) == 0;
}

static bool msg_type_known(uint32_t type)
{
	return type >= RMIG_MSG_HANDSHAKE && type <= RMIG_MSG_TYPE_MAX;
}

/* Message types and immediates ---------------------------------------- */

const char *rmig_msg_type_name(unsigned type)
{
	static const char *const names[] = {
		[RMIG_MSG_HANDSHAKE] = "HANDSHAKE",
		[RMIG_MSG_ACCEPT] = "ACCEPT",
		[RMIG_MSG_REJECT] = "REJECT",
		[RMIG_MSG_PACKET] = "PACKET",
		[RMIG_MSG_SYNC] = "SYNC",
		[RMIG_MSG_SYNC_ACK] = "SYNC_ACK",
		[RMIG_MSG_DEVSTATE] = "DEVSTATE",
		[RMIG_MSG_CREDIT] = "CREDIT",
		[RMIG_MSG_ERROR] = "ERROR",
		[RMIG_MSG_AUTH_HELLO] = "AUTH_HELLO",
		[RMIG_MSG_AUTH_CHALLENGE] = "AUTH_CHALLENGE",
		[RMIG_MSG_AUTH_PROOF] = "AUTH_PROOF",
		[RMIG_MSG_AUTH_REJECT] = "AUTH_REJECT",
		[RMIG_MSG_READ_KEYS] = "READ_KEYS",
	};

	if (type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "UNKNOWN";
}

/*
 * Credits above RMIG_IMM_CREDITS_MAX do not fit the 12-bit field; they are
 * clamped (never wrapped), and the caller grants the rest with a later
 * message.
 */
uint32_t rmig_imm_make(enum rmig_msg_type type, unsigned credits)
{
	if (credits > RMIG_IMM_CREDITS_MAX)
		credits = RMIG_IMM_CREDITS_MAX;
	return ((uint32_t)type & 0xfu) << IMM_TYPE_SHIFT |
	       (uint32_t)credits << IMM_CREDITS_SHIFT;
}

int rmig_imm_parse(uint32_t imm, enum rmig_msg_type *type, unsigned *credits)
{
	uint32_t t = imm >> IMM_TYPE_SHIFT;

	if (imm & IMM_LOW_MASK)
		return rmig_err(-EPROTO,
				"immediate 0x%08" PRIx32 ": low 16 bits 0x%04" PRIx32
				" set (expected 0)", imm, imm & IMM_LOW_MASK);
	if (!msg_type_known(t))
		return rmig_err(-EPROTO,
				"immediate 0x%08" PRIx32 ": unknown message type %" PRIu32
				" (expected %d..%d)", imm, t, RMIG_MSG_HANDSHAKE,
				RMIG_MSG_TYPE_MAX);
	*type = (enum rmig_msg_type)t;
	*credits = (imm >> IMM_CREDITS_SHIFT) & RMIG_IMM_CREDITS_MAX;
	return 0;
}

/* Handshake ----------------------------------------------------------- */

size_t rmig_handshake_encode(const struct rmig_handshake *h, void *buf)
{
	uint8_t *p = buf;

	rmig_put_u32(p + 0, h->magic);
	rmig_put_u16(p + 4, h->version);
	rmig_put_u16(p + 6, h->flags);
	memcpy(p + 8, h->uuid, sizeof(h->uuid));
	rmig_put_u16(p + 24, h->channel_id);
	rmig_put_u16(p + 26, h->channel_count);
	rmig_put_u32(p + 28, h->page_size);
	rmig_put_u32(p + 32, h->pages_per_packet);
	rmig_put_u32(p + 36, h->features);
	rmig_put_u32(p + 40, h->rx_depth);
	rmig_put_u32(p + 44, h->msg_size);
	return RMIG_HANDSHAKE_LEN;
}

int rmig_handshake_decode(const void *buf, size_t len,
			  struct rmig_handshake *h)
{
	const uint8_t *p = buf;

	if (len != RMIG_HANDSHAKE_LEN)
		return rmig_err(-EPROTO,
				"handshake: length %zu (expected %u)", len,
				RMIG_HANDSHAKE_LEN);
	h->magic = rmig_get_u32(p + 0);
	h->version = rmig_get_u16(p + 4);
	h->flags = rmig_get_u16(p + 6);
	memcpy(h->uuid, p + 8, sizeof(h->uuid));
	h->channel_id = rmig_get_u16(p + 24);
	h->channel_count = rmig_get_u16(p + 26);
	h->page_size = rmig_get_u32(p + 28);
	h->pages_per_packet = rmig_get_u32(p + 32);
	h->features = rmig_get_u32(p + 36);
	h->rx_depth = rmig_get_u32(p + 40);
	h->msg_size = rmig_get_u32(p + 44);
	return 0;
}

static void uuid_hex(const uint8_t uuid[16], char out[33])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[uuid[i] >> 4];
		out[2 * i + 1] = hex[uuid[i] & 0xf];
	}
	out[32] = '\0';
}

/** Write the reason text (bounded by RMIG_REJECT_TEXT_MAX) and return @r. */
static enum rmig_reject reject(enum rmig_reject r, char *why, size_t whylen,
			       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum rmig_reject reject(enum rmig_reject r, char *why, size_t whylen,
			       const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return r;
	if (whylen > RMIG_REJECT_TEXT_MAX)
		whylen = RMIG_REJECT_TEXT_MAX;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return r;
}

/*
 * Order: is this an rmig peer of our version (magic, version), does it
 * speak what we speak (flags, features, message size, rx depth), is it our
 * session (UUID), which channel (count, id, duplicate), then the transfer
 * parameters (page size, pages per packet).  Each check relies only on the
 * ones before it: the id range needs a valid count, and the duplicate test
 * indexes the bitmap with an id already known to be below
 * RMIG_MAX_CHANNELS.  A caller that rejects nothing passes seen = NULL.
 */
enum rmig_reject rmig_handshake_check(const struct rmig_handshake *h,
				      const struct rmig_handshake_expect *e,
				      char *why, size_t whylen)
{
	uint64_t hdr_bytes;

	if (h->magic != RMIG_WIRE_MAGIC)
		return reject(RMIG_REJECT_MAGIC, why, whylen,
			      "bad magic 0x%08" PRIx32 " (expected 0x%08x)",
			      h->magic, RMIG_WIRE_MAGIC);
	if (h->version != RMIG_WIRE_VERSION)
		return reject(RMIG_REJECT_VERSION, why, whylen,
			      "version %u (expected %d)", h->version,
			      RMIG_WIRE_VERSION);
	if (h->flags)
		return reject(RMIG_REJECT_FEATURES, why, whylen,
			      "unknown flags 0x%04x (expected 0)", h->flags);
	if (h->features & ~RMIG_FEAT_POSTCOPY_RESUME)
		return reject(RMIG_REJECT_FEATURES, why, whylen,
			      "unknown features 0x%08" PRIx32 " (expected 0 or "
			      "0x%x)", h->features,
			      RMIG_FEAT_POSTCOPY_RESUME);
	if (h->features != e->features)
		return reject(RMIG_REJECT_FEATURES, why, whylen,
			      "%s post-copy: features 0x%08" PRIx32
			      " (expected 0x%08" PRIx32 ")",
			      e->features ? "this destination resumes a lost"
					  : "this destination does not resume a",
			      h->features, e->features);
	if (h->msg_size != RMIG_MSG_SIZE)
		return reject(RMIG_REJECT_MALFORMED, why, whylen,
			      "message size %" PRIu32 " (expected %u)",
			      h->msg_size, RMIG_MSG_SIZE);
	if (h->rx_depth == 0)
		return reject(RMIG_REJECT_MALFORMED, why, whylen,
			      "rx depth 0 (expected at least 1 posted buffer)");
	if (e->uuid_set && memcmp(h->uuid, e->uuid, sizeof(h->uuid))) {
		char got[33], want[33];

		uuid_hex(h->uuid, got);
		uuid_hex(e->uuid, want);
		return reject(RMIG_REJECT_UUID, why, whylen,
			      "UUID mismatch: source %s expected %s", got,
			      want);
	}
	if (h->channel_count == 0 || h->channel_count > RMIG_MAX_CHANNELS)
		return reject(RMIG_REJECT_CHANNEL_COUNT, why, whylen,
			      "channel count %u (expected 1..%d)",
			      h->channel_count, RMIG_MAX_CHANNELS);
	if (e->channel_count && h->channel_count != e->channel_count)
		return reject(RMIG_REJECT_CHANNEL_COUNT, why, whylen,
			      "channel count %u (expected %u)",
			      h->channel_count, e->channel_count);
	if (h->channel_id >= h->channel_count)
		return reject(RMIG_REJECT_CHANNEL_ID, why, whylen,
			      "channel id %u out of range (expected 0..%u for channel count %u)",
			      h->channel_id, h->channel_count - 1u,
			      h->channel_count);
	if (e->seen && (e->seen[h->channel_id / 64] >> (h->channel_id % 64)) & 1)
		return reject(RMIG_REJECT_DUPLICATE_CHANNEL, why, whylen,
			      "duplicate channel id %u (expected a channel id not yet connected)",
			      h->channel_id);
	/* e->page_size 0: the destination takes any valid page size. */
	if (e->page_size && h->page_size != e->page_size)
		return reject(RMIG_REJECT_PAGE_SIZE, why, whylen,
			      "page size %" PRIu32 " (expected %" PRIu32 ")",
			      h->page_size, e->page_size);
	if (!page_size_valid(h->page_size))
		return reject(RMIG_REJECT_PAGE_SIZE, why, whylen,
			      "page size %" PRIu32
			      " (expected a power of two >= %u)",
			      h->page_size, PAGE_SIZE_MIN);
	if (h->pages_per_packet == 0 ||
	    h->pages_per_packet > RMIG_MAX_PAGES_PER_PACKET)
		return reject(RMIG_REJECT_PACKET_SIZE, why, whylen,
			      "pages per packet %" PRIu32 " (expected 1..%d)",
			      h->pages_per_packet, RMIG_MAX_PAGES_PER_PACKET);
	hdr_bytes = RMIG_PACKET_HDR_LEN +
		    (uint64_t)h->pages_per_packet * OFFSET_LEN;
	if (hdr_bytes > RMIG_MSG_SIZE)
		return reject(RMIG_REJECT_PACKET_SIZE, why, whylen,
			      "pages per packet %" PRIu32 ": a %" PRIu64
			      "-byte packet header (expected at most %u bytes)",
			      h->pages_per_packet, hdr_bytes, RMIG_MSG_SIZE);
	if (why && whylen)
		why[0] = '\0';
	return RMIG_REJECT_NONE;
}

/* Accept -------------------------------------------------------------- */

/* Returns 0 for a count no ACCEPT may carry (above RMIG_MAX_BLOCKS). */
size_t rmig_accept_len(unsigned nblocks)
{
	if (nblocks > RMIG_MAX_BLOCKS)
		return 0;
	return RMIG_ACCEPT_HDR_LEN + (size_t)nblocks * RMIG_ACCEPT_BLOCK_LEN;
}

size_t rmig_accept_encode(uint32_t rx_depth, const struct rmig_wire_block *b,
			  unsigned nblocks, void *buf, size_t len)
{
	size_t need = rmig_accept_len(nblocks);
	uint8_t *p = buf;

	if (nblocks == 0 || need == 0 || !buf || len < need)
		return 0;
	rmig_put_u32(p + 0, RMIG_WIRE_MAGIC);
	rmig_put_u16(p + 4, RMIG_WIRE_VERSION);
	rmig_put_u16(p + 6, (uint16_t)nblocks);
	rmig_put_u32(p + 8, rx_depth);
	rmig_put_u32(p + 12, 0);
	p += RMIG_ACCEPT_HDR_LEN;
	for (unsigned i = 0; i < nblocks; i++, p += RMIG_ACCEPT_BLOCK_LEN) {
		/* At most 63 name bytes, the rest NUL padding. */
		size_t n = strnlen(b[i].name, RMIG_BLOCK_NAME_MAX - 1);

		memset(p, 0, RMIG_BLOCK_NAME_MAX);
		memcpy(p, b[i].name, n);
		rmig_put_u64(p + 64, b[i].length);
		rmig_put_u64(p + 72, b[i].raddr);
		rmig_put_u64(p + 80, b[i].rkey);
		rmig_put_u32(p + 88, b[i].page_size);
		rmig_put_u32(p + 92, 0);
	}
	return need;
}

/** Check one 96-byte block entry; @i only names it in messages. */
static int accept_block_check(const uint8_t *q, unsigned i)
{
	const uint8_t *nul = memchr(q, 0, RMIG_BLOCK_NAME_MAX);
	uint64_t length = rmig_get_u64(q + 64);
	uint64_t raddr = rmig_get_u64(q + 72);
	uint32_t ps = rmig_get_u32(q + 88);
	uint32_t reserved = rmig_get_u32(q + 92);

	if (!nul)
		return rmig_err(-EPROTO,
				"accept: block %u: name not NUL-terminated within %d bytes",
				i, RMIG_BLOCK_NAME_MAX);
	if (nul == q)
		return rmig_err(-EPROTO,
				"accept: block %u: empty name (expected 1..%d bytes)",
				i, RMIG_BLOCK_NAME_MAX - 1);
	for (const uint8_t *r = nul + 1; r < q + RMIG_BLOCK_NAME_MAX; r++)
		if (*r)
			return rmig_err(-EPROTO,
					"accept: block %u: name byte %td is 0x%02x after the terminating NUL (expected zero padding)",
					i, r - q, *r);
	if (!page_size_valid(ps))
		return rmig_err(-EPROTO,
				"accept: block %u: page size %" PRIu32
				" (expected a power of two >= %u)",
				i, ps, PAGE_SIZE_MIN);
	if (length == 0 || length % ps)
		return rmig_err(-EPROTO,
				"accept: block %u: length %" PRIu64
				" (expected a nonzero multiple of the page size %" PRIu32 ")",
				i, length, ps);
	if (raddr > UINT64_MAX - length)
		return rmig_err(-EPROTO,
				"accept: block %u: remote address 0x%" PRIx64
				" + length 0x%" PRIx64
				" wraps around (expected a range below 2^64)",
				i, raddr, length);
	if (reserved)
		return rmig_err(-EPROTO,
				"accept: block %u: reserved field 0x%08" PRIx32
				" (expected 0)", i, reserved);
	return 0;
}

int rmig_accept_decode(const void *buf, size_t len, uint32_t *rx_depth,
		       struct rmig_wire_block *blocks, unsigned *nblocks)
{
	const uint8_t *p = buf;
	uint32_t magic, rx, reserved;
	unsigned version, count;
	int ret;

	if (len < RMIG_ACCEPT_HDR_LEN)
		return wire_too_short("accept", len, RMIG_ACCEPT_HDR_LEN);
	magic = rmig_get_u32(p + 0);
	version = rmig_get_u16(p + 4);
	count = rmig_get_u16(p + 6);
	rx = rmig_get_u32(p + 8);
	reserved = rmig_get_u32(p + 12);
	if (magic != RMIG_WIRE_MAGIC)
		return rmig_err(-EPROTO,
				"accept: bad magic 0x%08" PRIx32 " (expected 0x%08x)",
				magic, RMIG_WIRE_MAGIC);
	if (version != RMIG_WIRE_VERSION)
		return rmig_err(-EPROTO, "accept: version %u (expected %d)",
				version, RMIG_WIRE_VERSION);
	if (count == 0 || count > RMIG_MAX_BLOCKS)
		return rmig_err(-EPROTO,
				"accept: block count %u (expected 1..%d)", count,
				RMIG_MAX_BLOCKS);
	if ((len - RMIG_ACCEPT_HDR_LEN) % RMIG_ACCEPT_BLOCK_LEN)
		return rmig_err(-EPROTO,
				"accept: length %zu (expected %u + a multiple of %u)",
				len, RMIG_ACCEPT_HDR_LEN, RMIG_ACCEPT_BLOCK_LEN);
	if (len != rmig_accept_len(count))
		return rmig_err(-EPROTO,
				"accept: length %zu holds %zu blocks (expected %zu bytes for block count %u)",
				len, (len - RMIG_ACCEPT_HDR_LEN) / RMIG_ACCEPT_BLOCK_LEN,
				rmig_accept_len(count), count);
	if (rx == 0)
		return rmig_err(-EPROTO,
				"accept: rx depth 0 (expected at least 1 posted buffer)");
	if (reserved)
		return rmig_err(-EPROTO,
				"accept: reserved field 0x%08" PRIx32 " (expected 0)",
				reserved);

	/* Pass 1: check everything; the caller's arrays stay untouched. */
	p += RMIG_ACCEPT_HDR_LEN;
	for (unsigned i = 0; i < count; i++) {
		const uint8_t *q = p + (size_t)i * RMIG_ACCEPT_BLOCK_LEN;

		ret = accept_block_check(q, i);
		if (ret)
			return ret;
		/* Both names are NUL-terminated within 64 bytes now. */
		for (unsigned j = 0; j < i; j++)
			if (!strcmp((const char *)q,
				    (const char *)(p + (size_t)j * RMIG_ACCEPT_BLOCK_LEN)))
				return rmig_err(-EPROTO,
						"accept: block %u: name duplicates block %u (expected unique names)",
						i, j);
	}

	/* Pass 2: fill the outputs. */
	for (unsigned i = 0; i < count; i++) {
		const uint8_t *q = p + (size_t)i * RMIG_ACCEPT_BLOCK_LEN;

		memcpy(blocks[i].name, q, RMIG_BLOCK_NAME_MAX);
		blocks[i].length = rmig_get_u64(q + 64);
		blocks[i].raddr = rmig_get_u64(q + 72);
		blocks[i].rkey = rmig_get_u64(q + 80);
		blocks[i].page_size = rmig_get_u32(q + 88);
	}
	*rx_depth = rx;
	*nblocks = count;
	return 0;
}

/* Reject / error ------------------------------------------------------ */

/* REJECT and ERROR share a layout: a code, then a NUL-terminated text. */
static size_t notice_encode(uint32_t code, const char *text, size_t textmax,
			    void *buf, size_t len)
{
	size_t n = text ? strnlen(text, textmax - 1) : 0;
	uint8_t *p = buf;

	if (!buf || len < 8 + n + 1)
		return 0;
	rmig_put_u32(p + 0, code);
	rmig_put_u32(p + 4, (uint32_t)(n + 1));
	if (n)
		memcpy(p + 8, text, n);
	p[8 + n] = '\0';
	return 8 + n + 1;
}

static int notice_decode(const char *what, const void *buf, size_t len,
			 uint32_t code_min, uint32_t code_max, size_t textmax,
			 uint32_t *code, char *text, size_t textlen)
{
	const uint8_t *p = buf;
	uint32_t r, n;
	const uint8_t *nul;

	if (len < 8)
		return wire_too_short(what, len, 8);
	r = rmig_get_u32(p + 0);
	n = rmig_get_u32(p + 4);
	if (r < code_min || r > code_max)
		return rmig_err(-EPROTO,
				"%s: unknown code %" PRIu32 " (expected %" PRIu32
				"..%" PRIu32 ")", what, r, code_min, code_max);
	if (n == 0 || n > textmax)
		return rmig_err(-EPROTO,
				"%s: text length %" PRIu32 " (expected 1..%zu)",
				what, n, textmax);
	if (len != 8 + (size_t)n)
		return rmig_err(-EPROTO,
				"%s: length %zu (expected %zu for a %" PRIu32
				"-byte text)", what, len, 8 + (size_t)n, n);
	if (p[8 + n - 1] != '\0')
		return rmig_err(-EPROTO,
				"%s: text not NUL-terminated (last byte 0x%02x)",
				what, p[8 + n - 1]);
	nul = memchr(p + 8, 0, n);
	if (nul != p + 8 + n - 1)
		return rmig_err(-EPROTO,
				"%s: NUL inside the text at byte %td of %" PRIu32,
				what, nul - (p + 8), n);

	if (text && textlen) {
		/* Copy, truncating to @textlen; control characters become
		 * '?' so the peer's text cannot steer a terminal or a log. */
		size_t k = n - 1 < textlen - 1 ? n - 1 : textlen - 1;

		for (size_t i = 0; i < k; i++) {
			uint8_t c = p[8 + i];

			text[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
		}
		text[k] = '\0';
	}
	*code = r;
	return 0;
}

size_t rmig_reject_encode(enum rmig_reject reason, const char *text,
			  void *buf, size_t len)
{
	return notice_encode((uint32_t)reason, text, RMIG_REJECT_TEXT_MAX, buf,
			     len);
}

int rmig_reject_decode(const void *buf, size_t len, enum rmig_reject *reason,
		       char *text, size_t textlen)
{
	uint32_t r = 0;
	int ret = notice_decode("reject", buf, len, 0, RMIG_REJECT_MALFORMED,
				RMIG_REJECT_TEXT_MAX, &r, text, textlen);

	if (!ret)
		*reason = (enum rmig_reject)r;
	return ret;
}

size_t rmig_error_encode(int errnum, const char *text, void *buf, size_t len)
{
	if (errnum < 1 || (unsigned)errnum > RMIG_ERROR_ERRNO_MAX)
		errnum = EPROTO;
	return notice_encode((uint32_t)errnum, text, RMIG_ERROR_TEXT_MAX, buf,
			     len);
}

int rmig_error_decode(const void *buf, size_t len, int *errnum, char *text,
		      size_t textlen)
{
	uint32_t r = 0;
	int ret = notice_decode("error", buf, len, 1, RMIG_ERROR_ERRNO_MAX,
				RMIG_ERROR_TEXT_MAX, &r, text, textlen);

	if (!ret)
		*errnum = (int)r;
	return ret;
}

/* SPDX-License-Identifier: MIT */
/*
 * wire_stream.c - encode and decode the migration stream's messages
 * (layout in wire.h): PACKET headers, SYNC, SYNC_ACK and DEVSTATE
 * fragments.  wire.c has the immediates and the messages that set a
 * channel up; wire_codec.h the byte helpers and the decoders' rules.
 */
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "error.h"
#include "wire_codec.h"

/* Packet header ------------------------------------------------------- */

size_t rmig_packet_len(uint32_t normal, uint32_t zero)
{
	/* At most 2^33 offsets: the product stays far below 2^64. */
	uint64_t bytes = RMIG_PACKET_HDR_LEN +
			 ((uint64_t)normal + zero) * OFFSET_LEN;

#if SIZE_MAX < UINT64_MAX
	if (bytes > SIZE_MAX)
		return SIZE_MAX;
#endif
	return (size_t)bytes;
}

size_t rmig_packet_encode(const struct rmig_packet_hdr *h,
			  const uint64_t *normal, const uint64_t *zero,
			  void *buf, size_t len)
{
	size_t need = rmig_packet_len(h->normal_count, h->zero_count);
	uint8_t *p = buf;

	if (!buf || len < need)
		return 0;
	rmig_put_u32(p + 0, h->flags);
	rmig_put_u32(p + 4, h->block);
	rmig_put_u64(p + 8, h->packet_num);
	rmig_put_u32(p + 16, h->normal_count);
	rmig_put_u32(p + 20, h->zero_count);
	p += RMIG_PACKET_HDR_LEN;
	for (uint32_t i = 0; i < h->normal_count; i++, p += OFFSET_LEN)
		rmig_put_u64(p, normal[i]);
	for (uint32_t i = 0; i < h->zero_count; i++, p += OFFSET_LEN)
		rmig_put_u64(p, zero[i]);
	return need;
}

int rmig_packet_decode(const void *buf, size_t len,
		       const struct rmig_packet_limits *lim,
		       struct rmig_packet_hdr *h)
{
	const uint8_t *p = buf;
	uint32_t flags, block, normal, zero, max_pages;
	uint64_t total, ps, blen;
	size_t want;

	ps = lim->page_size;
	if (ps == 0 || (ps & (ps - 1)))
		return rmig_err(-EINVAL,
				"packet limits: page size %" PRIu64
				" (expected a power of two)", ps);
	if (len < RMIG_PACKET_HDR_LEN)
		return wire_too_short("packet header", len,
				      RMIG_PACKET_HDR_LEN);
	flags = rmig_get_u32(p + 0);
	block = rmig_get_u32(p + 4);
	normal = rmig_get_u32(p + 16);
	zero = rmig_get_u32(p + 20);
	if (flags)
		return rmig_err(-EPROTO,
				"packet header: unknown flags 0x%08" PRIx32
				" (expected 0)", flags);
	if (block >= lim->nblocks)
		return rmig_err(-EPROTO,
				"packet header: block index %" PRIu32
				" out of range (%u blocks)", block, lim->nblocks);

	total = (uint64_t)normal + zero;
	max_pages = lim->pages_per_packet;
	if (max_pages > RMIG_MAX_PAGES_PER_PACKET)
		max_pages = RMIG_MAX_PAGES_PER_PACKET;
	if (total == 0)
		return rmig_err(-EPROTO,
				"packet header: no pages (normal count 0, zero count 0; expected 1..%" PRIu32 ")",
				max_pages);
	if (total > max_pages)
		return rmig_err(-EPROTO,
				"packet header: normal count %" PRIu32
				" + zero count %" PRIu32
				" above pages per packet %" PRIu32,
				normal, zero, max_pages);
	/* total <= 4096 here: the length cannot overflow. */
	want = RMIG_PACKET_HDR_LEN + (size_t)total * OFFSET_LEN;
	if (len != want)
		return rmig_err(-EPROTO,
				"packet header: length %zu (expected %zu for %" PRIu32
				" normal + %" PRIu32 " zero pages)",
				len, want, normal, zero);

	blen = lim->block_len[block];
	for (uint32_t i = 0; i < total; i++) {
		uint64_t off = rmig_get_u64(p + RMIG_PACKET_HDR_LEN +
				       (size_t)i * OFFSET_LEN);
		const char *kind = i < normal ? "normal" : "zero";
		uint32_t k = i < normal ? i : i - normal;

		if (off & (ps - 1))
			return rmig_err(-EPROTO,
					"packet header: %s page %" PRIu32
					" offset 0x%" PRIx64
					" not aligned to the page size %" PRIu64,
					kind, k, off, ps);
		/* off + ps <= blen, written so it cannot wrap. */
		if (blen < ps || off > blen - ps)
			return rmig_err(-EPROTO,
					"packet header: %s page %" PRIu32
					" offset 0x%" PRIx64
					" past the end of block %" PRIu32
					" (length 0x%" PRIx64 ")",
					kind, k, off, block, blen);
	}

	h->flags = flags;
	h->block = block;
	h->packet_num = rmig_get_u64(p + 8);
	h->normal_count = normal;
	h->zero_count = zero;
	h->offsets = p + RMIG_PACKET_HDR_LEN;
	return 0;
}

uint64_t rmig_packet_offset(const struct rmig_packet_hdr *h, uint32_t i)
{
	return rmig_get_u64(h->offsets + (size_t)i * OFFSET_LEN);
}

/* Sync ---------------------------------------------------------------- */

size_t rmig_sync_encode(const struct rmig_sync_msg *m, void *buf)
{
	uint8_t *p = buf;

	rmig_put_u32(p + 0, m->flags);
	rmig_put_u32(p + 4, 0);
	rmig_put_u64(p + 8, m->sync_num);
	rmig_put_u64(p + 16, m->packets);
	return RMIG_SYNC_LEN;
}

int rmig_sync_decode(const void *buf, size_t len, struct rmig_sync_msg *m)
{
	const uint8_t *p = buf;
	uint32_t flags, reserved;

	if (len != RMIG_SYNC_LEN)
		return rmig_err(-EPROTO, "sync: length %zu (expected %u)", len,
				RMIG_SYNC_LEN);
	flags = rmig_get_u32(p + 0);
	reserved = rmig_get_u32(p + 4);
	if (flags & ~(RMIG_SYNC_FINAL | RMIG_SYNC_POSTCOPY))
		return rmig_err(-EPROTO,
				"sync: unknown flags 0x%08" PRIx32
				" (expected only 0x%x)",
				flags & ~(RMIG_SYNC_FINAL | RMIG_SYNC_POSTCOPY),
				RMIG_SYNC_FINAL | RMIG_SYNC_POSTCOPY);
	if ((flags & RMIG_SYNC_FINAL) && (flags & RMIG_SYNC_POSTCOPY))
		return rmig_err(-EPROTO, "sync: flags 0x%08" PRIx32 " both "
				"final and the post-copy switch", flags);
	if (reserved)
		return rmig_err(-EPROTO,
				"sync: reserved field 0x%08" PRIx32 " (expected 0)",
				reserved);
	m->flags = flags;
	m->sync_num = rmig_get_u64(p + 8);
	m->packets = rmig_get_u64(p + 16);
	return 0;
}

size_t rmig_sync_ack_encode(uint64_t sync_num, void *buf)
{
	rmig_put_u64(buf, sync_num);
	return RMIG_SYNC_ACK_LEN;
}

int rmig_sync_ack_decode(const void *buf, size_t len, uint64_t *sync_num)
{
	if (len != RMIG_SYNC_ACK_LEN)
		return rmig_err(-EPROTO, "sync ack: length %zu (expected %u)",
				len, RMIG_SYNC_ACK_LEN);
	*sync_num = rmig_get_u64(buf);
	return 0;
}

/* Device state fragments ---------------------------------------------- */

size_t rmig_read_keys_len(unsigned n)
{
	return RMIG_READ_KEYS_HDR_LEN + (size_t)n * RMIG_READ_KEYS_ENTRY_LEN;
}

size_t rmig_read_keys_encode(const struct rmig_read_key *k, unsigned n,
			     void *buf, size_t cap)
{
	uint8_t *p = buf;
	size_t len = rmig_read_keys_len(n);

	if (!n || n > RMIG_MAX_BLOCKS || len > cap)
		return 0;
	rmig_put_u32(p + 0, n);
	rmig_put_u32(p + 4, 0);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *e = p + RMIG_READ_KEYS_HDR_LEN +
			     (size_t)i * RMIG_READ_KEYS_ENTRY_LEN;

		rmig_put_u32(e + 0, k[i].block);
		rmig_put_u32(e + 4, 0);
		rmig_put_u64(e + 8, k[i].length);
		rmig_put_u64(e + 16, k[i].raddr);
		rmig_put_u64(e + 24, k[i].rkey);
	}
	return len;
}

int rmig_read_keys_decode(const void *buf, size_t len, unsigned nblocks,
			  uint64_t page_size, struct rmig_read_key *out,
			  unsigned *n)
{
	const uint8_t *p = buf;
	uint64_t seen[RMIG_MAX_BLOCKS / 64] = { 0 };
	uint32_t count, reserved;

	if (len < RMIG_READ_KEYS_HDR_LEN)
		return wire_too_short("read keys", len, RMIG_READ_KEYS_HDR_LEN);
	count = rmig_get_u32(p + 0);
	reserved = rmig_get_u32(p + 4);
	if (count < 1 || count > RMIG_MAX_BLOCKS || count > nblocks)
		return rmig_err(-EPROTO, "read keys: entry count %" PRIu32
				" (expected 1..%u)", count,
				nblocks < RMIG_MAX_BLOCKS ? nblocks :
				RMIG_MAX_BLOCKS);
	if (reserved)
		return rmig_err(-EPROTO, "read keys: reserved field 0x%08"
				PRIx32 " (expected 0)", reserved);
	if (len != rmig_read_keys_len(count))
		return rmig_err(-EPROTO, "read keys: length %zu for %" PRIu32
				" entries (expected %zu)", len, count,
				rmig_read_keys_len(count));
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = p + RMIG_READ_KEYS_HDR_LEN +
				   (size_t)i * RMIG_READ_KEYS_ENTRY_LEN;
		uint32_t block = rmig_get_u32(e + 0);
		uint64_t length = rmig_get_u64(e + 8);

		if (block >= nblocks)
			return rmig_err(-EPROTO, "read keys: entry %" PRIu32
					": block %" PRIu32 " (expected < %u)",
					i, block, nblocks);
		if (seen[block / 64] & (1ull << (block % 64)))
			return rmig_err(-EPROTO, "read keys: entry %" PRIu32
					": block %" PRIu32 " listed twice", i,
					block);
		seen[block / 64] |= 1ull << (block % 64);
		if (rmig_get_u32(e + 4))
			return rmig_err(-EPROTO, "read keys: entry %" PRIu32
					": reserved field 0x%08" PRIx32
					" (expected 0)", i,
					rmig_get_u32(e + 4));
		if (!length || length % page_size)
			return rmig_err(-EPROTO, "read keys: entry %" PRIu32
					": length %" PRIu64 " (expected a "
					"nonzero multiple of the page size "
					"%" PRIu64 ")", i, length, page_size);
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = p + RMIG_READ_KEYS_HDR_LEN +
				   (size_t)i * RMIG_READ_KEYS_ENTRY_LEN;

		out[i] = (struct rmig_read_key){
			.block = rmig_get_u32(e + 0),
			.length = rmig_get_u64(e + 8),
			.raddr = rmig_get_u64(e + 16),
			.rkey = rmig_get_u64(e + 24),
		};
	}
	*n = count;
	return 0;
}

size_t rmig_devstate_frag_room(size_t idstr_len)
{
	if (idstr_len > RMIG_MSG_SIZE - RMIG_DEVSTATE_HDR_LEN)
		return 0;
	return RMIG_MSG_SIZE - RMIG_DEVSTATE_HDR_LEN - idstr_len;
}

/*
 * The idstr length is taken from @f->idstr (strlen + 1); a nonzero
 * @f->idstr_len must agree with it.  Returns 0 when the fragment cannot be
 * encoded: idstr too long, fragment beyond the total or the message, or
 * @len too small.
 */
size_t rmig_devstate_encode(const struct rmig_devstate_frag *f, void *buf,
			    size_t len)
{
	uint8_t *p = buf;
	size_t n, need;

	if (!f->idstr || !buf)
		return 0;
	n = strnlen(f->idstr, RMIG_IDSTR_MAX) + 1;
	if (n > RMIG_IDSTR_MAX || (f->idstr_len && f->idstr_len != n))
		return 0;
	if (f->frag_len > rmig_devstate_frag_room(n))
		return 0;
	if (f->frag_off > f->total_len ||
	    f->frag_len > f->total_len - f->frag_off)
		return 0;
	if (f->frag_len && !f->data)
		return 0;
	need = RMIG_DEVSTATE_HDR_LEN + n + f->frag_len;
	if (len < need)
		return 0;
	rmig_put_u32(p + 0, f->seq);
	rmig_put_u32(p + 4, f->instance_id);
	rmig_put_u64(p + 8, f->total_len);
	rmig_put_u64(p + 16, f->frag_off);
	rmig_put_u16(p + 24, (uint16_t)n);
	rmig_put_u16(p + 26, 0);
	rmig_put_u32(p + 28, f->frag_len);
	memcpy(p + RMIG_DEVSTATE_HDR_LEN, f->idstr, n - 1);
	p[RMIG_DEVSTATE_HDR_LEN + n - 1] = '\0';
	if (f->frag_len)
		memcpy(p + RMIG_DEVSTATE_HDR_LEN + n, f->data, f->frag_len);
	return need;
}

int rmig_devstate_decode(const void *buf, size_t len, uint64_t max_total,
			 struct rmig_devstate_frag *f)
{
	const uint8_t *p = buf;
	const uint8_t *id, *nul;
	uint64_t total, off, want;
	uint32_t m;
	unsigned n, reserved;

	if (len < RMIG_DEVSTATE_HDR_LEN)
		return wire_too_short("devstate", len, RMIG_DEVSTATE_HDR_LEN);
	total = rmig_get_u64(p + 8);
	off = rmig_get_u64(p + 16);
	n = rmig_get_u16(p + 24);
	reserved = rmig_get_u16(p + 26);
	m = rmig_get_u32(p + 28);
	if (reserved)
		return rmig_err(-EPROTO,
				"devstate: reserved field 0x%04x (expected 0)",
				reserved);
	if (n == 0 || n > RMIG_IDSTR_MAX)
		return rmig_err(-EPROTO,
				"devstate: idstr length %u (expected 1..%d including the NUL)",
				n, RMIG_IDSTR_MAX);
	if (total > max_total)
		return rmig_err(-EPROTO,
				"devstate: total length %" PRIu64
				" above the limit %" PRIu64, total, max_total);
	if (off > total || m > total - off)
		return rmig_err(-EPROTO,
				"devstate: fragment at %" PRIu64 " of %" PRIu32
				" bytes past the total length %" PRIu64,
				off, m, total);
	/* n <= 256 and m < 2^32: no overflow in 64 bits. */
	want = (uint64_t)RMIG_DEVSTATE_HDR_LEN + n + m;
	if ((uint64_t)len != want)
		return rmig_err(-EPROTO,
				"devstate: length %zu (expected %" PRIu64
				" for a %u-byte idstr and a %" PRIu32
				"-byte fragment)", len, want, n, m);
	id = p + RMIG_DEVSTATE_HDR_LEN;
	if (id[n - 1] != '\0')
		return rmig_err(-EPROTO,
				"devstate: idstr not NUL-terminated (byte %u is 0x%02x)",
				n - 1, id[n - 1]);
	nul = memchr(id, 0, n);
	if (nul != id + n - 1)
		return rmig_err(-EPROTO,
				"devstate: NUL inside idstr at byte %td (expected only at byte %u)",
				nul - id, n - 1);

	f->seq = rmig_get_u32(p + 0);
	f->instance_id = rmig_get_u32(p + 4);
	f->total_len = total;
	f->frag_off = off;
	f->frag_len = m;
	f->idstr = (const char *)id;
	f->idstr_len = (uint16_t)n;
	f->data = id + n;
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * wire_codec.h - what the encoders and decoders of the wire format share
 * (wire.c: the immediates and the messages that set a channel up;
 * wire_stream.c: the migration stream's).  Private to those two files: the
 * layout itself is in wire.h.
 *
 * Every field goes through the put_* / get_* helpers below: one byte at a
 * time, big-endian, never a cast of a buffer pointer, so neither the
 * buffer's alignment nor the host's byte order matters (the compiler turns
 * each helper into a load and a byte swap).
 *
 * Decoders take hostile bytes.  Their rules:
 *   - the message length is checked against the fixed header before any
 *     field is read, and against the exact total once the counts are known;
 *   - every count is bounded before it is multiplied or looped over, and
 *     sums are formed in 64 bits from 32-bit fields, so nothing can wrap;
 *   - range checks are written so they cannot overflow either
 *     (off <= len - size, never off + size <= len);
 *   - reserved fields must be zero, unknown flags are refused;
 *   - the caller's outputs are written only once every check has passed;
 *   - a failure returns -EPROTO (-EINVAL for a caller-side mistake) and
 *     records, through rmig_err(), the message, the field, the value
 *     received and what was expected.
 */
#ifndef RMIG_WIRE_CODEC_H
#define RMIG_WIRE_CODEC_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define OFFSET_LEN 8u /* one u64 page offset in a packet header */

/* Byte helpers -------------------------------------------------------- */

static inline void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)(v >> 32));
	put_u32(p + 4, (uint32_t)v);
}

static inline uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

static inline uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) << 32 | (uint64_t)get_u32(p + 4);
}

/* A decoder's first check failed: @len bytes of message @what cannot hold
 * its @hdr-byte fixed header.  Returns -EPROTO. */
static inline int wire_too_short(const char *what, size_t len, unsigned hdr)
{
	return rmig_err(-EPROTO, "%s: length %zu shorter than the %u-byte header",
			what, len, hdr);
}

#endif /* RMIG_WIRE_CODEC_H */

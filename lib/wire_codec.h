/* SPDX-License-Identifier: MIT */
/*
 * wire_codec.h - what the encoders and decoders of the wire format share
 * (wire.c: the immediates and the messages that set a channel up;
 * wire_stream.c: the migration stream's; wire_auth.c: the authentication
 * messages).  Private to those files: the layout itself is in wire.h.
 *
 * Every field goes through the rmig_put_* / rmig_get_* helpers of be.h.
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

#include "be.h"
#include "error.h"

#define OFFSET_LEN 8u /* one u64 page offset in a packet header */

/* A decoder's first check failed: @len bytes of message @what cannot hold
 * its @hdr-byte fixed header.  Returns -EPROTO. */
static inline int wire_too_short(const char *what, size_t len, unsigned hdr)
{
	return rmig_err(-EPROTO, "%s: length %zu shorter than the %u-byte header",
			what, len, hdr);
}

#endif /* RMIG_WIRE_CODEC_H */

/* SPDX-License-Identifier: MIT */
/*
 * be.h - big-endian field helpers for the encoders and decoders: one byte
 * at a time, never a cast of a buffer pointer, so neither the buffer's
 * alignment nor the host's byte order matters (the compiler turns each into
 * a load or store and a byte swap).
 */
#ifndef RMIG_BE_H
#define RMIG_BE_H

#include <stdint.h>

static inline void rmig_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void rmig_put_u32(uint8_t *p, uint32_t v)
{
	rmig_put_u16(p, (uint16_t)(v >> 16));
	rmig_put_u16(p + 2, (uint16_t)v);
}

static inline void rmig_put_u64(uint8_t *p, uint64_t v)
{
	rmig_put_u32(p, (uint32_t)(v >> 32));
	rmig_put_u32(p + 4, (uint32_t)v);
}

static inline uint16_t rmig_get_u16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

static inline uint32_t rmig_get_u32(const uint8_t *p)
{
	return (uint32_t)rmig_get_u16(p) << 16 | (uint32_t)rmig_get_u16(p + 2);
}

static inline uint64_t rmig_get_u64(const uint8_t *p)
{
	return (uint64_t)rmig_get_u32(p) << 32 | (uint64_t)rmig_get_u32(p + 4);
}

#endif /* RMIG_BE_H */

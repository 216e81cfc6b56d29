/* SPDX-License-Identifier: MIT */
/*
 * zero.h - zero-page detection.
 */
#ifndef RMIG_ZERO_H
#define RMIG_ZERO_H

#include <stdbool.h>
#include <stddef.h>

/**
 * True when all @len bytes at @buf are zero (true for @len 0).  Any length
 * and alignment; reads only [buf, buf + len).  Returns at the first nonzero
 * chunk.  Vectorized: AVX2 when the CPU has it, else SSE2 on x86_64, 64-bit
 * words elsewhere.  Thread-safe (no state).
 */
bool rmig_buffer_is_zero(const void *buf, size_t len);

/** One implementation of rmig_buffer_is_zero(), same contract. */
typedef bool (*rmig_zero_fn)(const void *buf, size_t len);

/**
 * For tests and benchmarks: the implementation called @name ("auto",
 * "words", "sse2", "avx2"), or NULL when this build or CPU lacks it.
 */
rmig_zero_fn rmig_zero_impl(const char *name);

#endif /* RMIG_ZERO_H */

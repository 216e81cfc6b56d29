/* SPDX-License-Identifier: MIT */
/*
 * zero.c - is a buffer all zero bytes?  The source asks for every page it
 * sends, so this is on the hot path: a 4 KiB page is 64 cache lines.
 *
 * Shape of every variant (after QEMU's util/bufferiszero.c): one unaligned
 * vector at the start, aligned vectors in between, one unaligned vector
 * ending exactly at the end.  The first and last loads may overlap the
 * aligned ones; that is harmless for an OR and means any length from one
 * vector up needs no byte loop.  Nothing outside [buf, buf + len) is read.
 * The aligned middle is checked a chunk (4 vectors) at a time and the
 * function returns at the first nonzero chunk: nonzero pages usually differ
 * from zero in their first bytes.
 */
#include "zero.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && !defined(RMIG_ZERO_NO_SIMD)
#include <immintrin.h>
#endif

/* Up to 15 bytes (or any length, slowly): the plain way. */
static bool zero_bytes(const unsigned char *p, size_t len)
{
	unsigned char acc = 0;

	for (size_t i = 0; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

static uint64_t load_u64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v)); /* any alignment, no aliasing issue */
	return v;
}

/* Portable: 64-bit words, 8 at a time.  Any length. */
static bool zero_words(const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len;
	uint64_t acc;

	if (len < 8)
		return zero_bytes(p, len);
	/* First and last word may overlap the middle ones. */
	acc = load_u64(p) | load_u64(end - 8);
	if (acc)
		return false;
	p = (const unsigned char *)(((uintptr_t)p + 8) & ~(uintptr_t)7);
	while (end - p >= 64) {
		acc = load_u64(p) | load_u64(p + 8) | load_u64(p + 16) |
		      load_u64(p + 24) | load_u64(p + 32) | load_u64(p + 40) |
		      load_u64(p + 48) | load_u64(p + 56);
		if (acc)
			return false;
		p += 64;
	}
	while (end - p >= 8) {
		acc |= load_u64(p);
		p += 8;
	}
	return acc == 0;
}

#if defined(__x86_64__) && !defined(RMIG_ZERO_NO_SIMD)

static bool m128_is_zero(__m128i v)
{
	return _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128())) ==
	       0xffff;
}

/* SSE2 (baseline of x86_64), len >= 16. */
static bool zero_sse2(const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len;
	const __m128i *a, *aend;
	__m128i acc;

	acc = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)p),
			   _mm_loadu_si128((const __m128i *)(const void *)(end - 16)));
	if (!m128_is_zero(acc))
		return false;
	/* Aligned vectors strictly inside: [align_up(p + 1), align_down(end)). */
	a = (const __m128i *)(const void *)(((uintptr_t)p + 16) & ~(uintptr_t)15);
	aend = (const __m128i *)(const void *)((uintptr_t)end & ~(uintptr_t)15);
	while (aend - a >= 4) {
		acc = _mm_or_si128(_mm_or_si128(_mm_load_si128(a),
						_mm_load_si128(a + 1)),
				   _mm_or_si128(_mm_load_si128(a + 2),
						_mm_load_si128(a + 3)));
		if (!m128_is_zero(acc))
			return false;
		a += 4;
	}
	while (a < aend)
		acc = _mm_or_si128(acc, _mm_load_si128(a++));
	return m128_is_zero(acc);
}

/* AVX2, len >= 32; only called when the CPU has AVX2. */
__attribute__((target("avx2")))
static bool zero_avx2(const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len;
	const __m256i *a, *aend;
	__m256i acc;

	acc = _mm256_or_si256(
		_mm256_loadu_si256((const __m256i *)(const void *)p),
		_mm256_loadu_si256((const __m256i *)(const void *)(end - 32)));
	if (!_mm256_testz_si256(acc, acc))
		return false;
	a = (const __m256i *)(const void *)(((uintptr_t)p + 32) & ~(uintptr_t)31);
	aend = (const __m256i *)(const void *)((uintptr_t)end & ~(uintptr_t)31);
	while (aend - a >= 4) {
		acc = _mm256_or_si256(_mm256_or_si256(_mm256_load_si256(a),
						      _mm256_load_si256(a + 1)),
				      _mm256_or_si256(_mm256_load_si256(a + 2),
						      _mm256_load_si256(a + 3)));
		if (!_mm256_testz_si256(acc, acc))
			return false;
		a += 4;
	}
	while (a < aend)
		acc = _mm256_or_si256(acc, _mm256_load_si256(a++));
	return _mm256_testz_si256(acc, acc);
}

static bool is_zero_sse2(const void *buf, size_t len)
{
	if (len < 16)
		return zero_bytes(buf, len);
	return zero_sse2(buf, len);
}

static bool is_zero_avx2(const void *buf, size_t len)
{
	if (len < 32)
		return is_zero_sse2(buf, len);
	return zero_avx2(buf, len);
}

/* Below this, AVX2's setup does not pay; SSE2 does the job. */
#define AVX2_MIN_LEN 256

bool rmig_buffer_is_zero(const void *buf, size_t len)
{
	if (len < 16)
		return zero_bytes(buf, len);
	/* __builtin_cpu_supports reads a table libgcc fills in a constructor
	 * before main: no lazy state here, so no race between threads. */
	if (len >= AVX2_MIN_LEN && __builtin_cpu_supports("avx2"))
		return zero_avx2(buf, len);
	return zero_sse2(buf, len);
}

#else /* portable: no x86_64, or RMIG_ZERO_NO_SIMD */

bool rmig_buffer_is_zero(const void *buf, size_t len)
{
	return zero_words(buf, len);
}

#endif

static bool is_zero_words(const void *buf, size_t len)
{
	return zero_words(buf, len);
}

rmig_zero_fn rmig_zero_impl(const char *name)
{
	if (!strcmp(name, "auto"))
		return rmig_buffer_is_zero;
	if (!strcmp(name, "words"))
		return is_zero_words;
#if defined(__x86_64__) && !defined(RMIG_ZERO_NO_SIMD)
	if (!strcmp(name, "sse2"))
		return is_zero_sse2;
	if (!strcmp(name, "avx2"))
		return __builtin_cpu_supports("avx2") ? is_zero_avx2 : NULL;
#endif
	return NULL;
}

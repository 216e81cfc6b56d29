/* SPDX-License-Identifier: MIT */
/*
 * test_zero.c - rmig_buffer_is_zero() and each of its implementations
 * against a plain byte loop: every length 0..300 at every start offset
 * 0..63 with a nonzero byte at every position (and none), then 4 KiB and
 * 2 MiB pages (and their neighbours) with the byte first, last, in the
 * middle, at vector and cache-line edges and at random places.
 *
 * The region under test always sits in a buffer filled with nonzero guard
 * bytes, so reading outside [buf, buf + len) changes the answer; small
 * lengths are also checked in exact-size heap copies, so ASan sees any
 * overread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "zero.h"

#define MiB (1024u * 1024u)
#define GUARD 0xa5
#define MAX_ALIGN 64

static const char *const impl_names[] = { "auto", "words", "sse2", "avx2" };
#define NIMPL (sizeof(impl_names) / sizeof(impl_names[0]))

static bool ref_is_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/** A page-aligned buffer of @size bytes plus room for offsets and guards. */
static unsigned char *alloc_region(size_t size)
{
	size_t total = size + 2 * 4096;
	void *b = NULL;

	assert_int_equal(posix_memalign(&b, 4096, total), 0);
	memset(b, GUARD, total);
	return b;
}

/* Every implementation against the reference on @p[0..len); @pos (the
 * planted nonzero byte, -1 for none) and @align only label a failure. */
static void check_all(const unsigned char *p, size_t len, size_t align,
		      long pos)
{
	bool want = ref_is_zero(p, len);

	for (size_t k = 0; k < NIMPL; k++) {
		rmig_zero_fn fn = rmig_zero_impl(impl_names[k]);
		bool got;

		if (!fn)
			continue;
		got = fn(p, len);
		if (got != want)
			fail_msg("%s: len %zu align %zu nonzero at %ld: got %d, expected %d",
				 impl_names[k], len, align, pos, got, want);
	}
}

static void test_impls_present(void **state)
{
	(void)state;
	assert_non_null(rmig_zero_impl("auto"));
	assert_non_null(rmig_zero_impl("words"));
#if defined(__x86_64__) && !defined(RMIG_ZERO_NO_SIMD)
	assert_non_null(rmig_zero_impl("sse2"));
	if (__builtin_cpu_supports("avx2"))
		assert_non_null(rmig_zero_impl("avx2"));
#endif
	assert_null(rmig_zero_impl("nonsense"));
	assert_true(rmig_buffer_is_zero(NULL, 0));
}

/* Lengths 0..300, start offsets 0..63, one nonzero byte at every position. */
static void test_small_every_position(void **state)
{
	unsigned char *base = alloc_region(512);
	static const unsigned char vals[] = { 0x01, 0x80, 0xff };

	(void)state;
	for (size_t align = 0; align < MAX_ALIGN; align++) {
		unsigned char *p = base + 4096 + align;

		for (size_t len = 0; len <= 300; len++) {
			memset(p, 0, len);
			check_all(p, len, align, -1);
			for (size_t pos = 0; pos < len; pos++) {
				p[pos] = vals[(pos + len) % 3];
				check_all(p, len, align, (long)pos);
				p[pos] = 0;
			}
			memset(p, GUARD, len); /* guards back for the next len */
		}
	}
	free(base);
}

/* Exact-size heap copies: any read past either end is an ASan error. */
static void test_small_exact_allocation(void **state)
{
	(void)state;
	for (size_t len = 1; len <= 300; len++) {
		for (long pos = -1; pos < (long)len; pos++) {
			unsigned char *p = malloc(len);

			assert_non_null(p);
			memset(p, 0, len);
			if (pos >= 0)
				p[pos] = 0x42;
			check_all(p, len, (uintptr_t)p & 63, pos);
			free(p);
		}
	}
}

static void check_large(size_t len, const size_t *aligns, size_t naligns)
{
	unsigned char *base = alloc_region(len + MAX_ALIGN);

	for (size_t ai = 0; ai < naligns; ai++) {
		size_t align = aligns[ai];
		unsigned char *p = base + 4096 + align;
		size_t fixed[] = { 0, 1, 15, 16, 31, 32, 63, 64, 127, 128,
				   255, 256, len / 2, len - 64, len - 33,
				   len - 32, len - 17, len - 16, len - 2,
				   len - 1 };
		size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);

		memset(p, 0, len);
		check_all(p, len, align, -1);
		for (size_t i = 0; i < nfixed + 16; i++) {
			size_t pos = i < nfixed ? fixed[i] : rng() % len;

			if (pos >= len)
				continue;
			p[pos] = (unsigned char)(1u << (pos % 8));
			check_all(p, len, align, (long)pos);
			p[pos] = 0;
		}
		/* Everything nonzero, and zero except the guards around. */
		memset(p, 0xff, len);
		check_all(p, len, align, 0);
		memset(p, GUARD, len);
	}
	free(base);
}

static void test_page_4k(void **state)
{
	size_t aligns[MAX_ALIGN];
	static const size_t lens[] = { 4095, 4096, 4097, 8192 };

	(void)state;
	for (size_t i = 0; i < MAX_ALIGN; i++)
		aligns[i] = i;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		check_large(lens[i], aligns, MAX_ALIGN);
}

static void test_page_2m(void **state)
{
	static const size_t aligns[] = { 0, 1, 7, 8, 15, 16, 17, 31, 32, 33,
					 48, 63 };
	static const size_t lens[] = { 2 * MiB - 1, 2 * MiB, 2 * MiB + 1 };

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		check_large(lens[i], aligns,
			    i == 1 ? sizeof(aligns) / sizeof(aligns[0]) : 3);
}

/* Random lengths up to 64 KiB at random offsets with random dirt. */
static void test_random(void **state)
{
	const size_t cap = 65536;
	unsigned char *base = alloc_region(cap + MAX_ALIGN);

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		size_t align = rng() % MAX_ALIGN;
		size_t len = rng() % (cap + 1);
		unsigned char *p = base + 4096 + align;
		int dirt = (int)(rng() % 4);

		memset(p, 0, len);
		for (int d = 0; d < dirt && len; d++)
			p[rng() % len] = (unsigned char)(rng() | 1);
		check_all(p, len, align, dirt ? -2 : -1);
		memset(p, GUARD, len);
	}
	free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_impls_present),
		cmocka_unit_test(test_small_every_position),
		cmocka_unit_test(test_small_exact_allocation),
		cmocka_unit_test(test_page_4k),
		cmocka_unit_test(test_page_2m),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

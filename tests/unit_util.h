/* SPDX-License-Identifier: MIT */
/* unit_util.h - small helpers shared by the in-process unit tests. */
#ifndef RMIG_TESTS_UNIT_UTIL_H
#define RMIG_TESTS_UNIT_UTIL_H

#include <stdint.h>
#include <time.h>

static inline uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Deterministic xorshift64* stream, one per test program. */
static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static inline uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

#endif /* RMIG_TESTS_UNIT_UTIL_H */

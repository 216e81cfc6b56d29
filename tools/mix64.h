/* SPDX-License-Identifier: MIT */
/*
 * mix64.h - splitmix64's finaliser, the hash behind every reproducible
 * pattern: rmig-migrate's image, the guest workload (guest.c) and the
 * tests' guest-memory model (tests/testutil.c).
 */
#ifndef RMIG_MIX64_H
#define RMIG_MIX64_H

#include <stdint.h>

/** 2^64 / golden ratio: splitmix64's increment. */
#define GOLDEN 0x9e3779b97f4a7c15ull

/** A bijective 64-bit mix: every input bit affects every output bit. */
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif /* RMIG_MIX64_H */

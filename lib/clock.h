/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the one monotonic clock of the library, for the core and the
 * providers: deadlines, timeouts, spin times and statistics.
 */
#ifndef RMIG_CLOCK_H
#define RMIG_CLOCK_H

#include <stdint.h>
#include <time.h>

/** Monotonic clock in nanoseconds. */
static inline uint64_t rmig_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/** The same clock in microseconds and in milliseconds. */
static inline int64_t rmig_now_us(void)
{
	return (int64_t)(rmig_now_ns() / 1000u);
}

static inline int64_t rmig_now_ms(void)
{
	return (int64_t)(rmig_now_ns() / 1000000u);
}

/** The time @ms (>= 0) from now on clock @clk, as the timed waits of
 *  pthreads and semaphores take it. */
static inline struct timespec rmig_timespec_after(clockid_t clk, int ms)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/** Deadline @timeout_ms from now (a negative or zero timeout: now). */
static inline uint64_t rmig_deadline_ns(int timeout_ms)
{
	return rmig_now_ns() +
	       (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
}

#endif /* RMIG_CLOCK_H */

/* SPDX-License-Identifier: MIT */
/*
 * test_ring.c - rmig_ring, the providers' overflow completion ring:
 * FIFO order across wrap-around and growth, growth sizes, odd entry
 * sizes, and pops that ask for more than there is.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ring.h"

/* 20 bytes: not a power of two, so a wrong stride shows. */
struct ent {
	uint32_t seq;
	unsigned char fill[16];
};

static struct ent mk(uint32_t seq)
{
	struct ent e;

	e.seq = seq;
	memset(e.fill, (int)(seq & 0xff), sizeof(e.fill));
	return e;
}

static void check(const struct ent *e, uint32_t seq)
{
	unsigned char want[sizeof(e->fill)];

	assert_int_equal(e->seq, seq);
	memset(want, (int)(seq & 0xff), sizeof(want));
	assert_memory_equal(e->fill, want, sizeof(want));
}

static void test_empty(void **state)
{
	struct rmig_ring r;
	struct ent out[4];

	(void)state;
	rmig_ring_init(&r, sizeof(struct ent));
	assert_int_equal(r.count, 0);
	assert_int_equal(r.cap, 0);
	assert_int_equal(rmig_ring_pop(&r, out, 4), 0);
	assert_int_equal(rmig_ring_reserve(&r, 0), 0);
	assert_int_equal(rmig_ring_reserve(&r, 1), 0);
	assert_int_equal(r.cap, 64);
	assert_int_equal(rmig_ring_pop(&r, out, 4), 0);
	rmig_ring_free(&r);
	assert_null(r.e);
	assert_int_equal(r.esize, sizeof(struct ent));
}

static void test_growth(void **state)
{
	struct rmig_ring r;

	(void)state;
	rmig_ring_init(&r, sizeof(struct ent));
	assert_int_equal(rmig_ring_reserve(&r, 64), 0);
	assert_int_equal(r.cap, 64);
	assert_int_equal(rmig_ring_reserve(&r, 65), 0);
	assert_int_equal(r.cap, 128);
	assert_int_equal(rmig_ring_reserve(&r, 300), 0);
	assert_int_equal(r.cap, 512);
	/* Room enough: nothing moves. */
	assert_int_equal(rmig_ring_reserve(&r, 512), 0);
	assert_int_equal(r.cap, 512);
	rmig_ring_free(&r);
}

/* Push and pop in uneven batches so the head wraps many times and growth
 * happens with the entries split across the end of the array. */
static void test_fifo_wrap_and_grow(void **state)
{
	struct rmig_ring r;
	struct ent batch[37], out[53];
	uint32_t next_in = 0, next_out = 0;

	(void)state;
	rmig_ring_init(&r, sizeof(struct ent));
	for (int round = 0; round < 400; round++) {
		size_t nin = (size_t)(round * 7 % 37) + 1;
		size_t want = (size_t)(round * 11 % 53);
		size_t got;

		for (size_t i = 0; i < nin; i++)
			batch[i] = mk(next_in++);
		assert_int_equal(rmig_ring_reserve(&r, nin), 0);
		assert_true(r.cap - r.count >= nin);
		rmig_ring_push(&r, batch, nin);
		/* Pop a little less than goes in until round 300, then
		 * drain. */
		if (round < 300 && want > nin)
			want = nin - 1;
		got = rmig_ring_pop(&r, out, want);
		assert_int_equal(got, want < r.count + got ? want :
				 r.count + got);
		for (size_t i = 0; i < got; i++)
			check(&out[i], next_out++);
		assert_int_equal(r.count, next_in - next_out);
	}
	assert_true(r.cap > 64);
	while (r.count) {
		size_t got = rmig_ring_pop(&r, out, 53);

		for (size_t i = 0; i < got; i++)
			check(&out[i], next_out++);
	}
	assert_int_equal(next_out, next_in);
	assert_int_equal(rmig_ring_pop(&r, out, 53), 0);
	rmig_ring_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_fifo_wrap_and_grow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

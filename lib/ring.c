/* SPDX-License-Identifier: MIT */
/*
 * ring.c - a growable FIFO ring of fixed-size entries.
 */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void rmig_ring_init(struct rmig_ring *r, size_t esize)
{
	memset(r, 0, sizeof(*r));
	r->esize = esize;
}

static unsigned char *rmig_ring_at(const struct rmig_ring *r, size_t i)
{
	return r->e + ((r->head + i) % r->cap) * r->esize;
}

int rmig_ring_reserve(struct rmig_ring *r, size_t n)
{
	unsigned char *e;
	size_t cap;

	if (r->cap - r->count >= n)
		return 0;
	cap = r->cap ? r->cap * 2 : 64;
	while (cap - r->count < n)
		cap *= 2;
	e = calloc(cap, r->esize);
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < r->count; i++)
		memcpy(e + i * r->esize, rmig_ring_at(r, i), r->esize);
	free(r->e);
	r->e = e;
	r->cap = cap;
	r->head = 0;
	return 0;
}

void rmig_ring_push(struct rmig_ring *r, const void *e, size_t n)
{
	const unsigned char *src = e;

	for (size_t i = 0; i < n; i++)
		memcpy(rmig_ring_at(r, r->count++), src + i * r->esize,
		       r->esize);
}

size_t rmig_ring_pop(struct rmig_ring *r, void *out, size_t max)
{
	unsigned char *dst = out;
	size_t n = 0;

	while (n < max && r->count) {
		memcpy(dst + n++ * r->esize, rmig_ring_at(r, 0), r->esize);
		r->head = (r->head + 1) % r->cap;
		r->count--;
	}
	return n;
}

void rmig_ring_free(struct rmig_ring *r)
{
	free(r->e);
	rmig_ring_init(r, r->esize);
}

/* SPDX-License-Identifier: MIT */
/*
 * ring.h - a growable FIFO ring of fixed-size entries.  The providers keep
 * the completions they read while a post drove progress in one, and hand
 * them out from poll() before anything else.  Not thread-safe: one thread
 * owns a ring.
 */
#ifndef RMIG_RING_H
#define RMIG_RING_H

#include <stddef.h>

struct rmig_ring {
	unsigned char *e;  /* cap entries of esize bytes */
	size_t esize;
	size_t cap;
	size_t head;       /* index of the oldest entry */
	size_t count;
};

/** An empty ring of @esize-byte entries (no memory yet). */
void rmig_ring_init(struct rmig_ring *r, size_t esize);

/**
 * Make room for @n more entries: the capacity doubles (from 64) until
 * they fit; entries keep their order.  0, or -ENOMEM (ring unchanged).
 */
int rmig_ring_reserve(struct rmig_ring *r, size_t n);

/** Append @n entries from @e; the caller reserved room for them. */
void rmig_ring_push(struct rmig_ring *r, const void *e, size_t n);

/** Move up to @max of the oldest entries to @out; returns how many. */
size_t rmig_ring_pop(struct rmig_ring *r, void *out, size_t max);

/** Free the ring's memory; it is empty (of the same entry size) after. */
void rmig_ring_free(struct rmig_ring *r);

#endif /* RMIG_RING_H */

/* SPDX-License-Identifier: MIT */
/*
 * regcache.c - on-demand chunked registration with a bounded LRU cache;
 * see regcache.h.
 */
#include "regcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	struct rmig_prov_mr *mr; /* NULL: free */
	int32_t block;
	uint64_t chunk;
	uint32_t refs;     /* channels referencing it */
	uint64_t last_use; /* tick of the last get or release */
};

struct rmig_regcache {
	struct rmig_session *s;
	struct rmig_tp *tp; /* whose domain the chunks are in */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC; a reference was dropped */
	uint64_t chunk_size;
	unsigned max;
	unsigned live;
	uint64_t tick;
	struct slot *slots;
	/* Per block: chunk index -> slot index, or -1. */
	int32_t *map[RMIG_MAX_BLOCKS];
	/* Read by stats from any thread: relaxed counters. */
	_Atomic uint64_t evictions, live_max;
};

int rmig_regcache_create(struct rmig_session *s, struct rmig_tp *tp,
			 uint64_t chunk_size, unsigned max_chunks,
			 struct rmig_regcache **out)
{
	struct rmig_regcache *c = calloc(1, sizeof(*c));
	pthread_condattr_t a;

	if (!c)
		return rmig_err(-ENOMEM, "registration cache: out of memory");
	c->s = s;
	c->tp = tp;
	c->chunk_size = chunk_size;
	c->max = max_chunks;
	c->slots = calloc(max_chunks, sizeof(*c->slots));
	if (!c->slots)
		goto nomem;
	for (unsigned b = 0; b < s->nblocks; b++) {
		uint64_t n = (s->blocks[b].length + chunk_size - 1) /
			     chunk_size;

		c->map[b] = malloc(n * sizeof(int32_t));
		if (!c->map[b])
			goto nomem;
		for (uint64_t i = 0; i < n; i++)
			c->map[b][i] = -1;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &a);
	pthread_condattr_destroy(&a);
	*out = c;
	return 0;

nomem:
	for (unsigned b = 0; b < RMIG_MAX_BLOCKS; b++)
		free(c->map[b]);
	free(c->slots);
	free(c);
	return rmig_err(-ENOMEM, "registration cache of %u chunks: out of "
			"memory", max_chunks);
}

void rmig_regcache_destroy(struct rmig_regcache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->max; i++)
		if (c->slots[i].mr)
			c->tp->ops.mr_dereg(c->slots[i].mr);
	for (unsigned b = 0; b < RMIG_MAX_BLOCKS; b++)
		free(c->map[b]);
	free(c->slots);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

unsigned rmig_regcache_capacity(const struct rmig_regcache *c)
{
	return c->max;
}

/* A slot to (re)use: a free one, else the least recently used without
 * references; -1 when every slot is referenced.  Under lock. */
static int victim(struct rmig_regcache *c)
{
	int best = -1;

	for (unsigned i = 0; i < c->max; i++) {
		struct slot *sl = &c->slots[i];

		if (!sl->mr)
			return (int)i;
		if (!sl->refs && (best < 0 ||
				  sl->last_use < c->slots[best].last_use))
			best = (int)i;
	}
	return best;
}

int rmig_regcache_get(struct rmig_regcache *c, struct rmig_chan *ch,
		      unsigned block, uint64_t offset, size_t *len,
		      struct rmig_prov_mr **mr)
{
	struct rmig_session *s = c->s;
	struct rmig_block *b = &s->blocks[block];
	uint64_t chunk = offset / c->chunk_size;
	uint64_t start = chunk * c->chunk_size;
	uint64_t clen = b->length - start < c->chunk_size ?
			b->length - start : c->chunk_size;
	uint64_t room = start + clen - offset;
	struct slot *sl;
	int i, ret = 0;

	if (*len > room)
		*len = (size_t)room;
	/* Held already by this channel: no lock needed, the reference keeps
	 * the slot as it is. */
	for (unsigned k = 0; k < ch->nheld; k++) {
		sl = &c->slots[ch->held[k]];
		if (sl->block == (int32_t)block && sl->chunk == chunk) {
			*mr = sl->mr;
			return 0;
		}
	}
	pthread_mutex_lock(&c->lock);
	i = c->map[block][chunk];
	if (i < 0) {
		i = victim(c);
		if (i < 0) {
			ret = -EAGAIN;
			goto out;
		}
		sl = &c->slots[i];
		if (sl->mr) {
			c->tp->ops.mr_dereg(sl->mr);
			sl->mr = NULL;
			c->map[sl->block][sl->chunk] = -1;
			c->live--;
			atomic_fetch_add_explicit(&c->evictions, 1,
						  memory_order_relaxed);
		}
		uint64_t t0 = rmig_now_ns();

		/* Only ever read, as the local side of writes: no write
		 * access, so the pages are pinned without a write fault. */
		ret = c->tp->ops.mr_reg(c->tp->dom, b->host + start,
					(size_t)clen, RMIG_MR_WRITE_SOURCE,
					&sl->mr);
		atomic_fetch_add_explicit(&s->registration_ns,
					  rmig_now_ns() - t0,
					  memory_order_relaxed);
		if (ret) {
			sl->mr = NULL;
			rmig_err_prefix("registering chunk %llu of RAM block "
					"'%s' (offset 0x%llx, %llu bytes)",
					(unsigned long long)chunk, b->name,
					(unsigned long long)start,
					(unsigned long long)clen);
			goto out;
		}
		atomic_fetch_add_explicit(&s->registrations, 1,
					  memory_order_relaxed);
		sl->block = (int32_t)block;
		sl->chunk = chunk;
		sl->refs = 0;
		c->map[block][chunk] = i;
		c->live++;
		if (c->live > atomic_load_explicit(&c->live_max,
						   memory_order_relaxed))
			atomic_store_explicit(&c->live_max, c->live,
					      memory_order_relaxed);
	}
	sl = &c->slots[i];
	sl->refs++;
	sl->last_use = ++c->tick;
	ch->held[ch->nheld++] = i;
	*mr = sl->mr;
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void rmig_regcache_release(struct rmig_regcache *c, struct rmig_chan *ch)
{
	if (!ch->nheld)
		return;
	pthread_mutex_lock(&c->lock);
	for (unsigned k = 0; k < ch->nheld; k++) {
		struct slot *sl = &c->slots[ch->held[k]];

		sl->refs--;
		sl->last_use = ++c->tick;
	}
	ch->nheld = 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void rmig_regcache_wait(struct rmig_regcache *c, int timeout_ms)
{
	struct timespec ts = rmig_timespec_after(CLOCK_MONOTONIC, timeout_ms);

	pthread_mutex_lock(&c->lock);
	if (victim(c) < 0)
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	pthread_mutex_unlock(&c->lock);
}

void rmig_regcache_counts(struct rmig_regcache *c, uint64_t *evictions,
			  uint64_t *cached_max)
{
	*evictions = atomic_load_explicit(&c->evictions, memory_order_relaxed);
	*cached_max = atomic_load_explicit(&c->live_max, memory_order_relaxed);
}

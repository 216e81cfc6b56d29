/* SPDX-License-Identifier: MIT */
/*
 * regcache.h - on-demand chunked registration of the source's RAM with a
 * bounded cache (RMIG_REG_ON_DEMAND).
 *
 * A block is cut into chunks of chunk_size bytes (the last one may be
 * shorter).  A channel thread that writes from a chunk takes a reference on
 * it (rmig_regcache_get()); the reference is dropped once every op the
 * channel posted has retired (rmig_regcache_release(), called by chan.c),
 * so a chunk is never deregistered under an in-flight write.  At most
 * max_chunks chunks are registered at once; to make room, the least
 * recently used chunk without references is deregistered.  When every
 * chunk is referenced, get() returns -EAGAIN: the channel drains its own
 * writes (dropping its references) and waits (rmig_regcache_wait()) for
 * another channel to drop one.
 *
 * Thread safety: one mutex; registration and deregistration happen under
 * it (they are rare next to the page traffic).
 */
#ifndef RMIG_REGCACHE_H
#define RMIG_REGCACHE_H

#include <stdint.h>

#include "core.h"

/** A cache for the blocks of @s, registered in @tp's domain. */
int rmig_regcache_create(struct rmig_session *s, struct rmig_tp *tp,
			 uint64_t chunk_size, unsigned max_chunks,
			 struct rmig_regcache **out);
/** Deregister every chunk (all channels are closed) and free. */
void rmig_regcache_destroy(struct rmig_regcache *c);

/**
 * The registration covering byte @offset of block @block, referenced for
 * channel @ch (recorded in ch->held unless it holds it already).  @*len
 * is cut to what remains of the chunk from @offset.  0; -EAGAIN when every
 * cached chunk is referenced; or the provider's registration error.
 */
int rmig_regcache_get(struct rmig_regcache *c, struct rmig_chan *ch,
		      unsigned block, uint64_t offset, size_t *len,
		      struct rmig_prov_mr **mr);

/** Drop every reference @ch holds (its ops have all retired). */
void rmig_regcache_release(struct rmig_regcache *c, struct rmig_chan *ch);

/** Wait up to @timeout_ms for a reference to be dropped. */
void rmig_regcache_wait(struct rmig_regcache *c, int timeout_ms);

/** Counters for the stats: evictions, most chunks registered at once. */
void rmig_regcache_counts(struct rmig_regcache *c, uint64_t *evictions,
			  uint64_t *cached_max);

/** Chunks one channel can hold at most (size of ch->held). */
unsigned rmig_regcache_capacity(const struct rmig_regcache *c);

#endif /* RMIG_REGCACHE_H */

/* SPDX-License-Identifier: MIT */
/*
 * postcopy_src - the source's post-copy switch and the proof's hash list
 * (see live.h and postcopy.h).
 */
#include "postcopy.h"
#include "postcopy_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

/* Hashing many pages: a thread a CPU, up to this many, each with at least
 * HASH_THREAD_PAGES pages (the guest is paused: its CPUs are free). */
#define HASH_THREADS_MAX 8
#define HASH_THREAD_PAGES 2048

/* Pages [first, end) of @g whose bit is set in @only (all when NULL). */
static void hash_range(const struct guest *g, uint64_t *h,
		       const uint64_t *only, uint64_t first, uint64_t end)
{
	size_t ps = g->cfg.page_size;

	for (uint64_t p = first; p < end; p++)
		if (!only || (only[p / 64] >> (p % 64) & 1))
			h[p] = guest_page_hash(g->mem + p * ps, ps);
}

struct hash_part {
	const struct guest *g;
	uint64_t *h;
	const uint64_t *only;
	uint64_t first, end;
	pthread_t t;
	bool on;
};

static void *hash_part_main(void *arg)
{
	struct hash_part *hp = arg;

	hash_range(hp->g, hp->h, hp->only, hp->first, hp->end);
	return NULL;
}

void live_hash_pages(const struct guest *g, uint64_t *h, const uint64_t *only)
{
	struct hash_part part[HASH_THREADS_MAX];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cpus < 1 ? 1 : cpus > HASH_THREADS_MAX ?
		     HASH_THREADS_MAX : (unsigned)cpus;
	uint64_t words = (g->pages + 63) / 64, count = 0;

	for (uint64_t w = 0; only && w < words; w++)
		count += (uint64_t)__builtin_popcountll(only[w]);
	if (!only)
		count = g->pages;
	if (count < HASH_THREAD_PAGES * 2)
		n = 1;
	else if (count / HASH_THREAD_PAGES < n)
		n = (unsigned)(count / HASH_THREAD_PAGES);
	/* Parts of whole bitmap words; the last one is this thread's. */
	for (unsigned i = 0; i < n; i++) {
		part[i] = (struct hash_part){
			.g = g, .h = h, .only = only,
			.first = words * i / n * 64,
			.end = words * (i + 1) / n * 64,
		};
		if (part[i].end > g->pages)
			part[i].end = g->pages;
		if (i + 1 < n)
			part[i].on = !pthread_create(&part[i].t, NULL,
						     hash_part_main, &part[i]);
		if (!part[i].on)
			hash_part_main(&part[i]);
	}
	for (unsigned i = 0; i + 1 < n; i++)
		if (part[i].on)
			pthread_join(part[i].t, NULL);
}

int live_send_hashes(struct guest *g, rmig_src *s, const uint64_t *all)
{
	uint64_t pages = g->pages;
	uint64_t *h = all ? NULL : malloc((size_t)(pages < LIVE_HASHES_PER_BLOB ?
					pages : LIVE_HASHES_PER_BLOB) * 8);
	int ret = 0;

	if (!all && !h)
		return -ENOMEM;
	for (uint64_t first = 0, i = 0; first < pages && !ret;
	     first += LIVE_HASHES_PER_BLOB, i++) {
		uint64_t n = pages - first < LIVE_HASHES_PER_BLOB ? pages - first :
			     LIVE_HASHES_PER_BLOB;
		const uint64_t *blob = all ? all + first : h;

		for (uint64_t p = 0; !all && p < n; p++)
			h[p] = guest_page_hash(g->mem + (first + p) *
					       g->cfg.page_size,
					       g->cfg.page_size);
		ret = rmig_src_send_devstate(s, LIVE_HASH_IDSTR, (uint32_t)i,
					     blob, (size_t)n * 8);
	}
	free(h);
	return ret;
}

/* The bitmap of the pages the destination lacks, in blobs. */
static int send_missing(const uint64_t *bits, uint64_t pages, rmig_src *s)
{
	uint64_t words = (pages + 63) / 64;
	int ret = 0;

	for (uint64_t w = 0, i = 0; w < words && !ret;
	     w += LIVE_MISSING_WORDS, i++) {
		uint64_t n = words - w < LIVE_MISSING_WORDS ? words - w :
			     LIVE_MISSING_WORDS;

		/* Little-endian words: the hosts this tool runs on. */
		ret = rmig_src_send_devstate(s, LIVE_MISSING_IDSTR, (uint32_t)i,
					     bits + w, (size_t)n * 8);
	}
	return ret;
}

int postcopy_switch(struct guest *g, rmig_src *s, const uint64_t *bits,
		    uint64_t *hashes, const uint64_t *fresh, const void *state,
		    size_t slen, const struct live_params *p,
		    struct live_result *r)
{
	uint64_t th;
	int ret;

	ret = rmig_src_send_devstate(s, LIVE_STATE_IDSTR, 0, state, slen);
	if (ret >= 0 && p->uuid_set)
		ret = rmig_src_send_devstate(s, LIVE_UUID_IDSTR, 0, p->uuid,
					     sizeof(p->uuid));
	if (ret >= 0)
		ret = send_missing(bits, g->pages, s);
	th = pc_now_ns();
	if (hashes)
		live_hash_pages(g, hashes, fresh);
	if (ret >= 0)
		ret = live_send_hashes(g, s, hashes);
	r->hash_ms = (double)(pc_now_ns() - th) / 1e6;
	if (ret >= 0)
		ret = p->postcopy_fn ? p->postcopy_fn(s) : rmig_src_postcopy(s);
	if (ret == -EOPNOTSUPP) {
		struct live_progress pg = { .phase = "postcopy-fallback" };

		r->fell_back = true;
		if (p->progress)
			p->progress(&pg, p->arg);
		return 0;
	}
	if (ret < 0)
		return ret;
	r->switched = true;
	return 1;
}

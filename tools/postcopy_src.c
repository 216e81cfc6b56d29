/* SPDX-License-Identifier: MIT */
/*
 * postcopy_src - the source's post-copy switch and the proof's hash list
 * (see live.h and postcopy.h).
 */
#include "postcopy.h"
#include "postcopy_int.h"

#include "par.h"

#include <errno.h>
#include <stdlib.h>

/* Hashing many pages: a part (par.h) has this many pages at least. */
#define HASH_PART_PAGES 2048

struct hash_job {
	const struct guest *g;
	uint64_t *h;
	const uint64_t *only;
};

/* Part @i of @n: the pages of whole bitmap words whose bit is set in
 * @only (all when NULL). */
static void hash_part(void *arg, unsigned i, unsigned n)
{
	const struct hash_job *j = arg;
	size_t ps = j->g->cfg.page_size;
	uint64_t words = (j->g->pages + 63) / 64;
	uint64_t end = words * (i + 1) / n * 64;

	if (end > j->g->pages)
		end = j->g->pages;
	for (uint64_t p = words * i / n * 64; p < end; p++)
		if (!j->only || (j->only[p / 64] >> (p % 64) & 1))
			j->h[p] = guest_page_hash(j->g->mem + p * ps, ps);
}

void live_hash_pages(const struct guest *g, uint64_t *h, const uint64_t *only)
{
	struct hash_job j = { .g = g, .h = h, .only = only };
	uint64_t count = only ? 0 : g->pages;

	for (uint64_t w = 0; only && w < (g->pages + 63) / 64; w++)
		count += (uint64_t)__builtin_popcountll(only[w]);
	par_run(par_parts(count, HASH_PART_PAGES), hash_part, &j);
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

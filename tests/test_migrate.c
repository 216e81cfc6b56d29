/* SPDX-License-Identifier: MIT */
/*
 * test_migrate.c - end-to-end migration over libfabric (tcp unless
 * prov=NAME) on 127.0.0.1, source and destination in separate processes.
 *
 *   test_migrate CHANNELS SIZE_MIB ROUNDS PAGE_SIZE [ppp=N] [adopt=1]
 *                [verify=each|final] [poll=1] [storm=N] [seed=N]
 *                [prov=NAME] [transport=fabric|verbs]
 *                [reg=ondemand:CHUNK:CACHE] [postcopy=1]
 *
 * The source lays out three RAM blocks (tu_image), writes round 0 (a mix of
 * random, sparse and zero pages), queues every page and syncs; each later
 * round rewrites a subset of pages (data turning to zero, zero turning to
 * data), re-queues exactly those and syncs; the last round ends with
 * rmig_src_finish().  Device-state blobs (0 bytes to several MiB, distinct
 * idstr and instance ids) go out between the pages.
 *
 * The destination pre-fills its RAM with nonzero garbage, regenerates the
 * expected image from the seed and compares byte for byte (after every sync
 * with verify=each, in which case the source waits for the verdict before
 * changing its memory), checks the blobs arrive intact and in order, and that
 * the stats agree with the model and with the source's (compared by the
 * parent).
 *
 * adopt=1: the destination sets neither channel count nor UUID and must
 * adopt the source's (the source's UUID is its random default: a UUID is
 * configured on both sides or neither).  ppp=N: pages per packet on the
 * source.  storm=N: N tiny blobs more per round.  poll=1: the
 * destination's caller polls (rmig_dest_wait_sync(1 ms), taking and
 * freeing blobs between), so blobs
 * are taken while the channel threads are still receiving.  prov=NAME: the
 * libfabric provider (e.g. sockets) for both sides.  transport=verbs: the
 * verbs provider on $RMIG_RXE_ADDR instead (tests/verbs.cmake, label rxe).
 * reg=ondemand:CHUNK:CACHE: the source registers its RAM on demand, in
 * chunks of CHUNK bytes (suffix K, M or G allowed), at most CACHE at once;
 * the source's stats must then show more registrations than CACHE when RAM
 * holds more chunks, evictions, and never more than CACHE registered.
 *
 * postcopy=1: the last round's pages are written on the source but not
 * queued; its blobs go out, then rmig_src_postcopy() and rmig_src_finish().
 * The destination, at RMIG_SYNC_POSTCOPY_SWITCH, reads every page of every
 * block back by RDMA READ (deep queues of 1 MiB or smaller reads, every
 * fifth one urgent) into a landing region, copies them into its RAM, and
 * only then calls rmig_dest_wait_sync() for the final sync (the source
 * calls rmig_src_finish() only once told the reads are done, so nothing
 * of its own drives them); the final image
 * must match, the source's memory must be unchanged, and the destination's
 * read statistics must count every byte.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/*
 * Under ThreadSanitizer the destination compares its RAM only after
 * rmig_dest_finish() (which joins the channel threads).  A comparison
 * between syncs is ordered against the next round's RDMA writes only
 * through the source process (verdict pipe -> source -> wire), an edge
 * TSan cannot see, so it would report the emulated one-sided writes
 * (libfabric's memcpy in a channel thread) as racing with the compare.
 */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif

struct opts {
	unsigned channels;
	size_t mib;
	unsigned rounds;
	size_t page_size;
	unsigned ppp; /* 0: default */
	bool adopt;
	bool verify_each;
	bool poll;      /* dest polls: wait_sync(1 ms) + recv_devstate */
	unsigned storm; /* tiny blobs more per round */
	uint64_t seed;
	uint64_t reg_chunk;  /* reg=ondemand: chunk bytes (0: pin-all) */
	unsigned reg_cache;  /* ... and chunks registered at most */
	bool postcopy;       /* the last round travels by RDMA READ */
};

/* The landing region of pull_all(), freed after the session. */
static void *pulled_land;

struct ctx {
	struct opts o;
	uint8_t uuid[16];
	struct tu_pipe addr;   /* dest -> src: bound address */
	struct tu_pipe verdict; /* dest -> src: round verified */
	struct tu_pipe dstats; /* dest -> parent */
	struct tu_pipe sstats; /* src -> parent */
};

/* ------------------------------------------------------------------ */
/* Device-state blobs.  The fixed set goes out in round min(group,
 * rounds-1); with storm=N, N tiny blobs more follow in every round.  The
 * table is built before the fork, so both sides know the order.         */

struct blob_spec {
	const char *idstr; /* NULL: the longest idstr allowed */
	uint32_t instance_id;
	size_t len;
	unsigned group;
};

static const struct blob_spec fixed_blobs[] = {
	{ "0000:00:02.0/vga", 0, 4096, 0 },
	{ "0000:00:03.0/virtio-net", 1, 0, 0 },          /* empty blob */
	{ "0000:00:04.0/vfio-pci", 2, 200000, 0 },       /* > 64 KiB */
	{ "timer", 0xffffffffu, 1, 1 },
	{ NULL, 7, 65536, 1 },                           /* max idstr */
	{ "0000:00:05.0/vfio-pci", 3, (1u << 20) + 3, 1 },
	{ "0000:00:04.0/vfio-pci", 4, 65537, 2 },        /* same idstr */
	{ "cpu/0", 5, 65536 - 300, 2 },
	{ "cpu/1", 6, (3u << 20) + 5, 2 },
	{ "apic", 8, 0, 2 },                             /* empty, last */
};
#define NFIXED (sizeof(fixed_blobs) / sizeof(fixed_blobs[0]))
#define BLOB_MAX_LEN ((3u << 20) + 5)

struct blob {
	char idstr[RMIG_IDSTR_MAX];
	uint32_t instance_id;
	size_t len;
	unsigned round;
};

static struct blob *blobs;
static unsigned nblobs;

static bool build_blobs(const struct opts *o)
{
	blobs = calloc(NFIXED + (size_t)o->storm * o->rounds, sizeof(*blobs));
	if (!blobs)
		return false;
	for (unsigned r = 0; r < o->rounds; r++) {
		for (unsigned i = 0; i < NFIXED; i++) {
			const struct blob_spec *f = &fixed_blobs[i];
			struct blob *b = &blobs[nblobs];

			if ((f->group < o->rounds ? f->group : o->rounds - 1) !=
			    r)
				continue;
			if (f->idstr) {
				snprintf(b->idstr, sizeof(b->idstr), "%s",
					 f->idstr);
			} else {
				memset(b->idstr, 'x', RMIG_IDSTR_MAX - 1);
				memcpy(b->idstr, "longest/", 8);
			}
			b->instance_id = f->instance_id;
			b->len = f->len;
			b->round = r;
			nblobs++;
		}
		for (unsigned i = 0; i < o->storm; i++) {
			struct blob *b = &blobs[nblobs];

			snprintf(b->idstr, sizeof(b->idstr), "storm/%u/%u", r,
				 i);
			b->instance_id = 1000 + nblobs;
			b->len = i % 97;
			b->round = r;
			nblobs++;
		}
	}
	return true;
}

static void blob_data(const struct opts *o, unsigned i, uint8_t *buf)
{
	uint64_t x = (o->seed ^ (0x9e3779b97f4a7c15ull * (i + 1))) | 1;

	for (size_t k = 0; k < blobs[i].len; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[k] = (uint8_t)(x >> 24);
	}
}

static unsigned blobs_until(unsigned round)
{
	unsigned n = 0;

	for (unsigned i = 0; i < nblobs; i++)
		if (blobs[i].round <= round)
			n++;
	return n;
}

static int wait_ms(const struct opts *o)
{
	return 30000 + (int)o->mib * 100;
}

/* reg=ondemand: the source's registration stats.  RAM holding more chunks
 * than the cache, chunks came and went; never more than the cache at
 * once. */
static bool check_ondemand_stats(const struct rmig_stats *st,
				 const struct opts *o,
				 const struct tu_image *im)
{
	uint64_t chunks = 0;
	bool ok;

	for (unsigned b = 0; b < im->nblocks; b++)
		chunks += (im->b[b].len + o->reg_chunk - 1) / o->reg_chunk;
	tu_msg("src: on demand, %" PRIu64 " chunks of %" PRIu64 " bytes, "
	       "cache %u: %" PRIu64 " registrations, %" PRIu64 " evictions, "
	       "at most %" PRIu64 " registered", chunks, o->reg_chunk,
	       o->reg_cache, st->registrations, st->reg_evictions,
	       st->reg_cached_max);
	ok = TU_CHECK(st->reg_cached_max >= 1 &&
			      st->reg_cached_max <= o->reg_cache,
		      "at most %" PRIu64 " chunks registered, cache %u",
		      st->reg_cached_max, o->reg_cache);
	ok &= TU_CHECK(st->reg_evictions <= st->registrations,
		       "%" PRIu64 " evictions of %" PRIu64 " registrations",
		       st->reg_evictions, st->registrations);
	if (chunks > o->reg_cache)
		ok &= TU_CHECK(st->registrations > o->reg_cache &&
				       st->reg_evictions > 0,
			       "%" PRIu64 " chunks, cache %u, but %" PRIu64
			       " registrations and %" PRIu64 " evictions",
			       chunks, o->reg_cache, st->registrations,
			       st->reg_evictions);
	return ok;
}

/* The checks both sides' final stats pass (@who: "src" or "dest"); the
 * model sent @normal and @zero pages. */
static bool check_final_stats(const char *who, const struct rmig_stats *st,
			      const struct opts *o, uint64_t normal,
			      uint64_t zero)
{
	bool ok;

	tu_print_stats(who, st);
	ok = tu_stats_coherent(st, o->channels);
	ok &= TU_CHECK(st->normal_pages == normal && st->zero_pages == zero,
		       "%s counted %" PRIu64 " normal / %" PRIu64
		       " zero pages, model says %" PRIu64 " / %" PRIu64,
		       who, st->normal_pages, st->zero_pages, normal, zero);
	ok &= TU_CHECK(st->devstate_blobs == nblobs, "blobs %" PRIu64,
		       st->devstate_blobs);
	ok &= TU_CHECK(st->bytes >= normal * o->page_size,
		       "bytes %" PRIu64 " < page bytes", st->bytes);
	ok &= TU_CHECK(st->state == RMIG_STATE_COMPLETED, "stats state %s",
		       rmig_state_name(st->state));
	return ok;
}

/* ------------------------------------------------------------------ */
/* Source                                                              */

static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Queue one round's pages, mixing the two queue calls and the blocks so
 * that queue_pages() must flush a partial queue_page() batch. */
static bool queue_round(rmig_src *s, const struct tu_image *im,
			unsigned round, uint64_t **offs, const size_t *n)
{
	uint64_t x = 0x1234567ull + round;
	size_t chunks[] = { 1, 7, 1000, 129, 4096, 33 };
	size_t i, c = 0;

	if (round % 2) { /* odd rounds: block 0 in random order */
		for (i = n[0]; i > 1; i--) {
			size_t j = rng_next(&x) % i;
			uint64_t t = offs[0][i - 1];

			offs[0][i - 1] = offs[0][j];
			offs[0][j] = t;
		}
	}
	/* block 1 one page at a time: leaves a partial batch behind */
	for (i = 0; i < n[1]; i++)
		if (!TU_RMIG_OK(rmig_src_queue_page(s, 1, offs[1][i])))
			return false;
	/* block 0 in chunks of varying size */
	for (i = 0; i < n[0]; c++) {
		size_t k = chunks[c % (sizeof(chunks) / sizeof(chunks[0]))];

		if (k > n[0] - i)
			k = n[0] - i;
		if (!TU_RMIG_OK(rmig_src_queue_pages(s, 0, offs[0] + i, k)))
			return false;
		i += k;
	}
	/* block 2: half singly, the rest at once */
	for (i = 0; i < n[2] / 2; i++)
		if (!TU_RMIG_OK(rmig_src_queue_page(s, 2, offs[2][i])))
			return false;
	if (n[2] - i &&
	    !TU_RMIG_OK(rmig_src_queue_pages(s, 2, offs[2] + i, n[2] - i)))
		return false;
	return true;
}

static bool send_blobs(rmig_src *s, const struct opts *o, unsigned round,
		       uint8_t *buf)
{
	for (unsigned i = 0; i < nblobs; i++) {
		if (blobs[i].round != round)
			continue;
		blob_data(o, i, buf);
		if (!TU_RMIG_OK(rmig_src_send_devstate(s, blobs[i].idstr,
						      blobs[i].instance_id,
						      buf, blobs[i].len)))
			return false;
		/* The bytes are copied before the call returns. */
		memset(buf, 0xee, blobs[i].len);
	}
	return true;
}

static int run_src(void *arg)
{
	struct ctx *cx = arg;
	struct opts *o = &cx->o;
	struct tu_image im;
	struct rmig_config cfg;
	struct rmig_stats st = { .size = sizeof(st) };
	char addr[TU_ADDR_MAX];
	uint64_t *offs[TU_MAX_BLOCKS] = { 0 };
	size_t n[TU_MAX_BLOCKS];
	uint64_t normal = 0, zero = 0, t0, bytes_queued = 0;
	struct tu_baseline base = tu_take_baseline();
	uint8_t *blobbuf = NULL;
	rmig_src *s = NULL;
	bool ok = false;

	if (tu_image_setup(&im, o->mib << 20, o->page_size, o->seed, false))
		return 1;
	blobbuf = malloc(BLOB_MAX_LEN);
	if (!tu_offs_alloc(offs, &im) || !blobbuf)
		goto out;

	if (!TU_CHECK(!tu_recv_str(cx->addr.r, addr, 30000),
		      "no address from the destination"))
		goto out;
	/* adopt=1: no UUID on either side (the source's is then random, and
	 * the destination adopts it from the HANDSHAKE): a UUID configured
	 * on one side only fails authentication (docs/security.rst). */
	tu_config(&cfg, addr, o->channels, o->page_size,
		  o->adopt ? NULL : cx->uuid);
	if (o->ppp) {
		cfg.field_mask |= RMIG_CFG_PAGES_PER_PACKET;
		cfg.pages_per_packet = o->ppp;
	}
	if (o->reg_chunk) {
		cfg.field_mask |= RMIG_CFG_REG_MODE;
		cfg.reg_mode = RMIG_REG_ON_DEMAND;
		cfg.reg_chunk_size = o->reg_chunk;
		cfg.reg_cache_chunks = o->reg_cache;
	}
	if (!tu_src_open(&s, &cfg, &im, true))
		goto out;
	t0 = tu_now_ns();
	if (!TU_RMIG_OK(rmig_src_connect(s)))
		goto out;
	tu_msg("connected to %s, %u channel(s), in %.1f ms", addr,
	       o->channels, tu_ms_since(t0));
	if (!TU_CHECK(rmig_src_state(s) == RMIG_STATE_ACTIVE, "state %s",
		      rmig_state_name(rmig_src_state(s))))
		goto out;

	for (unsigned r = 0; r < o->rounds; r++) {
		uint64_t n0 = normal, z0 = zero, tr = tu_now_ns();
		size_t pages;

		tu_image_write_round(&im, r, offs, n, &normal, &zero);
		pages = n[0] + n[1] + n[2];
		if (o->postcopy && r + 1 == o->rounds) {
			/* Not queued: the destination reads them. */
			normal = n0;
			zero = z0;
			if (!send_blobs(s, o, r, blobbuf) ||
			    !TU_RMIG_OK(rmig_src_postcopy(s)))
				goto out;
			tu_msg("round %u: %zu pages left to the destination's "
			       "reads (post-copy switch in %.1f ms)", r, pages,
			       tu_ms_since(tr));
			tr = tu_now_ns();
			/* Finish only once the destination has read it all:
			 * the reads must be answered by a source that is not
			 * in any call of the library. */
			uint64_t v = UINT64_MAX;

			if (!TU_CHECK(!tu_recv_u64(cx->verdict.r, &v,
						   wait_ms(o)) &&
					      v == o->rounds,
				      "no word from the destination's pull "
				      "(got %" PRIu64 ")", v))
				goto out;
			tu_msg("the destination read it all in %.1f ms",
			       tu_ms_since(tr));
			if (!TU_RMIG_OK(rmig_src_finish(s)))
				goto out;
			tu_msg("finished when the destination had read them, "
			       "%.1f ms after the switch", tu_ms_since(tr));
			continue;
		}
		if (!queue_round(s, &im, r, offs, n) ||
		    !send_blobs(s, o, r, blobbuf))
			goto out;
		if (r + 1 < o->rounds) {
			if (!TU_RMIG_OK(rmig_src_sync(s)))
				goto out;
		} else if (!TU_RMIG_OK(rmig_src_finish(s))) {
			goto out;
		}
		bytes_queued += (normal - n0) * o->page_size;
		tu_msg("round %u: %zu pages (%" PRIu64 " normal, %" PRIu64
		       " zero) %s in %.1f ms",
		       r, pages, normal - n0, zero - z0,
		       r + 1 < o->rounds ? "synced" : "finished",
		       tu_ms_since(tr));
		if (o->verify_each && r + 1 < o->rounds) {
			uint64_t v = UINT64_MAX;

			/* Do not touch memory until the destination has
			 * compared its image of this round. */
			if (!TU_CHECK(!tu_recv_u64(cx->verdict.r, &v,
						   wait_ms(o)) &&
					      v == r,
				      "no verdict for round %u from the "
				      "destination (got %" PRIu64 ")",
				      r, v))
				goto out;
		}
	}
	tu_msg("migrated %" PRIu64 " MiB of page data in %.1f ms (%.0f MB/s)",
	       bytes_queued >> 20, tu_ms_since(t0),
	       (double)bytes_queued / 1e3 / tu_ms_since(t0));
	if (!TU_CHECK(rmig_src_state(s) == RMIG_STATE_COMPLETED, "state %s",
		      rmig_state_name(rmig_src_state(s))))
		goto out;
	if (!TU_RMIG_OK(rmig_src_get_stats(s, &st)))
		goto out;
	ok = check_final_stats("src", &st, o, normal, zero);
	if (o->reg_chunk)
		ok &= check_ondemand_stats(&st, o, &im);
	ok &= TU_CHECK(!tu_write_all(cx->sstats.w, &st, sizeof(st)),
		       "stats pipe");
	/* The library only reads source memory. */
	ok &= TU_CHECK(tu_image_verify(&im, o->rounds - 1) == 0,
		       "source memory changed under the library");
out:
	ok &= tu_src_destroy(s, &base, 0);
	tu_offs_free(offs);
	free(blobbuf);
	tu_image_free(&im);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* Destination                                                         */

static bool check_blob(const struct opts *o, unsigned i,
		       const struct rmig_devstate *ds, uint8_t *buf)
{
	const char *idstr = blobs[i].idstr;

	if (!TU_CHECK(!strcmp(ds->idstr, idstr) &&
			      ds->instance_id == blobs[i].instance_id,
		      "blob %u arrived as \"%.40s\"/%u, want \"%.40s\"/%u "
		      "(order or identity wrong)",
		      i, ds->idstr, ds->instance_id, idstr,
		      blobs[i].instance_id))
		return false;
	if (!TU_CHECK(ds->len == blobs[i].len,
		      "blob %u (%s): %zu bytes, want %zu", i, idstr, ds->len,
		      blobs[i].len))
		return false;
	blob_data(o, i, buf);
	if (ds->len && !TU_CHECK(ds->data && !memcmp(ds->data, buf, ds->len),
				 "blob %u (%s): content differs", i, idstr))
		return false;
	return true;
}

/* Take every blob that is ready.  After the sync of round @round (< 0:
 * no sync yet) at least the ones sent in rounds <= @round must be there
 * (exactly those when the source waits for our verdict). */
static bool drain_blobs(rmig_dest *d, const struct opts *o, int round,
			unsigned *got, uint8_t *buf, bool exact)
{
	unsigned want = round < 0 ? 0 : blobs_until((unsigned)round);
	struct rmig_devstate *ds;
	int ret;

	while ((ret = rmig_dest_recv_devstate(d, &ds)) == 0) {
		bool good = TU_CHECK(*got < nblobs, "more blobs than sent") &&
			    check_blob(o, *got, ds, buf);

		rmig_devstate_free(ds);
		if (!good)
			return false;
		(*got)++;
	}
	if (!TU_CHECK(ret == -EAGAIN, "rmig_dest_recv_devstate: %d (%s)", ret,
		      rmig_last_error()))
		return false;
	if (round < 0)
		return true;
	return TU_CHECK(exact ? *got == want : *got >= want,
			"after round %d: %u blob(s) received, want %s%u", round,
			*got, exact ? "" : ">= ", want);
}

/* Post-copy: read every byte of every block back from the source. */
#define PULL_SLOTS 16
#define PULL_CHUNK (256u << 10)

struct pulled {
	uint64_t reads, bytes;
};

static bool pull_all(rmig_dest *d, struct tu_image *im, struct pulled *pl)
{
	struct rmig_read_req req[PULL_SLOTS], *done[PULL_SLOTS];
	unsigned nfree = PULL_SLOTS, inflight = 0, b = 0;
	unsigned free_slots[PULL_SLOTS];
	uint8_t *land = aligned_alloc(4096, PULL_SLOTS * PULL_CHUNK);
	uint64_t off = 0, t0 = tu_now_ns();
	bool ok = false;

	if (!TU_CHECK(land, "no memory for the landing region"))
		return false;
	if (!TU_RMIG_OK(rmig_dest_read_region(d, land,
					      PULL_SLOTS * PULL_CHUNK)))
		goto out;
	for (unsigned i = 0; i < PULL_SLOTS; i++)
		free_slots[i] = i;
	for (;;) {
		while (nfree && b < im->nblocks) {
			uint64_t left = im->b[b].len - off;
			unsigned sl = free_slots[--nfree];
			struct rmig_read_req *q = &req[sl];

			*q = (struct rmig_read_req){
				.block = (int)b, .offset = off,
				.len = left < PULL_CHUNK ? left : PULL_CHUNK,
				.buf = land + (size_t)sl * PULL_CHUNK,
				.user = (void *)(uintptr_t)sl,
			};
			if (!TU_RMIG_OK(rmig_dest_read_submit(
					d, q, pl->reads % 5 ? 0 :
					RMIG_READ_URGENT)))
				goto out;
			pl->reads++;
			inflight++;
			off += q->len;
			if (off == im->b[b].len) {
				b++;
				off = 0;
			}
		}
		if (!inflight)
			break;
		int n = rmig_dest_read_wait(d, done, PULL_SLOTS, 30000);

		if (!TU_CHECK(n > 0, "read_wait returned %d: %s", n,
			      rmig_last_error()))
			goto out;
		for (int i = 0; i < n; i++) {
			struct rmig_read_req *q = done[i];

			if (!TU_CHECK(q->status == 0, "read of block %d at "
				      "0x%" PRIx64 " failed: %d", q->block,
				      q->offset, q->status))
				goto out;
			memcpy(im->b[q->block].mem + q->offset, q->buf, q->len);
			pl->bytes += q->len;
			free_slots[nfree++] = (unsigned)(uintptr_t)q->user;
			inflight--;
		}
	}
	tu_msg("post-copy: read %" PRIu64 " MiB back in %" PRIu64 " reads, "
	       "%.1f ms", pl->bytes >> 20, pl->reads, tu_ms_since(t0));
	ok = true;
out:
	/* Registered until destroy, which also ends every read still
	 * posted after a failure: freed after it. */
	pulled_land = land;
	return ok;
}

static int run_dest(void *arg)
{
	struct ctx *cx = arg;
	struct opts *o = &cx->o;
	struct tu_image im;
	struct rmig_config cfg;
	struct rmig_stats st = { .size = sizeof(st) };
	char addr[TU_ADDR_MAX];
	uint64_t normal = 0, zero = 0, cleared = 0, t0;
	struct tu_baseline base = tu_take_baseline();
	unsigned got = 0, r = 0;
	struct pulled pulled = { 0 };
	uint8_t *hasdata[TU_MAX_BLOCKS] = { 0 };
	uint8_t *blobbuf = malloc(BLOB_MAX_LEN);
	rmig_dest *d = NULL;
	bool ok = false;
	int ret;

	if (!TU_CHECK(blobbuf, "no memory for the blobs") ||
	    tu_image_setup(&im, o->mib << 20, o->page_size, o->seed, true)) {
		free(blobbuf);
		return 1;
	}
	/* The model: what the stats must say, and which zero pages find
	 * garbage (or earlier data) to clear. */
	for (unsigned b = 0; b < im.nblocks; b++) {
		hasdata[b] = malloc(tu_image_pages(&im, b));
		if (!hasdata[b])
			goto out;
		memset(hasdata[b], 1, tu_image_pages(&im, b));
	}
	for (unsigned rr = 0; rr < o->rounds - o->postcopy; rr++)
		for (unsigned b = 0; b < im.nblocks; b++)
			for (uint64_t p = 0; p < tu_image_pages(&im, b); p++) {
				if (!tu_changed(&im, rr, b, p))
					continue;
				if (tu_kind_at(&im, rr, b, p) != TU_ZERO) {
					normal++;
					hasdata[b][p] = 1;
					continue;
				}
				zero++;
				cleared += hasdata[b][p];
				hasdata[b][p] = 0;
			}

	tu_config(&cfg, tu_listen_addr(), o->adopt ? 0 : o->channels,
		  o->page_size, o->adopt ? NULL : cx->uuid);
	if (!tu_dest_listen(&d, &cfg, &im, true, addr))
		goto out;
	if (!TU_CHECK(tu_addr_on_host(addr),
		      "bound address \"%s\" is not %s:<port>", addr,
		      tu_host()))
		goto out;
	tu_msg("listening on %s", addr);
	if (tu_send_str(cx->addr.w, addr))
		goto out;
	t0 = tu_now_ns();
	if (!TU_RMIG_OK(rmig_dest_accept(d, 30000)))
		goto out;
	tu_msg("accepted in %.1f ms", tu_ms_since(t0));
	if (!TU_CHECK(rmig_dest_state(d) == RMIG_STATE_ACTIVE, "state %s",
		      rmig_state_name(rmig_dest_state(d))))
		goto out;

	t0 = tu_now_ns();
	for (;;) {
		if (o->poll) {
			/* A caller that polls: take blobs as they come (the
			 * library hands them over while its channel threads
			 * are still receiving), look for the sync every ms. */
			if (!drain_blobs(d, o, -1, &got, blobbuf, false))
				goto out;
			ret = rmig_dest_wait_sync(d, 1);
			if (ret == -ETIMEDOUT && tu_ms_since(t0) < wait_ms(o))
				continue;
			t0 = tu_now_ns();
		} else {
			ret = rmig_dest_wait_sync(d, wait_ms(o));
		}
		if (!TU_RMIG_OK(ret))
			goto out;
		if (ret == 1)
			break;
		if (ret == RMIG_SYNC_POSTCOPY_SWITCH) {
			if (!TU_CHECK(o->postcopy && r + 1 == o->rounds,
				      "post-copy switch in round %u of %u", r,
				      o->rounds) ||
			    !pull_all(d, &im, &pulled) ||
			    tu_send_u64(cx->verdict.w, o->rounds))
				goto out;
			continue;
		}
		if (!TU_CHECK(ret == 0 && r + 1 < o->rounds,
			      "wait_sync returned %d for round %u of %u", ret,
			      r, o->rounds))
			goto out;
		if (!drain_blobs(d, o, (int)r, &got, blobbuf, o->verify_each))
			goto out;
		if (o->verify_each) {
			uint64_t tv = tu_now_ns();

			if (!TU_CHECK(tu_image_verify(&im, r) == 0,
				      "image differs after round %u", r))
				goto out;
			tu_msg("round %u verified in %.1f ms", r,
			       tu_ms_since(tv));
			if (tu_send_u64(cx->verdict.w, r))
				goto out;
		}
		r++;
	}
	if (!TU_CHECK(r + 1 == o->rounds,
		      "final sync after %u syncs, want %u", r, o->rounds - 1))
		goto out;
	if (!drain_blobs(d, o, (int)r, &got, blobbuf, true))
		goto out;
	if (!TU_RMIG_OK(rmig_dest_finish(d)))
		goto out;
	if (!TU_CHECK(rmig_dest_state(d) == RMIG_STATE_COMPLETED, "state %s",
		      rmig_state_name(rmig_dest_state(d))))
		goto out;
	t0 = tu_now_ns();
	if (!TU_CHECK(tu_image_verify(&im, o->rounds - 1) == 0,
		      "final image differs"))
		goto out;
	tu_msg("final image verified (%zu MiB) in %.1f ms", o->mib,
	       tu_ms_since(t0));

	if (!TU_RMIG_OK(rmig_dest_get_stats(d, &st)))
		goto out;
	ok = check_final_stats("dest", &st, o, normal, zero);
	ok &= TU_CHECK(st.zero_pages_cleared == cleared,
		       "zero_pages_cleared %" PRIu64 ", model says %" PRIu64
		       " (zero pages that found data)",
		       st.zero_pages_cleared, cleared);
	ok &= TU_CHECK(st.rejected_handshakes == 0, "rejected %" PRIu64,
		       st.rejected_handshakes);
	ok &= TU_CHECK(st.postcopy_read_bytes == pulled.bytes &&
			       st.postcopy_reads == pulled.reads,
		       "read stats %" PRIu64 " reads, %" PRIu64 " bytes; "
		       "pulled %" PRIu64 " / %" PRIu64, st.postcopy_reads,
		       st.postcopy_read_bytes, pulled.reads, pulled.bytes);
	for (unsigned b = 0; b < im.nblocks; b++) {
		int64_t n = rmig_dest_block_received(d, (int)b);

		ok &= TU_CHECK(n == (int64_t)tu_image_pages(&im, b),
			       "block %u: %" PRId64 " pages received, has %"
			       PRIu64, b, n, tu_image_pages(&im, b));
	}
	ok &= TU_CHECK(!tu_write_all(cx->dstats.w, &st, sizeof(st)),
		       "stats pipe");
out:
	ok &= tu_dest_destroy(d, &base, 0);
	free(pulled_land);
	for (unsigned b = 0; b < TU_MAX_BLOCKS; b++)
		free(hasdata[b]);
	free(blobbuf);
	tu_image_free(&im);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* Parent                                                              */

static bool compare_stats(const struct rmig_stats *s,
			  const struct rmig_stats *d, unsigned channels)
{
	bool ok = true;

#define SAME(f)                                                              \
	(ok &= TU_CHECK(s->f == d->f, #f ": src %" PRIu64 ", dest %" PRIu64, \
			(uint64_t)s->f, (uint64_t)d->f))
	SAME(channels);
	SAME(packets);
	SAME(normal_pages);
	SAME(zero_pages);
	SAME(syncs);
	SAME(devstate_blobs);
	SAME(devstate_bytes);
	for (unsigned i = 0; i < channels; i++) {
		SAME(channel[i].packets);
		SAME(channel[i].normal_pages);
		SAME(channel[i].zero_pages);
		SAME(channel[i].syncs);
	}
#undef SAME
	return ok;
}

static int usage(void)
{
	fprintf(stderr, "usage: test_migrate CHANNELS SIZE_MIB ROUNDS "
			"PAGE_SIZE [ppp=N] [adopt=1] [verify=each|final] "
			"[poll=1] [storm=N] [seed=N] [prov=NAME] "
			"[transport=fabric|verbs] "
			"[reg=ondemand:CHUNK:CACHE] [postcopy=1]\n");
	return 2;
}

/* "ondemand:CHUNK:CACHE", CHUNK with an optional K, M or G suffix. */
static bool parse_reg(const char *v, struct opts *o)
{
	char *end;
	unsigned long long n;

	if (strncmp(v, "ondemand:", 9))
		return false;
	v += 9;
	n = strtoull(v, &end, 0);
	if (end == v)
		return false;
	switch (*end) {
	case 'K': n <<= 10; end++; break;
	case 'M': n <<= 20; end++; break;
	case 'G': n <<= 30; end++; break;
	default: break;
	}
	if (*end != ':' || !n)
		return false;
	o->reg_chunk = n;
	v = end + 1;
	o->reg_cache = (unsigned)strtoul(v, &end, 0);
	return end != v && !*end && o->reg_cache;
}

int main(int argc, char **argv)
{
	static struct ctx cx;
	struct opts *o = &cx.o;
	struct tu_child ch[2];
	struct rmig_stats ss, ds;
	uint64_t blob_bytes = 0, t0 = tu_now_ns();
	int rc;

	if (argc < 5)
		return usage();
	o->channels = (unsigned)strtoul(argv[1], NULL, 0);
	o->mib = tu_cap_mib(strtoull(argv[2], NULL, 0));
	o->rounds = (unsigned)strtoul(argv[3], NULL, 0);
	o->page_size = strtoull(argv[4], NULL, 0);
	o->seed = 0x5eed0000ull + o->channels * 1000 + o->mib;
	o->verify_each = o->mib <= 256 && !TU_TSAN;
	for (int i = 5; i < argc; i++) {
		if (!strncmp(argv[i], "ppp=", 4))
			o->ppp = (unsigned)strtoul(argv[i] + 4, NULL, 0);
		else if (!strcmp(argv[i], "adopt=1"))
			o->adopt = true;
		else if (!strcmp(argv[i], "verify=each"))
			o->verify_each = true;
		else if (!strcmp(argv[i], "verify=final"))
			o->verify_each = false;
		else if (!strcmp(argv[i], "poll=1"))
			o->poll = true;
		else if (!strcmp(argv[i], "postcopy=1"))
			o->postcopy = true;
		else if (!strncmp(argv[i], "storm=", 6))
			o->storm = (unsigned)strtoul(argv[i] + 6, NULL, 0);
		else if (!strncmp(argv[i], "seed=", 5))
			o->seed = strtoull(argv[i] + 5, NULL, 0);
		else if (!strncmp(argv[i], "prov=", 5) && argv[i][5])
			tu_set_fabric_provider(argv[i] + 5);
		else if (!strncmp(argv[i], "reg=", 4)) {
			if (!parse_reg(argv[i] + 4, o))
				return usage();
		}
		else if (!strncmp(argv[i], "transport=", 10)) {
			int r = tu_set_transport(argv[i] + 10);

			if (r)
				return r == -ENODEV ? 77 : usage();
		} else
			return usage();
	}
	if (o->verify_each && TU_TSAN)
		tu_msg("verify=each under TSan: expect reports of the "
		       "emulated RDMA writes racing with the compare");
	if (!o->channels || o->channels > RMIG_MAX_CHANNELS || !o->rounds ||
	    (o->postcopy && o->rounds < 2) ||
	    (o->page_size != 4096 && o->page_size != (2u << 20)))
		return usage();
	if (!build_blobs(o))
		return 1;
	for (unsigned i = 0; i < nblobs; i++)
		blob_bytes += blobs[i].len;
	tu_msg("test_migrate: %s/%s, %u channel(s), %zu MiB, %u round(s), "
	       "page %zu, ppp %u, %s, verify %s, %s, %u blobs (%" PRIu64
	       " bytes), seed 0x%" PRIx64 ", source registration %s "
	       "(chunk %" PRIu64 ", cache %u)", tu_provider_name(),
	       tu_transport_verbs() ? tu_host() : tu_fabric_provider(),
	       o->channels, o->mib, o->rounds, o->page_size, o->ppp,
	       o->adopt ? "dest adopts channels+uuid" : "dest configured",
	       o->verify_each ? "each round" : "final",
	       o->poll ? "dest polls" : "dest waits", nblobs, blob_bytes,
	       o->seed, o->reg_chunk ? "on demand" : "pin-all", o->reg_chunk,
	       o->reg_cache);
	signal(SIGPIPE, SIG_IGN);
	tu_uuid(cx.uuid, o->seed);
	if (tu_pipe_open(&cx.addr) || tu_pipe_open(&cx.verdict) ||
	    tu_pipe_open(&cx.dstats) || tu_pipe_open(&cx.sstats))
		return 1;
	if (tu_spawn(&ch[0], "dest", run_dest, &cx) ||
	    tu_spawn(&ch[1], "src", run_src, &cx))
		return 1;
	rc = tu_wait_children(ch, 2, tu_deadline(), 15000);
	if (!rc) {
		bool ok = TU_CHECK(!tu_read_all(cx.sstats.r, &ss, sizeof(ss),
						1000) &&
					   !tu_read_all(cx.dstats.r, &ds,
							sizeof(ds), 1000),
				   "stats from the children");

		ok = ok && compare_stats(&ss, &ds, o->channels);
		ok = ok && TU_CHECK(ds.devstate_bytes == blob_bytes,
				    "devstate_bytes %" PRIu64 ", sent %" PRIu64,
				    ds.devstate_bytes, blob_bytes);
		rc = ok ? 0 : 1;
	}
	return tu_report(rc, t0);
}

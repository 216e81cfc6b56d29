/* SPDX-License-Identifier: MIT */
/*
 * live - pre-copy live migration driver (see live.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "live.h"
#include "postcopy.h"

#include <openssl/sha.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_CHUNK 4096 /* pages per queue call, at most ... */
#define QUEUE_CHUNK_BYTES (8u << 20) /* ... and this many bytes */
#define GIVE_UP_AT_MAX 3 /* whole throttle periods at the maximum: give up */
/* Post-copy's proof: passes over the pages written while the image was
 * hashed, at most, before the pause; a pass that found fewer is the last. */
#define PREHASH_PASSES 3
#define PREHASH_ENOUGH 256

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void live_fail(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf[0]) /* first error wins */
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

void live_params_default(struct live_params *p)
{
	*p = (struct live_params){
		.downtime_limit_ms = 300,
		.max_rounds = 100,
		.auto_converge = true,
		.throttle_initial = 20,
		.throttle_increment = 10,
		.throttle_max = 99,
		.dirty_mode = DIRTY_AUTO,
		.progress_interval_s = 0.2,
		.throttle_period_s = 0.2,
		.postcopy_after = 1,
	};
}

/* The driver's view of the round being sent, for progress updates. */
struct round_ctx {
	const struct live_params *p;
	struct guest *g;
	rmig_src *s;
	int block;
	uint64_t *offs;
	size_t chunk;           /* pages per rmig_src_queue_pages() call */
	unsigned round;
	uint64_t round_pages;   /* the round's dirty set */
	uint64_t pages0, bytes0; /* library stats at the round's start */
	double t_round, t0;     /* round start, migration start */
	double next_progress;
	double expected_ms;     /* latest estimate, -1 none */
	bool paused;            /* stop-and-copy: no updates in the downtime */
};

static int src_stats(rmig_src *s, struct rmig_stats *st)
{
	st->size = sizeof(*st);
	return rmig_src_get_stats(s, st);
}

static uint64_t wire_bytes(rmig_src *s)
{
	struct rmig_stats st;

	return src_stats(s, &st) < 0 ? 0 : st.bytes;
}

static void round_begin(struct round_ctx *rc, unsigned round, uint64_t pages)
{
	struct rmig_stats st;

	rc->round = round;
	rc->round_pages = pages;
	rc->pages0 = rc->bytes0 = 0;
	if (src_stats(rc->s, &st) == 0) {
		rc->pages0 = st.normal_pages + st.zero_pages;
		rc->bytes0 = st.bytes;
	}
	rc->t_round = now_s();
	rc->next_progress = rc->t_round + rc->p->progress_interval_s;
}

/* During a round: what the library has sent of it so far. */
static void round_progress(struct round_ctx *rc)
{
	struct live_progress pg = { .phase = "sending" };
	struct rmig_stats st;
	double t = now_s();
	uint64_t sent;

	if (!rc->p->progress || rc->paused || t < rc->next_progress ||
	    src_stats(rc->s, &st) < 0)
		return;
	rc->next_progress = t + rc->p->progress_interval_s;
	sent = st.normal_pages + st.zero_pages - rc->pages0;
	pg.round = rc->round;
	pg.dirty_pages = sent < rc->round_pages ? rc->round_pages - sent : 0;
	pg.gbps = t > rc->t_round ? (double)(st.bytes - rc->bytes0) /
				    (t - rc->t_round) / 1e9 : 0;
	pg.expected_ms = rc->expected_ms;
	pg.throttle = atomic_load(&rc->g->throttle);
	pg.elapsed_s = t - rc->t0;
	rc->p->progress(&pg, rc->p->arg);
}

/* Queue every page whose bit is set in @bits and clear the bits. */
static int queue_bits(struct round_ctx *rc, uint64_t *bits, uint64_t pages,
		      size_t page_size)
{
	uint64_t *offs = rc->offs;
	size_t n = 0;
	int ret;

	for (uint64_t w = 0; w < (pages + 63) / 64; w++) {
		uint64_t x = bits[w];

		bits[w] = 0;
		while (x) {
			unsigned b = (unsigned)__builtin_ctzll(x);

			x &= x - 1;
			offs[n++] = (w * 64 + b) * page_size;
			if (n == rc->chunk) {
				ret = rmig_src_queue_pages(rc->s, rc->block,
							   offs, n);
				if (ret < 0)
					return ret;
				n = 0;
				round_progress(rc);
			}
		}
	}
	return n ? rmig_src_queue_pages(rc->s, rc->block, offs, n) : 0;
}

int live_source(struct guest *g, rmig_src *s, int block,
		const struct live_params *p, struct live_result *r)
{
	size_t ps = g->cfg.page_size;
	uint64_t pages = g->pages;
	uint64_t words = (pages + 63) / 64;
	uint64_t *bits = calloc(words, 8);
	uint64_t *offs = malloc(QUEUE_CHUNK * 8);
	uint8_t *state = NULL;
	struct dirty *dt = NULL;
	struct live_progress pg = { .phase = "round" };
	double t0 = now_s(), t, bw = 0, ram_bytes_sent = 0;
	uint64_t pending = 0, sent_pages, b0, high = 0, at_max = 0;
	double per_t0 = 0, per_dirty = 0, per_xfer = 0; /* throttle period */
	bool paused = false, state_sent = false, prepared = false;
	/* Post-copy, see hash: */
	uint64_t *hashes = NULL, *fresh = NULL, *written = NULL;
	/* Post-copy with no pre-copy round: nothing is sent before the
	 * switch, every page is missing. */
	bool precopy = !p->postcopy || p->postcopy_after > 0;
	struct round_ctx rc = {
		.p = p, .g = g, .s = s, .block = block, .offs = offs,
		.chunk = QUEUE_CHUNK_BYTES / ps < 1 ? 1 :
			 QUEUE_CHUNK_BYTES / ps > QUEUE_CHUNK ? QUEUE_CHUNK :
			 QUEUE_CHUNK_BYTES / ps,
		.t0 = t0, .expected_ms = -1,
	};
	int ret;

	memset(r, 0, sizeof(*r));
	r->expected_ms = -1;
	if (!bits || !offs) {
		ret = -ENOMEM;
		live_fail(r->error, sizeof(r->error), "out of memory");
		goto out;
	}
	ret = dirty_open(&dt, g->mem, (size_t)g->cfg.size, ps, g->cfg.mem,
			 p->dirty_mode, r->error, sizeof(r->error));
	if (ret)
		goto out;
	r->mode = dirty_mode(dt);
	/* Post-copy: the RAM registered for the destination's reads now,
	 * while the guest runs, not in the pause; and before the tracking
	 * write-protects it (verbs pins for writing before Linux 6.2, which
	 * fails on write-protected pages).  -EOPNOTSUPP: the switch says so
	 * again and falls back. */
	if (p->postcopy && !p->postcopy_fn) {
		ret = rmig_src_postcopy_prepare(s);
		if (ret < 0 && ret != -EOPNOTSUPP)
			goto lib_fail;
		prepared = ret == 0;
	}

	/* Round 1: everything. */
	for (uint64_t w = 0; w < words; w++)
		bits[w] = ~0ull;
	if (pages % 64)
		bits[words - 1] = (1ull << (pages % 64)) - 1;
	ret = dirty_start(dt, r->error, sizeof(r->error));
	if (ret)
		goto out;
	if (!precopy) {
		/* Nothing is sent before the switch: the tracking only keeps
		 * the proof's hashes of the image (hashed below, as the
		 * guest runs) true, rehashing in the pause just what the
		 * guest wrote since. */
		pending = pages;
		goto hash;
	}
	r->rounds = 1;
	t = now_s();
	b0 = wire_bytes(s);
	sent_pages = pages;
	round_begin(&rc, 1, pages);
	ret = queue_bits(&rc, bits, pages, ps);
	if (ret >= 0)
		ret = rmig_src_sync(s);
	if (ret < 0)
		goto lib_fail;

	for (;;) {
		double dt_s = now_s() - t;
		uint64_t sent = wire_bytes(s) - b0;
		uint64_t newly;

		ram_bytes_sent += (double)sent_pages * (double)ps;
		if (dt_s > 0 && sent)
			bw = (double)sent / dt_s;
		ret = dirty_harvest(dt, bits, &newly, r->error,
				    sizeof(r->error));
		if (ret)
			goto out;
		pending = newly;
		r->expected_ms = bw > 0 ? (double)pending * (double)ps / bw * 1e3 :
			      1e9;
		rc.expected_ms = r->expected_ms;
		pg.round = r->rounds;
		pg.dirty_pages = pending;
		pg.gbps = bw / 1e9;
		pg.expected_ms = r->expected_ms;
		pg.throttle = atomic_load(&g->throttle);
		pg.elapsed_s = now_s() - t0;
		if (p->progress)
			p->progress(&pg, p->arg);
		if (p->postcopy && r->rounds >= p->postcopy_after)
			break;
		/* Round 1 moved the RAM in long contiguous runs; dirty pages
		 * are scattered and move slower per byte.  So its bandwidth
		 * is trusted only for a quarter of the limit; from round 2 on
		 * the estimate comes from scattered pages like the last set. */
		if (r->expected_ms <= (r->rounds == 1 ?
				       p->downtime_limit_ms / 4 :
				       p->downtime_limit_ms)) {
			r->converged = true;
			break;
		}
		/* Auto-converge, as QEMU: over periods of at least
		 * throttle_period_s (QEMU: 1 s; a round can be far shorter
		 * than the throttle's own 10 ms period, too short to see its
		 * effect, so a step per two rounds would overshoot), when the guest
		 * dirtied more than half of what was moved, twice in a row:
		 * throttle one step more.  Round 1 (the bulk) is not part of
		 * any period. */
		if (p->auto_converge && r->rounds >= 2) {
			per_dirty += (double)pending * (double)ps;
			per_xfer += (double)sent;
		}
		if (p->auto_converge && r->rounds >= 2 &&
		    now_s() - per_t0 >= p->throttle_period_s) {
			unsigned thr = atomic_load(&g->throttle);

			if (thr >= p->throttle_max)
				at_max++; /* a whole period at the maximum */
			if (per_dirty > 0.5 * per_xfer) {
				if (++high >= 2) {
					thr = thr ? thr + p->throttle_increment :
						    p->throttle_initial;
					if (thr > p->throttle_max)
						thr = p->throttle_max;
					guest_set_throttle(g, thr);
					if (thr > r->throttle)
						r->throttle = thr;
					high = 0;
				}
			} else {
				high = 0;
			}
			per_t0 = now_s();
			per_dirty = per_xfer = 0;
		}
		if (r->rounds >= p->max_rounds ||
		    (p->auto_converge && at_max >= GIVE_UP_AT_MAX)) {
			if (p->force_finish)
				break;
			ret = -ETIMEDOUT;
			live_fail(r->error, sizeof(r->error), "did not converge: after "
			     "%u rounds %" PRIu64 " dirty pages (%.1f MB) would "
			     "take %.0f ms at %.2f GB/s, above the downtime limit "
			     "of %.0f ms%s%u%%; raise --downtime-limit, "
			     "--max-rounds or --max-throttle, lower the dirty "
			     "rate, or pass --force-finish", r->rounds, pending,
			     (double)pending * (double)ps / 1e6, r->expected_ms,
			     bw / 1e9, p->downtime_limit_ms,
			     p->auto_converge ? " with the vCPUs throttled to " :
			     " (auto-converge off) at throttle ",
			     atomic_load(&g->throttle));
			goto out;
		}
		if (p->round_hook && p->round_hook(r->rounds + 1, p->arg)) {
			ret = -ECANCELED;
			live_fail(r->error, sizeof(r->error), "stopped by the round "
			     "hook before round %u", r->rounds + 1);
			goto out;
		}
		r->rounds++;
		t = now_s();
		if (r->rounds == 2)
			per_t0 = t; /* the first throttle period */
		b0 = wire_bytes(s);
		sent_pages = pending;
		round_begin(&rc, r->rounds, pending);
		ret = queue_bits(&rc, bits, pages, ps);
		if (ret >= 0)
			ret = rmig_src_sync(s);
		if (ret < 0)
			goto lib_fail;
	}

	/* Post-copy: hash the image for the proof while the guest still
	 * runs, then a few passes over what it wrote meanwhile (each pass
	 * shorter than the last).  The pages written since their hash are in
	 * the last harvest (@fresh), hashed again in the downtime; all those
	 * written since the first hash (@written) are missing at the
	 * destination too. */
hash:
	if (p->postcopy) {
		double th = now_s();

		hashes = malloc((size_t)pages * 8);
		fresh = calloc(words, 8);
		written = calloc(words, 8);
		if (!hashes || !fresh || !written) {
			ret = -ENOMEM;
			live_fail(r->error, sizeof(r->error), "out of memory");
			goto out;
		}
		live_hash_pages(g, hashes, NULL);
		for (unsigned pass = 0; pass < PREHASH_PASSES; pass++) {
			uint64_t n = 0;

			memset(fresh, 0, words * 8);
			ret = dirty_harvest(dt, fresh, &n, r->error,
					    sizeof(r->error));
			if (ret)
				goto out;
			live_hash_pages(g, hashes, fresh);
			for (uint64_t w = 0; w < words; w++)
				written[w] |= fresh[w];
			if (n < PREHASH_ENOUGH)
				break;
		}
		memset(fresh, 0, words * 8);
		r->prehash_ms = (now_s() - th) * 1e3;
	}

	/* Stop-and-copy, or the post-copy switch. */
	{
		uint64_t pause_ns = now_ns();
		double tp = now_s();
		uint64_t newly = 0;
		size_t slen = guest_state_size(g->cfg.vcpus);

		guest_pause(g);
		paused = true;
		r->pause_ms = (now_s() - tp) * 1e3;
		ret = dirty_harvest(dt, fresh ? fresh : bits, &newly, r->error,
				    sizeof(r->error));
		if (ret)
			goto out;
		if (fresh) {
			newly = 0;
			for (uint64_t w = 0; w < words; w++) {
				written[w] |= fresh[w];
				newly += (uint64_t)__builtin_popcountll(
					written[w] & ~bits[w]);
				bits[w] |= written[w];
			}
		}
		r->harvest_ms = (now_s() - tp) * 1e3 - r->pause_ms;
		pending += newly;
		r->final_pages = pending;
		if (!p->postcopy)
			r->rounds++;
		if (p->paused_hook && p->paused_hook(p->arg)) {
			ret = -ECANCELED;
			live_fail(r->error, sizeof(r->error), "stopped by the pause "
			     "hook in stop-and-copy, the vCPUs paused");
			goto out;
		}
		state = malloc(slen);
		if (!state) {
			ret = -ENOMEM;
			live_fail(r->error, sizeof(r->error), "out of memory");
			goto out;
		}
		guest_state_encode(g, pause_ns, state);
		rc.paused = true;
		if (p->postcopy) {
			r->missing_pages = pending;
			/* Paused for good and harvested: the tracking is
			 * over.  With the read registration made ahead it is
			 * closed after the pull (its unprotecting every page
			 * kept out of the downtime); else here, before the
			 * switch registers: the kernel refuses to pin pages
			 * still write-protected by userfaultfd (ibv_reg_mr:
			 * EFAULT on Linux 6.1). */
			if (!prepared) {
				r->faults = dirty_faults(dt);
				dirty_close(dt);
				dt = NULL;
			}
			ret = postcopy_switch(g, s, bits, hashes, fresh, state,
					      slen, p, r);
			if (ret < 0)
				goto lib_fail;
			state_sent = true;
			if (ret == 1) {
				r->downtime_ms = (now_s() - tp) * 1e3;
				r->transfer_ms = r->downtime_ms - r->pause_ms -
						 r->harvest_ms;
				goto switched;
			}
			r->rounds++; /* stop-and-copy after all */
		}
		ret = queue_bits(&rc, bits, pages, ps);
		if (ret >= 0 && !state_sent)
			ret = rmig_src_send_devstate(s, LIVE_STATE_IDSTR, 0, state,
						     slen);
		if (ret >= 0)
			ret = rmig_src_sync(s);
		if (ret < 0)
			goto lib_fail;
		r->downtime_ms = (now_s() - tp) * 1e3;
		r->transfer_ms = r->downtime_ms - r->pause_ms - r->harvest_ms;
		ram_bytes_sent += (double)pending * (double)ps;
		pg.phase = "stop-and-copy";
		pg.round = r->rounds;
		pg.dirty_pages = 0;
		pg.elapsed_s = now_s() - t0;
		if (p->progress)
			p->progress(&pg, p->arg);
	}
	/* The destination's proof: hashes of the final image (sent before
	 * the switch in post-copy), then the final sync. */
	ret = state_sent ? 0 : live_send_hashes(g, s, NULL);
	if (ret >= 0)
		ret = rmig_src_finish(s);
	if (ret < 0)
		goto lib_fail;
	goto done;

switched:
	/* The guest runs at the destination, which reads what it lacks from
	 * this RAM: keep it until rmig_src_finish() says every page is
	 * there. */
	{
		struct live_progress sw = { .phase = "postcopy-switch",
					    .round = r->rounds,
					    .elapsed_s = now_s() - t0 };
		double tw = now_s();

		if (p->progress)
			p->progress(&sw, p->arg);
		if (p->switched_hook && p->switched_hook(p->arg)) {
			ret = -ECANCELED;
			live_fail(r->error, sizeof(r->error), "stopped by the switch "
			     "hook after the post-copy switch");
			goto out;
		}
		ret = rmig_src_finish(s);
		while (ret < 0 && p->recover) {
			/* Lost: the guest's RAM stays; a resumed session
			 * serves the rest of the pull. */
			struct live_progress lo = { .phase = "postcopy-lost",
						    .round = r->recoveries + 1,
						    .elapsed_s = now_s() - t0 };
			char why[512], err[512] = "";
			double tl = now_s();

			snprintf(why, sizeof(why), "%s", rmig_last_error()[0] ?
				 rmig_last_error() : strerror(-ret));
			if (p->progress)
				p->progress(&lo, p->arg);
			if (dt) {
				/* Before a resumed session registers. */
				r->faults = dirty_faults(dt);
				dirty_close(dt);
				dt = NULL;
			}
			ret = p->recover(r->recoveries + 1, &s, err,
					 sizeof(err), p->arg);
			r->outage_s += now_s() - tl;
			if (ret < 0) {
				r->gave_up = true;
				r->pull_s = now_s() - tw;
				live_fail(r->error, sizeof(r->error), "post-copy "
				     "recovery gave up after %.1f s "
				     "disconnected (session lost: %s): %s; the "
				     "guest runs at the destination, which "
				     "lacks the pages it had not pulled: they "
				     "exist only here and are lost when this "
				     "process ends; the source does not "
				     "resume the guest", r->outage_s, why, err);
				goto out;
			}
			r->recoveries++;
			lo.phase = "postcopy-resumed";
			lo.elapsed_s = now_s() - t0;
			if (p->progress)
				p->progress(&lo, p->arg);
			ret = rmig_src_finish(s);
		}
		r->pull_s = now_s() - tw;
		if (ret < 0) {
			live_fail(r->error, sizeof(r->error), "after the post-copy "
			     "switch (%.3f s into the pull): %s; the guest "
			     "runs at the destination only: the source keeps "
			     "its memory and does not resume it", r->pull_s,
			     rmig_last_error()[0] ? rmig_last_error() :
			     strerror(-ret));
			goto out;
		}
		ram_bytes_sent += (double)pending * (double)ps; /* pulled */
	}
done:
	r->total_s = now_s() - t0;
	r->gbps = r->total_s > 0 ? ram_bytes_sent / r->total_s / 1e9 : 0;
	r->ok = true;
	ret = 0;
	goto out;

lib_fail:
	live_fail(r->error, sizeof(r->error), "%s", rmig_last_error()[0] ?
	     rmig_last_error() : strerror(-ret));
out:
	if (dt) {
		r->faults = dirty_faults(dt);
		/* Tracking off before the guest runs again. */
		dirty_close(dt);
	}
	r->st.size = sizeof(r->st);
	if (s && rmig_src_get_stats(s, &r->st) == 0) {
		r->bytes = r->st.bytes;
		r->normal_pages = r->st.normal_pages;
		r->zero_pages = r->st.zero_pages;
	}
	if (!r->total_s)
		r->total_s = now_s() - t0;
	if (!r->ok) {
		/* The one promise: the guest carries on where it was. */
		guest_set_throttle(g, 0);
		/* Not after the switch: the destination may run it. */
		if (paused && !r->switched)
			guest_resume(g);
		if (!ret)
			ret = -EIO;
	}
	free(state);
	free(hashes);
	free(fresh);
	free(written);
	free(bits);
	free(offs);
	return ret;
}

void live_resume_uuid(const uint8_t first[16], unsigned attempt,
		      uint8_t out[16])
{
	static const char label[] = "rmig-resume";
	uint8_t in[16 + sizeof(label) - 1 + 4], md[SHA256_DIGEST_LENGTH];

	memcpy(in, first, 16);
	memcpy(in + 16, label, sizeof(label) - 1);
	for (unsigned i = 0; i < 4; i++)
		in[16 + sizeof(label) - 1 + i] = (uint8_t)(attempt >> (8 * i));
	SHA256(in, sizeof(in), md);
	memcpy(out, md, 16);
}

/* ------------------------------------------------------------------ */
/* Destination                                                         */

int live_compare_replay(struct guest *g, const uint64_t *steps,
			const char *what, uint64_t *sum, uint64_t *ref,
			char *err, size_t errlen)
{
	int ret;

	*sum = guest_checksum(g);
	ret = guest_replay(&g->cfg, steps, ref, err, errlen);
	if (ret)
		return ret;
	if (*sum != *ref) {
		snprintf(err, errlen, "%schecksum 0x%016" PRIx64 " differs "
			 "from the never-migrated replay's 0x%016" PRIx64,
			 what, *sum, *ref);
		return -EIO;
	}
	return 0;
}

int live_check_guest(struct guest *g, uint64_t *sum, uint64_t *ref,
		     char *err, size_t errlen)
{
	uint64_t steps[GUEST_MAX_VCPUS];

	guest_pause(g);
	for (unsigned v = 0; v < g->cfg.vcpus; v++)
		steps[v] = g->vcpu[v].st.steps;
	return live_compare_replay(g, steps, "", sum, ref, err, errlen);
}

/* Take the blobs that came with the last sync: the guest state first,
 * then the missing pages (post-copy) and the hashes, each in order. */
static int take_blobs(rmig_dest *d, struct live_blobs *b,
		      struct live_dest_result *r)
{
	uint64_t words = (b->pages + 63) / 64;
	struct rmig_devstate *ds;
	int ret = 0;

	while (!ret && rmig_dest_recv_devstate(d, &ds) == 0) {
		if (!b->have_state) {
			if (strcmp(ds->idstr, LIVE_STATE_IDSTR)) {
				live_fail(r->error, sizeof(r->error), "unexpected "
				     "device state '%s' before the guest state",
				     ds->idstr);
				ret = -EPROTO;
			} else {
				b->have_all_ns = now_ns();
				ret = guest_state_decode(ds->data, ds->len,
							 &r->cfg, b->st,
							 &b->pause_ns, r->error,
							 sizeof(r->error));
				b->have_state = !ret;
			}
		} else if (!strcmp(ds->idstr, LIVE_UUID_IDSTR) &&
			   ds->len == sizeof(b->uuid)) {
			memcpy(b->uuid, ds->data, sizeof(b->uuid));
			b->have_uuid = true;
		} else if (!strcmp(ds->idstr, LIVE_MISSING_IDSTR) &&
			   !b->nhash && ds->len % 8 == 0 &&
			   ds->instance_id == b->nmissing_words /
					      LIVE_MISSING_WORDS &&
			   b->nmissing_words + ds->len / 8 <= words) {
			memcpy(b->missing + b->nmissing_words, ds->data,
			       ds->len);
			b->nmissing_words += ds->len / 8;
		} else if (!strcmp(ds->idstr, LIVE_HASH_IDSTR) &&
			   ds->len % 8 == 0 &&
			   ds->instance_id == b->nhash / LIVE_HASHES_PER_BLOB &&
			   b->nhash + ds->len / 8 <= b->pages) {
			memcpy(b->hashes + b->nhash, ds->data, ds->len);
			b->nhash += ds->len / 8;
		} else {
			live_fail(r->error, sizeof(r->error), "bad device state "
			     "'%s' (instance %u, %zu bytes) after %" PRIu64
			     " hashes", ds->idstr, ds->instance_id, ds->len,
			     b->nhash);
			ret = -EPROTO;
		}
		rmig_devstate_free(ds);
	}
	return ret;
}

int live_dest(struct guest *g, rmig_dest *d, int block, uint64_t resume_steps,
	      bool same_host, const struct live_recover *rec,
	      struct live_dest_result *r)
{
	struct live_blobs b = { .pages = g->pages };
	uint64_t steps[GUEST_MAX_VCPUS];
	double t0 = now_s();
	int ret, sync;
	int64_t received;

	memset(r, 0, sizeof(*r));
	r->first_mismatch = -1;
	r->downtime_ms = -1;
	r->pages = g->pages;
	b.hashes = malloc((size_t)g->pages * 8);
	b.missing = calloc((size_t)(g->pages + 63) / 64, 8);
	if (!b.hashes || !b.missing) {
		ret = -ENOMEM;
		live_fail(r->error, sizeof(r->error), "out of memory");
		goto out;
	}
	postcopy_prepare(d, g, &b);
	for (;;) {
		sync = rmig_dest_wait_sync(d, -1);
		if (sync < 0) {
			ret = sync;
			goto lib_fail;
		}
		ret = take_blobs(d, &b, r);
		if (ret)
			goto out;
		if (sync == 1)
			break;
		if (sync == RMIG_SYNC_POSTCOPY_SWITCH) {
			ret = postcopy_dest(g, &d, block, resume_steps,
					    same_host, &b, rec, r);
			r->seconds = now_s() - t0;
			r->ok = ret == 0;
			goto out;
		}
	}
	ret = rmig_dest_finish(d);
	if (ret < 0)
		goto lib_fail;
	r->seconds = now_s() - t0;
	if (!b.have_state) {
		ret = -EPROTO;
		live_fail(r->error, sizeof(r->error), "the source sent no guest state "
		     "(is it 'rmig-migrate source' in live mode?)");
		goto out;
	}
	if (same_host && b.have_all_ns > b.pause_ns)
		r->downtime_ms = (double)(b.have_all_ns - b.pause_ns) / 1e6;
	ret = guest_adopt(g, &r->cfg, r->error, sizeof(r->error));
	if (ret)
		goto out;

	/* The hash list of the source's final image. */
	if (b.nhash != g->pages) {
		ret = -EPROTO;
		live_fail(r->error, sizeof(r->error), "the source sent %" PRIu64
		     " page hashes for %" PRIu64 " pages", b.nhash, g->pages);
		goto out;
	}
	received = rmig_dest_block_received(d, block);
	if (received != (int64_t)g->pages) {
		ret = -EIO;
		live_fail(r->error, sizeof(r->error), "received bitmap counts %"
		     PRId64 " of %" PRIu64 " pages", received, g->pages);
		goto out;
	}
	for (uint64_t p = 0; p < g->pages; p++)
		if (guest_page_hash(g->mem + p * g->cfg.page_size,
				    g->cfg.page_size) != b.hashes[p]) {
			if (!r->mismatched_pages++)
				r->first_mismatch = (int64_t)p;
		}
	if (r->mismatched_pages) {
		ret = -EIO;
		live_fail(r->error, sizeof(r->error), "%" PRIu64 " of %" PRIu64
		     " pages differ from the source's final image (first: "
		     "page %" PRId64 ")", r->mismatched_pages, g->pages,
		     r->first_mismatch);
		goto out;
	}
	r->verified = true;

	/* Resume the workload here, then compare with a replay that never
	 * migrated. */
	guest_set_state(g, b.st);
	r->resume_steps = resume_steps;
	for (unsigned v = 0; v < g->cfg.vcpus; v++)
		steps[v] = b.st[v].steps + resume_steps;
	guest_run_to(g, steps);
	ret = live_compare_replay(g, steps, "after resuming, ", &r->checksum,
				  &r->replay_checksum, r->error,
				  sizeof(r->error));
	if (ret)
		goto out;
	r->ok = true;
	ret = 0;
	goto out;

lib_fail:
	live_fail(r->error, sizeof(r->error), "%s", rmig_last_error()[0] ?
	     rmig_last_error() : strerror(-ret));
out:
	r->st.size = sizeof(r->st);
	if (!d || rmig_dest_get_stats(d, &r->st) < 0)
		memset(&r->st, 0, sizeof(r->st));
	/* A lost post-copy guest's threads may still read the hashes. */
	if (!r->lost)
		free(b.hashes);
	free(b.missing);
	return ret;
}

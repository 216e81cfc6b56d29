/* SPDX-License-Identifier: MIT */
/*
 * test_live - live migration of a running guest (tools/guest.c, dirty.c,
 * live.c) over libfabric tcp on 127.0.0.1, source and destination in
 * separate processes (testutil.h).
 *
 *   test_live converge MIB RATE_MBS TRACKING MEMORY
 *       The guest writes RATE_MBS; the migration converges; the
 *       destination's page hashes equal the source's final image and its
 *       resumed guest's checksum equals a never-migrated replay.
 *       TRACKING async|sync, MEMORY anon|memfd|hugetlb (huge pages are
 *       reserved through /proc/sys/vm/nr_hugepages when none are free, and
 *       given back; skip with the reason only when none can be had).
 *   test_live autoconverge MIB
 *       2 MiB pages (anonymous memory), 2500 page writes a second: the
 *       guest dirties pages faster than any loopback moves them, so the
 *       rounds cannot converge unthrottled; auto-converge throttles it
 *       (at 99 % it dirties 25 pages a second) and the migration
 *       finishes and verifies.  The downtime limit lies between a
 *       measured one-page round and a measured full round.
 *   test_live giveup MIB
 *       Same guest, auto-converge off, 3 rounds at most: the source gives
 *       up with "did not converge", its guest runs on and equals its own
 *       replay; the destination fails and discards.
 *   test_live force MIB
 *       Same, with force_finish: stop-and-copy although the expected
 *       downtime is above the limit; not "converged", but migrated and
 *       verified like any other.
 *   test_live killdest MIB
 *       The destination is killed (SIGKILL) while rounds run: the source's
 *       migration fails, its guest keeps running (more steps after the
 *       failure) and equals its own replay.
 *   test_live killpaused MIB
 *       The destination is killed (SIGKILL) in stop-and-copy, after the
 *       source paused its vCPUs and before it sent the last pages: the
 *       source's migration fails, its paused guest is resumed, runs on and
 *       equals its own replay.
 *   test_live cancel MIB
 *       rmig_src_cancel() from another thread while rounds run (an
 *       operator's cancel): -ECANCELED, and the same promise.
 *   test_live pausefail MIB
 *       A failure injected after the pause (the driver's paused_hook
 *       fails): the same promise, and the destination discards.
 *   test_live postcopy MIB RATE_MBS AFTER [MEMORY]
 *       Post-copy after AFTER pre-copy rounds: the source switches (the
 *       pages it did not send are the destination's missing pages), the
 *       destination runs the guest, pulls every missing page and proves
 *       it (pulled pages' hashes on arrival, unwritten pages' at the end,
 *       a never-migrated replay after resuming).  MEMORY anon (default:
 *       MISSING faults), memfd or hugetlb (MINOR faults, huge pages
 *       reserved as for converge).  How the missing pages left the
 *       guest's mapping: anonymous runs of 2 MiB or more moved out (with
 *       AFTER 0 every page), the rest dropped in place.
 *   test_live postcopy-fallback MIB
 *       The same with rmig_src_postcopy() replaced by a stub that says
 *       -EOPNOTSUPP (a transport without RDMA READ): the source falls back
 *       to stop-and-copy with the blobs it sent for the switch, and the
 *       destination verifies it as a pre-copy migration.
 *
 * The converge cases also take a progress update after every chunk of
 * pages queued and check that the updates come during the rounds, not
 * only between them, and count the round's pages down.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "live.h"
#include "test_live_util.h"
#include "testutil.h"

#define SKIP 77

enum mode { CONVERGE, AUTOCONVERGE, GIVEUP, FORCE, KILLDEST, KILLPAUSED,
	    PAUSEFAIL, CANCEL, POSTCOPY, FALLBACK };

struct ctx {
	enum mode mode;
	size_t mib;
	double rate;
	unsigned after;        /* POSTCOPY: pre-copy rounds */
	enum dirty_mode tracking;
	enum guest_mem mem;
	bool big_pages;        /* 2 MiB pages of anonymous memory */
	uint8_t uuid[16];
	struct tu_pipe addr;   /* dest -> src */
	struct tu_pipe round;  /* src -> parent: rounds are running / paused */
	struct tu_pipe ack;    /* parent -> src: the destination is dead */
	/* src process only */
	struct guest *g;
	rmig_src *s;
	pthread_t canceller;
	bool canceller_started;
	bool hook_ran, hook_saw_paused;
	unsigned sending_updates;  /* "sending" progress calls, round 1 */
	unsigned round_updates;    /* "round" progress calls */
	unsigned cur_round;
	uint64_t last_left;
	bool progress_bad;
	char progress_err[200];
};

/* The failure modes: the source must fail and its guest run on. */
static bool source_fails(enum mode m)
{
	return m == GIVEUP || m == KILLDEST || m == KILLPAUSED ||
	       m == PAUSEFAIL || m == CANCEL;
}

static struct guest_config guest_cfg(const struct ctx *cx)
{
	struct guest_config c = {
		.size = (uint64_t)cx->mib << 20,
		.page_size = cx->mem == GUEST_HUGETLB || cx->big_pages ?
			     (2u << 20) : 4096,
		.mem = cx->mem,
		.vcpus = 2,
		.pattern = GUEST_RANDOM,
		.hot_percent = 10,
		.fill_percent = 60,
		.seed = 7,
		.rate_mbs = cx->rate,
	};
	return c;
}

static int dest_main(void *arg)
{
	struct ctx *cx = arg;
	static struct guest g;
	struct guest_config c = guest_cfg(cx);
	struct live_dest_result r;
	struct rmig_config cfg;
	rmig_dest *d = NULL;
	char addr[TU_ADDR_MAX], err[512];
	int block, ret, rc = 1;

	tu_set_role("dest");
	/* Only the size and page size are this side's: the workload's
	 * settings must come from the transferred device state, so start
	 * from other ones. */
	c.vcpus = 1;
	c.pattern = GUEST_SEQ;
	c.fill_percent = 0;
	c.seed ^= 0x5a5a;
	c.rate_mbs = 0;
	if (!TU_CHECK(!guest_create(&g, &c, false, err, sizeof(err)), "%s", err))
		return 1;
	memset(g.mem, 0xa5, (size_t)c.size); /* zero pages must be cleared */
	tu_config(&cfg, TU_LOOPBACK_LISTEN, 2, c.page_size, cx->uuid);
	if (!TU_RMIG_OK(rmig_dest_create(&cfg, &d)) ||
	    !TU_RMIG_OK(block = rmig_dest_add_block(d, "ram", g.mem,
						    (size_t)c.size)) ||
	    !TU_RMIG_OK(rmig_dest_listen(d)) ||
	    !TU_RMIG_OK(rmig_dest_get_address(d, addr, sizeof(addr))))
		goto out;
	if (tu_send_str(cx->addr.w, addr))
		goto out;
	if (!TU_RMIG_OK(rmig_dest_accept(d, 30000)))
		goto out;
	ret = live_dest(&g, d, block, 20000, true, NULL, &r);
	if (!source_fails(cx->mode)) {
		bool ok;

		if (!TU_CHECK(ret == 0, "live_dest: %s", r.error))
			goto out;
		/* Every check counts (TU_CHECK only says what failed). */
		ok = TU_CHECK(r.verified && !r.mismatched_pages, "hashes");
		ok = TU_CHECK(r.checksum == r.replay_checksum, "checksum") &&
		     ok;
		if (cx->mode == POSTCOPY) {
			ok = TU_CHECK(r.postcopy && !r.lost &&
				 r.fault_pages + r.background_pages ==
				 r.missing_pages && r.untouched_checked > 0,
				 "post-copy: %" PRIu64 " missing, %" PRIu64
				 " by faults, %" PRIu64 " in the background, "
				 "%" PRIu64 " unwritten pages checked",
				 r.missing_pages, r.fault_pages,
				 r.background_pages, r.untouched_checked) &&
			     ok;
			/* Made missing at the switch: every page either
			 * moved out of the mapping (anonymous memory, runs
			 * of 2 MiB or more: with no pre-copy round, all of
			 * it) or dropped in place (memfd, hugetlb: the file
			 * keeps its pages, only the mapping goes). */
			ok = TU_CHECK(r.moved_out_pages + r.dropped_pages ==
				 r.missing_pages &&
				 (cx->mem == GUEST_ANON || !r.moved_out_pages) &&
				 (cx->mem != GUEST_ANON || cx->after ||
				  r.moved_out_pages == r.missing_pages),
				 "post-copy: %" PRIu64 " missing, %" PRIu64
				 " moved out, %" PRIu64 " dropped",
				 r.missing_pages, r.moved_out_pages,
				 r.dropped_pages) && ok;
			tu_msg("post-copy: %" PRIu64 " pages missing, %" PRIu64
			       " by faults (p50 %.0f us, p99 %.0f us), %"
			       PRIu64 " in the background, pulled in %.3f s",
			       r.missing_pages, r.fault_pages, r.fault_p50_us,
			       r.fault_p99_us, r.background_pages, r.pull_s);
		}
		if (cx->mode == FALLBACK)
			ok = TU_CHECK(!r.postcopy, "the destination saw a "
				      "switch") && ok;
		tu_msg("verified %" PRIu64 " pages; resumed checksum 0x%016"
		       PRIx64 " = replay 0x%016" PRIx64 "; downtime here %.1f ms",
		       r.pages, r.checksum, r.replay_checksum, r.downtime_ms);
		rc = ok ? 0 : 1;
	} else {
		/* The source gives up: this side fails and discards. */
		rc = TU_CHECK(ret < 0 && !r.verified && !r.checksum,
			      "the destination did not fail (%d)", ret) ? 0 : 1;
		tu_msg("failed as it must: %s", r.error);
	}
out:
	if (d)
		rmig_dest_destroy(d);
	guest_destroy(&g);
	return rc;
}

static int kill_hook(unsigned round, void *arg)
{
	struct ctx *cx = arg;

	if (round == 3)
		tu_send_u64(cx->round.w, round);
	return 0;
}

static void *cancel_main(void *arg)
{
	struct ctx *cx = arg;

	tu_sleep_ms(30); /* into round 3 (it never converges) */
	rmig_src_cancel(cx->s);
	return NULL;
}

static int cancel_hook(unsigned round, void *arg)
{
	struct ctx *cx = arg;

	if (round == 3 && !cx->canceller_started)
		cx->canceller_started =
			pthread_create(&cx->canceller, NULL, cancel_main,
				       cx) == 0;
	return 0;
}

/* Stop-and-copy has paused the vCPUs: are they all parked? */
static bool all_paused(struct guest *g)
{
	bool yes;

	pthread_mutex_lock(&g->lock);
	yes = g->pause_req && g->running && g->paused == g->running;
	pthread_mutex_unlock(&g->lock);
	return yes;
}

static int paused_hook(void *arg)
{
	struct ctx *cx = arg;
	uint64_t ack;

	cx->hook_ran = true;
	cx->hook_saw_paused = all_paused(cx->g);
	if (cx->mode == PAUSEFAIL)
		return 1;
	/* KILLPAUSED: the parent kills the destination, reaps it, answers. */
	if (tu_send_u64(cx->round.w, 0) ||
	    tu_recv_u64(cx->ack.r, &ack, 30000))
		tu_msg("no answer from the parent: going on anyway");
	return 0;
}

static void progress(const struct live_progress *pg, void *arg)
{
	struct ctx *cx = arg;

	if (!strcmp(pg->phase, "round")) {
		cx->round_updates++;
		cx->cur_round = pg->round + 1;
		cx->last_left = UINT64_MAX;
		return;
	}
	if (strcmp(pg->phase, "sending"))
		return;
	if (pg->round == 1)
		cx->sending_updates++;
	if (pg->round != (cx->cur_round ? cx->cur_round : 1) ||
	    pg->dirty_pages > cx->last_left || pg->gbps < 0) {
		if (!cx->progress_bad)
			snprintf(cx->progress_err, sizeof(cx->progress_err),
				 "update in round %u (expected %u): %" PRIu64
				 " pages left after %" PRIu64 ", %.3f GB/s",
				 pg->round, cx->cur_round ? cx->cur_round : 1,
				 pg->dirty_pages, cx->last_left, pg->gbps);
		cx->progress_bad = true;
	}
	cx->last_left = pg->dirty_pages;
}

/* The time of one round of @n pages (scattered, distinct), in ms; -1 on
 * failure.  The pages go again in round 1; the destination sees plain
 * syncs. */
/* Steps the guest's vCPUs have made (a step writes one page), read with
 * the vCPUs paused for a moment so that the counts are not raced. */
static uint64_t guest_steps(struct guest *g)
{
	struct guest_vcpu_state st[GUEST_MAX_VCPUS];
	uint64_t n = 0;

	guest_pause(g);
	guest_get_state(g, st);
	guest_resume(g);
	for (unsigned v = 0; v < g->cfg.vcpus; v++)
		n += st[v].steps;
	return n;
}

static double round_ms(rmig_src *s, int block, struct guest *g, size_t n,
		       unsigned salt)
{
	uint64_t *offs = malloc(n * sizeof(*offs));
	uint64_t t = tu_now_ns();
	int ok;

	if (!offs)
		return -1;
	for (size_t k = 0; k < n; k++) /* 7919: prime, so distinct */
		offs[k] = ((k * 7919 + salt) % g->pages) * g->cfg.page_size;
	ok = TU_RMIG_OK(rmig_src_queue_pages(s, block, offs, n)) &&
	     TU_RMIG_OK(rmig_src_sync(s));
	free(offs);
	return ok ? (double)(tu_now_ns() - t) / 1e6 : -1;
}

static int no_read_stub(rmig_src *s)
{
	(void)s;
	return -EOPNOTSUPP;
}

static int src_main(void *arg)
{
	struct ctx *cx = arg;
	static struct guest g;
	struct guest_config c = guest_cfg(cx);
	struct live_params p;
	struct live_result r;
	struct rmig_config cfg;
	rmig_src *s = NULL;
	char addr[TU_ADDR_MAX], err[512];
	uint64_t sum, ref, steps_at_fail = 0;
	int block, ret, rc = 1;

	tu_set_role("src");
	if (!TU_CHECK(!guest_create(&g, &c, true, err, sizeof(err)), "%s", err))
		return 1;
	if (tu_recv_str(cx->addr.r, addr, 60000))
		goto out;
	tu_config(&cfg, addr, 2, c.page_size, cx->uuid);
	if (!TU_RMIG_OK(rmig_src_create(&cfg, &s)) ||
	    !TU_RMIG_OK(block = rmig_src_add_block(s, "ram", g.mem,
						   (size_t)c.size)) ||
	    !TU_RMIG_OK(rmig_src_connect(s)))
		goto out;
	if (!TU_CHECK(!guest_start(&g), "start"))
		goto out;
	cx->g = &g;
	cx->last_left = UINT64_MAX;
	tu_sleep_ms(300);

	live_params_default(&p);
	p.dirty_mode = cx->tracking;
	switch (cx->mode) {
	case CONVERGE:
		p.progress = progress;
		p.progress_interval_s = 0; /* after every chunk of pages */
		p.arg = cx;
		break;
	case CANCEL:
		p.downtime_limit_ms = -1; /* as KILLDEST */
		p.auto_converge = false;
		p.max_rounds = 100000;
		p.round_hook = cancel_hook;
		p.arg = cx;
		cx->s = s;
		break;
	case POSTCOPY:
	case FALLBACK:
		p.postcopy = true;
		p.postcopy_after = cx->after;
		if (cx->mode == FALLBACK)
			p.postcopy_fn = no_read_stub;
		break;
	case KILLPAUSED:
	case PAUSEFAIL:
		p.paused_hook = paused_hook;
		p.arg = cx;
		break;
	case AUTOCONVERGE: {
		/* The limit is what sending one and a half pages takes
		 * (measured: a full round's time per page), so a round
		 * meets it only when it finds at most one dirty page.  At
		 * the maximum throttle that is almost every round.
		 * Unthrottled it is none: a round of d pages takes about
		 * one + (full - one) * d / pages ms, and meanwhile the guest
		 * writes rate * that many pages at random, which leaves
		 * pages * (1 - exp(-written / pages)) of them dirty; the
		 * rounds settle at that map's fixed point, checked below to
		 * be several pages.  The rate is the guest's own, measured
		 * while the full rounds run (under a sanitizer, with the
		 * migration's threads on the same cores, it can be far
		 * below the rate asked for).  So the test holds on a fast
		 * machine and under a sanitizer on a loaded one alike. */
		double one = 0, full = 1e9, x, rate, d;
		uint64_t steps0, steps1, t0, t1;

		for (unsigned i = 0; i < 5; i++) {
			x = round_ms(s, block, &g, 1, i);
			one = x > one ? x : one;
		}
		steps0 = guest_steps(&g);
		t0 = tu_now_ns();
		for (unsigned i = 0; i < 3; i++) {
			x = round_ms(s, block, &g, g.pages, 0);
			full = x >= 0 && x < full ? x : full;
		}
		steps1 = guest_steps(&g);
		t1 = tu_now_ns();
		rate = (double)(steps1 - steps0) / ((double)(t1 - t0) / 1e6);
		d = (double)g.pages;
		for (unsigned i = 0; i < 100; i++)
			d = (double)g.pages *
			    (1 - exp(-rate * (one + (full - one) * d /
					      (double)g.pages) /
				     (double)g.pages));
		if (!TU_CHECK(one > 0 && full < 1e9 && d >= 4,
			      "one-page round %.2f ms, full round %.2f ms, "
			      "guest writing %.3f pages/ms: unthrottled rounds "
			      "would find %.1f dirty pages, too few to need "
			      "a throttle", one, full, rate, d))
			goto out;
		p.downtime_limit_ms = 1.5 * full / (double)g.pages;
		p.max_rounds = 100000;
		tu_msg("rounds of one page take up to %.2f ms, of the whole "
		       "guest %.2f ms; the guest writes %.3f pages/ms, so "
		       "unthrottled rounds find %.1f of %" PRIu64 " pages "
		       "dirty: downtime limit %.2f ms (1.5 pages)", one, full,
		       rate, d, (uint64_t)g.pages, p.downtime_limit_ms);
		break;
	}
	case GIVEUP:
	case FORCE:
		p.downtime_limit_ms = 1;
		p.auto_converge = false;
		p.max_rounds = 3;
		p.force_finish = cx->mode == FORCE;
		break;
	case KILLDEST:
		/* Never converges by itself (a round that found no dirty
		 * page would meet any limit >= 0): rounds run until the
		 * kill. */
		p.downtime_limit_ms = -1;
		p.auto_converge = false;
		p.max_rounds = 100000;
		p.round_hook = kill_hook;
		p.arg = cx;
		break;
	}
	ret = live_source(&g, s, block, &p, &r);
	if (cx->canceller_started)
		pthread_join(cx->canceller, NULL);
	tu_msg("%s: %u rounds, throttle %u%%, downtime %.1f ms, tracking %s%s%s",
	       ret ? "failed" : "migrated", r.rounds, r.throttle, r.downtime_ms,
	       dirty_mode_name(r.mode), ret ? ": " : "", ret ? r.error : "");
	if (!source_fails(cx->mode)) {
		rc = TU_CHECK(ret == 0 && r.ok, "live_source: %s", r.error) ? 0 : 1;
		if (cx->mode == FORCE &&
		    !TU_CHECK(!r.converged && r.rounds == 4 &&
			      r.expected_ms > p.downtime_limit_ms,
			      "forced: converged %d after %u rounds, expected "
			      "%.1f ms", r.converged, r.rounds, r.expected_ms))
			rc = 1;
		if (!TU_CHECK(r.mode == cx->tracking, "tracking %s",
			      dirty_mode_name(r.mode)))
			rc = 1;
		if (cx->mode == AUTOCONVERGE &&
		    !TU_CHECK(r.throttle >= p.throttle_initial,
			      "auto-converge never throttled (%u%%)",
			      r.throttle))
			rc = 1;
		if ((cx->mode == POSTCOPY || cx->mode == FALLBACK) &&
		    !TU_CHECK(r.switched == (cx->mode == POSTCOPY) &&
			      r.fell_back == (cx->mode == FALLBACK) &&
			      r.rounds == cx->after +
			      (cx->mode == FALLBACK), "post-copy: switched %d, "
			      "fell back %d after %u rounds", r.switched,
			      r.fell_back, r.rounds))
			rc = 1;
		if (cx->mode == CONVERGE &&
		    !TU_CHECK(r.normal_pages + r.zero_pages >= g.pages,
			      "round 1 did not send every page"))
			rc = 1;
		if (cx->mode == CONVERGE) {
			tu_msg("progress: %u updates during round 1, %u after "
			       "rounds", cx->sending_updates, cx->round_updates);
			if (!TU_CHECK(cx->sending_updates >= 1 &&
				      cx->round_updates == r.rounds - 1 &&
				      !cx->progress_bad, "progress: %u "
				      "updates in round 1, %u after %u rounds; "
				      "%s", cx->sending_updates,
				      cx->round_updates, r.rounds,
				      cx->progress_err))
				rc = 1;
		}
		goto out;
	}
	if (cx->mode == GIVEUP) {
		if (!TU_CHECK(ret == -ETIMEDOUT && strstr(r.error,
						"did not converge"),
			      "expected 'did not converge', got %d: %s", ret,
			      r.error))
			goto out;
	} else if (cx->mode == CANCEL) {
		if (!TU_CHECK(ret == -ECANCELED && cx->canceller_started &&
			      r.rounds >= 3, "expected -ECANCELED in round 3 "
			      "or later, got %d after %u rounds: %s", ret,
			      r.rounds, r.error))
			goto out;
	} else if (cx->mode == PAUSEFAIL) {
		if (!TU_CHECK(ret == -ECANCELED && cx->hook_ran &&
			      cx->hook_saw_paused && strstr(r.error, "pause"),
			      "expected the injected failure after the pause "
			      "(hook ran %d, saw the vCPUs paused %d), got %d: "
			      "%s", cx->hook_ran, cx->hook_saw_paused, ret,
			      r.error))
			goto out;
	} else if (!TU_CHECK(ret < 0 && ret != -ECANCELED,
			     "expected a failure from the killed peer, got %d: "
			     "%s", ret, r.error)) {
		goto out;
	}
	if (cx->mode == KILLPAUSED &&
	    !TU_CHECK(cx->hook_ran && cx->hook_saw_paused, "the failure did "
		      "not come in stop-and-copy (hook ran %d, vCPUs paused "
		      "%d)", cx->hook_ran, cx->hook_saw_paused))
		goto out;
	/* The promise: the guest carries on at the source, unharmed: not
	 * left paused, not throttled.  (Its step counts are then read
	 * paused: the vCPU threads write them.) */
	pthread_mutex_lock(&g.lock);
	ret = g.pause_req;
	pthread_mutex_unlock(&g.lock);
	if (!TU_CHECK(!ret && atomic_load(&g.throttle) == 0, "the guest was "
		      "left %s after the failure", ret ? "paused" : "throttled"))
		goto out;
	guest_pause(&g);
	for (unsigned v = 0; v < c.vcpus; v++)
		steps_at_fail += g.vcpu[v].st.steps;
	guest_resume(&g);
	tu_sleep_ms(400);
	ret = live_check_guest(&g, &sum, &ref, err, sizeof(err));
	{
		uint64_t steps = 0;

		for (unsigned v = 0; v < c.vcpus; v++)
			steps += g.vcpu[v].st.steps;
		if (!TU_CHECK(steps > steps_at_fail, "the guest did not run on "
			      "after the failure (%" PRIu64 " steps)", steps))
			goto out;
		tu_msg("guest ran on: %" PRIu64 " -> %" PRIu64 " steps",
		       steps_at_fail, steps);
	}
	if (!TU_CHECK(ret == 0, "source guest damaged: %s", err))
		goto out;
	tu_msg("source guest intact: checksum 0x%016" PRIx64 " = its replay",
	       sum);
	rc = 0;
out:
	if (s)
		rmig_src_destroy(s);
	guest_destroy(&g);
	return rc;
}

int main(int argc, char **argv)
{
	struct ctx cx = { .tracking = DIRTY_ASYNC, .mem = GUEST_ANON };
	struct tu_child ch[2] = { { .name = "dest" }, { .name = "src" } };
	struct hugepage_reservation hr = { 0 };
	uint64_t t0 = tu_now_ns();
	char err[512];
	int rc;

	tu_set_role("parent");
	if (argc >= 3 && !strcmp(argv[1], "converge") && argc == 6) {
		cx.mode = CONVERGE;
		cx.rate = atof(argv[3]);
		if (dirty_parse_mode(argv[4], &cx.tracking) ||
		    guest_parse_mem(argv[5], &cx.mem))
			goto usage;
	} else if (argc == 3 && !strcmp(argv[1], "autoconverge")) {
		cx.mode = AUTOCONVERGE;
		cx.big_pages = true;
		cx.rate = 5000; /* MB/s: 2500 pages of 2 MiB a second */
	} else if (argc == 3 && !strcmp(argv[1], "giveup")) {
		cx.mode = GIVEUP;
		cx.rate = -1;
	} else if (argc == 3 && !strcmp(argv[1], "force")) {
		cx.mode = FORCE;
		cx.rate = -1;
	} else if (argc == 3 && !strcmp(argv[1], "killdest")) {
		cx.mode = KILLDEST;
		cx.rate = 100;
	} else if (argc == 3 && !strcmp(argv[1], "killpaused")) {
		cx.mode = KILLPAUSED;
		cx.rate = 100;
	} else if (argc == 3 && !strcmp(argv[1], "cancel")) {
		cx.mode = CANCEL;
		cx.rate = 100;
	} else if ((argc == 5 || argc == 6) && !strcmp(argv[1], "postcopy")) {
		cx.mode = POSTCOPY;
		cx.rate = atof(argv[3]);
		cx.after = (unsigned)atoi(argv[4]);
		if (argc == 6 && guest_parse_mem(argv[5], &cx.mem))
			goto usage;
	} else if (argc == 3 && !strcmp(argv[1], "postcopy-fallback")) {
		cx.mode = FALLBACK;
		cx.rate = 200;
		cx.after = 1;
	} else if (argc == 3 && !strcmp(argv[1], "pausefail")) {
		cx.mode = PAUSEFAIL;
		cx.rate = 100;
	} else {
		goto usage;
	}
	/* autoconverge is not capped for the sanitizer trees: with fewer
	 * than 64 pages of 2 MiB, a full round and a one-page round are too
	 * close to put a limit between them (see src_main()). */
	cx.mib = cx.mode == AUTOCONVERGE ? (size_t)atoi(argv[2]) :
		 tu_cap_mib((size_t)atoi(argv[2]));
	if (cx.big_pages)
		cx.mib &= ~(size_t)1;
	if (cx.mem == GUEST_HUGETLB) {
		cx.mib &= ~(size_t)1;
		/* source and destination: one region each */
		if (hugepages_reserve(&hr, cx.mib, err, sizeof(err))) {
			printf("SKIP: %s\n", err);
			return SKIP;
		}
	}
	tu_uuid(cx.uuid, 4);
	if (tu_pipe_open(&cx.addr) || tu_pipe_open(&cx.round) ||
	    tu_pipe_open(&cx.ack)) {
		hugepages_release(&hr);
		return 1;
	}
	tu_msg("%s, %zu MiB %s guest, tracking %s", argv[1], cx.mib,
	       guest_mem_name(cx.mem), dirty_mode_name(cx.tracking));
	if (tu_spawn(&ch[0], "dest", dest_main, &cx) ||
	    tu_spawn(&ch[1], "src", src_main, &cx)) {
		hugepages_release(&hr);
		return 1;
	}
	if (cx.mode == KILLDEST) {
		uint64_t round;

		ch[0].expect_kill = true;
		if (tu_recv_u64(cx.round.r, &round, 60000) == 0) {
			tu_msg("round %" PRIu64 " running: kill -9 the "
			       "destination", round);
			tu_kill(&ch[0]);
		} else {
			tu_msg("the source never reached round 3");
		}
	}
	if (cx.mode == KILLPAUSED) {
		uint64_t v;

		ch[0].expect_kill = true;
		if (tu_recv_u64(cx.round.r, &v, 60000) == 0) {
			tu_msg("the source paused its vCPUs: kill -9 the "
			       "destination");
			tu_kill(&ch[0]);
			tu_reap(&ch[0], 10000);
			tu_send_u64(cx.ack.w, 1);
		} else {
			tu_msg("the source never reached stop-and-copy");
		}
	}
	rc = tu_wait_children(ch, 2, tu_deadline(), 20000);
	hugepages_release(&hr);
	return tu_report(rc, t0);
usage:
	fprintf(stderr, "usage: %s converge MIB RATE async|sync "
		"anon|memfd|hugetlb | autoconverge MIB | giveup MIB | "
		"force MIB | killdest MIB | killpaused MIB | pausefail MIB | "
		"cancel MIB | postcopy MIB RATE AFTER [MEMORY] | postcopy-fallback "
		"MIB\n", argv[0]);
	return 2;
}

/* SPDX-License-Identifier: MIT */
/*
 * test_core_postcopy.c - post-copy over the mock provider: a pre-copy
 * round, the source's switch (rmig_src_postcopy(), prepared ahead or
 * not), the destination's
 * RDMA READs of what it lacks (urgent and background), the final sync
 * that waits for the destination, the API's refusals, a transport
 * without reads, and a source that goes away in the middle of the pull:
 * every request comes back, the source's memory never changes, and its
 * read registrations are gone when the session ends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_util.h"
#include "src.h"

#define P0 96
#define P1 40
#define SLOTS 8

/* What the destination pulls: per block a page list, and what it saw. */
struct pull {
	struct mig *m;
	uint64_t *pages[NBLK];
	size_t n[NBLK];
	unsigned urgent_every; /* every n-th read is urgent (0: none) */
	uint8_t *land;         /* SLOTS pages, the read region */
	/* Wait for `start` before the first read (the source's switch has
	 * returned: a failure cannot race with its acknowledgement). */
	bool wait_start;
	_Atomic bool start;
	/* Stop after this many reads and wait for `go_on` (0: never). */
	size_t pause_after;
	_Atomic bool paused, go_on;
	/* Pages read and placed, per block (when set: one byte a page). */
	uint8_t *present[NBLK];
	/* Results (read after the driver is joined). */
	size_t submitted, returned, ok, failed;
	int first_err, wait_ret;
	char err[RMIG_ERR_MSG_MAX];
	/* The final wait_sync is about to be called (for the source's
	 * finish: it must not return before). */
	_Atomic bool pulled;
};

/* Copy a completed read into the destination's RAM. */
static void place(struct pull *pl, struct rmig_read_req *r)
{
	uintptr_t slot = (uintptr_t)r->user;
	const uintptr_t b = slot >> 32;

	pl->returned++;
	if (r->status) {
		if (!pl->failed++)
			pl->first_err = r->status;
		return;
	}
	pl->ok++;
	memcpy(dpage(&pl->m->mem, (unsigned)b, r->offset / PS), r->buf, PS);
	if (pl->present[b])
		pl->present[b][r->offset / PS] = 1;
}

static int pull_pages(struct driver *dv, void *arg)
{
	struct pull *pl = arg;
	struct rmig_read_req req[SLOTS], *done[SLOTS];
	unsigned free_slots[SLOTS], nfree = SLOTS;
	size_t next[NBLK] = { 0 };
	unsigned b = 0, inflight = 0;
	int ret;

	ret = rmig_dest_read_region(dv->d, pl->land, SLOTS * PS);
	if (ret)
		return ret;
	while (pl->wait_start && !atomic_load(&pl->start))
		usleep(1000);
	for (unsigned i = 0; i < SLOTS; i++)
		free_slots[i] = i;
	for (;;) {
		while (nfree && b < NBLK) {
			if (next[b] == pl->n[b]) {
				b++;
				continue;
			}
			if (pl->pause_after &&
			    pl->submitted == pl->pause_after &&
			    !atomic_load(&pl->paused)) {
				if (inflight)
					break;
				atomic_store(&pl->paused, true);
				while (!atomic_load(&pl->go_on))
					usleep(1000);
			}
			unsigned s = free_slots[--nfree];
			struct rmig_read_req *r = &req[s];

			*r = (struct rmig_read_req){
				.block = dv->dblk[b],
				.offset = pl->pages[b][next[b]] * PS,
				.len = PS,
				.buf = pl->land + (size_t)s * PS,
				.user = (void *)(((uintptr_t)b << 32) | s),
			};
			ret = rmig_dest_read_submit(
				dv->d, r, pl->urgent_every &&
				pl->submitted % pl->urgent_every == 0 ?
				RMIG_READ_URGENT : 0);
			if (ret) {
				snprintf(pl->err, sizeof(pl->err), "%s",
					 rmig_last_error());
				free_slots[nfree++] = s;
				/* What is in flight still comes back. */
				b = NBLK;
				pl->wait_ret = ret;
				break;
			}
			pl->submitted++;
			inflight++;
			next[b]++;
		}
		if (!inflight)
			break;
		ret = rmig_dest_read_wait(dv->d, done, SLOTS, -1);
		if (ret < 0) {
			snprintf(pl->err, sizeof(pl->err), "%s",
				 rmig_last_error());
			pl->wait_ret = ret;
			break;
		}
		for (int i = 0; i < ret; i++) {
			unsigned s = (unsigned)((uintptr_t)done[i]->user &
						0xffffffffu);

			place(pl, done[i]);
			free_slots[nfree++] = s;
			inflight--;
		}
		if (pl->failed)
			b = NBLK; /* stop submitting, collect the rest */
	}
	if (!pl->wait_ret && !pl->failed) {
		/* Nothing held, post-copy not over: a bounded wait says 0. */
		assert_int_equal(rmig_dest_read_wait(dv->d, done, SLOTS, 0), 0);
	}
	atomic_store(&pl->pulled, true);
	return pl->wait_ret ? pl->wait_ret : pl->failed ? pl->first_err : 0;
}

/* Pages [from, to) of block b in @pl's list. */
static void want_range(struct pull *pl, unsigned b, size_t from, size_t to)
{
	for (size_t p = from; p < to; p++)
		pl->pages[b][pl->n[b]++] = p;
}

static void pull_init(struct pull *pl, struct mig *m)
{
	memset(pl, 0, sizeof(*pl));
	pl->m = m;
	pl->pages[0] = calloc(2 * P0, sizeof(uint64_t));
	pl->pages[1] = calloc(2 * P1, sizeof(uint64_t));
	pl->land = aligned_alloc(PS, SLOTS * PS);
	assert_non_null(pl->pages[0]);
	assert_non_null(pl->pages[1]);
	assert_non_null(pl->land);
	m->dv.on_switch = pull_pages;
	m->dv.switch_arg = pl;
}

static void pull_free(struct pull *pl)
{
	free(pl->pages[0]);
	free(pl->pages[1]);
	free(pl->land);
}

/* The source's read registrations (under its read_lock: a failing
 * channel thread revokes them). */
static size_t src_read_regs(struct mig *m)
{
	struct rmig_src *s = (struct rmig_src *)m->src;
	size_t n;

	pthread_mutex_lock(&s->read_lock);
	n = s->s.tp->nrmr;
	pthread_mutex_unlock(&s->read_lock);
	return n;
}

/* A copy of the source's memory (both blocks), to prove rmig left it
 * alone. */
static uint8_t *src_snapshot(struct mig *m)
{
	size_t total = (P0 + P1) * PS;
	uint8_t *c = malloc(total);

	assert_non_null(c);
	memcpy(c, m->mem.s, total);
	return c;
}

/* Pre-copy sends the first half of block 0; the source then dirties some
 * of those pages and pauses for good.  The destination pulls the rest of
 * block 0, the dirtied pages and all of block 1, and the final sync waits
 * for it. */
static void test_postcopy_pulls_the_rest(void **state)
{
	struct mig *m = *state;
	struct pull pl;
	uint8_t *before;
	size_t total = (P0 + P1) * PS;

	pull_init(&pl, m);
	pl.urgent_every = 3;
	mig_start(m, 3, 8, P0, P1);
	mem_fill(&m->mem);
	for (size_t p = 0; p < P0 / 2; p++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], p * PS));
	assert_ok(src_sync(m));
	assert_int_equal(mem_diff(&m->mem, 0, 0, P0 / 2), 0);
	/* Dirtied after they were sent: stale on the destination. */
	for (size_t p = 4; p < 12; p++)
		fill_page(&m->mem, 0, p, K_DATA);
	want_range(&pl, 0, 4, 12);
	want_range(&pl, 0, P0 / 2, P0);
	want_range(&pl, 1, 0, P1);
	before = src_snapshot(m);

	assert_ok(rmig_src_postcopy(m->src));
	assert_int_equal(src_read_regs(m), NBLK);
	/* Only the finish is left. */
	assert_int_equal(rmig_src_queue_page(m->src, m->sblk[0], 0), -EINVAL);
	assert_last_err_has("post-copy switch");
	assert_int_equal(rmig_src_sync(m->src), -EINVAL);
	assert_int_equal(rmig_src_send_devstate(m->src, "cpu", 0, "x", 1),
			 -EINVAL);
	assert_int_equal(rmig_src_postcopy(m->src), -EINVAL);
	assert_last_err_has("made already");

	assert_ok(src_finish(m));
	/* The destination acknowledged the final sync only after its last
	 * read. */
	assert_true(atomic_load(&pl.pulled));
	assert_int_equal(src_read_regs(m), 0);
	assert_true(driver_join(m, JOIN_TIMEOUT_S));
	if (m->dv.pull_ret)
		fail_msg("pull: %d (%s)", m->dv.pull_ret, pl.err);
	assert_int_equal(m->dv.switches, 1);
	assert_int_equal(m->dv.last_ret, 1);
	assert_int_equal(m->dv.finish_ret, 0);
	assert_int_equal(pl.submitted, 8 + P0 / 2 + P1);
	assert_int_equal(pl.ok, pl.submitted);
	assert_int_equal(mem_diff_all(&m->mem), 0);
	assert_memory_equal(before, m->mem.s, total);
	free(before);

	struct rmig_stats st;

	get_stats(&st, true, m);
	assert_int_equal(st.syncs, 3); /* a round, the switch, the final */
	pull_free(&pl);
}

/* rmig_src_postcopy_prepare(): the read registration is made while
 * pre-copy goes on, the switch registers nothing more, and the pull reads
 * through the prepared keys; a second prepare is refused.  Without a
 * switch the prepared registration ends at the finish (next test). */
static void test_postcopy_prepared(void **state)
{
	struct mig *m = *state;
	struct mock_counters c;
	struct pull pl;
	uint8_t *before;

	pull_init(&pl, m);
	mig_start(m, 2, 8, P0, P1);
	mem_fill(&m->mem);
	assert_int_equal(rmig_src_postcopy_prepare(NULL), -EINVAL);
	assert_ok(rmig_src_postcopy_prepare(m->src));
	assert_int_equal(src_read_regs(m), NBLK);
	assert_int_equal(rmig_src_postcopy_prepare(m->src), -EINVAL);
	assert_last_err_has("called already");
	/* Pre-copy goes on. */
	for (size_t p = 0; p < P0 / 2; p++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], p * PS));
	assert_ok(src_sync(m));
	assert_int_equal(mem_diff(&m->mem, 0, 0, P0 / 2), 0);
	want_range(&pl, 0, P0 / 2, P0);
	want_range(&pl, 1, 0, P1);
	before = src_snapshot(m);
	assert_ok(rmig_src_postcopy(m->src));
	mock_get_counters(&c);
	assert_int_equal(c.mr_regs[RMIG_MR_READ_SOURCE], NBLK);
	assert_int_equal(rmig_src_postcopy_prepare(m->src), -EINVAL);
	assert_last_err_has("made already");
	assert_ok(src_finish(m));
	assert_int_equal(src_read_regs(m), 0);
	assert_true(driver_join(m, JOIN_TIMEOUT_S));
	if (m->dv.pull_ret)
		fail_msg("pull: %d (%s)", m->dv.pull_ret, pl.err);
	assert_int_equal(m->dv.last_ret, 1);
	assert_int_equal(pl.ok, P0 / 2 + P1);
	assert_int_equal(mem_diff_all(&m->mem), 0);
	assert_memory_equal(before, m->mem.s, (P0 + P1) * PS);
	free(before);
	pull_free(&pl);
}

/* Prepared, then no switch: a plain pre-copy end revokes the read
 * registration; so does a cancel. */
static void test_postcopy_prepared_unused(void **state)
{
	struct mig *m = *state;

	mig_start(m, 2, 8, P0, P1);
	assert_ok(rmig_src_postcopy_prepare(m->src));
	assert_int_equal(src_read_regs(m), NBLK);
	small_migration(m);
	assert_int_equal(src_read_regs(m), 0);
	mig_stop(m);

	mock_reset();
	mig_start(m, 2, 8, P0, P1);
	assert_ok(rmig_src_postcopy_prepare(m->src));
	rmig_src_cancel(m->src);
	assert_int_equal(src_read_regs(m), 0);
	assert_int_equal(rmig_src_postcopy(m->src), -ECANCELED);
	assert_int_equal(src_read_regs(m), 0);
}

/* The refusals of the destination's read API, each naming what is
 * wrong; a refused request is not taken. */
static int bad_requests(struct driver *dv, void *arg)
{
	struct pull *pl = arg;
	struct rmig_read_req r, *done[1];
	const struct rmig_read_req good = {
		.block = dv->dblk[0], .offset = 0, .len = PS, .buf = pl->land,
	};
	static const struct {
		const char *what;
		const char *msg;
	} cases[] = {
		{ "block", "block 7" },    { "len0", "length 0" },
		{ "big", "length" },        { "end", "past the end" },
		{ "buf", "not inside a read region" },
		{ "flags", "unknown flags" },
	};

	/* No region yet: the buffer is outside every region. */
	r = good;
	if (rmig_dest_read_submit(dv->d, &r, 0) != -EINVAL ||
	    !strstr(rmig_last_error(), "not inside a read region"))
		return -100;
	if (rmig_dest_read_region(dv->d, NULL, PS) != -EINVAL ||
	    rmig_dest_read_region(dv->d, pl->land, 0) != -EINVAL)
		return -101;
	if (rmig_dest_read_region(dv->d, pl->land, SLOTS * PS))
		return -102;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned flags = 0;

		r = good;
		if (!strcmp(cases[i].what, "block"))
			r.block = 7;
		else if (!strcmp(cases[i].what, "len0"))
			r.len = 0;
		else if (!strcmp(cases[i].what, "big"))
			r.len = RMIG_READ_MAX + PS;
		else if (!strcmp(cases[i].what, "end"))
			r.offset = (uint64_t)P0 * PS - PS / 2;
		else if (!strcmp(cases[i].what, "buf"))
			r.buf = pl->land + SLOTS * PS - PS / 2;
		else
			flags = 0x10;
		if (rmig_dest_read_submit(dv->d, &r, flags) != -EINVAL ||
		    !strstr(rmig_last_error(), cases[i].msg)) {
			snprintf(pl->err, sizeof(pl->err), "%s: %s",
				 cases[i].what, rmig_last_error());
			return -(int)(110 + i);
		}
	}
	if (rmig_dest_read_submit(dv->d, NULL, 0) != -EINVAL ||
	    rmig_dest_read_wait(dv->d, NULL, 1, 0) != -EINVAL ||
	    rmig_dest_read_wait(dv->d, done, 0, 0) != -EINVAL)
		return -120;
	/* Nothing was taken. */
	if (rmig_dest_read_wait(dv->d, done, 1, 0) != 0)
		return -121;
	atomic_store(&pl->pulled, true);
	return 0;
}

static void test_postcopy_refusals(void **state)
{
	struct mig *m = *state;
	struct rmig_read_req r = { .len = PS }, *done[1];
	struct pull pl;

	pull_init(&pl, m);
	m->dv.on_switch = bad_requests;
	m->dv.hold = true;
	mig_start(m, 2, 8, P0, P1);
	/* Before the switch. */
	r.buf = pl.land;
	assert_int_equal(rmig_dest_read_submit(m->dst, &r, 0), -ENOTCONN);
	assert_last_err_has("switch has not come");
	assert_int_equal(rmig_src_postcopy(NULL), -EINVAL);
	atomic_store(&m->dv.go, true);
	assert_ok(rmig_src_postcopy(m->src));
	assert_ok(src_finish(m));
	assert_true(driver_join(m, JOIN_TIMEOUT_S));
	if (m->dv.pull_ret)
		fail_msg("refusals: %d (%s)", m->dv.pull_ret, pl.err);
	assert_int_equal(m->dv.last_ret, 1);
	/* After the final sync. */
	assert_int_equal(rmig_dest_read_submit(m->dst, &r, 0), -ENOTCONN);
	assert_last_err_has("final sync came");
	assert_int_equal(rmig_dest_read_wait(m->dst, done, 1, -1), -ENOTCONN);
	assert_last_err_has("post-copy is over");
	pull_free(&pl);
}

/* A transport without RDMA READ: the switch is refused with -EOPNOTSUPP
 * before anything is sent, and pre-copy goes on to a normal end. */
static void test_postcopy_unsupported(void **state)
{
	struct mig *m = *state;
	/* The mock without its post_read: a provider that cannot read. */
	static struct rmig_provider_ops noread;

	noread = rmig_mock_provider;
	noread.post_read = NULL;
	m->prov = &noread;
	mig_start(m, 2, 8, P0, P1);
	mem_fill(&m->mem);
	assert_int_equal(rmig_src_postcopy_prepare(m->src), -EOPNOTSUPP);
	assert_last_err_has("postcopy_prepare: transport mock has no RDMA READ");
	assert_int_equal(rmig_src_postcopy(m->src), -EOPNOTSUPP);
	assert_last_err_has("no RDMA READ");
	assert_int_equal(rmig_src_state(m->src), RMIG_STATE_ACTIVE);
	assert_int_equal(src_read_regs(m), 0);
	for (size_t p = 0; p < P0; p++)
		assert_ok(rmig_src_queue_page(m->src, m->sblk[0], p * PS));
	mig_finish(m);
	assert_int_equal(mem_diff(&m->mem, 0, 0, P0), 0);
}

/* The source is cancelled in the middle of the pull: the destination
 * gets every request back (the ones that read before with their data,
 * the rest with an error), then the session's error; the source's
 * memory is unchanged and its read access revoked at once. */
static void test_postcopy_source_gone(void **state)
{
	struct mig *m = *state;
	struct pull pl;
	uint8_t *before;
	size_t total = (P0 + P1) * PS;

	pull_init(&pl, m);
	pl.pause_after = 20;
	mig_start(m, 2, 8, P0, P1);
	mem_fill(&m->mem);
	want_range(&pl, 0, 0, P0);
	want_range(&pl, 1, 0, P1);
	before = src_snapshot(m);
	assert_ok(rmig_src_postcopy(m->src));
	while (!atomic_load(&pl.paused))
		usleep(1000);
	rmig_src_cancel(m->src);
	/* The kick revoked the keys. */
	assert_int_equal(src_read_regs(m), 0);
	assert_int_equal(rmig_src_finish(m->src), -ECANCELED);
	atomic_store(&pl.go_on, true);
	rmig_src_destroy(m->src);
	m->src = NULL;
	assert_true(driver_join(m, JOIN_TIMEOUT_S));
	assert_int_equal(pl.returned, pl.submitted);
	/* The 20 read before the cancel; nothing after it. */
	assert_int_equal(pl.ok, 20);
	assert_true(m->dv.pull_ret < 0);
	assert_true(m->dv.last_ret < 0);
	assert_int_equal(rmig_dest_state(m->dst), RMIG_STATE_FAILED);
	/* What did arrive is right. */
	assert_int_equal(mem_diff(&m->mem, 0, 0, 20), 0);
	assert_memory_equal(before, m->mem.s, total);
	free(before);
	pull_free(&pl);
}

/* A read that completes in error (a remote access error: the key is
 * refused): the destination's session fails with a message naming the
 * read's block and offset, every request comes back, the source's session
 * fails too (its connection broke) and its memory is unchanged. */
static void test_postcopy_read_fails(void **state)
{
	struct mig *m = *state;
	struct pull pl;
	uint8_t *before;
	size_t total = (P0 + P1) * PS;

	pull_init(&pl, m);
	mig_start(m, 1, 8, P0, P1);
	mem_fill(&m->mem);
	want_range(&pl, 0, 0, P0);
	before = src_snapshot(m);
	assert_ok(mock_fail_after("read_cqe", 5, -EACCES));
	pl.wait_start = true;
	assert_ok(rmig_src_postcopy(m->src));
	atomic_store(&pl.start, true);
	assert_true(driver_join(m, JOIN_TIMEOUT_S));
	assert_int_equal(pl.returned, pl.submitted);
	assert_true(pl.failed >= 1);
	assert_true(m->dv.pull_ret < 0);
	assert_int_equal(rmig_dest_state(m->dst), RMIG_STATE_FAILED);
	assert_err_has(rmig_dest_error(m->dst), "RDMA READ of block 'pc.ram' "
		       "offset 0x");
	/* A remote access error breaks the connection (RC: both QPs go to
	 * the error state): the source sees it reset, and revokes. */
	assert_int_equal(src_finish(m), -ECONNRESET);
	assert_int_equal(src_read_regs(m), 0);
	assert_memory_equal(before, m->mem.s, total);
	free(before);
	pull_free(&pl);
}

/* Post-copy recovery: the first session is lost in the middle of the
 * pull (the source cancelled: its connections go); the source keeps its
 * memory.  A second session, both sides with postcopy_resume, registers
 * nothing for writes, refuses pages, starts with the switch, and pulls
 * exactly the pages the first did not deliver.  The guest ends equal to
 * the source's image; each page was read once over both sessions. */
static void test_postcopy_resume(void **state)
{
	struct mig *m = *state;
	static uint8_t present0[P0], present1[P1];
	struct pull pl, pl2;
	uint8_t *before;
	size_t total = (P0 + P1) * PS;
	struct mock_counters c;

	memset(present0, 0, sizeof(present0));
	memset(present1, 0, sizeof(present1));
	pull_init(&pl, m);
	pl.pause_after = 30;
	pl.present[0] = present0;
	pl.present[1] = present1;
	mig_start(m, 2, 8, P0, P1);
	mem_fill(&m->mem);
	want_range(&pl, 0, 0, P0);
	want_range(&pl, 1, 0, P1);
	before = src_snapshot(m);
	assert_ok(rmig_src_postcopy(m->src));
	while (!atomic_load(&pl.paused))
		usleep(1000);
	rmig_src_cancel(m->src); /* the session is lost */
	atomic_store(&pl.go_on, true);
	assert_true(driver_join(m, JOIN_TIMEOUT_S));
	assert_int_equal(pl.ok, 30);
	assert_true(m->dv.pull_ret < 0);
	mig_stop(m);

	/* The second session. */
	pull_init(&pl2, m);
	for (size_t p = 0; p < P0; p++)
		if (!present0[p])
			want_range(&pl2, 0, p, p + 1);
	for (size_t p = 0; p < P1; p++)
		if (!present1[p])
			want_range(&pl2, 1, p, p + 1);
	pl2.present[0] = present0;
	pl2.present[1] = present1;
	m->src_extra.field_mask |= RMIG_CFG_POSTCOPY_RESUME;
	m->src_extra.postcopy_resume = 1;
	m->dst_extra.field_mask |= RMIG_CFG_POSTCOPY_RESUME;
	m->dst_extra.postcopy_resume = 1;
	mock_reset();
	mig_start(m, 2, 8, P0, P1);
	/* Nothing registered for writes on either side. */
	mock_get_counters(&c);
	assert_int_equal(c.mr_regs[RMIG_MR_WRITE_SOURCE], 0);
	assert_int_equal(c.mr_regs[RMIG_MR_WRITE_TARGET], 0);
	assert_int_equal(rmig_src_queue_page(m->src, m->sblk[0], 0), -EINVAL);
	assert_last_err_has("sends no pages");
	assert_int_equal(rmig_src_sync(m->src), -EINVAL);
	assert_ok(rmig_src_postcopy(m->src));
	assert_ok(src_finish(m));
	assert_true(driver_join(m, JOIN_TIMEOUT_S));
	if (m->dv.pull_ret)
		fail_msg("resumed pull: %d (%s)", m->dv.pull_ret, pl2.err);
	assert_int_equal(m->dv.last_ret, 1);
	assert_int_equal(pl2.ok, P0 + P1 - 30);
	assert_int_equal(mem_diff_all(&m->mem), 0);
	assert_memory_equal(before, m->mem.s, total);
	free(before);
	pull_free(&pl);
	pull_free(&pl2);
}

/* Both sides must agree on resuming: a resuming source is turned away by
 * a plain destination and the reverse, before any key is revealed. */
static void test_postcopy_resume_mismatch(void **state)
{
	struct mig *m = *state;
	struct rmig_config c;
	rmig_src *s;

	m->dst_extra.field_mask |= RMIG_CFG_POSTCOPY_RESUME;
	m->dst_extra.postcopy_resume = 1;
	m->channels = 1;
	m->ppp = 8;
	mem_alloc(&m->mem, P0, P1);
	dest_up(m, blk_name, m->mem.pages);
	cfg_init(&c, m->addr, 1, 8);
	assert_ok(rmig_src_create_prov(&c, &rmig_mock_provider, &s));
	for (unsigned b = 0; b < NBLK; b++)
		assert_true(rmig_src_add_block(s, blk_name[b],
					       spage(&m->mem, b, 0),
					       m->mem.pages[b] * PS) >= 0);
	assert_int_equal(rmig_src_connect(s), -ECONNREFUSED);
	assert_last_err_has("resumes a lost post-copy");
	rmig_src_destroy(s);
	mig_stop(m);

	/* A resuming source, a plain destination. */
	m->dst_extra.field_mask = 0;
	m->dst_extra.postcopy_resume = 0;
	m->src_extra.field_mask |= RMIG_CFG_POSTCOPY_RESUME;
	m->src_extra.postcopy_resume = 1;
	m->dv.accept_timeout_ms = 20000;
	dest_up(m, blk_name, m->mem.pages);
	src_up(m);
	assert_int_equal(rmig_src_connect(m->src), -ECONNREFUSED);
	assert_last_err_has("does not resume a post-copy");
}

/* Completions are handed back urgent first: background reads that
 * completed before an urgent one still come after it. */
static int urgent_first(struct driver *dv, void *arg)
{
	struct pull *pl = arg;
	struct rmig_read_req req[SLOTS], *done[SLOTS];
	struct rmig_stats st = { .size = sizeof(st) };
	int n;

	if (rmig_dest_read_region(dv->d, pl->land, SLOTS * PS))
		return -200;
	for (unsigned i = 0; i < SLOTS; i++) {
		req[i] = (struct rmig_read_req){
			.block = dv->dblk[0], .offset = (uint64_t)i * PS,
			.len = PS, .buf = pl->land + (size_t)i * PS,
		};
		/* The background reads first, then the urgent one, each
		 * completed (handed over by its channel) before the next. */
		if (rmig_dest_read_submit(dv->d, &req[i], i == SLOTS - 1 ?
					  RMIG_READ_URGENT : 0))
			return -201;
		if (i < SLOTS - 2)
			continue;
		do {
			usleep(1000);
			if (rmig_dest_get_stats(dv->d, &st))
				return -202;
		} while (st.postcopy_reads < i + 1);
	}
	n = rmig_dest_read_wait(dv->d, done, SLOTS, 0);
	if (n != SLOTS)
		return -203;
	if (done[0] != &req[SLOTS - 1])
		return -204; /* the urgent one is not first */
	for (int i = 0; i < n; i++) {
		if (done[i]->status)
			return -205;
		if (memcmp(done[i]->buf, spage(&pl->m->mem, 0,
					       done[i]->offset / PS), PS))
			return -206;
	}
	return 0;
}

static void test_postcopy_urgent_first(void **state)
{
	struct mig *m = *state;
	struct pull pl;

	pull_init(&pl, m);
	m->dv.on_switch = urgent_first;
	mig_start(m, 3, 8, P0, P1);
	mem_fill(&m->mem);
	assert_ok(rmig_src_postcopy(m->src));
	assert_ok(src_finish(m));
	assert_true(driver_join(m, JOIN_TIMEOUT_S));
	assert_int_equal(m->dv.pull_ret, 0);
	assert_int_equal(m->dv.last_ret, 1);
	pull_free(&pl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		CORE_TEST(test_postcopy_pulls_the_rest),
		CORE_TEST(test_postcopy_prepared),
		CORE_TEST(test_postcopy_prepared_unused),
		CORE_TEST(test_postcopy_refusals),
		CORE_TEST(test_postcopy_unsupported),
		CORE_TEST(test_postcopy_source_gone),
		CORE_TEST(test_postcopy_read_fails),
		CORE_TEST(test_postcopy_resume),
		CORE_TEST(test_postcopy_resume_mismatch),
		CORE_TEST(test_postcopy_urgent_first),
	};

	core_test_filter();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

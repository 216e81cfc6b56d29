/* SPDX-License-Identifier: MIT */
/*
 * chan_live.c - a channel's liveness: the idle limit and the keepalives.
 *
 * Liveness.  Once its thread runs (rmig_chan_go_live()), every wait of a
 * channel goes through chan_poll() (or batch_post()'s wait for room), and
 * fails with -ETIMEDOUT once nothing has come from the peer for the
 * session's idle_timeout_ms: a peer stopped mid-message, or one whose host
 * vanished without a reset, is noticed within the limit.  Only received
 * messages count (a write's or a send's completion only says the peer's
 * NIC or kernel took the bytes), and only after a poll that emptied the
 * completion queue (a busy thread finds the peer's messages queued).  So
 * that a live but quiet peer never trips it, a channel that has sent
 * nothing for idle_timeout_ms / 4 (at most RMIG_KEEPALIVE_MAX_MS) sends a
 * keepalive from its wait: a CREDIT message, granting what is ungranted
 * (often nothing), no wire change.  Both sides send them, from every wait,
 * the sleeps on a semaphore included (rmig_chan_wait_sem(): a source
 * channel between jobs, a destination channel parked at a SYNC marker,
 * wake up when one is due), so a source whose caller is slow, and a
 * destination whose caller is slow, both keep their channels alive.  Keepalives cost no credit and land in the spares:
 * a channel sends at most RMIG_KEEPALIVE_UNANSWERED of them with nothing
 * from the peer in between (RMIG_CREDIT_SPARE counts the buffers).
 *
 * The rest is chan.c's: chan_poll() calls rmig_chan_live_timeout() before
 * it polls, rmig_chan_idle_check() after, and posts a keepalive (a
 * grant-only CREDIT) when rmig_chan_keepalive_due().
 */
#include "core.h"

static uint64_t idle_ns(const struct rmig_chan *ch)
{
	return (uint64_t)ch->sess->idle_timeout_ms * 1000000ull;
}

static uint64_t keepalive_ns(const struct rmig_chan *ch)
{
	unsigned ms = ch->sess->idle_timeout_ms / 4;

	if (ms > RMIG_KEEPALIVE_MAX_MS)
		ms = RMIG_KEEPALIVE_MAX_MS;
	return (uint64_t)(ms ? ms : 1) * 1000000ull;
}

/* After a poll that returned @n completions: -ETIMEDOUT when a live
 * channel has received nothing for the idle limit while it waited for
 * @what.  Not after a full batch: the peer's message may be next. */
int rmig_chan_idle_check(struct rmig_chan *ch, int n, const char *what)
{
	uint64_t quiet = rmig_now_ns() - ch->last_rx_ns;

	if (!ch->live || n >= RMIG_CQE_BATCH || quiet < idle_ns(ch))
		return 0;
	return rmig_err(-ETIMEDOUT, "nothing received from the peer for "
			"%llu ms while waiting for %s (idle limit %u ms): the "
			"peer is stopped, or its host or the network is gone",
			(unsigned long long)(quiet / 1000000), what,
			ch->sess->idle_timeout_ms);
}

/* @timeout_ms, cut so that a live channel wakes up for its next keepalive
 * and at its idle limit (at least 1 ms: a keepalive due but not posted
 * yet, for want of a record, must not make the wait spin). */
int rmig_chan_live_timeout(const struct rmig_chan *ch, int timeout_ms)
{
	uint64_t now, due, ms;

	if (!ch->live || timeout_ms == 0)
		return timeout_ms;
	now = rmig_now_ns();
	due = ch->last_rx_ns + idle_ns(ch);
	if (ch->ka_unanswered < RMIG_KEEPALIVE_UNANSWERED &&
	    ch->last_tx_ns + keepalive_ns(ch) < due)
		due = ch->last_tx_ns + keepalive_ns(ch);
	ms = due > now ? (due - now + 999999) / 1000000 : 1;
	if (!ms)
		ms = 1;
	if (timeout_ms < 0 || ms < (uint64_t)timeout_ms)
		return (int)ms;
	return timeout_ms;
}

int rmig_chan_wait_sem(struct rmig_chan *ch, sem_t *sem)
{
	for (;;) {
		int ms = rmig_chan_live_timeout(ch, -1);
		struct timespec dl;
		int ret;

		if (ms < 0) {
			rmig_sem_wait(sem);
			return 0;
		}
		/* sem_timedwait() and its CLOCK_REALTIME: ThreadSanitizer
		 * (gcc 12) sees no synchronisation in sem_clockwait().  At
		 * most a second a wait, so that a clock step changes little. */
		dl = rmig_timespec_after(CLOCK_REALTIME, ms < 1000 ? ms : 1000);
		/* Taken: pairs with the poster's sem_post() (publish(),
		 * do_sync(), rmig_dest_wait_sync(), a kick), which orders
		 * what it wrote before what our caller reads after. */
		if (!sem_timedwait(sem, &dl))
			return 0;
		if (errno == EINTR)
			continue;
		/* Due: take the peer's messages (their buffers go back),
		 * check the idle limit, send a keepalive. */
		ret = rmig_chan_progress(ch, 0);
		if (ret)
			return ret;
	}
}

/* Due: a live channel that has sent nothing for keepalive_ns(), and
 * whose last keepalives the peer has not all left unanswered. */
bool rmig_chan_keepalive_due(const struct rmig_chan *ch)
{
	return ch->live && ch->ka_unanswered < RMIG_KEEPALIVE_UNANSWERED &&
	       rmig_now_ns() - ch->last_tx_ns >= keepalive_ns(ch);
}

void rmig_chan_go_live(struct rmig_chan *ch)
{
	ch->last_rx_ns = rmig_now_ns();
	ch->last_tx_ns = ch->last_rx_ns;
	ch->ka_unanswered = 0;
	ch->live = true;
}

void rmig_chan_go_quiet(struct rmig_chan *ch)
{
	ch->live = false;
}

/* SPDX-License-Identifier: MIT */
/*
 * dest_pull.c - post-copy on the destination: the caller's one-sided RDMA
 * READs of the source's RAM.
 *
 * The source's rmig_src_postcopy() sends every channel READ_KEYS (where
 * its blocks are and their read keys) and then a SYNC marked as the
 * switch.  rmig_dest_wait_sync() adopts the keys, revokes the source's
 * write access to our RAM, and returns RMIG_SYNC_POSTCOPY_SWITCH; each
 * channel thread acknowledges the switch and runs rmig_dest_pull() from
 * then on.
 *
 * Requests.  rmig_dest_read_submit() checks a request against the keys
 * and the read regions and queues it on a channel under rq_lock: urgent
 * ones (a fault waits) on channel 0, ahead of anything not yet posted
 * there; background ones round-robin on the others (on channel 0 too
 * when it is the only one), so a fault never queues behind a deep
 * background pull on the wire.  It then wakes the channel's poll
 * (conn_wake latches a wake that comes before the poll, so none is lost).
 * The channel thread posts what its queues hold while it has read slots
 * (attr.max_read, counting completions not yet handed back), hands
 * completions back to the shared done list (rq_cond), and waits in its
 * poll, which also sends keepalives and watches the idle limit.
 *
 * The end.  The source's final SYNC may come at once; the channel notes it
 * and goes on serving reads until the caller, done, calls
 * rmig_dest_wait_sync() again, which stops submits (pull = 2) and releases
 * the channels: each cancels what is still queued (-ECANCELED), waits for
 * its posted reads, and acknowledges; the source then revokes its keys.
 * When the session fails instead, each channel hands back everything it
 * holds with the session's error: the queued requests at once, the posted
 * ones once their completions (or the connection's failure) say the
 * adapter is done with their buffers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dest.h"

/* ------------------------------------------------------------------ */
/* Channel thread                                                      */

int rmig_dest_read_keys(struct dest_chan *p, struct rmig_msg *m)
{
	struct rmig_session *s = &p->dest->s;
	struct rmig_read_key k[RMIG_MAX_BLOCKS];
	unsigned n;
	int ret;

	if (p->nrkeys)
		return rmig_err(-EPROTO, "READ_KEYS twice");
	ret = rmig_read_keys_decode(m->data, m->len, s->nblocks, s->page_size,
				    k, &n);
	if (ret)
		return ret;
	for (unsigned i = 0; i < n; i++)
		if (k[i].length != s->blocks[k[i].block].length)
			return rmig_err(-EPROTO, "READ_KEYS: block '%s' of "
					"%llu bytes, ours has %llu",
					s->blocks[k[i].block].name,
					(unsigned long long)k[i].length,
					(unsigned long long)
					s->blocks[k[i].block].length);
	memcpy(p->rkeys, k, n * sizeof(k[0]));
	p->nrkeys = n;
	return 0;
}

/* Append @r to the done list with @status; under rq_lock. */
static void done_locked(struct rmig_dest *d, struct rmig_read_req *r,
			int status)
{
	struct rmig_read_req **head = &d->done_head, **tail = &d->done_tail;

	r->status = status;
	if (r->flags_ & RMIG_READ_URGENT) {
		head = &d->udone_head;
		tail = &d->udone_tail;
	}
	r->next_ = NULL;
	if (*tail)
		(*tail)->next_ = r;
	else
		*head = r;
	*tail = r;
	d->held--;
}

/* Hand the reads the channel's polls completed back to the caller. */
static void deliver(struct dest_chan *p)
{
	struct rmig_dest *d = p->dest;
	struct rmig_chan *ch = &p->ch;
	uint64_t bytes = 0;

	if (!ch->nrdone)
		return;
	pthread_mutex_lock(&d->rq_lock);
	for (unsigned i = 0; i < ch->nrdone; i++) {
		struct rmig_read_req *r = ch->rdone[i];

		bytes += r->len;
		done_locked(d, r, 0);
	}
	pthread_cond_broadcast(&d->rq_cond);
	pthread_mutex_unlock(&d->rq_lock);
	atomic_fetch_add_explicit(&d->reads, ch->nrdone, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->read_bytes, bytes, memory_order_relaxed);
	ch->nrdone = 0;
}

/* Take no more requests; hand back the queued ones with @status. */
static void close_queues(struct dest_chan *p, int status)
{
	struct rmig_dest *d = p->dest;

	pthread_mutex_lock(&d->rq_lock);
	p->rq_closed = true;
	for (struct rmig_read_req **q = &p->uq_head; q;
	     q = q == &p->uq_head ? &p->bq_head : NULL) {
		while (*q) {
			struct rmig_read_req *r = *q;

			*q = r->next_;
			done_locked(d, r, status);
		}
	}
	p->uq_tail = p->bq_tail = NULL;
	pthread_cond_broadcast(&d->rq_cond);
	pthread_mutex_unlock(&d->rq_lock);
}

static struct rmig_read_req *take(struct dest_chan *p)
{
	struct rmig_dest *d = p->dest;
	struct rmig_read_req *r;

	pthread_mutex_lock(&d->rq_lock);
	if ((r = p->uq_head)) {
		p->uq_head = r->next_;
		if (!p->uq_head)
			p->uq_tail = NULL;
	} else if ((r = p->bq_head)) {
		p->bq_head = r->next_;
		if (!p->bq_head)
			p->bq_tail = NULL;
	}
	pthread_mutex_unlock(&d->rq_lock);
	return r;
}

/* The read region holding [addr, addr + len), or NULL. */
static const struct dest_region *region_of(struct rmig_dest *d,
					   const void *addr, uint64_t len)
{
	/* Pairs with the release store in rmig_dest_read_region(). */
	unsigned n = atomic_load_explicit(&d->nregions, memory_order_acquire);
	const uint8_t *a = addr;

	for (unsigned i = 0; i < n; i++) {
		const struct dest_region *g = &d->regions[i];

		if (a >= g->addr && a < g->addr + g->len &&
		    len <= g->len - (size_t)(a - g->addr))
			return g;
	}
	return NULL;
}

static int post_req(struct dest_chan *p, struct rmig_read_req *r)
{
	struct rmig_dest *d = p->dest;
	const struct dest_region *g = region_of(d, r->buf, r->len);
	/* Checked at submit against the same table. */
	const struct rmig_read_key *k = &d->src_key[r->block];
	struct rmig_read rd = {
		.addr = r->buf, .len = r->len, .mr = g->mr,
		.raddr = k->raddr + r->offset, .rkey = k->rkey,
	};

	return rmig_chan_read(&p->ch, &rd, r->block, r->offset, r);
}

/* The final SYNC during the pull: checked, noted, the caller told. */
static int pull_sync(struct dest_chan *p, struct rmig_msg *m)
{
	struct rmig_sync_msg sm;
	int ret = rmig_dest_sync_check(p, m, &sm);

	if (ret)
		return ret;
	if (!(sm.flags & RMIG_SYNC_FINAL))
		return rmig_err(-EPROTO, "SYNC %llu after the post-copy "
				"switch is not the final one",
				(unsigned long long)sm.sync_num);
	ret = rmig_chan_msg_done(&p->ch, m);
	if (ret)
		return ret;
	p->sync_num = sm.sync_num;
	p->sync_flags = sm.flags;
	p->final_pending = true;
	RMIG_STAT_ADD(&p->ch, syncs, 1);
	sem_post(&p->dest->sync_arrived);
	return 0;
}

/* Wait for every posted read, handing each back as it completes.  The
 * idle limit bounds it (a dead peer fails the poll). */
static int drain_reads(struct dest_chan *p)
{
	struct rmig_chan *ch = &p->ch;

	ch->awaiting = "completions of RDMA READs";
	while (ch->reads_outstanding) {
		int ret = rmig_chan_progress(ch, (int)rmig_param(
						     RMIG_PARAM_POLL_SLICE_MS));

		deliver(p);
		if (ret)
			return ret;
	}
	ch->awaiting = NULL;
	return 0;
}

/* The session failed (@err): hand back everything this channel holds. */
static void pull_abandon(struct dest_chan *p, int err)
{
	struct rmig_chan *ch = &p->ch;
	void *left[16];
	const unsigned max = sizeof(left) / sizeof(left[0]);
	unsigned n;

	close_queues(p, err);
	deliver(p);
	/* A read still posted may yet write its buffer: wait for it, until
	 * the connection fails too (then the adapter has let it go). */
	(void)drain_reads(p);
	deliver(p);
	pthread_mutex_lock(&p->dest->rq_lock);
	do {
		n = rmig_chan_abandon_reads(ch, left, max);
		for (unsigned i = 0; i < n; i++)
			done_locked(p->dest, left[i], err);
	} while (n == max);
	pthread_cond_broadcast(&p->dest->rq_cond);
	pthread_mutex_unlock(&p->dest->rq_lock);
}

/* The caller released the final SYNC: cancel what is still queued, wait
 * for what is posted, acknowledge. */
static int pull_finish(struct dest_chan *p)
{
	struct rmig_chan *ch = &p->ch;
	uint8_t *buf;
	int idx, ret;

	close_queues(p, -ECANCELED);
	ret = drain_reads(p);
	if (ret)
		return ret;
	idx = rmig_chan_tx_get(ch, &buf, -1);
	if (idx < 0)
		return idx;
	return rmig_chan_tx_send(ch, idx, RMIG_MSG_SYNC_ACK,
				 rmig_sync_ack_encode(p->sync_num, buf));
}

static int pull_loop(struct dest_chan *p)
{
	struct rmig_dest *d = p->dest;
	struct rmig_chan *ch = &p->ch;
	const unsigned slots = ch->tp->attr.max_read;
	struct rmig_msg m;
	int ret;

	for (;;) {
		deliver(p);
		while (ch->reads_outstanding + ch->nrdone < slots) {
			struct rmig_read_req *r = take(p);

			if (!r)
				break;
			ret = post_req(p, r);
			if (ret) {
				pthread_mutex_lock(&d->rq_lock);
				done_locked(d, r, ret);
				pthread_mutex_unlock(&d->rq_lock);
				return ret;
			}
		}
		deliver(p);
		ret = rmig_chan_recv(ch, &m, 0);
		if (ret < 0)
			return ret;
		if (ret) {
			if (m.type != RMIG_MSG_SYNC || p->final_pending)
				return rmig_err(-EPROTO, "unexpected %s "
						"message after the post-copy "
						"switch",
						rmig_msg_type_name(m.type));
			ret = pull_sync(p, &m);
			if (ret)
				return ret;
			continue;
		}
		/* That poll may have completed reads: hand them back
		 * before any wait. */
		if (ch->nrdone)
			continue;
		if (p->final_pending && sem_trywait(&p->release) == 0) {
			if (rmig_sess_failed(&d->s))
				return rmig_sess_check(&d->s);
			return pull_finish(p);
		}
		if (rmig_sess_failed(&d->s))
			return rmig_sess_check(&d->s);
		ch->awaiting = p->final_pending ?
			"the caller's reads (the final SYNC came)" :
			"the caller's reads or the final SYNC";
		ret = rmig_chan_progress(ch, (int)rmig_param(
						 RMIG_PARAM_POLL_SLICE_MS));
		ch->awaiting = NULL;
		if (ret)
			return ret;
	}
}

int rmig_dest_pull(struct dest_chan *p)
{
	int ret = pull_loop(p);

	if (ret) {
		int err = rmig_sess_failed(&p->dest->s) ?
			  atomic_load(&p->dest->s.err) : ret;
		char msg[RMIG_ERR_MSG_MAX];

		/* Keep the message for the thread's exit path. */
		snprintf(msg, sizeof(msg), "%s", rmig_err_msg());
		pull_abandon(p, err);
		rmig_err(ret, "%s", msg);
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* Caller side                                                         */

/* Field by field: the struct has padding, which decoding leaves as it
 * found it. */
static bool same_key(const struct rmig_read_key *a,
		     const struct rmig_read_key *b)
{
	return a->block == b->block && a->length == b->length &&
	       a->raddr == b->raddr && a->rkey == b->rkey;
}

int rmig_dest_pull_start(struct rmig_dest *d)
{
	struct dest_chan *c0 = d->chans[0];

	for (unsigned i = 1; i < d->nchans; i++) {
		struct dest_chan *p = d->chans[i];
		bool same = p->nrkeys == c0->nrkeys;

		for (unsigned k = 0; same && k < c0->nrkeys; k++)
			same = same_key(&p->rkeys[k], &c0->rkeys[k]);
		if (!same)
			return rmig_err(-EPROTO, "READ_KEYS of channel %u "
					"differ from channel 0's", i);
	}
	for (unsigned i = 0; i < c0->nrkeys; i++) {
		d->src_key[c0->rkeys[i].block] = c0->rkeys[i];
		d->src_keyed[c0->rkeys[i].block] = true;
	}
	/* Publishes src_key and src_keyed.  Pairs with the acquire load in
	 * rmig_dest_read_submit(). */
	atomic_store_explicit(&d->pull, 1, memory_order_release);
	return 0;
}

void rmig_dest_pull_wake(struct rmig_dest *d)
{
	pthread_mutex_lock(&d->rq_lock);
	pthread_cond_broadcast(&d->rq_cond);
	pthread_mutex_unlock(&d->rq_lock);
}

void rmig_dest_pull_fini(struct rmig_dest *d)
{
	unsigned n = atomic_load(&d->nregions);

	for (unsigned i = 0; i < n; i++)
		d->s.tp->ops.mr_dereg(d->regions[i].mr);
	atomic_store(&d->nregions, 0);
}

int rmig_dest_read_region(rmig_dest *d, void *addr, size_t len)
{
	struct rmig_prov_mr *mr;
	unsigned n;
	int ret;

	if (!d || !addr || !len)
		return rmig_err(-EINVAL, "read_region: %s", !d ? "session is "
				"NULL" : !addr ? "address is NULL" :
				"length is 0");
	ret = rmig_sess_check(&d->s);
	if (ret)
		return ret;
	if (atomic_load(&d->s.state) != RMIG_STATE_ACTIVE)
		return rmig_err(-ENOTCONN, "read_region: session is %s, not "
				"active (after rmig_dest_accept())",
				rmig_state_name(atomic_load(&d->s.state)));
	if (!d->s.tp->attr.max_read)
		return rmig_err(-EOPNOTSUPP, "read_region: transport %s has "
				"no RDMA READ", d->s.tp->attr.name);
	pthread_mutex_lock(&d->rq_lock);
	n = atomic_load_explicit(&d->nregions, memory_order_relaxed);
	if (n == RMIG_READ_REGIONS) {
		pthread_mutex_unlock(&d->rq_lock);
		return rmig_err(-ENOSPC, "read_region: %u regions registered "
				"already", RMIG_READ_REGIONS);
	}
	ret = d->s.tp->ops.mr_reg(d->s.tp->dom, addr, len,
				  RMIG_MR_READ_TARGET, &mr);
	if (ret) {
		pthread_mutex_unlock(&d->rq_lock);
		rmig_err_prefix("read_region: %zu bytes at %p", len, addr);
		return ret;
	}
	d->regions[n] = (struct dest_region){ .addr = addr, .len = len,
					      .mr = mr };
	/* Publishes regions[n].  Pairs with the acquire load in
	 * region_of(). */
	atomic_store_explicit(&d->nregions, n + 1, memory_order_release);
	pthread_mutex_unlock(&d->rq_lock);
	return 0;
}

static int check_req(struct rmig_dest *d, const struct rmig_read_req *r,
		     unsigned flags)
{
	struct rmig_session *s = &d->s;
	const struct rmig_read_key *k;

	if (flags & ~RMIG_READ_URGENT)
		return rmig_err(-EINVAL, "read_submit: unknown flags 0x%x",
				flags & ~RMIG_READ_URGENT);
	if (r->block < 0 || (unsigned)r->block >= s->nblocks)
		return rmig_err(-EINVAL, "read_submit: block %d (the session "
				"has %u)", r->block, s->nblocks);
	if (!d->src_keyed[r->block])
		return rmig_err(-EINVAL, "read_submit: block '%s' is not "
				"readable (the source sent no key for it)",
				s->blocks[r->block].name);
	k = &d->src_key[r->block];
	if (!r->len || r->len > RMIG_READ_MAX ||
	    r->len > s->tp->attr.max_msg_size)
		return rmig_err(-EINVAL, "read_submit: length %llu (1..%llu)",
				(unsigned long long)r->len,
				(unsigned long long)(RMIG_READ_MAX <
				s->tp->attr.max_msg_size ? RMIG_READ_MAX :
				s->tp->attr.max_msg_size));
	if (r->offset > k->length || r->len > k->length - r->offset)
		return rmig_err(-EINVAL, "read_submit: bytes 0x%llx..0x%llx "
				"past the end of block '%s' (%llu bytes)",
				(unsigned long long)r->offset,
				(unsigned long long)(r->offset + r->len),
				s->blocks[r->block].name,
				(unsigned long long)k->length);
	if (!region_of(d, r->buf, r->len))
		return rmig_err(-EINVAL, "read_submit: buffer %p (%llu bytes) "
				"is not inside a read region "
				"(rmig_dest_read_region())", r->buf,
				(unsigned long long)r->len);
	return 0;
}

int rmig_dest_read_submit(rmig_dest *d, struct rmig_read_req *r,
			  unsigned flags)
{
	struct dest_chan *p;
	int ret;

	if (!d || !r)
		return rmig_err(-EINVAL, "read_submit: %s is NULL",
				d ? "request" : "session");
	/* Pairs with the release store in rmig_dest_pull_start(). */
	if (atomic_load_explicit(&d->pull, memory_order_acquire) != 1)
		return rmig_err(-ENOTCONN, "read_submit: not in post-copy (%s)",
				atomic_load(&d->pull) ? "the final sync came" :
				"the source's switch has not come");
	ret = rmig_sess_check(&d->s);
	if (ret)
		return ret;
	ret = check_req(d, r, flags);
	if (ret)
		return ret;
	pthread_mutex_lock(&d->rq_lock);
	if ((flags & RMIG_READ_URGENT) || d->nchans == 1) {
		p = d->chans[0];
	} else {
		p = d->chans[1 + d->bg_next % (d->nchans - 1)];
		d->bg_next++;
	}
	if (p->rq_closed) {
		pthread_mutex_unlock(&d->rq_lock);
		ret = rmig_sess_check(&d->s);
		return ret ? ret : rmig_err(-ENOTCONN, "read_submit: "
					    "post-copy is over");
	}
	r->next_ = NULL;
	r->flags_ = flags;
	r->status = -EINPROGRESS;
	if (flags & RMIG_READ_URGENT) {
		if (p->uq_tail)
			p->uq_tail->next_ = r;
		else
			p->uq_head = r;
		p->uq_tail = r;
	} else {
		if (p->bq_tail)
			p->bq_tail->next_ = r;
		else
			p->bq_head = r;
		p->bq_tail = r;
	}
	d->held++;
	pthread_mutex_unlock(&d->rq_lock);
	p->ch.tp->ops.conn_wake(p->ch.conn);
	return 0;
}

/* Move up to @max - @n completions of the list @head .. @tail to
 * @done[@n..]; under rq_lock. */
static unsigned pop_list(struct rmig_read_req **head,
			 struct rmig_read_req **tail,
			 struct rmig_read_req **done, unsigned n, unsigned max)
{
	while (n < max && *head) {
		struct rmig_read_req *r = *head;

		*head = r->next_;
		if (!*head)
			*tail = NULL;
		r->next_ = NULL;
		done[n++] = r;
	}
	return n;
}

/* Up to @max completions into @done, urgent ones first; under rq_lock. */
static unsigned pop_done(struct rmig_dest *d, struct rmig_read_req **done,
			 unsigned max)
{
	unsigned n = pop_list(&d->udone_head, &d->udone_tail, done, 0, max);

	return pop_list(&d->done_head, &d->done_tail, done, n, max);
}

int rmig_dest_read_wait(rmig_dest *d, struct rmig_read_req **done,
			unsigned max, int timeout_ms)
{
	struct timespec dl;
	bool failed = false, over = false;
	unsigned n;

	if (!d || !done || !max)
		return rmig_err(-EINVAL, "read_wait: %s", !d ? "session is "
				"NULL" : !done ? "done is NULL" : "max is 0");
	if (timeout_ms > 0)
		dl = rmig_timespec_after(CLOCK_REALTIME, timeout_ms);
	pthread_mutex_lock(&d->rq_lock);
	for (;;) {
		n = pop_done(d, done, max);
		if (n || timeout_ms == 0)
			break;
		/* Nothing held any more, and nothing will be: a failed
		 * session or the end of post-copy (the kick and the final
		 * sync broadcast rq_cond). */
		if (!d->held) {
			failed = rmig_sess_failed(&d->s);
			over = atomic_load(&d->pull) == 2;
			if (failed || over)
				break;
		}
		if (timeout_ms < 0) {
			pthread_cond_wait(&d->rq_cond, &d->rq_lock);
		} else if (pthread_cond_timedwait(&d->rq_cond, &d->rq_lock,
						  &dl) == ETIMEDOUT) {
			n = pop_done(d, done, max);
			break;
		}
	}
	pthread_mutex_unlock(&d->rq_lock);
	if (failed)
		return rmig_sess_check(&d->s);
	if (over)
		return rmig_err(-ENOTCONN, "read_wait: post-copy is over and "
				"no read is left");
	return (int)n;
}

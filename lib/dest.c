/* SPDX-License-Identifier: MIT */
/*
 * dest.c - the destination session: accepts and checks each channel's
 * handshake before revealing any memory key, then one thread per channel
 * receives packet headers (the pages themselves were written into the
 * registered RAM by the source's RDMA WRITEs, which RC / FI_ORDER_SAW
 * ordering puts in place before the header arrives), zeroes pages listed as
 * zero where they are not already, marks the received bitmap, reassembles
 * device-state blobs, and stops at SYNC markers until the caller has seen
 * every channel stop (rmig_dest_wait_sync()).
 *
 * Creating, listening, accepting and destroying the session: dest_accept.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dest.h"
#include "rmig_numa.h"
#include "zero.h"
void rmig_dest_kick(void *arg)
{
	struct rmig_dest *d = arg;
	/* Pairs with the release store after pthread_create(). */
	unsigned n = atomic_load_explicit(&d->nthreads, memory_order_acquire);

	for (unsigned i = 0; i < n; i++) {
		sem_post(&d->chans[i]->release);
		d->chans[i]->ch.tp->ops.conn_wake(d->chans[i]->ch.conn);
	}
	for (unsigned i = 0; i <= n; i++)
		sem_post(&d->sync_arrived);
	rmig_dest_pull_wake(d);
}

/* ------------------------------------------------------------------ */
/* Channel thread                                                      */

static void mark_received(struct rmig_block *b, uint64_t page)
{
	uint64_t mask = 1ull << (page % 64);
	uint64_t old = atomic_fetch_or_explicit(&b->received[page / 64], mask,
						memory_order_relaxed);

	if (!(old & mask))
		atomic_fetch_add_explicit(&b->received_count, 1,
					  memory_order_relaxed);
}

static int handle_packet(struct dest_chan *p, struct rmig_msg *m)
{
	struct rmig_dest *d = p->dest;
	struct rmig_session *s = &d->s;
	struct rmig_chan *ch = &p->ch;
	const uint64_t ps = s->page_size;
	struct rmig_packet_hdr h;
	struct rmig_block *b;
	uint64_t cleared = 0;
	int ret;

	ret = rmig_packet_decode(m->data, m->len, &d->lim, &h);
	if (ret)
		return ret;
	if (h.packet_num != p->packets_recv)
		return rmig_err(-EPROTO, "packet number %llu, expected %llu",
				(unsigned long long)h.packet_num,
				(unsigned long long)p->packets_recv);
	/* Every offset below was checked by rmig_packet_decode(): aligned and
	 * inside the block. */
	b = &s->blocks[h.block];
	for (uint32_t i = 0; i < h.normal_count; i++)
		mark_received(b, rmig_packet_offset(&h, i) / ps);
	for (uint32_t i = 0; i < h.zero_count; i++) {
		uint64_t off = rmig_packet_offset(&h, h.normal_count + i);
		uint8_t *page = b->host + off;

		if (!rmig_buffer_is_zero(page, ps)) {
			memset(page, 0, ps);
			cleared++;
		}
		mark_received(b, off / ps);
	}
	p->packets_recv++;
	RMIG_STAT_ADD(ch, packets, 1);
	RMIG_STAT_ADD(ch, normal_pages, h.normal_count);
	RMIG_STAT_ADD(ch, zero_pages, h.zero_count);
	RMIG_STAT_ADD(ch, bytes, (uint64_t)h.normal_count * ps);
	if (cleared)
		atomic_fetch_add_explicit(&d->zero_cleared, cleared,
					  memory_order_relaxed);
	return 0;
}

static void ds_free(struct ds_node *n)
{
	if (n) {
		free(n->ds.data);
		free(n);
	}
}

/* Count the blob whose first fragment @f just came, whole, in the bytes
 * held: -ENOSPC when that would exceed devstate_max (blobs received and
 * not taken yet, or being reassembled on any channel). */
static int ds_reserve(struct rmig_dest *d, const struct rmig_devstate_frag *f)
{
	uint64_t max = d->s.devstate_max;
	int ret = 0;

	pthread_mutex_lock(&d->ds_lock);
	if (d->ds_held + f->total_len > max)
		ret = rmig_err(-ENOSPC, "device state: blob %u ('%s', %llu "
			       "bytes) would make %llu bytes held, above "
			       "devstate_max %llu (%llu held already: blobs "
			       "received and not taken by "
			       "rmig_dest_recv_devstate(), or being "
			       "reassembled)", f->seq, f->idstr,
			       (unsigned long long)f->total_len,
			       (unsigned long long)(d->ds_held + f->total_len),
			       (unsigned long long)max,
			       (unsigned long long)d->ds_held);
	else
		d->ds_held += f->total_len;
	if (d->ds_held > d->ds_held_max)
		d->ds_held_max = d->ds_held;
	pthread_mutex_unlock(&d->ds_lock);
	return ret;
}

/* Undo ds_reserve() for a blob dropped or taken. */
static void ds_unreserve(struct rmig_dest *d, uint64_t len)
{
	pthread_mutex_lock(&d->ds_lock);
	d->ds_held -= len;
	pthread_mutex_unlock(&d->ds_lock);
}

static int ds_enqueue(struct rmig_dest *d, struct ds_node *n)
{
	struct ds_node **pp;
	int ret = 0;

	pthread_mutex_lock(&d->ds_lock);
	if (n->seq < d->ds_next) {
		ret = rmig_err(-EPROTO, "device state: blob %u ('%s') "
			       "delivered already", n->seq, n->ds.idstr);
		goto out;
	}
	for (pp = &d->ds_list; *pp && (*pp)->seq < n->seq; pp = &(*pp)->next)
		;
	if (*pp && (*pp)->seq == n->seq) {
		ret = rmig_err(-EPROTO, "device state: blob %u ('%s') "
			       "received twice", n->seq, n->ds.idstr);
		goto out;
	}
	n->next = *pp;
	*pp = n;
out:
	pthread_mutex_unlock(&d->ds_lock);
	return ret;
}

static int handle_devstate(struct dest_chan *p, struct rmig_msg *m)
{
	struct rmig_dest *d = p->dest;
	struct rmig_devstate_frag f;
	struct ds_node *n = p->cur;
	int ret;

	ret = rmig_devstate_decode(m->data, m->len, d->s.devstate_max, &f);
	if (ret)
		return ret;
	if (f.frag_off == 0) {
		if (n)
			return rmig_err(-EPROTO, "device state: blob %u starts "
					"before blob %u ('%s') is complete",
					f.seq, n->seq, n->ds.idstr);
		ret = ds_reserve(d, &f);
		if (ret)
			return ret;
		n = calloc(1, sizeof(*n));
		if (!n || !(n->ds.data = malloc(f.total_len ? f.total_len :
							      1))) {
			free(n);
			ds_unreserve(d, f.total_len);
			return rmig_err(-ENOMEM, "device state '%s': cannot "
					"allocate %llu bytes", f.idstr,
					(unsigned long long)f.total_len);
		}
		memcpy(n->ds.idstr, f.idstr, f.idstr_len);
		n->ds.instance_id = f.instance_id;
		n->ds.len = f.total_len;
		n->seq = f.seq;
		p->cur = n;
		p->cur_off = 0;
	} else if (!n || n->seq != f.seq || n->ds.len != f.total_len ||
		   n->ds.instance_id != f.instance_id ||
		   strcmp(n->ds.idstr, f.idstr) || p->cur_off != f.frag_off) {
		return rmig_err(-EPROTO, "device state: fragment of blob %u "
				"('%s') at offset %llu does not continue the "
				"blob in progress", f.seq, f.idstr,
				(unsigned long long)f.frag_off);
	}
	memcpy((uint8_t *)n->ds.data + f.frag_off, f.data, f.frag_len);
	p->cur_off += f.frag_len;
	if (p->cur_off < n->ds.len)
		return 0;
	p->cur = NULL;
	/* Count before handing the node over: the caller may take and free
	 * it as soon as ds_enqueue() drops the lock. */
	size_t len = n->ds.len;

	ret = ds_enqueue(d, n);
	if (ret) {
		ds_free(n);
		ds_unreserve(d, len);
		return ret;
	}
	atomic_fetch_add_explicit(&d->devstate_blobs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->devstate_bytes, len,
				  memory_order_relaxed);
	return 0;
}

/*
 * Wait at a SYNC marker until the caller releases us (the post of
 * p->release in rmig_dest_wait_sync() or the session's kick), waking when a
 * keepalive is due to answer the source's and send ours: the source waits
 * for our SYNC_ACK for as long as our caller takes, and a source that
 * vanishes meanwhile is noticed at the idle limit.  The semaphore orders
 * what the caller wrote before its post before what we read after.
 */
static int park(struct dest_chan *p)
{
	struct rmig_chan *ch = &p->ch;
	int ret;

	ch->awaiting = "the peer's keepalives (parked at a SYNC marker)";
	ret = rmig_chan_wait_sem(ch, &p->release);
	ch->awaiting = NULL;
	return ret;
}

int rmig_dest_sync_check(struct dest_chan *p, struct rmig_msg *m,
			 struct rmig_sync_msg *sm)
{
	int ret = rmig_sync_decode(m->data, m->len, sm);

	if (ret)
		return ret;
	if (sm->sync_num != p->sync_num + 1)
		return rmig_err(-EPROTO, "SYNC number %llu, expected %llu",
				(unsigned long long)sm->sync_num,
				(unsigned long long)p->sync_num + 1);
	if (sm->packets != p->packets_recv)
		return rmig_err(-EPROTO, "SYNC %llu: source sent %llu packets, "
				"%llu arrived", (unsigned long long)sm->sync_num,
				(unsigned long long)sm->packets,
				(unsigned long long)p->packets_recv);
	if (p->cur)
		return rmig_err(-EPROTO, "SYNC %llu inside device-state blob "
				"%u", (unsigned long long)sm->sync_num,
				p->cur->seq);
	if (p->dest->s.postcopy_resume && !p->sync_num &&
	    !(sm->flags & RMIG_SYNC_POSTCOPY))
		return rmig_err(-EPROTO, "SYNC %llu: a session resuming a "
				"post-copy starts with the switch",
				(unsigned long long)sm->sync_num);
	if ((sm->flags & RMIG_SYNC_POSTCOPY) && !p->nrkeys)
		return rmig_err(-EPROTO, "SYNC %llu: the post-copy switch "
				"without READ_KEYS before it",
				(unsigned long long)sm->sync_num);
	return 0;
}

/* Stop at the marker until the caller releases us, then acknowledge. */
static int handle_sync(struct dest_chan *p, struct rmig_msg *m)
{
	struct rmig_dest *d = p->dest;
	struct rmig_chan *ch = &p->ch;
	struct rmig_sync_msg sm;
	uint8_t *buf;
	int idx, ret;

	ret = rmig_dest_sync_check(p, m, &sm);
	if (ret)
		return ret;
	ret = rmig_chan_msg_done(ch, m);
	if (ret)
		return ret;
	p->sync_num = sm.sync_num;
	p->sync_flags = sm.flags;
	RMIG_STAT_ADD(ch, syncs, 1);
	sem_post(&d->sync_arrived);
	ret = park(p);
	if (ret)
		return ret;
	if (rmig_sess_failed(&d->s))
		return rmig_sess_check(&d->s);
	idx = rmig_chan_tx_get(ch, &buf, -1);
	if (idx < 0)
		return idx;
	return rmig_chan_tx_send(ch, idx, RMIG_MSG_SYNC_ACK,
				 rmig_sync_ack_encode(sm.sync_num, buf));
}

void *rmig_dest_thread(void *arg)
{
	struct dest_chan *p = arg;
	struct rmig_dest *d = p->dest;
	struct rmig_session *s = &d->s;
	struct rmig_chan *ch = &p->ch;
	struct rmig_msg m;
	int ret = rmig_numa_bind_thread(s->numa_node);

	if (ret)
		rmig_log_warn("channel %u: %s; running unbound", ch->id,
			      rmig_err_msg());
	rmig_chan_go_live(ch);
	for (;;) {
		ch->awaiting = p->cur ? "the rest of a device-state blob" :
			       "a packet, device state or SYNC";
		ret = rmig_chan_recv(ch, &m, -1);
		if (ret < 0)
			break;
		if (ret == 0)
			continue;
		switch (m.type) {
		case RMIG_MSG_PACKET:
			/* Nothing is registered, and the guest's memory may
			 * be under userfaultfd: no page may come. */
			ret = s->postcopy_resume ?
			      rmig_err(-EPROTO, "PACKET in a session resuming "
				       "a post-copy") : handle_packet(p, &m);
			break;
		case RMIG_MSG_DEVSTATE:
			ret = handle_devstate(p, &m);
			break;
		case RMIG_MSG_READ_KEYS:
			ret = rmig_dest_read_keys(p, &m);
			break;
		case RMIG_MSG_SYNC:
			ret = handle_sync(p, &m);
			if (ret)
				goto out;
			if (p->sync_flags & RMIG_SYNC_POSTCOPY) {
				/* The switch: only reads from here on, until
				 * the final SYNC is acknowledged. */
				ret = rmig_dest_pull(p);
				if (ret)
					goto out;
				rmig_chan_go_quiet(ch);
				ret = rmig_chan_drain(ch, 5000);
				goto out;
			}
			if (p->sync_flags & RMIG_SYNC_FINAL) {
				/* Done: the source leaves after our
				 * SYNC_ACK. */
				rmig_chan_go_quiet(ch);
				ret = rmig_chan_drain(ch, 5000);
				goto out;
			}
			continue; /* the buffer went back already */
		default:
			ret = rmig_err(-EPROTO, "unexpected %s message",
				       rmig_msg_type_name(m.type));
			break;
		}
		if (ret)
			break;
		ret = rmig_chan_msg_done(ch, &m);
		if (ret)
			break;
	}
out:
	rmig_chan_go_quiet(ch);
	/* Record it unless the session failed first (then it is only the
	 * echo of that failure). */
	if (ret && !rmig_sess_failed(s))
		rmig_sess_fail(s, ret, "channel %u (%s): %s", ch->id, ch->peer,
			       rmig_err_msg());
	if (rmig_sess_failed(s)) {
		char text[RMIG_ERR_MSG_MAX];

		/* Tell the source why, where the connection still works, so
		 * it fails with our reason rather than a reset. */
		snprintf(text, sizeof(text), "destination: %s",
			 rmig_sess_errmsg(s));
		rmig_chan_send_error(ch, atomic_load(&s->err), text);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Caller side                                                         */

static int check_active(struct rmig_dest *d, const char *what)
{
	int ret = rmig_sess_check(&d->s);

	if (ret)
		return ret;
	if (atomic_load(&d->s.state) != RMIG_STATE_ACTIVE)
		return rmig_err(-ENOTCONN, "%s: session is %s, not active",
				what, rmig_state_name(atomic_load(&d->s.state)));
	return 0;
}

static int sem_wait_deadline(sem_t *sem, int timeout_ms, struct timespec *dl)
{
	if (timeout_ms < 0) {
		rmig_sem_wait(sem);
		return 0;
	}
	while (sem_timedwait(sem, dl)) {
		if (errno == ETIMEDOUT)
			return -ETIMEDOUT;
	}
	return 0;
}

static const char *sync_kind(uint32_t flags)
{
	if (flags & RMIG_SYNC_FINAL)
		return " (final)";
	if (flags & RMIG_SYNC_POSTCOPY)
		return " (post-copy switch)";
	return "";
}

int rmig_dest_wait_sync(rmig_dest *d, int timeout_ms)
{
	struct rmig_session *s;
	struct timespec dl;
	uint32_t flags;
	bool final, pulling;
	int ret;

	if (!d)
		return rmig_err(-EINVAL, "wait_sync: session is NULL");
	s = &d->s;
	if (d->final_done)
		return 1;
	ret = check_active(d, "wait_sync");
	if (ret)
		return ret;
	dl = rmig_timespec_after(CLOCK_REALTIME, timeout_ms > 0 ? timeout_ms :
				 0);
	while (d->arrived < d->nchans) {
		if (sem_wait_deadline(&d->sync_arrived, timeout_ms, &dl))
			return rmig_err(-ETIMEDOUT, "wait_sync: %u of %u "
					"channels at the SYNC marker after %d "
					"ms", d->arrived, d->nchans,
					timeout_ms);
		ret = rmig_sess_check(s);
		if (ret)
			return ret;
		d->arrived++;
	}
	/* Every channel posted sync_arrived after writing its sync_num and
	 * sync_flags; our waits on it order those reads. */
	flags = d->chans[0]->sync_flags;
	final = flags & RMIG_SYNC_FINAL;
	for (unsigned i = 1; i < d->nchans; i++) {
		if (d->chans[i]->sync_num != d->chans[0]->sync_num ||
		    d->chans[i]->sync_flags != flags)
			return rmig_sess_fail(s, -EPROTO, "sync: channel %u "
					      "at sync %llu%s, channel 0 at "
					      "%llu%s", i,
					      (unsigned long long)
					      d->chans[i]->sync_num,
					      sync_kind(d->chans[i]->sync_flags),
					      (unsigned long long)
					      d->chans[0]->sync_num,
					      sync_kind(flags));
	}
	/* Every blob sent before this sync has arrived: the ones waiting
	 * must follow on from ds_next without a gap, or the source skipped
	 * one (and the rest could pile up for ever). */
	pthread_mutex_lock(&d->ds_lock);
	uint32_t want = d->ds_next;
	struct ds_node *n;

	for (n = d->ds_list; n && n->seq == want; n = n->next)
		want++;
	pthread_mutex_unlock(&d->ds_lock);
	if (n)
		return rmig_sess_fail(s, -EPROTO, "sync %llu: device-state "
				      "blob %u missing (blob %u arrived)",
				      (unsigned long long)
				      d->chans[0]->sync_num, want, n->seq);
	if (flags & RMIG_SYNC_POSTCOPY) {
		ret = rmig_dest_pull_start(d);
		if (ret)
			return rmig_sess_fail(s, ret, "sync %llu (post-copy "
					      "switch): %s",
					      (unsigned long long)
					      d->chans[0]->sync_num,
					      rmig_err_msg());
		/* The source writes no more: revoke its write access to
		 * our RAM now. */
		rmig_tp_dereg_ram(s->tp);
	}
	/* From the switch on, the channels wait in their poll (serving
	 * reads), not on release alone. */
	pulling = atomic_load_explicit(&d->pull, memory_order_relaxed) != 0;
	if (final && pulling) {
		/* Post-copy is over: no more submits (a request queued
		 * meanwhile comes back with -ECANCELED). */
		atomic_store_explicit(&d->pull, 2, memory_order_relaxed);
		rmig_dest_pull_wake(d);
	}
	d->arrived = 0;
	atomic_fetch_add_explicit(&d->syncs_done, 1, memory_order_relaxed);
	for (unsigned i = 0; i < d->nchans; i++) {
		sem_post(&d->chans[i]->release);
		if (pulling)
			d->chans[i]->ch.tp->ops.conn_wake(
				d->chans[i]->ch.conn);
	}
	if (flags & RMIG_SYNC_POSTCOPY)
		return RMIG_SYNC_POSTCOPY_SWITCH;
	if (final) {
		d->final_done = true;
		/* Every page is in place: revoke remote access now, so
		 * that no write can land after the migration completed
		 * (whatever the caller does before destroy). */
		rmig_tp_dereg_ram(s->tp);
		return 1;
	}
	return 0;
}

int rmig_dest_recv_devstate(rmig_dest *d, struct rmig_devstate **out)
{
	struct ds_node *n = NULL;

	if (!d || !out)
		return rmig_err(-EINVAL, "recv_devstate: %s is NULL",
				d ? "out" : "session");
	pthread_mutex_lock(&d->ds_lock);
	if (d->ds_list && d->ds_list->seq == d->ds_next) {
		n = d->ds_list;
		d->ds_list = n->next;
		d->ds_next++;
		d->ds_held -= n->ds.len;
	}
	pthread_mutex_unlock(&d->ds_lock);
	if (!n)
		return rmig_err(-EAGAIN, "recv_devstate: no device-state blob "
				"ready");
	/* ds is the node's first member: rmig_devstate_free() frees both. */
	*out = &n->ds;
	return 0;
}

uint64_t rmig_dest_devstate_held_max(rmig_dest *d)
{
	uint64_t v;

	pthread_mutex_lock(&d->ds_lock);
	v = d->ds_held_max;
	pthread_mutex_unlock(&d->ds_lock);
	return v;
}

void rmig_devstate_free(struct rmig_devstate *ds)
{
	ds_free((struct ds_node *)ds);
}

void rmig_dest_join_threads(struct rmig_dest *d)
{
	unsigned n = atomic_load(&d->nthreads);

	if (d->joined)
		return;
	for (unsigned i = 0; i < n; i++)
		pthread_join(d->chans[i]->thread, NULL);
	d->joined = true;
}

int rmig_dest_finish(rmig_dest *d)
{
	int ret;

	if (!d)
		return rmig_err(-EINVAL, "finish: session is NULL");
	while (!d->final_done) {
		ret = rmig_dest_wait_sync(d, -1);
		if (ret < 0)
			return ret;
	}
	rmig_dest_join_threads(d);
	if (!rmig_sess_transition(&d->s, RMIG_STATE_ACTIVE,
				  RMIG_STATE_COMPLETED))
		return rmig_sess_check(&d->s);
	return 0;
}

void rmig_dest_cancel(rmig_dest *d)
{
	if (d)
		rmig_sess_cancel(&d->s, "migration cancelled by the caller");
}

enum rmig_state rmig_dest_state(rmig_dest *d)
{
	return d ? (enum rmig_state)atomic_load(&d->s.state) :
		   RMIG_STATE_FAILED;
}

const char *rmig_dest_error(rmig_dest *d)
{
	return d ? rmig_sess_errmsg(&d->s) : "session is NULL";
}

int rmig_dest_get_stats(rmig_dest *d, struct rmig_stats *out)
{
	struct rmig_stats st;

	if (!d)
		return rmig_err(-EINVAL, "get_stats: session is NULL");
	/* Pairs with the release store after pthread_create(). */
	rmig_sess_stats(&d->s, d->chan_ptrs,
			atomic_load_explicit(&d->nthreads,
					     memory_order_acquire), &st);
	st.syncs = atomic_load_explicit(&d->syncs_done, memory_order_relaxed);
	st.rejected_handshakes = atomic_load_explicit(&d->rejected,
						      memory_order_relaxed);
	st.zero_pages_cleared = atomic_load_explicit(&d->zero_cleared,
						     memory_order_relaxed);
	st.devstate_blobs = atomic_load_explicit(&d->devstate_blobs,
						 memory_order_relaxed);
	st.devstate_bytes = atomic_load_explicit(&d->devstate_bytes,
						 memory_order_relaxed);
	st.postcopy_reads = atomic_load_explicit(&d->reads,
						 memory_order_relaxed);
	st.postcopy_read_bytes = atomic_load_explicit(&d->read_bytes,
						      memory_order_relaxed);
	return rmig_stats_copy_out(out, &st);
}

int64_t rmig_dest_block_received(rmig_dest *d, int block)
{
	if (!d)
		return rmig_err(-EINVAL, "block_received: session is NULL");
	if (block < 0 || (unsigned)block >= d->s.nblocks ||
	    !d->s.blocks[block].received)
		return rmig_err(-EINVAL, "block_received: block index %d out "
				"of range (%u blocks%s)", block, d->s.nblocks,
				d->nlis ? "" : ", not listening yet");
	return atomic_load_explicit(&d->s.blocks[block].received_count,
				    memory_order_relaxed);
}

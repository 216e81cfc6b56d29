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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "rmig_numa.h"
#include "zero.h"

struct ds_node {
	struct rmig_devstate ds;
	uint32_t seq;
	struct ds_node *next;
};

struct dest_chan {
	struct rmig_chan ch; /* first */
	struct rmig_dest *dest;
	pthread_t thread;
	sem_t release; /* caller -> thread: leave the SYNC marker */
	uint64_t packets_recv;
	/* Written by the channel thread before it posts sync_arrived, read by
	 * the caller after waiting on it: the semaphore orders them. */
	uint64_t sync_num;
	bool sync_final;
	/* Device-state blob being reassembled. */
	struct ds_node *cur;
	uint64_t cur_off;
};

/* A listener and the transport it listens with. */
struct dest_listener {
	struct rmig_tp *tp;
	struct rmig_prov_listener *l;
};

struct rmig_dest {
	struct rmig_session s;
	/* One a transport the session holds: two while a destination in
	 * transport auto waits for its first source, else one. */
	struct dest_listener lis[RMIG_MAX_TRANSPORTS];
	unsigned nlis;
	struct dest_chan *chans[RMIG_MAX_CHANNELS];
	struct rmig_chan *chan_ptrs[RMIG_MAX_CHANNELS];
	/* Release after pthread_create(), acquire in dest_kick() and stats. */
	_Atomic unsigned nthreads;
	unsigned nchans;
	sem_t sync_arrived;
	unsigned arrived; /* arrivals counted toward the current sync */
	bool final_done;
	bool joined;
	uint64_t block_len[RMIG_MAX_BLOCKS];
	struct rmig_packet_limits lim;

	pthread_mutex_t ds_lock;
	struct ds_node *ds_list; /* completed blobs, sorted by seq */
	uint32_t ds_next;        /* seq the caller gets next */
	uint64_t ds_queued;      /* bytes in ds_list */

	/* What the caller configured (accept adopts the source's values
	 * when these are unset, and restores them if it fails). */
	bool cfg_uuid_set;
	unsigned cfg_channels;
	/* Pages per packet the source announced (every channel the same):
	 * packet headers with more pages are refused. */
	uint32_t ppp;

	_Atomic uint64_t syncs_done, rejected, zero_cleared, devstate_blobs,
		devstate_bytes;
};

static void dest_kick(void *arg)
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
	if (d->ds_queued + n->ds.len > RMIG_DEVSTATE_MAX_LIMIT) {
		ret = rmig_err(-ENOBUFS, "device state: blob %u ('%s', %zu "
			       "bytes) would make %llu bytes waiting to be "
			       "taken, above the %u limit", n->seq,
			       n->ds.idstr, n->ds.len,
			       (unsigned long long)(d->ds_queued + n->ds.len),
			       RMIG_DEVSTATE_MAX_LIMIT);
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
	d->ds_queued += n->ds.len;
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
		n = calloc(1, sizeof(*n));
		if (!n || !(n->ds.data = malloc(f.total_len ? f.total_len :
							      1))) {
			free(n);
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
		return ret;
	}
	atomic_fetch_add_explicit(&d->devstate_blobs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->devstate_bytes, len,
				  memory_order_relaxed);
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

	ret = rmig_sync_decode(m->data, m->len, &sm);
	if (ret)
		return ret;
	if (sm.sync_num != p->sync_num + 1)
		return rmig_err(-EPROTO, "SYNC number %llu, expected %llu",
				(unsigned long long)sm.sync_num,
				(unsigned long long)p->sync_num + 1);
	if (sm.packets != p->packets_recv)
		return rmig_err(-EPROTO, "SYNC %llu: source sent %llu packets, "
				"%llu arrived", (unsigned long long)sm.sync_num,
				(unsigned long long)sm.packets,
				(unsigned long long)p->packets_recv);
	if (p->cur)
		return rmig_err(-EPROTO, "SYNC %llu inside device-state blob "
				"%u", (unsigned long long)sm.sync_num,
				p->cur->seq);
	ret = rmig_chan_msg_done(ch, m);
	if (ret)
		return ret;
	p->sync_num = sm.sync_num;
	p->sync_final = sm.flags & RMIG_SYNC_FINAL;
	RMIG_STAT_ADD(ch, syncs, 1);
	sem_post(&d->sync_arrived);
	rmig_sem_wait(&p->release);
	if (rmig_sess_failed(&d->s))
		return rmig_sess_check(&d->s);
	idx = rmig_chan_tx_get(ch, &buf, -1);
	if (idx < 0)
		return idx;
	return rmig_chan_tx_send(ch, idx, RMIG_MSG_SYNC_ACK,
				 rmig_sync_ack_encode(sm.sync_num, buf));
}

static void *dest_thread(void *arg)
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
	for (;;) {
		ret = rmig_chan_recv(ch, &m, -1);
		if (ret < 0)
			break;
		if (ret == 0)
			continue;
		switch (m.type) {
		case RMIG_MSG_PACKET:
			ret = handle_packet(p, &m);
			break;
		case RMIG_MSG_DEVSTATE:
			ret = handle_devstate(p, &m);
			break;
		case RMIG_MSG_SYNC:
			ret = handle_sync(p, &m);
			if (ret)
				goto out;
			if (p->sync_final) {
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

int rmig_dest_wait_sync(rmig_dest *d, int timeout_ms)
{
	struct rmig_session *s;
	struct timespec dl;
	bool final;
	int ret;

	if (!d)
		return rmig_err(-EINVAL, "wait_sync: session is NULL");
	s = &d->s;
	if (d->final_done)
		return 1;
	ret = check_active(d, "wait_sync");
	if (ret)
		return ret;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
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
	 * sync_final; our waits on it order those reads. */
	final = d->chans[0]->sync_final;
	for (unsigned i = 1; i < d->nchans; i++) {
		if (d->chans[i]->sync_num != d->chans[0]->sync_num ||
		    d->chans[i]->sync_final != final)
			return rmig_sess_fail(s, -EPROTO, "sync: channel %u "
					      "at sync %llu%s, channel 0 at "
					      "%llu%s", i,
					      (unsigned long long)
					      d->chans[i]->sync_num,
					      d->chans[i]->sync_final ?
					      " (final)" : "",
					      (unsigned long long)
					      d->chans[0]->sync_num,
					      final ? " (final)" : "");
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
	d->arrived = 0;
	atomic_fetch_add_explicit(&d->syncs_done, 1, memory_order_relaxed);
	for (unsigned i = 0; i < d->nchans; i++)
		sem_post(&d->chans[i]->release);
	if (final) {
		d->final_done = true;
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
		d->ds_queued -= n->ds.len;
	}
	pthread_mutex_unlock(&d->ds_lock);
	if (!n)
		return rmig_err(-EAGAIN, "recv_devstate: no device-state blob "
				"ready");
	/* ds is the node's first member: rmig_devstate_free() frees both. */
	*out = &n->ds;
	return 0;
}

void rmig_devstate_free(struct rmig_devstate *ds)
{
	ds_free((struct ds_node *)ds);
}

static void join_threads(struct rmig_dest *d)
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
	join_threads(d);
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

/* ------------------------------------------------------------------ */
/* Setup, handshake, teardown                                          */

int rmig_dest_create_prov(const struct rmig_config *cfg,
			  const struct rmig_provider_ops *prov, rmig_dest **out)
{
	struct rmig_dest *d;
	int ret;

	if (!out)
		return rmig_err(-EINVAL, "dest_create: out is NULL");
	d = calloc(1, sizeof(*d));
	if (!d)
		return rmig_err(-ENOMEM, "dest_create: out of memory");
	ret = rmig_sess_init(&d->s, cfg, prov, true);
	if (ret) {
		free(d);
		return ret;
	}
	sem_init(&d->sync_arrived, 0, 0);
	pthread_mutex_init(&d->ds_lock, NULL);
	d->cfg_uuid_set = d->s.uuid_set;
	d->cfg_channels = d->s.channels;
	d->s.kick = dest_kick;
	d->s.kick_arg = d;
	*out = d;
	return 0;
}

int rmig_dest_create_auto(const struct rmig_config *cfg,
			  const struct rmig_provider_ops *verbs,
			  const struct rmig_provider_ops *fallback,
			  rmig_dest **out)
{
	int ret = rmig_dest_create_prov(cfg, fallback, out);

	if (!ret)
		rmig_sess_set_auto(&(*out)->s, verbs, fallback);
	return ret;
}

int rmig_dest_create(const struct rmig_config *cfg, rmig_dest **out)
{
	return rmig_dest_create_prov(cfg, NULL, out);
}

int rmig_dest_add_block(rmig_dest *d, const char *name, void *host,
			size_t length)
{
	if (!d)
		return rmig_err(-EINVAL, "add_block: session is NULL");
	return rmig_sess_add_block(&d->s, name, host, length);
}

/* Transport auto: listen with verbs too, on the port the first listener
 * got (rdma_cm has its own port space).  Where that fails, the fallback
 * alone serves, and the log says why. */
static void listen_alt(struct rmig_dest *d)
{
	struct rmig_session *s = &d->s;
	struct rmig_tp *tp = NULL;
	struct rmig_prov_listener *l;
	char name[128];
	int ret;

	if (!s->auto_verbs) {
		rmig_log_info("transport auto: listening with %s only (this "
			      "build has no verbs provider)",
			      s->tp->attr.name);
		rmig_sess_keep_transport(s, s->tp);
		return;
	}
	ret = s->tp->ops.listen_name(d->lis[0].l, name, sizeof(name));
	if (!ret)
		ret = rmig_sess_add_transport(s, s->auto_verbs, name, &tp);
	if (!ret) {
		ret = tp->ops.listen(tp->dom, &l);
		if (ret)
			rmig_err_prefix("%s: listen on %s", tp->attr.name,
					name);
		else
			d->lis[d->nlis++] = (struct dest_listener){ tp, l };
	}
	if (ret) {
		rmig_log_info("transport auto: listening with %s only; verbs "
			      "unavailable (%s: %s)", s->tp->attr.name,
			      strerror(-ret), rmig_err_msg());
		rmig_sess_keep_transport(s, s->tp);
		return;
	}
	rmig_log_info("transport auto: listening on %s with both %s and %s; "
		      "the first source accepted fixes the transport", name,
		      s->tp->attr.name, tp->attr.name);
}

/* Transport auto: the first source is accepted; keep its transport and
 * close the other listener and domain. */
static void commit_transport(struct rmig_dest *d, struct rmig_tp *tp)
{
	struct rmig_session *s = &d->s;

	if (d->nlis < 2)
		return;
	for (unsigned i = 0; i < d->nlis; i++) {
		struct dest_listener *dl = &d->lis[i];

		if (dl->tp == tp)
			continue;
		dl->tp->ops.listen_close(dl->l);
		rmig_log_info("transport auto: the source came over %s; "
			      "closed the %s listener", tp->attr.name,
			      dl->tp->attr.name);
	}
	for (unsigned i = 0; i < d->nlis; i++)
		if (d->lis[i].tp == tp)
			d->lis[0] = d->lis[i];
	d->nlis = 1;
	rmig_sess_keep_transport(s, tp);
}

/* Wait up to @timeout_ms for a connection on either listener; one from
 * the alternative transport makes it the session's (until commit). */
static int listen_get_any(struct rmig_dest *d, int timeout_ms,
			  struct rmig_prov_conn **conn)
{
	uint64_t deadline = rmig_deadline_ns(timeout_ms);
	int ret;

	if (d->nlis == 1)
		return rmig_tp_listen_get(d->lis[0].tp, d->lis[0].l,
						 timeout_ms, conn);
	for (;;) {
		for (unsigned i = 0; i < d->nlis; i++) {
			ret = rmig_tp_listen_get(d->lis[i].tp,
							d->lis[i].l, 25, conn);
			if (ret != -ETIMEDOUT)
				return ret;
		}
		if (rmig_now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}

int rmig_dest_listen(rmig_dest *d)
{
	struct rmig_session *s;
	struct rmig_prov_listener *l;
	int ret;

	if (!d)
		return rmig_err(-EINVAL, "listen: session is NULL");
	s = &d->s;
	if (atomic_load(&s->state) != RMIG_STATE_SETUP || s->tp)
		return rmig_err(-EBUSY, "listen: session is %s or listening "
				"already", rmig_state_name(atomic_load(
					&s->state)));
	ret = rmig_sess_open_domain(s, RMIG_MR_WRITE_TARGET);
	if (ret)
		return ret;
	ret = s->tp->ops.listen(s->tp->dom, &l);
	if (ret) {
		rmig_err_prefix("listen on %s", s->address);
		/* Leave the session as it was, so listen can be retried. */
		rmig_sess_close_domain(s);
		return ret;
	}
	d->lis[0] = (struct dest_listener){ s->tp, l };
	d->nlis = 1;
	for (unsigned i = 0; i < s->nblocks; i++)
		d->block_len[i] = s->blocks[i].length;
	d->lim = (struct rmig_packet_limits){
		.nblocks = s->nblocks,
		.block_len = d->block_len,
		.page_size = s->page_size,
		.pages_per_packet = RMIG_MAX_PAGES_PER_PACKET,
	};
	rmig_log_info("listening on %s over %s", s->address,
		      s->tp->attr.name);
	if (s->auto_mode)
		listen_alt(d);
	return 0;
}

int rmig_dest_get_address(rmig_dest *d, char *buf, size_t len)
{
	if (!d || !buf || !len)
		return rmig_err(-EINVAL, "get_address: NULL argument");
	if (!d->nlis)
		return rmig_err(-ENOTCONN, "get_address: not listening (call "
				"rmig_dest_listen first)");
	return d->lis[0].tp->ops.listen_name(d->lis[0].l, buf, len);
}

int rmig_dest_block_remote(rmig_dest *d, unsigned block, uint64_t *raddr,
			   uint64_t *rkey)
{
	struct rmig_tp *tp;

	if (!d || !raddr || !rkey)
		return rmig_err(-EINVAL, "block_remote: NULL argument");
	tp = d->s.tp;
	if (block >= d->s.nblocks || !tp || !tp->mr[block])
		return rmig_err(-EINVAL, "block_remote: block %u not "
				"registered (%u blocks; listen first)", block,
				d->s.nblocks);
	/* As send_accept() encodes them (for the transport in use). */
	*raddr = tp->mr[block]->raddr;
	*rkey = tp->mr[block]->rkey;
	return 0;
}

static void free_chan(struct dest_chan *p)
{
	if (!p)
		return;
	rmig_chan_fini(&p->ch);
	sem_destroy(&p->release);
	ds_free(p->cur);
	free(p);
}

/* Answer a bad handshake with REJECT and close.  The source has at least
 * one receive buffer posted (it always does before connecting). */
static void reject(struct rmig_dest *d, struct dest_chan *p,
		   enum rmig_reject reason, const char *why)
{
	struct rmig_chan *ch = &p->ch;
	uint8_t *buf;
	int idx;

	atomic_fetch_add_explicit(&d->rejected, 1, memory_order_relaxed);
	rmig_log_warn("rejected a channel from %s: %s", ch->peer, why);
	if (!ch->credits)
		ch->credits = 1;
	idx = rmig_chan_tx_get(ch, &buf, 1000);
	if (idx >= 0 &&
	    !rmig_chan_tx_send(ch, idx, RMIG_MSG_REJECT,
			       rmig_reject_encode(reason, why, buf,
						  RMIG_MSG_SIZE)))
		(void)rmig_chan_drain(ch, 1000);
	free_chan(p);
}

static int send_accept(struct rmig_dest *d, struct dest_chan *p)
{
	struct rmig_session *s = &d->s;
	struct rmig_wire_block *wb = calloc(s->nblocks, sizeof(*wb));
	uint8_t *buf;
	int idx, ret;

	if (!wb)
		return rmig_err(-ENOMEM, "out of memory");
	for (unsigned i = 0; i < s->nblocks; i++) {
		memcpy(wb[i].name, s->blocks[i].name, RMIG_BLOCK_NAME_MAX);
		wb[i].length = s->blocks[i].length;
		wb[i].raddr = p->ch.tp->mr[i]->raddr;
		wb[i].rkey = p->ch.tp->mr[i]->rkey;
		wb[i].page_size = (uint32_t)s->page_size;
	}
	idx = rmig_chan_tx_get(&p->ch, &buf, (int)s->connect_timeout_ms);
	if (idx < 0) {
		free(wb);
		return idx;
	}
	ret = rmig_chan_tx_send(&p->ch, idx, RMIG_MSG_ACCEPT,
				rmig_accept_encode(s->rx_depth, wb, s->nblocks,
						   buf, RMIG_MSG_SIZE));
	free(wb);
	return ret;
}

/*
 * One incoming connection: establish, read the handshake, judge it.  Waits at
 * most @wait_ms for each step, so one silent connection cannot hold up the
 * real source for long.  A connection that fails or is turned away is
 * dropped (return 0); only a failure of this process (-ENOMEM) ends accept.
 * What the handshake makes us adopt (UUID, channel count, the channel id as
 * seen) is committed only once the ACCEPT is sent.
 */
static int accept_one(struct rmig_dest *d, struct rmig_prov_conn *conn,
		      uint64_t *seen, int wait_ms)
{
	struct rmig_session *s = &d->s;
	struct rmig_handshake_expect e;
	char why[RMIG_REJECT_TEXT_MAX];
	enum rmig_reject reason;
	struct rmig_handshake h;
	struct dest_chan *p;
	struct rmig_msg m;
	int ret;

	p = calloc(1, sizeof(*p));
	if (!p) {
		conn->tp->ops.conn_close(conn);
		return rmig_err(-ENOMEM, "out of memory");
	}
	p->dest = d;
	sem_init(&p->release, 0, 0);
	/* Until a source is accepted, the transport of its connection is
	 * the one in use: the channel gets its limits and NUMA node. */
	rmig_sess_use_transport(s, conn->tp);
	ret = rmig_chan_init(&p->ch, s, UINT16_MAX, conn);
	if (ret) {
		conn->tp->ops.conn_close(conn);
		sem_destroy(&p->release);
		free(p);
		if (ret == -ENOMEM)
			return ret;
		rmig_log_warn("dropped an incoming connection: %s",
			      rmig_err_msg());
		return 0;
	}
	/* The source's first credit is implicit; we grant the others. */
	p->ch.ungranted = s->rx_depth - 1;
	ret = p->ch.tp->ops.conn_establish(conn, wait_ms);
	if (ret)
		goto drop;
	if (p->ch.tp->ops.conn_peer_name(conn, p->ch.peer,
					 sizeof(p->ch.peer)))
		snprintf(p->ch.peer, sizeof(p->ch.peer), "unknown peer");
	ret = rmig_chan_recv(&p->ch, &m, wait_ms);
	if (ret == 0)
		ret = rmig_err(-ETIMEDOUT, "no handshake within %d ms",
			       wait_ms);
	if (ret < 0)
		goto drop;
	if (m.type != RMIG_MSG_HANDSHAKE) {
		snprintf(why, sizeof(why), "first message is %s, expected "
			 "HANDSHAKE", rmig_msg_type_name(m.type));
		reject(d, p, RMIG_REJECT_MALFORMED, why);
		return 0;
	}
	if (rmig_handshake_decode(m.data, m.len, &h)) {
		snprintf(why, sizeof(why), "%s", rmig_err_msg());
		reject(d, p, RMIG_REJECT_MALFORMED, why);
		return 0;
	}
	e = (struct rmig_handshake_expect){
		.uuid_set = s->uuid_set,
		.channel_count = s->channels,
		.page_size = (uint32_t)s->page_size,
		.seen = seen,
	};
	memcpy(e.uuid, s->uuid, 16);
	reason = rmig_handshake_check(&h, &e, why, sizeof(why));
	if (reason == RMIG_REJECT_NONE && h.rx_depth > RMIG_IMM_CREDITS_MAX) {
		reason = RMIG_REJECT_MALFORMED;
		snprintf(why, sizeof(why), "rx_depth %u above %u", h.rx_depth,
			 RMIG_IMM_CREDITS_MAX);
	}
	if (reason == RMIG_REJECT_NONE && d->ppp &&
	    h.pages_per_packet != d->ppp) {
		reason = RMIG_REJECT_PACKET_SIZE;
		snprintf(why, sizeof(why), "pages per packet %u, other "
			 "channels announced %u", h.pages_per_packet, d->ppp);
	}
	if (reason != RMIG_REJECT_NONE) {
		/* Nothing about our memory has been said on this
		 * connection; answer why and close it. */
		reject(d, p, reason, why);
		return 0;
	}
	p->ch.id = h.channel_id;
	p->ch.peer_depth = h.rx_depth;
	p->ch.credits = h.rx_depth;
	ret = rmig_chan_msg_done(&p->ch, &m);
	if (!ret)
		ret = send_accept(d, p);
	if (ret)
		goto drop;
	if (!s->uuid_set) {
		memcpy(s->uuid, h.uuid, 16);
		s->uuid_set = true;
	}
	if (!s->channels)
		s->channels = h.channel_count;
	d->ppp = h.pages_per_packet;
	seen[h.channel_id / 64] |= 1ull << (h.channel_id % 64);
	d->chans[h.channel_id] = p;
	d->chan_ptrs[h.channel_id] = &p->ch;
	d->nchans++;
	rmig_log_info("accepted channel %u of %u from %s", h.channel_id,
		      s->channels, p->ch.peer);
	return 0;

drop:
	rmig_log_warn("dropped a connection from %s: %s",
		      p->ch.peer[0] ? p->ch.peer : "unknown peer",
		      rmig_err_msg());
	free_chan(p);
	return ret == -ENOMEM ? ret : 0;
}

int rmig_dest_accept(rmig_dest *d, int timeout_ms)
{
	uint64_t seen[(RMIG_MAX_CHANNELS + 63) / 64] = { 0 };
	struct rmig_session *s;
	uint64_t deadline;
	int ret;

	if (!d)
		return rmig_err(-EINVAL, "accept: session is NULL");
	s = &d->s;
	ret = rmig_sess_check(s);
	if (ret)
		return ret;
	if (!d->nlis)
		return rmig_err(-ENOTCONN, "accept: not listening (call "
				"rmig_dest_listen first)");
	if (atomic_load(&s->state) != RMIG_STATE_SETUP || d->nchans)
		return rmig_err(-EISCONN, "accept: session is %s",
				rmig_state_name(atomic_load(&s->state)));
	deadline = rmig_deadline_ns(timeout_ms);
	while (!s->channels || d->nchans < s->channels) {
		/* A connection's steps wait at most a quarter of the connect
		 * timeout: a real source answers at once, and its own wait
		 * for our ACCEPT is the whole connect timeout. */
		int step = (int)s->connect_timeout_ms / 4;
		struct rmig_prov_conn *conn;
		struct rmig_tp *tp;
		int left = -1;

		if (step < 100)
			step = 100;
		if (timeout_ms >= 0) {
			uint64_t now = rmig_now_ns();

			left = now < deadline ?
			       (int)((deadline - now) / 1000000) : 0;
			if (left < step)
				step = left > 0 ? left : 1;
		}
		ret = rmig_sess_check(s);
		if (ret)
			goto err;
		ret = listen_get_any(d, left < 0 ? 200 :
				     (left < 200 ? left : 200), &conn);
		if (ret == -ETIMEDOUT) {
			if (timeout_ms >= 0 && left == 0) {
				ret = rmig_err(-ETIMEDOUT, "accept: %u of %u "
					       "channels connected after %d "
					       "ms", d->nchans, s->channels,
					       timeout_ms);
				goto err;
			}
			continue;
		}
		if (ret)
			goto err;
		tp = conn->tp; /* conn is gone if accept_one drops it */
		ret = accept_one(d, conn, seen, step);
		if (ret)
			goto err;
		if (d->nchans)
			commit_transport(d, tp);
	}
	d->lim.pages_per_packet = d->ppp;
	for (unsigned i = 0; i < d->nchans; i++) {
		struct dest_chan *p = d->chans[i];
		char name[32];

		ret = pthread_create(&p->thread, NULL, dest_thread, p);
		if (ret) {
			ret = rmig_sess_fail(s, -ret, "accept: cannot start "
					     "channel thread %u: %s", i,
					     strerror(ret));
			join_threads(d);
			return ret;
		}
		snprintf(name, sizeof(name), "rmig-dst/%u", i);
		pthread_setname_np(p->thread, name);
		/* Pairs with the acquire loads in dest_kick() and stats. */
		atomic_store_explicit(&d->nthreads, i + 1,
				      memory_order_release);
	}
	/* A cancel while the threads started may have kicked only some of
	 * them: kick again now that all run (destroy kicks too). */
	if (!rmig_sess_transition(s, RMIG_STATE_SETUP, RMIG_STATE_ACTIVE)) {
		s->kick(s->kick_arg);
		return rmig_sess_check(s);
	}
	return 0;

err:
	/* Channels accepted so far are dropped and what their handshakes
	 * made us adopt is forgotten: the caller may accept again. */
	for (unsigned i = 0; i < RMIG_MAX_CHANNELS; i++) {
		free_chan(d->chans[i]);
		d->chans[i] = NULL;
		d->chan_ptrs[i] = NULL;
	}
	d->nchans = 0;
	d->ppp = 0;
	s->uuid_set = d->cfg_uuid_set;
	s->channels = d->cfg_channels;
	return ret;
}

void rmig_dest_destroy(rmig_dest *d)
{
	if (!d)
		return;
	if (atomic_load(&d->nthreads) && !d->joined) {
		rmig_sess_cancel(&d->s, "session destroyed while active");
		/* Kick even if the session had failed before: every thread
		 * exists now, whatever an earlier kick could reach. */
		d->s.kick(d->s.kick_arg);
	}
	join_threads(d);
	for (unsigned i = 0; i < RMIG_MAX_CHANNELS; i++)
		free_chan(d->chans[i]);
	for (unsigned i = 0; i < d->nlis; i++)
		d->lis[i].tp->ops.listen_close(d->lis[i].l);
	rmig_sess_fini(&d->s);
	while (d->ds_list) {
		struct ds_node *n = d->ds_list;

		d->ds_list = n->next;
		ds_free(n);
	}
	pthread_mutex_destroy(&d->ds_lock);
	sem_destroy(&d->sync_arrived);
	free(d);
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

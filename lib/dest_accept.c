/* SPDX-License-Identifier: MIT */
/*
 * dest_accept.c - setting up and tearing down a destination session:
 * create, listen (in transport auto with both the fallback and verbs),
 * accept each channel and check its handshake before revealing any memory
 * key, keep the transport the first accepted source came over, start the
 * channel threads; destroy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dest.h"

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
	d->s.kick = rmig_dest_kick;
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

/* Transport auto: the first source is accepted over @tp; keep it, close
 * the other listener and transport. */
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

/* Wait up to @timeout_ms for a connection on any listener. */
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
			ret = rmig_tp_listen_get(d->lis[i].tp, d->lis[i].l,
						 25, conn);
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
				"registered (%u blocks; registered from "
				"accept to the final sync)", block,
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
	if (p->cur)
		rmig_devstate_free(&p->cur->ds);
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

/* Turn an unauthenticated connection away: a reason code only; what was
 * wrong (@why) goes to the local log. */
static void auth_reject(struct rmig_dest *d, struct dest_chan *p,
			enum rmig_auth_reject reason, const char *why)
{
	atomic_fetch_add_explicit(&d->rejected, 1, memory_order_relaxed);
	rmig_log_warn("refused a connection from %s (%s): %s",
		      p->ch.peer[0] ? p->ch.peer : "unknown peer",
		      rmig_auth_reject_name(reason), why);
	rmig_chan_auth_reject(&p->ch, reason);
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

/* The HANDSHAKE of an authenticated channel repeats what its AUTH_HELLO
 * announced (and the MACs covered); a difference is a malformed peer. */
static bool hello_matches(const struct rmig_auth_hello *a,
			  const struct rmig_handshake *h, char *why,
			  size_t len)
{
	if (a->channel_id == h->channel_id &&
	    a->channel_count == h->channel_count &&
	    a->page_size == h->page_size &&
	    a->pages_per_packet == h->pages_per_packet)
		return true;
	snprintf(why, len, "HANDSHAKE (channel %u of %u, page size %u, %u "
		 "pages per packet) differs from the AUTH_HELLO (channel %u "
		 "of %u, page size %u, %u pages per packet)", h->channel_id,
		 h->channel_count, h->page_size, h->pages_per_packet,
		 a->channel_id, a->channel_count, a->page_size,
		 a->pages_per_packet);
	return false;
}

/* Authenticate a connection whose first message is @m (or, in an insecure
 * session, turn an authenticating source away), then wait for its next
 * message, the HANDSHAKE, in *@m.  0 with *@hello filled when the source
 * proved the secret (or untouched, insecure); 1 when the connection was
 * turned away (and freed); < 0 to drop it. */
static int auth_one(struct rmig_dest *d, struct dest_chan *p,
		    struct rmig_msg *m, int wait_ms,
		    struct rmig_auth_hello *hello)
{
	struct rmig_session *s = &d->s;
	enum rmig_auth_reject reason;
	int ret;

	if (!s->auth_key) {
		if (m->type != RMIG_MSG_AUTH_HELLO)
			return 0;
		auth_reject(d, p, RMIG_AUTH_REJECT_INSECURE,
			    "it authenticates and this destination has no "
			    "secret (insecure)");
		return 1;
	}
	ret = rmig_chan_auth_dest(&p->ch, m, wait_ms, hello, &reason);
	if (ret) {
		auth_reject(d, p, reason, rmig_err_msg());
		return 1;
	}
	ret = rmig_chan_recv(&p->ch, m, wait_ms);
	if (ret == 0)
		ret = rmig_err(-ETIMEDOUT, "authenticated, then no handshake "
			       "within %d ms", wait_ms);
	return ret < 0 ? ret : 0;
}

/*
 * Greet one connection, on its greeter's thread: establish it, read its
 * first message, authenticate it and read its HANDSHAKE into *@m.  Each
 * step waits at most @wait_ms, and gives up at once when the accept ends
 * (ch.abort).  0: *@m holds the HANDSHAKE to judge; 1: the connection was
 * turned away or dropped, and @p freed.
 */
static int greet_conn(struct rmig_dest *d, struct dest_chan *p,
		      struct rmig_msg *m, int wait_ms,
		      struct rmig_auth_hello *hello)
{
	struct rmig_session *s = &d->s;
	struct rmig_prov_conn *conn = p->ch.conn;
	int ret;

	ret = p->ch.tp->ops.conn_establish(conn, wait_ms);
	if (ret)
		goto drop;
	if (p->ch.tp->ops.conn_peer_name(conn, p->ch.peer,
					 sizeof(p->ch.peer)))
		snprintf(p->ch.peer, sizeof(p->ch.peer), "unknown peer");
	ret = rmig_chan_recv(&p->ch, m, wait_ms);
	if (ret == 0)
		ret = rmig_err(-ETIMEDOUT, "no %s within %d ms",
			       s->auth_key ? "AUTH_HELLO" : "handshake",
			       wait_ms);
	if (ret < 0)
		goto drop;
	ret = auth_one(d, p, m, wait_ms, hello);
	if (ret > 0)
		return 1;
	if (ret == 0)
		return 0;
drop:
	rmig_log_warn("dropped a connection from %s: %s",
		      p->ch.peer[0] ? p->ch.peer : "unknown peer",
		      rmig_err_msg());
	free_chan(p);
	return 1;
}

static void *greeter(void *arg)
{
	struct dest_greet *g = arg;

	g->result = greet_conn(g->d, g->p, &g->m, g->wait_ms, &g->hello);
	if (g->result)
		g->p = NULL;
	/* Pairs with the acquire load in greet_reap(): the accept reads
	 * result, m, hello and p only after it. */
	atomic_store_explicit(&g->done, true, memory_order_release);
	return NULL;
}

/* Greet @conn on a thread of its own in free slot @g. */
static int greet_start(struct rmig_dest *d, struct dest_greet *g,
		       struct rmig_prov_conn *conn, int wait_ms)
{
	struct rmig_session *s = &d->s;
	struct dest_chan *p;
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
	/* The source's first credit is implicit; we grant the others.
	 * Until its HANDSHAKE says how many receive buffers it has, any
	 * grant the immediate can carry is taken. */
	p->ch.ungranted = s->rx_depth - 1;
	p->ch.peer_depth = RMIG_IMM_CREDITS_MAX + 1;
	memset(g, 0, sizeof(*g));
	g->d = d;
	g->p = p;
	g->tp = conn->tp;
	g->wait_ms = wait_ms;
	g->started_ns = rmig_now_ns();
	atomic_init(&g->stop, false);
	atomic_init(&g->done, false);
	p->ch.abort = &g->stop;
	ret = pthread_create(&g->thread, NULL, greeter, g);
	if (ret) {
		free_chan(p);
		g->p = NULL;
		return rmig_err(-ret, "accept: cannot start a thread for a "
				"connection: %s", strerror(ret));
	}
	g->used = true;
	return 0;
}

/* Stop the greeters (of a transport other than @keep, or all when NULL)
 * and drop their connections: no connection that has not authenticated
 * may remain when the RAM is registered. */
static void greet_stop(struct dest_greet *g, unsigned n,
		       const struct rmig_tp *keep)
{
	for (unsigned i = 0; i < n; i++)
		if (g[i].used && g[i].tp != keep)
			/* Pairs with the acquire load in chan_aborted(). */
			atomic_store_explicit(&g[i].stop, true,
					      memory_order_release);
	for (unsigned i = 0; i < n; i++) {
		if (!g[i].used || g[i].tp == keep)
			continue;
		pthread_join(g[i].thread, NULL);
		free_chan(g[i].p);
		g[i].used = false;
	}
}

/*
 * Judge the HANDSHAKE @m of an authenticated connection (or any, in an
 * insecure session): turn it away with a REJECT naming the field, or take
 * it as its channel.  What it makes us adopt (UUID, channel count, packet
 * size) is fixed by the first channel taken; nothing is answered to a
 * channel taken: its ACCEPT, with the keys of RAM registered only then,
 * goes out once every channel is (accept_commit()).
 */
static void judge(struct rmig_dest *d, struct dest_chan *p, struct rmig_msg *m,
		  const struct rmig_auth_hello *hello, uint64_t *seen)
{
	struct rmig_session *s = &d->s;
	struct rmig_handshake_expect e;
	char why[RMIG_REJECT_TEXT_MAX];
	enum rmig_reject reason;
	struct rmig_handshake h;

	if (m->type != RMIG_MSG_HANDSHAKE) {
		snprintf(why, sizeof(why), "first message is %s, expected "
			 "HANDSHAKE", rmig_msg_type_name(m->type));
		reject(d, p, RMIG_REJECT_MALFORMED, why);
		return;
	}
	if (rmig_handshake_decode(m->data, m->len, &h)) {
		snprintf(why, sizeof(why), "%s", rmig_err_msg());
		reject(d, p, RMIG_REJECT_MALFORMED, why);
		return;
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
	/* The HANDSHAKE repeats what the AUTH_HELLO announced (and the
	 * MACs covered). */
	if (reason == RMIG_REJECT_NONE && s->auth_key &&
	    !hello_matches(hello, &h, why, sizeof(why)))
		reason = RMIG_REJECT_MALFORMED;
	if (reason != RMIG_REJECT_NONE) {
		/* Nothing about our memory has been said on this
		 * connection (and none is registered); answer why (the
		 * peer proved the secret, or the session is insecure)
		 * and close it. */
		reject(d, p, reason, why);
		return;
	}
	p->ch.id = h.channel_id;
	p->ch.peer_depth = h.rx_depth;
	/* Every receive buffer of the source is free: it reposted what
	 * the authentication used and granted it back. */
	p->ch.credits = h.rx_depth;
	p->ch.abort = NULL;
	if (rmig_chan_msg_done(&p->ch, m)) {
		rmig_log_warn("dropped a connection from %s: %s", p->ch.peer,
			      rmig_err_msg());
		free_chan(p);
		return;
	}
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
	rmig_log_info("%s channel %u of %u from %s",
		      s->auth_key ? "authenticated" : "accepted (insecure)",
		      h.channel_id, s->channels, p->ch.peer);
}

/* Collect the greeters that finished: judge what they read.  Transport
 * auto: the first channel taken fixes the transport (its listener and
 * domain stay; the other's greeters are stopped first). */
static void greet_reap(struct rmig_dest *d, struct dest_greet *g, unsigned n,
		       uint64_t *seen)
{
	for (unsigned i = 0; i < n; i++) {
		struct rmig_tp *tp = g[i].tp;

		/* Pairs with the release store in greeter(). */
		if (!g[i].used ||
		    !atomic_load_explicit(&g[i].done, memory_order_acquire))
			continue;
		pthread_join(g[i].thread, NULL);
		g[i].used = false;
		if (g[i].result)
			continue;
		judge(d, g[i].p, &g[i].m, &g[i].hello, seen);
		g[i].p = NULL;
		if (d->nchans && d->nlis > 1) {
			greet_stop(g, n, tp);
			commit_transport(d, tp);
		}
	}
}

/* All slots busy: stop the oldest greeter that has had @grace_ms, so that
 * a flood of silent connections cannot keep the real source waiting in
 * the backlog for long.  Its slot frees once its thread returns. */
static void greet_evict(struct dest_greet *g, unsigned n, int grace_ms)
{
	uint64_t now = rmig_now_ns();
	struct dest_greet *old = NULL;

	for (unsigned i = 0; i < n; i++)
		if (g[i].used && !atomic_load(&g[i].stop) &&
		    (!old || g[i].started_ns < old->started_ns))
			old = &g[i];
	if (old && now - old->started_ns >= (uint64_t)grace_ms * 1000000) {
		rmig_log_warn("accept: %u connections being authenticated at "
			      "once (RMIG_ACCEPT_PENDING): dropping the oldest",
			      n);
		/* Pairs with the acquire load in chan_aborted(). */
		atomic_store_explicit(&old->stop, true, memory_order_release);
	}
}

/*
 * Every channel authenticated and handshook: register the RAM now, with
 * keys no earlier attempt had, and answer each channel its ACCEPT; then
 * close the listeners, so that no connection that has not authenticated
 * exists while the keys are valid.  On failure the registration is gone
 * again.
 */
static int accept_commit(struct rmig_dest *d)
{
	struct rmig_session *s = &d->s;
	int ret;

	ret = rmig_tp_reg_ram(s, s->tp, RMIG_MR_WRITE_TARGET);
	if (ret)
		return ret;
	for (unsigned i = 0; i < d->nchans; i++) {
		ret = send_accept(d, d->chans[i]);
		if (ret) {
			rmig_err_prefix("channel %u: sending ACCEPT", i);
			rmig_tp_dereg_ram(s->tp);
			return ret;
		}
	}
	for (unsigned i = 0; i < d->nlis; i++)
		d->lis[i].tp->ops.listen_close(d->lis[i].l);
	d->nlis = 0;
	return 0;
}

int rmig_dest_accept(rmig_dest *d, int timeout_ms)
{
	uint64_t seen[(RMIG_MAX_CHANNELS + 63) / 64] = { 0 };
	struct dest_greet *g = NULL;
	struct rmig_session *s;
	uint64_t deadline;
	unsigned npend = 0;
	int ret, step;

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
	npend = (unsigned)rmig_param(RMIG_PARAM_ACCEPT_PENDING);
	g = calloc(npend, sizeof(*g));
	if (!g)
		return rmig_err(-ENOMEM, "accept: out of memory");
	/* A connection's steps wait at most a quarter of the connect
	 * timeout: a real source answers at once, and its own wait for our
	 * answers is the whole connect timeout. */
	step = (int)s->connect_timeout_ms / 4;
	if (step < 100)
		step = 100;
	deadline = rmig_deadline_ns(timeout_ms);
	for (;;) {
		struct rmig_prov_conn *conn;
		struct dest_greet *slot = NULL;
		int left = -1;

		greet_reap(d, g, npend, seen);
		if (s->channels && d->nchans == s->channels)
			break;
		ret = rmig_sess_check(s);
		if (ret)
			goto err;
		if (timeout_ms >= 0) {
			uint64_t now = rmig_now_ns();

			left = now < deadline ?
			       (int)((deadline - now) / 1000000) : 0;
			if (left == 0) {
				ret = rmig_err(-ETIMEDOUT, "accept: %u of %u "
					       "channels connected after %d "
					       "ms", d->nchans, s->channels,
					       timeout_ms);
				goto err;
			}
		}
		for (unsigned i = 0; i < npend && !slot; i++)
			if (!g[i].used)
				slot = &g[i];
		if (!slot) {
			greet_evict(g, npend, step / 4);
			nanosleep(&(struct timespec){ .tv_nsec = 5000000 },
				  NULL);
			continue;
		}
		ret = listen_get_any(d, left < 0 || left > 50 ? 50 : left,
				     &conn);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret)
			goto err;
		ret = greet_start(d, slot, conn,
				  left >= 0 && left < step ? left : step);
		if (ret)
			goto err;
	}
	greet_stop(g, npend, NULL);
	free(g);
	g = NULL;
	ret = accept_commit(d);
	if (ret)
		goto err;
	d->lim.pages_per_packet = d->ppp;
	for (unsigned i = 0; i < d->nchans; i++) {
		struct dest_chan *p = d->chans[i];
		char name[32];

		ret = pthread_create(&p->thread, NULL, rmig_dest_thread, p);
		if (ret) {
			ret = rmig_sess_fail(s, -ret, "accept: cannot start "
					     "channel thread %u: %s", i,
					     strerror(ret));
			rmig_dest_join_threads(d);
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
	if (g) {
		greet_stop(g, npend, NULL);
		free(g);
	}
	/* Channels accepted so far are dropped and what their handshakes
	 * made us adopt is forgotten: the caller may accept again (and
	 * the RAM, if registered, is not: the next attempt's keys are
	 * new). */
	if (s->tp)
		rmig_tp_dereg_ram(s->tp);
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
	rmig_dest_join_threads(d);
	for (unsigned i = 0; i < RMIG_MAX_CHANNELS; i++)
		free_chan(d->chans[i]);
	for (unsigned i = 0; i < d->nlis; i++)
		d->lis[i].tp->ops.listen_close(d->lis[i].l);
	rmig_sess_fini(&d->s);
	while (d->ds_list) {
		struct ds_node *n = d->ds_list;

		d->ds_list = n->next;
		rmig_devstate_free(&n->ds);
	}
	pthread_mutex_destroy(&d->ds_lock);
	sem_destroy(&d->sync_arrived);
	free(d);
}

/* SPDX-License-Identifier: MIT */
/*
 * dest_greet.c - a destination's accept, one connection at a time: each is
 * greeted on a thread of its own (established, authenticated, its HANDSHAKE
 * read; an AUTH_REJECT with a reason code for a peer that does not prove
 * the secret), then judged on the accept's thread (a REJECT naming the
 * field, or taken as its channel).  rmig_dest_accept() (dest_accept.c)
 * runs the slots.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dest.h"

void rmig_dest_free_chan(struct dest_chan *p)
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
	rmig_dest_free_chan(p);
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
	rmig_dest_free_chan(p);
}

int rmig_dest_send_accept(struct rmig_dest *d, struct dest_chan *p)
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
		/* Resuming a post-copy: no key at all (nothing is
		 * registered; the source writes nothing). */
		wb[i].raddr = s->postcopy_resume ? 0 : p->ch.tp->mr[i]->raddr;
		wb[i].rkey = s->postcopy_resume ? 0 : p->ch.tp->mr[i]->rkey;
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
	if (!rmig_sess_source_allowed(s, p->ch.peer)) {
		/* Not a word to it: closed before anything is read. */
		atomic_fetch_add_explicit(&d->rejected, 1,
					  memory_order_relaxed);
		rmig_log_warn("closed a connection from %s: not in "
			      "allowed_sources", p->ch.peer);
		rmig_dest_free_chan(p);
		return 1;
	}
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
	rmig_dest_free_chan(p);
	return 1;
}

static void *greeter(void *arg)
{
	struct dest_greet *g = arg;
	/* Read before done is set: the accept may reuse the slot after. */
	struct rmig_dest *d = g->d;

	g->result = greet_conn(d, g->p, &g->m, g->wait_ms, &g->hello);
	if (g->result)
		g->p = NULL;
	/* Pairs with the acquire load in rmig_dest_greet_reap(): the accept reads
	 * result, m, hello and p only after it. */
	atomic_store_explicit(&g->done, true, memory_order_release);
	sem_post(&d->greeted);
	return NULL;
}

/* Greet @conn on a thread of its own in free slot @g. */
int rmig_dest_greet_start(struct rmig_dest *d, struct dest_greet *g,
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
		rmig_dest_free_chan(p);
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
void rmig_dest_greet_stop(struct dest_greet *g, unsigned n,
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
		rmig_dest_free_chan(g[i].p);
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
		.features = s->postcopy_resume ? RMIG_FEAT_POSTCOPY_RESUME : 0,
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
		rmig_dest_free_chan(p);
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
void rmig_dest_greet_reap(struct rmig_dest *d, struct dest_greet *g, unsigned n,
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
			rmig_dest_greet_stop(g, n, tp);
			rmig_dest_commit_transport(d, tp);
		}
	}
}

/* All slots busy: stop the oldest greeter that has had @grace_ms, so that
 * a flood of silent connections cannot keep the real source waiting in
 * the backlog for long.  Its slot frees once its thread returns. */
void rmig_dest_greet_evict(struct dest_greet *g, unsigned n, int grace_ms)
{
	uint64_t now = rmig_now_ns();
	struct dest_greet *old = NULL;

	for (unsigned i = 0; i < n; i++)
		/* Relaxed: stop is stored by this thread only (here and in
		 * rmig_dest_greet_stop()); the greeters' acquire loads pair
		 * with those release stores. */
		if (g[i].used &&
		    !atomic_load_explicit(&g[i].stop, memory_order_relaxed) &&
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


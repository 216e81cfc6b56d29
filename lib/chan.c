/* SPDX-License-Identifier: MIT */
/*
 * chan.c - one channel's message layer, shared by source and destination:
 * receive buffers posted ahead and granted to the peer as credits, send
 * buffers, and tx accounting for unsignaled writes.
 *
 * Credits.  Each side posts rx_depth credited buffers plus RMIG_CREDIT_SPARE
 * spares.  Every message except CREDIT costs the sender one credit; the
 * receiver reposts the buffer once it has handled the message and grants it
 * back in the immediate of its next message (12 bits), or, once rx_depth/2
 * are waiting, in an empty CREDIT message.  CREDIT messages cost no credit:
 * they land in the spares, and since a side sends one only after receiving
 * rx_depth/2 credited messages, no more than two are ever outstanding.  So a
 * sender never sends without a buffer waiting for it, and receiver-not-ready
 * cannot happen.  The source's very first credit (for the HANDSHAKE) is given
 * by the protocol; the ACCEPT grants the rest.
 *
 * Posting and waiting (provider.h's contract).  The providers post at once
 * or return -EAGAIN; this file alone waits, in one loop: cq_poll() handles
 * completions (retires tx records, stashes received messages, reposts
 * CREDIT buffers), and every wait here goes through chan_poll().  The
 * accounting (at most max_ops <= attr.max_tx ops outstanding, a credit per
 * message) keeps the provider's queues from filling; when one is full all
 * the same, batch_post() polls and posts the rest again, for as long as
 * the session has not failed.
 *
 * Batches.  rmig_chan_write() adds a packet's writes to ch->bw; they are
 * posted together with the packet's header send (one provider post: one
 * ibv_post_send chain on verbs), or earlier: when the batch is full, and
 * before any wait (chan_poll() posts them first, so nothing the core waits
 * for is ever held back in it).
 *
 * Liveness (chan_live.c): every wait of a live channel goes through
 * chan_poll() or batch_post(), which check the idle limit and send the
 * keepalives.
 *
 * Everything here runs on the thread that owns the channel: the caller's
 * thread while connecting, then the channel thread.  Only the statistics
 * (relaxed atomics) are read by other threads.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "rmig_numa.h"
#include "regcache.h"

/* How long a post that found a queue full waits for completions. */
#define EAGAIN_POLL_MS 1

static inline uint8_t *rx_buf(struct rmig_chan *ch, unsigned i)
{
	return ch->bufs + (size_t)i * RMIG_MSG_SIZE;
}

static inline uint8_t *tx_buf(struct rmig_chan *ch, unsigned i)
{
	return ch->bufs + (size_t)(ch->nrx + i) * RMIG_MSG_SIZE;
}

static int post_rx(struct rmig_chan *ch, unsigned i)
{
	return ch->tp->ops.post_recv(ch->conn, rx_buf(ch, i), RMIG_MSG_SIZE,
				     ch->bufs_mr, (void *)(uintptr_t)(i + 1));
}

int rmig_chan_init(struct rmig_chan *ch, struct rmig_session *s, unsigned id,
		   struct rmig_prov_conn *conn)
{
	unsigned ntx = s->tx_depth;
	int ret;

	memset(ch, 0, sizeof(*ch));
	ch->sess = s;
	ch->id = id;
	ch->conn = conn;
	ch->tp = conn->tp;
	ch->nrx = s->rx_depth + RMIG_CREDIT_SPARE;
	ch->bufs_len = (size_t)(ch->nrx + ntx) * RMIG_MSG_SIZE;
	/* On the channel's NUMA node; each page faulted in at its first
	 * use (most messages touch only the first page of their buffer). */
	ch->bufs_node = s->numa_node;
	ch->bufs = rmig_numa_alloc(ch->bufs_len, ch->bufs_node);
	if (!ch->bufs)
		return rmig_err(-ENOMEM, "channel %u: cannot allocate %zu "
				"bytes of message buffers", id, ch->bufs_len);
	ret = ch->tp->ops.mr_reg(ch->tp->dom, ch->bufs, ch->bufs_len, RMIG_MR_MSG_BUF,
			    &ch->bufs_mr);
	if (ret) {
		rmig_err_prefix("channel %u: registering message buffers", id);
		goto err_free_bufs;
	}

	ch->nrecs = ntx + RMIG_CREDIT_SPARE + 8;
	ch->recs = calloc(ch->nrecs, sizeof(*ch->recs));
	ch->txbuf_free = calloc(ntx, sizeof(*ch->txbuf_free));
	ch->stash = calloc(ch->nrx, sizeof(*ch->stash));
	ch->nwlog = s->max_ops;
	ch->wlog = calloc(ch->nwlog, sizeof(*ch->wlog));
	if (ch->tp->cache)
		ch->held = calloc(rmig_regcache_capacity(ch->tp->cache),
				  sizeof(*ch->held));
	if (ch->tp->attr.max_read)
		ch->rdone = calloc(ch->tp->attr.max_read, sizeof(*ch->rdone));
	if (!ch->recs || !ch->txbuf_free || !ch->stash || !ch->wlog ||
	    (ch->tp->cache && !ch->held) ||
	    (ch->tp->attr.max_read && !ch->rdone)) {
		ret = rmig_err(-ENOMEM, "channel %u: out of memory", id);
		goto err_free_arrays;
	}
	for (unsigned i = 0; i < ch->nrecs; i++)
		ch->recs[i].next_free = (int32_t)i + 1 < (int32_t)ch->nrecs ?
					(int32_t)i + 1 : -1;
	ch->rec_free = 0;
	for (unsigned i = 0; i < ntx; i++)
		ch->txbuf_free[i] = (int32_t)(ntx - 1 - i);
	ch->ntxbuf_free = ntx;

	for (unsigned i = 0; i < ch->nrx; i++) {
		ret = post_rx(ch, i);
		if (ret) {
			rmig_err_prefix("channel %u: posting receive %u", id, i);
			goto err_free_arrays;
		}
	}
	return 0;

err_free_arrays:
	free(ch->recs);
	free(ch->txbuf_free);
	free(ch->stash);
	free(ch->wlog);
	free(ch->held);
	free(ch->rdone);
	ch->tp->ops.mr_dereg(ch->bufs_mr);
err_free_bufs:
	rmig_numa_free(ch->bufs, ch->bufs_len, ch->bufs_node);
	memset(ch, 0, sizeof(*ch));
	return ret;
}

/* Close the connection first (it flushes what is posted), then free. */
void rmig_chan_fini(struct rmig_chan *ch)
{
	struct rmig_session *s = ch->sess;

	if (!s)
		return;
	if (ch->conn)
		ch->tp->ops.conn_close(ch->conn);
	ch->conn = NULL;
	if (ch->bufs_mr)
		ch->tp->ops.mr_dereg(ch->bufs_mr);
	/* Its writes are gone with the connection. */
	if (ch->tp->cache)
		rmig_regcache_release(ch->tp->cache, ch);
	rmig_numa_free(ch->bufs, ch->bufs_len, ch->bufs_node);
	free(ch->recs);
	free(ch->txbuf_free);
	free(ch->stash);
	free(ch->wlog);
	free(ch->held);
	free(ch->rdone);
	memset(ch, 0, sizeof(*ch));
}

static struct rmig_txrec *rec_get(struct rmig_chan *ch)
{
	struct rmig_txrec *r;

	if (ch->rec_free < 0)
		return NULL;
	r = &ch->recs[ch->rec_free];
	ch->rec_free = r->next_free;
	r->ops = 0;
	r->buf = -1;
	memset(&r->info, 0, sizeof(r->info));
	return r;
}

static void rec_put(struct rmig_chan *ch, struct rmig_txrec *r)
{
	r->info.op = 0; /* free (rmig_chan_abandon_reads()) */
	r->next_free = ch->rec_free;
	ch->rec_free = (int32_t)(r - ch->recs);
}

static int proto_err(struct rmig_chan *ch, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int proto_err(struct rmig_chan *ch, const char *fmt, ...)
{
	char msg[RMIG_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return rmig_err(-EPROTO, "%s", msg);
}

/* Handle up to RMIG_CQE_BATCH completions, waiting up to @timeout_ms for the
 * first.  Received messages (other than CREDIT) are stashed in order. */
static int cq_poll(struct rmig_chan *ch, int timeout_ms)
{
	struct rmig_cqe cqe[RMIG_CQE_BATCH];
	int n;

	cqe[0].op = 0;
	cqe[0].ctx = NULL;
	n = ch->tp->ops.poll(ch->conn, cqe, RMIG_CQE_BATCH, timeout_ms);
	if (n < 0)
		return rmig_chan_op_error(ch, &cqe[0], n);
	for (int i = 0; i < n; i++) {
		struct rmig_cqe *e = &cqe[i];

		if (e->op != RMIG_CQE_RECV) {
			struct rmig_txrec *r = e->ctx;

			if (r < ch->recs || r >= ch->recs + ch->nrecs)
				return proto_err(ch, "completion with unknown "
						 "context %p", e->ctx);
			ch->ops_outstanding -= r->ops;
			if (r->info.op == RMIG_CQE_READ) {
				/* rmig_chan_read() took a read slot, and
				 * rdone has one a read slot. */
				ch->reads_outstanding--;
				ch->rdone[ch->nrdone++] = r->req;
			}
			if (r->buf >= 0)
				ch->txbuf_free[ch->ntxbuf_free++] = r->buf;
			rec_put(ch, r);
			/* Every write of ours has landed: the chunks they
			 * came from may be evicted. */
			if (!ch->ops_outstanding && ch->nheld)
				rmig_regcache_release(ch->tp->cache, ch);
			continue;
		}

		uintptr_t idx = (uintptr_t)e->ctx - 1;
		enum rmig_msg_type type;
		unsigned grant;
		int ret;

		if (idx >= ch->nrx)
			return proto_err(ch, "receive completion with unknown "
					 "context %p", e->ctx);
		/* The peer is alive (chan.c, "Liveness"). */
		ch->last_rx_ns = rmig_now_ns();
		ch->ka_unanswered = 0;
		ret = rmig_imm_parse(e->imm, &type, &grant);
		if (ret)
			return ret;
		if (e->len > RMIG_MSG_SIZE)
			return proto_err(ch, "%s message of %zu bytes exceeds "
					 "%u", rmig_msg_type_name(type), e->len,
					 RMIG_MSG_SIZE);
		ch->credits += grant;
		if (ch->credits > ch->peer_depth)
			return proto_err(ch, "peer granted %u credits, more "
					 "than its %u receive buffers",
					 ch->credits, ch->peer_depth);
		RMIG_STAT_ADD(ch, messages, 1);
		RMIG_STAT_ADD(ch, bytes, e->len);
		if (type == RMIG_MSG_ERROR) {
			/* The peer is failing the migration: its reason is
			 * the most useful message, whatever we were doing. */
			char text[RMIG_ERROR_TEXT_MAX];
			int errnum;

			ret = rmig_error_decode(rx_buf(ch, (unsigned)idx),
						e->len, &errnum, text,
						sizeof(text));
			if (ret)
				return ret;
			return rmig_err(-errnum, "peer reported: %s", text);
		}
		if (type == RMIG_MSG_CREDIT) {
			if (e->len)
				return proto_err(ch, "CREDIT message with %zu "
						 "bytes of body", e->len);
			ret = post_rx(ch, (unsigned)idx);
			if (ret)
				return ret;
			continue;
		}
		struct rmig_msg *m = &ch->stash[(ch->stash_head +
						  ch->stash_count) % ch->nrx];
		m->type = type;
		m->data = rx_buf(ch, (unsigned)idx);
		m->len = e->len;
		m->rx_index = (unsigned)idx;
		ch->stash_count++;
	}
	return n;
}

/* A post found a queue full: handle completions for a moment (the session
 * not failed, the peer not silent beyond the idle limit). */
static int eagain_wait(struct rmig_chan *ch)
{
	int ret;

	if (rmig_sess_failed(ch->sess))
		return rmig_sess_check(ch->sess);
	ret = cq_poll(ch, EAGAIN_POLL_MS);
	if (ret < 0)
		return ret;
	return rmig_chan_idle_check(ch, ret, "room in the send queue");
}

/*
 * Post the batch (ch->bw) and then @send (unless NULL).  A full queue
 * (-EAGAIN) is waited out here: the ops the provider did post are dropped
 * from the batch, completions are handled, and the rest is posted again,
 * until the session fails.  Any other error fails the channel: the ops
 * not posted stay counted, but nothing waits for them any more (every wait
 * fails with the connection).
 */
static int batch_post(struct rmig_chan *ch, const struct rmig_send *send)
{
	unsigned off = 0;

	for (;;) {
		unsigned nw = ch->nbw - off, posted = 0;
		int ret = ch->tp->ops.post(ch->conn, ch->bw + off, nw,
					   send, &posted);

		if (ret != -EAGAIN) {
			ch->nbw = 0;
			return ret;
		}
		/* Posted: the first @posted writes (and never the send, which
		 * comes last and would have made it a success). */
		off += posted < nw ? posted : nw;
		ret = eagain_wait(ch);
		if (ret)
			return ret;
	}
}

/* Post a CREDIT message granting every ungranted buffer (none at all for a
 * keepalive).  -EAGAIN when no record or op slot is free. */
static int post_credit(struct rmig_chan *ch)
{
	unsigned grant = ch->ungranted;
	struct rmig_txrec *r;
	int ret;

	if (ch->ops_outstanding >= ch->sess->max_ops || !(r = rec_get(ch)))
		return -EAGAIN;
	r->ops = ch->ops_unsignaled + 1;
	r->info.op = RMIG_CQE_SEND;
	r->info.msg = RMIG_MSG_CREDIT;
	ret = batch_post(ch, &(struct rmig_send){
		.buf = tx_buf(ch, 0), .len = 0, .mr = ch->bufs_mr,
		.imm = rmig_imm_make(RMIG_MSG_CREDIT, grant), .ctx = r });
	if (ret) {
		rec_put(ch, r);
		return ret;
	}
	ch->ops_unsignaled = 0;
	ch->ops_outstanding++;
	ch->ungranted = 0;
	ch->last_tx_ns = rmig_now_ns();
	RMIG_STAT_ADD(ch, messages, 1);
	return 0;
}

/* A live channel that has sent nothing for keepalive_ns() sends a
 * keepalive, unless the peer has not answered the last ones (it only
 * waits then), or no record or op slot is free (the next wait tries
 * again). */
static int keepalive(struct rmig_chan *ch)
{
	int ret;

	if (!rmig_chan_keepalive_due(ch))
		return 0;
	ret = post_credit(ch);
	if (ret == -EAGAIN)
		return 0;
	if (!ret)
		ch->ka_unanswered++;
	return ret;
}

/* The one wait: post what the batch holds (a wait must never be for an op
 * not posted yet), then handle completions for up to @timeout_ms; on a
 * live channel, check the idle limit (waiting for @what) and send a
 * keepalive when one is due. */
static int chan_poll(struct rmig_chan *ch, int timeout_ms, const char *what)
{
	int n, ret;

	if (ch->nbw) {
		ret = batch_post(ch, NULL);
		if (ret)
			return ret;
	}
	n = cq_poll(ch, rmig_chan_live_timeout(ch, timeout_ms));
	if (n < 0)
		return n;
	ret = rmig_chan_idle_check(ch, n, what);
	if (!ret)
		ret = keepalive(ch);
	return ret ? ret : n;
}

int rmig_chan_progress(struct rmig_chan *ch, int timeout_ms)
{
	int ret = chan_poll(ch, timeout_ms,
			    ch->awaiting ? ch->awaiting : "a message");

	return ret < 0 ? ret : 0;
}

/* The accept that greets this channel on its own thread has ended. */
static bool chan_aborted(struct rmig_chan *ch)
{
	/* Pairs with the release store in dest_accept.c's greet_stop(). */
	return ch->abort && atomic_load_explicit(ch->abort,
						 memory_order_acquire);
}

static int slice(struct rmig_session *s, int timeout_ms, uint64_t deadline)
{
	int sl = (int)rmig_param(RMIG_PARAM_POLL_SLICE_MS);

	if (timeout_ms == 0)
		return 0;
	if (timeout_ms > 0) {
		uint64_t now = rmig_now_ns();
		uint64_t left = deadline > now ? (deadline - now) / 1000000 : 0;

		if ((uint64_t)sl > left)
			sl = (int)left;
	}
	return sl;
}

int rmig_chan_recv(struct rmig_chan *ch, struct rmig_msg *m, int timeout_ms)
{
	struct rmig_session *s = ch->sess;
	uint64_t deadline = rmig_deadline_ns(timeout_ms);

	for (;;) {
		if (ch->stash_count) {
			*m = ch->stash[ch->stash_head];
			ch->stash_head = (ch->stash_head + 1) % ch->nrx;
			ch->stash_count--;
			return 1;
		}
		if (rmig_sess_failed(s))
			return rmig_sess_check(s);
		if (chan_aborted(ch))
			return rmig_err(-ECANCELED, "accept ended while "
					"waiting for a message");
		int ret = chan_poll(ch, slice(s, timeout_ms, deadline),
				    ch->awaiting ? ch->awaiting : "a message");

		if (ret < 0)
			return ret;
		if (ch->stash_count)
			continue;
		if (timeout_ms >= 0 && rmig_now_ns() >= deadline)
			return 0;
	}
}

static int send_credit(struct rmig_chan *ch)
{
	struct rmig_session *s = ch->sess;

	for (;;) {
		int ret = post_credit(ch);

		if (ret != -EAGAIN)
			return ret;
		ret = chan_poll(ch, (int)rmig_param(RMIG_PARAM_POLL_SLICE_MS),
				"completions of posted operations");
		if (ret < 0)
			return ret;
		if (rmig_sess_failed(s))
			return rmig_sess_check(s);
		if (!ch->ungranted)
			return 0; /* a keepalive granted them */
	}
}

int rmig_chan_msg_done(struct rmig_chan *ch, struct rmig_msg *m)
{
	int ret = post_rx(ch, m->rx_index);

	if (ret)
		return ret;
	ch->ungranted++;
	if (ch->ungranted >= ch->sess->rx_depth / 2)
		return send_credit(ch);
	return 0;
}

/* Wait until the channel can post @nops more ops, and, when @need_msg, has
 * a credit, a tx buffer and a completion record.  @timeout_ms < 0: wait
 * until the session fails. */
static int wait_tx(struct rmig_chan *ch, unsigned nops, bool need_msg,
		   bool need_rec, int timeout_ms)
{
	struct rmig_session *s = ch->sess;
	uint64_t deadline = rmig_deadline_ns(timeout_ms);

	for (;;) {
		bool ok = ch->ops_outstanding + nops <= s->max_ops;

		if (need_msg)
			ok = ok && ch->credits > 0 && ch->ntxbuf_free > 0;
		if (need_rec)
			ok = ok && ch->rec_free >= 0;
		if (ok)
			return 0;
		if (rmig_sess_failed(s))
			return rmig_sess_check(s);
		if (chan_aborted(ch))
			return rmig_err(-ECANCELED, "accept ended while "
					"waiting to send");
		if (timeout_ms >= 0 && rmig_now_ns() >= deadline)
			return rmig_err(-ETIMEDOUT, "no %s from the peer for "
					"%d ms", need_msg && !ch->credits ?
					"credit" : "completion", timeout_ms);
		int ret = chan_poll(ch, slice(s, timeout_ms, deadline),
				    need_msg && !ch->credits ? "a credit" :
				    "completions of posted operations");

		if (ret < 0)
			return ret;
	}
}

int rmig_chan_tx_get(struct rmig_chan *ch, uint8_t **buf, int timeout_ms)
{
	int ret = wait_tx(ch, 1, true, true, timeout_ms);
	int32_t idx;

	if (ret)
		return ret;
	idx = ch->txbuf_free[--ch->ntxbuf_free];
	*buf = tx_buf(ch, (unsigned)idx);
	return idx;
}

int rmig_chan_tx_send(struct rmig_chan *ch, int idx, enum rmig_msg_type type,
		      size_t len)
{
	unsigned grant = ch->ungranted > RMIG_IMM_CREDITS_MAX ?
			 RMIG_IMM_CREDITS_MAX : ch->ungranted;
	struct rmig_txrec *r = rec_get(ch);
	int ret;

	/* rmig_chan_tx_get() waited for a record and a credit. */
	r->buf = idx;
	r->ops = ch->ops_unsignaled + 1;
	r->info.op = RMIG_CQE_SEND;
	r->info.msg = (uint8_t)type;
	r->info.len = len;
	/* The packet's writes go first, in the same post. */
	ret = batch_post(ch, &(struct rmig_send){
		.buf = tx_buf(ch, (unsigned)idx), .len = len,
		.mr = ch->bufs_mr, .imm = rmig_imm_make(type, grant),
		.ctx = r });
	if (ret) {
		r->buf = -1;
		rec_put(ch, r);
		ch->txbuf_free[ch->ntxbuf_free++] = idx;
		return ret;
	}
	ch->ops_unsignaled = 0;
	ch->ops_outstanding++;
	ch->credits--;
	ch->ungranted -= grant;
	ch->last_tx_ns = rmig_now_ns();
	RMIG_STAT_ADD(ch, messages, 1);
	RMIG_STAT_ADD(ch, bytes, len);
	return 0;
}

int rmig_chan_read(struct rmig_chan *ch, struct rmig_read *rd, int block,
		   uint64_t offset, void *req)
{
	struct rmig_txrec *r;
	unsigned posted;
	int ret;

	/* The caller's to keep: a free read slot.  Then an op slot and a
	 * record (wait_tx polls, which may complete reads: their slots stay
	 * taken until the owner empties rdone, so rdone never overflows). */
	if (ch->reads_outstanding + ch->nrdone >= ch->tp->attr.max_read)
		return rmig_err(-EAGAIN, "channel %u: %u RDMA READs "
				"outstanding", ch->id, ch->tp->attr.max_read);
	ret = wait_tx(ch, 1, false, true, -1);
	if (ret)
		return ret;
	r = rec_get(ch);
	r->ops = 1;
	r->req = req;
	r->info = (struct rmig_opinfo){ .op = RMIG_CQE_READ, .block = block,
					.offset = offset, .len = rd->len };
	rd->ctx = r;
	while ((ret = ch->tp->ops.post_read(ch->conn, rd, 1, &posted)) ==
	       -EAGAIN) {
		ret = eagain_wait(ch);
		if (ret)
			break;
	}
	if (ret) {
		rec_put(ch, r);
		return ret;
	}
	ch->ops_outstanding++;
	ch->reads_outstanding++;
	RMIG_STAT_ADD(ch, bytes, rd->len);
	return 0;
}

unsigned rmig_chan_abandon_reads(struct rmig_chan *ch, void **out,
				 unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < ch->nrecs && n < max; i++) {
		struct rmig_txrec *r = &ch->recs[i];

		if (r->info.op != RMIG_CQE_READ)
			continue;
		out[n++] = r->req;
		ch->reads_outstanding--;
		rec_put(ch, r);
	}
	return n;
}

/* Wait until every op this channel posted has retired, which drops its
 * cache references.  @timeout_ms < 0: until the session fails. */
static int drain_all(struct rmig_chan *ch)
{
	struct rmig_session *s = ch->sess;

	while (ch->ops_outstanding) {
		int ret = chan_poll(ch, (int)rmig_param(
					    RMIG_PARAM_POLL_SLICE_MS),
				    "completions of posted operations");

		if (ret < 0)
			return ret;
		if (rmig_sess_failed(s))
			return rmig_sess_check(s);
	}
	if (ch->nheld)
		rmig_regcache_release(ch->tp->cache, ch);
	return 0;
}

/* The registration for [offset, offset + *n) of @b; on demand, *n is cut
 * at the chunk's end and the chunk is referenced for this channel.  When
 * every cached chunk is in use, drain our own writes (dropping our
 * references) and wait for another channel to drop one. */
static int local_mr(struct rmig_chan *ch, int block, uint64_t offset,
		    size_t *n, struct rmig_prov_mr **mr)
{
	struct rmig_session *s = ch->sess;

	if (!ch->tp->cache) {
		*mr = ch->tp->mr[block];
		return 0;
	}
	for (;;) {
		int ret = rmig_regcache_get(ch->tp->cache, ch, (unsigned)block,
					    offset, n, mr);

		if (ret != -EAGAIN)
			return ret;
		if (ch->ops_outstanding || ch->nheld) {
			ret = drain_all(ch);
			if (ret)
				return ret;
			continue;
		}
		/* Nothing of ours is outstanding: polling is safe, and
		 * keeps the channel alive while other channels hold every
		 * chunk. */
		ret = chan_poll(ch, 0, "a free registration chunk");
		if (ret < 0)
			return ret;
		rmig_regcache_wait(ch->tp->cache, rmig_chan_live_timeout(
					   ch, (int)rmig_param(
						   RMIG_PARAM_POLL_SLICE_MS)));
		if (rmig_sess_failed(s))
			return rmig_sess_check(s);
	}
}

int rmig_chan_write(struct rmig_chan *ch, int block, uint64_t offset,
		    size_t len, bool signal_last)
{
	struct rmig_session *s = ch->sess;
	struct rmig_block *b = &s->blocks[block];
	size_t chunk = ch->tp->attr.max_msg_size;

	while (len) {
		size_t n = len < chunk ? len : chunk;
		struct rmig_prov_mr *mr;
		struct rmig_opinfo *info;
		struct rmig_txrec *r = NULL;
		bool cut;
		int ret;

		/* A full batch goes now, before this write takes a cache
		 * reference (posting may poll). */
		if (ch->nbw == RMIG_BATCH_MAX) {
			ret = batch_post(ch, NULL);
			if (ret)
				return ret;
		}
		/* On demand, a write stays inside one registered chunk. */
		if (ch->tp->cache) {
			uint64_t end = (offset / s->reg_chunk_size + 1) *
				       s->reg_chunk_size;

			if (offset + n > end)
				n = (size_t)(end - offset);
		}
		cut = n < len;
		/* Signal every max_ops/4 writes so long runs of writes
		 * retire even before the packet's header is sent.  On
		 * demand, also the last write from a chunk before the next
		 * write needs another one: a channel that must drain its
		 * writes to free a chunk then always has a completion
		 * coming. */
		bool sig = ch->ops_unsignaled + 1 >= s->max_ops / 4 ||
			   (ch->tp->cache && ((cut && (offset + n) %
					  s->reg_chunk_size == 0) ||
					 (!cut && signal_last)));

		ret = wait_tx(ch, 1, false, sig, -1);
		if (ret)
			return ret;
		/* After wait_tx: no poll between taking a cache reference
		 * and counting the write that needs it in ops_outstanding
		 * (a poll that retires everything drops our references;
		 * local_mr() itself polls only to drain everything before it
		 * takes one).  Counted, it keeps the reference until it is
		 * posted and retired. */
		ret = local_mr(ch, block, offset, &n, &mr);
		if (ret)
			return ret;
		if (sig) {
			r = rec_get(ch);
			r->ops = ch->ops_unsignaled + 1;
			info = &r->info;
		} else {
			info = &ch->wlog[ch->wlog_next];
			ch->wlog_next = (ch->wlog_next + 1) % ch->nwlog;
		}
		*info = (struct rmig_opinfo){ .op = RMIG_CQE_WRITE,
					      .block = block,
					      .offset = offset, .len = n };
		ch->biov[ch->nbw] = (struct rmig_iov){
			.addr = b->host + offset, .len = n, .mr = mr };
		/* Every write carries a context naming its block and
		 * offset, so a failed one (signaled or not) can be named. */
		ch->bw[ch->nbw] = (struct rmig_write){
			.iov = &ch->biov[ch->nbw], .niov = 1,
			.raddr = b->raddr + offset, .rkey = b->rkey,
			.ctx = sig ? (void *)r : (void *)info,
			.signaled = sig };
		ch->nbw++;
		ch->ops_outstanding++;
		if (sig)
			ch->ops_unsignaled = 0;
		else
			ch->ops_unsignaled++;
		RMIG_STAT_ADD(ch, bytes, n);
		offset += n;
		len -= n;
	}
	return 0;
}

int rmig_chan_drain(struct rmig_chan *ch, int timeout_ms)
{
	struct rmig_session *s = ch->sess;
	uint64_t deadline = rmig_deadline_ns(timeout_ms);

	while (ch->ops_outstanding) {
		if (rmig_now_ns() >= deadline)
			return rmig_err(-ETIMEDOUT, "channel %u: %u operations "
					"still outstanding after %d ms", ch->id,
					ch->ops_outstanding, timeout_ms);
		int ret = chan_poll(ch, slice(s, timeout_ms, deadline),
				    "completions of posted operations");

		if (ret < 0)
			return ret;
	}
	return 0;
}

void rmig_chan_send_error(struct rmig_chan *ch, int code, const char *text)
{
	uint8_t *buf;
	int idx;

	if (!ch->conn || !ch->credits || !ch->ntxbuf_free ||
	    ch->rec_free < 0 || ch->ops_outstanding >= ch->sess->max_ops)
		return;
	idx = ch->txbuf_free[--ch->ntxbuf_free];
	buf = tx_buf(ch, (unsigned)idx);
	size_t len = rmig_error_encode(-code, text, buf, RMIG_MSG_SIZE);
	if (rmig_chan_tx_send(ch, idx, RMIG_MSG_ERROR, len) == 0)
		(void)rmig_chan_drain(ch, 1000);
}

/* SPDX-License-Identifier: MIT */
/*
 * verbs_conn.c - rdma-core provider: data operations (post, post_recv) and
 * poll.  Connection setup and teardown are in verbs_cm.c.
 *
 * One thread drives a connection (posts, poll, establish, close); only
 * conn_wake() comes from other threads, and it touches nothing but the
 * connection's eventfd.
 */
#include "verbs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *rvrb_op_name(uint8_t op)
{
	switch (op) {
	case RMIG_CQE_RECV: return "RECV";
	case RMIG_CQE_SEND: return "SEND";
	case RMIG_CQE_WRITE: return "WRITE";
	case RMIG_CQE_READ: return "RDMA READ";
	}
	return "operation";
}

/* Record the connection's first error (first error wins), naming the
 * failed operation @op/@ctx when there is one, and return it. */
#define rvrb_fail_op(c, code, op, ctx, ...)                                  \
	rutl_err_set(&(c)->err, code, op, ctx, __VA_ARGS__)
#define rvrb_fail(c, code, ...) rvrb_fail_op(c, code, 0, NULL, __VA_ARGS__)

/* The recorded error, with the failed operation in @cqe[0]. */
#define rvrb_err_ret(c, cqe) rutl_err_get(&(c)->err, cqe)

/* ------------------------------------------------------------------ */
/* Connection manager events                                           */

/* Read the cm events waiting on the connection's channel, without
 * waiting: note a lost peer. */
static int rvrb_cm_drain(struct rvrb_conn *c)
{
	struct rdma_cm_event *ev;

	for (int k = 0; k < 8; k++) {
		if (rdma_get_cm_event(c->ech, &ev)) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return 0;
			return rvrb_fail(c, -errno,
					 "verbs connection to %s: rdma_get_cm_event: %s",
					 c->name, strerror(errno));
		}
		switch (ev->event) {
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
		case RDMA_CM_EVENT_ADDR_CHANGE:
			rmig_log_debug("verbs connection to %s: %s", c->name,
				       rdma_event_str(ev->event));
			c->peer_closed = true;
			break;
		case RDMA_CM_EVENT_ESTABLISHED:
			c->connected = true;
			break;
		default: /* TIMEWAIT_EXIT and the like need nothing */
			break;
		}
		rdma_ack_cm_event(ev);
	}
	return 0;
}

/* Fail with -ECONNRESET when the peer has gone. */
static int rvrb_cm_check(struct rvrb_conn *c, const char *op)
{
	int ret = rvrb_cm_drain(c);

	if (ret)
		return ret;
	if (c->peer_closed)
		return rvrb_fail(c, -ECONNRESET,
				 "verbs %s on connection to %s (QP %u): peer disconnected",
				 op, c->name, c->qp_num);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Completions                                                         */

static int rvrb_wc_errno(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_REM_ACCESS_ERR:
		return -EACCES;
	case IBV_WC_RETRY_EXC_ERR: /* transport retries exhausted: peer gone */
	case IBV_WC_WR_FLUSH_ERR:  /* flushed by a QP in error */
		return -ECONNRESET;
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

/* An error completion: fail the connection naming the operation. */
static int rvrb_wc_fail(struct rvrb_conn *c, const struct ibv_wc *wc)
{
	uint8_t op;
	void *ctx;
	int code;

	if (wc->wr_id & RVRB_WR_RECV) {
		uint64_t seq = wc->wr_id & ~RVRB_WR_RECV;

		op = RMIG_CQE_RECV;
		ctx = seq < c->rq_head ? c->rq[seq % c->rq_size] : NULL;
	} else {
		uint64_t seq = wc->wr_id;
		const struct rvrb_sq_rec *r = &c->sq[seq % c->sq_size];

		op = seq < c->sq_head ? r->op : 0;
		ctx = seq < c->sq_head ? r->ctx : NULL;
	}
	if (wc->status == IBV_WC_WR_FLUSH_ERR && !c->peer_closed)
		(void)rvrb_cm_drain(c);
	code = rvrb_wc_errno(wc->status);
	return rvrb_fail_op(c, code, op, ctx,
			    "verbs %s on connection to %s failed: %s%s (status %d, vendor_err 0x%x, QP %u)",
			    rvrb_op_name(op), c->name,
			    c->peer_closed ? "peer disconnected; " : "",
			    ibv_wc_status_str(wc->status), (int)wc->status,
			    wc->vendor_err, wc->qp_num ? wc->qp_num : c->qp_num);
}

/*
 * Read up to @max work completions and turn the ones the core asked for
 * into @out entries; retire send-queue slots.  Returns the number of
 * entries, or the error of an error completion (when it is the first
 * thing read; otherwise the entries before it are returned and the error
 * is recorded for the next call).
 */
static int rvrb_cq_read(struct rvrb_conn *c, struct rmig_cqe *out, int max)
{
	struct ibv_wc wc[RUTL_CQ_BATCH];
	int n, got = 0;

	if (max > RUTL_CQ_BATCH)
		max = RUTL_CQ_BATCH;
	n = ibv_poll_cq(c->cq, max, wc);
	if (n < 0)
		return rvrb_fail(c, -EIO,
				 "verbs poll on connection to %s: ibv_poll_cq failed (%d)",
				 c->name, n);
	for (int i = 0; i < n; i++) {
		struct rmig_cqe *q = &out[got];

		if (wc[i].status != IBV_WC_SUCCESS) {
			int ret = rvrb_wc_fail(c, &wc[i]);

			return got ? got : ret;
		}
		if (wc[i].wr_id & RVRB_WR_RECV) {
			uint64_t seq = wc[i].wr_id & ~RVRB_WR_RECV;

			memset(q, 0, sizeof(*q));
			q->op = RMIG_CQE_RECV;
			q->ctx = c->rq[seq % c->rq_size];
			q->len = wc[i].byte_len;
			if (wc[i].wc_flags & IBV_WC_WITH_IMM)
				q->imm = ntohl(wc[i].imm_data);
			c->rq_tail = seq + 1;
			got++;
		} else {
			uint64_t seq = wc[i].wr_id;
			const struct rvrb_sq_rec *r = &c->sq[seq % c->sq_size];

			/* In order: this one and every unsignaled request
			 * before it are done. */
			c->sq_tail = seq + 1;
			if (!r->report)
				continue;
			memset(q, 0, sizeof(*q));
			q->op = (enum rmig_cqe_op)r->op;
			q->ctx = r->ctx;
			if (r->op == RMIG_CQE_READ) {
				/* Reads are signaled: one completion each. */
				c->reads_out--;
				q->len = wc[i].byte_len;
			}
			got++;
		}
	}
	return got;
}

/* ------------------------------------------------------------------ */
/* Posting                                                             */

/* Check one write of a batch; 0 or -EINVAL/-EMSGSIZE. */
static int rvrb_check_write(struct rvrb_conn *c, const struct rmig_write *w)
{
	size_t total = 0;

	if (!w->iov || w->niov < 1 || w->niov > c->dom->max_iov)
		return rmig_err(-EINVAL,
				"verbs write on connection to %s: %u segments, %s allows 1..%u",
				c->name, w->iov ? w->niov : 0, c->dom->dev_name,
				c->dom->max_iov);
	if (w->rkey > UINT32_MAX)
		return rmig_err(-EINVAL,
				"verbs write on connection to %s: remote key 0x%llx is wider than 32 bits",
				c->name, (unsigned long long)w->rkey);
	for (unsigned i = 0; i < w->niov; i++) {
		const struct rmig_iov *v = &w->iov[i];

		if (!v->mr || !v->addr || !v->len)
			return rmig_err(-EINVAL,
					"verbs write on connection to %s: segment %u (%p, %zu bytes) is empty or not registered",
					c->name, i, v->addr, v->len);
		total += v->len;
		if (total > c->dom->max_msg || v->len > c->dom->max_msg)
			return rmig_err(-EMSGSIZE,
					"verbs write on connection to %s: more than max_msg_size %u bytes in %u segments",
					c->name, c->dom->max_msg, w->niov);
	}
	return 0;
}

/* Check the send of a batch; 0 or -EINVAL/-EMSGSIZE. */
static int rvrb_check_send(struct rvrb_conn *c, const struct rmig_send *m)
{
	if (!m->buf && m->len)
		return rmig_err(-EINVAL, "verbs send: bad argument");
	if (m->len > c->dom->max_msg)
		return rmig_err(-EMSGSIZE,
				"verbs send on connection to %s: %zu bytes exceed max_msg_size %u",
				c->name, m->len, c->dom->max_msg);
	if (m->len && m->len > c->max_inline && !m->mr)
		return rmig_err(-EINVAL,
				"verbs send on connection to %s: %zu bytes from an unregistered buffer (no mr)",
				c->name, m->len);
	return 0;
}

/* Fill chain slot @i with send-queue request sq_head + @i: its record and
 * its sge list. */
static struct ibv_send_wr *rvrb_wr(struct rvrb_conn *c, unsigned i,
				   uint8_t op, void *ctx, bool signaled,
				   struct ibv_sge **sge)
{
	uint64_t seq = c->sq_head + i;
	struct rvrb_sq_rec *r = &c->sq[seq % c->sq_size];
	struct ibv_send_wr *wr = &c->chain[i];

	r->op = op;
	r->ctx = ctx;
	r->report = signaled;
	/* Safety net: a long run of unsignaled requests would never retire;
	 * signal one (its completion is not reported).  The core signals far
	 * more often than this (it bounds in-flight ops by attr.max_tx). */
	if (!signaled && c->unsig_run + 1 >= c->sq_size / 2)
		signaled = true;
	c->unsig_run = signaled ? 0 : c->unsig_run + 1;
	memset(wr, 0, sizeof(*wr));
	wr->wr_id = seq;
	wr->send_flags = signaled ? IBV_SEND_SIGNALED : 0;
	*sge = &c->chain_sge[(size_t)i * c->dom->max_iov];
	wr->sg_list = *sge;
	if (i)
		c->chain[i - 1].next = wr;
	return wr;
}

static void rvrb_wr_write(struct rvrb_conn *c, unsigned i,
			  const struct rmig_write *w)
{
	struct ibv_sge *sge;
	struct ibv_send_wr *wr = rvrb_wr(c, i, RMIG_CQE_WRITE, w->ctx,
					 w->signaled, &sge);

	wr->opcode = IBV_WR_RDMA_WRITE;
	wr->wr.rdma.remote_addr = w->raddr;
	wr->wr.rdma.rkey = (uint32_t)w->rkey;
	wr->num_sge = (int)w->niov;
	for (unsigned k = 0; k < w->niov; k++) {
		sge[k].addr = (uint64_t)(uintptr_t)w->iov[k].addr;
		sge[k].length = (uint32_t)w->iov[k].len;
		sge[k].lkey = to_rvrb_mr(w->iov[k].mr)->mr->lkey;
	}
}

static void rvrb_wr_send(struct rvrb_conn *c, unsigned i,
			 const struct rmig_send *m)
{
	struct ibv_sge *sge;
	struct ibv_send_wr *wr = rvrb_wr(c, i, RMIG_CQE_SEND, m->ctx, true,
					 &sge);

	wr->opcode = IBV_WR_SEND_WITH_IMM;
	wr->imm_data = htonl(m->imm);
	if (m->len && m->len <= c->max_inline)
		wr->send_flags |= IBV_SEND_INLINE;
	if (m->len) {
		sge->addr = (uint64_t)(uintptr_t)m->buf;
		sge->length = (uint32_t)m->len;
		sge->lkey = m->mr ? to_rvrb_mr(m->mr)->mr->lkey : 0;
		wr->num_sge = 1;
	}
}

/* Post chain slots [0, @n) in one ibv_post_send (for @what, "post" or
 * "post_read"); *@at is how many were posted.  On failure the requests
 * before bad_wr are posted (they complete or are flushed like any other),
 * the rest are not: ENOMEM (the device's queue is full) is -EAGAIN,
 * anything else fails the connection. */
static int rvrb_post_chain(struct rvrb_conn *c, const char *what, unsigned n,
			   unsigned run0, unsigned *at)
{
	struct ibv_send_wr *bad = NULL;
	int ret;

	c->chain[n - 1].next = NULL;
	ret = ibv_post_send(c->qp, c->chain, &bad);
	*at = n;
	if (!ret) {
		c->sq_head += n;
		return 0;
	}
	*at = bad && bad >= c->chain && bad < c->chain + n ?
	      (unsigned)(bad - c->chain) : 0;
	c->sq_head += *at;
	/* The safety net's count as of the last request posted. */
	c->unsig_run = run0;
	for (unsigned i = 0; i < *at; i++)
		c->unsig_run = c->chain[i].send_flags & IBV_SEND_SIGNALED ?
			       0 : c->unsig_run + 1;
	if (ret == ENOMEM)
		return rmig_err(-EAGAIN,
				"verbs %s on connection to %s (QP %u): send queue full (%u of %u requests posted)",
				what, c->name, c->qp_num, *at, n);
	{
		int r = rvrb_cm_check(c, what);

		if (r)
			return r;
	}
	return rvrb_fail(c, -ret,
			 "verbs %s on connection to %s (QP %u): ibv_post_send of %u requests failed at request %u: %s",
			 what, c->name, c->qp_num, n, *at, strerror(ret));
}

int rvrb_post(struct rmig_prov_conn *pc, const struct rmig_write *w,
	      unsigned nw, const struct rmig_send *send, unsigned *posted)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);
	unsigned n = nw + (send ? 1 : 0), done = 0, room;
	int ret;

	if (!posted || !c || (nw && !w))
		return rmig_err(-EINVAL, "verbs post: bad argument");
	*posted = 0;
	if (c->err.code)
		return rutl_err_get(&c->err, NULL);
	for (unsigned i = 0; i < nw; i++) {
		ret = rvrb_check_write(c, &w[i]);
		if (ret)
			return ret;
	}
	if (send && (ret = rvrb_check_send(c, send)))
		return ret;
	/* All or nothing: room for the whole batch, or -EAGAIN.  Only a
	 * batch longer than the whole queue, which could never go at once,
	 * goes in parts: as much as there is room for. */
	room = c->sq_size - (unsigned)(c->sq_head - c->sq_tail);
	if (room < n) {
		if (n <= c->sq_size || !room)
			return rmig_err(-EAGAIN,
					"verbs post on connection to %s: send queue full (%u of %u requests outstanding, %u more)",
					c->name, c->sq_size - room, c->sq_size,
					n);
		ret = rvrb_post(pc, w, room, NULL, posted);
		return ret ? ret : rmig_err(-EAGAIN,
					    "verbs post on connection to %s: %u requests posted of a batch of %u, longer than the send queue (%u)",
					    c->name, room, n, c->sq_size);
	}
	/* The writes, then the send, in chains of up to RVRB_CHAIN_MAX
	 * (one chain for a batch the core builds). */
	while (done < n) {
		unsigned k = n - done < RVRB_CHAIN_MAX ? n - done :
			     RVRB_CHAIN_MAX;
		unsigned run0 = c->unsig_run, at;

		for (unsigned i = 0; i < k; i++) {
			if (done + i < nw)
				rvrb_wr_write(c, i, &w[done + i]);
			else
				rvrb_wr_send(c, i, send);
		}
		ret = rvrb_post_chain(c, "post", k, run0, &at);
		done += at;
		*posted = done;
		if (ret)
			return ret;
	}
	return 0;
}

/* Check one read; 0 or -EINVAL/-EMSGSIZE. */
static int rvrb_check_read(struct rvrb_conn *c, const struct rmig_read *r)
{
	if (!r->mr || !r->addr || !r->len)
		return rmig_err(-EINVAL,
				"verbs RDMA READ on connection to %s: local buffer (%p, %zu bytes) is empty or not registered",
				c->name, r->addr, r->len);
	if (r->len > c->dom->max_msg)
		return rmig_err(-EMSGSIZE,
				"verbs RDMA READ on connection to %s: %zu bytes exceed max_msg_size %u",
				c->name, r->len, c->dom->max_msg);
	if (r->rkey > UINT32_MAX)
		return rmig_err(-EINVAL,
				"verbs RDMA READ on connection to %s: remote key 0x%llx is wider than 32 bits",
				c->name, (unsigned long long)r->rkey);
	return 0;
}

static void rvrb_wr_read(struct rvrb_conn *c, unsigned i,
			 const struct rmig_read *r)
{
	struct ibv_sge *sge;
	/* Always signaled: its completion says the bytes have landed. */
	struct ibv_send_wr *wr = rvrb_wr(c, i, RMIG_CQE_READ, r->ctx, true,
					 &sge);

	wr->opcode = IBV_WR_RDMA_READ;
	wr->wr.rdma.remote_addr = r->raddr;
	wr->wr.rdma.rkey = (uint32_t)r->rkey;
	wr->num_sge = 1;
	sge->addr = (uint64_t)(uintptr_t)r->addr;
	sge->length = (uint32_t)r->len;
	sge->lkey = to_rvrb_mr(r->mr)->mr->lkey;
}

int rvrb_post_read(struct rmig_prov_conn *pc, const struct rmig_read *r,
		   unsigned n, unsigned *posted)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);
	unsigned done = 0, room, fit;
	int ret;

	if (!posted || !c || (n && !r))
		return rmig_err(-EINVAL, "verbs post_read: bad argument");
	*posted = 0;
	if (c->err.code)
		return rutl_err_get(&c->err, NULL);
	if (n && !c->max_read)
		return rmig_err(-EOPNOTSUPP,
				"verbs post_read on connection to %s: no RDMA READ on it (%s)",
				c->name, c->connected ? "the peer allows none" :
				"not established");
	for (unsigned i = 0; i < n; i++) {
		ret = rvrb_check_read(c, &r[i]);
		if (ret)
			return ret;
	}
	/* As post(): all or nothing, unless the batch is longer than the
	 * send queue or the reads the connection allows at once. */
	room = c->sq_size - (unsigned)(c->sq_head - c->sq_tail);
	if (room > c->max_read - c->reads_out)
		room = c->max_read - c->reads_out;
	fit = c->sq_size < c->max_read ? c->sq_size : c->max_read;
	if (room < n) {
		if (n <= fit || !room)
			return rmig_err(-EAGAIN,
					"verbs post_read on connection to %s: %u reads outstanding (max_read %u), send queue %u of %u, %u more",
					c->name, c->reads_out, c->max_read,
					(unsigned)(c->sq_head - c->sq_tail),
					c->sq_size, n);
		ret = rvrb_post_read(pc, r, room, posted);
		return ret ? ret : rmig_err(-EAGAIN,
					    "verbs post_read on connection to %s: %u reads posted of a batch of %u, longer than the %u that fit at once",
					    c->name, room, n, fit);
	}
	while (done < n) {
		unsigned k = n - done < RVRB_CHAIN_MAX ? n - done :
			     RVRB_CHAIN_MAX;
		unsigned run0 = c->unsig_run, at;

		for (unsigned i = 0; i < k; i++)
			rvrb_wr_read(c, i, &r[done + i]);
		ret = rvrb_post_chain(c, "post_read", k, run0, &at);
		c->reads_out += at;
		done += at;
		*posted = done;
		if (ret)
			return ret;
	}
	return 0;
}

int rvrb_post_recv(struct rmig_prov_conn *pc, void *buf, size_t len,
		   struct rmig_prov_mr *mr, void *ctx)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);
	struct ibv_recv_wr wr, *bad = NULL;
	struct ibv_sge sge;
	int ret;

	if (!c || (!buf && len) || len > UINT32_MAX)
		return rmig_err(-EINVAL, "verbs post_recv: bad argument (buf %p, len %zu)",
				buf, len);
	if (c->err.code)
		return rutl_err_get(&c->err, NULL);
	if (len && !mr)
		return rmig_err(-EINVAL,
				"verbs post_recv on connection to %s: the buffer is not registered (no mr)",
				c->name);
	if (c->rq_head - c->rq_tail >= c->rq_size)
		return rmig_err(-EAGAIN,
				"verbs post_recv on connection to %s: receive queue full (%u posted)",
				c->name, c->rq_size);
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = RVRB_WR_RECV | c->rq_head;
	if (len) {
		sge.addr = (uint64_t)(uintptr_t)buf;
		sge.length = (uint32_t)len;
		sge.lkey = to_rvrb_mr(mr)->mr->lkey;
		wr.sg_list = &sge;
		wr.num_sge = 1;
	}
	ret = ibv_post_recv(c->qp, &wr, &bad);
	if (ret) {
		int r = rvrb_cm_check(c, "post_recv");

		if (r)
			return r;
		return rmig_err(-ret, "verbs post_recv on connection to %s (QP %u): ibv_post_recv: %s",
				c->name, c->qp_num, strerror(ret));
	}
	c->rq[c->rq_head % c->rq_size] = ctx;
	c->rq_head++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Poll                                                                */

/* Consume a pending conn_wake(); true if there was one. */
static bool rvrb_take_wake(struct rvrb_conn *c)
{
	uint64_t v;

	/* The eventfd counter is the wake flag: read() takes it (and any
	 * number of wakes since the last read) atomically in the kernel,
	 * which also orders what the waker wrote before its write() with
	 * what we read after this read(). */
	return read(c->wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v);
}

int rvrb_poll(struct rmig_prov_conn *pc, struct rmig_cqe *cqe, int max,
	      int timeout_ms)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);
	int64_t deadline = timeout_ms > 0 ? rmig_now_ms() + timeout_ms : 0;
	bool spun = false;
	int n, ret;

	if (!c || !cqe || max < 0)
		return rmig_err(-EINVAL, "verbs poll: bad argument");
	if (!max)
		return 0;
	if (c->err.code)
		return rvrb_err_ret(c, cqe);

	for (;;) {
		n = rvrb_cq_read(c, cqe, max);
		if (n > 0)
			return n;
		if (n < 0)
			return rvrb_err_ret(c, cqe);
		ret = rvrb_cm_check(c, "poll");
		if (ret)
			return rvrb_err_ret(c, cqe);
		if (timeout_ms == 0)
			return 0;
		if (!spun) {
			/* Busy-poll a little: a completion due soon costs
			 * no sleep and wakeup. */
			int64_t end = rmig_now_us() + c->dom->spin_us;

			if (timeout_ms > 0 && end > deadline * 1000)
				end = deadline * 1000;
			spun = true;
			while (rmig_now_us() < end) {
				n = rvrb_cq_read(c, cqe, max);
				if (n > 0)
					return n;
				if (n < 0)
					return rvrb_err_ret(c, cqe);
			}
			continue;
		}
		/* Only a poll that would sleep takes a wake, so none is
		 * lost: one that lands later makes the wake fd readable. */
		if (rvrb_take_wake(c))
			return 0;
		if (!c->armed) {
			ret = ibv_req_notify_cq(c->cq, 0);
			if (ret)
				return rvrb_fail(c, -ret,
						 "verbs poll on connection to %s: ibv_req_notify_cq: %s",
						 c->name, strerror(ret));
			c->armed = true;
			/* Read once more: a completion that arrived before
			 * arming raises no event. */
			continue;
		}
		{
			struct pollfd pfd[3] = {
				{ .fd = c->cch->fd, .events = POLLIN },
				{ .fd = c->wake_fd, .events = POLLIN },
				{ .fd = c->ech->fd, .events = POLLIN },
			};
			int slice = rutl_slice_ms(timeout_ms, deadline);

			if (!slice)
				return 0;
			if (poll(pfd, 3, slice) < 0 && errno != EINTR)
				return rvrb_fail(c, -errno,
						 "verbs poll on connection to %s: poll: %s",
						 c->name, strerror(errno));
			if (pfd[0].revents & POLLIN) {
				struct ibv_cq *ev_cq;
				void *ev_ctx;

				if (!ibv_get_cq_event(c->cch, &ev_cq, &ev_ctx)) {
					ibv_ack_cq_events(ev_cq, 1);
					c->armed = false;
				}
			}
		}
	}
}

void rvrb_conn_wake(struct rmig_prov_conn *pc)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);
	uint64_t one = 1;

	if (!c)
		return;
	/* Sticky until a poll that would sleep reads it (rvrb_take_wake);
	 * EAGAIN only when the counter is saturated, i.e. already set. */
	if (write(c->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		rmig_log_warn("verbs conn_wake (%s): write(eventfd): %s",
			      c->name, strerror(errno));
}

/* SPDX-License-Identifier: MIT */
/*
 * verbs_conn.c - rdma-core provider: a connection's resources (setup,
 * free, close), data operations, poll.
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
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static const char *rvrb_op_name(uint8_t op)
{
	switch (op) {
	case RMIG_CQE_RECV: return "RECV";
	case RMIG_CQE_SEND: return "SEND";
	case RMIG_CQE_WRITE: return "WRITE";
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
			got++;
		}
	}
	return got;
}

/* ------------------------------------------------------------------ */
/* Posting                                                             */

/* Post the queued chain in one ibv_post_send. */
static int rvrb_flush(struct rvrb_conn *c, const char *op)
{
	struct ibv_send_wr *bad = NULL;
	unsigned n = c->nchain;
	int ret;

	if (!n)
		return 0;
	for (unsigned i = 0; i + 1 < n; i++)
		c->chain[i].next = &c->chain[i + 1];
	c->chain[n - 1].next = NULL;
	c->nchain = 0;
	ret = ibv_post_send(c->qp, c->chain, &bad);
	if (ret) {
		unsigned at = bad ? (unsigned)(bad - c->chain) : 0;
		int r = rvrb_cm_check(c, op);

		if (r)
			return r;
		return rvrb_fail(c, ret == ENOMEM ? -ENOBUFS : -ret,
				 "verbs %s on connection to %s (QP %u): ibv_post_send of %u requests failed at request %u: %s",
				 op, c->name, c->qp_num, n, at, strerror(ret));
	}
	return 0;
}

/* Make room for one more send-queue request: post the chain, then read
 * completions (kept for poll()) until a slot is free. */
static int rvrb_sq_reserve(struct rvrb_conn *c, const char *op)
{
	int64_t deadline = 0;
	int ret;

	while (c->sq_head - c->sq_tail >= c->sq_size) {
		struct timespec nap = { 0, 50 * 1000 };

		if (c->err.code)
			return rutl_err_get(&c->err, NULL);
		ret = rvrb_flush(c, op);
		if (ret)
			return ret;
		if (!deadline)
			deadline = rmig_now_ms() + RUTL_POST_RETRY_MS;
		if (rmig_ring_reserve(&c->ovf, RUTL_CQ_BATCH))
			return rmig_err(-ENOMEM,
					"verbs %s on connection to %s: out of memory for completions",
					op, c->name);
		{
			struct rmig_cqe tmp[RUTL_CQ_BATCH];

			ret = rvrb_cq_read(c, tmp, RUTL_CQ_BATCH);
			if (ret > 0)
				rmig_ring_push(&c->ovf, tmp, (size_t)ret);
		}
		if (ret < 0)
			return ret;
		if (ret > 0 || c->sq_head - c->sq_tail < c->sq_size)
			continue;
		ret = rvrb_cm_check(c, op);
		if (ret)
			return ret;
		if (rmig_now_ms() >= deadline)
			return rmig_err(-ETIMEDOUT,
					"verbs %s on connection to %s: send queue (%u requests) still full after %d ms",
					op, c->name, c->sq_size, RUTL_POST_RETRY_MS);
		nanosleep(&nap, NULL);
	}
	return 0;
}

/* Queue a send-queue request: its slot, its place in the chain. */
static struct ibv_send_wr *rvrb_queue(struct rvrb_conn *c, uint8_t op,
				      void *ctx, bool report, bool signaled,
				      struct ibv_sge **sge)
{
	uint64_t seq = c->sq_head++;
	struct rvrb_sq_rec *r = &c->sq[seq % c->sq_size];
	struct ibv_send_wr *wr = &c->chain[c->nchain];

	/* Safety net: a long run of unsignaled requests would never retire;
	 * signal one (its completion is not reported).  The core signals far
	 * more often than this (it bounds in-flight ops by attr.max_tx). */
	if (!signaled && c->unsig_run + 1 >= c->sq_size / 2)
		signaled = true;
	c->unsig_run = signaled ? 0 : c->unsig_run + 1;
	r->op = op;
	r->ctx = ctx;
	r->report = report;
	memset(wr, 0, sizeof(*wr));
	wr->wr_id = seq;
	wr->send_flags = signaled ? IBV_SEND_SIGNALED : 0;
	*sge = &c->chain_sge[(size_t)c->nchain * c->dom->max_iov];
	wr->sg_list = *sge;
	c->nchain++;
	return wr;
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
		return rmig_err(-ENOBUFS,
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

int rvrb_send(struct rmig_prov_conn *pc, const void *buf, size_t len,
	      struct rmig_prov_mr *mr, uint32_t imm, void *ctx)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);
	struct ibv_send_wr *wr;
	struct ibv_sge *sge;
	bool inl;
	int ret;

	if (!c || (!buf && len))
		return rmig_err(-EINVAL, "verbs send: bad argument");
	if (c->err.code)
		return rutl_err_get(&c->err, NULL);
	if (len > c->dom->max_msg)
		return rmig_err(-EMSGSIZE,
				"verbs send on connection to %s: %zu bytes exceed max_msg_size %u",
				c->name, len, c->dom->max_msg);
	inl = len && len <= c->max_inline;
	if (len && !inl && !mr)
		return rmig_err(-EINVAL,
				"verbs send on connection to %s: %zu bytes from an unregistered buffer (no mr)",
				c->name, len);
	ret = rvrb_sq_reserve(c, "send");
	if (ret)
		return ret;
	wr = rvrb_queue(c, RMIG_CQE_SEND, ctx, true, true, &sge);
	wr->opcode = IBV_WR_SEND_WITH_IMM;
	wr->imm_data = htonl(imm);
	if (inl)
		wr->send_flags |= IBV_SEND_INLINE;
	if (len) {
		sge->addr = (uint64_t)(uintptr_t)buf;
		sge->length = (uint32_t)len;
		sge->lkey = mr ? to_rvrb_mr(mr)->mr->lkey : 0;
		wr->num_sge = 1;
	}
	/* The send goes behind the writes queued before it, in one post. */
	return rvrb_flush(c, "send");
}

int rvrb_write(struct rmig_prov_conn *pc, const struct rmig_iov *iov,
	       unsigned niov, uint64_t raddr, uint64_t rkey, void *ctx,
	       bool signaled)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);
	struct ibv_send_wr *wr;
	struct ibv_sge *sge;
	size_t total = 0;
	int ret;

	if (!c || !iov)
		return rmig_err(-EINVAL, "verbs write: NULL argument");
	if (niov < 1 || niov > c->dom->max_iov)
		return rmig_err(-EINVAL,
				"verbs write on connection to %s: %u segments, %s allows 1..%u",
				c->name, niov, c->dom->dev_name, c->dom->max_iov);
	if (rkey > UINT32_MAX)
		return rmig_err(-EINVAL,
				"verbs write on connection to %s: remote key 0x%llx is wider than 32 bits",
				c->name, (unsigned long long)rkey);
	if (c->err.code)
		return rutl_err_get(&c->err, NULL);
	for (unsigned i = 0; i < niov; i++) {
		if (!iov[i].mr || !iov[i].addr || !iov[i].len)
			return rmig_err(-EINVAL,
					"verbs write on connection to %s: segment %u (%p, %zu bytes) is empty or not registered",
					c->name, i, iov[i].addr, iov[i].len);
		total += iov[i].len;
		if (total > c->dom->max_msg || iov[i].len > c->dom->max_msg)
			return rmig_err(-EMSGSIZE,
					"verbs write on connection to %s: more than max_msg_size %u bytes in %u segments",
					c->name, c->dom->max_msg, niov);
	}
	ret = rvrb_sq_reserve(c, "write");
	if (ret)
		return ret;
	wr = rvrb_queue(c, RMIG_CQE_WRITE, ctx, signaled, signaled, &sge);
	wr->opcode = IBV_WR_RDMA_WRITE;
	wr->wr.rdma.remote_addr = raddr;
	wr->wr.rdma.rkey = (uint32_t)rkey;
	wr->num_sge = (int)niov;
	for (unsigned i = 0; i < niov; i++) {
		sge[i].addr = (uint64_t)(uintptr_t)iov[i].addr;
		sge[i].length = (uint32_t)iov[i].len;
		sge[i].lkey = to_rvrb_mr(iov[i].mr)->mr->lkey;
	}
	if (c->nchain == RVRB_CHAIN_MAX)
		return rvrb_flush(c, "write");
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
	if (c->ovf.count)
		return (int)rmig_ring_pop(&c->ovf, cqe, (size_t)max);
	if (c->err.code)
		return rvrb_err_ret(c, cqe);
	/* Whatever the core waits for may still be queued. */
	ret = rvrb_flush(c, "poll");
	if (ret)
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

/* ------------------------------------------------------------------ */
/* Connections                                                         */

struct rvrb_conn *rvrb_conn_alloc(struct rvrb_domain *dom, bool passive)
{
	struct rvrb_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->dom = dom;
	c->passive = passive;
	c->wake_fd = -1;
	rmig_ring_init(&c->ovf, sizeof(struct rmig_cqe));
	snprintf(c->name, sizeof(c->name), "%s", dom->address);
	return c;
}

int rvrb_conn_setup(struct rvrb_conn *c)
{
	struct rvrb_domain *dom = c->dom;
	struct ibv_qp_init_attr qa;
	int ret;

	c->sq_size = dom->sq_size;
	c->rq_size = dom->rq_size;
	c->sq = calloc(c->sq_size, sizeof(*c->sq));
	c->rq = calloc(c->rq_size, sizeof(*c->rq));
	c->chain_sge = calloc((size_t)RVRB_CHAIN_MAX * dom->max_iov,
			      sizeof(*c->chain_sge));
	if (!c->sq || !c->rq || !c->chain_sge ||
	    rmig_ring_reserve(&c->ovf, RUTL_CQ_BATCH))
		return rmig_err(-ENOMEM, "verbs connection to %s: out of memory",
				c->name);
	c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->wake_fd < 0)
		return rmig_err(-errno, "verbs connection to %s: eventfd: %s",
				c->name, strerror(errno));
	c->cch = ibv_create_comp_channel(dom->ctx);
	if (!c->cch)
		return rmig_err(-errno, "verbs connection to %s: ibv_create_comp_channel(%s): %s",
				c->name, dom->dev_name, strerror(errno));
	ret = rvrb_set_nonblock(c->cch->fd);
	if (ret)
		return rmig_err(ret, "verbs connection to %s: O_NONBLOCK: %s",
				c->name, strerror(-ret));
	c->cq = ibv_create_cq(dom->ctx, (int)(c->sq_size + c->rq_size), c,
			      c->cch, 0);
	if (!c->cq)
		return rmig_err(-errno, "verbs connection to %s: ibv_create_cq(%s, %u entries): %s",
				c->name, dom->dev_name, c->sq_size + c->rq_size,
				strerror(errno));
	memset(&qa, 0, sizeof(qa));
	qa.qp_context = c;
	qa.send_cq = c->cq;
	qa.recv_cq = c->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.sq_sig_all = 0; /* only what we flag signaled completes */
	qa.cap.max_send_wr = c->sq_size;
	qa.cap.max_recv_wr = c->rq_size;
	qa.cap.max_send_sge = dom->max_iov;
	qa.cap.max_recv_sge = 1;
	qa.cap.max_inline_data = RVRB_INLINE;
	if (rdma_create_qp(c->id, dom->pd, &qa)) {
		/* Perhaps no inline data on this device: without. */
		qa.cap.max_inline_data = 0;
		if (rdma_create_qp(c->id, dom->pd, &qa))
			return rmig_err(-errno,
					"verbs connection to %s: rdma_create_qp(%s, send %u x %u sge, recv %u): %s",
					c->name, dom->dev_name, c->sq_size,
					dom->max_iov, c->rq_size,
					strerror(errno));
	}
	c->qp = c->id->qp;
	c->qp_num = c->qp->qp_num;
	c->max_inline = qa.cap.max_inline_data;
	return 0;
}

void rvrb_conn_free(struct rvrb_conn *c)
{
	int ret;

	if (c->qp)
		rdma_destroy_qp(c->id);
	if (c->id && rdma_destroy_id(c->id))
		rmig_log_warn("verbs conn_close (%s): rdma_destroy_id: %s",
			      c->name, strerror(errno));
	if (c->cq) {
		ret = ibv_destroy_cq(c->cq);
		if (ret)
			rmig_log_warn("verbs conn_close (%s): ibv_destroy_cq: %s",
				      c->name, strerror(ret));
	}
	if (c->cch) {
		ret = ibv_destroy_comp_channel(c->cch);
		if (ret)
			rmig_log_warn("verbs conn_close (%s): ibv_destroy_comp_channel: %s",
				      c->name, strerror(ret));
	}
	if (c->ech)
		rdma_destroy_event_channel(c->ech);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	free(c->sq);
	free(c->rq);
	free(c->chain_sge);
	rmig_ring_free(&c->ovf);
	free(c);
}

void rvrb_conn_close(struct rmig_prov_conn *pc)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);

	if (!c)
		return;
	c->nchain = 0; /* queued, never posted: dropped */
	if (c->connected && !c->peer_closed && rdma_disconnect(c->id))
		rmig_log_debug("verbs conn_close (%s): rdma_disconnect: %s",
			       c->name, strerror(errno));
	rvrb_conn_free(c);
}

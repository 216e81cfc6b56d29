/* SPDX-License-Identifier: MIT */
/*
 * fabric_conn.c - libfabric provider: connections, data operations, poll.
 *
 * One thread drives a connection (posts, poll, establish, close); only
 * conn_wake() comes from other threads, and it touches nothing but the
 * atomic wake flag and fi_cq_signal() on the (thread-safe) CQ.
 */
#include "fabric.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Record the connection's first error (first error wins) and return it,
 * with its message, to the caller. */
#define rfab_fail(c, code, ...)                                              \
	rutl_err_set(&(c)->err, code, 0, NULL, __VA_ARGS__)

static const char *rfab_op_name(uint64_t flags)
{
	if (flags & FI_RECV)
		return "RECV";
	if (flags & FI_WRITE)
		return "WRITE";
	if (flags & FI_READ)
		return "RDMA READ";
	if (flags & FI_SEND)
		return "SEND";
	return "operation";
}

/* The read record @ctx is, when an op's context is one of @c's (fabric.h),
 * else NULL. */
static struct rfab_read *rfab_read_of(struct rfab_conn *c, void *ctx)
{
	uintptr_t p = (uintptr_t)ctx, base = (uintptr_t)c->reads;
	size_t i;

	if (p < base || p >= base + c->dom->tx_size * sizeof(*c->reads))
		return NULL;
	i = (p - base) / sizeof(*c->reads);
	return &c->reads[i] == ctx ? &c->reads[i] : NULL;
}

static void rfab_to_cqe(struct rfab_conn *c, const struct fi_cq_data_entry *e,
			struct rmig_cqe *q)
{
	struct rfab_read *rd;

	memset(q, 0, sizeof(*q));
	q->ctx = e->op_context;
	if (e->flags & FI_RECV) {
		q->op = RMIG_CQE_RECV;
		q->len = e->len;
		if (e->flags & FI_REMOTE_CQ_DATA)
			q->imm = (uint32_t)e->data;
	} else if (e->flags & FI_WRITE) {
		q->op = RMIG_CQE_WRITE;
	} else if ((rd = rfab_read_of(c, e->op_context))) {
		/* A read's record goes back to the free list. */
		q->op = RMIG_CQE_READ;
		q->ctx = rd->ctx;
		q->len = rd->len;
		rd->next = c->reads_free;
		c->reads_free = rd;
	} else {
		q->op = RMIG_CQE_SEND;
	}
}

/* ------------------------------------------------------------------ */
/* Event queue and completion errors                                   */

/* Read what the connection's EQ holds without waiting.  Sets
 * c->peer_closed on FI_SHUTDOWN; an EQ error fails the connection. */
static int rfab_eq_drain(struct rfab_conn *c)
{
	union rfab_cm_buf ev;
	uint32_t event;
	ssize_t n;

	for (int k = 0; k < 8; k++) {
		n = fi_eq_read(c->eq, &event, &ev, sizeof(ev), 0);
		if (n == -FI_EAGAIN)
			return 0;
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry err = { 0 };
			char det[RMIG_ERR_MSG_MAX / 2];
			int code;

			n = fi_eq_readerr(c->eq, &err, 0);
			if (n < 0)
				return rfab_fail(c, rfab_errno((int)n),
						 "fabric connection to %s: fi_eq_readerr: %s (%zd)",
						 c->name, fi_strerror((int)-n), n);
			code = rfab_err_is_dead_peer(err.err) ?
				       -ECONNRESET :
				       rfab_errno(err.err ? err.err : FI_EOTHER);
			return rfab_fail(c, code,
					 "fabric connection to %s failed: %s (err %d%s)",
					 c->name, fi_strerror(err.err), err.err,
					 rfab_prov_detail(det, sizeof(det), err.prov_errno,
							  fi_eq_strerror(c->eq, err.prov_errno,
									 err.err_data, NULL, 0)));
		}
		if (n < 0)
			return rfab_fail(c, rfab_errno((int)n),
					 "fabric connection to %s: fi_eq_read: %s (%zd)",
					 c->name, fi_strerror((int)-n), n);
		if (event == FI_SHUTDOWN)
			c->peer_closed = true;
		/* Other events (a late FI_CONNECTED) need nothing. */
	}
	return 0;
}

/* Fail with -ECONNRESET when the EQ says the peer has gone. */
static int rfab_eq_check(struct rfab_conn *c, const char *op)
{
	int ret = rfab_eq_drain(c);

	if (ret)
		return ret;
	if (c->peer_closed)
		return rfab_fail(c, -ECONNRESET,
				 "fabric %s on connection to %s: peer closed the connection",
				 op, c->name);
	return 0;
}

/* fi_cq_read/sread said -FI_EAVAIL: read the error entry and fail. */
static int rfab_cq_error(struct rfab_conn *c)
{
	struct fi_cq_err_entry err = { 0 };
	char det[RMIG_ERR_MSG_MAX / 2];
	struct rfab_read *rd;
	bool dead;
	ssize_t n;
	int ret;

	n = fi_cq_readerr(c->cq, &err, 0);
	if (n == -FI_EAGAIN)
		return 0; /* nothing after all */
	if (n < 0)
		return rfab_fail(c, rfab_errno((int)n),
				 "fabric poll on connection to %s: fi_cq_readerr: %s (%zd)",
				 c->name, fi_strerror((int)-n), n);
	/* Learn whether the peer closed; an EQ error fails first. */
	ret = rfab_eq_drain(c);
	if (ret)
		return ret;
	dead = c->peer_closed || rfab_err_is_dead_peer(err.err);
	/* A failed read is named by its record (fabric.h). */
	rd = rfab_read_of(c, err.op_context);
	return rutl_err_set(&c->err,
			 dead ? -ECONNRESET : rfab_errno(err.err ? err.err : FI_EOTHER),
			 rd ? RMIG_CQE_READ : 0, rd ? rd->ctx : NULL,
			 "fabric %s on connection to %s failed: %s%s (err %d%s)",
			 rd ? "RDMA READ" : rfab_op_name(err.flags), c->name,
			 c->peer_closed ? "peer closed the connection; " :
			 dead ? "connection lost; " : "",
			 fi_strerror(err.err), err.err,
			 rfab_prov_detail(det, sizeof(det), err.prov_errno,
					  fi_cq_strerror(c->cq, err.prov_errno,
							 err.err_data, NULL, 0)));
}

/* Whether a CQ read's @n is fi_cq_signal() ending it (from conn_wake())
 * rather than a failure.  The util-based providers (tcp) return -FI_EAGAIN
 * then, but sockets returns -FI_ECANCELED from fi_cq_sread, and its signal
 * is sticky: fi_cq_signal() sets a flag that the next fi_cq_sread on that
 * CQ consumes and returns as -FI_ECANCELED, even when nobody was waiting at
 * the time of the signal, so it can also arrive for a wake that poll()
 * already consumed through the wake flag.  Either way the caller just
 * looks at the wake flag again; completions and errors are never reported
 * as -FI_ECANCELED by a read (errors come as -FI_EAVAIL). */
static bool rfab_cq_signaled(ssize_t n)
{
	return n == -FI_ECANCELED;
}

/* A post failed with @ret: -EAGAIN for a full queue (the caller polls
 * and posts again), else the connection's state decides. */
static int rfab_post_failed(struct rfab_conn *c, const char *op, ssize_t ret)
{
	int r;

	if (ret == -FI_EAGAIN)
		return rmig_err(-EAGAIN,
				"fabric %s on connection to %s: queue full (-FI_EAGAIN)",
				op, c->name);
	r = rfab_eq_check(c, op);

	if (r)
		return r;
	if (ret == -FI_EOPBADSTATE || ret == -FI_ENOTCONN ||
	    ret == -FI_ECONNRESET || ret == -EPIPE)
		return rfab_fail(c, -ECONNRESET,
				 "fabric %s on connection to %s: connection lost: %s (%zd)",
				 op, c->name, fi_strerror((int)-ret), ret);
	return rmig_err(rfab_errno((int)ret),
			"fabric %s on connection to %s: %s (%zd)", op, c->name,
			fi_strerror((int)-ret), ret);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

int rfab_conn_new(struct rfab_domain *dom, struct fi_info *info, bool passive,
		  const char *name, struct rfab_conn **out)
{
	struct fi_eq_attr eq_attr = {
		.size = 16,
		.wait_obj = FI_WAIT_UNSPEC,
	};
	struct fi_cq_attr cq_attr = {
		.size = dom->tx_size + dom->rx_size,
		.format = FI_CQ_FORMAT_DATA,
		.wait_obj = FI_WAIT_UNSPEC,
		.wait_cond = FI_CQ_COND_NONE,
	};
	struct rfab_conn *c;
	int ret;

	c = calloc(1, sizeof(*c));
	if (c)
		c->reads = calloc(dom->tx_size, sizeof(*c->reads));
	if (!c || !c->reads) {
		free(c);
		return rmig_err(-ENOMEM, "fabric connection: out of memory");
	}
	for (size_t i = dom->tx_size; i-- > 0;) {
		c->reads[i].next = c->reads_free;
		c->reads_free = &c->reads[i];
	}
	c->dom = dom;
	c->passive = passive;
	snprintf(c->name, sizeof(c->name), "%s", name);
	/* No other thread can see the connection yet. */
	atomic_init(&c->wake, false);

	ret = fi_eq_open(dom->fabric, &eq_attr, &c->eq, c);
	if (ret) {
		ret = rmig_err(rfab_errno(ret), "fabric connection to %s: fi_eq_open: %s (%d)",
			       c->name, fi_strerror(-ret), ret);
		goto err_free_conn;
	}
	ret = fi_cq_open(dom->domain, &cq_attr, &c->cq, c);
	if (ret) {
		ret = rmig_err(rfab_errno(ret),
			       "fabric connection to %s: fi_cq_open(%zu entries): %s (%d)",
			       c->name, cq_attr.size, fi_strerror(-ret), ret);
		goto err_close_eq;
	}
	ret = fi_endpoint(dom->domain, info, &c->ep, c);
	if (ret) {
		ret = rmig_err(rfab_errno(ret), "fabric connection to %s: fi_endpoint: %s (%d)",
			       c->name, fi_strerror(-ret), ret);
		goto err_close_cq;
	}
	ret = fi_ep_bind(c->ep, &c->eq->fid, 0);
	if (ret) {
		ret = rmig_err(rfab_errno(ret),
			       "fabric connection to %s: fi_ep_bind(eq): %s (%d)",
			       c->name, fi_strerror(-ret), ret);
		goto err_close_ep;
	}
	/* Selective: only posts flagged FI_COMPLETION produce entries. */
	ret = fi_ep_bind(c->ep, &c->cq->fid,
			 FI_TRANSMIT | FI_RECV | FI_SELECTIVE_COMPLETION);
	if (ret) {
		ret = rmig_err(rfab_errno(ret),
			       "fabric connection to %s: fi_ep_bind(cq): %s (%d)",
			       c->name, fi_strerror(-ret), ret);
		goto err_close_ep;
	}
	ret = fi_enable(c->ep);
	if (ret) {
		ret = rmig_err(rfab_errno(ret), "fabric connection to %s: fi_enable: %s (%d)",
			       c->name, fi_strerror(-ret), ret);
		goto err_close_ep;
	}
	/* An accepted connection's socket is ours: the listener's sweep
	 * must leave it alone (fabric_sweep.c). */
	if (passive)
		rfab_peers_add(c);
	*out = c;
	return 0;

err_close_ep:
	fi_close(&c->ep->fid);
err_close_cq:
	fi_close(&c->cq->fid);
err_close_eq:
	fi_close(&c->eq->fid);
err_free_conn:
	free(c->reads);
	free(c);
	return ret;
}

int rfab_conn_create(struct rmig_prov_domain *d, struct rmig_prov_conn **out)
{
	struct rfab_domain *dom = to_rfab_domain(d);
	struct rfab_conn *c;
	int ret;

	if (!dom || !out)
		return rmig_err(-EINVAL, "fabric conn_create: NULL argument");
	ret = rutl_domain_role("fabric conn_create", dom->address,
			       dom->passive, false);
	if (ret)
		return ret;
	ret = rfab_conn_new(dom, dom->info, false, dom->address, &c);
	if (ret)
		return ret;
	*out = &c->base;
	return 0;
}

/* Errno for a failed connection setup (error entry @err, positive). */
static int rfab_setup_errno(const struct rfab_conn *c, int err)
{
	if (!c->passive) {
		switch (err) {
		case FI_ETIMEDOUT:
		case FI_EHOSTUNREACH:
		case FI_ENETUNREACH:
			return -err;
		case FI_ECONNRESET:
			/* Accepted, then reset: the listener went away under
			 * us (a destination listening anew, fabric_sweep.c),
			 * worth another try. */
			return -ECONNRESET;
		default:
			return -ECONNREFUSED;
		}
	}
	if (rfab_err_is_dead_peer(err))
		return -ECONNRESET;
	return rfab_errno(err ? err : FI_EOTHER);
}

/* Wait for FI_CONNECTED on the connection's EQ. */
static int rfab_wait_connected(struct rfab_conn *c, int timeout_ms)
{
	const char *what = c->passive ? "accept from" : "connect to";
	int64_t deadline = timeout_ms > 0 ? rmig_now_ms() + timeout_ms : 0;
	char det[RMIG_ERR_MSG_MAX / 2];
	union rfab_cm_buf ev;
	uint32_t event;
	ssize_t n;
	int wait;

	for (;;) {
		wait = rutl_wait_left(timeout_ms, deadline);
		n = fi_eq_sread(c->eq, &event, &ev, sizeof(ev), wait, 0);
		if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT)
			return rmig_err(-ETIMEDOUT,
					"fabric %s %s: not established within %d ms",
					what, c->name, timeout_ms);
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry err = { 0 };

			n = fi_eq_readerr(c->eq, &err, 0);
			if (n < 0)
				return rmig_err(rfab_errno((int)n),
						"fabric %s %s: fi_eq_readerr: %s (%zd)",
						what, c->name, fi_strerror((int)-n), n);
			return rmig_err(rfab_setup_errno(c, err.err),
					"fabric %s %s failed: %s (err %d%s)",
					what, c->name, fi_strerror(err.err), err.err,
					rfab_prov_detail(det, sizeof(det), err.prov_errno,
							 fi_eq_strerror(c->eq, err.prov_errno,
									err.err_data, NULL, 0)));
		}
		if (n < 0)
			return rmig_err(rfab_errno((int)n),
					"fabric %s %s: fi_eq_sread: %s (%zd)", what,
					c->name, fi_strerror((int)-n), n);
		if (event == FI_CONNECTED) {
			c->connected = true;
			return 0;
		}
		if (event == FI_SHUTDOWN) {
			c->peer_closed = true;
			return rmig_err(c->passive ? -ECONNRESET : -ECONNREFUSED,
					"fabric %s %s: peer closed the connection during setup",
					what, c->name);
		}
		if (timeout_ms == 0 ||
		    (timeout_ms > 0 && rmig_now_ms() >= deadline))
			return rmig_err(-ETIMEDOUT,
					"fabric %s %s: not established within %d ms",
					what, c->name, timeout_ms);
	}
}

int rfab_conn_establish(struct rmig_prov_conn *pc, int timeout_ms)
{
	struct rfab_conn *c = to_rfab_conn(pc);
	int ret;

	if (!c)
		return rmig_err(-EINVAL, "fabric conn_establish: NULL connection");
	if (c->connected)
		return rmig_err(-EISCONN,
				"fabric conn_establish: connection to %s is already established",
				c->name);
	if (c->passive) {
		ret = fi_accept(c->ep, NULL, 0);
		if (ret)
			return rmig_err(rfab_errno(ret),
					"fabric accept from %s: fi_accept: %s (%d)",
					c->name, fi_strerror(-ret), ret);
	} else {
		ret = fi_connect(c->ep, c->dom->info->dest_addr, NULL, 0);
		if (ret == -FI_ECONNREFUSED)
			return rmig_err(-ECONNREFUSED,
					"fabric connect to %s: fi_connect: %s (%d)",
					c->name, fi_strerror(-ret), ret);
		if (ret)
			return rmig_err(rfab_errno(ret),
					"fabric connect to %s: fi_connect: %s (%d)",
					c->name, fi_strerror(-ret), ret);
	}
	return rfab_wait_connected(c, timeout_ms);
}

int rfab_conn_peer_name(struct rmig_prov_conn *pc, char *buf, size_t len)
{
	struct rfab_conn *c = to_rfab_conn(pc);
	struct sockaddr_storage ss;
	size_t sslen = sizeof(ss);
	int ret;

	if (!c || !buf || !len)
		return rmig_err(-EINVAL, "fabric conn_peer_name: bad argument");
	ret = fi_getpeer(c->ep, &ss, &sslen);
	if (ret)
		return rmig_err(rfab_errno(ret),
				"fabric conn_peer_name (%s): fi_getpeer: %s (%d)",
				c->name, fi_strerror(-ret), ret);
	return rmig_addr_format("fabric", &ss, sslen, buf, len);
}

void rfab_conn_close(struct rmig_prov_conn *pc)
{
	struct rfab_conn *c = to_rfab_conn(pc);
	int ret;

	if (!c)
		return;
	if (c->connected && !c->peer_closed) {
		ret = fi_shutdown(c->ep, 0);
		if (ret)
			rmig_log_debug("fabric conn_close (%s): fi_shutdown: %s (%d)",
				       c->name, fi_strerror(-ret), ret);
	}
	ret = fi_close(&c->ep->fid);
	if (ret)
		rmig_log_warn("fabric conn_close (%s): fi_close(ep): %s (%d)",
			      c->name, fi_strerror(-ret), ret);
	/* Its socket is closed: it may leave the sweep's list. */
	rfab_peers_del(c);
	ret = fi_close(&c->cq->fid);
	if (ret)
		rmig_log_warn("fabric conn_close (%s): fi_close(cq): %s (%d)",
			      c->name, fi_strerror(-ret), ret);
	ret = fi_close(&c->eq->fid);
	if (ret)
		rmig_log_warn("fabric conn_close (%s): fi_close(eq): %s (%d)",
			      c->name, fi_strerror(-ret), ret);
	free(c->reads);
	free(c);
}

/* ------------------------------------------------------------------ */
/* Data transfer                                                       */

static int rfab_need_desc(struct rfab_conn *c, const char *op,
			  const struct rmig_prov_mr *mr)
{
	if (!mr && (c->dom->mr_mode & FI_MR_LOCAL))
		return rmig_err(-EINVAL,
				"fabric %s on connection to %s: %s needs registered local buffers (FI_MR_LOCAL) but none was given",
				op, c->name, c->dom->prov_name);
	return 0;
}

int rfab_post_recv(struct rmig_prov_conn *pc, void *buf, size_t len,
		   struct rmig_prov_mr *mr, void *ctx)
{
	struct rfab_conn *c = to_rfab_conn(pc);
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	void *desc = mr ? mr->desc : NULL;
	struct fi_msg msg = {
		.msg_iov = &iov,
		.desc = &desc,
		.iov_count = 1,
		.addr = 0,
		.context = ctx,
		.data = 0,
	};
	ssize_t ret;
	int r;

	if (!c || (!buf && len))
		return rmig_err(-EINVAL, "fabric post_recv: bad argument");
	if (c->err.code)
		return rutl_err_get(&c->err, NULL);
	r = rfab_need_desc(c, "post_recv", mr);
	if (r)
		return r;
	/* FI_COMPLETION: the CQ is bound with FI_SELECTIVE_COMPLETION. */
	ret = fi_recvmsg(c->ep, &msg, FI_COMPLETION);
	if (ret)
		return rfab_post_failed(c, "post_recv", ret);
	return 0;
}

/* Post one write of a batch; @more: FI_MORE (another op follows). */
static int rfab_write_one(struct rfab_conn *c, const struct rmig_write *w,
			  bool more)
{
	struct iovec v[RFAB_MAX_IOV];
	void *desc[RFAB_MAX_IOV];
	struct fi_rma_iov rma = { .addr = w->raddr, .len = 0, .key = w->rkey };
	struct fi_msg_rma msg = {
		.msg_iov = v,
		.desc = desc,
		.iov_count = w->niov,
		.addr = 0,
		.rma_iov = &rma,
		.rma_iov_count = 1,
		.context = w->ctx,
		.data = 0,
	};
	ssize_t ret;
	int r;

	if (!w->iov || w->niov < 1 || w->niov > c->dom->max_iov)
		return rmig_err(-EINVAL,
				"fabric write on connection to %s: %u segments, %s allows 1..%u",
				c->name, w->iov ? w->niov : 0, c->dom->prov_name,
				c->dom->max_iov);
	for (unsigned i = 0; i < w->niov; i++) {
		r = rfab_need_desc(c, "write", w->iov[i].mr);
		if (r)
			return r;
		if (rma.len + w->iov[i].len < rma.len)
			return rmig_err(-EOVERFLOW,
					"fabric write on connection to %s: segment %u overflows the length",
					c->name, i);
		v[i].iov_base = w->iov[i].addr;
		v[i].iov_len = w->iov[i].len;
		desc[i] = w->iov[i].mr ? w->iov[i].mr->desc : NULL;
		rma.len += w->iov[i].len;
	}
	/* Unsignaled: no FI_COMPLETION, so no completion (selective
	 * completion). */
	ret = fi_writemsg(c->ep, &msg, (w->signaled ? FI_COMPLETION : 0) |
				       (more ? FI_MORE : 0));
	return ret ? rfab_post_failed(c, "write", ret) : 0;
}

static int rfab_send_one(struct rfab_conn *c, const struct rmig_send *m)
{
	struct iovec iov = { .iov_base = (void *)m->buf, .iov_len = m->len };
	void *desc = m->mr ? m->mr->desc : NULL;
	struct fi_msg msg = {
		.msg_iov = &iov,
		.desc = &desc,
		.iov_count = 1,
		.addr = 0,
		.context = m->ctx,
		.data = m->imm,
	};
	ssize_t ret;
	int r;

	if (!m->buf && m->len)
		return rmig_err(-EINVAL, "fabric send: bad argument");
	r = rfab_need_desc(c, "send", m->mr);
	if (r)
		return r;
	ret = fi_sendmsg(c->ep, &msg, FI_REMOTE_CQ_DATA | FI_COMPLETION);
	return ret ? rfab_post_failed(c, "send", ret) : 0;
}

int rfab_post(struct rmig_prov_conn *pc, const struct rmig_write *w,
	      unsigned nw, const struct rmig_send *send, unsigned *posted)
{
	struct rfab_conn *c = to_rfab_conn(pc);
	int ret = 0;

	if (!posted || !c || (nw && !w))
		return rmig_err(-EINVAL, "fabric post: bad argument");
	*posted = 0;
	if (c->err.code)
		return rutl_err_get(&c->err, NULL);
	/* Op by op: libfabric has no batch post.  FI_MORE tells the
	 * provider another op follows, so it may send them together. */
	for (unsigned i = 0; i < nw; i++) {
		ret = rfab_write_one(c, &w[i], i + 1 < nw || send);
		if (ret)
			return ret;
		(*posted)++;
	}
	if (send) {
		ret = rfab_send_one(c, send);
		if (ret)
			return ret;
		(*posted)++;
	}
	return 0;
}

/* Post one read; @more: FI_MORE (another read follows). */
static int rfab_read_one(struct rfab_conn *c, const struct rmig_read *r,
			 bool more)
{
	struct rfab_read *rd = c->reads_free;
	struct iovec v = { .iov_base = r->addr, .iov_len = r->len };
	void *desc = r->mr ? r->mr->desc : NULL;
	struct fi_rma_iov rma = { .addr = r->raddr, .len = r->len,
				  .key = r->rkey };
	struct fi_msg_rma msg = {
		.msg_iov = &v,
		.desc = &desc,
		.iov_count = 1,
		.addr = 0,
		.rma_iov = &rma,
		.rma_iov_count = 1,
		.context = rd,
		.data = 0,
	};
	ssize_t ret;
	int bad;

	if (!r->addr || !r->len)
		return rmig_err(-EINVAL,
				"fabric RDMA READ on connection to %s: empty local buffer (%p, %zu bytes)",
				c->name, r->addr, r->len);
	bad = rfab_need_desc(c, "RDMA READ", r->mr);
	if (bad)
		return bad;
	if (!rd)
		return rmig_err(-EAGAIN,
				"fabric RDMA READ on connection to %s: %zu reads outstanding (max_read)",
				c->name, c->dom->tx_size);
	rd->ctx = r->ctx;
	rd->len = r->len;
	/* FI_COMPLETION: every read completes (selective completion);
	 * FI_MORE only when the next read has a record to go with. */
	ret = fi_readmsg(c->ep, &msg, FI_COMPLETION |
			 (more && rd->next ? FI_MORE : 0));
	if (ret)
		return rfab_post_failed(c, "RDMA READ", ret);
	c->reads_free = rd->next;
	return 0;
}

int rfab_post_read(struct rmig_prov_conn *pc, const struct rmig_read *r,
		   unsigned n, unsigned *posted)
{
	struct rfab_conn *c = to_rfab_conn(pc);
	int ret;

	if (!posted || !c || (n && !r))
		return rmig_err(-EINVAL, "fabric post_read: bad argument");
	*posted = 0;
	if (c->err.code)
		return rutl_err_get(&c->err, NULL);
	/* Op by op, as post(). */
	for (unsigned i = 0; i < n; i++) {
		ret = rfab_read_one(c, &r[i], i + 1 < n);
		if (ret)
			return ret;
		(*posted)++;
	}
	return 0;
}

static int rfab_deliver(struct rfab_conn *c, const struct fi_cq_data_entry *e,
			ssize_t n, struct rmig_cqe *q)
{
	for (ssize_t i = 0; i < n; i++)
		rfab_to_cqe(c, &e[i], &q[i]);
	return (int)n;
}

int rfab_poll(struct rmig_prov_conn *pc, struct rmig_cqe *cqe, int max,
	      int timeout_ms)
{
	struct rfab_conn *c = to_rfab_conn(pc);
	struct fi_cq_data_entry buf[RUTL_CQ_BATCH];
	int64_t deadline = timeout_ms > 0 ? rmig_now_ms() + timeout_ms : 0;
	size_t count;
	ssize_t n;
	int ret, slice;

	if (!c || !cqe || max < 0)
		return rmig_err(-EINVAL, "fabric poll: bad argument");
	if (!max)
		return 0;
	if (c->err.code)
		return rutl_err_get(&c->err, cqe);
	count = max < RUTL_CQ_BATCH ? (size_t)max : RUTL_CQ_BATCH;

	for (;;) {
		n = fi_cq_read(c->cq, buf, count);
		if (n > 0)
			return rfab_deliver(c, buf, n, cqe);
		if (n == -FI_EAVAIL) {
			ret = rfab_cq_error(c);
			if (ret)
				return rutl_err_get(&c->err, cqe);
			continue;
		}
		if (n != -FI_EAGAIN && !rfab_cq_signaled(n))
			return rfab_fail(c, rfab_errno((int)n),
					 "fabric poll on connection to %s: fi_cq_read: %s (%zd)",
					 c->name, fi_strerror((int)-n), n);
		ret = rfab_eq_check(c, "poll");
		if (ret)
			return ret;
		if (timeout_ms == 0)
			return 0;
		/* Acquire: pairs with the release store in rfab_conn_wake().
		 * The wake is consumed only here, by a poll that would
		 * otherwise block, so none is lost: one that lands after this
		 * check is seen by fi_cq_sread (fi_cq_signal) or, at the
		 * latest, by this check one slice later. */
		if (atomic_exchange_explicit(&c->wake, false,
					     memory_order_acquire))
			return 0;
		slice = rutl_slice_ms(timeout_ms, deadline);
		if (!slice)
			return 0;
		n = fi_cq_sread(c->cq, buf, count, NULL, slice);
		if (n > 0)
			return rfab_deliver(c, buf, n, cqe);
		if (n == -FI_EAVAIL) {
			ret = rfab_cq_error(c);
			if (ret)
				return rutl_err_get(&c->err, cqe);
			continue;
		}
		/* Timed out, interrupted or signaled: look at the CQ, the
		 * EQ and the wake flag again. */
		if (n != -FI_EAGAIN && n != -FI_ETIMEDOUT && n != -FI_EINTR &&
		    !rfab_cq_signaled(n))
			return rfab_fail(c, rfab_errno((int)n),
					 "fabric poll on connection to %s: fi_cq_sread: %s (%zd)",
					 c->name, fi_strerror((int)-n), n);
	}
}

void rfab_conn_wake(struct rmig_prov_conn *pc)
{
	struct rfab_conn *c = to_rfab_conn(pc);

	if (!c)
		return;
	/* Release: pairs with the acquire exchange in rfab_poll(), so the
	 * woken poll also sees whatever the waker wrote before waking. */
	atomic_store_explicit(&c->wake, true, memory_order_release);
	/* End a blocked fi_cq_sread now; where a provider cannot, the
	 * poll's slice bounds the delay. */
	(void)fi_cq_signal(c->cq);
}

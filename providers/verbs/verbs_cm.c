/* SPDX-License-Identifier: MIT */
/*
 * verbs_cm.c - rdma-core provider: connections (create, set up the QP and
 * CQ, establish through librdmacm, close).  The data operations are in
 * verbs_conn.c.
 *
 * One thread drives a connection (establish, close); only conn_wake()
 * comes from other threads.
 */
#include "verbs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct rvrb_conn *rvrb_conn_alloc(struct rvrb_domain *dom, bool passive)
{
	struct rvrb_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->dom = dom;
	c->passive = passive;
	c->wake_fd = -1;
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
	if (!c->sq || !c->rq || !c->chain_sge)
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
	free(c);
}

int rvrb_conn_create(struct rmig_prov_domain *d, struct rmig_prov_conn **out)
{
	struct rvrb_domain *dom = to_rvrb_domain(d);
	struct rvrb_conn *c;
	int ret;

	if (!dom || !out)
		return rmig_err(-EINVAL, "verbs conn_create: NULL argument");
	ret = rutl_domain_role("verbs conn_create", dom->address,
			       dom->passive, false);
	if (ret)
		return ret;
	c = rvrb_conn_alloc(dom, false);
	if (!c)
		return rmig_err(-ENOMEM, "verbs conn_create: out of memory");
	c->ech = rdma_create_event_channel();
	if (!c->ech) {
		ret = rmig_err(-errno, "verbs conn_create (%s): rdma_create_event_channel: %s",
			       dom->address, strerror(errno));
		goto err_free;
	}
	ret = rvrb_set_nonblock(c->ech->fd);
	if (ret) {
		ret = rmig_err(ret, "verbs conn_create (%s): O_NONBLOCK: %s",
			       dom->address, strerror(-ret));
		goto err_free;
	}
	if (rdma_create_id(c->ech, &c->id, c, RDMA_PS_TCP)) {
		ret = rmig_err(-errno, "verbs conn_create (%s): rdma_create_id: %s",
			       dom->address, strerror(errno));
		goto err_free;
	}
	ret = rvrb_resolve(c->ech, c->id, (struct sockaddr *)&dom->addr,
			   dom->address);
	if (ret) {
		rmig_err_prefix("verbs conn_create");
		goto err_free;
	}
	if (c->id->verbs != dom->ctx) {
		ret = rmig_err(-ENETUNREACH,
			       "verbs conn_create: the route to %s now goes through %s, the domain is on %s",
			       dom->address,
			       ibv_get_device_name(c->id->verbs->device),
			       dom->dev_name);
		goto err_free;
	}
	ret = rvrb_conn_setup(c);
	if (ret)
		goto err_free;
	*out = &c->base;
	return 0;

err_free:
	rvrb_conn_free(c);
	return ret;
}

/* The RDMA READs @c may have outstanding, once established: the QP's
 * max_rd_atomic, which rdma_cm set from the negotiation; @cm_depth (what
 * the negotiation gave, as this side saw it) if the QP cannot say. */
static void rvrb_read_depth(struct rvrb_conn *c, unsigned cm_depth)
{
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr qa;
	unsigned resp = 0;
	int ret;

	ret = ibv_query_qp(c->qp, &qa, IBV_QP_MAX_QP_RD_ATOMIC |
			   IBV_QP_MAX_DEST_RD_ATOMIC, &init);
	if (ret) {
		rmig_log_warn("verbs connection to %s: ibv_query_qp: %s; "
			      "RDMA READ depth %u as negotiated", c->name,
			      strerror(ret), cm_depth);
	} else {
		cm_depth = qa.max_rd_atomic;
		resp = qa.max_dest_rd_atomic;
	}
	c->max_read = cm_depth < c->sq_size ? cm_depth : c->sq_size;
	rmig_log_debug("verbs connection to %s (QP %u): RDMA READ: %u "
		       "outstanding this way, %u the other", c->name,
		       c->qp_num, c->max_read, resp);
}

/* Errno of a connection setup that ended with @type/@status. */
static int rvrb_setup_errno(const struct rvrb_conn *c,
			    enum rdma_cm_event_type type)
{
	switch (type) {
	case RDMA_CM_EVENT_REJECTED:
		return -ECONNREFUSED;
	case RDMA_CM_EVENT_UNREACHABLE:
		return c->passive ? -ECONNRESET : -EHOSTUNREACH;
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		return c->passive ? -ECONNRESET : -ECONNREFUSED;
	default:
		return c->passive ? -ECONNRESET : -ECONNREFUSED;
	}
}

int rvrb_conn_establish(struct rmig_prov_conn *pc, int timeout_ms)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);
	const char *what;
	struct rdma_conn_param cp;
	int64_t deadline;

	if (!c)
		return rmig_err(-EINVAL, "verbs conn_establish: NULL connection");
	what = c->passive ? "accept from" : "connect to";
	if (c->connected)
		return rmig_err(-EISCONN,
				"verbs conn_establish: connection to %s is already established",
				c->name);
	if (c->err.code)
		return rutl_err_get(&c->err, NULL);
	memset(&cp, 0, sizeof(cp));
	/* RDMA READ both ways (verbs.h): we offer the device's limits; the
	 * acceptor takes no more than the request offered (its responder
	 * resources are the reads the requester may send, and the
	 * reverse; rdma_cm hands the request's values over swapped to the
	 * acceptor's point of view). */
	cp.initiator_depth = (uint8_t)c->dom->init_depth;
	cp.responder_resources = (uint8_t)c->dom->resp_res;
	if (c->passive) {
		if (cp.initiator_depth > c->req_init)
			cp.initiator_depth = (uint8_t)c->req_init;
		if (cp.responder_resources > c->req_resp)
			cp.responder_resources = (uint8_t)c->req_resp;
	}
	cp.retry_count = 7;
	/* Receiver-not-ready: a safety net only (the core grants credits for
	 * posted receives), and a bounded one.  7 would mean "retry for
	 * ever", turning a missing receive into a silent stall; 6 retries at
	 * the responder's RNR timer (rdma_cm sets 0: 655 ms) fail the send
	 * with IBV_WC_RNR_RETRY_EXC_ERR after about 4.5 s.  Each side's value
	 * is applied to the peer's sends. */
	cp.rnr_retry_count = RVRB_RNR_RETRY;
	if (c->passive ? rdma_accept(c->id, &cp) : rdma_connect(c->id, &cp)) {
		int e = errno;

		return rmig_err(c->passive ? -e : (e == ECONNREFUSED ? -ECONNREFUSED : -e),
				"verbs %s %s: %s: %s", what, c->name,
				c->passive ? "rdma_accept" : "rdma_connect",
				strerror(e));
	}
	deadline = timeout_ms > 0 ? rmig_now_ms() + timeout_ms : 0;
	for (;;) {
		struct rdma_cm_event *ev;
		enum rdma_cm_event_type type;
		unsigned depth;
		int ret, status;

		ret = rvrb_cm_wait(c->ech, rutl_wait_left(timeout_ms, deadline),
				   &ev);
		if (ret == -ETIMEDOUT)
			return rmig_err(-ETIMEDOUT,
					"verbs %s %s: not established within %d ms",
					what, c->name, timeout_ms);
		if (ret) {
			rmig_err_prefix("verbs %s %s", what, c->name);
			return ret;
		}
		type = ev->event;
		status = ev->status;
		/* Active: the acceptor's answer, from our side. */
		depth = c->passive ? cp.initiator_depth :
			ev->param.conn.initiator_depth;
		rdma_ack_cm_event(ev);
		switch (type) {
		case RDMA_CM_EVENT_ESTABLISHED:
			c->connected = true;
			rvrb_read_depth(c, depth);
			return 0;
		case RDMA_CM_EVENT_REJECTED:
		case RDMA_CM_EVENT_CONNECT_ERROR:
		case RDMA_CM_EVENT_UNREACHABLE:
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			if (type == RDMA_CM_EVENT_DISCONNECTED ||
			    type == RDMA_CM_EVENT_DEVICE_REMOVAL)
				c->peer_closed = true;
			return rmig_err(rvrb_setup_errno(c, type),
					"verbs %s %s failed: %s (status %d)%s",
					what, c->name, rdma_event_str(type),
					status,
					type == RDMA_CM_EVENT_REJECTED && !c->passive ?
					": connection refused (nobody listening, or rejected)" : "");
		default:
			break; /* nothing else matters here */
		}
	}
}

int rvrb_conn_peer_name(struct rmig_prov_conn *pc, char *buf, size_t len)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);

	if (!c || !buf || !len)
		return rmig_err(-EINVAL, "verbs conn_peer_name: bad argument");
	return rvrb_format_addr(rdma_get_peer_addr(c->id), buf, len);
}

void rvrb_conn_close(struct rmig_prov_conn *pc)
{
	struct rvrb_conn *c = to_rvrb_conn(pc);

	if (!c)
		return;
	if (c->connected && !c->peer_closed && rdma_disconnect(c->id))
		rmig_log_debug("verbs conn_close (%s): rdma_disconnect: %s",
			       c->name, strerror(errno));
	rvrb_conn_free(c);
}

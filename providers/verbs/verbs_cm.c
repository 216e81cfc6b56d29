/* SPDX-License-Identifier: MIT */
/*
 * verbs_cm.c - rdma-core provider: establishing connections through
 * librdmacm: create (resolve the route to the peer), connect or accept and
 * wait for ESTABLISHED, the peer's name.
 */
#include "verbs.h"

#include <errno.h>
#include <string.h>

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
	cp.responder_resources = 0; /* no RDMA READ either way */
	cp.initiator_depth = 0;
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
		rdma_ack_cm_event(ev);
		switch (type) {
		case RDMA_CM_EVENT_ESTABLISHED:
			c->connected = true;
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

/* SPDX-License-Identifier: MIT */
/*
 * verbs_domain.c - rdma-core provider: domain, memory registration,
 * listener, address helpers and the ops table.
 */
#include "verbs.h"

#include "addr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* rdma-core's first ibv_get_device_list() loads its drivers: preload. */
static int rvrb_any_device(void);

const struct rmig_provider_ops rmig_verbs_provider = {
	.name = "verbs",
	.abi = RMIG_PROVIDER_ABI,
	.domain_open = rvrb_domain_open,
	.domain_close = rvrb_domain_close,
	.mr_reg = rvrb_mr_reg,
	.mr_dereg = rvrb_mr_dereg,
	.listen = rvrb_listen,
	.listen_name = rvrb_listen_name,
	.listen_get = rvrb_listen_get,
	.listen_close = rvrb_listen_close,
	.conn_create = rvrb_conn_create,
	.conn_establish = rvrb_conn_establish,
	.conn_peer_name = rvrb_conn_peer_name,
	.conn_close = rvrb_conn_close,
	.post_recv = rvrb_post_recv,
	.post = rvrb_post,
	.post_read = rvrb_post_read,
	.poll = rvrb_poll,
	.conn_wake = rvrb_conn_wake,
	.preload = rvrb_any_device,
};

/* ------------------------------------------------------------------ */
/* Shared helpers                                                      */

int rvrb_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	/* librdmacm keeps its addresses in a sockaddr_storage. */
	return rmig_addr_format("verbs", sa, sizeof(struct sockaddr_storage),
				buf, len);
}

int rvrb_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int rvrb_cm_wait(struct rdma_event_channel *ch, int timeout_ms,
		 struct rdma_cm_event **ev)
{
	int64_t deadline = timeout_ms > 0 ? rmig_now_ms() + timeout_ms : 0;

	for (;;) {
		struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
		int wait = timeout_ms, n;

		if (!rdma_get_cm_event(ch, ev))
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return rmig_err(-errno, "rdma_get_cm_event: %s",
					strerror(errno));
		if (timeout_ms > 0) {
			int64_t left = deadline - rmig_now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			wait = (int)left;
		} else if (timeout_ms == 0) {
			return -ETIMEDOUT;
		}
		n = poll(&pfd, 1, wait);
		if (n < 0 && errno != EINTR)
			return rmig_err(-errno, "poll on cm events: %s",
					strerror(errno));
	}
}

/* Errno for an address or route that does not resolve: one of the three
 * the core's transport selection treats as "no RDMA path". */
static int rvrb_unreach_errno(int e)
{
	switch (e) {
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EADDRNOTAVAIL:
		return -e;
	case ENODEV: /* the route leaves through a netdev with no RDMA */
		return -ENETUNREACH;
	default:     /* timed out (no neighbour) and the rest */
		return -EHOSTUNREACH;
	}
}

/* Wait for @want (after a resolve call on @id). */
static int rvrb_resolve_wait(struct rdma_event_channel *ch,
			     enum rdma_cm_event_type want, const char *step,
			     const char *what)
{
	struct rdma_cm_event *ev;
	int64_t deadline = rmig_now_ms() + RVRB_RESOLVE_MS + 1000;

	for (;;) {
		int64_t left = deadline - rmig_now_ms();
		enum rdma_cm_event_type type;
		int status, ret;

		ret = rvrb_cm_wait(ch, left > 0 ? (int)left : 0, &ev);
		if (ret == -ETIMEDOUT)
			return rmig_err(-EHOSTUNREACH,
					"%s of %s did not finish within %d ms",
					step, what, RVRB_RESOLVE_MS + 1000);
		if (ret)
			return ret;
		type = ev->event;
		status = ev->status;
		rdma_ack_cm_event(ev);
		if (type == want)
			return 0;
		if (type == RDMA_CM_EVENT_ADDR_ERROR ||
		    type == RDMA_CM_EVENT_ROUTE_ERROR) {
			int e = status < 0 ? -status : status;

			return rmig_err(rvrb_unreach_errno(e),
					"%s of %s failed: %s (%s, status %d)",
					step, what, rdma_event_str(type),
					e ? strerror(e) : "no detail", status);
		}
		/* Nothing else concerns an id that is resolving. */
	}
}

int rvrb_resolve(struct rdma_event_channel *ch, struct rdma_cm_id *id,
		 struct sockaddr *dst, const char *what)
{
	int ret;

	if (rdma_resolve_addr(id, NULL, dst, RVRB_RESOLVE_MS))
		return rmig_err(rvrb_unreach_errno(errno),
				"rdma_resolve_addr(%s): %s", what,
				strerror(errno));
	ret = rvrb_resolve_wait(ch, RDMA_CM_EVENT_ADDR_RESOLVED,
				"address resolution", what);
	if (ret)
		return ret;
	if (rdma_resolve_route(id, RVRB_RESOLVE_MS))
		return rmig_err(rvrb_unreach_errno(errno),
				"rdma_resolve_route(%s): %s", what,
				strerror(errno));
	ret = rvrb_resolve_wait(ch, RDMA_CM_EVENT_ROUTE_RESOLVED,
				"route resolution", what);
	if (ret)
		return ret;
	if (!id->verbs)
		return rmig_err(-ENETUNREACH,
				"the route to %s has no RDMA device", what);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Domain                                                              */

/* Numeric address only: never a name lookup. */
static int rvrb_parse_addr(const struct rmig_prov_params *p,
			   struct sockaddr_storage *ss)
{
	char node[RUTL_ADDR_MAX], svc[16];
	struct addrinfo hints = {
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV |
			    (p->passive ? AI_PASSIVE : 0),
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
	};
	struct addrinfo *res = NULL;
	int ret;

	ret = rutl_addr_split("verbs", p, node, sizeof(node), svc,
			      sizeof(svc));
	if (ret)
		return ret;
	ret = getaddrinfo(node[0] ? node : NULL, svc, &hints, &res);
	if (ret)
		return rmig_err(-EINVAL,
				"verbs domain_open: address \"%s\" is not a numeric IPv4/IPv6 address and port: %s",
				p->address, gai_strerror(ret));
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return rmig_err(-EINVAL, "verbs domain_open: address \"%s\" too long",
				p->address);
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* Is there any RDMA device at all?  Fast: a sysfs scan, no kernel call. */
static int rvrb_any_device(void)
{
	int n = 0;
	struct ibv_device **devs = ibv_get_device_list(&n);

	if (devs)
		ibv_free_device_list(devs);
	if (!devs || n <= 0)
		return rmig_err(-ENODEV, "verbs: no RDMA device found (ibv_get_device_list)");
	return 0;
}

static unsigned rvrb_depth(unsigned want, unsigned limit)
{
	unsigned d = want ? want : RVRB_DEFAULT_DEPTH;

	return d < limit ? d : limit;
}

/* Bind the listening side: the id, on channel @ch, to dom->addr. */
static int rvrb_bind(struct rvrb_domain *dom, struct rdma_event_channel **ch,
		     struct rdma_cm_id **id)
{
	int ret;

	*ch = rdma_create_event_channel();
	if (!*ch)
		return rmig_err(errno == ENODEV ? -ENODEV : -errno,
				"verbs: rdma_create_event_channel: %s",
				strerror(errno));
	ret = rvrb_set_nonblock((*ch)->fd);
	if (ret) {
		ret = rmig_err(ret, "verbs: O_NONBLOCK on the cm channel: %s",
			       strerror(-ret));
		goto err_channel;
	}
	if (rdma_create_id(*ch, id, NULL, RDMA_PS_TCP)) {
		ret = rmig_err(-errno, "verbs: rdma_create_id: %s",
			       strerror(errno));
		goto err_channel;
	}
	if (rdma_bind_addr(*id, (struct sockaddr *)&dom->addr)) {
		int e = errno;

		ret = rmig_err(e == EADDRINUSE ? -EADDRINUSE :
			       rvrb_unreach_errno(e == ENODEV ? EADDRNOTAVAIL : e),
			       "verbs: cannot bind %s: %s%s", dom->address,
			       strerror(e),
			       e == ENODEV || e == EADDRNOTAVAIL ?
			       " (not an address of an RDMA device)" : "");
		goto err_id;
	}
	return 0;

err_id:
	rdma_destroy_id(*id);
	*id = NULL;
err_channel:
	rdma_destroy_event_channel(*ch);
	*ch = NULL;
	return ret;
}

/* The device a wildcard bind leaves open: librdmacm's first. */
static struct ibv_context *rvrb_first_device(void)
{
	int n = 0;
	struct ibv_context **ctxs = rdma_get_devices(&n);
	struct ibv_context *ctx = ctxs && n > 0 ? ctxs[0] : NULL;

	if (ctxs)
		rdma_free_devices(ctxs);
	return ctx;
}

int rvrb_domain_open(const struct rmig_prov_params *p,
		     struct rmig_prov_domain **out, struct rmig_prov_attr *attr)
{
	struct ibv_device_attr dattr;
	struct ibv_port_attr pattr;
	struct rdma_event_channel *ch = NULL;
	struct rdma_cm_id *id = NULL;
	struct rvrb_domain *dom;
	uint8_t port;
	unsigned qp_limit;
	int ret;

	if (!p || !out || !attr)
		return rmig_err(-EINVAL, "verbs domain_open: NULL argument");
	dom = calloc(1, sizeof(*dom));
	if (!dom)
		return rmig_err(-ENOMEM, "verbs domain_open: out of memory");
	ret = rvrb_parse_addr(p, &dom->addr);
	if (ret)
		goto err_free_dom;
	ret = rvrb_any_device();
	if (ret)
		goto err_free_dom;
	dom->passive = p->passive;
	snprintf(dom->address, sizeof(dom->address), "%s", p->address);
	dom->spin_us = (unsigned)rmig_param(RMIG_PARAM_VERBS_SPIN_US);

	if (p->passive) {
		ret = rvrb_bind(dom, &ch, &id);
		if (ret)
			goto err_free_dom;
		dom->ctx = id->verbs ? id->verbs : rvrb_first_device();
		if (!dom->ctx) {
			ret = rmig_err(-ENODEV,
				       "verbs domain_open: %s is bound to no RDMA device and librdmacm lists none",
				       p->address);
			goto err_destroy_id;
		}
		port = id->verbs ? id->port_num : 1;
		/* The port the kernel chose for port 0. */
		memcpy(&dom->addr, rdma_get_local_addr(id),
		       rdma_get_local_addr(id)->sa_family == AF_INET6 ?
		       sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	} else {
		ch = rdma_create_event_channel();
		if (!ch) {
			ret = rmig_err(errno == ENODEV ? -ENODEV : -errno,
				       "verbs: rdma_create_event_channel: %s",
				       strerror(errno));
			goto err_free_dom;
		}
		ret = rvrb_set_nonblock(ch->fd);
		if (ret) {
			ret = rmig_err(ret, "verbs: O_NONBLOCK on the cm channel: %s",
				       strerror(-ret));
			goto err_destroy_id;
		}
		if (rdma_create_id(ch, &id, NULL, RDMA_PS_TCP)) {
			ret = rmig_err(-errno, "verbs: rdma_create_id: %s",
				       strerror(errno));
			goto err_destroy_id;
		}
		ret = rvrb_resolve(ch, id, (struct sockaddr *)&dom->addr,
				   p->address);
		if (ret) {
			rmig_err_prefix("verbs domain_open");
			goto err_destroy_id;
		}
		dom->ctx = id->verbs;
		port = id->port_num;
	}
	snprintf(dom->dev_name, sizeof(dom->dev_name), "%s",
		 ibv_get_device_name(dom->ctx->device));

	if (ibv_query_device(dom->ctx, &dattr)) {
		ret = rmig_err(-EIO, "verbs domain_open: ibv_query_device(%s) failed",
			       dom->dev_name);
		goto err_destroy_id;
	}
	ret = ibv_query_port(dom->ctx, port, &pattr);
	if (ret) {
		ret = rmig_err(-ret, "verbs domain_open: ibv_query_port(%s, %u): %s",
			       dom->dev_name, port, strerror(ret));
		goto err_destroy_id;
	}
	dom->pd = ibv_alloc_pd(dom->ctx);
	if (!dom->pd) {
		ret = rmig_err(errno ? -errno : -ENOMEM,
			       "verbs domain_open: ibv_alloc_pd(%s): %s",
			       dom->dev_name, strerror(errno ? errno : ENOMEM));
		goto err_destroy_id;
	}

	/* Queue depths: what we were asked for, below max_qp_wr, and both
	 * queues together within one CQ of at most max_cqe entries. */
	qp_limit = dattr.max_qp_wr > 1 ? (unsigned)dattr.max_qp_wr - 1 : 1;
	if (qp_limit > RVRB_MAX_DEPTH)
		qp_limit = RVRB_MAX_DEPTH;
	dom->sq_size = rvrb_depth(p->tx_depth, qp_limit);
	dom->rq_size = rvrb_depth(p->rx_depth, qp_limit);
	if (dattr.max_cqe > 1 &&
	    dom->sq_size + dom->rq_size > (unsigned)dattr.max_cqe) {
		/* One CQ takes a completion of every posted request (an
		 * error flushes unsignaled ones too): shrink the send queue,
		 * which the core adapts to (attr.max_tx); the receive queue
		 * only if it alone is too deep (the core then says it needs
		 * more). */
		unsigned cqe = (unsigned)dattr.max_cqe;

		if (dom->rq_size > cqe - 1)
			dom->rq_size = cqe / 2;
		rmig_log_info("verbs domain_open: %s: send queue %u + receive queue %u exceed the device's %u completion queue entries: send queue cut to %u",
			      dom->dev_name, dom->sq_size, dom->rq_size, cqe,
			      cqe - dom->rq_size);
		dom->sq_size = cqe - dom->rq_size;
	}
	dom->max_iov = dattr.max_sge < RVRB_MAX_IOV ?
		       (unsigned)(dattr.max_sge > 0 ? dattr.max_sge : 1) :
		       RVRB_MAX_IOV;
	dom->max_msg = pattr.max_msg_sz ? pattr.max_msg_sz : 1u << 30;
	/* RDMA READ both ways, within the device's limits (verbs.h). */
	dom->init_depth = dattr.max_qp_init_rd_atom < RVRB_MAX_RD_ATOM ?
			  (unsigned)dattr.max_qp_init_rd_atom : RVRB_MAX_RD_ATOM;
	dom->resp_res = dattr.max_qp_rd_atom < RVRB_MAX_RD_ATOM ?
			(unsigned)dattr.max_qp_rd_atom : RVRB_MAX_RD_ATOM;

	if (p->passive) {
		dom->lch = ch;
		dom->lid = id;
	} else {
		rdma_destroy_id(id);
		rdma_destroy_event_channel(ch);
	}

	memset(attr, 0, sizeof(*attr));
	snprintf(attr->name, sizeof(attr->name), "verbs/%.57s", dom->dev_name);
	snprintf(attr->device, sizeof(attr->device), "%s", dom->dev_name);
	attr->max_msg_size = dom->max_msg;
	attr->max_iov = dom->max_iov;
	attr->max_tx = dom->sq_size;
	attr->max_rx = dom->rq_size;
	/* This side's offer; a connection may get fewer (verbs.h). */
	attr->max_read = dom->init_depth < dom->sq_size ? dom->init_depth :
			 dom->sq_size;
	*out = (struct rmig_prov_domain *)(void *)dom;
	return 0;

err_destroy_id:
	if (id)
		rdma_destroy_id(id);
	if (ch)
		rdma_destroy_event_channel(ch);
err_free_dom:
	free(dom);
	return ret;
}

void rvrb_domain_close(struct rmig_prov_domain *d)
{
	struct rvrb_domain *dom = to_rvrb_domain(d);
	int ret;

	if (!dom)
		return;
	if (dom->lid)
		rdma_destroy_id(dom->lid);
	if (dom->lch)
		rdma_destroy_event_channel(dom->lch);
	ret = ibv_dealloc_pd(dom->pd);
	if (ret)
		rmig_log_warn("verbs domain_close (%s on %s): ibv_dealloc_pd: %s",
			      dom->address, dom->dev_name, strerror(ret));
	free(dom);
}

/* ------------------------------------------------------------------ */
/* Memory registration                                                 */

int rvrb_mr_reg(struct rmig_prov_domain *d, void *addr, size_t len,
		enum rmig_mr_access use, struct rmig_prov_mr **out)
{
	struct rvrb_domain *dom = to_rvrb_domain(d);
	struct rvrb_mr *m;
	int access;

	if (!dom || !addr || !len || !out)
		return rmig_err(-EINVAL, "verbs mr_reg: bad argument (addr %p, len %zu)",
				addr, len);
	switch (use) {
	case RMIG_MR_MSG_BUF:
		/* Receives land in it. */
		access = IBV_ACCESS_LOCAL_WRITE;
		break;
	case RMIG_MR_WRITE_SOURCE:
		/* Only read by the adapter: no write access, so the kernel
		 * pins the pages without faulting them in for write (shared
		 * zero pages and KSM pages stay shared, read-only mappings
		 * register). */
		access = 0;
		break;
	case RMIG_MR_WRITE_TARGET:
		/* Remote write requires local write. */
		access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
		break;
	case RMIG_MR_READ_SOURCE:
		/* Read by the peer's RDMA READs only: remote read, no write
		 * access (pinned without being written, as a write source). */
		access = IBV_ACCESS_REMOTE_READ;
		break;
	case RMIG_MR_READ_TARGET:
		/* Our RDMA READs land in it. */
		access = IBV_ACCESS_LOCAL_WRITE;
		break;
	default:
		return rmig_err(-EINVAL, "verbs mr_reg: invalid access %d for "
				"%p (%zu bytes)", (int)use, addr, len);
	}
	if ((use == RMIG_MR_READ_SOURCE && !dom->resp_res) ||
	    (use == RMIG_MR_READ_TARGET && !dom->init_depth))
		return rmig_err(-EOPNOTSUPP, "verbs mr_reg: %s does no RDMA "
				"READ (a %s of %zu bytes)", dom->dev_name,
				rmig_mr_access_name(use), len);
	m = calloc(1, sizeof(*m));
	if (!m)
		return rmig_err(-ENOMEM, "verbs mr_reg: out of memory");
	m->mr = ibv_reg_mr(dom->pd, addr, len, access);
	if (!m->mr) {
		int e = errno ? errno : ENOMEM;

		free(m);
		return rmig_err(-e,
				"verbs mr_reg: ibv_reg_mr(%p, %zu bytes, %s) on %s: %s%s",
				addr, len, rmig_mr_access_name(use),
				dom->dev_name, strerror(e),
				e == ENOMEM || e == EPERM ?
				" (pinned memory limit: see ulimit -l / RLIMIT_MEMLOCK)" : "");
	}
	m->base.addr = addr;
	m->base.len = len;
	m->base.raddr = (uint64_t)(uintptr_t)addr; /* verbs: virtual addresses */
	m->base.rkey = m->mr->rkey;
	m->base.desc = m->mr;
	*out = &m->base;
	return 0;
}

void rvrb_mr_dereg(struct rmig_prov_mr *pm)
{
	struct rvrb_mr *m = to_rvrb_mr(pm);
	int ret;

	if (!m)
		return;
	ret = ibv_dereg_mr(m->mr);
	if (ret)
		rmig_log_warn("verbs mr_dereg(%p, %zu bytes): ibv_dereg_mr: %s",
			      m->base.addr, m->base.len, strerror(ret));
	free(m);
}

/* ------------------------------------------------------------------ */
/* Listener                                                            */

int rvrb_listen(struct rmig_prov_domain *d, struct rmig_prov_listener **out)
{
	struct rvrb_domain *dom = to_rvrb_domain(d);
	struct rvrb_listener *l;
	int ret;

	if (!dom || !out)
		return rmig_err(-EINVAL, "verbs listen: NULL argument");
	ret = rutl_domain_role("verbs listen", dom->address, dom->passive,
			       true);
	if (ret)
		return ret;
	l = calloc(1, sizeof(*l));
	if (!l)
		return rmig_err(-ENOMEM, "verbs listen: out of memory");
	l->dom = dom;
	if (dom->lid) {
		l->id = dom->lid;
		l->ch = dom->lch;
		dom->lid = NULL;
		dom->lch = NULL;
	} else {
		/* A second listener: bind again to the port the first got. */
		ret = rvrb_bind(dom, &l->ch, &l->id);
		if (ret)
			goto err_free;
	}
	if (rdma_listen(l->id, RVRB_BACKLOG)) {
		ret = rmig_err(-errno, "verbs listen on %s: rdma_listen: %s",
			       dom->address, strerror(errno));
		goto err_destroy;
	}
	*out = (struct rmig_prov_listener *)(void *)l;
	return 0;

err_destroy:
	rdma_destroy_id(l->id);
	rdma_destroy_event_channel(l->ch);
err_free:
	free(l);
	return ret;
}

int rvrb_listen_name(struct rmig_prov_listener *pl, char *buf, size_t len)
{
	struct rvrb_listener *l = to_rvrb_listener(pl);

	if (!l || !buf || !len)
		return rmig_err(-EINVAL, "verbs listen_name: bad argument");
	return rvrb_format_addr(rdma_get_local_addr(l->id), buf, len);
}

/* Turn a connection request's @id into a connection (receives may be
 * posted); rejects and destroys @id on failure. */
static int rvrb_accept_new(struct rvrb_listener *l, struct rdma_cm_id *id,
			   struct rvrb_conn **out)
{
	struct rvrb_domain *dom = l->dom;
	struct rvrb_conn *c;
	int ret;

	c = rvrb_conn_alloc(dom, true);
	if (!c) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return rmig_err(-ENOMEM, "verbs listen_get on %s: out of memory",
				dom->address);
	}
	c->id = id;
	if (rvrb_format_addr(rdma_get_peer_addr(id), c->name, sizeof(c->name)))
		snprintf(c->name, sizeof(c->name), "unknown peer");
	if (id->verbs != dom->ctx) {
		ret = rmig_err(-ENODEV,
			       "verbs listen_get on %s: request from %s arrived on device %s, the domain is on %s",
			       dom->address, c->name,
			       id->verbs ? ibv_get_device_name(id->verbs->device) : "(none)",
			       dom->dev_name);
		goto err_reject;
	}
	c->ech = rdma_create_event_channel();
	if (!c->ech) {
		ret = rmig_err(-errno, "verbs listen_get on %s: rdma_create_event_channel: %s",
			       dom->address, strerror(errno));
		goto err_reject;
	}
	ret = rvrb_set_nonblock(c->ech->fd);
	if (ret) {
		ret = rmig_err(ret, "verbs listen_get on %s: O_NONBLOCK: %s",
			       dom->address, strerror(-ret));
		goto err_reject;
	}
	/* Its own channel, before accept: every later event of this id
	 * (ESTABLISHED, DISCONNECTED) reaches the connection's thread. */
	if (rdma_migrate_id(id, c->ech)) {
		ret = rmig_err(-errno, "verbs listen_get on %s: rdma_migrate_id: %s",
			       dom->address, strerror(errno));
		goto err_reject;
	}
	id->context = c;
	ret = rvrb_conn_setup(c);
	if (ret) {
		rmig_err_prefix("verbs listen_get on %s", dom->address);
		goto err_reject;
	}
	*out = c;
	return 0;

err_reject:
	rdma_reject(id, NULL, 0);
	rvrb_conn_free(c);
	return ret;
}

int rvrb_listen_get(struct rmig_prov_listener *pl, int timeout_ms,
		    struct rmig_prov_conn **out)
{
	struct rvrb_listener *l = to_rvrb_listener(pl);
	int64_t deadline = timeout_ms > 0 ? rmig_now_ms() + timeout_ms : 0;
	struct rdma_cm_event *ev;
	struct rvrb_conn *c = NULL;
	int ret;

	if (!l || !out)
		return rmig_err(-EINVAL, "verbs listen_get: NULL argument");
	for (;;) {
		struct rdma_cm_id *id;
		unsigned req_init, req_resp;

		ret = rvrb_cm_wait(l->ch, rutl_wait_left(timeout_ms, deadline),
				   &ev);
		if (ret == -ETIMEDOUT)
			return rmig_err(-ETIMEDOUT,
					"verbs listen_get on %s: no connection request within %d ms",
					l->dom->address, timeout_ms);
		if (ret) {
			rmig_err_prefix("verbs listen_get on %s", l->dom->address);
			return ret;
		}
		if (ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL) {
			rdma_ack_cm_event(ev);
			return rmig_err(-ENODEV,
					"verbs listen_get on %s: device %s removed",
					l->dom->address, l->dom->dev_name);
		}
		if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
			/* Nothing else is expected on a listening id. */
			rmig_log_debug("verbs listen_get on %s: ignoring %s",
				       l->dom->address, rdma_event_str(ev->event));
			rdma_ack_cm_event(ev);
			continue;
		}
		id = ev->id;
		/* The request's RDMA READ offer, already from our side:
		 * responder_resources is the reads it may send us. */
		req_init = ev->param.conn.initiator_depth;
		req_resp = ev->param.conn.responder_resources;
		rdma_ack_cm_event(ev);
		ret = rvrb_accept_new(l, id, &c);
		if (ret)
			return ret;
		c->req_init = req_init;
		c->req_resp = req_resp;
		*out = &c->base;
		return 0;
	}
}

void rvrb_listen_close(struct rmig_prov_listener *pl)
{
	struct rvrb_listener *l = to_rvrb_listener(pl);
	struct rdma_cm_event *ev;

	if (!l)
		return;
	/* Refuse requests nobody will pick up. */
	while (!rvrb_cm_wait(l->ch, 0, &ev)) {
		struct rdma_cm_id *id = ev->event == RDMA_CM_EVENT_CONNECT_REQUEST ?
					ev->id : NULL;

		rdma_ack_cm_event(ev);
		if (id) {
			rdma_reject(id, NULL, 0);
			rdma_destroy_id(id);
		}
	}
	if (rdma_destroy_id(l->id))
		rmig_log_warn("verbs listen_close on %s: rdma_destroy_id: %s",
			      l->dom->address, strerror(errno));
	rdma_destroy_event_channel(l->ch);
	free(l);
}

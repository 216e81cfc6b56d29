/* SPDX-License-Identifier: MIT */
/*
 * hfab.c - the hostile peer's libfabric layer (hfab.h).  Single-threaded:
 * every endpoint is driven by the caller's thread, progress happens in the
 * CQ and EQ reads.
 */
#include "hfab.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#define NSLOTS (HF_NRX + 2)       /* rx buffers, tx, write source */
#define TX_SLOT HF_NRX
#define WR_SLOT (HF_NRX + 1)
#define CTX_RX(i) ((void *)(uintptr_t)((i) + 1))
#define CTX_SEND ((void *)(uintptr_t)(HF_NRX + 1))
#define CTX_WRITE ((void *)(uintptr_t)(HF_NRX + 2))
#define SLICE_MS 50

static _Thread_local char errbuf[512];

const char *hf_error(void)
{
	return errbuf;
}

int hf_fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return code;
}

/* A libfabric return (negative FI code) as a negative errno. */
static int fi_to_errno(ssize_t r)
{
	long e = r < 0 ? -r : r;

	return e > 0 && e < FI_ERRNO_OFFSET ? (int)-e : -EIO;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint8_t *slot_buf(struct hf_ep *e, unsigned slot)
{
	return e->mem + (size_t)slot * HF_BUF;
}

/* ------------------------------------------------------------------ */
/* Domain                                                              */

/* "host:port" or "[v6]:port" into @node and @svc. */
static int split_addr(const char *addr, char *node, size_t nlen, char *svc,
		      size_t slen)
{
	const char *colon = strrchr(addr, ':');
	size_t hl;

	if (!colon || !colon[1])
		return hf_fail(-EINVAL, "address '%s': expected host:port",
			      addr);
	hl = (size_t)(colon - addr);
	if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
		addr++;
		hl -= 2;
	}
	if (hl >= nlen || strlen(colon + 1) >= slen)
		return hf_fail(-EINVAL, "address '%s' too long", addr);
	memcpy(node, addr, hl);
	node[hl] = '\0';
	snprintf(svc, slen, "%s", colon + 1);
	return 0;
}

/* The hints' source address: @src, any port. */
static int hints_src(struct fi_info *hints, const char *src)
{
	struct sockaddr_in *sin = calloc(1, sizeof(*sin));

	if (!sin)
		return hf_fail(-ENOMEM, "out of memory");
	sin->sin_family = AF_INET;
	if (inet_pton(AF_INET, src, &sin->sin_addr) != 1) {
		free(sin);
		return hf_fail(-EINVAL, "source address '%s': not an IPv4 "
			       "address", src);
	}
	hints->addr_format = FI_SOCKADDR_IN;
	hints->src_addr = sin; /* fi_freeinfo() frees it */
	hints->src_addrlen = sizeof(*sin);
	return 0;
}

int hf_open(struct hf_dom *d, const char *prov, const char *addr,
	    bool passive, const char *src)
{
	char node[96], svc[16];
	struct fi_info *hints;
	int ret;

	memset(d, 0, sizeof(*d));
	snprintf(d->addr, sizeof(d->addr), "%s", addr);
	ret = split_addr(addr, node, sizeof(node), svc, sizeof(svc));
	if (ret)
		return ret;
	hints = fi_allocinfo();
	if (!hints)
		return hf_fail(-ENOMEM, "fi_allocinfo: out of memory");
	/* What rmig's fabric provider asks for (providers/fabric): the same
	 * endpoint type and capabilities, so the peer is indistinguishable
	 * from a source or a destination at the libfabric level. */
	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = FI_MSG | FI_RMA | FI_WRITE | FI_REMOTE_WRITE | FI_SEND |
		      FI_RECV;
	hints->mode = FI_RX_CQ_DATA;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
				      FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	hints->domain_attr->cq_data_size = 4;
	hints->tx_attr->msg_order = FI_ORDER_SAW;
	hints->rx_attr->msg_order = FI_ORDER_SAW;
	hints->fabric_attr->prov_name = strdup(prov);
	if (src && (ret = hints_src(hints, src))) {
		fi_freeinfo(hints);
		return ret;
	}
	ret = fi_getinfo(FI_VERSION(1, 17), node, svc, passive ? FI_SOURCE : 0,
			 hints, &d->info);
	fi_freeinfo(hints);
	if (ret)
		return hf_fail(fi_to_errno(ret), "fi_getinfo(%s, %s): %s", prov,
			      addr, fi_strerror(-ret));
	ret = fi_fabric(d->info->fabric_attr, &d->fabric, NULL);
	if (ret) {
		ret = hf_fail(fi_to_errno(ret), "fi_fabric(%s): %s", prov,
			     fi_strerror(-ret));
		goto err_free_info;
	}
	ret = fi_domain(d->fabric, d->info, &d->domain, NULL);
	if (ret) {
		ret = hf_fail(fi_to_errno(ret), "fi_domain(%s): %s", prov,
			     fi_strerror(-ret));
		goto err_close_fabric;
	}
	return 0;

err_close_fabric:
	fi_close(&d->fabric->fid);
err_free_info:
	fi_freeinfo(d->info);
	memset(d, 0, sizeof(*d));
	return ret;
}

void hf_close(struct hf_dom *d)
{
	if (d->pep)
		fi_close(&d->pep->fid);
	if (d->peq)
		fi_close(&d->peq->fid);
	if (d->domain)
		fi_close(&d->domain->fid);
	if (d->fabric)
		fi_close(&d->fabric->fid);
	if (d->info)
		fi_freeinfo(d->info);
	memset(d, 0, sizeof(*d));
}

int hf_listen(struct hf_dom *d, char *name, size_t len)
{
	struct fi_eq_attr eq_attr = { .size = 64, .wait_obj = FI_WAIT_UNSPEC };
	struct sockaddr_storage ss;
	size_t sslen = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	int ret;

	ret = fi_eq_open(d->fabric, &eq_attr, &d->peq, NULL);
	if (!ret)
		ret = fi_passive_ep(d->fabric, d->info, &d->pep, NULL);
	if (!ret)
		ret = fi_pep_bind(d->pep, &d->peq->fid, 0);
	if (!ret)
		ret = fi_listen(d->pep);
	if (!ret)
		ret = fi_getname(&d->pep->fid, &ss, &sslen);
	if (ret)
		return hf_fail(fi_to_errno(ret), "listen on %s: %s", d->addr,
			      fi_strerror(-ret));
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(name, len, "%s:%u", host, ntohs(sin->sin_port));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(name, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                           */

static int post_rx(struct hf_ep *e, unsigned slot)
{
	ssize_t r = fi_recv(e->ep, slot_buf(e, slot), HF_BUF, e->desc, 0,
			    CTX_RX(slot));

	if (r)
		return hf_fail(fi_to_errno(r), "fi_recv on %s: %s", e->peer,
			      fi_strerror((int)-r));
	return 0;
}

/* Endpoint, EQ, CQ and buffers from @info; receives posted. */
static int ep_new(struct hf_dom *d, struct hf_ep *e, struct fi_info *info,
		  const char *peer)
{
	struct fi_eq_attr eq_attr = { .size = 16, .wait_obj = FI_WAIT_UNSPEC };
	struct fi_cq_attr cq_attr = {
		.size = 4 * NSLOTS,
		.format = FI_CQ_FORMAT_DATA,
		.wait_obj = FI_WAIT_UNSPEC,
	};
	const char *what;
	int ret;

	memset(e, 0, sizeof(*e));
	e->dom = d;
	snprintf(e->peer, sizeof(e->peer), "%s", peer);
	e->mem = calloc(NSLOTS, HF_BUF);
	if (!e->mem)
		return hf_fail(-ENOMEM, "endpoint buffers: out of memory");
	what = "fi_eq_open";
	ret = fi_eq_open(d->fabric, &eq_attr, &e->eq, NULL);
	if (ret)
		goto fail;
	what = "fi_cq_open";
	ret = fi_cq_open(d->domain, &cq_attr, &e->cq, NULL);
	if (ret)
		goto fail;
	what = "fi_endpoint";
	ret = fi_endpoint(d->domain, info, &e->ep, NULL);
	if (ret)
		goto fail;
	what = "fi_ep_bind";
	ret = fi_ep_bind(e->ep, &e->eq->fid, 0);
	if (!ret)
		ret = fi_ep_bind(e->ep, &e->cq->fid, FI_TRANSMIT | FI_RECV);
	if (ret)
		goto fail;
	what = "fi_enable";
	ret = fi_enable(e->ep);
	if (ret)
		goto fail;
	what = "fi_mr_reg";
	ret = fi_mr_reg(d->domain, e->mem, (size_t)NSLOTS * HF_BUF,
			FI_SEND | FI_RECV | FI_WRITE, 0, ++d->next_key, 0,
			&e->mr, NULL);
	if (ret)
		goto fail;
	if (d->info->domain_attr->mr_mode & FI_MR_LOCAL)
		e->desc = fi_mr_desc(e->mr);
	for (unsigned i = 0; i < HF_NRX; i++) {
		ret = post_rx(e, i);
		if (ret)
			goto fail_posted;
	}
	return 0;

fail:
	ret = hf_fail(fi_to_errno(ret), "endpoint to %s: %s: %s", peer, what,
		     fi_strerror(-ret));
fail_posted:
	hf_ep_close(e);
	return ret;
}

void hf_ep_close(struct hf_ep *e)
{
	if (e->ep && e->connected && !e->peer_closed)
		fi_shutdown(e->ep, 0);
	if (e->ep)
		fi_close(&e->ep->fid);
	if (e->mr)
		fi_close(&e->mr->fid);
	if (e->cq)
		fi_close(&e->cq->fid);
	if (e->eq)
		fi_close(&e->eq->fid);
	free(e->mem);
	memset(e, 0, sizeof(*e));
}

/* Read one EQ event within @timeout_ms (0: do not wait). */
int hf_ep_poll(struct hf_ep *e, int timeout_ms)
{
	struct fi_eq_cm_entry ent;
	uint8_t raw[sizeof(ent) + 256];
	uint32_t event;
	ssize_t n;

	n = timeout_ms > 0 ?
		    fi_eq_sread(e->eq, &event, raw, sizeof(raw), timeout_ms, 0) :
		    fi_eq_read(e->eq, &event, raw, sizeof(raw), 0);
	if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT)
		return 0;
	if (n == -FI_EAVAIL) {
		struct fi_eq_err_entry err = { 0 };

		fi_eq_readerr(e->eq, &err, 0);
		e->peer_closed = true;
		return hf_fail(-ECONNREFUSED, "connection to %s: %s (err %d)",
			      e->peer, fi_strerror(err.err), err.err);
	}
	if (n < 0)
		return hf_fail(fi_to_errno(n), "fi_eq_read on %s: %s", e->peer,
			      fi_strerror((int)-n));
	if (event == FI_CONNECTED)
		e->connected = true;
	else if (event == FI_SHUTDOWN)
		e->peer_closed = true;
	return 0;
}

int hf_connect_start(struct hf_dom *d, struct hf_ep *e)
{
	int ret = ep_new(d, e, d->info, d->addr);

	if (ret)
		return ret;
	ret = fi_connect(e->ep, d->info->dest_addr, NULL, 0);
	if (ret) {
		ret = hf_fail(fi_to_errno(ret), "fi_connect to %s: %s", d->addr,
			     fi_strerror(-ret));
		hf_ep_close(e);
	}
	return ret;
}

/* Wait until the endpoint is connected or gone. */
static int wait_connected(struct hf_ep *e, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	int ret;

	while (!e->connected) {
		int left = (int)(end - now_ms());

		if (e->peer_closed)
			return hf_fail(-ECONNREFUSED, "connection to %s closed "
				      "during setup", e->peer);
		if (left <= 0)
			return hf_fail(-ETIMEDOUT, "connection to %s not "
				      "established within %d ms", e->peer,
				      timeout_ms);
		ret = hf_ep_poll(e, left < SLICE_MS ? left : SLICE_MS);
		if (ret)
			return ret;
	}
	return 0;
}

int hf_connect(struct hf_dom *d, struct hf_ep *e, int timeout_ms)
{
	int ret = hf_connect_start(d, e);

	if (!ret)
		ret = wait_connected(e, timeout_ms);
	return ret;
}

int hf_accept(struct hf_dom *d, struct hf_ep *e, int timeout_ms)
{
	union {
		struct fi_eq_cm_entry cm;
		uint8_t raw[sizeof(struct fi_eq_cm_entry) + 256];
	} ev;
	int64_t end = now_ms() + timeout_ms;
	char peer[128] = "a connecting peer";
	uint32_t event;
	ssize_t n;
	int ret;

	for (;;) {
		int left = (int)(end - now_ms());

		if (left <= 0)
			return hf_fail(-ETIMEDOUT, "no connection request on %s "
				      "within %d ms", d->addr, timeout_ms);
		n = fi_eq_sread(d->peq, &event, &ev, sizeof(ev),
				left < SLICE_MS ? left : SLICE_MS, 0);
		if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT)
			continue;
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry err = { 0 };

			fi_eq_readerr(d->peq, &err, 0);
			continue;
		}
		if (n < 0)
			return hf_fail(fi_to_errno(n), "fi_eq_sread on %s: %s",
				      d->addr, fi_strerror((int)-n));
		if (event == FI_CONNREQ && ev.cm.info)
			break;
	}
	ret = ep_new(d, e, ev.cm.info, peer);
	if (!ret) {
		ret = fi_accept(e->ep, NULL, 0);
		if (ret) {
			ret = hf_fail(fi_to_errno(ret), "fi_accept: %s",
				     fi_strerror(-ret));
			hf_ep_close(e);
		}
	} else {
		fi_reject(d->pep, ev.cm.info->handle, NULL, 0);
	}
	fi_freeinfo(ev.cm.info);
	if (!ret)
		ret = wait_connected(e, timeout_ms > 5000 ? timeout_ms : 5000);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Completions                                                         */

/* Account one completion; a receive goes to the stash. */
static void on_completion(struct hf_ep *e, const struct fi_cq_data_entry *c)
{
	uintptr_t ctx = (uintptr_t)c->op_context;

	if (ctx >= 1 && ctx <= HF_NRX) {
		if (e->nstash < HF_NRX)
			e->stash[e->nstash++] = (struct hf_rx){
				.slot = (unsigned)(ctx - 1),
				.len = c->len,
				.imm = c->flags & FI_REMOTE_CQ_DATA ?
					       (uint32_t)c->data : 0,
			};
		return;
	}
	if (c->op_context == CTX_WRITE)
		e->write_result = 1;
	if (e->tx_busy)
		e->tx_busy--;
}

static void on_error(struct hf_ep *e)
{
	struct fi_cq_err_entry err = { 0 };

	if (fi_cq_readerr(e->cq, &err, 0) < 0)
		return;
	if (err.op_context == CTX_WRITE) {
		e->write_result = err.err ? -err.err : -EIO;
		hf_fail(e->write_result, "write to %s failed: %s (err %d)",
		       e->peer, fi_strerror(err.err), err.err);
	}
	if (err.op_context == CTX_WRITE || err.op_context == CTX_SEND) {
		if (e->tx_busy)
			e->tx_busy--;
		return;
	}
	/* A flushed receive: the endpoint is going away. */
	e->peer_closed = true;
}

/* Read completions for up to @timeout_ms, returning early once @done
 * says so; also reads the EQ (peer_closed).  0, or -errno on a failure of
 * the CQ itself. */
static int progress(struct hf_ep *e, int timeout_ms,
		    bool (*done)(const struct hf_ep *))
{
	int64_t end = now_ms() + timeout_ms;
	struct fi_cq_data_entry c[8];
	ssize_t n;

	for (;;) {
		n = fi_cq_read(e->cq, c, 8);
		if (n > 0) {
			for (ssize_t i = 0; i < n; i++)
				on_completion(e, &c[i]);
			continue;
		}
		if (n == -FI_EAVAIL) {
			on_error(e);
			continue;
		}
		if (n != -FI_EAGAIN)
			return hf_fail(fi_to_errno(n), "fi_cq_read on %s: %s",
				      e->peer, fi_strerror((int)-n));
		(void)hf_ep_poll(e, 0);
		if (done(e) || e->peer_closed)
			return 0;
		int left = (int)(end - now_ms());

		if (left <= 0)
			return 0;
		n = fi_cq_sread(e->cq, c, 8, NULL,
				left < SLICE_MS ? left : SLICE_MS);
		if (n > 0)
			for (ssize_t i = 0; i < n; i++)
				on_completion(e, &c[i]);
		else if (n == -FI_EAVAIL)
			on_error(e);
	}
}

static bool have_msg(const struct hf_ep *e)
{
	return e->nstash > 0;
}

static bool tx_idle(const struct hf_ep *e)
{
	return e->tx_busy == 0;
}

/* ------------------------------------------------------------------ */
/* Messages and writes                                                 */

int hf_send_imm(struct hf_ep *e, uint32_t imm, const void *body, size_t len,
		int timeout_ms)
{
	uint8_t *buf = slot_buf(e, TX_SLOT);
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct fi_msg msg = {
		.msg_iov = &iov,
		.desc = &e->desc,
		.iov_count = 1,
		.context = CTX_SEND,
		.data = imm,
	};
	ssize_t r;
	int ret;

	if (len > HF_BUF)
		return hf_fail(-EMSGSIZE, "message of %zu bytes", len);
	if (e->peer_closed)
		return hf_fail(-ECONNRESET, "send to %s: the peer closed the "
			      "connection", e->peer);
	if (len)
		memcpy(buf, body, len);
	r = fi_sendmsg(e->ep, &msg, FI_REMOTE_CQ_DATA | FI_COMPLETION);
	if (r)
		return hf_fail(fi_to_errno(r), "fi_sendmsg to %s: %s", e->peer,
			      fi_strerror((int)-r));
	e->tx_busy++;
	ret = progress(e, timeout_ms, tx_idle);
	if (ret)
		return ret;
	if (e->tx_busy)
		return hf_fail(e->peer_closed ? -ECONNRESET : -ETIMEDOUT,
			      "send to %s did not complete (%s)", e->peer,
			      e->peer_closed ? "peer closed" : "timeout");
	return 0;
}

int hf_send(struct hf_ep *e, unsigned type, unsigned credits,
	    const void *body, size_t len, int timeout_ms)
{
	uint32_t imm = (uint32_t)(type & 0xf) << 28 |
		       (uint32_t)(credits & 0xfff) << 16;

	return hf_send_imm(e, imm, body, len, timeout_ms);
}

int hf_recv(struct hf_ep *e, struct hf_msg *m, int timeout_ms)
{
	int ret = progress(e, timeout_ms, have_msg);

	if (ret)
		return ret;
	if (!e->nstash) {
		if (!e->peer_closed)
			return 0;
		/* Whatever arrived before the close, once more. */
		(void)progress(e, 0, have_msg);
		if (!e->nstash)
			return hf_fail(-ECONNRESET, "%s closed the connection",
				      e->peer);
	}
	m->slot = e->stash[0].slot;
	m->len = e->stash[0].len;
	m->imm = e->stash[0].imm;
	m->type = m->imm >> 28;
	m->credits = (m->imm >> 16) & 0xfff;
	m->data = slot_buf(e, m->slot);
	memmove(e->stash, e->stash + 1, --e->nstash * sizeof(e->stash[0]));
	return 1;
}

int hf_msg_done(struct hf_ep *e, const struct hf_msg *m)
{
	return e->peer_closed ? 0 : post_rx(e, m->slot);
}

static bool write_done(const struct hf_ep *e)
{
	return e->write_result != 0;
}

int hf_write(struct hf_ep *e, uint64_t raddr, uint64_t rkey, uint8_t fill,
	     size_t len, int timeout_ms)
{
	uint8_t *buf = slot_buf(e, WR_SLOT);
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct fi_rma_iov rma = { .addr = raddr, .len = len, .key = rkey };
	struct fi_msg_rma msg = {
		.msg_iov = &iov,
		.desc = &e->desc,
		.iov_count = 1,
		.rma_iov = &rma,
		.rma_iov_count = 1,
		.context = CTX_WRITE,
	};
	ssize_t r;
	int ret;

	if (len > HF_BUF)
		return hf_fail(-EMSGSIZE, "write of %zu bytes", len);
	if (e->peer_closed)
		return hf_fail(-ECONNRESET, "write to %s: the peer closed the "
			      "connection", e->peer);
	memset(buf, fill, len);
	e->write_result = 0;
	/* Delivery complete: the completion says the bytes are in the
	 * target's memory, not merely sent.  Where a provider does not take
	 * the flag (verbs), an RC write completes once the target acked it,
	 * which comes to the same. */
	r = fi_writemsg(e->ep, &msg, FI_COMPLETION | FI_DELIVERY_COMPLETE);
	if (r == -FI_EBADFLAGS || r == -FI_EOPNOTSUPP || r == -FI_ENOSYS)
		r = fi_writemsg(e->ep, &msg, FI_COMPLETION);
	if (r)
		return hf_fail(fi_to_errno(r), "fi_writemsg to %s (raddr 0x%llx"
			      " key 0x%llx): %s", e->peer,
			      (unsigned long long)raddr,
			      (unsigned long long)rkey, fi_strerror((int)-r));
	e->tx_busy++;
	ret = progress(e, timeout_ms, write_done);
	if (ret)
		return ret;
	if (e->write_result > 0)
		return 0;
	if (e->write_result < 0)
		return e->write_result; /* message set by on_error() */
	return hf_fail(e->peer_closed ? -ECONNRESET : -ETIMEDOUT,
		      "write to %s: no completion (%s)", e->peer,
		      e->peer_closed ? "the peer closed the connection" :
				       "timeout");
}

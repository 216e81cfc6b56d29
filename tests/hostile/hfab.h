/* SPDX-License-Identifier: MIT */
/*
 * hfab.h - the hostile peer's own libfabric layer (prefix hf_): FI_EP_MSG
 * endpoints that speak rmig's message format without any of rmig's session,
 * channel or provider code, so the peer can do what rmig itself never would
 * (speak out of turn, stay silent, write with a key it was never given).
 *
 * What rmig's fabric provider does on the wire, and so what this layer does:
 * one FI_EP_MSG connection per channel; every message is a SEND of at most
 * RMIG_MSG_SIZE bytes carrying the 32-bit immediate (type in bits 31..28,
 * credits in 27..16) as FI_REMOTE_CQ_DATA; the receiver has buffers of
 * RMIG_MSG_SIZE posted.  The endpoint posts HF_NRX of them, registered once
 * with the transmit buffer and the write source.
 *
 * Every call returns 0 (or a count) or a negative errno, with a message in
 * hf_error() naming the call, the peer and the libfabric code.
 */
#ifndef RMIG_TESTS_HOSTILE_HFAB_H
#define RMIG_TESTS_HOSTILE_HFAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

/** Receive buffers posted on every endpoint. */
#define HF_NRX 16
/** Bytes of each buffer (rmig's RMIG_MSG_SIZE). */
#define HF_BUF 65536u

struct hf_dom {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_eq *peq;  /* passive side: the listener's EQ */
	struct fid_pep *pep; /* passive side: the listener */
	char addr[128];      /* as given, for messages */
	uint64_t next_key;   /* requested MR keys must differ in a domain */
};

struct hf_ep {
	struct hf_dom *dom;
	struct fid_ep *ep;
	struct fid_eq *eq;
	struct fid_cq *cq;
	struct fid_mr *mr;
	void *desc;          /* fi_mr_desc(), NULL where not needed */
	uint8_t *mem;        /* HF_NRX rx buffers, then tx, then write source */
	bool connected;      /* FI_CONNECTED seen */
	bool peer_closed;    /* FI_SHUTDOWN seen, or the connection failed */
	unsigned tx_busy;    /* sends and writes not yet completed */
	int write_result;    /* last write's completion: 1 ok, <0 error */
	/* Receive completions read while waiting for something else. */
	struct hf_rx {
		unsigned slot;
		size_t len;
		uint32_t imm;
	} stash[HF_NRX];
	unsigned nstash;
	char peer[128];
};

/** A received message, valid until hf_msg_done(). */
struct hf_msg {
	uint32_t imm;
	unsigned type;    /* imm bits 31..28, any value 0..15 */
	unsigned credits; /* imm bits 27..16 */
	size_t len;
	const uint8_t *data;
	unsigned slot;
};

/** The message of the last failed call of this thread. */
const char *hf_error(void);
/** Set hf_error()'s message; returns @code. */
int hf_fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/** Open a domain of libfabric provider @prov for "host:port" @addr;
 *  @passive: to listen there (port 0 picks one).  @src (active side, may
 *  be NULL): the IPv4 address connections come from. */
int hf_open(struct hf_dom *d, const char *prov, const char *addr,
	    bool passive, const char *src);
void hf_close(struct hf_dom *d);

/** Listen (passive domain); the bound "host:port" into @name. */
int hf_listen(struct hf_dom *d, char *name, size_t len);
/** Wait up to @timeout_ms for a connection request and accept it: @e
 *  is connected on return.  -ETIMEDOUT when none came. */
int hf_accept(struct hf_dom *d, struct hf_ep *e, int timeout_ms);

/** Create an endpoint, post its receives and start connecting; see
 *  hf_ep_poll() for the outcome. */
int hf_connect_start(struct hf_dom *d, struct hf_ep *e);
/** hf_connect_start(), then wait up to @timeout_ms for FI_CONNECTED. */
int hf_connect(struct hf_dom *d, struct hf_ep *e, int timeout_ms);
/** Read the endpoint's connection events for up to @timeout_ms: sets
 *  connected / peer_closed.  0, or -errno when the setup failed. */
int hf_ep_poll(struct hf_ep *e, int timeout_ms);

/** Send @len bytes (<= HF_BUF) as a message of @type with @credits in the
 *  immediate; waits up to @timeout_ms for the send to complete. */
int hf_send(struct hf_ep *e, unsigned type, unsigned credits,
	    const void *body, size_t len, int timeout_ms);
/** Send with a raw immediate (@imm as it goes on the wire). */
int hf_send_imm(struct hf_ep *e, uint32_t imm, const void *body, size_t len,
		int timeout_ms);
/** Wait up to @timeout_ms for the next message: 1 with @m, 0 on timeout,
 *  -ECONNRESET once the peer closed (messages before the close come
 *  first), another -errno on a failure. */
int hf_recv(struct hf_ep *e, struct hf_msg *m, int timeout_ms);
/** Post the message's buffer again. */
int hf_msg_done(struct hf_ep *e, const struct hf_msg *m);

/** RDMA WRITE @len bytes (<= HF_BUF) of byte @fill to @raddr with key
 *  @rkey, asking for delivery completion; waits up to @timeout_ms.  0 when
 *  the provider reported the write delivered, -errno (message) when not. */
int hf_write(struct hf_ep *e, uint64_t raddr, uint64_t rkey, uint8_t fill,
	     size_t len, int timeout_ms);

/** Shut down (when connected) and free everything; safe on a zeroed @e. */
void hf_ep_close(struct hf_ep *e);

#endif /* RMIG_TESTS_HOSTILE_HFAB_H */

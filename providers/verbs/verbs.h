/* SPDX-License-Identifier: MIT */
/*
 * verbs.h - private header of the rdma-core provider (prefix rvrb_).
 *
 * librdmacm finds the device and sets up connections; libibverbs moves the
 * bytes.  One protection domain per domain (session), on the device the
 * address resolves (source) or binds (destination) to.  Per connection: an
 * RDMA_PS_TCP cm_id on its own event channel (so DISCONNECTED reaches the
 * thread that drives the connection), one RC QP, one CQ for both queues
 * with its own completion channel, and an eventfd for conn_wake().
 *
 * Work requests carry a sequence number as wr_id (bit 63 set for the
 * receive queue) that indexes a ring of records: the context and opcode of
 * every posted request, so an error completion, which verbs reports even
 * for an unsignaled request, names the operation the core posted.  Send
 * queue entries retire in order when a later signaled request completes.
 *
 * post() takes the core's batch (writes, then the packet's send) and posts
 * it at once as one ibv_post_send chain (chains of RVRB_CHAIN_MAX when it is
 * longer): all of it, after checking the send queue has room, or nothing
 * (-EAGAIN; a batch longer than the whole queue goes in parts).  It never
 * waits for a slot; the core polls and posts again.
 *
 * post_read() posts IBV_WR_RDMA_READ requests the same way, each signaled
 * (a read's completion says its bytes have landed).  How many may be
 * outstanding is negotiated per connection by rdma_cm: each side offers
 * its device's limits (max_qp_init_rd_atom as initiator depth,
 * max_qp_rd_atom as responder resources, both capped at RVRB_MAX_RD_ATOM),
 * the acceptor takes the smaller of its own and the request's, and the
 * QP's max_rd_atomic is the result.  attr.max_read is this side's offer
 * (the domain's, before any connection); a connection whose peer offers
 * fewer responder resources allows fewer, and post_read() returns -EAGAIN
 * beyond them as beyond the send queue's room.
 *
 * poll() is adaptive: it busy-polls the CQ for the domain's spin time
 * (the tunable verbs_spin_us, environment RMIG_VERBS_SPIN_US), then arms
 * the CQ, polls once more to close the race, and sleeps in poll(2) on the
 * completion channel, the wake eventfd and the cm event channel, in slices
 * of at most RUTL_SLICE_MS.  An idle connection costs nothing but a wakeup
 * a slice.
 *
 * verbs_domain.c: domain, memory, listener, address helpers, ops table;
 * verbs_cm.c: connections (create, QP and CQ, establish, close);
 * verbs_conn.c: data operations, poll.
 */
#ifndef RMIG_PROVIDERS_VERBS_H
#define RMIG_PROVIDERS_VERBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "../util/util.h"

/** Cap on local segments per write (also bounded by the device's max_sge). */
#define RVRB_MAX_IOV 16
/** Queue depths when the core asks for none, and the most we ever use. */
#define RVRB_DEFAULT_DEPTH 256
#define RVRB_MAX_DEPTH 16384
/** Bound on address and route resolution, each. */
#define RVRB_RESOLVE_MS 2000
/** Work requests per ibv_post_send: a core batch (RMIG_BATCH_MAX writes
 *  and the packet's send) fits in one. */
#define RVRB_CHAIN_MAX 64
/** Inline data asked of the QP (dropped when the device has none). */
#define RVRB_INLINE 64
/** RNR retries asked of the peer's sends (7 would be "for ever"). */
#define RVRB_RNR_RETRY 6
/** Connection requests queued on a listener. */
#define RVRB_BACKLOG 64
/** Cap on the RDMA READs offered either way per connection (rdma_cm
 *  carries 8 bits, 255 meaning "the device's maximum"). */
#define RVRB_MAX_RD_ATOM 128
/** wr_id bit of receive-queue requests. */
#define RVRB_WR_RECV (1ull << 63)

struct rvrb_domain {
	/* The device context is librdmacm's (shared by every cm_id on the
	 * device and kept open by librdmacm); we never close it. */
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	bool passive;
	char address[RUTL_ADDR_MAX]; /* params->address, for messages */
	char dev_name[64];
	/* Active: the peer.  Passive: the bound address (port filled in). */
	struct sockaddr_storage addr;
	/* Passive: the bound cm_id and its channel until listen() takes
	 * them over. */
	struct rdma_event_channel *lch;
	struct rdma_cm_id *lid;
	unsigned sq_size;   /* send queue depth per connection */
	unsigned rq_size;   /* receive queue depth per connection */
	unsigned max_iov;
	uint32_t max_msg;
	unsigned spin_us;   /* the tunable verbs_spin_us */
	/* What a connection offers for RDMA READ (capped device limits):
	 * reads it may issue (initiator depth, max_qp_init_rd_atom) and
	 * reads of the peer it can serve (responder resources,
	 * max_qp_rd_atom). */
	unsigned init_depth, resp_res;
};

struct rvrb_mr {
	struct rmig_prov_mr base; /* to_rvrb_mr() gets back */
	struct ibv_mr *mr;
};

struct rvrb_listener {
	struct rvrb_domain *dom;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
};

/** What a send-queue slot remembers of its work request. */
struct rvrb_sq_rec {
	void *ctx;
	uint8_t op;      /* enum rmig_cqe_op */
	bool report;     /* the core asked for a completion */
};

struct rvrb_conn {
	struct rmig_prov_conn base; /* to_rvrb_conn() gets back */
	struct rvrb_domain *dom;
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	struct ibv_comp_channel *cch;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int wake_fd;           /* eventfd: conn_wake() from any thread */
	bool passive;
	bool connected;        /* ESTABLISHED seen: rdma_disconnect on close */
	bool peer_closed;      /* DISCONNECTED (or device gone) seen */
	bool armed;            /* ibv_req_notify_cq done, no event read yet */
	uint32_t qp_num;
	uint32_t max_inline;

	/* Send queue: sequence numbers sq_tail..sq_head-1 are posted and
	 * not retired; slot = seq % sq_size. */
	struct rvrb_sq_rec *sq;
	unsigned sq_size;
	uint64_t sq_head, sq_tail;
	unsigned unsig_run;    /* unsignaled requests since the last signaled */
	/* RDMA READ: how many this side may have outstanding (the QP's
	 * negotiated max_rd_atomic) and how many are (posted, completion
	 * not yet polled).  Passive: what the request offered, from the
	 * local point of view, until accepted. */
	unsigned max_read, reads_out;
	unsigned req_init, req_resp;
	/* Receive queue, the same way. */
	void **rq;
	unsigned rq_size;
	uint64_t rq_head, rq_tail;

	/* The chain post() builds (scratch: nothing stays in it). */
	struct ibv_send_wr chain[RVRB_CHAIN_MAX];
	struct ibv_sge *chain_sge; /* RVRB_CHAIN_MAX * max_iov */

	struct rutl_err err; /* first error wins, naming the failed op */
	char name[RUTL_ADDR_MAX];  /* peer, for messages */
};

static inline struct rvrb_domain *to_rvrb_domain(struct rmig_prov_domain *d)
{
	return (struct rvrb_domain *)(void *)d;
}

static inline struct rvrb_listener *
to_rvrb_listener(struct rmig_prov_listener *l)
{
	return (struct rvrb_listener *)(void *)l;
}

/* NULL stays NULL: the ops check their argument. */
static inline struct rvrb_conn *to_rvrb_conn(struct rmig_prov_conn *c)
{
	return c ? rutl_container_of(c, struct rvrb_conn, base) : NULL;
}

static inline struct rvrb_mr *to_rvrb_mr(struct rmig_prov_mr *m)
{
	return m ? rutl_container_of(m, struct rvrb_mr, base) : NULL;
}

/* Helpers shared by the two source files (verbs_domain.c). */

/** Format @sa (NULL: -ENOTCONN) as "host:port" ("[addr]:port" for IPv6). */
int rvrb_format_addr(const struct sockaddr *sa, char *buf, size_t len);
/** Set O_NONBLOCK on @fd; 0 or -errno. */
int rvrb_set_nonblock(int fd);
/** Wait up to @timeout_ms (<0 forever) for the next event on @ch. */
int rvrb_cm_wait(struct rdma_event_channel *ch, int timeout_ms,
		 struct rdma_cm_event **ev);
/** Resolve address and route of @dst on @id (whose channel is @ch), each
 *  step bounded by RVRB_RESOLVE_MS.  @what names the address. */
int rvrb_resolve(struct rdma_event_channel *ch, struct rdma_cm_id *id,
		 struct sockaddr *dst, const char *what);

/** Create the CQ, completion channel, eventfd and QP of @c on @c->id, so
 *  receives can be posted. */
int rvrb_conn_setup(struct rvrb_conn *c);
/** Undo rvrb_conn_setup() and destroy the id and channel; frees @c. */
void rvrb_conn_free(struct rvrb_conn *c);
/** A zeroed connection of @dom (fds -1). */
struct rvrb_conn *rvrb_conn_alloc(struct rvrb_domain *dom, bool passive);

/* The ops (verbs_domain.c). */
int rvrb_domain_open(const struct rmig_prov_params *p,
		     struct rmig_prov_domain **out, struct rmig_prov_attr *attr);
void rvrb_domain_close(struct rmig_prov_domain *d);
int rvrb_mr_reg(struct rmig_prov_domain *d, void *addr, size_t len,
		enum rmig_mr_access access, struct rmig_prov_mr **out);
void rvrb_mr_dereg(struct rmig_prov_mr *m);
int rvrb_listen(struct rmig_prov_domain *d, struct rmig_prov_listener **out);
int rvrb_listen_name(struct rmig_prov_listener *l, char *buf, size_t len);
int rvrb_listen_get(struct rmig_prov_listener *l, int timeout_ms,
		    struct rmig_prov_conn **out);
void rvrb_listen_close(struct rmig_prov_listener *l);

/* The ops (verbs_cm.c). */
int rvrb_conn_create(struct rmig_prov_domain *d, struct rmig_prov_conn **out);
int rvrb_conn_establish(struct rmig_prov_conn *c, int timeout_ms);
int rvrb_conn_peer_name(struct rmig_prov_conn *c, char *buf, size_t len);
void rvrb_conn_close(struct rmig_prov_conn *c);

/* The ops (verbs_conn.c). */
int rvrb_post_recv(struct rmig_prov_conn *c, void *buf, size_t len,
		   struct rmig_prov_mr *mr, void *ctx);
int rvrb_post(struct rmig_prov_conn *c, const struct rmig_write *w,
	      unsigned nw, const struct rmig_send *send, unsigned *posted);
int rvrb_post_read(struct rmig_prov_conn *c, const struct rmig_read *r,
		   unsigned n, unsigned *posted);
int rvrb_poll(struct rmig_prov_conn *c, struct rmig_cqe *cqe, int max,
	      int timeout_ms);
void rvrb_conn_wake(struct rmig_prov_conn *c);

#endif /* RMIG_PROVIDERS_VERBS_H */

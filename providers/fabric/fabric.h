/* SPDX-License-Identifier: MIT */
/*
 * fabric.h - private header of the libfabric provider (prefix rfab_).
 *
 * One domain per rmig_prov_params (fi_getinfo + fi_fabric + fi_domain), one
 * passive endpoint with its own EQ per listener, and per connection one
 * FI_EP_MSG endpoint with its own EQ (connection events, FI_SHUTDOWN) and its
 * own CQ (FI_CQ_FORMAT_DATA with a wait object, bound with
 * FI_SELECTIVE_COMPLETION so unsignaled writes produce nothing).
 *
 * post() posts a batch op by op (fi_writemsg with FI_MORE on all but the
 * last op, then fi_sendmsg with FI_REMOTE_CQ_DATA) and returns -EAGAIN at
 * the first -FI_EAGAIN, saying how many it posted; it never waits.
 *
 * post_read() posts fi_readmsg op by op the same way, each with
 * FI_COMPLETION.  libfabric's completion of a read carries neither its
 * length nor anything we could tell it by but its context, so each read
 * takes a record of the connection's (its context and length), whose
 * address is the op's context: a completion whose context is a record is
 * a READ (its length is the record's), an error entry's names the failed
 * read.  attr.max_read is attr.max_tx (reads take transmit slots as writes
 * do) and there are that many records: a read finding none free is
 * -EAGAIN, so the limit is enforced for reads even where the provider
 * (tcp) queues writes beyond max_tx.
 *
 * fabric_domain.c holds the domain, memory registration, listener and the ops
 * table; fabric_conn.c holds connections, data operations and poll.
 */
#ifndef RMIG_PROVIDERS_FABRIC_H
#define RMIG_PROVIDERS_FABRIC_H

#include <pthread.h>
#include <sys/socket.h>
#include <stdatomic.h>
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

#include "../util/util.h"

/** The libfabric API version this provider is written against. */
#define RFAB_FI_VERSION FI_VERSION(1, 17)
/** Default libfabric provider when rmig_prov_params.subprovider is NULL. */
#define RFAB_DEFAULT_PROV "tcp"
/** Local segments per write we can describe on the stack. */
#define RFAB_MAX_IOV 64
/** Capabilities we need: messages, RDMA WRITE and RDMA READ both ways. */
#define RFAB_CAPS                                                            \
	(FI_MSG | FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ |             \
	 FI_REMOTE_WRITE | FI_SEND | FI_RECV)
/** mr_mode bits we ask for and can live with. */
#define RFAB_MR_MODE \
	(FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY)

struct rfab_domain {
	struct fi_info *info;        /* chosen fi_getinfo entry (owned) */
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	bool passive;
	uint64_t mr_mode;            /* as granted by the provider */
	size_t tx_size;              /* endpoint queue sizes we use */
	size_t rx_size;
	unsigned max_iov;
	char prov_name[32];
	char address[RUTL_ADDR_MAX]; /* params->address, for messages */
	/* Next requested MR key when the provider lets us choose (no
	 * FI_MR_PROV_KEY).  Only fetch_add'ed: uniqueness needs atomicity, not
	 * ordering, so relaxed (pairs with nothing). */
	atomic_uint_fast64_t next_key;
	/* The accepted connections alive, for the listener's sweep
	 * (fabric_sweep.c): a connection is on the list from its creation
	 * until its endpoint, and so its socket, is closed. */
	pthread_mutex_t peers_lock;
	struct rfab_conn *peers;
};

struct rfab_mr {
	struct rmig_prov_mr base; /* to_rfab_mr() gets back */
	struct fid_mr *mr;
};

/* The sweep (fabric_sweep.c) closes a socket on the listening port that
 * has not sent a connection request after RFAB_SWEEP_AGE_MS, looking at
 * most every RFAB_SWEEP_EVERY_MS, the first time that long after listen.
 * A sweep reads /proc/self/net/tcp, milliseconds of the kernel walking
 * its whole table: while a source connects its channels (a connection
 * handed out less than RFAB_SWEEP_QUIET_MS ago) it waits, up to
 * RFAB_SWEEP_AGE_MS since the last, so that it does not delay the
 * next channel's accept (and a flood of requests cannot stop it). */
#define RFAB_SWEEP_AGE_MS 1000
#define RFAB_SWEEP_EVERY_MS 250
#define RFAB_SWEEP_QUIET_MS 250
/* Connection requests a listener's event queue holds. */
#define RFAB_LISTEN_EQ_SIZE 1024
/* Strays that make listen_get cycle the listener. */
#define RFAB_CYCLE_STRAYS 8

/* A socket on the listening port the sweep has seen (fabric_sweep.c). */
struct rfab_seen {
	int fd;
	bool mark;
	int64_t first_ms;
	char peer[RUTL_ADDR_MAX];
};

struct rfab_listener {
	struct rfab_domain *dom;
	struct fid_eq *eq;
	struct fid_pep *pep;
	/* The bound address, and the sweep's memory of the sockets on it
	 * that no connection of ours owns. */
	struct sockaddr_storage laddr;
	size_t laddr_len;
	struct rfab_seen *seen;
	unsigned nseen;
	/* /proc/self/fd and /proc/self/net/tcp{,6}, open while listening
	 * (-1: none). */
	int fddir, nettcp;
	int64_t last_sweep_ms;
	int64_t last_conn_ms; /* a connection last handed out */
};

/** An RDMA READ posted and not yet completed: its address is the op's
 *  context (see the top of the file). */
struct rfab_read {
	void *ctx;
	size_t len;
	struct rfab_read *next; /* on the free list */
};

struct rfab_conn {
	struct rmig_prov_conn base; /* to_rfab_conn() gets back */
	struct rfab_domain *dom;
	struct fid_ep *ep;
	struct fid_eq *eq;
	struct fid_cq *cq;
	bool passive;
	bool connected;     /* FI_CONNECTED seen: fi_shutdown on close */
	bool peer_closed;   /* FI_SHUTDOWN seen on the EQ */
	struct rutl_err err; /* first error wins */
	char name[RUTL_ADDR_MAX];   /* peer, for messages */
	/* Set by conn_wake() from any thread, consumed by poll() on the driving
	 * thread; see the pairing comments at both ends. */
	atomic_bool wake;
	/* Accepted connections: on dom->peers, under dom->peers_lock. */
	struct rfab_conn *peer_next, **peer_pprev;
	/* dom->tx_size records for reads, those free on a list. */
	struct rfab_read *reads, *reads_free;
};

/* What a CM event queue entry looks like, with room for private data. */
union rfab_cm_buf {
	struct fi_eq_cm_entry cm;
	uint8_t raw[sizeof(struct fi_eq_cm_entry) + 256];
};

static inline struct rfab_domain *to_rfab_domain(struct rmig_prov_domain *d)
{
	return (struct rfab_domain *)(void *)d;
}

static inline struct rfab_listener *
to_rfab_listener(struct rmig_prov_listener *l)
{
	return (struct rfab_listener *)(void *)l;
}

/* NULL stays NULL: the ops check their argument. */
static inline struct rfab_conn *to_rfab_conn(struct rmig_prov_conn *c)
{
	return c ? rutl_container_of(c, struct rfab_conn, base) : NULL;
}

static inline struct rfab_mr *to_rfab_mr(struct rmig_prov_mr *m)
{
	return m ? rutl_container_of(m, struct rfab_mr, base) : NULL;
}

/* Helpers shared by the two source files. */

/** Translate a libfabric return code (negative FI_E*) or positive FI errno
 *  (error entries) into a negative errno; never -ECANCELED, which the core
 *  reserves for a session that was already failed or cancelled. */
int rfab_errno(int fi_code);
/** True when @err (positive FI errno of an error entry) means the peer or
 *  the connection went away. */
bool rfab_err_is_dead_peer(int err);
/** ", prov_errno N: text" for a message (without ": text" when the
 *  provider has none for N), or "" when the provider gave no code of its
 *  own; formatted into @buf. */
const char *rfab_prov_detail(char *buf, size_t len, int prov_errno,
			     const char *text);

/** Create a connection's EQ, CQ and endpoint from @info, bind and enable it,
 *  so receives can be posted.  @name names the peer in messages. */
int rfab_conn_new(struct rfab_domain *dom, struct fi_info *info, bool passive,
		  const char *name, struct rfab_conn **out);

/* The ops (fabric_domain.c). */
int rfab_domain_open(const struct rmig_prov_params *p,
		     struct rmig_prov_domain **out, struct rmig_prov_attr *attr);
void rfab_domain_close(struct rmig_prov_domain *d);
int rfab_mr_reg(struct rmig_prov_domain *d, void *addr, size_t len,
		enum rmig_mr_access access, struct rmig_prov_mr **out);
void rfab_mr_dereg(struct rmig_prov_mr *m);
int rfab_listen(struct rmig_prov_domain *d, struct rmig_prov_listener **out);
int rfab_listen_name(struct rmig_prov_listener *l, char *buf, size_t len);
int rfab_listen_get(struct rmig_prov_listener *l, int timeout_ms,
		    struct rmig_prov_conn **out);
void rfab_listen_close(struct rmig_prov_listener *l);

/* fabric_sweep.c: libfabric 1.17's tcp passive endpoint keeps every socket
 * it accepted that never sent a connection request, after fi_close too. */
/** Put accepted connection @c on its domain's list (at creation) / take it
 *  off (once its endpoint is closed). */
void rfab_peers_add(struct rfab_conn *c);
void rfab_peers_del(struct rfab_conn *c);
/** Count the sockets on @l's port that no connection of ours owns and
 *  that the sweep has seen for @min_age_ms at least (0: all), closing
 *  them when @do_close (only once the passive endpoint is closed). */
unsigned rfab_sweep(struct rfab_listener *l, int min_age_ms, bool do_close);
/** Open the files the sweep reads (at listen); -1 with a warning. */
int rfab_sweep_open(struct rfab_listener *l);
/** Close them and forget what the sweep saw. */
void rfab_sweep_close(struct rfab_listener *l);

/* The ops (fabric_conn.c). */
int rfab_conn_create(struct rmig_prov_domain *d, struct rmig_prov_conn **out);
int rfab_conn_establish(struct rmig_prov_conn *c, int timeout_ms);
int rfab_conn_peer_name(struct rmig_prov_conn *c, char *buf, size_t len);
void rfab_conn_close(struct rmig_prov_conn *c);
int rfab_post_recv(struct rmig_prov_conn *c, void *buf, size_t len,
		   struct rmig_prov_mr *mr, void *ctx);
int rfab_post(struct rmig_prov_conn *c, const struct rmig_write *w,
	      unsigned nw, const struct rmig_send *send, unsigned *posted);
int rfab_post_read(struct rmig_prov_conn *c, const struct rmig_read *r,
		   unsigned n, unsigned *posted);
int rfab_poll(struct rmig_prov_conn *c, struct rmig_cqe *cqe, int max,
	      int timeout_ms);
void rfab_conn_wake(struct rmig_prov_conn *c);
int rfab_preload(void);

#endif /* RMIG_PROVIDERS_FABRIC_H */

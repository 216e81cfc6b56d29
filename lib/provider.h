/* SPDX-License-Identifier: MIT */
/*
 * provider.h - the interface between the core and a transport provider.
 *
 * A provider is one const struct rmig_provider: a name, an ABI version and
 * function pointers.  The core keeps an explicit table of built-in providers
 * (provider.c) and, before use, copies each into a full ops table whose
 * missing entries return -EOPNOTSUPP, so no caller ever tests for NULL: a
 * transport's ops (lib/transport.h), which each connection and channel
 * reaches through its transport.
 *
 * Memory registration (domain, mr) is kept apart from data transfer (conn).
 * The core owns the protocol (handshake, credits, headers); a provider only
 * moves bytes:
 *
 *   - post_recv: a receive buffer for one message (<= RMIG_MSG_SIZE bytes);
 *   - post: a batch of RDMA WRITEs from local registered memory to remote
 *     addresses and keys (a completion only for a write marked signaled),
 *     optionally followed by one send of a message with a 32-bit immediate
 *     (SEND_WITH_IMM, fi_senddata with FI_REMOTE_CQ_DATA; always produces a
 *     completion).  A send is delivered after every write posted before it
 *     on the connection has landed (RC ordering, FI_ORDER_SAW), so the
 *     send's arrival proves the writes';
 *   - post_read: a batch of one-sided RDMA READs from remote addresses and
 *     keys into local registered memory (IBV_WR_RDMA_READ, fi_readmsg);
 *     each always produces a completion, whose arrival means the bytes
 *     are in local memory.  Reads are not ordered against the
 *     connection's sends and writes, nor one another's data against a
 *     later send (the core orders nothing by them);
 *   - poll: completions, in posting order per direction.
 *
 * The contract of the data operations:
 *
 *   - Posted means posted.  post_recv and post return only once each
 *     operation they took is handed to the provider's queue (the device's
 *     work queue, libfabric's endpoint), or with an error.  Nothing is held
 *     back for a later call: a poll never posts anything.
 *   - A provider never sleeps, waits or retries on its own in a post.  When
 *     a queue is full it returns -EAGAIN at once; the core alone waits: it
 *     polls (which retires completed operations and, for libfabric, drives
 *     progress) and posts the rest again.  All of that is one loop, in
 *     lib/chan.c; its accounting (max_ops <= attr.max_tx outstanding
 *     operations, credits <= the peer's posted receives) keeps the queues
 *     from filling in normal operation, so -EAGAIN is the exception.
 *   - A batch is posted in order.  *posted says how many of its operations
 *     (the writes in order, then the send) were posted, also on failure:
 *     those complete (or are flushed) like any other.  verbs posts a batch
 *     that fits its send queue (attr.max_tx) entirely or not at all (it
 *     checks for room before ibv_post_send; the core's batches always
 *     fit); a longer one goes in parts, as room allows.  A failed
 *     ibv_post_send posted the work requests before its bad_wr, which
 *     *posted counts, and fails the connection (ENOMEM: -EAGAIN).
 *     libfabric and the mock post op by op (libfabric: FI_MORE on all but
 *     the last), so -EAGAIN may come after a prefix was posted.
 *   - No completions are parked in the provider: poll returns what the
 *     completion queue holds, nothing read earlier by a post.
 *
 * Errors: negative errno, with a message recorded by rmig_err() that names
 * the operation and the provider's own error text.  A peer that went away
 * makes poll (or the next post) fail with -ECONNRESET.
 *
 * Threads: one connection is driven by one thread at a time, except
 * conn_wake(), which any thread may call.
 */
#ifndef RMIG_PROVIDER_H
#define RMIG_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RMIG_PROVIDER_ABI 4 /* 4: post_read, read registrations */

struct rmig_prov_domain;   /* provider-private */
struct rmig_prov_listener; /* provider-private */

/**
 * What a memory registration is for.  The provider grants exactly the
 * access that use needs, no more: the kernel pins a region for writing
 * (breaking a write fault on every page, copy-on-write and KSM or
 * zero-page sharing, and failing on a read-only mapping) whenever a
 * registration allows any write.
 *
 *   RMIG_MR_MSG_BUF       message buffers: receives land in them (local
 *                         write), sends and writes read from them.
 *                         verbs: IBV_ACCESS_LOCAL_WRITE; libfabric:
 *                         FI_SEND | FI_RECV | FI_WRITE.
 *   RMIG_MR_WRITE_SOURCE  the source's RAM: only read by the adapter as
 *                         the local side of an RDMA WRITE.  No write access
 *                         at all, so a read-only mapping registers and
 *                         pages are pinned without being written.
 *                         verbs: 0 (local read is implied); libfabric:
 *                         FI_WRITE.
 *   RMIG_MR_WRITE_TARGET  the destination's RAM: the peer's RDMA WRITEs
 *                         land in it.  verbs: IBV_ACCESS_LOCAL_WRITE |
 *                         IBV_ACCESS_REMOTE_WRITE (verbs requires local
 *                         write with remote write); libfabric:
 *                         FI_REMOTE_WRITE.
 *   RMIG_MR_READ_SOURCE   the source's RAM exposed to the peer's RDMA
 *                         READs (post-copy).  Remote read only: no write
 *                         access, pinned without being written.
 *                         verbs: IBV_ACCESS_REMOTE_READ; libfabric:
 *                         FI_REMOTE_READ.
 *   RMIG_MR_READ_TARGET   local memory an RDMA READ lands in.  verbs:
 *                         IBV_ACCESS_LOCAL_WRITE; libfabric: FI_READ.
 *
 * A provider that cannot do RDMA READ (its post_read is absent) fails the
 * two read uses with -EOPNOTSUPP.
 *
 * Used otherwise (a receive into a write source, a write from a target,
 * a peer's write into anything but a target), an operation may fail: the
 * mock provider fails it, so that the core's choice is tested.
 */
enum rmig_mr_access {
	RMIG_MR_MSG_BUF = 1,
	RMIG_MR_WRITE_SOURCE = 2,
	RMIG_MR_WRITE_TARGET = 3,
	RMIG_MR_READ_SOURCE = 4,
	RMIG_MR_READ_TARGET = 5,
};

/** Name of @a for messages ("message buffer", "write source", "write
 *  target"), "invalid" for anything else. */
static inline const char *rmig_mr_access_name(enum rmig_mr_access a)
{
	switch (a) {
	case RMIG_MR_MSG_BUF:
		return "message buffer";
	case RMIG_MR_WRITE_SOURCE:
		return "write source";
	case RMIG_MR_WRITE_TARGET:
		return "write target";
	case RMIG_MR_READ_SOURCE:
		return "read source";
	case RMIG_MR_READ_TARGET:
		return "read target";
	}
	return "invalid";
}

/** A memory registration; the provider embeds it as its first member. */
struct rmig_prov_mr {
	void *addr;
	size_t len;
	/** What the peer puts in a write to reach @addr: addr itself when the
	 *  provider uses virtual addresses, else 0 (offset-based). */
	uint64_t raddr;
	uint64_t rkey;
	/** Local descriptor for posting (fi_mr_desc); NULL if not needed. */
	void *desc;
};

struct rmig_tp; /* the core's (transport.h) */

/** A connection; the provider embeds it as its first member. */
struct rmig_prov_conn {
	/** The core's transport the connection belongs to, set by the core
	 *  once conn_create or listen_get returned it; a provider leaves it
	 *  alone. */
	struct rmig_tp *tp;
};

/** Parameters for opening a domain. */
struct rmig_prov_params {
	/** "host:port" to listen on (destination) or to connect to (source). */
	const char *address;
	/** Provider-specific selector, e.g. libfabric provider name "tcp". */
	const char *subprovider;
	/** True for the listening side. */
	bool passive;
	/** Receive and transmit queue depths the core will use per conn. */
	unsigned rx_depth;
	unsigned tx_depth;
};

/** Limits the provider reports after opening a domain. */
struct rmig_prov_attr {
	char name[64];          /* e.g. "fabric/tcp" */
	size_t max_msg_size;    /* largest single write or send */
	unsigned max_iov;       /* local segments per write */
	/** Writes and sends per conn posted and not yet retired (an op
	 *  retires when its completion, or a later signaled op's, is polled);
	 *  one more is -EAGAIN.  At least the tx_depth asked for when the
	 *  device allows it. */
	unsigned max_tx;
	unsigned max_rx;        /* receives posted per conn, the same way */
	/** RDMA READs per conn outstanding at once (0: no post_read). */
	unsigned max_read;
	/** RDMA device name (e.g. "rxe0", "mlx5_0") when the provider runs
	 *  on one, else "" (the core looks up its NUMA node in sysfs). */
	char device[64];
};

/** One local segment of a write. */
struct rmig_iov {
	void *addr;
	size_t len;
	struct rmig_prov_mr *mr; /* registration covering [addr, addr+len) */
};

/** One RDMA WRITE of a batch: @niov local segments (1..attr.max_iov, at
 *  most attr.max_msg_size bytes in all) to @raddr/@rkey.  @ctx comes back
 *  in its completion, which there is only when @signaled (but a failed
 *  write is named by @ctx either way, see poll). */
struct rmig_write {
	const struct rmig_iov *iov;
	unsigned niov;
	uint64_t raddr;
	uint64_t rkey;
	void *ctx;
	bool signaled;
};

/** The send that may end a batch: @len bytes (<= attr.max_msg_size) at
 *  @buf in @mr, and the immediate @imm; always completes with @ctx. */
struct rmig_send {
	const void *buf;
	size_t len;
	struct rmig_prov_mr *mr;
	uint32_t imm;
	void *ctx;
};

/** One RDMA READ: @len bytes (<= attr.max_msg_size) from @raddr/@rkey on
 *  the peer into @addr, inside the local registration @mr (a read
 *  target).  Always completes, with @ctx. */
struct rmig_read {
	void *addr;
	size_t len;
	struct rmig_prov_mr *mr;
	uint64_t raddr;
	uint64_t rkey;
	void *ctx;
};

enum rmig_cqe_op {
	RMIG_CQE_RECV = 1,
	RMIG_CQE_SEND = 2,
	RMIG_CQE_WRITE = 3,
	RMIG_CQE_READ = 4,
};

struct rmig_cqe {
	enum rmig_cqe_op op;
	void *ctx;     /* as passed to post_recv/post/post_read */
	size_t len;    /* RECV: bytes received; READ: bytes read */
	uint32_t imm;  /* RECV: the immediate */
};

struct rmig_provider_ops {
	const char *name;
	unsigned abi; /* RMIG_PROVIDER_ABI */

	/* Domain and memory. */
	int (*domain_open)(const struct rmig_prov_params *p,
			   struct rmig_prov_domain **out,
			   struct rmig_prov_attr *attr);
	void (*domain_close)(struct rmig_prov_domain *dom);
	/** Register [addr, addr+len) for the use @access says (see enum
	 *  rmig_mr_access); -EINVAL for another value. */
	int (*mr_reg)(struct rmig_prov_domain *dom, void *addr, size_t len,
		      enum rmig_mr_access access, struct rmig_prov_mr **out);
	void (*mr_dereg)(struct rmig_prov_mr *mr);

	/* Connection management.  A connection is created in a state where
	 * receives may be posted, then established. */
	int (*listen)(struct rmig_prov_domain *dom,
		      struct rmig_prov_listener **out);
	/** Bound address as "host:port". */
	int (*listen_name)(struct rmig_prov_listener *l, char *buf,
			   size_t len);
	/** Wait up to @timeout_ms (<0 forever) for a connection request and
	 *  return it, not yet established (-ETIMEDOUT when none). */
	int (*listen_get)(struct rmig_prov_listener *l, int timeout_ms,
			  struct rmig_prov_conn **out);
	void (*listen_close)(struct rmig_prov_listener *l);
	/** Source side: a connection to p->address, not yet established. */
	int (*conn_create)(struct rmig_prov_domain *dom,
			   struct rmig_prov_conn **out);
	/** Establish (accept a request or connect), waiting up to
	 *  @timeout_ms.  Receives posted before stay posted. */
	int (*conn_establish)(struct rmig_prov_conn *c, int timeout_ms);
	/** Peer's address as "host:port" (for messages). */
	int (*conn_peer_name)(struct rmig_prov_conn *c, char *buf,
			      size_t len);
	void (*conn_close)(struct rmig_prov_conn *c);

	/* Data transfer. */
	/** Post a receive of up to @len bytes into @buf; -EAGAIN when
	 *  attr.max_rx receives are posted and not yet completed. */
	int (*post_recv)(struct rmig_prov_conn *c, void *buf, size_t len,
			 struct rmig_prov_mr *mr, void *ctx);
	/** Post @nw writes, then @send unless it is NULL, in that order (see
	 *  the contract above).  0 when all were posted; else a negative errno
	 *  (-EAGAIN: a queue is full, poll and post the rest again) with
	 *  *posted the number of leading operations that were posted anyway. */
	int (*post)(struct rmig_prov_conn *c, const struct rmig_write *w,
		    unsigned nw, const struct rmig_send *send, unsigned *posted);
	/** Post @n reads in order.  Reads take transmit slots like writes
	 *  (attr.max_tx in all, each retiring at its own completion) and
	 *  at most attr.max_read of them are outstanding at once; one more
	 *  is -EAGAIN, with *posted as for post.  Absent (-EOPNOTSUPP) in a
	 *  provider without RDMA READ. */
	int (*post_read)(struct rmig_prov_conn *c, const struct rmig_read *r,
			 unsigned n, unsigned *posted);
	/** Up to @max completions; waits up to @timeout_ms (0: no wait, <0:
	 *  forever) for the first.  Returns the count (0 on timeout or after
	 *  conn_wake()), or a negative errno for a failed operation or a lost
	 *  connection.  When an operation completed in error, cqe[0].op and
	 *  cqe[0].ctx name it (ctx NULL when the provider cannot tell), so the
	 *  core can say which block and offset failed; the rmig_err() message
	 *  names the opcode and the provider's status text. */
	int (*poll)(struct rmig_prov_conn *c, struct rmig_cqe *cqe, int max,
		    int timeout_ms);
	/** Make a poll() blocked on @c (now or next) return early. */
	void (*conn_wake)(struct rmig_prov_conn *c);

	/* Process-wide. */
	/** Load and initialise the provider's libraries: what a first
	 *  domain_open would do before anything of its own (rmig_preload(),
	 *  on a thread of its own; any thread may call it, several at once
	 *  with a domain_open). */
	int (*preload)(void);
};

/** Look up a built-in provider by name ("fabric", "verbs" when built with
 *  rdma-core); NULL if absent. */
const struct rmig_provider_ops *rmig_provider_find(const char *name);

/** Fill @out with @p, replacing NULL entries by -EOPNOTSUPP stubs. */
void rmig_provider_fill(struct rmig_provider_ops *out,
			const struct rmig_provider_ops *p);

/**
 * Register an extra provider (tests: an in-process mock).  Not exported from
 * the shared library.  Returns -ENOSPC when the table is full.
 */
int rmig_provider_register(const struct rmig_provider_ops *p);

/* Built-in providers. */
extern const struct rmig_provider_ops rmig_fabric_provider;
#ifdef RMIG_HAVE_VERBS
/** rdma-core (providers/verbs): librdmacm connections, RC QPs.  Its
 *  domain_open fails fast with -ENODEV when the host has no RDMA device,
 *  and with -EHOSTUNREACH, -ENETUNREACH or -EADDRNOTAVAIL when the address
 *  does not resolve to one, so a caller can fall back to libfabric. */
extern const struct rmig_provider_ops rmig_verbs_provider;
#endif

#endif /* RMIG_PROVIDER_H */

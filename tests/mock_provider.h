/* SPDX-License-Identifier: MIT */
/*
 * mock_provider.h - an in-process transport provider for tests.
 *
 * rmig_mock_provider (name "mock") implements every op of provider.h inside
 * one process, with the semantics a real RC transport has, so the core can
 * be tested without a network:
 *
 *   - domain/mr: a registration's raddr is its virtual address, its rkey a
 *     process-unique id.  A write is checked against the rkey: it must exist,
 *     belong to the peer's domain, be registered as RMIG_MR_WRITE_TARGET,
 *     and the whole range must lie inside the registration; otherwise the
 *     write fails with -EACCES at the writer's poll (a remote access error)
 *     and the connection breaks (the peer's poll then fails with
 *     -ECONNRESET).  Local buffers are checked for their use when posted,
 *     more strictly than verbs would, so that the core's choice of access
 *     is tested: post_recv and send only from RMIG_MR_MSG_BUF, a write
 *     only from RMIG_MR_MSG_BUF or RMIG_MR_WRITE_SOURCE, a read only into
 *     RMIG_MR_READ_TARGET; otherwise the post fails with -EACCES.  A read
 *     is checked against its rkey as a write is, the registration being
 *     an RMIG_MR_READ_SOURCE.
 *   - listen: on the domain's address string, in a process-global registry
 *     ("host:0" gets a free port; listen_name() says which).  conn_create +
 *     conn_establish on the source side pairs with listen_get +
 *     conn_establish on the listening side; establishing a connection to an
 *     address nobody listens on fails with -ECONNREFUSED, one the listener
 *     closes without establishing with -ECONNREFUSED, one nobody accepts in
 *     time with -ETIMEDOUT.
 *   - send: delivered synchronously, in order, into the oldest receive
 *     posted on the peer, with its immediate.  A send finding no posted
 *     receive (receiver not ready) or a receive buffer too small is a
 *     protocol bug: both ends fail with -EPROTO.
 *   - write: memcpy into the peer's registered memory at raddr, done before
 *     the call returns, so a later send on the connection is delivered after
 *     it.  A completion only when signaled.
 *   - read (post_read): memcpy from the peer's registered memory at raddr
 *     into the local buffer, done before the call returns; always a
 *     completion (RMIG_CQE_READ, with the length).  A read takes a
 *     send-queue slot like a write, and counts among the domain's
 *     attr.max_read (mock_set_max_read(); at most max_tx) until its
 *     completion is polled: one more is -EAGAIN.  On a connection
 *     silenced by mock_set_silent() a read never completes.
 *   - post: the writes, then the send, each done before the next is
 *     tried (*posted is exact; post_read likewise).  Every send, write and
 *     read takes a send-queue slot until a later (or its own) signaled completion is polled, as
 *     with verbs; posting past the domain's max_tx fails with -EAGAIN
 *     (nothing is posted, the op never waits), receives past max_rx
 *     likewise.  mock_set_eagain_every() makes the queue look full now
 *     and then, so that the caller's -EAGAIN handling is exercised.
 *   - poll: completions in order; an error completion is returned as the
 *     negative errno (after the good completions before it) and stays: the
 *     connection is in error, later posts are flushed silently until that
 *     error has been polled and fail with it afterwards.  conn_wake() is
 *     sticky (a wake with nobody polling makes the next poll return 0 at
 *     once; none is lost).  conn_close() makes the peer's poll fail with
 *     -ECONNRESET once it has taken the completions queued before.
 *
 * Checks beyond a real provider, counted and reported on stderr: a
 * connection used by two threads at once (only conn_wake() may be called
 * from another thread), and a send buffer modified before its completion
 * was polled (its bytes are compared when the completion is reaped; the
 * connection then fails with -EPROTO).  conn_wake() on a connection that is
 * no longer open aborts the process.
 *
 * Everything is thread-safe.  Unlike a global lock, the locking only makes
 * the happens-before edges a real transport gives: a write's bytes reach the
 * peer's thread through the later send's delivery, so ThreadSanitizer still
 * sees a destination that reads pages it has not been told about.
 *
 * Configuration, fault injection and counters below are process-global; call
 * mock_reset() between tests, while no connection is open.
 */
#ifndef RMIG_TESTS_MOCK_PROVIDER_H
#define RMIG_TESTS_MOCK_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "provider.h"

/** The provider.  Register with rmig_provider_register(&rmig_mock_provider)
 *  or pass it to rmig_src_create_prov()/rmig_dest_create_prov(). */
extern const struct rmig_provider_ops rmig_mock_provider;

/**
 * The same mock under the name "verbs", for transport auto: register it
 * with rmig_provider_register() (rmig_provider_find("verbs") then finds it
 * in a build without the real verbs provider) or pass it to
 * rmig_src_create_auto()/rmig_dest_create_auto().  Its domains report
 * attr.name "verbs/mock0", device "mock0", and live in their own address
 * space (a plain mock source cannot reach its listener, nor the reverse);
 * domain_open fails as mock_verbs_set_open_error() says.
 */
extern const struct rmig_provider_ops rmig_mock_verbs_provider;

/** Make the "verbs" mock's domain_open fail with @err (e.g. -ENODEV: "no
 *  RDMA device"); 0 lets it open.  Not reset by mock_reset(). */
void mock_verbs_set_open_error(int err);

/** domain_open calls of the "verbs" mock so far. */
uint64_t mock_verbs_opens(void);

/**
 * The same mock under the name "verbs", for transport auto: register it
 * with rmig_provider_register() (rmig_provider_find("verbs") then finds it
 * in a build without the real verbs provider) or pass it to
 * rmig_src_create_auto()/rmig_dest_create_auto().  Its domains report
 * attr.name "verbs/mock0", device "mock0", and live in their own address
 * space (a plain mock source cannot reach its listener, nor the reverse);
 * domain_open fails as mock_verbs_set_open_error() says.
 */
extern const struct rmig_provider_ops rmig_mock_verbs_provider;

/** Make the "verbs" mock's domain_open fail with @err (e.g. -ENODEV: "no
 *  RDMA device"); 0 lets it open.  Not reset by mock_reset(). */
void mock_verbs_set_open_error(int err);

/** domain_open calls of the "verbs" mock so far. */
uint64_t mock_verbs_opens(void);

/* ------------------------------------------------------------------ */
/* Fault injection                                                     */

/**
 * Make the @nth (1 = the next) call of @op, counted from now over every
 * connection, fail with @err (a negative errno; positive values are
 * negated).  @nth 0 disarms.  One armed fault per op; it fires once.
 * Ops:
 *   "mr_reg", "conn_create", "establish", "post_recv": the call itself
 *       returns @err;
 *   "send", "write", "read": that op of a post (post_read): the post
 *       returns @err, with the ops of the batch before it posted;
 *   "poll": the call returns @err and the connection stays in error;
 *   "send_cqe", "write_cqe", "read_cqe": the call succeeds but the
 *       operation completes with @err at the poster's poll (nothing
 *       reaches the peer, nothing is read), and the connection breaks (the
 *       peer's poll fails with -ECONNRESET).
 * Returns 0, or -EINVAL for an unknown op or err 0.
 */
int mock_fail_after(const char *op, unsigned nth, int err);

/** Disarm every fault. */
void mock_clear_faults(void);

/** Sleep @us microseconds in every write before it lands, and every read
 *  before it copies (0: none). */
void mock_set_delay_us(unsigned us);

/** After delivering a send whose immediate's bits 31..28 equal @type (an
 *  rmig message type), the sender sleeps @us microseconds before its call
 *  returns (0: none; one type at a time).  For instance, with the
 *  destination's ACCEPT delayed, the source is connected while the
 *  destination's rmig_dest_accept() has not returned yet. */
void mock_set_send_delay_us(unsigned type, unsigned us);

/** Which side mock_set_silent() silences. */
enum mock_silent {
	MOCK_SILENT_NONE = 0,
	MOCK_SILENT_ACTIVE = 1,  /**< connections that connected (sources) */
	MOCK_SILENT_PASSIVE = 2, /**< connections a listener got (dests) */
};

/** From now on, every send and write posted on a connection of side @which
 *  vanishes on the way: it completes at its poster as if sent, but nothing
 *  reaches the peer (no message, no byte written, no reset), as from a
 *  process stopped or a host gone without a FIN or RST; a read posted
 *  there vanishes too, and never completes.  The other direction (the
 *  peer's reads included) still works.  MOCK_SILENT_NONE (the default, and after
 *  mock_reset()) delivers everything again. */
void mock_set_silent(enum mock_silent which);

/** Limits reported by (and enforced for) domains opened from now on.
 *  Defaults: max_iov 4, max_msg_size 1 GiB. */
void mock_set_max_iov(unsigned n);
void mock_set_max_msg_size(size_t n);
/** attr.max_read of domains opened from now on (at most their max_tx);
 *  0: the default, 16. */
void mock_set_max_read(unsigned n);

/** Compare each send buffer at completion time with its bytes at posting
 *  time (default on). */
void mock_set_check_send_buffers(bool on);

/**
 * Called (from the writer's thread) after each write has landed, with the
 * remote address and length of the whole write.  Set it while no
 * connection is open; NULL removes it.
 */
typedef void (*mock_write_hook_fn)(uint64_t raddr, size_t len, void *arg);
void mock_set_write_hook(mock_write_hook_fn fn, void *arg);

/** Make every @n-th write, send or read attempt (counted from now over
 *  every connection) fail with -EAGAIN, as on a full send queue: nothing of that
 *  op is posted, and a batch reports the ops before it as posted.  0:
 *  never.  Such attempts do not count towards mock_fail_after(). */
void mock_set_eagain_every(unsigned n);

/** Back to defaults: faults disarmed, no delays, default limits, no hook,
 *  -EAGAIN as the environment's RMIG_MOCK_EAGAIN_EVERY says (none when
 *  unset; so a whole test program can run with it), counters zero (the live-object counts are kept: they are not counters
 *  of events). */
void mock_reset(void);

/* ------------------------------------------------------------------ */
/* Counters                                                            */

struct mock_counters {
	uint64_t writes;          /**< write calls that landed */
	uint64_t write_bytes;
	uint64_t signaled_writes;
	uint64_t sends;           /**< sends delivered to the peer */
	uint64_t send_bytes;
	uint64_t recvs_posted;
	uint64_t polls;
	uint64_t wakes;
	uint64_t connects;        /**< connections established */
	uint64_t rnr;             /**< receiver-not-ready events */
	uint64_t access_errors;   /**< writes and reads failed with -EACCES */
	uint64_t reads;           /**< reads that copied their bytes */
	uint64_t read_bytes;
	uint64_t max_reads_outstanding; /**< reads posted, not yet polled */
	/** Posts refused for the local registration's access: a receive or
	 *  send not in a message buffer, a write not from a message buffer
	 *  or write source, a read not into a read target. */
	uint64_t local_access_errors;
	/** Registrations made, by enum rmig_mr_access (index 1..5). */
	uint64_t mr_regs[6];
	uint64_t faults_fired;
	uint64_t flushed;         /**< posts dropped on a connection in error */
	uint64_t eagain;          /**< write, send and read attempts given
				       -EAGAIN by mock_set_eagain_every() */
	uint64_t concurrent_use;  /**< a connection used by two threads */
	uint64_t send_buf_modified;
	uint64_t max_tx_outstanding;   /**< send-queue occupancy, any conn */
	uint64_t max_rx_posted;        /**< receives posted, any conn */
	uint64_t max_concurrent_writes; /**< threads inside write at once */
	/** Sends by the top 4 bits of the immediate (rmig's message type). */
	uint64_t sends_by_type[16];
	/* Objects open now (not reset by mock_reset()). */
	uint64_t live_domains;
	uint64_t live_mrs;
	uint64_t live_listeners;
	uint64_t live_conns;
	uint64_t domain_close_busy; /**< domain_close with objects still open */
	/** Most registrations open at once since mock_reset() (which starts
	 *  it at the number open then). */
	uint64_t max_live_mrs;
	/** mr_dereg of a registration a posted write (or read, into it)
	 *  still uses (its completion, or a later signaled one, not yet
	 *  polled): memory unpinned under an in-flight operation.  Reported
	 *  on stderr. */
	uint64_t dereg_inflight;
};

/** Snapshot of every counter (each read atomically, not all at once). */
void mock_get_counters(struct mock_counters *out);

uint64_t mock_count_writes(void);
uint64_t mock_count_sends(void);
/** Sends whose immediate's bits 31..28 equal @type. */
uint64_t mock_count_sends_type(unsigned type);
uint64_t mock_max_tx_outstanding(void);
uint64_t mock_max_concurrent_writes(void);
/** Domains + registrations + listeners + connections open now. */
uint64_t mock_live_objects(void);

#endif /* RMIG_TESTS_MOCK_PROVIDER_H */

/* SPDX-License-Identifier: MIT */
/*
 * core.h - internal structures shared by the source and destination
 * sessions: the session (transports, RAM blocks, first error), the channel
 * (one connection: message buffers, credits, tx accounting) and tunables.
 */
#ifndef RMIG_CORE_H
#define RMIG_CORE_H

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "params.h"
#include "provider.h"
#include "rmig/rmig.h"
#include "transport.h"
#include "wire.h"

/** Receive buffers beyond the credited ones, for uncredited CREDIT
 *  messages (chan.c, "Credits" and "Liveness"): two for grants (a side
 *  sends a grant-only CREDIT once rx_depth/2 credited messages from its
 *  peer are ungranted, so at most two are outstanding) and four for
 *  keepalives (at most RMIG_KEEPALIVE_UNANSWERED since the peer's last
 *  message, twice: the peer may have sent that message before it reposted
 *  the buffers of the ones before). */
#define RMIG_CREDIT_SPARE 6
/** Keepalives a channel sends, at most, with no message from the peer in
 *  between; then it only waits (and fails at the idle limit). */
#define RMIG_KEEPALIVE_UNANSWERED 2
/** A live channel that has sent nothing for idle_timeout_ms / 4, or for
 *  this long if that is shorter, sends a keepalive. */
#define RMIG_KEEPALIVE_MAX_MS 1000u
/* Completions a channel takes from its provider in one poll. */
#define RMIG_CQE_BATCH 16
/* Writes a channel gathers before it posts them (provider.h: post). */
#define RMIG_BATCH_MAX 32

struct rmig_block {
	char name[RMIG_BLOCK_NAME_MAX];
	uint8_t *host;
	uint64_t length;
	/* Source: where this block lives on the destination. */
	uint32_t remote_index;
	uint64_t raddr;
	uint64_t rkey;
	/* Source: pages queued since the last sync, one bit a page (the
	 * caller's thread only).  A page queued twice before a sync could
	 * land out of order on two channels, so the second is refused. */
	uint64_t *queued;
	/* Destination: received bitmap, one bit a page, set by the channel
	 * threads with relaxed fetch_or (each bit's meaning is only read after
	 * a sync, whose semaphores order it). */
	_Atomic uint64_t *received;
	_Atomic int64_t received_count;
};

struct rmig_chan;
struct rmig_regcache;

/** What a session kicks when it fails: implemented by src.c and dest.c. */
typedef void (*rmig_kick_fn)(void *side);

/** Transports a session holds at most at once (transport.h). */
#define RMIG_MAX_TRANSPORTS 2

struct rmig_auth_key;

struct rmig_session {
	/* The provider the config chose (transport auto: the fallback). */
	const struct rmig_provider_ops *prov;
	/* Open transports, owned by the session: one, or a destination's
	 * two while it listens in auto mode.  tp is the one in use: what
	 * new channels get, whose limits (max_ops) and NUMA node apply
	 * (rmig_sess_use_transport()).  NULL before open_domain. */
	struct rmig_tp *tps[RMIG_MAX_TRANSPORTS];
	unsigned ntps;
	struct rmig_tp *tp;
	bool is_dest;

	/* Resolved configuration. */
	char *address;
	char *subprovider;
	unsigned channels;
	uint64_t page_size;
	unsigned pages_per_packet;
	uint8_t uuid[16];
	bool uuid_set;
	/* The UUID came from the config (RMIG_CFG_UUID): only then is it in
	 * the authentication transcript (a source's random default is not). */
	bool uuid_cfg;
	/* The pre-shared secret (NULL: an insecure session, opted in). */
	struct rmig_auth_key *auth_key;
	/* Destination: the source hosts allowed (IPv4 as v4-mapped IPv6);
	 * none set: any. */
	struct in6_addr *allowed;
	unsigned nallowed;
	unsigned connect_timeout_ms;
	/* A live channel fails after this long without a message from its
	 * peer (chan.c, "Liveness"). */
	unsigned idle_timeout_ms;
	/* Source: every queued page is written, none tested for zero. */
	bool no_zero_detect;
	/* A session resuming a lost post-copy's pull: no RAM registered for
	 * writes, the switch first (RMIG_CFG_POSTCOPY_RESUME). */
	bool postcopy_resume;
	uint64_t devstate_max;
	unsigned rx_depth;
	unsigned tx_depth;
	unsigned max_ops;

	struct rmig_block blocks[RMIG_MAX_BLOCKS];
	unsigned nblocks;
	/* Written by the caller's thread and, on demand, by channel threads
	 * (regcache.c); read by stats from any thread: relaxed counters. */
	_Atomic uint64_t registration_ns;
	_Atomic uint64_t registrations;

	/* Registration mode (source: pin-all or on-demand chunks). */
	enum rmig_reg_mode reg_mode;
	uint64_t reg_chunk_size;
	unsigned reg_cache_chunks;

	/* NUMA: what the config asked (RMIG_NUMA_AUTO/NONE or a node) and
	 * the node chosen at open_domain (-1: no binding). */
	int numa_cfg;
	int numa_node;

	/* Transport auto.  The source opens auto_verbs if it can, and
	 * closes it for auto_fallback when its first connection fails
	 * (rmig_sess_fall_back()); the destination listens with both and
	 * keeps the one the first accepted source used
	 * (rmig_sess_keep_transport()). */
	bool auto_mode;
	const struct rmig_provider_ops *auto_verbs, *auto_fallback;
	/* Name of the transport in use for stats ("" until fixed); under
	 * err_lock, as stats read it from any thread. */
	char transport[32];

	/* First error wins.  err is set once, under err_lock, together with
	 * errmsg; readers that see err != 0 (acquire) see errmsg (release in
	 * rmig_sess_fail). */
	pthread_mutex_t err_lock;
	_Atomic int err;
	char errmsg[RMIG_ERR_MSG_MAX];
	_Atomic int state; /* enum rmig_state */

	rmig_kick_fn kick;
	void *kick_arg;
};

/* Message buffers of a channel: rx_depth + RMIG_CREDIT_SPARE receive
 * buffers, then tx_depth send buffers, RMIG_MSG_SIZE each, one
 * registration. */
/* What a posted operation was, so that a failed completion can be named:
 * a write's block and offset, a send's message type. */
struct rmig_opinfo {
	uint8_t op;       /* enum rmig_cqe_op */
	uint8_t msg;      /* SEND: enum rmig_msg_type */
	int32_t block;    /* WRITE: source block index */
	uint64_t offset;  /* WRITE: byte offset in the block */
	uint64_t len;
};

struct rmig_txrec {
	uint32_t ops;   /* tx ops retired when this signaled op completes */
	int32_t buf;    /* tx buffer index, or -1 */
	int32_t next_free;
	struct rmig_opinfo info;
	void *req;      /* READ: the caller's request (rmig_chan_read()) */
};

struct rmig_msg {
	enum rmig_msg_type type;
	uint8_t *data;
	size_t len;
	unsigned rx_index;
};

struct rmig_chan_stats_atomic {
	_Atomic uint64_t bytes, packets, normal_pages, zero_pages, syncs,
		messages;
};

struct rmig_chan {
	struct rmig_session *sess;
	/* The transport of conn: ops, domain, RAM registrations. */
	struct rmig_tp *tp;
	unsigned id;
	struct rmig_prov_conn *conn;
	char peer[80];

	uint8_t *bufs;
	size_t bufs_len;
	/* The node bufs were allocated on (rmig_numa_alloc()), kept to free
	 * them with the matching allocator: the session's node can change
	 * after (rmig_sess_use_transport()). */
	int bufs_node;
	struct rmig_prov_mr *bufs_mr;
	unsigned nrx; /* rx_depth + spare */

	/* tx accounting (channel thread only). */
	struct rmig_txrec *recs;
	unsigned nrecs;
	int32_t rec_free;
	int32_t *txbuf_free; /* stack of free tx buffer indices */
	unsigned ntxbuf_free;
	uint32_t ops_outstanding; /* posted, not yet retired */
	uint32_t ops_unsignaled;  /* posted since the last signaled op */
	/* The context of each unsignaled write: slot (n % nwlog) of the
	 * n-th.  nwlog = max_ops, and at most max_ops ops are outstanding,
	 * so a slot is reused only after its write has retired. */
	struct rmig_opinfo *wlog;
	unsigned nwlog, wlog_next;

	/* On-demand registration: cache slots this channel references; they
	 * are released when every op it posted has retired. */
	int32_t *held;
	unsigned nheld;

	/* Credits (channel thread only). */
	unsigned credits;   /* credited messages we may still send */
	unsigned peer_depth; /* the peer's credited buffers: credits cap */
	unsigned ungranted; /* credited buffers reposted, not yet granted */

	/* The batch being built (rmig_chan_write): writes posted together
	 * with the next send, or before any wait (see chan.c).  They count
	 * in ops_outstanding from the moment they are added. */
	struct rmig_write bw[RMIG_BATCH_MAX];
	struct rmig_iov biov[RMIG_BATCH_MAX];
	unsigned nbw;

	/* RDMA READs (rmig_chan_read()): posted and not yet completed, at
	 * most tp->attr.max_read; the requests of the completed ones, in
	 * completion order, until the owner takes them (nrdone = 0). */
	unsigned reads_outstanding;
	void **rdone;
	unsigned nrdone;

	/* Received messages stashed while waiting to send. */
	struct rmig_msg *stash;
	unsigned stash_head, stash_count;

	/* A destination's accept greets a connection on a thread of its
	 * own: when *abort turns true (the accept ended, or picked another
	 * transport), the channel's waits give up with -ECANCELED.  NULL
	 * otherwise. */
	_Atomic bool *abort;
	/* Liveness (channel thread only; chan.c, "Liveness"): on from
	 * rmig_chan_go_live() to rmig_chan_go_quiet().  Times from
	 * rmig_now_ns(). */
	bool live;
	uint64_t last_rx_ns; /* a message of the peer's was last polled */
	uint64_t last_tx_ns; /* we last sent a message */
	unsigned ka_unanswered; /* keepalives since the peer's last message */
	/* What rmig_chan_recv() and rmig_chan_progress() wait for, for the
	 * idle timeout's message (NULL: "a message"). */
	const char *awaiting;

	struct rmig_chan_stats_atomic st;
};

/* session.c */
int rmig_sess_init(struct rmig_session *s, const struct rmig_config *cfg,
		   const struct rmig_provider_ops *prov, bool is_dest);
void rmig_sess_fini(struct rmig_session *s);
int rmig_sess_add_block(struct rmig_session *s, const char *name, void *host,
			size_t length);
/** Allocate the page bitmaps and open the session's transport (s->tp),
 *  its RAM blocks registered for @ram_access: the source's as
 *  RMIG_MR_WRITE_SOURCE (never writable: see provider.h), the
 *  destination's as RMIG_MR_WRITE_TARGET.  A source in auto mode opens
 *  verbs if it can, else the fallback. */
int rmig_sess_open_domain(struct rmig_session *s,
			  enum rmig_mr_access ram_access);
/** Destination in auto mode: open @prov's transport on @address beside
 *  the one in use, the blocks registered as targets in it too.  0 and
 *  *@out (owned by the session), or a negative errno. */
int rmig_sess_add_transport(struct rmig_session *s,
			    const struct rmig_provider_ops *prov,
			    const char *address, struct rmig_tp **out);
/** Make @tp (one of s->tps) the transport in use: new channels get it,
 *  and the session's limits and NUMA node follow it. */
void rmig_sess_use_transport(struct rmig_session *s, struct rmig_tp *tp);
/** Keep @tp alone: close the session's other transports (their
 *  connections and listeners are closed), use @tp, and name it in the
 *  stats. */
void rmig_sess_keep_transport(struct rmig_session *s, struct rmig_tp *tp);
/** Source in auto mode, on verbs, before any channel is established:
 *  close the verbs transport and open the fallback's.  The caller logs
 *  why. */
int rmig_sess_fall_back(struct rmig_session *s);
/** Record @name as the transport in use (stats). */
void rmig_sess_set_transport(struct rmig_session *s, const char *name);
/** Test hook: transport auto with these two providers (instead of the
 *  built-in "verbs" and "fabric").  Call right after rmig_sess_init(). */
void rmig_sess_set_auto(struct rmig_session *s,
			const struct rmig_provider_ops *verbs,
			const struct rmig_provider_ops *fallback);
/** Record the session's first error (later ones are only logged), mark it
 *  failed, and kick every thread.  Returns @code, with the message also
 *  in the calling thread's rmig_last_error(). */
int rmig_sess_fail(struct rmig_session *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/** Like rmig_sess_fail(), for a cancellation: state CANCELLED. */
int rmig_sess_cancel(struct rmig_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/** The first error's message, "" when none. */
const char *rmig_sess_errmsg(struct rmig_session *s);
/** Copy @st into the caller's @out, as much as out->size allows. */
int rmig_stats_copy_out(struct rmig_stats *out, const struct rmig_stats *st);
/** True once the session has failed (acquire: the message is visible;
 *  pairs with the release store in sess_fail_v()). */
static inline bool rmig_sess_failed(struct rmig_session *s)
{
	return atomic_load_explicit(&s->err, memory_order_acquire) != 0;
}
/** Move the state from @from to @to; false if it was not @from. */
bool rmig_sess_transition(struct rmig_session *s, enum rmig_state from,
			  enum rmig_state to);
/** Close every transport, free the bitmaps (undo rmig_sess_open_domain). */
void rmig_sess_close_domain(struct rmig_session *s);
/** Session error as a return value, with the message copied to this
 *  thread's rmig_last_error(); 0 when none. */
int rmig_sess_check(struct rmig_session *s);
void rmig_sess_stats(struct rmig_session *s, struct rmig_chan **chans,
		     unsigned nchans, struct rmig_stats *st);
int rmig_sess_check_page(struct rmig_session *s, int block, uint64_t offset);
/** Destination: whether a connection from @peer ("host:port", as
 *  conn_peer_name gives it) may be greeted (allowed_sources). */
bool rmig_sess_source_allowed(const struct rmig_session *s, const char *peer);
const struct rmig_provider_ops *rmig_select_provider(
	const struct rmig_config *cfg, char *why, size_t whylen);

/* chan.c */
/** Channel @id over @conn, in @conn's transport (conn->tp), with the
 *  session's limits and NUMA node as they are now. */
int rmig_chan_init(struct rmig_chan *ch, struct rmig_session *s, unsigned id,
		   struct rmig_prov_conn *conn);
void rmig_chan_fini(struct rmig_chan *ch);
/** Wait up to @timeout_ms for the next message (1), 0 on timeout/wake. */
int rmig_chan_recv(struct rmig_chan *ch, struct rmig_msg *m, int timeout_ms);
/** Handle completions for up to @timeout_ms (progress for providers that
 *  need it); messages received are kept for rmig_chan_recv(). */
int rmig_chan_progress(struct rmig_chan *ch, int timeout_ms);
/** The channel thread starts: from now on every wait of the channel sends
 *  keepalives and fails with -ETIMEDOUT after the session's idle limit
 *  without a message from the peer. */
void rmig_chan_go_live(struct rmig_chan *ch);
/** No more keepalives nor idle limit (the final sync is done, or the
 *  thread leaves). */
void rmig_chan_go_quiet(struct rmig_chan *ch);

/* chan_live.c, for chan.c */
/** After a poll that returned @n completions: -ETIMEDOUT (with a message
 *  naming @what the channel waited for) when a live channel has received
 *  nothing from its peer for the idle limit; else 0. */
int rmig_chan_idle_check(struct rmig_chan *ch, int n, const char *what);
/** @timeout_ms, shortened so that a live channel's poll returns in time
 *  for its next keepalive and its idle limit. */
int rmig_chan_live_timeout(const struct rmig_chan *ch, int timeout_ms);
/** True when a live channel should send a keepalive now. */
bool rmig_chan_keepalive_due(const struct rmig_chan *ch);
/** Wait on @sem (posted by the caller's thread, or the session's kick)
 *  while the channel stays alive: each time a keepalive or the idle limit
 *  is due, poll the channel (rmig_chan_progress(), without waiting) and
 *  wait again.  0 once @sem is taken, or the channel's error.  A channel
 *  not live just waits. */
int rmig_chan_wait_sem(struct rmig_chan *ch, sem_t *sem);
/** Give a received message's buffer back (repost, grant). */
int rmig_chan_msg_done(struct rmig_chan *ch, struct rmig_msg *m);
/** A tx buffer to encode a message into; waits for a credit and a buffer.
 *  Returns the buffer index >= 0. */
int rmig_chan_tx_get(struct rmig_chan *ch, uint8_t **buf, int timeout_ms);
/** Send tx buffer @idx holding @len bytes as a message of @type, posted
 *  together with the writes rmig_chan_write() gathered before it. */
int rmig_chan_tx_send(struct rmig_chan *ch, int idx, enum rmig_msg_type type,
		      size_t len);
/** RDMA WRITE of [offset, offset+len) of source block @block to the same
 *  place in the destination's block (split at max_msg_size and at
 *  on-demand chunk boundaries; registers chunks as needed).  The writes
 *  join the channel's batch: posted with the next rmig_chan_tx_send(), or
 *  before, when the batch is full or the channel waits.  On demand,
 *  @signal_last asks for a completion of the last write (the caller's
 *  next write is from another chunk). */
int rmig_chan_write(struct rmig_chan *ch, int block, uint64_t offset,
		    size_t len, bool signal_last);
/** Wait until every posted tx op has completed. */
int rmig_chan_drain(struct rmig_chan *ch, int timeout_ms);
/** Post @rd (its addr, len, mr, raddr and rkey set; ctx is ours), an RDMA
 *  READ of @offset in block @block (named if it fails), once an op slot
 *  and a record are free.  The caller makes sure of a read slot first:
 *  reads_outstanding + nrdone < tp->attr.max_read (else -EAGAIN).  When
 *  it completes, a poll of the channel appends @req to ch->rdone, which
 *  the caller empties (nrdone = 0).  A failed read fails the poll that
 *  sees it (rmig_chan_op_error() names it). */
int rmig_chan_read(struct rmig_chan *ch, struct rmig_read *rd, int block,
		   uint64_t offset, void *req);
/** The connection failed: forget the reads still posted, putting up to
 *  @max of their requests in @out; returns how many (call again while it
 *  returns @max). */
unsigned rmig_chan_abandon_reads(struct rmig_chan *ch, void **out,
				 unsigned max);
/* chan_op.c */
/** A failed poll: rephrase the provider's message to name the operation
 *  @e was (for a write or read the RAM block and offset).  Returns @err. */
int rmig_chan_op_error(struct rmig_chan *ch, const struct rmig_cqe *e,
		       int err);
/** Send an ERROR message carrying @code (negative errno) and @text (best
 *  effort, never blocks long); the peer fails with -code and the text. */
void rmig_chan_send_error(struct rmig_chan *ch, int code, const char *text);

/* chan_auth.c: the challenge-response of an authenticated channel
 * (docs/security.rst), on a connected channel before anything else. */
/** Source: HELLO, CHALLENGE (MAC_D verified before anything more goes
 *  out), PROOF.  -EACCES for a destination that did not prove the secret,
 *  -ECONNREFUSED for an AUTH_REJECT (its reason in the message),
 *  -ETIMEDOUT, -EPROTO. */
int rmig_chan_auth_source(struct rmig_chan *ch, int tmo);
/** Destination: @first is the channel's first message.  On success the
 *  source proved the secret and *@hello holds its (authenticated) channel
 *  parameters.  On failure *@reason is what to answer with
 *  rmig_chan_auth_reject(), and the message, for the local log only, says
 *  what was wrong. */
int rmig_chan_auth_dest(struct rmig_chan *ch, struct rmig_msg *first, int tmo,
			struct rmig_auth_hello *hello,
			enum rmig_auth_reject *reason);
/** Answer AUTH_REJECT @reason (a code, no text), best effort. */
void rmig_chan_auth_reject(struct rmig_chan *ch, enum rmig_auth_reject reason);

/* Internal constructors used by tests to pick a provider. */
int rmig_src_create_prov(const struct rmig_config *cfg,
			 const struct rmig_provider_ops *prov, rmig_src **out);
int rmig_dest_create_prov(const struct rmig_config *cfg,
			  const struct rmig_provider_ops *prov,
			  rmig_dest **out);
/** Test hook: where block @block of an accepted destination is reached
 *  (registered from the end of accept to the final sync),
 *  as its ACCEPT announces it (remote address and key).  0 or -EINVAL. */
int rmig_dest_block_remote(rmig_dest *d, unsigned block, uint64_t *raddr,
			   uint64_t *rkey);
/** Test hook: the most device-state bytes @d held at once (blobs received
 *  and not taken, and blobs being reassembled). */
uint64_t rmig_dest_devstate_held_max(rmig_dest *d);
/* ... and to test transport auto with two given providers. */
int rmig_src_create_auto(const struct rmig_config *cfg,
			 const struct rmig_provider_ops *verbs,
			 const struct rmig_provider_ops *fallback,
			 rmig_src **out);
int rmig_dest_create_auto(const struct rmig_config *cfg,
			  const struct rmig_provider_ops *verbs,
			  const struct rmig_provider_ops *fallback,
			  rmig_dest **out);

/** sem_wait() that carries on through signals. */
static inline void rmig_sem_wait(sem_t *sem)
{
	while (sem_wait(sem) && errno == EINTR)
		;
}

#define RMIG_STAT_ADD(ch, field, v)                                          \
	atomic_fetch_add_explicit(&(ch)->st.field, (v), memory_order_relaxed)

#endif /* RMIG_CORE_H */

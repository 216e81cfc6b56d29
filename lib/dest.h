/* SPDX-License-Identifier: MIT */
/*
 * dest.h - the destination session's private structures, shared by dest.c
 * (the data path: channel threads, packets, device state, sync) and
 * dest_accept.c (create, listen, accept and the handshake, transport auto's
 * choice, destroy).
 */
#ifndef RMIG_DEST_H
#define RMIG_DEST_H

#include "core.h"

struct ds_node {
	struct rmig_devstate ds;
	uint32_t seq;
	struct ds_node *next;
};

struct dest_chan {
	struct rmig_chan ch; /* first */
	struct rmig_dest *dest;
	pthread_t thread;
	sem_t release; /* caller -> thread: leave the SYNC marker */
	uint64_t packets_recv;
	/* Written by the channel thread before it posts sync_arrived, read by
	 * the caller after waiting on it: the semaphore orders them. */
	uint64_t sync_num;
	uint32_t sync_flags; /* RMIG_SYNC_FINAL, RMIG_SYNC_POSTCOPY */
	/* Device-state blob being reassembled. */
	struct ds_node *cur;
	uint64_t cur_off;

	/* Post-copy (dest_pull.c).  The source's READ_KEYS, written by the
	 * thread before it posts sync_arrived for the switch (which orders
	 * them for the caller). */
	struct rmig_read_key rkeys[RMIG_MAX_BLOCKS];
	unsigned nrkeys;
	/* Requests queued for this channel, under the dest's rq_lock:
	 * urgent ones first.  rq_closed: the thread takes no more (it left
	 * post-copy or failed); submit refuses then. */
	struct rmig_read_req *uq_head, *uq_tail, *bq_head, *bq_tail;
	bool rq_closed;
	/* The final SYNC arrived during the pull (thread only). */
	bool final_pending;
};

/* A connection being greeted (established, authenticated, its HANDSHAKE
 * read) on a thread of its own, while rmig_dest_accept() takes more
 * (dest_accept.c).  One slot of the RMIG_PARAM_ACCEPT_PENDING a call has. */
struct dest_greet {
	struct rmig_dest *d;
	struct dest_chan *p; /* NULL once the greeter freed it */
	struct rmig_tp *tp;
	pthread_t thread;
	bool used;
	int wait_ms;
	uint64_t started_ns;
	/* accept -> greeter: give up (the channel's ch.abort). */
	_Atomic bool stop;
	/* greeter -> accept: result, m, hello and p are final. */
	_Atomic bool done;
	int result; /* 0: m holds the HANDSHAKE to judge */
	struct rmig_msg m;
	struct rmig_auth_hello hello;
};

/* A listener and the transport it listens with. */
struct dest_listener {
	struct rmig_tp *tp;
	struct rmig_prov_listener *l;
};

struct rmig_dest {
	struct rmig_session s;
	/* One a transport the session holds: two while a destination in
	 * transport auto waits for its first source, else one. */
	struct dest_listener lis[RMIG_MAX_TRANSPORTS];
	unsigned nlis;
	struct dest_chan *chans[RMIG_MAX_CHANNELS];
	struct rmig_chan *chan_ptrs[RMIG_MAX_CHANNELS];
	/* Release after pthread_create(), acquire in dest_kick() and stats. */
	_Atomic unsigned nthreads;
	unsigned nchans;
	sem_t sync_arrived;
	/* Posted by each greeter as it finishes (after its done flag): the
	 * accept, waiting while connections are being greeted, judges a
	 * finished one at once instead of at its next listen timeout. */
	sem_t greeted;
	unsigned arrived; /* arrivals counted toward the current sync */
	bool final_done;
	bool joined;
	uint64_t block_len[RMIG_MAX_BLOCKS];
	struct rmig_packet_limits lim;

	pthread_mutex_t ds_lock;
	struct ds_node *ds_list; /* completed blobs, sorted by seq */
	uint32_t ds_next;        /* seq the caller gets next */
	/* Bytes held: the blobs in ds_list and the ones the channels are
	 * reassembling (counted whole from their first fragment), at most
	 * devstate_max; ds_held_max, the most it ever was (test hook). */
	uint64_t ds_held;
	uint64_t ds_held_max;

	/* What the caller configured (accept adopts the source's values
	 * when these are unset, and restores them if it fails). */
	bool cfg_uuid_set;
	unsigned cfg_channels;
	/* Pages per packet the source announced (every channel the same):
	 * packet headers with more pages are refused. */
	uint32_t ppp;

	_Atomic uint64_t syncs_done, rejected, zero_cleared, devstate_blobs,
		devstate_bytes;

	/* Post-copy (dest_pull.c).  pull: 0 before the switch, 1 from it
	 * (rmig_dest_wait_sync() stores it with release after src_key and
	 * src_keyed; submit loads it with acquire), 2 from the final sync. */
	_Atomic int pull;
	struct rmig_read_key src_key[RMIG_MAX_BLOCKS]; /* by our block index */
	bool src_keyed[RMIG_MAX_BLOCKS];
	/* Regions reads land in: entries below nregions are fixed (release
	 * store of nregions after each, acquire loads by the threads);
	 * added under rq_lock. */
	struct dest_region {
		uint8_t *addr;
		size_t len;
		struct rmig_prov_mr *mr;
	} regions[RMIG_READ_REGIONS];
	_Atomic unsigned nregions;
	/* Queues (dest_chan), completions and the count of requests the
	 * library holds (submitted, not yet handed back). */
	pthread_mutex_t rq_lock;
	pthread_cond_t rq_cond;
	/* Completed, not yet taken: urgent ones (taken first), then the
	 * background ones; each in completion order. */
	struct rmig_read_req *udone_head, *udone_tail, *done_head, *done_tail;
	uint64_t held;
	unsigned bg_next;
	_Atomic uint64_t reads, read_bytes;
};

/* dest.c */
/** The session's kick (rmig_session.kick): wake every running thread. */
void rmig_dest_kick(void *arg);
/** A channel thread (pthread_create argument: its struct dest_chan). */
void *rmig_dest_thread(void *arg);
/** Join the channel threads that run (once). */
void rmig_dest_join_threads(struct rmig_dest *d);

/** Check a SYNC against what the channel received: its number follows
 *  on, the packet count matches, no blob is half done.  0 and *@sm. */
int rmig_dest_sync_check(struct dest_chan *p, struct rmig_msg *m,
			 struct rmig_sync_msg *sm);

/* dest_pull.c */
/** READ_KEYS from the source (before the post-copy switch). */
int rmig_dest_read_keys(struct dest_chan *p, struct rmig_msg *m);
/** The channel thread after the post-copy switch: post the caller's
 *  reads until the final SYNC arrived and the caller released it (then
 *  acknowledged), or the session fails; every request it held is handed
 *  back either way. */
int rmig_dest_pull(struct dest_chan *p);
/** The switch, on the caller's thread (rmig_dest_wait_sync()): adopt
 *  the channels' keys.  -EPROTO when they differ. */
int rmig_dest_pull_start(struct rmig_dest *d);
/** Wake the threads waiting for completions (kick, end of the pull). */
void rmig_dest_pull_wake(struct rmig_dest *d);
/** Deregister the read regions (destroy). */
void rmig_dest_pull_fini(struct rmig_dest *d);

/* dest_accept.c */
/** Transport auto: the first source came over @tp; keep it, close the
 *  other listener and transport. */
void rmig_dest_commit_transport(struct rmig_dest *d, struct rmig_tp *tp);

/* dest_greet.c */
/** Close a channel that never ran (or whose thread was joined), free it;
 *  NULL is fine. */
void rmig_dest_free_chan(struct dest_chan *p);
/** Send @p its ACCEPT: the RAM block table with the keys of the
 *  registration in its transport. */
int rmig_dest_send_accept(struct rmig_dest *d, struct dest_chan *p);
/** Greet @conn on a thread of its own in the free slot @g, each step
 *  waiting at most @wait_ms.  0, or -ENOMEM / a thread error (the
 *  connection is closed); a connection that cannot get a channel is
 *  dropped with a warning (0). */
int rmig_dest_greet_start(struct rmig_dest *d, struct dest_greet *g,
			  struct rmig_prov_conn *conn, int wait_ms);
/** Judge what the finished greeters of @g[0..n) read: a channel taken, or
 *  turned away.  Transport auto: the first channel taken fixes the
 *  transport (greeters of the other are stopped first). */
void rmig_dest_greet_reap(struct rmig_dest *d, struct dest_greet *g,
			  unsigned n, uint64_t *seen);
/** Stop the greeters of a transport other than @keep (all: NULL), join
 *  them and drop their connections. */
void rmig_dest_greet_stop(struct dest_greet *g, unsigned n,
			  const struct rmig_tp *keep);
/** Every slot busy: stop the oldest greeter that has had @grace_ms. */
void rmig_dest_greet_evict(struct dest_greet *g, unsigned n, int grace_ms);

#endif /* RMIG_DEST_H */

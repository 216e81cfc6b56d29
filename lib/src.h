/* SPDX-License-Identifier: MIT */
/*
 * src.h - the source session's private structures, shared by src.c (the
 * data path: queueing, channel threads, packets, device state, sync) and
 * src_connect.c (create, connect, handshake, transport fallback, destroy).
 */
#ifndef RMIG_SRC_H
#define RMIG_SRC_H

#include "core.h"

enum src_job_type { JOB_PAGES, JOB_DEVSTATE };

struct src_job {
	enum src_job_type type;
	/* JOB_PAGES */
	int block;
	uint32_t n;
	uint64_t *offsets; /* capacity pages_per_packet; circulates by swap */
	/* JOB_DEVSTATE */
	char *idstr;
	uint32_t instance_id;
	uint32_t seq;
	uint8_t *data;
	size_t len;
};

struct src_chan {
	struct rmig_chan ch; /* first: container_of-free casts */
	struct rmig_src *src;
	pthread_t thread;
	sem_t sem;      /* caller -> thread: a job or a sync is pending */
	sem_t sem_sync; /* thread -> caller: sync done (or thread gone) */
	/* Set by the caller when it hands a job, cleared by the channel
	 * thread when the job is done.  See the handoff comment above. */
	_Atomic bool pending_job;
	/* Set by the caller before posting sem for a sync, cleared by the
	 * thread.  sem_post/sem_wait order it: no barrier needed. */
	_Atomic bool pending_sync;
	/* The thread is driving progress in poll() while it waits for work,
	 * so a new job must also wake the poll.  See wait_work(). */
	_Atomic bool polling;
	/* SYNC flags of the pending sync, written by the caller before it
	 * posts sem (which orders it, as pending_sync). */
	uint32_t sync_flags;
	struct src_job job;
	uint64_t packets_sent;
	uint64_t sync_num;
	uint64_t *normal, *zero; /* scratch, pages_per_packet each */
};

struct rmig_src {
	struct rmig_session s;
	struct src_chan *chans[RMIG_MAX_CHANNELS];
	struct rmig_chan *chan_ptrs[RMIG_MAX_CHANNELS];
	/* Channels whose thread runs; kick() only touches those.  Release
	 * after pthread_create, acquire in kick(). */
	_Atomic unsigned nthreads;
	unsigned nchans;
	sem_t channels_ready;
	unsigned next_channel;
	struct src_job batch;
	uint32_t devstate_seq;
	_Atomic uint64_t syncs_done, devstate_blobs, devstate_bytes;
	bool joined;
	/* Post-copy (rmig_src_postcopy()): the switch was made (caller's
	 * thread only); the keys the channels send in READ_KEYS (written
	 * before the sync's semaphores, which order them); read_lock
	 * serialises registering the read access (read_registered) with
	 * its revocation; read_prepared: rmig_src_postcopy_prepare()
	 * succeeded (caller's thread only). */
	bool postcopy;
	bool read_prepared;
	bool read_registered;
	/* The RAM is readable: the channel threads keep polling (progress
	 * for libfabric tcp, which answers reads only then). */
	_Atomic bool serving_reads;
	struct rmig_read_key read_keys[RMIG_MAX_BLOCKS];
	pthread_mutex_t read_lock;
};

/* src.c */
/** The session's kick (rmig_session.kick): wake every running thread. */
void rmig_src_kick(void *arg);
/** A channel thread (pthread_create argument: its struct src_chan). */
void *rmig_src_thread(void *arg);
/** Join the channel threads that run (once). */
void rmig_src_join_threads(struct rmig_src *src);
/** Deregister the RAM's read registrations (post-copy), if any. */
void rmig_src_revoke_read(struct rmig_src *src);

#endif /* RMIG_SRC_H */

/* SPDX-License-Identifier: MIT */
/*
 * src.c - the source session: the caller's migration thread fills page
 * batches and hands each to the next idle channel thread, which zero-checks
 * the pages, writes the normal ones straight from the caller's registered RAM
 * into the destination's (RDMA WRITE), then sends the packet header behind
 * them on the same connection.
 *
 * Handoff (as multifd's multifd_send()): channels_ready counts idle channels.
 * The caller waits on it, picks a channel whose pending_job is false, swaps
 * its filled batch with the channel's empty one, sets pending_job (release)
 * and posts the channel's semaphore.  The channel thread reads pending_job
 * (acquire), sends, clears pending_job (release) and posts channels_ready.
 * No lock on the hot path, and never more batches in flight than channels.
 *
 * Creating, connecting and destroying the session: src_connect.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmig_numa.h"
#include "src.h"
#include "zero.h"
void rmig_src_kick(void *arg)
{
	struct rmig_src *src = arg;
	/* Pairs with the release store after pthread_create(). */
	unsigned n = atomic_load_explicit(&src->nthreads, memory_order_acquire);

	for (unsigned i = 0; i < n; i++) {
		struct src_chan *p = src->chans[i];

		sem_post(&p->sem);
		sem_post(&p->sem_sync);
		p->ch.tp->ops.conn_wake(p->ch.conn);
		sem_post(&src->channels_ready);
	}
	/* A failed session's RAM is not readable any more. */
	rmig_src_revoke_read(src);
}

/* ------------------------------------------------------------------ */
/* Channel thread                                                      */

static int send_pages(struct src_chan *p)
{
	struct rmig_session *s = &p->src->s;
	struct rmig_chan *ch = &p->ch;
	struct rmig_block *b = &s->blocks[p->job.block];
	const uint64_t ps = s->page_size;
	uint32_t nn = 0, nz = 0;
	struct rmig_packet_hdr h;
	uint8_t *buf;
	int idx, ret;

	for (uint32_t i = 0; i < p->job.n; i++) {
		uint64_t off = p->job.offsets[i];

		if (!s->no_zero_detect && rmig_buffer_is_zero(b->host + off,
								  ps))
			p->zero[nz++] = off;
		else
			p->normal[nn++] = off;
	}
	/* Coalesce runs of contiguous pages into one write each. */
	for (uint32_t i = 0; i < nn;) {
		uint32_t j = i + 1;

		while (j < nn && p->normal[j] == p->normal[j - 1] + ps)
			j++;
		/* On demand: the next run starts in another chunk. */
		bool other = ch->tp->cache && j < nn &&
			     p->normal[j] / s->reg_chunk_size !=
			     p->normal[j - 1] / s->reg_chunk_size;

		ret = rmig_chan_write(ch, p->job.block, p->normal[i],
				      (size_t)(j - i) * ps, other);
		if (ret)
			return ret;
		i = j;
	}
	idx = rmig_chan_tx_get(ch, &buf, -1);
	if (idx < 0)
		return idx;
	h = (struct rmig_packet_hdr){
		.block = b->remote_index,
		.packet_num = p->packets_sent,
		.normal_count = nn,
		.zero_count = nz,
	};
	ret = rmig_chan_tx_send(ch, idx, RMIG_MSG_PACKET,
				rmig_packet_encode(&h, p->normal, p->zero, buf,
						   RMIG_MSG_SIZE));
	if (ret)
		return ret;
	p->packets_sent++;
	RMIG_STAT_ADD(ch, packets, 1);
	RMIG_STAT_ADD(ch, normal_pages, nn);
	RMIG_STAT_ADD(ch, zero_pages, nz);
	return 0;
}

static int send_devstate(struct src_chan *p)
{
	struct rmig_chan *ch = &p->ch;
	struct src_job *j = &p->job;
	size_t idlen = strlen(j->idstr) + 1;
	size_t room = rmig_devstate_frag_room(idlen);
	uint64_t off = 0;

	do {
		size_t m = j->len - off < room ? j->len - off : room;
		struct rmig_devstate_frag f = {
			.seq = j->seq,
			.instance_id = j->instance_id,
			.total_len = j->len,
			.frag_off = off,
			.frag_len = (uint32_t)m,
			.idstr = j->idstr,
			.idstr_len = (uint16_t)idlen,
			.data = j->data + off,
		};
		uint8_t *buf;
		int idx = rmig_chan_tx_get(ch, &buf, -1);
		int ret;

		if (idx < 0)
			return idx;
		ret = rmig_chan_tx_send(ch, idx, RMIG_MSG_DEVSTATE,
					rmig_devstate_encode(&f, buf,
							     RMIG_MSG_SIZE));
		if (ret)
			return ret;
		off += m;
	} while (off < j->len);
	atomic_fetch_add_explicit(&p->src->devstate_blobs, 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&p->src->devstate_bytes, j->len,
				  memory_order_relaxed);
	return 0;
}

/* The post-copy switch: where the destination's reads find our RAM,
 * before the SYNC that announces it. */
static int send_read_keys(struct src_chan *p)
{
	struct rmig_src *src = p->src;
	uint8_t *buf;
	int idx = rmig_chan_tx_get(&p->ch, &buf, -1);

	if (idx < 0)
		return idx;
	return rmig_chan_tx_send(&p->ch, idx, RMIG_MSG_READ_KEYS,
				 rmig_read_keys_encode(src->read_keys,
						       src->s.nblocks, buf,
						       RMIG_MSG_SIZE));
}

static int send_sync(struct src_chan *p, uint32_t flags)
{
	struct rmig_chan *ch = &p->ch;
	struct rmig_sync_msg sm = {
		.flags = flags,
		.sync_num = ++p->sync_num,
		.packets = p->packets_sent,
	};
	struct rmig_msg m;
	uint64_t acked;
	uint8_t *buf;
	int idx, ret;

	if (flags & RMIG_SYNC_POSTCOPY) {
		ret = send_read_keys(p);
		if (ret)
			return ret;
	}
	idx = rmig_chan_tx_get(ch, &buf, -1);
	if (idx < 0)
		return idx;
	ret = rmig_chan_tx_send(ch, idx, RMIG_MSG_SYNC,
				rmig_sync_encode(&sm, buf));
	if (ret)
		return ret;
	/* The destination answers once its caller has seen SYNC on every
	 * channel; that may take as long as the caller likes, its channel
	 * sending keepalives meanwhile (the idle limit bounds the wait). */
	ch->awaiting = "SYNC_ACK";
	do {
		ret = rmig_chan_recv(ch, &m, -1);
	} while (ret == 0);
	ch->awaiting = NULL;
	if (ret < 0)
		return ret;
	if (m.type != RMIG_MSG_SYNC_ACK)
		return rmig_err(-EPROTO, "expected SYNC_ACK, got %s",
				rmig_msg_type_name(m.type));
	ret = rmig_sync_ack_decode(m.data, m.len, &acked);
	if (ret)
		return ret;
	if (acked != sm.sync_num)
		return rmig_err(-EPROTO, "SYNC_ACK for sync %llu, expected "
				"%llu", (unsigned long long)acked,
				(unsigned long long)sm.sync_num);
	RMIG_STAT_ADD(ch, syncs, 1);
	return rmig_chan_msg_done(ch, &m);
}

/*
 * Wait for the caller's next job or sync.  While writes are outstanding,
 * or while the destination may read our RAM (post-copy), keep driving the
 * provider's progress (libfabric tcp moves data, and answers the peer's
 * RDMA READs, only while someone polls) instead of sleeping on the
 * semaphore, and let the caller wake the poll.  All four accesses are seq_cst: "polling = true; read
 * pending_*" here against "pending_* = true; read polling" in publish() and
 * do_sync() is a store-buffer handshake, so either we see the new work or
 * the caller sees polling and wakes the poll.  Otherwise sleep on the
 * semaphore, waking when a keepalive is due (the destination waits for our
 * next message however slow our caller is; rmig_chan_wait_sem()).
 */
static int wait_work(struct src_chan *p)
{
	struct rmig_chan *ch = &p->ch;
	int ret;

	ch->awaiting = "anything (idle between jobs: the peer's keepalives)";
	for (;;) {
		/* Relaxed: only how to wait; set before the switch's SYNC,
		 * which this thread sends after it. */
		if (!ch->ops_outstanding &&
		    !atomic_load_explicit(&p->src->serving_reads,
					  memory_order_relaxed)) {
			ret = rmig_chan_wait_sem(ch, &p->sem);
			ch->awaiting = NULL;
			return ret;
		}
		atomic_store(&p->polling, true);
		if (atomic_load(&p->pending_job) ||
		    atomic_load(&p->pending_sync)) {
			atomic_store(&p->polling, false);
			ch->awaiting = NULL;
			rmig_sem_wait(&p->sem);
			return 0;
		}
		ret = rmig_chan_progress(ch, (int)rmig_param(
						 RMIG_PARAM_POLL_SLICE_MS));
		atomic_store(&p->polling, false);
		if (ret)
			return ret;
		if (rmig_sess_failed(&p->src->s))
			return rmig_sess_check(&p->src->s);
	}
}

void *rmig_src_thread(void *arg)
{
	struct src_chan *p = arg;
	struct rmig_src *src = p->src;
	struct rmig_session *s = &src->s;
	bool final = false;
	int ret = rmig_numa_bind_thread(s->numa_node);

	if (ret)
		rmig_log_warn("channel %u: %s; running unbound", p->ch.id,
			      rmig_err_msg());
	ret = 0;
	rmig_chan_go_live(&p->ch);
	for (;;) {
		sem_post(&src->channels_ready);
		ret = wait_work(p);
		if (ret)
			break;
		/* Pairs with the release store in rmig_sess_fail(). */
		if (atomic_load_explicit(&s->err, memory_order_acquire))
			break;
		/* Read pending_job before p->job.  Pairs with the release
		 * store in publish(). */
		if (atomic_load_explicit(&p->pending_job,
					 memory_order_acquire)) {
			ret = p->job.type == JOB_PAGES ? send_pages(p) :
							 send_devstate(p);
			if (p->job.type == JOB_DEVSTATE) {
				free(p->job.data);
				free(p->job.idstr);
				p->job.data = NULL;
				p->job.idstr = NULL;
				p->job.type = JOB_PAGES;
			}
			p->job.n = 0;
			/* Publish that p->job is ours no more.  Pairs with
			 * the acquire load in claim_channel(). */
			atomic_store_explicit(&p->pending_job, false,
					      memory_order_release);
			if (ret)
				break;
		} else if (atomic_load_explicit(&p->pending_sync,
						memory_order_relaxed)) {
			/* Read sync_flags before sem_sync lets the caller
			 * go on (and maybe write it for the next sync). */
			uint32_t flags = p->sync_flags;

			final = flags & RMIG_SYNC_FINAL;
			ret = send_sync(p, flags);
			atomic_store_explicit(&p->pending_sync, false,
					      memory_order_relaxed);
			/* On failure the exit path records the error before
			 * it posts sem_sync, so the caller cannot see the
			 * sync end without seeing the error. */
			if (ret)
				break;
			sem_post(&p->sem_sync);
			if (final)
				break;
		}
	}
	/* After the final SYNC_ACK, or failing: no keepalive any more (the
	 * peer's thread may be gone), no idle limit. */
	rmig_chan_go_quiet(&p->ch);
	/* Record it unless the session failed first (then it is only the
	 * echo of that failure; rmig_sess_fail() keeps the first anyway). */
	if (ret && !rmig_sess_failed(s))
		rmig_sess_fail(s, ret, "channel %u (%s): %s", p->ch.id,
			       p->ch.peer, rmig_err_msg());
	if (rmig_sess_failed(s))
		/* Tell the destination why, where the connection still
		 * works, so it fails with our reason, not a reset. */
		rmig_chan_send_error(&p->ch, atomic_load(&s->err),
				     rmig_sess_errmsg(s));
	else if (final)
		(void)rmig_chan_drain(&p->ch, 1000);
	/* Let a caller blocked on us go and look at the error. */
	sem_post(&p->sem_sync);
	sem_post(&src->channels_ready);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Caller side                                                         */

/* Wait for an idle channel and return it (NULL on session error). */
static struct src_chan *claim_channel(struct rmig_src *src)
{
	struct rmig_session *s = &src->s;

	for (;;) {
		rmig_sem_wait(&src->channels_ready);
		if (rmig_sess_check(s))
			return NULL;
		for (unsigned k = 0; k < src->nchans; k++) {
			unsigned i = (src->next_channel + k) % src->nchans;
			struct src_chan *p = src->chans[i];

			/* Only the channel thread clears pending_job, only
			 * we set it.  Acquire: read it before touching
			 * p->job; pairs with the release store in
			 * rmig_src_thread(). */
			if (!atomic_load_explicit(&p->pending_job,
						  memory_order_acquire)) {
				src->next_channel = (i + 1) % src->nchans;
				return p;
			}
		}
		/* A token without an idle channel only comes from a kick;
		 * the error check above returns then.  Be defensive. */
	}
}

static void publish(struct src_chan *p)
{
	/* p->job is filled before pending_job reads true: the seq_cst store
	 * releases, pairing with the acquire load in rmig_src_thread(); seq_cst
	 * also for the handshake with wait_work(). */
	atomic_store(&p->pending_job, true);
	sem_post(&p->sem);
	if (atomic_load(&p->polling))
		p->ch.tp->ops.conn_wake(p->ch.conn);
}

static int flush_batch(struct rmig_src *src)
{
	struct src_chan *p;
	struct src_job tmp;

	if (!src->batch.n)
		return 0;
	p = claim_channel(src);
	if (!p)
		return rmig_sess_check(&src->s);
	tmp = p->job;
	p->job = src->batch;
	src->batch = tmp;
	src->batch.n = 0;
	publish(p);
	return 0;
}

static int check_active(struct rmig_src *src, const char *what)
{
	int ret = rmig_sess_check(&src->s);

	if (ret)
		return ret;
	if (atomic_load(&src->s.state) != RMIG_STATE_ACTIVE)
		return rmig_err(-ENOTCONN, "%s: session is %s, not active",
				what, rmig_state_name(atomic_load(
					&src->s.state)));
	return 0;
}

/* check_active(), and nothing but rmig_src_finish() after the post-copy
 * switch: the destination's channels only read then. */
static int check_sending(struct rmig_src *src, const char *what)
{
	int ret = check_active(src, what);

	if (!ret && src->postcopy)
		ret = rmig_err(-EINVAL, "%s: not after the post-copy switch "
			       "(rmig_src_postcopy()); only rmig_src_finish() "
			       "is left", what);
	else if (!ret && src->s.postcopy_resume)
		ret = rmig_err(-EINVAL, "%s: a session resuming a post-copy "
			       "(postcopy_resume) sends no pages: call "
			       "rmig_src_postcopy()", what);
	return ret;
}

/* Mark a page queued for this sync; -EBUSY if it is already. */
static int mark_queued(struct rmig_src *src, int block, uint64_t offset)
{
	struct rmig_block *b = &src->s.blocks[block];
	uint64_t pg = offset / src->s.page_size;
	uint64_t mask = 1ull << (pg % 64);

	if (b->queued[pg / 64] & mask)
		return rmig_err(-EBUSY, "block '%s': page at offset 0x%llx "
				"queued twice since the last sync (queue a "
				"page at most once per sync)", b->name,
				(unsigned long long)offset);
	b->queued[pg / 64] |= mask;
	return 0;
}

static void unmark_queued(struct rmig_src *src, int block, uint64_t offset)
{
	uint64_t pg = offset / src->s.page_size;

	src->s.blocks[block].queued[pg / 64] &= ~(1ull << (pg % 64));
}

int rmig_src_queue_page(rmig_src *src, int block, uint64_t offset)
{
	int ret;

	if (!src)
		return rmig_err(-EINVAL, "queue_page: session is NULL");
	ret = check_sending(src, "queue_page");
	if (ret)
		return ret;
	ret = rmig_sess_check_page(&src->s, block, offset);
	if (ret)
		return ret;
	if (src->batch.n && src->batch.block != block) {
		ret = flush_batch(src);
		if (ret)
			return ret;
	}
	ret = mark_queued(src, block, offset);
	if (ret)
		return ret;
	src->batch.block = block;
	src->batch.offsets[src->batch.n++] = offset;
	if (src->batch.n == src->s.pages_per_packet)
		return flush_batch(src);
	return 0;
}

int rmig_src_queue_pages(rmig_src *src, int block, const uint64_t *offsets,
			 size_t n)
{
	int ret;

	if (!src)
		return rmig_err(-EINVAL, "queue_pages: session is NULL");
	if (!offsets && n)
		return rmig_err(-EINVAL, "queue_pages: offsets is NULL");
	ret = check_sending(src, "queue_pages");
	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		ret = rmig_sess_check_page(&src->s, block, offsets[i]);
		if (ret) {
			rmig_err_prefix("queue_pages: page %zu", i);
			return ret;
		}
	}
	/* All or nothing: on a duplicate, forget the marks made here. */
	for (size_t i = 0; i < n; i++) {
		ret = mark_queued(src, block, offsets[i]);
		if (ret) {
			rmig_err_prefix("queue_pages: page %zu", i);
			while (i--)
				unmark_queued(src, block, offsets[i]);
			return ret;
		}
	}
	ret = flush_batch(src);
	for (size_t i = 0; !ret && i < n;) {
		size_t k = n - i < src->s.pages_per_packet ?
			   n - i : src->s.pages_per_packet;

		memcpy(src->batch.offsets, offsets + i, k * sizeof(*offsets));
		src->batch.block = block;
		src->batch.n = (uint32_t)k;
		ret = flush_batch(src);
		i += k;
	}
	return ret;
}

int rmig_src_send_devstate(rmig_src *src, const char *idstr,
			   uint32_t instance_id, const void *data, size_t len)
{
	struct src_chan *p;
	size_t idlen;
	char *id_copy;
	uint8_t *copy;
	int ret;

	if (!src)
		return rmig_err(-EINVAL, "send_devstate: session is NULL");
	ret = check_sending(src, "send_devstate");
	if (ret)
		return ret;
	if (!idstr || !*idstr)
		return rmig_err(-EINVAL, "send_devstate: idstr is empty");
	idlen = strnlen(idstr, RMIG_IDSTR_MAX);
	if (idlen >= RMIG_IDSTR_MAX)
		return rmig_err(-EINVAL, "send_devstate: idstr '%.32s...' "
				"longer than %d bytes", idstr,
				RMIG_IDSTR_MAX - 1);
	if (len > src->s.devstate_max)
		return rmig_err(-EMSGSIZE, "send_devstate '%s': %zu bytes "
				"above devstate_max %llu", idstr, len,
				(unsigned long long)src->s.devstate_max);
	if (!data && len)
		return rmig_err(-EINVAL, "send_devstate '%s': data is NULL",
				idstr);
	copy = malloc(len ? len : 1);
	id_copy = strdup(idstr);
	if (!copy || !id_copy) {
		free(copy);
		free(id_copy);
		return rmig_err(-ENOMEM, "send_devstate '%s': cannot copy %zu "
				"bytes", idstr, len);
	}
	if (len)
		memcpy(copy, data, len);
	p = claim_channel(src);
	if (!p) {
		free(copy);
		free(id_copy);
		return rmig_sess_check(&src->s);
	}
	/* p->job.offsets stays with the channel. */
	p->job.type = JOB_DEVSTATE;
	p->job.idstr = id_copy;
	p->job.instance_id = instance_id;
	p->job.seq = src->devstate_seq++;
	p->job.data = copy;
	p->job.len = len;
	publish(p);
	return 0;
}

/* A sync with the SYNC flags @flags (RMIG_SYNC_FINAL, RMIG_SYNC_POSTCOPY). */
static int do_sync(struct rmig_src *src, uint32_t flags)
{
	struct rmig_session *s = &src->s;
	bool final = flags & RMIG_SYNC_FINAL;
	int ret = flush_batch(src);

	if (ret)
		return ret;
	for (unsigned i = 0; i < src->nchans; i++) {
		struct src_chan *p = src->chans[i];

		p->sync_flags = flags;
		/* seq_cst: handshake with wait_work(), see there. */
		atomic_store(&p->pending_sync, true);
		sem_post(&p->sem);
		if (atomic_load(&p->polling))
			p->ch.tp->ops.conn_wake(p->ch.conn);
	}
	for (unsigned i = 0; i < src->nchans; i++) {
		rmig_sem_wait(&src->chans[i]->sem_sync);
		ret = rmig_sess_check(s);
		if (ret)
			return ret;
	}
	/* Each channel posted channels_ready once more after its sync;
	 * take those back so the count stays "idle channels". */
	for (unsigned i = 0; i < src->nchans && !final; i++)
		rmig_sem_wait(&src->channels_ready);
	ret = rmig_sess_check(s);
	if (ret)
		return ret;
	/* Everything queued so far is in place: pages may be queued again. */
	for (unsigned i = 0; i < s->nblocks; i++)
		memset(s->blocks[i].queued, 0,
		       (s->blocks[i].length / s->page_size + 63) / 64 * 8);
	atomic_fetch_add_explicit(&src->syncs_done, 1, memory_order_relaxed);
	return 0;
}

int rmig_src_sync(rmig_src *src)
{
	int ret;

	if (!src)
		return rmig_err(-EINVAL, "sync: session is NULL");
	ret = check_sending(src, "sync");
	if (ret)
		return ret;
	return do_sync(src, 0);
}

/* Revoke the destination's read access to our RAM (post-copy): at the
 * final sync, and from the kick when the session fails. */
void rmig_src_revoke_read(struct rmig_src *src)
{
	pthread_mutex_lock(&src->read_lock);
	/* Only once registered, after connect: s->tp is fixed by then
	 * (a kick during connect must not touch a transport the caller
	 * may be replacing). */
	if (src->read_registered) {
		rmig_tp_dereg_read(src->s.tp);
		src->read_registered = false;
		atomic_store_explicit(&src->serving_reads, false,
				      memory_order_relaxed);
	}
	pthread_mutex_unlock(&src->read_lock);
}

/* Register every RAM block for the destination's reads (once: a
 * prepared session's switch keeps that registration).  The keys stay
 * here until the switch sends them.  With @serve (the switch) the
 * channels serve reads from now on: wait_work() reads serving_reads
 * before it sends the switch's SYNC. */
static int reg_read(struct rmig_src *src, const char *what, bool serve)
{
	struct rmig_session *s = &src->s;
	struct rmig_tp *tp = s->tp;
	int ret;

	if (!tp->attr.max_read)
		return rmig_err(-EOPNOTSUPP, "%s: transport %s has no RDMA "
				"READ (continue with pre-copy)", what,
				tp->attr.name);
	/* Under read_lock against the kick's revocation: a session that
	 * failed before we register keeps nothing registered. */
	pthread_mutex_lock(&src->read_lock);
	ret = rmig_sess_check(s);
	if (!ret && !src->read_registered) {
		ret = rmig_tp_reg_read(s, tp);
		if (ret)
			rmig_err_prefix(what);
		src->read_registered = !ret;
	}
	if (!ret && serve)
		atomic_store_explicit(&src->serving_reads, true,
				      memory_order_relaxed);
	pthread_mutex_unlock(&src->read_lock);
	return ret; /* on failure the session goes on: pre-copy is there */
}

int rmig_src_postcopy_prepare(rmig_src *src)
{
	int ret;

	if (!src)
		return rmig_err(-EINVAL, "postcopy_prepare: session is NULL");
	ret = check_active(src, "postcopy_prepare");
	if (ret)
		return ret;
	if (src->postcopy || src->read_prepared)
		return rmig_err(-EINVAL, "postcopy_prepare: %s", src->postcopy ?
				"the post-copy switch was made already" :
				"called already");
	ret = reg_read(src, "postcopy_prepare", false);
	src->read_prepared = !ret;
	return ret;
}

int rmig_src_postcopy(rmig_src *src)
{
	struct rmig_session *s;
	struct rmig_tp *tp;
	int ret;

	if (!src)
		return rmig_err(-EINVAL, "postcopy: session is NULL");
	s = &src->s;
	ret = check_active(src, "postcopy");
	if (ret)
		return ret;
	if (src->postcopy)
		return rmig_err(-EINVAL, "postcopy: the post-copy switch was "
				"made already");
	tp = s->tp;
	ret = reg_read(src, "postcopy", true);
	if (ret)
		return ret;
	for (unsigned i = 0; i < s->nblocks; i++)
		src->read_keys[i] = (struct rmig_read_key){
			.block = s->blocks[i].remote_index,
			.length = s->blocks[i].length,
			.raddr = tp->rmr[i]->raddr,
			.rkey = tp->rmr[i]->rkey,
		};
	src->postcopy = true;
	return do_sync(src, RMIG_SYNC_POSTCOPY);
}

void rmig_src_join_threads(struct rmig_src *src)
{
	unsigned n = atomic_load(&src->nthreads);

	if (src->joined)
		return;
	for (unsigned i = 0; i < n; i++)
		pthread_join(src->chans[i]->thread, NULL);
	src->joined = true;
}

int rmig_src_finish(rmig_src *src)
{
	int ret;

	if (!src)
		return rmig_err(-EINVAL, "finish: session is NULL");
	ret = check_active(src, "finish");
	if (ret)
		return ret;
	ret = do_sync(src, RMIG_SYNC_FINAL);
	/* The destination acknowledged the final sync (post-copy: it has
	 * every page): nothing may read our RAM any more. */
	rmig_src_revoke_read(src);
	rmig_src_join_threads(src);
	if (ret)
		return ret;
	if (!rmig_sess_transition(&src->s, RMIG_STATE_ACTIVE,
				  RMIG_STATE_COMPLETED))
		return rmig_sess_check(&src->s);
	return 0;
}

void rmig_src_cancel(rmig_src *src)
{
	if (src)
		rmig_sess_cancel(&src->s, "migration cancelled by the caller");
}

enum rmig_state rmig_src_state(rmig_src *src)
{
	return src ? (enum rmig_state)atomic_load(&src->s.state) :
		     RMIG_STATE_FAILED;
}

const char *rmig_src_error(rmig_src *src)
{
	return src ? rmig_sess_errmsg(&src->s) : "session is NULL";
}

int rmig_src_get_stats(rmig_src *src, struct rmig_stats *out)
{
	struct rmig_stats st;

	if (!src)
		return rmig_err(-EINVAL, "get_stats: session is NULL");
	/* Channels are counted once their thread runs.  Pairs with the
	 * release store after pthread_create(). */
	rmig_sess_stats(&src->s, src->chan_ptrs,
			atomic_load_explicit(&src->nthreads,
					     memory_order_acquire), &st);
	st.syncs = atomic_load_explicit(&src->syncs_done,
					memory_order_relaxed);
	st.devstate_blobs = atomic_load_explicit(&src->devstate_blobs,
						 memory_order_relaxed);
	st.devstate_bytes = atomic_load_explicit(&src->devstate_bytes,
						 memory_order_relaxed);
	return rmig_stats_copy_out(out, &st);
}

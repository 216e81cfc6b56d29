/* SPDX-License-Identifier: MIT */
/*
 * src_connect.c - setting up and tearing down a source session: create,
 * connect every channel over the session's transport and do its
 * handshake (the destination's RAM block table in the ACCEPT), start the
 * channel threads; transport auto's fallback from verbs to libfabric when
 * the first connection fails; destroy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src.h"

/* The destination turned our handshake away: say why.  (ERROR messages
 * never get here: rmig_chan_recv() fails with them.) */
static int peer_reject(struct rmig_msg *m)
{
	enum rmig_reject reason;
	char text[RMIG_REJECT_TEXT_MAX + 1];
	int ret = rmig_reject_decode(m->data, m->len, &reason, text,
				     sizeof(text));

	if (ret)
		return ret;
	return rmig_err(-ECONNREFUSED, "destination rejected the handshake: "
			"%s", text);
}

int rmig_src_create_prov(const struct rmig_config *cfg,
			 const struct rmig_provider_ops *prov, rmig_src **out)
{
	struct rmig_src *src;
	int ret;

	if (!out)
		return rmig_err(-EINVAL, "src_create: out is NULL");
	src = calloc(1, sizeof(*src));
	if (!src)
		return rmig_err(-ENOMEM, "src_create: out of memory");
	ret = rmig_sess_init(&src->s, cfg, prov, false);
	if (ret) {
		free(src);
		return ret;
	}
	src->batch.offsets = calloc(src->s.pages_per_packet, sizeof(uint64_t));
	if (!src->batch.offsets) {
		rmig_sess_fini(&src->s);
		free(src);
		return rmig_err(-ENOMEM, "src_create: out of memory");
	}
	sem_init(&src->channels_ready, 0, 0);
	pthread_mutex_init(&src->read_lock, NULL);
	src->s.kick = rmig_src_kick;
	src->s.kick_arg = src;
	*out = src;
	return 0;
}

int rmig_src_create_auto(const struct rmig_config *cfg,
			 const struct rmig_provider_ops *verbs,
			 const struct rmig_provider_ops *fallback,
			 rmig_src **out)
{
	int ret = rmig_src_create_prov(cfg, fallback, out);

	if (!ret)
		rmig_sess_set_auto(&(*out)->s, verbs, fallback);
	return ret;
}

int rmig_src_create(const struct rmig_config *cfg, rmig_src **out)
{
	return rmig_src_create_prov(cfg, NULL, out);
}

int rmig_src_add_block(rmig_src *src, const char *name, void *host,
		       size_t length)
{
	if (!src)
		return rmig_err(-EINVAL, "add_block: session is NULL");
	return rmig_sess_add_block(&src->s, name, host, length);
}

/* Match our blocks against the destination's table (channel 0), or check
 * a later channel got the same table. */
static int match_blocks(struct rmig_src *src, unsigned chan,
			const struct rmig_wire_block *wb, unsigned nwb)
{
	struct rmig_session *s = &src->s;

	if (chan > 0) {
		for (unsigned i = 0; i < s->nblocks; i++) {
			const struct rmig_block *b = &s->blocks[i];
			const struct rmig_wire_block *w =
				b->remote_index < nwb ? &wb[b->remote_index] :
							NULL;

			if (!w || strcmp(w->name, b->name) || w->rkey != b->rkey
			    || w->raddr != b->raddr)
				return rmig_err(-EPROTO, "RAM block table of "
						"channel %u differs from "
						"channel 0's at block '%s'",
						chan, b->name);
		}
		return 0;
	}
	if (nwb != s->nblocks)
		return rmig_err(-EINVAL, "destination has %u RAM blocks, the "
				"source %u", nwb, s->nblocks);
	for (unsigned i = 0; i < s->nblocks; i++) {
		struct rmig_block *b = &s->blocks[i];
		unsigned j;

		for (j = 0; j < nwb; j++)
			if (!strcmp(wb[j].name, b->name))
				break;
		if (j == nwb)
			return rmig_err(-EINVAL, "RAM block '%s' does not "
					"exist on the destination", b->name);
		if (wb[j].length != b->length)
			return rmig_err(-EINVAL, "RAM block '%s': length %llu "
					"on the source, %llu on the "
					"destination", b->name,
					(unsigned long long)b->length,
					(unsigned long long)wb[j].length);
		if (wb[j].page_size != s->page_size)
			return rmig_err(-EINVAL, "RAM block '%s': page size "
					"%llu on the source, %u on the "
					"destination", b->name,
					(unsigned long long)s->page_size,
					wb[j].page_size);
		b->remote_index = j;
		b->raddr = wb[j].raddr;
		b->rkey = wb[j].rkey;
	}
	return 0;
}

/* Connect channel @id, authenticate (unless the session is insecure) and
 * send its HANDSHAKE; the ACCEPT is awaited by await_accept() once every
 * channel got this far (the destination registers its RAM, and answers,
 * only when every channel authenticated).  *@cm_failed: the failure came
 * from setting up the connection itself (conn_create or conn_establish:
 * rdma_cm on verbs), before any message. */
static int connect_one(struct rmig_src *src, unsigned id, bool *cm_failed)
{
	struct rmig_session *s = &src->s;
	struct src_chan *p = src->chans[id];
	struct rmig_chan *ch = &p->ch;
	int tmo = (int)s->connect_timeout_ms;
	struct rmig_handshake h = {
		.magic = RMIG_WIRE_MAGIC,
		.version = RMIG_WIRE_VERSION,
		.channel_id = (uint16_t)id,
		.channel_count = (uint16_t)s->channels,
		.page_size = (uint32_t)s->page_size,
		.pages_per_packet = s->pages_per_packet,
		.rx_depth = s->rx_depth,
		.msg_size = RMIG_MSG_SIZE,
		.features = s->postcopy_resume ? RMIG_FEAT_POSTCOPY_RESUME : 0,
	};
	uint64_t deadline = rmig_deadline_ns(tmo);
	struct rmig_prov_conn *conn;
	uint8_t *buf;
	int idx, ret;

	*cm_failed = false;
	for (;;) {
		ret = rmig_tp_conn_create(s->tp, &conn);
		if (ret) {
			*cm_failed = true;
			return ret;
		}
		ret = rmig_chan_init(ch, s, id, conn);
		if (ret) {
			s->tp->ops.conn_close(conn);
			return ret;
		}
		/* The protocol gives one credit, for the first message;
		 * the destination's first answer grants the rest (up to
		 * the 12-bit immediate's limit). */
		ch->credits = 1;
		ch->peer_depth = RMIG_IMM_CREDITS_MAX + 1;
		ret = ch->tp->ops.conn_establish(conn, tmo);
		/* Reset during setup: the destination listened anew (it
		 * does under a flood of stray connections); again, within
		 * the connect timeout.  Not on the verbs attempt of transport
		 * auto: its failure decides the fallback. */
		if (ret != -ECONNRESET || rmig_now_ns() + 100000000 >= deadline ||
		    (s->auto_mode && s->tp->prov == s->auto_verbs))
			break;
		rmig_log_info("channel %u: connection reset during setup (%s); "
			      "trying again", id, rmig_err_msg());
		rmig_chan_fini(ch);
		nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
		tmo = (int)((deadline - rmig_now_ns()) / 1000000);
	}
	if (ret) {
		*cm_failed = true;
		return ret;
	}
	if (ch->tp->ops.conn_peer_name(conn, ch->peer,
				       sizeof(ch->peer)))
		snprintf(ch->peer, sizeof(ch->peer), "%s", s->address);
	if (s->auth_key) {
		ret = rmig_chan_auth_source(ch, tmo);
		if (ret)
			return ret;
	}
	memcpy(h.uuid, s->uuid, 16);
	idx = rmig_chan_tx_get(ch, &buf, tmo);
	if (idx < 0)
		return idx;
	return rmig_chan_tx_send(ch, idx, RMIG_MSG_HANDSHAKE,
				 rmig_handshake_encode(&h, buf));
}

/* Channel @id's answer to its HANDSHAKE: the ACCEPT with the destination's
 * RAM block table (or a REJECT). */
static int await_accept(struct rmig_src *src, unsigned id)
{
	struct rmig_session *s = &src->s;
	struct rmig_chan *ch = &src->chans[id]->ch;
	int tmo = (int)s->connect_timeout_ms;
	struct rmig_wire_block *wb;
	struct rmig_msg m;
	uint32_t peer_depth;
	unsigned nwb;
	int ret;

	ret = rmig_chan_recv(ch, &m, tmo);
	if (ret == 0)
		return rmig_err(-ETIMEDOUT, "no answer to the handshake "
				"within %d ms", tmo);
	if (ret < 0)
		return ret;
	if (m.type == RMIG_MSG_REJECT)
		return peer_reject(&m);
	if (m.type == RMIG_MSG_AUTH_REJECT) {
		enum rmig_auth_reject reason;

		ret = rmig_auth_reject_decode(m.data, m.len, &reason);
		if (ret)
			return ret;
		if (reason == RMIG_AUTH_REJECT_REQUIRED)
			return rmig_err(-ECONNREFUSED, "the destination "
					"requires authentication and this "
					"source is insecure (configure the "
					"same secret on both)");
		return rmig_err(-ECONNREFUSED, "the destination refused "
				"authentication: %s",
				rmig_auth_reject_name(reason));
	}
	if (m.type != RMIG_MSG_ACCEPT)
		return rmig_err(-EPROTO, "expected ACCEPT, got %s",
				rmig_msg_type_name(m.type));
	wb = calloc(RMIG_MAX_BLOCKS, sizeof(*wb));
	if (!wb)
		return rmig_err(-ENOMEM, "out of memory");
	ret = rmig_accept_decode(m.data, m.len, &peer_depth, wb, &nwb);
	if (!ret)
		ret = match_blocks(src, id, wb, nwb);
	free(wb);
	if (ret)
		return ret;
	if (peer_depth < 2 || peer_depth > RMIG_IMM_CREDITS_MAX ||
	    ch->credits > peer_depth)
		return rmig_err(-EPROTO, "ACCEPT: receive depth %u invalid "
				"(credits %u)", peer_depth, ch->credits);
	ch->peer_depth = peer_depth;
	return rmig_chan_msg_done(ch, &m);
}

static void free_chan(struct rmig_src *src, unsigned i)
{
	struct src_chan *p = src->chans[i];

	if (!p)
		return;
	rmig_chan_fini(&p->ch);
	sem_destroy(&p->sem);
	sem_destroy(&p->sem_sync);
	free(p->job.offsets);
	free(p->job.data);
	free(p->job.idstr);
	free(p->normal);
	free(p->zero);
	free(p);
	src->chans[i] = NULL;
	src->chan_ptrs[i] = NULL;
}

/* Create and connect every channel.  *@fall_back: transport auto on
 * verbs, and the first channel could not even be set up (refused, timed
 * out or unreachable at the rdma_cm level): the fallback may be tried. */
static int connect_chans(struct rmig_src *src, bool *fall_back)
{
	struct rmig_session *s = &src->s;
	unsigned ppp = s->pages_per_packet;
	bool cm_failed;
	int ret;

	*fall_back = false;
	for (unsigned i = 0; i < s->channels; i++) {
		struct src_chan *p = calloc(1, sizeof(*p));

		if (!p || !(p->job.offsets = calloc(ppp, sizeof(uint64_t))) ||
		    !(p->normal = calloc(ppp, sizeof(uint64_t))) ||
		    !(p->zero = calloc(ppp, sizeof(uint64_t)))) {
			if (p) {
				free(p->job.offsets);
				free(p->normal);
			}
			free(p);
			return rmig_err(-ENOMEM, "connect: out of memory");
		}
		p->src = src;
		sem_init(&p->sem, 0, 0);
		sem_init(&p->sem_sync, 0, 0);
		src->chans[i] = p;
		src->chan_ptrs[i] = &p->ch;
		src->nchans = i + 1;
		ret = connect_one(src, i, &cm_failed);
		if (ret) {
			/* Never after a channel is up: one transport a
			 * session. */
			*fall_back = i == 0 && cm_failed && s->auto_mode &&
				     s->tp->prov == s->auto_verbs &&
				     (ret == -ECONNREFUSED ||
				      ret == -ETIMEDOUT ||
				      ret == -EHOSTUNREACH);
			rmig_err_prefix("channel %u to %s", i, s->address);
			return ret;
		}
	}
	for (unsigned i = 0; i < s->channels; i++) {
		ret = await_accept(src, i);
		if (ret) {
			rmig_err_prefix("channel %u to %s", i, s->address);
			return ret;
		}
	}
	return 0;
}

static void free_chans(struct rmig_src *src)
{
	for (unsigned i = 0; i < src->nchans; i++)
		free_chan(src, i);
	src->nchans = 0;
}

int rmig_src_connect(rmig_src *src)
{
	struct rmig_session *s;
	bool fall_back;
	int ret;

	if (!src)
		return rmig_err(-EINVAL, "connect: session is NULL");
	s = &src->s;
	ret = rmig_sess_check(s);
	if (ret)
		return ret;
	if (atomic_load(&s->state) != RMIG_STATE_SETUP || s->tp)
		return rmig_err(-EISCONN, "connect: session is %s",
				rmig_state_name(atomic_load(&s->state)));
	ret = rmig_sess_open_domain(s, RMIG_MR_WRITE_SOURCE);
	if (ret)
		return ret;
	ret = connect_chans(src, &fall_back);
	if (ret && fall_back) {
		/* Transport auto: verbs resolved the route but nobody
		 * answers over it (a destination listening with libfabric
		 * only, or no rdma_cm on its host).  Start again, whole,
		 * with the fallback. */
		char why[RMIG_ERR_MSG_MAX];
		int vret = ret;

		snprintf(why, sizeof(why), "%s", rmig_err_msg());
		free_chans(src);
		rmig_log_info("transport auto: verbs opened a domain for %s, "
			      "but its first connection failed (%s: %s); "
			      "falling back to %s for the whole session",
			      s->address, strerror(-ret), why,
			      s->auto_fallback->name);
		ret = rmig_sess_fall_back(s);
		if (!ret)
			ret = connect_chans(src, &fall_back);
		if (ret)
			rmig_err_prefix("transport auto: verbs could not "
					"connect (%s), then %s",
					strerror(-vret),
					s->auto_fallback->name);
	}
	if (ret)
		goto err_free;
	for (unsigned i = 0; i < src->nchans; i++) {
		struct src_chan *p = src->chans[i];
		char name[32];

		ret = pthread_create(&p->thread, NULL, rmig_src_thread, p);
		if (ret) {
			ret = rmig_sess_fail(s, -ret, "connect: cannot start "
					     "channel thread %u: %s", i,
					     strerror(ret));
			rmig_src_join_threads(src);
			return ret;
		}
		snprintf(name, sizeof(name), "rmig-src/%u", i);
		pthread_setname_np(p->thread, name);
		/* Pairs with the acquire load in src_kick(). */
		atomic_store_explicit(&src->nthreads, i + 1,
				      memory_order_release);
	}
	/* A cancel while the threads started may have kicked only some of
	 * them: kick again now that all run (destroy kicks too). */
	if (!rmig_sess_transition(s, RMIG_STATE_SETUP, RMIG_STATE_ACTIVE)) {
		s->kick(s->kick_arg);
		return rmig_sess_check(s);
	}
	rmig_log_info("connected %u channels to %s over %s", src->nchans,
		      s->address, s->tp->attr.name);
	return 0;

err_free:
	/* Keep the message: record it as the session's error. */
	ret = rmig_sess_fail(s, ret, "%s", rmig_err_msg());
	free_chans(src);
	return ret;
}

void rmig_src_destroy(rmig_src *src)
{
	if (!src)
		return;
	if (atomic_load(&src->nthreads) && !src->joined) {
		rmig_sess_cancel(&src->s, "session destroyed while active");
		/* Kick even if the session had failed before: every thread
		 * exists now, whatever an earlier kick could reach. */
		src->s.kick(src->s.kick_arg);
	}
	rmig_src_join_threads(src);
	for (unsigned i = 0; i < src->nchans; i++)
		free_chan(src, i);
	rmig_src_revoke_read(src);
	rmig_sess_fini(&src->s);
	sem_destroy(&src->channels_ready);
	pthread_mutex_destroy(&src->read_lock);
	free(src->batch.offsets);
	free(src);
}

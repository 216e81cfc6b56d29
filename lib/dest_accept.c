/* SPDX-License-Identifier: MIT */
/*
 * dest_accept.c - setting up and tearing down a destination session:
 * create, listen (in transport auto with both the fallback and verbs),
 * accept (connections greeted concurrently, dest_greet.c), keep the
 * transport the first accepted source came over, register the RAM and
 * answer the ACCEPTs once every channel authenticated, start the channel
 * threads; destroy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dest.h"

int rmig_dest_create_prov(const struct rmig_config *cfg,
			  const struct rmig_provider_ops *prov, rmig_dest **out)
{
	struct rmig_dest *d;
	int ret;

	if (!out)
		return rmig_err(-EINVAL, "dest_create: out is NULL");
	d = calloc(1, sizeof(*d));
	if (!d)
		return rmig_err(-ENOMEM, "dest_create: out of memory");
	ret = rmig_sess_init(&d->s, cfg, prov, true);
	if (ret) {
		free(d);
		return ret;
	}
	sem_init(&d->sync_arrived, 0, 0);
	sem_init(&d->greeted, 0, 0);
	pthread_mutex_init(&d->ds_lock, NULL);
	pthread_mutex_init(&d->rq_lock, NULL);
	pthread_cond_init(&d->rq_cond, NULL);
	d->cfg_uuid_set = d->s.uuid_set;
	d->cfg_channels = d->s.channels;
	d->s.kick = rmig_dest_kick;
	d->s.kick_arg = d;
	*out = d;
	return 0;
}

int rmig_dest_create_auto(const struct rmig_config *cfg,
			  const struct rmig_provider_ops *verbs,
			  const struct rmig_provider_ops *fallback,
			  rmig_dest **out)
{
	int ret = rmig_dest_create_prov(cfg, fallback, out);

	if (!ret)
		rmig_sess_set_auto(&(*out)->s, verbs, fallback);
	return ret;
}

int rmig_dest_create(const struct rmig_config *cfg, rmig_dest **out)
{
	return rmig_dest_create_prov(cfg, NULL, out);
}

int rmig_dest_add_block(rmig_dest *d, const char *name, void *host,
			size_t length)
{
	if (!d)
		return rmig_err(-EINVAL, "add_block: session is NULL");
	return rmig_sess_add_block(&d->s, name, host, length);
}

/* Transport auto: listen with verbs too, on the port the first listener
 * got (rdma_cm has its own port space).  Where that fails, the fallback
 * alone serves, and the log says why. */
static void listen_alt(struct rmig_dest *d)
{
	struct rmig_session *s = &d->s;
	struct rmig_tp *tp = NULL;
	struct rmig_prov_listener *l;
	char name[128];
	int ret;

	if (!s->auto_verbs) {
		rmig_log_info("transport auto: listening with %s only (this "
			      "build has no verbs provider)",
			      s->tp->attr.name);
		rmig_sess_keep_transport(s, s->tp);
		return;
	}
	ret = s->tp->ops.listen_name(d->lis[0].l, name, sizeof(name));
	if (!ret)
		ret = rmig_sess_add_transport(s, s->auto_verbs, name, &tp);
	if (!ret) {
		ret = tp->ops.listen(tp->dom, &l);
		if (ret)
			rmig_err_prefix("%s: listen on %s", tp->attr.name,
					name);
		else
			d->lis[d->nlis++] = (struct dest_listener){ tp, l };
	}
	if (ret) {
		rmig_log_info("transport auto: listening with %s only; verbs "
			      "unavailable (%s: %s)", s->tp->attr.name,
			      strerror(-ret), rmig_err_msg());
		rmig_sess_keep_transport(s, s->tp);
		return;
	}
	rmig_log_info("transport auto: listening on %s with both %s and %s; "
		      "the first source accepted fixes the transport", name,
		      s->tp->attr.name, tp->attr.name);
}

/* Transport auto: the first source is accepted over @tp; keep it, close
 * the other listener and transport. */
void rmig_dest_commit_transport(struct rmig_dest *d, struct rmig_tp *tp)
{
	struct rmig_session *s = &d->s;

	if (d->nlis < 2)
		return;
	for (unsigned i = 0; i < d->nlis; i++) {
		struct dest_listener *dl = &d->lis[i];

		if (dl->tp == tp)
			continue;
		dl->tp->ops.listen_close(dl->l);
		rmig_log_info("transport auto: the source came over %s; "
			      "closed the %s listener", tp->attr.name,
			      dl->tp->attr.name);
	}
	for (unsigned i = 0; i < d->nlis; i++)
		if (d->lis[i].tp == tp)
			d->lis[0] = d->lis[i];
	d->nlis = 1;
	rmig_sess_keep_transport(s, tp);
}

/* Wait up to @timeout_ms for a connection on any listener. */
static int listen_get_any(struct rmig_dest *d, int timeout_ms,
			  struct rmig_prov_conn **conn)
{
	uint64_t deadline = rmig_deadline_ns(timeout_ms);
	int ret;

	if (d->nlis == 1)
		return rmig_tp_listen_get(d->lis[0].tp, d->lis[0].l,
					  timeout_ms, conn);
	for (;;) {
		for (unsigned i = 0; i < d->nlis; i++) {
			ret = rmig_tp_listen_get(d->lis[i].tp, d->lis[i].l,
						 timeout_ms >= 0 &&
						 timeout_ms < 25 ? timeout_ms :
						 25, conn);
			if (ret != -ETIMEDOUT)
				return ret;
		}
		if (rmig_now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}

int rmig_dest_listen(rmig_dest *d)
{
	struct rmig_session *s;
	struct rmig_prov_listener *l;
	int ret;

	if (!d)
		return rmig_err(-EINVAL, "listen: session is NULL");
	s = &d->s;
	if (atomic_load(&s->state) != RMIG_STATE_SETUP || s->tp)
		return rmig_err(-EBUSY, "listen: session is %s or listening "
				"already", rmig_state_name(atomic_load(
					&s->state)));
	ret = rmig_sess_open_domain(s, RMIG_MR_WRITE_TARGET);
	if (ret)
		return ret;
	ret = s->tp->ops.listen(s->tp->dom, &l);
	if (ret) {
		rmig_err_prefix("listen on %s", s->address);
		/* Leave the session as it was, so listen can be retried. */
		rmig_sess_close_domain(s);
		return ret;
	}
	d->lis[0] = (struct dest_listener){ s->tp, l };
	d->nlis = 1;
	for (unsigned i = 0; i < s->nblocks; i++)
		d->block_len[i] = s->blocks[i].length;
	d->lim = (struct rmig_packet_limits){
		.nblocks = s->nblocks,
		.block_len = d->block_len,
		.page_size = s->page_size,
		.pages_per_packet = RMIG_MAX_PAGES_PER_PACKET,
	};
	rmig_log_info("listening on %s over %s", s->address,
		      s->tp->attr.name);
	if (s->auto_mode)
		listen_alt(d);
	return 0;
}

int rmig_dest_get_address(rmig_dest *d, char *buf, size_t len)
{
	if (!d || !buf || !len)
		return rmig_err(-EINVAL, "get_address: NULL argument");
	if (!d->nlis)
		return rmig_err(-ENOTCONN, "get_address: not listening (call "
				"rmig_dest_listen first)");
	return d->lis[0].tp->ops.listen_name(d->lis[0].l, buf, len);
}

int rmig_dest_block_remote(rmig_dest *d, unsigned block, uint64_t *raddr,
			   uint64_t *rkey)
{
	struct rmig_tp *tp;

	if (!d || !raddr || !rkey)
		return rmig_err(-EINVAL, "block_remote: NULL argument");
	tp = d->s.tp;
	if (block >= d->s.nblocks || !tp || !tp->mr[block])
		return rmig_err(-EINVAL, "block_remote: block %u not "
				"registered (%u blocks; registered from "
				"accept to the final sync)", block,
				d->s.nblocks);
	/* As rmig_dest_send_accept() encodes them (for the transport in use). */
	*raddr = tp->mr[block]->raddr;
	*rkey = tp->mr[block]->rkey;
	return 0;
}

/*
 * Every channel authenticated and handshook: register the RAM now, with
 * keys no earlier attempt had, and answer each channel its ACCEPT; then
 * close the listeners, so that no connection that has not authenticated
 * exists while the keys are valid.  On failure the registration is gone
 * again.
 */
static int accept_commit(struct rmig_dest *d)
{
	struct rmig_session *s = &d->s;
	int ret;

	/* A session resuming a post-copy registers nothing for writes: the
	 * guest's memory may have pages missing under userfaultfd, and
	 * the source only lets us read. */
	ret = s->postcopy_resume ? 0 :
	      rmig_tp_reg_ram(s, s->tp, RMIG_MR_WRITE_TARGET);
	if (ret)
		return ret;
	for (unsigned i = 0; i < d->nchans; i++) {
		ret = rmig_dest_send_accept(d, d->chans[i]);
		if (ret) {
			rmig_err_prefix("channel %u: sending ACCEPT", i);
			rmig_tp_dereg_ram(s->tp);
			return ret;
		}
	}
	for (unsigned i = 0; i < d->nlis; i++)
		d->lis[i].tp->ops.listen_close(d->lis[i].l);
	d->nlis = 0;
	return 0;
}

/* Some connection is being greeted. */
static bool greeting(const struct dest_greet *g, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (g[i].used)
			return true;
	return false;
}

/* While connections are greeted: wait until one of them finishes (a
 * source's channel is judged, and the next looked for, as soon as its
 * HANDSHAKE is read), or GREET_POLL_MS for a new connection, whichever
 * comes first; no longer than @left_ms (< 0: no deadline). */
#define GREET_POLL_MS 5
static void await_greeted(struct rmig_dest *d, int left_ms)
{
	int ms = left_ms >= 0 && left_ms < GREET_POLL_MS ? left_ms :
							   GREET_POLL_MS;
	/* sem_timedwait() and its CLOCK_REALTIME, as rmig_chan_wait_sem(). */
	struct timespec dl = rmig_timespec_after(CLOCK_REALTIME, ms);

	/* Taken or not, the caller reaps with acquire loads of each
	 * greeter's done flag: the semaphore only ends the wait early. */
	while (sem_timedwait(&d->greeted, &dl) && errno == EINTR)
		;
}

int rmig_dest_accept(rmig_dest *d, int timeout_ms)
{
	uint64_t seen[(RMIG_MAX_CHANNELS + 63) / 64] = { 0 };
	struct dest_greet *g = NULL;
	struct rmig_session *s;
	uint64_t deadline;
	unsigned npend = 0;
	int ret, step;

	if (!d)
		return rmig_err(-EINVAL, "accept: session is NULL");
	s = &d->s;
	ret = rmig_sess_check(s);
	if (ret)
		return ret;
	if (!d->nlis)
		return rmig_err(-ENOTCONN, "accept: not listening (call "
				"rmig_dest_listen first)");
	if (atomic_load(&s->state) != RMIG_STATE_SETUP || d->nchans)
		return rmig_err(-EISCONN, "accept: session is %s",
				rmig_state_name(atomic_load(&s->state)));
	npend = (unsigned)rmig_param(RMIG_PARAM_ACCEPT_PENDING);
	g = calloc(npend, sizeof(*g));
	if (!g)
		return rmig_err(-ENOMEM, "accept: out of memory");
	/* A connection's steps wait at most a quarter of the connect
	 * timeout: a real source answers at once, and its own wait for our
	 * answers is the whole connect timeout. */
	step = (int)s->connect_timeout_ms / 4;
	if (step < 100)
		step = 100;
	deadline = rmig_deadline_ns(timeout_ms);
	for (;;) {
		struct rmig_prov_conn *conn;
		struct dest_greet *slot = NULL;
		int left = -1;

		rmig_dest_greet_reap(d, g, npend, seen);
		if (s->channels && d->nchans == s->channels)
			break;
		ret = rmig_sess_check(s);
		if (ret)
			goto err;
		if (timeout_ms >= 0) {
			uint64_t now = rmig_now_ns();

			left = now < deadline ?
			       (int)((deadline - now) / 1000000) : 0;
			if (left == 0) {
				ret = rmig_err(-ETIMEDOUT, "accept: %u of %u "
					       "channels connected after %d "
					       "ms", d->nchans, s->channels,
					       timeout_ms);
				goto err;
			}
		}
		for (unsigned i = 0; i < npend && !slot; i++)
			if (!g[i].used)
				slot = &g[i];
		if (!slot) {
			rmig_dest_greet_evict(g, npend, step / 4);
			await_greeted(d, left);
			continue;
		}
		ret = listen_get_any(d, greeting(g, npend) ? 0 :
				     left < 0 || left > 50 ? 50 : left, &conn);
		if (ret == -ETIMEDOUT) {
			if (greeting(g, npend))
				await_greeted(d, left);
			continue;
		}
		if (ret)
			goto err;
		ret = rmig_dest_greet_start(d, slot, conn,
				  left >= 0 && left < step ? left : step);
		if (ret)
			goto err;
	}
	rmig_dest_greet_stop(g, npend, NULL);
	free(g);
	g = NULL;
	ret = accept_commit(d);
	if (ret)
		goto err;
	d->lim.pages_per_packet = d->ppp;
	for (unsigned i = 0; i < d->nchans; i++) {
		struct dest_chan *p = d->chans[i];
		char name[32];

		ret = pthread_create(&p->thread, NULL, rmig_dest_thread, p);
		if (ret) {
			ret = rmig_sess_fail(s, -ret, "accept: cannot start "
					     "channel thread %u: %s", i,
					     strerror(ret));
			rmig_dest_join_threads(d);
			return ret;
		}
		snprintf(name, sizeof(name), "rmig-dst/%u", i);
		pthread_setname_np(p->thread, name);
		/* Pairs with the acquire loads in dest_kick() and stats. */
		atomic_store_explicit(&d->nthreads, i + 1,
				      memory_order_release);
	}
	/* A cancel while the threads started may have kicked only some of
	 * them: kick again now that all run (destroy kicks too). */
	if (!rmig_sess_transition(s, RMIG_STATE_SETUP, RMIG_STATE_ACTIVE)) {
		s->kick(s->kick_arg);
		return rmig_sess_check(s);
	}
	return 0;

err:
	if (g) {
		rmig_dest_greet_stop(g, npend, NULL);
		free(g);
	}
	/* Channels accepted so far are dropped and what their handshakes
	 * made us adopt is forgotten: the caller may accept again (and
	 * the RAM, if registered, is not: the next attempt's keys are
	 * new). */
	if (s->tp)
		rmig_tp_dereg_ram(s->tp);
	for (unsigned i = 0; i < RMIG_MAX_CHANNELS; i++) {
		rmig_dest_free_chan(d->chans[i]);
		d->chans[i] = NULL;
		d->chan_ptrs[i] = NULL;
	}
	d->nchans = 0;
	d->ppp = 0;
	s->uuid_set = d->cfg_uuid_set;
	s->channels = d->cfg_channels;
	return ret;
}

void rmig_dest_destroy(rmig_dest *d)
{
	if (!d)
		return;
	if (atomic_load(&d->nthreads) && !d->joined) {
		rmig_sess_cancel(&d->s, "session destroyed while active");
		/* Kick even if the session had failed before: every thread
		 * exists now, whatever an earlier kick could reach. */
		d->s.kick(d->s.kick_arg);
	}
	rmig_dest_join_threads(d);
	for (unsigned i = 0; i < RMIG_MAX_CHANNELS; i++)
		rmig_dest_free_chan(d->chans[i]);
	for (unsigned i = 0; i < d->nlis; i++)
		d->lis[i].tp->ops.listen_close(d->lis[i].l);
	rmig_dest_pull_fini(d);
	rmig_sess_fini(&d->s);
	while (d->ds_list) {
		struct ds_node *n = d->ds_list;

		d->ds_list = n->next;
		rmig_devstate_free(&n->ds);
	}
	pthread_mutex_destroy(&d->ds_lock);
	pthread_mutex_destroy(&d->rq_lock);
	pthread_cond_destroy(&d->rq_cond);
	sem_destroy(&d->sync_arrived);
	sem_destroy(&d->greeted);
	free(d);
}

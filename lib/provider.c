/* SPDX-License-Identifier: MIT */
/*
 * provider.c - the table of providers and the -EOPNOTSUPP stubs that fill
 * every op a provider leaves out, so the hot path never tests for NULL.
 */
#include "provider.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <rmig/rmig.h>

#include "error.h"

/* Built-in providers; keep sorted by name. */
static const struct rmig_provider_ops *const builtin[] = {
	&rmig_fabric_provider,
#ifdef RMIG_HAVE_VERBS
	&rmig_verbs_provider,
#endif
};

#define EXTRA_MAX 4
static const struct rmig_provider_ops *extra[EXTRA_MAX];
static pthread_mutex_t extra_lock = PTHREAD_MUTEX_INITIALIZER;

int rmig_provider_register(const struct rmig_provider_ops *p)
{
	int ret = rmig_err(-ENOSPC, "provider table full (%d extra)", EXTRA_MAX);

	pthread_mutex_lock(&extra_lock);
	for (int i = 0; i < EXTRA_MAX; i++) {
		if (!extra[i] || extra[i] == p) {
			extra[i] = p;
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&extra_lock);
	return ret;
}

const struct rmig_provider_ops *rmig_provider_find(const char *name)
{
	const struct rmig_provider_ops *found = NULL;

	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (!strcmp(builtin[i]->name, name))
			return builtin[i];
	pthread_mutex_lock(&extra_lock);
	for (int i = 0; i < EXTRA_MAX && !found; i++)
		if (extra[i] && !strcmp(extra[i]->name, name))
			found = extra[i];
	pthread_mutex_unlock(&extra_lock);
	return found;
}

/* Stubs: each says which op is missing. */
#define NOSUP(op) rmig_err(-EOPNOTSUPP, "provider does not support " op)

static int stub_domain_open(const struct rmig_prov_params *p,
			    struct rmig_prov_domain **out,
			    struct rmig_prov_attr *attr)
{
	return NOSUP("domain_open");
}
static void stub_domain_close(struct rmig_prov_domain *dom) {}
static int stub_mr_reg(struct rmig_prov_domain *dom, void *addr, size_t len,
		       enum rmig_mr_access access, struct rmig_prov_mr **out)
{
	return NOSUP("mr_reg");
}
static void stub_mr_dereg(struct rmig_prov_mr *mr) {}
static int stub_listen(struct rmig_prov_domain *dom,
		       struct rmig_prov_listener **out)
{
	return NOSUP("listen");
}
static int stub_listen_name(struct rmig_prov_listener *l, char *buf,
			    size_t len)
{
	return NOSUP("listen_name");
}
static int stub_listen_get(struct rmig_prov_listener *l, int timeout_ms,
			   struct rmig_prov_conn **out)
{
	return NOSUP("listen_get");
}
static void stub_listen_close(struct rmig_prov_listener *l) {}
static int stub_conn_create(struct rmig_prov_domain *dom,
			    struct rmig_prov_conn **out)
{
	return NOSUP("conn_create");
}
static int stub_conn_establish(struct rmig_prov_conn *c, int timeout_ms)
{
	return NOSUP("conn_establish");
}
static int stub_conn_peer_name(struct rmig_prov_conn *c, char *buf,
			       size_t len)
{
	return NOSUP("conn_peer_name");
}
static void stub_conn_close(struct rmig_prov_conn *c) {}
static int stub_post_recv(struct rmig_prov_conn *c, void *buf, size_t len,
			  struct rmig_prov_mr *mr, void *ctx)
{
	return NOSUP("post_recv");
}
static int stub_post(struct rmig_prov_conn *c, const struct rmig_write *w,
		     unsigned nw, const struct rmig_send *send, unsigned *posted)
{
	*posted = 0;
	return NOSUP("post");
}
static int stub_post_read(struct rmig_prov_conn *c, const struct rmig_read *r,
			  unsigned n, unsigned *posted)
{
	*posted = 0;
	return NOSUP("post_read");
}
static int stub_poll(struct rmig_prov_conn *c, struct rmig_cqe *cqe, int max,
		     int timeout_ms)
{
	return NOSUP("poll");
}
static void stub_conn_wake(struct rmig_prov_conn *c) {}
static int stub_preload(void)
{
	return NOSUP("preload");
}

void rmig_provider_fill(struct rmig_provider_ops *out,
			const struct rmig_provider_ops *p)
{
	static const struct rmig_provider_ops stubs = {
		.name = "stub",
		.abi = RMIG_PROVIDER_ABI,
		.domain_open = stub_domain_open,
		.domain_close = stub_domain_close,
		.mr_reg = stub_mr_reg,
		.mr_dereg = stub_mr_dereg,
		.listen = stub_listen,
		.listen_name = stub_listen_name,
		.listen_get = stub_listen_get,
		.listen_close = stub_listen_close,
		.conn_create = stub_conn_create,
		.conn_establish = stub_conn_establish,
		.conn_peer_name = stub_conn_peer_name,
		.conn_close = stub_conn_close,
		.post_recv = stub_post_recv,
		.post = stub_post,
		.post_read = stub_post_read,
		.poll = stub_poll,
		.conn_wake = stub_conn_wake,
		.preload = stub_preload,
	};

	*out = stubs;
	out->name = p->name;
	out->abi = p->abi;
#define FILL(f) do { if (p->f) out->f = p->f; } while (0)
	FILL(domain_open);
	FILL(domain_close);
	FILL(mr_reg);
	FILL(mr_dereg);
	FILL(listen);
	FILL(listen_name);
	FILL(listen_get);
	FILL(listen_close);
	FILL(conn_create);
	FILL(conn_establish);
	FILL(conn_peer_name);
	FILL(conn_close);
	FILL(post_recv);
	FILL(post);
	FILL(post_read);
	FILL(poll);
	FILL(conn_wake);
	FILL(preload);
#undef FILL
}

/* rmig_preload(): one thread a provider, once a process, joined when the
 * library is unloaded (at exit: before libfabric's own destructor frees
 * what a preload still inside fi_getinfo() would read). */
enum { PRELOAD_FABRIC, PRELOAD_VERBS, PRELOAD_MAX };
static pthread_mutex_t preload_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t preload_thread[PRELOAD_MAX];
static bool preload_started[PRELOAD_MAX];
static pid_t preload_pid; /* a forked child has not the threads to join */

static void *preload_main(void *arg)
{
	struct rmig_provider_ops ops;
	int ret;

	rmig_provider_fill(&ops, arg);
	ret = ops.preload();
	if (ret && ret != -EOPNOTSUPP)
		rmig_log_info("preload of %s: %s (its first session will "
			      "say more)", ops.name, rmig_err_msg());
	return NULL;
}

static int preload_start(const struct rmig_provider_ops *p, unsigned i)
{
	int ret = 0;

	pthread_mutex_lock(&preload_lock);
	if (!preload_started[i]) {
		ret = pthread_create(&preload_thread[i], NULL, preload_main,
				     (void *)p);
		preload_started[i] = !ret;
		preload_pid = getpid();
	}
	pthread_mutex_unlock(&preload_lock);
	if (ret)
		return rmig_err(-ret, "preload of %s: cannot start a thread: "
				"%s", p->name, strerror(ret));
	return 0;
}

__attribute__((destructor)) static void preload_join(void)
{
	pthread_mutex_lock(&preload_lock);
	for (unsigned i = 0; i < PRELOAD_MAX; i++)
		if (preload_started[i] && preload_pid == getpid())
			pthread_join(preload_thread[i], NULL);
	pthread_mutex_unlock(&preload_lock);
}

int rmig_preload(enum rmig_transport transport)
{
	int ret = 0;

	if (transport != RMIG_TRANSPORT_AUTO &&
	    transport != RMIG_TRANSPORT_FABRIC &&
	    transport != RMIG_TRANSPORT_VERBS)
		return rmig_err(-EINVAL, "preload: transport %d unknown",
				(int)transport);
	if (transport != RMIG_TRANSPORT_VERBS)
		ret = preload_start(&rmig_fabric_provider, PRELOAD_FABRIC);
#ifdef RMIG_HAVE_VERBS
	if (!ret && transport != RMIG_TRANSPORT_FABRIC)
		ret = preload_start(&rmig_verbs_provider, PRELOAD_VERBS);
#endif
	return ret;
}

/* SPDX-License-Identifier: MIT */
/*
 * fabric_domain.c - libfabric provider: domain, memory registration,
 * listener and the ops table.
 */
#include "fabric.h"

#include "addr.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>

const struct rmig_provider_ops rmig_fabric_provider = {
	.name = "fabric",
	.abi = RMIG_PROVIDER_ABI,
	.domain_open = rfab_domain_open,
	.domain_close = rfab_domain_close,
	.mr_reg = rfab_mr_reg,
	.mr_dereg = rfab_mr_dereg,
	.listen = rfab_listen,
	.listen_name = rfab_listen_name,
	.listen_get = rfab_listen_get,
	.listen_close = rfab_listen_close,
	.conn_create = rfab_conn_create,
	.conn_establish = rfab_conn_establish,
	.conn_peer_name = rfab_conn_peer_name,
	.conn_close = rfab_conn_close,
	.post_recv = rfab_post_recv,
	.post = rfab_post,
	.post_read = rfab_post_read,
	.poll = rfab_poll,
	.conn_wake = rfab_conn_wake,
	.preload = rfab_preload,
};

/* ------------------------------------------------------------------ */
/* Shared helpers                                                      */

int rfab_errno(int fi_code)
{
	int e = fi_code < 0 ? -fi_code : fi_code;

	switch (e) {
	case FI_ETOOSMALL:
	case FI_ENORX:
		return -ENOBUFS;
	case FI_EOPBADSTATE:
		return -ENOTCONN;
	case FI_EBADFLAGS:
	case FI_ENOEQ:
	case FI_EDOMAIN:
	case FI_ENOCQ:
	case FI_ENOAV:
		return -EINVAL;
	case FI_ECRC:
		return -EBADMSG;
	case FI_ETRUNC:
		return -EMSGSIZE;
	case FI_ENOKEY:
		return -ENOKEY;
	case FI_EOVERRUN:
		return -EOVERFLOW;
	case FI_ENODATA:
		return -ENODATA;
	case FI_ECANCELED:
		/* Work flushed by a dying endpoint.  Never -ECANCELED: the
		 * core reads that as "the session was already failed or
		 * cancelled" and would end the channel without reporting. */
		return -ECONNRESET;
	default:
		/* Below FI_ERRNO_OFFSET libfabric codes are system errnos. */
		if (e > 0 && e < FI_ERRNO_OFFSET)
			return -e;
		return -EIO; /* FI_EOTHER, FI_EAVAIL, unknown */
	}
}

bool rfab_err_is_dead_peer(int err)
{
	switch (err) {
	case FI_ECONNRESET:
	case FI_ECONNABORTED:
	case EPIPE: /* no FI_EPIPE; FI codes below 256 are errnos */
	case FI_ENOTCONN:
	case FI_ESHUTDOWN:
	case FI_ECANCELED: /* posted work flushed because the endpoint died */
	case FI_ETIMEDOUT: /* transport retries exhausted: peer unreachable */
		return true;
	default:
		return false;
	}
}

const char *rfab_prov_detail(char *buf, size_t len, int prov_errno,
			     const char *text)
{
	if (!prov_errno)
		return "";
	/* Some providers (verbs: an rdma_cm reject reason) have no text for
	 * their code; strerror's "Unknown error N" would only repeat it. */
	if (!text || !strncmp(text, "Unknown error", 13))
		snprintf(buf, len, ", prov_errno %d", prov_errno);
	else
		snprintf(buf, len, ", prov_errno %d: %s", prov_errno, text);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Domain                                                              */

/* Why @i cannot carry our protocol, or NULL when it can. */
static const char *rfab_info_reject(const struct fi_info *i)
{
	const uint64_t caps = RFAB_CAPS;
	uint64_t mr_mode = (uint64_t)i->domain_attr->mr_mode;

	if (i->ep_attr->type != FI_EP_MSG)
		return "endpoint type is not FI_EP_MSG";
	if ((i->caps & caps) != caps)
		return "lacks FI_MSG|FI_RMA|FI_READ|FI_WRITE|FI_REMOTE_READ|FI_REMOTE_WRITE|FI_SEND|FI_RECV";
	if (!(i->tx_attr->msg_order & FI_ORDER_SAW))
		return "does not order sends after writes (no FI_ORDER_SAW)";
	if (i->domain_attr->cq_data_size < 4)
		return "remote CQ data is smaller than 4 bytes";
	if (mr_mode & FI_MR_RAW)
		return "needs raw memory keys (FI_MR_RAW), which rmig does not carry";
	if (mr_mode & FI_MR_ENDPOINT)
		return "binds memory registrations to endpoints (FI_MR_ENDPOINT), which rmig does not do";
	if (mr_mode & ~(uint64_t)RFAB_MR_MODE)
		return "needs mr_mode bits beyond LOCAL|VIRT_ADDR|ALLOCATED|PROV_KEY";
	if (i->mode & ~(uint64_t)FI_RX_CQ_DATA)
		return "needs mode bits other than FI_RX_CQ_DATA";
	if (i->domain_attr->threading != FI_THREAD_SAFE)
		return "is not FI_THREAD_SAFE";
	if (i->tx_attr->iov_limit < 1 || i->tx_attr->rma_iov_limit < 1)
		return "allows no iov in an RMA write";
	return NULL;
}

static struct fi_info *rfab_hints(const struct rmig_prov_params *p,
				  const char *prov)
{
	struct fi_info *h = fi_allocinfo();

	if (!h)
		return NULL;
	h->ep_attr->type = FI_EP_MSG;
	h->caps = RFAB_CAPS;
	/* FI_RX_CQ_DATA (verbs): remote CQ data needs a posted receive.  We
	 * always post receives for sends, and never use writedata. */
	h->mode = FI_RX_CQ_DATA;
	h->domain_attr->mr_mode = RFAB_MR_MODE;
	h->domain_attr->threading = FI_THREAD_SAFE;
	h->domain_attr->cq_data_size = 4; /* 8 would drop verbs */
	h->tx_attr->msg_order = FI_ORDER_SAW;
	h->rx_attr->msg_order = FI_ORDER_SAW;
	h->tx_attr->size = p->tx_depth;
	h->rx_attr->size = p->rx_depth;
	h->fabric_attr->prov_name = strdup(prov);
	if (!h->fabric_attr->prov_name) {
		fi_freeinfo(h);
		return NULL;
	}
	return h;
}

/*
 * libfabric's registration cache (its verbs provider's, on by default)
 * registers memory with every access (local and remote read and write)
 * and keeps it registered after fi_close(): a read source would be
 * writable from the network, and a key rmig revoked would stay alive
 * (docs/security.rst).  Turn it off before libfabric reads its settings
 * (its first fi_getinfo()), unless the environment chose: then say what
 * that costs.
 */
static void mr_cache_off(void)
{
	const char *v = getenv("FI_MR_CACHE_MAX_COUNT");

	if (!v) {
		setenv("FI_MR_CACHE_MAX_COUNT", "0", 0);
		return;
	}
	if (strcmp(v, "0"))
		rmig_log_warn("FI_MR_CACHE_MAX_COUNT=%s: libfabric's "
			      "registration cache keeps memory registered "
			      "after rmig deregisters it (remote keys are not "
			      "revoked) and, over its verbs provider, grants "
			      "every registration remote write", v);
}

static pthread_once_t mr_cache_once = PTHREAD_ONCE_INIT;

/* libfabric's first fi_getinfo() of the process initialises every
 * provider it has (fi_ini()), 100-200 ms with 1.17: do it now, for the
 * default provider, on the local host; a domain_open meanwhile waits on
 * libfabric's own lock. */
int rfab_preload(void)
{
	struct rmig_prov_params p = { .address = "127.0.0.1:0" };
	struct fi_info *hints = rfab_hints(&p, RFAB_DEFAULT_PROV);
	struct fi_info *list = NULL;
	int ret;

	if (!hints)
		return rmig_err(-ENOMEM, "fabric preload: out of memory");
	pthread_once(&mr_cache_once, mr_cache_off);
	ret = fi_getinfo(RFAB_FI_VERSION, NULL, NULL, 0, hints, &list);
	fi_freeinfo(hints);
	fi_freeinfo(list);
	if (ret)
		return rmig_err(rfab_errno(ret), "fabric preload: fi_getinfo("
				"prov %s): %s (%d)", RFAB_DEFAULT_PROV,
				fi_strerror(-ret), ret);
	return 0;
}

int rfab_domain_open(const struct rmig_prov_params *p,
		     struct rmig_prov_domain **out, struct rmig_prov_attr *attr)
{
	const char *prov = p && p->subprovider ? p->subprovider : RFAB_DEFAULT_PROV;
	char node[RUTL_ADDR_MAX], svc[16];
	struct fi_info *hints, *list = NULL, *i;
	const char *why = NULL, *why_prov = NULL;
	struct rfab_domain *dom;
	uint64_t flags;

	pthread_once(&mr_cache_once, mr_cache_off);
	int ret;

	if (!p || !out || !attr)
		return rmig_err(-EINVAL, "fabric domain_open: NULL argument");
	ret = rutl_addr_split("fabric", p, node, sizeof(node), svc,
			      sizeof(svc));
	if (ret)
		return ret;

	dom = calloc(1, sizeof(*dom));
	if (!dom)
		return rmig_err(-ENOMEM, "fabric domain_open: out of memory");
	dom->passive = p->passive;
	pthread_mutex_init(&dom->peers_lock, NULL);
	snprintf(dom->address, sizeof(dom->address), "%s", p->address);

	hints = rfab_hints(p, prov);
	if (!hints) {
		ret = rmig_err(-ENOMEM, "fabric domain_open: out of memory");
		goto err_free_dom;
	}
	flags = p->passive ? FI_SOURCE : 0;
	ret = fi_getinfo(RFAB_FI_VERSION, node[0] ? node : NULL, svc, flags,
			 hints, &list);
	if (ret == -FI_ENODATA && (p->tx_depth || p->rx_depth)) {
		/* Depths beyond the provider's maximum filter it out: take its
		 * default sizes instead and report them as the limits. */
		hints->tx_attr->size = 0;
		hints->rx_attr->size = 0;
		ret = fi_getinfo(RFAB_FI_VERSION, node[0] ? node : NULL, svc,
				 flags, hints, &list);
	}
	fi_freeinfo(hints);
	if (ret == -FI_ENODATA) {
		ret = rmig_err(-ENODEV,
			       "fabric domain_open: libfabric provider \"%s\" offers no FI_EP_MSG endpoint with MSG+RMA read and write, 4-byte remote CQ data, FI_ORDER_SAW and FI_THREAD_SAFE for %s (fi_getinfo: %s)",
			       prov, p->address, fi_strerror(-ret));
		goto err_free_dom;
	}
	if (ret) {
		ret = rmig_err(rfab_errno(ret),
			       "fabric domain_open: fi_getinfo(%s, prov %s): %s (%d)",
			       p->address, prov, fi_strerror(-ret), ret);
		goto err_free_dom;
	}
	for (i = list; i; i = i->next) {
		const char *w = rfab_info_reject(i);

		if (!w)
			break;
		if (!why) {
			why = w;
			why_prov = i->fabric_attr->prov_name;
		}
	}
	if (!i) {
		ret = rmig_err(-ENODEV,
			       "fabric domain_open: libfabric provider \"%s\" for %s %s",
			       why_prov ? why_prov : prov, p->address, why);
		goto err_free_list;
	}
	dom->info = fi_dupinfo(i);
	if (!dom->info) {
		ret = rmig_err(-ENOMEM, "fabric domain_open: fi_dupinfo failed");
		goto err_free_list;
	}
	fi_freeinfo(list);
	list = NULL;

	/* Use the depths we were asked for where the provider allows them. */
	dom->tx_size = dom->info->tx_attr->size;
	if (p->tx_depth && p->tx_depth < dom->tx_size)
		dom->tx_size = p->tx_depth;
	dom->rx_size = dom->info->rx_attr->size;
	if (p->rx_depth && p->rx_depth < dom->rx_size)
		dom->rx_size = p->rx_depth;
	dom->info->tx_attr->size = dom->tx_size;
	dom->info->rx_attr->size = dom->rx_size;
	dom->mr_mode = (uint64_t)dom->info->domain_attr->mr_mode;
	/* One remote iov per write; local iovs are limited by iov_limit. */
	dom->max_iov = dom->info->tx_attr->iov_limit < RFAB_MAX_IOV ?
			       (unsigned)dom->info->tx_attr->iov_limit :
			       RFAB_MAX_IOV;
	snprintf(dom->prov_name, sizeof(dom->prov_name), "%s",
		 dom->info->fabric_attr->prov_name);
	/* Relaxed: see the field's comment. */
	atomic_init(&dom->next_key, 1);

	ret = fi_fabric(dom->info->fabric_attr, &dom->fabric, NULL);
	if (ret) {
		ret = rmig_err(rfab_errno(ret), "fabric domain_open: fi_fabric(%s): %s (%d)",
			       dom->prov_name, fi_strerror(-ret), ret);
		goto err_free_info;
	}
	ret = fi_domain(dom->fabric, dom->info, &dom->domain, NULL);
	if (ret) {
		ret = rmig_err(rfab_errno(ret), "fabric domain_open: fi_domain(%s, %s): %s (%d)",
			       dom->prov_name, dom->info->domain_attr->name,
			       fi_strerror(-ret), ret);
		goto err_close_fabric;
	}

	memset(attr, 0, sizeof(*attr));
	snprintf(attr->name, sizeof(attr->name), "fabric/%s", dom->prov_name);
	attr->max_msg_size = dom->info->ep_attr->max_msg_size > SIZE_MAX ?
				     SIZE_MAX :
				     (size_t)dom->info->ep_attr->max_msg_size;
	attr->max_iov = dom->max_iov;
	attr->max_tx = dom->tx_size > UINT_MAX ? UINT_MAX : (unsigned)dom->tx_size;
	attr->max_rx = dom->rx_size > UINT_MAX ? UINT_MAX : (unsigned)dom->rx_size;
	/* Reads take transmit slots like writes: as many (fabric.h). */
	attr->max_read = attr->max_tx;
	*out = (struct rmig_prov_domain *)(void *)dom;
	return 0;

err_close_fabric:
	fi_close(&dom->fabric->fid);
err_free_info:
	fi_freeinfo(dom->info);
err_free_list:
	if (list)
		fi_freeinfo(list);
err_free_dom:
	pthread_mutex_destroy(&dom->peers_lock);
	free(dom);
	return ret;
}

void rfab_domain_close(struct rmig_prov_domain *d)
{
	struct rfab_domain *dom = to_rfab_domain(d);
	int ret;

	if (!dom)
		return;
	ret = fi_close(&dom->domain->fid);
	if (ret)
		rmig_log_warn("fabric domain_close: fi_close(domain): %s (%d)",
			      fi_strerror(-ret), ret);
	ret = fi_close(&dom->fabric->fid);
	if (ret)
		rmig_log_warn("fabric domain_close: fi_close(fabric): %s (%d)",
			      fi_strerror(-ret), ret);
	fi_freeinfo(dom->info);
	pthread_mutex_destroy(&dom->peers_lock);
	free(dom);
}

/* ------------------------------------------------------------------ */
/* Memory registration                                                 */

/* A random key that fits the domain's mr_key_size, distinct within the
 * domain: random high bits, then a per-domain counter in the low 16. */
static int rfab_random_key(struct rfab_domain *dom, uint64_t *key)
{
	size_t ksz = dom->info->domain_attr->mr_key_size;
	uint64_t r, mask;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return rmig_err(-errno, "fabric mr_reg: getrandom for a memory "
				"key: %s", strerror(errno));
	mask = ksz >= 8 ? UINT64_MAX : (1ull << (8 * ksz)) - 1;
	/* Relaxed: distinctness only, see the field's comment. */
	r = (r << 16) | (atomic_fetch_add_explicit(&dom->next_key, 1,
						   memory_order_relaxed) &
			 0xffff);
	*key = r & mask;
	return 0;
}

int rfab_mr_reg(struct rmig_prov_domain *d, void *addr, size_t len,
		enum rmig_mr_access use, struct rmig_prov_mr **out)
{
	struct rfab_domain *dom = to_rfab_domain(d);
	uint64_t access;
	uint64_t key = 0;
	struct rfab_mr *m;
	int ret;

	if (!dom || !addr || !len || !out)
		return rmig_err(-EINVAL, "fabric mr_reg: bad argument (addr %p, len %zu)",
				addr, len);
	/* tcp and sockets check only the remote flags (a write into a
	 * registration without FI_REMOTE_WRITE fails, a read from one
	 * without FI_REMOTE_READ too); libfabric's verbs provider maps
	 * FI_RECV and FI_READ to local write (a read lands in local memory),
	 * FI_REMOTE_WRITE to local and remote write, FI_REMOTE_READ to
	 * remote read alone, FI_SEND to nothing, and FI_WRITE to nothing in
	 * current versions (older ones asked for local write there too). */
	switch (use) {
	case RMIG_MR_MSG_BUF:
		access = FI_SEND | FI_RECV | FI_WRITE;
		break;
	case RMIG_MR_WRITE_SOURCE:
		access = FI_WRITE;
		break;
	case RMIG_MR_WRITE_TARGET:
		access = FI_REMOTE_WRITE;
		break;
	case RMIG_MR_READ_SOURCE:
		/* Only read by the peer's RDMA READs: no write access, so
		 * a read-only mapping registers (verbs). */
		access = FI_REMOTE_READ;
		break;
	case RMIG_MR_READ_TARGET:
		access = FI_READ;
		break;
	default:
		return rmig_err(-EINVAL, "fabric mr_reg: invalid access %d for "
				"%p (%zu bytes)", (int)use, addr, len);
	}
	if (!(dom->mr_mode & FI_MR_PROV_KEY)) {
		/* We choose the key (tcp, sockets): make it unguessable, so
		 * a peer that never passed the handshake cannot write into
		 * a registration by counting keys.  The counter keeps keys
		 * of one domain distinct. */
		ret = rfab_random_key(dom, &key);
		if (ret)
			return ret;
	}

	m = calloc(1, sizeof(*m));
	if (!m)
		return rmig_err(-ENOMEM, "fabric mr_reg: out of memory");
	ret = fi_mr_reg(dom->domain, addr, len, access, 0, key, 0, &m->mr, NULL);
	if (ret) {
		ret = rmig_err(rfab_errno(ret),
			       "fabric mr_reg: fi_mr_reg(%p, %zu bytes, %s, key %llu) on %s: %s (%d)",
			       addr, len, rmig_mr_access_name(use),
			       (unsigned long long)key, dom->prov_name,
			       fi_strerror(-ret), ret);
		goto err_free_mr;
	}
	m->base.addr = addr;
	m->base.len = len;
	m->base.raddr = dom->mr_mode & FI_MR_VIRT_ADDR ? (uint64_t)(uintptr_t)addr : 0;
	m->base.rkey = fi_mr_key(m->mr);
	if (m->base.rkey == FI_KEY_NOTAVAIL) {
		ret = rmig_err(-EOPNOTSUPP,
			       "fabric mr_reg: %s gives no key for %p (%zu bytes): raw keys are not supported",
			       dom->prov_name, addr, len);
		goto err_close_mr;
	}
	m->base.desc = dom->mr_mode & FI_MR_LOCAL ? fi_mr_desc(m->mr) : NULL;
	*out = &m->base;
	return 0;

err_close_mr:
	fi_close(&m->mr->fid);
err_free_mr:
	free(m);
	return ret;
}

void rfab_mr_dereg(struct rmig_prov_mr *pm)
{
	struct rfab_mr *m = to_rfab_mr(pm);
	int ret;

	if (!m)
		return;
	ret = fi_close(&m->mr->fid);
	if (ret)
		rmig_log_warn("fabric mr_dereg: fi_close(mr %p, %zu bytes): %s (%d)",
			      m->base.addr, m->base.len, fi_strerror(-ret), ret);
	free(m);
}

/* ------------------------------------------------------------------ */
/* Listener                                                            */

/* Open @l's event queue and passive endpoint for @info and listen. */
static int pep_open(struct rfab_listener *l, struct fi_info *info)
{
	struct rfab_domain *dom = l->dom;
	/* Room for the requests of a flood that arrive while every accept
	 * slot is busy (the accept reads no request then): past the size,
	 * the provider refuses new ones, the real source's among them. */
	struct fi_eq_attr eq_attr = {
		.size = RFAB_LISTEN_EQ_SIZE,
		.wait_obj = FI_WAIT_UNSPEC,
	};
	int ret;

	ret = fi_eq_open(dom->fabric, &eq_attr, &l->eq, NULL);
	if (ret)
		return rmig_err(rfab_errno(ret), "fabric listen on %s: fi_eq_open: %s (%d)",
				dom->address, fi_strerror(-ret), ret);
	ret = fi_passive_ep(dom->fabric, info, &l->pep, l);
	if (ret) {
		ret = rmig_err(rfab_errno(ret), "fabric listen on %s: fi_passive_ep: %s (%d)",
			       dom->address, fi_strerror(-ret), ret);
		goto err_close_eq;
	}
	ret = fi_pep_bind(l->pep, &l->eq->fid, 0);
	if (ret) {
		ret = rmig_err(rfab_errno(ret), "fabric listen on %s: fi_pep_bind: %s (%d)",
			       dom->address, fi_strerror(-ret), ret);
		goto err_close_pep;
	}
	ret = fi_listen(l->pep);
	if (ret) {
		ret = rmig_err(rfab_errno(ret), "fabric listen on %s: fi_listen: %s (%d)",
			       dom->address, fi_strerror(-ret), ret);
		goto err_close_pep;
	}
	return 0;

err_close_pep:
	fi_close(&l->pep->fid);
err_close_eq:
	fi_close(&l->eq->fid);
	l->pep = NULL;
	l->eq = NULL;
	return ret;
}

/* Refuse the requests nobody will pick up, close the passive endpoint
 * and its event queue. */
static void pep_close(struct rfab_listener *l)
{
	union rfab_cm_buf ev;
	uint32_t event;
	ssize_t n;
	int ret;

	while ((n = fi_eq_read(l->eq, &event, &ev, sizeof(ev), 0)) > 0 ||
	       n == -FI_EAVAIL) {
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry err = { 0 };

			if (fi_eq_readerr(l->eq, &err, 0) < 0)
				break;
			continue;
		}
		if (event != FI_CONNREQ || !ev.cm.info)
			continue;
		fi_reject(l->pep, ev.cm.info->handle, NULL, 0);
		fi_freeinfo(ev.cm.info);
	}
	ret = fi_close(&l->pep->fid);
	if (ret)
		rmig_log_warn("fabric listen_close on %s: fi_close(pep): %s (%d)",
			      l->dom->address, fi_strerror(-ret), ret);
	ret = fi_close(&l->eq->fid);
	if (ret)
		rmig_log_warn("fabric listen_close on %s: fi_close(eq): %s (%d)",
			      l->dom->address, fi_strerror(-ret), ret);
	l->pep = NULL;
	l->eq = NULL;
}

/* Stray sockets pile up on the port (fabric_sweep.c): listen anew on the
 * same address and port, the strays closed in between. */
static int pep_cycle(struct rfab_listener *l, unsigned strays)
{
	struct fi_info *info = fi_dupinfo(l->dom->info);
	void *addr = malloc(l->laddr_len);
	int ret;

	if (!info || !addr) {
		fi_freeinfo(info);
		free(addr);
		return rmig_err(-ENOMEM, "fabric listener on %s: out of memory",
				l->dom->address);
	}
	memcpy(addr, &l->laddr, l->laddr_len);
	free(info->src_addr);
	info->src_addr = addr;
	info->src_addrlen = l->laddr_len;
	rmig_log_warn("fabric listener on %s: %u connections never sent a "
		      "connection request; listening anew", l->dom->address,
		      strays);
	pep_close(l);
	rfab_sweep(l, 0, true);
	ret = pep_open(l, info);
	fi_freeinfo(info);
	if (ret)
		rmig_err_prefix("listening anew after a flood of stray "
				"connections");
	return ret;
}

int rfab_listen(struct rmig_prov_domain *d, struct rmig_prov_listener **out)
{
	struct rfab_domain *dom = to_rfab_domain(d);
	struct rfab_listener *l;
	int ret;

	if (!dom || !out)
		return rmig_err(-EINVAL, "fabric listen: NULL argument");
	ret = rutl_domain_role("fabric listen", dom->address, dom->passive,
			       true);
	if (ret)
		return ret;
	l = calloc(1, sizeof(*l));
	if (!l)
		return rmig_err(-ENOMEM, "fabric listen: out of memory");
	l->dom = dom;
	l->fddir = l->nettcp = -1;
	/* No socket on the port can be RFAB_SWEEP_AGE_MS old before. */
	l->last_sweep_ms = rmig_now_ms();
	ret = pep_open(l, dom->info);
	if (ret) {
		free(l);
		return ret;
	}
	/* Where the sweep looks (fabric_sweep.c), and where a cycled
	 * listener listens again. */
	l->laddr_len = sizeof(l->laddr);
	/* Only the tcp provider has the defect; others (sockets) keep
	 * sockets of their own on the port that rmig cannot tell apart. */
	if (strcmp(dom->prov_name, "tcp") ||
	    fi_getname(&l->pep->fid, &l->laddr, &l->laddr_len))
		l->laddr_len = 0;
	else
		rfab_sweep_open(l);
	*out = (struct rmig_prov_listener *)(void *)l;
	return 0;
}

int rfab_listen_name(struct rmig_prov_listener *pl, char *buf, size_t len)
{
	struct rfab_listener *l = to_rfab_listener(pl);
	struct sockaddr_storage ss;
	size_t sslen = sizeof(ss);
	int ret;

	if (!l || !buf || !len)
		return rmig_err(-EINVAL, "fabric listen_name: bad argument");
	if (!l->pep)
		return rmig_err(-EIO, "fabric listen_name on %s: the listener "
				"could not listen anew", l->dom->address);
	ret = fi_getname(&l->pep->fid, &ss, &sslen);
	if (ret)
		return rmig_err(rfab_errno(ret), "fabric listen_name on %s: fi_getname: %s (%d)",
				l->dom->address, fi_strerror(-ret), ret);
	return rmig_addr_format("fabric", &ss, sslen, buf, len);
}

/* Time for a sweep (RFAB_SWEEP_* in fabric.h). */
static bool sweep_due(const struct rfab_listener *l)
{
	int64_t now = rmig_now_ms();

	if (!l->laddr_len || now - l->last_sweep_ms < RFAB_SWEEP_EVERY_MS)
		return false;
	return now - l->last_conn_ms >= RFAB_SWEEP_QUIET_MS ||
	       now - l->last_sweep_ms >= RFAB_SWEEP_AGE_MS;
}

int rfab_listen_get(struct rmig_prov_listener *pl, int timeout_ms,
		    struct rmig_prov_conn **out)
{
	struct rfab_listener *l = to_rfab_listener(pl);
	int64_t deadline = timeout_ms > 0 ? rmig_now_ms() + timeout_ms : 0;
	char name[RUTL_ADDR_MAX] = "unknown peer";
	struct rfab_conn *c;
	union rfab_cm_buf ev;
	uint32_t event;
	ssize_t n;
	int ret, wait;

	if (!l || !out)
		return rmig_err(-EINVAL, "fabric listen_get: NULL argument");
	if (!l->pep)
		return rmig_err(-EIO, "fabric listen_get on %s: the listener "
				"could not listen anew", l->dom->address);
	for (;;) {
		wait = rutl_wait_left(timeout_ms, deadline);
		n = fi_eq_sread(l->eq, &event, &ev, sizeof(ev), wait, 0);
		if ((n == -FI_EAGAIN || n == -FI_ETIMEDOUT) && sweep_due(l)) {
			/* Every request that came has been handed out: a
			 * socket left on the port has sent none. */
			unsigned strays = rfab_sweep(l, RFAB_SWEEP_AGE_MS,
						     false);

			l->last_sweep_ms = rmig_now_ms();
			if (strays >= RFAB_CYCLE_STRAYS) {
				ret = pep_cycle(l, strays);
				if (ret)
					return ret;
			}
		}
		if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT)
			return rmig_err(-ETIMEDOUT,
					"fabric listen_get on %s: no connection request within %d ms",
					l->dom->address, timeout_ms);
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry err = { 0 };
			char det[RMIG_ERR_MSG_MAX / 2];

			n = fi_eq_readerr(l->eq, &err, 0);
			if (n < 0)
				return rmig_err(rfab_errno((int)n),
						"fabric listen_get on %s: fi_eq_readerr: %s",
						l->dom->address, fi_strerror((int)-n));
			return rmig_err(rfab_errno(err.err ? err.err : FI_EOTHER),
					"fabric listen_get on %s: connection request failed: %s (err %d%s)",
					l->dom->address, fi_strerror(err.err), err.err,
					rfab_prov_detail(det, sizeof(det), err.prov_errno,
							 fi_eq_strerror(l->eq, err.prov_errno,
									err.err_data, NULL, 0)));
		}
		if (n < 0)
			return rmig_err(rfab_errno((int)n),
					"fabric listen_get on %s: fi_eq_sread: %s (%zd)",
					l->dom->address, fi_strerror((int)-n), n);
		if (event == FI_CONNREQ && ev.cm.info)
			break;
		/* Nothing else is expected on a passive endpoint's EQ. */
		if (timeout_ms == 0 || (timeout_ms > 0 && rmig_now_ms() >= deadline))
			return rmig_err(-ETIMEDOUT,
					"fabric listen_get on %s: no connection request within %d ms",
					l->dom->address, timeout_ms);
	}

	if (ev.cm.info->dest_addr)
		(void)rmig_addr_format("fabric", ev.cm.info->dest_addr,
				       ev.cm.info->dest_addrlen, name,
				       sizeof(name));
	/* Our queue sizes, not whatever the request carries. */
	ev.cm.info->tx_attr->size = l->dom->tx_size;
	ev.cm.info->rx_attr->size = l->dom->rx_size;
	ret = rfab_conn_new(l->dom, ev.cm.info, true, name, &c);
	if (ret) {
		rmig_err_prefix("fabric listen_get on %s", l->dom->address);
		goto err_reject;
	}
	fi_freeinfo(ev.cm.info);
	l->last_conn_ms = rmig_now_ms();
	*out = &c->base;
	return 0;

err_reject:
	fi_reject(l->pep, ev.cm.info->handle, NULL, 0);
	fi_freeinfo(ev.cm.info);
	return ret;
}

void rfab_listen_close(struct rmig_prov_listener *pl)
{
	struct rfab_listener *l = to_rfab_listener(pl);

	if (!l)
		return;
	if (l->pep)
		pep_close(l);
	/* What the closed passive endpoint left open. */
	if (l->laddr_len)
		rfab_sweep(l, 0, true);
	rfab_sweep_close(l);
	free(l);
}

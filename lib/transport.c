/* SPDX-License-Identifier: MIT */
/*
 * transport.c - open and close one transport (see transport.h): the domain,
 * its limits, the RAM blocks registered in it; and the connections made in
 * it, which carry it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "regcache.h"

/* Open tp's domain on @address and check its limits. */
static int open_domain(struct rmig_session *s, struct rmig_tp *tp,
		       const char *address)
{
	struct rmig_prov_params p = {
		.address = address,
		.subprovider = s->subprovider,
		.passive = s->is_dest,
		.rx_depth = s->rx_depth + RMIG_CREDIT_SPARE,
		.tx_depth = (unsigned)rmig_param(RMIG_PARAM_MAX_WRITE_OPS),
	};
	struct rmig_prov_attr *attr = &tp->attr;
	int ret = tp->ops.domain_open(&p, &tp->dom, attr);

	if (ret) {
		tp->dom = NULL;
		return ret;
	}
	if (!attr->max_msg_size)
		attr->max_msg_size = 1u << 30;
	if (attr->max_rx && attr->max_rx < s->rx_depth + RMIG_CREDIT_SPARE) {
		ret = rmig_err(-EINVAL, "%s: receive queue of %u entries is "
			       "below the %u rmig needs (lower rx_depth)",
			       attr->name, attr->max_rx,
			       s->rx_depth + RMIG_CREDIT_SPARE);
		tp->ops.domain_close(tp->dom);
		tp->dom = NULL;
		return ret;
	}
	rmig_log_info("%s: domain open on %s (max_msg_size %zu, max_tx %u)",
		      attr->name, address, attr->max_msg_size, attr->max_tx);
	return 0;
}

static void dereg_blocks(struct rmig_tp *tp, struct rmig_prov_mr **mr,
			 unsigned *n)
{
	for (unsigned i = 0; i < *n; i++) {
		if (mr[i])
			tp->ops.mr_dereg(mr[i]);
		mr[i] = NULL;
	}
	*n = 0;
}

/* Register every block of @s in @tp for @access into @mr[], counting them
 * in *@n; on failure deregister the ones made. */
static int reg_blocks(struct rmig_session *s, struct rmig_tp *tp,
		      enum rmig_mr_access access, struct rmig_prov_mr **mr,
		      unsigned *n)
{
	uint64_t t0 = rmig_now_ns();
	int ret = 0;

	for (unsigned i = 0; i < s->nblocks; i++) {
		struct rmig_block *b = &s->blocks[i];

		ret = tp->ops.mr_reg(tp->dom, b->host, b->length, access,
				     &mr[i]);
		if (ret) {
			mr[i] = NULL;
			rmig_err_prefix("registering RAM block '%s' (%llu "
					"bytes) as %s", b->name,
					(unsigned long long)b->length,
					rmig_mr_access_name(access));
			break;
		}
		*n = i + 1;
		atomic_fetch_add_explicit(&s->registrations, 1,
					  memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&s->registration_ns, rmig_now_ns() - t0,
				  memory_order_relaxed);
	if (ret)
		dereg_blocks(tp, mr, n);
	return ret;
}

int rmig_tp_reg_ram(struct rmig_session *s, struct rmig_tp *tp,
		    enum rmig_mr_access access)
{
	return reg_blocks(s, tp, access, tp->mr, &tp->nmr);
}

int rmig_tp_reg_read(struct rmig_session *s, struct rmig_tp *tp)
{
	return reg_blocks(s, tp, RMIG_MR_READ_SOURCE, tp->rmr, &tp->nrmr);
}

void rmig_tp_dereg_read(struct rmig_tp *tp)
{
	dereg_blocks(tp, tp->rmr, &tp->nrmr);
}

void rmig_tp_dereg_ram(struct rmig_tp *tp)
{
	dereg_blocks(tp, tp->mr, &tp->nmr);
}

int rmig_tp_open(struct rmig_session *s, const struct rmig_provider_ops *prov,
		 const char *address, enum rmig_mr_access ram_access,
		 struct rmig_tp **out)
{
	struct rmig_tp *tp;
	int ret;

	tp = calloc(1, sizeof(*tp));
	if (!tp)
		return rmig_err(-ENOMEM, "transport %s: out of memory",
				prov->name);
	tp->prov = prov;
	rmig_provider_fill(&tp->ops, prov);
	ret = open_domain(s, tp, address);
	if (ret)
		goto err_free;
	/* A provider without post_read reads nothing, whatever it says. */
	if (!prov->post_read)
		tp->attr.max_read = 0;
	if (s->postcopy_resume) {
		/* Resuming a post-copy: nothing is written, so nothing is
		 * registered for writes (the source's RAM is registered for
		 * reading by rmig_src_postcopy()). */
	} else if (s->reg_mode == RMIG_REG_ON_DEMAND) {
		ret = rmig_regcache_create(s, tp, s->reg_chunk_size,
					   s->reg_cache_chunks, &tp->cache);
		if (ret)
			goto err_close;
		rmig_log_info("registration on demand: chunks of %llu bytes, "
			      "at most %u registered",
			      (unsigned long long)s->reg_chunk_size,
			      s->reg_cache_chunks);
	} else if (ram_access != RMIG_MR_WRITE_TARGET) {
		ret = rmig_tp_reg_ram(s, tp, ram_access);
		if (ret)
			goto err_close;
	}
	*out = tp;
	return 0;

err_close:
	rmig_tp_close(tp);
	return ret;
err_free:
	free(tp);
	return ret;
}

void rmig_tp_close(struct rmig_tp *tp)
{
	if (!tp)
		return;
	rmig_regcache_destroy(tp->cache);
	rmig_tp_dereg_ram(tp);
	rmig_tp_dereg_read(tp);
	if (tp->dom)
		tp->ops.domain_close(tp->dom);
	free(tp);
}

int rmig_tp_conn_create(struct rmig_tp *tp, struct rmig_prov_conn **out)
{
	int ret = tp->ops.conn_create(tp->dom, out);

	if (!ret)
		(*out)->tp = tp;
	return ret;
}

int rmig_tp_listen_get(struct rmig_tp *tp, struct rmig_prov_listener *l,
		       int timeout_ms, struct rmig_prov_conn **out)
{
	int ret = tp->ops.listen_get(l, timeout_ms, out);

	if (!ret)
		(*out)->tp = tp;
	return ret;
}

/* SPDX-License-Identifier: MIT */
/*
 * prov_post.h - one write or one send through a provider's batched post
 * (lib/provider.h), for the tests that drive a provider op by op.
 */
#ifndef RMIG_TESTS_PROV_POST_H
#define RMIG_TESTS_PROV_POST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "provider.h"

/** A batch of just a send; the post's result. */
static inline int prov_send(const struct rmig_provider_ops *o,
			    struct rmig_prov_conn *c, const void *buf,
			    size_t len, struct rmig_prov_mr *mr, uint32_t imm,
			    void *ctx)
{
	const struct rmig_send m = { .buf = buf, .len = len, .mr = mr,
				     .imm = imm, .ctx = ctx };
	unsigned posted;

	return o->post(c, NULL, 0, &m, &posted);
}

/** A batch of just one write; the post's result. */
static inline int prov_write(const struct rmig_provider_ops *o,
			     struct rmig_prov_conn *c,
			     const struct rmig_iov *iov, unsigned niov,
			     uint64_t raddr, uint64_t rkey, void *ctx,
			     bool signaled)
{
	const struct rmig_write w = { .iov = iov, .niov = niov,
				      .raddr = raddr, .rkey = rkey,
				      .ctx = ctx, .signaled = signaled };
	unsigned posted;

	return o->post(c, &w, 1, NULL, &posted);
}

#endif /* RMIG_TESTS_PROV_POST_H */

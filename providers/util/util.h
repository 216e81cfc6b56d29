/* SPDX-License-Identifier: MIT */
/*
 * util.h - what the providers share (prefix rutl_), as libfabric's
 * providers share prov/util: their common limits, container_of for the
 * accessors from the core's embedded objects to a provider's own, a
 * connection's first-error record, the address and role checks of a
 * domain, and the wait budget of a loop with a deadline.  The clock is the core's (clock.h), address text is addr.h's
 * and tunables are read with rmig_param() (params.h).
 */
#ifndef RMIG_PROVIDERS_UTIL_H
#define RMIG_PROVIDERS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "clock.h"
#include "error.h"
#include "params.h"
#include "provider.h"

/** Longest "host:port" a provider formats or accepts. */
#define RUTL_ADDR_MAX 128
/** Completions read from a CQ per call. */
#define RUTL_CQ_BATCH 16
/** Longest sleep in a blocking poll before the connection's events, the
 *  wake flag and the deadline are looked at again, so a lost peer or a
 *  wake is noticed promptly even where the wait itself misses it. */
#define RUTL_SLICE_MS 100
/** How long a post waits for room in a full queue before giving up. */
#define RUTL_POST_RETRY_MS 5000

/** The struct of type @type whose member @member is at @ptr (embed, then
 *  container_of, as rdma-core's providers do). */
#define rutl_container_of(ptr, type, member)                                 \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/**
 * A connection's first error.  The first failure recorded wins: once set,
 * every post and poll of the connection returns it again (after any
 * completions read before it).  @op and @ctx name the operation that
 * failed, where the provider knows it (0 and NULL otherwise), so a poll
 * can hand it back in a completion entry.
 */
struct rutl_err {
	int code;                   /* negative errno; 0 while none */
	uint8_t op;                 /* enum rmig_cqe_op, or 0 */
	void *ctx;
	char msg[RMIG_ERR_MSG_MAX];
};

/** Record @code with its message and failed operation @op/@ctx unless an
 *  error is already recorded; return the recorded error, its message set
 *  for the calling thread (rmig_err()). */
int rutl_err_set(struct rutl_err *e, int code, uint8_t op, void *ctx,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/** The recorded error again, its message set for the calling thread; with
 *  @cqe, also the failed operation and context in @cqe[0]. */
int rutl_err_get(const struct rutl_err *e, struct rmig_cqe *cqe);

/** Split @p->address into @node and @svc (rmig_addr_split(), errors name
 *  @who); a connecting side (@p->passive false) needs a host. */
int rutl_addr_split(const char *who, const struct rmig_prov_params *p,
		    char *node, size_t nlen, char *svc, size_t slen);

/** 0 when a domain for @address opened for listening (@passive) or for
 *  connecting suits @op, which needs a listening domain when
 *  @want_passive; else -EINVAL naming @op and @address. */
int rutl_domain_role(const char *op, const char *address, bool passive,
		     bool want_passive);

/** What a blocking wait may still take of @timeout_ms (<0: for ever,
 *  returned as is) that ends at @deadline_ms (rmig_now_ms() time); 0 once
 *  the deadline has passed. */
int rutl_wait_left(int timeout_ms, int64_t deadline_ms);

/** The next slice of a blocking poll: RUTL_SLICE_MS, or less when the
 *  deadline of @timeout_ms (>0) at @deadline_ms comes sooner; 0 once it
 *  has passed. */
int rutl_slice_ms(int timeout_ms, int64_t deadline_ms);

#endif /* RMIG_PROVIDERS_UTIL_H */

/* SPDX-License-Identifier: MIT */
/*
 * util.c - what the providers share: the first-error record, the domain
 * checks and the wait budget (see util.h).
 */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int rutl_err_set(struct rutl_err *e, int code, uint8_t op, void *ctx,
		 const char *fmt, ...)
{
	va_list ap;

	if (!e->code) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
		e->code = code;
		e->op = op;
		e->ctx = ctx;
	}
	return rutl_err_get(e, NULL);
}

int rutl_err_get(const struct rutl_err *e, struct rmig_cqe *cqe)
{
	if (cqe) {
		memset(cqe, 0, sizeof(*cqe));
		cqe->op = (enum rmig_cqe_op)e->op;
		cqe->ctx = e->ctx;
	}
	return rmig_err(e->code, "%s", e->msg);
}

int rutl_wait_left(int timeout_ms, int64_t deadline_ms)
{
	int64_t left;

	if (timeout_ms <= 0)
		return timeout_ms;
	left = deadline_ms - rmig_now_ms();
	return left > 0 ? (int)left : 0;
}

int rutl_slice_ms(int timeout_ms, int64_t deadline_ms)
{
	int left = rutl_wait_left(timeout_ms, deadline_ms);

	return timeout_ms > 0 && left < RUTL_SLICE_MS ? left : RUTL_SLICE_MS;
}

int rutl_addr_split(const char *who, const struct rmig_prov_params *p,
		    char *node, size_t nlen, char *svc, size_t slen)
{
	int ret = rmig_addr_split(who, p->address, node, nlen, svc, slen);

	if (ret)
		return ret;
	if (!p->passive && !node[0])
		return rmig_err(-EINVAL,
				"%s domain_open: address \"%s\" names no host to connect to",
				who, p->address);
	return 0;
}

int rutl_domain_role(const char *op, const char *address, bool passive,
		     bool want_passive)
{
	if (passive == want_passive)
		return 0;
	return rmig_err(-EINVAL, "%s: domain for %s was opened for %s, not %s",
			op, address, passive ? "listening" : "connecting",
			passive ? "connecting" : "listening");
}

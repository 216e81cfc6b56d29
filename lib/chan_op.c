/* SPDX-License-Identifier: MIT */
/*
 * chan_op.c - naming a channel's failed operation: the provider's error
 * rephrased with what the operation was (a write's or read's RAM block and
 * offset, a send's message type), from the context it was posted with
 * (chan.c: a completion record, or the write log of unsignaled writes).
 */
#include <stdio.h>

#include "core.h"

/* What @e (the failed completion a provider named, see provider.h) was;
 * NULL when the provider could not tell or the context is not ours. */
static const struct rmig_opinfo *op_of(struct rmig_chan *ch,
				       const struct rmig_cqe *e)
{
	const struct rmig_txrec *r = e->ctx;
	const struct rmig_opinfo *w = e->ctx;

	if (!e->ctx)
		return NULL;
	if (r >= ch->recs && r < ch->recs + ch->nrecs &&
	    (const char *)r == (const char *)&ch->recs[r - ch->recs])
		return r->info.op ? &r->info : NULL;
	if (w >= ch->wlog && w < ch->wlog + ch->nwlog)
		return w->op ? w : NULL;
	return NULL;
}

/* A failed RDMA WRITE or READ (@what; @prep: "to" or "of" the block),
 * named by its block and offset when @o says them. */
static int rdma_error(struct rmig_chan *ch, const struct rmig_opinfo *o,
		      enum rmig_cqe_op op, const char *what, const char *prep,
		      int err, const char *text)
{
	struct rmig_session *s = ch->sess;

	if (o && o->op == op && o->block >= 0 &&
	    (unsigned)o->block < s->nblocks)
		return rmig_err(err, "%s %s block '%s' offset 0x%llx (%llu "
				"bytes) failed: %s", what, prep,
				s->blocks[o->block].name,
				(unsigned long long)o->offset,
				(unsigned long long)o->len, text);
	return rmig_err(err, "%s (block unknown) failed: %s", what, text);
}

int rmig_chan_op_error(struct rmig_chan *ch, const struct rmig_cqe *e,
		       int err)
{
	const struct rmig_opinfo *o = op_of(ch, e);
	char text[RMIG_ERR_MSG_MAX];

	snprintf(text, sizeof(text), "%s", rmig_err_msg());
	switch (e->op) {
	case RMIG_CQE_WRITE:
		return rdma_error(ch, o, RMIG_CQE_WRITE, "RDMA WRITE", "to",
				  err, text);
	case RMIG_CQE_READ:
		return rdma_error(ch, o, RMIG_CQE_READ, "RDMA READ", "of",
				  err, text);
	case RMIG_CQE_SEND:
		if (o && o->op == RMIG_CQE_SEND)
			return rmig_err(err, "SEND of a %s message (%llu "
					"bytes) failed: %s",
					rmig_msg_type_name(o->msg),
					(unsigned long long)o->len, text);
		return rmig_err(err, "SEND failed: %s", text);
	case RMIG_CQE_RECV:
		return rmig_err(err, "RECV failed: %s", text);
	}
	return err; /* no operation named: the provider's message stands */
}

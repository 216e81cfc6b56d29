/* SPDX-License-Identifier: MIT */
/*
 * transport.h - one provider opened for a session: its filled ops table, its
 * domain and limits, and the session's RAM blocks registered in that domain.
 *
 * A session uses one transport.  A destination in transport auto listens
 * with two side by side (the fallback and verbs) until the first source
 * that passes the handshake picks one; the other is then closed
 * (rmig_sess_keep_transport()).  A source in auto whose verbs transport
 * opened but could not connect closes it and opens the fallback's.
 *
 * Every connection belongs to one transport (rmig_prov_conn.tp, set by the
 * functions below), and a channel reaches its ops, domain and
 * registrations through it (rmig_chan.tp).
 *
 * (struct rmig_tp, as the public enum rmig_transport has the longer name.)
 */
#ifndef RMIG_TRANSPORT_H
#define RMIG_TRANSPORT_H

#include "provider.h"
#include "rmig/rmig.h"

struct rmig_session;
struct rmig_regcache;

struct rmig_tp {
	/** The provider as registered (identity: which one this is). */
	const struct rmig_provider_ops *prov;
	/** @prov filled: no NULL entry (rmig_provider_fill()). */
	struct rmig_provider_ops ops;
	struct rmig_prov_domain *dom;
	/** The domain's limits; attr.name names the transport (stats). */
	struct rmig_prov_attr attr;
	/** Pin-all: block i of the session registered whole in @dom. */
	struct rmig_prov_mr *mr[RMIG_MAX_BLOCKS];
	unsigned nmr;
	/** On demand (source): the chunks registered in @dom instead. */
	struct rmig_regcache *cache;
	/** Post-copy (source): block i exposed to the peer's RDMA READs
	 *  (RMIG_MR_READ_SOURCE), from rmig_tp_reg_read() to
	 *  rmig_tp_dereg_read(). */
	struct rmig_prov_mr *rmr[RMIG_MAX_BLOCKS];
	unsigned nrmr;
};

/**
 * Open @prov's domain on @address (the session's parameters: passive for a
 * destination, queue depths), check its limits, and, for a source, register
 * the session's RAM blocks for @ram_access: whole (pin-all), or through an
 * on-demand registration cache.  A destination's RAM (RMIG_MR_WRITE_TARGET)
 * is not registered here: rmig_tp_reg_ram() does it once every channel
 * authenticated, so that no key exists while an unauthenticated connection
 * does.  0 and *@out, or a negative errno with a message.
 */
int rmig_tp_open(struct rmig_session *s, const struct rmig_provider_ops *prov,
		 const char *address, enum rmig_mr_access ram_access,
		 struct rmig_tp **out);

/**
 * Register every RAM block of the session whole in @tp's domain for
 * @access, with keys new to this call (a registration made by an earlier
 * call must be gone: rmig_tp_dereg_ram()).  On failure none stays.
 */
int rmig_tp_reg_ram(struct rmig_session *s, struct rmig_tp *tp,
		    enum rmig_mr_access access);

/** Deregister the RAM blocks: their keys are dead from here on (remote
 *  access revoked).  Safe to call when none is registered. */
void rmig_tp_dereg_ram(struct rmig_tp *tp);

/** Post-copy (source): register every RAM block of the session whole
 *  for the peer's RDMA READs (RMIG_MR_READ_SOURCE), fresh keys.  A
 *  provider without reads: -EOPNOTSUPP.  On failure none stays. */
int rmig_tp_reg_read(struct rmig_session *s, struct rmig_tp *tp);

/** Deregister the read registrations: remote read access revoked.  Safe
 *  to call when none is registered. */
void rmig_tp_dereg_read(struct rmig_tp *tp);

/** Deregister everything and close the domain (its connections and
 *  listeners are closed already).  NULL is a no-op. */
void rmig_tp_close(struct rmig_tp *tp);

/** Source side: a connection in @tp (ops.conn_create), owned by it. */
int rmig_tp_conn_create(struct rmig_tp *tp, struct rmig_prov_conn **out);

/** Destination side: the next connection request on @tp's listener @l
 *  (ops.listen_get), owned by @tp. */
int rmig_tp_listen_get(struct rmig_tp *tp, struct rmig_prov_listener *l,
		       int timeout_ms, struct rmig_prov_conn **out);

#endif /* RMIG_TRANSPORT_H */

/* SPDX-License-Identifier: MIT */
/*
 * fabric_sweep.c - a workaround for libfabric 1.17's tcp passive endpoint.
 *
 * The tcp provider accept()s every TCP connection on the listening port at
 * once and keeps the socket until the peer's connection request arrives.
 * A socket whose peer never sends one (a raw TCP client, a port scan, a
 * flood) stays open for ever: fi_close() of the passive endpoint and of
 * its event queue does not close it, so each one outlives
 * rmig_dest_destroy(), and a flood exhausts the process's descriptors,
 * after which the provider cannot accept the real source either.
 *
 * (Only for the tcp provider: others, such as sockets, keep sockets of their
 * own on the port whose peers rmig does not know.)
 * The sweep finds such sockets: those on the listener's address and port,
 * with a peer, that belong to none of the domain's accepted connections.
 * It closes them only once the passive endpoint is closed: while it
 * lives, the provider still polls them, and a descriptor closed under it
 * and reused for the next connection confuses it (tried: the real
 * source's connection was lost).  So:
 *   - listen_get, when the event queue had nothing (every connection
 *     request that arrived has been handed out), counts the sockets seen
 *     for RFAB_SWEEP_AGE_MS at least (a real client sends its request as
 *     soon as TCP connects); from RFAB_CYCLE_STRAYS of them on, the
 *     listener is cycled: passive endpoint closed, the strays closed, a
 *     new one listening on the same address and port (connections still
 *     in the kernel's backlog are reset; a source retries a reset
 *     connect within its connect timeout);
 *   - listen_close closes all of them after the passive endpoint.
 * The provider's small per-socket bookkeeping stays allocated (LSan sees
 * it; tests/libfabric-lsan.supp names it); the descriptors do not.
 *
 * A descriptor is known by (number, peer): a number reused for another
 * socket starts a new age.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fabric.h"
#include "addr.h"
#include "clock.h"
#include "error.h"

#define RFAB_SEEN_MAX 4096

void rfab_peers_add(struct rfab_conn *c)
{
	struct rfab_domain *dom = c->dom;

	pthread_mutex_lock(&dom->peers_lock);
	c->peer_next = dom->peers;
	if (dom->peers)
		dom->peers->peer_pprev = &c->peer_next;
	c->peer_pprev = &dom->peers;
	dom->peers = c;
	pthread_mutex_unlock(&dom->peers_lock);
}

void rfab_peers_del(struct rfab_conn *c)
{
	struct rfab_domain *dom = c->dom;

	if (!c->peer_pprev)
		return;
	pthread_mutex_lock(&dom->peers_lock);
	*c->peer_pprev = c->peer_next;
	if (c->peer_next)
		c->peer_next->peer_pprev = c->peer_pprev;
	c->peer_pprev = NULL;
	pthread_mutex_unlock(&dom->peers_lock);
}

/* The port of @sa, 0 for a family other than IPv4/IPv6. */
static unsigned port_of(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)
				     ->sin_port);
	if (sa->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)
				     ->sin6_port);
	return 0;
}

/* Whether local address @a is on the listener's address @l: same family
 * and port, and the same host unless the listener is on the wildcard. */
static bool on_listener(const struct sockaddr_storage *a,
			const struct sockaddr_storage *l)
{
	if (a->ss_family != l->ss_family || port_of(a) != port_of(l) ||
	    !port_of(l))
		return false;
	if (l->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)l;

		return y->sin_addr.s_addr == htonl(INADDR_ANY) ||
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)l;

	return IN6_IS_ADDR_UNSPECIFIED(&y->sin6_addr) ||
	       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
}

/* Whether @peer ("host:port") is one of the domain's connections.  Under
 * peers_lock. */
static bool ours(struct rfab_domain *dom, const char *peer)
{
	for (struct rfab_conn *c = dom->peers; c; c = c->peer_next)
		if (!strcmp(c->name, peer))
			return true;
	return false;
}

/* The peer of socket @fd if it is on @l's address, else false. */
static bool stray_socket(struct rfab_listener *l, int fd, char *peer,
			 size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct stat st;

	if (fstat(fd, &st) || !S_ISSOCK(st.st_mode))
		return false;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) ||
	    !on_listener(&ss, &l->laddr))
		return false;
	sl = sizeof(ss);
	/* The listening socket itself has no peer. */
	if (getpeername(fd, (struct sockaddr *)&ss, &sl))
		return false;
	return !rmig_addr_format("fabric", &ss, sl, peer, len);
}

static struct rfab_seen *seen_find(struct rfab_listener *l, int fd,
				   const char *peer)
{
	for (unsigned i = 0; i < l->nseen; i++)
		if (l->seen[i].fd == fd && !strcmp(l->seen[i].peer, peer))
			return &l->seen[i];
	return NULL;
}

int rfab_sweep_open(struct rfab_listener *l)
{
	/* Opened once: under a flood the process has no descriptor left
	 * for opening it when the sweep is needed most. */
	l->fddir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->fddir < 0)
		rmig_log_warn("fabric listener on %s: /proc/self/fd: %s; "
			      "stray connections will not be closed",
			      l->dom->address, strerror(errno));
	return l->fddir;
}

/* Look at descriptor @fd (one entry of /proc/self/fd); see rfab_sweep(). */
static unsigned sweep_one(struct rfab_listener *l, long fd, int64_t now,
			  int min_age_ms, bool do_close)
{
	char peer[RUTL_ADDR_MAX];
	struct rfab_seen *s;

	if (fd == l->fddir || !stray_socket(l, (int)fd, peer, sizeof(peer)) ||
	    ours(l->dom, peer))
		return 0;
	s = seen_find(l, (int)fd, peer);
	if (!s && l->nseen < RFAB_SEEN_MAX) {
		s = &l->seen[l->nseen++];
		s->fd = (int)fd;
		s->first_ms = now;
		snprintf(s->peer, sizeof(s->peer), "%s", peer);
	}
	if (s)
		s->mark = true;
	if ((!s || now - s->first_ms < min_age_ms) && min_age_ms)
		return 0;
	if (do_close) {
		rmig_log_debug("fabric: closing a socket from %s on the "
			       "listening port that never sent a connection "
			       "request (fd %ld)", peer, fd);
		close((int)fd);
		if (s)
			s->mark = false;
	}
	return 1;
}

unsigned rfab_sweep(struct rfab_listener *l, int min_age_ms, bool do_close)
{
	struct rfab_domain *dom = l->dom;
	int64_t now = rmig_now_ms();
	unsigned closed = 0;
	char buf[4096];
	ssize_t n;

	if (l->fddir < 0 || lseek(l->fddir, 0, SEEK_SET) < 0)
		return 0;
	if (!l->seen && !(l->seen = calloc(RFAB_SEEN_MAX, sizeof(*l->seen))))
		return 0;
	for (unsigned i = 0; i < l->nseen; i++)
		l->seen[i].mark = false;
	/* Held while looking and closing: a connection leaves the list only
	 * once its endpoint (and socket) is closed, so no socket of ours
	 * can look like a stray here. */
	pthread_mutex_lock(&dom->peers_lock);
	while ((n = getdents64(l->fddir, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			struct dirent64 *e = (struct dirent64 *)(void *)(buf + off);
			char *end;
			long fd = strtol(e->d_name, &end, 10);

			off += e->d_reclen;
			if (!*end && end != e->d_name)
				closed += sweep_one(l, fd, now, min_age_ms,
						    do_close);
		}
	}
	pthread_mutex_unlock(&dom->peers_lock);
	/* Forget what is gone (or closed now). */
	for (unsigned i = 0; i < l->nseen;)
		if (!l->seen[i].mark)
			l->seen[i] = l->seen[--l->nseen];
		else
			i++;
	if (closed && do_close)
		rmig_log_info("fabric listener on %s: closed %u socket%s that "
			      "never sent a connection request",
			      dom->address, closed, closed == 1 ? "" : "s");
	return closed;
}

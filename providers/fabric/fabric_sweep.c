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
 * established, that belong to none of the domain's accepted connections.
 * It reads the kernel's table (/proc/self/net/tcp or tcp6: addresses and
 * inodes) and this process's descriptors' links (/proc/self/fd: which
 * inode each is), so it makes no call on a descriptor that another thread
 * may be closing; both files are opened at listen, so a flood that
 * exhausts the descriptors does not blind it.
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
 * socket starts a new age.  The domain's peers_lock is held over a sweep,
 * and an accepted connection leaves the domain's list only once its
 * endpoint is closed, so one of ours never looks like a stray.
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

	/* Under the lock: a neighbour leaving rewrites our peer_pprev. */
	pthread_mutex_lock(&dom->peers_lock);
	if (c->peer_pprev) {
		*c->peer_pprev = c->peer_next;
		if (c->peer_next)
			c->peer_next->peer_pprev = c->peer_pprev;
		c->peer_pprev = NULL;
	}
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

/* "HEX:PORT" of /proc/net/tcp{,6} (the address as the kernel stores it,
 * printed 32 bits at a time in host order) into @sa. */
static bool parse_hexaddr(const char *t, int family,
			  struct sockaddr_storage *sa)
{
	unsigned w[4], port;

	memset(sa, 0, sizeof(*sa));
	if (family == AF_INET) {
		struct sockaddr_in *in = (void *)sa;

		if (sscanf(t, "%8x:%4x", &w[0], &port) != 2)
			return false;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = w[0];
		in->sin_port = htons((uint16_t)port);
		return true;
	}
	struct sockaddr_in6 *in6 = (void *)sa;

	if (sscanf(t, "%8x%8x%8x%8x:%4x", &w[0], &w[1], &w[2], &w[3],
		   &port) != 5)
		return false;
	in6->sin6_family = AF_INET6;
	memcpy(&in6->sin6_addr, w, sizeof(w));
	in6->sin6_port = htons((uint16_t)port);
	return true;
}

/* The inode of the socket behind descriptor @name of /proc/self/fd, or 0.
 * Reads the link only: the descriptor itself is not touched (another
 * thread may be closing it). */
static unsigned long fd_inode(int dirfd, const char *name)
{
	char link[64];
	unsigned long ino;
	ssize_t n = readlinkat(dirfd, name, link, sizeof(link) - 1);

	if (n <= 0)
		return 0;
	link[n] = '\0';
	return sscanf(link, "socket:[%lu]", &ino) == 1 ? ino : 0;
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
	 * for opening them when the sweep is needed most. */
	l->fddir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	l->nettcp = open(l->laddr.ss_family == AF_INET6 ?
			 "/proc/self/net/tcp6" : "/proc/self/net/tcp",
			 O_RDONLY | O_CLOEXEC);
	if (l->fddir < 0 || l->nettcp < 0) {
		rmig_log_warn("fabric listener on %s: /proc/self/fd or "
			      "/proc/self/net/tcp: %s; stray connections will "
			      "not be closed", l->dom->address, strerror(errno));
		rfab_sweep_close(l);
		return -1;
	}
	return 0;
}

void rfab_sweep_close(struct rfab_listener *l)
{
	if (l->fddir >= 0)
		close(l->fddir);
	if (l->nettcp >= 0)
		close(l->nettcp);
	l->fddir = l->nettcp = -1;
	free(l->seen);
	l->seen = NULL;
	l->nseen = 0;
}

/* This process's socket descriptors: (inode, fd) pairs in @map, sorted
 * by inode; their number. */
struct ino_fd {
	unsigned long ino;
	int fd;
};

static int cmp_ino(const void *a, const void *b)
{
	unsigned long x = ((const struct ino_fd *)a)->ino,
		      y = ((const struct ino_fd *)b)->ino;

	return x < y ? -1 : x > y;
}

static size_t socket_fds(struct rfab_listener *l, struct ino_fd *map,
			 size_t max)
{
	char buf[4096];
	size_t n = 0;
	ssize_t got;

	if (lseek(l->fddir, 0, SEEK_SET) < 0)
		return 0;
	while ((got = getdents64(l->fddir, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < got;) {
			struct dirent64 *e = (struct dirent64 *)(void *)(buf + off);
			unsigned long ino;
			char *end;
			long fd = strtol(e->d_name, &end, 10);

			off += e->d_reclen;
			if (*end || end == e->d_name || n == max)
				continue;
			ino = fd_inode(l->fddir, e->d_name);
			if (ino)
				map[n++] = (struct ino_fd){ ino, (int)fd };
		}
	}
	qsort(map, n, sizeof(*map), cmp_ino);
	return n;
}

/* One established socket of the table on the listener's address: note it
 * (and close it when @do_close) if it is this process's and not one of
 * our connections.  Under peers_lock. */
static unsigned sweep_one(struct rfab_listener *l,
			  const struct sockaddr_storage *peer_sa,
			  unsigned long ino, const struct ino_fd *map,
			  size_t nmap, int64_t now, int min_age_ms,
			  bool do_close)
{
	struct ino_fd key = { .ino = ino };
	const struct ino_fd *hit = bsearch(&key, map, nmap, sizeof(*map),
					   cmp_ino);
	char peer[RUTL_ADDR_MAX];
	struct rfab_seen *s;

	if (!hit || rmig_addr_format("fabric", peer_sa, sizeof(*peer_sa), peer,
				     sizeof(peer)) ||
	    ours(l->dom, peer))
		return 0;
	s = seen_find(l, hit->fd, peer);
	if (!s && l->nseen < RFAB_SEEN_MAX) {
		s = &l->seen[l->nseen++];
		s->fd = hit->fd;
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
			       "request (fd %d)", peer, hit->fd);
		close(hit->fd);
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
	struct ino_fd *map;
	size_t nmap;
	char *tab = NULL, *line, *save;
	size_t cap = 0, len = 0;
	ssize_t got;

	if (l->fddir < 0 || l->nettcp < 0)
		return 0;
	if (!l->seen && !(l->seen = calloc(RFAB_SEEN_MAX, sizeof(*l->seen))))
		return 0;
	map = calloc(RFAB_SEEN_MAX, sizeof(*map));
	if (!map)
		return 0;
	/* The whole table, read from its start. */
	if (lseek(l->nettcp, 0, SEEK_SET) == 0) {
		for (;;) {
			if (len + 4096 + 1 > cap) {
				char *t = realloc(tab, cap = 2 * cap + 8192);

				if (!t)
					break;
				tab = t;
			}
			got = read(l->nettcp, tab + len, cap - len - 1);
			if (got <= 0)
				break;
			len += (size_t)got;
		}
	}
	if (!tab) {
		free(map);
		return 0;
	}
	tab[len] = '\0';
	for (unsigned i = 0; i < l->nseen; i++)
		l->seen[i].mark = false;
	/* Held while looking and closing: a connection leaves the list only
	 * once its endpoint (and socket) is closed, so no socket of ours
	 * can look like a stray here. */
	pthread_mutex_lock(&dom->peers_lock);
	nmap = socket_fds(l, map, RFAB_SEEN_MAX);
	for (line = strtok_r(tab, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char local[64], remote[64];
		struct sockaddr_storage la, ra;
		unsigned st;
		unsigned long ino;

		/* sl local remote st tx:rx tr:when retrnsmt uid timeout
		 * inode */
		if (sscanf(line, "%*s %63s %63s %x %*s %*s %*s %*s %*s %lu",
			   local, remote, &st, &ino) != 4 ||
		    st != 1 /* TCP_ESTABLISHED */ ||
		    !parse_hexaddr(local, l->laddr.ss_family, &la) ||
		    !parse_hexaddr(remote, l->laddr.ss_family, &ra) ||
		    !on_listener(&la, &l->laddr))
			continue;
		closed += sweep_one(l, &ra, ino, map, nmap, now, min_age_ms,
				    do_close);
	}
	pthread_mutex_unlock(&dom->peers_lock);
	free(tab);
	free(map);
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

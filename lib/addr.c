/* SPDX-License-Identifier: MIT */
/*
 * addr.c - "host:port" address text shared by the providers.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int rmig_addr_split(const char *who, const char *addr, char *node,
		    size_t nlen, char *svc, size_t slen)
{
	const char *host = addr, *host_end, *port;
	size_t hl, pl;
	char *end;
	unsigned long v;

	if (!addr || !*addr)
		return rmig_err(-EINVAL, "%s: no address given (want host:port)",
				who);
	if (addr[0] == '[') {
		host = addr + 1;
		host_end = strchr(host, ']');
		if (!host_end || host_end[1] != ':')
			return rmig_err(-EINVAL,
					"%s: address \"%s\": want [addr]:port",
					who, addr);
		port = host_end + 2;
	} else {
		host_end = strrchr(addr, ':');
		if (!host_end)
			return rmig_err(-EINVAL,
					"%s: address \"%s\" has no port (want host:port)",
					who, addr);
		if (memchr(addr, ':', (size_t)(host_end - addr)))
			return rmig_err(-EINVAL,
					"%s: address \"%s\": write IPv6 addresses as [addr]:port",
					who, addr);
		port = host_end + 1;
	}
	hl = (size_t)(host_end - host);
	pl = strlen(port);
	errno = 0;
	v = strtoul(port, &end, 10);
	if (!pl || *end || errno || v > 65535 || port[0] == '-' ||
	    port[0] == '+')
		return rmig_err(-EINVAL,
				"%s: address \"%s\": port \"%s\" is not 0..65535",
				who, addr, port);
	if (hl >= nlen || pl >= slen)
		return rmig_err(-ENAMETOOLONG, "%s: address \"%s\" too long",
				who, addr);
	memcpy(node, host, hl);
	node[hl] = '\0';
	memcpy(svc, port, pl + 1);
	return 0;
}

int rmig_addr_format(const char *who, const void *sa, size_t salen,
		     char *buf, size_t len)
{
	const struct sockaddr *s = sa;
	char host[INET6_ADDRSTRLEN];
	const void *in_addr;
	unsigned port;
	int n;

	if (!sa)
		return rmig_err(-ENOTCONN, "%s: no address", who);
	if (salen >= sizeof(struct sockaddr_in) && s->sa_family == AF_INET) {
		const struct sockaddr_in *in = sa;

		in_addr = &in->sin_addr;
		port = ntohs(in->sin_port);
	} else if (salen >= sizeof(struct sockaddr_in6) &&
		   s->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = sa;

		in_addr = &in6->sin6_addr;
		port = ntohs(in6->sin6_port);
	} else {
		return rmig_err(-EAFNOSUPPORT,
				"%s: address family %d (length %zu) is not IPv4 or IPv6",
				who, salen >= sizeof(s->sa_family) ? s->sa_family : -1,
				salen);
	}
	if (!inet_ntop(s->sa_family, in_addr, host, sizeof(host)))
		return rmig_err(-errno, "%s: inet_ntop: %s", who,
				strerror(errno));
	n = snprintf(buf, len, s->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		     host, port);
	if (n < 0 || (size_t)n >= len)
		return rmig_err(-ENOSPC,
				"%s: address needs %d bytes, buffer has %zu",
				who, n + 1, len);
	return 0;
}

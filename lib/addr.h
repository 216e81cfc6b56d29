/* SPDX-License-Identifier: MIT */
/*
 * addr.h - "host:port" address text shared by the providers: split the
 * text given, format a socket address.
 */
#ifndef RMIG_ADDR_H
#define RMIG_ADDR_H

#include <stddef.h>

/**
 * Split "host:port" or "[v6addr]:port" at @addr into @node (@nlen bytes;
 * "" for any address) and @svc (@slen bytes, the port's digits).  Only
 * splits: no lookup, the host part is not checked.  The port must be
 * decimal 0..65535 with no sign.  Errors name @who (the provider, e.g.
 * "verbs") and the address: -EINVAL for a missing, portless or
 * malformed address (an IPv6 address without brackets, a bad port),
 * -ENAMETOOLONG when a part does not fit its buffer.
 */
int rmig_addr_split(const char *who, const char *addr, char *node,
		    size_t nlen, char *svc, size_t slen);

/**
 * Format the IPv4 or IPv6 socket address @sa (@salen bytes) as "host:port"
 * or "[v6addr]:port" into @buf (@len bytes).  Errors name @who: -ENOTCONN
 * for no address (@sa NULL), -EAFNOSUPPORT for another family or a length
 * too short for the family, -ENOSPC when @buf is too small.
 */
int rmig_addr_format(const char *who, const void *sa, size_t salen,
		     char *buf, size_t len);

#endif /* RMIG_ADDR_H */

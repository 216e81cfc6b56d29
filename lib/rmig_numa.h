/* SPDX-License-Identifier: MIT */
/*
 * rmig_numa.h - the NUMA node of channel threads and their message buffers.
 *
 * The node of an RDMA device comes from sysfs:
 *   <root>/class/infiniband/<dev>/device/numa_node, else, for devices
 *   without a device link (rxe, siw), the node of the netdev named in
 *   <root>/class/infiniband/<dev>/parent:
 *   <root>/class/net/<netdev>/device/numa_node; else unknown (-1).
 * <root> is "/sys", or $RMIG_SYSFS_ROOT (tests point it at a fake tree).
 */
#ifndef RMIG_RMIG_NUMA_H
#define RMIG_RMIG_NUMA_H

#include <stddef.h>

#include "core.h"

/** Node of RDMA device @dev under sysfs root @root; -1 when unknown.
 *  @why (may be NULL) says where the answer came from. */
int rmig_numa_device_node_at(const char *root, const char *dev, char *why,
			     size_t whylen);

/** The same under "/sys" or $RMIG_SYSFS_ROOT. */
int rmig_numa_device_node(const char *dev, char *why, size_t whylen);

/** Check a configured node (RMIG_NUMA_AUTO, RMIG_NUMA_NONE or >= 0):
 *  0 or -EINVAL with a message. */
int rmig_numa_check_config(int node);

/** Choose s->numa_node from s->numa_cfg and s->tp->attr.device, and log
 *  it.  -1 means no binding. */
void rmig_numa_choose(struct rmig_session *s);

/** Bind the calling thread to @node (no-op for -1).  0 or -errno. */
int rmig_numa_bind_thread(int node);

/** @len bytes on @node, or anywhere for node -1: page-aligned, zeroed,
 *  not faulted in (each page is where it is first touched, on @node).
 *  Free with rmig_numa_free(p, len, node). */
void *rmig_numa_alloc(size_t len, int node);
void rmig_numa_free(void *p, size_t len, int node);

#endif /* RMIG_RMIG_NUMA_H */

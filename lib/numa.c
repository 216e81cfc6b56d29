/* SPDX-License-Identifier: MIT */
/*
 * numa.c - the RDMA device's NUMA node from sysfs, and binding channel
 * threads and their buffers to a node with libnuma; see rmig_numa.h.
 */
#include "rmig_numa.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Read a small sysfs file into @buf (trailing newline dropped).  0 or -1. */
static int read_small(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

/* Parse a numa_node file: a node >= 0, or -1 (unknown, missing or not a
 * number).  @what says which. */
static int node_file(const char *path, const char **what)
{
	char buf[32], *end;
	long v;

	if (read_small(path, buf, sizeof(buf))) {
		*what = "missing";
		return -1;
	}
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || *end || v > INT_MAX || v < -1) {
		*what = "not a node number";
		return -1;
	}
	if (v < 0) {
		*what = "-1 (no NUMA affinity)";
		return -1;
	}
	*what = "";
	return (int)v;
}

static bool name_ok(const char *n)
{
	if (!*n || strlen(n) > 64 || !strcmp(n, ".") || !strcmp(n, ".."))
		return false;
	for (; *n; n++)
		if (*n == '/' || !isprint((unsigned char)*n))
			return false;
	return true;
}

int rmig_numa_device_node_at(const char *root, const char *dev, char *why,
			     size_t whylen)
{
	char path[PATH_MAX], parent[80], dummy[8];
	const char *what;
	int node;

	if (!why) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	if (!dev || !name_ok(dev)) {
		snprintf(why, whylen, "no RDMA device");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/class/infiniband/%s/device/numa_node",
		 root, dev);
	node = node_file(path, &what);
	if (node >= 0) {
		snprintf(why, whylen, "%s: node %d from %s", dev, node, path);
		return node;
	}
	snprintf(path, sizeof(path), "%s/class/infiniband/%s/parent", root,
		 dev);
	if (read_small(path, parent, sizeof(parent)) || !name_ok(parent)) {
		snprintf(why, whylen, "%s: device numa_node %s, no parent "
			 "netdev", dev, what);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/class/net/%s/device/numa_node", root,
		 parent);
	node = node_file(path, &what);
	if (node >= 0)
		snprintf(why, whylen, "%s: node %d from its netdev %s (%s)",
			 dev, node, parent, path);
	else
		snprintf(why, whylen, "%s: node unknown (netdev %s numa_node "
			 "%s)", dev, parent, what);
	return node;
}

int rmig_numa_device_node(const char *dev, char *why, size_t whylen)
{
	const char *root = getenv("RMIG_SYSFS_ROOT");

	return rmig_numa_device_node_at(root && *root ? root : "/sys", dev,
					why, whylen);
}

int rmig_numa_check_config(int node)
{
	if (node == RMIG_NUMA_AUTO || node == RMIG_NUMA_NONE)
		return 0;
	if (node < 0)
		return rmig_err(-EINVAL, "config: numa_node %d invalid "
				"(RMIG_NUMA_AUTO, RMIG_NUMA_NONE or a node "
				">= 0)", node);
	if (numa_available() < 0)
		return 0; /* nothing will be bound; rmig_numa_choose says so */
	if (node > numa_max_node())
		return rmig_err(-EINVAL, "config: numa_node %d above the "
				"highest node %d of this machine", node,
				numa_max_node());
	return 0;
}

static void set_node(struct rmig_session *s, int node)
{
	/* Under err_lock: stats read it from any thread. */
	pthread_mutex_lock(&s->err_lock);
	s->numa_node = node;
	pthread_mutex_unlock(&s->err_lock);
}

void rmig_numa_choose(struct rmig_session *s)
{
	char why[256 + PATH_MAX];
	int node;

	set_node(s, -1);
	if (s->numa_cfg == RMIG_NUMA_NONE) {
		rmig_log_info("NUMA: no binding (numa_node none)");
		return;
	}
	if (s->numa_cfg >= 0) {
		node = s->numa_cfg;
		snprintf(why, sizeof(why), "node %d from the config", node);
	} else {
		node = rmig_numa_device_node(s->tp->attr.device, why,
					     sizeof(why));
		if (node < 0) {
			rmig_log_info("NUMA: no binding (%s: %s)",
				      s->tp->attr.name, why);
			return;
		}
	}
	if (numa_available() < 0) {
		rmig_log_info("NUMA: no binding: libnuma reports no NUMA "
			      "support (numa_available() < 0); wanted %s",
			      why);
		return;
	}
	if (node > numa_max_node()) {
		rmig_log_info("NUMA: no binding: %s, but the highest node is "
			      "%d", why, numa_max_node());
		return;
	}
	set_node(s, node);
	rmig_log_info("NUMA: channel threads and buffers on %s", why);
}

/* libnuma fills its per-node CPU mask cache lazily, without a lock
 * (numa_node_to_cpus(), called by numa_run_on_node()): channel threads
 * starting together take turns. */
static pthread_mutex_t bind_lock = PTHREAD_MUTEX_INITIALIZER;

int rmig_numa_bind_thread(int node)
{
	int ret = 0;

	if (node < 0)
		return 0;
	pthread_mutex_lock(&bind_lock);
	if (numa_run_on_node(node))
		ret = rmig_err(-errno, "numa_run_on_node(%d): %s", node,
			       strerror(errno));
	pthread_mutex_unlock(&bind_lock);
	return ret;
}

void *rmig_numa_alloc(size_t len, int node)
{
	void *p;

	/* Fresh anonymous pages: zero, and faulted in only where they are
	 * first used (numa_alloc_onnode()'s policy still places them on
	 * @node).  Faulting a channel's 3.5 MiB of message buffers in here
	 * cost milliseconds per channel at connect and accept, while its
	 * messages mostly use the first page of each 64 KiB buffer. */
	if (node >= 0)
		return numa_alloc_onnode(len, node);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void rmig_numa_free(void *p, size_t len, int node)
{
	if (!p)
		return;
	if (node < 0)
		munmap(p, len);
	else
		numa_free(p, len);
}

/* SPDX-License-Identifier: MIT */
/*
 * test_numa.c - the NUMA node of an RDMA device, read from a fake sysfs
 * tree the test builds in a temporary directory: a device with its own
 * numa_node, an rxe-like device found through its parent netdev, missing
 * files, "-1", garbage, unsafe names; the RMIG_SYSFS_ROOT override; the
 * config check against numa_max_node(); and the session's choice (auto,
 * none, explicit).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <numa.h>

#include "core.h"
#include "rmig_numa.h"

static char root[256];

/* mkdir -p of root/@rel's directory, then write @text into root/@rel. */
static void put(const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *p = path + strlen(root) + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST)
			fail_msg("mkdir %s: %s", path, strerror(errno));
		*p = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int rm_tree(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static int setup(void **state)
{
	/* mkdtemp()'s template: the prefix, then six 'X'. */
	size_t n = (size_t)snprintf(root, sizeof(root), "/tmp/rmig-sysfs-");

	memset(root + n, 'X', 6);
	root[n + 6] = '\0';
	if (!mkdtemp(root))
		return -1;
	/* A PCI device with its own node. */
	put("class/infiniband/mlx5_0/device/numa_node", "1\n");
	/* rxe: no device link, a parent netdev with a node. */
	put("class/infiniband/rxe0/parent", "eth3\n");
	put("class/net/eth3/device/numa_node", "0\n");
	/* rxe on a veth: the netdev has no device either. */
	put("class/infiniband/rxe1/parent", "veth0\n");
	/* A device without NUMA affinity, no parent. */
	put("class/infiniband/hfi1_0/device/numa_node", "-1\n");
	/* -1 on the device, the parent knows better. */
	put("class/infiniband/siw0/device/numa_node", "-1\n");
	put("class/infiniband/siw0/parent", "eth5");
	put("class/net/eth5/device/numa_node", "3");
	/* Garbage. */
	put("class/infiniband/bad0/device/numa_node", "zero\n");
	put("class/infiniband/bad1/device/numa_node", "1x\n");
	put("class/infiniband/bad2/device/numa_node", "");
	put("class/infiniband/bad3/parent", "../../etc");
	put("class/infiniband/bad4/device/numa_node", "99999999999999\n");
	put("class/infiniband/bad5/parent", "eth6\n");
	put("class/net/eth6/device/numa_node", "-7\n");
	*state = NULL;
	return 0;
}

static int teardown(void **state)
{
	unsetenv("RMIG_SYSFS_ROOT");
	return rm_tree(root) ? -1 : 0;
}

static int node(const char *dev, char *why, size_t len)
{
	return rmig_numa_device_node_at(root, dev, why, len);
}

static void expect(const char *dev, int want, const char *why_has)
{
	char why[512];
	int got = node(dev, why, sizeof(why));

	if (got != want)
		fail_msg("device %s: node %d, expected %d (%s)", dev ? dev :
			 "(null)", got, want, why);
	if (why_has && !strstr(why, why_has))
		fail_msg("device %s: reason '%s' lacks '%s'", dev ? dev :
			 "(null)", why, why_has);
}

static void test_device_node(void **state)
{
	expect("mlx5_0", 1, "mlx5_0: node 1 from ");
	expect("mlx5_0", 1, "class/infiniband/mlx5_0/device/numa_node");
}

static void test_parent_netdev(void **state)
{
	expect("rxe0", 0, "from its netdev eth3");
	expect("siw0", 3, "from its netdev eth5");
}

static void test_unknown(void **state)
{
	expect("rxe1", -1, "netdev veth0 numa_node missing");
	expect("hfi1_0", -1, "-1 (no NUMA affinity), no parent netdev");
	expect("nosuch0", -1, "device numa_node missing, no parent");
	expect(NULL, -1, "no RDMA device");
	expect("", -1, "no RDMA device");
	expect("..", -1, "no RDMA device");
	expect("a/b", -1, "no RDMA device");
	/* No reason wanted: still answers. */
	assert_int_equal(node("mlx5_0", NULL, 0), 1);
}

static void test_garbage(void **state)
{
	expect("bad0", -1, "not a node number");
	expect("bad1", -1, "not a node number");
	expect("bad2", -1, "not a node number");
	expect("bad3", -1, "no parent netdev");
	expect("bad4", -1, "not a node number");
	expect("bad5", -1, "not a node number");
}

static void test_env_root(void **state)
{
	char why[512];

	setenv("RMIG_SYSFS_ROOT", root, 1);
	assert_int_equal(rmig_numa_device_node("mlx5_0", why, sizeof(why)), 1);
	assert_non_null(strstr(why, root));
	assert_int_equal(rmig_numa_device_node("rxe0", why, sizeof(why)), 0);
}

static void test_check_config(void **state)
{
	assert_int_equal(rmig_numa_check_config(RMIG_NUMA_AUTO), 0);
	assert_int_equal(rmig_numa_check_config(RMIG_NUMA_NONE), 0);
	assert_int_equal(rmig_numa_check_config(-3), -EINVAL);
	assert_non_null(strstr(rmig_last_error(), "numa_node -3 invalid"));
	if (numa_available() < 0) {
		/* Nothing will be bound: any node passes the check. */
		assert_int_equal(rmig_numa_check_config(5), 0);
		return;
	}
	assert_int_equal(rmig_numa_check_config(0), 0);
	assert_int_equal(rmig_numa_check_config(numa_max_node()), 0);
	assert_int_equal(rmig_numa_check_config(numa_max_node() + 1),
			 -EINVAL);
	assert_non_null(strstr(rmig_last_error(), "above the highest node"));
}

/* The session's choice: auto follows the device (bound only to a node
 * this machine has), none and unknown bind nothing, explicit wins. */
static int choose(int cfg, const char *dev)
{
	struct rmig_session s;
	struct rmig_tp tp;

	memset(&s, 0, sizeof(s));
	memset(&tp, 0, sizeof(tp));
	pthread_mutex_init(&s.err_lock, NULL);
	s.numa_cfg = cfg;
	s.tp = &tp;
	snprintf(tp.attr.name, sizeof(tp.attr.name), "test/%s", dev);
	snprintf(tp.attr.device, sizeof(tp.attr.device), "%s", dev);
	rmig_numa_choose(&s);
	pthread_mutex_destroy(&s.err_lock);
	return s.numa_node;
}

static void test_choose(void **state)
{
	bool numa = numa_available() >= 0;
	int max = numa ? numa_max_node() : -1;

	setenv("RMIG_SYSFS_ROOT", root, 1);
	assert_int_equal(choose(RMIG_NUMA_AUTO, "rxe0"), numa ? 0 : -1);
	assert_int_equal(choose(RMIG_NUMA_AUTO, "mlx5_0"),
			 numa && max >= 1 ? 1 : -1);
	assert_int_equal(choose(RMIG_NUMA_AUTO, "rxe1"), -1);
	assert_int_equal(choose(RMIG_NUMA_AUTO, ""), -1);
	assert_int_equal(choose(RMIG_NUMA_NONE, "rxe0"), -1);
	assert_int_equal(choose(0, ""), numa ? 0 : -1);
}

/* Binding and node-local buffers work where libnuma does. */
static void test_bind_alloc(void **state)
{
	int n = numa_available() >= 0 ? 0 : -1;
	unsigned char core[3 * 16];
	uint8_t *p;

	assert_int_equal(rmig_numa_bind_thread(n), 0);
	p = rmig_numa_alloc(3 * 65536, n);
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % 4096, 0);
	/* Not faulted in: each page where it is first touched (a channel's
	 * message buffers, 3.5 MiB, used to be faulted in whole at connect). */
	assert_int_equal(mincore(p, 3 * 65536, core), 0);
	for (size_t i = 0; i < 3 * 16; i++)
		assert_int_equal(core[i] & 1, 0);
	for (size_t i = 0; i < 3 * 65536; i += 4096)
		assert_int_equal(p[i], 0);
	memset(p, 1, 3 * 65536);
	rmig_numa_free(p, 3 * 65536, n);
	assert_int_equal(rmig_numa_bind_thread(-1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_device_node),
		T(test_parent_netdev),
		T(test_unknown),
		T(test_garbage),
		T(test_env_root),
		T(test_check_config),
		T(test_choose),
		T(test_bind_alloc),
#undef T
	};

	return cmocka_run_group_tests_name("numa", tests, NULL, NULL);
}

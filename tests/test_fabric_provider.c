/* SPDX-License-Identifier: MIT */
/*
 * test_fabric_provider.c - the libfabric provider on its own, over one
 * libfabric provider on 127.0.0.1 (prov=verbs: on $RMIG_RXE_ADDR, the RDMA
 * device's address the test VM sets; exit 77 without it) (port 0 only;
 * nothing else is ever
 * addressed).
 *
 *   test_fabric_provider [prov=NAME]
 *
 * NAME (else $RMIG_TEST_FABRIC_PROV, else tcp) is the libfabric provider,
 * e.g. tcp or sockets.  One chosen explicitly that offers nothing rmig can
 * use on this machine makes the program exit 77 (skipped); the default,
 * tcp, must work.
 *
 * Each test gets a fresh pair: a passive domain with a listener and an
 * active domain, one connection between them (accepted on a thread), and
 * receives posted on both sides before the connection is established.
 * The pair, the buffers and checks, and the cases that run the same on
 * every provider are in provider_suite.c (shared with test_verbs_provider).
 *
 * The peer-death test re-executes this program as a separate peer process
 * ("--peer ADDR PROV") and kills it with SIGKILL.
 *
 * Every wait is bounded: polls use timeouts, threads are joined with a
 * deadline, and a stuck test exits instead of hanging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "provider.h"
#include "provider_suite.h"
/* The provider's private header: test_random_keys looks at what the
 * domain granted (mr_mode, key size) to know whether rmig chose the keys. */
#include "../providers/fabric/fabric.h"

#define DEAD_MS 3000     /* a lost peer must be noticed within this */

/* The suite's settings (provider_suite.h). */
const struct rmig_provider_ops *ops = &rmig_fabric_provider;
/* libfabric provider under test (see the top of the file). */
const char *prov = "tcp";
/* The host every address is on, and "<host>:0" to listen on. */
const char *host = "127.0.0.1";
char listen_addr[96] = "127.0.0.1:0";
/* Depth for the next pair_setup (tests run one at a time). */
unsigned depth = DEPTH;
/* Generous bound for anything that should happen. */
const int ps_wait_ms = 5000;
const int ps_par_join_ms = 4 * 5000;
const int ps_par_rounds = 40;
/* sockets enforces its queue size, tcp queues: -EAGAIN is not certain. */
const bool ps_queue_enforced = false;
/* A read with a key that is not a read source's: a remote access error
 * (sockets), which libfabric's verbs reports as FI_EIO (prov_errno 10,
 * IBV_WC_REM_ACCESS_ERR); tcp and net drop the connection instead (main()
 * says which). */
int ps_read_key_err = -EACCES;
/* libfabric's verbs provider registers through its MR cache unless
 * FI_MR_CACHE_MAX_COUNT=0, which the provider sets when the environment
 * does not say (main(), test_mr_cache_off). */
bool ps_mr_cache;
/* FI_MR_CACHE_MAX_COUNT as the test started (NULL: unset). */
static const char *mr_cache_env;

/* ------------------------------------------------------------------ */

/* Once a domain opened, libfabric's registration cache is off unless the
 * environment set it: a key rmig deregisters is dead (docs/security.rst). */
static void test_mr_cache_off(void **state)
{
	const char *v = getenv("FI_MR_CACHE_MAX_COUNT");

	(void)state;
	assert_non_null(v);
	if (!mr_cache_env)
		assert_string_equal(v, "0");
	else
		assert_string_equal(v, mr_cache_env);
}

static void test_domain_attr(void **state)
{
	struct pair *p = *state;
	char peer[128], want[64];

	snprintf(want, sizeof(want), "fabric/%s", prov);
	assert_string_equal(p->pas.attr.name, want);
	assert_string_equal(p->act.attr.name, want);
	assert_true(p->act.attr.max_msg_size >= MSG);
	assert_true(p->act.attr.max_iov >= 1);
	assert_int_equal(p->act.attr.max_tx, DEPTH);
	assert_int_equal(p->act.attr.max_rx, DEPTH);
	/* Reads take transmit slots: as many as writes. */
	assert_int_equal(p->act.attr.max_read, DEPTH);
	assert_int_equal(strncmp(p->name, host, strlen(host)), 0);
	assert_int_equal(p->name[strlen(host)], ':');
	assert_int_not_equal(atoi(p->name + strlen(host) + 1), 0);
	CHECK_OK(ops->conn_peer_name(p->act.conn, peer, sizeof(peer)));
	assert_string_equal(peer, p->name);
	CHECK_OK(ops->conn_peer_name(p->pas.conn, peer, sizeof(peer)));
	assert_int_equal(strncmp(peer, host, strlen(host)), 0);
	assert_int_equal(peer[strlen(host)], ':');
}

static void test_bad_params(void **state)
{
	static const char *const bad[] = { "127.0.0.1", "127.0.0.1:99999",
					   "::1:5", "[::1]5", "127.0.0.1:x" };
	struct rmig_prov_params p = { .passive = true, .rx_depth = 4,
				      .tx_depth = 4 };
	struct rmig_prov_domain *d = NULL;
	struct rmig_prov_attr attr;
	int r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.address = bad[i];
		rmig_err_clear();
		r = ops->domain_open(&p, &d, &attr);
		assert_int_equal(r, -EINVAL);
		assert_non_null(strstr(rmig_err_msg(), bad[i]));
	}
	p.address = "127.0.0.1:0";
	p.subprovider = "no-such-provider";
	rmig_err_clear();
	r = ops->domain_open(&p, &d, &attr);
	assert_true(r < 0);
	assert_non_null(strstr(rmig_err_msg(), "no-such-provider"));
	assert_null(d);
}

static void test_listen_timeout(void **state)
{
	struct pair *p = *state;
	struct rmig_prov_conn *c = NULL;
	int64_t t0 = now_ms();
	int r = ops->listen_get(p->l, 200, &c);

	assert_int_equal(r, -ETIMEDOUT);
	assert_null(c);
	assert_true(now_ms() - t0 >= 150);
	assert_true(now_ms() - t0 < 2000);
	assert_true(strlen(rmig_err_msg()) > 0);
}

/* Close @closer's connection; @other's poll must fail promptly. */
static void check_close_noticed(struct side *closer, struct side *other)
{
	struct rmig_cqe cqe;
	int64_t t0;
	int r;

	ops->conn_close(closer->conn);
	closer->conn = NULL;
	t0 = now_ms();
	do {
		r = ops->poll(other->conn, &cqe, 1, DEAD_MS);
	} while (r > 0 && now_ms() - t0 < DEAD_MS);
	if (r >= 0)
		fail_msg("poll still %d after %lld ms", r,
			 (long long)(now_ms() - t0));
	assert_true(now_ms() - t0 < DEAD_MS);
	assert_true(strlen(rmig_err_msg()) > 0);
	printf("# noticed in %lld ms: %d: %s\n", (long long)(now_ms() - t0), r,
	       rmig_err_msg());
	/* It stays failed, and posts fail too. */
	assert_int_equal(ops->poll(other->conn, &cqe, 1, 0), r);
	assert_true(prov_send(ops, other->conn, send_slot(other, 0), 1, other->mr, 0,
			      NULL) < 0);
}

static void test_close_active(void **state)
{
	struct pair *p = *state;

	check_close_noticed(&p->act, &p->pas);
}

static void test_close_passive(void **state)
{
	struct pair *p = *state;

	check_close_noticed(&p->pas, &p->act);
}

/*
 * Memory keys rmig chooses (providers without FI_MR_PROV_KEY: tcp, sockets)
 * are unguessable: two registrations of one domain get distinct keys, and
 * neither is a small counter value (the keys used to be 1, 2, 3...: a peer
 * that never passed the handshake could count its way into guest RAM).
 *
 * A key is random above its low 16 bits (rfab_random_key), so with the
 * 8-byte keys of tcp a correct key is below 2^16 with probability 2^-48,
 * and two keys share their random part with probability 2^-48: a false
 * failure is negligible.
 */
static void test_random_keys(void **state)
{
	struct pair *p = *state;
	const struct rfab_domain *dom = (const void *)p->pas.dom;
	size_t ksz = dom->info->domain_attr->mr_key_size;
	uint8_t *buf[2];
	struct rmig_prov_mr *mr[2];
	uint64_t k[2];

	if (!strcmp(prov, "tcp")) {
		/* What this test relies on for tcp: rmig picks the keys, and
		 * they are 8 bytes wide. */
		assert_int_equal(dom->mr_mode & FI_MR_PROV_KEY, 0);
		assert_int_equal(ksz, 8);
	} else if ((dom->mr_mode & FI_MR_PROV_KEY) || ksz < 8) {
		printf("# %s: keys chosen by the provider or %zu bytes wide: "
		       "key test not applicable\n", prov, ksz);
		return;
	}
	for (int i = 0; i < 2; i++) {
		buf[i] = calloc(1, 2 * MSG);
		assert_non_null(buf[i]);
		/* As the destination registers guest RAM: remote write. */
		CHECK_OK(ops->mr_reg(p->pas.dom, buf[i], 2 * MSG,
				     RMIG_MR_WRITE_TARGET,
				     &mr[i]));
		k[i] = mr[i]->rkey;
	}
	printf("# %s keys: 0x%016llx 0x%016llx (message buffers: 0x%016llx)"
	       "\n", prov, (unsigned long long)k[0], (unsigned long long)k[1],
	       (unsigned long long)p->pas.mr->rkey);
	/* Deregister first: a failed check must not leave the domain busy. */
	for (int i = 0; i < 2; i++) {
		ops->mr_dereg(mr[i]);
		free(buf[i]);
	}
	if (k[0] == k[1])
		fail_msg("two registrations got the same key 0x%llx",
			 (unsigned long long)k[0]);
	for (int i = 0; i < 2; i++)
		if (k[i] < (1ull << 16))
			fail_msg("registration %d got key 0x%llx, below 2^16: "
				 "a guessable counter value", i,
				 (unsigned long long)k[i]);
	/* Not one random base plus a counter either: the random parts
	 * differ (else one key would give away the next). */
	if ((k[0] >> 16) == (k[1] >> 16))
		fail_msg("keys 0x%llx and 0x%llx differ only in the low 16 "
			 "bits", (unsigned long long)k[0],
			 (unsigned long long)k[1]);
}

/* A port on the host with nobody listening (bound, then released). */
static int unused_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, host, &sa.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void test_connect_refused(void **state)
{
	struct side s = { 0 };
	char addr[64];
	int64_t t0;
	int r;

	(void)state;
	snprintf(addr, sizeof(addr), "%s:%d", host, unused_port());
	open_side(&s, addr, false);
	CHECK_OK(ops->conn_create(s.dom, &s.conn));
	post_recvs(&s);
	rmig_err_clear();
	t0 = now_ms();
	r = ops->conn_establish(s.conn, WAIT_MS);
	printf("# connect to %s: %d: %s\n", addr, r, rmig_err_msg());
	assert_true(r < 0);
	assert_true(now_ms() - t0 < WAIT_MS);
	assert_non_null(strstr(rmig_err_msg(), addr));
	close_side(&s);
}

/* ------------------------------------------------------------------ */
/* A peer in another process, killed with SIGKILL.                     */

/* The peer: connect to @addr, send one message, then wait to be killed. */
static int peer_main(const char *addr)
{
	struct side s = { 0 };
	struct rmig_cqe cqe;
	int r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(30);
	{
		struct rmig_prov_params p = { .address = addr, .passive = false,
					      .subprovider = prov,
					      .rx_depth = DEPTH,
					      .tx_depth = DEPTH };

		if (ops->domain_open(&p, &s.dom, &s.attr) < 0)
			goto fail;
	}
	s.buf = calloc(2 * NSLOT, MSG);
	if (!s.buf || ops->mr_reg(s.dom, s.buf, 2 * NSLOT * MSG,
				  RMIG_MR_MSG_BUF, &s.mr) < 0 ||
	    ops->conn_create(s.dom, &s.conn) < 0)
		goto fail;
	for (int i = 0; i < NSLOT; i++)
		if (ops->post_recv(s.conn, recv_slot(&s, i), MSG, s.mr, NULL) < 0)
			goto fail;
	if (ops->conn_establish(s.conn, WAIT_MS) < 0)
		goto fail;
	strcpy(send_slot(&s, 0), "peer ready");
	if (prov_send(ops, s.conn, send_slot(&s, 0), 11, s.mr, 42, NULL) < 0)
		goto fail;
	for (;;) { /* keep the connection busy-free until killed */
		r = ops->poll(s.conn, &cqe, 1, 1000);
		if (r < 0)
			goto fail;
	}
fail:
	fprintf(stderr, "peer: %s\n", rmig_err_msg());
	return 1;
}

static void test_peer_killed(void **state)
{
	struct side s = { 0 };
	struct rmig_prov_listener *l;
	struct killer k = { 0 };
	struct rmig_cqe cqe;
	char name[128];
	pthread_t t;
	int r, st;

	(void)state;
	open_side(&s, listen_addr, true);
	CHECK_OK(ops->listen(s.dom, &l));
	CHECK_OK(ops->listen_name(l, name, sizeof(name)));
	k.pid = fork();
	assert_true(k.pid >= 0);
	if (k.pid == 0) {
		execl("/proc/self/exe", "test_fabric_provider", "--peer", name,
		      prov, (char *)NULL);
		_exit(127);
	}
	r = ops->listen_get(l, WAIT_MS, &s.conn);
	if (r < 0) {
		kill(k.pid, SIGKILL);
		waitpid(k.pid, NULL, 0);
		fail_msg("listen_get: %d: %s", r, rmig_err_msg());
	}
	/* One receive only: once it is used, nothing is posted, so only the
	 * connection's EQ (FI_SHUTDOWN) can tell that the peer died. */
	CHECK_OK(ops->post_recv(s.conn, recv_slot(&s, 0), MSG, s.mr,
				recv_slot(&s, 0)));
	CHECK_OK(ops->conn_establish(s.conn, WAIT_MS));
	poll_n(s.conn, &cqe, 1);
	assert_int_equal(cqe.op, RMIG_CQE_RECV);
	assert_int_equal(cqe.imm, 42);
	assert_string_equal(cqe.ctx, "peer ready");

	atomic_init(&k.done, false); /* before the killer thread exists */
	assert_int_equal(pthread_create(&t, NULL, killer_main, &k), 0);
	r = ops->poll(s.conn, &cqe, 1, -1); /* must not hang */
	join_or_die(t, 2000, "killer thread");
	/* Acquire: pairs with the release store in killer_main(). */
	assert_true(atomic_load_explicit(&k.done, memory_order_acquire));
	printf("# killed peer noticed %lld ms after SIGKILL: %d: %s\n",
	       (long long)(now_ms() - k.killed_at), r, rmig_err_msg());
	assert_int_equal(r, -ECONNRESET);
	assert_true(now_ms() - k.killed_at < DEAD_MS);
	assert_int_equal(waitpid(k.pid, &st, 0), k.pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_true(prov_send(ops, s.conn, send_slot(&s, 0), 1, s.mr, 0, NULL) < 0);
	ops->listen_close(l);
	close_side(&s);
}

/* True (with a message) when the chosen provider offers no endpoint rmig
 * can use here; any other failure is left to the tests to report. */
static bool provider_missing(void)
{
	struct rmig_prov_params p = { .address = listen_addr,
				      .subprovider = prov, .passive = true,
				      .rx_depth = DEPTH, .tx_depth = DEPTH };
	struct rmig_prov_domain *d = NULL;
	struct rmig_prov_attr attr;
	int r = ops->domain_open(&p, &d, &attr);

	if (r == -ENODEV) {
		printf("# skipped: %s\n", rmig_err_msg());
		return true;
	}
	if (!r)
		ops->domain_close(d);
	return false;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test_setup_teardown(test_domain_attr, pair_setup,
						pair_teardown),
		cmocka_unit_test(test_mr_cache_off),
		cmocka_unit_test_setup_teardown(test_listen_timeout, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_send_both_ways, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_many_messages, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_write_then_send,
						pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_signaled_write, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_wake, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_close_active, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_close_passive, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_writes_beyond_depth,
						pair_setup_small, pair_teardown),
		cmocka_unit_test_setup_teardown(test_batch_beyond_depth,
						pair_setup_small, pair_teardown),
		cmocka_unit_test_setup_teardown(test_batch_post, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_read, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_read_beyond_max,
						pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_read_write_target_key,
						pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_read_stale_key, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_read_from_read_only,
						pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_parallel_conns, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_random_keys, pair_setup,
						pair_teardown),
		cmocka_unit_test(test_no_fd_leak),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_peer_killed),
	};

	const char *env = getenv("RMIG_TEST_FABRIC_PROV");
	bool chosen = false;

	if (argc == 4 && !strcmp(argv[1], "--peer")) {
		prov = argv[3];
		return peer_main(argv[2]);
	}
	if (env && *env) {
		prov = env;
		chosen = true;
	}
	if (argc == 2 && !strncmp(argv[1], "prov=", 5) && argv[1][5]) {
		prov = argv[1] + 5;
		chosen = true;
	} else if (argc != 1) {
		fprintf(stderr, "usage: test_fabric_provider [prov=NAME]\n");
		return 2;
	}
	if (!strcmp(prov, "verbs")) {
		/* libfabric's verbs provider needs an RDMA device's address. */
		host = getenv("RMIG_RXE_ADDR");
		if (!host || !*host || strchr(host, ':')) {
			printf("# skipped: prov=verbs needs RMIG_RXE_ADDR, the "
			       "IPv4 address of an RDMA device (tests/vm/rxe-vm.sh "
			       "sets it)\n");
			return 77;
		}
		snprintf(listen_addr, sizeof(listen_addr), "%s:0", host);
	}
	printf("# libfabric provider: %s\n", prov);
	mr_cache_env = getenv("FI_MR_CACHE_MAX_COUNT");
	/* tcp and net answer a read with a bad key by closing the
	 * connection: the reader sees it reset. */
	if (!strcmp(prov, "tcp") || !strcmp(prov, "net"))
		ps_read_key_err = -ECONNRESET;
	if (!strcmp(prov, "verbs")) {
		const char *cnt = mr_cache_env;

		ps_read_key_err = -EIO;
		/* The provider turns the cache off unless the environment
		 * set it (fabric_domain.c: mr_cache_off()). */
		ps_mr_cache = cnt && strcmp(cnt, "0");
	}
	/* Last resort below the ctest TIMEOUT (verbs: the VM runs under TCG). */
	alarm(strcmp(prov, "verbs") ? 55 : 280);
	if (chosen && provider_missing())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * test_auto.c - transport auto on this host, over real libfabric tcp on
 * 127.0.0.1 (there is no RDMA device here):
 *   - both sides created with the public constructors: the transport is
 *     fabric/tcp on both, and the log says why verbs was not used;
 *   - with the test's "verbs" mock failing domain_open with -ENODEV: the
 *     source falls back to fabric/tcp and logs the mock's error text;
 *   - an auto destination listening with both (mock verbs that opens, and
 *     real tcp on the same port number): a fabric source is served over
 *     tcp, an auto source with a working "verbs" over verbs;
 *   - an auto source whose "verbs" opens but whose first connection is
 *     refused (a destination listening with transport fabric only) or
 *     times out: the whole session falls back to tcp, the log says why,
 *     and no mock object is left; a failure on the second channel, or of
 *     another kind (-ECONNRESET), does not fall back.
 * With the argument "rxe" (label rxe: on a host with an RDMA device, or in
 * the soft-RoCE VM, at $RMIG_RXE_ADDR), the real providers only:
 *   - auto on both sides picks verbs/<device> on both;
 *   - an auto destination serves a fabric (tcp) source over tcp and a verbs
 *     source over verbs: it listened with both on one port;
 *   - an auto source against a destination listening with transport fabric
 *     only: verbs opens (the route resolves) but rdma_cm's connection is
 *     refused, and the source falls back to tcp.
 * Each migration moves 64 pages over 2 channels and compares them.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core.h"
#include "log_capture.h"
#include "mock_provider.h"
#include "rmig/rmig.h"
#include "test_secret.h"

#define PS 4096u
#define PAGES 64u

/* Where both sides meet: 127.0.0.1, or $RMIG_RXE_ADDR with "rxe".  Set in
 * main() before any test runs. */
static const char *host = "127.0.0.1";
static char verbs_name[64] = "verbs/";

struct dest_run {
	rmig_dest *d;
	int ret;
	char err[RMIG_ERR_MSG_MAX];
};

static void *dest_main(void *arg)
{
	struct dest_run *r = arg;

	r->ret = rmig_dest_accept(r->d, 20000);
	if (!r->ret)
		r->ret = rmig_dest_finish(r->d);
	if (r->ret)
		snprintf(r->err, sizeof(r->err), "%s", rmig_last_error());
	return NULL;
}

enum kind { PUBLIC, MOCK_VERBS };

static void config(struct rmig_config *c, const char *addr,
		   enum rmig_transport t)
{
	memset(c, 0, sizeof(*c));
	c->field_mask = RMIG_CFG_ADDRESS | RMIG_CFG_CHANNELS |
			RMIG_CFG_TRANSPORT | RMIG_CFG_CONNECT_TIMEOUT;
	c->address = addr;
	c->channels = 2;
	c->transport = t;
	c->connect_timeout_ms = 10000;
	test_cfg_auth(c);
}

/* The destination's allowed_sources, when a test sets it. */
static const char *dest_allowed;

/* A destination listening on @host: @dk says how it is created, @dtt its
 * transport. */
static void dest_up(struct dest_run *r, enum kind dk,
		    enum rmig_transport dtt, uint8_t *dm, char *addr,
		    size_t addrlen)
{
	const struct rmig_provider_ops *fab = rmig_provider_find("fabric");
	struct rmig_config c;
	char listen[128];

	assert_non_null(fab);
	snprintf(listen, sizeof(listen), "%s:0", host);
	config(&c, listen, dtt);
	if (dest_allowed) {
		c.field_mask |= RMIG_CFG_ALLOWED_SOURCES;
		c.allowed_sources = dest_allowed;
	}
	if (dk == PUBLIC)
		assert_int_equal(rmig_dest_create(&c, &r->d), 0);
	else
		assert_int_equal(rmig_dest_create_auto(
			&c, &rmig_mock_verbs_provider, fab, &r->d), 0);
	assert_true(rmig_dest_add_block(r->d, "pc.ram", dm, PAGES * PS) >= 0);
	if (rmig_dest_listen(r->d))
		fail_msg("listen: %s", rmig_last_error());
	assert_int_equal(rmig_dest_get_address(r->d, addr, addrlen), 0);
}

/* One migration; @sk/@dk: how each side is created, @stt/@dtt their
 * configured transports; @st/@dt: the transports each side's stats must
 * report. */
static void migrate(enum kind sk, enum rmig_transport stt, enum kind dk,
		    enum rmig_transport dtt, const char *st, const char *dt)
{
	const struct rmig_provider_ops *fab = rmig_provider_find("fabric");
	uint8_t *sm = aligned_alloc(PS, PAGES * PS);
	uint8_t *dm = aligned_alloc(PS, PAGES * PS);
	struct dest_run r = { 0 };
	struct rmig_config c;
	struct rmig_stats ss = { .size = sizeof(ss) },
			  ds = { .size = sizeof(ds) };
	char addr[128];
	rmig_src *s = NULL;
	pthread_t t;

	assert_non_null(fab);
	assert_non_null(sm);
	assert_non_null(dm);
	for (size_t i = 0; i < PAGES * PS; i++)
		sm[i] = (uint8_t)(i * 7 + i / PS);
	memset(dm, 0x5a, PAGES * PS);

	dest_up(&r, dk, dtt, dm, addr, sizeof(addr));
	assert_int_equal(pthread_create(&t, NULL, dest_main, &r), 0);

	config(&c, addr, stt);
	if (sk == PUBLIC)
		assert_int_equal(rmig_src_create(&c, &s), 0);
	else
		assert_int_equal(rmig_src_create_auto(
			&c, &rmig_mock_verbs_provider, fab, &s), 0);
	assert_true(rmig_src_add_block(s, "pc.ram", sm, PAGES * PS) >= 0);
	if (rmig_src_connect(s))
		fail_msg("connect to %s: %s", addr, rmig_last_error());
	for (unsigned i = 0; i < PAGES; i++)
		assert_int_equal(rmig_src_queue_page(s, 0, (uint64_t)i * PS),
				 0);
	if (rmig_src_finish(s))
		fail_msg("finish: %s", rmig_last_error());
	pthread_join(t, NULL);
	if (r.ret)
		fail_msg("destination: %s", r.err);
	assert_memory_equal(sm, dm, PAGES * PS);
	assert_int_equal(rmig_src_get_stats(s, &ss), 0);
	assert_int_equal(rmig_dest_get_stats(r.d, &ds), 0);
	assert_string_equal(ss.transport, st);
	assert_string_equal(ds.transport, dt);
	rmig_src_destroy(s);
	rmig_dest_destroy(r.d);
	free(sm);
	free(dm);
}

static int setup(void **state)
{
	log_capture_start();
	return 0;
}

static int teardown(void **state)
{
	rmig_set_log_handler(NULL, NULL, RMIG_LOG_WARN);
	dest_allowed = NULL;
	mock_verbs_set_open_error(0);
	mock_clear_faults();
	return 0;
}

/* A destination that takes sources from a list of hosts, this one among
 * them (spaces, IPv6 and IPv4 mixed). */
static void test_allowed_sources(void **state)
{
	dest_allowed = "192.0.2.9, 2001:db8::1,127.0.0.1";
	migrate(PUBLIC, RMIG_TRANSPORT_FABRIC, PUBLIC, RMIG_TRANSPORT_FABRIC,
		"fabric/tcp", "fabric/tcp");
}

/* The public constructors: no RDMA device on this host, so tcp. */
static void test_auto_host(void **state)
{
	migrate(PUBLIC, RMIG_TRANSPORT_AUTO, PUBLIC, RMIG_TRANSPORT_AUTO,
		"fabric/tcp", "fabric/tcp");
	log_expect("transport auto: ");
	if (rmig_provider_find("verbs")) {
		/* The verbs provider is built: it was tried and said why it
		 * cannot serve. */
		log_expect("transport auto: verbs unavailable for 127.0.0.1:");
		log_expect("falling back to fabric");
		log_expect("transport auto: listening with fabric/tcp only; "
			   "verbs unavailable");
	} else {
		log_expect("verbs not tried (this build has no verbs "
			   "provider); using fabric");
		log_expect("transport auto: listening with fabric/tcp only "
			   "(this build has no verbs provider)");
	}
}

/* "verbs" fails with -ENODEV: tcp, and the reason in the log. */
static void test_auto_no_device(void **state)
{
	mock_verbs_set_open_error(-ENODEV);
	migrate(MOCK_VERBS, RMIG_TRANSPORT_AUTO, MOCK_VERBS,
		RMIG_TRANSPORT_AUTO, "fabric/tcp", "fabric/tcp");
	log_expect("transport auto: verbs unavailable for 127.0.0.1:");
	log_expect("(No such device: mock verbs domain_open for 127.0.0.1:");
	log_expect("no RDMA device found); falling back to fabric");
	log_expect("transport auto: using fabric/tcp");
}

/* A destination listening with both serves a fabric source over tcp... */
static void test_auto_dest_both_fabric_source(void **state)
{
	migrate(PUBLIC, RMIG_TRANSPORT_FABRIC, MOCK_VERBS,
		RMIG_TRANSPORT_AUTO, "fabric/tcp", "fabric/tcp");
	log_expect("with both fabric/tcp and verbs/mock0");
	log_expect("the source came over fabric/tcp; closed the verbs/mock0 "
		   "listener");
}

/* ... and an auto source whose verbs works over verbs. */
static void test_auto_dest_both_verbs_source(void **state)
{
	migrate(MOCK_VERBS, RMIG_TRANSPORT_AUTO, MOCK_VERBS,
		RMIG_TRANSPORT_AUTO, "verbs/mock0", "verbs/mock0");
	log_expect("transport auto: using verbs/mock0 (the verbs provider "
		   "opened a domain for 127.0.0.1:");
	log_expect("the source came over verbs/mock0; closed the fabric/tcp "
		   "listener");
}

/* "verbs" opens a domain (its route resolves), but nobody listens over it:
 * the destination listens with transport fabric only.  The first
 * connection is refused, and the whole session goes over tcp. */
static void test_auto_verbs_refused(void **state)
{
	mock_verbs_set_open_error(0);
	migrate(MOCK_VERBS, RMIG_TRANSPORT_AUTO, PUBLIC, RMIG_TRANSPORT_FABRIC,
		"fabric/tcp", "fabric/tcp");
	log_expect("transport auto: using verbs/mock0 (the verbs provider "
		   "opened a domain for 127.0.0.1:");
	log_expect("but its first connection failed (Connection refused: "
		   "channel 0 to 127.0.0.1:");
	log_expect("falling back to fabric for the whole session");
	log_expect("transport auto: using fabric/tcp");
	/* The verbs domain, its registrations and connection are gone. */
	assert_int_equal(mock_live_objects(), 0);
}

/* The same when the connection times out. */
static void test_auto_verbs_timeout(void **state)
{
	mock_verbs_set_open_error(0);
	assert_int_equal(mock_fail_after("establish", 1, -ETIMEDOUT), 0);
	migrate(MOCK_VERBS, RMIG_TRANSPORT_AUTO, PUBLIC, RMIG_TRANSPORT_FABRIC,
		"fabric/tcp", "fabric/tcp");
	log_expect("but its first connection failed (Connection timed out: "
		   "channel 0 to 127.0.0.1:");
	log_expect("falling back to fabric for the whole session");
	assert_int_equal(mock_live_objects(), 0);
}

/* An auto source with the mock "verbs" whose connect must fail with @want
 * (message containing @msg), without falling back. */
static void connect_fails(enum kind dk, enum rmig_transport dtt, int want,
			  const char *msg)
{
	const struct rmig_provider_ops *fab = rmig_provider_find("fabric");
	uint8_t *sm = aligned_alloc(PS, PAGES * PS);
	uint8_t *dm = aligned_alloc(PS, PAGES * PS);
	struct dest_run r = { 0 };
	struct rmig_config c;
	char addr[128];
	rmig_src *s = NULL;
	pthread_t t;
	int ret;

	assert_non_null(sm);
	assert_non_null(dm);
	memset(sm, 1, PAGES * PS);
	dest_up(&r, dk, dtt, dm, addr, sizeof(addr));
	assert_int_equal(pthread_create(&t, NULL, dest_main, &r), 0);
	config(&c, addr, RMIG_TRANSPORT_AUTO);
	assert_int_equal(rmig_src_create_auto(&c, &rmig_mock_verbs_provider,
					      fab, &s), 0);
	assert_true(rmig_src_add_block(s, "pc.ram", sm, PAGES * PS) >= 0);
	ret = rmig_src_connect(s);
	if (ret != want)
		fail_msg("connect returned %d, expected %d: %s", ret, want,
			 rmig_last_error());
	if (!strstr(rmig_last_error(), msg))
		fail_msg("error '%s' lacks '%s'", rmig_last_error(), msg);
	assert_int_equal(rmig_src_state(s), RMIG_STATE_FAILED);
	rmig_src_destroy(s);
	rmig_dest_cancel(r.d);
	pthread_join(t, NULL);
	rmig_dest_destroy(r.d);
	log_expect("transport auto: using verbs/mock0");
	log_expect_not("falling back");
	assert_int_equal(mock_live_objects(), 0);
	free(sm);
	free(dm);
}

/* Channel 0 is up over verbs, channel 1 is refused: no fallback (one
 * transport a session). */
static void test_auto_no_fallback_after_first(void **state)
{
	mock_verbs_set_open_error(0);
	/* Only sources call conn_create: the second is channel 1's. */
	assert_int_equal(mock_fail_after("conn_create", 2, -ECONNREFUSED), 0);
	connect_fails(MOCK_VERBS, RMIG_TRANSPORT_AUTO, -ECONNREFUSED,
		      "channel 1 to 127.0.0.1:");
}

/* A failure other than refused, timed out or unreachable is reported, not
 * hidden behind a fallback. */
static void test_auto_no_fallback_other_error(void **state)
{
	mock_verbs_set_open_error(0);
	assert_int_equal(mock_fail_after("establish", 1, -ECONNRESET), 0);
	connect_fails(PUBLIC, RMIG_TRANSPORT_FABRIC, -ECONNRESET,
		      "channel 0 to 127.0.0.1:");
}

/* On an RDMA device: auto picks verbs on both sides. */
static void test_auto_rxe(void **state)
{
	migrate(PUBLIC, RMIG_TRANSPORT_AUTO, PUBLIC, RMIG_TRANSPORT_AUTO,
		verbs_name, verbs_name);
	log_expect("transport auto: using verbs/");
}

/* An auto destination there listens with both: a tcp source finds it... */
static void test_auto_rxe_dest_fabric_source(void **state)
{
	migrate(PUBLIC, RMIG_TRANSPORT_FABRIC, PUBLIC, RMIG_TRANSPORT_AUTO,
		"fabric/tcp", "fabric/tcp");
	log_expect("the source came over fabric/tcp; closed the verbs/");
}

/* An auto source against a destination listening with libfabric only, on
 * the RDMA device's address: verbs opens (the route resolves to the
 * device), rdma_cm's connection is refused, the session goes over tcp. */
static void test_auto_rxe_fabric_dest(void **state)
{
	migrate(PUBLIC, RMIG_TRANSPORT_AUTO, PUBLIC, RMIG_TRANSPORT_FABRIC,
		"fabric/tcp", "fabric/tcp");
	log_expect("transport auto: using verbs/");
	log_expect("but its first connection failed (");
	log_expect("falling back to fabric for the whole session");
	log_expect("transport auto: using fabric/tcp");
}

/* ... and so does a verbs source. */
static void test_auto_rxe_dest_verbs_source(void **state)
{
	migrate(PUBLIC, RMIG_TRANSPORT_VERBS, PUBLIC, RMIG_TRANSPORT_AUTO,
		verbs_name, verbs_name);
	log_expect("the source came over verbs/");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_allowed_sources),
		T(test_auto_host),
		T(test_auto_no_device),
		T(test_auto_dest_both_fabric_source),
		T(test_auto_dest_both_verbs_source),
		T(test_auto_verbs_refused),
		T(test_auto_verbs_timeout),
		T(test_auto_no_fallback_after_first),
		T(test_auto_no_fallback_other_error),
	};
	const struct CMUnitTest rxe_tests[] = {
		T(test_auto_rxe),
		T(test_auto_rxe_dest_fabric_source),
		T(test_auto_rxe_dest_verbs_source),
		T(test_auto_rxe_fabric_dest),
#undef T
	};
	const char *a = getenv("RMIG_RXE_ADDR"), *dev = getenv("RMIG_RXE_DEV");

	if (argc < 2)
		return cmocka_run_group_tests_name("auto", tests, NULL, NULL);
	if (argc != 2 || strcmp(argv[1], "rxe")) {
		fprintf(stderr, "usage: %s [rxe]\n", argv[0]);
		return 2;
	}
	if (!a || !*a || strchr(a, ':')) {
		printf("SKIP: RMIG_RXE_ADDR (an IPv4 address of the RDMA "
		       "device) is not set: run under tests/vm/rxe-vm.sh or on "
		       "a host with RDMA\n");
		return 77;
	}
	host = a;
	/* Without RMIG_RXE_DEV only the "verbs/" prefix is known: migrate()
	 * then compares against "verbs/", which fails, so require it. */
	if (!dev || !*dev) {
		fprintf(stderr, "RMIG_RXE_DEV (the RDMA device's name) is not "
			"set\n");
		return 2;
	}
	snprintf(verbs_name, sizeof(verbs_name), "verbs/%s", dev);
	return cmocka_run_group_tests_name("auto on an RDMA device", rxe_tests,
					   NULL, NULL);
}

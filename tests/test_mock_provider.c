/* SPDX-License-Identifier: MIT */
/*
 * test_mock_provider.c - the in-process mock provider's own semantics, so
 * that core tests built on it can trust it: registrations and remote keys,
 * listen/connect pairing (refused, timed out, rejected), sends delivered in
 * order into posted receives, receiver-not-ready and short buffers failing
 * both ends with -EPROTO, writes landing before a later send, remote access
 * errors at the writer's poll, send/receive queue limits, poll timeouts and
 * sticky wake-ups, close resetting the peer, fault injection, write delay
 * and counters, and a threaded windowed write+send stream (run it under
 * TSan: the mock must give exactly the happens-before edges of RC).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "unit_util.h"
#include "error.h"
#include "mock_provider.h"
#include "provider.h"
#include "prov_post.h"

static const struct rmig_provider_ops *const P = &rmig_mock_provider;

#define MSG_SLOTS 16
#define MSG_SIZE 4096
#define RAM_PAGES 16
#define PAGE 4096

#define assert_err_has(substr)                                               \
	do {                                                                 \
		const char *m_ = rmig_last_error();                          \
		if (!strstr(m_, (substr)))                                   \
			fail_msg("error message '%s' lacks '%s'", m_,        \
				 (substr));                                  \
	} while (0)

/* ------------------------------------------------------------------ */
/* A connected pair                                                    */

struct end {
	struct rmig_prov_domain *dom;
	struct rmig_prov_attr attr;
	struct rmig_prov_conn *c;
	uint8_t *msg; /* MSG_SLOTS message buffers, one registration */
	struct rmig_prov_mr *msg_mr;
	uint8_t *ram; /* RAM_PAGES pages, remotely writable */
	struct rmig_prov_mr *ram_mr;
};

struct pair {
	char addr[64];
	struct end s, d;
	struct rmig_prov_listener *l;
};

static unsigned addr_seq;

static void end_open(struct end *e, const char *addr, bool passive,
		     unsigned rx, unsigned tx)
{
	struct rmig_prov_params p = { .address = addr, .passive = passive,
				      .rx_depth = rx, .tx_depth = tx };

	memset(e, 0, sizeof(*e));
	assert_int_equal(P->domain_open(&p, &e->dom, &e->attr), 0);
	e->msg = aligned_alloc(PAGE, MSG_SLOTS * MSG_SIZE);
	e->ram = aligned_alloc(PAGE, RAM_PAGES * PAGE);
	assert_non_null(e->msg);
	assert_non_null(e->ram);
	memset(e->msg, 0, MSG_SLOTS * MSG_SIZE);
	memset(e->ram, 0, RAM_PAGES * PAGE);
	assert_int_equal(P->mr_reg(e->dom, e->msg, MSG_SLOTS * MSG_SIZE,
				   RMIG_MR_MSG_BUF, &e->msg_mr), 0);
	/* As rmig does: the listening side's RAM is written into, the
	 * connecting side's written from. */
	assert_int_equal(P->mr_reg(e->dom, e->ram, RAM_PAGES * PAGE,
				   passive ? RMIG_MR_WRITE_TARGET :
					     RMIG_MR_WRITE_SOURCE,
				   &e->ram_mr), 0);
}

static void end_close(struct end *e)
{
	if (e->c)
		P->conn_close(e->c);
	if (e->msg_mr)
		P->mr_dereg(e->msg_mr);
	if (e->ram_mr)
		P->mr_dereg(e->ram_mr);
	if (e->dom)
		P->domain_close(e->dom);
	free(e->msg);
	free(e->ram);
	memset(e, 0, sizeof(*e));
}

struct accept_arg {
	struct rmig_prov_listener *l;
	int timeout_ms;
	unsigned delay_ms;  /* between listen_get and establish */
	bool reject;        /* close instead of establishing */
	struct rmig_prov_conn *c;
	int get_ret, est_ret;
};

static void *accept_thread(void *arg)
{
	struct accept_arg *a = arg;

	a->get_ret = P->listen_get(a->l, a->timeout_ms, &a->c);
	if (a->get_ret)
		return NULL;
	if (a->delay_ms)
		sleep_ms(a->delay_ms);
	if (a->reject) {
		P->conn_close(a->c);
		a->c = NULL;
		return NULL;
	}
	a->est_ret = P->conn_establish(a->c, a->timeout_ms);
	return NULL;
}

static void pair_open_depth(struct pair *p, unsigned rx, unsigned tx)
{
	struct accept_arg a = { .timeout_ms = 5000 };
	pthread_t t;

	memset(p, 0, sizeof(*p));
	snprintf(p->addr, sizeof(p->addr), "pair:%u", ++addr_seq);
	end_open(&p->d, p->addr, true, rx, tx);
	end_open(&p->s, p->addr, false, rx, tx);
	assert_int_equal(P->listen(p->d.dom, &p->l), 0);
	a.l = p->l;
	assert_int_equal(pthread_create(&t, NULL, accept_thread, &a), 0);
	assert_int_equal(P->conn_create(p->s.dom, &p->s.c), 0);
	assert_int_equal(P->conn_establish(p->s.c, 5000), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.get_ret, 0);
	assert_int_equal(a.est_ret, 0);
	p->d.c = a.c;
}

static void pair_open(struct pair *p)
{
	pair_open_depth(p, MSG_SLOTS, MSG_SLOTS);
}

static void pair_close(struct pair *p)
{
	if (p->l)
		P->listen_close(p->l);
	p->l = NULL;
	end_close(&p->s);
	end_close(&p->d);
}

static uint8_t *slot(struct end *e, unsigned i)
{
	return e->msg + (size_t)i * MSG_SIZE;
}

static void post_recvs(struct end *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(P->post_recv(e->c, slot(e, i), MSG_SIZE,
					      e->msg_mr,
					      (void *)(uintptr_t)(i + 1)), 0);
}

static int send_slot(struct end *e, unsigned i, size_t len, uint32_t imm,
		     uintptr_t ctx)
{
	return prov_send(P, e->c, slot(e, i), len, e->msg_mr, imm, (void *)ctx);
}

/* Poll until one completion arrives (fails the test on error/timeout). */
static struct rmig_cqe poll_one(struct end *e)
{
	struct rmig_cqe cqe;
	int n = P->poll(e->c, &cqe, 1, 2000);

	if (n != 1)
		fail_msg("poll returned %d (%s)", n, rmig_last_error());
	return cqe;
}

static void poll_expect_err(struct end *e, int err)
{
	struct rmig_cqe cqe;
	int n = P->poll(e->c, &cqe, 1, 2000);

	if (n != err)
		fail_msg("poll returned %d, expected %d (%s)", n, err,
			 rmig_last_error());
}

/* ------------------------------------------------------------------ */
/* Setup / teardown                                                    */

/* Objects open before the test: a failed test leaks its own (cmocka
 * jumps out of it), which must not fail the ones after it. */
static uint64_t live_before;

static int setup(void **state)
{
	mock_reset();
	rmig_err_clear();
	live_before = mock_live_objects();
	return 0;
}

static int teardown(void **state)
{
	struct mock_counters c;

	mock_get_counters(&c);
	mock_reset();
	if (mock_live_objects() != live_before) {
		fprintf(stderr, "leaked: %llu domains %llu mrs %llu listeners "
			"%llu conns\n", (unsigned long long)c.live_domains,
			(unsigned long long)c.live_mrs,
			(unsigned long long)c.live_listeners,
			(unsigned long long)c.live_conns);
		return -1;
	}
	if (c.concurrent_use || c.domain_close_busy) {
		fprintf(stderr, "concurrent use %llu, busy domain close %llu\n",
			(unsigned long long)c.concurrent_use,
			(unsigned long long)c.domain_close_busy);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Domain and memory                                                   */

static void test_mr(void **state)
{
	struct rmig_prov_params p = { .address = "mr:1", .rx_depth = 8,
				      .tx_depth = 32 };
	struct rmig_prov_domain *dom;
	struct rmig_prov_attr attr;
	struct rmig_prov_mr *a, *b;
	static uint8_t buf[2 * PAGE];

	assert_int_equal(P->domain_open(&p, &dom, &attr), 0);
	assert_string_equal(attr.name, "mock");
	assert_int_equal(attr.max_tx, 32);
	assert_int_equal(attr.max_rx, 8);
	assert_int_equal(attr.max_read, 16); /* the default, <= max_tx */
	assert_true(attr.max_iov >= 1);
	assert_true(attr.max_msg_size >= 65536);
	assert_int_equal(P->mr_reg(dom, buf, PAGE, RMIG_MR_WRITE_TARGET, &a),
			 0);
	assert_int_equal(P->mr_reg(dom, buf + PAGE, PAGE, RMIG_MR_MSG_BUF,
				   &b), 0);
	assert_ptr_equal(a->addr, buf);
	assert_int_equal(a->len, PAGE);
	assert_int_equal(a->raddr, (uint64_t)(uintptr_t)buf);
	assert_int_equal(b->raddr, (uint64_t)(uintptr_t)(buf + PAGE));
	assert_int_not_equal(a->rkey, b->rkey);
	assert_int_equal(mock_live_objects(), 3);
	assert_int_equal(P->mr_reg(dom, buf, 0, RMIG_MR_WRITE_TARGET, &a),
			 -EINVAL);
	assert_int_equal(P->mr_reg(dom, NULL, PAGE, RMIG_MR_WRITE_TARGET, &a),
			 -EINVAL);
	assert_int_equal(P->mr_reg(dom, buf, PAGE, (enum rmig_mr_access)0,
				   &a), -EINVAL);
	assert_err_has("invalid access 0");
	assert_int_equal(P->mr_reg(dom, buf, PAGE,
				   (enum rmig_mr_access)(RMIG_MR_READ_TARGET +
							 1), &a), -EINVAL);
	P->mr_dereg(b);
	assert_int_equal(mock_fail_after("mr_reg", 1, -ENOMEM), 0);
	assert_int_equal(P->mr_reg(dom, buf, PAGE, RMIG_MR_WRITE_TARGET, &b),
			 -ENOMEM);
	assert_err_has("injected");
	P->mr_dereg(a);
	P->domain_close(dom);
	assert_int_equal(mock_live_objects(), 0);
}

/* Tests register it in the core's table; every op is its own. */
static void test_registry(void **state)
{
	struct rmig_provider_ops ops;

	assert_int_equal(rmig_provider_register(&rmig_mock_provider), 0);
	assert_int_equal(rmig_provider_register(&rmig_mock_provider), 0);
	assert_ptr_equal(rmig_provider_find("mock"), &rmig_mock_provider);
	assert_int_equal(rmig_mock_provider.abi, RMIG_PROVIDER_ABI);
	rmig_provider_fill(&ops, &rmig_mock_provider);
	assert_string_equal(ops.name, "mock");
	assert_ptr_equal(ops.domain_open, rmig_mock_provider.domain_open);
	assert_ptr_equal(ops.post, rmig_mock_provider.post);
	assert_ptr_equal(ops.poll, rmig_mock_provider.poll);
	assert_ptr_equal(ops.conn_wake, rmig_mock_provider.conn_wake);
	assert_ptr_equal(ops.listen_name, rmig_mock_provider.listen_name);
}

/* ------------------------------------------------------------------ */
/* Connection setup                                                    */

static void test_listen_names(void **state)
{
	struct rmig_prov_params p = { .address = "names:7", .passive = true };
	struct rmig_prov_params z = { .address = "zhost:0", .passive = true };
	struct rmig_prov_domain *d1, *d2, *z1, *z2;
	struct rmig_prov_listener *l1, *l2, *lz1, *lz2;
	struct rmig_prov_attr attr;
	char n1[64], n2[64], tiny[4];

	assert_int_equal(P->domain_open(&p, &d1, &attr), 0);
	assert_int_equal(P->domain_open(&p, &d2, &attr), 0);
	assert_int_equal(P->listen(d1, &l1), 0);
	assert_int_equal(P->listen_name(l1, n1, sizeof(n1)), 0);
	assert_string_equal(n1, "names:7");
	assert_int_equal(P->listen(d2, &l2), -EADDRINUSE);
	assert_err_has("names:7");
	assert_int_equal(P->listen_name(l1, tiny, sizeof(tiny)), -ENOSPC);

	assert_int_equal(P->domain_open(&z, &z1, &attr), 0);
	assert_int_equal(P->domain_open(&z, &z2, &attr), 0);
	assert_int_equal(P->listen(z1, &lz1), 0);
	assert_int_equal(P->listen(z2, &lz2), 0);
	assert_int_equal(P->listen_name(lz1, n1, sizeof(n1)), 0);
	assert_int_equal(P->listen_name(lz2, n2, sizeof(n2)), 0);
	assert_string_not_equal(n1, n2);
	assert_string_not_equal(n1, "zhost:0");
	assert_memory_equal(n1, "zhost:", 6);

	/* Closed: the address is free again. */
	P->listen_close(l1);
	assert_int_equal(P->listen(d2, &l2), 0);
	P->listen_close(l2);
	P->listen_close(lz1);
	P->listen_close(lz2);
	P->domain_close(d1);
	P->domain_close(d2);
	P->domain_close(z1);
	P->domain_close(z2);
}

static void test_connect_refused(void **state)
{
	struct end s;

	end_open(&s, "nobody:1", false, 8, 8);
	assert_int_equal(P->conn_create(s.dom, &s.c), 0);
	assert_int_equal(P->conn_establish(s.c, 1000), -ECONNREFUSED);
	assert_err_has("nobody listens");
	assert_err_has("nobody:1");
	/* Sending on it is refused too. */
	assert_int_equal(send_slot(&s, 0, 8, 0, 0), -ENOTCONN);
	end_close(&s);
}

static void test_listen_get_timeout(void **state)
{
	struct end d;
	struct rmig_prov_listener *l;
	struct rmig_prov_conn *c;
	uint64_t t0;

	end_open(&d, "lonely:1", true, 8, 8);
	assert_int_equal(P->listen(d.dom, &l), 0);
	assert_int_equal(P->listen_get(l, 0, &c), -ETIMEDOUT);
	t0 = now_ms();
	assert_int_equal(P->listen_get(l, 60, &c), -ETIMEDOUT);
	assert_true(now_ms() - t0 >= 50);
	assert_err_has("lonely:1");
	P->listen_close(l);
	end_close(&d);
}

static void test_establish_timeout(void **state)
{
	struct end d, s;
	struct rmig_prov_listener *l;
	struct rmig_prov_conn *c;
	uint64_t t0;

	end_open(&d, "slow:1", true, 8, 8);
	end_open(&s, "slow:1", false, 8, 8);
	assert_int_equal(P->listen(d.dom, &l), 0);
	assert_int_equal(P->conn_create(s.dom, &s.c), 0);
	t0 = now_ms();
	assert_int_equal(P->conn_establish(s.c, 60), -ETIMEDOUT);
	assert_true(now_ms() - t0 >= 50);
	/* The request was withdrawn. */
	assert_int_equal(P->listen_get(l, 0, &c), -ETIMEDOUT);
	end_close(&s);
	P->listen_close(l);
	end_close(&d);
}

/* The connecting side gives up after listen_get, before the listening
 * side establishes: the latter's establish fails. */
static void test_establish_gave_up(void **state)
{
	struct accept_arg a = { .timeout_ms = 2000, .delay_ms = 150 };
	struct end d, s;
	pthread_t t;

	end_open(&d, "late:1", true, 8, 8);
	end_open(&s, "late:1", false, 8, 8);
	assert_int_equal(P->listen(d.dom, &a.l), 0);
	assert_int_equal(pthread_create(&t, NULL, accept_thread, &a), 0);
	assert_int_equal(P->conn_create(s.dom, &s.c), 0);
	assert_int_equal(P->conn_establish(s.c, 50), -ETIMEDOUT);
	pthread_join(t, NULL);
	assert_int_equal(a.get_ret, 0);
	assert_int_equal(a.est_ret, -ECONNRESET);
	d.c = a.c;
	P->listen_close(a.l);
	end_close(&s);
	end_close(&d);
}

static void test_rejected(void **state)
{
	struct accept_arg a = { .timeout_ms = 2000, .reject = true };
	struct end d, s;
	pthread_t t;

	end_open(&d, "picky:1", true, 8, 8);
	end_open(&s, "picky:1", false, 8, 8);
	assert_int_equal(P->listen(d.dom, &a.l), 0);
	assert_int_equal(pthread_create(&t, NULL, accept_thread, &a), 0);
	assert_int_equal(P->conn_create(s.dom, &s.c), 0);
	assert_int_equal(P->conn_establish(s.c, 2000), -ECONNREFUSED);
	assert_err_has("without accepting");
	pthread_join(t, NULL);
	P->listen_close(a.l);
	end_close(&s);
	end_close(&d);
}

struct blocked_get {
	struct rmig_prov_listener *l;
	int ret;
};

static void *blocked_get_thread(void *arg)
{
	struct blocked_get *b = arg;
	struct rmig_prov_conn *c;

	b->ret = P->listen_get(b->l, -1, &c);
	return NULL;
}

static void test_listen_close_wakes_get(void **state)
{
	struct blocked_get b = { .ret = 1 };
	struct end d;
	pthread_t t;

	end_open(&d, "closing:1", true, 8, 8);
	assert_int_equal(P->listen(d.dom, &b.l), 0);
	assert_int_equal(pthread_create(&t, NULL, blocked_get_thread, &b), 0);
	sleep_ms(150); /* let it block */
	P->listen_close(b.l);
	pthread_join(t, NULL);
	assert_int_equal(b.ret, -ECANCELED);
	end_close(&d);
}

static void test_peer_names(void **state)
{
	struct pair p;
	char buf[64];

	pair_open(&p);
	assert_int_equal(P->conn_peer_name(p.s.c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, p.addr);
	assert_int_equal(P->conn_peer_name(p.d.c, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, "mock-conn-", 10);
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

static void test_send_recv_in_order(void **state)
{
	struct pair p;
	struct rmig_cqe cqe[MSG_SLOTS];
	int n, got = 0;

	pair_open(&p);
	post_recvs(&p.d, 8);
	for (unsigned i = 0; i < 8; i++) {
		memset(slot(&p.s, i), 'a' + (int)i, MSG_SIZE);
		assert_int_equal(send_slot(&p.s, i, 100 + i,
					   (uint32_t)(i + 1) << 28 | i,
					   1000 + i), 0);
	}
	while (got < 8) {
		n = P->poll(p.d.c, cqe + got, MSG_SLOTS - got, 2000);
		assert_true(n > 0);
		got += n;
	}
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(cqe[i].op, RMIG_CQE_RECV);
		assert_ptr_equal(cqe[i].ctx, (void *)(uintptr_t)(i + 1));
		assert_int_equal(cqe[i].len, 100 + i);
		assert_int_equal(cqe[i].imm, (uint32_t)(i + 1) << 28 | i);
		assert_int_equal(slot(&p.d, i)[0], 'a' + (int)i);
		assert_int_equal(slot(&p.d, i)[99 + i], 'a' + (int)i);
		assert_int_equal(slot(&p.d, i)[100 + i], 0);
	}
	for (unsigned i = 0; i < 8; i++) {
		struct rmig_cqe c = poll_one(&p.s);

		assert_int_equal(c.op, RMIG_CQE_SEND);
		assert_ptr_equal(c.ctx, (void *)(uintptr_t)(1000 + i));
	}
	assert_int_equal(P->poll(p.s.c, cqe, 1, 0), 0);
	assert_int_equal(mock_count_sends(), 8);
	assert_int_equal(mock_count_sends_type(1), 1);
	assert_int_equal(mock_count_sends_type(8), 1);
	/* An empty message (rmig's CREDIT) is fine. */
	post_recvs(&p.d, 1);
	assert_int_equal(prov_send(P, p.s.c, NULL, 0, NULL, 8u << 28, NULL), 0);
	assert_int_equal(poll_one(&p.d).len, 0);
	pair_close(&p);
}

static void test_receiver_not_ready(void **state)
{
	struct pair p;
	struct mock_counters c;

	pair_open(&p);
	/* Posting the send succeeds; the failure is a completion. */
	assert_int_equal(send_slot(&p.s, 0, 64, 0x40000000, 1), 0);
	poll_expect_err(&p.s, -EPROTO);
	assert_err_has("receiver not ready");
	poll_expect_err(&p.d, -EPROTO);
	assert_err_has("receiver not ready");
	/* Sticky. */
	poll_expect_err(&p.s, -EPROTO);
	assert_int_equal(send_slot(&p.s, 0, 64, 0, 1), -EPROTO);
	mock_get_counters(&c);
	assert_int_equal(c.rnr, 1);
	assert_int_equal(c.sends, 0);
	pair_close(&p);
}

static void test_message_too_long(void **state)
{
	struct pair p;

	pair_open(&p);
	assert_int_equal(P->post_recv(p.d.c, slot(&p.d, 0), 16, p.d.msg_mr,
				      NULL), 0);
	assert_int_equal(send_slot(&p.s, 0, 32, 0, 1), 0);
	poll_expect_err(&p.s, -EPROTO);
	assert_err_has("longer than");
	poll_expect_err(&p.d, -EPROTO);
	pair_close(&p);
}

static void test_local_buffer_checks(void **state)
{
	struct pair p;
	static uint8_t stray[PAGE];
	struct rmig_iov iov[8];

	pair_open(&p);
	/* Outside the registration, or none. */
	assert_int_equal(P->post_recv(p.d.c, stray, 64, p.d.msg_mr, NULL),
			 -EINVAL);
	assert_int_equal(P->post_recv(p.d.c, stray, 64, NULL, NULL), -EINVAL);
	assert_int_equal(P->post_recv(p.d.c, slot(&p.d, MSG_SLOTS - 1), 2 *
				      MSG_SIZE, p.d.msg_mr, NULL), -EINVAL);
	assert_int_equal(prov_send(P, p.s.c, stray, 8, p.s.msg_mr, 0, NULL),
			 -EINVAL);
	assert_err_has("outside its registration");
	/* Another domain's registration. */
	assert_int_equal(prov_send(P, p.s.c, slot(&p.d, 0), 8, p.d.msg_mr, 0,
				 NULL), -EINVAL);
	assert_err_has("another domain");
	for (unsigned i = 0; i < 8; i++)
		iov[i] = (struct rmig_iov){ p.s.ram, 8, p.s.ram_mr };
	assert_int_equal(prov_write(P, p.s.c, iov, 0, p.d.ram_mr->raddr,
				  p.d.ram_mr->rkey, NULL, true), -EINVAL);
	assert_int_equal(prov_write(P, p.s.c, iov, p.s.attr.max_iov + 1,
				  p.d.ram_mr->raddr, p.d.ram_mr->rkey, NULL,
				  true), -EINVAL);
	assert_err_has("max_iov");
	iov[0].addr = stray;
	assert_int_equal(prov_write(P, p.s.c, iov, 1, p.d.ram_mr->raddr,
				  p.d.ram_mr->rkey, NULL, true), -EINVAL);
	/* Nothing was posted: no completion, no error. */
	assert_int_equal(P->poll(p.s.c, (struct rmig_cqe[1]){ 0 }, 1, 0), 0);
	assert_int_equal(P->poll(p.d.c, (struct rmig_cqe[1]){ 0 }, 1, 0), 0);
	pair_close(&p);
}

/* Each local use needs its registration's access: receives and sends
 * only in message buffers, writes only from message buffers and write
 * sources.  A refused post leaves the connection working. */
static void test_local_access_checks(void **state)
{
	struct pair p;
	struct rmig_iov iov;
	struct mock_counters c;
	struct rmig_prov_mr *tgt;

	pair_open(&p);
	/* A receive into a write source (no local write) or into RAM. */
	assert_int_equal(P->post_recv(p.s.c, p.s.ram, 64, p.s.ram_mr, NULL),
			 -EACCES);
	assert_err_has("registered as a write source");
	assert_int_equal(P->post_recv(p.d.c, p.d.ram, 64, p.d.ram_mr, NULL),
			 -EACCES);
	assert_err_has("registered as a write target");
	/* A send from RAM. */
	assert_int_equal(prov_send(P, p.s.c, p.s.ram, 8, p.s.ram_mr, 0, NULL),
			 -EACCES);
	assert_err_has("which send may not use");
	/* A write from a write target (RAM the peer writes into). */
	assert_int_equal(P->mr_reg(p.s.dom, p.s.ram + PAGE, PAGE,
				   RMIG_MR_WRITE_TARGET, &tgt), 0);
	iov = (struct rmig_iov){ p.s.ram + PAGE, 64, tgt };
	assert_int_equal(prov_write(P, p.s.c, &iov, 1, p.d.ram_mr->raddr,
				  p.d.ram_mr->rkey, NULL, true), -EACCES);
	assert_err_has("registered as a write target, which write may not "
		       "use");
	P->mr_dereg(tgt);
	mock_get_counters(&c);
	assert_int_equal(c.local_access_errors, 4);
	assert_int_equal(c.writes, 0);
	assert_int_equal(c.access_errors, 0);
	assert_int_equal(c.mr_regs[RMIG_MR_MSG_BUF], 2);
	assert_int_equal(c.mr_regs[RMIG_MR_WRITE_SOURCE], 1);
	assert_int_equal(c.mr_regs[RMIG_MR_WRITE_TARGET], 2);

	/* Allowed: writes from a write source and from a message buffer. */
	post_recvs(&p.d, 1);
	memset(p.s.ram, 0x11, 64);
	memset(slot(&p.s, 1), 0x22, 64);
	iov = (struct rmig_iov){ p.s.ram, 64, p.s.ram_mr };
	assert_int_equal(prov_write(P, p.s.c, &iov, 1, p.d.ram_mr->raddr,
				  p.d.ram_mr->rkey, NULL, false), 0);
	iov = (struct rmig_iov){ slot(&p.s, 1), 64, p.s.msg_mr };
	assert_int_equal(prov_write(P, p.s.c, &iov, 1, p.d.ram_mr->raddr + 64,
				  p.d.ram_mr->rkey, (void *)9, true), 0);
	assert_int_equal(poll_one(&p.s).op, RMIG_CQE_WRITE);
	assert_int_equal(send_slot(&p.s, 0, 8, 0x40000000, 4), 0);
	assert_int_equal(poll_one(&p.d).op, RMIG_CQE_RECV);
	for (int i = 0; i < 128; i++)
		assert_int_equal(p.d.ram[i], i < 64 ? 0x11 : 0x22);
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* Writes                                                              */

static void test_write_then_send(void **state)
{
	struct pair p;
	struct rmig_iov iov[2];
	struct rmig_cqe c;

	pair_open(&p);
	post_recvs(&p.d, 2);
	memset(p.s.ram, 0x11, PAGE);
	memset(p.s.ram + 2 * PAGE, 0x22, PAGE);
	iov[0] = (struct rmig_iov){ p.s.ram, PAGE, p.s.ram_mr };
	iov[1] = (struct rmig_iov){ p.s.ram + 2 * PAGE, PAGE, p.s.ram_mr };
	/* Two segments gathered into pages 4..5 of the peer, unsignaled. */
	assert_int_equal(prov_write(P, p.s.c, iov, 2, p.d.ram_mr->raddr + 4 * PAGE,
				  p.d.ram_mr->rkey, (void *)7, false), 0);
	assert_int_equal(send_slot(&p.s, 0, 24, 0x40000000, 9), 0);
	c = poll_one(&p.d);
	assert_int_equal(c.op, RMIG_CQE_RECV);
	assert_int_equal(p.d.ram[4 * PAGE], 0x11);
	assert_int_equal(p.d.ram[5 * PAGE - 1], 0x11);
	assert_int_equal(p.d.ram[5 * PAGE], 0x22);
	assert_int_equal(p.d.ram[6 * PAGE - 1], 0x22);
	assert_int_equal(p.d.ram[6 * PAGE], 0);
	/* No completion for the unsignaled write: only the send's. */
	c = poll_one(&p.s);
	assert_int_equal(c.op, RMIG_CQE_SEND);
	assert_ptr_equal(c.ctx, (void *)9);
	assert_int_equal(P->poll(p.s.c, &c, 1, 0), 0);
	/* A signaled write completes with its context. */
	assert_int_equal(prov_write(P, p.s.c, iov, 1, p.d.ram_mr->raddr,
				  p.d.ram_mr->rkey, (void *)5, true), 0);
	c = poll_one(&p.s);
	assert_int_equal(c.op, RMIG_CQE_WRITE);
	assert_ptr_equal(c.ctx, (void *)5);
	assert_int_equal(c.len, PAGE);
	assert_int_equal(mock_count_writes(), 2);
	pair_close(&p);
}

enum bad_write { BAD_KEY, READ_ONLY, PAST_END, BEFORE_START, OWN_KEY };

static void bad_write(enum bad_write kind, const char *why)
{
	struct pair p;
	struct rmig_iov iov;
	uint64_t raddr, rkey;
	struct mock_counters c;

	pair_open(&p);
	post_recvs(&p.d, 2);
	memset(p.s.ram, 0x5a, PAGE);
	memset(p.d.msg, 0, MSG_SLOTS * MSG_SIZE);
	iov = (struct rmig_iov){ p.s.ram, PAGE, p.s.ram_mr };
	raddr = p.d.ram_mr->raddr;
	rkey = p.d.ram_mr->rkey;
	switch (kind) {
	case BAD_KEY:
		rkey = 0xdeadbeef;
		break;
	case READ_ONLY:
		raddr = p.d.msg_mr->raddr;
		rkey = p.d.msg_mr->rkey;
		break;
	case PAST_END:
		raddr += RAM_PAGES * PAGE - PAGE / 2;
		break;
	case BEFORE_START:
		raddr -= 8;
		break;
	case OWN_KEY:
		raddr = p.s.ram_mr->raddr + PAGE;
		rkey = p.s.ram_mr->rkey;
		break;
	}
	/* Unsignaled: an error completes anyway. */
	assert_int_equal(prov_write(P, p.s.c, &iov, 1, raddr, rkey, (void *)3,
				  false), 0);
	/* Posted behind the error: flushed, never delivered. */
	assert_int_equal(send_slot(&p.s, 0, 8, 0x40000000, 4), 0);
	poll_expect_err(&p.s, -EACCES);
	assert_err_has("remote access error");
	assert_err_has(why);
	poll_expect_err(&p.s, -EACCES);
	assert_int_equal(send_slot(&p.s, 0, 8, 0x40000000, 4), -EACCES);
	poll_expect_err(&p.d, -ECONNRESET);
	/* Nothing landed anywhere. */
	for (size_t i = 0; i < RAM_PAGES * PAGE; i++)
		if (p.d.ram[i] || (kind == OWN_KEY && p.s.ram[PAGE + i % PAGE]))
			fail_msg("byte %zu written", i);
	for (size_t i = 0; i < MSG_SLOTS * MSG_SIZE; i++)
		if (p.d.msg[i])
			fail_msg("message byte %zu written", i);
	mock_get_counters(&c);
	assert_int_equal(c.access_errors, 1);
	assert_int_equal(c.writes, 0);
	assert_int_equal(c.sends, 0);
	assert_true(c.flushed >= 1);
	pair_close(&p);
}

static void test_write_bad_key(void **state)
{
	bad_write(BAD_KEY, "no registration");
}

static void test_write_read_only(void **state)
{
	bad_write(READ_ONLY, "does not allow remote writes");
}

static void test_write_past_end(void **state)
{
	bad_write(PAST_END, "outside registration");
}

static void test_write_before_start(void **state)
{
	bad_write(BEFORE_START, "outside registration");
}

static void test_write_own_key(void **state)
{
	bad_write(OWN_KEY, "another domain");
}

/* ------------------------------------------------------------------ */
/* Queues                                                              */

static void test_send_queue_limit(void **state)
{
	struct pair p;
	struct rmig_iov iov;
	struct rmig_cqe c;
	uint64_t ra;
	uint64_t rk;

	pair_open_depth(&p, 8, 4);
	iov = (struct rmig_iov){ p.s.ram, 64, p.s.ram_mr };
	ra = p.d.ram_mr->raddr;
	rk = p.d.ram_mr->rkey;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 3; i++)
			assert_int_equal(prov_write(P, p.s.c, &iov, 1, ra, rk, NULL,
						  false), 0);
		assert_int_equal(prov_write(P, p.s.c, &iov, 1, ra, rk, (void *)1,
					  true), 0);
		/* Unsignaled writes hold their slots until a later
		 * signaled completion is polled. */
		assert_int_equal(prov_write(P, p.s.c, &iov, 1, ra, rk, NULL, false),
				 -EAGAIN);
		assert_err_has("send queue full");
		assert_int_equal(send_slot(&p.s, 0, 8, 0, 1), -EAGAIN);
		c = poll_one(&p.s);
		assert_int_equal(c.op, RMIG_CQE_WRITE);
	}
	assert_int_equal(mock_max_tx_outstanding(), 4);
	pair_close(&p);
}

static void test_recv_queue_limit(void **state)
{
	struct pair p;

	pair_open_depth(&p, 4, 4);
	post_recvs(&p.d, 4);
	assert_int_equal(P->post_recv(p.d.c, slot(&p.d, 5), MSG_SIZE,
				      p.d.msg_mr, NULL), -EAGAIN);
	assert_err_has("receive queue full");
	/* One consumed: room for one more. */
	assert_int_equal(send_slot(&p.s, 0, 8, 0, 1), 0);
	poll_one(&p.d);
	assert_int_equal(P->post_recv(p.d.c, slot(&p.d, 5), MSG_SIZE,
				      p.d.msg_mr, NULL), 0);
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* Poll, wake, close                                                   */

struct waker {
	struct rmig_prov_conn *c;
	unsigned delay_ms;
};

static void *waker_thread(void *arg)
{
	struct waker *w = arg;

	sleep_ms(w->delay_ms);
	P->conn_wake(w->c);
	return NULL;
}

static void test_poll_timeout_and_wake(void **state)
{
	struct pair p;
	struct rmig_cqe c[4];
	struct waker w;
	pthread_t t;
	uint64_t t0;

	pair_open(&p);
	t0 = now_ms();
	assert_int_equal(P->poll(p.s.c, c, 4, 60), 0);
	assert_true(now_ms() - t0 >= 50);

	/* Sticky: a wake with nobody polling is not lost. */
	P->conn_wake(p.s.c);
	t0 = now_ms();
	assert_int_equal(P->poll(p.s.c, c, 4, -1), 0);
	assert_true(now_ms() - t0 < 1000);
	/* ...and consumed. */
	assert_int_equal(P->poll(p.s.c, c, 4, 30), 0);

	/* From another thread, into a blocked poll. */
	w = (struct waker){ p.s.c, 80 };
	assert_int_equal(pthread_create(&t, NULL, waker_thread, &w), 0);
	t0 = now_ms();
	assert_int_equal(P->poll(p.s.c, c, 4, -1), 0);
	assert_true(now_ms() - t0 >= 60);
	pthread_join(t, NULL);

	/* Completions first; the wake stays for the next poll. */
	post_recvs(&p.d, 1);
	assert_int_equal(send_slot(&p.s, 0, 8, 0, 1), 0);
	P->conn_wake(p.s.c);
	assert_int_equal(P->poll(p.s.c, c, 4, -1), 1);
	assert_int_equal(P->poll(p.s.c, c, 4, -1), 0);
	poll_one(&p.d);
	assert_true(mock_count_sends() == 1);
	pair_close(&p);
}

static void test_close_resets_peer(void **state)
{
	struct pair p;
	struct rmig_cqe c;

	pair_open(&p);
	post_recvs(&p.d, 4);
	memcpy(slot(&p.s, 0), "bye", 4);
	assert_int_equal(send_slot(&p.s, 0, 4, 0x90000000, 1), 0);
	P->conn_close(p.s.c);
	p.s.c = NULL;
	/* What was sent before the close still arrives, then the reset. */
	c = poll_one(&p.d);
	assert_int_equal(c.op, RMIG_CQE_RECV);
	assert_string_equal((char *)slot(&p.d, 0), "bye");
	poll_expect_err(&p.d, -ECONNRESET);
	assert_err_has("closed");
	assert_int_equal(send_slot(&p.d, 1, 4, 0, 1), -ECONNRESET);
	assert_int_equal(P->post_recv(p.d.c, slot(&p.d, 5), MSG_SIZE,
				      p.d.msg_mr, NULL), -ECONNRESET);
	pair_close(&p);
}

static void test_send_buffer_modified(void **state)
{
	struct pair p;

	pair_open(&p);
	post_recvs(&p.d, 4);
	memset(slot(&p.s, 0), 1, 64);
	assert_int_equal(send_slot(&p.s, 0, 64, 0, 1), 0);
	slot(&p.s, 0)[10] = 2; /* too early: not yet completed */
	poll_expect_err(&p.s, -EPROTO);
	assert_err_has("modified before its completion");
	pair_close(&p);

	mock_reset();
	mock_set_check_send_buffers(false);
	pair_open(&p);
	post_recvs(&p.d, 4);
	assert_int_equal(send_slot(&p.s, 0, 64, 0, 1), 0);
	slot(&p.s, 0)[10] = 3;
	assert_int_equal(poll_one(&p.s).op, RMIG_CQE_SEND);
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* Fault injection                                                     */

static void test_fault_post(void **state)
{
	struct pair p;
	struct rmig_iov iov;

	assert_int_equal(mock_fail_after("nonsense", 1, -EIO), -EINVAL);
	assert_int_equal(mock_fail_after("send", 1, 0), -EINVAL);
	pair_open(&p);
	post_recvs(&p.d, 8);
	iov = (struct rmig_iov){ p.s.ram, 64, p.s.ram_mr };
	assert_int_equal(mock_fail_after("send", 2, EIO), 0); /* negated */
	assert_int_equal(send_slot(&p.s, 0, 8, 0, 1), 0);
	assert_int_equal(send_slot(&p.s, 1, 8, 0, 1), -EIO);
	assert_err_has("injected");
	assert_int_equal(send_slot(&p.s, 2, 8, 0, 1), 0); /* once */
	assert_int_equal(mock_fail_after("write", 1, -EFAULT), 0);
	assert_int_equal(prov_write(P, p.s.c, &iov, 1, p.d.ram_mr->raddr,
				  p.d.ram_mr->rkey, NULL, true), -EFAULT);
	assert_int_equal(prov_write(P, p.s.c, &iov, 1, p.d.ram_mr->raddr,
				  p.d.ram_mr->rkey, NULL, true), 0);
	assert_int_equal(mock_fail_after("post_recv", 1, -ENOBUFS), 0);
	assert_int_equal(P->post_recv(p.d.c, slot(&p.d, 9), MSG_SIZE,
				      p.d.msg_mr, NULL), -ENOBUFS);
	/* Armed then disarmed. */
	assert_int_equal(mock_fail_after("send", 1, -EIO), 0);
	assert_int_equal(mock_fail_after("send", 0, -EIO), 0);
	assert_int_equal(send_slot(&p.s, 3, 8, 0, 1), 0);
	/* "poll": sticky on that connection. */
	assert_int_equal(mock_fail_after("poll", 1, -EHOSTDOWN), 0);
	poll_expect_err(&p.s, -EHOSTDOWN);
	/* Completions queued before the failure still come, then it. */
	{
		struct rmig_cqe c[8];
		int n;

		while ((n = P->poll(p.s.c, c, 8, 0)) > 0)
			;
		assert_int_equal(n, -EHOSTDOWN);
	}
	{
		struct mock_counters c;

		mock_get_counters(&c);
		assert_int_equal(c.faults_fired, 4);
	}
	pair_close(&p);
}

static void test_fault_cqe(void **state)
{
	struct pair p;
	struct rmig_iov iov;

	pair_open(&p);
	post_recvs(&p.d, 8);
	assert_int_equal(mock_fail_after("send_cqe", 2, -ETIMEDOUT), 0);
	assert_int_equal(send_slot(&p.s, 0, 8, 0, 1), 0);
	assert_int_equal(send_slot(&p.s, 1, 8, 0, 2), 0);
	assert_int_equal(poll_one(&p.s).op, RMIG_CQE_SEND);
	poll_expect_err(&p.s, -ETIMEDOUT);
	assert_err_has("injected send completion error");
	assert_int_equal(poll_one(&p.d).op, RMIG_CQE_RECV);
	poll_expect_err(&p.d, -ECONNRESET);
	pair_close(&p);

	pair_open(&p);
	memset(p.s.ram, 0x77, PAGE);
	iov = (struct rmig_iov){ p.s.ram, PAGE, p.s.ram_mr };
	assert_int_equal(mock_fail_after("write_cqe", 1, -EIO), 0);
	assert_int_equal(prov_write(P, p.s.c, &iov, 1, p.d.ram_mr->raddr,
				  p.d.ram_mr->rkey, NULL, false), 0);
	poll_expect_err(&p.s, -EIO);
	poll_expect_err(&p.d, -ECONNRESET);
	assert_int_equal(p.d.ram[0], 0);
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* RDMA READ                                                           */

/* The connecting side's RAM as a read source, two pages of the listening
 * side's RAM (from page 4) as a read target. */
static void read_regs(struct pair *p, struct rmig_prov_mr **src,
		      struct rmig_prov_mr **tgt)
{
	for (unsigned i = 0; i < RAM_PAGES * PAGE; i++)
		p->s.ram[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(P->mr_reg(p->s.dom, p->s.ram, RAM_PAGES * PAGE,
				   RMIG_MR_READ_SOURCE, src), 0);
	assert_int_equal(P->mr_reg(p->d.dom, p->d.ram + 4 * PAGE, 2 * PAGE,
				   RMIG_MR_READ_TARGET, tgt), 0);
}

/* A read of @len bytes at offset @off of the source into the target. */
static struct rmig_read read_at(struct pair *p, struct rmig_prov_mr *src,
				struct rmig_prov_mr *tgt, size_t off,
				size_t len, uintptr_t ctx)
{
	return (struct rmig_read){ .addr = p->d.ram + 4 * PAGE, .len = len,
				   .mr = tgt, .raddr = src->raddr + off,
				   .rkey = src->rkey, .ctx = (void *)ctx };
}

/* Reads land only in read targets and come only from read sources,
 * inside them; max_read holds until completions are polled. */
static void test_read_checks(void **state)
{
	struct rmig_prov_mr *src, *tgt;
	struct rmig_read rd[6];
	struct mock_counters c;
	struct rmig_cqe cqe;
	unsigned posted = 99;
	struct pair p;

	mock_set_max_read(4);
	pair_open(&p);
	assert_int_equal(p.d.attr.max_read, 4);
	read_regs(&p, &src, &tgt);
	/* Into a write target or a message buffer: refused at the post. */
	rd[0] = read_at(&p, src, tgt, 0, 64, 1);
	rd[0].addr = p.d.ram;
	rd[0].mr = p.d.ram_mr;
	assert_int_equal(P->post_read(p.d.c, rd, 1, &posted), -EACCES);
	assert_int_equal(posted, 0);
	assert_err_has("registered as a write target, which read may not use");
	rd[0].addr = slot(&p.d, 0);
	rd[0].mr = p.d.msg_mr;
	assert_int_equal(P->post_read(p.d.c, rd, 1, &posted), -EACCES);
	assert_err_has("registered as a message buffer");
	/* A read lands and completes with its length; nothing on the
	 * source's side. */
	rd[0] = read_at(&p, src, tgt, 3 * PAGE + 5, PAGE, 7);
	assert_int_equal(P->post_read(p.d.c, rd, 1, &posted), 0);
	assert_int_equal(posted, 1);
	cqe = poll_one(&p.d);
	assert_int_equal(cqe.op, RMIG_CQE_READ);
	assert_ptr_equal(cqe.ctx, (void *)7);
	assert_int_equal(cqe.len, PAGE);
	assert_memory_equal(p.d.ram + 4 * PAGE, p.s.ram + 3 * PAGE + 5, PAGE);
	assert_int_equal(P->poll(p.s.c, &cqe, 1, 0), 0);
	/* Five at once: four posted, until one completion is polled. */
	for (int i = 0; i < 5; i++)
		rd[i] = read_at(&p, src, tgt, (size_t)i * 64, 64, 10 + i);
	assert_int_equal(P->post_read(p.d.c, rd, 5, &posted), -EAGAIN);
	assert_int_equal(posted, 4);
	assert_err_has("4 reads outstanding (max_read 4)");
	assert_ptr_equal(poll_one(&p.d).ctx, (void *)10);
	assert_int_equal(P->post_read(p.d.c, rd + 4, 1, &posted), 0);
	for (int i = 1; i < 5; i++)
		assert_ptr_equal(poll_one(&p.d).ctx, (void *)(uintptr_t)(10 + i));
	mock_get_counters(&c);
	assert_int_equal(c.reads, 6);
	assert_int_equal(c.read_bytes, PAGE + 5 * 64);
	assert_int_equal(c.max_reads_outstanding, 4);
	assert_int_equal(c.local_access_errors, 2);
	assert_int_equal(c.mr_regs[RMIG_MR_READ_SOURCE], 1);
	assert_int_equal(c.mr_regs[RMIG_MR_READ_TARGET], 1);
	/* Past the end of the source: a remote access error at the
	 * reader's poll, naming the read; the peer is reset. */
	rd[0] = read_at(&p, src, tgt, RAM_PAGES * PAGE - 8, 64, 9);
	assert_int_equal(P->post_read(p.d.c, rd, 1, &posted), 0);
	assert_int_equal(P->poll(p.d.c, &cqe, 1, 2000), -EACCES);
	assert_int_equal(cqe.op, RMIG_CQE_READ);
	assert_ptr_equal(cqe.ctx, (void *)9);
	assert_err_has("RDMA READ of 64 bytes");
	assert_err_has("outside registration");
	poll_expect_err(&p.s, -ECONNRESET);
	mock_get_counters(&c);
	assert_int_equal(c.access_errors, 1);
	P->mr_dereg(src);
	P->mr_dereg(tgt);
	pair_close(&p);
}

/* Faults apply to reads: "read" fails the post after the reads before
 * it, "read_cqe" completes the read in error and resets the peer; a
 * silenced side's reads never complete, while the peer's reads from it
 * still do. */
static void test_read_faults(void **state)
{
	struct rmig_prov_mr *src, *tgt, *back_src, *back_tgt;
	struct rmig_read rd[3];
	struct rmig_cqe cqe;
	unsigned posted;
	struct pair p;

	pair_open(&p);
	read_regs(&p, &src, &tgt);
	for (int i = 0; i < 3; i++)
		rd[i] = read_at(&p, src, tgt, (size_t)i * PAGE, 64, 1 + i);
	assert_int_equal(mock_fail_after("read", 2, -EIO), 0);
	assert_int_equal(P->post_read(p.d.c, rd, 3, &posted), -EIO);
	assert_int_equal(posted, 1);
	assert_err_has("mock read: injected failure");
	assert_ptr_equal(poll_one(&p.d).ctx, (void *)1);
	assert_int_equal(mock_fail_after("read_cqe", 1, -ETIMEDOUT), 0);
	assert_int_equal(P->post_read(p.d.c, rd + 2, 1, &posted), 0);
	assert_int_equal(P->poll(p.d.c, &cqe, 1, 2000), -ETIMEDOUT);
	assert_int_equal(cqe.op, RMIG_CQE_READ);
	assert_ptr_equal(cqe.ctx, (void *)3);
	assert_err_has("injected read completion error");
	poll_expect_err(&p.s, -ECONNRESET);
	P->mr_dereg(src);
	P->mr_dereg(tgt);
	pair_close(&p);

	pair_open(&p);
	read_regs(&p, &src, &tgt);
	memset(p.d.ram, 0x5a, PAGE);
	assert_int_equal(P->mr_reg(p.d.dom, p.d.ram, PAGE, RMIG_MR_READ_SOURCE,
				   &back_src), 0);
	assert_int_equal(P->mr_reg(p.s.dom, p.s.ram + 8 * PAGE, PAGE,
				   RMIG_MR_READ_TARGET, &back_tgt), 0);
	mock_set_silent(MOCK_SILENT_PASSIVE);
	rd[0] = read_at(&p, src, tgt, 0, PAGE, 1);
	assert_int_equal(P->post_read(p.d.c, rd, 1, &posted), 0);
	assert_int_equal(P->poll(p.d.c, &cqe, 1, 200), 0);
	for (unsigned i = 0; i < PAGE; i++)
		assert_int_equal(p.d.ram[4 * PAGE + i], 0);
	rd[1] = (struct rmig_read){ .addr = p.s.ram + 8 * PAGE, .len = PAGE,
				    .mr = back_tgt, .raddr = back_src->raddr,
				    .rkey = back_src->rkey, .ctx = (void *)2 };
	assert_int_equal(P->post_read(p.s.c, rd + 1, 1, &posted), 0);
	assert_ptr_equal(poll_one(&p.s).ctx, (void *)2);
	assert_memory_equal(p.s.ram + 8 * PAGE, p.d.ram, PAGE);
	/* The silenced read holds its target registration: close the
	 * connection (which flushes it) before deregistering. */
	P->conn_close(p.d.c);
	p.d.c = NULL;
	P->mr_dereg(back_src);
	P->mr_dereg(back_tgt);
	P->mr_dereg(src);
	P->mr_dereg(tgt);
	pair_close(&p);
}

static void test_fault_setup(void **state)
{
	struct end s;

	end_open(&s, "f:1", false, 8, 8);
	assert_int_equal(mock_fail_after("conn_create", 1, -EMFILE), 0);
	assert_int_equal(P->conn_create(s.dom, &s.c), -EMFILE);
	assert_int_equal(P->conn_create(s.dom, &s.c), 0);
	assert_int_equal(mock_fail_after("establish", 1, -ENETUNREACH), 0);
	assert_int_equal(P->conn_establish(s.c, 100), -ENETUNREACH);
	end_close(&s);
}

/* ------------------------------------------------------------------ */
/* Delay, concurrency, a threaded stream                               */

struct writer {
	struct pair *p;
	pthread_barrier_t *bar;
	unsigned n;
	uint64_t ms;
};

static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	struct rmig_iov iov = { w->p->s.ram, 64, w->p->s.ram_mr };
	uint64_t t0;

	pthread_barrier_wait(w->bar);
	t0 = now_ms();
	for (unsigned i = 0; i < w->n; i++)
		if (prov_write(P, w->p->s.c, &iov, 1, w->p->d.ram_mr->raddr,
			     w->p->d.ram_mr->rkey, NULL, i + 1 == w->n))
			return NULL;
	if (P->poll(w->p->s.c, &(struct rmig_cqe){ 0 }, 1, 5000) == 1)
		w->ms = now_ms() - t0;
	return NULL;
}

static void test_delay(void **state)
{
	struct pair p[2];
	struct writer w[2];
	pthread_t t[2];
	pthread_barrier_t bar;

	pair_open(&p[0]);
	pair_open(&p[1]);
	mock_set_delay_us(25000);
	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct writer){ &p[i], &bar, 4, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, writer_thread,
						&w[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < 2; i++)
		assert_true(w[i].ms >= 90); /* 4 x 25 ms */
	/* The two connections' writes slept side by side. */
	assert_int_equal(mock_max_concurrent_writes(), 2);
	assert_int_equal(mock_count_writes(), 8);
	pair_close(&p[0]);
	pair_close(&p[1]);
}

/*
 * A windowed stream like rmig's data path: the source writes slot i % W of
 * the destination's RAM, then sends a header; the destination checks the
 * slot's bytes on the header's arrival, reposts and acknowledges; the
 * source reuses a slot only after its acknowledgement.  Under TSan this
 * proves the mock orders write -> send -> peer's poll and nothing more is
 * needed.  A third thread keeps waking both connections.
 */
#define STREAM_N 600
#define STREAM_W 8

struct stream {
	struct pair *p;
	int ret;
};

static int stream_src(struct stream *st)
{
	struct end *s = &st->p->s, *d = &st->p->d;
	unsigned acked = 0, sent = 0, done = 0;

	while (acked < STREAM_N) {
		struct rmig_cqe c[8];
		int n;

		if (sent < STREAM_N && sent - acked < STREAM_W) {
			unsigned w = sent % STREAM_W;
			struct rmig_iov iov = { s->ram + w * PAGE, PAGE,
						s->ram_mr };

			memset(s->ram + w * PAGE, (int)(sent & 0xff), PAGE);
			if (prov_write(P, s->c, &iov, 1, d->ram_mr->raddr + w * PAGE,
				     d->ram_mr->rkey, NULL, false))
				return -1;
			*(uint32_t *)slot(s, STREAM_W + w) = sent;
			if (prov_send(P, s->c, slot(s, STREAM_W + w), 4, s->msg_mr,
				    sent, (void *)(uintptr_t)(STREAM_W + w)))
				return -2;
			sent++;
			continue;
		}
		n = P->poll(s->c, c, 8, 1000);
		if (n < 0)
			return -3;
		for (int i = 0; i < n; i++) {
			if (c[i].op == RMIG_CQE_SEND) {
				done++;
				continue;
			}
			if (c[i].imm != acked)
				return -4;
			acked++;
			if (P->post_recv(s->c, slot(s, (uintptr_t)c[i].ctx - 1),
					 MSG_SIZE, s->msg_mr, c[i].ctx))
				return -5;
		}
	}
	while (done < STREAM_N) {
		struct rmig_cqe c[8];
		int n = P->poll(s->c, c, 8, 1000);

		if (n <= 0)
			return -6;
		done += (unsigned)n;
	}
	return 0;
}

static int stream_dst(struct stream *st)
{
	struct end *d = &st->p->d;
	unsigned got = 0, acks = 0;

	while (got < STREAM_N || acks < STREAM_N) {
		struct rmig_cqe c[8];
		int n = P->poll(d->c, c, 8, 1000);

		if (n < 0)
			return -10;
		for (int i = 0; i < n; i++) {
			unsigned w;

			if (c[i].op == RMIG_CQE_SEND) {
				acks++;
				continue;
			}
			if (c[i].imm != got)
				return -11;
			w = got % STREAM_W;
			for (unsigned b = 0; b < PAGE; b += 97)
				if (d->ram[w * PAGE + b] != (got & 0xff))
					return -12;
			if (P->post_recv(d->c, slot(d, (uintptr_t)c[i].ctx - 1),
					 MSG_SIZE, d->msg_mr, c[i].ctx))
				return -13;
			/* The ack reuses the header's own slot content. */
			if (prov_send(P, d->c, slot(d, STREAM_W + w), 0, d->msg_mr,
				    got, NULL))
				return -14;
			got++;
		}
	}
	return 0;
}

static void *stream_src_thread(void *arg)
{
	struct stream *st = arg;

	st->ret = stream_src(st);
	return NULL;
}

static void *stream_dst_thread(void *arg)
{
	struct stream *st = arg;

	st->ret = stream_dst(st);
	return NULL;
}

struct wake_spam {
	struct pair *p;
	unsigned np;
	_Atomic bool stop;
};

static void *wake_spam_thread(void *arg)
{
	struct wake_spam *w = arg;

	while (!atomic_load(&w->stop)) {
		for (unsigned i = 0; i < w->np; i++) {
			P->conn_wake(w->p[i].s.c);
			P->conn_wake(w->p[i].d.c);
		}
		sleep_ms(1);
	}
	return NULL;
}

static void test_threaded_stream(void **state)
{
	enum { NP = 2 };
	struct pair p[NP];
	struct stream src[NP], dst[NP];
	struct wake_spam ws = { .p = p, .np = NP };
	pthread_t ts[NP], td[NP], tw;

	for (int i = 0; i < NP; i++) {
		pair_open_depth(&p[i], MSG_SLOTS, 64);
		/* Before either thread runs: a header finding no receive
		 * would be receiver-not-ready. */
		post_recvs(&p[i].s, STREAM_W);
		post_recvs(&p[i].d, STREAM_W);
		src[i] = (struct stream){ .p = &p[i], .ret = 1 };
		dst[i] = (struct stream){ .p = &p[i], .ret = 1 };
	}
	assert_int_equal(pthread_create(&tw, NULL, wake_spam_thread, &ws), 0);
	for (int i = 0; i < NP; i++) {
		assert_int_equal(pthread_create(&td[i], NULL, stream_dst_thread,
						&dst[i]), 0);
		assert_int_equal(pthread_create(&ts[i], NULL, stream_src_thread,
						&src[i]), 0);
	}
	for (int i = 0; i < NP; i++) {
		pthread_join(ts[i], NULL);
		pthread_join(td[i], NULL);
	}
	atomic_store(&ws.stop, true);
	pthread_join(tw, NULL);
	for (int i = 0; i < NP; i++) {
		if (src[i].ret || dst[i].ret)
			fail_msg("pair %d: source %d destination %d (%s)", i,
				 src[i].ret, dst[i].ret, rmig_last_error());
	}
	assert_int_equal(mock_count_writes(), NP * STREAM_N);
	assert_int_equal(mock_count_sends(), 2 * NP * STREAM_N);
	for (int i = 0; i < NP; i++)
		pair_close(&p[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_mr),
		T(test_registry),
		T(test_listen_names),
		T(test_connect_refused),
		T(test_listen_get_timeout),
		T(test_establish_timeout),
		T(test_establish_gave_up),
		T(test_rejected),
		T(test_listen_close_wakes_get),
		T(test_peer_names),
		T(test_send_recv_in_order),
		T(test_receiver_not_ready),
		T(test_message_too_long),
		T(test_local_buffer_checks),
		T(test_local_access_checks),
		T(test_write_then_send),
		T(test_write_bad_key),
		T(test_write_read_only),
		T(test_write_past_end),
		T(test_write_before_start),
		T(test_write_own_key),
		T(test_send_queue_limit),
		T(test_recv_queue_limit),
		T(test_poll_timeout_and_wake),
		T(test_close_resets_peer),
		T(test_send_buffer_modified),
		T(test_fault_post),
		T(test_fault_cqe),
		T(test_fault_setup),
		T(test_read_checks),
		T(test_read_faults),
		T(test_delay),
		T(test_threaded_stream),
#undef T
	};

	return cmocka_run_group_tests_name("mock_provider", tests, NULL, NULL);
}

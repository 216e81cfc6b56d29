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
/* The provider's private header: test_random_keys looks at what the
 * domain granted (mr_mode, key size) to know whether rmig chose the keys. */
#include "../providers/fabric/fabric.h"

#define MSG 256          /* bytes per message slot */
#define NSLOT 16         /* receive slots (and send slots) per side */
#define DEPTH 32         /* rx/tx depth asked of the provider */
#define SMALL_DEPTH 4    /* ... by the queue-full test */
#define WAIT_MS 5000     /* generous bound for anything that should happen */
#define DEAD_MS 3000     /* a lost peer must be noticed within this */
#define WBUF (1u << 20)  /* write test buffers */

static const struct rmig_provider_ops *ops = &rmig_fabric_provider;
/* libfabric provider under test (see the top of the file). */
static const char *prov = "tcp";
/* The host every address is on, and "<host>:0" to listen on. */
static const char *host = "127.0.0.1";
static char listen_addr[96] = "127.0.0.1:0";
/* Depth for the next pair_setup (tests run one at a time). */
static unsigned depth = DEPTH;

struct side {
	struct rmig_prov_domain *dom;
	struct rmig_prov_attr attr;
	struct rmig_prov_conn *conn;
	struct rmig_prov_mr *mr; /* covers buf */
	char *buf;               /* NSLOT receive slots, then NSLOT send slots */
	/* Completions polled but not yet examined: one CQ carries both
	 * directions, which interleave; order holds within a direction. */
	struct rmig_cqe pend[2 * NSLOT];
	int npend;
};

struct pair {
	struct side pas; /* listening side */
	struct side act; /* connecting side */
	struct rmig_prov_listener *l;
	char name[128]; /* the listener's "host:port" */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Fail with the provider's message when @ret is negative. */
#define CHECK_OK(call)                                                         \
	do {                                                                   \
		int check_ret_ = (call);                                       \
		if (check_ret_ < 0)                                            \
			fail_msg("%s = %d: %s", #call, check_ret_,             \
				 rmig_err_msg());                              \
	} while (0)

static char *recv_slot(struct side *s, int i)
{
	return s->buf + (size_t)i * MSG;
}

static char *send_slot(struct side *s, int i)
{
	return s->buf + (size_t)(NSLOT + i) * MSG;
}

static void open_side(struct side *s, const char *address, bool passive)
{
	struct rmig_prov_params p = {
		.address = address,
		.subprovider = prov,
		.passive = passive,
		.rx_depth = depth,
		.tx_depth = depth,
	};

	CHECK_OK(ops->domain_open(&p, &s->dom, &s->attr));
	s->buf = calloc(2 * NSLOT, MSG);
	assert_non_null(s->buf);
	CHECK_OK(ops->mr_reg(s->dom, s->buf, 2 * NSLOT * MSG, RMIG_MR_MSG_BUF,
			     &s->mr));
}

static void post_recvs(struct side *s)
{
	for (int i = 0; i < NSLOT && i < (int)depth; i++)
		CHECK_OK(ops->post_recv(s->conn, recv_slot(s, i), MSG, s->mr,
					recv_slot(s, i)));
}

static void close_side(struct side *s)
{
	if (s->conn)
		ops->conn_close(s->conn);
	if (s->mr)
		ops->mr_dereg(s->mr);
	if (s->dom)
		ops->domain_close(s->dom);
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

/* Join @t, or end the whole test program if it is stuck. */
static void join_or_die(pthread_t t, int ms, const char *what)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (pthread_timedjoin_np(t, NULL, &ts)) {
		fprintf(stderr, "FATAL: %s did not finish within %d ms\n", what,
			ms);
		_exit(1);
	}
}

struct acceptor {
	struct pair *p;
	int ret;
	char msg[RMIG_ERR_MSG_MAX];
};

static void *accept_main(void *arg)
{
	struct acceptor *a = arg;
	struct side *s = &a->p->pas;

	a->ret = ops->listen_get(a->p->l, WAIT_MS, &s->conn);
	if (a->ret < 0)
		goto out;
	for (int i = 0; i < NSLOT && i < (int)depth && a->ret >= 0; i++)
		a->ret = ops->post_recv(s->conn, recv_slot(s, i), MSG, s->mr,
					recv_slot(s, i));
	if (a->ret < 0)
		goto out;
	a->ret = ops->conn_establish(s->conn, WAIT_MS);
out:
	if (a->ret < 0)
		snprintf(a->msg, sizeof(a->msg), "%s", rmig_err_msg());
	return NULL;
}

static int pair_setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	struct acceptor a = { .p = p };
	pthread_t t;

	assert_non_null(p);
	open_side(&p->pas, listen_addr, true);
	CHECK_OK(ops->listen(p->pas.dom, &p->l));
	CHECK_OK(ops->listen_name(p->l, p->name, sizeof(p->name)));
	open_side(&p->act, p->name, false);

	assert_int_equal(pthread_create(&t, NULL, accept_main, &a), 0);
	CHECK_OK(ops->conn_create(p->act.dom, &p->act.conn));
	post_recvs(&p->act);
	CHECK_OK(ops->conn_establish(p->act.conn, WAIT_MS));
	join_or_die(t, 2 * WAIT_MS, "accepting thread");
	if (a.ret < 0)
		fail_msg("accepting side: %d: %s", a.ret, a.msg);
	*state = p;
	return 0;
}

static int pair_setup_small(void **state)
{
	depth = SMALL_DEPTH;
	return pair_setup(state);
}

static int pair_teardown(void **state)
{
	struct pair *p = *state;

	depth = DEPTH;

	if (!p)
		return 0;
	close_side(&p->act);
	if (p->l)
		ops->listen_close(p->l);
	close_side(&p->pas);
	free(p);
	return 0;
}

/* Poll until @n completions arrived, within WAIT_MS. */
static void poll_n(struct rmig_prov_conn *c, struct rmig_cqe *cqe, int n)
{
	int64_t end = now_ms() + WAIT_MS;
	int got = 0;

	while (got < n) {
		int left = (int)(end - now_ms());
		int r;

		if (left <= 0)
			fail_msg("only %d of %d completions within %d ms", got,
				 n, WAIT_MS);
		r = ops->poll(c, cqe + got, n - got, left);
		if (r < 0)
			fail_msg("poll: %d: %s", r, rmig_err_msg());
		got += r;
	}
}

/* Nothing more may arrive on @c for @ms. */
static void poll_none(struct rmig_prov_conn *c, int ms)
{
	struct rmig_cqe cqe;
	int r = ops->poll(c, &cqe, 1, ms);

	if (r < 0)
		fail_msg("poll: %d: %s", r, rmig_err_msg());
	if (r > 0)
		fail_msg("unexpected completion op %d ctx %p", cqe.op, cqe.ctx);
}

static void send_msg(struct side *s, int slot, const char *text, uint32_t imm)
{
	size_t len = strlen(text) + 1;

	memcpy(send_slot(s, slot), text, len);
	CHECK_OK(ops->send(s->conn, send_slot(s, slot), len, s->mr, imm,
			   send_slot(s, slot)));
}

/* The next completion of kind @op on @s, polling as needed. */
static struct rmig_cqe next_cqe(struct side *s, enum rmig_cqe_op op)
{
	struct rmig_cqe c;

	for (;;) {
		for (int i = 0; i < s->npend; i++) {
			if (s->pend[i].op != op)
				continue;
			c = s->pend[i];
			memmove(&s->pend[i], &s->pend[i + 1],
				(size_t)(s->npend - i - 1) * sizeof(c));
			s->npend--;
			return c;
		}
		if (s->npend == (int)(sizeof(s->pend) / sizeof(s->pend[0])))
			fail_msg("no completion of op %d among %d", op, s->npend);
		poll_n(s->conn, &s->pend[s->npend++], 1);
	}
}

static void expect_send_done(struct side *s, int slot)
{
	struct rmig_cqe cqe = next_cqe(s, RMIG_CQE_SEND);

	assert_ptr_equal(cqe.ctx, send_slot(s, slot));
}

/* Expect the next receive on @s, in slot @slot, to hold @text and @imm. */
static void expect_recv(struct side *s, int slot, const char *text,
			uint32_t imm)
{
	struct rmig_cqe cqe = next_cqe(s, RMIG_CQE_RECV);

	assert_ptr_equal(cqe.ctx, recv_slot(s, slot));
	assert_int_equal(cqe.len, strlen(text) + 1);
	assert_int_equal(cqe.imm, imm);
	assert_string_equal(recv_slot(s, slot), text);
}

/* ------------------------------------------------------------------ */

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

static void test_send_both_ways(void **state)
{
	struct pair *p = *state;

	send_msg(&p->act, 0, "hello from the source", 0x12345678u);
	send_msg(&p->act, 1, "second", 0xffffffffu);
	send_msg(&p->pas, 0, "hello back", 0u);
	send_msg(&p->pas, 1, "", 0x80000001u);

	expect_recv(&p->pas, 0, "hello from the source", 0x12345678u);
	expect_recv(&p->pas, 1, "second", 0xffffffffu);
	expect_recv(&p->act, 0, "hello back", 0u);
	expect_recv(&p->act, 1, "", 0x80000001u);
	expect_send_done(&p->act, 0);
	expect_send_done(&p->act, 1);
	expect_send_done(&p->pas, 0);
	expect_send_done(&p->pas, 1);
	assert_int_equal(p->act.npend, 0);
	assert_int_equal(p->pas.npend, 0);
	poll_none(p->act.conn, 50);
	poll_none(p->pas.conn, 50);
}

/* Many rounds through every slot, reposting: order and reuse. */
static void test_many_messages(void **state)
{
	struct pair *p = *state;
	struct rmig_cqe cqe[NSLOT];
	char text[32];

	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < NSLOT; i++) {
			snprintf(text, sizeof(text), "r%d m%d", round, i);
			send_msg(&p->act, i, text, (uint32_t)(round * NSLOT + i));
		}
		poll_n(p->pas.conn, cqe, NSLOT);
		for (int i = 0; i < NSLOT; i++) {
			snprintf(text, sizeof(text), "r%d m%d", round, i);
			assert_int_equal(cqe[i].op, RMIG_CQE_RECV);
			assert_ptr_equal(cqe[i].ctx, recv_slot(&p->pas, i));
			assert_int_equal(cqe[i].imm, round * NSLOT + i);
			assert_string_equal(recv_slot(&p->pas, i), text);
			CHECK_OK(ops->post_recv(p->pas.conn,
						recv_slot(&p->pas, i), MSG,
						p->pas.mr, recv_slot(&p->pas, i)));
		}
		poll_n(p->act.conn, cqe, NSLOT);
		for (int i = 0; i < NSLOT; i++) {
			assert_int_equal(cqe[i].op, RMIG_CQE_SEND);
			assert_ptr_equal(cqe[i].ctx, send_slot(&p->act, i));
		}
	}
}

struct wbufs {
	uint8_t *src, *dst;
	struct rmig_prov_mr *smr, *dmr;
};

static void wbufs_open(struct pair *p, struct wbufs *w)
{
	w->src = malloc(WBUF);
	w->dst = calloc(1, WBUF);
	assert_non_null(w->src);
	assert_non_null(w->dst);
	CHECK_OK(ops->mr_reg(p->act.dom, w->src, WBUF, RMIG_MR_WRITE_SOURCE,
			     &w->smr));
	CHECK_OK(ops->mr_reg(p->pas.dom, w->dst, WBUF, RMIG_MR_WRITE_TARGET,
			     &w->dmr));
	assert_ptr_equal(w->dmr->addr, w->dst);
	assert_int_equal(w->dmr->len, WBUF);
}

static void wbufs_close(struct wbufs *w)
{
	free(w->src);
	free(w->dst);
}

/* Remote address of byte @off of the destination buffer. */
static uint64_t dst_raddr(const struct wbufs *w, size_t off)
{
	return w->dmr->raddr + off;
}

/* Unsignaled writes then a send: the send's arrival proves the writes'. */
static void test_write_then_send(void **state)
{
	struct pair *p = *state;
	struct wbufs w;
	struct rmig_cqe cqe;
	unsigned niov = p->act.attr.max_iov < 3 ? p->act.attr.max_iov : 3;

	wbufs_open(p, &w);
	for (int round = 0; round < 8; round++) {
		/* Three runs of the source, scattered, land contiguously at
		 * a different destination offset each round. */
		size_t seg = 64 * 1024 + (size_t)round * 4096 + 13;
		size_t off = (size_t)round * 1000 + 7;
		struct rmig_iov iov[3];
		size_t total = 0;

		for (size_t i = 0; i < WBUF; i++)
			w.src[i] = (uint8_t)(i * 7 + (size_t)round * 31 + 1);
		for (unsigned i = 0; i < niov; i++) {
			iov[i].addr = w.src + (size_t)i * 200000;
			iov[i].len = seg;
			iov[i].mr = w.smr;
			total += seg;
		}
		memset(w.dst, 0, WBUF);
		CHECK_OK(ops->write(p->act.conn, iov, niov, dst_raddr(&w, off),
				    w.dmr->rkey, NULL, false));
		/* A second, small unsignaled write right behind. */
		CHECK_OK(ops->write(p->act.conn, &(struct rmig_iov){
					    w.src + 900000, 4096, w.smr },
				    1, dst_raddr(&w, off + total), w.dmr->rkey,
				    NULL, false));
		send_msg(&p->act, 0, "pages written", 0xabc00000u + (uint32_t)round);

		poll_n(p->pas.conn, &cqe, 1);
		assert_int_equal(cqe.op, RMIG_CQE_RECV);
		assert_int_equal(cqe.imm, 0xabc00000u + (uint32_t)round);
		/* Checked at once: no further poll, no sleep. */
		for (unsigned i = 0; i < niov; i++)
			assert_memory_equal(w.dst + off + (size_t)i * seg,
					    w.src + (size_t)i * 200000, seg);
		assert_memory_equal(w.dst + off + total, w.src + 900000, 4096);
		for (size_t i = 0; i < off; i++)
			assert_int_equal(w.dst[i], 0);
		assert_int_equal(w.dst[off + total + 4096], 0);
		CHECK_OK(ops->post_recv(p->pas.conn, recv_slot(&p->pas, 0), MSG,
					p->pas.mr, recv_slot(&p->pas, 0)));

		/* The writer sees the send, and no write completions. */
		expect_send_done(&p->act, 0);
	}
	poll_none(p->act.conn, 50);
	ops->mr_dereg(w.smr);
	ops->mr_dereg(w.dmr);
	wbufs_close(&w);
}

static void test_signaled_write(void **state)
{
	struct pair *p = *state;
	struct wbufs w;
	struct rmig_cqe cqe;
	int tag;

	wbufs_open(p, &w);
	for (size_t i = 0; i < WBUF; i++)
		w.src[i] = (uint8_t)(i ^ (i >> 8));
	CHECK_OK(ops->write(p->act.conn, &(struct rmig_iov){ w.src, WBUF, w.smr },
			    1, dst_raddr(&w, 0), w.dmr->rkey, &tag, true));
	poll_n(p->act.conn, &cqe, 1);
	assert_int_equal(cqe.op, RMIG_CQE_WRITE);
	assert_ptr_equal(cqe.ctx, &tag);
	send_msg(&p->act, 0, "done", 1);
	expect_recv(&p->pas, 0, "done", 1);
	assert_memory_equal(w.dst, w.src, WBUF);
	expect_send_done(&p->act, 0);
	/* Writes produce nothing on the target's queue. */
	poll_none(p->pas.conn, 50);
	ops->mr_dereg(w.smr);
	ops->mr_dereg(w.dmr);
	wbufs_close(&w);
}

struct blocked_poll {
	struct rmig_prov_conn *conn;
	int ret;
	int64_t returned_at;
	atomic_bool started;
	atomic_bool done;
};

static void *blocked_poll_main(void *arg)
{
	struct blocked_poll *b = arg;
	struct rmig_cqe cqe;

	/* Release: pairs with the acquire load in the waking thread. */
	atomic_store_explicit(&b->started, true, memory_order_release);
	b->ret = ops->poll(b->conn, &cqe, 1, -1);
	b->returned_at = now_ms();
	/* Release: publishes ret/returned_at to the acquire load of done. */
	atomic_store_explicit(&b->done, true, memory_order_release);
	return NULL;
}

static void test_wake(void **state)
{
	struct pair *p = *state;
	struct blocked_poll b = { .conn = p->act.conn };
	struct rmig_cqe cqe;
	int64_t t0, woke;
	pthread_t t;

	/* A wake before the poll is not lost: the next poll returns 0. */
	ops->conn_wake(p->act.conn);
	t0 = now_ms();
	assert_int_equal(ops->poll(p->act.conn, &cqe, 1, -1), 0);
	assert_true(now_ms() - t0 < 1000);
	/* ...and it was consumed: the following poll waits (and does not
	 * fail: sockets' fi_cq_sread reports the stale fi_cq_signal() of
	 * that wake as -FI_ECANCELED). */
	t0 = now_ms();
	assert_int_equal(ops->poll(p->act.conn, &cqe, 1, 300), 0);
	assert_true(now_ms() - t0 >= 250);
	/* Two wakes while nobody polls count as one. */
	ops->conn_wake(p->act.conn);
	ops->conn_wake(p->act.conn);
	t0 = now_ms();
	assert_int_equal(ops->poll(p->act.conn, &cqe, 1, -1), 0);
	assert_true(now_ms() - t0 < 1000);
	t0 = now_ms();
	assert_int_equal(ops->poll(p->act.conn, &cqe, 1, 300), 0);
	assert_true(now_ms() - t0 >= 250);
	/* A consumed wake does not disturb the next message either. */
	send_msg(&p->pas, 0, "after the wakes", 7);
	expect_recv(&p->act, 0, "after the wakes", 7);
	expect_send_done(&p->pas, 0);

	/* A wake from another thread ends a poll blocked forever. */
	for (int round = 0; round < 5; round++) {
		/* Relaxed: no poller runs now; pthread_create publishes. */
		atomic_store_explicit(&b.started, false, memory_order_relaxed);
		atomic_store_explicit(&b.done, false, memory_order_relaxed);
		assert_int_equal(pthread_create(&t, NULL, blocked_poll_main, &b), 0);
		/* Acquire: pairs with the release store in the poller. */
		while (!atomic_load_explicit(&b.started, memory_order_acquire))
			sleep_ms(1);
		sleep_ms(round * 50); /* 0 ms: the wake may race the poll */
		/* Acquire: pairs with the release store of done. */
		assert_false(atomic_load_explicit(&b.done, memory_order_acquire));
		woke = now_ms();
		ops->conn_wake(p->act.conn);
		join_or_die(t, 3000, "poll blocked after conn_wake");
		assert_int_equal(b.ret, 0);
		assert_true(b.returned_at - woke < 1000);
	}
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
	assert_true(ops->send(other->conn, send_slot(other, 0), 1, other->mr, 0,
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

struct target_poller {
	struct rmig_prov_conn *conn;
	int ret;
	atomic_bool stop;
};

/* Keep the target's queue polled (tcp moves data only when both ends
 * poll), as a destination channel thread does. */
static void *target_poller_main(void *arg)
{
	struct target_poller *t = arg;
	struct rmig_cqe cqe;

	/* Start late, so the writer first fills the socket and its queue. */
	sleep_ms(300);
	/* Acquire: pairs with the release store that stops us. */
	while (!atomic_load_explicit(&t->stop, memory_order_acquire)) {
		int r = ops->poll(t->conn, &cqe, 1, 50);

		if (r != 0) {
			t->ret = r < 0 ? r : -EPROTO;
			break;
		}
	}
	return NULL;
}

/* Far more signaled writes than the queue depth, posted without polling
 * while the target is not polling yet: every post must succeed (retrying
 * -FI_EAGAIN with progress where the provider enforces its queue size; the
 * 1.17 tcp provider does not, it queues them) and poll must then return
 * every completion, in posting order. */
static void test_writes_beyond_depth(void **state)
{
	struct pair *p = *state;
	struct target_poller tp = { .conn = p->pas.conn };
	enum { NW = 200, SEG = 64 * 1024 };
	static int tags[NW];
	struct rmig_cqe cqe[NSLOT];
	struct wbufs w;
	pthread_t t;
	int got = 0;

	assert_int_equal(p->act.attr.max_tx, SMALL_DEPTH);
	wbufs_open(p, &w);
	for (size_t i = 0; i < WBUF; i++)
		w.src[i] = (uint8_t)(i * 13 + 5);
	atomic_init(&tp.stop, false); /* before the poller thread exists */
	assert_int_equal(pthread_create(&t, NULL, target_poller_main, &tp), 0);
	for (int i = 0; i < NW; i++) {
		size_t off = (size_t)i * SEG % (WBUF - SEG);

		CHECK_OK(ops->write(p->act.conn,
				    &(struct rmig_iov){ w.src + off, SEG, w.smr },
				    1, dst_raddr(&w, off), w.dmr->rkey, &tags[i],
				    true));
	}
	while (got < NW) {
		int r = ops->poll(p->act.conn, cqe, NSLOT, WAIT_MS);

		if (r <= 0)
			fail_msg("poll after %d of %d writes: %d: %s", got, NW,
				 r, rmig_err_msg());
		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(cqe[i].op, RMIG_CQE_WRITE);
			assert_ptr_equal(cqe[i].ctx, &tags[got]);
		}
	}
	/* Release: pairs with the acquire load in the poller. */
	atomic_store_explicit(&tp.stop, true, memory_order_release);
	join_or_die(t, 2000, "target poller");
	assert_int_equal(tp.ret, 0);
	send_msg(&p->act, 0, "all written", 9);
	expect_recv(&p->pas, 0, "all written", 9);
	assert_memory_equal(w.dst, w.src, (size_t)(NW * SEG) < WBUF - SEG ?
						  (size_t)(NW * SEG) : WBUF - SEG);
	ops->mr_dereg(w.smr);
	ops->mr_dereg(w.dmr);
	wbufs_close(&w);
}

/* Several connections between the same two domains, each driven by its
 * own pair of threads at the same time: write + send, then an ack. */
#define NPAR 3
#define PAR_ROUNDS 40
#define PAR_SEG (64 * 1024)

struct par_conn {
	int k;
	struct rmig_prov_conn *conn;
	struct rmig_prov_mr *mr;  /* msg buffer */
	char *buf;                /* slot 0: receive, slot 1: send */
	const struct wbufs *w;
	int ret;
	char msg[RMIG_ERR_MSG_MAX];
};

static uint8_t par_byte(int k, int round, size_t i)
{
	return (uint8_t)(i * 3 + (size_t)round * 17 + (size_t)k * 101);
}

static int par_fail(struct par_conn *pc, const char *what, int r)
{
	pc->ret = r < 0 ? r : -EPROTO;
	snprintf(pc->msg, sizeof(pc->msg), "conn %d: %s: %d: %s", pc->k, what,
		 r, r < 0 ? rmig_err_msg() : "");
	return pc->ret;
}

/* Poll until a RECV arrives (other completions are sends: skipped). */
static int par_wait_recv(struct par_conn *pc, uint32_t *imm)
{
	int64_t end = now_ms() + WAIT_MS;
	struct rmig_cqe cqe;

	while (now_ms() < end) {
		int r = ops->poll(pc->conn, &cqe, 1, 100);

		if (r < 0)
			return par_fail(pc, "poll", r);
		if (r == 1 && cqe.op == RMIG_CQE_RECV) {
			*imm = cqe.imm;
			return ops->post_recv(pc->conn, pc->buf, MSG, pc->mr,
					      pc->buf) < 0 ?
				       par_fail(pc, "post_recv", -1) : 0;
		}
	}
	return par_fail(pc, "no message in time", 0);
}

static void *par_src_main(void *arg)
{
	struct par_conn *pc = arg;
	uint8_t *src = pc->w->src + (size_t)pc->k * PAR_SEG;
	uint32_t imm;

	for (int round = 0; round < PAR_ROUNDS; round++) {
		for (size_t i = 0; i < PAR_SEG; i++)
			src[i] = par_byte(pc->k, round, i);
		if (ops->write(pc->conn,
			       &(struct rmig_iov){ src, PAR_SEG, pc->w->smr }, 1,
			       dst_raddr(pc->w, (size_t)pc->k * PAR_SEG),
			       pc->w->dmr->rkey, NULL, false) < 0)
			return par_fail(pc, "write", -1), NULL;
		if (ops->send(pc->conn, pc->buf + MSG, 8, pc->mr,
			      (uint32_t)round, NULL) < 0)
			return par_fail(pc, "send", -1), NULL;
		if (par_wait_recv(pc, &imm))
			return NULL;
		if (imm != (uint32_t)round)
			return par_fail(pc, "ack for the wrong round", 0), NULL;
	}
	return NULL;
}

static void *par_dst_main(void *arg)
{
	struct par_conn *pc = arg;
	const uint8_t *dst = pc->w->dst + (size_t)pc->k * PAR_SEG;
	uint32_t imm;

	for (int round = 0; round < PAR_ROUNDS; round++) {
		if (par_wait_recv(pc, &imm))
			return NULL;
		if (imm != (uint32_t)round)
			return par_fail(pc, "header for the wrong round", 0), NULL;
		for (size_t i = 0; i < PAR_SEG; i++)
			if (dst[i] != par_byte(pc->k, round, i))
				return par_fail(pc, "written bytes missing", 0), NULL;
		if (ops->send(pc->conn, pc->buf + MSG, 8, pc->mr,
			      (uint32_t)round, NULL) < 0)
			return par_fail(pc, "send", -1), NULL;
	}
	return NULL;
}

struct par_acceptor {
	struct rmig_prov_listener *l;
	struct par_conn *dst;
	int ret;
	char msg[RMIG_ERR_MSG_MAX];
};

static void *par_accept_main(void *arg)
{
	struct par_acceptor *a = arg;

	for (int k = 0; k < NPAR; k++) {
		struct par_conn *pc = &a->dst[k];

		if ((a->ret = ops->listen_get(a->l, WAIT_MS, &pc->conn)) < 0 ||
		    (a->ret = ops->post_recv(pc->conn, pc->buf, MSG, pc->mr,
					     pc->buf)) < 0 ||
		    (a->ret = ops->conn_establish(pc->conn, WAIT_MS)) < 0) {
			snprintf(a->msg, sizeof(a->msg), "%s", rmig_err_msg());
			break;
		}
	}
	return NULL;
}

static void test_parallel_conns(void **state)
{
	struct pair *p = *state;
	struct par_conn src[NPAR] = { 0 }, dst[NPAR] = { 0 };
	struct par_acceptor a = { .l = p->l, .dst = dst };
	pthread_t ts[NPAR], td[NPAR], ta;
	struct wbufs w;

	assert_true(NPAR * PAR_SEG <= WBUF);
	wbufs_open(p, &w);
	for (int k = 0; k < NPAR; k++) {
		src[k] = (struct par_conn){ .k = k, .w = &w };
		dst[k] = (struct par_conn){ .k = k, .w = &w };
		src[k].buf = calloc(2, MSG);
		dst[k].buf = calloc(2, MSG);
		assert_non_null(src[k].buf);
		assert_non_null(dst[k].buf);
		CHECK_OK(ops->mr_reg(p->act.dom, src[k].buf, 2 * MSG, RMIG_MR_MSG_BUF,
				     &src[k].mr));
		CHECK_OK(ops->mr_reg(p->pas.dom, dst[k].buf, 2 * MSG, RMIG_MR_MSG_BUF,
				     &dst[k].mr));
	}
	assert_int_equal(pthread_create(&ta, NULL, par_accept_main, &a), 0);
	for (int k = 0; k < NPAR; k++) {
		CHECK_OK(ops->conn_create(p->act.dom, &src[k].conn));
		CHECK_OK(ops->post_recv(src[k].conn, src[k].buf, MSG, src[k].mr,
					src[k].buf));
		CHECK_OK(ops->conn_establish(src[k].conn, WAIT_MS));
	}
	join_or_die(ta, 2 * WAIT_MS, "accepting thread");
	if (a.ret < 0)
		fail_msg("accepting side: %d: %s", a.ret, a.msg);

	for (int k = 0; k < NPAR; k++) {
		assert_int_equal(pthread_create(&td[k], NULL, par_dst_main, &dst[k]), 0);
		assert_int_equal(pthread_create(&ts[k], NULL, par_src_main, &src[k]), 0);
	}
	for (int k = 0; k < NPAR; k++) {
		join_or_die(ts[k], 4 * WAIT_MS, "source thread");
		join_or_die(td[k], 4 * WAIT_MS, "destination thread");
	}
	for (int k = 0; k < NPAR; k++) {
		if (src[k].ret)
			fail_msg("%s", src[k].msg);
		if (dst[k].ret)
			fail_msg("%s", dst[k].msg);
	}
	for (int k = 0; k < NPAR; k++) {
		ops->conn_close(src[k].conn);
		ops->conn_close(dst[k].conn);
		ops->mr_dereg(src[k].mr);
		ops->mr_dereg(dst[k].mr);
		free(src[k].buf);
		free(dst[k].buf);
	}
	ops->mr_dereg(w.smr);
	ops->mr_dereg(w.dmr);
	wbufs_close(&w);
}

static int count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* Opening and closing everything leaves no descriptor behind. */
static void test_no_fd_leak(void **state)
{
	void *st = NULL;
	int base = -1;

	(void)state;
	for (int round = 0; round < 4; round++) {
		pair_setup(&st);
		pair_teardown(&st);
		st = NULL;
		if (round == 0)
			base = count_fds(); /* after libfabric's one-time setup */
		else
			assert_int_equal(count_fds(), base);
	}
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
	if (ops->send(s.conn, send_slot(&s, 0), 11, s.mr, 42, NULL) < 0)
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

struct killer {
	pid_t pid;
	int64_t killed_at;
	atomic_bool done;
};

/* Kill the peer while the main thread is blocked in poll(-1). */
static void *killer_main(void *arg)
{
	struct killer *k = arg;

	sleep_ms(250); /* mid-slice: not on a 100 ms boundary */
	k->killed_at = now_ms();
	kill(k->pid, SIGKILL);
	/* Release: publishes killed_at to the acquire load after the poll. */
	atomic_store_explicit(&k->done, true, memory_order_release);
	return NULL;
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
	assert_true(ops->send(s.conn, send_slot(&s, 0), 1, s.mr, 0, NULL) < 0);
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
	/* Last resort below the ctest TIMEOUT (verbs: the VM runs under TCG). */
	alarm(strcmp(prov, "verbs") ? 55 : 280);
	if (chosen && provider_missing())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * provider_suite.c - the pair, buffers, checks and cases that
 * test_fabric_provider and test_verbs_provider share (provider_suite.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "provider_suite.h"

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

char *recv_slot(struct side *s, int i)
{
	return s->buf + (size_t)i * MSG;
}

char *send_slot(struct side *s, int i)
{
	return s->buf + (size_t)(NSLOT + i) * MSG;
}

void open_side(struct side *s, const char *address, bool passive)
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

void post_recvs(struct side *s)
{
	for (int i = 0; i < NSLOT && i < (int)depth; i++)
		CHECK_OK(ops->post_recv(s->conn, recv_slot(s, i), MSG, s->mr,
					recv_slot(s, i)));
}

void close_side(struct side *s)
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

void join_or_die(pthread_t t, int ms, const char *what)
{
	struct timespec ts = rmig_timespec_after(CLOCK_REALTIME, ms);

	if (pthread_timedjoin_np(t, NULL, &ts)) {
		fprintf(stderr, "FATAL: %s did not finish within %d ms\n", what,
			ms);
		_exit(1);
	}
}

void *accept_main(void *arg)
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

/* Where the next pair_setup listens (tests run one at a time). */
const char *pair_listen = listen_addr;

/* A pair with the current depth and pair_listen. */
int pair_setup_as(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	struct acceptor a = { .p = p };
	char target[160];
	pthread_t t;

	assert_non_null(p);
	open_side(&p->pas, pair_listen, true);
	CHECK_OK(ops->listen(p->pas.dom, &p->l));
	CHECK_OK(ops->listen_name(p->l, p->name, sizeof(p->name)));
	/* A wildcard listener is reached through the device's address. */
	if (!strncmp(p->name, "0.0.0.0:", 8))
		snprintf(target, sizeof(target), "%s:%s", host, p->name + 8);
	else
		snprintf(target, sizeof(target), "%s", p->name);
	open_side(&p->act, target, false);

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

/* The usual pair (whatever an earlier setup that failed half-way left
 * in depth and pair_listen). */
int pair_setup(void **state)
{
	depth = DEPTH;
	pair_listen = listen_addr;
	return pair_setup_as(state);
}

int pair_setup_small(void **state)
{
	depth = SMALL_DEPTH;
	pair_listen = listen_addr;
	return pair_setup_as(state);
}

/* Queues deeper than the device allows: the provider's own caps. */
int pair_setup_deep(void **state)
{
	depth = 1u << 20;
	pair_listen = listen_addr;
	return pair_setup_as(state);
}

/* The listener on the wildcard address (IPv4 hosts only). */
int pair_setup_any(void **state)
{
	if (strchr(host, ':'))
		skip();
	depth = DEPTH;
	pair_listen = "0.0.0.0:0";
	return pair_setup_as(state);
}

int pair_teardown(void **state)
{
	struct pair *p = *state;

	depth = DEPTH;
	pair_listen = listen_addr;
	if (!p)
		return 0;
	close_side(&p->act);
	if (p->l)
		ops->listen_close(p->l);
	close_side(&p->pas);
	free(p);
	return 0;
}

void poll_n(struct rmig_prov_conn *c, struct rmig_cqe *cqe, int n)
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

void poll_none(struct rmig_prov_conn *c, int ms)
{
	struct rmig_cqe cqe;
	int r = ops->poll(c, &cqe, 1, ms);

	if (r < 0)
		fail_msg("poll: %d: %s", r, rmig_err_msg());
	if (r > 0)
		fail_msg("unexpected completion op %d ctx %p", cqe.op, cqe.ctx);
}

void send_msg(struct side *s, int slot, const char *text, uint32_t imm)
{
	size_t len = strlen(text) + 1;

	memcpy(send_slot(s, slot), text, len);
	CHECK_OK(prov_send(ops, s->conn, send_slot(s, slot), len, s->mr, imm,
			   send_slot(s, slot)));
}

struct rmig_cqe next_cqe(struct side *s, enum rmig_cqe_op op)
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

void expect_send_done(struct side *s, int slot)
{
	struct rmig_cqe cqe = next_cqe(s, RMIG_CQE_SEND);

	assert_ptr_equal(cqe.ctx, send_slot(s, slot));
}

void expect_recv(struct side *s, int slot, const char *text,
			uint32_t imm)
{
	struct rmig_cqe cqe = next_cqe(s, RMIG_CQE_RECV);

	assert_ptr_equal(cqe.ctx, recv_slot(s, slot));
	assert_int_equal(cqe.len, strlen(text) + 1);
	assert_int_equal(cqe.imm, imm);
	assert_string_equal(recv_slot(s, slot), text);
}

void test_send_both_ways(void **state)
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

void test_many_messages(void **state)
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

void wbufs_open_len(struct pair *p, struct wbufs *w, size_t len)
{
	w->len = len;
	w->src = malloc(len);
	w->dst = calloc(1, len);
	assert_non_null(w->src);
	assert_non_null(w->dst);
	CHECK_OK(ops->mr_reg(p->act.dom, w->src, len, RMIG_MR_WRITE_SOURCE,
			     &w->smr));
	CHECK_OK(ops->mr_reg(p->pas.dom, w->dst, len, RMIG_MR_WRITE_TARGET,
			     &w->dmr));
	assert_ptr_equal(w->dmr->addr, w->dst);
	assert_int_equal(w->dmr->len, len);
}

void wbufs_open(struct pair *p, struct wbufs *w)
{
	wbufs_open_len(p, w, WBUF);
}

void wbufs_close(struct wbufs *w)
{
	if (w->smr)
		ops->mr_dereg(w->smr);
	if (w->dmr)
		ops->mr_dereg(w->dmr);
	free(w->src);
	free(w->dst);
}

/* Remote address of byte @off of the destination buffer. */
uint64_t dst_raddr(const struct wbufs *w, size_t off)
{
	return w->dmr->raddr + off;
}

void *blocked_poll_main(void *arg)
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

uint8_t par_byte(int k, int round, size_t i)
{
	return (uint8_t)(i * 3 + (size_t)round * 17 + (size_t)k * 101);
}

int par_fail(struct par_conn *pc, const char *what, int r)
{
	pc->ret = r < 0 ? r : -EPROTO;
	snprintf(pc->msg, sizeof(pc->msg), "conn %d: %s: %d: %s", pc->k, what,
		 r, r < 0 ? rmig_err_msg() : "");
	return pc->ret;
}

int par_wait_recv(struct par_conn *pc, uint32_t *imm)
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

void *par_src_main(void *arg)
{
	struct par_conn *pc = arg;
	uint8_t *src = pc->w->src + (size_t)pc->k * PAR_SEG;
	uint32_t imm;

	for (int round = 0; round < PAR_ROUNDS; round++) {
		for (size_t i = 0; i < PAR_SEG; i++)
			src[i] = par_byte(pc->k, round, i);
		if (prov_write(ops, pc->conn,
			       &(struct rmig_iov){ src, PAR_SEG, pc->w->smr }, 1,
			       dst_raddr(pc->w, (size_t)pc->k * PAR_SEG),
			       pc->w->dmr->rkey, NULL, false) < 0)
			return par_fail(pc, "write", -1), NULL;
		if (prov_send(ops, pc->conn, pc->buf + MSG, 8, pc->mr,
			      (uint32_t)round, NULL) < 0)
			return par_fail(pc, "send", -1), NULL;
		if (par_wait_recv(pc, &imm))
			return NULL;
		if (imm != (uint32_t)round)
			return par_fail(pc, "ack for the wrong round", 0), NULL;
	}
	return NULL;
}

void *par_dst_main(void *arg)
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
		if (prov_send(ops, pc->conn, pc->buf + MSG, 8, pc->mr,
			      (uint32_t)round, NULL) < 0)
			return par_fail(pc, "send", -1), NULL;
	}
	return NULL;
}

void *par_accept_main(void *arg)
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

/* Several connections between the same two domains, each driven by its
 * own pair of threads at the same time: write + send, then an ack. */
void test_parallel_conns(void **state)
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
		CHECK_OK(ops->mr_reg(p->act.dom, src[k].buf, 2 * MSG,
				     RMIG_MR_MSG_BUF,
				     &src[k].mr));
		CHECK_OK(ops->mr_reg(p->pas.dom, dst[k].buf, 2 * MSG,
				     RMIG_MR_MSG_BUF,
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
		join_or_die(ts[k], PAR_JOIN_MS, "source thread");
		join_or_die(td[k], PAR_JOIN_MS, "destination thread");
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
	wbufs_close(&w);
}

/* Opening and closing everything leaves no descriptor behind (after the
 * provider's one-time setup: libfabric's, or librdmacm's, which keeps the
 * device contexts open). */
void test_no_fd_leak(void **state)
{
	void *st = NULL;
	int base = -1;

	(void)state;
	for (int round = 0; round < 4; round++) {
		pair_setup(&st);
		pair_teardown(&st);
		st = NULL;
		if (round == 0)
			base = count_fds();
		else
			assert_int_equal(count_fds(), base);
	}
}

/* Unsignaled (multi-segment) writes then a send, chained where the
 * provider chains: the send's arrival proves the writes'. */
void test_write_then_send(void **state)
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
		CHECK_OK(prov_write(ops, p->act.conn, iov, niov, dst_raddr(&w, off),
				    w.dmr->rkey, NULL, false));
		/* A second, small unsignaled write right behind. */
		CHECK_OK(prov_write(ops, p->act.conn, &(struct rmig_iov){
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
	wbufs_close(&w);
}

void test_signaled_write(void **state)
{
	struct pair *p = *state;
	struct wbufs w;
	struct rmig_cqe cqe;
	int tag;

	wbufs_open(p, &w);
	for (size_t i = 0; i < WBUF; i++)
		w.src[i] = (uint8_t)(i ^ (i >> 8));
	CHECK_OK(prov_write(ops, p->act.conn, &(struct rmig_iov){ w.src, WBUF, w.smr },
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
	wbufs_close(&w);
}

void test_wake(void **state)
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

/* Kill the peer while the main thread is blocked in poll(-1). */
void *killer_main(void *arg)
{
	struct killer *k = arg;

	sleep_ms(250); /* mid-slice: not on a 100 ms boundary */
	k->killed_at = now_ms();
	kill(k->pid, SIGKILL);
	/* Release: publishes killed_at to the acquire load after the poll. */
	atomic_store_explicit(&k->done, true, memory_order_release);
	return NULL;
}

/* @len bytes of @pat in a memfd named @name, mapped read-only and
 * private: a file's pages the process may not write. */
uint8_t *ro_file_map(const uint8_t *pat, size_t len, const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	uint8_t *ro;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, pat, len), (ssize_t)len);
	ro = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(ro != MAP_FAILED);
	close(fd);
	return ro;
}

int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* ------------------------------------------------------------------ */
/* The posting contract (lib/provider.h): posted or -EAGAIN, never a wait
 * inside the op; batches in order.                                    */

/* Keep the target's queue polled (tcp moves data only when both ends
 * poll), as a destination channel thread does. */
void *target_poller_main(void *arg)
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

/* Poll @s's connection for write completions (at least one, at most the
 * @n - *got still due), the next of which must carry &tags[*got]. */
static void poll_tags(struct side *s, const int *tags, int *got, int n)
{
	struct rmig_cqe cqe[NSLOT];
	int r = ops->poll(s->conn, cqe, n - *got < NSLOT ? n - *got : NSLOT,
			  WAIT_MS);

	if (r <= 0)
		fail_msg("poll after %d writes: %d: %s", *got, r,
			 rmig_err_msg());
	for (int i = 0; i < r; i++, (*got)++) {
		assert_int_equal(cqe[i].op, RMIG_CQE_WRITE);
		assert_ptr_equal(cqe[i].ctx, &tags[*got]);
	}
}

/* The rest of @n write completions, then stop the target's poller; a
 * provider that enforces its queue size must have said -EAGAIN. */
static void finish_tags(struct pair *p, struct target_poller *tp,
			pthread_t t, const int *tags, int *got, int n,
			int eagain)
{
	while (*got < n)
		poll_tags(&p->act, tags, got, n);
	/* Release: pairs with the acquire load in the poller. */
	atomic_store_explicit(&tp->stop, true, memory_order_release);
	join_or_die(t, 2000, "target poller");
	assert_int_equal(tp->ret, 0);
	if (ps_queue_enforced)
		assert_true(eagain > 0);
}

/* Far more signaled writes than the queue depth, posted while the target
 * does not poll yet: a post on a full queue returns -EAGAIN at once (no
 * wait for room inside the op), and after polling, which retires
 * completions (and drives progress), posting again succeeds.  Completions
 * come in posting order and the data lands.  (libfabric's tcp does not
 * enforce its queue size, it queues: every post succeeds there.) */
void test_writes_beyond_depth(void **state)
{
	struct pair *p = *state;
	struct target_poller tp = { .conn = p->pas.conn };
	enum { NW = 200, SEG = 64 * 1024 };
	static int tags[NW];
	struct wbufs w;
	pthread_t t;
	int got = 0, eagain = 0;

	assert_int_equal(p->act.attr.max_tx, SMALL_DEPTH);
	wbufs_open(p, &w);
	for (size_t i = 0; i < WBUF; i++)
		w.src[i] = (uint8_t)(i * 13 + 5);
	atomic_init(&tp.stop, false); /* before the poller thread exists */
	assert_int_equal(pthread_create(&t, NULL, target_poller_main, &tp), 0);
	for (int i = 0; i < NW;) {
		size_t off = (size_t)i * SEG % (WBUF - SEG);
		int64_t t0 = now_ms();
		int r = prov_write(ops, p->act.conn,
				   &(struct rmig_iov){ w.src + off, SEG, w.smr },
				   1, dst_raddr(&w, off), w.dmr->rkey, &tags[i],
				   true);

		if (r == -EAGAIN) {
			/* At once: the provider did not wait for room (the
			 * old providers retried for seconds). */
			assert_true(now_ms() - t0 < 1000);
			assert_true(i - got >= 1);
			eagain++;
			poll_tags(&p->act, tags, &got, NW);
			continue;
		}
		CHECK_OK(r);
		i++;
	}
	finish_tags(p, &tp, t, tags, &got, NW, eagain);
	printf("# %d posts found the queue full\n", eagain);
	send_msg(&p->act, 0, "all written", 9);
	expect_recv(&p->pas, 0, "all written", 9);
	assert_memory_equal(w.dst, w.src, WBUF - SEG);
	expect_send_done(&p->act, 0);
	wbufs_close(&w);
}

/* One batch: writes (one of them scattered over several segments, one
 * signaled), then a send, in one post.  The send's arrival proves every
 * write landed; the writer sees the signaled write's completion, then the
 * send's, in posting order, and nothing for the others. */
void test_batch_post(void **state)
{
	struct pair *p = *state;
	unsigned niov = p->act.attr.max_iov < 3 ? p->act.attr.max_iov : 3;
	struct rmig_iov iov[4][3];
	struct rmig_write wr[4];
	struct rmig_cqe cqe;
	struct wbufs w;
	int tag;

	wbufs_open(p, &w);
	for (int round = 0; round < 6; round++) { /* 6 < NSLOT receives */
		size_t seg = 32 * 1024 + (size_t)round * 4096 + 5, at = 0;
		unsigned posted = 99;

		for (size_t i = 0; i < WBUF; i++)
			w.src[i] = (uint8_t)(i * 11 + (size_t)round * 3 + 2);
		memset(w.dst, 0, WBUF);
		for (int k = 0; k < 4; k++) {
			unsigned n = k == 1 ? niov : 1;
			size_t len = 0;

			for (unsigned j = 0; j < n; j++) {
				iov[k][j] = (struct rmig_iov){
					w.src + (size_t)(k * 3 + (int)j) * 70000,
					seg, w.smr };
				len += seg;
			}
			wr[k] = (struct rmig_write){
				.iov = iov[k], .niov = n,
				.raddr = dst_raddr(&w, at + 1), .rkey = w.dmr->rkey,
				.ctx = k == 2 ? (void *)&tag : NULL,
				.signaled = k == 2 };
			at += len + 1;
		}
		memcpy(send_slot(&p->act, 0), "batch", 6);
		CHECK_OK(ops->post(p->act.conn, wr, 4, &(struct rmig_send){
			.buf = send_slot(&p->act, 0), .len = 6,
			.mr = p->act.mr, .imm = 0x5b000000u + (uint32_t)round,
			.ctx = send_slot(&p->act, 0) }, &posted));
		assert_int_equal(posted, 5);

		poll_n(p->pas.conn, &cqe, 1);
		assert_int_equal(cqe.op, RMIG_CQE_RECV);
		assert_int_equal(cqe.imm, 0x5b000000u + (uint32_t)round);
		/* The receives posted in order: slot @round's now. */
		assert_ptr_equal(cqe.ctx, recv_slot(&p->pas, round));
		assert_string_equal(recv_slot(&p->pas, round), "batch");
		/* Checked at once: no further poll, no sleep. */
		at = 0;
		for (int k = 0; k < 4; k++) {
			assert_int_equal(w.dst[at], 0);
			for (unsigned j = 0; j < wr[k].niov; j++) {
				assert_memory_equal(w.dst + at + 1 + j * seg,
						    iov[k][j].addr, seg);
			}
			at += wr[k].niov * seg + 1;
		}
		assert_int_equal(w.dst[at], 0);

		/* The writer: the signaled write, then the send (one CQ,
		 * posting order). */
		poll_n(p->act.conn, &cqe, 1);
		assert_int_equal(cqe.op, RMIG_CQE_WRITE);
		assert_ptr_equal(cqe.ctx, &tag);
		poll_n(p->act.conn, &cqe, 1);
		assert_int_equal(cqe.op, RMIG_CQE_SEND);
		assert_ptr_equal(cqe.ctx, send_slot(&p->act, 0));
	}
	/* A batch of writes alone, then a send alone: the same ordering. */
	CHECK_OK(ops->post(p->act.conn, wr, 4, NULL, &(unsigned){ 0 }));
	send_msg(&p->act, 0, "after", 1);
	expect_recv(&p->pas, 6, "after", 1);
	poll_n(p->act.conn, &cqe, 1);
	assert_int_equal(cqe.op, RMIG_CQE_WRITE);
	expect_send_done(&p->act, 0);
	poll_none(p->act.conn, 50);
	wbufs_close(&w);
}

/* A batch longer than the queue: whatever the provider posts of it
 * (*posted; verbs posts all or nothing), the rest goes after polling, and
 * the send still arrives behind every write. */
void test_batch_beyond_depth(void **state)
{
	struct pair *p = *state;
	enum { NB = 3 * SMALL_DEPTH, SEG = 16 * 1024 };
	static int tags[NB];
	struct target_poller tp = { .conn = p->pas.conn };
	struct rmig_iov iov[NB];
	struct rmig_write wr[NB];
	struct rmig_send m = { .buf = send_slot(&p->act, 0), .len = 5,
			       .mr = p->act.mr, .imm = 77,
			       .ctx = send_slot(&p->act, 0) };
	unsigned done = 0;
	int got = 0, eagain = 0;
	struct wbufs w;
	pthread_t t;

	wbufs_open(p, &w);
	for (size_t i = 0; i < WBUF; i++)
		w.src[i] = (uint8_t)(i * 5 + 1);
	for (int k = 0; k < NB; k++) {
		iov[k] = (struct rmig_iov){ w.src + (size_t)k * SEG, SEG,
					    w.smr };
		wr[k] = (struct rmig_write){
			.iov = &iov[k], .niov = 1,
			.raddr = dst_raddr(&w, (size_t)k * SEG),
			.rkey = w.dmr->rkey, .ctx = &tags[k], .signaled = true };
	}
	memcpy(send_slot(&p->act, 0), "tail", 5);
	atomic_init(&tp.stop, false); /* before the poller thread exists */
	assert_int_equal(pthread_create(&t, NULL, target_poller_main, &tp), 0);
	while (done <= NB) {
		unsigned posted = 0;
		int r = ops->post(p->act.conn, wr + done, NB - done, &m,
				  &posted);

		assert_true(posted <= NB - done + 1);
		done += posted;
		if (!r) {
			assert_int_equal(done, NB + 1);
			break;
		}
		assert_int_equal(r, -EAGAIN);
		eagain++;
		poll_tags(&p->act, tags, &got, NB);
	}
	finish_tags(p, &tp, t, tags, &got, NB, eagain);
	expect_recv(&p->pas, 0, "tail", 77);
	assert_memory_equal(w.dst, w.src, (size_t)NB * SEG);
	expect_send_done(&p->act, 0);
	wbufs_close(&w);
}

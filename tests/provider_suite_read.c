/* SPDX-License-Identifier: MIT */
/*
 * provider_suite_read.c - the RDMA READ cases of the provider suite
 * (provider_suite.h), run the same on every provider: the connecting side
 * exposes memory as a read source (the migration source's RAM), the
 * listening side reads it into a read target (the destination fetching
 * pages in post-copy).
 *
 * The reader's completions are checked against what it posted; the
 * exposing side polls on a thread of its own meanwhile (libfabric's tcp
 * serves a read request only when the responder's endpoint makes
 * progress, as a source's channel does while it waits for messages), and
 * must see no completion at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "provider_suite.h"

/* Source and target of the reads: src on the connecting side (p->act),
 * dst on the listening side (p->pas), which reads. */
struct rbufs {
	uint8_t *src, *copy, *dst;
	size_t len, dlen;
	struct rmig_prov_mr *smr, *dmr;
	struct target_poller tp; /* polls the source side */
	pthread_t t;
};

static uint8_t read_byte(size_t i)
{
	return (uint8_t)(i * 29 + (i >> 11) + 3);
}

/* The source side's poller (target_poller_main, which fails on any
 * completion), until rbufs_close. */
static void responder_start(struct pair *p, struct rbufs *b)
{
	b->tp = (struct target_poller){ .conn = p->act.conn };
	atomic_init(&b->tp.stop, false); /* before the thread exists */
	assert_int_equal(pthread_create(&b->t, NULL, target_poller_main,
					&b->tp), 0);
}

/* @src (NULL: allocated, @len bytes of read_byte()) registered on the
 * connecting side as a read source; a zeroed target of @dlen bytes on the
 * listening side; the responder's poller started. */
static void rbufs_open(struct pair *p, struct rbufs *b, uint8_t *src,
		       size_t len, size_t dlen)
{
	memset(b, 0, sizeof(*b));
	b->len = len;
	b->dlen = dlen;
	if (src) {
		b->src = src;
	} else {
		b->src = malloc(len);
		assert_non_null(b->src);
		for (size_t i = 0; i < len; i++)
			b->src[i] = read_byte(i);
	}
	b->copy = malloc(len);
	b->dst = calloc(1, dlen);
	assert_non_null(b->copy);
	assert_non_null(b->dst);
	memcpy(b->copy, b->src, len);
	CHECK_OK(ops->mr_reg(p->act.dom, b->src, len, RMIG_MR_READ_SOURCE,
			     &b->smr));
	CHECK_OK(ops->mr_reg(p->pas.dom, b->dst, dlen, RMIG_MR_READ_TARGET,
			     &b->dmr));
	assert_ptr_equal(b->dmr->addr, b->dst);
	responder_start(p, b);
}

/* Stop the poller; its verdict when @check (a failed connection may fail
 * the responder's poll too), then free what rbufs_open made (@b->src only
 * when @own_src). */
static void rbufs_close(struct rbufs *b, bool check, bool own_src)
{
	/* Release: pairs with the acquire load in the poller. */
	atomic_store_explicit(&b->tp.stop, true, memory_order_release);
	join_or_die(b->t, 2000, "responder poller");
	if (check && b->tp.ret)
		fail_msg("the read source's side polled %d (a completion, or "
			 "an error: %s)", b->tp.ret, rmig_err_msg());
	if (b->smr)
		ops->mr_dereg(b->smr);
	if (b->dmr)
		ops->mr_dereg(b->dmr);
	if (own_src)
		free(b->src);
	free(b->copy);
	free(b->dst);
}

/* A read of @len bytes at offset @off of the source into offset @at of the
 * target, with context @ctx. */
static struct rmig_read read_of(const struct rbufs *b, size_t off,
				size_t len, size_t at, void *ctx)
{
	return (struct rmig_read){ .addr = b->dst + at, .len = len,
				   .mr = b->dmr, .raddr = b->smr->raddr + off,
				   .rkey = b->smr->rkey, .ctx = ctx };
}

/* Poll @s for read completions (at least one, at most @upto - *got), the
 * next of which must be rd[*got]'s: its context and length. */
static void poll_reads(struct side *s, const struct rmig_read *rd,
		       unsigned *got, unsigned upto)
{
	struct rmig_cqe cqe[NSLOT];
	unsigned want = upto - *got < NSLOT ? upto - *got : NSLOT;
	int r = ops->poll(s->conn, cqe, (int)want, WAIT_MS);

	if (r <= 0)
		fail_msg("poll after %u read completions: %d: %s", *got, r,
			 rmig_err_msg());
	for (int i = 0; i < r; i++, (*got)++) {
		assert_int_equal(cqe[i].op, RMIG_CQE_READ);
		assert_ptr_equal(cqe[i].ctx, rd[*got].ctx);
		assert_int_equal(cqe[i].len, rd[*got].len);
	}
}

/* Post @n reads on @s in order, and poll their completions, polling
 * whenever the provider says -EAGAIN and posting the rest again.  Returns
 * how many posts found no room. */
static int read_all(struct side *s, const struct rmig_read *rd, unsigned n)
{
	unsigned done = 0, got = 0;
	int eagain = 0;

	while (got < n) {
		if (done < n) {
			unsigned posted = 99999;
			int r = ops->post_read(s->conn, rd + done, n - done,
					       &posted);

			assert_true(posted <= n - done);
			done += posted;
			if (r == -EAGAIN) {
				/* Only with reads outstanding. */
				assert_true(done > got);
				eagain++;
			} else {
				CHECK_OK(r);
				assert_int_equal(done, n);
			}
		}
		poll_reads(s, rd, &got, done);
	}
	return eagain;
}

/* One batch of reads: small, odd and page-sized pieces at odd offsets,
 * and the whole source at once.  Each completes with its context and
 * length, in posting order; the bytes are the source's, nothing around
 * them is touched, and the source is unchanged. */
void test_read(void **state)
{
	struct pair *p = *state;
	static const struct {
		size_t off, len;
	} seg[] = {
		{ 0, 4096 }, { 3 * 4096 + 17, 1 }, { 100000, 65536 + 5 },
		{ WBUF - 4096, 4096 }, { 777, 12345 }, { 0, WBUF },
	};
	enum { NR = sizeof(seg) / sizeof(seg[0]) };
	struct rmig_read rd[NR];
	size_t at = WBUF; /* the pieces after the whole */
	int tags[NR];
	struct rbufs b;

	assert_true(p->pas.attr.max_read >= 1);
	rbufs_open(p, &b, NULL, WBUF, 2 * WBUF + NR * 64);
	for (int i = 0; i < NR; i++) {
		size_t to = seg[i].len == WBUF ? 0 : at + 1;

		rd[i] = read_of(&b, seg[i].off, seg[i].len, to, &tags[i]);
		if (seg[i].len != WBUF)
			at = to + seg[i].len; /* one byte apart */
	}
	printf("# %d reads, max_read %u: %d posts found no room\n", NR,
	       p->pas.attr.max_read, read_all(&p->pas, rd, NR));
	at = WBUF;
	for (int i = 0; i < NR; i++) {
		if (seg[i].len == WBUF) {
			assert_memory_equal(b.dst, b.copy, WBUF);
			continue;
		}
		assert_int_equal(b.dst[at], 0);
		assert_memory_equal(b.dst + at + 1, b.copy + seg[i].off,
				    seg[i].len);
		at += seg[i].len + 1;
	}
	for (size_t i = at; i < b.dlen; i++)
		assert_int_equal(b.dst[i], 0);
	assert_memory_equal(b.src, b.copy, WBUF);
	/* Reads produce nothing on the reader's queue but their own. */
	poll_none(p->pas.conn, 50);
	rbufs_close(&b, true, true);
}

/* More reads than attr.max_read in one batch: the first max_read are
 * posted and the rest refused with -EAGAIN at once; each completion
 * polled makes room for one more.  Every provider enforces the limit for
 * reads (fabric counts its reads itself, even over tcp, which queues
 * writes beyond max_tx). */
void test_read_beyond_max(void **state)
{
	struct pair *p = *state;
	unsigned max = p->pas.attr.max_read, n = max + max / 2 + 3;
	unsigned posted = 99999, got = 0;
	struct rmig_read *rd;
	struct rbufs b;
	int *tags;
	int r;

	assert_true(max >= 1);
	assert_true((size_t)n * 4096 <= WBUF);
	rd = calloc(n, sizeof(*rd));
	tags = calloc(n, sizeof(*tags));
	assert_non_null(rd);
	assert_non_null(tags);
	rbufs_open(p, &b, NULL, WBUF, WBUF);
	/* Page i of the source to page n - 1 - i of the target. */
	for (unsigned i = 0; i < n; i++)
		rd[i] = read_of(&b, (size_t)i * 4096, 4096,
				(size_t)(n - 1 - i) * 4096, &tags[i]);
	/* The connection allows max_read: both ends have the same device
	 * (verbs: the same limits offered both ways). */
	r = ops->post_read(p->pas.conn, rd, n, &posted);
	printf("# %u reads at once, max_read %u: %d, %u posted: %s\n", n,
	       max, r, posted, r ? rmig_err_msg() : "");
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(posted, max);
	/* One completion polled: room for one more read, not two; verbs
	 * posts a batch that could go at once all or nothing (as post()),
	 * so none of these. */
	poll_reads(&p->pas, rd, &got, got + 1);
	r = ops->post_read(p->pas.conn, rd + max, n - max, &posted);
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(posted, strcmp(ops->name, "verbs") ? 1 : 0);
	/* The rest as room comes (read_all checks the order from rd[got]). */
	while (got < max + posted)
		poll_reads(&p->pas, rd, &got, max + posted);
	read_all(&p->pas, rd + got, n - got);
	for (unsigned i = 0; i < n; i++)
		assert_memory_equal(b.dst + (size_t)(n - 1 - i) * 4096,
				    b.copy + (size_t)i * 4096, 4096);
	assert_memory_equal(b.src, b.copy, WBUF);
	rbufs_close(&b, true, true);
	free(rd);
	free(tags);
}

/* A read with @rkey at @raddr (not a read source's) fails at the reader's
 * poll naming the read; nothing lands in the target (which holds 0xee),
 * and the memory behind the key is unchanged. */
static void read_refused(struct pair *p, struct rbufs *b, uint64_t raddr,
			 uint64_t rkey, const uint8_t *behind,
			 const uint8_t *behind_copy, size_t len,
			 const char *what)
{
	int tag, r;
	struct rmig_read rd = { .addr = b->dst, .len = len, .mr = b->dmr,
				.raddr = raddr, .rkey = rkey, .ctx = &tag };
	struct rmig_cqe cqe[4];
	unsigned posted = 0;
	int64_t end;

	memset(b->dst, 0xee, len);
	rmig_err_clear();
	r = ops->post_read(p->pas.conn, &rd, 1, &posted);
	if (r == 0) {
		assert_int_equal(posted, 1);
		end = now_ms() + WAIT_MS;
		do {
			memset(cqe, 0, sizeof(cqe));
			r = ops->poll(p->pas.conn, cqe, 4, 1000);
		} while (r == 0 && now_ms() < end);
	}
	printf("# read with %s (key 0x%llx): %d: %s\n", what,
	       (unsigned long long)rkey, r, rmig_err_msg());
	if (ps_mr_cache) {
		/* Not refused: the cached registration behind the key
		 * allows remote reads, and outlives its mr_dereg. */
		printf("# the provider's MR cache did not refuse it: rmig "
		       "cannot rely on keys there\n");
		assert_int_equal(r, 1);
		assert_int_equal(cqe[0].op, RMIG_CQE_READ);
		assert_ptr_equal(cqe[0].ctx, &tag);
		return;
	}
	assert_int_equal(r, ps_read_key_err);
	assert_non_null(strstr(rmig_err_msg(), "RDMA READ"));
	assert_int_equal(cqe[0].op, RMIG_CQE_READ);
	assert_ptr_equal(cqe[0].ctx, &tag);
	/* It stays failed. */
	assert_int_equal(ops->poll(p->pas.conn, cqe, 1, 0), r);
	for (size_t i = 0; i < len; i++)
		if (b->dst[i] != 0xee)
			fail_msg("target byte %zu became 0x%02x", i, b->dst[i]);
	assert_memory_equal(behind, behind_copy, len);
}

/* The key of a registration the peer may write but not read (a write
 * target, as the destination's RAM is registered) reads nothing. */
void test_read_write_target_key(void **state)
{
	struct pair *p = *state;
	enum { LEN = 64 * 1024 };
	uint8_t *wt = malloc(LEN), *copy = malloc(LEN);
	struct rmig_prov_mr *wmr;
	struct rbufs b;

	assert_non_null(wt);
	assert_non_null(copy);
	memset(wt, 0x5a, LEN);
	memcpy(copy, wt, LEN);
	CHECK_OK(ops->mr_reg(p->act.dom, wt, LEN, RMIG_MR_WRITE_TARGET,
			     &wmr));
	rbufs_open(p, &b, NULL, LEN, LEN);
	read_refused(p, &b, wmr->raddr, wmr->rkey, wt, copy, LEN,
		     "a write target's key");
	assert_memory_equal(b.src, b.copy, LEN);
	rbufs_close(&b, false, true);
	ops->mr_dereg(wmr);
	free(wt);
	free(copy);
}

/* The key of a read source that was deregistered (a session that ended)
 * reads nothing, though the memory is still there. */
void test_read_stale_key(void **state)
{
	struct pair *p = *state;
	enum { LEN = 64 * 1024 };
	struct rmig_read rd;
	uint64_t raddr, rkey;
	struct rbufs b;
	int tag;

	rbufs_open(p, &b, NULL, LEN, LEN);
	/* The key works while registered. */
	rd = read_of(&b, 0, LEN, 0, &tag);
	read_all(&p->pas, &rd, 1);
	assert_memory_equal(b.dst, b.copy, LEN);
	raddr = b.smr->raddr;
	rkey = b.smr->rkey;
	ops->mr_dereg(b.smr);
	b.smr = NULL;
	read_refused(p, &b, raddr, rkey, b.src, b.copy, LEN,
		     "a deregistered read source's key");
	rbufs_close(&b, false, true);
}

/* A read source needs no write access: a file's pages mapped read-only,
 * and anonymous memory never written (the shared zero page), register as
 * read sources and read back (see test_write_from_read_only in
 * test_verbs_provider.c for the kernel's side of it). */
void test_read_from_read_only(void **state)
{
	const size_t len = 256 * 1024;
	struct pair *p = *state;
	uint8_t *pat, *ro;
	struct rmig_read rd;
	struct rbufs b;
	int tag;

	pat = malloc(len);
	assert_non_null(pat);
	for (size_t i = 0; i < len; i++)
		pat[i] = read_byte(i * 7);
	ro = ro_file_map(pat, len, "rmig-ro-read-source");
	if (ps_mr_cache) {
		struct rmig_prov_mr *mr = NULL;
		int r = ops->mr_reg(p->act.dom, ro, len, RMIG_MR_READ_SOURCE,
				    &mr);

		/* The cache registers for local write too. */
		printf("# read-only mapping as a read source, MR cache: %d "
		       "(%s)\n", r, rmig_err_msg());
		assert_true(r < 0);
		assert_null(mr);
		assert_int_equal(munmap(ro, len), 0);
		free(pat);
		return;
	}
	rbufs_open(p, &b, ro, len, len);
	rd = read_of(&b, 0, len, 0, &tag);
	read_all(&p->pas, &rd, 1);
	assert_memory_equal(b.dst, pat, len);
	rbufs_close(&b, true, false);
	assert_int_equal(munmap(ro, len), 0);

	ro = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ro != MAP_FAILED);
	rbufs_open(p, &b, ro, len, len);
	memset(b.dst, 0xee, len);
	rd = read_of(&b, 0, len, 0, &tag);
	read_all(&p->pas, &rd, 1);
	for (size_t i = 0; i < len; i++)
		if (b.dst[i])
			fail_msg("target byte %zu is 0x%02x, not 0", i,
				 b.dst[i]);
	rbufs_close(&b, true, false);
	assert_int_equal(munmap(ro, len), 0);
	free(pat);
}

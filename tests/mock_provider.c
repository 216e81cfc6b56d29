/* SPDX-License-Identifier: MIT */
/*
 * mock_provider.c - the in-process transport provider for tests (see
 * mock_provider.h for the semantics).
 *
 * Locks, always taken in this order (g_lock -> link->rw -> mr_rw or one
 * conn->lock; mr_rw and conn->lock are never held together):
 *
 *   g_lock            listener registry, connection setup (state,
 *                     pending requests, pairing), live-connection list,
 *                     link reference counts; g_cond (CLOCK_MONOTONIC)
 *                     signals every setup change.  The data path never
 *                     takes it (only conn_wake(), to check the connection
 *                     is open).
 *   link->rw          one per connected pair.  Posting ops hold it for
 *                     reading while they touch the peer, so the peer cannot
 *                     be freed under them; conn_close() (and a source giving
 *                     up while connecting) hold it for writing to detach.
 *   mr_rw             registration table.  Writes hold it for reading while
 *                     they look up the rkey and copy, so a registration is
 *                     never removed (and its memory handed back to its
 *                     owner) under a copy; mr_reg/mr_dereg hold it for
 *                     writing.
 *   conn->lock        one connection's queues and error; conn->cond
 *                     (CLOCK_MONOTONIC) wakes its poller.  Never two
 *                     connection locks at once.
 *
 * Reader-reader holds of an rwlock create no happens-before edge, and a
 * write's memcpy into the peer's memory takes none of the peer's locks, so
 * the only edge from a write to the peer's threads is the later send's
 * delivery under the peer's conn->lock, as on a real RC connection.
 *
 * Atomics.  Counters and configuration are relaxed: counters are
 * statistics (monotonic; a test reads a total once the threads that count
 * are done, or reads a lower bound while they run), configuration is set
 * between operations and read at the next one.  Two handoffs need ordering
 * and say so where they are: a fault's err is published by the release
 * store of its countdown (acquire CAS in fault_hit()), the write hook's arg
 * by the release store of the hook (acquire load in do_write()).
 */
#include "mock_provider.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"

#define MOCK_DEFAULT_MAX_IOV 4u
#define MOCK_DEFAULT_MAX_MSG (1ull << 30)
#define MOCK_DEFAULT_DEPTH 128u
#define MOCK_DEFAULT_MAX_READ 16u
#define MOCK_MR_BUCKETS 1024u
#define MOCK_FIRST_PORT 20000u
/* What each local use accepts (check_local()). */
#define MOCK_OK_MSG (1u << RMIG_MR_MSG_BUF)
#define MOCK_OK_SOURCE (1u << RMIG_MR_WRITE_SOURCE)
#define MOCK_OK_READ_TARGET (1u << RMIG_MR_READ_TARGET)

/* ------------------------------------------------------------------ */
/* Counters and configuration                                          */

static struct {
	_Atomic uint64_t writes, write_bytes, signaled_writes, sends,
		send_bytes, recvs_posted, polls, wakes, connects, rnr,
		access_errors, faults_fired, flushed, concurrent_use,
		send_buf_modified, max_tx_outstanding, max_rx_posted,
		max_concurrent_writes, sends_by_type[16], mr_regs[6],
		local_access_errors, eagain, reads, read_bytes,
		max_reads_outstanding;
	_Atomic uint64_t live_domains, live_mrs, live_listeners, live_conns,
		domain_close_busy, max_live_mrs, dereg_inflight;
} cnt;

#define CNT_ADD(f, v) atomic_fetch_add_explicit(&cnt.f, (v), memory_order_relaxed)
#define CNT_GET(f) atomic_load_explicit(&cnt.f, memory_order_relaxed)

static void cnt_max(_Atomic uint64_t *m, uint64_t v)
{
	uint64_t cur = atomic_load_explicit(m, memory_order_relaxed);

	while (v > cur && !atomic_compare_exchange_weak_explicit(
			m, &cur, v, memory_order_relaxed, memory_order_relaxed))
		;
}

static _Atomic unsigned cfg_delay_us;
static _Atomic unsigned cfg_send_delay_type, cfg_send_delay_us;
static _Atomic int cfg_silent; /* enum mock_silent */
static _Atomic unsigned cfg_max_iov = MOCK_DEFAULT_MAX_IOV;
static _Atomic uint64_t cfg_max_msg = MOCK_DEFAULT_MAX_MSG;
static _Atomic unsigned cfg_max_read = MOCK_DEFAULT_MAX_READ;
static _Atomic bool cfg_check_send = true;
/* Every n-th write, send or read attempt returns -EAGAIN (0: never), and
 * the attempts counted towards it. */
static _Atomic unsigned cfg_eagain_every;
static _Atomic uint64_t tx_attempts;
static _Atomic(mock_write_hook_fn) cfg_hook;
static void *_Atomic cfg_hook_arg;
/* Unique ids: relaxed, only uniqueness matters. */
static _Atomic unsigned next_conn_id = 1;
static _Atomic uint64_t next_rkey = 0x1000;

/* ------------------------------------------------------------------ */
/* Faults                                                              */

enum mock_op {
	OP_MR_REG,
	OP_CONN_CREATE,
	OP_ESTABLISH,
	OP_POST_RECV,
	OP_SEND,
	OP_WRITE,
	OP_POLL,
	OP_SEND_CQE,
	OP_WRITE_CQE,
	OP_READ,
	OP_READ_CQE,
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	[OP_MR_REG] = "mr_reg",
	[OP_CONN_CREATE] = "conn_create",
	[OP_ESTABLISH] = "establish",
	[OP_POST_RECV] = "post_recv",
	[OP_SEND] = "send",
	[OP_WRITE] = "write",
	[OP_POLL] = "poll",
	[OP_SEND_CQE] = "send_cqe",
	[OP_WRITE_CQE] = "write_cqe",
	[OP_READ] = "read",
	[OP_READ_CQE] = "read_cqe",
};

static struct {
	_Atomic unsigned countdown; /* calls left until it fires; 0: off */
	_Atomic int err;
} faults[OP_COUNT];

/* 0, or the error the fault armed for this call of @op injects. */
static int fault_hit(enum mock_op op)
{
	unsigned c = atomic_load_explicit(&faults[op].countdown,
					  memory_order_relaxed);

	while (c) {
		/* Acquire pairs with the release store in mock_fail_after():
		 * the err read below is the one armed with this countdown. */
		if (atomic_compare_exchange_weak_explicit(
			    &faults[op].countdown, &c, c - 1,
			    memory_order_acquire, memory_order_relaxed)) {
			if (c != 1)
				return 0;
			CNT_ADD(faults_fired, 1);
			return atomic_load_explicit(&faults[op].err,
						    memory_order_relaxed);
		}
	}
	return 0;
}

int mock_fail_after(const char *op, unsigned nth, int err)
{
	if (!op || !err)
		return -EINVAL;
	if (err > 0)
		err = -err;
	for (int i = 0; i < OP_COUNT; i++) {
		if (strcmp(op, op_names[i]))
			continue;
		atomic_store_explicit(&faults[i].err, err,
				      memory_order_relaxed);
		/* Release: publishes err; pairs with the acquire CAS in
		 * fault_hit(). */
		atomic_store_explicit(&faults[i].countdown, nth,
				      memory_order_release);
		return 0;
	}
	return -EINVAL;
}

void mock_clear_faults(void)
{
	for (int i = 0; i < OP_COUNT; i++)
		atomic_store_explicit(&faults[i].countdown, 0,
				      memory_order_relaxed);
}

void mock_set_delay_us(unsigned us)
{
	atomic_store_explicit(&cfg_delay_us, us, memory_order_relaxed);
}

void mock_set_silent(enum mock_silent which)
{
	atomic_store_explicit(&cfg_silent, (int)which, memory_order_relaxed);
}

void mock_set_send_delay_us(unsigned type, unsigned us)
{
	atomic_store_explicit(&cfg_send_delay_type, type, memory_order_relaxed);
	atomic_store_explicit(&cfg_send_delay_us, us, memory_order_relaxed);
}

void mock_set_max_iov(unsigned n)
{
	atomic_store_explicit(&cfg_max_iov, n ? n : MOCK_DEFAULT_MAX_IOV,
			      memory_order_relaxed);
}

void mock_set_max_msg_size(size_t n)
{
	atomic_store_explicit(&cfg_max_msg, n ? n : MOCK_DEFAULT_MAX_MSG,
			      memory_order_relaxed);
}

void mock_set_max_read(unsigned n)
{
	atomic_store_explicit(&cfg_max_read, n ? n : MOCK_DEFAULT_MAX_READ,
			      memory_order_relaxed);
}

void mock_set_check_send_buffers(bool on)
{
	atomic_store_explicit(&cfg_check_send, on, memory_order_relaxed);
}

void mock_set_write_hook(mock_write_hook_fn fn, void *arg)
{
	atomic_store_explicit(&cfg_hook_arg, arg, memory_order_relaxed);
	/* Release: publishes the arg; pairs with the acquire load in
	 * do_write(). */
	atomic_store_explicit(&cfg_hook, fn, memory_order_release);
}

void mock_set_eagain_every(unsigned n)
{
	atomic_store_explicit(&cfg_eagain_every, n, memory_order_relaxed);
	atomic_store_explicit(&tx_attempts, 0, memory_order_relaxed);
}

/* True when this write, send or read attempt is to find the queue
 * "full". */
static bool eagain_hit(void)
{
	unsigned n = atomic_load_explicit(&cfg_eagain_every,
					  memory_order_relaxed);

	return n && (atomic_fetch_add_explicit(&tx_attempts, 1,
					       memory_order_relaxed) + 1) %
		    n == 0;
}

void mock_reset(void)
{
	const char *every = getenv("RMIG_MOCK_EAGAIN_EVERY");

	mock_clear_faults();
	mock_set_eagain_every(every ? (unsigned)strtoul(every, NULL, 10) : 0);
	mock_set_delay_us(0);
	mock_set_send_delay_us(0, 0);
	mock_set_silent(MOCK_SILENT_NONE);
	mock_set_max_iov(0);
	mock_set_max_msg_size(0);
	mock_set_max_read(0);
	mock_set_check_send_buffers(true);
	mock_set_write_hook(NULL, NULL);
#define Z(f) atomic_store_explicit(&cnt.f, 0, memory_order_relaxed)
	Z(writes); Z(write_bytes); Z(signaled_writes); Z(sends);
	Z(send_bytes); Z(recvs_posted); Z(polls); Z(wakes); Z(connects);
	Z(rnr); Z(access_errors); Z(faults_fired); Z(flushed);
	Z(concurrent_use); Z(send_buf_modified); Z(max_tx_outstanding);
	Z(max_rx_posted); Z(max_concurrent_writes); Z(domain_close_busy);
	Z(dereg_inflight); Z(local_access_errors); Z(eagain);
	Z(reads); Z(read_bytes); Z(max_reads_outstanding);
	atomic_store_explicit(&cnt.max_live_mrs, CNT_GET(live_mrs),
			      memory_order_relaxed);
	for (int i = 0; i < 16; i++)
		Z(sends_by_type[i]);
	for (int i = 0; i < 6; i++)
		Z(mr_regs[i]);
#undef Z
}

void mock_get_counters(struct mock_counters *o)
{
	memset(o, 0, sizeof(*o));
#define G(f) o->f = CNT_GET(f)
	G(writes); G(write_bytes); G(signaled_writes); G(sends);
	G(send_bytes); G(recvs_posted); G(polls); G(wakes); G(connects);
	G(rnr); G(access_errors); G(faults_fired); G(flushed);
	G(concurrent_use); G(send_buf_modified); G(max_tx_outstanding);
	G(max_rx_posted); G(max_concurrent_writes);
	for (int i = 0; i < 16; i++)
		G(sends_by_type[i]);
	for (int i = 0; i < 6; i++)
		G(mr_regs[i]);
	G(local_access_errors); G(eagain);
	G(reads); G(read_bytes); G(max_reads_outstanding);
	G(live_domains); G(live_mrs); G(live_listeners); G(live_conns);
	G(domain_close_busy); G(max_live_mrs); G(dereg_inflight);
#undef G
}

uint64_t mock_count_writes(void) { return CNT_GET(writes); }
uint64_t mock_count_sends(void) { return CNT_GET(sends); }
uint64_t mock_max_tx_outstanding(void) { return CNT_GET(max_tx_outstanding); }
uint64_t mock_max_concurrent_writes(void)
{
	return CNT_GET(max_concurrent_writes);
}

uint64_t mock_count_sends_type(unsigned type)
{
	return type < 16 ? CNT_GET(sends_by_type[type]) : 0;
}

uint64_t mock_live_objects(void)
{
	return CNT_GET(live_domains) + CNT_GET(live_mrs) +
	       CNT_GET(live_listeners) + CNT_GET(live_conns);
}

/* ------------------------------------------------------------------ */
/* Objects                                                             */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p) {
		fprintf(stderr, "mock provider: out of memory\n");
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = xcalloc(1, strlen(s) + 1);

	return memcpy(p, s, strlen(s) + 1);
}

struct mock_domain {
	char *address; /* NULL when opened without one */
	bool passive;
	unsigned max_tx, max_rx, max_iov, max_read;
	uint64_t max_msg;
	/* Registrations, listeners and connections open on it.  Relaxed:
	 * domain_close() only reports a nonzero count; the caller orders
	 * its closes before it. */
	_Atomic unsigned children;
};

struct mock_mr {
	struct rmig_prov_mr base; /* first: the core sees this */
	struct mock_domain *dom;
	enum rmig_mr_access access;
	struct mock_mr *hnext;
	/* Writes from it (reads into it) posted and not yet retired (their
	 * completion, or a later signaled one, polled).  Relaxed: the caller
	 * orders a retirement before its decision to deregister. */
	_Atomic unsigned inflight;
};

struct cq_ent {
	struct rmig_cqe cqe;
	int err;        /* nonzero: the operation failed with it */
	bool tx;        /* send or write: retires the send queue to seq */
	bool pending;   /* SEND being delivered: not yet visible to poll */
	uint64_t seq;
	const void *sbuf; /* SEND: the caller's buffer ... */
	void *snap;       /* ... and its bytes when posted (or NULL) */
};

struct rq_ent {
	void *buf;
	size_t len;
	void *ctx;
};

enum conn_state {
	CS_CREATED,     /* active, not yet connecting */
	CS_CONNECTING,  /* active, queued on a listener */
	CS_PAIRED,      /* handed out by listen_get, not yet established */
	CS_ESTABLISHED,
	CS_REFUSED,     /* active: the listener turned it away */
	CS_FAILED,      /* setup failed; only close remains */
};

struct mock_link;
struct mock_listener;

struct mock_conn {
	struct rmig_prov_conn base; /* first: the core sees this */
	struct mock_domain *dom;
	unsigned id;
	bool passive;
	char peer_name[128];
	/* Counts threads inside an op: more than one is a caller bug. */
	_Atomic int busy;

	/* Under g_lock. */
	enum conn_state state;
	char refuse_why[256];
	struct mock_listener *pending_on;
	struct mock_conn *pend_next;
	struct mock_conn *live_next, *live_prev;

	/* Written under g_lock and lock; read under either. */
	struct mock_link *link;
	unsigned side;

	/* Under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool established;
	int err;          /* first error; sticky */
	bool err_in_cq;   /* err is an entry of cq not yet polled */
	char errmsg[RMIG_ERR_MSG_MAX];
	bool wake;
	struct cq_ent *cq;
	unsigned cq_head, cq_count, cq_cap;
	struct rq_ent *rq;
	unsigned rq_head, rq_count;
	uint64_t sq_posted, sq_retired; /* send-queue sequence numbers */
	unsigned reads_out; /* reads posted, completion not yet polled */
	/* [dom->max_tx]: the local registration of the write (the read's
	 * target) with send-queue number n at n % max_tx, until it retires
	 * (NULL for sends). */
	struct mock_mr **wmr;
};

struct mock_link {
	pthread_rwlock_t rw;
	struct mock_conn *side[2]; /* under rw; NULL once that side left */
	unsigned refs;             /* under g_lock */
};

struct mock_listener {
	struct mock_domain *dom;
	char name[160];
	struct mock_listener *next;
	/* Under g_lock. */
	struct mock_conn *pend_head, *pend_tail;
	bool closing;
	unsigned waiters;
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond;
static struct mock_listener *g_listeners;
static struct mock_conn *g_live;
static unsigned g_next_port = MOCK_FIRST_PORT;

static pthread_rwlock_t mr_rw;
static struct mock_mr *mr_table[MOCK_MR_BUCKETS];

static void cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static void rwlock_init_wpref(pthread_rwlock_t *rw)
{
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	/* Writers (close, dereg) must not starve behind a stream of
	 * readers (posts). */
	pthread_rwlockattr_setkind_np(
		&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(rw, &a);
	pthread_rwlockattr_destroy(&a);
}

static void g_init(void)
{
	cond_init_mono(&g_cond);
	rwlock_init_wpref(&mr_rw);
}

static void deadline_of(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000u,
			       .tv_nsec = (long)(us % 1000000u) * 1000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Wait on @c; returns false once the deadline (if any) has passed. */
static bool wait_until(pthread_cond_t *c, pthread_mutex_t *m, int timeout_ms,
		       const struct timespec *dl)
{
	if (timeout_ms < 0) {
		pthread_cond_wait(c, m);
		return true;
	}
	return pthread_cond_timedwait(c, m, dl) != ETIMEDOUT;
}

static inline struct mock_conn *to_conn(struct rmig_prov_conn *c)
{
	return (struct mock_conn *)c;
}

static inline struct mock_mr *to_mr(struct rmig_prov_mr *m)
{
	return (struct mock_mr *)m;
}

static void busy_enter(struct mock_conn *c, const char *op)
{
	/* Relaxed: only detects overlap; orders nothing. */
	if (atomic_fetch_add_explicit(&c->busy, 1, memory_order_relaxed)) {
		CNT_ADD(concurrent_use, 1);
		fprintf(stderr, "mock provider: connection %u: %s called while "
			"another thread is inside an op on it\n", c->id, op);
	}
}

static void busy_exit(struct mock_conn *c)
{
	atomic_fetch_sub_explicit(&c->busy, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Domain and memory                                                   */

static int mock_domain_open(const struct rmig_prov_params *p,
			    struct rmig_prov_domain **out,
			    struct rmig_prov_attr *attr)
{
	struct mock_domain *d;

	pthread_once(&g_once, g_init);
	if (!p || !out || !attr)
		return rmig_err(-EINVAL, "mock domain_open: NULL argument");
	d = xcalloc(1, sizeof(*d));
	d->address = p->address ? xstrdup(p->address) : NULL;
	d->passive = p->passive;
	d->max_tx = p->tx_depth ? p->tx_depth : MOCK_DEFAULT_DEPTH;
	d->max_rx = p->rx_depth ? p->rx_depth : MOCK_DEFAULT_DEPTH;
	d->max_iov = atomic_load_explicit(&cfg_max_iov, memory_order_relaxed);
	d->max_msg = atomic_load_explicit(&cfg_max_msg, memory_order_relaxed);
	d->max_read = atomic_load_explicit(&cfg_max_read, memory_order_relaxed);
	if (d->max_read > d->max_tx)
		d->max_read = d->max_tx; /* reads take send-queue slots */
	atomic_init(&d->children, 0);

	memset(attr, 0, sizeof(*attr));
	snprintf(attr->name, sizeof(attr->name), "mock");
	attr->max_msg_size = (size_t)d->max_msg;
	attr->max_iov = d->max_iov;
	attr->max_tx = d->max_tx;
	attr->max_rx = d->max_rx;
	attr->max_read = d->max_read;
	CNT_ADD(live_domains, 1);
	*out = (struct rmig_prov_domain *)d;
	return 0;
}

static void mock_domain_close(struct rmig_prov_domain *dom)
{
	struct mock_domain *d = (struct mock_domain *)dom;
	unsigned n;

	if (!d)
		return;
	CNT_ADD(live_domains, -1);
	n = atomic_load_explicit(&d->children, memory_order_relaxed);
	if (n) {
		/* Keep it: the objects still open point at it.  A leak
		 * checker reports it, and the counter tells the test. */
		CNT_ADD(domain_close_busy, 1);
		fprintf(stderr, "mock provider: domain_close with %u "
			"registrations, listeners or connections open\n", n);
		return;
	}
	free(d->address);
	free(d);
}

static unsigned mr_bucket(uint64_t rkey)
{
	return (unsigned)((rkey * 0x9e3779b97f4a7c15ull) >> 54) %
	       MOCK_MR_BUCKETS;
}

static int mock_mr_reg(struct rmig_prov_domain *dom, void *addr, size_t len,
		       enum rmig_mr_access access, struct rmig_prov_mr **out)
{
	struct mock_domain *d = (struct mock_domain *)dom;
	struct mock_mr *m;
	unsigned b;
	int ret;

	if (!d || !out)
		return rmig_err(-EINVAL, "mock mr_reg: NULL argument");
	if (!addr || !len)
		return rmig_err(-EINVAL, "mock mr_reg: empty region %p+%zu",
				addr, len);
	if ((uintptr_t)addr + len < (uintptr_t)addr)
		return rmig_err(-EINVAL, "mock mr_reg: region %p+%zu wraps",
				addr, len);
	if (access < RMIG_MR_MSG_BUF || access > RMIG_MR_READ_TARGET)
		return rmig_err(-EINVAL, "mock mr_reg: invalid access %d for "
				"%p+%zu", (int)access, addr, len);
	ret = fault_hit(OP_MR_REG);
	if (ret)
		return rmig_err(ret, "mock mr_reg: injected failure (%s)",
				strerror(-ret));
	m = xcalloc(1, sizeof(*m));
	m->base.addr = addr;
	m->base.len = len;
	m->base.raddr = (uint64_t)(uintptr_t)addr;
	m->base.rkey = atomic_fetch_add_explicit(&next_rkey, 1,
						 memory_order_relaxed);
	m->base.desc = NULL;
	m->dom = d;
	m->access = access;
	b = mr_bucket(m->base.rkey);
	pthread_rwlock_wrlock(&mr_rw);
	m->hnext = mr_table[b];
	mr_table[b] = m;
	pthread_rwlock_unlock(&mr_rw);
	atomic_fetch_add_explicit(&d->children, 1, memory_order_relaxed);
	cnt_max(&cnt.max_live_mrs, CNT_ADD(live_mrs, 1) + 1);
	CNT_ADD(mr_regs[access], 1);
	*out = &m->base;
	return 0;
}

static void mock_mr_dereg(struct rmig_prov_mr *mr)
{
	struct mock_mr *m = to_mr(mr), **pp;

	if (!m)
		return;
	pthread_rwlock_wrlock(&mr_rw);
	for (pp = &mr_table[mr_bucket(m->base.rkey)]; *pp; pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			break;
		}
	pthread_rwlock_unlock(&mr_rw);
	atomic_fetch_sub_explicit(&m->dom->children, 1, memory_order_relaxed);
	CNT_ADD(live_mrs, -1);
	if (atomic_load_explicit(&m->inflight, memory_order_relaxed)) {
		/* Keep it (a connection's record still points at it); the
		 * counter tells the test. */
		CNT_ADD(dereg_inflight, 1);
		fprintf(stderr, "mock provider: registration %p+%zu "
			"deregistered with %u writes from it (reads into it) "
			"in flight\n",
			m->base.addr, m->base.len,
			atomic_load_explicit(&m->inflight,
					     memory_order_relaxed));
		return;
	}
	free(m);
}

/* Under mr_rw (read or write). */
static struct mock_mr *mr_find(uint64_t rkey)
{
	for (struct mock_mr *m = mr_table[mr_bucket(rkey)]; m; m = m->hnext)
		if (m->base.rkey == rkey)
			return m;
	return NULL;
}

/* Local buffer [buf, buf+len) inside @mr of @c's domain?  0 or -EINVAL.
 * And registered for a use @op may make of it (@ok: a mask of 1 << enum
 * rmig_mr_access)?  Else -EACCES. */
static int check_local(struct mock_conn *c, const char *op, const void *buf,
		       size_t len, struct rmig_prov_mr *mr, unsigned ok)
{
	struct mock_mr *m = to_mr(mr);
	uintptr_t a = (uintptr_t)buf, ma;

	if (!len)
		return 0;
	if (!m)
		return rmig_err(-EINVAL, "mock %s: buffer %p+%zu has no memory "
				"registration", op, buf, len);
	if (m->dom != c->dom)
		return rmig_err(-EINVAL, "mock %s: registration of buffer %p "
				"belongs to another domain", op, buf);
	ma = (uintptr_t)m->base.addr;
	if (a < ma || a + len < a || a + len > ma + m->base.len)
		return rmig_err(-EINVAL, "mock %s: buffer %p+%zu outside its "
				"registration %p+%zu", op, buf, len,
				m->base.addr, m->base.len);
	if (!(ok & (1u << m->access))) {
		CNT_ADD(local_access_errors, 1);
		return rmig_err(-EACCES, "mock %s: buffer %p+%zu is registered "
				"as a %s, which %s may not use", op, buf, len,
				rmig_mr_access_name(m->access), op);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Connection internals                                                */

static struct mock_conn *conn_new(struct mock_domain *d, bool passive)
{
	struct mock_conn *c = xcalloc(1, sizeof(*c));

	c->dom = d;
	c->id = atomic_fetch_add_explicit(&next_conn_id, 1,
					  memory_order_relaxed);
	c->passive = passive;
	atomic_init(&c->busy, 0);
	pthread_mutex_init(&c->lock, NULL);
	cond_init_mono(&c->cond);
	c->cq_cap = d->max_tx + d->max_rx + 8;
	c->cq = xcalloc(c->cq_cap, sizeof(*c->cq));
	c->rq = xcalloc(d->max_rx, sizeof(*c->rq));
	c->wmr = xcalloc(d->max_tx, sizeof(*c->wmr));
	atomic_fetch_add_explicit(&d->children, 1, memory_order_relaxed);
	CNT_ADD(live_conns, 1);
	return c;
}

/* Under g_lock. */
static void live_add(struct mock_conn *c)
{
	c->live_prev = NULL;
	c->live_next = g_live;
	if (g_live)
		g_live->live_prev = c;
	g_live = c;
}

/* Under g_lock. */
static void live_del(struct mock_conn *c)
{
	if (c->live_prev)
		c->live_prev->live_next = c->live_next;
	else
		g_live = c->live_next;
	if (c->live_next)
		c->live_next->live_prev = c->live_prev;
}

/* Under c->lock. */
static void cq_push(struct mock_conn *c, const struct cq_ent *e)
{
	if (c->cq_count == c->cq_cap) {
		unsigned cap = c->cq_cap * 2;
		struct cq_ent *n = xcalloc(cap, sizeof(*n));

		for (unsigned i = 0; i < c->cq_count; i++)
			n[i] = c->cq[(c->cq_head + i) % c->cq_cap];
		free(c->cq);
		c->cq = n;
		c->cq_head = 0;
		c->cq_cap = cap;
	}
	c->cq[(c->cq_head + c->cq_count++) % c->cq_cap] = *e;
	pthread_cond_signal(&c->cond);
}

/* Record @c's first error.  Under c->lock. */
static void set_err_locked(struct mock_conn *c, int err, bool in_cq,
			   const char *fmt, va_list ap)
{
	if (c->err)
		return;
	c->err = err;
	c->err_in_cq = in_cq;
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	pthread_cond_signal(&c->cond);
}

static void set_err(struct mock_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Fail @c (not in its cq: its poll returns it once the cq is drained). */
static void set_err(struct mock_conn *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&c->lock);
	set_err_locked(c, err, false, fmt, ap);
	pthread_mutex_unlock(&c->lock);
	va_end(ap);
}

static void fail_op(struct mock_conn *c, enum rmig_cqe_op op, void *ctx,
		    uint64_t seq, int err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Complete tx op @seq of @c with @err: an error completion that puts the
 * connection in error (later posts are flushed). */
static void fail_op(struct mock_conn *c, enum rmig_cqe_op op, void *ctx,
		    uint64_t seq, int err, const char *fmt, ...)
{
	struct cq_ent e = { .cqe = { .op = op, .ctx = ctx }, .err = err,
			    .tx = true, .seq = seq };
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&c->lock);
	if (!c->err) {
		set_err_locked(c, err, true, fmt, ap);
		cq_push(c, &e);
	} else if (c->err_in_cq) {
		/* Already failing: this one is flushed behind that error. */
		CNT_ADD(flushed, 1);
	}
	pthread_mutex_unlock(&c->lock);
	va_end(ap);
}

/*
 * Reserve a send-queue slot for a tx op on @c.  Returns 1 with *seq set,
 * 0 when the op is to be flushed silently (the connection has an error
 * completion not yet polled), or a negative errno.
 */
/* Retire the send queue up to @seq: its writes no longer use their local
 * registrations.  Under c->lock. */
static void retire_locked(struct mock_conn *c, uint64_t seq)
{
	for (uint64_t n = c->sq_retired + 1; n <= seq; n++) {
		struct mock_mr **w = &c->wmr[n % c->dom->max_tx];

		if (*w)
			atomic_fetch_sub_explicit(&(*w)->inflight, 1,
						  memory_order_relaxed);
		*w = NULL;
	}
	c->sq_retired = seq;
}

static int tx_begin(struct mock_conn *c, const char *op, uint64_t *seq,
		    struct mock_link **link, bool read)
{
	char msg[RMIG_ERR_MSG_MAX];
	int ret = 1;

	pthread_mutex_lock(&c->lock);
	if (c->err) {
		if (c->err_in_cq) {
			CNT_ADD(flushed, 1);
			ret = 0;
		} else {
			ret = c->err;
			snprintf(msg, sizeof(msg), "%s", c->errmsg);
		}
	} else if (!c->established) {
		ret = -ENOTCONN;
		snprintf(msg, sizeof(msg), "connection %u not established",
			 c->id);
	} else if (c->sq_posted - c->sq_retired >= c->dom->max_tx) {
		ret = -EAGAIN;
		snprintf(msg, sizeof(msg), "send queue full (%llu operations "
			 "outstanding, max_tx %u)",
			 (unsigned long long)(c->sq_posted - c->sq_retired),
			 c->dom->max_tx);
	} else if (read && c->reads_out >= c->dom->max_read) {
		ret = -EAGAIN;
		snprintf(msg, sizeof(msg), "%u reads outstanding (max_read "
			 "%u)", c->reads_out, c->dom->max_read);
	} else {
		*seq = ++c->sq_posted;
		*link = c->link;
		cnt_max(&cnt.max_tx_outstanding, c->sq_posted - c->sq_retired);
		if (read)
			cnt_max(&cnt.max_reads_outstanding, ++c->reads_out);
	}
	pthread_mutex_unlock(&c->lock);
	if (ret < 0)
		return rmig_err(ret, "mock %s: %s", op, msg);
	return ret;
}

/*
 * Break the pair: @c's op @seq completes with @err, the peer (if any)
 * fails with -ECONNRESET.  Under link->rw (read).
 */
static void break_link(struct mock_conn *c, struct mock_conn *peer,
		       enum rmig_cqe_op op, void *ctx, uint64_t seq, int err,
		       const char *msg)
{
	fail_op(c, op, ctx, seq, err, "%s", msg);
	if (peer)
		set_err(peer, -ECONNRESET, "connection reset: the peer's "
			"connection failed (%s)", msg);
}

/*
 * @c's tx op @seq meets a peer that closed (NULL) or is in error: it
 * completes with -ECONNRESET, and true is returned; else false.  Under
 * link->rw (read).
 */
static bool peer_lost(struct mock_conn *c, struct mock_conn *peer,
		      enum rmig_cqe_op op, void *ctx, uint64_t seq)
{
	int err;

	if (!peer) {
		fail_op(c, op, ctx, seq, -ECONNRESET, "connection reset: the "
			"peer closed the connection");
		return true;
	}
	pthread_mutex_lock(&peer->lock);
	err = peer->err;
	pthread_mutex_unlock(&peer->lock);
	if (!err)
		return false;
	fail_op(c, op, ctx, seq, -ECONNRESET, "the peer's connection %u is "
		"in error", peer->id);
	return true;
}

/* ------------------------------------------------------------------ */
/* Connection management                                               */

/* Under g_lock. */
static struct mock_listener *listener_find(const char *name)
{
	for (struct mock_listener *l = g_listeners; l; l = l->next)
		if (!strcmp(l->name, name))
			return l;
	return NULL;
}

static int mock_listen(struct rmig_prov_domain *dom,
		       struct rmig_prov_listener **out)
{
	struct mock_domain *d = (struct mock_domain *)dom;
	struct mock_listener *l;
	char name[160];
	size_t n;

	if (!d || !out)
		return rmig_err(-EINVAL, "mock listen: NULL argument");
	if (!d->address || !*d->address)
		return rmig_err(-EINVAL, "mock listen: the domain has no "
				"address");
	n = strlen(d->address);
	if (n >= sizeof(name) - 8)
		return rmig_err(-EINVAL, "mock listen: address '%.40s...' too "
				"long", d->address);
	pthread_mutex_lock(&g_lock);
	if (n >= 2 && !strcmp(d->address + n - 2, ":0")) {
		/* Port 0: pick one nobody uses. */
		do
			snprintf(name, sizeof(name), "%.*s:%u", (int)(n - 2),
				 d->address, g_next_port++);
		while (listener_find(name));
	} else {
		snprintf(name, sizeof(name), "%s", d->address);
	}
	if (listener_find(name)) {
		pthread_mutex_unlock(&g_lock);
		return rmig_err(-EADDRINUSE, "mock listen: address '%s' "
				"already in use", name);
	}
	l = xcalloc(1, sizeof(*l));
	l->dom = d;
	memcpy(l->name, name, sizeof(name));
	l->next = g_listeners;
	g_listeners = l;
	pthread_mutex_unlock(&g_lock);
	atomic_fetch_add_explicit(&d->children, 1, memory_order_relaxed);
	CNT_ADD(live_listeners, 1);
	*out = (struct rmig_prov_listener *)l;
	return 0;
}

static int mock_listen_name(struct rmig_prov_listener *lp, char *buf,
			    size_t len)
{
	struct mock_listener *l = (struct mock_listener *)lp;

	if (!l || !buf)
		return rmig_err(-EINVAL, "mock listen_name: NULL argument");
	if ((size_t)snprintf(buf, len, "%s", l->name) >= len)
		return rmig_err(-ENOSPC, "mock listen_name: '%s' does not fit "
				"%zu bytes", l->name, len);
	return 0;
}

static int mock_listen_get(struct rmig_prov_listener *lp, int timeout_ms,
			   struct rmig_prov_conn **out)
{
	struct mock_listener *l = (struct mock_listener *)lp;
	struct mock_conn *s, *d = NULL;
	struct mock_link *link;
	struct timespec dl;
	int ret = 0;

	if (!l || !out)
		return rmig_err(-EINVAL, "mock listen_get: NULL argument");
	deadline_of(&dl, timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_lock(&g_lock);
	l->waiters++;
	for (;;) {
		if (l->closing) {
			ret = rmig_err(-ECANCELED, "mock listen_get: listener "
				       "'%s' closed", l->name);
			break;
		}
		if (l->pend_head)
			break;
		if (timeout_ms == 0 || !wait_until(&g_cond, &g_lock,
						   timeout_ms, &dl)) {
			if (l->pend_head || l->closing)
				continue;
			ret = rmig_err(-ETIMEDOUT, "mock listen_get: no "
				       "connection request on '%s' within "
				       "%d ms", l->name, timeout_ms);
			break;
		}
	}
	if (!ret) {
		s = l->pend_head;
		l->pend_head = s->pend_next;
		if (!l->pend_head)
			l->pend_tail = NULL;
		s->pend_next = NULL;
		s->pending_on = NULL;

		d = conn_new(l->dom, true);
		link = xcalloc(1, sizeof(*link));
		rwlock_init_wpref(&link->rw);
		link->side[0] = s;
		link->side[1] = d;
		link->refs = 2;
		d->link = link;
		d->side = 1;
		d->state = CS_PAIRED;
		snprintf(d->peer_name, sizeof(d->peer_name), "mock-conn-%u",
			 s->id);
		pthread_mutex_lock(&s->lock);
		s->link = link;
		s->side = 0;
		pthread_mutex_unlock(&s->lock);
		s->state = CS_PAIRED;
		live_add(d);
		pthread_cond_broadcast(&g_cond);
	}
	l->waiters--;
	if (l->closing && !l->waiters)
		pthread_cond_broadcast(&g_cond); /* listen_close waits */
	pthread_mutex_unlock(&g_lock);
	if (ret)
		return ret;
	*out = &d->base;
	return 0;
}

static void mock_listen_close(struct rmig_prov_listener *lp)
{
	struct mock_listener *l = (struct mock_listener *)lp, **pp;

	if (!l)
		return;
	pthread_mutex_lock(&g_lock);
	l->closing = true;
	for (pp = &g_listeners; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	while (l->pend_head) {
		struct mock_conn *s = l->pend_head;

		l->pend_head = s->pend_next;
		s->pend_next = NULL;
		s->pending_on = NULL;
		s->state = CS_REFUSED;
		snprintf(s->refuse_why, sizeof(s->refuse_why), "the listener "
			 "on '%s' closed", l->name);
	}
	l->pend_tail = NULL;
	pthread_cond_broadcast(&g_cond);
	while (l->waiters)
		pthread_cond_wait(&g_cond, &g_lock);
	pthread_mutex_unlock(&g_lock);
	atomic_fetch_sub_explicit(&l->dom->children, 1, memory_order_relaxed);
	CNT_ADD(live_listeners, -1);
	free(l);
}

static int mock_conn_create(struct rmig_prov_domain *dom,
			    struct rmig_prov_conn **out)
{
	struct mock_domain *d = (struct mock_domain *)dom;
	struct mock_conn *c;
	int ret;

	if (!d || !out)
		return rmig_err(-EINVAL, "mock conn_create: NULL argument");
	if (!d->address || !*d->address)
		return rmig_err(-EINVAL, "mock conn_create: the domain has no "
				"address to connect to");
	ret = fault_hit(OP_CONN_CREATE);
	if (ret)
		return rmig_err(ret, "mock conn_create: injected failure (%s)",
				strerror(-ret));
	c = conn_new(d, false);
	snprintf(c->peer_name, sizeof(c->peer_name), "%s", d->address);
	pthread_mutex_lock(&g_lock);
	c->state = CS_CREATED;
	live_add(c);
	pthread_mutex_unlock(&g_lock);
	*out = &c->base;
	return 0;
}

/* Mark both ends established.  Under g_lock. */
static void pair_established(struct mock_conn *a, struct mock_conn *b)
{
	a->state = b->state = CS_ESTABLISHED;
	pthread_mutex_lock(&a->lock);
	a->established = true;
	pthread_mutex_unlock(&a->lock);
	pthread_mutex_lock(&b->lock);
	b->established = true;
	pthread_mutex_unlock(&b->lock);
	CNT_ADD(connects, 1);
	pthread_cond_broadcast(&g_cond);
}

/* The active side gives up while paired: detach it so the passive side's
 * establish fails.  Under g_lock. */
static void detach_active(struct mock_conn *s, const char *why)
{
	struct mock_link *link = s->link;
	struct mock_conn *d;

	pthread_rwlock_wrlock(&link->rw);
	link->side[0] = NULL;
	d = link->side[1];
	if (d)
		set_err(d, -ECONNRESET, "connection reset: the connecting "
			"side %s", why);
	pthread_rwlock_unlock(&link->rw);
	pthread_mutex_lock(&s->lock);
	s->link = NULL;
	pthread_mutex_unlock(&s->lock);
	if (--link->refs == 0) {
		pthread_rwlock_destroy(&link->rw);
		free(link);
	}
}

static int establish_active(struct mock_conn *c, int timeout_ms)
{
	struct mock_listener *l;
	struct timespec dl;
	int ret = 0;

	deadline_of(&dl, timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_lock(&g_lock);
	if (c->state != CS_CREATED) {
		ret = c->state == CS_ESTABLISHED ? 0 :
		      rmig_err(-EINVAL, "mock establish: connection %u to "
			       "'%s' cannot be established again", c->id,
			       c->dom->address);
		goto out;
	}
	l = listener_find(c->dom->address);
	if (!l) {
		c->state = CS_FAILED;
		ret = rmig_err(-ECONNREFUSED, "mock establish: connection "
			       "to '%s' refused: nobody listens there",
			       c->dom->address);
		goto out;
	}
	c->state = CS_CONNECTING;
	c->pending_on = l;
	if (l->pend_tail)
		l->pend_tail->pend_next = c;
	else
		l->pend_head = c;
	l->pend_tail = c;
	pthread_cond_broadcast(&g_cond);
	for (;;) {
		if (c->state == CS_ESTABLISHED)
			break;
		if (c->state == CS_REFUSED) {
			c->state = CS_FAILED;
			ret = rmig_err(-ECONNREFUSED, "mock establish: "
				       "connection to '%s' refused: %s",
				       c->dom->address, c->refuse_why);
			break;
		}
		if (timeout_ms == 0 || !wait_until(&g_cond, &g_lock,
						   timeout_ms, &dl)) {
			if (c->state == CS_ESTABLISHED ||
			    c->state == CS_REFUSED)
				continue;
			if (c->state == CS_CONNECTING) {
				struct mock_listener *pl = c->pending_on;
				struct mock_conn **pp = &pl->pend_head;

				pl->pend_tail = NULL;
				while (*pp) {
					if (*pp == c)
						*pp = c->pend_next;
					else {
						pl->pend_tail = *pp;
						pp = &(*pp)->pend_next;
					}
				}
				c->pending_on = NULL;
				c->pend_next = NULL;
			} else if (c->state == CS_PAIRED) {
				detach_active(c, "timed out");
			}
			c->state = CS_FAILED;
			ret = rmig_err(-ETIMEDOUT, "mock establish: connection "
				       "to '%s' not accepted within %d ms",
				       c->dom->address, timeout_ms);
			break;
		}
	}
out:
	pthread_mutex_unlock(&g_lock);
	return ret;
}

static int establish_passive(struct mock_conn *c)
{
	struct mock_conn *s;
	int ret = 0;

	pthread_mutex_lock(&g_lock);
	if (c->state != CS_PAIRED) {
		ret = c->state == CS_ESTABLISHED ? 0 :
		      rmig_err(-EINVAL, "mock establish: connection %u is "
			       "not a pending request", c->id);
		goto out;
	}
	pthread_rwlock_rdlock(&c->link->rw);
	s = c->link->side[0];
	pthread_rwlock_unlock(&c->link->rw);
	if (!s) {
		c->state = CS_FAILED;
		ret = rmig_err(-ECONNRESET, "mock establish: the connecting "
			       "side of connection %u gave up", c->id);
		goto out;
	}
	pair_established(s, c);
out:
	pthread_mutex_unlock(&g_lock);
	return ret;
}

static int mock_conn_establish(struct rmig_prov_conn *cp, int timeout_ms)
{
	struct mock_conn *c = to_conn(cp);
	int ret;

	if (!c)
		return rmig_err(-EINVAL, "mock establish: NULL connection");
	busy_enter(c, "establish");
	ret = fault_hit(OP_ESTABLISH);
	if (ret)
		ret = rmig_err(ret, "mock establish: injected failure (%s)",
			       strerror(-ret));
	else if (c->passive)
		ret = establish_passive(c);
	else
		ret = establish_active(c, timeout_ms);
	busy_exit(c);
	return ret;
}

static int mock_conn_peer_name(struct rmig_prov_conn *cp, char *buf,
			       size_t len)
{
	struct mock_conn *c = to_conn(cp);

	if (!c || !buf)
		return rmig_err(-EINVAL, "mock conn_peer_name: NULL argument");
	if ((size_t)snprintf(buf, len, "%s", c->peer_name) >= len)
		return rmig_err(-ENOSPC, "mock conn_peer_name: '%s' does not "
				"fit %zu bytes", c->peer_name, len);
	return 0;
}

static void mock_conn_close(struct rmig_prov_conn *cp)
{
	struct mock_conn *c = to_conn(cp);
	struct mock_link *link;

	if (!c)
		return;
	busy_enter(c, "conn_close");
	pthread_mutex_lock(&g_lock);
	live_del(c);
	if (c->state == CS_CONNECTING && c->pending_on) {
		struct mock_listener *pl = c->pending_on;
		struct mock_conn **pp = &pl->pend_head;

		pl->pend_tail = NULL;
		while (*pp) {
			if (*pp == c) {
				*pp = c->pend_next;
			} else {
				pl->pend_tail = *pp;
				pp = &(*pp)->pend_next;
			}
		}
	}
	link = c->link;
	if (link) {
		struct mock_conn *peer;

		pthread_rwlock_wrlock(&link->rw);
		link->side[c->side] = NULL;
		peer = link->side[!c->side];
		if (peer) {
			if (peer->state == CS_PAIRED && !peer->passive) {
				/* Closed by the listening side before it
				 * established: a refusal. */
				peer->state = CS_REFUSED;
				snprintf(peer->refuse_why,
					 sizeof(peer->refuse_why), "the "
					 "listening side closed the "
					 "connection without accepting it");
			}
			set_err(peer, -ECONNRESET, "connection reset: the peer "
				"closed connection %u", c->id);
		}
		pthread_rwlock_unlock(&link->rw);
		if (--link->refs == 0) {
			pthread_rwlock_destroy(&link->rw);
			free(link);
		}
	}
	pthread_cond_broadcast(&g_cond);
	pthread_mutex_unlock(&g_lock);

	busy_exit(c);
	/* Closing flushes what was posted: its writes are over. */
	pthread_mutex_lock(&c->lock);
	retire_locked(c, c->sq_posted);
	pthread_mutex_unlock(&c->lock);
	free(c->wmr);
	for (unsigned i = 0; i < c->cq_count; i++)
		free(c->cq[(c->cq_head + i) % c->cq_cap].snap);
	free(c->cq);
	free(c->rq);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	atomic_fetch_sub_explicit(&c->dom->children, 1, memory_order_relaxed);
	CNT_ADD(live_conns, -1);
	free(c);
}

static void mock_conn_wake(struct rmig_prov_conn *cp)
{
	struct mock_conn *c = to_conn(cp), *it;

	pthread_mutex_lock(&g_lock);
	for (it = g_live; it && it != c; it = it->live_next)
		;
	if (!it) {
		fprintf(stderr, "mock provider: conn_wake(%p) on a connection "
			"that is not open (closed already?)\n", (void *)c);
		abort();
	}
	pthread_mutex_lock(&c->lock);
	c->wake = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&g_lock);
	CNT_ADD(wakes, 1);
}

/* ------------------------------------------------------------------ */
/* Data transfer                                                       */

static int mock_post_recv(struct rmig_prov_conn *cp, void *buf, size_t len,
			  struct rmig_prov_mr *mr, void *ctx)
{
	struct mock_conn *c = to_conn(cp);
	char msg[RMIG_ERR_MSG_MAX];
	int ret = 0;

	if (!c || !buf || !len)
		return rmig_err(-EINVAL, "mock post_recv: NULL or empty "
				"buffer");
	busy_enter(c, "post_recv");
	ret = fault_hit(OP_POST_RECV);
	if (ret) {
		ret = rmig_err(ret, "mock post_recv: injected failure (%s)",
			       strerror(-ret));
		goto out;
	}
	/* Receives need local write: message buffers only. */
	ret = check_local(c, "post_recv", buf, len, mr, MOCK_OK_MSG);
	if (ret)
		goto out;
	pthread_mutex_lock(&c->lock);
	if (c->err && !c->err_in_cq) {
		ret = c->err;
		snprintf(msg, sizeof(msg), "%s", c->errmsg);
	} else if (c->err) {
		CNT_ADD(flushed, 1);
	} else if (c->rq_count >= c->dom->max_rx) {
		ret = -EAGAIN;
		snprintf(msg, sizeof(msg), "receive queue full (%u posted, "
			 "max_rx %u)", c->rq_count, c->dom->max_rx);
	} else {
		struct rq_ent *r = &c->rq[(c->rq_head + c->rq_count++) %
					  c->dom->max_rx];

		r->buf = buf;
		r->len = len;
		r->ctx = ctx;
		cnt_max(&cnt.max_rx_posted, c->rq_count);
		CNT_ADD(recvs_posted, 1);
	}
	pthread_mutex_unlock(&c->lock);
	if (ret)
		ret = rmig_err(ret, "mock post_recv: %s", msg);
out:
	busy_exit(c);
	return ret;
}

/* Deliver a message into @peer's oldest posted receive.  0, or -EPROTO /
 * -ECONNRESET with @why filled.  Under link->rw (read). */
/* mock_set_silent(): does what @c posts vanish on the way? */
static bool silenced(const struct mock_conn *c)
{
	int w = atomic_load_explicit(&cfg_silent, memory_order_relaxed);

	return w == (c->passive ? MOCK_SILENT_PASSIVE : MOCK_SILENT_ACTIVE);
}

static int deliver(struct mock_conn *peer, const void *buf, size_t len,
		   uint32_t imm, char *why, size_t whylen)
{
	struct rq_ent r;
	int ret = 0;

	pthread_mutex_lock(&peer->lock);
	if (peer->err) {
		ret = -ECONNRESET;
		snprintf(why, whylen, "the peer's connection %u is in error",
			 peer->id);
	} else if (!peer->rq_count) {
		CNT_ADD(rnr, 1);
		ret = -EPROTO;
		snprintf(why, whylen, "receiver not ready: a %zu-byte message "
			 "(immediate 0x%08x) reached connection %u with no "
			 "receive posted", len, imm, peer->id);
	} else if (peer->rq[peer->rq_head].len < len) {
		ret = -EPROTO;
		snprintf(why, whylen, "a %zu-byte message (immediate 0x%08x) "
			 "is longer than the %zu-byte receive posted on "
			 "connection %u", len, imm,
			 peer->rq[peer->rq_head].len, peer->id);
	}
	if (ret) {
		if (ret == -EPROTO && !peer->err) {
			/* The receiving end fails too: a protocol bug
			 * breaks the connection. */
			peer->err = -EPROTO;
			peer->err_in_cq = false;
			snprintf(peer->errmsg, sizeof(peer->errmsg), "%s", why);
			pthread_cond_signal(&peer->cond);
		}
		pthread_mutex_unlock(&peer->lock);
		return ret;
	}
	r = peer->rq[peer->rq_head];
	peer->rq_head = (peer->rq_head + 1) % peer->dom->max_rx;
	peer->rq_count--;
	if (len)
		memcpy(r.buf, buf, len);
	cq_push(peer, &(struct cq_ent){
		.cqe = { .op = RMIG_CQE_RECV, .ctx = r.ctx, .len = len,
			 .imm = imm } });
	pthread_mutex_unlock(&peer->lock);
	return 0;
}

/* Settle the SEND completion reserved by send_one(): a success, or an
 * error completion putting @c in error.  Under c->lock. */
static void settle_send(struct mock_conn *c, uint64_t seq, int err,
			const char *why, void *snap)
{
	for (unsigned i = 0; i < c->cq_count; i++) {
		struct cq_ent *e = &c->cq[(c->cq_head + i) % c->cq_cap];

		if (!e->pending || e->seq != seq)
			continue;
		e->pending = false;
		if (err) {
			e->err = err;
			free(snap);
			if (!c->err) {
				c->err = err;
				c->err_in_cq = true;
				snprintf(c->errmsg, sizeof(c->errmsg), "%s",
					 why);
			}
		} else {
			e->snap = snap;
		}
		pthread_cond_signal(&c->cond);
		return;
	}
	free(snap); /* not reached: the entry stays until settled */
}

/* The send of a batch (c is busy). */
static int send_one(struct mock_conn *c, const struct rmig_send *m)
{
	const void *buf = m->buf;
	size_t len = m->len;
	uint32_t imm = m->imm;
	void *ctx = m->ctx;
	struct mock_conn *peer;
	struct mock_link *link = NULL;
	char why[RMIG_ERR_MSG_MAX];
	void *snap = NULL;
	uint64_t seq = 0;
	unsigned delay;
	int ret, err = 0;

	if (len && !buf)
		return rmig_err(-EINVAL, "mock send: NULL argument");
	if (eagain_hit()) {
		CNT_ADD(eagain, 1);
		return rmig_err(-EAGAIN, "mock send: send queue full "
				"(injected)");
	}
	ret = fault_hit(OP_SEND);
	if (ret) {
		ret = rmig_err(ret, "mock send: injected failure (%s)",
			       strerror(-ret));
		goto out;
	}
	if (len > c->dom->max_msg) {
		ret = rmig_err(-EINVAL, "mock send: %zu bytes exceed "
			       "max_msg_size %llu", len,
			       (unsigned long long)c->dom->max_msg);
		goto out;
	}
	ret = check_local(c, "send", buf, len, m->mr, MOCK_OK_MSG);
	if (ret)
		goto out;
	ret = tx_begin(c, "send", &seq, &link, false);
	if (ret <= 0)
		goto out;
	ret = 0;
	/* Reserve the completion's place before delivering, so that it
	 * precedes any answer the peer sends back (on a real transport the
	 * send completes when the peer's adapter acknowledges it, before its
	 * software can answer). */
	pthread_mutex_lock(&c->lock);
	cq_push(c, &(struct cq_ent){
		.cqe = { .op = RMIG_CQE_SEND, .ctx = ctx, .len = len },
		.tx = true, .pending = true, .seq = seq, .sbuf = buf });
	pthread_mutex_unlock(&c->lock);
	if (len && atomic_load_explicit(&cfg_check_send,
					memory_order_relaxed)) {
		snap = xcalloc(1, len);
		memcpy(snap, buf, len);
	}

	pthread_rwlock_rdlock(&link->rw);
	peer = link->side[!c->side];
	if ((err = fault_hit(OP_SEND_CQE))) {
		snprintf(why, sizeof(why), "injected send completion error "
			 "(%s)", strerror(-err));
		if (peer)
			set_err(peer, -ECONNRESET, "connection reset: the "
				"peer's connection failed (%s)", why);
	} else if (!peer) {
		/* The peer closed between tx_begin and here. */
		err = -ECONNRESET;
		snprintf(why, sizeof(why), "connection reset: the peer closed "
			 "the connection");
	} else if (!silenced(c)) {
		err = deliver(peer, buf, len, imm, why, sizeof(why));
	}
	pthread_rwlock_unlock(&link->rw);

	pthread_mutex_lock(&c->lock);
	settle_send(c, seq, err, why, snap);
	pthread_mutex_unlock(&c->lock);
	if (!err) {
		CNT_ADD(sends, 1);
		CNT_ADD(send_bytes, len);
		CNT_ADD(sends_by_type[imm >> 28], 1);
		delay = atomic_load_explicit(&cfg_send_delay_us,
					     memory_order_relaxed);
		if (delay && imm >> 28 == atomic_load_explicit(
				     &cfg_send_delay_type, memory_order_relaxed))
			sleep_us(delay);
	}
out:
	return ret;
}

/* Is [raddr, raddr+total) inside a registration of @peer's domain with
 * key @rkey, registered as @want ("remote writes" or "remote reads" in
 * @what)?  0, or -EACCES with @why.  Under mr_rw (read). */
static int check_remote(struct mock_conn *peer, uint64_t raddr,
			uint64_t rkey, size_t total, enum rmig_mr_access want,
			const char *what, char *why, size_t whylen)
{
	struct mock_mr *m = mr_find(rkey);
	uint64_t ma;

	if (!m) {
		snprintf(why, whylen, "no registration with rkey 0x%llx",
			 (unsigned long long)rkey);
		return -EACCES;
	}
	if (m->dom != peer->dom) {
		snprintf(why, whylen, "rkey 0x%llx belongs to another domain "
			 "than the peer's", (unsigned long long)rkey);
		return -EACCES;
	}
	if (m->access != want) {
		snprintf(why, whylen, "registration rkey 0x%llx (a %s) does "
			 "not allow %s", (unsigned long long)rkey,
			 rmig_mr_access_name(m->access), what);
		return -EACCES;
	}
	ma = m->base.raddr;
	if (raddr < ma || raddr - ma > m->base.len ||
	    total > m->base.len - (raddr - ma)) {
		snprintf(why, whylen, "range 0x%llx+%zu outside "
			 "registration 0x%llx+%zu (rkey 0x%llx)",
			 (unsigned long long)raddr, total,
			 (unsigned long long)ma, m->base.len,
			 (unsigned long long)rkey);
		return -EACCES;
	}
	return 0;
}

/* Check the remote range and copy.  Under link->rw (read) with the peer
 * alive.  0 or -EACCES with @why. */
static int do_write(struct mock_conn *peer, const struct rmig_iov *iov,
		    unsigned niov, size_t total, uint64_t raddr,
		    uint64_t rkey, char *why, size_t whylen)
{
	uint8_t *dst;
	mock_write_hook_fn hook;
	int ret;

	pthread_rwlock_rdlock(&mr_rw);
	ret = check_remote(peer, raddr, rkey, total, RMIG_MR_WRITE_TARGET,
			   "remote writes", why, whylen);
	if (!ret) {
		dst = (uint8_t *)(uintptr_t)raddr;
		for (unsigned i = 0; i < niov; i++) {
			memcpy(dst, iov[i].addr, iov[i].len);
			dst += iov[i].len;
		}
	}
	pthread_rwlock_unlock(&mr_rw);
	if (ret) {
		CNT_ADD(access_errors, 1);
		return ret;
	}
	/* Acquire pairs with the release store in mock_set_write_hook(). */
	hook = atomic_load_explicit(&cfg_hook, memory_order_acquire);
	if (hook)
		hook(raddr, total, atomic_load_explicit(&cfg_hook_arg,
							memory_order_relaxed));
	return 0;
}

/* One write of a batch (c is busy). */
static int write_one(struct mock_conn *c, const struct rmig_write *w)
{
	/* Threads inside a write now, for max_concurrent_writes; relaxed:
	 * a statistic, orders nothing. */
	static _Atomic uint64_t writers;
	const struct rmig_iov *iov = w->iov;
	unsigned niov = w->niov;
	uint64_t raddr = w->raddr, rkey = w->rkey;
	void *ctx = w->ctx;
	bool signaled = w->signaled;
	struct mock_conn *peer;
	struct mock_link *link = NULL;
	char why[RMIG_ERR_MSG_MAX];
	size_t total = 0;
	uint64_t seq = 0;
	unsigned delay;
	int ret;

	if (!iov)
		return rmig_err(-EINVAL, "mock write: NULL argument");
	if (eagain_hit()) {
		CNT_ADD(eagain, 1);
		return rmig_err(-EAGAIN, "mock write: send queue full "
				"(injected)");
	}
	ret = fault_hit(OP_WRITE);
	if (ret) {
		ret = rmig_err(ret, "mock write: injected failure (%s)",
			       strerror(-ret));
		goto out;
	}
	if (!niov || niov > c->dom->max_iov) {
		ret = rmig_err(-EINVAL, "mock write: %u segments (1..max_iov "
			       "%u)", niov, c->dom->max_iov);
		goto out;
	}
	for (unsigned i = 0; i < niov; i++) {
		ret = check_local(c, "write", iov[i].addr, iov[i].len,
				  iov[i].mr, MOCK_OK_MSG | MOCK_OK_SOURCE);
		if (ret)
			goto out;
		total += iov[i].len;
	}
	if (total > c->dom->max_msg) {
		ret = rmig_err(-EINVAL, "mock write: %zu bytes exceed "
			       "max_msg_size %llu", total,
			       (unsigned long long)c->dom->max_msg);
		goto out;
	}
	ret = tx_begin(c, "write", &seq, &link, false);
	if (ret <= 0)
		goto out;
	ret = 0;
	/* The first segment's registration is in use until this write
	 * retires (rmig writes one segment). */
	pthread_mutex_lock(&c->lock);
	c->wmr[seq % c->dom->max_tx] = to_mr(iov[0].mr);
	atomic_fetch_add_explicit(&to_mr(iov[0].mr)->inflight, 1,
				  memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);

	cnt_max(&cnt.max_concurrent_writes,
		atomic_fetch_add_explicit(&writers, 1, memory_order_relaxed) +
		1);
	delay = atomic_load_explicit(&cfg_delay_us, memory_order_relaxed);
	if (delay)
		sleep_us(delay);

	pthread_rwlock_rdlock(&link->rw);
	peer = link->side[!c->side];
	if ((ret = fault_hit(OP_WRITE_CQE))) {
		snprintf(why, sizeof(why), "injected write completion error "
			 "(%s)", strerror(-ret));
		break_link(c, peer, RMIG_CQE_WRITE, ctx, seq, ret, why);
	} else if (peer_lost(c, peer, RMIG_CQE_WRITE, ctx, seq)) {
		/* Completed with -ECONNRESET. */
	} else if (!silenced(c) &&
		   (ret = do_write(peer, iov, niov, total, raddr, rkey,
				   why, sizeof(why)))) {
		char msg[RMIG_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "remote access error: write "
			 "of %zu bytes to 0x%llx: %.400s", total,
			 (unsigned long long)raddr, why);
		break_link(c, peer, RMIG_CQE_WRITE, ctx, seq, ret, msg);
	} else {
		CNT_ADD(writes, 1);
		CNT_ADD(write_bytes, total);
		if (signaled) {
			CNT_ADD(signaled_writes, 1);
			pthread_mutex_lock(&c->lock);
			cq_push(c, &(struct cq_ent){
				.cqe = { .op = RMIG_CQE_WRITE,
					 .ctx = ctx, .len = total },
				.tx = true, .seq = seq });
			pthread_mutex_unlock(&c->lock);
		}
	}
	pthread_rwlock_unlock(&link->rw);
	ret = 0;
	atomic_fetch_sub_explicit(&writers, 1, memory_order_relaxed);
out:
	return ret;
}

/* Copy [raddr, raddr+len) of @peer's read source into the read's local
 * buffer.  Under link->rw (read) with the peer alive.  0 or -EACCES with
 * @why. */
static int do_read(struct mock_conn *peer, const struct rmig_read *r,
		   char *why, size_t whylen)
{
	int ret;

	pthread_rwlock_rdlock(&mr_rw);
	ret = check_remote(peer, r->raddr, r->rkey, r->len,
			   RMIG_MR_READ_SOURCE, "remote reads", why, whylen);
	if (!ret)
		memcpy(r->addr, (const void *)(uintptr_t)r->raddr, r->len);
	pthread_rwlock_unlock(&mr_rw);
	if (ret)
		CNT_ADD(access_errors, 1);
	return ret;
}

/* One read of a batch (c is busy). */
static int read_one(struct mock_conn *c, const struct rmig_read *r)
{
	struct mock_conn *peer;
	struct mock_link *link = NULL;
	char why[RMIG_ERR_MSG_MAX];
	uint64_t seq = 0;
	unsigned delay;
	int ret;

	if (eagain_hit()) {
		CNT_ADD(eagain, 1);
		return rmig_err(-EAGAIN, "mock read: send queue full "
				"(injected)");
	}
	ret = fault_hit(OP_READ);
	if (ret)
		return rmig_err(ret, "mock read: injected failure (%s)",
				strerror(-ret));
	if (!r->addr || !r->len)
		return rmig_err(-EINVAL, "mock read: empty local buffer "
				"%p+%zu", r->addr, r->len);
	if (r->len > c->dom->max_msg)
		return rmig_err(-EINVAL, "mock read: %zu bytes exceed "
				"max_msg_size %llu", r->len,
				(unsigned long long)c->dom->max_msg);
	/* A read lands in local memory: read targets only. */
	ret = check_local(c, "read", r->addr, r->len, r->mr,
			  MOCK_OK_READ_TARGET);
	if (ret)
		return ret;
	ret = tx_begin(c, "read", &seq, &link, true);
	if (ret <= 0)
		return ret;
	/* The target registration is in use until the read retires. */
	pthread_mutex_lock(&c->lock);
	c->wmr[seq % c->dom->max_tx] = to_mr(r->mr);
	atomic_fetch_add_explicit(&to_mr(r->mr)->inflight, 1,
				  memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);
	delay = atomic_load_explicit(&cfg_delay_us, memory_order_relaxed);
	if (delay)
		sleep_us(delay);

	pthread_rwlock_rdlock(&link->rw);
	peer = link->side[!c->side];
	if ((ret = fault_hit(OP_READ_CQE))) {
		snprintf(why, sizeof(why), "injected read completion error "
			 "(%s)", strerror(-ret));
		break_link(c, peer, RMIG_CQE_READ, r->ctx, seq, ret, why);
	} else if (peer_lost(c, peer, RMIG_CQE_READ, r->ctx, seq)) {
		/* Completed with -ECONNRESET. */
	} else if (silenced(c)) {
		/* The request vanishes on the way: no data comes back, and
		 * the read never completes (it keeps its place among the
		 * reads outstanding). */
	} else if ((ret = do_read(peer, r, why, sizeof(why)))) {
		char msg[RMIG_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "remote access error: RDMA READ "
			 "of %zu bytes from 0x%llx: %.400s", r->len,
			 (unsigned long long)r->raddr, why);
		break_link(c, peer, RMIG_CQE_READ, r->ctx, seq, ret, msg);
	} else {
		CNT_ADD(reads, 1);
		CNT_ADD(read_bytes, r->len);
		pthread_mutex_lock(&c->lock);
		cq_push(c, &(struct cq_ent){
			.cqe = { .op = RMIG_CQE_READ, .ctx = r->ctx,
				 .len = r->len },
			.tx = true, .seq = seq });
		pthread_mutex_unlock(&c->lock);
	}
	pthread_rwlock_unlock(&link->rw);
	return 0;
}

/* The reads in order, each done (or failed) before the next is tried, so
 * *posted is exact. */
static int mock_post_read(struct rmig_prov_conn *cp,
			  const struct rmig_read *r, unsigned n,
			  unsigned *posted)
{
	struct mock_conn *c = to_conn(cp);
	int ret = 0;

	if (!posted || !c || (n && !r))
		return rmig_err(-EINVAL, "mock post_read: NULL argument");
	*posted = 0;
	busy_enter(c, "post_read");
	for (unsigned i = 0; i < n && !ret; i++) {
		ret = read_one(c, &r[i]);
		if (!ret)
			(*posted)++;
	}
	busy_exit(c);
	return ret;
}

/* The writes, then the send: each posted (landed, for a write; delivered,
 * for a send) before the next is tried, so *posted is exact. */
static int mock_post(struct rmig_prov_conn *cp, const struct rmig_write *w,
		     unsigned nw, const struct rmig_send *send,
		     unsigned *posted)
{
	struct mock_conn *c = to_conn(cp);
	int ret = 0;

	if (!posted || !c || (nw && !w))
		return rmig_err(-EINVAL, "mock post: NULL argument");
	*posted = 0;
	busy_enter(c, "post");
	for (unsigned i = 0; i < nw && !ret; i++) {
		ret = write_one(c, &w[i]);
		if (!ret)
			(*posted)++;
	}
	if (!ret && send) {
		ret = send_one(c, send);
		if (!ret)
			(*posted)++;
	}
	busy_exit(c);
	return ret;
}

static int mock_poll(struct rmig_prov_conn *cp, struct rmig_cqe *cqe, int max,
		     int timeout_ms)
{
	struct mock_conn *c = to_conn(cp);
	char msg[RMIG_ERR_MSG_MAX];
	struct timespec dl;
	bool timed_out = false;
	int n = 0, ret = 0;

	if (!c || !cqe || max <= 0)
		return rmig_err(-EINVAL, "mock poll: NULL argument or max %d",
				max);
	busy_enter(c, "poll");
	CNT_ADD(polls, 1);
	ret = fault_hit(OP_POLL);
	if (ret) {
		set_err(c, ret, "injected poll failure (%s)", strerror(-ret));
		ret = rmig_err(ret, "mock poll: connection %u: injected "
			       "failure (%s)", c->id, strerror(-ret));
		goto out;
	}
	deadline_of(&dl, timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (n < max && c->cq_count) {
			struct cq_ent *e = &c->cq[c->cq_head];

			if (e->pending)
				break; /* being posted: not complete yet */
			if (e->err) {
				if (n)
					break;
				/* provider.h: cqe[0] names the failed op. */
				cqe[0].op = e->cqe.op;
				cqe[0].ctx = e->cqe.ctx;
				if (e->cqe.op == RMIG_CQE_READ)
					c->reads_out--;
				c->err_in_cq = false;
				retire_locked(c, e->seq);
				c->cq_head = (c->cq_head + 1) % c->cq_cap;
				c->cq_count--;
				ret = e->err;
				break;
			}
			if (e->snap && memcmp(e->snap, e->sbuf, e->cqe.len)) {
				CNT_ADD(send_buf_modified, 1);
				fprintf(stderr, "mock provider: connection %u: "
					"send buffer %p (%zu bytes) modified "
					"before its completion was polled\n",
					c->id, e->sbuf, e->cqe.len);
				if (!c->err) {
					c->err = -EPROTO;
					c->err_in_cq = false;
					snprintf(c->errmsg, sizeof(c->errmsg),
						 "send buffer %p modified "
						 "before its completion was "
						 "polled", e->sbuf);
				}
				/* The completion is not delivered: the
				 * connection is in error from here. */
				free(e->snap);
				retire_locked(c, e->seq);
				c->cq_head = (c->cq_head + 1) % c->cq_cap;
				c->cq_count--;
				if (!n)
					ret = c->err;
				break;
			}
			free(e->snap);
			e->snap = NULL;
			if (e->tx)
				retire_locked(c, e->seq);
			if (e->cqe.op == RMIG_CQE_READ)
				c->reads_out--;
			cqe[n++] = e->cqe;
			c->cq_head = (c->cq_head + 1) % c->cq_cap;
			c->cq_count--;
		}
		if (n || ret)
			break;
		if (c->cq_count && c->cq[c->cq_head].pending) {
			/* Only the thread driving @c settles it, and that
			 * thread is here: a caller bug. */
			fprintf(stderr, "mock provider: connection %u polled "
				"while a send on it is being posted\n", c->id);
		}
		if (c->err) {
			ret = c->err;
			break;
		}
		if (c->wake) {
			c->wake = false;
			break;
		}
		if (timeout_ms == 0 || timed_out)
			break;
		if (!wait_until(&c->cond, &c->lock, timeout_ms, &dl))
			timed_out = true; /* one last look, then 0 */
	}
	if (ret)
		snprintf(msg, sizeof(msg), "%s", c->errmsg);
	pthread_mutex_unlock(&c->lock);
	if (ret)
		ret = rmig_err(ret, "mock poll: connection %u: %s", c->id,
			       msg);
	else
		ret = n;
out:
	busy_exit(c);
	return ret;
}

/* ------------------------------------------------------------------ */
/* The mock under the name "verbs"                                     */

#define VERBS_NS "rdma:"

static _Atomic int verbs_open_err;
static _Atomic uint64_t verbs_opens;

void mock_verbs_set_open_error(int err)
{
	atomic_store_explicit(&verbs_open_err, err > 0 ? -err : err,
			      memory_order_relaxed);
}

uint64_t mock_verbs_opens(void)
{
	return atomic_load_explicit(&verbs_opens, memory_order_relaxed);
}

static int mock_verbs_domain_open(const struct rmig_prov_params *p,
				  struct rmig_prov_domain **out,
				  struct rmig_prov_attr *attr)
{
	int err = atomic_load_explicit(&verbs_open_err, memory_order_relaxed);
	struct rmig_prov_params q;
	char addr[200];
	int ret;

	atomic_fetch_add_explicit(&verbs_opens, 1, memory_order_relaxed);
	if (!p || !p->address)
		return rmig_err(-EINVAL, "mock verbs domain_open: NULL "
				"argument");
	if (err)
		return rmig_err(err, "mock verbs domain_open for %s: %s",
				p->address, err == -ENODEV ?
				"no RDMA device found" : strerror(-err));
	/* Its own address space: listeners and connections of this
	 * provider never meet the plain mock's. */
	snprintf(addr, sizeof(addr), VERBS_NS "%s", p->address);
	q = *p;
	q.address = addr;
	ret = mock_domain_open(&q, out, attr);
	if (ret)
		return ret;
	snprintf(attr->name, sizeof(attr->name), "verbs/mock0");
	snprintf(attr->device, sizeof(attr->device), "mock0");
	return 0;
}

static int mock_verbs_listen_name(struct rmig_prov_listener *lp, char *buf,
				  size_t len)
{
	struct mock_listener *l = (struct mock_listener *)lp;
	const char *n;

	if (!l || !buf)
		return rmig_err(-EINVAL, "mock listen_name: NULL argument");
	n = l->name;
	if (!strncmp(n, VERBS_NS, strlen(VERBS_NS)))
		n += strlen(VERBS_NS);
	if ((size_t)snprintf(buf, len, "%s", n) >= len)
		return rmig_err(-ENOSPC, "mock listen_name: '%s' does not fit "
				"%zu bytes", n, len);
	return 0;
}

const struct rmig_provider_ops rmig_mock_verbs_provider = {
	.name = "verbs",
	.abi = RMIG_PROVIDER_ABI,
	.domain_open = mock_verbs_domain_open,
	.domain_close = mock_domain_close,
	.mr_reg = mock_mr_reg,
	.mr_dereg = mock_mr_dereg,
	.listen = mock_listen,
	.listen_name = mock_verbs_listen_name,
	.listen_get = mock_listen_get,
	.listen_close = mock_listen_close,
	.conn_create = mock_conn_create,
	.conn_establish = mock_conn_establish,
	.conn_peer_name = mock_conn_peer_name,
	.conn_close = mock_conn_close,
	.post_recv = mock_post_recv,
	.post = mock_post,
	.post_read = mock_post_read,
	.poll = mock_poll,
	.conn_wake = mock_conn_wake,
};

const struct rmig_provider_ops rmig_mock_provider = {
	.name = "mock",
	.abi = RMIG_PROVIDER_ABI,
	.domain_open = mock_domain_open,
	.domain_close = mock_domain_close,
	.mr_reg = mock_mr_reg,
	.mr_dereg = mock_mr_dereg,
	.listen = mock_listen,
	.listen_name = mock_listen_name,
	.listen_get = mock_listen_get,
	.listen_close = mock_listen_close,
	.conn_create = mock_conn_create,
	.conn_establish = mock_conn_establish,
	.conn_peer_name = mock_conn_peer_name,
	.conn_close = mock_conn_close,
	.post_recv = mock_post_recv,
	.post = mock_post,
	.post_read = mock_post_read,
	.poll = mock_poll,
	.conn_wake = mock_conn_wake,
};

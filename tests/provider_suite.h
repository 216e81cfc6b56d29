/* SPDX-License-Identifier: MIT */
/*
 * provider_suite.h - what test_fabric_provider and test_verbs_provider
 * share: a pair of domains with one connection between them, message and
 * write buffers, completion checks, the cases that run the same on every
 * provider (the mock's too: test_mock_suite; the RDMA READ ones in
 * provider_suite_read.c), and the parallel-connection and blocked-poll
 * helpers.  Both
 * drive a provider only through its ops (lib/provider.h).
 *
 * The test program defines the settings below (ops, prov, host, ...);
 * tests run one at a time, so they are plain globals.  Include after
 * <cmocka.h> (CHECK_OK uses fail_msg).
 */
#ifndef RMIG_PROVIDER_SUITE_H
#define RMIG_PROVIDER_SUITE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "provider.h"
#include "prov_post.h"

#define MSG 256          /* bytes per message slot */
#define NSLOT 16         /* receive slots (and send slots) per side */
#define DEPTH 32         /* rx/tx depth asked of the provider */
#define SMALL_DEPTH 4    /* ... by the queue-full test */
#define WBUF (1u << 20)  /* write test buffers */
#define NPAR 3           /* connections of the parallel test */
#define PAR_SEG (64 * 1024)
#define WAIT_MS ps_wait_ms
#define PAR_ROUNDS ps_par_rounds
#define PAR_JOIN_MS ps_par_join_ms

#define CHECK_OK(call)                                                         \
	do {                                                                   \
		int check_ret_ = (call);                                       \
		if (check_ret_ < 0)                                            \
			fail_msg("%s = %d: %s", #call, check_ret_,             \
				 rmig_err_msg());                              \
	} while (0)

/* Settings, defined by the test program. */
/** The provider under test. */
extern const struct rmig_provider_ops *ops;
/** Its subprovider (rmig_prov_params.subprovider), or NULL. */
extern const char *prov;
/** The host every address is on. */
extern const char *host;
/** "<host>:0" ("[host]:0" for IPv6): where pairs listen. */
extern char listen_addr[96];
/** rx/tx depth for the next pair_setup*(); pair_teardown resets it. */
extern unsigned depth;
/** Generous bound for anything that should happen (WAIT_MS). */
extern const int ps_wait_ms;
/** True when the provider enforces attr.max_tx (a post beyond it is
 *  -EAGAIN); libfabric's tcp queues instead. */
extern const bool ps_queue_enforced;
/** What the reader's poll returns for a read with a key that is not a
 *  read source's: a remote access error (-EACCES), or -ECONNRESET where
 *  the provider answers it by dropping the connection (libfabric's tcp).
 *  Set by main() where it depends on the provider. */
extern int ps_read_key_err;
/** True when the provider caches registrations behind mr_dereg with
 *  every access whatever the use asked (libfabric's verbs provider, its
 *  MR cache on): a key then reads whatever it was registered for, and
 *  after its deregistration, and a read-only mapping does not register.
 *  The read cases assert that instead, so that it stays visible. */
extern bool ps_mr_cache;
/** Rounds of each connection of the parallel test (PAR_ROUNDS). */
extern const int ps_par_rounds;
/** Bound on each thread of the parallel test (PAR_JOIN_MS). */
extern const int ps_par_join_ms;

/** Where the next pair_setup_as() listens (listen_addr unless a setup
 *  says otherwise). */
extern const char *pair_listen;

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
	char name[128];  /* the listener's "host:port" */
};

struct acceptor {
	struct pair *p;
	int ret;
	char msg[RMIG_ERR_MSG_MAX];
};

struct wbufs {
	uint8_t *src, *dst;
	size_t len;
	struct rmig_prov_mr *smr, *dmr;
};

struct blocked_poll {
	struct rmig_prov_conn *conn;
	int ret;
	int64_t returned_at;
	atomic_bool started;
	atomic_bool done;
};

struct par_conn {
	int k;
	struct rmig_prov_conn *conn;
	struct rmig_prov_mr *mr;  /* msg buffer */
	char *buf;                /* slot 0: receive, slot 1: send */
	const struct wbufs *w;
	int ret;
	char msg[RMIG_ERR_MSG_MAX];
};

struct par_acceptor {
	struct rmig_prov_listener *l;
	struct par_conn *dst;
	int ret;
	char msg[RMIG_ERR_MSG_MAX];
};

struct target_poller {
	struct rmig_prov_conn *conn;
	int ret;
	atomic_bool stop;
};

struct killer {
	pid_t pid;
	int64_t killed_at;
	atomic_bool done;
};

/* Helpers (provider_suite.c says what each does). */
int64_t now_ms(void);
void sleep_ms(int ms);
char *recv_slot(struct side *s, int i);
char *send_slot(struct side *s, int i);
void open_side(struct side *s, const char *address, bool passive);
void post_recvs(struct side *s);
void close_side(struct side *s);
void join_or_die(pthread_t t, int ms, const char *what);
void *accept_main(void *arg);
int pair_setup_as(void **state);
int pair_setup(void **state);
int pair_setup_small(void **state);
int pair_setup_deep(void **state);
int pair_setup_any(void **state);
int pair_teardown(void **state);
void poll_n(struct rmig_prov_conn *c, struct rmig_cqe *cqe, int n);
void poll_none(struct rmig_prov_conn *c, int ms);
void send_msg(struct side *s, int slot, const char *text, uint32_t imm);
struct rmig_cqe next_cqe(struct side *s, enum rmig_cqe_op op);
void expect_send_done(struct side *s, int slot);
void expect_recv(struct side *s, int slot, const char *text, uint32_t imm);
void wbufs_open_len(struct pair *p, struct wbufs *w, size_t len);
void wbufs_open(struct pair *p, struct wbufs *w);
void wbufs_close(struct wbufs *w);
uint64_t dst_raddr(const struct wbufs *w, size_t off);
void *blocked_poll_main(void *arg);
uint8_t par_byte(int k, int round, size_t i);
int par_fail(struct par_conn *pc, const char *what, int r);
int par_wait_recv(struct par_conn *pc, uint32_t *imm);
void *par_src_main(void *arg);
void *par_dst_main(void *arg);
void *par_accept_main(void *arg);
int count_fds(void);
uint8_t *ro_file_map(const uint8_t *pat, size_t len, const char *name);
void *killer_main(void *arg);
void *target_poller_main(void *arg);

/* Cases that run the same on every provider (each program lists them in
 * its main()). */
void test_parallel_conns(void **state);
void test_send_both_ways(void **state);
void test_many_messages(void **state);
void test_no_fd_leak(void **state);
void test_write_then_send(void **state);
void test_signaled_write(void **state);
void test_wake(void **state);
/* ... with pair_setup_small: */
void test_writes_beyond_depth(void **state);
void test_batch_beyond_depth(void **state);
/* ... with pair_setup: */
void test_batch_post(void **state);
/* RDMA READ (provider_suite_read.c), with pair_setup: */
void test_read(void **state);
void test_read_beyond_max(void **state);
void test_read_write_target_key(void **state);
void test_read_stale_key(void **state);
void test_read_from_read_only(void **state);

#endif /* RMIG_PROVIDER_SUITE_H */

/* SPDX-License-Identifier: MIT */
/*
 * core_util.h - the fixture of the core tests (test_core_*.c): the core
 * (sessions, channel threads, batching, sync, device state, errors) end to
 * end in ONE process over the in-process mock provider: the source is
 * driven by the test's main thread, the destination by a second thread
 * (accept, wait_sync until the final sync, finish).
 *
 * Run them under TSan and ASan too: the mock adds no happens-before edge a
 * real transport would not give, so a race on page data shows up.  Blocking
 * source calls (sync, finish) run with a deadline (src_call()), so a core
 * that hangs fails one test instead of timing out the program; teardown
 * checks that no provider object outlives the sessions and that the mock
 * saw no misuse (receiver-not-ready, a send buffer reused early, a
 * connection driven by two threads).  RMIG_TEST_FILTER=<glob> runs a subset
 * (core_test_filter()).
 *
 * Each test runs with setup() and teardown() (CORE_TEST()), its state a
 * struct mig: two blocks of guest memory, both sessions and the driver.
 */
#ifndef RMIG_TESTS_CORE_UTIL_H
#define RMIG_TESTS_CORE_UTIL_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core.h"
#include "mock_provider.h"
#include "rmig/rmig.h"

#define PS 4096u
#define JOIN_TIMEOUT_S 30

#define assert_err_has(msg, substr)                                          \
	do {                                                                 \
		const char *m_ = (msg);                                      \
		if (!strstr(m_, (substr)))                                   \
			fail_msg("message '%s' lacks '%s'", m_, (substr));   \
	} while (0)

#define assert_last_err_has(substr) assert_err_has(rmig_last_error(), substr)

/* Check an rmig call returned 0, printing rmig_last_error() otherwise. */
#define assert_ok(call)                                                      \
	do {                                                                 \
		int r_ = (int)(call);                                        \
		if (r_ != 0)                                                 \
			fail_msg("%s returned %d: %s", #call, r_,            \
				 rmig_last_error());                         \
	} while (0)

/* A test with the fixture: setup() before, teardown() after. */
#define CORE_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* RMIG_TEST_FILTER=pattern runs only the matching tests. */
void core_test_filter(void);

/* The program's one random stream (unit_util.h's rng() is one per file):
 * the fixture fills pages from it, and so do the tests. */
uint64_t core_rng(void);

/* ------------------------------------------------------------------ */
/* Guest memory: two blocks carved from one source and one destination  */
/* allocation, so the write hook can map a remote address to a page.    */

#define NBLK 2
extern const char *const blk_name[NBLK]; /* "pc.ram", "vga.vram" */

enum kind { K_ZERO, K_DATA, K_SPARSE };

struct mem {
	size_t pages[NBLK];
	size_t base[NBLK]; /* first page of block b in the allocations */
	size_t total;      /* pages */
	uint8_t *s, *d;
	_Atomic unsigned *writes; /* per destination page, by the hook */
};

/* Both sides' memory; the destination's holds garbage (0xa5). */
void mem_alloc(struct mem *m, size_t p0, size_t p1);
void mem_free(struct mem *m);
uint8_t *spage(struct mem *m, unsigned b, size_t page);
uint8_t *dpage(struct mem *m, unsigned b, size_t page);
/* Fill source page @page of block @b as a page of kind @k; returns @k. */
enum kind fill_page(struct mem *m, unsigned b, size_t page, enum kind k);
/* The kind mem_fill() gives page @page (of block b: page + b). */
enum kind kind_for(size_t page);
/* Fill every page of both blocks; returns the number of zero pages. */
size_t mem_fill(struct mem *m);
/* Pages of block b equal on both sides?  Prints the first mismatch. */
size_t mem_diff(struct mem *m, unsigned b, size_t first, size_t n);
size_t mem_diff_all(struct mem *m);
/* The mock's write hook: count writes per destination page. */
void count_writes(uint64_t raddr, size_t len, void *arg);
unsigned writes_of(struct mem *m, unsigned b, size_t page);

/* ------------------------------------------------------------------ */
/* The destination, driven from its own thread                         */

#define MAX_SYNCS 16
#define MAX_BLOBS 32

struct driver {
	rmig_dest *d;
	int dblk[NBLK]; /* destination index of source block b */
	int accept_timeout_ms;
	/* Hold: after accept, wait for `go` before the first wait_sync. */
	bool hold;
	_Atomic bool go;

	/* Written by the driver thread, read by the test after the join
	 * (accept_ret and, on failure, err: once `accepted` is set). */
	int accept_ret;
	int last_ret;   /* last wait_sync result (1: final, 2: switch) */
	int finish_ret;
	char err[RMIG_ERR_MSG_MAX];
	unsigned syncs; /* wait_sync returns of 0 or 1 */
	int64_t received[MAX_SYNCS][NBLK];
	unsigned blobs_at[MAX_SYNCS]; /* blobs collected by each sync */
	struct rmig_devstate *blob[MAX_BLOBS];
	unsigned nblobs;
	bool extra_blobs; /* more than MAX_BLOBS */
	/* Post-copy: called on the driver's thread when wait_sync returns
	 * RMIG_SYNC_POSTCOPY_SWITCH (set before mig_start()); its result
	 * lands in pull_ret, and the driver goes on to the final sync. */
	int (*on_switch)(struct driver *dv, void *arg);
	void *switch_arg;
	int pull_ret;
	unsigned switches;
	/* rmig_dest_accept() has returned (driver_wait_accept()). */
	_Atomic bool accepted;
	_Atomic bool done;
};

struct spinner {
	_Atomic bool stop;
	bool running;
	pthread_t t[3];
};

/* Keep the CPUs busy so that threads get preempted anywhere. */
void spinners_start(struct spinner *sp);
void spinners_stop(struct spinner *sp);

/* ------------------------------------------------------------------ */
/* One migration: both sessions, their memory, the driver              */

struct mig {
	char addr[64];
	unsigned channels, ppp;
	struct mem mem;
	rmig_src *src;
	rmig_dest *dst;
	int sblk[NBLK];
	struct driver dv;
	pthread_t dthr;
	bool dthr_running;
	struct spinner spin;
	/* Extra source config (field_mask bits and their fields), and
	 * transport auto: when set, the side is created with
	 * rmig_*_create_auto(cfg, *_verbs, &rmig_mock_provider). */
	struct rmig_config src_extra;
	/* Authentication (RMIG_CFG_AUTH_KEY, _AUTH_KEY_FILE, _INSECURE)
	 * in src_extra / dst_auth replaces the tests' shared secret; with
	 * it, dst_auth's RMIG_CFG_ALLOWED_SOURCES is taken too. */
	struct rmig_config dst_auth;
	/* The same for the destination: field_mask bits with
	 * idle_timeout_ms, devstate_max and postcopy_resume. */
	struct rmig_config dst_extra;
	const struct rmig_provider_ops *src_verbs, *dst_verbs;
	/* Both sides' provider without transport auto (NULL: the mock). */
	const struct rmig_provider_ops *prov;
};

/* The number in the last setup()'s address "core-test:N". */
extern unsigned addr_seq;

void cfg_init(struct rmig_config *c, const char *addr, unsigned channels,
	      unsigned ppp);
/* Join the driver, waiting at most @s seconds.  True if joined. */
bool driver_join(struct mig *m, unsigned s);
/* rmig_src_sync() and rmig_src_finish() with a deadline (src_call()). */
int src_sync(struct mig *m);
int src_finish(struct mig *m);
/* Destination: blocks added in the reverse order of the source's, so the
 * source must map block indices by name. */
void dest_up(struct mig *m, const char *const names[NBLK],
	     const size_t pages[NBLK]);
void src_up(struct mig *m);
/* Wait until the destination's rmig_dest_accept() has returned, and check
 * it succeeded (both sides ACTIVE). */
void driver_wait_accept(struct mig *m);
/* Both sessions up and connected: the source's connect and the
 * destination's accept have returned. */
void mig_start(struct mig *m, unsigned channels, unsigned ppp, size_t p0,
	       size_t p1);
/* Final sync on both sides; both sessions end COMPLETED. */
void mig_finish(struct mig *m);
/* Block 0 filled, queued whole, the final sync, and checked on the
 * destination. */
void small_migration(struct mig *m);
/* Destroy both sessions (the source first: the destination must notice
 * by itself; if it does not within 2 s, cancel it) and forget them. */
void mig_stop(struct mig *m);
int setup(void **state);
/* Runs after every test, passed or failed: nothing may be left. */
int teardown(void **state);

/* ------------------------------------------------------------------ */
/* Checks several areas make                                           */

/* The registrations the core asked of the provider, by access. */
void assert_reg_access(unsigned channels, uint64_t sources,
		       uint64_t targets);
void get_stats(struct rmig_stats *st, bool dest, struct mig *m);
/* The offsets of pages 0..@n-1 in a shuffled order, in a new array. */
uint64_t *shuffled_offsets(size_t n);
/* Both rmig_src_create_prov() and rmig_dest_create_prov() refuse @c with
 * -EINVAL and a message naming @field. */
void expect_create_einval(struct rmig_config *c, const char *field);

#endif /* RMIG_TESTS_CORE_UTIL_H */

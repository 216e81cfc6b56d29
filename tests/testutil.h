/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - shared helpers of the loopback integration tests
 * (test_migrate, test_handshake, test_peer_death).
 *
 * The tests run the source and the destination in separate processes: the
 * parent creates pipes, forks one child per role and only supervises (it
 * never calls into rmig, so no libfabric state or thread crosses a fork).
 * Every child arms alarm() as a last-resort watchdog and dies with its
 * parent (PR_SET_PDEATHSIG); the parent kills what outlives its deadline.
 *
 * Only 127.0.0.1 is ever used (or, with transport=verbs, the RDMA device's
 * address that tests/vm/rxe-vm.sh gives in RMIG_RXE_ADDR): the destination
 * listens on port 0 and hands the bound address to the other processes
 * through a pipe.
 *
 * Environment:
 *   RMIG_TEST_WATCHDOG  seconds a child may live (default 120); the
 *                       parent's deadline is this plus a little.
 *   RMIG_TEST_MAX_MIB   cap on the memory sizes the tests take from argv
 *                       (set by the sanitizer builds).
 *   RMIG_RXE_ADDR       with transport=verbs: the address of the RDMA
 *                       device every process uses.
 */
#ifndef RMIG_TESTUTIL_H
#define RMIG_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "rmig/rmig.h"

#define TU_LOOPBACK_LISTEN "127.0.0.1:0"
#define TU_ADDR_MAX 128

/* ------------------------------------------------------------------ */
/* Reporting                                                           */

/** Role of this process in messages ("parent", "src", "dest", ...). */
void tu_set_role(const char *role);
const char *tu_role(void);

void tu_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Print "[role] file:line: FAIL: ..." and evaluate to false. */
#define TU_CHECK(cond, ...)                                                  \
	((cond) ? true                                                       \
		: (tu_fail_at(__FILE__, __LINE__, #cond, __VA_ARGS__), false))
void tu_fail_at(const char *file, int line, const char *expr, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));

/** Check an rmig call returned >= 0; print the code and rmig_last_error(). */
#define TU_RMIG_OK(call)                                                     \
	tu_rmig_ok_at(__FILE__, __LINE__, #call, (long long)(call))
bool tu_rmig_ok_at(const char *file, int line, const char *expr,
		   long long ret);

/* ------------------------------------------------------------------ */
/* Time, environment                                                   */

uint64_t tu_now_ns(void); /* CLOCK_MONOTONIC: comparable across processes */
double tu_ms_since(uint64_t t0_ns);
void tu_sleep_ms(unsigned ms);
unsigned tu_watchdog_s(void);
/** @mib capped by RMIG_TEST_MAX_MIB (when set). */
size_t tu_cap_mib(size_t mib);
bool tu_strcasestr(const char *hay, const char *needle);
unsigned tu_count_threads(void);
int tu_count_fds(void);
/** Print every open fd and what it refers to (diagnostics of a leak). */
void tu_list_fds(void);
/** After a session's destroy: no thread and no fd more than before. */
bool tu_check_no_leaks(const char *what, unsigned threads0, int fds0);

/* ------------------------------------------------------------------ */
/* Processes and pipes                                                 */

struct tu_pipe {
	int r, w;
};
int tu_pipe_open(struct tu_pipe *p);
void tu_pipe_close(struct tu_pipe *p);

/** Write all of @len bytes (0 or -errno). */
int tu_write_all(int fd, const void *buf, size_t len);
/** Read exactly @len bytes within @timeout_ms (<0: forever).  0, -ETIMEDOUT,
 *  -EPIPE (writer gone) or -errno. */
int tu_read_all(int fd, void *buf, size_t len, int timeout_ms);
int tu_send_u64(int fd, uint64_t v);
int tu_recv_u64(int fd, uint64_t *v, int timeout_ms);
int tu_send_str(int fd, const char *s); /* fixed TU_ADDR_MAX-byte record */
int tu_recv_str(int fd, char *s, int timeout_ms);

struct tu_child {
	const char *name;
	pid_t pid;
	int status;  /* waitpid status once reaped */
	bool reaped;
	bool killed;      /* the supervisor sent SIGKILL */
	bool expect_kill; /* killed on purpose: death by SIGKILL is success */
};

/** Fork a child that arms alarm(tu_watchdog_s()), dies with the parent,
 *  runs @fn and exits with its return value. */
int tu_spawn(struct tu_child *c, const char *name, int (*fn)(void *),
	     void *arg);
/** Reap @c if it has exited, waiting up to @timeout_ms.  True if reaped. */
bool tu_reap(struct tu_child *c, int timeout_ms);
/** SIGKILL @c (once) and note it. */
void tu_kill(struct tu_child *c);
/**
 * Wait for every child until @deadline_ns; once one fails, give the others
 * @grace_ms before killing them.  Prints each outcome.  Returns 0 when every
 * child exited with 0 (or, with expect_kill, died of SIGKILL).
 */
int tu_wait_children(struct tu_child *c, int n, uint64_t deadline_ns,
		     int grace_ms);
/** True when @c exited normally with status 0. */
bool tu_child_ok(const struct tu_child *c);

/* ------------------------------------------------------------------ */
/* Memory                                                              */

/** Anonymous memory aligned to @align (a power of two >= 4096); THP
 *  advised for 2 MiB alignment.  NULL on failure. */
void *tu_alloc(size_t len, size_t align);
void tu_free(void *p, size_t len);
uint64_t tu_hash(const void *p, size_t len);

/* ------------------------------------------------------------------ */
/* Deterministic guest-memory model                                    */

#define TU_MAX_BLOCKS 3

enum tu_kind {
	TU_ZERO = 0,   /* all zero: travels as a zero page */
	TU_SPARSE = 1, /* all zero but one byte: must travel as normal */
	TU_DATA = 2,   /* random bytes */
};

struct tu_block {
	char name[RMIG_BLOCK_NAME_MAX];
	size_t len;
	uint8_t *mem;
};

/**
 * A set of RAM blocks whose content after each round is a function of
 * (seed, round, block, page): round 0 writes every page, each later round
 * rewrites about change_pct % of them (some to zero, some zero to data).
 * Both sides compute it, so the destination can regenerate the image.
 */
struct tu_image {
	size_t page_size;
	unsigned nblocks;
	struct tu_block b[TU_MAX_BLOCKS];
	uint64_t seed;
	unsigned change_pct;
};

/** Lay out @total bytes in blocks (main "pc.ram" plus small "vga.vram"
 *  and "pc.rom") without allocating.  -EINVAL when too small. */
int tu_image_layout(struct tu_image *im, size_t total, size_t page_size,
		    uint64_t seed);
/** Allocate every block; @garbage: fill each page with nonzero bytes
 *  (destination), else leave zero (source). */
int tu_image_alloc(struct tu_image *im, bool garbage);
void tu_image_free(struct tu_image *im);
uint64_t tu_image_pages(const struct tu_image *im, unsigned block);
uint64_t tu_image_hash(const struct tu_image *im);

/** Does round @round (>= 1) rewrite the page?  Round 0 writes them all. */
bool tu_changed(const struct tu_image *im, unsigned round, unsigned block,
		uint64_t page);
/** Kind of the content round @round writes into the page. */
enum tu_kind tu_kind_at(const struct tu_image *im, unsigned round,
			unsigned block, uint64_t page);
/** Last round <= @upto that wrote the page. */
unsigned tu_last_round(const struct tu_image *im, unsigned upto,
		       unsigned block, uint64_t page);
/** Content round @round writes into the page (page_size bytes). */
void tu_page_gen(const struct tu_image *im, unsigned round, unsigned block,
		 uint64_t page, void *buf);
/** Source: write round @round's content into memory; collect the byte
 *  offsets of the pages it wrote per block (arrays of tu_image_pages()
 *  entries, may be NULL) and their counts.  Counts sent pages as normal or
 *  zero into @normal/@zero. */
void tu_image_write_round(struct tu_image *im, unsigned round,
			  uint64_t **offs, size_t *noffs, uint64_t *normal,
			  uint64_t *zero);
/** Compare memory with the image after round @upto; print up to 10
 *  mismatches (block, page offset, first differing byte, expected kind).
 *  Returns the number of mismatching pages. */
uint64_t tu_image_verify(const struct tu_image *im, unsigned upto);

/* ------------------------------------------------------------------ */
/* rmig helpers                                                        */

/**
 * Transport of the test, from a "transport=NAME" argument (before any fork):
 * "fabric" (the default: tu_fabric_provider() on 127.0.0.1) or "verbs" (the
 * verbs provider on $RMIG_RXE_ADDR).  0; -EINVAL for another name; -ENODEV
 * (with a message) for verbs when RMIG_RXE_ADDR is not set, so the caller
 * can exit 77.
 */
int tu_set_transport(const char *name);
bool tu_transport_verbs(void);
/** The host of every address: "127.0.0.1" or $RMIG_RXE_ADDR. */
const char *tu_host(void);
/** "<host>:0": where destinations listen. */
const char *tu_listen_addr(void);
/** True when @addr is "<host>:<port>" with a nonzero port. */
bool tu_addr_on_host(const char *addr);
/** The provider and subprovider a raw client of the transport opens. */
const char *tu_provider_name(void);

/** Config for tu_set_transport()'s transport (fabric: over
 *  tu_fabric_provider()). */
void tu_config(struct rmig_config *cfg, const char *address,
	       unsigned channels, size_t page_size, const uint8_t *uuid);
/** The libfabric provider tu_config() picks: "tcp" unless set (before the
 *  children are forked; @name must outlive them, e.g. an argv string). */
void tu_set_fabric_provider(const char *name);
const char *tu_fabric_provider(void);
void tu_uuid(uint8_t uuid[16], uint64_t seed);
void tu_print_stats(const char *who, const struct rmig_stats *st);
/** Per-channel sums equal the totals, channel count as expected. */
bool tu_stats_coherent(const struct rmig_stats *st, unsigned channels);

/* ------------------------------------------------------------------ */
/* The children's sessions, and the parent's end                       */

/** This process's threads and fds before a session: what destroying it
 *  must come back to (tu_check_no_leaks()). */
struct tu_baseline {
	unsigned threads;
	int fds;
};
struct tu_baseline tu_take_baseline(void);

/** tu_image_layout() and tu_image_alloc(@garbage), saying so when either
 *  fails.  0 or -errno; tu_image_free() is safe after either. */
int tu_image_setup(struct tu_image *im, size_t total, size_t page_size,
		   uint64_t seed, bool garbage);
/** One array of tu_image_pages() offsets per block of @im (for
 *  tu_image_write_round()).  False when out of memory; tu_offs_free()
 *  either way (@offs zeroed by the caller). */
bool tu_offs_alloc(uint64_t *offs[TU_MAX_BLOCKS], const struct tu_image *im);
void tu_offs_free(uint64_t *offs[TU_MAX_BLOCKS]);

/**
 * rmig_src_create(@cfg), then rmig_src_add_block() of every block of @im;
 * with @check_index, each block must get its position as its index.
 * False on failure; *@s may be set all the same (tu_src_destroy() it).
 */
bool tu_src_open(rmig_src **s, const struct rmig_config *cfg,
		 const struct tu_image *im, bool check_index);
/** The same for a destination, which then listens: its bound address in
 *  @addr.  *@d may be set on failure (tu_dest_destroy() it). */
bool tu_dest_listen(rmig_dest **d, const struct rmig_config *cfg,
		    const struct tu_image *im, bool check_index,
		    char addr[TU_ADDR_MAX]);
/**
 * Destroy the session (NULL: nothing to do, true); say how long that took,
 * check it took less than @max_ms (0: no limit) and that no thread and no
 * fd is left over from @base (tu_check_no_leaks(tu_role(), ...)).
 */
bool tu_src_destroy(rmig_src *s, const struct tu_baseline *base, int max_ms);
bool tu_dest_destroy(rmig_dest *d, const struct tu_baseline *base,
		     int max_ms);

/** The parent's deadline for tu_wait_children(): tu_watchdog_s() and 5 s
 *  from now. */
uint64_t tu_deadline(void);
/** Print "PASSED/FAILED in N s" (since @t0_ns) for @rc; returns @rc. */
int tu_report(int rc, uint64_t t0_ns);

#endif /* RMIG_TESTUTIL_H */

/* SPDX-License-Identifier: MIT */
/*
 * postcopy_int - what postcopy_dest.c (setup, the end, the proof) and
 * postcopy_pull.c (the fault and pull threads) share; see postcopy.h.
 */
#ifndef RMIG_TOOLS_POSTCOPY_INT_H
#define RMIG_TOOLS_POSTCOPY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <rmig/rmig.h>

#include "guest.h"
#include "live.h"

#define PC_DEPTH 128   /* background reads in flight */
#define PC_RUN_BYTES (128u << 10) /* a background read, at most (and a
				   * page at least) */
#define PC_URGENT (GUEST_MAX_VCPUS + 2) /* one-page fault slots */
#define PC_WAIT_MAX 64 /* completions taken a call, at most */
/* The pull thread takes one completion a call: a fault's, which the
 * library hands out before any background one, then waits behind one
 * background completion's placing at most (up to PC_RUN_BYTES hashed and
 * copied), not behind a batch of them (64: fault p50 some 4 ms here). */
#define PC_WAIT_BATCH 1
/* Reads one slot makes at most: a 2 MiB page in RMIG_READ_MAX pieces. */
#define PC_SPLIT 2

enum { PG_PRESENT = 0, PG_MISSING = 1, PG_FETCHING = 2 };

struct pc_slot {
	struct rmig_read_req req[PC_SPLIT]; /* user: the slot */
	unsigned nreq;
	_Atomic unsigned pending; /* reads not yet back */
	int status;               /* the first failed read's; pull thread */
	uint64_t first, n;        /* pages */
	uint64_t t_fault_ns;      /* urgent: when the fault was read */
	bool urgent;
	uint8_t *land;            /* anonymous memory: its landing bytes */
	struct pc_slot *next;     /* on a free list */
};

struct pc {
	struct guest *g;
	rmig_dest *d;
	int block;
	uint64_t pages;
	size_t ps;
	uint64_t run;             /* pages a background read, at most */
	/* memfd and hugetlb: MINOR faults; reads land in @alias, a second
	 * mapping of the guest's file, and UFFDIO_CONTINUE maps the page.
	 * Anonymous memory: MISSING faults; reads land in @landing and
	 * UFFDIO_COPY places them. */
	bool minor;
	uint8_t *alias;
	uint8_t *landing;
	_Atomic uint8_t *st;      /* per page: PG_* */
	/* Anonymous memory: the old pages of the long missing runs, moved
	 * out of the guest's mapping in the pause (mremap with
	 * MREMAP_DONTUNMAP leaves the runs empty), unmapped by the reaper
	 * thread once the guest runs. */
	struct pc_grave { void *at; size_t len; } *graves;
	size_t ngraves;
	uint64_t moved, dropped;  /* pages (the report's) */
	pthread_t reaper;
	bool reaper_on;
	const uint64_t *hashes;
	int uffd;
	int stop_pipe[2];
	struct pc_slot slots[PC_URGENT + PC_DEPTH];

	pthread_mutex_t lock;     /* ufree */
	pthread_cond_t cond;
	struct pc_slot *ufree;    /* free urgent slots */
	bool stopping;            /* under lock: the fault thread ends */

	/* The pull thread's own. */
	struct pc_slot *bfree;    /* free background slots */
	uint64_t cursor;          /* next page the pull looks at */
	uint32_t *lat_us;         /* fault service times */
	uint64_t nlat;
	uint64_t present;         /* pages present */
	uint64_t mismatched;
	int64_t first_mismatch;

	_Atomic int err;          /* first failure, negative errno */
	char errmsg[512];         /* set by the thread that set err */
	_Atomic uint64_t fault_pages, bg_pages, faults_joined, faults_present;
	_Atomic uint64_t eexist;

	/* Recovery.  sess_lock: the fault thread reads (d, connected)
	 * under it, the pull thread writes them under it. */
	pthread_rwlock_t sess_lock;
	bool connected;
	_Atomic uint8_t *want;    /* per page: a vCPU may wait on it */
	bool want_scan;           /* pull thread: read the wanted first */
	uint64_t want_cursor;
	const struct live_recover *rec;
	struct live_blobs *b;
	unsigned recoveries;
	double outage_s;
	_Atomic uint64_t outage_faults;
	_Atomic uint64_t waited;  /* faults served by a resumed session */
	uint64_t outage_placed;
	uint64_t session_pages[LIVE_MAX_SESSIONS];
};

uint64_t pc_now_ns(void);
const char *pc_lib_err(int ret);
/* The first failure of any thread wins; the others see pc->err. */
void pc_fail(struct pc *pc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The threads (arg: the struct pc). */
void *pc_fault_main(void *arg);
void *pc_pull_main(void *arg);

#endif /* RMIG_TOOLS_POSTCOPY_INT_H */

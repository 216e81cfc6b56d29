/* SPDX-License-Identifier: MIT */
/*
 * guest - the workload that stands in for a running virtual machine in
 * rmig-migrate's live migration: a RAM region and N "vCPU" threads writing
 * it at a chosen rate and pattern.
 *
 * Determinism: vCPU v owns the pages [v*slice, (v+1)*slice) of the region
 * (the last vCPU also the remainder).  Its step n draws r = mix(seed, v, n)
 * (a counter-based generator: the step counter is the generator's state),
 * picks a page of its slice by the pattern, folds r into its accumulator
 * acc = mix(acc ^ r), and writes 64 bytes derived from acc into one cache
 * line of that page chosen by r.  So the region's content is a function of
 * (config, each vCPU's step count) only: the rate, the throttle and pauses
 * change when steps happen, never which.  The "device state" is the config
 * and every vCPU's (steps, acc).
 *
 * Before the vCPUs start, the region is "booted": page p gets data when
 * mix(seed, p) % 100 < fill_percent, else stays zero.
 */
#ifndef RMIG_TOOLS_GUEST_H
#define RMIG_TOOLS_GUEST_H

#include <pthread.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Linux 5.14's madvise() advice (guest memory is faulted in with it);
 * older headers lack the name. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define GUEST_MAX_VCPUS 64
#define GUEST_LINE 64 /* bytes one step writes */

enum guest_mem { GUEST_ANON = 0, GUEST_MEMFD = 1, GUEST_HUGETLB = 2 };
enum guest_pattern { GUEST_RANDOM = 0, GUEST_HOT = 1, GUEST_SEQ = 2 };

struct guest_config {
	uint64_t size;          /* bytes, a multiple of page_size */
	size_t page_size;       /* 4096, or 2 MiB for GUEST_HUGETLB */
	enum guest_mem mem;
	unsigned vcpus;         /* 1..GUEST_MAX_VCPUS */
	enum guest_pattern pattern;
	unsigned hot_percent;   /* GUEST_HOT: share of each slice that takes
				 * 90 % of the writes (1..100) */
	unsigned fill_percent;  /* boot: share of data pages (0..100) */
	uint64_t seed;
	double rate_mbs;        /* nominal dirty rate, MB/s (10^6) of distinct
				 * page writes, all vCPUs; 0 idle, < 0 as
				 * fast as the CPU goes */
};

struct guest_vcpu_state {
	uint64_t steps;
	uint64_t acc;
};

struct guest;

struct guest_vcpu {
	struct guest *g;
	unsigned id;
	pthread_t thread;
	bool started;
	uint64_t first, npages; /* its slice, in pages */
	/* Written by the vCPU thread only while it runs; read by others only
	 * while it is paused (the pause handshake orders them). */
	struct guest_vcpu_state st;
};

struct guest {
	struct guest_config cfg;
	uint8_t *mem;        /* the region, page aligned */
	size_t map_len;
	int memfd;           /* -1 for anonymous memory */
	uint64_t pages;
	struct guest_vcpu vcpu[GUEST_MAX_VCPUS];

	pthread_mutex_t lock;
	pthread_cond_t cond;     /* vCPUs wait here (paused, or sleeping) */
	pthread_cond_t paused_cond; /* the controller waits here */
	bool pause_req;          /* under lock */
	bool stop;               /* under lock */
	unsigned paused;         /* vCPUs parked at a step boundary; lock */
	unsigned running;        /* vCPU threads started and not ended */
	_Atomic unsigned throttle; /* percent of each 10 ms period asleep */
	_Atomic bool pause_flag;   /* lock-free peek of pause_req/stop */
};

/* Parse "anon|memfd|hugetlb", "random|hot|seq"; 0 or -1. */
int guest_parse_mem(const char *s, enum guest_mem *out);
int guest_parse_pattern(const char *s, enum guest_pattern *out);
const char *guest_mem_name(enum guest_mem m);
const char *guest_pattern_name(enum guest_pattern p);

/* Check @cfg; 0, or -1 with a message naming the field in @err. */
int guest_config_check(const struct guest_config *cfg, char *err,
		       size_t errlen);

/*
 * Map the region (faulted in, so that no first-touch fault falls in a timed
 * phase, and so write-protection covers every page), boot it when @boot
 * (a destination does not: it receives every page), set every vCPU to
 * step 0.  Threads are not started.  0, or -errno with @err set
 * (hugetlb: names /proc/sys/vm/nr_hugepages when no page is free).
 */
int guest_create(struct guest *g, const struct guest_config *cfg, bool boot,
		 char *err, size_t errlen);
/* Stops the vCPUs if they run, unmaps. */
void guest_destroy(struct guest *g);

/* Destination: take the source's workload settings from @cfg (the decoded
 * device state).  -EINVAL with @err when its size or page size differ. */
int guest_adopt(struct guest *g, const struct guest_config *cfg, char *err,
		size_t errlen);

/* Load vCPU states (as guest_get_state() gave them); vCPUs not running.
 * The region must hold the image those states produced. */
void guest_set_state(struct guest *g, const struct guest_vcpu_state *st);
/* Read vCPU states; vCPUs paused or not started. */
void guest_get_state(const struct guest *g, struct guest_vcpu_state *st);

/* Start the vCPU threads (running).  0 or -errno. */
int guest_start(struct guest *g);
/* Park every vCPU at a step boundary and wait until all are parked. */
void guest_pause(struct guest *g);
void guest_resume(struct guest *g);
/* Tell every vCPU thread to end at its next step boundary, without
 * waiting for them: for vCPUs that may be blocked for good on a page that
 * never comes (post-copy whose source went away).  Only process exit ends
 * such a guest: do not call guest_stop() or guest_destroy() after it. */
void guest_abandon(struct guest *g);
/* 0..99: percent of each 10 ms period each vCPU sleeps (auto-converge). */
void guest_set_throttle(struct guest *g, unsigned percent);
/* Stop and join the threads (from any state). */
void guest_stop(struct guest *g);

/* Run each vCPU in the calling thread until its step count is @steps[v]
 * (no-op for a vCPU already there); threads must not be running. */
void guest_run_to(struct guest *g, const uint64_t *steps);

/* OR into @bits (bit p%64 of word p/64 for page p) every page vCPU v's
 * steps @from[v] .. @to[v] - 1 write (the workload is deterministic: no
 * memory is read).  Configured as the guest that ran them (guest_adopt()). */
void guest_touched(const struct guest *g, const uint64_t *from,
		   const uint64_t *to, uint64_t *bits);

/* One 64-bit checksum of the region and the vCPU states. */
uint64_t guest_checksum(const struct guest *g);
/* Hash of one page. */
uint64_t guest_page_hash(const void *page, size_t len);

/*
 * The reference: a never-migrated guest of @cfg (as anonymous memory),
 * booted and run to @steps[v] per vCPU; its checksum into *sum.
 * 0 or -errno with @err.
 */
int guest_replay(const struct guest_config *cfg, const uint64_t *steps,
		 uint64_t *sum, char *err, size_t errlen);

/* Device-state blob: config and vCPU states, plus @pause_ns (the source's
 * CLOCK_MONOTONIC at pause) and @pages for a size check.  The blob is
 * little-endian fixed-width; guest_state_decode() checks every field. */
size_t guest_state_size(unsigned vcpus);
void guest_state_encode(const struct guest *g, uint64_t pause_ns, void *buf);
int guest_state_decode(const void *buf, size_t len, struct guest_config *cfg,
		       struct guest_vcpu_state *st, uint64_t *pause_ns,
		       char *err, size_t errlen);

#endif /* RMIG_TOOLS_GUEST_H */

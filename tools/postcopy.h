/* SPDX-License-Identifier: MIT */
/*
 * postcopy - post-copy in rmig-migrate's live run (private to live.c and
 * postcopy_*.c): the source's switch (postcopy_src.c; live.c's
 * live_source() runs the rounds before it) and the destination's side.
 *
 * At the switch the destination has the vCPU state, the bitmap of the
 * pages it lacks and the hash of every page of the source's final image
 * (device-state blobs sent before rmig_src_postcopy()).  It drops the
 * missing pages (MADV_DONTNEED), registers the guest RAM with userfaultfd,
 * resumes the vCPUs at once and fills the holes by RDMA READ from the
 * source's RAM (rmig_dest_read_submit()).  Anonymous memory: MISSING
 * faults, reads land in a landing buffer and UFFDIO_COPY places them.
 * memfd and hugetlb: the DONTNEED only unmaps (the file keeps the stale
 * page), MINOR faults, reads land in a second mapping of the file and
 * UFFDIO_CONTINUE maps the page.  Two threads (postcopy_pull.c):
 *
 *   fault thread   reads each fault off the userfaultfd; a missing page
 *                  is claimed (missing -> fetching) and read with
 *                  RMIG_READ_URGENT; a page being fetched already is left
 *                  to that read (placing it wakes the faulting vCPU); a
 *                  present one is woken (UFFDIO_WAKE).
 *   pull thread    the background pull and every completion: keeps
 *                  PC_DEPTH reads in flight, each a run of adjacent
 *                  missing pages (128 KiB at most, or one page) claimed
 *                  in address order, and takes the completions
 *                  (rmig_dest_read_wait()): each page's hash is compared
 *                  with the list, then the run is placed (atomic: EEXIST
 *                  for a page present already, which is never
 *                  overwritten) and its pages become present.
 *
 * Each page is fetched once (the claim), so a page a fault placed and the
 * guest then wrote is never overwritten by a late background read.  When
 * every page is present: unregister, the final sync, rmig_dest_finish(),
 * and the proof (see postcopy_dest()).  When the session fails first (the
 * source went away), the reads that failed make their pages missing
 * again, faults on missing pages wait (nothing is read or placed while
 * disconnected), and the pull thread replaces the session by a resumed
 * one (struct live_recover): the pages faults wait on are read first,
 * then the rest.  When that gives up the guest is lost: its vCPUs blocked
 * on missing pages stay blocked, the others stop, and nothing is
 * verified or resumed.
 */
#ifndef RMIG_TOOLS_POSTCOPY_H
#define RMIG_TOOLS_POSTCOPY_H

#include <stdbool.h>
#include <stdint.h>

#include <rmig/rmig.h>

#include "guest.h"
#include "live.h"

/* What the source's device-state blobs said (live.c takes them). */
struct live_blobs {
	bool have_state;
	struct guest_vcpu_state st[GUEST_MAX_VCPUS];
	uint64_t pause_ns;     /* the source's clock at its pause */
	uint64_t have_all_ns;  /* this side's clock when the state came */
	uint64_t pages;        /* this side's guest */
	uint64_t *hashes;      /* pages entries */
	uint64_t nhash;
	uint64_t *missing;     /* (pages + 63) / 64 words */
	uint64_t nmissing_words;
	uint8_t uuid[16];      /* resumed UUIDs' root (LIVE_UUID_IDSTR) */
	bool have_uuid;
	/* Where reads land, mapped and registered before the switch
	 * (postcopy_prepare()); NULL with the reason in landing_err. */
	uint8_t *landing;
	size_t landing_len;
	char landing_err[256];
};

/*
 * Before the first sync (after rmig_dest_accept()): map, fault in and
 * register where a post-copy's reads land (anonymous memory: a landing
 * buffer, 16 MiB; memfd and hugetlb: a second mapping of the guest's
 * file), so that a switch does not pay for it in the downtime.  Nothing
 * fails here: without it (a transport without RDMA READ, anonymous memory
 * with 2 MiB pages) a switch fails with the reason kept in
 * b->landing_err.  The mapping stays (registered until
 * rmig_dest_destroy()) until the process exits.
 */
void postcopy_prepare(rmig_dest *d, const struct guest *g,
		      struct live_blobs *b);

/* ------------------------------------------------------------------ */
/* Source (postcopy_src.c)                                             */

/* Hash the pages of @g into @h (g->pages entries): every page, or with
 * @only those whose bit is set; many pages on a thread a CPU. */
void live_hash_pages(const struct guest *g, uint64_t *h, const uint64_t *only);

/* The proof's hash list (LIVE_HASH_IDSTR blobs): @all, or when NULL the
 * hashes of the memory now.  0 or the library's negative errno. */
int live_send_hashes(struct guest *g, rmig_src *s, const uint64_t *all);

/*
 * The post-copy switch, the vCPUs paused for good and @bits the pages the
 * destination lacks (kept: a fallback sends them): the vCPU state, the
 * missing pages and the final image's hashes (@hashes computed before the
 * pause, brought up to date for the pages in @fresh, written since; NULL:
 * all hashed now), then rmig_src_postcopy() (or p->postcopy_fn).  1 when
 * switched, 0 when the transport has no RDMA READ (fall back to
 * stop-and-copy: the blobs sent stay true, the guest being paused), or the
 * library's negative errno.
 */
int postcopy_switch(struct guest *g, rmig_src *s, const uint64_t *bits,
		    uint64_t *hashes, const uint64_t *fresh, const void *state,
		    size_t slen, const struct live_params *p,
		    struct live_result *r);

/* ------------------------------------------------------------------ */
/* Destination (postcopy_dest.c, postcopy_pull.c)                      */

/*
 * The destination after rmig_dest_wait_sync() returned
 * RMIG_SYNC_POSTCOPY_SWITCH (@b holds the blobs, r->cfg the source's
 * workload from the state blob).  Runs the guest, pulls every missing
 * page, completes the session and proves the guest: every page the guest
 * did not write after the switch equals the source's final image (every
 * pulled page was compared on arrival), and after @resume_steps more steps
 * per vCPU the guest's checksum equals a never-migrated replay's.
 * 0 when migrated and verified; negative with r->error, and r->lost when
 * the guest is lost (its vCPUs may be blocked for good: the caller must
 * not stop or destroy @g, only exit).  With @rec, a session lost during
 * the pull is replaced (rec->reconnect(), which destroys *@d) and the pull
 * goes on; *@d is the session in use when this returns (NULL when a
 * reconnect gave up).  See postcopy_pull.c.
 */
int postcopy_dest(struct guest *g, rmig_dest **d, int block,
		  uint64_t resume_steps, bool same_host, struct live_blobs *b,
		  const struct live_recover *rec, struct live_dest_result *r);

#endif /* RMIG_TOOLS_POSTCOPY_H */

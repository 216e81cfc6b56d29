/* SPDX-License-Identifier: MIT */
/*
 * live - pre-copy live migration of a running guest (guest.h) through the
 * rmig API, as a hypervisor drives it (see docs/integration.rst):
 *
 *   round 1      write-protect the RAM (dirty.h), queue every page (zero
 *                pages travel as zero pages), sync;
 *   round 2..n   harvest the pages written since the last harvest, queue
 *                them, sync; measure the bandwidth; the expected downtime
 *                is (dirty bytes left) / bandwidth;
 *   converged    when the expected downtime is within the limit (after
 *                round 1, within a quarter of it: that round's contiguous
 *                pages move faster than scattered dirty pages do):
 *                stop-and-copy: pause the vCPUs, harvest, queue the last
 *                dirty pages, send the vCPU state, sync (the destination
 *                has everything: the downtime ends), then the per-page hash
 *                list of the final image (for the destination's proof) and
 *                the final sync;
 *   auto-converge  checked once per throttle period (at least 0.2 s;
 *                QEMU: 1 s; rounds 2..n): when the pages dirtied in the period exceed
 *                half of what it sent, twice in a row, throttle the vCPUs
 *                (initial step, then +increment, up to the maximum), as
 *                QEMU's cpu-throttle-initial / -increment /
 *                max-cpu-throttle;
 *   give up      past max_rounds, or after 3 throttle periods at the
 *                maximum throttle, unless force_finish.
 *
 * On any failure the guest is resumed where it was: tracking removed,
 * throttle 0, memory untouched (rmig only reads it).
 */
#ifndef RMIG_TOOLS_LIVE_H
#define RMIG_TOOLS_LIVE_H

#include <stdbool.h>
#include <stdint.h>

#include <rmig/rmig.h>

#include "dirty.h"
#include "guest.h"

#define LIVE_STATE_IDSTR "rmig-migrate/guest"
#define LIVE_HASH_IDSTR "rmig-migrate/page-hashes"
/* Post-copy: the pages the destination lacks at the switch, a bitmap (bit
 * p%64 of little-endian word p/64 for page p), LIVE_MISSING_WORDS words a
 * blob, instance i from word i * LIVE_MISSING_WORDS on. */
#define LIVE_MISSING_IDSTR "rmig-migrate/missing-pages"
#define LIVE_MISSING_WORDS (1u << 20)
/* Post-copy: what the resumed sessions' UUIDs derive from (16 bytes: the
 * first session's UUID when configured, else random), sent before the
 * switch. */
#define LIVE_UUID_IDSTR "rmig-migrate/session-uuid"
/* Page hashes a blob (LIVE_HASH_IDSTR, instance i from hash i * this). */
#define LIVE_HASHES_PER_BLOB (1u << 20)

struct live_progress {
	/* "postcopy-fallback": rmig_src_postcopy() said -EOPNOTSUPP;
	 * "postcopy-switch": the guest runs at the destination;
	 * "sending": during a round, every progress_interval_s (pages of the
	 *            round not sent yet, the round's rate so far);
	 * "round":   a round ended and the next dirty set was harvested (the
	 *            pages to send next, the round's rate, a new estimate);
	 * "stop-and-copy": the downtime is over. */
	const char *phase;
	unsigned round;
	uint64_t dirty_pages;  /* left to send */
	double gbps;           /* measured, 10^9 bytes/s */
	double expected_ms;    /* expected downtime; -1 before the first */
	unsigned throttle;     /* percent */
	double elapsed_s;
};

struct live_params {
	double downtime_limit_ms;   /* default 300; < 0: never converges
				     * (tests keep rounds running with it) */
	unsigned max_rounds;        /* default 100 */
	bool auto_converge;         /* default true */
	unsigned throttle_initial;  /* default 20 */
	unsigned throttle_increment;/* default 10 */
	unsigned throttle_max;      /* default 99 */
	double throttle_period_s;   /* auto-converge check period, default 0.2 */
	bool force_finish;          /* not converging: stop-and-copy anyway */
	enum dirty_mode dirty_mode; /* default auto */
	/* Post-copy: after postcopy_after pre-copy rounds (0: none, every
	 * page is pulled; default 1), pause for good, send the vCPU state,
	 * the missing pages and the hashes, and switch (rmig_src_postcopy());
	 * the destination pulls the rest while its guest runs.  A transport
	 * without RDMA READ falls back to stop-and-copy. */
	bool postcopy;
	unsigned postcopy_after;
	/* Called during each round (phase "sending", at most every
	 * progress_interval_s, default 0.2; 0: after every chunk of pages
	 * queued), after each round and at stop-and-copy (may be NULL).
	 * Called from live_source()'s thread. */
	void (*progress)(const struct live_progress *p, void *arg);
	double progress_interval_s;
	/* Called before round n >= 2 is sent (tests); nonzero aborts. */
	int (*round_hook)(unsigned round, void *arg);
	/* Called in stop-and-copy once the vCPUs are paused and the last
	 * dirty set is harvested, before any of it is sent (tests: kill the
	 * destination here); nonzero aborts, and the guest must resume. */
	int (*paused_hook)(void *arg);
	/* Post-copy: called once rmig_src_postcopy() returned (tests: kill
	 * the source here); nonzero fails the migration, the guest staying
	 * at the destination only. */
	int (*switched_hook)(void *arg);
	/* Tests: called instead of rmig_src_postcopy() when set (a stub
	 * returning -EOPNOTSUPP exercises the fallback on a transport that
	 * has RDMA READ). */
	int (*postcopy_fn)(rmig_src *s);
	/* Post-copy: the resumed sessions' UUIDs derive from this
	 * (uuid_set: the first session's UUID when configured, else random),
	 * sent with the switch so that the destination derives the same
	 * (live_resume_uuid()). */
	uint8_t uuid[16];
	bool uuid_set;
	/* Post-copy recovery (NULL: none, a lost session fails the run):
	 * after the switch, rmig_src_finish() failed; replace *@s (destroy
	 * it) by a new session of attempt @attempt (1, 2, ...) connected
	 * and switched again (rmig_src_postcopy() returned), retrying until
	 * it gives up: 0, or negative with why in @err. */
	int (*recover)(unsigned attempt, rmig_src **s, char *err, size_t len,
		       void *arg);
	void *arg;
};

/* Defaults above. */
void live_params_default(struct live_params *p);

struct live_result {
	bool ok;
	bool converged;        /* within the limit (else forced) */
	enum dirty_mode mode;
	unsigned rounds;
	unsigned throttle;     /* highest reached */
	double total_s;        /* first round start .. finish */
	double downtime_ms;    /* pause .. stop-and-copy sync returned */
	double expected_ms;    /* the last estimate before stop-and-copy */
	/* The downtime's parts: vCPUs parking, the last harvest, queueing
	 * the pages and the state until the sync returned. */
	double pause_ms, harvest_ms, transfer_ms;
	double gbps;           /* RAM bytes sent / seconds, all rounds */
	uint64_t bytes;        /* wire bytes */
	uint64_t normal_pages, zero_pages;
	uint64_t final_pages;  /* dirty pages sent during the downtime */
	uint64_t faults;       /* sync mode: write faults handled */
	/* Post-copy: switched (the guest lives at the destination only from
	 * then on: never resumed here), or fell back to stop-and-copy; the
	 * pages the destination lacked at the switch, the time hashing the
	 * image for the proof, the switch .. rmig_src_finish()
	 * returned (the destination pulled every page). */
	bool switched, fell_back;
	uint64_t missing_pages;
	/* hash_ms: in the downtime (the pages written since the image was
	 * hashed before the pause, prehash_ms; every page with 0 rounds) */
	double hash_ms, prehash_ms, pull_s;
	/* Post-copy recovery: sessions resumed after a loss, seconds
	 * between each loss and its resumed switch (all of them), and
	 * gave_up: the last loss was not recovered. */
	unsigned recoveries;
	double outage_s;
	bool gave_up;
	struct rmig_stats st;
	char error[768];
};

/*
 * Migrate the running guest @g (started; RAM block @block of the connected
 * session @s is g->mem).  0 on success: the guest is paused for good (it
 * lives on at the destination).  Negative errno on failure with r->error
 * set: the guest runs again as before the call.
 */
int live_source(struct guest *g, rmig_src *s, int block,
		const struct live_params *p, struct live_result *r);

#define LIVE_MAX_SESSIONS 16

struct live_dest_result {
	bool ok;
	bool verified;          /* every page hash matched */
	uint64_t pages, mismatched_pages;
	int64_t first_mismatch; /* page, -1 none */
	double downtime_ms;     /* source pause .. this side had it all,
				 * same-host clocks only (demo), else -1 */
	double seconds;         /* accept .. final sync */
	uint64_t resume_steps;  /* per vCPU, run after the migration */
	uint64_t checksum;      /* after resuming */
	uint64_t replay_checksum; /* never-migrated replay */
	struct guest_config cfg; /* the source's workload */
	/* Post-copy (postcopy true: the source switched): the pages missing
	 * at the switch, pulled by a fault (urgent read) or by the
	 * background pull; faults that found their page's read in flight
	 * already or the page present; pages a placement found present
	 * (EEXIST, never overwritten); the switch .. every page present; the
	 * fault service times (fault read .. UFFDIO_COPY done), µs; pages
	 * the guest did not write after the switch, compared with the hash
	 * list at the end (every pulled page is compared on arrival); the
	 * missing pages moved out of the guest's mapping at the switch (runs
	 * of 2 MiB or more, anonymous memory) and dropped in place. */
	bool postcopy;
	bool lost;             /* the source went away mid-pull */
	uint64_t missing_pages, fault_pages, background_pages;
	uint64_t moved_out_pages, dropped_pages;
	uint64_t faults_joined, faults_present, eexist_pages;
	uint64_t never_arrived;
	double pull_s;
	double fault_p50_us, fault_p99_us, fault_max_us;
	uint64_t untouched_checked, untouched_mismatched;
	/* Post-copy recovery: sessions resumed, seconds disconnected (the
	 * loss seen .. the resumed switch, all of them), faults that came
	 * while disconnected (their vCPUs wait: served after), faults that
	 * waited for a resumed session (those, and the faults whose read
	 * failed with the session), pages placed while disconnected (always
	 * 0: the check), pages pulled by each session (the first
	 * LIVE_MAX_SESSIONS). */
	unsigned recoveries;
	double outage_s;
	uint64_t outage_faults, waited_faults, outage_placed;
	uint64_t session_pages[LIVE_MAX_SESSIONS];
	struct rmig_stats st;
	char error[768];
};

/* Post-copy recovery at the destination: what live_dest() calls when the
 * session fails during the pull. */
struct live_recover {
	/* Destroy *@d (nothing of it is used any more), listen again, accept
	 * the resumed session of attempt @attempt (UUID: @uuid, the first
	 * session's, through live_resume_uuid()) and wait for its switch;
	 * 0 with *@d and *@block the new session's, or negative (give up,
	 * why in @err; *@d NULL or a session to destroy). */
	int (*reconnect)(unsigned attempt, const uint8_t uuid[16],
			 rmig_dest **d, int *block, char *err, size_t len,
			 void *arg);
	/* Tests (may be NULL): called by the pull thread before each wait,
	 * with the pages pulled so far. */
	void (*pull_hook)(uint64_t pulled, void *arg);
	void *arg;
};

/* The UUID of resumed session @attempt: the first 16 bytes of
 * SHA-256(@first || "rmig-resume" || attempt, 4 bytes little-endian). */
void live_resume_uuid(const uint8_t first[16], unsigned attempt,
		      uint8_t out[16]);

/*
 * Receive into @g (created without boot; block @block of the accepted
 * session @d), prove it (hashes, then resume @resume_steps per vCPU and
 * compare with a replay).  @same_host: the source's pause time is on this
 * clock (demo).  @rec (may be NULL): post-copy recovery.  0 when migrated
 * and verified; negative with r->error.
 */
int live_dest(struct guest *g, rmig_dest *d, int block,
	      uint64_t resume_steps, bool same_host,
	      const struct live_recover *rec, struct live_dest_result *r);

/*
 * Pause @g, compare its checksum with a never-migrated replay of the same
 * steps; 0 when equal, -EIO when not (@err says both), other -errno.
 * *sum / *ref get the two checksums.  The guest stays paused.
 */
/* Write the message into @buf unless it holds one already (the first
 * error wins). */
void live_fail(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The guest's checksum into *@sum, and that of a never-migrated replay of
 * @g's workload to @steps (per vCPU) into *@ref: 0 when equal, -EIO when
 * not (@err says both, after @what), other -errno.
 */
int live_compare_replay(struct guest *g, const uint64_t *steps,
			const char *what, uint64_t *sum, uint64_t *ref,
			char *err, size_t errlen);

int live_check_guest(struct guest *g, uint64_t *sum, uint64_t *ref,
		     char *err, size_t errlen);

#endif /* RMIG_TOOLS_LIVE_H */

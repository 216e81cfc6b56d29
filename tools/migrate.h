/* SPDX-License-Identifier: MIT */
/*
 * migrate - what the parts of rmig-migrate share (private to the program;
 * rmig-migrate.c describes the tool).  One file a job:
 *
 *   rmig-migrate.c     main, the process's start (signals cancel the
 *                      session, -v routes the library log), and what a
 *                      source or destination run shares (struct side)
 *   migrate_opts.c     the command line: --help, options, their checks
 *   migrate_report.c   everything printed: messages, progress, the results
 *                      as text or JSON
 *   migrate_still.c    --still: a still, reproducible image, verified byte
 *                      for byte
 *   migrate_live.c     the live run: a running guest (tools/live.h)
 *   migrate_demo.c     demo: a destination and a source as two processes
 */
#ifndef RMIG_TOOLS_MIGRATE_H
#define RMIG_TOOLS_MIGRATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rmig/rmig.h>

#include "cli.h"
#include "live.h"

#define PROG "rmig-migrate"
#define DEMO_ACCEPT_TIMEOUT_S 60
/* dest without --timeout: how long it waits for a source.  Finite, so a
 * destination whose source never comes (a failed management step) does
 * not hold its RAM for ever; long enough to start the source by hand. */
#define DEST_ACCEPT_TIMEOUT_S 600

enum exit_code { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };
enum role { ROLE_NONE, ROLE_DEMO, ROLE_SOURCE, ROLE_DEST };

struct opts {
	enum role role;
	const char *address;    /* --connect / --listen */
	uint64_t size;          /* bytes */
	struct cli_session_opts sess; /* page size, channels, transport ... */
	unsigned zero_percent;
	uint64_t seed;
	uint8_t uuid[16];
	bool uuid_set;
	int timeout_s;          /* dest: wait for a source; -1: unset */
	bool dirty_dest;
	bool json;
	int verbose;
	int status_fd;          /* demo: dest writes its address here */

	/* Live migration (the default; --still copies a still image) */
	bool still;
	bool page_size_set;
	struct guest_config guest; /* size and page size from above */
	double warmup_s;        /* source: guest runs this long first */
	uint64_t resume_steps;  /* dest: steps per vCPU after migrating */
	struct live_params live;
	double recover_timeout_s; /* post-copy: keep reconnecting this long */
	bool demo_child;        /* forked by demo: one host, one clock */
};

/* The results of a still run, for print_report(). */
struct report {
	const char *role;
	uint64_t ram_bytes;
	uint64_t pages;
	double prepare_s;   /* fault-in (+ fill) before the clock */
	double connect_s;
	double seconds;     /* the timed migration */
	struct rmig_stats st;
	uint64_t peak_rss;
	int verified;       /* -1: not applicable (source), 0 failed, 1 ok */
	uint64_t mismatched_pages;
	int64_t first_mismatch;  /* page index, -1 none */
	const char *error;  /* NULL when it worked */
};

/* One side's run: what the source and the destination share. */
struct side {
	const struct opts *o;
	struct report r;
	char errbuf[1024];  /* r.error, when formatted */
	void *base;         /* the mapping, for munmap() */
	size_t base_len;
	uint8_t *ram;       /* the RAM block, aligned, in it */
	/* Sessions side_open() creates: this UUID (uuid_set, else the
	 * options'), and a resumed post-copy (RMIG_CFG_POSTCOPY_RESUME). */
	bool uuid_set;
	uint8_t uuid[16];
	bool resume;
};

/* ------------------------------------------------------------------ */
/* rmig-migrate.c                                                      */

/* The signal that asked this process to stop, 0 while none did. */
extern _Atomic int sig_caught;

/* The session a SIGINT/SIGTERM cancels (NULL, NULL: none). */
void set_cancel_target(rmig_src *s, rmig_dest *d);
void start_side(const struct opts *o);
void side_init(struct side *x, const struct opts *o, const char *role,
	       int verified);
char *lib_error_text(char *buf, size_t len);
bool connect_refused(int ret, char *buf, size_t len);
bool pass_address(const struct opts *o, const char *addr, char *err,
		  size_t len);
int side_open(struct side *x, const char *address, rmig_src **s,
	      rmig_dest **d);
/* The source's or the destination's run, still or live: the exit status. */
int side_listen(struct side *x, rmig_dest **d, char *addr, size_t len);
int source_main(const struct opts *o, const char *address);
int dest_main(const struct opts *o);

/* ------------------------------------------------------------------ */
/* migrate_opts.c                                                      */

/* The command line into @o (g_role and g_json set): 0, or -1 after a
 * message on stderr.  --help prints and exits 0. */
int parse_args(int argc, char **argv, struct opts *o);
void format_uuid(const uint8_t u[16], char out[37]);

/* ------------------------------------------------------------------ */
/* migrate_report.c                                                    */

extern enum role g_role; /* this process's role, for messages */
extern bool g_json;      /* --json: no progress lines */
extern bool g_tty;       /* progress line updated in place */

const char *role_name(enum role r);
/* "ROLE: error: ..." on stderr. */
void fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *human(uint64_t bytes, char buf[32]);
void print_report(const struct opts *o, const struct report *r);
void progress_end(void);
void progress_cb(const struct live_progress *p, void *arg);
void live_src_report(const struct opts *o, const struct live_result *r,
		     const char *error, int intact, uint64_t ran_on,
		     uint64_t sum, uint64_t ref, double prepare_s,
		     double connect_s);
void live_dest_report(const struct opts *o,
		      const struct live_dest_result *dr, const char *error);

/* ------------------------------------------------------------------ */
/* migrate_still.c, migrate_live.c, migrate_demo.c: the runs; each returns
 * the exit status. */

int run_source(const struct opts *o, const char *address);
int run_dest(const struct opts *o);
int run_live_source(const struct opts *o, const char *address);
int run_live_dest(const struct opts *o);
int run_demo(struct opts *o);

#endif /* RMIG_TOOLS_MIGRATE_H */

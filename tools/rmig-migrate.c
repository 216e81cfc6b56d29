/* SPDX-License-Identifier: MIT */
/*
 * rmig-migrate - run a real migration of guest-like memory with rmig.
 *
 * The source fills a RAM block with a reproducible mix of data pages and
 * zero pages (seeded generator, see below), migrates it over N channels and
 * reports; the destination receives it into its own RAM block, regenerates
 * the expected image page by page and compares byte for byte.
 *
 *   rmig-migrate demo   [options]                 both sides on 127.0.0.1
 *   rmig-migrate dest   --listen HOST:PORT [options]
 *   rmig-migrate source --connect HOST:PORT [options]
 *
 * Only the public API (rmig/rmig.h) is used.
 *
 * The generator: page p of a run with seed S has the key
 *   k = mix(mix(S) ^ p)          (mix = splitmix64's finaliser)
 * The page is a zero page when ((k >> 32) * 100) >> 32 < zero_percent,
 * otherwise its 64-bit word i (little-endian in memory as the CPU stores
 * it) is mix(k + (i + 1) * 0x9e3779b97f4a7c15).  Both sides compute the same
 * image from (seed, zero_percent, page size, size), so nothing but the
 * migrated pages travels between them.
 *
 * This file: main, the start of a source or destination process, and what
 * their runs share; migrate.h lists the others (options, report, the still
 * run, the live run, the demo).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "migrate.h"

/* ------------------------------------------------------------------ */
/* Library glue                                                        */

static const char *level_name(enum rmig_log_level l)
{
	switch (l) {
	case RMIG_LOG_ERROR:
		return "error";
	case RMIG_LOG_WARN:
		return "warn";
	case RMIG_LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

static void log_cb(enum rmig_log_level level, const char *msg, void *arg)
{
	fprintf(stderr, "%s: rmig %s: %s\n", (const char *)arg,
		level_name(level), msg);
}

static void make_config(const struct opts *o, struct rmig_config *cfg,
			const char *address)
{
	cli_make_config(&o->sess, cfg, address);
	if (o->uuid_set) {
		cfg->field_mask |= RMIG_CFG_UUID;
		memcpy(cfg->uuid, o->uuid, sizeof(cfg->uuid));
	}
}

/* SIGINT/SIGTERM: a thread waits for them and cancels the session; the
 * blocked call then returns -ECANCELED.  The mutex keeps cancel away from
 * destroy. */
static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static rmig_src *sig_src;
static rmig_dest *sig_dest;
_Atomic int sig_caught;

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	for (;;) {
		if (sigwait(set, &sig))
			continue;
		if (sig_caught) {
			/* Second signal: the first did not end it; go now. */
			_exit(128 + sig);
		}
		pthread_mutex_lock(&sig_lock);
		sig_caught = sig;
		if (sig_src)
			rmig_src_cancel(sig_src);
		if (sig_dest)
			rmig_dest_cancel(sig_dest);
		pthread_mutex_unlock(&sig_lock);
	}
	return NULL;
}

static void start_signal_thread(void)
{
	static sigset_t set;
	pthread_t t;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* Blocked before any library thread exists, so they inherit it. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!pthread_create(&t, NULL, signal_thread, &set))
		pthread_detach(t);
}

void set_cancel_target(rmig_src *s, rmig_dest *d)
{
	pthread_mutex_lock(&sig_lock);
	sig_src = s;
	sig_dest = d;
	pthread_mutex_unlock(&sig_lock);
}

/* The start of a source or destination process (g_role set): signals
 * cancel its session; -v routes the library log to stderr. */
void start_side(const struct opts *o)
{
	start_signal_thread();
	if (o->verbose)
		rmig_set_log_handler(log_cb, (void *)role_name(g_role),
				     o->verbose > 1 ? RMIG_LOG_DEBUG :
						      RMIG_LOG_INFO);
}

/* ------------------------------------------------------------------ */
/* One side's run: what the source and the destination share           */

/* @verified: -1 on the source (not applicable), 0 on the destination until
 * it has checked every page. */
void side_init(struct side *x, const struct opts *o, const char *role,
	       int verified)
{
	*x = (struct side){
		.o = o,
		.r = { .role = role, .verified = verified,
		       .first_mismatch = -1, .ram_bytes = o->size,
		       .pages = o->size / o->sess.page_size },
	};
}

/* The library's message, and whether a signal cancelled the call, in
 * @buf; returns @buf. */
char *lib_error_text(char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", rmig_last_error(),
		 sig_caught ? " (interrupted by a signal)" : "");
	return buf;
}

/* True, with a hint in @buf, when rmig_src_connect()'s @ret says nothing
 * listened there (as opposed to a destination that rejected us). */
bool connect_refused(int ret, char *buf, size_t len)
{
	if (ret != -ECONNREFUSED || strstr(rmig_last_error(), "reject"))
		return false;
	snprintf(buf, len, "%s (is 'rmig-migrate dest --listen ...' running "
		 "there?  Start it first.)", rmig_last_error());
	return true;
}

/* Hand the bound address @addr to the source through --status-fd (the
 * demo) when there is one; false, with why in @err, when it cannot. */
bool pass_address(const struct opts *o, const char *addr, char *err,
		  size_t len)
{
	char line[160];
	int n;

	if (o->status_fd < 0)
		return true;
	n = snprintf(line, sizeof(line), "%s\n", addr);
	if (write(o->status_fd, line, (size_t)n) != n) {
		snprintf(err, len, "cannot pass the address to the source: %s",
			 strerror(errno));
		return false;
	}
	close(o->status_fd);
	return true;
}

/* Create the session, source (@s) or destination (@d), for @address, make
 * it the one a signal cancels, and add the RAM block.  Returns the block's
 * index, or a negative errno from the library (*s or *d may then be set). */
int side_open(struct side *x, const char *address, rmig_src **s,
	      rmig_dest **d)
{
	struct rmig_config cfg;
	size_t len = (size_t)x->o->size;
	int ret;

	make_config(x->o, &cfg, address);
	if (x->uuid_set) {
		cfg.field_mask |= RMIG_CFG_UUID;
		memcpy(cfg.uuid, x->uuid, sizeof(cfg.uuid));
	}
	if (x->resume) {
		cfg.field_mask |= RMIG_CFG_POSTCOPY_RESUME;
		cfg.postcopy_resume = 1;
	}
	ret = s ? rmig_src_create(&cfg, s) : rmig_dest_create(&cfg, d);
	if (ret < 0)
		return ret;
	set_cancel_target(s ? *s : NULL, d ? *d : NULL);
	return s ? rmig_src_add_block(*s, "ram", x->ram, len) :
		   rmig_dest_add_block(*d, "ram", x->ram, len);
}

/* The destination's side_open() on --listen, then rmig_dest_listen(): the
 * address it listens on (port 0 resolved) into @addr.  Returns the block's
 * index, or a negative errno from the library (*d may then be set). */
int side_listen(struct side *x, rmig_dest **d, char *addr, size_t len)
{
	int block = side_open(x, x->o->address, NULL, d);
	int ret;

	if (block < 0)
		return block;
	ret = cli_dest_listen(*d, addr, len);
	return ret < 0 ? ret : block;
}

int source_main(const struct opts *o, const char *address)
{
	return o->still ? run_source(o, address) : run_live_source(o, address);
}

int dest_main(const struct opts *o)
{
	return o->still ? run_dest(o) : run_live_dest(o);
}

int main(int argc, char **argv)
{
	struct opts o;

	if (parse_args(argc, argv, &o))
		return EXIT_USAGE;
	setvbuf(stdout, NULL, _IOLBF, 0);
	switch (o.role) {
	case ROLE_DEMO:
		return run_demo(&o);
	case ROLE_SOURCE:
	case ROLE_DEST:
		start_side(&o);
		return o.role == ROLE_SOURCE ? source_main(&o, o.address) :
					       dest_main(&o);
	default:
		return EXIT_USAGE;
	}
}

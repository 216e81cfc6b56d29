/* SPDX-License-Identifier: MIT */
/*
 * rmig-migrate's live run: a running guest (tools/guest.h) migrated by
 * the pre-copy driver (tools/live.h), and the destination that receives,
 * verifies and resumes it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "migrate.h"

/* Sleep @s seconds unless a signal asks to stop; false if one did. */
static bool nap(double s)
{
	double end = cli_now_s() + s;

	while (!sig_caught && cli_now_s() < end)
		usleep(20000);
	return !sig_caught;
}

static int die_hook(void *arg)
{
	(void)arg;
	fflush(NULL);
	raise(SIGKILL);
	return -1;
}

static int no_read(rmig_src *s)
{
	(void)s;
	return -EOPNOTSUPP;
}

/* Post-copy recovery: what both sides' callbacks need. */
struct recover_ctx {
	const struct opts *o;
	struct side *x;
	const char *address;   /* source: --connect; dest: where it listens */
	rmig_src **src;        /* the run's session variable */
	rmig_dest **dest;
	uint8_t uuid[16];      /* source: what resumed UUIDs derive from */
	bool have_root;
	/* Tests: the destination's pull pauses at gate_pages pages pulled,
	 * writes its address to GATE.paused and waits for GATE to exist. */
	const char *gate;
	uint64_t gate_pages;
	bool gated;
};

/* The error of a failed try, for the give-up message. */
static void try_failed(char *err, size_t len, unsigned tries, double s,
		       int ret)
{
	snprintf(err, len, "no new session within %.0f s (%u tries, "
		 "the last: %s)", s, tries, rmig_last_error()[0] ?
		 rmig_last_error() : strerror(-ret));
}

/* Recovery @attempt begins: no session for a signal to cancel, the
 * sessions side_open() makes resume with the attempt's UUID (derived from
 * @first).  Returns when to give up. */
static double recover_begin(struct recover_ctx *c, const uint8_t first[16],
			    unsigned attempt)
{
	set_cancel_target(NULL, NULL);
	c->x->resume = c->x->uuid_set = true;
	live_resume_uuid(first, attempt, c->x->uuid);
	return cli_now_s() + c->o->recover_timeout_s;
}

static int src_recover(unsigned attempt, rmig_src **sp, char *err,
		       size_t len, void *arg)
{
	struct recover_ctx *c = arg;
	double end = recover_begin(c, c->uuid, attempt);
	double wait_s = 0.02; /* between tries, doubling up to 1 s */
	unsigned tries = 0;

	if (*sp)
		rmig_src_destroy(*sp);
	*sp = *c->src = NULL;
	while (!sig_caught) {
		rmig_src *s = NULL;
		int ret = side_open(c->x, c->address, &s, NULL);

		tries++;
		if (ret >= 0)
			ret = rmig_src_connect(s);
		if (ret >= 0)
			ret = rmig_src_postcopy(s);
		if (ret >= 0) {
			*sp = *c->src = s;
			return 0;
		}
		try_failed(err, len, tries, c->o->recover_timeout_s, ret);
		set_cancel_target(NULL, NULL);
		if (s)
			rmig_src_destroy(s);
		if (cli_now_s() >= end)
			return -ETIMEDOUT;
		nap(wait_s);
		wait_s = wait_s < 0.5 ? wait_s * 2 : 1.0;
	}
	snprintf(err, len, "stopped by a signal while reconnecting (%u "
		 "tries)", tries);
	return -ECANCELED;
}

static int dest_reconnect(unsigned attempt, const uint8_t uuid[16],
			  rmig_dest **dp, int *block, char *err, size_t len,
			  void *arg)
{
	struct recover_ctx *c = arg;
	double end = recover_begin(c, uuid, attempt);
	unsigned tries = 0;

	if (*dp)
		rmig_dest_destroy(*dp);
	*dp = *c->dest = NULL;
	while (!sig_caught) {
		rmig_dest *d = NULL;
		char a[128];
		int left_ms = (int)((end - cli_now_s()) * 1000);
		int b, ret = b = side_open(c->x, c->address, NULL, &d);

		tries++;
		if (left_ms < 1)
			left_ms = 1;
		if (ret >= 0)
			ret = cli_dest_listen(d, a, sizeof(a));
		if (ret >= 0)
			ret = rmig_dest_accept(d, left_ms);
		if (ret >= 0)
			ret = rmig_dest_wait_sync(d, left_ms);
		if (ret == RMIG_SYNC_POSTCOPY_SWITCH) {
			*dp = *c->dest = d;
			*block = b;
			return 0;
		}
		if (ret >= 0) {
			ret = -EPROTO;
			snprintf(err, len, "the resumed session's first sync "
				 "is not the post-copy switch");
		} else {
			try_failed(err, len, tries, c->o->recover_timeout_s,
				   ret);
		}
		set_cancel_target(NULL, NULL);
		if (d)
			rmig_dest_destroy(d);
		if (cli_now_s() >= end)
			return ret == -EPROTO ? ret : -ETIMEDOUT;
		nap(0.1);
	}
	snprintf(err, len, "stopped by a signal while waiting for the source "
		 "(%u tries)", tries);
	return -ECANCELED;
}

static void pull_gate(uint64_t pulled, void *arg)
{
	struct recover_ctx *c = arg;
	char path[4096], tmp[4200];
	FILE *f;

	if (!c->gate || c->gated || pulled < c->gate_pages)
		return;
	c->gated = true;
	snprintf(path, sizeof(path), "%s.paused", c->gate);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f) {
		fprintf(f, "%s\n", c->address);
		fclose(f);
		rename(tmp, path);
	}
	/* Bounded: a test that never opens the gate still ends. */
	for (int i = 0; i < 6000 && access(c->gate, F_OK); i++)
		usleep(10000);
}

int run_live_source(const struct opts *o, const char *address)
{
	static struct guest g; /* large; one per process */
	struct recover_ctx rc;
	struct live_params lp = o->live;
	struct live_result lr;
	struct side x;
	rmig_src *s = NULL;
	char err[512] = "";
	char hb[32];
	const char *error = NULL;
	uint64_t sum = 0, ref = 0;
	int intact = -1;
	uint64_t ran_on = 0;
	double t0, prepare_s = 0, connect_s = 0;
	int block, ret;

	memset(&lr, 0, sizeof(lr));
	side_init(&x, o, "source", -1);
	g_tty = !o->json && isatty(STDOUT_FILENO);
	if (o->guest.rate_mbs < 0)
		snprintf(err, sizeof(err), "as fast as they can");
	else
		snprintf(err, sizeof(err), "at %.0f MB/s", o->guest.rate_mbs);
	say("guest: %s of %s memory, %u vCPUs writing %s pages %s, %u%% zero "
	    "at boot, seed %" PRIu64 "; destination %s\n", human(o->size, hb),
	    guest_mem_name(o->guest.mem), o->guest.vcpus,
	    guest_pattern_name(o->guest.pattern), err, o->zero_percent,
	    o->seed, address);
	err[0] = '\0';
	t0 = cli_now_s();
	ret = guest_create(&g, &o->guest, true, err, sizeof(err));
	if (ret) {
		error = err;
		goto report;
	}
	prepare_s = cli_now_s() - t0;
	say("guest memory faulted in and booted before timing (%.2f s, not "
	    "counted)\n", prepare_s);
	x.ram = g.mem;
	/* What post-copy's resumed sessions derive their UUIDs from: the
	 * first session's (--uuid), else a random value (the library's UUID
	 * for this session is not known here; a destination given none
	 * must see none, as both sides' proofs include a configured one). */
	rc = (struct recover_ctx){ .o = o, .x = &x, .address = address,
				   .src = &s };
	if (o->uuid_set)
		memcpy(rc.uuid, o->uuid, sizeof(rc.uuid));
	rc.have_root = o->uuid_set || getrandom(rc.uuid, sizeof(rc.uuid), 0)
				      == (ssize_t)sizeof(rc.uuid);

	ret = block = side_open(&x, address, &s, NULL);
	if (ret < 0)
		goto lib_fail;
	t0 = cli_now_s();
	ret = rmig_src_connect(s);
	if (connect_refused(ret, err, sizeof(err))) {
		error = err;
		goto report;
	}
	if (ret < 0)
		goto lib_fail;
	connect_s = cli_now_s() - t0;
	ret = guest_start(&g);
	if (ret) {
		snprintf(err, sizeof(err), "cannot start the vCPU threads: %s",
			 strerror(-ret));
		error = err;
		goto report;
	}
	say("connected in %.3f s; guest running, migrating after %.1f s\n",
	    connect_s, o->warmup_s);
	if (!nap(o->warmup_s)) {
		error = "interrupted by a signal before the migration started";
		goto report;
	}
	lp.progress = progress_cb;
	/* Test hooks (tests/live.cmake): the source lost right after the
	 * switch; a transport that says it has no RDMA READ. */
	if (getenv("RMIG_MIGRATE_TEST_DIE_AFTER_SWITCH"))
		lp.switched_hook = die_hook;
	if (getenv("RMIG_MIGRATE_TEST_NO_READ"))
		lp.postcopy_fn = no_read;
	/* Sent with the switch: the destination derives the same UUIDs. */
	memcpy(lp.uuid, rc.uuid, sizeof(lp.uuid));
	lp.uuid_set = rc.have_root;
	if (rc.have_root)
		lp.recover = src_recover;
	lp.arg = &rc;
	ret = live_source(&g, s, block, &lp, &lr);
	if (ret < 0 && lr.switched) {
		/* The guest lives at the destination only: never here. */
		error = lr.error;
		progress_end();
		say("the guest is NOT resumed here: after the post-copy switch "
		    "it runs at the destination\n");
	} else if (ret < 0) {
		error = lr.error;
		/* The promise: the guest carries on here.  Show it: let it run
		 * on, then check it against a replay of its steps. */
		progress_end();
		say("migration failed; the guest runs on at the source\n");
		guest_pause(&g); /* the vCPU threads write their counts */
		for (unsigned v = 0; v < g.cfg.vcpus; v++)
			ran_on -= g.vcpu[v].st.steps;
		guest_resume(&g);
		/* A signal cuts the second short, not to nothing. */
		if (!nap(1.0))
			usleep(200000);
		ret = live_check_guest(&g, &sum, &ref, err, sizeof(err));
		for (unsigned v = 0; v < g.cfg.vcpus; v++)
			ran_on += g.vcpu[v].st.steps;
		intact = ret == 0;
	}
	goto report;

lib_fail:
	error = lib_error_text(err, sizeof(err));
report:
	live_src_report(o, &lr, error, intact, ran_on, sum, ref, prepare_s,
			connect_s);
	set_cancel_target(NULL, NULL);
	if (s)
		rmig_src_destroy(s);
	guest_destroy(&g);
	return error ? EXIT_FAIL : EXIT_OK;
}

int run_live_dest(const struct opts *o)
{
	static struct guest g;
	struct recover_ctx rc;
	const struct live_recover rec = { .reconnect = dest_reconnect,
					  .pull_hook = pull_gate,
					  .arg = &rc };
	struct live_dest_result dr;
	struct side x;
	rmig_dest *d = NULL;
	char addr[128];
	char err[768] = "";
	char hb[32];
	const char *error = NULL;
	double t0, prepare_s = 0;
	int block, ret;
	int timeout_ms = (o->timeout_s < 0 ? DEST_ACCEPT_TIMEOUT_S :
			  o->timeout_s) * 1000;

	memset(&dr, 0, sizeof(dr));
	dr.first_mismatch = -1;
	dr.downtime_ms = -1;
	side_init(&x, o, "dest", 0);
	t0 = cli_now_s();
	ret = guest_create(&g, &o->guest, false, err, sizeof(err));
	if (ret) {
		error = err;
		goto report;
	}
	if (o->dirty_dest)
		memset(g.mem, 0xa5, (size_t)o->size);
	prepare_s = cli_now_s() - t0;
	x.ram = g.mem;
	ret = block = side_listen(&x, &d, addr, sizeof(addr));
	if (ret < 0)
		goto lib_fail;
	if (!pass_address(o, addr, err, sizeof(err))) {
		error = err;
		goto report;
	}
	say("listening on %s; %s of %s memory faulted in%s before timing "
	    "(%.2f s)\n", addr, human(o->size, hb),
	    guest_mem_name(o->guest.mem),
	    o->dirty_dest ? " and filled with 0xa5" : "", prepare_s);
	ret = rmig_dest_accept(d, timeout_ms);
	if (ret < 0)
		goto lib_fail;
	say("source connected; receiving\n");
	rc = (struct recover_ctx){ .o = o, .x = &x, .address = addr,
				   .dest = &d };
	/* Test hook (tests/live.cmake): the pull paused for a cut. */
	rc.gate = getenv("RMIG_MIGRATE_TEST_PULL_GATE");
	if (getenv("RMIG_MIGRATE_TEST_PULL_GATE_PAGES"))
		rc.gate_pages = strtoull(
			getenv("RMIG_MIGRATE_TEST_PULL_GATE_PAGES"), NULL, 10);
	ret = live_dest(&g, d, block, o->resume_steps, o->demo_child, &rec,
			&dr);
	if (ret < 0)
		error = dr.error;
	goto report;

lib_fail:
	error = lib_error_text(err, sizeof(err));
report:
	live_dest_report(o, &dr, error);
	fflush(stdout);
	set_cancel_target(NULL, NULL);
	if (d)
		rmig_dest_destroy(d);
	/* A lost post-copy guest may have vCPUs blocked for good on pages
	 * that never come: the process's exit ends them. */
	if (!dr.lost)
		guest_destroy(&g);
	return error ? EXIT_FAIL : EXIT_OK;
}

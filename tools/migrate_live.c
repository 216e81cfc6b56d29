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

int run_live_source(const struct opts *o, const char *address)
{
	static struct guest g; /* large; one per process */
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
	ret = live_dest(&g, d, block, o->resume_steps, o->demo_child, &dr);
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

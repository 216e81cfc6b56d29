/* SPDX-License-Identifier: MIT */
/*
 * test_peer_death.c - kill -9 one side in the middle of a transfer, over
 * libfabric tcp on 127.0.0.1 (transport=verbs: the verbs provider on
 * $RMIG_RXE_ADDR), source and destination in separate processes.
 *
 *   test_peer_death killdest CHANNELS SIZE_MIB
 *       The source re-queues and syncs its whole memory in a loop; the
 *       destination process is SIGKILLed.  The source's next (or pending)
 *       call must fail within 10 s of the kill, later calls must fail too,
 *       its memory must be unchanged (hash before and after), and
 *       rmig_src_destroy() must return (within 10 s, no thread left).
 *   test_peer_death killsrc CHANNELS SIZE_MIB
 *       Same traffic; the source process is SIGKILLed.  The destination's
 *       rmig_dest_wait_sync() must return a negative error (not a timeout)
 *       within 10 s of the kill, and rmig_dest_destroy() must return.
 *   ... idle
 *       After one sync no traffic flows: killdest kills the destination
 *       while the source is between calls (its next call must fail);
 *       killsrc kills the source while the destination sits in
 *       rmig_dest_wait_sync() on quiet connections.
 *   test_peer_death stopdest|stopsrc CHANNELS SIZE_MIB [idle]
 *       The same with SIGSTOP instead of SIGKILL, both sides with an idle
 *       limit of STOP_IDLE_MS: the stopped process keeps its connections
 *       open but sends nothing (not even a reset), as a hung process or a
 *       host gone without a FIN.  The survivor must fail with -ETIMEDOUT
 *       and "nothing received from the peer" (its idle limit), not wait
 *       for ever; then the parent kills the stopped process.
 *
 * The parent records the kill time (CLOCK_MONOTONIC, shared by all
 * processes) and sends it to the survivor, which measures the delay.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define DETECT_NS 10000000000ull /* the peer's loss must show within 10 s */
#define STOP_IDLE_MS 1000u      /* stop modes: both sides' idle limit */

struct ctx {
	bool killdest;
	bool stop;  /* SIGSTOP the victim: the survivor's idle limit ends it */
	bool idle; /* the survivor is between calls (or blocked waiting with
		    * no traffic) when its peer dies */
	unsigned channels;
	size_t mib;
	uint8_t uuid[16];
	struct tu_pipe addr;    /* dest -> src */
	struct tu_pipe started; /* src -> parent: the transfer is running */
	struct tu_pipe tkill;   /* parent -> survivor: kill time */
	struct tu_pipe noticed; /* survivor -> parent: failed (stop modes) */
};

/* @cfg with the stop modes' idle limit. */
static void set_idle(const struct ctx *cx, struct rmig_config *cfg)
{
	if (!cx->stop)
		return;
	cfg->field_mask |= RMIG_CFG_IDLE_TIMEOUT;
	cfg->idle_timeout_ms = STOP_IDLE_MS;
}

/* Stop modes: the survivor's error (@ret, session message @error) is its
 * idle limit's, and the session failed. */
static bool idle_error(const struct ctx *cx, int ret, const char *error,
		       enum rmig_state state)
{
	if (!cx->stop)
		return true;
	return TU_CHECK(ret == -ETIMEDOUT && state == RMIG_STATE_FAILED &&
			strstr(error, "nothing received from the peer"),
			"want -ETIMEDOUT from the idle limit, a failed session "
			"and 'nothing received from the peer': %d, %s, \"%s\"",
			ret, rmig_state_name(state), error);
}

/* The survivor's first error, at @t_err: after the kill, within 10 s. */
static bool noticed_in_time(const struct ctx *cx, uint64_t t_err,
			    uint64_t t_kill)
{
	const char *survivor = cx->killdest ? "source" : "destination";
	const char *victim = cx->killdest ? "destination" : "source";
	bool ok;

	ok = TU_CHECK(t_err > t_kill,
		      "the %s failed %.1f ms before the %s was killed",
		      survivor, (double)(t_kill - t_err) / 1e6, victim);
	ok &= TU_CHECK(t_err - t_kill < DETECT_NS,
		       "the error came %.1f ms after the kill (limit 10 s)",
		       (double)(t_err - t_kill) / 1e6);
	tu_msg("error %.1f ms after %s of the %s",
	       (double)(t_err - t_kill) / 1e6, cx->stop ? "SIGSTOP" : "kill -9",
	       victim);
	return ok;
}

/* The survivor's session (@who "src" or "dest") once the error is its
 * own: FAILED, and saying why.  @stats_ret: its get_stats into @st. */
static bool session_failed(const char *who, enum rmig_state state,
			   const char *error, int stats_ret,
			   const struct rmig_stats *st)
{
	char expr[32];
	bool ok;

	ok = TU_CHECK(state == RMIG_STATE_FAILED, "state %s",
		      rmig_state_name(state));
	ok &= TU_CHECK(error[0], "empty rmig_%s_error()", who);
	tu_msg("rmig_%s_error: \"%s\"", who, error);
	snprintf(expr, sizeof(expr), "rmig_%s_get_stats()", who);
	if (tu_rmig_ok_at(__FILE__, __LINE__, expr, stats_ret))
		tu_print_stats(who, st);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Source: sync the whole memory again and again until something fails. */

static int run_src(void *arg)
{
	struct ctx *cx = arg;
	struct rmig_config cfg;
	struct rmig_stats st = { .size = sizeof(st) };
	struct tu_image im;
	uint64_t *offs[TU_MAX_BLOCKS] = { 0 }, normal = 0, zero = 0;
	uint64_t h0, h1, t_err = 0, t_kill = 0, t0;
	size_t n[TU_MAX_BLOCKS];
	char addr[TU_ADDR_MAX];
	struct tu_baseline base = tu_take_baseline();
	unsigned round = 0;
	rmig_src *s = NULL;
	const char *where = "";
	bool ok = false, have_tkill = false;
	int ret = 0;

	if (tu_image_setup(&im, cx->mib << 20, 4096, 42, false))
		return 1;
	h0 = tu_image_hash(&im);
	if (!tu_offs_alloc(offs, &im))
		goto out;
	tu_image_write_round(&im, 0, offs, n, &normal, &zero);
	h0 = tu_image_hash(&im);
	if (!TU_CHECK(!tu_recv_str(cx->addr.r, addr, 30000), "no address"))
		goto out;
	tu_config(&cfg, addr, cx->channels, 4096, cx->uuid);
	set_idle(cx, &cfg);
	if (!tu_src_open(&s, &cfg, &im, false) ||
	    !TU_RMIG_OK(rmig_src_connect(s)))
		goto out;

	t0 = tu_now_ns();
	while (tu_ms_since(t0) < 60000) {
		for (unsigned b = 0; b < im.nblocks && !ret; b++) {
			ret = rmig_src_queue_pages(s, (int)b, offs[b], n[b]);
			where = "rmig_src_queue_pages";
		}
		if (!ret) {
			ret = rmig_src_sync(s);
			where = "rmig_src_sync";
		}
		if (ret) {
			t_err = tu_now_ns();
			(void)tu_send_u64(cx->noticed.w, t_err);
			break;
		}
		if (round++)
			continue;
		if (tu_send_u64(cx->started.w, 1))
			goto out;
		if (!cx->idle)
			continue;
		/* idle: no call in flight when the peer dies. */
		if (!cx->killdest) {
			tu_sleep_ms(60000);
			break;
		}
		if (!TU_CHECK(!tu_recv_u64(cx->tkill.r, &t_kill, 60000),
			      "no kill time from the parent"))
			goto out;
		have_tkill = true;
		tu_sleep_ms(200);
	}
	if (!cx->killdest) {
		/* killsrc: we should have been killed long ago. */
		(void)TU_CHECK(false, "source still alive after 60 s (ret %d)",
			       ret);
		goto out;
	}
	if (!TU_CHECK(ret < 0, "no error within 60 s of transfer (%u rounds)",
		      round))
		goto out;
	tu_msg("%s failed in round %u: %d (%s): %s", where, round, ret,
	       strerror(-ret), rmig_last_error());
	if (!have_tkill &&
	    !TU_CHECK(!tu_recv_u64(cx->tkill.r, &t_kill, 15000),
		      "no kill time from the parent"))
		goto out;
	ok = noticed_in_time(cx, t_err, t_kill);
	ok &= idle_error(cx, ret, rmig_src_error(s), rmig_src_state(s));
	/* The error is the session's: every later call returns it. */
	t0 = tu_now_ns();
	ret = rmig_src_sync(s);
	ok &= TU_CHECK(ret < 0, "rmig_src_sync after the error returned %d",
		       ret);
	ret = rmig_src_queue_page(s, 0, 0);
	ok &= TU_CHECK(ret < 0, "rmig_src_queue_page after the error: %d",
		       ret);
	ret = rmig_src_finish(s);
	ok &= TU_CHECK(ret < 0, "rmig_src_finish after the error: %d", ret);
	ok &= TU_CHECK(tu_ms_since(t0) < 2000, "calls after the error took "
		       "%.1f ms", tu_ms_since(t0));
	ok &= session_failed("src", rmig_src_state(s), rmig_src_error(s),
			     rmig_src_get_stats(s, &st), &st);
out:
	ok &= tu_src_destroy(s, &base, 10000);
	if (im.b[0].mem) {
		h1 = tu_image_hash(&im);
		ok &= TU_CHECK(h1 == h0,
			       "source memory changed: hash %016" PRIx64
			       " before, %016" PRIx64 " after",
			       h0, h1);
	}
	tu_offs_free(offs);
	tu_image_free(&im);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* Destination: release syncs until something fails.                  */

static int run_dest(void *arg)
{
	struct ctx *cx = arg;
	struct rmig_config cfg;
	struct rmig_stats st = { .size = sizeof(st) };
	struct tu_image im;
	char addr[TU_ADDR_MAX];
	struct tu_baseline base = tu_take_baseline();
	unsigned syncs = 0;
	uint64_t t_err = 0, t_kill = 0;
	rmig_dest *d = NULL;
	bool ok = false;
	int ret;

	if (tu_image_setup(&im, cx->mib << 20, 4096, 42, true))
		return 1;
	tu_config(&cfg, tu_listen_addr(), cx->channels, 4096, cx->uuid);
	set_idle(cx, &cfg);
	if (!tu_dest_listen(&d, &cfg, &im, false, addr) ||
	    !TU_CHECK(tu_addr_on_host(addr), "address %s", addr) ||
	    tu_send_str(cx->addr.w, addr) ||
	    !TU_RMIG_OK(rmig_dest_accept(d, 30000)))
		goto out;
	for (;;) {
		ret = rmig_dest_wait_sync(d, 30000);
		if (ret != 0)
			break;
		syncs++;
	}
	t_err = tu_now_ns();
	(void)tu_send_u64(cx->noticed.w, t_err);
	if (cx->killdest) {
		(void)TU_CHECK(false,
			       "destination not killed: wait_sync %d after %u "
			       "syncs", ret, syncs);
		goto out;
	}
	tu_msg("rmig_dest_wait_sync after %u syncs: %d (%s): %s", syncs, ret,
	       strerror(ret < 0 ? -ret : 0), rmig_last_error());
	if (!TU_CHECK(!tu_recv_u64(cx->tkill.r, &t_kill, 15000),
		      "no kill time from the parent"))
		goto out;
	/* A wait_sync's own timeout would leave the session active. */
	ok = cx->stop ? idle_error(cx, ret, rmig_dest_error(d),
				   rmig_dest_state(d)) :
	     TU_CHECK(ret < 0 && ret != -ETIMEDOUT,
		      "wait_sync returned %d, want a negative error other "
		      "than -ETIMEDOUT", ret);
	ok &= noticed_in_time(cx, t_err, t_kill);
	ret = rmig_dest_wait_sync(d, 1000);
	ok &= TU_CHECK(ret < 0 && (ret != -ETIMEDOUT || cx->stop) &&
		       rmig_dest_state(d) == RMIG_STATE_FAILED,
		       "second wait_sync after the error returned %d", ret);
	ret = rmig_dest_finish(d);
	ok &= TU_CHECK(ret < 0, "rmig_dest_finish after the error: %d", ret);
	ok &= session_failed("dest", rmig_dest_state(d), rmig_dest_error(d),
			     rmig_dest_get_stats(d, &st), &st);
out:
	ok &= tu_dest_destroy(d, &base, 10000);
	tu_image_free(&im);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* Parent                                                              */

static int usage(void)
{
	fprintf(stderr, "usage: test_peer_death killdest|killsrc|stopdest|"
			"stopsrc CHANNELS SIZE_MIB [idle] "
			"[transport=fabric|verbs]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static struct ctx cx;
	struct tu_child ch[2];
	struct tu_child *victim;
	uint64_t v, t_kill, t0 = tu_now_ns();
	bool killed = false;
	int rc;

	if (argc < 4 ||
	    (strcmp(argv[1], "killdest") && strcmp(argv[1], "killsrc") &&
	     strcmp(argv[1], "stopdest") && strcmp(argv[1], "stopsrc")))
		return usage();
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "idle")) {
			cx.idle = true;
		} else if (!strncmp(argv[i], "transport=", 10)) {
			int r = tu_set_transport(argv[i] + 10);

			if (r)
				return r == -ENODEV ? 77 : usage();
		} else {
			return usage();
		}
	}
	cx.stop = !strncmp(argv[1], "stop", 4);
	cx.killdest = !strcmp(argv[1] + 4, "dest");
	cx.channels = (unsigned)strtoul(argv[2], NULL, 0);
	cx.mib = tu_cap_mib(strtoull(argv[3], NULL, 0));
	if (!cx.channels || cx.channels > RMIG_MAX_CHANNELS || cx.mib < 16)
		return 2;
	tu_msg("test_peer_death %s: %u channel(s), %zu MiB%s", argv[1],
	       cx.channels, cx.mib, cx.idle ? ", idle" : "");
	signal(SIGPIPE, SIG_IGN);
	tu_uuid(cx.uuid, 77);
	if (tu_pipe_open(&cx.addr) || tu_pipe_open(&cx.started) ||
	    tu_pipe_open(&cx.tkill) || tu_pipe_open(&cx.noticed))
		return 1;
	memset(ch, 0, sizeof(ch));
	if (tu_spawn(&ch[0], "dest", run_dest, &cx) ||
	    tu_spawn(&ch[1], "src", run_src, &cx))
		return 1;
	victim = cx.killdest ? &ch[0] : &ch[1];
	if (TU_CHECK(!tu_recv_u64(cx.started.r, &v, 60000),
		     "the transfer did not start within 60 s")) {
		/* Let the transfer run a little, then kill in mid-flight
		 * (idle: once the source sits between calls). */
		tu_sleep_ms(cx.idle ? 200 : 400);
		if (TU_CHECK(!tu_reap(victim, 0), "%s already exited",
			     victim->name)) {
			victim->expect_kill = true;
			t_kill = tu_now_ns();
			if (cx.stop)
				kill(victim->pid, SIGSTOP);
			else
				tu_kill(victim);
			tu_msg("%s %s (pid %d)", cx.stop ? "SIGSTOP" :
			       "kill -9", victim->name, (int)victim->pid);
			tu_send_u64(cx.tkill.w, t_kill);
			killed = true;
		}
		/* Stopped: once the survivor has failed (or given up), the
		 * stopped process goes. */
		if (killed && cx.stop) {
			(void)tu_recv_u64(cx.noticed.r, &v, 60000);
			tu_kill(victim);
		}
	}
	rc = tu_wait_children(ch, 2, tu_deadline(), 15000);
	return tu_report(killed ? rc : 1, t0);
}

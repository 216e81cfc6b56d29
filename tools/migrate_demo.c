/* SPDX-License-Identifier: MIT */
/*
 * rmig-migrate demo: a destination and a source as two processes on
 * 127.0.0.1, the destination passing its address through a pipe; the
 * parent collects both and stops a run that stalls.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migrate.h"

#define DEMO_GRACE_S 15 /* after one side failed, how long the other has */
#define DEMO_LIMIT_BASE_S 60 /* demo: whole run, plus ... */
#define DEMO_LIMIT_PER_GIB_S 20 /* ... this per GiB */
#define DEMO_LIMIT_LIVE_S 120 /* live demo: plus this (rounds, replay) */

static int demo_source(struct opts *o, int fd)
{
	char addr[160];
	size_t n = 0;

	/* The destination writes "host:port\n" once it listens, or closes
	 * the pipe when it failed before that. */
	while (n < sizeof(addr) - 1) {
		ssize_t k = read(fd, addr + n, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || addr[n] == '\n')
			break;
		n++;
	}
	addr[n] = '\0';
	close(fd);
	if (!n) {
		fail_msg("the destination failed before listening; nothing to "
			 "connect to");
		return EXIT_FAIL;
	}
	start_side(o);
	return source_main(o, addr);
}

static int exit_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int run_demo(struct opts *o)
{
	int pfd[2];
	pid_t dest_pid, src_pid;
	int dest_rc = -1, src_rc = -1;
	/* Give up on a run that stalls: generous for fault-in and a slow
	 * link, bounded so that a hang ends with a report. */
	int limit_s = DEMO_LIMIT_BASE_S + DEMO_LIMIT_PER_GIB_S *
		      (int)((o->size + (1ull << 30) - 1) >> 30) +
		      (o->still ? 0 : DEMO_LIMIT_LIVE_S + (int)o->warmup_s);
	double deadline = cli_now_s() + limit_s;
	int stage = 0; /* 0 running, 1 grace, 2 SIGTERM sent, 3 SIGKILL sent */
	char uuid[37];
	char hb[32];

	if (!o->uuid_set) {
		if (getrandom(o->uuid, sizeof(o->uuid), 0) !=
		    (ssize_t)sizeof(o->uuid)) {
			fail_msg("getrandom: %s", strerror(errno));
			return EXIT_FAIL;
		}
		o->uuid_set = true;
	}
	if (!o->sess.auth_key_file && !o->sess.insecure) {
		/* A fresh secret for this migration, known to the two
		 * children only (they inherit it). */
		if (getrandom(o->sess.auth_key, sizeof(o->sess.auth_key), 0) !=
		    (ssize_t)sizeof(o->sess.auth_key)) {
			fail_msg("getrandom: %s", strerror(errno));
			return EXIT_FAIL;
		}
		o->sess.auth_key_len = sizeof(o->sess.auth_key);
	}
	if (!o->sess.channels)
		o->sess.channels = 4;
	if (o->timeout_s < 0)
		o->timeout_s = DEMO_ACCEPT_TIMEOUT_S;
	format_uuid(o->uuid, uuid);
	say("rmig %s: %s migration of %s, %u channels, page size %zu, %u%% "
	    "zero pages, seed %" PRIu64 ", transport %s%s%s, session %s, "
	    "%s; destination and source are two processes on 127.0.0.1\n",
	    rmig_version(), o->still ? "still-image" : "live",
	    human(o->size, hb), o->sess.channels, o->sess.page_size,
	    o->zero_percent, o->seed,
	    o->sess.transport == RMIG_TRANSPORT_FABRIC ? "fabric" :
	    o->sess.transport == RMIG_TRANSPORT_VERBS ? "verbs" : "auto",
	    o->sess.fabric_provider ? "/" : "",
	    o->sess.fabric_provider ? o->sess.fabric_provider : "", uuid,
	    o->sess.auth_key_len ? "authenticated (random secret)" :
	    o->sess.insecure ? "NOT authenticated (--insecure)" :
	    "authenticated (--auth-key-file)");

	if (pipe(pfd)) {
		fail_msg("pipe: %s", strerror(errno));
		return EXIT_FAIL;
	}
	fflush(NULL);
	dest_pid = fork();
	if (dest_pid < 0) {
		fail_msg("fork: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (dest_pid == 0) {
		close(pfd[0]);
		g_role = ROLE_DEST;
		o->role = ROLE_DEST;
		o->address = "127.0.0.1:0";
		o->status_fd = pfd[1];
		o->demo_child = true;
		/* --reg-mode/--reg-chunk/--reg-cache are about the source's
		 * RAM: a destination always registers all of its own. */
		o->sess.reg_mode_set = false;
		o->sess.reg_chunk_size = 0;
		o->sess.reg_cache_chunks = 0;
		start_side(o);
		_exit(dest_main(o));
	}
	close(pfd[1]);
	src_pid = fork();
	if (src_pid < 0) {
		fail_msg("fork: %s", strerror(errno));
		kill(dest_pid, SIGTERM);
		waitpid(dest_pid, NULL, 0);
		return EXIT_FAIL;
	}
	if (src_pid == 0) {
		g_role = ROLE_SOURCE;
		o->role = ROLE_SOURCE;
		/* The destination's list (its sources: 127.0.0.1 here). */
		o->sess.allowed_sources = NULL;
		_exit(demo_source(o, pfd[0]));
	}
	close(pfd[0]);
	/* Ctrl-C reaches the children (same process group); the parent stays
	 * to collect them. */
	signal(SIGINT, SIG_IGN);

	while (dest_rc < 0 || src_rc < 0) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid == dest_pid)
			dest_rc = exit_status(status);
		else if (pid == src_pid)
			src_rc = exit_status(status);
		else if (pid < 0 && errno != EINTR)
			break;
		if (pid > 0) {
			/* One side failed: give the other DEMO_GRACE_S to
			 * notice, then stop it. */
			if (stage == 0 && (dest_rc > 0 || src_rc > 0)) {
				stage = 1;
				deadline = cli_now_s() + DEMO_GRACE_S;
			}
			continue;
		}
		if (stage < 3 && cli_now_s() > deadline) {
			int sig = stage < 2 ? SIGTERM : SIGKILL;

			if (stage == 0)
				fail_msg("no result after %d s: the migration "
					 "stalled; stopping both sides", limit_s);
			/* SIGTERM: each side cancels its session and reports
			 * where it was. */
			if (dest_rc < 0)
				kill(dest_pid, sig);
			if (src_rc < 0)
				kill(src_pid, sig);
			stage = stage < 2 ? 2 : 3;
			deadline = cli_now_s() + 5;
		}
		usleep(20000);
	}
	if (dest_rc == 0 && src_rc == 0) {
		say(o->still ? "PASSED: migration completed and verified\n" :
		    "PASSED: live migration completed; the destination's "
		    "pages match the source's final image and the resumed "
		    "guest matches a never-migrated replay\n");
		return EXIT_OK;
	}
	fail_msg("demo FAILED (source exit %d, destination exit %d)", src_rc,
		 dest_rc);
	return EXIT_FAIL;
}

/* SPDX-License-Identifier: MIT */
/*
 * rmig-migrate: everything it prints.  Messages (fail_msg() on stderr,
 * say() for people on stdout), the live source's progress line, and the
 * results of each side, as text or, with --json, one JSON object.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "migrate.h"

const char *role_name(enum role r)
{
	switch (r) {
	case ROLE_SOURCE:
		return "source";
	case ROLE_DEST:
		return "dest";
	case ROLE_DEMO:
		return "demo";
	default:
		return PROG;
	}
}

enum role g_role = ROLE_NONE;
bool g_json;

void fail_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: error: ", role_name(g_role));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Progress lines for people: stdout, unless --json asked for JSON only. */
void say(const char *fmt, ...)
{
	va_list ap;

	if (g_json)
		return;
	printf("%-8s", g_role == ROLE_DEST ? "dest:" :
		       g_role == ROLE_SOURCE ? "source:" : "demo:");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* "1.00 GiB" or "64 MiB" */
const char *human(uint64_t bytes, char buf[32])
{
	if (bytes >= (1ull << 30))
		snprintf(buf, 32, "%.2f GiB", cli_mib(bytes) / 1024.0);
	else
		snprintf(buf, 32, "%.1f MiB", cli_mib(bytes));
	return buf;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

void print_report(const struct opts *o, const struct report *r)
{
	const struct rmig_stats *st = &r->st;
	double gbps = r->seconds > 0 ? (double)r->ram_bytes / r->seconds / 1e9 : 0;
	double wire = r->seconds > 0 ? (double)st->bytes / r->seconds / 1e9 : 0;
	uint64_t overhead = cli_overhead(r->peak_rss, r->ram_bytes);

	if (o->json) {
		printf("{\"role\":\"%s\",\"ok\":%s,\"ram_bytes\":%" PRIu64
		       ",\"page_size\":%zu,\"pages\":%" PRIu64
		       ",\"seconds\":%.6f,\"gb_per_s\":%.4f,\"wire_bytes\":%"
		       PRIu64 ",\"wire_gb_per_s\":%.4f,\"normal_pages\":%" PRIu64
		       ",\"zero_pages\":%" PRIu64 ",\"packets\":%" PRIu64
		       ",\"syncs\":%" PRIu64 ",\"channels\":%u"
		       ",\"connect_seconds\":%.6f,\"prepare_seconds\":%.6f"
		       ",\"peak_rss_bytes\":%" PRIu64
		       ",\"overhead_bytes\":%" PRIu64 ",\"channel_packets\":[",
		       r->role, r->error ? "false" : "true", r->ram_bytes,
		       o->sess.page_size, r->pages, r->seconds, gbps, st->bytes,
		       wire, st->normal_pages, st->zero_pages, st->packets,
		       st->syncs, st->channels, r->connect_s, r->prepare_s,
		       r->peak_rss, overhead);
		for (unsigned i = 0; i < st->channels && i < RMIG_MAX_CHANNELS; i++)
			printf("%s%" PRIu64, i ? "," : "", st->channel[i].packets);
		printf("]");
		if (r->verified >= 0)
			printf(",\"verified\":%s,\"mismatched_pages\":%" PRIu64
			       ",\"first_mismatch_page\":%" PRId64,
			       r->verified ? "true" : "false",
			       r->mismatched_pages, r->first_mismatch);
		if (r->error) {
			printf(",\"error\":");
			json_str(r->error);
		}
		printf("}\n");
		fflush(stdout);
		return;
	}
	if (r->error)
		say("FAILED: %s\n", r->error);
	if (r->seconds > 0) {
		char hb[32];

		say("%s %s in %.3f s = %.3f GB/s (wire: %.3f GB, %.3f "
		    "GB/s)\n", r->role[0] == 's' ? "migrated" : "received",
		    human(r->ram_bytes, hb), r->seconds, gbps,
		    (double)st->bytes / 1e9, wire);
		say("pages: %" PRIu64 " normal + %" PRIu64 " zero = %" PRIu64
		    " (page size %zu); packets %" PRIu64 "; syncs %" PRIu64
		    "; channels %u\n", st->normal_pages, st->zero_pages,
		    st->normal_pages + st->zero_pages, o->sess.page_size,
		    st->packets, st->syncs, st->channels);
		if (st->channels > 1 && st->channels <= RMIG_MAX_CHANNELS) {
			char line[RMIG_MAX_CHANNELS * 22 + 1];
			size_t n = 0;

			for (unsigned i = 0; i < st->channels; i++)
				n += (size_t)snprintf(line + n, sizeof(line) - n,
						      " %" PRIu64,
						      st->channel[i].packets);
			say("packets per channel:%s\n", line);
		}
	}
	say("memory: peak RSS %.1f MiB = RAM block %.1f MiB + %.1f MiB "
	    "overhead\n", cli_mib(r->peak_rss), cli_mib(r->ram_bytes),
	    cli_mib(overhead));
}

/* ------------------------------------------------------------------ */
/* Live migration: progress and results                                */

bool g_tty; /* progress line updated in place */
static bool g_tty_line; /* a progress line is open */

void progress_end(void)
{
	if (g_tty_line) {
		putchar('\n');
		fflush(stdout);
		g_tty_line = false;
	}
}

void progress_cb(const struct live_progress *p, void *arg)
{
	char exp[32];

	(void)arg;
	if (g_json)
		return;
	if (!strcmp(p->phase, "stop-and-copy") ||
	    !strcmp(p->phase, "postcopy-switch")) {
		progress_end();
		return;
	}
	if (!strcmp(p->phase, "postcopy-lost")) {
		progress_end();
		say("post-copy: session lost during the pull; keeping the "
		    "guest's memory, reconnecting (recovery %u)\n", p->round);
		return;
	}
	if (!strcmp(p->phase, "postcopy-resumed")) {
		say("post-copy: resumed in a new session (recovery %u, %.3f "
		    "s into the run)\n", p->round, p->elapsed_s);
		return;
	}
	if (!strcmp(p->phase, "postcopy-fallback")) {
		progress_end();
		fprintf(stderr, "%s: transport has no RDMA READ: falling back "
			"to pre-copy\n", role_name(g_role));
		return;
	}
	if (p->expected_ms < 0)
		snprintf(exp, sizeof(exp), "-");
	else
		snprintf(exp, sizeof(exp), "%.0f ms", p->expected_ms);
	if (g_tty) {
		/* One line, rewritten during each round and after it: cut to
		 * the terminal's width, or a wrapped line would not be
		 * rewritten in place. */
		struct winsize ws;
		char line[256];
		int cols = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 &&
			   ws.ws_col ? ws.ws_col : 80;

		snprintf(line, sizeof(line), "%-8sround %u: %" PRIu64 " dirty "
			 "pages left, %.2f GB/s, expected downtime %s, "
			 "throttle %u%%, %.1f s", "source:", p->round,
			 p->dirty_pages, p->gbps, exp, p->throttle,
			 p->elapsed_s);
		if (cols - 1 < (int)sizeof(line))
			line[cols > 1 ? cols - 1 : 1] = '\0';
		printf("\r\033[K%s", line);
		fflush(stdout);
		g_tty_line = true;
	} else if (!strcmp(p->phase, "round")) {
		/* Not a terminal: one log line per round. */
		say("round %u: %" PRIu64 " dirty pages left, %.2f GB/s, "
		    "expected downtime %s, throttle %u%%, %.1f s\n",
		    p->round, p->dirty_pages, p->gbps, exp, p->throttle,
		    p->elapsed_s);
	}
}

static void json_kv_str(const char *key, const char *v)
{
	printf(",\"%s\":", key);
	json_str(v);
}

void live_src_report(const struct opts *o, const struct live_result *r,
		     const char *error, int intact, uint64_t ran_on,
		     uint64_t sum, uint64_t ref, double prepare_s,
		     double connect_s)
{
	const char *mode = r->mode ? dirty_mode_name(r->mode) : "none";

	progress_end();
	if (o->json) {
		printf("{\"role\":\"source\",\"mode\":\"live\",\"ok\":%s"
		       ",\"ram_bytes\":%" PRIu64 ",\"page_size\":%zu"
		       ",\"memory\":\"%s\",\"vcpus\":%u,\"pattern\":\"%s\""
		       ",\"dirty_rate_mbs\":%.1f,\"total_seconds\":%.6f"
		       ",\"downtime_ms\":%.3f,\"downtime_limit_ms\":%.1f"
		       ",\"downtime_pause_ms\":%.3f,\"downtime_harvest_ms\":%.3f"
		       ",\"downtime_transfer_ms\":%.3f"
		       ",\"expected_downtime_ms\":%.3f,\"rounds\":%u"
		       ",\"converged\":%s,\"final_dirty_pages\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"normal_pages\":%" PRIu64
		       ",\"zero_pages\":%" PRIu64 ",\"gb_per_s\":%.4f"
		       ",\"dirty_tracking\":\"%s\",\"write_faults\":%" PRIu64
		       ",\"throttle_percent\":%u,\"channels\":%u"
		       ",\"prepare_seconds\":%.3f,\"connect_seconds\":%.3f",
		       error ? "false" : "true", o->size, o->sess.page_size,
		       guest_mem_name(o->guest.mem), o->guest.vcpus,
		       guest_pattern_name(o->guest.pattern), o->guest.rate_mbs,
		       r->total_s, r->downtime_ms, o->live.downtime_limit_ms,
		       r->pause_ms, r->harvest_ms, r->transfer_ms, r->expected_ms,
		       r->rounds, r->converged ? "true" : "false",
		       r->final_pages, r->bytes, r->normal_pages, r->zero_pages,
		       r->gbps, mode, r->faults, r->throttle, r->st.channels,
		       prepare_s, connect_s);
		if (o->live.postcopy)
			printf(",\"postcopy\":%s,\"postcopy_fell_back\":%s"
			       ",\"rounds_before_switch\":%u"
			       ",\"missing_pages\":%" PRIu64
			       ",\"downtime_hash_ms\":%.3f"
			       ",\"prehash_ms\":%.3f,\"pull_seconds\":%.6f"
			       ",\"recoveries\":%u,\"disconnected_seconds\":%.3f"
			       ",\"recovery_gave_up\":%s",
			       r->switched ? "true" : "false",
			       r->fell_back ? "true" : "false",
			       o->live.postcopy_after, r->missing_pages,
			       r->hash_ms, r->prehash_ms, r->pull_s,
			       r->recoveries, r->outage_s,
			       r->gave_up ? "true" : "false");
		if (intact >= 0)
			printf(",\"source_intact\":%s,\"source_checksum\":\"0x%016"
			       PRIx64 "\",\"source_replay_checksum\":\"0x%016"
			       PRIx64 "\",\"source_steps_after_failure\":%" PRIu64,
			       intact ? "true" : "false", sum, ref, ran_on);
		if (error)
			json_kv_str("error", error);
		printf("}\n");
		fflush(stdout);
		return;
	}
	if (error)
		say("FAILED: %s\n", error);
	if (r->switched) {
		char hb[32];

		if (!error)
			say("migrated a running %s guest by post-copy in %.3f s: "
			    "%u pre-copy rounds, then the switch; downtime %.1f "
			    "ms; the destination pulled %" PRIu64 " pages in "
			    "%.3f s\n", human(o->size, hb), r->total_s,
			    r->rounds, r->downtime_ms, r->missing_pages,
			    r->pull_s);
		if (r->recoveries || r->gave_up)
			say("post-copy recovery: reconnected %u times after a "
			    "loss, %.3f s disconnected%s\n", r->recoveries,
			    r->outage_s, r->gave_up ? "; gave up" : "");
		say("downtime: %.1f ms pausing the vCPUs, %.1f ms last "
		    "harvest, %.1f ms sending the state, the missing list "
		    "and the hashes and switching (of it %.1f ms hashing "
		    "pages for the proof%s; %.1f ms hashing the image before "
		    "the pause)\n", r->pause_ms, r->harvest_ms,
		    r->transfer_ms, r->hash_ms, r->prehash_ms > 0 ?
		    ": those written since" : "", r->prehash_ms);
		say("sent %.3f GB on the wire before the switch: %" PRIu64
		    " normal + %" PRIu64 " zero pages; channels %u\n",
		    (double)r->bytes / 1e9, r->normal_pages, r->zero_pages,
		    r->st.channels);
		return;
	}
	if (r->rounds) {
		char hb[32];

		if (!error)
			say("migrated a running %s guest in %.3f s: %u rounds, "
			    "downtime %.1f ms (limit %.0f ms, %s), %.3f GB/s\n",
			    human(o->size, hb), r->total_s, r->rounds,
			    r->downtime_ms, o->live.downtime_limit_ms,
			    r->converged ? "converged" : r->fell_back ?
			    "post-copy fell back to stop-and-copy" :
			    "forced past the limit", r->gbps);
		say("sent %.3f GB on the wire: %" PRIu64 " normal + %" PRIu64
		    " zero pages (page size %zu), %" PRIu64 " in the downtime; "
		    "channels %u\n", (double)r->bytes / 1e9, r->normal_pages,
		    r->zero_pages, o->sess.page_size, r->final_pages,
		    r->st.channels);
		if (!error)
			say("downtime: %.1f ms pausing the vCPUs, %.1f ms last "
			    "harvest, %.1f ms sending %" PRIu64 " pages and the "
			    "vCPU state (expected %.1f ms)\n", r->pause_ms,
			    r->harvest_ms, r->transfer_ms, r->final_pages,
			    r->expected_ms);
		say("dirty tracking %s%s; throttle reached %u%%\n", mode,
		    r->mode == DIRTY_SYNC ? " (write faults in a thread)" : "",
		    r->throttle);
	}
	if (intact >= 0)
		say("source guest %s: it ran %" PRIu64 " more steps after the "
		    "failure; checksum 0x%016" PRIx64 ", never-migrated replay "
		    "0x%016" PRIx64 "\n", intact ? "intact" : "DAMAGED", ran_on,
		    sum, ref);
}

/* The live destination's results: @dr, and @error when it failed. */
/* The replay line: "@before <steps> @after", the checksums and whether
 * they agree; only when the guest was run. */
static void say_replay(const struct live_dest_result *dr, const char *before,
		       const char *after)
{
	if (!dr->checksum && !dr->replay_checksum)
		return;
	say("%s %" PRIu64 " %s: checksum 0x%016" PRIx64 ", never-migrated "
	    "replay 0x%016" PRIx64 ": %s\n", before, dr->resume_steps, after,
	    dr->checksum, dr->replay_checksum,
	    dr->checksum == dr->replay_checksum ? "equal" : "DIFFERENT");
}

void live_dest_report(const struct opts *o,
		      const struct live_dest_result *dr, const char *error)
{
	if (o->json) {
		printf("{\"role\":\"dest\",\"mode\":\"live\",\"ok\":%s"
		       ",\"ram_bytes\":%" PRIu64 ",\"pages\":%" PRIu64
		       ",\"seconds\":%.6f,\"downtime_ms\":%.3f"
		       ",\"verified\":%s,\"mismatched_pages\":%" PRIu64
		       ",\"first_mismatch_page\":%" PRId64
		       ",\"resume_steps\":%" PRIu64 ",\"checksum\":\"0x%016"
		       PRIx64 "\",\"replay_checksum\":\"0x%016" PRIx64 "\""
		       ",\"normal_pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64
		       ",\"zero_pages_cleared\":%" PRIu64,
		       error ? "false" : "true", o->size, dr->pages,
		       dr->seconds, dr->downtime_ms,
		       dr->verified ? "true" : "false", dr->mismatched_pages,
		       dr->first_mismatch, dr->resume_steps, dr->checksum,
		       dr->replay_checksum, dr->st.normal_pages,
		       dr->st.zero_pages, dr->st.zero_pages_cleared);
		if (dr->postcopy)
			printf(",\"postcopy\":true,\"lost\":%s"
			       ",\"missing_pages\":%" PRIu64
			       ",\"never_arrived\":%" PRIu64
			       ",\"pull_seconds\":%.6f,\"fault_pages\":%" PRIu64
			       ",\"background_pages\":%" PRIu64
			       ",\"faults_joined\":%" PRIu64
			       ",\"faults_present\":%" PRIu64
			       ",\"eexist_pages\":%" PRIu64
			       ",\"moved_out_pages\":%" PRIu64
			       ",\"dropped_pages\":%" PRIu64
			       ",\"fault_p50_us\":%.0f,\"fault_p99_us\":%.0f"
			       ",\"fault_max_us\":%.0f"
			       ",\"unwritten_pages_checked\":%" PRIu64,
			       dr->lost ? "true" : "false", dr->missing_pages,
			       dr->never_arrived, dr->pull_s, dr->fault_pages,
			       dr->background_pages, dr->faults_joined,
			       dr->faults_present, dr->eexist_pages,
			       dr->moved_out_pages, dr->dropped_pages,
			       dr->fault_p50_us, dr->fault_p99_us,
			       dr->fault_max_us, dr->untouched_checked);
		if (dr->postcopy) {
			printf(",\"recoveries\":%u,\"disconnected_seconds\":%.3f"
			       ",\"outage_faults\":%" PRIu64
			       ",\"waited_faults\":%" PRIu64
			       ",\"outage_placed_pages\":%" PRIu64
			       ",\"session_pages\":[", dr->recoveries,
			       dr->outage_s, dr->outage_faults,
			       dr->waited_faults, dr->outage_placed);
			for (unsigned i = 0; i <= dr->recoveries &&
			     i < LIVE_MAX_SESSIONS; i++)
				printf("%s%" PRIu64, i ? "," : "",
				       dr->session_pages[i]);
			printf("]");
		}
		if (error)
			json_kv_str("error", error);
		printf("}\n");
	} else if (dr->postcopy) {
		if (error)
			say("FAILED: %s\n", error);
		if (dr->downtime_ms >= 0)
			say("downtime seen here: %.1f ms from the source's pause "
			    "to the vCPUs running here\n", dr->downtime_ms);
		if (!dr->lost || dr->pull_s > 0)
			say("post-copy: %" PRIu64 " pages missing at the switch, "
			    "pulled in %.3f s while the guest ran: %" PRIu64
			    " by faults (service p50 %.0f us, p99 %.0f us, max "
			    "%.0f us), %" PRIu64 " in the background; faults "
			    "that found the page's read in flight %" PRIu64
			    ", present %" PRIu64 "; pages found present at "
			    "placement %" PRIu64 "\n", dr->missing_pages,
			    dr->pull_s, dr->fault_pages, dr->fault_p50_us,
			    dr->fault_p99_us, dr->fault_max_us,
			    dr->background_pages, dr->faults_joined,
			    dr->faults_present, dr->eexist_pages);
		if (dr->recoveries || dr->outage_s > 0) {
			say("post-copy recovery: reconnected %u times, %.3f s "
			    "disconnected; %" PRIu64 " faults waited for the "
			    "next session (%" PRIu64 " came while "
			    "disconnected), %" PRIu64 " pages placed while "
			    "disconnected; pages read by session:",
			    dr->recoveries, dr->outage_s, dr->waited_faults,
			    dr->outage_faults, dr->outage_placed);
			for (unsigned i = 0; i <= dr->recoveries &&
			     i < LIVE_MAX_SESSIONS; i++)
				printf(" %" PRIu64, dr->session_pages[i]);
			printf("\n");
		}
		if (dr->verified)
			say("verified: every pulled page's hash on arrival, and "
			    "the %" PRIu64 " pages the guest did not write since "
			    "the switch, equal the source's final image\n",
			    dr->untouched_checked);
		say_replay(dr, "ran the guest", "more steps per vCPU after the "
			   "pull");
	} else {
		if (error)
			say("FAILED: %s; the received memory is discarded\n",
			    error);
		if (dr->seconds > 0)
			say("received %" PRIu64 " normal + %" PRIu64 " zero pages "
			    "in %.3f s from the connection to the final sync "
			    "(the source's warm-up included)%s\n",
			    dr->st.normal_pages, dr->st.zero_pages, dr->seconds,
			    dr->downtime_ms >= 0 ? "" :
			    " (downtime: see the source)");
		if (dr->downtime_ms >= 0)
			say("downtime seen here: %.1f ms from the source's pause "
			    "to this side having every page and the vCPU state\n",
			    dr->downtime_ms);
		if (dr->verified)
			say("verified: all %" PRIu64 " page hashes equal the "
			    "source's final image\n", dr->pages);
		say_replay(dr, "resumed the guest here for", "steps per vCPU");
	}
}

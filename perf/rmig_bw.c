/* SPDX-License-Identifier: MIT */
/*
 * rmig_bw - migration bandwidth benchmark, perftest style.
 *
 *   rmig_bw [options]          server: the destination, waits for a client
 *   rmig_bw [options] HOST     client: the source, connects to HOST
 *
 * One iteration migrates the whole buffer once (every page queued) followed
 * by rmig_src_sync(); the sync's return proves the pages are in place on the
 * destination.  Every page is non-zero (nothing is skipped as a zero page).
 * Both buffers are faulted in (and the client's filled) before the clock
 * starts.  After warm-up iterations, the timed iterations give BW peak (the
 * best iteration) and BW average (all bytes over all time); MsgRate counts
 * page packets.  Both sides print the table row and a JSON twin of it; the
 * server times the intervals between the syncs it completes.  Each side also
 * reports the CPU time its whole process used over the timed iterations
 * (getrusage: user and system, every thread), per GiB moved.
 *
 * The client tells the server its iteration counts in a device-state blob
 * sent ahead of a start sync, so only size and page size must match.
 *
 * -A CPULIST pins the process (and so every thread the library starts
 * later) to those CPUs, as iperf3 -A or perftest under taskset: with both
 * ends on one host, loopback TCP wakes the receiver from the sender's CPU,
 * and unpinned the scheduler tends to run the source's and the
 * destination's channel threads on one core.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <rmig/rmig.h>

#include "cli.h"

#define PROG "rmig_bw"
#define DEFAULT_PORT 18515
#define SETTINGS_IDSTR "rmig_bw/settings"
#define MAX_ITERS 1000
#define RULE                                                                 \
	"----------------------------------------------------------------------" \
	"-----------------"

struct bw_opts {
	const char *host;   /* NULL: server */
	const char *bind;
	unsigned port;
	uint64_t size;
	unsigned iters;
	unsigned warmup;
	struct cli_session_opts sess; /* page size, channels, transport ... */
	int timeout_s;
	const char *affinity; /* -A: CPU list, or NULL */
	cpu_set_t cpus;
};

struct bw_result {
	unsigned iters;
	double secs[MAX_ITERS];
	uint64_t packets;   /* over the timed iterations */
	double total_s;
	double peak_mbps;
	double avg_mbps;
	double mpps;
	double cpu_user_s;  /* this process, over the timed iterations */
	double cpu_sys_s;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage:\n"
"  " PROG " [options]         server (destination): waits for one client\n"
"  " PROG " [options] HOST    client (source): connects to HOST\n"
"\n"
"Migrates SIZE bytes of non-zero pages per iteration (queue every page, then\n"
"rmig_src_sync()), after warm-up iterations; prints BW peak and average in\n"
"MB/sec (10^6 bytes/s) and the page-packet rate, as a table row and as JSON,\n"
"and the CPU seconds (user + system) the process used per GiB moved.\n"
"Memory is faulted in before the clock starts.  Run the same --size and\n"
"--page-size on both sides; the client tells the server its iterations.\n"
"\n"
"Options:\n"
"  -p, --port N              port (default %d; server: 0 picks a free one)\n"
"  -b, --bind ADDR           server: address to listen on (default 127.0.0.1;\n"
"                            give the host's address to accept remote clients)\n"
"  -s, --size SIZE           bytes per iteration: 2G (default), 512M, 64K...\n"
"  -n, --iters N             timed iterations (default 5, at most %d)\n"
"  -w, --warmup N            warm-up iterations (default 1)\n"
"  -q, --channels N          channels, 1..%d (default 4; server: default takes\n"
"                            the client's count)\n"
"      --page-size 4k|2m     page size (default 4k)\n"
"  -P, --pages-per-packet N  pages per packet (default 128)\n"
"      --transport auto|fabric|verbs\n"
"      --fabric-provider NAME  libfabric provider (default tcp)\n"
CLI_SESSION_HELP
"  -t, --timeout SECONDS     server: wait this long for a client (default:\n"
"                            forever)\n"
"  -A, --affinity CPULIST    run on these CPUs only (e.g. 0, 1,3 or 0-1), every\n"
"                            thread included, as taskset -c would; default:\n"
"                            wherever the scheduler puts them\n"
"  -h, --help\n",
		DEFAULT_PORT, MAX_ITERS, RMIG_MAX_CHANNELS);
}

/* "0", "1,3", "0-1,4": CPU numbers and ranges into @set. */
static int parse_cpus(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*s) {
		char *end;
		unsigned long a, b;

		errno = 0;
		a = strtoul(s, &end, 10);
		if (errno || end == s || a >= CPU_SETSIZE)
			return -1;
		b = a;
		if (*end == '-') {
			s = end + 1;
			b = strtoul(s, &end, 10);
			if (errno || end == s || b >= CPU_SETSIZE || b < a)
				return -1;
		}
		for (unsigned long c = a; c <= b; c++)
			CPU_SET(c, set);
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		s = end;
	}
	return CPU_COUNT(set) ? 0 : -1;
}

static int parse_args(int argc, char **argv, struct bw_opts *o)
{
	static const struct option lo[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "size", required_argument, NULL, 's' },
		{ "iters", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "channels", required_argument, NULL, 'q' },
		{ "page-size", required_argument, NULL, 'S' },
		{ "pages-per-packet", required_argument, NULL, 'P' },
		{ "transport", required_argument, NULL, 'T' },
		{ "fabric-provider", required_argument, NULL, 'F' },
		{ "timeout", required_argument, NULL, 't' },
		{ "affinity", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		CLI_SESSION_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct bw_opts){
		.bind = "127.0.0.1",
		.port = DEFAULT_PORT,
		.size = 2ull << 30,
		.iters = 5,
		.warmup = 1,
		.sess = { .page_size = 4096 },
		.timeout_s = -1,
	};
	while ((c = getopt_long(argc, argv, "p:b:s:n:w:q:P:t:A:h", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (cli_parse_unsigned(optarg, 65535, &o->port))
				goto bad;
			break;
		case 'b':
			o->bind = optarg;
			break;
		case 's': /* a plain number means bytes */
			if (cli_parse_size(optarg, 1, false, &o->size))
				goto bad;
			break;
		case 'n':
			if (cli_parse_count(optarg, MAX_ITERS, &o->iters))
				goto bad;
			break;
		case 'w':
			if (cli_parse_unsigned(optarg, MAX_ITERS, &o->warmup))
				goto bad;
			break;
		case 'q':
			if (cli_parse_count(optarg, RMIG_MAX_CHANNELS,
					    &o->sess.channels))
				goto bad;
			break;
		case 'S':
			if (cli_parse_page_size(optarg, false, &o->sess.page_size))
				goto bad;
			break;
		case 'P':
			if (cli_parse_count(optarg, RMIG_MAX_PAGES_PER_PACKET,
					    &o->sess.pages_per_packet))
				goto bad;
			break;
		case 'T':
			if (cli_parse_transport(optarg, &o->sess))
				goto bad;
			break;
		case 'F':
			o->sess.fabric_provider = optarg;
			break;
		case 't':
			if (cli_parse_seconds(optarg, &o->timeout_s))
				goto bad;
			break;
		case 'A':
			if (parse_cpus(optarg, &o->cpus))
				goto bad;
			o->affinity = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default: /* the shared --reg-*, --numa and authentication
			  * options, or a mistake */
			if (cli_session_option(c, optarg, &o->sess) == 0)
				break;
			fprintf(stderr, "see '%s --help'\n", PROG);
			return -1;
		}
	}
	if (optind < argc)
		o->host = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", PROG,
			argv[optind]);
		return -1;
	}
	if (!o->size || o->size % o->sess.page_size) {
		fprintf(stderr, "%s: --size %" PRIu64 " is not a multiple of "
			"the page size %zu\n", PROG, o->size, o->sess.page_size);
		return -1;
	}
	if (cli_check_auth(PROG, &o->sess))
		return -1;
	return 0;
bad:
	fprintf(stderr, "%s: bad value '%s' for -%c (see --help)\n", PROG,
		optarg, c == 'S' ? 's' : c);
	return -1;
}

/* "host:port", an IPv6 host in brackets. */
static void host_port(char *buf, size_t len, const char *host, unsigned port)
{
	if (strchr(host, ':') && host[0] != '[')
		snprintf(buf, len, "[%s]:%u", host, port);
	else
		snprintf(buf, len, "%s:%u", host, port);
}

/* Create the session, client (@s) or server (@d), for @addr and add the RAM
 * block; *what names the call.  Returns the block's index or a negative
 * errno (*s or *d may then be set). */
static int open_session(const struct bw_opts *o, const char *addr,
			uint8_t *ram, rmig_src **s, rmig_dest **d,
			const char **what)
{
	struct rmig_config cfg;
	int ret;

	cli_make_config(&o->sess, &cfg, addr);
	*what = "create";
	ret = s ? rmig_src_create(&cfg, s) : rmig_dest_create(&cfg, d);
	if (ret < 0)
		return ret;
	*what = "add_block";
	return s ? rmig_src_add_block(*s, "ram", ram, (size_t)o->size) :
		   rmig_dest_add_block(*d, "ram", ram, (size_t)o->size);
}

/* A library call (@what) failed with @ret. */
static void lib_fail(const char *role, const char *what, int ret)
{
	fprintf(stderr, "%s: %s: %s failed: %s (%s)\n", PROG, role, what,
		rmig_last_error(), strerror(-ret));
}

/* Word w of page p: never zero, different on every page. */
static inline uint64_t pattern(uint64_t page, uint64_t word)
{
	return ((page + 1) * 0x9e3779b97f4a7c15ull) ^ (word << 1) ^ 1;
}

static void fill(uint8_t *ram, uint64_t size, size_t page_size)
{
	uint64_t pages = size / page_size;
	size_t words = page_size / 8;

	for (uint64_t p = 0; p < pages; p++) {
		uint64_t *w = (uint64_t *)(ram + p * page_size);

		for (size_t i = 0; i < words; i++)
			w[i] = pattern(p, i);
	}
}

/* Server: first and last word of every page. */
static uint64_t spot_check(const uint8_t *ram, uint64_t size,
			   size_t page_size, int64_t *first_bad)
{
	uint64_t pages = size / page_size;
	size_t words = page_size / 8;
	uint64_t bad = 0;

	*first_bad = -1;
	for (uint64_t p = 0; p < pages; p++) {
		const uint64_t *w = (const uint64_t *)(ram + p * page_size);

		if (w[0] != pattern(p, 0) ||
		    w[words - 1] != pattern(p, words - 1)) {
			if (!bad++)
				*first_bad = (int64_t)p;
		}
	}
	return bad;
}

static void banner(const struct bw_opts *o, bool client, const char *peer)
{
	printf(RULE "\n");
	printf("                    rmig migration BW test (%s %s)\n", PROG,
	       rmig_version());
	printf(" Role            : %s\n", client ? "client (source)" :
	       "server (destination)");
	printf(" %-15s : %s\n", client ? "Server" : "Listening on", peer);
	printf(" Transport       : %s%s%s\n",
	       o->sess.transport == RMIG_TRANSPORT_FABRIC ? "fabric" :
	       o->sess.transport == RMIG_TRANSPORT_VERBS ? "verbs" :
	       "auto (verbs if present, else libfabric tcp)",
	       o->sess.fabric_provider ? ", provider " : "",
	       o->sess.fabric_provider ? o->sess.fabric_provider : "");
	if (o->sess.channels)
		printf(" Channels        : %u\n", o->sess.channels);
	else
		printf(" Channels        : %s\n", client ? "4 (library default)" :
		       "as the client announces");
	printf(" Page size       : %zu B, %u pages/packet%s\n",
	       o->sess.page_size,
	       o->sess.pages_per_packet ? o->sess.pages_per_packet : 128,
	       o->sess.pages_per_packet ? "" : " (library default)");
	printf(" Buffer          : %" PRIu64 " bytes (%.1f MiB) of non-zero "
	       "pages, faulted in before the clock starts\n", o->size,
	       cli_mib(o->size));
	if (client)
		printf(" Iterations      : %u timed after %u warm-up; one "
		       "iteration = every page queued + rmig_src_sync()\n",
		       o->iters, o->warmup);
	else
		printf(" Iterations      : as the client announces; timed "
		       "between completed syncs\n");
	printf(" CPUs            : %s%s\n", o->affinity ? o->affinity :
	       "scheduler's choice", o->affinity ? " (-A, every thread)" : "");
	printf(" Units           : MB = 10^6 bytes; MsgRate = page packets, "
	       "10^6/s\n");
	printf(RULE "\n");
	fflush(stdout);
}

/* CPU seconds this process (every thread) has used so far. */
static void cpu_now(double *user, double *sys)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru)) {
		*user = *sys = 0;
		return;
	}
	*user = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
	*sys = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds per GiB moved over the timed iterations. */
static double cpu_per_gib(const struct bw_result *r, uint64_t size)
{
	double gib = (double)size * r->iters / (double)(1ull << 30);

	return gib > 0 ? (r->cpu_user_s + r->cpu_sys_s) / gib : 0;
}

static void summarise(struct bw_result *r, uint64_t size)
{
	r->total_s = 0;
	r->peak_mbps = 0;
	for (unsigned i = 0; i < r->iters; i++) {
		double mbps = r->secs[i] > 0 ? (double)size / r->secs[i] / 1e6 : 0;

		r->total_s += r->secs[i];
		if (mbps > r->peak_mbps)
			r->peak_mbps = mbps;
	}
	r->avg_mbps = r->total_s > 0 ?
			      (double)size * r->iters / r->total_s / 1e6 : 0;
	r->mpps = r->total_s > 0 ? (double)r->packets / r->total_s / 1e6 : 0;
}

static void print_row(const struct bw_opts *o, bool client,
		      const struct bw_result *r, unsigned channels,
		      unsigned warmup, double prepare_s)
{
	uint64_t rss = cli_peak_rss();
	uint64_t over = cli_overhead(rss, o->size);

	printf(" %-14s %-13s %-18s %-20s %s\n", "#bytes", "#iterations",
	       "BW peak[MB/sec]", "BW average[MB/sec]", "MsgRate[Mpps]");
	printf(" %-14" PRIu64 " %-13u %-18.2f %-20.2f %.6f\n", o->size,
	       r->iters, r->peak_mbps, r->avg_mbps, r->mpps);
	printf(RULE "\n");
	printf(" cpu: %.3f s user + %.3f s system over the timed iterations = "
	       "%.3f CPU s per GiB (%s process, all threads)\n", r->cpu_user_s,
	       r->cpu_sys_s, cpu_per_gib(r, o->size),
	       client ? "source" : "destination");
	printf(" memory: peak RSS %.1f MiB - RAM block %.1f MiB = %.1f MiB "
	       "overhead (%s, %u channels)\n", cli_mib(rss), cli_mib(o->size),
	       cli_mib(over), client ? "source" : "destination", channels);
	printf("{\"test\":\"rmig_bw\",\"role\":\"%s\",\"channels\":%u,"
	       "\"page_size\":%zu,\"pages_per_packet\":%u,\"bytes\":%" PRIu64
	       ",\"iterations\":%u,\"warmup\":%u,\"bw_peak_mb_per_sec\":%.3f,"
	       "\"bw_average_mb_per_sec\":%.3f,\"msg_rate_mpps\":%.6f,"
	       "\"packets\":%" PRIu64 ",\"seconds\":%.6f,\"iteration_seconds\":[",
	       client ? "client" : "server", channels, o->sess.page_size,
	       o->sess.pages_per_packet ? o->sess.pages_per_packet : 128,
	       o->size, r->iters, warmup, r->peak_mbps, r->avg_mbps, r->mpps,
	       r->packets, r->total_s);
	for (unsigned i = 0; i < r->iters; i++)
		printf("%s%.6f", i ? "," : "", r->secs[i]);
	printf("],\"prefaulted\":true,\"prepare_seconds\":%.3f,"
	       "\"peak_rss_bytes\":%" PRIu64 ",\"ram_bytes\":%" PRIu64
	       ",\"overhead_bytes\":%" PRIu64 ",\"cpu_user_seconds\":%.6f,"
	       "\"cpu_sys_seconds\":%.6f,\"cpu_seconds_per_gib\":%.6f}\n",
	       prepare_s, rss, o->size, over, r->cpu_user_s, r->cpu_sys_s,
	       cpu_per_gib(r, o->size));
	fflush(stdout);
}

static uint64_t src_packets(rmig_src *s)
{
	struct rmig_stats st = { .size = sizeof(st) };

	return rmig_src_get_stats(s, &st) ? 0 : st.packets;
}

static uint64_t dest_packets(rmig_dest *d)
{
	struct rmig_stats st = { .size = sizeof(st) };

	return rmig_dest_get_stats(d, &st) ? 0 : st.packets;
}

static int one_pass(rmig_src *s, int block, uint64_t pages, size_t page_size,
		    uint64_t *offs)
{
	int ret = cli_queue_all_pages(s, block, pages, page_size, offs);

	return ret < 0 ? ret : rmig_src_sync(s);
}

static int run_client(const struct bw_opts *o)
{
	static struct bw_result r;
	struct rmig_stats st = { .size = sizeof(st) };
	rmig_src *s = NULL;
	void *base = NULL;
	size_t base_len = 0;
	uint8_t *ram;
	uint64_t *offs = NULL;
	uint64_t pages = o->size / o->sess.page_size;
	char addr[300];
	char settings[128];
	const char *what = "";
	double t0, prepare_s, u0, s0, u1, s1;
	int block, ret = -ENOMEM;

	host_port(addr, sizeof(addr), o->host, o->port);
	banner(o, true, addr);

	t0 = cli_now_s();
	ram = cli_map_ram(o->size, o->sess.page_size, &base, &base_len);
	offs = malloc(CLI_QUEUE_CHUNK * sizeof(*offs));
	if (!ram || !offs) {
		fprintf(stderr, "%s: cannot allocate %" PRIu64 " bytes\n", PROG,
			o->size);
		goto out;
	}
	fill(ram, o->size, o->sess.page_size);
	prepare_s = cli_now_s() - t0;
	printf(" memory faulted in and filled in %.2f s, before the clock "
	       "starts\n", prepare_s);

	ret = block = open_session(o, addr, ram, &s, NULL, &what);
	if (ret < 0)
		goto fail;
	what = "connect";
	ret = rmig_src_connect(s);
	if (ret < 0)
		goto fail;

	/* Settings for the server, then a start sync it times from. */
	snprintf(settings, sizeof(settings), "iters=%u warmup=%u size=%" PRIu64
		 " page_size=%zu", o->iters, o->warmup, o->size, o->sess.page_size);
	what = "send settings";
	ret = rmig_src_send_devstate(s, SETTINGS_IDSTR, 0, settings,
				     strlen(settings) + 1);
	if (ret < 0)
		goto fail;
	what = "start sync";
	ret = rmig_src_sync(s);
	if (ret < 0)
		goto fail;

	what = "warm-up";
	for (unsigned i = 0; i < o->warmup; i++) {
		ret = one_pass(s, block, pages, o->sess.page_size, offs);
		if (ret < 0)
			goto fail;
	}
	what = "timed iteration";
	r.iters = o->iters;
	r.packets = src_packets(s);
	cpu_now(&u0, &s0);
	for (unsigned i = 0; i < o->iters; i++) {
		t0 = cli_now_s();
		ret = one_pass(s, block, pages, o->sess.page_size, offs);
		if (ret < 0)
			goto fail;
		r.secs[i] = cli_now_s() - t0;
	}
	cpu_now(&u1, &s1);
	r.cpu_user_s = u1 - u0;
	r.cpu_sys_s = s1 - s0;
	r.packets = src_packets(s) - r.packets;
	what = "finish";
	ret = rmig_src_finish(s);
	if (ret < 0)
		goto fail;
	summarise(&r, o->size);
	if (rmig_src_get_stats(s, &st))
		st.channels = o->sess.channels;
	else
		printf(" transport used: %s\n", st.transport);
	print_row(o, true, &r, st.channels, o->warmup, prepare_s);
	ret = 0;
	goto out;
fail:
	lib_fail("client", what, ret);
out:
	if (s)
		rmig_src_destroy(s);
	free(offs);
	if (base)
		munmap(base, base_len);
	return ret ? 1 : 0;
}

static int run_server(const struct bw_opts *o)
{
	static struct bw_result r;
	static double stamp[2 * MAX_ITERS + 2];
	static uint64_t pk[2 * MAX_ITERS + 2];
	static double cpu_u[2 * MAX_ITERS + 2], cpu_s[2 * MAX_ITERS + 2];
	struct rmig_stats st = { .size = sizeof(st) };
	struct rmig_devstate *ds = NULL;
	rmig_dest *d = NULL;
	void *base = NULL;
	size_t base_len = 0;
	uint8_t *ram;
	char addr[300];
	char bound[300];
	const char *what = "";
	unsigned iters = 0, warmup = 0, nsync = 0;
	unsigned long long csize = 0;
	size_t cpage = 0;
	uint64_t bad;
	int64_t first_bad;
	double t0, prepare_s;
	int block, ret = -ENOMEM;

	host_port(addr, sizeof(addr), o->bind, o->port);

	t0 = cli_now_s();
	ram = cli_map_ram(o->size, o->sess.page_size, &base, &base_len);
	if (!ram) {
		fprintf(stderr, "%s: cannot allocate %" PRIu64 " bytes\n", PROG,
			o->size);
		goto out;
	}
	prepare_s = cli_now_s() - t0;

	ret = block = open_session(o, addr, ram, NULL, &d, &what);
	if (ret < 0)
		goto fail;
	what = "listen";
	ret = cli_dest_listen(d, bound, sizeof(bound));
	if (ret < 0)
		goto fail;
	banner(o, false, bound);
	printf(" memory faulted in in %.2f s, before the clock starts\n",
	       prepare_s);
	printf(" ready, listening on %s\n", bound);
	fflush(stdout);

	what = "accept";
	ret = rmig_dest_accept(d, o->timeout_s < 0 ? -1 : o->timeout_s * 1000);
	if (ret < 0)
		goto fail;

	/* Sync 0 is the start marker (settings blob before it); then warmup
	 * syncs; then iters timed syncs; then the final sync. */
	what = "wait_sync";
	for (;;) {
		ret = rmig_dest_wait_sync(d, -1);
		if (ret < 0)
			goto fail;
		if (ret == 1)
			break;
		if (nsync >= 2 * MAX_ITERS + 2) {
			ret = -EPROTO;
			fprintf(stderr, "%s: more syncs than announced\n", PROG);
			goto out;
		}
		stamp[nsync] = cli_now_s();
		pk[nsync] = dest_packets(d);
		cpu_now(&cpu_u[nsync], &cpu_s[nsync]);
		if (nsync == 0) {
			what = "settings";
			ret = rmig_dest_recv_devstate(d, &ds);
			if (ret < 0)
				goto fail;
			if (strcmp(ds->idstr, SETTINGS_IDSTR) || !ds->len ||
			    ((char *)ds->data)[ds->len - 1] ||
			    sscanf(ds->data, "iters=%u warmup=%u size=%llu "
				   "page_size=%zu", &iters, &warmup, &csize,
				   &cpage) != 4 || iters == 0 ||
			    iters > MAX_ITERS || warmup > MAX_ITERS) {
				fprintf(stderr, "%s: bad settings from the "
					"client\n", PROG);
				ret = -EPROTO;
				goto out;
			}
			rmig_devstate_free(ds);
			ds = NULL;
			if (csize != o->size || cpage != o->sess.page_size) {
				fprintf(stderr, "%s: the client migrates %llu "
					"bytes of %zu-byte pages, this server "
					"has %" PRIu64 " of %zu: use the same "
					"--size and --page-size\n", PROG, csize,
					cpage, o->size, o->sess.page_size);
				ret = -EINVAL;
				goto out;
			}
			printf(" client: %u timed iterations after %u warm-up\n",
			       iters, warmup);
			fflush(stdout);
			what = "wait_sync";
		}
		nsync++;
	}
	what = "finish";
	ret = rmig_dest_finish(d);
	if (ret < 0)
		goto fail;
	if (nsync != 1 + warmup + iters) {
		fprintf(stderr, "%s: saw %u syncs, expected %u\n", PROG, nsync,
			1 + warmup + iters);
		ret = -EPROTO;
		goto out;
	}
	r.iters = iters;
	for (unsigned i = 0; i < iters; i++)
		r.secs[i] = stamp[warmup + 1 + i] - stamp[warmup + i];
	r.packets = pk[warmup + iters] - pk[warmup];
	r.cpu_user_s = cpu_u[warmup + iters] - cpu_u[warmup];
	r.cpu_sys_s = cpu_s[warmup + iters] - cpu_s[warmup];
	summarise(&r, o->size);
	if (rmig_dest_get_stats(d, &st))
		st.channels = o->sess.channels;
	else
		printf(" transport used: %s\n", st.transport);
	bad = spot_check(ram, o->size, o->sess.page_size, &first_bad);
	if (bad) {
		fprintf(stderr, "%s: data check FAILED: %" PRIu64 " pages "
			"wrong, first page %" PRId64 "\n", PROG, bad, first_bad);
		ret = -EIO;
	} else {
		printf(" data check: first and last word of every page OK\n");
	}
	print_row(o, false, &r, st.channels, warmup, prepare_s);
	goto out;
fail:
	lib_fail("server", what, ret);
out:
	if (ds)
		rmig_devstate_free(ds);
	if (d)
		rmig_dest_destroy(d);
	if (base)
		munmap(base, base_len);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct bw_opts o;

	if (parse_args(argc, argv, &o))
		return 2;
	/* Before any thread exists: the library's threads inherit it. */
	if (o.affinity && sched_setaffinity(0, sizeof(o.cpus), &o.cpus)) {
		fprintf(stderr, "%s: -A %s: sched_setaffinity: %s\n", PROG,
			o.affinity, strerror(errno));
		return 2;
	}
	return o.host ? run_client(&o) : run_server(&o);
}

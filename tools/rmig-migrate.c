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
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rmig/rmig.h>

#include "cli.h"

#define PROG "rmig-migrate"
#define GOLDEN 0x9e3779b97f4a7c15ull
#define MANIFEST_IDSTR "rmig-migrate/manifest"
#define DEMO_ACCEPT_TIMEOUT_S 60
#define DEMO_GRACE_S 15 /* after one side failed, how long the other has */
#define DEMO_LIMIT_BASE_S 60 /* demo: whole run, plus ... */
#define DEMO_LIMIT_PER_GIB_S 20 /* ... this per GiB */

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
	int timeout_s;          /* dest: wait for a source; -1 forever */
	bool dirty_dest;
	bool json;
	int verbose;
	int status_fd;          /* demo: dest writes its address here */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static const char *role_name(enum role r)
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

static enum role g_role = ROLE_NONE;
static bool g_json;

static void fail_msg(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void fail_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: error: ", role_name(g_role));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Progress lines for people: stdout, unless --json asked for JSON only. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
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
static const char *human(uint64_t bytes, char buf[32])
{
	if (bytes >= (1ull << 30))
		snprintf(buf, 32, "%.2f GiB", cli_mib(bytes) / 1024.0);
	else
		snprintf(buf, 32, "%.1f MiB", cli_mib(bytes));
	return buf;
}

/* ------------------------------------------------------------------ */
/* The reproducible image                                              */

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t page_key(uint64_t seed, uint64_t page)
{
	return mix64(mix64(seed + GOLDEN) ^ page);
}

static inline bool page_is_zero(uint64_t key, unsigned zero_percent)
{
	return (((key >> 32) * 100u) >> 32) < zero_percent;
}

static void fill_page(uint64_t *w, size_t words, uint64_t key)
{
	for (size_t i = 0; i < words; i++)
		w[i] = mix64(key + (uint64_t)(i + 1) * GOLDEN);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_uuid(const char *s, uint8_t uuid[16])
{
	unsigned n = 0;

	for (; *s; s++) {
		int hi, lo;

		if (*s == '-')
			continue;
		if (n == 16 || !s[1])
			return -1;
		hi = hexval(s[0]);
		lo = hexval(s[1]);
		if (hi < 0 || lo < 0)
			return -1;
		uuid[n++] = (uint8_t)(hi << 4 | lo);
		s++;
	}
	return n == 16 ? 0 : -1;
}

static void format_uuid(const uint8_t u[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned j = 0;

	for (unsigned i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[u[i] >> 4];
		out[j++] = hex[u[i] & 15];
	}
	out[j] = '\0';
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage:\n"
"  " PROG " demo   [OPTIONS]                     both sides on this machine\n"
"  " PROG " dest   --listen HOST:PORT [OPTIONS]  receive and verify\n"
"  " PROG " source --connect HOST:PORT [OPTIONS] fill and send\n"
"\n"
"Migrates a RAM block with rmig and checks it arrived intact.  The source\n"
"fills SIZE bytes with a reproducible mix of data pages and zero pages\n"
"(from --seed and --zero-percent), faults it in, then times the migration:\n"
"every page queued, one sync, a small device-state blob, the final sync.\n"
"The destination regenerates the same image and compares it byte for byte.\n"
"Each side prints seconds, GB/s (10^9 bytes), normal/zero pages, packets,\n"
"syncs and channels.  Exit status: 0 when the migration completed and (on\n"
"the destination) every page matched, 1 on failure, 2 on bad usage.\n"
"\n"
"  demo     forks a destination (listening on 127.0.0.1, port 0 = a free\n"
"           port) and a source that connects to it; the port goes from one\n"
"           to the other over a pipe.  Try this first:  " PROG " demo\n"
"           A run that stalls is stopped after 60 s + 20 s per GiB.\n"
"  dest     start this first, on the receiving host.  Port 0 picks a free\n"
"           port; the address it listens on is printed.\n"
"  source   start this second, on the sending host, with the same --size,\n"
"           --page-size, --seed and --zero-percent as the destination.\n"
"\n"
"Options:\n"
"  --listen HOST:PORT      dest: where to listen (IPv6 as [addr]:port)\n"
"  --connect HOST:PORT     source: the destination's address\n"
"  --size SIZE             RAM to migrate: 1G (default), 512M, 2GiB, 64MiB;\n"
"                          a plain number means GiB; a multiple of the page size\n"
"  --channels N            channels (connections, one thread each), 1..%d;\n"
"                          default 4 (dest: default takes the source's count)\n"
"  --page-size 4k|2m       target page size (default 4k)\n"
"  --pages-per-packet N    pages per packet, 1..%d (default 128)\n"
"  --transport auto|fabric|verbs  auto (default): verbs if present, else\n"
"                          libfabric tcp\n"
"  --fabric-provider NAME  libfabric provider (default tcp)\n"
"  --zero-percent P        share of zero pages, 0..100 (default 25)\n"
"  --seed N                generator seed (default 1)\n"
"  --uuid UUID             session UUID, 32 hex digits (dashes allowed);\n"
"                          source default: random; dest default: adopt the\n"
"                          first source's; demo: random, given to both\n"
"  --timeout SECONDS       dest: how long to wait for a source (default:\n"
"                          forever; demo: %d)\n"
"  --dirty-dest            dest: fill its RAM with a non-zero pattern first,\n"
"                          so that every zero page must really be cleared\n"
"  --json                  print one JSON object per side instead of text\n"
"  -v, --verbose           library log at INFO (twice: DEBUG); the default\n"
"                          is RMIG_LOG_LEVEL from the environment, else WARN\n"
"  -h, --help              this text\n"
"\n"
"Examples:\n"
"  " PROG " demo --size 256M --channels 2\n"
"  host B (192.0.2.2):  " PROG " dest --listen 192.0.2.2:7000 --size 4G\n"
"  host A:              " PROG " source --connect 192.0.2.2:7000 --size 4G\n"
"\n"
"Library tunables (environment RMIG_<NAME>) are listed by rmig(7).\n",
		RMIG_MAX_CHANNELS, RMIG_MAX_PAGES_PER_PACKET, DEMO_ACCEPT_TIMEOUT_S);
}

enum opt_id {
	OPT_LISTEN = 256,
	OPT_CONNECT,
	OPT_SIZE,
	OPT_CHANNELS,
	OPT_PAGE_SIZE,
	OPT_PPP,
	OPT_TRANSPORT,
	OPT_PROVIDER,
	OPT_ZERO,
	OPT_SEED,
	OPT_UUID,
	OPT_TIMEOUT,
	OPT_DIRTY,
	OPT_JSON,
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "channels", required_argument, NULL, OPT_CHANNELS },
	{ "page-size", required_argument, NULL, OPT_PAGE_SIZE },
	{ "pages-per-packet", required_argument, NULL, OPT_PPP },
	{ "transport", required_argument, NULL, OPT_TRANSPORT },
	{ "fabric-provider", required_argument, NULL, OPT_PROVIDER },
	{ "zero-percent", required_argument, NULL, OPT_ZERO },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "uuid", required_argument, NULL, OPT_UUID },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "dirty-dest", no_argument, NULL, OPT_DIRTY },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* "--NAME 'VALUE': expected WHAT" for the value of long_opts[idx], the
 * option getopt_long() just returned; -1 for parse_args() to return. */
static int bad_value(int idx, const char *what, ...)
	__attribute__((format(printf, 2, 3)));
static int bad_value(int idx, const char *what, ...)
{
	char expected[128];
	va_list ap;

	va_start(ap, what);
	vsnprintf(expected, sizeof(expected), what, ap);
	va_end(ap);
	fail_msg("--%s '%s': expected %s", long_opts[idx].name, optarg,
		 expected);
	return -1;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	unsigned long long v;
	int c, idx = 0;

	*o = (struct opts){
		.size = 1ull << 30,
		.sess = { .page_size = 4096,
			  .transport = RMIG_TRANSPORT_AUTO },
		.zero_percent = 25,
		.seed = 1,
		.timeout_s = -1,
		.status_fd = -1,
	};
	if (argc < 2) {
		usage(stderr);
		return -1;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		exit(EXIT_OK);
	}
	if (!strcmp(argv[1], "demo"))
		o->role = ROLE_DEMO;
	else if (!strcmp(argv[1], "source") || !strcmp(argv[1], "src"))
		o->role = ROLE_SOURCE;
	else if (!strcmp(argv[1], "dest") || !strcmp(argv[1], "destination"))
		o->role = ROLE_DEST;
	else {
		fprintf(stderr, "%s: unknown command '%s' (expected demo, "
			"source or dest; see --help)\n", PROG, argv[1]);
		return -1;
	}
	g_role = o->role;

	optind = 2;
	while ((c = getopt_long(argc, argv, "vh", long_opts, &idx)) != -1) {
		switch (c) {
		case OPT_LISTEN:
		case OPT_CONNECT:
			if ((c == OPT_LISTEN) != (o->role == ROLE_DEST)) {
				fail_msg("--%s is for '%s' only", c == OPT_LISTEN ?
					 "listen" : "connect", c == OPT_LISTEN ?
					 "dest" : "source");
				return -1;
			}
			o->address = optarg;
			break;
		case OPT_SIZE: /* a plain number means GiB */
			if (cli_parse_size(optarg, 1ull << 30, true, &o->size))
				return bad_value(idx, "a size like 1G, 512M, "
						 "2GiB or 64MiB");
			break;
		case OPT_CHANNELS:
			if (cli_parse_count(optarg, RMIG_MAX_CHANNELS,
					    &o->sess.channels))
				return bad_value(idx, "1..%d", RMIG_MAX_CHANNELS);
			break;
		case OPT_PAGE_SIZE:
			if (cli_parse_page_size(optarg, true, &o->sess.page_size))
				return bad_value(idx, "4k or 2m");
			break;
		case OPT_PPP:
			if (cli_parse_count(optarg, RMIG_MAX_PAGES_PER_PACKET,
					    &o->sess.pages_per_packet))
				return bad_value(idx, "1..%d",
						 RMIG_MAX_PAGES_PER_PACKET);
			break;
		case OPT_TRANSPORT:
			if (cli_parse_transport(optarg, &o->sess))
				return bad_value(idx, "auto or fabric");
			break;
		case OPT_PROVIDER:
			o->sess.fabric_provider = optarg;
			break;
		case OPT_ZERO:
			if (cli_parse_unsigned(optarg, 100, &o->zero_percent))
				return bad_value(idx, "0..100");
			break;
		case OPT_SEED:
			if (cli_parse_ull(optarg, UINT64_MAX, &v))
				return bad_value(idx, "an unsigned integer");
			o->seed = v;
			break;
		case OPT_UUID:
			if (parse_uuid(optarg, o->uuid))
				return bad_value(idx, "32 hex digits, dashes "
						 "allowed");
			o->uuid_set = true;
			break;
		case OPT_TIMEOUT:
			if (cli_parse_seconds(optarg, &o->timeout_s))
				return bad_value(idx, "seconds");
			break;
		case OPT_DIRTY:
			o->dirty_dest = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default:
			fprintf(stderr, "see '%s --help'\n", PROG);
			return -1;
		}
	}
	if (optind < argc) {
		fail_msg("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (o->size % o->sess.page_size) {
		fail_msg("--size %" PRIu64 " bytes is not a multiple of the "
			 "page size (%zu)", o->size, o->sess.page_size);
		return -1;
	}
	if (o->role == ROLE_SOURCE && !o->address) {
		fail_msg("'source' needs --connect HOST:PORT (the address the "
			 "destination printed)");
		return -1;
	}
	if (o->role == ROLE_DEST && !o->address) {
		fail_msg("'dest' needs --listen HOST:PORT (port 0 picks a free "
			 "port)");
		return -1;
	}
	g_json = o->json;
	return 0;
}

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
static _Atomic int sig_caught;

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

static void set_cancel_target(rmig_src *s, rmig_dest *d)
{
	pthread_mutex_lock(&sig_lock);
	sig_src = s;
	sig_dest = d;
	pthread_mutex_unlock(&sig_lock);
}

/* The start of a source or destination process (g_role set): signals
 * cancel its session; -v routes the library log to stderr. */
static void start_side(const struct opts *o)
{
	start_signal_thread();
	if (o->verbose)
		rmig_set_log_handler(log_cb, (void *)role_name(g_role),
				     o->verbose > 1 ? RMIG_LOG_DEBUG :
						      RMIG_LOG_INFO);
}

/* ------------------------------------------------------------------ */
/* Report                                                              */

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

static void print_report(const struct opts *o, const struct report *r)
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
/* One side's run: what the source and the destination share           */

struct side {
	const struct opts *o;
	struct report r;
	char errbuf[1024];  /* r.error, when formatted */
	void *base;         /* the mapping, for munmap() */
	size_t base_len;
	uint8_t *ram;       /* the RAM block, aligned, in it */
};

/* @verified: -1 on the source (not applicable), 0 on the destination until
 * it has checked every page. */
static void side_init(struct side *x, const struct opts *o, const char *role,
		      int verified)
{
	*x = (struct side){
		.o = o,
		.r = { .role = role, .verified = verified,
		       .first_mismatch = -1, .ram_bytes = o->size,
		       .pages = o->size / o->sess.page_size },
	};
}

/* The run failed: r.error says why. */
static void side_fail(struct side *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void side_fail(struct side *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->errbuf, sizeof(x->errbuf), fmt, ap);
	va_end(ap);
	x->r.error = x->errbuf;
}

/* A library call failed with @ret: the library's message (and whether a
 * signal cancelled it), else strerror(-ret). */
static void side_lib_fail(struct side *x, int ret)
{
	side_fail(x, "%s%s", rmig_last_error(),
		  sig_caught ? " (interrupted by a signal)" : "");
	if (!x->errbuf[0])
		side_fail(x, "%s", strerror(-ret));
}

/* Map and fault in the RAM block; false (r.error set) when it cannot. */
static bool side_map(struct side *x)
{
	x->ram = cli_map_ram(x->o->size, x->o->sess.page_size, &x->base,
			     &x->base_len);
	if (!x->ram)
		side_fail(x, "cannot map %" PRIu64 " bytes: %s", x->o->size,
			  strerror(errno));
	return x->ram != NULL;
}

/* Create the session, source (@s) or destination (@d), for @address, make
 * it the one a signal cancels, and add the RAM block.  Returns the block's
 * index, or a negative errno from the library (*s or *d may then be set). */
static int side_open(struct side *x, const char *address, rmig_src **s,
		     rmig_dest **d)
{
	struct rmig_config cfg;
	size_t len = (size_t)x->o->size;
	int ret;

	make_config(x->o, &cfg, address);
	ret = s ? rmig_src_create(&cfg, s) : rmig_dest_create(&cfg, d);
	if (ret < 0)
		return ret;
	set_cancel_target(s ? *s : NULL, d ? *d : NULL);
	return s ? rmig_src_add_block(*s, "ram", x->ram, len) :
		   rmig_dest_add_block(*d, "ram", x->ram, len);
}

/* The end of a run with session @s or @d (or neither, when it failed before
 * creating one): its statistics and peak RSS into the report, the report,
 * then the session and the RAM block go.  Returns the exit status. */
static int side_end(struct side *x, rmig_src *s, rmig_dest *d)
{
	struct report *r = &x->r;

	if (s || d) {
		r->st.size = sizeof(r->st);
		if ((s ? rmig_src_get_stats(s, &r->st) :
			 rmig_dest_get_stats(d, &r->st)) < 0)
			memset(&r->st, 0, sizeof(r->st));
	}
	r->peak_rss = cli_peak_rss();
	print_report(x->o, r);
	set_cancel_target(NULL, NULL);
	if (s)
		rmig_src_destroy(s);
	if (d)
		rmig_dest_destroy(d);
	if (x->base)
		munmap(x->base, x->base_len);
	return r->error ? EXIT_FAIL : EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* Source                                                              */

static void manifest_text(const struct opts *o, char *buf, size_t len)
{
	snprintf(buf, len, "rmig-migrate size=%" PRIu64 " page_size=%zu "
		 "seed=%" PRIu64 " zero_percent=%u", o->size, o->sess.page_size,
		 o->seed, o->zero_percent);
}

static int run_source(const struct opts *o, const char *address)
{
	struct side x;
	rmig_src *s = NULL;
	uint64_t *offs = NULL;
	uint64_t zero_expected = 0;
	size_t page_size = o->sess.page_size;
	size_t words = page_size / 8;
	char manifest[256];
	char hb[32];
	double t0;
	int block, ret;

	side_init(&x, o, "source", -1);
	say("%s = %" PRIu64 " pages of %zu bytes, %u%% zero, seed %"
	    PRIu64 ", destination %s\n", human(o->size, hb), x.r.pages,
	    page_size, o->zero_percent, o->seed, address);

	t0 = cli_now_s();
	if (!side_map(&x))
		goto out;
	for (uint64_t p = 0; p < x.r.pages; p++) {
		uint64_t key = page_key(o->seed, p);

		/* A fresh anonymous mapping reads as zero: skip zero pages. */
		if (page_is_zero(key, o->zero_percent))
			zero_expected++;
		else
			fill_page((uint64_t *)(x.ram + p * page_size), words,
				  key);
	}
	x.r.prepare_s = cli_now_s() - t0;
	say("memory faulted in and filled before timing (%.2f s, not "
	    "counted): %" PRIu64 " data + %" PRIu64 " zero pages\n",
	    x.r.prepare_s, x.r.pages - zero_expected, zero_expected);

	offs = malloc(CLI_QUEUE_CHUNK * sizeof(*offs));
	if (!offs) {
		x.r.error = "out of memory";
		goto out;
	}

	ret = block = side_open(&x, address, &s, NULL);
	if (ret < 0)
		goto lib_fail;

	t0 = cli_now_s();
	ret = rmig_src_connect(s);
	if (ret == -ECONNREFUSED && !strstr(rmig_last_error(), "reject")) {
		side_fail(&x, "%s (is 'rmig-migrate dest --listen ...' "
			  "running there?  Start it first.)",
			  rmig_last_error());
		goto out;
	}
	if (ret < 0)
		goto lib_fail;
	x.r.connect_s = cli_now_s() - t0;
	say("connected in %.3f s; migrating (clock started)\n", x.r.connect_s);

	/* The timed part: every page, a sync (end of the RAM pass, as
	 * multifd syncs at the end of each iteration), a device-state blob,
	 * and the final sync. */
	t0 = cli_now_s();
	ret = cli_queue_all_pages(s, block, x.r.pages, page_size, offs);
	if (ret < 0)
		goto lib_fail;
	ret = rmig_src_sync(s);
	if (ret < 0)
		goto lib_fail;
	manifest_text(o, manifest, sizeof(manifest));
	ret = rmig_src_send_devstate(s, MANIFEST_IDSTR, 0, manifest,
				     strlen(manifest) + 1);
	if (ret < 0)
		goto lib_fail;
	ret = rmig_src_finish(s);
	if (ret < 0)
		goto lib_fail;
	x.r.seconds = cli_now_s() - t0;
	goto out;

lib_fail:
	side_lib_fail(&x, ret);
out:
	ret = side_end(&x, s, NULL);
	free(offs);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Destination                                                         */

/* Compare the received image with the generator.  Returns the number of
 * mismatching pages; *first gets the first one (-1 when none). */
static uint64_t verify_ram(const struct opts *o, const uint8_t *ram,
			   uint64_t pages, int64_t *first, char *why,
			   size_t whylen)
{
	size_t page_size = o->sess.page_size;
	size_t words = page_size / 8;
	uint64_t *expect = malloc(page_size);
	uint64_t bad = 0;

	*first = -1;
	if (!expect) {
		snprintf(why, whylen, "out of memory for verification");
		*first = 0;
		return pages;
	}
	for (uint64_t p = 0; p < pages; p++) {
		const uint8_t *got = ram + p * page_size;
		uint64_t key = page_key(o->seed, p);
		bool zero = page_is_zero(key, o->zero_percent);

		if (zero)
			memset(expect, 0, page_size);
		else
			fill_page(expect, words, key);
		if (!memcmp(got, expect, page_size))
			continue;
		if (!bad++) {
			size_t i = 0;

			while (got[i] == ((const uint8_t *)expect)[i])
				i++;
			*first = (int64_t)p;
			snprintf(why, whylen, "page %" PRIu64 " (offset 0x%"
				 PRIx64 ", expected a %s page) differs first "
				 "at byte %zu: got 0x%02x, expected 0x%02x",
				 p, p * page_size, zero ? "zero" : "data", i,
				 got[i], ((const uint8_t *)expect)[i]);
		}
	}
	free(expect);
	return bad;
}

static int run_dest(const struct opts *o)
{
	struct side x;
	struct rmig_devstate *ds = NULL;
	rmig_dest *d = NULL;
	char addr[128];
	char why[512] = "";
	char manifest[256];
	char hb[32];
	double t0;
	int block, ret;
	int64_t received;
	int timeout_ms = o->timeout_s < 0 ? -1 : o->timeout_s * 1000;

	side_init(&x, o, "dest", 0);

	t0 = cli_now_s();
	if (!side_map(&x))
		goto out;
	if (o->dirty_dest)
		memset(x.ram, 0xa5, (size_t)o->size);
	x.r.prepare_s = cli_now_s() - t0;

	ret = block = side_open(&x, o->address, NULL, &d);
	if (ret < 0)
		goto lib_fail;
	ret = cli_dest_listen(d, addr, sizeof(addr));
	if (ret < 0)
		goto lib_fail;
	if (o->status_fd >= 0) {
		char line[160];
		int n = snprintf(line, sizeof(line), "%s\n", addr);

		if (write(o->status_fd, line, (size_t)n) != n) {
			side_fail(&x, "cannot pass the address to the source: "
				  "%s", strerror(errno));
			goto out;
		}
		close(o->status_fd);
	}
	say("listening on %s; %s RAM block faulted in%s before timing "
	    "(%.2f s)\n", addr, human(o->size, hb),
	    o->dirty_dest ? " and filled with 0xa5" : "", x.r.prepare_s);

	ret = rmig_dest_accept(d, timeout_ms);
	if (ret < 0)
		goto lib_fail;
	t0 = cli_now_s();
	say("source connected; receiving (clock started)\n");
	for (;;) {
		ret = rmig_dest_wait_sync(d, -1);
		if (ret < 0)
			goto lib_fail;
		if (ret == 1)
			break;
	}
	ret = rmig_dest_finish(d);
	if (ret < 0)
		goto lib_fail;
	x.r.seconds = cli_now_s() - t0;

	/* The manifest names the source's generator settings: a mismatch is
	 * reported as such rather than as thousands of differing pages. */
	ret = rmig_dest_recv_devstate(d, &ds);
	if (ret < 0) {
		side_fail(&x, "no device-state manifest from the source: %s",
			  rmig_last_error());
		goto out;
	}
	manifest_text(o, manifest, sizeof(manifest));
	if (strcmp(ds->idstr, MANIFEST_IDSTR) || ds->len != strlen(manifest) + 1 ||
	    memcmp(ds->data, manifest, ds->len)) {
		side_fail(&x, "the source generated another image: it sent "
			  "'%.*s' (%s), this side expects '%s'; use the same "
			  "--size, --page-size, --seed and --zero-percent on "
			  "both sides",
			  ds->len ? (int)ds->len - 1 : 0, (const char *)ds->data,
			  ds->idstr, manifest);
		goto out;
	}

	received = rmig_dest_block_received(d, block);
	if (received != (int64_t)x.r.pages)
		side_fail(&x, "received bitmap counts %" PRId64 " of %" PRIu64
			  " pages", received, x.r.pages);
	t0 = cli_now_s();
	x.r.mismatched_pages = verify_ram(o, x.ram, x.r.pages,
					  &x.r.first_mismatch, why,
					  sizeof(why));
	if (x.r.mismatched_pages && !x.r.error)
		side_fail(&x, "verification failed: %" PRIu64 " of %" PRIu64
			  " pages differ; first: %s", x.r.mismatched_pages,
			  x.r.pages, why);
	x.r.verified = !x.r.error;
	if (x.r.verified)
		say("verified: all %" PRIu64 " pages match byte for byte "
		    "(%.2f s)\n", x.r.pages, cli_now_s() - t0);
	else if (x.r.mismatched_pages)
		say("first mismatch: %s\n", why);
	goto out;

lib_fail:
	side_lib_fail(&x, ret);
out:
	if (ds)
		rmig_devstate_free(ds);
	return side_end(&x, NULL, d);
}

/* ------------------------------------------------------------------ */
/* Demo: a destination and a source as two processes on 127.0.0.1      */

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
	return run_source(o, addr);
}

static int exit_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int run_demo(struct opts *o)
{
	int pfd[2];
	pid_t dest_pid, src_pid;
	int dest_rc = -1, src_rc = -1;
	/* Give up on a run that stalls: generous for fault-in and a slow
	 * link, bounded so that a hang ends with a report. */
	int limit_s = DEMO_LIMIT_BASE_S + DEMO_LIMIT_PER_GIB_S *
		      (int)((o->size + (1ull << 30) - 1) >> 30);
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
	if (!o->sess.channels)
		o->sess.channels = 4;
	if (o->timeout_s < 0)
		o->timeout_s = DEMO_ACCEPT_TIMEOUT_S;
	format_uuid(o->uuid, uuid);
	say("rmig %s: %s, %u channels, page size %zu, %u%% zero pages, "
	    "seed %" PRIu64 ", transport %s%s%s, session %s; destination and "
	    "source are two processes on 127.0.0.1\n", rmig_version(),
	    human(o->size, hb), o->sess.channels, o->sess.page_size,
	    o->zero_percent, o->seed,
	    o->sess.transport == RMIG_TRANSPORT_FABRIC ? "fabric" : "auto",
	    o->sess.fabric_provider ? "/" : "",
	    o->sess.fabric_provider ? o->sess.fabric_provider : "", uuid);

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
		start_side(o);
		_exit(run_dest(o));
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
		say("PASSED: migration completed and verified\n");
		return EXIT_OK;
	}
	fail_msg("demo FAILED (source exit %d, destination exit %d)", src_rc,
		 dest_rc);
	return EXIT_FAIL;
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
		return o.role == ROLE_SOURCE ? run_source(&o, o.address) :
					       run_dest(&o);
	default:
		return EXIT_USAGE;
	}
}

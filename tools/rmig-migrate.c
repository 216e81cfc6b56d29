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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rmig/rmig.h>

#include "cli.h"
#include "live.h"
#include "mix64.h"

#define PROG "rmig-migrate"
#define MANIFEST_IDSTR "rmig-migrate/manifest"
#define DEMO_ACCEPT_TIMEOUT_S 60
#define DEMO_GRACE_S 15 /* after one side failed, how long the other has */
#define DEMO_LIMIT_BASE_S 60 /* demo: whole run, plus ... */
#define DEMO_LIMIT_PER_GIB_S 20 /* ... this per GiB */
#define DEMO_LIMIT_LIVE_S 120 /* live demo: plus this (rounds, replay) */

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

	/* Live migration (the default; --still copies a still image) */
	bool still;
	bool page_size_set;
	struct guest_config guest; /* size and page size from above */
	double warmup_s;        /* source: guest runs this long first */
	uint64_t resume_steps;  /* dest: steps per vCPU after migrating */
	struct live_params live;
	bool demo_child;        /* forked by demo: one host, one clock */
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
"  " PROG " dest   --listen HOST:PORT [OPTIONS]  receive, verify, resume\n"
"  " PROG " source --connect HOST:PORT [OPTIONS] run a guest and migrate it\n"
"\n"
"Live-migrates a running workload with rmig, the way a hypervisor moves a\n"
"VM.  The source maps a guest RAM region (--size, --memory), boots it\n"
"(--zero-percent of its pages stay zero) and starts --vcpus threads that\n"
"keep writing it (--dirty-rate, --pattern).  After --warmup seconds it\n"
"migrates while they write: round 1 sends every page, each later round the\n"
"pages written since the last one, found with userfaultfd write-protection\n"
"(--dirty-tracking).  When the expected downtime (dirty bytes left /\n"
"measured bandwidth) is within --downtime-limit, the vCPUs are paused, the\n"
"last dirty pages and the vCPU state are sent, and the downtime ends when\n"
"the destination has everything.  If the rounds do not converge, the vCPUs\n"
"are throttled step by step (auto-converge); past --max-throttle or\n"
"--max-rounds the migration gives up, and the guest carries on at the\n"
"source.  The destination checks every page's hash against the source's\n"
"final image, resumes the guest for --resume-steps steps per vCPU and\n"
"compares its checksum with a replay of the same steps that never migrated.\n"
"Exit status: 0 when migrated and verified, 1 on failure, 2 on bad usage.\n"
"\n"
"  demo     forks a destination (listening on 127.0.0.1, port 0 = a free\n"
"           port) and a source that connects to it.  Try this first:\n"
"               " PROG " demo\n"
"  dest     start this first, on the receiving host, with the same --size\n"
"           and page size (--memory hugetlb or --page-size) as the source;\n"
"           the address it listens on is printed.\n"
"  source   start this second, on the sending host.\n"
"\n"
"Guest:\n"
"  --size SIZE             guest RAM: 1G (default), 512M, 2GiB, 64MiB; a\n"
"                          plain number means GiB\n"
"  --memory anon|memfd|hugetlb  anonymous memory (default), a memfd (shmem),\n"
"                          or 2 MiB huge pages (hugetlbfs; needs free pages in\n"
"                          /proc/sys/vm/nr_hugepages; implies --page-size 2m)\n"
"  --vcpus N               writer threads, 1..%d (default 2)\n"
"  --dirty-rate MB/s|max   pages written per second, all vCPUs, in 10^6\n"
"                          bytes of pages (default 200; 0 = idle guest; max =\n"
"                          as fast as the CPUs go)\n"
"  --pattern random|hot|seq  uniform random pages (default), a hot set that\n"
"                          takes 90%% of the writes, or a sequential sweep\n"
"  --hot-percent P         hot set size, 1..100 %% of the guest (default 10)\n"
"  --zero-percent P        share of pages left zero at boot (default 25)\n"
"  --seed N                workload seed (default 1)\n"
"  --warmup SECONDS        source: let the guest run first (default 2)\n"
"  --resume-steps N        dest: steps each vCPU runs after the migration\n"
"                          (default 100000)\n"
"\n"
"Migration:\n"
"  --downtime-limit MS     largest acceptable downtime (default 300)\n"
"  --max-rounds N          give up after N rounds (default 100)\n"
"  --no-auto-converge      never throttle the vCPUs\n"
"  --throttle-initial P    first throttle step, %% of vCPU time (default 20)\n"
"  --throttle-increment P  each further step (default 10)\n"
"  --max-throttle P        highest throttle, 1..99 (default 99); 0.6 s\n"
"                          there without converging: give up\n"
"  --force-finish          when not converging, stop and copy anyway\n"
"  --dirty-tracking auto|async|sync  userfaultfd write-protect: async\n"
"                          (PAGEMAP_SCAN, Linux 6.7+), sync (fault thread);\n"
"                          auto (default) takes async where the kernel has it\n"
"  --still                 the older mode: migrate a still memory image and\n"
"                          compare it byte for byte (no guest)\n"
"\n"
"Session:\n"
"  --listen HOST:PORT      dest: where to listen (IPv6 as [addr]:port)\n"
"  --connect HOST:PORT     source: the destination's address\n"
"  --channels N            channels (connections, one thread each), 1..%d;\n"
"                          default 4 (dest: default takes the source's count)\n"
"  --page-size 4k|2m       target page size (default 4k; hugetlb: 2m)\n"
"  --pages-per-packet N    pages per packet, 1..%d (default 128)\n"
"  --transport auto|fabric|verbs  auto (default): verbs if present, else\n"
"                          libfabric tcp\n"
"  --fabric-provider NAME  libfabric provider (default tcp)\n"
CLI_REG_NUMA_HELP
"  --uuid UUID             session UUID, 32 hex digits (dashes allowed);\n"
"                          source default: random; dest default: adopt the\n"
"                          first source's; demo: random, given to both\n"
"  --timeout SECONDS       dest: how long to wait for a source (default:\n"
"                          forever; demo: %d)\n"
"  --dirty-dest            dest: fill its RAM with a non-zero pattern first,\n"
"                          so that every zero page must really be cleared\n"
"  --json                  one JSON object per side instead of text\n"
"  -v, --verbose           library log at INFO (twice: DEBUG); the default\n"
"                          is RMIG_LOG_LEVEL from the environment, else WARN\n"
"  -h, --help              this text\n"
"\n"
"On a terminal the source shows one progress line, updated in place during\n"
"each round: round, dirty pages left, GB/s (10^9 bytes), expected downtime,\n"
"throttle.  Otherwise one log line per round.\n"
"\n"
"Examples:\n"
"  " PROG " demo --size 256M --dirty-rate 800 --pattern hot\n"
"  " PROG " demo --memory hugetlb --size 512M\n"
"  host B (192.0.2.2):  " PROG " dest --listen 192.0.2.2:7000 --size 4G\n"
"  host A:              " PROG " source --connect 192.0.2.2:7000 --size 4G\n"
"\n"
"Library tunables (environment RMIG_<NAME>) are listed by rmig(7).\n",
		GUEST_MAX_VCPUS, RMIG_MAX_CHANNELS, RMIG_MAX_PAGES_PER_PACKET,
		DEMO_ACCEPT_TIMEOUT_S);
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
	OPT_STILL,
	OPT_MEMORY,
	OPT_VCPUS,
	OPT_RATE,
	OPT_PATTERN,
	OPT_HOT,
	OPT_WARMUP,
	OPT_RESUME,
	OPT_DOWNTIME,
	OPT_ROUNDS,
	OPT_NO_AC,
	OPT_THR_INIT,
	OPT_THR_INC,
	OPT_THR_MAX,
	OPT_FORCE,
	OPT_TRACKING,
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
	{ "still", no_argument, NULL, OPT_STILL },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "vcpus", required_argument, NULL, OPT_VCPUS },
	{ "dirty-rate", required_argument, NULL, OPT_RATE },
	{ "pattern", required_argument, NULL, OPT_PATTERN },
	{ "hot-percent", required_argument, NULL, OPT_HOT },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "resume-steps", required_argument, NULL, OPT_RESUME },
	{ "downtime-limit", required_argument, NULL, OPT_DOWNTIME },
	{ "max-rounds", required_argument, NULL, OPT_ROUNDS },
	{ "no-auto-converge", no_argument, NULL, OPT_NO_AC },
	{ "throttle-initial", required_argument, NULL, OPT_THR_INIT },
	{ "throttle-increment", required_argument, NULL, OPT_THR_INC },
	{ "max-throttle", required_argument, NULL, OPT_THR_MAX },
	{ "force-finish", no_argument, NULL, OPT_FORCE },
	{ "dirty-tracking", required_argument, NULL, OPT_TRACKING },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	CLI_REG_NUMA_LONGOPTS,
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

/* A decimal number in [lo, hi]; 0 or -1. */
static int parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
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
		.guest = { .mem = GUEST_ANON, .vcpus = 2,
			   .pattern = GUEST_RANDOM, .hot_percent = 10,
			   .rate_mbs = 200 },
		.warmup_s = 2,
		.resume_steps = 100000,
	};
	live_params_default(&o->live);
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
			o->page_size_set = true;
			break;
		case OPT_PPP:
			if (cli_parse_count(optarg, RMIG_MAX_PAGES_PER_PACKET,
					    &o->sess.pages_per_packet))
				return bad_value(idx, "1..%d",
						 RMIG_MAX_PAGES_PER_PACKET);
			break;
		case OPT_TRANSPORT:
			if (cli_parse_transport(optarg, &o->sess))
				return bad_value(idx, "auto, fabric or verbs");
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
		case OPT_STILL:
			o->still = true;
			break;
		case OPT_MEMORY:
			if (guest_parse_mem(optarg, &o->guest.mem))
				return bad_value(idx, "anon, memfd or hugetlb");
			break;
		case OPT_VCPUS:
			if (cli_parse_count(optarg, GUEST_MAX_VCPUS,
					    &o->guest.vcpus))
				return bad_value(idx, "1..%d", GUEST_MAX_VCPUS);
			break;
		case OPT_RATE:
			if (!strcmp(optarg, "max"))
				o->guest.rate_mbs = -1;
			else if (parse_double(optarg, 0, 1e7, &o->guest.rate_mbs))
				return bad_value(idx, "MB/s, 0..10000000, or max");
			break;
		case OPT_PATTERN:
			if (guest_parse_pattern(optarg, &o->guest.pattern))
				return bad_value(idx, "random, hot or seq");
			break;
		case OPT_HOT:
			if (cli_parse_count(optarg, 100, &o->guest.hot_percent))
				return bad_value(idx, "1..100");
			break;
		case OPT_WARMUP:
			if (parse_double(optarg, 0, 3600, &o->warmup_s))
				return bad_value(idx, "seconds, 0..3600");
			break;
		case OPT_RESUME:
			if (cli_parse_ull(optarg, 1ull << 40, &v))
				return bad_value(idx, "a step count");
			o->resume_steps = v;
			break;
		case OPT_DOWNTIME: {
			unsigned ms;

			if (cli_parse_count(optarg, 3600000, &ms))
				return bad_value(idx, "milliseconds, 1..3600000");
			o->live.downtime_limit_ms = ms;
			break;
		}
		case OPT_ROUNDS:
			if (cli_parse_count(optarg, 100000, &o->live.max_rounds))
				return bad_value(idx, "1..100000");
			break;
		case OPT_NO_AC:
			o->live.auto_converge = false;
			break;
		case OPT_THR_INIT:
			if (cli_parse_count(optarg, 99, &o->live.throttle_initial))
				return bad_value(idx, "1..99");
			break;
		case OPT_THR_INC:
			if (cli_parse_count(optarg, 99,
					    &o->live.throttle_increment))
				return bad_value(idx, "1..99");
			break;
		case OPT_THR_MAX:
			if (cli_parse_count(optarg, 99, &o->live.throttle_max))
				return bad_value(idx, "1..99");
			break;
		case OPT_FORCE:
			o->live.force_finish = true;
			break;
		case OPT_TRACKING:
			if (dirty_parse_mode(optarg, &o->live.dirty_mode))
				return bad_value(idx, "auto, async or sync");
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default: /* the shared --reg-* and --numa options, or a mistake */
			if (cli_reg_numa_option(c, optarg, &o->sess) == 0)
				break;
			fprintf(stderr, "see '%s --help'\n", PROG);
			return -1;
		}
	}
	if (optind < argc) {
		fail_msg("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (o->guest.mem == GUEST_HUGETLB) {
		if (o->still) {
			fail_msg("--memory is for live migration, not --still");
			return -1;
		}
		if (o->page_size_set && o->sess.page_size != (2u << 20)) {
			fail_msg("--memory hugetlb has 2 MiB pages: drop "
				 "--page-size or say --page-size 2m");
			return -1;
		}
		o->sess.page_size = 2u << 20;
	}
	if (o->live.throttle_initial > o->live.throttle_max) {
		fail_msg("--throttle-initial %u is above --max-throttle %u",
			 o->live.throttle_initial, o->live.throttle_max);
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
	o->guest.size = o->size;
	o->guest.page_size = o->sess.page_size;
	o->guest.seed = o->seed;
	o->guest.fill_percent = 100 - o->zero_percent;
	if (!o->still) {
		char why[256];

		if (guest_config_check(&o->guest, why, sizeof(why))) {
			fail_msg("%s", why);
			return -1;
		}
	}
	{
		/* Copies of the RAM this command holds at once: each side one;
		 * a live destination also runs the never-migrated replay. */
		unsigned copies = o->role == ROLE_DEMO ? (o->still ? 2 : 3) :
				  o->role == ROLE_DEST && !o->still ? 2 : 1;
		double have = (double)sysconf(_SC_PHYS_PAGES) *
			      (double)sysconf(_SC_PAGESIZE);
		char sb[32], nb[32], hb[32];

		if (have > 0 && (double)o->size * copies > have) {
			human(o->size, sb);
			human((uint64_t)((double)o->size * copies), nb);
			human((uint64_t)have, hb);
			if (copies == 1)
				fail_msg("--size %s is more than this machine's "
					 "RAM, %s", sb, hb);
			else
				fail_msg("--size %s: this needs %u copies of the "
					 "guest RAM at once (%s), %s, and this "
					 "machine has %s of RAM", sb, copies,
					 copies == 3 ? "source, destination and "
					 "the destination's replay" :
					 o->role == ROLE_DEST ? "the received RAM "
					 "and the replay" : "source and destination",
					 nb, hb);
			return -1;
		}
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

/* The library's message, and whether a signal cancelled the call, in
 * @buf; returns @buf. */
static char *lib_error_text(char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", rmig_last_error(),
		 sig_caught ? " (interrupted by a signal)" : "");
	return buf;
}

/* A library call failed with @ret: the library's message (and whether a
 * signal cancelled it), else strerror(-ret). */
static void side_lib_fail(struct side *x, int ret)
{
	x->r.error = lib_error_text(x->errbuf, sizeof(x->errbuf));
	if (!x->errbuf[0])
		side_fail(x, "%s", strerror(-ret));
}

/* True, with a hint in @buf, when rmig_src_connect()'s @ret says nothing
 * listened there (as opposed to a destination that rejected us). */
static bool connect_refused(int ret, char *buf, size_t len)
{
	if (ret != -ECONNREFUSED || strstr(rmig_last_error(), "reject"))
		return false;
	snprintf(buf, len, "%s (is 'rmig-migrate dest --listen ...' running "
		 "there?  Start it first.)", rmig_last_error());
	return true;
}

/* Hand the bound address @addr to the source through --status-fd (the
 * demo) when there is one; false, with why in @err, when it cannot. */
static bool pass_address(const struct opts *o, const char *addr, char *err,
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
	if (connect_refused(ret, x.errbuf, sizeof(x.errbuf))) {
		x.r.error = x.errbuf;
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
	if (!pass_address(o, addr, x.errbuf, sizeof(x.errbuf))) {
		x.r.error = x.errbuf;
		goto out;
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
/* Live migration: a running guest                                     */

static bool g_tty; /* progress line updated in place */
static bool g_tty_line; /* a progress line is open */

static void progress_end(void)
{
	if (g_tty_line) {
		putchar('\n');
		fflush(stdout);
		g_tty_line = false;
	}
}

static void progress_cb(const struct live_progress *p, void *arg)
{
	char exp[32];

	(void)arg;
	if (g_json)
		return;
	if (!strcmp(p->phase, "stop-and-copy")) {
		progress_end();
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

/* Sleep @s seconds unless a signal asks to stop; false if one did. */
static bool nap(double s)
{
	double end = cli_now_s() + s;

	while (!sig_caught && cli_now_s() < end)
		usleep(20000);
	return !sig_caught;
}

static void json_kv_str(const char *key, const char *v)
{
	printf(",\"%s\":", key);
	json_str(v);
}

static void live_src_report(const struct opts *o, const struct live_result *r,
			    const char *error, int intact, uint64_t ran_on,
			    uint64_t sum,
			    uint64_t ref, double prepare_s, double connect_s)
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
		       r->pause_ms, r->harvest_ms, r->transfer_ms, r->expected_ms, r->rounds, r->converged ? "true" : "false",
		       r->final_pages, r->bytes, r->normal_pages, r->zero_pages,
		       r->gbps, mode, r->faults, r->throttle, r->st.channels,
		       prepare_s, connect_s);
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
	if (r->rounds) {
		char hb[32];

		if (!error)
			say("migrated a running %s guest in %.3f s: %u rounds, "
			    "downtime %.1f ms (limit %.0f ms, %s), %.3f GB/s\n",
			    human(o->size, hb), r->total_s, r->rounds,
			    r->downtime_ms, o->live.downtime_limit_ms,
			    r->converged ? "converged" :
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

static int run_live_source(const struct opts *o, const char *address)
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
	ret = live_source(&g, s, block, &lp, &lr);
	if (ret < 0) {
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

static int run_live_dest(const struct opts *o)
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
	int timeout_ms = o->timeout_s < 0 ? -1 : o->timeout_s * 1000;

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
	ret = block = side_open(&x, o->address, NULL, &d);
	if (ret < 0)
		goto lib_fail;
	ret = cli_dest_listen(d, addr, sizeof(addr));
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
		       error ? "false" : "true", o->size, dr.pages, dr.seconds,
		       dr.downtime_ms, dr.verified ? "true" : "false",
		       dr.mismatched_pages, dr.first_mismatch, dr.resume_steps,
		       dr.checksum, dr.replay_checksum, dr.st.normal_pages,
		       dr.st.zero_pages, dr.st.zero_pages_cleared);
		if (error)
			json_kv_str("error", error);
		printf("}\n");
	} else {
		if (error)
			say("FAILED: %s; the received memory is discarded\n",
			    error);
		if (dr.seconds > 0)
			say("received %" PRIu64 " normal + %" PRIu64 " zero pages "
			    "in %.3f s from the connection to the final sync "
			    "(the source's warm-up included)%s\n",
			    dr.st.normal_pages, dr.st.zero_pages, dr.seconds,
			    dr.downtime_ms >= 0 ? "" :
			    " (downtime: see the source)");
		if (dr.downtime_ms >= 0)
			say("downtime seen here: %.1f ms from the source's pause "
			    "to this side having every page and the vCPU state\n",
			    dr.downtime_ms);
		if (dr.verified)
			say("verified: all %" PRIu64 " page hashes equal the "
			    "source's final image\n", dr.pages);
		if (dr.checksum || dr.replay_checksum)
			say("resumed the guest here for %" PRIu64 " steps per "
			    "vCPU: checksum 0x%016" PRIx64 ", never-migrated "
			    "replay 0x%016" PRIx64 ": %s\n", dr.resume_steps,
			    dr.checksum, dr.replay_checksum,
			    dr.checksum == dr.replay_checksum ? "equal" :
			    "DIFFERENT");
	}
	fflush(stdout);
	set_cancel_target(NULL, NULL);
	if (d)
		rmig_dest_destroy(d);
	guest_destroy(&g);
	return error ? EXIT_FAIL : EXIT_OK;
}

static int source_main(const struct opts *o, const char *address)
{
	return o->still ? run_source(o, address) : run_live_source(o, address);
}

static int dest_main(const struct opts *o)
{
	return o->still ? run_dest(o) : run_live_dest(o);
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
	return source_main(o, addr);
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
	if (!o->sess.channels)
		o->sess.channels = 4;
	if (o->timeout_s < 0)
		o->timeout_s = DEMO_ACCEPT_TIMEOUT_S;
	format_uuid(o->uuid, uuid);
	say("rmig %s: %s migration of %s, %u channels, page size %zu, %u%% "
	    "zero pages, seed %" PRIu64 ", transport %s%s%s, session %s; "
	    "destination and source are two processes on 127.0.0.1\n",
	    rmig_version(), o->still ? "still-image" : "live",
	    human(o->size, hb), o->sess.channels, o->sess.page_size,
	    o->zero_percent, o->seed,
	    o->sess.transport == RMIG_TRANSPORT_FABRIC ? "fabric" :
	    o->sess.transport == RMIG_TRANSPORT_VERBS ? "verbs" : "auto",
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

/* SPDX-License-Identifier: MIT */
/*
 * rmig-migrate: the command line.  --help, the options and the checks
 * that refuse a run before anything is mapped.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate.h"

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

void format_uuid(const uint8_t u[16], char out[37])
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
"  dest and source need the same --auth-key-file (or both --insecure);\n"
"  demo makes a random secret for its two processes.\n"
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
"  --postcopy              post-copy: after the pre-copy rounds (see\n"
"                          --postcopy-after) pause the vCPUs, send their\n"
"                          state and the list of pages the destination\n"
"                          lacks, and resume the guest there at once; the\n"
"                          destination reads those pages from this RAM by\n"
"                          RDMA READ (faults first, the rest in the\n"
"                          background) while its guest runs (anon:\n"
"                          userfaultfd MISSING faults, 4 KiB pages; memfd,\n"
"                          hugetlb: MINOR faults).  A transport without\n"
"                          RDMA READ falls back to stop-and-copy\n"
"  --postcopy-after N      pre-copy rounds before the switch, 0..100000\n"
"                          (default 1: round 1 sends every page; 0: none,\n"
"                          every page is pulled); implies --postcopy\n"
"  --postcopy-recover-timeout SECONDS  both sides: a session lost after\n"
"                          the switch is resumed by a new one (same secret,\n"
"                          UUID derived from the first); keep trying this\n"
"                          long after each loss, 0..86400 (default 120),\n"
"                          then give up: the guest is lost (a signal gives\n"
"                          up at once)\n"
"  --still                 the still-image copy: migrate a still memory\n"
"                          image and compare it byte for byte (no guest)\n"
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
CLI_SESSION_HELP
"  --uuid UUID             session UUID, 32 hex digits (dashes allowed);\n"
"                          source default: random; dest default: adopt the\n"
"                          first source's; demo: random, given to both\n"
"  --timeout SECONDS       dest: how long to wait for a source (default\n"
"                          %d; demo: %d); once connected, --idle-timeout\n"
"                          bounds every wait\n"
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
"\n",
		GUEST_MAX_VCPUS, RMIG_MAX_CHANNELS, RMIG_MAX_PAGES_PER_PACKET,
		DEST_ACCEPT_TIMEOUT_S, DEMO_ACCEPT_TIMEOUT_S);
	/* The library's tunables, from its own table (rmig(7) too). */
	(void)cli_print_params(f);
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
	OPT_POSTCOPY,
	OPT_POSTCOPY_AFTER,
	OPT_POSTCOPY_RECOVER,
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
	{ "postcopy", no_argument, NULL, OPT_POSTCOPY },
	{ "postcopy-after", required_argument, NULL, OPT_POSTCOPY_AFTER },
	{ "postcopy-recover-timeout", required_argument, NULL,
	  OPT_POSTCOPY_RECOVER },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	CLI_SESSION_LONGOPTS,
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

int parse_args(int argc, char **argv, struct opts *o)
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
		.recover_timeout_s = 120,
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
		case OPT_POSTCOPY:
			o->live.postcopy = true;
			break;
		case OPT_POSTCOPY_AFTER:
			if (cli_parse_unsigned(optarg, 100000,
					       &o->live.postcopy_after))
				return bad_value(idx, "0..100000");
			o->live.postcopy = true;
			break;
		case OPT_POSTCOPY_RECOVER:
			if (parse_double(optarg, 0, 86400,
					 &o->recover_timeout_s))
				return bad_value(idx, "0..86400 seconds");
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default: /* the shared --reg-* and --numa options, or a mistake */
			if (cli_session_option(c, optarg, &o->sess) == 0)
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
	if (o->live.postcopy && o->still) {
		fail_msg("--postcopy is for live migration, not --still");
		return -1;
	}
	if (o->live.postcopy && o->guest.mem == GUEST_ANON &&
	    o->sess.page_size != 4096) {
		fail_msg("--postcopy into anonymous memory needs 4 KiB pages "
			 "(--page-size 4k; 2 MiB pages: --memory hugetlb)");
		return -1;
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
	if (o->role != ROLE_DEMO &&
	    cli_check_auth(o->role == ROLE_DEST ? PROG " dest" :
			   PROG " source", &o->sess))
		return -1;
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

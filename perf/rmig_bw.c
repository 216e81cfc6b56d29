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
 * server times the intervals between the syncs it completes.
 *
 * The client tells the server its iteration counts in a device-state blob
 * sent ahead of a start sync, so only size and page size must match.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include <rmig/rmig.h>

#define PROG "rmig_bw"
#define DEFAULT_PORT 18515
#define SETTINGS_IDSTR "rmig_bw/settings"
#define QUEUE_CHUNK 4096
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
	unsigned channels;  /* 0: library default / adopt */
	size_t page_size;
	unsigned pages_per_packet;
	enum rmig_transport transport;
	bool transport_set;
	const char *fabric_provider;
	int timeout_s;
};

struct bw_result {
	unsigned iters;
	double secs[MAX_ITERS];
	uint64_t packets;   /* over the timed iterations */
	double total_s;
	double peak_mbps;
	double avg_mbps;
	double mpps;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t peak_rss(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "VmHWM: %" SCNu64 " kB", &kb) == 1)
				break;
		fclose(f);
	}
	if (!kb) {
		struct rusage ru;

		if (!getrusage(RUSAGE_SELF, &ru))
			kb = (uint64_t)ru.ru_maxrss;
	}
	return kb * 1024;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	double unit = 1;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v <= 0)
		return -1;
	if (!strcasecmp(end, "g") || !strcasecmp(end, "gib"))
		unit = 1024.0 * 1024.0 * 1024.0;
	else if (!strcasecmp(end, "m") || !strcasecmp(end, "mib"))
		unit = 1024.0 * 1024.0;
	else if (!strcasecmp(end, "k") || !strcasecmp(end, "kib"))
		unit = 1024.0;
	else if (*end)
		return -1;
	v *= unit;
	if (v > (double)(1ull << 46))
		return -1;
	*out = (uint64_t)(v + 0.5);
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s == '-' || !*s)
		return -1;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage:\n"
"  " PROG " [options]         server (destination): waits for one client\n"
"  " PROG " [options] HOST    client (source): connects to HOST\n"
"\n"
"Migrates SIZE bytes of non-zero pages per iteration (queue every page, then\n"
"rmig_src_sync()), after warm-up iterations; prints BW peak and average in\n"
"MB/sec (10^6 bytes/s) and the page-packet rate, as a table row and as JSON.\n"
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
"      --transport auto|fabric\n"
"      --fabric-provider NAME  libfabric provider (default tcp)\n"
"  -t, --timeout SECONDS     server: wait this long for a client (default:\n"
"                            forever)\n"
"  -h, --help\n",
		DEFAULT_PORT, MAX_ITERS, RMIG_MAX_CHANNELS);
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct bw_opts){
		.bind = "127.0.0.1",
		.port = DEFAULT_PORT,
		.size = 2ull << 30,
		.iters = 5,
		.warmup = 1,
		.page_size = 4096,
		.timeout_s = -1,
	};
	while ((c = getopt_long(argc, argv, "p:b:s:n:w:q:P:t:h", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_uint(optarg, 65535, &o->port))
				goto bad;
			break;
		case 'b':
			o->bind = optarg;
			break;
		case 's':
			if (parse_size(optarg, &o->size))
				goto bad;
			break;
		case 'n':
			if (parse_uint(optarg, MAX_ITERS, &o->iters) || !o->iters)
				goto bad;
			break;
		case 'w':
			if (parse_uint(optarg, MAX_ITERS, &o->warmup))
				goto bad;
			break;
		case 'q':
			if (parse_uint(optarg, RMIG_MAX_CHANNELS, &o->channels) ||
			    !o->channels)
				goto bad;
			break;
		case 'S':
			if (!strcasecmp(optarg, "4k"))
				o->page_size = 4096;
			else if (!strcasecmp(optarg, "2m"))
				o->page_size = 2u << 20;
			else
				goto bad;
			break;
		case 'P':
			if (parse_uint(optarg, RMIG_MAX_PAGES_PER_PACKET,
				       &o->pages_per_packet) ||
			    !o->pages_per_packet)
				goto bad;
			break;
		case 'T':
			if (!strcmp(optarg, "auto"))
				o->transport = RMIG_TRANSPORT_AUTO;
			else if (!strcmp(optarg, "fabric"))
				o->transport = RMIG_TRANSPORT_FABRIC;
			else
				goto bad;
			o->transport_set = true;
			break;
		case 'F':
			o->fabric_provider = optarg;
			break;
		case 't': {
			unsigned t;

			if (parse_uint(optarg, 1000000, &t))
				goto bad;
			o->timeout_s = (int)t;
			break;
		}
		case 'h':
			usage(stdout);
			exit(0);
		default:
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
	if (!o->size || o->size % o->page_size) {
		fprintf(stderr, "%s: --size %" PRIu64 " is not a multiple of "
			"the page size %zu\n", PROG, o->size, o->page_size);
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "%s: bad value '%s' for -%c (see --help)\n", PROG,
		optarg, c == 'S' ? 's' : c);
	return -1;
}

static void make_config(const struct bw_opts *o, struct rmig_config *cfg,
			const char *address)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->field_mask = RMIG_CFG_ADDRESS | RMIG_CFG_PAGE_SIZE;
	cfg->address = address;
	cfg->page_size = o->page_size;
	if (o->transport_set) {
		cfg->field_mask |= RMIG_CFG_TRANSPORT;
		cfg->transport = o->transport;
	}
	if (o->fabric_provider) {
		cfg->field_mask |= RMIG_CFG_FABRIC_PROVIDER;
		cfg->fabric_provider = o->fabric_provider;
	}
	if (o->channels) {
		cfg->field_mask |= RMIG_CFG_CHANNELS;
		cfg->channels = o->channels;
	}
	if (o->pages_per_packet) {
		cfg->field_mask |= RMIG_CFG_PAGES_PER_PACKET;
		cfg->pages_per_packet = o->pages_per_packet;
	}
}

static void *map_ram(uint64_t size, size_t page_size, void **base,
		     size_t *base_len)
{
	size_t len = (size_t)size + (page_size > 4096 ? page_size : 0);
	uint8_t *p;
	uint8_t *aligned;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)(((uintptr_t)p + page_size - 1) &
			      ~(uintptr_t)(page_size - 1));
	if (page_size > 4096)
		madvise(aligned, (size_t)size, MADV_HUGEPAGE);
	*base = p;
	*base_len = len;
	return aligned;
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
	       o->transport == RMIG_TRANSPORT_FABRIC ? "fabric" :
	       "auto (verbs if present, else libfabric tcp)",
	       o->fabric_provider ? ", provider " : "",
	       o->fabric_provider ? o->fabric_provider : "");
	if (o->channels)
		printf(" Channels        : %u\n", o->channels);
	else
		printf(" Channels        : %s\n", client ? "4 (library default)" :
		       "as the client announces");
	printf(" Page size       : %zu B, %u pages/packet%s\n", o->page_size,
	       o->pages_per_packet ? o->pages_per_packet : 128,
	       o->pages_per_packet ? "" : " (library default)");
	printf(" Buffer          : %" PRIu64 " bytes (%.1f MiB) of non-zero "
	       "pages, faulted in before the clock starts\n", o->size,
	       (double)o->size / 1048576.0);
	if (client)
		printf(" Iterations      : %u timed after %u warm-up; one "
		       "iteration = every page queued + rmig_src_sync()\n",
		       o->iters, o->warmup);
	else
		printf(" Iterations      : as the client announces; timed "
		       "between completed syncs\n");
	printf(" Units           : MB = 10^6 bytes; MsgRate = page packets, "
	       "10^6/s\n");
	printf(RULE "\n");
	fflush(stdout);
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
	uint64_t rss = peak_rss();
	uint64_t over = rss > o->size ? rss - o->size : 0;

	printf(" %-14s %-13s %-18s %-20s %s\n", "#bytes", "#iterations",
	       "BW peak[MB/sec]", "BW average[MB/sec]", "MsgRate[Mpps]");
	printf(" %-14" PRIu64 " %-13u %-18.2f %-20.2f %.6f\n", o->size,
	       r->iters, r->peak_mbps, r->avg_mbps, r->mpps);
	printf(RULE "\n");
	printf(" memory: peak RSS %.1f MiB - RAM block %.1f MiB = %.1f MiB "
	       "overhead (%s, %u channels)\n", (double)rss / 1048576.0,
	       (double)o->size / 1048576.0, (double)over / 1048576.0,
	       client ? "source" : "destination", channels);
	printf("{\"test\":\"rmig_bw\",\"role\":\"%s\",\"channels\":%u,"
	       "\"page_size\":%zu,\"pages_per_packet\":%u,\"bytes\":%" PRIu64
	       ",\"iterations\":%u,\"warmup\":%u,\"bw_peak_mb_per_sec\":%.3f,"
	       "\"bw_average_mb_per_sec\":%.3f,\"msg_rate_mpps\":%.6f,"
	       "\"packets\":%" PRIu64 ",\"seconds\":%.6f,\"iteration_seconds\":[",
	       client ? "client" : "server", channels, o->page_size,
	       o->pages_per_packet ? o->pages_per_packet : 128, o->size,
	       r->iters, warmup, r->peak_mbps, r->avg_mbps, r->mpps,
	       r->packets, r->total_s);
	for (unsigned i = 0; i < r->iters; i++)
		printf("%s%.6f", i ? "," : "", r->secs[i]);
	printf("],\"prefaulted\":true,\"prepare_seconds\":%.3f,"
	       "\"peak_rss_bytes\":%" PRIu64 ",\"ram_bytes\":%" PRIu64
	       ",\"overhead_bytes\":%" PRIu64 "}\n", prepare_s, rss, o->size,
	       over);
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
	int ret;

	for (uint64_t p = 0; p < pages;) {
		size_t n = 0;

		while (n < QUEUE_CHUNK && p < pages)
			offs[n++] = p++ * page_size;
		ret = rmig_src_queue_pages(s, block, offs, n);
		if (ret < 0)
			return ret;
	}
	return rmig_src_sync(s);
}

static int run_client(const struct bw_opts *o)
{
	static struct bw_result r;
	struct rmig_config cfg;
	struct rmig_stats st = { .size = sizeof(st) };
	rmig_src *s = NULL;
	void *base = NULL;
	size_t base_len = 0;
	uint8_t *ram;
	uint64_t *offs = NULL;
	uint64_t pages = o->size / o->page_size;
	char addr[300];
	char settings[128];
	const char *what = "";
	double t0, prepare_s;
	int block, ret = -ENOMEM;

	if (strchr(o->host, ':') && o->host[0] != '[')
		snprintf(addr, sizeof(addr), "[%s]:%u", o->host, o->port);
	else
		snprintf(addr, sizeof(addr), "%s:%u", o->host, o->port);
	banner(o, true, addr);

	t0 = now_s();
	ram = map_ram(o->size, o->page_size, &base, &base_len);
	offs = malloc(QUEUE_CHUNK * sizeof(*offs));
	if (!ram || !offs) {
		fprintf(stderr, "%s: cannot allocate %" PRIu64 " bytes\n", PROG,
			o->size);
		goto out;
	}
	fill(ram, o->size, o->page_size);
	prepare_s = now_s() - t0;
	printf(" memory faulted in and filled in %.2f s, before the clock "
	       "starts\n", prepare_s);

	make_config(o, &cfg, addr);
	what = "create";
	ret = rmig_src_create(&cfg, &s);
	if (ret < 0)
		goto fail;
	what = "add_block";
	block = rmig_src_add_block(s, "ram", ram, (size_t)o->size);
	if (block < 0) {
		ret = block;
		goto fail;
	}
	what = "connect";
	ret = rmig_src_connect(s);
	if (ret < 0)
		goto fail;

	/* Settings for the server, then a start sync it times from. */
	snprintf(settings, sizeof(settings), "iters=%u warmup=%u size=%" PRIu64
		 " page_size=%zu", o->iters, o->warmup, o->size, o->page_size);
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
		ret = one_pass(s, block, pages, o->page_size, offs);
		if (ret < 0)
			goto fail;
	}
	what = "timed iteration";
	r.iters = o->iters;
	r.packets = src_packets(s);
	for (unsigned i = 0; i < o->iters; i++) {
		t0 = now_s();
		ret = one_pass(s, block, pages, o->page_size, offs);
		if (ret < 0)
			goto fail;
		r.secs[i] = now_s() - t0;
	}
	r.packets = src_packets(s) - r.packets;
	what = "finish";
	ret = rmig_src_finish(s);
	if (ret < 0)
		goto fail;
	summarise(&r, o->size);
	if (rmig_src_get_stats(s, &st))
		st.channels = o->channels;
	print_row(o, true, &r, st.channels, o->warmup, prepare_s);
	ret = 0;
	goto out;
fail:
	fprintf(stderr, "%s: client: %s failed: %s (%s)\n", PROG, what,
		rmig_last_error(), strerror(-ret));
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
	struct rmig_config cfg;
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

	if (strchr(o->bind, ':') && o->bind[0] != '[')
		snprintf(addr, sizeof(addr), "[%s]:%u", o->bind, o->port);
	else
		snprintf(addr, sizeof(addr), "%s:%u", o->bind, o->port);

	t0 = now_s();
	ram = map_ram(o->size, o->page_size, &base, &base_len);
	if (!ram) {
		fprintf(stderr, "%s: cannot allocate %" PRIu64 " bytes\n", PROG,
			o->size);
		goto out;
	}
	prepare_s = now_s() - t0;

	make_config(o, &cfg, addr);
	what = "create";
	ret = rmig_dest_create(&cfg, &d);
	if (ret < 0)
		goto fail;
	what = "add_block";
	block = rmig_dest_add_block(d, "ram", ram, (size_t)o->size);
	if (block < 0) {
		ret = block;
		goto fail;
	}
	what = "listen";
	ret = rmig_dest_listen(d);
	if (ret < 0)
		goto fail;
	ret = rmig_dest_get_address(d, bound, sizeof(bound));
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
		stamp[nsync] = now_s();
		pk[nsync] = dest_packets(d);
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
			if (csize != o->size || cpage != o->page_size) {
				fprintf(stderr, "%s: the client migrates %llu "
					"bytes of %zu-byte pages, this server "
					"has %" PRIu64 " of %zu: use the same "
					"--size and --page-size\n", PROG, csize,
					cpage, o->size, o->page_size);
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
	summarise(&r, o->size);
	if (rmig_dest_get_stats(d, &st))
		st.channels = o->channels;
	bad = spot_check(ram, o->size, o->page_size, &first_bad);
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
	fprintf(stderr, "%s: server: %s failed: %s (%s)\n", PROG, what,
		rmig_last_error(), strerror(-ret));
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
	return o.host ? run_client(&o) : run_server(&o);
}

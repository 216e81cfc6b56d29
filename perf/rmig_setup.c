/* SPDX-License-Identifier: MIT */
/*
 * rmig_setup - where a session's setup time goes, with QEMU's sequence
 * and block table (integrations/qemu, migration/multifd-rmig.c): the
 * destination creates, adds ~9 blocks (one of 1 GiB, the rest small, like
 * a pc guest's pc.ram, ROMs and vram), listens and accepts on a thread of
 * its own (timeout -1, long before the source comes); the source creates,
 * adds the same blocks and connects.  Memory is faulted in once, before
 * anything is timed, as a running guest's is.  Over libfabric tcp on
 * 127.0.0.1, authenticated (or -i insecure), for each channel count.
 * Then, on the connected pair, the cost of rmig_src_sync() per round: an
 * empty round, and a round of P dirty pages spread over pc.ram, with the
 * destination's thread in rmig_dest_wait_sync() as QEMU's is.  Prints the
 * median (and minimum) of each phase on each side.  Figures only.
 *
 *   rmig_setup [-c CHANNELS,...] [-r ROUNDS] [-m RAM_MIB] [-p PAGES]
 *              [-s SYNCS] [-i] [-v] [-P]
 *
 * Defaults: channels 1,2,4; 5 rounds; 1024 MiB; 256 pages; 20 syncs.
 * -v prints the library's log (debug level) timed from the connect.
 * -P calls rmig_preload() half a second before the first session (as a
 * hypervisor would when migration over rmig is turned on).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <rmig/rmig.h>

#include "perf_fabric.h"

static const uint8_t secret[32] = "rmig_setup benchmark secret key";

/* QEMU 10.0's pc machine with std vga and a NIC, as guest-migrate.sh
 * boots it (sizes of max_length, what the glue registers). */
static struct blk {
	const char *name;
	size_t len;
	uint8_t *src, *dst;
} blocks[] = {
	{ "pc.ram", 0, NULL, NULL },
	{ "pc.bios", 256 << 10, NULL, NULL },
	{ "pc.rom", 128 << 10, NULL, NULL },
	{ "vga.vram", 16 << 20, NULL, NULL },
	{ "vga.rom", 64 << 10, NULL, NULL },
	{ "/rom@etc/acpi/tables", 2 << 20, NULL, NULL },
	{ "/rom@etc/table-loader", 64 << 10, NULL, NULL },
	{ "/rom@etc/acpi/rsdp", 4 << 10, NULL, NULL },
	{ "e1000.rom", 256 << 10, NULL, NULL },
};
#define NBLK (sizeof(blocks) / sizeof(blocks[0]))

enum {
	D_CREATE, D_ADD, D_LISTEN, D_ACCEPT, /* accept: from src connect */
	S_CREATE, S_ADD, S_CONNECT, NPHASE
};
static const char *const phase_name[NPHASE] = {
	"dest create", "dest add_block x9", "dest listen",
	"dest accept (from connect)", "src create", "src add_block x9",
	"src connect",
};

struct dthread {
	rmig_dest *d;
	int ret;
	double done_ms;
	unsigned syncs;
};

static void *dest_main(void *arg)
{
	struct dthread *t = arg;
	int r;

	t->ret = rmig_dest_accept(t->d, -1);
	t->done_ms = perf_now_ms();
	if (t->ret)
		return NULL;
	while ((r = rmig_dest_wait_sync(t->d, 60000)) == 0)
		t->syncs++;
	t->ret = r == 1 ? rmig_dest_finish(t->d) : r;
	return NULL;
}

static double t_origin; /* -v: the library's log, timed from here */

static void log_errors(enum rmig_log_level level, const char *msg, void *arg)
{
	(void)arg;
	if (level == RMIG_LOG_ERROR)
		fprintf(stderr, "rmig: %s\n", msg);
}

static void log_timed(enum rmig_log_level level, const char *msg, void *arg)
{
	(void)level;
	(void)arg;
	fprintf(stderr, "%9.3f ms  %s\n", perf_now_ms() - t_origin, msg);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One session: times of each phase into @t, sync round times into
 * @empty and @dirty (@nsync each). */
static int one(unsigned ch, int insecure, unsigned pages, unsigned nsync,
	       double *t, double *empty, double *dirty)
{
	struct rmig_config c;
	struct dthread dt = { 0 };
	rmig_src *s = NULL;
	char addr[128];
	pthread_t th;
	double t0, tc = 0;
	int ret = -1;

	perf_fabric_config(&c, "127.0.0.1:0", ch, insecure ? NULL : secret,
			   sizeof(secret));
	t0 = perf_now_ms();
	if (rmig_dest_create(&c, &dt.d))
		goto fail;
	t[D_CREATE] = perf_now_ms() - t0;
	t0 = perf_now_ms();
	for (unsigned i = 0; i < NBLK; i++)
		if (rmig_dest_add_block(dt.d, blocks[i].name, blocks[i].dst,
					blocks[i].len) < 0)
			goto fail;
	t[D_ADD] = perf_now_ms() - t0;
	t0 = perf_now_ms();
	if (rmig_dest_listen(dt.d) ||
	    rmig_dest_get_address(dt.d, addr, sizeof(addr)))
		goto fail;
	t[D_LISTEN] = perf_now_ms() - t0;
	pthread_create(&th, NULL, dest_main, &dt);
	perf_fabric_config(&c, addr, ch, insecure ? NULL : secret,
			   sizeof(secret));
	t0 = perf_now_ms();
	if (rmig_src_create(&c, &s))
		goto fail_join;
	t[S_CREATE] = perf_now_ms() - t0;
	t0 = perf_now_ms();
	for (unsigned i = 0; i < NBLK; i++)
		if (rmig_src_add_block(s, blocks[i].name, blocks[i].src,
				       blocks[i].len) < 0)
			goto fail_join;
	t[S_ADD] = perf_now_ms() - t0;
	tc = perf_now_ms();
	t_origin = tc;
	if (rmig_src_connect(s))
		goto fail_join;
	t[S_CONNECT] = perf_now_ms() - tc;
	for (unsigned r = 0; r < nsync; r++) {
		t0 = perf_now_ms();
		if (rmig_src_sync(s))
			goto fail_join;
		empty[r] = perf_now_ms() - t0;
		/* A dirtying guest's round: pages spread over pc.ram, each
		 * once (a new page per round). */
		for (unsigned p = 0; p < pages; p++) {
			uint64_t pg = ((uint64_t)p * 2654435761u + r * 7919u) %
				      (blocks[0].len / 4096);

			blocks[0].src[pg * 4096] = (uint8_t)(r + 1);
			int q = rmig_src_queue_page(s, 0, pg * 4096);

			if (q && q != -EBUSY) /* -EBUSY: queued already */
				goto fail_join;
		}
		t0 = perf_now_ms();
		if (rmig_src_sync(s))
			goto fail_join;
		dirty[r] = perf_now_ms() - t0;
	}
	if (rmig_src_finish(s))
		goto fail_join;
	ret = 0;
fail_join:
	if (ret)
		fprintf(stderr, "source: %s\n", rmig_last_error());
	if (ret)
		rmig_dest_cancel(dt.d);
	pthread_join(th, NULL);
	if (!ret && dt.ret) {
		fprintf(stderr, "destination: %s\n", rmig_dest_error(dt.d));
		ret = -1;
	}
	if (!ret && dt.syncs != 2 * nsync) {
		fprintf(stderr, "destination saw %u syncs, not %u\n", dt.syncs,
			2 * nsync);
		ret = -1;
	}
	t[D_ACCEPT] = dt.done_ms - tc;
	rmig_src_destroy(s);
	rmig_dest_destroy(dt.d);
	return ret;
fail:
	fprintf(stderr, "destination: %s\n", rmig_last_error());
	rmig_dest_destroy(dt.d);
	return -1;
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0x5a, len); /* faulted in, non-zero */
	return p;
}

int main(int argc, char **argv)
{
	unsigned chans[8] = { 1, 2, 4 }, nch = 3, rounds = 5, pages = 256;
	unsigned nsync = 20, mib = 1024;
	int insecure = 0, verbose = 0, preload = 0, opt;

	while ((opt = getopt(argc, argv, "c:r:m:p:s:ivP")) != -1) {
		char *e = optarg;

		switch (opt) {
		case 'c':
			for (nch = 0; nch < 8 && *e; nch++) {
				chans[nch] = (unsigned)strtoul(e, &e, 10);
				if (*e == ',')
					e++;
			}
			break;
		case 'r': rounds = (unsigned)atoi(optarg); break;
		case 'm': mib = (unsigned)atoi(optarg); break;
		case 'p': pages = (unsigned)atoi(optarg); break;
		case 's': nsync = (unsigned)atoi(optarg); break;
		case 'i': insecure = 1; break;
		case 'v': verbose = 1; break;
		case 'P': preload = 1; break;
		default:
			fprintf(stderr, "usage: rmig_setup [-c CHANNELS,...] "
				"[-r ROUNDS] [-m RAM_MIB] [-p PAGES] "
				"[-s SYNCS] [-i] [-v] [-P]\n");
			return 2;
		}
	}
	if (!rounds || rounds > 1000 || !nsync || nsync > 10000 || !mib ||
	    pages > mib * 256u)
		return 2;
	if (verbose)
		rmig_set_log_handler(log_timed, NULL, RMIG_LOG_DEBUG);
	else
		rmig_set_log_handler(log_errors, NULL, RMIG_LOG_ERROR);
	if (preload) {
		if (rmig_preload(RMIG_TRANSPORT_FABRIC)) {
			fprintf(stderr, "preload: %s\n", rmig_last_error());
			return 1;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 500000000 }, NULL);
	}
	blocks[0].len = (size_t)mib << 20;
	for (unsigned i = 0; i < NBLK; i++)
		if (!(blocks[i].src = map(blocks[i].len)) ||
		    !(blocks[i].dst = map(blocks[i].len))) {
			fprintf(stderr, "out of memory\n");
			return 1;
		}
	printf(" rmig_setup: QEMU's sequence, %u blocks (pc.ram %u MiB), "
	       "libfabric tcp on 127.0.0.1, %s, median (min) of %u rounds; "
	       "sync: median of %u rounds, %u dirty pages a round%s\n",
	       (unsigned)NBLK, mib, insecure ? "insecure" : "authenticated",
	       rounds, nsync, pages, preload ? "; rmig_preload() first" : "");
	for (unsigned k = 0; k < nch; k++) {
		double *t = calloc((size_t)NPHASE * rounds, sizeof(double));
		double *e = calloc((size_t)nsync * rounds, sizeof(double));
		double *d = calloc((size_t)nsync * rounds, sizeof(double));
		double v[NPHASE][1000], cold[NPHASE];

		if (!t || !e || !d)
			return 1;
		/* One apart: the process's first session pays libfabric's
		 * and OpenSSL's first use (in QEMU, the destination's at
		 * migrate-incoming, the source's inside its setup). */
		if (one(chans[k], insecure, pages, 1, cold, e, d))
			return 1;
		for (unsigned r = 0; r < rounds; r++)
			if (one(chans[k], insecure, pages, nsync,
				t + (size_t)r * NPHASE, e + (size_t)r * nsync,
				d + (size_t)r * nsync))
				return 1;
		printf(" %u channel%s\n", chans[k], chans[k] > 1 ? "s" : "");
		for (unsigned ph = 0; ph < NPHASE; ph++) {
			for (unsigned r = 0; r < rounds; r++)
				v[ph][r] = t[(size_t)r * NPHASE + ph];
			qsort(v[ph], rounds, sizeof(double), cmp);
			printf("   %-28s %9.3f ms (%.3f)", phase_name[ph],
			       v[ph][rounds / 2], v[ph][0]);
			if (k == 0)
				printf("  first in process %.3f ms",
				       cold[ph]);
			printf("\n");
		}
		qsort(e, (size_t)nsync * rounds, sizeof(double), cmp);
		qsort(d, (size_t)nsync * rounds, sizeof(double), cmp);
		printf("   %-28s %9.3f ms (%.3f)\n", "src sync, empty round",
		       e[nsync * rounds / 2], e[0]);
		printf("   %-28s %9.3f ms (%.3f)\n", "src sync, dirty round",
		       d[nsync * rounds / 2], d[0]);
		printf("{\"test\":\"rmig_setup\",\"channels\":%u,\"auth\":%d,"
		       "\"src_connect_ms\":%.3f,\"dest_accept_ms\":%.3f,"
		       "\"sync_empty_ms\":%.3f,\"sync_dirty_ms\":%.3f}\n",
		       chans[k], !insecure, v[S_CONNECT][rounds / 2],
		       v[D_ACCEPT][rounds / 2], e[nsync * rounds / 2],
		       d[nsync * rounds / 2]);
		free(t);
		free(e);
		free(d);
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * rmig_auth_connect - what authentication adds to connecting: the time of
 * rmig_src_connect() (every channel connected, authenticated or not,
 * handshaked, ACCEPTs received) with a secret and with the insecure
 * opt-in, alternating, over libfabric tcp on 127.0.0.1, destination and
 * source in this process.  Prints the median and minimum of each and the
 * difference per channel.  Figures only, nothing asserted.
 *
 *   rmig_auth_connect [CHANNELS [ROUNDS]]     default 4 channels, 15 rounds
 *
 * The RAM block is one page, faulted in before timing, so the
 * destination's registration (now inside the source's wait for its
 * ACCEPTs) costs the same in both modes and next to nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rmig/rmig.h>

#include "perf_fabric.h"

static const uint8_t secret[32] = "rmig_auth_connect benchmark key";

struct acc {
	rmig_dest *d;
	int ret;
};

static void *accept_main(void *arg)
{
	struct acc *a = arg;

	a->ret = rmig_dest_accept(a->d, 30000);
	return NULL;
}

/* Sessions are destroyed unfinished (the peer says so) and half of them
 * insecure (each side warns): quiet, but errors. */
static void log_errors(enum rmig_log_level level, const char *msg, void *arg)
{
	(void)arg;
	if (level == RMIG_LOG_ERROR && !strstr(msg, "destroyed while active"))
		fprintf(stderr, "rmig: %s\n", msg);
}

/* One connect of @ch channels; its milliseconds, or < 0. */
static double one(unsigned ch, int auth, void *dram, void *sram)
{
	struct rmig_config c;
	struct acc a = { 0 };
	char addr[128];
	rmig_src *s = NULL;
	double t0, ms = -1;
	pthread_t t;

	perf_fabric_config(&c, "127.0.0.1:0", ch, auth ? secret : NULL,
			   sizeof(secret));
	if (rmig_dest_create(&c, &a.d) || rmig_dest_add_block(a.d, "ram", dram,
							      4096) < 0 ||
	    rmig_dest_listen(a.d) ||
	    rmig_dest_get_address(a.d, addr, sizeof(addr))) {
		fprintf(stderr, "destination: %s\n", rmig_last_error());
		rmig_dest_destroy(a.d);
		return -1;
	}
	pthread_create(&t, NULL, accept_main, &a);
	perf_fabric_config(&c, addr, ch, auth ? secret : NULL,
			   sizeof(secret));
	if (!rmig_src_create(&c, &s) &&
	    rmig_src_add_block(s, "ram", sram, 4096) >= 0) {
		t0 = perf_now_ms();
		if (!rmig_src_connect(s))
			ms = perf_now_ms() - t0;
		else
			fprintf(stderr, "source: %s\n", rmig_last_error());
	}
	if (ms < 0)
		rmig_dest_cancel(a.d);
	pthread_join(t, NULL);
	rmig_src_destroy(s);
	rmig_dest_destroy(a.d);
	return a.ret ? -1 : ms;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	unsigned ch = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
	unsigned rounds = argc > 2 ? (unsigned)atoi(argv[2]) : 15;
	static uint8_t dram[4096] __attribute__((aligned(4096)));
	static uint8_t sram[4096] __attribute__((aligned(4096)));
	double *m[2];

	if (ch < 1 || ch > RMIG_MAX_CHANNELS || rounds < 1 || rounds > 1000) {
		fprintf(stderr, "usage: rmig_auth_connect [CHANNELS 1..64 "
			"[ROUNDS 1..1000]]\n");
		return 2;
	}
	rmig_set_log_handler(log_errors, NULL, RMIG_LOG_ERROR);
	memset(dram, 1, sizeof(dram));
	memset(sram, 2, sizeof(sram));
	m[0] = calloc(rounds, sizeof(double));
	m[1] = calloc(rounds, sizeof(double));
	if (!m[0] || !m[1])
		return 1;
	/* One of each first, untimed: libfabric's and OpenSSL's first use. */
	if (one(ch, 0, dram, sram) < 0 || one(ch, 1, dram, sram) < 0)
		return 1;
	for (unsigned r = 0; r < rounds; r++)
		for (int auth = 0; auth < 2; auth++)
			if ((m[auth][r] = one(ch, auth, dram, sram)) < 0)
				return 1;
	for (int auth = 0; auth < 2; auth++)
		qsort(m[auth], rounds, sizeof(double), cmp);
	printf(" rmig_src_connect, %u channels, libfabric tcp on 127.0.0.1, "
	       "%u rounds alternating (memory faulted in before timing)\n",
	       ch, rounds);
	printf(" %-14s %10s %10s\n", "mode", "median[ms]", "min[ms]");
	printf(" %-14s %10.3f %10.3f\n", "insecure", m[0][rounds / 2], m[0][0]);
	printf(" %-14s %10.3f %10.3f\n", "authenticated", m[1][rounds / 2],
	       m[1][0]);
	printf(" authentication adds %.3f ms per channel (median)\n",
	       (m[1][rounds / 2] - m[0][rounds / 2]) / ch);
	printf("{\"test\":\"rmig_auth_connect\",\"channels\":%u,\"rounds\":%u,"
	       "\"insecure_median_ms\":%.3f,\"auth_median_ms\":%.3f,"
	       "\"added_ms_per_channel\":%.3f}\n", ch, rounds,
	       m[0][rounds / 2], m[1][rounds / 2],
	       (m[1][rounds / 2] - m[0][rounds / 2]) / ch);
	free(m[0]);
	free(m[1]);
	return 0;
}

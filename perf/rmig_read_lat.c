/* SPDX-License-Identifier: MIT */
/*
 * rmig_read_lat - the round trip of one post-copy RDMA READ of one page,
 * through the public API only, on an otherwise idle session: the floor
 * under rmig-migrate's fault service time (perf/bench-postcopy.sh puts the
 * two side by side).
 *
 *   rmig_read_lat [-t fabric|verbs] [-a ADDR] [-c CHANNELS] [-m RAM_MIB]
 *                 [-n READS] [-w WARMUP] [-i]
 *
 * One process, two threads.  The destination (main thread) creates,
 * registers a RAM block of -m MiB, listens on ADDR (port 0: a free port)
 * and accepts; the source (a thread) registers its own block of the same
 * size, connects, queues every page, syncs (the pre-copy round), calls
 * rmig_src_postcopy() and waits in rmig_src_finish().  Once
 * rmig_dest_wait_sync() returned RMIG_SYNC_POSTCOPY_SWITCH, the
 * destination registers one page as its read region and runs -w warm-up
 * reads, then -n timed ones: each one rmig_dest_read_submit() of 4 KiB at a
 * random page with RMIG_READ_URGENT (the flag rmig-migrate's fault thread
 * uses) and rmig_dest_read_wait() for it, from the submit to the wait's
 * return, one at a time, nothing else in flight.  Every read is checked
 * (the source stamps each page with its number).  Then the final sync and
 * a clean finish on both sides.  Memory is faulted in (and the source's
 * filled) before anything is timed.
 *
 * Prints a settings banner, one row (reads, min, p50, p99, mean, max in
 * µs, and how many reads took 10 ms or more) and its JSON twin.  Figures
 * only: the exit status is 0 when every read completed and checked.
 *
 * Defaults: libfabric tcp on 127.0.0.1, 4 channels (rmig-migrate's
 * default; urgent reads go on channel 0), 64 MiB, 10000 reads, 200 warm-up
 * reads, authenticated (-i: insecure).  verbs needs -a, an address of the
 * RDMA device (in the soft-RoCE VM, $RMIG_RXE_ADDR).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <rmig/rmig.h>

#define PROG "rmig_read_lat"
#define PAGE 4096u
#define MAX_READS 10000000u
#define SLOW_NS 10000000u /* counted apart: reads of 10 ms and more */

static const uint8_t secret[32] = "rmig_read_lat benchmark secret";

struct lat_opts {
	enum rmig_transport transport;
	const char *addr;
	unsigned channels;
	uint64_t ram_bytes;
	unsigned reads, warmup;
	int insecure;
};

struct src_thread {
	const struct lat_opts *o;
	char addr[128];
	uint8_t *ram;
	int ret;
	char err[256];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void config(struct rmig_config *c, const struct lat_opts *o,
		   const char *addr)
{
	memset(c, 0, sizeof(*c));
	c->field_mask = RMIG_CFG_ADDRESS | RMIG_CFG_TRANSPORT |
			RMIG_CFG_CHANNELS;
	c->address = addr;
	c->transport = o->transport;
	c->channels = o->channels;
	if (o->insecure) {
		c->field_mask |= RMIG_CFG_INSECURE;
		c->insecure = 1;
	} else {
		c->field_mask |= RMIG_CFG_AUTH_KEY;
		c->auth_key = secret;
		c->auth_key_len = sizeof(secret);
	}
}

/* Faulted in; every page stamped with its number (never a zero page). */
static uint8_t *map_ram(uint64_t len, int stamp)
{
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0x5a, len);
	if (stamp)
		for (uint64_t pg = 0; pg < len / PAGE; pg++)
			memcpy(p + pg * PAGE, &pg, sizeof(pg));
	return p;
}

static void *src_main(void *arg)
{
	struct src_thread *t = arg;
	uint64_t pages = t->o->ram_bytes / PAGE;
	uint64_t *offs = malloc(pages * sizeof(*offs));
	struct rmig_config c;
	rmig_src *s = NULL;
	int ret;

	config(&c, t->o, t->addr);
	ret = offs ? 0 : -ENOMEM;
	if (!ret)
		ret = rmig_src_create(&c, &s);
	if (!ret)
		ret = rmig_src_add_block(s, "ram", t->ram, t->o->ram_bytes);
	if (ret >= 0)
		ret = rmig_src_connect(s);
	for (uint64_t i = 0; !ret && i < pages; i++)
		offs[i] = i * PAGE;
	if (!ret)
		ret = rmig_src_queue_pages(s, 0, offs, pages);
	if (!ret)
		ret = rmig_src_sync(s);
	if (!ret)
		ret = rmig_src_postcopy(s);
	/* Returns once the destination took its last read and released
	 * the final sync. */
	if (!ret)
		ret = rmig_src_finish(s);
	if (ret < 0)
		snprintf(t->err, sizeof(t->err), "%s", ret == -ENOMEM ?
			 "out of memory" : rmig_last_error());
	t->ret = ret;
	rmig_src_destroy(s);
	free(offs);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The reads, on the destination after the switch; @lat gets the timed
 * ones' round trips in ns.  0, or a negative errno with a message. */
static int read_loop(rmig_dest *d, const struct lat_opts *o, uint8_t *land,
		     uint64_t *lat)
{
	uint64_t pages = o->ram_bytes / PAGE;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int ret = rmig_dest_read_region(d, land, PAGE);

	if (ret < 0) {
		fprintf(stderr, PROG ": read_region: %s\n", rmig_last_error());
		return ret;
	}
	for (unsigned i = 0; i < o->warmup + o->reads; i++) {
		struct rmig_read_req req, *done;
		uint64_t pg, got, t0;
		int n;

		/* xorshift64: a page far from the last one */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pg = x % pages;
		req = (struct rmig_read_req){ .block = 0, .offset = pg * PAGE,
					      .len = PAGE, .buf = land };
		t0 = now_ns();
		ret = rmig_dest_read_submit(d, &req, RMIG_READ_URGENT);
		if (ret < 0) {
			fprintf(stderr, PROG ": read %u: submit: %s\n", i,
				rmig_last_error());
			return ret;
		}
		n = rmig_dest_read_wait(d, &done, 1, 30000);
		if (n == 1 && i >= o->warmup)
			lat[i - o->warmup] = now_ns() - t0;
		if (n != 1 || done != &req || req.status) {
			fprintf(stderr, PROG ": read %u of page %" PRIu64 ": %s\n",
				i, pg, n < 0 ? rmig_last_error() : n == 0 ?
				"not completed in 30 s" : done != &req ?
				"another request came back" :
				strerror(-req.status));
			return n < 0 ? n : -EIO;
		}
		memcpy(&got, land, sizeof(got));
		if (got != pg) {
			fprintf(stderr, PROG ": read %u of page %" PRIu64 " brought "
				"page %" PRIu64 "'s bytes\n", i, pg, got);
			return -EIO;
		}
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [-t fabric|verbs] [-a ADDR] [-c CHANNELS] "
		"[-m RAM_MIB] [-n READS] [-w WARMUP] [-i]\n");
}

int main(int argc, char **argv)
{
	struct lat_opts o = { .transport = RMIG_TRANSPORT_FABRIC,
			      .addr = "127.0.0.1", .channels = 4,
			      .ram_bytes = 64ull << 20, .reads = 10000,
			      .warmup = 200 };
	struct src_thread st = { .o = &o };
	struct rmig_config c;
	rmig_dest *d = NULL;
	uint8_t *dram = NULL, *land = NULL;
	uint64_t *lat = NULL, sum = 0, slow = 0;
	char listen[160];
	pthread_t th;
	bool th_on = false;
	int opt, ret = -1, r;

	while ((opt = getopt(argc, argv, "t:a:c:m:n:w:ih")) != -1) {
		switch (opt) {
		case 't':
			if (!strcmp(optarg, "fabric"))
				o.transport = RMIG_TRANSPORT_FABRIC;
			else if (!strcmp(optarg, "verbs"))
				o.transport = RMIG_TRANSPORT_VERBS;
			else
				goto bad;
			break;
		case 'a': o.addr = optarg; break;
		case 'c': o.channels = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm':
			o.ram_bytes = strtoull(optarg, NULL, 10) << 20;
			break;
		case 'n': o.reads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'w': o.warmup = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'i': o.insecure = 1; break;
		case 'h': usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (optind != argc || !o.channels || o.channels > RMIG_MAX_CHANNELS ||
	    !o.ram_bytes || o.ram_bytes > (64ull << 30) || !o.reads ||
	    o.reads > MAX_READS || o.warmup > MAX_READS)
		goto bad;
	snprintf(listen, sizeof(listen), strchr(o.addr, ':') ? "[%s]:0" :
		 "%s:0", o.addr);
	if (!(dram = map_ram(o.ram_bytes, 0)) ||
	    !(st.ram = map_ram(o.ram_bytes, 1)) ||
	    !(land = aligned_alloc(PAGE, PAGE)) ||
	    !(lat = malloc(o.reads * sizeof(*lat)))) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out;
	}
	memset(land, 0, PAGE); /* faulted in */
	printf(" " PROG ": one %u-byte RDMA READ at a time (submitted with "
	       "RMIG_READ_URGENT, then waited for), %u timed after %u "
	       "warm-up, random pages of a %" PRIu64 " MiB block; %s on %s, "
	       "%u channel%s, %s; memory faulted in before timing\n", PAGE,
	       o.reads, o.warmup, o.ram_bytes >> 20,
	       o.transport == RMIG_TRANSPORT_VERBS ? "verbs" : "libfabric tcp",
	       o.addr, o.channels,
	       o.channels > 1 ? "s" : "", o.insecure ? "insecure" :
	       "authenticated");
	fflush(stdout);

	config(&c, &o, listen);
	if ((r = rmig_dest_create(&c, &d)) || (r = rmig_dest_add_block(
		     d, "ram", dram, o.ram_bytes)) < 0 ||
	    (r = rmig_dest_listen(d)) ||
	    (r = rmig_dest_get_address(d, st.addr, sizeof(st.addr)))) {
		fprintf(stderr, PROG ": destination: %s\n", rmig_last_error());
		goto out;
	}
	if ((r = pthread_create(&th, NULL, src_main, &st))) {
		fprintf(stderr, PROG ": cannot start the source: %s\n",
			strerror(r));
		goto out_cancel;
	}
	th_on = true;
	if (rmig_dest_accept(d, 60000)) {
		fprintf(stderr, PROG ": accept: %s\n", rmig_last_error());
		goto out_cancel;
	}
	/* The pre-copy round, then the switch. */
	if ((r = rmig_dest_wait_sync(d, 60000)) != 0 ||
	    (r = rmig_dest_wait_sync(d, 60000)) != RMIG_SYNC_POSTCOPY_SWITCH) {
		fprintf(stderr, PROG ": wait_sync returned %d, not %s: %s\n", r,
			r > 0 ? "the switch after one sync" : "a sync",
			r < 0 ? rmig_last_error() : "out of order");
		goto out_cancel;
	}
	if (read_loop(d, &o, land, lat))
		goto out_cancel;
	/* Done reading: release the source's final sync. */
	if ((r = rmig_dest_wait_sync(d, 60000)) != 1 ||
	    (r = rmig_dest_finish(d))) {
		fprintf(stderr, PROG ": the final sync: %d: %s\n", r,
			rmig_last_error());
		goto out_cancel;
	}
	ret = 0;
out_cancel:
	if (ret) {
		/* The source sees its connections go and returns. */
		rmig_dest_cancel(d);
		rmig_dest_destroy(d);
		d = NULL;
	}
	if (th_on) {
		pthread_join(th, NULL);
		if (st.ret) {
			fprintf(stderr, PROG ": source: %s\n", st.err);
			ret = -1;
		}
	}
out:
	rmig_dest_destroy(d);
	if (!ret) {
		qsort(lat, o.reads, sizeof(*lat), cmp_u64);
		for (unsigned i = 0; i < o.reads; i++) {
			sum += lat[i];
			slow += lat[i] >= SLOW_NS;
		}
		double us[5] = { lat[0] / 1e3, lat[(o.reads - 1) / 2] / 1e3,
				 lat[(o.reads - 1) * 99 / 100] / 1e3,
				 (double)sum / o.reads / 1e3,
				 lat[o.reads - 1] / 1e3 };

		printf(" %-10s %-10s %-10s %-10s %-10s %-10s %s\n", "#reads",
		       "min[us]", "p50[us]", "p99[us]", "mean[us]", "max[us]",
		       ">=10ms");
		printf(" %-10u %-10.1f %-10.1f %-10.1f %-10.1f %-10.1f %" PRIu64
		       "\n", o.reads, us[0], us[1], us[2], us[3], us[4], slow);
		printf("{\"test\":\"" PROG "\",\"transport\":\"%s\","
		       "\"address\":\"%s\",\"channels\":%u,\"ram_bytes\":%"
		       PRIu64 ",\"read_bytes\":%u,\"reads\":%u,\"warmup\":%u,"
		       "\"min_us\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
		       "\"mean_us\":%.1f,\"max_us\":%.1f,\"reads_over_10ms\":%"
		       PRIu64 ",\"prefaulted\":true}\n",
		       o.transport == RMIG_TRANSPORT_VERBS ? "verbs" :
		       "fabric/tcp", o.addr, o.channels, o.ram_bytes, PAGE,
		       o.reads, o.warmup, us[0], us[1], us[2], us[3], us[4],
		       slow);
	}
	/* Registered until the destroy above. */
	free(land);
	free(lat);
	if (dram)
		munmap(dram, o.ram_bytes);
	if (st.ram)
		munmap(st.ram, o.ram_bytes);
	return ret ? 1 : 0;
bad:
	usage(stderr);
	return 2;
}

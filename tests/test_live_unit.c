/* SPDX-License-Identifier: MIT */
/*
 * test_live_unit - the parts of rmig-migrate's live migration that need no
 * network: the guest workload is deterministic (paused, throttled and
 * resumed runs equal a replay; another step count does not), its device
 * state round-trips and rejects bad input, and dirty tracking reports a
 * written page and no page that was not written, in each mode and memory
 * type.
 *
 *   test_live_unit guest
 *   test_live_unit dirty async|sync anon|memfd|hugetlb
 *   test_live_unit state
 *
 * hugetlb reserves 2 MiB pages through /proc/sys/vm/nr_hugepages when none
 * are free and gives them back; exit 77 (skip) with the reason only when
 * none can be had.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dirty.h"
#include "guest.h"
#include "test_live_util.h"
#include "live.h"

#define SKIP 77

static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__,     \
				__LINE__, #cond);                          \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			failures++;                                        \
		}                                                          \
	} while (0)

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static struct guest_config small_cfg(enum guest_mem mem)
{
	struct guest_config c = {
		.size = 16u << 20,
		.page_size = mem == GUEST_HUGETLB ? (2u << 20) : 4096,
		.mem = mem,
		.vcpus = 2,
		.pattern = GUEST_RANDOM,
		.hot_percent = 10,
		.fill_percent = 50,
		.seed = 42,
		.rate_mbs = 40,
	};
	return c;
}

static int test_guest(void)
{
	static struct guest g;
	char err[512] = "";
	uint64_t sum, ref, other, steps[GUEST_MAX_VCPUS];
	struct guest_config c = small_cfg(GUEST_ANON);

	for (int pat = GUEST_RANDOM; pat <= GUEST_SEQ; pat++) {
		c.pattern = (enum guest_pattern)pat;
		CHECK(!guest_create(&g, &c, true, err, sizeof(err)), "%s", err);
		CHECK(!guest_start(&g), "start");
		sleep_ms(150);
		guest_set_throttle(&g, 60);
		sleep_ms(100);
		guest_pause(&g);
		guest_resume(&g);
		guest_set_throttle(&g, 0);
		sleep_ms(100);
		CHECK(!live_check_guest(&g, &sum, &ref, err, sizeof(err)),
		      "pattern %s: %s", guest_pattern_name(c.pattern), err);
		for (unsigned v = 0; v < c.vcpus; v++) {
			steps[v] = g.vcpu[v].st.steps;
			CHECK(steps[v] > 100, "vCPU %u made only %" PRIu64
			      " steps", v, steps[v]);
		}
		/* One step fewer is another image. */
		steps[1]--;
		CHECK(!guest_replay(&c, steps, &other, err, sizeof(err)), "%s",
		      err);
		CHECK(other != sum, "checksum blind to a step");
		guest_destroy(&g);
	}
	/* The rate is honoured roughly (generous bounds: 2 shared cores). */
	c.pattern = GUEST_RANDOM;
	c.rate_mbs = 8; /* 2048 pages/s in all */
	CHECK(!guest_create(&g, &c, true, err, sizeof(err)), "%s", err);
	CHECK(!guest_start(&g), "start");
	sleep_ms(500);
	guest_pause(&g);
	{
		uint64_t total = g.vcpu[0].st.steps + g.vcpu[1].st.steps;

		CHECK(total > 100 && total < 4000, "%" PRIu64 " steps in 0.5 s "
		      "at 2048 pages/s", total);
	}
	guest_destroy(&g);
	return 0;
}

static int test_state(void)
{
	static struct guest g;
	struct guest_config c = small_cfg(GUEST_ANON), d;
	struct guest_vcpu_state st[GUEST_MAX_VCPUS];
	char err[512] = "";
	size_t len = guest_state_size(c.vcpus);
	uint8_t *buf = malloc(len);
	uint64_t pause_ns = 0;

	CHECK(!guest_create(&g, &c, false, err, sizeof(err)), "%s", err);
	g.vcpu[0].st = (struct guest_vcpu_state){ 7, 0x1234 };
	g.vcpu[1].st = (struct guest_vcpu_state){ 9, 0x5678 };
	guest_state_encode(&g, 555, buf);
	CHECK(!guest_state_decode(buf, len, &d, st, &pause_ns, err,
				  sizeof(err)), "%s", err);
	CHECK(d.size == c.size && d.vcpus == 2 && d.seed == 42 &&
	      d.rate_mbs == 40 && pause_ns == 555 && st[1].steps == 9 &&
	      st[1].acc == 0x5678, "round trip");
	CHECK(guest_state_decode(buf, len - 1, &d, st, &pause_ns, err,
				 sizeof(err)) == -EPROTO, "short blob");
	CHECK(strstr(err, "vCPUs"), "message: %s", err);
	buf[0] ^= 1;
	CHECK(guest_state_decode(buf, len, &d, st, &pause_ns, err,
				 sizeof(err)) == -EPROTO, "bad magic");
	CHECK(strstr(err, "magic"), "message: %s", err);
	buf[0] ^= 1;
	buf[4 * 8] = 0; /* vCPUs = 0 */
	CHECK(guest_state_decode(buf, len, &d, st, &pause_ns, err,
				 sizeof(err)) == -EPROTO, "0 vCPUs");
	free(buf);
	guest_destroy(&g);
	return 0;
}

static unsigned count_bits(const uint64_t *bits, uint64_t pages)
{
	unsigned n = 0;

	for (uint64_t w = 0; w < (pages + 63) / 64; w++)
		n += (unsigned)__builtin_popcountll(bits[w]);
	return n;
}

static bool bit(const uint64_t *bits, uint64_t p)
{
	return bits[p / 64] >> (p % 64) & 1;
}

static int test_dirty(enum dirty_mode mode, enum guest_mem mem)
{
	static struct guest g;
	struct guest_config c = small_cfg(mem);
	struct dirty *d = NULL;
	char err[512] = "";
	uint64_t *bits, newly, sum0, sum1;
	uint64_t pages;
	struct hugepage_reservation hr = { 0 };
	int ret;

	if (mem == GUEST_HUGETLB) {
		ret = hugepages_reserve(&hr, c.size >> 21, err, sizeof(err));
		if (ret) {
			printf("SKIP: %s\n", err);
			return SKIP;
		}
	}
	ret = guest_create(&g, &c, true, err, sizeof(err));
	CHECK(!ret, "%s", err);
	if (ret)
		goto out;
	pages = g.pages;
	bits = calloc((pages + 63) / 64, 8);
	ret = dirty_open(&d, g.mem, (size_t)c.size, c.page_size, mem, mode, err,
			 sizeof(err));
	CHECK(!ret, "dirty_open: %s", err);
	if (ret)
		goto out_guest;
	CHECK(dirty_mode(d) == mode, "mode %s", dirty_mode_name(dirty_mode(d)));
	printf("mode %s, kernel features 0x%" PRIx64 ", %s memory, %" PRIu64
	       " pages of %zu\n", dirty_mode_name(dirty_mode(d)),
	       dirty_kernel_features(d), guest_mem_name(mem), pages,
	       c.page_size);
	CHECK(!dirty_start(d, err, sizeof(err)), "%s", err);
	CHECK(!dirty_harvest(d, bits, &newly, err, sizeof(err)), "%s", err);
	CHECK(newly == 0, "nothing written, %" PRIu64 " reported", newly);

	sum0 = guest_checksum(&g);
	g.mem[3 * c.page_size + 100] ^= 1;
	g.mem[(pages - 1) * c.page_size] ^= 1;
	g.mem[1 * c.page_size + c.page_size - 1] ^= 1;
	CHECK(!dirty_harvest(d, bits, &newly, err, sizeof(err)), "%s", err);
	CHECK(newly == 3 && bit(bits, 1) && bit(bits, 3) &&
	      bit(bits, pages - 1) && count_bits(bits, pages) == 3,
	      "3 written, %" PRIu64 " reported", newly);
	memset(bits, 0, (pages + 63) / 64 * 8);
	/* Protected again: nothing new, then one more write. */
	CHECK(!dirty_harvest(d, bits, &newly, err, sizeof(err)), "%s", err);
	CHECK(newly == 0, "re-protected, %" PRIu64 " reported", newly);
	g.mem[3 * c.page_size + 200] ^= 1;
	{
		/* A write of the byte that is there is still a write. */
		volatile uint8_t *v = g.mem + 2 * c.page_size;

		*v = *v;
	}
	CHECK(!dirty_harvest(d, bits, &newly, err, sizeof(err)), "%s", err);
	CHECK(newly == 2 && bit(bits, 3) && bit(bits, 2) && !bit(bits, 1),
	      "pages 2 and 3 written, %" PRIu64 " reported", newly);
	/* Reads are not writes. */
	memset(bits, 0, (pages + 63) / 64 * 8);
	sum1 = guest_checksum(&g);
	CHECK(!dirty_harvest(d, bits, &newly, err, sizeof(err)), "%s", err);
	CHECK(newly == 0, "reads reported as %" PRIu64 " writes", newly);
	/* The tracking never changed the content. */
	g.mem[3 * c.page_size + 100] ^= 1;
	g.mem[3 * c.page_size + 200] ^= 1;
	g.mem[(pages - 1) * c.page_size] ^= 1;
	g.mem[1 * c.page_size + c.page_size - 1] ^= 1;
	CHECK(guest_checksum(&g) == sum0, "content changed");
	CHECK(sum1 != sum0, "checksum blind to a byte");
	if (mode == DIRTY_SYNC)
		CHECK(dirty_faults(d) >= 5, "%" PRIu64 " faults",
		      dirty_faults(d));

	/* With vCPUs running: every page they wrote is reported. */
	{
		static uint8_t *copy;

		copy = malloc((size_t)c.size);
		memcpy(copy, g.mem, (size_t)c.size);
		memset(bits, 0, (pages + 63) / 64 * 8);
		CHECK(!dirty_harvest(d, bits, &newly, err, sizeof(err)), "%s",
		      err);
		memset(bits, 0, (pages + 63) / 64 * 8);
		g.cfg.rate_mbs = mem == GUEST_HUGETLB ? 200 : 8;
		CHECK(!guest_start(&g), "start");
		sleep_ms(200);
		guest_pause(&g);
		CHECK(!dirty_harvest(d, bits, &newly, err, sizeof(err)), "%s",
		      err);
		for (uint64_t p = 0; p < pages; p++) {
			bool changed = memcmp(copy + p * c.page_size,
					      g.mem + p * c.page_size,
					      c.page_size) != 0;

			CHECK(!changed || bit(bits, p), "page %" PRIu64
			      " written, not reported", p);
		}
		CHECK(newly > 0, "running vCPUs wrote nothing");
		free(copy);
	}
	/* The migration's invariant, without a network: the vCPUs write as
	 * fast as they can while each harvest's pages are copied out (the
	 * "send"); after a last harvest with the vCPUs paused, the copy
	 * equals the memory: no write fell between a harvest and the copy
	 * that followed it. */
	{
		uint8_t *shadow = malloc((size_t)c.size);
		uint64_t rounds = 0, copied = 0, differ = 0;

		guest_stop(&g);
		CHECK(!dirty_start(d, err, sizeof(err)), "%s", err);
		memcpy(shadow, g.mem, (size_t)c.size);
		memset(bits, 0, (pages + 63) / 64 * 8);
		g.cfg.rate_mbs = -1;
		CHECK(!guest_start(&g), "start");
		for (int last = 0; !last; rounds++) {
			if (rounds >= 40) {
				guest_pause(&g);
				last = 1;
			}
			CHECK(!dirty_harvest(d, bits, &newly, err, sizeof(err)),
			      "%s", err);
			for (uint64_t p = 0; p < pages; p++) {
				if (!bit(bits, p))
					continue;
				memcpy(shadow + p * c.page_size,
				       g.mem + p * c.page_size, c.page_size);
				copied++;
			}
			memset(bits, 0, (pages + 63) / 64 * 8);
			if (!last)
				sleep_ms(5);
		}
		for (uint64_t p = 0; p < pages; p++)
			if (memcmp(shadow + p * c.page_size,
				   g.mem + p * c.page_size, c.page_size))
				differ++;
		printf("%" PRIu64 " harvests under writing vCPUs, %" PRIu64
		       " pages copied, %" PRIu64 " differ\n", rounds, copied,
		       differ);
		CHECK(differ == 0, "%" PRIu64 " pages written and never "
		      "reported", differ);
		CHECK(copied > 0, "the vCPUs wrote nothing");
		free(shadow);
	}
	/* Tracking stops while the vCPUs write (sync mode: some wait on a
	 * write fault): none is left waiting, they all run on. */
	guest_resume(&g);
	sleep_ms(20);
	dirty_close(d);
	{
		uint64_t before = 0, after = 0;

		guest_pause(&g);
		for (unsigned v = 0; v < c.vcpus; v++)
			before += g.vcpu[v].st.steps;
		guest_resume(&g);
		sleep_ms(50);
		guest_pause(&g);
		for (unsigned v = 0; v < c.vcpus; v++)
			after += g.vcpu[v].st.steps;
		CHECK(after > before, "the vCPUs stopped with the tracking "
		      "(%" PRIu64 " steps)", after);
	}
	guest_stop(&g);
	g.mem[5 * c.page_size] ^= 1;
	free(bits);
out_guest:
	guest_destroy(&g);
out:
	hugepages_release(&hr);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	enum dirty_mode mode;
	enum guest_mem mem;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "guest"))
		ret = test_guest();
	else if (argc == 2 && !strcmp(argv[1], "state"))
		ret = test_state();
	else if (argc == 4 && !strcmp(argv[1], "dirty") &&
		 !dirty_parse_mode(argv[2], &mode) && mode != DIRTY_AUTO &&
		 !guest_parse_mem(argv[3], &mem))
		ret = test_dirty(mode, mem);
	else {
		fprintf(stderr, "usage: %s guest | state | dirty async|sync "
			"anon|memfd|hugetlb\n", argv[0]);
		return 2;
	}
	if (ret == SKIP)
		return SKIP;
	printf("%s\n", failures || ret ? "FAILED" : "PASSED");
	return failures || ret ? 1 : 0;
}

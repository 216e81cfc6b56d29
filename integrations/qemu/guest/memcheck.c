/* SPDX-License-Identifier: MIT */
/*
 * memcheck.c - the real guest's workload: keep writing memory and checking
 * it, and say so on the console, so that a live migration that loses or
 * corrupts a page shows on the guest's own console, wherever it runs.
 *
 * It runs as the init of a busybox initramfs (integrations/qemu/guest.sh)
 * under Debian's kernel.  It takes MIB MiB of anonymous memory (populated
 * at once) and sweeps it for ever, one pass after the other: for every
 * page it first checks every word against what the previous pass wrote
 * (an arithmetic progression seeded by the page's number and the pass),
 * then writes the current pass's values.  A page lost by a migration (left
 * at the destination as it was, or zero) or torn (some words of another
 * pass) fails the check.  Every second (CLOCK_MONOTONIC, so the guest's
 * own time) it prints one line:
 *
 *   memcheck: t=12s pass=37 pages=65536 checked=2424832 errors=0
 *
 * and on a failed check, at most ERR_LINES times a run:
 *
 *   memcheck: ERROR page 1234 word 17: expected 0x... got 0x... (pass 36)
 *
 * Options come from the kernel command line (/proc/cmdline):
 *   memcheck.mib=N     memory to sweep (default 256)
 *   memcheck.rate=N    at most N MiB written per second (default 0: as fast
 *                      as the vCPU goes)
 * Written for the guest only: no library of the project's, built static.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / sizeof(uint64_t))
#define ERR_LINES 20

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The first word of page @p in pass @pass: a mix of both, never the same
 * for two passes of a page, so a page left at an older pass fails. */
static uint64_t seed(uint64_t p, uint64_t pass)
{
	uint64_t z = p * 0x9e3779b97f4a7c15ull + pass * 0xbf58476d1ce4e5b9ull;

	z = (z ^ (z >> 31)) * 0x94d049bb133111ebull;
	return z ^ (z >> 29);
}

/* memcheck.NAME=VALUE from the kernel command line, or @def. */
static unsigned long cmdline_opt(const char *name, unsigned long def)
{
	char buf[4096], key[64];
	FILE *f = fopen("/proc/cmdline", "r");
	size_t n;
	const char *at;

	if (!f)
		return def;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	snprintf(key, sizeof(key), "memcheck.%s=", name);
	at = strstr(buf, key);
	if (!at)
		return def;
	return strtoul(at + strlen(key), NULL, 10);
}

int main(void)
{
	unsigned long mib = cmdline_opt("mib", 256);
	unsigned long rate = cmdline_opt("rate", 0);
	uint64_t npages = (uint64_t)mib * (1024 * 1024 / PAGE);
	uint64_t pass = 0, checked = 0, errors = 0, t0, next, written = 0;
	uint64_t *mem;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!mib) {
		printf("memcheck: memcheck.mib must be at least 1\n");
		return 1;
	}
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED) {
		printf("memcheck: cannot map %lu MiB: %m\n", mib);
		return 1;
	}
	/* Pass 0 writes without checking. */
	printf("memcheck: running, %lu MiB (%" PRIu64 " pages), ", mib, npages);
	if (rate)
		printf("at most %lu MiB/s\n", rate);
	else
		printf("as fast as the vCPU goes\n");
	t0 = now_ns();
	next = t0 + 1000000000ull;
	for (;;) {
		for (uint64_t p = 0; p < npages; p++) {
			uint64_t *w = mem + p * WORDS;

			if (pass) {
				uint64_t s = seed(p, pass - 1);

				for (unsigned i = 0; i < WORDS; i++) {
					if (w[i] == s + i)
						continue;
					if (errors < ERR_LINES)
						printf("memcheck: ERROR page "
						       "%" PRIu64 " word %u: "
						       "expected 0x%016" PRIx64
						       " got 0x%016" PRIx64
						       " (pass %" PRIu64 ")\n",
						       p, i, s + i, w[i],
						       pass - 1);
					errors++;
					break;
				}
				checked++;
			}
			uint64_t s = seed(p, pass);

			for (unsigned i = 0; i < WORDS; i++)
				w[i] = s + i;
			written += PAGE;
			if ((p & 255) == 255 || p + 1 == npages) {
				uint64_t t = now_ns();

				/* Throttle: no faster than @rate MiB/s. */
				if (rate) {
					uint64_t due = t0 + written * 1000000000ull /
						       (rate * 1024 * 1024);

					if (due > t) {
						struct timespec ts = {
							.tv_sec = (time_t)((due - t) / 1000000000ull),
							.tv_nsec = (long)((due - t) % 1000000000ull),
						};
						nanosleep(&ts, NULL);
						t = now_ns();
					}
				}
				if (t >= next) {
					printf("memcheck: t=%" PRIu64 "s pass=%"
					       PRIu64 " pages=%" PRIu64
					       " checked=%" PRIu64 " errors=%"
					       PRIu64 "\n",
					       (uint64_t)((t - t0) / 1000000000ull),
					       pass, npages, checked, errors);
					next += 1000000000ull;
					if (next < t)
						next = t + 1000000000ull;
				}
			}
		}
		pass++;
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * rmig-migrate --still: a still memory image, filled by the generator
 * rmig-migrate.c describes, migrated and compared byte for byte.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "migrate.h"
#include "mix64.h"

#define MANIFEST_IDSTR "rmig-migrate/manifest"

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
/* The run's end and its failures                                      */

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
	x->r.error = lib_error_text(x->errbuf, sizeof(x->errbuf));
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

int run_source(const struct opts *o, const char *address)
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

int run_dest(const struct opts *o)
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
	int timeout_ms = (o->timeout_s < 0 ? DEST_ACCEPT_TIMEOUT_S :
			  o->timeout_s) * 1000;

	side_init(&x, o, "dest", 0);

	t0 = cli_now_s();
	if (!side_map(&x))
		goto out;
	if (o->dirty_dest)
		memset(x.ram, 0xa5, (size_t)o->size);
	x.r.prepare_s = cli_now_s() - t0;

	ret = block = side_listen(&x, &d, addr, sizeof(addr));
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

/* SPDX-License-Identifier: MIT */
/*
 * test_handshake.c - the destination's handshake checks, over libfabric tcp
 * on 127.0.0.1 (or, with transport=verbs, the verbs provider on
 * $RMIG_RXE_ADDR), against a real listening destination in its own process.
 *
 * The raw client authenticates first (HELLO, CHALLENGE checked, PROOF,
 * with the tests' secret): what follows is judged as a handshake.
 *
 *   test_handshake raw        handcrafted bad handshakes from a raw client
 *                             (provider interface + wire encoders); each must
 *                             get exactly one REJECT naming the problem, never
 *                             an ACCEPT, then a close; afterwards a real
 *                             source migrates and the destination counts the
 *                             rejections.
 *   test_handshake dup [adopt=1]
 *                             a valid channel 0 (no ACCEPT yet: it comes when
 *                             every channel authenticated), then channel 0
 *                             again (duplicate), a foreign UUID and a foreign
 *                             channel count (both judged against the first
 *                             channel when the destination adopts), then a
 *                             valid channel 1 (both get ACCEPT); the raw
 *                             "source" then goes away and the destination
 *                             must notice.
 *   test_handshake extra      malformed handshakes after authentication
 *                             (truncated, oversized, wrong type, bad
 *                             immediate, silent close, ...); no ACCEPT,
 *                             closed, and a real source still migrates
 *                             afterwards.
 *   test_handshake srcreject  rmig_src_connect() against a destination with
 *                             another UUID: -EACCES (the destination's MAC
 *                             does not verify), nothing learnt (the message
 *                             has no UUID); rmig_dest_cancel() ends the
 *                             destination's accept.
 *   test_handshake refused    rmig_src_connect() to a closed port on
 *                             127.0.0.1: -ECONNREFUSED, promptly.
 *   test_handshake forget     a destination with no UUID and no channel
 *                             count: a raw client's valid channel 0 of 2
 *                             (UUID A) is taken, channel 1 never comes and
 *                             rmig_dest_accept() fails with -ETIMEDOUT; the
 *                             next accept must have forgotten UUID A and the
 *                             count: a real source with (random) UUID B
 *                             migrates.
 *   test_handshake silent     a raw client connects and says nothing, then a
 *                             real source connects (connect timeout 4 s on
 *                             both sides): the silent connection is dropped
 *                             after a quarter of the timeout and the source
 *                             is accepted well within its timeout.
 *   test_handshake dsgap      a raw client (1 channel) sends device-state
 *                             blob 1 (blob 0 never comes), then SYNC 1:
 *                             rmig_dest_wait_sync() fails with -EPROTO naming
 *                             the missing blob, and the client receives an
 *                             ERROR carrying EPROTO.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "provider.h"
#include "prov_post.h"
#include "test_secret.h"
#include "testutil.h"
#include "wire.h"

#define CHANNELS 2
#define PAGE 4096u
#define IMAGE_MIB 16

struct ctx {
	const char *mode;
	bool adopt;
	char addr[TU_ADDR_MAX];
	uint8_t uuid[16];       /* the destination's (and good source's) */
	uint8_t other_uuid[16]; /* a foreign one */
	struct tu_pipe addrp;   /* dest -> parent */
	struct tu_pipe note;    /* raw client or source -> dest */
	unsigned expect_rejected; /* dest: exact count (0: at least one) */
	bool expect_rejected_min;
	const uint8_t *src_uuid;  /* the real source's (default: uuid) */
	bool src_no_uuid;         /* the real source configures none */
	unsigned connect_timeout_ms; /* real source and dest (0: default) */
	struct tu_pipe back;      /* dest -> raw client */
	struct tu_pipe go;        /* raw client -> parent */
};

static int accept_timeout_ms(void)
{
	return (int)tu_watchdog_s() * 1000 - 15000;
}

/* ------------------------------------------------------------------ */
/* The raw client: a source reduced to the provider interface.         */

#define RAW_NRX 4
#define RAW_SLOTS 4
#define RAW_BUFS (RAW_NRX + 1)

struct raw {
	/* The transcript's UUID: the destination's configured one, NULL
	 * for a destination that has none (it adopts the source's). */
	const uint8_t *auth_uuid;
	struct rmig_provider_ops ops;
	struct rmig_prov_domain *dom;
	struct rmig_prov_attr attr;
	struct rmig_prov_mr *mr;
	uint8_t *mem;
	size_t memlen;
};

struct raw_conn {
	struct raw *raw;
	struct rmig_prov_conn *c;
	uint8_t *rx[RAW_NRX];
	uint8_t *tx;
	unsigned sends_done;
};

struct raw_msg {
	enum rmig_msg_type type;
	uint32_t imm;
	size_t len;
	const uint8_t *buf;
};

static bool raw_open(struct raw *r, const char *addr)
{
	const struct rmig_provider_ops *p = rmig_provider_find(tu_provider_name());
	struct rmig_prov_params params = {
		.address = addr,
		.subprovider = tu_fabric_provider(),
		.passive = false,
		.rx_depth = RAW_NRX,
		.tx_depth = 4,
	};

	memset(r, 0, sizeof(*r));
	if (!TU_CHECK(p, "no \"%s\" provider", tu_provider_name()))
		return false;
	rmig_provider_fill(&r->ops, p);
	if (!TU_RMIG_OK(r->ops.domain_open(&params, &r->dom, &r->attr)))
		return false;
	r->memlen = (size_t)RAW_SLOTS * RAW_BUFS * RMIG_MSG_SIZE;
	r->mem = tu_alloc(r->memlen, 4096);
	if (!TU_CHECK(r->mem, "alloc"))
		return false;
	memset(r->mem, 0, r->memlen);
	if (!TU_RMIG_OK(r->ops.mr_reg(r->dom, r->mem, r->memlen, RMIG_MR_MSG_BUF,
				      &r->mr)))
		return false;
	tu_msg("raw client: provider %s, max_msg %zu", r->attr.name,
	       r->attr.max_msg_size);
	return true;
}

static void raw_close(struct raw *r)
{
	if (r->mr)
		r->ops.mr_dereg(r->mr);
	if (r->dom)
		r->ops.domain_close(r->dom);
	tu_free(r->mem, r->memlen);
	memset(r, 0, sizeof(*r));
}

static bool raw_connect(struct raw *r, unsigned slot, struct raw_conn *rc)
{
	uint8_t *base = r->mem + (size_t)slot * RAW_BUFS * RMIG_MSG_SIZE;

	memset(rc, 0, sizeof(*rc));
	rc->raw = r;
	for (unsigned i = 0; i < RAW_NRX; i++)
		rc->rx[i] = base + (size_t)i * RMIG_MSG_SIZE;
	rc->tx = base + (size_t)RAW_NRX * RMIG_MSG_SIZE;
	if (!TU_RMIG_OK(r->ops.conn_create(r->dom, &rc->c)))
		return false;
	for (unsigned i = 0; i < RAW_NRX; i++)
		if (!TU_RMIG_OK(r->ops.post_recv(rc->c, rc->rx[i],
						 RMIG_MSG_SIZE, r->mr,
						 rc->rx[i])))
			return false;
	return TU_RMIG_OK(r->ops.conn_establish(rc->c, 10000));
}

static void raw_disconnect(struct raw_conn *rc)
{
	if (rc->c)
		rc->raw->ops.conn_close(rc->c);
	rc->c = NULL;
}

/* Send @len bytes from @tx (a buffer inside the raw client's registered
 * memory that no other send in flight uses). */
static bool raw_send_from(struct raw_conn *rc, uint8_t *tx, const void *buf,
			  size_t len, uint32_t imm)
{
	if (len)
		memcpy(tx, buf, len);
	return TU_RMIG_OK(prov_send(&rc->raw->ops, rc->c, tx, len, rc->raw->mr, imm,
					    tx));
}

static bool raw_send(struct raw_conn *rc, const void *buf, size_t len,
		     uint32_t imm)
{
	return raw_send_from(rc, rc->tx, buf, len, imm);
}

/* Next received message within @timeout_ms: 1 (in @m), 0 on timeout, or
 * the provider's negative errno (the connection is gone). */
static int raw_recv(struct raw_conn *rc, int timeout_ms, struct raw_msg *m)
{
	uint64_t t0 = tu_now_ns();

	for (;;) {
		struct rmig_cqe cqe[1];
		int left = timeout_ms - (int)tu_ms_since(t0);
		int n;

		if (left <= 0)
			return 0;
		n = rc->raw->ops.poll(rc->c, cqe, 1, left > 200 ? 200 : left);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			unsigned credits;

			if (cqe[i].op != RMIG_CQE_RECV) {
				rc->sends_done++;
				continue;
			}
			m->imm = cqe[i].imm;
			m->len = cqe[i].len;
			m->buf = cqe[i].ctx;
			if (rmig_imm_parse(cqe[i].imm, &m->type, &credits))
				m->type = 0;
			return 1;
		}
	}
}

/* The handshake a correct source would send. */
static void good_hs(struct rmig_handshake *h, const uint8_t *uuid,
		    unsigned id)
{
	memset(h, 0, sizeof(*h));
	h->magic = RMIG_WIRE_MAGIC;
	h->version = RMIG_WIRE_VERSION;
	memcpy(h->uuid, uuid, 16);
	h->channel_id = (uint16_t)id;
	h->channel_count = CHANNELS;
	h->page_size = PAGE;
	h->pages_per_packet = 128;
	h->rx_depth = RAW_NRX;
	h->msg_size = RMIG_MSG_SIZE;
}

static bool send_hs(struct raw_conn *rc, const struct rmig_handshake *h)
{
	uint8_t buf[RMIG_HANDSHAKE_LEN];
	size_t len = rmig_handshake_encode(h, buf);

	if (!TU_CHECK(len == RMIG_HANDSHAKE_LEN, "encoded %zu bytes", len))
		return false;
	return raw_send(rc, buf, len, rmig_imm_make(RMIG_MSG_HANDSHAKE, 0));
}

/* Authenticate @rc with the tests' secret, as a source announcing the
 * channel parameters of @hs (each replaced by a valid one where @hs has
 * none, so that the HELLO decodes and the HANDSHAKE is what gets judged):
 * HELLO, the destination's CHALLENGE (its MAC checked), PROOF. */
static bool raw_auth(struct raw_conn *rc, const struct rmig_handshake *hs)
{
	struct rmig_auth_hello h = {
		.channel_count = hs->channel_count >= 1 &&
					 hs->channel_count <= RMIG_MAX_CHANNELS ?
				 hs->channel_count : CHANNELS,
		.page_size = hs->page_size >= 4096 &&
				     !(hs->page_size & (hs->page_size - 1)) ?
			     hs->page_size : PAGE,
		.pages_per_packet = hs->pages_per_packet >= 1 &&
					    hs->pages_per_packet <=
						    RMIG_MAX_PAGES_PER_PACKET ?
				    hs->pages_per_packet : 128,
	};
	struct rmig_auth_transcript t = { .transport = tu_provider_name() };
	struct rmig_auth_challenge c;
	struct rmig_auth_key *key = NULL;
	uint8_t buf[RMIG_AUTH_HELLO_LEN], mac[RMIG_AUTH_MAC_LEN];
	struct raw_msg m;
	bool ok;
	int ret;

	h.channel_id = hs->channel_id < h.channel_count ? hs->channel_id : 0;
	if (!TU_RMIG_OK(rmig_auth_nonce(h.nonce)) ||
	    !raw_send(rc, buf, rmig_auth_hello_encode(&h, buf),
		      rmig_imm_make(RMIG_MSG_AUTH_HELLO, 0)))
		return false;
	while ((ret = raw_recv(rc, 10000, &m)) == 1 &&
	       m.type == RMIG_MSG_CREDIT)
		;
	if (!TU_CHECK(ret == 1 && m.type == RMIG_MSG_AUTH_CHALLENGE,
		      "want AUTH_CHALLENGE, got %d / %s", ret,
		      ret == 1 ? rmig_msg_type_name(m.type) : "-") ||
	    !TU_RMIG_OK(rmig_auth_challenge_decode(m.buf, m.len, &c)) ||
	    !TU_RMIG_OK(rmig_auth_key_new(test_secret, sizeof(test_secret),
					  &key)))
		return false;
	if (rc->raw->auth_uuid)
		memcpy(t.uuid, rc->raw->auth_uuid, 16);
	memcpy(t.src_nonce, h.nonce, RMIG_AUTH_NONCE_LEN);
	memcpy(t.dest_nonce, c.nonce, RMIG_AUTH_NONCE_LEN);
	t.channel_id = h.channel_id;
	t.channel_count = h.channel_count;
	t.page_size = h.page_size;
	t.pages_per_packet = h.pages_per_packet;
	ok = TU_RMIG_OK(rmig_auth_verify(key, RMIG_AUTH_DEST_TO_SOURCE, &t,
					 c.mac)) &&
	     TU_RMIG_OK(rmig_auth_mac(key, RMIG_AUTH_SOURCE_TO_DEST, &t, mac));
	rmig_auth_key_free(key);
	return ok && raw_send(rc, buf, rmig_auth_proof_encode(mac, buf),
			      rmig_imm_make(RMIG_MSG_AUTH_PROOF, 0));
}

struct expect {
	unsigned reasons[3]; /* acceptable reasons (0 ends the list) */
	const char *kw[3];   /* the text must contain one of these */
	const char *value;   /* ... and this (the value received), if set */
};

/*
 * The only reply must be one REJECT with an expected reason and a text that
 * names the problem; no ACCEPT ever; then the destination closes.
 * @closed_ok_without_reject: for inputs that are not a handshake at all
 * (silent close), where no REJECT can be asked for.
 */
static bool expect_reject(struct raw_conn *rc, const char *name,
			  const struct expect *e, unsigned *rejects)
{
	char text[RMIG_REJECT_TEXT_MAX + 1] = "";
	enum rmig_reject reason = RMIG_REJECT_NONE;
	struct raw_msg m;
	uint64_t t0 = tu_now_ns();
	double t_rej, t_close;
	bool ok = true, kw = false;
	int ret;

	ret = raw_recv(rc, 10000, &m);
	if (!TU_CHECK(ret == 1, "case '%s': no REJECT (%s %d%s%s)", name,
		      ret == 0 ? "nothing within 10 s" : "connection lost:",
		      ret, ret ? ", " : "", ret ? rmig_last_error() : ""))
		return false;
	if (!TU_CHECK(m.type != RMIG_MSG_ACCEPT,
		      "case '%s': the destination sent ACCEPT (memory keys!) "
		      "to a bad handshake", name))
		return false;
	if (!TU_CHECK(m.type == RMIG_MSG_REJECT,
		      "case '%s': first reply has imm 0x%08x (%s), want REJECT",
		      name, m.imm, rmig_msg_type_name(m.type)))
		return false;
	t_rej = tu_ms_since(t0);
	if (!TU_RMIG_OK(rmig_reject_decode(m.buf, m.len, &reason, text,
					   sizeof(text))))
		return false;
	(*rejects)++;
	ok &= TU_CHECK(reason == e->reasons[0] ||
			       (e->reasons[1] && reason == e->reasons[1]) ||
			       (e->reasons[2] && reason == e->reasons[2]),
		       "case '%s': reason %u (\"%s\"), want %u", name, reason,
		       text, e->reasons[0]);
	for (int i = 0; i < 3 && e->kw[i]; i++)
		kw |= tu_strcasestr(text, e->kw[i]);
	ok &= TU_CHECK(kw || !e->kw[0],
		       "case '%s': reject text \"%s\" does not name the "
		       "problem (want \"%s\"%s%s)",
		       name, text, e->kw[0], e->kw[1] ? " or \"" : "",
		       e->kw[1] ? e->kw[1] : "");
	ok &= TU_CHECK(!e->value || strstr(text, e->value),
		       "case '%s': reject text \"%s\" does not give the value "
		       "received (%s)",
		       name, text, e->value);

	/* Nothing else may follow, and the destination must hang up. */
	ret = raw_recv(rc, 5000, &m);
	t_close = tu_ms_since(t0);
	if (ret == 1) {
		ok &= TU_CHECK(m.type != RMIG_MSG_ACCEPT,
			       "case '%s': ACCEPT after REJECT", name);
		ok &= TU_CHECK(false,
			       "case '%s': a second message (imm 0x%08x, %s) "
			       "after REJECT",
			       name, m.imm, rmig_msg_type_name(m.type));
	} else {
		ok &= TU_CHECK(ret < 0,
			       "case '%s': the destination did not close the "
			       "connection within 5 s after REJECT",
			       name);
	}
	tu_msg("case %-34s REJECT %2u \"%s\" (%.1f ms), closed (%d) after "
	       "%.1f ms",
	       name, reason, text, t_rej, ret, t_close);
	return ok;
}

/* Connect in @slot and send @h: the destination must reject it (@e). */
static bool raw_rejected(struct raw *r, unsigned slot, struct raw_conn *rc,
			 const struct rmig_handshake *h, const char *name,
			 const struct expect *e, unsigned *rejects)
{
	return raw_connect(r, slot, rc) && raw_auth(rc, h) && send_hs(rc, h) &&
	       expect_reject(rc, name, e, rejects);
}

/* For inputs that are no handshake at all: never ACCEPT, closed in time;
 * a REJECT, if any, must name a plausible reason. */
static bool expect_turned_away(struct raw_conn *rc, const char *name,
			       const struct expect *e, unsigned *rejects)
{
	struct raw_msg m;
	uint64_t t0 = tu_now_ns();
	int ret = raw_recv(rc, 15000, &m);

	if (ret == 1) {
		if (!TU_CHECK(m.type != RMIG_MSG_ACCEPT,
			      "case '%s': ACCEPT (memory keys) sent", name))
			return false;
		if (m.type == RMIG_MSG_REJECT || m.type == RMIG_MSG_ERROR ||
		    m.type == RMIG_MSG_AUTH_REJECT) {
			char text[RMIG_REJECT_TEXT_MAX + 1] = "";
			enum rmig_reject reason = 0;
			enum rmig_auth_reject ar = 0;

			/* AUTH_REJECT: a malformed message that came right
			 * behind the PROOF fails the channel while its
			 * authentication is being read. */
			if (m.type == RMIG_MSG_AUTH_REJECT)
				snprintf(text, sizeof(text), "%s",
					 rmig_auth_reject_decode(m.buf, m.len,
								 &ar) ?
					 "malformed AUTH_REJECT" :
					 rmig_auth_reject_name(ar));
			else
				rmig_reject_decode(m.buf, m.len, &reason, text,
						   sizeof(text));
			tu_msg("case %-34s %s %u \"%s\"", name,
			       rmig_msg_type_name(m.type), reason, text);
			if (m.type != RMIG_MSG_ERROR)
				(*rejects)++;
			ret = raw_recv(rc, 5000, &m);
			if (!TU_CHECK(ret <= 0,
				      "case '%s': message %s after %s", name,
				      rmig_msg_type_name(m.type),
				      "REJECT"))
				return false;
		} else {
			return TU_CHECK(false,
					"case '%s': reply imm 0x%08x (%s)",
					name, m.imm,
					rmig_msg_type_name(m.type));
		}
	}
	if (!TU_CHECK(ret < 0, "case '%s': connection not closed within "
				"the time allowed", name))
		return false;
	tu_msg("case %-34s closed (%d) after %.1f ms", name, ret,
	       tu_ms_since(t0));
	(void)e;
	return true;
}

/* ------------------------------------------------------------------ */
/* Bad handshakes for "raw" (each changes one field of a good one).    */

struct hs_case {
	const char *name;
	struct expect e;
};

static const struct hs_case raw_cases[] = {
	{ "wrong uuid", { { RMIG_REJECT_UUID }, { "uuid" }, NULL } },
	{ "wrong version (7)",
	  { { RMIG_REJECT_VERSION }, { "version" }, "7" } },
	{ "version 0", { { RMIG_REJECT_VERSION }, { "version" }, "0" } },
	{ "bad magic", { { RMIG_REJECT_MAGIC }, { "magic" }, NULL } },
	{ "channel id == count (2 of 2)",
	  { { RMIG_REJECT_CHANNEL_ID }, { "channel" }, "2" } },
	{ "channel id 64",
	  { { RMIG_REJECT_CHANNEL_ID }, { "channel" }, "64" } },
	{ "channel id 65535",
	  { { RMIG_REJECT_CHANNEL_ID }, { "channel" }, "65535" } },
	{ "channel count 65",
	  { { RMIG_REJECT_CHANNEL_COUNT }, { "count", "channels" }, "65" } },
	{ "channel count 0",
	  { { RMIG_REJECT_CHANNEL_COUNT, RMIG_REJECT_CHANNEL_ID },
	    { "count", "channel" }, "0" } },
	{ "channel count 3 (dest wants 2)",
	  { { RMIG_REJECT_CHANNEL_COUNT }, { "count", "channels" }, "3" } },
	{ "channel count 1 (dest wants 2)",
	  { { RMIG_REJECT_CHANNEL_COUNT }, { "count", "channels" }, "1" } },
	{ "page size 2097152 (dest 4096)",
	  { { RMIG_REJECT_PAGE_SIZE }, { "page size", "page_size" },
	    "2097152" } },
	{ "page size 12345",
	  { { RMIG_REJECT_PAGE_SIZE }, { "page size", "page_size" },
	    "12345" } },
	{ "pages per packet 0",
	  { { RMIG_REJECT_PACKET_SIZE }, { "packet" }, "0" } },
	{ "pages per packet 4097",
	  { { RMIG_REJECT_PACKET_SIZE }, { "packet" }, "4097" } },
	{ "unknown feature bit",
	  { { RMIG_REJECT_FEATURES }, { "feature" }, NULL } },
};
#define NRAW (sizeof(raw_cases) / sizeof(raw_cases[0]))

static void raw_mutate(unsigned i, struct rmig_handshake *h,
		       const struct ctx *cx)
{
	switch (i) {
	case 0: memcpy(h->uuid, cx->other_uuid, 16); break;
	case 1: h->version = 7; break;
	case 2: h->version = 0; break;
	case 3: h->magic = 0x58585858u; break;
	case 4: h->channel_id = 2; break;
	case 5: h->channel_id = 64; break;
	case 6: h->channel_id = 65535; break;
	case 7: h->channel_count = 65; break;
	case 8: h->channel_count = 0; break;
	case 9: h->channel_count = 3; break;
	case 10: h->channel_count = 1; break;
	case 11: h->page_size = 2u << 20; break;
	case 12: h->page_size = 12345; break;
	case 13: h->pages_per_packet = 0; break;
	case 14: h->pages_per_packet = RMIG_MAX_PAGES_PER_PACKET + 1; break;
	case 15: h->features = 0x80000000u; break;
	}
}

static int run_raw(void *arg)
{
	struct ctx *cx = arg;
	struct raw r;
	unsigned rejects = 0;
	bool ok = true;

	if (!raw_open(&r, cx->addr))
		return 1;
	r.auth_uuid = cx->uuid;
	for (unsigned i = 0; i < NRAW; i++) {
		struct raw_conn rc;
		struct rmig_handshake h;

		good_hs(&h, cx->uuid, 0);
		raw_mutate(i, &h, cx);
		ok &= raw_rejected(&r, 0, &rc, &h, raw_cases[i].name,
				   &raw_cases[i].e, &rejects);
		raw_disconnect(&rc);
	}
	raw_close(&r);
	tu_msg("%u/%zu bad handshakes rejected as expected", rejects, NRAW);
	return ok && rejects == NRAW ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* "extra": first messages that are not a proper handshake.            */

enum extra_kind {
	X_TRUNCATED,  /* 47 bytes */
	X_OVERSIZED,  /* 49 bytes */
	X_EMPTY,      /* 0 bytes */
	X_WRONG_TYPE, /* a good body with imm type PACKET */
	X_BAD_IMM,    /* imm with low bits set */
	X_FLAGS,      /* flags != 0 */
	X_MSG_SIZE,   /* msg_size 1024 < RMIG_MSG_SIZE */
	X_RX_DEPTH,   /* rx_depth 0 */
	X_SILENT,     /* connect, send nothing, close */
	X_GARBAGE,    /* 4096 random bytes */
	X_COUNT
};

static const char *const extra_names[X_COUNT] = {
	"truncated handshake (47 bytes)", "oversized handshake (49 bytes)",
	"empty message",                  "handshake with imm type PACKET",
	"immediate with low bits set",    "handshake flags 0x8000",
	"message size 1024",              "rx depth 0",
	"silent connect and close",       "4096 bytes of garbage",
};

static int run_extra(void *arg)
{
	struct ctx *cx = arg;
	static const struct expect any = {
		.reasons = { RMIG_REJECT_MALFORMED }
	};
	uint8_t big[4096];
	struct raw r;
	unsigned rejects = 0;
	bool ok = true;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 131 + 7);
	if (!raw_open(&r, cx->addr))
		return 1;
	r.auth_uuid = cx->uuid;
	for (unsigned k = 0; k < X_COUNT; k++) {
		uint8_t buf[RMIG_HANDSHAKE_LEN + 1] = { 0 };
		struct rmig_handshake h;
		struct raw_conn rc;
		uint32_t imm = rmig_imm_make(RMIG_MSG_HANDSHAKE, 0);
		const void *body = buf;
		size_t len;

		good_hs(&h, cx->uuid, 0);
		if (k == X_FLAGS)
			h.flags = 0x8000;
		if (k == X_MSG_SIZE)
			h.msg_size = 1024;
		if (k == X_RX_DEPTH)
			h.rx_depth = 0;
		len = rmig_handshake_encode(&h, buf);
		if (k == X_TRUNCATED)
			len--;
		if (k == X_OVERSIZED)
			len++;
		if (k == X_EMPTY)
			len = 0;
		if (k == X_WRONG_TYPE)
			imm = rmig_imm_make(RMIG_MSG_PACKET, 0);
		if (k == X_BAD_IMM)
			imm |= 0x1;
		if (k == X_GARBAGE) {
			body = big;
			len = sizeof(big);
		}
		if (!raw_connect(&r, 0, &rc)) {
			ok = false;
			raw_disconnect(&rc);
			continue;
		}
		if (k == X_SILENT) {
			raw_disconnect(&rc);
			tu_msg("case %-34s done", extra_names[k]);
			continue;
		}
		/* Authenticated: what follows is judged as a handshake. */
		good_hs(&h, cx->uuid, 0);
		if (!raw_auth(&rc, &h)) {
			ok = false;
			raw_disconnect(&rc);
			continue;
		}
		if (raw_send(&rc, body, len, imm))
			ok &= expect_turned_away(&rc, extra_names[k], &any,
						 &rejects);
		else
			ok = false;
		raw_disconnect(&rc);
	}
	raw_close(&r);
	/* Tell the destination how many REJECTs we saw. */
	tu_send_u64(cx->note.w, rejects);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* "dup": duplicate channel id, adopted UUID and channel count.        */

/* The only reply (after CREDITs) must be ACCEPT, naming the destination's
 * blocks: those of the image every destination child lays out. */
static bool expect_accept(struct raw_conn *rc, const char *name)
{
	static struct rmig_wire_block blocks[RMIG_MAX_BLOCKS];
	struct tu_image im; /* layout only */
	struct raw_msg m;
	unsigned nb = 0;
	uint32_t rxd = 0;
	unsigned credits = 0;
	bool ok = true;
	int ret;

	tu_image_layout(&im, (size_t)IMAGE_MIB << 20, PAGE, 1);
	/* A CREDIT (it reveals nothing) may come first; then ACCEPT. */
	while ((ret = raw_recv(rc, 10000, &m)) == 1 &&
	       m.type == RMIG_MSG_CREDIT && credits < RAW_NRX - 1)
		credits++;
	if (!TU_CHECK(ret == 1 && m.type == RMIG_MSG_ACCEPT,
		      "case '%s': want ACCEPT, got %d / imm 0x%08x (%s)", name,
		      ret, ret == 1 ? m.imm : 0,
		      ret == 1 ? rmig_msg_type_name(m.type) : "-"))
		return false;
	if (!TU_RMIG_OK(rmig_accept_decode(m.buf, m.len, &rxd, blocks, &nb)))
		return false;
	ok &= TU_CHECK(nb == im.nblocks, "%u blocks in ACCEPT", nb);
	for (unsigned b = 0; ok && b < nb; b++)
		ok &= TU_CHECK(!strcmp(blocks[b].name, im.b[b].name) &&
				       blocks[b].length == im.b[b].len &&
				       blocks[b].page_size == PAGE,
			       "ACCEPT block %u: \"%s\" %" PRIu64 " bytes page "
			       "%u, want \"%s\" %zu",
			       b, blocks[b].name, blocks[b].length,
			       blocks[b].page_size, im.b[b].name,
			       im.b[b].len);
	ok &= TU_CHECK(rxd > 0, "destination rx depth 0");
	tu_msg("case %-34s ACCEPT: %u blocks, dest rx depth %u (after %u "
	       "CREDIT)", name, nb, rxd, credits);
	return ok;
}

/* Connect in @slot, authenticate and send @h: the destination must take
 * it, and say nothing (no ACCEPT: that comes when every channel has
 * authenticated) within @quiet_ms. */
static bool raw_handshook(struct raw *r, unsigned slot, struct raw_conn *rc,
			  const struct rmig_handshake *h, const char *name,
			  int quiet_ms)
{
	struct raw_msg m;
	int ret;

	if (!raw_connect(r, slot, rc) || !raw_auth(rc, h) || !send_hs(rc, h))
		return false;
	while ((ret = raw_recv(rc, quiet_ms, &m)) == 1 &&
	       m.type == RMIG_MSG_CREDIT)
		;
	tu_msg("case %-34s authenticated, handshake sent: %s", name,
	       ret == 0 ? "no answer yet" : "answered");
	return TU_CHECK(ret == 0, "case '%s': %s before every channel "
				  "authenticated", name,
			ret == 1 ? rmig_msg_type_name(m.type) :
				   "connection lost");
}

/* Connect in @slot, authenticate and send @h, the last channel: the
 * destination must accept it. */
static bool raw_accepted(struct raw *r, unsigned slot, struct raw_conn *rc,
			 const struct rmig_handshake *h, const char *name)
{
	return raw_connect(r, slot, rc) && raw_auth(rc, h) && send_hs(rc, h) &&
	       expect_accept(rc, name);
}

static int run_dup(void *arg)
{
	struct ctx *cx = arg;
	static const struct expect dup = {
		{ RMIG_REJECT_DUPLICATE_CHANNEL }, { "duplicate", "already" },
		"0"
	};
	static const struct expect uuid = { .reasons = { RMIG_REJECT_UUID },
					    .kw = { "uuid" } };
	static const struct expect count = {
		{ RMIG_REJECT_CHANNEL_COUNT }, { "count", "channels" }, "3"
	};
	struct raw_conn x0 = { 0 }, x1 = { 0 }, y = { 0 };
	struct rmig_handshake h;
	struct raw r;
	unsigned rejects = 0;
	bool ok = false;

	if (!raw_open(&r, cx->addr))
		return 1;
	r.auth_uuid = cx->adopt ? NULL : cx->uuid;
	/* A valid channel 0: no ACCEPT yet. */
	good_hs(&h, cx->uuid, 0);
	if (!raw_handshook(&r, 0, &x0, &h, "valid channel 0", 500))
		goto out;
	/* Channel 0 again. */
	if (!raw_rejected(&r, 1, &y, &h, "duplicate channel 0", &dup,
			  &rejects))
		goto out;
	raw_disconnect(&y);
	/* Channel 1 of another session. */
	good_hs(&h, cx->other_uuid, 1);
	if (!raw_rejected(&r, 1, &y, &h, "channel 1, other uuid", &uuid,
			  &rejects))
		goto out;
	raw_disconnect(&y);
	/* Channel 1 announcing another channel count. */
	good_hs(&h, cx->uuid, 1);
	h.channel_count = 3;
	if (!raw_rejected(&r, 1, &y, &h, "channel 1, count 3", &count,
			  &rejects))
		goto out;
	raw_disconnect(&y);
	/* The real channel 1: both channels get their ACCEPT. */
	good_hs(&h, cx->uuid, 1);
	ok = raw_accepted(&r, 2, &x1, &h, "valid channel 1") &&
	     expect_accept(&x0, "channel 0, once channel 1 came");
out:
	/* The raw "source" goes away; the destination must notice. */
	tu_sleep_ms(300);
	tu_send_u64(cx->note.w, tu_now_ns());
	raw_disconnect(&y);
	raw_disconnect(&x1);
	raw_disconnect(&x0);
	raw_close(&r);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* A real source and destination (small, one round).                   */

static const char blob_id[] = "0000:00:1f.0/ich9-lpc";

static int run_good_src(void *arg)
{
	struct tu_baseline base = tu_take_baseline();
	struct ctx *cx = arg;
	struct rmig_config cfg;
	struct rmig_stats st = { .size = sizeof(st) };
	struct tu_image im;
	uint64_t *offs[TU_MAX_BLOCKS] = { 0 }, normal = 0, zero = 0;
	size_t n[TU_MAX_BLOCKS];
	uint8_t blob[100000];
	rmig_src *s = NULL;
	bool ok = false;

	if (tu_image_setup(&im, (size_t)IMAGE_MIB << 20, PAGE, 1, false))
		return 1;
	if (!tu_offs_alloc(offs, &im))
		goto out;
	memset(blob, 0x3c, sizeof(blob));
	tu_config(&cfg, cx->addr, CHANNELS, PAGE,
		  cx->src_no_uuid ? NULL : cx->src_uuid ? cx->src_uuid :
							  cx->uuid);
	if (cx->connect_timeout_ms)
		cfg.connect_timeout_ms = cx->connect_timeout_ms;
	if (!tu_src_open(&s, &cfg, &im, false))
		goto out;
	{
		uint64_t t0 = tu_now_ns();

		if (!TU_RMIG_OK(rmig_src_connect(s)))
			goto out;
		tu_msg("rmig_src_connect: %.1f ms (connect timeout %u ms)",
		       tu_ms_since(t0), cfg.connect_timeout_ms);
	}
	tu_image_write_round(&im, 0, offs, n, &normal, &zero);
	for (unsigned b = 0; b < im.nblocks; b++)
		if (!TU_RMIG_OK(rmig_src_queue_pages(s, (int)b, offs[b], n[b])))
			goto out;
	if (!TU_RMIG_OK(rmig_src_send_devstate(s, blob_id, 3, blob,
					       sizeof(blob))) ||
	    !TU_RMIG_OK(rmig_src_finish(s)) ||
	    !TU_RMIG_OK(rmig_src_get_stats(s, &st)))
		goto out;
	tu_print_stats("src", &st);
	ok = TU_CHECK(st.normal_pages == normal && st.zero_pages == zero,
		      "src pages %" PRIu64 "/%" PRIu64 ", want %" PRIu64
		      "/%" PRIu64,
		      st.normal_pages, st.zero_pages, normal, zero);
	ok &= tu_stats_coherent(&st, CHANNELS);
	tu_msg("migration after the rejections: done");
out:
	ok &= tu_src_destroy(s, &base, 0);
	tu_offs_free(offs);
	tu_image_free(&im);
	return ok ? 0 : 1;
}

/* Destination side of a good migration, after rmig_dest_accept(). */
static bool dest_finish_good(rmig_dest *d, struct tu_image *im)
{
	struct rmig_devstate *ds = NULL;
	int ret;

	do {
		ret = rmig_dest_wait_sync(d, 60000);
		if (!TU_RMIG_OK(ret))
			return false;
	} while (ret == 0);
	if (!TU_RMIG_OK(rmig_dest_recv_devstate(d, &ds)))
		return false;
	ret = TU_CHECK(!strcmp(ds->idstr, blob_id) && ds->instance_id == 3 &&
			       ds->len == 100000 &&
			       ((uint8_t *)ds->data)[99999] == 0x3c,
		       "device state blob damaged");
	rmig_devstate_free(ds);
	return ret && TU_RMIG_OK(rmig_dest_finish(d)) &&
	       TU_CHECK(tu_image_verify(im, 0) == 0, "image differs");
}

/* The same, where the good source is the only one that handshakes ("forget"
 * and "silent"): no rejection counted, and stats that add up. */
static bool dest_good_end(rmig_dest *d, struct tu_image *im)
{
	struct rmig_stats st = { .size = sizeof(st) };
	bool ok;

	if (!dest_finish_good(d, im) ||
	    !TU_RMIG_OK(rmig_dest_get_stats(d, &st)))
		return false;
	tu_print_stats("dest", &st);
	ok = TU_CHECK(st.rejected_handshakes == 0,
		      "%" PRIu64 " handshakes rejected",
		      st.rejected_handshakes);
	ok &= tu_stats_coherent(&st, CHANNELS);
	return ok;
}

/*
 * A destination child: lays out the image, listens on 127.0.0.1:0 with
 * @channels and @uuid (0 / NULL: adopt the source's), hands the address to
 * the parent and runs @body; then the session's destroy (within
 * @destroy_ms, 0: no limit) must leave no thread and no fd behind.
 */
static int dest_child(struct ctx *cx, unsigned channels, const uint8_t *uuid,
		      int destroy_ms,
		      bool (*body)(struct ctx *, rmig_dest *,
				   struct tu_image *))
{
	struct tu_baseline base = tu_take_baseline();
	struct rmig_config cfg;
	struct tu_image im;
	char addr[TU_ADDR_MAX];
	rmig_dest *d = NULL;
	bool ok = false;

	if (tu_image_setup(&im, (size_t)IMAGE_MIB << 20, PAGE, 1, true))
		return 1;
	tu_config(&cfg, tu_listen_addr(), channels, PAGE, uuid);
	if (cx->connect_timeout_ms)
		cfg.connect_timeout_ms = cx->connect_timeout_ms;
	if (tu_dest_listen(&d, &cfg, &im, false, addr) &&
	    TU_CHECK(tu_addr_on_host(addr), "address %s", addr) &&
	    TU_CHECK(!tu_send_str(cx->addrp.w, addr), "address pipe"))
		ok = body(cx, d, &im);
	ok &= tu_dest_destroy(d, &base, destroy_ms);
	tu_image_free(&im);
	return ok ? 0 : 1;
}

/* The raw client's word on the note pipe, within @ms. */
#define RAW_NOTE(cx, v, ms)                                                  \
	TU_CHECK(!tu_recv_u64((cx)->note.r, (v), (ms)),                      \
		 "no note from the raw client")

/* "raw", "extra", "dup": the raw client's cases, then (but for "dup") the
 * good source; the handshakes rejected as counted in @cx. */
static bool dest_raw_client(struct ctx *cx, rmig_dest *d,
			    struct tu_image *im)
{
	struct rmig_stats st = { .size = sizeof(st) };
	uint64_t t0 = tu_now_ns();
	int ret;

	ret = rmig_dest_accept(d, accept_timeout_ms());
	if (!TU_RMIG_OK(ret))
		return false;
	tu_msg("rmig_dest_accept returned after %.1f ms", tu_ms_since(t0));

	if (!strcmp(cx->mode, "dup")) {
		uint64_t t_gone = 0;

		/* The raw source goes away: wait_sync must fail, promptly. */
		ret = rmig_dest_wait_sync(d, 30000);
		t0 = tu_now_ns();
		if (!RAW_NOTE(cx, &t_gone, 5000))
			return false;
		tu_msg("wait_sync after the peer left: %d (%s) %.1f ms after "
		       "it closed",
		       ret, rmig_last_error(), (double)(t0 - t_gone) / 1e6);
		if (!TU_CHECK(ret < 0 && ret != -ETIMEDOUT,
			      "wait_sync returned %d", ret) ||
		    !TU_CHECK(t0 - t_gone < 10000000000ull,
			      "peer loss noticed after %.1f ms",
			      (double)(t0 - t_gone) / 1e6))
			return false;
	} else {
		if (!dest_finish_good(d, im))
			return false;
	}
	if (!strcmp(cx->mode, "extra")) {
		uint64_t seen = 0;

		if (!RAW_NOTE(cx, &seen, 5000))
			return false;
		cx->expect_rejected = (unsigned)seen;
	}
	if (!TU_RMIG_OK(rmig_dest_get_stats(d, &st)))
		return false;
	tu_print_stats("dest", &st);
	return TU_CHECK(st.rejected_handshakes == cx->expect_rejected ||
				(cx->expect_rejected_min &&
				 st.rejected_handshakes >= cx->expect_rejected),
			"rejected_handshakes %" PRIu64 ", want %s%u",
			st.rejected_handshakes,
			cx->expect_rejected_min ? ">= " : "",
			cx->expect_rejected);
}

static int run_dest(void *arg)
{
	struct ctx *cx = arg;

	return dest_child(cx, cx->adopt ? 0 : CHANNELS,
			  cx->adopt ? NULL : cx->uuid, 10000, dest_raw_client);
}

/* ------------------------------------------------------------------ */
/* "srcreject" and "refused": the source's view.                        */

struct canceller {
	rmig_dest *d;
	int fd;
	uint64_t t_cancel;
};

static void *cancel_thread(void *arg)
{
	struct canceller *c = arg;
	uint64_t v;

	/* Wait for the source to be done (or the pipe to close). */
	tu_recv_u64(c->fd, &v, accept_timeout_ms() - 5000);
	c->t_cancel = tu_now_ns();
	rmig_dest_cancel(c->d);
	return NULL;
}

static bool dest_srcreject(struct ctx *cx, rmig_dest *d, struct tu_image *im)
{
	struct rmig_stats st = { .size = sizeof(st) };
	struct canceller can = { .d = d, .fd = cx->note.r };
	pthread_t th;
	bool ok;
	int ret;

	(void)im;
	if (pthread_create(&th, NULL, cancel_thread, &can))
		return false;
	ret = rmig_dest_accept(d, accept_timeout_ms());
	pthread_join(th, NULL);
	tu_msg("rmig_dest_accept: %d (%s), %.1f ms after rmig_dest_cancel",
	       ret, rmig_last_error(), tu_ms_since(can.t_cancel));
	ok = TU_CHECK(ret < 0, "accept succeeded with a foreign source");
	ok &= TU_CHECK(ret == -ECANCELED,
		       "accept interrupted by rmig_dest_cancel returned %d, "
		       "want -ECANCELED", ret);
	ok &= TU_CHECK(tu_ms_since(can.t_cancel) < 5000,
		       "accept returned %.1f ms after cancel",
		       tu_ms_since(can.t_cancel));
	ok &= TU_RMIG_OK(rmig_dest_get_stats(d, &st));
	tu_print_stats("dest", &st);
	ok &= TU_CHECK(st.rejected_handshakes >= 1, "rejected %" PRIu64,
		       st.rejected_handshakes);
	ok &= TU_CHECK(rmig_dest_state(d) != RMIG_STATE_ACTIVE &&
			       rmig_dest_state(d) != RMIG_STATE_COMPLETED,
		       "state %s after cancel",
		       rmig_state_name(rmig_dest_state(d)));
	return ok;
}

static int run_dest_reject(void *arg)
{
	struct ctx *cx = arg;

	return dest_child(cx, CHANNELS, cx->uuid, 0, dest_srcreject);
}

static int src_expect_refused(const char *addr, const uint8_t *uuid,
			      int want_ret, const char *want_in_msg,
			      int max_ms, char msg[1024])
{
	struct tu_baseline base = tu_take_baseline();
	struct rmig_config cfg;
	uint8_t *mem = tu_alloc(1u << 20, 4096);
	rmig_src *s = NULL;
	bool ok = false;
	uint64_t t0;
	int ret;

	if (!mem)
		return 1;
	tu_config(&cfg, addr, CHANNELS, PAGE, uuid);
	if (!TU_RMIG_OK(rmig_src_create(&cfg, &s)) ||
	    !TU_RMIG_OK(rmig_src_add_block(s, "pc.ram", mem, 1u << 20)))
		goto out;
	t0 = tu_now_ns();
	ret = rmig_src_connect(s);
	snprintf(msg, 1024, "%s", rmig_last_error());
	tu_msg("rmig_src_connect(%s): %d (%s) after %.1f ms: \"%s\"", addr,
	       ret, strerror(-ret), tu_ms_since(t0), msg);
	ok = TU_CHECK(ret == want_ret, "connect returned %d, want %d", ret,
		      want_ret);
	ok &= TU_CHECK(tu_ms_since(t0) < max_ms, "connect took %.1f ms",
		       tu_ms_since(t0));
	ok &= TU_CHECK(tu_strcasestr(msg, want_in_msg),
		       "rmig_last_error() \"%s\" does not contain \"%s\"", msg,
		       want_in_msg);
	ok &= TU_CHECK(rmig_src_state(s) != RMIG_STATE_ACTIVE &&
			       rmig_src_state(s) != RMIG_STATE_COMPLETED,
		       "state %s", rmig_state_name(rmig_src_state(s)));
	/* Sticky: nothing can be queued on a session that never connected. */
	ret = rmig_src_queue_page(s, 0, 0);
	ok &= TU_CHECK(ret < 0, "queue_page after failed connect: %d", ret);
out:
	ok &= tu_src_destroy(s, &base, 10000);
	tu_free(mem, 1u << 20);
	return ok ? 0 : 1;
}

static int run_src_reject(void *arg)
{
	struct ctx *cx = arg;
	char hex[33], dashed[37], msg[1024] = "";
	int rc, n = 0;

	/* A UUID other than the destination's is an authentication
	 * failure like a wrong secret: the source finds the destination's
	 * MAC wrong and stops, and learns nothing: not the UUID the
	 * destination expected (in the old protocol, its REJECT said it). */
	rc = src_expect_refused(cx->addr, cx->other_uuid, -EACCES,
				"did not prove the secret", 10000, msg);
	for (int i = 0; i < 16; i++) {
		snprintf(hex + 2 * i, 3, "%02x", cx->uuid[i]);
		n += snprintf(dashed + n, sizeof(dashed) - (size_t)n, "%s%02x",
			      i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "",
			      cx->uuid[i]);
	}
	if (!TU_CHECK(!tu_strcasestr(msg, hex) && !tu_strcasestr(msg, dashed),
		      "rmig_last_error() \"%s\" reveals the destination's "
		      "UUID %s", msg, dashed))
		rc = 1;

	tu_send_u64(cx->note.w, 1);
	return rc;
}

static int run_src_refused(void *arg)
{
	struct ctx *cx = arg;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char msg[1024] = "";

	/* A port on the test's host (127.0.0.1, or the RDMA device's IPv4
	 * address) that nobody listens on: bind, read, close. */
	if (fd < 0 || inet_pton(AF_INET, tu_host(), &sin.sin_addr) != 1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl))
		return 1;
	close(fd);
	snprintf(cx->addr, sizeof(cx->addr), "%s:%u", tu_host(),
		 ntohs(sin.sin_port));
	/* The message names where: the address tried. */
	return src_expect_refused(cx->addr, cx->uuid, -ECONNREFUSED, cx->addr,
				  10000, msg);
}

/* ------------------------------------------------------------------ */
/* "forget": a failed accept forgets the UUID and count it adopted.     */

#define FORGET_ACCEPT1_MS 4000

static int run_forget_raw(void *arg)
{
	struct ctx *cx = arg;
	struct raw_conn x0 = { 0 };
	struct rmig_handshake h;
	struct raw r;
	uint64_t v = 0;
	bool ok = false;

	if (!raw_open(&r, cx->addr))
		goto note;
	r.auth_uuid = NULL; /* the destination has none */
	/* The destination starts its short accept now. */
	tu_send_u64(cx->note.w, 1);
	good_hs(&h, cx->uuid, 0); /* channel 0 of 2, UUID A */
	ok = raw_handshook(&r, 0, &x0, &h, "valid channel 0 of 2, uuid A",
			   500);
note:
	/* Tell the destination whether it did take us (so adopted A and
	 * the count of 2), then keep the connection until its accept has
	 * given up on channel 1. */
	tu_send_u64(cx->note.w, ok ? 2 : 0);
	if (ok)
		ok = TU_CHECK(!tu_recv_u64(cx->back.r, &v, 60000),
			      "no word from the destination");
	raw_disconnect(&x0);
	raw_close(&r);
	return ok ? 0 : 1;
}

static bool dest_forget(struct ctx *cx, rmig_dest *d, struct tu_image *im)
{
	uint64_t v = 0, t0;
	bool ok = false, worded = false;
	int ret;

	if (!TU_CHECK(!tu_recv_u64(cx->note.r, &v, 30000) && v == 1,
		      "the raw client did not start"))
		goto out;
	t0 = tu_now_ns();
	ret = rmig_dest_accept(d, FORGET_ACCEPT1_MS);
	tu_msg("first rmig_dest_accept: %d (%s) after %.1f ms", ret,
	       rmig_last_error(), tu_ms_since(t0));
	if (!RAW_NOTE(cx, &v, 10000) ||
	    !TU_CHECK(v == 2, "the raw client's channel 0 was not taken: "
			      "the test did not set up what it tests"))
		goto out;
	if (!TU_CHECK(ret == -ETIMEDOUT, "first accept returned %d, want "
					 "-ETIMEDOUT (channel 1 never came)",
		      ret) ||
	    !TU_CHECK(strstr(rmig_last_error(), "1 of 2"),
		      "\"%s\" does not say 1 of 2 channels connected",
		      rmig_last_error()))
		goto out;
	ok = TU_CHECK(rmig_dest_state(d) == RMIG_STATE_SETUP,
		      "state %s after a failed accept",
		      rmig_state_name(rmig_dest_state(d)));
	/* The raw client may go; a real source with another UUID comes. */
	tu_send_u64(cx->back.w, 1);
	worded = true;
	if (!TU_CHECK(!tu_send_str(cx->addrp.w, ok ? "accept again" :
							"failed"),
		      "pipe") || !ok)
		return false;
	t0 = tu_now_ns();
	ret = rmig_dest_accept(d, 30000);
	tu_msg("second rmig_dest_accept: %d (%s) after %.1f ms", ret,
	       ret ? rmig_last_error() : "", tu_ms_since(t0));
	ok = TU_CHECK(ret == 0, "accept of source B after the failed accept "
				"of A: %d (%s)", ret, rmig_last_error()) &&
	     dest_good_end(d, im);
out:
	/* Nobody waits for words that will not come. */
	if (!worded) {
		tu_send_u64(cx->back.w, 0);
		/* the address went out: the parent waits for more */
		tu_send_str(cx->addrp.w, "failed");
	}
	return ok;
}

static int run_forget_dest(void *arg)
{
	/* No UUID, no channel count: both come from the first handshake. */
	return dest_child(arg, 0, NULL, 0, dest_forget);
}

/* ------------------------------------------------------------------ */
/* "silent": a connection that says nothing does not starve the source. */

#define SILENT_CONNECT_MS 4000

static int run_silent_raw(void *arg)
{
	struct ctx *cx = arg;
	struct raw_conn x = { 0 };
	struct raw_msg m;
	struct raw r;
	uint64_t t_conn;
	bool ok = false;
	int ret;

	if (!raw_open(&r, cx->addr) || !raw_connect(&r, 0, &x))
		goto out;
	/* Established: the destination is waiting for our handshake. */
	t_conn = tu_now_ns();
	tu_send_u64(cx->note.w, t_conn);
	tu_send_u64(cx->go.w, t_conn);
	/* We say nothing; the destination must give up on us, in a
	 * quarter of its connect timeout, without sending anything. */
	ret = raw_recv(&x, 3 * SILENT_CONNECT_MS, &m);
	tu_msg("silent connection: %d%s%s after %.1f ms", ret,
	       ret == 1 ? " message " : "",
	       ret == 1 ? rmig_msg_type_name(m.type) : "", tu_ms_since(t_conn));
	ok = TU_CHECK(ret < 0, "the silent connection got %s",
		      ret == 1 ? rmig_msg_type_name(m.type) :
				 "no close within 3 connect timeouts");
	ok &= TU_CHECK(tu_ms_since(t_conn) < SILENT_CONNECT_MS,
		       "the silent connection was closed after %.1f ms, not "
		       "within the connect timeout (%d ms)",
		       tu_ms_since(t_conn), SILENT_CONNECT_MS);
out:
	if (!ok)
		tu_send_u64(cx->go.w, 0);
	raw_disconnect(&x);
	raw_close(&r);
	return ok ? 0 : 1;
}

static bool dest_silent(struct ctx *cx, rmig_dest *d, struct tu_image *im)
{
	uint64_t t_silent = 0, t_done;
	int ret = rmig_dest_accept(d, 30000);

	t_done = tu_now_ns();
	if (!RAW_NOTE(cx, &t_silent, 5000))
		return false;
	tu_msg("rmig_dest_accept: %d (%s), %.1f ms after the silent "
	       "connection was established", ret, ret ? rmig_last_error() : "",
	       (double)(t_done - t_silent) / 1e6);
	if (!TU_RMIG_OK(ret))
		return false;
	/* Silent connection dropped after connect_timeout / 4, then the
	 * source's channels: all of it well within one connect timeout. */
	return TU_CHECK(t_done - t_silent < SILENT_CONNECT_MS * 1000000ull,
			"accept completed %.1f ms after the silent connection "
			"came, not within the connect timeout (%d ms)",
			(double)(t_done - t_silent) / 1e6, SILENT_CONNECT_MS) &&
	       dest_good_end(d, im);
}

static int run_silent_dest(void *arg)
{
	struct ctx *cx = arg;

	return dest_child(cx, CHANNELS, cx->uuid, 0, dest_silent);
}

/* ------------------------------------------------------------------ */
/* "dsgap": a device-state blob missing at a sync.                      */

static const char gap_id[] = "gap/dev";

static int run_dsgap_raw(void *arg)
{
	struct ctx *cx = arg;
	struct raw_conn x = { 0 };
	struct rmig_handshake h;
	struct rmig_sync_msg sm = { .flags = 0, .sync_num = 1, .packets = 0 };
	uint8_t data[16], buf[256];
	char text[RMIG_ERROR_TEXT_MAX] = "";
	struct raw_msg m;
	struct raw r;
	int errnum = 0, ret;
	size_t len;
	bool ok = false;

	memset(data, 0x5a, sizeof(data));
	if (!raw_open(&r, cx->addr))
		goto out;
	r.auth_uuid = cx->uuid;
	good_hs(&h, cx->uuid, 0);
	h.channel_count = 1;
	if (!raw_accepted(&r, 0, &x, &h, "valid channel 0 of 1"))
		goto out;
	/* Blob 1, whole in one fragment; blob 0 is never sent.  Each
	 * message goes from its own tx buffer (in the other slots' area of
	 * the registered memory), so none is overwritten in flight. */
	{
		struct rmig_devstate_frag f = {
			.seq = 1,
			.instance_id = 7,
			.total_len = sizeof(data),
			.frag_off = 0,
			.frag_len = sizeof(data),
			.idstr = gap_id,
			.idstr_len = sizeof(gap_id),
			.data = data,
		};

		len = rmig_devstate_encode(&f, buf, sizeof(buf));
		if (!TU_CHECK(len > 0, "devstate encode") ||
		    !raw_send_from(&x, r.mem + (size_t)1 * RAW_BUFS *
					   RMIG_MSG_SIZE, buf, len,
				   rmig_imm_make(RMIG_MSG_DEVSTATE, 0)))
			goto out;
	}
	len = rmig_sync_encode(&sm, buf);
	if (!raw_send_from(&x, r.mem + (size_t)2 * RAW_BUFS * RMIG_MSG_SIZE,
			   buf, len, rmig_imm_make(RMIG_MSG_SYNC, 0)))
		goto out;
	/* The destination's answer: ERROR (CREDITs may come first; never a
	 * SYNC_ACK). */
	while ((ret = raw_recv(&x, 15000, &m)) == 1 &&
	       m.type == RMIG_MSG_CREDIT)
		;
	if (!TU_CHECK(ret == 1, "no ERROR from the destination (%d: %s)",
		      ret, ret ? rmig_last_error() : "nothing within 15 s") ||
	    !TU_CHECK(m.type == RMIG_MSG_ERROR, "got imm 0x%08x (%s), want "
						"ERROR", m.imm,
		      rmig_msg_type_name(m.type)) ||
	    !TU_RMIG_OK(rmig_error_decode(m.buf, m.len, &errnum, text,
					  sizeof(text))))
		goto out;
	tu_msg("ERROR from the destination: errno %d (%s): \"%s\"", errnum,
	       strerror(errnum), text);
	ok = TU_CHECK(errnum == EPROTO, "ERROR carries errno %d, want EPROTO "
					"(%d)", errnum, EPROTO);
	ok &= TU_CHECK(strstr(text, "blob 0 missing"),
		       "ERROR text \"%s\" does not name the missing blob",
		       text);
out:
	tu_send_u64(cx->note.w, ok ? 1 : 0);
	raw_disconnect(&x);
	raw_close(&r);
	return ok ? 0 : 1;
}

static bool dest_dsgap(struct ctx *cx, rmig_dest *d, struct tu_image *im)
{
	struct rmig_devstate *ds = NULL;
	char msg[512];
	uint64_t v = 0;
	bool ok;
	int ret;

	(void)im;
	if (!TU_RMIG_OK(rmig_dest_accept(d, 30000)))
		return false;
	ret = rmig_dest_wait_sync(d, 20000);
	snprintf(msg, sizeof(msg), "%s", rmig_last_error());
	tu_msg("rmig_dest_wait_sync: %d, rmig_last_error() \"%s\", "
	       "rmig_dest_error() \"%s\"", ret, msg, rmig_dest_error(d));
	ok = TU_CHECK(ret == -EPROTO, "wait_sync returned %d, want -EPROTO "
				      "(blob 1 arrived, blob 0 never did)",
		      ret);
	ok &= TU_CHECK(strstr(rmig_dest_error(d), "blob 0 missing"),
		       "session error \"%s\" does not name the missing blob",
		       rmig_dest_error(d));
	ok &= TU_CHECK(strstr(msg, "blob 0 missing"),
		       "rmig_last_error() \"%s\" after wait_sync failed does "
		       "not name the missing blob", msg);
	ok &= TU_CHECK(rmig_dest_state(d) == RMIG_STATE_FAILED, "state %s",
		       rmig_state_name(rmig_dest_state(d)));
	/* Blob 1 is never handed out: blob 0 comes first. */
	ok &= TU_CHECK(rmig_dest_recv_devstate(d, &ds) == -EAGAIN,
		       "recv_devstate handed out a blob past the gap");
	if (ds)
		rmig_devstate_free(ds);
	/* Keep the connection until the raw client has the ERROR. */
	ok &= RAW_NOTE(cx, &v, 30000);
	return ok;
}

static int run_dsgap_dest(void *arg)
{
	struct ctx *cx = arg;

	return dest_child(cx, 1, cx->uuid, 0, dest_dsgap);
}

/* ------------------------------------------------------------------ */
/* Parent                                                              */

/* Fork @name running @fn; a parent that cannot fork gives up (exit 1). */
static void spawn_or_exit(struct tu_child *ch, int *n, const char *name,
			  int (*fn)(void *), struct ctx *cx)
{
	if (tu_spawn(&ch[(*n)++], name, fn, cx))
		exit(1);
}

/* Spawn the destination child @dest and, once it has handed over its
 * address, @client (as @name).  False when no address came. */
static bool spawn_dest_and(struct tu_child *ch, int *n, struct ctx *cx,
			   int (*dest)(void *), const char *name,
			   int (*client)(void *))
{
	spawn_or_exit(ch, n, "dest", dest, cx);
	if (!TU_CHECK(!tu_recv_str(cx->addrp.r, cx->addr, 30000),
		      "no address from the destination"))
		return false;
	spawn_or_exit(ch, n, name, client, cx);
	return true;
}

int main(int argc, char **argv)
{
	static struct ctx cx;
	struct tu_child ch[3];
	uint64_t t0 = tu_now_ns();
	int n = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: test_handshake raw|dup [adopt=1]|"
				"extra|srcreject|refused|forget|silent|"
				"dsgap [transport=fabric|verbs]\n");
		return 2;
	}
	cx.mode = argv[1];
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "adopt=1")) {
			cx.adopt = true;
		} else if (!strncmp(argv[i], "transport=", 10)) {
			int r = tu_set_transport(argv[i] + 10);

			if (r)
				return r == -ENODEV ? 77 : 2;
		} else {
			fprintf(stderr, "unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	tu_uuid(cx.uuid, 0xabcdef01);
	tu_uuid(cx.other_uuid, 0x10fedcba);
	if (tu_pipe_open(&cx.addrp) || tu_pipe_open(&cx.note) ||
	    tu_pipe_open(&cx.back) || tu_pipe_open(&cx.go))
		return 1;
	memset(ch, 0, sizeof(ch));
	tu_msg("test_handshake %s%s", cx.mode,
	       cx.adopt ? " (dest adopts)" : "");

	if (!strcmp(cx.mode, "refused")) {
		spawn_or_exit(ch, &n, "src", run_src_refused, &cx);
	} else if (!strcmp(cx.mode, "srcreject")) {
		cx.expect_rejected = 1;
		cx.expect_rejected_min = true;
		spawn_dest_and(ch, &n, &cx, run_dest_reject, "src",
			       run_src_reject);
	} else if (!strcmp(cx.mode, "forget")) {
		char word[TU_ADDR_MAX];

		/* Source B: its random UUID (a destination without one
		 * authenticates only sources without one); the raw client A
		 * announces cx.uuid in its handshake. */
		cx.src_no_uuid = true;
		if (!spawn_dest_and(ch, &n, &cx, run_forget_dest, "raw",
				    run_forget_raw))
			goto wait;
		/* The source once the destination's first accept failed. */
		if (!TU_CHECK(!tu_recv_str(cx.addrp.r, word, 60000),
			      "the destination's first accept did not end") ||
		    strcmp(word, "accept again"))
			goto wait;
		spawn_or_exit(ch, &n, "src", run_good_src, &cx);
	} else if (!strcmp(cx.mode, "silent")) {
		uint64_t t = 0;

		cx.connect_timeout_ms = SILENT_CONNECT_MS;
		if (!spawn_dest_and(ch, &n, &cx, run_silent_dest, "raw",
				    run_silent_raw))
			goto wait;
		/* The source once the silent connection is established. */
		if (!TU_CHECK(!tu_recv_u64(cx.go.r, &t, 30000) && t,
			      "the silent connection was not established"))
			goto wait;
		spawn_or_exit(ch, &n, "src", run_good_src, &cx);
	} else if (!strcmp(cx.mode, "dsgap")) {
		spawn_dest_and(ch, &n, &cx, run_dsgap_dest, "raw",
			       run_dsgap_raw);
	} else if (!strcmp(cx.mode, "raw") || !strcmp(cx.mode, "extra") ||
		   !strcmp(cx.mode, "dup")) {
		bool dup = !strcmp(cx.mode, "dup");
		int (*client)(void *) = dup ? run_dup
				      : !strcmp(cx.mode, "raw") ? run_raw
								: run_extra;

		cx.expect_rejected = dup ? 3 : NRAW;
		/* extra: at least the REJECTs the client saw (it tells the
		 * destination); silent closes may count too. */
		cx.expect_rejected_min = !strcmp(cx.mode, "extra");
		if (!spawn_dest_and(ch, &n, &cx, run_dest, "raw", client))
			goto wait;
		if (!dup) {
			/* A correct source, once the raw client is done. */
			if (!tu_reap(&ch[1], accept_timeout_ms())) {
				tu_kill(&ch[1]);
				tu_reap(&ch[1], -1);
			}
			tu_msg("raw client finished: %s",
			       tu_child_ok(&ch[1]) ? "ok" : "FAILED");
			spawn_or_exit(ch, &n, "src", run_good_src, &cx);
		}
	} else {
		fprintf(stderr, "unknown mode %s\n", cx.mode);
		return 2;
	}
wait:
	return tu_report(tu_wait_children(ch, n, tu_deadline(), 15000), t0);
}

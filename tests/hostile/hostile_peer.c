/* SPDX-License-Identifier: MIT */
/*
 * hostile_peer - a peer on the migration network that does not hold the
 * secret (issue 9; design in docs/security.rst), written against libfabric
 * directly (hfab.c) and rmig's pure wire encoders (lib/wire*.c,
 * lib/auth.c).  127.0.0.1 only in the tests (tests/hostile/hostile.sh).
 *
 *   hostile_peer MODE [ARGS] --addr HOST:PORT [options]
 *
 *   nokey              a HANDSHAKE as the first message (no HELLO)
 *   wrongkey           HELLO, CHALLENGE, a PROOF made with --key-file (the
 *                      wrong secret); then a HANDSHAKE if still connected
 *   record             the whole exchange with the right --key-file; the
 *                      HELLO and PROOF sent are saved to --rec FILE
 *   replay             the HELLO and PROOF of --rec FILE, replayed to a new
 *                      session (a new destination nonce); then a HANDSHAKE
 *   squat              --count (1) connections announcing --channels (64)
 *                      channels, held: the even ones with a HELLO and never
 *                      a PROOF, the odd ones with a HANDSHAKE (the squat of
 *                      the unauthenticated protocol)
 *   silent N           N connections that never say anything; held (with
 *                      --reconnect, each one the destination closes is
 *                      replaced at once: N are always pending)
 *   rawflood N         N raw TCP connections (no libfabric handshake); held
 *   keywrite RADDR RKEY
 *                      one connection that never authenticates RDMA-WRITEs
 *                      --write-len bytes of 0xEE there; with RADDR '-' it
 *                      reads "RADDR RKEY" lines from stdin once connected,
 *                      one write each, until EOF
 *   impostor           LISTENS at --addr (port 0: any) as a destination
 *                      would; answers a HELLO with a random CHALLENGE and
 *                      records whatever the source sends after it
 *
 * Held connections stay open until SIGTERM/SIGINT or --hold seconds.
 * Progress goes to stderr as "hostile: ..." lines (the test driver waits
 * for "hostile: ready", "hostile: listening on ADDR" and "hostile: write N
 * done"); at the end one JSON line on stdout says what was received:
 * message types, whether an ACCEPT, a block table, the UUID (--uuid), the
 * key (--rkey) or the address (--raddr) ever arrived, reject reasons,
 * writes that completed.
 *
 * Exit: 0 the peer learnt and wrote nothing (verdict "held"), 1 it did
 * ("breached"), 2 usage, 3 the attack could not be played ("error").
 */
#include "hpeer.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "wire.h"

const struct hp_opts *hp_o;
volatile sig_atomic_t hp_stop;

void hp_log(const char *fmt, ...)
{
	va_list ap;

	fputs("hostile: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void hp_note(struct hp_report *r, const char *fmt, ...)
{
	size_t n = strlen(r->note);
	va_list ap;

	if (n && n + 2 < sizeof(r->note)) {
		strcat(r->note, "; ");
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(r->note + n, sizeof(r->note) - n, fmt, ap);
	va_end(ap);
}

const char *hp_type_name(unsigned type)
{
	switch (type) {
	case RMIG_MSG_AUTH_HELLO:
		return "AUTH_HELLO";
	case RMIG_MSG_AUTH_CHALLENGE:
		return "AUTH_CHALLENGE";
	case RMIG_MSG_AUTH_PROOF:
		return "AUTH_PROOF";
	case RMIG_MSG_AUTH_REJECT:
		return "AUTH_REJECT";
	default:
		return rmig_msg_type_name(type);
	}
}

/* ------------------------------------------------------------------ */
/* Scanning what arrived                                               */

void hp_hex(const uint8_t *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int hp_unhex(const char *s, uint8_t *out, size_t n)
{
	size_t got = 0;

	for (; *s && got < 2 * n; s++) {
		int v;

		if (*s == '-')
			continue;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			return -1;
		if (got % 2 == 0)
			out[got / 2] = (uint8_t)(v << 4);
		else
			out[got / 2] |= (uint8_t)v;
		got++;
	}
	return got == 2 * n && !*s ? 0 : -1;
}

/* @text (ASCII, @tlen bytes) in @b, ignoring case and '-' in @b. */
static bool contains_text(const uint8_t *b, size_t blen, const char *text,
			  size_t tlen)
{
	for (size_t i = 0; i < blen; i++) {
		size_t j = 0, k = i;

		while (k < blen && j < tlen) {
			char c = (char)b[k];

			if (c == '-' && j) {
				k++;
				continue;
			}
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (c != text[j])
				break;
			j++;
			k++;
		}
		if (j == tlen)
			return true;
	}
	return false;
}

bool hp_contains(const uint8_t *b, size_t blen, const uint8_t *needle,
		 size_t n)
{
	char hex[2 * 16 + 1];
	size_t off = 0;

	if (n > 16 || !blen)
		return false;
	if (blen >= n && memmem(b, blen, needle, n))
		return true;
	hp_hex(needle, n, hex);
	/* An integer printed with %llx has no leading zeros. */
	while (off + 1 < 2 * n && hex[off] == '0')
		off++;
	return contains_text(b, blen, hex + off, 2 * n - off);
}

static void append(char *list, size_t len, const char *name)
{
	size_t n = strlen(list);

	snprintf(list + n, len - n, "%s%s", n ? "," : "", name);
}

void hp_seen(struct hp_report *r, const struct hf_msg *m)
{
	const struct hp_opts *o = hp_o;
	static const uint8_t zero[16];
	uint8_t be[8];

	r->msgs++;
	r->credits += m->type == RMIG_MSG_CREDIT;
	append(r->types, sizeof(r->types), hp_type_name(m->type));
	if (o->uuid_set && memcmp(o->uuid, zero, 16) &&
	    hp_contains(m->data, m->len, o->uuid, 16))
		r->uuid_seen = true;
	if (o->rkey_set) {
		rmig_put_u64(be, o->rkey);
		r->rkey_seen |= hp_contains(m->data, m->len, be, 8);
	}
	if (o->raddr_set && o->raddr) { /* an offset 0 is in every body */
		rmig_put_u64(be, o->raddr);
		r->raddr_seen |= hp_contains(m->data, m->len, be, 8);
	}
	if (m->type == RMIG_MSG_ACCEPT) {
		struct rmig_wire_block *wb = calloc(RMIG_MAX_BLOCKS,
						    sizeof(*wb));
		uint32_t depth;
		unsigned nb;

		r->accept = true;
		if (wb && !rmig_accept_decode(m->data, m->len, &depth, wb,
					      &nb)) {
			r->blocks_learnt += nb;
			hp_note(r, "ACCEPT: block '%s' at 0x%llx key 0x%llx",
				wb[0].name, (unsigned long long)wb[0].raddr,
				(unsigned long long)wb[0].rkey);
		}
		free(wb);
	} else if (m->type == RMIG_MSG_AUTH_REJECT) {
		enum rmig_auth_reject why;

		append(r->auth_reject, sizeof(r->auth_reject),
		       rmig_auth_reject_decode(m->data, m->len, &why) ?
			       "undecodable" : rmig_auth_reject_name(why));
	} else if (m->type == RMIG_MSG_REJECT) {
		enum rmig_reject why;
		char text[RMIG_REJECT_TEXT_MAX + 1] = "";

		rmig_reject_decode(m->data, m->len, &why, text, sizeof(text));
		snprintf(r->reject_text, sizeof(r->reject_text), "REJECT: %s",
			 text);
	} else if (m->type == RMIG_MSG_ERROR) {
		char text[RMIG_ERROR_TEXT_MAX] = "";
		int errnum;

		rmig_error_decode(m->data, m->len, &errnum, text, sizeof(text));
		snprintf(r->reject_text, sizeof(r->reject_text), "ERROR: %s",
			 text);
	} else if (m->type == RMIG_MSG_AUTH_CHALLENGE) {
		r->challenge_seen = true;
	}
}

unsigned hp_collect(struct hf_ep *e, struct hp_report *r, int quiet_ms)
{
	unsigned got = 0;
	struct hf_msg m;
	int ret;

	while (!hp_stop) {
		ret = hf_recv(e, &m, quiet_ms);
		if (ret == 0)
			break;
		if (ret < 0)
			break;
		hp_seen(r, &m);
		got++;
		if (hf_msg_done(e, &m))
			break;
	}
	return got;
}

/* ------------------------------------------------------------------ */
/* What every attack does                                              */

int hp_connect(struct hf_dom *d, struct hf_ep *e, struct hp_report *r)
{
	int ret;

	r->conns++;
	ret = hf_connect(d, e, hp_o->wait_ms);
	if (ret) {
		r->refused++;
		return ret;
	}
	r->established++;
	return 0;
}

void hp_close(struct hf_ep *e, struct hp_report *r)
{
	r->closed_by_peer += e->peer_closed;
	hf_ep_close(e);
}

int hp_send_handshake(struct hf_ep *e, unsigned channel_id)
{
	const struct hp_opts *o = hp_o;
	struct rmig_handshake h = {
		.magic = RMIG_WIRE_MAGIC,
		.version = RMIG_WIRE_VERSION,
		.channel_id = (uint16_t)channel_id,
		.channel_count = (uint16_t)o->channels,
		.page_size = o->page_size,
		.pages_per_packet = o->ppp,
		.rx_depth = HF_NRX / 2,
		.msg_size = RMIG_MSG_SIZE,
	};
	uint8_t buf[RMIG_HANDSHAKE_LEN];

	/* A guess, not the UUID: whether the destination tells the real
	 * one is what hp_seen() looks for. */
	for (int i = 0; i < 16; i++)
		h.uuid[i] = (uint8_t)(o->uuid[i] ^ 0x5a);
	return hf_send(e, RMIG_MSG_HANDSHAKE, o->credits, buf,
		       rmig_handshake_encode(&h, buf), o->wait_ms);
}

/* ------------------------------------------------------------------ */
/* The report                                                          */

/* A string of the report as a JSON value: text from the peer (a REJECT's)
 * may hold anything, so quotes, backslashes and control bytes become '?'. */
static void json_str(const char *key, const char *v, bool last)
{
	printf("\"%s\":\"", key);
	for (; *v; v++)
		putchar(*v == '"' || *v == '\\' || (unsigned char)*v < 0x20 ?
				'?' : *v);
	printf("\"%s", last ? "" : ",");
}

static void json_num(const char *key, unsigned v)
{
	printf("\"%s\":%u,", key, v);
}

static void json_bool(const char *key, bool v)
{
	printf("\"%s\":%s,", key, v ? "true" : "false");
}

static void print_report(const struct hp_report *r, const char *verdict)
{
	printf("{");
	json_str("mode", hp_o->mode, false);
	json_str("verdict", verdict, false);
	json_num("conns", r->conns);
	json_num("established", r->established);
	json_num("refused", r->refused);
	json_num("closed_by_peer", r->closed_by_peer);
	json_num("msgs", r->msgs);
	json_str("types", r->types, false);
	json_bool("accept", r->accept);
	json_num("blocks_learnt", r->blocks_learnt);
	json_bool("uuid_seen", r->uuid_seen);
	json_bool("rkey_seen", r->rkey_seen);
	json_bool("raddr_seen", r->raddr_seen);
	json_bool("challenge", r->challenge_seen);
	json_str("auth_reject", r->auth_reject, false);
	json_str("reject_text", r->reject_text, false);
	json_str("first", r->first, false);
	json_str("after_hello", r->after_hello, false);
	json_num("writes", r->writes);
	json_num("writes_ok", r->writes_ok);
	json_str("write_error", r->write_error, false);
	json_str("note", r->note, true);
	printf("}\n");
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */

static void usage(void)
{
	fprintf(stderr,
		"usage: hostile_peer MODE [N | RADDR RKEY] --addr HOST:PORT\n"
		"  MODE: nokey wrongkey record replay squat silent rawflood\n"
		"        keywrite impostor (see the head of hostile_peer.c)\n"
		"  --prov NAME (tcp)  --key-file F  --rec F  --uuid HEX\n"
		"  --rkey X  --raddr X  --channels N  --count N  --credits N\n"
		"  --transport NAME (fabric)  --page-size N  --ppp N\n"
		"  --write-len N  --hold S (60)  --wait-ms MS (10000)\n"
		"  --quiet-ms MS (2000)  --ready-ms MS (3000)  --reconnect\n"
		"  --src IPV4 (connect from this address)\n");
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && *s && !*end;
}

static bool parse_uint(const char *s, unsigned min, unsigned max,
		       unsigned *v)
{
	uint64_t x;

	if (!parse_u64(s, &x) || x < min || x > max)
		return false;
	*v = (unsigned)x;
	return true;
}

static int parse_args(int argc, char **argv, struct hp_opts *o)
{
	static const struct option lo[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "prov", required_argument, NULL, 'p' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "rec", required_argument, NULL, 'r' },
		{ "uuid", required_argument, NULL, 'u' },
		{ "rkey", required_argument, NULL, 'K' },
		{ "raddr", required_argument, NULL, 'A' },
		{ "channels", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "credits", required_argument, NULL, 'C' },
		{ "transport", required_argument, NULL, 't' },
		{ "page-size", required_argument, NULL, 'P' },
		{ "ppp", required_argument, NULL, 'q' },
		{ "write-len", required_argument, NULL, 'w' },
		{ "hold", required_argument, NULL, 'h' },
		{ "wait-ms", required_argument, NULL, 'W' },
		{ "quiet-ms", required_argument, NULL, 'Q' },
		{ "ready-ms", required_argument, NULL, 'R' },
		{ "reconnect", no_argument, NULL, 'X' },
		{ "src", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned v = 0;
	int c;

	*o = (struct hp_opts){
		.prov = "tcp", .transport = "fabric", .channels = 1,
		.count = 1, .page_size = 4096, .ppp = 128, .write_len = 4096,
		.hold_s = 60, .wait_ms = 10000, .quiet_ms = 2000,
		.ready_ms = 3000,
	};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		bool ok = true;

		switch (c) {
		case 'a': o->addr = optarg; break;
		case 'p': o->prov = optarg; break;
		case 'k': o->key_file = optarg; break;
		case 'r': o->rec_file = optarg; break;
		case 't': o->transport = optarg; break;
		case 'u':
			ok = !hp_unhex(optarg, o->uuid, 16);
			o->uuid_set = true;
			break;
		case 'K':
			ok = parse_u64(optarg, &o->rkey);
			o->rkey_set = true;
			break;
		case 'A':
			ok = parse_u64(optarg, &o->raddr);
			o->raddr_set = true;
			break;
		case 'c': ok = parse_uint(optarg, 1, 65535, &o->channels); break;
		case 'n': ok = parse_uint(optarg, 1, 100000, &o->count); break;
		case 'C': ok = parse_uint(optarg, 0, 4095, &o->credits); break;
		case 'P': ok = parse_uint(optarg, 1, 1u << 30, &o->page_size); break;
		case 'q': ok = parse_uint(optarg, 1, 1u << 20, &o->ppp); break;
		case 'w':
			ok = parse_uint(optarg, 1, HF_BUF, &v);
			o->write_len = v;
			break;
		case 'h': ok = parse_uint(optarg, 0, 86400, &v); o->hold_s = (int)v; break;
		case 'W': ok = parse_uint(optarg, 1, 600000, &v); o->wait_ms = (int)v; break;
		case 'Q': ok = parse_uint(optarg, 1, 600000, &v); o->quiet_ms = (int)v; break;
		case 'R': ok = parse_uint(optarg, 1, 600000, &v); o->ready_ms = (int)v; break;
		case 'X': o->reconnect = true; break;
		case 'S': o->src = optarg; break;
		default: return -1;
		}
		if (!ok) {
			fprintf(stderr, "hostile_peer: bad value '%s'\n",
				optarg);
			return -1;
		}
	}
	if (optind >= argc || !o->addr)
		return -1;
	o->mode = argv[optind++];
	if (!strcmp(o->mode, "silent") || !strcmp(o->mode, "rawflood")) {
		if (optind >= argc ||
		    !parse_uint(argv[optind++], 1, 100000, &o->count))
			return -1;
	} else if (!strcmp(o->mode, "keywrite")) {
		if (optind + 2 > argc)
			return -1;
		if (strcmp(argv[optind], "-")) {
			if (!parse_u64(argv[optind], &o->raddr) ||
			    !parse_u64(argv[optind + 1], &o->rkey))
				return -1;
			o->raddr_set = o->rkey_set = true;
		}
		optind += 2;
	} else if (!strcmp(o->mode, "squat") && o->channels == 1) {
		o->channels = RMIG_MAX_CHANNELS;
	}
	return optind == argc ? 0 : -1;
}

static void on_signal(int sig)
{
	(void)sig;
	hp_stop = 1;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct hf_dom *, struct hp_report *);
		bool passive;
	} modes[] = {
		{ "nokey", hp_nokey, false },
		{ "wrongkey", hp_wrongkey, false },
		{ "record", hp_record, false },
		{ "replay", hp_replay, false },
		{ "squat", hp_squat, false },
		{ "silent", hp_silent, false },
		{ "keywrite", hp_keywrite, false },
		{ "impostor", hp_impostor, true },
	};
	struct sigaction sa = { .sa_handler = on_signal };
	struct hp_report r = { 0 };
	struct hp_opts o;
	struct hf_dom d;
	bool known = false;
	int ret = 0;

	if (parse_args(argc, argv, &o)) {
		usage();
		return HP_USAGE;
	}
	hp_o = &o;
	setvbuf(stderr, NULL, _IOLBF, 0);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!strcmp(o.mode, "rawflood")) {
		known = true;
		ret = hp_rawflood(&r);
	} else {
		for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
			if (strcmp(o.mode, modes[i].name))
				continue;
			known = true;
			ret = hf_open(&d, o.prov, o.addr, modes[i].passive,
				      o.src);
			if (!ret) {
				ret = modes[i].fn(&d, &r);
				hf_close(&d);
			}
			break;
		}
	}
	if (!known) {
		usage();
		return HP_USAGE;
	}
	r.breach |= r.accept || r.blocks_learnt || r.uuid_seen ||
		    r.rkey_seen || r.raddr_seen || r.writes_ok;
	if (ret && !r.breach) {
		hp_note(&r, "%s", hf_error());
		hp_log("could not play %s: %s", o.mode, hf_error());
	}
	print_report(&r, r.breach ? "breached" : ret ? "error" : "held");
	return r.breach ? HP_BREACHED : ret ? HP_ERROR : HP_HELD;
}

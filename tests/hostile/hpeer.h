/* SPDX-License-Identifier: MIT */
/*
 * hpeer.h - what the hostile peer's files share: its options, the report
 * of what it received, and the attacks (one function each, hattacks.c).
 *
 * hostile_peer.c has main(), the command line, the report's JSON line and
 * the helpers every attack uses (answers collected and scanned for what
 * must never reach an unauthenticated peer); hattacks.c the attacks; hfab.c
 * the libfabric layer below them.
 */
#ifndef RMIG_TESTS_HOSTILE_HPEER_H
#define RMIG_TESTS_HOSTILE_HPEER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hfab.h"

/* Exit codes: what the attack found. */
enum hp_exit {
	HP_HELD = 0,     /* the peer learnt nothing, wrote nothing */
	HP_BREACHED = 1, /* it learnt or wrote something it must not */
	HP_USAGE = 2,
	HP_ERROR = 3,    /* the attack could not be played (no connection,
			    an answer missing that the attack needs) */
};

struct hp_opts {
	const char *mode;
	const char *addr;      /* target; impostor: where to listen */
	const char *prov;      /* libfabric provider, default "tcp" */
	const char *src;       /* IPv4 address to connect from (NULL: any) */
	const char *key_file;  /* wrongkey, record: the secret to use */
	const char *rec_file;  /* record: written; replay: read */
	const char *transport; /* transcript's transport name ("fabric") */
	uint8_t uuid[16];      /* transcript UUID; what must not leak */
	bool uuid_set;
	uint64_t rkey, raddr;  /* what must not leak; keywrite: the target */
	bool rkey_set, raddr_set;
	unsigned channels;     /* HELLO / HANDSHAKE channel count */
	unsigned count;        /* silent, rawflood, squat: connections */
	unsigned credits;      /* credits in our immediates */
	bool reconnect;        /* silent: replace each connection closed */
	uint32_t page_size, ppp;
	size_t write_len;      /* keywrite: bytes per write */
	int hold_s;            /* held connections: at most this long */
	int wait_ms;           /* for each answer */
	int quiet_ms;          /* an exchange ends after this much silence */
	int ready_ms;          /* held connections: "ready" at the latest */
};

/* What the peer received, and the verdict's inputs. */
struct hp_report {
	unsigned conns, established, refused, closed_by_peer;
	unsigned msgs;
	unsigned credits;      /* CREDIT messages among them */
	char types[512];       /* message type names, comma-separated */
	char first[24];        /* impostor: the first message's type */
	char after_hello[256]; /* impostor: what came after the HELLO */
	bool accept;           /* an ACCEPT arrived */
	unsigned blocks_learnt; /* blocks with address and key in it */
	bool uuid_seen, rkey_seen, raddr_seen;
	char auth_reject[128]; /* reasons of the AUTH_REJECTs, in order */
	char reject_text[256]; /* text of a (pre-auth) REJECT or ERROR */
	unsigned writes, writes_ok;
	char write_error[256];
	bool challenge_seen, challenge_verified;
	bool breach;           /* set by the attack */
	char note[256];
};

extern const struct hp_opts *hp_o;
extern volatile sig_atomic_t hp_stop; /* SIGTERM/SIGINT: end holding */

/* Helpers (hostile_peer.c). */
void hp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hp_note(struct hp_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *hp_type_name(unsigned type);
/** Record one received message: type, leaks (UUID, key, address, block
 *  table), reject reasons. */
void hp_seen(struct hp_report *r, const struct hf_msg *m);
/** Receive and record messages until the peer closes, @quiet_ms pass
 *  without one, or hp_stop.  Returns the number received. */
unsigned hp_collect(struct hf_ep *e, struct hp_report *r, int quiet_ms);
/** One connection, as a source would open it; counted in @r. */
int hp_connect(struct hf_dom *d, struct hf_ep *e, struct hp_report *r);
/** Count whether the peer closed @e, then close it. */
void hp_close(struct hf_ep *e, struct hp_report *r);
/** A HANDSHAKE (the pre-authentication first message). */
int hp_send_handshake(struct hf_ep *e, unsigned channel_id);
/** Read a hex string of exactly @n bytes into @out. */
int hp_unhex(const char *s, uint8_t *out, size_t n);
void hp_hex(const uint8_t *p, size_t n, char *out);
/** Whether @b holds @n bytes @needle, raw or as hex text (any case). */
bool hp_contains(const uint8_t *b, size_t blen, const uint8_t *needle,
		 size_t n);

/* The attacks (hattacks.c): each fills @r and returns 0, or -errno when
 * it could not be played (message in hf_error()). */
int hp_nokey(struct hf_dom *d, struct hp_report *r);
int hp_wrongkey(struct hf_dom *d, struct hp_report *r);
int hp_record(struct hf_dom *d, struct hp_report *r);
int hp_replay(struct hf_dom *d, struct hp_report *r);
int hp_squat(struct hf_dom *d, struct hp_report *r);
int hp_silent(struct hf_dom *d, struct hp_report *r);
int hp_rawflood(struct hp_report *r);
int hp_keywrite(struct hf_dom *d, struct hp_report *r);
int hp_impostor(struct hf_dom *d, struct hp_report *r);

#endif /* RMIG_TESTS_HOSTILE_HPEER_H */

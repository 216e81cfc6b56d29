/* SPDX-License-Identifier: MIT */
/*
 * hattacks.c - the hostile peer's attacks, one function each (what each
 * does: the head of hostile_peer.c).  They only record what they receive
 * (hp_seen()); main() turns the report into the verdict.
 */
#include "hpeer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "rmig/rmig.h"
#include "wire.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t hold_end(void)
{
	return now_ms() + (int64_t)hp_o->hold_s * 1000;
}

/* ------------------------------------------------------------------ */
/* The exchange, as a source plays it                                  */

static int load_key(struct rmig_auth_key **key)
{
	if (!hp_o->key_file)
		return hf_fail(-EINVAL, "mode %s needs --key-file", hp_o->mode);
	if (rmig_auth_key_load(hp_o->key_file, key))
		return hf_fail(-EINVAL, "%s", rmig_last_error());
	return 0;
}

/* A HELLO for channel @id with a fresh nonce; its body into @body. */
static int send_hello(struct hf_ep *e, unsigned id,
		      struct rmig_auth_hello *h,
		      uint8_t body[RMIG_AUTH_HELLO_LEN])
{
	*h = (struct rmig_auth_hello){
		.channel_id = (uint16_t)id,
		.channel_count = (uint16_t)hp_o->channels,
		.page_size = hp_o->page_size,
		.pages_per_packet = hp_o->ppp,
	};
	if (rmig_auth_nonce(h->nonce))
		return hf_fail(-EIO, "%s", rmig_last_error());
	return hf_send(e, RMIG_MSG_AUTH_HELLO, hp_o->credits, body,
		       rmig_auth_hello_encode(h, body), hp_o->wait_ms);
}

/* The answer to a HELLO, recorded; 0 with @c when it is a CHALLENGE. */
static int recv_challenge(struct hf_ep *e, struct hp_report *r,
			  struct rmig_auth_challenge *c)
{
	struct hf_msg m;
	int ret;

	/* CREDIT messages (credits granted ahead) are no answer. */
	while ((ret = hf_recv(e, &m, hp_o->wait_ms)) > 0 &&
	       m.type == RMIG_MSG_CREDIT) {
		hp_seen(r, &m);
		hf_msg_done(e, &m);
	}
	if (ret == 0)
		return hf_fail(-ETIMEDOUT, "no answer to the HELLO within %d "
			       "ms", hp_o->wait_ms);
	if (ret < 0)
		return ret;
	hp_seen(r, &m);
	ret = m.type != RMIG_MSG_AUTH_CHALLENGE ?
		      hf_fail(-EPROTO, "the answer to the HELLO is %s",
			      hp_type_name(m.type)) :
		      rmig_auth_challenge_decode(m.data, m.len, c) ?
		      hf_fail(-EPROTO, "%s", rmig_last_error()) : 0;
	hf_msg_done(e, &m);
	return ret;
}

static void transcript(struct rmig_auth_transcript *t,
		       const struct rmig_auth_hello *h,
		       const struct rmig_auth_challenge *c)
{
	*t = (struct rmig_auth_transcript){
		.channel_id = h->channel_id,
		.channel_count = h->channel_count,
		.page_size = h->page_size,
		.pages_per_packet = h->pages_per_packet,
		.transport = hp_o->transport,
	};
	memcpy(t->src_nonce, h->nonce, RMIG_AUTH_NONCE_LEN);
	memcpy(t->dest_nonce, c->nonce, RMIG_AUTH_NONCE_LEN);
	memcpy(t->uuid, hp_o->uuid, 16);
}

/* After a PROOF: the answers; and if the connection is still open, a
 * HANDSHAKE, as if the PROOF had passed, and its answers. */
static void after_proof(struct hf_ep *e, struct hp_report *r)
{
	hp_collect(e, r, hp_o->quiet_ms);
	if (e->peer_closed || hp_stop)
		return;
	hp_note(r, "still connected after the PROOF: sent a HANDSHAKE");
	if (!hp_send_handshake(e, 0))
		hp_collect(e, r, hp_o->quiet_ms);
}

/* ------------------------------------------------------------------ */
/* One connection, one exchange                                        */

int hp_nokey(struct hf_dom *d, struct hp_report *r)
{
	struct hf_ep e;
	int ret = hp_connect(d, &e, r);

	if (ret)
		return ret;
	ret = hp_send_handshake(&e, 0);
	if (!ret)
		hp_collect(&e, r, hp_o->quiet_ms);
	hp_close(&e, r);
	return ret;
}

/*
 * Connect, HELLO, CHALLENGE, and a PROOF made with the secret of
 * --key-file: what a source does.  The HELLO and PROOF sent into @hello
 * and @proof; @e stays open (closed on failure).  @genuine: the CHALLENGE
 * must verify with that secret (-EACCES if not).
 */
static int prove(struct hf_dom *d, struct hf_ep *e, struct hp_report *r,
		 bool genuine, uint8_t hello[RMIG_AUTH_HELLO_LEN],
		 uint8_t proof[RMIG_AUTH_PROOF_LEN])
{
	uint8_t mac[RMIG_AUTH_MAC_LEN];
	struct rmig_auth_transcript t;
	struct rmig_auth_challenge c;
	struct rmig_auth_key *key;
	struct rmig_auth_hello h;
	int ret = load_key(&key);

	if (ret)
		return ret;
	ret = hp_connect(d, e, r);
	if (ret)
		goto out_key;
	ret = send_hello(e, 0, &h, hello);
	if (!ret)
		ret = recv_challenge(e, r, &c);
	if (ret)
		goto err_close;
	transcript(&t, &h, &c);
	r->challenge_verified = !rmig_auth_verify(key, RMIG_AUTH_DEST_TO_SOURCE,
						  &t, c.mac);
	if (genuine && !r->challenge_verified) {
		ret = hf_fail(-EACCES, "the CHALLENGE does not verify with "
			      "the key (transport name '%s' or UUID differ?)",
			      hp_o->transport);
		goto err_close;
	}
	ret = rmig_auth_mac(key, RMIG_AUTH_SOURCE_TO_DEST, &t, mac);
	if (ret) {
		ret = hf_fail(ret, "%s", rmig_last_error());
		goto err_close;
	}
	ret = hf_send(e, RMIG_MSG_AUTH_PROOF, hp_o->credits, proof,
		      rmig_auth_proof_encode(mac, proof), hp_o->wait_ms);
	if (!ret)
		goto out_key;
err_close:
	hp_close(e, r);
out_key:
	rmig_auth_key_free(key);
	return ret;
}

int hp_wrongkey(struct hf_dom *d, struct hp_report *r)
{
	uint8_t hello[RMIG_AUTH_HELLO_LEN], proof[RMIG_AUTH_PROOF_LEN];
	struct hf_ep e;
	int ret = prove(d, &e, r, false, hello, proof);

	if (ret)
		return ret;
	after_proof(&e, r);
	hp_close(&e, r);
	return 0;
}

/* The recording: "hello HEX" and "proof HEX" lines. */
static int save_record(const uint8_t *hello, const uint8_t *proof)
{
	char hh[2 * RMIG_AUTH_HELLO_LEN + 1], ph[2 * RMIG_AUTH_PROOF_LEN + 1];
	FILE *f;

	if (!hp_o->rec_file)
		return hf_fail(-EINVAL, "record needs --rec FILE");
	f = fopen(hp_o->rec_file, "w");
	if (!f)
		return hf_fail(-errno, "%s: %s", hp_o->rec_file,
			       strerror(errno));
	hp_hex(hello, RMIG_AUTH_HELLO_LEN, hh);
	hp_hex(proof, RMIG_AUTH_PROOF_LEN, ph);
	fprintf(f, "hello %s\nproof %s\n", hh, ph);
	return fclose(f) ? hf_fail(-EIO, "%s: write failed", hp_o->rec_file) :
			   0;
}

static int load_record(uint8_t *hello, uint8_t *proof)
{
	char hh[2 * RMIG_AUTH_HELLO_LEN + 2], ph[2 * RMIG_AUTH_PROOF_LEN + 2];
	FILE *f;
	int n;

	if (!hp_o->rec_file)
		return hf_fail(-EINVAL, "replay needs --rec FILE");
	f = fopen(hp_o->rec_file, "r");
	if (!f)
		return hf_fail(-errno, "%s: %s", hp_o->rec_file,
			       strerror(errno));
	n = fscanf(f, "hello %113s proof %81s", hh, ph);
	fclose(f);
	if (n != 2 || hp_unhex(hh, hello, RMIG_AUTH_HELLO_LEN) ||
	    hp_unhex(ph, proof, RMIG_AUTH_PROOF_LEN))
		return hf_fail(-EINVAL, "%s: not a recording", hp_o->rec_file);
	return 0;
}

int hp_record(struct hf_dom *d, struct hp_report *r)
{
	uint8_t hello[RMIG_AUTH_HELLO_LEN], proof[RMIG_AUTH_PROOF_LEN];
	struct hf_ep e;
	int ret = prove(d, &e, r, true, hello, proof);

	if (ret)
		return ret;
	ret = save_record(hello, proof);
	/* A genuine PROOF: the destination now waits for the HANDSHAKE
	 * (an AUTH_REJECT here would mean the recording is worthless). */
	if (!ret && hp_collect(&e, r, 500) && r->auth_reject[0])
		ret = hf_fail(-EACCES, "the destination refused a genuine "
			      "PROOF: %s", r->auth_reject);
	hp_close(&e, r);
	return ret;
}

int hp_replay(struct hf_dom *d, struct hp_report *r)
{
	uint8_t hello[RMIG_AUTH_HELLO_LEN], proof[RMIG_AUTH_PROOF_LEN];
	struct rmig_auth_challenge c;
	struct hf_ep e;
	int ret = load_record(hello, proof);

	if (ret)
		return ret;
	ret = hp_connect(d, &e, r);
	if (ret)
		return ret;
	ret = hf_send(&e, RMIG_MSG_AUTH_HELLO, hp_o->credits, hello,
		      sizeof(hello), hp_o->wait_ms);
	if (!ret)
		ret = recv_challenge(&e, r, &c);
	if (!ret)
		ret = hf_send(&e, RMIG_MSG_AUTH_PROOF, hp_o->credits, proof,
			      sizeof(proof), hp_o->wait_ms);
	if (!ret)
		after_proof(&e, r);
	hp_close(&e, r);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Held connections                                                    */

/* Keep @n endpoints open, recording what arrives, until SIGTERM or
 * --hold; ends early once the peer closed all of them.  With @redial, an
 * endpoint the peer closes after it was established is replaced by a new
 * connection at once (one refused during setup is not: the listener is
 * gone). */
static void hold(struct hf_ep *eps, unsigned n, struct hp_report *r,
		 struct hf_dom *redial)
{
	int64_t end = hold_end();

	while (!hp_stop && now_ms() < end) {
		bool open = false;

		for (unsigned i = 0; i < n && !hp_stop; i++) {
			struct hf_ep *e = &eps[i];

			if (redial && e->ep && e->peer_closed && e->connected) {
				r->established++;
				hp_close(e, r);
				r->conns++;
				if (hf_connect_start(redial, e))
					r->refused++;
			}
			if (!e->ep || e->peer_closed)
				continue;
			open = true;
			hp_collect(e, r, n > 8 ? 5 : 40);
		}
		if (!open)
			break;
	}
}

int hp_squat(struct hf_dom *d, struct hp_report *r)
{
	unsigned n = hp_o->count;
	struct hf_ep *eps = calloc(n, sizeof(*eps));
	uint8_t body[RMIG_AUTH_HELLO_LEN];
	struct rmig_auth_challenge c;
	struct rmig_auth_hello h;
	int ret = 0;

	if (!eps)
		return hf_fail(-ENOMEM, "out of memory");
	for (unsigned i = 0; i < n && !ret; i++) {
		ret = hp_connect(d, &eps[i], r);
		if (ret)
			break;
		if (i % 2) {
			/* The squat of the unauthenticated protocol. */
			ret = hp_send_handshake(&eps[i], i % hp_o->channels);
			if (!ret)
				hp_collect(&eps[i], r, 200);
			continue;
		}
		ret = send_hello(&eps[i], i % hp_o->channels, &h, body);
		/* Anything but a CHALLENGE is recorded; the squat goes on. */
		if (!ret)
			(void)recv_challenge(&eps[i], r, &c);
	}
	if (!ret) {
		hp_log("ready: squatting on %u connection(s), %u channels "
		       "announced, no PROOF", n, hp_o->channels);
		hold(eps, n, r, NULL);
	}
	for (unsigned i = 0; i < n; i++)
		hp_close(&eps[i], r);
	free(eps);
	return ret;
}

int hp_silent(struct hf_dom *d, struct hp_report *r)
{
	unsigned n = hp_o->count, pending = 0, est = 0;
	struct hf_ep *eps = calloc(n, sizeof(*eps));
	int64_t ready;

	if (!eps)
		return hf_fail(-ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		r->conns++;
		if (hf_connect_start(d, &eps[i])) {
			r->refused++;
			hp_log("connection %u: %s", i, hf_error());
		}
	}
	/* Ready once every connection is set up or refused, or at
	 * --ready-ms: a destination serving one at a time sets up the
	 * first only. */
	ready = now_ms() + hp_o->ready_ms;
	do {
		pending = 0;
		for (unsigned i = 0; i < n; i++) {
			if (!eps[i].ep || eps[i].connected ||
			    eps[i].peer_closed)
				continue;
			(void)hf_ep_poll(&eps[i], 0);
			pending += !eps[i].connected && !eps[i].peer_closed;
		}
		if (pending)
			usleep(10000);
	} while (pending && now_ms() < ready && !hp_stop);
	for (unsigned i = 0; i < n; i++)
		est += eps[i].connected;
	hp_log("ready: %u of %u silent connections established, %u pending%s",
	       est, n, pending, hp_o->reconnect ? "; each one closed is "
	       "replaced" : "");
	hold(eps, n, r, hp_o->reconnect ? d : NULL);
	for (unsigned i = 0; i < n; i++) {
		r->established += eps[i].connected;
		hp_close(&eps[i], r);
	}
	free(eps);
	return r->refused == r->conns ? hf_fail(-ECONNREFUSED, "every "
						"connection failed") : 0;
}

/* "host:port" as a socket address (IPv4 or [IPv6]). */
static int sock_addr(const char *addr, struct sockaddr_storage *ss,
		     socklen_t *len)
{
	char host[96];
	const char *colon = strrchr(addr, ':');
	size_t hl = colon ? (size_t)(colon - addr) : 0;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	unsigned port = colon ? (unsigned)atoi(colon + 1) : 0;

	memset(ss, 0, sizeof(*ss));
	if (!colon || !port || port > 65535 || hl >= sizeof(host))
		return hf_fail(-EINVAL, "address '%s'", addr);
	if (addr[0] == '[' && hl > 2) {
		memcpy(host, addr + 1, hl - 2);
		host[hl - 2] = '\0';
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1 ? 0 :
		       hf_fail(-EINVAL, "address '%s'", addr);
	}
	memcpy(host, addr, hl);
	host[hl] = '\0';
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	*len = sizeof(*sin);
	return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 :
	       hf_fail(-EINVAL, "address '%s'", addr);
}

int hp_rawflood(struct hp_report *r)
{
	unsigned n = hp_o->count, est = 0;
	struct pollfd *p = calloc(n, sizeof(*p));
	struct sockaddr_storage ss;
	struct rlimit rl;
	int64_t end;
	socklen_t len = 0;
	int ret = sock_addr(hp_o->addr, &ss, &len);

	if (!p)
		return hf_fail(-ENOMEM, "out of memory");
	if (ret)
		goto out;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < n + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (unsigned i = 0; i < n; i++) {
		r->conns++;
		p[i].fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
					       SOCK_CLOEXEC, 0);
		p[i].events = POLLOUT;
		if (p[i].fd < 0 || (connect(p[i].fd, (struct sockaddr *)&ss,
					    len) && errno != EINPROGRESS)) {
			r->refused++;
			if (p[i].fd >= 0)
				close(p[i].fd);
			p[i].fd = -1;
		}
	}
	/* Connected (the kernel's handshake) or failed, by --ready-ms. */
	end = now_ms() + hp_o->ready_ms;
	for (unsigned i = 0; i < n; i++) {
		int err = 0;
		socklen_t el = sizeof(err);
		int left = (int)(end - now_ms());

		if (p[i].fd < 0)
			continue;
		if (poll(&p[i], 1, left > 0 ? left : 0) == 1 &&
		    !getsockopt(p[i].fd, SOL_SOCKET, SO_ERROR, &err, &el) &&
		    !err) {
			est++;
			p[i].events = POLLIN;
			continue;
		}
		r->refused++;
		close(p[i].fd);
		p[i].fd = -1;
	}
	r->established = est;
	hp_log("ready: %u of %u raw TCP connections open", est, n);
	/* Hold; count the ones the destination closes. */
	end = hold_end();
	while (!hp_stop && now_ms() < end) {
		char b[64];
		int k = poll(p, n, 100);

		for (unsigned i = 0; k > 0 && i < n; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			if (read(p[i].fd, b, sizeof(b)) > 0) {
				r->msgs++;
				continue;
			}
			r->closed_by_peer++;
			close(p[i].fd);
			p[i].fd = -1;
		}
	}
	if (!est)
		ret = hf_fail(-ECONNREFUSED, "no raw connection to %s opened",
			      hp_o->addr);
out:
	for (unsigned i = 0; i < n; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	free(p);
	return ret;
}

/* ------------------------------------------------------------------ */
/* A key learnt elsewhere                                              */

static void one_write(struct hf_ep *e, struct hp_report *r, uint64_t raddr,
		      uint64_t rkey)
{
	int ret;

	r->writes++;
	/* Progress first: a close by the destination shows up here. */
	hp_collect(e, r, 1);
	ret = hf_write(e, raddr, rkey, 0xee, hp_o->write_len, hp_o->wait_ms);
	if (!ret) {
		r->writes_ok++;
		hp_log("write %u done: ok: %zu bytes at 0x%llx key 0x%llx "
		       "delivered", r->writes, hp_o->write_len,
		       (unsigned long long)raddr, (unsigned long long)rkey);
		return;
	}
	snprintf(r->write_error, sizeof(r->write_error), "%s", hf_error());
	hp_log("write %u done: failed: %s", r->writes, hf_error());
}

int hp_keywrite(struct hf_dom *d, struct hp_report *r)
{
	char line[256];
	struct hf_ep e;
	int ret = hp_connect(d, &e, r);

	if (ret)
		return ret;
	hp_log("connected; never authenticating");
	if (hp_o->raddr_set) {
		one_write(&e, r, hp_o->raddr, hp_o->rkey);
	} else {
		while (!hp_stop && fgets(line, sizeof(line), stdin)) {
			char *end;
			unsigned long long raddr = strtoull(line, &end, 0);
			unsigned long long rkey = strtoull(end, &end, 0);

			if (end == line || (*end && *end != '\n')) {
				hp_log("ignored '%.*s': expected RADDR RKEY",
				       (int)strcspn(line, "\n"), line);
				continue;
			}
			one_write(&e, r, raddr, rkey);
		}
	}
	hp_collect(&e, r, 1);
	hp_close(&e, r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* A destination that does not hold the secret                         */

/* One source connection: its first message, our CHALLENGE to a HELLO,
 * then whatever follows (a breach, but for CREDIT messages, which only
 * grant credits). */
static void impostor_conn(struct hf_ep *e, struct hp_report *r)
{
	uint8_t buf[RMIG_AUTH_CHALLENGE_LEN];
	struct rmig_auth_challenge c;
	struct rmig_auth_hello h;
	unsigned before, credits;
	struct hf_msg m;
	int ret = hf_recv(e, &m, hp_o->wait_ms);

	if (ret <= 0) {
		hp_note(r, "connection %u: no first message", r->conns);
		return;
	}
	hp_seen(r, &m);
	if (!r->first[0])
		snprintf(r->first, sizeof(r->first), "%s",
			 hp_type_name(m.type));
	credits = r->credits;
	if (m.type != RMIG_MSG_AUTH_HELLO ||
	    rmig_auth_hello_decode(m.data, m.len, &h)) {
		/* A source that speaks before it has authenticated us. */
		r->breach = true;
		hp_note(r, "connection %u: first message %s, not a HELLO",
			r->conns, hp_type_name(m.type));
		hf_msg_done(e, &m);
		hp_collect(e, r, hp_o->quiet_ms);
		return;
	}
	hf_msg_done(e, &m);
	/* Random nonce and MAC: whatever we say cannot verify. */
	if (rmig_auth_nonce(c.nonce) || rmig_auth_nonce(c.mac))
		return;
	if (hf_send(e, RMIG_MSG_AUTH_CHALLENGE, hp_o->credits, buf,
		    rmig_auth_challenge_encode(&c, buf), hp_o->wait_ms)) {
		hp_note(r, "connection %u: CHALLENGE not sent: %s", r->conns,
			hf_error());
		return;
	}
	before = r->msgs;
	hp_collect(e, r, hp_o->quiet_ms);
	if (r->msgs - r->credits > before - credits) {
		/* The names of what followed the HELLO on this connection. */
		const char *t = r->types;
		size_t n = strlen(r->after_hello);

		for (unsigned k = 0; k < before && t; k++) {
			t = strchr(t, ',');
			t = t ? t + 1 : NULL;
		}
		snprintf(r->after_hello + n, sizeof(r->after_hello) - n,
			 "%s%s", n ? "," : "", t ? t : "(list full)");
		r->breach = true;
	}
}

int hp_impostor(struct hf_dom *d, struct hp_report *r)
{
	int64_t end = hold_end();
	char name[128];
	struct hf_ep e;
	int ret = hf_listen(d, name, sizeof(name));

	if (ret)
		return ret;
	hp_log("listening on %s", name);
	while (!hp_stop && now_ms() < end) {
		ret = hf_accept(d, &e, 200);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret) {
			if (!hp_stop)
				hp_note(r, "accept: %s", hf_error());
			continue;
		}
		r->conns++;
		r->established++;
		impostor_conn(&e, r);
		hp_close(&e, r);
	}
	return r->conns ? 0 : hf_fail(-ETIMEDOUT, "no source connected");
}

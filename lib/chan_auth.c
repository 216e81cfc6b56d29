/* SPDX-License-Identifier: MIT */
/*
 * chan_auth.c - the challenge-response that opens every channel of an
 * authenticated session (design: docs/security.rst), over a channel that is
 * connected and has exchanged nothing yet:
 *
 *    source                                   destination
 *      AUTH_HELLO  Ns, id, count, sizes  --->
 *                                        <---  AUTH_CHALLENGE  Nd, MAC_D
 *      verify MAC_D (else stop, say nothing more)
 *      AUTH_PROOF  MAC_S                 --->  verify MAC_S
 *                                              (else AUTH_REJECT, close)
 *
 * Each side builds the transcript from its own knowledge: the UUID only
 * when the caller configured one, the provider's name (not the device's,
 * which differs between hosts); the destination takes the channel's
 * parameters from the HELLO (the MACs cover them) and judges them against
 * its configuration only once the source proved the secret.
 */
#include <errno.h>
#include <string.h>

#include "auth.h"
#include "core.h"
#include "transport.h"

/* The transcript of @ch's exchange, without the nonces. */
static void transcript_base(struct rmig_chan *ch, struct rmig_auth_transcript *t)
{
	struct rmig_session *s = ch->sess;

	memset(t, 0, sizeof(*t));
	if (s->uuid_cfg)
		memcpy(t->uuid, s->uuid, 16);
	t->transport = ch->tp->prov->name;
}

/* Wait for the next message of the exchange, which must be @want (or
 * AUTH_REJECT, returned as -ECONNREFUSED with its reason).  A message of
 * another type is -EPROTO. */
static int recv_auth(struct rmig_chan *ch, enum rmig_msg_type want, int tmo,
		     struct rmig_msg *m, const char *who)
{
	int ret = rmig_chan_recv(ch, m, tmo);

	if (ret == 0)
		return rmig_err(-ETIMEDOUT, "no %s from the %s within %d ms",
				rmig_msg_type_name(want), who, tmo);
	if (ret < 0)
		return ret;
	if (m->type == RMIG_MSG_AUTH_REJECT) {
		enum rmig_auth_reject reason;

		ret = rmig_auth_reject_decode(m->data, m->len, &reason);
		if (ret)
			return ret;
		if (reason == RMIG_AUTH_REJECT_INSECURE)
			return rmig_err(-ECONNREFUSED, "the %s runs without "
					"authentication (insecure) and this "
					"end has a secret: both must agree",
					who);
		return rmig_err(-ECONNREFUSED, "the %s refused "
				"authentication: %s", who,
				rmig_auth_reject_name(reason));
	}
	if (m->type == RMIG_MSG_REJECT && want == RMIG_MSG_AUTH_CHALLENGE)
		return rmig_err(-ECONNREFUSED, "the %s answered the "
				"authentication with a REJECT: it runs without "
				"authentication (an older rmig, or insecure)",
				who);
	if (m->type != want)
		return rmig_err(-EPROTO, "expected %s from the %s, got %s",
				rmig_msg_type_name(want), who,
				rmig_msg_type_name(m->type));
	return 1;
}

static int send_msg(struct rmig_chan *ch, enum rmig_msg_type type,
		    size_t (*encode)(const void *arg, void *buf),
		    const void *arg, int tmo)
{
	uint8_t *buf;
	int idx = rmig_chan_tx_get(ch, &buf, tmo);

	if (idx < 0)
		return idx;
	return rmig_chan_tx_send(ch, idx, type, encode(arg, buf));
}

static size_t enc_hello(const void *arg, void *buf)
{
	return rmig_auth_hello_encode(arg, buf);
}

static size_t enc_challenge(const void *arg, void *buf)
{
	return rmig_auth_challenge_encode(arg, buf);
}

static size_t enc_proof(const void *arg, void *buf)
{
	return rmig_auth_proof_encode(arg, buf);
}

static size_t enc_reject(const void *arg, void *buf)
{
	return rmig_auth_reject_encode(*(const enum rmig_auth_reject *)arg,
				       buf);
}

int rmig_chan_auth_source(struct rmig_chan *ch, int tmo)
{
	struct rmig_session *s = ch->sess;
	struct rmig_auth_transcript t;
	struct rmig_auth_challenge c;
	struct rmig_auth_hello h = {
		.channel_id = (uint16_t)ch->id,
		.channel_count = (uint16_t)s->channels,
		.page_size = (uint32_t)s->page_size,
		.pages_per_packet = s->pages_per_packet,
	};
	uint8_t mac[RMIG_AUTH_MAC_LEN];
	struct rmig_msg m;
	int ret;

	transcript_base(ch, &t);
	t.channel_id = h.channel_id;
	t.channel_count = h.channel_count;
	t.page_size = h.page_size;
	t.pages_per_packet = h.pages_per_packet;
	ret = rmig_auth_nonce(h.nonce);
	if (ret)
		return ret;
	memcpy(t.src_nonce, h.nonce, RMIG_AUTH_NONCE_LEN);
	ret = send_msg(ch, RMIG_MSG_AUTH_HELLO, enc_hello, &h, tmo);
	if (ret)
		return ret;
	ret = recv_auth(ch, RMIG_MSG_AUTH_CHALLENGE, tmo, &m, "destination");
	if (ret < 0)
		return ret;
	ret = rmig_auth_challenge_decode(m.data, m.len, &c);
	if (!ret)
		ret = rmig_chan_msg_done(ch, &m);
	if (ret)
		return ret;
	memcpy(t.dest_nonce, c.nonce, RMIG_AUTH_NONCE_LEN);
	/* Nothing more goes out before the destination proved the secret:
	 * an impostor learns one nonce and the channel's four numbers. */
	ret = rmig_auth_verify(s->auth_key, RMIG_AUTH_DEST_TO_SOURCE, &t,
			       c.mac);
	if (ret)
		return rmig_err(ret, "the destination did not prove the "
				"secret (an impostor, or a different secret "
				"or UUID on the two sides); nothing sent");
	ret = rmig_auth_mac(s->auth_key, RMIG_AUTH_SOURCE_TO_DEST, &t, mac);
	if (!ret)
		ret = send_msg(ch, RMIG_MSG_AUTH_PROOF, enc_proof, mac, tmo);
	return ret;
}

int rmig_chan_auth_dest(struct rmig_chan *ch, struct rmig_msg *first, int tmo,
			struct rmig_auth_hello *hello,
			enum rmig_auth_reject *reason)
{
	struct rmig_session *s = ch->sess;
	struct rmig_auth_transcript t;
	struct rmig_auth_challenge c;
	uint8_t mac[RMIG_AUTH_MAC_LEN];
	struct rmig_msg m;
	int ret;

	*reason = RMIG_AUTH_REJECT_REQUIRED;
	if (first->type != RMIG_MSG_AUTH_HELLO)
		return rmig_err(-EACCES, "first message is %s, expected "
				"AUTH_HELLO (this destination requires "
				"authentication)",
				rmig_msg_type_name(first->type));
	*reason = RMIG_AUTH_REJECT_MALFORMED;
	ret = rmig_auth_hello_decode(first->data, first->len, hello);
	if (!ret)
		ret = rmig_chan_msg_done(ch, first);
	if (ret)
		return ret;
	transcript_base(ch, &t);
	t.channel_id = hello->channel_id;
	t.channel_count = hello->channel_count;
	t.page_size = hello->page_size;
	t.pages_per_packet = hello->pages_per_packet;
	memcpy(t.src_nonce, hello->nonce, RMIG_AUTH_NONCE_LEN);
	ret = rmig_auth_nonce(c.nonce);
	if (ret)
		return ret;
	memcpy(t.dest_nonce, c.nonce, RMIG_AUTH_NONCE_LEN);
	ret = rmig_auth_mac(s->auth_key, RMIG_AUTH_DEST_TO_SOURCE, &t, c.mac);
	if (ret)
		return ret;
	/* The protocol's first credit each way is implicit. */
	if (!ch->credits)
		ch->credits = 1;
	ret = send_msg(ch, RMIG_MSG_AUTH_CHALLENGE, enc_challenge, &c, tmo);
	if (ret)
		return ret;
	ret = recv_auth(ch, RMIG_MSG_AUTH_PROOF, tmo, &m, "source");
	if (ret < 0) {
		/* Cancelled: the accept ended (or this one was the oldest
		 * of too many), not the peer's fault. */
		*reason = ret == -ETIMEDOUT ? RMIG_AUTH_REJECT_TIMEOUT :
			  ret == -ECANCELED ? RMIG_AUTH_REJECT_BUSY :
					      RMIG_AUTH_REJECT_MALFORMED;
		return ret;
	}
	*reason = RMIG_AUTH_REJECT_MALFORMED;
	ret = rmig_auth_proof_decode(m.data, m.len, mac);
	if (!ret)
		ret = rmig_chan_msg_done(ch, &m);
	if (ret)
		return ret;
	*reason = RMIG_AUTH_REJECT_FAILED;
	ret = rmig_auth_verify(s->auth_key, RMIG_AUTH_SOURCE_TO_DEST, &t, mac);
	if (ret)
		return rmig_err(ret, "the source did not prove the secret "
				"(a wrong secret, a different UUID, or a "
				"replayed or forged proof)");
	*reason = 0;
	return 0;
}

void rmig_chan_auth_reject(struct rmig_chan *ch, enum rmig_auth_reject reason)
{
	if (!ch->credits)
		ch->credits = 1;
	if (!send_msg(ch, RMIG_MSG_AUTH_REJECT, enc_reject, &reason, 1000))
		(void)rmig_chan_drain(ch, 1000);
}

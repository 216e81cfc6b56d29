/* SPDX-License-Identifier: MIT */
/*
 * auth.h - the pre-shared secret and the challenge-response MAC of an
 * authenticated session (design: docs/security.rst).  Internal: nothing
 * here is exported from librmig.
 *
 * Primitives come from OpenSSL's libcrypto (HMAC-SHA-256 through EVP_Q_mac,
 * RAND_bytes, CRYPTO_memcmp, OPENSSL_cleanse); nothing is hand-written.
 * Every function is pure except rmig_auth_key_load() (reads one file) and
 * rmig_auth_nonce() (the CSPRNG).  Errors: negative errno and rmig_err().
 *
 * The MAC of one direction is HMAC-SHA-256(secret, transcript) over this
 * canonical transcript (fixed offsets, big-endian, built by the library,
 * never taken from the wire):
 *
 *    0 char[16] label "rmig-auth-v1" NUL-padded (domain separation)
 *   16 u8  role: 1 source->destination, 2 destination->source
 *   17 u8[32] source nonce            49 u8[32] destination nonce
 *   81 u8[16] session UUID (all zero when the session has none)
 *   97 u16 channel id                 99 u16 channel count
 *  101 u32 page size                 105 u32 pages per packet
 *  109 u8  transport name length n (1..RMIG_AUTH_TRANSPORT_MAX)
 *  110 char[n] transport name (no NUL)
 */
#ifndef RMIG_AUTH_H
#define RMIG_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rmig/rmig.h>

/** Secret length in bytes: 256 bits at least; 1 KiB is more than enough. */
#define RMIG_AUTH_KEY_MIN RMIG_AUTH_KEY_MIN_LEN
#define RMIG_AUTH_KEY_MAX RMIG_AUTH_KEY_MAX_LEN
#define RMIG_AUTH_NONCE_LEN 32u
#define RMIG_AUTH_MAC_LEN 32u /* HMAC-SHA-256 */
#define RMIG_AUTH_TRANSPORT_MAX 32u
#define RMIG_AUTH_TRANSCRIPT_MAX (110u + RMIG_AUTH_TRANSPORT_MAX)

/** Which side computes the MAC: a MAC of one role never verifies as the
 *  other's, so a peer cannot reflect the MAC it received. */
enum rmig_auth_role {
	RMIG_AUTH_SOURCE_TO_DEST = 1,
	RMIG_AUTH_DEST_TO_SOURCE = 2,
};

/** A secret in memory locked with mlock() where allowed and excluded from
 *  core dumps; wiped with OPENSSL_cleanse() when freed.  Opaque. */
struct rmig_auth_key;

/**
 * Copy @len bytes (RMIG_AUTH_KEY_MIN..RMIG_AUTH_KEY_MAX) of @secret into a
 * new key.  -EINVAL for a bad length, -ENOMEM.  The caller wipes its copy.
 */
int rmig_auth_key_new(const void *secret, size_t len,
		      struct rmig_auth_key **out);

/**
 * Load a key file: its whole content, byte for byte, is the secret (raw
 * bytes, RMIG_AUTH_KEY_MIN..RMIG_AUTH_KEY_MAX of them; a text file works
 * too, newline included, as long as both hosts hold the same file).  The
 * path must name a regular file itself (not a symbolic link), owned by the
 * effective user, with no group or other permission bits (0600 or 0400).
 * -ELOOP (symlink), -EPERM (owner or mode), -EINVAL (not a regular file,
 * size), or the errno of open/read; the message names the path and what
 * is wrong.
 */
int rmig_auth_key_load(const char *path, struct rmig_auth_key **out);

/** Wipe and free; NULL is fine. */
void rmig_auth_key_free(struct rmig_auth_key *key);

size_t rmig_auth_key_len(const struct rmig_auth_key *key);
/** Whether mlock() succeeded (false under a low RLIMIT_MEMLOCK). */
bool rmig_auth_key_locked(const struct rmig_auth_key *key);

/** Fill @nonce with RMIG_AUTH_NONCE_LEN bytes from the CSPRNG; -EIO. */
int rmig_auth_nonce(uint8_t nonce[RMIG_AUTH_NONCE_LEN]);

/** HMAC-SHA-256 of @data under @key (the primitive below the transcript
 *  MAC; any key length, for the RFC 4231 tests). */
int rmig_auth_hmac_sha256(const void *key, size_t keylen, const void *data,
			  size_t len, uint8_t mac[RMIG_AUTH_MAC_LEN]);

/** Everything one MAC covers besides the role.  Both sides fill it from
 *  their own knowledge: the nonces from the exchange, the rest from the
 *  local configuration and the channel's parameters. */
struct rmig_auth_transcript {
	uint8_t src_nonce[RMIG_AUTH_NONCE_LEN];
	uint8_t dest_nonce[RMIG_AUTH_NONCE_LEN];
	uint8_t uuid[16];
	uint16_t channel_id;
	uint16_t channel_count;
	uint32_t page_size;
	uint32_t pages_per_packet;
	const char *transport; /* provider name, e.g. "fabric" or "verbs" */
};

/**
 * Write the canonical transcript (layout above) into @buf
 * (>= RMIG_AUTH_TRANSCRIPT_MAX); returns its length, or -EINVAL for an
 * unknown role or a transport name empty or longer than
 * RMIG_AUTH_TRANSPORT_MAX.
 */
int rmig_auth_transcript_encode(enum rmig_auth_role role,
				const struct rmig_auth_transcript *t,
				uint8_t *buf, size_t len);

/** The MAC of @role over @t. */
int rmig_auth_mac(const struct rmig_auth_key *key, enum rmig_auth_role role,
		  const struct rmig_auth_transcript *t,
		  uint8_t mac[RMIG_AUTH_MAC_LEN]);

/**
 * Compute the expected MAC and compare it with @mac in constant time.
 * 0 when equal, -EACCES when not (message: the role and that the key or a
 * session parameter differs; no field values, nothing secret), -EINVAL
 * as rmig_auth_transcript_encode().
 */
int rmig_auth_verify(const struct rmig_auth_key *key, enum rmig_auth_role role,
		     const struct rmig_auth_transcript *t,
		     const uint8_t mac[RMIG_AUTH_MAC_LEN]);

#endif /* RMIG_AUTH_H */

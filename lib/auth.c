/* SPDX-License-Identifier: MIT */
/*
 * auth.c - the pre-shared secret and the transcript MAC (layout in auth.h,
 * design in docs/security.rst).
 *
 * A key lives in its own anonymous page: mlock()ed so it is not written to
 * swap (best effort: RLIMIT_MEMLOCK may forbid it, which is recorded and
 * logged at debug level, not an error), MADV_DONTDUMP so it is not in a
 * core dump, and wiped with OPENSSL_cleanse() before it is unmapped.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "be.h"
#include "error.h"

#define TRANSCRIPT_LABEL "rmig-auth-v1"
#define TRANSCRIPT_LABEL_LEN 16u
#define TRANSCRIPT_FIXED_LEN 110u

struct rmig_auth_key {
	size_t map_len; /* bytes mapped for this structure */
	size_t len;
	bool locked;
	uint8_t bytes[RMIG_AUTH_KEY_MAX];
};

/** The first error in OpenSSL's queue as text (the queue is emptied). */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (!e)
		return "no OpenSSL error recorded";
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Keys ----------------------------------------------------------------- */

int rmig_auth_key_new(const void *secret, size_t len,
		      struct rmig_auth_key **out)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t map_len = sizeof(struct rmig_auth_key);
	struct rmig_auth_key *k;

	if (len < RMIG_AUTH_KEY_MIN || len > RMIG_AUTH_KEY_MAX)
		return rmig_err(-EINVAL,
				"auth key: %zu bytes (expected %u..%u)", len,
				RMIG_AUTH_KEY_MIN, RMIG_AUTH_KEY_MAX);
	if (page > 0)
		map_len = (map_len + (size_t)page - 1) / (size_t)page *
			  (size_t)page;
	k = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (k == MAP_FAILED)
		return rmig_err(-ENOMEM, "auth key: mmap of %zu bytes: %s",
				map_len, strerror(errno));
	/* Lock and exclude from dumps before the secret is copied in. */
	k->locked = mlock(k, map_len) == 0;
	if (!k->locked)
		rmig_log_debug("auth key: mlock: %s (the key may be swapped out)",
			       strerror(errno));
	(void)madvise(k, map_len, MADV_DONTDUMP);
	k->map_len = map_len;
	k->len = len;
	memcpy(k->bytes, secret, len);
	*out = k;
	return 0;
}

void rmig_auth_key_free(struct rmig_auth_key *key)
{
	size_t map_len;

	if (!key)
		return;
	map_len = key->map_len;
	OPENSSL_cleanse(key, sizeof(*key));
	if (munlock(key, map_len) && errno != ENOMEM)
		rmig_log_debug("auth key: munlock: %s", strerror(errno));
	munmap(key, map_len);
}

size_t rmig_auth_key_len(const struct rmig_auth_key *key)
{
	return key->len;
}

bool rmig_auth_key_locked(const struct rmig_auth_key *key)
{
	return key->locked;
}

/** The permission checks of rmig_auth_key_load() on the open file. */
static int key_file_check(const char *path, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return rmig_err(-EINVAL,
				"auth key file %s: not a regular file (expected a file holding the key)",
				path);
	if (st->st_uid != geteuid())
		return rmig_err(-EPERM,
				"auth key file %s: owned by uid %u (expected uid %u, the user running rmig)",
				path, (unsigned)st->st_uid,
				(unsigned)geteuid());
	if (st->st_mode & (S_IRWXG | S_IRWXO))
		return rmig_err(-EPERM,
				"auth key file %s: mode %04o gives access to group or others (expected 0600 or 0400: chmod 600 %s)",
				path, (unsigned)(st->st_mode & 07777), path);
	if (st->st_size < (off_t)RMIG_AUTH_KEY_MIN ||
	    st->st_size > (off_t)RMIG_AUTH_KEY_MAX)
		return rmig_err(-EINVAL,
				"auth key file %s: %lld bytes (expected %u..%u: the whole file is the key, e.g. head -c 32 /dev/urandom)",
				path, (long long)st->st_size,
				RMIG_AUTH_KEY_MIN, RMIG_AUTH_KEY_MAX);
	return 0;
}

int rmig_auth_key_load(const char *path, struct rmig_auth_key **out)
{
	/* One byte more than the largest key: a file that grew after fstat()
	 * is caught by the length check below. */
	uint8_t buf[RMIG_AUTH_KEY_MAX + 1];
	size_t got = 0;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
			O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ELOOP)
			return rmig_err(ret,
					"auth key file %s: is a symbolic link (expected the file itself: give its real path)",
					path);
		return rmig_err(ret, "auth key file %s: open: %s", path,
				strerror(-ret));
	}
	if (fstat(fd, &st)) {
		ret = rmig_err(-errno, "auth key file %s: fstat: %s", path,
			       strerror(errno));
		goto out_close;
	}
	ret = key_file_check(path, &st);
	if (ret)
		goto out_close;
	while (got < sizeof(buf)) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = rmig_err(-errno, "auth key file %s: read: %s",
				       path, strerror(errno));
			goto out_wipe;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got < RMIG_AUTH_KEY_MIN || got > RMIG_AUTH_KEY_MAX) {
		ret = rmig_err(-EINVAL,
			       "auth key file %s: read %zu bytes (expected %u..%u; did the file change while read?)",
			       path, got, RMIG_AUTH_KEY_MIN, RMIG_AUTH_KEY_MAX);
		goto out_wipe;
	}
	ret = rmig_auth_key_new(buf, got, out);
	if (ret)
		rmig_err_prefix("auth key file %s", path);
out_wipe:
	OPENSSL_cleanse(buf, sizeof(buf));
out_close:
	close(fd);
	return ret;
}

/* Nonces and MACs ----------------------------------------------------- */

int rmig_auth_nonce(uint8_t nonce[RMIG_AUTH_NONCE_LEN])
{
	char why[256];

	if (RAND_bytes(nonce, RMIG_AUTH_NONCE_LEN) != 1)
		return rmig_err(-EIO, "auth nonce: RAND_bytes: %s",
				ossl_reason(why, sizeof(why)));
	return 0;
}

int rmig_auth_hmac_sha256(const void *key, size_t keylen, const void *data,
			  size_t len, uint8_t mac[RMIG_AUTH_MAC_LEN])
{
	size_t maclen = 0;
	char why[256];

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, data,
		       len, mac, RMIG_AUTH_MAC_LEN, &maclen) ||
	    maclen != RMIG_AUTH_MAC_LEN)
		return rmig_err(-EIO, "auth: HMAC-SHA-256: %s",
				ossl_reason(why, sizeof(why)));
	return 0;
}

int rmig_auth_transcript_encode(enum rmig_auth_role role,
				const struct rmig_auth_transcript *t,
				uint8_t *buf, size_t len)
{
	size_t tlen;

	if (role != RMIG_AUTH_SOURCE_TO_DEST &&
	    role != RMIG_AUTH_DEST_TO_SOURCE)
		return rmig_err(-EINVAL, "auth transcript: role %d unknown",
				(int)role);
	tlen = t->transport ? strnlen(t->transport,
				      RMIG_AUTH_TRANSPORT_MAX + 1) : 0;
	if (tlen == 0 || tlen > RMIG_AUTH_TRANSPORT_MAX)
		return rmig_err(-EINVAL,
				"auth transcript: transport name of %zu bytes (expected 1..%u)",
				tlen, RMIG_AUTH_TRANSPORT_MAX);
	if (len < TRANSCRIPT_FIXED_LEN + tlen)
		return rmig_err(-EINVAL,
				"auth transcript: buffer of %zu bytes (expected %zu)",
				len, TRANSCRIPT_FIXED_LEN + tlen);
	memset(buf, 0, TRANSCRIPT_LABEL_LEN);
	memcpy(buf, TRANSCRIPT_LABEL, sizeof(TRANSCRIPT_LABEL) - 1);
	buf[16] = (uint8_t)role;
	memcpy(buf + 17, t->src_nonce, RMIG_AUTH_NONCE_LEN);
	memcpy(buf + 49, t->dest_nonce, RMIG_AUTH_NONCE_LEN);
	memcpy(buf + 81, t->uuid, sizeof(t->uuid));
	rmig_put_u16(buf + 97, t->channel_id);
	rmig_put_u16(buf + 99, t->channel_count);
	rmig_put_u32(buf + 101, t->page_size);
	rmig_put_u32(buf + 105, t->pages_per_packet);
	buf[109] = (uint8_t)tlen;
	memcpy(buf + TRANSCRIPT_FIXED_LEN, t->transport, tlen);
	return (int)(TRANSCRIPT_FIXED_LEN + tlen);
}

int rmig_auth_mac(const struct rmig_auth_key *key, enum rmig_auth_role role,
		  const struct rmig_auth_transcript *t,
		  uint8_t mac[RMIG_AUTH_MAC_LEN])
{
	uint8_t buf[RMIG_AUTH_TRANSCRIPT_MAX];
	int n = rmig_auth_transcript_encode(role, t, buf, sizeof(buf));

	if (n < 0)
		return n;
	return rmig_auth_hmac_sha256(key->bytes, key->len, buf, (size_t)n,
				     mac);
}

int rmig_auth_verify(const struct rmig_auth_key *key, enum rmig_auth_role role,
		     const struct rmig_auth_transcript *t,
		     const uint8_t mac[RMIG_AUTH_MAC_LEN])
{
	uint8_t want[RMIG_AUTH_MAC_LEN];
	int ret = rmig_auth_mac(key, role, t, want);

	if (!ret && CRYPTO_memcmp(want, mac, RMIG_AUTH_MAC_LEN) != 0)
		ret = rmig_err(-EACCES,
			       "auth: the peer's %s MAC does not verify (a different secret, or the two sides differ in session UUID, channel, page size, packet size or transport)",
			       role == RMIG_AUTH_SOURCE_TO_DEST ?
				       "source->destination" :
				       "destination->source");
	OPENSSL_cleanse(want, sizeof(want));
	return ret;
}

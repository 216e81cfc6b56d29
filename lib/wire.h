/* SPDX-License-Identifier: MIT */
/*
 * wire.h - rmig wire format, version 1.  Every multi-byte field is
 * big-endian.  All decoders take untrusted bytes: they check every field
 * before it is used and fail with -EPROTO (or -EINVAL for a caller-side
 * mismatch) and a message naming the field and the value (rmig_err()).
 *
 * Every message travels as a SEND with a 32-bit immediate:
 *
 *   bits 31..28  message type (enum rmig_msg_type)
 *   bits 27..16  credits granted back to the peer (0..4095)
 *   bits 15..0   zero
 *
 * Message bodies (offsets in bytes):
 *
 * HANDSHAKE (source -> destination, first message on a channel), 48 bytes
 *   0 u32 magic 0x524d4947 ("RMIG")    4 u16 version (1)   6 u16 flags (0)
 *   8 u8[16] session uuid              24 u16 channel id   26 u16 channel count
 *  28 u32 page size                    32 u32 pages per packet
 *  36 u32 features (0, or RMIG_FEAT_POSTCOPY_RESUME)
 *  40 u32 source rx depth (buffers posted)
 *  44 u32 message size (bytes of each posted buffer)
 *
 * ACCEPT (destination -> source, only after the handshake passed every check)
 *   0 u32 magic  4 u16 version  6 u16 block count  8 u32 dest rx depth
 *  12 u32 reserved (0), then per block, 96 bytes:
 *   0 char[64] name, NUL-padded  64 u64 length  72 u64 remote address
 *  80 u64 remote key             88 u32 page size  92 u32 reserved (0)
 *
 * REJECT (destination -> source): 0 u32 reason (enum rmig_reject), 4 u32
 *   text length n (incl. NUL, 1..RMIG_REJECT_TEXT_MAX), 8 char[n] text.
 *
 * ERROR (either way, best effort before closing): 0 u32 errno of the failure
 *   (1..RMIG_ERROR_ERRNO_MAX), 4 u32 text length n (incl. NUL,
 *   1..RMIG_ERROR_TEXT_MAX), 8 char[n] text.
 *
 * PACKET header (source -> destination, after the packet's RDMA WRITEs)
 *   0 u32 flags (0)      4 u32 block index     8 u64 packet number
 *  16 u32 normal count  20 u32 zero count
 *  24 u64[normal] normal page offsets, then u64[zero] zero page offsets
 *   (byte offsets into the block, page-aligned)
 *
 * SYNC: 0 u32 flags (RMIG_SYNC_FINAL, RMIG_SYNC_POSTCOPY)  4 u32 reserved
 *   8 u64 sync number  16 u64 packets sent on this channel so far
 * SYNC_ACK: 0 u64 sync number
 *
 * READ_KEYS (source -> destination, on every channel right before the
 *   SYNC with RMIG_SYNC_POSTCOPY): where the destination's RDMA READs find
 *   the source's RAM.  0 u32 entry count (1..RMIG_MAX_BLOCKS)  4 u32
 *   reserved (0), then per entry, 32 bytes: 0 u32 block index (the
 *   destination's, as in its ACCEPT)  4 u32 reserved (0)  8 u64 length
 *   16 u64 remote address  24 u64 remote key.  Each block at most once.
 *
 * DEVSTATE fragment: 0 u32 blob sequence  4 u32 instance id  8 u64 total length
 *  16 u64 fragment offset  24 u16 idstr length n (incl. NUL)  26 u16 reserved
 *  28 u32 fragment length m  32 char[n] idstr  32+n u8[m] data
 *
 * CREDIT: empty body; only the immediate's credits matter.
 */
#ifndef RMIG_WIRE_H
#define RMIG_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rmig/rmig.h"

#define RMIG_WIRE_MAGIC 0x524d4947u /* "RMIG" */
#define RMIG_WIRE_VERSION 1
/** Size of every posted receive buffer and of every message at most. */
#define RMIG_MSG_SIZE 65536u
#define RMIG_HANDSHAKE_LEN 48u
#define RMIG_ACCEPT_HDR_LEN 16u
#define RMIG_ACCEPT_BLOCK_LEN 96u
#define RMIG_PACKET_HDR_LEN 24u
#define RMIG_SYNC_LEN 24u
#define RMIG_SYNC_ACK_LEN 8u
#define RMIG_DEVSTATE_HDR_LEN 32u
#define RMIG_REJECT_TEXT_MAX 200u
#define RMIG_ERROR_TEXT_MAX 512u
#define RMIG_ERROR_ERRNO_MAX 4095u
#define RMIG_IMM_CREDITS_MAX 4095u
/** HANDSHAKE feature: the session resumes a lost post-copy's pull
 *  (RMIG_CFG_POSTCOPY_RESUME). */
#define RMIG_FEAT_POSTCOPY_RESUME 1u
#define RMIG_SYNC_FINAL 1u
/** The post-copy switch: the source's RAM is readable (READ_KEYS came
 *  just before on the channel) and it writes no more pages. */
#define RMIG_SYNC_POSTCOPY 2u
#define RMIG_READ_KEYS_HDR_LEN 8u
#define RMIG_READ_KEYS_ENTRY_LEN 32u

enum rmig_msg_type {
	RMIG_MSG_HANDSHAKE = 1,
	RMIG_MSG_ACCEPT = 2,
	RMIG_MSG_REJECT = 3,
	RMIG_MSG_PACKET = 4,
	RMIG_MSG_SYNC = 5,
	RMIG_MSG_SYNC_ACK = 6,
	RMIG_MSG_DEVSTATE = 7,
	RMIG_MSG_CREDIT = 8,
	RMIG_MSG_ERROR = 9,
	/* Authentication (layouts below, lib/wire_auth.c). */
	RMIG_MSG_AUTH_HELLO = 10,
	RMIG_MSG_AUTH_CHALLENGE = 11,
	RMIG_MSG_AUTH_PROOF = 12,
	RMIG_MSG_AUTH_REJECT = 13,
	/* Post-copy. */
	RMIG_MSG_READ_KEYS = 14,
};
/** The highest message type spoken. */
#define RMIG_MSG_TYPE_MAX RMIG_MSG_READ_KEYS

/** Reasons a destination gives for turning a handshake away. */
enum rmig_reject {
	RMIG_REJECT_NONE = 0,
	RMIG_REJECT_MAGIC = 1,
	RMIG_REJECT_VERSION = 2,
	RMIG_REJECT_UUID = 3,
	RMIG_REJECT_CHANNEL_ID = 4,
	RMIG_REJECT_DUPLICATE_CHANNEL = 5,
	RMIG_REJECT_CHANNEL_COUNT = 6,
	RMIG_REJECT_PAGE_SIZE = 7,
	RMIG_REJECT_PACKET_SIZE = 8,
	RMIG_REJECT_FEATURES = 9,
	RMIG_REJECT_MALFORMED = 10,
};

const char *rmig_msg_type_name(unsigned type);

/* Immediate ---------------------------------------------------------- */

uint32_t rmig_imm_make(enum rmig_msg_type type, unsigned credits);
/** Split an immediate; -EPROTO on unknown type or nonzero low bits. */
int rmig_imm_parse(uint32_t imm, enum rmig_msg_type *type, unsigned *credits);

/* Handshake ----------------------------------------------------------- */

struct rmig_handshake {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	uint8_t uuid[16];
	uint16_t channel_id;
	uint16_t channel_count;
	uint32_t page_size;
	uint32_t pages_per_packet;
	uint32_t features;
	uint32_t rx_depth;
	uint32_t msg_size;
};

/** Encode into @buf (>= RMIG_HANDSHAKE_LEN); returns the length. */
size_t rmig_handshake_encode(const struct rmig_handshake *h, void *buf);
/** Decode without judging the values (length must be exact). */
int rmig_handshake_decode(const void *buf, size_t len,
			  struct rmig_handshake *h);

/** What the destination expects of a handshake. */
struct rmig_handshake_expect {
	bool uuid_set;
	uint8_t uuid[16];
	unsigned channel_count; /* 0: any 1..RMIG_MAX_CHANNELS */
	uint32_t page_size;
	const uint64_t *seen; /* bitmap of channel ids already accepted */
	uint32_t features;    /* exactly these (0 or RMIG_FEAT_*) */
};

/**
 * Judge a decoded handshake.  Returns RMIG_REJECT_NONE when acceptable, else
 * the reason, with a message in @why (at most RMIG_REJECT_TEXT_MAX bytes)
 * naming the field, the value received and the value expected.
 */
enum rmig_reject rmig_handshake_check(const struct rmig_handshake *h,
				      const struct rmig_handshake_expect *e,
				      char *why, size_t whylen);

/* Accept (RAM block table) -------------------------------------------- */

struct rmig_wire_block {
	char name[RMIG_BLOCK_NAME_MAX]; /* NUL-terminated after decode */
	uint64_t length;
	uint64_t raddr;
	uint64_t rkey;
	uint32_t page_size;
};

/** Bytes needed for an ACCEPT with @nblocks blocks. */
size_t rmig_accept_len(unsigned nblocks);
/** Encode; @len must be >= rmig_accept_len(nblocks).  Returns the length. */
size_t rmig_accept_encode(uint32_t rx_depth, const struct rmig_wire_block *b,
			  unsigned nblocks, void *buf, size_t len);
/**
 * Decode an ACCEPT: magic, version, block count (1..RMIG_MAX_BLOCKS and
 * consistent with @len), each name NUL-terminated within 64 bytes and
 * nonempty, page size a power of two >= 4096, length a nonzero multiple of
 * it.  @blocks must hold RMIG_MAX_BLOCKS entries.
 */
int rmig_accept_decode(const void *buf, size_t len, uint32_t *rx_depth,
		       struct rmig_wire_block *blocks, unsigned *nblocks);

/* Reject / error ------------------------------------------------------ */

size_t rmig_reject_encode(enum rmig_reject reason, const char *text,
			  void *buf, size_t len);
/** Decode; @text receives the NUL-terminated reason text. */
int rmig_reject_decode(const void *buf, size_t len, enum rmig_reject *reason,
		       char *text, size_t textlen);

/** ERROR: @errnum is a positive errno; text is cut to fit. */
size_t rmig_error_encode(int errnum, const char *text, void *buf, size_t len);
/** Decode an ERROR: errno 1..RMIG_ERROR_ERRNO_MAX, text as for REJECT. */
int rmig_error_decode(const void *buf, size_t len, int *errnum, char *text,
		      size_t textlen);

/* Packet header -------------------------------------------------------- */

struct rmig_packet_hdr {
	uint32_t flags;
	uint32_t block;
	uint64_t packet_num;
	uint32_t normal_count;
	uint32_t zero_count;
	/* Offsets: normal first, then zero.  Points into the message buffer
	 * after decode (still big-endian there: use rmig_packet_offset()). */
	const uint8_t *offsets;
};

size_t rmig_packet_len(uint32_t normal, uint32_t zero);
/** Encode the fixed part and the offsets arrays (host order in). */
size_t rmig_packet_encode(const struct rmig_packet_hdr *h,
			  const uint64_t *normal, const uint64_t *zero,
			  void *buf, size_t len);

/** What the destination knows to judge a packet header against. */
struct rmig_packet_limits {
	unsigned nblocks;
	const uint64_t *block_len; /* [nblocks] */
	uint64_t page_size;
	uint32_t pages_per_packet;
};

/**
 * Decode and fully check a packet header: flags known, block index below
 * nblocks, normal+zero between 1 and pages_per_packet, length exactly
 * rmig_packet_len(), every offset page-aligned and inside the block.  After
 * success every offset may be used without further checks.
 */
int rmig_packet_decode(const void *buf, size_t len,
		       const struct rmig_packet_limits *lim,
		       struct rmig_packet_hdr *h);
/** Offset @i of a decoded header (0 <= i < normal_count + zero_count). */
uint64_t rmig_packet_offset(const struct rmig_packet_hdr *h, uint32_t i);

/* Sync ----------------------------------------------------------------- */

struct rmig_sync_msg {
	uint32_t flags;
	uint64_t sync_num;
	uint64_t packets; /* packets sent on this channel before this SYNC */
};
size_t rmig_sync_encode(const struct rmig_sync_msg *m, void *buf);
/** Checks the length and that no unknown flag is set. */
int rmig_sync_decode(const void *buf, size_t len, struct rmig_sync_msg *m);
size_t rmig_sync_ack_encode(uint64_t sync_num, void *buf);
int rmig_sync_ack_decode(const void *buf, size_t len, uint64_t *sync_num);

/* Read keys (post-copy) ------------------------------------------------ */

struct rmig_read_key {
	uint32_t block; /* the destination's block index */
	uint64_t length;
	uint64_t raddr;
	uint64_t rkey;
};

/** Bytes of a READ_KEYS message with @n entries. */
size_t rmig_read_keys_len(unsigned n);
/** Encode @n (1..RMIG_MAX_BLOCKS) entries into @buf of @cap bytes;
 *  returns the length, 0 when it does not fit. */
size_t rmig_read_keys_encode(const struct rmig_read_key *k, unsigned n,
			     void *buf, size_t cap);
/** Decode and check: count 1..RMIG_MAX_BLOCKS and below @nblocks' bound
 *  (every block index < @nblocks, each at most once), length exact,
 *  reserved fields zero, every length a nonzero multiple of @page_size.
 *  @out holds RMIG_MAX_BLOCKS entries; *@n gets the count. */
int rmig_read_keys_decode(const void *buf, size_t len, unsigned nblocks,
			  uint64_t page_size, struct rmig_read_key *out,
			  unsigned *n);

/* Device state fragments ---------------------------------------------- */

struct rmig_devstate_frag {
	uint32_t seq;
	uint32_t instance_id;
	uint64_t total_len;
	uint64_t frag_off;
	uint32_t frag_len;
	const char *idstr;  /* points into the buffer after decode */
	uint16_t idstr_len; /* including the NUL */
	const void *data;   /* points into the buffer after decode */
};

/** Largest fragment payload that fits one message with this idstr. */
size_t rmig_devstate_frag_room(size_t idstr_len);
/** Encode header + idstr + @f->frag_len bytes from @f->data. */
size_t rmig_devstate_encode(const struct rmig_devstate_frag *f, void *buf,
			    size_t len);
/**
 * Decode and check: idstr length 1..RMIG_IDSTR_MAX, NUL-terminated with no
 * earlier NUL; total length <= @max_total; fragment inside the total;
 * message length exact.
 */
int rmig_devstate_decode(const void *buf, size_t len, uint64_t max_total,
			 struct rmig_devstate_frag *f);

/* Authentication (lib/wire_auth.c; design in docs/security.rst) -------- */

/*
 * The challenge-response that opens an authenticated channel, before any
 * HANDSHAKE.  Same immediate as every message; the types follow
 * RMIG_MSG_ERROR.  Each body starts with magic, auth version and flags (0):
 *
 * AUTH_HELLO (source -> destination, first message), 56 bytes
 *   0 u32 magic  4 u16 auth version (1)  6 u16 flags (0)
 *   8 u16 channel id   10 u16 channel count   12 u32 page size
 *  16 u32 pages per packet   20 u32 reserved (0)   24 u8[32] source nonce
 *   (no UUID: the MACs cover it, it never travels)
 * AUTH_CHALLENGE (destination -> source), 72 bytes
 *   0..7 as above   8 u8[32] destination nonce
 *  40 u8[32] destination MAC (role destination->source)
 * AUTH_PROOF (source -> destination), 40 bytes
 *   0..7 as above   8 u8[32] source MAC (role source->destination)
 * AUTH_REJECT (destination -> source, or source -> destination), 8 bytes
 *   0 u32 reason (enum rmig_auth_reject)  4 u32 reserved (0); no text: the
 *   details go to the local log only.
 *
 * Decoders check length (exact), magic, version, flags and reserved (zero),
 * and for HELLO the values the MACs cover: channel count
 * 1..RMIG_MAX_CHANNELS, id below it, page size a power of two >= 4096,
 * pages per packet 1..RMIG_MAX_PAGES_PER_PACKET.  Whether they suit the
 * destination is judged only after AUTH_PROOF verified.
 */
#define RMIG_AUTH_VERSION 1
#define RMIG_AUTH_WIRE_NONCE_LEN 32u
#define RMIG_AUTH_WIRE_MAC_LEN 32u
#define RMIG_AUTH_HELLO_LEN 56u
#define RMIG_AUTH_CHALLENGE_LEN 72u
#define RMIG_AUTH_PROOF_LEN 40u
#define RMIG_AUTH_REJECT_LEN 8u

/* Message types of the exchange (immediate bits 31..28). */

/** Reasons, the only thing an unauthenticated peer is told. */
enum rmig_auth_reject {
	RMIG_AUTH_REJECT_MALFORMED = 1, /* not a well-formed auth message */
	RMIG_AUTH_REJECT_VERSION = 2,   /* auth version not spoken */
	RMIG_AUTH_REJECT_REQUIRED = 3,  /* the first message was no HELLO */
	RMIG_AUTH_REJECT_FAILED = 4,    /* the MAC did not verify */
	RMIG_AUTH_REJECT_BUSY = 5,      /* too many pending connections */
	RMIG_AUTH_REJECT_TIMEOUT = 6,   /* not authenticated in time */
	RMIG_AUTH_REJECT_INSECURE = 7,  /* this end runs without a secret */
};
#define RMIG_AUTH_REJECT_MAX RMIG_AUTH_REJECT_INSECURE

const char *rmig_auth_reject_name(unsigned reason);

struct rmig_auth_hello {
	uint16_t channel_id;
	uint16_t channel_count;
	uint32_t page_size;
	uint32_t pages_per_packet;
	uint8_t nonce[RMIG_AUTH_WIRE_NONCE_LEN];
};

struct rmig_auth_challenge {
	uint8_t nonce[RMIG_AUTH_WIRE_NONCE_LEN];
	uint8_t mac[RMIG_AUTH_WIRE_MAC_LEN];
};

/** Encoders write into @buf (>= the message's length), return it. */
size_t rmig_auth_hello_encode(const struct rmig_auth_hello *h, void *buf);
int rmig_auth_hello_decode(const void *buf, size_t len,
			   struct rmig_auth_hello *h);
size_t rmig_auth_challenge_encode(const struct rmig_auth_challenge *c,
				  void *buf);
int rmig_auth_challenge_decode(const void *buf, size_t len,
			       struct rmig_auth_challenge *c);
size_t rmig_auth_proof_encode(const uint8_t mac[RMIG_AUTH_WIRE_MAC_LEN],
			      void *buf);
int rmig_auth_proof_decode(const void *buf, size_t len,
			   uint8_t mac[RMIG_AUTH_WIRE_MAC_LEN]);
size_t rmig_auth_reject_encode(enum rmig_auth_reject reason, void *buf);
/** Decode; the reason must be 1..RMIG_AUTH_REJECT_MAX. */
int rmig_auth_reject_decode(const void *buf, size_t len,
			    enum rmig_auth_reject *reason);

#endif /* RMIG_WIRE_H */

/* SPDX-License-Identifier: MIT */
/*
 * rmig.h - live migration of guest memory over RDMA (public API).
 *
 * rmig moves a virtual machine's RAM from a source host to a destination
 * host.  A migration has N channels (1..64); each is one connection served by
 * its own thread on each side.  The caller's migration thread queues pages;
 * they are batched into packets and handed to the next idle channel, whose
 * thread writes the pages by one-sided RDMA WRITE straight from the source's
 * registered RAM into the destination's registered RAM, then sends a small
 * header naming the pages.  A sync proves that every page queued before it is
 * in place on the destination.
 *
 * Conventions (every function):
 *   - return 0 (or a documented non-negative value) on success, a negative
 *     errno on failure; outputs are written only on success;
 *   - on failure, rmig_last_error() returns a message for the calling thread
 *     naming what was wrong and where (channel, field, value);
 *   - handles are opaque; parameter structs carry a field_mask (or size) so
 *     they can grow without breaking callers.
 *
 * Thread safety: one thread (the caller's migration thread) drives a session.
 * rmig_src_cancel(), rmig_dest_cancel(), the *_state(), *_error() and
 * *_get_stats() functions may be called from any thread.
 *
 * See rmig(7) (docs/rmig.7.rst) and the per-family pages in docs/.
 */
#ifndef RMIG_RMIG_H
#define RMIG_RMIG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RMIG_BUILDING_LIBRARY)
#define RMIG_API __attribute__((visibility("default")))
#else
#define RMIG_API
#endif

#define RMIG_VERSION_MAJOR 0
#define RMIG_VERSION_MINOR 1
#define RMIG_VERSION_PATCH 0

/** Upper bound on channels per migration. */
#define RMIG_MAX_CHANNELS 64
/** Upper bound on pages per packet (header size stays below one message). */
#define RMIG_MAX_PAGES_PER_PACKET 4096
/** RAM block name length, including the terminating NUL. */
#define RMIG_BLOCK_NAME_MAX 64
/** Upper bound on RAM blocks per session. */
#define RMIG_MAX_BLOCKS 256
/** Device-state idstr length, including the terminating NUL. */
#define RMIG_IDSTR_MAX 256
/** rmig_config.idle_timeout_ms: default and accepted range (ms). */
#define RMIG_IDLE_TIMEOUT_DEFAULT_MS 30000u
#define RMIG_IDLE_TIMEOUT_MIN_MS 100u
#define RMIG_IDLE_TIMEOUT_MAX_MS 3600000u
/** Default and hard upper bound of devstate_max, in bytes. */
#define RMIG_DEVSTATE_MAX_DEFAULT (64u << 20)
#define RMIG_DEVSTATE_MAX_LIMIT (1u << 30)

/** Version string of the library, "MAJOR.MINOR.PATCH". */
RMIG_API const char *rmig_version(void);

/**
 * Message describing the last failed rmig call made by this thread
 * (thread-local, like dlerror()).  Never NULL; "" when nothing failed yet.
 */
RMIG_API const char *rmig_last_error(void);

/* ------------------------------------------------------------------ */
/* Logging                                                             */

enum rmig_log_level {
	RMIG_LOG_ERROR = 0,
	RMIG_LOG_WARN = 1,
	RMIG_LOG_INFO = 2,
	RMIG_LOG_DEBUG = 3,
};

typedef void (*rmig_log_fn)(enum rmig_log_level level, const char *msg,
			    void *arg);

/**
 * Route library log lines to @fn (NULL restores the default: stderr, level
 * from the RMIG_LOG_LEVEL environment variable, default WARN).  Messages
 * above @max_level are dropped.  Call before creating sessions.
 */
RMIG_API void rmig_set_log_handler(rmig_log_fn fn, void *arg,
				   enum rmig_log_level max_level);

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

enum rmig_transport {
	/** Source: verbs when the verbs provider is built and opens a
	 *  domain for the peer's address (an RDMA device exists and the
	 *  route resolves), else libfabric tcp.  The choice and the reason
	 *  (with the verbs error) are logged at INFO and the choice is in
	 *  rmig_stats.transport.  When verbs opened a domain but the first
	 *  channel's connection is refused, times out or is unreachable, the
	 *  whole session falls back to libfabric (never a mix; this can take
	 *  up to twice connect_timeout_ms).  Destination: listens on both,
	 *  verbs (where a device exists) and libfabric tcp, on the same
	 *  port; the first source whose handshake passes fixes the transport
	 *  and the other listener is closed. */
	RMIG_TRANSPORT_AUTO = 0,
	/** libfabric, FI_EP_MSG; provider named by fabric_provider. */
	RMIG_TRANSPORT_FABRIC = 1,
	/** rdma-core verbs (RC QPs, librdmacm); -ENODEV without a device. */
	RMIG_TRANSPORT_VERBS = 2,
};

/** Bits of rmig_config.field_mask: which fields the caller set. */
enum rmig_config_field {
	RMIG_CFG_TRANSPORT = 1u << 0,
	RMIG_CFG_FABRIC_PROVIDER = 1u << 1,
	RMIG_CFG_ADDRESS = 1u << 2,
	RMIG_CFG_CHANNELS = 1u << 3,
	RMIG_CFG_PAGE_SIZE = 1u << 4,
	RMIG_CFG_PAGES_PER_PACKET = 1u << 5,
	RMIG_CFG_UUID = 1u << 6,
	RMIG_CFG_CONNECT_TIMEOUT = 1u << 7,
	RMIG_CFG_DEVSTATE_MAX = 1u << 8,
	/** reg_mode, reg_chunk_size and reg_cache_chunks. */
	RMIG_CFG_REG_MODE = 1u << 9,
	/** numa_node. */
	RMIG_CFG_NUMA_NODE = 1u << 10,
	/** idle_timeout_ms. */
	RMIG_CFG_IDLE_TIMEOUT = 1u << 11,
	/** auth_key and auth_key_len: the pre-shared secret, as bytes. */
	RMIG_CFG_AUTH_KEY = 1u << 12,
	/** auth_key_file: the pre-shared secret, as a file. */
	RMIG_CFG_AUTH_KEY_FILE = 1u << 13,
	/** insecure: run without authentication (explicit opt-in). */
	RMIG_CFG_INSECURE = 1u << 14,
	/** allowed_sources (destination). */
	RMIG_CFG_ALLOWED_SOURCES = 1u << 15,
	/** no_zero_detect (source). */
	RMIG_CFG_NO_ZERO_DETECT = 1u << 16,
	/** postcopy_resume (both sides). */
	RMIG_CFG_POSTCOPY_RESUME = 1u << 17,
};

/** Most addresses in rmig_config.allowed_sources. */
#define RMIG_ALLOWED_SOURCES_MAX 64

/** Length of the pre-shared secret, in bytes (256 bits at least). */
#define RMIG_AUTH_KEY_MIN_LEN 32u
#define RMIG_AUTH_KEY_MAX_LEN 1024u

/** How RAM blocks are registered with the transport (rmig_config.reg_mode). */
enum rmig_reg_mode {
	/** Register (pin) every RAM block whole, once, before connecting.
	 *  The default, and the only mode of a destination. */
	RMIG_REG_PIN_ALL = 0,
	/** Source only: register RAM in chunks of reg_chunk_size bytes when
	 *  a page of the chunk is first sent, keeping at most
	 *  reg_cache_chunks registered; the least recently used chunk with no
	 *  write in flight is deregistered to make room.  For hosts that
	 *  cannot pin all guest RAM.  A destination refuses it (-ENOTSUP):
	 *  the source writes into the destination's RAM by remote key, so
	 *  the destination keeps all of it registered (pin-all). */
	RMIG_REG_ON_DEMAND = 1,
};

/** Default chunk size and cache bound of RMIG_REG_ON_DEMAND. */
#define RMIG_REG_CHUNK_DEFAULT (64ull << 20)
#define RMIG_REG_CACHE_CHUNKS_DEFAULT 16u
/** Limits: chunks are 1 page .. 1 TiB, the cache 1..65536 chunks. */
#define RMIG_REG_CHUNK_MAX (1ull << 40)
#define RMIG_REG_CACHE_CHUNKS_MAX 65536u

/** rmig_config.numa_node: the device's node (default), or no binding. */
#define RMIG_NUMA_AUTO (-1)
#define RMIG_NUMA_NONE (-2)

/**
 * Session configuration.  Zero-initialise, set the fields you need and their
 * bits in field_mask; unset fields take their defaults.
 */
struct rmig_config {
	uint64_t field_mask;
	/** Default RMIG_TRANSPORT_AUTO. */
	enum rmig_transport transport;
	/** libfabric provider name, default "tcp".  Any provider offering
	 *  FI_MSG|FI_RMA|FI_REMOTE_CQ_DATA on FI_EP_MSG works. */
	const char *fabric_provider;
	/** "host:port" (IPv6 as "[addr]:port").  Source: where to connect.
	 *  Destination: where to listen; port 0 picks a free port (see
	 *  rmig_dest_get_address()).  Required. */
	const char *address;
	/** Number of channels, 1..RMIG_MAX_CHANNELS, default 4.  On the
	 *  destination this is the number it expects; when unset there, it
	 *  accepts what the first valid source handshake announces. */
	unsigned channels;
	/** Target page size in bytes: 4096 (default) or 2097152. */
	size_t page_size;
	/** Pages per packet, 1..RMIG_MAX_PAGES_PER_PACKET, default 128. */
	unsigned pages_per_packet;
	/** Session UUID.  Source: sent in every channel's handshake (default:
	 *  random).  Destination: when set, a source with another UUID is
	 *  rejected; when unset, the first valid source's UUID is adopted. */
	uint8_t uuid[16];
	/** Milliseconds to wait for a connection or a handshake answer,
	 *  default 10000. */
	unsigned connect_timeout_ms;
	/** Device-state memory, in bytes, default RMIG_DEVSTATE_MAX_DEFAULT,
	 *  at most RMIG_DEVSTATE_MAX_LIMIT.  Destination: the most it holds
	 *  at once, in total: blobs received and not yet taken by
	 *  rmig_dest_recv_devstate(), plus blobs being reassembled (counted
	 *  whole from their first fragment), on every channel.  A blob that
	 *  would make more fails the session with -ENOSPC, naming the sizes
	 *  (so it is also the largest blob accepted).  Source: largest blob
	 *  it will send. */
	uint64_t devstate_max;
	/** Registration mode, default RMIG_REG_PIN_ALL (RMIG_CFG_REG_MODE). */
	enum rmig_reg_mode reg_mode;
	/** RMIG_REG_ON_DEMAND: bytes per registered chunk, a power of two and
	 *  a multiple of page_size, at most RMIG_REG_CHUNK_MAX; 0 means
	 *  RMIG_REG_CHUNK_DEFAULT.  Ignored for pin-all. */
	uint64_t reg_chunk_size;
	/** RMIG_REG_ON_DEMAND: most chunks registered at once,
	 *  1..RMIG_REG_CACHE_CHUNKS_MAX; 0 means
	 *  RMIG_REG_CACHE_CHUNKS_DEFAULT.  Ignored for pin-all. */
	unsigned reg_cache_chunks;
	/** NUMA node of the channel threads and their message buffers
	 *  (RMIG_CFG_NUMA_NODE): RMIG_NUMA_AUTO (default) uses the RDMA
	 *  device's node from sysfs and binds nothing when it is unknown (as
	 *  on rxe, or with a provider without a device such as libfabric
	 *  tcp); RMIG_NUMA_NONE never binds; a node >= 0 binds there (it
	 *  must be <= numa_max_node()).  Without NUMA support in the kernel
	 *  (numa_available() < 0) nothing is bound and the log says why. */
	int numa_node;
	/** The pre-shared secret of the session (RMIG_CFG_AUTH_KEY): both
	 *  ends hold the same RMIG_AUTH_KEY_MIN_LEN..RMIG_AUTH_KEY_MAX_LEN
	 *  bytes, created per migration by the management layer.  Every
	 *  channel opens with a challenge-response (HMAC-SHA-256 over both
	 *  sides' fresh nonces, the UUID when one is configured, the channel
	 *  id and count, page and packet size, the transport): the source
	 *  sends no page and no device state before the destination proved
	 *  the secret, the destination reveals no memory key, block table or
	 *  configuration before the source did.  The library copies the
	 *  bytes at create (into locked memory, wiped at destroy); the caller
	 *  may wipe its copy then.  See docs/security.rst. */
	const void *auth_key;
	size_t auth_key_len;
	/** The secret as a file (RMIG_CFG_AUTH_KEY_FILE): its whole content,
	 *  byte for byte, read at create.  It must be a regular file (not a
	 *  symbolic link) owned by the effective user with mode 0600 or
	 *  0400.  Exclusive with RMIG_CFG_AUTH_KEY. */
	const char *auth_key_file;
	/** Nonzero with RMIG_CFG_INSECURE: no authentication at all (anyone
	 *  who reaches the address can write guest RAM; a warning is
	 *  logged).  Without a secret and without this opt-in, create fails
	 *  with -EINVAL.  Exclusive with a secret. */
	int insecure;
	/** Destination (RMIG_CFG_ALLOWED_SOURCES): the only source hosts it
	 *  takes connections from, as numeric IPv4 or IPv6 addresses
	 *  separated by commas (no ports, no names; at most
	 *  RMIG_ALLOWED_SOURCES_MAX), e.g. "192.0.2.7,2001:db8::7".  A
	 *  connection from any other address is closed unanswered, before
	 *  it is read (logged, counted in rejected_handshakes).  Default:
	 *  any host (the secret is the admission control). */
	const char *allowed_sources;
	/** Liveness of an established session (RMIG_CFG_IDLE_TIMEOUT), both
	 *  sides: the longest a channel may go without receiving anything
	 *  from its peer, in ms, RMIG_IDLE_TIMEOUT_MIN_MS..
	 *  RMIG_IDLE_TIMEOUT_MAX_MS (0 is refused: there is no "forever"),
	 *  default RMIG_IDLE_TIMEOUT_DEFAULT_MS (30 s).  Past it the session
	 *  fails with -ETIMEDOUT and a message naming the channel, what it
	 *  waited for (a message, a credit, completions, SYNC_ACK, the rest
	 *  of a device-state blob) and for how long.  A live channel that has
	 *  sent nothing for a quarter of the limit (at most 1 s) sends a
	 *  keepalive, so a peer whose caller is slow never trips it, while a
	 *  peer stopped mid-message or whose host vanished without a reset
	 *  is noticed within the limit.  Give both sides the same value (a
	 *  side whose limit is below the peer's keepalive interval fails on
	 *  a quiet peer), and more than one packet's pages take on the link
	 *  (pages_per_packet * page_size bytes: the next message waits behind
	 *  them).  Appended last: callers built before it never set the bit
	 *  and the library never reads the field then. */
	unsigned idle_timeout_ms;
	/** Source (RMIG_CFG_NO_ZERO_DETECT): nonzero turns zero-page
	 *  detection off.  By default a channel thread tests every queued
	 *  page and sends an all-zero page as a zero entry of the packet
	 *  header (the destination clears it), so it never crosses the
	 *  wire.  With detection off every queued page is written as a
	 *  normal page and counted in normal_pages, zero_pages stays 0: for
	 *  a caller that decided itself which pages to send (QEMU's
	 *  zero-page-detection=none) or whose pages are rarely zero.  The
	 *  destination's memory ends the same either way.  A destination
	 *  refuses the bit (-EINVAL).  Appended last, as idle_timeout_ms. */
	int no_zero_detect;
	/** Both sides (RMIG_CFG_POSTCOPY_RESUME): nonzero makes a session
	 *  that resumes the pull of a post-copy whose first session was
	 *  lost (rmig(7), Post-copy recovery).  It writes nothing: neither
	 *  side registers RAM for RDMA WRITE (the destination's guest
	 *  memory may be under userfaultfd, with pages missing), the source
	 *  refuses every queue, device-state and sync call, and its first
	 *  call after rmig_src_connect() is rmig_src_postcopy(), which the
	 *  destination's rmig_dest_wait_sync() sees as
	 *  RMIG_SYNC_POSTCOPY_SWITCH.  Both sides must set it (the source's
	 *  HANDSHAKE says so; a destination that differs turns it away).
	 *  Give the new session a UUID of its own, derived from the lost
	 *  one's, on both sides (RMIG_CFG_UUID): a peer of the old session
	 *  or any other then cannot join it.  Appended last. */
	int postcopy_resume;
};

/**
 * Start loading @transport's libraries now, in the background, so that the
 * process's first session does not wait for them inside its setup:
 * libfabric initialises every provider it has at its first use (100-200 ms
 * with libfabric 1.17, whose verbs provider reads /proc/kallsyms), which a
 * source otherwise pays in rmig_src_connect() and a destination in
 * rmig_dest_listen().  Returns at once: the work runs on a thread of its
 * own, and a session that needs the libraries earlier waits for that work
 * (never more than it would have done itself).  RMIG_TRANSPORT_AUTO
 * prepares both.  Optional; any thread, any number of times (the work is
 * done once a process; the library's destructor waits for it to end).  A hypervisor calls it when migration over rmig
 * becomes likely (QEMU: when x-rmig is turned on).  Returns 0, -EINVAL
 * for an unknown transport, or a negative errno when the thread cannot be
 * started.  Failures of the work itself are only logged (INFO): the first
 * session reports them.
 */
RMIG_API int rmig_preload(enum rmig_transport transport);

/* ------------------------------------------------------------------ */
/* State and statistics                                                */

enum rmig_state {
	RMIG_STATE_SETUP = 0,     /**< created, not yet connected */
	RMIG_STATE_ACTIVE = 1,    /**< channels connected, migrating */
	RMIG_STATE_COMPLETED = 2, /**< finished successfully */
	RMIG_STATE_FAILED = 3,    /**< an error ended it; see *_error() */
	RMIG_STATE_CANCELLED = 4, /**< cancelled by the caller */
};

/** Name of a state ("setup", "active", ...). */
RMIG_API const char *rmig_state_name(enum rmig_state state);

/** Counters of one channel (like QEMU's query-migrate, per channel). */
struct rmig_channel_stats {
	uint64_t bytes;        /**< page bytes + message bytes moved */
	uint64_t packets;      /**< page packets */
	uint64_t normal_pages; /**< pages written (source) / received (dest) */
	uint64_t zero_pages;   /**< pages sent as zero */
	uint64_t syncs;        /**< SYNC markers sent / received */
	uint64_t messages;     /**< messages (headers, SYNC, state, credit) */
};

struct rmig_stats {
	/** Set by the caller to sizeof(struct rmig_stats); the library fills
	 *  only the fields that fit, in this order, so a caller built with a
	 *  smaller struct keeps working (new fields are only ever appended). */
	size_t size;
	enum rmig_state state;
	unsigned channels;
	uint64_t bytes;
	uint64_t packets;
	uint64_t normal_pages;
	uint64_t zero_pages;
	uint64_t syncs;          /**< completed syncs (whole session) */
	uint64_t devstate_blobs; /**< device-state blobs sent / received */
	uint64_t devstate_bytes;
	uint64_t zero_pages_cleared; /**< dest: zero pages that had data */
	/** dest: connections turned away (REJECT, or AUTH_REJECT for a
	 *  peer that did not authenticate). */
	uint64_t rejected_handshakes;
	/** Nanoseconds spent registering memory (RAM blocks or chunks; a
	 *  destination registers its RAM when every channel authenticated,
	 *  in the transport they came over). */
	uint64_t registration_ns;
	struct rmig_channel_stats channel[RMIG_MAX_CHANNELS];
	/** RAM registrations made (blocks for pin-all, chunks on demand). */
	uint64_t registrations;
	/** On-demand chunks deregistered to make room in the cache. */
	uint64_t reg_evictions;
	/** Most on-demand chunks registered at once (<= reg_cache_chunks). */
	uint64_t reg_cached_max;
	/** NUMA node the channel threads and buffers are bound to, -1 when
	 *  none. */
	int numa_node;
	/** The transport in use: the provider's name such as "fabric/tcp" or
	 *  "verbs/rxe0"; "" before it is fixed (a destination in auto mode
	 *  until the first source's handshake is accepted). */
	char transport[32];
	/** dest, post-copy: RDMA READs of the source's RAM completed, and
	 *  their bytes (rmig_dest_read_submit()). */
	uint64_t postcopy_reads;
	uint64_t postcopy_read_bytes;
};

/* ------------------------------------------------------------------ */
/* Source                                                              */

typedef struct rmig_src rmig_src;

/** Create a source session.  Nothing is connected yet. */
RMIG_API int rmig_src_create(const struct rmig_config *cfg, rmig_src **out);

/**
 * Register a RAM block (before rmig_src_connect()).  @name must be unique,
 * at most RMIG_BLOCK_NAME_MAX-1 bytes; @host and @length page-aligned to the
 * session's page size.  The destination must register a block with the same
 * name and length.  Returns the block index (>= 0), used in queue calls.
 * The memory stays owned by the caller; rmig only reads it.  Errors:
 * -EINVAL (NULL, empty or long name, unaligned address or length), -EEXIST
 * (a block of that name exists), -ENOSPC (RMIG_MAX_BLOCKS reached), -EBUSY
 * (after connect).
 */
RMIG_API int rmig_src_add_block(rmig_src *s, const char *name, void *host,
				size_t length);

/**
 * Connect every channel, handshake, and match RAM blocks against the
 * destination's table.  Blocks the caller; bounded by connect_timeout_ms per
 * step.  Errors: -ECONNREFUSED (nobody listening or handshake rejected; the
 * message carries the destination's reason), -ETIMEDOUT, -EINVAL (block
 * table mismatch), -EPROTO.
 */
RMIG_API int rmig_src_connect(rmig_src *s);

/**
 * Queue one page (block index, byte offset).  Pages are collected into a
 * packet (pages_per_packet pages of one block) and the packet is handed to the
 * next idle channel; the call waits when every channel is busy.  A page may be
 * queued at most once between two syncs (as multifd walks its dirty bitmap
 * once per sync): two copies in flight on different channels could land out
 * of order.  Returns 0; -EINVAL (block index, offset unaligned or past the
 * end), -EBUSY (the page is queued already since the last sync), or the
 * session's error.
 */
RMIG_API int rmig_src_queue_page(rmig_src *s, int block, uint64_t offset);

/**
 * Queue @n pages of one block at once (any n; split into packets).  Flushes
 * the partial batch of rmig_src_queue_page() first.  All or nothing: on
 * -EINVAL or -EBUSY (as rmig_src_queue_page()) no page of the call is queued.
 */
RMIG_API int rmig_src_queue_pages(rmig_src *s, int block,
				  const uint64_t *offsets, size_t n);

/**
 * Send a device-state blob.  @idstr is NUL-terminated, at most
 * RMIG_IDSTR_MAX bytes with the NUL; @len at most the session's devstate_max.
 * The bytes are copied before the call returns.  Blobs arrive at the
 * destination in the order they were sent; a blob sent before a sync is
 * available there once that sync completes.
 */
RMIG_API int rmig_src_send_devstate(rmig_src *s, const char *idstr,
				    uint32_t instance_id, const void *data,
				    size_t len);

/**
 * Flush the partial batch, make every channel send a SYNC marker after the
 * packets it owes, and wait until the destination has seen SYNC on every
 * channel (and its caller has reached rmig_dest_wait_sync()).  On return every
 * page queued before the call is in place on the destination.
 */
RMIG_API int rmig_src_sync(rmig_src *s);

/**
 * Final sync: like rmig_src_sync(), marked final, after which the channels
 * close.  On success the state is RMIG_STATE_COMPLETED.
 */
RMIG_API int rmig_src_finish(rmig_src *s);

/**
 * The post-copy switch.  Call it once the guest is paused for good on the
 * source, after the last pages and device state it sends (the vCPU state,
 * the list of pages the destination lacks).  It registers every RAM block
 * for the destination's one-sided RDMA READs (remote read only: the
 * memory is never writable remotely), sends each channel the block keys
 * (READ_KEYS) and a sync marked as the switch, and waits like
 * rmig_src_sync(): on return every page queued before is in place on the
 * destination, whose rmig_dest_wait_sync() returned
 * RMIG_SYNC_POSTCOPY_SWITCH, and the destination reads the rest of the
 * source's RAM by itself, without this process's CPU.  No page may be
 * queued after it.
 *
 * The source keeps its RAM readable until rmig_src_finish() returns (the
 * destination acknowledges the final sync only once it has every page) or
 * the session ends otherwise (failure, cancel, destroy): then the read
 * registrations are gone and their keys are dead.  Do not free or reuse
 * the guest's memory before that.
 *
 * With rmig_src_postcopy_prepare() called before, the registration is
 * already made and the switch only sends: the pause is shorter by the
 * time registering takes (pinning the whole RAM on verbs).
 *
 * -EOPNOTSUPP (the session goes on, nothing was sent: continue with
 * pre-copy) when the transport has no RDMA READ; -EINVAL when called
 * twice; the session's error otherwise.
 */
RMIG_API int rmig_src_postcopy(rmig_src *s);

/**
 * Register every RAM block for the destination's RDMA READs now, ahead of
 * rmig_src_postcopy(), to take that registration out of the guest's pause.
 * Optional; call it while the session is active, before the switch, at
 * most once: pre-copy goes on as before.  Nothing is sent: the keys stay
 * in this process until the switch sends them, so no read can reach the
 * RAM before it (and only the session's authenticated channels can read
 * then).  The registration lives as rmig_src_postcopy()'s does: until
 * rmig_src_finish() returns or the session ends otherwise, switch made
 * or not.
 *
 * On Linux before 6.2 verbs pins the RAM for writing even for a read-only
 * registration, which fails (-EFAULT) on pages write-protected by
 * userfaultfd: call it before dirty tracking write-protects the RAM.
 *
 * -EOPNOTSUPP (the session goes on, nothing registered) when the
 * transport has no RDMA READ; -EINVAL when called twice or after the
 * switch; the registration's error (the session goes on) or the
 * session's error otherwise.
 */
RMIG_API int rmig_src_postcopy_prepare(rmig_src *s);

/**
 * Abort the migration from any thread: blocked and later calls return
 * -ECANCELED and the state becomes RMIG_STATE_CANCELLED.  The connections
 * close at rmig_src_destroy(), where the destination sees them go.  The
 * source's memory is untouched (rmig never writes it).
 */
RMIG_API void rmig_src_cancel(rmig_src *s);

/** Stop every thread, close every connection, deregister memory, free. */
RMIG_API void rmig_src_destroy(rmig_src *s);

RMIG_API enum rmig_state rmig_src_state(rmig_src *s);
/** Message of the session's first error ("" when none).  Valid until
 *  rmig_src_destroy(). */
RMIG_API const char *rmig_src_error(rmig_src *s);
RMIG_API int rmig_src_get_stats(rmig_src *s, struct rmig_stats *st);

/* ------------------------------------------------------------------ */
/* Destination                                                         */

typedef struct rmig_dest rmig_dest;

RMIG_API int rmig_dest_create(const struct rmig_config *cfg, rmig_dest **out);

/**
 * Register a RAM block where pages will land (before rmig_dest_listen()).
 * Same rules as rmig_src_add_block().  Returns the block index.
 */
RMIG_API int rmig_dest_add_block(rmig_dest *d, const char *name, void *host,
				 size_t length);

/** Bind and listen on the configured address. */
RMIG_API int rmig_dest_listen(rmig_dest *d);

/** The address actually bound ("host:port"), after rmig_dest_listen(). */
RMIG_API int rmig_dest_get_address(rmig_dest *d, char *buf, size_t len);

/**
 * Accept connections until every channel of one source has handshaked.
 * Connections whose handshake is wrong (magic, version, UUID, channel id out
 * of range or duplicate, channel count, page size, packet size) are rejected
 * with a message naming the field, before any memory key is revealed, and
 * the call keeps waiting.  @timeout_ms < 0 waits forever.
 */
RMIG_API int rmig_dest_accept(rmig_dest *d, int timeout_ms);

/** rmig_dest_wait_sync()'s value at the source's post-copy switch. */
#define RMIG_SYNC_POSTCOPY_SWITCH 2

/**
 * Wait until every channel has stopped at the next SYNC marker, then release
 * them.  Returns 0 for a sync, 1 for the source's final sync (the migration
 * is complete; call rmig_dest_finish()), RMIG_SYNC_POSTCOPY_SWITCH for the
 * source's rmig_src_postcopy() (the RAM blocks take no more writes: their
 * registration is gone; the source's RAM is readable with
 * rmig_dest_read_submit() from now until the final sync), or a negative
 * errno (-ETIMEDOUT when @timeout_ms >= 0 ran out, with the channels still
 * running).
 *
 * In post-copy the source's final sync comes at once; this call returns 1
 * for it only when the caller asks, after its last read completed: the
 * source keeps its RAM until then.
 */
RMIG_API int rmig_dest_wait_sync(rmig_dest *d, int timeout_ms);

/* Post-copy: reading the source's RAM ------------------------------- */

/**
 * One RDMA READ from the source's RAM (post-copy): @len bytes at byte
 * @offset of the destination's block @block (its index from
 * rmig_dest_add_block(); the source's block of the same name is read)
 * into @buf, which lies inside a region registered with
 * rmig_dest_read_region().  @len is at most RMIG_READ_MAX.  The library
 * owns the request from rmig_dest_read_submit() until
 * rmig_dest_read_wait() hands it back with @status set: 0 when the
 * bytes are in @buf, or a negative errno.
 */
struct rmig_read_req {
	int block;
	uint64_t offset;
	uint64_t len;
	void *buf;
	void *user;  /**< the caller's, untouched */
	int status;  /**< out */
	struct rmig_read_req *next_; /**< the library's while submitted */
	unsigned flags_;             /**< the library's while submitted */
};

/** Bytes one read may ask for, at most. */
#define RMIG_READ_MAX (1u << 20)

/** rmig_dest_read_submit() flag: a fault is waiting for this read: it
 *  goes before every background read not yet posted, and (with two
 *  channels or more) on a channel that carries no background reads. */
#define RMIG_READ_URGENT 1u

/**
 * Register [@addr, @addr + @len) as memory reads may land in (local
 * write access only: nothing remote can reach it), after
 * rmig_dest_accept(), at most RMIG_READ_REGIONS of them; deregistered at
 * rmig_dest_destroy().  -EOPNOTSUPP when the transport has no RDMA READ,
 * -ENOSPC when RMIG_READ_REGIONS are registered, -EINVAL for NULL or an
 * empty range, -ENOTCONN before the accept.
 */
RMIG_API int rmig_dest_read_region(rmig_dest *d, void *addr, size_t len);
#define RMIG_READ_REGIONS 16

/**
 * Queue @req (see struct rmig_read_req) for a channel to post; @flags 0 or
 * RMIG_READ_URGENT.  Only between the post-copy switch and the final
 * sync.  -EINVAL (a field out of range, naming it: block, range past the
 * source's block, length 0 or above RMIG_READ_MAX, buffer outside every
 * read region), -ENOTCONN (not in post-copy), or the session's error; then
 * the request is not taken.  Any thread.
 */
RMIG_API int rmig_dest_read_submit(rmig_dest *d, struct rmig_read_req *req,
				   unsigned flags);

/**
 * Take up to @max completed requests into @done, waiting up to
 * @timeout_ms (< 0: for ever, 0: not at all) for the first; urgent ones
 * (RMIG_READ_URGENT) before any background one, each kind in completion
 * order.  Returns the
 * count (0 on timeout), or the session's error once it failed and every
 * request it held came back (those with the same error in status).  A
 * failed read fails the session.  Any thread (the completions are shared:
 * one waiter is the simple use).
 */
RMIG_API int rmig_dest_read_wait(rmig_dest *d, struct rmig_read_req **done,
				 unsigned max, int timeout_ms);

/** A received device-state blob. */
struct rmig_devstate {
	char idstr[RMIG_IDSTR_MAX];
	uint32_t instance_id;
	size_t len;
	void *data;
};

/**
 * Take the next device-state blob, in the order the source sent them.
 * -EAGAIN when none is ready.  Free with rmig_devstate_free().  Blobs not
 * taken count against devstate_max: take them after each sync.
 */
RMIG_API int rmig_dest_recv_devstate(rmig_dest *d, struct rmig_devstate **out);
RMIG_API void rmig_devstate_free(struct rmig_devstate *ds);

/** After the final sync: join the channels and mark the session completed. */
RMIG_API int rmig_dest_finish(rmig_dest *d);

RMIG_API void rmig_dest_cancel(rmig_dest *d);
RMIG_API void rmig_dest_destroy(rmig_dest *d);
RMIG_API enum rmig_state rmig_dest_state(rmig_dest *d);
RMIG_API const char *rmig_dest_error(rmig_dest *d);
RMIG_API int rmig_dest_get_stats(rmig_dest *d, struct rmig_stats *st);

/**
 * Number of pages of @block received since the session started (normal or
 * zero, each page counted once), from the destination's received bitmap.
 */
RMIG_API int64_t rmig_dest_block_received(rmig_dest *d, int block);

/* ------------------------------------------------------------------ */
/* Tunables                                                            */

/**
 * Tunables (rx/tx queue depths, timeouts, provider settings, ...) have
 * defaults and can be overridden by environment variables RMIG_<NAME>, read
 * once per process; a value outside a tunable's range is ignored with a
 * warning.  Iterate them with @index = 0, 1, ... until -ENOENT.
 * rmig_param_describe() says more of each (environment variable, range).
 */
struct rmig_param_info {
	const char *name;
	const char *help;
	long long default_value;
	long long value; /**< effective value (environment applied) */
};
RMIG_API int rmig_param_get(unsigned index, struct rmig_param_info *out);

/** One tunable, as rmig_param_describe() fills it in. */
struct rmig_param_desc {
	/** Set by the caller to sizeof(struct rmig_param_desc); the library
	 *  fills only what fits, so older callers keep working. */
	size_t size;
	const char *name;        /**< e.g. "rx_depth" */
	const char *env;         /**< environment variable, e.g. "RMIG_RX_DEPTH" */
	const char *help;        /**< one-line description */
	long long default_value;
	long long min, max;      /**< accepted values, inclusive */
	long long value;         /**< effective value (environment applied) */
};

/**
 * Describe tunable number @index (0, 1, ... until -ENOENT) into @out, whose
 * size member the caller sets.  The strings are static.  Returns 0,
 * -ENOENT past the last tunable, -EINVAL when @out is NULL or its size is
 * smaller than the size member itself.
 */
RMIG_API int rmig_param_describe(unsigned index, struct rmig_param_desc *out);

#ifdef __cplusplus
}
#endif

#endif /* RMIG_RMIG_H */

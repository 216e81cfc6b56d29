/* SPDX-License-Identifier: MIT */
/*
 * cli - what the command-line programs share: tools/rmig-migrate and
 * perf/rmig_bw.  Option values, the session configuration they build from
 * them, the RAM block (mapped and faulted in before any clock starts), the
 * page-queueing loop, timing and memory figures, the list of tunables.
 * Only the public API (rmig/rmig.h) is used; nothing here prints except
 * cli_print_params(), to the stream it is given.  Built as the static library
 * rmig_cli (tools/CMakeLists.txt); not installed.
 */
#ifndef RMIG_TOOLS_CLI_H
#define RMIG_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <rmig/rmig.h>

/* Page offsets handed to one rmig_src_queue_pages() call; the size of the
 * offs buffer that cli_queue_all_pages() takes. */
#define CLI_QUEUE_CHUNK 4096

/* The session settings both programs take from the command line. */
struct cli_session_opts {
	size_t page_size;          /* 4096 or 2 MiB */
	unsigned channels;         /* 0: library default (source) / adopt (dest) */
	unsigned pages_per_packet; /* 0: library default */
	enum rmig_transport transport;
	bool transport_set;
	const char *fabric_provider; /* NULL: library default */
	/* Registration (RMIG_CFG_REG_MODE): set by cli_parse_reg_mode(),
	 * cli_parse_reg_chunk() and cli_parse_reg_cache(). */
	enum rmig_reg_mode reg_mode;
	bool reg_mode_set;
	uint64_t reg_chunk_size;   /* 0: library default */
	unsigned reg_cache_chunks; /* 0: library default */
	/* NUMA node (RMIG_CFG_NUMA_NODE), set by cli_parse_numa(). */
	int numa_node;
	bool numa_set;
	/* Authentication (RMIG_CFG_AUTH_KEY_FILE, _AUTH_KEY, _INSECURE):
	 * --auth-key-file, a secret generated in memory (the demo, for its
	 * two processes), or --insecure. */
	const char *auth_key_file;
	uint8_t auth_key[32];
	size_t auth_key_len;
	bool insecure;
	/* --allowed-sources (RMIG_CFG_ALLOWED_SOURCES; the destination's). */
	const char *allowed_sources;
	/* Idle limit (RMIG_CFG_IDLE_TIMEOUT), ms; 0: library default. */
	unsigned idle_timeout_ms;
};

/* ------------------------------------------------------------------ */
/* Option values.  Each returns 0, or -1 when @s is not a valid value;
 * *out is written only on success. */

/* A size: a number (fractions allowed) with an optional suffix k/kib, m/mib,
 * g/gib in any case, each a power of 1024; with @xb_suffixes also kb, mb and
 * gb (the same powers of 1024).  A plain number counts @plain_unit bytes.
 * Refused: no number, a number not above zero, another suffix, more than
 * 64 TiB.  Rounded to a whole byte. */
int cli_parse_size(const char *s, uint64_t plain_unit, bool xb_suffixes,
		   uint64_t *out);

/* An integer as strtoull(s, NULL, 0) reads it (decimal, 0x hex, 0 octal),
 * no larger than @max; refused: an empty string, a leading '-', anything
 * after the number, overflow. */
int cli_parse_ull(const char *s, unsigned long long max,
		  unsigned long long *out);

/* The same as an unsigned: 0..@max. */
int cli_parse_unsigned(const char *s, unsigned max, unsigned *out);

/* A count, 1..@max (channels, pages per packet, iterations). */
int cli_parse_count(const char *s, unsigned max, unsigned *out);

/* A timeout in whole seconds, 0..1000000. */
int cli_parse_seconds(const char *s, int *out);

/* "4k" or "2m" (any case); with @numeric also "4096" and "2097152". */
int cli_parse_page_size(const char *s, bool numeric, size_t *out);

/* "auto" or "fabric"; sets so->transport and so->transport_set. */
int cli_parse_transport(const char *s, struct cli_session_opts *so);

/* "pin-all" or "on-demand"; sets so->reg_mode and so->reg_mode_set. */
int cli_parse_reg_mode(const char *s, struct cli_session_opts *so);

/* On-demand chunk size: a size as cli_parse_size() reads it (a plain
 * number is MiB), a power of two from 4 KiB to 1 TiB. */
int cli_parse_reg_chunk(const char *s, struct cli_session_opts *so);

/* On-demand cache bound: 1..RMIG_REG_CACHE_CHUNKS_MAX chunks. */
int cli_parse_reg_cache(const char *s, struct cli_session_opts *so);

/* "auto", "none" or a node number 0..4095; sets so->numa_node and
 * so->numa_set. */
int cli_parse_numa(const char *s, struct cli_session_opts *so);

/* The registration, NUMA, idle-limit and authentication options both
 * programs take: getopt_long entries (put CLI_SESSION_LONGOPTS in the
 * table), their --help lines, and cli_session_option() to handle one.  The
 * codes are above any char. */
enum {
	CLI_OPT_REG_MODE = 0x1000,
	CLI_OPT_REG_CHUNK,
	CLI_OPT_REG_CACHE,
	CLI_OPT_NUMA,
	CLI_OPT_AUTH_KEY_FILE,
	CLI_OPT_INSECURE,
	CLI_OPT_ALLOWED_SOURCES,
	CLI_OPT_IDLE_TIMEOUT,
};
#define CLI_SESSION_LONGOPTS \
	{ "reg-mode", required_argument, NULL, CLI_OPT_REG_MODE }, \
	{ "reg-chunk", required_argument, NULL, CLI_OPT_REG_CHUNK }, \
	{ "reg-cache", required_argument, NULL, CLI_OPT_REG_CACHE }, \
	{ "numa", required_argument, NULL, CLI_OPT_NUMA }, \
	{ "auth-key-file", required_argument, NULL, CLI_OPT_AUTH_KEY_FILE }, \
	{ "insecure", no_argument, NULL, CLI_OPT_INSECURE }, \
	{ "allowed-sources", required_argument, NULL, CLI_OPT_ALLOWED_SOURCES }, \
	{ "idle-timeout", required_argument, NULL, CLI_OPT_IDLE_TIMEOUT }
#define CLI_SESSION_HELP \
"  --auth-key-file FILE    the migration's pre-shared secret: 32 to 1024\n" \
"                          bytes, the same file on both hosts, mode 0600\n" \
"                          (make one: umask 077; head -c 32 /dev/urandom\n" \
"                          > FILE); every channel authenticates both ways\n" \
"  --insecure              no authentication: anyone who reaches the\n" \
"                          address can write (dest) or read (source) the\n" \
"                          guest's RAM; for a closed test network only\n" \
"  --allowed-sources LIST  dest: numeric IP addresses (comma-separated) of\n" \
"                          the only hosts it takes connections from\n" \
"  --reg-mode pin-all|on-demand  memory registration (default pin-all);\n" \
"                          on-demand (source only): chunks in a bounded cache\n" \
"  --reg-chunk SIZE        on-demand chunk, a power of two (default 64M)\n" \
"  --reg-cache N           on-demand chunks kept registered (default 16)\n" \
"  --numa auto|none|N      NUMA node of channel threads and buffers\n" \
"                          (default auto: the RDMA device's node, if known)\n" \
"  --idle-timeout MS       fail when a connected peer sends nothing, not\n" \
"                          even a keepalive, for MS ms, 100..3600000\n" \
"                          (default 30000; give both sides the same)\n"

/* If @code is one of CLI_OPT_*, parse @arg into @so: 0, or -1 with a message
 * naming the option and the value on stderr.  1 for any other code. */
int cli_session_option(int code, const char *arg, struct cli_session_opts *so);

/* Unless @so has a secret or --insecure: a message on stderr for @prog
 * naming both options, and -1.  0 otherwise. */
int cli_check_auth(const char *prog, const struct cli_session_opts *so);

/* ------------------------------------------------------------------ */
/* Session and RAM                                                     */

/* A zeroed @cfg with @address, the page size, and whichever of transport,
 * fabric provider, channels, pages per packet, registration, NUMA node,
 * authentication and idle limit @so sets.  A chunk size or cache bound
 * without a mode means on-demand.  (No authentication option: create fails
 * and names them.) */
void cli_make_config(const struct cli_session_opts *so,
		     struct rmig_config *cfg, const char *address);

/* Map @size bytes aligned to @page_size and fault every page in
 * (MAP_POPULATE), so the first write during the migration costs nothing;
 * 2 MiB pages get MADV_HUGEPAGE.  Returns the aligned block, or NULL with
 * errno set; munmap(*base, *base_len) releases it. */
void *cli_map_ram(uint64_t size, size_t page_size, void **base,
		  size_t *base_len);

/* rmig_dest_listen(), then the address it listens on into @addr (port 0
 * resolved).  0, or the negative errno of the call that failed. */
int cli_dest_listen(rmig_dest *d, char *addr, size_t len);

/* Queue pages 0..@pages-1 of @block, CLI_QUEUE_CHUNK offsets at a time,
 * through @offs (room for CLI_QUEUE_CHUNK).  0, or the first negative
 * return of rmig_src_queue_pages(). */
int cli_queue_all_pages(rmig_src *s, int block, uint64_t pages,
			size_t page_size, uint64_t *offs);

/* ------------------------------------------------------------------ */
/* Figures                                                             */

/* CLOCK_MONOTONIC in seconds. */
double cli_now_s(void);

/* @bytes in MiB. */
double cli_mib(uint64_t bytes);

/* Peak resident set size in bytes (VmHWM, else getrusage), 0 if unknown. */
uint64_t cli_peak_rss(void);

/* What @peak_rss holds beyond the RAM block of @ram_bytes (0 if nothing). */
uint64_t cli_overhead(uint64_t peak_rss, uint64_t ram_bytes);

/* ------------------------------------------------------------------ */
/* Help                                                                */

/* The library's tunables (rmig_param_describe()) for a --help text: a
 * heading, then per tunable its environment variable, default, range and
 * (when the environment changed it) effective value, and its description
 * on a line of its own.  0, or the negative errno of the failed call. */
int cli_print_params(FILE *out);

#endif /* RMIG_TOOLS_CLI_H */

/* SPDX-License-Identifier: MIT */
/*
 * cli - helpers shared by rmig-migrate and rmig_bw; see cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#define KIB 1024.0
#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * 1024.0 * 1024.0)

/* ------------------------------------------------------------------ */
/* Option values                                                       */

int cli_parse_size(const char *s, uint64_t plain_unit, bool xb_suffixes,
		   uint64_t *out)
{
	static const struct {
		const char *suffix;
		double unit;
		bool xb; /* "kb", "mb", "gb": only with xb_suffixes */
	} units[] = {
		{ "g", GIB, false }, { "gib", GIB, false }, { "gb", GIB, true },
		{ "m", MIB, false }, { "mib", MIB, false }, { "mb", MIB, true },
		{ "k", KIB, false }, { "kib", KIB, false }, { "kb", KIB, true },
	};
	char *end;
	double v;
	bool known = false;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v <= 0)
		return -1;
	if (!*end) {
		v *= (double)plain_unit;
		known = true;
	}
	for (size_t i = 0; !known && i < sizeof(units) / sizeof(units[0]); i++) {
		if ((xb_suffixes || !units[i].xb) &&
		    !strcasecmp(end, units[i].suffix)) {
			v *= units[i].unit;
			known = true;
		}
	}
	if (!known)
		return -1;
	if (v > (double)(1ull << 46)) /* 64 TiB: surely a typo */
		return -1;
	*out = (uint64_t)(v + 0.5);
	return 0;
}

int cli_parse_ull(const char *s, unsigned long long max,
		  unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (*s == '-' || *s == '\0')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_unsigned(const char *s, unsigned max, unsigned *out)
{
	unsigned long long v;

	if (cli_parse_ull(s, max, &v))
		return -1;
	*out = (unsigned)v;
	return 0;
}

int cli_parse_count(const char *s, unsigned max, unsigned *out)
{
	unsigned v;

	if (cli_parse_unsigned(s, max, &v) || !v)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_seconds(const char *s, int *out)
{
	unsigned v;

	if (cli_parse_unsigned(s, 1000000, &v))
		return -1;
	*out = (int)v;
	return 0;
}

int cli_parse_page_size(const char *s, bool numeric, size_t *out)
{
	if (!strcasecmp(s, "4k") || (numeric && !strcmp(s, "4096")))
		*out = 4096;
	else if (!strcasecmp(s, "2m") || (numeric && !strcmp(s, "2097152")))
		*out = 2u << 20;
	else
		return -1;
	return 0;
}

int cli_parse_transport(const char *s, struct cli_session_opts *so)
{
	if (!strcmp(s, "auto"))
		so->transport = RMIG_TRANSPORT_AUTO;
	else if (!strcmp(s, "fabric"))
		so->transport = RMIG_TRANSPORT_FABRIC;
	else if (!strcmp(s, "verbs"))
		so->transport = RMIG_TRANSPORT_VERBS;
	else
		return -1;
	so->transport_set = true;
	return 0;
}

int cli_parse_reg_mode(const char *s, struct cli_session_opts *so)
{
	if (!strcmp(s, "pin-all"))
		so->reg_mode = RMIG_REG_PIN_ALL;
	else if (!strcmp(s, "on-demand"))
		so->reg_mode = RMIG_REG_ON_DEMAND;
	else
		return -1;
	so->reg_mode_set = true;
	return 0;
}

int cli_parse_reg_chunk(const char *s, struct cli_session_opts *so)
{
	uint64_t v;

	if (cli_parse_size(s, 1u << 20, true, &v) || v < 4096 ||
	    v > RMIG_REG_CHUNK_MAX || (v & (v - 1)))
		return -1;
	so->reg_chunk_size = v;
	return 0;
}

int cli_parse_reg_cache(const char *s, struct cli_session_opts *so)
{
	return cli_parse_count(s, RMIG_REG_CACHE_CHUNKS_MAX,
			       &so->reg_cache_chunks);
}

int cli_parse_numa(const char *s, struct cli_session_opts *so)
{
	unsigned n;

	if (!strcmp(s, "auto"))
		so->numa_node = RMIG_NUMA_AUTO;
	else if (!strcmp(s, "none"))
		so->numa_node = RMIG_NUMA_NONE;
	else if (!cli_parse_unsigned(s, 4095, &n))
		so->numa_node = (int)n;
	else
		return -1;
	so->numa_set = true;
	return 0;
}

int cli_session_option(int code, const char *arg, struct cli_session_opts *so)
{
	const char *name, *expect;
	int bad;

	switch (code) {
	case CLI_OPT_REG_MODE:
		name = "--reg-mode", expect = "pin-all or on-demand";
		bad = cli_parse_reg_mode(arg, so);
		break;
	case CLI_OPT_REG_CHUNK:
		name = "--reg-chunk";
		expect = "a power of two from 4K to 1T, e.g. 64M";
		bad = cli_parse_reg_chunk(arg, so);
		break;
	case CLI_OPT_REG_CACHE:
		name = "--reg-cache", expect = "a count of chunks, at least 1";
		bad = cli_parse_reg_cache(arg, so);
		break;
	case CLI_OPT_NUMA:
		name = "--numa", expect = "auto, none or a node number";
		bad = cli_parse_numa(arg, so);
		break;
	case CLI_OPT_AUTH_KEY_FILE:
		if (so->insecure) {
			fprintf(stderr, "--auth-key-file: contradicts "
				"--insecure\n");
			return -1;
		}
		name = "--auth-key-file", expect = "a file name";
		bad = *arg ? 0 : -1;
		so->auth_key_file = arg;
		break;
	case CLI_OPT_ALLOWED_SOURCES:
		name = "--allowed-sources";
		expect = "numeric IP addresses separated by commas";
		bad = *arg ? 0 : -1;
		so->allowed_sources = arg;
		break;
	case CLI_OPT_INSECURE:
		if (so->auth_key_file) {
			fprintf(stderr, "--insecure: contradicts "
				"--auth-key-file\n");
			return -1;
		}
		so->insecure = true;
		return 0;
	case CLI_OPT_IDLE_TIMEOUT:
		name = "--idle-timeout", expect = "milliseconds, 100..3600000";
		bad = cli_parse_count(arg, RMIG_IDLE_TIMEOUT_MAX_MS,
				      &so->idle_timeout_ms) ||
		      so->idle_timeout_ms < RMIG_IDLE_TIMEOUT_MIN_MS;
		break;
	default:
		return 1;
	}
	if (bad) {
		fprintf(stderr, "%s: bad value '%s' (expected %s)\n", name, arg,
			expect);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Session and RAM                                                     */

void cli_make_config(const struct cli_session_opts *so,
		     struct rmig_config *cfg, const char *address)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->field_mask = RMIG_CFG_ADDRESS | RMIG_CFG_PAGE_SIZE;
	cfg->address = address;
	cfg->page_size = so->page_size;
	if (so->transport_set) {
		cfg->field_mask |= RMIG_CFG_TRANSPORT;
		cfg->transport = so->transport;
	}
	if (so->fabric_provider) {
		cfg->field_mask |= RMIG_CFG_FABRIC_PROVIDER;
		cfg->fabric_provider = so->fabric_provider;
	}
	if (so->channels) {
		cfg->field_mask |= RMIG_CFG_CHANNELS;
		cfg->channels = so->channels;
	}
	if (so->pages_per_packet) {
		cfg->field_mask |= RMIG_CFG_PAGES_PER_PACKET;
		cfg->pages_per_packet = so->pages_per_packet;
	}
	if (so->reg_mode_set || so->reg_chunk_size || so->reg_cache_chunks) {
		cfg->field_mask |= RMIG_CFG_REG_MODE;
		cfg->reg_mode = so->reg_mode_set ? so->reg_mode :
						   RMIG_REG_ON_DEMAND;
		cfg->reg_chunk_size = so->reg_chunk_size;
		cfg->reg_cache_chunks = so->reg_cache_chunks;
	}
	if (so->numa_set) {
		cfg->field_mask |= RMIG_CFG_NUMA_NODE;
		cfg->numa_node = so->numa_node;
	}
	if (so->auth_key_len) {
		cfg->field_mask |= RMIG_CFG_AUTH_KEY;
		cfg->auth_key = so->auth_key;
		cfg->auth_key_len = so->auth_key_len;
	} else if (so->auth_key_file) {
		cfg->field_mask |= RMIG_CFG_AUTH_KEY_FILE;
		cfg->auth_key_file = so->auth_key_file;
	} else if (so->insecure) {
		cfg->field_mask |= RMIG_CFG_INSECURE;
		cfg->insecure = 1;
	}
	if (so->allowed_sources) {
		cfg->field_mask |= RMIG_CFG_ALLOWED_SOURCES;
		cfg->allowed_sources = so->allowed_sources;
	}
	if (so->idle_timeout_ms) {
		cfg->field_mask |= RMIG_CFG_IDLE_TIMEOUT;
		cfg->idle_timeout_ms = so->idle_timeout_ms;
	}
}

int cli_check_auth(const char *prog, const struct cli_session_opts *so)
{
	if (so->auth_key_len || so->auth_key_file || so->insecure)
		return 0;
	fprintf(stderr, "%s: no secret: give --auth-key-file FILE (the same "
		"file on both hosts; make one with: umask 077; head -c 32 "
		"/dev/urandom > FILE), or --insecure to migrate without "
		"authentication\n", prog);
	return -1;
}

void *cli_map_ram(uint64_t size, size_t page_size, void **base,
		  size_t *base_len)
{
	size_t len = (size_t)size + (page_size > 4096 ? page_size : 0);
	uint8_t *p, *aligned;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)(((uintptr_t)p + page_size - 1) &
			      ~(uintptr_t)(page_size - 1));
	if (page_size > 4096)
		madvise(aligned, (size_t)size, MADV_HUGEPAGE);
	*base = p;
	*base_len = len;
	return aligned;
}

int cli_dest_listen(rmig_dest *d, char *addr, size_t len)
{
	int ret = rmig_dest_listen(d);

	if (ret < 0)
		return ret;
	return rmig_dest_get_address(d, addr, len);
}

int cli_queue_all_pages(rmig_src *s, int block, uint64_t pages,
			size_t page_size, uint64_t *offs)
{
	for (uint64_t p = 0; p < pages;) {
		size_t n = 0;
		int ret;

		while (n < CLI_QUEUE_CHUNK && p < pages)
			offs[n++] = p++ * page_size;
		ret = rmig_src_queue_pages(s, block, offs, n);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Figures                                                             */

double cli_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double cli_mib(uint64_t bytes)
{
	return (double)bytes / MIB;
}

uint64_t cli_peak_rss(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "VmHWM: %" SCNu64 " kB", &kb) == 1)
				break;
		fclose(f);
	}
	if (!kb) {
		struct rusage ru;

		if (!getrusage(RUSAGE_SELF, &ru))
			kb = (uint64_t)ru.ru_maxrss;
	}
	return kb * 1024;
}

uint64_t cli_overhead(uint64_t peak_rss, uint64_t ram_bytes)
{
	return peak_rss > ram_bytes ? peak_rss - ram_bytes : 0;
}

/* ------------------------------------------------------------------ */
/* Help                                                                */

int cli_print_params(FILE *out)
{
	struct rmig_param_desc d = { .size = sizeof(d) };
	unsigned i;
	int ret;

	fprintf(out, "Tunables (environment variables, read once per process):\n");
	for (i = 0; (ret = rmig_param_describe(i, &d)) == 0; i++) {
		fprintf(out, "  %s (default %lld, %lld..%lld", d.env,
			d.default_value, d.min, d.max);
		if (d.value != d.default_value)
			fprintf(out, "; now %lld", d.value);
		fprintf(out, ")\n      %s\n", d.help);
	}
	return ret == -ENOENT ? 0 : ret;
}

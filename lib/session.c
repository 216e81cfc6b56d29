/* SPDX-License-Identifier: MIT */
/*
 * session.c - what source and destination sessions share: configuration
 * checks, provider selection, RAM blocks, the transports open and the one
 * in use, the first error, statistics.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "addr.h"
#include "auth.h"
#include "core.h"
#include "rmig_numa.h"
#include "regcache.h"

const char *rmig_version(void)
{
	return "0.1.0";
}

const char *rmig_state_name(enum rmig_state state)
{
	switch (state) {
	case RMIG_STATE_SETUP: return "setup";
	case RMIG_STATE_ACTIVE: return "active";
	case RMIG_STATE_COMPLETED: return "completed";
	case RMIG_STATE_FAILED: return "failed";
	case RMIG_STATE_CANCELLED: return "cancelled";
	}
	return "unknown";
}

const struct rmig_provider_ops *rmig_select_provider(
	const struct rmig_config *cfg, char *why, size_t whylen)
{
	enum rmig_transport t = (cfg->field_mask & RMIG_CFG_TRANSPORT) ?
				cfg->transport : RMIG_TRANSPORT_AUTO;

	switch (t) {
	case RMIG_TRANSPORT_AUTO:
		/* rmig_sess_init() decides at connect or listen time. */
		snprintf(why, whylen, "transport auto: verbs if it opens a "
			 "domain, else libfabric");
		return rmig_provider_find("fabric");
	case RMIG_TRANSPORT_FABRIC:
		snprintf(why, whylen, "transport fabric: libfabric");
		return rmig_provider_find("fabric");
	case RMIG_TRANSPORT_VERBS:
		snprintf(why, whylen, "transport verbs: rdma-core");
		if (!rmig_provider_find("verbs")) {
			rmig_err(-ENOTSUP, "config: transport verbs: this "
				 "build has no verbs provider");
			return NULL;
		}
		return rmig_provider_find("verbs");
	}
	rmig_err(-EINVAL, "config: transport %d unknown (expected "
		 "RMIG_TRANSPORT_AUTO, _FABRIC or _VERBS)", (int)t);
	return NULL;
}

/* RMIG_CFG_REG_MODE: the mode, and for on-demand the chunk size and the
 * cache bound.  After the page size is known. */
static int check_reg_config(struct rmig_session *s,
			    const struct rmig_config *cfg, bool is_dest)
{
	uint64_t chunk = cfg->reg_chunk_size;
	unsigned n = cfg->reg_cache_chunks;

	if (cfg->reg_mode == RMIG_REG_PIN_ALL)
		return 0;
	if (cfg->reg_mode != RMIG_REG_ON_DEMAND)
		return rmig_err(-EINVAL, "config: reg_mode %d unknown "
				"(RMIG_REG_PIN_ALL or RMIG_REG_ON_DEMAND)",
				(int)cfg->reg_mode);
	if (is_dest)
		return rmig_err(-ENOTSUP, "config: reg_mode on-demand is for "
				"the source only: the source writes into the "
				"destination's RAM by remote key, so a "
				"destination registers all of it (pin-all)");
	if (!chunk)
		chunk = RMIG_REG_CHUNK_DEFAULT;
	if (chunk & (chunk - 1) || chunk < s->page_size ||
	    chunk > RMIG_REG_CHUNK_MAX)
		return rmig_err(-EINVAL, "config: reg_chunk_size %llu must be "
				"a power of two from the page size %llu to "
				"%llu", (unsigned long long)chunk,
				(unsigned long long)s->page_size,
				(unsigned long long)RMIG_REG_CHUNK_MAX);
	if (!n)
		n = RMIG_REG_CACHE_CHUNKS_DEFAULT;
	if (n > RMIG_REG_CACHE_CHUNKS_MAX)
		return rmig_err(-EINVAL, "config: reg_cache_chunks %u out of "
				"range 1..%u", n, RMIG_REG_CACHE_CHUNKS_MAX);
	s->reg_mode = RMIG_REG_ON_DEMAND;
	s->reg_chunk_size = chunk;
	s->reg_cache_chunks = n;
	return 0;
}

/* An address of allowed_sources (@a, @len bytes) as IPv6 (IPv4 mapped). */
static bool parse_host(const char *a, size_t len, struct in6_addr *out)
{
	char buf[INET6_ADDRSTRLEN];
	struct in_addr v4;

	if (!len || len >= sizeof(buf))
		return false;
	memcpy(buf, a, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET6, buf, out) == 1)
		return true;
	if (inet_pton(AF_INET, buf, &v4) != 1)
		return false;
	memset(out, 0, sizeof(*out));
	out->s6_addr[10] = 0xff;
	out->s6_addr[11] = 0xff;
	memcpy(&out->s6_addr[12], &v4, 4);
	return true;
}

/* Destination: the list of source hosts allowed, parsed. */
static int allowed_config(struct rmig_session *s, const struct rmig_config *cfg)
{
	const char *p;

	if (!(cfg->field_mask & RMIG_CFG_ALLOWED_SOURCES))
		return 0;
	if (!s->is_dest)
		return rmig_err(-EINVAL, "config: allowed_sources is a "
				"destination setting");
	if (!cfg->allowed_sources || !*cfg->allowed_sources)
		return rmig_err(-EINVAL, "config: allowed_sources is empty");
	s->allowed = calloc(RMIG_ALLOWED_SOURCES_MAX, sizeof(*s->allowed));
	if (!s->allowed)
		return rmig_err(-ENOMEM, "out of memory");
	for (p = cfg->allowed_sources;;) {
		size_t len = strcspn(p, ",");

		while (len && p[len - 1] == ' ')
			len--;
		if (s->nallowed == RMIG_ALLOWED_SOURCES_MAX)
			return rmig_err(-EINVAL, "config: allowed_sources has "
					"more than %d addresses",
					RMIG_ALLOWED_SOURCES_MAX);
		if (!parse_host(p, len, &s->allowed[s->nallowed]))
			return rmig_err(-EINVAL, "config: allowed_sources: "
					"'%.*s' is not a numeric IPv4 or IPv6 "
					"address (no port, no name)",
					(int)(len > 64 ? 64 : len), p);
		s->nallowed++;
		p += strcspn(p, ",");
		if (!*p)
			return 0;
		p++;
		while (*p == ' ')
			p++;
	}
}

bool rmig_sess_source_allowed(const struct rmig_session *s, const char *peer)
{
	char node[INET6_ADDRSTRLEN + 2], svc[8];
	struct in6_addr a;

	if (!s->nallowed)
		return true;
	if (rmig_addr_split("allowed_sources", peer, node, sizeof(node), svc,
			    sizeof(svc)) ||
	    !parse_host(node, strlen(node), &a))
		return false;
	for (unsigned i = 0; i < s->nallowed; i++)
		if (!memcmp(&a, &s->allowed[i], sizeof(a)))
			return true;
	return false;
}

/* The secret (bytes or file) or the explicit opt-out; exactly one. */
static int auth_config(struct rmig_session *s, const struct rmig_config *cfg)
{
	uint64_t m = cfg->field_mask;
	bool insecure = (m & RMIG_CFG_INSECURE) && cfg->insecure;
	bool key = m & RMIG_CFG_AUTH_KEY, file = m & RMIG_CFG_AUTH_KEY_FILE;
	const char *role = s->is_dest ? "destination" : "source";
	int ret;

	if (key && file)
		return rmig_err(-EINVAL, "config: auth_key and auth_key_file "
				"both set (give the secret once)");
	if ((key || file) && insecure)
		return rmig_err(-EINVAL, "config: insecure set together with "
				"a secret (%s)", key ? "auth_key" :
				"auth_key_file");
	if (!key && !file && !insecure)
		return rmig_err(-EINVAL, "config: no secret for the %s: set "
				"auth_key (RMIG_CFG_AUTH_KEY) or auth_key_file "
				"(RMIG_CFG_AUTH_KEY_FILE), or opt in to an "
				"unauthenticated session with insecure "
				"(RMIG_CFG_INSECURE)", role);
	if (insecure) {
		rmig_log_warn("%s: running WITHOUT authentication (insecure "
			      "opt-in): anyone who reaches %s can %s", role,
			      cfg->address,
			      s->is_dest ? "write this guest's RAM" :
			      "pose as the destination and read the guest's "
			      "RAM");
		return 0;
	}
	if (key) {
		if (!cfg->auth_key)
			return rmig_err(-EINVAL, "config: auth_key is NULL");
		ret = rmig_auth_key_new(cfg->auth_key, cfg->auth_key_len,
					&s->auth_key);
		if (ret)
			rmig_err_prefix("config: auth_key");
	} else {
		if (!cfg->auth_key_file || !*cfg->auth_key_file)
			return rmig_err(-EINVAL, "config: auth_key_file is "
					"empty");
		ret = rmig_auth_key_load(cfg->auth_key_file, &s->auth_key);
		if (ret)
			rmig_err_prefix("config: auth_key_file");
	}
	return ret;
}

int rmig_sess_init(struct rmig_session *s, const struct rmig_config *cfg,
		   const struct rmig_provider_ops *prov, bool is_dest)
{
	const uint64_t known = 0xfff | /* RMIG_CFG_TRANSPORT..IDLE_TIMEOUT */
			       RMIG_CFG_AUTH_KEY | RMIG_CFG_AUTH_KEY_FILE |
			       RMIG_CFG_INSECURE | RMIG_CFG_ALLOWED_SOURCES |
			       RMIG_CFG_NO_ZERO_DETECT |
			       RMIG_CFG_POSTCOPY_RESUME;
	bool auto_mode = false;
	uint64_t m;
	const char *sub;

	memset(s, 0, sizeof(*s));
	if (!cfg)
		return rmig_err(-EINVAL, "config is NULL");
	m = cfg->field_mask;
	if (m & ~known)
		return rmig_err(-EINVAL, "config: unknown field_mask bits "
				"0x%llx", (unsigned long long)(m & ~known));
	if (!(m & RMIG_CFG_ADDRESS) || !cfg->address || !*cfg->address)
		return rmig_err(-EINVAL, "config: address is required "
				"(\"host:port\")");
	s->is_dest = is_dest;
	s->channels = 4;
	if (m & RMIG_CFG_CHANNELS) {
		if (cfg->channels < 1 || cfg->channels > RMIG_MAX_CHANNELS)
			return rmig_err(-EINVAL, "config: channels %u out of "
					"range 1..%d", cfg->channels,
					RMIG_MAX_CHANNELS);
		s->channels = cfg->channels;
	} else if (is_dest) {
		s->channels = 0; /* adopt the source's */
	}
	s->page_size = 4096;
	if (m & RMIG_CFG_PAGE_SIZE) {
		if (cfg->page_size != 4096 && cfg->page_size != (2u << 20))
			return rmig_err(-EINVAL, "config: page_size %zu not "
					"supported (4096 or 2097152)",
					cfg->page_size);
		s->page_size = cfg->page_size;
	}
	s->reg_mode = RMIG_REG_PIN_ALL;
	s->reg_chunk_size = RMIG_REG_CHUNK_DEFAULT;
	s->reg_cache_chunks = RMIG_REG_CACHE_CHUNKS_DEFAULT;
	if (m & RMIG_CFG_REG_MODE) {
		int ret = check_reg_config(s, cfg, is_dest);

		if (ret)
			return ret;
	}
	s->numa_cfg = RMIG_NUMA_AUTO;
	s->numa_node = -1;
	if (m & RMIG_CFG_NUMA_NODE) {
		int ret = rmig_numa_check_config(cfg->numa_node);

		if (ret)
			return ret;
		s->numa_cfg = cfg->numa_node;
	}
	s->pages_per_packet = 128;
	if (m & RMIG_CFG_PAGES_PER_PACKET) {
		if (cfg->pages_per_packet < 1 ||
		    cfg->pages_per_packet > RMIG_MAX_PAGES_PER_PACKET)
			return rmig_err(-EINVAL, "config: pages_per_packet %u "
					"out of range 1..%d",
					cfg->pages_per_packet,
					RMIG_MAX_PAGES_PER_PACKET);
		s->pages_per_packet = cfg->pages_per_packet;
	}
	if (m & RMIG_CFG_UUID) {
		memcpy(s->uuid, cfg->uuid, 16);
		s->uuid_set = true;
		s->uuid_cfg = true;
	} else if (!is_dest) {
		if (getrandom(s->uuid, 16, 0) != 16)
			return rmig_err(-errno, "getrandom for the session "
					"UUID: %s", strerror(errno));
		s->uuid_set = true;
	}
	s->connect_timeout_ms = 10000;
	if (m & RMIG_CFG_CONNECT_TIMEOUT) {
		if (!cfg->connect_timeout_ms || cfg->connect_timeout_ms >
		    3600u * 1000)
			return rmig_err(-EINVAL, "config: connect_timeout_ms "
					"%u out of range 1..3600000",
					cfg->connect_timeout_ms);
		s->connect_timeout_ms = cfg->connect_timeout_ms;
	}
	s->idle_timeout_ms = RMIG_IDLE_TIMEOUT_DEFAULT_MS;
	if (m & RMIG_CFG_IDLE_TIMEOUT) {
		if (cfg->idle_timeout_ms < RMIG_IDLE_TIMEOUT_MIN_MS ||
		    cfg->idle_timeout_ms > RMIG_IDLE_TIMEOUT_MAX_MS)
			return rmig_err(-EINVAL, "config: idle_timeout_ms %u "
					"out of range %u..%u",
					cfg->idle_timeout_ms,
					RMIG_IDLE_TIMEOUT_MIN_MS,
					RMIG_IDLE_TIMEOUT_MAX_MS);
		s->idle_timeout_ms = cfg->idle_timeout_ms;
	}
	if (m & RMIG_CFG_POSTCOPY_RESUME)
		s->postcopy_resume = cfg->postcopy_resume != 0;
	if (m & RMIG_CFG_NO_ZERO_DETECT) {
		if (is_dest)
			return rmig_err(-EINVAL, "config: no_zero_detect is a "
					"source setting");
		s->no_zero_detect = cfg->no_zero_detect != 0;
	}
	s->devstate_max = RMIG_DEVSTATE_MAX_DEFAULT;
	if (m & RMIG_CFG_DEVSTATE_MAX) {
		if (cfg->devstate_max > RMIG_DEVSTATE_MAX_LIMIT)
			return rmig_err(-EINVAL, "config: devstate_max %llu "
					"above the limit %u",
					(unsigned long long)cfg->devstate_max,
					RMIG_DEVSTATE_MAX_LIMIT);
		s->devstate_max = cfg->devstate_max;
	}
	{
		int ret = allowed_config(s, cfg);

		if (!ret)
			ret = auth_config(s, cfg);
		if (ret) {
			free(s->allowed);
			return ret;
		}
	}
	sub = (m & RMIG_CFG_FABRIC_PROVIDER) && cfg->fabric_provider ?
	      cfg->fabric_provider : "tcp";

	if (!prov) {
		char why[128];

		prov = rmig_select_provider(cfg, why, sizeof(why));
		if (!prov) {
			rmig_auth_key_free(s->auth_key);
			free(s->allowed);
			return -EINVAL;
		}
		auto_mode = !(m & RMIG_CFG_TRANSPORT) ||
			    cfg->transport == RMIG_TRANSPORT_AUTO;
		rmig_log_info("%s", why);
	}
	if (prov->abi != RMIG_PROVIDER_ABI) {
		rmig_auth_key_free(s->auth_key);
		free(s->allowed);
		return rmig_err(-ENOTSUP, "provider %s has ABI %u, expected %u",
				prov->name, prov->abi, RMIG_PROVIDER_ABI);
	}
	s->prov = prov;

	s->rx_depth = (unsigned)rmig_param(RMIG_PARAM_RX_DEPTH);
	s->tx_depth = (unsigned)rmig_param(RMIG_PARAM_TX_DEPTH);
	s->max_ops = (unsigned)rmig_param(RMIG_PARAM_MAX_WRITE_OPS);
	s->address = strdup(cfg->address);
	s->subprovider = strdup(sub);
	if (!s->address || !s->subprovider) {
		free(s->address);
		free(s->subprovider);
		rmig_auth_key_free(s->auth_key);
		free(s->allowed);
		return rmig_err(-ENOMEM, "out of memory");
	}
	pthread_mutex_init(&s->err_lock, NULL);
	atomic_init(&s->err, 0);
	atomic_init(&s->state, RMIG_STATE_SETUP);
	if (auto_mode)
		rmig_sess_set_auto(s, rmig_provider_find("verbs"), prov);
	return 0;
}

void rmig_sess_set_auto(struct rmig_session *s,
			const struct rmig_provider_ops *verbs,
			const struct rmig_provider_ops *fallback)
{
	s->auto_mode = true;
	s->auto_verbs = verbs;
	s->auto_fallback = fallback;
	s->prov = fallback;
}

void rmig_sess_set_transport(struct rmig_session *s, const char *name)
{
	pthread_mutex_lock(&s->err_lock);
	snprintf(s->transport, sizeof(s->transport), "%.*s",
		 (int)sizeof(s->transport) - 1, name);
	pthread_mutex_unlock(&s->err_lock);
}

void rmig_sess_fini(struct rmig_session *s)
{
	rmig_sess_close_domain(s);
	s->nblocks = 0;
	free(s->address);
	free(s->subprovider);
	rmig_auth_key_free(s->auth_key);
	s->auth_key = NULL;
	free(s->allowed);
	s->allowed = NULL;
	pthread_mutex_destroy(&s->err_lock);
}

int rmig_sess_add_block(struct rmig_session *s, const char *name, void *host,
			size_t length)
{
	struct rmig_block *b;
	size_t nlen;

	if (atomic_load(&s->state) != RMIG_STATE_SETUP || s->tp)
		return rmig_err(-EBUSY, "add_block: blocks must be added "
				"before %s", s->is_dest ? "listen" : "connect");
	if (!name || !*name)
		return rmig_err(-EINVAL, "add_block: name is empty");
	nlen = strnlen(name, RMIG_BLOCK_NAME_MAX);
	if (nlen >= RMIG_BLOCK_NAME_MAX)
		return rmig_err(-EINVAL, "add_block: name '%.20s...' longer "
				"than %d bytes", name, RMIG_BLOCK_NAME_MAX - 1);
	if (!host)
		return rmig_err(-EINVAL, "add_block '%s': host address is "
				"NULL", name);
	if (!length || length % s->page_size)
		return rmig_err(-EINVAL, "add_block '%s': length %zu is not a "
				"nonzero multiple of the page size %llu", name,
				length, (unsigned long long)s->page_size);
	if ((uintptr_t)host % s->page_size)
		return rmig_err(-EINVAL, "add_block '%s': host address %p is "
				"not aligned to the page size %llu", name, host,
				(unsigned long long)s->page_size);
	if (s->nblocks >= RMIG_MAX_BLOCKS)
		return rmig_err(-ENOSPC, "add_block '%s': already %d blocks",
				name, RMIG_MAX_BLOCKS);
	for (unsigned i = 0; i < s->nblocks; i++)
		if (!strcmp(s->blocks[i].name, name))
			return rmig_err(-EEXIST, "add_block: a block named "
					"'%s' exists already (index %u)", name,
					i);
	b = &s->blocks[s->nblocks];
	memset(b, 0, sizeof(*b));
	memcpy(b->name, name, nlen + 1);
	b->host = host;
	b->length = length;
	return (int)s->nblocks++;
}

/* max_ops from the tunable, capped by the transport in use. */
static void apply_limits(struct rmig_session *s)
{
	s->max_ops = (unsigned)rmig_param(RMIG_PARAM_MAX_WRITE_OPS);
	if (s->tp->attr.max_tx && s->tp->attr.max_tx < s->max_ops)
		s->max_ops = s->tp->attr.max_tx;
	if (s->max_ops < 8)
		s->max_ops = 8;
}

void rmig_sess_use_transport(struct rmig_session *s, struct rmig_tp *tp)
{
	if (s->tp == tp)
		return;
	/* Under err_lock: stats read s->tp from any thread. */
	pthread_mutex_lock(&s->err_lock);
	s->tp = tp;
	pthread_mutex_unlock(&s->err_lock);
	apply_limits(s);
	rmig_numa_choose(s);
}

/* Open @prov's transport on @address as one of the session's. */
static int add_transport(struct rmig_session *s,
			 const struct rmig_provider_ops *prov,
			 const char *address, enum rmig_mr_access ram_access,
			 struct rmig_tp **out)
{
	int ret;

	if (s->ntps >= RMIG_MAX_TRANSPORTS)
		return rmig_err(-ENOSPC, "%s: already %u transports open",
				prov->name, s->ntps);
	ret = rmig_tp_open(s, prov, address, ram_access, out);
	if (!ret)
		s->tps[s->ntps++] = *out;
	return ret;
}

int rmig_sess_add_transport(struct rmig_session *s,
			    const struct rmig_provider_ops *prov,
			    const char *address, struct rmig_tp **out)
{
	return add_transport(s, prov, address, RMIG_MR_WRITE_TARGET, out);
}

/* Close @tp, one of the session's transports, not the one in use. */
static void close_transport(struct rmig_session *s, struct rmig_tp *tp)
{
	unsigned j = 0;

	for (unsigned i = 0; i < s->ntps; i++)
		if (s->tps[i] != tp)
			s->tps[j++] = s->tps[i];
	s->ntps = j;
	rmig_tp_close(tp);
}

void rmig_sess_keep_transport(struct rmig_session *s, struct rmig_tp *tp)
{
	rmig_sess_use_transport(s, tp);
	while (s->ntps > 1)
		close_transport(s, s->tps[s->tps[0] == tp ? 1 : 0]);
	rmig_sess_set_transport(s, tp->attr.name);
}

/* Source in auto mode: verbs if its transport opens for the peer's
 * address, else the fallback.  Logs the choice and why. */
static int open_auto_source(struct rmig_session *s, struct rmig_tp **out)
{
	char why[RMIG_ERR_MSG_MAX];
	int ret;

	if (!s->auto_verbs) {
		rmig_log_info("transport auto: verbs not tried (this build "
			      "has no verbs provider); using %s",
			      s->auto_fallback->name);
	} else {
		ret = add_transport(s, s->auto_verbs, s->address,
				    RMIG_MR_WRITE_SOURCE, out);
		if (!ret) {
			rmig_log_info("transport auto: using %s (the verbs "
				      "provider opened a domain for %s)",
				      (*out)->attr.name, s->address);
			return 0;
		}
		snprintf(why, sizeof(why), "%s", rmig_err_msg());
		rmig_log_info("transport auto: verbs unavailable for %s (%s: "
			      "%s); falling back to %s", s->address,
			      strerror(-ret), why, s->auto_fallback->name);
	}
	ret = add_transport(s, s->auto_fallback, s->address,
			    RMIG_MR_WRITE_SOURCE, out);
	if (!ret)
		rmig_log_info("transport auto: using %s", (*out)->attr.name);
	return ret;
}

int rmig_sess_open_domain(struct rmig_session *s,
			  enum rmig_mr_access ram_access)
{
	struct rmig_tp *tp;
	int ret;

	if (!s->nblocks)
		return rmig_err(-EINVAL, "no RAM block registered (call "
				"rmig_%s_add_block first)",
				s->is_dest ? "dest" : "src");
	for (unsigned i = 0; i < s->nblocks; i++) {
		struct rmig_block *b = &s->blocks[i];
		uint64_t words = (b->length / s->page_size + 63) / 64;

		if (s->is_dest)
			b->received = calloc(words, sizeof(*b->received));
		else
			b->queued = calloc(words, sizeof(*b->queued));
		if (!b->received && !b->queued) {
			ret = rmig_err(-ENOMEM, "page bitmap of block '%s' "
				       "(%llu words)", b->name,
				       (unsigned long long)words);
			goto err;
		}
	}
	if (s->auto_mode && !s->is_dest)
		ret = open_auto_source(s, &tp);
	else
		ret = add_transport(s, s->prov, s->address, ram_access, &tp);
	if (ret)
		goto err;
	rmig_sess_use_transport(s, tp);
	/* A destination in auto mode names its transport once it is
	 * fixed (rmig_sess_keep_transport()). */
	if (!s->is_dest || !s->auto_mode)
		rmig_sess_set_transport(s, tp->attr.name);
	return 0;

err:
	rmig_sess_close_domain(s);
	return ret;
}

int rmig_sess_fall_back(struct rmig_session *s)
{
	struct rmig_tp *tp;
	int ret;

	pthread_mutex_lock(&s->err_lock);
	tp = s->tp;
	s->tp = NULL;
	pthread_mutex_unlock(&s->err_lock);
	close_transport(s, tp);
	rmig_sess_set_transport(s, "");
	ret = add_transport(s, s->auto_fallback, s->address,
			    RMIG_MR_WRITE_SOURCE, &tp);
	if (ret)
		return ret;
	rmig_log_info("transport auto: using %s", tp->attr.name);
	rmig_sess_use_transport(s, tp);
	rmig_sess_set_transport(s, tp->attr.name);
	return 0;
}

void rmig_sess_close_domain(struct rmig_session *s)
{
	pthread_mutex_lock(&s->err_lock);
	s->tp = NULL;
	pthread_mutex_unlock(&s->err_lock);
	while (s->ntps)
		close_transport(s, s->tps[s->ntps - 1]);
	for (unsigned i = 0; i < s->nblocks; i++) {
		free(s->blocks[i].received);
		s->blocks[i].received = NULL;
		free(s->blocks[i].queued);
		s->blocks[i].queued = NULL;
	}
}

static int sess_fail_v(struct rmig_session *s, enum rmig_state state,
		       int code, const char *fmt, va_list ap)
{
	char msg[RMIG_ERR_MSG_MAX];
	bool first = false;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	pthread_mutex_lock(&s->err_lock);
	/* A completed migration stays completed: a late cancel or a peer
	 * closing afterwards changes nothing. */
	if (!atomic_load_explicit(&s->err, memory_order_relaxed) &&
	    atomic_load(&s->state) != RMIG_STATE_COMPLETED) {
		memcpy(s->errmsg, msg, sizeof(msg));
		/* Publishes errmsg; pairs with the acquire loads of err in
		 * rmig_sess_failed() and its callers. */
		atomic_store_explicit(&s->err, code, memory_order_release);
		atomic_store(&s->state, state);
		first = true;
	}
	pthread_mutex_unlock(&s->err_lock);
	if (first) {
		if (state == RMIG_STATE_FAILED)
			rmig_log_error("%s", msg);
		else
			rmig_log_info("%s", msg);
		if (s->kick)
			s->kick(s->kick_arg);
	} else {
		rmig_log_debug("after the first error: %s", msg);
	}
	/* The calling thread's rmig_last_error() names it too. */
	return rmig_err(code, "%s", msg);
}

int rmig_sess_fail(struct rmig_session *s, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = sess_fail_v(s, RMIG_STATE_FAILED, code, fmt, ap);
	va_end(ap);
	return ret;
}

int rmig_sess_cancel(struct rmig_session *s, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = sess_fail_v(s, RMIG_STATE_CANCELLED, -ECANCELED, fmt, ap);
	va_end(ap);
	return ret;
}

bool rmig_sess_transition(struct rmig_session *s, enum rmig_state from,
			  enum rmig_state to)
{
	bool ok;

	/* Under err_lock so a transition and a failure never interleave: the
	 * state a failure sets is final. */
	pthread_mutex_lock(&s->err_lock);
	ok = !atomic_load_explicit(&s->err, memory_order_relaxed) &&
	     atomic_load(&s->state) == (int)from;
	if (ok)
		atomic_store(&s->state, to);
	pthread_mutex_unlock(&s->err_lock);
	return ok;
}

int rmig_sess_check(struct rmig_session *s)
{
	/* Pairs with the release store in sess_fail_v(). */
	int err = atomic_load_explicit(&s->err, memory_order_acquire);

	if (err)
		return rmig_err(err, "%s", s->errmsg);
	return 0;
}

const char *rmig_sess_errmsg(struct rmig_session *s)
{
	/* Pairs with the release store in sess_fail_v(). */
	if (atomic_load_explicit(&s->err, memory_order_acquire))
		return s->errmsg;
	return "";
}

int rmig_sess_check_page(struct rmig_session *s, int block, uint64_t offset)
{
	if (block < 0 || (unsigned)block >= s->nblocks)
		return rmig_err(-EINVAL, "block index %d out of range (%u "
				"blocks)", block, s->nblocks);
	if (offset % s->page_size)
		return rmig_err(-EINVAL, "block '%s': offset 0x%llx not "
				"aligned to the page size %llu",
				s->blocks[block].name,
				(unsigned long long)offset,
				(unsigned long long)s->page_size);
	if (offset >= s->blocks[block].length)
		return rmig_err(-EINVAL, "block '%s': offset 0x%llx past the "
				"end (length 0x%llx)", s->blocks[block].name,
				(unsigned long long)offset,
				(unsigned long long)s->blocks[block].length);
	return 0;
}

void rmig_sess_stats(struct rmig_session *s, struct rmig_chan **chans,
		     unsigned nchans, struct rmig_stats *stp)
{
	struct rmig_stats st;

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	st.state = (enum rmig_state)atomic_load(&s->state);
	st.channels = nchans;
	st.registration_ns = atomic_load_explicit(&s->registration_ns,
						  memory_order_relaxed);
	st.registrations = atomic_load_explicit(&s->registrations,
						memory_order_relaxed);
	pthread_mutex_lock(&s->err_lock);
	if (s->tp && s->tp->cache)
		rmig_regcache_counts(s->tp->cache, &st.reg_evictions,
				     &st.reg_cached_max);
	st.numa_node = s->numa_node;
	memcpy(st.transport, s->transport, sizeof(st.transport));
	pthread_mutex_unlock(&s->err_lock);
	for (unsigned i = 0; i < nchans && i < RMIG_MAX_CHANNELS; i++) {
		struct rmig_channel_stats *c = &st.channel[i];
		struct rmig_chan *ch = chans[i];

		if (!ch)
			continue;
#define LD(f) c->f = atomic_load_explicit(&ch->st.f, memory_order_relaxed)
		LD(bytes);
		LD(packets);
		LD(normal_pages);
		LD(zero_pages);
		LD(syncs);
		LD(messages);
#undef LD
		st.bytes += c->bytes;
		st.packets += c->packets;
		st.normal_pages += c->normal_pages;
		st.zero_pages += c->zero_pages;
	}
	*stp = st;
}

int rmig_stats_copy_out(struct rmig_stats *out, const struct rmig_stats *st)
{
	size_t n;

	if (!out)
		return rmig_err(-EINVAL, "get_stats: stats pointer is NULL");
	if (out->size < offsetof(struct rmig_stats, state))
		return rmig_err(-EINVAL, "get_stats: size %zu too small (set "
				"it to sizeof(struct rmig_stats))", out->size);
	/* Copy what fits the caller's struct (older callers pass less). */
	n = out->size < sizeof(*st) ? out->size : sizeof(*st);
	memcpy((char *)out + sizeof(out->size), (const char *)st +
	       sizeof(st->size), n - sizeof(st->size));
	return 0;
}

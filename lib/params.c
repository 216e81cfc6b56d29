/* SPDX-License-Identifier: MIT */
/*
 * params.c - the one table of tunables: name, default, help.  Each can be
 * overridden by the environment variable RMIG_<NAME> (upper case), read once.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

struct param_def {
	const char *name;
	long long def, min, max;
	const char *help;
};

static const struct param_def defs[RMIG_PARAM_COUNT] = {
	[RMIG_PARAM_RX_DEPTH] = { "rx_depth", 32, 2, 4095,
		"credited receive buffers (64 KiB each) posted per channel" },
	[RMIG_PARAM_TX_DEPTH] = { "tx_depth", 16, 2, 1024,
		"message buffers (64 KiB each) for sends per channel" },
	[RMIG_PARAM_MAX_WRITE_OPS] = { "max_write_ops", 256, 8, 65536,
		"outstanding RDMA operations per channel (capped by the device)" },
	[RMIG_PARAM_POLL_SLICE_MS] = { "poll_slice_ms", 100, 1, 10000,
		"longest blocking wait before a thread re-checks for errors" },
};

static long long values[RMIG_PARAM_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	for (int i = 0; i < RMIG_PARAM_COUNT; i++) {
		char env[64] = "RMIG_";
		size_t n = strlen(env);
		const char *v;
		char *end;
		long long x;

		for (const char *p = defs[i].name; *p && n < sizeof(env) - 1; p++)
			env[n++] = (char)toupper((unsigned char)*p);
		env[n] = '\0';
		values[i] = defs[i].def;
		v = getenv(env);
		if (!v || !*v)
			continue;
		errno = 0;
		x = strtoll(v, &end, 0);
		if (errno || *end || x < defs[i].min || x > defs[i].max) {
			rmig_log_warn("%s=%s ignored: expected an integer in "
				      "%lld..%lld; using %lld", env, v,
				      defs[i].min, defs[i].max, defs[i].def);
			continue;
		}
		values[i] = x;
	}
}

long long rmig_param(enum rmig_param_id id)
{
	pthread_once(&once, load);
	return values[id];
}

int rmig_param_get(unsigned index, struct rmig_param_info *out)
{
	if (!out)
		return rmig_err(-EINVAL, "rmig_param_get: out is NULL");
	if (index >= RMIG_PARAM_COUNT)
		return rmig_err(-ENOENT, "no tunable %u (there are %d)", index,
				RMIG_PARAM_COUNT);
	pthread_once(&once, load);
	out->name = defs[index].name;
	out->help = defs[index].help;
	out->default_value = defs[index].def;
	out->value = values[index];
	return 0;
}

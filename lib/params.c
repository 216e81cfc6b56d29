/* SPDX-License-Identifier: MIT */
/*
 * params.c - the one table of tunables, the core's and the providers':
 * name, environment variable, default, bounds and a one-line description.
 * The environment is read once, on first use.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "params.h"

struct param_def {
	const char *name;
	const char *env;
	long long def, min, max;
	const char *help;
};

static const struct param_def defs[RMIG_PARAM_COUNT] = {
	[RMIG_PARAM_RX_DEPTH] = { "rx_depth", "RMIG_RX_DEPTH", 32, 2, 4095,
		"credited receive buffers (64 KiB each) posted per channel" },
	[RMIG_PARAM_TX_DEPTH] = { "tx_depth", "RMIG_TX_DEPTH", 16, 2, 1024,
		"message buffers (64 KiB each) for sends per channel" },
	[RMIG_PARAM_MAX_WRITE_OPS] = { "max_write_ops", "RMIG_MAX_WRITE_OPS",
		256, 8, 65536,
		"outstanding RDMA operations per channel (capped by the device)" },
	[RMIG_PARAM_POLL_SLICE_MS] = { "poll_slice_ms", "RMIG_POLL_SLICE_MS",
		100, 1, 10000,
		"longest blocking wait before a thread re-checks for errors" },
	[RMIG_PARAM_VERBS_SPIN_US] = { "verbs_spin_us", "RMIG_VERBS_SPIN_US",
		50, 0, 1000000,
		"verbs: microseconds a poll busy-polls the CQ before it sleeps" },
	[RMIG_PARAM_ACCEPT_PENDING] = { "accept_pending",
		"RMIG_ACCEPT_PENDING", 16, 1, 1024,
		"destination: connections authenticated at once; more are "
		"closed unanswered" },
};

static long long values[RMIG_PARAM_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	for (int i = 0; i < RMIG_PARAM_COUNT; i++) {
		const char *v = getenv(defs[i].env);
		char *end;
		long long x;

		values[i] = defs[i].def;
		if (!v || !*v)
			continue;
		errno = 0;
		x = strtoll(v, &end, 0);
		if (errno || *end || x < defs[i].min || x > defs[i].max) {
			rmig_log_warn("%s=%s ignored: expected an integer in "
				      "%lld..%lld; using %lld", defs[i].env, v,
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

/* 0 when tunable @index exists and @out is there to take it (and the
 * environment is loaded), else an error naming @fn. */
static int param_check(const char *fn, unsigned index, const void *out)
{
	if (!out)
		return rmig_err(-EINVAL, "%s: out is NULL", fn);
	if (index >= RMIG_PARAM_COUNT)
		return rmig_err(-ENOENT, "%s: no tunable %u (there are %d)",
				fn, index, RMIG_PARAM_COUNT);
	pthread_once(&once, load);
	return 0;
}

int rmig_param_get(unsigned index, struct rmig_param_info *out)
{
	int ret = param_check("rmig_param_get", index, out);

	if (ret)
		return ret;
	out->name = defs[index].name;
	out->help = defs[index].help;
	out->default_value = defs[index].def;
	out->value = values[index];
	return 0;
}

int rmig_param_describe(unsigned index, struct rmig_param_desc *out)
{
	const struct param_def *d;
	struct rmig_param_desc full;
	int ret = param_check("rmig_param_describe", index, out);

	if (ret)
		return ret;
	d = &defs[index];
	if (out->size < offsetof(struct rmig_param_desc, name))
		return rmig_err(-EINVAL, "rmig_param_describe: size %zu too "
				"small (set it to sizeof(struct "
				"rmig_param_desc))", out->size);
	full = (struct rmig_param_desc){
		.size = out->size,
		.name = d->name,
		.env = d->env,
		.help = d->help,
		.default_value = d->def,
		.min = d->min,
		.max = d->max,
		.value = values[index],
	};
	/* Only what fits the caller's struct (older callers pass less). */
	memcpy(out, &full, out->size < sizeof(full) ? out->size : sizeof(full));
	return 0;
}

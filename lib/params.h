/* SPDX-License-Identifier: MIT */
/*
 * params.h - the tunables of the core and the providers (params.c holds
 * the one table: name, environment variable, default, bounds, help).
 */
#ifndef RMIG_PARAMS_H
#define RMIG_PARAMS_H

enum rmig_param_id {
	RMIG_PARAM_RX_DEPTH,      /* credited receive buffers per channel */
	RMIG_PARAM_TX_DEPTH,      /* message buffers per channel */
	RMIG_PARAM_MAX_WRITE_OPS, /* outstanding tx ops per channel */
	RMIG_PARAM_POLL_SLICE_MS, /* longest blocking poll before re-checking */
	RMIG_PARAM_VERBS_SPIN_US, /* verbs: busy-poll time before poll() sleeps */
	RMIG_PARAM_ACCEPT_PENDING, /* dest: connections authenticated at once */
	RMIG_PARAM_COUNT
};

/** The effective value of tunable @id: its environment variable when that
 *  holds a valid value, else the default (read once per process). */
long long rmig_param(enum rmig_param_id id);

#endif /* RMIG_PARAMS_H */

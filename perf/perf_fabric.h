/* SPDX-License-Identifier: MIT */
/*
 * perf_fabric.h - what the perf programs that run both ends in one
 * process share: a monotonic clock in milliseconds and a session
 * configuration over libfabric tcp, authenticated with @key (32 bytes and
 * more) or, when @key is NULL, insecure.
 */
#ifndef RMIG_PERF_FABRIC_H
#define RMIG_PERF_FABRIC_H

#include <string.h>
#include <time.h>

#include <rmig/rmig.h>

static inline double perf_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline void perf_fabric_config(struct rmig_config *c, const char *addr,
				      unsigned ch, const uint8_t *key,
				      size_t key_len)
{
	memset(c, 0, sizeof(*c));
	c->field_mask = RMIG_CFG_ADDRESS | RMIG_CFG_TRANSPORT |
			RMIG_CFG_CHANNELS;
	c->address = addr;
	c->transport = RMIG_TRANSPORT_FABRIC;
	c->channels = ch;
	if (key) {
		c->field_mask |= RMIG_CFG_AUTH_KEY;
		c->auth_key = key;
		c->auth_key_len = key_len;
	} else {
		c->field_mask |= RMIG_CFG_INSECURE;
		c->insecure = 1;
	}
}

#endif

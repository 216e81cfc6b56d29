/* SPDX-License-Identifier: MIT */
/* error.c - thread-local error messages and the log sink. */
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_buf[RMIG_ERR_MSG_MAX];

int rmig_err(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	return code;
}

void rmig_err_prefix(const char *fmt, ...)
{
	char tmp[RMIG_ERR_MSG_MAX];
	size_t n, rest;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= sizeof(tmp) - 3)
		return;
	n = (size_t)r;
	memcpy(tmp + n, ": ", 2);
	n += 2;
	rest = strnlen(err_buf, sizeof(err_buf) - 1);
	if (rest > sizeof(tmp) - 1 - n)
		rest = sizeof(tmp) - 1 - n;
	memcpy(tmp + n, err_buf, rest);
	tmp[n + rest] = '\0';
	memcpy(err_buf, tmp, n + rest + 1);
}

const char *rmig_err_msg(void)
{
	return err_buf;
}

void rmig_err_clear(void)
{
	err_buf[0] = '\0';
}

const char *rmig_last_error(void)
{
	return err_buf;
}

/* Log sink.  Set once before sessions exist (documented), read by every
 * thread afterwards: plain variables published by pthread_create(). */
static rmig_log_fn log_fn;
static void *log_arg;
static int log_max = -1; /* -1: not decided yet, read RMIG_LOG_LEVEL */

void rmig_set_log_handler(rmig_log_fn fn, void *arg,
			  enum rmig_log_level max_level)
{
	log_fn = fn;
	log_arg = arg;
	log_max = fn ? (int)max_level : -1;
}

static int log_level_from_env(void)
{
	const char *e = getenv("RMIG_LOG_LEVEL");

	if (!e || !*e)
		return RMIG_LOG_WARN;
	if (!strcmp(e, "error"))
		return RMIG_LOG_ERROR;
	if (!strcmp(e, "warn"))
		return RMIG_LOG_WARN;
	if (!strcmp(e, "info"))
		return RMIG_LOG_INFO;
	if (!strcmp(e, "debug"))
		return RMIG_LOG_DEBUG;
	return atoi(e);
}

void rmig_log(enum rmig_log_level level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	char msg[RMIG_ERR_MSG_MAX + 64];
	int max = log_fn ? log_max : log_level_from_env();
	va_list ap;

	if ((int)level > max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_fn)
		log_fn(level, msg, log_arg);
	else
		fprintf(stderr, "rmig %s: %s\n", names[level], msg);
}

/* SPDX-License-Identifier: MIT */
/*
 * error.h - one error convention for the whole library.
 *
 * Functions return 0 (or a count) on success and a negative errno on
 * failure.  Where the failure is found, rmig_err() records a message in a
 * thread-local buffer (what, where, which value) and returns the code, so
 * the usual form is `return rmig_err(-EINVAL, "block %d: ...", i);`.  Callers
 * that add context use rmig_err_prefix().  The public rmig_last_error() reads
 * the same buffer.
 */
#ifndef RMIG_ERROR_H
#define RMIG_ERROR_H

#include <stdarg.h>

#include "rmig/rmig.h"

#define RMIG_ERR_MSG_MAX 512

/** Record a message for @code (negative errno) and return @code. */
int rmig_err(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/** Prepend "<context>: " to the current thread's message. */
void rmig_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** The current thread's message. */
const char *rmig_err_msg(void);

/** Clear the current thread's message. */
void rmig_err_clear(void);

void rmig_log(enum rmig_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define rmig_log_error(...) rmig_log(RMIG_LOG_ERROR, __VA_ARGS__)
#define rmig_log_warn(...) rmig_log(RMIG_LOG_WARN, __VA_ARGS__)
#define rmig_log_info(...) rmig_log(RMIG_LOG_INFO, __VA_ARGS__)
#define rmig_log_debug(...) rmig_log(RMIG_LOG_DEBUG, __VA_ARGS__)

#endif /* RMIG_ERROR_H */

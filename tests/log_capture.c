/* SPDX-License-Identifier: MIT */
/* log_capture.c - see log_capture.h. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "log_capture.h"
#include "rmig/rmig.h"

/* Channel threads log too: the record is behind a lock. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[32768];

static void log_capture(enum rmig_log_level level, const char *msg,
			void *arg)
{
	(void)level;
	(void)arg;
	pthread_mutex_lock(&log_lock);
	size_t n = strlen(log_text);

	snprintf(log_text + n, sizeof(log_text) - n, "%s\n", msg);
	pthread_mutex_unlock(&log_lock);
}

void log_capture_start(void)
{
	pthread_mutex_lock(&log_lock);
	log_text[0] = '\0';
	pthread_mutex_unlock(&log_lock);
	rmig_set_log_handler(log_capture, NULL, RMIG_LOG_INFO);
}

static bool log_has(const char *what)
{
	pthread_mutex_lock(&log_lock);
	bool found = strstr(log_text, what) != NULL;

	pthread_mutex_unlock(&log_lock);
	return found;
}

void log_expect(const char *what)
{
	if (!log_has(what))
		fail_msg("log lacks '%s':\n%s", what, log_text);
}

void log_expect_not(const char *what)
{
	if (log_has(what))
		fail_msg("log has '%s':\n%s", what, log_text);
}

/* SPDX-License-Identifier: MIT */
/*
 * log_capture.h - record the library's log in cmocka tests and assert on it.
 *
 * log_capture_start() clears the record and routes the log (INFO and up)
 * into it; call it before the test creates sessions, and restore the default
 * with rmig_set_log_handler(NULL, NULL, RMIG_LOG_WARN) once none is left.
 */
#ifndef RMIG_TESTS_LOG_CAPTURE_H
#define RMIG_TESTS_LOG_CAPTURE_H

void log_capture_start(void);

/* Fail the running cmocka test, printing the record, unless it contains
 * @what. */
void log_expect(const char *what);
/* ... unless it does not. */
void log_expect_not(const char *what);

#endif /* RMIG_TESTS_LOG_CAPTURE_H */

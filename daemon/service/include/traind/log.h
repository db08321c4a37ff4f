/*
 * log — the daemon's event log: one line per event on stderr, prefixed with
 * a syslog priority ("<6>" info, "<4>" warning, "<3>" error) that journald
 * understands.  When stderr is not the journal (JOURNAL_STREAM unset) an
 * ISO-8601 UTC timestamp follows the prefix, so a log file read by a human
 * still says when.
 *
 * Safe to call from any thread: every line goes out in one write(2).
 */
#ifndef TRAIND_LOG_H
#define TRAIND_LOG_H

#include <stdarg.h>

#define TLOG_ERR 3
#define TLOG_WARNING 4
#define TLOG_INFO 6
#define TLOG_DEBUG 7

/* Decides about timestamps (JOURNAL_STREAM) and the minimum priority shown
 * (TRAIND_DEBUG=1 shows debug lines).  Optional: the defaults are sensible. */
void log_init(void);

void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int prio, const char *fmt, va_list ap);

#define log_error(...) log_msg(TLOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(TLOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(TLOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(TLOG_DEBUG, __VA_ARGS__)

#endif

/* log — one line per event on stderr, journald-friendly.  See traind/log.h. */
#include "traind/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_timestamps = -1;   /* -1: not decided yet */
static int g_min_prio = TLOG_INFO;

void log_init(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    g_timestamps = !(js && *js);
    const char *dbg = getenv("TRAIND_DEBUG");
    g_min_prio = (dbg && *dbg && strcmp(dbg, "0") != 0) ? TLOG_DEBUG : TLOG_INFO;
}

void log_vmsg(int prio, const char *fmt, va_list ap)
{
    if (g_timestamps < 0)
        log_init();
    if (prio > g_min_prio)
        return;
    char line[4096];
    size_t n = (size_t)snprintf(line, sizeof line, "<%d>", prio);
    if (g_timestamps) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        struct tm tm;
        time_t t = tv.tv_sec;
        gmtime_r(&t, &tm);
        n += strftime(line + n, sizeof line - n, "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ ", (int)(tv.tv_usec / 1000));
    }
    int w = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (w < 0)
        w = 0;
    n += (size_t)w;
    if (n > sizeof line - 2)
        n = sizeof line - 2;   /* truncated: still one line */
    /* A message must not break the one-line-per-event rule. */
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    const char *p = line;
    while (n > 0) {
        ssize_t r = write(STDERR_FILENO, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += r;
        n -= (size_t)r;
    }
}

void log_msg(int prio, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(prio, fmt, ap);
    va_end(ap);
}

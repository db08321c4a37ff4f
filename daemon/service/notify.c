/* notify — sd_notify wrapper.  See traind/notify.h. */
#include "traind/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "traind/log.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

static uv_timer_t g_watchdog;
static int g_watchdog_on;
static char g_last_status[256];

static int notify_send(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
    if (!getenv("NOTIFY_SOCKET"))
        return 0;
    /* unset_environment = 0: a SIGHUP re-exec or children may still need it;
     * workers never call sd_notify. */
    return sd_notify(0, state);
#else
    (void)state;
    return 0;
#endif
}

#ifdef HAVE_LIBSYSTEMD
static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    notify_send("WATCHDOG=1");
}
#endif

void notify_init(uv_loop_t *loop)
{
#ifdef HAVE_LIBSYSTEMD
    uint64_t usec = 0;
    if (getenv("NOTIFY_SOCKET") && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t ms = usec / 2000;   /* half the interval, in ms */
        if (ms < 1)
            ms = 1;
        uv_timer_init(loop, &g_watchdog);
        uv_timer_start(&g_watchdog, on_watchdog, ms, ms);
        uv_unref((uv_handle_t *)&g_watchdog);
        g_watchdog_on = 1;
        log_info("systemd watchdog: keep-alive every %llu ms", (unsigned long long)ms);
        notify_send("WATCHDOG=1");
    }
#else
    (void)loop;
#endif
}

void notify_close(void)
{
    if (g_watchdog_on) {
        uv_timer_stop(&g_watchdog);
        uv_close((uv_handle_t *)&g_watchdog, NULL);
        g_watchdog_on = 0;
    }
}

void notify_ready(void)
{
    notify_send("READY=1");
}

void notify_reloading(void)
{
    notify_send("RELOADING=1");
}

void notify_stopping(void)
{
    notify_send("STOPPING=1");
}

void notify_status(const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (strcmp(text, g_last_status) == 0)
        return;
    snprintf(g_last_status, sizeof g_last_status, "%s", text);
    char msg[300];
    snprintf(msg, sizeof msg, "STATUS=%s", text);
    notify_send(msg);
}

/* notify — sd_notify wrapper.  See traind/notify.h. */
#include "traind/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "traind/log.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

static uv_timer_t g_watchdog;
static int g_watchdog_on;
static char g_last_status[256];

/* The notification socket, opened once; -1 = not yet or none. */
static int g_fd = -1;
static int g_dropped_logged;

/* Sends one datagram to $NOTIFY_SOCKET without ever waiting: a manager
 * that does not read (or reads slowly) must cost a notification, never a
 * stall of the loop (sd_notify(3) sends blocking once the socket's queue
 * is full).  "@name" is the abstract namespace, as sd_notify has it. */
static int notify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path || (path[0] != '/' && path[0] != '@'))
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    if (g_fd < 0)
        g_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (g_fd < 0)
        return -errno;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
    if (sendto(g_fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, len) < 0) {
        int e = errno;
        if (!g_dropped_logged)
            log_warn("cannot notify the service manager (%s): %s; notifications are dropped meanwhile", path,
                     strerror(e));
        g_dropped_logged = 1;
        return -e;
    }
    g_dropped_logged = 0;
    return 1;
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
    if (g_fd >= 0) {
        close(g_fd);
        g_fd = -1;
    }
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

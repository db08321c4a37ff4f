/*
 * notify — systemd's notify protocol (Type=notify): READY=1, STATUS=...,
 * WATCHDOG=1, RELOADING=1, STOPPING=1.
 *
 * A no-op when built without libsystemd (HAVE_LIBSYSTEMD) or when the
 * service manager gave no NOTIFY_SOCKET.  The watchdog keep-alive runs on
 * a uv timer at half of WATCHDOG_USEC, so a stuck event loop stops it and
 * systemd restarts the daemon.
 */
#ifndef TRAIND_NOTIFY_H
#define TRAIND_NOTIFY_H

#include <uv.h>

/* Starts the watchdog timer when WatchdogSec is set.  Call once. */
void notify_init(uv_loop_t *loop);
/* Stops the timer (and closes it). */
void notify_close(void);

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
/* STATUS=<printf text>; repeated identical texts are sent once. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

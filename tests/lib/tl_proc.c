/*
 * tl_proc — processes seen through /proc: a process's children, whether it
 * is gone, the CPU it used; and a small tmpfs mounted for a check.  The
 * integration suites that kill, stop and count ranks and workers share
 * these (see tl.h).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "tl.h"
#include "traind/util.h"

/* The text of /proc/PID/stat after the command's closing parenthesis
 * (state, ppid, ...), malloc'd in *text; NULL when there is none. */
static const char *stat_fields(pid_t pid, char **text)
{
    char *p = xasprintf("/proc/%d/stat", (int)pid);
    *text = tl_read(p, NULL);
    free(p);
    const char *rp = *text ? strrchr(*text, ')') : NULL;
    return rp ? rp + 1 : NULL;
}

int tl_children_of(pid_t ppid, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char *text;
        const char *f = stat_fields((pid_t)pid, &text);
        char state;
        long pp;
        if (f && sscanf(f, " %c %ld", &state, &pp) == 2 && pp == (long)ppid && state != 'Z')
            out[n++] = (pid_t)pid;
        free(text);
    }
    if (d)
        closedir(d);
    return n;
}

bool tl_proc_gone(pid_t pid)
{
    char *text;
    const char *f = stat_fields(pid, &text);
    bool g = !f || f[1] == 'Z';
    free(text);
    return g;
}

bool tl_proc_gone_within(pid_t pid, double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    while (!tl_proc_gone(pid) && tl_now() < deadline)
        tl_sleep_ms(20);
    return tl_proc_gone(pid);
}

double tl_proc_cpu_seconds(pid_t pid)
{
    char *text;
    const char *f = stat_fields(pid, &text);
    unsigned long ut, st;
    double s = NAN;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (f && sscanf(f, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
        s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    free(text);
    return s;
}

bool tl_mount_tmpfs(const char *dir, unsigned size_kib, const char *check)
{
    mkdir_p(dir, 0755);
    char opts[64];
    snprintf(opts, sizeof opts, "size=%uk,mode=0755", size_kib);
    const char *step = "unshare(CLONE_NEWNS)";
    bool ok = unshare(CLONE_NEWNS) == 0;
    if (ok) {
        step = "making / private";
        ok = mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
    }
    if (ok) {
        step = "mount -t tmpfs";
        ok = mount("tmpfs", dir, "tmpfs", 0, opts) == 0;
    }
    if (!ok)
        tl_skip("%s: cannot mount a tmpfs on %s (%s: %s)", check, dir, step, strerror(errno));
    return ok;
}

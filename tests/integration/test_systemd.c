/*
 * test_systemd — traind as a systemd service, checked without a running
 * systemd:
 *
 *   install     scripts/install.sh into a temporary PREFIX (and a DESTDIR):
 *               the layout, the filled-in unit, the config file that is never
 *               overwritten, uninstall.
 *   unit        `systemd-analyze verify` of the installed unit (with MANPATH
 *               on the installed man pages, so Documentation= resolves) prints
 *               nothing; `systemd-analyze security --offline=true` rates the
 *               exposure at 2.0 or lower.
 *   notify      the real traind with NOTIFY_SOCKET on a datagram socket of
 *               the test's own and WATCHDOG_USEC=400000: READY=1 once the API
 *               answers, STATUS= summaries as jobs move, WATCHDOG=1 every
 *               200 ms, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 and
 *               exit 0 on SIGTERM; every message from the main pid
 *               (NotifyAccess=main).
 *   log         "<N>" priority prefixes; a timestamp unless stderr is the
 *               journal (JOURNAL_STREAM names stderr's device:inode).
 *   sandbox     the unit's SystemCallFilter= / SystemCallErrorNumber=,
 *               RestrictAddressFamilies= and MemoryDenyWriteExecute= rebuilt
 *               as a seccomp filter from the unit file and the groups that
 *               `systemd-analyze syscall-filter` lists; training with
 *               OpenBLAS threads under it (trainctl run, and the daemon with
 *               its training process) gives the losses of an unconfined run.
 *
 * systemd-analyze comes with Debian's `systemd` package (scripts/deps.sh).
 * Run from the repository root; $TRAIND_BUILD (default build) holds the
 * binaries.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "traind/util.h"
#include "../lib/tl.h"

#define MAX_EXPOSURE 2.0
#define WATCHDOG_USEC 400000L

/* ------------------------------------------------------------ helpers */

static char *g_dir;

static void setup(void)
{
    g_dir = tl_tmpdir("traind-systemd");
    ck_assert_ptr_nonnull(g_dir);
}

static void teardown(void)
{
    tl_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

static const char *build_dir(void)
{
    const char *b = getenv("TRAIND_BUILD");
    return b && *b ? b : "build";
}

static char *abs_path(const char *p)
{
    if (p[0] == '/')
        return xstrdup(p);
    char cwd[4096];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    return xasprintf("%s/%s", cwd, p);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static unsigned file_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    return (unsigned)(st.st_mode & 07777);
}

/* The whole file, or NULL; NUL-terminated. */
static char *slurp(const char *path)
{
    return tl_read(path, NULL);
}

static char *find_in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    char *copy = xstrdup(path), *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *f = xasprintf("%s/%s", *d ? d : ".", name);
        if (access(f, X_OK) == 0) {
            free(copy);
            return f;
        }
        free(f);
    }
    free(copy);
    return NULL;
}

static void require_systemd_analyze(void)
{
    char *p = find_in_path("systemd-analyze");
    ck_assert_msg(p != NULL,
                  "systemd-analyze is not installed: it comes with the Debian package 'systemd' "
                  "(make deps, or: sudo apt-get install systemd)");
    free(p);
}

/* Runs argv[0] (looked up in PATH) with env changes (NAME=VALUE sets,
 * NAME alone unsets; NULL-terminated, may be NULL).  stdout, and stderr
 * when with_stderr (else it goes to /dev/null), go to *out (may be NULL).
 * Returns the exit status, or 128 + the signal, or 127 when it could not be
 * started. */
static int run_cmd_ex(const char *const *argv, const char *const *env, char **out, bool with_stderr)
{
    char *log = xasprintf("%s/cmd-%d.out", g_dir, (int)getpid());
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            if (with_stderr)
                dup2(fd, STDERR_FILENO);
            close(fd);
        }
        if (!with_stderr) {
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) {
                dup2(null, STDERR_FILENO);
                close(null);
            }
        }
        for (int i = 0; env && env[i]; i++) {
            const char *eq = strchr(env[i], '=');
            if (eq) {
                char *name = strndup(env[i], (size_t)(eq - env[i]));
                setenv(name, eq + 1, 1);
                free(name);
            } else {
                unsetenv(env[i]);
            }
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (out) {
        *out = slurp(log);
        if (!*out)
            *out = xstrdup("");
    }
    unlink(log);
    free(log);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* run_cmd_ex with stdout and stderr together. */
static int run_cmd(const char *const *argv, const char *const *env, char **out)
{
    return run_cmd_ex(argv, env, out, true);
}

/* ------------------------------------------------------------ install */

typedef struct install {
    char *prefix, *unitdir, *bindir, *mandir, *sysconf, *unit, *config;
} install;

static void install_free(install *in)
{
    free(in->prefix);
    free(in->unitdir);
    free(in->bindir);
    free(in->mandir);
    free(in->sysconf);
    free(in->unit);
    free(in->config);
}

/* scripts/install.sh ACTION "" PREFIX BUILD with UNITDIR inside g_dir. */
static int install_run(const char *action, install *in, char **out)
{
    if (!in->prefix) {
        in->prefix = xasprintf("%s/prefix", g_dir);
        in->unitdir = xasprintf("%s/units", g_dir);
        in->bindir = xasprintf("%s/bin", in->prefix);
        in->mandir = xasprintf("%s/share/man", in->prefix);
        in->sysconf = xasprintf("%s/etc/traind", in->prefix);
        in->unit = xasprintf("%s/traind.service", in->unitdir);
        in->config = xasprintf("%s/traind.yaml", in->sysconf);
    }
    ck_assert_msg(access("scripts/install.sh", X_OK) == 0,
                  "scripts/install.sh is missing or not executable (run the tests from the repository root)");
    char *unitdir_env = xasprintf("UNITDIR=%s", in->unitdir);
    const char *argv[] = {"scripts/install.sh", action, "", in->prefix, build_dir(), NULL};
    const char *env[] = {unitdir_env, NULL};
    int rc = run_cmd(argv, env, out);
    free(unitdir_env);
    return rc;
}

static void install_or_fail(install *in)
{
    char *out;
    int rc = install_run("install", in, &out);
    ck_assert_msg(rc == 0, "scripts/install.sh install exited %d:\n%s", rc, out);
    free(out);
}

static const char *const MANPAGES[] = {"man1/trainctl.1", "man5/traind.yaml.5", "man5/traind-run.yaml.5",
                                       "man8/traind.8"};

START_TEST(install_layout)
{
    install in = {0};
    install_or_fail(&in);

    const char *bins[] = {"traind", "trainctl"};
    for (int i = 0; i < 2; i++) {
        char *p = xasprintf("%s/%s", in.bindir, bins[i]);
        ck_assert_msg(file_mode(p) == 0755, "%s: mode %o, want 0755", p, file_mode(p));
        free(p);
    }
    for (size_t i = 0; i < sizeof MANPAGES / sizeof *MANPAGES; i++) {
        char *p = xasprintf("%s/%s", in.mandir, MANPAGES[i]);
        ck_assert_msg(file_mode(p) == 0644, "%s: mode %o, want 0644", p, file_mode(p));
        free(p);
    }
    ck_assert_msg(file_mode(in.unit) == 0644, "%s: mode %o", in.unit, file_mode(in.unit));

    /* The dashboard, where the installed traind looks for it by default. */
    char *www = xasprintf("%s/share/traind/www/index.html", in.prefix);
    char *page = slurp(www), *src_page = slurp("daemon/www/index.html");
    ck_assert_msg(page && src_page && strcmp(page, src_page) == 0, "%s is not daemon/www/index.html", www);
    ck_assert_int_eq(file_mode(www), 0644);
    free(page);
    free(src_page);
    free(www);

    /* The unit names the installed binary and config; nothing left to fill in. */
    char *unit = slurp(in.unit);
    ck_assert_ptr_nonnull(unit);
    char *exec = xasprintf("ExecStart=%s/traind --config %s/traind.yaml ", in.bindir, in.sysconf);
    ck_assert_msg(strstr(unit, exec), "the installed unit has no '%s':\n%s", exec, unit);
    ck_assert_msg(!strstr(unit, "@BINDIR@") && !strstr(unit, "@SYSCONFDIR@"), "placeholders left:\n%s", unit);
    ck_assert_msg(strstr(unit, "Type=notify") && strstr(unit, "WatchdogSec=") &&
                      strstr(unit, "StateDirectory=traind") && strstr(unit, "ConfigurationDirectory=traind") &&
                      strstr(unit, "Restart=on-failure") && strstr(unit, "ExecReload=") &&
                      strstr(unit, "DynamicUser=yes"),
                  "the unit lacks one of Type=notify, WatchdogSec=, StateDirectory=, "
                  "ConfigurationDirectory=, Restart=on-failure, ExecReload=, DynamicUser=yes");
    free(exec);
    free(unit);

    /* The example config, as shipped. */
    char *shipped = slurp("config/traind.yaml"), *installed = slurp(in.config);
    ck_assert_msg(shipped != NULL, "config/traind.yaml (the shipped example) is missing");
    ck_assert_msg(installed != NULL, "%s was not installed", in.config);
    ck_assert_str_eq(installed, shipped);
    ck_assert_int_eq(file_mode(in.config), 0644);
    free(shipped);
    free(installed);

    /* The installed binaries run. */
    char *traind = xasprintf("%s/traind", in.bindir), *out;
    const char *argv[] = {traind, "--version", NULL};
    ck_assert_int_eq(run_cmd(argv, NULL, &out), 0);
    ck_assert_msg(strncmp(out, "traind ", 7) == 0, "%s --version: %s", traind, out);
    free(out);
    free(traind);
    install_free(&in);
}
END_TEST

START_TEST(install_keeps_config_uninstall_removes)
{
    install in = {0};
    install_or_fail(&in);
    static const char mine[] = "# edited by the admin\nmax_jobs: 3\n";
    ck_assert_int_eq(tl_write(in.config, mine), 0);

    /* A second install keeps the admin's file, and says so. */
    char *out;
    int rc = install_run("install", &in, &out);
    ck_assert_msg(rc == 0, "second install exited %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "kept"), "install did not say it kept the config:\n%s", out);
    free(out);
    char *now = slurp(in.config);
    ck_assert_str_eq(now, mine);
    free(now);

    /* Uninstall: everything but the changed config goes. */
    rc = install_run("uninstall", &in, &out);
    ck_assert_msg(rc == 0, "uninstall exited %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "kept"), "uninstall did not say it kept the config:\n%s", out);
    free(out);
    char *paths[16];
    int n = 0;
    paths[n++] = xasprintf("%s/share/traind/www/index.html", in.prefix);
    paths[n++] = xasprintf("%s/traind", in.bindir);
    paths[n++] = xasprintf("%s/trainctl", in.bindir);
    for (size_t i = 0; i < sizeof MANPAGES / sizeof *MANPAGES; i++)
        paths[n++] = xasprintf("%s/%s", in.mandir, MANPAGES[i]);
    paths[n++] = xstrdup(in.unit);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(!file_exists(paths[i]), "uninstall left %s", paths[i]);
        free(paths[i]);
    }
    now = slurp(in.config);
    ck_assert_msg(now && strcmp(now, mine) == 0, "uninstall removed or changed the admin's config");
    free(now);

    /* The shipped config, unchanged, goes with the rest. */
    install_or_fail(&in);
    char *shipped = slurp("config/traind.yaml");
    ck_assert_ptr_nonnull(shipped);
    ck_assert_int_eq(tl_write(in.config, shipped), 0);
    free(shipped);
    rc = install_run("uninstall", &in, &out);
    ck_assert_msg(rc == 0, "uninstall exited %d:\n%s", rc, out);
    free(out);
    ck_assert_msg(!file_exists(in.config), "uninstall left the unchanged config %s", in.config);
    ck_assert_msg(!file_exists(in.sysconf), "uninstall left the empty %s", in.sysconf);
    install_free(&in);
}
END_TEST

/* PREFIX=/usr under a DESTDIR: /etc for the config, the unit directory that
 * pkg-config reports, and paths in the unit without the DESTDIR. */
START_TEST(install_destdir_usr)
{
    char *dest = xasprintf("%s/root", g_dir), *out;
    char *unitdir = NULL;
    const char *pc[] = {"pkg-config", "--variable=systemdsystemunitdir", "systemd", NULL};
    if (run_cmd(pc, NULL, &out) == 0 && out[0] == '/') {
        out[strcspn(out, "\r\n")] = '\0';
        unitdir = xstrdup(out);
    } else {
        unitdir = xstrdup("/usr/lib/systemd/system");
    }
    free(out);
    ck_assert_msg(access("scripts/install.sh", X_OK) == 0, "scripts/install.sh is missing");
    const char *argv[] = {"scripts/install.sh", "install", dest, "/usr", build_dir(), NULL};
    const char *env[] = {"UNITDIR", NULL};
    int rc = run_cmd(argv, env, &out);
    ck_assert_msg(rc == 0, "install DESTDIR=%s PREFIX=/usr exited %d:\n%s", dest, rc, out);
    free(out);

    char *bin = xasprintf("%s/usr/bin/traind", dest), *conf = xasprintf("%s/etc/traind/traind.yaml", dest),
         *unit = xasprintf("%s%s/traind.service", dest, unitdir),
         *man = xasprintf("%s/usr/share/man/man8/traind.8", dest);
    ck_assert_msg(file_exists(bin), "no %s", bin);
    ck_assert_msg(file_exists(conf), "no %s", conf);
    ck_assert_msg(file_exists(man), "no %s", man);
    char *text = slurp(unit);
    ck_assert_msg(text != NULL, "no %s", unit);
    ck_assert_msg(strstr(text, "ExecStart=/usr/bin/traind --config /etc/traind/traind.yaml "),
                  "the unit does not run /usr/bin/traind with /etc/traind/traind.yaml:\n%s", text);
    ck_assert_msg(!strstr(text, dest), "the DESTDIR leaked into the unit:\n%s", text);
    free(text);

    const char *un[] = {"scripts/install.sh", "uninstall", dest, "/usr", build_dir(), NULL};
    rc = run_cmd(un, env, &out);
    ck_assert_msg(rc == 0, "uninstall exited %d:\n%s", rc, out);
    free(out);
    ck_assert(!file_exists(bin) && !file_exists(unit) && !file_exists(man) && !file_exists(conf));
    free(bin);
    free(conf);
    free(unit);
    free(man);
    free(unitdir);
    free(dest);
}
END_TEST

/* ------------------------------------------------------------ the unit */

START_TEST(unit_verifies)
{
    require_systemd_analyze();
    install in = {0};
    install_or_fail(&in);
    char *manpath = xasprintf("MANPATH=%s", in.mandir), *out;
    const char *argv[] = {"systemd-analyze", "verify", in.unit, NULL};
    const char *env[] = {manpath, "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=cat", NULL};
    int rc = run_cmd(argv, env, &out);
    ck_assert_msg(rc == 0 && out[0] == '\0', "systemd-analyze verify %s exited %d and said:\n%s", in.unit, rc,
                  out);
    free(out);
    free(manpath);
    install_free(&in);
}
END_TEST

/* systemd/traind.service with the placeholders filled in, in g_dir. */
static char *unit_from_source(void)
{
    char *text = slurp("systemd/traind.service");
    ck_assert_msg(text != NULL, "systemd/traind.service is missing (run the tests from the repository root)");
    char *bindir = abs_path(build_dir());
    size_t cap = strlen(text) * 2 + 4096, n = 0;
    char *outbuf = xmalloc(cap);
    for (const char *p = text; *p;) {
        const char *rep = NULL;
        size_t skip = 0;
        if (!strncmp(p, "@BINDIR@", 8))
            rep = bindir, skip = 8;
        else if (!strncmp(p, "@SYSCONFDIR@", 12))
            rep = "/etc", skip = 12;
        if (rep) {
            size_t l = strlen(rep);
            ck_assert(n + l < cap);
            memcpy(outbuf + n, rep, l);
            n += l;
            p += skip;
        } else {
            ck_assert(n + 1 < cap);
            outbuf[n++] = *p++;
        }
    }
    outbuf[n] = '\0';
    char *dir = xasprintf("%s/unit", g_dir);
    mkdir_p(dir, 0755);
    char *path = xasprintf("%s/traind.service", dir);
    ck_assert_int_eq(tl_write(path, outbuf), 0);
    free(dir);
    free(outbuf);
    free(bindir);
    free(text);
    return path;
}

START_TEST(unit_exposure)
{
    require_systemd_analyze();
    char *unit = unit_from_source(), *out;
    const char *argv[] = {"systemd-analyze", "security", "--offline=true", "--no-pager", unit, NULL};
    const char *env[] = {"SYSTEMD_COLORS=0", NULL};
    int rc = run_cmd(argv, env, &out);
    ck_assert_msg(rc == 0, "systemd-analyze security exited %d:\n%s", rc, out);
    const char *at = strstr(out, "Overall exposure level for traind.service:");
    ck_assert_msg(at != NULL, "no overall exposure level in:\n%s", out);
    double level = -1;
    ck_assert_msg(sscanf(at + strlen("Overall exposure level for traind.service:"), "%lf", &level) == 1,
                  "cannot read the level in: %.80s", at);
    ck_assert_msg(level >= 0 && level <= MAX_EXPOSURE, "exposure %.1f, want <= %.1f:\n%s", level, MAX_EXPOSURE,
                  out);
    free(out);
    free(unit);
}
END_TEST

/* ------------------------------------------------------ running traind */

typedef struct daemon_opts {
    const char *const *args;    /* after the program name; NULL-terminated */
    bool notify;                /* NOTIFY_SOCKET + WATCHDOG_USEC + WATCHDOG_PID */
    const char *notify_path;
    bool journal;               /* JOURNAL_STREAM = stderr's dev:ino */
    const struct sock_fprog *seccomp;
} daemon_opts;

/* Starts exe with opts; stderr and stdout to log.  The child dies with the
 * test process. */
static pid_t spawn(const char *exe, const daemon_opts *o, const char *log)
{
    const char *argv[40];
    int n = 0;
    argv[n++] = exe;
    for (int i = 0; o->args && o->args[i] && n < 38; i++)
        argv[n++] = o->args[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid > 0)
        return pid;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        close(null);
    }
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    unsetenv("JOURNAL_STREAM");
    unsetenv("LISTEN_FDS");
    if (o->notify) {
        char buf[64];
        setenv("NOTIFY_SOCKET", o->notify_path, 1);
        snprintf(buf, sizeof buf, "%ld", WATCHDOG_USEC);
        setenv("WATCHDOG_USEC", buf, 1);
        snprintf(buf, sizeof buf, "%d", (int)getpid());   /* exec keeps the pid */
        setenv("WATCHDOG_PID", buf, 1);
    }
    if (o->journal) {
        struct stat st;
        if (fstat(STDERR_FILENO, &st) == 0) {
            char buf[64];
            snprintf(buf, sizeof buf, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
            setenv("JOURNAL_STREAM", buf, 1);
        }
    }
    if (o->seccomp) {
        /* LeakSanitizer stops the world with ptrace, which the unit does not
         * allow (@debug): no leak check under the filter in ASan builds. */
        const char *asan = getenv("ASAN_OPTIONS");
        char *opts = xasprintf("%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        free(opts);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, o->seccomp) != 0) {
            fprintf(stderr, "cannot install the seccomp filter: %s\n", strerror(errno));
            _exit(126);
        }
    }
    execv(exe, (char *const *)argv);
    fprintf(stderr, "cannot run %s: %s\n", exe, strerror(errno));
    _exit(127);
}

/* Waits up to timeout_s for pid; its wait status, or -1 (then it is killed). */
static int reap(pid_t pid, double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        if (tl_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        tl_sleep_ms(10);
    }
}

static char *wait_addr(const char *spool, pid_t pid, double timeout_s)
{
    char *file = xasprintf("%s/traind.addr", spool);
    double deadline = tl_now() + timeout_s;
    char *addr = NULL;
    while (!addr && tl_now() < deadline && tl_pid_alive(pid)) {
        char *t = slurp(file);
        if (t && strchr(t, '\n')) {
            t[strcspn(t, "\n")] = '\0';
            addr = t;
        } else {
            free(t);
            tl_sleep_ms(10);
        }
    }
    free(file);
    return addr;
}

/* Writes text to <spool>/incoming/NAME.yaml the way users should: a hidden
 * name first, then a rename. */
static void drop_job(const char *spool, const char *name, const char *text)
{
    char *dir = xasprintf("%s/incoming", spool);
    mkdir_p(dir, 0755);
    char *tmp = xasprintf("%s/.%s.yaml.part", dir, name), *dst = xasprintf("%s/%s.yaml", dir, name);
    ck_assert_int_eq(tl_write(tmp, text), 0);
    ck_assert_int_eq(rename(tmp, dst), 0);
    free(tmp);
    free(dst);
    free(dir);
}

static char *daemon_log_tail(const char *log)
{
    char *t = slurp(log);
    if (!t)
        return xstrdup("(no log)");
    size_t n = strlen(t);
    if (n > 3000) {
        char *tail = xstrdup(t + n - 3000);
        free(t);
        return tail;
    }
    return t;
}

/* ------------------------------------------------------------ sd_notify */

#define MAX_MSGS 4096

typedef struct nmsg {
    double t;
    pid_t from;
    char *text;              /* one assignment, "READY=1" */
} nmsg;

typedef struct notify_ctx {
    char *dir, *spool, *sock, *config, *log, *addr;
    int fd;
    pid_t pid;
    nmsg msgs[MAX_MSGS];
    int n;
} notify_ctx;

static notify_ctx *g_nc;

static const char TINY[] =
    "seed: 2\n"
    "model: {type: linear, input_dim: 4, output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 1.0e-2}\n"
    "schedule: {type: cosine, warmup_steps: 10, total_steps: 200}\n"
    "train: {log_every: 20, checkpoint_every: 100}\n";

/* Reads every datagram that arrives within wait_ms (0: only those queued). */
static void pump(notify_ctx *c, int wait_ms)
{
    double deadline = tl_now() + wait_ms / 1000.0;
    for (;;) {
        int left = (int)((deadline - tl_now()) * 1000);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, left > 0 ? left : 0) <= 0)
            return;
        char buf[4096];
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(struct ucred))];
        } ctl;
        struct iovec iov = {buf, sizeof buf - 1};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};
        ssize_t r = recvmsg(c->fd, &mh, MSG_DONTWAIT);
        if (r < 0)
            continue;
        buf[r] = '\0';
        pid_t from = 0;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS) {
                struct ucred uc;
                memcpy(&uc, CMSG_DATA(h), sizeof uc);
                from = uc.pid;
            }
        double t = tl_now();
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            if (*line && c->n < MAX_MSGS)
                c->msgs[c->n++] = (nmsg){t, from, xstrdup(line)};
    }
}

/* Index of the first message at or after `from` that equals text (or starts
 * with it when prefix), waiting up to timeout_s; -1 if none came. */
static int wait_msg(notify_ctx *c, int from, const char *text, bool prefix, double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    for (;;) {
        for (int i = from; i < c->n; i++)
            if (prefix ? strncmp(c->msgs[i].text, text, strlen(text)) == 0 : strcmp(c->msgs[i].text, text) == 0)
                return i;
        double left = deadline - tl_now();
        if (left <= 0)
            return -1;
        pump(c, left > 0.05 ? 50 : (int)(left * 1000) + 1);
    }
}

static char *msgs_dump(const notify_ctx *c)
{
    size_t cap = 256 + (size_t)c->n * 96, n = 0;
    char *s = xmalloc(cap);
    s[0] = '\0';
    double t0 = c->n ? c->msgs[0].t : 0;
    for (int i = 0; i < c->n && n + 100 < cap; i++)
        n += (size_t)snprintf(s + n, cap - n, "  +%.3fs pid %d %.60s\n", c->msgs[i].t - t0, (int)c->msgs[i].from,
                              c->msgs[i].text);
    if (!c->n)
        snprintf(s, cap, "  (no messages at all)\n");
    return s;
}

/* Starts traind on a fresh spool with NOTIFY_SOCKET on our own socket; the
 * config file says listen: 127.0.0.1:0.  Does not wait for anything. */
static notify_ctx *notify_start(void)
{
    notify_ctx *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    g_nc = c;
    c->dir = xstrdup(g_dir);
    c->spool = xasprintf("%s/spool", c->dir);
    c->sock = xasprintf("%s/notify.sock", c->dir);
    c->config = xasprintf("%s/traind.yaml", c->dir);
    c->log = xasprintf("%s/daemon.log", c->dir);
    ck_assert_msg(strlen(c->sock) < sizeof(((struct sockaddr_un *)0)->sun_path), "socket path too long");
    char *cfg = xasprintf("spool: %s\nlisten: 127.0.0.1:0\nmax_jobs: 1\n", c->spool);
    ck_assert_int_eq(tl_write(c->config, cfg), 0);
    free(cfg);

    c->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c->fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", c->sock);
    ck_assert_int_eq(bind(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    int one = 1;
    ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one), 0);

    const char *args[] = {"--config", c->config, NULL};
    daemon_opts o = {.args = args, .notify = true, .notify_path = c->sock};
    c->pid = spawn(tl_traind_path(), &o, c->log);
    return c;
}

/* Waits for READY=1 (10 s); fails with the log and the messages if none. */
static int notify_wait_ready(notify_ctx *c)
{
    int i = wait_msg(c, 0, "READY=1", false, 10);
    if (i < 0) {
        char *m = msgs_dump(c), *l = daemon_log_tail(c->log);
        ck_abort_msg("no READY=1 within 10 s; messages:\n%sdaemon log:\n%s", m, l);
    }
    return i;
}

static void notify_teardown(void)
{
    notify_ctx *c = g_nc;
    if (c) {
        if (c->pid > 0 && tl_pid_alive(c->pid)) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
        }
        if (c->fd >= 0)
            close(c->fd);
        for (int i = 0; i < c->n; i++)
            free(c->msgs[i].text);
        free(c->dir);
        free(c->spool);
        free(c->sock);
        free(c->config);
        free(c->log);
        free(c->addr);
        free(c);
        g_nc = NULL;
    }
    teardown();
}

START_TEST(notify_ready_once_listening)
{
    notify_ctx *c = notify_start();
    int r = notify_wait_ready(c);
    /* By READY=1 the API answers (the address file is written before). */
    c->addr = wait_addr(c->spool, c->pid, 0.5);
    ck_assert_msg(c->addr != NULL, "READY=1 came before %s/traind.addr was written", c->spool);
    int status = 0;
    cJSON *j = tl_get_json(c->addr, "/healthz", &status);
    ck_assert_msg(status == 200 && j, "READY=1 sent but GET /healthz on %s gave %d", c->addr, status);
    cJSON_Delete(j);
    /* READY=1 comes from the main process, once. */
    ck_assert_int_eq(c->msgs[r].from, c->pid);
    pump(c, 300);
    for (int i = r + 1; i < c->n; i++)
        ck_assert_msg(strcmp(c->msgs[i].text, "READY=1") != 0, "a second READY=1 without a reload");
}
END_TEST

static bool status_line_ok(const char *s, int *running, int *queued, int *done)
{
    regex_t re;
    ck_assert_int_eq(regcomp(&re, "^STATUS=[0-9]+ running, [0-9]+ queued, [0-9]+ done$", REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    if (ok)
        ok = sscanf(s, "STATUS=%d running, %d queued, %d done", running, queued, done) == 3;
    return ok;
}

START_TEST(notify_status_follows_jobs)
{
    notify_ctx *c = notify_start();
    int r = notify_wait_ready(c);
    int s0 = wait_msg(c, 0, "STATUS=", true, 2);
    if (s0 < 0) {
        char *m = msgs_dump(c);
        ck_abort_msg("no STATUS= by READY=1 + 2 s; messages:\n%s", m);
    }
    int run, q, done;
    ck_assert_msg(status_line_ok(c->msgs[s0].text, &run, &q, &done),
                  "'%s' is not 'STATUS=N running, N queued, N done'", c->msgs[s0].text);
    ck_assert_msg(run == 0 && q == 0 && done == 0, "fresh spool, but '%s'", c->msgs[s0].text);

    drop_job(c->spool, "tiny", TINY);
    int fin = wait_msg(c, r, "STATUS=0 running, 0 queued, 1 done", false, 15);
    if (fin < 0) {
        char *m = msgs_dump(c), *l = daemon_log_tail(c->log);
        ck_abort_msg("no 'STATUS=0 running, 0 queued, 1 done' within 15 s of submitting a job; "
                     "messages:\n%sdaemon log:\n%s", m, l);
    }
    /* Every STATUS= has the form, and one shows the job on its way. */
    bool seen_active = false;
    for (int i = 0; i < c->n; i++) {
        if (strncmp(c->msgs[i].text, "STATUS=", 7) != 0)
            continue;
        ck_assert_msg(status_line_ok(c->msgs[i].text, &run, &q, &done), "malformed '%s'", c->msgs[i].text);
        if (run + q > 0)
            seen_active = true;
    }
    ck_assert_msg(seen_active, "no STATUS= showed the job queued or running");
    /* NotifyAccess=main: the training process never speaks to systemd. */
    for (int i = 0; i < c->n; i++)
        ck_assert_msg(c->msgs[i].from == c->pid, "'%s' came from pid %d, not the main pid %d", c->msgs[i].text,
                      (int)c->msgs[i].from, (int)c->pid);
}
END_TEST

START_TEST(notify_watchdog_at_half_interval)
{
    notify_ctx *c = notify_start();
    int r = notify_wait_ready(c);
    pump(c, 1300);
    double prev = c->msgs[r].t, worst = 0;
    int pings = 0;
    for (int i = r + 1; i < c->n; i++) {
        if (strcmp(c->msgs[i].text, "WATCHDOG=1") != 0)
            continue;
        ck_assert_int_eq(c->msgs[i].from, c->pid);
        pings++;
        if (c->msgs[i].t - prev > worst)
            worst = c->msgs[i].t - prev;
        prev = c->msgs[i].t;
    }
    if (tl_now() - prev > worst)
        worst = tl_now() - prev;
    char *m = msgs_dump(c);
    ck_assert_msg(pings >= 2, "%d WATCHDOG=1 in the 1.3 s after READY=1 (WATCHDOG_USEC=%ld); messages:\n%s", pings,
                  WATCHDOG_USEC, m);
    /* systemd kills the service once WATCHDOG_USEC passes without a ping. */
    ck_assert_msg(worst < WATCHDOG_USEC / 1e6, "%.3f s between WATCHDOG=1 pings; systemd would kill at %.3f s",
                  worst, WATCHDOG_USEC / 1e6);
    free(m);
}
END_TEST

START_TEST(notify_reload_on_sighup)
{
    notify_ctx *c = notify_start();
    int r = notify_wait_ready(c);
    pump(c, 100);
    int mark = c->n;
    ck_assert_int_eq(kill(c->pid, SIGHUP), 0);
    int rl = wait_msg(c, mark, "RELOADING=1", false, 5);
    int rd = rl >= 0 ? wait_msg(c, rl + 1, "READY=1", false, 5) : -1;
    if (rl < 0 || rd < 0) {
        char *m = msgs_dump(c), *l = daemon_log_tail(c->log);
        ck_abort_msg("after SIGHUP: %s; messages:\n%sdaemon log:\n%s",
                     rl < 0 ? "no RELOADING=1" : "RELOADING=1 but no READY=1 after it", m, l);
    }
    ck_assert(r < rl);
    ck_assert_int_eq(c->msgs[rl].from, c->pid);
    ck_assert_int_eq(c->msgs[rd].from, c->pid);
    ck_assert_msg(tl_pid_alive(c->pid), "traind died on SIGHUP");
}
END_TEST

START_TEST(notify_stopping_on_sigterm)
{
    notify_ctx *c = notify_start();
    notify_wait_ready(c);
    pump(c, 100);
    int mark = c->n;
    ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
    int st = reap(c->pid, 15);
    pid_t pid = c->pid;
    c->pid = 0;
    pump(c, 0);
    int sp = wait_msg(c, mark, "STOPPING=1", false, 0.2);
    char *m = msgs_dump(c), *l = daemon_log_tail(c->log);
    ck_assert_msg(sp >= 0, "no STOPPING=1 after SIGTERM; messages:\n%sdaemon log:\n%s", m, l);
    ck_assert_int_eq(c->msgs[sp].from, pid);
    ck_assert_msg(st != -1, "traind did not exit within 15 s of SIGTERM");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "traind ended with wait status 0x%x after SIGTERM; log:\n%s",
                  st, l);
    free(m);
    free(l);
}
END_TEST

/* ------------------------------------------------------------ logging */

static void check_log_lines(bool journal)
{
    char *spool = xasprintf("%s/spool", g_dir), *log = xasprintf("%s/daemon.log", g_dir);
    const char *args[] = {"--spool", spool, "--listen", "127.0.0.1:0", NULL};
    daemon_opts o = {.args = args, .journal = journal};
    pid_t pid = spawn(tl_traind_path(), &o, log);
    char *addr = wait_addr(spool, pid, 10);
    if (!addr) {
        char *l = daemon_log_tail(log);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ck_abort_msg("traind did not come up; log:\n%s", l);
    }
    /* An answer means the loop runs, so the signal handlers are in place
     * (traind.addr is written a little before they are). */
    int status = 0;
    cJSON *j = tl_get_json(addr, "/healthz", &status);
    ck_assert_msg(status == 200, "GET /healthz: %d", status);
    cJSON_Delete(j);
    free(addr);
    kill(pid, SIGHUP);                      /* a few more lines */
    tl_sleep_ms(100);
    kill(pid, SIGTERM);
    int st = reap(pid, 15);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "traind did not exit 0 on SIGTERM");

    char *text = slurp(log);
    ck_assert_ptr_nonnull(text);
    regex_t prio, stamp;
    ck_assert_int_eq(regcomp(&prio, "^<[0-7]>", REG_EXTENDED | REG_NOSUB), 0);
    ck_assert_int_eq(regcomp(&stamp, "^<[0-7]>[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    int lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lines++;
        ck_assert_msg(regexec(&prio, line, 0, NULL, 0) == 0, "no <N> priority prefix: '%s'", line);
        bool has_stamp = regexec(&stamp, line, 0, NULL, 0) == 0;
        if (journal)
            ck_assert_msg(!has_stamp, "a timestamp although JOURNAL_STREAM is stderr: '%s'", line);
        else
            ck_assert_msg(has_stamp, "no timestamp after the prefix (JOURNAL_STREAM unset): '%s'", line);
    }
    ck_assert_msg(lines >= 3, "only %d log lines", lines);
    regfree(&prio);
    regfree(&stamp);
    free(text);
    free(spool);
    free(log);
}

START_TEST(log_timestamps_off_the_journal)
{
    check_log_lines(false);
}
END_TEST

START_TEST(log_no_timestamps_in_the_journal)
{
    check_log_lines(true);
}
END_TEST

/* ------------------------------------------------------------ sandbox */

/* Syscall numbers by name, from the kernel headers of the target. */
#if defined(__x86_64__) && !defined(__ILP32__)
#define SANDBOX_ARCH AUDIT_ARCH_X86_64
#define SANDBOX_UNISTD "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
#elif defined(__aarch64__)
#define SANDBOX_ARCH AUDIT_ARCH_AARCH64
#define SANDBOX_UNISTD "/usr/include/asm-generic/unistd.h"
#endif

typedef struct strset {
    char **v;
    size_t n, cap;
} strset;

static bool set_has(const strset *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x))
            return true;
    return false;
}

static void set_add(strset *s, const char *x)
{
    if (set_has(s, x))
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = xstrdup(x);
}

static void set_del(strset *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x)) {
            free(s->v[i]);
            s->v[i] = s->v[--s->n];
            return;
        }
}

static void set_free(strset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Adds what `name` stands for (a syscall, or a group, recursively) to out.
 * listing: "\n" + the output of `systemd-analyze syscall-filter`, every group
 * as "@name" on a line of its own, then its members indented. */
static void expand(const char *listing, const char *name, strset *out, int depth)
{
    if (name[0] != '@') {
        set_add(out, name);
        return;
    }
    ck_assert_msg(depth < 8, "syscall groups nest too deep at %s", name);
    char *head = xasprintf("\n%s\n", name);
    const char *at = strstr(listing, head);
    ck_assert_msg(at != NULL, "systemd-analyze does not know the group %s", name);
    const char *p = at + strlen(head);
    while (*p == ' ' || *p == '\t') {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char *item = strndup(p, len), *s = item;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s && *s != '#')
            expand(listing, s, out, depth + 1);
        free(item);
        if (!eol)
            break;
        p = eol + 1;
    }
    free(head);
}

typedef struct sysnum {
    char *name;
    long nr;
} sysnum;

#ifdef SANDBOX_ARCH
/* Every "#define __NR_name N" of the header (one level of indirection). */
static size_t read_syscall_table(sysnum **out)
{
    char *text = slurp(SANDBOX_UNISTD);
    ck_assert_msg(text != NULL, "cannot read %s (Debian package linux-libc-dev)", SANDBOX_UNISTD);
    typedef struct def { char *name, *value; } def;
    def *defs = NULL;
    size_t nd = 0, cap = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], value[128];
        if (sscanf(line, "#define %127s %127s", name, value) != 2)
            continue;
        if (nd == cap) {
            cap = cap ? cap * 2 : 512;
            defs = xrealloc(defs, cap * sizeof *defs);
        }
        defs[nd++] = (def){xstrdup(name), xstrdup(value)};
    }
    sysnum *tab = xcalloc(nd + 1, sizeof *tab);
    size_t n = 0;
    for (size_t i = 0; i < nd; i++) {
        if (strncmp(defs[i].name, "__NR_", 5) != 0)
            continue;
        const char *v = defs[i].value;
        for (int hop = 0; hop < 3 && !(v[0] >= '0' && v[0] <= '9'); hop++) {
            const char *next = NULL;
            for (size_t k = 0; k < nd; k++)
                if (!strcmp(defs[k].name, v))
                    next = defs[k].value;
            if (!next)
                break;
            v = next;
        }
        char *end;
        long nr = strtol(v, &end, 10);
        if (end == v || *end)
            continue;
        tab[n++] = (sysnum){xstrdup(defs[i].name + 5), nr};
    }
    for (size_t i = 0; i < nd; i++) {
        free(defs[i].name);
        free(defs[i].value);
    }
    free(defs);
    free(text);
    *out = tab;
    return n;
}

static long lookup_nr(const sysnum *tab, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(tab[i].name, name))
            return tab[i].nr;
    return -1;
}

/* The unit's value of KEY= lines, in order, space-joined per line. */
static int unit_values(const char *unit, const char *key, char **vals, int max)
{
    int n = 0;
    size_t kl = strlen(key);
    for (const char *p = unit; p && *p && n < max;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > kl && !strncmp(p, key, kl) && p[kl] == '=')
            vals[n++] = strndup(p + kl + 1, len - kl - 1);
        p = eol ? eol + 1 : NULL;
    }
    return n;
}

static bool unit_bool(const char *unit, const char *key)
{
    char *v[4];
    int n = unit_values(unit, key, v, 4);
    bool yes = n > 0 && (!strcmp(v[n - 1], "yes") || !strcmp(v[n - 1], "true") || !strcmp(v[n - 1], "1"));
    for (int i = 0; i < n; i++)
        free(v[i]);
    return yes;
}

typedef struct prog {
    struct sock_filter *f;
    size_t n, cap;
    struct sock_fprog fp;
} prog;

static void emit(prog *p, struct sock_filter ins)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->f = xrealloc(p->f, p->cap * sizeof *p->f);
    }
    p->f[p->n++] = ins;
}

#define RET_ERRNO(e) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
#define RET_ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LOAD_ARG_LO(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))

/*
 * The unit's seccomp rules as one filter, in the order systemd applies them:
 *   MemoryDenyWriteExecute=yes   mmap(PROT_WRITE|PROT_EXEC), mprotect and
 *                                pkey_mprotect(PROT_EXEC) fail with EPERM
 *   RestrictAddressFamilies=     socket() of another family: EAFNOSUPPORT
 *   SystemCallFilter=            the first line an allow list (or, with ~,
 *                                a deny list); later lines add (allow) or
 *                                take away (~); the rest fails with
 *                                SystemCallErrorNumber=.
 * Namespaces, the dynamic user and the IP firewall are not emulated.
 */
typedef struct filter_facts {
    bool allows_mbind, allows_setpriority, mdwe, raf;
} filter_facts;

static void build_filter(const char *unit, prog *p, char *why, size_t whylen, filter_facts *facts)
{
    char *lines[16];
    int nl = unit_values(unit, "SystemCallFilter", lines, 16);
    ck_assert_msg(nl > 0, "the unit has no SystemCallFilter=");
    char *errv[2];
    int ne = unit_values(unit, "SystemCallErrorNumber", errv, 2);
    ck_assert_msg(ne == 1 && !strcmp(errv[0], "EPERM"), "the emulation knows SystemCallErrorNumber=EPERM only");
    free(errv[0]);

    char *raw;
    const char *argv[] = {"systemd-analyze", "syscall-filter", "--no-pager", NULL};
    const char *env[] = {"SYSTEMD_COLORS=0", NULL};
    ck_assert_int_eq(run_cmd_ex(argv, env, &raw, false), 0);
    char *listing = xasprintf("\n%s", raw);
    free(raw);

    bool allow_list = lines[0][0] != '~';
    strset set = {0};   /* allow list: allowed names; deny list: denied names */
    for (int i = 0; i < nl; i++) {
        bool neg = lines[i][0] == '~';
        char *save = NULL;
        for (char *w = strtok_r(lines[i] + neg, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
            strset names = {0};
            expand(listing, w, &names, 0);
            for (size_t k = 0; k < names.n; k++) {
                if (allow_list ? !neg : neg)
                    set_add(&set, names.v[k]);
                else
                    set_del(&set, names.v[k]);
            }
            set_free(&names);
        }
        free(lines[i]);
    }
    free(listing);

    sysnum *tab;
    size_t nt = read_syscall_table(&tab);
    /* The header must be the one this test was compiled against. */
    ck_assert_msg(lookup_nr(tab, nt, "mbind") == SYS_mbind && lookup_nr(tab, nt, "setpriority") == SYS_setpriority &&
                      lookup_nr(tab, nt, "getpid") == SYS_getpid,
                  "%s does not match the compiler's syscall numbers", SANDBOX_UNISTD);

    emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SANDBOX_ARCH, 1, 0));
    emit(p, (struct sock_filter)RET_ERRNO(EPERM));   /* SystemCallArchitectures=native */

    if (unit_bool(unit, "MemoryDenyWriteExecute")) {
        emit(p, (struct sock_filter)LOAD_NR);
        emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 4));
        emit(p, (struct sock_filter)LOAD_ARG_LO(2));
        emit(p, (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC));
        emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 0, 1));
        emit(p, (struct sock_filter)RET_ERRNO(EPERM));
        const long prot_calls[] = {SYS_mprotect,
#ifdef SYS_pkey_mprotect
                                   SYS_pkey_mprotect
#else
                                   SYS_mprotect
#endif
        };
        for (int k = 0; k < 2; k++) {
            emit(p, (struct sock_filter)LOAD_NR);
            emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)prot_calls[k], 0, 3));
            emit(p, (struct sock_filter)LOAD_ARG_LO(2));
            emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1));
            emit(p, (struct sock_filter)RET_ERRNO(EPERM));
        }
    }

    char *fam[2];
    int nf = unit_values(unit, "RestrictAddressFamilies", fam, 2);
    if (nf == 1 && fam[0][0] != '~') {
        /* Only the three families traind uses are known here. */
        int allowed[8], na = 0;
        char *save = NULL;
        for (char *w = strtok_r(fam[0], " \t", &save); w && na < 8; w = strtok_r(NULL, " \t", &save)) {
            if (!strcmp(w, "AF_UNIX"))
                allowed[na++] = AF_UNIX;
            else if (!strcmp(w, "AF_INET"))
                allowed[na++] = AF_INET;
            else if (!strcmp(w, "AF_INET6"))
                allowed[na++] = AF_INET6;
        }
        emit(p, (struct sock_filter)LOAD_NR);
        emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, (unsigned char)(na + 2)));
        emit(p, (struct sock_filter)LOAD_ARG_LO(0));
        for (int k = 0; k < na; k++)
            emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[k],
                                                 (unsigned char)(na - k), 0));
        emit(p, (struct sock_filter)RET_ERRNO(EAFNOSUPPORT));
    }

    facts->allows_mbind = allow_list == set_has(&set, "mbind");
    facts->allows_setpriority = allow_list == set_has(&set, "setpriority");
    facts->mdwe = unit_bool(unit, "MemoryDenyWriteExecute");
    facts->raf = nf == 1 && fam[0][0] != '~';
    for (int i = 0; i < nf; i++)
        free(fam[i]);

    emit(p, (struct sock_filter)LOAD_NR);
    size_t listed = 0;
    for (size_t i = 0; i < nt; i++) {
        if (!set_has(&set, tab[i].name))
            continue;
        listed++;
        emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)tab[i].nr, 0, 1));
        emit(p, allow_list ? (struct sock_filter)RET_ALLOW : (struct sock_filter)RET_ERRNO(EPERM));
    }
    emit(p, allow_list ? (struct sock_filter)RET_ERRNO(EPERM) : (struct sock_filter)RET_ALLOW);
    ck_assert_msg(p->n < BPF_MAXINSNS, "filter too long (%zu instructions)", p->n);
    snprintf(why, whylen, "%s of %zu syscalls (of %zu on this machine), EPERM otherwise",
             allow_list ? "allow list" : "deny list", listed, nt);
    p->fp = (struct sock_fprog){.len = (unsigned short)p->n, .filter = p->f};

    for (size_t i = 0; i < nt; i++)
        free(tab[i].name);
    free(tab);
    set_free(&set);
}

/* The filter does what it was built to do: probes in a child under it. */
static void probe_filter(const struct sock_fprog *fp, const filter_facts *f)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fp) != 0)
            _exit(10);
        errno = 0;
        bool denied = setpriority(PRIO_PROCESS, 0, 0) < 0 && errno == EPERM;
        if (denied == f->allows_setpriority)
            _exit(11);
        errno = 0;
        denied = syscall(SYS_mbind, 0, 0, 0, 0, 0, 0) < 0 && errno == EPERM;
        if (denied == f->allows_mbind)
            _exit(12);
        if (f->raf && (socket(AF_NETLINK, SOCK_RAW, 0) >= 0 || errno != EAFNOSUPPORT))
            _exit(13);
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (f->mdwe && (m != MAP_FAILED || errno != EPERM))
            _exit(14);
        int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
        if (fd < 0 || getpid() <= 0)
            _exit(15);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "the emulated unit filter misbehaves (probe %d: 10 cannot install, 11 setpriority, "
                  "12 mbind, 13 AF_NETLINK allowed, 14 W+X mmap allowed, 15 getpid or AF_UNIX denied)",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}
#endif /* SANDBOX_ARCH */

/* OpenBLAS runs sgemm on 4 threads at these sizes. */
static const char BLAS_JOB[] =
    "seed: 5\n"
    "threads: 4\n"
    "model: {type: mlp, input_dim: 256, hidden: [512, 512], output_dim: 64, activation: gelu}\n"
    "data: {kind: synthetic, batch_size: 256}\n"
    "optimizer: {type: adamw, lr: 1.0e-3, grad_clip: 1.0}\n"
    "schedule: {type: cosine, warmup_steps: 5, total_steps: 40}\n"
    "train: {log_every: 5, checkpoint_every: 20}\n";

/* "step lr loss" per line of a metrics.jsonl, for exact comparison. */
static char *metrics_numbers(const char *path)
{
    char *text = slurp(path);
    if (!text)
        return NULL;
    size_t cap = strlen(text) + 64, n = 0;
    char *out = xmalloc(cap);
    out[0] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        if (!j)
            continue;
        n += (size_t)snprintf(out + n, cap - n, "%.0f %.17g %.17g\n", tl_num(j, "step"), tl_num(j, "lr"),
                              tl_num(j, "loss"));
        cJSON_Delete(j);
        if (n + 80 > cap) {
            cap *= 2;
            out = xrealloc(out, cap);
        }
    }
    free(text);
    return out;
}

START_TEST(sandbox_openblas_threads_train)
{
#ifndef SANDBOX_ARCH
    fprintf(stderr, "sandbox: no seccomp emulation for this architecture; skipped\n");
    return;
#else
    require_systemd_analyze();
    char *unit = unit_from_source(), *text = slurp(unit), why[160];
    prog p = {0};
    filter_facts facts;
    build_filter(text, &p, why, sizeof why, &facts);
    probe_filter(&p.fp, &facts);

    char *cfg = xasprintf("%s/blas.yaml", g_dir);
    ck_assert_int_eq(tl_write(cfg, BLAS_JOB), 0);
    char *trainctl = xasprintf("%s/trainctl", build_dir());

    /* trainctl run, unconfined and confined. */
    char *out_free = xasprintf("%s/free", g_dir), *out_jail = xasprintf("%s/jail", g_dir);
    char *log_free = xasprintf("%s/free.log", g_dir), *log_jail = xasprintf("%s/jail.log", g_dir);
    const char *a1[] = {"run", cfg, "--out", out_free, "--threads", "4", NULL};
    const char *a2[] = {"run", cfg, "--out", out_jail, "--threads", "4", NULL};
    daemon_opts o1 = {.args = a1}, o2 = {.args = a2, .seccomp = &p.fp};
    int st1 = reap(spawn(trainctl, &o1, log_free), 60);
    int st2 = reap(spawn(trainctl, &o2, log_jail), 60);
    char *l1 = daemon_log_tail(log_free), *l2 = daemon_log_tail(log_jail);
    ck_assert_msg(st1 != -1 && WIFEXITED(st1) && WEXITSTATUS(st1) == 0, "trainctl run (unconfined) failed:\n%s", l1);
    ck_assert_msg(st2 != -1 && WIFEXITED(st2) && WEXITSTATUS(st2) == 0,
                  "trainctl run under the unit's syscall filter (%s) failed (wait status 0x%x):\n%s", why, st2, l2);
    char *m_free = xasprintf("%s/metrics.jsonl", out_free), *m_jail = xasprintf("%s/metrics.jsonl", out_jail);
    char *n_free = metrics_numbers(m_free), *n_jail = metrics_numbers(m_jail);
    ck_assert_msg(n_free && *n_free, "no metrics from the unconfined run");
    ck_assert_msg(n_jail && !strcmp(n_free, n_jail),
                  "losses differ under the syscall filter:\nunconfined:\n%s\nconfined:\n%s", n_free,
                  n_jail ? n_jail : "(none)");

    /* The daemon, its intake, and its training process, confined. */
    char *spool = xasprintf("%s/spool", g_dir), *dlog = xasprintf("%s/daemon.log", g_dir);
    const char *da[] = {"--spool", spool, "--listen", "127.0.0.1:0", "--threads", "4", NULL};
    daemon_opts od = {.args = da, .seccomp = &p.fp};
    pid_t pid = spawn(tl_traind_path(), &od, dlog);
    char *addr = wait_addr(spool, pid, 10);
    if (!addr) {
        char *l = daemon_log_tail(dlog);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ck_abort_msg("traind did not come up under the unit's syscall filter (%s):\n%s", why, l);
    }
    drop_job(spool, "blas", BLAS_JOB);
    cJSON *job = tl_wait_job(addr, "blas", tl_job_ended, NULL, 60);
    char *l = daemon_log_tail(dlog);
    ck_assert_msg(job != NULL, "the job did not end within 60 s under the filter; log:\n%s", l);
    const char *state = tl_str(job, "state");
    char *wlog_path = xasprintf("%s/jobs/blas/worker.log", spool), *wlog = slurp(wlog_path);
    ck_assert_msg(state && !strcmp(state, "succeeded"),
                  "job state %s under the unit's syscall filter; daemon log:\n%s\nworker.log:\n%s",
                  state ? state : "?", l, wlog ? wlog : "(none)");
    char *m_d = xasprintf("%s/jobs/blas/metrics.jsonl", spool), *n_d = metrics_numbers(m_d);
    ck_assert_msg(n_d && !strcmp(n_d, n_free), "the confined daemon's losses differ from trainctl's:\n%s\nvs\n%s",
                  n_d ? n_d : "(none)", n_free);
    kill(pid, SIGTERM);
    int st = reap(pid, 15);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "traind under the filter did not exit 0 on SIGTERM (0x%x)", st);

    cJSON_Delete(job);
    free(wlog);
    free(wlog_path);
    free(m_d);
    free(n_d);
    free(l);
    free(addr);
    free(spool);
    free(dlog);
    free(m_free);
    free(m_jail);
    free(n_free);
    free(n_jail);
    free(l1);
    free(l2);
    free(out_free);
    free(out_jail);
    free(log_free);
    free(log_jail);
    free(trainctl);
    free(cfg);
    free(p.f);
    free(text);
    free(unit);
#endif
}
END_TEST

/* ------------------------------------------------------------ main */

static Suite *suite(void)
{
    Suite *s = suite_create("systemd");

    TCase *inst = tcase_create("install");
    tcase_add_checked_fixture(inst, setup, teardown);
    tcase_set_timeout(inst, 30);
    tcase_add_test(inst, install_layout);
    tcase_add_test(inst, install_keeps_config_uninstall_removes);
    tcase_add_test(inst, install_destdir_usr);
    suite_add_tcase(s, inst);

    TCase *unit = tcase_create("unit");
    tcase_add_checked_fixture(unit, setup, teardown);
    tcase_set_timeout(unit, 30);
    tcase_add_test(unit, unit_verifies);
    tcase_add_test(unit, unit_exposure);
    suite_add_tcase(s, unit);

    TCase *notify = tcase_create("notify");
    tcase_add_checked_fixture(notify, setup, notify_teardown);
    tcase_set_timeout(notify, 30);
    tcase_add_test(notify, notify_ready_once_listening);
    tcase_add_test(notify, notify_status_follows_jobs);
    tcase_add_test(notify, notify_watchdog_at_half_interval);
    tcase_add_test(notify, notify_reload_on_sighup);
    tcase_add_test(notify, notify_stopping_on_sigterm);
    suite_add_tcase(s, notify);

    TCase *log = tcase_create("log");
    tcase_add_checked_fixture(log, setup, teardown);
    tcase_set_timeout(log, 30);
    tcase_add_test(log, log_timestamps_off_the_journal);
    tcase_add_test(log, log_no_timestamps_in_the_journal);
    suite_add_tcase(s, log);

    TCase *sb = tcase_create("sandbox");
    tcase_add_checked_fixture(sb, setup, teardown);
    tcase_set_timeout(sb, 120);
    tcase_add_test(sb, sandbox_openblas_threads_train);
    suite_add_tcase(s, sb);
    return s;
}

int main(void)
{
    int failed = tl_run_suite(suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

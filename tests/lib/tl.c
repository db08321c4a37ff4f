/* tl — test helpers: temp dirs, files, running programs and the real daemon.
 * HTTP is in tl_http.c, jobs over the API in tl_jobs.c.  See tl.h. */
#include <check.h>
#include "tl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "traind/util.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TL_HAVE_VALGRIND_H 1
#endif
#endif

double tl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

char *tl_tmpdir(const char *prefix)
{
    char *tmpl = xasprintf("/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void tl_rmtree_under(const char *path, const char *prefix)
{
    const char *keep = getenv("TRAIND_TEST_KEEP");   /* for post-mortems */
    if (keep && *keep && strcmp(keep, "0") != 0)
        return;
    if (path && strncmp(path, prefix, strlen(prefix)) == 0 && !strstr(path, "/../"))
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void tl_rmtree(const char *path)
{
    tl_rmtree_under(path, "/tmp/");
}

int tl_write(const char *path, const char *text)
{
    return write_file_atomic(path, text, strlen(text), 0644);
}

char *tl_read(const char *path, size_t *len)
{
    char *buf;
    size_t n;
    if (read_file(path, (size_t)1 << 30, &buf, &n) < 0)
        return NULL;
    if (len)
        *len = n;
    return buf;
}

/* ---------------------------------------------------------------- daemon */

const char *tl_traind_path(void)
{
    static char path[4096];
    const char *b = getenv("TRAIND_BUILD");
    snprintf(path, sizeof path, "%s/traind", b && *b ? b : "build");
    return path;
}

const char *tl_trainctl_path(void)
{
    static char path[4096];
    const char *b = getenv("TRAIND_BUILD");
    snprintf(path, sizeof path, "%s/trainctl", b && *b ? b : "build");
    return path;
}

int tl_run(const char *const *argv, const char *out_path, double timeout_s)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
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
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    double deadline = tl_now() + timeout_s;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0)
            return -1;
        if (tl_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
        tl_sleep_ms(5);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *tl_strip_time(const char *text)
{
    size_t n = strlen(text);
    char *out = xmalloc(n + 1);
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        if (strncmp(text + i, ",\"time\":", 8) == 0) {
            i += 8;
            while (i < n && text[i] != ',' && text[i] != '}')
                i++;
            continue;
        }
        out[w++] = text[i++];
    }
    out[w] = '\0';
    return out;
}

char *tl_dir_metrics(const char *dir)
{
    char *path = xasprintf("%s/metrics.jsonl", dir);
    char *text = tl_read(path, NULL);
    ck_assert_msg(text != NULL, "%s cannot be read", path);
    free(path);
    char *out = tl_strip_time(text);
    free(text);
    return out;
}

char *tl_job_metrics(const char *spool, const char *id)
{
    ck_assert_msg(spool != NULL, "no spool for the metrics of %s", id);
    char *dir = xasprintf("%s/jobs/%s", spool, id);
    char *out = tl_dir_metrics(dir);
    free(dir);
    return out;
}

bool tl_pid_alive(pid_t pid)
{
    return pid > 0 && kill(pid, 0) == 0;
}

int tl_daemon_start(tl_daemon *d, const char *spool, const char *const *extra_args, double timeout_s)
{
    return tl_daemon_start_opts(d, spool, extra_args, timeout_s, NULL);
}

int tl_daemon_start_opts(tl_daemon *d, const char *spool, const char *const *extra_args, double timeout_s,
                         const tl_start_opts *o)
{
    memset(d, 0, sizeof *d);
    d->spool = xstrdup(spool);
    mkdir_p(spool, 0755);
    char *addr_file = xasprintf("%s/traind.addr", spool);
    unlink(addr_file);
    d->log = o && o->log_path ? xstrdup(o->log_path) : xasprintf("%s/daemon.log", spool);

    const char *argv[64];
    int n = 0;
    argv[n++] = tl_traind_path();
    argv[n++] = "--spool";
    argv[n++] = spool;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    for (int i = 0; extra_args && extra_args[i] && n < 62; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        free(addr_file);
        return -1;
    }
    if (pid == 0) {
        /* The daemon dies with the test process, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            close(null);
        }
        if (o && o->fsize_limit > 0) {
            struct rlimit rl = {(rlim_t)o->fsize_limit, (rlim_t)o->fsize_limit};
            if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
                _exit(126);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
    double deadline = tl_now() + timeout_s;
    int rc = -1;
    while (tl_now() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            break;
        }
        char *text = tl_read(addr_file, NULL);
        if (text) {
            char *nl = strchr(text, '\n');
            if (nl) {
                *nl = '\0';
                snprintf(d->addr, sizeof d->addr, "%s", text);
                rc = 0;
            }
            free(text);
            if (rc == 0)
                break;
        }
        tl_sleep_ms(10);
    }
    free(addr_file);
    if (rc == 0) {
        char *tpath = xasprintf("%s/api.token", spool);
        char *tok = tl_read(tpath, NULL);
        free(tpath);
        if (tok) {
            tok[strcspn(tok, "\r\n")] = '\0';
            snprintf(d->token, sizeof d->token, "%s", tok);
            free(tok);
        }
    } else if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
    return rc;
}

int tl_daemon_stop(tl_daemon *d, int sig, double timeout_s)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    double deadline = tl_now() + timeout_s;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid)
            break;
        if (r < 0) {
            st = -1;
            break;
        }
        if (tl_now() > deadline) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            st = -1;
            break;
        }
        tl_sleep_ms(10);
    }
    d->pid = 0;
    return st;
}

char *tl_daemon_log(const tl_daemon *d)
{
    char *path = d->log ? xstrdup(d->log) : d->spool ? xasprintf("%s/daemon.log", d->spool) : NULL;
    char *t = path ? tl_read(path, NULL) : NULL;
    free(path);
    return t ? t : xstrdup("");
}

int tl_count_in(const char *text, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    for (const char *p = text; p && nl && (p = strstr(p, needle)); p += nl)
        n++;
    return n;
}

int tl_log_count(const tl_daemon *d, const char *needle)
{
    char *t = tl_daemon_log(d);
    int n = tl_count_in(t, needle);
    free(t);
    return n;
}

/* Whether one line of text holds a (and b, unless NULL). */
static bool line_has(const char *text, const char *a, const char *b)
{
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char *one = xstrndup(line, n);
        bool found = strstr(one, a) && (!b || strstr(one, b));
        free(one);
        if (found)
            return true;
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

bool tl_log_line_wait(const tl_daemon *d, const char *a, const char *b, double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    for (;;) {
        char *t = tl_daemon_log(d);
        bool found = line_has(t, a, b);
        free(t);
        if (found)
            return true;
        if (tl_now() > deadline)
            return false;
        tl_sleep_ms(20);
    }
}

bool tl_log_wait(const tl_daemon *d, const char *needle, double timeout_s)
{
    return tl_log_line_wait(d, needle, NULL, timeout_s);
}

void tl_assert_log(const tl_daemon *d, const char *a, const char *b, double timeout_s)
{
    if (tl_log_line_wait(d, a, b, timeout_s))
        return;
    char *t = tl_daemon_log(d);
    size_t n = strlen(t);
    ck_abort_msg("the daemon log has no line with \"%s\"%s%s%s: ...%s", a, b ? " and \"" : "", b ? b : "",
                 b ? "\"" : "", t + (n > 3000 ? n - 3000 : 0));
}

void tl_fixture_begin(char **dir, tl_daemon *d, const char *prefix)
{
    *dir = tl_tmpdir(prefix);
    ck_assert_ptr_nonnull(*dir);
    memset(d, 0, sizeof *d);
}

void tl_fixture_end(char **dir, tl_daemon *d)
{
    tl_daemon_free(d);
    tl_rmtree(*dir);
    free(*dir);
    *dir = NULL;
}

void tl_start_in(tl_daemon *d, const char *dir, const char *const *extra_args, double timeout_s)
{
    char *spool = xasprintf("%s/spool", dir);
    if (tl_daemon_start(d, spool, extra_args, timeout_s) != 0) {
        char *log = tl_daemon_log(d);
        ck_abort_msg("traind did not start (%s): %s", tl_traind_path(), log[0] ? log : "(no log)");
    }
    free(spool);
}

void tl_stop_clean(tl_daemon *d, double timeout_s)
{
    if (d->pid <= 0)
        return;
    int st = tl_daemon_stop(d, SIGTERM, timeout_s);
    char *log = st == 0 ? NULL : tl_daemon_log(d);
    size_t n = log ? strlen(log) : 0;
    ck_assert_msg(st == 0, "traind did not stop cleanly (wait status %d): ...%s", st,
                  log ? log + (n > 3000 ? n - 3000 : 0) : "");
    free(log);
}

void tl_daemon_free(tl_daemon *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
    free(d->spool);
    free(d->log);
    d->spool = d->log = NULL;
}

double tl_num(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *tl_str(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool tl_under_valgrind(void)
{
#ifdef TL_HAVE_VALGRIND_H
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;   /* without the header, nothing is scaled down */
#endif
}

void tl_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIPPED CHECK: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

void tl_skip_checks(int n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("SKIPPED: %d checks: ", n);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

void tl_ck_assert_failed(const char *file, int line, const char *expr, const char *msg, ...)
{
    if (!msg)
        (_ck_assert_failed)(file, line, expr, NULL);   /* the function, not the macro */
    char buf[TL_MSG_MAX];
    va_list ap, again;
    va_start(ap, msg);
    va_copy(again, ap);
    int n = vsnprintf(buf, sizeof buf, msg, ap);
    va_end(ap);
    if (n >= (int)sizeof buf) {
        /* the whole of it on stderr (the suite's output), the start in Check's message */
        char *all = xmalloc((size_t)n + 1);
        vsnprintf(all, (size_t)n + 1, msg, again);
        fprintf(stderr, "%s:%d: the whole failure message (%d bytes):\n%s\n", file, line, n, all);
        free(all);
        snprintf(buf + sizeof buf - 64, 64, " [... cut: %d bytes in all, the whole on stderr]", n);
    }
    va_end(again);
    (_ck_assert_failed)(file, line, expr, "%s", buf);
}

void tl_tcase_add_test(TCase *tc, const TTest *tt, int signal, int allowed_exit, int start, int end)
{
    const char *only = getenv("TL_TEST");
    if (only && *only && strcmp(only, tt->name) != 0)
        return;
    (_tcase_add_test)(tc, tt, signal, allowed_exit, start, end);   /* the function, not the macro */
}

int tl_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

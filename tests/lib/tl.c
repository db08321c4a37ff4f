/* tl — test helpers: temp dirs, the real daemon, a tiny HTTP client.  See tl.h. */
#include <check.h>
#include "tl.h"

#include <arpa/inet.h>
#include <errno.h>
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

void tl_rmtree(const char *path)
{
    const char *keep = getenv("TRAIND_TEST_KEEP");   /* for post-mortems */
    if (keep && *keep && strcmp(keep, "0") != 0)
        return;
    if (path && strncmp(path, "/tmp/", 5) == 0)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
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
    char *t = d->log ? tl_read(d->log, NULL) : NULL;
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

bool tl_log_wait(const tl_daemon *d, const char *needle, double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    for (;;) {
        char *t = tl_daemon_log(d);
        bool found = strstr(t, needle) != NULL;
        free(t);
        if (found)
            return true;
        if (tl_now() > deadline)
            return false;
        tl_sleep_ms(20);
    }
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

/* ------------------------------------------------------------------ HTTP */

void tl_resp_free(tl_resp *r)
{
    free(r->body);
    free(r->head);
    r->body = r->head = NULL;
    r->len = 0;
    r->status = 0;
}

char *tl_header(const tl_resp *r, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = r->head; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return xstrndup(v, (size_t)(eol - v));
        }
        p = eol + 2;
    }
    return NULL;
}

static int connect_to(const char *addr)
{
    char host[128];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until EOF or timeout; parses "HTTP/1.1 NNN" and the body after the
 * blank line (honouring Content-Length when the server keeps the connection). */
static int read_response(int fd, int timeout_ms, tl_resp *out)
{
    size_t cap = 8192, len = 0;
    char *buf = xmalloc(cap);
    double deadline = tl_now() + timeout_ms / 1000.0;
    long want = -1;   /* total bytes once the headers are known */
    for (;;) {
        if (want >= 0 && (long)len >= want)
            break;
        int left = (int)((deadline - tl_now()) * 1000);
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        if (len + 4096 > cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if (want < 0) {
            char *eoh = strstr(buf, "\r\n\r\n");
            if (eoh) {
                char *cl = strcasestr(buf, "\r\ncontent-length:");
                if (cl && cl < eoh)
                    want = (long)(eoh + 4 - buf) + atol(cl + 17);
            }
        }
    }
    buf[len] = '\0';
    out->status = 0;
    if (len >= 12 && strncmp(buf, "HTTP/1.", 7) == 0)
        out->status = atoi(buf + 9);
    char *eoh = strstr(buf, "\r\n\r\n");
    const char *body = eoh ? eoh + 4 : "";
    size_t blen = eoh ? len - (size_t)(body - buf) : 0;
    out->body = xstrndup(body, blen);
    out->len = blen;
    out->head = xstrndup(buf, eoh ? (size_t)(eoh - buf) + 2 : len);
    free(buf);
    return out->status ? 0 : -1;
}

int tl_http(const char *addr, const char *method, const char *path, const char *token,
            const char *body, size_t body_len, tl_resp *out)
{
    memset(out, 0, sizeof *out);
    int fd = connect_to(addr);
    if (fd < 0) {
        out->body = xstrdup("");
        return -1;
    }
    char auth[300] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    char *head = xasprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n"
                           "Content-Type: application/yaml\r\nContent-Length: %zu\r\n\r\n",
                           method, path, addr, auth, body ? body_len : 0);
    int rc = send_all(fd, head, strlen(head));
    free(head);
    if (rc == 0 && body && body_len)
        rc = send_all(fd, body, body_len);
    rc = read_response(fd, 10000, out);
    close(fd);
    return rc;
}

int tl_http_raw(const char *addr, const void *req, size_t len, int timeout_ms, tl_resp *out)
{
    memset(out, 0, sizeof *out);
    int fd = connect_to(addr);
    if (fd < 0) {
        out->body = xstrdup("");
        return -1;
    }
    send_all(fd, req, len);   /* the server may refuse midway: read what it said */
    int rc = read_response(fd, timeout_ms, out);
    close(fd);
    return rc;
}

cJSON *tl_get_json(const char *addr, const char *path, int *status)
{
    tl_resp r;
    tl_http(addr, "GET", path, NULL, NULL, 0, &r);
    if (status)
        *status = r.status;
    cJSON *j = r.status >= 200 && r.status < 300 ? cJSON_Parse(r.body) : NULL;
    tl_resp_free(&r);
    return j;
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

bool tl_job_in_state(const cJSON *job, void *state)
{
    const char *s = tl_str(job, "state");
    return s && strcmp(s, (const char *)state) == 0;
}

bool tl_job_ended(const cJSON *job, void *unused)
{
    (void)unused;
    const char *s = tl_str(job, "state");
    return s && strcmp(s, "queued") != 0 && strcmp(s, "running") != 0;
}

bool tl_job_at_step(const cJSON *job, void *min_step)
{
    return tl_num(job, "step") >= (double)*(const long *)min_step || tl_job_ended(job, NULL);
}

cJSON *tl_wait_job(const char *addr, const char *id, bool (*pred)(const cJSON *job, void *arg),
                   void *arg, double timeout_s)
{
    char *path = xasprintf("/jobs/%s", id);
    double deadline = tl_now() + timeout_s;
    cJSON *j = NULL;
    for (;;) {
        j = tl_get_json(addr, path, NULL);
        if (j && pred(j, arg))
            break;
        cJSON_Delete(j);
        j = NULL;
        if (tl_now() > deadline)
            break;
        tl_sleep_ms(20);
    }
    free(path);
    return j;
}

bool tl_job_running_with(const cJSON *j, void *min_ckpt)
{
    const char *s = tl_str(j, "state");
    long want = *(const long *)min_ckpt;
    return s && !strcmp(s, "running") && tl_num(j, "step") > 0 && tl_num(j, "pid") > 0 &&
           (want <= 0 || tl_num(j, "checkpoint_step") >= (double)want);
}

int tl_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

/*
 * test_abuse — the real traind ($TRAIND_BUILD/traind) under hostile or
 * careless HTTP clients, and the limits of its daemon config (traind.yaml(5), §4;
 * traind.yaml(5) LIMITS):
 *
 *   - 1,000 connections held open at once, more over max_connections (503 or
 *     closed), then normal service again; RSS from /proc/PID/status bounded
 *   - slowloris (headers a byte a second) and idle connections closed by
 *     request_timeout_ms / idle_timeout_ms
 *   - 10 pipelined requests in one write: 10 answers in order
 *   - bodies that lie about Content-Length, chunked bodies
 *   - invalid UTF-8 and traversal attempts in paths: 404/400, nothing
 *     outside the spool touched
 *   - a flood of POSTs over max_queued_jobs (429) and files held in
 *     incoming/; write_rate_per_client (429 + Retry-After);
 *     max_model_memory (and its reload on SIGHUP); metrics_keep
 *
 * Every test starts its own daemon with a job that trains all along: after
 * each kind of abuse the job's step must have advanced (the daemon's loop
 * kept serving its training process) and /healthz must answer at once.
 * Figures (connections, RSS) are printed on stdout.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/util.h"
#include "../lib/tl.h"

/* Trains far longer than any test waits. */
static const char STEADY[] =
    "name: steady\n"
    "seed: 1\n"
    "model: {type: mlp, input_dim: 8, hidden: [16], output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: constant, total_steps: 50000000}\n"
    "train: {log_every: 1000, checkpoint_every: 1000000}\n";

/* A small valid config that waits behind STEADY (max_jobs 1). */
static const char WAITER_FMT[] =
    "name: %s\n"
    "model: {type: linear, input_dim: 4, output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 4}\n"
    "optimizer: {lr: 0.01}\n"
    "schedule: {type: constant, total_steps: 100}\n";

static char *g_dir;
static tl_daemon g_d;
static char g_job[128];   /* the steady job's id */

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-abuse");
    g_job[0] = '\0';
}

static void teardown(void)
{
    tl_stop_clean(&g_d, 30);   /* after all that, a clean stop (under ASan: no leak either) */
    tl_fixture_end(&g_dir, &g_d);
}

/* The value of header name in r (a static copy, for ck_assert_str_eq), or NULL. */
static const char *header(const tl_resp *r, const char *name)
{
    static char val[256];
    char *v = tl_header(r, name);
    if (!v)
        return NULL;
    snprintf(val, sizeof val, "%s", v);
    free(v);
    return val;
}

/* POST /jobs; the status, and the new job's id in id (when 201 and id). */
static int post_job(const char *body, char *id, size_t idlen)
{
    tl_resp r;
    ck_assert_int_eq(tl_post_job(&g_d, g_d.token, body, strlen(body), &r), 0);
    int st = r.status;
    if (st == 201 && id) {
        cJSON *o = cJSON_Parse(r.body);
        ck_assert_ptr_nonnull(o);
        snprintf(id, idlen, "%s", tl_str(o, "id"));
        cJSON_Delete(o);
    }
    tl_resp_free(&r);
    return st;
}

#define SEND(fd, s) ck_assert(tl_send_all((fd), (s), strlen(s)) == 0)

/* ------------------------------------------------------------------ */
/* the daemon                                                           */

static long rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = tl_read(path, NULL);
    ck_assert_ptr_nonnull(s);
    const char *v = strstr(s, "VmRSS:");
    long kib = v ? atol(v + 6) : -1;
    free(s);
    ck_assert_int_gt(kib, 0);
    return kib;
}

/* Built with AddressSanitizer (its shadow memory and quarantine count in RSS)? */
static bool sanitized(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    char *s = tl_read(path, NULL);
    bool asan = s && strstr(s, "libasan");
    free(s);
    return asan;
}

static void healthy(void)
{
    double t0 = tl_now();
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    tl_resp_free(&r);
    double dt = tl_now() - t0;
    ck_assert_msg(dt < 1.0, "/healthz took %.3f s", dt);
    ck_assert(tl_pid_alive(g_d.pid));
}

static long job_step(const char *id)
{
    char *path = xasprintf("/jobs/%s", id);
    int st;
    cJSON *j = tl_get_json(g_d.addr, path, &st);
    free(path);
    ck_assert_msg(j != NULL, "GET /jobs/%s: %d", id, st);
    ck_assert_str_eq(tl_str(j, "state"), "running");
    long step = (long)tl_num(j, "step");
    cJSON_Delete(j);
    return step;
}

/* The steady job is still training: its step goes past *last (updated). */
static void still_training(long *last)
{
    double deadline = tl_now() + 10;
    long s;
    while ((s = job_step(g_job)) <= *last && tl_now() < deadline)
        tl_sleep_ms(50);
    ck_assert_msg(s > *last, "the job stopped at step %ld", s);
    *last = s;
}

/* Starts traind with the daemon config text, then the steady job; returns
 * once it trains. */
static void start_with(const char *config, long *step)
{
    char *cfg = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(cfg, config), 0);
    char *spool = xasprintf("%s/spool", g_dir);
    const char *extra[] = {"--config", cfg, "--max-jobs", "1", NULL};
    if (tl_daemon_start(&g_d, spool, extra, 20) != 0) {
        char *log = tl_read(g_d.log, NULL);
        ck_abort_msg("traind did not start (%s): %s", tl_traind_path(), log ? log : "(no log)");
    }
    free(spool);
    free(cfg);
    ck_assert_int_eq(post_job(STEADY, g_job, sizeof g_job), 201);
    long min = 1;
    cJSON *j = tl_wait_job(g_d.addr, g_job, tl_job_at_step, &min, 20);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(tl_str(j, "state"), "running");
    cJSON_Delete(j);
    *step = job_step(g_job);
}

/* traind_http_connections from GET /metrics (this request's own included);
 * LONG_MAX while the daemon is still full (503: it has not yet seen the
 * ends of connections the test has just closed, as under load in CI). */
static long open_connections(void)
{
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    if (r.status == 503 && r.body && strstr(r.body, "too many connections")) {
        tl_resp_free(&r);
        return LONG_MAX;
    }
    ck_assert_int_eq(r.status, 200);
    const char *p = strstr(r.body, "\ntraind_http_connections ");
    ck_assert_msg(p != NULL, "no traind_http_connections in /metrics");
    long n = atol(p + 25);
    tl_resp_free(&r);
    return n;
}

static void wait_connections_at_most(long n, double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    long now;
    while ((now = open_connections()) > n && tl_now() < deadline)
        tl_sleep_ms(50);
    ck_assert_msg(now != LONG_MAX, "traind still full (503) after %.0f s", timeout_s);
    ck_assert_msg(now <= n, "%ld connections still open", now);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int jobs_on_disk(void)
{
    char *p = xasprintf("%s/spool/jobs", g_dir);
    int n = count_entries(p);
    free(p);
    return n;
}

/* ------------------------------------------------------------------ */
/* 1,000 connections                                                    */

static int g_nconns = 1000;   /* lowered in main() when RLIMIT_NOFILE cannot fit it */

START_TEST(thousand_connections)
{
    const int N = g_nconns, OVER = 20;
    char *config = xasprintf("max_connections: %d\nidle_timeout_ms: 60000\nrequest_timeout_ms: 10000\n", N);
    long step;
    start_with(config, &step);
    free(config);
    pid_t pid = g_d.pid;
    wait_connections_at_most(1, 5);   /* the /metrics probe's own */
    /* the probe's connection is closed on our side; let the daemon see its
     * end before the N connections below fill the cap (once in CI the 1000th
     * got the 503 while the probe still counted) */
    tl_sleep_ms(200);
    long rss0 = rss_kib(pid), peak = rss0;

    int *fds = xcalloc((size_t)N, sizeof *fds);
    tl_conn *rb = xcalloc((size_t)N, sizeof *rb);
    double t0 = tl_now();
    for (int i = 0; i < N; i++) {
        fds[i] = tl_dial(g_d.addr);
        ck_assert_msg(fds[i] >= 0, "connection %d: %s", i, strerror(errno));
        rb[i].fd = fds[i];
    }
    double t_open = tl_now() - t0;
    /* every one is really being served: a request on each, all at once */
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for (int i = 0; i < N; i++)
        SEND(fds[i], req);
    for (int i = 0; i < N; i++) {
        tl_resp r;
        ck_assert_msg(tl_conn_read(&rb[i], false, 10000, &r) == 200, "connection %d: %d", i, r.status);
        ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
        tl_resp_free(&r);
    }
    long v = rss_kib(pid);
    peak = v > peak ? v : peak;

    /* the daemon counts them all; a held connection still answers anything */
    static const char mreq[] = "GET /metrics HTTP/1.1\r\n\r\n";
    SEND(fds[0], mreq);
    tl_resp r;
    ck_assert_int_eq(tl_conn_read(&rb[0], false, 5000, &r), 200);
    char want[64];
    snprintf(want, sizeof want, "\ntraind_http_connections %d\n", N);
    ck_assert_msg(strstr(r.body, want) != NULL, "expected%s", want);
    tl_resp_free(&r);

    /* over the cap: 503 or closed, never served */
    int n503 = 0, nclosed = 0;
    for (int k = 0; k < OVER; k++) {
        int fd = tl_dial(g_d.addr);
        if (fd < 0) {
            nclosed++;
            continue;
        }
        tl_send_all(fd, req, sizeof req - 1);   /* may fail: the server may have closed it */
        tl_conn x = {.fd = fd};
        int st = tl_conn_read(&x, false, 5000, &r);
        if (st == 503) {
            n503++;
            ck_assert_str_eq(r.body, "{\"error\":\"too many connections\"}");
        } else {
            ck_assert_msg(st == 0, "an over-cap connection was answered %d", st);
            nclosed++;
        }
        tl_resp_free(&r);
        free(x.p);
        close(fd);
    }
    ck_assert_int_eq(n503 + nclosed, OVER);
    v = rss_kib(pid);
    peak = v > peak ? v : peak;

    /* the job trained all along (asked over a held connection) */
    char *jreq = xasprintf("GET /jobs/%s HTTP/1.1\r\n\r\n", g_job);
    SEND(fds[1], jreq);
    free(jreq);
    ck_assert_int_eq(tl_conn_read(&rb[1], false, 5000, &r), 200);
    cJSON *job = cJSON_Parse(r.body);
    ck_assert_ptr_nonnull(job);
    ck_assert_str_eq(tl_str(job, "state"), "running");
    ck_assert_msg((long)tl_num(job, "step") > step, "step %ld -> %ld", step, (long)tl_num(job, "step"));
    step = (long)tl_num(job, "step");
    cJSON_Delete(job);
    tl_resp_free(&r);

    for (int i = 0; i < N; i++) {
        close(fds[i]);
        free(rb[i].p);
    }
    free(fds);
    free(rb);
    wait_connections_at_most(1, 10);
    tl_sleep_ms(200);
    long rss1 = rss_kib(pid);

    /* normal service again */
    healthy();
    still_training(&step);
    int fd = tl_dial(g_d.addr);
    SEND(fd, req);
    tl_conn x = {.fd = fd};
    ck_assert_int_eq(tl_conn_read(&x, false, 5000, &r), 200);
    tl_resp_free(&r);
    free(x.p);
    close(fd);

    bool asan = sanitized(pid);
    printf("test_abuse: %d connections held (opened in %.2f s), %d over the cap: %d answered 503, %d closed; "
           "traind RSS %ld KiB before, %ld KiB peak, %ld KiB after%s\n",
           N, t_open, OVER, n503, nclosed, rss0, peak, rss1, asan ? " (ASan build)" : "");
    fflush(stdout);
    ck_assert_msg(peak < 64 * 1024, "RSS peak %ld KiB, over 64 MiB", peak);
    /* ASan's quarantine keeps freed memory a while: a looser bound there */
    long back = asan ? 16 * 1024 : 4 * 1024;
    ck_assert_msg(rss1 < rss0 + back, "RSS %ld KiB after, %ld KiB before", rss1, rss0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* slow and idle clients                                                */

START_TEST(slowloris)
{
    long step;
    start_with("request_timeout_ms: 1000\nidle_timeout_ms: 2000\n", &step);
    enum { SLOW = 30 };
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n\r\n";
    int fds[SLOW + 1];
    double closed_at[SLOW + 1];
    size_t sent[SLOW + 1];
    double t0 = tl_now();
    for (int i = 0; i <= SLOW; i++) {
        fds[i] = tl_dial(g_d.addr);
        ck_assert_int_ge(fds[i], 0);
        closed_at[i] = 0;
        sent[i] = 0;
    }
    int idle = SLOW;   /* the last one sends nothing at all */
    double next_byte = t0;
    int open = SLOW + 1;
    size_t got = 0;
    while (open > 0 && tl_now() - t0 < 8) {
        double now = tl_now();
        if (now >= next_byte) {
            /* one byte a second on every slow connection still open */
            for (int i = 0; i < SLOW; i++)
                if (!closed_at[i] && sent[i] < sizeof req - 1) {
                    if (send(fds[i], req + sent[i], 1, MSG_NOSIGNAL) == 1)
                        sent[i]++;
                }
            next_byte += 1.0;
            healthy();   /* everyone else is served meanwhile */
        }
        struct pollfd p[SLOW + 1];
        for (int i = 0; i <= SLOW; i++)
            p[i] = (struct pollfd){closed_at[i] ? -1 : fds[i], POLLIN, 0};
        poll(p, SLOW + 1, 50);
        for (int i = 0; i <= SLOW; i++) {
            if (closed_at[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char b[512];
            ssize_t r = recv(fds[i], b, sizeof b, MSG_DONTWAIT);
            if (r > 0)
                got += (size_t)r;
            else if (r == 0 || errno == ECONNRESET) {
                closed_at[i] = tl_now() - t0;
                open--;
            }
        }
    }
    double lo = 99, hi = 0;
    for (int i = 0; i < SLOW; i++) {
        ck_assert_msg(closed_at[i] > 0, "slow connection %d still open after %.1f s (%zu bytes sent)", i,
                      tl_now() - t0, sent[i]);
        lo = closed_at[i] < lo ? closed_at[i] : lo;
        hi = closed_at[i] > hi ? closed_at[i] : hi;
        ck_assert_msg(sent[i] < sizeof req - 1, "a whole request went out");
    }
    ck_assert_msg(lo >= 0.8 && hi < 3.0, "slow connections closed between %.2f and %.2f s", lo, hi);
    ck_assert_msg(closed_at[idle] >= 1.8 && closed_at[idle] < 4.0, "idle connection closed at %.2f s",
                  closed_at[idle]);
    ck_assert_msg(got == 0, "slow clients were sent %zu bytes", got);
    for (int i = 0; i <= SLOW; i++)
        close(fds[i]);
    printf("test_abuse: %d slowloris connections closed %.2f-%.2f s after their first byte "
           "(request_timeout_ms 1000), an idle one at %.2f s (idle_timeout_ms 2000)\n",
           SLOW, lo, hi, closed_at[idle]);
    fflush(stdout);
    healthy();
    still_training(&step);
}
END_TEST

/* ------------------------------------------------------------------ */
/* pipelining                                                           */

START_TEST(pipelined)
{
    long step;
    start_with("", &step);
    char *reqs = xasprintf("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
                           "GET /jobs/%s HTTP/1.1\r\n\r\n"
                           "GET /nope HTTP/1.1\r\n\r\n"
                           "GET /jobs/missing HTTP/1.1\r\n\r\n"
                           "GET /status HTTP/1.1\r\n\r\n"
                           "GET /metrics HTTP/1.1\r\n\r\n"
                           "GET /jobs?state=bogus HTTP/1.1\r\n\r\n"
                           "DELETE /healthz HTTP/1.1\r\n\r\n"
                           "HEAD /healthz HTTP/1.1\r\n\r\n"
                           "GET /jobs/%s/metrics?max=2 HTTP/1.1\r\n\r\n",
                           g_job, g_job);
    int fd = tl_dial(g_d.addr);
    ck_assert(tl_send_all(fd, reqs, strlen(reqs)) == 0);   /* one write */
    free(reqs);
    tl_conn rb = {.fd = fd};
    static const int want[10] = {200, 200, 404, 404, 200, 200, 400, 405, 200, 200};
    for (int i = 0; i < 10; i++) {
        tl_resp r;
        int st = tl_conn_read(&rb, i == 8, 5000, &r);
        ck_assert_msg(st == want[i], "answer %d: %d, expected %d", i + 1, st, want[i]);
        switch (i) {
        case 0: ck_assert_str_eq(r.body, "{\"status\":\"ok\"}"); break;
        case 1: ck_assert_ptr_nonnull(strstr(r.body, "\"name\":\"steady\"")); break;
        case 2: ck_assert_str_eq(r.body, "{\"error\":\"not found\"}"); break;
        case 3: ck_assert_str_eq(r.body, "{\"error\":\"no such job\"}"); break;
        case 4: ck_assert_ptr_nonnull(strstr(r.body, "\"uptime_s\"")); break;
        case 5: ck_assert_ptr_nonnull(strstr(r.body, "traind_up")); break;
        case 6: ck_assert_ptr_nonnull(strstr(r.body, "state must be one of")); break;
        case 7: ck_assert_str_eq(header(&r, "Allow"), "GET, HEAD"); break;
        case 8: ck_assert_uint_eq(r.len, 0); break;
        case 9: ck_assert_ptr_nonnull(strstr(r.body, "\"points\"")); break;
        }
        tl_resp_free(&r);
    }
    /* the connection stays usable */
    SEND(fd, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    tl_resp r;
    ck_assert_int_eq(tl_conn_read(&rb, false, 5000, &r), 200);
    tl_resp_free(&r);
    ck_assert(tl_closed_within(fd, 3000, NULL));
    free(rb.p);
    close(fd);
    healthy();
    still_training(&step);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Content-Length lies, chunked bodies                                  */

START_TEST(lying_content_length)
{
    long step;
    start_with("request_timeout_ms: 1000\nidle_timeout_ms: 5000\n", &step);
    int jobs0 = jobs_on_disk();
    char cfg[512];
    snprintf(cfg, sizeof cfg, WAITER_FMT, "liar");

    /* shorter than announced: the request never completes; closed by the
     * request timeout, nothing submitted */
    char *req = xasprintf("POST /jobs HTTP/1.1\r\nAuthorization: Bearer %s\r\nContent-Length: 500\r\n\r\n%.40s",
                          g_d.token, cfg);
    int fd = tl_dial(g_d.addr);
    double t0 = tl_now();
    ck_assert(tl_send_all(fd, req, strlen(req)) == 0);
    free(req);
    size_t got = 0;
    ck_assert(tl_closed_within(fd, 5000, &got));
    double dt = tl_now() - t0;
    close(fd);
    ck_assert_msg(dt >= 0.8 && dt < 3.0, "short body closed after %.2f s", dt);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(jobs_on_disk(), jobs0);

    /* longer than announced: the rest is the next request, garbage → 400, closed */
    static const char get_more[] = "GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloXYZZY / HTTP/1.1\r\n\r\n";
    fd = tl_dial(g_d.addr);
    ck_assert(tl_send_all(fd, get_more, sizeof get_more - 1) == 0);
    tl_conn rb = {.fd = fd};
    tl_resp r;
    ck_assert_int_eq(tl_conn_read(&rb, false, 5000, &r), 200);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_conn_read(&rb, false, 5000, &r), 400);
    ck_assert_str_eq(header(&r, "Connection"), "close");
    tl_resp_free(&r);
    ck_assert(tl_closed_within(fd, 5000, NULL));
    free(rb.p);
    close(fd);

    /* a POST whose body is followed by junk: the job is exactly the announced bytes */
    req = xasprintf("POST /jobs HTTP/1.1\r\nAuthorization: Bearer %s\r\nContent-Length: %zu\r\n\r\n%s"
                    "model: {type: gpt}\r\n\r\n",
                    g_d.token, strlen(cfg), cfg);
    fd = tl_dial(g_d.addr);
    ck_assert(tl_send_all(fd, req, strlen(req)) == 0);
    free(req);
    rb = (tl_conn){.fd = fd};
    ck_assert_int_eq(tl_conn_read(&rb, false, 5000, &r), 201);
    ck_assert_str_eq(r.body, "{\"id\":\"liar\"}");
    tl_resp_free(&r);
    ck_assert_int_eq(tl_conn_read(&rb, false, 5000, &r), 400);
    tl_resp_free(&r);
    free(rb.p);
    close(fd);
    char *path = xasprintf("%s/spool/jobs/liar/config.yaml", g_dir);
    double deadline = tl_now() + 5;
    char *saved;
    while (!(saved = tl_read(path, NULL)) && tl_now() < deadline)
        tl_sleep_ms(20);
    ck_assert_ptr_nonnull(saved);
    ck_assert_str_eq(saved, cfg);
    free(saved);
    free(path);
    ck_assert_int_eq(jobs_on_disk(), jobs0 + 1);

    /* two Content-Lengths, or one with Transfer-Encoding: refused (no smuggling) */
    static const char two_cl[] = "POST /jobs HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    ck_assert_int_eq(tl_oneshot(g_d.addr, two_cl, sizeof two_cl - 1, false, &r), 400);
    tl_resp_free(&r);
    static const char cl_te[] = "POST /jobs HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "5\r\nhello\r\n0\r\n\r\n";
    ck_assert_int_eq(tl_oneshot(g_d.addr, cl_te, sizeof cl_te - 1, false, &r), 400);
    tl_resp_free(&r);
    /* a Content-Length over 1 MiB is refused before any of the body is read */
    static const char huge[] = "POST /jobs HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n";
    ck_assert_int_eq(tl_oneshot(g_d.addr, huge, sizeof huge - 1, false, &r), 413);
    tl_resp_free(&r);
    ck_assert_int_eq(jobs_on_disk(), jobs0 + 1);
    healthy();
    still_training(&step);
}
END_TEST

START_TEST(chunked_bodies)
{
    long step;
    start_with("", &step);
    char cfg[512];
    snprintf(cfg, sizeof cfg, WAITER_FMT, "chunky");
    size_t n = strlen(cfg), a = n / 3, b = n / 3;
    char *req = xasprintf("POST /jobs HTTP/1.1\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "%zx\r\n%.*s\r\n%zx;ext=1\r\n%.*s\r\n%zx\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n",
                          g_d.token, a, (int)a, cfg, b, (int)b, cfg + a, n - a - b, cfg + a + b);
    tl_resp r;
    ck_assert_int_eq(tl_oneshot(g_d.addr, req, strlen(req), false, &r), 201);
    ck_assert_str_eq(r.body, "{\"id\":\"chunky\"}");
    tl_resp_free(&r);
    free(req);
    char *path = xasprintf("%s/spool/jobs/chunky/config.yaml", g_dir);
    double deadline = tl_now() + 5;
    char *saved;
    while (!(saved = tl_read(path, NULL)) && tl_now() < deadline)
        tl_sleep_ms(20);
    ck_assert_ptr_nonnull(saved);
    ck_assert_str_eq(saved, cfg);
    free(saved);
    free(path);

    int jobs0 = jobs_on_disk();
    /* a bad chunk size */
    static const char bad[] = "POST /jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    ck_assert_int_eq(tl_oneshot(g_d.addr, bad, sizeof bad - 1, false, &r), 400);
    tl_resp_free(&r);
    /* chunks adding up to more than 1 MiB: 413, whatever each chunk says */
    size_t chunk = 256 * 1024;
    char *big = xmalloc(chunk);
    memset(big, '#', chunk);
    int fd = tl_dial(g_d.addr);
    char *head = xasprintf("POST /jobs HTTP/1.1\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n",
                           g_d.token);
    ck_assert(tl_send_all(fd, head, strlen(head)) == 0);
    free(head);
    char sz[32];
    snprintf(sz, sizeof sz, "%zx\r\n", chunk);
    for (int i = 0; i < 5; i++) {
        if (tl_send_all(fd, sz, strlen(sz)) != 0 || tl_send_all(fd, big, chunk) != 0 ||
            tl_send_all(fd, "\r\n", 2) != 0)
            break;   /* the server may close as soon as it has answered */
    }
    free(big);
    tl_conn rb = {.fd = fd};
    ck_assert_int_eq(tl_conn_read(&rb, false, 5000, &r), 413);
    tl_resp_free(&r);
    free(rb.p);
    close(fd);
    ck_assert_int_eq(jobs_on_disk(), jobs0);
    healthy();
    still_training(&step);
}
END_TEST

/* ------------------------------------------------------------------ */
/* hostile paths                                                        */

START_TEST(invalid_utf8_paths)
{
    long step;
    start_with("", &step);
    static const char *const paths[] = {
        "/jobs/%C3%28", "/jobs/%FF%FE", "/jobs/%ED%A0%80", "/jobs/%C0%AF", "/jobs/%F4%90%80%80",
        "/jobs/%C3%A9t%C3%A9", "/jobs/%E2%82", "/jobs/%", "/jobs/%zz", "/jobs/%C3%28/metrics",
        "/jobs/\xff\xfe", "/\xc3\x28", "/jobs/\xc3\xa9t\xc3\xa9", "/%FF", "/jobs/%00",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char *req = xasprintf("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", paths[i]);
        tl_resp r;
        int st = tl_oneshot(g_d.addr, req, strlen(req), false, &r);
        ck_assert_msg(st == 404 || st == 400, "GET %s: %d", paths[i], st);
        cJSON *o = r.len ? cJSON_Parse(r.body) : NULL;
        ck_assert_msg(o != NULL, "GET %s: not JSON", paths[i]);
        cJSON_Delete(o);
        tl_resp_free(&r);
        free(req);
    }
    healthy();
    still_training(&step);
}
END_TEST

START_TEST(traversal_ids)
{
    long step;
    start_with("write_rate_per_client: 0\n", &step);
    /* something outside the spool that a traversal would reach */
    char *outside = xasprintf("%s/outside", g_dir);
    ck_assert_int_eq(mkdir(outside, 0755), 0);
    char *sentinel = xasprintf("%s/sentinel", outside);
    ck_assert_int_eq(tl_write(sentinel, "keep me\n"), 0);
    struct stat st0;
    ck_assert_int_eq(stat(sentinel, &st0), 0);
    int top0 = count_entries(g_dir), out0 = count_entries(outside), jobs0 = jobs_on_disk();

    static const char *const gets[] = {
        "/jobs/..%2f..%2fetc",
        "/jobs/%2e%2e",
        "/jobs/a%00b",
        "/jobs/..",
        "/jobs/.",
        "/jobs/%2e",
        "/jobs/..%2F..%2Foutside%2Fsentinel",
        "/jobs/%2e%2e%2f%2e%2e%2foutside%2fsentinel",
        "/jobs/%2e%2e/log",
        "/jobs/%2e%2e/metrics",
        "/jobs/..%2f..%2foutside/log",
        "/jobs/%252e%252e",
        "/jobs/../../outside/sentinel",
        "/jobs/steady%2f..%2f..%2f..%2foutside",
        "/jobs/%5c..%5c..%5coutside",
        "/jobs/.steady",
        "/../../outside/sentinel",
    };
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
        char *req = xasprintf("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", gets[i]);
        tl_resp r;
        int st = tl_oneshot(g_d.addr, req, strlen(req), false, &r);
        ck_assert_msg(st == 404, "GET %s: %d %s", gets[i], st, r.body ? r.body : "");
        tl_resp_free(&r);
        free(req);
    }
    static const char *const cancels[] = {
        "/jobs/..%2f..%2foutside/cancel", "/jobs/%2e%2e/cancel", "/jobs/a%00b/cancel",
        "/jobs/..%2F..%2F..%2Fetc%2Fpasswd/cancel",
    };
    for (size_t i = 0; i < sizeof cancels / sizeof cancels[0]; i++) {
        tl_resp r;
        ck_assert_int_eq(tl_http(g_d.addr, "POST", cancels[i], g_d.token, NULL, 0, &r), 0);
        ck_assert_msg(r.status == 404, "POST %s: %d", cancels[i], r.status);
        tl_resp_free(&r);
    }
    /* a name that tries to leave jobs/ is made a plain id inside it */
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "model: {type: linear, input_dim: 4, output_dim: 2}\n"
             "schedule: {type: constant, total_steps: 100}\n");
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/jobs?name=..%2F..%2Foutside%2Fpwned", g_d.token, cfg,
                             strlen(cfg), &r),
                     0);
    ck_assert_int_eq(r.status, 201);
    cJSON *o = cJSON_Parse(r.body);
    const char *id = tl_str(o, "id");
    ck_assert_ptr_nonnull(id);
    ck_assert_ptr_null(strchr(id, '/'));
    ck_assert(id[0] != '.');
    char *jd = xasprintf("%s/spool/jobs/%s", g_dir, id);
    struct stat st;
    ck_assert_int_eq(stat(jd, &st), 0);
    free(jd);
    cJSON_Delete(o);
    tl_resp_free(&r);

    /* nothing outside the spool was touched */
    struct stat st1;
    ck_assert_int_eq(stat(sentinel, &st1), 0);
    ck_assert(st1.st_mtim.tv_sec == st0.st_mtim.tv_sec && st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec);
    char *text = tl_read(sentinel, NULL);
    ck_assert_str_eq(text, "keep me\n");
    free(text);
    ck_assert_int_eq(count_entries(g_dir), top0);
    ck_assert_int_eq(count_entries(outside), out0);
    ck_assert_int_eq(jobs_on_disk(), jobs0 + 1);
    free(sentinel);
    free(outside);
    healthy();
    still_training(&step);
}
END_TEST

/* ------------------------------------------------------------------ */
/* the limits                                                           */

START_TEST(post_flood_over_queue_cap)
{
    long step;
    start_with("max_queued_jobs: 20\nwrite_rate_per_client: 0\n", &step);
    int jobs0 = jobs_on_disk();
    int ok = 0, full = 0;
    char first[128] = "";
    /* the flood, over keep-alive connections, as fast as they go */
    int fd = tl_dial(g_d.addr);
    tl_conn rb = {.fd = fd};
    for (int i = 0; i < 200; i++) {
        char cfg[512], name[32];
        snprintf(name, sizeof name, "flood-%d", i);
        snprintf(cfg, sizeof cfg, WAITER_FMT, name);
        char *req = xasprintf("POST /jobs HTTP/1.1\r\nAuthorization: Bearer %s\r\nContent-Length: %zu\r\n\r\n%s",
                              g_d.token, strlen(cfg), cfg);
        ck_assert(tl_send_all(fd, req, strlen(req)) == 0);
        free(req);
        tl_resp r;
        int st = tl_conn_read(&rb, false, 5000, &r);
        if (st == 201) {
            ok++;
            if (!first[0])
                snprintf(first, sizeof first, "%s", name);
        } else {
            ck_assert_msg(st == 429, "POST %d: %d", i, st);
            ck_assert_str_eq(r.body, "{\"error\":\"the queue is full (20 jobs waiting); try again later\"}");
            ck_assert_str_eq(header(&r, "Retry-After"), "5");
            full++;
        }
        tl_resp_free(&r);
    }
    free(rb.p);
    close(fd);
    ck_assert_int_eq(ok, 20);
    ck_assert_int_eq(full, 180);
    ck_assert_int_eq(jobs_on_disk(), jobs0 + 20);   /* nothing was made for the refused ones */
    /* the earlier jobs are as they were: queued, in order */
    int st;
    cJSON *q = tl_get_json(g_d.addr, "/jobs?state=queued", &st);
    ck_assert_int_eq(cJSON_GetArraySize(q), 20);
    cJSON *oldest = cJSON_GetArrayItem(q, 19);   /* newest first */
    ck_assert_str_eq(tl_str(oldest, "id"), first);
    ck_assert_int_eq((int)tl_num(oldest, "queue_position"), 1);
    cJSON_Delete(q);
    still_training(&step);

    /* files dropped in incoming/ meanwhile stay there, untouched */
    char *inc = xasprintf("%s/spool/incoming", g_dir);
    for (int i = 0; i < 3; i++) {
        char cfg[512], name[32];
        snprintf(name, sizeof name, "dropped-%d", i);
        snprintf(cfg, sizeof cfg, WAITER_FMT, name);
        char *tmp = xasprintf("%s/spool/%s.tmp", g_dir, name);
        char *dst = xasprintf("%s/%s.yaml", inc, name);
        ck_assert_int_eq(tl_write(tmp, cfg), 0);
        ck_assert_int_eq(rename(tmp, dst), 0);
        free(tmp);
        free(dst);
        tl_sleep_ms(20);   /* distinct mtimes: taken in this order */
    }
    tl_sleep_ms(2600);   /* past the rescan every 2 s */
    ck_assert_int_eq(count_entries(inc), 3);
    ck_assert_int_eq(jobs_on_disk(), jobs0 + 20);
    ck_assert_int_eq(tl_log_count(&g_d, "the job queue is full"), 1);

    /* room frees up: the files are taken, oldest first */
    char *path = xasprintf("/jobs/%s/cancel", first);
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", path, g_d.token, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 202);
    tl_resp_free(&r);
    free(path);
    double deadline = tl_now() + 5;
    while (count_entries(inc) > 2 && tl_now() < deadline)
        tl_sleep_ms(20);
    ck_assert_int_eq(count_entries(inc), 2);
    char *taken = xasprintf("%s/spool/jobs/dropped-0/config.yaml", g_dir);
    struct stat sb;
    ck_assert_int_eq(stat(taken, &sb), 0);
    free(taken);
    /* still full: a POST is refused again */
    char cfg[512];
    snprintf(cfg, sizeof cfg, WAITER_FMT, "late");
    ck_assert_int_eq(post_job(cfg, NULL, 0), 429);
    /* SIGHUP with a bigger queue: the rest comes in */
    char *cfgpath = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(cfgpath, "max_queued_jobs: 30\nwrite_rate_per_client: 0\n"), 0);
    free(cfgpath);
    kill(g_d.pid, SIGHUP);
    deadline = tl_now() + 5;
    while (count_entries(inc) > 0 && tl_now() < deadline)
        tl_sleep_ms(20);
    ck_assert_int_eq(count_entries(inc), 0);
    ck_assert_int_eq(post_job(cfg, NULL, 0), 201);
    ck_assert_int_eq(tl_log_count(&g_d, "the job queue is full"), 1);   /* warned once */
    free(inc);
    healthy();
    still_training(&step);
}
END_TEST

START_TEST(write_rate_limit)
{
    long step;
    start_with("write_rate_per_client: 5\nwrite_burst_per_client: 10\n", &step);
    /* cheap writes: cancels of a job that does not exist (404 when allowed) */
    int fd = tl_dial(g_d.addr);
    tl_conn rb = {.fd = fd};
    char *req = xasprintf("POST /jobs/nope/cancel HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n", g_d.token);
    int allowed = 0, limited = 0;
    double t0 = tl_now();
    for (int i = 0; i < 40; i++) {
        ck_assert(tl_send_all(fd, req, strlen(req)) == 0);
        tl_resp r;
        int st = tl_conn_read(&rb, false, 5000, &r);
        if (st == 404) {
            allowed++;
        } else {
            ck_assert_msg(st == 429, "write %d: %d", i, st);
            ck_assert_str_eq(r.body, "{\"error\":\"too many requests from 127.0.0.1: limit is 5 writes/s\"}");
            const char *ra = header(&r, "Retry-After");
            ck_assert_ptr_nonnull(ra);
            ck_assert_int_ge(atoi(ra), 1);
            limited++;
        }
        tl_resp_free(&r);
    }
    double dt = tl_now() - t0;
    /* the burst (less the POST of the steady job), plus what the rate refilled meanwhile */
    ck_assert_msg(allowed >= 9 && allowed <= 9 + (int)(dt * 5) + 1, "%d allowed in %.2f s", allowed, dt);
    ck_assert_int_eq(allowed + limited, 40);
    /* reads are never limited */
    for (int i = 0; i < 50; i++) {
        SEND(fd, "GET /healthz HTTP/1.1\r\n\r\n");
        tl_resp r;
        ck_assert_int_eq(tl_conn_read(&rb, false, 5000, &r), 200);
        tl_resp_free(&r);
    }
    /* a token comes back every 1/rate s */
    tl_sleep_ms(450);
    ck_assert(tl_send_all(fd, req, strlen(req)) == 0);
    tl_resp r;
    ck_assert_int_eq(tl_conn_read(&rb, false, 5000, &r), 404);
    tl_resp_free(&r);
    /* SIGHUP to rate 0: no limit */
    char *cfgpath = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(cfgpath, "write_rate_per_client: 0\n"), 0);
    free(cfgpath);
    kill(g_d.pid, SIGHUP);
    double deadline = tl_now() + 5;
    while (tl_log_count(&g_d, "SIGHUP: limits:") < 1 && tl_now() < deadline)
        tl_sleep_ms(20);
    for (int i = 0; i < 60; i++) {
        ck_assert(tl_send_all(fd, req, strlen(req)) == 0);
        ck_assert_int_eq(tl_conn_read(&rb, false, 5000, &r), 404);
        tl_resp_free(&r);
    }
    free(req);
    free(rb.p);
    close(fd);
    printf("test_abuse: write_rate_per_client 5, burst 10: %d of 40 writes allowed in %.2f s, %d answered 429\n",
           allowed, dt, limited);
    fflush(stdout);
    healthy();
    still_training(&step);
}
END_TEST

/* about 16 MiB: 1024×1024 weights with grads and AdamW's m and v */
static const char BIG_MODEL[] =
    "name: big\n"
    "model: {type: mlp, input_dim: 1024, hidden: [1024], output_dim: 1024}\n"
    "data: {kind: synthetic, batch_size: 4}\n"
    "schedule: {type: constant, total_steps: 10}\n";

START_TEST(model_memory_limit)
{
    long step;
    start_with("max_model_memory: 4M\n", &step);
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/jobs", g_d.token, BIG_MODEL, strlen(BIG_MODEL), &r), 0);
    ck_assert_int_eq(r.status, 400);
    cJSON *o = cJSON_Parse(r.body);
    cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "errors"), 0);
    ck_assert_str_eq(tl_str(e, "path"), "model");
    const char *msg = tl_str(e, "message");
    ck_assert_msg(strstr(msg, "model needs about ") && strstr(msg, "more than the 4.0 MiB allowed"), "%s", msg);
    cJSON_Delete(o);
    tl_resp_free(&r);
    /* the same through incoming/ */
    char *tmp = xasprintf("%s/spool/big.tmp", g_dir);
    char *dst = xasprintf("%s/spool/incoming/big2.yaml", g_dir);
    ck_assert_int_eq(tl_write(tmp, BIG_MODEL), 0);
    ck_assert_int_eq(rename(tmp, dst), 0);
    free(tmp);
    free(dst);
    cJSON *j = tl_wait_job(g_d.addr, "big2", tl_job_in_state, "rejected", 10);
    ck_assert_ptr_nonnull(j);
    char *errs = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "errors"));
    ck_assert_msg(strstr(errs, "4.0 MiB allowed") != NULL, "%s", errs);
    free(errs);
    cJSON_Delete(j);
    /* SIGHUP raises the limit: the same config is accepted */
    char *cfgpath = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(cfgpath, "max_model_memory: 1G\n"), 0);
    free(cfgpath);
    kill(g_d.pid, SIGHUP);
    double deadline = tl_now() + 5;
    while (tl_log_count(&g_d, "SIGHUP: limits:") < 1 && tl_now() < deadline)
        tl_sleep_ms(20);
    ck_assert_int_eq(post_job(BIG_MODEL, NULL, 0), 201);
    healthy();
    still_training(&step);
}
END_TEST

START_TEST(metrics_keep_enforced)
{
    long step;
    start_with("metrics_keep: 10\nmax_queued_jobs: 5\n", &step);
    /* cancel the steady job so that this one runs at once */
    char *path = xasprintf("/jobs/%s/cancel", g_job);
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", path, g_d.token, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 202);
    tl_resp_free(&r);
    free(path);
    static const char many_points[] =
        "name: chatty\n"
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "data: {kind: synthetic, batch_size: 4}\n"
        "schedule: {type: constant, total_steps: 2000}\n"
        "train: {log_every: 1, checkpoint_every: 100000}\n";
    char id[128];
    ck_assert_int_eq(post_job(many_points, id, sizeof id), 201);
    cJSON *j = tl_wait_job(g_d.addr, id, tl_job_in_state, "succeeded", 30);
    ck_assert_ptr_nonnull(j);
    cJSON_Delete(j);
    path = xasprintf("/jobs/%s/metrics", id);
    int st;
    cJSON *m = tl_get_json(g_d.addr, path, &st);
    free(path);
    ck_assert_int_eq(st, 200);
    cJSON *pts = cJSON_GetObjectItem(m, "points");
    int n = cJSON_GetArraySize(pts);
    ck_assert_msg(n >= 2 && n <= 10, "%d points kept, metrics_keep 10", n);
    ck_assert_int_eq((int)tl_num(cJSON_GetArrayItem(pts, n - 1), "step"), 2000);
    for (int i = 1; i < n; i++)
        ck_assert_int_gt((int)tl_num(cJSON_GetArrayItem(pts, i), "step"),
                         (int)tl_num(cJSON_GetArrayItem(pts, i - 1), "step"));
    cJSON_Delete(m);
    /* metrics.jsonl on disk: once the job has ended, thinned to
     * metrics_keep lines too (history must not grow without
     * bound), the last step kept */
    char *file = xasprintf("%s/spool/jobs/%s/metrics.jsonl", g_dir, id);
    int lines = 0;
    char *text = NULL;
    for (double end = tl_now() + 10; tl_now() < end; tl_sleep_ms(50)) {
        free(text);
        text = tl_read(file, NULL);
        ck_assert_ptr_nonnull(text);
        lines = 0;
        for (const char *p = text; *p; p++)
            lines += *p == '\n';
        if (lines == 10)
            break;
    }
    ck_assert_int_eq(lines, 10);
    ck_assert_ptr_nonnull(strstr(text, "{\"step\":2000,"));
    free(text);
    free(file);
    healthy();
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *suite(void)
{
    Suite *s = suite_create("abuse");
    TCase *tc = tcase_create("http");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, thousand_connections);
    tcase_add_test(tc, slowloris);
    tcase_add_test(tc, pipelined);
    tcase_add_test(tc, lying_content_length);
    tcase_add_test(tc, chunked_bodies);
    tcase_add_test(tc, invalid_utf8_paths);
    tcase_add_test(tc, traversal_ids);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("limits");
    tcase_add_checked_fixture(tl, setup, teardown);
    tcase_set_timeout(tl, 60);
    tcase_add_test(tl, post_flood_over_queue_cap);
    tcase_add_test(tl, write_rate_limit);
    tcase_add_test(tl, model_memory_limit);
    tcase_add_test(tl, metrics_keep_enforced);
    suite_add_tcase(s, tl);
    return s;
}

int main(void)
{
    /* 1,000 connections need 1,000 descriptors here and in the daemon (which
     * inherits the limit and raises its own as far as it may) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = 4096;
        if (rl.rlim_cur < want) {
            rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1200) {
            g_nconns = (int)rl.rlim_cur - 200;
            printf("test_abuse: RLIMIT_NOFILE is %llu (hard limit): holding %d connections instead of 1000\n",
                   (unsigned long long)rl.rlim_cur, g_nconns);
        }
    }
    signal(SIGPIPE, SIG_IGN);
    int failed = tl_run_suite(suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

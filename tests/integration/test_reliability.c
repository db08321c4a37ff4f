/*
 * test_reliability — against the real traind ($TRAIND_BUILD/traind):
 *
 *   loop     no request stalls the event loop: /healthz stays fast while 40
 *            heavy requests (a long metrics history, thousands of jobs) run;
 *            GET /jobs and metrics answer in bounded pages; SIGHUP with a
 *            FIFO as the config or the token does not block
 *   spool    one daemon per spool; FIFOs, symlinks and devices planted as a
 *            job's files or as incoming/ are refused, never opened blocking;
 *            files written into incoming/ in pieces are taken whole
 *   durable  what traind acknowledges it keeps: cancel, Idempotency-Key,
 *            disk full, per-job disk limit, restart with a long history
 *   access   who may do what: rate limit, ids, Host, error texts, trainctl
 *   small    the smaller items of the issue
 *
 * Figures (the loop's worst stall, restart times) are printed on stderr.
 */
#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/config.h"
#include "traind/json.h"
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
    "train: {log_every: 1000, checkpoint_every: 2000}\n";

static const char SMALL_FMT[] =
    "name: %s\n"
    "model: {type: linear, input_dim: 4, output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 4}\n"
    "optimizer: {lr: 0.01}\n"
    "schedule: {type: constant, total_steps: 100}\n";

static char *g_dir;
static tl_daemon g_d;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-rel");
}

static void teardown(void)
{
    tl_stop_clean(&g_d, 30);
    tl_fixture_end(&g_dir, &g_d);
}

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static char *spool_path(const char *rel)
{
    return xasprintf("%s/spool%s%s", g_dir, *rel ? "/" : "", rel);
}

/* Seconds one GET /healthz takes (fails the test when it does not answer 200). */
static double healthz_s(void)
{
    double t0 = tl_now();
    tl_resp r;
    tl_http(g_d.addr, "GET", "/healthz", NULL, NULL, 0, &r);
    double dt = tl_now() - t0;
    ck_assert_msg(r.status == 200, "/healthz: %d", r.status);
    tl_resp_free(&r);
    return dt;
}

static void assert_healthy(double within_s)
{
    double dt = healthz_s();
    ck_assert_msg(dt < within_s, "/healthz took %.3f s", dt);
}

static char *fmt(const char *f, const char *name)
{
    return xasprintf(f, name);
}

/* The headers and body of one raw GET (Connection: close). */
static void raw_get(const char *target, const char *extra_headers, tl_resp *out)
{
    char *req = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n", target,
                          extra_headers ? extra_headers : "");
    tl_http_raw(g_d.addr, req, strlen(req), 10000, out);
    free(req);
}

/* ------------------------------------------------------------------ */
/* a spool made on disk: finished jobs and a long history               */

/* The config object of a small job (what status.json holds). */
static char *config_json(const char *name)
{
    char *text = fmt(SMALL_FMT, name);
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(text, strlen(text), NULL, &cfg, &errs), 0);
    cJSON *o = cfg_to_json(&cfg);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cfg_free(&cfg);
    diag_free(&errs);
    free(text);
    return s;
}

/* jobs/<id>/ with config.yaml and the status.json of a finished job. */
static void make_finished_job(const char *id, unsigned long seq, long steps, const char *cfg_json)
{
    char *dir = spool_path("jobs");
    char *jd = xasprintf("%s/%s", dir, id);
    mkdir_p(jd, 0755);
    char *p = xasprintf("%s/config.yaml", jd);
    char *text = fmt(SMALL_FMT, id);
    ck_assert_int_eq(tl_write(p, text), 0);
    free(p);
    free(text);
    p = xasprintf("%s/status.json", jd);
    text = xasprintf("{\"id\":\"%s\",\"name\":\"%s\",\"state\":\"succeeded\",\"step\":%ld,\"total_steps\":%ld,"
                     "\"lr\":0.01,\"loss\":0.5,\"loss_avg\":0.5,\"grad_norm\":0.1,\"submitted_at\":"
                     "\"2026-11-24T13:45:00Z\",\"started_at\":\"2026-11-24T13:45:01Z\",\"finished_at\":"
                     "\"2026-11-24T13:46:00Z\",\"restarts\":0,\"crashes\":0,\"checkpoint_step\":%ld,\"seq\":%lu,"
                     "\"errors\":[],\"config\":%s}",
                     id, id, steps, steps, steps, seq, cfg_json);
    ck_assert_int_eq(tl_write(p, text), 0);
    free(p);
    free(text);
    free(jd);
    free(dir);
}

/* jobs/<id>/metrics.jsonl with points at steps 1..n; returns its size. */
static long long make_history(const char *id, long n)
{
    char *p = xasprintf("%s/spool/jobs/%s/metrics.jsonl", g_dir, id);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    for (long s = 1; s <= n; s++)
        fprintf(f, "{\"step\":%ld,\"lr\":0.0010000000000000002,\"loss\":%.9g,\"loss_avg\":%.9g,"
                   "\"grad_norm\":0.41234567890123,\"time\":%.6f}\n",
                s, 1.0 / (double)s, 1.0 / (double)s, 0.001 * (double)s);
    long long size = ftell(f);
    fclose(f);
    free(p);
    return size;
}

/* Waits until the history of id is loaded up to step last. */
static void wait_history(const char *id, long last, double timeout_s)
{
    char *path = xasprintf("/jobs/%s/metrics?max=1", id);
    double end = tl_now() + timeout_s;
    long got = -1;
    while (tl_now() < end) {
        cJSON *m = tl_get_json(g_d.addr, path, NULL);
        cJSON *pts = m ? cJSON_GetObjectItem(m, "points") : NULL;
        cJSON *p = pts ? cJSON_GetArrayItem(pts, 0) : NULL;
        got = p ? (long)tl_num(p, "step") : -1;
        cJSON_Delete(m);
        if (got == last)
            break;
        tl_sleep_ms(50);
    }
    free(path);
    ck_assert_msg(got == last, "history of %s loaded to step %ld, not %ld", id, got, last);
}

/* ------------------------------------------------------------------ */
/* §1 the loop                                                          */

#define N_HEAVY 40

typedef struct poller {
    volatile bool stop;
    double worst;
    int polls, failed;
} poller;

static void *poll_healthz(void *arg)
{
    poller *p = arg;
    while (!p->stop) {
        double t0 = tl_now();
        tl_resp r;
        tl_http(g_d.addr, "GET", "/healthz", NULL, NULL, 0, &r);
        double dt = tl_now() - t0;
        if (r.status != 200)
            p->failed++;   /* no answer in tl_http's time: dt is that long at least */
        tl_resp_free(&r);
        if (dt > p->worst)
            p->worst = dt;
        p->polls++;
        tl_sleep_ms(10);
    }
    return NULL;
}

/* Sends the heavy requests at once, reads every answer to its end; the
 * biggest answer's size in *biggest.  Returns the seconds it all took. */
static double heavy_round(const char *const *targets, size_t n_targets, size_t *biggest)
{
    int fds[N_HEAVY];
    size_t got[N_HEAVY] = {0};
    for (int i = 0; i < N_HEAVY; i++) {
        fds[i] = tl_dial(g_d.addr);
        ck_assert_int_ge(fds[i], 0);
        char *req = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                              targets[(size_t)i % n_targets]);
        ck_assert_int_eq(send(fds[i], req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
        free(req);
    }
    double t0 = tl_now();
    int open_n = N_HEAVY;
    static char buf[1 << 16];
    while (open_n > 0 && tl_now() - t0 < 120) {
        struct pollfd pf[N_HEAVY];
        for (int i = 0; i < N_HEAVY; i++)
            pf[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(pf, N_HEAVY, 1000) <= 0)
            continue;
        for (int i = 0; i < N_HEAVY; i++) {
            if (fds[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = recv(fds[i], buf, sizeof buf, 0);
            if (r > 0) {
                got[i] += (size_t)r;
                continue;
            }
            close(fds[i]);
            fds[i] = -1;
            pf[i].fd = -1;
            open_n--;
        }
    }
    *biggest = 0;
    for (int i = 0; i < N_HEAVY; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        if (got[i] > *biggest)
            *biggest = got[i];
    }
    return tl_now() - t0;
}

/* 2,000 finished jobs and one with a 100,000-point history; 40 requests for
 * whole lists and histories at once; /healthz meanwhile. */
START_TEST(healthz_fast_under_heavy_requests)
{
    char *cj = config_json("x");
    char id[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof id, "j%04d", i);
        make_finished_job(id, (unsigned long)i + 1, 100, cj);
    }
    make_finished_job("long", 3000, 100000, cj);
    free(cj);
    long long bytes = make_history("long", 100000);
    tl_start_in(&g_d, g_dir, NULL, 30);
    wait_history("long", 100000, 60);

    poller p = {0};
    pthread_t th;
    pthread_create(&th, NULL, poll_healthz, &p);
    tl_sleep_ms(100);
    static const char *const targets[] = {"/jobs/long/metrics", "/jobs", "/jobs/long/metrics?max=100000",
                                          "/jobs?limit=100000", "/status", "/metrics"};
    size_t biggest;
    double took = heavy_round(targets, sizeof targets / sizeof targets[0], &biggest);
    p.stop = true;
    pthread_join(th, NULL);
    fprintf(stderr, "loop: %d heavy requests (2,001 jobs, a %lld-byte history) took %.2f s, biggest answer "
                    "%zu bytes; /healthz worst %.1f ms over %d polls (%d unanswered)\n",
            N_HEAVY, bytes, took, biggest, p.worst * 1e3, p.polls, p.failed);
    ck_assert_msg(p.failed == 0, "/healthz went unanswered %d times", p.failed);
    ck_assert_msg(p.worst < 1.0, "/healthz took %.3f s while heavy requests ran", p.worst);
    ck_assert_msg(biggest < (4u << 20), "an answer of %zu bytes", biggest);
}
END_TEST

/* GET /jobs: default page, Link to the next, every job exactly once. */
/* GET /compare of ended jobs reads their metrics.jsonl on the thread pool:
 * sixteen 50,000-point histories per request, and /healthz stays quick. */
START_TEST(compare_reads_histories_off_the_loop)
{
    char *cj = config_json("x");
    static const char *const hs[] = {"h0", "h1", "h2", "h3"};
    for (int i = 0; i < 4; i++) {
        make_finished_job(hs[i], (unsigned long)i + 1, 50000, cj);
        make_history(hs[i], 50000);   /* 6.8 MB: read whole (under HIST_TAIL_BYTES) */
    }
    free(cj);
    tl_start_in(&g_d, g_dir, NULL, 30);
    for (int i = 0; i < 4; i++)
        wait_history(hs[i], 50000, 60);
    poller p = {0};
    pthread_t th;
    pthread_create(&th, NULL, poll_healthz, &p);
    tl_sleep_ms(100);
    const char *path = "/compare?max=500&ids=h0,h1,h2,h3,h0,h1,h2,h3,h0,h1,h2,h3,h0,h1,h2,h3";
    double t0 = tl_now();
    /* one request: before, its 16 reads held the loop 0.7-2 s */
    int st;
    cJSON *o = tl_get_json(g_d.addr, path, &st);
    ck_assert_int_eq(st, 200);
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(o, "jobs");
    ck_assert_int_eq(cJSON_GetArraySize(jobs), 16);
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs) {
        ck_assert_msg(tl_num(j, "points") == 50000, "%s: %g points", tl_str(j, "id"), tl_num(j, "points"));
        ck_assert_double_eq_tol(tl_num(j, "final_loss"), 1.0 / 50000, 1e-10);   /* a float32 loss */
    }
    cJSON_Delete(o);
    double took = tl_now() - t0;
    p.stop = true;
    pthread_join(th, NULL);
    fprintf(stderr, "compare: a request of 16 ended jobs' 50,000-point histories took %.2f s; /healthz worst "
                    "%.1f ms over %d polls\n", took, p.worst * 1e3, p.polls);
    ck_assert_msg(p.failed == 0, "/healthz went unanswered %d times", p.failed);
    ck_assert_msg(p.worst < 0.5, "/healthz took %.3f s while /compare ran", p.worst);
    /* an unknown id among them is still a 404 naming it */
    tl_resp r;
    tl_http(g_d.addr, "GET", "/compare?ids=h0,nosuch", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_msg(strstr(r.body, "nosuch"), "%s", r.body);
    tl_resp_free(&r);
}
END_TEST

START_TEST(jobs_paging)
{
    char *cj = config_json("x");
    char id[32];
    for (int i = 0; i < 1234; i++) {
        snprintf(id, sizeof id, "p%04d", i);
        make_finished_job(id, (unsigned long)i + 1, 100, cj);
    }
    free(cj);
    tl_start_in(&g_d, g_dir, NULL, 30);
    int st;
    cJSON *a = tl_get_json(g_d.addr, "/jobs", &st);
    ck_assert_int_eq(cJSON_GetArraySize(a), 100);   /* the default page */
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(a, 0), "id"), "p1233");   /* newest first */
    cJSON_Delete(a);
    a = tl_get_json(g_d.addr, "/jobs?limit=5000", &st);
    ck_assert_int_eq(cJSON_GetArraySize(a), 1000);   /* the most one page holds */
    cJSON_Delete(a);

    /* walk every page by the Link header */
    char *target = xstrdup("/jobs?limit=300");
    int seen = 0, pages = 0;
    long expect = 1233;
    while (target) {
        tl_resp r;
        raw_get(target, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        cJSON *page = cJSON_Parse(r.body);
        ck_assert_ptr_nonnull(page);
        const cJSON *j;
        cJSON_ArrayForEach(j, page)
        {
            snprintf(id, sizeof id, "p%04ld", expect--);
            ck_assert_str_eq(tl_str(j, "id"), id);
            seen++;
        }
        cJSON_Delete(page);
        char *link = tl_header(&r, "Link");
        free(target);
        target = NULL;
        if (link) {
            ck_assert_ptr_nonnull(strstr(link, "rel=\"next\""));
            target = xstrndup(link + 1, strcspn(link + 1, ">"));
        }
        free(link);
        tl_resp_free(&r);
        pages++;
    }
    ck_assert_int_eq(seen, 1234);
    ck_assert_int_eq(pages, 5);
    a = tl_get_json(g_d.addr, "/jobs?after=p0002&limit=10", &st);
    ck_assert_int_eq(cJSON_GetArraySize(a), 2);
    cJSON_Delete(a);
    tl_resp r;
    tl_http(g_d.addr, "GET", "/jobs?after=nosuch", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);
    tl_http(g_d.addr, "GET", "/jobs?limit=0", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);
}
END_TEST

/* GET /jobs/{id}/metrics: a default cap, a cursor, max= capped. */
START_TEST(metrics_paging)
{
    char *cj = config_json("x");
    make_finished_job("hist", 1, 25000, cj);
    free(cj);
    make_history("hist", 25000);
    tl_start_in(&g_d, g_dir, NULL, 30);
    wait_history("hist", 25000, 30);
    cJSON *m = tl_get_json(g_d.addr, "/jobs/hist/metrics", NULL);
    cJSON *pts = cJSON_GetObjectItem(m, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 1000);
    ck_assert_int_eq((long)tl_num(cJSON_GetArrayItem(pts, 0), "step"), 1);
    ck_assert_int_eq((long)tl_num(m, "next_since"), 1000);
    cJSON_Delete(m);
    /* follow the cursor to the end */
    long since = 0, total = 0, pages = 0;
    for (;;) {
        char *path = xasprintf("/jobs/hist/metrics?since=%ld&limit=10000", since);
        m = tl_get_json(g_d.addr, path, NULL);
        free(path);
        pts = cJSON_GetObjectItem(m, "points");
        ck_assert_int_eq((long)tl_num(cJSON_GetArrayItem(pts, 0), "step"), since + 1);
        total += cJSON_GetArraySize(pts);
        pages++;
        const cJSON *nx = cJSON_GetObjectItem(m, "next_since");
        bool more = cJSON_IsNumber(nx);
        if (more)
            since = (long)nx->valuedouble;
        cJSON_Delete(m);
        if (!more)
            break;
    }
    ck_assert_int_eq(total, 25000);
    ck_assert_int_eq(pages, 3);
    m = tl_get_json(g_d.addr, "/jobs/hist/metrics?max=1000000", NULL);
    pts = cJSON_GetObjectItem(m, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 10000);
    ck_assert_int_eq((long)tl_num(cJSON_GetArrayItem(pts, 9999), "step"), 25000);
    cJSON_Delete(m);
}
END_TEST

/* SIGHUP while traind.yaml, then the token, is a FIFO nobody writes. */
START_TEST(sighup_fifo_does_not_block)
{
    char *conf = xasprintf("%s/traind.yaml", g_dir);
    char *tok = xasprintf("%s/token", g_dir);
    char *text = xasprintf("api_token_file: %s\n", tok);
    ck_assert_int_eq(tl_write(conf, text), 0);
    free(text);
    const char *args[] = {"--config", conf, NULL};
    tl_start_in(&g_d, g_dir, args, 30);
    char *token = tl_read(tok, NULL);
    ck_assert_ptr_nonnull(token);
    token[strcspn(token, "\n")] = '\0';

    ck_assert_int_eq(unlink(conf), 0);
    ck_assert_int_eq(mkfifo(conf, 0644), 0);
    kill(g_d.pid, SIGHUP);
    tl_sleep_ms(300);
    assert_healthy(1.0);
    tl_assert_log(&g_d, "not a regular file", NULL, 5);

    /* the config back, the token a FIFO */
    ck_assert_int_eq(unlink(conf), 0);
    text = xasprintf("api_token_file: %s\nmax_jobs: 2\n", tok);
    ck_assert_int_eq(tl_write(conf, text), 0);
    free(text);
    ck_assert_int_eq(unlink(tok), 0);
    ck_assert_int_eq(mkfifo(tok, 0600), 0);
    kill(g_d.pid, SIGHUP);
    tl_sleep_ms(300);
    assert_healthy(1.0);
    tl_assert_log(&g_d, "cannot read the API token", NULL, 5);
    tl_assert_log(&g_d, "SIGHUP: max_jobs 2", NULL, 5);
    /* the old token still works */
    char *y = fmt(SMALL_FMT, "after-hup");
    tl_resp r;
    tl_http(g_d.addr, "POST", "/jobs", token, y, strlen(y), &r);
    ck_assert_int_eq(r.status, 201);
    tl_resp_free(&r);
    free(y);
    free(token);
    free(conf);
    free(tok);
}
END_TEST


/* ------------------------------------------------------------------ */
static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A second traind on the same spool exits at once and touches nothing. */
START_TEST(second_daemon_refused)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    char *id = tl_submit(&g_d, STEADY);
    cJSON *j = tl_wait_state(&g_d, id, "running", 60);
    double pid = tl_num(j, "pid");
    cJSON_Delete(j);
    char *addrf = spool_path("traind.addr");
    char *addr_before = tl_read(addrf, NULL);
    char *st_path = xasprintf("%s/spool/jobs/%s/status.json", g_dir, id);
    /* The API says running as soon as the daemon knows; status.json says so
     * once its write (fsync included) is done, which on a loaded CI disk
     * can be seconds later: wait for the disk before comparing with it. */
    char *status = NULL;
    for (double until = tl_now() + 30; tl_now() < until; tl_sleep_ms(20)) {
        free(status);
        status = tl_read(st_path, NULL);
        if (status && strstr(status, "\"state\":\"running\""))
            break;
    }
    ck_assert_msg(status && strstr(status, "\"state\":\"running\""), "%s never said running: %s", st_path,
                  status ? status : "(unreadable)");
    free(status);

    char *blog = xasprintf("%s/second.log", g_dir);
    char *sp = spool_path("");
    const char *argv[] = {tl_traind_path(), "--spool", sp, "--listen", "127.0.0.1:0", NULL};
    double t0 = tl_now();
    int rc = tl_run(argv, blog, 10);
    double dt = tl_now() - t0;
    ck_assert_msg(rc == 1, "the second daemon exited %d", rc);
    ck_assert_msg(dt < 5, "the second daemon took %.1f s to give up", dt);
    char *text = tl_read(blog, NULL);
    ck_assert_msg(text && strstr(text, "is using the spool"), "second daemon said: %s", text ? text : "");
    ck_assert_msg(!strstr(text, "was running"), "the second daemon touched jobs: %s", text);
    free(text);

    /* the first one's job, address and status file are as they were */
    char *addr_after = tl_read(addrf, NULL);
    ck_assert_str_eq(addr_after, addr_before);
    status = tl_read(st_path, NULL);
    ck_assert_msg(status && strstr(status, "\"state\":\"running\""), "after the second daemon, %s: %s", st_path,
                  status ? status : "(unreadable)");
    j = tl_get_json(g_d.addr, "/jobs/steady", NULL);
    ck_assert_str_eq(tl_str(j, "state"), "running");
    ck_assert(tl_num(j, "pid") == pid);
    cJSON_Delete(j);
    assert_healthy(1.0);
    free(status);
    free(addr_after);
    free(addr_before);
    free(addrf);
    free(st_path);
    free(blog);
    free(sp);
    free(id);
}
END_TEST

/* FIFOs, a device and symlinks planted as job files, as a job directory and
 * in incoming/: refused with a log line, never opened blocking or followed. */
START_TEST(foreign_objects_refused)
{
    char *cj = config_json("x");
    char *p;
    /* a job whose only file, config.yaml, is a FIFO (rebuilt at start-up) */
    p = spool_path("jobs/fifocfg");
    mkdir_p(p, 0755);
    free(p);
    p = spool_path("jobs/fifocfg/config.yaml");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    free(p);
    /* finished jobs whose history and log are FIFOs */
    make_finished_job("fifohist", 1, 100, cj);
    p = spool_path("jobs/fifohist/metrics.jsonl");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    free(p);
    make_finished_job("fifolog", 2, 100, cj);
    p = spool_path("jobs/fifolog/worker.log");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    free(p);
    /* a queued job whose config.yaml is a symlink */
    make_finished_job("lnk", 3, 100, cj);
    p = spool_path("jobs/lnk/status.json");
    char *st = tl_read(p, NULL);
    char *q = strstr(st, "\"succeeded\"");
    memcpy(q, "\"queued\"   ", 11);
    ck_assert_int_eq(tl_write(p, st), 0);
    free(st);
    free(p);
    char *outside = xasprintf("%s/outside", g_dir);
    mkdir_p(outside, 0755);
    char *ocfg = xasprintf("%s/secret.yaml", outside);
    char *y = fmt(SMALL_FMT, "secret");
    ck_assert_int_eq(tl_write(ocfg, y), 0);
    free(y);
    p = spool_path("jobs/lnk/config.yaml");
    unlink(p);
    ck_assert_int_eq(symlink(ocfg, p), 0);
    free(p);
    /* a job directory that is a symlink to a job elsewhere */
    char *odir = xasprintf("%s/outside/jobs", g_dir);
    mkdir_p(odir, 0755);
    make_finished_job("realjob", 4, 100, cj);
    char *from = spool_path("jobs/realjob"), *to = xasprintf("%s/realjob", odir);
    ck_assert_int_eq(rename(from, to), 0);
    p = spool_path("jobs/linkedjob");
    ck_assert_int_eq(symlink(to, p), 0);
    free(p);
    free(from);
    free(to);
    /* incoming/: a FIFO, a symlink, a device */
    p = spool_path("incoming");
    mkdir_p(p, 0755);
    free(p);
    p = spool_path("incoming/fifo.yaml");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    free(p);
    p = spool_path("incoming/link.yaml");
    ck_assert_int_eq(symlink(ocfg, p), 0);
    free(p);
    p = spool_path("incoming/dev.yaml");
    bool have_dev = mknod(p, S_IFCHR | 0644, makedev(1, 3)) == 0;
    free(p);
    free(cj);

    tl_start_in(&g_d, g_dir, NULL, 30);
    assert_healthy(1.0);
    cJSON *j = tl_wait_state(&g_d, "fifocfg", "failed", 10);
    cJSON_Delete(j);
    j = tl_wait_state(&g_d, "lnk", "failed", 10);
    char *text = cJSON_PrintUnformatted(j);
    ck_assert_msg(strstr(text, "not a regular file"), "lnk: %s", text);
    free(text);
    cJSON_Delete(j);
    tl_resp r;
    double t0 = tl_now();
    tl_http(g_d.addr, "GET", "/jobs/fifolog/log", NULL, NULL, 0, &r);
    ck_assert_msg(tl_now() - t0 < 2 && r.status == 500, "log of a FIFO: %d after %.1f s", r.status, tl_now() - t0);
    tl_resp_free(&r);
    int code;
    j = tl_get_json(g_d.addr, "/jobs/linkedjob", &code);
    ck_assert_int_eq(code, 404);
    cJSON_Delete(j);
    tl_assert_log(&g_d, "jobs/linkedjob: a symbolic link", NULL, 5);
    tl_assert_log(&g_d, "incoming/fifo.yaml: a FIFO", NULL, 5);
    tl_assert_log(&g_d, "incoming/link.yaml: a symbolic link", NULL, 5);
    if (have_dev)
        tl_assert_log(&g_d, "incoming/dev.yaml: not a regular file", NULL, 5);
    ck_assert(exists(ocfg));
    assert_healthy(1.0);
    /* and it still stops (teardown: SIGTERM within 30 s) */
    free(ocfg);
    free(outside);
    free(odir);
}
END_TEST

/* incoming/ a symlink: nothing is moved out of where it points. */
START_TEST(symlinked_incoming_refused)
{
    char *elsewhere = xasprintf("%s/elsewhere", g_dir);
    mkdir_p(elsewhere, 0755);
    char *victim = xasprintf("%s/victim.yaml", elsewhere);
    char *y = fmt(SMALL_FMT, "victim");
    ck_assert_int_eq(tl_write(victim, y), 0);
    free(y);
    char *sp = spool_path("");
    mkdir_p(sp, 0755);
    char *inc = spool_path("incoming");
    ck_assert_int_eq(symlink(elsewhere, inc), 0);
    tl_start_in(&g_d, g_dir, NULL, 30);
    tl_assert_log(&g_d, "symbolic link (never followed)", NULL, 10);
    tl_sleep_ms(2500);   /* a rescan or two */
    ck_assert_msg(exists(victim), "a file was moved out of incoming/'s target");
    int code;
    cJSON *j = tl_get_json(g_d.addr, "/jobs/victim", &code);
    ck_assert_int_eq(code, 404);
    cJSON_Delete(j);
    free(victim);
    free(elsewhere);
    free(sp);
    free(inc);
}
END_TEST

/* A config appended to incoming/NAME.yaml line by line is taken whole. */
START_TEST(incoming_taken_whole)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    static const char *const lines[] = {
        "name: pieces\n", "model: {type: linear, input_dim: 4, output_dim: 2}\n",
        "data: {kind: synthetic, batch_size: 4}\n", "optimizer: {lr: 0.01}\n",
        "schedule: {type: constant, total_steps: 7}\n",
    };
    char *p = spool_path("incoming/pieces.yaml");
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, lines[i], strlen(lines[i])), (ssize_t)strlen(lines[i]));
        close(fd);
        tl_sleep_ms(300);
    }
    cJSON *j = tl_wait_state(&g_d, "pieces", "succeeded", 30);
    ck_assert_int_eq((long)tl_num(j, "total_steps"), 7);
    cJSON_Delete(j);
    free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* §3 what traind acknowledges, it keeps                               */

static void restart(void)
{
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 30);
}

/* A cancel answered 202, then traind killed before the job's process could
 * stop (it is frozen): after the restart the job is cancelled, not trained. */
START_TEST(cancel_survives_crash)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    char *id = tl_submit(&g_d, STEADY);
    long step = 1;
    cJSON *j = tl_wait_job(g_d.addr, id, tl_job_running_with, &step, 60);
    ck_assert_ptr_nonnull(j);
    pid_t worker = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    ck_assert_int_eq(kill(worker, SIGSTOP), 0);
    char *path = xasprintf("/jobs/%s/cancel", id);
    tl_resp r;
    tl_http(g_d.addr, "POST", path, g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 202);
    tl_resp_free(&r);
    tl_daemon_stop(&g_d, SIGKILL, 10);
    kill(worker, SIGKILL);
    kill(worker, SIGCONT);
    tl_sleep_ms(200);
    restart();
    j = tl_wait_state(&g_d, id, "cancelled", 10);
    cJSON_Delete(j);
    tl_sleep_ms(500);
    j = tl_get_json(g_d.addr, "/jobs/steady", NULL);
    ck_assert_str_eq(tl_str(j, "state"), "cancelled");
    cJSON_Delete(j);
    free(path);
    free(id);
}
END_TEST

static int post_keyed(const char *yaml, const char *key, tl_resp *r)
{
    char *req = xasprintf("POST /jobs HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nIdempotency-Key: %s\r\n"
                          "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                          g_d.addr, g_d.token, key, strlen(yaml), yaml);
    int rc = tl_http_raw(g_d.addr, req, strlen(req), 10000, r);
    free(req);
    return rc;
}

static int count_jobs(void)
{
    cJSON *a = tl_get_json(g_d.addr, "/jobs?limit=1000", NULL);
    int n = cJSON_GetArraySize(a);
    cJSON_Delete(a);
    return n;
}

/* The same Idempotency-Key answers with the same job, also for a job whose
 * config was saved by a daemon that died before answering. */
START_TEST(idempotency_key)
{
    /* what a daemon killed between saving the config and its 201 leaves */
    char *jd = spool_path("jobs/crashed");
    mkdir_p(jd, 0755);
    char *p = xasprintf("%s/config.yaml", jd);
    char *y = fmt(SMALL_FMT, "crashed");
    ck_assert_int_eq(tl_write(p, y), 0);
    free(p);
    p = xasprintf("%s/idempotency.key", jd);
    ck_assert_int_eq(tl_write(p, "retry-me-1"), 0);
    free(p);
    tl_start_in(&g_d, g_dir, NULL, 30);
    tl_resp r;
    post_keyed(y, "retry-me-1", &r);
    ck_assert_msg(r.status == 201 && strstr(r.body, "\"crashed\""), "retry after a crash: %d %s", r.status, r.body);
    tl_resp_free(&r);
    free(y);

    y = fmt(SMALL_FMT, "twice");
    post_keyed(y, "k-2", &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_ptr_nonnull(strstr(r.body, "\"twice\""));
    tl_resp_free(&r);
    post_keyed(y, "k-2", &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_ptr_nonnull(strstr(r.body, "\"twice\""));
    tl_resp_free(&r);
    ck_assert_int_eq(count_jobs(), 2);
    post_keyed(y, "k-3", &r);   /* another key: another job */
    ck_assert_int_eq(r.status, 201);
    ck_assert_ptr_nonnull(strstr(r.body, "\"twice-2\""));
    tl_resp_free(&r);
    post_keyed(y, "bad key", &r);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);
    /* a refused config's key answers as the first time: 400, its errors
     * (and no job: a 400 makes none, see traind(8) POST /jobs) */
    static const char invalid[] = "name: nope\nmodel: {type: nosuch}\n";
    post_keyed(invalid, "k-bad", &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_msg(!strstr(r.body, "\"id\"") && strstr(r.body, "model.type"), "%s", r.body);
    tl_resp_free(&r);
    post_keyed(invalid, "k-bad", &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_msg(!strstr(r.body, "\"id\"") && strstr(r.body, "model.type"), "%s", r.body);
    tl_resp_free(&r);
    ck_assert_int_eq(count_jobs(), 3);
    /* and after a restart */
    tl_daemon_stop(&g_d, SIGTERM, 30);
    restart();
    post_keyed(y, "k-2", &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_ptr_nonnull(strstr(r.body, "\"twice\""));
    tl_resp_free(&r);
    ck_assert_int_eq(count_jobs(), 3);
    free(y);
    free(jd);
}
END_TEST

/* trainctl submit sends a key and retries while traind is not up yet. */
START_TEST(trainctl_submit_retries)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    char *addr = xstrdup(g_d.addr);
    char *sp = spool_path("");
    char *cfg = xasprintf("%s/late.yaml", g_dir);
    char *y = fmt(SMALL_FMT, "late");
    ck_assert_int_eq(tl_write(cfg, y), 0);
    free(y);
    ck_assert_int_eq(tl_daemon_stop(&g_d, SIGTERM, 30), 0);
    tl_daemon_free(&g_d);

    /* trainctl first, the daemon a moment later on the same port */
    char *url = xasprintf("http://%s", addr);
    char *tok = spool_path("api.token");
    char *out = xasprintf("%s/submit.out", g_dir);
    pid_t pid = fork();
    if (pid == 0) {
        const char *argv[] = {tl_trainctl_path(), "submit", cfg, "--url", url, "--token-file", tok, NULL};
        _exit(tl_run(argv, out, 30));
    }
    tl_sleep_ms(600);
    char *listen = xasprintf("--listen=%s", addr);
    const char *args[] = {listen, NULL};
    memset(&g_d, 0, sizeof g_d);
    g_d.spool = xstrdup(sp);
    g_d.log = xasprintf("%s/daemon.log", sp);
    pid_t d = fork();
    if (d == 0) {
        int fd = open(g_d.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        execl(tl_traind_path(), tl_traind_path(), "--spool", sp, args[0], (char *)NULL);
        _exit(127);
    }
    g_d.pid = d;
    snprintf(g_d.addr, sizeof g_d.addr, "%s", addr);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    char *text = tl_read(out, NULL);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "trainctl submit: %d: %s", st, text ? text : "");
    ck_assert_ptr_nonnull(strstr(text, "late"));
    free(text);
    char *key = spool_path("jobs/late/idempotency.key");
    ck_assert_msg(exists(key), "trainctl sent no Idempotency-Key");
    free(key);
    free(listen);
    free(out);
    free(tok);
    free(url);
    free(cfg);
    free(sp);
    free(addr);
}
END_TEST

/* jobs/<id>/metrics.jsonl of about mb MiB (steps 1...), written fast. */
static long make_big_history(const char *id, long mb)
{
    char *p = xasprintf("%s/spool/jobs/%s/metrics.jsonl", g_dir, id);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    long long target = (long long)mb << 20, size = 0;
    long s = 0;
    while (size < target) {
        s++;
        int n = fprintf(f, "{\"step\":%ld,\"lr\":0.001,\"loss\":0.5,\"loss_avg\":0.5,\"grad_norm\":0.4,"
                           "\"time\":%ld.25}\n", s, s);
        size += n;
    }
    fclose(f);
    free(p);
    return s;
}

/* A queued job with a long history: the time from start to it running does
 * not grow with the history (TRAIND_TEST_HISTORY_MB, default 384). */
START_TEST(restart_with_long_history)
{
    const char *env = getenv("TRAIND_TEST_HISTORY_MB");
    long mb = env ? atol(env) : 384;
    char *cj = config_json("x");
    make_finished_job("big", 1, 100, cj);
    free(cj);
    char *p = spool_path("jobs/big/status.json");
    char *st = tl_read(p, NULL);
    char *q = strstr(st, "\"succeeded\"");
    memcpy(q, "\"queued\"   ", 11);
    ck_assert_int_eq(tl_write(p, st), 0);
    free(st);
    free(p);
    long last = make_big_history("big", mb);
    double t0 = tl_now();
    tl_start_in(&g_d, g_dir, NULL, 30);
    cJSON *j = tl_wait_job(g_d.addr, "big", tl_job_ended, NULL, 120);
    double dt = tl_now() - t0;
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(tl_str(j, "state"), "succeeded");
    cJSON_Delete(j);
    fprintf(stderr, "restart: a queued job with a %ld MiB history (%ld points) ran to its end %.2f s after "
                    "the start\n", mb, last, dt);
    ck_assert_msg(dt < 3, "%.1f s from start to the end of a 100-step job", dt);   /* 7 s before */
}
END_TEST

/* A job writing metrics every step is stopped at max_job_disk, with a
 * clear failure, and the daemon goes on. */
START_TEST(job_disk_limit)
{
    char *conf = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(conf, "max_job_disk: 1M\nmetrics_keep: 1000\n"), 0);
    const char *args[] = {"--config", conf, NULL};
    tl_start_in(&g_d, g_dir, args, 30);
    static const char chatty[] =
        "name: chatty\n"
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "data: {kind: synthetic, batch_size: 4}\n"
        "optimizer: {lr: 0.001}\n"
        "schedule: {type: constant, total_steps: 100000000}\n"
        "train: {log_every: 1, checkpoint_every: 100000000}\n";
    char *id = tl_submit(&g_d, chatty);
    cJSON *j = tl_wait_state(&g_d, id, "failed", 60);
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "errors"));
    ck_assert_msg(strstr(text, "max_job_disk (1 MiB)"), "errors: %s", text);
    free(text);
    cJSON_Delete(j);
    char *mp = xasprintf("%s/spool/jobs/%s/metrics.jsonl", g_dir, id);
    struct stat st;
    ck_assert_int_eq(stat(mp, &st), 0);
    fprintf(stderr, "disk limit: the job was stopped with metrics.jsonl at %lld bytes (max_job_disk 1M)\n",
            (long long)st.st_size);
    ck_assert_msg(st.st_size < (8 << 20), "metrics.jsonl grew to %lld bytes", (long long)st.st_size);
    /* ended: its history is thinned on disk to metrics_keep lines */
    tl_assert_log(&g_d, "metrics.jsonl thinned to 1000 points", NULL, 10);
    char *m = tl_read(mp, NULL);
    int lines = 0;
    for (char *c = m; (c = strchr(c, '\n')); c++)
        lines++;
    ck_assert_int_eq(lines, 1000);
    free(m);
    char *y = fmt(SMALL_FMT, "next");
    char *id2 = tl_submit(&g_d, y);
    cJSON_Delete(tl_wait_state(&g_d, id2, "succeeded", 30));
    free(y);
    free(id2);
    free(mp);
    free(id);
    free(conf);
}
END_TEST

/* ------------------------------------------------------------------ */
/* §4 who may do what                                                   */

/* A job whose id has ".." in it (valid by traind(8) THE SPOOL) is reachable everywhere. */
START_TEST(dotted_id_reachable)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    char *y = xstrdup(STEADY);
    memcpy(strstr(y, "steady"), "v1..2\n", 6);   /* "name: v1..2" */
    char *nl = strstr(y, "v1..2\n") + 6;
    memmove(nl, nl + 1, strlen(nl + 1) + 1);     /* drop the rest of "steady\n" */
    ck_assert_ptr_nonnull(strstr(y, "name: v1..2\nseed"));
    char *id = tl_submit(&g_d, y);
    ck_assert_str_eq(id, "v1..2");
    cJSON *j = tl_wait_state(&g_d, id, "running", 60);
    cJSON_Delete(j);
    tl_resp r;
    tl_http(g_d.addr, "GET", "/jobs/v1..2/log", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    tl_http(g_d.addr, "GET", "/jobs/v1..2/metrics", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    tl_http(g_d.addr, "POST", "/jobs/v1..2/cancel", g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 202);
    tl_resp_free(&r);
    cJSON_Delete(tl_wait_state(&g_d, id, "cancelled", 60));
    free(id);
    free(y);
}
END_TEST

static int get_with_host(const char *host, tl_resp *r)
{
    char *req = xasprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host);
    int rc = tl_http_raw(g_d.addr, req, strlen(req), 10000, r);
    free(req);
    return rc;
}

/* DNS rebinding: a Host that does not name traind is refused; every
 * answer says nosniff. */
START_TEST(host_header_checked)
{
    char *conf = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(conf, "allowed_hosts: [traind.example]\n"), 0);
    const char *args[] = {"--config", conf, NULL};
    tl_start_in(&g_d, g_dir, args, 30);
    static const char *const good[] = {"localhost", "localhost:8080", "127.0.0.1", "[::1]:80", "traind.example",
                                       "TRAIND.example:9"};
    static const char *const bad[] = {"evil.example", "evil.example:8080", "127.0.0.1.evil.example", "traind"};
    tl_resp r;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        get_with_host(good[i], &r);
        ck_assert_msg(r.status == 200, "Host: %s answered %d", good[i], r.status);
        char *h = tl_header(&r, "X-Content-Type-Options");
        ck_assert_msg(h && !strcmp(h, "nosniff"), "no nosniff: %s", r.head);
        free(h);
        tl_resp_free(&r);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        get_with_host(bad[i], &r);
        ck_assert_msg(r.status == 403, "Host: %s answered %d", bad[i], r.status);
        tl_resp_free(&r);
    }
    tl_http(g_d.addr, "GET", "/nosuch", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 404);
    char *h = tl_header(&r, "X-Content-Type-Options");
    ck_assert_ptr_nonnull(h);
    free(h);
    tl_resp_free(&r);
    free(conf);
}
END_TEST

/* Errors tell nothing of what lies outside data_dirs; a hard link in
 * incoming/ is not taken (its content never echoed). */
START_TEST(errors_reveal_nothing)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    char *data = spool_path("data");
    mkdir_p(data, 0755);
    char *secret = xasprintf("%s/secret-target.txt", g_dir);
    ck_assert_int_eq(tl_write(secret, "root:TOPSECRET:0:0\n"), 0);
    char *lnk = xasprintf("%s/escape.txt", data);
    ck_assert_int_eq(symlink(secret, lnk), 0);
    static const char *const paths[] = {"/etc/passwd", "/etc/no-such-file-here", "escape.txt"};
    char *msgs[3];
    for (int i = 0; i < 3; i++) {
        char *y = xasprintf("name: p%d\nmodel: {type: gpt, context: 8, d_model: 8, layers: 1, heads: 1}\n"
                            "data: {kind: text, path: %s, batch_size: 2}\nschedule: {total_steps: 5}\n", i, paths[i]);
        tl_resp r;
        tl_http(g_d.addr, "POST", "/jobs", g_d.token, y, strlen(y), &r);
        ck_assert_int_eq(r.status, 400);
        ck_assert_msg(!strstr(r.body, secret) && !strstr(r.body, data), "the answer reveals a path: %s", r.body);
        ck_assert_msg(strstr(r.body, "outside data_dirs"), "%s", r.body);
        msgs[i] = xstrdup(r.body);
        tl_resp_free(&r);
        free(y);
    }
    /* whether /etc/passwd exists cannot be told from the answer */
    char *a = strstr(msgs[0], "is outside"), *b = strstr(msgs[1], "is outside");
    ck_assert_str_eq(a, b);
    for (int i = 0; i < 3; i++)
        free(msgs[i]);

    char *inc = spool_path("incoming/linked.yaml");
    ck_assert_int_eq(link(secret, inc), 0);
    tl_assert_log(&g_d, "incoming/linked.yaml: has other hard links", NULL, 10);
    ck_assert(exists(inc));
    cJSON *all = tl_get_json(g_d.addr, "/jobs?limit=1000", NULL);
    char *text = cJSON_PrintUnformatted(all);
    ck_assert_msg(!strstr(text, "TOPSECRET"), "%s", text);
    free(text);
    cJSON_Delete(all);
    free(inc);
    free(lnk);
    free(secret);
    free(data);
}
END_TEST

/* A server that answers every request with an endless body. */
static void *endless_server(void *arg)
{
    int ls = *(int *)arg;
    int c = accept(ls, NULL, NULL);
    if (c < 0)
        return NULL;
    char buf[4096];
    recv(c, buf, sizeof buf, 0);
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[";
    send(c, head, strlen(head), MSG_NOSIGNAL);
    memset(buf, ' ', sizeof buf);
    while (send(c, buf, sizeof buf, MSG_NOSIGNAL) > 0) {
    }
    close(c);
    return NULL;
}

/* trainctl: ids are escaped (one path segment each), "--" ends options,
 * an endless answer is abandoned with exit 3. */
START_TEST(trainctl_ids_and_answers)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    char *id = tl_submit(&g_d, STEADY);
    cJSON_Delete(tl_wait_state(&g_d, id, "running", 60));
    char *y = fmt(SMALL_FMT, "-rf");
    char *dash = tl_submit(&g_d, y);
    ck_assert_str_eq(dash, "-rf");
    free(y);
    char *url = xasprintf("http://%s", g_d.addr);
    char *tok = spool_path("api.token");
    char *out = xasprintf("%s/ctl.out", g_dir);
    const char *cancel[] = {tl_trainctl_path(), "cancel", "nosuch/../steady", "--url", url, "--token-file", tok, NULL};
    ck_assert_int_eq(tl_run(cancel, out, 30), 1);
    cJSON *j = tl_get_json(g_d.addr, "/jobs/steady", NULL);
    ck_assert_str_eq(tl_str(j, "state"), "running");
    cJSON_Delete(j);
    const char *status[] = {tl_trainctl_path(), "status", "--url", url, "--json", "--", "-rf", NULL};
    ck_assert_int_eq(tl_run(status, out, 30), 0);
    char *text = tl_read(out, NULL);
    ck_assert_msg(strstr(text, "\"-rf\""), "%s", text);
    free(text);
    const char *summary[] = {tl_trainctl_path(), "status", "--url", url, "--", "-rf", NULL};
    ck_assert_int_eq(tl_run(summary, out, 30), 0);
    text = tl_read(out, NULL);
    ck_assert_msg(!strncmp(text, "-rf: ", 5), "%s", text);
    free(text);
    const char *missing[] = {tl_trainctl_path(), "status", "--url", url, "--token-file", "/nonexistent/tok", NULL};
    ck_assert_int_eq(tl_run(missing, out, 30), 2);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(ls, 4), 0);
    socklen_t sl = sizeof sa;
    getsockname(ls, (struct sockaddr *)&sa, &sl);
    pthread_t th;
    pthread_create(&th, NULL, endless_server, &ls);
    char *bad = xasprintf("http://127.0.0.1:%d", ntohs(sa.sin_port));
    const char *endless[] = {tl_trainctl_path(), "status", "--url", bad, NULL};
    double t0 = tl_now();
    int rc = tl_run(endless, out, 25);
    text = tl_read(out, NULL);
    ck_assert_msg(rc == 3 && strstr(text, "larger than"), "endless answer: exit %d after %.1f s: %s", rc,
                  tl_now() - t0, text);
    free(text);
    shutdown(ls, SHUT_RDWR);
    close(ls);
    pthread_join(th, NULL);
    free(bad);
    free(out);
    free(tok);
    free(url);
    free(dash);
    free(id);
}
END_TEST

/* ------------------------------------------------------------------ */
/* §5 smaller items                                                     */

static const char NAMELESS[] =
    "model: {type: linear, input_dim: 4, output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 4}\n"
    "schedule: {type: constant, total_steps: 20}\n";

/* A name from a file's stem obeys the name: rules; .YAML is taken; other
 * names are logged. */
START_TEST(stem_names_and_extensions)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    char stem[256];
    memset(stem, 'n', 200);
    stem[3] = '\x01';
    strcpy(stem + 200, ".yaml");
    tl_drop(g_d.spool, stem, NAMELESS, 60);
    tl_drop(g_d.spool, "UPPER.YAML", NAMELESS, 60);
    tl_drop(g_d.spool, "notes.txt", "not a config\n", 60);
    cJSON *j = tl_wait_state(&g_d, "UPPER", "succeeded", 20);
    cJSON_Delete(j);
    /* the long stem's id: sanitized, 48 bytes */
    char id[64];
    memset(id, 'n', 48);
    id[3] = '_';
    id[48] = '\0';
    j = tl_wait_state(&g_d, id, "succeeded", 20);
    const char *name = tl_str(j, "name");
    ck_assert_msg(strlen(name) <= 128, "a name of %zu bytes", strlen(name));
    for (const char *p = name; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20, "a control byte in the name");
    cJSON_Delete(j);
    tl_assert_log(&g_d, "incoming/notes.txt: ignored", NULL, 10);
}
END_TEST

/* A full queue holds valid configs in incoming/, not invalid ones. */
START_TEST(invalid_not_behind_full_queue)
{
    char *conf = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(conf, "max_queued_jobs: 1\n"), 0);
    const char *args[] = {"--config", conf, NULL};
    tl_start_in(&g_d, g_dir, args, 30);
    char *id = tl_submit(&g_d, STEADY);
    cJSON_Delete(tl_wait_state(&g_d, id, "running", 60));
    char *w = fmt(SMALL_FMT, "waiter");
    char *wid = tl_submit(&g_d, w);   /* the one queued place */
    tl_drop(g_d.spool, "held.yaml", w, 60);
    tl_drop(g_d.spool, "broken.yaml", "model: {type: nosuch}\n", 60);
    cJSON *j = tl_wait_state(&g_d, "broken", "rejected", 10);
    cJSON_Delete(j);
    char *held = spool_path("incoming/held.yaml");
    ck_assert(exists(held));
    free(held);
    free(wid);
    free(w);
    free(id);
    free(conf);
}
END_TEST

static int raw_status_of(const char *req)
{
    tl_resp r;
    tl_http_raw(g_d.addr, req, strlen(req), 5000, &r);
    int st = r.status;
    tl_resp_free(&r);
    return st;
}

/* HTTP/0.9 and 2.0 request lines are not answered 200; 100 Continue only
 * after the token checks out; trainctl validate of a FIFO; a rejected
 * job's total_steps; the empty config's hint. */
START_TEST(protocol_and_messages)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    ck_assert_int_eq(raw_status_of("GET /healthz HTTP/2.0\r\nHost: localhost\r\n\r\n"), 505);
    ck_assert_int_eq(raw_status_of("GET /healthz HTTP/1.0\r\n\r\n"), 200);
    tl_resp r;
    tl_http_raw(g_d.addr, "GET /healthz\r\n\r\n", 16, 5000, &r);
    ck_assert_msg(!strstr(r.body, "\"ok\""), "HTTP/0.9 was answered: %d %s", r.status, r.body);
    tl_resp_free(&r);

    /* Expect: 100-continue without a token: a 401, never a 100 */
    static const char nobody[] = "POST /jobs HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                                 "Content-Length: 20\r\n\r\n";
    tl_http_raw(g_d.addr, nobody, strlen(nobody), 3000, &r);
    ck_assert_msg(r.status == 401, "%d %s", r.status, r.head ? r.head : "");
    tl_resp_free(&r);
    char *withtok = xasprintf("POST /jobs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
                              "Expect: 100-continue\r\nContent-Length: 20\r\n\r\n", g_d.token);
    tl_http_raw(g_d.addr, withtok, strlen(withtok), 1000, &r);
    ck_assert_msg(r.status == 100, "%d", r.status);
    tl_resp_free(&r);
    free(withtok);

    char *fifo = xasprintf("%s/fifo.yaml", g_dir);
    ck_assert_int_eq(mkfifo(fifo, 0644), 0);
    char *out = xasprintf("%s/validate.out", g_dir);
    const char *argv[] = {tl_trainctl_path(), "validate", fifo, NULL};
    ck_assert_int_eq(tl_run(argv, out, 10), 1);
    char *text = tl_read(out, NULL);
    ck_assert_msg(strstr(text, "not a regular file"), "%s", text);
    free(text);

    static const char bad[] = "name: bad\nmodel: {type: nosuch}\n";
    tl_http(g_d.addr, "POST", "/jobs", g_d.token, bad, strlen(bad), &r);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);
    /* a POST answered 400 makes no job; a file from incoming/ is a rejected one */
    tl_drop(g_d.spool, "bad.yaml", bad, 0);
    cJSON *j = tl_wait_state(&g_d, "bad", "rejected", 10);
    ck_assert_msg(cJSON_IsNull(cJSON_GetObjectItem(j, "total_steps")), "total_steps of a rejected job: %s",
                  cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "total_steps")));
    cJSON_Delete(j);
    static const char empty[] = "# nothing but a comment\n";
    tl_http(g_d.addr, "POST", "/jobs", g_d.token, empty, strlen(empty), &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_msg(strstr(r.body, "needs at least a model and a schedule"), "%s", r.body);
    tl_resp_free(&r);
    free(out);
    free(fifo);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *suite(void)
{
    Suite *s = suite_create("reliability");
    TCase *loop = tcase_create("loop");
    tcase_add_checked_fixture(loop, setup, teardown);
    tcase_set_timeout(loop, 120);
    tcase_add_test(loop, healthz_fast_under_heavy_requests);
    tcase_add_test(loop, compare_reads_histories_off_the_loop);
    tcase_add_test(loop, jobs_paging);
    tcase_add_test(loop, metrics_paging);
    tcase_add_test(loop, sighup_fifo_does_not_block);
    suite_add_tcase(s, loop);
    TCase *sp = tcase_create("spool");
    tcase_add_checked_fixture(sp, setup, teardown);
    tcase_set_timeout(sp, 120);
    tcase_add_test(sp, second_daemon_refused);
    tcase_add_test(sp, foreign_objects_refused);
    tcase_add_test(sp, symlinked_incoming_refused);
    tcase_add_test(sp, incoming_taken_whole);
    suite_add_tcase(s, sp);
    TCase *du = tcase_create("durable");
    tcase_add_checked_fixture(du, setup, teardown);
    tcase_set_timeout(du, 120);
    tcase_add_test(du, cancel_survives_crash);
    tcase_add_test(du, idempotency_key);
    tcase_add_test(du, trainctl_submit_retries);
    tcase_add_test(du, restart_with_long_history);
    tcase_add_test(du, job_disk_limit);
    suite_add_tcase(s, du);
    TCase *ac = tcase_create("access");
    tcase_add_checked_fixture(ac, setup, teardown);
    tcase_set_timeout(ac, 120);
    tcase_add_test(ac, dotted_id_reachable);
    tcase_add_test(ac, host_header_checked);
    tcase_add_test(ac, errors_reveal_nothing);
    tcase_add_test(ac, trainctl_ids_and_answers);
    suite_add_tcase(s, ac);
    TCase *sm = tcase_create("small");
    tcase_add_checked_fixture(sm, setup, teardown);
    tcase_set_timeout(sm, 120);
    tcase_add_test(sm, stem_names_and_extensions);
    tcase_add_test(sm, invalid_not_behind_full_queue);
    tcase_add_test(sm, protocol_and_messages);
    suite_add_tcase(s, sm);
    return s;
}

int main(void)
{
    return tl_run_suite(suite()) ? 1 : 0;
}

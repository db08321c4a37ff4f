/*
 * test_bounded_requests — the work one request may cause, and all of them
 * together, is bounded (traind(8), LIMITS), against the real traind:
 *
 *   compare   many GET /compare naming a running long-history job 32 times
 *             (and an ended one): /healthz, a token holder's GET /jobs and
 *             /jobs/ID/metrics stay answered, the daemon's peak RSS stays
 *             bounded, and SIGTERM right after exits well within the unit's
 *             60 s
 *   abandon   heavy requests whose client closed are not computed to the end
 *   sweeps    oversized /validate, /schedule and /experiments sweeps get a
 *             4xx naming the limit, /schedule's answer is capped, and a tiny
 *             POST /jobs stays fast while such requests run
 *   host      an absolute-form request line's authority is checked as Host
 *
 * Figures (worst latencies, peak RSS, SIGTERM time) are printed on stderr.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/util.h"
#include "../lib/tl.h"

static char *g_dir;
static tl_daemon g_d;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-bounded");
}

static void teardown(void)
{
    tl_stop_clean(&g_d, 60);
    tl_fixture_end(&g_dir, &g_d);
}

/* A linear model that logs every step: its history grows by thousands of
 * points a second. */
static const char LONG_FMT[] =
    "name: %s\n"
    "model: {type: linear, input_dim: 2, output_dim: 1}\n"
    "data: {kind: synthetic, batch_size: 1}\n"
    "optimizer: {lr: 1.0e-3}\n"
    "schedule: {type: constant, total_steps: %ld}\n"
    "train: {log_every: 1, checkpoint_every: 100000000}\n";

static void start_daemon(const char *config)
{
    char *cfg = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(cfg, config), 0);
    const char *extra[] = {"--config", cfg, NULL};
    tl_start_in(&g_d, g_dir, extra, 20);
    free(cfg);
}

static char *submit_long(const char *name, long steps)
{
    char *body = xasprintf(LONG_FMT, name, steps);
    char *id = tl_submit(&g_d, body);
    free(body);
    return id;
}

/* The daemon's peak resident set (VmHWM), in MB; -1 when unreadable. */
static double peak_rss_mb(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)g_d.pid);
    char *s = tl_read(path, NULL);
    const char *p = s ? strstr(s, "VmHWM:") : NULL;
    double kb = p ? strtod(p + 6, NULL) : -1;
    free(s);
    return kb < 0 ? -1 : kb / 1024.0;
}

/* Waits until job id's in-memory history holds at least n points. */
static void wait_points(const char *id, long n, double timeout_s)
{
    long min = n;
    cJSON *j = tl_wait_job(g_d.addr, id, tl_job_at_step, &min, timeout_s);
    ck_assert_msg(j != NULL, "job %s did not reach step %ld in %.0f s", id, n, timeout_s);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------------ */
/* heavy requests sent at once, the light ones timed meanwhile          */

#define N_HEAVY 24

/* Sends n GETs of target on fresh connections; their fds in fds. */
static void send_heavy(const char *target, int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = tl_dial(g_d.addr);
        ck_assert_int_ge(fds[i], 0);
        char *req = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", target);
        ck_assert_int_eq(tl_send_all(fds[i], req, strlen(req)), 0);
        free(req);
    }
}

/* Reads every answer to its end (or until timeout_s); the statuses seen. */
static void drain(int *fds, int n, double timeout_s, int *ok, int *busy)
{
    static char buf[1 << 16];
    int open_n = n;
    double end = tl_now() + timeout_s;
    bool first[N_HEAVY * 2];
    for (int i = 0; i < n; i++)
        first[i] = true;
    while (open_n > 0 && tl_now() < end) {
        struct pollfd pf[N_HEAVY * 2];
        for (int i = 0; i < n; i++)
            pf[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(pf, (nfds_t)n, 200) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (fds[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = recv(fds[i], buf, sizeof buf - 1, 0);
            if (got > 0 && first[i]) {
                buf[got] = '\0';
                first[i] = false;
                if (strstr(buf, " 200 "))
                    (*ok)++;
                else if (strstr(buf, " 503 "))
                    (*busy)++;
            }
            if (got <= 0) {
                close(fds[i]);
                fds[i] = -1;
                open_n--;
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

typedef struct prober {
    volatile bool stop;
    const char *path;
    const char *token;
    double worst;
    int polls, failed;
} prober;

static void *probe(void *arg)
{
    prober *p = arg;
    while (!p->stop) {
        double t0 = tl_now();
        tl_resp r;
        tl_http(g_d.addr, "GET", p->path, p->token, NULL, 0, &r);
        double dt = tl_now() - t0;
        if (r.status != 200)
            p->failed++;
        tl_resp_free(&r);
        if (dt > p->worst)
            p->worst = dt;
        p->polls++;
        tl_sleep_ms(20);
    }
    return NULL;
}

/* "/compare?max=2000&ids=ID,ID,..." with id n times. */
static char *compare_of(const char *id, int n)
{
    size_t cap = 64 + (size_t)n * (strlen(id) + 1);
    char *s = xmalloc(cap);
    size_t len = (size_t)snprintf(s, cap, "/compare?max=2000&ids=");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "", id);
    return s;
}

/* ------------------------------------------------------------------ */
/* compare                                                              */

#define LONG_POINTS 60000L

START_TEST(compare_bounded_per_request_and_in_total)
{
    if (tl_under_valgrind()) {
        fprintf(stderr, "SKIPPED: 5 checks: a 60,000-point history takes minutes to train under Valgrind\n");
        return;
    }
    start_daemon("metrics_keep: 1000000\nmax_jobs: 2\n");
    char *ended = submit_long("ended", LONG_POINTS);
    char *running = submit_long("running", 1000000000L);
    cJSON *e = tl_wait_state(&g_d, ended, "succeeded", 240);
    ck_assert_ptr_nonnull(e);
    cJSON_Delete(e);
    wait_points(running, LONG_POINTS, 240);
    double rss0 = peak_rss_mb();

    char *cmp_run = compare_of(running, 32), *cmp_end = compare_of(ended, 32);
    char *metrics = xasprintf("/jobs/%s/metrics?max=100", running);
    prober health = {.path = "/healthz"}, jobs = {.path = "/jobs", .token = g_d.token},
           mets = {.path = metrics, .token = g_d.token};
    pthread_t th[3];
    pthread_create(&th[0], NULL, probe, &health);
    pthread_create(&th[1], NULL, probe, &jobs);
    pthread_create(&th[2], NULL, probe, &mets);
    int fds[N_HEAVY];
    send_heavy(cmp_run, fds, N_HEAVY * 2 / 3);
    send_heavy(cmp_end, fds + N_HEAVY * 2 / 3, N_HEAVY - N_HEAVY * 2 / 3);
    double t0 = tl_now();
    int ok = 0, busy = 0;
    drain(fds, N_HEAVY, 120, &ok, &busy);
    double took = tl_now() - t0;
    health.stop = jobs.stop = mets.stop = true;
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    double rss1 = peak_rss_mb();
    fprintf(stderr, "compare: %d requests naming a %ld-point history 32 times: %.2f s (%d answered 200, %d 503); "
            "worst /healthz %.3f s, token GET /jobs %.3f s, token metrics %.3f s; peak RSS %.0f -> %.0f MB\n",
            N_HEAVY, LONG_POINTS, took, ok, busy, health.worst, jobs.worst, mets.worst, rss0, rss1);
    ck_assert_msg(ok >= 1, "no /compare was answered");
    ck_assert_msg(health.worst < 1.0 && health.failed == 0, "/healthz took %.3f s (%d failed)", health.worst,
                  health.failed);
    ck_assert_msg(jobs.worst < 2.0 && jobs.failed == 0, "a token holder's GET /jobs took %.3f s (%d failed)",
                  jobs.worst, jobs.failed);
    ck_assert_msg(mets.worst < 2.0 && mets.failed == 0, "a token holder's metrics took %.3f s (%d failed)",
                  mets.worst, mets.failed);
    ck_assert_msg(rss1 - rss0 < 300, "peak RSS grew by %.0f MB", rss1 - rss0);

    /* SIGTERM with a burst of them waiting: the daemon exits, well within systemd's 60 s */
    send_heavy(cmp_end, fds, N_HEAVY);
    send_heavy(cmp_run, fds + N_HEAVY / 2, N_HEAVY / 2);
    tl_sleep_ms(100);
    double s0 = tl_now();
    int st = tl_daemon_stop(&g_d, SIGTERM, 60);
    double stop_s = tl_now() - s0;
    for (int i = 0; i < N_HEAVY; i++)
        close(fds[i]);
    fprintf(stderr, "compare: SIGTERM with %d heavy requests waiting: exited in %.2f s\n", N_HEAVY, stop_s);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "traind did not stop cleanly (%d)", st);
    ck_assert_msg(stop_s < 20, "SIGTERM took %.2f s", stop_s);
    g_d.pid = 0;
    free(metrics);
    free(cmp_run);
    free(cmp_end);
    free(running);
    free(ended);
}
END_TEST

/* ------------------------------------------------------------------ */
/* abandon                                                              */

/* jobs/<id>/ of a finished job made on disk, with a metrics.jsonl of n
 * points: an ended job whose history a /compare reads from disk. */
static void make_ended_job(const char *id, unsigned long seq, long n)
{
    char *jd = xasprintf("%s/spool/jobs/%s", g_dir, id);
    mkdir_p(jd, 0755);
    char *p = xasprintf("%s/config.yaml", jd);
    char *text = xasprintf(LONG_FMT, id, n);
    ck_assert_int_eq(tl_write(p, text), 0);
    free(p);
    free(text);
    p = xasprintf("%s/status.json", jd);
    text = xasprintf("{\"id\":\"%s\",\"name\":\"%s\",\"state\":\"succeeded\",\"step\":%ld,\"total_steps\":%ld,"
                     "\"submitted_at\":\"2026-11-24T13:45:00Z\",\"started_at\":\"2026-11-24T13:45:01Z\","
                     "\"finished_at\":\"2026-11-24T13:46:00Z\",\"restarts\":0,\"crashes\":0,\"checkpoint_step\":%ld,"
                     "\"seq\":%lu,\"errors\":[]}",
                     id, id, n, n, n, seq);
    ck_assert_int_eq(tl_write(p, text), 0);
    free(p);
    free(text);
    p = xasprintf("%s/metrics.jsonl", jd);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    for (long k = 1; k <= n; k++)
        fprintf(f, "{\"step\":%ld,\"lr\":0.001,\"loss\":%.9g,\"loss_avg\":%.9g,\"grad_norm\":0.41,\"time\":%.6f}\n",
                k, 1.0 / (double)k, 1.0 / (double)k, 0.001 * (double)k);
    fclose(f);
    free(p);
    free(jd);
}

#define N_ENDED 16

/* Heavy requests whose client closed are dropped: a token-less request
 * queued behind them is answered as if they had not been sent. */
START_TEST(abandoned_requests_are_not_computed)
{
    char *ids = xstrdup("/compare?max=2000&ids=");
    for (int i = 0; i < N_ENDED; i++) {
        char id[16];
        snprintf(id, sizeof id, "h%02d", i);
        make_ended_job(id, (unsigned long)i + 1, 30000);
        char *more = xasprintf("%s%s%s", ids, i ? "," : "", id);
        free(ids);
        ids = more;
    }
    start_daemon("metrics_keep: 1000000\n");
    /* one request: N_ENDED metrics.jsonl read (timed, after a first one warms the page cache) */
    tl_resp r;
    tl_http(g_d.addr, "GET", ids, NULL, NULL, 0, &r);
    tl_resp_free(&r);
    double t0 = tl_now();
    tl_http(g_d.addr, "GET", ids, NULL, NULL, 0, &r);
    double one = tl_now() - t0;
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    /* N_HEAVY of them, abandoned at once: they must not be worked through */
    int fds[N_HEAVY];
    send_heavy(ids, fds, N_HEAVY);
    tl_sleep_ms(50);
    for (int i = 0; i < N_HEAVY; i++)
        close(fds[i]);
    tl_sleep_ms(50);
    t0 = tl_now();
    tl_http(g_d.addr, "GET", "/jobs?limit=1", NULL, NULL, 0, &r);
    double after = tl_now() - t0;
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    fprintf(stderr, "abandon: one /compare of %d ended jobs %.3f s; a token-less GET /jobs after %d abandoned ones "
            "%.3f s\n", N_ENDED, one, N_HEAVY, after);
    /* computed to the end, they would hold the render slot N_HEAVY × one */
    ck_assert_msg(after < 4 * one + 0.5, "GET /jobs waited %.3f s behind abandoned requests (one takes %.3f s)",
                  after, one);
    free(ids);
}
END_TEST

/* ------------------------------------------------------------------ */
/* sweeps                                                               */

/* A grid sweep of w warmups × l peak lrs over a config padded with a list
 * of pad numbers (a bigger tree for every trial to clone). */
static char *sweep_yaml(int w, int l, int pad)
{
    size_t cap = 1024 + (size_t)(w + l) * 24 + (size_t)pad * 8;
    char *s = xmalloc(cap);
    size_t len = (size_t)snprintf(s, cap,
                                  "name: big\n"
                                  "model: {type: linear, input_dim: 2, output_dim: 1}\n"
                                  "data: {kind: synthetic, batch_size: 1}\n"
                                  "optimizer: {lr: 1.0e-3}\n"
                                  "schedule: {type: cosine, warmup_steps: 1, total_steps: 1000000}\n");
    if (pad) {
        len += (size_t)snprintf(s + len, cap - len, "train: {keep_steps: [");
        for (int i = 0; i < pad; i++)
            len += (size_t)snprintf(s + len, cap - len, "%s%d", i ? "," : "", i + 1);
        len += (size_t)snprintf(s + len, cap - len, "]}\n");
    }
    len += (size_t)snprintf(s + len, cap - len, "sweep:\n  method: grid\n  parameters:\n    schedule.warmup_steps: [");
    for (int i = 0; i < w; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%d", i ? "," : "", i + 1);
    len += (size_t)snprintf(s + len, cap - len, "]\n    optimizer.lr: [");
    for (int i = 0; i < l; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%.6e", i ? "," : "", 1e-3 + 1e-6 * i);
    snprintf(s + len, cap - len, "]\n");
    return s;
}

static int post_timed(const char *path, const char *token, const char *body, char **out, double *secs)
{
    tl_resp r;
    double t0 = tl_now();
    tl_http(g_d.addr, "POST", path, token, body, strlen(body), &r);
    *secs = tl_now() - t0;
    int st = r.status;
    if (out)
        *out = xstrdup(r.body ? r.body : "");
    tl_resp_free(&r);
    return st;
}

typedef struct poster {
    const char *path, *body, *token;
    int n;
    double worst;
} poster;

static void *post_loop(void *arg)
{
    poster *p = arg;
    for (int i = 0; i < p->n; i++) {
        double dt;
        post_timed(p->path, p->token, p->body, NULL, &dt);
        if (dt > p->worst)
            p->worst = dt;
    }
    return NULL;
}

START_TEST(oversized_sweeps_refused_and_capped)
{
    start_daemon("max_trials: 100000\nmax_jobs: 1\n");
    /* 100,000 trials of a ~40-node config: four million nodes cloned */
    char *huge = sweep_yaml(1000, 100, 0);
    char *out = NULL;
    double secs;
    int st = post_timed("/validate", NULL, huge, &out, &secs);
    fprintf(stderr, "sweeps: /validate of %zu KB, 100,000 trials: %d in %.2f s\n", strlen(huge) / 1024, st, secs);
    ck_assert_msg(st == 422 && strstr(out, "trials × nodes must be at most"), "/validate: %d %.300s", st, out);
    free(out);
    st = post_timed("/experiments", g_d.token, huge, &out, &secs);
    ck_assert_msg(st == 400 && strstr(out, "trials × nodes must be at most"), "/experiments: %d %.300s", st, out);
    free(out);

    /* /schedule of 5,000 distinct schedules at max=10000: capped in total */
    char *many = sweep_yaml(250, 20, 0);
    st = post_timed("/schedule?max=10000", NULL, many, &out, &secs);
    size_t size = strlen(out);
    fprintf(stderr, "sweeps: /schedule of 5,000 trials at max=10000: %d, %zu bytes in %.2f s\n", st, size, secs);
    ck_assert_int_eq(st, 200);
    ck_assert_msg(size < 4u << 20, "/schedule answered %zu bytes", size);
    free(out);

    /* a tiny POST /jobs stays fast while /validate and /schedule hammer the pool */
    poster ps[4] = {{"/schedule?max=10000", many, NULL, 6, 0}, {"/schedule?max=10000", many, NULL, 6, 0},
                    {"/validate", many, NULL, 6, 0}, {"/validate", many, NULL, 6, 0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, post_loop, &ps[i]);
    tl_sleep_ms(300);
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        char *body = xasprintf("name: tiny%d\nmodel: {type: linear, input_dim: 2, output_dim: 1}\n"
                               "data: {kind: synthetic, batch_size: 1}\nschedule: {total_steps: 10}\n", i);
        st = post_timed("/jobs", g_d.token, body, NULL, &secs);
        free(body);
        ck_assert_int_eq(st, 201);
        if (secs > worst)
            worst = secs;
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "sweeps: tiny POST /jobs while previews run: worst %.3f s\n", worst);
    ck_assert_msg(worst < 2.0, "a tiny POST /jobs took %.3f s", worst);
    free(many);
    free(huge);
}
END_TEST

/* ------------------------------------------------------------------ */
/* host                                                                 */

START_TEST(absolute_form_authority_is_checked)
{
    start_daemon("");
    const char *evil = "GET http://evil.example/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    tl_resp r;
    tl_http_raw(g_d.addr, evil, strlen(evil), 10000, &r);
    ck_assert_msg(r.status == 403, "absolute-form to evil.example: %d", r.status);
    tl_resp_free(&r);
    const char *userinfo =
        "GET http://127.0.0.1@evil.example/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    tl_http_raw(g_d.addr, userinfo, strlen(userinfo), 10000, &r);
    ck_assert_msg(r.status == 403, "absolute-form with userinfo: %d", r.status);
    tl_resp_free(&r);
    const char *good = "GET http://localhost/healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    tl_http_raw(g_d.addr, good, strlen(good), 10000, &r);
    ck_assert_msg(r.status == 200, "absolute-form to localhost: %d", r.status);
    tl_resp_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ */
/* trainctl                                                             */

/* A fake daemon: answers one request on fd with body, then closes. */
typedef struct fake {
    int fd;
    const char *body;
} fake;

static void *fake_serve(void *arg)
{
    fake *f = arg;
    int c = accept(f->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char buf[4096];
    (void)recv(c, buf, sizeof buf, 0);
    char *res = xasprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n%s", strlen(f->body), f->body);
    tl_send_all(c, res, strlen(res));
    free(res);
    close(c);
    return NULL;
}

START_TEST(trainctl_escapes_control_bytes)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    struct timeval tv = {.tv_sec = 30};   /* accept gives up if trainctl never comes */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    fake f = {fd, "{\"version\":\"1\",\"uptime_s\":1,\"jobs\":[{\"id\":\"ev\\u001b]0;pwned\\u0007il\","
                  "\"state\":\"running\",\"step\":1,\"total_steps\":2,\"lr\":0.1,\"loss\":1}]}"};
    pthread_t th;
    pthread_create(&th, NULL, fake_serve, &f);
    char url[64], *out = xasprintf("%s/out.txt", g_dir);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    const char *argv[] = {tl_trainctl_path(), "status", "--url", url, NULL};
    int rc = tl_run(argv, out, 30);
    pthread_join(th, NULL);
    close(fd);
    size_t len = 0;
    char *text = tl_read(out, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(rc == 0, "trainctl status: %d: %s", rc, text);
    ck_assert_msg(!memchr(text, 0x1b, len) && !memchr(text, 0x07, len), "raw control bytes printed: %s", text);
    ck_assert_msg(strstr(text, "ev\\x1b]0;pwned\\x07il"), "the id escaped: %s", text);
    free(text);
    free(out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("bounded_requests");
    TCase *c = tcase_create("compare");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 600);
    tcase_add_test(c, compare_bounded_per_request_and_in_total);
    tcase_add_test(c, abandoned_requests_are_not_computed);
    suite_add_tcase(s, c);
    TCase *w = tcase_create("sweeps");
    tcase_add_checked_fixture(w, setup, teardown);
    tcase_set_timeout(w, 300);
    tcase_add_test(w, oversized_sweeps_refused_and_capped);
    tcase_add_test(w, absolute_form_authority_is_checked);
    tcase_add_test(w, trainctl_escapes_control_bytes);
    suite_add_tcase(s, w);
    return s;
}

int main(void)
{
    return tl_run_suite(suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

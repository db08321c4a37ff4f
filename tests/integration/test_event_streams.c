/*
 * test_event_streams — who may hold GET /events, and what watching costs,
 * against the real traind ($TRAIND_BUILD/traind); traind(8), "GET /events":
 *
 *   slots   a stream to a job that does not exist is 404, not a stream;
 *           with every max_event_streams slot held by token-less streams a
 *           token holder still gets one (a token-less one makes room);
 *           a stream whose client reads nothing is dropped after
 *           event_stream_timeout_ms, while one that reads stays
 *   cost    a job that logs every step trains about as fast with 32
 *           streams reading every event as with none, and the daemon's CPU
 *           per step does not grow with them: points are coalesced past a
 *           job's rate, so the progress socket is drained at the worker's
 *           pace, not the readers'
 *
 * Figures (steps/s with and without readers, the daemon's CPU) are printed.
 */
#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "traind/util.h"
#include "../lib/tl.h"

/* Logs every step of a model so small that the step is mostly the logging. */
static const char FAST[] = "name: %s\n"
                           "model: {type: linear, input_dim: 2, output_dim: 1}\n"
                           "data: {kind: synthetic, batch_size: 1}\n"
                           "schedule: {type: constant, total_steps: 100000000}\n"
                           "train: {log_every: 1, checkpoint_every: 0}\n";

static char *g_dir;
static tl_daemon g_d;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-evs");
}

static void teardown(void)
{
    tl_stop_clean(&g_d, 30);
    tl_fixture_end(&g_dir, &g_d);
}

/* Starts traind with traind.yaml holding yaml. */
static void start(const char *yaml)
{
    char *conf = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(conf, yaml), 0);
    const char *args[] = {"--config", conf, NULL};
    tl_start_in(&g_d, g_dir, args, 20);
    free(conf);
}

static char *submit_fast(const char *name)
{
    char *y = xasprintf(FAST, name);
    char *id = tl_submit(&g_d, y);
    free(y);
    return id;
}

static void cancel(const char *id)
{
    char *path = xasprintf("/jobs/%s/cancel", id);
    tl_post(&g_d, path, g_d.token, "", NULL);
    free(path);
}

/* The value of an unlabelled sample of GET /metrics (NAN when absent). */
static double prom(const char *name)
{
    tl_resp r;
    if (tl_http(g_d.addr, "GET", "/metrics", NULL, NULL, 0, &r) != 0)
        return NAN;
    char *key = xasprintf("\n%s ", name);
    char *p = r.body ? strstr(r.body, key) : NULL;
    double v = p ? atof(p + strlen(key)) : NAN;
    free(key);
    tl_resp_free(&r);
    return v;
}

/* ---- a raw SSE client ---------------------------------------------------- */

typedef struct stream {
    int fd;
    int status;
    char *buf;              /* what was read after the head */
    size_t len, cap;
    bool eof;
    long points;            /* `point` events seen (counted by stream_read) */
} stream;

static int dial(int rcvbuf)
{
    char host[128];
    snprintf(host, sizeof host, "%s", g_d.addr);
    char *colon = strrchr(host, ':');
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %s: %s", g_d.addr, strerror(errno));
    return fd;
}

/* One read of what is there within timeout_ms; false at EOF or when nothing came. */
static bool stream_fill(stream *s, int timeout_ms)
{
    struct pollfd pf = {.fd = s->fd, .events = POLLIN};
    if (s->eof || poll(&pf, 1, timeout_ms) <= 0)
        return false;
    if (s->cap - s->len < 65536) {
        s->cap = s->cap ? 2 * s->cap : 131072;
        s->buf = xrealloc(s->buf, s->cap);
    }
    ssize_t n = recv(s->fd, s->buf + s->len, s->cap - s->len - 1, 0);
    if (n <= 0) {
        s->eof = true;
        return false;
    }
    s->len += (size_t)n;
    s->buf[s->len] = '\0';
    return true;
}

/* GET path (with token unless NULL) on a new connection; reads the head
 * only (the status in s->status).  rcvbuf > 0: the socket's receive buffer. */
static void stream_open(stream *s, const char *path, const char *token, int rcvbuf)
{
    memset(s, 0, sizeof *s);
    s->fd = dial(rcvbuf);
    char *req = xasprintf("GET %s HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n%s%s%s\r\n", path,
                          token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
    ck_assert_int_eq(tl_send_all(s->fd, req, strlen(req)), 0);
    free(req);
    double end = tl_now() + 10;
    char *h = NULL;
    while (!(h = s->buf ? strstr(s->buf, "\r\n\r\n") : NULL) && !s->eof && tl_now() < end)
        stream_fill(s, 100);
    ck_assert_msg(h != NULL, "GET %s: no response head", path);
    s->status = atoi(s->buf + 9);
    size_t hl = (size_t)(h + 4 - s->buf);
    memmove(s->buf, h + 4, s->len - hl + 1);
    s->len -= hl;
}

/* Reads what has come within timeout_ms, counting the point events and
 * keeping only an unfinished last event. */
static void stream_read(stream *s, int timeout_ms)
{
    while (stream_fill(s, timeout_ms))
        timeout_ms = 0;
    char *p = s->buf, *sep;
    while (p && (sep = strstr(p, "\n\n")) != NULL) {
        *sep = '\0';
        if (strstr(p, "event: point"))
            s->points++;
        p = sep + 2;
    }
    if (p && p != s->buf) {
        size_t rest = s->len - (size_t)(p - s->buf);
        memmove(s->buf, p, rest + 1);
        s->len = rest;
    }
}

/* The "boot" of the hello event, read from s (malloc'd). */
static char *stream_hello_boot(stream *s)
{
    double end = tl_now() + 10;
    char *b;
    while (!(s->buf && (b = strstr(s->buf, "\"boot\":\""))) && !s->eof && tl_now() < end)
        stream_fill(s, 100);
    ck_assert_msg(s->buf && (b = strstr(s->buf, "\"boot\":\"")), "no hello");
    b += 8;
    return xstrndup(b, strcspn(b, "\""));
}

static void stream_close(stream *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

/* Whether the daemon ends s within timeout_s (what it sends meanwhile is read). */
static bool stream_ended_within(stream *s, double timeout_s)
{
    double end = tl_now() + timeout_s;
    while (!s->eof && tl_now() < end) {
        stream_fill(s, 100);
        s->len = 0;
    }
    return s->eof;
}

/* ---- slots ----------------------------------------------------------------- */

/* ?job= of a job that does not exist is 404 and takes no slot; of one that
 * does, a stream.  Before: a stream of nothing, held for as long as its
 * client stayed. */
START_TEST(missing_job_is_404)
{
    start("max_event_streams: 2\n");
    stream s;
    for (int i = 0; i < 3; i++) {
        stream_open(&s, "/events?job=no-such-job", NULL, 0);
        ck_assert_msg(s.status == 404, "GET /events?job=no-such-job: %d, want 404", s.status);
        double end = tl_now() + 5;
        while (!(s.buf && strstr(s.buf, "no such job")) && !s.eof && tl_now() < end)
            stream_fill(&s, 100);
        ck_assert_msg(s.buf && strstr(s.buf, "no such job"), "the 404 says: %s", s.buf ? s.buf : "");
        stream_close(&s);
    }
    ck_assert_int_eq((int)prom("traind_event_streams"), 0);
    /* with the token too: a token proves who asks, not that the job exists */
    stream_open(&s, "/events?job=no-such-job", g_d.token, 0);
    ck_assert_int_eq(s.status, 404);
    stream_close(&s);
    char *id = submit_fast("there");
    char *path = xasprintf("/events?job=%s", id);
    stream_open(&s, path, NULL, 0);
    ck_assert_int_eq(s.status, 200);
    stream_close(&s);
    cancel(id);
    free(path);
    free(id);
}
END_TEST

/* Every slot held by token-less streams: the next token-less one is 503,
 * a token holder's takes a token-less one's place (which ends), and token
 * holders never take each other's.  Before: 503 for everyone. */
START_TEST(token_holder_never_locked_out)
{
    enum { MAX = 4 };
    start("max_event_streams: 4\n");
    stream anon[MAX], own[MAX + 1];
    for (int i = 0; i < MAX; i++) {
        stream_open(&anon[i], "/events", NULL, 0);
        ck_assert_int_eq(anon[i].status, 200);
    }
    stream extra;
    stream_open(&extra, "/events", NULL, 0);
    ck_assert_msg(extra.status == 503, "a token-less stream past the cap: %d, want 503", extra.status);
    stream_close(&extra);
    /* a wrong token is no token */
    stream_open(&extra, "/events", "not-the-token", 0);
    ck_assert_msg(extra.status == 503, "a wrong token past the cap: %d, want 503", extra.status);
    stream_close(&extra);

    for (int k = 0; k < MAX; k++) {
        stream_open(&own[k], "/events", g_d.token, 0);
        ck_assert_msg(own[k].status == 200, "token holder %d with every slot held: %d, want 200", k + 1,
                      own[k].status);
        /* one token-less stream ended for it */
        int ended = 0;
        double end = tl_now() + 10;
        while (ended < k + 1 && tl_now() < end) {
            ended = 0;
            for (int i = 0; i < MAX; i++)
                ended += stream_ended_within(&anon[i], 0.02);
        }
        ck_assert_int_eq(ended, k + 1);
    }
    ck_assert_int_eq((int)prom("traind_event_streams_evicted_total"), MAX);
    /* all slots are token holders': the next one waits like anyone */
    stream_open(&own[MAX], "/events", g_d.token, 0);
    ck_assert_msg(own[MAX].status == 503, "a token holder past a cap held by token holders: %d, want 503",
                  own[MAX].status);
    stream_close(&own[MAX]);
    for (int k = 0; k < MAX; k++) {
        ck_assert_msg(!stream_ended_within(&own[k], 0.05), "token holder %d's stream ended", k + 1);
        stream_close(&own[k]);
    }
    for (int i = 0; i < MAX; i++)
        stream_close(&anon[i]);
    ck_assert(tl_log_wait(&g_d, "closed to make room for a token holder's", 5));
}
END_TEST

/* A client that reads nothing of a replay is dropped once its output has
 * waited event_stream_timeout_ms; a client that reads stays.  Before: a
 * replay was paced by the client's reading and never passed the output cap,
 * so a client that never read held its slot (and half the cap of memory)
 * for good. */
START_TEST(non_reading_stream_dropped)
{
    start("event_stream_timeout_ms: 1000\nmax_jobs: 2\n");
    stream reader;
    stream_open(&reader, "/events", NULL, 0);
    ck_assert_int_eq(reader.status, 200);
    char *boot = stream_hello_boot(&reader);
    char *a = submit_fast("fast-a"), *b = submit_fast("fast-b");
    /* the ring must hold more than the sockets between us take: a few hundred points */
    double end = tl_now() + 60;
    while (reader.points < 300 && tl_now() < end)
        stream_read(&reader, 100);
    ck_assert_msg(reader.points >= 300, "only %ld points in 60 s", reader.points);

    /* replays everything from the first event, and never reads it */
    char *path = xasprintf("/events?last_event_id=%s-1", boot);
    stream idle;
    stream_open(&idle, path, NULL, 2048);
    ck_assert_int_eq(idle.status, 200);
    double t0 = tl_now();
    end = t0 + 60;
    while (prom("traind_event_streams_dropped_total") < 1 && tl_now() < end)
        stream_read(&reader, 100);
    double took = tl_now() - t0;
    printf("non_reading_stream_dropped: dropped after %.1f s (event_stream_timeout_ms 1000)\n", took);
    fflush(stdout);
    ck_assert_msg(prom("traind_event_streams_dropped_total") >= 1, "a stream that reads nothing was not dropped in 60 s");
    ck_assert(tl_log_wait(&g_d, "its client read nothing for 1000 ms", 5));
    ck_assert_msg(stream_ended_within(&idle, 10), "the dropped stream's connection stayed open");
    /* the one that reads was not dropped, and still gets points */
    long seen = reader.points;
    end = tl_now() + 10;
    while (reader.points == seen && !reader.eof && tl_now() < end)
        stream_read(&reader, 100);
    ck_assert_msg(!reader.eof && reader.points > seen, "the stream that reads was dropped");
    ck_assert_int_eq((int)prom("traind_event_streams_dropped_total"), 1);
    stream_close(&idle);
    stream_close(&reader);
    cancel(a);
    cancel(b);
    free(path);
    free(boot);
    free(a);
    free(b);
}
END_TEST

/* ---- cost ------------------------------------------------------------------ */

/* Readers that read every event, on a thread of their own. */
typedef struct readers {
    stream *s;
    int n;
    volatile bool stop;
} readers;

static void *readers_run(void *arg)
{
    readers *r = arg;
    struct pollfd *pf = xcalloc((size_t)r->n, sizeof *pf);
    char buf[65536];
    while (!r->stop) {
        for (int i = 0; i < r->n; i++)
            pf[i] = (struct pollfd){.fd = r->s[i].fd, .events = POLLIN};
        if (poll(pf, (nfds_t)r->n, 100) <= 0)
            continue;
        for (int i = 0; i < r->n; i++)
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
                (void)!recv(r->s[i].fd, buf, sizeof buf, MSG_DONTWAIT);
    }
    free(pf);
    return NULL;
}

/* The daemon's CPU seconds so far (user + system, from /proc). */
static double daemon_cpu_s(void)
{
    char *path = xasprintf("/proc/%d/stat", (int)g_d.pid);
    char *text = tl_read(path, NULL);
    free(path);
    ck_assert_ptr_nonnull(text);
    const char *p = strrchr(text, ')');
    unsigned long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
    free(text);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long job_step(const char *id)
{
    cJSON *j = tl_get_job(&g_d, id);
    ck_assert_ptr_nonnull(j);
    long s = (long)tl_num(j, "step");
    cJSON_Delete(j);
    return s;
}

typedef struct window {
    double steps_per_s, cpu_share, cpu_us_per_step;
} window;

/* The job's steps/s and the daemon's CPU over secs seconds. */
static window measure(const char *id, double secs)
{
    long s0 = job_step(id);
    double c0 = daemon_cpu_s(), t0 = tl_now();
    tl_sleep_ms((int)(secs * 1000));
    long s1 = job_step(id);
    double c1 = daemon_cpu_s(), t1 = tl_now();
    window w = {(double)(s1 - s0) / (t1 - t0), (c1 - c0) / (t1 - t0), 0};
    w.cpu_us_per_step = s1 > s0 ? (c1 - c0) * 1e6 / (double)(s1 - s0) : INFINITY;
    return w;
}

/* One job logging every step: its steps/s with 32 streams that read every
 * event against none, and the daemon's CPU per step.  Before: the loop
 * wrote each point to every stream, fell behind the worker, and the
 * worker's blocking writes to its progress socket slowed it to a seventh. */
START_TEST(job_speed_independent_of_readers)
{
    enum { N = 32 };
    start("max_event_streams: 64\n");
    char *id = submit_fast("watched-fast");
    long warm = 2000;
    cJSON_Delete(tl_wait_job_of(&g_d, id, tl_job_at_step, &warm, 60));
    double secs = TL_ASAN ? 4 : 2;
    window none = measure(id, secs);

    readers r = {.s = xcalloc(N, sizeof(stream)), .n = N};
    for (int i = 0; i < N; i++) {
        stream_open(&r.s[i], "/events", NULL, 0);
        ck_assert_int_eq(r.s[i].status, 200);
    }
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, readers_run, &r), 0);
    tl_sleep_ms(200);
    window with = measure(id, secs);
    r.stop = true;
    pthread_join(th, NULL);

    double ratio = with.steps_per_s / none.steps_per_s;
    printf("job_speed_independent_of_readers: %.0f steps/s with no reader, %.0f with %d (ratio %.2f); daemon CPU "
           "%.0f%% -> %.0f%% of a core, %.1f -> %.1f us per step; %.0f points coalesced\n",
           none.steps_per_s, with.steps_per_s, N, ratio, 100 * none.cpu_share, 100 * with.cpu_share,
           none.cpu_us_per_step, with.cpu_us_per_step, prom("traind_event_points_coalesced_total"));
    fflush(stdout);
    ck_assert_msg(none.steps_per_s > 100, "the job trained at %.0f steps/s", none.steps_per_s);
    ck_assert_msg(ratio >= 0.5, "%d readers slowed the job from %.0f to %.0f steps/s", N, none.steps_per_s,
                  with.steps_per_s);
    /* what a point costs the daemon does not grow with who reads it (the
     * slack absorbs a busy machine's noise on small figures) */
    ck_assert_msg(with.cpu_us_per_step <= 3 * none.cpu_us_per_step + 5,
                  "the daemon's CPU per step grew from %.1f to %.1f us with %d readers", none.cpu_us_per_step,
                  with.cpu_us_per_step, N);
    ck_assert_msg(with.cpu_share < 0.9, "the daemon used %.0f%% of a core while %d streams read",
                  100 * with.cpu_share, N);
    ck_assert_msg(prom("traind_event_points_coalesced_total") > 0, "no point was coalesced");
    for (int i = 0; i < N; i++) {
        ck_assert_msg(!r.s[i].eof, "reader %d was dropped", i);
        stream_close(&r.s[i]);
    }
    free(r.s);
    cancel(id);
    free(id);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("event_streams");
    TCase *slots = tcase_create("slots");
    tcase_add_checked_fixture(slots, setup, teardown);
    tcase_set_timeout(slots, 180);
    tcase_add_test(slots, missing_job_is_404);
    tcase_add_test(slots, token_holder_never_locked_out);
    tcase_add_test(slots, non_reading_stream_dropped);
    suite_add_tcase(s, slots);
    TCase *cost = tcase_create("cost");
    tcase_add_checked_fixture(cost, setup, teardown);
    tcase_set_timeout(cost, 180);
    tcase_add_test(cost, job_speed_independent_of_readers);
    suite_add_tcase(s, cost);
    return s;
}

int main(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    return tl_run_suite(suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * test_dashboard_srv — the server side of the dashboard on a real
 * traind over a temporary spool:
 *
 *   static    GET /, /ui/..., /lib/chart.js/...: Content-Type, ETag, 304 on
 *             If-None-Match, Cache-Control; every way out of the folders
 *             (.., %2e%2e, %2f, a symlink out, a NUL, a folder) is 404.
 *   preview   POST /validate of good and bad run configs and sweeps (the
 *             bad key's line and column; nothing written); POST /schedule's
 *             curves equal the schedule's formula, at most max points; both
 *             answer without a token, within the write rate.
 *   events    GET /events: a job's state changes and points arrive; a
 *             reconnect with Last-Event-ID gets exactly the missed events;
 *             ?job= filters; reset for an unknown id; a client that never
 *             reads is dropped while /healthz stays fast; past
 *             max_event_streams 503.  The delay from a worker's point
 *             reaching metrics.jsonl to its event reaching the client is
 *             measured and printed.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/util.h"
#include "../lib/tl.h"

static char *g_dir;
static tl_daemon g_d;

#define MAX_STREAMS 4

static void setup(void)
{
    g_dir = tl_tmpdir("traind-dash");
    ck_assert_ptr_nonnull(g_dir);
    memset(&g_d, 0, sizeof g_d);
    /* the page's folder, a Chart.js folder, a secret outside both */
    char *p;
    p = xasprintf("%s/www", g_dir);
    mkdir(p, 0755);
    free(p);
    p = xasprintf("%s/www/sub", g_dir);
    mkdir(p, 0755);
    free(p);
    p = xasprintf("%s/cjs", g_dir);
    mkdir(p, 0755);
    free(p);
    const char *files[][2] = {
        {"www/index.html", "<!doctype html><title>t</title>"},
        {"www/app.js", "console.log(1);\n"},
        {"www/style.css", "body{}\n"},
        {"www/sub/x.json", "{}"},
        {"www/.hidden", "no"},
        {"cjs/chart.min.js", "/* chart */"},
        {"secret.txt", "SECRET"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        p = xasprintf("%s/%s", g_dir, files[i][0]);
        ck_assert_int_eq(tl_write(p, files[i][1]), 0);
        free(p);
    }
    char *target = xasprintf("%s/secret.txt", g_dir), *link = xasprintf("%s/www/out", g_dir);
    ck_assert_int_eq(symlink(target, link), 0);
    free(link);
    free(target);
    link = xasprintf("%s/www/in.js", g_dir);
    ck_assert_int_eq(symlink("app.js", link), 0);   /* a link within: fine */
    free(link);
    char *conf = xasprintf("%s/traind.yaml", g_dir);
    /* a stream that reads nothing is dropped after 5 s (events_slow_client_dropped) */
    char *text = xasprintf("www_dir: %s/www\nchartjs_dir: %s/cjs\nmax_event_streams: %d\nmax_jobs: 2\n"
                           "event_stream_timeout_ms: 5000\n", g_dir, g_dir, MAX_STREAMS);
    ck_assert_int_eq(tl_write(conf, text), 0);
    free(text);
    char *spool = xasprintf("%s/spool", g_dir);
    const char *args[] = {"--config", conf, NULL};
    if (tl_daemon_start(&g_d, spool, args, 20) != 0) {
        char *log = tl_read(g_d.log, NULL);
        ck_abort_msg("traind did not start: %s", log ? log : "(no log)");
    }
    free(spool);
    free(conf);
}

static void teardown(void)
{
    if (g_d.pid > 0)
        tl_daemon_stop(&g_d, SIGTERM, 20);
    tl_daemon_free(&g_d);
    tl_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

/* ---- static files ------------------------------------------------------- */

static int raw_get(const char *target, const char *extra, tl_resp *r)
{
    char *req = xasprintf("GET %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n\r\n", target,
                          extra ? extra : "");
    int rc = tl_http_raw(g_d.addr, req, strlen(req), 5000, r);
    free(req);
    return rc;
}

static void expect_header(const tl_resp *r, const char *name, const char *want)
{
    char *v = tl_header(r, name);
    ck_assert_msg(v && strcmp(v, want) == 0, "%s: got '%s', want '%s'", name, v ? v : "(none)", want);
    free(v);
}

START_TEST(static_files)
{
    tl_resp r;
    ck_assert_int_eq(raw_get("/", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "<!doctype html><title>t</title>");
    expect_header(&r, "Content-Type", "text/html; charset=utf-8");
    expect_header(&r, "Cache-Control", "no-cache");
    char *etag = tl_header(&r, "ETag");
    ck_assert_msg(etag && etag[0] == '"', "no strong ETag: %s", r.head);
    char *csp = tl_header(&r, "Content-Security-Policy");
    ck_assert_msg(csp && strstr(csp, "script-src 'self'") && !strstr(csp, "unsafe-eval"), "CSP: %s", csp);
    free(csp);
    tl_resp_free(&r);

    /* If-None-Match with it: 304, no body; another tag: 200 */
    char *inm = xasprintf("If-None-Match: W/\"x\", %s\r\n", etag);
    ck_assert_int_eq(raw_get("/", inm, &r), 0);
    ck_assert_int_eq(r.status, 304);
    ck_assert_uint_eq(r.len, 0);
    expect_header(&r, "ETag", etag);
    tl_resp_free(&r);
    free(inm);
    ck_assert_int_eq(raw_get("/", "If-None-Match: \"other\"\r\n", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);

    /* an edit changes the tag */
    tl_sleep_ms(20);
    char *p = xasprintf("%s/www/index.html", g_dir);
    ck_assert_int_eq(tl_write(p, "<!doctype html><title>new</title>"), 0);
    free(p);
    ck_assert_int_eq(raw_get("/ui/index.html", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "<!doctype html><title>new</title>");
    char *etag2 = tl_header(&r, "ETag");
    ck_assert_str_ne(etag2, etag);
    free(etag2);
    free(etag);
    tl_resp_free(&r);

    struct {
        const char *path, *type, *cache;
    } ok[] = {
        {"/ui/app.js", "text/javascript; charset=utf-8", "no-cache"},
        {"/ui/style.css", "text/css; charset=utf-8", "no-cache"},
        {"/ui/sub/x.json", "application/json", "no-cache"},
        {"/ui/in.js", "text/javascript; charset=utf-8", "no-cache"},
        {"/ui/%61pp.js", "text/javascript; charset=utf-8", "no-cache"},
        {"/lib/chart.js/chart.min.js", "text/javascript; charset=utf-8", "public, max-age=3600"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ck_assert_int_eq(raw_get(ok[i].path, NULL, &r), 0);
        ck_assert_msg(r.status == 200, "%s: %d", ok[i].path, r.status);
        expect_header(&r, "Content-Type", ok[i].type);
        expect_header(&r, "Cache-Control", ok[i].cache);
        tl_resp_free(&r);
    }

    /* every way out, and what is not a file: 404 (never SECRET) */
    static const char *const bad[] = {
        "/ui/../secret.txt",          "/ui/%2e%2e/secret.txt",       "/ui/%2E%2E%2Fsecret.txt",
        "/ui/sub/../../secret.txt",   "/ui/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/ui/out",                    "/ui//etc/passwd",             "/ui/%2fetc%2fpasswd",
        "/ui/%00",                    "/ui/app.js%00.html",          "/ui/.hidden",
        "/ui/sub",                    "/ui/sub/",                    "/ui/",
        "/ui/nope.js",                "/ui/%zz",                     "/ui/%c0%ae%c0%ae/secret.txt",
        "/lib/chart.js/../../../etc/passwd", "/lib/chart.js/%2e%2e/secret.txt", "/lib/chart.js/",
        "/ui/./app.js",               "/ui/sub/./x.json",            "/ui/\\..\\secret.txt",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(raw_get(bad[i], NULL, &r), 0);
        ck_assert_msg(r.status == 404 || r.status == 400, "%s: %d %s", bad[i], r.status, r.body);
        ck_assert_msg(!strstr(r.body, "SECRET"), "%s leaked the secret", bad[i]);
        tl_resp_free(&r);
    }
    /* an absolute-form target names the same paths */
    ck_assert_int_eq(raw_get("http://localhost/ui/../secret.txt", NULL, &r), 0);
    ck_assert_msg(r.status == 404 || r.status == 400, "absolute form: %d", r.status);
    ck_assert(!strstr(r.body, "SECRET"));
    tl_resp_free(&r);
    /* a write is not a GET */
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/ui/app.js", g_d.token, "x", 1, &r), 0);
    ck_assert_int_eq(r.status, 405);
    tl_resp_free(&r);
}
END_TEST

/* ---- POST /validate, POST /schedule ------------------------------------- */

static const char JOB_FMT[] = "name: %s\n"
                              "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 3}\n"
                              "data: {kind: synthetic, batch_size: 16}\n"
                              "optimizer: {type: adamw, lr: 1.0e-3}\n"
                              "schedule: {type: cosine, total_steps: %ld}\n"
                              "train: {log_every: %ld, checkpoint_every: 0}\n";

static char *job_yaml(const char *name, long steps, long log_every)
{
    return xasprintf(JOB_FMT, name, steps, log_every);
}

static cJSON *post(const char *path, const char *body, int *status)
{
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", path, g_d.token, body, strlen(body), &r), 0);
    *status = r.status;
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_msg(j != NULL, "POST %s: %d %s", path, r.status, r.body);
    tl_resp_free(&r);
    return j;
}

static int count_entries(const char *dir)
{
    char *cmd = xasprintf("ls -A %s 2>/dev/null | wc -l", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f && fscanf(f, "%d", &n) != 1)
        n = -1;
    if (f)
        pclose(f);
    free(cmd);
    return n;
}

START_TEST(validate)
{
    int st;
    char *good = job_yaml("vgood", 1000, 10);
    cJSON *j = post("/validate", good, &st);
    ck_assert_int_eq(st, 200);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    ck_assert_str_eq(tl_str(j, "kind"), "job");
    ck_assert_str_eq(tl_str(j, "name"), "vgood");
    ck_assert_int_eq((long)tl_num(j, "total_steps"), 1000);
    cJSON_Delete(j);
    free(good);

    /* a misspelt key on line 5, column 29; an lr that is not a number on line 4 */
    const char *bad = "name: vbad\n"
                      "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 3}\n"
                      "data: {kind: synthetic, batch_size: 16}\n"
                      "optimizer: {type: adamw, lr: fast}\n"
                      "schedule: {type: cosine, total_stepz: 10}\n";
    j = post("/validate", bad, &st);
    ck_assert_int_eq(st, 422);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")));
    cJSON *errs = cJSON_GetObjectItem(j, "errors"), *e;
    bool saw_key = false, saw_lr = false;
    cJSON_ArrayForEach(e, errs)
    {
        const char *path = tl_str(e, "path");
        if (path && !strcmp(path, "schedule.total_stepz")) {
            saw_key = true;
            ck_assert_int_eq((int)tl_num(e, "line"), 5);
            ck_assert_int_eq((int)tl_num(e, "column"), 26);
            ck_assert_msg(strstr(tl_str(e, "message"), "total_steps"), "no suggestion: %s", tl_str(e, "message"));
        }
        if (path && !strcmp(path, "optimizer.lr")) {
            saw_lr = true;
            ck_assert_int_eq((int)tl_num(e, "line"), 4);
            ck_assert_int_eq((int)tl_num(e, "column"), 30);
        }
    }
    char *txt = cJSON_PrintUnformatted(j);
    ck_assert_msg(saw_key && saw_lr, "errors: %s", txt);
    free(txt);
    cJSON_Delete(j);

    /* a sweep: its trials counted; a bad swept value points into sweep: */
    const char *sweep = "name: sw\n"
                        "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 3}\n"
                        "data: {kind: synthetic, batch_size: 16}\n"
                        "schedule: {type: cosine, total_steps: 100}\n"
                        "sweep:\n"
                        "  method: grid\n"
                        "  parameters:\n"
                        "    optimizer.lr: [1.0e-3, 3.0e-3, 1.0e-2]\n"
                        "    optimizer.weight_decay: [0.0, 0.1]\n";
    j = post("/validate", sweep, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(tl_str(j, "kind"), "experiment");
    ck_assert_int_eq((int)tl_num(j, "trials"), 6);
    ck_assert_int_eq((long)tl_num(j, "total_steps"), 600);
    /* and one trial's length, which the editor states */
    cJSON *per = cJSON_GetObjectItem(j, "trial_steps");
    ck_assert_int_eq((long)tl_num(per, "min"), 100);
    ck_assert_int_eq((long)tl_num(per, "max"), 100);
    cJSON_Delete(j);
    const char *badsweep = "name: sw\n"
                           "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 3}\n"
                           "data: {kind: synthetic, batch_size: 16}\n"
                           "schedule: {type: cosine, total_steps: 100}\n"
                           "sweep:\n"
                           "  method: grid\n"
                           "  parameters:\n"
                           "    optimizer.lr: [1.0e-3, -5]\n";
    j = post("/validate", badsweep, &st);
    ck_assert_int_eq(st, 422);
    ck_assert_str_eq(tl_str(j, "kind"), "experiment");
    e = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "errors"), 0);
    ck_assert_msg(e && tl_num(e, "line") == 8, "sweep error not on line 8");
    cJSON_Delete(j);

    /* nothing was queued or written */
    char *jobs = xasprintf("%s/jobs", g_d.spool), *exps = xasprintf("%s/experiments", g_d.spool);
    ck_assert_int_eq(count_entries(jobs), 0);
    ck_assert_int_le(count_entries(exps), 0);
    free(jobs);
    free(exps);
    /* no token is needed: it writes nothing; see preview_without_token */
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/validate", NULL, bad, strlen(bad), &r), 0);
    ck_assert_int_eq(r.status, 422);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/validate", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 405);
    tl_resp_free(&r);
}
END_TEST

START_TEST(schedule)
{
    int st;
    long T = 1000;
    char *y = job_yaml("sch", T, 10);
    for (int max = 2; max <= 7; max += 5) {
        char *path = xasprintf("/schedule?max=%d", max);
        cJSON *j = post(path, y, &st);
        free(path);
        ck_assert_int_eq(st, 200);
        cJSON *curves = cJSON_GetObjectItem(j, "curves");
        ck_assert_int_eq(cJSON_GetArraySize(curves), 1);
        cJSON *c = cJSON_GetArrayItem(curves, 0);
        ck_assert_str_eq(tl_str(c, "label"), "cosine");
        cJSON *pts = cJSON_GetObjectItem(c, "points");
        ck_assert_int_eq(cJSON_GetArraySize(pts), max);
        long prev = -1;
        cJSON *p;
        cJSON_ArrayForEach(p, pts)
        {
            long step = (long)cJSON_GetArrayItem(p, 0)->valuedouble;
            double lr = cJSON_GetArrayItem(p, 1)->valuedouble;
            ck_assert_int_gt(step, prev);
            prev = step;
            /* HF cosine without warmup: lr0 * 0.5 * (1 + cos(pi * s / T)) */
            double want = 1e-3 * 0.5 * (1.0 + cos(M_PI * (double)step / (double)T));
            ck_assert_msg(fabs(lr - want) <= 1e-15 + 1e-12 * want, "step %ld: %.17g, want %.17g", step, lr, want);
        }
        ck_assert_int_eq((long)cJSON_GetArrayItem(cJSON_GetArrayItem(pts, 0), 0)->valuedouble, 0);
        ck_assert_int_eq(prev, T - 1);
        cJSON_Delete(j);
    }
    /* default: at most 500 points */
    cJSON *j = post("/schedule", y, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "curves"), 0),
                                                            "points")),
                     500);
    cJSON_Delete(j);
    free(y);

    /* a sweep: one curve per distinct schedule (weight_decay changes none) */
    const char *sweep = "name: sw\n"
                        "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 3}\n"
                        "data: {kind: synthetic, batch_size: 16}\n"
                        "schedule: {type: cosine, total_steps: 100}\n"
                        "sweep:\n"
                        "  method: grid\n"
                        "  parameters:\n"
                        "    optimizer.lr: [1.0e-3, 2.0e-3]\n"
                        "    optimizer.weight_decay: [0.0, 0.1]\n";
    j = post("/schedule?max=10", sweep, &st);
    ck_assert_int_eq(st, 200);
    cJSON *curves = cJSON_GetObjectItem(j, "curves");
    ck_assert_int_eq(cJSON_GetArraySize(curves), 2);
    cJSON *c1 = cJSON_GetArrayItem(curves, 1);
    ck_assert_msg(strstr(tl_str(c1, "label"), "optimizer.lr=2.0e-3"), "label: %s", tl_str(c1, "label"));
    ck_assert_int_eq((int)tl_num(c1, "trial"), 3);
    double lr0 = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c1, "points"), 0), 1)->valuedouble;
    ck_assert(fabs(lr0 - 2e-3) < 1e-15);
    cJSON_Delete(j);
    /* bad max, bad config */
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/schedule?max=1", g_d.token, sweep, strlen(sweep), &r), 0);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);
    j = post("/schedule", "name: x\nschedule: {total_steps: -1}\n", &st);
    ck_assert_int_eq(st, 422);
    cJSON_Delete(j);
}
END_TEST

/* POST /validate and POST /schedule without a token: answered
 * as with one, nothing written, and charged to the write rate (a token-less
 * caller's own bucket): a flood of them is 429 while a client with the
 * token still validates and submits. */
START_TEST(preview_without_token)
{
    char *good = job_yaml("anon", 100, 10);
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/validate", NULL, good, strlen(good), &r), 0);
    ck_assert_int_eq(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    cJSON_Delete(j);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/schedule?max=5", NULL, good, strlen(good), &r), 0);
    ck_assert_int_eq(r.status, 200);
    j = cJSON_Parse(r.body);
    cJSON *pts = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "curves"), 0), "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 5);
    cJSON_Delete(j);
    tl_resp_free(&r);
    /* a wrong token does not matter either (it is charged as none) */
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/validate", "wrong", good, strlen(good), &r), 0);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    /* submitting still needs the token */
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/jobs", NULL, good, strlen(good), &r), 0);
    ck_assert_int_eq(r.status, 401);
    tl_resp_free(&r);
    /* bounded: the daemon's write rate (2/s, burst 2 after this SIGHUP) holds for them */
    char *conf = xasprintf("%s/traind.yaml", g_dir);
    char *text = xasprintf("www_dir: %s/www\nchartjs_dir: %s/cjs\nmax_event_streams: %d\nmax_jobs: 2\n"
                           "write_rate_per_client: 2\nwrite_burst_per_client: 2\n",
                           g_dir, g_dir, MAX_STREAMS);
    ck_assert_int_eq(tl_write(conf, text), 0);
    free(text);
    free(conf);
    kill(g_d.pid, SIGHUP);
    double deadline = tl_now() + 10;
    while (tl_log_count(&g_d, "SIGHUP: write_burst_per_client:") < 1 && tl_now() < deadline)
        tl_sleep_ms(20);
    ck_assert_msg(tl_log_count(&g_d, "SIGHUP: write_burst_per_client:") == 1, "the SIGHUP was not applied");
    int allowed = 0, limited = 0;
    double t0 = tl_now();
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(tl_http(g_d.addr, "POST", "/validate", NULL, good, strlen(good), &r), 0);
        ck_assert_msg(r.status == 200 || r.status == 429, "token-less validate %d: %d", i, r.status);
        if (r.status == 429) {
            char *ra = tl_header(&r, "Retry-After");
            ck_assert_ptr_nonnull(ra);
            free(ra);
            limited++;
        } else {
            allowed++;
        }
        tl_resp_free(&r);
    }
    double dt = tl_now() - t0;
    ck_assert_msg(limited >= 1 && allowed <= 2 + (int)(dt * 2) + 1, "%d allowed in %.2f s", allowed, dt);
    /* ...in a bucket of its own: the token's client is not limited by them */
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/validate", g_d.token, good, strlen(good), &r), 0);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    char *jobs = xasprintf("%s/jobs", g_d.spool);
    ck_assert_int_eq(count_entries(jobs), 0);
    free(jobs);
    free(good);
}
END_TEST

/* GET /jobs?q= (a name substring, any case) with state= and paging. */
START_TEST(jobs_query)
{
    const char *names[] = {"alpha-one", "Alpha-two", "beta", "my alpha"};
    char *ids[4];
    for (int i = 0; i < 4; i++) {
        char *y = job_yaml(names[i], 20, 10);
        tl_resp r;
        ck_assert_int_eq(tl_http(g_d.addr, "POST", "/jobs", g_d.token, y, strlen(y), &r), 0);
        ck_assert_int_eq(r.status, 201);
        cJSON *j = cJSON_Parse(r.body);
        ids[i] = xstrdup(tl_str(j, "id"));
        cJSON_Delete(j);
        tl_resp_free(&r);
        free(y);
    }
    int st;
    cJSON *a = tl_get_json(g_d.addr, "/jobs?q=ALPHA", &st);
    ck_assert_int_eq(cJSON_GetArraySize(a), 3);
    cJSON *j;
    cJSON_ArrayForEach(j, a) ck_assert_ptr_nonnull(strcasestr(tl_str(j, "name"), "alpha"));
    cJSON_Delete(a);
    /* paged: the Link keeps q (escaped) */
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/jobs?q=my%20alpha&limit=1", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/jobs?q=alpha&limit=2", NULL, NULL, 0, &r), 0);
    char *link = tl_header(&r, "Link");
    ck_assert_msg(link && strstr(link, "&q=alpha>"), "Link: %s", link ? link : "(none)");
    char *url = xstrndup(link + 1, (size_t)(strchr(link, '>') - link - 1));
    tl_resp_free(&r);
    a = tl_get_json(g_d.addr, url, &st);
    ck_assert_int_eq(cJSON_GetArraySize(a), 1);
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(a, 0), "name"), "alpha-one");
    cJSON_Delete(a);
    free(url);
    free(link);
    /* with state: once they have all ended */
    for (int i = 0; i < 4; i++) {
        cJSON *done = tl_wait_job(g_d.addr, ids[i], tl_job_ended, NULL, 60);
        ck_assert_ptr_nonnull(done);
        cJSON_Delete(done);
    }
    a = tl_get_json(g_d.addr, "/jobs?state=succeeded&q=beta", &st);
    ck_assert_int_eq(cJSON_GetArraySize(a), 1);
    cJSON_Delete(a);
    a = tl_get_json(g_d.addr, "/jobs?state=queued&q=beta", &st);
    ck_assert_int_eq(cJSON_GetArraySize(a), 0);
    cJSON_Delete(a);
    a = tl_get_json(g_d.addr, "/jobs?q=", &st);   /* empty: every job */
    ck_assert_int_eq(cJSON_GetArraySize(a), 4);
    cJSON_Delete(a);
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *path = xasprintf("/jobs?q=%s", big);
    ck_assert_int_eq(tl_http(g_d.addr, "GET", path, NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);
    free(path);
    /* GET /jobs/{id}: config_keys, what the job's own config.yaml sets (the
     * Compare view's table), not the defaults its config object holds */
    char *jpath = xasprintf("/jobs/%s", ids[0]);
    cJSON *one = tl_get_json(g_d.addr, jpath, &st);
    free(jpath);
    ck_assert_int_eq(st, 200);
    cJSON *keys = cJSON_GetObjectItem(one, "config_keys");
    ck_assert_msg(cJSON_IsArray(keys), "no config_keys");
    char *txt = cJSON_PrintUnformatted(keys);
    ck_assert_str_eq(txt, "[\"name\",\"model.type\",\"model.input_dim\",\"model.hidden\",\"model.output_dim\","
                          "\"data.kind\",\"data.batch_size\",\"optimizer.type\",\"optimizer.lr\",\"schedule.type\","
                          "\"schedule.total_steps\",\"train.log_every\",\"train.checkpoint_every\"]");
    free(txt);
    /* the config object has more: the defaults that follow */
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(one, "config"), "schedule"),
                                              "warmup_steps"));
    cJSON_Delete(one);
    for (int i = 0; i < 4; i++)
        free(ids[i]);
}
END_TEST

/* ---- an SSE client ------------------------------------------------------ */

typedef struct sse {
    int fd;
    int status;
    char *buf;
    size_t len, cap;
    bool eof;
} sse;

typedef struct sse_ev {
    char id[64];
    char event[32];
    char *data;
} sse_ev;

static int tcp_connect(const char *addr, int rcvbuf)
{
    char host[128];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool sse_fill(sse *s, int timeout_ms)
{
    struct pollfd pf = {.fd = s->fd, .events = POLLIN};
    if (poll(&pf, 1, timeout_ms) <= 0)
        return false;
    if (s->cap - s->len < 65536) {
        s->cap = s->cap ? s->cap * 2 : 131072;
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

/* Connects (without reading the stream when rcvbuf > 0 and no_read). */
static void sse_open_ex(sse *s, const char *path, const char *last_id, int rcvbuf, bool read_head)
{
    memset(s, 0, sizeof *s);
    s->fd = tcp_connect(g_d.addr, rcvbuf);
    ck_assert_int_ge(s->fd, 0);
    char *req = xasprintf("GET %s HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n%s%s%s\r\n", path,
                          last_id ? "Last-Event-ID: " : "", last_id ? last_id : "", last_id ? "\r\n" : "");
    ck_assert_int_eq(send(s->fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    free(req);
    if (!read_head)
        return;
    double end = tl_now() + 5;
    char *h;
    while (!(h = s->buf ? strstr(s->buf, "\r\n\r\n") : NULL) && tl_now() < end && !s->eof)
        sse_fill(s, 100);
    ck_assert_msg(h != NULL, "no response head");
    s->status = atoi(s->buf + 9);
    size_t hl = (size_t)(h + 4 - s->buf);
    memmove(s->buf, h + 4, s->len - hl + 1);
    s->len -= hl;
}

static void sse_open(sse *s, const char *path, const char *last_id)
{
    sse_open_ex(s, path, last_id, 0, true);
}

static void sse_close(sse *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

/* The next event (comments skipped) within timeout_ms: true with *ev. */
static bool sse_next(sse *s, sse_ev *ev, int timeout_ms)
{
    double end = tl_now() + timeout_ms / 1000.0;
    for (;;) {
        char *sep = s->buf ? strstr(s->buf, "\n\n") : NULL;
        if (sep) {
            *sep = '\0';
            memset(ev, 0, sizeof *ev);
            bool any = false;
            for (char *line = s->buf, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                    *next++ = '\0';
                if (!strncmp(line, "id: ", 4))
                    snprintf(ev->id, sizeof ev->id, "%s", line + 4), any = true;
                else if (!strncmp(line, "event: ", 7))
                    snprintf(ev->event, sizeof ev->event, "%s", line + 7), any = true;
                else if (!strncmp(line, "data: ", 6))
                    ev->data = xstrdup(line + 6), any = true;
            }
            size_t used = (size_t)(sep + 2 - s->buf);
            memmove(s->buf, sep + 2, s->len - used + 1);
            s->len -= used;
            if (any)
                return true;
            continue;   /* a comment (": ping") */
        }
        double left = end - tl_now();
        if (left <= 0 || s->eof)
            return false;
        sse_fill(s, (int)(left * 1000) + 1);
    }
}

static char *submit(const char *yaml)
{
    int st;
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/jobs", g_d.token, yaml, strlen(yaml), &r), 0);
    st = r.status;
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_msg(st == 201 && j, "POST /jobs: %d %s", st, r.body);
    char *id = xstrdup(tl_str(j, "id"));
    cJSON_Delete(j);
    tl_resp_free(&r);
    return id;
}

/* Reads events until job id has ended; appends every id seen to ids. */
typedef struct seen {
    char (*ids)[64];
    long *steps;       /* the step of each point event, -1 for others */
    size_t n, cap;
    bool ended;
    bool saw_running;
} seen;

static void seen_add(seen *v, const sse_ev *ev, const char *job)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->ids = xrealloc(v->ids, v->cap * sizeof *v->ids);
        v->steps = xrealloc(v->steps, v->cap * sizeof *v->steps);
    }
    snprintf(v->ids[v->n], 64, "%s", ev->id);
    v->steps[v->n] = -1;
    cJSON *d = cJSON_Parse(ev->data);
    if (!strcmp(ev->event, "point")) {
        ck_assert_str_eq(tl_str(d, "job"), job);
        v->steps[v->n] = (long)tl_num(cJSON_GetObjectItem(d, "point"), "step");
    } else if (!strcmp(ev->event, "job") && !strcmp(tl_str(d, "id"), job)) {
        const char *state = tl_str(d, "state");
        if (!strcmp(state, "running"))
            v->saw_running = true;
        if (!strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "cancelled"))
            v->ended = true;
    }
    cJSON_Delete(d);
    v->n++;
}

static void read_until_ended(sse *s, seen *v, const char *job, double timeout_s)
{
    double end = tl_now() + timeout_s;
    sse_ev ev;
    while (!v->ended && tl_now() < end) {
        if (!sse_next(s, &ev, 1000))
            continue;
        if (ev.id[0])
            seen_add(v, &ev, job);
        free(ev.data);
    }
    ck_assert_msg(v->ended, "job %s did not end on the stream within %.0f s", job, timeout_s);
}

static void seen_free(seen *v)
{
    free(v->ids);
    free(v->steps);
    memset(v, 0, sizeof *v);
}

/* Reads the hello every stream starts with; its seq. */
static long expect_hello(sse *s)
{
    ck_assert_int_eq(s->status, 200);
    sse_ev ev;
    ck_assert(sse_next(s, &ev, 5000));
    ck_assert_str_eq(ev.event, "hello");
    ck_assert_str_eq(ev.id, "");
    cJSON *d = cJSON_Parse(ev.data);
    long seq = (long)tl_num(d, "seq");
    ck_assert_ptr_nonnull(tl_str(d, "boot"));
    cJSON_Delete(d);
    free(ev.data);
    return seq;
}

START_TEST(events_job_and_points)
{
    sse s;
    sse_open(&s, "/events", NULL);
    expect_hello(&s);
    char *y = job_yaml("evjob", 400, 10);
    char *id = submit(y);
    seen v = {0};
    read_until_ended(&s, &v, id, 60);
    ck_assert(v.saw_running);
    /* every point, once, in order: the same steps /metrics has */
    long want = 10;
    size_t points = 0;
    for (size_t i = 0; i < v.n; i++)
        if (v.steps[i] >= 0) {
            ck_assert_int_eq(v.steps[i], want);
            want += 10;
            points++;
        }
    ck_assert_uint_eq(points, 40);
    char *mp = xasprintf("/jobs/%s/metrics?limit=1000", id);
    int st;
    cJSON *m = tl_get_json(g_d.addr, mp, &st);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(m, "points")), 40);
    cJSON_Delete(m);
    free(mp);
    /* after=STEP: only the newer points (what a page appends to a fetched history) */
    mp = xasprintf("/jobs/%s/metrics?after=200", id);
    m = tl_get_json(g_d.addr, mp, &st);
    cJSON *pts = cJSON_GetObjectItem(m, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 20);
    ck_assert_int_eq((long)tl_num(cJSON_GetArrayItem(pts, 0), "step"), 210);
    cJSON_Delete(m);
    free(mp);
    /* ids increase by one from the first */
    for (size_t i = 1; i < v.n; i++) {
        const char *a = strrchr(v.ids[i - 1], '-'), *b = strrchr(v.ids[i], '-');
        ck_assert_msg(atol(b + 1) == atol(a + 1) + 1, "ids %s then %s", v.ids[i - 1], v.ids[i]);
    }
    seen_free(&v);
    sse_close(&s);
    free(id);
    free(y);
}
END_TEST

START_TEST(events_resume_no_loss_no_double)
{
    sse all, part;
    sse_open(&all, "/events", NULL);
    expect_hello(&all);
    sse_open(&part, "/events", NULL);
    expect_hello(&part);
    char *y = job_yaml("evres", 3000, 10);
    char *id = submit(y);
    /* part reads 20 events and goes away; the job goes on meanwhile */
    seen pv = {0};
    sse_ev ev;
    while (pv.n < 20) {
        ck_assert_msg(sse_next(&part, &ev, 20000), "fewer than 20 events");
        seen_add(&pv, &ev, id);
        free(ev.data);
    }
    sse_close(&part);
    tl_sleep_ms(300);
    char last[64];
    snprintf(last, sizeof last, "%s", pv.ids[pv.n - 1]);
    /* first reconnect by the query (EventSource's first connect), then it must match the header's */
    char *path = xasprintf("/events?last_event_id=%s", last);
    sse_open(&part, path, NULL);
    free(path);
    expect_hello(&part);
    read_until_ended(&part, &pv, id, 120);
    seen av = {0};
    read_until_ended(&all, &av, id, 120);
    ck_assert_uint_eq(pv.n, av.n);
    for (size_t i = 0; i < av.n; i++)
        ck_assert_msg(!strcmp(pv.ids[i], av.ids[i]), "event %zu: %s on the resumed stream, %s on the whole one", i,
                      pv.ids[i], av.ids[i]);
    sse_close(&part);

    /* the header, resuming from the middle: exactly the rest */
    const char *mid = av.ids[av.n / 2];
    sse_open(&part, "/events", mid);
    ck_assert_int_eq(expect_hello(&part), atol(strrchr(mid, '-') + 1));
    size_t k = av.n / 2 + 1;
    while (k < av.n) {
        ck_assert_msg(sse_next(&part, &ev, 5000), "replay stopped at %zu of %zu", k, av.n);
        ck_assert_str_eq(ev.id, av.ids[k]);
        free(ev.data);
        k++;
    }
    ck_assert(!sse_next(&part, &ev, 300));   /* nothing doubled after */
    sse_close(&part);

    /* another boot's id, or one never given: reset */
    const char *stale[] = {"1-5", "garbage", "99999999999999999999-1"};
    for (int i = 0; i < 3; i++) {
        sse_open(&part, "/events", stale[i]);
        expect_hello(&part);
        ck_assert(sse_next(&part, &ev, 5000));
        ck_assert_str_eq(ev.event, "reset");
        free(ev.data);
        sse_close(&part);
    }
    seen_free(&pv);
    seen_free(&av);
    sse_close(&all);
    free(id);
    free(y);
}
END_TEST

START_TEST(events_filter)
{
    char *ya = job_yaml("fa", 300, 10), *yb = job_yaml("fb", 300, 10);
    char *a = submit(ya);
    char *path = xasprintf("/events?job=%s", a);
    sse s;
    sse_open(&s, path, NULL);
    free(path);
    expect_hello(&s);
    char *b = submit(yb);
    seen v = {0};
    read_until_ended(&s, &v, a, 60);   /* seen_add checks every point is a's */
    ck_assert_uint_gt(v.n, 1);
    sse_close(&s);
    /* a bad id */
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/events?job=..%2Fx", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);
    seen_free(&v);
    free(a);
    free(b);
    free(ya);
    free(yb);
}
END_TEST

/* A stream of one job that does not resume starts with the job as it is
 * (a `job` event without an id): a client that read the job, then
 * subscribed after it ended, still learns that it ended (trainctl watch hung
 * on exactly that). */
START_TEST(events_job_snapshot)
{
    char *y = job_yaml("snap", 300, 10);
    char *id = submit(y);
    cJSON_Delete(tl_wait_state(&g_d, id, "succeeded", 60));
    char *path = xasprintf("/events?job=%s", id);
    sse s;
    sse_open(&s, path, NULL);
    expect_hello(&s);
    sse_ev ev;
    ck_assert_msg(sse_next(&s, &ev, 5000), "no event after hello");
    ck_assert_str_eq(ev.event, "job");
    ck_assert_str_eq(ev.id, "");   /* not in the ring: Last-Event-ID stays where it was */
    cJSON *d = cJSON_Parse(ev.data);
    ck_assert_str_eq(tl_str(d, "id"), id);
    ck_assert_str_eq(tl_str(d, "state"), "succeeded");
    cJSON_Delete(d);
    free(ev.data);
    sse_close(&s);
    /* a stream of every job has no snapshot: hello, then nothing until something happens */
    sse_open(&s, "/events", NULL);
    expect_hello(&s);
    ck_assert(!sse_next(&s, &ev, 300));
    sse_close(&s);
    free(path);
    free(id);
    free(y);
}
END_TEST

/* The value of an unlabelled sample in GET /metrics. */
static double prom_value(const char *name)
{
    tl_resp r;
    if (tl_http(g_d.addr, "GET", "/metrics", NULL, NULL, 0, &r) != 0)
        return NAN;
    double v = NAN;
    char *key = xasprintf("\n%s ", name);
    char *p = strstr(r.body, key);
    if (p)
        v = atof(p + strlen(key));
    free(key);
    tl_resp_free(&r);
    return v;
}

START_TEST(events_slow_client_dropped)
{
    /* a client that never reads, with a tiny receive window */
    sse slow;
    sse_open_ex(&slow, "/events", NULL, 2048, false);
    tl_sleep_ms(200);
    ck_assert_int_eq((int)prom_value("traind_event_streams"), 1);
    /* a job that logs every step for as long as it takes: its points come at
     * the per-job rate (traind(8)), ~200 bytes each, until the socket's
     * buffers are full; then the stream's output waits, and after
     * event_stream_timeout_ms (5 s here) it is dropped */
    char *y = job_yaml("flood", 50000000, 1);
    char *id = submit(y);
    double worst = 0, t_end = tl_now() + 120;
    bool dropped = false;
    int probes = 0;
    while (tl_now() < t_end && !dropped) {
        double t0 = tl_now();
        tl_resp r;
        ck_assert_int_eq(tl_http(g_d.addr, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        ck_assert_int_eq(r.status, 200);
        tl_resp_free(&r);
        double dt = tl_now() - t0;
        if (dt > worst)
            worst = dt;
        probes++;
        dropped = prom_value("traind_event_streams_dropped_total") >= 1;
        tl_sleep_ms(50);
    }
    printf("events_slow_client_dropped: dropped=%d after %d /healthz probes, slowest %.1f ms\n", dropped, probes,
           worst * 1e3);
    fflush(stdout);
    ck_assert_msg(dropped, "the stream that never reads was not dropped");
    ck_assert_msg(worst < 1.0, "/healthz took %.3f s while a stream was stuck", worst);
    ck_assert_int_eq((int)prom_value("traind_event_streams"), 0);
    /* the server closed it: reading now ends in EOF (after what was sent) */
    sse_ev ev;
    double end = tl_now() + 10;
    while (!slow.eof && tl_now() < end) {
        if (sse_next(&slow, &ev, 200))
            free(ev.data);
    }
    ck_assert(slow.eof);
    sse_close(&slow);
    tl_resp r;
    char *cp = xasprintf("/jobs/%s/cancel", id);
    tl_http(g_d.addr, "POST", cp, g_d.token, NULL, 0, &r);
    tl_resp_free(&r);
    free(cp);
    free(id);
    free(y);
}
END_TEST

START_TEST(events_stream_cap)
{
    sse s[MAX_STREAMS + 1];
    for (int i = 0; i < MAX_STREAMS; i++) {
        sse_open(&s[i], "/events", NULL);
        expect_hello(&s[i]);
    }
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/events", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 503);
    char *ra = tl_header(&r, "Retry-After");
    ck_assert_ptr_nonnull(ra);
    free(ra);
    tl_resp_free(&r);
    /* the API still answers */
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    /* one goes: room for another */
    sse_close(&s[0]);
    double end = tl_now() + 5;
    while (prom_value("traind_event_streams") >= MAX_STREAMS && tl_now() < end)
        tl_sleep_ms(20);
    sse_open(&s[MAX_STREAMS], "/events", NULL);
    expect_hello(&s[MAX_STREAMS]);
    for (int i = 1; i <= MAX_STREAMS; i++)
        sse_close(&s[i]);
    /* HEAD: the headers, no stream */
    ck_assert_int_eq(tl_http(g_d.addr, "HEAD", "/events", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char *ct = tl_header(&r, "Content-Type");
    ck_assert_str_eq(ct, "text/event-stream; charset=utf-8");
    free(ct);
    tl_resp_free(&r);
}
END_TEST

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The delay from a point's line landing in metrics.jsonl (inotify) to its
 * event arriving on a stream. */
START_TEST(events_delay)
{
    sse s;
    sse_open(&s, "/events", NULL);
    expect_hello(&s);
    /* slow enough that points are apart: ~1,000 steps of a wider MLP, a point every 10 */
    const char *y = "name: delay\n"
                    "model: {type: mlp, input_dim: 64, hidden: [256, 256], output_dim: 8}\n"
                    "data: {kind: synthetic, batch_size: 64}\n"
                    "schedule: {type: cosine, total_steps: 2000}\n"
                    "train: {log_every: 20, checkpoint_every: 0}\n";
    char *id = submit(y);
    char *dir = xasprintf("%s/jobs/%s", g_d.spool, id), *mpath = xasprintf("%s/metrics.jsonl", dir);
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    ck_assert_int_ge(in, 0);
    ck_assert_int_ge(inotify_add_watch(in, dir, IN_MODIFY | IN_CREATE), 0);
    enum { MAXP = 200 };
    double t_file[MAXP], t_ev[MAXP];
    for (int i = 0; i < MAXP; i++)
        t_file[i] = t_ev[i] = 0;
    long file_lines = 0;
    size_t off = 0;
    bool ended = false;
    double end = tl_now() + 120;
    while (!ended && tl_now() < end) {
        struct pollfd pf[2] = {{.fd = in, .events = POLLIN}, {.fd = s.fd, .events = POLLIN}};
        if (s.len == 0 || !strstr(s.buf, "\n\n"))
            poll(pf, 2, 1000);
        double now = tl_now();
        if (pf[1].revents & POLLIN)
            sse_fill(&s, 0);
        char ibuf[4096];
        while (read(in, ibuf, sizeof ibuf) > 0) {
            /* count the new whole lines of metrics.jsonl: each is the next point */
            size_t len;
            char *text = tl_read(mpath, &len);
            for (size_t i = off; text && i < len; i++)
                if (text[i] == '\n') {
                    if (file_lines < MAXP)
                        t_file[file_lines] = now;
                    file_lines++;
                    off = i + 1;
                }
            free(text);
        }
        sse_ev ev;
        while (sse_next(&s, &ev, 0)) {
            cJSON *d = cJSON_Parse(ev.data);
            if (!strcmp(ev.event, "point")) {
                long k = (long)tl_num(cJSON_GetObjectItem(d, "point"), "step") / 20 - 1;
                if (k >= 0 && k < MAXP)
                    t_ev[k] = tl_now();
            } else if (!strcmp(ev.event, "job") && !strcmp(tl_str(d, "state"), "succeeded")) {
                ended = true;
            }
            cJSON_Delete(d);
            free(ev.data);
        }
    }
    ck_assert(ended);
    double dl[MAXP];
    int n = 0;
    for (int i = 0; i < MAXP && i < 100; i++)
        if (t_file[i] > 0 && t_ev[i] > 0)
            dl[n++] = (t_ev[i] - t_file[i]) * 1e3;
    ck_assert_int_ge(n, 50);
    qsort(dl, (size_t)n, sizeof *dl, cmp_double);
    printf("events_delay: %d points, metrics.jsonl line -> SSE event: median %.2f ms, p90 %.2f ms, max %.2f ms\n", n,
           dl[n / 2], dl[(n * 9) / 10], dl[n - 1]);
    fflush(stdout);
    ck_assert_msg(dl[n / 2] < 100, "median delay %.1f ms", dl[n / 2]);
    close(in);
    free(dir);
    free(mpath);
    free(id);
    sse_close(&s);
}
END_TEST

/* trainctl watch follows GET /events: a line for every point, then the end. */
typedef struct watch_run {
    const char *argv[4];
    const char *out;
    int rc;
} watch_run;

static void *watch_thread(void *arg)
{
    watch_run *w = arg;
    w->rc = tl_run(w->argv, w->out, 120);
    return NULL;
}

/* trainctl watch prints every point of the job from the moment its stream
 * is open.  The job is held queued (both max_jobs slots taken) until the
 * stream has shown it, so that no point can come before: a job started at
 * once ran past its first points before watch had connected whenever the
 * machine was busy. */
START_TEST(watch_uses_events)
{
    char *yb = job_yaml("blocker", 50000000, 100000);
    char *blockers[2];
    for (int i = 0; i < 2; i++) {
        blockers[i] = submit(yb);
        cJSON_Delete(tl_wait_state(&g_d, blockers[i], "running", 60));
    }
    const char *y = "name: watched\n"
                    "model: {type: mlp, input_dim: 64, hidden: [256, 256], output_dim: 8}\n"
                    "data: {kind: synthetic, batch_size: 64}\n"
                    "schedule: {type: cosine, total_steps: 1000}\n"
                    "train: {log_every: 50, checkpoint_every: 0}\n";
    char *id = submit(y);
    char *url = xasprintf("http://%s", g_d.addr), *out = xasprintf("%s/watch.out", g_dir);
    setenv("TRAIND_URL", url, 1);
    watch_run w = {.argv = {tl_trainctl_path(), "watch", id, NULL}, .out = out, .rc = -1};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, watch_thread, &w), 0);
    /* two lines of the queued job: GET /jobs/ID's, then the stream's own
     * (the job as it is when the stream starts) */
    double end = tl_now() + 60;
    int queued = 0;
    while (queued < 2 && tl_now() < end) {
        char *t = tl_read(out, NULL);
        queued = tl_count_in(t, " queued ");
        free(t);
        if (queued < 2)
            tl_sleep_ms(20);
    }
    ck_assert_msg(queued >= 2, "trainctl watch did not show the queued job from its stream");
    for (int i = 0; i < 2; i++) {
        char *cp = xasprintf("/jobs/%s/cancel", blockers[i]);
        ck_assert_int_eq(tl_post(&g_d, cp, g_d.token, "", NULL), 202);
        free(cp);
    }
    pthread_join(th, NULL);
    unsetenv("TRAIND_URL");
    char *text = tl_read(out, NULL);
    ck_assert_msg(w.rc == 0, "trainctl watch exited %d:\n%s", w.rc, text ? text : "");
    /* every point's step shows (a poll every 0.5 s would skip some) */
    for (long step = 50; step <= 1000; step += 50) {
        char want[32];
        snprintf(want, sizeof want, "] %ld/1000", step);
        ck_assert_msg(strstr(text, want), "no line for step %ld:\n%s", step, text);
    }
    ck_assert_msg(strstr(text, "succeeded"), "%s", text);
    free(text);
    free(out);
    free(url);
    free(id);
    free(blockers[0]);
    free(blockers[1]);
    free(yb);
}
END_TEST

/* SIGTERM with streams open: the daemon ends them and exits cleanly. */
START_TEST(events_shutdown)
{
    sse s;
    sse_open(&s, "/events", NULL);
    expect_hello(&s);
    int ws = tl_daemon_stop(&g_d, SIGTERM, 20);
    ck_assert_msg(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "traind did not exit cleanly: %d", ws);
    g_d.pid = 0;
    sse_ev ev;
    double end = tl_now() + 5;
    while (!s.eof && tl_now() < end)
        if (sse_next(&s, &ev, 200))
            free(ev.data);
    ck_assert(s.eof);
    sse_close(&s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dashboard_srv");
    TCase *st = tcase_create("static");
    tcase_add_checked_fixture(st, setup, teardown);
    tcase_set_timeout(st, 60);
    tcase_add_test(st, static_files);
    suite_add_tcase(s, st);
    TCase *pv = tcase_create("preview");
    tcase_add_checked_fixture(pv, setup, teardown);
    tcase_set_timeout(pv, 60);
    tcase_add_test(pv, validate);
    tcase_add_test(pv, schedule);
    tcase_add_test(pv, preview_without_token);
    tcase_add_test(pv, jobs_query);
    suite_add_tcase(s, pv);
    TCase *ev = tcase_create("events");
    tcase_add_checked_fixture(ev, setup, teardown);
    tcase_set_timeout(ev, 300);
    tcase_add_test(ev, events_job_and_points);
    tcase_add_test(ev, events_resume_no_loss_no_double);
    tcase_add_test(ev, events_filter);
    tcase_add_test(ev, events_job_snapshot);
    tcase_add_test(ev, events_slow_client_dropped);
    tcase_add_test(ev, events_stream_cap);
    tcase_add_test(ev, events_delay);
    tcase_add_test(ev, watch_uses_events);
    tcase_add_test(ev, events_shutdown);
    suite_add_tcase(s, ev);
    return s;
}

int main(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    return tl_run_suite(suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

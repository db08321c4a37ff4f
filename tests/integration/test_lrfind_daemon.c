/*
 * test_lrfind_daemon — POST /lr-find (man/traind.8) on a real traind over a
 * temporary spool: the curve of a small MLP config (exponential lrs, the
 * stop past 4x the best, the suggestion a point of it) trained by a process
 * of its own, nothing queued and nothing written to the spool; the token,
 * a bad config (422), a data.path outside data_dirs (422), bad sweeps (400);
 * a second test while one runs (429); and a shutdown while one runs (503,
 * the process killed, the daemon stops cleanly at once).
 */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/util.h"
#include "tl.h"

static char *g_dir;
static tl_daemon g_d;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-lrfind");
}

static void teardown(void)
{
    tl_fixture_end(&g_dir, &g_d);
}

static const char *CFG =
    "name: lrf-d\nseed: 4\n"
    "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 4, activation: gelu}\n"
    "data: {kind: synthetic, batch_size: 16}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 10, total_steps: 40}\n";

/* A config whose sweep takes long (a wide model, a gentle sweep that never diverges). */
static const char *SLOW_CFG =
    "name: lrf-slow\nseed: 4\n"
    "model: {type: mlp, input_dim: 64, hidden: [512, 512], output_dim: 16}\n"
    "data: {kind: synthetic, batch_size: 256}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: constant, total_steps: 40}\n";

static int post(const char *path, const char *token, const char *body, tl_resp *r)
{
    return tl_http(g_d.addr, "POST", path, token, body, strlen(body), r);
}

/* The names in <spool>/jobs. */
static int jobs_on_disk(void)
{
    char *cmd = xasprintf("test -z \"$(ls -A '%s/jobs')\"", g_d.spool);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : 1;
}

START_TEST(curve_of_a_config)
{
    tl_start_in(&g_d, g_dir, NULL, 10);
    tl_resp r;
    ck_assert_int_eq(post("/lr-find?steps=60", g_d.token, CFG, &r), 0);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_ptr_nonnull(j);
    cJSON *pts = cJSON_GetObjectItem(j, "points");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "suggestion")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "steepest")));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "stopped")->valuestring, "diverged");
    int n = cJSON_GetArraySize(pts);
    ck_assert(n > 20 && n < 60);
    double q = pow(10.0 / 1e-7, 1.0 / 60), best = INFINITY;
    for (int i = 0; i < n; i++) {
        cJSON *p = cJSON_GetArrayItem(pts, i);
        double lr = cJSON_GetArrayItem(p, 0)->valuedouble, loss = cJSON_GetArrayItem(p, 1)->valuedouble;
        ck_assert_double_eq_tol(lr, 1e-7 * pow(q, i), 1e-12 * lr);
        if (i + 1 < n) {
            ck_assert(loss <= 4 * fmin(best, loss));
            best = fmin(best, loss);
        } else {
            ck_assert(loss > 4 * best);
        }
    }
    int si = cJSON_GetObjectItem(j, "suggestion_index")->valueint;
    ck_assert(cJSON_GetArrayItem(cJSON_GetArrayItem(pts, si), 0)->valuedouble ==
              cJSON_GetObjectItem(j, "suggestion")->valuedouble);
    cJSON_Delete(j);
    tl_resp_free(&r);
    /* its own process, not the daemon */
    char *log = tl_daemon_log(&g_d), *at = strstr(log, "lr-find: process ");
    ck_assert_ptr_nonnull(at);
    ck_assert_int_ne(atoi(at + strlen("lr-find: process ")), (int)g_d.pid);
    free(log);
    /* nothing queued, nothing written */
    int status;
    cJSON *jobs = tl_get_json(g_d.addr, "/jobs", &status);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(jobs, "jobs")), 0);
    cJSON_Delete(jobs);
    ck_assert_int_eq(jobs_on_disk(), 0);
    tl_stop_clean(&g_d, 10);
}
END_TEST

START_TEST(refusals)
{
    tl_start_in(&g_d, g_dir, NULL, 10);     /* data_dirs: <spool>/data */
    tl_resp r;
    ck_assert_int_eq(post("/lr-find", NULL, CFG, &r), 0);
    ck_assert_int_eq(r.status, 401);
    tl_resp_free(&r);
    ck_assert_int_eq(post("/lr-find", g_d.token, "name: [\n", &r), 0);
    ck_assert_int_eq(r.status, 422);
    cJSON *j = cJSON_Parse(r.body);
    ck_assert(cJSON_IsArray(cJSON_GetObjectItem(j, "errors")));
    cJSON_Delete(j);
    tl_resp_free(&r);
    /* data.path is confined to data_dirs, as for a job: this file is outside */
    char *outside = xasprintf("%s/x.csv", g_dir);
    ck_assert_int_eq(tl_write(outside, "a,b\n1,2\n"), 0);
    char *cfg = xasprintf("model: {type: linear, input_dim: 1, output_dim: 1}\n"
                          "data: {kind: csv, path: %s, batch_size: 1}\n"
                          "optimizer: {type: adamw, lr: 1.0e-3}\nschedule: {type: constant, total_steps: 5}\n",
                          outside);
    ck_assert_int_eq(post("/lr-find", g_d.token, cfg, &r), 0);
    ck_assert_msg(r.status == 422, "%d %s", r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "errors"));
    tl_resp_free(&r);
    const char *bad[] = {"/lr-find?steps=3", "/lr-find?start=0", "/lr-find?start=1&end=0.1", "/lr-find?end=x",
                         "/lr-find?steps=1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(post(bad[i], g_d.token, CFG, &r), 0);
        ck_assert_msg(r.status == 400, "%s: %d", bad[i], r.status);
        tl_resp_free(&r);
    }
    ck_assert_int_eq(jobs_on_disk(), 0);
    tl_stop_clean(&g_d, 10);
    free(cfg);
    free(outside);
}
END_TEST

/* One runs at a time; a shutdown kills it and answers 503. */
START_TEST(one_at_a_time_and_shutdown)
{
    tl_start_in(&g_d, g_dir, NULL, 10);
    char *req = xasprintf("POST /lr-find?start=1e-7&end=1e-6&steps=100000 HTTP/1.1\r\nHost: %s\r\n"
                          "Authorization: Bearer %s\r\nContent-Length: %zu\r\n\r\n%s",
                          g_d.addr, g_d.token, strlen(SLOW_CFG), SLOW_CFG);
    tl_conn c = {.fd = tl_dial(g_d.addr)};
    ck_assert_int_ge(c.fd, 0);
    ck_assert_int_eq(tl_send_all(c.fd, req, strlen(req)), 0);
    tl_assert_log(&g_d, "lr-find: process ", NULL, 10);
    char *log = tl_daemon_log(&g_d);
    int pid = atoi(strstr(log, "lr-find: process ") + strlen("lr-find: process "));
    free(log);
    ck_assert(tl_pid_alive(pid));
    tl_resp r;
    ck_assert_int_eq(post("/lr-find", g_d.token, CFG, &r), 0);
    ck_assert_int_eq(r.status, 429);
    tl_resp_free(&r);
    /* the daemon stops at once, the test's process with it */
    double t0 = tl_now();
    int st = tl_daemon_stop(&g_d, SIGTERM, 10);
    ck_assert_msg(st == 0, "wait status %d", st);       /* exited 0 */
    ck_assert(tl_now() - t0 < 8);
    tl_resp a;   /* answered before the daemon closed the connection */
    ck_assert_int_eq(tl_conn_read(&c, false, 10000, &a), 503);
    tl_resp_free(&a);
    tl_conn_close(&c);
    for (int i = 0; i < 100 && tl_pid_alive(pid); i++)
        usleep(20000);
    ck_assert(!tl_pid_alive(pid));
    free(req);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lrfind_daemon");
    TCase *tc = tcase_create("lr-find");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, curve_of_a_config);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, one_at_a_time_and_shutdown);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

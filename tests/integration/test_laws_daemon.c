/*
 * test_laws_daemon — the daemon's loss-curve laws (man/traind.8, LOSS-CURVE
 * LAWS) on a real traind over a temporary spool: POST /laws fits the
 * multi-power law (and the momentum law) to jobs it trained (small MLPs
 * with different schedules), stores it under <spool>/laws/<id>/ before the
 * 201, GET /laws and GET /laws/{id} show it (per curve the observed and
 * fitted points, the error figures, leave-one-out), POST /laws/{id}/predict
 * draws the curve of a config, a sweep, JSON configs and jobs; the law
 * survives a restart; bad input is a 400 naming what is wrong; the bounds
 * (curves, steps, the law's work) hold; a second fit while one runs is 429
 * with Retry-After while /healthz answers at once (the fit is on the pool);
 * a running job is fitted on its points so far; sweep.predict must name a
 * law that exists.
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
    tl_fixture_begin(&g_dir, &g_d, "traind-laws");
}

static void teardown(void)
{
    tl_fixture_end(&g_dir, &g_d);
}

/* A small MLP run of `steps` steps under schedule (a YAML flow mapping's
 * insides).  The targets are noisy, so the loss falls to a floor as a
 * pre-training loss does rather than to 0. */
static char *mlp(const char *name, long steps, const char *schedule)
{
    return xasprintf("name: %s\nseed: 3\n"
                     "model: {type: mlp, input_dim: 32, hidden: [64], output_dim: 8, activation: gelu}\n"
                     "data: {kind: synthetic, batch_size: 32, noise: 0.5}\n"
                     "optimizer: {type: adamw, lr: 1.0e-3}\n"
                     "schedule: {%s, total_steps: %ld}\n"
                     "train: {log_every: 5, checkpoint_every: 100000}\n",
                     name, schedule, steps);
}

static const char *const SCHEDULES[] = {
    "type: cosine, warmup_steps: 20, min_lr_ratio: 0.05",
    "type: warmup_stable_decay, warmup_steps: 20, decay_ratio: 0.3",
    "type: constant, warmup_steps: 20",
};
#define N_RUNS 3
#define RUN_STEPS 400

/* Trains the N_RUNS jobs to their end; ids into ids[]. */
static void train_runs(char *ids[N_RUNS])
{
    for (int i = 0; i < N_RUNS; i++) {
        char name[32];
        snprintf(name, sizeof name, "law-run-%d", i);
        char *cfg = mlp(name, RUN_STEPS, SCHEDULES[i]);
        ids[i] = tl_submit(&g_d, cfg);
        free(cfg);
    }
    for (int i = 0; i < N_RUNS; i++)
        cJSON_Delete(tl_wait_state(&g_d, ids[i], "succeeded", 120));
}

/* POST path with body and token; status, the parsed answer in *out (may be NULL). */
static int post_json(const char *path, const char *token, const char *body, cJSON **out)
{
    char *text = NULL;
    int st = tl_post(&g_d, path, token, body, &text);
    if (out)
        *out = text ? cJSON_Parse(text) : NULL;
    free(text);
    return st;
}

static char *fit_body(char *ids[], int n, const char *law)
{
    char *list = xstrdup("");
    for (int i = 0; i < n; i++) {
        char *l = xasprintf("%s%s\"%s\"", list, i ? ", " : "", ids[i]);
        free(list);
        list = l;
    }
    char *b = xasprintf("{\"jobs\": [%s], \"law\": \"%s\", \"metric\": \"loss_avg\"}", list, law);
    free(list);
    return b;
}

/* A fit's answer: 201 with an id and its params; the id (malloc'd). */
static char *fit_ok(const char *body)
{
    cJSON *a = NULL;
    int st = post_json("/laws", g_d.token, body, &a);
    char *text = a ? cJSON_PrintUnformatted(a) : NULL;
    ck_assert_msg(st == 201, "POST /laws %s: %d %s", body, st, text ? text : "");
    free(text);
    const char *id = tl_str(a, "id");
    ck_assert_ptr_nonnull(id);
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(a, "params")));
    char *out = xstrdup(id);
    cJSON_Delete(a);
    return out;
}

/* Every point of a predicted curve: [step, loss], steps increasing, losses finite and positive. */
static int check_curve(const cJSON *c)
{
    const cJSON *pts = cJSON_GetObjectItem(c, "points");
    ck_assert_msg(!cJSON_GetObjectItem(c, "error"), "curve error: %s", tl_str(c, "error"));
    int n = cJSON_GetArraySize(pts);
    double last = -1;
    for (int i = 0; i < n; i++) {
        const cJSON *p = cJSON_GetArrayItem(pts, i);
        double s = cJSON_GetArrayItem(p, 0)->valuedouble, l = cJSON_GetArrayItem(p, 1)->valuedouble;
        ck_assert(s > last);
        ck_assert(isfinite(l) && l > 0);
        last = s;
    }
    return n;
}

START_TEST(fit_get_predict_restart)
{
    tl_start_in(&g_d, g_dir, NULL, 10);
    char *ids[N_RUNS];
    train_runs(ids);
    char *body = fit_body(ids, N_RUNS, "mpl");
    char *id = fit_ok(body);
    free(body);

    /* on disk before the 201: both files, whole */
    char *lp = xasprintf("%s/laws/%s/LAW.json", g_d.spool, id), *fp = xasprintf("%s/laws/%s/fit.json", g_d.spool, id);
    char *lt = tl_read(lp, NULL), *ft = tl_read(fp, NULL);
    ck_assert_ptr_nonnull(lt);
    ck_assert_ptr_nonnull(ft);
    cJSON *stored = cJSON_Parse(lt);
    ck_assert_str_eq(tl_str(stored, "law"), "mpl");
    ck_assert_str_eq(tl_str(stored, "id"), id);
    cJSON *fitj = cJSON_Parse(ft);
    ck_assert_ptr_nonnull(fitj);
    cJSON_Delete(fitj);

    /* GET /laws lists it; GET /laws/{id} has a curve per job */
    int st;
    cJSON *list = tl_get_json(g_d.addr, "/laws", &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(cJSON_GetArraySize(list), 1);
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(list, 0), "id"), id);
    cJSON_Delete(list);
    char *path = xasprintf("/laws/%s", id);
    cJSON *law = tl_get_json(g_d.addr, path, &st);
    ck_assert_int_eq(st, 200);
    cJSON *curves = cJSON_GetObjectItem(law, "curves");
    ck_assert_int_eq(cJSON_GetArraySize(curves), N_RUNS);
    for (int i = 0; i < N_RUNS; i++) {
        cJSON *c = cJSON_GetArrayItem(curves, i);
        ck_assert_str_eq(tl_str(c, "job"), ids[i]);
        int n = cJSON_GetArraySize(cJSON_GetObjectItem(c, "points"));
        ck_assert_msg(n >= 3 && n <= RUN_STEPS / 5, "%d points", n);
        cJSON *q = cJSON_GetObjectItem(c, "fit");
        double r2 = tl_num(q, "r2"), pe = tl_num(q, "pred_err");
        ck_assert_msg(isfinite(r2) && isfinite(pe) && pe >= 0 && pe < 0.5, "r2 %g pred_err %g", r2, pe);
        ck_assert(cJSON_IsObject(cJSON_GetObjectItem(c, "loo")));      /* leave-one-out: 3 curves */
        ck_assert_int_gt(cJSON_GetArraySize(cJSON_GetObjectItem(c, "curve")), 10);
    }
    cJSON *sum = cJSON_GetObjectItem(law, "summary");
    ck_assert(isfinite(tl_num(sum, "pred_err")) && isfinite(tl_num(sum, "loo_pred_err")));
    char *params = cJSON_PrintUnformatted(cJSON_GetObjectItem(law, "params"));
    cJSON_Delete(law);

    /* predict: a config (no token needed), a sweep, JSON configs, jobs */
    char *pp = xasprintf("/laws/%s/predict?max=50", id);
    char *cfg = mlp("what-if", 600, "type: cosine, warmup_steps: 20");
    cJSON *a = NULL;
    ck_assert_int_eq(post_json(pp, NULL, cfg, &a), 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "curves")), 1);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(a, "curves"), 0);
    ck_assert_int_eq(check_curve(c0), 50);
    ck_assert_int_eq((int)tl_num(c0, "total_steps"), 600);
    cJSON *lastp = cJSON_GetArrayItem(cJSON_GetObjectItem(c0, "points"), 49);
    ck_assert_int_eq((int)cJSON_GetArrayItem(lastp, 0)->valuedouble, 600);   /* metrics.jsonl's step numbers */
    cJSON_Delete(a);
    char *sweep = xasprintf("%ssweep:\n  method: grid\n  parameters:\n    schedule.type: [cosine, linear, constant]\n", cfg);
    ck_assert_int_eq(post_json(pp, NULL, sweep, &a), 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "curves")), 3);
    for (int i = 0; i < 3; i++) {
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(a, "curves"), i);
        check_curve(c);
        ck_assert_int_eq((int)tl_num(c, "trial"), i + 1);
    }
    cJSON_Delete(a);
    char *jb = xasprintf("{\"jobs\": [\"%s\", \"%s\"]}", ids[0], ids[1]);
    ck_assert_int_eq(post_json(pp, NULL, jb, &a), 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "curves")), 2);
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "curves"), 1), "job"), ids[1]);
    check_curve(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "curves"), 1));
    cJSON_Delete(a);

    /* the momentum law too, from an experiment's id is in the refusals test */
    body = fit_body(ids, 2, "momentum");
    char *id2 = fit_ok(body);
    free(body);
    ck_assert_str_ne(id, id2);

    /* a restart: both laws, the same parameters, the curves */
    tl_stop_clean(&g_d, 20);
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 10);
    list = tl_get_json(g_d.addr, "/laws", &st);
    ck_assert_int_eq(cJSON_GetArraySize(list), 2);
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(list, 0), "id"), id2);    /* newest first */
    cJSON_Delete(list);
    law = tl_get_json(g_d.addr, path, &st);
    ck_assert_int_eq(st, 200);
    char *params2 = cJSON_PrintUnformatted(cJSON_GetObjectItem(law, "params"));
    ck_assert_str_eq(params, params2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(law, "curves")), N_RUNS);
    cJSON_Delete(law);
    ck_assert_int_eq(post_json(pp, NULL, cfg, &a), 200);
    cJSON_Delete(a);
    tl_stop_clean(&g_d, 20);

    free(params);
    free(params2);
    free(jb);
    free(sweep);
    free(cfg);
    free(pp);
    free(path);
    cJSON_Delete(stored);
    free(lt);
    free(ft);
    free(lp);
    free(fp);
    free(id);
    free(id2);
    for (int i = 0; i < N_RUNS; i++)
        free(ids[i]);
}
END_TEST

/* 400 whose error (or one of its errors) holds needle. */
static void refused(const char *path, const char *token, const char *body, int want, const char *needle)
{
    char *text = NULL;
    int st = tl_post(&g_d, path, token, body, &text);
    ck_assert_msg(st == want, "POST %s %s: %d (want %d) %s", path, body, st, want, text ? text : "");
    if (needle)
        ck_assert_msg(text && strstr(text, needle), "POST %s %s: %s lacks '%s'", path, body, text, needle);
    free(text);
}

START_TEST(refusals_and_bounds)
{
    tl_start_in(&g_d, g_dir, NULL, 10);
    char *ids[N_RUNS];
    train_runs(ids);
    char *good = fit_body(ids, 2, "mpl");
    refused("/laws", NULL, good, 401, NULL);                                 /* the token, as POST /jobs */
    refused("/laws", "wrong", good, 401, NULL);
    refused("/laws", g_d.token, "not json", 400, "JSON object");
    refused("/laws", g_d.token, "{\"jobs\": [\"x\"], \"colour\": 1}", 400, "colour");
    refused("/laws", g_d.token, "{\"law\": \"mpl\"}", 400, "jobs");
    char *b = xasprintf("{\"jobs\": [\"%s\"], \"law\": \"cubic\"}", ids[0]);
    refused("/laws", g_d.token, b, 400, "\"law\"");
    free(b);
    b = xasprintf("{\"jobs\": [\"%s\"], \"metric\": \"accuracy\"}", ids[0]);
    refused("/laws", g_d.token, b, 400, "metric");
    free(b);
    b = xasprintf("{\"jobs\": [\"%s\", \"no-such-job\"]}", ids[0]);
    refused("/laws", g_d.token, b, 400, "no such job: no-such-job");
    free(b);
    b = xasprintf("{\"jobs\": [\"%s\", \"%s\"]}", ids[0], ids[0]);
    refused("/laws", g_d.token, b, 400, "named twice");
    free(b);
    b = xasprintf("{\"jobs\": [\"%s\"], \"starts\": 1000}", ids[0]);
    refused("/laws", g_d.token, b, 400, "starts");
    free(b);
    /* the bound on curves */
    char *many = xstrdup("{\"jobs\": [");
    for (int i = 0; i < 17; i++) {
        char *m = xasprintf("%s%s\"%s\"", many, i ? "," : "", ids[i % N_RUNS]);
        free(many);
        many = m;
    }
    char *m = xasprintf("%s]}", many);
    refused("/laws", g_d.token, m, 400, "1 to 16");
    free(m);
    free(many);
    refused("/laws", g_d.token, "{\"experiment\": \"nope\"}", 400, "no such experiment");

    /* nothing was stored by any of them */
    int st;
    cJSON *list = tl_get_json(g_d.addr, "/laws", &st);
    ck_assert_int_eq(cJSON_GetArraySize(list), 0);
    cJSON_Delete(list);
    list = tl_get_json(g_d.addr, "/laws/nope", &st);
    ck_assert_int_eq(st, 404);

    char *id = fit_ok(good);
    char *pp = xasprintf("/laws/%s/predict", id);
    refused("/laws/nope/predict", NULL, "name: x\n", 404, "no such law");
    refused(pp, NULL, "name: [\n", 422, "errors");
    refused(pp, NULL, "{\"configs\": 3}", 400, "configs");
    char *q = xasprintf("%s?max=1", pp);
    refused(q, NULL, "name: x\n", 400, "max");
    free(q);
    /* the bound on steps: a curve too long is refused by name, the others drawn */
    char *huge = mlp("huge", 2000000, "type: cosine");
    char *small = mlp("small", 100, "type: cosine");
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cJSON_CreateString(huge));
    cJSON_AddItemToArray(arr, cJSON_CreateString(small));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "configs", arr);
    char *jb = cJSON_PrintUnformatted(o);
    cJSON *a = NULL;
    ck_assert_int_eq(post_json(pp, NULL, jb, &a), 200);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(a, "curves"), 0);
    ck_assert_ptr_nonnull(strstr(tl_str(c0, "error"), "total_steps"));
    check_curve(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "curves"), 1));
    cJSON_Delete(a);
    cJSON_Delete(o);
    free(jb);

    /* sweep.predict: the law must exist; the experiment then says which */
    char *sw = xasprintf("%ssweep:\n  method: grid\n  predict: {law: no-such-law}\n  parameters:\n"
                         "    schedule.type: [cosine, linear]\n", small);
    refused("/experiments", g_d.token, sw, 400, "sweep.predict.law");
    free(sw);
    sw = xasprintf("%ssweep:\n  method: grid\n  predict: {law: %s}\n  parameters:\n"
                   "    schedule.type: [cosine, linear]\n", small, id);
    refused("/validate", NULL, sw, 200, NULL);
    ck_assert_int_eq(post_json("/experiments", g_d.token, sw, &a), 201);
    char *ep = xasprintf("/experiments/%s", tl_str(a, "id"));
    cJSON_Delete(a);
    cJSON *e = tl_get_json(g_d.addr, ep, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(tl_str(cJSON_GetObjectItem(e, "predict"), "law"), id);
    cJSON_Delete(e);
    /* ... and a restart keeps it (sweep.yaml re-expanded) */
    tl_stop_clean(&g_d, 20);
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 10);
    e = tl_get_json(g_d.addr, ep, &st);
    ck_assert_str_eq(tl_str(cJSON_GetObjectItem(e, "predict"), "law"), id);
    cJSON_Delete(e);
    tl_stop_clean(&g_d, 20);

    free(ep);
    free(sw);
    free(huge);
    free(small);
    free(pp);
    free(id);
    free(good);
    for (int i = 0; i < N_RUNS; i++)
        free(ids[i]);
}
END_TEST

/* One fit at a time (429 with Retry-After), the loop free meanwhile; a
 * running job is fitted on its points so far; the bound on the law's work. */
START_TEST(one_at_a_time_running_job_no_stall)
{
    tl_start_in(&g_d, g_dir, NULL, 10);
    char *ids[N_RUNS];
    train_runs(ids);

    /* a fit in flight, on a connection of its own */
    char *body = fit_body(ids, N_RUNS, "mpl");
    char *bigger = xasprintf("{\"jobs\": [\"%s\", \"%s\", \"%s\"], \"starts\": 16}", ids[0], ids[1], ids[2]);
    char *req = xasprintf("POST /laws HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                          "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                          g_d.addr, g_d.token, strlen(bigger), bigger);
    tl_conn c = {.fd = tl_dial(g_d.addr)};
    ck_assert_int_ge(c.fd, 0);
    ck_assert_int_eq(tl_send_all(c.fd, req, strlen(req)), 0);
    usleep(20000);
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "POST", "/laws", g_d.token, body, strlen(body), &r), 0);
    ck_assert_msg(r.status == 429, "a second fit: %d %s", r.status, r.body);
    char *ra = tl_header(&r, "Retry-After");
    ck_assert_ptr_nonnull(ra);
    ck_assert_int_ge(atoi(ra), 1);
    free(ra);
    tl_resp_free(&r);
    /* the loop answers while the pool fits */
    double t0 = tl_now();
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(tl_now() - t0 < 0.5, "/healthz took %.3f s during a fit", tl_now() - t0);
    tl_resp_free(&r);
    tl_resp a;
    ck_assert_int_eq(tl_conn_read(&c, false, 120000, &a), 201);
    tl_resp_free(&a);
    tl_conn_close(&c);

    /* a running job: its points so far (a long constant run: one lr change) */
    char *cfg = mlp("still-running", 100000, "type: constant");
    char *run = tl_submit(&g_d, cfg);
    long at = 60;
    cJSON_Delete(tl_wait_job_of(&g_d, run, tl_job_at_step, &at, 60));
    char *rb = xasprintf("{\"jobs\": [\"%s\"], \"law\": \"momentum\", \"metric\": \"loss\"}", run);
    cJSON *law = NULL;
    int st = post_json("/laws", g_d.token, rb, &law);
    ck_assert_msg(st == 201, "%d", st);
    char *path = xasprintf("/laws/%s", tl_str(law, "id"));
    cJSON_Delete(law);
    law = tl_get_json(g_d.addr, path, &st);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(law, "curves"), 0);
    cJSON *job = tl_get_job(&g_d, run);
    ck_assert_str_eq(tl_str(job, "state"), "running");
    cJSON *pts = cJSON_GetObjectItem(c0, "points");
    double last = cJSON_GetArrayItem(cJSON_GetArrayItem(pts, cJSON_GetArraySize(pts) - 1), 0)->valuedouble;
    ck_assert(last >= 60 && last <= tl_num(job, "step"));
    ck_assert_int_eq((int)tl_num(c0, "total_steps"), 100000);
    cJSON_Delete(job);
    cJSON_Delete(law);
    free(path);

    /* the bound on the law's work: the multi-power law over a 900,000-step cosine run */
    char *cfg2 = mlp("too-long", 900000, "type: cosine");
    char *run2 = tl_submit(&g_d, cfg2);
    cJSON_Delete(tl_wait_job_of(&g_d, run2, tl_job_at_step, &at, 60));
    free(rb);
    rb = xasprintf("{\"jobs\": [\"%s\"], \"law\": \"mpl\", \"metric\": \"loss\"}", run2);
    refused("/laws", g_d.token, rb, 400, "too large to fit");
    char *cp = xasprintf("/jobs/%s/cancel", run);
    tl_post(&g_d, cp, g_d.token, "", NULL);
    free(cp);
    cp = xasprintf("/jobs/%s/cancel", run2);
    tl_post(&g_d, cp, g_d.token, "", NULL);
    free(cp);
    tl_stop_clean(&g_d, 30);

    free(rb);
    free(cfg);
    free(cfg2);
    free(run);
    free(run2);
    free(req);
    free(bigger);
    free(body);
    for (int i = 0; i < N_RUNS; i++)
        free(ids[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("laws_daemon");
    TCase *tc = tcase_create("laws");
    tcase_set_timeout(tc, TL_ASAN ? 600 : 240);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, fit_get_predict_restart);
    tcase_add_test(tc, refusals_and_bounds);
    tcase_add_test(tc, one_at_a_time_running_job_no_stall);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

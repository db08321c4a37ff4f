/*
 * trainctl's daemon commands against a real traind: submit, status, watch,
 * cancel, logs, and the errors a user sees (bad config, no token, no daemon).
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tl.h"
#include "traind/config.h"
#include "traind/util.h"

static char *g_dir;
static tl_daemon g_d;

static const char *QUICK =
    "model: {type: mlp, input_dim: 8, hidden: [16], output_dim: 2}\n"
    "data: {batch_size: 8}\n"
    "schedule: {type: cosine, warmup_steps: 10, total_steps: 400}\n"
    "train: {log_every: 50}\n";

static void setup(void)
{
    g_dir = tl_tmpdir("traind-client");
    char *spool = xasprintf("%s/spool", g_dir);
    ck_assert_int_eq(tl_daemon_start(&g_d, spool, NULL, 20), 0);
    free(spool);
}

static void teardown(void)
{
    tl_daemon_stop(&g_d, SIGTERM, 20);
    tl_daemon_free(&g_d);
    tl_rmtree(g_dir);
    free(g_dir);
}

/* Runs build/trainctl ARGS... --url http://ADDR; stdout+stderr into *out. */
static int trainctl(char **out, bool with_token, const char *arg0, ...)
{
    const char *b = getenv("TRAIND_BUILD");
    char *exe = xasprintf("%s/trainctl", b ? b : "build");
    char *url = xasprintf("http://%s", g_d.addr);
    char *token = xasprintf("%s/api.token", g_d.spool);
    /* without a token: an empty token file (one that is not there at all is
     * refused by trainctl itself, exit 2: see submit_errors) */
    char *nothing = xasprintf("%s/empty-token", g_dir);
    if (access(nothing, F_OK) != 0)
        tl_write(nothing, "");
    const char *argv[32];
    int n = 0;
    argv[n++] = exe;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && n < 24; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n++] = "--url";
    argv[n++] = url;
    argv[n++] = "--token-file";
    argv[n++] = with_token ? token : nothing;
    argv[n] = NULL;
    char *log = xasprintf("%s/trainctl.out", g_dir);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stdout))
            _exit(126);
        dup2(STDOUT_FILENO, STDERR_FILENO);
        execv(exe, (char **)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    size_t len;
    *out = tl_read(log, &len);
    ck_assert_ptr_nonnull(*out);
    free(log);
    free(exe);
    free(url);
    free(token);
    free(nothing);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(submit_watch_status_logs)
{
    char *cfg = xasprintf("%s/quick-job.yaml", g_dir), *out;
    ck_assert_int_eq(tl_write(cfg, QUICK), 0);
    ck_assert_int_eq(trainctl(&out, true, "submit", cfg, NULL), 0);
    ck_assert_msg(!strncmp(out, "quick-job", 9), "%s", out);
    free(out);

    ck_assert_int_eq(trainctl(&out, true, "watch", "quick-job", NULL), 0);   /* until succeeded */
    ck_assert_msg(strstr(out, "succeeded") && strstr(out, "400/400"), "%s", out);
    free(out);
    /* watching a job that has ended: no rate, no ETA, and never a nan */
    ck_assert_int_eq(trainctl(&out, true, "watch", "quick-job", NULL), 0);
    ck_assert_msg(strstr(out, "succeeded") && !strstr(out, "nan") && !strstr(out, "steps/s"), "%s", out);
    free(out);

    ck_assert_int_eq(trainctl(&out, true, "status", NULL), 0);
    ck_assert_msg(strstr(out, "quick-job") && strstr(out, "succeeded"), "%s", out);
    free(out);
    /* the raw job object with --json; a summary a person reads without */
    ck_assert_int_eq(trainctl(&out, true, "status", "quick-job", "--json", NULL), 0);
    ck_assert_msg(strstr(out, "\"checkpoint_step\"") && strstr(out, "\"config\""), "%s", out);
    free(out);
    ck_assert_int_eq(trainctl(&out, true, "status", "quick-job", NULL), 0);
    ck_assert_msg(!strncmp(out, "quick-job: succeeded\n", 21) && strstr(out, "400/400 (100%)") &&
                      strstr(out, "  loss ") && strstr(out, "  lr ") && strstr(out, "finished") &&
                      strstr(out, "checkpoint   step 400") && !strchr(out, '{') && !strstr(out, "nan"),
                  "%s", out);
    free(out);

    ck_assert_int_eq(trainctl(&out, true, "logs", "quick-job", NULL), 0);
    free(out);
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/jobs/quick-job/log", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/jobs/nope/log", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 404);
    tl_resp_free(&r);

    /* Cancelling an ended job is the user's mistake: exit 1, with the reason. */
    ck_assert_int_eq(trainctl(&out, true, "cancel", "quick-job", NULL), 1);
    ck_assert_msg(strstr(out, "409"), "%s", out);
    free(out);
    ck_assert_int_eq(trainctl(&out, true, "status", "no-such-job", NULL), 1);
    free(out);
    free(cfg);
}
END_TEST

START_TEST(submit_errors)
{
    char *bad = xasprintf("%s/bad.yaml", g_dir), *good = xasprintf("%s/good.yaml", g_dir), *out;
    ck_assert_int_eq(tl_write(bad, "model: {type: linear, input_dim: 2, output_dim: 1}\n"
                                   "schedule:\n  total_steps: 10\n  warmup_steps: -5\n"), 0);
    ck_assert_int_eq(tl_write(good, QUICK), 0);
    ck_assert_int_eq(trainctl(&out, true, "submit", bad, NULL), 1);
    ck_assert_msg(strstr(out, "schedule.warmup_steps") && strstr(out, ":4:"), "%s", out);
    free(out);
    ck_assert_int_eq(trainctl(&out, false, "submit", good, NULL), 1);   /* no token */
    ck_assert_msg(strstr(out, "401"), "%s", out);
    free(out);
    /* a --token-file that is not there is a usage error, not silently ignored */
    char *missing = xasprintf("%s/no-such-token", g_dir), *url = xasprintf("http://%s", g_d.addr);
    char *log = xasprintf("%s/missing.out", g_dir);
    const char *argv[] = {tl_trainctl_path(), "submit", good, "--url", url, "--token-file", missing, NULL};
    ck_assert_int_eq(tl_run(argv, log, 30), 2);
    out = tl_read(log, NULL);
    ck_assert_msg(out && strstr(out, "cannot read the token file"), "%s", out ? out : "");
    free(out);
    free(log);
    free(url);
    free(missing);
    free(bad);
    free(good);
}
END_TEST

START_TEST(cancel_a_running_job)
{
    char *cfg = xasprintf("%s/long.yaml", g_dir), *out;
    ck_assert_int_eq(tl_write(cfg, "model: {type: mlp, input_dim: 64, hidden: [256, 256], output_dim: 64}\n"
                                   "schedule: {type: constant, total_steps: 1000000}\n"
                                   "train: {log_every: 100}\n"), 0);
    ck_assert_int_eq(trainctl(&out, true, "submit", cfg, NULL), 0);
    free(out);
    long one = 1;
    cJSON *j = tl_wait_job(g_d.addr, "long", tl_job_at_step, &one, 30);
    ck_assert_ptr_nonnull(j);
    cJSON_Delete(j);
    ck_assert_int_eq(trainctl(&out, true, "cancel", "long", NULL), 0);
    free(out);
    ck_assert_int_eq(trainctl(&out, true, "watch", "long", NULL), 1);   /* ended, not succeeded */
    ck_assert_msg(strstr(out, "cancelled"), "%s", out);
    free(out);
    free(cfg);
}
END_TEST

/* jobs/<id>/ of a finished job, as a daemon leaves it (config.yaml and
 * status.json), written before the daemon starts and reads them. */
static void finished_job(const char *id, unsigned long seq, const char *cfg_json)
{
    char *jd = xasprintf("%s/spool/jobs/%s", g_dir, id);
    mkdir_p(jd, 0755);
    char *p = xasprintf("%s/config.yaml", jd);
    ck_assert_int_eq(tl_write(p, QUICK), 0);
    free(p);
    p = xasprintf("%s/status.json", jd);
    char *text = xasprintf("{\"id\":\"%s\",\"name\":\"%s\",\"state\":\"succeeded\",\"step\":400,\"total_steps\":400,"
                           "\"lr\":0.01,\"loss\":0.5,\"loss_avg\":0.5,\"grad_norm\":0.1,\"submitted_at\":"
                           "\"2026-11-24T13:45:00Z\",\"started_at\":\"2026-11-24T13:45:01Z\",\"finished_at\":"
                           "\"2026-11-24T13:46:08Z\",\"restarts\":0,\"crashes\":0,\"checkpoint_step\":400,"
                           "\"seq\":%lu,\"errors\":[],\"config\":%s}",
                           id, id, seq, cfg_json);
    ck_assert_int_eq(tl_write(p, text), 0);
    free(p);
    free(text);
    free(jd);
}

/* trainctl status --all lists every job, walking GET /jobs's pages (1000
 * at most each); plain `status` only the newest. */
START_TEST(status_all_pages)
{
    tl_daemon_stop(&g_d, SIGTERM, 20);
    tl_daemon_free(&g_d);
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(QUICK, strlen(QUICK), NULL, &cfg, &errs), 0);
    cJSON *cj = cfg_to_json(&cfg);
    char *cjs = cJSON_PrintUnformatted(cj);
    cJSON_Delete(cj);
    cfg_free(&cfg);
    enum { N = 1203 };
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "p%04d", i);
        finished_job(id, (unsigned long)i + 1, cjs);
    }
    free(cjs);
    char *spool = xasprintf("%s/spool", g_dir);
    ck_assert_int_eq(tl_daemon_start(&g_d, spool, NULL, 30), 0);
    free(spool);

    char *out;
    ck_assert_int_eq(trainctl(&out, true, "status", NULL), 0);
    ck_assert_msg(tl_count_in(out, " succeeded ") < N && strstr(out, "status --all"), "%s", out);
    free(out);
    ck_assert_int_eq(trainctl(&out, true, "status", "--all", NULL), 0);
    ck_assert_int_eq(tl_count_in(out, " succeeded "), N);
    ck_assert_msg(strstr(out, "p0000 ") && strstr(out, "p1202 ") && strstr(out, "(1203 jobs)"), "%.300s", out);
    ck_assert_ptr_null(strstr(out, "nan"));
    free(out);
    ck_assert_int_eq(trainctl(&out, true, "status", "--all", "--json", NULL), 0);
    cJSON *a = cJSON_Parse(out);
    ck_assert_msg(cJSON_IsArray(a), "%.300s", out);
    ck_assert_int_eq(cJSON_GetArraySize(a), N);
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(a, 0), "id"), "p1202");   /* newest first */
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(a, N - 1), "id"), "p0000");
    cJSON_Delete(a);
    free(out);
    ck_assert_int_eq(trainctl(&out, true, "status", "p0007", "--all", NULL), 2);   /* one or all */
    free(out);
    ck_assert_int_eq(trainctl(&out, true, "status", "p0007", NULL), 0);
    ck_assert_msg(strstr(out, "p0007: succeeded") && strstr(out, "2026-11-24 13:46:08 UTC (1m07s after its start)"),
                  "%s", out);
    free(out);
}
END_TEST

/* The longest line of text. */
static int widest_line(const char *text)
{
    int w = 0;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        w = (int)n > w ? (int)n : w;
        p += n + (p[n] == '\n');
    }
    return w;
}

static const char CMP_FMT[] =
    "name: %s\n"
    "model: {type: mlp, input_dim: 8, hidden: [16], output_dim: 2}\n"
    "data: {batch_size: 8}\n"
    "optimizer: {type: adamw, lr: %s, weight_decay: %s}\n"
    "schedule: {type: cosine, warmup_steps: %s, total_steps: 400, min_lr_ratio: %s}\n"
    "train: {log_every: 20}\n";

/* trainctl compare fits the terminal: results first, whole key names (never
 * cut into ambiguity), only the keys the runs' own configs set and that
 * differ, a transposed table when the columns would not fit, plots as wide
 * as the terminal, --log. */
START_TEST(compare_fits_the_terminal)
{
    const char *ids[] = {"cmp-a", "cmp-b", "cmp-c"};
    const char *lr[] = {"0.01", "0.01", "0.05"}, *wd[] = {"0.0", "0.0", "0.0"};
    const char *warm[] = {"10", "50", "10"}, *minr[] = {"0.1", "0.1", "0.1"};
    for (int i = 0; i < 3; i++) {
        char *y = xasprintf(CMP_FMT, ids[i], lr[i], wd[i], warm[i], minr[i]);
        free(tl_submit(&g_d, y));
        free(y);
    }
    for (int i = 0; i < 3; i++)
        cJSON_Delete(tl_wait_state(&g_d, ids[i], "succeeded", 60));
    char *out;
    setenv("COLUMNS", "80", 1);
    ck_assert_int_eq(trainctl(&out, true, "compare", "cmp-a", "cmp-b", "cmp-c", NULL), 0);
    ck_assert_msg(widest_line(out) <= 80, "wider than 80 columns:\n%s", out);
    const char *res = strstr(out, "final loss"), *keys = strstr(out, "warmup_steps");
    ck_assert_msg(res && keys && res < keys, "results first:\n%s", out);
    ck_assert_msg(strstr(out, " lr ") || strstr(out, " lr\n"), "the lr column:\n%s", out);
    /* set alike in every run, or never set: not listed */
    ck_assert_msg(!strstr(out, "weight_decay") && !strstr(out, "min_lr_ratio") && !strstr(out, "warmup_ratio") &&
                      !strstr(out, "hidden"), "keys that do not differ or were not set:\n%s", out);
    ck_assert_msg(strstr(out, "\nloss\n") && strstr(out, "\nlr\n") && strstr(out, "cmp-c"), "%s", out);
    free(out);

    /* many differing keys: transposed, a row per key under its full path */
    const char *ids2[] = {"wide-a", "wide-b"};
    const char *lr2[] = {"0.001", "0.002"}, *wd2[] = {"0.01", "0.02"};
    const char *warm2[] = {"20", "40"}, *minr2[] = {"0.05", "0.25"};
    for (int i = 0; i < 2; i++) {
        char *y = xasprintf(CMP_FMT, ids2[i], lr2[i], wd2[i], warm2[i], minr2[i]);
        free(tl_submit(&g_d, y));
        free(y);
    }
    for (int i = 0; i < 2; i++)
        cJSON_Delete(tl_wait_state(&g_d, ids2[i], "succeeded", 60));
    setenv("COLUMNS", "40", 1);
    ck_assert_int_eq(trainctl(&out, true, "compare", "wide-a", "wide-b", "--log", NULL), 0);
    ck_assert_msg(strstr(out, "\noptimizer.weight_decay ") && strstr(out, "\nschedule.min_lr_ratio ") &&
                      strstr(out, "\nschedule.warmup_steps ") && strstr(out, "\noptimizer.lr "),
                  "transposed:\n%s", out);
    ck_assert_msg(strstr(out, "log scale"), "--log:\n%s", out);
    free(out);
    /* 120 columns: the same keys fit as columns, and the plots widen */
    setenv("COLUMNS", "120", 1);
    ck_assert_int_eq(trainctl(&out, true, "compare", "wide-a", "wide-b", NULL), 0);
    ck_assert_msg(widest_line(out) <= 120 && widest_line(out) > 100, "%s", out);
    ck_assert_msg(strstr(out, " weight_decay ") && strstr(out, " min_lr_ratio\n") && !strstr(out, "\noptimizer.lr "),
                  "one row per run:\n%s", out);
    free(out);
    unsetenv("COLUMNS");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("trainctl-client");
    tcase_set_timeout(tc, 90);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, submit_watch_status_logs);
    tcase_add_test(tc, submit_errors);
    tcase_add_test(tc, cancel_a_running_job);
    tcase_add_test(tc, status_all_pages);
    tcase_add_test(tc, compare_fits_the_terminal);
    suite_add_tcase(s, tc);
    int failed = tl_run_suite(s);
    return failed ? 1 : 0;
}

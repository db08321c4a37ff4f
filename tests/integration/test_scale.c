/*
 * test_scale — against the real traind ($TRAIND_BUILD/traind): the
 * cost of a job must not grow with the number of jobs.
 *
 *   restart   start-up with 10,000 finished jobs on disk costs per job less
 *             than twice what it does with 2,000 (the fastest of 3 starts
 *             each, over an empty spool's, so a slow or busy machine passes;
 *             the linear scan per job of the old table measured 95 and 240
 *             us per job, 2.5 times: it fails)
 *   status    GET /status is the same size with 2,000 or 10,000 finished
 *             jobs (counts by state, the active jobs, the newest few)
 *             — and every job of the restart came from <spool>/jobs.index
 *             (the start-up log's count), not from a file per job
 *   lazy      a finished job's config and metrics history come back from
 *             disk when asked for; GET /jobs?after=ID finds its place;
 *             GET /metrics counts the finished jobs, lists none
 *   index     jobs.index missing, truncated mid-record, corrupt (a flipped
 *             byte, a bad header) or stale (a status.json written again
 *             after its entry) gives the same job table as a full scan of
 *             the job directories; the damage is logged and the next start
 *             takes every job from the rewritten index (a stale entry: the
 *             check after start-up reads the file, or, when it cannot take
 *             it, the next start does)
 *   no stat   a restart with 20,000 jobs in jobs.index names no status.json
 *             on the daemon's main thread (counted with strace, when there
 *             is one); the entries are checked afterwards, off the loop
 *
 * The figures are printed on stderr.
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
#include "../lib/tl.h"

static char *g_dir;
static tl_daemon g_d;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-scale");
}

static void stop(void)
{
    if (g_d.pid > 0) {
        int st = tl_daemon_stop(&g_d, SIGTERM, 30);
        ck_assert_msg(st == 0, "traind did not stop cleanly (wait status %d)", st);
    }
    tl_daemon_free(&g_d);
    memset(&g_d, 0, sizeof g_d);
}

static void teardown(void)
{
    stop();
    tl_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

static const char CONFIG_JSON[] =
    "{\"name\":\"%s\",\"model\":{\"type\":\"linear\",\"input_dim\":4,\"output_dim\":2},"
    "\"schedule\":{\"type\":\"constant\",\"total_steps\":20}}";

/* Writes text to path, without tl_write's fsyncs (thousands of files: the
 * test's disk time; nothing here is about crashes of the writer). */
static int quick_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* jobs/<id>/ with the status.json of a finished job. */
static void make_finished_job(const char *id, unsigned long seq)
{
    char *jd = xasprintf("%s/spool/jobs/%s", g_dir, id);
    ck_assert_int_eq(mkdir_p(jd, 0755), 0);
    /* config.yaml only for a few: status.json has the config (and writing
     * twice the files would double the test's time) */
    char *p, *text;
    if (seq % 100 == 1) {
        p = xasprintf("%s/config.yaml", jd);
        text = xasprintf("name: %s\nmodel: {type: linear, input_dim: 4, output_dim: 2}\n"
                         "schedule: {type: constant, total_steps: 20}\n", id);
        ck_assert_int_eq(quick_write(p, text), 0);
        free(p);
        free(text);
    }
    char *cfg = xasprintf(CONFIG_JSON, id);
    p = xasprintf("%s/status.json", jd);
    text = xasprintf("{\"id\":\"%s\",\"name\":\"%s\",\"state\":\"succeeded\",\"step\":20,\"total_steps\":20,"
                     "\"lr\":0.01,\"loss\":0.5,\"loss_avg\":0.5,\"grad_norm\":0.1,\"submitted_at\":"
                     "\"2026-11-24T13:45:00Z\",\"started_at\":\"2026-11-24T13:45:01Z\",\"finished_at\":"
                     "\"2026-11-24T13:46:00Z\",\"restarts\":0,\"crashes\":0,\"checkpoint_step\":20,\"seq\":%lu,"
                     "\"errors\":[],\"config\":%s}",
                     id, id, seq, cfg);
    ck_assert_int_eq(quick_write(p, text), 0);
    free(p);
    free(text);
    free(cfg);
    free(jd);
}

static void make_jobs(int from, int to)
{
    char id[32];
    for (int i = from; i < to; i++) {
        snprintf(id, sizeof id, "j%05d", i);
        make_finished_job(id, (unsigned long)i + 1);
    }
}

/* From the last start-up's log line "jobs: N loaded, M of them from
 * jobs.index": N and M. */
static void index_counts(int *loaded, int *from_index)
{
    char *p = xasprintf("%s/spool/daemon.log", g_dir);
    char *log = tl_read(p, NULL);
    free(p);
    ck_assert_ptr_nonnull(log);
    *loaded = *from_index = -1;
    for (char *s = log; (s = strstr(s, "jobs: ")) != NULL; s++)
        sscanf(s, "jobs: %d loaded, %d of them from jobs.index", loaded, from_index);
    free(log);
    ck_assert_msg(*loaded >= 0 && *from_index >= 0, "no \"jobs: N loaded, M of them from jobs.index\" logged");
}

/* Whether the daemon's log has text. */
static bool log_has(const char *text)
{
    char *p = xasprintf("%s/spool/daemon.log", g_dir);
    char *log = tl_read(p, NULL);
    free(p);
    bool has = log && strstr(log, text);
    free(log);
    return has;
}

/* Starts traind on the test's spool; returns the seconds to /healthz. */
static double start_timed(void)
{
    char *sp = xasprintf("%s/spool", g_dir);
    double t0 = tl_now();
    int rc = tl_daemon_start(&g_d, sp, NULL, 60);
    ck_assert_msg(rc == 0, "traind did not start");
    for (;;) {
        tl_resp r;
        tl_http(g_d.addr, "GET", "/healthz", NULL, NULL, 0, &r);
        int st = r.status;
        tl_resp_free(&r);
        if (st == 200)
            break;
        ck_assert_msg(tl_now() - t0 < 60, "no /healthz in 60 s");
        tl_sleep_ms(5);
    }
    free(sp);
    return tl_now() - t0;
}

/* GET /status's body (malloc'd). */
static char *status_body(void)
{
    tl_resp r;
    tl_http(g_d.addr, "GET", "/status", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    char *b = xstrdup(r.body);
    tl_resp_free(&r);
    return b;
}

/* Checks a /status body of expect_succeeded finished jobs; its size. */
static size_t status_check(char *body, int expect_succeeded)
{
    tl_resp r = {.body = body, .len = strlen(body)};
    cJSON *o = cJSON_Parse(r.body);
    ck_assert_ptr_nonnull(o);
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(o, "counts");
    ck_assert_msg(cJSON_IsObject(counts), "/status has no counts: %.200s", r.body);
    ck_assert_int_eq((int)tl_num(counts, "succeeded"), expect_succeeded);
    ck_assert_int_eq((int)tl_num(o, "jobs_total"), expect_succeeded);
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(o, "jobs");
    ck_assert_msg(cJSON_IsArray(jobs) && cJSON_GetArraySize(jobs) <= 10, "/status lists %d jobs",
                  cJSON_GetArraySize(jobs));
    /* newest first */
    const cJSON *first = cJSON_GetArrayItem(jobs, 0);
    char want[32];
    snprintf(want, sizeof want, "j%05d", expect_succeeded - 1);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "id")), want);
    cJSON_Delete(o);
    size_t n = r.len;
    free(body);
    return n;
}

/* The fastest of a few starts (a busy machine slows some down): seconds to
 * /healthz; *body (when not NULL) /status of the last. */
static double best_start(char **body)
{
    double best = INFINITY;
    for (int k = 0; k < 3; k++) {
        best = fmin(best, start_timed());
        if (k == 2 && body)
            *body = status_body();
        stop();
    }
    return best;
}

START_TEST(restart_cost_per_job_flat)
{
    enum { SMALL = 2000, BIG = 10000 };
    double t_empty = best_start(NULL);
    make_jobs(0, SMALL);
    char *b_small, *b_big;
    double t_small = best_start(&b_small);
    make_jobs(SMALL, BIG);
    double t_big = best_start(&b_big);
    /* per job, over the empty spool's start; a floor keeps noise from
     * making the 2,000-job figure tiny */
    double c_small = fmax((t_small - t_empty) / SMALL, 30e-6);
    double c_big = (t_big - t_empty) / BIG;
    fprintf(stderr, "scale: start to /healthz %.3f s empty, %.3f s with %d jobs, %.3f s with %d (%.1f and %.1f us "
                    "per job); /status %zu and %zu bytes\n",
            t_empty, t_small, SMALL, t_big, BIG, (t_small - t_empty) / SMALL * 1e6, c_big * 1e6, strlen(b_small),
            strlen(b_big));
    ck_assert_msg(c_big < 2 * c_small, "a job costs %.1f us at start-up with %d jobs, %.1f us with %d: grows",
                  c_big * 1e6, BIG, c_small * 1e6, SMALL);
    /* the restarts read one index, not a status.json per job */
    int loaded, from_index;
    index_counts(&loaded, &from_index);
    ck_assert_int_eq(loaded, BIG);
    ck_assert_msg(from_index == BIG, "only %d of %d jobs came from jobs.index at the last start", from_index, BIG);
    size_t s_small = status_check(b_small, SMALL), s_big = status_check(b_big, BIG);
    ck_assert_msg(s_big <= s_small + 16, "/status grew from %zu to %zu bytes", s_small, s_big);
}
END_TEST

/* The path of a wrapper "traind" (in <dir>/strace/) that runs the real one
 * under strace -f, logging the system calls that name a file to out; NULL
 * when there is no strace. */
static char *strace_wrapper(const char *out)
{
    if (access("/usr/bin/strace", X_OK) != 0)
        return NULL;
    char real[4096];
    if (!realpath(tl_traind_path(), real))
        return NULL;
    char *wd = xasprintf("%s/strace", g_dir);
    ck_assert_int_eq(mkdir_p(wd, 0755), 0);
    char *w = xasprintf("%s/traind", wd);
    /* LeakSanitizer cannot run under ptrace (a build with ASan) */
    char *text = xasprintf("#!/bin/sh\nASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0\"\nexport ASAN_OPTIONS\n"
                           "exec /usr/bin/strace -f -qq -e trace=%%file -o '%s' '%s' \"$@\"\n", out, real);
    ck_assert_int_eq(quick_write(w, text), 0);
    ck_assert_int_eq(chmod(w, 0755), 0);
    free(text);
    free(w);
    return wd;
}

/* The pid of strace's traced child (the daemon), 0 when none: from /proc,
 * else the first line of strace's log (the daemon's execve). */
static pid_t traced_child(pid_t tracer, const char *out)
{
    char *p = xasprintf("/proc/%d/task/%d/children", (int)tracer, (int)tracer);
    char *text = tl_read(p, NULL);
    free(p);
    int pid = 0;
    if (!text || sscanf(text, "%d", &pid) != 1) {
        free(text);
        text = tl_read(out, NULL);
        if (!text || sscanf(text, "%d", &pid) != 1)
            pid = 0;
    }
    free(text);
    return (pid_t)pid;
}

/* Lines of strace's log written by thread pid that hold text. */
static int strace_lines(const char *log, pid_t pid, const char *text)
{
    int n = 0;
    for (const char *l = log; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        int p;
        if (sscanf(l, "%d", &p) == 1 && p == (int)pid && memmem(l, len, text, strlen(text)))
            n++;
        l = nl ? nl + 1 : NULL;
    }
    return n;
}

/* A restart with N finished jobs, all in jobs.index, looks at no job's
 * files before it serves: the daemon's main thread (start-up and loop)
 * names no status.json, where a stat per job made the restart grow with
 * the jobs on disk (13 s at 100,000 with a cold cache).  The entries are
 * checked against the files afterwards, off the loop, and all still hold. */
START_TEST(restart_touches_no_job_file)
{
    enum { N = 20000 };
    make_jobs(0, N);
    start_timed();   /* no index yet: every status.json read, the index written */
    stop();
    double t = best_start(NULL);
    int loaded, from_index;
    index_counts(&loaded, &from_index);
    ck_assert_int_eq(loaded, N);
    ck_assert_int_eq(from_index, N);
    char *out = xasprintf("%s/strace.log", g_dir);
    char *wd = strace_wrapper(out);
    if (!wd) {
        tl_skip("restart_touches_no_job_file: no /usr/bin/strace to count system calls (restart with %d jobs: "
                "%.3f s)", N, t);
        free(out);
        return;
    }
    const char *was = getenv("TRAIND_BUILD");
    char *saved = was ? xstrdup(was) : NULL;
    setenv("TRAIND_BUILD", wd, 1);
    char *sp = xasprintf("%s/spool", g_dir);
    int rc = tl_daemon_start(&g_d, sp, NULL, 120);
    if (saved)
        setenv("TRAIND_BUILD", saved, 1);
    else
        unsetenv("TRAIND_BUILD");
    free(saved);
    free(sp);
    ck_assert_msg(rc == 0, "traind did not start under strace");
    pid_t daemon = traced_child(g_d.pid, out);
    ck_assert_msg(daemon > 0, "no traced traind under strace (pid %d)", (int)g_d.pid);
    /* traind.addr is written once the jobs are loaded and it listens */
    kill(daemon, SIGTERM);
    stop();
    char *log = tl_read(out, NULL);
    ck_assert_ptr_nonnull(log);
    int idx = strace_lines(log, daemon, "jobs.index"), st_main = strace_lines(log, daemon, "status.json");
    fprintf(stderr, "scale: restart with %d finished jobs %.3f s; under strace the main thread named jobs.index "
                    "%d times, a status.json %d times\n", N, t, idx, st_main);
    if (idx == 0)
        tl_skip("restart_touches_no_job_file: strace saw nothing of traind (no ptrace here?)");
    else
        ck_assert_msg(st_main == 0, "the restart's main thread named a status.json %d times with %d jobs, all in "
                                    "jobs.index (a system call per job)", st_main, N);
    free(log);
    free(out);
    free(wd);
    /* and every entry is then checked against its file, off the loop */
    start_timed();
    char want[96];
    snprintf(want, sizeof want, "jobs.index: %d of %d entries checked against their status.json", N, N);
    tl_assert_log(&g_d, want, "0 changed since", 120);
}
END_TEST

START_TEST(finished_job_read_lazily)
{
    make_jobs(0, 300);
    /* one with a history */
    char *p = xasprintf("%s/spool/jobs/j00005/metrics.jsonl", g_dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    for (int s = 1; s <= 20; s++)
        fprintf(f, "{\"step\":%d,\"lr\":0.01,\"loss\":%.9g,\"loss_avg\":0.5,\"grad_norm\":0.1,\"time\":%d}\n", s,
                1.0 / s, s);
    fclose(f);
    free(p);
    start_timed();
    cJSON *j = tl_get_json(g_d.addr, "/jobs/j00005", NULL);
    ck_assert_ptr_nonnull(j);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    ck_assert_msg(cJSON_IsObject(cfg), "a finished job's config is missing");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cfg, "name")), "j00005");
    cJSON_Delete(j);
    cJSON *m = tl_get_json(g_d.addr, "/jobs/j00005/metrics", NULL);
    ck_assert_ptr_nonnull(m);
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(m, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 20);
    ck_assert_int_eq((int)tl_num(cJSON_GetArrayItem(pts, 19), "step"), 20);
    cJSON_Delete(m);
    m = tl_get_json(g_d.addr, "/jobs/j00005/metrics?max=5", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "points")), 5);
    cJSON_Delete(m);
    int st = 0;
    m = tl_get_json(g_d.addr, "/jobs/nope/metrics", &st);
    ck_assert_int_eq(st, 404);
    cJSON_Delete(m);
    /* a page after an id: the jobs just older than it */
    cJSON *page = tl_get_json(g_d.addr, "/jobs?limit=3&after=j00100", NULL);
    ck_assert_ptr_nonnull(page);
    const cJSON *arr = cJSON_IsArray(page) ? page : cJSON_GetObjectItemCaseSensitive(page, "jobs");
    ck_assert_int_eq(cJSON_GetArraySize(arr), 3);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, 0), "id")),
                     "j00099");
    ck_assert_msg(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, 2), "config")),
                  "a page's finished job has no config");
    cJSON_Delete(page);
    /* GET /metrics counts the finished jobs but lists none of them */
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "traind_jobs{state=\"succeeded\"} 300\n"), "/metrics does not count 300 jobs");
    ck_assert_msg(!strstr(r.body, "traind_job_step{"), "/metrics lists finished jobs one by one");
    ck_assert_uint_lt(r.len, 4096);
    tl_resp_free(&r);
}
END_TEST

/* Every job object, newest first, as one text (GET /jobs pages). */
static char *job_table(void)
{
    size_t cap = 1 << 16, len = 0;
    char *all = xmalloc(cap);
    all[0] = '\0';
    char *after = NULL;
    for (;;) {
        char *path = after ? xasprintf("/jobs?limit=1000&after=%s", after) : xstrdup("/jobs?limit=1000");
        cJSON *page = tl_get_json(g_d.addr, path, NULL);
        free(path);
        ck_assert_msg(cJSON_IsArray(page), "GET /jobs is not an array");
        int n = cJSON_GetArraySize(page);
        char *text = cJSON_PrintUnformatted(page);
        size_t tl = strlen(text);
        if (len + tl + 1 > cap) {
            while (len + tl + 1 > cap)
                cap *= 2;
            all = xrealloc(all, cap);
        }
        memcpy(all + len, text, tl + 1);
        len += tl;
        free(text);
        free(after);
        after = n == 1000 ? xstrdup(cJSON_GetStringValue(
                                cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(page, n - 1), "id")))
                          : NULL;
        cJSON_Delete(page);
        if (!after)
            break;
    }
    return all;
}

/* Starts, takes the job table and the log's counts, stops. */
static char *table_of_start(int *from_index)
{
    start_timed();
    char *t = job_table();
    int loaded;
    index_counts(&loaded, from_index);
    stop();
    return t;
}

static char *index_path(void)
{
    return xasprintf("%s/spool/jobs.index", g_dir);
}

/* The table a full scan of the job directories gives (no index). */
static char *full_scan_table(void)
{
    char *ip = index_path();
    unlink(ip);
    free(ip);
    int from_index;
    char *t = table_of_start(&from_index);
    ck_assert_int_eq(from_index, 0);
    return t;
}

static void assert_same_table(const char *what, const char *got, const char *want)
{
    ck_assert_msg(strcmp(got, want) == 0, "%s: the job table differs from a full scan's (%zu vs %zu bytes)", what,
                  strlen(got), strlen(want));
}

/* jobs of every kind the index must carry: failed with errors, rejected
 * without a config, a fork, a trial, one with an Idempotency-Key */
static void make_varied_jobs(void)
{
    make_jobs(0, 300);
    char *p = xasprintf("%s/spool/jobs/j00003/status.json", g_dir);
    ck_assert_int_eq(tl_write(p, "{\"id\":\"j00003\",\"name\":\"rej\",\"state\":\"rejected\",\"step\":0,"
                                 "\"total_steps\":null,\"submitted_at\":\"2026-11-24T13:45:00Z\",\"finished_at\":"
                                 "\"2026-11-24T13:45:00Z\",\"seq\":4,\"errors\":[{\"path\":\"model.type\",\"line\":2,"
                                 "\"column\":8,\"message\":\"unknown model type \\\"x\\\"\"}],\"config\":null}"),
                     0);
    free(p);
    p = xasprintf("%s/spool/jobs/j00004/status.json", g_dir);
    ck_assert_int_eq(tl_write(p, "{\"id\":\"j00004\",\"name\":\"f\",\"state\":\"failed\",\"step\":7,\"total_steps\":20,"
                                 "\"lr\":0.0123456789012345,\"loss\":1e-300,\"eval_loss\":2.5,\"restarts\":2,\"crashes\":3,"
                                 "\"checkpoint_step\":5,\"seq\":5,\"errors\":[{\"message\":\"worker crashed\"}],"
                                 "\"config\":{\"name\":\"f\"}}"),
                     0);
    free(p);
    p = xasprintf("%s/spool/jobs/j00005/fork.json", g_dir);
    ck_assert_int_eq(
        tl_write(p, "{\"parent\":\"j00001\",\"at_step\":10,\"checkpoint\":\"checkpoint.bin\",\"metrics\":\"\"}"), 0);
    free(p);
    p = xasprintf("%s/spool/jobs/j00006/trial.json", g_dir);
    ck_assert_int_eq(tl_write(p, "{\"experiment\":\"e1\",\"params\":{\"optimizer.lr\":0.00031,\"k\":\"v\"}}"), 0);
    free(p);
    p = xasprintf("%s/spool/jobs/j00007/idempotency.key", g_dir);
    ck_assert_int_eq(tl_write(p, "key-7"), 0);
    free(p);
}

START_TEST(index_damage_same_table)
{
    make_varied_jobs();
    char *want = full_scan_table();   /* and writes the index */
    ck_assert_msg(strstr(want, "\"experiment\":\"e1\"") && strstr(want, "\"parent\":\"j00001\"") &&
                      strstr(want, "unknown model type"),
                  "the full scan lost a fork, a trial or a rejection");
    int from;
    char *got = table_of_start(&from);
    ck_assert_int_eq(from, 300);
    assert_same_table("from the index", got, want);
    free(got);

    char *ip = index_path();
    size_t len;
    char *good = tl_read(ip, &len);
    ck_assert_ptr_nonnull(good);
    ck_assert_uint_gt(len, 1000);

    /* truncated in the middle of a record (a crash while appending) */
    ck_assert_int_eq(truncate(ip, (off_t)(len / 2)), 0);
    got = table_of_start(&from);
    ck_assert_msg(from > 0 && from < 300, "a half index gave %d jobs", from);
    assert_same_table("truncated index", got, want);
    ck_assert(log_has("jobs.index: a torn record"));
    free(got);
    got = table_of_start(&from);   /* rewritten whole */
    ck_assert_int_eq(from, 300);
    assert_same_table("rewritten index", got, want);
    free(got);

    /* a flipped byte in the middle: the checksum catches it */
    FILE *f = fopen(ip, "w");
    ck_assert_ptr_nonnull(f);
    good[len / 2] ^= 0x40;
    fwrite(good, 1, len, f);
    fclose(f);
    good[len / 2] ^= 0x40;
    got = table_of_start(&from);
    ck_assert_msg(from < 300, "a corrupt record was used");
    assert_same_table("corrupt index", got, want);
    ck_assert(log_has("a checksum mismatch") || log_has("a bad record"));
    free(got);

    /* not an index at all */
    ck_assert_int_eq(tl_write(ip, "garbage, not an index\n"), 0);
    got = table_of_start(&from);
    ck_assert_int_eq(from, 0);
    assert_same_table("garbage index", got, want);
    ck_assert(log_has("not a traind index"));
    free(got);

    /* stale: j00010's status.json written again (another state) after its
     * entry; the old index is put back */
    f = fopen(ip, "w");
    ck_assert_ptr_nonnull(f);
    fwrite(good, 1, len, f);
    fclose(f);
    char *sp = xasprintf("%s/spool/jobs/j00010/status.json", g_dir);
    ck_assert_int_eq(tl_write(sp, "{\"id\":\"j00010\",\"name\":\"j00010\",\"state\":\"cancelled\",\"step\":9,"
                                  "\"total_steps\":20,\"loss\":0.75,\"seq\":11,\"errors\":[],"
                                  "\"config\":{\"name\":\"j00010\"}}"),
                     0);
    free(sp);
    /* the restart takes the index's entry, the check after it the file */
    start_timed();
    tl_assert_log(&g_d, "job j00010: status.json changed since its jobs.index entry; read again", NULL, 60);
    got = job_table();
    int loaded;
    index_counts(&loaded, &from);
    stop();
    ck_assert_int_eq(from, 300);
    ck_assert_msg(strstr(got, "\"id\":\"j00010\",\"name\":\"j00010\",\"state\":\"cancelled\""),
                  "a stale entry won over status.json");
    char *again = table_of_start(&from);   /* its new entry */
    ck_assert_int_eq(from, 300);
    assert_same_table("stale entry, next start", again, got);
    free(again);
    free(want);
    want = full_scan_table();
    assert_same_table("stale entry", got, want);
    free(got);
    free(want);

    /* stale and not to be taken while running (another seq: another place
     * in the table): the entry's summary until the next start, which reads
     * the files */
    sp = xasprintf("%s/spool/jobs/j00012/status.json", g_dir);
    ck_assert_int_eq(tl_write(sp, "{\"id\":\"j00012\",\"name\":\"j00012\",\"state\":\"failed\",\"step\":3,"
                                  "\"total_steps\":20,\"seq\":9999,\"errors\":[],\"config\":{\"name\":\"j00012\"}}"),
                     0);
    free(sp);
    start_timed();
    tl_assert_log(&g_d, "job j00012: status.json changed since its jobs.index entry and has another seq", NULL, 60);
    tl_assert_log(&g_d, "entries checked against their status.json", "1 changed since, 0 read again", 60);
    stop();
    got = table_of_start(&from);
    ck_assert_int_eq(from, 299);
    ck_assert_msg(strstr(got, "\"id\":\"j00012\",\"name\":\"j00012\",\"state\":\"failed\""),
                  "the next start did not read a stale job's files");
    want = full_scan_table();
    assert_same_table("stale entry, another seq", got, want);
    free(got);
    free(want);
    free(good);
    free(ip);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("scale");
    TCase *tc = tcase_create("scale");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, restart_cost_per_job_flat);
    tcase_add_test(tc, restart_touches_no_job_file);
    tcase_add_test(tc, finished_job_read_lazily);
    tcase_add_test(tc, index_damage_same_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tl_run_suite(suite()) ? 1 : 0;
}

/*
 * test_admission — limits that every path obeys, against the real traind
 * ($TRAIND_BUILD/traind):
 *
 *   admit    max_queued_jobs holds for every path that queues a job: an
 *            experiment's trials wait inside it (never more than the cap
 *            queued) and all run; a fork with an Idempotency-Key over the cap
 *            gets 429 with Retry-After, as POST /jobs does
 *   keys     Idempotency-Keys are scoped to their endpoint (a POST /jobs key
 *            is not a fork's, nor a trial's internal one) and compared with
 *            their request: the same key with another body is 422 naming
 *            the key, with the same body the first answer, after kill -9 too
 *   bounds   the defaults stop the absurd: train.keep_every keeping a
 *            checkpoint at nearly every step is refused; a rejected job keeps
 *            its errors on disk, not in memory (VmRSS per rejected job, also
 *            after a restart)
 *   small    a leaderboard metric that a restart does not round; a long
 *            experiment name blamed on the experiment, not its trials;
 *            invalid configs (POST /jobs, experiments posted or dropped)
 *            rejected at once behind a full queue
 *   disk     a runaway job (log_every: 1) on a 256 MiB tmpfs spool (a mount
 *            namespace: skipped where mounts are not allowed) stopped by the
 *            default max_job_disk, naming it, the disk never full
 *
 * Figures (queued counts, RSS per rejected job, the runaway's disk when
 * stopped) are printed on stderr.
 */
#include <check.h>
#include <math.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/util.h"
#include "../lib/tl.h"

/* Trains far longer than any test waits. */
static const char STEADY[] =
    "name: steady\n"
    "model: {type: mlp, input_dim: 8, hidden: [16], output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: constant, total_steps: 50000000}\n"
    "train: {log_every: 1000, checkpoint_every: 2000}\n";

/* A job of a moment. */
static const char SMALL_FMT[] =
    "name: %s\n"
    "model: {type: linear, input_dim: 4, output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 4}\n"
    "optimizer: {lr: 0.01}\n"
    "schedule: {type: constant, total_steps: 100}\n";

static char *g_dir;
static tl_daemon g_d;
static bool g_mounted;   /* a tmpfs on <g_dir>/spool to undo */

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-admit");
    g_mounted = false;
}

static void teardown(void)
{
    tl_stop_clean(&g_d, 30);
    if (g_mounted) {
        char *sp = xasprintf("%s/spool", g_dir);
        umount2(sp, MNT_DETACH);
        free(sp);
        g_mounted = false;
    }
    tl_fixture_end(&g_dir, &g_d);
}

/* ------------------------------------------------------------------ */
/* helpers                                                              */

/* traind with traind.yaml holding text. */
static void start_with(const char *conf_text)
{
    char *conf = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(conf, conf_text), 0);
    const char *args[] = {"--config", conf, NULL};
    tl_start_in(&g_d, g_dir, args, 30);
    free(conf);
}

static void restart_after_kill9(void)
{
    tl_daemon_stop(&g_d, SIGKILL, 30);
    char *conf = xasprintf("%s/traind.yaml", g_dir);
    struct stat st;
    bool have = stat(conf, &st) == 0;
    const char *args[] = {"--config", conf, NULL};
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, have ? args : NULL, 30);
    free(conf);
}

/* POST path with body and the token, an Idempotency-Key unless key is NULL. */
static void post_keyed(const char *path, const char *body, const char *key, tl_resp *r)
{
    char *kh = key ? xasprintf("Idempotency-Key: %s\r\n", key) : xstrdup("");
    char *req = xasprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n%s"
                          "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                          path, g_d.addr, g_d.token, kh, strlen(body), body);
    ck_assert_int_eq(tl_http_raw(g_d.addr, req, strlen(req), 20000, r), 0);
    free(req);
    free(kh);
}

/* The "id" of an answer's JSON body, malloc'd, or NULL. */
static char *id_of(const tl_resp *r)
{
    cJSON *o = cJSON_Parse(r->body);
    const char *s = tl_str(o, "id");
    char *id = s ? xstrdup(s) : NULL;
    cJSON_Delete(o);
    return id;
}

static int count_in_state(const char *state)
{
    cJSON *s = tl_get_json(g_d.addr, "/status", NULL);
    ck_assert_ptr_nonnull(s);
    int n = (int)tl_num(cJSON_GetObjectItemCaseSensitive(s, "counts"), state);
    cJSON_Delete(s);
    return n;
}

/* GET /experiments/ID's state, malloc'd ("" when none). */
static char *exp_state(const char *id)
{
    char *path = xasprintf("/experiments/%s", id);
    cJSON *x = tl_get_json(g_d.addr, path, NULL);
    free(path);
    char *s = xstrdup(x && tl_str(x, "state") ? tl_str(x, "state") : "");
    cJSON_Delete(x);
    return s;
}

/* ------------------------------------------------------------------ */
/* admit                                                                */

#define CAP 3
#define N_TRIALS 12

/* A 12-trial experiment under max_queued_jobs: 3 never has more than 3
 * jobs queued (it had all 12 at once: trials bypassed the cap) and every
 * trial runs to the end. */
START_TEST(experiment_trials_wait_for_room)
{
    start_with("max_queued_jobs: 3\nmax_jobs: 1\n");
    const char *exp =
        "name: many\n"
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "data: {kind: synthetic, batch_size: 4}\n"
        "optimizer: {lr: 0.01}\n"
        "schedule: {type: constant, total_steps: 50}\n"
        "sweep:\n"
        "  method: grid\n"
        "  metric: loss_avg\n"
        "  parameters:\n"
        "    optimizer.lr: [0.001, 0.002, 0.003, 0.004, 0.005, 0.006]\n"
        "    seed: [1, 2]\n";
    tl_resp r;
    post_keyed("/experiments", exp, NULL, &r);
    ck_assert_msg(r.status == 201, "POST /experiments: %d %s", r.status, r.body);
    char *id = id_of(&r);
    tl_resp_free(&r);
    int most = 0;
    double t0 = tl_now();
    char *st = NULL;
    while (tl_now() - t0 < 120) {
        int q = count_in_state("queued");
        most = q > most ? q : most;
        free(st);
        st = exp_state(id);
        if (strcmp(st, "running") != 0)
            break;
        tl_sleep_ms(10);
    }
    fprintf(stderr, "experiment_trials_wait_for_room: %d trials, max_queued_jobs %d: at most %d queued\n", N_TRIALS,
            CAP, most);
    ck_assert_msg(most <= CAP, "%d jobs queued under max_queued_jobs %d", most, CAP);
    ck_assert_str_eq(st, "succeeded");
    ck_assert_int_eq(count_in_state("succeeded"), N_TRIALS);
    free(st);
    free(id);
}
END_TEST

/* A fork with an Idempotency-Key over the cap gets 429 and Retry-After
 * (it got 201: keyed forks skipped the check); without room no job is made. */
START_TEST(keyed_fork_over_cap)
{
    start_with("max_queued_jobs: 1\nmax_jobs: 1\n");
    char *p = xasprintf(SMALL_FMT, "parent");
    char *pid = tl_submit(&g_d, p);
    cJSON_Delete(tl_wait_state(&g_d, pid, "succeeded", 60));
    char *sid = tl_submit(&g_d, STEADY);
    cJSON_Delete(tl_wait_state(&g_d, sid, "running", 60));
    char *w = xasprintf(SMALL_FMT, "waiter");
    char *wid = tl_submit(&g_d, w);   /* the one queued place */
    tl_resp r;
    char *path = xasprintf("/jobs/%s/fork", pid);
    post_keyed(path, "{\"at_step\": 100}", "fork-key-1", &r);
    ck_assert_msg(r.status == 429, "keyed fork over the cap: %d %s", r.status, r.body);
    char *ra = tl_header(&r, "Retry-After");
    ck_assert_msg(ra && atoi(ra) > 0, "no Retry-After");
    free(ra);
    tl_resp_free(&r);
    post_keyed(path, "{\"at_step\": 100}", NULL, &r);
    ck_assert_msg(r.status == 429, "fork over the cap: %d %s", r.status, r.body);
    tl_resp_free(&r);
    ck_assert_int_eq(count_in_state("queued"), 1);
    /* room again: the same key makes the fork (a 429 was no answer to replay) */
    char *cpath = xasprintf("/jobs/%s/cancel", wid);
    ck_assert_int_eq(tl_post(&g_d, cpath, g_d.token, "", NULL), 202);
    cJSON_Delete(tl_wait_state(&g_d, wid, "cancelled", 30));
    post_keyed(path, "{\"at_step\": 100}", "fork-key-1", &r);
    ck_assert_msg(r.status == 201, "keyed fork with room: %d %s", r.status, r.body);
    tl_resp_free(&r);
    free(cpath);
    free(path);
    free(w);
    free(wid);
    free(sid);
    free(pid);
    free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* keys                                                                 */

/* One key, three endpoints and two bodies. */
START_TEST(keys_scoped_and_compared)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    char *a = xasprintf(SMALL_FMT, "alpha");
    tl_resp r;
    post_keyed("/jobs", a, "k1", &r);
    ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
    char *aid = id_of(&r);
    tl_resp_free(&r);
    cJSON_Delete(tl_wait_state(&g_d, aid, "succeeded", 60));

    /* the same key at the fork endpoint: a fork, not alpha (it was 201 with alpha's id) */
    char *fpath = xasprintf("/jobs/%s/fork", aid);
    post_keyed(fpath, "{\"at_step\": 100}", "k1", &r);
    ck_assert_msg(r.status == 201, "fork under a POST /jobs key: %d %s", r.status, r.body);
    char *fid = id_of(&r);
    tl_resp_free(&r);
    ck_assert_msg(fid && strcmp(fid, aid) != 0, "the fork answered with job %s, its parent", fid);
    cJSON *fj = tl_get_job(&g_d, fid);
    ck_assert_str_eq(tl_str(fj, "parent"), aid);
    cJSON_Delete(fj);
    /* the fork again, same body: its first answer; another body: 422 naming the key */
    post_keyed(fpath, "{\"at_step\": 100}", "k1", &r);
    char *again = id_of(&r);
    ck_assert_msg(r.status == 201 && again && !strcmp(again, fid), "fork replay: %d %s", r.status, r.body);
    free(again);
    tl_resp_free(&r);
    post_keyed(fpath, "{\"at_step\": 100, \"set\": {\"optimizer.lr\": 0.5}}", "k1", &r);
    ck_assert_msg(r.status == 422 && strstr(r.body, "k1") && !strstr(r.body, "\"id\""),
                  "fork, same key, another body: %d %s", r.status, r.body);
    tl_resp_free(&r);

    /* POST /jobs: the same body answers alpha; another body is 422 naming the key */
    post_keyed("/jobs", a, "k1", &r);
    char *same = id_of(&r);
    ck_assert_msg(r.status == 201 && same && !strcmp(same, aid), "replay: %d %s", r.status, r.body);
    free(same);
    tl_resp_free(&r);
    char *b = xasprintf(SMALL_FMT, "beta");
    post_keyed("/jobs", b, "k1", &r);
    ck_assert_msg(r.status == 422 && strstr(r.body, "'k1'") && !strstr(r.body, "\"id\""),
                  "same key, another body: %d %s", r.status, r.body);
    tl_resp_free(&r);

    /* an outside key shaped as a trial's internal one is not trial 0 of sw */
    post_keyed("/jobs", b, "experiment:sw:0", &r);
    ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
    char *bid = id_of(&r);
    tl_resp_free(&r);
    const char *exp =
        "name: sw\n"
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "data: {kind: synthetic, batch_size: 4}\n"
        "optimizer: {lr: 0.01}\n"
        "schedule: {type: constant, total_steps: 30}\n"
        "sweep:\n"
        "  method: grid\n"
        "  metric: loss_avg\n"
        "  parameters:\n"
        "    optimizer.lr: [0.02, 0.03]\n";
    post_keyed("/experiments", exp, NULL, &r);
    ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
    char *xid = id_of(&r);
    tl_resp_free(&r);
    ck_assert_str_eq(xid, "sw");
    double t0 = tl_now();
    char *st = NULL;
    do {
        free(st);
        st = exp_state("sw");
        tl_sleep_ms(50);
    } while (!strcmp(st, "running") && tl_now() - t0 < 60);
    ck_assert_str_eq(st, "succeeded");
    free(st);
    cJSON *x = tl_get_json(g_d.addr, "/experiments/sw", NULL);
    cJSON *tr;
    cJSON_ArrayForEach(tr, cJSON_GetObjectItemCaseSensitive(x, "trials")) {
        const char *job = tl_str(tr, "job");
        ck_assert_msg(job && strcmp(job, bid) != 0, "a trial of sw is job %s, POSTed under experiment:sw:0", bid);
        cJSON *tj = tl_get_job(&g_d, job);
        ck_assert_str_eq(tl_str(tj, "experiment"), "sw");
        cJSON_Delete(tj);
    }
    cJSON_Delete(x);
    /* POST /experiments: another body under a used key is 422 too */
    post_keyed("/experiments", exp, "xk", &r);
    ck_assert_int_eq(r.status, 201);
    tl_resp_free(&r);
    char *exp2 = xstrdup(exp);
    memcpy(strstr(exp2, "name: sw"), "name: sv", 8);
    post_keyed("/experiments", exp2, "xk", &r);
    ck_assert_msg(r.status == 422 && strstr(r.body, "xk"), "experiment, same key, another body: %d %s", r.status,
                  r.body);
    tl_resp_free(&r);

    /* after kill -9 the keys are as they were: scoped, and compared */
    restart_after_kill9();
    post_keyed("/jobs", a, "k1", &r);
    same = id_of(&r);
    ck_assert_msg(r.status == 201 && same && !strcmp(same, aid), "replay after kill -9: %d %s", r.status, r.body);
    free(same);
    tl_resp_free(&r);
    post_keyed("/jobs", b, "k1", &r);
    ck_assert_msg(r.status == 422, "another body after kill -9: %d %s", r.status, r.body);
    tl_resp_free(&r);
    post_keyed(fpath, "{\"at_step\": 100}", "k1", &r);
    again = id_of(&r);
    ck_assert_msg(r.status == 201 && again && !strcmp(again, fid), "fork replay after kill -9: %d %s", r.status,
                  r.body);
    free(again);
    tl_resp_free(&r);
    post_keyed("/experiments", exp2, "xk", &r);
    ck_assert_msg(r.status == 422, "experiment after kill -9: %d %s", r.status, r.body);
    tl_resp_free(&r);
    free(exp2);
    free(xid);
    free(bid);
    free(b);
    free(fid);
    free(fpath);
    free(aid);
    free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* bounds                                                               */

/* keep_every: 1 over 100,000 steps kept 100,000 checkpoints (214 MB/s
 * written); it is refused with the key and the least K allowed. */
START_TEST(keep_every_absurd_refused)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    static const char fmt[] =
        "name: keep%d\n"
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "data: {kind: synthetic, batch_size: 4}\n"
        "optimizer: {lr: 0.01}\n"
        "schedule: {type: constant, total_steps: 100000}\n"
        "train: {keep_every: %d}\n";
    char *all = xasprintf(fmt, 1, 1);
    tl_resp r;
    post_keyed("/jobs", all, NULL, &r);
    ck_assert_msg(r.status == 400 && strstr(r.body, "train.keep_every") && strstr(r.body, "100 or more"),
                  "keep_every: 1: %d %s", r.status, r.body);
    tl_resp_free(&r);
    char *some = xasprintf(fmt, 100, 100);   /* 1,000 kept: the most allowed */
    post_keyed("/jobs", some, NULL, &r);
    ck_assert_msg(r.status == 201, "keep_every: 100: %d %s", r.status, r.body);
    tl_resp_free(&r);
    free(some);
    free(all);
}
END_TEST

/* A tmpfs of size_kib on <g_dir>/spool (tl_mount_tmpfs: the check skipped
 * where mounts are not allowed). */
static bool mount_tmpfs_spool(const char *check, unsigned size_kib)
{
    char *sp = xasprintf("%s/spool", g_dir);
    g_mounted = tl_mount_tmpfs(sp, size_kib, check);
    free(sp);
    return g_mounted;
}

/* A runaway job (log_every: 1 over 100,000,000 steps) on a 256 MiB spool
 * with no max_job_disk in traind.yaml: the default (half of so small a
 * file system) stops it with a failure naming the limit, long before the
 * disk is full (it had no limit: metrics.jsonl grew until ENOSPC, and every
 * job queued behind it waited for room); the daemon goes on. */
START_TEST(runaway_job_default_disk_limit)
{
    /* 256 MiB: such a job writes 10-20 MB/s, and stopping writes its history
     * twice more (trainer_state.json and its cache) */
    if (!mount_tmpfs_spool("runaway_job_default_disk_limit", 256 * 1024))
        return;
    char *logp = xasprintf("%s/daemon.log", g_dir);   /* off the small disk */
    char *sp = xasprintf("%s/spool", g_dir);
    tl_start_opts o = {.log_path = logp};
    ck_assert_int_eq(tl_daemon_start_opts(&g_d, sp, NULL, 30, &o), 0);
    static const char runaway[] =
        "name: runaway\n"
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "data: {kind: synthetic, batch_size: 4}\n"
        "optimizer: {lr: 0.001}\n"
        "schedule: {type: constant, total_steps: 100000000}\n"
        "train: {log_every: 1, checkpoint_every: 100000000}\n";
    char *id = tl_submit(&g_d, runaway);
    double t0 = tl_now();
    cJSON *j = tl_wait_state(&g_d, id, "failed", 180);
    double dt = tl_now() - t0;
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "errors"));
    ck_assert_msg(strstr(text, "max_job_disk (128 MiB)"), "errors: %s", text);
    ck_assert_msg(!strstr(text, "No space left"), "errors: %s", text);
    free(text);
    cJSON_Delete(j);
    /* what it took when stopped (the log line of the check that stopped it) */
    char *log = tl_daemon_log(&g_d);
    const char *took = strstr(log, "its files take ");
    ck_assert_ptr_nonnull(took);
    fprintf(stderr, "runaway_job_default_disk_limit: stopped after %.1f s: %.*s\n", dt,
            (int)strcspn(took, "\n"), took);
    ck_assert_msg(!strstr(log, "queued jobs wait until"), "the spool filled up");
    ck_assert_msg(strstr(log, "max_job_disk 128 MiB (the default"), "the default is not logged");
    free(log);
    /* healthy: it answers, and a new job runs on the disk the runaway left */
    cJSON *st = tl_get_json(g_d.addr, "/status", NULL);
    ck_assert_ptr_nonnull(st);
    cJSON_Delete(st);
    char *y = xasprintf(SMALL_FMT, "after");
    char *id2 = tl_submit(&g_d, y);
    cJSON_Delete(tl_wait_state(&g_d, id2, "succeeded", 60));
    free(id2);
    free(y);
    free(id);
    free(sp);
    free(logp);
}
END_TEST

/* The daemon's VmRSS in KiB (/proc/PID/status), -1 when unknown. */
static long vmrss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = tl_read(path, NULL);
    const char *p = s ? strstr(s, "VmRSS:") : NULL;
    long kib = p ? strtol(p + 6, NULL, 10) : -1;
    free(s);
    return kib;
}

/* VmRSS once it has settled: the jobs' status.json writes done and freed
 * (the lowest of 3 s of samples). */
static long settled_rss_kib(pid_t pid)
{
    long least = vmrss_kib(pid);
    for (int i = 0; i < 30; i++) {
        tl_sleep_ms(100);
        long now = vmrss_kib(pid);
        least = now >= 0 && now < least ? now : least;
    }
    return least;
}

/* A config with 100 problems (the most listed): about 70 KB of errors. */
static char *many_problems(int i)
{
    char *text = xasprintf("name: bad-%04d\n", i);
    for (int k = 0; k < 120; k++) {
        char *more = xasprintf("%sunknown_key_number_%03d_with_a_long_name_to_make_the_message_longer: %d\n", text, k,
                               k);
        free(text);
        text = more;
    }
    return text;
}

#define N_REJECTED 1000
/* An ended job keeps about 2 KiB of heap (its record and the summary of its
 * errors: the first, cut short, and a count) and, while the daemon runs,
 * its event in the GET /events ring (some 0.8 KiB; the ring is bounded).
 * A rejected job's long errors are made and written on the thread pool,
 * never on the loop's heap among the summaries it keeps, and an intake is
 * freed where it was made: RSS grew by 19-22 KiB a job while the daemon
 * ran (pages kept by that heap's fragmentation), 5-7 KiB now (measured on
 * 2 busy cores); after a restart, 2 KiB. */
#define RSS_BOUND_KIB 12.0           /* while it runs */
#define RSS_BOUND_RESTART_KIB 3.0    /* after a restart, less an empty daemon's RSS */

/* Polls until n jobs are rejected. */
static void wait_rejected(int n, double timeout_s)
{
    double t0 = tl_now();
    int got = 0;
    while ((got = count_in_state("rejected")) < n && tl_now() - t0 < timeout_s)
        tl_sleep_ms(100);
    ck_assert_msg(got >= n, "%d of %d rejected", got, n);
}

/* 1,000 rejected configs: the daemon's RSS grows by less than
 * RSS_BOUND_KIB a job (it was some 115 KiB: every error kept in memory,
 * and in the events ring; then some 20 KiB: the heap fragmented by each
 * job's errors built and freed on the loop), and by less than
 * RSS_BOUND_RESTART_KIB after a restart; GET /jobs/ID still lists every
 * error, also right after it is rejected. */
START_TEST(rejected_jobs_memory_bounded)
{
    if (tl_under_valgrind() || TL_ASAN) {
        tl_skip("rejected_jobs_memory_bounded: RSS is not the daemon's own under %s",
                TL_ASAN ? "AddressSanitizer" : "Valgrind");
        return;
    }
    tl_start_in(&g_d, g_dir, NULL, 30);
    /* one rejected first: what every job shares (the index, the code paths) is warm */
    char *one = many_problems(9999);
    tl_drop(g_d.spool, "bad-9999.yaml", one, 5);
    free(one);
    wait_rejected(1, 60);
    long before = vmrss_kib(g_d.pid);
    for (int i = 0; i < N_REJECTED; i++) {
        char *text = many_problems(i);
        char name[32];
        snprintf(name, sizeof name, "bad-%04d.yaml", i);
        tl_drop(g_d.spool, name, text, 5);
        free(text);
    }
    wait_rejected(N_REJECTED + 1, 240);
    long after = settled_rss_kib(g_d.pid);
    double per = (double)(after - before) / N_REJECTED;
    fprintf(stderr, "rejected_jobs_memory_bounded: VmRSS %ld -> %ld KiB over %d rejected jobs: %.2f KiB each\n",
            before, after, N_REJECTED, per);
    cJSON *j = tl_get_job(&g_d, "bad-0007");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "errors")), 100);
    cJSON_Delete(j);
    ck_assert_msg(per < RSS_BOUND_KIB, "%.2f KiB of RSS per rejected job", per);

    /* after a restart: read back from jobs.index and status.json */
    tl_stop_clean(&g_d, 30);
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 30);
    wait_rejected(N_REJECTED + 1, 60);
    long empty_kib = -1;
    {
        /* what a daemon with no job at all takes, for comparison */
        char *dir2 = tl_tmpdir("traind-admit-empty");
        tl_daemon e = {0};
        char *sp2 = xasprintf("%s/spool", dir2);
        ck_assert_int_eq(tl_daemon_start(&e, sp2, NULL, 30), 0);
        free(sp2);
        empty_kib = vmrss_kib(e.pid);
        tl_daemon_stop(&e, SIGTERM, 30);
        tl_daemon_free(&e);
        tl_rmtree(dir2);
        free(dir2);
    }
    long restarted = settled_rss_kib(g_d.pid);
    double per2 = (double)(restarted - empty_kib) / (N_REJECTED + 1);
    fprintf(stderr, "rejected_jobs_memory_bounded: after a restart VmRSS %ld KiB, an empty daemon %ld KiB: "
            "%.2f KiB per rejected job\n", restarted, empty_kib, per2);
    j = tl_get_job(&g_d, "bad-0007");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "errors")), 100);
    cJSON_Delete(j);
    ck_assert_msg(per2 < RSS_BOUND_RESTART_KIB, "%.2f KiB of RSS per rejected job after a restart", per2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* small                                                                */

/* Every trial's leaderboard metric of experiment id, by trial index, and
 * the best one (NAN when none): as the answer's JSON text gives them. */
static int leaderboard(const char *id, double *metrics, int most, double *best)
{
    char *path = xasprintf("/experiments/%s", id);
    cJSON *x = tl_get_json(g_d.addr, path, NULL);
    free(path);
    ck_assert_ptr_nonnull(x);
    int n = 0;
    cJSON *tr;
    cJSON_ArrayForEach(tr, cJSON_GetObjectItemCaseSensitive(x, "trials")) {
        int k = (int)tl_num(tr, "trial");
        ck_assert(k >= 0 && k < most);
        metrics[k] = tl_num(tr, "metric");
        n++;
    }
    *best = tl_num(cJSON_GetObjectItemCaseSensitive(x, "best"), "metric");
    cJSON_Delete(x);
    return n;
}

static void assert_same_bits(const double *a, const double *b, int n, const char *when)
{
    for (int k = 0; k < n; k++)
        ck_assert_msg(memcmp(&a[k], &b[k], sizeof a[k]) == 0, "trial %d's metric %.17g became %.17g %s", k, a[k],
                      b[k], when);
}

/* An experiment's leaderboard (each trial's metric, and the best) is the
 * same to the bit after a restart and after kill -9. */
START_TEST(leaderboard_exact_after_restart)
{
    tl_start_in(&g_d, g_dir, NULL, 30);
    const char *exp =
        "name: board\n"
        "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
        "data: {kind: synthetic, batch_size: 8, eval_fraction: 0.2}\n"
        "optimizer: {lr: 0.01}\n"
        "schedule: {type: cosine, warmup_steps: 10, total_steps: 137}\n"
        "train: {log_every: 7, eval_every: 50}\n"
        "sweep:\n"
        "  method: grid\n"
        "  metric: loss_avg\n"
        "  parameters:\n"
        "    optimizer.lr: [0.011, 0.023, 0.037]\n";
    tl_resp r;
    post_keyed("/experiments", exp, NULL, &r);
    ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
    tl_resp_free(&r);
    double t0 = tl_now();
    char *st = NULL;
    do {
        free(st);
        st = exp_state("board");
        tl_sleep_ms(50);
    } while (!strcmp(st, "running") && tl_now() - t0 < 60);
    ck_assert_str_eq(st, "succeeded");
    free(st);
    double m0[3], m1[3], m2[3], b0, b1, b2;
    ck_assert_int_eq(leaderboard("board", m0, 3, &b0), 3);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(isfinite(m0[k]), "trial %d has no metric", k);
    tl_stop_clean(&g_d, 30);
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 30);
    ck_assert_int_eq(leaderboard("board", m1, 3, &b1), 3);
    assert_same_bits(m0, m1, 3, "after a restart");
    assert_same_bits(&b0, &b1, 1, "(the best) after a restart");
    restart_after_kill9();
    ck_assert_int_eq(leaderboard("board", m2, 3, &b2), 3);
    assert_same_bits(m0, m2, 3, "after kill -9");
    assert_same_bits(&b0, &b2, 1, "(the best) after kill -9");
    fprintf(stderr, "leaderboard_exact_after_restart: best %.17g, the same after a restart and kill -9\n", b0);
}
END_TEST

/* Behind a full queue (max_queued_jobs 1, taken) what is invalid is
 * rejected at once, on every path: POST /jobs is 400, not 429 (with an
 * Idempotency-Key too); an invalid experiment, posted or dropped into
 * incoming/, is rejected and leaves incoming/; a valid config still gets
 * 429.  A 128-character experiment name is the experiment's error, at its
 * name key, not each trial's. */
START_TEST(invalid_rejected_behind_full_queue)
{
    start_with("max_queued_jobs: 1\nmax_jobs: 1\n");
    char *sid = tl_submit(&g_d, STEADY);
    cJSON_Delete(tl_wait_state(&g_d, sid, "running", 60));
    char *w = xasprintf(SMALL_FMT, "waiter");
    char *wid = tl_submit(&g_d, w);   /* the one queued place */
    tl_resp r;
    post_keyed("/jobs", "model: {type: nosuch}\n", NULL, &r);
    ck_assert_msg(r.status == 400 && strstr(r.body, "model.type"), "invalid POST behind a full queue: %d %s",
                  r.status, r.body);
    tl_resp_free(&r);
    post_keyed("/jobs", "model: {type: nosuch}\n", "bad-key", &r);
    ck_assert_msg(r.status == 400, "keyed invalid POST behind a full queue: %d %s", r.status, r.body);
    tl_resp_free(&r);
    char *v = xasprintf(SMALL_FMT, "valid");
    post_keyed("/jobs", v, NULL, &r);
    ck_assert_msg(r.status == 429, "valid POST behind a full queue: %d %s", r.status, r.body);
    tl_resp_free(&r);
    free(v);

    char name[129];
    memset(name, 'e', 128);
    name[128] = '\0';
    char *longexp = xasprintf("name: %s\n"
                              "model: {type: linear, input_dim: 4, output_dim: 2}\n"
                              "schedule: {type: constant, total_steps: 30}\n"
                              "sweep:\n"
                              "  method: grid\n"
                              "  parameters:\n"
                              "    optimizer.lr: [0.02, 0.03]\n", name);
    post_keyed("/experiments", longexp, NULL, &r);
    cJSON *o = cJSON_Parse(r.body);
    cJSON *errs = cJSON_GetObjectItemCaseSensitive(o, "errors");
    cJSON *e0 = cJSON_GetArrayItem(errs, 0);
    ck_assert_msg(r.status == 400 && cJSON_GetArraySize(errs) == 1 && tl_str(e0, "path") &&
                  !strcmp(tl_str(e0, "path"), "name") && strncmp(tl_str(e0, "message"), "trial", 5) != 0,
                  "a 128-character experiment name: %d %s", r.status, r.body);
    cJSON_Delete(o);
    tl_resp_free(&r);

    const char *badexp =
        "name: badexp\n"
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "schedule: {type: constant, total_steps: 30}\n"
        "sweep:\n"
        "  method: grid\n"
        "  parameters:\n"
        "    optimizer.lr: [0.01, -1]\n";
    post_keyed("/experiments", badexp, NULL, &r);
    ck_assert_msg(r.status == 400, "invalid experiment behind a full queue: %d %s", r.status, r.body);
    tl_resp_free(&r);
    tl_drop(g_d.spool, "badexp.yaml", badexp, 5);
    tl_drop(g_d.spool, "longexp.yaml", longexp, 5);
    char *p1 = xasprintf("%s/incoming/badexp.yaml", g_d.spool), *p2 = xasprintf("%s/incoming/longexp.yaml", g_d.spool);
    double t0 = tl_now();
    struct stat sb;
    while ((stat(p1, &sb) == 0 || stat(p2, &sb) == 0) && tl_now() - t0 < 10)
        tl_sleep_ms(50);
    ck_assert_msg(stat(p1, &sb) != 0 && stat(p2, &sb) != 0, "an invalid experiment file waits in incoming/");
    tl_assert_log(&g_d, "from incoming/badexp.yaml: rejected", NULL, 5);
    tl_assert_log(&g_d, "from incoming/longexp.yaml: rejected", NULL, 5);
    ck_assert_int_eq(count_in_state("queued"), 1);
    free(p1);
    free(p2);
    free(longexp);
    free(wid);
    free(w);
    free(sid);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *suite(void)
{
    Suite *s = suite_create("admission");
    TCase *ad = tcase_create("admit");
    tcase_add_checked_fixture(ad, setup, teardown);
    tcase_set_timeout(ad, 240);
    tcase_add_test(ad, experiment_trials_wait_for_room);
    tcase_add_test(ad, keyed_fork_over_cap);
    suite_add_tcase(s, ad);
    TCase *ks = tcase_create("keys");
    tcase_add_checked_fixture(ks, setup, teardown);
    tcase_set_timeout(ks, 240);
    tcase_add_test(ks, keys_scoped_and_compared);
    suite_add_tcase(s, ks);
    TCase *bd = tcase_create("bounds");
    tcase_add_checked_fixture(bd, setup, teardown);
    tcase_set_timeout(bd, 600);
    tcase_add_test(bd, keep_every_absurd_refused);
    tcase_add_test(bd, rejected_jobs_memory_bounded);
    suite_add_tcase(s, bd);
    TCase *sm = tcase_create("small");
    tcase_add_checked_fixture(sm, setup, teardown);
    tcase_set_timeout(sm, 240);
    tcase_add_test(sm, leaderboard_exact_after_restart);
    tcase_add_test(sm, invalid_rejected_behind_full_queue);
    suite_add_tcase(s, sm);
    TCase *dk = tcase_create("disk");
    tcase_add_checked_fixture(dk, setup, teardown);
    tcase_set_timeout(dk, 300);
    tcase_add_test(dk, runaway_job_default_disk_limit);
    suite_add_tcase(s, dk);
    return s;
}

int main(void)
{
    return tl_run_suite(suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * test_faults — fault injection against the real traind ($TRAIND_BUILD/traind)
 * on a temporary spool at 127.0.0.1:0: "prove nothing is lost".
 *
 *   write errors     RLIMIT_FSIZE on the daemon (its training processes
 *                    inherit it): a checkpoint, metrics.jsonl and a POSTed
 *                    config.yaml that cannot be written; and, where the test
 *                    may mount one (root, unshare -m), a spool on a full
 *                    tmpfs (ENOSPC) for status.json too.
 *   spool trouble    status.json and checkpoint.bin that cannot be replaced,
 *                    a job directory removed or replaced by a file while its
 *                    job runs, incoming/ and jobs/ removed, and (where it may
 *                    be mounted) the spool turned read-only under the daemon.
 *   kill -9 loop     the daemon SIGKILLed every 100-400 ms (seeded) while 20
 *                    jobs are submitted and trained: every job ends succeeded
 *                    with the numbers of an uninterrupted run, no config lost,
 *                    no step twice, no job started over.
 *                    Also the worst moment: a job finishing while traind is
 *                    frozen, then traind killed.
 *   SIGSTOP/SIGCONT  of a training process: a stall, not a failure.
 *   garbage          written into a training process's progress pipe (a
 *                    duplicate of its fd 3 via pidfd_getfd): logged, ignored.
 *
 * The uninterrupted references are `trainctl run` of the same configs,
 * made once in main() before the tests fork; their steps are scaled there so
 * that the kill loop has about LOOP_WORK_S of training to interrupt on this
 * machine and build.  Tests that need a mount namespace (root) say SKIPPED
 * and pass where there is none.  TRAINDTEST_ONLY=NAME runs one test.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/ckpt.h"
#include "traind/util.h"
#include "../lib/tl.h"

/* Five configs of ~0.2-0.6 s each (with %s the job's name, %ld its steps): the kill loop
 * trains four copies of each, the other tests one. */
#define N_TEMPLATES 5
static const char *const TEMPLATES[N_TEMPLATES] = {
    "name: %s\n"
    "seed: 5\n"
    "model: {type: mlp, input_dim: 8, hidden: [64], output_dim: 4, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 64, noise: 0.05}\n"
    "optimizer: {type: adamw, lr: 3.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 100, total_steps: %ld, min_lr_ratio: 0.1}\n"
    "train: {log_every: 100, checkpoint_every: 250}\n",

    "name: %s\n"
    "seed: 21\n"
    "model: {type: mlp, input_dim: 8, hidden: [24, 24], output_dim: 4, activation: gelu}\n"
    "data: {kind: synthetic, batch_size: 64, noise: 0.02}\n"
    "optimizer: {type: sgd, lr: 2.0e-2, momentum: 0.9, nesterov: true, grad_clip: 1.0}\n"
    "schedule: {type: linear, warmup_steps: 100, total_steps: %ld}\n"
    "train: {log_every: 100, checkpoint_every: 250}\n",

    "name: %s\n"
    "seed: 22\n"
    "model: {type: linear, input_dim: 48, output_dim: 8}\n"
    "data: {kind: synthetic, batch_size: 64, noise: 0.01}\n"
    "optimizer: {type: adam, lr: 1.0e-2}\n"
    "schedule: {type: warmup_stable_decay, warmup_steps: 300, decay_ratio: 0.2, total_steps: %ld}\n"
    "train: {log_every: 100, checkpoint_every: 250}\n",

    "name: %s\n"
    "seed: 23\n"
    "model: {type: mlp, input_dim: 6, hidden: [64, 32], output_dim: 2, activation: relu}\n"
    "data: {kind: synthetic, batch_size: 64, noise: 0.05}\n"
    "optimizer: {type: adamw, lr: 5.0e-3, weight_decay: 0.05}\n"
    "schedule: {type: onecycle, total_steps: %ld}\n"
    "train: {log_every: 100, checkpoint_every: 250}\n",

    "name: %s\n"
    "seed: 24\n"
    "model: {type: mlp, input_dim: 10, hidden: [48], output_dim: 5, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 64, noise: 0.02}\n"
    "optimizer: {type: adamw, lr: 2.0e-3, grad_clip: 0.5}\n"
    "schedule: {type: constant_with_warmup, warmup_steps: 500, total_steps: %ld}\n"
    "train: {log_every: 100, checkpoint_every: 250}\n",
};
static const long TEMPLATE_STEPS_FULL[N_TEMPLATES] = {11200, 10500, 15000, 11200, 12000};

/* The steps the templates are trained for: TEMPLATE_STEPS_FULL scaled in
 * main() so that the kill loop's work takes about LOOP_WORK_S on this machine
 * (and build: a sanitizer's is several times slower). */
static long g_steps[N_TEMPLATES];
#define TEMPLATE_STEPS(t) (g_steps[t])
#define LOOP_WORK_S 17.0

/* Template t as a config named name. */
static char *tmpl_cfg(int t, const char *name)
{
    return xasprintf(TEMPLATES[t], name, TEMPLATE_STEPS(t));
}

/* A checkpoint of ~260 KB (21768 parameters), far bigger than its metrics. */
static const char BIGCKPT_FMT[] =
    "name: %s\n"
    "seed: 7\n"
    "model: {type: mlp, input_dim: 32, hidden: [128, 128], output_dim: 8, activation: gelu}\n"
    "data: {kind: synthetic, batch_size: 16, noise: 0.05}\n"
    "optimizer: {type: adamw, lr: 1.0e-3, weight_decay: 0.01}\n"
    "schedule: {type: cosine, warmup_steps: 200, total_steps: 12000, min_lr_ratio: 0.1}\n"
    "train: {log_every: 100, checkpoint_every: 500}\n";

/* A small checkpoint and a metrics line every step: metrics.jsonl grows fast. */
static const char CHATTY_FMT[] =
    "name: %s\n"
    "seed: 9\n"
    "model: {type: mlp, input_dim: 6, hidden: [16], output_dim: 3, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 8, noise: 0.02}\n"
    "optimizer: {type: adamw, lr: 3.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 50, total_steps: 3000}\n"
    "train: {log_every: 1, checkpoint_every: 100}\n";

/* Runs far longer than any test waits. */
static const char LONG_FMT[] =
    "name: %s\n"
    "seed: 1\n"
    "model: {type: mlp, input_dim: 8, hidden: [16], output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: constant, total_steps: 50000000}\n"
    "train: {log_every: 100, checkpoint_every: 2000}\n";

/* Few progress lines (a frozen daemon reads none, and a pipe holds only so
 * many before the training process must wait). */
static const char QUIET_FMT[] =
    "name: %s\n"
    "seed: 31\n"
    "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 4, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 32, noise: 0.02}\n"
    "optimizer: {type: adamw, lr: 2.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 200, total_steps: 20000, min_lr_ratio: 0.05}\n"
    "train: {log_every: 1000, checkpoint_every: 1000}\n";

static const char QUICK_FMT[] =
    "name: %s\n"
    "seed: 3\n"
    "model: {type: linear, input_dim: 6, output_dim: 3}\n"
    "data: {kind: synthetic, batch_size: 8, noise: 0.01}\n"
    "optimizer: {type: adamw, lr: 1.0e-2}\n"
    "schedule: {type: cosine, warmup_steps: 300, total_steps: 3000, min_lr_ratio: 0.1}\n"
    "train: {log_every: 50, checkpoint_every: 1000}\n";

static char *g_refdir;   /* references of TEMPLATES: <g_refdir>/tN/metrics.jsonl */
static char *g_dir;
static tl_daemon g_d;
static bool g_mounted;   /* a tmpfs or bind mount on <g_dir>/spool to undo */
static double g_t0;

static char *fmt_cfg(const char *fmt, const char *name)
{
    return xasprintf(fmt, name);
}

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-faults");
    g_mounted = false;
    g_t0 = tl_now();
}

static void teardown(void)
{
    tl_daemon_free(&g_d);
    if (g_mounted) {
        char *sp = xasprintf("%s/spool", g_dir);
        umount2(sp, MNT_DETACH);
        free(sp);
    }
    tl_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
    fprintf(stderr, "  (%.1f s)\n", tl_now() - g_t0);
}

static char *spool_path(const char *rel)
{
    return xasprintf("%s/spool/%s", g_dir, rel);
}

static char *job_path(const char *id, const char *file)
{
    return xasprintf("%s/spool/jobs/%s/%s", g_dir, id, file);
}

static void start_daemon_opts(const char *const *extra, const tl_start_opts *o)
{
    char *spool = xasprintf("%s/spool", g_dir);
    int rc = tl_daemon_start_opts(&g_d, spool, extra, 30, o);
    if (rc != 0) {
        char *log = tl_daemon_log(&g_d);
        ck_abort_msg("traind did not start (%s): %s", tl_traind_path(), log);
    }
    free(spool);
}

static void start_daemon(const char *const *extra)
{
    start_daemon_opts(extra, NULL);
}

/* Waits for the daemon to exit by itself; its wait status or -1. */
static int daemon_wait_exit(double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    int st = -1;
    while (tl_now() < deadline) {
        pid_t r = waitpid(g_d.pid, &st, WNOHANG);
        if (r == g_d.pid) {
            g_d.pid = 0;
            return st;
        }
        tl_sleep_ms(10);
    }
    return -1;
}

static void stop_daemon_clean(void)
{
    int st = tl_daemon_stop(&g_d, SIGTERM, 60);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "traind's wait status %d", st);
    tl_daemon_free(&g_d);
}

static char *job_text(const char *id)
{
    char *path = xasprintf("/jobs/%s", id);
    cJSON *now = tl_get_json(g_d.addr, path, NULL);
    free(path);
    char *text = now ? cJSON_PrintUnformatted(now) : xstrdup("(none)");
    cJSON_Delete(now);
    return text;
}

static int n_errors(const cJSON *job)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(job, "errors"));
}

static void assert_healthy(void)
{
    ck_assert_msg(tl_pid_alive(g_d.pid), "traind died");
    int status;
    cJSON *h = tl_get_json(g_d.addr, "/healthz", &status);
    ck_assert_int_eq(status, 200);
    cJSON_Delete(h);
}

/* status.json of a job as it is on disk now: it must always parse. */
static cJSON *status_on_disk(const char *id)
{
    char *p = job_path(id, "status.json");
    char *text = tl_read(p, NULL);
    ck_assert_msg(text != NULL, "%s cannot be read", p);
    cJSON *o = cJSON_Parse(text);
    ck_assert_msg(o && tl_str(o, "state"), "%s does not parse: %.300s", p, text);
    free(text);
    free(p);
    return o;
}

/* Waits until status.json on disk says state (it is written off the loop). */
static void wait_status_on_disk(const char *id, const char *state, double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    for (;;) {
        cJSON *o = status_on_disk(id);
        bool ok = !strcmp(tl_str(o, "state"), state);
        char *text = ok ? NULL : cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (ok)
            return;
        if (tl_now() > deadline) {
            char *log = tl_daemon_log(&g_d);
            ck_abort_msg("status.json of %s never said %s: %.500s\ndaemon log:\n%s", id, state, text, log);
        }
        free(text);
        tl_sleep_ms(20);
    }
}

/* No NAME.tmp.PID left in a job directory. */
/* No temp file (NAME.tmp.PID) left in the directory of job id. */
static void assert_no_tmp(const char *id)
{
    char *dir = job_path(id, "");
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        ck_assert_msg(!strstr(e->d_name, ".tmp."), "%s/%s was left behind", dir, e->d_name);
    closedir(d);
    free(dir);
}

/* metrics.jsonl: whole lines only, each a JSON object with a step, steps
 * strictly increasing.  Returns the number of lines; *last the last step. */
static long check_metrics_file(const char *path, long *last)
{
    size_t len = 0;
    char *text = tl_read(path, &len);
    ck_assert_msg(text != NULL, "%s cannot be read", path);
    ck_assert_msg(len == 0 || text[len - 1] == '\n', "%s ends in a torn line", path);
    long n = 0, prev = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        ck_assert_msg(o != NULL, "%s line %ld does not parse: %.200s", path, n + 1, line);
        double s = tl_num(o, "step");
        ck_assert_msg(s > (double)prev, "%s line %ld: step %.0f after %ld", path, n + 1, s, prev);
        prev = (long)s;
        cJSON_Delete(o);
        n++;
        line = nl + 1;
    }
    free(text);
    if (last)
        *last = prev;
    return n;
}

/* Verifies a checkpoint file; returns its step. */
static long check_ckpt(const char *path)
{
    ckpt_file f;
    char err[512];
    int rc = ckpt_read(path, (size_t)64 << 20, &f, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: %s", path, rc == -ENOENT ? "missing" : err);
    long step = (long)f.step;
    ckpt_close(&f);
    return step;
}

static char *read_stripped(const char *path)
{
    char *text = tl_read(path, NULL);
    ck_assert_msg(text != NULL, "%s cannot be read", path);
    char *s = tl_strip_time(text);
    free(text);
    return s;
}

static char *ref_metrics(int t)
{
    char *p = xasprintf("%s/t%d/metrics.jsonl", g_refdir, t);
    char *s = read_stripped(p);
    free(p);
    return s;
}

/* The loss of the last line of a metrics text, as the float it was. */
static double last_loss(const char *text)
{
    size_t n = strlen(text);
    ck_assert(n > 1);
    const char *p = text + n - 1;
    while (p > text && p[-1] != '\n')
        p--;
    cJSON *o = cJSON_Parse(p);
    double v = (double)(float)tl_num(o, "loss");
    cJSON_Delete(o);
    return v;
}

/* A job's loss as the float it is (the API's JSON printer may be a unit
 * off in the last place of the double). */
static double api_loss(const cJSON *job)
{
    return (double)(float)tl_num(job, "loss");
}

static void assert_same_metrics(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) == 0)
        return;
    size_t i = 0;
    while (got[i] && got[i] == want[i])
        i++;
    size_t from = i > 120 ? i - 120 : 0;
    ck_abort_msg("%s: metrics.jsonl differs from the uninterrupted run at byte %zu:\n got: %.240s\nwant: %.240s",
                 what, i, got + from, want + from);
}

/* Copies the files of a job directory that a resume needs into a new folder
 * and finishes the run there with `trainctl run` (the daemon is not asked).
 * Returns the stripped metrics of the finished run. */
static char *resume_elsewhere(const char *id, const char *scratch_name)
{
    char *dir = xasprintf("%s/%s", g_dir, scratch_name);
    ck_assert_int_eq(mkdir_p(dir, 0755), 0);
    const char *files[] = {"config.yaml", "checkpoint.bin", "metrics.jsonl"};
    for (int i = 0; i < 3; i++) {
        char *src = job_path(id, files[i]);
        size_t len;
        char *data = tl_read(src, &len);
        ck_assert_msg(data != NULL, "%s cannot be read", src);
        char *dst = xasprintf("%s/%s", dir, files[i]);
        ck_assert_int_eq(write_file_atomic(dst, data, len, 0644), 0);
        free(dst);
        free(data);
        free(src);
    }
    char *cfg = xasprintf("%s/config.yaml", dir), *out = xasprintf("%s.out", dir);
    const char *argv[] = {tl_trainctl_path(), "run", cfg, "--out", dir, NULL};
    int rc = tl_run(argv, out, 120);
    char *text = tl_read(out, NULL);
    ck_assert_msg(rc == 0, "trainctl run (resume of %s) exited %d: %s", id, rc, text ? text : "");
    ck_assert_msg(text && strstr(text, "resum"), "trainctl did not resume %s: %s", id, text ? text : "");
    free(text);
    char *m = xasprintf("%s/metrics.jsonl", dir);
    char *s = read_stripped(m);
    free(m);
    free(cfg);
    free(out);
    free(dir);
    return s;
}

/* An uninterrupted run of text with trainctl; its stripped metrics. */
static char *reference_run(const char *text, const char *scratch_name)
{
    char *dir = xasprintf("%s/%s", g_dir, scratch_name);
    ck_assert_int_eq(mkdir_p(dir, 0755), 0);
    char *cfg = xasprintf("%s.yaml", dir), *out = xasprintf("%s.out", dir);
    ck_assert_int_eq(tl_write(cfg, text), 0);
    const char *argv[] = {tl_trainctl_path(), "run", cfg, "--out", dir, "--fresh", NULL};
    int rc = tl_run(argv, out, 120);
    char *o = tl_read(out, NULL);
    ck_assert_msg(rc == 0, "trainctl run %s exited %d: %s", cfg, rc, o ? o : "");
    free(o);
    char *m = xasprintf("%s/metrics.jsonl", dir);
    char *s = read_stripped(m);
    free(m);
    free(cfg);
    free(out);
    free(dir);
    return s;
}

static bool same_file(const char *path, const char *data, size_t len)
{
    size_t n;
    char *text = tl_read(path, &n);
    bool same = text && n == len && memcmp(text, data, len) == 0;
    free(text);
    return same;
}

/* --------------------------------------------------------- write errors */

START_TEST(write_errors_under_file_size_limit)
{
    const unsigned long long LIMIT = 128 * 1024;

    /* 1. Without a limit: the job gets a checkpoint, then the daemon is
     * stopped (the training process frozen first, so it cannot finish). */
    start_daemon(NULL);
    char *big = fmt_cfg(BIGCKPT_FMT, "bigckpt");
    char *a = tl_submit(&g_d, big);
    cJSON *j = tl_wait_running(&g_d, a, 500, 60);
    pid_t worker = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    ck_assert_int_eq(kill(worker, SIGSTOP), 0);
    ck_assert_int_eq(kill(g_d.pid, SIGTERM), 0);
    tl_sleep_ms(100);
    kill(worker, SIGCONT);
    int st = daemon_wait_exit(60);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "traind's wait status %d", st);
    tl_daemon_free(&g_d);
    cJSON *s = status_on_disk(a);
    ck_assert_str_eq(tl_str(s, "state"), "queued");
    long ckpt_step = (long)tl_num(s, "checkpoint_step");
    cJSON_Delete(s);
    ck_assert_int_ge(ckpt_step, 500);
    ck_assert_int_lt(ckpt_step, 12000);
    char *ckpt_path = job_path(a, "checkpoint.bin");
    size_t ckpt_len;
    char *ckpt_before = tl_read(ckpt_path, &ckpt_len);
    ck_assert_ptr_nonnull(ckpt_before);
    ck_assert_uint_gt(ckpt_len, LIMIT);
    ck_assert_int_eq(check_ckpt(ckpt_path), ckpt_step);

    /* 2. The daemon and its training processes under a 128 KiB file size
     * limit: the resumed job cannot write its next checkpoint, a chatty job
     * fills its metrics.jsonl up to the limit, a POSTed config over the
     * limit cannot be saved.  SIGXFSZ must kill none of them. */
    tl_start_opts o = {.fsize_limit = LIMIT};
    start_daemon_opts(NULL, &o);
    char *chatty = fmt_cfg(CHATTY_FMT, "chatty");
    char *b = tl_submit(&g_d, chatty);
    size_t hl = LIMIT + 50000;
    char *huge = xmalloc(hl + 1);
    int n = snprintf(huge, hl, QUICK_FMT, "huge");
    memset(huge + n, '#', hl - (size_t)n);
    huge[n] = '#';
    huge[hl - 1] = '\n';
    huge[hl] = '\0';
    tl_resp r;
    tl_post_job(&g_d, g_d.token, huge, hl, &r);
    ck_assert_msg(r.status == 500 || r.status == 507, "POST of a config over the limit: %d %s", r.status, r.body);
    tl_resp_free(&r);
    free(huge);
    tl_assert_log(&g_d, "cannot save", "File too large", 5);
    assert_healthy();

    j = tl_wait_state(&g_d, a, "failed", 60);
    ck_assert_msg(tl_job_has_error(j, "checkpoint.bin", "File too large"), "errors: %s", job_text(a));
    ck_assert(tl_num(j, "checkpoint_step") == (double)ckpt_step);
    cJSON_Delete(j);
    j = tl_wait_state(&g_d, b, "failed", 60);
    ck_assert_msg(tl_job_has_error(j, "metrics.jsonl", "File too large"), "errors: %s", job_text(b));
    cJSON_Delete(j);
    assert_healthy();

    /* nothing is corrupted: the old checkpoint is intact, no temp file,
     * status.json parses and says failed, metrics.jsonl holds whole lines */
    ck_assert_msg(same_file(ckpt_path, ckpt_before, ckpt_len), "checkpoint.bin changed");
    wait_status_on_disk(a, "failed", 10);
    wait_status_on_disk(b, "failed", 10);
    assert_no_tmp(a);
    assert_no_tmp(b);
    char *mp = job_path(a, "metrics.jsonl");
    long last;
    check_metrics_file(mp, &last);
    ck_assert_int_ge(last, ckpt_step);
    free(mp);
    mp = job_path(b, "metrics.jsonl");
    long lines = check_metrics_file(mp, &last);
    ck_assert_int_eq(lines, last);   /* a line for every step 1..last, none torn */
    ck_assert_int_gt(last, 100);
    ck_assert_int_lt(last, 3000);
    struct stat mst;
    ck_assert_int_eq(stat(mp, &mst), 0);
    ck_assert_uint_le((unsigned long long)mst.st_size, LIMIT);
    free(mp);
    char *bck = job_path(b, "checkpoint.bin");
    long bstep = check_ckpt(bck);
    ck_assert_int_le(bstep, last);
    ck_assert_int_eq(bstep % 100, 0);
    free(bck);
    stop_daemon_clean();
    fprintf(stderr, "fsize limit %llu: checkpoint write refused after step %ld (kept), metrics full at step %ld "
                    "(checkpoint %ld)\n", LIMIT, ckpt_step, last, bstep);

    /* 3. With room again, both resume from what they left and end with the
     * numbers of an uninterrupted run. */
    char *ra = reference_run(big, "ref-big"), *rb = reference_run(chatty, "ref-chatty");
    char *ga = resume_elsewhere(a, "resume-big"), *gb = resume_elsewhere(b, "resume-chatty");
    assert_same_metrics("bigckpt resumed after EFBIG", ga, ra);
    assert_same_metrics("chatty resumed after EFBIG", gb, rb);
    free(ra);
    free(rb);
    free(ga);
    free(gb);
    free(ckpt_before);
    free(ckpt_path);
    free(big);
    free(chatty);
    free(a);
    free(b);
}
END_TEST

/* A tmpfs of size_kib on <g_dir>/spool (tl_mount_tmpfs: the check skipped
 * where mounts are not allowed; the file size limit test covers write
 * errors then). */
static bool mount_tmpfs_spool(unsigned size_kib)
{
    char *sp = xasprintf("%s/spool", g_dir);
    g_mounted = tl_mount_tmpfs(sp, size_kib, "disk_full_on_tmpfs");
    free(sp);
    return g_mounted;
}

/* Fills the file system of path's folder: returns the filler's path. */
static char *fill_disk(const char *dir)
{
    char *p = xasprintf("%s/filler", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    static char block[64 * 1024];
    memset(block, 'f', sizeof block);
    for (size_t chunk = sizeof block; chunk >= 1; chunk /= 2) {
        for (;;) {
            ssize_t w = write(fd, block, chunk);
            if (w <= 0) {
                ck_assert_msg(w == 0 || errno == ENOSPC, "filling: %s", strerror(errno));
                break;
            }
        }
    }
    close(fd);
    return p;
}

START_TEST(disk_full_on_tmpfs)
{
    if (!mount_tmpfs_spool(4096))
        return;
    char *logp = xasprintf("%s/daemon.log", g_dir);   /* off the full disk, to be read */
    tl_start_opts o = {.log_path = logp};
    start_daemon_opts(NULL, &o);
    char *text = tmpl_cfg(0, "diskfull");
    char *id = tl_submit(&g_d, text);
    char *text2 = tmpl_cfg(1, "behind");   /* queued (max_jobs 1): starts on the full disk */
    char *id2 = tl_submit(&g_d, text2);
    cJSON *j = tl_wait_running(&g_d, id, 500, 60);
    pid_t worker = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    ck_assert_int_eq(kill(worker, SIGSTOP), 0);
    char *sp = spool_path("");
    /* written while there is room, moved into incoming/ once the disk is full */
    char *dropped = fmt_cfg(QUICK_FMT, "dropped-while-full");
    char *staged = spool_path(".staged.tmp");
    ck_assert_int_eq(tl_write(staged, dropped), 0);
    char *filler = fill_disk(sp);
    ck_assert_int_eq(kill(worker, SIGCONT), 0);

    /* the running job fails with the cause; the one queued behind it waits
     * (it must not fail for good at once); the daemon cannot write
     * status.json, says so, and keeps serving; a POST while full is refused */
    j = tl_wait_state(&g_d, id, "failed", 60);
    ck_assert_msg(tl_job_has_error(j, "No space left on device", NULL), "errors: %s", job_text(id));
    long ckpt_step = (long)tl_num(j, "checkpoint_step");
    cJSON_Delete(j);
    tl_assert_log(&g_d, "queued jobs wait until", "has room again", 5);
    tl_sleep_ms(1500);
    j = tl_wait_state(&g_d, id2, "queued", 1);
    cJSON_Delete(j);
    tl_assert_log(&g_d, "status.json", "No space left on device", 5);
    assert_healthy();
    cJSON_Delete(status_on_disk(id));   /* whatever could last be written: whole */
    cJSON_Delete(status_on_disk(id2));
    /* a file dropped in incoming/ meanwhile waits there, to be
     * taken once there is room */
    char *inc = spool_path("incoming/dropped-while-full.yaml");
    ck_assert_int_eq(rename(staged, inc), 0);   /* a rename needs no room */
    char *q = fmt_cfg(QUICK_FMT, "while-full");
    tl_resp r;
    tl_post_job(&g_d, g_d.token, q, strlen(q), &r);
    ck_assert_msg(r.status == 500 || r.status == 507, "POST on a full disk: %d %s", r.status, r.body);
    tl_resp_free(&r);
    free(q);
    tl_assert_log(&g_d, "cannot save", "No space left on device", 5);
    char *ckpt = job_path(id, "checkpoint.bin");
    ck_assert_int_eq(check_ckpt(ckpt), ckpt_step);
    free(ckpt);
    assert_no_tmp(id);
    assert_no_tmp(id2);
    char *mp = job_path(id, "metrics.jsonl");
    long last;
    check_metrics_file(mp, &last);
    free(mp);

    /* space again: status.json catches up by itself, the waiting job and new ones run */
    ck_assert_int_eq(unlink(filler), 0);
    wait_status_on_disk(id, "failed", 10);
    cJSON_Delete(tl_wait_state(&g_d, id2, "succeeded", 60));
    wait_status_on_disk(id2, "succeeded", 10);
    cJSON_Delete(tl_wait_state(&g_d, "dropped-while-full", "succeeded", 60));
    free(inc);
    free(staged);
    free(dropped);
    mp = job_path(id2, "metrics.jsonl");
    check_metrics_file(mp, NULL);
    free(mp);
    q = fmt_cfg(QUICK_FMT, "after-full");
    char *qid = tl_submit(&g_d, q);
    cJSON_Delete(tl_wait_state(&g_d, qid, "succeeded", 60));
    stop_daemon_clean();
    fprintf(stderr, "tmpfs full: job failed at metrics step %ld, checkpoint %ld kept\n", last, ckpt_step);

    char *got = resume_elsewhere(id, "resume-diskfull"), *want = ref_metrics(0);
    assert_same_metrics("resumed after ENOSPC", got, want);
    free(got);
    free(want);
    free(q);
    free(qid);
    free(filler);
    free(sp);
    free(text);
    free(text2);
    free(id);
    free(id2);
    free(logp);
}
END_TEST

/* ------------------------------------------------------- spool trouble */

/* Stops the walk when the top directory itself stays (ENOTEMPTY). */
static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (flag == FTW_DP || flag == FTW_D)
        return rmdir(path) != 0 && ftw->level == 0 ? 1 : 0;
    unlink(path);
    return 0;
}

/* rm -rf as the fault itself (tl_rmtree keeps things under TRAIND_TEST_KEEP).
 * Walks again while the top is left: the daemon may have put a
 * status.json.tmp in a directory the walk had just emptied. */
static void rm_rf(const char *path)
{
    ck_assert(strncmp(path, "/tmp/", 5) == 0);
    double deadline = tl_now() + 5;
    while (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 1) {
        ck_assert_msg(tl_now() < deadline, "cannot remove %s: %s", path, strerror(errno));
        tl_sleep_ms(5);
    }
}

/* mkdir where the daemon or a worker may have its temp file this instant. */
static void mkdir_retry(const char *path)
{
    double deadline = tl_now() + 5;
    while (mkdir(path, 0755) != 0) {
        ck_assert_msg(errno == EEXIST && tl_now() < deadline, "mkdir %s: %s", path, strerror(errno));
        tl_sleep_ms(1);
    }
}

START_TEST(spool_unwritable_or_vanishing)
{
    start_daemon(NULL);
    char body[1024];

    /* status.json and checkpoint.bin cannot be replaced: a directory sits
     * where each one's temp file goes (root ignores permissions; this does
     * not) */
    snprintf(body, sizeof body, LONG_FMT, "stuck");
    char *a = tl_submit(&g_d, body);
    cJSON *j = tl_wait_running(&g_d, a, 2000, 60);
    pid_t worker = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    char *stmp = xasprintf("%s/spool/jobs/%s/status.json.tmp.%d", g_dir, a, (int)g_d.pid);
    char *ctmp = xasprintf("%s/spool/jobs/%s/checkpoint.bin.tmp.%d", g_dir, a, (int)worker);
    mkdir_retry(stmp);
    mkdir_retry(ctmp);
    j = tl_wait_state(&g_d, a, "failed", 60);
    ck_assert_msg(tl_job_has_error(j, "checkpoint.bin", "Is a directory"), "errors: %s", job_text(a));
    long ckpt_step = (long)tl_num(j, "checkpoint_step");
    cJSON_Delete(j);
    tl_assert_log(&g_d, "status.json", "Is a directory", 5);
    cJSON *s = status_on_disk(a);
    ck_assert_str_eq(tl_str(s, "state"), "running");   /* the previous one, whole */
    cJSON_Delete(s);
    char *ck = job_path(a, "checkpoint.bin");
    ck_assert_int_eq(check_ckpt(ck), ckpt_step);
    free(ck);
    ck_assert_int_eq(rmdir(stmp), 0);
    wait_status_on_disk(a, "failed", 10);   /* retried once it can be written */
    ck_assert_int_eq(rmdir(ctmp), 0);
    assert_healthy();

    /* a job directory removed while its job runs */
    snprintf(body, sizeof body, LONG_FMT, "gone");
    char *b = tl_submit(&g_d, body);
    cJSON_Delete(tl_wait_running(&g_d, b, 0, 60));
    char *bd = job_path(b, ""), *gone = xasprintf("%s/removed", g_dir);
    ck_assert_int_eq(rename(bd, gone), 0);   /* gone at once (rm -rf races the files it writes) */
    rm_rf(gone);
    j = tl_wait_state(&g_d, b, "failed", 60);
    ck_assert_msg(tl_job_has_error(j, "No such file or directory", NULL), "errors: %s", job_text(b));
    cJSON_Delete(j);
    tl_assert_log(&g_d, b, "No such file or directory", 5);
    assert_healthy();

    /* a job directory replaced by a file while its job runs */
    snprintf(body, sizeof body, LONG_FMT, "swapped");
    char *c = tl_submit(&g_d, body);
    cJSON_Delete(tl_wait_running(&g_d, c, 0, 60));
    char *cd = xasprintf("%s/spool/jobs/%s", g_dir, c), *aside = xasprintf("%s/aside", g_dir);
    ck_assert_int_eq(tl_write(aside, "not a directory\n"), 0);
    /* one atomic swap where the kernel has it, else two renames (the job
     * may then fail on the missing directory in between) */
    bool swapped = renameat2(AT_FDCWD, aside, AT_FDCWD, cd, RENAME_EXCHANGE) == 0;
    if (!swapped) {
        char *aside2 = xasprintf("%s/aside-dir", g_dir);
        ck_assert_int_eq(rename(cd, aside2), 0);
        ck_assert_int_eq(rename(aside, cd), 0);
        free(aside2);
    }
    j = tl_wait_state(&g_d, c, "failed", 60);
    ck_assert_msg(tl_job_has_error(j, "checkpoint.bin", swapped ? "Not a directory" : NULL), "errors: %s", job_text(c));
    cJSON_Delete(j);
    assert_healthy();

    /* incoming/ removed: made again, and files dropped there are taken */
    char *inc = spool_path("incoming");
    rm_rf(inc);
    bool back = false;
    for (double deadline = tl_now() + 10; !back && tl_now() < deadline; tl_sleep_ms(20)) {
        struct stat st;
        back = stat(inc, &st) == 0 && S_ISDIR(st.st_mode);
    }
    ck_assert_msg(back, "incoming/ was not made again");
    tl_assert_log(&g_d, "incoming", "created it again", 5);
    char *q = fmt_cfg(QUICK_FMT, "after-incoming");
    tl_drop(g_d.spool, "after-incoming.yaml", q, 0);
    cJSON_Delete(tl_wait_state(&g_d, "after-incoming", "succeeded", 60));
    free(q);

    /* jobs/ removed (every job directory with it): new jobs still come in */
    char *jobs = spool_path("jobs");
    rm_rf(jobs);
    ck_assert_int_ne(access(jobs, F_OK), 0);
    q = fmt_cfg(QUICK_FMT, "after-jobs");
    char *qid = tl_submit(&g_d, q);
    cJSON_Delete(tl_wait_state(&g_d, qid, "succeeded", 60));
    char *qcfg = job_path(qid, "config.yaml");
    ck_assert_msg(same_file(qcfg, q, strlen(q)), "config.yaml of %s differs", qid);
    free(qcfg);
    assert_healthy();
    stop_daemon_clean();

    free(q);
    free(qid);
    free(jobs);
    free(inc);
    free(cd);
    free(aside);
    free(bd);
    free(gone);
    free(stmp);
    free(ctmp);
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(spool_turns_read_only)
{
    char *sp = spool_path("");
    ck_assert_int_eq(mkdir_p(sp, 0755), 0);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        tl_skip("spool_turns_read_only: no mount namespace (%s)", strerror(errno));
        free(sp);
        return;
    }
    start_daemon(NULL);
    char body[1024];
    snprintf(body, sizeof body, LONG_FMT, "ro");
    char *a = tl_submit(&g_d, body);
    cJSON_Delete(tl_wait_running(&g_d, a, 2000, 60));
    if (mount(sp, sp, NULL, MS_BIND, NULL) != 0 ||
        (g_mounted = true, mount(NULL, sp, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)) {
        tl_skip("spool_turns_read_only: cannot bind-mount the spool read-only (%s)", strerror(errno));
        free(sp);
        free(a);
        return;
    }
    cJSON *j = tl_wait_state(&g_d, a, "failed", 60);
    ck_assert_msg(tl_job_has_error(j, "Read-only file system", NULL), "errors: %s", job_text(a));
    cJSON_Delete(j);
    tl_assert_log(&g_d, "status.json", "Read-only file system", 5);
    char *q = fmt_cfg(QUICK_FMT, "on-ro");
    tl_resp r;
    tl_post_job(&g_d, g_d.token, q, strlen(q), &r);
    ck_assert_msg(r.status >= 500, "POST on a read-only spool: %d %s", r.status, r.body);
    tl_resp_free(&r);
    tl_assert_log(&g_d, "Read-only file system", "job directory", 5);
    assert_healthy();
    cJSON *s = status_on_disk(a);
    ck_assert_str_eq(tl_str(s, "state"), "running");
    cJSON_Delete(s);

    ck_assert_int_eq(umount2(sp, 0), 0);
    g_mounted = false;
    wait_status_on_disk(a, "failed", 10);
    char *qid = tl_submit(&g_d, q);
    cJSON_Delete(tl_wait_state(&g_d, qid, "succeeded", 60));
    stop_daemon_clean();
    free(q);
    free(qid);
    free(a);
    free(sp);
}
END_TEST

/* ------------------------------------------------------ the kill -9 loop */

#define N_LOOP 20
#define LOOP_MAX_S 25.0

typedef struct loop_job {
    char name[32];
    char *text;
    int tmpl;
    bool submitted;
    bool by_post;
} loop_job;

static void loop_submit(loop_job *lj)
{
    if (lj->by_post) {
        tl_resp r;
        tl_post_job(&g_d, g_d.token, lj->text, strlen(lj->text), &r);
        ck_assert_msg(r.status == 201, "POST %s: %d %s", lj->name, r.status, r.body);
        tl_resp_free(&r);
    } else {
        char *file = xasprintf("%s.yaml", lj->name);
        tl_drop(g_d.spool, file, lj->text, 0);
        free(file);
    }
    lj->submitted = true;
}

static int count_succeeded(void)
{
    cJSON *a = tl_get_json(g_d.addr, "/jobs?state=succeeded", NULL);
    int n = a ? cJSON_GetArraySize(a) : -1;
    cJSON_Delete(a);
    return n;
}

/* The ids of the job directories whose config.yaml is text, byte for byte. */
static int dirs_with_config(const char *text, char *id_out, size_t idlen)
{
    char *jobs = spool_path("jobs");
    DIR *d = opendir(jobs);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s/config.yaml", jobs, e->d_name);
        if (same_file(p, text, strlen(text))) {
            n++;
            snprintf(id_out, idlen, "%s", e->d_name);
        }
        free(p);
    }
    closedir(d);
    free(jobs);
    return n;
}

/* worker.log: the steps each training process started from, in order;
 * they never go back (a process never starts over what was checkpointed). */
static int check_start_steps(const char *id, int *n_starts)
{
    char *p = job_path(id, "worker.log");
    char *log = tl_read(p, NULL);
    free(p);
    ck_assert_ptr_nonnull(log);
    long prev = -1;
    int n = 0, from_zero = 0;
    for (char *s = log; (s = strstr(s, "training ")) != NULL; s++) {
        long step;
        if (sscanf(s, "training starts from step %ld", &step) != 1 &&
            sscanf(s, "training resumes from step %ld", &step) != 1)
            continue;
        ck_assert_msg(step >= prev, "job %s: a training process started at step %ld after one at %ld:\n%s", id,
                      step, prev, log);
        if (step == 0)
            from_zero++;
        prev = step;
        n++;
    }
    free(log);
    *n_starts = n;
    return from_zero;
}

START_TEST(sigkill_loop_loses_nothing)
{
    loop_job jobs[N_LOOP];
    for (int i = 0; i < N_LOOP; i++) {
        loop_job *lj = &jobs[i];
        memset(lj, 0, sizeof *lj);
        snprintf(lj->name, sizeof lj->name, "k%02d", i);
        lj->tmpl = i % N_TEMPLATES;
        lj->text = tmpl_cfg(lj->tmpl, lj->name);
        lj->by_post = i % 2 == 1;
    }
    char *want[N_TEMPLATES];
    for (int t = 0; t < N_TEMPLATES; t++)
        want[t] = ref_metrics(t);

    const char *extra[] = {"--max-jobs", "2", NULL};
    srand48(20261124);
    start_daemon(extra);
    int next = 0;
    for (; next < 4; next++)
        loop_submit(&jobs[next]);

    double t0 = tl_now();
    int kills = 0;
    double elapsed = 0;
    for (;;) {
        /* a job or two more each round: right after the start or (one in
         * three) right before the kill, so that some arrive in flight */
        bool late = lrand48() % 3 == 0;
        int batch = next < N_LOOP ? 1 + (int)(lrand48() % 2) : 0;
        for (int k = 0; k < batch && !late && next < N_LOOP; k++)
            loop_submit(&jobs[next++]);
        tl_sleep_ms(100 + (int)(lrand48() % 301));
        for (int k = 0; k < batch && late && next < N_LOOP; k++)
            loop_submit(&jobs[next++]);
        elapsed = tl_now() - t0;
        if (next == N_LOOP && elapsed >= LOOP_MAX_S)
            break;
        if (next == N_LOOP && count_succeeded() == N_LOOP)
            break;   /* nothing left to interrupt */
        ck_assert_int_eq(kill(g_d.pid, SIGKILL), 0);
        waitpid(g_d.pid, NULL, 0);
        g_d.pid = 0;
        kills++;
        tl_daemon_free(&g_d);
        start_daemon(extra);
    }
    double loop_s = tl_now() - t0;
    int done_in_loop = count_succeeded();

    /* the daemon that is up finishes what is left */
    double deadline = tl_now() + 240;
    while (count_succeeded() != N_LOOP) {
        if (tl_now() > deadline) {
            cJSON *all = tl_get_json(g_d.addr, "/jobs", NULL);
            char *text = all ? cJSON_PrintUnformatted(all) : NULL, *log = tl_daemon_log(&g_d);
            ck_abort_msg("not every job succeeded after the kill loop: %.3000s\nlog:\n%.5000s", text, log);
        }
        tl_sleep_ms(50);
    }
    double total_s = tl_now() - t0;

    int restarts = 0, starts = 0, from_zero_extra = 0;
    for (int i = 0; i < N_LOOP; i++) {
        loop_job *lj = &jobs[i];
        /* exactly one job directory holds the submitted file, byte for byte */
        char id[300] = "";
        int n = dirs_with_config(lj->text, id, sizeof id);
        ck_assert_msg(n == 1, "%s: %d job directories hold its config", lj->name, n);
        char *path = xasprintf("/jobs/%s", id);
        cJSON *j = tl_get_json(g_d.addr, path, NULL);
        free(path);
        ck_assert_msg(j != NULL, "%s: no job %s", lj->name, id);
        ck_assert_str_eq(tl_str(j, "state"), "succeeded");
        ck_assert_str_eq(tl_str(j, "name"), lj->name);
        ck_assert(tl_num(j, "step") == (double)TEMPLATE_STEPS(lj->tmpl));
        ck_assert_msg(n_errors(j) == 0, "%s: errors %s", lj->name, job_text(id));
        ck_assert_msg(api_loss(j) == last_loss(want[lj->tmpl]), "%s: final loss %.17g, uninterrupted %.17g",
                      lj->name, api_loss(j), last_loss(want[lj->tmpl]));
        restarts += (int)tl_num(j, "restarts");
        cJSON_Delete(j);
        char *mp = job_path(id, "metrics.jsonl");
        check_metrics_file(mp, NULL);
        char *got = read_stripped(mp);
        assert_same_metrics(lj->name, got, want[lj->tmpl]);
        free(got);
        free(mp);
        char *ck = job_path(id, "checkpoint.bin");
        ck_assert_int_eq(check_ckpt(ck), TEMPLATE_STEPS(lj->tmpl));
        free(ck);
        int ns;
        int z = check_start_steps(id, &ns);
        starts += ns;
        from_zero_extra += z > 1 ? z - 1 : 0;
    }
    fprintf(stderr,
            "kill loop: %d kills of traind in %.1f s (seeded, 100-400 ms apart); %d/%d jobs succeeded by then, "
            "%d/%d after %.1f s in all; %d restarts counted, %d training processes started, %d restarts from "
            "step 0 (killed before a first checkpoint); every metrics.jsonl identical to the uninterrupted run\n",
            kills, loop_s, done_in_loop, N_LOOP, N_LOOP, N_LOOP, total_s, restarts, starts, from_zero_extra);
    stop_daemon_clean();
    for (int i = 0; i < N_LOOP; i++) {
        char id[300] = "";
        dirs_with_config(jobs[i].text, id, sizeof id);
        assert_no_tmp(id);
    }
    ck_assert_int_ge(kills, 10);
    for (int t = 0; t < N_TEMPLATES; t++)
        free(want[t]);
    for (int i = 0; i < N_LOOP; i++)
        free(jobs[i].text);
}
END_TEST

/* The worst moment for a kill: the job's process finished (its last lines
 * still in the pipe) while traind was frozen, then traind is SIGKILLed.  The
 * next traind resumes the job at its last step and reports the numbers of
 * that step, not the older ones of its last status.json. */
START_TEST(daemon_killed_as_job_finishes)
{
    start_daemon(NULL);
    char *text = fmt_cfg(QUIET_FMT, "lastmoment");
    char *id = tl_submit(&g_d, text);
    cJSON *j = tl_wait_running(&g_d, id, 1000, 60);
    pid_t worker = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    /* hold the job until status.json on disk has numbers of a step long
     * before the end, then let it finish while traind is frozen */
    ck_assert_int_eq(kill(worker, SIGSTOP), 0);
    double deadline = tl_now() + 30;
    for (;;) {
        cJSON *s = status_on_disk(id);
        bool progress = isfinite(tl_num(s, "loss")) && tl_num(s, "step") > 0;
        cJSON_Delete(s);
        if (progress)
            break;
        ck_assert_msg(tl_now() < deadline, "status.json never showed progress");
        tl_sleep_ms(20);
    }
    ck_assert_int_eq(kill(g_d.pid, SIGSTOP), 0);
    ck_assert_int_eq(kill(worker, SIGCONT), 0);
    deadline = tl_now() + 120;
    while (tl_pid_alive(worker)) {
        char *p = xasprintf("/proc/%d/stat", (int)worker);
        char *st = tl_read(p, NULL);
        free(p);
        bool zombie = st && strstr(st, ") Z ");
        free(st);
        if (zombie)
            break;
        ck_assert_msg(tl_now() < deadline, "the training process did not finish");
        tl_sleep_ms(20);
    }
    kill(g_d.pid, SIGKILL);
    kill(g_d.pid, SIGCONT);
    waitpid(g_d.pid, NULL, 0);
    g_d.pid = 0;
    tl_daemon_free(&g_d);
    cJSON *s = status_on_disk(id);
    ck_assert_str_eq(tl_str(s, "state"), "running");
    cJSON_Delete(s);

    start_daemon(NULL);
    j = tl_wait_state(&g_d, id, "succeeded", 60);
    char *want = reference_run(text, "ref-quiet");
    ck_assert(tl_num(j, "step") == 20000);
    ck_assert(tl_num(j, "restarts") == 1);
    ck_assert_msg(api_loss(j) == last_loss(want), "final loss %.17g, uninterrupted %.17g", api_loss(j),
                  last_loss(want));
    ck_assert_int_eq(n_errors(j), 0);
    cJSON_Delete(j);
    char *mp = job_path(id, "metrics.jsonl");
    char *got = read_stripped(mp);
    assert_same_metrics("finished while traind was frozen", got, want);
    stop_daemon_clean();
    free(got);
    free(mp);
    free(want);
    free(text);
    free(id);
}
END_TEST

/* ------------------------------------------------ SIGSTOP and garbage */

START_TEST(stopped_worker_stalls_not_fails)
{
    start_daemon(NULL);
    char *text = tmpl_cfg(0, "paused");
    char *id = tl_submit(&g_d, text);
    cJSON *j = tl_wait_running(&g_d, id, 250, 60);
    pid_t worker = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    ck_assert_int_eq(kill(worker, SIGSTOP), 0);
    tl_sleep_ms(300);
    char *path = xasprintf("/jobs/%s", id);
    cJSON *j1 = tl_get_json(g_d.addr, path, NULL);
    tl_sleep_ms(2500);   /* past a status.json interval */
    cJSON *j2 = tl_get_json(g_d.addr, path, NULL);
    ck_assert_str_eq(tl_str(j2, "state"), "running");
    ck_assert(tl_num(j1, "step") == tl_num(j2, "step"));
    ck_assert(tl_num(j2, "step") < (double)TEMPLATE_STEPS(0));
    ck_assert(tl_num(j2, "pid") == (double)worker);
    ck_assert_int_eq(n_errors(j2), 0);
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    cJSON *s = status_on_disk(id);
    ck_assert_str_eq(tl_str(s, "state"), "running");
    cJSON_Delete(s);
    assert_healthy();
    ck_assert_int_eq(kill(worker, SIGCONT), 0);

    j = tl_wait_state(&g_d, id, "succeeded", 60);
    ck_assert(tl_num(j, "restarts") == 0);
    ck_assert(tl_num(j, "crashes") == 0);
    ck_assert_msg(n_errors(j) == 0, "errors: %s", job_text(id));
    char *want = ref_metrics(0);
    ck_assert(api_loss(j) == last_loss(want));
    cJSON_Delete(j);
    char *mp = job_path(id, "metrics.jsonl");
    char *got = read_stripped(mp);
    assert_same_metrics("stopped and continued", got, want);
    stop_daemon_clean();
    free(got);
    free(want);
    free(mp);
    free(path);
    free(text);
    free(id);
}
END_TEST

/* A duplicate of fd 3 (the progress pipe) of process pid, or -1. */
static int steal_progress_fd(pid_t pid, char *why, size_t whylen)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        int fd = (int)syscall(SYS_pidfd_getfd, pfd, 3, 0);
        int e = errno;
        close(pfd);
        if (fd >= 0)
            return fd;
        snprintf(why, whylen, "pidfd_getfd: %s", strerror(e));
    } else {
        snprintf(why, whylen, "pidfd_open: %s", strerror(errno));
    }
#endif
    char *p = xasprintf("/proc/%d/fd/3", (int)pid);   /* a pipe can be opened this way, a socket not */
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    size_t l = strlen(why);
    if (fd < 0)
        snprintf(why + l, whylen - l, "%sopen %s: %s", l ? "; " : "", p, strerror(errno));
    free(p);
    return fd;
}

static void write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "writing garbage: %s", strerror(errno));
        p += w;
        len -= (size_t)w;
    }
}

START_TEST(garbage_on_progress_pipe)
{
    start_daemon(NULL);
    char *text = tmpl_cfg(1, "noisy");
    char *id = tl_submit(&g_d, text);
    cJSON *j = tl_wait_running(&g_d, id, 250, 60);
    pid_t worker = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    ck_assert_int_eq(kill(worker, SIGSTOP), 0);   /* our lines do not interleave with its own */
    char why[256] = "";
    int fd = steal_progress_fd(worker, why, sizeof why);
    if (fd < 0) {
        kill(worker, SIGCONT);
        tl_skip("garbage_on_progress_pipe: cannot reach the progress pipe (%s)", why);
        free(text);
        free(id);
        return;
    }
    static const char bin[] = "\x00\x01\x02\xff\xfe binary\n";
    const char *lines[] = {
        "this is not json\n",
        "[1, 2, 3]\n",
        "{\"no_ev\": 1}\n",
        "{\"ev\": \"explode\"}\n",
        "{\"ev\": \"log\", \"step\": \"ten\"}\n",
        "{\"ev\": \"log\", \"step\": -5}\n",
        "{\"ev\": \"log\", \"step\": 1e300}\n",
        "{\"ev\": \"tick\", \"step\": 999999999, \"total_steps\": 999999999, \"loss\": 1}\n",
        "{\"ev\": \"ckpt\", \"step\": 1, \"checkpoint_step\": 99999999}\n",
        "{\"ev\": \"notice\", \"message\": 42}\n",
        "{\"ev\":\"log\",\"step\":12",            /* torn, then more garbage on the same line */
        "}}}}\n",
        "\n\n   \n",
    };
    size_t big = 200 * 1024;   /* longer than any line may be */
    char *x = xmalloc(big);
    memset(x, 'x', big);
    write_all(fd, x, big);
    write_all(fd, "\n", 1);
    free(x);
    write_all(fd, bin, sizeof bin - 1);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        write_all(fd, lines[i], strlen(lines[i]));
    close(fd);
    ck_assert_int_eq(kill(worker, SIGCONT), 0);

    j = tl_wait_state(&g_d, id, "succeeded", 60);
    ck_assert(tl_num(j, "restarts") == 0);
    ck_assert(tl_num(j, "step") == (double)TEMPLATE_STEPS(1));
    ck_assert_msg(n_errors(j) == 0, "errors: %s", job_text(id));
    char *want = ref_metrics(1);
    ck_assert(api_loss(j) == last_loss(want));
    ck_assert(tl_num(j, "checkpoint_step") == (double)TEMPLATE_STEPS(1));
    cJSON_Delete(j);
    tl_assert_log(&g_d, "unreadable progress line ignored", "not a JSON object", 5);
    tl_assert_log(&g_d, "unreadable progress line ignored", "longer than", 5);
    tl_assert_log(&g_d, "progress line from pid", "does not fit", 5);
    assert_healthy();
    /* the API's history is the file's */
    char *mpath = xasprintf("/jobs/%s/metrics", id);
    cJSON *m = tl_get_json(g_d.addr, mpath, NULL);
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(m, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), TEMPLATE_STEPS(1) / 100);
    const cJSON *pt;
    long prev = 0;
    cJSON_ArrayForEach(pt, pts) {
        ck_assert(tl_num(pt, "step") == (double)(prev + 100));
        prev += 100;
    }
    cJSON_Delete(m);
    free(mpath);
    char *mp = job_path(id, "metrics.jsonl");
    char *got = read_stripped(mp);
    assert_same_metrics("garbage on the pipe", got, want);
    /* the daemon still trains */
    char *q = fmt_cfg(QUICK_FMT, "after-garbage");
    char *qid = tl_submit(&g_d, q);
    cJSON_Delete(tl_wait_state(&g_d, qid, "succeeded", 60));
    stop_daemon_clean();
    free(q);
    free(qid);
    free(got);
    free(want);
    free(mp);
    free(text);
    free(id);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* The uninterrupted runs of TEMPLATES, two at a time as the kill loop's
 * daemon trains them; the wall time they took, or -1. */
static double run_references(void)
{
    double t0 = tl_now();
    pid_t pids[N_TEMPLATES];
    for (int t = 0; t < N_TEMPLATES; t++) {
        if (t >= 2) {
            int st;
            if (waitpid(pids[t - 2], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return -1;
        }
        pids[t] = fork();
        if (pids[t] < 0)
            return -1;
        if (pids[t] == 0) {
            char *name = xasprintf("t%d", t);
            char *text = tmpl_cfg(t, name);
            char *cfg = xasprintf("%s/t%d.yaml", g_refdir, t), *out = xasprintf("%s/t%d", g_refdir, t),
                 *log = xasprintf("%s/t%d.log", g_refdir, t);
            if (tl_write(cfg, text) != 0)
                _exit(1);
            const char *argv[] = {tl_trainctl_path(), "run", cfg, "--out", out, "--fresh", NULL};
            _exit(tl_run(argv, log, 600) == 0 ? 0 : 1);
        }
    }
    for (int t = N_TEMPLATES - 2; t < N_TEMPLATES; t++) {
        int st;
        if (waitpid(pids[t], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return -1;
    }
    return tl_now() - t0;
}

/* References at the full steps; if the kill loop's four copies of each
 * would take far from LOOP_WORK_S here, rescaled and made again. */
static int make_references(void)
{
    g_refdir = tl_tmpdir("traind-faults-ref");
    if (!g_refdir)
        return -1;
    memcpy(g_steps, TEMPLATE_STEPS_FULL, sizeof g_steps);
    double w = run_references();
    if (w < 0)
        return -1;
    double scale = LOOP_WORK_S / (4 * (w > 0.01 ? w : 0.01));
    if (scale < 0.7 || scale > 1.4) {
        scale = scale < 0.15 ? 0.15 : scale > 4 ? 4 : scale;
        for (int t = 0; t < N_TEMPLATES; t++) {
            long s = (long)(TEMPLATE_STEPS_FULL[t] * scale / 100 + 0.5) * 100;
            g_steps[t] = s < 1000 ? 1000 : s;
        }
        double w2 = run_references();
        if (w2 < 0)
            return -1;
        fprintf(stderr, "references: %.1f s at the full steps; steps scaled by %.2f (%.1f s)\n", w, scale, w2);
    } else {
        fprintf(stderr, "references: %.1f s\n", w);
    }
    return 0;
}

/* TRAINDTEST_ONLY=NAME runs only the test NAME (when chasing one). */
#define ADD(tc, fn)                                                                    \
    do {                                                                               \
        const char *only = getenv("TRAINDTEST_ONLY");                                  \
        if (!only || !*only || strcmp(only, #fn) == 0)                                 \
            tcase_add_test(tc, fn);                                                    \
    } while (0)

static Suite *suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 400);
    ADD(tc, write_errors_under_file_size_limit);
    ADD(tc, disk_full_on_tmpfs);
    ADD(tc, spool_unwritable_or_vanishing);
    ADD(tc, spool_turns_read_only);
    ADD(tc, sigkill_loop_loses_nothing);
    ADD(tc, daemon_killed_as_job_finishes);
    ADD(tc, stopped_worker_stalls_not_fails);
    ADD(tc, garbage_on_progress_pipe);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    if (make_references() != 0) {
        fprintf(stderr, "test_faults: cannot make the reference runs with %s (see %s)\n", tl_trainctl_path(),
                g_refdir ? g_refdir : "/tmp");
        return EXIT_FAILURE;
    }
    int failed = tl_run_suite(suite());
    tl_rmtree(g_refdir);
    free(g_refdir);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * The training loop end to end: determinism, bit-identical resume after a
 * stop, refusal of corrupt / truncated / foreign checkpoints, NaN detection,
 * metrics.jsonl cut back on resume.
 */
#include <check.h>
#include <dirent.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/ckpt.h"
#include "traind/config.h"
#include "traind/fork.h"
#include "traind/hf_state.h"
#include "traind/runner.h"
#include "traind/util.h"
#include "tl.h"

static const char *MLP_CFG =
    "name: t\nseed: 5\n"
    "model: {type: mlp, input_dim: 6, hidden: [16, 8], output_dim: 3, activation: gelu}\n"
    "data: {kind: synthetic, batch_size: 8, noise: 0.05}\n"
    "optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.01, grad_clip: 0.5}\n"
    "schedule: {type: cosine, warmup_steps: 20, total_steps: 300, min_lr_ratio: 0.1}\n"
    "train: {log_every: 7, checkpoint_every: 50}\n";

static void parse(const char *yaml, run_config *cfg)
{
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = cfg_parse(yaml, strlen(yaml), NULL, cfg, &errs);
    if (rc != 0)
        diag_print(stderr, "test", &errs);
    ck_assert_int_eq(rc, 0);
    diag_free(&errs);
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/traind-runner-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

typedef struct recorder {
    volatile sig_atomic_t stop;
    long stop_at;              /* set stop once this step is logged */
    char notices[2048];
    long start_step;
    long checkpoints;
} recorder;

static void on_event(void *ctx, const run_event *ev)
{
    recorder *r = ctx;
    if (ev->type == RUN_EVENT_NOTICE)
        strncat(r->notices, ev->message, sizeof r->notices - strlen(r->notices) - 2);
    if (ev->type == RUN_EVENT_START)
        r->start_step = ev->pt.step;
    if (ev->type == RUN_EVENT_CHECKPOINT)
        r->checkpoints++;
    if (r->stop_at > 0 && ev->pt.step >= r->stop_at)
        r->stop = 1;
}

static run_result train(const run_config *cfg, const char *dir, bool fresh, recorder *rec, char *err)
{
    runner_opts o = {.out_dir = dir, .threads = 1, .fresh = fresh, .stop = &rec->stop,
                     .on_event = on_event, .ctx = rec};
    return runner_run(cfg, &o, err, 512);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(same_config_same_bits)
{
    run_config cfg;
    parse(MLP_CFG, &cfg);
    char *a = tmpdir(), *b = tmpdir(), err[512];
    recorder ra = {0}, rb = {0};
    ck_assert_int_eq(train(&cfg, a, true, &ra, err), RUN_OK);
    ck_assert_int_eq(train(&cfg, b, true, &rb, err), RUN_OK);
    char *ma = tl_dir_metrics(a), *mb = tl_dir_metrics(b);
    ck_assert_str_eq(ma, mb);
    /* 300 steps, a point every 7 and the last */
    ck_assert_int_eq(count_lines(ma), 300 / 7 + 1);
    ck_assert_int_eq(ra.checkpoints, 300 / 50);   /* every 50 below 300, and the end */
    free(ma);
    free(mb);
    free(a);
    free(b);
    cfg_free(&cfg);
}
END_TEST

/* trainer_state.json holds metrics.jsonl in HF's terms: every point's step,
 * loss_avg as loss, lr as learning_rate, grad_norm, and eval entries. */
START_TEST(trainer_state_mirrors_metrics)
{
    run_config cfg;
    parse("name: t\nseed: 5\n"
          "model: {type: mlp, input_dim: 6, hidden: [16, 8], output_dim: 3, activation: gelu}\n"
          "data: {kind: synthetic, batch_size: 8, noise: 0.05, eval_fraction: 0.25}\n"
          "optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.01, grad_clip: 0.5}\n"
          "schedule: {type: cosine, warmup_steps: 20, total_steps: 300, min_lr_ratio: 0.1}\n"
          "train: {log_every: 7, checkpoint_every: 50, eval_every: 50}\n", &cfg);
    char *dir = tmpdir(), err[512];
    recorder rec = {0};
    ck_assert_int_eq(train(&cfg, dir, true, &rec, err), RUN_OK);
    char *path = xasprintf("%s/trainer_state.json", dir), *buf;
    size_t len;
    ck_assert_int_eq(read_file(path, 1 << 24, &buf, &len), 0);
    cJSON *st = cJSON_Parse(buf);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(cJSON_GetObjectItem(st, "global_step")->valuedouble, 300);
    ck_assert_int_eq(cJSON_GetObjectItem(st, "max_steps")->valuedouble, 300);
    ck_assert_int_eq(cJSON_GetObjectItem(st, "logging_steps")->valuedouble, 7);
    cJSON *hist = cJSON_GetObjectItem(st, "log_history");
    /* walk metrics.jsonl beside it */
    char *mpath = xasprintf("%s/metrics.jsonl", dir), *mbuf;
    ck_assert_int_eq(read_file(mpath, 1 << 24, &mbuf, &len), 0);
    int h = 0, evals = 0;
    double best = INFINITY;
    for (char *line = strtok(mbuf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *p = cJSON_Parse(line), *e = cJSON_GetArrayItem(hist, h++);
        ck_assert_ptr_nonnull(e);
        ck_assert(cJSON_GetObjectItem(e, "step")->valuedouble == cJSON_GetObjectItem(p, "step")->valuedouble);
        ck_assert(cJSON_GetObjectItem(e, "loss")->valuedouble == cJSON_GetObjectItem(p, "loss_avg")->valuedouble);
        ck_assert(cJSON_GetObjectItem(e, "learning_rate")->valuedouble == cJSON_GetObjectItem(p, "lr")->valuedouble);
        ck_assert(cJSON_GetObjectItem(e, "grad_norm")->valuedouble == cJSON_GetObjectItem(p, "grad_norm")->valuedouble);
        cJSON *pe = cJSON_GetObjectItem(p, "eval_loss");
        if (pe) {
            cJSON *ee = cJSON_GetArrayItem(hist, h++);
            ck_assert(cJSON_GetObjectItem(ee, "eval_loss")->valuedouble == pe->valuedouble);
            best = fmin(best, pe->valuedouble);
            evals++;
        }
        cJSON_Delete(p);
    }
    ck_assert_int_eq(h, cJSON_GetArraySize(hist));
    ck_assert_int_ge(evals, 6);
    ck_assert(cJSON_GetObjectItem(st, "best_metric")->valuedouble == best);
    cJSON_Delete(st);
    free(buf);
    free(mbuf);
    free(mpath);
    free(path);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

/* keep_checkpoints / keep_every: which steps stay under checkpoints/, each a
 * whole checkpoint of its step, and one of them resumes into exactly the
 * numbers of the run it came from (what a fork from it relies on). */
START_TEST(kept_checkpoints)
{
    run_config cfg;
    parse("name: t\nseed: 5\n"
          "model: {type: mlp, input_dim: 6, hidden: [16, 8], output_dim: 3, activation: gelu}\n"
          "data: {kind: synthetic, batch_size: 8, noise: 0.05}\n"
          "optimizer: {type: adamw, lr: 3.0e-3}\n"
          "schedule: {type: cosine, warmup_steps: 20, total_steps: 300}\n"
          "train: {log_every: 10, checkpoint_every: 30, keep_checkpoints: 2, keep_every: 100}\n", &cfg);
    char *dir = tmpdir(), err[512];
    recorder rec = {0};
    ck_assert_int_eq(train(&cfg, dir, true, &rec, err), RUN_OK);
    ck_assert_str_eq(rec.notices, "");
    /* saved at 30, 60, 90, 100, 120, ... 300: for good 100, 200, 300; rolling the newest 3 */
    static const long want[] = {100, 200, 210, 240, 270, 300};
    char *cdir = xasprintf("%s/checkpoints", dir);
    DIR *d = opendir(cdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(n, 6);
    for (int i = 0; i < 6; i++) {
        char *p = xasprintf("%s/step-%ld.bin", cdir, want[i]);
        ckpt_file f;
        ck_assert_msg(ckpt_read(p, 1 << 26, &f, err, sizeof err) == 0, "%s: %s", p, err);
        ck_assert_int_eq(f.step, want[i]);
        ckpt_close(&f);
        free(p);
    }
    /* resume a copy of step 200: the metrics after it are the original's */
    char *dir2 = tmpdir();
    char *src = xasprintf("%s/step-200.bin", cdir), *dst = xasprintf("%s/checkpoint.bin", dir2), *buf;
    size_t len;
    ck_assert_int_eq(read_file(src, 1 << 26, &buf, &len), 0);
    ck_assert_int_eq(write_file_atomic(dst, buf, len, 0644), 0);
    free(buf);
    recorder rec2 = {0};
    ck_assert_int_eq(train(&cfg, dir2, false, &rec2, err), RUN_OK);
    ck_assert_int_eq(rec2.start_step, 200);
    char *a = tl_dir_metrics(dir), *b = tl_dir_metrics(dir2);
    const char *tail = strstr(a, "{\"step\":210,");
    ck_assert_ptr_nonnull(tail);
    ck_assert_str_eq(tail, b);
    free(a);
    free(b);
    free(src);
    free(dst);
    free(cdir);
    free(dir);
    free(dir2);
    cfg_free(&cfg);
}
END_TEST

/* trainer_state.json as it is, and as written again from metrics.jsonl
 * alone (the cache removed): the same bytes. */
static void state_same_as_rebuilt(const run_config *cfg, const char *dir, const char *what)
{
    char *path = xasprintf("%s/trainer_state.json", dir), *a, *b, err[256];
    size_t la, lb;
    ck_assert_int_eq(read_file(path, 1 << 26, &a, &la), 0);
    ck_assert_int_eq(hf_cache_remove(dir), 0);
    ck_assert_msg(hf_write_trainer_state(dir, cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(read_file(path, 1 << 26, &b, &lb), 0);
    ck_assert_msg(la == lb && memcmp(a, b, la) == 0, "%s: trainer_state.json is not the rebuilt one", what);
    free(a);
    free(b);
    free(path);
}

static bool exists_in(const char *dir, const char *name)
{
    char *p = xasprintf("%s/%s", dir, name);
    bool ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

/* The cache of trainer_state.json's log_history through a run's life: kept
 * up to date at checkpoints and stops (the document the same as one
 * written from metrics.jsonl alone); gone with the lines it covers when a
 * resume cuts metrics.jsonl back (here: lines a killed run wrote past its
 * checkpoint, cached); gone when the run is done. */
START_TEST(trainer_state_cache_through_stops)
{
    run_config cfg;
    parse("name: t\nseed: 5\n"
          "model: {type: mlp, input_dim: 6, hidden: [16], output_dim: 3}\n"
          "data: {kind: synthetic, batch_size: 8, eval_fraction: 0.25}\n"
          "optimizer: {type: adamw, lr: 3.0e-3}\n"
          "schedule: {type: cosine, warmup_steps: 20, total_steps: 400}\n"
          "train: {log_every: 1, checkpoint_every: 20, eval_every: 30}\n", &cfg);
    char *dir = tmpdir(), err[512];
    recorder r1 = {.stop_at = 105};
    ck_assert_int_eq(train(&cfg, dir, true, &r1, err), RUN_STOPPED);
    ck_assert(exists_in(dir, HF_CACHE_NAME));
    state_same_as_rebuilt(&cfg, dir, "stopped");
    /* lines past the checkpoint, as a run killed there leaves them, and cached */
    char *mpath = xasprintf("%s/metrics.jsonl", dir);
    FILE *f = fopen(mpath, "ae");
    ck_assert_ptr_nonnull(f);
    for (long s = 107; s < 140; s++)
        fprintf(f, "{\"step\":%ld,\"lr\":0.5,\"loss\":9,\"loss_avg\":9,\"grad_norm\":9,\"time\":1,\"eval_loss\":0.001}\n",
                s);
    fclose(f);
    ck_assert_int_eq(hf_cache_update(dir), 0);
    recorder r2 = {.stop_at = 150};
    ck_assert_int_eq(train(&cfg, dir, false, &r2, err), RUN_STOPPED);
    char *m = tl_dir_metrics(dir);
    ck_assert_ptr_null(strstr(m, "\"loss\":9,"));
    free(m);
    state_same_as_rebuilt(&cfg, dir, "resumed, cut back, stopped");
    recorder r3 = {.stop_at = 210};
    ck_assert_int_eq(train(&cfg, dir, false, &r3, err), RUN_STOPPED);   /* the cache from the last stop */
    state_same_as_rebuilt(&cfg, dir, "stopped again");
    recorder r4 = {0};
    ck_assert_int_eq(train(&cfg, dir, false, &r4, err), RUN_OK);
    ck_assert(!exists_in(dir, HF_CACHE_NAME));
    state_same_as_rebuilt(&cfg, dir, "done");
    free(mpath);
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

/* train.keep_steps: a point (with eval_loss) and a kept checkpoint at each;
 * pause_at: the run stops there (RUN_PAUSED), at once when started there,
 * and resumed goes on bit for bit as a run that never paused. */
START_TEST(keep_steps_and_pause)
{
    run_config cfg;
    parse("name: t\nseed: 5\n"
          "model: {type: mlp, input_dim: 6, hidden: [16, 8], output_dim: 3, activation: gelu}\n"
          "data: {kind: synthetic, batch_size: 8, noise: 0.05, eval_fraction: 0.2}\n"
          "optimizer: {type: adamw, lr: 3.0e-3}\n"
          "schedule: {type: cosine, warmup_steps: 20, total_steps: 200}\n"
          "train: {log_every: 20, checkpoint_every: 0, keep_steps: [13, 39, 117]}\n", &cfg);
    char *a = tmpdir(), *b = tmpdir(), err[512];
    recorder ra = {0};
    ck_assert_int_eq(train(&cfg, a, true, &ra, err), RUN_OK);
    char *ma = tl_dir_metrics(a);
    for (int i = 0; i < 3; i++) {
        long s = cfg.train.keep_steps[i];
        char key[48];
        snprintf(key, sizeof key, "{\"step\":%ld,", s);
        const char *line = strstr(ma, key);
        ck_assert_msg(line != NULL, "no point at keep step %ld", s);
        const char *eol = strchr(line, '\n');
        const char *ev = strstr(line, "\"eval_loss\":");
        ck_assert_msg(ev && ev < eol, "no eval_loss at keep step %ld", s);
        char *p = xasprintf("%s/checkpoints/step-%ld.bin", a, s);
        ck_assert_int_eq(access(p, F_OK), 0);
        free(p);
    }
    /* the same config paused at each keep step in turn */
    long pauses[] = {13, 39, 117, 0};
    for (int i = 0; i < 4; i++) {
        recorder rb = {0};
        runner_opts o = {.out_dir = b, .threads = 1, .stop = &rb.stop, .on_event = on_event, .ctx = &rb,
                         .pause_at = pauses[i]};
        run_result r = runner_run(&cfg, &o, err, sizeof err);
        ck_assert_int_eq(r, pauses[i] ? RUN_PAUSED : RUN_OK);
        if (pauses[i]) {
            /* started at its pause: pauses again at once, training nothing */
            recorder rc = {0};
            runner_opts o2 = o;
            o2.ctx = &rc;
            o2.stop = &rc.stop;
            ck_assert_int_eq(runner_run(&cfg, &o2, err, sizeof err), RUN_PAUSED);
            ck_assert_int_eq(rc.start_step, pauses[i]);
            ck_assert_int_eq(rc.checkpoints, 0);
        }
    }
    char *mb = tl_dir_metrics(b);
    ck_assert_str_eq(ma, mb);
    free(ma);
    free(mb);
    free(a);
    free(b);
    cfg_free(&cfg);
}
END_TEST

/* Forks (traind/fork.h): one that changes nothing is its parent from the
 * fork step on, bit for bit; a warmup-stable-decay cooldown branched where
 * an independent run's decay begins is that independent run, bit for bit;
 * a checkpoint of another line is refused. */
static const char *const WSD_CFG =
    "name: stable\nseed: 2\n"
    "model: {type: mlp, input_dim: 6, hidden: [16], output_dim: 3, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 3.0e-3, grad_clip: 1.0}\n"
    "schedule: {type: warmup_stable_decay, warmup_steps: 10, total_steps: 1000, decay_steps: 100}\n"
    "train: {log_every: 10, checkpoint_every: 0, keep_every: 100}\n";

static run_result train_fork(const run_config *cfg, const char *dir, const char *parent, long at, char *err)
{
    char *from = xasprintf("%s/checkpoints/step-%ld.bin", parent, at);
    char *metrics = xasprintf("%s/metrics.jsonl", parent);
    recorder rec = {0};
    runner_opts o = {.out_dir = dir, .threads = 1, .stop = &rec.stop, .on_event = on_event, .ctx = &rec,
                     .fork_from = from, .fork_metrics = metrics};
    run_result rr = runner_run(cfg, &o, err, 512);
    free(from);
    free(metrics);
    return rr;
}

START_TEST(forks_continue_bit_identically)
{
    run_config parent, same, cool, indep;
    parse(WSD_CFG, &parent);
    char *pdir = tmpdir(), *fdir = tmpdir(), *cdir = tmpdir(), *idir = tmpdir(), err[512];
    recorder rec = {0};
    ck_assert_int_eq(train(&parent, pdir, true, &rec, err), RUN_OK);

    /* no change, at step 600 */
    cfg_fork_req req = {.at_step = 600};
    char *yaml;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_fork(WSD_CFG, strlen(WSD_CFG), "stable", &req, NULL, &same, &yaml, &errs), 0);
    free(yaml);
    ck_assert_int_eq(train_fork(&same, fdir, pdir, 600, err), RUN_OK);
    char *a = tl_dir_metrics(pdir), *b = tl_dir_metrics(fdir);
    ck_assert_str_eq(a, b);
    free(b);

    /* a 100-step cooldown from step 400, against a 500-step run decaying over its last 100 */
    static const char *const sets[] = {"schedule.total_steps=500"};
    req = (cfg_fork_req){.at_step = 400, .sets = sets, .n_sets = 1};
    ck_assert_int_eq(cfg_fork(WSD_CFG, strlen(WSD_CFG), "stable", &req, NULL, &cool, &yaml, &errs), 0);
    free(yaml);
    ck_assert_int_eq(train_fork(&cool, cdir, pdir, 400, err), RUN_OK);
    char *ind = xasprintf("%s", WSD_CFG);
    memcpy(strstr(ind, "total_steps: 1000"), "total_steps:  500", 17);
    parse(ind, &indep);
    ck_assert_int_eq(train(&indep, idir, true, &rec, err), RUN_OK);
    char *c = tl_dir_metrics(cdir), *i = tl_dir_metrics(idir);
    ck_assert_int_eq(count_lines(c), 50);
    ck_assert_str_eq(c, i);
    /* the fork's own checkpoints are its own: it resumes as itself */
    ck_assert_int_eq(train(&cool, cdir, false, &rec, err), RUN_OK);

    /* another line (another seed) is refused, not started from scratch */
    run_config other;
    char *oy = xasprintf("%s", WSD_CFG);
    oy[strstr(oy, "seed: 2") - oy + 6] = '3';
    parse(oy, &other);
    char *odir = tmpdir();
    ck_assert_int_eq(train_fork(&other, odir, pdir, 400, err), RUN_FAILED);
    ck_assert_ptr_nonnull(strstr(err, "not of this run's line"));
    /* and a step with no kept checkpoint */
    ck_assert_int_eq(train_fork(&same, odir, pdir, 450, err), RUN_FAILED);
    ck_assert_ptr_nonnull(strstr(err, "no such checkpoint"));

    free(a);
    free(c);
    free(i);
    free(ind);
    free(oy);
    cfg_free(&parent);
    cfg_free(&same);
    cfg_free(&cool);
    cfg_free(&indep);
    cfg_free(&other);
    free(pdir);
    free(fdir);
    free(cdir);
    free(idir);
    free(odir);
}
END_TEST

START_TEST(resume_is_bit_identical)
{
    run_config cfg;
    parse(MLP_CFG, &cfg);
    char *ref = tmpdir(), *dir = tmpdir(), err[512];
    recorder r0 = {0};
    ck_assert_int_eq(train(&cfg, ref, true, &r0, err), RUN_OK);

    /* Stop at a step that is neither a log nor a checkpoint boundary. */
    recorder r1 = {.stop_at = 123};
    ck_assert_int_eq(train(&cfg, dir, false, &r1, err), RUN_STOPPED);
    recorder r2 = {0};
    ck_assert_int_eq(train(&cfg, dir, false, &r2, err), RUN_OK);
    ck_assert_int_ge(r2.start_step, 123);
    ck_assert_str_eq(r2.notices, "");

    char *m0 = tl_dir_metrics(ref), *m1 = tl_dir_metrics(dir);
    ck_assert_str_eq(m0, m1);

    /* And the final parameters, byte for byte. */
    ckpt_file f0, f1;
    char p0[512], p1[512];
    snprintf(p0, sizeof p0, "%s/checkpoint.bin", ref);
    snprintf(p1, sizeof p1, "%s/checkpoint.bin", dir);
    ck_assert_int_eq(ckpt_read(p0, 1 << 24, &f0, err, 512), 0);
    ck_assert_int_eq(ckpt_read(p1, 1 << 24, &f1, err, 512), 0);
    ck_assert_uint_eq(f0.step, 300);
    const ckpt_section *s0 = ckpt_find(&f0, 0x50524d53), *s1 = ckpt_find(&f1, 0x50524d53);
    ck_assert_ptr_nonnull(s0);
    ck_assert_ptr_nonnull(s1);
    ck_assert_uint_eq(s0->len, s1->len);
    ck_assert_int_eq(memcmp(s0->data, s1->data, s0->len), 0);
    ckpt_close(&f0);
    ckpt_close(&f1);
    free(m0);
    free(m1);
    free(ref);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

/* Damages dir/checkpoint.bin with fn (no kept checkpoint to fall back
 * to), then checks the next run fails, saying why, rather than train from
 * step 0 over the history, which it leaves as it was; a fresh run (the
 * user's decision) then trains to the same numbers as any fresh run. */
static void check_refused(void (*damage)(const char *path), const char *why)
{
    run_config cfg;
    parse(MLP_CFG, &cfg);
    char *dir = tmpdir(), *ref = tmpdir(), err[512];
    recorder r1 = {.stop_at = 60}, r0 = {0};
    ck_assert_int_eq(train(&cfg, dir, false, &r1, err), RUN_STOPPED);
    char *path = xasprintf("%s/checkpoint.bin", dir);
    damage(path);
    char *before = tl_dir_metrics(dir);
    recorder r2 = {0};
    ck_assert_int_eq(train(&cfg, dir, false, &r2, err), RUN_FAILED);
    ck_assert_msg(strstr(err, why) != NULL, "error '%s' lacks '%s'", err, why);
    ck_assert_msg(strstr(err, "not starting over from step 0") != NULL, "%s", err);
    char *after = tl_dir_metrics(dir);
    ck_assert_str_eq(before, after);
    recorder r3 = {0};
    ck_assert_int_eq(train(&cfg, dir, true, &r3, err), RUN_OK);
    ck_assert_int_eq(r3.start_step, 0);
    ck_assert_int_eq(train(&cfg, ref, true, &r0, err), RUN_OK);
    char *m0 = tl_dir_metrics(ref), *m1 = tl_dir_metrics(dir);
    ck_assert_str_eq(m0, m1);
    free(m0);
    free(m1);
    free(before);
    free(after);
    free(path);
    free(dir);
    free(ref);
    cfg_free(&cfg);
}

static void truncate_half(const char *path)
{
    FILE *f = fopen(path, "r+");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    ck_assert_int_eq(truncate(path, n / 2), 0);
}

static void flip_byte(const char *path)
{
    FILE *f = fopen(path, "r+");
    fseek(f, 200, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void garbage(const char *path)
{
    ck_assert_int_eq(write_file_atomic(path, "hello, world\n", 13, 0644), 0);
}

START_TEST(truncated_checkpoint_refused) { check_refused(truncate_half, "truncated"); }
END_TEST
START_TEST(corrupt_checkpoint_refused) { check_refused(flip_byte, "checksum"); }
END_TEST
START_TEST(garbage_checkpoint_refused) { check_refused(garbage, "not a traind checkpoint"); }
END_TEST

START_TEST(other_config_checkpoint_refused)
{
    run_config cfg, other;
    parse(MLP_CFG, &cfg);
    char *yaml = xstrdup(MLP_CFG);
    memcpy(strstr(yaml, "seed: 5"), "seed: 6", 7);
    parse(yaml, &other);
    char *dir = tmpdir(), err[512];
    recorder r1 = {.stop_at = 60}, r2 = {0};
    ck_assert_int_eq(train(&cfg, dir, false, &r1, err), RUN_STOPPED);
    ck_assert_int_eq(train(&other, dir, false, &r2, err), RUN_OK);
    ck_assert_int_eq(r2.start_step, 0);
    ck_assert_ptr_nonnull(strstr(r2.notices, "different config"));
    free(yaml);
    free(dir);
    cfg_free(&cfg);
    cfg_free(&other);
}
END_TEST

START_TEST(divergence_fails_with_step)
{
    run_config cfg;
    parse("model: {type: linear, input_dim: 4, output_dim: 2}\n"
          "data: {batch_size: 4}\n"
          "optimizer: {type: sgd, lr: 1.0e+6}\n"
          "schedule: {type: constant, total_steps: 500}\n", &cfg);
    char *dir = tmpdir(), err[512];
    recorder r = {0};
    ck_assert_int_eq(train(&cfg, dir, true, &r, err), RUN_FAILED);
    ck_assert_msg(!strncmp(err, "loss is ", 8) || !strncmp(err, "gradient norm is ", 17), "%s", err);
    ck_assert_ptr_nonnull(strstr(err, " at step "));
    free(dir);
    cfg_free(&cfg);
}
END_TEST

START_TEST(ckpt_container_roundtrip_and_every_truncation)
{
    char *dir = tmpdir(), err[512];
    char *path = xasprintf("%s/c.bin", dir);
    float a[37];
    for (int i = 0; i < 37; i++)
        a[i] = (float)i * 0.5f;
    const char b[] = "xyz";
    ckpt_section s[2] = {{7, a, sizeof a}, {9, b, 3}};
    ck_assert_int_eq(ckpt_write(path, 0xabcdef, 42, s, 2, err, sizeof err), 0);
    ckpt_file f;
    ck_assert_int_eq(ckpt_read(path, 1 << 20, &f, err, sizeof err), 0);
    ck_assert_uint_eq(f.cfg_hash, 0xabcdef);
    ck_assert_uint_eq(f.step, 42);
    ck_assert_int_eq(memcmp(ckpt_find(&f, 7)->data, a, sizeof a), 0);
    ck_assert_uint_eq(ckpt_find(&f, 9)->len, 3);
    ck_assert_ptr_null(ckpt_find(&f, 8));
    size_t full = f.len;
    unsigned char *copy = xmalloc(full);
    memcpy(copy, f.buf, full);
    ckpt_close(&f);
    for (size_t n = 0; n < full; n++) {     /* every prefix is refused */
        unsigned char *img = xmalloc(n + 1);
        memcpy(img, copy, n);
        ck_assert_int_ne(ckpt_parse(img, n, &f, err, sizeof err), 0);
    }
    for (size_t i = 0; i < full; i++) {     /* every single-bit flip is refused */
        unsigned char *img = xmalloc(full);
        memcpy(img, copy, full);
        img[i] ^= 0x01;
        ck_assert_msg(ckpt_parse(img, full, &f, err, sizeof err) != 0, "flip at %zu accepted", i);
    }
    free(copy);
    free(path);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("runner");
    TCase *tc = tcase_create("runner");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, same_config_same_bits);
    tcase_add_test(tc, resume_is_bit_identical);
    tcase_add_test(tc, trainer_state_mirrors_metrics);
    tcase_add_test(tc, trainer_state_cache_through_stops);
    tcase_add_test(tc, kept_checkpoints);
    tcase_add_test(tc, keep_steps_and_pause);
    tcase_add_test(tc, forks_continue_bit_identically);
    tcase_add_test(tc, truncated_checkpoint_refused);
    tcase_add_test(tc, corrupt_checkpoint_refused);
    tcase_add_test(tc, garbage_checkpoint_refused);
    tcase_add_test(tc, other_config_checkpoint_refused);
    tcase_add_test(tc, divergence_fails_with_step);
    tcase_add_test(tc, ckpt_container_roundtrip_and_every_truncation);
    suite_add_tcase(s, tc);
    int failed = tl_run_suite(s);
    return failed ? 1 : 0;
}

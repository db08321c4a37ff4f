/*
 * bench_forks — the warmup-stable-decay fork study of `make bench`: four
 * cooldown lengths done by forking one stable run at step S, against the
 * same four runs trained independently.  Prints the steps trained and the
 * wall time of each way, and checks that every fork's metrics.jsonl (the
 * "time" field aside) is bit for bit the independent run's, final loss
 * included.  Exit 1 when one is not.
 *
 *   build/bench_forks [S]     (S default 2000; cooldowns S/10, S/5, 2S/5, 4S/5)
 *
 * The parent trains constant_with_warmup for S steps (the same lr, step for
 * step, as a WSD schedule's warmup and stable phases) and keeps its step-S
 * checkpoint; each fork switches to warmup_stable_decay with total_steps
 * S + D and decay_steps D (traind/fork.h), exactly the schedule of the
 * independent run it is compared with.  It goes through the same runner the
 * daemon's worker and `trainctl run` use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "traind/config.h"
#include "traind/fork.h"
#include "traind/runner.h"
#include "traind/util.h"
#include "tl.h"

#define MODEL "model: {type: mlp, input_dim: 32, hidden: [128, 128], output_dim: 8, activation: gelu}\n" \
              "data: {kind: synthetic, batch_size: 32, noise: 0.05}\n"                               \
              "optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.01, grad_clip: 1.0}\n"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse(const char *yaml, run_config *cfg)
{
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = cfg_parse(yaml, strlen(yaml), NULL, cfg, &errs);
    if (rc != 0)
        diag_print(stderr, "bench_forks", &errs);
    diag_free(&errs);
    return rc;
}

static double train(const run_config *cfg, const char *dir, const char *fork_from, const char *fork_metrics)
{
    static volatile sig_atomic_t stop;
    char err[512];
    runner_opts o = {.out_dir = dir, .threads = 1, .fresh = fork_from == NULL, .stop = &stop,
                     .fork_from = fork_from, .fork_metrics = fork_metrics};
    double t0 = now();
    if (runner_run(cfg, &o, err, sizeof err) != RUN_OK) {
        fprintf(stderr, "bench_forks: %s: %s\n", dir, err);
        exit(2);
    }
    return now() - t0;
}

/* metrics.jsonl without the "time" fields, which cannot repeat. */
static char *metrics(const char *dir)
{
    char *path = xasprintf("%s/metrics.jsonl", dir), *buf;
    size_t len;
    if (read_file(path, (size_t)1 << 28, &buf, &len) != 0) {
        fprintf(stderr, "bench_forks: cannot read %s\n", path);
        exit(2);
    }
    free(path);
    char *out = tl_strip_time(buf);
    free(buf);
    return out;
}

/* The "loss" of the last line. */
static const char *last_loss(const char *m, char *buf, size_t size)
{
    const char *l = strrchr(m, '{'), *p = l ? strstr(l, "\"loss\":") : NULL;
    snprintf(buf, size, "%.*s", p ? (int)strcspn(p + 7, ",}") : 1, p ? p + 7 : "?");
    return buf;
}

int main(int argc, char **argv)
{
    long S = argc > 1 ? atol(argv[1]) : 2000;
    if (S < 100) {
        fprintf(stderr, "usage: bench_forks [S >= 100]\n");
        return 2;
    }
    long D[4] = {S / 10, S / 5, 2 * S / 5, 4 * S / 5};
    char tmpl[] = "/tmp/traind-bench-forks.XXXXXX";
    if (!mkdtemp(tmpl))
        return 2;
    char *parent_yaml = xasprintf("name: stable\nseed: 1\n" MODEL
                                  "schedule: {type: constant_with_warmup, warmup_steps: 100, total_steps: %ld}\n"
                                  "train: {log_every: 50, checkpoint_every: 0, keep_every: %ld}\n", S, S);
    run_config parent;
    if (parse(parent_yaml, &parent) != 0)
        return 2;
    char *pdir = xasprintf("%s/parent", tmpl);
    double t_forks = train(&parent, pdir, NULL, NULL);
    long steps_forks = S, steps_indep = 0;
    double t_indep = 0;
    char *from = xasprintf("%s/checkpoints/step-%ld.bin", pdir, S), *pm = xasprintf("%s/metrics.jsonl", pdir);
    int identical = 0;
    for (int i = 0; i < 4; i++) {
        char total[64], decay[64];
        snprintf(total, sizeof total, "schedule.total_steps=%ld", S + D[i]);
        snprintf(decay, sizeof decay, "schedule.decay_steps=%ld", D[i]);
        const char *sets[] = {"schedule.type=warmup_stable_decay", total, decay};
        cfg_fork_req req = {.at_step = S, .sets = sets, .n_sets = 3};
        run_config fork, indep;
        char *fyaml;
        diag_list_t errs = DIAG_LIST_INIT;
        if (cfg_fork(parent_yaml, strlen(parent_yaml), "stable", &req, NULL, &fork, &fyaml, &errs) != 0) {
            diag_print(stderr, "fork", &errs);
            return 2;
        }
        free(fyaml);
        char *fdir = xasprintf("%s/fork-%ld", tmpl, D[i]), *idir = xasprintf("%s/indep-%ld", tmpl, D[i]);
        t_forks += train(&fork, fdir, from, pm);
        steps_forks += D[i];
        char *iyaml = xasprintf("name: indep\nseed: 1\n" MODEL
                                "schedule: {type: warmup_stable_decay, warmup_steps: 100, total_steps: %ld, "
                                "decay_steps: %ld}\ntrain: {log_every: 50, checkpoint_every: 0}\n",
                                S + D[i], D[i]);
        if (parse(iyaml, &indep) != 0)
            return 2;
        t_indep += train(&indep, idir, NULL, NULL);
        steps_indep += S + D[i];
        char *mf = metrics(fdir), *mi = metrics(idir), a[64], b[64];
        bool same = strcmp(mf, mi) == 0;
        identical += same;
        printf("fork study   cooldown %5ld steps: final loss fork %s, independent %s: %s\n", D[i],
               last_loss(mf, a, sizeof a), last_loss(mi, b, sizeof b),
               same ? "bit-identical (whole metrics.jsonl)" : "DIFFERENT");
        free(mf);
        free(mi);
        free(iyaml);
        free(fdir);
        free(idir);
        cfg_free(&fork);
        cfg_free(&indep);
    }
    printf("fork study   4 WSD cooldowns from step %ld: forks trained %ld steps in %.2f s, independent runs "
           "%ld steps in %.2f s: %.0f%% of the steps and %.0f%% of the time saved; %d/4 bit-identical\n",
           S, steps_forks, t_forks, steps_indep, t_indep, 100.0 * (steps_indep - steps_forks) / steps_indep,
           100.0 * (t_indep - t_forks) / t_indep, identical);
    char *rm = xasprintf("rm -rf '%s'", tmpl);
    if (system(rm) != 0)
        fprintf(stderr, "bench_forks: cannot remove %s\n", tmpl);
    free(rm);
    free(from);
    free(pm);
    free(pdir);
    free(parent_yaml);
    cfg_free(&parent);
    return identical == 4 ? 0 : 1;
}

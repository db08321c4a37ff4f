/*
 * test_sweep — experiment files into trials (traind/sweep.h): grid order and
 * values, random draws within their distributions and reproducible by seed,
 * each trial's config.yaml reading back as the same config, keys pruned by a
 * swept type, and located errors that name the sweep entry and the trial.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/config.h"
#include "traind/sweep.h"
#include "traind/util.h"
#include "tl.h"

static const char *const grid_yaml =
    "name: lr-vs-schedule\n"                                                       /* 1 */
    "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"               /* 2 */
    "data: {kind: synthetic, batch_size: 8, eval_fraction: 0.1}\n"                 /* 3 */
    "optimizer: {type: adamw, lr: 1.0e-3}\n"                                       /* 4 */
    "schedule: {type: cosine, warmup_steps: 50, total_steps: 2000, decay_ratio: 0.2}\n"
    "train: {eval_every: 100}\n"                                                   /* 6 */
    "sweep:\n"                                                                     /* 7 */
    "  method: grid\n"                                                             /* 8 */
    "  metric: eval_loss\n"                                                        /* 9 */
    "  parameters:\n"                                                              /* 10 */
    "    schedule.type: [cosine, linear, warmup_stable_decay]\n"                   /* 11 */
    "    optimizer.lr: [3.0e-4, 1.0e-3, 3.0e-3]\n"                                 /* 12 */
    "  max_concurrent: 2\n"
    "  early_stop: {type: asha, reduction_factor: 3, min_steps: 200}\n";

static int parse(const char *yaml, sweep *s, diag_list_t *errs)
{
    sweep_opts o = {0};
    int rc = sweep_parse(yaml, strlen(yaml), &o, s, errs);
    if (rc != 0 && getenv("TEST_VERBOSE"))
        diag_print(stderr, "sweep", errs);
    return rc;
}

/* The first diagnostic whose path is `path`, or NULL. */
static const diag_t *find_diag(const diag_list_t *e, const char *path)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->items[i].path, path) == 0)
            return &e->items[i];
    return NULL;
}

START_TEST(grid_expands_every_combination_in_order)
{
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(grid_yaml, &s, &errs), 0);
    ck_assert_int_eq(s.n_trials, 9);
    ck_assert_int_eq(s.n_params, 2);
    ck_assert_str_eq(s.params[0], "schedule.type");
    ck_assert_int_eq(s.method, SWEEP_GRID);
    ck_assert_int_eq(s.metric, SWEEP_EVAL_LOSS);
    ck_assert(s.asha && s.reduction_factor == 3 && s.min_steps == 200);
    ck_assert_int_eq(s.max_concurrent, 2);
    static const sched_type types[] = {SCHED_COSINE, SCHED_LINEAR, SCHED_WSD};
    static const double lrs[] = {3.0e-4, 1.0e-3, 3.0e-3};
    for (size_t k = 0; k < 9; k++) {
        const sweep_trial *t = &s.trials[k];
        ck_assert_int_eq(t->cfg.sched.type, types[k / 3]);     /* the first parameter varies slowest */
        ck_assert(t->cfg.optim.lr == lrs[k % 3]);
        char name[64];
        snprintf(name, sizeof name, "lr-vs-schedule-%zu", k + 1);
        ck_assert_str_eq(t->cfg.name, name);
        ck_assert_int_eq(t->cfg.sched.warmup_steps, 50);
        /* decay_ratio only where the type uses it (dropped from the others) */
        ck_assert_int_eq(t->cfg.sched.decay_steps, types[k / 3] == SCHED_WSD ? 400 : 0);
        /* asha: the rungs 200, 600, 1800 (< 2000) are logged and kept, in its config.yaml too */
        ck_assert_int_eq(t->cfg.train.n_keep_steps, 3);
        ck_assert_int_eq(t->cfg.train.keep_steps[0], 200);
        ck_assert_int_eq(t->cfg.train.keep_steps[1], 600);
        ck_assert_int_eq(t->cfg.train.keep_steps[2], 1800);
        ck_assert_ptr_nonnull(strstr(t->yaml, "keep_steps"));
    }
    ck_assert_str_eq(s.trials[5].values[0], "linear");
    ck_assert_str_eq(s.trials[5].values[1], "3.0e-3");
    sweep_free(&s);
    diag_free(&errs);
}
END_TEST

START_TEST(trial_yaml_reads_back_as_the_same_config)
{
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(grid_yaml, &s, &errs), 0);
    for (size_t k = 0; k < s.n_trials; k++) {
        const sweep_trial *t = &s.trials[k];
        ck_assert_ptr_nonnull(t->yaml);
        ck_assert_ptr_null(strstr(t->yaml, "sweep"));
        run_config back;
        ck_assert_msg(cfg_parse(t->yaml, strlen(t->yaml), NULL, &back, &errs) == 0, "trial %zu:\n%s", k + 1,
                      t->yaml);
        cJSON *ja = cfg_to_json(&t->cfg), *jb = cfg_to_json(&back);
        char *a = cJSON_PrintUnformatted(ja), *b = cJSON_PrintUnformatted(jb);
        cJSON_Delete(ja);
        ck_assert_str_eq(a, b);
        ck_assert(cfg_hash(&back) == cfg_hash(&t->cfg));
        free(a);
        free(b);
        cJSON_Delete(jb);
        cfg_free(&back);
    }
    sweep_free(&s);
    diag_free(&errs);
}
END_TEST

static const char *const random_yaml =
    "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
    "schedule: {type: cosine, total_steps: 1000}\n"
    "sweep:\n"
    "  method: random\n"
    "  trials: 40\n"
    "  seed: %d\n"
    "  parameters:\n"
    "    optimizer.lr: {log_uniform: [1.0e-4, 1.0e-2]}\n"
    "    optimizer.weight_decay: {uniform: [0.0, 0.1]}\n"
    "    schedule.warmup_steps: {int_uniform: [0, 500]}\n"
    "    optimizer.type: {choice: [adamw, adam]}\n";

START_TEST(random_draws_stay_in_range_and_repeat_by_seed)
{
    char y0[1024], y1[1024];
    snprintf(y0, sizeof y0, random_yaml, 0);
    snprintf(y1, sizeof y1, random_yaml, 1);
    sweep a, b, c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(y0, &a, &errs), 0);
    ck_assert_int_eq(parse(y0, &b, &errs), 0);
    ck_assert_int_eq(parse(y1, &c, &errs), 0);
    ck_assert_int_eq(a.n_trials, 40);
    ck_assert_int_eq(a.metric, SWEEP_LOSS_AVG);        /* no eval split: the default metric */
    int adam = 0, same_as_c = 0;
    for (size_t k = 0; k < 40; k++) {
        const run_config *t = &a.trials[k].cfg;
        ck_assert(t->optim.lr >= 1.0e-4 && t->optim.lr <= 1.0e-2);
        ck_assert(t->optim.weight_decay >= 0.0 && t->optim.weight_decay <= 0.1);
        ck_assert(t->sched.warmup_steps >= 0 && t->sched.warmup_steps <= 500);
        adam += t->optim.type == OPT_ADAM;
        /* the same seed, the same trials */
        ck_assert(t->optim.lr == b.trials[k].cfg.optim.lr);
        ck_assert_str_eq(a.trials[k].yaml, b.trials[k].yaml);
        same_as_c += t->optim.lr == c.trials[k].cfg.optim.lr;
    }
    ck_assert(adam > 5 && adam < 35);
    ck_assert_int_eq(same_as_c, 0);
    /* log-uniform: about half the draws below the geometric middle 1e-3 */
    int low = 0;
    for (size_t k = 0; k < 40; k++)
        low += a.trials[k].cfg.optim.lr < 1.0e-3;
    ck_assert(low > 8 && low < 32);
    sweep_free(&a);
    sweep_free(&b);
    sweep_free(&c);
    diag_free(&errs);
}
END_TEST

START_TEST(a_bad_value_is_named_by_its_sweep_entry)
{
    const char *y =
        "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"   /* 1 */
        "schedule: {type: cosine, total_steps: 1000}\n"                    /* 2 */
        "sweep:\n"                                                         /* 3 */
        "  method: grid\n"                                                 /* 4 */
        "  parameters:\n"                                                  /* 5 */
        "    schedule.warmup_steps: [0, 10]\n"                             /* 6 */
        "    optimizer.lr: [1.0e-3, -2, 3.0e-3]\n";                        /* 7 */
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(y, &s, &errs), -1);
    const diag_t *d = find_diag(&errs, "sweep.parameters.optimizer.lr[1]");
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->line, 7);
    ck_assert_int_eq(d->column, 28);
    ck_assert_ptr_nonnull(strstr(d->message, "trial 2 (schedule.warmup_steps=0, optimizer.lr=-2)"));
    /* once, though trials 2 and 5 both have it */
    ck_assert_int_eq(errs.n, 1);
    diag_free(&errs);
}
END_TEST

/* A name too long for its trials' names (<name>-<k>, a job name of at
 * most CFG_NAME_MAX) is the experiment's problem, said once at its name
 * key, not of each trial; one from the file's stem is cut to fit. */
START_TEST(a_long_name_is_the_experiments)
{
    static const char fmt[] =
        "name: %s\n"                                                       /* 1 */
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "schedule: {type: constant, total_steps: 30}\n"
        "sweep:\n"
        "  method: grid\n"
        "  parameters:\n"
        "    optimizer.lr: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1]\n";
    char name[CFG_NAME_MAX + 2];
    int lens[] = {CFG_NAME_MAX, CFG_NAME_MAX + 1, CFG_NAME_MAX - 2};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        memset(name, 'e', (size_t)lens[i]);
        name[lens[i]] = '\0';
        char *y = xasprintf(fmt, name);
        sweep s;
        diag_list_t errs = DIAG_LIST_INIT;
        ck_assert_int_eq(parse(y, &s, &errs), -1);
        ck_assert_int_eq(errs.n, 1);
        ck_assert_str_eq(errs.items[0].path, "name");
        ck_assert_int_eq(errs.items[0].line, 1);
        ck_assert_msg(strncmp(errs.items[0].message, "trial ", 6) != 0, "%s", errs.items[0].message);
        ck_assert_msg(strstr(errs.items[0].message, "must be at most"), "%s", errs.items[0].message);
        diag_free(&errs);
        free(y);
    }
    /* 125 characters and 10 trials: NAME-01 .. NAME-10, 128 each */
    memset(name, 'e', CFG_NAME_MAX - 3);
    name[CFG_NAME_MAX - 3] = '\0';
    char *y = xasprintf(fmt, name);
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(y, &s, &errs), 0);
    ck_assert_uint_eq(s.n_trials, 10);
    sweep_free(&s);
    free(y);
    /* no name key: a long default (the file's stem) is cut */
    const char *noname = strchr(fmt, '\n') + 1;
    memset(name, 's', CFG_NAME_MAX);
    name[CFG_NAME_MAX] = '\0';
    sweep_opts o = {0};
    o.cfg.default_name = name;
    ck_assert_int_eq(sweep_parse(noname, strlen(noname), &o, &s, &errs), 0);
    ck_assert_uint_eq(strlen(s.name), CFG_NAME_MAX - 3);
    sweep_free(&s);
}
END_TEST

START_TEST(sweep_section_errors)
{
    static const struct {
        const char *sweep, *path, *needle;
    } cases[] = {
        {"  method: grid\n  parameters: {optimizer.lrr: [1.0e-3]}\n", "sweep.parameters.optimizer.lrr",
         "did you mean 'optimizer.lr'"},
        /* optimizer.warmup_steps is schedule_free_adamw's: the trials' adamw refuses it */
        {"  method: grid\n  parameters: {optimizer.warmup_steps: [1]}\n",
         "sweep.parameters.optimizer.warmup_steps[0]", "did you mean 'schedule.warmup_steps'"},
        {"  method: grid\n  parameters: {optimizer.lr: {log_uniform: [1.0e-4, 1.0e-2]}}\n",
         "sweep.parameters.optimizer.lr.log_uniform", "needs method: random"},
        {"  method: grid\n  trials: 3\n  parameters: {optimizer.lr: [1.0e-3]}\n", "sweep.trials",
         "only used by sweep method random"},
        {"  method: random\n  parameters: {optimizer.lr: [1.0e-3]}\n", "sweep.trials", "required key is missing"},
        {"  method: random\n  trials: 2\n  parameters: {optimizer.lr: {log_uniform: [0, 1]}}\n",
         "sweep.parameters.optimizer.lr.log_uniform[0]", "must be"},
        {"  method: random\n  trials: 2\n  parameters: {optimizer.lr: {uniform: [2, 1]}}\n",
         "sweep.parameters.optimizer.lr.uniform", "lo <= hi"},
        {"  method: grid\n  metric: eval_loss\n  parameters: {optimizer.lr: [1.0e-3]}\n", "sweep.metric",
         "needs an eval split"},
        {"  method: grid\n  parameters: {optimizer.lr: [1.0e-3]}\n  early_stop: {type: asha, min_steps: 5000}\n",
         "sweep.early_stop.min_steps", "before the end of training"},
        {"  method: grid\n  parameters: {model.hidden: [[4], [16]]}\n  fork_from: {job: base, at_step: 10}\n",
         "sweep.parameters.model.hidden", "fork_from sweep changes only"},
        {"  method: grid\n  parameters: {optimizer.lr: [1.0e-3]}\n  fork_from: {job: ../x, at_step: 10}\n",
         "sweep.fork_from.job", "not a job id"},
        {"  method: grid\n  parameters: {optimizer.lr: [1.0e-3]}\n  predict: {law: ../x}\n",
         "sweep.predict.law", "not a law id"},
        {"  method: grid\n  parameters: {optimizer.lr: [1.0e-3]}\n  predict: {}\n", "sweep.predict.law",
         "required key is missing"},
        {"  method: grid\n  parameters: {optimizer.lr: [1.0e-3]}\n  predict: {law: a, lw: b}\n", "sweep.predict.lw",
         ""},
        {"  method: bayes\n  parameters: {optimizer.lr: [1.0e-3]}\n", "sweep.method", "grid"},
        {"  method: grid\n  parameters: {name: [a, b]}\n", "sweep.parameters.name", "not swept"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char y[1024];
        snprintf(y, sizeof y,
                 "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
                 "schedule: {type: cosine, total_steps: 1000}\nsweep:\n%s", cases[i].sweep);
        sweep s;
        diag_list_t errs = DIAG_LIST_INIT;
        ck_assert_msg(parse(y, &s, &errs) == -1, "case %zu accepted", i);
        const diag_t *d = find_diag(&errs, cases[i].path);
        if (!d || !strstr(d->message, cases[i].needle)) {
            diag_print(stderr, "case", &errs);
            ck_abort_msg("case %zu: no '%s' at %s", i, cases[i].needle, cases[i].path);
        }
        ck_assert_int_gt(d->line, 0);
        diag_free(&errs);
    }
}
END_TEST

/* sweep.predict: {law: ID} is read (that the law exists is the daemon's check). */
START_TEST(predict_names_a_law)
{
    char y[1024];
    snprintf(y, sizeof y, "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
                          "schedule: {type: cosine, total_steps: 100}\nsweep:\n  method: grid\n"
                          "  parameters: {optimizer.lr: [1.0e-3, 3.0e-3]}\n  predict: {law: mpl-base-2}\n");
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(y, &s, &errs), 0);
    ck_assert_str_eq(s.predict_law, "mpl-base-2");
    ck_assert_int_eq((int)s.n_trials, 2);
    sweep_free(&s);
    snprintf(y, sizeof y, "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
                          "schedule: {type: cosine, total_steps: 100}\nsweep:\n  method: grid\n"
                          "  parameters: {optimizer.lr: [1.0e-3]}\n");
    ck_assert_int_eq(parse(y, &s, &errs), 0);
    ck_assert_ptr_null(s.predict_law);
    sweep_free(&s);
    diag_free(&errs);
}
END_TEST

START_TEST(trial_cap)
{
    const char *y =
        "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
        "schedule: {type: cosine, total_steps: 1000}\n"
        "sweep:\n  method: grid\n  parameters:\n"
        "    optimizer.lr: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
        "    schedule.warmup_steps: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n";
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    sweep_opts o = {.max_trials = 99};
    ck_assert_int_eq(sweep_parse(y, strlen(y), &o, &s, &errs), -1);
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "more than 99 trials"));
    diag_free(&errs);
    o.max_trials = 100;
    ck_assert_int_eq(sweep_parse(y, strlen(y), &o, &s, &errs), 0);
    ck_assert_int_eq(s.n_trials, 100);
    ck_assert_str_eq(s.trials[0].cfg.name, "experiment-001");      /* padded to sort */
    sweep_free(&s);
}
END_TEST

START_TEST(a_run_config_is_not_an_experiment)
{
    ck_assert(sweep_is_experiment(grid_yaml, strlen(grid_yaml)));
    const char *plain = "model: {type: linear, input_dim: 2, output_dim: 1}\nschedule: {total_steps: 5}\n";
    ck_assert(!sweep_is_experiment(plain, strlen(plain)));
    /* a sweep handed to the run config reader is refused, saying why */
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(grid_yaml, strlen(grid_yaml), NULL, &cfg, &errs), -1);
    const diag_t *d = find_diag(&errs, "sweep");
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->line, 8);
    ck_assert_ptr_nonnull(strstr(d->message, "experiment"));
    diag_free(&errs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweep");
    tcase_add_test(tc, grid_expands_every_combination_in_order);
    tcase_add_test(tc, trial_yaml_reads_back_as_the_same_config);
    tcase_add_test(tc, random_draws_stay_in_range_and_repeat_by_seed);
    tcase_add_test(tc, a_bad_value_is_named_by_its_sweep_entry);
    tcase_add_test(tc, sweep_section_errors);
    tcase_add_test(tc, trial_cap);
    tcase_add_test(tc, predict_names_a_law);
    tcase_add_test(tc, a_run_config_is_not_an_experiment);
    tcase_add_test(tc, a_long_name_is_the_experiments);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

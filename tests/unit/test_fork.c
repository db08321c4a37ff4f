/*
 * test_fork — a fork's config from its parent's (traind/fork.h): no change
 * gives the parent's numbers under a new name, the keys a fork may change,
 * the ones it may not (named), values checked by the run config's rules, and
 * total_steps against the fork step.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "traind/config.h"
#include "traind/fork.h"
#include "tl.h"

static const char *const parent =
    "name: stable\n"
    "seed: 3\n"
    "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 1.0e-3, betas: [0.9, 0.95]}\n"
    "schedule: {type: warmup_stable_decay, warmup_steps: 10, total_steps: 1000, decay_steps: 100}\n"
    "train: {log_every: 10}\n";

static int fork_of(const char *const *sets, size_t n, long at, run_config *out, char **yaml, diag_list_t *errs)
{
    cfg_fork_req req = {.at_step = at, .sets = sets, .n_sets = n};
    return cfg_fork(parent, strlen(parent), "stable", &req, NULL, out, yaml, errs);
}

static const diag_t *find_diag(const diag_list_t *e, const char *path)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->items[i].path, path) == 0)
            return &e->items[i];
    return NULL;
}

START_TEST(no_change_is_the_parent_under_a_new_name)
{
    run_config p, c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(parent, strlen(parent), NULL, &p, &errs), 0);
    char *yaml;
    ck_assert_int_eq(fork_of(NULL, 0, 500, &c, &yaml, &errs), 0);
    ck_assert_str_eq(c.name, "stable-fork-500");
    ck_assert(cfg_hash(&c) == cfg_hash(&p));          /* the same numbers */
    ck_assert(cfg_lineage_hash(&c) == cfg_lineage_hash(&p));
    /* its config.yaml reads back as itself */
    run_config back;
    ck_assert_int_eq(cfg_parse(yaml, strlen(yaml), NULL, &back, &errs), 0);
    ck_assert(cfg_hash(&back) == cfg_hash(&c));
    ck_assert_str_eq(back.name, "stable-fork-500");
    cfg_free(&back);
    free(yaml);
    cfg_free(&c);
    cfg_free(&p);
}
END_TEST

START_TEST(schedule_and_optimizer_changes)
{
    static const char *const sets[] = {"schedule.total_steps=1200", "schedule.decay_steps=300",
                                       "schedule.decay_type=1-sqrt", "optimizer.lr=3.0e-4",
                                       "optimizer.betas=[0.9, 0.99]", "optimizer.grad_clip=1.0",
                                       "train.eval_every=0"};
    run_config p, c;
    diag_list_t errs = DIAG_LIST_INIT;
    cfg_parse(parent, strlen(parent), NULL, &p, &errs);
    char *yaml;
    ck_assert_int_eq(fork_of(sets, 7, 900, &c, &yaml, &errs), 0);
    ck_assert_int_eq(c.sched.total_steps, 1200);
    ck_assert_int_eq(c.sched.decay_steps, 300);
    ck_assert(c.optim.lr == 3.0e-4 && c.optim.beta2 == 0.99 && c.optim.grad_clip == 1.0);
    ck_assert(cfg_lineage_hash(&c) == cfg_lineage_hash(&p));
    ck_assert(cfg_hash(&c) != cfg_hash(&p));
    free(yaml);
    cfg_free(&c);
    /* another schedule type: the keys the new type does not use go */
    static const char *const cos[] = {"schedule.type=cosine", "schedule.total_steps=600"};
    ck_assert_int_eq(fork_of(cos, 2, 500, &c, &yaml, &errs), 0);
    ck_assert_int_eq(c.sched.type, SCHED_COSINE);
    ck_assert_int_eq(c.sched.warmup_steps, 10);
    free(yaml);
    cfg_free(&c);
    cfg_free(&p);
    ck_assert_int_eq(errs.n, 0);
}
END_TEST

START_TEST(refused_changes_are_named)
{
    static const struct { const char *set, *path, *needle; long at; } cases[] = {
        {"model.hidden=[16]", "--set model.hidden", "a fork changes only", 500},
        {"data.batch_size=16", "--set data.batch_size", "a fork changes only", 500},
        {"seed=4", "--set seed", "a fork changes only", 500},
        {"optimizer.type=sgd", "--set optimizer.type", "keeps its parent's optimizer", 500},
        {"optimizer.lrr=1", "--set optimizer.lrr", "did you mean 'optimizer.lr'", 500},
        {"optimizer.lr", "--set", "not KEY=VALUE", 500},
        {"optimizer.lr=-1", "--set optimizer.lr", "must be", 500},
        {"optimizer.lr={a: 1}", "--set optimizer.lr", "not a value", 500},
        {"schedule.total_steps=400", "schedule.total_steps", "past its total_steps", 500},
        {"schedule.warmup_steps=20", "--at", "past the parent's total_steps", 5000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_config c;
        char *yaml;
        diag_list_t errs = DIAG_LIST_INIT;
        const char *sets[] = {cases[i].set};
        ck_assert_msg(fork_of(sets, 1, cases[i].at, &c, &yaml, &errs) == -1, "case %zu accepted", i);
        ck_assert_ptr_null(yaml);
        const diag_t *d = find_diag(&errs, cases[i].path);
        if (!d || !strstr(d->message, cases[i].needle)) {
            diag_print(stderr, "fork", &errs);
            ck_abort_msg("case %zu: no '%s' at %s", i, cases[i].needle, cases[i].path);
        }
        diag_free(&errs);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fork");
    TCase *tc = tcase_create("fork");
    tcase_add_test(tc, no_change_is_the_parent_under_a_new_name);
    tcase_add_test(tc, schedule_and_optimizer_changes);
    tcase_add_test(tc, refused_changes_are_named);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

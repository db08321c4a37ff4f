/*
 * Integer keys given in exponent form: 1e15 is an integer (JSON and YAML
 * writers print large numbers so), accepted where it is an exact integer
 * within the key's range, in a config file and in a fork's --set alike;
 * 1.5e0, 1e-3 (fractions) and 1e400 (out of range) are still refused.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "traind/config.h"
#include "traind/fork.h"
#include "traind/util.h"
#include "tl.h"

static const char *const parent =
    "name: stable\n"
    "seed: 3\n"
    "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: warmup_stable_decay, warmup_steps: 10, total_steps: 1000, decay_steps: 100}\n"
    "train: {log_every: 10, keep_every: 100}\n";

/* A fork of parent at step 100 with one --set; 0 with *c, or -1 with the
 * first error's message in msg. */
static int fork_set(const char *set, run_config *c, char *msg, size_t len)
{
    const char *sets[] = {set};
    cfg_fork_req req = {.at_step = 100, .sets = sets, .n_sets = 1};
    diag_list_t errs = DIAG_LIST_INIT;
    char *yaml = NULL;
    int rc = cfg_fork(parent, strlen(parent), "stable", &req, NULL, c, &yaml, &errs);
    snprintf(msg, len, "%s", errs.n ? errs.items[0].message : "");
    diag_free(&errs);
    free(yaml);
    return rc;
}

START_TEST(fork_set_exponent_integers)
{
    run_config c;
    char msg[512];
    ck_assert_msg(fork_set("schedule.total_steps=1e9", &c, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_int_eq(c.sched.total_steps, 1000000000L);
    cfg_free(&c);
    /* 1e15 is an integer, only past total_steps' range: said so */
    ck_assert_int_ne(fork_set("schedule.total_steps=1e15", &c, msg, sizeof msg), 0);
    ck_assert_msg(strstr(msg, "must be an integer in 1..1000000000, got 1e15") != NULL, "%s", msg);
    ck_assert_msg(fork_set("schedule.total_steps=2.5E3", &c, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_int_eq(c.sched.total_steps, 2500);
    cfg_free(&c);
    ck_assert_msg(fork_set("train.log_every=1500e-2", &c, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_int_eq(c.train.log_every, 15);
    cfg_free(&c);

    static const char *const bad[] = {"schedule.total_steps=1.5e0", "schedule.total_steps=1e-3",
                                      "schedule.total_steps=1e400", "schedule.total_steps=-1e3",
                                      "schedule.total_steps=99999999999999999999e0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(fork_set(bad[i], &c, msg, sizeof msg) != 0, "%s accepted", bad[i]);
        ck_assert_msg(strstr(msg, "must be an integer") != NULL, "%s: %s", bad[i], msg);
    }
}
END_TEST

START_TEST(file_exponent_integers)
{
    static const char *const head =
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "data: {batch_size: 3.2e1}\n"
        "optimizer: {type: sgd, lr: 0.1}\n";
    char *yaml = xasprintf("%sschedule: {type: constant, total_steps: 1.0e4}\n", head);
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = cfg_parse(yaml, strlen(yaml), NULL, &c, &errs);
    if (rc != 0)
        diag_print(stderr, "test", &errs);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(c.sched.total_steps, 10000);
    ck_assert_int_eq(c.data.batch_size, 32);
    cfg_free(&c);
    free(yaml);
    yaml = xasprintf("%sschedule: {type: constant, total_steps: 1.00001e4}\n", head);
    ck_assert_int_ne(cfg_parse(yaml, strlen(yaml), NULL, &c, &errs), 0);
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "must be an integer"));
    diag_free(&errs);
    free(yaml);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config_exp_int");
    TCase *tc = tcase_create("exp_int");
    tcase_add_test(tc, fork_set_exponent_integers);
    tcase_add_test(tc, file_exponent_integers);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

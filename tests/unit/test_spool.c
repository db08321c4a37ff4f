/* test_spool — job ids (traind(8) THE SPOOL), intake names, id claiming, the API token,
 * and the job table's history thinning. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/jobs.h"
#include "traind/spool.h"
#include "traind/util.h"
#include "../lib/tl.h"

START_TEST(intake_names)
{
    char stem[64];
    ck_assert(spool_intake_name("cosine-demo.yaml", stem, sizeof stem));
    ck_assert_str_eq(stem, "cosine-demo");
    ck_assert(spool_intake_name("a.b.yml", stem, sizeof stem));
    ck_assert_str_eq(stem, "a.b");
    ck_assert(!spool_intake_name(".hidden.yaml", stem, sizeof stem));
    ck_assert(!spool_intake_name("x.yaml.tmp", stem, sizeof stem));
    ck_assert(!spool_intake_name("x.yaml.part", stem, sizeof stem));
    ck_assert(!spool_intake_name("x.tmp", stem, sizeof stem));
    ck_assert(!spool_intake_name("notes.txt", stem, sizeof stem));
    ck_assert(!spool_intake_name("x.yaml~", stem, sizeof stem));
    ck_assert(!spool_intake_name(".yaml", stem, sizeof stem));
    ck_assert(!spool_intake_name("", stem, sizeof stem));
    ck_assert(spool_intake_name("x.yaml", NULL, 0));
}
END_TEST

START_TEST(sanitize)
{
    char id[SPOOL_ID_MAX + 1];
    spool_sanitize_id("cosine-demo", id);
    ck_assert_str_eq(id, "cosine-demo");
    spool_sanitize_id("my run (v2)!", id);
    ck_assert_str_eq(id, "my_run__v2__");
    spool_sanitize_id("...hidden", id);
    ck_assert_str_eq(id, "hidden");
    spool_sanitize_id("a/../../etc/passwd", id);
    ck_assert_str_eq(id, "a_.._.._etc_passwd");
    ck_assert_ptr_null(strchr(id, '/'));
    spool_sanitize_id("...", id);
    ck_assert_str_eq(id, "job");
    spool_sanitize_id("", id);
    ck_assert_str_eq(id, "job");
    spool_sanitize_id("héllo", id);   /* two UTF-8 bytes → two '_' */
    ck_assert_str_eq(id, "h__llo");
    char longstem[200];
    memset(longstem, 'a', sizeof longstem - 1);
    longstem[sizeof longstem - 1] = '\0';
    spool_sanitize_id(longstem, id);
    ck_assert_uint_eq(strlen(id), SPOOL_ID_MAX);
    ck_assert(spool_id_valid(id));
}
END_TEST

START_TEST(candidates)
{
    char id[SPOOL_ID_MAX + 1];
    spool_id_candidate("run", 1, id);
    ck_assert_str_eq(id, "run");
    spool_id_candidate("run", 2, id);
    ck_assert_str_eq(id, "run-2");
    spool_id_candidate("run", 13, id);
    ck_assert_str_eq(id, "run-13");
    char base[SPOOL_ID_MAX + 1];
    memset(base, 'b', SPOOL_ID_MAX);
    base[SPOOL_ID_MAX] = '\0';
    spool_id_candidate(base, 2, id);
    ck_assert_uint_eq(strlen(id), SPOOL_ID_MAX);
    ck_assert_str_eq(id + SPOOL_ID_MAX - 2, "-2");
    spool_id_candidate(base, 100, id);
    ck_assert_uint_eq(strlen(id), SPOOL_ID_MAX);
    ck_assert_str_eq(id + SPOOL_ID_MAX - 4, "-100");
}
END_TEST

START_TEST(id_validity)
{
    ck_assert(spool_id_valid("a"));
    ck_assert(spool_id_valid("a.b-c_D9"));
    ck_assert(!spool_id_valid(""));
    ck_assert(!spool_id_valid("."));
    ck_assert(!spool_id_valid(".."));
    ck_assert(!spool_id_valid(".x"));
    ck_assert(!spool_id_valid("a/b"));
    ck_assert(!spool_id_valid("a b"));
    char big[SPOOL_ID_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert(!spool_id_valid(big));
}
END_TEST

START_TEST(claims_are_unique)
{
    char *dir = tl_tmpdir("traind-spool");
    ck_assert_ptr_nonnull(dir);
    char id[SPOOL_ID_MAX + 1];
    ck_assert_int_eq(spool_claim_id(dir, "demo", id), 0);
    ck_assert_str_eq(id, "demo");
    ck_assert_int_eq(spool_claim_id(dir, "demo", id), 0);
    ck_assert_str_eq(id, "demo-2");
    ck_assert_int_eq(spool_claim_id(dir, "demo", id), 0);
    ck_assert_str_eq(id, "demo-3");
    /* a stem that sanitizes to a taken id */
    ck_assert_int_eq(spool_claim_id(dir, "..demo", id), 0);
    ck_assert_str_eq(id, "demo-4");
    char *p = xasprintf("%s/demo-3", dir);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    free(p);
    /* a file in the way counts as taken too */
    p = xasprintf("%s/other", dir);
    ck_assert_int_eq(tl_write(p, "x"), 0);
    free(p);
    ck_assert_int_eq(spool_claim_id(dir, "other", id), 0);
    ck_assert_str_eq(id, "other-2");
    tl_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(prepare_and_token)
{
    char *dir = tl_tmpdir("traind-spool");
    char *root = xasprintf("%s/a/b/spool", dir);
    ck_assert_int_eq(spool_prepare(root), 0);
    char *inc = xasprintf("%s/incoming", root), *jobs = xasprintf("%s/jobs", root);
    struct stat st;
    ck_assert_int_eq(stat(inc, &st), 0);
    ck_assert_int_eq(stat(jobs, &st), 0);

    char *tpath = xasprintf("%s/api.token", root);
    char tok[SPOOL_TOKEN_HEX + 1], tok2[SPOOL_TOKEN_HEX + 1];
    ck_assert_int_eq(spool_token_load_or_create(tpath, tok, sizeof tok), 1);
    ck_assert_uint_eq(strlen(tok), SPOOL_TOKEN_HEX);
    ck_assert_uint_eq(strspn(tok, "0123456789abcdef"), SPOOL_TOKEN_HEX);
    ck_assert_int_eq(stat(tpath, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(spool_token_load_or_create(tpath, tok2, sizeof tok2), 0);
    ck_assert_str_eq(tok, tok2);
    /* a token someone wrote by hand, with a trailing newline */
    ck_assert_int_eq(write_file_atomic(tpath, "s3cret\n", 7, 0600), 0);
    ck_assert_int_eq(spool_token_load_or_create(tpath, tok2, sizeof tok2), 0);
    ck_assert_str_eq(tok2, "s3cret");
    tl_rmtree(dir);
    free(dir);
    free(root);
    free(inc);
    free(jobs);
    free(tpath);
}
END_TEST

START_TEST(history_thinning)
{
    size_t n = 1000;
    train_point *p = xcalloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i].step = (long)(i + 1) * 10;
    jobs_thin_history(p, &n, 100);
    ck_assert_uint_le(n, 100);
    ck_assert_uint_ge(n, 50);
    ck_assert_int_eq(p[n - 1].step, 10000);   /* the last point stays */
    ck_assert_int_eq(p[0].step, 10);          /* and the first */
    for (size_t i = 1; i < n; i++)
        ck_assert_int_lt(p[i - 1].step, p[i].step);
    /* recent history is denser than old history */
    ck_assert_int_lt(p[n - 1].step - p[n - 2].step, p[1].step - p[0].step);
    /* Every keep is honoured exactly down to 2 (the first and the newest). */
    for (size_t keep = 2; keep <= 5; keep++) {
        size_t m = 9;
        for (size_t i = 0; i < m; i++)
            p[i].step = (long)i + 1;
        jobs_thin_history(p, &m, keep);
        ck_assert_uint_le(m, keep);
        ck_assert_int_eq(p[0].step, 1);
        ck_assert_int_eq(p[m - 1].step, 9);
    }
    free(p);
}
END_TEST

START_TEST(pick_even_indices)
{
    size_t idx[10];
    ck_assert_uint_eq(pick_even(0, 10, idx), 0);
    ck_assert_uint_eq(pick_even(5, 10, idx), 5);
    ck_assert_uint_eq(idx[4], 4);
    ck_assert_uint_eq(pick_even(101, 5, idx), 5);
    size_t want[] = {0, 25, 50, 75, 100};
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(idx[i], want[i]);
    ck_assert_uint_eq(pick_even(7, 1, idx), 1);
    ck_assert_uint_eq(idx[0], 6);   /* the last point */
    ck_assert_uint_eq(pick_even(1000, 3, idx), 3);
    ck_assert_uint_eq(idx[2], 999);
}
END_TEST

START_TEST(state_names)
{
    for (int s = 0; s < JOB_NSTATES; s++)
        ck_assert_int_eq(job_state_from_name(job_state_name((job_state)s)), s);
    ck_assert_int_eq(job_state_from_name("paused"), -1);
    ck_assert_int_eq(job_state_from_name(NULL), -1);
    ck_assert(!job_state_ended(JOB_QUEUED));
    ck_assert(!job_state_ended(JOB_RUNNING));
    ck_assert(job_state_ended(JOB_REJECTED));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("ids");
    tcase_add_test(tc, intake_names);
    tcase_add_test(tc, sanitize);
    tcase_add_test(tc, candidates);
    tcase_add_test(tc, id_validity);
    tcase_add_test(tc, claims_are_unique);
    tcase_add_test(tc, prepare_and_token);
    suite_add_tcase(s, tc);
    tc = tcase_create("jobs");
    tcase_add_test(tc, history_thinning);
    tcase_add_test(tc, pick_even_indices);
    tcase_add_test(tc, state_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed = tl_run_suite(suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

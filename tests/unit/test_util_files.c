/*
 * test_util_files — util.h's atomic replacement (atomic_file_*, write_file_atomic,
 * link_file_atomic) and the one even-thinning rule (even_index, pick_even).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/util.h"
#include "tl.h"

/* Files in dir other than . and .. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

START_TEST(atomic_replace)
{
    char *dir = tl_tmpdir("util-files");
    char *path = xasprintf("%s/f.json", dir);
    ck_assert_int_eq(write_file_atomic(path, "old", 3, 0644), 0);

    /* abort: the old file is untouched and no temp file is left */
    atomic_file af;
    ck_assert_int_eq(atomic_file_open(&af, path, 0644), 0);
    ck_assert_int_eq(write(af.fd, "half", 4), 4);
    atomic_file_abort(&af);
    size_t len;
    char *got = tl_read(path, &len);
    ck_assert_str_eq(got, "old");
    free(got);
    ck_assert_int_eq(entries(dir), 1);

    /* commit: the new bytes, still one file */
    ck_assert_int_eq(atomic_file_open(&af, path, 0600), 0);
    ck_assert_int_eq(write(af.fd, "new!", 4), 4);
    ck_assert_int_eq(atomic_file_commit(&af), 0);
    got = tl_read(path, &len);
    ck_assert_str_eq(got, "new!");
    free(got);
    ck_assert_int_eq(entries(dir), 1);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    /* a directory that is not there: an errno, nothing made */
    char *nowhere = xasprintf("%s/no/such/f", dir);
    ck_assert_int_eq(atomic_file_open(&af, nowhere, 0644), -ENOENT);
    ck_assert_int_eq(write_file_atomic(nowhere, "x", 1, 0644), -ENOENT);

    /* a hard link put in place atomically, over an older file */
    char *linked = xasprintf("%s/l.json", dir);
    ck_assert_int_eq(write_file_atomic(linked, "older", 5, 0644), 0);
    ck_assert_int_eq(link_file_atomic(path, linked), 0);
    got = tl_read(linked, &len);
    ck_assert_str_eq(got, "new!");
    free(got);
    struct stat a, b;
    ck_assert_int_eq(stat(path, &a), 0);
    ck_assert_int_eq(stat(linked, &b), 0);
    ck_assert(a.st_ino == b.st_ino);
    ck_assert_int_eq(entries(dir), 2);
    ck_assert_int_eq(link_file_atomic(nowhere, linked), -ENOENT);
    ck_assert_int_eq(entries(dir), 2);

    unlink(linked);
    unlink(path);
    rmdir(dir);
    free(linked);
    free(nowhere);
    free(path);
    free(dir);
}
END_TEST

START_TEST(even_thinning)
{
    /* round(k (n-1) / (m-1)), halves up: 0..10 in 4 -> 0, 3 (3.33), 7 (6.67), 10 */
    size_t want[] = {0, 3, 7, 10};
    for (size_t k = 0; k < 4; k++)
        ck_assert_uint_eq(even_index(k, 11, 4), want[k]);
    ck_assert_uint_eq(even_index(1, 4, 3), 2);   /* 1.5 rounds up */
    /* first and last always, strictly increasing, also where doubles would round badly */
    size_t idx[1000];
    size_t ns[] = {2, 3, 1001, 4600857, (size_t)1 << 40};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t m = ns[t] < 1000 ? ns[t] - 1 : 1000;
        if (m < 2)
            continue;
        ck_assert_uint_eq(pick_even(ns[t], m, idx), m);
        ck_assert_uint_eq(idx[0], 0);
        ck_assert_uint_eq(idx[m - 1], ns[t] - 1);
        for (size_t k = 1; k < m; k++)
            ck_assert_uint_gt(idx[k], idx[k - 1]);
    }
}
END_TEST

static Suite *util_files_suite(void)
{
    Suite *s = suite_create("util_files");
    TCase *tc = tcase_create("files");
    tcase_add_test(tc, atomic_replace);
    tcase_add_test(tc, even_thinning);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tl_run_suite(util_files_suite()) ? 1 : 0;
}

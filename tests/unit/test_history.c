/* test_history — thinning a finished job's metrics.jsonl (daemon/service/history.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/history.h"
#include "traind/util.h"
#include "tl.h"

static char *write_lines(const char *dir, int n)
{
    char *p = xasprintf("%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "w");
    for (int s = 1; s <= n; s++)
        fprintf(f, "{\"step\":%d,\"lr\":0.1,\"loss\":%d.5}\n", s, s);
    fclose(f);
    return p;
}

START_TEST(thins_long_history)
{
    char *dir = tl_tmpdir("traind-hist");
    char *p = write_lines(dir, 1000);
    ck_assert_int_eq(history_thin_file(p, 100), 900);
    char *text = tl_read(p, NULL);
    int lines = 0, prev = 0, first = 0, last = 0;
    for (char *l = text; *l; l = strchr(l, '\n') + 1) {
        int s = atoi(l + 8);
        ck_assert_int_gt(s, prev);   /* in order, every line whole */
        if (!first)
            first = s;
        prev = last = s;
        lines++;
    }
    ck_assert_int_eq(lines, 100);
    ck_assert_int_eq(first, 1);
    ck_assert_int_eq(last, 1000);
    ck_assert_ptr_nonnull(strstr(text, "{\"step\":951,\"lr\":0.1,\"loss\":951.5}\n"));   /* the newest 50 all kept */
    free(text);
    /* short enough already: untouched */
    ck_assert_int_eq(history_thin_file(p, 100), 0);
    free(p);
    p = write_lines(dir, 150);
    ck_assert_int_eq(history_thin_file(p, 100), 0);
    free(p);
    tl_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("history");
    TCase *tc = tcase_create("history");
    tcase_add_test(tc, thins_long_history);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

/* json_print_exact: every number reads back as the same double; keys, order
 * and non-numbers are untouched; NaN/Inf print as null. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "traind/json.h"
#include "traind/rng.h"
#include "tl.h"

START_TEST(numbers_round_trip_exactly)
{
    rng_t r;
    rng_seed(&r, 42, 1);
    cJSON *a = cJSON_CreateArray();
    double want[2000];
    for (int i = 0; i < 2000; i++) {
        /* lrs, losses, tiny and huge magnitudes, whole numbers */
        double v = i % 4 == 0 ? (double)rng_below(&r, 1000000000)
                              : ldexp(rng_uniform(&r) + 0.5, (int)rng_below(&r, 200) - 100);
        if (i % 7 == 0)
            v = -v;
        want[i] = v;
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v));
    }
    char *s = json_print_exact(a);
    cJSON *back = cJSON_Parse(s);
    ck_assert_ptr_nonnull(back);
    for (int i = 0; i < 2000; i++)
        ck_assert_msg(cJSON_GetArrayItem(back, i)->valuedouble == want[i], "item %d: %.17g", i, want[i]);
    free(s);
    cJSON_Delete(a);
    cJSON_Delete(back);
}
END_TEST

START_TEST(keys_order_and_non_numbers_kept)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", 1200);
    cJSON_AddNumberToObject(o, "lr", 0.1 + 0.2);
    cJSON_AddStringToObject(o, "state", "running");
    cJSON_AddNumberToObject(o, "loss", NAN);
    cJSON *in = cJSON_AddObjectToObject(o, "nested");
    cJSON_AddNumberToObject(in, "x", 1e-300);
    char *s = json_print_exact(o);
    ck_assert_str_eq(s, "{\"step\":1200,\"lr\":0.30000000000000004,\"state\":\"running\","
                        "\"loss\":null,\"nested\":{\"x\":1e-300}}");
    free(s);
    cJSON_Delete(o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, numbers_round_trip_exactly);
    tcase_add_test(tc, keys_order_and_non_numbers_kept);
    suite_add_tcase(s, tc);
    int failed = tl_run_suite(s);
    return failed ? 1 : 0;
}

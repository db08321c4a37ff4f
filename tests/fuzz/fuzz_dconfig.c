/*
 * fuzz_dconfig — the daemon-config parser (dconfig_parse, traind.yaml(5),
 * daemon/core/dconfig.c), and its string checkers on the raw input.
 *
 * Oracle: a refusal lists at least one located problem; an accepted file
 * leaves every field in its documented range and a listen address that
 * dconfig_check_listen accepts, and dconfig_finish then makes every path
 * absolute.  Parsing is deterministic: the same bytes twice give the same
 * result.
 */
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "traind/dconfig.h"
#include "traind/util.h"

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull)
        devnull = fopen("/dev/null", "w");

    /* The string checkers, on the input as one C string. */
    char *s = xstrndup((const char *)data, size);
    (void)dconfig_check_listen(s);
    size_t bytes;
    if (dconfig_parse_size(s, &bytes) == 0)
        FUZZ_CHECK(s[0] >= '0' && s[0] <= '9');
    if (strlen(s) <= 64)
        FUZZ_CHECK(dconfig_edit_distance(s, "threads_per_job") <= 64);
    free(s);

    dconfig c, c2;
    diag_list_t errs = DIAG_LIST_INIT, errs2 = DIAG_LIST_INIT;
    dconfig_init(&c);
    dconfig_init(&c2);
    int rc = dconfig_parse((const char *)data, size, &c, &errs);
    int rc2 = dconfig_parse((const char *)data, size, &c2, &errs2);
    FUZZ_CHECK(rc == rc2 && errs.n == errs2.n);
    if (fuzz_verbose())
        fprintf(stderr, "  %s (%zu problems)\n", rc == 0 ? "valid" : "invalid", errs.n);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && errs.n >= 1);
        for (size_t i = 0; i < errs.n; i++)
            FUZZ_CHECK(errs.items[i].path && errs.items[i].message && errs.items[i].message[0]);
        diag_print(devnull, "traind.yaml", &errs);
    } else {
        FUZZ_CHECK(errs.n == 0);
        FUZZ_CHECK(c.listen && dconfig_check_listen(c.listen) == NULL);
        FUZZ_CHECK(c.max_jobs >= 1 && c.threads_per_job >= 1);
        FUZZ_CHECK(c.metrics_keep >= 2 && c.max_restarts >= 0);
        FUZZ_CHECK(c.max_queued_jobs >= 1 && c.max_connections >= 1);
        FUZZ_CHECK(c.write_rate_per_client >= 0 && isfinite(c.write_rate_per_client));
        FUZZ_CHECK(c.write_burst_per_client >= 0 && dconfig_write_burst(&c) >= 1);
        FUZZ_CHECK(c.n_data_dirs <= DCONFIG_MAX_DATA_DIRS);
        FUZZ_CHECK(!c.spool || c.spool[0]);
        FUZZ_CHECK(!c.api_token_file || c.api_token_file[0]);
        for (size_t i = 0; i < c.n_data_dirs; i++)
            FUZZ_CHECK(c.data_dirs[i] && c.data_dirs[i][0]);
        dconfig_finish(&c);
        FUZZ_CHECK(c.spool && c.spool[0] == '/');
        FUZZ_CHECK(c.api_token_file && c.api_token_file[0] == '/');
        for (size_t i = 0; i < c.n_data_dirs; i++)
            FUZZ_CHECK(c.data_dirs[i][0] == '/');
    }
    diag_free(&errs);
    diag_free(&errs2);
    dconfig_free(&c);
    dconfig_free(&c2);
    return 0;
}

/*
 * fuzz_sweep — experiment files into trials (sweep_parse, traind/sweep.h).
 *
 * Every input is either refused with at least one problem, each with a path
 * (and a position unless it is about the whole file), or gives trials that
 * each stand on their own: a config.yaml that cfg_parse reads back as the
 * same config (same hash, same name), the values the trial was built from,
 * and no more trials than the cap.  The cap is small here so that a grid
 * cannot make one input slow.
 */
#include <string.h>

#include "fuzz.h"
#include "traind/config.h"
#include "traind/sweep.h"

#define FUZZ_MAX_TRIALS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    sweep_opts o = {.max_trials = FUZZ_MAX_TRIALS};
    int rc = sweep_parse((const char *)data, size, &o, &s, &errs);
    if (rc != 0) {
        FUZZ_CHECK(errs.n > 0);
        for (size_t i = 0; i < errs.n; i++)
            FUZZ_CHECK(errs.items[i].path && errs.items[i].message && errs.items[i].message[0]);
        if (fuzz_verbose())
            fprintf(stderr, "refused: %s\n", errs.items[0].message);
        diag_free(&errs);
        return 0;
    }
    FUZZ_CHECK(errs.n == 0);
    FUZZ_CHECK(s.n_trials >= 1 && s.n_trials <= FUZZ_MAX_TRIALS);
    FUZZ_CHECK(s.n_params >= 1 && s.n_params <= SWEEP_MAX_PARAMS);
    for (size_t k = 0; k < s.n_trials; k++) {
        const sweep_trial *t = &s.trials[k];
        FUZZ_CHECK(t->yaml != NULL);
        for (size_t i = 0; i < s.n_params; i++)
            FUZZ_CHECK(t->values[i] != NULL);
        run_config back;
        diag_list_t e2 = DIAG_LIST_INIT;
        FUZZ_CHECK(cfg_parse(t->yaml, strlen(t->yaml), NULL, &back, &e2) == 0);
        FUZZ_CHECK(cfg_hash(&back) == cfg_hash(&t->cfg));
        FUZZ_CHECK(strcmp(back.name, t->cfg.name) == 0);
        cfg_free(&back);
        diag_free(&e2);
    }
    if (fuzz_verbose())
        fprintf(stderr, "experiment %s: %zu trials\n", s.name, s.n_trials);
    sweep_free(&s);
    return 0;
}

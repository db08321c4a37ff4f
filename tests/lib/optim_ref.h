/*
 * optim_ref — reading the committed optimizer reference data,
 * tests/data/optim/CASE.json (written by tests/gen_torch_ref.py): floats
 * as the hex bit patterns of float32 values.  test_optim, test_optim_sf
 * and test_optim_muon each replay their own cases.
 */
#ifndef TRAIND_TESTS_OPTIM_REF_H
#define TRAIND_TESTS_OPTIM_REF_H

#include <stdbool.h>
#include <cjson/cJSON.h>

#define OPTIM_REF_DIR "tests/data/optim"

/* The names (without ".json") of the cases in dir that want(file) takes,
 * sorted, at most max; how many. */
int optim_ref_find(const char *dir, bool (*want)(const char *file), char **names, int max);
/* A case file parsed, or NULL. */
cJSON *optim_ref_load(const char *path);
/* The hex floats of array a into out (at most n); the array's length. */
int optim_ref_floats(const cJSON *a, float *out, int n);

#endif

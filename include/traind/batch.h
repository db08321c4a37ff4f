/*
 * batch — one minibatch as the data module hands it to a model.
 * Regression models read x/y; language models read tokens/targets.
 * The pointers belong to the data source and stay valid until its next call.
 */
#ifndef TRAIND_BATCH_H
#define TRAIND_BATCH_H

#include <stdint.h>

typedef struct batch {
    int B;                    /* rows (regression) or sequences (language) */
    /* regression: x is (B, n_in), y is (B, n_out), row-major */
    int n_in, n_out;
    const float *x;
    const float *y;
    /* language: tokens and targets are (B, T) */
    int T;
    const int32_t *tokens;
    const int32_t *targets;
} batch_t;

#endif

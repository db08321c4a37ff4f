/*
 * data — where batches come from: synthetic regression (a fixed random
 * teacher plus noise), CSV files, raw text bytes and llm.c token files.
 * Deterministic for a seed; its position and RNG state can be saved and
 * restored so a resumed run sees exactly the batches it would have seen.
 */
#ifndef TRAIND_DATA_H
#define TRAIND_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include "traind/batch.h"
#include "traind/config.h"

typedef struct data_source data_source_t;

/* Opens the data of cfg.  path is the resolved file (NULL for synthetic, or
 * for text with no path: then a stream of 64 KiB random bytes from the seed,
 * as torch_ref.py does).  Returns NULL with a message naming the file and the
 * line on failure (ragged CSV row, non-number, bad token-file magic, ...). */
data_source_t *data_open(const run_config *cfg, const char *path, char *err, size_t errlen);
void data_close(data_source_t *d);

/* The next training batch (cfg->data.batch_size rows or sequences). */
void data_next(data_source_t *d, batch_t *out);

/* Eval split (eval_fraction > 0): number of eval batches and the i-th one. */
int data_eval_batches(const data_source_t *d);
void data_eval_batch(data_source_t *d, int i, batch_t *out);

/* Opaque, fixed-size state (RNG, position) for checkpoints. */
size_t data_state_size(const data_source_t *d);
void data_save_state(const data_source_t *d, void *buf);
/* Returns 0, or -1 if buf does not fit this source. */
int data_load_state(data_source_t *d, const void *buf, size_t len);

#endif

/*
 * data_impl — the inside of data_source_t, for the files that implement a
 * kind of data (data_synthetic.c, data_csv.c, data_text.c).  Callers use
 * traind/data.h only.
 *
 * Each kind embeds struct data_source as its first member and fills in ops;
 * data.c's public functions dispatch through them.  Every op is required.
 * next() and eval_batch() must not allocate: the batch points into buffers
 * the source owns, valid until its next call.
 *
 * State (data_save_state): a fixed-size blob of state_size() bytes, which a
 * kind should begin with its own tag (and whatever identifies the data, e.g.
 * a row count or checksum) so that load_state() can return -1 on a blob of
 * another kind or another file.
 */
#ifndef TRAIND_DATA_IMPL_H
#define TRAIND_DATA_IMPL_H

#include "traind/data.h"

typedef struct data_ops {
    void (*next)(data_source_t *d, batch_t *out);
    int (*eval_batches)(const data_source_t *d);
    void (*eval_batch)(data_source_t *d, int i, batch_t *out);
    size_t (*state_size)(const data_source_t *d);
    void (*save_state)(const data_source_t *d, void *buf);
    int (*load_state)(data_source_t *d, const void *buf, size_t len);
    void (*close)(data_source_t *d);   /* frees the source itself too */
} data_ops;

struct data_source {
    const data_ops *ops;
    data_kind kind;
    int batch_size;
};

/* The kinds' constructors; data_open() picks one by cfg->data.kind.  On
 * failure they return NULL with a message in err. */
data_source_t *data_synthetic_open(const run_config *cfg, char *err, size_t errlen);
data_source_t *data_csv_open(const run_config *cfg, const char *path, char *err, size_t errlen);
/* DATA_TEXT and DATA_TOKENS (data_text.c). */
data_source_t *data_text_open(const run_config *cfg, const char *path, char *err, size_t errlen);

#endif

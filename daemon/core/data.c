/* data — dispatch to the kinds of data.  See traind/data.h and traind/data_impl.h. */
#include "data_impl.h"

#include <stdio.h>

data_source_t *data_open(const run_config *cfg, const char *path, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    if (cfg->data.batch_size < 1) {
        snprintf(err, errlen, "data.batch_size must be at least 1");
        return NULL;
    }
    switch (cfg->data.kind) {
    case DATA_SYNTHETIC:
        return data_synthetic_open(cfg, err, errlen);
    case DATA_CSV:
        return data_csv_open(cfg, path, err, errlen);
    case DATA_TEXT:
    case DATA_TOKENS:
        return data_text_open(cfg, path, err, errlen);
    }
    snprintf(err, errlen, "unknown data kind %d", (int)cfg->data.kind);
    return NULL;
}

void data_close(data_source_t *d)
{
    if (d)
        d->ops->close(d);
}

void data_next(data_source_t *d, batch_t *out)
{
    d->ops->next(d, out);
}

int data_eval_batches(const data_source_t *d)
{
    return d->ops->eval_batches(d);
}

void data_eval_batch(data_source_t *d, int i, batch_t *out)
{
    d->ops->eval_batch(d, i, out);
}

size_t data_state_size(const data_source_t *d)
{
    return d->ops->state_size(d);
}

void data_save_state(const data_source_t *d, void *buf)
{
    d->ops->save_state(d, buf);
}

int data_load_state(data_source_t *d, const void *buf, size_t len)
{
    return d->ops->load_state(d, buf, len);
}

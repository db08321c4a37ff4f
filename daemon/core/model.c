/* model — dispatch to the model implementations.  See traind/model.h. */
#include "traind/model.h"
#include "traind/gpt.h"
#include "model_impl.h"

#include <stdint.h>

#include <stdio.h>

model_t *model_create(const model_cfg *cfg, int batch_size, char *err, size_t errlen)
{
    switch (cfg->type) {
    case MODEL_LINEAR:
    case MODEL_MLP:
        return mlp_create(cfg, batch_size, err, errlen);
    case MODEL_GPT:
        return gpt_create(cfg, batch_size, err, errlen);
    }
    snprintf(err, errlen, "unknown model type %d", (int)cfg->type);
    return NULL;
}

void model_free(model_t *m)
{
    if (m)
        m->ops->destroy(m);
}

size_t model_memory_bytes(const model_cfg *cfg, int batch_size)
{
    switch (cfg->type) {
    case MODEL_LINEAR:
    case MODEL_MLP:
        return mlp_memory_bytes(cfg, batch_size);
    case MODEL_GPT:
        return gpt_memory_bytes(cfg, batch_size);
    }
    return SIZE_MAX;
}

size_t model_param_count(const model_cfg *cfg)
{
    return cfg->type == MODEL_GPT ? gpt_param_count(cfg) : mlp_param_count(cfg);
}

int model_tensor_count(const model_cfg *cfg)
{
    return cfg->type == MODEL_GPT ? (cfg->layers > 0 && cfg->d_model > 0 ? gpt_tensor_count(cfg) : 0)
                                  : mlp_tensor_count(cfg);
}

int model_tensor_at(const model_cfg *cfg, int i, model_tensor *out)
{
    return cfg->type == MODEL_GPT ? gpt_model_tensor_at(cfg, i, out) : mlp_tensor_at(cfg, i, out);
}

/*
 * config_size — how big the configured model is: its parameter count and an
 * estimate of the memory its training process needs, so that a config asking
 * for a 10^12-parameter model is rejected at validation instead of dying of
 * OOM in the worker.
 *
 * Both come from the models themselves (model_param_count,
 * model_memory_bytes: each model counts from its own layout table).  All
 * arithmetic saturates at SIZE_MAX instead of wrapping: the inputs are
 * user-controlled, and a product that wrapped could make a huge model look
 * small.  The memory figure is what the model and optimizer allocate; the
 * data reader's buffers and the process itself come on top.
 */
#include <stdint.h>
#include "traind/config.h"
#include "traind/model.h"
#include "traind/optim_muon.h"
#include "model_impl.h"

size_t cfg_param_count(const model_cfg *m)
{
    return model_param_count(m);    /* from the model's own layout table */
}

size_t cfg_model_bytes(const run_config *cfg)
{
    /* What model_create allocates (counted by the models' own layout code,
     * so the cap matches what the worker will really ask for), plus the
     * optimizer's two moment buffers of one float per parameter (three for
     * schedule_free_adamw: z, v and the evaluation weights x; and Muon's
     * scratch); with
     * parallel.ranks, that for each rank's slice of the batch, once per rank. */
    size_t ranks = cfg->ranks > 1 ? (size_t)cfg->ranks : 1;
    int slice = cfg->data.batch_size / (int)ranks > 0 ? cfg->data.batch_size / (int)ranks : 1;
    size_t model = model_memory_bytes(&cfg->model, slice);
    size_t state = cfg->optim.type == OPT_SCHEDULE_FREE_ADAMW ? 3 : 2;
    if (cfg->optim.type == OPT_MUON)       /* Newton-Schulz's scratch for its largest matrix */
        model = size_sat_add(model, optim_muon_scratch_bytes(&cfg->model));
    return size_sat_mul(ranks, size_sat_add(model, size_sat_mul(model_param_count(&cfg->model), state * sizeof(float))));
}

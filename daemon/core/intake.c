/* intake — the daemon's acceptance of a run config.  See traind/intake.h. */
#include "traind/intake.h"

#include <errno.h>
#include <stdlib.h>

int intake_validate(const char *buf, size_t len, const char *default_name, const intake_limits *lim,
                    run_config *cfg, char **data_path, diag_list_t *errs)
{
    *data_path = NULL;
    cfg_parse_opts po = {.default_name = default_name, .max_model_bytes = lim->max_model_bytes};
    if (cfg_parse(buf, len, &po, cfg, errs) != 0)
        return -EINVAL;
    size_t before = errs->n;
    /* No data_dirs allows no data file (traind.yaml(5)); without this,
     * cfg_resolve_data_path would take n_dirs == 0 as trainctl's unconfined
     * case and look in the daemon's working directory. */
    if (lim->n_data_dirs == 0 && cfg->data.path) {
        diag_add(errs, "data.path", cfg->data.path_line, cfg->data.path_column,
                 "this daemon allows no data files (its data_dirs is empty)");
        cfg_free(cfg);
        return -EINVAL;
    }
    const char *base = lim->n_data_dirs > 0 ? lim->data_dirs[0] : NULL;
    char *p = cfg_resolve_data_path(cfg, base, lim->data_dirs, (int)lim->n_data_dirs, errs);
    if (errs->n > before) {
        free(p);
        cfg_free(cfg);
        return -EINVAL;
    }
    *data_path = p;
    return 0;
}

void intake_facts_of(const run_config *cfg, intake_facts *out)
{
    out->total_steps = cfg->sched.total_steps;
    out->has_eval = cfg->data.eval_fraction > 0;
    out->ranks = cfg->ranks >= 1 ? cfg->ranks : 1;
    out->tokens_per_step =
        cfg->model.type == MODEL_GPT ? (double)cfg->data.batch_size * (double)cfg->model.context : 0;
}

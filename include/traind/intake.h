/*
 * intake — whether the daemon takes a run config, and what a job learns
 * from it: pure config work (no I/O besides resolving data.path, no event
 * loop), shared by the daemon's intake (incoming/ files and POST /jobs,
 * traind/spool.h and traind/jobs.h), its start-up and `trainctl validate`.
 *
 * A config is taken when cfg_parse accepts it under the daemon's memory cap
 * (max_model_memory) and its data.path resolves inside one of data_dirs.
 */
#ifndef TRAIND_INTAKE_H
#define TRAIND_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include "traind/config.h"
#include "traind/diag.h"

/* What the daemon's config allows (its data_dirs and max_model_memory). */
typedef struct intake_limits {
    char *const *data_dirs;
    size_t n_data_dirs;
    size_t max_model_bytes;             /* 0 = CFG_DEFAULT_MAX_MODEL_BYTES */
} intake_limits;

/* Validates a run config as the daemon does: cfg_parse, then data.path
 * resolved against (and confined to) lim's data_dirs.  Returns 0 with *cfg
 * filled and *data_path (malloc'd, may be NULL), or -EINVAL with errs. */
int intake_validate(const char *buf, size_t len, const char *default_name, const intake_limits *lim,
                    run_config *cfg, char **data_path, diag_list_t *errs);

/* What a job shows that follows from its config alone. */
typedef struct intake_facts {
    long total_steps;
    bool has_eval;                      /* the data has an eval split: eval_loss is shown */
    double tokens_per_step;             /* gpt: batch × context; 0 otherwise */
    int ranks;                          /* parallel.ranks (>= 1) */
} intake_facts;

void intake_facts_of(const run_config *cfg, intake_facts *out);

#endif

/*
 * fork — the config of a run branched from another run's checkpoint
 * (traind(8) HTTP API, `POST /jobs/{id}/fork`, `trainctl fork ID --at STEP --set K=V`).
 *
 * A fork continues the parent's model, optimizer state, data position and
 * RNG from step S, so it may change only what does not touch those: the
 * schedule (any of its keys, total_steps >= S included), the optimizer's
 * lr, weight_decay, betas and grad_clip, and the train cadences.  Anything
 * else is refused with the key named.  With no change at all the fork is
 * the parent's config under a new name, and trains bit-identically to the
 * parent from S on.
 *
 * cfg_lineage_hash is what parent and fork share — every field that the
 * checkpoint's contents depend on and a fork cannot change — so that a
 * resumed fork can check it is reading a checkpoint of its own line.
 */
#ifndef TRAIND_FORK_H
#define TRAIND_FORK_H

#include <stddef.h>
#include <stdint.h>
#include "traind/config.h"
#include "traind/diag.h"

typedef struct cfg_fork_req {
    long at_step;               /* >= 0 */
    const char *const *sets;    /* "key.path=value" (value is YAML: 3.0e-4, cosine, [0.9, 0.95]) */
    size_t n_sets;
    const char *name;           /* the fork's name; NULL: "<parent name>-fork-<at_step>" */
} cfg_fork_req;

/* The fork of the parent config (its config.yaml text).  0 with *out
 * validated (cfg_free) and *child_yaml its config.yaml (malloc'd); -1 with
 * every problem in errs (a --set problem under the path "--set KEY"). */
int cfg_fork(const char *parent_yaml, size_t len, const char *parent_name, const cfg_fork_req *req,
             const cfg_parse_opts *opts, run_config *out, char **child_yaml, diag_list_t *errs);

uint64_t cfg_lineage_hash(const run_config *cfg);

#endif

/*
 * hf_state — a run's history as HuggingFace's trainer_state.json (the file
 * transformers.Trainer writes beside each checkpoint), so that tools that
 * read HF runs read traind runs.
 *
 * From metrics.jsonl: each point becomes a log_history entry {"step",
 * "loss" (loss_avg: the mean since the previous point, as HF logs it),
 * "learning_rate", "grad_norm", "epoch"}, and each point with eval_loss also
 * an {"step", "eval_loss", "epoch"} entry.  Numbers are printed exactly (HF
 * rounds the loss to 4 digits; nothing is gained by copying that).  epoch
 * is null: the data sources have no epochs to count (HF allows None).
 * best_metric is the lowest eval_loss, when there is one.
 */
#ifndef TRAIND_HF_STATE_H
#define TRAIND_HF_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "traind/config.h"

/* The cache of log_history beside metrics.jsonl (see hf_state.c): what
 * makes a stop, and a checkpoint's update, cost the lines written since
 * the last, not the whole history.  Not a file of the run's to list, copy
 * or fork: only hf_state reads it, and any stale one is rebuilt. */
#define HF_CACHE_NAME ".trainer_state.cache"

/* Writes out_dir/trainer_state.json (atomically) from out_dir/metrics.jsonl,
 * parsing only the lines the cache does not cover yet (and adding them to
 * it); with no usable cache, all of them.  0, or -errno with err set; a
 * torn or foreign line is skipped. */
int hf_write_trainer_state(const char *out_dir, const run_config *cfg, char *err, size_t errlen);

/* Brings the cache up to metrics.jsonl's last whole line (the lines since
 * the last update; all of them the first time, or when the cache was
 * stale).  For the runner at each checkpoint, so that the stop after is
 * cheap.  0 or -errno (nothing lost: the next stop rebuilds). */
int hf_cache_update(const char *out_dir);

/* Before metrics.jsonl is cut back to its first keep bytes: removes the
 * cache unless it covers no more than those.  0 or -errno. */
int hf_cache_cut(const char *out_dir, uint64_t keep);

/* Before metrics.jsonl is replaced: removes the cache.  0 or -errno. */
int hf_cache_remove(const char *out_dir);

#endif

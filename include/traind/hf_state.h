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
#include "traind/config.h"

/* Writes out_dir/trainer_state.json (atomically) from out_dir/metrics.jsonl.
 * 0, or -errno with err set; a torn or foreign line is skipped. */
int hf_write_trainer_state(const char *out_dir, const run_config *cfg, char *err, size_t errlen);

#endif

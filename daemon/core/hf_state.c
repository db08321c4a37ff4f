/*
 * hf_state — trainer_state.json from metrics.jsonl.  See traind/hf_state.h.
 *
 * The history is read line by line (it can be long), kept only as the
 * cJSON entries it becomes, and written with exact numbers.
 */
#include "traind/hf_state.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/json.h"
#include "traind/util.h"

static bool num(const cJSON *o, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

int hf_write_trainer_state(const char *out_dir, const run_config *cfg, char *err, size_t errlen)
{
    char *mpath = xasprintf("%s/metrics.jsonl", out_dir);
    FILE *f = fopen(mpath, "re");
    free(mpath);
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot read metrics.jsonl: %s", strerror(e));
        return -e;
    }
    cJSON *root = cJSON_CreateObject(), *hist = cJSON_CreateArray();
    double best = NAN, last_step = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *p = cJSON_Parse(line);
        double step, v;
        if (!p || !num(p, "step", &step)) {
            cJSON_Delete(p);
            continue;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNullToObject(e, "epoch");
        if (num(p, "grad_norm", &v))
            cJSON_AddNumberToObject(e, "grad_norm", v);
        if (num(p, "lr", &v))
            cJSON_AddNumberToObject(e, "learning_rate", v);
        if (num(p, "loss_avg", &v) || num(p, "loss", &v))
            cJSON_AddNumberToObject(e, "loss", v);
        cJSON_AddNumberToObject(e, "step", step);
        cJSON_AddItemToArray(hist, e);
        if (num(p, "eval_loss", &v)) {
            cJSON *ev = cJSON_CreateObject();
            cJSON_AddNullToObject(ev, "epoch");
            cJSON_AddNumberToObject(ev, "eval_loss", v);
            cJSON_AddNumberToObject(ev, "step", step);
            cJSON_AddItemToArray(hist, ev);
            if (isnan(best) || v < best)
                best = v;
        }
        last_step = step;
        cJSON_Delete(p);
    }
    free(line);
    fclose(f);

    if (isnan(best))
        cJSON_AddNullToObject(root, "best_metric");
    else
        cJSON_AddNumberToObject(root, "best_metric", best);
    cJSON_AddNullToObject(root, "best_model_checkpoint");
    cJSON_AddNullToObject(root, "epoch");
    cJSON_AddNumberToObject(root, "eval_steps", (double)cfg->train.eval_every);
    cJSON_AddNumberToObject(root, "global_step", last_step);
    cJSON_AddFalseToObject(root, "is_hyper_param_search");
    cJSON_AddTrueToObject(root, "is_local_process_zero");
    cJSON_AddTrueToObject(root, "is_world_process_zero");
    cJSON_AddItemToObject(root, "log_history", hist);
    cJSON_AddNumberToObject(root, "logging_steps", (double)cfg->train.log_every);
    cJSON_AddNumberToObject(root, "max_steps", (double)cfg->sched.total_steps);
    cJSON_AddNumberToObject(root, "num_input_tokens_seen", 0);
    cJSON_AddNumberToObject(root, "num_train_epochs", 0);
    cJSON_AddNumberToObject(root, "save_steps", (double)cfg->train.checkpoint_every);
    cJSON_AddNumberToObject(root, "total_flos", 0);
    cJSON_AddNumberToObject(root, "train_batch_size", cfg->data.batch_size);
    cJSON_AddNullToObject(root, "trial_name");
    cJSON_AddNullToObject(root, "trial_params");
    char *text = json_print_exact(root);
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    char *path = xasprintf("%s/trainer_state.json", out_dir);
    int rc = write_file_atomic(path, text, strlen(text), 0644);
    if (rc < 0)
        snprintf(err, errlen, "cannot write trainer_state.json: %s", strerror(-rc));
    free(path);
    free(text);
    return rc;
}

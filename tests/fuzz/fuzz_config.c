/*
 * fuzz_config — the run-config parser and validator (cfg_parse, traind-run.yaml(5)).
 *
 * Every input must either be refused with at least one located problem, or
 * give a config whose derived forms all work: cfg_to_json, cfg_hash, the
 * size estimate, the schedule at a spread of steps (never NaN, never
 * negative).  And the JSON — which config_out.c promises is itself a valid
 * config — must parse back to the same config (doubles within an ulp or
 * two: cJSON prints 15 significant digits when they compare equal).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "traind/config.h"
#include "traind/schedule.h"

static FILE *devnull;

static bool close_enough(double a, double b)
{
    if (a == b || (isnan(a) && isnan(b)))
        return true;
    return fabs(a - b) <= 1e-13 * fmax(fabs(a), fabs(b));
}

/* b (parsed back from a's JSON) holds the same config as a. */
static void check_same(const run_config *a, const run_config *b)
{
    FUZZ_CHECK(strcmp(a->name, b->name) == 0);
    FUZZ_CHECK(a->seed == b->seed);
    FUZZ_CHECK(a->threads == b->threads);

    const model_cfg *ma = &a->model, *mb = &b->model;
    FUZZ_CHECK(ma->type == mb->type);
    if (ma->type == MODEL_GPT) {
        FUZZ_CHECK(ma->vocab_size == mb->vocab_size && ma->context == mb->context);
        FUZZ_CHECK(ma->d_model == mb->d_model && ma->layers == mb->layers && ma->heads == mb->heads);
    } else {
        FUZZ_CHECK(ma->input_dim == mb->input_dim && ma->output_dim == mb->output_dim);
        if (ma->type == MODEL_MLP) {
            FUZZ_CHECK(ma->n_hidden == mb->n_hidden && ma->activation == mb->activation);
            FUZZ_CHECK(memcmp(ma->hidden, mb->hidden, sizeof ma->hidden[0] * ma->n_hidden) == 0);
        }
    }

    const data_cfg *da = &a->data, *db = &b->data;
    FUZZ_CHECK(da->kind == db->kind && da->batch_size == db->batch_size);
    FUZZ_CHECK(!da->path == !db->path && (!da->path || strcmp(da->path, db->path) == 0));
    FUZZ_CHECK(close_enough(da->eval_fraction, db->eval_fraction));
    if (da->kind == DATA_SYNTHETIC)
        FUZZ_CHECK(close_enough(da->noise, db->noise));

    const optim_cfg *oa = &a->optim, *ob = &b->optim;
    FUZZ_CHECK(oa->type == ob->type);
    FUZZ_CHECK(close_enough(oa->lr, ob->lr) && close_enough(oa->weight_decay, ob->weight_decay));
    FUZZ_CHECK(close_enough(oa->grad_clip, ob->grad_clip));
    if (oa->type == OPT_SGD || oa->type == OPT_MUON) {
        FUZZ_CHECK(close_enough(oa->momentum, ob->momentum) && oa->nesterov == ob->nesterov);
    }
    if (oa->type == OPT_MUON) {
        FUZZ_CHECK(oa->ns_steps == ob->ns_steps && oa->adjust_lr == ob->adjust_lr);
        FUZZ_CHECK(close_enough(oa->adamw.lr, ob->adamw.lr) && close_enough(oa->adamw.eps, ob->adamw.eps));
        FUZZ_CHECK(close_enough(oa->adamw.beta1, ob->adamw.beta1) && close_enough(oa->adamw.beta2, ob->adamw.beta2));
        FUZZ_CHECK(close_enough(oa->adamw.weight_decay, ob->adamw.weight_decay));
    } else if (oa->type != OPT_SGD) {
        FUZZ_CHECK(close_enough(oa->beta1, ob->beta1) && close_enough(oa->beta2, ob->beta2));
        FUZZ_CHECK(close_enough(oa->eps, ob->eps));
    }

    const sched_cfg *sa = &a->sched, *sb = &b->sched;
    FUZZ_CHECK(sa->type == sb->type && sa->total_steps == sb->total_steps);
    FUZZ_CHECK(sa->warmup_steps == sb->warmup_steps);
    FUZZ_CHECK(close_enough(sa->min_lr_ratio, sb->min_lr_ratio));
    FUZZ_CHECK(close_enough(sa->warmup_start_ratio, sb->warmup_start_ratio));
    switch (sa->type) {
    case SCHED_COSINE_WITH_RESTARTS: FUZZ_CHECK(close_enough(sa->cycles, sb->cycles)); break;
    case SCHED_POLYNOMIAL: FUZZ_CHECK(close_enough(sa->power, sb->power)); break;
    case SCHED_INVERSE_SQRT: FUZZ_CHECK(sa->timescale == sb->timescale); break;
    case SCHED_WSD:
        FUZZ_CHECK(sa->warmup_type == sb->warmup_type && sa->decay_type == sb->decay_type);
        FUZZ_CHECK(sa->decay_steps == sb->decay_steps);
        break;
    case SCHED_STEP:
        FUZZ_CHECK(sa->step_size == sb->step_size && close_enough(sa->gamma, sb->gamma));
        break;
    case SCHED_MULTISTEP:
        FUZZ_CHECK(sa->n_milestones == sb->n_milestones && close_enough(sa->gamma, sb->gamma));
        FUZZ_CHECK(memcmp(sa->milestones, sb->milestones, sizeof sa->milestones[0] * sa->n_milestones) == 0);
        break;
    case SCHED_EXPONENTIAL: FUZZ_CHECK(close_enough(sa->gamma, sb->gamma)); break;
    case SCHED_ONECYCLE:
        FUZZ_CHECK(close_enough(sa->pct_start, sb->pct_start) && close_enough(sa->div_factor, sb->div_factor));
        FUZZ_CHECK(close_enough(sa->final_div_factor, sb->final_div_factor));
        FUZZ_CHECK(sa->anneal_cos == sb->anneal_cos && sa->three_phase == sb->three_phase);
        break;
    case SCHED_PIECEWISE:
        FUZZ_CHECK(sa->n_points == sb->n_points);
        for (int i = 0; i < sa->n_points; i++)
            FUZZ_CHECK(sa->point_step[i] == sb->point_step[i] &&
                       close_enough(sa->point_ratio[i], sb->point_ratio[i]));
        break;
    default: break;
    }

    FUZZ_CHECK(a->train.log_every == b->train.log_every);
    FUZZ_CHECK(a->train.checkpoint_every == b->train.checkpoint_every);
    FUZZ_CHECK(a->train.eval_every == b->train.eval_every);
}

/* The schedule at a spread of steps: the ends, around the warmup, and evenly between. */
static void check_schedule(const run_config *cfg)
{
    const sched_cfg *s = &cfg->sched;
    long T = s->total_steps, W = s->warmup_steps;
    FUZZ_CHECK(T >= 1 && W >= 0 && W <= T);
    long probe[] = {0, 1, W - 1, W, W + 1, T / 2, T - 2, T - 1};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0] + 16; i++) {
        long st = i < sizeof probe / sizeof probe[0] ? probe[i]
                                                      : (long)((double)(T - 1) * (double)(i - 8) / 15.0);
        if (st < 0 || st >= T)
            continue;
        double f = sched_factor(s, st);
        FUZZ_CHECK(!isnan(f) && f >= 0);
        double lr = sched_lr(s, cfg->optim.lr, st);
        FUZZ_CHECK(!isnan(lr) && lr >= 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    cfg_parse_opts opts = {.default_name = "fuzz"};
    int rc = cfg_parse((const char *)data, size, &opts, &cfg, &errs);
    if (fuzz_verbose())
        fprintf(stderr, "  %s (%zu problems)\n", rc == 0 ? "valid" : "invalid", errs.n);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(errs.n >= 1 && errs.n <= 101);
        for (size_t i = 0; i < errs.n; i++)
            FUZZ_CHECK(errs.items[i].path && errs.items[i].message && errs.items[i].message[0]);
        diag_print(devnull, "fuzz.yaml", &errs);
        diag_free(&errs);
        return 0;
    }
    FUZZ_CHECK(errs.n == 0);
    FUZZ_CHECK(cfg.name && cfg.name[0]);

    (void)cfg_hash(&cfg);
    (void)cfg_model_bytes(&cfg);
    (void)cfg_param_count(&cfg.model);
    check_schedule(&cfg);

    cJSON *j = cfg_to_json(&cfg);
    FUZZ_CHECK(j);
    char *text = cJSON_PrintUnformatted(j);
    FUZZ_CHECK(text);
    cJSON_Delete(j);

    /* The JSON is a config too (JSON is YAML) and means the same thing. */
    run_config back;
    diag_list_t errs2 = DIAG_LIST_INIT;
    rc = cfg_parse(text, strlen(text), &opts, &back, &errs2);
    if (rc != 0) {
        fprintf(stderr, "cfg_to_json gave a config that does not parse back:\n%s\n", text);
        diag_print(stderr, "json", &errs2);
    }
    FUZZ_CHECK(rc == 0);
    check_same(&cfg, &back);
    cfg_free(&back);
    free(text);
    cfg_free(&cfg);
    return 0;
}

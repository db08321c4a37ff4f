/*
 * config_out — a validated run_config going out: as a stable hash (stored in
 * checkpoints, so a checkpoint is never resumed under a different config) and
 * as JSON with every default filled in (the job object's "config").
 *
 * The hash is FNV-1a over a canonical serialization built field by field —
 * never the raw struct, whose padding and unused array tails are not data.
 * Integers go in as 8 little-endian bytes, doubles as their IEEE bits (with
 * -0 folded to 0), strings as length + bytes, each preceded by its field
 * name, so the hash is the same on every machine and build.  It covers what
 * changes the numbers (seed, model, data, optimizer, schedule) and leaves
 * out what does not (name, threads, parallel.ranks, log/checkpoint/eval
 * cadence: a checkpoint resumes on any number of ranks).
 *
 * The JSON mirrors the YAML: the same sections and keys, only the keys that
 * matter for the chosen types, derived values resolved (warmup_ratio appears
 * as warmup_steps, min_lr as min_lr_ratio).  It is itself a valid config
 * that parses back to the same config — up to cJSON's number printing, which
 * keeps 15 significant digits when they compare equal within an epsilon, so
 * a computed value (min_lr / lr) may come back one ulp off.  The hash is
 * therefore always taken from the struct, never from the JSON.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "traind/config.h"
#include "traind/fork.h"
#include "traind/util.h"
#include "config_internal.h"

/* ---- hash -------------------------------------------------------------- */

static void h_u64(uint64_t *h, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    *h = fnv64_update(*h, b, sizeof b);
}

static void h_name(uint64_t *h, const char *field)
{
    *h = fnv64_update(*h, field, strlen(field) + 1);   /* with the NUL as separator */
}

static void h_int(uint64_t *h, const char *field, long long v)
{
    h_name(h, field);
    h_u64(h, (uint64_t)v);
}

static void h_dbl(uint64_t *h, const char *field, double v)
{
    uint64_t bits;
    if (v == 0)
        v = 0;                  /* -0.0 and 0.0 mean the same */
    memcpy(&bits, &v, sizeof bits);
    h_name(h, field);
    h_u64(h, bits);
}

static void h_str(uint64_t *h, const char *field, const char *s)
{
    h_name(h, field);
    if (!s) {
        h_u64(h, UINT64_MAX);
        return;
    }
    size_t len = strlen(s);
    h_u64(h, len);
    *h = fnv64_update(*h, s, len);
}

static void hash_model(uint64_t *h, const model_cfg *m)
{
    h_int(h, "model.type", m->type);
    h_int(h, "model.input_dim", m->input_dim);
    h_int(h, "model.output_dim", m->output_dim);
    h_int(h, "model.n_hidden", m->n_hidden);
    for (int i = 0; i < m->n_hidden && i < CFG_MAX_HIDDEN; i++)
        h_int(h, "model.hidden[]", m->hidden[i]);
    h_int(h, "model.activation", m->activation);
    h_int(h, "model.vocab_size", m->vocab_size);
    h_int(h, "model.context", m->context);
    h_int(h, "model.d_model", m->d_model);
    h_int(h, "model.layers", m->layers);
    h_int(h, "model.heads", m->heads);
}

static void hash_data_optim(uint64_t *h, const data_cfg *d, const optim_cfg *o)
{
    h_int(h, "data.kind", d->kind);
    h_int(h, "data.batch_size", d->batch_size);
    h_dbl(h, "data.noise", d->noise);
    h_dbl(h, "data.eval_fraction", d->eval_fraction);
    h_str(h, "data.path", d->path);
    h_int(h, "optimizer.type", o->type);
    h_dbl(h, "optimizer.lr", o->lr);
    h_dbl(h, "optimizer.beta1", o->beta1);
    h_dbl(h, "optimizer.beta2", o->beta2);
    h_dbl(h, "optimizer.eps", o->eps);
    h_dbl(h, "optimizer.weight_decay", o->weight_decay);
    h_dbl(h, "optimizer.momentum", o->momentum);
    h_int(h, "optimizer.nesterov", o->nesterov);
    h_dbl(h, "optimizer.grad_clip", o->grad_clip);
    if (o->type == OPT_SCHEDULE_FREE_ADAMW) {   /* only then: every other config keeps its hash */
        h_int(h, "optimizer.warmup_steps", o->sf_warmup_steps);
        h_dbl(h, "optimizer.r", o->sf_r);
        h_dbl(h, "optimizer.weight_lr_power", o->sf_weight_lr_power);
    }
    if (o->type != OPT_MUON)
        return;                 /* the hash of every config before Muon stays as it was */
    h_int(h, "optimizer.ns_steps", o->ns_steps);
    h_int(h, "optimizer.adjust_lr", o->adjust_lr);
    h_dbl(h, "optimizer.adamw.lr", o->adamw.lr);
    h_dbl(h, "optimizer.adamw.beta1", o->adamw.beta1);
    h_dbl(h, "optimizer.adamw.beta2", o->adamw.beta2);
    h_dbl(h, "optimizer.adamw.eps", o->adamw.eps);
    h_dbl(h, "optimizer.adamw.weight_decay", o->adamw.weight_decay);
}

static void hash_schedule(uint64_t *h, const sched_cfg *s)
{
    h_int(h, "schedule.type", s->type);
    h_int(h, "schedule.total_steps", s->total_steps);
    h_int(h, "schedule.warmup_steps", s->warmup_steps);
    h_dbl(h, "schedule.min_lr_ratio", s->min_lr_ratio);
    h_dbl(h, "schedule.warmup_start_ratio", s->warmup_start_ratio);
    h_dbl(h, "schedule.cycles", s->cycles);
    h_dbl(h, "schedule.power", s->power);
    h_int(h, "schedule.timescale", s->timescale);
    h_int(h, "schedule.warmup_type", s->warmup_type);
    h_int(h, "schedule.decay_type", s->decay_type);
    h_int(h, "schedule.decay_steps", s->decay_steps);
    h_int(h, "schedule.step_size", s->step_size);
    h_dbl(h, "schedule.gamma", s->gamma);
    h_int(h, "schedule.n_milestones", s->n_milestones);
    for (int i = 0; i < s->n_milestones && i < CFG_MAX_MILESTONES; i++)
        h_int(h, "schedule.milestones[]", s->milestones[i]);
    h_dbl(h, "schedule.pct_start", s->pct_start);
    h_dbl(h, "schedule.div_factor", s->div_factor);
    h_dbl(h, "schedule.final_div_factor", s->final_div_factor);
    h_int(h, "schedule.anneal_cos", s->anneal_cos);
    h_int(h, "schedule.three_phase", s->three_phase);
    h_int(h, "schedule.n_points", s->n_points);
    for (int i = 0; i < s->n_points && i < CFG_MAX_POINTS; i++) {
        h_int(h, "schedule.points[].step", s->point_step[i]);
        h_dbl(h, "schedule.points[].ratio", s->point_ratio[i]);
    }
}

uint64_t cfg_hash(const run_config *cfg)
{
    uint64_t h = FNV64_INIT;
    h_name(&h, "traind run config v1");
    h_int(&h, "seed", (long long)cfg->seed);
    hash_model(&h, &cfg->model);
    hash_data_optim(&h, &cfg->data, &cfg->optim);
    hash_schedule(&h, &cfg->sched);
    return h;
}

uint64_t cfg_lineage_hash(const run_config *cfg)
{
    /* What a fork keeps (traind/fork.h): the model, the data and its order,
     * and the optimizer's kind of state. */
    uint64_t h = FNV64_INIT;
    h_name(&h, "traind lineage v1");
    h_int(&h, "seed", (long long)cfg->seed);
    hash_model(&h, &cfg->model);
    const data_cfg *d = &cfg->data;
    h_int(&h, "data.kind", d->kind);
    h_int(&h, "data.batch_size", d->batch_size);
    h_dbl(&h, "data.noise", d->noise);
    h_dbl(&h, "data.eval_fraction", d->eval_fraction);
    h_str(&h, "data.path", d->path);
    h_int(&h, "optimizer.type", cfg->optim.type);
    h_dbl(&h, "optimizer.eps", cfg->optim.eps);
    h_dbl(&h, "optimizer.momentum", cfg->optim.momentum);
    h_int(&h, "optimizer.nesterov", cfg->optim.nesterov);
    if (cfg->optim.type == OPT_MUON)
        h_dbl(&h, "optimizer.adamw.eps", cfg->optim.adamw.eps);   /* as eps above, for its AdamW */
    return h;
}

/* ---- JSON -------------------------------------------------------------- */

/* An integer, exactly.  cJSON prints a number with 15 significant digits
 * whenever those compare equal to it within an epsilon, so a seed of 2^53 - 1
 * would come out as 9.00719925474099e+15 (another seed, and not an integer
 * the config accepts); past 15 digits the digits go in as raw JSON. */
static cJSON *int_item(long long v)
{
    if (v > -1000000000000000LL && v < 1000000000000000LL)
        return cJSON_CreateNumber((double)v);
    char digits[24];
    snprintf(digits, sizeof digits, "%lld", v);
    return cJSON_CreateRaw(digits);
}

static void add_int(cJSON *o, const char *key, long long v)
{
    cJSON_AddItemToObject(o, key, int_item(v));
}

static cJSON *model_json(const model_cfg *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", model_type_name(m->type));
    if (m->type == MODEL_GPT) {
        cJSON_AddNumberToObject(o, "vocab_size", m->vocab_size);
        cJSON_AddNumberToObject(o, "context", m->context);
        cJSON_AddNumberToObject(o, "d_model", m->d_model);
        cJSON_AddNumberToObject(o, "layers", m->layers);
        cJSON_AddNumberToObject(o, "heads", m->heads);
        return o;
    }
    cJSON_AddNumberToObject(o, "input_dim", m->input_dim);
    if (m->type == MODEL_MLP) {
        cJSON_AddItemToObject(o, "hidden", cJSON_CreateIntArray(m->hidden, m->n_hidden));
        cJSON_AddStringToObject(o, "activation", activation_name(m->activation));
    }
    cJSON_AddNumberToObject(o, "output_dim", m->output_dim);
    return o;
}

static cJSON *data_json(const data_cfg *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", data_kind_name(d->kind));
    cJSON_AddNumberToObject(o, "batch_size", d->batch_size);
    if (d->path)
        cJSON_AddStringToObject(o, "path", d->path);
    if (d->kind == DATA_SYNTHETIC)
        cJSON_AddNumberToObject(o, "noise", d->noise);
    cJSON_AddNumberToObject(o, "eval_fraction", d->eval_fraction);
    return o;
}

static cJSON *optim_json(const optim_cfg *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", optim_type_name(p->type));
    cJSON_AddNumberToObject(o, "lr", p->lr);
    if (p->type == OPT_SGD || p->type == OPT_MUON) {
        cJSON_AddNumberToObject(o, "momentum", p->momentum);
        cJSON_AddBoolToObject(o, "nesterov", p->nesterov);
    }
    if (p->type == OPT_MUON) {
        cJSON_AddNumberToObject(o, "ns_steps", p->ns_steps);
        cJSON_AddStringToObject(o, "adjust_lr", muon_adjust_name(p->adjust_lr));
        cJSON *a = cJSON_AddObjectToObject(o, "adamw");
        cJSON_AddNumberToObject(a, "lr", p->adamw.lr);
        double betas[2] = {p->adamw.beta1, p->adamw.beta2};
        cJSON_AddItemToObject(a, "betas", cJSON_CreateDoubleArray(betas, 2));
        cJSON_AddNumberToObject(a, "eps", p->adamw.eps);
        cJSON_AddNumberToObject(a, "weight_decay", p->adamw.weight_decay);
    } else if (p->type != OPT_SGD) {
        double betas[2] = {p->beta1, p->beta2};
        cJSON_AddItemToObject(o, "betas", cJSON_CreateDoubleArray(betas, 2));
        cJSON_AddNumberToObject(o, "eps", p->eps);
    }
    cJSON_AddNumberToObject(o, "weight_decay", p->weight_decay);
    cJSON_AddNumberToObject(o, "grad_clip", p->grad_clip);
    if (p->type == OPT_SCHEDULE_FREE_ADAMW) {
        add_int(o, "warmup_steps", p->sf_warmup_steps);
        cJSON_AddNumberToObject(o, "r", p->sf_r);
        cJSON_AddNumberToObject(o, "weight_lr_power", p->sf_weight_lr_power);
    }
    return o;
}

static void sched_type_json(cJSON *o, const sched_cfg *s)
{
    switch (s->type) {
    case SCHED_COSINE_WITH_RESTARTS:
        cJSON_AddNumberToObject(o, "cycles", s->cycles);
        break;
    case SCHED_POLYNOMIAL:
        cJSON_AddNumberToObject(o, "power", s->power);
        break;
    case SCHED_INVERSE_SQRT:
        add_int(o, "timescale", s->timescale);
        break;
    case SCHED_WSD:
        cJSON_AddStringToObject(o, "warmup_type", wsd_shape_name(s->warmup_type));
        cJSON_AddStringToObject(o, "decay_type", wsd_shape_name(s->decay_type));
        add_int(o, "decay_steps", s->decay_steps);
        break;
    case SCHED_STEP:
        add_int(o, "step_size", s->step_size);
        cJSON_AddNumberToObject(o, "gamma", s->gamma);
        break;
    case SCHED_MULTISTEP: {
        cJSON *m = cJSON_AddArrayToObject(o, "milestones");
        for (int i = 0; i < s->n_milestones; i++)
            cJSON_AddItemToArray(m, int_item(s->milestones[i]));
        cJSON_AddNumberToObject(o, "gamma", s->gamma);
        break;
    }
    case SCHED_EXPONENTIAL:
        cJSON_AddNumberToObject(o, "gamma", s->gamma);
        break;
    case SCHED_ONECYCLE:
        cJSON_AddNumberToObject(o, "pct_start", s->pct_start);
        cJSON_AddStringToObject(o, "anneal", s->anneal_cos ? "cos" : "linear");
        cJSON_AddNumberToObject(o, "div_factor", s->div_factor);
        cJSON_AddNumberToObject(o, "final_div_factor", s->final_div_factor);
        cJSON_AddBoolToObject(o, "three_phase", s->three_phase);
        break;
    case SCHED_PIECEWISE: {
        cJSON *pts = cJSON_AddArrayToObject(o, "points");
        for (int i = 0; i < s->n_points; i++) {
            cJSON *pt = cJSON_CreateArray();
            cJSON_AddItemToArray(pt, int_item(s->point_step[i]));
            cJSON_AddItemToArray(pt, cJSON_CreateNumber(s->point_ratio[i]));
            cJSON_AddItemToArray(pts, pt);
        }
        break;
    }
    default:
        break;
    }
}

/* Does schedule key apply to type t (cfg_schedule_keys, as the parser checks it)? */
static bool sched_key_applies(sched_type t, const char *key)
{
    for (const cv_key *k = cfg_schedule_keys; k->name; k++)
        if (!strcmp(k->name, key))
            return k->types == 0 || (k->types & CV_BIT(t)) != 0;
    return false;
}

static cJSON *sched_json(const sched_cfg *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", sched_type_name(s->type));
    add_int(o, "total_steps", s->total_steps);
    if (sched_key_applies(s->type, "warmup_steps"))
        add_int(o, "warmup_steps", s->warmup_steps);
    if (sched_key_applies(s->type, "warmup_start_ratio"))
        cJSON_AddNumberToObject(o, "warmup_start_ratio", s->warmup_start_ratio);
    if (sched_key_applies(s->type, "min_lr_ratio"))
        cJSON_AddNumberToObject(o, "min_lr_ratio", s->min_lr_ratio);
    sched_type_json(o, s);
    return o;
}

cJSON *cfg_to_json(const run_config *cfg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", cfg->name ? cfg->name : "");
    add_int(o, "seed", (long long)cfg->seed);
    cJSON_AddNumberToObject(o, "threads", cfg->threads);
    cJSON_AddItemToObject(o, "model", model_json(&cfg->model));
    cJSON_AddItemToObject(o, "data", data_json(&cfg->data));
    cJSON_AddItemToObject(o, "optimizer", optim_json(&cfg->optim));
    cJSON_AddItemToObject(o, "schedule", sched_json(&cfg->sched));
    cJSON *par = cJSON_AddObjectToObject(o, "parallel");
    add_int(par, "ranks", cfg->ranks);
    cJSON *t = cJSON_AddObjectToObject(o, "train");
    add_int(t, "log_every", cfg->train.log_every);
    add_int(t, "checkpoint_every", cfg->train.checkpoint_every);
    add_int(t, "eval_every", cfg->train.eval_every);
    add_int(t, "keep_checkpoints", cfg->train.keep_checkpoints);
    add_int(t, "keep_every", cfg->train.keep_every);
    if (cfg->train.n_keep_steps > 0) {
        cJSON *ks = cJSON_AddArrayToObject(t, "keep_steps");
        for (int i = 0; i < cfg->train.n_keep_steps; i++)
            cJSON_AddItemToArray(ks, int_item(cfg->train.keep_steps[i]));
    }
    return o;
}

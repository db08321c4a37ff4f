/*
 * config — the run config of traind-run.yaml(5): YAML in, a validated run_config
 * with every default filled in out, or every problem at once.
 *
 * The shape: ytree_parse() gives a tree whose nodes know their line and
 * column; each section is then read by its own function with the typed
 * readers of config_value.c, over a run_config that already holds the
 * defaults.  A reader that finds a problem reports it and leaves the default,
 * so validation always runs to the end and the user sees all problems.
 * Cross-field rules (heads | d_model, data kind vs model type, the memory
 * estimate) run only when the fields they need were valid, so one mistake
 * does not cascade into several messages.
 *
 * Which keys a section accepts, and for which type, lives in one table per
 * section (cv_key), so "unknown key" hints and "only used by model type gpt"
 * come from the same place as the parser.
 *
 * Also here: cfg_load_file, cfg_free and the enum names.  The schedule
 * section is in config_schedule.c, the size estimate in config_size.c,
 * hash and JSON in config_out.c, data path resolution in config_path.c.
 */
#include "traind/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config_internal.h"
#include "traind/optim_muon.h"
#include "traind/util.h"

#define NELEM(a) ((int)(sizeof(a) / sizeof *(a)))
#define MAX_DIM 1000000         /* widths, d_model, context */
#define MAX_STEPS_LIKE 1000000000LL   /* cadences: as total_steps (larger means "never"), exact as JSON doubles */
#define MAX_SEED 9007199254740991LL   /* 2^53 - 1: exact in the JSON job object */
#define MAX_ERRORS 100                /* listed per config; a hostile one could make 10^5 */

static const cv_range POSITIVE = {0, INFINITY, true, false};
static const cv_range NON_NEGATIVE = {0, INFINITY, false, false};

/* ---- names ------------------------------------------------------------- */

static const char *const model_names[] = {"linear", "mlp", "gpt"};
static const char *const activation_names[] = {"relu", "gelu", "tanh"};
static const char *const data_names[] = {"synthetic", "csv", "text", "tokens"};
static const char *const optim_names[] = {"adamw", "adam", "sgd", "schedule_free_adamw", "muon"};
static const char *const muon_adjust_names[] = {"original", "match_rms_adamw"};

#define NAME_OF(table, v) ((unsigned)(v) < (unsigned)NELEM(table) ? table[v] : "?")
const char *model_type_name(model_type t) { return NAME_OF(model_names, t); }
const char *activation_name(activation_type t) { return NAME_OF(activation_names, t); }
const char *data_kind_name(data_kind k) { return NAME_OF(data_names, k); }
const char *optim_type_name(optim_type t) { return NAME_OF(optim_names, t); }
const char *muon_adjust_name(muon_adjust a) { return NAME_OF(muon_adjust_names, a); }
/* sched_type_name() and wsd_shape_name() live with the schedule section. */

/* ---- key tables -------------------------------------------------------- */

#define M_DENSE (CV_BIT(MODEL_LINEAR) | CV_BIT(MODEL_MLP))

static const cv_key root_keys[] = {
    {"name", 0}, {"seed", 0}, {"threads", 0}, {"model", 0}, {"data", 0},
    {"optimizer", 0}, {"schedule", 0}, {"train", 0}, {"parallel", 0}, {NULL, 0}};

static const cv_key model_keys[] = {
    {"type", 0},
    {"input_dim", M_DENSE}, {"output_dim", M_DENSE},
    {"hidden", CV_BIT(MODEL_MLP)}, {"activation", CV_BIT(MODEL_MLP)},
    {"vocab_size", CV_BIT(MODEL_GPT)}, {"context", CV_BIT(MODEL_GPT)},
    {"d_model", CV_BIT(MODEL_GPT)}, {"layers", CV_BIT(MODEL_GPT)}, {"heads", CV_BIT(MODEL_GPT)},
    {NULL, 0}};

static const cv_key data_keys[] = {
    {"kind", 0}, {"batch_size", 0},
    {"path", CV_BIT(DATA_CSV) | CV_BIT(DATA_TEXT) | CV_BIT(DATA_TOKENS)},
    {"noise", CV_BIT(DATA_SYNTHETIC)}, {"eval_fraction", 0}, {NULL, 0}};

#define O_SF CV_BIT(OPT_SCHEDULE_FREE_ADAMW)
#define O_ADAM (CV_BIT(OPT_ADAMW) | CV_BIT(OPT_ADAM) | O_SF)
#define O_MOMENTUM (CV_BIT(OPT_SGD) | CV_BIT(OPT_MUON))

static const cv_key optim_keys[] = {
    {"type", 0}, {"lr", 0}, {"betas", O_ADAM}, {"eps", O_ADAM}, {"weight_decay", 0},
    {"momentum", O_MOMENTUM}, {"nesterov", O_MOMENTUM}, {"grad_clip", 0},
    {"warmup_steps", O_SF}, {"r", O_SF}, {"weight_lr_power", O_SF},
    {"ns_steps", CV_BIT(OPT_MUON)}, {"adjust_lr", CV_BIT(OPT_MUON)}, {"adamw", CV_BIT(OPT_MUON)}, {NULL, 0}};

/* optimizer.adamw of muon: the AdamW of the tensors Muon leaves out. */
static const cv_key muon_adamw_keys[] = {
    {"lr", 0}, {"betas", 0}, {"eps", 0}, {"weight_decay", 0}, {NULL, 0}};

static const cv_key train_keys[] = {
    {"log_every", 0}, {"checkpoint_every", 0}, {"eval_every", 0}, {"keep_checkpoints", 0},
    {"keep_every", 0}, {"keep_steps", 0}, {NULL, 0}};

static const cv_key parallel_keys[] = {{"ranks", 0}, {NULL, 0}};

static const struct { const char *section; const cv_key *keys; } homes[] = {
    {"", root_keys}, {"model", model_keys}, {"data", data_keys}, {"optimizer", optim_keys},
    {"schedule", cfg_schedule_keys}, {"train", train_keys}, {"parallel", parallel_keys}};

/* A key of several sections (warmup_steps: schedule, and optimizer for
 * schedule_free_adamw only) is homed where the most types use it. */
const char *cfg_key_home(const char *key)
{
    const char *home = NULL;
    int best = 0;
    for (int i = 0; i < NELEM(homes); i++)
        for (const cv_key *k = homes[i].keys; k->name; k++)
            if (strcmp(k->name, key) == 0) {
                int uses = k->types ? __builtin_popcount(k->types) : 32;
                if (uses > best) {
                    best = uses;
                    home = homes[i].section;
                }
            }
    return home;
}

static bool is_section_name(const char *key)
{
    for (int i = 1; i < NELEM(homes); i++)
        if (strcmp(homes[i].section, key) == 0)
            return true;
    return false;
}

bool cfg_key_path_known(const char *path, char *hint, size_t hint_size)
{
    const char *leaf = strrchr(path, '.');
    leaf = leaf ? leaf + 1 : path;
    size_t best = 4;                  /* hints closer than this many edits */
    if (hint_size)
        hint[0] = '\0';
    for (int i = 0; i < NELEM(homes); i++)
        for (const cv_key *k = homes[i].keys; k->name; k++) {
            if (i == 0 && is_section_name(k->name))
                continue;
            char full[128];
            snprintf(full, sizeof full, "%s%s%s", homes[i].section, i ? "." : "", k->name);
            if (strcmp(full, path) == 0)
                return true;
            /* the right key under the wrong section counts as two edits */
            size_t d = cv_edit_distance(path, full, best);
            if (strcmp(leaf, k->name) == 0 && d > 2)
                d = 2;
            if (d < best) {
                best = d;
                if (hint_size)
                    snprintf(hint, hint_size, "%s", full);
            }
        }
    return false;
}

/* The section's key table, its discriminator and the names of its types. */
static const cv_key *section_table(const char *section, const char **disc, const char *(**name_of)(int),
                                   int *n_types, const char **dflt)
{
    static const char *(*const model_name)(int) = (const char *(*)(int))model_type_name;
    *dflt = NULL;
    if (!strcmp(section, "model")) {
        *disc = "type", *name_of = model_name, *n_types = MODEL_GPT + 1;
        return model_keys;
    }
    if (!strcmp(section, "data")) {
        *disc = "kind", *name_of = (const char *(*)(int))data_kind_name, *n_types = DATA_TOKENS + 1;
        return data_keys;
    }
    if (!strcmp(section, "optimizer")) {
        *disc = "type", *name_of = (const char *(*)(int))optim_type_name, *n_types = NELEM(optim_names);
        *dflt = "adamw";
        return optim_keys;
    }
    if (!strcmp(section, "schedule")) {
        *disc = "type", *name_of = (const char *(*)(int))sched_type_name, *n_types = SCHED_PIECEWISE + 1;
        *dflt = "cosine";
        return cfg_schedule_keys;
    }
    return NULL;
}

void cfg_prune_keys_for_type(ynode *doc, const char *section)
{
    const char *disc, *dflt;
    const char *(*name_of)(int);
    int n_types;
    const cv_key *keys = section_table(section, &disc, &name_of, &n_types, &dflt);
    ynode *sec = (ynode *)ymap_get(doc, section);
    if (!keys || !sec || sec->kind != YNODE_MAP)
        return;
    const ynode *tn = ymap_get(sec, disc);
    const char *tname = tn && tn->kind == YNODE_SCALAR ? tn->value : dflt;
    int type = -1;
    for (int t = 0; tname && t < n_types; t++)
        if (!strcmp(name_of(t), tname))
            type = t;
    if (type < 0)
        return;                 /* an unknown type: the validator reports it */
    for (size_t i = sec->n; i-- > 0;) {
        const ynode *k = sec->keys[i];
        if (!k || k->kind != YNODE_SCALAR)
            continue;
        for (const cv_key *e = keys; e->name; e++)
            if (!strcmp(e->name, k->value)) {
                if (e->types && !(e->types & CV_BIT(type)))
                    ymap_delete(sec, e->name);
                break;
            }
    }
}

/* ---- small readers ----------------------------------------------------- */

static cv_result get_int_field(const cv_section *s, const char *key, bool required, long long lo,
                               long long hi, int *out)
{
    long long v;
    cv_result r = cv_get_int(s, key, required, lo, hi, &v);
    if (r == CV_OK)
        *out = (int)v;
    return r;
}

static cv_result get_long_field(const cv_section *s, const char *key, long long lo, long long hi,
                                long *out)
{
    long long v;
    cv_result r = cv_get_int(s, key, false, lo, hi, &v);
    if (r == CV_OK)
        *out = (long)v;
    return r;
}

/* ---- top level --------------------------------------------------------- */

static void parse_top(const cv_section *root, run_config *cfg)
{
    const ynode *n = cv_get(root, "name");
    const char *name;
    if (n && cv_str(root->errs, n, "name", CFG_NAME_MAX, &name) == CV_OK) {
        free(cfg->name);
        cfg->name = xstrdup(name);
    }
    long long seed;
    if (cv_get_int(root, "seed", false, 0, MAX_SEED, &seed) == CV_OK)
        cfg->seed = (uint64_t)seed;
    get_int_field(root, "threads", false, 1, 256, &cfg->threads);
}

/* ---- model ------------------------------------------------------------- */

static void parse_hidden(const cv_section *s, model_cfg *m)
{
    const ynode *n = cv_get(s, "hidden");
    if (!n)
        return;
    char path[CV_PATH_MAX], item[CV_PATH_MAX];
    cv_path_key(path, s->path, "hidden");
    if (!cv_list(s->errs, n, path, 1, CFG_MAX_HIDDEN))
        return;
    int widths[CFG_MAX_HIDDEN];
    bool ok = true;
    for (size_t i = 0; i < n->n; i++) {
        long long w;
        cv_path_index(item, path, i);
        if (cv_int(s->errs, n->items[i], item, 1, MAX_DIM, &w) == CV_OK)
            widths[i] = (int)w;
        else
            ok = false;
    }
    if (ok) {
        memcpy(m->hidden, widths, n->n * sizeof *widths);
        m->n_hidden = (int)n->n;
    }
}

static void parse_dense(const cv_section *s, model_cfg *m)
{
    get_int_field(s, "input_dim", true, 1, MAX_DIM, &m->input_dim);
    get_int_field(s, "output_dim", true, 1, MAX_DIM, &m->output_dim);
    if (m->type != MODEL_MLP)
        return;
    m->hidden[0] = 64;          /* default: one hidden layer of 64 */
    m->n_hidden = 1;
    parse_hidden(s, m);
    int act;
    if (cv_get_enum(s, "activation", false, activation_names, NELEM(activation_names), &act) == CV_OK)
        m->activation = (activation_type)act;
}

static void parse_gpt(const cv_section *s, model_cfg *m)
{
    get_int_field(s, "vocab_size", false, 2, 65536, &m->vocab_size);
    get_int_field(s, "context", true, 1, MAX_DIM, &m->context);
    cv_result d = get_int_field(s, "d_model", true, 1, MAX_DIM, &m->d_model);
    get_int_field(s, "layers", true, 1, 10000, &m->layers);
    cv_result h = get_int_field(s, "heads", true, 1, MAX_DIM, &m->heads);
    if (d == CV_OK && h == CV_OK && m->d_model % m->heads != 0)
        cv_error(s->errs, "model.heads", cv_get(s, "heads"),
                 "must divide model.d_model (%d), got %d", m->d_model, m->heads);
}

/* Returns the model type, or -1 when it is missing or invalid. */
static int parse_model(const cv_section *root, model_cfg *m)
{
    cv_section s;
    cv_section_open(&s, root, "model");
    int type;
    if (cv_get_enum(&s, "type", true, model_names, NELEM(model_names), &type) != CV_OK)
        type = -1;
    cv_check_keys(&s, model_keys, type, model_names, "model type");
    if (type < 0)
        return -1;
    m->type = (model_type)type;
    if (m->type == MODEL_GPT)
        parse_gpt(&s, m);
    else
        parse_dense(&s, m);
    return type;
}

/* ---- data -------------------------------------------------------------- */

static bool kind_is_token_stream(int kind)
{
    return kind == DATA_TEXT || kind == DATA_TOKENS;
}

/* mtype: the model type, -1 if unknown.  Returns the data kind, or -1 if unknown. */
static int parse_data_kind(const cv_section *s, int mtype)
{
    int kind = -1;
    cv_result r = cv_get_enum(s, "kind", false, data_names, NELEM(data_names), &kind);
    if (r == CV_BAD)
        return -1;
    if (r == CV_ABSENT)
        return mtype < 0 ? -1 : mtype == MODEL_GPT ? DATA_TEXT : DATA_SYNTHETIC;
    if (mtype >= 0 && kind_is_token_stream(kind) != (mtype == MODEL_GPT)) {
        cv_error(s->errs, "data.kind", cv_get(s, "kind"),
                 "data kind %s needs %s model (model.type is %s)", data_names[kind],
                 kind_is_token_stream(kind) ? "a gpt" : "a linear or mlp", model_names[mtype]);
        return -1;
    }
    return kind;
}

static void parse_data_path(const cv_section *s, data_cfg *d, int kind)
{
    const ynode *n = cv_get(s, "path");
    if (!n) {
        if (kind == DATA_CSV || kind == DATA_TOKENS)
            cv_missing(s, "path", kind == DATA_CSV ? "data kind csv reads a file"
                                                   : "data kind tokens reads a file");
        return;
    }
    const char *path;
    if (cv_str(s->errs, n, "data.path", 4096, &path) == CV_OK) {
        d->path = xstrdup(path);
        d->path_line = n->line;
        d->path_column = n->column;
    }
}

static void parse_data(const cv_section *root, run_config *cfg, int mtype)
{
    data_cfg *d = &cfg->data;
    cv_section s;
    cv_section_open(&s, root, "data");
    int kind = parse_data_kind(&s, mtype);
    cv_check_keys(&s, data_keys, kind, data_names, "data kind");
    if (kind >= 0)
        d->kind = (data_kind)kind;
    get_int_field(&s, "batch_size", false, 1, 65536, &d->batch_size);
    if (kind >= 0 && kind != DATA_SYNTHETIC)
        parse_data_path(&s, d, kind);
    cv_get_num(&s, "noise", false, NON_NEGATIVE, &d->noise);
    cv_get_num(&s, "eval_fraction", false, (cv_range){0, 1, false, true}, &d->eval_fraction);
}

/* Raw bytes are the tokens of data kind text, so the vocabulary must hold
 * every byte value. */
static void check_text_vocab(const cv_section *root, const run_config *cfg)
{
    if (cfg->model.type != MODEL_GPT || cfg->data.kind != DATA_TEXT || cfg->model.vocab_size >= 256)
        return;
    cv_section s;
    cv_section_open(&s, root, "model");
    cv_error(root->errs, "model.vocab_size", cv_get(&s, "vocab_size"),
             "must be >= 256 for data kind text (every byte is a token), got %d",
             cfg->model.vocab_size);
}

/* ---- optimizer --------------------------------------------------------- */

/* s.betas (optimizer.betas, optimizer.adamw.betas) into *beta1, *beta2. */
static void parse_betas(const cv_section *s, double *beta1, double *beta2)
{
    const ynode *n = cv_get(s, "betas");
    char list[CV_PATH_MAX], path[CV_PATH_MAX];
    cv_path_key(list, s->path, "betas");
    if (!n || !cv_list(s->errs, n, list, 2, 2))
        return;
    double b[2] = {*beta1, *beta2};
    for (int i = 0; i < 2; i++) {
        cv_path_index(path, list, (size_t)i);
        cv_num(s->errs, n->items[i], path, (cv_range){0, 1, false, true}, &b[i]);
    }
    *beta1 = b[0];
    *beta2 = b[1];
}

/* Muon's own keys (traind/optim_muon.h) and its AdamW's, optimizer.adamw. */
static void parse_muon(const cv_section *s, optim_cfg *o)
{
    if (o->momentum >= 1.0)     /* read above, in SGD's range [0, 1] */
        cv_error(s->errs, "optimizer.momentum", cv_get(s, "momentum"),
                 "must be in [0, 1) for muon, whose momentum is an average (1 would never take in a "
                 "gradient), got %g", o->momentum);
    long long steps;
    if (cv_get_int(s, "ns_steps", false, 1, MUON_MAX_NS_STEPS, &steps) == CV_OK)
        o->ns_steps = (int)steps;
    int adjust;
    if (cv_get_enum(s, "adjust_lr", false, muon_adjust_names, NELEM(muon_adjust_names), &adjust) == CV_OK)
        o->adjust_lr = (muon_adjust)adjust;
    cv_section a;
    cv_section_open(&a, s, "adamw");
    cv_check_keys(&a, muon_adamw_keys, -1, NULL, NULL);
    cv_get_num(&a, "lr", false, POSITIVE, &o->adamw.lr);
    parse_betas(&a, &o->adamw.beta1, &o->adamw.beta2);
    cv_get_num(&a, "eps", false, POSITIVE, &o->adamw.eps);
    cv_get_num(&a, "weight_decay", false, NON_NEGATIVE, &o->adamw.weight_decay);
}

/* schedule_free_adamw's own keys (traind/optim_sf.h).  The evaluation
 * weights are lerp(y, z, 1 - 1/beta1): beta1 must not be 0.  r and
 * weight_lr_power are capped where (k+1)^r * lr^power stays far from
 * overflowing a double over a billion steps. */
static void parse_schedule_free(const cv_section *s, optim_cfg *o)
{
    o->sf_weight_lr_power = 2.0;
    get_long_field(s, "warmup_steps", 0, MAX_STEPS_LIKE, &o->sf_warmup_steps);
    cv_get_num(s, "r", false, (cv_range){0, 10, false, false}, &o->sf_r);
    cv_get_num(s, "weight_lr_power", false, (cv_range){0, 10, false, false}, &o->sf_weight_lr_power);
    const ynode *b = cv_get(s, "betas");
    if (o->beta1 == 0)
        cv_error(s->errs, "optimizer.betas[0]", b && b->kind == YNODE_SEQ && b->n == 2 ? b->items[0] : b,
                 "must be > 0 for optimizer type schedule_free_adamw (its evaluation weights divide by "
                 "beta1), got 0");
}

/* Returns whether optimizer.lr is valid (the schedule's min_lr needs it). */
static bool parse_optimizer(const cv_section *root, optim_cfg *o)
{
    cv_section s;
    cv_section_open(&s, root, "optimizer");
    int type = OPT_ADAMW;
    if (cv_get_enum(&s, "type", false, optim_names, NELEM(optim_names), &type) == CV_BAD)
        type = -1;
    cv_check_keys(&s, optim_keys, type, optim_names, "optimizer type");
    if (type >= 0)
        o->type = (optim_type)type;
    o->weight_decay = o->type == OPT_ADAMW ? 0.01 : 0.0;   /* torch's defaults */
    if (o->type == OPT_SCHEDULE_FREE_ADAMW)
        o->lr = 0.0025;                                     /* AdamWScheduleFree's default */
    if (o->type == OPT_MUON) {          /* MuonWithAuxAdam's defaults */
        o->lr = 0.02;
        o->momentum = 0.95;
        o->nesterov = true;
    }
    bool lr_ok = cv_get_num(&s, "lr", false, POSITIVE, &o->lr) != CV_BAD;
    parse_betas(&s, &o->beta1, &o->beta2);
    if (o->type == OPT_SCHEDULE_FREE_ADAMW)
        parse_schedule_free(&s, o);
    cv_get_num(&s, "eps", false, POSITIVE, &o->eps);
    cv_get_num(&s, "weight_decay", false, NON_NEGATIVE, &o->weight_decay);
    cv_result m = cv_get_num(&s, "momentum", false, (cv_range){0, 1, false, false}, &o->momentum);
    if (cv_get_bool(&s, "nesterov", &o->nesterov) == CV_OK && o->nesterov && m != CV_BAD &&
        o->momentum == 0 && o->type == OPT_SGD)
        cv_error(s.errs, "optimizer.nesterov", cv_get(&s, "nesterov"),
                 "needs optimizer.momentum > 0 (as torch.optim.SGD)");
    cv_get_num(&s, "grad_clip", false, NON_NEGATIVE, &o->grad_clip);
    if (o->type == OPT_MUON)
        parse_muon(&s, o);
    return lr_ok;
}

/* Muon orthogonalizes the hidden 2-D weights and nothing else: a model
 * without one would train on AdamW alone under Muon's name. */
static void check_muon_model(const cv_section *root, const run_config *cfg)
{
    if (cfg->optim.type != OPT_MUON || optim_muon_model_has_hidden(&cfg->model))
        return;
    cv_section s;
    cv_section_open(&s, root, "optimizer");
    cv_error(root->errs, "optimizer.type", cv_get(&s, "type"),
             "muon (Keller Jordan's) updates hidden 2-D weights, and this %s model has none (a gpt has "
             "them, an mlp from two hidden layers on); use adamw", model_names[cfg->model.type]);
}

/* ---- train ------------------------------------------------------------- */

/* train.keep_steps: [S, ...], ascending, 1 <= S, at most CFG_MAX_KEEP_STEPS. */
static void parse_keep_steps(const cv_section *s, train_cfg *t)
{
    const ynode *n = cv_get(s, "keep_steps");
    if (!n || !cv_list(s->errs, n, "train.keep_steps", 0, CFG_MAX_KEEP_STEPS))
        return;
    long v[CFG_MAX_KEEP_STEPS];
    bool ok = true;
    for (size_t i = 0; i < n->n; i++) {
        char path[CV_PATH_MAX];
        cv_path_index(path, "train.keep_steps", i);
        long long x;
        if (cv_int(s->errs, n->items[i], path, 1, MAX_STEPS_LIKE, &x) != CV_OK) {
            ok = false;
            v[i] = -1;
            continue;
        }
        v[i] = (long)x;
        if (i > 0 && v[i - 1] >= 0 && v[i] <= v[i - 1]) {
            cv_error(s->errs, path, n->items[i], "must be greater than the previous step (%ld), got %lld", v[i - 1],
                     x);
            ok = false;
        }
    }
    if (ok) {
        memcpy(t->keep_steps, v, n->n * sizeof *v);
        t->n_keep_steps = (int)n->n;
    }
}

static void parse_train(const cv_section *root, train_cfg *t)
{
    cv_section s;
    cv_section_open(&s, root, "train");
    cv_check_keys(&s, train_keys, -1, NULL, NULL);
    get_long_field(&s, "log_every", 1, MAX_STEPS_LIKE, &t->log_every);
    get_long_field(&s, "checkpoint_every", 0, MAX_STEPS_LIKE, &t->checkpoint_every);
    get_long_field(&s, "eval_every", 0, MAX_STEPS_LIKE, &t->eval_every);
    get_long_field(&s, "keep_checkpoints", 0, 10000, &t->keep_checkpoints);
    get_long_field(&s, "keep_every", 0, MAX_STEPS_LIKE, &t->keep_every);
    parse_keep_steps(&s, t);
}

/* train.keep_every keeps each K-th step's checkpoint for good, each one a
 * whole checkpoint written: keep_every: 1 over a long run wrote hundreds of
 * MB/s and kept them all.  A K below CFG_KEEP_EVERY_FLOOR that keeps more
 * than CFG_MAX_KEPT checkpoints is refused, naming the smallest K that is
 * not (traind-run.yaml(5), train.keep_every); a K of 100 or more is a
 * cadence a user chose, whatever the length of the run. */
static void check_keep_every(const cv_section *root, const run_config *cfg)
{
    long k = cfg->train.keep_every, total = cfg->sched.total_steps;
    if (k <= 0 || k >= CFG_KEEP_EVERY_FLOOR || total <= 0 || total / k <= CFG_MAX_KEPT)
        return;
    cv_section s;
    cv_section_open(&s, root, "train");
    long least = (total + CFG_MAX_KEPT - 1) / CFG_MAX_KEPT;
    least = least < CFG_KEEP_EVERY_FLOOR ? least : CFG_KEEP_EVERY_FLOOR;
    cv_error(root->errs, "train.keep_every", cv_get(&s, "keep_every"),
             "keeps %ld checkpoints over %ld steps, a whole checkpoint written every %ld step%s: use %ld or more "
             "(or keep_checkpoints, which keeps only the newest)", total / k, total, k, k == 1 ? "" : "s", least);
}

/* ---- parallel ---------------------------------------------------------- */

#define MAX_RANKS 4096

/* parallel.ranks; each rank trains batch_size / ranks rows of every batch,
 * so the two must divide (checked when both are valid). */
static void parse_parallel(const cv_section *root, run_config *cfg, bool batch_ok)
{
    cv_section s;
    cv_section_open(&s, root, "parallel");
    cv_check_keys(&s, parallel_keys, -1, NULL, NULL);
    if (get_int_field(&s, "ranks", false, 1, MAX_RANKS, &cfg->ranks) != CV_OK || !batch_ok ||
        cfg->data.batch_size % cfg->ranks == 0)
        return;
    cv_section d;
    cv_section_open(&d, root, "data");
    const ynode *at = cv_get(&d, "batch_size");
    cv_error(root->errs, at ? "data.batch_size" : "parallel.ranks", at ? at : cv_get(&s, "ranks"),
             "data.batch_size (%d) must be divisible by parallel.ranks (%d): each rank trains an "
             "equal slice of every batch", cfg->data.batch_size, cfg->ranks);
}

/* ---- the whole config -------------------------------------------------- */

/* A name from a file's stem (or ?name=) obeys the rules of `name:`: at most
 * CFG_NAME_MAX bytes (cut at a character boundary), control bytes made '_'. */
static char *default_name(const char *stem)
{
    size_t n = strlen(stem);
    if (n > CFG_NAME_MAX) {
        n = CFG_NAME_MAX;
        while (n > 0 && ((unsigned char)stem[n] & 0xC0) == 0x80)
            n--;   /* not inside a UTF-8 sequence */
    }
    char *s = xstrndup(stem, n);
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '_';
    return s;
}

static void set_defaults(run_config *cfg, const cfg_parse_opts *opts)
{
    memset(cfg, 0, sizeof *cfg);
    bool have_default = opts && opts->default_name && opts->default_name[0];
    cfg->name = default_name(have_default ? opts->default_name : "run");
    cfg->threads = 1;
    cfg->ranks = 1;
    cfg->model.activation = ACT_RELU;
    cfg->model.vocab_size = 256;
    cfg->data.batch_size = 32;
    cfg->data.noise = 0.01;
    cfg->optim = (optim_cfg){.type = OPT_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999,
                             .eps = 1e-8, .weight_decay = 0.01, .ns_steps = 5,
                             .adjust_lr = MUON_ADJUST_ORIGINAL,
                             .adamw = {.lr = 3e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-10}};
    cfg->sched.type = SCHED_COSINE;
    cfg->train = (train_cfg){.log_every = 10, .checkpoint_every = 500, .eval_every = 0};
}

/* "12.0 GiB" */
static void format_bytes(size_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes / (1024.0 * 1024.0);
    int u = 0;
    while (v >= 1024.0 && u < NELEM(units) - 1) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, size, "%.1f %s", v, units[u]);
}

static void check_memory(const cv_section *root, const run_config *cfg, const cfg_parse_opts *opts)
{
    size_t limit = opts && opts->max_model_bytes ? opts->max_model_bytes : CFG_DEFAULT_MAX_MODEL_BYTES;
    size_t need = cfg_model_bytes(cfg);
    if (need <= limit)
        return;
    char a[32], b[32];
    format_bytes(need, a, sizeof a);
    format_bytes(limit, b, sizeof b);
    cv_section s;
    cv_section_open(&s, root, "model");
    cv_error(root->errs, "model", s.at, "model needs about %s, more than the %s allowed", a, b);
}

static void validate(const ynode *doc, run_config *cfg, const cfg_parse_opts *opts,
                     diag_list_t *errs)
{
    cv_section root;
    cv_section_root(&root, errs, doc);
    const ynode *sweep = ymap_get(doc, "sweep");
    if (sweep) {
        /* An experiment, not one run: only the sweep reader (sweep.h) takes
         * it, one whole run config per trial. */
        cv_error(errs, "sweep", sweep,
                 "this file is an experiment (a sweep), not one run config: POST it to /experiments "
                 "(`trainctl submit` does) to run its trials; `trainctl validate` checks every trial "
                 "and `trainctl schedule` plots them");
        ynode *copy = ytree_clone(doc);
        ymap_delete(copy, "sweep");
        validate(copy, cfg, opts, errs);
        ytree_free(copy);
        return;
    }
    cv_check_keys(&root, root_keys, -1, NULL, NULL);
    parse_top(&root, cfg);

    size_t mark = errs->n;
    int mtype = parse_model(&root, &cfg->model);
    parse_data(&root, cfg, mtype);
    bool model_and_data_ok = errs->n == mark;
    parse_parallel(&root, cfg, model_and_data_ok);
    if (model_and_data_ok)
        check_text_vocab(&root, cfg);

    bool lr_ok = parse_optimizer(&root, &cfg->optim);
    if (model_and_data_ok)
        check_muon_model(&root, cfg);
    cfg_parse_schedule(&root, cfg, lr_ok);
    parse_train(&root, &cfg->train);
    check_keep_every(&root, cfg);
    if (model_and_data_ok)
        check_memory(&root, cfg, opts);
}

/* Keeps the first MAX_ERRORS - 1 problems added since `before` and replaces
 * the rest by one line saying how many there were, so a file of 10^5 bad
 * keys does not become a 10 MB job object. */
static void cap_errors(diag_list_t *errs, size_t before)
{
    size_t n = errs->n - before;
    if (n <= MAX_ERRORS)
        return;
    size_t keep = before + MAX_ERRORS - 1;
    for (size_t i = keep; i < errs->n; i++) {
        free(errs->items[i].path);
        free(errs->items[i].message);
    }
    errs->n = keep;
    diag_add(errs, "", 0, 0, "%zu more problems not listed", n - (MAX_ERRORS - 1));
}

int cfg_parse(const char *buf, size_t len, const cfg_parse_opts *opts, run_config *out,
              diag_list_t *errs)
{
    memset(out, 0, sizeof *out);
    size_t before = errs->n;
    ynode *doc = ytree_parse(buf, len, errs);
    if (!doc) {
        cap_errors(errs, before);
        return -1;
    }
    int rc = cfg_validate_tree(doc, opts, out, errs);
    ytree_free(doc);
    return rc;
}

int cfg_validate_tree(const ynode *doc, const cfg_parse_opts *opts, run_config *out, diag_list_t *errs)
{
    memset(out, 0, sizeof *out);
    size_t before = errs->n;
    run_config cfg;
    set_defaults(&cfg, opts);
    if (doc->kind != YNODE_MAP) {
        char got[160];
        cv_error(errs, "", doc, "the config must be a mapping of keys to values, got %s",
                 cv_describe(doc, got, sizeof got));
    } else {
        validate(doc, &cfg, opts, errs);
    }
    if (errs->n != before) {
        cap_errors(errs, before);
        cfg_free(&cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

/* "runs/cosine-demo.yaml" -> "cosine-demo" (malloc'd). */
static char *file_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    static const char *const exts[] = {".yaml", ".yml"};
    for (int i = 0; i < NELEM(exts); i++) {
        size_t el = strlen(exts[i]);
        if (len > el && strcmp(base + len - el, exts[i]) == 0) {
            len -= el;
            break;
        }
    }
    return xstrndup(base, len);
}

int cfg_load_file(const char *path, const cfg_parse_opts *opts, run_config *out,
                  diag_list_t *errs)
{
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    int rc = read_file(path, CFG_MAX_FILE_BYTES, &buf, &len);
    if (rc == -EFBIG) {
        diag_add(errs, "", 0, 0, "file is larger than %u MiB", CFG_MAX_FILE_BYTES >> 20);
        return -1;
    }
    if (rc < 0) {
        diag_add(errs, "", 0, 0, "cannot read %s: %s", path, file_error_text(rc));
        return -1;
    }
    cfg_parse_opts o = opts ? *opts : (cfg_parse_opts){0};
    char *stem = NULL;
    if (!o.default_name)
        o.default_name = stem = file_stem(path);
    rc = cfg_parse(buf, len, &o, out, errs);
    free(stem);
    free(buf);
    return rc;
}

void cfg_free(run_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->name);
    free(cfg->data.path);
    memset(cfg, 0, sizeof *cfg);
}

int cfg_rank_threads(int config_threads, int budget, int ranks)
{
    int share = ranks > 1 ? budget / ranks : budget;
    int want = config_threads > 0 ? config_threads : 1;
    int n = want < share ? want : share;
    return n > 0 ? n : 1;
}

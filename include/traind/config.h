/*
 * config — the run config of traind-run.yaml(5): parsed from YAML, validated, every
 * default filled in, every problem reported at once with its key path and
 * position.
 */
#ifndef TRAIND_CONFIG_H
#define TRAIND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "traind/diag.h"

struct cJSON;

#define CFG_MAX_HIDDEN 16
#define CFG_MAX_MILESTONES 64
#define CFG_MAX_POINTS 256
#define CFG_MAX_KEEP_STEPS 64
#define CFG_MAX_KEPT 1000          /* checkpoints a train.keep_every below the floor may keep over a run */
#define CFG_KEEP_EVERY_FLOOR 100   /* train.keep_every from which any count is kept */
#define CFG_MAX_FILE_BYTES (1u << 20)
#define CFG_NAME_MAX 128    /* bytes of a name (name:, or the default from a stem) */

typedef enum { MODEL_LINEAR, MODEL_MLP, MODEL_GPT } model_type;
typedef enum { ACT_RELU, ACT_GELU, ACT_TANH } activation_type;
typedef enum { DATA_SYNTHETIC, DATA_CSV, DATA_TEXT, DATA_TOKENS } data_kind;
typedef enum { OPT_ADAMW, OPT_ADAM, OPT_SGD, OPT_SCHEDULE_FREE_ADAMW, OPT_MUON } optim_type;
/* optimizer.adjust_lr of muon: Keller Jordan's sqrt(max(1, rows/cols)), or
 * Moonshot's 0.2·sqrt(max(rows, cols)) (an update RMS like AdamW's) */
typedef enum { MUON_ADJUST_ORIGINAL, MUON_ADJUST_MATCH_RMS_ADAMW } muon_adjust;
typedef enum {
    SCHED_CONSTANT, SCHED_CONSTANT_WITH_WARMUP, SCHED_LINEAR, SCHED_COSINE,
    SCHED_COSINE_WITH_RESTARTS, SCHED_POLYNOMIAL, SCHED_INVERSE_SQRT,
    SCHED_WSD, SCHED_STEP, SCHED_MULTISTEP, SCHED_EXPONENTIAL,
    SCHED_ONECYCLE, SCHED_PIECEWISE
} sched_type;
typedef enum { SHAPE_LINEAR, SHAPE_COSINE, SHAPE_1_SQRT } wsd_shape;  /* warmup_type / decay_type */

typedef struct model_cfg {
    model_type type;
    int input_dim, output_dim;          /* linear, mlp */
    int hidden[CFG_MAX_HIDDEN];         /* mlp */
    int n_hidden;
    activation_type activation;         /* mlp; default relu (as torch_ref.py) */
    int vocab_size, context, d_model, layers, heads;   /* gpt */
} model_cfg;

typedef struct data_cfg {
    data_kind kind;
    int batch_size;                     /* default 32 */
    char *path;                         /* as written in the config; NULL if absent */
    int path_line, path_column;         /* where data.path was written (for cfg_resolve_data_path errors) */
    double noise;                       /* synthetic; default 0.01 */
    double eval_fraction;               /* default 0 */
} data_cfg;

typedef struct optim_cfg {
    optim_type type;
    double lr;                          /* default 1e-3 */
    double beta1, beta2;                /* default 0.9, 0.999 */
    double eps;                         /* default 1e-8 */
    double weight_decay;                /* default 0.01 for adamw, 0 otherwise */
    double momentum;                    /* sgd (default 0), muon (default 0.95) */
    bool nesterov;                      /* sgd (default false), muon (default true) */
    double grad_clip;                   /* 0 = off */
    /* schedule_free_adamw (traind/optim_sf.h); lr defaults to 0.0025 and
     * weight_decay to 0 for it, as in the reference */
    long sf_warmup_steps;               /* optimizer.warmup_steps, default 0 */
    double sf_r;                        /* optimizer.r, default 0 */
    double sf_weight_lr_power;          /* optimizer.weight_lr_power, default 2 */
    /* muon (traind/optim_muon.h): lr, weight_decay, momentum and nesterov
     * above are those of the hidden matrices; the other tensors get AdamW
     * with optimizer.adamw's own keys, its lr scaled by the schedule as lr is */
    int ns_steps;                       /* Newton-Schulz iterations; default 5 */
    muon_adjust adjust_lr;              /* default original */
    struct {
        double lr;                      /* default 3e-4 */
        double beta1, beta2;            /* default 0.9, 0.95 */
        double eps;                     /* default 1e-10 */
        double weight_decay;            /* default 0 */
    } adamw;
} optim_cfg;

typedef struct sched_cfg {
    sched_type type;                    /* default cosine */
    long total_steps;                   /* required, >= 1 */
    long warmup_steps;                  /* resolved: warmup_ratio already applied */
    double min_lr_ratio;                /* resolved: min_lr / optimizer.lr already applied */
    double warmup_start_ratio;          /* default 0 */
    double cycles;                      /* cosine_with_restarts; default 1 */
    double power;                       /* polynomial; default 1 */
    long timescale;                     /* inverse_sqrt; default W, or 10000 if W == 0 */
    wsd_shape warmup_type, decay_type;  /* wsd; default linear, cosine */
    long decay_steps;                   /* wsd; resolved from decay_steps/decay_ratio/stable_steps */
    long step_size;                     /* step */
    double gamma;                       /* step, multistep (default 0.1), exponential (required) */
    long milestones[CFG_MAX_MILESTONES];
    int n_milestones;
    double pct_start, div_factor, final_div_factor;   /* onecycle: 0.3, 25, 1e4 */
    bool anneal_cos;                    /* onecycle anneal: cos (true) or linear */
    bool three_phase;
    long point_step[CFG_MAX_POINTS];    /* piecewise */
    double point_ratio[CFG_MAX_POINTS];
    int n_points;
} sched_cfg;

typedef struct train_cfg {
    long log_every;                     /* default 10 */
    long checkpoint_every;              /* default 500; 0 = only at end/cancel/SIGTERM */
    long eval_every;                    /* default 0 */
    long keep_checkpoints;              /* the newest N kept under checkpoints/ besides the latest; default 0 */
    long keep_every;                    /* every K-th step's checkpoint kept for good; default 0 = none */
    /* train.keep_steps: steps, ascending, at which a metrics point is logged
     * (with eval_loss when the data has an eval split) and the checkpoint is
     * kept for good — what an ASHA sweep's rungs need (sweep.h) */
    long keep_steps[CFG_MAX_KEEP_STEPS];
    int n_keep_steps;
} train_cfg;

typedef struct run_config {
    char *name;
    uint64_t seed;                      /* default 0 */
    int threads;                        /* default 1; per rank */
    int ranks;                          /* parallel.ranks: data-parallel processes, default 1;
                                         * divides data.batch_size; not in cfg_hash (a checkpoint
                                         * resumes on any number of ranks) */
    model_cfg model;
    data_cfg data;
    optim_cfg optim;
    sched_cfg sched;
    train_cfg train;
} run_config;

typedef struct cfg_parse_opts {
    const char *default_name;           /* used when the config has no name (the file's stem) */
    size_t max_model_bytes;             /* memory cap for the model estimate; 0 = CFG_DEFAULT_MAX_MODEL_BYTES */
} cfg_parse_opts;

#define CFG_DEFAULT_MAX_MODEL_BYTES ((size_t)8 << 30)

/* Parses and validates a run config.  On success returns 0 and fills *out
 * (free with cfg_free).  On failure returns -1 with every problem in errs and
 * *out zeroed (nothing to free).  Never aborts on bad input.
 *
 * Rules beyond the types above: a null value is an error for every key,
 * except that a section written with nothing under it ("train:") is an empty
 * section; seed is 0..2^53-1 (exact in JSON); name defaults to
 * opts->default_name, else "run".  At most 100 problems are listed; past
 * that the last entry says how many more there were. */
int cfg_parse(const char *buf, size_t len, const cfg_parse_opts *opts,
              run_config *out, diag_list_t *errs);

/* cfg_parse of a document already parsed (sweep trials are trees built
 * from the file's; errors keep the nodes' marks). */
struct ynode;
int cfg_validate_tree(const struct ynode *doc, const cfg_parse_opts *opts, run_config *out,
                      diag_list_t *errs);

/* Is "section.key" (or a top-level "key") a key of the run config?  When not,
 * hint gets the nearest known path, or "" when none is close. */
bool cfg_key_path_known(const char *path, char *hint, size_t hint_size);

/* Reads path (capped at CFG_MAX_FILE_BYTES) and cfg_parse()s it; the default
 * name is the file's stem unless opts gives one. */
int cfg_load_file(const char *path, const cfg_parse_opts *opts,
                  run_config *out, diag_list_t *errs);

void cfg_free(run_config *cfg);

/* A stable 64-bit hash of every field that affects the numbers (not name,
 * not threads' cap, not log/checkpoint cadence).  Stored in checkpoints. */
uint64_t cfg_hash(const run_config *cfg);

/* Bytes the training process will need for the model: parameters, gradients,
 * optimizer state and activations at the configured batch size. */
size_t cfg_model_bytes(const run_config *cfg);

/* Warnings about a valid config: what it may do but probably should not
 * (schedule_free_adamw under a decaying schedule).  Appends them to warns;
 * `trainctl validate` prints them.  Never fails. */
void cfg_warnings(const run_config *cfg, diag_list_t *warns);

/* The config with every default filled in, as JSON (the job object's
 * "config").  Caller owns the result (cJSON_Delete). */
struct cJSON *cfg_to_json(const run_config *cfg);

/* Number of trainable parameters of the configured model. */
size_t cfg_param_count(const model_cfg *m);

/* The compute threads each of a job's ranks uses (traind-run.yaml(5),
 * threads and PARALLEL; traind.yaml(5), threads_per_job): the config's
 * threads, capped by the rank's share of the job's budget, budget / ranks,
 * and never below 1.  The one rule: the daemon hands it to either executor
 * (mpirun's ranks here, --cpus-per-task under Slurm) and the worker applies
 * it to the budget it was given (ranks = 1 there: the budget is per rank). */
int cfg_rank_threads(int config_threads, int budget, int ranks);

/* The config spelling of each enum value ("cosine", "1-sqrt", ...). */
const char *sched_type_name(sched_type t);
const char *model_type_name(model_type t);
const char *activation_name(activation_type t);
const char *data_kind_name(data_kind k);
const char *optim_type_name(optim_type t);
const char *muon_adjust_name(muon_adjust a);
const char *wsd_shape_name(wsd_shape s);

/* Resolves cfg->data.path to an absolute, symlink-free path (malloc'd).
 * Returns NULL with no error when the config has no data.path.
 *   n_dirs > 0 (the daemon): a relative path is relative to data_dirs[0];
 *     the resolved path must lie inside (the realpath of) one of data_dirs.
 *   n_dirs == 0 (trainctl): a relative path is relative to base_dir (the
 *     config's folder; NULL = the working directory).
 * The file must exist and be a regular file.  Errors (returning NULL) are
 * added to errs at path "data.path". */
char *cfg_resolve_data_path(const run_config *cfg, const char *base_dir, char *const *data_dirs,
                            int n_dirs, diag_list_t *errs);

#endif

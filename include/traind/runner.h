/*
 * runner — trains one run config into a run directory, end to end: data,
 * model, schedule, optimizer, clipping, metrics.jsonl, checkpoint.bin,
 * resume, and a clean stop on request.  The one training loop of the
 * project: `trainctl run` drives it in the foreground and the daemon's worker
 * process drives it for a job; both only differ in what they do with events.
 *
 * Files in out_dir:
 *   metrics.jsonl   {"step","lr","loss","loss_avg","grad_norm","time"[,"eval_loss"]} per
 *                   logged step, appended one whole line per write() (a write that fails part
 *                   way is cut back off); cut back to the checkpoint's step on resume
 *   checkpoint.bin  replaced atomically every checkpoint_every steps, at each of train.keep_steps,
 *                   at the end, on stop and at a pause
 *   trainer_state.json  the history as HuggingFace's Trainer writes it (hf_state.h), rewritten
 *                   whenever training stops (the end, a stop, a failure)
 */
#ifndef TRAIND_RUNNER_H
#define TRAIND_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include "traind/config.h"
#include "traind/dist.h"
#include "traind/train_point.h"

typedef enum {
    RUN_EVENT_START,       /* training begins (step = resumed step, 0 if fresh) */
    RUN_EVENT_NOTICE,      /* something the user should know: message (e.g. checkpoint refused) */
    RUN_EVENT_LOG,         /* a metrics point was written (every log_every steps and the last) */
    RUN_EVENT_TICK,        /* progress between log points, at most every tick_interval_s */
    RUN_EVENT_CHECKPOINT,  /* checkpoint.bin now holds `step` */
    RUN_EVENT_EVAL,        /* eval_loss measured at `step` */
} run_event_type;

typedef struct run_event {
    run_event_type type;
    train_point pt;        /* pt.time: seconds of training (the resumed run's included) */
    long total_steps;
    long checkpoint_step;  /* last checkpointed step, -1 if none yet */
    const char *message;   /* RUN_EVENT_NOTICE */
} run_event;

/* An lr probe (the LR range test, traind/lrfind.h) takes the schedule's
 * place: the run trains `steps` updates (not schedule.total_steps), the
 * update at 0-based step s uses lr(ctx, s), and before it record(ctx, s,
 * lr, loss, grad_norm) sees the batch's loss — a false return ends the run
 * there with RUN_OK (a non-finite loss or norm goes to record too, instead
 * of failing the run).  A probed run has no eval and writes nothing:
 * out_dir, fresh, fork_from and pause_at are not used. */
typedef struct runner_probe {
    long steps;
    double (*lr)(void *ctx, long step);
    bool (*record)(void *ctx, long step, double lr, double loss, double grad_norm);
    void *ctx;
} runner_probe;

typedef struct runner_opts {
    const char *out_dir;              /* created if missing */
    const char *data_path;            /* resolved data file, or NULL */
    int threads;                      /* compute threads, >= 1 */
    bool fresh;                       /* ignore an existing checkpoint */
    /* A fork (traind/fork.h): with no checkpoint.bin of its own yet, the run
     * starts from this kept checkpoint of its parent (which must share its
     * lineage, else RUN_FAILED), and its metrics.jsonl from the parent's
     * points up to that step (fork_metrics, the parent's metrics.jsonl). */
    const char *fork_from;
    const char *fork_metrics;
    volatile sig_atomic_t *stop;      /* when it becomes nonzero: checkpoint and return RUN_STOPPED */
    double tick_interval_s;           /* 0 = no TICK events */
    void (*on_event)(void *ctx, const run_event *ev);
    void *ctx;
    /* Data-parallel: this process is rank dist->rank of dist->size (traind/dist.h);
     * NULL = one process.  Every rank calls runner_run with the same cfg and out_dir;
     * only rank 0 writes files and gets events. */
    dist_t *dist;
    /* > 0: the run pauses at this step — checkpoints there and returns
     * RUN_PAUSED (at once, without training, when it starts at that step).
     * A pause changes no number: resumed, the run goes on bit-identically.
     * The daemon pauses an ASHA trial at each rung (traind/asha.h). */
    long pause_at;
    /* Non-NULL: an lr range test (see runner_probe); nothing is written. */
    const runner_probe *probe;
} runner_opts;

typedef enum { RUN_OK = 0, RUN_STOPPED = 1, RUN_FAILED = 2, RUN_PAUSED = 3 } run_result;

/* Trains cfg to total_steps (resuming from out_dir/checkpoint.bin when it
 * holds this config, unless fresh; a damaged one falls back to the newest
 * intact kept checkpoint, then a fork's fork point, and with none intact
 * the run fails rather than start over).  On RUN_FAILED err says why, e.g.
 * "loss is NaN at step 812" or "cannot write checkpoint.bin: No space left on device". */
run_result runner_run(const run_config *cfg, const runner_opts *opts, char *err, size_t errlen);

/* Loads only the model parameters of a checkpoint written by runner_run
 * for cfg (the config hash must match) into params (n floats): for tools
 * such as `trainctl sample`.  Returns 0, or -1 with a message in err. */
int runner_load_params(const run_config *cfg, const char *ckpt_path, float *params, size_t n,
                       char *err, size_t errlen);

#endif

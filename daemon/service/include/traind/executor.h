/*
 * executor — where a job's training process runs.  The job table (jobs.c)
 * decides what runs and when; an executor only starts, watches and stops one
 * job's training, so the table's state machine is the same whether the
 * process is forked here or placed by a cluster scheduler.
 *
 *   local  (executor_local.c)  today's behaviour: /proc/self/exe --worker,
 *                              progress on a pipe (traind/supervisor.h)
 *   slurm  (executor_slurm.c)  sbatch of the same worker; progress through the
 *                              job directory; state from scontrol
 *
 * Every call is on the loop thread and none of them blocks it.  Functions
 * returning int return 0 or a negative errno value.
 */
#ifndef TRAIND_EXECUTOR_H
#define TRAIND_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "traind/dconfig.h"
#include "traind/progress.h"

#define EXEC_SCHED_ID_MAX 31

typedef struct executor executor;
typedef struct exec_job exec_job;

/* How a job's training ended, as far as its executor can tell. */
typedef struct exec_end {
    int64_t exit_status;      /* the worker's exit code (WORKER_EXIT_*) when term_signal == 0 */
    int term_signal;          /* the signal that killed it; 0 = it exited */
    /* A scheduler's final state of the job ("COMPLETED", "FAILED", "TIMEOUT",
     * "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", ...), "LOST" when
     * the scheduler no longer knows the job, "SUBMIT_FAILED" when it never took
     * it; NULL for the local executor. */
    const char *sched_state;
    const char *reason;       /* the scheduler's reason or error text, or NULL */
    bool detached;            /* not ended: left running outside traind (slurm, at shutdown) */
} exec_end;

typedef struct exec_callbacks {
    /* Every progress line, in order. */
    void (*on_msg)(void *ctx, const progress_msg *m);
    /* The scheduler's view of a job still alive changed: running or waiting
     * (with its reason, e.g. "Resources").  Never called by the local executor. */
    void (*on_sched)(void *ctx, bool running, const char *sched_state, const char *reason);
    /* Once, at the end; the exec_job is freed right after this returns. */
    void (*on_exit)(void *ctx, const exec_end *e);
} exec_callbacks;

typedef struct exec_spec {
    const char *job_id;       /* traind's id (names the Slurm job "traind-<id>") */
    const char *job_dir;      /* absolute */
    int threads;              /* training threads (--cpus-per-task under slurm) */
    int ranks;                /* processes: parallel.ranks (local: N ranks under mpirun;
                                 slurm: --ntasks=N, the ranks an srun step) */
    const char *mpi_worker;   /* ranks > 1: the traind-mpi-worker binary */
    char *const *data_dirs;
    size_t n_data_dirs;
    long pause_at;            /* > 0: the worker pauses there (WORKER_EXIT_PAUSED); local only */
} exec_spec;

/* exe: the binary that runs `--worker` (the daemon's own). */
executor *executor_local_new(uv_loop_t *loop, const char *exe);
executor *executor_slurm_new(uv_loop_t *loop, const char *exe, const dconfig_slurm *cfg);
/* c->executor picks one of the above. */
executor *executor_new(uv_loop_t *loop, const char *exe, const dconfig *c);
void executor_free(executor *ex);

const char *executor_name(const executor *ex);
/* true: a started job is running at once (local); false: it waits for the
 * scheduler and on_sched says when it runs (slurm). */
bool executor_starts_running(const executor *ex);

/* Starts a job's training.  On failure nothing is left and on_exit never runs. */
int exec_start(executor *ex, const exec_spec *spec, const exec_callbacks *cb, void *ctx, exec_job **out);

/* Watches a job a previous traind started under sched_id (the id kept in its
 * job directory) instead of starting it again.  -ENOTSUP for the local
 * executor (its processes die with the daemon). */
int exec_adopt(executor *ex, const exec_spec *spec, const char *sched_id, const exec_callbacks *cb, void *ctx,
               exec_job **out);

/* Cancel: checkpoint and stop (local SIGTERM; slurm scancel). */
int exec_cancel(exec_job *x);
/* The cancel or stop did not finish in time: local SIGKILL; slurm no-op. */
int exec_kill(exec_job *x);
/* The daemon stops: local jobs checkpoint and stop (on_exit follows); slurm
 * jobs are detached, still running in Slurm (on_exit with detached, at once). */
int exec_shutdown(exec_job *x);

int exec_pid(const exec_job *x);              /* local pid, or 0 */
const char *exec_sched_id(const exec_job *x); /* the scheduler's id ("1234"), or NULL until known */

/* --- the interface each executor fills in --- */
typedef struct executor_ops {
    const char *name;
    bool starts_running;
    int (*start)(executor *ex, const exec_spec *spec, const exec_callbacks *cb, void *ctx, exec_job **out);
    int (*adopt)(executor *ex, const exec_spec *spec, const char *sched_id, const exec_callbacks *cb, void *ctx,
                 exec_job **out);
    int (*cancel)(exec_job *x);
    int (*kill)(exec_job *x);
    int (*shutdown)(exec_job *x);
    int (*pid)(const exec_job *x);
    const char *(*sched_id)(const exec_job *x);
    void (*free)(executor *ex);
} executor_ops;

struct executor {
    const executor_ops *ops;
};

/* The first member of every executor's job. */
struct exec_job {
    executor *ex;
};

#endif

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

/* How a job's training ended, as far as its executor can tell, in the
 * executor's own terms translated into these: the job table (jobs.c) decides
 * from them, once for every executor, whether the job succeeded, failed,
 * crashed (resumed while max_restarts allows), was cancelled or is queued
 * again (traind.yaml(5), max_restarts and EXECUTOR). */
typedef enum exec_outcome {
    EXEC_EXITED,          /* the worker exited by itself with exit_status (WORKER_EXIT_*; any other
                             code is a crash) */
    EXEC_KILLED,          /* the worker was killed by term_signal: a crash */
    EXEC_REQUEUE,         /* the scheduler stopped the worker (it checkpointed) or lost the job, to
                             run it again: time limit, preemption, a job it no longer knows */
    EXEC_CANCELLED,       /* the scheduler cancelled the job: traind's own cancel, or someone's */
    EXEC_NODE_LOST,       /* the scheduler lost a node under the job (Slurm's NODE_FAIL): a crash
                             of the machine, not of the job, resumed from its checkpoint while
                             max_restarts allows */
    EXEC_SCHED_FAILED,    /* the scheduler ended the job for a cause of its own that a new start
                             would not get past (out of memory, boot failure, ...): failed */
    EXEC_NOT_STARTED,     /* the scheduler never took the job (submission refused): failed */
} exec_outcome;

typedef struct exec_end {
    exec_outcome outcome;
    int64_t exit_status;      /* EXEC_EXITED: the worker's exit code */
    int term_signal;          /* EXEC_KILLED: the signal */
    /* The end in the executor's words, for errors and the log ("Slurm job 12
     * ended FAILED (exit code 0:9)"), or NULL: jobs.c says it from
     * exit_status / term_signal (the local executor). */
    const char *what;
    /* Progress lines may be missing at the end (slurm: a file on a shared
     * spool): an exit 0 is then the worker's word that it finished. */
    bool progress_lossy;
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
    int threads;              /* training threads of each rank, cfg_rank_threads (traind/config.h) of
                                 the two below: --threads of every worker, --cpus-per-task under slurm */
    int config_threads;       /* the config's threads, and */
    int threads_per_job;      /* the daemon's: what threads follows from, for messages */
    int ranks;                /* processes: parallel.ranks (local: N ranks under mpirun;
                                 slurm: --ntasks=N, the ranks an srun step) */
    const char *mpi_worker;   /* ranks > 1: the traind-mpi-worker binary */
    char *const *data_dirs;
    size_t n_data_dirs;
    long pause_at;            /* > 0: the worker pauses there (WORKER_EXIT_PAUSED); local only */
} exec_spec;

/* exe: the binary that runs `--worker` (the daemon's own); hostfile: Open
 * MPI's hostfile for N-rank jobs (traind.yaml(5), mpi_hostfile), NULL = every
 * rank on this host. */
executor *executor_local_new(uv_loop_t *loop, const char *exe, const char *hostfile);
executor *executor_slurm_new(uv_loop_t *loop, const char *exe, const dconfig_slurm *cfg);
/* c->executor picks one of the above. */
executor *executor_new(uv_loop_t *loop, const char *exe, const dconfig *c);
void executor_free(executor *ex);

const char *executor_name(const executor *ex);
/* The scheduler's name for the log ("Slurm": "running in Slurm job 12"), or
 * NULL when jobs run here (local). */
const char *executor_sched_name(const executor *ex);
/* true: the executor starts N ranks itself (slurm: srun); false: N ranks
 * need mpirun here (local). */
bool executor_launches_ranks(const executor *ex);
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
    const char *sched_name;
    bool starts_running;
    bool launches_ranks;
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

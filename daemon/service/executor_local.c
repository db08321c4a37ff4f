/*
 * executor_local — jobs forked on this machine: a thin wrapper over the
 * worker of traind/supervisor.h (the daemon re-executes itself with --worker and
 * reads progress from a socket; an N-rank job under mpirun, whose ranks
 * mpi_hostfile may place on other hosts, from a file in the job folder).  It exists so that jobs.c can talk to
 * one interface (traind/executor.h) for both this and Slurm; it adds no
 * behaviour of its own.
 */
#include "traind/executor.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include "traind/util.h"
#include "traind/supervisor.h"

typedef struct local_exec {
    executor base;
    uv_loop_t *loop;
    char *exe;
    char *hostfile;   /* mpi_hostfile, or NULL */
} local_exec;

typedef struct local_job {
    exec_job base;
    worker *w;
    exec_callbacks cb;
    void *ctx;
} local_job;

static void on_msg(void *ctx, const progress_msg *m)
{
    local_job *lj = ctx;
    lj->cb.on_msg(lj->ctx, m);
}

static void on_exit_cb(void *ctx, int64_t exit_status, int term_signal)
{
    local_job *lj = ctx;
    exec_end e = {
        .outcome = term_signal ? EXEC_KILLED : EXEC_EXITED,
        .exit_status = exit_status,
        .term_signal = term_signal,
    };
    lj->cb.on_exit(lj->ctx, &e);
    free(lj);
}

static int local_start(executor *ex, const exec_spec *spec, const exec_callbacks *cb, void *ctx, exec_job **out)
{
    local_exec *le = (local_exec *)ex;
    local_job *lj = xcalloc(1, sizeof *lj);
    lj->base.ex = ex;
    lj->cb = *cb;
    lj->ctx = ctx;
    worker_spec ws = {
        .exe = le->exe,
        .job_dir = spec->job_dir,
        .threads = spec->threads,
        .ranks = spec->ranks,
        .mpi_worker = spec->mpi_worker,
        .data_dirs = spec->data_dirs,
        .n_data_dirs = spec->n_data_dirs,
        .pause_at = spec->pause_at,
        .hostfile = spec->ranks > 1 ? le->hostfile : NULL,
    };
    worker_callbacks wcb = {.on_msg = on_msg, .on_exit = on_exit_cb};
    int rc = worker_spawn(le->loop, &ws, &wcb, lj, &lj->w);
    if (rc < 0) {
        free(lj);
        return rc;
    }
    *out = &lj->base;
    return 0;
}

static int local_cancel(exec_job *x)
{
    return worker_kill(((local_job *)x)->w, SIGTERM);
}

static int local_kill(exec_job *x)
{
    return worker_kill(((local_job *)x)->w, SIGKILL);
}

static int local_pid(const exec_job *x)
{
    return worker_pid(((const local_job *)x)->w);
}

static const char *local_sched_id(const exec_job *x)
{
    (void)x;
    return NULL;
}

static void local_free(executor *ex)
{
    local_exec *le = (local_exec *)ex;
    free(le->exe);
    free(le->hostfile);
    free(le);
}

static const executor_ops local_ops = {
    .name = "local",
    .starts_running = true,
    .start = local_start,
    .adopt = NULL,
    .cancel = local_cancel,
    .kill = local_kill,
    .shutdown = local_cancel,   /* SIGTERM: checkpoint and stop; the job resumes at the next start */
    .pid = local_pid,
    .sched_id = local_sched_id,
    .free = local_free,
};

executor *executor_local_new(uv_loop_t *loop, const char *exe, const char *hostfile)
{
    local_exec *le = xcalloc(1, sizeof *le);
    le->base.ops = &local_ops;
    le->loop = loop;
    le->exe = xstrdup(exe);
    le->hostfile = hostfile ? xstrdup(hostfile) : NULL;
    return &le->base;
}

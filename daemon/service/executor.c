/* executor — dispatch to the local or the Slurm executor.  See traind/executor.h. */
#include "traind/executor.h"

#include <errno.h>

executor *executor_new(uv_loop_t *loop, const char *exe, const dconfig *c)
{
    if (c->executor == DCONFIG_EXEC_SLURM)
        return executor_slurm_new(loop, exe, &c->slurm);
    return executor_local_new(loop, exe, c->mpi_hostfile);
}

void executor_free(executor *ex)
{
    if (ex)
        ex->ops->free(ex);
}

const char *executor_name(const executor *ex)
{
    return ex->ops->name;
}

bool executor_starts_running(const executor *ex)
{
    return ex->ops->starts_running;
}

const char *executor_sched_name(const executor *ex)
{
    return ex->ops->sched_name;
}

bool executor_launches_ranks(const executor *ex)
{
    return ex->ops->launches_ranks;
}

int exec_start(executor *ex, const exec_spec *spec, const exec_callbacks *cb, void *ctx, exec_job **out)
{
    return ex->ops->start(ex, spec, cb, ctx, out);
}

int exec_adopt(executor *ex, const exec_spec *spec, const char *sched_id, const exec_callbacks *cb, void *ctx,
               exec_job **out)
{
    return ex->ops->adopt ? ex->ops->adopt(ex, spec, sched_id, cb, ctx, out) : -ENOTSUP;
}

int exec_cancel(exec_job *x)
{
    return x->ex->ops->cancel(x);
}

int exec_kill(exec_job *x)
{
    return x->ex->ops->kill(x);
}

int exec_shutdown(exec_job *x)
{
    return x->ex->ops->shutdown(x);
}

int exec_pid(const exec_job *x)
{
    return x->ex->ops->pid(x);
}

const char *exec_sched_id(const exec_job *x)
{
    return x->ex->ops->sched_id(x);
}

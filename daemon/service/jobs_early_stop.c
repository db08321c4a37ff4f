/*
 * jobs_early_stop — the job table's side of ASHA early stopping
 * (experiment_asha.h): the hooks an experiment sets, and the two ways a
 * trial held at a rung leaves that hold — released (it trains on, or a
 * stopped one is queued again: a promotion) or stopped (state `stopped`,
 * with the reason).  The pause itself is seen in jobs.c (on_worker_exit:
 * WORKER_EXIT_PAUSED), and start_job asks the hook for the pause step.
 */
#include "jobs_internal.h"

#include <errno.h>
#include <stdlib.h>

#include "traind/log.h"
#include "traind/util.h"

void jobs_set_pause_hooks(job_table *t, const jobs_pause_hooks *h)
{
    t->pause = *h;
}

bool jobs_is_slurm(const job_table *t)
{
    return t->slurm;
}

int jobs_release(job_table *t, const char *id)
{
    job *j = job_find(t, id);
    if (!j)
        return -ENOENT;
    if (j->state == JOB_QUEUED && j->held) {
        j->held = false;
    } else if (j->state == JOB_STOPPED) {
        /* queued again: a job more waiting, admitted as a new one is */
        if (!jobs_admit(t))
            return -EAGAIN;
        /* a compacted ended job: its config and history come back first */
        if (j->config_on_disk && !j->config) {
            j->config = config_from_disk(j);
            j->config_on_disk = !j->config;
        }
        job_set_state(j, JOB_QUEUED);
        j->finished_at = 0;
        free(j->stop_reason);
        j->stop_reason = NULL;
        if (j->hist_on_disk) {
            j->hist_on_disk = false;
            job_load_history(j);
        }
        log_info("job %s: promoted by its experiment; queued to resume from step %ld", j->id, j->checkpoint_step);
    } else {
        return -EALREADY;
    }
    job_persist(j);
    jobs_changed(t);
    jobs_schedule(t);
    return 0;
}

int jobs_stop_early(job_table *t, const char *id, const char *reason)
{
    job *j = job_find(t, id);
    if (!j)
        return -ENOENT;
    if (j->state != JOB_QUEUED || !j->held)
        return -EALREADY;
    j->held = false;
    free(j->stop_reason);
    j->stop_reason = xasprintf("%.512s", reason);
    job_set_ended(j, JOB_STOPPED);
    log_info("job %s: stopped early at step %ld: %s", j->id, j->checkpoint_step, reason);
    /* not thinned (as an ended job's history is): a promotion appends to it again */
    job_persist(j);
    jobs_changed(t);
    jobs_schedule(t);
    return 0;
}

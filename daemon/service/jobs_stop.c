/*
 * jobs_stop — stopping jobs: cancelling one (queued: at once; running:
 * SIGTERM or scancel, recorded in status.json first), and stopping the
 * whole table at shutdown (every process checkpoints; every write lands).
 */
#include "jobs_internal.h"

#include <errno.h>

#include "traind/log.h"
#include "traind/util.h"

/* A cancel's answer: jobs_cancel's done(arg, rc) as an api_done. */
typedef struct cancel_answer {
    api_done done;
    void *arg;
} cancel_answer;

static void cancel_answered(void *arg, int rc)
{
    cancel_answer *a = arg;
    a->done(a->arg, rc, NULL);
    free(a);
}

void jobs_request_cancel(void *jobs, const char *id, api_done done, void *arg)
{
    cancel_answer *a = xmalloc(sizeof *a);
    *a = (cancel_answer){done, arg};
    int rc = jobs_cancel(jobs, id, cancel_answered, a);
    if (rc != API_OK)
        cancel_answered(a, rc);   /* not found, already ended: answered now */
}

int jobs_cancel(job_table *t, const char *id, void (*done)(void *arg, int rc), void *arg)
{
    job *j = job_find(t, id);
    if (!j)
        return -ENOENT;
    if (job_state_ended(j->state))
        return -EALREADY;
    if (j->state == JOB_QUEUED && !j->x) {
        job_set_ended(j, JOB_CANCELLED);
        log_info("job %s: cancelled while queued", j->id);
    } else if (!j->cancel_requested) {
        j->cancel_requested = true;
        if (t->slurm)
            log_info("job %s: cancelling (scancel of Slurm job %s)", j->id, j->sched_id[0] ? j->sched_id : "?");
        else
            log_info("job %s: cancelling (SIGTERM to pid %d)", j->id, j->pid);
        if (j->x) {
            exec_cancel(j->x);
            j->kill_deadline = now_monotonic() + JOBS_STOP_TIMEOUT_S;
        }
    }
    /* the request reaches status.json before the answer goes out */
    if (done)
        job_persist_then(j, done, arg);
    else
        job_persist(j);
    jobs_changed(t);
    return 0;
}

/* --------------------------------------------------------------- shutdown */

void jobs_kill_all(job_table *t)
{
    for (job *j = t->live; j; j = j->live_next) {
        if (j->x) {
            if (!t->slurm)
                log_warn("job %s: killing training process %d", j->id, j->pid);
            exec_kill(j->x);   /* slurm: nothing (the job runs on in Slurm) */
        }
    }
}

bool jobs_shutting_down(const job_table *t)
{
    return t->shutting_down;
}

static void on_tick_closed(uv_handle_t *h)
{
    job_table *t = h->data;
    t->tick_open = false;
    jobs_check_shutdown_done(t);
}

void jobs_check_shutdown_done(job_table *t)
{
    if (!t->shutting_down || t->shutdown_reported)
        return;
    if (t->running > 0)
        return;
    /* last progress of every job to disk (any with some is live) */
    for (job *j = t->live; j; j = j->live_next) {
        if ((j->dirty || j->progress_dirty || j->write_failed) && !j->write_inflight)
            job_persist(j);
    }
    if (t->pending_work > 0 || !jei_writer_idle(t->eidx))
        return;
    if (t->tick_open) {
        if (!uv_is_closing((uv_handle_t *)&t->tick))
            uv_close((uv_handle_t *)&t->tick, on_tick_closed);
        return;
    }
    t->shutdown_reported = true;
    if (t->shutdown_done)
        t->shutdown_done(t->shutdown_arg);
}

void jobs_shutdown(job_table *t, double timeout_s, void (*done)(void *), void *arg)
{
    if (t->shutting_down)
        return;
    t->shutting_down = true;
    t->shutdown_done = done;
    t->shutdown_arg = arg;
    double deadline = now_monotonic() + timeout_s;
    for (job *j = t->live; j; j = j->live_next) {
        if (j->x) {
            if (!t->slurm)
                log_info("job %s: asking training process %d to checkpoint and stop", j->id, j->pid);
            exec_shutdown(j->x);   /* slurm: detached at once (j->x is NULL after) */
            if (j->x && (j->kill_deadline == 0 || j->kill_deadline > deadline))
                j->kill_deadline = deadline;
        }
    }
    if (!t->tick_open && t->running > 0) {
        /* never started: still need the timer for the kill deadline */
        uv_timer_init(t->loop, &t->tick);
        t->tick.data = t;
        t->tick_open = true;
        uv_timer_start(&t->tick, jobs_on_tick, 500, 500);
    }
    jobs_check_shutdown_done(t);
}

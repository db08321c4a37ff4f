/*
 * jobs_stall — the stall watchdog: a running job whose training process
 * reports no progress for too long is killed, every rank of it, and counts
 * as a crash: resumed from its checkpoint while max_restarts allows, with
 * "no progress for N s at step S" in its errors and the log (traind(8), THE JOB
 * OBJECT; the key: stall_timeout_s in traind.yaml(5)).
 *
 * A process that is stopped (SIGSTOP, a node swapping), deadlocked, or
 * waiting in a collective for a rank that is stopped or hung sends nothing,
 * and its exit never comes; one that trains sends a line at every metrics
 * point, eval and checkpoint, and a tick every half second (or step, when a
 * step takes longer: runner.c).  So
 * silence is the sign, measured the same way for both executors (a socket
 * here, progress.jsonl under Slurm).  What is a long silence depends on the
 * job: the timeout is the larger of stall_timeout_s and STALL_FACTOR times
 * the slowest interval between two lines of this process so far, so a job
 * of slow steps or long evals and checkpoint writes gets a longer one.  The
 * clock starts at the process's first line ("start", sent once its data is
 * loaded and its checkpoint read): loading is never counted.
 */
#include "jobs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "traind/log.h"
#include "traind/util.h"

/* The timeout is at least this many times the slowest interval seen. */
#define STALL_FACTOR 10.0
/* A tick this late means the daemon itself did not run (stopped, the
 * machine suspended): the jobs' silence meanwhile is not theirs. */
#define STALL_LOOP_GAP_S 5.0

void job_stall_heard(job *j, bool start)
{
    double now = now_monotonic();
    if (start || j->stall_last <= 0) {
        /* a new process (or one adopted mid-run): its own measure from here */
        j->stall_slowest = 0;
    } else if (now - j->stall_last > j->stall_slowest) {
        j->stall_slowest = now - j->stall_last;
    }
    j->stall_last = now;
}

double job_stall_timeout(const job *j)
{
    double floor_s = j->t->stall_timeout_s;
    if (floor_s <= 0)
        return 0;
    double adaptive = STALL_FACTOR * j->stall_slowest;
    return adaptive > floor_s ? adaptive : floor_s;
}

/* Kills a stalled job's process: SIGKILL here (mpirun, whose ranks die with
 * it by their death signal: a stopped rank cannot checkpoint anyway);
 * scancel under Slurm, which ends every step and rank of the batch job.
 * on_worker_exit then finds stall_msg and counts a crash. */
static void stall_kill(job *j, double silent, double timeout)
{
    free(j->stall_msg);
    j->stall_msg = xasprintf("no progress for %.0f s at step %ld", silent, j->pt.step);
    log_error("job %s: %s (stall timeout %.0f s, the slowest interval between its progress reports %.1f s); "
              "killing its training process", j->id, j->stall_msg, timeout, j->stall_slowest);
    j->stall_last = 0;
    int rc = j->t->slurm ? exec_cancel(j->x) : exec_kill(j->x);
    if (rc < 0 && rc != -ESRCH)
        log_error("job %s: cannot kill its stalled training process %d: %s", j->id, j->pid, strerror(-rc));
}

void job_check_stall(job *j, double now)
{
    job_table *t = j->t;
    /* not watched: no process, none running (queued in Slurm, suspended), not
     * started reporting; nor one that is ending anyway (done or failed by its
     * own word, cancelled, stopping: those have their own deadline) */
    if (!j->x || j->state != JOB_RUNNING || j->stall_last <= 0 || j->stall_msg || j->got_done || j->fail_msg ||
        j->cancel_requested || t->shutting_down || j->kill_deadline > 0)
        return;
    double timeout = job_stall_timeout(j);
    if (timeout > 0 && now - j->stall_last > timeout)
        stall_kill(j, now - j->stall_last, timeout);
}

void jobs_stall_tick(job_table *t, double now)
{
    double gap = t->stall_tick_last > 0 ? now - t->stall_tick_last : 0;
    t->stall_tick_last = now;
    if (gap <= STALL_LOOP_GAP_S)
        return;
    bool any = false;
    for (job *j = t->live; j; j = j->live_next)
        if (j->stall_last > 0) {
            j->stall_last += gap;
            any = true;
        }
    if (any)
        log_warn("the daemon did not run for %.1f s (stopped or suspended); the stall watchdog does not count "
                 "that time against its jobs", gap);
}

/*
 * jobs — the job table, the job states and the FIFO scheduler: jobs are
 * added, change state (job_set_state, the one place), start through the
 * executor, report progress (on_worker_msg: every line a training process
 * sends) and exit.  The other parts of the table are in jobs_*.c (see
 * jobs_internal.h for the map); the contract is traind/jobs.h.
 */
#include "jobs_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/config.h"
#include "traind/disk.h"
#include "traind/events.h"
#include "traind/log.h"
#include "traind/mpilaunch.h"
#include "traind/util.h"
#include "traind/worker.h"
#include "traind/spool.h"

static const char *const state_names[JOB_NSTATES] = {
    "queued", "running", "succeeded", "failed", "cancelled", "rejected", "stopped",
};

const char *job_state_name(job_state s)
{
    return (unsigned)s < JOB_NSTATES ? state_names[s] : "?";
}

int job_state_from_name(const char *name)
{
    for (int i = 0; i < JOB_NSTATES; i++)
        if (name && strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

bool job_state_ended(job_state s)
{
    return s != JOB_QUEUED && s != JOB_RUNNING;
}

static void set_settings(job_table *t, const dconfig *c)
{
    t->max_jobs = c->max_jobs > 0 ? c->max_jobs : 1;
    t->threads_per_job = c->threads_per_job > 0 ? c->threads_per_job : 1;
    t->max_restarts = c->max_restarts;
    t->stall_timeout_s = c->stall_timeout_s;
    t->metrics_keep = c->metrics_keep >= 2 ? c->metrics_keep : 2;
    /* not given: a share of the spool's file system, worked out at start
     * (traind.yaml(5), max_job_disk) */
    t->max_job_disk = c->max_job_disk_set ? c->max_job_disk : t->default_job_disk;
    t->max_model_bytes = c->max_model_memory;
    char **d = strv_dup(c->data_dirs, c->n_data_dirs);
    strv_free(t->data_dirs, t->n_data_dirs);
    t->data_dirs = d;
    t->n_data_dirs = c->n_data_dirs;
}

/* jobs.index's writer went idle: a shutdown may be waiting for it. */
static void eidx_idle(void *ctx)
{
    jobs_check_shutdown_done(ctx);
}

job_table *jobs_new(uv_loop_t *loop, const dconfig *c, const char *exe)
{
    job_table *t = xcalloc(1, sizeof *t);
    t->loop = loop;
    t->spool = xstrdup(c->spool);
    t->jobs_dir = xasprintf("%s/jobs", c->spool);
    t->exe = xstrdup(exe);
    t->next_seq = 1;
    t->ex = executor_new(loop, exe, c);
    t->slurm = c->executor == DCONFIG_EXEC_SLURM;
    t->by_id = job_index_new();
    t->by_key = job_index_new();
    t->eidx = jei_writer_new(loop, c->spool);
    jei_writer_set_on_idle(t->eidx, eidx_idle, t);
    long long fs = disk_fs_size(c->spool);
    t->default_job_disk = dconfig_default_job_disk(fs > 0 ? (unsigned long long)fs : 0);
    set_settings(t, c);
    char lim[32], fsz[32];
    format_bytes(t->max_job_disk, lim, sizeof lim);
    if (fs > 0)
        format_bytes((size_t)fs, fsz, sizeof fsz);
    if (c->max_job_disk_set)
        log_info("max_job_disk %s", t->max_job_disk ? lim : "0 (no limit)");
    else
        log_info("max_job_disk %s (the default: %s%s)", lim, fs > 0 ? "a share of the spool's file system of " :
                 "the spool's file system size is not known", fs > 0 ? fsz : "");
    return t;
}

void jobs_set_on_change(job_table *t, void (*cb)(void *), void *ctx)
{
    t->on_change = cb;
    t->on_change_ctx = ctx;
}

void jobs_changed(job_table *t)
{
    if (t->on_change)
        t->on_change(t->on_change_ctx);
}

job *job_alloc(job_table *t, const char *id)
{
    job *j = xcalloc(1, sizeof *j);
    j->t = t;
    snprintf(j->id, sizeof j->id, "%s", id);
    size_t dl = strlen(t->jobs_dir), il = strlen(j->id);   /* <jobs>/<id>: no printf per job at start-up */
    j->dir = xmalloc(dl + il + 2);
    memcpy(j->dir, t->jobs_dir, dl);
    j->dir[dl] = '/';
    memcpy(j->dir + dl + 1, j->id, il + 1);
    j->checkpoint_step = -1;
    j->requeue_ckpt = -2;
    j->forked_at = -1;
    train_point_clear(&j->pt);
    j->pt.step = 0;
    j->errors = cJSON_CreateArray();
    return j;
}

void job_free(job *j)
{
    durable_wait_drop_all(&j->waiters, -ECANCELED);
    free(j->name);
    free(j->idem_key);
    free(j->parent);
    free(j->experiment);
    free(j->stop_reason);
    cJSON_Delete(j->params);
    free(j->dir);
    free(j->fail_msg);
    free(j->stall_msg);
    free(j->hist);
    free(j->errors_pending);
    cJSON_Delete(j->errors);
    cJSON_Delete(j->config);
    free(j);
}

/* ---- the live list: jobs the tick must look at (a process, a write) ---- */

void job_live_add(job *j)
{
    if (j->live)
        return;
    job_table *t = j->t;
    j->live = true;
    j->live_prev = NULL;
    j->live_next = t->live;
    if (t->live)
        t->live->live_prev = j;
    t->live = j;
}

static void live_del(job *j)
{
    if (!j->live)
        return;
    job_table *t = j->t;
    if (j->live_prev)
        j->live_prev->live_next = j->live_next;
    else
        t->live = j->live_next;
    if (j->live_next)
        j->live_next->live_prev = j->live_prev;
    j->live = false;
    j->live_prev = j->live_next = NULL;
}

/* Nothing pending: neither the tick nor a write needs the job. */
static bool job_quiet(const job *j)
{
    return !j->x && !j->write_inflight && !j->dirty && !j->progress_dirty && !j->write_failed && !j->waiters &&
           !j->hist_loading;
}

/* An ended job that nothing waits on keeps only its summary in memory:
 * its config and metrics history are on disk (status.json, metrics.jsonl)
 * and read from there when asked for. */
/* An ended job's errors stay in memory only as a summary when they are
 * long (a rejected config lists up to 100 problems: some 70 KB of JSON per
 * job, against the README's "well under 1 KiB"): the first problem, cut
 * short, and an entry saying how many more there are.  Every one is still
 * in its status.json, which job_to_json reads them from (as it reads a
 * compacted config).  A summary read back from a jobs.index record is
 * known by that last entry. */
#define JOB_ERRORS_IN_MEMORY 512
#define JOB_ERROR_TEXT_MAX 200

static void add_cut(cJSON *o, const char *k, const cJSON *from)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, k);
    if (cJSON_IsNumber(v)) {
        cJSON_AddNumberToObject(o, k, v->valuedouble);
    } else if (cJSON_IsString(v)) {
        size_t n = strlen(v->valuestring);
        if (n > JOB_ERROR_TEXT_MAX) {
            n = JOB_ERROR_TEXT_MAX;
            while (n > 0 && ((unsigned char)v->valuestring[n] & 0xC0) == 0x80)
                n--;   /* not inside a UTF-8 sequence */
        }
        char *t = xasprintf("%.*s%s", (int)n, v->valuestring, v->valuestring[n] ? "..." : "");
        cJSON_AddStringToObject(o, k, t);
        free(t);
    }
}

bool job_errors_long(size_t json_len)
{
    return json_len > JOB_ERRORS_IN_MEMORY;
}

cJSON *job_errors_summary_of(const cJSON *first, int n, const char *id)
{
    cJSON *sum = cJSON_CreateArray();
    cJSON *f = cJSON_CreateObject();
    static const char *const keys[] = {"path", "line", "column", "message"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        add_cut(f, keys[i], first);
    cJSON_AddItemToArray(sum, f);
    cJSON *more = cJSON_CreateObject();
    char *msg = xasprintf("and %d more problem%s (GET /jobs/%s lists every one)", n - 1, n == 2 ? "" : "s", id);
    cJSON_AddStringToObject(more, "message", msg);
    free(msg);
    cJSON_AddTrueToObject(more, JOB_ERRORS_MORE);
    cJSON_AddItemToArray(sum, more);
    return sum;
}

cJSON *job_errors_summary(const job *j)
{
    if (j->errors_on_disk || !cJSON_IsArray(j->errors))
        return NULL;
    int n = cJSON_GetArraySize(j->errors);
    char *text = n > 1 ? cJSON_PrintUnformatted(j->errors) : NULL;
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (!job_errors_long(len))
        return NULL;
    return job_errors_summary_of(cJSON_GetArrayItem(j->errors, 0), n, j->id);
}

void job_compact_errors(job *j)
{
    if (j->errors_on_disk || !job_state_ended(j->state) || !cJSON_IsArray(j->errors))
        return;
    int n = cJSON_GetArraySize(j->errors);
    const cJSON *last = n ? cJSON_GetArrayItem(j->errors, n - 1) : NULL;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(last, JOB_ERRORS_MORE))) {
        j->errors_on_disk = true;   /* a summary already (a jobs.index record's) */
        return;
    }
    cJSON *sum = job_errors_summary(j);
    if (!sum)
        return;
    cJSON_Delete(j->errors);
    j->errors = sum;
    j->errors_on_disk = true;
}

void job_compact(job *j)
{
    if (!job_state_ended(j->state) || !job_quiet(j))
        return;
    job_compact_errors(j);
    if (j->config) {
        cJSON_Delete(j->config);
        j->config = NULL;
        j->config_on_disk = true;
    }
    free(j->hist);
    j->hist = NULL;
    j->n_hist = j->cap_hist = 0;
    j->hist_on_disk = true;
}

/* Every state change goes through here (once the job is in the table):
 * the counts by state and the queue hint stay right. */
void job_set_state(job *j, job_state s)
{
    job_table *t = j->t;
    if (j->in_table) {
        t->counts[j->state]--;
        t->counts[s]++;
        if (s == JOB_QUEUED && j->pos < t->queue_hint)
            t->queue_hint = j->pos;
    }
    j->state = s;
    events_job_changed(j->id);   /* GET /events: published at the end of this loop turn */
}

void jobs_append(job_table *t, job *j)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->jobs = xrealloc(t->jobs, t->cap * sizeof *t->jobs);
    }
    j->pos = t->n;
    t->jobs[t->n++] = j;
    j->in_table = true;
    t->counts[j->state]++;
    if (j->state == JOB_QUEUED && j->pos < t->queue_hint)
        t->queue_hint = j->pos;
    job_index_put(t->by_id, j->id, j);
    if (j->idem_key)
        job_index_put(t->by_key, j->idem_key, j);
}

job *job_find(const job_table *t, const char *id)
{
    return job_index_get(t->by_id, id);
}

/* Moves the queue hint past the jobs at its head that are not queued
 * (amortized O(1): each job is passed once per time it is queued). */
void jobs_advance_queue_hint(job_table *t)
{
    while (t->queue_hint < t->n && t->jobs[t->queue_hint]->state != JOB_QUEUED)
        t->queue_hint++;
}

/* Queued jobs in t->jobs[from, to). */
int jobs_queued_between(job_table *t, size_t from, size_t to)
{
    int q = 0;
    for (size_t i = from; i < to && i < t->n; i++)
        q += t->jobs[i]->state == JOB_QUEUED;
    return q;
}

/* The 1-based queue position of a queued job. */
int job_queue_position(job *j)
{
    job_table *t = j->t;
    if (!j->in_table)
        return 1;
    if (j->pos == t->n - 1)
        return t->counts[JOB_QUEUED];   /* the newest: behind every other */
    jobs_advance_queue_hint(t);
    return 1 + (j->pos > t->queue_hint ? jobs_queued_between(t, t->queue_hint, j->pos) : 0);
}

void jobs_counts(const job_table *t, int counts[JOB_NSTATES])
{
    memcpy(counts, t->counts, JOB_NSTATES * sizeof *counts);
}
void job_add_error(job *j, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cJSON_GetArraySize(j->errors) >= JOBS_MAX_ERRORS)
        cJSON_DeleteItemFromArray(j->errors, 0);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddItemToArray(j->errors, e);
}

/* ------------------------------------------------------------ the worker */

void job_set_ended(job *j, job_state s)
{
    job_set_state(j, s);
    j->finished_at = now_unix();
    j->pt.steps_per_s = dnan();
}

void job_show_point(job *j, const train_point *p)
{
    train_point was = j->pt;
    j->pt = *p;
    j->pt.step = was.step;
    j->pt.time = was.time;
    j->pt.steps_per_s = was.steps_per_s;
    if (isnan(p->eval_loss))
        j->pt.eval_loss = was.eval_loss;
}

/* A line that cannot describe this job (steps past its end, another
 * length): logged and ignored rather than believed. */
static bool implausible(const job *j, const progress_msg *m)
{
    long T = j->total_steps;
    if (T <= 0)
        return false;
    return m->pt.step > T || m->checkpoint_step > T || (m->total_steps >= 0 && m->total_steps != T);
}

/* "<scheduler> job <id>" for the log when a scheduler runs the job, else NULL. */
static const char *sched_job(const job *j, char *buf, size_t n)
{
    const char *sched = executor_sched_name(j->t->ex);
    if (!sched)
        return NULL;
    snprintf(buf, n, "%s job %s", sched, j->sched_id);
    return buf;
}

static void on_worker_msg(void *ctx, const progress_msg *m)
{
    job *j = ctx;
    if (implausible(j, m)) {
        log_warn("job %s: progress line from pid %d ignored: \"%s\" with step %ld, checkpoint_step %ld, "
                 "total_steps %ld does not fit a job of %ld steps", j->id, j->pid, progress_ev_name(m->ev),
                 m->pt.step, m->checkpoint_step, m->total_steps, j->total_steps);
        return;
    }
    job_stall_heard(j, m->ev == PEV_START);
    switch (m->ev) {
    case PEV_START:
        if (!executor_starts_running(j->t->ex) && j->state == JOB_QUEUED && j->x) {
            /* the worker runs: its scheduler's "running" may not have been polled yet */
            job_set_state(j, JOB_RUNNING);
            j->sched_reason[0] = '\0';
            if (j->started_at <= 0)
                j->started_at = now_unix();
        }
        if (m->pt.step >= 0)
            j->pt.step = m->pt.step;
        if (m->total_steps > 0)
            j->total_steps = m->total_steps;
        j->checkpoint_step = m->checkpoint_step;
        while (j->n_hist > 0 && j->hist[j->n_hist - 1].step > j->pt.step)
            j->n_hist--;   /* metrics.jsonl was cut back to the checkpoint too */
        if (j->pt.step == 0) {
            j->pt.lr = j->pt.loss = j->pt.loss_avg = j->pt.grad_norm = j->pt.eval_loss = dnan();
        } else if (j->n_hist > 0) {
            /* The numbers shown may be of steps past the checkpoint, which
             * will be trained again (or, resumed at the end, never reported
             * again): show those of the last metrics point kept. */
            job_show_point(j, &j->hist[j->n_hist - 1]);
        }
        char sj[96];
        const char *in = sched_job(j, sj, sizeof sj);
        if (in)
            log_info("job %s: training %s at step %ld of %ld (%s)", j->id,
                     j->pt.step > 0 ? "resumed" : "started", j->pt.step, j->total_steps, in);
        else
            log_info("job %s: training %s at step %ld of %ld (pid %d)", j->id,
                     j->pt.step > 0 ? "resumed" : "started", j->pt.step, j->total_steps, j->pid);
        j->next_disk_check = now_monotonic() + JOBS_DISK_FIRST_CHECK_S;
        job_persist(j);
        return;
    case PEV_NOTICE:
        log_warn("job %s: %s", j->id, m->message);
        job_add_error(j, "%s", m->message);
        job_persist(j);
        return;
    case PEV_LOG:
    case PEV_TICK:
    case PEV_EVAL:
        jobs_check_job_disk(j, now_monotonic());
        if (m->pt.step >= 0)
            j->pt.step = m->pt.step;
        if (m->total_steps > 0)
            j->total_steps = m->total_steps;
        j->pt.lr = m->pt.lr;
        j->pt.loss = m->pt.loss;
        j->pt.grad_norm = m->pt.grad_norm;
        if (m->ev == PEV_LOG)
            j->pt.loss_avg = m->pt.loss_avg;
        if (!isnan(m->pt.eval_loss))
            j->pt.eval_loss = m->pt.eval_loss;
        if (!isnan(m->pt.steps_per_s))
            j->pt.steps_per_s = m->pt.steps_per_s;
        if (m->checkpoint_step >= 0)
            j->checkpoint_step = m->checkpoint_step;
        if (m->ev == PEV_LOG && m->pt.step >= 0) {
            job_hist_push(j, &m->pt);
            events_point(j->id, &m->pt);   /* GET /events */
        }
        j->progress_dirty = true;
        return;
    case PEV_CKPT:
        j->checkpoint_step = m->checkpoint_step >= 0 ? m->checkpoint_step : m->pt.step;
        if (m->pt.step > j->pt.step)
            j->pt.step = m->pt.step;
        j->progress_dirty = true;
        return;
    case PEV_FAILED:
        free(j->fail_msg);
        j->fail_msg = xstrdup(m->message);
        return;
    case PEV_DONE:
        j->got_done = true;
        if (m->pt.step >= 0)
            j->pt.step = m->pt.step;
        if (m->checkpoint_step >= 0)
            j->checkpoint_step = m->checkpoint_step;
        return;
    }
}

/* The process died or failed in a way a new process may get past: resume
 * from the checkpoint while max_restarts allows, else fail.  why_at: why,
 * saying at which step (the error of a resumed job). */
static void crashed_at(job *j, const char *why, const char *why_at)
{
    j->crashes++;
    if (j->crashes <= j->t->max_restarts) {
        log_warn("job %s: %s; resuming from its checkpoint (restart %d of %d)", j->id, why, j->crashes,
                 j->t->max_restarts);
        job_add_error(j, "%s; resumed from the checkpoint at step %ld", why_at,
                  j->checkpoint_step > 0 ? j->checkpoint_step : 0);
        job_set_state(j, JOB_QUEUED);
        j->pt.steps_per_s = dnan();
    } else {
        log_error("job %s: failed: %s", j->id, why);
        job_add_error(j, "%s", why);
        job_set_ended(j, JOB_FAILED);
    }
}

static void crashed(job *j, const char *why)
{
    char at[640];
    snprintf(at, sizeof at, "%s at step %ld", why, j->pt.step);
    crashed_at(j, why, at);
}

/* Killed by the stall watchdog (jobs_stall.c), unless the user's cancel or
 * the daemon's shutdown came meanwhile: that is what it ends as. */
static bool stall_killed(const job *j)
{
    return j->stall_msg && !j->cancel_requested && !j->t->shutting_down;
}

static void end_cleanup(job *j)
{
    job_table *t = j->t;
    free(j->fail_msg);
    j->fail_msg = NULL;
    free(j->stall_msg);
    j->stall_msg = NULL;
    j->stall_last = j->stall_slowest = 0;
    j->got_done = false;
    j->cancel_requested = false;
    j->disk_over = false;
    j->disk_last_bytes = 0;
    j->pid = 0;
    if (job_state_ended(j->state))
        job_thin_history_on_disk(j);
    job_persist(j);
    jobs_changed(t);
    jobs_schedule(t);
    jobs_check_shutdown_done(t);
}

/* The process paused at an ASHA rung: queued and held until its
 * experiment decides (jobs_release, jobs_stop_early: jobs_early_stop.c). */
static void paused_at_rung(job *j)
{
    job_table *t = j->t;
    job_set_state(j, JOB_QUEUED);
    j->held = true;
    j->pt.steps_per_s = dnan();
    long step = j->checkpoint_step;
    char id[SPOOL_ID_MAX + 1], exp[SPOOL_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", j->id);
    snprintf(exp, sizeof exp, "%s", j->experiment);
    char *key = j->idem_key ? xstrdup(j->idem_key) : NULL;
    log_info("job %s: paused at step %ld for its experiment's early-stopping decision", j->id, step);
    end_cleanup(j);
    t->pause.paused(t->pause.ctx, id, exp, key, step);
    free(key);
}

/* How the job's training ended (its executor's outcome, traind/executor.h)
 * decides what the job is now, the same way for every executor: done,
 * failed, crashed (resumed from its checkpoint while max_restarts allows:
 * traind.yaml(5), "a crash, a kill"), cancelled, or queued again. */
static void on_worker_exit(void *ctx, const exec_end *e)
{
    job *j = ctx;
    job_table *t = j->t;
    exec_outcome o = e->outcome;
    int64_t exit_status = e->exit_status;
    int term_signal = e->term_signal;
    j->x = NULL;
    j->kill_deadline = 0;
    t->running--;
    if (e->detached) {
        /* traind stopping, the job left running outside it (executor: slurm):
         * the next traind adopts it by its id; its state stays as it is */
        j->pt.steps_per_s = dnan();
        end_cleanup(j);
        return;
    }
    j->sched_state[0] = j->sched_reason[0] = '\0';
    char why[400], sj[96];
    const char *in = sched_job(j, sj, sizeof sj);
    if (e->what)
        snprintf(why, sizeof why, "%s", e->what);
    else if (o == EXEC_KILLED)
        snprintf(why, sizeof why, "training process killed by signal %d", term_signal);
    else
        snprintf(why, sizeof why, "training process exited with status %lld (see worker.log)",
                 (long long)exit_status);

    bool exited = o == EXEC_EXITED;
    bool finished = exited && exit_status == WORKER_EXIT_OK &&
                    (j->got_done || j->pt.step >= j->total_steps || e->progress_lossy);
    bool failed = exited && exit_status == WORKER_EXIT_FAILED;
    if (!finished && disk_full_message(failed && j->fail_msg ? j->fail_msg : why))
        jobs_wait_for_space(t, j);
    if (j->disk_over && !finished) {
        char limit[32];
        format_bytes(t->max_job_disk, limit, sizeof limit);
        job_add_error(j, "the job's files passed max_job_disk (%s) at step %ld; stopped (checkpoint at step %ld)", limit,
                  j->pt.step, j->checkpoint_step);
        job_set_ended(j, JOB_FAILED);
        log_error("job %s: failed: over max_job_disk (%s)", j->id, limit);
    } else if (finished) {
        j->pt.step = j->total_steps;
        job_set_ended(j, JOB_SUCCEEDED);
        log_info("job %s: succeeded%s%s (%ld steps, loss %.6g)", j->id, in ? " in " : "", in ? in : "", j->pt.step,
                 j->pt.loss);
    } else if (stall_killed(j)) {
        crashed_at(j, j->stall_msg, j->stall_msg);   /* under a scheduler its cancel ends it EXEC_CANCELLED */
    } else if (failed) {
        const char *msg = j->fail_msg ? j->fail_msg : "training failed (see worker.log)";
        job_add_error(j, "%s", msg);
        job_set_ended(j, JOB_FAILED);
        log_error("job %s: failed%s%s: %s", j->id, in ? " in " : "", in ? in : "", msg);
    } else if (j->cancel_requested) {
        job_set_ended(j, JOB_CANCELLED);
        log_info("job %s: cancelled%s%s%s at step %ld (checkpoint at step %ld)", j->id, in ? " (" : "", in ? in : "",
                 in ? ")" : "", j->pt.step, j->checkpoint_step);
    } else if (o == EXEC_NOT_STARTED) {
        job_add_error(j, "%s", why);
        job_set_ended(j, JOB_FAILED);
    } else if (t->shutting_down) {
        /* Stopped for the daemon's shutdown: resumes at the next start. */
        job_set_state(j, JOB_QUEUED);
        j->pt.steps_per_s = dnan();
        log_info("job %s: stopped at step %ld for shutdown (checkpoint at step %ld); resumes at next start",
                 j->id, j->pt.step, j->checkpoint_step);
    } else if (exited && exit_status == WORKER_EXIT_PAUSED && t->pause.paused && j->experiment) {
        paused_at_rung(j);
        return;
    } else if (o == EXEC_CANCELLED || (exited && exit_status == WORKER_EXIT_STOPPED)) {
        /* Someone outside traind stopped it: SIGTERM to the process, or the scheduler's cancel. */
        const char *what = e->what ? e->what : "training process was stopped from outside traind";
        job_add_error(j, "%s at step %ld", what, j->pt.step);
        job_set_ended(j, JOB_CANCELLED);
        log_warn("job %s: %s; cancelled", j->id, e->what ? e->what : "its training process was stopped from outside traind");
    } else if (o == EXEC_REQUEUE && j->checkpoint_step > j->requeue_ckpt) {
        /* Stopped or lost by its scheduler: a fresh start resumes from the checkpoint. */
        char from[64] = "its last checkpoint";
        if (j->checkpoint_step >= 0)
            snprintf(from, sizeof from, "its checkpoint at step %ld", j->checkpoint_step);
        log_warn("job %s: %s at step %ld; requeued to resume from %s", j->id, why, j->pt.step, from);
        job_add_error(j, "%s at step %ld; requeued, resuming from %s", why, j->pt.step, from);
        j->requeue_ckpt = j->checkpoint_step;
        job_set_state(j, JOB_QUEUED);
        j->pt.steps_per_s = dnan();
    } else if (o == EXEC_SCHED_FAILED) {
        job_add_error(j, "%s", why);
        job_set_ended(j, JOB_FAILED);
        log_error("job %s: failed: %s", j->id, why);
    } else if (exited && exit_status == WORKER_EXIT_OK) {
        crashed(j, "training process exited before finishing");
    } else {
        /* killed, exited with any other code, its node lost
         * (EXEC_NODE_LOST), or stopped again by its scheduler without a
         * newer checkpoint: a crash */
        crashed(j, why);
    }
    end_cleanup(j);
}

/* A scheduler's view of the job: it waits in the scheduler's queue (with a
 * reason) or runs. */
static void on_worker_sched(void *ctx, bool running, const char *sched_state, const char *reason)
{
    job *j = ctx;
    snprintf(j->sched_state, sizeof j->sched_state, "%s", sched_state);
    snprintf(j->sched_reason, sizeof j->sched_reason, "%s", reason ? reason : "");
    if (j->x && !j->sched_id[0] && exec_sched_id(j->x))
        snprintf(j->sched_id, sizeof j->sched_id, "%s", exec_sched_id(j->x));
    if (running && j->state == JOB_QUEUED) {
        job_set_state(j, JOB_RUNNING);
        j->sched_reason[0] = '\0';
        if (j->started_at <= 0)
            j->started_at = now_unix();
        char sj[96];
        log_info("job %s: running in %s", j->id, sched_job(j, sj, sizeof sj));
        if (j->stall_last > 0)
            j->stall_last = now_monotonic();   /* suspended or pending meanwhile: not its silence */
    } else if (!running && j->state == JOB_RUNNING) {
        job_set_state(j, JOB_QUEUED);   /* requeued or suspended by its scheduler */
        j->pt.steps_per_s = dnan();
    }
    job_persist(j);
    jobs_changed(j->t);
}

/* The config's threads (traind-run.yaml(5): default 1). */
static int job_config_threads(const job *j)
{
    double want = jobs_json_num(j->config, "threads", 1);
    return want >= 1 && want <= 1024 ? (int)want : 1;
}

/* The threads each of the job's ranks uses, whatever the executor: the
 * config's threads capped by threads_per_job / ranks (cfg_rank_threads,
 * traind.yaml(5) threads_per_job); under Slurm also what is asked for
 * (--cpus-per-task). */
static int job_rank_threads(const job *j, int ranks)
{
    return cfg_rank_threads(job_config_threads(j), j->t->threads_per_job, ranks);
}

/* A job that cannot start at all: failed, with why. */
static int refuse_start(job *j, const char *why)
{
    log_error("job %s: cannot start: %s", j->id, why);
    job_add_error(j, "%s", why);
    job_set_ended(j, JOB_FAILED);
    job_persist(j);
    jobs_changed(j->t);
    return -EINVAL;
}

static exec_spec job_spec(const job *j, int ranks, const char *mpi_worker)
{
    exec_spec spec = {
        .job_id = j->id,
        .job_dir = j->dir,
        /* N ranks share the job's thread budget (checked in start_job) */
        .threads = job_rank_threads(j, ranks),
        .config_threads = job_config_threads(j),
        .threads_per_job = j->t->threads_per_job,
        .ranks = ranks,
        .mpi_worker = mpi_worker,
        .data_dirs = j->t->data_dirs,
        .n_data_dirs = j->t->n_data_dirs,
    };
    return spec;
}

static const exec_callbacks job_callbacks = {
    .on_msg = on_worker_msg,
    .on_sched = on_worker_sched,
    .on_exit = on_worker_exit,
};

static int start_job(job *j)
{
    job_table *t = j->t;
    int ranks = j->ranks > 1 ? j->ranks : 1;
    /* threads_per_job is the job's compute budget: N ranks share it, each
     * gets the config's threads capped by threads_per_job / N
     * (job_rank_threads).  More ranks than the budget is refused rather
     * than silently running N processes on fewer cores than N. */
    if (ranks > t->threads_per_job) {
        char why[256];
        snprintf(why, sizeof why,
                 "parallel.ranks (%d) exceeds the daemon's threads_per_job (%d): each rank needs at "
                 "least one of the job's compute threads", ranks, t->threads_per_job);
        return refuse_start(j, why);
    }
    char *mpi_worker = NULL;
    if (ranks > 1) {
        /* an executor that starts the ranks itself (on the nodes) needs
         * no mpirun here; the local executor does */
        bool own = executor_launches_ranks(t->ex);
        mpi_worker = mpilaunch_worker_path();
        if (!mpi_worker || (!own && !mpilaunch_have_mpirun())) {
            free(mpi_worker);
            return refuse_start(j, own ? "parallel.ranks > 1 needs traind-mpi-worker beside traind"
                                            : "parallel.ranks > 1 needs Open MPI's mpirun on PATH (Debian: "
                                              "openmpi-bin) and traind-mpi-worker beside traind");
        }
    }
    exec_spec spec = job_spec(j, ranks, mpi_worker);
    if (j->experiment && t->pause.pause_at)
        spec.pause_at = t->pause.pause_at(t->pause.ctx, j->id, j->experiment, j->idem_key);
    exec_job *x;
    int rc = exec_start(t->ex, &spec, &job_callbacks, j, &x);
    free(mpi_worker);
    if (rc == UV_ENOSPC || rc == -EDQUOT) {
        /* no room for its log even: it waits, queued, with the rest */
        jobs_wait_for_space(t, j);
        return rc;
    }
    if (rc < 0) {
        log_error("job %s: cannot start its training process: %s", j->id, uv_strerror(rc));
        job_add_error(j, "cannot start the training process: %s", uv_strerror(rc));
        job_set_ended(j, JOB_FAILED);
        job_persist(j);
        jobs_changed(t);
        return rc;
    }
    j->x = x;
    j->pid = exec_pid(x);
    job_live_add(j);
    j->got_done = false;
    j->cancel_requested = false;
    t->running++;
    if (!executor_starts_running(t->ex)) {
        /* queued (in its scheduler's queue) until on_worker_sched says it runs */
        j->sched_id[0] = '\0';
        snprintf(j->sched_state, sizeof j->sched_state, "SUBMITTING");
        j->sched_reason[0] = '\0';
        if (j->started_at > 0)
            j->restarts++;
        const char *sched = executor_sched_name(t->ex);
        log_info("job %s: submitting to %s%s", j->id, sched ? sched : executor_name(t->ex),
                 j->restarts ? " (resuming)" : "");
        job_persist(j);
        jobs_changed(t);
        return 0;
    }
    job_set_state(j, JOB_RUNNING);
    if (j->started_at > 0)
        j->restarts++;
    else
        j->started_at = now_unix();
    if (ranks > 1)
        log_info("job %s: starting %d ranks × %d thread%s under mpirun (pid %d%s)", j->id, ranks,
                 spec.threads, spec.threads == 1 ? "" : "s", j->pid, j->restarts ? ", resuming" : "");
    else
        log_info("job %s: starting (pid %d%s)", j->id, j->pid, j->restarts ? ", resuming" : "");
    job_persist(j);
    jobs_changed(t);
    return 0;
}

void jobs_schedule(job_table *t)
{
    if (!t->started || t->shutting_down || t->space_wait)
        return;
    /* Strict FIFO: a queued job whose files are still being written or read
     * holds the ones behind it back (for a moment) rather than be overtaken. */
    jobs_advance_queue_hint(t);
    for (size_t i = t->queue_hint; i < t->n && t->running < t->max_jobs; i++) {
        job *j = t->jobs[i];
        if (j->state != JOB_QUEUED || j->x || j->held)
            continue;   /* a job waiting in its scheduler's queue has been handed over already; a held one waits */
        if (j->hist_loading)
            break;
        start_job(j);
    }
}

/* ------------------------------------------------------------- the tick */

void jobs_on_tick(uv_timer_t *h)
{
    job_table *t = h->data;
    double now = now_monotonic();
    jobs_stall_tick(t, now);
    jobs_check_disks(t, now);
    /* only the live jobs: a process, or a write pending or failed */
    for (job *j = t->live, *next; j; j = next) {
        next = j->live_next;
        if ((j->progress_dirty || j->write_failed) && !j->write_inflight &&
            now - j->last_write >= JOBS_STATUS_INTERVAL_S)
            job_persist(j);
        if (j->x && j->kill_deadline > 0 && now >= j->kill_deadline) {
            log_warn("job %s: training process %d did not stop in time; killing it", j->id, j->pid);
            exec_kill(j->x);
            j->kill_deadline = 0;
        }
        job_check_stall(j, now);
        if (job_quiet(j)) {
            live_del(j);
            job_compact(j);
            t->compacted_since_trim++;
        }
    }
    /* Jobs that end in a burst (a thousand rejected files taken at once)
     * free their texts and errors together, in the middle of the heap,
     * where glibc keeps them mapped: hand whole free pages back, at most
     * once a tick, so that the daemon's RSS is what it holds (traind(8):
     * an ended job keeps its summary only). */
    if (t->compacted_since_trim >= JOBS_TRIM_AFTER) {
        t->compacted_since_trim = 0;
        malloc_trim(0);
    }
}

/* Jobs a previous traind handed to a scheduler are watched again by their
 * scheduler's job id (exec_adopt), not submitted twice. */
static void adopt_jobs(job_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        job *j = t->jobs[i];
        if (!j->adopt || j->x || job_state_ended(j->state))
            continue;
        j->adopt = false;
        exec_spec spec = job_spec(j, 1, NULL);
        exec_job *x;
        if (exec_adopt(t->ex, &spec, j->sched_id, &job_callbacks, j, &x) < 0) {
            j->sched_id[0] = '\0';
            job_set_state(j, JOB_QUEUED);   /* submitted afresh by jobs_schedule(), resuming */
            continue;
        }
        j->x = x;
        job_live_add(j);
        t->running++;
    }
}

void jobs_start(job_table *t)
{
    if (t->started)
        return;
    t->started = true;
    adopt_jobs(t);
    uv_timer_init(t->loop, &t->tick);
    t->tick.data = t;
    t->tick_open = true;
    uv_timer_start(&t->tick, jobs_on_tick, 500, 500);
    jobs_schedule(t);
}

void jobs_configure(job_table *t, const dconfig *c)
{
    set_settings(t, c);
    jobs_schedule(t);
}

const char *jobs_jobs_dir(const job_table *t)
{
    return t->jobs_dir;
}

uv_loop_t *jobs_loop(const job_table *t)
{
    return t->loop;
}

void jobs_work_begin(job_table *t)
{
    t->pending_work++;
}

void jobs_work_end(job_table *t)
{
    t->pending_work--;
    jobs_check_shutdown_done(t);
}

int jobs_lookup(job_table *t, const char *id, jobs_info *out)
{
    const job *j = job_find(t, id);
    if (!j)
        return -ENOENT;
    out->state = j->state;
    out->checkpoint_step = j->checkpoint_step;
    out->step = j->pt.step;
    out->total_steps = j->total_steps;
    out->loss_avg = j->pt.loss_avg;
    out->eval_loss = j->pt.eval_loss;
    out->started_at = j->started_at;
    out->finished_at = j->finished_at;
    out->held = j->held && j->state == JOB_QUEUED;
    snprintf(out->name, sizeof out->name, "%s", j->name ? j->name : j->id);
    return 0;
}

long jobs_submitting(const job_table *t)
{
    return t->submitting;
}

void jobs_set_admission(job_table *t, bool (*room)(void *ctx), void *ctx)
{
    t->room = room;
    t->room_ctx = ctx;
}

bool jobs_admit(job_table *t)
{
    return !t->room || t->room(t->room_ctx);
}

void jobs_free(job_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        job_free(t->jobs[i]);
    free(t->jobs);
    job_index_free(t->by_id);
    job_index_free(t->by_key);
    jei_writer_free(t->eidx);
    strv_free(t->keys_inflight, t->n_keys_inflight);
    free(t->spool);
    free(t->jobs_dir);
    free(t->exe);
    executor_free(t->ex);
    strv_free(t->data_dirs, t->n_data_dirs);
    free(t);
}

/* jobs — the job table, the scheduler and job persistence.  See traind/jobs.h. */
#include "traind/jobs.h"
#include "traind/forkfile.h"
#include "traind/job_index.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "traind/api.h"
#include "traind/executor.h"
#include "traind/config.h"
#include "traind/disk.h"
#include "traind/history.h"
#include "traind/json.h"
#include "traind/log.h"
#include "traind/mpilaunch.h"
#include "traind/util.h"
#include "traind/worker.h"
#include "traind/yamltree.h"

#define STATUS_MAX_BYTES (16u << 20)
#define HIST_TAIL_BYTES (8u << 20)   /* of a long metrics.jsonl, read whole at start-up */
#define HIST_SAMPLES 2000            /* lines sampled from the rest */

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

/* ------------------------------------------------------------- the table */

/* Someone to tell when status.json holds what the job was when they asked
 * (the first write started after that has completed). */
typedef struct durable_wait {
    struct durable_wait *next;
    unsigned long need;              /* writes_started it waits for */
    void (*cb)(void *arg, int rc);
    void *arg;
} durable_wait;

typedef struct job {
    struct job_table *t;
    char id[SPOOL_ID_MAX + 1];
    char *name;
    char *dir;
    job_state state;
    unsigned long seq;               /* submission order (FIFO) */

    /* progress, NAN / -1 / 0 when unknown */
    long step, total_steps, checkpoint_step;
    double lr, loss, loss_avg, grad_norm, eval_loss, steps_per_s;
    bool has_eval;                   /* the data has an eval split */
    double tokens_per_step;          /* gpt: batch × context; 0 otherwise */
    int ranks;                       /* parallel.ranks: processes under mpirun (1 = no MPI) */
    double submitted_at, started_at, finished_at;   /* unix time, 0 = null */
    int restarts;                    /* times training was resumed by a new process */
    int crashes;                     /* times the process died (counted against max_restarts) */
    cJSON *errors;                   /* array of {path,line,column,message} / {message} */
    cJSON *config;                   /* cfg_to_json, or NULL (rejected) */
    char *idem_key;                  /* the Idempotency-Key it was POSTed with, or NULL */
    char *parent;                    /* a fork: the job it branched from (fork.json), or NULL */
    long forked_at;                  /* a fork: the step it branched at, else -1 */
    char *experiment;                /* a trial: its experiment (trial.json), or NULL */
    cJSON *params;                   /* a trial: its swept values, or NULL */
    bool held;                       /* paused at an ASHA rung: queued, but not started until released */
    char *stop_reason;               /* stopped: why (its experiment's decision), else NULL */

    /* the training process (traind/executor.h) */
    exec_job *x;
    int pid;
    /* executor: slurm — the Slurm job (also in <dir>/slurm_job_id) and what Slurm says */
    char sched_id[EXEC_SCHED_ID_MAX + 1];
    char sched_state[32], sched_reason[128];
    bool adopt;                      /* loaded with a live Slurm job: adopt it, do not submit again */
    long requeue_ckpt;               /* checkpoint_step at the last requeue (-2 = none yet) */
    bool cancel_requested;
    bool got_done;
    char *fail_msg;
    double kill_deadline;            /* monotonic; 0 = none */

    /* persistence */
    bool write_inflight, dirty, progress_dirty;
    double last_write;               /* monotonic */
    bool write_error_logged;
    bool write_failed;               /* the last status.json write failed: the tick retries */

    /* max_job_disk */
    bool disk_over;                  /* over it: stopped, fails when its process has exited */
    bool disk_check_inflight;
    double next_disk_check;          /* monotonic */

    /* callers waiting for a status.json write that starts after they asked */
    struct durable_wait *waiters;
    unsigned long writes_started;

    /* metrics history */
    job_point *hist;
    size_t n_hist, cap_hist;
    bool hist_loading;

    /* scale (job_index.h): the table's bookkeeping */
    size_t pos;                      /* index in t->jobs */
    bool in_table;                   /* counted in t->counts */
    bool live;                       /* on t->live (the tick looks at it) */
    struct job *live_prev, *live_next;
    bool config_on_disk;             /* ended and compacted: config is read from status.json when asked */
    bool hist_on_disk;               /* ended and compacted: history is read from metrics.jsonl when asked */
} job;

struct job_table {
    uv_loop_t *loop;
    char *spool, *jobs_dir, *exe;
    executor *ex;
    bool slurm;                      /* executor: slurm (jobs wait in Slurm's queue, not ours) */
    int max_jobs, threads_per_job, max_restarts;
    long metrics_keep;
    size_t max_job_disk;             /* 0 = no limit */
    bool space_wait;                 /* a job failed for a full disk: nothing starts until there is room */
    bool space_check_inflight;
    double next_space_check;         /* monotonic */
    char **data_dirs;
    size_t n_data_dirs;

    job **jobs;                      /* in seq order */
    size_t n, cap;
    job_index *by_id, *by_key;       /* id → job, Idempotency-Key → job */
    int counts[JOB_NSTATES];         /* jobs by state */
    size_t queue_hint;               /* no job below this index is queued */
    job *live;                       /* jobs with a process or a status.json write pending: what the tick walks */
    unsigned long next_seq;
    int running;
    int pending_work;                /* thread-pool requests in flight */
    long submitting;                 /* POSTs being saved and validated */
    char **keys_inflight;            /* their Idempotency-Keys (a retry meanwhile gets 409) */
    size_t n_keys_inflight;

    uv_timer_t tick;
    bool started, tick_open;
    bool shutting_down;
    void (*shutdown_done)(void *);
    void *shutdown_arg;
    bool shutdown_reported;

    void (*on_change)(void *);
    void *on_change_ctx;
    jobs_pause_hooks pause;          /* early stopping (jobs_set_pause_hooks) */
};

static void schedule(job_table *t);
static void key_done(job_table *t, const char *key);
static void persist(job *j);
static void check_shutdown_done(job_table *t);

static double dnan(void)
{
    return NAN;
}

static void set_settings(job_table *t, const dconfig *c)
{
    t->max_jobs = c->max_jobs > 0 ? c->max_jobs : 1;
    t->threads_per_job = c->threads_per_job > 0 ? c->threads_per_job : 1;
    t->max_restarts = c->max_restarts;
    t->metrics_keep = c->metrics_keep >= 2 ? c->metrics_keep : 2;
    t->max_job_disk = c->max_job_disk;
    char **d = strv_dup(c->data_dirs, c->n_data_dirs);
    strv_free(t->data_dirs, t->n_data_dirs);
    t->data_dirs = d;
    t->n_data_dirs = c->n_data_dirs;
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
    set_settings(t, c);
    return t;
}

void jobs_set_on_change(job_table *t, void (*cb)(void *), void *ctx)
{
    t->on_change = cb;
    t->on_change_ctx = ctx;
}

static void changed(job_table *t)
{
    if (t->on_change)
        t->on_change(t->on_change_ctx);
}

static job *job_alloc(job_table *t, const char *id)
{
    job *j = xcalloc(1, sizeof *j);
    j->t = t;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->dir = xasprintf("%s/%s", t->jobs_dir, id);
    j->checkpoint_step = -1;
    j->requeue_ckpt = -2;
    j->forked_at = -1;
    j->lr = j->loss = j->loss_avg = j->grad_norm = j->eval_loss = j->steps_per_s = dnan();
    j->errors = cJSON_CreateArray();
    return j;
}

static void job_free(job *j)
{
    while (j->waiters) {
        durable_wait *w = j->waiters;
        j->waiters = w->next;
        w->cb(w->arg, -ECANCELED);
        free(w);
    }
    free(j->name);
    free(j->idem_key);
    free(j->parent);
    free(j->experiment);
    free(j->stop_reason);
    cJSON_Delete(j->params);
    free(j->dir);
    free(j->fail_msg);
    free(j->hist);
    cJSON_Delete(j->errors);
    cJSON_Delete(j->config);
    free(j);
}

/* ---- the live list: jobs the tick must look at (a process, a write) ---- */

static void live_add(job *j)
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
static void compact(job *j)
{
    if (!job_state_ended(j->state) || !job_quiet(j))
        return;
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
static void set_state(job *j, job_state s)
{
    job_table *t = j->t;
    if (j->in_table) {
        t->counts[j->state]--;
        t->counts[s]++;
        if (s == JOB_QUEUED && j->pos < t->queue_hint)
            t->queue_hint = j->pos;
    }
    j->state = s;
}

static void table_append(job_table *t, job *j)
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

static job *find(const job_table *t, const char *id)
{
    return job_index_get(t->by_id, id);
}

/* Moves the queue hint past the jobs at its head that are not queued
 * (amortized O(1): each job is passed once per time it is queued). */
static void advance_hint(job_table *t)
{
    while (t->queue_hint < t->n && t->jobs[t->queue_hint]->state != JOB_QUEUED)
        t->queue_hint++;
}

/* Queued jobs in t->jobs[from, to). */
static int queued_between(job_table *t, size_t from, size_t to)
{
    int q = 0;
    for (size_t i = from; i < to && i < t->n; i++)
        q += t->jobs[i]->state == JOB_QUEUED;
    return q;
}

/* The 1-based queue position of a queued job. */
static int queue_position(job *j)
{
    job_table *t = j->t;
    if (!j->in_table)
        return 1;
    if (j->pos == t->n - 1)
        return t->counts[JOB_QUEUED];   /* the newest: behind every other */
    advance_hint(t);
    return 1 + (j->pos > t->queue_hint ? queued_between(t, t->queue_hint, j->pos) : 0);
}

void jobs_counts(const job_table *t, int counts[JOB_NSTATES])
{
    memcpy(counts, t->counts, JOB_NSTATES * sizeof *counts);
}

/* ------------------------------------------------------- config-derived */

static const cJSON *jget(const cJSON *o, const char *k)
{
    return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static double jnum(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* total_steps, eval split and tokens per step from the config object. */
static void derive_from_config(job *j)
{
    const cJSON *c = j->config;
    if (!c)
        return;
    const cJSON *sched = jget(c, "schedule"), *data = jget(c, "data"), *model = jget(c, "model");
    double T = jnum(sched, "total_steps", 0);
    if (T > 0)
        j->total_steps = (long)T;
    j->has_eval = jnum(data, "eval_fraction", 0) > 0;
    double ranks = jnum(jget(c, "parallel"), "ranks", 1);
    j->ranks = ranks >= 1 && ranks <= 1e6 ? (int)ranks : 1;
    const cJSON *type = jget(model, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "gpt") == 0)
        j->tokens_per_step = jnum(data, "batch_size", 0) * jnum(model, "context", 0);
}

static void add_error(job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_error(job *j, const char *fmt, ...)
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

static cJSON *diags_to_json(const diag_list_t *errs)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < errs->n; i++) {
        const diag_t *d = &errs->items[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "path", d->path);
        cJSON_AddNumberToObject(e, "line", d->line);
        cJSON_AddNumberToObject(e, "column", d->column);
        cJSON_AddStringToObject(e, "message", d->message);
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

/* ---------------------------------------------------------- job objects */

static void add_num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static void add_time(cJSON *o, const char *k, double t)
{
    if (t > 0) {
        char buf[40];
        format_utc(t, buf, sizeof buf);
        cJSON_AddStringToObject(o, k, buf);
    } else {
        cJSON_AddNullToObject(o, k);
    }
}

static double parse_time(const cJSON *v)
{
    if (!cJSON_IsString(v))
        return 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v->valuestring, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return 0;
    return (double)timegm(&tm);
}

/* total_steps, null when unknown (a rejected config has none: not 0). */
static void add_total_steps(cJSON *o, const job *j)
{
    if (j->total_steps > 0)
        cJSON_AddNumberToObject(o, "total_steps", (double)j->total_steps);
    else
        cJSON_AddNullToObject(o, "total_steps");
}

/* The job object of SPEC §5.  queue_pos: 1-based while queued (0 = compute). */
static cJSON *config_from_disk(const job *j);
static cJSON *config_from_dir(const char *dir, const char *id);

/* Pages of many jobs (GET /jobs) leave an ended job's config on disk to be
 * read on the thread pool, where the page is printed: the job object gets
 * JOBS_DEFERRED_CONFIG (its directory) and jobs_fill_deferred fills the
 * config in.  Reading a page's status.json files here held the loop. */
static bool g_defer_config;

/* "stop_reason" of a stopped job; "held" while one waits at a rung. */
static void add_early_stop_json(cJSON *o, const job *j)
{
    if (j->state == JOB_STOPPED)
        cJSON_AddStringToObject(o, "stop_reason", j->stop_reason ? j->stop_reason : "stopped early");
    if (j->held && j->state == JOB_QUEUED)
        cJSON_AddTrueToObject(o, "held");
}

static cJSON *job_to_json(const job *j, int queue_pos)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "name", j->name ? j->name : j->id);
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON_AddNumberToObject(o, "step", (double)j->step);
    add_total_steps(o, j);
    add_num_or_null(o, "lr", j->lr);
    add_num_or_null(o, "loss", j->loss);
    add_num_or_null(o, "loss_avg", j->loss_avg);
    add_num_or_null(o, "grad_norm", j->grad_norm);
    if (j->has_eval || isfinite(j->eval_loss))
        add_num_or_null(o, "eval_loss", j->eval_loss);
    bool running = j->state == JOB_RUNNING;
    double rate = running ? j->steps_per_s : dnan();
    add_num_or_null(o, "steps_per_s", rate);
    add_num_or_null(o, "tokens_per_s", j->tokens_per_step > 0 ? rate * j->tokens_per_step : dnan());
    double eta = running && rate > 0 ? (double)(j->total_steps - j->step) / rate : dnan();
    if (j->state == JOB_SUCCEEDED)
        eta = 0;
    add_num_or_null(o, "eta_s", eta);
    cJSON_AddNullToObject(o, "epoch");
    if (j->state == JOB_QUEUED) {
        if (queue_pos <= 0)
            queue_pos = queue_position((job *)j);
        cJSON_AddNumberToObject(o, "queue_position", queue_pos);
    }
    add_time(o, "submitted_at", j->submitted_at);
    add_time(o, "started_at", j->started_at);
    add_time(o, "finished_at", j->finished_at);
    cJSON_AddNumberToObject(o, "ranks", j->ranks > 0 ? j->ranks : 1);
    cJSON_AddNumberToObject(o, "restarts", j->restarts);
    cJSON_AddNumberToObject(o, "crashes", j->crashes);
    if (j->checkpoint_step >= 0)
        cJSON_AddNumberToObject(o, "checkpoint_step", (double)j->checkpoint_step);
    else
        cJSON_AddNullToObject(o, "checkpoint_step");
    if (running && j->pid > 0)
        cJSON_AddNumberToObject(o, "pid", j->pid);
    if (running && j->cancel_requested)
        cJSON_AddTrueToObject(o, "cancel_requested");
    if (j->t->slurm) {
        /* executor: slurm — the Slurm job id, and while queued in Slurm its reason */
        cJSON_AddStringToObject(o, "executor", "slurm");
        if (j->sched_id[0])
            cJSON_AddStringToObject(o, "slurm_job_id", j->sched_id);
        else
            cJSON_AddNullToObject(o, "slurm_job_id");
        if (j->sched_state[0] && !job_state_ended(j->state))
            cJSON_AddStringToObject(o, "slurm_state", j->sched_state);
        if (j->state == JOB_QUEUED && j->sched_reason[0])
            cJSON_AddStringToObject(o, "slurm_reason", j->sched_reason);
    }
    cJSON_AddNumberToObject(o, "seq", (double)j->seq);
    if (j->parent) {
        cJSON_AddStringToObject(o, "parent", j->parent);
        cJSON_AddNumberToObject(o, "forked_at", (double)j->forked_at);
    } else {
        cJSON_AddNullToObject(o, "parent");
        cJSON_AddNullToObject(o, "forked_at");
    }
    if (j->experiment)
        cJSON_AddStringToObject(o, "experiment", j->experiment);
    else
        cJSON_AddNullToObject(o, "experiment");
    cJSON_AddItemToObject(o, "params", j->params ? cJSON_Duplicate(j->params, 1) : cJSON_CreateNull());
    add_early_stop_json(o, j);
    cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(j->errors, 1));
    if (!j->config && j->config_on_disk && g_defer_config) {
        cJSON_AddNullToObject(o, "config");
        cJSON_AddStringToObject(o, JOBS_DEFERRED_CONFIG, j->dir);
        return o;
    }
    cJSON *config = j->config ? cJSON_Duplicate(j->config, 1) : j->config_on_disk ? config_from_disk(j) : NULL;
    cJSON_AddItemToObject(o, "config", config ? config : cJSON_CreateNull());
    return o;
}

void jobs_fill_deferred(cJSON *doc)
{
    cJSON *o;
    cJSON_ArrayForEach(o, doc)
    {
        cJSON *d = cJSON_GetObjectItemCaseSensitive(o, JOBS_DEFERRED_CONFIG);
        if (!cJSON_IsString(d))
            continue;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        cJSON *config = config_from_dir(d->valuestring, cJSON_IsString(id) ? id->valuestring : "job");
        cJSON_DeleteItemFromObjectCaseSensitive(o, JOBS_DEFERRED_CONFIG);
        if (config)
            cJSON_ReplaceItemInObjectCaseSensitive(o, "config", config);
    }
}

cJSON *jobs_list_json(job_table *t, const char *state)
{
    int want = state ? job_state_from_name(state) : -1;
    cJSON *a = cJSON_CreateArray();
    /* queue positions first (seq order), then newest first */
    int *pos = xcalloc(t->n ? t->n : 1, sizeof *pos);
    int q = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->jobs[i]->state == JOB_QUEUED)
            pos[i] = ++q;
    for (size_t i = t->n; i-- > 0;) {
        const job *j = t->jobs[i];
        if (state && (int)j->state != want)
            continue;
        cJSON_AddItemToArray(a, job_to_json(j, pos[i]));
    }
    free(pos);
    return a;
}

/* Index of the job with this id in t->jobs (seq order), or -1. */
static long index_of(const job_table *t, const char *id)
{
    const job *j = find(t, id);
    return j ? (long)j->pos : -1;
}

int jobs_page_json(job_table *t, const char *state, const char *after, size_t limit, struct cJSON **out,
                   char **next_after)
{
    *out = NULL;
    *next_after = NULL;
    int want = state ? job_state_from_name(state) : -1;
    /* Newest first is t->jobs backwards (it is kept in seq order); a page
     * after ID starts just below ID's place.  The work is the page's (plus
     * a scan of ints for the queue positions and the state filter), never
     * a job object more than the page holds. */
    long start = (long)t->n - 1;
    if (after) {
        long at = index_of(t, after);
        if (at < 0)
            return -ENOENT;
        start = at - 1;
    }
    /* queued jobs at or before index i: the next one's queue position
     * (none lie below the queue hint) */
    advance_hint(t);
    int queued = start >= (long)t->queue_hint ? queued_between(t, t->queue_hint, (size_t)start + 1) : 0;
    cJSON *a = cJSON_CreateArray();
    size_t got = 0;
    long i = start;
    for (; i >= 0 && got < limit; i--) {
        const job *j = t->jobs[i];
        int pos = j->state == JOB_QUEUED ? queued-- : 0;
        if (state && (int)j->state != want)
            continue;
        g_defer_config = true;
        cJSON_AddItemToArray(a, job_to_json(j, pos));
        g_defer_config = false;
        got++;
    }
    /* more after this page? */
    for (long k = i; k >= 0 && got == limit; k--)
        if (!state || (int)t->jobs[k]->state == want) {
            *next_after = xstrdup(t->jobs[i + 1]->id);
            break;
        }
    *out = a;
    return 0;
}

static int cmp_pos_desc(const void *a, const void *b)
{
    size_t x = (*(job *const *)a)->pos, y = (*(job *const *)b)->pos;
    return x < y ? 1 : x > y ? -1 : 0;
}

cJSON *jobs_summary_json(job_table *t)
{
    /* GET /status is the endpoint dashboards and scripts poll: its size and
     * cost must not grow with the finished jobs.  It lists the running
     * jobs, the next JOBS_STATUS_QUEUED queued ones and the
     * JOBS_STATUS_RECENT newest jobs (each once, newest first), with the
     * counts by state beside them; the rest is GET /jobs' (paged). */
    size_t cap = (size_t)t->counts[JOB_RUNNING] + JOBS_STATUS_QUEUED + JOBS_STATUS_RECENT + 1, n = 0;
    job **pick = xmalloc(cap * sizeof *pick);
    for (job *j = t->live; j && n < cap; j = j->live_next)
        if (j->state == JOB_RUNNING)
            pick[n++] = j;
    advance_hint(t);
    size_t q = 0;
    for (size_t i = t->queue_hint; i < t->n && q < JOBS_STATUS_QUEUED && n < cap; i++)
        if (t->jobs[i]->state == JOB_QUEUED) {
            pick[n++] = t->jobs[i];
            q++;
        }
    for (size_t i = t->n, k = 0; i-- > 0 && k < JOBS_STATUS_RECENT && n < cap; k++) {
        job *j = t->jobs[i];
        bool listed = false;   /* each job once */
        for (size_t m = 0; m < n && !listed; m++)
            listed = pick[m] == j;
        if (!listed)
            pick[n++] = j;
    }
    if (n > 1)
        qsort(pick, n, sizeof *pick, cmp_pos_desc);
    cJSON *doc = cJSON_CreateObject();
    cJSON *counts = cJSON_AddObjectToObject(doc, "counts");
    for (int s = 0; s < JOB_NSTATES; s++)
        cJSON_AddNumberToObject(counts, job_state_name((job_state)s), t->counts[s]);
    cJSON_AddNumberToObject(doc, "jobs_total", (double)t->n);
    cJSON *a = cJSON_AddArrayToObject(doc, "jobs");
    for (size_t i = 0; i < n; i++) {
        const job *j = pick[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", j->id);
        cJSON_AddStringToObject(o, "state", job_state_name(j->state));
        cJSON_AddNumberToObject(o, "step", (double)j->step);
        add_total_steps(o, j);
        add_num_or_null(o, "lr", j->lr);
        add_num_or_null(o, "loss", j->loss);
        cJSON_AddItemToArray(a, o);
    }
    cJSON_AddNumberToObject(doc, "jobs_omitted", (double)(t->n - n));
    free(pick);
    return doc;
}

cJSON *jobs_prom_json(job_table *t)
{
    /* GET /metrics: the numbers of each job, without its config or errors
     * (a whole job object is dozens of nodes, for nothing here). */
    cJSON *a = cJSON_CreateArray();
    for (size_t i = t->n; i-- > 0;) {
        const job *j = t->jobs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", j->id);
        cJSON_AddStringToObject(o, "state", job_state_name(j->state));
        cJSON_AddNumberToObject(o, "step", (double)j->step);
        add_total_steps(o, j);
        add_num_or_null(o, "lr", j->lr);
        add_num_or_null(o, "loss", j->loss);
        add_num_or_null(o, "steps_per_s", j->state == JOB_RUNNING ? j->steps_per_s : dnan());
        add_num_or_null(o, "eval_loss", j->eval_loss);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

cJSON *jobs_get_json(job_table *t, const char *id)
{
    const job *j = find(t, id);
    return j ? job_to_json(j, 0) : NULL;
}

/* ----------------------------------------------------- metrics history */

void jobs_thin_history(job_point *pts, size_t *n, size_t keep)
{
    if (keep < 2)
        keep = 2;
    while (*n > keep) {
        size_t half = *n / 2, w = 0;
        for (size_t i = 0; i < half; i += 2)
            pts[w++] = pts[i];
        for (size_t i = half; i < *n; i++)
            pts[w++] = pts[i];
        if (w == *n) {
            /* Too few points to halve the older half (n == 3): drop the
             * second-oldest, keeping the first and the newest. */
            memmove(pts + 1, pts + 2, (*n - 2) * sizeof *pts);
            w = *n - 1;
        }
        *n = w;
    }
}

size_t jobs_pick_even(size_t n, size_t max, size_t *idx)
{
    if (n == 0 || max == 0)
        return 0;
    if (max >= n) {
        for (size_t i = 0; i < n; i++)
            idx[i] = i;
        return n;
    }
    if (max == 1) {
        idx[0] = n - 1;
        return 1;
    }
    for (size_t k = 0; k < max; k++)
        idx[k] = (size_t)(((double)k * (double)(n - 1)) / (double)(max - 1) + 0.5);
    idx[max - 1] = n - 1;
    return max;
}

static void hist_push(job *j, const job_point *p)
{
    /* A point at or before the last one means the worker went back (resume
     * after a refused checkpoint): drop what it will redo. */
    while (j->n_hist > 0 && j->hist[j->n_hist - 1].step >= p->step)
        j->n_hist--;
    if (j->n_hist == j->cap_hist) {
        j->cap_hist = j->cap_hist ? 2 * j->cap_hist : 256;
        j->hist = xrealloc(j->hist, j->cap_hist * sizeof *j->hist);
    }
    j->hist[j->n_hist++] = *p;
    if ((long)j->n_hist > j->t->metrics_keep)
        jobs_thin_history(j->hist, &j->n_hist, (size_t)j->t->metrics_keep);
}

static cJSON *point_json(const job_point *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)p->step);
    add_num_or_null(o, "lr", p->lr);
    add_num_or_null(o, "loss", p->loss);
    add_num_or_null(o, "loss_avg", p->loss_avg);
    add_num_or_null(o, "grad_norm", p->grad_norm);
    add_num_or_null(o, "time", p->time);
    if (isfinite(p->eval_loss))
        cJSON_AddNumberToObject(o, "eval_loss", p->eval_loss);
    return o;
}

/* The history a metrics answer reads: the job's own, or, for an ended job
 * that was compacted, metrics.jsonl read back (one bounded read, as at
 * start-up: the file was thinned to metrics_keep points when it ended). */
typedef struct hist_view {
    const job_point *hist;
    size_t n_hist;
    job_point *owned;
} hist_view;

static void hist_read_now(const job *j, hist_view *v);

static void hist_view_of(const job *j, hist_view *v)
{
    v->owned = NULL;
    if (j->hist_on_disk) {
        hist_read_now(j, v);
        return;
    }
    v->hist = j->hist;
    v->n_hist = j->n_hist;
}

/* The index of the first point with step > since (points are in step
 * order: a binary search). */
static size_t first_after(const hist_view *j, long since)
{
    size_t lo = 0, hi = j->n_hist;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (j->hist[mid].step > since)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

cJSON *jobs_metrics_json(job_table *t, const char *id, long since, long max)
{
    const job *jb = find(t, id);
    if (!jb)
        return NULL;
    hist_view view, *j = &view;
    hist_view_of(jb, j);
    size_t lo = first_after(j, since);
    size_t n = j->n_hist - lo;
    size_t want = max > 0 && (size_t)max < n ? (size_t)max : n;
    size_t *idx = xmalloc((want ? want : 1) * sizeof *idx);
    size_t k = jobs_pick_even(n, want, idx);
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < k; i++)
        cJSON_AddItemToArray(a, point_json(&j->hist[lo + idx[i]]));
    free(idx);
    free(view.owned);
    return a;
}

static int select_points(hist_view *j, long since, long max, long limit, job_point **out, size_t *out_n,
                         long *next_since)
{
    hist_view view = *j;
    size_t lo = first_after(j, since), n = j->n_hist - lo;
    if (max > 0) {
        /* the whole range, evenly thinned */
        size_t want = (size_t)max < n ? (size_t)max : n;
        size_t *idx = xmalloc((want ? want : 1) * sizeof *idx);
        size_t k = jobs_pick_even(n, want, idx);
        job_point *p = xmalloc((k ? k : 1) * sizeof *p);
        for (size_t i = 0; i < k; i++)
            p[i] = j->hist[lo + idx[i]];
        free(idx);
        free(view.owned);
        *out = p;
        *out_n = k;
        return 0;
    }
    /* a page: the first limit points, and where the next page starts */
    size_t k = limit > 0 && (size_t)limit < n ? (size_t)limit : n;
    job_point *p = xmalloc((k ? k : 1) * sizeof *p);
    if (k > 0)   /* no history yet: j->hist is NULL */
        memcpy(p, j->hist + lo, k * sizeof *p);
    if (k < n)
        *next_since = p[k - 1].step;
    free(view.owned);
    *out = p;
    *out_n = k;
    return 0;
}

int jobs_metrics_points(job_table *t, const char *id, long since, long max, long limit, job_point **out,
                        size_t *out_n, long *next_since)
{
    *out = NULL;
    *out_n = 0;
    *next_since = -1;
    const job *jb = find(t, id);
    if (!jb)
        return -ENOENT;
    hist_view view;
    hist_view_of(jb, &view);
    return select_points(&view, since, max, limit, out, out_n, next_since);
}

static void hist_read_path(const char *path, size_t keep, hist_view *v);

int jobs_metrics_file(job_table *t, const char *id, char **path, size_t *keep)
{
    *path = NULL;
    const job *j = find(t, id);
    if (!j)
        return -ENOENT;
    if (!j->hist_on_disk)
        return 1;
    *path = xasprintf("%s/metrics.jsonl", j->dir);
    *keep = (size_t)t->metrics_keep;
    return 0;
}

int jobs_metrics_read_file(const char *path, size_t keep, long since, long max, long limit, job_point **out,
                           size_t *out_n, long *next_since)
{
    *out = NULL;
    *out_n = 0;
    *next_since = -1;
    hist_view view;
    hist_read_path(path, keep, &view);
    return select_points(&view, since, max, limit, out, out_n, next_since);
}

/* Parses metrics.jsonl (thread pool). */
typedef struct hist_req {
    uv_work_t work;
    job *j;
    char *path;
    size_t keep;
    job_point *pts;
    size_t n;
} hist_req;

static double line_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Adds the point of one metrics.jsonl line (a line that is not one is
 * skipped); *cap is r->pts' capacity. */
static void hist_add_line(hist_req *r, const char *line, size_t n, size_t *cap)
{
    cJSON *o = cJSON_ParseWithLength(line, n);
    if (!o)
        return;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step");
    if (cJSON_IsNumber(s) && s->valuedouble >= 0) {
        /* loss and eval_loss are floats written with %.9g: round back to float */
        job_point p = {(long)s->valuedouble, line_num(o, "lr"), (double)(float)line_num(o, "loss"),
                       line_num(o, "loss_avg"), line_num(o, "grad_norm"), line_num(o, "time"),
                       (double)(float)line_num(o, "eval_loss")};
        while (r->n > 0 && r->pts[r->n - 1].step >= p.step)
            r->n--;
        if (r->n == *cap) {
            *cap = *cap ? 2 * *cap : 1024;
            r->pts = xrealloc(r->pts, *cap * sizeof *r->pts);
        }
        r->pts[r->n++] = p;
        if (r->n > 2 * r->keep)
            jobs_thin_history(r->pts, &r->n, r->keep);
    }
    cJSON_Delete(o);
}

/* A long history's older part, sampled: HIST_SAMPLES lines read at evenly
 * spaced offsets of [0, end) — a coarse curve for a few seeks, whatever
 * the file's size. */
static void hist_sample(hist_req *r, int fd, off_t end, size_t *cap)
{
    char buf[1024];
    for (size_t k = 0; k < HIST_SAMPLES; k++) {
        off_t at = (off_t)((double)end * (double)k / HIST_SAMPLES);
        ssize_t n = pread(fd, buf, sizeof buf - 1, at);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        char *line = buf;
        if (at > 0) {   /* from the next line start on */
            char *nl = memchr(buf, '\n', (size_t)n);
            if (!nl)
                continue;
            line = nl + 1;
        }
        char *nl = memchr(line, '\n', (size_t)(buf + n - line));
        if (nl && line < buf + n)
            hist_add_line(r, line, (size_t)(nl - line), cap);
    }
}

static void hist_work(uv_work_t *w)
{
    hist_req *r = w->data;
    /* a planted device is not opened, a FIFO not waited on, a symlink not followed */
    struct stat st;
    if (lstat(r->path, &st) == 0 && !S_ISREG(st.st_mode)) {
        log_warn("%s: not a regular file; no history read", r->path);
        return;
    }
    int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        log_warn("%s: not a regular file; no history read", r->path);
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        return;
    /* Restart time must not grow with the history: of a long file only the
     * last HIST_TAIL_BYTES are read line by line (the recent, dense part)
     * and the rest is sampled. */
    size_t cap = 0;
    off_t from = st.st_size > (off_t)HIST_TAIL_BYTES ? st.st_size - (off_t)HIST_TAIL_BYTES : 0;
    if (from > 0)
        hist_sample(r, fd, from, &cap);
    FILE *f = lseek(fd, from, SEEK_SET) == from ? fdopen(fd, "r") : NULL;
    if (!f) {
        close(fd);
        return;
    }
    /* Streamed line by line: memory stays bounded by metrics_keep however
     * long the tail is. */
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    bool partial = from > 0;   /* the tail starts mid-line */
    while ((n = getline(&line, &linecap, f)) > 0) {
        if (line[n - 1] != '\n')
            break;   /* a torn last line (the process died mid-write) */
        if (partial) {
            partial = false;
            continue;
        }
        hist_add_line(r, line, (size_t)n, &cap);
    }
    free(line);
    fclose(f);
    jobs_thin_history(r->pts, &r->n, r->keep);
}

/* Reads a history file as load_history does, but here (thread-safe: no
 * job is touched). */
static void hist_read_path(const char *path, size_t keep, hist_view *v)
{
    hist_req r;
    memset(&r, 0, sizeof r);
    r.work.data = &r;
    r.path = (char *)path;
    r.keep = keep;
    hist_work(&r.work);
    v->hist = v->owned = r.pts;
    v->n_hist = r.n;
}

static void hist_read_now(const job *j, hist_view *v)
{
    char *path = xasprintf("%s/metrics.jsonl", j->dir);
    hist_read_path(path, (size_t)j->t->metrics_keep, v);
    free(path);
}

static void hist_done(uv_work_t *w, int status)
{
    hist_req *r = w->data;
    job *j = r->j;
    free(j->hist);
    j->hist = r->pts;
    j->n_hist = j->cap_hist = r->n;
    j->hist_loading = false;
    if (j->n_hist > 0 && isnan(j->loss) && j->step <= j->hist[j->n_hist - 1].step) {
        /* a job rebuilt without its status.json: its last known progress */
        const job_point *p = &j->hist[j->n_hist - 1];
        j->step = p->step;
        j->lr = p->lr;
        j->loss = p->loss;
        j->loss_avg = p->loss_avg;
        j->grad_norm = p->grad_norm;
        if (!isnan(p->eval_loss))
            j->eval_loss = p->eval_loss;
    }
    free(r->path);
    free(r);
    j->t->pending_work--;
    (void)status;
    schedule(j->t);
    check_shutdown_done(j->t);
}

static void load_history(job *j)
{
    hist_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->j = j;
    r->path = xasprintf("%s/metrics.jsonl", j->dir);
    r->keep = (size_t)j->t->metrics_keep;
    if (uv_queue_work(j->t->loop, &r->work, hist_work, hist_done) < 0) {
        free(r->path);
        free(r);
        return;
    }
    j->hist_loading = true;
    j->t->pending_work++;
}

/* ---------------------------------------------------------- persistence */

typedef struct write_req {
    uv_work_t work;
    job *j;
    char *path;
    char *data;
    size_t len;
    int rc;
    unsigned long seq;               /* j->writes_started when it began */
} write_req;

/* Tells the waiters that write seq covers. */
static void wake_waiters(job *j, unsigned long seq, int rc)
{
    durable_wait **p = &j->waiters;
    while (*p) {
        durable_wait *w = *p;
        if (w->need <= seq) {
            *p = w->next;
            w->cb(w->arg, rc);
            free(w);
        } else {
            p = &w->next;
        }
    }
}

static void write_work(uv_work_t *w)
{
    write_req *r = w->data;
    r->rc = write_file_atomic(r->path, r->data, r->len, 0644);
}

static void start_write(job *j);

static void write_done(uv_work_t *w, int status)
{
    write_req *r = w->data;
    job *j = r->j;
    job_table *t = j->t;
    t->pending_work--;
    j->write_inflight = false;
    if (r->rc < 0) {
        if (!j->write_error_logged)
            log_error("job %s: cannot write %s: %s (retrying every %.0f s; the file on disk keeps "
                      "its previous content)", j->id, r->path, strerror(-r->rc), JOBS_STATUS_INTERVAL_S);
        j->write_error_logged = true;
        /* Retried from the tick (not here: that would spin on a full
         * disk); at shutdown the last attempt stands. */
        j->write_failed = !t->shutting_down;
    } else {
        if (j->write_error_logged)
            log_info("job %s: %s written again", j->id, r->path);
        j->write_error_logged = false;
        j->write_failed = false;
    }
    wake_waiters(j, r->seq, r->rc);
    free(r->path);
    free(r->data);
    free(r);
    (void)status;
    if (j->dirty)
        start_write(j);
    check_shutdown_done(t);
}

static void start_write(job *j)
{
    if (j->write_inflight)
        return;
    live_add(j);   /* the tick retries a failed write */
    write_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->j = j;
    j->write_failed = false;
    cJSON *o = job_to_json(j, 0);
    r->path = xasprintf("%s/status.json", j->dir);
    r->data = json_print_exact(o);   /* read back after a restart: exact */
    cJSON_Delete(o);
    if (!r->data)
        abort();
    r->len = strlen(r->data);
    j->dirty = false;
    j->progress_dirty = false;
    j->last_write = now_monotonic();
    r->seq = ++j->writes_started;
    int rc = uv_queue_work(j->t->loop, &r->work, write_work, write_done);
    if (rc < 0) {
        log_error("job %s: cannot queue a write: %s", j->id, uv_strerror(rc));
        free(r->path);
        free(r->data);
        free(r);
        j->dirty = true;
        j->writes_started--;
        return;
    }
    j->write_inflight = true;
    j->t->pending_work++;
}

/* State changed: write status.json now (after a write in flight). */
static void persist(job *j)
{
    j->dirty = true;
    start_write(j);
}

/* persist(j), then cb(arg, rc) once the job as it is now is on disk. */
static void persist_then(job *j, void (*cb)(void *arg, int rc), void *arg)
{
    durable_wait *w = xcalloc(1, sizeof *w);
    /* a write in flight holds an older snapshot: the next one is ours */
    w->need = j->writes_started + 1;
    w->cb = cb;
    w->arg = arg;
    w->next = j->waiters;
    j->waiters = w;
    persist(j);
}

/* ------------------------------------------------------------ the worker */

static void set_ended(job *j, job_state s)
{
    set_state(j, s);
    j->finished_at = now_unix();
    j->steps_per_s = dnan();
}

/* A line that cannot describe this job (steps past its end, another
 * length): logged and ignored rather than believed. */
static bool implausible(const job *j, const progress_msg *m)
{
    long T = j->total_steps;
    if (T <= 0)
        return false;
    return m->step > T || m->checkpoint_step > T || (m->total_steps >= 0 && m->total_steps != T);
}

static void on_worker_msg(void *ctx, const progress_msg *m)
{
    job *j = ctx;
    if (implausible(j, m)) {
        log_warn("job %s: progress line from pid %d ignored: \"%s\" with step %ld, checkpoint_step %ld, "
                 "total_steps %ld does not fit a job of %ld steps", j->id, j->pid, progress_ev_name(m->ev),
                 m->step, m->checkpoint_step, m->total_steps, j->total_steps);
        return;
    }
    switch (m->ev) {
    case PEV_START:
        if (j->t->slurm && j->state == JOB_QUEUED && j->x) {
            /* the worker runs: Slurm's RUNNING may not have been polled yet */
            set_state(j, JOB_RUNNING);
            j->sched_reason[0] = '\0';
            if (j->started_at <= 0)
                j->started_at = now_unix();
        }
        if (m->step >= 0)
            j->step = m->step;
        if (m->total_steps > 0)
            j->total_steps = m->total_steps;
        j->checkpoint_step = m->checkpoint_step;
        while (j->n_hist > 0 && j->hist[j->n_hist - 1].step > j->step)
            j->n_hist--;   /* metrics.jsonl was cut back to the checkpoint too */
        if (j->step == 0) {
            j->lr = j->loss = j->loss_avg = j->grad_norm = j->eval_loss = dnan();
        } else if (j->n_hist > 0) {
            /* The numbers shown may be of steps past the checkpoint, which
             * will be trained again (or, resumed at the end, never reported
             * again): show those of the last metrics point kept. */
            const job_point *p = &j->hist[j->n_hist - 1];
            j->lr = p->lr;
            j->loss = p->loss;
            j->loss_avg = p->loss_avg;
            j->grad_norm = p->grad_norm;
            if (!isnan(p->eval_loss))
                j->eval_loss = p->eval_loss;
        }
        if (j->t->slurm)
            log_info("job %s: training %s at step %ld of %ld (Slurm job %s)", j->id,
                     j->step > 0 ? "resumed" : "started", j->step, j->total_steps, j->sched_id);
        else
            log_info("job %s: training %s at step %ld of %ld (pid %d)", j->id,
                     j->step > 0 ? "resumed" : "started", j->step, j->total_steps, j->pid);
        persist(j);
        return;
    case PEV_NOTICE:
        log_warn("job %s: %s", j->id, m->message);
        add_error(j, "%s", m->message);
        persist(j);
        return;
    case PEV_LOG:
    case PEV_TICK:
    case PEV_EVAL:
        if (m->step >= 0)
            j->step = m->step;
        if (m->total_steps > 0)
            j->total_steps = m->total_steps;
        j->lr = m->lr;
        j->loss = m->loss;
        j->grad_norm = m->grad_norm;
        if (m->ev == PEV_LOG)
            j->loss_avg = m->loss_avg;
        if (!isnan(m->eval_loss))
            j->eval_loss = m->eval_loss;
        if (!isnan(m->steps_per_s))
            j->steps_per_s = m->steps_per_s;
        if (m->checkpoint_step >= 0)
            j->checkpoint_step = m->checkpoint_step;
        if (m->ev == PEV_LOG && m->step >= 0) {
            job_point p = {m->step, m->lr, m->loss, m->loss_avg, m->grad_norm, m->elapsed_s, m->eval_loss};
            hist_push(j, &p);
        }
        j->progress_dirty = true;
        return;
    case PEV_CKPT:
        j->checkpoint_step = m->checkpoint_step >= 0 ? m->checkpoint_step : m->step;
        if (m->step > j->step)
            j->step = m->step;
        j->progress_dirty = true;
        return;
    case PEV_FAILED:
        free(j->fail_msg);
        j->fail_msg = xstrdup(m->message);
        return;
    case PEV_DONE:
        j->got_done = true;
        if (m->step >= 0)
            j->step = m->step;
        if (m->checkpoint_step >= 0)
            j->checkpoint_step = m->checkpoint_step;
        return;
    }
}

/* "1.5 GiB" */
static void format_bytes(size_t b, char *out, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(out, len, "%.4g %s", v, units[u]);
}

/* A job failed for a full disk: the queued ones must not start (and fail
 * the same way at once) until there is room again; the tick checks. */
static void wait_for_space(job_table *t, const job *j)
{
    if (!t->space_wait)
        log_warn("job %s failed for a full disk: queued jobs wait until %s has room again (checked every %.0f s)",
                 j->id, t->spool, JOBS_SPACE_CHECK_S);
    t->space_wait = true;
    t->next_space_check = now_monotonic() + JOBS_SPACE_CHECK_S;
}

/* ---- disk checks on the thread pool ---- */

typedef struct disk_req {
    uv_work_t work;
    job_table *t;
    job *j;                          /* a job's usage; NULL: the spool's free space */
    char *path;
    long long bytes;                 /* usage, or free space */
    int room;                        /* disk_has_room's answer */
} disk_req;

static void disk_work(uv_work_t *w)
{
    disk_req *r = w->data;
    if (r->j)
        r->bytes = disk_dir_usage(r->path);
    else
        r->room = disk_has_room(r->path, &r->bytes);
}

static void disk_space_back(job_table *t, long long free_bytes)
{
    char f[32];
    format_bytes((size_t)free_bytes, f, sizeof f);
    log_info("%s has room again (%s free): queued jobs start again", t->spool, f);
    t->space_wait = false;
    schedule(t);
}

/* Over max_job_disk: ask the process to checkpoint and stop; on_worker_exit fails the job. */
static void disk_over_limit(job *j, long long used)
{
    char u[32], l[32];
    format_bytes((size_t)used, u, sizeof u);
    format_bytes(j->t->max_job_disk, l, sizeof l);
    log_error("job %s: its files take %s, over max_job_disk %s: stopping it", j->id, u, l);
    j->disk_over = true;
    exec_cancel(j->x);
    j->kill_deadline = now_monotonic() + JOBS_STOP_TIMEOUT_S;
}

static void disk_done(uv_work_t *w, int status)
{
    disk_req *r = w->data;
    job_table *t = r->t;
    t->pending_work--;
    if (r->j) {
        job *j = r->j;
        j->disk_check_inflight = false;
        if (status == 0 && j->x && !j->disk_over && t->max_job_disk > 0 && r->bytes > (long long)t->max_job_disk)
            disk_over_limit(j, r->bytes);
    } else {
        t->space_check_inflight = false;
        if (status == 0 && t->space_wait && r->room > 0)
            disk_space_back(t, r->bytes);
    }
    free(r->path);
    free(r);
    check_shutdown_done(t);
}

static void start_disk_check(job_table *t, job *j)
{
    disk_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->t = t;
    r->j = j;
    r->path = xstrdup(j ? j->dir : t->spool);
    if (uv_queue_work(t->loop, &r->work, disk_work, disk_done) < 0) {
        free(r->path);
        free(r);
        return;
    }
    t->pending_work++;
    if (j)
        j->disk_check_inflight = true;
    else
        t->space_check_inflight = true;
}

/* From the tick: the space the table waits for, and the jobs' usage. */
static void check_disks(job_table *t, double now)
{
    if (t->space_wait && !t->space_check_inflight && now >= t->next_space_check && !t->shutting_down) {
        t->next_space_check = now + JOBS_SPACE_CHECK_S;
        start_disk_check(t, NULL);
    }
    if (t->max_job_disk == 0)
        return;
    for (job *j = t->live; j; j = j->live_next) {
        if (j->x && !j->disk_over && !j->disk_check_inflight && now >= j->next_disk_check) {
            j->next_disk_check = now + JOBS_DISK_CHECK_S;
            start_disk_check(t, j);
        }
    }
}

/* ---- a finished job's history thinned on disk (history.h) ---- */

typedef struct thin_req {
    uv_work_t work;
    job_table *t;
    char *path, *id;
    size_t keep;
    long dropped;
} thin_req;

static void thin_work(uv_work_t *w)
{
    thin_req *r = w->data;
    r->dropped = history_thin_file(r->path, r->keep);
}

static void thin_done(uv_work_t *w, int status)
{
    thin_req *r = w->data;
    r->t->pending_work--;
    if (r->dropped > 0)
        log_info("job %s: metrics.jsonl thinned to %zu points (%ld older ones dropped)", r->id, r->keep, r->dropped);
    else if (r->dropped < 0)
        log_warn("job %s: cannot thin metrics.jsonl: %s", r->id, strerror((int)-r->dropped));
    job_table *t = r->t;
    free(r->path);
    free(r->id);
    free(r);
    (void)status;
    check_shutdown_done(t);
}

/* The job has ended: nothing appends to its history any more. */
static void thin_history_on_disk(job *j)
{
    thin_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->t = j->t;
    r->path = xasprintf("%s/metrics.jsonl", j->dir);
    r->id = xstrdup(j->id);
    r->keep = (size_t)j->t->metrics_keep;
    if (uv_queue_work(j->t->loop, &r->work, thin_work, thin_done) < 0) {
        free(r->path);
        free(r->id);
        free(r);
        return;
    }
    j->t->pending_work++;
}

/* The process died or failed in a way a new process may get past: resume
 * from the checkpoint while max_restarts allows, else fail. */
static void crashed(job *j, const char *why)
{
    j->crashes++;
    if (j->crashes <= j->t->max_restarts) {
        log_warn("job %s: %s; resuming from its checkpoint (restart %d of %d)", j->id, why, j->crashes,
                 j->t->max_restarts);
        add_error(j, "%s at step %ld; resumed from the checkpoint at step %ld", why, j->step,
                  j->checkpoint_step > 0 ? j->checkpoint_step : 0);
        set_state(j, JOB_QUEUED);
        j->steps_per_s = dnan();
    } else {
        log_error("job %s: failed: %s", j->id, why);
        add_error(j, "%s", why);
        set_ended(j, JOB_FAILED);
    }
}

static void end_cleanup(job *j)
{
    job_table *t = j->t;
    free(j->fail_msg);
    j->fail_msg = NULL;
    j->got_done = false;
    j->cancel_requested = false;
    j->disk_over = false;
    j->pid = 0;
    if (job_state_ended(j->state))
        thin_history_on_disk(j);
    persist(j);
    changed(t);
    schedule(t);
    check_shutdown_done(t);
}

/* executor: slurm — Slurm's final state of the job, both ways (issue 17):
 * COMPLETED → succeeded; CANCELLED → cancelled; FAILED with the worker's
 * "failed" → failed with its reason; the worker stopped by Slurm's signal
 * before the time limit (exit WORKER_EXIT_STOPPED), TIMEOUT, PREEMPTED, or a
 * job Slurm lost → queued again and resubmitted, resuming from the
 * checkpoint (counted in restarts); NODE_FAIL, OUT_OF_MEMORY and the rest →
 * failed with Slurm's state and reason. */
static void slurm_ended(job *j, const exec_end *e)
{
    const char *st = e->sched_state;
    char why[384];
    snprintf(why, sizeof why, "Slurm job %s ended %s (exit code %lld:%d%s%s)", j->sched_id[0] ? j->sched_id : "?",
             st, (long long)e->exit_status, e->term_signal, e->reason ? ", " : "", e->reason ? e->reason : "");
    bool stopped = (!strcmp(st, "FAILED") && e->exit_status == WORKER_EXIT_STOPPED && !e->term_signal) ||
                   !strcmp(st, "TIMEOUT") || !strcmp(st, "PREEMPTED") || !strcmp(st, "LOST");
    j->sched_state[0] = j->sched_reason[0] = '\0';
    if (!strcmp(st, "COMPLETED") && e->exit_status == 0 && !e->term_signal) {
        j->step = j->total_steps;
        set_ended(j, JOB_SUCCEEDED);
        log_info("job %s: succeeded in Slurm job %s (%ld steps, loss %.6g)", j->id, j->sched_id, j->step, j->loss);
    } else if (!strcmp(st, "CANCELLED") || j->cancel_requested) {
        if (!j->cancel_requested)
            add_error(j, "Slurm job %s was cancelled outside traind (scancel) at step %ld", j->sched_id, j->step);
        set_ended(j, JOB_CANCELLED);
        log_info("job %s: cancelled (Slurm job %s) at step %ld (checkpoint at step %ld)", j->id, j->sched_id,
                 j->step, j->checkpoint_step);
    } else if (!strcmp(st, "FAILED") && e->exit_status == WORKER_EXIT_FAILED) {
        const char *msg = j->fail_msg ? j->fail_msg : "training failed (see worker.log)";
        add_error(j, "%s", msg);
        set_ended(j, JOB_FAILED);
        log_error("job %s: failed in Slurm job %s: %s", j->id, j->sched_id, msg);
    } else if (!strcmp(st, "SUBMIT_FAILED")) {
        add_error(j, "cannot submit to Slurm: %s", e->reason ? e->reason : "sbatch failed");
        set_ended(j, JOB_FAILED);
    } else if (stopped && j->checkpoint_step > j->requeue_ckpt) {
        /* Resubmitted by traind: a fresh sbatch resumes from the checkpoint. */
        char from[64] = "its last checkpoint";
        if (j->checkpoint_step >= 0)
            snprintf(from, sizeof from, "its checkpoint at step %ld", j->checkpoint_step);
        log_warn("job %s: %s at step %ld; requeued to resume from %s", j->id, why, j->step, from);
        add_error(j, "%s at step %ld; requeued, resuming from %s", why, j->step, from);
        j->requeue_ckpt = j->checkpoint_step;
        set_state(j, JOB_QUEUED);
        j->steps_per_s = dnan();
    } else if (stopped || !strcmp(st, "COMPLETED")) {
        /* stopped again without a newer checkpoint, or exited early: a crash */
        crashed(j, why);
    } else {
        add_error(j, "%s", why);
        set_ended(j, JOB_FAILED);
        log_error("job %s: failed: %s", j->id, why);
    }
}

/* ------------------------------------------------------ early stopping */

/* The process paused at an ASHA rung: queued and held until its
 * experiment decides (jobs_release, jobs_stop_early). */
static void paused_at_rung(job *j)
{
    job_table *t = j->t;
    set_state(j, JOB_QUEUED);
    j->held = true;
    j->steps_per_s = dnan();
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

bool jobs_is_slurm(const job_table *t)
{
    return t->slurm;
}

void jobs_set_pause_hooks(job_table *t, const jobs_pause_hooks *h)
{
    t->pause = *h;
}

int jobs_release(job_table *t, const char *id)
{
    job *j = find(t, id);
    if (!j)
        return API_NOT_FOUND;
    if (j->state == JOB_QUEUED && j->held) {
        j->held = false;
    } else if (j->state == JOB_STOPPED) {
        if (j->config_on_disk && !j->config) {
            j->config = config_from_disk(j);
            j->config_on_disk = !j->config;
        }
        set_state(j, JOB_QUEUED);
        j->finished_at = 0;
        free(j->stop_reason);
        j->stop_reason = NULL;
        if (j->hist_on_disk) {
            j->hist_on_disk = false;
            load_history(j);
        }
        log_info("job %s: promoted by its experiment; queued to resume from step %ld", j->id, j->checkpoint_step);
    } else {
        return API_CONFLICT;
    }
    persist(j);
    changed(t);
    schedule(t);
    return API_OK;
}

int jobs_stop_early(job_table *t, const char *id, const char *reason)
{
    job *j = find(t, id);
    if (!j)
        return API_NOT_FOUND;
    if (j->state != JOB_QUEUED || !j->held)
        return API_CONFLICT;
    j->held = false;
    free(j->stop_reason);
    j->stop_reason = xasprintf("%.512s", reason);
    set_ended(j, JOB_STOPPED);
    log_info("job %s: stopped early at step %ld: %s", j->id, j->checkpoint_step, reason);
    /* not thinned (as an ended job's is): a promotion appends to it again */
    persist(j);
    changed(t);
    schedule(t);
    return API_OK;
}

static void on_worker_exit(void *ctx, const exec_end *e)
{
    job *j = ctx;
    job_table *t = j->t;
    int64_t exit_status = e->exit_status;
    int term_signal = e->term_signal;
    j->x = NULL;
    j->kill_deadline = 0;
    t->running--;
    if (e->detached) {
        /* executor: slurm, traind stopping: the job goes on in Slurm and the
         * next traind adopts it by its id; its state stays as it is */
        j->steps_per_s = dnan();
        end_cleanup(j);
        return;
    }
    if (e->sched_state) {
        slurm_ended(j, e);
        end_cleanup(j);
        return;
    }
    char why[256];
    if (term_signal)
        snprintf(why, sizeof why, "training process killed by signal %d", term_signal);
    else
        snprintf(why, sizeof why, "training process exited with status %lld (see worker.log)",
                 (long long)exit_status);

    bool finished = !term_signal && exit_status == WORKER_EXIT_OK && (j->got_done || j->step >= j->total_steps);
    bool failed = !term_signal && exit_status == WORKER_EXIT_FAILED;
    if (!finished && disk_full_message(failed && j->fail_msg ? j->fail_msg : why))
        wait_for_space(t, j);
    if (j->disk_over && !finished) {
        char limit[32];
        format_bytes(t->max_job_disk, limit, sizeof limit);
        add_error(j, "the job's files passed max_job_disk (%s) at step %ld; stopped (checkpoint at step %ld)", limit,
                  j->step, j->checkpoint_step);
        set_ended(j, JOB_FAILED);
        log_error("job %s: failed: over max_job_disk (%s)", j->id, limit);
    } else if (finished) {
        j->step = j->total_steps;
        set_ended(j, JOB_SUCCEEDED);
        log_info("job %s: succeeded (%ld steps, loss %.6g)", j->id, j->step, j->loss);
    } else if (failed) {
        const char *msg = j->fail_msg ? j->fail_msg : "training failed (see worker.log)";
        add_error(j, "%s", msg);
        set_ended(j, JOB_FAILED);
        log_error("job %s: failed: %s", j->id, msg);
    } else if (j->cancel_requested) {
        set_ended(j, JOB_CANCELLED);
        log_info("job %s: cancelled at step %ld (checkpoint at step %ld)", j->id, j->step, j->checkpoint_step);
    } else if (t->shutting_down) {
        /* Stopped for the daemon's shutdown: resumes at the next start. */
        set_state(j, JOB_QUEUED);
        j->steps_per_s = dnan();
        log_info("job %s: stopped at step %ld for shutdown (checkpoint at step %ld); resumes at next start",
                 j->id, j->step, j->checkpoint_step);
    } else if (!term_signal && exit_status == WORKER_EXIT_PAUSED && t->pause.paused && j->experiment) {
        paused_at_rung(j);
        return;
    } else if (!term_signal && exit_status == WORKER_EXIT_STOPPED) {
        /* Someone outside traind stopped it (SIGTERM to the process). */
        add_error(j, "training process was stopped from outside traind at step %ld", j->step);
        set_ended(j, JOB_CANCELLED);
        log_warn("job %s: its training process was stopped from outside traind; cancelled", j->id);
    } else if (!term_signal && exit_status == WORKER_EXIT_OK) {
        crashed(j, "training process exited before finishing");
    } else {
        crashed(j, why);
    }
    end_cleanup(j);
}

/* executor: slurm — the job waits in Slurm's queue (with a reason) or runs. */
static void on_worker_sched(void *ctx, bool running, const char *sched_state, const char *reason)
{
    job *j = ctx;
    snprintf(j->sched_state, sizeof j->sched_state, "%s", sched_state);
    snprintf(j->sched_reason, sizeof j->sched_reason, "%s", reason ? reason : "");
    if (j->x && !j->sched_id[0] && exec_sched_id(j->x))
        snprintf(j->sched_id, sizeof j->sched_id, "%s", exec_sched_id(j->x));
    if (running && j->state == JOB_QUEUED) {
        set_state(j, JOB_RUNNING);
        j->sched_reason[0] = '\0';
        if (j->started_at <= 0)
            j->started_at = now_unix();
        log_info("job %s: running in Slurm job %s", j->id, j->sched_id);
    } else if (!running && j->state == JOB_RUNNING) {
        set_state(j, JOB_QUEUED);   /* requeued or suspended by Slurm */
        j->steps_per_s = dnan();
    }
    persist(j);
    changed(j->t);
}

/* The training threads a job asks for: its config's threads, capped by
 * threads_per_job (as the worker caps them); --cpus-per-task under slurm. */
static int job_threads(const job *j)
{
    int cap = j->t->threads_per_job;
    if (!j->t->slurm)
        return cap;   /* the worker itself takes min(config, this) */
    double want = jnum(j->config, "threads", cap);
    return want >= 1 && want < cap ? (int)want : cap;
}

/* A job that cannot start at all: failed, with why. */
static int refuse_start(job *j, const char *why)
{
    log_error("job %s: cannot start: %s", j->id, why);
    add_error(j, "%s", why);
    set_ended(j, JOB_FAILED);
    persist(j);
    changed(j->t);
    return -EINVAL;
}

static exec_spec job_spec(const job *j, int ranks, const char *mpi_worker)
{
    exec_spec spec = {
        .job_id = j->id,
        .job_dir = j->dir,
        /* N ranks share the job's thread budget (checked in start_job) */
        .threads = ranks > 1 ? j->t->threads_per_job / ranks : job_threads(j),
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
     * gets threads_per_job / N threads (the worker lowers that to the
     * config's own threads).  More ranks than the budget is refused rather
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
        /* executor: slurm starts the ranks with srun (executor_slurm.c), on
         * the nodes: mpirun is needed here only for the local executor */
        mpi_worker = mpilaunch_worker_path();
        if (!mpi_worker || (!t->slurm && !mpilaunch_have_mpirun())) {
            free(mpi_worker);
            return refuse_start(j, t->slurm ? "parallel.ranks > 1 needs traind-mpi-worker beside traind"
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
        wait_for_space(t, j);
        return rc;
    }
    if (rc < 0) {
        log_error("job %s: cannot start its training process: %s", j->id, uv_strerror(rc));
        add_error(j, "cannot start the training process: %s", uv_strerror(rc));
        set_ended(j, JOB_FAILED);
        persist(j);
        changed(t);
        return rc;
    }
    j->x = x;
    j->pid = exec_pid(x);
    live_add(j);
    j->got_done = false;
    j->cancel_requested = false;
    t->running++;
    if (!executor_starts_running(t->ex)) {
        /* slurm: queued (in Slurm's queue) until on_worker_sched says it runs */
        j->sched_id[0] = '\0';
        snprintf(j->sched_state, sizeof j->sched_state, "SUBMITTING");
        j->sched_reason[0] = '\0';
        if (j->started_at > 0)
            j->restarts++;
        log_info("job %s: submitting to Slurm%s", j->id, j->restarts ? " (resuming)" : "");
        persist(j);
        changed(t);
        return 0;
    }
    set_state(j, JOB_RUNNING);
    if (j->started_at > 0)
        j->restarts++;
    else
        j->started_at = now_unix();
    if (ranks > 1)
        log_info("job %s: starting %d ranks × %d thread%s under mpirun (pid %d%s)", j->id, ranks,
                 spec.threads, spec.threads == 1 ? "" : "s", j->pid, j->restarts ? ", resuming" : "");
    else
        log_info("job %s: starting (pid %d%s)", j->id, j->pid, j->restarts ? ", resuming" : "");
    persist(j);
    changed(t);
    return 0;
}

static void schedule(job_table *t)
{
    if (!t->started || t->shutting_down || t->space_wait)
        return;
    /* Strict FIFO: a queued job whose files are still being written or read
     * holds the ones behind it back (for a moment) rather than be overtaken. */
    advance_hint(t);
    for (size_t i = t->queue_hint; i < t->n && t->running < t->max_jobs; i++) {
        job *j = t->jobs[i];
        if (j->state != JOB_QUEUED || j->x || j->held)
            continue;   /* a job waiting in Slurm's queue has been handed over already; a held one waits */
        if (j->hist_loading)
            break;
        start_job(j);
    }
}

/* ------------------------------------------------------------- the tick */

static void on_tick(uv_timer_t *h)
{
    job_table *t = h->data;
    double now = now_monotonic();
    check_disks(t, now);
    /* only the live jobs: a process, or a write pending or failed */
    for (job *j = t->live, *next; j; j = next) {
        next = j->live_next;
        if ((j->progress_dirty || j->write_failed) && !j->write_inflight &&
            now - j->last_write >= JOBS_STATUS_INTERVAL_S)
            persist(j);
        if (j->x && j->kill_deadline > 0 && now >= j->kill_deadline) {
            log_warn("job %s: training process %d did not stop in time; killing it", j->id, j->pid);
            exec_kill(j->x);
            j->kill_deadline = 0;
        }
        if (job_quiet(j)) {
            live_del(j);
            compact(j);
        }
    }
}

/* executor: slurm — jobs a previous traind handed to Slurm are watched
 * again by their Slurm job id, not submitted twice. */
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
            set_state(j, JOB_QUEUED);   /* submitted afresh by schedule(), resuming */
            continue;
        }
        j->x = x;
        live_add(j);
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
    uv_timer_start(&t->tick, on_tick, 500, 500);
    schedule(t);
}

void jobs_configure(job_table *t, const dconfig *c)
{
    set_settings(t, c);
    schedule(t);
}

/* ------------------------------------------------------------ submitting */

static job *new_job(job_table *t, const char *id, const char *name)
{
    job *j = job_alloc(t, id);
    j->name = xstrdup(name);
    j->seq = t->next_seq++;
    j->submitted_at = now_unix();
    set_state(j, JOB_QUEUED);
    table_append(t, j);
    return j;
}

void jobs_add_intake(job_table *t, spool_intake *it)
{
    job *j = new_job(t, it->id, it->valid ? it->cfg.name : it->stem);
    j->submitted_at = it->submitted_at;
    if (it->valid) {
        j->config = cfg_to_json(&it->cfg);
        derive_from_config(j);
        j->total_steps = it->cfg.sched.total_steps;
    } else {
        cJSON_Delete(j->errors);
        j->errors = diags_to_json(&it->errs);
        set_ended(j, JOB_REJECTED);
        j->finished_at = j->submitted_at;
    }
    spool_intake_free(it);
    persist(j);
    changed(t);
    schedule(t);
}

/* The top-level "name" of a YAML document, if it has a usable one. */
static char *yaml_name(const char *yaml, size_t len)
{
    diag_list_t scratch = DIAG_LIST_INIT;
    ynode *root = ytree_parse(yaml, len, &scratch);
    diag_free(&scratch);
    char *name = NULL;
    const ynode *n = root && root->kind == YNODE_MAP ? ymap_get(root, "name") : NULL;
    if (n && n->kind == YNODE_SCALAR && n->value[0] && !yscalar_is_null(n))
        name = xstrdup(n->value);
    ytree_free(root);
    return name;
}

/* A POST /jobs on its way through the thread pool. */
typedef struct submit_req {
    uv_work_t work;
    job_table *t;
    char *yaml;
    size_t len;
    char *default_name;
    char *idem_key;                 /* or NULL */
    char *jobs_dir;
    char **data_dirs;               /* a copy: a SIGHUP may replace the table's */
    size_t n_data_dirs;
    jobs_submit_cb done;
    void *arg;
    jobs_submit_extra x;            /* prepare/undo/parent (x.parent owned) */
    /* results */
    int rc;                         /* 0 or -errno: the config could not be saved */
    char *failure;                  /* then: what failed, for the log */
    char id[SPOOL_ID_MAX + 1];
    bool valid;
    run_config cfg;
    diag_list_t errs;
} submit_req;

static void submit_req_free(submit_req *r)
{
    diag_free(&r->errs);
    free(r->failure);
    free(r->yaml);
    free(r->default_name);
    free(r->idem_key);
    free(r->jobs_dir);
    strv_free(r->data_dirs, r->n_data_dirs);
    if (r->x.free_arg)
        r->x.free_arg(r->x.arg);
    free((char *)r->x.parent);
    free((char *)r->x.experiment);
    free((char *)r->x.params);
    free(r);
}

/* Off the loop: claim the job's directory, save config.yaml durably (file,
 * its directory and the new entry in jobs/ all fsync'd), then validate. */
static void submit_work(uv_work_t *w)
{
    submit_req *r = w->data;
    char *stem = yaml_name(r->yaml, r->len);
    const char *base = stem ? stem : r->default_name && *r->default_name ? r->default_name : "job";
    r->rc = spool_claim_id(r->jobs_dir, base, r->id);
    free(stem);
    if (r->rc < 0) {
        r->failure = xasprintf("cannot create a job directory in %s: %s", r->jobs_dir, strerror(-r->rc));
        return;
    }
    char *dir = xasprintf("%s/%s", r->jobs_dir, r->id);
    char *cpath = xasprintf("%s/config.yaml", dir);
    /* The key goes first: once config.yaml is on disk (the job exists,
     * answered or not) a retry with the same key finds it. */
    char *kpath = xasprintf("%s/" JOBS_IDEM_KEY_FILE, dir);
    r->rc = r->idem_key ? write_file_atomic(kpath, r->idem_key, strlen(r->idem_key), 0644) : 0;
    bool prepared = false;
    if (r->rc == 0 && r->x.prepare) {
        r->rc = r->x.prepare(dir, r->x.arg);
        prepared = r->rc == 0;
        if (r->rc < 0)
            r->failure = xasprintf("job %s: cannot prepare its directory: %s", r->id, strerror(-r->rc));
    }
    if (r->rc == 0)
        r->rc = write_file_atomic(cpath, r->yaml, r->len, 0644);
    if (r->rc == 0)
        r->rc = fsync_parent_dir(dir);
    if (r->rc < 0) {
        if (!r->failure)
            r->failure = xasprintf("job %s: cannot save %s: %s", r->id, cpath, strerror(-r->rc));
        if ((prepared || r->x.prepare) && r->x.undo)
            r->x.undo(dir, r->x.arg);
        unlink(cpath);
        unlink(kpath);
        rmdir(dir);
    }
    free(kpath);
    free(cpath);
    free(dir);
    if (r->rc < 0)
        return;
    char *data_path = NULL;
    r->valid = spool_validate(r->yaml, r->len, r->id, r->data_dirs, r->n_data_dirs, &r->cfg, &data_path,
                              &r->errs) == 0;
    free(data_path);
}

/* Back on the loop: the job joins the table, then the answer. */
static void submit_done(uv_work_t *w, int status)
{
    submit_req *r = w->data;
    job_table *t = r->t;
    t->pending_work--;
    t->submitting--;
    if (r->idem_key)
        key_done(t, r->idem_key);
    if (r->rc < 0) {
        log_error("%s; submission refused", r->failure);
        r->done(r->arg, r->rc, NULL, NULL);
    } else {
        job *j = new_job(t, r->id, r->valid ? r->cfg.name : r->id);
        j->idem_key = r->idem_key;
        r->idem_key = NULL;
        if (r->x.parent) {
            j->parent = (char *)r->x.parent;
            j->forked_at = r->x.forked_at;
            r->x.parent = NULL;
            /* its history starts as its metrics.jsonl will: the parent's points up to the fork */
            const job *p = find(t, j->parent);
            for (size_t i = 0; p && i < p->n_hist && p->hist[i].step <= j->forked_at; i++)
                hist_push(j, &p->hist[i]);
        }
        if (r->x.experiment) {
            j->experiment = (char *)r->x.experiment;
            r->x.experiment = NULL;
            j->params = r->x.params ? cJSON_Parse(r->x.params) : NULL;
        }
        if (j->idem_key)
            job_index_put(t->by_key, j->idem_key, j);
        cJSON *errors = NULL;
        if (r->valid) {
            j->config = cfg_to_json(&r->cfg);
            derive_from_config(j);
            j->total_steps = r->cfg.sched.total_steps;
            cfg_free(&r->cfg);
            log_info("job %s: submitted over HTTP", j->id);
        } else {
            cJSON_Delete(j->errors);
            j->errors = diags_to_json(&r->errs);
            set_ended(j, JOB_REJECTED);
            j->finished_at = j->submitted_at;
            errors = diags_to_json(&r->errs);
            log_warn("job %s: submitted over HTTP: rejected (%zu problem%s)", j->id, r->errs.n,
                     r->errs.n == 1 ? "" : "s");
        }
        persist(j);
        changed(t);
        schedule(t);
        r->done(r->arg, r->valid ? API_OK : API_INVALID, xstrdup(j->id), errors);
    }
    submit_req_free(r);
    (void)status;
    check_shutdown_done(t);
}

/* ---- Idempotency-Key ---- */

static job *find_by_key(const job_table *t, const char *key)
{
    return job_index_get(t->by_key, key);
}

static bool key_inflight(const job_table *t, const char *key)
{
    for (size_t i = 0; i < t->n_keys_inflight; i++)
        if (strcmp(t->keys_inflight[i], key) == 0)
            return true;
    return false;
}

static void key_done(job_table *t, const char *key)
{
    for (size_t i = 0; i < t->n_keys_inflight; i++)
        if (strcmp(t->keys_inflight[i], key) == 0) {
            free(t->keys_inflight[i]);
            t->keys_inflight[i] = t->keys_inflight[--t->n_keys_inflight];
            return;
        }
}

bool jobs_submit_replay(job_table *t, const char *key, jobs_submit_cb done, void *arg)
{
    if (key_inflight(t, key)) {
        done(arg, API_IN_PROGRESS, NULL, NULL);
        return true;
    }
    const job *j = find_by_key(t, key);
    if (!j)
        return false;
    log_info("job %s: POST /jobs again with its Idempotency-Key: answered with the same job", j->id);
    if (j->state == JOB_REJECTED)
        done(arg, API_INVALID, xstrdup(j->id), cJSON_Duplicate(j->errors, 1));
    else
        done(arg, API_OK, xstrdup(j->id), NULL);
    return true;
}

void jobs_submit(job_table *t, const char *yaml, size_t len, const char *default_name, const char *idem_key,
                 jobs_submit_cb done, void *arg)
{
    jobs_submit_ex(t, yaml, len, default_name, idem_key, NULL, done, arg);
}

void jobs_submit_ex(job_table *t, const char *yaml, size_t len, const char *default_name, const char *idem_key,
                    const jobs_submit_extra *x, jobs_submit_cb done, void *arg)
{
    bool answered = idem_key && jobs_submit_replay(t, idem_key, done, arg);
    if (!answered && t->shutting_down) {
        done(arg, API_UNAVAILABLE, NULL, NULL);
        answered = true;
    }
    if (answered) {
        if (x && x->free_arg)
            x->free_arg(x->arg);
        return;
    }
    submit_req *r = xcalloc(1, sizeof *r);
    if (x) {
        r->x = *x;
        r->x.parent = x->parent ? xstrdup(x->parent) : NULL;
        r->x.experiment = x->experiment ? xstrdup(x->experiment) : NULL;
        r->x.params = x->params ? xstrdup(x->params) : NULL;
    }
    r->work.data = r;
    r->t = t;
    r->yaml = xstrndup(yaml, len);
    r->len = len;
    r->default_name = default_name ? xstrdup(default_name) : NULL;
    r->idem_key = idem_key ? xstrdup(idem_key) : NULL;
    r->jobs_dir = xstrdup(t->jobs_dir);
    r->data_dirs = strv_dup(t->data_dirs, t->n_data_dirs);
    r->n_data_dirs = t->n_data_dirs;
    r->done = done;
    r->arg = arg;
    int rc = uv_queue_work(t->loop, &r->work, submit_work, submit_done);
    if (rc < 0) {
        log_error("POST /jobs: cannot queue the work: %s", uv_strerror(rc));
        submit_req_free(r);
        done(arg, -EIO, NULL, NULL);
        return;
    }
    t->pending_work++;
    t->submitting++;
    if (idem_key) {
        t->keys_inflight = xrealloc(t->keys_inflight, (t->n_keys_inflight + 1) * sizeof *t->keys_inflight);
        t->keys_inflight[t->n_keys_inflight++] = xstrdup(idem_key);
    }
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
    check_shutdown_done(t);
}

int jobs_lookup(job_table *t, const char *id, jobs_info *out)
{
    const job *j = find(t, id);
    if (!j)
        return -ENOENT;
    out->state = j->state;
    out->checkpoint_step = j->checkpoint_step;
    out->step = j->step;
    out->total_steps = j->total_steps;
    out->loss_avg = j->loss_avg;
    out->eval_loss = j->eval_loss;
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

int jobs_cancel(job_table *t, const char *id, void (*done)(void *arg, int rc), void *arg)
{
    job *j = find(t, id);
    if (!j)
        return API_NOT_FOUND;
    if (job_state_ended(j->state))
        return API_CONFLICT;
    if (j->state == JOB_QUEUED && !j->x) {
        set_ended(j, JOB_CANCELLED);
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
        persist_then(j, done, arg);
    else
        persist(j);
    changed(t);
    return API_OK;
}

int jobs_log_tail(job_table *t, const char *id, size_t max_bytes, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    const job *j = find(t, id);
    if (!j)
        return -ENOENT;
    char *path = xasprintf("%s/worker.log", j->dir);
    struct stat pre;
    if (lstat(path, &pre) == 0 && !S_ISREG(pre.st_mode)) {   /* a device is not even opened */
        free(path);
        return -EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);   /* never waits on a FIFO */
    free(path);
    if (fd < 0) {
        if (errno != ENOENT)
            return -errno;
        *out = xstrdup("");   /* never started: an empty log */
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    size_t size = (size_t)st.st_size, want = size < max_bytes ? size : max_bytes;
    off_t from = (off_t)(size - want);
    char *buf = xmalloc(want + 1);
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, buf + got, want - got, from + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    if (from > 0) {
        /* cut at a line start and say what was left out */
        char *nl = memchr(buf, '\n', got);
        size_t skip = nl ? (size_t)(nl - buf) + 1 : 0;
        char *text = xasprintf("[... %lld earlier bytes not shown ...]\n%s", (long long)from + (long long)skip,
                               buf + skip);
        free(buf);
        *out_len = strlen(text);
        *out = text;
        return 0;
    }
    *out = buf;
    *out_len = got;
    return 0;
}

/* ---------------------------------------------------------------- loading */

static int load_status(job *j, cJSON *o)
{
    if (!cJSON_IsObject(o))
        return -1;
    const cJSON *id = jget(o, "id"), *state = jget(o, "state"), *step = jget(o, "step");
    if (!cJSON_IsString(id) || strcmp(id->valuestring, j->id) != 0)
        return -1;
    int s = cJSON_IsString(state) ? job_state_from_name(state->valuestring) : -1;
    if (s < 0 || !cJSON_IsNumber(step) || step->valuedouble < 0)
        return -1;
    const cJSON *errors = jget(o, "errors"), *config = jget(o, "config"), *name = jget(o, "name");
    if (errors && !cJSON_IsArray(errors))
        return -1;
    set_state(j, (job_state)s);
    j->step = (long)step->valuedouble;
    j->total_steps = (long)jnum(o, "total_steps", 0);
    j->lr = jnum(o, "lr", NAN);
    j->loss = jnum(o, "loss", NAN);
    j->loss_avg = jnum(o, "loss_avg", NAN);
    j->grad_norm = jnum(o, "grad_norm", NAN);
    j->eval_loss = jnum(o, "eval_loss", NAN);
    double cs = jnum(o, "checkpoint_step", -1);
    j->checkpoint_step = cs >= 0 ? (long)cs : -1;
    j->restarts = (int)jnum(o, "restarts", 0);
    j->crashes = (int)jnum(o, "crashes", 0);
    j->seq = (unsigned long)jnum(o, "seq", 0);
    j->submitted_at = parse_time(jget(o, "submitted_at"));
    j->started_at = parse_time(jget(o, "started_at"));
    j->finished_at = parse_time(jget(o, "finished_at"));
    j->name = xstrdup(cJSON_IsString(name) ? name->valuestring : j->id);
    if (errors) {
        cJSON_Delete(j->errors);
        j->errors = cJSON_Duplicate(errors, 1);
    }
    if (cJSON_IsObject(config))   /* taken, not copied: o is thrown away */
        j->config = cJSON_DetachItemFromObjectCaseSensitive(o, "config");
    j->cancel_requested = cJSON_IsTrue(jget(o, "cancel_requested")) && !job_state_ended(j->state);
    const cJSON *sr = jget(o, "stop_reason");
    if (j->state == JOB_STOPPED && cJSON_IsString(sr))
        j->stop_reason = xasprintf("%.512s", sr->valuestring);
    const cJSON *sid = jget(o, "slurm_job_id");
    if (cJSON_IsString(sid) && strlen(sid->valuestring) <= EXEC_SCHED_ID_MAX &&
        strspn(sid->valuestring, "0123456789") == strlen(sid->valuestring))
        snprintf(j->sched_id, sizeof j->sched_id, "%s", sid->valuestring);
    return 0;
}

/* The config object of a compacted job: status.json's, else (an old or
 * partial status.json) config.yaml parsed again.  NULL when neither can
 * be read.  One small read (the page cache has it, mostly). */
static cJSON *config_from_disk(const job *j)
{
    return config_from_dir(j->dir, j->id);
}

/* Thread-safe: touches only the files (jobs_fill_deferred runs on the pool). */
static cJSON *config_from_dir(const char *dir, const char *id)
{
    char *path = xasprintf("%s/status.json", dir);
    char *buf;
    size_t len;
    cJSON *config = NULL;
    if (read_file_flags(path, STATUS_MAX_BYTES, O_NOFOLLOW, &buf, &len) == 0) {
        cJSON *o = cJSON_ParseWithLength(buf, len);
        if (cJSON_IsObject(jget(o, "config")))
            config = cJSON_DetachItemFromObjectCaseSensitive(o, "config");
        cJSON_Delete(o);
        free(buf);
    }
    free(path);
    if (config)
        return config;
    path = xasprintf("%s/config.yaml", dir);
    if (read_file_flags(path, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &buf, &len) == 0) {
        run_config cfg;
        diag_list_t errs = DIAG_LIST_INIT;
        cfg_parse_opts po = {.default_name = id};
        if (cfg_parse(buf, len, &po, &cfg, &errs) == 0) {
            config = cfg_to_json(&cfg);
            cfg_free(&cfg);
        }
        diag_free(&errs);
        free(buf);
    }
    free(path);
    return config;
}

/* No usable status.json: rebuild the job from its config.yaml. */
static int rebuild(job_table *t, job *j, const char *why)
{
    char *path = xasprintf("%s/config.yaml", j->dir);
    char *buf;
    size_t len;
    int rc = read_file_flags(path, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &buf, &len);
    struct stat st;
    double mtime = lstat(path, &st) == 0 ? (double)st.st_mtim.tv_sec : now_unix();
    free(path);
    if (rc == -ENOENT)
        return -1;   /* nothing was ever submitted here */
    j->submitted_at = mtime;
    if (rc < 0) {
        j->name = xstrdup(j->id);
        add_error(j, "cannot read config.yaml: %s", file_error_text(rc));
        set_ended(j, JOB_FAILED);
    } else {
        run_config cfg;
        char *data_path = NULL;
        diag_list_t errs = DIAG_LIST_INIT;
        if (spool_validate(buf, len, j->id, t->data_dirs, t->n_data_dirs, &cfg, &data_path, &errs) == 0) {
            j->name = xstrdup(cfg.name);
            j->config = cfg_to_json(&cfg);
            j->total_steps = cfg.sched.total_steps;
            set_state(j, JOB_QUEUED);
            cfg_free(&cfg);
        } else {
            j->name = xstrdup(j->id);
            cJSON_Delete(j->errors);
            j->errors = diags_to_json(&errs);
            set_ended(j, JOB_REJECTED);
            j->finished_at = mtime;
        }
        free(data_path);
        diag_free(&errs);
        free(buf);
    }
    log_warn("job %s: %s; rebuilt from config.yaml as %s", j->id, why, job_state_name(j->state));
    return 0;
}

/* The Idempotency-Key a job was POSTed with (jobs/<id>/idempotency.key). */
static void load_idem_key(job *j)
{
    char *p = xasprintf("%s/" JOBS_IDEM_KEY_FILE, j->dir);
    char *buf;
    size_t len;
    if (read_file_flags(p, API_IDEM_KEY_MAX, O_NOFOLLOW, &buf, &len) == 0) {
        if (api_idem_key_valid(buf))
            j->idem_key = buf;
        else
            free(buf);
    }
    free(p);
}

/* A fork's parent and step (fork.json, forkfile.h); an unreadable one is
 * told (its training process fails on it too). */
static void load_fork_info(job *j)
{
    forkfile f;
    int rc = forkfile_read(j->dir, &f);
    if (rc == -ENOENT)
        return;
    if (rc < 0) {
        log_warn("job %s: its " FORKFILE_NAME " is not valid; shown as no fork", j->id);
        return;
    }
    j->parent = xstrdup(f.parent);
    j->forked_at = f.at_step;
}

/* A key saved by a submit that died before its config.yaml: no job came of
 * it (nothing was answered), so the directory is as good as empty. */
/* A trial's experiment and values (trial.json); an invalid one is ignored. */
static void load_trial_info(job *j)
{
    char *p = xasprintf("%s/" JOBS_TRIAL_FILE, j->dir);
    char *buf;
    size_t len;
    if (read_file_flags(p, 1 << 16, O_NOFOLLOW, &buf, &len) == 0) {
        cJSON *o = cJSON_ParseWithLength(buf, len);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "experiment");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "params");
        if (cJSON_IsString(e) && spool_id_valid(e->valuestring) && cJSON_IsObject(v)) {
            j->experiment = xstrdup(e->valuestring);
            j->params = cJSON_Duplicate(v, 1);
        }
        cJSON_Delete(o);
        free(buf);
    }
    free(p);
}

static void drop_lone_key(const char *dir)
{
    char *c = xasprintf("%s/config.yaml", dir), *k = xasprintf("%s/" JOBS_IDEM_KEY_FILE, dir);
    struct stat st;
    if (lstat(c, &st) < 0 && errno == ENOENT) {
        unlink(k);
        forkfile_remove(dir);   /* a fork's links and fork.json, written before config.yaml */
        char *tr = xasprintf("%s/" JOBS_TRIAL_FILE, dir);
        unlink(tr);
        free(tr);
    }
    free(c);
    free(k);
}

/* A job that will run: its files must be its own — a FIFO, device or
 * symlink planted as one of them fails the job (the training process would
 * wait on it or follow it). */
static void check_job_files(job *j)
{
    static const char *const names[] = {"config.yaml", "metrics.jsonl", "checkpoint.bin", "worker.log"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = xasprintf("%s/%s", j->dir, names[i]);
        struct stat st;
        bool bad = lstat(p, &st) == 0 && !S_ISREG(st.st_mode);
        free(p);
        if (!bad)
            continue;
        log_error("job %s: jobs/%s/%s is not a regular file (a %s); the job fails", j->id, j->id, names[i],
                  S_ISLNK(st.st_mode) ? "symbolic link" : S_ISFIFO(st.st_mode) ? "FIFO" : "device or socket");
        add_error(j, "%s is not a regular file; refused", names[i]);
        set_ended(j, JOB_FAILED);
        j->dirty = true;
        return;
    }
}

static int cmp_seq(const void *a, const void *b)
{
    const job *x = *(job *const *)a, *y = *(job *const *)b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->submitted_at != y->submitted_at)
        return x->submitted_at < y->submitted_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Removes NAME.tmp.PID files of the daemon's own atomic writes (status.json,
 * config.yaml) left by a process that was killed while writing them. */
/* What one pass over a job directory found (so that loading a job costs
 * one readdir, not a probe per file). */
typedef struct dir_scan {
    bool opened;
    size_t entries;                  /* besides . and .., after the stale temp files went */
    bool has_key, has_config;
} dir_scan;

static void remove_stale_tmp(const char *dir, dir_scan *ds)
{
    memset(ds, 0, sizeof *ds);
    DIR *d = opendir(dir);
    if (!d)
        return;
    ds->opened = true;
    /* trainer_state.json is the worker's, but a job that ended as its
     * worker was killed writing it is never resumed to sweep it */
    static const char *const prefixes[] = {"status.json.tmp.", "config.yaml.tmp.", JOBS_IDEM_KEY_FILE ".tmp.",
                                           "trainer_state.json.tmp.", FORKFILE_NAME ".tmp.", JOBS_TRIAL_FILE ".tmp.",
                                           "." FORKFILE_CKPT ".tmp.", "." FORKFILE_METRICS ".tmp."};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        ds->entries++;
        if (strcmp(e->d_name, JOBS_IDEM_KEY_FILE) == 0)
            ds->has_key = true;
        else if (strcmp(e->d_name, "config.yaml") == 0)
            ds->has_config = true;
        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
            size_t pl = strlen(prefixes[i]);
            if (strncmp(e->d_name, prefixes[i], pl) != 0)
                continue;
            char *end;
            long pid = strtol(e->d_name + pl, &end, 10);
            if (*end || pid <= 0 || (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)))
                continue;
            if (unlinkat(dirfd(d), e->d_name, 0) == 0)
                ds->entries--;
        }
    }
    closedir(d);
}

/* read_file_flags(jobs/<id>/status.json, O_NOFOLLOW) for the start-up
 * loop, in fewer system calls: relative to the jobs directory (a shorter
 * path walk), without an access-time update (O_NOATIME where the daemon
 * owns the file: a first read after a write would journal one per job),
 * and one read for a file that does not grow (a short read of a regular
 * file is its end).  The same checks: no symlink followed, no device or
 * FIFO opened, the size bounded.  The same errors. */
static int read_status_at(int dfd, const char *id, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    char rel[NAME_MAX + 16];
    snprintf(rel, sizeof rel, "%s/status.json", id);
    struct stat st;
    if (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return S_ISDIR(st.st_mode) ? -EISDIR : S_ISLNK(st.st_mode) ? -ELOOP : -EINVAL;
    int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    int fd = openat(dfd, rel, flags | O_NOATIME);
    if (fd < 0 && errno == EPERM)
        fd = openat(dfd, rel, flags);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return S_ISREG(st.st_mode) ? -e : S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    }
    if ((size_t)st.st_size > STATUS_MAX_BYTES) {
        close(fd);
        return -EFBIG;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return -e;
        }
        len += (size_t)r;
        if (r == 0 || len < cap)
            break;   /* the end */
        if (cap > STATUS_MAX_BYTES) {
            free(buf);
            close(fd);
            return -EFBIG;
        }
        cap *= 2;   /* it grew meanwhile */
        buf = xrealloc(buf, cap + 1);
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

int jobs_load(job_table *t)
{
    DIR *d = opendir(t->jobs_dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    int loaded = 0;
    while ((e = readdir(d)) != NULL) {
        if (!spool_id_valid(e->d_name) || find(t, e->d_name))
            continue;
        job *j = job_alloc(t, e->d_name);
        struct stat st;
        /* readdir's type spares a stat per job (lstat where it cannot tell) */
        if (e->d_type != DT_DIR && (lstat(j->dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
            if (S_ISLNK(st.st_mode))   /* its files would be read and written wherever it points */
                log_warn("jobs/%s: a symbolic link, not a job directory; ignored (never followed)", e->d_name);
            job_free(j);
            continue;
        }
        char *buf = NULL;
        size_t len;
        int rc = read_status_at(dirfd(d), e->d_name, &buf, &len);
        cJSON *o = rc == 0 ? cJSON_ParseWithLength(buf, len) : NULL;
        /* A job that ended (its last status.json written whole) has no
         * writer's temp files to clean up: its directory is not scanned.
         * The rest are: stale temp files, a lone key, an empty directory. */
        const cJSON *st0 = jget(o, "state");
        int s0 = cJSON_IsString(st0) ? job_state_from_name(st0->valuestring) : -1;
        bool ended0 = s0 >= 0 && job_state_ended((job_state)s0) && !cJSON_IsTrue(jget(o, "cancel_requested"));
        dir_scan ds;
        memset(&ds, 0, sizeof ds);
        if (!ended0) {
            remove_stale_tmp(j->dir, &ds);
            if (ds.has_key && !ds.has_config) {
                drop_lone_key(j->dir);
                ds.entries--;
                ds.has_key = false;
            }
            if ((!ds.opened || ds.entries == 0) && rmdir(j->dir) == 0) {
                /* an id claimed by a daemon that died before the file arrived
                 * (the submission was never acknowledged) */
                log_info("jobs/%s: empty (a submission that never arrived); removed", e->d_name);
                cJSON_Delete(o);
                free(buf);
                job_free(j);
                continue;
            }
        }
        const char *why = NULL;
        if (rc == 0) {
            if (load_status(j, o) != 0) {
                why = "status.json is corrupt";
                /* start from a clean slate */
                job *fresh = job_alloc(t, e->d_name);
                job_free(j);
                j = fresh;
            }
            cJSON_Delete(o);
            free(buf);
        } else {
            why = rc == -ENOENT ? "status.json is missing" :
                  rc == -EINVAL || rc == -ELOOP ? "status.json is not a regular file" : "status.json cannot be read";
        }
        if (why && rebuild(t, j, why) != 0) {
            log_warn("jobs/%s: no config.yaml and no status.json; ignored", e->d_name);
            job_free(j);
            continue;
        }
        if (!j->config && j->state != JOB_REJECTED) {
            /* an old or partial status.json: the config object comes from the file */
            char *cpath = xasprintf("%s/config.yaml", j->dir);
            run_config cfg;
            diag_list_t errs = DIAG_LIST_INIT;
            cfg_parse_opts po = {.default_name = j->id};
            char *cbuf;
            size_t clen;
            if (read_file_flags(cpath, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &cbuf, &clen) == 0) {
                if (cfg_parse(cbuf, clen, &po, &cfg, &errs) == 0) {
                    j->config = cfg_to_json(&cfg);
                    cfg_free(&cfg);
                }
                free(cbuf);
            }
            diag_free(&errs);
            free(cpath);
        }
        derive_from_config(j);
        if (ds.has_key || !ds.opened)
            load_idem_key(j);
        load_fork_info(j);
        load_trial_info(j);
        if (!job_state_ended(j->state))
            check_job_files(j);
        if (j->cancel_requested) {
            /* cancelled (202) before traind stopped: it stays cancelled, at
             * its last checkpoint */
            set_ended(j, JOB_CANCELLED);
            j->cancel_requested = false;
            log_info("job %s: its cancel was requested before traind stopped; cancelled at step %ld", j->id,
                     j->step);
            j->dirty = true;
        }
        if (t->slurm && !job_state_ended(j->state)) {
            /* the id in the job directory is the one to trust: it is written
             * as soon as sbatch answers, status.json a moment later */
            char *ipath = xasprintf("%s/slurm_job_id", j->dir), *ibuf;
            size_t ilen;
            if (read_file(ipath, 64, &ibuf, &ilen) == 0) {
                size_t n = strspn(ibuf, "0123456789");
                if (n > 0 && n <= EXEC_SCHED_ID_MAX) {
                    memcpy(j->sched_id, ibuf, n);
                    j->sched_id[n] = '\0';
                }
                free(ibuf);
            } else {
                j->sched_id[0] = '\0';   /* its Slurm job ended (the file goes with it) */
            }
            free(ipath);
            j->adopt = j->sched_id[0] != '\0';
        }
        if (j->state == JOB_RUNNING && j->adopt) {
            log_info("job %s: was running in Slurm job %s when traind stopped; adopting it", j->id, j->sched_id);
        } else if (j->state == JOB_RUNNING) {
            set_state(j, JOB_QUEUED);   /* resumes from its checkpoint; start_job counts the restart */
            log_info("job %s: was running at step %ld when traind stopped; queued to resume", j->id, j->step);
        }
        if (why || j->state == JOB_QUEUED)
            j->dirty = true;
        /* an ended job's history is read from metrics.jsonl when asked for
         * (one rebuilt from its files is read now: it may fill in the
         * progress) */
        if (job_state_ended(j->state) && !why)
            j->hist_on_disk = true;
        compact(j);   /* now, not after the loop: the heap never holds every config */
        table_append(t, j);
        loaded++;
    }
    closedir(d);
    if (t->n > 1)
        qsort(t->jobs, t->n, sizeof *t->jobs, cmp_seq);
    for (size_t i = 0; i < t->n; i++)
        t->jobs[i]->pos = i;
    for (size_t i = 0; i < t->n; i++) {
        job *j = t->jobs[i];
        if (j->seq >= t->next_seq)
            t->next_seq = j->seq + 1;
    }
    for (size_t i = 0; i < t->n; i++) {
        job *j = t->jobs[i];
        if (j->seq == 0)
            j->seq = t->next_seq++;
        if (!j->hist_on_disk) {
            char *mpath = xasprintf("%s/metrics.jsonl", j->dir);
            if (access(mpath, F_OK) == 0)
                load_history(j);
            free(mpath);
        }
        if (j->dirty)
            start_write(j);
        else
            compact(j);
    }
    t->queue_hint = 0;
    malloc_trim(0);   /* the parse trees of every status.json are gone: give their pages back */
    changed(t);
    return loaded;
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
    check_shutdown_done(t);
}

static void check_shutdown_done(job_table *t)
{
    if (!t->shutting_down || t->shutdown_reported)
        return;
    if (t->running > 0)
        return;
    /* last progress of every job to disk (any with some is live) */
    for (job *j = t->live; j; j = j->live_next) {
        if ((j->dirty || j->progress_dirty || j->write_failed) && !j->write_inflight)
            persist(j);
    }
    if (t->pending_work > 0)
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
        uv_timer_start(&t->tick, on_tick, 500, 500);
    }
    check_shutdown_done(t);
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
    strv_free(t->keys_inflight, t->n_keys_inflight);
    free(t->spool);
    free(t->jobs_dir);
    free(t->exe);
    executor_free(t->ex);
    strv_free(t->data_dirs, t->n_data_dirs);
    free(t);
}

/*
 * jobs_json — job objects as JSON: the job object of traind(8) THE JOB OBJECT (also what
 * status.json holds), the lists and pages of GET /jobs, GET /status's
 * summary, GET /metrics' numbers, and status.json read back into a job.
 */
#include "jobs_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "traind/util.h"

/* ------------------------------------------------------- config-derived */

const cJSON *jobs_json_item(const cJSON *o, const char *k)
{
    return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

double jobs_json_num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = jobs_json_item(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* ---------------------------------------------------------- job objects */

void jobs_json_add_num_or_null(cJSON *o, const char *k, double v)
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

/* Pages of many jobs (GET /jobs) leave an ended job's config on disk to be
 * read on the thread pool, where the page is printed: the job object gets
 * JOBS_DEFERRED_CONFIG (its directory) and jobs_fill_deferred fills the
 * config in.  Reading a page's status.json files here held the loop. */
static bool g_defer_config;
/* status.json's text (job_status_json): a job's errors kept on disk are
 * left out, for the write on the pool to put in (jobs_store.c); GET
 * /jobs/{id}: errors not yet written (errors_pending) are parsed here. */
static bool g_errors_left_out, g_errors_pending;

/* "stop_reason" of a stopped job; "held" while one waits at a rung. */
static void add_early_stop_json(cJSON *o, const job *j)
{
    if (j->state == JOB_STOPPED)
        cJSON_AddStringToObject(o, "stop_reason", j->stop_reason ? j->stop_reason : "stopped early");
    if (j->held && j->state == JOB_QUEUED)
        cJSON_AddTrueToObject(o, "held");
}

cJSON *job_to_json(const job *j, int queue_pos)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "name", j->name ? j->name : j->id);
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON_AddNumberToObject(o, "step", (double)j->pt.step);
    add_total_steps(o, j);
    jobs_json_add_num_or_null(o, "lr", j->pt.lr);
    jobs_json_add_num_or_null(o, "loss", j->pt.loss);
    jobs_json_add_num_or_null(o, "loss_avg", j->pt.loss_avg);
    jobs_json_add_num_or_null(o, "grad_norm", j->pt.grad_norm);
    if (j->has_eval || isfinite(j->pt.eval_loss))
        jobs_json_add_num_or_null(o, "eval_loss", j->pt.eval_loss);
    bool running = j->state == JOB_RUNNING;
    double rate = running ? j->pt.steps_per_s : dnan();
    jobs_json_add_num_or_null(o, "steps_per_s", rate);
    jobs_json_add_num_or_null(o, "tokens_per_s", j->tokens_per_step > 0 ? rate * j->tokens_per_step : dnan());
    double eta = running && rate > 0 ? (double)(j->total_steps - j->pt.step) / rate : dnan();
    if (j->state == JOB_SUCCEEDED)
        eta = 0;
    jobs_json_add_num_or_null(o, "eta_s", eta);
    cJSON_AddNullToObject(o, "epoch");
    if (j->state == JOB_QUEUED) {
        if (queue_pos <= 0)
            queue_pos = job_queue_position((job *)j);
        cJSON_AddNumberToObject(o, "queue_position", queue_pos);
    }
    add_time(o, "submitted_at", j->submitted_at);
    add_time(o, "started_at", j->started_at);
    add_time(o, "finished_at", j->finished_at);
    cJSON_AddNumberToObject(o, "ranks", j->ranks > 0 ? j->ranks : 1);
    cJSON_AddNumberToObject(o, "tokens_per_step", j->tokens_per_step > 0 ? j->tokens_per_step : 0);
    cJSON_AddNumberToObject(o, "restarts", j->restarts);
    cJSON_AddNumberToObject(o, "crashes", j->crashes);
    if (j->checkpoint_step >= 0)
        cJSON_AddNumberToObject(o, "checkpoint_step", (double)j->checkpoint_step);
    else
        cJSON_AddNullToObject(o, "checkpoint_step");
    if (running && j->pid > 0)
        cJSON_AddNumberToObject(o, "pid", j->pid);
    double stall = running && j->stall_last > 0 ? job_stall_timeout(j) : 0;
    if (stall > 0)   /* the stall watchdog's timeout now (jobs_stall.c) */
        cJSON_AddNumberToObject(o, "stall_timeout_s", round(stall * 10) / 10);
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
    cJSON *pending = j->errors_on_disk && j->errors_pending && (g_errors_pending || !g_defer_config) &&
                     !g_errors_left_out ? cJSON_Parse(j->errors_pending) : NULL;
    if (j->errors_on_disk && g_errors_left_out) {
        ;   /* the writer's to put in, off the loop */
    } else if (pending) {
        cJSON_AddItemToObject(o, "errors", pending);   /* not in status.json yet: every one from here */
    } else if (j->errors_on_disk && g_defer_config) {
        cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(j->errors, 1));   /* the summary, until filled */
        cJSON_AddStringToObject(o, JOBS_DEFERRED_ERRORS, j->dir);
    } else {
        cJSON *all = j->errors_on_disk ? errors_from_dir(j->dir) : NULL;
        cJSON_AddItemToObject(o, "errors", all ? all : cJSON_Duplicate(j->errors, 1));
    }
    if (!j->config && j->config_on_disk && g_defer_config) {
        cJSON_AddNullToObject(o, "config");
        cJSON_AddStringToObject(o, JOBS_DEFERRED_CONFIG, j->dir);
        return o;
    }
    cJSON *config = j->config ? cJSON_Duplicate(j->config, 1) : j->config_on_disk ? config_from_disk(j) : NULL;
    cJSON_AddItemToObject(o, "config", config ? config : cJSON_CreateNull());
    return o;
}

/* One job object's deferred config (and config_keys, GET /jobs/{id}). */
static void fill_one(cJSON *o)
{
    cJSON *kd = cJSON_GetObjectItemCaseSensitive(o, JOBS_DEFERRED_KEYS);
    if (cJSON_IsString(kd)) {
        cJSON *keys = config_keys_from_dir(kd->valuestring);
        cJSON_DeleteItemFromObjectCaseSensitive(o, JOBS_DEFERRED_KEYS);
        cJSON_AddItemToObject(o, "config_keys", keys ? keys : cJSON_CreateNull());
    }
    cJSON *ed = cJSON_GetObjectItemCaseSensitive(o, JOBS_DEFERRED_ERRORS);
    if (cJSON_IsString(ed)) {
        cJSON *all = errors_from_dir(ed->valuestring);
        cJSON_DeleteItemFromObjectCaseSensitive(o, JOBS_DEFERRED_ERRORS);
        if (all)
            cJSON_ReplaceItemInObjectCaseSensitive(o, "errors", all);
    }
    cJSON *d = cJSON_GetObjectItemCaseSensitive(o, JOBS_DEFERRED_CONFIG);
    if (!cJSON_IsString(d))
        return;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    cJSON *config = config_from_dir(d->valuestring, cJSON_IsString(id) ? id->valuestring : "job");
    cJSON_DeleteItemFromObjectCaseSensitive(o, JOBS_DEFERRED_CONFIG);
    if (config)
        cJSON_ReplaceItemInObjectCaseSensitive(o, "config", config);
}

void jobs_fill_deferred(cJSON *doc)
{
    if (cJSON_IsObject(doc)) {   /* GET /jobs/{id} */
        fill_one(doc);
        return;
    }
    cJSON *o;
    cJSON_ArrayForEach(o, doc)
        fill_one(o);
}

/* Index of the job with this id in t->jobs (seq order), or -1. */
static long index_of(const job_table *t, const char *id)
{
    const job *j = job_find(t, id);
    return j ? (long)j->pos : -1;
}

/* GET /jobs?q=: the job's name or id holds q, ignoring ASCII case (NULL: any). */
static bool query_matches(const job *j, const char *q)
{
    return !q || !*q || (j->name && strcasestr(j->name, q)) || strcasestr(j->id, q);
}

int jobs_page_json(void *jobs, const char *state, const char *q, const char *after, size_t limit,
                   struct cJSON **out, char **next_after)
{
    job_table *t = jobs;
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
    jobs_advance_queue_hint(t);
    int queued = start >= (long)t->queue_hint ? jobs_queued_between(t, t->queue_hint, (size_t)start + 1) : 0;
    cJSON *a = cJSON_CreateArray();
    size_t got = 0;
    long i = start;
    for (; i >= 0 && got < limit; i--) {
        const job *j = t->jobs[i];
        int pos = j->state == JOB_QUEUED ? queued-- : 0;
        if ((state && (int)j->state != want) || !query_matches(j, q))
            continue;
        g_defer_config = true;
        cJSON_AddItemToArray(a, job_to_json(j, pos));
        g_defer_config = false;
        got++;
    }
    /* more after this page? */
    for (long k = i; k >= 0 && got == limit; k--)
        if ((!state || (int)t->jobs[k]->state == want) && query_matches(t->jobs[k], q)) {
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

/* A job in a few numbers (the active jobs of /status and /metrics): id,
 * state, step, total_steps, lr, loss. */
static cJSON *job_brief_json(const job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON_AddNumberToObject(o, "step", (double)j->pt.step);
    add_total_steps(o, j);
    jobs_json_add_num_or_null(o, "lr", j->pt.lr);
    jobs_json_add_num_or_null(o, "loss", j->pt.loss);
    return o;
}

cJSON *jobs_summary_json(void *jobs)
{
    job_table *t = jobs;
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
    jobs_advance_queue_hint(t);
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
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, job_brief_json(pick[i]));
    cJSON_AddNumberToObject(doc, "jobs_omitted", (double)(t->n - n));
    free(pick);
    return doc;
}

cJSON *jobs_prom_json(void *jobs)
{
    job_table *t = jobs;
    /* GET /metrics is scraped every few seconds: bounded whatever the
     * number of finished jobs.  The counts by state, and the numbers of the
     * active jobs only — the running ones and the next JOBS_STATUS_QUEUED
     * queued ones — without their config or errors. */
    cJSON *doc = cJSON_CreateObject();
    cJSON *counts = cJSON_AddObjectToObject(doc, "counts");
    for (int s = 0; s < JOB_NSTATES; s++)
        cJSON_AddNumberToObject(counts, job_state_name((job_state)s), t->counts[s]);
    size_t cap = (size_t)t->counts[JOB_RUNNING] + JOBS_STATUS_QUEUED + 1, n = 0;
    job **pick = xmalloc(cap * sizeof *pick);
    for (job *j = t->live; j && n < cap; j = j->live_next)
        if (j->state == JOB_RUNNING)
            pick[n++] = j;
    jobs_advance_queue_hint(t);
    for (size_t i = t->queue_hint, q = 0; i < t->n && q < JOBS_STATUS_QUEUED && n < cap; i++)
        if (t->jobs[i]->state == JOB_QUEUED) {
            pick[n++] = t->jobs[i];
            q++;
        }
    if (n > 1)
        qsort(pick, n, sizeof *pick, cmp_pos_desc);
    cJSON *a = cJSON_AddArrayToObject(doc, "jobs");
    for (size_t i = 0; i < n; i++) {
        const job *j = pick[i];
        cJSON *o = job_brief_json(j);
        jobs_json_add_num_or_null(o, "steps_per_s", j->state == JOB_RUNNING ? j->pt.steps_per_s : dnan());
        jobs_json_add_num_or_null(o, "eval_loss", j->pt.eval_loss);
        cJSON_AddItemToArray(a, o);
    }
    free(pick);
    return doc;
}

void jobs_get(void *jobs, const char *id, api_done done, void *arg)
{
    const job *j = job_find(jobs, id);
    if (!j)
        return done(arg, API_NOT_FOUND, NULL);
    g_defer_config = true;   /* an ended job's config is read on the pool (jobs_fill_deferred) */
    g_errors_pending = true;
    cJSON *o = job_to_json(j, 0);
    g_errors_pending = false;
    g_defer_config = false;
    if (j->dir)
        cJSON_AddStringToObject(o, JOBS_DEFERRED_KEYS, j->dir);   /* config_keys, read there too */
    done(arg, API_OK, o);
}

cJSON *job_status_json(const job *j)
{
    g_errors_left_out = true;
    cJSON *o = job_to_json(j, 0);
    g_errors_left_out = false;
    return o;
}

cJSON *jobs_event_json(void *jobs, const char *id)
{
    job_table *t = jobs;
    const job *j = job_find(t, id);
    if (!j)
        return NULL;
    bool was = g_defer_config;
    g_defer_config = true;   /* never status.json read here, on the loop */
    cJSON *o = job_to_json(j, 0);
    g_defer_config = was;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "config");
    cJSON_DeleteItemFromObjectCaseSensitive(o, JOBS_DEFERRED_CONFIG);
    cJSON_DeleteItemFromObjectCaseSensitive(o, JOBS_DEFERRED_ERRORS);   /* the summary goes out */
    /* long errors go out as their summary too: GET /events keeps the last
     * 65,536 events, and 70 KB of errors each filled it with them */
    cJSON *sum = job_errors_summary(j);
    if (sum)
        cJSON_ReplaceItemInObjectCaseSensitive(o, "errors", sum);
    return o;
}

/* ---------------------------------------------------------------- loading */

int job_load_status(job *j, cJSON *o)
{
    if (!cJSON_IsObject(o))
        return -1;
    const cJSON *id = jobs_json_item(o, "id"), *state = jobs_json_item(o, "state"), *step = jobs_json_item(o, "step");
    if (!cJSON_IsString(id) || strcmp(id->valuestring, j->id) != 0)
        return -1;
    int s = cJSON_IsString(state) ? job_state_from_name(state->valuestring) : -1;
    if (s < 0 || !cJSON_IsNumber(step) || step->valuedouble < 0)
        return -1;
    const cJSON *errors = jobs_json_item(o, "errors"), *config = jobs_json_item(o, "config"), *name = jobs_json_item(o, "name");
    if (errors && !cJSON_IsArray(errors))
        return -1;
    job_set_state(j, (job_state)s);
    j->pt.step = (long)step->valuedouble;
    j->total_steps = (long)jobs_json_num(o, "total_steps", 0);
    j->pt.lr = jobs_json_num(o, "lr", NAN);
    j->pt.loss = jobs_json_num(o, "loss", NAN);
    j->pt.loss_avg = jobs_json_num(o, "loss_avg", NAN);
    j->pt.grad_norm = jobs_json_num(o, "grad_norm", NAN);
    j->pt.eval_loss = jobs_json_num(o, "eval_loss", NAN);
    double cs = jobs_json_num(o, "checkpoint_step", -1);
    j->checkpoint_step = cs >= 0 ? (long)cs : -1;
    j->restarts = (int)jobs_json_num(o, "restarts", 0);
    j->crashes = (int)jobs_json_num(o, "crashes", 0);
    /* what followed from the config at intake, as the job object shows it */
    double ranks = jobs_json_num(o, "ranks", 1);
    j->ranks = ranks >= 1 && ranks <= 1e6 ? (int)ranks : 1;
    j->has_eval = jobs_json_item(o, "eval_loss") != NULL;
    double tps = jobs_json_num(o, "tokens_per_step", -1);
    j->tokens_per_step = tps > 0 && tps < 1e15 ? tps : 0;
    j->facts_known = tps >= 0;   /* a status.json older than tokens_per_step: retake_config */
    j->seq = (unsigned long)jobs_json_num(o, "seq", 0);
    j->submitted_at = parse_time(jobs_json_item(o, "submitted_at"));
    j->started_at = parse_time(jobs_json_item(o, "started_at"));
    j->finished_at = parse_time(jobs_json_item(o, "finished_at"));
    j->name = xstrdup(cJSON_IsString(name) ? name->valuestring : j->id);
    if (errors) {
        cJSON_Delete(j->errors);
        j->errors = cJSON_Duplicate(errors, 1);
    }
    if (cJSON_IsObject(config))   /* taken, not copied: o is thrown away */
        j->config = cJSON_DetachItemFromObjectCaseSensitive(o, "config");
    j->cancel_requested = cJSON_IsTrue(jobs_json_item(o, "cancel_requested")) && !job_state_ended(j->state);
    const cJSON *sr = jobs_json_item(o, "stop_reason");
    if (j->state == JOB_STOPPED && cJSON_IsString(sr))
        j->stop_reason = xasprintf("%.512s", sr->valuestring);
    const cJSON *sid = jobs_json_item(o, "slurm_job_id");
    if (cJSON_IsString(sid) && strlen(sid->valuestring) <= EXEC_SCHED_ID_MAX &&
        strspn(sid->valuestring, "0123456789") == strlen(sid->valuestring))
        snprintf(j->sched_id, sizeof j->sched_id, "%s", sid->valuestring);
    return 0;
}

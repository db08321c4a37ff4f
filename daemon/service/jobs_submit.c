/*
 * jobs_submit — how jobs arrive: a file taken from incoming/ and a POST
 * /jobs (saved durably and validated on the thread pool), with the
 * Idempotency-Key that makes a retried POST answer with the same job.
 */
#include "jobs_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/intake.h"
#include "traind/json.h"
#include "traind/log.h"
#include "traind/util.h"
#include "traind/yamltree.h"
#include "traind/spool.h"

/* ------------------------------------------------------------ submitting */

static job *new_job(job_table *t, const char *id, const char *name)
{
    job *j = job_alloc(t, id);
    j->name = xstrdup(name);
    j->seq = t->next_seq++;
    j->submitted_at = now_unix();
    job_set_state(j, JOB_QUEUED);
    jobs_append(t, j);
    return j;
}

void job_take_config(job *j, const run_config *cfg, const diag_list_t *errs)
{
    if (cfg) {
        intake_facts f;
        intake_facts_of(cfg, &f);
        cJSON_Delete(j->config);
        j->config = cfg_to_json(cfg);
        j->total_steps = f.total_steps;
        j->has_eval = f.has_eval;
        j->tokens_per_step = f.tokens_per_step;
        j->ranks = f.ranks;
    } else {
        cJSON_Delete(j->errors);
        j->errors = json_diag_list(errs);
        job_set_ended(j, JOB_REJECTED);
        j->finished_at = j->submitted_at;
    }
}

/* The one intake path: a config taken by either source (a file from
 * incoming/, a POST /jobs; claimed, saved and validated on the pool) joins
 * the table as a job, queued or rejected. */
static job *admit(job_table *t, spool_intake *it)
{
    job *j = new_job(t, it->id, it->valid ? it->cfg.name : it->stem ? it->stem : it->id);
    j->submitted_at = it->submitted_at;
    if (!it->valid && it->errs.n > 1 && it->errors_json && job_errors_long(strlen(it->errors_json))) {
        /* long errors (up to 100 problems, some 70 KB): the loop builds only
         * their summary; the text made on the pool goes to status.json from
         * the pool (jobs_store.c), and is dropped once it is there.  Built
         * here and freed, the full errors left the loop's heap fragmented
         * among the summaries kept: some 20 KiB of RSS per rejected job. */
        diag_list_t first = {it->errs.items, 1, 1};
        cJSON *one = json_diag_list(&first);
        cJSON_Delete(j->errors);
        j->errors = job_errors_summary_of(cJSON_GetArrayItem(one, 0), (int)it->errs.n, j->id);
        cJSON_Delete(one);
        j->errors_on_disk = true;
        j->errors_pending = it->errors_json;
        it->errors_json = NULL;
        job_set_ended(j, JOB_REJECTED);
        j->finished_at = j->submitted_at;
        return j;
    }
    job_take_config(j, it->valid ? &it->cfg : NULL, &it->errs);
    return j;
}

/* After admit and what the source adds: to disk, to the watchers, to the scheduler. */
static void admitted(job *j)
{
    job_persist(j);
    jobs_changed(j->t);
    jobs_schedule(j->t);
}

/* An intake freed on the thread pool, where it was made.  Freed here, on
 * the loop, its many small blocks (the problems' messages, the config's
 * strings) went to the loop thread's malloc cache, which handed them out
 * again for what the loop keeps (the jobs' summaries): kept blocks strewn
 * over the pool's heap, each holding a page (some 10 KiB of RSS per
 * rejected job).  The pool's own blocks stay the pool's. */
typedef struct intake_free_req {
    uv_work_t work;
    job_table *t;
    spool_intake *it;
} intake_free_req;

static void intake_free_work(uv_work_t *w)
{
    intake_free_req *r = w->data;
    spool_intake_free(r->it);
    r->it = NULL;
}

static void intake_free_done(uv_work_t *w, int status)
{
    intake_free_req *r = w->data;
    job_table *t = r->t;
    spool_intake_free(r->it);   /* cancelled: not freed there */
    free(r);
    t->pending_work--;
    (void)status;
    jobs_check_shutdown_done(t);
}

static void intake_free_on_pool(job_table *t, spool_intake *it)
{
    if (!it)
        return;
    intake_free_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->t = t;
    r->it = it;
    if (uv_queue_work(t->loop, &r->work, intake_free_work, intake_free_done) < 0) {
        spool_intake_free(it);
        free(r);
        return;
    }
    t->pending_work++;
}

void jobs_add_intake(job_table *t, spool_intake *it)
{
    job *j = admit(t, it);
    intake_free_on_pool(t, it);
    admitted(j);
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
    char *idem_key;                 /* scoped (jobs_idem_scoped), or NULL */
    uint64_t idem_fp;               /* its request's fingerprint, 0 = none */
    char *jobs_dir;
    char **data_dirs;               /* a copy: a SIGHUP may replace the table's */
    size_t n_data_dirs;
    size_t max_model_bytes;
    jobs_submit_cb done;
    void *arg;
    jobs_submit_extra x;            /* prepare/undo/parent (x.parent owned) */
    /* results */
    int rc;                         /* 0 or -errno: the config could not be saved */
    char *failure;                  /* then: what failed, for the log */
    bool refused;                   /* invalid, and no job made of it (it->errs say why) */
    bool no_room;                   /* the queue was full: validated only (400 when invalid, else 429) */
    spool_intake *it;               /* the id claimed, the config validated: as a file's intake */
} submit_req;

static void intake_free_on_pool(job_table *t, spool_intake *it);

static void submit_req_free(submit_req *r)
{
    intake_free_on_pool(r->t, r->it);
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
    intake_limits lim = {r->data_dirs, r->n_data_dirs, r->max_model_bytes};
    char *data_path = NULL;
    /* A POST (or fork) answered 400 makes no job: it is validated before an
     * id is claimed, so a refused config neither takes its name (the fixed
     * file would become NAME-2) nor leaves a rejected job behind; the 400
     * is its report.  A trial is still made a job, rejected or not: its
     * experiment records each trial by its job. */
    if (!r->x.experiment) {
        r->it->valid = intake_validate(r->yaml, r->len, base, &lim, &r->it->cfg, &data_path, &r->it->errs) == 0;
        free(data_path);
        data_path = NULL;
        if (!r->it->valid) {
            r->refused = true;
            free(stem);
            return;
        }
    }
    if (r->no_room) {
        /* a valid config with no place in the queue: 429, nothing made */
        r->rc = -EAGAIN;
        free(stem);
        return;
    }
    r->rc = spool_claim_id(r->jobs_dir, base, r->it->id);
    if (r->rc == 0 && r->it->valid && !stem) {
        /* named by default_name above, as a job is named by its id */
        free(r->it->cfg.name);
        r->it->cfg.name = xstrdup(r->it->id);
    }
    free(stem);
    if (r->rc < 0) {
        r->failure = xasprintf("cannot create a job directory in %s: %s", r->jobs_dir, strerror(-r->rc));
        return;
    }
    char *dir = xasprintf("%s/%s", r->jobs_dir, r->it->id);
    char *cpath = xasprintf("%s/config.yaml", dir);
    /* The key goes first: once config.yaml is on disk (the job exists,
     * answered or not) a retry with the same key finds it. */
    char *kpath = xasprintf("%s/" JOBS_IDEM_KEY_FILE, dir);
    char *ktext = r->idem_key ? job_idem_text(r->idem_key, r->idem_fp) : NULL;
    r->rc = ktext ? write_file_atomic(kpath, ktext, strlen(ktext), 0644) : 0;
    free(ktext);
    bool prepared = false;
    if (r->rc == 0 && r->x.prepare) {
        r->rc = r->x.prepare(dir, r->x.arg);
        prepared = r->rc == 0;
        if (r->rc < 0)
            r->failure = xasprintf("job %s: cannot prepare its directory: %s", r->it->id, strerror(-r->rc));
    }
    if (r->rc == 0)
        r->rc = write_file_atomic(cpath, r->yaml, r->len, 0644);
    if (r->rc == 0)
        r->rc = fsync_parent_dir(dir);
    if (r->rc < 0) {
        if (!r->failure)
            r->failure = xasprintf("job %s: cannot save %s: %s", r->it->id, cpath, strerror(-r->rc));
        if ((prepared || r->x.prepare) && r->x.undo)
            r->x.undo(dir, r->x.arg);
        unlink(cpath);
        unlink(kpath);
        rmdir(dir);
    }
    free(kpath);
    free(cpath);
    free(dir);
    if (r->rc < 0 || !r->x.experiment)
        return;
    r->it->valid = intake_validate(r->yaml, r->len, r->it->id, &lim, &r->it->cfg, &data_path, &r->it->errs) == 0;
    free(data_path);
    spool_intake_errors_text(r->it);   /* a rejected trial's errors: made here, not on the loop */
}

/* Back on the loop: the job joins the table, then the answer. */
static void submit_done(uv_work_t *w, int status)
{
    submit_req *r = w->data;
    job_table *t = r->t;
    t->pending_work--;
    if (!r->no_room)
        t->submitting--;
    if (r->idem_key)
        jobs_key_done(t, r->idem_key);
    if (r->rc == -EAGAIN && r->no_room) {
        r->done(r->arg, -EAGAIN, NULL, NULL);   /* the queue is full (max_queued_jobs) */
    } else if (r->rc < 0) {
        log_error("%s; submission refused", r->failure);
        r->done(r->arg, r->rc, NULL, NULL);
    } else if (r->refused) {
        log_warn("POST: a config refused (%zu problem%s); no job made", r->it->errs.n,
                 r->it->errs.n == 1 ? "" : "s");
        r->done(r->arg, -EINVAL, NULL, json_diag_list(&r->it->errs));
    } else {
        r->it->submitted_at = now_unix();
        job *j = admit(t, r->it);
        j->idem_key = r->idem_key;
        j->idem_fp = r->idem_fp;
        r->idem_key = NULL;
        if (r->x.parent) {
            j->parent = (char *)r->x.parent;
            j->forked_at = r->x.forked_at;
            r->x.parent = NULL;
            /* its history starts as its metrics.jsonl does: the parent's points up
             * to the fork — copied from the parent's history in memory, or, when
             * the parent has ended and keeps its history on disk only, read from
             * the fork's metrics.jsonl (written by its prepare step; the job does
             * not start before the read is done, jobs_schedule) */
            const job *p = job_find(t, j->parent);
            if (p && !p->hist_on_disk) {
                for (size_t i = 0; i < p->n_hist && p->hist[i].step <= j->forked_at; i++)
                    job_hist_push(j, &p->hist[i]);
            } else {
                job_load_history(j);
            }
        }
        if (r->x.experiment) {
            j->experiment = (char *)r->x.experiment;
            r->x.experiment = NULL;
            j->params = r->x.params ? cJSON_Parse(r->x.params) : NULL;
        }
        if (j->idem_key)
            job_index_put(t->by_key, j->idem_key, j);
        cJSON *errors = NULL;
        if (r->it->valid) {
            log_info("job %s: submitted over HTTP", j->id);
        } else {
            errors = json_diag_list(&r->it->errs);
            log_warn("job %s: submitted over HTTP: rejected (%zu problem%s)", j->id, r->it->errs.n,
                     r->it->errs.n == 1 ? "" : "s");
        }
        admitted(j);
        r->done(r->arg, r->it->valid ? 0 : -EINVAL, xstrdup(j->id), errors);
    }
    submit_req_free(r);
    (void)status;
    jobs_check_shutdown_done(t);
}

/* ---- Idempotency-Key ----
 *
 * A key is scoped to what made it: the table (idempotency.key, jobs.index,
 * t->by_key) holds "jobs:KEY" for POST /jobs, "fork:KEY" for POST
 * /jobs/{id}/fork and "experiment:ID:K" for a trial, which the daemon makes
 * itself and no header can name: every key from outside gets a scope, so it
 * never meets another endpoint's key nor an internal one.  With it goes a
 * fingerprint of the request; a key used again for another request is
 * refused, never answered with the first job (traind(8), Idempotency-Key). */

#define IDEM_TEXT_MAX (JOB_IDEM_TEXT_MAX - 18)    /* the scoped key; then "\n" and 16 hex digits, "\n" */

char *jobs_idem_scoped(const char *scope, const char *key)
{
    return key ? xasprintf("%s:%s", scope, key) : NULL;
}

uint64_t jobs_idem_fp(const void *a, size_t alen, const void *b, size_t blen)
{
    uint64_t h = fnv64_update(FNV64_INIT, &alen, sizeof alen);   /* (a, b) and (ab, "") differ */
    h = fnv64_update(fnv64_update(h, a, alen), b, blen);
    return h ? h : 1;   /* 0 is "none" */
}

char *job_idem_text(const char *key, uint64_t fp)
{
    return xasprintf("%s\n%016llx\n", key, (unsigned long long)fp);
}

bool job_idem_load(job *j, const char *text)
{
    const char *nl = strchr(text, '\n');
    size_t n = nl ? (size_t)(nl - text) : strlen(text);
    char *key = xstrndup(text, n);
    uint64_t fp = 0;
    bool ok = n > 0 && n <= IDEM_TEXT_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = key[i] > 0x20 && key[i] < 0x7f;   /* visible ASCII, as spool_idem_key_valid */
    if (ok && nl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(nl + 1, &end, 16);
        ok = !errno && end == nl + 17 && (!*end || (*end == '\n' && !end[1]));
        fp = v;
    } else if (ok) {
        /* written before keys were scoped: a trial's own key stays, any
         * other came with a POST (of a fork, when j is one) */
        bool trial = j->experiment && !strncmp(key, "experiment:", 11);
        if (!trial) {
            char *scoped = jobs_idem_scoped(j->parent && !j->experiment ? "fork" : "jobs", key);
            free(key);
            key = scoped;
        }
    }
    if (!ok) {
        free(key);
        return false;
    }
    free(j->idem_key);
    j->idem_key = key;
    j->idem_fp = fp;
    return true;
}

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

void jobs_key_done(job_table *t, const char *key)
{
    for (size_t i = 0; i < t->n_keys_inflight; i++)
        if (strcmp(t->keys_inflight[i], key) == 0) {
            free(t->keys_inflight[i]);
            t->keys_inflight[i] = t->keys_inflight[--t->n_keys_inflight];
            return;
        }
}

bool jobs_submit_replay(job_table *t, const char *key, uint64_t fp, jobs_submit_cb done, void *arg)
{
    if (key_inflight(t, key)) {
        done(arg, -EINPROGRESS, NULL, NULL);
        return true;
    }
    const job *j = find_by_key(t, key);
    if (!j)
        return false;
    if (fp && j->idem_fp && fp != j->idem_fp) {
        const char *colon = strchr(key, ':');
        char *msg = xasprintf("Idempotency-Key '%s' was used before for another request (job %s); a new request "
                              "needs a new key", colon ? colon + 1 : key, j->id);
        log_warn("job %s: its Idempotency-Key was sent again with another request: refused", j->id);
        done(arg, -EEXIST, NULL, cJSON_CreateString(msg));
        free(msg);
        return true;
    }
    log_info("job %s: POST /jobs again with its Idempotency-Key: answered with the same job", j->id);
    if (j->state == JOB_REJECTED)
        done(arg, -EINVAL, xstrdup(j->id), cJSON_Duplicate(j->errors, 1));
    else
        done(arg, 0, xstrdup(j->id), NULL);
    return true;
}

bool jobs_stopping(const job_table *t)
{
    return t->shutting_down;
}

/* A POST /jobs's answer: jobs_submit_ex's (rc, id, errors) as an api_done's doc. */
typedef struct post_answer {
    api_done done;
    void *arg;
} post_answer;

static void post_answered(void *arg, int rc, char *id, cJSON *errors)
{
    post_answer *a = arg;
    cJSON *doc = NULL;
    if (id || errors) {
        doc = cJSON_CreateObject();
        if (id)
            cJSON_AddStringToObject(doc, "id", id);
        if (errors)
            cJSON_AddItemToObject(doc, "errors", errors);
    }
    free(id);
    a->done(a->arg, rc, doc);
    free(a);
}

void jobs_submit(void *jobs, const char *yaml, size_t len, const char *default_name, const char *idem_key,
                 api_done done, void *arg)
{
    job_table *t = jobs;
    /* once stopping, a retry of a submit already made is refused too: a
     * new one is admitted by jobs_submit_ex (its admission's room) */
    if (t->shutting_down)
        return done(arg, API_UNAVAILABLE, NULL);
    /* POST /jobs: the request is the config and its ?name= */
    const char *nm = default_name ? default_name : "";
    jobs_submit_extra x = {.forked_at = -1, .fingerprint = jobs_idem_fp(nm, strlen(nm) + 1, yaml, len)};
    char *key = jobs_idem_scoped("jobs", idem_key);
    post_answer *a = xmalloc(sizeof *a);
    *a = (post_answer){done, arg};
    jobs_submit_ex(t, yaml, len, default_name, key, &x, post_answered, a);
    free(key);
}

void jobs_submit_ex(job_table *t, const char *yaml, size_t len, const char *default_name, const char *idem_key,
                    const jobs_submit_extra *x, jobs_submit_cb done, void *arg)
{
    bool answered = idem_key && jobs_submit_replay(t, idem_key, x ? x->fingerprint : 0, done, arg);
    if (!answered && t->shutting_down) {
        done(arg, -ESHUTDOWN, NULL, NULL);
        answered = true;
    }
    /* No room in the queue: a config that makes no job when invalid (POST
     * /jobs, a fork) is still validated, and answered 400 if it is: a
     * rejection waits for no room (traind(8)); a valid one gets 429.  A
     * trial, made a job valid or not, gets 429 at once: its experiment
     * submits it again once there is room. */
    bool no_room = !answered && !(x && x->admitted) && !jobs_admit(t);
    if (no_room && x && x->experiment) {
        done(arg, -EAGAIN, NULL, NULL);   /* the queue is full (max_queued_jobs) */
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
    r->idem_fp = idem_key && x ? x->fingerprint : 0;
    r->jobs_dir = xstrdup(t->jobs_dir);
    r->data_dirs = strv_dup(t->data_dirs, t->n_data_dirs);
    r->n_data_dirs = t->n_data_dirs;
    r->max_model_bytes = t->max_model_bytes;
    r->it = xcalloc(1, sizeof *r->it);
    r->done = done;
    r->arg = arg;
    r->no_room = no_room;
    int rc = uv_queue_work(t->loop, &r->work, submit_work, submit_done);
    if (rc < 0) {
        log_error("POST /jobs: cannot queue the work: %s", uv_strerror(rc));
        submit_req_free(r);
        done(arg, -EIO, NULL, NULL);
        return;
    }
    t->pending_work++;
    if (!no_room)
        t->submitting++;   /* holds a place in the queue (queued_jobs) */
    if (idem_key) {
        t->keys_inflight = xrealloc(t->keys_inflight, (t->n_keys_inflight + 1) * sizeof *t->keys_inflight);
        t->keys_inflight[t->n_keys_inflight++] = xstrdup(idem_key);
    }
}

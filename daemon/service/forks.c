/*
 * forks — the daemon's side of forks and checkpoint listings (see
 * traind/forks.h).  The loop thread only parses the (bounded) body and
 * looks the parent up; reading the parent's config and directory, cfg_fork
 * and the links are thread-pool work, so a slow disk never stalls the API.
 */
#include "traind/forks.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "traind/result.h"
#include "traind/config.h"
#include "traind/fork.h"
#include "traind/json.h"
#include "traind/forkfile.h"
#include "traind/log.h"
#include "traind/util.h"


/* A JSON value as the YAML text of a --set value: the shortest number that
 * reads back the same, strings as they are, arrays in flow style. */
static char *set_value(const cJSON *v)
{
    if (cJSON_IsString(v))
        return xstrdup(v->valuestring);
    if (cJSON_IsBool(v))
        return xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble))
            return NULL;
        char buf[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v->valuedouble);
            if (strtod(buf, NULL) == v->valuedouble)
                break;
        }
        return xstrdup(buf);
    }
    if (cJSON_IsArray(v)) {
        cJSON *copy = cJSON_Duplicate(v, 1);
        char *s = copy ? cJSON_PrintUnformatted(copy) : NULL;
        cJSON_Delete(copy);
        return s;
    }
    return NULL;
}

int forks_parse_body(const char *body, size_t len, long *at_step, char ***sets, size_t *n_sets, char **name,
                     char *err, size_t errlen)
{
    *sets = NULL;
    *n_sets = 0;
    *name = NULL;
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "the body must be a JSON object {\"at_step\": S, \"set\": {...}, \"name\": \"...\"}");
        cJSON_Delete(o);
        return -EINVAL;
    }
    int rc = -EINVAL;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "at_step");
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(o, "set");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *e;
    cJSON_ArrayForEach(e, o) {
        if (strcmp(e->string, "at_step") && strcmp(e->string, "set") && strcmp(e->string, "name")) {
            snprintf(err, errlen, "unknown field \"%.64s\" (expected at_step, set, name)", e->string);
            goto out;
        }
    }
    if (!cJSON_IsNumber(s) || !(s->valuedouble >= 0 && s->valuedouble <= 1e15) ||
        s->valuedouble != floor(s->valuedouble)) {
        snprintf(err, errlen, "at_step must be a whole number of steps >= 0");
        goto out;
    }
    *at_step = (long)s->valuedouble;
    if (nm && !cJSON_IsNull(nm)) {
        if (!cJSON_IsString(nm) || !nm->valuestring[0] || strlen(nm->valuestring) > 200) {
            snprintf(err, errlen, "name must be a non-empty string of at most 200 bytes");
            goto out;
        }
        *name = xstrdup(nm->valuestring);
    }
    if (set && !cJSON_IsNull(set)) {
        if (!cJSON_IsObject(set) && !cJSON_IsArray(set)) {
            snprintf(err, errlen, "set must be an object {\"key.path\": value} or an array [\"key.path=value\"]");
            goto out;
        }
        if (cJSON_GetArraySize(set) > FORKS_MAX_SETS) {
            snprintf(err, errlen, "at most %d changes in set", FORKS_MAX_SETS);
            goto out;
        }
        *sets = xcalloc((size_t)cJSON_GetArraySize(set) + 1, sizeof **sets);
        cJSON_ArrayForEach(e, set) {
            char *kv = NULL;
            if (cJSON_IsArray(set)) {
                if (cJSON_IsString(e) && strchr(e->valuestring, '='))
                    kv = xstrdup(e->valuestring);
            } else {
                char *v = set_value(e);
                if (v && e->string[0])
                    kv = xasprintf("%s=%s", e->string, v);
                free(v);
            }
            if (!kv) {
                snprintf(err, errlen, "set[%zu]: expected %s", *n_sets,
                         cJSON_IsArray(set) ? "a \"key.path=value\" string" : "a string, number, bool or array");
                goto out;
            }
            (*sets)[(*n_sets)++] = kv;
        }
    }
    rc = 0;
out:
    if (rc < 0) {
        strv_free(*sets, *n_sets);
        free(*name);
        *sets = NULL;
        *n_sets = 0;
        *name = NULL;
    }
    cJSON_Delete(o);
    return rc;
}

/* ------------------------------------------------------------ the fork */

typedef struct fork_req {
    uv_work_t work;
    job_table *t;
    forks_done done;
    void *arg;
    char parent[SPOOL_ID_MAX + 1];
    char *parent_dir;
    char parent_name[256];
    long latest_step;        /* the parent's checkpoint.bin step when it has ended, else -1 */
    long at_step;
    char **sets;
    size_t n_sets;
    char *name;
    char *idem_key;          /* scoped: "fork:KEY" */
    uint64_t idem_fp;        /* the request: the parent and the body */
    /* results */
    int rc;                  /* 0: go on and submit; else the answer (a result code) */
    cJSON *doc;
    char *child_yaml;
    int from_latest;
} fork_req;

static void fork_req_free(fork_req *r)
{
    free(r->parent_dir);
    strv_free(r->sets, r->n_sets);
    free(r->name);
    free(r->idem_key);
    free(r->child_yaml);
    cJSON_Delete(r->doc);
    free(r);
}

static void fork_work(uv_work_t *w)
{
    fork_req *r = w->data;
    bool kept = ckpt_kept(r->parent_dir, r->at_step);
    r->from_latest = !kept && r->latest_step >= 0 && r->at_step == r->latest_step;
    if (!kept && !r->from_latest) {
        ckpt_entry *v;
        size_t n;
        ckpt_list(r->parent_dir, r->latest_step, FORKS_MAX_CHECKPOINTS, &v, &n);
        char msg[256];
        snprintf(msg, sizeof msg, "job %s has no kept checkpoint at step %ld (see train.keep_every, "
                 "train.keep_checkpoints); %s", r->parent, r->at_step,
                 n ? "these steps have one" : "it has none");
        r->doc = json_error_doc(msg);
        cJSON *steps = cJSON_AddArrayToObject(r->doc, "steps");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(steps, cJSON_CreateNumber((double)v[i].step));
        free(v);
        r->rc = API_CONFLICT;
        return;
    }
    char *cpath = xasprintf("%s/config.yaml", r->parent_dir);
    char *yaml;
    size_t len;
    int rc = read_file_flags(cpath, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &yaml, &len);
    free(cpath);
    if (rc < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "cannot read job %s's config.yaml: %s", r->parent, strerror(-rc));
        r->doc = json_error_doc(msg);
        r->rc = -EIO;
        return;
    }
    cfg_fork_req req = {.at_step = r->at_step, .sets = (const char *const *)r->sets, .n_sets = r->n_sets,
                        .name = r->name};
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    cfg_parse_opts po = {.default_name = r->parent, .max_model_bytes = SIZE_MAX};
    if (cfg_fork(yaml, len, r->parent_name, &req, &po, &cfg, &r->child_yaml, &errs) != 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "invalid fork (%zu problem%s)", errs.n, errs.n == 1 ? "" : "s");
        r->doc = json_error_doc(msg);
        cJSON_AddItemToObject(r->doc, "errors", json_diag_list(&errs));
        r->rc = API_INVALID;
    } else {
        cfg_free(&cfg);
    }
    diag_free(&errs);
    free(yaml);
}

/* The submit's answer, as a result code and doc. */
typedef struct fork_answer {
    forks_done done;
    void *arg;
    char parent[SPOOL_ID_MAX + 1];
} fork_answer;

static void submitted(void *arg, int rc, char *id, cJSON *errors)
{
    fork_answer *a = arg;
    cJSON *doc = NULL;
    if (rc == API_OK && id) {
        doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        log_info("job %s: forked from %s", id, a->parent);
    } else if (rc == API_INVALID) {
        doc = json_error_doc("invalid fork config");
        if (id)
            cJSON_AddStringToObject(doc, "id", id);
        cJSON_AddItemToObject(doc, "errors", cJSON_IsArray(errors) ? errors : cJSON_CreateArray());
        if (cJSON_IsArray(errors))
            errors = NULL;
    } else if (rc == API_UNAVAILABLE || rc == API_IN_PROGRESS) {
        ;   /* api.c's message */
    } else if (rc == API_KEY_REUSED) {
        if (cJSON_IsString(errors))
            doc = json_error_doc(errors->valuestring);
    } else if (rc == API_QUEUE_FULL) {
        /* as POST /jobs answers it (traind(8), LIMITS): 429 and Retry-After */
        doc = json_error_doc("the queue is full (max_queued_jobs); try again later");
        cJSON_AddNumberToObject(doc, "retry_after_s", 5);
    } else if (rc == -ENOENT) {
        rc = API_CONFLICT;
        doc = json_error_doc("the parent's checkpoint disappeared while the fork was saved; retry");
    } else {
        rc = -EIO;   /* 500, whatever the errno */
        doc = json_error_doc("could not save the fork");
    }
    free(id);
    cJSON_Delete(errors);
    a->done(a->arg, rc, doc);
    free(a);
}

typedef struct prep_arg {
    char parent[SPOOL_ID_MAX + 1];
    char *parent_dir;
    long at_step;
    int from_latest;
} prep_arg;

static int prep_fork(const char *job_dir, void *arg)
{
    prep_arg *p = arg;
    return forkfile_create(job_dir, p->parent, p->parent_dir, p->at_step, p->from_latest);
}

static void undo_fork(const char *job_dir, void *arg)
{
    forkfile_remove(job_dir);
}

static void free_prep(void *arg)
{
    prep_arg *p = arg;
    free(p->parent_dir);
    free(p);
}

static void fork_done(uv_work_t *w, int status)
{
    fork_req *r = w->data;
    job_table *t = r->t;
    if (status < 0 && !r->rc) {
        r->rc = -ECANCELED;
        r->doc = json_error_doc("the fork was cancelled");
    }
    if (r->rc) {
        r->done(r->arg, r->rc, r->doc);
        r->doc = NULL;
        fork_req_free(r);
        jobs_work_end(t);
        return;
    }
    prep_arg *p = xcalloc(1, sizeof *p);
    memcpy(p->parent, r->parent, sizeof p->parent);
    p->parent_dir = xstrdup(r->parent_dir);
    p->at_step = r->at_step;
    p->from_latest = r->from_latest;
    jobs_submit_extra x = {.prepare = prep_fork, .undo = undo_fork, .free_arg = free_prep, .arg = p,
                           .parent = r->parent, .forked_at = r->at_step, .fingerprint = r->idem_fp};
    fork_answer *a = xcalloc(1, sizeof *a);
    a->done = r->done;
    a->arg = r->arg;
    memcpy(a->parent, r->parent, sizeof a->parent);
    char *dflt = xasprintf("%s-fork-%ld", r->parent_name, r->at_step);
    jobs_submit_ex(r->t, r->child_yaml, strlen(r->child_yaml), dflt, r->idem_key, &x, submitted, a);
    free(dflt);
    fork_req_free(r);
    jobs_work_end(t);
}

void forks_fork(void *jobs, const char *parent_id, const char *body, size_t len, const char *idem_key,
                forks_done done, void *arg)
{
    job_table *t = jobs;
    if (jobs_stopping(t))
        return done(arg, API_UNAVAILABLE, NULL);
    jobs_info info;
    if (jobs_lookup(t, parent_id, &info) < 0)
        return done(arg, API_NOT_FOUND, json_error_doc("no such job"));
    /* the key is this endpoint's (never one of POST /jobs nor a trial's),
     * and the request it names is the parent and the body */
    char *key = jobs_idem_scoped("fork", idem_key);
    uint64_t fp = jobs_idem_fp(parent_id, strlen(parent_id) + 1, body, len);
    if (key) {
        fork_answer *a = xcalloc(1, sizeof *a);
        a->done = done;
        a->arg = arg;
        snprintf(a->parent, sizeof a->parent, "%s", parent_id);
        if (jobs_submit_replay(t, key, fp, submitted, a)) {
            free(key);
            return;
        }
        free(a);
    }
    if (jobs_shutting_down(t)) {
        free(key);
        return done(arg, API_UNAVAILABLE, NULL);
    }
    char err[256];
    fork_req *r = xcalloc(1, sizeof *r);
    r->idem_key = key;
    r->idem_fp = fp;
    if (forks_parse_body(body, len, &r->at_step, &r->sets, &r->n_sets, &r->name, err, sizeof err) < 0) {
        fork_req_free(r);
        return done(arg, API_INVALID, json_error_doc(err));
    }
    r->work.data = r;
    r->t = t;
    r->done = done;
    r->arg = arg;
    snprintf(r->parent, sizeof r->parent, "%s", parent_id);
    snprintf(r->parent_name, sizeof r->parent_name, "%s", info.name);
    r->parent_dir = xasprintf("%s/%s", jobs_jobs_dir(t), parent_id);
    r->latest_step = job_state_ended(info.state) ? info.checkpoint_step : -1;
    int rc = uv_queue_work(jobs_loop(t), &r->work, fork_work, fork_done);
    if (rc < 0) {
        fork_req_free(r);
        done(arg, -EIO, json_error_doc("cannot queue the fork"));
        return;
    }
    jobs_work_begin(t);
}

/* ---------------------------------------------------- checkpoint listing */

typedef struct list_req {
    uv_work_t work;
    job_table *t;
    forks_done done;
    void *arg;
    char *dir;
    long latest_step;
    ckpt_entry *v;
    size_t n;
} list_req;

static void list_work(uv_work_t *w)
{
    list_req *r = w->data;
    ckpt_list(r->dir, r->latest_step, FORKS_MAX_CHECKPOINTS, &r->v, &r->n);
}

static void list_done(uv_work_t *w, int status)
{
    list_req *r = w->data;
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < r->n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "step", (double)r->v[i].step);
        cJSON_AddNumberToObject(e, "bytes", (double)r->v[i].bytes);
        char buf[40];
        format_utc(r->v[i].mtime, buf, sizeof buf);
        cJSON_AddStringToObject(e, "time", buf);
        cJSON_AddBoolToObject(e, "latest", r->v[i].latest);
        cJSON_AddItemToArray(a, e);
    }
    r->done(r->arg, status < 0 ? -ECANCELED : API_OK, a);
    job_table *t = r->t;
    free(r->v);
    free(r->dir);
    free(r);
    jobs_work_end(t);
}

void forks_checkpoints(void *jobs, const char *id, forks_done done, void *arg)
{
    job_table *t = jobs;
    jobs_info info;
    if (jobs_lookup(t, id, &info) < 0)
        return done(arg, API_NOT_FOUND, json_error_doc("no such job"));
    list_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->t = t;
    r->done = done;
    r->arg = arg;
    r->dir = xasprintf("%s/%s", jobs_jobs_dir(t), id);
    r->latest_step = info.checkpoint_step;
    if (uv_queue_work(jobs_loop(t), &r->work, list_work, list_done) < 0) {
        free(r->dir);
        free(r);
        done(arg, -EIO, json_error_doc("cannot list the checkpoints"));
        return;
    }
    jobs_work_begin(t);
}

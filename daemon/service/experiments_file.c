/*
 * experiments_file — experiment.json: written on the pool, read back at
 * start-up.  See experiments_internal.h.
 *
 * experiment.json is rewritten (atomically, on the thread pool, one write
 * at a time per experiment) whenever a trial gets its job or the state
 * changes; what it says is re-read at start-up as untrusted input: a file
 * that does not parse, or whose trials do not match sweep.yaml's, leaves
 * the experiment "failed" with the reason rather than guessing.
 */
#include "experiments_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/result.h"
#include "traind/events.h"
#include "traind/json.h"
#include "traind/log.h"
#include "traind/util.h"

/* experiment.json's text. */
char *exp_file_text(const experiment *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", x->id);
    cJSON_AddStringToObject(o, "name", x->name ? x->name : x->id);
    cJSON_AddStringToObject(o, "state", exp_state_names[x->state]);
    if (x->method)
        cJSON_AddStringToObject(o, "method", x->method);
    if (x->metric)
        cJSON_AddStringToObject(o, "metric", x->metric);
    cJSON_AddNumberToObject(o, "max_concurrent", (double)x->max_concurrent);
    cJSON_AddNumberToObject(o, "submitted_at", x->submitted_at);
    cJSON *a = cJSON_AddArrayToObject(o, "trials");
    for (size_t k = 0; k < x->n_trials; k++) {
        cJSON *t = cJSON_CreateObject();
        cJSON *p = cJSON_Parse(x->trials[k].params);
        cJSON_AddItemToObject(t, "params", p ? p : cJSON_CreateObject());
        if (x->trials[k].job[0])
            cJSON_AddStringToObject(t, "job", x->trials[k].job);
        else
            cJSON_AddNullToObject(t, "job");
        cJSON_AddItemToArray(a, t);
    }
    cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(x->errors, 1));
    if (x->idem_key) {
        char fp[24];
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)x->idem_fp);
        cJSON_AddStringToObject(o, "idempotency_key", x->idem_key);
        cJSON_AddStringToObject(o, "idempotency_fp", fp);
    }
    char *text = json_print_exact(o);
    cJSON_Delete(o);
    return text;
}

/* ---------------------------------------------------------- persistence */

typedef struct write_req {
    uv_work_t work;
    experiment *x;
    char *path, *text;
    int rc;
    unsigned long seq;               /* x->writes_started when it began */
} write_req;

static void write_work(uv_work_t *w)
{
    write_req *r = w->data;
    r->rc = write_file_atomic(r->path, r->text, strlen(r->text), 0644);
}

static void write_done(uv_work_t *w, int status)
{
    write_req *r = w->data;
    experiment *x = r->x;
    x->write_inflight = false;
    if (r->rc < 0)
        log_error("experiment %s: cannot write %s: %s", x->id, r->path, strerror(-r->rc));
    durable_wait_wake(&x->waiters, r->seq, r->rc);
    free(r->path);
    free(r->text);
    free(r);
    job_table *t = x->e->jobs;
    if (x->dirty)
        exp_persist(x);
    jobs_work_end(t);
}

void exp_persist(experiment *x)
{
    events_experiment(x->id, exp_state_names[x->state]);   /* GET /events */
    x->dirty = true;
    if (x->write_inflight)
        return;
    x->dirty = false;
    write_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->x = x;
    r->path = xasprintf("%s/" EXP_FILE, x->dir);
    r->text = exp_file_text(x);
    r->seq = ++x->writes_started;
    if (uv_queue_work(jobs_loop(x->e->jobs), &r->work, write_work, write_done) < 0) {
        log_error("experiment %s: cannot queue the write of " EXP_FILE, x->id);
        free(r->path);
        free(r->text);
        free(r);
        durable_wait_wake(&x->waiters, x->writes_started, -EIO);
        return;
    }
    x->write_inflight = true;
    jobs_work_begin(x->e->jobs);
}

/* ------------------------------------------------------------ start-up */

static int exp_state_from(const char *s)
{
    for (int i = 0; i < (int)(sizeof exp_state_names / sizeof exp_state_names[0]); i++)
        if (!strcmp(s, exp_state_names[i]))
            return i;
    return -1;
}

/* One experiment directory read back: experiment.json (untrusted) and,
 * for one that runs, its trials re-expanded from sweep.yaml. */
static experiment *load_one(exp_table *e, const char *id)
{
    experiment *x = xcalloc(1, sizeof *x);
    snprintf(x->id, sizeof x->id, "%.48s", id);   /* spool_id_valid: at most 48 bytes */
    x->dir = xasprintf("%s/%s", e->dir, id);
    x->errors = cJSON_CreateArray();
    char *path = xasprintf("%s/" EXP_FILE, x->dir), *buf = NULL;
    size_t len;
    const char *why = NULL;
    cJSON *o = NULL;
    if (read_file_flags(path, EXP_MAX_FILE, O_NOFOLLOW, &buf, &len) < 0)
        why = "experiment.json cannot be read";
    else if (!cJSON_IsObject(o = cJSON_ParseWithLength(buf, len)))
        why = "experiment.json is not a JSON object";
    free(buf);
    free(path);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "trials");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "submitted_at");
    const cJSON *er = cJSON_GetObjectItemCaseSensitive(o, "errors");
    int state = cJSON_IsString(st) ? exp_state_from(st->valuestring) : -1;
    if (!why && (state < 0 || !cJSON_IsArray(tr)))
        why = "experiment.json has no valid state or trials";
    x->submitted_at = cJSON_IsNumber(at) ? at->valuedouble : 0;
    if (cJSON_IsArray(er)) {
        cJSON_Delete(x->errors);
        x->errors = cJSON_Duplicate(er, 1);
    }
    if (!why && state != EXP_REJECTED) {
        char *sp = xasprintf("%s/" EXP_SWEEP, x->dir), *yaml;
        size_t ylen;
        sweep s;
        diag_list_t errs = DIAG_LIST_INIT;
        sweep_opts so = {.cfg = {.default_name = "experiment", .max_model_bytes = 0},
                         .max_trials = e->max_trials > SWEEP_DEFAULT_MAX_TRIALS ? e->max_trials : SWEEP_DEFAULT_MAX_TRIALS};
        if (read_file_flags(sp, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &yaml, &ylen) < 0) {
            why = "sweep.yaml cannot be read";
        } else {
            if (sweep_parse(yaml, ylen, &so, &s, &errs) != 0) {
                why = "sweep.yaml no longer expands (a newer or older traind?)";
            } else {
                if ((size_t)cJSON_GetArraySize(tr) != s.n_trials)
                    why = "experiment.json's trials do not match sweep.yaml's";
                else
                    exp_from_sweep(x, &s);
                int arc = why || !x->asha ? 0 : exp_asha_replay(x->asha, x->dir);
                if (arc < 0) {
                    log_error("experiment %s: %s/" EXP_ASHA_FILE ": %s", id, x->dir, strerror(-arc));
                    why = EXP_ASHA_FILE " (the early-stopping record) cannot be read";
                }
                sweep_free(&s);
            }
            free(yaml);
        }
        diag_free(&errs);
        free(sp);
        for (size_t k = 0; !why && k < x->n_trials; k++) {
            const cJSON *j = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tr, (int)k), "job");
            if (cJSON_IsString(j) && spool_id_valid(j->valuestring)) {
                snprintf(x->trials[k].job, sizeof x->trials[k].job, "%s", j->valuestring);
                free(x->trials[k].yaml);
                x->trials[k].yaml = NULL;
            }
        }
    }
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "idempotency_key");
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(o, "idempotency_fp");
    if (cJSON_IsString(key) && strlen(key->valuestring) <= SPOOL_IDEM_KEY_MAX + 16) {
        const char *k = key->valuestring;
        /* written before keys were scoped: a POST's key gets its scope */
        bool scoped = !strncmp(k, "post:", 5) || !strncmp(k, "incoming:", 9);
        x->idem_key = scoped ? xstrdup(k) : spool_idem_key_valid(k) ? jobs_idem_scoped("post", k) : NULL;
        x->idem_fp = cJSON_IsString(fp) ? strtoull(fp->valuestring, NULL, 16) : 0;
    }
    if (!x->name) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
        x->name = xstrdup(cJSON_IsString(n) ? n->valuestring : id);
    }
    x->state = why ? EXP_FAILED : (exp_state)state;
    if (why) {
        log_error("experiment %s: %s; shown as failed", id, why);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "message", why);
        cJSON_AddItemToArray(x->errors, m);
    }
    cJSON_Delete(o);
    return x;
}

static int cmp_exp(const void *a, const void *b)
{
    const experiment *x = *(experiment *const *)a, *y = *(experiment *const *)b;
    if (x->submitted_at != y->submitted_at)
        return x->submitted_at < y->submitted_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

int exps_load(exp_table *e)
{
    DIR *d = opendir(e->dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (!spool_id_valid(de->d_name))
            continue;
        char *p = xasprintf("%s/%s/" EXP_FILE, e->dir, de->d_name);
        struct stat st;
        bool has = lstat(p, &st) == 0 && S_ISREG(st.st_mode);
        free(p);
        if (!has) {
            /* claimed by a daemon that died before its files: never answered */
            char *dir = xasprintf("%s/%s", e->dir, de->d_name), *sp = xasprintf("%s/" EXP_SWEEP, dir);
            unlink(sp);
            if (rmdir(dir) == 0)
                log_info("experiments/%s: never saved whole; removed", de->d_name);
            free(sp);
            free(dir);
            continue;
        }
        exp_table_add(e, load_one(e, de->d_name));
        n++;
    }
    closedir(d);
    if (e->n > 1)
        qsort(e->v, e->n, sizeof *e->v, cmp_exp);
    for (size_t i = 0; i < e->n; i++)
        exp_cancel_trials_again(e->v[i]);
    return n;
}

/*
 * tl_fake_backend — the fake api_backend of test_api and fuzz_http; see
 * tl_fake_backend.h.
 */
#include "tl_fake_backend.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/train_point.h"
#include "traind/util.h"

const char tl_fake_log[] = "step 1\nstep 2\n\0binary\xff";
const size_t tl_fake_log_len = sizeof tl_fake_log - 1;

static void check(tl_fake *f, bool ok, const char *what)
{
    if (f->check)
        f->check(ok, what);
    else if (!ok) {
        fprintf(stderr, "tl_fake_backend: %s\n", what);
        abort();
    }
}

/* A job operation asked about id: counted, and id must be valid. */
static void note(tl_fake *f, const char *id)
{
    check(f, api_id_valid(id), "a job operation was asked about an invalid id");
    snprintf(f->last_id, sizeof f->last_id, "%s", id);
    f->calls++;
}

static const char *str(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static cJSON *find(tl_fake *f, const char *id)
{
    cJSON *j;
    cJSON_ArrayForEach(j, f->jobs)
    {
        if (strcmp(str(j, "id"), id) == 0)
            return j;
    }
    return NULL;
}

/* ---- the lists ---- */

static int fake_list_page(void *ctx, const char *state, const char *q, const char *after, size_t limit, cJSON **out,
                          char **next_after)
{
    tl_fake *f = ctx;
    cJSON *page = cJSON_CreateArray();
    bool on = after == NULL;
    size_t got = 0;
    const char *last = NULL;
    for (cJSON *j = f->jobs->child; j; j = j->next) {
        const char *id = str(j, "id");
        if (!on) {
            on = strcmp(id, after) == 0;
            continue;
        }
        if ((state && strcmp(state, str(j, "state")) != 0) || !api_job_matches(id, str(j, "name"), q))
            continue;
        if (got == limit) {
            *next_after = last ? xstrdup(last) : NULL;
            break;
        }
        cJSON_AddItemToArray(page, cJSON_Duplicate(j, 1));
        last = id;
        got++;
    }
    if (!on) {
        cJSON_Delete(page);
        return -ENOENT;
    }
    *out = page;
    return 0;
}

/* Nothing on disk to read: the page as it is. */
static void fake_fill(cJSON *page)
{
}

/* {"counts": {state: n...}, "jobs": [...]}: every job listed with its
 * keys of keys[], as the job table's summaries are when it holds few jobs. */
static cJSON *counts_and_jobs(const tl_fake *f, const char *const *keys, size_t nkeys)
{
    cJSON *doc = cJSON_CreateObject(), *counts = cJSON_AddObjectToObject(doc, "counts");
    for (size_t s = 0; api_job_states[s]; s++)
        cJSON_AddNumberToObject(counts, api_job_states[s], 0);
    cJSON *arr = cJSON_AddArrayToObject(doc, "jobs");
    const cJSON *j;
    cJSON_ArrayForEach(j, f->jobs)
    {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(counts, str(j, "state"));
        if (c)
            cJSON_SetNumberValue(c, c->valuedouble + 1);
        cJSON *s = cJSON_CreateObject();
        for (size_t k = 0; k < nkeys; k++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
            cJSON_AddItemToObject(s, keys[k], x ? cJSON_Duplicate(x, 1) : cJSON_CreateNull());
        }
        cJSON_AddItemToArray(arr, s);
    }
    return doc;
}

static cJSON *fake_summaries(void *ctx)
{
    static const char *const keys[] = {"id", "state", "step", "total_steps", "lr", "loss"};
    const tl_fake *f = ctx;
    cJSON *doc = counts_and_jobs(f, keys, sizeof keys / sizeof keys[0]);
    cJSON_AddNumberToObject(doc, "jobs_total", cJSON_GetArraySize(f->jobs));
    cJSON_AddNumberToObject(doc, "jobs_omitted", 0);
    return doc;
}

static cJSON *fake_prom(void *ctx)
{
    static const char *const keys[] = {"id", "state", "step", "total_steps", "lr", "loss", "steps_per_s", "eval_loss"};
    return counts_and_jobs(ctx, keys, sizeof keys / sizeof keys[0]);
}

/* ---- one job ---- */

static void fake_get(void *ctx, const char *id, api_done done, void *arg)
{
    tl_fake *f = ctx;
    note(f, id);
    cJSON *j = find(f, id);
    done(arg, j ? API_OK : API_NOT_FOUND, j ? cJSON_Duplicate(j, 1) : NULL);
}

/* An answer given from the loop a moment later. */
typedef struct later {
    uv_timer_t timer;
    tl_fake *f;
    api_done done;
    void *arg;
    int rc;
    cJSON *doc;
} later;

static void later_closed(uv_handle_t *h)
{
    later *l = h->data;
    l->f->laters--;
    free(l);
}

static void later_fire(uv_timer_t *t)
{
    later *l = t->data;
    l->done(l->arg, l->rc, l->doc);
    uv_close((uv_handle_t *)t, later_closed);
}

/* The result of a submit, and its id and errors. */
static int submit_now(tl_fake *f, const char *yaml, size_t len, const char *default_name, char **id_out,
                      cJSON **errors_out)
{
    free(f->last_yaml);
    f->last_yaml = xstrndup(yaml, len);
    check(f, yaml[len] == '\0', "a submitted config is not NUL-terminated");
    if (strstr(yaml, "bad")) {
        cJSON *errs = cJSON_CreateArray();
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "path", "schedule.warmup_steps");
        cJSON_AddNumberToObject(e, "line", 7);
        cJSON_AddNumberToObject(e, "column", 18);
        cJSON_AddStringToObject(e, "message", "must be an integer >= 0, got -5");
        cJSON_AddItemToArray(errs, e);
        *errors_out = errs;
        if (strstr(yaml, "kept"))
            *id_out = xstrdup("rejected-job");
        return API_INVALID;
    }
    if (strstr(yaml, "boom"))
        return -EIO;
    if (strstr(yaml, "full") || strstr(yaml, "crowded"))
        return API_QUEUE_FULL;
    if (strstr(yaml, "down"))
        return API_UNAVAILABLE;
    *id_out = xstrdup(default_name ? default_name : "new-job");
    return API_OK;
}

/* Answers at once (done inside submit: the API must cope) unless the
 * config says "later" and there is a loop. */
static void fake_submit(void *ctx, const char *yaml, size_t len, const char *default_name, const char *idem_key,
                        api_done done, void *arg)
{
    tl_fake *f = ctx;
    char *id = NULL;
    cJSON *errors = NULL, *doc = NULL;
    int rc = submit_now(f, yaml, len, default_name, &id, &errors);
    if (id || errors) {   /* folded as jobs_submit does: {"id", "errors"} */
        doc = cJSON_CreateObject();
        if (id)
            cJSON_AddStringToObject(doc, "id", id);
        if (errors)
            cJSON_AddItemToObject(doc, "errors", errors);
        free(id);
    }
    if (!f->loop || !strstr(yaml, "later")) {
        done(arg, rc, doc);
        return;
    }
    later *l = xcalloc(1, sizeof *l);
    *l = (later){.f = f, .done = done, .arg = arg, .rc = rc, .doc = doc};
    uv_timer_init(f->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, later_fire, 1, 0);
    f->laters++;
}

/* Answered at once (the API must cope with done inside cancel). */
static void fake_cancel(void *ctx, const char *id, api_done done, void *arg)
{
    tl_fake *f = ctx;
    note(f, id);
    cJSON *j = find(f, id);
    int rc = API_NOT_FOUND;
    if (j) {
        const char *st = str(j, "state");
        rc = strcmp(st, "running") == 0 || strcmp(st, "queued") == 0 ? API_OK : API_CONFLICT;
    }
    done(arg, rc, NULL);
}

/* ---- metrics: job "a" has points at steps 1..100 ---- */

static train_point point(long step)
{
    return (train_point){.step = step, .lr = 0.001, .loss = 1.0 / (double)step, .loss_avg = 1.0 / (double)step,
                         .grad_norm = 0.5, .eval_loss = NAN, .time = 1000.0 + (double)step, .steps_per_s = NAN};
}

/* Steps first..last: with max > 0 at most max evenly spread (the first and
 * the last kept), else the first limit and *next_since. */
static void points(long first, long last, long max, long limit, train_point **pts, size_t *n, long *next_since)
{
    size_t have = last >= first ? (size_t)(last - first + 1) : 0, want = have;
    *next_since = -1;
    if (max > 0 && (size_t)max < have)
        want = (size_t)max;
    else if (max <= 0 && (size_t)limit < have) {
        want = (size_t)limit;
        *next_since = first + limit - 1;
    }
    train_point *p = xmalloc((want ? want : 1) * sizeof *p);
    for (size_t i = 0; i < want; i++) {
        size_t k = max > 0 && want > 1 ? i * (have - 1) / (want - 1) : max > 0 ? have - 1 : i;
        p[i] = point(first + (long)k);
    }
    *pts = p;
    *n = want;
}

static int fake_metrics_points(void *ctx, const char *id, long since, long max, long limit, train_point **pts,
                               size_t *n, long *next_since)
{
    tl_fake *f = ctx;
    note(f, id);
    f->since = since;
    f->max = max;
    if (!find(f, id))
        return API_NOT_FOUND;
    points(since < 0 ? 1 : since + 1, strcmp(id, "a") == 0 ? 100 : 0, max, limit, pts, n, next_since);
    return API_OK;
}

/* An ended job ("c.v2"): its 20 points are read on the thread pool. */
static int fake_metrics_defer(void *ctx, const char *id, void **arg)
{
    tl_fake *f = ctx;
    note(f, id);
    if (!find(f, id))
        return API_NOT_FOUND;
    if (strcmp(id, "c.v2") != 0)
        return 0;
    *arg = xstrdup(id);
    return 1;
}

static int fake_metrics_read(void *arg, long since, long max, long limit, train_point **pts, size_t *n,
                             long *next_since)
{
    free(arg);
    points(since < 0 ? 1 : since + 1, 20, max, limit, pts, n, next_since);
    return API_OK;
}

static void fake_metrics_drop(void *arg)
{
    free(arg);
}

static void fake_log_tail(void *ctx, const char *id, size_t max_bytes, api_done done, void *arg)
{
    tl_fake *f = ctx;
    note(f, id);
    if (!find(f, id))
        return done(arg, API_NOT_FOUND, NULL);
    if (strcmp(id, "b") == 0)
        return done(arg, -EIO, NULL);
    char *text = xmalloc(tl_fake_log_len + 1);
    memcpy(text, tl_fake_log, tl_fake_log_len + 1);
    done(arg, API_OK, api_text_doc(text, tl_fake_log_len));
}

/* The config a job was made of: its name, as YAML. */
static void fake_config_text(void *ctx, const char *id, api_done done, void *arg)
{
    tl_fake *f = ctx;
    note(f, id);
    cJSON *j = find(f, id);
    if (!j)
        return done(arg, API_NOT_FOUND, NULL);
    char *text = xasprintf("name: %s\n", str(j, "name"));
    done(arg, API_OK, api_text_doc(text, strlen(text)));
}

/* Job "a" has one checkpoint, at step 10; the others none. */
static void fake_checkpoints(void *ctx, const char *id, api_done done, void *arg)
{
    tl_fake *f = ctx;
    note(f, id);
    if (!find(f, id))
        return done(arg, API_NOT_FOUND, NULL);
    cJSON *a = cJSON_CreateArray();
    if (strcmp(id, "a") == 0) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "step", 10);
        cJSON_AddNumberToObject(c, "bytes", 4096);
        cJSON_AddNumberToObject(c, "time", 1000);
        cJSON_AddBoolToObject(c, "latest", 1);
        cJSON_AddItemToArray(a, c);
    }
    done(arg, API_OK, a);
}

/* ---- the daemon's ---- */

static const char *fake_token(void *ctx)
{
    return ((tl_fake *)ctx)->token;
}

static double fake_uptime(void *ctx)
{
    return 12.5;
}

static long fake_queued(void *ctx)
{
    return ((tl_fake *)ctx)->queued;
}

static void fake_prom_extra(void *ctx, prom_buf *b)
{
    prom_family(b, "traind_extra", "counter", "An extra family.");
    prom_sample(b, "traind_extra", NULL, 7);
}

void tl_fake_init(tl_fake *f, const char *jobs_json)
{
    memset(f, 0, sizeof *f);
    f->jobs = cJSON_Parse(jobs_json);
    if (!cJSON_IsArray(f->jobs)) {
        fprintf(stderr, "tl_fake_init: the jobs are not a JSON array\n");
        abort();
    }
    f->token = "s3cret";
    f->queued = -1;
}

void tl_fake_free(tl_fake *f)
{
    cJSON_Delete(f->jobs);
    f->jobs = NULL;
    free(f->last_yaml);
    f->last_yaml = NULL;
}

api_backend tl_fake_backend(tl_fake *f)
{
    return (api_backend){
        .ctx = f,
        .jobs = f,
        .list_page = fake_list_page,
        .fill_page = fake_fill,
        .list_prom = fake_prom,
        .list_summaries = fake_summaries,
        .get_job = fake_get,
        .submit = fake_submit,
        .cancel = fake_cancel,
        .metrics_points = fake_metrics_points,
        .metrics_defer = fake_metrics_defer,
        .metrics_read = fake_metrics_read,
        .metrics_drop = fake_metrics_drop,
        .log_tail = fake_log_tail,
        .config_text = fake_config_text,
        .checkpoints = fake_checkpoints,
        .token = fake_token,
        .uptime = fake_uptime,
        .queued = fake_queued,
        .prom_extra = fake_prom_extra,
    };
}

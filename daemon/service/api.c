/*
 * api — routes of traind(8) HTTP API over an api_backend.  See include/traind/api.h.
 *
 *   GET  /, /ui/..., /lib/chart.js/...  the dashboard's files (static_files.h)
 *   GET  /status                {"version","uptime_s","counts","jobs_total","jobs":[summary...],"jobs_omitted"}
 *   GET  /jobs[?state=S&q=TEXT&limit=N&after=ID]  a page of jobs, newest first (Link: rel="next")
 *   POST /jobs                  YAML body (+ Idempotency-Key) → 201 {"id"} | 400 {"error","errors"}
 *   GET  /jobs/{id}             job | 404
 *   GET  /jobs/{id}/metrics     ?since=S (or after=S)&max=N&limit=L → {"id","points","next_since"}
 *   GET  /jobs/{id}/log         text/plain: the end of the job's worker.log
 *   GET  /jobs/{id}/config      text/plain: the config.yaml it was made of (a rejected job's refused text)
 *   GET  /jobs/{id}/checkpoints the job's checkpoints (forks.h)
 *   POST /jobs/{id}/cancel      202 (once saved) | 404 | 409
 *   POST /jobs/{id}/fork        JSON {"at_step", "set"} → a new job from a checkpoint (forks.h)
 *   GET  /compare?ids=a,b&max=N the jobs' curves aligned (compare.h)
 *   GET  /experiments[/{id}], POST /experiments, POST /experiments/{id}/cancel  (experiments.h)
 *   GET  /events[?job=ID&last_event_id=ID]  Server-Sent Events (events.h)
 *   POST /validate              a config: 200 {"ok": true, ...} | 422 {"ok": false, "errors"} (preview.h); no token
 *   POST /schedule[?max=N]      its lr curves: {"curves": [{"label", "points": [[step, lr]...]}]}; no token
 *   POST /lr-find[?start=&end=&steps=]  the LR range test of a config (lrfind_job.h): 200 {"suggestion",
 *                               "steepest", "points": [[lr, loss]...]} when it ends | 422 | 429 (one runs already)
 *   GET  /laws[/{id}], POST /laws, POST /laws/{id}/predict[?max=N]  loss-curve laws (laws.h): a fit
 *                               on the pool (201 once stored | 400 | 429 one fits already), their curves
 *   GET  /healthz               {"status":"ok"}
 *   GET  /metrics               Prometheus text 0.0.4
 *
 * The routes are one table (routes[], near the end): each says its methods,
 * its path (exact, a prefix, or a prefix, one {id} segment and a tail), whether
 * it needs the token and whether it counts against the write rate; api_handle
 * matches it (route_match) and decides everything from it.  A read that
 * takes nothing but its {id} (or nothing) names its operation in its row
 * (OP(member, context): r_read calls it); the rest have a handler that
 * parses the request, then calls the operation.  Every operation answers
 * through an api_done (traind/result.h), and answer_result alone makes its
 * result a status.  HEAD is answered
 * wherever GET is.  Order of checks: a Host that does not name this daemon 403
 * (DNS rebinding), a write (any method but GET and HEAD; every route that
 * writes is marked limited, and so are the token-less POSTs /validate and
 * /schedule) over its client's write rate 429 (authenticated
 * and unauthenticated writes in separate buckets), unknown path 404 (a route
 * whose backend this daemon lacks is unknown), wrong method 405 (with Allow),
 * missing or wrong token 401, then the id (an id that could not be a job's is
 * 404 before the backend sees it, so a path like /jobs/..%2F..%2Fetc never
 * reaches anything that touches files).
 *
 * Answers are bounded (API_*_PAGE_*, API_METRICS_MAX), and the big ones —
 * job pages, metrics, /status, /metrics — are printed on the thread pool,
 * one at a time (render_answer), so the loop thread spends little on any
 * request and is never starved by the printing.
 */
#include "traind/api.h"
#include "traind/compare.h"
#include "traind/events.h"
#include "traind/hostcheck.h"
#include "traind/json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "traind/laws.h"
#include "traind/lrfind.h"
#include "traind/preview.h"
#include "traind/rate_limit.h"
#include "traind/spool.h"
#include "traind/static_files.h"
#include "traind/util.h"

#ifndef TRAIND_VERSION
#define TRAIND_VERSION "0"
#endif


#define NO_STORE "no-store"

/* The routes: a row of routes[] (near the end). */
typedef struct route route;

/* Handlers past the route's checks: id is the decoded {id} segment (a
 * valid id) for ID routes, else NULL. */
typedef void route_fn(const api_backend *be, const http_request *req, http_response *res, const char *id,
                      const route *rt);

/* The operation of a route that r_read serves, named by its row as
 * OP(member, context): where api_backend holds the module function (an
 * api_list_op for a path without {id}, an api_id_op for one with) and the
 * context it is called with.  NO_OP: the row's handler says. */
typedef struct route_op {
    size_t fn, ctx;           /* offsets in api_backend; fn 0: none (ctx is first) */
} route_op;
#define OP(member, context) {offsetof(api_backend, member), offsetof(api_backend, context)}
#define NO_OP {0, 0}
typedef void api_list_op(void *ctx, api_done done, void *arg);
typedef void api_id_op(void *ctx, const char *id, api_done done, void *arg);

enum { M_GET = 1, M_POST = 2 };   /* M_GET answers HEAD too */
typedef enum { R_EXACT, R_PREFIX, R_ID } route_kind;

struct route {
    unsigned methods;         /* M_* */
    route_kind kind;          /* R_EXACT: path is the whole path; R_PREFIX: path and anything after;
                               * R_ID: path, one non-empty {id} segment, then exactly tail */
    const char *path, *tail;
    bool token;               /* a valid bearer token is required (401 otherwise) */
    bool limited;             /* counts against the client's write rate (429) */
    bool (*present)(const api_backend *be);   /* NULL: always; false: this daemon has no such route (404) */
    const char *no_id;        /* R_ID: the 404 message for an id that cannot be one, and of API_NOT_FOUND */
    int ok;                   /* the status of API_OK (answer_result): 0 = 200 */
    route_fn *fn;
    route_op op;              /* r_read's operation: OP(member, context) */
};


const char *const api_job_states[] = {"queued", "running", "succeeded", "failed", "cancelled", "rejected", "stopped", NULL};

/* ------------------------------------------------------------------ */
/* helpers                                                              */

bool api_id_valid(const char *id)
{
    /* One rule everywhere: an id is what spool_claim_id can make (traind(8) THE SPOOL),
     * so every job that exists can be named — "v1..2" included, which is
     * one path segment and names nothing outside jobs/. */
    return id && spool_id_valid(id);
}

bool api_job_matches(const char *id, const char *name, const char *q)
{
    if (!q || !*q)
        return true;
    return (name && strcasestr(name, q)) || (id && strcasestr(id, q));
}

bool api_idem_key_valid(const char *key)
{
    return key && spool_idem_key_valid(key);
}

bool api_token_equal(const char *given, const char *expected)
{
    /* Runs over the whole of expected whatever given holds; the only thing
     * timing reveals is the length of expected. */
    size_t gl = strlen(given), el = strlen(expected);
    volatile unsigned char diff = (unsigned char)(gl != el);
    for (size_t i = 0; i < el; i++) {
        unsigned char g = i < gl ? (unsigned char)given[i] : 0;
        diff |= g ^ (unsigned char)expected[i];
    }
    return diff == 0;
}

cJSON *api_thin_points(cJSON *arr, long max)
{
    if (!cJSON_IsArray(arr) || max < 1)
        return arr;
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n <= (size_t)max)
        return arr;
    size_t m = (size_t)max, k = 0;
    cJSON *kept = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *item = arr->child;
        cJSON_DetachItemViaPointer(arr, item);
        /* the k-th kept index (util.h's even_index); with m == 1 the last */
        size_t want = m == 1 ? n - 1 : even_index(k, n, m);
        if (k < m && i == want) {
            cJSON_AddItemToArray(kept, item);
            k++;
        } else {
            cJSON_Delete(item);
        }
    }
    while (kept->child) {
        cJSON *item = kept->child;
        cJSON_DetachItemViaPointer(kept, item);
        cJSON_AddItemToArray(arr, item);
    }
    cJSON_Delete(kept);
    return arr;
}

static void reply_json(http_response *res, int status, cJSON *o)
{
    char *s = o ? json_print_exact(o) : NULL;   /* lrs and losses to the last bit */
    cJSON_Delete(o);
    if (!s) {
        http_response_error(res, 500, "could not encode the answer");
        return;
    }
    http_response_set(res, status, "application/json", s, strlen(s));
}

/* ---- results into HTTP: the one place ------------------------------- */

/* The status of a result code (traind/result.h) on route rt. */
static int result_status(const route *rt, int rc)
{
    switch (rc) {
    case API_OK: return rt && rt->ok ? rt->ok : 200;
    case API_INVALID: return 400;
    case API_NOT_FOUND: return 404;
    case API_CONFLICT:
    case API_IN_PROGRESS: return 409;
    case API_UNPROCESSABLE:
    case API_KEY_REUSED: return 422;
    case API_QUEUE_FULL: return 429;
    case API_UNAVAILABLE: return 503;
    case API_TIMED_OUT: return 504;
    default: return 500;
    }
}

/* The error a result code means, for a module that gave no doc. */
static const char *result_message(const route *rt, int rc)
{
    switch (rc) {
    case API_NOT_FOUND: return rt && rt->no_id ? rt->no_id : "not found";
    case API_UNAVAILABLE: return API_SHUTTING_DOWN;
    case API_IN_PROGRESS: return API_KEY_IN_PROGRESS;
    case API_KEY_REUSED: return API_KEY_USED;
    case API_QUEUE_FULL: return "try again later";
    default: return "internal error";
    }
}

/* Answers res with a module's result on route rt (takes doc): the status,
 * the headers — a 429 says when to come back (Retry-After: the doc's
 * retry_after_s, else 5 s, traind(8) LIMITS), and so does a key still
 * being saved (1 s) — and, without doc, the error the code means. */
static void answer_result(http_response *res, const route *rt, int rc, cJSON *doc)
{
    if (rc == API_QUEUE_FULL) {
        const cJSON *ra = cJSON_GetObjectItemCaseSensitive(doc, "retry_after_s");
        char after[32] = "5";
        if (cJSON_IsNumber(ra)) {
            double secs = ceil(ra->valuedouble);
            snprintf(after, sizeof after, "%.0f", secs < 1 ? 1 : secs > 3600 ? 3600 : secs);
        }
        http_response_add_header(res, "Retry-After", after);
    } else if (rc == API_IN_PROGRESS) {
        http_response_add_header(res, "Retry-After", "1");
    }
    if (!doc)
        doc = rc == API_OK ? cJSON_CreateObject() : json_error_doc(result_message(rt, rc));
    reply_json(res, result_status(rt, rc), doc);
}

/* An answer the module gives later, through later_done (an api_done). */
typedef struct later {
    http_deferred *answer;
    const route *rt;
} later;

static later *later_new(const route *rt, http_response *res)
{
    later *l = xcalloc(1, sizeof *l);
    l->answer = http_response_defer(res);
    l->rt = rt;
    return l;
}

static void later_done(void *arg, int rc, cJSON *doc)
{
    later *l = arg;
    http_response res = {.status = 200};
    http_response_add_header(&res, "Cache-Control", NO_STORE);   /* as api_handle does */
    answer_result(&res, l->rt, rc, doc);
    http_deferred_respond(l->answer, &res);
    free(l);
}

/* ---- answers printed off the loop thread ----------------------------- */

/* An answer to print on the thread pool: doc as JSON, or (doc NULL) a
 * metrics answer built there from copied points, or (prom) doc's jobs as
 * Prometheus text. */
typedef struct render_req {
    uv_work_t work;
    struct render_req *next;  /* waiting for a render slot */
    uv_loop_t *loop;
    http_deferred *answer;
    int status;
    cJSON *doc;
    char *id;                 /* metrics: the job */
    train_point *pts;
    size_t n;
    long next_since;
    /* metrics read from disk on the pool first (api_backend.metrics_read) */
    int (*read)(void *arg, long since, long max, long limit, train_point **pts, size_t *n, long *next_since);
    void *read_arg;
    long since, max, limit;
    struct compare_req *cmp;  /* GET /compare: its jobs' points, read and aligned on the pool */
    bool prom;                /* Prometheus: doc the jobs, then extra */
    double uptime;
    char *extra;
    size_t extra_len;
    char *link;               /* a Link header, or NULL */
    void (*fill)(cJSON *doc); /* completes doc on the pool first (api_backend.fill_page) */
    char *text;               /* the result */
    size_t len;
    bool auth;                /* asked with a valid token: its own, first, lane */
    atomic_bool cancelled;    /* its client is gone, or the daemon stops: work no further */
} render_req;

/* GET /compare's jobs: each one's points copied on the loop (a history in
 * memory) or read from its metrics.jsonl on the pool (an ended job's). */
typedef struct compare_req {
    size_t k;                 /* distinct jobs: ids, pts, n, read_arg */
    size_t n_named;           /* the ids as named, each its job's slot */
    size_t slot[COMPARE_MAX_IDS];
    long max;
    char *ids[COMPARE_MAX_IDS];
    train_point *pts[COMPARE_MAX_IDS];
    size_t n[COMPARE_MAX_IDS];
    void *read_arg[COMPARE_MAX_IDS];   /* non-NULL: read with read() first */
    int (*read)(void *arg, long since, long max, long limit, train_point **pts, size_t *n, long *next_since);
    void (*drop)(void *arg);
} compare_req;

static void compare_req_free(compare_req *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->k; i++) {
        free(c->ids[i]);
        free(c->pts[i]);
        if (c->read_arg[i] && c->drop)
            c->drop(c->read_arg[i]);
    }
    free(c);
}

/* On the pool: the histories on disk read (each read is bounded by
 * metrics.jsonl's reader: its tail and a sample of the rest), then all of
 * them aligned; NULL when the request was cancelled meanwhile (its client
 * gone, or SIGTERM). */
static cJSON *compare_render(compare_req *c, atomic_bool *cancelled)
{
    for (size_t i = 0; i < c->k; i++) {
        if (!c->read_arg[i])
            continue;
        if (atomic_load(cancelled))
            return NULL;
        long next = -1;
        if (c->read(c->read_arg[i], -1, 0, LONG_MAX, &c->pts[i], &c->n[i], &next) != 0) {
            c->pts[i] = NULL;
            c->n[i] = 0;
        }
        c->read_arg[i] = NULL;   /* read frees it */
    }
    /* an id named again shares its job's points (copied or read once) */
    const char *ids[COMPARE_MAX_IDS];
    const train_point *pts[COMPARE_MAX_IDS];
    size_t n[COMPARE_MAX_IDS];
    for (size_t i = 0; i < c->n_named; i++) {
        ids[i] = c->ids[c->slot[i]];
        pts[i] = c->pts[c->slot[i]];
        n[i] = c->n[c->slot[i]];
    }
    return compare_doc(ids, pts, n, c->n_named, c->max);
}

/* Renders run one at a time: on a small machine the pool's threads would
 * otherwise take every core from the loop thread while a burst of heavy
 * requests is printed (the loop would not be blocked, but starved).  The
 * rest wait in order, in two lanes: a token holder's before any token-less
 * one, so that no amount of anonymous reading delays a client that has
 * the token by more than the one render under way.  Each lane is bounded
 * (API_RENDER_WAIT_MAX: past it 503 and Retry-After, traind(8)); a render
 * whose client has gone is dropped before it starts and stops between its
 * reads (render_gone), and at shutdown none starts (api_shutdown). */
#define API_RENDER_SLOTS 1
typedef struct render_lane {
    render_req *head, *tail;
    unsigned n;
} render_lane;
static unsigned g_rendering;
static render_lane g_lanes[2];   /* [1] token holders', [0] the rest */
static render_req *g_running[API_RENDER_SLOTS];
static bool g_stopping;

static cJSON *metrics_doc(const char *id, const train_point *pts, size_t n, long next_since)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON *a = cJSON_AddArrayToObject(o, "points");
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(a, train_point_json(&pts[i]));
    }
    if (next_since >= 0)
        cJSON_AddNumberToObject(o, "next_since", (double)next_since);
    else
        cJSON_AddNullToObject(o, "next_since");
    return o;
}

static void render_prom(render_req *r)
{
    prom_buf b;
    prom_buf_init(&b);
    /* list_prom's {"counts","jobs"} */
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(r->doc, "jobs");
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(r->doc, "counts");
    prom_render_traind(&b, jobs, counts, api_job_states, r->uptime);
    size_t len;
    char *text = prom_buf_take(&b, &len);
    r->text = xmalloc(len + r->extra_len + 1);
    memcpy(r->text, text, len);
    if (r->extra_len)
        memcpy(r->text + len, r->extra, r->extra_len);
    r->len = len + r->extra_len;
    r->text[r->len] = '\0';
    free(text);
}

static void render_work(uv_work_t *w)
{
    render_req *r = w->data;
    if (r->prom) {
        render_prom(r);
    } else {
        if (r->read) {
            r->next_since = -1;
            if (r->read(r->read_arg, r->since, r->max, r->limit, &r->pts, &r->n, &r->next_since) != 0) {
                r->pts = NULL;
                r->n = 0;
            }
            r->read = NULL;
            r->read_arg = NULL;
        }
        if (r->cmp && !r->doc && !(r->doc = compare_render(r->cmp, &r->cancelled))) {
            r->status = 503;   /* cancelled: the answer is dropped, or a shutdown's */
            r->doc = cJSON_CreateObject();
            cJSON_AddStringToObject(r->doc, "error", API_SHUTTING_DOWN);
        }
        if (!r->doc)
            r->doc = metrics_doc(r->id, r->pts, r->n, r->next_since);
        if (r->fill)
            r->fill(r->doc);
        r->text = json_print_exact(r->doc);   /* lrs and losses to the last bit */
        r->len = r->text ? strlen(r->text) : 0;
    }
    cJSON_Delete(r->doc);
    r->doc = NULL;
}

static void render_req_free(render_req *r)
{
    compare_req_free(r->cmp);
    cJSON_Delete(r->doc);
    free(r->id);
    free(r->pts);
    free(r->extra);
    free(r->link);
    free(r->text);
    free(r);
}

/* Every answer of the API is live state: never cached. */

/* Fills res from a finished render (the text taken). */
static void render_fill(render_req *r, http_response *res)
{
    if (!r->text) {
        http_response_error(res, 500, "could not encode the answer");
        return;
    }
    http_response_set(res, r->status, r->prom ? PROM_CONTENT_TYPE : "application/json", r->text, r->len);
    r->text = NULL;
    if (r->link)
        http_response_add_header(res, "Link", r->link);
}

static void render_done(uv_work_t *w, int status);

/* The next waiting render, token holders' first; NULL when none. */
static render_req *render_pop(void)
{
    for (int lane = 1; lane >= 0; lane--) {
        render_lane *l = &g_lanes[lane];
        render_req *r = l->head;
        if (!r)
            continue;
        l->head = r->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
        r->next = NULL;
        return r;
    }
    return NULL;
}

/* Answers r without rendering it: 503 (dropped when its client is gone). */
static void render_refuse(render_req *r)
{
    http_response res = {.status = 200};
    http_response_add_header(&res, "Cache-Control", NO_STORE);   /* as api_handle does */
    http_response_error(&res, 503, API_SHUTTING_DOWN);
    http_deferred_respond(r->answer, &res);
    render_req_free(r);
}

/* Starts waiting renders while slots are free; those cancelled meanwhile
 * (client gone, daemon stopping) are answered without any work. */
static void render_next(void)
{
    while (g_rendering < API_RENDER_SLOTS) {
        render_req *r = render_pop();
        if (!r)
            return;
        if (g_stopping || atomic_load(&r->cancelled)) {
            render_refuse(r);
            continue;
        }
        g_rendering++;
        for (size_t i = 0; i < API_RENDER_SLOTS; i++)
            if (!g_running[i]) {
                g_running[i] = r;
                break;
            }
        if (uv_queue_work(r->loop, &r->work, render_work, render_done) == 0)
            continue;
        render_work(&r->work);   /* cannot queue: print it here after all */
        render_done(&r->work, 0);
    }
}

static void render_done(uv_work_t *w, int status)
{
    render_req *r = w->data;
    for (size_t i = 0; i < API_RENDER_SLOTS; i++)
        if (g_running[i] == r)
            g_running[i] = NULL;
    http_response res = {.status = 200};
    http_response_add_header(&res, "Cache-Control", NO_STORE);   /* as api_handle does */
    if (status < 0)
        http_response_error(&res, 503, API_SHUTTING_DOWN);
    else
        render_fill(r, &res);
    http_deferred_respond(r->answer, &res);
    render_req_free(r);
    g_rendering--;
    render_next();
}

/* The client of a waiting or running render gave up (http_deferred_on_gone). */
static void render_gone(void *arg)
{
    render_req *r = arg;
    atomic_store(&r->cancelled, true);
}

void api_shutdown(void)
{
    g_stopping = true;
    for (size_t i = 0; i < API_RENDER_SLOTS; i++)
        if (g_running[i])
            atomic_store(&g_running[i]->cancelled, true);
    render_req *r;
    while ((r = render_pop()) != NULL)
        render_refuse(r);
}

/* Whether the request being handled on the loop thread came with a valid
 * token: set by api_handle around the route's handler (handlers run on the
 * loop, one at a time), read by render_answer to pick the lane. */
static bool g_handling_auth;

/* Whether r's lane (a token holder's, or the rest) is full, or the
 * daemon stopping: then the answer is 503 with Retry-After. */
static bool render_refused(bool auth)
{
    return g_stopping || g_lanes[auth ? 1 : 0].n >= (auth ? API_RENDER_WAIT_MAX_AUTH : API_RENDER_WAIT_MAX);
}

static void render_busy(http_response *res)
{
    http_response_error(res, 503, g_stopping ? API_SHUTTING_DOWN : API_BUSY);
    http_response_add_header(res, "Retry-After", "1");
}

/* Queues r in its lane (auth: the token holders'), answered through answer. */
static void render_enqueue(const api_backend *be, render_req *r, bool auth, http_deferred *answer)
{
    render_lane *l = &g_lanes[auth ? 1 : 0];
    r->auth = auth;
    r->answer = answer;
    http_deferred_on_gone(r->answer, render_gone, r);
    r->loop = be->loop;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
    render_next();
}

/* Answers r: on the thread pool when the backend has a loop, else now. */
static void render_answer(const api_backend *be, render_req *r, http_response *res)
{
    r->work.data = r;
    if (be->loop) {
        if (render_refused(g_handling_auth)) {
            render_req_free(r);
            render_busy(res);
            return;
        }
        render_enqueue(be, r, g_handling_auth, http_response_defer(res));
        return;
    }
    render_work(&r->work);
    render_fill(r, res);
    render_req_free(r);
}

/* A doc an operation answers through done (now or later), printed as
 * render_answer prints (completed by fill first) when it is API_OK; any
 * other result is answered as answer_result says. */
typedef struct render_wait {
    const api_backend *be;
    const route *rt;
    http_deferred *answer;
    void (*fill)(cJSON *doc);
    bool auth;                /* asked with a valid token (its lane) */
} render_wait;

static render_wait *render_later_new(const api_backend *be, const route *rt, http_response *res,
                                     void (*fill)(cJSON *doc))
{
    render_wait *w = xcalloc(1, sizeof *w);
    w->be = be;
    w->rt = rt;
    w->answer = http_response_defer(res);
    w->fill = fill;
    w->auth = g_handling_auth;
    return w;
}

static void render_later_done(void *arg, int rc, cJSON *doc)
{
    render_wait *w = arg;
    http_deferred *answer = w->answer;
    const api_backend *be = w->be;
    render_req *r = NULL;
    if (rc == API_OK && doc) {
        r = xcalloc(1, sizeof *r);
        r->status = 200;
        r->doc = doc;
        r->fill = w->fill;
        r->work.data = r;
        if (be->loop && !render_refused(w->auth)) {
            render_enqueue(be, r, w->auth, answer);
            free(w);
            return;
        }
    }
    http_response res = {.status = 200};
    http_response_add_header(&res, "Cache-Control", NO_STORE);   /* as api_handle does */
    if (!r) {
        answer_result(&res, w->rt, rc == API_OK ? -EIO : rc, doc);
    } else if (be->loop) {
        render_req_free(r);
        render_busy(&res);
    } else {
        render_work(&r->work);
        render_fill(r, &res);
        render_req_free(r);
    }
    http_deferred_respond(answer, &res);
    free(w);
}

static void method_not_allowed(http_response *res, const char *allow)
{
    http_response_error(res, 405, "method not allowed");
    http_response_add_header(res, "Allow", allow);
}

/* The bearer token of req, or NULL. */
static const char *given_token(const http_request *req)
{
    const char *h = http_request_header(req, "Authorization");
    const char *given = NULL;
    if (h && strncasecmp(h, "Bearer", 6) == 0 && (h[6] == ' ' || h[6] == '\t')) {
        given = h + 6;
        while (*given == ' ' || *given == '\t')
            given++;
    }
    return given;
}

static bool token_valid(const api_backend *be, const http_request *req)
{
    const char *expected = be->token ? be->token(be->ctx) : NULL;
    const char *given = given_token(req);
    return expected && *expected && given && *given && api_token_equal(given, expected);
}

/* Bearer token check; answers 401 itself and returns false when it fails. */
static bool authorized(const api_backend *be, const http_request *req, http_response *res)
{
    const char *given = given_token(req);
    if (token_valid(be, req))
        return true;
    http_response_error(res, 401, given ? "invalid token" : "a bearer token is required for writes");
    http_response_add_header(res, "WWW-Authenticate",
                             given ? "Bearer realm=\"traind\", error=\"invalid_token\"" : "Bearer realm=\"traind\"");
    return false;
}

/* Parses a whole decimal integer; false on anything else. */
static bool parse_long(const char *s, long *out)
{
    if (!s || !*s || !((*s >= '0' && *s <= '9') || *s == '-'))
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* The query parameter key as an integer: 1 found (in *out), 0 absent, -1
 * present but not an integer (400 already set). */
static int query_long(const http_request *req, const char *key, long *out, http_response *res)
{
    char *v = NULL;
    int r = http_query_get(req->query, key, &v);
    if (r == 0)
        return 0;
    bool ok = r > 0 && parse_long(v, out);
    free(v);
    if (!ok) {
        char msg[96];
        snprintf(msg, sizeof msg, "query parameter '%s' must be an integer", key);
        http_response_error(res, 400, msg);
        return -1;
    }
    return 1;
}

static bool valid_state(const char *s)
{
    for (size_t i = 0; api_job_states[i]; i++)
        if (strcmp(s, api_job_states[i]) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* routes                                                               */

static void get_status(const api_backend *be, http_response *res)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", TRAIND_VERSION);
    cJSON_AddNumberToObject(o, "uptime_s", be->uptime ? be->uptime(be->ctx) : 0);
    cJSON *jobs = be->list_summaries ? be->list_summaries(be->jobs) : NULL;
    if (cJSON_IsObject(jobs)) {
        /* the bounded summary's fields ({"counts","jobs_total","jobs","jobs_omitted"}) */
        cJSON *f;
        while ((f = cJSON_DetachItemViaPointer(jobs, jobs->child)) != NULL) {
            char *k = xstrdup(f->string);
            cJSON_AddItemToObject(o, k, f);
            free(k);
        }
    } else {
        cJSON_AddItemToObject(o, "jobs", cJSON_CreateArray());
    }
    cJSON_Delete(jobs);
    render_req *r = xcalloc(1, sizeof *r);
    r->status = 200;
    r->doc = o;
    /* Bounded (the active jobs and the newest few, ~1 KB whatever the
     * number of jobs): printed here, where a trip through the pool's
     * one-at-a-time queue would cost more than the printing. */
    r->work.data = r;
    render_work(&r->work);
    render_fill(r, res);
    render_req_free(r);
}

/* s percent-encoded for a query string (malloc'd): unreserved bytes kept. */
static char *query_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = xmalloc(3 * strlen(s) + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static void r_jobs(const api_backend *be, const http_request *req, http_response *res, const char *id, const route *rt)
{
    char *state = NULL, *after = NULL, *q = NULL;
    int r = http_query_get(req->query, "state", &state);
    if (r < 0 || (r > 0 && !valid_state(state))) {
        free(state);
        http_response_error(res, 400,
                            "state must be one of queued, running, succeeded, failed, cancelled, rejected, stopped");
        return;
    }
    long limit = API_JOBS_PAGE_DEFAULT;
    if (query_long(req, "limit", &limit, res) < 0)
        goto out;
    if (limit < 1) {
        http_response_error(res, 400, "query parameter 'limit' must be at least 1");
        goto out;
    }
    if (limit > API_JOBS_PAGE_MAX)
        limit = API_JOBS_PAGE_MAX;
    r = http_query_get(req->query, "after", &after);
    if (r < 0 || (r > 0 && !api_id_valid(after))) {
        http_response_error(res, 400, "query parameter 'after' must be a job id");
        goto out;
    }
    r = http_query_get(req->query, "q", &q);
    if (r < 0 || (q && strlen(q) > API_QUERY_MAX)) {
        http_response_error(res, 400, "query parameter 'q' must be UTF-8 text of at most 128 bytes");
        goto out;
    }
    if (q && !*q) {
        free(q);
        q = NULL;
    }
    cJSON *page = NULL;
    char *next = NULL;
    if (be->list_page)
        r = be->list_page(be->jobs, state, q, after, (size_t)limit, &page, &next);
    else
        r = after ? -ENOENT : 0;   /* no jobs */
    if (r == -ENOENT) {
        http_response_error(res, 400, "query parameter 'after': no such job");
        goto out;
    }
    render_req *rr = xcalloc(1, sizeof *rr);
    rr->status = 200;
    rr->doc = page ? page : cJSON_CreateArray();
    rr->fill = be->fill_page;
    if (next) {   /* ids are [A-Za-z0-9._-]: nothing to escape; q is */
        char *qe = q ? query_escape(q) : NULL;
        rr->link = xasprintf("</jobs?limit=%ld&after=%s%s%s%s%s>; rel=\"next\"", limit, next, state ? "&state=" : "",
                             state ? state : "", qe ? "&q=" : "", qe ? qe : "");
        free(qe);
    }
    free(next);
    render_answer(be, rr, res);
out:
    free(state);
    free(after);
    free(q);
}

/* A POST /jobs waiting for the backend's answer. */
typedef struct post_wait {
    const api_backend *be;
    const route *rt;
    http_deferred *answer;
} post_wait;

static void post_jobs_done(void *arg, int r, cJSON *doc)
{
    post_wait *w = arg;
    const api_backend *be = w->be;
    http_response res = {.status = 200};
    http_response_add_header(&res, "Cache-Control", NO_STORE);   /* as api_handle does */
    /* the backend's doc: {"id"} and (API_INVALID, API_KEY_REUSED) "errors" */
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "id"));
    cJSON *errors = cJSON_DetachItemFromObjectCaseSensitive(doc, "errors");
    cJSON *o = NULL;
    if (r == API_OK && id) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
    } else if (r == API_INVALID) {
        int n = cJSON_IsArray(errors) ? cJSON_GetArraySize(errors) : 0;
        char msg[64];
        snprintf(msg, sizeof msg, "invalid config (%d problem%s)", n, n == 1 ? "" : "s");
        o = json_error_doc(msg);
        if (id)
            cJSON_AddStringToObject(o, "id", id);
        cJSON_AddItemToObject(o, "errors", cJSON_IsArray(errors) ? errors : cJSON_CreateArray());
        if (cJSON_IsArray(errors))
            errors = NULL; /* now owned by o */
    } else if (r == API_UNAVAILABLE || r == API_IN_PROGRESS) {
        ;   /* answer_result's message */
    } else if (r == API_KEY_REUSED) {
        /* the same key for another request: an error naming the key, never the first answer */
        if (cJSON_IsString(errors))
            o = json_error_doc(errors->valuestring);
    } else if (r == API_QUEUE_FULL) {
        long waiting = be->queued ? be->queued(be->ctx) : -1;
        char msg[128];
        if (waiting >= 0)
            snprintf(msg, sizeof msg, "the queue is full (%ld job%s waiting); try again later", waiting,
                     waiting == 1 ? "" : "s");
        else
            snprintf(msg, sizeof msg, "the queue is full; try again later");
        o = json_error_doc(msg);
    } else {
        r = -EIO;   /* 500, whatever the code */
        o = json_error_doc("could not submit the job");
    }
    cJSON_Delete(doc);
    cJSON_Delete(errors);
    answer_result(&res, w->rt, r, o);
    http_deferred_respond(w->answer, &res);
    free(w);
}

/* The answer waits for the backend: it saves the config durably and
 * validates it off the loop thread, so a 201 means the job survives even a
 * power cut. */
static void r_submit(const api_backend *be, const http_request *req, http_response *res, const char *id,
                     const route *rt)
{
    if (req->body_len == 0) {
        http_response_error(res, 400, "the request body must be a run config (YAML)");
        return;
    }
    if (!be->submit) {
        http_response_error(res, 503, API_SHUTTING_DOWN);
        return;
    }
    char *name = NULL;
    if (http_query_get(req->query, "name", &name) < 0) {
        http_response_error(res, 400, "query parameter 'name' is not valid percent-encoding");
        return;
    }
    const char *key = http_request_header(req, "Idempotency-Key");
    if (key && !api_idem_key_valid(key)) {
        free(name);
        http_response_error(res, 400, "Idempotency-Key must be 1 to 255 visible ASCII characters");
        return;
    }
    post_wait *w = xcalloc(1, sizeof *w);
    w->be = be;
    w->rt = rt;
    w->answer = http_response_defer(res);
    be->submit(be->jobs, req->body, req->body_len, name, key, post_jobs_done, w);
    free(name);
}

/* POST /validate and POST /schedule?max=N (preview.h). */
static void post_preview(const api_backend *be, const http_request *req, http_response *res, const route *rt,
                         bool schedule)
{
    if (req->body_len == 0)
        return http_response_error(res, 400, "the request body must be a run config or a sweep file (YAML)");
    long max = 0;
    if (schedule) {
        max = PREVIEW_DEFAULT_POINTS;
        int r = query_long(req, "max", &max, res);
        if (r < 0)
            return;
        if (r > 0 && (max < 2 || max > PREVIEW_MAX_POINTS))
            return http_response_error(res, 400, "query parameter 'max' must be 2 to 10000");
    }
    be->preview(be->previews, req->body, req->body_len, max, later_done, later_new(rt, res));
}

/* query parameter key as a finite number: 1 found, 0 absent, -1 answered 400. */
static int query_double(const http_request *req, const char *key, double *out, http_response *res)
{
    char *v = NULL;
    int r = http_query_get(req->query, key, &v);
    if (r == 0)
        return 0;
    char *end = NULL;
    double d = r > 0 && v[0] ? strtod(v, &end) : NAN;
    bool ok = end && *end == '\0' && isfinite(d);
    free(v);
    if (!ok) {
        char msg[96];
        snprintf(msg, sizeof msg, "query parameter '%s' must be a number", key);
        http_response_error(res, 400, msg);
        return -1;
    }
    *out = d;
    return 1;
}

/* POST /lr-find?start=&end=&steps= (lrfind_job.h): the sweep checked here,
 * the config by the process that runs it. */
static void r_lr_find(const api_backend *be, const http_request *req, http_response *res, const char *id,
                      const route *rt)
{
    if (req->body_len == 0)
        return http_response_error(res, 400, "the request body must be a run config (YAML)");
    lrfind_opts o = {LRFIND_DEFAULT_START, LRFIND_DEFAULT_END, LRFIND_DEFAULT_STEPS};
    if (query_double(req, "start", &o.start, res) < 0 || query_double(req, "end", &o.end, res) < 0 ||
        query_long(req, "steps", &o.steps, res) < 0)
        return;
    char err[256];
    if (lrfind_check_opts(&o, err, sizeof err) != 0)
        return http_response_error(res, 400, err);
    be->lr_find(be->lr_finds, req->body, req->body_len, &o, later_done, later_new(rt, res));
}

/* POST /laws: a JSON fit request, fitted on the pool (laws.h). */
static void r_law_fit(const api_backend *be, const http_request *req, http_response *res, const char *id,
                      const route *rt)
{
    if (req->body_len == 0)
        return http_response_error(res, 400, "the request body must be JSON: {\"jobs\": [ID...] or \"experiment\": "
                                             "ID, \"law\": \"mpl\"|\"momentum\", \"metric\": ...}");
    be->fit_law(be->laws, req->body, req->body_len, later_done, later_new(rt, res));
}

/* POST /laws/{id}/predict?max=N: a config, a sweep or JSON (laws.h). */
static void r_law_predict(const api_backend *be, const http_request *req, http_response *res, const char *id,
                          const route *rt)
{
    if (req->body_len == 0)
        return http_response_error(res, 400, "the request body must be a run config or a sweep file (YAML), or "
                                             "JSON {\"configs\": [...]} or {\"jobs\": [ID...]}");
    long max = LAWS_PREDICT_DEFAULT_POINTS;
    int r = query_long(req, "max", &max, res);
    if (r < 0)
        return;
    if (r > 0 && (max < 2 || max > LAWS_PREDICT_MAX_POINTS))
        return http_response_error(res, 400, "query parameter 'max' must be 2 to 2000");
    be->predict_law(be->laws, id, req->body, req->body_len, max, later_done, later_new(rt, res));
}

/* POST /jobs/{id}/fork: a JSON body (forks.h). */
static void r_job_fork(const api_backend *be, const http_request *req, http_response *res, const char *id,
                       const route *rt)
{
    if (!be->fork)
        return http_response_error(res, 404, "this traind does not fork jobs");
    if (req->body_len == 0)
        return http_response_error(res, 400, "the request body must be JSON: {\"at_step\": S, \"set\": {...}}");
    const char *key = http_request_header(req, "Idempotency-Key");
    if (key && !api_idem_key_valid(key))
        return http_response_error(res, 400, "Idempotency-Key must be 1 to 255 visible ASCII characters");
    be->fork(be->jobs, id, req->body, req->body_len, key, later_done, later_new(rt, res));
}

/* The slot of id's job in c, or c->k when it is not there yet. */
static size_t compare_slot(const compare_req *c, const char *id)
{
    size_t i = 0;
    while (i < c->k && strcmp(c->ids[i], id) != 0)
        i++;
    return i;
}

/* GET /compare?ids=a,b,c&max=N (compare.h): each job's history is copied
 * out on the loop when it is in memory (thinned to COMPARE_COPY_POINTS), or named
 * for the pool when it is on disk (an ended job's metrics.jsonl: parsing
 * a few of those would hold the loop for seconds); the pool reads them,
 * aligns and prints. */
static void r_compare(const api_backend *be, const http_request *req, http_response *res, const char *id,
                      const route *rt)
{
    if (!be->metrics_points)
        return http_response_error(res, 404, "not found");
    char *ids = NULL;
    if (http_query_get(req->query, "ids", &ids) < 0 || !ids || !ids[0]) {
        free(ids);
        return http_response_error(res, 400, "query parameter 'ids' must list job ids: ids=a,b,c");
    }
    long max = 500;
    int r = query_long(req, "max", &max, res);
    if (r < 0) {
        free(ids);
        return;
    }
    if (r > 0 && (max < 2 || max > COMPARE_MAX_POINTS)) {
        free(ids);
        return http_response_error(res, 400, "query parameter 'max' must be 2 to 2000");
    }
    compare_req *c = xcalloc(1, sizeof *c);
    c->max = max;
    c->read = be->metrics_read;
    c->drop = be->metrics_drop;
    bool can_defer = be->metrics_defer && be->metrics_read && be->metrics_drop && be->loop;
    char *save = NULL;
    for (char *one = strtok_r(ids, ",", &save); one; one = strtok_r(NULL, ",", &save)) {
        char msg[96];
        if (c->n_named == COMPARE_MAX_IDS) {
            snprintf(msg, sizeof msg, "at most %d ids", COMPARE_MAX_IDS);
            compare_req_free(c);
            free(ids);
            return http_response_error(res, 400, msg);
        }
        size_t at = compare_slot(c, one);
        if (at < c->k) {   /* named again: its points are not copied or read again */
            c->slot[c->n_named++] = at;
            continue;
        }
        void *arg = NULL;
        int dr = !api_id_valid(one) ? API_NOT_FOUND : can_defer ? be->metrics_defer(be->jobs, one, &arg) : 0;
        long next;
        /* a history in memory: COMPARE_COPY_POINTS of it, evenly spread (a
         * copy bounded whatever metrics_keep is, made here on the loop) */
        if (dr == 0 && be->metrics_points(be->jobs, one, -1, COMPARE_COPY_POINTS, LONG_MAX, &c->pts[c->k],
                                          &c->n[c->k], &next) != 0)
            dr = API_NOT_FOUND;
        if (dr == API_NOT_FOUND) {
            snprintf(msg, sizeof msg, "no such job: %.48s", one);
            compare_req_free(c);
            free(ids);
            return http_response_error(res, 404, msg);
        }
        c->read_arg[c->k] = dr == 1 ? arg : NULL;
        c->slot[c->n_named++] = c->k;
        c->ids[c->k++] = xstrdup(one);
    }
    free(ids);
    render_req *rr = xcalloc(1, sizeof *rr);
    rr->status = 200;
    rr->cmp = c;
    render_answer(be, rr, res);
}

/* POST /experiments: an experiment file (experiments.h) */
static void r_experiment_submit(const api_backend *be, const http_request *req, http_response *res, const char *id,
                                const route *rt)
{
    if (req->body_len == 0)
        return http_response_error(res, 400, "the request body must be an experiment file (YAML with sweep:)");
    const char *key = http_request_header(req, "Idempotency-Key");
    if (key && !api_idem_key_valid(key))
        return http_response_error(res, 400, "Idempotency-Key must be 1 to 255 visible ASCII characters");
    be->submit_experiment(be->exps, req->body, req->body_len, key, later_done, later_new(rt, res));
}

/* A cancel waiting for its request to be on disk. */
typedef struct cancel_wait {
    http_deferred *answer;
    const route *rt;
    char *id;
} cancel_wait;

/* POST /experiments/{id}/cancel: answered once the cancel is on disk. */
static void experiment_cancel_answer(http_response *res, const route *rt, const char *id, int rc)
{
    cJSON *o = NULL;
    if (rc == API_OK) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "state", "cancelled");
    } else if (rc == API_CONFLICT) {
        o = json_error_doc("the experiment has already ended");
    } else if (rc != API_NOT_FOUND) {
        rc = -EIO;   /* 500, whatever the errno */
        o = json_error_doc("the cancel could not be saved; it may not survive a restart");
    }
    answer_result(res, rt, rc, o);
}

static void experiment_cancel_done(void *arg, int rc, cJSON *doc);

static void r_experiment_cancel(const api_backend *be, const http_request *req, http_response *res, const char *id,
                                const route *rt)
{
    cancel_wait *w = xcalloc(1, sizeof *w);
    w->answer = http_response_defer(res);
    w->rt = rt;
    w->id = xstrdup(id);
    be->cancel_experiment(be->exps, id, experiment_cancel_done, w);
}

/* GET /jobs/{id}: the job object is printed on the thread pool, where
 * what the backend left on disk (an ended job's config) is read too:
 * never on the loop (render_later). */
static void r_job(const api_backend *be, const http_request *req, http_response *res, const char *id, const route *rt)
{
    if (!be->get_job)
        return http_response_error(res, 404, "no such job");
    be->get_job(be->jobs, id, render_later_done, render_later_new(be, rt, res, be->fill_page));
}

static void r_job_metrics(const api_backend *be, const http_request *req, http_response *res, const char *id,
                          const route *rt)
{
    long since = -1, max = 0, limit = API_METRICS_PAGE_DEFAULT;
    int sr = query_long(req, "since", &since, res);
    if (sr < 0)
        return;
    /* after=STEP is since's other name (the dashboard's "points newer than the last I have") */
    if (sr == 0 && query_long(req, "after", &since, res) < 0)
        return;
    int r = query_long(req, "max", &max, res);
    if (r < 0)
        return;
    if (r > 0 && max < 1) {
        http_response_error(res, 400, "query parameter 'max' must be at least 1");
        return;
    }
    r = query_long(req, "limit", &limit, res);
    if (r < 0)
        return;
    if (r > 0 && limit < 1) {
        http_response_error(res, 400, "query parameter 'limit' must be at least 1");
        return;
    }
    /* bounded whatever the client asks: see API_METRICS_MAX */
    if (max > API_METRICS_MAX)
        max = API_METRICS_MAX;
    if (limit > API_METRICS_MAX)
        limit = API_METRICS_MAX;
    render_req *rr;
    void *defer_arg = NULL;
    int dr = be->metrics_defer && be->metrics_read && be->loop ? be->metrics_defer(be->jobs, id, &defer_arg) : 0;
    if (dr == API_NOT_FOUND) {
        http_response_error(res, 404, "no such job");
        return;
    }
    if (dr == 1) {
        /* the history is on disk: read and thinned on the pool */
        rr = xcalloc(1, sizeof *rr);
        rr->id = xstrdup(id);
        rr->read = be->metrics_read;
        rr->read_arg = defer_arg;
        rr->since = since;
        rr->max = max;
        rr->limit = limit;
    } else {
        train_point *pts = NULL;
        size_t n = 0;
        long next = -1;
        if (!be->metrics_points || be->metrics_points(be->jobs, id, since, max, limit, &pts, &n, &next) != 0) {
            http_response_error(res, 404, "no such job");
            return;
        }
        rr = xcalloc(1, sizeof *rr);
        rr->id = xstrdup(id);
        rr->pts = pts;
        rr->n = n;
        rr->next_since = next;
    }
    rr->status = 200;
    render_answer(be, rr, res);
}

/* The last API_LOG_MAX bytes of worker.log: enough to see why a job died,
 * bounded so a chatty job cannot make one answer huge. */
#define API_LOG_MAX (1u << 20)

/* A text answer (a log, a config) the backend gives later: its text doc,
 * or the error of its code (unreadable: 500 with what). */
typedef struct text_wait {
    http_deferred *answer;
    const char *unreadable;
} text_wait;

static void text_done(void *arg, int rc, cJSON *doc)
{
    text_wait *w = arg;
    http_response res = {.status = 200};
    http_response_add_header(&res, "Cache-Control", NO_STORE);   /* as api_handle does */
    size_t len = 0;
    char *text = rc == API_OK ? api_text_take(doc, &len) : NULL;
    if (text) {
        /* text/plain, not a YAML type: a browser shows a config rather than saving it */
        http_response_set(&res, 200, "text/plain; charset=utf-8", text, len);
    } else {
        cJSON_Delete(doc);
        if (rc == API_NOT_FOUND)
            http_response_error(&res, 404, "no such job");
        else
            http_response_error(&res, 500, w->unreadable);
    }
    http_deferred_respond(w->answer, &res);
    free(w);
}

static text_wait *text_wait_new(http_response *res, const char *unreadable)
{
    text_wait *w = xcalloc(1, sizeof *w);
    w->answer = http_response_defer(res);
    w->unreadable = unreadable;
    return w;
}

static void r_job_log(const api_backend *be, const http_request *req, http_response *res, const char *id,
                      const route *rt)
{
    if (!be->log_tail)
        return http_response_error(res, 500, "the job's log is unreadable");
    be->log_tail(be->jobs, id, API_LOG_MAX, text_done, text_wait_new(res, "the job's log is unreadable"));
}

static void r_job_config(const api_backend *be, const http_request *req, http_response *res, const char *id,
                         const route *rt)
{
    be->config_text(be->jobs, id, text_done, text_wait_new(res, "the job's config is unreadable"));
}

static void cancel_answer(http_response *res, const route *rt, const char *id, int r)
{
    cJSON *o = NULL;
    if (r == API_OK) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "status", "cancelling");
    } else if (r == API_CONFLICT) {
        o = json_error_doc("the job has already ended");
    } else if (r != API_NOT_FOUND && r != API_UNAVAILABLE) {
        r = -EIO;   /* 500, whatever the errno */
        o = json_error_doc("the cancel could not be saved; it may not survive a restart");
    }
    answer_result(res, rt, r, o);
}

/* The backend's answer to a cancel: its doc, or (NULL) the one answer()
 * writes for rc. */
static void cancel_wait_respond(cancel_wait *w, int rc, cJSON *doc,
                                void (*answer)(http_response *, const route *, const char *, int))
{
    http_response res = {.status = 200};
    http_response_add_header(&res, "Cache-Control", NO_STORE);
    if (doc)
        answer_result(&res, w->rt, rc, doc);
    else
        answer(&res, w->rt, w->id, rc);
    http_deferred_respond(w->answer, &res);
    free(w->id);
    free(w);
}

static void cancel_done(void *arg, int rc, cJSON *doc)
{
    cancel_wait_respond(arg, rc, doc, cancel_answer);
}

static void experiment_cancel_done(void *arg, int rc, cJSON *doc)
{
    cancel_wait_respond(arg, rc, doc, experiment_cancel_answer);
}

static void r_job_cancel(const api_backend *be, const http_request *req, http_response *res, const char *id,
                         const route *rt)
{
    if (!be->cancel)
        return cancel_answer(res, rt, id, API_UNAVAILABLE);
    cancel_wait *w = xcalloc(1, sizeof *w);
    w->answer = http_response_defer(res);
    w->rt = rt;
    w->id = xstrdup(id);
    be->cancel(be->jobs, id, cancel_done, w);
}

/* GET /metrics: the jobs' numbers are copied on the loop (list_prom), the
 * text is written off it (render_work). */
static void get_prometheus(const api_backend *be, http_response *res)
{
    render_req *r = xcalloc(1, sizeof *r);
    r->status = 200;
    r->prom = true;
    r->doc = be->list_prom ? be->list_prom(be->jobs) : NULL;
    if (!r->doc)
        r->doc = cJSON_CreateArray();
    r->uptime = be->uptime ? be->uptime(be->ctx) : -1;
    if (be->prom_extra) {
        prom_buf eb;
        prom_buf_init(&eb);
        be->prom_extra(be->ctx, &eb);   /* live state: read here, on the loop */
        r->extra = prom_buf_take(&eb, &r->extra_len);
    }
    render_answer(be, r, res);
}

/* ------------------------------------------------------------------ */
/* the routes                                                           */


/* A read its row names (route.op): GET of a list (no {id}) or of one
 * {id}, answered with the operation's doc through later_done.  An
 * operation this backend lacks: 404. */
static void r_read(const api_backend *be, const http_request *req, http_response *res, const char *id,
                   const route *rt)
{
    const char *b = (const char *)be;
    void *ctx = *(void *const *)(b + rt->op.ctx);
    if (rt->kind == R_ID) {
        api_id_op *op = *(api_id_op *const *)(b + rt->op.fn);
        if (!op)
            return http_response_error(res, 404, "not found");
        op(ctx, id, later_done, later_new(rt, res));
    } else {
        api_list_op *op = *(api_list_op *const *)(b + rt->op.fn);
        if (!op)
            return http_response_error(res, 404, "not found");
        op(ctx, later_done, later_new(rt, res));
    }
}

static void r_static(const api_backend *be, const http_request *req, http_response *res, const char *id,
                     const route *rt)
{
    static_files_handle(be->files, req, res);
}

static void r_status(const api_backend *be, const http_request *req, http_response *res, const char *id,
                     const route *rt)
{
    get_status(be, res);
}

static void r_healthz(const api_backend *be, const http_request *req, http_response *res, const char *id,
                      const route *rt)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    reply_json(res, 200, o);
}

static void r_prometheus(const api_backend *be, const http_request *req, http_response *res, const char *id,
                         const route *rt)
{
    get_prometheus(be, res);
}



static void r_events(const api_backend *be, const http_request *req, http_response *res, const char *id,
                     const route *rt)
{
    events_serve(req, res, token_valid(be, req));
}

static void r_validate(const api_backend *be, const http_request *req, http_response *res, const char *id,
                       const route *rt)
{
    post_preview(be, req, res, rt, false);
}

static void r_schedule(const api_backend *be, const http_request *req, http_response *res, const char *id,
                       const route *rt)
{
    post_preview(be, req, res, rt, true);
}








static bool has_preview(const api_backend *be)
{
    return be->preview != NULL;
}

static bool has_lr_find(const api_backend *be)
{
    return be->lr_find != NULL;
}

static bool has_config_text(const api_backend *be)
{
    return be->config_text != NULL;
}

static bool has_experiments(const api_backend *be)
{
    return be->list_experiments != NULL;
}

static bool has_laws(const api_backend *be)
{
    return be->list_laws != NULL;
}


#define NO_JOB "no such job"
#define NO_EXP "no such experiment"
#define NO_LAW "no such law"

static const route routes[] = {
    /* methods kind      path               tail            token  limited present          no_id   ok    handler              op */
    {M_GET,  R_EXACT,  "/",               NULL,           false, false, NULL,            NULL,   0,   r_static,             NO_OP},
    {M_GET,  R_PREFIX, "/ui/",            NULL,           false, false, NULL,            NULL,   0,   r_static,             NO_OP},
    {M_GET,  R_PREFIX, "/lib/chart.js/",  NULL,           false, false, NULL,            NULL,   0,   r_static,             NO_OP},
    {M_GET,  R_EXACT,  "/status",         NULL,           false, false, NULL,            NULL,   0,   r_status,             NO_OP},
    {M_GET,  R_EXACT,  "/healthz",        NULL,           false, false, NULL,            NULL,   0,   r_healthz,            NO_OP},
    {M_GET,  R_EXACT,  "/metrics",        NULL,           false, false, NULL,            NULL,   0,   r_prometheus,         NO_OP},
    {M_GET,  R_EXACT,  "/jobs",           NULL,           false, false, NULL,            NULL,   0,   r_jobs,               NO_OP},
    {M_POST, R_EXACT,  "/jobs",           NULL,           true,  true,  NULL,            NULL,   201, r_submit,             NO_OP},
    {M_GET,  R_EXACT,  "/events",         NULL,           false, false, NULL,            NULL,   0,   r_events,             NO_OP},
    /* /validate and /schedule write nothing, so they need no token; they
     * parse a body on the pool, so they stay charged to the write rate
     * (a token-less caller to its own "anon" bucket, see over_rate) */
    {M_POST, R_EXACT,  "/validate",       NULL,           false, true,  has_preview,     NULL,   0,   r_validate,           NO_OP},
    {M_POST, R_EXACT,  "/schedule",       NULL,           false, true,  has_preview,     NULL,   0,   r_schedule,           NO_OP},
    /* /lr-find writes nothing either, but it trains (a job's worth of CPU): the token, as POST /jobs */
    {M_POST, R_EXACT,  "/lr-find",        NULL,           true,  true,  has_lr_find,     NULL,   0,   r_lr_find,            NO_OP},
    {M_GET,  R_EXACT,  "/compare",        NULL,           false, false, NULL,            NULL,   0,   r_compare,            NO_OP},
    {M_GET,  R_EXACT,  "/experiments",    NULL,           false, false, has_experiments, NULL,   0,   r_read,               OP(list_experiments, exps)},
    {M_POST, R_EXACT,  "/experiments",    NULL,           true,  true,  has_experiments, NULL,   201, r_experiment_submit,  NO_OP},
    {M_GET,  R_ID,     "/experiments/",   "",             false, false, has_experiments, NO_EXP, 0,   r_read,               OP(get_experiment, exps)},
    {M_POST, R_ID,     "/experiments/",   "/cancel",      true,  true,  has_experiments, NO_EXP, 202, r_experiment_cancel,  NO_OP},
    /* a fit is CPU work on the pool and writes the law: the token, as POST /jobs; a
     * prediction writes nothing (the editor asks as you type): no token, as /schedule */
    {M_GET,  R_EXACT,  "/laws",           NULL,           false, false, has_laws,        NULL,   0,   r_read,               OP(list_laws, laws)},
    {M_POST, R_EXACT,  "/laws",           NULL,           true,  true,  has_laws,        NULL,   201, r_law_fit,            NO_OP},
    {M_GET,  R_ID,     "/laws/",          "",             false, false, has_laws,        NO_LAW, 0,   r_read,               OP(get_law, laws)},
    {M_POST, R_ID,     "/laws/",          "/predict",     false, true,  has_laws,        NO_LAW, 0,   r_law_predict,        NO_OP},
    {M_GET,  R_ID,     "/jobs/",          "",             false, false, NULL,            NO_JOB, 0,   r_job,                NO_OP},
    {M_GET,  R_ID,     "/jobs/",          "/metrics",     false, false, NULL,            NO_JOB, 0,   r_job_metrics,        NO_OP},
    {M_GET,  R_ID,     "/jobs/",          "/log",         false, false, NULL,            NO_JOB, 0,   r_job_log,            NO_OP},
    {M_GET,  R_ID,     "/jobs/",          "/config",      false, false, has_config_text, NO_JOB, 0,   r_job_config,         NO_OP},
    {M_GET,  R_ID,     "/jobs/",          "/checkpoints", false, false, NULL,            NO_JOB, 0,   r_read,               OP(checkpoints, jobs)},
    {M_POST, R_ID,     "/jobs/",          "/cancel",      true,  true,  NULL,            NO_JOB, 202, r_job_cancel,         NO_OP},
    {M_POST, R_ID,     "/jobs/",          "/fork",        true,  true,  NULL,            NO_JOB, 201, r_job_fork,           NO_OP},
};

/* Whether path is r's; for R_ID, *seg and *seglen are its {id} segment. */
static bool route_path(const route *r, const char *path, const char **seg, size_t *seglen)
{
    size_t pl = strlen(r->path);
    if (r->kind == R_EXACT)
        return strcmp(path, r->path) == 0;
    if (strncmp(path, r->path, pl) != 0)
        return false;
    if (r->kind == R_PREFIX)
        return true;
    const char *s = path + pl, *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || strcmp(s + n, r->tail) != 0)
        return false;
    *seg = s;
    *seglen = n;
    return true;
}

/* The route for (method, path), or NULL with *allow the methods the path
 * has (0: no such path).  Routes whose backend is absent are not there. */
static const route *route_match(const api_backend *be, const char *method, const char *path, unsigned *allow,
                                const char **seg, size_t *seglen)
{
    unsigned m = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? M_GET
                 : strcmp(method, "POST") == 0                               ? M_POST
                                                                             : 0;
    *allow = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route *r = &routes[i];
        if (!route_path(r, path, seg, seglen) || (r->present && !r->present(be)))
            continue;
        if (r->methods & m)
            return r;
        *allow |= r->methods;
    }
    return NULL;
}

static bool is_read(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* The one place auth and the write limit are decided: a matched route says;
 * a request that matched none (404, 405) is a write unless it reads, and
 * is charged and needs a token as writes do. */
static bool needs_token(const route *r, const char *method)
{
    return r ? r->token : !is_read(method);
}

static bool is_limited(const route *r, const char *method)
{
    return r ? r->limited : !is_read(method);
}

int api_expect(void *ctx, const http_request *req, const char **msg)
{
    const api_backend *be = ctx;
    unsigned allow;
    const char *seg = NULL;
    size_t seglen = 0;
    const route *r = route_match(be, req->method, req->path ? req->path : "", &allow, &seg, &seglen);
    if (!needs_token(r, req->method) || token_valid(be, req))
        return 100;
    *msg = given_token(req) ? "invalid token" : "a bearer token is required for writes";
    return 401;
}

/* 429 with Retry-After when the request's client is over its write rate. */
static bool over_rate(const api_backend *be, const http_request *req, http_response *res)
{
    /* Authenticated and unauthenticated writes are charged to separate
     * buckets (per peer): token-less noise from a host, however much,
     * never makes its real clients' writes 429. */
    const char *peer = req->peer ? req->peer : "unknown";
    char key[64];
    snprintf(key, sizeof key, "%s %s", token_valid(be, req) ? "auth" : "anon", peer);
    double wait = rate_limit_take(be->write_limit, key, now_monotonic());
    if (wait <= 0)
        return false;
    char msg[160], after[32];
    snprintf(msg, sizeof msg, "too many requests from %s: limit is %g writes/s", peer,
             rate_limit_rate(be->write_limit));
    http_response_error(res, 429, msg);
    double secs = ceil(wait);
    snprintf(after, sizeof after, "%.0f", secs < 1 ? 1 : secs > 86400 ? 86400 : secs);
    http_response_add_header(res, "Retry-After", after);
    return true;
}

void api_handle(void *ctx, const http_request *req, http_response *res)
{
    const api_backend *be = ctx;
    http_response_add_header(res, "Cache-Control", NO_STORE);

    /* an absolute-form target's authority is checked as a Host header is */
    char authority[256];
    const char *host = host_of_request(req->target, http_request_header(req, "Host"), authority, sizeof authority);
    if (be->host_allowed && !be->host_allowed(be->ctx, host))
        return http_response_error(res, 403,
                                   "this Host is not allowed (a DNS rebinding guard): add it to allowed_hosts in the "
                                   "daemon config");

    unsigned allow;
    const char *seg = NULL;
    size_t seglen = 0;
    const route *r = route_match(be, req->method, req->path, &allow, &seg, &seglen);
    if (be->write_limit && is_limited(r, req->method) && over_rate(be, req, res))
        return;
    if (!r && !allow)
        return http_response_error(res, 404, "not found");
    if (!r)
        return method_not_allowed(res, allow & M_POST ? (allow & M_GET ? "GET, HEAD, POST" : "POST") : "GET, HEAD");
    if (needs_token(r, req->method) && !authorized(be, req, res))
        return;
    g_handling_auth = token_valid(be, req);
    if (r->kind != R_ID) {
        r->fn(be, req, res, NULL, r);
        g_handling_auth = false;
        return;
    }
    char *id = NULL;
    if (http_pct_decode(seg, seglen, true, false, &id) < 0 || !api_id_valid(id)) {
        free(id);
        g_handling_auth = false;
        return http_response_error(res, 404, r->no_id);
    }
    r->fn(be, req, res, id, r);
    g_handling_auth = false;
    free(id);
}

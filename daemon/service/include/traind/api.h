/*
 * api — the HTTP API of traind(8) HTTP API: routes → JSON (or Prometheus text, or
 * the HTML dashboard).  It knows nothing of jobs beyond the api_backend the
 * daemon fills in with function pointers, so tests drive it with fakes.
 *
 * Wiring:
 *
 *     static api_backend be = {.jobs = table, .get_job = jobs_get, ...};
 *     http_server_start(loop, listen, NULL, api_handle, &be, &srv);
 *
 * Every operation is called on the loop thread and must not block; it
 * answers through done (traind/result.h).  cJSON values the backend
 * returns or answers with become the API's (it frees them).
 */
#ifndef TRAIND_API_H
#define TRAIND_API_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "traind/http.h"
#include "traind/prom.h"
#include "traind/rate_limit.h"
#include "traind/result.h"
#include "traind/spool.h"
#include "traind/train_point.h"

/* Pages (traind(8) HTTP API): GET /jobs answers at most limit jobs (default and most
 * below); GET /jobs/{id}/metrics without max= answers the first limit
 * points after since, with "next_since" to ask for the rest; max= thins to
 * at most API_METRICS_MAX points.  Bounded answers keep every request's
 * work (and memory per connection) bounded, whatever the history. */
#define API_JOBS_PAGE_DEFAULT 100
#define API_JOBS_PAGE_MAX 1000
#define API_METRICS_PAGE_DEFAULT 1000
#define API_METRICS_MAX 10000

/* The backend hands metrics points out as train_points (traind/train_point.h). */

/* Result codes (API_OK, API_INVALID, ...) and api_done: traind/result.h. */

/* Answers printed on the thread pool (job pages, metrics, /compare,
 * /metrics) wait their turn in two bounded lanes, a token holder's first:
 * past API_RENDER_WAIT_MAX waiting token-less requests (or
 * API_RENDER_WAIT_MAX_AUTH with the token) the next is answered 503
 * API_BUSY with Retry-After (traind(8), LIMITS). */
#define API_RENDER_WAIT_MAX 32
#define API_RENDER_WAIT_MAX_AUTH 64
#define API_BUSY "traind is busy answering other requests; retry"

/* Stops the answers printed off the loop: the waiting ones are answered
 * 503 at once, the one under way stops at its next read.  SIGTERM. */
void api_shutdown(void);

struct lrfind_opts;

/* The API's backend: the service's operations, each a module's own
 * function called with that module's context (the job table for jobs_*,
 * forks_*; the experiments table for exps_*; ...), so the daemon wires
 * module functions here and nothing else.  An operation has one shape,
 *
 *     void op(void *ctx, ...the request..., api_done done, void *arg);
 *
 * answered through done(arg, rc, doc) exactly once, on the loop thread,
 * now or later (done takes doc): a result code (traind/result.h; routes[]
 * in api.c makes it a status) and the JSON to answer (NULL: the error the
 * code means), or a text doc (api_text_doc) where the route answers text.
 * An operation left NULL: its route is unknown (404), or answers as
 * described below.  A new endpoint is a module function of this shape, its
 * member here, its line in the daemon's wiring and its row in api.c's
 * routes[] (a read of a list or of one {id}: OP(member, context) in the
 * row, no handler).  The job reads printed on the thread pool (pages,
 * metrics, Prometheus) keep shapes of their own, below. */
typedef struct api_backend {
    void *ctx;   /* the daemon's: token, uptime, queued, host_allowed, prom_extra */

    /* ---- jobs (traind/jobs.h, traind/forks.h): called with jobs ---- */
    void *jobs;

    /* GET /jobs: a page of job objects, newest first, at most limit, in
     * state (NULL = any; else always one of api_job_states), whose name or
     * id holds q (api_job_matches; NULL = any), older than the job after
     * (NULL = from the newest).  0 with *out and *next_after (malloc'd id,
     * NULL on the last page); -ENOENT when there is no job after.  NULL:
     * no jobs. */
    int (*list_page)(void *jobs, const char *state, const char *q, const char *after, size_t limit, cJSON **out,
                     char **next_after);
    /* Completes a page of list_page, or get_job's object, on the thread
     * pool before it is printed (reads what they left on disk); thread-safe.
     * NULL: nothing to do. */
    void (*fill_page)(cJSON *page);

    /* GET /metrics' jobs, {"counts":{state: n...}, "jobs":[...]} with
     * only the numbers it shows (id, state, step, total_steps, lr, loss,
     * steps_per_s, eval_loss) of the jobs it lists per job (the daemon's:
     * the active ones).  NULL: no jobs. */
    cJSON *(*list_prom)(void *jobs);

    /* The jobs of GET /status, a bounded summary {"counts":{state: n...},
     * "jobs_total", "jobs": [{"id","state","step","total_steps","lr",
     * "loss"}...] newest first, "jobs_omitted"}.  NULL: no jobs. */
    cJSON *(*list_summaries)(void *jobs);

    /* GET /jobs/{id}: the job object, or API_NOT_FOUND.  id is valid
     * (api_id_valid), as every id the API hands on is. */
    void (*get_job)(void *jobs, const char *id, api_done done, void *arg);

    /* POST /jobs: takes a run config (YAML, len bytes, NUL-terminated;
     * valid only during the call), saved and validated on the thread pool:
     * API_OK with {"id"}; API_INVALID with {"errors": [{"path","line",
     * "column","message"}...]} (and "id" if the daemon keeps the rejected
     * job); API_KEY_REUSED with "errors" a string naming the key; or
     * another code with no doc.  default_name (from POST /jobs?name=STEM,
     * NULL if absent) names a config that has no `name`, as a file's stem
     * does for a config dropped in incoming/.  idem_key (the
     * Idempotency-Key header, NULL if absent; valid only during the call):
     * a key given before answers with the job it made (API_OK, or
     * API_INVALID with its errors, as the first time); API_IN_PROGRESS
     * while the first request with it is still being saved. */
    void (*submit)(void *jobs, const char *yaml, size_t len, const char *default_name, const char *idem_key,
                   api_done done, void *arg);

    /* POST /jobs/{id}/cancel: API_OK only once the request is on disk (a
     * daemon that dies right after the 202 still cancels the job when it
     * starts again), API_NOT_FOUND, API_CONFLICT (already ended), or a
     * -errno when it could not be saved.  doc NULL: api.c writes the
     * answer (traind(8) HTTP API). */
    void (*cancel)(void *jobs, const char *id, api_done done, void *arg);

    /* GET /jobs/{id}/metrics: the points with step > since, copied out —
     * with max > 0 at most max of them evenly thinned (the last kept), else
     * the first limit of them and *next_since the step to ask after for
     * the rest (-1 when none are left).  0 with *pts (malloc'd) and *n, or
     * API_NOT_FOUND.  The API renders them off the loop thread when loop
     * is set.  NULL: every job's metrics are 404. */
    int (*metrics_points)(void *jobs, const char *id, long since, long max, long limit, train_point **pts,
                          size_t *n, long *next_since);

    /* Optional, with metrics_points and loop: a job whose history is on
     * disk only.  metrics_defer returns 1 with *arg, and then
     * metrics_read(arg, ...) answers as metrics_points would on the thread
     * pool (and frees arg); 0 = answer with metrics_points; API_NOT_FOUND. */
    int (*metrics_defer)(void *jobs, const char *id, void **arg);
    int (*metrics_read)(void *arg, long since, long max, long limit, train_point **pts, size_t *n,
                        long *next_since);
    /* Frees an arg of metrics_defer that will not be read (a request given up). */
    void (*metrics_drop)(void *arg);

    /* GET /jobs/{id}/log: the end of the job's training-process log
     * (worker.log), at most max_bytes, as a text doc (may be empty), or
     * API_NOT_FOUND.  NULL: 500. */
    void (*log_tail)(void *jobs, const char *id, size_t max_bytes, api_done done, void *arg);

    /* Optional: GET /jobs/{id}/config, the config.yaml the job was made of,
     * as submitted (for a rejected job, the text that was refused), as a
     * text doc, API_NOT_FOUND, or another error. */
    void (*config_text)(void *jobs, const char *id, api_done done, void *arg);

    /* Optional: POST /jobs/{id}/fork (traind/forks.h).  body: the JSON
     * request (len bytes, valid only during the call); idem_key as for
     * submit. */
    void (*fork)(void *jobs, const char *id, const char *body, size_t len, const char *idem_key,
                 api_done done, void *arg);
    /* Optional: GET /jobs/{id}/checkpoints. */
    void (*checkpoints)(void *jobs, const char *id, api_done done, void *arg);

    /* ---- experiments (traind/experiments.h): called with exps ---- */
    void *exps;
    /* Optional: GET /experiments (an array), GET /experiments/{id}
     * (API_NOT_FOUND when none), POST /experiments (a sweep file), POST
     * /experiments/{id}/cancel (answered as cancel is). */
    void (*list_experiments)(void *exps, api_done done, void *arg);
    void (*get_experiment)(void *exps, const char *id, api_done done, void *arg);
    void (*submit_experiment)(void *exps, const char *yaml, size_t len, const char *idem_key,
                              api_done done, void *arg);
    void (*cancel_experiment)(void *exps, const char *id, api_done done, void *arg);

    /* ---- previews (traind/preview.h): called with previews ---- */
    void *previews;
    /* Optional: POST /validate (max 0) and POST /schedule?max=N (max >= 2)
     * of a config. */
    void (*preview)(void *previews, const char *yaml, size_t len, long max, api_done done, void *arg);

    /* ---- LR range tests (traind/lrfind_job.h): called with lr_finds ---- */
    void *lr_finds;
    /* Optional: POST /lr-find, the LR range test of a config with the sweep o. */
    void (*lr_find)(void *lr_finds, const char *yaml, size_t len, const struct lrfind_opts *o,
                    api_done done, void *arg);

    /* ---- loss-curve laws (traind/laws.h): called with laws ---- */
    void *laws;
    /* Optional: GET /laws (an array), POST /laws (a JSON fit request),
     * GET /laws/{id} and POST /laws/{id}/predict?max=N (a config, a sweep
     * or JSON). */
    void (*list_laws)(void *laws, api_done done, void *arg);
    void (*fit_law)(void *laws, const char *body, size_t len, api_done done, void *arg);
    void (*get_law)(void *laws, const char *id, api_done done, void *arg);
    void (*predict_law)(void *laws, const char *id, const char *body, size_t len, long max,
                        api_done done, void *arg);

    /* ---- the daemon's: called with ctx ---- */

    /* The bearer token for writes; NULL or "" refuses every write (401). */
    const char *(*token)(void *ctx);

    /* Seconds since the daemon started. */
    double (*uptime)(void *ctx);

    /* Optional: more Prometheus families appended to GET /metrics. */
    void (*prom_extra)(void *ctx, prom_buf *b);

    /* Optional: how many jobs are waiting (for the message of a 429 when
     * submit answers API_QUEUE_FULL). */
    long (*queued)(void *ctx);

    /* Optional: whether the Host header (NULL when absent) names this
     * daemon (hostcheck.h); a request whose Host does not is answered 403
     * before anything else. */
    bool (*host_allowed)(void *ctx, const char *host);

    /* Optional: the per-client limit on writes (every method but GET and
     * HEAD), checked before anything else: over it, 429 with Retry-After. */
    rate_limit *write_limit;

    /* Optional: the dashboard's files (GET /, /ui/..., /lib/chart.js/...);
     * NULL: those answer 404. */
    struct static_files *files;
    /* Optional: the loop whose thread pool prints large answers (job pages,
     * metrics) so that the loop thread never spends long on one request.
     * NULL: printed inline (tests). */
    uv_loop_t *loop;
} api_backend;

/* The job states of traind(8) THE JOB OBJECT, NULL-terminated. */
extern const char *const api_job_states[];

/* The http_handler_fn of the API; ctx is a const api_backend *. */
void api_handle(void *ctx, const http_request *req, http_response *res);

/* The http_expect_fn of the API: a write without a valid token is refused
 * (401) before its body is invited with 100 Continue. */
int api_expect(void *ctx, const http_request *req, const char **msg);

/* A job id as traind(8) THE SPOOL makes them (spool_id_valid, the one rule): 1..48
 * bytes of [A-Za-z0-9._-], not starting with '.' (so never "." or "..";
 * "v1..2" is an id). */
bool api_id_valid(const char *id);

/* An Idempotency-Key header value: 1..API_IDEM_KEY_MAX visible ASCII bytes
 * (spool_idem_key_valid, the one rule: the key is also stored with its job). */
#define API_IDEM_KEY_MAX SPOOL_IDEM_KEY_MAX
bool api_idem_key_valid(const char *key);

/* given == expected, in time independent of where they differ. */
bool api_token_equal(const char *given, const char *expected);

/* GET /jobs?q=: does a job's name (or id) hold q, ignoring ASCII case?
 * q NULL or "" matches every job. */
#define API_QUERY_MAX 128
bool api_job_matches(const char *id, const char *name, const char *q);

/* Keeps at most max (>= 1) elements of the array, evenly spread, the first
 * and the last always among them.  Returns arr. */
cJSON *api_thin_points(cJSON *arr, long max);

#endif

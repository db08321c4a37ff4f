/*
 * lrfind_job — POST /lr-find: the LR range test (traind/lrfind.h) of a
 * config being written, run for the daemon as a short job in a process of
 * its own (`traind --lr-find`, traind/worker.h: worker_lrfind_main), never
 * on the loop thread, answered with its curve when it ends.
 *
 * The config goes to the process on its stdin (a memfd holding the body);
 * the process checks it as intake does (this daemon's data_dirs and
 * max_model_memory), trains steps updates of it with threads_per_job
 * threads and writes nothing.  At most LRFIND_JOB_MAX_RUNNING run at once
 * (more: 429); one running past its timeout is killed (504); the daemon's
 * shutdown kills the running ones (503).
 *
 *   200 {"suggestion", "steepest", "points": [[lr, loss]...], ...} (lrfind_json)
 *   422 {"ok": false, "errors": [...]} (the config) | {"error"} (the run failed)
 */
#ifndef TRAIND_LRFIND_JOB_H
#define TRAIND_LRFIND_JOB_H

#include <stddef.h>
#include <uv.h>

#include "traind/dconfig.h"
#include "traind/lrfind.h"
#include "traind/result.h"

struct cJSON;

#define LRFIND_JOB_MAX_RUNNING 1
#define LRFIND_JOB_TIMEOUT_S 600.0

typedef struct lrfind_jobs lrfind_jobs;

/* What the process is started with (copied by each call). */
typedef struct lrfind_job_spec {
    const char *exe;            /* the daemon's own binary */
    int threads;
    char *const *data_dirs;
    size_t n_data_dirs;
    size_t max_model_bytes;     /* 0 = the default */
    double timeout_s;           /* 0 = LRFIND_JOB_TIMEOUT_S */
} lrfind_job_spec;

typedef api_done lrfind_job_done;

lrfind_jobs *lrfind_jobs_new(uv_loop_t *loop);

/* Starts the test of yaml (len bytes) with o; done(arg, rc, doc) runs
 * once on the loop thread (at once when it cannot start: API_TRY_LATER,
 * -EIO). */
void lrfind_jobs_start(lrfind_jobs *js, const lrfind_job_spec *spec, const char *yaml, size_t len,
                       const lrfind_opts *o, lrfind_job_done done, void *arg);

/* The daemon's tests (api_backend.lr_finds): the table, and what each
 * process is started with, taken at each call from the config (a SIGHUP
 * may change it): threads_per_job, data_dirs, max_model_memory. */
typedef struct lrfind_ctx {
    lrfind_jobs *js;
    const char *exe;            /* the daemon's own binary */
    const dconfig *cfg;
} lrfind_ctx;

/* POST /lr-find (api_backend.lr_find; lr_finds: an lrfind_ctx). */
void lrfind_post(void *lr_finds, const char *yaml, size_t len, const lrfind_opts *o, lrfind_job_done done,
                 void *arg);

/* Kills the running tests (their answers: 503); later starts answer 503. */
void lrfind_jobs_shutdown(lrfind_jobs *js);

/* After the loop has ended. */
void lrfind_jobs_free(lrfind_jobs *js);

#endif

/*
 * tl_fake_backend — one fake api_backend (traind/api.h) for the suites that
 * drive the API's routes without a daemon: test_api (requests built and
 * handed to api_handle) and fuzz_http (bytes through the real server).  It
 * implements the job members production wires, in their shapes (pages,
 * summaries, Prometheus jobs, metrics points, the done(arg, rc, doc)
 * operations), so the routes run the path the daemon's answers take.
 *
 * Jobs come from a JSON array (newest first).  What a POST /jobs answers is
 * chosen by its config: "bad" API_INVALID with one error (and with "kept"
 * the rejected job's id), "boom" -EIO, "full" or "crowded" API_QUEUE_FULL,
 * "down" API_UNAVAILABLE, else API_OK with the id ?name= gave or
 * "new-job"; with "later" (and a loop) the answer comes from the loop a
 * moment later, as the daemon's thread pool gives it.  Job "a" has
 * metrics points at steps 1..100 and a checkpoint at step 10; "b" has
 * neither and an unreadable log; "c.v2"'s 20 points are on "disk" (read on
 * the pool when the backend has a loop).  A job's config is its name.
 */
#ifndef TRAIND_TESTS_TL_FAKE_BACKEND_H
#define TRAIND_TESTS_TL_FAKE_BACKEND_H

#include <stdbool.h>
#include <uv.h>

#include "traind/api.h"

typedef struct tl_fake {
    cJSON *jobs;              /* the jobs, newest first (tl_fake_init) */
    char last_id[256];        /* the last id a job operation was asked about */
    int calls;                /* job operations asked about an id */
    long since, max;          /* the last metrics request's */
    char *last_yaml;          /* the last config submitted (malloc'd) */
    const char *token;        /* the bearer token (NULL or "": writes refused) */
    long queued;              /* jobs waiting, for a 429's message; < 0: not known */
    uv_loop_t *loop;          /* "later" answers are timers on it; NULL: every answer now */
    int laters;               /* "later" answers still owed */
    /* A property the API must keep (a valid id asked about, a NUL after a
     * body): called with false when it did not; NULL: abort(). */
    void (*check)(bool ok, const char *what);
} tl_fake;

/* f over the jobs of jobs_json (a JSON array); token "s3cret", queued -1. */
void tl_fake_init(tl_fake *f, const char *jobs_json);
void tl_fake_free(tl_fake *f);

/* The backend over f: every member the fake has, ctx and jobs f; no loop,
 * files, host check or write limit (the caller sets those it wants). */
api_backend tl_fake_backend(tl_fake *f);

/* GET /jobs/{id}/log's text for the jobs that have one (NULs and a non-UTF-8 byte in it). */
extern const char tl_fake_log[];
extern const size_t tl_fake_log_len;

#endif

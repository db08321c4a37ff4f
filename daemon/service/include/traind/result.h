/*
 * result — what a service operation answers: a result code (0 or a
 * negative errno value, one of the API_* below) and a JSON document.  The
 * modules behind the HTTP API (forks, experiments, preview, laws, lr-find,
 * the job table) return these and never an HTTP status: api.c alone turns a
 * result into a status and its headers (its route table, routes[], says
 * what 0 is on each route: 200, 201 or 202), so that every endpoint answers
 * the same failure the same way (traind(8) HTTP API, LIMITS).
 */
#ifndef TRAIND_RESULT_H
#define TRAIND_RESULT_H

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>

/* Result codes, negative errno values; any other negative code is
 * answered 500.  In brackets: the status and headers api.c gives them. */
enum {
    API_OK = 0,                     /* done [the route's: 200, 201 created, 202 accepted] */
    API_INVALID = -EINVAL,          /* the request or its config is invalid [400], with "errors" */
    API_UNPROCESSABLE = -EDOM,      /* well formed, but not to be done: a config /validate refuses, a fit
                                       that failed [422] */
    API_NOT_FOUND = -ENOENT,        /* no such job, experiment or law [404] */
    API_CONFLICT = -EALREADY,       /* the state forbids it: already ended, no such checkpoint [409] */
    API_UNAVAILABLE = -ESHUTDOWN,   /* shutting down, intake stopped [503] */
    API_QUEUE_FULL = -EAGAIN,       /* no room now: max_queued_jobs waiting, one fit or check at a time
                                       [429, Retry-After: the doc's "retry_after_s", else 5] */
    API_TRY_LATER = API_QUEUE_FULL,
    API_IN_PROGRESS = -EINPROGRESS, /* the same Idempotency-Key is still being saved [409, Retry-After: 1] */
    API_KEY_REUSED = -EEXIST,       /* the Idempotency-Key was used for another request [422] */
    API_TIMED_OUT = -ETIMEDOUT      /* ran past its time and was stopped [504] */
};

/* What every endpoint answers with its 503 once shutdown has begun
 * (API_UNAVAILABLE, or a thread-pool request cancelled by the loop closing). */
#define API_SHUTTING_DOWN "traind is shutting down"
/* The message of every API_IN_PROGRESS. */
#define API_KEY_IN_PROGRESS "a request with this Idempotency-Key is still being saved; retry"
/* The message of an API_KEY_REUSED that names nothing more. */
#define API_KEY_USED "this Idempotency-Key was used before for another request"

/* How an operation ends: exactly once, on the loop thread, now or later.
 * rc is a result code; doc (taken, may be NULL: api.c then writes the
 * error the code means) is the JSON to answer. */
typedef void (*api_done)(void *arg, int rc, struct cJSON *doc);

/* A text answer as a doc, for the routes that answer text/plain (a job's
 * log, its config): text (malloc'd, len bytes, any bytes; NULL: empty) is taken, and
 * cJSON_Delete frees it.  api_text_take gives it back (the caller frees
 * it) and frees doc; NULL when doc is not a text doc. */
static inline struct cJSON *api_text_doc(char *text, size_t len)
{
    cJSON *d = cJSON_CreateRaw("");
    if (!text)
        return d;   /* empty */
    free(d->valuestring);
    d->valuestring = text;
    d->valuedouble = (double)len;
    return d;
}

static inline char *api_text_take(struct cJSON *doc, size_t *len)
{
    if (!cJSON_IsRaw(doc))
        return NULL;
    char *text = doc->valuestring;
    *len = (size_t)doc->valuedouble;
    doc->valuestring = NULL;
    cJSON_Delete(doc);
    return text;
}

#endif

/*
 * forks — POST /jobs/{id}/fork and GET /jobs/{id}/checkpoints on the
 * daemon's side (traind(8) HTTP API).
 *
 * A fork is an ordinary job (jobs.h) whose config is cfg_fork() of its
 * parent's config.yaml and whose directory holds fork.json and links to the
 * parent's checkpoint and metrics (forkfile.h), written before config.yaml
 * so a fork that exists is whole after any crash; its training process
 * reads fork.json and starts from the parent's checkpoint (runner_opts
 * fork_from), or from its own checkpoint once it has one.
 *
 * The request body is untrusted JSON: {"at_step": S, "set": {"k": v, ...}
 * or ["k=v", ...], "name": "..."}.  Reading the parent's files and
 * cfg_fork run on the thread pool; the answer comes through done(arg,
 * rc, doc) on the loop thread, exactly once (traind/result.h; api.c makes
 * the status): API_OK {"id"} (201); API_INVALID {"error", "errors"?} (a bad
 * body, a change a fork may not make); API_NOT_FOUND (no parent);
 * API_CONFLICT {"error","steps"} (no kept checkpoint at S: the steps that
 * have one); API_QUEUE_FULL, API_IN_PROGRESS, API_KEY_REUSED as POST /jobs;
 * API_UNAVAILABLE (shutting down); another -errno.  done takes doc.
 */
#ifndef TRAIND_FORKS_H
#define TRAIND_FORKS_H

#include <stddef.h>
#include "traind/jobs.h"
#include "traind/result.h"

struct cJSON;
typedef api_done forks_done;

#define FORKS_MAX_SETS 64
#define FORKS_MAX_CHECKPOINTS 10000   /* GET /jobs/{id}/checkpoints lists at most the newest this many */

/* POST /jobs/{id}/fork (api_backend.fork; jobs: the job_table): admitted
 * as a submit is (jobs_submit_ex asks the admission), with an
 * Idempotency-Key or without; API_UNAVAILABLE once shutting down. */
void forks_fork(void *jobs, const char *parent_id, const char *body, size_t len, const char *idem_key,
                forks_done done, void *arg);

/* GET /jobs/{id}/checkpoints: API_OK [{"step","bytes","time","latest"}...]
 * ascending by step (listed on the thread pool), or API_NOT_FOUND. */
void forks_checkpoints(void *jobs, const char *id, forks_done done, void *arg);

/* The body's fields, parsed (exposed for tests): 0, or -EINVAL with a
 * message in err.  sets are malloc'd "k=v" strings (strv_free). */
int forks_parse_body(const char *body, size_t len, long *at_step, char ***sets, size_t *n_sets, char **name,
                     char *err, size_t errlen);

#endif

/*
 * jobs — the job table and its FIFO scheduler, on the loop thread.
 *
 * Every job lives in memory (state, progress, a thinned metrics history)
 * and on disk in <spool>/jobs/<id>/ (config.yaml, status.json).  The table
 * starts at most max_jobs training processes through its executor
 * (executor.h: forked here, or submitted to Slurm), in submission order, and
 * turns their progress lines and exits into job states.
 *
 * Under executor: slurm a started job stays queued (with Slurm's reason)
 * until Slurm runs it; Slurm's final state is translated by the executor
 * into an outcome (executor.h: exec_outcome) from which jobs.c decides, as
 * for every executor, the job's state; a job Slurm stopped for its time
 * limit or lost is queued again and resumes from its checkpoint in a new
 * Slurm job, and a crash or kill resumes while max_restarts allows.  At
 * shutdown Slurm jobs are left running, and jobs_load() + jobs_start() adopt
 * them again by the id in <spool>/jobs/<id>/slurm_job_id.
 *
 * status.json is rewritten atomically on every state change and at least
 * every JOBS_STATUS_INTERVAL_S while a job runs; the writes (tmp + fsync +
 * rename) happen on libuv's thread pool, one at a time per job, so the loop
 * thread never waits for a disk.  Its numbers are printed so that they read
 * back as the same doubles.  A write that fails (disk full, file size limit,
 * directory gone) is logged once and retried every JOBS_STATUS_INTERVAL_S;
 * the file keeps its previous, whole content meanwhile.  A POSTed config is
 * in jobs/<id>/config.yaml before the POST is answered (written on the loop
 * thread, fsync'd on the pool before the job may start), so a daemon killed
 * right after its 201 still has the job; one that cannot be written is
 * refused (the error is returned, the claimed directory removed).
 *
 * At start-up jobs_load() reads every status.json back (a corrupt one is
 * rebuilt from config.yaml, never dropped) — but an ended job whose entry
 * in <spool>/jobs.index (job_ended_index.h) still describes its status.json
 * is taken from there, one stat and no file opened; each ended job's entry
 * is appended once its status.json is written: queued and running jobs are
 * queued again and resume from their checkpoints, ended ones are shown as
 * they were.  Temp files of writers that were killed are removed, and an
 * empty job directory (an id claimed by a daemon that died before the file
 * arrived) is removed too.  Progress lines that cannot describe the job
 * (steps past its total) are logged and ignored.
 *
 * A job that fails for a full disk (ENOSPC, EDQUOT) holds the queue: no
 * job starts (to fail the same way at once) until the spool's file system
 * has room again (disk.h), checked every JOBS_SPACE_CHECK_S on the pool.
 * With max_job_disk, a running job's directory is measured
 * JOBS_DISK_FIRST_CHECK_S after its training starts, then every
 * JOBS_DISK_CHECK_S; one over it (or that will be by the next measurement)
 * is stopped (SIGTERM: it checkpoints) and fails with a message naming the
 * limit.
 *
 * Functions returning int return 0 or a negative errno value (api.c maps
 * them to HTTP status codes).  The code is split by job (see
 * daemon/service/jobs_internal.h for the map of jobs*.c).
 */
#ifndef TRAIND_JOBS_H
#define TRAIND_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "traind/dconfig.h"
#include "traind/result.h"
#include "traind/spool.h"
#include "traind/train_point.h"

struct cJSON;

#define JOBS_STATUS_INTERVAL_S 2.0
#define JOBS_STOP_TIMEOUT_S 30.0     /* cancel: SIGTERM, then SIGKILL after this */
#define JOBS_MAX_ERRORS 100          /* notices kept per job */
#define JOBS_SPACE_CHECK_S 2.0       /* after a disk-full failure: how often free space is checked */
#define JOBS_DISK_CHECK_S 1.0        /* max_job_disk: how often a running job's usage is measured */
#define JOBS_DISK_FIRST_CHECK_S 0.1  /* ... and how soon after its training starts */
#define JOBS_STATUS_QUEUED 100       /* GET /status: at most this many queued jobs (the next to run) */
#define JOBS_STATUS_RECENT 10        /* GET /status: and the newest jobs, whatever their state */

typedef enum {
    JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED, JOB_REJECTED,
    JOB_STOPPED,     /* stopped early by its experiment's ASHA (not a failure); a promotion resumes it */
    JOB_NSTATES
} job_state;

const char *job_state_name(job_state s);
/* -1 when name is not a state. */
int job_state_from_name(const char *name);
bool job_state_ended(job_state s);

typedef struct job_table job_table;

/* exe: the binary that runs `--worker` (the daemon's own).  The table keeps
 * copies of what it needs from c. */
job_table *jobs_new(uv_loop_t *loop, const dconfig *c, const char *exe);

/* Reads <spool>/jobs/ (blocking: call before the loop serves requests).
 * Returns the number of jobs loaded. */
int jobs_load(job_table *t);

/* Starts the scheduler and the periodic status writer. */
void jobs_start(job_table *t);

/* Re-reads the settings that may change at run time (SIGHUP): max_jobs,
 * threads_per_job, data_dirs, metrics_keep, max_restarts. */
void jobs_configure(job_table *t, const dconfig *c);

/* A file taken from incoming/ (takes it). */
void jobs_add_intake(job_table *t, spool_intake *it);

/* How jobs_submit_ex ends: done(arg, rc, id, errors) on the loop thread —
 * 0 with the id, -EINVAL with the errors and no id (an invalid config
 * makes no job; a trial of jobs_submit_ex with x->experiment is the
 * exception: it becomes a rejected job, and the id comes too), -ESHUTDOWN
 * while shutting down, or -errno if the config could not be saved.  done
 * takes id and errors. */
typedef void (*jobs_submit_cb)(void *arg, int rc, char *id, struct cJSON *errors);

/* POST /jobs (api_backend.submit; jobs: the job_table): the config is
 * validated, then saved durably, on the thread pool, the job joins the
 * table, then done(arg, rc, doc) runs on the loop thread, the id and
 * errors of jobs_submit_cb folded into doc {"id", "errors"} (each only
 * when given; no doc when neither is).  API_UNAVAILABLE once shutting
 * down, before anything else. */
void jobs_submit(void *jobs, const char *yaml, size_t len, const char *default_name, const char *idem_key,
                 api_done done, void *arg);

/* Whether jobs_shutdown has begun (intake closed). */
bool jobs_stopping(const job_table *t);

/* The Idempotency-Key of POST /jobs: saved as jobs/<id>/idempotency.key
 * before config.yaml, so a job that exists (its config on disk, even
 * unanswered) is found by its key after any crash.  A submit with a key
 * already used answers with that job (0, or -EINVAL with its errors); one
 * whose first submit is still being saved gets -EINPROGRESS.  Returns false (done not called) when key is new. */
#define JOBS_IDEM_KEY_FILE "idempotency.key"
bool jobs_submit_replay(job_table *t, const char *key, uint64_t fp, jobs_submit_cb done, void *arg);

/* Keys are scoped to their endpoint (jobs_submit.c): "SCOPE:KEY", malloc'd
 * (NULL for a NULL key).  POST /jobs scopes its own ("jobs"); a caller of
 * jobs_submit_ex passes the scoped key.  jobs_idem_fp is the fingerprint
 * of a request made of a and b (never 0): a replay whose fingerprint
 * differs from the first request's gets -EEXIST, and as errors a JSON
 * string naming the key. */
char *jobs_idem_scoped(const char *scope, const char *key);
uint64_t jobs_idem_fp(const void *a, size_t alen, const void *b, size_t blen);

/* Submits still on the thread pool (each may become a queued job). */
long jobs_submitting(const job_table *t);

/* Admission: the one check every path that adds a queued job goes through
 * (POST /jobs, forks, experiment trials, an ASHA promotion queueing a
 * stopped trial again; incoming/ asks the same room through the spool's
 * budget).  room(ctx) says whether one more job may wait now
 * (max_queued_jobs, and the share of it an incoming/ scan in flight holds,
 * traind(8) LIMITS); a true answer takes that place.  Unset: always room.
 * A submit without room gets -EAGAIN (429); a replay of a key already used
 * is answered first, room or not. */
void jobs_set_admission(job_table *t, bool (*room)(void *ctx), void *ctx);
bool jobs_admit(job_table *t);

/* POST /jobs/{id}/cancel: 0, -ENOENT, or -EALREADY (the job has ended).  The
 * request is recorded in status.json ("cancel_requested", or the state
 * cancelled); with done, 0 means done(arg, rc) follows once that is on
 * disk (rc 0, or -errno when the write failed) — a job whose cancel was
 * saved is cancelled at the next start even if traind died before its
 * training process stopped. */
int jobs_cancel(job_table *t, const char *id, void (*done)(void *arg, int rc), void *arg);
/* The same as an operation of the API (api_backend.cancel; jobs: the
 * job_table): done(arg, rc, NULL) once, now (not found, ended) or once
 * the request is on disk. */
void jobs_request_cancel(void *jobs, const char *id, api_done done, void *arg);

/* GET /status's jobs, bounded whatever the number of finished jobs:
 * {"counts":{state: n...}, "jobs_total", "jobs":[{"id","state","step",
 * "total_steps","lr","loss"}...], "jobs_omitted"} where jobs are, newest
 * first and each once, the running jobs, the next JOBS_STATUS_QUEUED
 * queued ones and the JOBS_STATUS_RECENT newest jobs. */
struct cJSON *jobs_summary_json(void *jobs);

/* What GET /metrics (Prometheus) shows, bounded whatever the number of
 * finished jobs: {"counts":{state: n...}, "jobs":[{"id","state","step",
 * "total_steps","lr","loss","steps_per_s","eval_loss"}...]} where jobs are
 * the active ones only (running, and the next JOBS_STATUS_QUEUED queued),
 * newest first. */
struct cJSON *jobs_prom_json(void *jobs);

/* A page of job objects, newest first: at most limit of them, only those
 * in state (NULL = all) whose name or id holds q (ignoring ASCII case; NULL =
 * all), starting just after (older than) the job after
 * (NULL = the newest).  0 with *out, and *next_after (malloc'd) the id to
 * ask the next page after when more jobs follow (else NULL); -ENOENT when
 * there is no job after. */
int jobs_page_json(void *jobs, const char *state, const char *q, const char *after, size_t limit,
                   struct cJSON **out, char **next_after);
/* GET /jobs/{id} (api_backend.get_job): the job object, or API_NOT_FOUND;
 * an ended job's config is left to jobs_fill_deferred, as in a page. */
void jobs_get(void *jobs, const char *id, api_done done, void *arg);
/* The same without "config" (GET /events' job events); never reads a file. */
struct cJSON *jobs_event_json(void *jobs, const char *id);

/* The points of GET /jobs/{id}/metrics copied out (api_backend.metrics_points):
 * step > since; max > 0: at most max, evenly thinned; else the first limit
 * and *next_since the last step given when more follow (else -1).  0 with
 * *out (malloc'd) and *out_n, or -ENOENT. */
int jobs_metrics_points(void *jobs, const char *id, long since, long max, long limit, struct train_point **out,
                        size_t *out_n, long *next_since);

/* An ended job's history stays on disk (metrics.jsonl) until asked for:
 * 0 with *path (malloc'd) and *keep to read it with
 * jobs_metrics_read_file on the thread pool; 1 when the history is in
 * memory (use jobs_metrics_points); -ENOENT. */
int jobs_metrics_file(job_table *t, const char *id, char **path, size_t *keep);
/* jobs_metrics_points' answer from a metrics.jsonl (any thread). */
int jobs_metrics_read_file(const char *path, size_t keep, long since, long max, long limit, struct train_point **out,
                           size_t *out_n, long *next_since);
/* The two as api_backend.metrics_defer, metrics_read and metrics_drop:
 * jobs_metrics_defer gives 1 with *arg (read with jobs_metrics_read on
 * the pool, which frees it, or freed by jobs_metrics_drop), 0 when the
 * history is in memory, or API_NOT_FOUND. */
int jobs_metrics_defer(void *jobs, const char *id, void **arg);
int jobs_metrics_read(void *arg, long since, long max, long limit, struct train_point **out, size_t *out_n,
                      long *next_since);
void jobs_metrics_drop(void *arg);

/* The end of the job's worker.log (at most max_bytes, cut at a line start,
 * with a note of what was left out) as malloc'd text in *out.  A job that
 * never started has an empty log.  0, -ENOENT (no such job) or -errno.
 * One bounded read: cheap enough for the loop thread. */
int jobs_log_tail(job_table *t, const char *id, size_t max_bytes, char **out, size_t *out_len);
/* GET /jobs/{id}/log (api_backend.log_tail): that text as a text doc
 * (api_text_doc), API_NOT_FOUND or -errno, through done at once. */
void jobs_log(void *jobs, const char *id, size_t max_bytes, api_done done, void *arg);

/* The config.yaml the job was made of, as submitted (a rejected job's is
 * the text that was refused): malloc'd in *out.  0, -ENOENT (no such job)
 * or -errno (-ENODATA when the file is gone).  One read of at most
 * CFG_MAX_FILE_BYTES, like jobs_log_tail. */
int jobs_config_text(job_table *t, const char *id, char **out, size_t *out_len);
/* GET /jobs/{id}/config (api_backend.config_text): that text as a text
 * doc, API_NOT_FOUND or -errno, through done at once. */
void jobs_config(void *jobs, const char *id, api_done done, void *arg);

/* A page's job objects (GET /jobs, and GET /jobs/{id}'s one) name an ended
 * job's directory under this key instead of holding its config;
 * jobs_fill_deferred (thread-safe: it only reads files) puts the config in
 * and removes the key, on the pool where the page (an array) or the job
 * (an object) is printed. */
#define JOBS_DEFERRED_CONFIG "\x01config_dir"
/* GET /jobs/{id}'s job names its directory under this key too: on the pool
 * jobs_fill_deferred replaces it with "config_keys", the dotted keys the
 * job's own config.yaml sets (what its author chose, as against the
 * defaults that follow from it: the Compare view lists only those). */
#define JOBS_DEFERRED_KEYS "\x01keys_dir"
/* ...and an ended job whose errors are long holds a summary in "errors"
 * and its directory under this key: jobs_fill_deferred puts every error
 * back from its status.json. */
#define JOBS_DEFERRED_ERRORS "\x01errors_dir"
void jobs_fill_deferred(struct cJSON *page);

void jobs_counts(const job_table *t, int counts[JOB_NSTATES]);

/* Called (on the loop thread) after any job changes state. */
void jobs_set_on_change(job_table *t, void (*cb)(void *ctx), void *ctx);

/* Stops the table: no job starts any more, every training process is told
 * to checkpoint and stop (SIGTERM; SIGKILL after timeout_s), their jobs stay
 * queued for the next start, every pending status.json write completes.
 * Then done(arg).  Further submits are refused (-ESHUTDOWN). */
void jobs_shutdown(job_table *t, double timeout_s, void (*done)(void *arg), void *arg);
bool jobs_shutting_down(const job_table *t);

/* SIGKILLs every training process now (a second SIGTERM while stopping):
 * their jobs resume from their last checkpoints at the next start. */
void jobs_kill_all(job_table *t);

/* Frees the table (after jobs_shutdown's done, or when it never started). */
void jobs_free(job_table *t);

/* --- hooks for forks (forks.h) and experiments --- */

/* What a submit may carry besides the config: prepare runs on the thread
 * pool in the claimed job directory before config.yaml is written (so a
 * job that exists always has what prepare wrote); a negative return
 * refuses the submit with it (undo then cleans up).  parent/forked_at name
 * the job a fork branches from (NULL / -1 otherwise). */
typedef struct jobs_submit_extra {
    int (*prepare)(const char *job_dir, void *arg);
    void (*undo)(const char *job_dir, void *arg);
    void (*free_arg)(void *arg);
    void *arg;                    /* owned by the submit from the call on */
    const char *parent;
    long forked_at;
    const char *experiment;       /* a trial: its experiment's id (experiments.h), else NULL */
    const char *params;           /* a trial: its values as a JSON object text */
    bool admitted;                /* the caller had jobs_admit's yes for this job already */
    uint64_t fingerprint;         /* of the request its Idempotency-Key came with (0 = not compared) */
} jobs_submit_extra;

/* A trial's jobs/<id>/trial.json ({"experiment","params"}), written by the
 * experiment's prepare before config.yaml; read back at start-up. */
#define JOBS_TRIAL_FILE "trial.json"

/* jobs_submit with x (NULL = none). */
void jobs_submit_ex(job_table *t, const char *yaml, size_t len, const char *default_name, const char *idem_key,
                    const jobs_submit_extra *x, jobs_submit_cb done, void *arg);

/* <spool>/jobs */
const char *jobs_jobs_dir(const job_table *t);
/* Does the table run jobs under Slurm (executor: slurm)? */
bool jobs_is_slurm(const job_table *t);

/* The table's loop, and a count of thread-pool work done on its behalf
 * by other modules: jobs_shutdown's done waits until every begun piece of
 * work has ended. */
uv_loop_t *jobs_loop(const job_table *t);
void jobs_work_begin(job_table *t);
void jobs_work_end(job_table *t);

/* --- early stopping (experiment_asha.h): pausing trials at their rungs --- */

/* pause_at: asked at every start of a job that names an experiment — the
 * step its training process pauses at (exec_spec.pause_at; 0 = none).
 * paused: its process paused there (WORKER_EXIT_PAUSED, checkpoint at
 * step): the job is queued again but held — it does not start — until
 * jobs_release or jobs_stop_early.  idem_key: the job's Idempotency-Key
 * (a trial's names its experiment and index; NULL when none).  A held job is not held after a
 * restart: it starts, pauses at once at the same step, and paused is called
 * again. */
typedef struct jobs_pause_hooks {
    long (*pause_at)(void *ctx, const char *job_id, const char *experiment, const char *idem_key);
    void (*paused)(void *ctx, const char *job_id, const char *experiment, const char *idem_key, long step);
    void *ctx;
} jobs_pause_hooks;
void jobs_set_pause_hooks(job_table *t, const jobs_pause_hooks *h);

/* A held job may start again (it trains on from its checkpoint); a
 * stopped one is queued again (a promotion) when jobs_admit has room.  0,
 * -ENOENT (no such job), -EALREADY (neither held nor stopped), -EAGAIN (a
 * stopped one, and no room in the queue: ask again later). */
int jobs_release(job_table *t, const char *id);
/* A held job ends `stopped`, with reason (its "stop_reason").  0,
 * -ENOENT, -EALREADY (not held). */
int jobs_stop_early(job_table *t, const char *id, const char *reason);

/* What a fork or a checkpoint listing needs of a job: 0, or -ENOENT. */
typedef struct jobs_info {
    job_state state;
    long checkpoint_step;         /* -1 when none */
    long step, total_steps;
    double loss_avg, eval_loss;   /* the last metrics point's, the last eval's; NAN = none */
    double started_at, finished_at;   /* unix time, 0 = not yet */
    bool held;                    /* paused at a rung, waiting for its experiment's decision */
    char name[256];
} jobs_info;
int jobs_lookup(job_table *t, const char *id, jobs_info *out);

/* --- pieces exposed for tests --- */

/* Thins pts[0..*n) in place until *n <= keep: the older half loses every
 * other point (so old history gets sparser, recent history stays dense);
 * the last point always stays. */
void jobs_thin_history(train_point *pts, size_t *n, size_t keep);

#endif

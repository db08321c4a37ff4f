/*
 * jobs_internal — what the jobs*.c files share and nobody else needs: the
 * job record, the table, and the functions one part calls in another.  Not
 * part of any public contract (traind/jobs.h is).  A map of the parts:
 *
 *   jobs.c          the table, the job states (job_set_state: every change of
 *                   state), the scheduler, the training processes' progress
 *                   and exits
 *   jobs_disk.c     disk space: a full disk holds the queue; max_job_disk
 *   jobs_json.c     job objects out (traind(8) THE JOB OBJECT, status.json, pages, /status,
 *                   /metrics) and status.json back in
 *   jobs_history.c  the metrics history: in memory, thinned, metrics.jsonl
 *                   read back and thinned on disk
 *   jobs_store.c    persistence: status.json writes, start-up (jobs_load,
 *                   rebuild, stale temp files), worker.log tails
 *   jobs_submit.c   submissions: incoming/ files and POST /jobs, the
 *                   Idempotency-Key, a validated config becoming a job
 *   jobs_stop.c     cancel and shutdown
 *   jobs_stall.c    the stall watchdog: a running job silent too long is killed as crashed
 *
 * Every function here runs on the loop thread unless it says otherwise.
 * Those returning int return 0 or a negative errno value.
 */
#ifndef TRAIND_JOBS_INTERNAL_H
#define TRAIND_JOBS_INTERNAL_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "traind/config.h"
#include "traind/diag.h"
#include "traind/durable_wait.h"
#include "traind/executor.h"
#include "traind/job_ended_index.h"
#include "traind/job_index.h"
#include "traind/jobs.h"
#include "traind/train_point.h"


#define STATUS_MAX_BYTES (16u << 20)
#define HIST_TAIL_BYTES (8u << 20)   /* of a long metrics.jsonl, read whole at start-up */
#define HIST_SAMPLES 2000            /* lines sampled from the rest */
#define JOBS_TRIM_AFTER 64           /* jobs compacted before the tick trims the heap */

/* ------------------------------------------------------------- the table */

typedef struct job {
    struct job_table *t;
    char id[SPOOL_ID_MAX + 1];
    char *name;
    char *dir;
    job_state state;
    unsigned long seq;               /* submission order (FIFO) */

    /* progress, NAN / -1 / 0 when unknown */
    train_point pt;                  /* the latest progress (pt.time unused) */
    long total_steps, checkpoint_step;
    bool has_eval;                   /* the data has an eval split */
    double tokens_per_step;          /* gpt: batch × context; 0 otherwise */
    int ranks;                       /* parallel.ranks: processes under mpirun (1 = no MPI) */
    bool facts_known;                /* status.json held the four above (else start-up re-derives them) */
    double submitted_at, started_at, finished_at;   /* unix time, 0 = null */
    int restarts;                    /* times training was resumed by a new process */
    int crashes;                     /* times the process died (counted against max_restarts) */
    cJSON *errors;                   /* array of {path,line,column,message} / {message} */
    cJSON *config;                   /* cfg_to_json, or NULL (rejected) */
    char *idem_key;                  /* its Idempotency-Key, scoped ("jobs:KEY", jobs_submit.c), or NULL */
    uint64_t idem_fp;                /* the fingerprint of the request that made it; 0 = not known */
    char *parent;                    /* a fork: the job it branched from (fork.json), or NULL */
    long forked_at;                  /* a fork: the step it branched at, else -1 */
    char *experiment;                /* a trial: its experiment (trial.json), or NULL */
    cJSON *params;                   /* a trial: its swept values, or NULL */
    bool held;                       /* paused at an ASHA rung: queued, but not started until released */
    char *stop_reason;               /* stopped: why (its experiment's decision), else NULL */

    /* the training process (traind/executor.h) */
    exec_job *x;
    int pid;
    /* executor: slurm — the Slurm job (also in <dir>/slurm_job_id) and what Slurm says */
    char sched_id[EXEC_SCHED_ID_MAX + 1];
    char sched_state[32], sched_reason[128];
    bool adopt;                      /* loaded with a live Slurm job: adopt it, do not submit again */
    long requeue_ckpt;               /* checkpoint_step at the last requeue (-2 = none yet) */
    bool cancel_requested;
    bool got_done;
    char *fail_msg;
    double kill_deadline;            /* monotonic; 0 = none */
    /* the stall watchdog (jobs_stall.c) */
    double stall_last;               /* monotonic time of the process's last progress line; 0 = not watched */
    double stall_slowest;            /* the slowest interval between two of its lines (s) */
    char *stall_msg;                 /* killed for a stall: why ("no progress for N s at step S") */

    /* persistence */
    bool write_inflight, dirty, progress_dirty;
    double last_write;               /* monotonic */
    bool write_error_logged;
    bool write_failed;               /* the last status.json write failed: the tick retries */

    /* max_job_disk */
    bool disk_over;                  /* over it: stopped, fails when its process has exited */
    bool disk_check_inflight;
    long long disk_last_bytes;       /* its usage at the previous check (0: none yet) */
    double next_disk_check;          /* monotonic */

    /* callers waiting for a status.json write that starts after they asked */
    struct durable_wait *waiters;
    unsigned long writes_started;

    /* metrics history */
    train_point *hist;
    size_t n_hist, cap_hist;
    bool hist_loading;

    /* scale (job_index.h): the table's bookkeeping */
    size_t pos;                      /* index in t->jobs */
    bool in_table;                   /* counted in t->counts */
    bool live;                       /* on t->live (the tick looks at it) */
    struct job *live_prev, *live_next;
    bool config_on_disk;             /* ended and compacted: config is read from status.json when asked */
    bool hist_on_disk;               /* ended and compacted: history is read from metrics.jsonl when asked */
    bool errors_on_disk;             /* ended, errors long: errors holds a summary, status.json all (job_compact_errors) */
    char *errors_pending;            /* errors_on_disk and status.json not written with them yet: every one, as
                                      * JSON text made on the thread pool (spool_intake.errors_json) */
} job;

struct job_table {
    uv_loop_t *loop;
    char *spool, *jobs_dir, *exe;
    executor *ex;
    bool slurm;                      /* executor: slurm (jobs wait in Slurm's queue, not ours) */
    int max_jobs, threads_per_job, max_restarts;
    int stall_timeout_s;             /* the stall watchdog's floor; 0 = off */
    double stall_tick_last;          /* monotonic time of the last tick (jobs_stall_tick) */
    long metrics_keep;
    size_t max_job_disk;             /* 0 = no limit */
    size_t default_job_disk;         /* max_job_disk when traind.yaml does not give it (set at start) */
    bool space_wait;                 /* a job failed for a full disk: nothing starts until there is room */
    bool space_check_inflight;
    double next_space_check;         /* monotonic */
    char **data_dirs;
    size_t n_data_dirs;
    size_t max_model_bytes;          /* max_model_memory: intake_validate's cap */

    job **jobs;                      /* in seq order */
    size_t n, cap;
    job_index *by_id, *by_key;       /* id → job, Idempotency-Key → job */
    jei_writer *eidx;                /* <spool>/jobs.index: the ended jobs' summaries */
    int counts[JOB_NSTATES];         /* jobs by state */
    size_t queue_hint;               /* no job below this index is queued */
    job *live;                       /* jobs with a process or a status.json write pending: what the tick walks */
    unsigned long next_seq;
    int running;
    int pending_work;                /* thread-pool requests in flight */
    long submitting;                 /* POSTs being saved and validated */
    char **keys_inflight;            /* their Idempotency-Keys (a retry meanwhile gets 409) */
    size_t n_keys_inflight;
    unsigned long compacted_since_trim;   /* ended jobs compacted since the last malloc_trim (jobs_on_tick) */
    bool (*room)(void *);            /* jobs_set_admission: may one more job wait? NULL = yes */
    void *room_ctx;

    uv_timer_t tick;
    bool started, tick_open;
    bool shutting_down;
    void (*shutdown_done)(void *);
    void *shutdown_arg;
    bool shutdown_reported;

    void (*on_change)(void *);
    void *on_change_ctx;
    jobs_pause_hooks pause;          /* early stopping (jobs_set_pause_hooks, jobs_early_stop.c) */
};

/* jobs.c */
void jobs_changed(job_table *t);
job *job_alloc(job_table *t, const char *id);
void job_free(job *j);
void job_live_add(job *j);
void job_compact(job *j);
/* The last entry of an errors summary ({"message", JOB_ERRORS_MORE: true}). */
#define JOB_ERRORS_MORE "more_in_status_json"
void job_compact_errors(job *j);
/* That summary of j's errors (new), or NULL when they are short or one already. */
cJSON *job_errors_summary(const job *j);
/* A summary of n errors whose first is first (job_errors_summary's form). */
cJSON *job_errors_summary_of(const cJSON *first, int n, const char *id);
/* Whether errors of this JSON length are kept in memory as a summary. */
bool job_errors_long(size_t json_len);
void job_set_state(job *j, job_state s);
void jobs_append(job_table *t, job *j);
job *job_find(const job_table *t, const char *id);
void jobs_advance_queue_hint(job_table *t);
int jobs_queued_between(job_table *t, size_t from, size_t to);
int job_queue_position(job *j);
void job_add_error(job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void job_set_ended(job *j, job_state s);
/* Shows a metrics point's numbers as the job's latest (its step, time and
 * rate stay; so does its eval_loss when the point has none). */
void job_show_point(job *j, const train_point *p);
void jobs_schedule(job_table *t);
void jobs_on_tick(uv_timer_t *h);

/* jobs_disk.c */
void format_bytes(size_t b, char *out, size_t len);
void jobs_wait_for_space(job_table *t, const job *j);
void jobs_check_disks(job_table *t, double now);
void jobs_check_job_disk(job *j, double now);

/* jobs_json.c */
const cJSON *jobs_json_item(const cJSON *o, const char *k);
double jobs_json_num(const cJSON *o, const char *k, double dflt);
void jobs_json_add_num_or_null(cJSON *o, const char *k, double v);
cJSON *job_to_json(const job *j, int queue_pos);
/* job_to_json for status.json: with errors_on_disk, no "errors" (the write
 * puts them in on the thread pool: errors_pending, or the file's own). */
cJSON *job_status_json(const job *j);
int job_load_status(job *j, cJSON *o);

/* jobs_history.c */
void job_hist_push(job *j, const train_point *p);
void job_load_history(job *j);
void job_thin_history_on_disk(job *j);

/* jobs_store.c */
void job_persist(job *j);
void job_persist_then(job *j, void (*cb)(void *arg, int rc), void *arg);
cJSON *config_from_disk(const job *j);
cJSON *config_from_dir(const char *dir, const char *id);
/* status.json's errors array (thread-safe), or NULL. */
cJSON *errors_from_dir(const char *dir);
cJSON *config_keys_from_dir(const char *dir);

/* jobs_submit.c */
/* The one place a config becomes a job's: cfg (validated) gives the config
 * object and what follows from it (traind/intake.h); NULL rejects the job
 * with errs. */
void job_take_config(job *j, const run_config *cfg, const diag_list_t *errs);
void jobs_key_done(job_table *t, const char *key);
/* A job's Idempotency-Key as stored (idempotency.key, a jobs.index record):
 * "SCOPED\nFINGERPRINT\n" (malloc'd); job_idem_load reads one back into
 * j->idem_key and j->idem_fp (after j->parent and j->experiment are known:
 * a key stored before keys were scoped gets its scope from them); false
 * when the text is not a key. */
#define JOB_IDEM_TEXT_MAX (SPOOL_IDEM_KEY_MAX + 96)
char *job_idem_text(const char *key, uint64_t fp);
bool job_idem_load(job *j, const char *text);

/* jobs_stop.c */
void jobs_check_shutdown_done(job_table *t);

/* jobs_stall.c */
/* A progress line of j's process came (start: its first). */
void job_stall_heard(job *j, bool start);
/* The silence after which j's process counts as stalled now (s); 0 = not watched. */
double job_stall_timeout(const job *j);
/* From the tick: kills j's process when it has been silent past its timeout. */
void job_check_stall(job *j, double now);
/* From the tick, first: a daemon that did not run for a while does not blame its jobs. */
void jobs_stall_tick(job_table *t, double now);

static inline double dnan(void)
{
    return NAN;
}

#endif

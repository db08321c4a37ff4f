/*
 * experiments — the experiment table (traind-run.yaml(5) EXPERIMENTS): a sweep file (sweep.h)
 * becomes an experiment under <spool>/experiments/<id>/ and one ordinary
 * job per trial.
 *
 * Files: sweep.yaml (the file as given; the trials are re-expanded from it
 * at start-up — sweep_parse is deterministic, random trials included),
 * asha.jsonl (early stopping's reports, experiment_asha.h) and
 * experiment.json ({"id","name","method","metric","state","max_concurrent",
 * "submitted_at","trials":[{"params","job"}],"errors"}), both written
 * atomically and fsync'd before POST /experiments is answered.
 *
 * No trial lost, none run twice: trial k's job is submitted with the
 * Idempotency-Key "experiment:<id>:<k>" (jobs.h keeps the key on disk
 * before config.yaml), so a daemon killed after a trial's job was made but
 * before experiment.json named it finds that job again at the next start
 * instead of making a second.  A trial's job directory also holds
 * trial.json (its experiment and values, for the job object) and, for a
 * fork_from sweep, the fork files (forkfile.h).
 *
 * Trials are submitted as room allows: at most max_concurrent of an
 * experiment's trials are queued or running at once (0: all at once; the
 * daemon's max_jobs still caps what runs).  With sweep.early_stop the
 * trials are early-stopped by ASHA (experiment_asha.h: paused and held at
 * each rung, the report in asha.jsonl before the decision, a stopped trial
 * ends `stopped` and may be promoted later).  An experiment is "running"
 * until every trial's job has ended (`stopped` included: with every trial
 * ended no report can come that would promote one), then "succeeded"; "cancelled" after
 * POST /experiments/{id}/cancel (its unfinished trials are cancelled,
 * none is submitted any more); "rejected" when a trial is invalid (no job
 * was made).  Disk work is on the thread pool, except exps_load (start-up).
 * Functions return 0 or a negative errno / API_* code.
 */
#ifndef TRAIND_EXPERIMENTS_H
#define TRAIND_EXPERIMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "traind/forks.h"
#include "traind/jobs.h"

struct cJSON;
typedef struct exp_table exp_table;

exp_table *exps_new(job_table *jobs, const char *spool, size_t max_trials, char *const *data_dirs,
                    size_t n_data_dirs, size_t max_model_bytes);   /* max_model_bytes: intake_validate's cap */
/* Reads <spool>/experiments/ (blocking; after jobs_load).  The number loaded. */
int exps_load(exp_table *e);
/* Submits what may be submitted now; call after jobs_start and whenever
 * jobs change (an ended trial makes room). */
void exps_poke(exp_table *e);

/* POST /experiments: API_OK {"id"} (201), API_INVALID {"error","errors","id"?},
 * API_UNAVAILABLE, API_TRY_LATER (one file checked at a time) or another
 * -errno through done (api_done: result code and doc, exactly once).  idem_key (or
 * NULL): scoped by the caller ("post:KEY" from a header, "incoming:..." for
 * a file of incoming/), saved in experiment.json with fp (jobs_idem_fp of
 * the body; 0 = not compared); a submit with a key used before answers
 * with that experiment, API_IN_PROGRESS while the first is still being
 * saved, API_KEY_REUSED when its body is not the first one's. */
void exps_submit(exp_table *e, const char *yaml, size_t len, const char *idem_key, uint64_t fp, api_done done,
                 void *arg);

/* POST /experiments (api_backend.submit_experiment; exps: the exp_table):
 * idem_key is the header's, scoped here ("post:KEY"), the body's
 * fingerprint compared; API_UNAVAILABLE once the jobs are stopping. */
void exps_post(void *exps, const char *yaml, size_t len, const char *idem_key, api_done done, void *arg);

/* GET /experiments: summaries, newest first. */
struct cJSON *exps_list_json(exp_table *e);
/* GET /experiments/{id}: the whole object, trials best first; NULL = none. */
struct cJSON *exps_get_json(exp_table *e, const char *id);
/* The two as operations (api_backend.list_experiments, get_experiment):
 * API_OK with that, or API_NOT_FOUND, through done at once. */
void exps_list(void *exps, api_done done, void *arg);
void exps_get(void *exps, const char *id, api_done done, void *arg);
/* POST /experiments/{id}/cancel: API_NOT_FOUND or API_CONFLICT (ended),
 * done not called; or API_OK, and done(arg, rc) once experiment.json holds
 * the cancel (rc 0) or could not be written (rc < 0).  Its trials' jobs are
 * cancelled as jobs_cancel does. */
int exps_cancel(exp_table *e, const char *id, void (*done)(void *arg, int rc), void *arg);
/* The same as an operation (api_backend.cancel_experiment): done(arg, rc,
 * NULL) once, now (not found, ended) or once the cancel is on disk. */
void exps_request_cancel(void *exps, const char *id, api_done done, void *arg);

void exps_free(exp_table *e);

/* The checks POST /experiments makes of a sweep file, nothing written
 * (POST /validate uses them too): every trial expanded and validated as
 * the daemon will take its config.yaml (data.path within data_dirs),
 * early_stop refused, fork_from's checkpoint looked for under jobs_dir,
 * sweep.predict's law under laws_dir.
 * Thread-safe (reads files: call off the loop).  0 with *out the sweep
 * (sweep_free it) and *errors an empty array; -1 with *errors the problems
 * ({"path","line","column","message"}) and *out zeroed but for its name. */
typedef struct exps_check_in {
    size_t max_trials;
    char *const *data_dirs;
    size_t n_data_dirs;
    size_t max_model_bytes;   /* intake_limits' */
    const char *jobs_dir;
    bool slurm;               /* executor: slurm — early_stop is refused (trials pause only locally) */
    const char *laws_dir;     /* sweep.predict.law must be a law stored here (laws.h); NULL: refused */
} exps_check_in;
struct sweep;
int exps_check(const char *yaml, size_t len, const exps_check_in *in, struct sweep *out, struct cJSON **errors);

#endif

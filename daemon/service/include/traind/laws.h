/*
 * laws — the daemon's loss-curve laws (traind.8, "LOSS-CURVE LAWS"): a law
 * (traind/law.h: the multi-power law or the momentum law) fitted to the
 * curves of jobs this daemon trained, stored under <spool>/laws/<id>/, and
 * the curves it predicts for run configs, sweeps and jobs.
 *
 *   POST /laws                {"jobs": [ID...]} | {"experiment": ID}, "law", "metric", "name", "loo", "starts"
 *                             → 201 {"id", ...the stored law} once it is on disk | 400 | 429 | 503
 *   GET  /laws                summaries, newest first
 *   GET  /laws/{id}           the law, its figures and per curve the observed
 *                             and fitted points and the law's whole curve
 *   POST /laws/{id}/predict   a run config or a sweep file (YAML), or JSON
 *                             {"configs": [YAML...]} | {"jobs": [ID...]}: the
 *                             law's loss curve of each → {"curves": [...]}
 *
 * Fitting is CPU work: it runs on the thread pool, never on the loop, one
 * fit at a time (LAWS_MAX_FITS; another gets 429 with Retry-After), and its
 * size is bounded for any caller: at most LAWS_MAX_CURVES curves of at most
 * LAWS_MAX_STEPS steps, each thinned so that one evaluation of the law over
 * all of them costs at most LAWS_FIT_WORK terms, at most LAWS_FIT_MAX_ITER
 * minimiser iterations a start, no new start past LAWS_FIT_SECONDS.  A
 * running job is fitted on its points so far (its history in memory); an
 * ended one's are read from its metrics.jsonl on the pool; the lrs of every
 * step are its config.yaml's schedule.  Predictions are bounded the same
 * way (LAWS_PREDICT_*), at most LAWS_MAX_PREDICTS at once.
 *
 * Files, each written atomically (util.h's write_file_atomic: fsync'd, the
 * directory too) before the 201: fit.json (the curves: observed, fitted and
 * predicted points) then LAW.json (law.h's document — `trainctl law
 * predict --law` reads it as it is — with the daemon's fields beside it:
 * id, name, created_at, metric, jobs, summary).  LAW.json is written last:
 * a law exists once it is there.  At start-up laws_load reads every
 * LAW.json back; a directory without one (a daemon killed mid-write) is
 * skipped with a log line.
 */
#ifndef TRAIND_LAWS_H
#define TRAIND_LAWS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "traind/experiments.h"
#include "traind/jobs.h"
#include "traind/result.h"

struct cJSON;

#define LAWS_DIR "laws"              /* under the spool */
#define LAWS_FILE "LAW.json"         /* the law: its presence makes it exist */
#define LAWS_FIT_FILE "fit.json"     /* the curves of its fit */

#define LAWS_MAX_FITS 1              /* fits running at once; more: 429 */
#define LAWS_MAX_PREDICTS 2          /* predictions running at once; more: 429 */
#define LAWS_MAX_CURVES 16           /* curves in one fit */
#define LAWS_MIN_POINTS 3            /* observed points a curve needs */
#define LAWS_MAX_STEPS 1000000L      /* total_steps of a curve fitted or predicted */
#define LAWS_FIT_MAX_POINTS 400      /* observed points kept per curve (evenly, the last kept) */
#define LAWS_FIT_WORK 300000.0       /* law terms per evaluation over every curve (see laws.c) */
#define LAWS_FIT_MAX_ITER 500
#define LAWS_FIT_SECONDS 20.0        /* no new start (nor leave-one-out refit) past this */
#define LAWS_MAX_STARTS 16
#define LAWS_CURVE_POINTS 200        /* points of each curve the law draws in fit.json */
#define LAWS_PREDICT_DEFAULT_POINTS 200
#define LAWS_PREDICT_MAX_POINTS 2000
#define LAWS_PREDICT_MAX_CURVES 64
#define LAWS_PREDICT_WORK 20000000.0 /* law terms of one prediction over every curve */

typedef struct laws_table laws_table;

/* How a request ends: a result code (traind/result.h: api.c makes the
 * status) and the JSON to answer (done takes it). */
typedef api_done laws_done;

laws_table *laws_new(uv_loop_t *loop, job_table *jobs, exp_table *exps, const char *spool_dir);
/* Reads <spool>/laws/ (blocking; at start-up).  The number loaded, or -errno. */
int laws_load(laws_table *t);

/* The operations of api_backend (laws: the laws_table). */
/* POST /laws: body (len bytes, copied). */
void laws_fit(void *laws, const char *body, size_t len, laws_done done, void *arg);
/* GET /laws. */
struct cJSON *laws_list_json(laws_table *t);
/* The same through done (API_OK, at once). */
void laws_list(void *laws, laws_done done, void *arg);
/* GET /laws/{id}: API_OK or API_NOT_FOUND through done. */
void laws_get(void *laws, const char *id, laws_done done, void *arg);
/* POST /laws/{id}/predict?max=N (N points a curve, 2..LAWS_PREDICT_MAX_POINTS). */
void laws_predict(void *laws, const char *id, const char *body, size_t len, long max, laws_done done,
                  void *arg);

/* Whether the law id is stored under laws_dir (<spool>/laws): its LAW.json
 * is a regular file.  Thread-safe (exps_check: sweep.predict). */
bool laws_stored(const char *laws_dir, const char *id);

/* Later requests answer 503 (the running ones end with the pool). */
void laws_shutdown(laws_table *t);
void laws_free(laws_table *t);

#endif

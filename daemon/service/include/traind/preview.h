/*
 * preview — POST /validate and POST /schedule (the dashboard's config
 * editor): what intake would say of a run config or a sweep file,
 * and the lr curves of its schedules, with nothing queued and nothing
 * written.
 *
 * The checks are intake's own: intake_validate for a run config (as POST
 * /jobs and incoming/ take it), exps_check for a sweep file (as POST
 * /experiments takes it).  The curves are sched_curve's, the code of
 * `trainctl schedule`.  Both run on the thread pool (the parse of a 1 MiB
 * body, a sweep's thousand trials) and answer on the loop thread.
 *
 *   /validate  200 {"ok": true, "kind": "job", "name", "total_steps"}
 *              200 {"ok": true, "kind": "experiment", "name", "trials", "total_steps" (of every trial),
 *                   "trial_steps": {"min", "max"} (one trial's total_steps)}
 *              422 {"ok": false, "kind", "errors": [{"path","line","column","message"}]}
 *   /schedule  200 {"kind", "curves": [{"label", "name", "trial" (sweeps), "total_steps",
 *                                       "points": [[step, lr], ...]}]}
 *              422 as /validate
 *
 * (API_OK and API_UNPROCESSABLE through done: api.c makes them 200 and 422.)
 */
#ifndef TRAIND_PREVIEW_H
#define TRAIND_PREVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "traind/dconfig.h"
#include "traind/jobs.h"
#include "traind/result.h"

struct cJSON;

#define PREVIEW_DEFAULT_POINTS 500
#define PREVIEW_MAX_POINTS 10000
/* All curves of one answer together hold at most this many points (a
 * sweep of many schedules gets fewer points per curve, at least 2): about
 * 1 MB of JSON whatever the sweep. */
#define PREVIEW_MAX_TOTAL_POINTS 20000
/* At most this many previews on the thread pool at once, this many more
 * waiting; past that 429 with Retry-After (traind(8)). */
#define PREVIEW_RUNNING_MAX 1
#define PREVIEW_WAITING_MAX 4

/* What intake's checks depend on (copied by each call). */
typedef struct preview_in {
    char *const *data_dirs;
    size_t n_data_dirs;
    size_t max_trials;
    size_t max_model_bytes;  /* max_model_memory (0 = the default) */
    const char *jobs_dir;    /* fork_from: kept checkpoints are looked for here */
    bool slurm;              /* executor: slurm (an early_stop sweep is refused) */
    const char *laws_dir;    /* sweep.predict's law is looked for here (laws.h) */
} preview_in;

typedef api_done preview_done;

/* POST /validate of yaml (len bytes, copied): done(arg, rc, doc) once,
 * on the loop thread (now when loop is NULL; done takes doc). */
void preview_validate(uv_loop_t *loop, const preview_in *in, const char *yaml, size_t len, preview_done done,
                      void *arg);

/* POST /schedule?max=N (2..PREVIEW_MAX_POINTS) the same way. */
void preview_schedule(uv_loop_t *loop, const preview_in *in, const char *yaml, size_t len, size_t max,
                      preview_done done, void *arg);

/* The daemon's previews (api_backend.previews): its loop, and what
 * intake's checks read, taken from the config at each call (a SIGHUP may
 * change it): data_dirs, max_trials, max_model_memory; the jobs' directory
 * and executor; the laws' directory. */
typedef struct preview_ctx {
    uv_loop_t *loop;
    const dconfig *cfg;
    job_table *jobs;
    const char *laws_dir;
} preview_ctx;

/* POST /validate (max 0) and POST /schedule?max=N (api_backend.preview;
 * previews: a preview_ctx). */
void preview_post(void *previews, const char *yaml, size_t len, long max, preview_done done, void *arg);

/* The work of either, on the calling thread (tests, and the pool): the
 * result code (API_OK, or API_UNPROCESSABLE with {"ok": false, ...}) and doc. */
int preview_run(const preview_in *in, const char *yaml, size_t len, size_t max_points, struct cJSON **doc);

#endif

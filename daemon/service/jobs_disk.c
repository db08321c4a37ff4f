/*
 * jobs_disk — the table's disk-space rules: a job that failed for a full
 * disk holds the queue until the spool's file system has room again, and
 * under max_job_disk a running job's directory is measured and a job over
 * it stopped.  The measurements run on the thread pool.
 */
#include "jobs_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "traind/disk.h"
#include "traind/hf_state.h"
#include "traind/log.h"
#include "traind/util.h"
#include "traind/spool.h"

/* "1.5 GiB" */
void format_bytes(size_t b, char *out, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(out, len, "%.4g %s", v, units[u]);
}

/* A job failed for a full disk: the queued ones must not start (and fail
 * the same way at once) until there is room again; the tick checks. */
void jobs_wait_for_space(job_table *t, const job *j)
{
    if (!t->space_wait)
        log_warn("job %s failed for a full disk: queued jobs wait until %s has room again (checked every %.0f s)",
                 j->id, t->spool, JOBS_SPACE_CHECK_S);
    t->space_wait = true;
    t->next_space_check = now_monotonic() + JOBS_SPACE_CHECK_S;
}

/* ---- disk checks on the thread pool ---- */

typedef struct disk_req {
    uv_work_t work;
    job_table *t;
    job *j;                          /* a job's usage; NULL: the spool's free space */
    char *path;
    long long bytes;                 /* usage, or free space */
    long long stop_bytes;            /* a job: what stopping it writes besides (see stop_cost) */
    int room;                        /* disk_has_room's answer */
} disk_req;

static long long file_bytes(const char *dir, const char *name)
{
    char *p = xasprintf("%s/%s", dir, name);
    struct stat st;
    long long n = lstat(p, &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_blocks * 512 : 0;
    free(p);
    return n;
}

/* What a run writes as it stops, besides what its directory holds now:
 * trainer_state.json, as large as metrics.jsonl, made through the log
 * history cache (hf_state.h), which holds all but the lines since the last
 * checkpoint, or is made whole then: up to as large again, less what the
 * cache holds already. */
static long long stop_cost(const char *dir)
{
    long long m = file_bytes(dir, "metrics.jsonl"), cache = file_bytes(dir, HF_CACHE_NAME);
    return m + (m > cache ? m - cache : 0);
}

static void disk_work(uv_work_t *w)
{
    disk_req *r = w->data;
    if (r->j) {
        r->bytes = disk_dir_usage(r->path);
        r->stop_bytes = stop_cost(r->path);
    } else
        r->room = disk_has_room(r->path, &r->bytes);
}

static void disk_space_back(job_table *t, long long free_bytes)
{
    char f[32];
    format_bytes((size_t)free_bytes, f, sizeof f);
    log_info("%s has room again (%s free): queued jobs start again", t->spool, f);
    t->space_wait = false;
    jobs_schedule(t);
}

/* Over max_job_disk: ask the process to checkpoint and stop; on_worker_exit fails the job. */
static void disk_over_limit(job *j, long long used, long long stop_bytes, long long growth)
{
    char u[32], l[32], m[32], g[32];
    format_bytes((size_t)used, u, sizeof u);
    format_bytes(j->t->max_job_disk, l, sizeof l);
    format_bytes((size_t)stop_bytes, m, sizeof m);
    format_bytes((size_t)growth, g, sizeof g);
    log_error("job %s: its files take %s (%s more since the last check), and %s more once it stops "
              "(trainer_state.json and its cache): by the next check over max_job_disk %s: stopping it",
              j->id, u, g, m, l);
    j->disk_over = true;
    exec_cancel(j->x);
    j->kill_deadline = now_monotonic() + JOBS_STOP_TIMEOUT_S;
}

static void disk_done(uv_work_t *w, int status)
{
    disk_req *r = w->data;
    job_table *t = r->t;
    t->pending_work--;
    if (r->j) {
        job *j = r->j;
        j->disk_check_inflight = false;
        /* what it takes once stopped counts (stop_cost): a log_every: 1
         * run stopped at the limit went on to twice it, and filled a small
         * spool */
        if (status == 0 && j->x && !j->disk_over && t->max_job_disk > 0 && r->bytes >= 0) {
            /* and what it will have written by the next check: the checks
             * are a second apart, and a log_every: 1 run writes 10 MB in
             * one; its stop cost grows twice as fast as its files */
            long long growth = j->disk_last_bytes > 0 && r->bytes > j->disk_last_bytes
                                   ? r->bytes - j->disk_last_bytes : 0;   /* none at a run's first check */
            j->disk_last_bytes = r->bytes;
            if (r->bytes + r->stop_bytes + 3 * growth > (long long)t->max_job_disk)
                disk_over_limit(j, r->bytes, r->stop_bytes, growth);
        }
    } else {
        t->space_check_inflight = false;
        if (status == 0 && t->space_wait && r->room > 0)
            disk_space_back(t, r->bytes);
    }
    free(r->path);
    free(r);
    jobs_check_shutdown_done(t);
}

static void start_disk_check(job_table *t, job *j)
{
    disk_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->t = t;
    r->j = j;
    r->path = xstrdup(j ? j->dir : t->spool);
    if (uv_queue_work(t->loop, &r->work, disk_work, disk_done) < 0) {
        free(r->path);
        free(r);
        return;
    }
    t->pending_work++;
    if (j)
        j->disk_check_inflight = true;
    else
        t->space_check_inflight = true;
}

/* From the tick: the space the table waits for, and the jobs' usage. */
void jobs_check_disks(job_table *t, double now)
{
    if (t->space_wait && !t->space_check_inflight && now >= t->next_space_check && !t->shutting_down) {
        t->next_space_check = now + JOBS_SPACE_CHECK_S;
        start_disk_check(t, NULL);
    }
    for (job *j = t->live; j; j = j->live_next)
        jobs_check_job_disk(j, now);
}

/* A running job's usage, when it is time (JOBS_DISK_CHECK_S apart): from
 * the tick, and from its progress reports, so that a job writing fast is
 * measured within JOBS_DISK_FIRST_CHECK_S of its start and not only at the
 * tick's next turn (half a second: 7 MiB of a log_every: 1 run). */
void jobs_check_job_disk(job *j, double now)
{
    if (j->t->max_job_disk == 0 || !j->x || j->disk_over || j->disk_check_inflight || now < j->next_disk_check)
        return;
    j->next_disk_check = now + JOBS_DISK_CHECK_S;
    start_disk_check(j->t, j);
}

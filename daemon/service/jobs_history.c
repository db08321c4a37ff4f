/*
 * jobs_history — each job's metrics history: kept in memory and thinned to
 * metrics_keep points, answered for GET /jobs/{id}/metrics, read back from
 * metrics.jsonl (at start-up, for an ended job when asked) and thinned on
 * disk when a job ends.
 */
#include "jobs_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/forkfile.h"
#include "traind/history.h"
#include "traind/log.h"
#include "traind/util.h"

/* ----------------------------------------------------- metrics history */

void jobs_thin_history(train_point *pts, size_t *n, size_t keep)
{
    if (keep < 2)
        keep = 2;
    while (*n > keep) {
        size_t half = *n / 2, w = 0;
        for (size_t i = 0; i < half; i += 2)
            pts[w++] = pts[i];
        for (size_t i = half; i < *n; i++)
            pts[w++] = pts[i];
        if (w == *n) {
            /* Too few points to halve the older half (n == 3): drop the
             * second-oldest, keeping the first and the newest. */
            memmove(pts + 1, pts + 2, (*n - 2) * sizeof *pts);
            w = *n - 1;
        }
        *n = w;
    }
}

void job_hist_push(job *j, const train_point *p)
{
    /* A point at or before the last one means the worker went back (resume
     * after a refused checkpoint): drop what it will redo. */
    while (j->n_hist > 0 && j->hist[j->n_hist - 1].step >= p->step)
        j->n_hist--;
    if (j->n_hist == j->cap_hist) {
        j->cap_hist = j->cap_hist ? 2 * j->cap_hist : 256;
        j->hist = xrealloc(j->hist, j->cap_hist * sizeof *j->hist);
    }
    j->hist[j->n_hist++] = *p;
    if ((long)j->n_hist > j->t->metrics_keep)
        jobs_thin_history(j->hist, &j->n_hist, (size_t)j->t->metrics_keep);
}

/* The history a metrics answer reads: the job's own, or, for an ended job
 * that was compacted, metrics.jsonl read back (one bounded read, as at
 * start-up: the file was thinned to metrics_keep points when it ended). */
typedef struct hist_view {
    const train_point *hist;
    size_t n_hist;
    train_point *owned;
} hist_view;

static void hist_read_now(const job *j, hist_view *v);

static void hist_view_of(const job *j, hist_view *v)
{
    v->owned = NULL;
    if (j->hist_on_disk) {
        hist_read_now(j, v);
        return;
    }
    v->hist = j->hist;
    v->n_hist = j->n_hist;
}

/* The index of the first point with step > since (points are in step
 * order: a binary search). */
static size_t first_after(const hist_view *j, long since)
{
    size_t lo = 0, hi = j->n_hist;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (j->hist[mid].step > since)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static int select_points(hist_view *j, long since, long max, long limit, train_point **out, size_t *out_n,
                         long *next_since)
{
    hist_view view = *j;
    size_t lo = first_after(j, since), n = j->n_hist - lo;
    if (max > 0) {
        /* the whole range, evenly thinned */
        size_t want = (size_t)max < n ? (size_t)max : n;
        size_t *idx = xmalloc((want ? want : 1) * sizeof *idx);
        size_t k = pick_even(n, want, idx);
        train_point *p = xmalloc((k ? k : 1) * sizeof *p);
        for (size_t i = 0; i < k; i++)
            p[i] = j->hist[lo + idx[i]];
        free(idx);
        free(view.owned);
        *out = p;
        *out_n = k;
        return 0;
    }
    /* a page: the first limit points, and where the next page starts */
    size_t k = limit > 0 && (size_t)limit < n ? (size_t)limit : n;
    train_point *p = xmalloc((k ? k : 1) * sizeof *p);
    if (k > 0)   /* no history yet: j->hist is NULL */
        memcpy(p, j->hist + lo, k * sizeof *p);
    if (k < n)
        *next_since = p[k - 1].step;
    free(view.owned);
    *out = p;
    *out_n = k;
    return 0;
}

int jobs_metrics_points(void *jobs, const char *id, long since, long max, long limit, train_point **out,
                        size_t *out_n, long *next_since)
{
    *out = NULL;
    *out_n = 0;
    *next_since = -1;
    const job *jb = job_find(jobs, id);
    if (!jb)
        return API_NOT_FOUND;
    hist_view view;
    hist_view_of(jb, &view);
    return select_points(&view, since, max, limit, out, out_n, next_since);
}

static void hist_read_path(const char *path, size_t keep, hist_view *v);

int jobs_metrics_file(job_table *t, const char *id, char **path, size_t *keep)
{
    *path = NULL;
    const job *j = job_find(t, id);
    if (!j)
        return -ENOENT;
    if (!j->hist_on_disk)
        return 1;
    *path = xasprintf("%s/metrics.jsonl", j->dir);
    *keep = (size_t)t->metrics_keep;
    return 0;
}

int jobs_metrics_read_file(const char *path, size_t keep, long since, long max, long limit, train_point **out,
                           size_t *out_n, long *next_since)
{
    *out = NULL;
    *out_n = 0;
    *next_since = -1;
    hist_view view;
    hist_read_path(path, keep, &view);
    return select_points(&view, since, max, limit, out, out_n, next_since);
}

/* A history on disk, to read on the thread pool. */
typedef struct metrics_file_arg {
    char *path;
    size_t keep;
} metrics_file_arg;

int jobs_metrics_defer(void *jobs, const char *id, void **arg)
{
    char *path;
    size_t keep;
    int rc = jobs_metrics_file(jobs, id, &path, &keep);
    if (rc < 0)
        return API_NOT_FOUND;
    if (rc == 1)
        return 0;
    metrics_file_arg *a = xcalloc(1, sizeof *a);
    a->path = path;
    a->keep = keep;
    *arg = a;
    return 1;
}

int jobs_metrics_read(void *arg, long since, long max, long limit, train_point **out, size_t *out_n,
                      long *next_since)
{
    metrics_file_arg *a = arg;
    jobs_metrics_read_file(a->path, a->keep, since, max, limit, out, out_n, next_since);
    jobs_metrics_drop(a);
    return API_OK;
}

void jobs_metrics_drop(void *arg)
{
    metrics_file_arg *a = arg;
    free(a->path);
    free(a);
}

/* Parses metrics.jsonl (thread pool). */
typedef struct hist_req {
    uv_work_t work;
    job *j;
    char *path;
    char *fork_path;      /* a fork not started yet has no metrics.jsonl: its parent's, linked */
    long fork_step;       /* ... whose points count up to here */
    long max_step;        /* points past it are left out (a fork's parent's: up to the fork) */
    size_t keep;
    bool whole;           /* every line (an answer); else a long file's older part sampled (start-up) */
    train_point *pts;
    size_t n;
} hist_req;

/* Adds the point of one metrics.jsonl line (a line that is not one is
 * skipped); *cap is r->pts' capacity. */
static void hist_add_line(hist_req *r, const char *line, size_t n, size_t *cap)
{
    cJSON *o = cJSON_ParseWithLength(line, n);
    if (!o)
        return;
    train_point p;
    if (train_point_from_json(o, &p) == 0 && p.step <= r->max_step) {
        /* loss and eval_loss are floats written with %.9g: round back to float */
        p.loss = (double)(float)p.loss;
        p.eval_loss = (double)(float)p.eval_loss;
        while (r->n > 0 && r->pts[r->n - 1].step >= p.step)
            r->n--;
        if (r->n == *cap) {
            *cap = *cap ? 2 * *cap : 1024;
            r->pts = xrealloc(r->pts, *cap * sizeof *r->pts);
        }
        r->pts[r->n++] = p;
        if (r->n > 2 * r->keep)
            jobs_thin_history(r->pts, &r->n, r->keep);
    }
    cJSON_Delete(o);
}

/* A long history's older part, sampled: HIST_SAMPLES lines read at evenly
 * spaced offsets of [0, end) — a coarse curve for a few seeks, whatever
 * the file's size. */
static void hist_sample(hist_req *r, int fd, off_t end, size_t *cap)
{
    char buf[1024];
    for (size_t k = 0; k < HIST_SAMPLES; k++) {
        off_t at = (off_t)((double)end * (double)k / HIST_SAMPLES);
        ssize_t n = pread(fd, buf, sizeof buf - 1, at);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        char *line = buf;
        if (at > 0) {   /* from the next line start on */
            char *nl = memchr(buf, '\n', (size_t)n);
            if (!nl)
                continue;
            line = nl + 1;
        }
        char *nl = memchr(line, '\n', (size_t)(buf + n - line));
        if (nl && line < buf + n)
            hist_add_line(r, line, (size_t)(nl - line), cap);
    }
}

static void hist_work(uv_work_t *w)
{
    hist_req *r = w->data;
    /* a planted device is not opened, a FIFO not waited on, a symlink not followed */
    struct stat st;
    if (lstat(r->path, &st) == 0 && !S_ISREG(st.st_mode)) {
        log_warn("%s: not a regular file; no history read", r->path);
        return;
    }
    int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT && r->fork_path) {
        /* a fork that has not trained yet: its history is its parent's up
         * to the fork step, as its metrics.jsonl will start */
        free(r->path);
        r->path = r->fork_path;
        r->fork_path = NULL;
        r->max_step = r->fork_step;
        hist_work(w);
        return;
    }
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        log_warn("%s: not a regular file; no history read", r->path);
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        return;
    /* Restart time must not grow with the history: of a long file only the
     * last HIST_TAIL_BYTES are read line by line (the recent, dense part)
     * and the rest is sampled.  An answer (GET /jobs/{id}/metrics, a law's
     * fit) reads every line, on the thread pool: its pages promise every
     * point kept, and an ended job's file holds at most 2 × metrics_keep. */
    size_t cap = 0;
    off_t from = !r->whole && st.st_size > (off_t)HIST_TAIL_BYTES ? st.st_size - (off_t)HIST_TAIL_BYTES : 0;
    if (from > 0)
        hist_sample(r, fd, from, &cap);
    FILE *f = lseek(fd, from, SEEK_SET) == from ? fdopen(fd, "r") : NULL;
    if (!f) {
        close(fd);
        return;
    }
    /* Streamed line by line: memory stays bounded by metrics_keep however
     * long the tail is. */
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    bool partial = from > 0;   /* the tail starts mid-line */
    while ((n = getline(&line, &linecap, f)) > 0) {
        if (line[n - 1] != '\n')
            break;   /* a torn last line (the process died mid-write) */
        if (partial) {
            partial = false;
            continue;
        }
        hist_add_line(r, line, (size_t)n, &cap);
    }
    free(line);
    fclose(f);
    jobs_thin_history(r->pts, &r->n, r->keep);
}

/* Reads a history file as job_load_history does, but here (thread-safe: no
 * job is touched). */
static void hist_read_path(const char *path, size_t keep, hist_view *v)
{
    hist_req r;
    memset(&r, 0, sizeof r);
    r.work.data = &r;
    r.path = (char *)path;
    r.max_step = LONG_MAX;
    r.keep = keep;
    r.whole = true;
    hist_work(&r.work);
    v->hist = v->owned = r.pts;
    v->n_hist = r.n;
}

static void hist_read_now(const job *j, hist_view *v)
{
    char *path = xasprintf("%s/metrics.jsonl", j->dir);
    hist_read_path(path, (size_t)j->t->metrics_keep, v);
    free(path);
}

static void hist_done(uv_work_t *w, int status)
{
    hist_req *r = w->data;
    job *j = r->j;
    free(j->hist);
    j->hist = r->pts;
    j->n_hist = j->cap_hist = r->n;
    j->hist_loading = false;
    if (j->n_hist > 0 && isnan(j->pt.loss) && j->pt.step <= j->hist[j->n_hist - 1].step) {
        /* a job rebuilt without its status.json: its last known progress */
        job_show_point(j, &j->hist[j->n_hist - 1]);
        j->pt.step = j->hist[j->n_hist - 1].step;
    }
    free(r->path);
    free(r->fork_path);
    free(r);
    j->t->pending_work--;
    (void)status;
    jobs_schedule(j->t);
    jobs_check_shutdown_done(j->t);
}

void job_load_history(job *j)
{
    hist_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->j = j;
    r->path = xasprintf("%s/metrics.jsonl", j->dir);
    r->max_step = LONG_MAX;
    if (j->parent && j->forked_at >= 0) {
        r->fork_path = xasprintf("%s/" FORKFILE_METRICS, j->dir);
        r->fork_step = j->forked_at;
    }
    r->keep = (size_t)j->t->metrics_keep;
    if (uv_queue_work(j->t->loop, &r->work, hist_work, hist_done) < 0) {
        free(r->path);
        free(r->fork_path);
        free(r);
        return;
    }
    j->hist_loading = true;
    j->t->pending_work++;
}

/* ---- a finished job's history thinned on disk (history.h) ---- */

typedef struct thin_req {
    uv_work_t work;
    job_table *t;
    char *path, *id;
    size_t keep;
    long dropped;
} thin_req;

static void thin_work(uv_work_t *w)
{
    thin_req *r = w->data;
    r->dropped = history_thin_file(r->path, r->keep);
}

static void thin_done(uv_work_t *w, int status)
{
    thin_req *r = w->data;
    r->t->pending_work--;
    if (r->dropped > 0)
        log_info("job %s: metrics.jsonl thinned to %zu points (%ld older ones dropped)", r->id, r->keep, r->dropped);
    else if (r->dropped < 0)
        log_warn("job %s: cannot thin metrics.jsonl: %s", r->id, strerror((int)-r->dropped));
    job_table *t = r->t;
    free(r->path);
    free(r->id);
    free(r);
    (void)status;
    jobs_check_shutdown_done(t);
}

/* The job has ended: nothing appends to its history any more. */
void job_thin_history_on_disk(job *j)
{
    thin_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->t = j->t;
    r->path = xasprintf("%s/metrics.jsonl", j->dir);
    r->id = xstrdup(j->id);
    r->keep = (size_t)j->t->metrics_keep;
    if (uv_queue_work(j->t->loop, &r->work, thin_work, thin_done) < 0) {
        free(r->path);
        free(r->id);
        free(r);
        return;
    }
    j->t->pending_work++;
}

/*
 * runner — the training loop: data → model forward/backward → grad norm and
 * clipping → lr(s) → optimizer, with metrics.jsonl, checkpoints, resume and
 * a clean stop.  See traind/runner.h.
 *
 * Determinism: everything that influences the numbers after step k lives in
 * the checkpoint written at step k (parameters, optimizer m/v/step, the data
 * source's RNG and position, the running loss sum behind loss_avg), and the
 * lr is a pure function of the step.  A run resumed from step k therefore
 * produces the same bits as one that never stopped.
 *
 * Schedule-free AdamW (traind/optim_sf.h): the parameters hold y while
 * training, but evaluation and the checkpoint's parameters (what `trainctl
 * sample` and every reader of a checkpoint's weights take) are the averaged
 * x = lerp(y, z, 1 - 1/beta1).  The checkpoint keeps y, z (OPTM), v (OPTV),
 * weight_sum and lr_max besides, and a resume trains on from that y: x
 * cannot be turned back into y bit for bit.  Evaluation swaps x in and y
 * back (a copy, not a second lerp), so it changes no training number.
 *
 * Data-parallel (opts->dist, traind/dist.h): every rank draws the same global
 * batch and trains its own contiguous slice; the gradients, the batch loss
 * and the stop request are averaged across ranks after each backward pass, so
 * every rank sees the same numbers and takes the same decisions (clip, stop,
 * fail on NaN) at the same step.  Only rank 0 writes metrics.jsonl and
 * checkpoint.bin and emits events; every rank reads the checkpoint on resume.
 */
#include "traind/runner.h"
#include "traind/hf_state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/ckpt.h"
#include "traind/compute.h"
#include "traind/data.h"
#include "traind/fork.h"
#include "traind/dist.h"
#include "traind/model.h"
#include "traind/optim.h"
#include "traind/optim_muon.h"
#include "traind/optim_sf.h"
#include "traind/rng.h"
#include "traind/schedule.h"
#include "traind/util.h"

/* Checkpoint section tags. */
enum {
    TAG_PARAMS = 0x50524d53,   /* "PRMS" model parameters */
    TAG_OPT_M = 0x4f50544d,    /* "OPTM" first moment / momentum buffer */
    TAG_OPT_V = 0x4f505456,    /* "OPTV" second moment */
    TAG_TRAIN = 0x5452414e,    /* "TRAN" loop counters, see train_counters */
    TAG_DATA = 0x44415441,     /* "DATA" data source state */
    TAG_LINEAGE = 0x4c494e45,  /* "LINE" cfg_lineage_hash: what a fork from it must share */
    TAG_SF_Y = 0x53465f59,     /* "SF_Y" schedule_free_adamw: y, the training parameters (PRMS holds x) */
    TAG_SF_W = 0x53465f57,     /* "SF_W" schedule_free_adamw: sf_scalars */
};

/* schedule_free_adamw's scalars, saved in TAG_SF_W in this order. */
typedef struct sf_scalars {
    double weight_sum;
    double lr_max;
} sf_scalars;

/* Loop state saved in TAG_TRAIN, field by field in this order (all 8 bytes). */
typedef struct train_counters {
    int64_t step;           /* updates completed */
    int64_t optim_step;     /* optimizer's own step count */
    double loss_sum;        /* sum of losses since the last metrics point */
    int64_t loss_count;
    double elapsed_s;       /* training seconds before this process */
    int64_t n_params;
} train_counters;

typedef struct run {
    const run_config *cfg;
    const runner_opts *opts;
    char *ckpt_path;
    char *metrics_path;
    int metrics_fd;            /* O_APPEND; -1 when not open */
    off_t metrics_len;         /* bytes of whole lines in the file */
    data_source_t *data;
    model_t *model;
    optim_state opt;
    float *opt_buf;            /* m and v, one allocation (and sf_x) */
    float *sf_x;               /* schedule_free_adamw: room for x, n floats; NULL otherwise */
    size_t n;                  /* parameters */
    train_counters c;
    long checkpoint_step;
    double t_start;            /* monotonic time this process started training */
    double rate;               /* smoothed steps/s */
    double rate_t;             /* time and step of the last rate sample */
    long rate_step;
    double last_tick;
    char *data_state;
    size_t data_state_len;
    dist_t *dist;              /* NULL: one process */
    bool writer;               /* rank 0 (or no dist): writes files, emits events */
    bool files;                /* writes out_dir: the writer, unless the run is an lr probe */
    bool stop_agreed;          /* dist: some rank was asked to stop (agreed at the last step) */
    bool cache_told;           /* a failed update of trainer_state.json's cache was told */
} run;

static void emit(run *r, run_event_type type, double lr, double loss, double loss_avg,
                 double grad_norm, double eval_loss, const char *message)
{
    if (!r->opts->on_event || !r->writer)
        return;
    run_event ev = {
        .type = type,
        .pt = {.step = r->c.step, .lr = lr, .loss = loss, .loss_avg = loss_avg, .grad_norm = grad_norm,
               .eval_loss = eval_loss, .time = r->c.elapsed_s + (now_monotonic() - r->t_start),
               .steps_per_s = r->rate},
        .total_steps = r->cfg->sched.total_steps,
        .checkpoint_step = r->checkpoint_step,
        .message = message,
    };
    r->opts->on_event(r->opts->ctx, &ev);
}

static void notice(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    emit(r, RUN_EVENT_NOTICE, NAN, NAN, NAN, NAN, NAN, msg ? msg : "(out of memory)");
    free(msg);
}

/* ---- kept checkpoints (train.keep_checkpoints, train.keep_every) ----- */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* The steps of out_dir/checkpoints/step-S.bin, ascending (malloc'd). */
static long *kept_steps(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    long *steps = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long s;
        if (!ckpt_kept_name_step(e->d_name, &s))
            continue;
        if (*n == cap)
            steps = xrealloc(steps, (cap = cap ? 2 * cap : 16) * sizeof *steps);
        steps[(*n)++] = s;
    }
    closedir(d);
    qsort(steps, *n, sizeof *steps, cmp_long);
    return steps;
}

/* Keeps the checkpoint just written as checkpoints/step-S.bin — a hard link
 * to checkpoint.bin's file, made under a temporary name and renamed, so it
 * appears whole or not at all — then drops rolling ones past the newest
 * keep_checkpoints + 1 (the latest and the N before it); every keep_every-th
 * step stays for good.  A failure is told, never fatal: training goes on. */
static bool is_keep_step(const train_cfg *t, long step)
{
    for (int i = 0; i < t->n_keep_steps; i++)
        if (t->keep_steps[i] == step)
            return true;
    return false;
}

/* Kept for good: every keep_every-th step and the train.keep_steps. */
static bool kept_for_good(const train_cfg *t, long step)
{
    return (t->keep_every > 0 && step % t->keep_every == 0) || is_keep_step(t, step);
}

static void keep_checkpoint(run *r)
{
    const train_cfg *t = &r->cfg->train;
    long step = r->c.step;
    bool permanent = kept_for_good(t, step);
    if (!permanent && t->keep_checkpoints <= 0)
        return;
    char *dir = xasprintf("%s/checkpoints", r->opts->out_dir);
    char *path = xasprintf("%s/step-%ld.bin", dir, step);
    int rc = mkdir_p(dir, 0755);
    if (rc == 0)
        rc = link_file_atomic(r->ckpt_path, path);   /* checkpoints/.step-N.bin.tmp.PID, rename, fsync */
    if (rc != 0)
        notice(r, "cannot keep the checkpoint of step %ld in checkpoints/: %s", step, strerror(-rc));
    size_t n;
    long *steps = kept_steps(dir, &n);
    long rolling_kept = 0;
    for (size_t i = n; i-- > 0;) {
        bool keep = kept_for_good(t, steps[i]) || rolling_kept++ <= t->keep_checkpoints;
        if (!keep) {
            char *old = xasprintf("%s/step-%ld.bin", dir, steps[i]);
            unlink(old);
            free(old);
        }
    }
    free(steps);
    free(path);
    free(dir);
}

static int save_checkpoint(run *r, char *err, size_t errlen)
{
    if (!r->files)
        return 0;
    train_counters c = r->c;
    c.elapsed_s = r->c.elapsed_s + (now_monotonic() - r->t_start);
    c.optim_step = r->opt.step;
    c.n_params = (int64_t)r->n;
    data_save_state(r->data, r->data_state);
    uint64_t lineage = cfg_lineage_hash(r->cfg);
    const float *weights = r->model->params;
    if (r->sf_x) {   /* the weights to keep are x; y goes beside them */
        optim_sf_eval_params(&r->cfg->optim, r->model->params, r->opt.m, r->sf_x, r->n);
        weights = r->sf_x;
    }
    sf_scalars sf = {r->opt.weight_sum, r->opt.lr_max};
    ckpt_section s[8] = {
        {TAG_TRAIN, &c, sizeof c},
        {TAG_PARAMS, weights, r->n * sizeof(float)},
        {TAG_OPT_M, r->opt.m, r->n * sizeof(float)},
        {TAG_OPT_V, r->opt.v, r->n * sizeof(float)},
        {TAG_DATA, r->data_state, r->data_state_len},
        {TAG_LINEAGE, &lineage, sizeof lineage},
        {TAG_SF_Y, r->model->params, r->n * sizeof(float)},
        {TAG_SF_W, &sf, sizeof sf},
    };
    int rc = ckpt_write(r->ckpt_path, cfg_hash(r->cfg), (uint64_t)r->c.step, s, r->sf_x ? 8 : 6, err, errlen);
    if (rc == 0) {
        r->checkpoint_step = r->c.step;
        keep_checkpoint(r);
        emit(r, RUN_EVENT_CHECKPOINT, NAN, NAN, NAN, NAN, NAN, NULL);
        /* trainer_state.json's log_history so far, cached from the lines
         * since the last checkpoint: the stop that follows, whenever it
         * comes, parses only what was written after this (traind-run.yaml(5),
         * TRAIN).  A failure costs that stop a full pass, no more. */
        int cr = hf_cache_update(r->opts->out_dir);
        if (cr < 0 && !r->cache_told) {
            r->cache_told = true;
            notice(r, "cannot update %s/" HF_CACHE_NAME ": %s (trainer_state.json will be written from the whole "
                      "history)", r->opts->out_dir, strerror(-cr));
        }
    }
    return rc;
}

/* The one refusal that is no damage: the file is whole, of another config. */
static const char WHY_FOREIGN[] = "it was written for a different config (config hash mismatch)";

/* Loads a checkpoint into the run.  Our own (checkpoint.bin) must belong
 * to this very config; a fork's parent checkpoint (fork) to this config's
 * lineage (traind/fork.h).  1 when loaded; 0 when there is nothing (or
 * nothing usable), with *why_out saying why when there was something. */
static int load_checkpoint_from(run *r, const char *path, bool fork, const char **why_out, char *err,
                                size_t errlen)
{
    ckpt_file f;
    size_t max = 4 * r->n * sizeof(float) + r->data_state_len + 4096;
    *why_out = NULL;
    int rc = ckpt_read(path, max, &f, err, errlen);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        *why_out = err;
        return 0;
    }
    const char *why = NULL;
    const ckpt_section *tr = ckpt_find(&f, TAG_TRAIN), *p = ckpt_find(&f, TAG_PARAMS),
                       *m = ckpt_find(&f, TAG_OPT_M), *v = ckpt_find(&f, TAG_OPT_V),
                       *d = ckpt_find(&f, TAG_DATA), *ln = ckpt_find(&f, TAG_LINEAGE);
    /* schedule_free_adamw trains on from y, not from the x in PRMS */
    const ckpt_section *sy = ckpt_find(&f, TAG_SF_Y), *sw = ckpt_find(&f, TAG_SF_W);
    sf_scalars sf = {0, 0};
    train_counters c;
    size_t pbytes = r->n * sizeof(float);
    uint64_t lineage = 0;
    if (ln && ln->len == sizeof lineage)
        memcpy(&lineage, ln->data, sizeof lineage);
    if (!fork && f.cfg_hash != cfg_hash(r->cfg))
        why = WHY_FOREIGN;
    else if (fork && (!ln || lineage != cfg_lineage_hash(r->cfg)))
        why = "it is not of this run's line: the model, data, seed or optimizer type differ";
    else if (!tr || tr->len != sizeof c || !p || !m || !v || !d ||
             (r->sf_x && (!sy || sy->len != pbytes || !sw || sw->len != sizeof sf)))
        why = "a section is missing or has the wrong size";
    if (!why && r->sf_x) {
        memcpy(&sf, sw->data, sizeof sf);
        if (!isfinite(sf.weight_sum) || !isfinite(sf.lr_max))
            why = "its schedule-free averages are out of range";
    }
    if (!why) {
        memcpy(&c, tr->data, sizeof c);
        if (c.n_params != (int64_t)r->n || p->len != pbytes || m->len != pbytes || v->len != pbytes)
            why = "its parameter count does not match the model";
        else if (c.step < 0 || c.step > r->cfg->sched.total_steps || (uint64_t)c.step != f.step ||
                 c.optim_step < 0 || c.loss_count < 0 || !isfinite(c.loss_sum) || !isfinite(c.elapsed_s))
            why = "its counters are out of range";
        else if (data_load_state(r->data, d->data, d->len) != 0)
            why = "its data position does not fit this data";
    }
    if (why) {
        *why_out = why;
        ckpt_close(&f);
        return 0;
    }
    memcpy(r->model->params, r->sf_x ? sy->data : p->data, pbytes);
    memcpy(r->opt.m, m->data, pbytes);
    memcpy(r->opt.v, v->data, pbytes);
    r->opt.step = c.optim_step;
    r->opt.weight_sum = sf.weight_sum;
    r->opt.lr_max = sf.lr_max;
    r->c = c;
    r->checkpoint_step = c.step;
    ckpt_close(&f);
    return 1;
}

/* A fork's start: its parent's points up to the fork step begin its
 * metrics.jsonl (open_metrics cuts the copy back to the step). */
static int copy_parent_metrics(run *r, char *err, size_t errlen)
{
    if (!r->opts->fork_metrics || !r->writer)
        return 0;
    char *buf;
    size_t len;
    int rc = read_file(r->opts->fork_metrics, (size_t)1 << 34, &buf, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc == 0) {
        /* the cache of the metrics.jsonl replaced goes first */
        rc = hf_cache_remove(r->opts->out_dir);
        if (rc == 0)
            rc = write_file_atomic(r->metrics_path, buf, len, 0644);
        free(buf);
    }
    if (rc < 0)
        snprintf(err, errlen, "cannot copy the parent's metrics.jsonl: %s", strerror(-rc));
    return rc;
}

/* One candidate of resume(): 1 when loaded; 0 with why (empty when the file
 * is absent) and *foreign (whole, but of another config) when not. */
static int try_resume_from(run *r, const char *path, bool fork, char *why, size_t whylen, bool *foreign)
{
    char err[512];
    const char *w;
    why[0] = '\0';
    *foreign = false;
    if (load_checkpoint_from(r, path, fork, &w, err, sizeof err))
        return 1;
    if (w) {
        snprintf(why, whylen, "%s", w);
        *foreign = w == WHY_FOREIGN;
    }
    return 0;
}

/*
 * Where a run resumes: checkpoint.bin; when it is refused (damaged, or
 * missing beside kept ones), the newest intact kept checkpoint
 * (checkpoints/step-S.bin, newest first); for a fork, then its fork point
 * (fork_from).  Falling back is told (a notice: the job's errors and the
 * log), and metrics.jsonl is then cut back to the step actually resumed
 * (open_metrics).  When nothing is intact the run fails: starting over from
 * step 0 would throw the history away, and that is the user's decision
 * (traind-run.yaml(5), TRAIN).  Only a directory whose every
 * checkpoint is whole but of another config (the config was edited, as
 * `trainctl run` allows) starts over, as before, saying so.
 *
 * 1 when loaded, 0 when there is nothing to resume (a first start), -1
 * with err set when the run must fail.
 */
static int resume(run *r, char *err, size_t errlen)
{
    char why[512], first[512];
    bool foreign, damaged = false;
    if (try_resume_from(r, r->ckpt_path, false, why, sizeof why, &foreign))
        return 1;
    bool absent = why[0] == '\0';
    snprintf(first, sizeof first, "%s", absent ? "it is missing" : why);
    char *kdir = xasprintf("%s/checkpoints", r->opts->out_dir);
    size_t n;
    long *steps = kept_steps(kdir, &n);
    if (absent && n == 0 && !r->opts->fork_from) {
        free(steps);
        free(kdir);
        return 0;   /* a first start */
    }
    damaged = !absent && !foreign;
    int got = 0;
    for (size_t i = n; i-- > 0 && !got;) {
        char *path = xasprintf("%s/step-%ld.bin", kdir, steps[i]);
        got = try_resume_from(r, path, false, why, sizeof why, &foreign);
        free(path);
        if (got)
            notice(r, "checkpoint.bin refused: %s; resuming from the newest intact kept checkpoint, "
                      "checkpoints/step-%ld.bin (step %ld)", first, steps[i], steps[i]);
        else if (!foreign)
            damaged = true;
    }
    free(steps);
    free(kdir);
    if (got)
        return 1;
    if (r->opts->fork_from) {
        if (absent && !damaged)
            return 0;   /* a fork's first start: runner_run forks */
        if (try_resume_from(r, r->opts->fork_from, true, why, sizeof why, &foreign)) {
            notice(r, "checkpoint.bin refused: %s; no intact kept checkpoint of its own: resuming from "
                      "its fork point (step %ld)", first, (long)r->c.step);
            return copy_parent_metrics(r, err, errlen) == 0 ? 1 : -1;
        }
        snprintf(err, errlen, "no intact checkpoint to resume from (checkpoint.bin: %s; the fork point "
                 "%s: %s); not starting over from step 0", first, r->opts->fork_from,
                 why[0] ? why : "it is missing");
        return -1;
    }
    if (!damaged) {
        notice(r, "checkpoint refused: %s; starting over from step 0", first);
        return 0;
    }
    snprintf(err, errlen, "no intact checkpoint to resume from (checkpoint.bin: %s; %s); not starting over "
             "from step 0, which would discard the history: submit the config again (or trainctl run "
             "--fresh) to train from scratch", first,
             n ? "no kept checkpoint is intact either" : "no kept checkpoints");
    return -1;
}

/* Parses the "step" of one line we wrote ({"step":N,...}); -1 if not ours. */
static long metrics_line_step(const char *line)
{
    if (strncmp(line, "{\"step\":", 8) != 0)
        return -1;
    char *end;
    long s = strtol(line + 8, &end, 10);
    return end == line + 8 ? -1 : s;
}

/* pread until n bytes or EOF/error; the bytes read. */
static size_t pread_full(int fd, char *buf, size_t n, off_t at)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, at + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Where metrics.jsonl is cut back to on resume: just after its last whole
 * line with a step <= keep_through, found by reading backwards from the
 * end — the checkpoint is near the end, so a resume reads a few KiB
 * whatever the history's size.  0 with *keep, -E2BIG for a line longer
 * than a chunk (not ours: the caller falls back to reading forwards), or
 * -errno. */
static int metrics_cut_point(int fd, off_t size, long keep_through, off_t *keep)
{
    enum { CHUNK = 1 << 16 };
    char *buf = xmalloc(CHUNK + 1);
    off_t end = size;
    bool first = true;
    *keep = 0;
    while (end > 0) {
        off_t start = end > CHUNK ? end - CHUNK : 0;
        size_t n = (size_t)(end - start);
        if (pread_full(fd, buf, n, start) != n) {
            free(buf);
            return -EIO;
        }
        size_t i = n;
        if (first) {   /* a torn last line (the process died mid-write) goes */
            while (i > 0 && buf[i - 1] != '\n')
                i--;
            first = false;
        }
        size_t i0 = i;
        while (i > 0) {   /* buf[i - 1] is the '\n' ending a line */
            size_t j = i - 1;
            while (j > 0 && buf[j - 1] != '\n')
                j--;
            if (j == 0 && start > 0)
                break;    /* it starts in the chunk before */
            buf[i - 1] = '\0';
            long s = metrics_line_step(buf + j);
            if (s >= 0 && s <= keep_through) {
                *keep = start + (off_t)i;
                free(buf);
                return 0;
            }
            i = j;
        }
        if (start > 0 && (i == i0 || i == n)) {
            free(buf);
            return -E2BIG;
        }
        end = start + (off_t)i;
        if (start == 0)
            break;
    }
    free(buf);
    return 0;
}

/* The forward way: the prefix of whole lines with step <= keep_through. */
static int metrics_cut_forward(const char *path, long keep_through, size_t *keep)
{
    char *buf = NULL;
    size_t len = 0;
    *keep = 0;
    int rc = read_file_flags(path, (size_t)1 << 34, O_NOFOLLOW, &buf, &len);
    if (rc < 0)
        return rc;
    for (size_t off = 0; off < len;) {
        char *nl = memchr(buf + off, '\n', len - off);
        if (!nl)
            break;
        *nl = '\0';
        long s = metrics_line_step(buf + off);
        if (s < 0 || s > keep_through)
            break;
        off = (size_t)(nl - buf) + 1;
        *keep = off;
    }
    free(buf);
    return 0;
}

/* Opens metrics.jsonl for appending, first cutting it back to the lines with
 * step <= keep_through (so a resumed run never repeats a step). */
static int open_metrics(run *r, long keep_through, char *err, size_t errlen)
{
    size_t keep = 0;
    if (keep_through > 0) {
        int fd = open(r->metrics_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        struct stat st;
        int rc = fd < 0 ? -errno : fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : 0;
        off_t at = 0;
        if (rc == 0)
            rc = metrics_cut_point(fd, st.st_size, keep_through, &at);
        if (fd >= 0)
            close(fd);
        keep = (size_t)at;
        if (rc == -E2BIG)
            rc = metrics_cut_forward(r->metrics_path, keep_through, &keep);
        if (rc < 0 && rc != -ENOENT) {
            snprintf(err, errlen, "cannot read %s: %s", r->metrics_path, file_error_text(rc));
            return rc;
        }
    }
    /* never opens a planted device, follows a planted symlink nor waits on a planted FIFO */
    struct stat pre;
    if (lstat(r->metrics_path, &pre) == 0 && !S_ISREG(pre.st_mode)) {
        snprintf(err, errlen, "cannot open %s: not a regular file", r->metrics_path);
        return -EINVAL;
    }
    r->metrics_fd = open(r->metrics_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (r->metrics_fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open %s: %s", r->metrics_path, strerror(e));
        return -e;
    }
    /* trainer_state.json's cache goes before the lines it covers do: a
     * kill between leaves no cache, never one of lines no longer there */
    int cr = hf_cache_cut(r->opts->out_dir, (uint64_t)keep);
    if (cr < 0) {
        snprintf(err, errlen, "cannot remove %s/" HF_CACHE_NAME ": %s", r->opts->out_dir, strerror(-cr));
        return cr;
    }
    if (ftruncate(r->metrics_fd, (off_t)keep) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot truncate %s: %s", r->metrics_path, strerror(e));
        return -e;
    }
    r->metrics_len = (off_t)keep;
    return 0;
}

/* Appends one line with a single write().  A write that fails part way (disk
 * full, file size limit) is cut back off, so metrics.jsonl only ever holds
 * whole lines and a later resume finds it intact. */
static int write_metrics(run *r, double lr, float loss, double loss_avg, double grad_norm,
                         double eval_loss, char *err, size_t errlen)
{
    if (!r->files)
        return 0;
    double t = r->c.elapsed_s + (now_monotonic() - r->t_start);
    char line[512];
    /* %.9g round-trips a float, %.17g a double. */
    int n = snprintf(line, sizeof line,
                     "{\"step\":%ld,\"lr\":%.17g,\"loss\":%.9g,\"loss_avg\":%.17g,"
                     "\"grad_norm\":%.17g,\"time\":%.6f",
                     (long)r->c.step, lr, (double)loss, loss_avg, grad_norm, t);
    if (!isnan(eval_loss) && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, ",\"eval_loss\":%.9g", eval_loss);
    if (n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, "}\n");
    if (n <= 0 || (size_t)n >= sizeof line) {
        snprintf(err, errlen, "cannot format a metrics line at step %ld", (long)r->c.step);
        return -1;
    }
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = write(r->metrics_fd, line + done, (size_t)n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            snprintf(err, errlen, "cannot write %s: %s", r->metrics_path, strerror(e));
            if (done > 0) {
                /* if even this fails, open_metrics drops the torn last line */
                int rc = ftruncate(r->metrics_fd, r->metrics_len);
                (void)rc;
            }
            return -1;
        }
        done += (size_t)w;
    }
    r->metrics_len += n;
    return 0;
}

/* This rank's contiguous slice of a global batch (the batch itself without dist). */
static void take_slice(const run *r, batch_t *b)
{
    if (!r->dist)
        return;
    int lo, n;
    dist_slice(b->B, r->dist->rank, r->dist->size, &lo, &n);
    if (b->x)
        b->x += (size_t)lo * (size_t)b->n_in;
    if (b->y)
        b->y += (size_t)lo * (size_t)b->n_out;
    if (b->tokens)
        b->tokens += (size_t)lo * (size_t)b->T;
    if (b->targets)
        b->targets += (size_t)lo * (size_t)b->T;
    b->B = n;
}

/* Averages buf over the ranks (nothing to do in one process). */
static int reduce_mean(run *r, float *buf, size_t n, char *err, size_t errlen)
{
    if (!r->dist)
        return 0;
    int rc = r->dist->allreduce_mean(r->dist, buf, n);
    if (rc < 0)
        snprintf(err, errlen, "allreduce across %d ranks failed at step %ld: %s", r->dist->size,
                 (long)r->c.step + 1, strerror(-rc));
    return rc;
}

/* The mean eval loss of the global eval batches (each rank its slices),
 * at x for schedule_free_adamw. */
static double eval_loss(run *r)
{
    int n = data_eval_batches(r->data);
    if (n <= 0)
        return NAN;
    float *params = r->model->params;
    if (r->sf_x) {   /* y aside into sf_x, x into the parameters; y back after */
        memcpy(r->sf_x, params, r->n * sizeof *params);
        optim_sf_eval_params(&r->cfg->optim, r->sf_x, r->opt.m, params, r->n);
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        batch_t b;
        data_eval_batch(r->data, i, &b);
        take_slice(r, &b);
        sum += model_eval_loss(r->model, &b);
    }
    if (r->sf_x)
        memcpy(params, r->sf_x, r->n * sizeof *params);
    float mean = (float)(sum / n);
    char err[256];
    if (reduce_mean(r, &mean, 1, err, sizeof err) != 0)
        return NAN;
    return r->dist ? (double)mean : sum / n;
}

static void update_rate(run *r, double now)
{
    double dt = now - r->rate_t;
    if (dt >= 0.25 || (r->rate == 0 && dt >= 0.01)) {
        double inst = (double)(r->c.step - r->rate_step) / dt;
        r->rate = r->rate > 0 ? 0.5 * r->rate + 0.5 * inst : inst;
        r->rate_t = now;
        r->rate_step = r->c.step;
    }
}

/* The loop proper.  Returns RUN_OK, RUN_STOPPED or RUN_FAILED. */
static run_result train_loop(run *r, char *err, size_t errlen)
{
    const run_config *cfg = r->cfg;
    const runner_probe *probe = r->opts->probe;
    const long T = probe ? probe->steps : cfg->sched.total_steps;
    const long log_every = cfg->train.log_every;
    const long ckpt_every = cfg->train.checkpoint_every;
    const bool evals = !probe && data_eval_batches(r->data) > 0;   /* a probe, as fastai's, never evaluates */
    const long eval_every = evals ? cfg->train.eval_every : 0;
    const long pause_at = probe ? 0 : r->opts->pause_at;
    float *params = r->model->params, *grads = r->model->grads;

    if (pause_at > 0 && r->c.step == pause_at && r->c.step < T)
        return RUN_PAUSED;   /* resumed at its pause: its checkpoint is there already */
    while (r->c.step < T) {
        bool stop = r->dist ? r->stop_agreed : r->opts->stop && *r->opts->stop;
        if (stop)
            return save_checkpoint(r, err, errlen) == 0 ? RUN_STOPPED : RUN_FAILED;

        batch_t b;
        data_next(r->data, &b);
        take_slice(r, &b);
        float loss = model_train_step(r->model, &b);
        if (r->dist) {
            /* The global batch's mean loss and gradient (equal slices: the
             * mean of the slices' means), and whether any rank must stop. */
            float v[2] = {loss, r->opts->stop && *r->opts->stop ? 1.0f : 0.0f};
            if (reduce_mean(r, grads, r->n, err, errlen) != 0 || reduce_mean(r, v, 2, err, errlen) != 0)
                return RUN_FAILED;
            loss = v[0];
            r->stop_agreed = v[1] > 0;
        }
        long s = r->c.step;    /* 0-based index of this update */
        double norm = grad_global_norm(grads, r->n);
        double lr = probe ? probe->lr(probe->ctx, s) : sched_lr(&cfg->sched, cfg->optim.lr, s);
        if (probe && !probe->record(probe->ctx, s, lr, loss, norm))
            return RUN_OK;     /* the probe has seen enough (diverged, or told to) */
        if (!isfinite(loss)) {
            snprintf(err, errlen, "loss is %s at step %ld", isnan(loss) ? "NaN" : "Inf", s + 1);
            return RUN_FAILED;
        }
        if (!isfinite(norm)) {
            snprintf(err, errlen, "gradient norm is %s at step %ld", isnan(norm) ? "NaN" : "Inf", s + 1);
            return RUN_FAILED;
        }
        grad_clip(grads, r->n, norm, cfg->optim.grad_clip);
        optim_step(&cfg->optim, &r->opt, params, grads, r->n, lr);
        r->c.step = s + 1;
        r->c.loss_sum += loss;
        r->c.loss_count++;

        long done = r->c.step;
        double ev = NAN;
        bool keep_step = is_keep_step(&cfg->train, done);
        if ((eval_every > 0 && done % eval_every == 0) ||
            (keep_step && done < T && evals)) {
            ev = eval_loss(r);
            emit(r, RUN_EVENT_EVAL, lr, loss, NAN, norm, ev, NULL);
        }
        if (done % log_every == 0 || done == T || !isnan(ev) || keep_step) {
            double avg = r->c.loss_sum / (double)r->c.loss_count;
            if (write_metrics(r, lr, loss, avg, norm, ev, err, errlen) != 0)
                return RUN_FAILED;
            r->c.loss_sum = 0;
            r->c.loss_count = 0;
            update_rate(r, now_monotonic());
            emit(r, RUN_EVENT_LOG, lr, loss, avg, norm, ev, NULL);
        } else if (r->opts->tick_interval_s > 0) {
            /* The clock every step (a vDSO call, nothing beside a step), not
             * every 64: a job of slow steps still reports every interval or
             * step, and traind's stall watchdog, which measures a job by the
             * gaps between its reports (traind.yaml(5), stall_timeout_s),
             * does not take 64 steps of silence for a stall. */
            double now = now_monotonic();
            if (now - r->last_tick >= r->opts->tick_interval_s) {
                r->last_tick = now;
                update_rate(r, now);
                emit(r, RUN_EVENT_TICK, lr, loss, NAN, norm, NAN, NULL);
            }
        }
        bool to_keep = kept_for_good(&cfg->train, done) || done == pause_at;
        if (((ckpt_every > 0 && done % ckpt_every == 0) || to_keep) && done < T)
            if (save_checkpoint(r, err, errlen) != 0)
                return RUN_FAILED;
        if (done == pause_at && done < T)
            return RUN_PAUSED;
    }
    return save_checkpoint(r, err, errlen) == 0 ? RUN_OK : RUN_FAILED;
}

/* PREFIX...PID files whose writer is gone (a process killed while it wrote
 * a checkpoint or trainer_state.json) are removed; a live writer's file is
 * left alone. */
static void remove_stale_tmps(const char *dir)
{
    static const char *const here[] = {"checkpoint.bin.tmp.", "trainer_state.json.tmp."};
    static const char *const kept[] = {".step-"};
    remove_stale_tmp(dir, here, 2, false, NULL, NULL);
    char *cdir = xasprintf("%s/checkpoints", dir);
    remove_stale_tmp(cdir, kept, 1, false, NULL, NULL);
    free(cdir);
}

run_result runner_run(const run_config *cfg, const runner_opts *opts, char *err, size_t errlen)
{
    run r = {.cfg = cfg, .opts = opts, .checkpoint_step = -1, .metrics_fd = -1,
             .dist = opts->dist && opts->dist->size > 1 ? opts->dist : NULL};
    r.writer = !r.dist || r.dist->rank == 0;
    r.files = r.writer && !opts->probe;
    run_result result = RUN_FAILED;
    err[0] = '\0';
    compute_set_threads(opts->threads > 0 ? opts->threads : 1);
    int ranks = r.dist ? r.dist->size : 1;
    if (cfg->data.batch_size % ranks != 0) {
        snprintf(err, errlen, "data.batch_size (%d) is not divisible by the %d ranks", cfg->data.batch_size,
                 ranks);
        return RUN_FAILED;
    }

    if (!opts->probe) {
        int rc = mkdir_p(opts->out_dir, 0755);
        if (rc < 0) {
            snprintf(err, errlen, "cannot create %s: %s", opts->out_dir, strerror(-rc));
            return RUN_FAILED;
        }
        r.ckpt_path = xasprintf("%s/checkpoint.bin", opts->out_dir);
        r.metrics_path = xasprintf("%s/metrics.jsonl", opts->out_dir);
        if (r.writer)
            remove_stale_tmps(opts->out_dir);
    }

    r.data = data_open(cfg, opts->data_path, err, errlen);
    if (!r.data)
        goto out;
    r.model = model_create(&cfg->model, cfg->data.batch_size / ranks, err, errlen);
    if (!r.model)
        goto out;
    r.n = r.model->n_params;
    bool sf = cfg->optim.type == OPT_SCHEDULE_FREE_ADAMW;
    r.opt_buf = calloc(r.n > 0 ? (sf ? 3 : 2) * r.n : 1, sizeof(float));
    if (!r.opt_buf) {
        snprintf(err, errlen, "out of memory for the optimizer state (%zu parameters)", r.n);
        goto out;
    }
    r.opt = (optim_state){.m = r.opt_buf, .v = r.opt_buf + r.n};
    r.sf_x = sf ? r.opt_buf + 2 * r.n : NULL;
    if (cfg->optim.type == OPT_MUON) {
        /* which tensors are hidden matrices: the model's layout, not state */
        r.opt.muon = optim_muon_for_model(&cfg->model, r.n, err, errlen);
        if (!r.opt.muon)
            goto out;
    }
    r.data_state_len = data_state_size(r.data);
    r.data_state = xcalloc(1, r.data_state_len);

    rng_t init;
    rng_seed(&init, cfg->seed, RNG_STREAM_INIT);
    model_init(r.model, &init);
    r.t_start = r.rate_t = r.last_tick = now_monotonic();

    bool own = !opts->probe && access(r.ckpt_path, F_OK) == 0;
    int resumed;
    if (opts->probe) {
        /* from the config's initialisation, as a fresh run starts: nothing to load */
    } else if (!opts->fresh && (resumed = resume(&r, err, errlen)) != 0) {
        if (resumed < 0)
            goto out;
        r.rate_step = r.c.step;
    } else if (opts->fork_from && !own) {
        /* a fork's first start: from its parent's kept checkpoint, or not at all */
        const char *why;
        char why_buf[512];
        if (!load_checkpoint_from(&r, opts->fork_from, true, &why, why_buf, sizeof why_buf)) {
            snprintf(err, errlen, "cannot fork from %s: %s", opts->fork_from, why ? why : "no such checkpoint");
            goto out;
        }
        if (copy_parent_metrics(&r, err, errlen) != 0)
            goto out;
        /* Killed before its own first checkpoint, it forks again: the same
         * start, the same numbers. */
        r.rate_step = r.c.step;
    } else if (r.c.step == 0 && !opts->fresh) {
        /* Nothing usable: the data source may have been touched by a refused
         * load, so reopen it from its seed. */
        data_close(r.data);
        r.data = data_open(cfg, opts->data_path, err, errlen);
        if (!r.data)
            goto out;
    }
    if (r.files && open_metrics(&r, r.c.step, err, errlen) != 0)
        goto out;
    emit(&r, RUN_EVENT_START, NAN, NAN, NAN, NAN, NAN, NULL);
    result = train_loop(&r, err, errlen);
out:;
    bool trained = r.metrics_fd >= 0;
    if (r.metrics_fd >= 0 && close(r.metrics_fd) != 0 && result == RUN_OK) {
        snprintf(err, errlen, "cannot write %s: %s", r.metrics_path, strerror(errno));
        result = RUN_FAILED;
    }
    if (trained) {
        /* the history as HF's trainer_state.json too, whenever training
         * stops: a failure to write it is told, not fatal */
        char herr[256];
        if (hf_write_trainer_state(opts->out_dir, cfg, herr, sizeof herr) != 0)
            notice(&r, "%s", herr);
        else if (result == RUN_OK)
            hf_cache_remove(opts->out_dir);   /* done: no stop to come, its room back */
    }
    if (r.data)
        data_close(r.data);
    model_free(r.model);
    free(r.opt_buf);
    optim_muon_free(r.opt.muon);
    free(r.data_state);
    free(r.ckpt_path);
    free(r.metrics_path);
    return result;
}

int runner_load_params(const run_config *cfg, const char *ckpt_path, float *params, size_t n,
                       char *err, size_t errlen)
{
    ckpt_file f;
    char why[512];
    int rc = ckpt_read(ckpt_path, 4 * n * sizeof(float) + ((size_t)1 << 20), &f, why, sizeof why);
    if (rc == -ENOENT) {
        snprintf(err, errlen, "no checkpoint at %s", ckpt_path);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    const ckpt_section *p = ckpt_find(&f, TAG_PARAMS);
    rc = -1;
    if (f.cfg_hash != cfg_hash(cfg))
        snprintf(err, errlen, "%s was written for a different config (config hash mismatch)", ckpt_path);
    else if (!p || p->len != n * sizeof(float))
        snprintf(err, errlen, "%s has no parameters of this model's size", ckpt_path);
    else {
        memcpy(params, p->data, p->len);
        rc = 0;
    }
    ckpt_close(&f);
    return rc;
}

/*
 * experiment_asha — an experiment's ASHA state, its record asha.jsonl and
 * the decisions it made.  See traind/experiment_asha.h.
 */
#include "traind/experiment_asha.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/json.h"
#include "traind/log.h"
#include "traind/util.h"

#define MAX_RECORD_BYTES (64u << 20)
#define MAX_METRICS_BYTES ((size_t)1 << 30)

typedef struct decision {
    asha_decision d;
    bool promotion;              /* a trial that had stopped, promoted by another's report */
} decision;

struct exp_asha {
    asha st;
    double eta;
    long min_steps, fork_step;
    size_t n_trials;
    decision *v;
    size_t n, cap;
};

exp_asha *exp_asha_new(double eta, long min_steps, long total_steps, long fork_step, size_t n_trials)
{
    exp_asha *a = xcalloc(1, sizeof *a);
    if (asha_init(&a->st, eta, min_steps, total_steps) < 0) {
        free(a);
        return NULL;
    }
    a->eta = eta;
    a->min_steps = min_steps;
    a->fork_step = fork_step;
    a->n_trials = n_trials;
    return a;
}

void exp_asha_free(exp_asha *a)
{
    if (!a)
        return;
    asha_free(&a->st);
    free(a->v);
    free(a);
}

int exp_asha_rung_at(const exp_asha *a, long step)
{
    return asha_rung_at(&a->st, step);
}

/* Trial k's record at rung, or NULL. */
static const asha_record *record_of(const exp_asha *a, size_t k, int rung)
{
    const asha_rung *r = &a->st.rungs[rung];
    for (size_t i = 0; i < r->n; i++)
        if (r->recs[i].trial == (int)k)
            return &r->recs[i];
    return NULL;
}

bool exp_asha_known(const exp_asha *a, size_t k, int rung)
{
    return rung >= 0 && rung < a->st.n_rungs && record_of(a, k, rung) != NULL;
}

bool exp_asha_promoted_last(const exp_asha *a, size_t k)
{
    for (int r = a->st.n_rungs; r-- > 0;) {
        const asha_record *x = record_of(a, k, r);
        if (x)
            return x->promoted;
    }
    return false;
}

long exp_asha_pause_at(const exp_asha *a, size_t k)
{
    int next = 0;
    for (int r = a->st.n_rungs; r-- > 0;) {
        const asha_record *x = record_of(a, k, r);
        if (x && x->promoted) {
            next = r + 1;
            break;
        }
    }
    for (; next < a->st.n_rungs; next++)
        if (a->st.rungs[next].step > a->fork_step)
            return a->st.rungs[next].step;
    return 0;
}

static void add_decision(exp_asha *a, const asha_decision *d, bool promotion)
{
    if (a->n == a->cap)
        a->v = xrealloc(a->v, (a->cap = a->cap ? 2 * a->cap : 32) * sizeof *a->v);
    a->v[a->n++] = (decision){*d, promotion};
}

void exp_asha_apply(exp_asha *a, size_t k, int rung, double metric, asha_decision *d, asha_decision *prom,
                    size_t *n_prom)
{
    bool known = exp_asha_known(a, k, rung);
    asha_report(&a->st, (int)k, rung, metric, d, prom, n_prom);
    if (known || rung < 0 || rung >= a->st.n_rungs)
        return;
    add_decision(a, d, false);
    if (*n_prom)
        add_decision(a, prom, true);
}

static void add_metric(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *exp_asha_decisions_json(const exp_asha *a, const char *const *jobs)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; a && i < a->n; i++) {
        const asha_decision *d = &a->v[i].d;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "trial", d->trial);
        const char *job = d->trial >= 0 && (size_t)d->trial < a->n_trials ? jobs[d->trial] : "";
        if (job && job[0])
            cJSON_AddStringToObject(o, "job", job);
        else
            cJSON_AddNullToObject(o, "job");
        cJSON_AddNumberToObject(o, "rung", d->rung);
        cJSON_AddNumberToObject(o, "step", (double)d->step);
        cJSON_AddStringToObject(o, "action", a->v[i].promotion ? "promote"
                                             : d->action == ASHA_CONTINUE ? "continue" : "stop");
        add_metric(o, "metric", d->metric);
        cJSON_AddNumberToObject(o, "rank", (double)d->rank);
        cJSON_AddNumberToObject(o, "n", (double)d->n);
        cJSON_AddNumberToObject(o, "quota", (double)d->quota);
        cJSON_AddStringToObject(o, "reason", d->reason);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

cJSON *exp_asha_json(const exp_asha *a)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "asha");
    cJSON_AddNumberToObject(o, "reduction_factor", a->eta);
    cJSON_AddNumberToObject(o, "min_steps", (double)a->min_steps);
    cJSON *rs = cJSON_AddArrayToObject(o, "rungs");
    for (int r = 0; r < a->st.n_rungs; r++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "step", (double)a->st.rungs[r].step);
        cJSON_AddNumberToObject(x, "reached", (double)asha_rung_count(&a->st, r));
        cJSON_AddNumberToObject(x, "promoted", (double)asha_rung_promoted(&a->st, r));
        cJSON_AddItemToArray(rs, x);
    }
    return o;
}

/* ------------------------------------------------------------- the record */

/* One line of asha.jsonl into (k, rung, metric); false when it is not a
 * report of one of this experiment's trials at one of its rungs. */
static bool parse_line(const exp_asha *a, const char *line, size_t len, size_t *k, int *rung, double *metric)
{
    cJSON *o = cJSON_ParseWithLength(line, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "trial"), *r = cJSON_GetObjectItemCaseSensitive(o, "rung"),
                *s = cJSON_GetObjectItemCaseSensitive(o, "step"), *m = cJSON_GetObjectItemCaseSensitive(o, "metric");
    bool ok = cJSON_IsObject(o) && cJSON_IsNumber(t) && cJSON_IsNumber(r) && cJSON_IsNumber(s) &&
              (cJSON_IsNumber(m) || cJSON_IsNull(m)) && t->valuedouble >= 0 &&
              t->valuedouble < (double)a->n_trials && t->valuedouble == floor(t->valuedouble) &&
              r->valuedouble >= 0 && r->valuedouble < a->st.n_rungs && r->valuedouble == floor(r->valuedouble) &&
              s->valuedouble == (double)a->st.rungs[(int)r->valuedouble].step;
    if (ok) {
        *k = (size_t)t->valuedouble;
        *rung = (int)r->valuedouble;
        *metric = cJSON_IsNumber(m) ? m->valuedouble : NAN;
    }
    cJSON_Delete(o);
    return ok;
}

int exp_asha_replay(exp_asha *a, const char *dir)
{
    char *path = xasprintf("%s/" EXP_ASHA_FILE, dir), *buf = NULL;
    size_t len = 0;
    int rc = read_file_flags(path, MAX_RECORD_BYTES, O_NOFOLLOW, &buf, &len);
    if (rc == -ENOENT) {
        free(path);
        return 0;
    }
    if (rc < 0) {
        free(path);
        return rc;
    }
    size_t whole = 0, n = 0, bad = 0;
    for (size_t off = 0; off < len;) {
        char *nl = memchr(buf + off, '\n', len - off);
        if (!nl)
            break;   /* torn: written in part by a daemon killed before it acted on it */
        size_t k;
        int rung;
        double metric;
        if (parse_line(a, buf + off, (size_t)(nl - buf) - off, &k, &rung, &metric)) {
            asha_decision d, p;
            size_t np;
            exp_asha_apply(a, k, rung, metric, &d, &p, &np);
            n++;
        } else {
            bad++;
        }
        off = (size_t)(nl - buf) + 1;
        whole = off;
    }
    if (bad)
        log_warn("%s: %zu line%s that are not reports of this experiment's trials at its rungs; skipped", path, bad,
                 bad == 1 ? "" : "s");
    if (whole < len) {
        log_warn("%s: its last line was cut short (a daemon killed while writing it); dropped", path);
        if (truncate(path, (off_t)whole) < 0)
            rc = -errno;
    }
    free(buf);
    free(path);
    (void)n;
    return rc < 0 ? rc : 0;
}

int exp_asha_record(const char *dir, size_t k, int rung, long step, double metric)
{
    char line[160];
    int n;
    if (isfinite(metric))
        n = snprintf(line, sizeof line, "{\"trial\":%zu,\"rung\":%d,\"step\":%ld,\"metric\":%.17g}\n", k, rung, step,
                     metric);
    else
        n = snprintf(line, sizeof line, "{\"trial\":%zu,\"rung\":%d,\"step\":%ld,\"metric\":null}\n", k, rung, step);
    if (n <= 0 || (size_t)n >= sizeof line)
        return -EOVERFLOW;
    char *path = xasprintf("%s/" EXP_ASHA_FILE, dir);
    bool existed = access(path, F_OK) == 0;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
    } else {
        struct stat st;
        off_t before = fstat(fd, &st) == 0 ? st.st_size : -1;
        ssize_t w = write(fd, line, (size_t)n);
        if (w != n) {
            rc = w < 0 ? -errno : -EIO;
            if (before >= 0 && ftruncate(fd, before) < 0)
                rc = rc ? rc : -errno;   /* replay drops a torn last line anyway */
        } else if (fsync(fd) < 0) {
            rc = -errno;
        }
        if (close(fd) < 0 && rc == 0)
            rc = -errno;
    }
    if (rc == 0 && !existed)
        rc = fsync_parent_dir(path);
    free(path);
    return rc;
}

/* The point at step among the lines of buf[0..len), searched from the end. */
static int find_point(const char *buf, size_t len, long step, bool eval, double *metric)
{
    char key[40];
    int kl = snprintf(key, sizeof key, "{\"step\":%ld,", step);
    size_t end = len;
    while (end > 0 && buf[end - 1] == '\n')
        end--;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && buf[start - 1] != '\n')
            start--;
        if (end - start > (size_t)kl && memcmp(buf + start, key, (size_t)kl) == 0) {
            cJSON *o = cJSON_ParseWithLength(buf + start, end - start);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, eval ? "eval_loss" : "loss_avg");
            int rc = cJSON_IsNumber(v) ? 0 : -ENODATA;
            if (rc == 0)
                *metric = v->valuedouble;
            cJSON_Delete(o);
            return rc;
        }
        end = start;
        while (end > 0 && buf[end - 1] == '\n')
            end--;
    }
    return -ENOENT;
}

int exp_asha_read_metric(const char *job_dir, long step, bool eval, double *metric)
{
    enum { TAIL = 64 * 1024 };
    char *path = xasprintf("%s/metrics.jsonl", job_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    int rc = fd < 0 ? -errno : fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : 0;
    if (rc == 0) {
        /* the trial paused right after the point: it is in the last few lines */
        size_t n = st.st_size > TAIL ? TAIL : (size_t)st.st_size;
        char *buf = xmalloc(n + 1);
        ssize_t got = pread(fd, buf, n, st.st_size - (off_t)n);
        if (got < 0) {
            rc = -errno;
        } else {
            size_t skip = 0;
            if ((off_t)n < st.st_size)   /* the chunk starts mid-line: that line is not looked at */
                while (skip < (size_t)got && buf[skip] != '\n')
                    skip++;
            rc = find_point(buf + skip, (size_t)got - skip, step, eval, metric);
        }
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    if (rc == -ENOENT && fd >= 0 && st.st_size > TAIL) {
        char *all = NULL;
        size_t len = 0;
        rc = read_file_flags(path, MAX_METRICS_BYTES, O_NOFOLLOW, &all, &len);
        if (rc == 0)
            rc = find_point(all, len, step, eval, metric);
        free(all);
    }
    free(path);
    return rc;
}

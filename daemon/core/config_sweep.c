/*
 * config_sweep — experiment files into trials.  See traind/sweep.h.
 *
 * The file is parsed once into a tree.  Each trial's tree is a copy of it
 * without `sweep`, with every swept key set to the trial's value node — a
 * copy of the node in the sweep section (grid, choice), or a new scalar
 * carrying the distribution's position (random draws) — and its name set to
 * "<name>-<k>"; where a type is swept (schedule.type, ...), the keys that
 * the trial's type does not use are dropped.  That tree goes through the run config's own validator
 * (cfg_validate_tree), so a trial is checked exactly as a submitted config
 * is, and because the value nodes keep their marks, an error in a swept
 * value points into the sweep section.  The error's path is then rewritten
 * to name the sweep entry, and every message names the trial's values; the
 * same problem in several trials is reported once.
 */
#include "traind/sweep.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "traind/rng.h"
#include "traind/util.h"
#include "traind/yamltree.h"

#define MAX_ERRORS 100
#define SWEEP_RNG_STREAM 0x7377656570ULL     /* "sweep": apart from the training streams */

static const char *const method_names[] = {"grid", "random"};
static const char *const metric_names[] = {"eval_loss", "loss_avg"};
static const char *const early_stop_names[] = {"asha"};

const char *sweep_method_name(sweep_method m) { return method_names[m]; }
const char *sweep_metric_name(sweep_metric m) { return metric_names[m]; }

static const cv_key sweep_keys[] = {
    {"method", 0}, {"metric", 0}, {"parameters", 0}, {"trials", CV_BIT(SWEEP_RANDOM)},
    {"seed", CV_BIT(SWEEP_RANDOM)}, {"max_concurrent", 0}, {"early_stop", 0}, {"fork_from", 0},
    {"predict", 0}, {NULL, 0}};
static const cv_key early_stop_keys[] = {
    {"type", 0}, {"reduction_factor", 0}, {"min_steps", 0}, {NULL, 0}};
static const cv_key fork_keys[] = {{"job", 0}, {"at_step", 0}, {NULL, 0}};
static const cv_key predict_keys[] = {{"law", 0}, {NULL, 0}};

bool sweep_fork_may_change(const char *path)
{
    static const char *const ok[] = {"optimizer.lr", "optimizer.weight_decay", "optimizer.betas",
                                     "optimizer.grad_clip", "train.log_every", "train.checkpoint_every",
                                     "train.eval_every", "train.keep_checkpoints", "train.keep_every",
                                     "train.keep_steps"};
    if (strncmp(path, "schedule.", 9) == 0)
        return true;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcmp(path, ok[i]) == 0)
            return true;
    return false;
}

bool sweep_is_experiment(const char *buf, size_t len)
{
    diag_list_t errs = DIAG_LIST_INIT;
    ynode *doc = ytree_parse(buf, len, &errs);
    bool yes = doc && ymap_get(doc, "sweep") != NULL;
    ytree_free(doc);
    diag_free(&errs);
    return yes;
}

/* ---- one parameter ------------------------------------------------------ */

typedef enum { DIST_LIST, DIST_LOG_UNIFORM, DIST_UNIFORM, DIST_INT_UNIFORM } dist_kind;
static const char *const dist_names[] = {"choice", "log_uniform", "uniform", "int_uniform"};

typedef struct param {
    const char *path;           /* the key as written (a node of the file's tree) */
    const ynode *at;            /* its value in the sweep section */
    dist_kind kind;
    const ynode *list;          /* DIST_LIST: the values */
    double lo, hi;              /* the distributions */
    char where[CV_PATH_MAX];    /* "sweep.parameters.optimizer.lr" */
} param;

/* A value's text for messages and the trial table: a scalar as written, a
 * list of scalars as "[a, b]", anything else as "{...}". */
static char *value_text(const ynode *n)
{
    if (n->kind == YNODE_SCALAR)
        return xstrdup(n->value);
    if (n->kind == YNODE_MAP)
        return xstrdup("{...}");
    size_t len = 3;
    for (size_t i = 0; i < n->n; i++)
        len += (n->items[i]->kind == YNODE_SCALAR ? n->items[i]->len : 5) + 2;
    char *out = xmalloc(len);
    char *p = out;
    *p++ = '[';
    for (size_t i = 0; i < n->n; i++) {
        const char *t = n->items[i]->kind == YNODE_SCALAR ? n->items[i]->value : "{...}";
        p += sprintf(p, "%s%s", i ? ", " : "", t);
    }
    strcpy(p, "]");
    return out;
}

/* Reads parameters.<path>: a list (grid values, or random choices) or, for
 * random, a one-key distribution mapping. */
static bool read_param(diag_list_t *errs, const ynode *key, const ynode *v, sweep_method method, param *p)
{
    memset(p, 0, sizeof *p);
    p->path = key->value;
    p->at = v;
    cv_path_key(p->where, "sweep.parameters", key->value);
    char hint[128];
    if (!cfg_key_path_known(key->value, hint, sizeof hint)) {
        if (hint[0])
            cv_error(errs, p->where, key, "unknown config key '%s' (did you mean '%s'?)", key->value, hint);
        else
            cv_error(errs, p->where, key, "unknown config key '%s': a parameter is a key path such as "
                     "optimizer.lr or schedule.type", key->value);
        return false;
    }
    if (strcmp(key->value, "name") == 0) {
        cv_error(errs, p->where, key, "the name is not swept: each trial is named <name>-<k>");
        return false;
    }
    if (v->kind == YNODE_SEQ) {
        if (!cv_list(errs, v, p->where, 1, SWEEP_DEFAULT_MAX_TRIALS))
            return false;
        p->kind = DIST_LIST;
        p->list = v;
        return true;
    }
    if (v->kind != YNODE_MAP || v->n != 1) {
        char got[160];
        cv_error(errs, p->where, v, "must be a list of values%s, got %s",
                 method == SWEEP_RANDOM ? " or one of {log_uniform|uniform|int_uniform: [lo, hi]}, "
                                          "{choice: [...]}" : "",
                 cv_describe(v, got, sizeof got));
        return false;
    }
    const char *dist = v->keys[0]->value;
    const ynode *arg = v->items[0];
    int kind = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(dist, dist_names[i]) == 0)
            kind = i;
    char where[CV_PATH_MAX];
    cv_path_key(where, p->where, dist);
    if (kind < 0) {
        cv_error(errs, where, v->keys[0], "unknown distribution '%s' (log_uniform, uniform, "
                 "int_uniform or choice)", dist);
        return false;
    }
    if (method == SWEEP_GRID) {
        cv_error(errs, where, v->keys[0], "a grid sweeps lists of values; %s needs method: random", dist);
        return false;
    }
    if (kind == DIST_LIST) {
        if (!cv_list(errs, arg, where, 1, SWEEP_DEFAULT_MAX_TRIALS))
            return false;
        p->kind = DIST_LIST;
        p->list = arg;
        return true;
    }
    p->kind = (dist_kind)kind;
    if (!cv_list(errs, arg, where, 2, 2))
        return false;
    char w0[CV_PATH_MAX], w1[CV_PATH_MAX];
    cv_path_index(w0, where, 0);
    cv_path_index(w1, where, 1);
    if (kind == DIST_INT_UNIFORM) {
        long long a, b;
        if (cv_int(errs, arg->items[0], w0, -(1LL << 53), 1LL << 53, &a) != CV_OK ||
            cv_int(errs, arg->items[1], w1, -(1LL << 53), 1LL << 53, &b) != CV_OK)
            return false;
        p->lo = (double)a;
        p->hi = (double)b;
    } else {
        cv_range any = {-INFINITY, INFINITY, false, false};
        cv_range pos = {0, INFINITY, true, false};
        cv_range r = kind == DIST_LOG_UNIFORM ? pos : any;
        if (cv_num(errs, arg->items[0], w0, r, &p->lo) != CV_OK || cv_num(errs, arg->items[1], w1, r, &p->hi) != CV_OK)
            return false;
    }
    if (!(p->lo <= p->hi)) {
        cv_error(errs, where, arg, "needs lo <= hi, got [%.17g, %.17g]", p->lo, p->hi);
        return false;
    }
    return true;
}

/* One draw of a distribution as a new scalar at the distribution's place. */
static ynode *draw(const param *p, rng_t *r, size_t *list_index)
{
    char buf[64];
    *list_index = 0;
    switch (p->kind) {
    case DIST_LIST:
        *list_index = (size_t)rng_below(r, p->list->n);
        return ytree_clone(p->list->items[*list_index]);
    case DIST_LOG_UNIFORM:
        snprintf(buf, sizeof buf, "%.17g", exp(log(p->lo) + rng_uniform(r) * (log(p->hi) - log(p->lo))));
        break;
    case DIST_UNIFORM:
        snprintf(buf, sizeof buf, "%.17g", p->lo + rng_uniform(r) * (p->hi - p->lo));
        break;
    case DIST_INT_UNIFORM:
        snprintf(buf, sizeof buf, "%lld", (long long)p->lo + (long long)rng_below(r, (uint64_t)(p->hi - p->lo) + 1));
        break;
    }
    return yscalar_new(buf, true, p->at->line, p->at->column);
}

/* ---- a trial ------------------------------------------------------------- */

/* Sets the swept key in the trial's tree. */
static bool set_path(ynode *doc, const char *path, ynode *value, diag_list_t *errs, const param *p)
{
    if (ytree_set_path(doc, path, value) == 0)
        return true;
    cv_error(errs, p->where, p->at, "cannot set %s: its section in the config is not a mapping", path);
    return false;
}

/* "schedule.type=linear, optimizer.lr=3.0e-3" */
static char *trial_label(const sweep *s, const sweep_trial *t)
{
    size_t len = 1;
    for (size_t i = 0; i < s->n_params; i++)
        len += strlen(s->params[i]) + strlen(t->values[i]) + 3;
    char *out = xmalloc(len);
    out[0] = '\0';
    for (size_t i = 0; i < s->n_params; i++) {
        if (i)
            strcat(out, ", ");
        strcat(out, s->params[i]);
        strcat(out, "=");
        strcat(out, t->values[i]);
    }
    return out;
}

static bool already_reported(const diag_list_t *errs, size_t from, const char *path, int line, int col,
                             const char *tail)
{
    for (size_t i = from; i < errs->n; i++) {
        const diag_t *d = &errs->items[i];
        const char *m = strstr(d->message, "): ");
        if (d->line == line && d->column == col && !strcmp(d->path, path) && m && !strcmp(m + 3, tail))
            return true;
    }
    return false;
}

/* Moves a trial's errors into errs: a problem in a swept value is named by
 * its sweep entry (value_index: which list item, or -1 for a drawn value). */
static void report_trial(diag_list_t *errs, size_t first_trial_error, const diag_list_t *terrs,
                         const sweep *s, size_t k, const param *ps, const long *value_index)
{
    char *label = trial_label(s, &s->trials[k]);
    for (size_t e = 0; e < terrs->n; e++) {
        const diag_t *d = &terrs->items[e];
        char path[2 * CV_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s", d->path);
        for (size_t i = 0; i < s->n_params; i++) {
            size_t pl = strlen(ps[i].path);
            if (strncmp(d->path, ps[i].path, pl) == 0 && (d->path[pl] == '\0' || d->path[pl] == '[' ||
                                                          d->path[pl] == '.')) {
                if (value_index[i] >= 0)
                    snprintf(path, sizeof path, "%s[%ld]%s", ps[i].where, value_index[i], d->path + pl);
                else
                    snprintf(path, sizeof path, "%s%s", ps[i].where, d->path + pl);
                break;
            }
        }
        if (already_reported(errs, first_trial_error, path, d->line, d->column, d->message))
            continue;
        diag_add(errs, path, d->line, d->column, "trial %zu (%s): %s", k + 1, label, d->message);
    }
    free(label);
}

/* ---- the sweep section ---------------------------------------------------- */

static void read_early_stop(const cv_section *sw, sweep *s)
{
    cv_section es;
    cv_section_open(&es, sw, "early_stop");
    if (!es.map)
        return;
    int type = 0;
    cv_check_keys(&es, early_stop_keys, -1, NULL, NULL);
    cv_get_enum(&es, "type", true, early_stop_names, 1, &type);
    s->asha = true;
    s->reduction_factor = 3;
    cv_get_num(&es, "reduction_factor", false, (cv_range){2, 1e6, false, false}, &s->reduction_factor);
    long long min_steps = 0;
    if (cv_get_int(&es, "min_steps", true, 1, 1000000000, &min_steps) == CV_OK)
        s->min_steps = (long)min_steps;
}

static void read_fork_from(const cv_section *sw, sweep *s)
{
    cv_section f;
    cv_section_open(&f, sw, "fork_from");
    if (!f.map)
        return;
    cv_check_keys(&f, fork_keys, -1, NULL, NULL);
    const char *job = NULL;
    const ynode *jn = cv_get(&f, "job");
    if (!jn)
        cv_missing(&f, "job", "the job to fork from");
    else if (cv_str(f.errs, jn, "sweep.fork_from.job", 48, &job) == CV_OK) {
        for (const char *c = job; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                  *c == '.' || *c == '_' || *c == '-')) {
                cv_error(f.errs, "sweep.fork_from.job", jn, "'%s' is not a job id ([A-Za-z0-9._-], "
                         "at most 48 characters)", job);
                job = NULL;
                break;
            }
        if (job)
            s->fork_job = xstrdup(job);
    }
    long long at = 0;
    if (cv_get_int(&f, "at_step", true, 0, 1000000000, &at) == CV_OK)
        s->fork_step = (long)at;
}

/* sweep.predict: {law: ID}.  Only the id's form is checked here; that the
 * law exists is the daemon's to say (it knows its spool: exps_check). */
static void read_predict(const cv_section *sw, sweep *s)
{
    cv_section p;
    cv_section_open(&p, sw, "predict");
    if (!p.map)
        return;
    cv_check_keys(&p, predict_keys, -1, NULL, NULL);
    const char *law = NULL;
    const ynode *ln = cv_get(&p, "law");
    if (!ln)
        cv_missing(&p, "law", "the id of a fitted law (POST /laws)");
    else if (cv_str(p.errs, ln, "sweep.predict.law", 48, &law) == CV_OK) {
        bool ok = law[0] && law[0] != '.';   /* spool_id_valid's rule (a proto function: not reachable here) */
        for (const char *c = law; ok && *c; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                 *c == '_' || *c == '-';
        if (!ok)
            cv_error(p.errs, "sweep.predict.law", ln, "'%s' is not a law id ([A-Za-z0-9._-], at most 48 "
                     "characters, not starting with '.')", law);
        else
            s->predict_law = xstrdup(law);
    }
}

/* Grid: the number of combinations, or 0 past max (reported). */
static size_t grid_size(diag_list_t *errs, const ynode *where, const param *ps, size_t n, size_t max)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        if (ps[i].list->n > max / total) {
            cv_error(errs, "sweep.parameters", where, "the grid has more than %zu trials (the daemon's "
                     "max_trials)", max);
            return 0;
        }
        total *= ps[i].list->n;
    }
    return total;
}

static void check_trial_against_sweep(diag_list_t *errs, const sweep *s, const cv_section *sw, size_t k)
{
    const run_config *c = &s->trials[k].cfg;
    if (s->metric == SWEEP_EVAL_LOSS && !(c->data.eval_fraction > 0)) {
        const ynode *m = cv_get(sw, "metric");
        cv_error(errs, "sweep.metric", m ? m : sw->at, "trial %zu: metric eval_loss needs an eval split "
                 "(data.eval_fraction > 0), or use metric: loss_avg", k + 1);
    }
    if (s->asha && s->min_steps >= c->sched.total_steps) {
        const ynode *es = cv_get(sw, "early_stop");
        cv_error(errs, "sweep.early_stop.min_steps", es ? es : sw->at, "trial %zu: the first rung (%ld) "
                 "must come before the end of training (total_steps %ld)", k + 1, s->min_steps,
                 c->sched.total_steps);
    }
    if (s->fork_job && s->fork_step > c->sched.total_steps) {
        const ynode *f = cv_get(sw, "fork_from");
        cv_error(errs, "sweep.fork_from.at_step", f ? f : sw->at, "trial %zu: at_step %ld is past its "
                 "total_steps %ld", k + 1, s->fork_step, c->sched.total_steps);
    }
}

static int cmp_step(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* An ASHA trial logs, evaluates and keeps its checkpoint at every rung
 * below its total_steps (traind/asha.h): its train.keep_steps become the
 * union of its own and the rungs, and the trial is validated again with
 * them.  0, or -1 with the problem in errs (*cfg then zeroed). */
static int add_rung_steps(ynode *tree, const sweep *s, const cfg_parse_opts *po, run_config *cfg,
                          diag_list_t *errs)
{
    long steps[2 * CFG_MAX_KEEP_STEPS + 1];
    size_t n = 0;
    for (int i = 0; i < cfg->train.n_keep_steps; i++)
        steps[n++] = cfg->train.keep_steps[i];
    for (double rung = (double)s->min_steps; rung < (double)cfg->sched.total_steps && n < 2 * CFG_MAX_KEEP_STEPS;
         rung *= s->reduction_factor)
        steps[n++] = (long)rung;
    qsort(steps, n, sizeof *steps, cmp_step);
    size_t m = 0;
    for (size_t k = 0; k < n; k++)
        if (m == 0 || steps[m - 1] != steps[k])
            steps[m++] = steps[k];
    n = m;
    size_t cap = 16 + 24 * n, len = 0;
    char *flow = xmalloc(cap);
    len += (size_t)snprintf(flow, cap, "[");
    for (size_t k = 0; k < n; k++)
        len += (size_t)snprintf(flow + len, cap - len, "%s%ld", k ? ", " : "", steps[k]);
    snprintf(flow + len, cap - len, "]");
    diag_list_t perr = DIAG_LIST_INIT;
    ynode *seq = ytree_parse(flow, strlen(flow), &perr);
    free(flow);
    diag_free(&perr);
    const ynode *es = ymap_get(tree, "train");
    if (!seq || ytree_set_path(tree, "train.keep_steps", seq) != 0) {
        diag_add(errs, "sweep.early_stop", es ? es->line : 0, es ? es->column : 0,
                 "cannot set train.keep_steps to the rungs: train is not a mapping");
        cfg_free(cfg);
        memset(cfg, 0, sizeof *cfg);
        return -1;
    }
    cfg_free(cfg);
    return cfg_validate_tree(tree, po, cfg, errs);
}

/* The nodes of a tree (keys counted): what cloning it for one trial costs. */
static size_t tree_nodes(const ynode *n)
{
    size_t count = 1;
    if (n->kind != YNODE_SCALAR)
        for (size_t i = 0; i < n->n; i++)
            count += tree_nodes(n->items[i]) + (n->kind == YNODE_MAP ? 1 : 0);
    return count;
}

/* Each trial is the whole file cloned and validated: trials × its nodes is
 * the work a sweep asks for, bounded by SWEEP_MAX_WORK (traind-run.yaml(5))
 * whatever max_trials allows.  False (reported) past it. */
static bool work_bounded(diag_list_t *errs, const ynode *doc, const cv_section *sw, size_t n)
{
    const ynode *sweep_node = ymap_get(doc, "sweep");   /* read once, not cloned per trial */
    size_t nodes = tree_nodes(doc) - (sweep_node ? tree_nodes(sweep_node) + 1 : 0);
    if (nodes <= SWEEP_MAX_WORK / n)
        return true;
    cv_error(errs, "sweep", sw->at, "%zu trials of a %zu-node config is too much work: trials × nodes must be at "
             "most %d (fewer trials, or a smaller config)", n, nodes, SWEEP_MAX_WORK);
    return false;
}

static int expand(const ynode *doc, const cv_section *sw, const param *ps, const sweep_opts *opts,
                  sweep *s, diag_list_t *errs)
{
    size_t max = opts->max_trials ? opts->max_trials : SWEEP_DEFAULT_MAX_TRIALS;
    size_t n;
    long long trials = 0;
    if (s->method == SWEEP_GRID) {
        if (!(n = grid_size(errs, cv_get(sw, "parameters"), ps, s->n_params, max)))
            return -1;
    } else {
        if (cv_get_int(sw, "trials", true, 1, (long long)max, &trials) != CV_OK)
            return -1;
        n = (size_t)trials;
    }
    if (!work_bounded(errs, doc, sw, n))
        return -1;
    /* each trial is named <name>-<k> (k zero-padded to the width of n), a
     * job name of at most CFG_NAME_MAX: a name too long for that is the
     * experiment's problem, said once at its name key (it was said of
     * every trial); one from the file's stem is cut to fit */
    int width = snprintf(NULL, 0, "%zu", n);
    size_t name_max = (size_t)CFG_NAME_MAX - 1 - (size_t)width, nl = strlen(s->name);
    if (nl > name_max) {
        const ynode *nm = ymap_get(doc, "name");
        if (nm) {
            cv_error(errs, "name", nm, "must be at most %zu characters long for %zu trials (each trial is "
                     "named <name>-<k>, at most %d characters), got %zu", name_max, n, CFG_NAME_MAX, nl);
            return -1;
        }
        size_t cut = name_max;
        while (cut > 0 && ((unsigned char)s->name[cut] & 0xC0) == 0x80)
            cut--;   /* not inside a UTF-8 sequence */
        s->name[cut] = '\0';
    }
    ynode *base = ytree_clone(doc);
    ymap_delete(base, "sweep");
    rng_t rng;
    rng_seed(&rng, s->seed, SWEEP_RNG_STREAM);
    s->trials = xcalloc(n, sizeof *s->trials);
    long value_index[SWEEP_MAX_PARAMS];
    size_t before = errs->n;
    for (size_t k = 0; k < n && errs->n - before < MAX_ERRORS; k++) {
        sweep_trial *t = &s->trials[k];
        s->n_trials = k + 1;
        t->values = xcalloc(s->n_params, sizeof *t->values);
        ynode *tree = ytree_clone(base);
        size_t rest = k;     /* grid: k in mixed radix, the last parameter fastest */
        ynode *vals[SWEEP_MAX_PARAMS];
        for (size_t i = s->n_params; i-- > 0;) {
            if (s->method == SWEEP_GRID) {
                size_t m = ps[i].list->n;
                value_index[i] = (long)(rest % m);
                rest /= m;
                vals[i] = ytree_clone(ps[i].list->items[value_index[i]]);
            }
        }
        if (s->method == SWEEP_RANDOM)
            for (size_t i = 0; i < s->n_params; i++) {
                size_t li;
                vals[i] = draw(&ps[i], &rng, &li);
                value_index[i] = ps[i].kind == DIST_LIST ? (long)li : -1;
            }
        bool ok = true;
        for (size_t i = 0; i < s->n_params; i++) {
            t->values[i] = value_text(vals[i]);
            ok = set_path(tree, ps[i].path, vals[i], errs, &ps[i]) && ok;
        }
        /* A swept type or kind: keys of the base meant for the other
         * trials' types are dropped from this one (not reported). */
        static const char *const discriminators[][2] = {
            {"model.type", "model"}, {"data.kind", "data"}, {"optimizer.type", "optimizer"},
            {"schedule.type", "schedule"}};
        for (size_t i = 0; i < s->n_params; i++)
            for (size_t d = 0; d < 4; d++)
                if (!strcmp(ps[i].path, discriminators[d][0]))
                    cfg_prune_keys_for_type(tree, discriminators[d][1]);
        char name[256];
        snprintf(name, sizeof name, "%s-%0*zu", s->name, width, k + 1);
        ymap_put(tree, "name", yscalar_new(name, false, tree->line, tree->column));
        diag_list_t terrs = DIAG_LIST_INIT;
        if (ok && cfg_validate_tree(tree, &opts->cfg, &t->cfg, &terrs) == 0 &&
            (!s->asha || add_rung_steps(tree, s, &opts->cfg, &t->cfg, &terrs) == 0)) {
            t->yaml = ytree_emit(tree);
            check_trial_against_sweep(errs, s, sw, k);
        } else {
            report_trial(errs, before, &terrs, s, k, ps, value_index);
        }
        diag_free(&terrs);
        ytree_free(tree);
    }
    ytree_free(base);
    return errs->n == before ? 0 : -1;
}

static int read_sweep(const ynode *doc, const sweep_opts *opts, sweep *s, diag_list_t *errs)
{
    cv_section root, sw;
    cv_section_root(&root, errs, doc);
    cv_section_open(&sw, &root, "sweep");
    if (!sw.map) {
        if (!sw.invalid)
            cv_error(errs, "sweep", ymap_get(doc, "sweep"), "must be a mapping with method and parameters");
        return -1;
    }
    size_t before = errs->n;
    int method = 0;
    cv_get_enum(&sw, "method", true, method_names, 2, &method);
    s->method = (sweep_method)method;
    cv_check_keys(&sw, sweep_keys, method, method_names, "sweep method");
    const ynode *data = ymap_get(doc, "data");
    const ynode *ef = data ? ymap_get(data, "eval_fraction") : NULL;
    int metric = ef ? SWEEP_EVAL_LOSS : SWEEP_LOSS_AVG;
    cv_get_enum(&sw, "metric", false, metric_names, 2, &metric);
    s->metric = (sweep_metric)metric;
    long long seed = 0, maxc = 0;
    if (cv_get_int(&sw, "seed", false, 0, (1LL << 53) - 1, &seed) == CV_OK)
        s->seed = (unsigned long long)seed;
    if (cv_get_int(&sw, "max_concurrent", false, 1, 1000000, &maxc) == CV_OK)
        s->max_concurrent = (long)maxc;
    read_early_stop(&sw, s);
    read_fork_from(&sw, s);
    read_predict(&sw, s);

    const ynode *pm = cv_get(&sw, "parameters");
    param ps[SWEEP_MAX_PARAMS];
    if (!pm) {
        cv_missing(&sw, "parameters", "the keys to sweep");
    } else if (pm->kind != YNODE_MAP || pm->n == 0) {
        cv_error(errs, "sweep.parameters", pm, "must be a mapping of config keys to values to try");
    } else if (pm->n > SWEEP_MAX_PARAMS) {
        cv_error(errs, "sweep.parameters", pm, "at most %d parameters, got %zu", SWEEP_MAX_PARAMS, pm->n);
    } else {
        s->params = xcalloc(pm->n, sizeof *s->params);
        for (size_t i = 0; i < pm->n; i++) {
            if (!read_param(errs, pm->keys[i], pm->items[i], s->method, &ps[s->n_params]))
                continue;
            if (s->fork_job && !sweep_fork_may_change(pm->keys[i]->value))
                cv_error(errs, ps[s->n_params].where, pm->keys[i], "a fork_from sweep changes only the "
                         "schedule, optimizer lr/weight_decay/betas/grad_clip and the train cadences; "
                         "%s would change the run it branches from", pm->keys[i]->value);
            s->params[s->n_params] = xstrdup(pm->keys[i]->value);
            s->n_params++;
        }
    }
    if (errs->n != before)
        return -1;
    return expand(doc, &sw, ps, opts, s, errs);
}

int sweep_parse(const char *buf, size_t len, const sweep_opts *opts, sweep *out, diag_list_t *errs)
{
    memset(out, 0, sizeof *out);
    sweep_opts o = opts ? *opts : (sweep_opts){0};
    size_t before = errs->n;
    ynode *doc = ytree_parse(buf, len, errs);
    if (!doc)
        return -1;
    int rc = -1;
    if (doc->kind != YNODE_MAP || !ymap_get(doc, "sweep")) {
        cv_error(errs, "", doc, "not an experiment: it has no top-level sweep section");
    } else {
        const ynode *nm = ymap_get(doc, "name");
        const char *name = NULL;
        if (nm && cv_str(errs, nm, "name", CFG_NAME_MAX - 2, &name) != CV_OK)   /* room for "-1" */
            name = NULL;
        out->name = xstrdup(name ? name : o.cfg.default_name ? o.cfg.default_name : "experiment");
        rc = read_sweep(doc, &o, out, errs);
    }
    ytree_free(doc);
    if (rc != 0 || errs->n != before) {
        if (errs->n - before > MAX_ERRORS) {
            size_t n = errs->n - before;
            for (size_t i = before + MAX_ERRORS - 1; i < errs->n; i++) {
                free(errs->items[i].path);
                free(errs->items[i].message);
            }
            errs->n = before + MAX_ERRORS - 1;
            diag_add(errs, "", 0, 0, "%zu more problems not listed", n - (MAX_ERRORS - 1));
        }
        sweep_free(out);
        return -1;
    }
    return 0;
}

int sweep_load_file(const char *path, const sweep_opts *opts, sweep *out, diag_list_t *errs)
{
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    int rc = read_file(path, CFG_MAX_FILE_BYTES, &buf, &len);
    if (rc < 0) {
        diag_add(errs, "", 0, 0, rc == -EFBIG ? "file is larger than 1 MiB" : "cannot read %s: %s", path,
                 strerror(-rc));
        return -1;
    }
    sweep_opts o = opts ? *opts : (sweep_opts){0};
    char *stem = NULL;
    if (!o.cfg.default_name) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        const char *dot = strrchr(base, '.');
        stem = dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml")) ? xstrndup(base, (size_t)(dot - base))
                                                                       : xstrdup(base);
        o.cfg.default_name = stem;
    }
    rc = sweep_parse(buf, len, &o, out, errs);
    free(stem);
    free(buf);
    return rc;
}

char *sweep_trial_label(const sweep *s, size_t k)
{
    size_t len = 1;
    for (size_t i = 0; i < s->n_params; i++)
        len += strlen(s->params[i]) + strlen(s->trials[k].values[i]) + 3;
    char *out = xmalloc(len);
    out[0] = '\0';
    for (size_t i = 0; i < s->n_params; i++)
        sprintf(out + strlen(out), "%s%s=%s", i ? " " : "", s->params[i], s->trials[k].values[i]);
    return out;
}

void sweep_free(sweep *s)
{
    if (!s)
        return;
    for (size_t k = 0; k < s->n_trials; k++) {
        sweep_trial *t = &s->trials[k];
        for (size_t i = 0; t->values && i < s->n_params; i++)
            free(t->values[i]);
        free(t->values);
        cfg_free(&t->cfg);
        free(t->yaml);
    }
    free(s->trials);
    for (size_t i = 0; i < s->n_params; i++)
        free(s->params[i]);
    free(s->params);
    free(s->name);
    free(s->fork_job);
    free(s->predict_law);
    memset(s, 0, sizeof *s);
}

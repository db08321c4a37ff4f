/*
 * trainctl compare ID|EXPERIMENT ... [--json] [--log]: which run won, and by
 * how much, on a terminal of 80 to 120 columns (cli_term_width).
 *
 * The results come first, a row per run: final loss, best eval loss and its
 * step, steps and wall time.  Then the config keys that differ between the
 * runs — only keys some run's own config.yaml sets (config_keys of GET /jobs/ID),
 * not defaults that follow from them — a column per key under the shortest
 * suffix of its path that no other key shares (never a cut that could be
 * two keys); when those columns would not fit the terminal, transposed: a
 * row per key, a column per run.  Then the loss and lr curves overlaid in
 * terminal plots as wide as the terminal (one glyph and colour each, as
 * `trainctl schedule` draws a sweep), on a log scale with --log or when a
 * curve spans more than two decades.  The curves come from GET /compare
 * (aligned on one step grid), the rest from the job objects; an EXPERIMENT
 * stands for its trials, best first.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "traind/util.h"

enum { PLOT_H = 14, PLOT_W_MIN = 20, PLOT_W_MAX = 160, MAX_RUNS = 32 };

/* Auto log scale past this ratio of the largest to the smallest value. */
#define LOG_SPAN 100.0

typedef struct run {
    char *id;
    cJSON *job;
    cJSON *flat;         /* config key path -> value text */
    cJSON *set;          /* key paths its config.yaml sets -> true; NULL when unknown */
} run;

/* The keys run r's own config.yaml sets, from its job object's
 * `config_keys` (GET /jobs/{id}, traind(8)), as keys of an object; NULL
 * when the daemon does not say (an older traind, or a config it could not
 * read). */
static cJSON *own_keys(const cJSON *job)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(job, "config_keys"), *k;
    if (!cJSON_IsArray(keys))
        return NULL;
    cJSON *out = cJSON_CreateObject();
    cJSON_ArrayForEach(k, keys)
        if (cJSON_IsString(k) && !cJSON_GetObjectItemCaseSensitive(out, k->valuestring))
            cJSON_AddTrueToObject(out, k->valuestring);
    return out;
}

/* Flattens a config object into "a.b" -> printed value. */
static void flatten(const cJSON *o, const char *prefix, cJSON *out)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, o) {
        char *key = prefix[0] ? xasprintf("%s.%s", prefix, e->string) : xstrdup(e->string);
        if (cJSON_IsObject(e)) {
            flatten(e, key, out);
        } else if (cJSON_IsString(e)) {   /* a string as itself: cosine, not "cosine" */
            if (strcmp(key, "name") != 0)
                cJSON_AddStringToObject(out, key, e->valuestring);
        } else {
            char *v = cJSON_PrintUnformatted(e);
            cJSON_AddStringToObject(out, key, v ? v : "?");
            free(v);
        }
        free(key);
    }
}

static const char *flat_get(const run *r, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->flat, k);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static double parse_utc(const cJSON *v)
{
    return cJSON_IsString(v) ? cli_parse_utc(v->valuestring) : 0;
}

static double wall_s(const cJSON *job)
{
    double a = parse_utc(cJSON_GetObjectItemCaseSensitive(job, "started_at"));
    double b = parse_utc(cJSON_GetObjectItemCaseSensitive(job, "finished_at"));
    if (a <= 0)
        return NAN;
    return (b > 0 ? b : (double)time(NULL)) - a;
}

/* Where v falls on the y axis of [lo, hi], 0..1 (log: of log10). */
static double y_frac(double v, double lo, double hi, bool log_y)
{
    if (log_y) {
        v = log10(v);
        lo = log10(lo);
        hi = log10(hi);
    }
    return hi > lo ? (v - lo) / (hi - lo) : 0;
}

static void plot(const char *title, const cJSON *cmp, const char *series, size_t n, bool colour, bool force_log,
                 int width)
{
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(cmp, "steps");
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(cmp, "jobs");
    int g = cJSON_GetArraySize(steps);
    if (g == 0)
        return;
    /* the range of every value, and of the positive ones (a log axis has no 0) */
    double lo = INFINITY, hi = -INFINITY, plo = INFINITY;
    for (size_t k = 0; k < n; k++) {
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(jobs, (int)k), series)) {
            if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
                lo = fmin(lo, v->valuedouble);
                hi = fmax(hi, v->valuedouble);
                if (v->valuedouble > 0)
                    plo = fmin(plo, v->valuedouble);
            }
        }
    }
    if (!(hi >= lo))
        return;
    /* log when asked or when the curves span more than two decades, and
     * only where there is something positive to draw */
    bool log_y = hi > 0 && isfinite(plo) && (force_log || (lo > 0 && hi / lo > LOG_SPAN));
    if (log_y)
        lo = plo;
    /* the label column (10) and " |" take 12 */
    int pw = width - 13;
    pw = pw < PLOT_W_MIN ? PLOT_W_MIN : pw > PLOT_W_MAX ? PLOT_W_MAX : pw;
    int *grid = xmalloc(sizeof *grid * (size_t)PLOT_H * (size_t)pw);
    for (int i = 0; i < PLOT_H * pw; i++)
        grid[i] = -1;
    for (size_t k = 0; k < n; k++) {
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(jobs, (int)k), series);
        for (int col = 0; col < pw; col++) {
            int i = g == 1 ? 0 : (int)((double)col * (g - 1) / (pw - 1) + 0.5);
            const cJSON *v = cJSON_GetArrayItem(vals, i);
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || (log_y && v->valuedouble <= 0))
                continue;
            int row = (int)(y_frac(v->valuedouble, lo, hi, log_y) * (PLOT_H - 1) + 0.5);
            grid[row * pw + col] = (int)k;
        }
    }
    printf("\n%s\n", title);
    char top[32], bottom[32];
    snprintf(top, sizeof top, "%10.4g", hi);
    snprintf(bottom, sizeof bottom, "%10.4g", lo);
    cli_plot_grid(grid, PLOT_H, pw, top, bottom, colour);
    free(grid);
    long first = (long)cJSON_GetArrayItem(steps, 0)->valuedouble;
    long last = (long)cJSON_GetArrayItem(steps, g - 1)->valuedouble;
    char a[32];
    int al = snprintf(a, sizeof a, "%ld", first);
    printf("\n%10s  %s%*ld\n", "", a, pw - al, last);
    if (log_y)
        printf("%10s  (log scale)\n", "");
}

/* The shortest dotted suffix of diff[i] that no other key in diff ends
 * with: "warmup_steps" for schedule.warmup_steps unless another section has
 * a warmup_steps too, then the whole path. */
static const char *short_key(const cJSON *diff, const char *key)
{
    const char *cand = key + strlen(key);
    for (;;) {
        while (cand > key && cand[-1] != '.')
            cand--;
        bool clash = false;
        const cJSON *d;
        cJSON_ArrayForEach(d, diff) {
            const char *o = d->valuestring;
            size_t ol = strlen(o), cl = strlen(cand);
            if (o != key && strcmp(o, key) != 0 && ol >= cl && !strcmp(o + ol - cl, cand) &&
                (ol == cl || o[ol - cl - 1] == '.'))
                clash = true;
        }
        if (!clash || cand == key)
            return cand;
        cand--;   /* past the '.', to take one more component */
    }
}

static int max_i(int a, int b)
{
    return a > b ? a : b;
}

/* "12.3456" in at most 10 characters, or "-". */
static void fmt_num(char *buf, size_t len, double v, const char *f)
{
    if (isfinite(v))
        snprintf(buf, len, f, v);
    else
        snprintf(buf, len, "-");
}

/* The results, a row per run; an id too long for the line gets a line of
 * its own (never cut: two runs may differ only at the end). */
static void print_results(const run *runs, size_t n, const cJSON *cjobs, bool colour, int width)
{
    enum { NUMS = 11 + 11 + 9 + 9 + 9 };   /* " %10s" x2, " %8s" x3 */
    int idw = 3;
    for (size_t k = 0; k < n; k++)
        idw = max_i(idw, (int)strlen(runs[k].id));
    int room = width - 5 - NUMS;   /* "NN * " before the id */
    bool wrap = idw > room;
    if (wrap)
        idw = room < 3 ? 3 : room;
    printf("     %-*s %10s %10s %8s %8s %8s\n", idw, "run", "final loss", "best eval", "at step", "steps", "wall");
    for (size_t k = 0; k < n; k++) {
        const cJSON *c = cJSON_GetArrayItem(cjobs, (int)k);
        printf("%2zu ", k + 1);
        cli_plot_mark((int)k, colour);
        if ((int)strlen(runs[k].id) > idw)
            printf(" %s\n     %-*s", runs[k].id, idw, "");
        else
            printf(" %-*s", idw, runs[k].id);
        char fl[32], be[32], bs[32], st[32], wall[32] = "-";
        fmt_num(fl, sizeof fl, num(c, "final_loss"), "%.5g");
        fmt_num(be, sizeof be, num(c, "best_eval_loss"), "%.5g");
        fmt_num(bs, sizeof bs, isfinite(num(c, "best_eval_loss")) ? num(c, "best_eval_step") : NAN, "%.0f");
        fmt_num(st, sizeof st, num(runs[k].job, "step"), "%.0f");
        double ws = wall_s(runs[k].job);
        if (isfinite(ws))
            cli_format_duration(ws, wall, sizeof wall);
        printf(" %10s %10s %8s %8s %8s\n", fl, be, bs, st, wall);
    }
}

/* The differing keys: a column each under its short name when the line
 * fits width, else a row each (the full path) and a column per run. */
static void print_params(const run *runs, size_t n, const cJSON *diff, bool colour, int width, bool own_known)
{
    int nd = cJSON_GetArraySize(diff);
    if (nd == 0) {
        printf("\nno config key%s differs\n", own_known ? " set in the runs' configs" : "");
        return;
    }
    printf("\nconfig keys that differ%s:\n", own_known ? " (set in the runs' own configs)" : "");
    int idw = 3;
    for (size_t k = 0; k < n; k++)
        idw = max_i(idw, (int)strlen(runs[k].id));
    int *cw = xcalloc((size_t)nd, sizeof *cw);
    int line = 5 + idw, i = 0;   /* "NN * " and the id */
    const cJSON *e;
    cJSON_ArrayForEach(e, diff) {
        cw[i] = (int)strlen(short_key(diff, e->valuestring));
        for (size_t k = 0; k < n; k++)
            cw[i] = max_i(cw[i], (int)strlen(flat_get(&runs[k], e->valuestring)));
        line += 1 + cw[i++];
    }
    if (line <= width) {
        printf("     %-*s", idw, "run");   /* under the id: rows start "NN * " */
        i = 0;
        cJSON_ArrayForEach(e, diff) {
            printf(" %-*s", e->next ? cw[i] : 0, short_key(diff, e->valuestring));
            i++;
        }
        putchar('\n');
        for (size_t k = 0; k < n; k++) {
            printf("%2zu ", k + 1);
            cli_plot_mark((int)k, colour);
            printf(" %-*s", idw, runs[k].id);
            i = 0;
            cJSON_ArrayForEach(e, diff) {
                /* the last column unpadded: no trailing blanks */
                int w = e->next ? cw[i] : 0;
                printf(" %-*s", w, flat_get(&runs[k], e->valuestring));
                i++;
            }
            putchar('\n');
        }
        free(cw);
        return;
    }
    free(cw);
    /* transposed: a row per key; runs as columns headed by their number
     * and glyph (the results above name them), as many as fit, then the
     * next runs in another block */
    int kw = 0;
    cJSON_ArrayForEach(e, diff) kw = max_i(kw, (int)strlen(e->valuestring));
    for (size_t from = 0; from < n;) {
        size_t to = from;
        int used = kw;
        int rw[MAX_RUNS];
        while (to < n) {
            int w = 4;   /* "12 *" */
            cJSON_ArrayForEach(e, diff) w = max_i(w, (int)strlen(flat_get(&runs[to], e->valuestring)));
            if (to > from && used + 2 + w > width)
                break;
            rw[to - from] = w;
            used += 2 + w;
            to++;
        }
        printf("%-*s", kw, "");
        for (size_t k = from; k < to; k++) {
            printf("  %2zu ", k + 1);
            cli_plot_mark((int)k, colour);
            printf("%*s", rw[k - from] - 4, "");
        }
        putchar('\n');
        cJSON_ArrayForEach(e, diff) {
            printf("%-*s", kw, e->valuestring);
            for (size_t k = from; k < to; k++)
                printf("  %-*s", k + 1 < to ? rw[k - from] : 0, flat_get(&runs[k], e->valuestring));
            putchar('\n');
        }
        from = to;
        if (from < n)
            putchar('\n');
    }
}

int cmd_compare(int n_args, char **args, bool json, bool log_y, cli_get_fn get, void *ctx)
{
    run runs[MAX_RUNS];
    size_t n = 0;
    int ret = EXIT_FAIL;
    for (int a = 0; a < n_args; a++) {
        char *path = cli_job_path(args[a], "");
        long st;
        char *body = NULL;
        int rc = get(ctx, path, &body, &st);
        free(path);
        if (rc)
            return rc;
        cJSON *o = body ? cli_json_parse(body) : NULL;
        free(body);
        if (st == 200 && o) {
            if (n == MAX_RUNS) {
                fprintf(stderr, "trainctl compare: at most %d runs\n", MAX_RUNS);
                cJSON_Delete(o);
                goto out;
            }
            runs[n++] = (run){xstrdup(args[a]), o, NULL, NULL};
            continue;
        }
        cJSON_Delete(o);
        char *e = cli_escape(args[a]);
        path = xasprintf("/experiments/%s", e);
        free(e);
        rc = get(ctx, path, &body, &st);
        free(path);
        if (rc)
            goto out;
        o = body ? cli_json_parse(body) : NULL;
        free(body);
        if (st != 200 || !o) {
            fprintf(stderr, "trainctl compare: %s: no such job or experiment\n", args[a]);
            cJSON_Delete(o);
            goto out;
        }
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(o, "trials")) {
            const cJSON *jid = cJSON_GetObjectItemCaseSensitive(t, "job");
            if (!cJSON_IsString(jid) || n == MAX_RUNS)
                continue;
            char *jp = cli_job_path(jid->valuestring, "");
            char *jb = NULL;
            long js;
            rc = get(ctx, jp, &jb, &js);
            free(jp);
            cJSON *job = js == 200 && jb ? cli_json_parse(jb) : NULL;
            free(jb);
            if (rc || !job) {
                cJSON_Delete(job);
                continue;
            }
            runs[n++] = (run){xstrdup(jid->valuestring), job, NULL, NULL};
        }
        cJSON_Delete(o);
    }
    if (n == 0) {
        fprintf(stderr, "trainctl compare: nothing to compare\n");
        goto out;
    }
    /* the aligned curves */
    size_t qlen = 64;
    for (size_t k = 0; k < n; k++)
        qlen += strlen(runs[k].id) * 3 + 1;
    char *q = xmalloc(qlen), *w = q;
    w += sprintf(w, "/compare?max=%d&ids=", PLOT_W_MAX * 4);
    for (size_t k = 0; k < n; k++) {
        char *e = cli_escape(runs[k].id);
        w += sprintf(w, "%s%s", k ? "," : "", e);
        free(e);
    }
    char *body = NULL;
    long st;
    int rc = get(ctx, q, &body, &st);
    free(q);
    if (rc) {
        ret = rc;
        goto out;
    }
    cJSON *cmp = body && st == 200 ? cli_json_parse(body) : NULL;
    free(body);
    if (!cmp) {
        fprintf(stderr, "trainctl compare: GET /compare answered %ld\n", st);
        goto out;
    }
    /* the config keys that differ, among those some run's own config sets
     * (when the daemon serves the configs as submitted) */
    bool own_known = true;
    for (size_t k = 0; k < n; k++) {
        runs[k].flat = cJSON_CreateObject();
        flatten(cJSON_GetObjectItemCaseSensitive(runs[k].job, "config"), "", runs[k].flat);
        runs[k].set = own_keys(runs[k].job);
        own_known &= runs[k].set != NULL;
    }
    cJSON *diff = cJSON_CreateArray();
    const cJSON *e;
    for (size_t k = 0; k < n; k++)
        cJSON_ArrayForEach(e, runs[k].flat) {
            bool listed = false;
            const cJSON *d;
            cJSON_ArrayForEach(d, diff) listed |= !strcmp(d->valuestring, e->string);
            if (listed)
                continue;
            bool own = !own_known;
            for (size_t j = 0; j < n && !own; j++)
                own = cJSON_GetObjectItemCaseSensitive(runs[j].set, e->string) != NULL;
            for (size_t j = 0; j < n && own; j++)
                if (strcmp(flat_get(&runs[j], e->string), e->valuestring) != 0) {
                    cJSON_AddItemToArray(diff, cJSON_CreateString(e->string));
                    break;
                }
        }
    const cJSON *cjobs = cJSON_GetObjectItemCaseSensitive(cmp, "jobs");
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "runs");
        for (size_t k = 0; k < n; k++) {
            const cJSON *c = cJSON_GetArrayItem(cjobs, (int)k);
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "id", runs[k].id);
            cJSON *p = cJSON_AddObjectToObject(r, "params");
            cJSON_ArrayForEach(e, diff) {
                cJSON *v = cli_json_parse(flat_get(&runs[k], e->valuestring));
                cJSON_AddItemToObject(p, e->valuestring, v ? v : cJSON_CreateNull());
            }
            cJSON_AddItemToObject(r, "final_loss", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "final_loss"), 1));
            cJSON_AddItemToObject(r, "best_eval_loss",
                                  cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "best_eval_loss"), 1));
            cJSON_AddItemToObject(r, "best_eval_step",
                                  cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "best_eval_step"), 1));
            cJSON_AddNumberToObject(r, "steps", num(runs[k].job, "step"));
            double ws = wall_s(runs[k].job);
            if (isfinite(ws))
                cJSON_AddNumberToObject(r, "wall_s", ws);
            else
                cJSON_AddNullToObject(r, "wall_s");
            cJSON_AddItemToArray(arr, r);
        }
        cJSON_AddItemToObject(o, "series", cJSON_Duplicate(cmp, 1));
        char *s = cJSON_PrintUnformatted(o);
        puts(s ? s : "{}");
        free(s);
        cJSON_Delete(o);
    } else {
        bool colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
        int width = cli_term_width();
        print_results(runs, n, cjobs, colour, width);
        print_params(runs, n, diff, colour, width, own_known);
        plot("loss", cmp, "loss", n, colour, log_y, width);
        plot("lr", cmp, "lr", n, colour, log_y, width);
    }
    cJSON_Delete(diff);
    cJSON_Delete(cmp);
    ret = EXIT_OK;
out:
    for (size_t k = 0; k < n; k++) {
        free(runs[k].id);
        cJSON_Delete(runs[k].job);
        cJSON_Delete(runs[k].flat);
        cJSON_Delete(runs[k].set);
    }
    return ret;
}

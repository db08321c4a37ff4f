/*
 * trainctl compare ID|EXPERIMENT ... [--json]: which run won, and by how
 * much.  A table of the config keys that differ between the runs, final
 * loss, best eval loss and its step, steps and wall time; then the loss
 * curves, and the lr curves, overlaid in terminal plots (one glyph and
 * colour each, as `trainctl schedule` draws a sweep).  The curves come from
 * GET /compare (aligned on one step grid), the rest from the job objects;
 * an EXPERIMENT stands for its trials, best first.
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

enum { PLOT_W = 64, PLOT_H = 14, MAX_RUNS = 32 };

typedef struct run {
    char *id;
    cJSON *job;
    cJSON *flat;         /* config key path -> value text */
} run;

/* Flattens a config object into "a.b" -> printed value. */
static void flatten(const cJSON *o, const char *prefix, cJSON *out)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, o) {
        char *key = prefix[0] ? xasprintf("%s.%s", prefix, e->string) : xstrdup(e->string);
        if (cJSON_IsObject(e)) {
            flatten(e, key, out);
        } else if (strcmp(key, "name") != 0) {
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

static void plot(const char *title, const cJSON *cmp, const char *series, size_t n, bool colour)
{
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(cmp, "steps");
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(cmp, "jobs");
    int g = cJSON_GetArraySize(steps);
    if (g == 0)
        return;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < n; k++) {
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(jobs, (int)k), series)) {
            if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
                lo = fmin(lo, v->valuedouble);
                hi = fmax(hi, v->valuedouble);
            }
        }
    }
    if (!(hi >= lo))
        return;
    int grid[PLOT_H][PLOT_W];
    for (int r = 0; r < PLOT_H; r++)
        for (int c = 0; c < PLOT_W; c++)
            grid[r][c] = -1;
    for (size_t k = 0; k < n; k++) {
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(jobs, (int)k), series);
        for (int col = 0; col < PLOT_W; col++) {
            int i = g == 1 ? 0 : (int)((double)col * (g - 1) / (PLOT_W - 1) + 0.5);
            const cJSON *v = cJSON_GetArrayItem(vals, i);
            if (!cJSON_IsNumber(v))
                continue;
            int row = hi > lo ? (int)((v->valuedouble - lo) / (hi - lo) * (PLOT_H - 1) + 0.5) : 0;
            grid[row][col] = (int)k;
        }
    }
    printf("\n%s\n", title);
    char top[32], bottom[32];
    snprintf(top, sizeof top, "%10.4g", hi);
    snprintf(bottom, sizeof bottom, "%10.4g", lo);
    cli_plot_grid(&grid[0][0], PLOT_H, PLOT_W, top, bottom, colour);
    long first = (long)cJSON_GetArrayItem(steps, 0)->valuedouble;
    long last = (long)cJSON_GetArrayItem(steps, g - 1)->valuedouble;
    printf("\n%10s  %-*ld%ld\n", "", PLOT_W - 8, first, last);
}

int cmd_compare(int n_args, char **args, bool json, cli_get_fn get, void *ctx)
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
        cJSON *o = body ? cJSON_Parse(body) : NULL;
        free(body);
        if (st == 200 && o) {
            if (n == MAX_RUNS) {
                fprintf(stderr, "trainctl compare: at most %d runs\n", MAX_RUNS);
                cJSON_Delete(o);
                goto out;
            }
            runs[n++] = (run){xstrdup(args[a]), o, NULL};
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
        o = body ? cJSON_Parse(body) : NULL;
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
            cJSON *job = js == 200 && jb ? cJSON_Parse(jb) : NULL;
            free(jb);
            if (rc || !job) {
                cJSON_Delete(job);
                continue;
            }
            runs[n++] = (run){xstrdup(jid->valuestring), job, NULL};
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
    w += sprintf(w, "/compare?max=%d&ids=", PLOT_W * 4);
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
    cJSON *cmp = body && st == 200 ? cJSON_Parse(body) : NULL;
    free(body);
    if (!cmp) {
        fprintf(stderr, "trainctl compare: GET /compare answered %ld\n", st);
        goto out;
    }
    /* the config keys that differ */
    for (size_t k = 0; k < n; k++) {
        runs[k].flat = cJSON_CreateObject();
        flatten(cJSON_GetObjectItemCaseSensitive(runs[k].job, "config"), "", runs[k].flat);
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
            for (size_t j = 0; j < n; j++)
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
                cJSON *v = cJSON_Parse(flat_get(&runs[k], e->valuestring));
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
        printf("   %-28s", "run");
        cJSON_ArrayForEach(e, diff) printf(" %-16.16s", e->valuestring);
        printf(" %12s %12s %8s %8s %8s\n", "final loss", "best eval", "at step", "steps", "wall");
        for (size_t k = 0; k < n; k++) {
            const cJSON *c = cJSON_GetArrayItem(cjobs, (int)k);
            putchar(' ');
            cli_plot_mark((int)k, colour);
            printf(" %-28.28s", runs[k].id);
            cJSON_ArrayForEach(e, diff) printf(" %-16.16s", flat_get(&runs[k], e->valuestring));
            double fl = num(c, "final_loss"), be = num(c, "best_eval_loss"), bs = num(c, "best_eval_step");
            char wall[32] = "-";
            double ws = wall_s(runs[k].job);
            if (isfinite(ws))
                cli_format_duration(ws, wall, sizeof wall);
            printf(" %12.6g", fl);
            if (isfinite(be))
                printf(" %12.6g %8.0f", be, bs);
            else
                printf(" %12s %8s", "-", "-");
            printf(" %8.0f %8s\n", num(runs[k].job, "step"), wall);
        }
        plot("loss", cmp, "loss", n, colour);
        plot("lr", cmp, "lr", n, colour);
    }
    cJSON_Delete(diff);
    cJSON_Delete(cmp);
    ret = EXIT_OK;
out:
    for (size_t k = 0; k < n; k++) {
        free(runs[k].id);
        cJSON_Delete(runs[k].job);
        cJSON_Delete(runs[k].flat);
    }
    return ret;
}

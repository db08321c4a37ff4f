/*
 * trainctl on experiment files (a run config with a `sweep:` section, see
 * traind/sweep.h): `validate` expands and checks every trial, `schedule`
 * plots every distinct schedule of the sweep, one curve and glyph each (or
 * prints them as JSON).
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "traind/sched_curve.h"
#include "traind/schedule.h"
#include "traind/dconfig.h"
#include "traind/intake.h"
#include "traind/sweep.h"
#include "traind/util.h"

/* data.path of every trial resolved as `trainctl run` would take it (the
 * config's folder); each distinct problem printed once.  0 ok, -1 not. */
static int check_data_paths(const char *path, const sweep *s)
{
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    diag_list_t errs = DIAG_LIST_INIT;
    for (size_t k = 0; k < s->n_trials; k++) {
        const run_config *c = &s->trials[k].cfg;
        if (!c->data.path)
            continue;
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = s->trials[j].cfg.data.path && !strcmp(s->trials[j].cfg.data.path, c->data.path);
        if (seen)
            continue;
        free(cfg_resolve_data_path(c, dir, NULL, 0, &errs));
    }
    free(copy);
    if (errs.n) {
        diag_print(stderr, path, &errs);
        cli_data_path_note(path, s->n_trials ? s->trials[0].cfg.data.path : NULL, &errs, NULL);
        diag_free(&errs);
        return -1;
    }
    return 0;
}

static void print_summary(const char *path, const sweep *s)
{
    printf("%s: ok (experiment %s: %s of %zu trials over ", path, s->name, sweep_method_name(s->method),
           s->n_trials);
    for (size_t i = 0; i < s->n_params; i++)
        printf("%s%s", i ? ", " : "", s->params[i]);
    printf("; metric %s", sweep_metric_name(s->metric));
    if (s->asha)
        printf("; asha, reduction factor %g, first rung at step %ld", s->reduction_factor, s->min_steps);
    if (s->fork_job)
        printf("; forked from %s at step %ld", s->fork_job, s->fork_step);
    puts(")");
}

int cli_validate_experiment(const char *path, const struct dconfig *dc)
{
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    sweep_opts o = {.max_trials = SWEEP_DEFAULT_MAX_TRIALS};
    if (dc)
        o.cfg.max_model_bytes = dc->max_model_memory;
    if (sweep_load_file(path, &o, &s, &errs) != 0) {
        diag_print(stderr, path, &errs);
        diag_free(&errs);
        return -1;
    }
    int rc = 0;
    if (!dc) {
        rc = check_data_paths(path, &s);
    } else {
        /* each trial exactly as that daemon's intake would take its config.yaml */
        for (size_t k = 0; k < s.n_trials && rc == 0; k++) {
            const sweep_trial *t = &s.trials[k];
            run_config cfg;
            char *data_path = NULL;
            intake_limits lim = {dc->data_dirs, dc->n_data_dirs, dc->max_model_memory};
            if (intake_validate(t->yaml, strlen(t->yaml), t->cfg.name, &lim, &cfg, &data_path, &errs) != 0) {
                fprintf(stderr, "%s: trial %zu (%s):\n", path, k + 1, t->cfg.name);
                diag_print(stderr, path, &errs);
                cli_data_path_note(path, t->cfg.data.path, &errs, dc);
                diag_free(&errs);
                rc = -1;
                continue;
            }
            free(data_path);
            cfg_free(&cfg);
        }
    }
    if (rc == 0) {
        print_summary(path, &s);
        fflush(stdout);
        for (size_t k = 0; k < s.n_trials; k++) {   /* warnings (cfg_warnings) do not fail it */
            diag_list_t warns = DIAG_LIST_INIT;
            cfg_warnings(&s.trials[k].cfg, &warns);
            if (warns.n)
                fprintf(stderr, "%s: trial %zu (%s):\n", path, k + 1, s.trials[k].cfg.name);
            diag_print(stderr, path, &warns);
            diag_free(&warns);
        }
    }
    sweep_free(&s);
    return rc;
}

/* ---- schedule ------------------------------------------------------------ */

enum { PLOT_W = 64, PLOT_H = 16 };

static void plot(const sweep *s, const sched_curve *cv, size_t n, bool colour)
{
    long T = 0;
    double hi = 0;
    for (size_t c = 0; c < n; c++) {
        if (cv[c].total_steps > T)
            T = cv[c].total_steps;
        for (long i = 0; i < cv[c].total_steps; i++)
            if (cv[c].lr[i] > hi)
                hi = cv[c].lr[i];
    }
    /* grid[row][col]: the curve drawn there (the later one wins a shared cell) */
    static int grid[PLOT_H][PLOT_W];
    for (int r = 0; r < PLOT_H; r++)
        for (int c = 0; c < PLOT_W; c++)
            grid[r][c] = -1;
    for (size_t c = 0; c < n; c++)
        for (int col = 0; col < PLOT_W; col++) {
            long step = (long)((double)col * T / PLOT_W);
            if (step >= cv[c].total_steps)
                continue;
            double v = cv[c].lr[step];
            int row = hi > 0 ? (int)(v / hi * (PLOT_H - 1) + 0.5) : 0;
            grid[row][col] = (int)c;
        }
    printf("%s: %zu distinct schedules of %zu trials, %ld steps, peak lr %.4g\n", s->name, n, s->n_trials, T, hi);
    char top[32], bottom[32];
    snprintf(top, sizeof top, "%10.3e", hi);
    snprintf(bottom, sizeof bottom, "%10.3e", 0.0);
    cli_plot_grid(&grid[0][0], PLOT_H, PLOT_W, top, bottom, colour);
    printf("\n%10s  0%*ld\n", "", PLOT_W - 1, T - 1);
    for (size_t c = 0; c < n; c++) {
        char *l = sweep_trial_label(s, cv[c].trial);
        printf("  ");
        cli_plot_mark((int)c, colour);
        printf(" %s (%s)\n", s->trials[cv[c].trial].cfg.name, l);
        free(l);
    }
}

static void print_json(const sweep *s, const sched_curve *cv, size_t n)
{
    putchar('[');
    for (size_t c = 0; c < n; c++) {
        const sweep_trial *t = &s->trials[cv[c].trial];
        printf("%s{\"trial\": %zu, \"name\": \"%s\", \"params\": {", c ? ", " : "", cv[c].trial + 1, t->cfg.name);
        for (size_t i = 0; i < s->n_params; i++) {
            /* values are YAML text: given as strings, not reinterpreted */
            printf("%s\"%s\": \"", i ? ", " : "", s->params[i]);
            for (const char *p = t->values[i]; *p; p++)
                printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
            putchar('"');
        }
        printf("}, \"lr\": [");
        for (size_t i = 0; i < cv[c].n; i++)
            printf(i ? ", %.17g" : "%.17g", cv[c].lr[i]);
        printf("]}");
    }
    puts("]");
}

int cli_schedule_experiment(const char *path, bool json)
{
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    if (sweep_load_file(path, NULL, &s, &errs) != 0) {
        diag_print(stderr, path, &errs);
        diag_free(&errs);
        return EXIT_FAIL;
    }
    /* every step of every distinct schedule */
    const run_config **cfgs = xcalloc(s.n_trials ? s.n_trials : 1, sizeof *cfgs);
    for (size_t k = 0; k < s.n_trials; k++)
        cfgs[k] = &s.trials[k].cfg;
    sched_curve *cv = xcalloc(s.n_trials ? s.n_trials : 1, sizeof *cv);
    size_t n = sched_curves_distinct(cfgs, s.n_trials, 0, cv);
    free(cfgs);
    if (json)
        print_json(&s, cv, n);
    else
        plot(&s, cv, n, isatty(STDOUT_FILENO) && !getenv("NO_COLOR"));
    for (size_t c = 0; c < n; c++)
        sched_curve_free(&cv[c]);
    free(cv);
    sweep_free(&s);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

bool cli_is_experiment(const char *path)
{
    char *buf;
    size_t len;
    if (read_file(path, CFG_MAX_FILE_BYTES, &buf, &len) != 0)
        return false;
    bool yes = sweep_is_experiment(buf, len);
    free(buf);
    return yes;
}

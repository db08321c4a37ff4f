/*
 * trainctl lr-find — the LR range test (traind/lrfind.h) of a config, in
 * the foreground: the smoothed loss against the lr as a terminal plot
 * (log x) with the suggestion (valley rule) and the steepest point marked,
 * or with --json {"suggestion", "steepest", "points": [[lr, loss], ...], ...}.
 * Nothing is written unless --out FILE asks for the JSON in a file.
 * SIGINT/SIGTERM end the sweep early: what was found so far is printed.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "traind/lrfind.h"
#include "traind/util.h"

enum { PLOT_H = 16 };

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

static const char *end_text(lrfind_end e)
{
    switch (e) {
    case LRFIND_END_DIVERGED: return "stopped: the smoothed loss went over 4x its best";
    case LRFIND_END_NOT_FINITE: return "stopped: the loss or gradient became NaN or Inf";
    case LRFIND_END_STOPPED: return "stopped by a signal";
    default: return "every step trained";
    }
}

/* The curve (glyph 0) against log10 lr, the suggestion (1) and the
 * steepest point (2) drawn over it. */
static void plot(const lrfind_result *res, bool colour)
{
    int w = cli_term_width() - 12;
    double x0 = log10(res->lr[0]), x1 = log10(res->lr[res->n - 1]);
    double lo = INFINITY, hi = -INFINITY;
    /* The y range leaves out the last 5 points, as fastai's plot_lr_find
     * (skip_end=5) does, so that the blow-up does not flatten the rest;
     * points above it are drawn on the top row. */
    size_t ny = res->n > 10 ? res->n - 5 : res->n;
    for (size_t i = 0; i < ny; i++) {
        if (res->loss[i] < lo)
            lo = res->loss[i];
        if (res->loss[i] > hi)
            hi = res->loss[i];
    }
    if (hi <= lo)
        hi = lo + 1;
    if (x1 <= x0)
        x1 = x0 + 1;
    int *grid = xmalloc((size_t)(w * PLOT_H) * sizeof *grid);
    for (int i = 0; i < w * PLOT_H; i++)
        grid[i] = -1;
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < res->n; i++) {
            long mark = pass == 1 ? res->suggestion : pass == 2 ? res->steepest : (long)i;
            if (mark != (long)i)
                continue;
            int c = (int)lround((log10(res->lr[i]) - x0) / (x1 - x0) * (w - 1));
            double y = res->loss[i] < hi ? res->loss[i] : hi;
            int r = (int)lround((y - lo) / (hi - lo) * (PLOT_H - 1));
            grid[r * w + c] = pass;
        }
    }
    char top[32], bottom[32];
    snprintf(top, sizeof top, "%.4g", hi);
    snprintf(bottom, sizeof bottom, "%.4g", lo);
    cli_plot_grid(grid, PLOT_H, w, top, bottom, colour);
    free(grid);
    char left[32], right[32];
    snprintf(left, sizeof left, "%.0e", res->lr[0]);
    snprintf(right, sizeof right, "%.2e", res->lr[res->n - 1]);
    printf("\n%10s  %s%*s  (lr, log scale)\n", "", left, w - (int)strlen(left), right);
    fputs("smoothed loss ", stdout);
    cli_plot_mark(0, colour);
    fputs("   suggestion (valley) ", stdout);
    cli_plot_mark(1, colour);
    fputs("   steepest ", stdout);
    cli_plot_mark(2, colour);
    putchar('\n');
}

static void print_point(const char *label, const lrfind_result *res, long i)
{
    if (i < 0)
        printf("%-22s none (too few points: the first steps/10 and the last 5 are not considered)\n", label);
    else
        printf("%-22s lr %.3e  (smoothed loss %.5g at step %ld)\n", label, res->lr[i], res->loss[i], i + 1);
}

static int parse_double(const char *opt, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end || !isfinite(v) || v <= 0) {
        fprintf(stderr, "trainctl lr-find: %s must be a positive number, got '%s'\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_lrfind(int argc, char **argv)
{
    const char *config = NULL, *out = NULL;
    lrfind_opts o = {LRFIND_DEFAULT_START, LRFIND_DEFAULT_END, LRFIND_DEFAULT_STEPS};
    int threads = 0;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--start") && i + 1 < argc) {
            if (parse_double("--start", argv[++i], &o.start) != 0)
                return EXIT_USAGE;
        } else if (!strcmp(argv[i], "--end") && i + 1 < argc) {
            if (parse_double("--end", argv[++i], &o.end) != 0)
                return EXIT_USAGE;
        } else if ((!strcmp(argv[i], "--steps") || !strcmp(argv[i], "--threads")) && i + 1 < argc) {
            const char *opt = argv[i];
            char *end;
            long v = strtol(argv[++i], &end, 10);
            bool steps = !strcmp(opt, "--steps");
            long max = steps ? LRFIND_MAX_STEPS : 256, min = steps ? LRFIND_MIN_STEPS : 1;
            if (*argv[i] == '\0' || *end || v < min || v > max) {
                fprintf(stderr, "trainctl lr-find: %s must be %ld..%ld, got '%s'\n", opt, min, max, argv[i]);
                return EXIT_USAGE;
            }
            if (steps)
                o.steps = v;
            else
                threads = (int)v;
        } else if (argv[i][0] == '-' || config) {
            fprintf(stderr, "trainctl lr-find: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else
            config = argv[i];
    }
    if (!config) {
        fprintf(stderr, "usage: trainctl lr-find CONFIG [--start LR] [--end LR] [--steps N] [--threads N] "
                        "[--json] [--out FILE]\n");
        return EXIT_USAGE;
    }
    char err[512];
    if (lrfind_check_opts(&o, err, sizeof err) != 0) {
        fprintf(stderr, "trainctl lr-find: %s\n", err);
        return EXIT_USAGE;
    }
    run_config cfg;
    char *data_path;
    if (cli_load_config(config, &cfg, &data_path) != 0)
        return EXIT_FAIL;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    lrfind_result res;
    int code = EXIT_OK;
    /* one process: a config's parallel.ranks does not apply (the batch is trained whole) */
    if (lrfind_run(&cfg, &o, data_path, threads ? threads : cfg.threads, &g_stop, &res, err, sizeof err) != 0) {
        fprintf(stderr, "%s: lr-find failed: %s\n", cfg.name, err);
        code = EXIT_FAIL;
        goto done;
    }
    char *text = lrfind_json(&res, &o);
    if (!text) {
        fprintf(stderr, "%s: out of memory\n", cfg.name);
        code = EXIT_FAIL;
    } else if (out && write_file_atomic(out, text, strlen(text), 0644) != 0) {
        fprintf(stderr, "%s: cannot write %s\n", cfg.name, out);
        code = EXIT_FAIL;
    }
    if (json) {
        if (text)
            puts(text);
    } else {
        printf("%s: lr range test, %zu of %ld steps from %.3g to %.3g (%s)\n", cfg.name, res.n, o.steps,
               o.start, o.end, end_text(res.end));
        if (res.n > 0)
            plot(&res, isatty(STDOUT_FILENO) && !getenv("NO_COLOR"));
        print_point("suggestion (valley):", &res, res.suggestion);
        print_point("steepest:", &res, res.steepest);
        puts("note: for pre-training this brackets the peak lr; the best peak still depends on the schedule "
             "(warmup, decay) and the horizon (total_steps).");
    }
    free(text);
    lrfind_free(&res);
    if (code == EXIT_OK && fflush(stdout) != 0)
        code = EXIT_FAIL;
done:
    free(data_path);
    cfg_free(&cfg);
    return code;
}

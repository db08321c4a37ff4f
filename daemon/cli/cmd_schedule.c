/*
 * trainctl schedule — the lr of every step of a config's schedule, without
 * training: a terminal plot, or with --json an array of total_steps numbers
 * (printed with 17 significant digits, so they round-trip exactly).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "traind/schedule.h"
#include "traind/util.h"

enum { PLOT_W = 64, PLOT_H = 16 };

static void plot(const run_config *cfg)
{
    const sched_cfg *s = &cfg->sched;
    long T = s->total_steps;
    double col_lr[PLOT_W];
    double hi = 0;
    /* Each column shows the largest lr of the steps it covers, so spikes show. */
    for (int c = 0; c < PLOT_W; c++) {
        long a = (long)((double)c * T / PLOT_W), b = (long)((double)(c + 1) * T / PLOT_W);
        if (b <= a)
            b = a + 1;
        if (a >= T)
            a = T - 1;
        double m = 0;
        for (long i = a; i < b && i < T; i++) {
            double lr = sched_lr(s, cfg->optim.lr, i);
            if (lr > m)
                m = lr;
        }
        col_lr[c] = m;
        if (m > hi)
            hi = m;
    }
    printf("%s: %s schedule, %ld steps, warmup %ld, peak lr %.4g\n", cfg->name,
           sched_type_name(s->type), T, s->warmup_steps, cfg->optim.lr);
    for (int row = PLOT_H - 1; row >= 0; row--) {
        double level = hi * (row + 0.5) / PLOT_H;
        if (row == PLOT_H - 1)
            printf("%10.3e |", hi);
        else if (row == 0)
            printf("%10.3e |", 0.0);
        else
            printf("%10s |", "");
        for (int c = 0; c < PLOT_W; c++)
            putchar(col_lr[c] >= level && col_lr[c] > 0 ? '*' : ' ');
        putchar('\n');
    }
    printf("%10s +", "");
    for (int c = 0; c < PLOT_W; c++)
        putchar('-');
    printf("\n%10s  0%*ld\n", "", PLOT_W - 1, T - 1);
    printf("lr at step 0: %.6g, step %ld: %.6g, step %ld: %.6g\n", sched_lr(s, cfg->optim.lr, 0),
           T / 2, sched_lr(s, cfg->optim.lr, T / 2), T - 1, sched_lr(s, cfg->optim.lr, T - 1));
}

int cmd_schedule(int argc, char **argv)
{
    const char *config = NULL;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (argv[i][0] == '-' || config) {
            fprintf(stderr, "trainctl schedule: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else
            config = argv[i];
    }
    if (!config) {
        fprintf(stderr, "usage: trainctl schedule CONFIG [--json]\n");
        return EXIT_USAGE;
    }
    if (cli_is_experiment(config))
        return cli_schedule_experiment(config, json);
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    /* The schedule needs no data: validate the config alone. */
    if (cfg_load_file(config, NULL, &cfg, &errs) != 0) {
        diag_print(stderr, config, &errs);
        diag_free(&errs);
        return EXIT_FAIL;
    }
    if (json) {
        putchar('[');
        for (long i = 0; i < cfg.sched.total_steps; i++)
            printf(i ? ", %.17g" : "%.17g", sched_lr(&cfg.sched, cfg.optim.lr, i));
        puts("]");
    } else {
        plot(&cfg);
    }
    cfg_free(&cfg);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/*
 * trainctl run — train one config in the foreground.  A progress bar on a
 * terminal (plain lines otherwise); SIGINT/SIGTERM checkpoint and exit
 * 130/143 so that the next `run` resumes where this one stopped.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "traind/runner.h"
#include "traind/util.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

typedef struct progress {
    bool tty;
    bool bar_drawn;
    const char *name;
} progress;

static void draw_bar(progress *p, const run_event *ev)
{
    const int width = 24;
    double frac = ev->total_steps > 0 ? (double)ev->step / (double)ev->total_steps : 0;
    int fill = (int)(frac * width);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    char eta[32] = "?";
    if (ev->steps_per_s > 0)
        cli_format_duration((double)(ev->total_steps - ev->step) / ev->steps_per_s, eta, sizeof eta);
    fprintf(stderr, "\r\033[K%s [%s] %ld/%ld %3.0f%%  lr %.3e  loss %.5g  %.0f steps/s  ETA %s",
            p->name, bar, ev->step, ev->total_steps, 100 * frac, ev->lr, ev->loss, ev->steps_per_s, eta);
    p->bar_drawn = true;
}

static void clear_bar(progress *p)
{
    if (p->bar_drawn) {
        fputs("\r\033[K", stderr);
        p->bar_drawn = false;
    }
}

static void on_event(void *ctx, const run_event *ev)
{
    progress *p = ctx;
    switch (ev->type) {
    case RUN_EVENT_START:
        if (ev->step > 0)
            fprintf(stderr, "%s: resuming from step %ld\n", p->name, ev->step);
        break;
    case RUN_EVENT_NOTICE:
        clear_bar(p);
        fprintf(stderr, "%s: %s\n", p->name, ev->message);
        break;
    case RUN_EVENT_LOG:
        if (p->tty) {
            draw_bar(p, ev);
        } else {
            printf("step %ld/%ld lr %.6e loss %.6g loss_avg %.6g grad_norm %.4g", ev->step,
                   ev->total_steps, ev->lr, ev->loss, ev->loss_avg, ev->grad_norm);
            if (!isnan(ev->eval_loss))
                printf(" eval_loss %.6g", ev->eval_loss);
            printf(" %.0f steps/s\n", ev->steps_per_s);
            fflush(stdout);
        }
        break;
    case RUN_EVENT_TICK:
        if (p->tty)
            draw_bar(p, ev);
        break;
    case RUN_EVENT_EVAL:
    case RUN_EVENT_CHECKPOINT:
        break;
    }
}

int cmd_run(int argc, char **argv)
{
    const char *config = NULL, *out = NULL;
    int threads = 0;
    bool fresh = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 256) {
                fprintf(stderr, "trainctl run: --threads must be 1..256, got '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
            threads = (int)t;
        } else if (!strcmp(argv[i], "--fresh"))
            fresh = true;
        else if (argv[i][0] == '-' || config) {
            fprintf(stderr, "trainctl run: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else
            config = argv[i];
    }
    if (!config) {
        fprintf(stderr, "usage: trainctl run CONFIG [--out DIR] [--threads N] [--fresh]\n");
        return EXIT_USAGE;
    }
    run_config cfg;
    char *data_path;
    if (cli_load_config(config, &cfg, &data_path) != 0)
        return EXIT_FAIL;
    char *out_dir = out ? xstrdup(out) : xasprintf("runs/%s", cfg.name);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* The run folder keeps the config it was trained with, so that it can
     * be sampled or inspected later without hunting for the file. */
    if (mkdir_p(out_dir, 0755) == 0) {
        char *copy = xasprintf("%s/config.yaml", out_dir), *buf;
        size_t len;
        if (read_file(config, CFG_MAX_FILE_BYTES, &buf, &len) == 0) {
            if (write_file_atomic(copy, buf, len, 0644) != 0)
                fprintf(stderr, "%s: cannot write %s\n", cfg.name, copy);
            free(buf);
        }
        free(copy);
    }

    progress p = {.tty = isatty(STDERR_FILENO), .name = cfg.name};
    runner_opts opts = {
        .out_dir = out_dir,
        .data_path = data_path,
        .threads = threads ? threads : cfg.threads,
        .fresh = fresh,
        .stop = &g_stop,
        .tick_interval_s = p.tty ? 0.1 : 0,
        .on_event = on_event,
        .ctx = &p,
    };
    char err[512];
    double t0 = now_monotonic();
    run_result r = runner_run(&cfg, &opts, err, sizeof err);
    double dt = now_monotonic() - t0;
    clear_bar(&p);
    int code;
    switch (r) {
    case RUN_OK:
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        fprintf(stderr, "%s: done: %ld steps in %.4fs (%.1f steps/s, peak RSS %.1f MiB); metrics in %s/metrics.jsonl\n",
                cfg.name, cfg.sched.total_steps, dt, dt > 0 ? (double)cfg.sched.total_steps / dt : 0.0,
                (double)ru.ru_maxrss / 1024.0, out_dir);
        code = EXIT_OK;
        break;
    case RUN_STOPPED:
        fprintf(stderr, "%s: stopped by signal %d; checkpoint saved in %s (run again to resume)\n",
                cfg.name, (int)g_stop, out_dir);
        code = 128 + (int)g_stop;
        break;
    default:
        fprintf(stderr, "%s: failed: %s\n", cfg.name, err);
        code = EXIT_FAIL;
    }
    free(out_dir);
    free(data_path);
    cfg_free(&cfg);
    return code;
}

/*
 * trainctl run — train one config in the foreground.  A progress bar on a
 * terminal (plain lines otherwise); SIGINT/SIGTERM checkpoint and exit
 * 130/143 so that the next `run` resumes where this one stopped.
 *
 * With --ranks N (or parallel.ranks in the config) trainctl itself trains
 * nothing: it starts `mpirun -np N traind-mpi-worker --run ARGS...`
 * (traind/mpilaunch.h), whose ranks run this same file's cmd_run_dist() —
 * rank 0 prints and writes, the others only train.  mpirun runs in a process
 * group of its own, so the terminal's ^C reaches trainctl alone, which
 * turns it into the ranks' clean stop (MPILAUNCH_STOP_SIGNAL) and waits.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "traind/mpilaunch.h"
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
    long start_step;          /* where this run began (> 0 after a resume) */
    double t_start;           /* monotonic time it began training: the done line's rate */
} progress;

static void draw_bar(progress *p, const run_event *ev)
{
    const int width = 24;
    double frac = ev->total_steps > 0 ? (double)ev->pt.step / (double)ev->total_steps : 0;
    int fill = (int)(frac * width);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    char eta[32] = "?";
    if (ev->pt.steps_per_s > 0)
        cli_format_duration((double)(ev->total_steps - ev->pt.step) / ev->pt.steps_per_s, eta, sizeof eta);
    fprintf(stderr, "\r\033[K%s [%s] %ld/%ld %3.0f%%  lr %.3e  loss %.5g  %.0f steps/s  ETA %s",
            p->name, bar, ev->pt.step, ev->total_steps, 100 * frac, ev->pt.lr, ev->pt.loss, ev->pt.steps_per_s, eta);
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
        p->start_step = ev->pt.step;
        p->t_start = now_monotonic();
        if (ev->pt.step > 0)
            fprintf(stderr, "%s: resuming from step %ld\n", p->name, ev->pt.step);
        break;
    case RUN_EVENT_NOTICE:
        clear_bar(p);
        fprintf(stderr, "%s: %s\n", p->name, ev->message);
        break;
    case RUN_EVENT_LOG:
        if (p->tty) {
            draw_bar(p, ev);
        } else {
            printf("step %ld/%ld lr %.6e loss %.6g loss_avg %.6g grad_norm %.4g", ev->pt.step,
                   ev->total_steps, ev->pt.lr, ev->pt.loss, ev->pt.loss_avg, ev->pt.grad_norm);
            if (!isnan(ev->pt.eval_loss))
                printf(" eval_loss %.6g", ev->pt.eval_loss);
            printf(" %.0f steps/s\n", ev->pt.steps_per_s);
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

/* Runs argv (mpirun ...) and waits, forwarding SIGINT/SIGTERM as the ranks'
 * clean stop.  Returns trainctl's exit code. */
static int run_mpirun(char **argv, const char *name)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: cannot fork: %s\n", name, strerror(errno));
        return EXIT_FAIL;
    }
    if (pid == 0) {
        setpgid(0, 0);    /* out of the terminal's foreground group: ^C is ours to forward */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        int rc = mpilaunch_exec(argv, self);
        fprintf(stderr, "%s: cannot run mpirun: %s\n", name, strerror(-rc));
        _exit(127);
    }
    bool forwarded = false;
    int st;
    for (;;) {
        if (g_stop && !forwarded) {
            kill(pid, MPILAUNCH_STOP_SIGNAL);
            forwarded = true;
        }
        if (waitpid(pid, &st, 0) == pid)
            break;
        if (errno != EINTR) {
            fprintf(stderr, "%s: waiting for mpirun: %s\n", name, strerror(errno));
            return EXIT_FAIL;
        }
    }
    if (WIFEXITED(st)) {
        int code = WEXITSTATUS(st);
        /* the ranks stopped on our forwarded signal: report the one we got */
        if (forwarded && code == 128 + MPILAUNCH_STOP_SIGNAL)
            return 128 + (int)g_stop;
        return code;
    }
    fprintf(stderr, "%s: mpirun was killed by signal %d\n", name, WTERMSIG(st));
    return EXIT_FAIL;
}

/* trainctl run with ranks > 1: hand the same arguments to N ranks. */
static int launch_ranks(int ranks, int argc, char **argv, const char *name)
{
    char *worker = mpilaunch_worker_path();
    if (!worker || !mpilaunch_have_mpirun()) {
        fprintf(stderr, "%s: --ranks %d needs Open MPI's mpirun on PATH (Debian: apt-get install openmpi-bin) "
                        "and %s beside trainctl%s\n", name, ranks, MPILAUNCH_WORKER_NAME,
                worker ? "" : " (not found)");
        free(worker);
        return EXIT_FAIL;
    }
    char **args = xcalloc((size_t)argc + 4, sizeof *args);
    size_t n = 0;
    args[n++] = "--run";
    for (int i = 0; i < argc; i++)
        args[n++] = argv[i];
    char **mv = mpilaunch_argv(ranks, worker, args, n);
    free(args);
    free(worker);
    int code = run_mpirun(mv, name);
    mpilaunch_argv_free(mv);
    return code;
}

int cmd_run(int argc, char **argv)
{
    return cmd_run_dist(argc, argv, NULL);
}

int cmd_run_dist(int argc, char **argv, dist_t *dist)
{
    const char *config = NULL, *out = NULL;
    int threads = 0, ranks = 0;
    bool fresh = false;
    bool rank0 = !dist || dist->rank == 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--ranks") && i + 1 < argc) {
            char *end;
            long r = strtol(argv[++i], &end, 10);
            if (*end || r < 1 || r > 4096) {
                fprintf(stderr, "trainctl run: --ranks must be 1..4096, got '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
            ranks = (int)r;
        }
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
        fprintf(stderr, "usage: trainctl run CONFIG [--out DIR] [--threads N] [--ranks N] [--fresh]\n");
        return EXIT_USAGE;
    }
    run_config cfg;
    char *data_path;
    if (cli_load_config(config, &cfg, &data_path) != 0)
        return EXIT_FAIL;
    if (ranks == 0)
        ranks = cfg.ranks;
    if (dist)
        ranks = dist->size;     /* a rank: mpirun's -np is what counts */
    if (cfg.data.batch_size % ranks != 0) {
        if (rank0)
            fprintf(stderr, "%s: data.batch_size (%d) is not divisible by %d ranks: each rank trains an "
                            "equal slice of every batch\n", config, cfg.data.batch_size, ranks);
        free(data_path);
        cfg_free(&cfg);
        return EXIT_FAIL;
    }
    if (!dist && ranks > 1) {
        int code = launch_ranks(ranks, argc, argv, cfg.name);
        free(data_path);
        cfg_free(&cfg);
        return code;
    }
    char *out_dir = out ? xstrdup(out) : xasprintf("runs/%s", cfg.name);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(MPILAUNCH_STOP_SIGNAL, &sa, NULL);

    /* The run folder keeps the config it was trained with, so that it can
     * be sampled or inspected later without hunting for the file. */
    if (rank0 && mkdir_p(out_dir, 0755) == 0) {
        char *copy = xasprintf("%s/config.yaml", out_dir), *buf;
        size_t len;
        if (read_file(config, CFG_MAX_FILE_BYTES, &buf, &len) == 0) {
            if (write_file_atomic(copy, buf, len, 0644) != 0)
                fprintf(stderr, "%s: cannot write %s\n", cfg.name, copy);
            free(buf);
        }
        free(copy);
    }

    progress p = {.tty = rank0 && isatty(STDERR_FILENO), .name = cfg.name};
    runner_opts opts = {
        .out_dir = out_dir,
        .data_path = data_path,
        .threads = threads ? threads : cfg.threads,
        .fresh = fresh,
        .stop = &g_stop,
        .tick_interval_s = p.tty ? 0.1 : 0,
        .on_event = rank0 ? on_event : NULL,
        .ctx = &p,
        .dist = dist,
    };
    char err[512];
    double t0 = now_monotonic();
    run_result r = runner_run(&cfg, &opts, err, sizeof err);
    double dt = now_monotonic() - t0;
    clear_bar(&p);
    int code;
    char par[96] = "";
    if (dist && dist->size > 1)
        snprintf(par, sizeof par, ", %d ranks, allreduce %.1f%% of the time", dist->size,
                 dt > 0 ? 100 * dist->comm_s / dt : 0.0);
    switch (r) {
    case RUN_OK: {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        /* The steps this run trained over the time it trained them: after a
         * resume that is not total_steps (the earlier run's steps were not
         * trained here), and the time runs from the START event (model
         * setup and the checkpoint's load are not training). */
        long trained = cfg.sched.total_steps - p.start_step;
        double t = p.t_start > 0 ? now_monotonic() - p.t_start : dt;
        char from[64] = "";
        if (p.start_step > 0)
            snprintf(from, sizeof from, " (from step %ld to %ld)", p.start_step, cfg.sched.total_steps);
        if (rank0)
            fprintf(stderr, "%s: done: %ld steps%s in %.4fs (%.1f steps/s, peak RSS %.1f MiB%s); metrics in %s/metrics.jsonl\n",
                    cfg.name, trained, from, t, t > 0 ? (double)trained / t : 0.0,
                    (double)ru.ru_maxrss / 1024.0, par, out_dir);
        code = EXIT_OK;
        break;
    }
    case RUN_STOPPED:
        if (rank0)
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

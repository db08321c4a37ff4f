/*
 * worker_main — the training process of one job.
 *
 *     traind --worker JOBDIR --threads N --ppid PID --progress @NAME [--data-dir DIR]... [--pause-at S]
 *     traind --worker JOBDIR --threads N --progress-file PATH [--data-dir DIR]...   (Slurm)
 *     traind-mpi-worker --worker ...   (the same, as one rank of an N-rank job)
 *
 * Started by the daemon (daemon/service/supervisor.c), never by hand, or by the
 * batch script the Slurm executor submits (daemon/service/executor_slurm.c).  It trains
 * JOBDIR/config.yaml into JOBDIR with runner_run() and reports every event
 * as one JSON line on the unix socket @NAME (an abstract address the daemon
 * listens on; traind/progress.h) — a socket rather than an inherited fd,
 * because mpirun does not pass inherited fds on to the ranks it starts.  It
 * must not outlive its parent (the daemon, or mpirun for a rank):
 * PR_SET_PDEATHSIG(SIGKILL) kills it when the parent dies, and when the
 * socket breaks it stops (checkpointing) on its own.  SIGTERM, SIGINT and
 * SIGUSR1 (what mpirun forwards for a clean stop, traind/mpilaunch.h) make it
 * checkpoint and exit WORKER_EXIT_STOPPED.  SIGXFSZ is ignored: a write over
 * a file size limit fails (EFBIG) and the job fails with that error, its last
 * checkpoint intact.
 *
 * --pause-at S: the run stops at step S, checkpointed, and exits
 * WORKER_EXIT_PAUSED (an ASHA trial at a rung; the daemon decides whether it
 * goes on).
 *
 * Under MPI (worker_main_dist) rank 0 does everything a single worker does;
 * the other ranks train their slices and neither write nor report.  Every
 * rank waits until rank 0 holds the lock before it reads the checkpoint, so
 * all of them resume from the same one.
 *
 * Under Slurm, and for a job whose ranks mpi_hostfile (traind.yaml(5)) places
 * on other hosts, whose rank 0 may be on another host than the daemon (an
 * abstract socket exists in one network namespace only), there is no
 * socket to reach: --progress-file makes it append
 * the same lines to a file in the job directory, which the daemon tails
 * (the spool is on a filesystem the daemon's machine shares).  A write to
 * that file that fails only ends the reporting: training goes on, and the
 * daemon still has metrics.jsonl, the checkpoints and Slurm's own state.
 *
 * An exclusive flock on JOBDIR/worker.lock guarantees that two training
 * processes never write one job directory, even in the instant between a
 * daemon's death and its worker's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "traind/config.h"
#include "traind/progress.h"
#include "traind/runner.h"
#include "traind/forkfile.h"
#include "traind/util.h"
#include "traind/worker.h"

#define LOCK_WAIT_S 15

static volatile sig_atomic_t g_stop;
static int g_progress_fd = -1;
static bool g_quiet;            /* a rank other than 0: only its failures are logged */
static bool g_progress_is_file;   /* --progress-file: losing it does not stop training */

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void wlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void wlog(const char *fmt, ...)
{
    if (g_quiet)
        return;
    char ts[32];
    format_utc(now_unix(), ts, sizeof ts);
    fprintf(stderr, "%s worker[%d]: ", ts, (int)getpid());   /* rank 0 only, under MPI */
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* One line to the daemon.  A broken pipe means the daemon is gone: stop. */
static void send_msg(const progress_msg *m)
{
    if (g_progress_fd < 0)
        return;
    size_t len;
    char *line = progress_encode(m, &len);
    const char *p = line;
    while (len > 0) {
        ssize_t w = write(g_progress_fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (g_progress_is_file) {
                wlog("cannot write progress: %s; training goes on without reporting", strerror(errno));
                close(g_progress_fd);
                g_progress_fd = -1;
                break;
            }
            if (errno == EPIPE)
                wlog("the daemon closed the progress socket; checkpointing and stopping");
            else
                wlog("cannot write progress: %s; stopping", strerror(errno));
            close(g_progress_fd);
            g_progress_fd = -1;
            g_stop = 1;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    free(line);
}

static void send_text(progress_ev ev, const char *message)
{
    progress_msg m;
    progress_msg_init(&m, ev);
    snprintf(m.message, sizeof m.message, "%s", message);
    send_msg(&m);
}

static void on_event(void *ctx, const run_event *ev)
{
    (void)ctx;
    static const progress_ev map[] = {
        [RUN_EVENT_START] = PEV_START, [RUN_EVENT_NOTICE] = PEV_NOTICE, [RUN_EVENT_LOG] = PEV_LOG,
        [RUN_EVENT_TICK] = PEV_TICK, [RUN_EVENT_CHECKPOINT] = PEV_CKPT, [RUN_EVENT_EVAL] = PEV_EVAL,
    };
    if ((unsigned)ev->type >= sizeof map / sizeof map[0])
        return;
    progress_msg m;
    progress_msg_init(&m, map[ev->type]);
    m.pt = ev->pt;   /* the runner gives NAN for what an event does not carry */
    m.total_steps = ev->total_steps;
    m.checkpoint_step = ev->checkpoint_step;
    if (ev->type == RUN_EVENT_NOTICE && ev->message) {
        snprintf(m.message, sizeof m.message, "%s", ev->message);
        wlog("%s", ev->message);
    }
    if (ev->type == RUN_EVENT_START)
        wlog("training %s from step %ld of %ld", ev->pt.step > 0 ? "resumes" : "starts", ev->pt.step,
             ev->total_steps);
    send_msg(&m);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    char msg[PROGRESS_MAX_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g_quiet = false;
    wlog("failed: %s", msg);
    send_text(PEV_FAILED, msg);
    return WORKER_EXIT_FAILED;
}

/* Waits (bounded) for the job directory's lock: a training process of a
 * previous daemon may take a moment to die. */
static int take_lock(const char *job_dir)
{
    char *path = xasprintf("%s/worker.lock", job_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(path);
    if (fd < 0)
        return -errno;
    double deadline = now_monotonic() + LOCK_WAIT_S;
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (now_monotonic() > deadline || g_stop) {
            close(fd);
            return -EBUSY;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return fd;   /* held until exit */
}

/* With the lock held no other process writes this directory: every
 * checkpoint.bin.tmp.PID (and trainer_state.json.tmp.PID) is what a killed training process left (its pid
 * may still be a zombie, so the runner's own check would keep it). */
static void removed_tmp(const char *name, void *ctx)
{
    (void)ctx;
    wlog("removed %s, left by a training process that was killed while writing it", name);
}

static void remove_stale_checkpoints(const char *job_dir)
{
    static const char *const prefixes[] = {"checkpoint.bin.tmp.", "trainer_state.json.tmp."};
    remove_stale_tmp(job_dir, prefixes, sizeof prefixes / sizeof prefixes[0], true, removed_tmp, NULL);
}

/* Connects to the daemon's progress socket ("@name": Linux's abstract
 * namespace).  Returns the fd or -errno. */
static int connect_progress(const char *addr)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(addr);
    if (addr[0] != '@' || len < 2 || len > sizeof sa.sun_path)
        return -EINVAL;
    memcpy(sa.sun_path + 1, addr + 1, len - 1);   /* sun_path[0] = '\0': abstract */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    /* On fd 3, where the progress pipe used to be, for whoever looks. */
    if (fd != 3 && dup3(fd, 3, O_CLOEXEC) == 3) {
        close(fd);
        fd = 3;
    }
    return fd;
}

/* Every rank learns whether rank 0 got through its start (lock, socket):
 * the others wait here, so none reads the checkpoint before rank 0 owns the
 * directory.  Returns whether all is well. */
static bool agree_started(dist_t *dist, bool ok)
{
    if (!dist || dist->size < 2)
        return ok;
    float v = ok ? 1.0f : 0.0f;
    if (dist->allreduce_mean(dist, &v, 1) != 0)
        return false;
    return v == 1.0f;
}

static int usage(void)
{
    fprintf(stderr, "usage: traind --worker JOBDIR --threads N [--ppid PID] [--progress @NAME | --progress-file PATH] [--data-dir DIR]... [--pause-at S]\n"
                    "(started by traind for each job; not meant to be run by hand)\n");
    return WORKER_EXIT_USAGE;
}

/* The command line the daemon (supervisor.c) or the Slurm batch script writes. */
typedef struct worker_args {
    const char *job_dir;
    const char *progress_addr;   /* --progress @NAME */
    const char *progress_file;   /* --progress-file PATH (Slurm) */
    int threads;
    long ppid, pause_at;
    char **dirs;                 /* --data-dir, in order */
    size_t n_dirs;
} worker_args;

/* A decimal number in [lo, hi], the whole of s; false (with a line naming
 * the flag) otherwise. */
static bool arg_number(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "traind worker: %s must be a number from %ld to %ld, got \"%s\"\n", flag, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

/* argv[0] traind, argv[1] --worker, argv[2] JOBDIR, then the flags.
 * Returns 0, or WORKER_EXIT_USAGE (said why). */
static int parse_worker_args(int argc, char **argv, worker_args *a)
{
    enum { OPT_THREADS = 256, OPT_PPID, OPT_PROGRESS, OPT_PROGRESS_FILE, OPT_DATA_DIR, OPT_PAUSE_AT };
    static const struct option opts[] = {
        {"threads", required_argument, NULL, OPT_THREADS},
        {"ppid", required_argument, NULL, OPT_PPID},
        {"progress", required_argument, NULL, OPT_PROGRESS},
        {"progress-file", required_argument, NULL, OPT_PROGRESS_FILE},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"pause-at", required_argument, NULL, OPT_PAUSE_AT},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->threads = 1;
    if (argc < 3 || argv[2][0] == '-')
        return usage();
    a->job_dir = argv[2];
    a->dirs = xcalloc((size_t)argc, sizeof *a->dirs);
    optind = 3;
    opterr = 0;
    long v;
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case OPT_THREADS:
            if (!arg_number("--threads", optarg, 1, 1024, &v))
                return usage();
            a->threads = (int)v;
            break;
        case OPT_PPID:
            if (!arg_number("--ppid", optarg, 1, INT_MAX, &a->ppid))
                return usage();
            break;
        case OPT_PAUSE_AT:
            if (!arg_number("--pause-at", optarg, 1, LONG_MAX, &a->pause_at))
                return usage();
            break;
        case OPT_PROGRESS: a->progress_addr = optarg; break;
        case OPT_PROGRESS_FILE: a->progress_file = optarg; break;
        case OPT_DATA_DIR: a->dirs[a->n_dirs++] = optarg; break;
        default:
            fprintf(stderr, "traind worker: unknown option or missing value: %s\n", argv[optind - 1]);
            return usage();
        }
    }
    if (optind < argc) {
        fprintf(stderr, "traind worker: unexpected argument \"%s\"\n", argv[optind]);
        return usage();
    }
    return 0;
}

/* Whether this rank's parent is Open MPI's daemon on its host (orted; prted
 * from Open MPI 5): a rank that mpi_hostfile (traind.yaml(5)) placed on
 * another host than mpirun's has orted for its parent, which dies with the
 * job's mpirun, and the rank with it. */
static bool parent_is_orted(void)
{
    char path[64], comm[32] = "";
    pid_t pp = getppid();
    if (pp <= 1)
        return false;
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pp);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(comm, sizeof comm, f) != NULL;
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    return ok && (!strcmp(comm, "orted") || !strcmp(comm, "prted"));
}

/* Dies with the daemon (or mpirun, or orted for a rank on another host).  If
 * it already died between fork and here, the death signal was missed: check
 * the parent by hand.  False when the parent is gone. */
static bool bind_to_parent(long ppid, bool under_mpi)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (ppid > 0 && getppid() != (pid_t)ppid && !(under_mpi && parent_is_orted())) {
        fprintf(stderr, "traind worker: the %s (pid %ld) is gone; not starting\n", under_mpi ? "mpirun" : "daemon",
                ppid);
        return false;
    }
    return true;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    /* Over a file size limit (RLIMIT_FSIZE) write() then fails with EFBIG,
     * which is reported as the job's error, instead of killing us. */
    signal(SIGXFSZ, SIG_IGN);
}

/* Rank 0's channel to the daemon: the file under Slurm, else the socket.
 * False when the socket cannot be reached (the job does not start). */
static bool open_progress(const worker_args *a)
{
    if (a->progress_file) {
        /* under Slurm: progress lines appended to a file in the job dir */
        g_progress_fd = open(a->progress_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        g_progress_is_file = true;
        if (g_progress_fd < 0)
            wlog("cannot open %s: %s; training goes on without reporting", a->progress_file, strerror(errno));
        return true;
    }
    if (!a->progress_addr)
        return true;
    int fd = connect_progress(a->progress_addr);
    if (fd < 0) {
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        /* an abstract socket exists on the daemon's machine only: a rank 0
         * that Open MPI put elsewhere needs mpi_hostfile (traind.yaml(5)) */
        wlog("cannot connect to the daemon's progress socket %s from host %s: %s; not starting (if that is not "
             "the daemon's host, set mpi_hostfile in traind.yaml)", a->progress_addr, host, strerror(-fd));
        return false;
    }
    g_progress_fd = fd;
    return true;
}

/* Trains the job of an opened, locked directory; returns the exit code. */
static int train_job(const worker_args *a, dist_t *dist);

int worker_main(int argc, char **argv)
{
    return worker_main_dist(argc, argv, NULL);
}

int worker_main_dist(int argc, char **argv, dist_t *dist)
{
    worker_args a;
    int code = parse_worker_args(argc, argv, &a);
    if (code != 0) {
        free(a.dirs);
        return code;
    }
    bool rank0 = !dist || dist->rank == 0;
    g_quiet = !rank0;
    if (!bind_to_parent(a.ppid, dist != NULL)) {
        if (dist)
            _exit(WORKER_EXIT_STOPPED);   /* not MPI_Finalize: the other ranks may never get there */
        free(a.dirs);
        return WORKER_EXIT_STOPPED;
    }
    unsetenv("NOTIFY_SOCKET");   /* only the daemon talks to systemd */
    install_signals();

    int lock = -1;
    if (rank0 && !open_progress(&a)) {
        agree_started(dist, false);
        code = WORKER_EXIT_FAILED;
        goto out;
    }
    lock = rank0 ? take_lock(a.job_dir) : -1;
    if (rank0 && lock < 0) {
        code = g_stop ? WORKER_EXIT_STOPPED
                      : fail("cannot lock the job directory (%s): %s", a.job_dir,
                             lock == -EBUSY ? "another training process still holds it" : strerror(-lock));
        agree_started(dist, false);
        goto out;
    }
    if (!agree_started(dist, true)) {
        code = WORKER_EXIT_FAILED;
        goto out;
    }
    code = train_job(&a, dist);
out:
    if (g_progress_fd >= 0)
        close(g_progress_fd);
    if (lock >= 0)
        close(lock);
    free(a.dirs);
    return code;
}

static int train_job(const worker_args *a, dist_t *dist)
{
    bool rank0 = !dist || dist->rank == 0;
    const char *job_dir = a->job_dir;
    char **dirs = a->dirs;
    size_t n_dirs = a->n_dirs;
    int threads = a->threads;
    long pause_at = a->pause_at;
    if (rank0)
        remove_stale_checkpoints(job_dir);

    char *cfg_path = xasprintf("%s/config.yaml", job_dir);
    const char *slash = strrchr(job_dir, '/');
    /* The daemon checked the model's memory against its max_model_memory when
     * it took the job; a cap of our own here could only disagree with it. */
    cfg_parse_opts po = {.default_name = slash ? slash + 1 : job_dir, .max_model_bytes = SIZE_MAX};
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    int code;
    if (cfg_load_file(cfg_path, &po, &cfg, &errs) != 0) {
        diag_print(stderr, cfg_path, &errs);
        const diag_t *d = errs.n ? &errs.items[0] : NULL;
        code = d ? fail("invalid config: %s%s%s", d->path, d->path[0] ? ": " : "", d->message)
                 : fail("invalid config");
        diag_free(&errs);
        goto out_nocfg;
    }
    char *data_path = cfg_resolve_data_path(&cfg, n_dirs ? dirs[0] : NULL, dirs, (int)n_dirs, &errs);
    if (errs.n > 0) {
        diag_print(stderr, cfg_path, &errs);
        code = fail("%s: %s", errs.items[0].path, errs.items[0].message);
        diag_free(&errs);
        free(data_path);
        goto out;
    }
    /* --threads is this rank's share of threads_per_job: the config's
     * threads capped by it, the rule the daemon applied (traind.yaml(5)) */
    threads = cfg_rank_threads(cfg.threads, threads, 1);
    if (rank0)
        wlog("job %s: %ld steps, %d rank%s × %d thread%s", cfg.name, cfg.sched.total_steps,
             dist ? dist->size : 1, dist && dist->size > 1 ? "s" : "", threads, threads == 1 ? "" : "s");

    /* A fork (forkfile.h): its first start is from the parent's checkpoint,
     * linked into this directory before the job existed. */
    forkfile ff;
    char *fork_from = NULL, *fork_metrics = NULL;
    int frc = forkfile_read(job_dir, &ff);
    if (frc == 0) {
        fork_from = xasprintf("%s/%s", job_dir, ff.checkpoint);
        if (ff.metrics[0])
            fork_metrics = xasprintf("%s/%s", job_dir, ff.metrics);
        if (rank0)
            wlog("a fork of job %s at step %ld", ff.parent, ff.at_step);
    } else if (frc != -ENOENT) {
        code = fail("%s/" FORKFILE_NAME " is not a valid fork description", job_dir);
        free(data_path);
        goto out;
    }
    runner_opts opts = {
        .fork_from = fork_from,
        .fork_metrics = fork_metrics,
        .out_dir = job_dir,
        .data_path = data_path,
        .threads = threads,
        .stop = &g_stop,
        .tick_interval_s = 0.5,
        .on_event = rank0 ? on_event : NULL,
        .dist = dist,
        .pause_at = pause_at,
    };
    char err[1024];
    double t0 = now_monotonic();
    run_result r = runner_run(&cfg, &opts, err, sizeof err);
    if (rank0 && dist && dist->size > 1) {
        double dt = now_monotonic() - t0;
        wlog("allreduce: %.3f s of %.3f s training (%.1f%%) across %d ranks", dist->comm_s, dt,
             dt > 0 ? 100 * dist->comm_s / dt : 0.0, dist->size);
    }
    free(data_path);
    free(fork_from);
    free(fork_metrics);
    switch (r) {
    case RUN_OK: {
        progress_msg m;
        progress_msg_init(&m, PEV_DONE);
        m.pt.step = m.total_steps = m.checkpoint_step = cfg.sched.total_steps;
        send_msg(&m);
        wlog("done: %ld steps", cfg.sched.total_steps);
        code = WORKER_EXIT_OK;
        break;
    }
    case RUN_STOPPED:
        wlog("stopped on request; checkpoint written");
        code = WORKER_EXIT_STOPPED;
        break;
    case RUN_PAUSED:
        wlog("paused at step %ld (checkpoint written) for the daemon's decision", pause_at);
        code = WORKER_EXIT_PAUSED;
        break;
    default:
        code = fail("%s", err[0] ? err : "training failed");
        break;
    }
out:
    cfg_free(&cfg);
out_nocfg:
    free(cfg_path);
    return code;
}

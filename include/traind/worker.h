/*
 * worker — one training process per job, supervised from the loop thread.
 *
 * The daemon re-executes itself:
 *     /proc/self/exe --worker JOBDIR --threads N --ppid PID --progress @NAME [--data-dir DIR]... [--pause-at S]
 * with stdin /dev/null, stdout and stderr appended to JOBDIR/worker.log.  A
 * job of N > 1 ranks runs instead
 *     /proc/self/exe --mpi-launch PID mpirun -np N ... traind-mpi-worker --worker JOBDIR ...
 * (traind/mpilaunch.h).  Either way, the training process (rank 0) connects
 * to the abstract unix socket @NAME that the daemon listens on for this
 * worker alone, and writes progress lines there (traind/progress.h): a
 * socket and not an inherited fd, because mpirun does not pass fds on to
 * its ranks.  Only one connection, from our own uid, is accepted.  The
 * worker dies with the daemon (PR_SET_PDEATHSIG, down the chain through
 * mpirun) and stops when the socket closes, so a restarted daemon never
 * meets an orphan writing the same job directory.
 *
 * Exit codes of the training process (worker_main):
 */
#ifndef TRAIND_WORKER_H
#define TRAIND_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "traind/dist.h"
#include "traind/progress.h"

#define WORKER_EXIT_OK 0        /* trained to total_steps ("done" line sent) */
#define WORKER_EXIT_FAILED 1    /* failed; a "failed" line with the reason was sent */
#define WORKER_EXIT_USAGE 2     /* bad command line */
#define WORKER_EXIT_STOPPED 3   /* asked to stop (SIGTERM/SIGINT, pipe closed): checkpointed */
#define WORKER_EXIT_PAUSED 4    /* reached --pause-at S: checkpointed at S (an ASHA rung) */

typedef struct worker worker;

typedef struct worker_spec {
    const char *exe;               /* the daemon's own binary */
    const char *job_dir;           /* absolute */
    int threads;                   /* per rank */
    int ranks;                     /* > 1: under mpirun */
    const char *mpi_worker;        /* traind-mpi-worker, when ranks > 1 */
    char *const *data_dirs;
    size_t n_data_dirs;
    long pause_at;                 /* > 0: --pause-at (runner_opts.pause_at) */
} worker_spec;

typedef struct worker_callbacks {
    /* Every progress line, in order, on the loop thread. */
    void (*on_msg)(void *ctx, const progress_msg *m);
    /* Once the process has exited and its pipe is drained: exit_status (when
     * term_signal == 0) or the signal that killed it.  The worker is freed
     * right after this returns. */
    void (*on_exit)(void *ctx, int64_t exit_status, int term_signal);
} worker_callbacks;

/* Starts the training process.  On failure returns a negative errno with
 * nothing to clean up and on_exit never called. */
int worker_spawn(uv_loop_t *loop, const worker_spec *spec, const worker_callbacks *cb, void *ctx,
                 worker **out);

/* Sends a signal (SIGTERM: checkpoint and stop, sent to an N-rank job as
 * MPILAUNCH_STOP_SIGNAL; SIGKILL).  0 or -errno. */
int worker_kill(worker *w, int signum);

int worker_pid(const worker *w);

/* The LR range test of POST /lr-find (traind/lrfind_job.h), a process of
 * its own like every job's training:
 *     /proc/self/exe --lr-find --threads N [--ppid PID] [--max-model-bytes B]
 *                    [--start LR] [--end LR] [--steps N] [--data-dir DIR]...
 * reads the run config on stdin, checks it as intake does (traind/intake.h),
 * runs lrfind_run and prints one JSON document on stdout: the curve
 * (lrfind_json) and exit WORKER_EXIT_OK, or {"ok": false, "errors": [...]}
 * / {"error": "..."} and exit WORKER_EXIT_FAILED.  SIGTERM ends the sweep
 * early (the curve so far, "stopped": "stopped").  main.c calls this when
 * argv[1] is "--lr-find". */
int worker_lrfind_main(int argc, char **argv);

/* The training process's side: main.c calls this when argv[1] is "--worker". */
int worker_main(int argc, char **argv);
/* The same as rank dist->rank of dist->size (traind-mpi-worker); NULL = one process. */
int worker_main_dist(int argc, char **argv, dist_t *dist);

#endif

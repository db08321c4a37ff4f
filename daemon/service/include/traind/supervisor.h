/*
 * supervisor — the daemon's side of a job's training process (traind/worker.h):
 * spawns it and supervises it from the loop thread.
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
 * Its exit codes (WORKER_EXIT_*) are in traind/worker.h.
 */
#ifndef TRAIND_SUPERVISOR_H
#define TRAIND_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "traind/progress.h"
#include "traind/worker.h"

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
    const char *hostfile;          /* ranks > 1: mpirun --hostfile (traind.yaml(5), mpi_hostfile), and
                                    * progress through JOBDIR/progress.jsonl; NULL = this host, a socket */
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

#endif

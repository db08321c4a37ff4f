/*
 * worker — one training process per job, supervised from the loop thread.
 *
 * The daemon re-executes itself:
 *     /proc/self/exe --worker JOBDIR --threads N --ppid PID [--data-dir DIR]...
 * with stdin /dev/null, stdout and stderr appended to JOBDIR/worker.log, and
 * a pipe on fd 3 that carries progress lines (traind/progress.h).  The
 * worker dies with the daemon (PR_SET_PDEATHSIG) and stops when the pipe
 * closes, so a restarted daemon never meets an orphan writing the same job
 * directory.
 *
 * Exit codes of the training process (worker_main):
 */
#ifndef TRAIND_WORKER_H
#define TRAIND_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "traind/progress.h"

#define WORKER_EXIT_OK 0        /* trained to total_steps ("done" line sent) */
#define WORKER_EXIT_FAILED 1    /* failed; a "failed" line with the reason was sent */
#define WORKER_EXIT_USAGE 2     /* bad command line */
#define WORKER_EXIT_STOPPED 3   /* asked to stop (SIGTERM/SIGINT, pipe closed): checkpointed */

typedef struct worker worker;

typedef struct worker_spec {
    const char *exe;               /* the daemon's own binary */
    const char *job_dir;           /* absolute */
    int threads;
    char *const *data_dirs;
    size_t n_data_dirs;
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

/* Sends a signal (SIGTERM: checkpoint and stop; SIGKILL).  0 or -errno. */
int worker_kill(worker *w, int signum);

int worker_pid(const worker *w);

/* The training process's side: main.c calls this when argv[1] is "--worker". */
int worker_main(int argc, char **argv);

#endif

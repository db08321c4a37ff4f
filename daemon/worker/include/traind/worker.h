/*
 * worker — the training process of a job (daemon/worker/), as the daemon
 * starts it (traind/supervisor.h: `traind --worker JOBDIR ...`, or
 * traind-mpi-worker under mpirun), and its exit codes, which the daemon
 * reads back.  No event loop here: this is the process side only.
 *
 * Exit codes of the training process (worker_main):
 */
#ifndef TRAIND_WORKER_H
#define TRAIND_WORKER_H

#include "traind/dist.h"

#define WORKER_EXIT_OK 0        /* trained to total_steps ("done" line sent) */
#define WORKER_EXIT_FAILED 1    /* failed; a "failed" line with the reason was sent */
#define WORKER_EXIT_USAGE 2     /* bad command line */
#define WORKER_EXIT_STOPPED 3   /* asked to stop (SIGTERM/SIGINT, pipe closed): checkpointed */
#define WORKER_EXIT_PAUSED 4    /* reached --pause-at S: checkpointed at S (an ASHA rung) */

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

/*
 * traind-mpi-worker — one rank of an N-rank job, started by mpirun:
 *
 *     traind-mpi-worker --worker JOBDIR ...   a daemon job's rank (worker_main_dist, traind/worker.h)
 *     traind-mpi-worker --run CONFIG ...      a rank of `trainctl run --ranks N` (cmd_run_dist)
 *
 * The only program linked with libmpi (dist_mpi.c): traind and trainctl stay
 * free of it and work where Open MPI is not installed.  Ranks die with
 * mpirun (PR_SET_PDEATHSIG), as mpirun dies with whoever started it.
 *
 * A rank that fails on its own (rank 0 cannot write a checkpoint, say) exits
 * without MPI_Finalize, which would wait for ranks that are still inside a
 * collective: mpirun then sees a rank gone before finalizing and kills the
 * rest.  Ranks that end together (done, a stop agreed on at the same step)
 * finalize normally.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "traind/cmd_run.h"
#include "traind/dist_mpi.h"
#include "traind/worker.h"

int main(int argc, char **argv)
{
    bool as_worker = argc >= 2 && !strcmp(argv[1], "--worker");
    bool run = argc >= 2 && !strcmp(argv[1], "--run");
    if (!as_worker && !run) {
        fprintf(stderr, "usage: traind-mpi-worker --worker JOBDIR ... | --run CONFIG ...\n"
                        "(one rank of a data-parallel job, started by mpirun for traind or trainctl)\n");
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (run && getppid() == 1)
        return 1;   /* mpirun is already gone */
    dist_t d;
    char err[256];
    if (dist_mpi_init(&argc, &argv, &d, err, sizeof err) != 0) {
        fprintf(stderr, "traind-mpi-worker: %s\n", err);
        return 1;
    }
    int code = as_worker ? worker_main_dist(argc, argv, &d) : cmd_run_dist(argc - 2, argv + 2, &d);
    bool together = as_worker ? code == WORKER_EXIT_OK || code == WORKER_EXIT_STOPPED
                           : code == EXIT_OK || code > 128;
    if (!together)
        return code;
    dist_mpi_finalize(&d);
    /* Rank 0 alone says how the job ended (stopped: 3, or 128 + signal):
     * mpirun treats a non-zero exit as a failure and kills the other ranks,
     * which would cut rank 0's last checkpoint short. */
    return d.rank == 0 ? code : 0;
}

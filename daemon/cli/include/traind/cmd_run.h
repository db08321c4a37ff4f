/*
 * cmd_run — `trainctl run` (trainctl(1)), the part of the cli that
 * traind-mpi-worker also links (daemon/mpi/: `traind-mpi-worker --run CONFIG
 * ...`, a rank of `trainctl run --ranks N`).  The rest of trainctl's pieces
 * stay private to daemon/cli/ (cli.h), which includes this header.
 */
#ifndef TRAIND_CMD_RUN_H
#define TRAIND_CMD_RUN_H

#include "traind/dist.h"

/* Exit codes of trainctl and its commands: trainctl(1), EXIT STATUS. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

int cmd_run(int argc, char **argv);
/* cmd_run as rank dist->rank of dist->size (traind-mpi-worker --run); NULL = cmd_run. */
int cmd_run_dist(int argc, char **argv, dist_t *dist);

#endif

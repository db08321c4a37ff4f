/*
 * dist_mpi — the Open MPI implementation of traind/dist.h, and the only code
 * of the project that includes <mpi.h>.  Linked into build/traind-mpi-worker
 * alone (see the Makefile), so nothing else depends on libmpi.
 *
 * The reduction is deterministic by construction rather than by trusting
 * Open MPI's algorithm selection (coll/tuned picks ring, recursive doubling
 * or Rabenseifner by message size and rank count; for more than 2 ranks
 * their float sums differ in order, and some give different ranks different
 * bits).  It is a reduce-scatter done as MPI_Alltoallv (each rank receives
 * every rank's copy of its own chunk), a local sum of the chunk in rank
 * order 0..N-1, then MPI_Allgatherv of the reduced chunks: the same
 * 2(N-1)/N × gradient bytes per rank that a ring allreduce moves, and a
 * result that depends only on the inputs.
 */
#ifndef TRAIND_DIST_MPI_H
#define TRAIND_DIST_MPI_H

#include <stddef.h>
#include "traind/dist.h"

/* MPI_Init and the communicator; fills *d.  Returns 0 or -1 with err set. */
int dist_mpi_init(int *argc, char ***argv, dist_t *d, char *err, size_t errlen);
/* MPI_Finalize and the buffers. */
void dist_mpi_finalize(dist_t *d);

#endif

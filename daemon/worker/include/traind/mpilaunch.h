/*
 * mpilaunch — starting a job's ranks under Open MPI's mpirun, for the daemon
 * (supervisor.c) and for `trainctl run --ranks N` alike: the mpirun command line,
 * where the MPI worker binary is, and the exec that ties mpirun's life to its
 * parent's.
 *
 * The process tree of an N-rank job:
 *     traind ─ mpirun (exec'd by `traind --mpi-launch`) ─ N × traind-mpi-worker
 * Each link dies with the one above it (PR_SET_PDEATHSIG(SIGKILL), which
 * survives exec): kill -9 of the daemon kills mpirun, which kills the ranks.
 * A rank that dies makes mpirun kill the others and exit non-zero (137 for a
 * SIGKILL).  mpirun turns SIGTERM into SIGTERM + SIGKILL of every rank one
 * second later, too soon for a checkpoint, so a clean stop is SIGUSR1,
 * which mpirun forwards to every rank as it is (MPILAUNCH_STOP_SIGNAL).
 *
 * traind, trainctl and this module never link libmpi: the ranks are the
 * separate build/traind-mpi-worker (daemon/mpi/), installed beside them.
 */
#ifndef TRAIND_MPILAUNCH_H
#define TRAIND_MPILAUNCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MPILAUNCH_STOP_SIGNAL SIGUSR1
/* An argument of mpilaunch_argv that mpilaunch_exec replaces by mpirun's pid
 * (the ranks' parent, which they check as the worker checks the daemon). */
#define MPILAUNCH_SELF_PID "@mpirun-pid"
#define MPILAUNCH_WORKER_NAME "traind-mpi-worker"

/* The MPI worker binary: $TRAIND_MPI_WORKER, else traind-mpi-worker in the
 * folder of the running binary.  malloc'd; NULL when it is not there. */
char *mpilaunch_worker_path(void);

/* Whether mpirun is on PATH (the message for when it is not is the caller's). */
bool mpilaunch_have_mpirun(void);

/* {"mpirun", "-np", N, flags..., prog, args[0..n_args), NULL}: malloc'd,
 * free with mpilaunch_argv_free. */
char **mpilaunch_argv(int ranks, const char *prog, char *const *args, size_t n_args);
/* The same with the ranks placed by an Open MPI hostfile (--hostfile; NULL:
 * every rank on this host), as traind.yaml(5)'s mpi_hostfile gives it. */
char **mpilaunch_argv_hosts(int ranks, const char *hostfile, const char *prog, char *const *args, size_t n_args);
void mpilaunch_argv_free(char **argv);

/* In a freshly forked child: dies with its parent (which must be `parent`,
 * else it exits 3 at once), replaces MPILAUNCH_SELF_PID in argv by its own
 * pid and execs mpirun.  Returns only on failure, with -errno. */
int mpilaunch_exec(char **argv, pid_t parent);

/* `traind --mpi-launch PPID mpirun ARGS...`: mpilaunch_exec as a program
 * (uv_spawn cannot set a death signal itself).  Returns an exit code. */
int mpilaunch_main(int argc, char **argv);

#endif

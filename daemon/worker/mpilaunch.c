/* mpilaunch — mpirun's command line and exec for N-rank jobs.  See traind/mpilaunch.h. */
#include "traind/mpilaunch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "traind/util.h"

char *mpilaunch_worker_path(void)
{
    const char *env = getenv("TRAIND_MPI_WORKER");
    if (env && env[0])
        return access(env, X_OK) == 0 ? xstrdup(env) : NULL;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    char *path = xasprintf("%s/%s", self, MPILAUNCH_WORKER_NAME);
    if (access(path, X_OK) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

bool mpilaunch_have_mpirun(void)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char *copy = xstrdup(path), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/mpirun", dir[0] ? dir : ".");
        found = access(p, X_OK) == 0;
        free(p);
    }
    free(copy);
    return found;
}

char **mpilaunch_argv(int ranks, const char *prog, char *const *args, size_t n_args)
{
    return mpilaunch_argv_hosts(ranks, NULL, prog, args, n_args);
}

char **mpilaunch_argv_hosts(int ranks, const char *hostfile, const char *prog, char *const *args, size_t n_args)
{
    char **v = xcalloc(22 + n_args, sizeof *v);
    size_t n = 0;
    v[n++] = xstrdup("mpirun");
    v[n++] = xstrdup("-np");
    v[n++] = xasprintf("%d", ranks);
    /* Open MPI refuses to start as root unless told; a daemon run as root
     * (containers, the tests here) is the operator's choice, not ours. */
    if (geteuid() == 0)
        v[n++] = xstrdup("--allow-run-as-root");
    /* Slots are hardware threads, the count we compare against; more ranks
     * than that would be refused ("not enough slots") unless oversubscribed,
     * which is what a user asking for it on a small machine means. */
    v[n++] = xstrdup("--use-hwthread-cpus");
    /* With a hostfile (traind.yaml(5), mpi_hostfile) its slots are the
     * count: more ranks than it has are refused by mpirun, as they should be. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (hostfile) {
        v[n++] = xstrdup("--hostfile");
        v[n++] = xstrdup(hostfile);
    } else if (cpus > 0 && ranks > cpus)
        v[n++] = xstrdup("--oversubscribe");
    /* Each rank runs its own pool of `threads` compute threads; mpirun's
     * default binding (a core per rank for up to 2 ranks) would squeeze them
     * all onto one core. */
    v[n++] = xstrdup("--bind-to");
    v[n++] = xstrdup("none");
    /* A rank waiting in a collective yields the CPU instead of spinning:
     * on a machine whose cores are shared (other jobs, other users) a
     * spinning rank starves the one it waits for; measured here with two
     * other busy processes, a 2000-step 2-rank MLP took 7.0 s spinning and
     * 0.6-2.0 s yielding. */
    v[n++] = xstrdup("--mca");
    v[n++] = xstrdup("mpi_yield_when_idle");
    v[n++] = xstrdup("1");
    /* No rank reads stdin; and trainctl's mpirun runs in a process group of
     * its own, where reading the terminal would stop it (SIGTTIN). */
    v[n++] = xstrdup("--stdin");
    v[n++] = xstrdup("none");
    v[n++] = xstrdup(prog);
    for (size_t i = 0; i < n_args; i++)
        v[n++] = xstrdup(args[i]);
    v[n] = NULL;
    return v;
}

void mpilaunch_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

int mpilaunch_exec(char **argv, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent > 0 && getppid() != parent)
        _exit(3);    /* the parent died before the death signal was set */
    char self[32];
    snprintf(self, sizeof self, "%d", (int)getpid());
    for (char **p = argv; *p; p++)
        if (strcmp(*p, MPILAUNCH_SELF_PID) == 0)
            *p = self;
    execvp(argv[0], argv);
    return -errno;
}

int mpilaunch_main(int argc, char **argv)
{
    /* argv: traind --mpi-launch PPID mpirun ... */
    if (argc < 4) {
        fprintf(stderr, "usage: traind --mpi-launch PPID mpirun ARGS... (started by traind)\n");
        return 2;
    }
    char *end;
    long ppid = strtol(argv[2], &end, 10);
    if (*end || ppid < 0) {
        fprintf(stderr, "traind --mpi-launch: bad PPID '%s'\n", argv[2]);
        return 2;
    }
    int rc = mpilaunch_exec(argv + 3, (pid_t)ppid);
    fprintf(stderr, "traind: cannot run %s: %s\n", argv[3], strerror(-rc));
    return 1;
}

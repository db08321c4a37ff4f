/* mpilaunch: mpirun's command line (the flags and when each is given) and
 * finding the MPI worker.  Nothing here needs Open MPI installed. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/dist.h"
#include "traind/mpilaunch.h"
#include "tl.h"

static int find(char **v, const char *s)
{
    for (int i = 0; v[i]; i++)
        if (!strcmp(v[i], s))
            return i;
    return -1;
}

START_TEST(argv_has_the_flags_it_needs)
{
    char *args[] = {"--run", "job.yaml", "--out", "dir"};
    char **v = mpilaunch_argv(2, "/opt/traind-mpi-worker", args, 4);
    ck_assert_str_eq(v[0], "mpirun");
    int np = find(v, "-np");
    ck_assert_int_ge(np, 0);
    ck_assert_str_eq(v[np + 1], "2");
    int b = find(v, "--bind-to");
    ck_assert_int_ge(b, 0);
    ck_assert_str_eq(v[b + 1], "none");
    int y = find(v, "mpi_yield_when_idle");
    ck_assert_int_ge(y, 1);
    ck_assert_str_eq(v[y - 1], "--mca");
    ck_assert_int_ge(find(v, "--stdin"), 0);
    /* run-as-root only as root */
    ck_assert_int_eq(find(v, "--allow-run-as-root") >= 0, geteuid() == 0);
    /* 2 ranks oversubscribe only a 1-cpu machine */
    ck_assert_int_eq(find(v, "--oversubscribe") >= 0, sysconf(_SC_NPROCESSORS_ONLN) < 2);
    /* the program, then its arguments in order, then the end */
    int p = find(v, "/opt/traind-mpi-worker");
    ck_assert_int_gt(p, np);
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(v[p + 1 + i], args[i]);
    ck_assert_ptr_null(v[p + 5]);
    mpilaunch_argv_free(v);
}
END_TEST

START_TEST(more_ranks_than_cpus_oversubscribe)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    char **v = mpilaunch_argv((int)cpus + 1, "w", NULL, 0);
    ck_assert_int_ge(find(v, "--oversubscribe"), 0);
    mpilaunch_argv_free(v);
    v = mpilaunch_argv(1, "w", NULL, 0);
    ck_assert_int_lt(find(v, "--oversubscribe"), 0);
    mpilaunch_argv_free(v);
}
END_TEST

/* mpi_hostfile (traind.yaml(5)): --hostfile PATH before the program, and its
 * slots are the count, so no --oversubscribe however many ranks. */
START_TEST(hostfile_places_the_ranks)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    char **v = mpilaunch_argv_hosts((int)cpus + 1, "/shared/hosts", "w", NULL, 0);
    int h = find(v, "--hostfile");
    ck_assert_int_ge(h, 0);
    ck_assert_str_eq(v[h + 1], "/shared/hosts");
    ck_assert_int_lt(h, find(v, "w"));
    ck_assert_int_lt(find(v, "--oversubscribe"), 0);
    mpilaunch_argv_free(v);
    v = mpilaunch_argv_hosts(2, NULL, "w", NULL, 0);
    ck_assert_int_lt(find(v, "--hostfile"), 0);
    mpilaunch_argv_free(v);
}
END_TEST

START_TEST(worker_path_from_the_environment)
{
    setenv("TRAIND_MPI_WORKER", "/bin/sh", 1);
    char *p = mpilaunch_worker_path();
    ck_assert_str_eq(p, "/bin/sh");
    free(p);
    setenv("TRAIND_MPI_WORKER", "/nonexistent/traind-mpi-worker", 1);
    ck_assert_ptr_null(mpilaunch_worker_path());
    unsetenv("TRAIND_MPI_WORKER");
}
END_TEST

START_TEST(slices_cover_the_batch)
{
    for (int size = 1; size <= 8; size++) {
        int B = 8 * size, next = 0;
        for (int r = 0; r < size; r++) {
            int lo, n;
            dist_slice(B, r, size, &lo, &n);
            ck_assert_int_eq(lo, next);
            ck_assert_int_eq(n, 8);
            next = lo + n;
        }
        ck_assert_int_eq(next, B);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mpilaunch");
    TCase *tc = tcase_create("mpilaunch");
    tcase_add_test(tc, argv_has_the_flags_it_needs);
    tcase_add_test(tc, more_ranks_than_cpus_oversubscribe);
    tcase_add_test(tc, hostfile_places_the_ranks);
    tcase_add_test(tc, worker_path_from_the_environment);
    tcase_add_test(tc, slices_cover_the_batch);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

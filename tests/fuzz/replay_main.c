/*
 * replay_main — runs a fuzz harness without libFuzzer: every file given on
 * the command line (a directory stands for the files in it, in name order)
 * goes once through LLVMFuzzerTestOneInput().  With no arguments it replays
 * tests/fuzz/corpus/NAME and tests/fuzz/regressions/NAME, as `make test`
 * does from the repository root; NAME is the harness, taken from the
 * program's name (fuzz_NAME).
 *
 * A harness that finds a problem aborts (or a sanitizer stops it), so the
 * driver names each input on stderr before running it.  At the end it
 * prints one line in Check's summary format, which scripts/run-tests.sh adds
 * to the suite's totals:  "100%: Checks: N, Failures: 0, Errors: 0".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static const char *name = "?";
static int n_run, n_failed;

static void replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz-replay %s: cannot open %s: %s\n", name, path, strerror(errno));
        n_failed++;
        return;
    }
    size_t cap = 4096, len = 0;
    unsigned char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf)
        abort();
    /* An exact-size copy, so that a read past the end is caught by ASan in
     * `make check` just as it is under libFuzzer. */
    unsigned char *data = malloc(len ? len : 1);
    if (!data)
        abort();
    memcpy(data, buf, len);
    free(buf);
    fprintf(stderr, "fuzz-replay %s: %s (%zu bytes)\n", name, path, len);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    n_run++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the number of inputs replayed from path. */
static int replay_path(const char *path, int must_exist)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        if (must_exist) {
            fprintf(stderr, "fuzz-replay %s: %s: %s\n", name, path, strerror(errno));
            n_failed++;
        }
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        replay_file(path);
        return 1;
    }
    DIR *d = opendir(path);
    if (!d) {
        n_failed++;
        return 0;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof *names);
        if (!names || asprintf(&names[n], "%s/%s", path, e->d_name) < 0)
            abort();
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            replay_file(names[i]);
            count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    name = base ? base + 1 : argv[0];
    if (strncmp(name, "fuzz_", 5) == 0)
        name += 5;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            replay_path(argv[i], 1);
    } else {
        char *corpus, *regressions;
        if (asprintf(&corpus, "tests/fuzz/corpus/%s", name) < 0 ||
            asprintf(&regressions, "tests/fuzz/regressions/%s", name) < 0)
            abort();
        if (replay_path(corpus, 1) == 0) {
            fprintf(stderr, "fuzz-replay %s: no seed inputs in %s (run from the repository root)\n", name,
                    corpus);
            n_failed++;
        }
        replay_path(regressions, 0);
        free(corpus);
        free(regressions);
    }
    int total = n_run + n_failed;
    printf("%d%%: Checks: %d, Failures: %d, Errors: 0\n", total ? 100 * n_run / total : 100, total,
           n_failed);
    return n_failed ? 1 : 0;
}

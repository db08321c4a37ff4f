/* history — thinning a finished job's metrics.jsonl.  See traind/history.h. */
#include "traind/history.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/hf_state.h"
#include "traind/util.h"

/* Whole lines of f (a torn last one is not counted). */
static size_t count_lines(FILE *f)
{
    size_t n = 0;
    int c, last = '\n';
    while ((c = getc(f)) != EOF) {
        if (c == '\n')
            n++;
        last = c;
    }
    (void)last;
    return n;
}

/* Whether line i of n is kept: all of the newest keep/2, and keep - keep/2
 * of the rest spread evenly (util.h's even_index, first included). */
static bool kept(size_t i, size_t n, size_t keep, size_t *next_old, size_t *k_old)
{
    size_t recent = keep / 2, old_n = n - recent, old_keep = keep - recent;
    if (i >= old_n)
        return true;
    if (i != *next_old)
        return false;
    (*k_old)++;
    *next_old = old_keep > 1 && *k_old < old_keep ? even_index(*k_old, old_n, old_keep) : old_n;
    return true;
}

/* Removes the trainer_state.json cache beside a run's metrics.jsonl. */
static int drop_state_cache(const char *path)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    if (strcmp(base, "metrics.jsonl") != 0)
        return 0;
    char *dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
    int rc = hf_cache_remove(dir);
    free(dir);
    return rc;
}

long history_thin_file(const char *path, size_t keep)
{
    if (keep < 2)
        keep = 2;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    FILE *in = fdopen(fd, "r");
    if (!in) {
        close(fd);
        return -ENOMEM;
    }
    size_t n = count_lines(in);
    if (n <= 2 * keep) {
        fclose(in);
        return 0;
    }
    rewind(in);
    atomic_file af;
    long rc = atomic_file_open(&af, path, 0644);
    int ofd = rc == 0 ? dup(af.fd) : -1;
    FILE *out = ofd >= 0 ? fdopen(ofd, "w") : NULL;
    if (!out) {
        if (rc == 0) {
            rc = -errno;
            atomic_file_abort(&af);
        }
        if (ofd >= 0)
            close(ofd);
    } else {
        char *line = NULL;
        size_t cap = 0, i = 0, next_old = 0, k_old = 0;
        ssize_t len;
        while (i < n && (len = getline(&line, &cap, in)) > 0) {
            if (kept(i, n, keep, &next_old, &k_old) && fwrite(line, 1, (size_t)len, out) != (size_t)len)
                break;
            i++;
        }
        free(line);
        bool ok = i == n && fflush(out) == 0;
        if (fclose(out) != 0)
            ok = false;
        if (!ok) {
            rc = errno ? -errno : -EIO;
            atomic_file_abort(&af);
        } else {
            /* trainer_state.json's cache of the lines replaced goes first
             * (traind-run.yaml(5), TRAIN): a kill between leaves none */
            int cr = drop_state_cache(path);
            if (cr < 0)
                atomic_file_abort(&af);
            else
                cr = atomic_file_commit(&af);
            rc = cr < 0 ? cr : (long)(n - keep);
        }
    }
    fclose(in);
    return rc;
}

/* spool_lock — one daemon per spool.  See traind/spool_lock.h. */
#include "traind/spool_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/util.h"

static long read_holder(int fd)
{
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    return n > 0 ? strtol(buf, NULL, 10) : 0;
}

int spool_lock(const char *spool_dir, int *fd_out, long *holder)
{
    *fd_out = -1;
    *holder = 0;
    char *path = xasprintf("%s/" SPOOL_LOCK_NAME, spool_dir);
    /* O_NOFOLLOW | O_NONBLOCK: a planted symlink or FIFO is refused, not
     * followed or waited on. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    free(path);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        *holder = read_holder(fd);
        close(fd);
        return e == EWOULDBLOCK ? -EWOULDBLOCK : -e;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n) {
        /* the pid is only for the message of a second daemon: not fatal */
    }
    *fd_out = fd;
    return 0;
}

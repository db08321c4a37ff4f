/* util — allocation, files, time, checksums.  See traind/util.h. */
#include "traind/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
    fputs("traind: out of memory\n", stderr);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char **strv_dup(char *const *v, size_t n)
{
    char **c = xcalloc(n ? n : 1, sizeof *c);
    for (size_t i = 0; i < n; i++)
        c[i] = xstrdup(v[i]);
    return c;
}

void strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        oom();
    va_end(ap);
    return s;
}

int read_file(const char *path, size_t max_bytes, char **out, size_t *out_len)
{
    return read_file_flags(path, max_bytes, 0, out, out_len);
}

int read_file_flags(const char *path, size_t max_bytes, int oflags, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    /* A device is refused before it is opened (opening some has effects:
     * think of /dev/watchdog); the fstat below checks what was opened. */
    struct stat pre;
    int src = (oflags & O_NOFOLLOW) ? lstat(path, &pre) : stat(path, &pre);
    if (src < 0)
        return -errno;
    if (!S_ISREG(pre.st_mode))
        return S_ISDIR(pre.st_mode) ? -EISDIR : S_ISLNK(pre.st_mode) ? -ELOOP : -EINVAL;
    /* O_NONBLOCK: opening a FIFO swapped in meanwhile must not wait for a
     * writer; whatever is not a regular file is refused just below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | oflags);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    }
    /* A regular file: reads never block on O_NONBLOCK, but a read from a
     * file on a hung mount must still wait rather than fail with EAGAIN. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if ((size_t)st.st_size > max_bytes) {
        close(fd);
        return -EFBIG;
    }
    /* Read to EOF rather than trusting st_size: the file may grow. */
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max_bytes + 1) {
                free(buf);
                close(fd);
                return -EFBIG;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len > max_bytes) {
        free(buf);
        return -EFBIG;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

int fsync_parent_dir(const char *path)
{
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0)
        rc = -errno;
    else {
        if (fsync(fd) < 0 && errno != EINVAL)
            rc = -errno;
        close(fd);
    }
    free(copy);
    return rc;
}

bool stale_tmp_name(const char *name, const char *const *prefixes, size_t n, bool any_pid)
{
    for (size_t i = 0; i < n; i++) {
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) != 0)
            continue;
        if (any_pid)
            return true;
        /* NAME.tmp.PID (or .step-S.bin.tmp.PID): the pid after the last '.' */
        const char *p = strrchr(name, '.');
        char *end;
        long pid = p ? strtol(p + 1, &end, 10) : 0;
        if (!p || *end || pid <= 0)
            return false;
        return pid == (long)getpid() || (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
    }
    return false;
}

int remove_stale_tmp(const char *dir, const char *const *prefixes, size_t n, bool any_pid,
                     void (*on_removed)(const char *name, void *ctx), void *ctx)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (stale_tmp_name(e->d_name, prefixes, n, any_pid) && unlinkat(dirfd(d), e->d_name, 0) == 0) {
            removed++;
            if (on_removed)
                on_removed(e->d_name, ctx);
        }
    closedir(d);
    return removed;
}

int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc != 0)
        unlink(tmp);
    else
        rc = fsync_parent_dir(path);
out:
    free(tmp);
    return rc;
}

int mkdir_p(const char *path, unsigned mode)
{
    char *buf = xstrdup(path);
    int rc = 0;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) < 0)
            rc = -errno;
        else if (!S_ISDIR(st.st_mode))
            rc = -ENOTDIR;
    }
    free(buf);
    return rc;
}

double now_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void format_utc(double unix_time, char *buf, size_t len)
{
    time_t t = (time_t)unix_time;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static uint32_t crc32_table[256];

static void crc32_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc32_table[i] = c;
    }
}

uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc32_init_table);
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc32_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint64_t fnv64_update(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

const char *file_error_text(int rc)
{
    if (rc == -EINVAL)
        return "not a regular file";
    if (rc == -ELOOP)
        return "is a symbolic link";
    return strerror(-rc);
}

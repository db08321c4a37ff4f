/* disk — job directory usage and free space.  See traind/disk.h. */
#include "traind/disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Sum over the regular files of the directory open as fd (closed here);
 * with recurse, also of its "checkpoints" subdirectory. */
static long long usage_of(int fd, bool recurse)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    long long sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode))
            sum += (long long)st.st_blocks * 512;
        else if (recurse && S_ISDIR(st.st_mode) && strcmp(e->d_name, "checkpoints") == 0) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            long long s = sub >= 0 ? usage_of(sub, false) : 0;
            if (s > 0)
                sum += s;
        }
    }
    closedir(d);
    return sum;
}

long long disk_dir_usage(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return usage_of(fd, true);
}

int disk_has_room(const char *path, long long *free_bytes)
{
    struct statvfs vs;
    if (statvfs(path, &vs) < 0)
        return -errno;
    long long avail = (long long)vs.f_bavail * (long long)vs.f_frsize;
    long long size = (long long)vs.f_blocks * (long long)vs.f_frsize;
    long long want = size / 20 < (64LL << 20) ? size / 20 : (64LL << 20);
    if (want < (1LL << 20))
        want = 1LL << 20;
    *free_bytes = avail;
    return avail >= want;
}

long long disk_fs_size(const char *path)
{
    struct statvfs vs;
    if (statvfs(path, &vs) < 0)
        return -errno;
    return (long long)vs.f_blocks * (long long)vs.f_frsize;
}

bool disk_full_message(const char *msg)
{
    return msg && (strstr(msg, strerror(ENOSPC)) || strstr(msg, strerror(EDQUOT)));
}

/*
 * disk — what the job table needs to know about disk space: how much a
 * job's directory takes (max_job_disk) and whether the spool's file system
 * has room again after a disk-full failure.  Both block (stat calls): run
 * them on the thread pool, never on the loop thread.
 */
#ifndef TRAIND_DISK_H
#define TRAIND_DISK_H

#include <stdbool.h>

/* Bytes allocated to the regular files of dir and of its checkpoints/
 * subdirectory (st_blocks, so sparse files count what they use); symlinks
 * are not followed.  -errno when dir cannot be read. */
long long disk_dir_usage(const char *dir);

/* Whether the file system of path has room for jobs again: at least 1 MiB
 * free, and 5 % of its size or 64 MiB, whichever is less.  -errno when it
 * cannot be asked, else 0 or 1; *free_bytes gets the free space. */
int disk_has_room(const char *path, long long *free_bytes);

/* The size in bytes of the file system of path (statvfs), -errno when it
 * cannot be asked. */
long long disk_fs_size(const char *path);

/* Whether an error message is about a full disk or quota (the strerror
 * texts of ENOSPC and EDQUOT). */
bool disk_full_message(const char *msg);

#endif

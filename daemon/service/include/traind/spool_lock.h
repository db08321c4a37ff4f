/*
 * spool_lock — one daemon per spool.
 *
 * traind takes <spool>/traind.lock (flock, exclusive, non-blocking) before
 * it reads or writes anything else in the spool, and holds it until it
 * exits (the kernel drops it when the process dies, however it dies).  A
 * second daemon on the same spool finds it taken and exits at once, before
 * it could mark the first one's jobs as interrupted or rewrite traind.addr.
 * The file holds the holder's pid (for the message), nothing else.
 */
#ifndef TRAIND_SPOOL_LOCK_H
#define TRAIND_SPOOL_LOCK_H

#define SPOOL_LOCK_NAME "traind.lock"

/* Takes the lock of spool_dir (which must exist).  0 with *fd_out, the
 * descriptor to keep open (close-on-exec: training processes do not
 * inherit it); -EWOULDBLOCK when another process holds it, with *holder its
 * pid as the file says (0 if unknown); another -errno when the file cannot
 * be opened (a symlink or anything but a regular file is refused). */
int spool_lock(const char *spool_dir, int *fd_out, long *holder);

#endif

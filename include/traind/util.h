/*
 * util — small helpers shared by every module: allocation that aborts on OOM,
 * whole-file reads with a size cap, atomic file replacement, directories.
 *
 * The error convention of the whole tree, written once here:
 *
 *  - A function that can fail returns int: 0 on success, a negative errno
 *    value on failure (-ENOENT, -EFBIG; the libuv convention, so a uv_*
 *    result passes through unchanged).  Callers print it with
 *    file_error_text() / strerror(-rc) and map it where it leaves the
 *    process (api.c turns it into an HTTP status).  A function that says
 *    otherwise in its header (a bool question, a count, a pointer that is
 *    NULL on failure) is the exception, and says so.
 *  - Out of memory is not an error to handle: the x*() allocators abort.
 *  - Mistakes in user input (a run config, traind.yaml, a sweep, a POST body)
 *    are not errnos: every one is collected into a diag_list_t (diag.h) with
 *    the dotted key path and the line:column of the YAML node, reading on
 *    after each, so the user sees them all at once.  The validators
 *    (daemon/core/config_value.c) word them; config, dconfig and sweep all
 *    use those words.  The function itself then returns -1 (or a negative
 *    errno when the input could not be read at all).
 *  - Untrusted input is bounded before it is read: every reader takes a
 *    size cap (read_file's max_bytes, YTREE_MAX_BYTES, http.c's limits).
 */
#ifndef TRAIND_UTIL_H
#define TRAIND_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A deep copy of n strings (never NULL, even for n = 0), and its free. */
char **strv_dup(char *const *v, size_t n);
void strv_free(char **v, size_t n);

/* Reads a whole file into a NUL-terminated malloc'd buffer.  Fails with
 * -EFBIG if it is larger than max_bytes. */
int read_file(const char *path, size_t max_bytes, char **out, size_t *out_len);

/* read_file with more open(2) flags (O_NOFOLLOW for files a user may have
 * planted).  Neither ever blocks on a FIFO or a device: anything but a
 * regular file is -EINVAL (-EISDIR for a directory), without reading. */
int read_file_flags(const char *path, size_t max_bytes, int oflags, char **out, size_t *out_len);

/* A message for read_file's error codes: "not a regular file" for -EINVAL,
 * "is a symbolic link" for -ELOOP (O_NOFOLLOW), else strerror. */
const char *file_error_text(int rc);

/* Writes data to path atomically: PATH.tmp.PID, fsync, rename over path,
 * fsync the directory.  A reader sees the old file or the new one, never a
 * torn one, even across power loss. */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* Whether name is a temp file of such a write that its writer left: it
 * starts with one of prefixes[0..n) and ends in ".PID" of a process that is
 * gone (any_pid: whatever the pid, for a caller that knows no writer is
 * alive).  A name with this process's own pid is stale too: callers sweep
 * before they write, so an earlier process with the same pid (pid 1 in a
 * container) left it. */
bool stale_tmp_name(const char *name, const char *const *prefixes, size_t n, bool any_pid);

/* Removes dir's stale temp files (stale_tmp_name); on_removed(name, ctx)
 * (may be NULL) is told of each.  The number removed, or -errno when dir
 * cannot be read. */
int remove_stale_tmp(const char *dir, const char *const *prefixes, size_t n, bool any_pid,
                     void (*on_removed)(const char *name, void *ctx), void *ctx);

/* fsync the directory that contains path (so a rename in it is durable). */
int fsync_parent_dir(const char *path);

/* mkdir -p with the given mode for created components. */
int mkdir_p(const char *path, unsigned mode);

/* Monotonic seconds and wall-clock (UTC) helpers. */
double now_monotonic(void);
/* ISO-8601 UTC "2026-11-24T13:45:00Z" of a unix time into buf (>= 21 bytes). */
void format_utc(double unix_time, char *buf, size_t len);
double now_unix(void);

/* CRC-32 (IEEE, as zlib) of a buffer, continuing from crc (start with 0). */
uint32_t crc32_update(uint32_t crc, const void *data, size_t len);

/* 64-bit FNV-1a, continuing from h (start with FNV64_INIT). */
#define FNV64_INIT 0xcbf29ce484222325ULL
uint64_t fnv64_update(uint64_t h, const void *data, size_t len);

#endif

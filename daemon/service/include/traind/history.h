/*
 * history — thinning a finished job's metrics.jsonl on disk.
 *
 * A job logging every step writes ~130 bytes a step, so a long run's
 * history grows without bound.  Once its job has ended (nobody appends any
 * more) a file of more than 2 × keep lines is rewritten atomically (tmp +
 * fsync + rename) to keep lines: the newest keep / 2 lines all, and keep / 2
 * of the older ones evenly spread (the first among them), each line byte
 * for byte as it was.  Blocking: run it on the thread pool.
 */
#ifndef TRAIND_HISTORY_H
#define TRAIND_HISTORY_H

#include <stddef.h>

/* Thins path to keep (>= 2) lines when it has more than 2 × keep.  Returns
 * the lines dropped (0 when nothing was to do) or -errno; the file is then
 * as it was. */
long history_thin_file(const char *path, size_t keep);

#endif

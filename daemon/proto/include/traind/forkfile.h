/*
 * forkfile — what a fork job's directory holds besides an ordinary job's,
 * so that its training process (and a restarted traind) know it is a fork.
 *
 * POST /jobs/{id}/fork makes a job whose directory holds, before its
 * config.yaml is written (and all fsync'd, so a kill -9 at any point leaves
 * either no job or a whole fork):
 *
 *   fork-parent.bin      a hard link to the parent's kept checkpoint
 *                        (checkpoints/step-S.bin), so the parent's rolling
 *                        retention cannot delete it while the fork waits
 *   fork-metrics.jsonl   a hard link to the parent's metrics.jsonl (only
 *                        its points up to S are read), when it has one
 *   fork.json            {"parent","at_step","checkpoint","metrics"}
 *
 * fork.json names the two files relative to the job directory; what is
 * read back is untrusted: names must be plain file names.
 *
 * Also the listing of a job's kept checkpoints (GET /jobs/{id}/checkpoints,
 * the 409 of a fork from a step that has none).  Blocking: call on the
 * thread pool or at start-up.  Functions return 0 or a negative errno.
 */
#ifndef TRAIND_FORKFILE_H
#define TRAIND_FORKFILE_H

#include <stddef.h>
#include "traind/spool_names.h"

#define FORKFILE_NAME "fork.json"
#define FORKFILE_CKPT "fork-parent.bin"
#define FORKFILE_METRICS "fork-metrics.jsonl"
#define FORKFILE_MAX_BYTES 4096

typedef struct forkfile {
    char parent[SPOOL_ID_MAX + 1];
    long at_step;
    char checkpoint[64];   /* a file name in the job directory */
    char metrics[64];      /* "" when the parent had no metrics.jsonl */
} forkfile;

/* Links the parent's checkpoint (parent_dir/checkpoints/step-S.bin) and
 * metrics.jsonl into job_dir and writes fork.json there, all durably.
 * from_latest: link the parent's checkpoint.bin instead (a parent that has
 * ended, whose last checkpoint is at_step: it changes no more).  -ENOENT
 * when the checkpoint is gone. */
int forkfile_create(const char *job_dir, const char *parent_id, const char *parent_dir, long at_step,
                    int from_latest);

/* Removes what forkfile_create made (a fork that could not be saved whole). */
void forkfile_remove(const char *job_dir);

/* Reads job_dir/fork.json: 0 with *out, -ENOENT when the job is no fork,
 * -EINVAL when the file is not a valid fork.json. */
int forkfile_read(const char *job_dir, forkfile *out);

/* One kept checkpoint. */
typedef struct ckpt_entry {
    long step;
    long long bytes;
    double mtime;      /* unix time */
    int latest;        /* 1: checkpoint.bin (its step read from the file), 0: checkpoints/step-S.bin */
} ckpt_entry;

/* The kept checkpoints of job_dir, ascending by step: checkpoints/step-S.bin
 * and checkpoint.bin at latest_step (the job's checkpoint_step; < 0: left out).
 * At most max entries (the newest kept when there are more).  0 with *out
 * (malloc'd) and *n. */
int ckpt_list(const char *job_dir, long latest_step, size_t max, ckpt_entry **out, size_t *n);

/* Whether job_dir/checkpoints/step-<step>.bin exists as a regular file. */
int ckpt_kept(const char *job_dir, long step);

#endif

/*
 * job_ended_index — <spool>/jobs.index: a compact on-disk summary of the
 * ended jobs, so that a restart reads one file instead of a status.json
 * (and an idempotency.key, fork.json, trial.json) per finished job.
 *
 * The file is an 8-byte header and then records, each
 *     u32 magic | u32 payload length | u32 CRC-32 of the payload | payload
 * appended (O_APPEND, one write per batch, fsync'd) on libuv's thread pool
 * once a job's ended status.json is on disk.  A payload holds the job's
 * summary (what the job table keeps of an ended job) and the identity of
 * the status.json it was taken from (inode, size, mtime, ctime).
 *
 * status.json stays the truth: an entry describes that very status.json
 * (same inode, size and times).  A restart takes an ended job from its
 * entry without a system call (an ended job's file is not written again; a
 * write appends a newer entry) and checks every entry against its file
 * afterwards, off the loop (jobs_store.c); a job whose file changed since
 * is read again.  An entry with inode 0 says "read this job's files".  A
 * job whose index entry never made it to disk (a kill -9 between the two
 * writes) is read the slow way.  The index is untrusted input: a record
 * with a bad magic, length or checksum (a torn tail after a crash, a
 * corrupt file) ends the records used (the caller logs it, reads the rest
 * the slow way and rewrites the file); every string is bounded and
 * checked.  The last record of an id wins.
 *
 * Functions returning int return 0 or a negative errno value.
 */
#ifndef TRAIND_JOB_ENDED_INDEX_H
#define TRAIND_JOB_ENDED_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

#define JEI_FILE "jobs.index"          /* in the spool */
#define JEI_REC_MAX (256u << 10)        /* a record's payload at most */
#define JEI_FILE_MAX (1u << 30)         /* a larger index is not read */
#define JEI_NAME_MAX 4096               /* a job name in a record at most */
#define JEI_JSON_MAX (200u << 10)       /* its errors / params JSON at most */

/* Which status.json an entry was taken from. */
typedef struct jei_stat {
    uint64_t ino;
    int64_t size, mtime_ns, ctime_ns;
} jei_stat;

void jei_stat_of(const struct stat *st, jei_stat *out);
bool jei_stat_same(const jei_stat *a, const jei_stat *b);

/* An ended job's summary.  Decoded entries point into the loaded file
 * (valid until jei_table_free). */
typedef struct jei_entry {
    jei_stat st;
    const char *id, *name;                          /* never NULL */
    const char *idem_key, *parent, *experiment, *sched_id;   /* NULL = none */
    const char *params_json, *errors_json;          /* JSON text; NULL = none */
    int state;                                      /* job_state (jobs.h) */
    bool has_eval, has_config;                      /* has_config: status.json holds a config */
    int restarts, crashes, ranks;
    uint64_t seq;
    int64_t step, total_steps, checkpoint_step, forked_at;
    double lr, loss, loss_avg, grad_norm, eval_loss, tokens_per_step;
    double submitted_at, started_at, finished_at;
} jei_entry;

/* An encoded record, ready to append. */
typedef struct jei_rec {
    size_t len;                  /* of bytes: header and payload */
    unsigned char bytes[];
} jei_rec;

/* e's record (e->st included); NULL when a field is over its bound. */
jei_rec *jei_encode(const jei_entry *e);
/* Puts the identity of the status.json it describes into r (any thread). */
void jei_rec_set_stat(jei_rec *r, const struct stat *st);

/* ---- reading (start-up) ---- */

typedef struct jei_table jei_table;

typedef struct jei_load_info {
    bool missing;                /* no index file */
    bool bad;                    /* not all of it could be used (why says what) */
    size_t records;              /* records read whole */
    size_t bytes;                /* the file's size */
    char why[200];
} jei_load_info;

/* Reads <spool>/jobs.index (blocking: at start-up) and removes the temp
 * files of rewrites that were killed.  Always returns a table (empty when
 * the file is missing or unusable); *info says what was found. */
jei_table *jei_load(const char *spool, jei_load_info *info);
/* What jei_load does with the file's bytes: data (malloc'd, taken: freed
 * with the table; NULL for none) holds len bytes of an index, any bytes. */
jei_table *jei_parse(char *data, size_t len, jei_load_info *info);
/* The last entry of id, or NULL. */
const jei_entry *jei_find(const jei_table *t, const char *id);
/* Distinct ids in the table. */
size_t jei_count(const jei_table *t);
void jei_table_free(jei_table *t);

/* ---- writing (on the loop thread; the I/O on the thread pool) ---- */

typedef struct jei_writer jei_writer;

jei_writer *jei_writer_new(uv_loop_t *loop, const char *spool);
/* Replaces the file with recs (the writer takes them and the array);
 * appends queued before or after it follow it. */
void jei_writer_rewrite(jei_writer *w, jei_rec **recs, size_t n);
/* Appends r (taken) with the next batch.  A batch that cannot be written
 * is logged once and dropped (its jobs are read the slow way at the next
 * start): the file is cut back to its last whole record. */
void jei_writer_append(jei_writer *w, jei_rec *r);
/* Nothing queued or being written. */
bool jei_writer_idle(const jei_writer *w);
/* cb(ctx) on the loop thread each time the writer becomes idle. */
void jei_writer_set_on_idle(jei_writer *w, void (*cb)(void *ctx), void *ctx);
/* Records appended since it was made (for the log). */
unsigned long jei_writer_appended(const jei_writer *w);
/* Frees an idle writer (call after jei_writer_idle). */
void jei_writer_free(jei_writer *w);

#endif

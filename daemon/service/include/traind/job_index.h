/*
 * job_index — a hash index from a string key to a pointer, for the job
 * table (id → job, Idempotency-Key → job): lookups, inserts and removals
 * in O(1) expected, whatever the number of jobs.
 *
 * Open addressing with linear probing and tombstones; the table doubles
 * when it is 70 % full (tombstones counted) so probes stay short.  The
 * index does not own the keys: each key must stay valid (and unchanged)
 * while its entry is in the index — the job's own id or key string.
 * One thread (the loop's) uses an index at a time.
 */
#ifndef TRAIND_JOB_INDEX_H
#define TRAIND_JOB_INDEX_H

#include <stddef.h>

typedef struct job_index job_index;

job_index *job_index_new(void);
void job_index_free(job_index *x);

/* The value stored under key, or NULL. */
void *job_index_get(const job_index *x, const char *key);
/* Stores value under key (replacing what was there). */
void job_index_put(job_index *x, const char *key, void *value);
/* Removes key's entry, if any. */
void job_index_del(job_index *x, const char *key);
size_t job_index_count(const job_index *x);

#endif

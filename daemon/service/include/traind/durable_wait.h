/*
 * durable_wait — callers waiting for a record to be on disk: a job's
 * status.json, an experiment's experiment.json.  The record's owner numbers
 * the writes it starts (1, 2, ...); a caller who asks now waits for the
 * first write that starts after it asked (one in flight holds an older
 * snapshot), i.e. for write number started + 1.  Loop thread only.
 */
#ifndef TRAIND_DURABLE_WAIT_H
#define TRAIND_DURABLE_WAIT_H

typedef void (*durable_wait_cb)(void *arg, int rc);

typedef struct durable_wait {
    struct durable_wait *next;
    unsigned long need;              /* the write number it waits for */
    durable_wait_cb cb;
    void *arg;
} durable_wait;

/* Adds a waiter for write number need (writes started so far + 1). */
void durable_wait_add(durable_wait **list, unsigned long need, durable_wait_cb cb, void *arg);

/* Write number seq has ended with rc (0 or a negative errno value): calls,
 * and removes, every waiter it covers (need <= seq). */
void durable_wait_wake(durable_wait **list, unsigned long seq, int rc);

/* Calls, and removes, every waiter with rc (the record is going away). */
void durable_wait_drop_all(durable_wait **list, int rc);

#endif

/*
 * events — GET /events, the dashboard's live feed (Server-Sent Events;
 * the wire format is in traind(8)).
 *
 * The job table tells it of two things, each with one call: a job changed
 * state or was added (events_job_changed, from job_set_state) and a metrics
 * point came from a worker (events_point).  A job's changes are coalesced
 * to the end of the loop turn and published then as one `job` event with
 * the job object as GET /jobs/{id} gives it minus the config (from the
 * source set with events_set_job_source); a point is published at once
 * while its job is within its rate (below), and any job change pending is
 * published first, so the order holds (a job change likewise publishes the
 * job's waiting point first).
 *
 * Every event gets the id "<boot>-<seq>": boot is fixed for the daemon's
 * life (its start in microseconds), seq counts from 1.  The last
 * EVENTS_RING_MAX events (at most EVENTS_RING_BYTES of them) are kept, so a
 * client that reconnects with Last-Event-ID (the header, or
 * ?last_event_id= for the first connect) gets every event it missed, once;
 * one whose id is of another boot or has left the ring gets `event: reset`
 * and must refetch.  ?job=ID: only that job's events; a stream of one job
 * that does not resume starts with a `job` event (no id) of the job as it
 * is then, so a client that read the job before subscribing misses nothing.
 *
 * Bounded: a stream's output waiting for the client is capped at
 * EVENTS_STREAM_CAP, and may wait at most stall_ms with no write completing
 * (a client over either is dropped and reconnects); replay is paced by the
 * client's reading; at most max_streams streams at once: past it a
 * token-less stream gets 503 and a token holder's takes the place of a
 * token-less one (events_serve's trusted); ?job= of a job that does not
 * exist is 404.  A job's points go out at once up to EVENTS_POINT_BURST,
 * then at EVENTS_POINTS_PER_S: the ones in between are coalesced (the
 * newest waits for the next slot, and an eval point is kept), so what the
 * loop does per second does not grow with a job's log rate times the
 * readers.  ": ping" every EVENTS_PING_MS.  Nothing here blocks: events are
 * formatted once and written to each stream as copies.
 *
 * One feed per process (the hooks need no handle): events_init creates it;
 * every function is a no-op before, and everything runs on the loop thread.
 */
#ifndef TRAIND_EVENTS_H
#define TRAIND_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "traind/http.h"

struct cJSON;
struct train_point;

#define EVENTS_RING_MAX 65536
#define EVENTS_RING_BYTES (64u << 20)
#define EVENTS_STREAM_CAP (1u << 20)
#define EVENTS_PING_MS 15000
#define EVENTS_STALL_MS 30000      /* default of event_stream_timeout_ms (traind.yaml(5)) */
#define EVENTS_SWEEP_MS 1000       /* how often stalls are looked for (at most stall_ms / 4) */
#define EVENTS_POINTS_PER_S 20     /* a job's points per second past its burst */
#define EVENTS_POINT_BURST 64      /* a job's points sent at once, however fast it logs */

/* Creates the feed on loop.  max_streams >= 1.  Events are kept from
 * events_start on (so the jobs read at start-up make none). */
void events_init(uv_loop_t *loop, int max_streams);
void events_set_max_streams(int max_streams);
/* A stream whose output has waited this long with no write completing is
 * dropped (event_stream_timeout_ms).  ms >= 1. */
void events_set_stall_ms(unsigned ms);
/* Where job events get their object: a cJSON the feed frees, or NULL when
 * the job is gone (then no event). */
void events_set_job_source(struct cJSON *(*job_json)(void *ctx, const char *id), void *ctx);
void events_start(void);
/* Ends every stream (flushed) and closes the feed's handles; the loop can
 * then end.  events_free afterwards, once the loop has run. */
void events_stop(void);
void events_free(void);

/* --- the hooks --- */

/* Job id changed (state) or was added. */
void events_job_changed(const char *id);
/* A metrics point of job id, as /jobs/{id}/metrics returns it. */
void events_point(const char *id, const struct train_point *p);
/* An experiment's state. */
void events_experiment(const char *id, const char *state);

/* --- GET /events --- */

/* trusted: the request carries the API token (it may take a token-less
 * stream's place when every slot is held). */
void events_serve(const http_request *req, http_response *res, bool trusted);

/* --- for tests and /metrics --- */

/* The boot token and the last seq given. */
const char *events_boot(void);
uint64_t events_last_seq(void);
/* Streams open now; streams dropped (over their cap, stalled), so far;
 * token-less streams closed for a token holder's; points not sent for a
 * job over its rate. */
int events_stream_count(void);
unsigned long events_dropped(void);
unsigned long events_evicted(void);
unsigned long events_points_coalesced(void);

#endif

/*
 * events — the live feed of GET /events: a ring of the last events, and
 * the SSE streams reading it, each at its own place.  See traind/events.h.
 *
 * A stream is a cursor (next_seq) into the ring.  A stream that has caught
 * up gets each new event written at once; one that is behind (replaying
 * after a reconnect, or slow) is pumped from the ring while its queue is
 * under half its cap, and again each time a write completes.  A stream
 * whose queue passes the cap, or whose next event has left the ring, is
 * dropped; its client reconnects with Last-Event-ID.
 */
#include "traind/events.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "traind/api.h"
#include "traind/job_index.h"
#include "traind/jobs.h"
#include "traind/json.h"
#include "traind/log.h"
#include "traind/train_point.h"
#include "traind/util.h"

typedef struct ev_entry {
    uint64_t seq;          /* 0 = empty */
    char *job;             /* the job it is about (filter), or NULL */
    char *frame;           /* "id: ...\nevent: ...\ndata: ...\n\n" */
    size_t len;
} ev_entry;

typedef struct ev_stream {
    struct ev_stream *prev, *next;
    http_stream *hs;
    char *job;             /* ?job= filter, or NULL */
    uint64_t next_seq;     /* the next event to send */
    bool started;          /* hello written (after the head went out) */
    bool reset;            /* hello is followed by reset */
    bool resumed;          /* it came with a Last-Event-ID that the ring still holds */
    uint64_t hello_seq;    /* where it starts: the last seq it has had (hello's "seq") */
    bool closing;
} ev_stream;

typedef struct feed {
    uv_loop_t *loop;
    int max_streams;
    bool started, stopping;
    char boot[32];
    uint64_t last_seq;             /* the newest event's seq (0 = none yet) */
    uint64_t first_seq;            /* the oldest kept */
    ev_entry *ring;                /* EVENTS_RING_MAX */
    size_t ring_bytes;
    ev_stream *streams;
    int n_streams;
    unsigned long dropped;
    /* job changes waiting for the end of the loop turn */
    char **pending;
    size_t n_pending, cap_pending;
    job_index *pending_set;
    uv_timer_t flush_timer, ping_timer;
    bool handles_open;
    cJSON *(*job_json)(void *ctx, const char *id);
    void *job_ctx;
} feed;

static feed *g;

/* ---- the ring ------------------------------------------------------------ */

static ev_entry *ring_at(uint64_t seq)
{
    if (!g || seq == 0 || seq < g->first_seq || seq > g->last_seq)
        return NULL;
    ev_entry *e = &g->ring[seq % EVENTS_RING_MAX];
    return e->seq == seq ? e : NULL;
}

static void ring_drop_oldest(void)
{
    ev_entry *e = &g->ring[g->first_seq % EVENTS_RING_MAX];
    if (e->seq == g->first_seq) {
        g->ring_bytes -= e->len;
        free(e->job);
        free(e->frame);
        *e = (ev_entry){0};
    }
    g->first_seq++;
}

static void stream_pump(ev_stream *st);
static void stream_drop(ev_stream *st, const char *why);

/* Publishes one event: kept in the ring, written to the streams. */
static void publish(const char *type, const char *job, cJSON *data)
{
    char *json = json_print_exact(data);
    cJSON_Delete(data);
    if (!json)
        return;
    uint64_t seq = g->last_seq + 1;
    char *frame = xasprintf("id: %s-%" PRIu64 "\nevent: %s\ndata: %s\n\n", g->boot, seq, type, json);
    free(json);
    size_t len = strlen(frame);
    while (g->first_seq <= g->last_seq &&
           (g->last_seq - g->first_seq + 1 >= EVENTS_RING_MAX || g->ring_bytes + len > EVENTS_RING_BYTES))
        ring_drop_oldest();
    ev_entry *e = &g->ring[seq % EVENTS_RING_MAX];
    *e = (ev_entry){.seq = seq, .job = job ? xstrdup(job) : NULL, .frame = frame, .len = len};
    g->ring_bytes += len;
    g->last_seq = seq;
    if (g->first_seq == 0 || g->first_seq > seq)
        g->first_seq = seq;
    for (ev_stream *st = g->streams; st; st = st->next) {
        if (st->closing || !st->started)
            continue;
        if (st->next_seq != seq) {   /* behind: the ring feeds it as it reads */
            stream_pump(st);
            continue;
        }
        st->next_seq = seq + 1;
        if (st->job && (!job || strcmp(st->job, job) != 0))
            continue;
        if (http_stream_write(st->hs, frame, len) < 0 || http_stream_queued(st->hs) > EVENTS_STREAM_CAP)
            stream_drop(st, "over its output cap");
    }
}

/* ---- streams ------------------------------------------------------------- */

static void stream_drop(ev_stream *st, const char *why)
{
    if (st->closing)
        return;
    st->closing = true;
    g->dropped++;
    log_info("GET /events: a stream dropped (%s; %zu bytes queued); its client reconnects", why,
             http_stream_queued(st->hs));
    http_stream_close(st->hs, false);
}

/* Writes what st has not had yet while its queue is under half the cap. */
static void stream_pump(ev_stream *st)
{
    while (!st->closing && st->next_seq <= g->last_seq && http_stream_queued(st->hs) < EVENTS_STREAM_CAP / 2) {
        ev_entry *e = ring_at(st->next_seq);
        if (!e) {
            stream_drop(st, "its next event has left the ring");
            return;
        }
        st->next_seq++;
        if (st->job && (!e->job || strcmp(st->job, e->job) != 0))
            continue;
        if (http_stream_write(st->hs, e->frame, e->len) < 0) {
            stream_drop(st, "write failed");
            return;
        }
    }
}

/* ?job=ID, not resumed: the job as it is now, as a `job` event without an
 * id (it is not in the ring), so that a client that read the job and then
 * subscribed misses no change in between (it ended, say). */
static int write_job_snapshot(ev_stream *st)
{
    cJSON *o = g->job_json ? g->job_json(g->job_ctx, st->job) : NULL;
    if (!o)
        return 0;   /* no such job (yet): its events will say */
    char *json = json_print_exact(o);
    cJSON_Delete(o);
    if (!json)
        return 0;
    char *frame = xasprintf("event: job\ndata: %s\n\n", json);
    free(json);
    int rc = http_stream_write(st->hs, frame, strlen(frame));
    free(frame);
    return rc;
}

static void on_stream_drain(void *arg)
{
    ev_stream *st = arg;
    if (!g || st->closing)
        return;
    if (!st->started) {
        /* the head is out: hello, maybe reset, then the events from next_seq */
        st->started = true;
        if (!st->resumed) {
            /* a stream that starts now starts at the newest event: what came
             * while its head went out is in the job snapshot below */
            st->next_seq = g->last_seq + 1;
            st->hello_seq = g->last_seq;
        }
        char *hello = xasprintf("event: hello\ndata: {\"boot\":\"%s\",\"seq\":%" PRIu64 "}\n\n", g->boot,
                                st->hello_seq);
        int rc = http_stream_write(st->hs, hello, strlen(hello));
        free(hello);
        if (rc == 0 && st->reset) {
            static const char reset[] =
                "event: reset\ndata: {\"reason\":\"the events after Last-Event-ID are no longer kept (or it is of "
                "another run of traind): fetch the state again\"}\n\n";
            rc = http_stream_write(st->hs, reset, sizeof reset - 1);
        }
        if (rc == 0 && !st->resumed && st->job)
            rc = write_job_snapshot(st);
        if (rc < 0)
            return stream_drop(st, "write failed");
    }
    stream_pump(st);
}

static void on_stream_close(void *arg)
{
    ev_stream *st = arg;
    if (g) {
        if (st->prev)
            st->prev->next = st->next;
        else if (g->streams == st)
            g->streams = st->next;
        if (st->next)
            st->next->prev = st->prev;
        g->n_streams--;
    }
    free(st->job);
    free(st);
}

/* Where a stream with Last-Event-ID text id starts: 0 when it cannot
 * resume (reset), else the seq after it. */
static uint64_t resume_from(const char *id)
{
    size_t bl = strlen(g->boot);
    if (strncmp(id, g->boot, bl) != 0 || id[bl] != '-')
        return 0;
    const char *s = id + bl + 1;
    if (*s < '0' || *s > '9')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > g->last_seq)
        return 0;
    if (v == g->last_seq)
        return v + 1;
    if (v + 1 < g->first_seq)   /* what came after it has left the ring */
        return 0;
    return v + 1;
}

void events_serve(const http_request *req, http_response *res)
{
    /* what api_handle set (no-store) is replaced by SSE's own headers */
    free(res->extra_headers);
    res->extra_headers = NULL;
    res->extra_len = 0;
    bool head = strcmp(req->method, "HEAD") == 0;
    if (!head && strcmp(req->method, "GET") != 0) {
        http_response_error(res, 405, "method not allowed");
        http_response_add_header(res, "Allow", "GET, HEAD");
        return;
    }
    http_response_add_header(res, "Cache-Control", "no-cache");
    if (!g || !g->started || g->stopping)
        return http_response_error(res, 503, "traind is not serving events (starting or stopping)");
    char *job = NULL, *last = NULL;
    int r = http_query_get(req->query, "job", &job);
    if (r < 0 || (r > 0 && !api_id_valid(job))) {
        free(job);
        return http_response_error(res, 400, "query parameter 'job' must be a job id");
    }
    const char *hdr = http_request_header(req, "Last-Event-ID");
    /* The header wins: EventSource sends it on every reconnect with the
     * newest id, while the URL still has the one of the first connect. */
    if (hdr)
        last = xstrdup(hdr);
    else if (http_query_get(req->query, "last_event_id", &last) < 0) {
        free(job);
        return http_response_error(res, 400, "query parameter 'last_event_id' is not valid percent-encoding");
    }
    if (g->n_streams >= g->max_streams) {
        free(job);
        free(last);
        http_response_error(res, 503, "too many event streams (max_event_streams)");
        http_response_add_header(res, "Retry-After", "5");
        return;
    }
    http_response_set(res, 200, "text/event-stream; charset=utf-8", NULL, 0);
    http_response_add_header(res, "X-Accel-Buffering", "no");
    if (head) {
        free(job);
        free(last);
        return;
    }
    ev_stream *st = xcalloc(1, sizeof *st);
    st->job = job;
    if (last && *last) {
        st->next_seq = resume_from(last);
        st->resumed = st->next_seq != 0;
        if (st->next_seq == 0) {
            st->reset = true;
            st->next_seq = g->last_seq + 1;
        }
    } else {
        st->next_seq = g->last_seq + 1;
    }
    free(last);
    st->hello_seq = st->next_seq - 1;
    st->next = g->streams;
    if (g->streams)
        g->streams->prev = st;
    g->streams = st;
    g->n_streams++;
    st->hs = http_response_stream(res, on_stream_drain, on_stream_close, st);
}

/* ---- the hooks ----------------------------------------------------------- */

static void flush_pending(void)
{
    if (!g)
        return;
    uv_timer_stop(&g->flush_timer);
    /* taken first: a job source that changes a job must not loop here */
    char **ids = g->pending;
    size_t n = g->n_pending;
    g->pending = NULL;
    g->n_pending = g->cap_pending = 0;
    for (size_t i = 0; i < n; i++)
        job_index_del(g->pending_set, ids[i]);
    for (size_t i = 0; i < n; i++) {
        cJSON *o = g->job_json ? g->job_json(g->job_ctx, ids[i]) : NULL;
        if (o)
            publish("job", ids[i], o);
        free(ids[i]);
    }
    free(ids);
}

static void on_flush_timer(uv_timer_t *t)
{
    flush_pending();
}

void events_job_changed(const char *id)
{
    if (!g || !g->started || g->stopping || !id)
        return;
    if (job_index_get(g->pending_set, id))
        return;
    if (g->n_pending == g->cap_pending) {
        g->cap_pending = g->cap_pending ? 2 * g->cap_pending : 16;
        g->pending = xrealloc(g->pending, g->cap_pending * sizeof *g->pending);
    }
    g->pending[g->n_pending++] = xstrdup(id);
    job_index_put(g->pending_set, g->pending[g->n_pending - 1], g);   /* the copy: id may be a transient job's */
    if (g->n_pending == 1)
        uv_timer_start(&g->flush_timer, on_flush_timer, 0, 0);   /* next loop turn, before it sleeps */
}

void events_point(const char *id, const train_point *p)
{
    if (!g || !g->started || g->stopping || !id)
        return;
    if (g->n_pending)
        flush_pending();   /* a job change before this point goes out before it */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", id);
    cJSON_AddItemToObject(o, "point", train_point_json(p));   /* as /jobs/{id}/metrics shows it */
    publish("point", id, o);
}

void events_experiment(const char *id, const char *state)
{
    if (!g || !g->started || g->stopping || !id)
        return;
    if (g->n_pending)
        flush_pending();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "state", state ? state : "");
    publish("experiment", NULL, o);
}

/* ---- life ---------------------------------------------------------------- */

static void on_ping(uv_timer_t *t)
{
    static const char ping[] = ": ping\n\n";
    for (ev_stream *st = g->streams; st; st = st->next)
        if (st->started && !st->closing &&
            (http_stream_write(st->hs, ping, sizeof ping - 1) < 0 || http_stream_queued(st->hs) > EVENTS_STREAM_CAP))
            stream_drop(st, "over its output cap");
}

void events_init(uv_loop_t *loop, int max_streams)
{
    if (g)
        return;
    g = xcalloc(1, sizeof *g);
    g->loop = loop;
    g->max_streams = max_streams > 0 ? max_streams : 1;
    snprintf(g->boot, sizeof g->boot, "%" PRIu64, (uint64_t)(now_unix() * 1e6));
    g->ring = xcalloc(EVENTS_RING_MAX, sizeof *g->ring);
    g->pending_set = job_index_new();
    uv_timer_init(loop, &g->flush_timer);
    uv_timer_init(loop, &g->ping_timer);
    g->handles_open = true;
    uv_timer_start(&g->ping_timer, on_ping, EVENTS_PING_MS, EVENTS_PING_MS);
    uv_unref((uv_handle_t *)&g->ping_timer);   /* the ping alone keeps no loop running */
}

void events_set_max_streams(int max_streams)
{
    if (g && max_streams > 0)
        g->max_streams = max_streams;
}

void events_set_job_source(cJSON *(*job_json)(void *ctx, const char *id), void *ctx)
{
    if (!g)
        return;
    g->job_json = job_json;
    g->job_ctx = ctx;
}

void events_start(void)
{
    if (g)
        g->started = true;
}

void events_stop(void)
{
    if (!g || g->stopping)
        return;
    flush_pending();   /* the last state changes go out first */
    g->stopping = true;
    for (ev_stream *st = g->streams; st; st = st->next)
        if (!st->closing) {
            st->closing = true;
            http_stream_close(st->hs, true);
        }
    if (g->handles_open) {
        uv_close((uv_handle_t *)&g->flush_timer, NULL);
        uv_close((uv_handle_t *)&g->ping_timer, NULL);
        g->handles_open = false;
    }
}

void events_free(void)
{
    if (!g)
        return;
    for (ev_stream *st = g->streams; st; st = st->next)
        st->hs = NULL;   /* their connections are gone with the server */
    for (size_t i = 0; i < EVENTS_RING_MAX; i++) {
        free(g->ring[i].job);
        free(g->ring[i].frame);
    }
    free(g->ring);
    for (size_t i = 0; i < g->n_pending; i++)
        free(g->pending[i]);
    free(g->pending);
    job_index_free(g->pending_set);
    free(g);
    g = NULL;
}

const char *events_boot(void)
{
    return g ? g->boot : "";
}

uint64_t events_last_seq(void)
{
    return g ? g->last_seq : 0;
}

int events_stream_count(void)
{
    return g ? g->n_streams : 0;
}

unsigned long events_dropped(void)
{
    return g ? g->dropped : 0;
}

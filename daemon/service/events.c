/*
 * events — the live feed of GET /events: a ring of the last events, and
 * the SSE streams reading it, each at its own place.  See traind/events.h.
 *
 * A stream is a cursor (next_seq) into the ring.  A stream that has caught
 * up gets each new event written at once; one that is behind (replaying
 * after a reconnect, or slow) is pumped from the ring while its queue is
 * under half its cap, and again each time a write completes.  A stream
 * whose queue passes the cap, whose queue has waited stall_ms with no write
 * completing (its client does not read), or whose next event has left the
 * ring, is dropped; its client reconnects with Last-Event-ID.
 *
 * Admission: ?job= of a job that does not exist is 404; past max_streams a
 * token-less stream is 503, while a token holder's takes the place of the
 * token-less stream that has waited longest on its client (token-less
 * clients can never lock token holders out).
 *
 * Points are rate-limited per job (a token bucket: EVENTS_POINT_BURST, then
 * EVENTS_POINTS_PER_S): within it a point goes out at once; past it the
 * job's newest point (and newest point with an eval_loss) waits for the next
 * token and the ones it replaces are not sent.  So the loop's work per
 * second is bounded whatever a job's log_every and however many streams
 * read: the progress socket is drained at the worker's pace, never at the
 * readers'.  A job change publishes the job's waiting point first, so a
 * point never follows the job's end.
 */
#include "traind/events.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
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
    bool trusted;          /* it came with the API token: never evicted for another */
    char peer[64];         /* the client's address, for the log */
    uint64_t opened_ms;    /* uv_now when it was accepted */
    uint64_t stalled_since;   /* uv_now since when output has waited with no write completing; 0 = none */
} ev_stream;

/* A job's point budget (the token bucket) and the points waiting for it. */
typedef struct ev_rate {
    struct ev_rate *prev, *next;
    char *id;
    double tokens;
    uint64_t refilled_ms;
    bool waiting;          /* has a point waiting */
    bool listed;           /* in the feed's waiting list (until the point timer prunes it) */
    bool has_eval;         /* eval_pt waits too (an older point than last_pt) */
    bool skipped;          /* a point was coalesced away since the last one published */
    long sent_step;        /* the step of the last point published; -1 = none yet */
    train_point last_pt, eval_pt;
} ev_rate;

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
    int n_streams;         /* registered, closing ones included (until their connection has closed) */
    int n_closing;
    unsigned stall_ms;
    unsigned long dropped, evicted, coalesced;
    /* points: a rate per job that logged lately, and those with a point waiting */
    ev_rate *rates;
    job_index *rate_index;
    ev_rate **waiting;
    size_t n_waiting, cap_waiting;
    /* job changes waiting for the end of the loop turn */
    char **pending;
    size_t n_pending, cap_pending;
    job_index *pending_set;
    uv_timer_t flush_timer, ping_timer, point_timer, sweep_timer;
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
static bool stream_send(ev_stream *st, const char *data, size_t len);
static void flush_job_points(const char *id);

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
        stream_send(st, frame, len);
    }
}

/* ---- streams ------------------------------------------------------------- */

/* Ends st now (what waits for its client is thrown away); it stays counted
 * until its connection has closed (on_stream_close). */
static void stream_end(ev_stream *st)
{
    st->closing = true;
    g->n_closing++;
    http_stream_close(st->hs, false);
}

static void stream_drop(ev_stream *st, const char *why)
{
    if (st->closing)
        return;
    g->dropped++;
    log_info("GET /events: a stream dropped (%s; %zu bytes queued); its client reconnects", why,
             http_stream_queued(st->hs));
    stream_end(st);
}

/* Queues data for st's client: dropped past the cap; a queue that the
 * kernel did not take at once starts the stall clock (see on_sweep). */
static bool stream_send(ev_stream *st, const char *data, size_t len)
{
    if (http_stream_write(st->hs, data, len) < 0) {
        stream_drop(st, "write failed");
        return false;
    }
    size_t queued = http_stream_queued(st->hs);
    if (queued > EVENTS_STREAM_CAP) {
        stream_drop(st, "over its output cap");
        return false;
    }
    if (queued > 0 && st->stalled_since == 0)
        st->stalled_since = uv_now(g->loop);
    return true;
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
        if (!stream_send(st, e->frame, e->len))
            return;
    }
}

/* ?job=ID, not resumed: the job as it is now, as a `job` event without an
 * id (it is not in the ring), so that a client that read the job and then
 * subscribed misses no change in between (it ended, say). */
static int write_job_snapshot(ev_stream *st)
{
    cJSON *o = g->job_json ? g->job_json(g->job_ctx, st->job) : NULL;
    if (!o)
        return 0;   /* gone since events_serve found it: nothing to show */
    char *json = json_print_exact(o);
    cJSON_Delete(o);
    if (!json)
        return 0;
    char *frame = xasprintf("event: job\ndata: %s\n\n", json);
    free(json);
    bool ok = stream_send(st, frame, strlen(frame));
    free(frame);
    return ok ? 0 : -EPIPE;
}

static void on_stream_drain(void *arg)
{
    ev_stream *st = arg;
    if (!g || st->closing)
        return;
    /* a write completed: the client reads; the clock restarts for what still waits */
    st->stalled_since = http_stream_queued(st->hs) > 0 ? uv_now(g->loop) : 0;
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
        bool ok = stream_send(st, hello, strlen(hello));
        free(hello);
        if (ok && st->reset) {
            static const char reset[] =
                "event: reset\ndata: {\"reason\":\"the events after Last-Event-ID are no longer kept (or it is of "
                "another run of traind): fetch the state again\"}\n\n";
            ok = stream_send(st, reset, sizeof reset - 1);
        }
        if (ok && !st->resumed && st->job)
            ok = write_job_snapshot(st) == 0;
        if (!ok)
            return;
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
        if (st->closing)
            g->n_closing--;
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

/* The token-less stream to end for a token holder's: the one that has
 * waited longest on its client (stalled first, the oldest stall first),
 * else the oldest; NULL when every stream is a token holder's. */
static ev_stream *eviction_victim(void)
{
    ev_stream *best = NULL;
    for (ev_stream *st = g->streams; st; st = st->next) {
        if (st->closing || st->trusted)
            continue;
        if (!best)
            best = st;
        else if (st->stalled_since && (!best->stalled_since || st->stalled_since < best->stalled_since))
            best = st;
        else if (!st->stalled_since && !best->stalled_since && st->opened_ms < best->opened_ms)
            best = st;
    }
    return best;
}

/* Whether a new stream may open (trusted: it came with the API token),
 * making room for it when a token-less one can go. */
static bool admit(bool trusted)
{
    if (g->n_streams - g->n_closing < g->max_streams)
        return true;
    ev_stream *victim = trusted ? eviction_victim() : NULL;
    if (!victim)
        return false;
    g->evicted++;
    log_info("GET /events: a token-less stream from %s closed to make room for a token holder's "
             "(max_event_streams %d)", victim->peer, g->max_streams);
    stream_end(victim);
    return true;
}

/* Whether job id exists now (the job source knows it). */
static bool job_exists(const char *id)
{
    cJSON *o = g->job_json ? g->job_json(g->job_ctx, id) : NULL;
    cJSON_Delete(o);
    return o != NULL;
}

void events_serve(const http_request *req, http_response *res, bool trusted)
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
    if (job && !job_exists(job)) {
        /* a stream of nothing would hold a slot for good */
        free(job);
        return http_response_error(res, 404, "no such job");
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
    /* HEAD opens nothing: it is answered as a GET would be, taking no slot */
    if (head ? g->n_streams - g->n_closing >= g->max_streams && (!trusted || !eviction_victim()) : !admit(trusted)) {
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
    st->trusted = trusted;
    st->opened_ms = uv_now(g->loop);
    snprintf(st->peer, sizeof st->peer, "%s", req->peer ? req->peer : "?");
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
        flush_job_points(ids[i]);
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

/* One point event.  When points of the job were coalesced away before it,
 * "coalesced_after" is the step of the last point published before them:
 * a client that needs every point (the job view) fetches the ones in between
 * from GET /jobs/{id}/metrics?after= (traind(8), GET /events). */
static void publish_point(ev_rate *r, const train_point *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", r->id);
    cJSON_AddItemToObject(o, "point", train_point_json(p));   /* as /jobs/{id}/metrics shows it */
    if (r->skipped && r->sent_step >= 0)
        cJSON_AddNumberToObject(o, "coalesced_after", (double)r->sent_step);
    r->skipped = false;
    r->sent_step = p->step;
    publish("point", r->id, o);
}

static void rate_refill(ev_rate *r, uint64_t now)
{
    r->tokens += (double)(now - r->refilled_ms) * EVENTS_POINTS_PER_S / 1000.0;
    if (r->tokens > EVENTS_POINT_BURST)
        r->tokens = EVENTS_POINT_BURST;
    r->refilled_ms = now;
}

/* Job id's rate, made (with a full bucket) when it has none. */
static ev_rate *rate_of(const char *id)
{
    ev_rate *r = job_index_get(g->rate_index, id);
    if (r)
        return r;
    r = xcalloc(1, sizeof *r);
    r->id = xstrdup(id);
    r->tokens = EVENTS_POINT_BURST;
    r->refilled_ms = uv_now(g->loop);
    r->sent_step = -1;
    r->next = g->rates;
    if (g->rates)
        g->rates->prev = r;
    g->rates = r;
    job_index_put(g->rate_index, r->id, r);
    return r;
}

static void rate_free(ev_rate *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        g->rates = r->next;
    if (r->next)
        r->next->prev = r->prev;
    job_index_del(g->rate_index, r->id);
    free(r->id);
    free(r);
}

/* Publishes what waits in r (its eval point first: it is the older);
 * r leaves the waiting list at the caller. */
static void rate_publish_waiting(ev_rate *r)
{
    if (r->has_eval) {
        bool skipped = r->skipped;   /* points between the two may have gone too */
        publish_point(r, &r->eval_pt);
        r->skipped = skipped;
        r->tokens -= 1;
    }
    publish_point(r, &r->last_pt);
    r->tokens -= 1;
    r->waiting = r->has_eval = false;
}

static void on_point_timer(uv_timer_t *t);

static void point_timer_arm(void)
{
    if (!uv_is_active((uv_handle_t *)&g->point_timer))
        uv_timer_start(&g->point_timer, on_point_timer, 1000 / EVENTS_POINTS_PER_S, 0);
}

/* Each job whose next token has come publishes what waits for it. */
static void on_point_timer(uv_timer_t *t)
{
    uint64_t now = uv_now(g->loop);
    size_t keep = 0;
    for (size_t i = 0; i < g->n_waiting; i++) {
        ev_rate *r = g->waiting[i];
        if (r->waiting) {   /* else published meanwhile (its job changed) */
            rate_refill(r, now);
            if (r->tokens < 1) {
                g->waiting[keep++] = r;
                continue;
            }
            rate_publish_waiting(r);
        }
        r->listed = false;
    }
    g->n_waiting = keep;
    if (keep)
        point_timer_arm();
}

/* Job id's waiting point goes out now (a change of the job follows it). */
static void flush_job_points(const char *id)
{
    ev_rate *r = job_index_get(g->rate_index, id);
    if (r && r->waiting)
        rate_publish_waiting(r);   /* its entry in g->waiting is skipped by the timer */
}

void events_point(const char *id, const train_point *p)
{
    if (!g || !g->started || g->stopping || !id)
        return;
    if (g->n_pending)
        flush_pending();   /* a job change before this point goes out before it */
    ev_rate *r = rate_of(id);
    rate_refill(r, uv_now(g->loop));
    if (!r->waiting && r->tokens >= 1) {
        r->tokens -= 1;
        publish_point(r, p);
        return;
    }
    /* over its rate: this point replaces the one waiting, which is not sent */
    if (r->waiting) {
        if (!isnan(r->last_pt.eval_loss)) {
            /* an eval point gives way only to a newer eval point (the curve
             * of eval_loss is sparse: each one counts) */
            if (r->has_eval) {
                g->coalesced++;
                r->skipped = true;
            }
            r->eval_pt = r->last_pt;
            r->has_eval = true;
        } else {
            g->coalesced++;
            r->skipped = true;
        }
    } else if (r->listed) {
        r->waiting = true;   /* still in the list since a job change published its last one */
    } else {
        r->waiting = r->listed = true;
        if (g->n_waiting == g->cap_waiting) {
            g->cap_waiting = g->cap_waiting ? 2 * g->cap_waiting : 16;
            g->waiting = xrealloc(g->waiting, g->cap_waiting * sizeof *g->waiting);
        }
        g->waiting[g->n_waiting++] = r;
    }
    r->last_pt = *p;
    point_timer_arm();
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
        if (st->started && !st->closing)
            stream_send(st, ping, sizeof ping - 1);
}

/* Drops the streams whose client has taken nothing for stall_ms while
 * output waited for it (it does not read: it would hold its slot, and up
 * to EVENTS_STREAM_CAP of memory, for as long as it stays connected), and
 * forgets the rates of jobs that have not logged for a while (a full
 * bucket is what a new one gets). */
static void on_sweep(uv_timer_t *t)
{
    uint64_t now = uv_now(g->loop);
    for (ev_stream *st = g->streams; st; st = st->next)
        if (!st->closing && st->stalled_since && now - st->stalled_since >= g->stall_ms) {
            char why[96];
            snprintf(why, sizeof why, "its client read nothing for %u ms", g->stall_ms);
            stream_drop(st, why);
        }
    for (ev_rate *r = g->rates, *next; r; r = next) {
        next = r->next;
        if (r->waiting || r->listed)
            continue;
        rate_refill(r, now);
        if (r->tokens >= EVENTS_POINT_BURST)
            rate_free(r);
    }
}

static void sweep_timer_start(void)
{
    unsigned every = g->stall_ms / 4 < EVENTS_SWEEP_MS ? g->stall_ms / 4 : EVENTS_SWEEP_MS;
    uv_timer_start(&g->sweep_timer, on_sweep, every ? every : 1, every ? every : 1);
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
    g->rate_index = job_index_new();
    g->stall_ms = EVENTS_STALL_MS;
    uv_timer_init(loop, &g->flush_timer);
    uv_timer_init(loop, &g->ping_timer);
    uv_timer_init(loop, &g->point_timer);
    uv_timer_init(loop, &g->sweep_timer);
    g->handles_open = true;
    uv_timer_start(&g->ping_timer, on_ping, EVENTS_PING_MS, EVENTS_PING_MS);
    sweep_timer_start();
    /* neither alone keeps a loop running */
    uv_unref((uv_handle_t *)&g->ping_timer);
    uv_unref((uv_handle_t *)&g->sweep_timer);
}

void events_set_max_streams(int max_streams)
{
    if (g && max_streams > 0)
        g->max_streams = max_streams;
}

void events_set_stall_ms(unsigned ms)
{
    if (!g || ms == 0 || ms == g->stall_ms)
        return;
    g->stall_ms = ms;
    if (g->handles_open)
        sweep_timer_start();
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
    for (size_t i = 0; i < g->n_waiting; i++) {
        if (g->waiting[i]->waiting)
            rate_publish_waiting(g->waiting[i]);   /* the last points, before the last changes */
        g->waiting[i]->listed = false;
    }
    g->n_waiting = 0;
    flush_pending();   /* the last state changes go out first */
    g->stopping = true;
    for (ev_stream *st = g->streams; st; st = st->next)
        if (!st->closing) {
            st->closing = true;
            g->n_closing++;
            http_stream_close(st->hs, true);
        }
    if (g->handles_open) {
        uv_close((uv_handle_t *)&g->flush_timer, NULL);
        uv_close((uv_handle_t *)&g->ping_timer, NULL);
        uv_close((uv_handle_t *)&g->point_timer, NULL);
        uv_close((uv_handle_t *)&g->sweep_timer, NULL);
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
    while (g->rates)
        rate_free(g->rates);
    job_index_free(g->rate_index);
    free(g->waiting);
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

unsigned long events_evicted(void)
{
    return g ? g->evicted : 0;
}

unsigned long events_points_coalesced(void)
{
    return g ? g->coalesced : 0;
}

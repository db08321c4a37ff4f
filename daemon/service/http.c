/*
 * http — HTTP/1.1 server transport: sockets and timers from libuv, request
 * parsing from http_parser, nothing else.  See include/traind/http.h.
 *
 * A connection's life:
 *
 *   accept ─▶ reading ─(request complete)─▶ handler ─▶ uv_write ─▶ reading …
 *                │                                         │
 *                └─ error / Connection: close / EOF ───────┴─▶ finishing:
 *                   uv_shutdown (flushes queued responses, then FIN), keep
 *                   reading and discarding until the peer's EOF ("lingering
 *                   close": closing with unread data would send an RST that
 *                   can destroy our last response before the client reads it)
 *                   ─▶ uv_close of the stream and its timer ─▶ freed
 *
 * One timer per connection bounds every state: idle (no request in
 * progress), in a request (slowloris), paused because the client does not
 * read its responses, and finishing.  Whatever state it fires in, the
 * connection is closed.
 *
 * Pipelining needs no queue of our own: the handler is synchronous, so each
 * response is handed to uv_write as its request completes, and libuv writes
 * them in order.  Backpressure: when more than HIGH_WATER bytes of responses
 * wait in the stream's write queue, the parser is paused (http_parser_pause)
 * right after the request it just answered, the unparsed rest of the read is
 * kept aside and reading stops until the queue drains below LOW_WATER.
 */
#include "traind/http.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <http_parser.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "traind/util.h"

#ifndef TRAIND_VERSION
#define TRAIND_VERSION "0"
#endif

#define READ_BUF_SIZE (64 * 1024)
#define HIGH_WATER (1024 * 1024)
#define LOW_WATER (256 * 1024)
#define LINGER_MS 2000u         /* after our FIN, wait this long for the peer's */
#define STOP_FLUSH_MS 1000u     /* on server stop, time to flush queued responses */
#define DEFER_STASH_MAX (64 * 1024) /* input kept while an answer is owed; past it, reading stops */
#define MAX_REJECTING 64u       /* over-cap connections being answered 503 at once */
#define HEADER_OVERHEAD 4       /* ": " and CRLF of each header line, for the 16 KiB limit */
#define TRIM_AFTER_CONNS 256u   /* malloc_trim once this many connections have all closed */

/* A growable byte buffer. */
typedef struct dbuf {
    char *p;
    size_t len, cap;
} dbuf;

static void dbuf_reserve(dbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void dbuf_append(dbuf *b, const char *s, size_t n)
{
    dbuf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void dbuf_free(dbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* NUL-terminated contents ("" for an empty buffer). */
static const char *dbuf_str(const dbuf *b)
{
    return b->p ? b->p : "";
}

typedef union stream_handle {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} stream_handle;

typedef struct conn conn;

struct http_server {
    uv_loop_t *loop;
    stream_handle listener;
    bool is_unix;
    bool listener_closed;
    bool stopping;
    char *unix_path;
    char address[INET6_ADDRSTRLEN + 16 + 108];
    http_server_opts opts;
    http_handler_fn handler;
    void *ctx;
    conn *conns;          /* doubly linked list of every connection not yet freed */
    unsigned n_conns;     /* serving connections (not counting rejected ones) */
    unsigned n_rejecting; /* over-cap connections being answered 503 */
    unsigned high_water;  /* most connections open at once since they last all closed */
    void (*on_closed)(void *arg);
    void *on_closed_arg;
    char readbuf[READ_BUF_SIZE]; /* shared: libuv's reads on one loop never overlap */
};

/* Offsets of one header in conn.hdrs: "name\0value\0". */
typedef struct hdr_off {
    size_t name, value;
} hdr_off;

#define PEER_MAX INET6_ADDRSTRLEN

struct conn {
    conn *prev, *next;
    http_server *srv;
    char peer[PEER_MAX];  /* the client's address, without the port */
    stream_handle h;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    int handles_open;
    http_parser parser;

    /* the request being parsed */
    dbuf url, hdrs, body;
    hdr_off *hoff;
    size_t n_hdrs, cap_hdrs;
    size_t header_bytes;
    bool in_value;       /* last header callback was a value */
    bool headers_done;   /* later header callbacks are chunked trailers: ignored */
    int err_status;      /* 413/431/505 decided in a callback */
    const char *err_msg; /* its message when not the usual one (static) */

    dbuf stash;          /* unparsed input kept while paused */
    bool rejecting;      /* over the connection cap: 503 and close */
    bool reading;
    bool paused;         /* parser paused for write backpressure */
    bool in_handler;
    bool finishing;      /* no more requests: flushing, then lingering */
    bool shut;           /* our FIN went out */
    bool eof;            /* the peer's FIN came in */
    bool closed;         /* uv_close called */
    http_deferred *deferred; /* the answer being waited for; reading is paused */
    http_stream *stream;     /* a streamed response (SSE): input is dropped, no timer */
    bool finish_after;   /* conn_finish was asked for while an answer was deferred */
};

struct http_deferred {
    conn *c;             /* NULL once the connection has closed */
    void (*gone)(void *arg);  /* told once when the client gives up (http_deferred_on_gone) */
    void *gone_arg;
    bool attached;       /* the handler has returned and c waits for us */
    bool answered;       /* answered before the handler returned: res holds it */
    bool keep_alive, http10, head_only;
    http_response res;
};

struct http_stream {
    conn *c;             /* NULL until the headers are out */
    void (*on_drain)(void *arg);
    void (*on_close)(void *arg);
    void *arg;
};

typedef struct wreq {
    uv_write_t req;
    conn *c;
    char *head;
    char *body;
} wreq;

static const http_parser_settings parser_settings;
static void conn_close(conn *c);
static void conn_finish(conn *c);
static void conn_feed(conn *c, const char *data, size_t len);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ------------------------------------------------------------------ */
/* small public helpers                                                 */

void http_server_opts_default(http_server_opts *o)
{
    *o = (http_server_opts){0};   /* every field a caller does not know of stays off */
    o->max_body = HTTP_DEFAULT_MAX_BODY;
    o->max_header = HTTP_DEFAULT_MAX_HEADER;
    o->idle_timeout_ms = HTTP_DEFAULT_IDLE_TIMEOUT_MS;
    o->request_timeout_ms = HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
    o->max_conns = HTTP_DEFAULT_MAX_CONNS;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

const char *http_request_header(const http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + need >= n)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

int http_pct_decode(const char *s, size_t len, bool reject_slash, bool plus_is_space, char **out)
{
    char *d = xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= len) {
                free(d);
                return -EINVAL;
            }
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0) {
                free(d);
                return -EINVAL;
            }
            c = (unsigned char)(h * 16 + l);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0' || (c == '/' && reject_slash)) {
            free(d);
            return -EINVAL;
        }
        d[n++] = (char)c;
    }
    d[n] = '\0';
    if (!utf8_valid((const unsigned char *)d, n)) {
        free(d);
        return -EINVAL;
    }
    *out = d;
    return 0;
}

int http_query_get(const char *query, const char *key, char **value)
{
    if (!query)
        return 0;
    size_t klen = strlen(key);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t nlen = eq ? (size_t)(eq - p) : n;
        char *name = NULL;
        if (nlen && http_pct_decode(p, nlen, false, true, &name) == 0) {
            bool match = strlen(name) == klen && memcmp(name, key, klen) == 0;
            free(name);
            if (match) {
                if (!eq) {
                    *value = xstrdup("");
                    return 1;
                }
                return http_pct_decode(eq + 1, n - nlen - 1, false, true, value) == 0 ? 1 : -EINVAL;
            }
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

void http_response_set(http_response *res, int status, const char *content_type, char *body, size_t len)
{
    if (res->body != body)
        free(res->body);
    res->status = status;
    res->content_type = content_type;
    res->body = body;
    res->body_len = body ? len : 0;
}

void http_response_error(http_response *res, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        abort();
    http_response_set(res, status, "application/json", s, strlen(s));
}

static bool header_text_ok(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

int http_response_add_header(http_response *res, const char *name, const char *value)
{
    if (!*name || !header_text_ok(name) || !header_text_ok(value) || strchr(name, ':'))
        return -EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    size_t add = nl + vl + 4;
    res->extra_headers = xrealloc(res->extra_headers, res->extra_len + add + 1);
    char *p = res->extra_headers + res->extra_len;
    memcpy(p, name, nl);
    p += nl;
    memcpy(p, ": ", 2);
    p += 2;
    memcpy(p, value, vl);
    p += vl;
    memcpy(p, "\r\n", 3);
    res->extra_len += add;
    return 0;
}

const char *http_server_address(const http_server *s)
{
    return s->address;
}

unsigned http_server_conn_count(const http_server *s)
{
    return s->n_conns;
}

/* ------------------------------------------------------------------ */
/* writing                                                              */

static void conn_resume(conn *c);

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    conn *c = w->c;
    free(w->head);
    free(w->body);
    free(w);
    if (c->closed)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->stream) {
        if (!c->finishing && c->stream->on_drain)
            c->stream->on_drain(c->stream->arg);
        return;
    }
    if (c->paused && !c->finishing && !c->deferred && uv_stream_get_write_queue_size(&c->h.stream) <= LOW_WATER)
        conn_resume(c);
}

/* Queues head + body (both malloc'd, taken; body may be NULL). */
static void conn_write(conn *c, char *head, size_t head_len, char *body, size_t body_len)
{
    wreq *w = xcalloc(1, sizeof *w);
    w->c = c;
    w->head = head;
    w->body = body;
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)head_len), uv_buf_init(body, (unsigned)body_len)};
    int r = uv_write(&w->req, &c->h.stream, bufs, body && body_len ? 2 : 1, on_write);
    if (r < 0) {
        free(head);
        free(body);
        free(w);
        conn_close(c);
    }
}

/* Writes res (taking its buffers).  head_only: a HEAD request. */
static void send_response(conn *c, http_response *res, bool keep_alive, bool http10, bool head_only)
{
    int status = res->status >= 100 && res->status <= 999 ? res->status : 500;
    bool bodyless = status < 200 || status == 204 || status == 304;
    dbuf h = {0};
    char line[256];
    /* nosniff: a browser must never run an answer (a job's name, a log)
     * as anything but the type it is sent as. */
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\nServer: traind/%s\r\nX-Content-Type-Options: nosniff\r\n",
                     status, http_status_text(status), TRAIND_VERSION);
    dbuf_append(&h, line, (size_t)n);
    if (!bodyless) {
        n = snprintf(line, sizeof line, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                     res->content_type ? res->content_type : "application/json", res->body_len);
        dbuf_append(&h, line, (size_t)n);
    }
    if (res->extra_headers)
        dbuf_append(&h, res->extra_headers, res->extra_len);
    if (!keep_alive)
        dbuf_append(&h, "Connection: close\r\n", 19);
    else if (http10)
        dbuf_append(&h, "Connection: keep-alive\r\n", 24);
    dbuf_append(&h, "\r\n", 2);

    char *body = res->body;
    size_t blen = res->body_len;
    if (bodyless || head_only || blen == 0) {
        free(body);
        body = NULL;
        blen = 0;
    }
    res->body = NULL;
    free(res->extra_headers);
    res->extra_headers = NULL;
    conn_write(c, h.p, h.len, body, blen);
}

/* An error answer outside the handler: always closes the connection. */
static void send_error(conn *c, int status, const char *msg)
{
    http_response res = {0};
    http_response_error(&res, status, msg);
    send_response(c, &res, false, false, false);
}

/* The head of a streamed response: no Content-Length, the body ends with
 * the connection.  HTTP/1.1 whatever the request's version, as every other
 * answer (RFC 9110 6.2: the highest minor version the server supports); a
 * body ended by the close is HTTP/1.0's own framing, so a 1.0 client reads
 * it the same. */
static void send_stream_head(conn *c, http_response *res)
{
    dbuf h = {0};
    char line[256];
    int n = snprintf(line, sizeof line,
                     "HTTP/1.1 200 OK\r\nServer: traind/%s\r\nX-Content-Type-Options: nosniff\r\nContent-Type: %s\r\n",
                     TRAIND_VERSION, res->content_type ? res->content_type : "application/json");
    dbuf_append(&h, line, (size_t)n);
    if (res->extra_headers)
        dbuf_append(&h, res->extra_headers, res->extra_len);
    dbuf_append(&h, "Connection: close\r\n\r\n", 21);
    free(res->body);
    res->body = NULL;
    free(res->extra_headers);
    res->extra_headers = NULL;
    conn_write(c, h.p, h.len, NULL, 0);
}

/* A stream's socket send buffer is fixed (no autotuning, which lets one
 * grow to megabytes): a client that stops reading then holds little of the
 * kernel's memory, and its stall shows in the write queue soon
 * (http_stream_queued), where the stream's owner can see it and drop it.
 * Plenty for a feed of small events; the kernel doubles the value. */
#define STREAM_SNDBUF (32 * 1024)

static void stream_fix_sndbuf(conn *c)
{
    int v = STREAM_SNDBUF;
    uv_send_buffer_size(&c->h.handle, &v);   /* best effort: an error leaves the default */
}

/* ------------------------------------------------------------------ */
/* connection lifecycle                                                 */

static void server_maybe_done(http_server *s)
{
    if (!s->stopping || !s->listener_closed || s->conns)
        return;
    void (*cb)(void *) = s->on_closed;
    void *arg = s->on_closed_arg;
    free(s->unix_path);
    free(s);
    if (cb)
        cb(arg);
}

static void conn_reset_message(conn *c)
{
    c->url.len = c->hdrs.len = c->body.len = 0;
    c->n_hdrs = 0;
    c->header_bytes = 0;
    c->in_value = false;
    c->headers_done = false;
    c->err_status = 0;
    c->err_msg = NULL;
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->rejecting)
        s->n_rejecting--;
    else
        s->n_conns--;
    if (c->stream) {
        http_stream *st = c->stream;
        c->stream = NULL;
        if (st->on_close)
            st->on_close(st->arg);
        free(st);
    }
    dbuf_free(&c->url);
    dbuf_free(&c->hdrs);
    dbuf_free(&c->body);
    dbuf_free(&c->stash);
    free(c->hoff);
    free(c);
    if (s->n_conns + s->n_rejecting == 0) {
#ifdef __GLIBC__
        /* After a crowd (a burst of clients, an attack) has gone, give the
         * memory of its connections back to the system rather than keep the
         * peak for good. */
        if (s->high_water >= TRIM_AFTER_CONNS)
            malloc_trim(0);
#endif
        s->high_water = 0;
    }
    server_maybe_done(s);
}

/* The client of c's owed answer is gone (closed, reset, or half-closed):
 * the owner may stop working on it.  Once. */
static void deferred_gone(conn *c)
{
    http_deferred *d = c->deferred;
    if (!d || !d->gone)
        return;
    void (*gone)(void *) = d->gone;
    d->gone = NULL;
    gone(d->gone_arg);
}

static void conn_close(conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    deferred_gone(c);
    if (c->deferred) {   /* its answer, when it comes, is dropped */
        c->deferred->c = NULL;
        c->deferred = NULL;
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close(&c->h.handle, on_conn_handle_closed);
}

static void on_timer(uv_timer_t *t)
{
    conn_close(t->data);
}

static void conn_timer(conn *c, unsigned ms)
{
    if (!c->closed)
        uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = h->data;
    buf->base = c->srv->readbuf;
    buf->len = sizeof c->srv->readbuf;
}

static void conn_read_start(conn *c)
{
    if (c->reading || c->closed)
        return;
    if (uv_read_start(&c->h.stream, alloc_cb, on_read) == 0)
        c->reading = true;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    if (c->closed)
        return;
    c->shut = true;
    if (status < 0 || c->eof || c->srv->stopping)
        conn_close(c);
    else
        conn_timer(c, LINGER_MS); /* wait for the peer's FIN, discarding what it sends */
}

/* No more requests on c: flush what is queued, send FIN, linger, close. */
static void conn_finish(conn *c)
{
    if (c->finishing || c->closed)
        return;
    if (c->deferred) {   /* the answer still owed goes out first */
        c->finish_after = true;
        if (c->srv->stopping)
            conn_timer(c, STOP_FLUSH_MS);
        return;
    }
    c->finishing = true;
    c->paused = false;
    dbuf_free(&c->stash);
    http_server *s = c->srv;
    conn_timer(c, s->stopping ? STOP_FLUSH_MS : s->opts.request_timeout_ms);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, &c->h.stream, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    if (!c->eof)
        conn_read_start(c); /* to drain until EOF */
}

static void conn_resume(conn *c)
{
    c->paused = false;
    http_parser_pause(&c->parser, 0);
    conn_timer(c, c->srv->opts.idle_timeout_ms); /* paused only between requests */
    dbuf rest = c->stash;
    c->stash = (dbuf){0};
    if (rest.len)
        conn_feed(c, rest.p, rest.len);
    dbuf_free(&rest);
    if (!c->paused && !c->finishing && !c->closed)
        conn_read_start(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (c->closed)
        return;
    if (nread > 0) {
        if (!c->finishing)
            conn_feed(c, buf->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    uv_read_stop(st);
    c->reading = false;
    if (nread != UV_EOF) {
        conn_close(c);
        return;
    }
    c->eof = true;
    /* An HTTP/1.1 client that sends its FIN while waiting has given up:
     * the answer, if it still comes, is sent, but its work may stop. */
    deferred_gone(c);
    if (c->shut)
        conn_close(c);
    else
        conn_finish(c); /* answer what was complete, then close */
}

/* Feeds bytes to the parser; handles errors, pauses and Connection: close. */
static void conn_feed(conn *c, const char *data, size_t len)
{
    if (c->finishing || c->closed || c->stream)
        return;
    if (c->paused) {
        dbuf_append(&c->stash, data, len);
        if (c->deferred && c->stash.len > DEFER_STASH_MAX && c->reading) {
            uv_read_stop(&c->h.stream);
            c->reading = false;
        }
        return;
    }
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    if (c->closed || c->stream)   /* a stream began: the rest of the input is dropped */
        return;
    if (c->finishing) /* the handler's response closes the connection */
        return;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        if (!c->paused) { /* paused to end the connection after this response */
            conn_finish(c);
            return;
        }
        if (n < len)
            dbuf_append(&c->stash, data + n, len - n);
        /* While an answer is owed, reading goes on (into the stash, up
         * to DEFER_STASH_MAX) so that a client's close is seen and its
         * work can be dropped (http_deferred_on_gone). */
        if (!c->deferred || c->stash.len > DEFER_STASH_MAX) {
            uv_read_stop(&c->h.stream);
            c->reading = false;
        }
        return;
    }
    if (e != HPE_OK) {
        int status = c->err_status;
        const char *msg;
        if (!status)
            status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
        if (c->err_msg)
            msg = c->err_msg;
        else if (status == 413)
            msg = "request body too large";
        else if (status == 431)
            msg = "request headers too large";
        else if (status == 414)
            msg = "request target too long";
        else
            msg = http_errno_description(e);
        send_error(c, status, msg);
        conn_finish(c);
        return;
    }
    if (c->parser.upgrade) /* protocol switch requested; we do not speak any other */
        conn_finish(c);
}

/* ------------------------------------------------------------------ */
/* http_parser callbacks                                                */

static int header_account(conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->srv->opts.max_header) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    conn_reset_message(c);
    conn_timer(c, c->srv->opts.request_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->url.len + len > c->srv->opts.max_header) {
        c->err_status = 414;
        return -1;
    }
    if (header_account(c, len))
        return -1;
    dbuf_append(&c->url, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    bool start = c->n_hdrs == 0 || c->in_value;
    if (header_account(c, len + (start ? HEADER_OVERHEAD : 0)))
        return -1;
    if (c->headers_done)
        return 0;
    if (start) {
        if (c->n_hdrs == c->cap_hdrs) {
            c->cap_hdrs = c->cap_hdrs ? c->cap_hdrs * 2 : 16;
            c->hoff = xrealloc(c->hoff, c->cap_hdrs * sizeof *c->hoff);
        }
        if (c->n_hdrs)
            dbuf_append(&c->hdrs, "", 1); /* terminate the previous value */
        c->hoff[c->n_hdrs].name = c->hdrs.len;
        c->hoff[c->n_hdrs].value = SIZE_MAX;
        c->n_hdrs++;
        c->in_value = false;
    }
    dbuf_append(&c->hdrs, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (header_account(c, len))
        return -1;
    if (c->headers_done)
        return 0;
    if (memchr(at, '\0', len))
        return -1;
    if (!c->in_value) {
        dbuf_append(&c->hdrs, "", 1); /* terminate the name */
        c->hoff[c->n_hdrs - 1].value = c->hdrs.len;
        c->in_value = true;
    }
    dbuf_append(&c->hdrs, at, len);
    return 0;
}

/* The value of header name in the request being parsed, or NULL. */
static const char *conn_header(conn *c, const char *name)
{
    for (size_t i = 0; i < c->n_hdrs; i++)
        if (c->hoff[i].value != SIZE_MAX && strcasecmp(c->hdrs.p + c->hoff[i].name, name) == 0)
            return c->hdrs.p + c->hoff[i].value;
    return NULL;
}

/* Asks the server's expect callback about a request whose headers are in
 * (the body not yet sent): 100 or the status to refuse it with. */
static int expect_check(conn *c, http_parser *p, const char **msg)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *url = dbuf_str(&c->url);
    if (c->url.len == 0 || http_parser_parse_url(url, c->url.len, 0, &u) != 0)
        return 100;   /* on_message_complete answers 400 */
    char *path = u.field_set & (1 << UF_PATH) ? xstrndup(url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len)
                                              : xstrdup("/");
    char *query = u.field_set & (1 << UF_QUERY)
                      ? xstrndup(url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len) : xstrdup("");
    http_header *hv = c->n_hdrs ? xcalloc(c->n_hdrs, sizeof *hv) : NULL;
    size_t nh = 0;
    for (size_t i = 0; i < c->n_hdrs; i++)
        if (c->hoff[i].value != SIZE_MAX)
            hv[nh++] = (http_header){c->hdrs.p + c->hoff[i].name, c->hdrs.p + c->hoff[i].value};
    http_request req = {
        .method = http_method_str((enum http_method)p->method),
        .target = url,
        .path = path,
        .query = query,
        .headers = hv,
        .n_headers = nh,
        .body = "",
        .http_major = p->http_major,
        .http_minor = p->http_minor,
        .peer = c->peer,
    };
    int st = c->srv->opts.expect(c->srv->ctx, &req, msg);
    free(hv);
    free(path);
    free(query);
    return st;
}

static int on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    if (c->n_hdrs && !c->in_value) {
        /* a field with no value (http_parser allows "Name:" with nothing) */
        dbuf_append(&c->hdrs, "", 1);
        c->hoff[c->n_hdrs - 1].value = c->hdrs.len;
    }
    dbuf_append(&c->hdrs, "", 1);
    c->headers_done = true;
    if (p->content_length != ULLONG_MAX && p->content_length > c->srv->opts.max_body) {
        c->err_status = 413;
        return -1;
    }
    if (p->http_major != 1 || p->http_minor > 1) {
        /* HTTP/0.9 (no headers, no status line back) and 2.0+ in HTTP/1
         * framing are not what we speak: never answer them 200 */
        c->err_status = 505;
        c->err_msg = "only HTTP/1.0 and HTTP/1.1 are spoken here";
        return -1;
    }
    const char *expect = conn_header(c, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1) {
        /* The client waits for our word before sending the body: say no
         * now (a missing token, say) rather than invite a body we refuse. */
        const char *msg = NULL;
        int st = c->srv->opts.expect ? expect_check(c, p, &msg) : 100;
        if (st != 100) {
            c->err_status = st;
            c->err_msg = msg;
            return -1;
        }
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_write(c, xstrdup(cont), sizeof cont - 1, NULL, 0);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->body.len + len > c->srv->opts.max_body) {
        c->err_status = 413;
        return -1;
    }
    dbuf_append(&c->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    http_server *s = c->srv;
    bool keep_alive = http_should_keep_alive(p) && !p->upgrade;
    bool http10 = p->http_major == 1 && p->http_minor == 0;
    const char *method = http_method_str((enum http_method)p->method);
    bool head_only = p->method == HTTP_HEAD;

    /* split the target into path and query */
    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *url = dbuf_str(&c->url);
    http_response res = {.status = 200};
    char *path = NULL, *query = NULL;
    if (c->url.len == 0 || http_parser_parse_url(url, c->url.len, p->method == HTTP_CONNECT, &u) != 0) {
        http_response_error(&res, 400, "malformed request target");
        keep_alive = false;
    } else {
        if (u.field_set & (1 << UF_PATH))
            path = xstrndup(url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
        else
            path = xstrdup("/");
        if (u.field_set & (1 << UF_QUERY))
            query = xstrndup(url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
        else
            query = xstrdup("");
        if (path[0] != '/') {
            http_response_error(&res, 400, "malformed request target");
            keep_alive = false;
        }
    }

    if (res.status == 200) {
        http_header *hv = c->n_hdrs ? xcalloc(c->n_hdrs, sizeof *hv) : NULL;
        size_t nh = 0;
        for (size_t i = 0; i < c->n_hdrs; i++)
            if (c->hoff[i].value != SIZE_MAX) {
                hv[nh].name = c->hdrs.p + c->hoff[i].name;
                hv[nh].value = c->hdrs.p + c->hoff[i].value;
                nh++;
            }
        http_request req = {
            .method = method,
            .target = url,
            .path = path,
            .query = query,
            .headers = hv,
            .n_headers = nh,
            .body = dbuf_str(&c->body),
            .body_len = c->body.len,
            .http_major = p->http_major,
            .http_minor = p->http_minor,
            .peer = c->peer,
        };
        c->in_handler = true;
        s->handler(s->ctx, &req, &res);
        c->in_handler = false;
        free(hv);
        if (res.close)
            keep_alive = false;
    }
    free(path);
    free(query);
    conn_reset_message(c);
    if (res.stream) {
        http_stream *st = res.stream;
        res.stream = NULL;
        if (res.deferred || head_only || s->stopping || res.status != 200) {
            /* not a stream after all: an ordinary answer (the owner hears on_close at once) */
            if (st->on_close)
                st->on_close(st->arg);
            free(st);
        } else {
            send_stream_head(c, &res);
            if (c->closed) {
                if (st->on_close)
                    st->on_close(st->arg);
                free(st);
                return 0;
            }
            st->c = c;
            c->stream = st;
            stream_fix_sndbuf(c);
            uv_timer_stop(&c->timer);
            http_parser_pause(p, 1);
            return 0;
        }
    }
    if (res.deferred) {
        http_deferred *d = res.deferred;
        if (!d->answered) {   /* wait for http_deferred_respond, reading nothing */
            free(res.body);
            free(res.extra_headers);
            d->c = c;
            d->attached = true;
            d->keep_alive = keep_alive;
            d->http10 = http10;
            d->head_only = head_only;
            c->deferred = d;
            c->paused = true;
            http_parser_pause(p, 1);
            conn_timer(c, s->opts.request_timeout_ms);
            return 0;
        }
        http_response_resolve(&res);   /* answered within the handler */
        if (res.close)
            keep_alive = false;
    }
    if (s->stopping)
        keep_alive = false;
    send_response(c, &res, keep_alive, http10, head_only);

    if (c->closed)
        return 0;
    if (!keep_alive) {
        http_parser_pause(p, 1); /* conn_feed sees the pause without c->paused: finish */
        return 0;
    }
    if (uv_stream_get_write_queue_size(&c->h.stream) > HIGH_WATER) {
        c->paused = true;
        http_parser_pause(p, 1);
        conn_timer(c, s->opts.request_timeout_ms);
        return 0;
    }
    conn_timer(c, s->opts.idle_timeout_ms);
    return 0;
}

http_stream *http_response_stream(http_response *res, void (*on_drain)(void *arg), void (*on_close)(void *arg),
                                  void *arg)
{
    if (!res->stream)
        res->stream = xcalloc(1, sizeof *res->stream);
    res->stream->on_drain = on_drain;
    res->stream->on_close = on_close;
    res->stream->arg = arg;
    return res->stream;
}

int http_stream_write(http_stream *st, const char *data, size_t len)
{
    conn *c = st->c;
    if (!c || c->closed || c->finishing)
        return -EPIPE;
    char *copy = xmalloc(len ? len : 1);
    memcpy(copy, data, len);
    conn_write(c, copy, len, NULL, 0);
    return c->closed ? -EPIPE : 0;
}

size_t http_stream_queued(const http_stream *st)
{
    return st->c && !st->c->closed ? uv_stream_get_write_queue_size(&st->c->h.stream) : 0;
}

void http_stream_close(http_stream *st, bool flush)
{
    if (!st->c || st->c->closed)
        return;
    if (flush)
        conn_finish(st->c);
    else
        conn_close(st->c);
}

http_deferred *http_response_defer(http_response *res)
{
    if (!res->deferred)
        res->deferred = xcalloc(1, sizeof *res->deferred);
    return res->deferred;
}

void http_deferred_on_gone(http_deferred *d, void (*gone)(void *arg), void *arg)
{
    d->gone = gone;
    d->gone_arg = arg;
}

bool http_response_resolve(http_response *res)
{
    http_deferred *d = res->deferred;
    if (!d)
        return true;
    if (!d->answered)
        return false;
    free(res->body);
    free(res->extra_headers);
    *res = d->res;
    free(d);
    return true;
}

void http_deferred_respond(http_deferred *d, http_response *res)
{
    if (!d->attached) {       /* still inside the handler: it sends this */
        d->res = *res;
        d->res.deferred = NULL;
        d->answered = true;
        return;
    }
    conn *c = d->c;
    bool keep_alive = d->keep_alive && !res->close;
    bool http10 = d->http10, head_only = d->head_only;
    free(d);
    if (!c) {
        free(res->body);
        free(res->extra_headers);
        res->body = res->extra_headers = NULL;
        return;
    }
    c->deferred = NULL;
    if (c->srv->stopping || c->finish_after)
        keep_alive = false;
    send_response(c, res, keep_alive, http10, head_only);
    if (c->closed)
        return;
    if (!keep_alive) {
        conn_finish(c);
        return;
    }
    /* Like the end of on_message_complete: the parser stays paused while
     * the client is not reading (on_write resumes it), else go on. */
    if (uv_stream_get_write_queue_size(&c->h.stream) > HIGH_WATER)
        conn_timer(c, c->srv->opts.request_timeout_ms);
    else
        conn_resume(c);
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------ */
/* accepting                                                            */

/* The peer's address without the port; "unix" for a Unix socket. */
static void conn_peer(conn *c)
{
    snprintf(c->peer, sizeof c->peer, "%s", c->srv->is_unix ? "unix" : "unknown");
    if (c->srv->is_unix)
        return;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer, sizeof c->peer);
    } else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, a->s6_addr + 12, c->peer, sizeof c->peer);
        else
            inet_ntop(AF_INET6, a, c->peer, sizeof c->peer);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    http_server *s = server->data;
    if (status < 0 || s->stopping)
        return;
    conn *c = xcalloc(1, sizeof *c);
    c->srv = s;
    int r = s->is_unix ? uv_pipe_init(s->loop, &c->h.pipe, 0) : uv_tcp_init(s->loop, &c->h.tcp);
    if (r < 0) {
        free(c);
        return;
    }
    c->h.handle.data = c;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    bool over = s->n_conns >= s->opts.max_conns;
    if (over) {
        c->rejecting = true;
        s->n_rejecting++;
    } else {
        s->n_conns++;
    }
    if (s->n_conns + s->n_rejecting > s->high_water)
        s->high_water = s->n_conns + s->n_rejecting;
    if (uv_accept(server, &c->h.stream) < 0) {
        conn_close(c);
        return;
    }
    if (over) {
        if (s->n_rejecting > MAX_REJECTING) {
            conn_close(c);
            return;
        }
        send_error(c, 503, "too many connections");
        conn_finish(c);
        return;
    }
    if (!s->is_unix)
        uv_tcp_nodelay(&c->h.tcp, 1);
    conn_peer(c);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    conn_timer(c, s->opts.idle_timeout_ms);
    conn_read_start(c);
    if (!c->reading)
        conn_close(c);
}

/* Resolves "HOST:PORT" into *ss.  Empty host = all IPv4 interfaces. */
static int parse_inet(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
    const char *colon = strrchr(spec, ':');
    if (!colon)
        return -EINVAL;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || errno || port < 0 || port > 65535 || colon[1] == '-' || colon[1] == '+')
        return -EINVAL;
    char *host = xstrndup(spec, (size_t)(colon - spec));
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    } else if (strchr(host, ':') || strchr(host, '[') || strchr(host, ']')) {
        free(host);
        return -EINVAL;
    }
    memset(ss, 0, sizeof *ss);
    int r = 0;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (host[0] == '\0' || inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if (host[0] == '\0')
            a4->sin_addr.s_addr = htonl(INADDR_ANY);
        *sslen = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof *a6;
    } else {
        /* A name: resolved once at start-up, before the loop serves anyone. */
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        int g = getaddrinfo(host, NULL, &hints, &ai);
        if (g != 0 || !ai) {
            r = -EADDRNOTAVAIL;
        } else {
            memcpy(ss, ai->ai_addr, ai->ai_addrlen);
            *sslen = ai->ai_addrlen;
            if (ss->ss_family == AF_INET)
                a4->sin_port = htons((uint16_t)port);
            else
                a6->sin6_port = htons((uint16_t)port);
        }
        if (ai)
            freeaddrinfo(ai);
    }
    free(host);
    return r;
}

/* socket + bind + listen with plain syscalls, so that every failure happens
 * before a libuv handle exists (a handle, once initialised, can only be
 * released by running the loop). */
static int listen_inet(http_server *s, const char *spec, int *fd_out)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int r = parse_inet(spec, &ss, &sslen);
    if (r < 0)
        return r;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 511) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    sslen = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof ip);
        snprintf(s->address, sizeof s->address, "[%s]:%u", ip, ntohs(a6->sin6_port));
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof ip);
        snprintf(s->address, sizeof s->address, "%s:%u", ip, ntohs(a4->sin_port));
    }
    *fd_out = fd;
    return 0;
}

static int listen_unix(http_server *s, const char *path, int *fd_out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!*path || strlen(path) >= sizeof sa.sun_path)
        return -EINVAL;
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        /* A socket file: stale unless something still answers on it. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            int live = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
            close(probe);
            if (live)
                return -EADDRINUSE;
        }
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int r = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    if (chmod(path, 0660) < 0 || listen(fd, 511) < 0) {
        r = -errno;
        close(fd);
        unlink(path);
        return r;
    }
    s->unix_path = xstrdup(path);
    snprintf(s->address, sizeof s->address, "unix:%s", path);
    *fd_out = fd;
    return 0;
}

int http_server_start(uv_loop_t *loop, const char *listen, const http_server_opts *opts,
                      http_handler_fn handler, void *ctx, http_server **out)
{
    *out = NULL;
    if (!listen || !handler)
        return -EINVAL;
    /* libuv writes with write(2): a peer that reset the connection would
     * otherwise kill the daemon with SIGPIPE instead of failing the write
     * with EPIPE.  (uv_spawn resets dispositions in children.) */
    signal(SIGPIPE, SIG_IGN);
    http_server *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->handler = handler;
    s->ctx = ctx;
    if (opts)
        s->opts = *opts;
    else
        http_server_opts_default(&s->opts);
    if (!s->opts.max_body)
        s->opts.max_body = HTTP_DEFAULT_MAX_BODY;
    if (!s->opts.max_header)
        s->opts.max_header = HTTP_DEFAULT_MAX_HEADER;
    if (!s->opts.idle_timeout_ms)
        s->opts.idle_timeout_ms = HTTP_DEFAULT_IDLE_TIMEOUT_MS;
    if (!s->opts.request_timeout_ms)
        s->opts.request_timeout_ms = HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
    if (!s->opts.max_conns)
        s->opts.max_conns = HTTP_DEFAULT_MAX_CONNS;

    int fd = -1, r;
    s->is_unix = strncmp(listen, "unix:", 5) == 0;
    r = s->is_unix ? listen_unix(s, listen + 5, &fd) : listen_inet(s, listen, &fd);
    if (r < 0) {
        free(s->unix_path);
        free(s);
        return r;
    }
    if (s->is_unix) {
        uv_pipe_init(loop, &s->listener.pipe, 0);
        r = uv_pipe_open(&s->listener.pipe, fd);
    } else {
        uv_tcp_init(loop, &s->listener.tcp);
        r = uv_tcp_open(&s->listener.tcp, fd);
    }
    s->listener.handle.data = s;
    if (r == 0)
        r = uv_listen(&s->listener.stream, 511, on_connection);
    if (r < 0) {
        /* The handle exists now: hand it to the normal stop path. */
        if (s->unix_path)
            unlink(s->unix_path);
        http_server_stop(s, NULL, NULL);
        return r;
    }
    *out = s;
    return 0;
}

void http_server_set_limits(http_server *s, const http_server_opts *o)
{
    if (!s || !o)
        return;
    if (o->max_body)
        s->opts.max_body = o->max_body;
    if (o->max_header)
        s->opts.max_header = o->max_header;
    if (o->idle_timeout_ms)
        s->opts.idle_timeout_ms = o->idle_timeout_ms;
    if (o->request_timeout_ms)
        s->opts.request_timeout_ms = o->request_timeout_ms;
    if (o->max_conns)
        s->opts.max_conns = o->max_conns;
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server *s = h->data;
    s->listener_closed = true;
    server_maybe_done(s);
}

void http_server_stop(http_server *s, void (*on_closed)(void *arg), void *arg)
{
    if (!s || s->stopping)
        return;
    s->stopping = true;
    s->on_closed = on_closed;
    s->on_closed_arg = arg;
    if (s->unix_path)
        unlink(s->unix_path);
    for (conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->in_handler) /* it finishes itself when the handler returns */
            continue;
        if (c->finishing) {
            if (!c->closed)
                conn_timer(c, STOP_FLUSH_MS);
            continue;
        }
        conn_finish(c);
    }
    uv_close(&s->listener.handle, on_listener_closed);
}

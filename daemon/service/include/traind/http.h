/*
 * http — a small HTTP/1.1 server on libuv, parsing with http_parser.
 *
 * One handler, called synchronously on the loop thread for every complete
 * request, fills in a response; the server writes it (uv_write, the buffers
 * owned until the write completes) and goes on with the next request of the
 * connection.  Keep-alive and pipelining are supported: responses leave in the
 * order the requests came.  The server itself never blocks.
 *
 * Limits (http_server_opts): a request body over max_body is answered 413,
 * request line plus headers over max_header 431 (a request-target alone over
 * it 414), anything http_parser refuses
 * 400 — each of these then closes the connection.  A connection with no
 * request in progress is closed after idle_timeout_ms; one whose request is
 * not complete request_timeout_ms after its first byte (slowloris), or whose
 * responses the client does not read, is closed too.  Past max_conns open
 * connections a new one gets a 503 and is closed.
 *
 * A handler whose answer needs slow work (disk, parsing) defers it with
 * http_response_defer() and gives it later with http_deferred_respond(), so
 * the loop never waits; the connection reads no further requests meanwhile.
 *
 * Ownership: everything a request points to belongs to the server and lives
 * until the handler returns.  The response body is malloc'd by the handler
 * and taken by the server.  Functions returning int return 0 or a negative
 * errno (libuv convention).
 */
#ifndef TRAIND_HTTP_H
#define TRAIND_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define HTTP_DEFAULT_MAX_BODY (1024 * 1024)
#define HTTP_DEFAULT_MAX_HEADER (16 * 1024)
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 30000
#define HTTP_DEFAULT_REQUEST_TIMEOUT_MS 10000
#define HTTP_DEFAULT_MAX_CONNS 1024

typedef struct http_header {
    const char *name;   /* as sent (compare case-insensitively) */
    const char *value;  /* surrounding whitespace already trimmed by http_parser */
} http_header;

typedef struct http_request {
    const char *method;       /* "GET", "POST", ... */
    const char *target;       /* the request-target exactly as sent */
    const char *path;         /* raw (not percent-decoded) path, always starts with '/' */
    const char *query;        /* raw query string without '?', "" when none */
    const http_header *headers;
    size_t n_headers;
    const char *body;         /* NUL-terminated for convenience; may hold NULs; "" when none */
    size_t body_len;
    int http_major, http_minor;
    const char *peer;         /* the client's address without the port ("127.0.0.1", "::1"; an
                               * IPv4-mapped IPv6 address as IPv4), "unix" for every client of a
                               * Unix socket, "unknown" if it could not be read */
} http_request;

typedef struct http_response {
    int status;               /* default 200 */
    const char *content_type; /* static string; default "application/json" */
    char *body;               /* malloc'd, taken by the server (NULL = empty) */
    size_t body_len;
    char *extra_headers;      /* internal: use http_response_add_header() */
    size_t extra_len;
    bool close;               /* set to close the connection after this response */
    struct http_deferred *deferred; /* internal: set by http_response_defer() */
    struct http_stream *stream;     /* internal: set by http_response_stream() */
} http_response;

typedef void (*http_handler_fn)(void *ctx, const http_request *req, http_response *res);

/* Decides on "Expect: 100-continue" once a request's headers are in (its
 * body empty): 100 to invite the body, or a 4xx status to refuse it with
 * (*msg: a static message), the connection then closed.  ctx is the
 * handler's. */
typedef int (*http_expect_fn)(void *ctx, const http_request *req, const char **msg);

typedef struct http_server_opts {
    size_t max_body;              /* bytes, default 1 MiB */
    size_t max_header;            /* bytes of request line + headers, default 16 KiB */
    unsigned idle_timeout_ms;     /* default 30 s */
    unsigned request_timeout_ms;  /* default 10 s */
    unsigned max_conns;           /* default 1024 */
    http_expect_fn expect;        /* NULL: every 100-continue is invited */
} http_server_opts;

typedef struct http_server http_server;

void http_server_opts_default(http_server_opts *o);

/* Listens on "HOST:PORT" (IPv4, "[IPv6]:PORT", or a host name resolved once,
 * synchronously; port 0 = any free port) or "unix:PATH" (a stale socket at
 * PATH is removed first — anything else there is -EEXIST; the socket is made
 * mode 0660 and removed again on stop).  opts may be NULL for the defaults.
 * On success *out is the running server.  Sets SIGPIPE to SIG_IGN for the
 * process (a write to a reset connection must fail with EPIPE, not kill). */
int http_server_start(uv_loop_t *loop, const char *listen, const http_server_opts *opts,
                      http_handler_fn handler, void *ctx, http_server **out);

/* The bound address: "127.0.0.1:43127", "[::1]:8080" or "unix:/run/x.sock". */
const char *http_server_address(const http_server *s);

/* Changes the limits of a running server (SIGHUP): max_conns, the timeouts,
 * max_body and max_header; a field left 0 keeps its current value.  New
 * limits apply to connections accepted and timers started afterwards. */
void http_server_set_limits(http_server *s, const http_server_opts *opts);

/* Open connections right now. */
unsigned http_server_conn_count(const http_server *s);

/* Stops listening and closes every connection (responses already queued are
 * flushed first, bounded by a short timeout).  The server is freed once every
 * handle has closed — the loop must keep running — and then on_closed(arg) is
 * called (on_closed may be NULL).  s must not be used after this call. */
void http_server_stop(http_server *s, void (*on_closed)(void *arg), void *arg);

/* --- requests --- */

/* The first header named name (case-insensitive), or NULL. */
const char *http_request_header(const http_request *req, const char *name);

/* Percent-decodes s[0..len) into a malloc'd NUL-terminated string.  Fails
 * (-EINVAL, *out untouched) on a bad %-escape, a NUL byte, invalid UTF-8, or —
 * with reject_slash — a '/' anywhere after decoding (for ids in a path).
 * With plus_is_space '+' means ' ' (query strings). */
int http_pct_decode(const char *s, size_t len, bool reject_slash, bool plus_is_space, char **out);

/* Looks key up in a raw query string "a=1&b=x%20y".  Returns 1 and a
 * malloc'd decoded value in *value (the first occurrence; "" for "key" with
 * no '='), 0 when absent, -EINVAL when its value does not decode. */
int http_query_get(const char *query, const char *key, char **value);

/* --- responses --- */

/* Sets status, content type (static) and body (malloc'd, taken; a previous body is freed). */
void http_response_set(http_response *res, int status, const char *content_type, char *body, size_t len);
/* status + {"error": msg} */
void http_response_error(http_response *res, int status, const char *msg);
/* Adds "Name: value" to the response.  -EINVAL if either holds CR, LF or NUL. */
int http_response_add_header(http_response *res, const char *name, const char *value);

/* An answer given later.  Called by a handler instead of filling res:
 * returns the handle to answer through; what the handler put in res
 * (headers included) is dropped.  The connection then reads no further request until the answer
 * is given, so answers to pipelined requests stay in order; the request
 * timeout still bounds the wait.  Call http_deferred_respond() exactly once,
 * on the loop thread; it may come before the handler returns. */
typedef struct http_deferred http_deferred;
http_deferred *http_response_defer(http_response *res);

/* Sends res (taking its buffers, as a handler's response) and frees d.  If
 * the connection closed meanwhile (client gone, timeout, server stopped),
 * res is just freed. */
void http_deferred_respond(http_deferred *d, http_response *res);

/* Calls gone(arg), once, on the loop thread, if the client of d gives up
 * before d is answered: its connection closes or resets, or its FIN
 * arrives (an HTTP/1.1 client does not half-close while it waits).  The
 * owner may then stop the work (the answer must still be given, and is
 * dropped or sent to a half-closed socket).  Never called after
 * http_deferred_respond(). */
void http_deferred_on_gone(http_deferred *d, void (*gone)(void *arg), void *arg);

/* For code that calls a handler itself rather than through the server
 * (tests): if the handler deferred and has answered already, moves that
 * answer into res.  False while the answer is still owed. */
bool http_response_resolve(http_response *res);

/* --- streams (Server-Sent Events) --- */

/* A response that goes on after its headers: the handler sets status,
 * content type and headers in res as usual (no body), then calls this
 * instead of returning a body.  The headers go out without Content-Length
 * and with "Connection: close" (the body ends when the connection does);
 * from then on the connection carries only what http_stream_write sends:
 * no timeout closes it, what the client sends is read and dropped, and its
 * EOF or a write error closes it.  on_drain(arg) is called whenever a write
 * has completed (the queue is shorter), on_close(arg) exactly once when the
 * connection has closed — the stream must not be used after that.  The
 * socket's send buffer is fixed small (no autotuning), so a client that
 * stops reading shows in http_stream_queued after kilobytes.  Only for a
 * GET (not HEAD, not a deferred answer). */
typedef struct http_stream http_stream;
http_stream *http_response_stream(http_response *res, void (*on_drain)(void *arg), void (*on_close)(void *arg),
                                  void *arg);

/* Queues a copy of data[0..len).  0, or -EPIPE once the stream is closing. */
int http_stream_write(http_stream *st, const char *data, size_t len);

/* Bytes queued that the socket has not taken yet. */
size_t http_stream_queued(const http_stream *st);

/* Ends the stream: with flush, what is queued is sent first (bounded by the
 * usual timeout) and the connection shut down cleanly; without, it is
 * closed now (a client that does not read is dropped so).  on_close
 * follows either way. */
void http_stream_close(http_stream *st, bool flush);

/* The reason phrase of a status code ("Not Found"), "Unknown" if none. */
const char *http_status_text(int status);

#endif

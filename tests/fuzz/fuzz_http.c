/*
 * fuzz_http — the HTTP request path: bytes from a client in, the server's
 * responses out, through the real transport (daemon/service/http.c: its
 * http_parser callbacks, limits, pipelining, lingering close) and the real
 * routes (daemon/service/api.c) over a fake api_backend.
 *
 * No test entry point is needed: the harness runs a real http_server on its
 * own libuv loop, listening on a Unix socket (no ports to exhaust, no
 * network).  Each input is one connection: the client writes the bytes,
 * half-closes, and reads until the server closes; the loop runs until the
 * server has released the connection, so nothing leaks from one input into
 * the next.
 *
 * When the input's last byte is odd (a request ending in "\r", say) it is
 * written in pieces of 1..64 bytes (sizes taken from the input), and the
 * server reads each piece before the next is sent, so http_parser calls
 * back with URLs, header names and values, and bodies cut anywhere.  The limits are small (body 2 KiB, headers 1 KiB) so that the
 * 413/414/431 paths are within libFuzzer's default input sizes.
 *
 * GET /events is live: the feed is started on the same loop with two slots
 * and a few events in its ring (a job change and points of job "a"), so
 * the stream code (replay from Last-Event-ID, ?job=, slots, a client that
 * goes away) is what its seeds reach, not a 503.
 *
 * Oracle: what comes back is empty or a sequence of well-formed HTTP/1.1
 * responses (http_parser in response mode accepts all of it, to the byte),
 * each with a status the server knows the name of.  The backend checks that
 * it is only ever asked about valid job ids.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <http_parser.h>
#include <signal.h>
#include <string.h>
#include <uv.h>

#include "fuzz.h"
#include "traind/api.h"
#include "traind/events.h"
#include "traind/http.h"
#include "traind/train_point.h"
#include "traind/util.h"
#include "tl_fake_backend.h"

/* ------------------------------------------------------------------ */
/* the fake backend (tests/lib/tl_fake_backend.h) over three jobs      */

static const char *jobs_json =
    "[{\"id\":\"a\",\"name\":\"alpha\",\"state\":\"running\",\"step\":10,\"total_steps\":100,\"lr\":0.001,"
    "\"loss\":0.5,\"steps_per_s\":250.5,\"errors\":[]},"
    "{\"id\":\"b\",\"name\":\"beta\",\"state\":\"queued\",\"step\":0,\"total_steps\":50,\"lr\":null,"
    "\"loss\":null,\"steps_per_s\":null,\"queue_position\":1,\"errors\":[]},"
    "{\"id\":\"c.v2\",\"name\":\"gamma\",\"state\":\"failed\",\"step\":20,\"total_steps\":20,\"lr\":0,"
    "\"loss\":0.25,\"eval_loss\":0.3,\"steps_per_s\":99,\"errors\":[\"loss is NaN at step 12\"]}]";

static uv_loop_t loop;
static tl_fake fake;          /* its "later" answers are owed on loop */
static api_backend backend;

/* The fake's checks: the oracle's. */
static void fake_check(bool ok, const char *what)
{
    if (!ok)
        fprintf(stderr, "fuzz_http: %s\n", what);
    FUZZ_CHECK(ok);
}

/* ------------------------------------------------------------------ */
/* the server, started once per process                                 */

static http_server *server;
static char sock_path[108];

static void remove_socket(void)
{
    unlink(sock_path);
}

/* The feed's job objects: the fake backend's. */
static cJSON *event_job(void *ctx, const char *id)
{
    const cJSON *j;
    cJSON_ArrayForEach(j, fake.jobs)
    {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")), id) == 0)
            return cJSON_Duplicate(j, 1);
    }
    return NULL;
}

static void start_events(void)
{
    events_init(&loop, 2);
    events_set_job_source(event_job, NULL);
    events_start();
    events_job_changed("a");
    for (long s = 1; s <= 3; s++) {
        train_point p;
        train_point_clear(&p);
        p.step = s * 10;
        p.loss = 1.0 / (double)s;
        events_point("a", &p);
    }
    events_experiment("sweep", "running");
}

static void start_server(void)
{
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    tl_fake_init(&fake, jobs_json);
    fake.check = fake_check;
    fake.queued = 1;
    fake.loop = &loop;
    backend = tl_fake_backend(&fake);
    backend.loop = &loop;   /* pages, metrics and /metrics printed on the pool, in the lanes */
    start_events();
    snprintf(sock_path, sizeof sock_path, "/tmp/traind-fuzz-http-%ld.sock", (long)getpid());
    char listen[128];
    snprintf(listen, sizeof listen, "unix:%s", sock_path);
    http_server_opts o;
    http_server_opts_default(&o);
    o.max_body = 2048;
    o.max_header = 1024;
    int r = http_server_start(&loop, listen, &o, api_handle, &backend, &server);
    if (r < 0)
        fprintf(stderr, "fuzz_http: cannot listen on %s: %s\n", listen, uv_strerror(r));
    FUZZ_CHECK(r == 0);
    atexit(remove_socket);
}

/* ------------------------------------------------------------------ */
/* one client connection per input                                      */

typedef struct client {
    uv_pipe_t pipe;
    uv_connect_t connect;
    uv_write_t write;
    uv_shutdown_t shutdown;
    const uint8_t *data;
    size_t size;
    char *in;           /* what the server sent */
    size_t in_len, in_cap;
    bool connected;
    int writes_pending;
    bool closed;
} client;

static void on_client_closed(uv_handle_t *h)
{
    ((client *)h->data)->closed = true;
}

static void client_close(client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client *c = h->data;
    if (c->in_cap - c->in_len < 65536) {
        c->in_cap = c->in_cap ? c->in_cap * 2 + 65536 : 65536;
        c->in = xrealloc(c->in, c->in_cap);
    }
    buf->base = c->in + c->in_len;
    buf->len = c->in_cap - c->in_len;
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *c = s->data;
    if (n > 0)
        c->in_len += (size_t)n;
    else if (n < 0)
        client_close(c); /* EOF: the server is done with us (or reset us) */
}

static void on_written(uv_write_t *w, int status)
{
    ((client *)w->data)->writes_pending--;
}

static void on_shut(uv_shutdown_t *s, int status)
{
}

static void on_connected(uv_connect_t *req, int status)
{
    client *c = req->data;
    FUZZ_CHECK(status == 0);
    c->connected = true;
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_client_read);
}

/* Writes data[off, off + n) and runs the loop until it is in the socket. */
static void client_write(client *c, size_t off, size_t n)
{
    if (uv_is_closing((uv_handle_t *)&c->pipe))
        return;
    uv_buf_t b = uv_buf_init((char *)c->data + off, (unsigned)n);
    c->write.data = c;
    c->writes_pending++;
    if (uv_write(&c->write, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0) {
        c->writes_pending--;
        return;
    }
    while (c->writes_pending > 0)
        uv_run(&loop, UV_RUN_ONCE);
}

/* ------------------------------------------------------------------ */
/* checking what came back                                              */

typedef struct resp_check {
    int n;           /* complete responses */
} resp_check;

static int on_resp_complete(http_parser *p)
{
    resp_check *rc = p->data;
    unsigned st = p->status_code;
    FUZZ_CHECK(strcmp(http_status_text((int)st), "Unknown") != 0);
    rc->n++;
    return 0;
}

static void check_responses(const client *c)
{
    if (fuzz_verbose())
        fprintf(stderr, "--- %zu bytes back:\n%.*s\n---\n", c->in_len, (int)c->in_len, c->in);
    if (c->in_len == 0)
        return;
    FUZZ_CHECK(c->in_len >= 9 && memcmp(c->in, "HTTP/1.1 ", 9) == 0);
    /* A response to HEAD announces a body it does not send, so a response
     * parser cannot find where the next one starts. */
    for (size_t i = 0; i + 4 <= c->size; i++)
        if (memcmp(c->data + i, "HEAD", 4) == 0)
            return;
    resp_check rc = {0};
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &rc;
    http_parser_settings s = {.on_message_complete = on_resp_complete};
    size_t n = http_parser_execute(&p, &s, c->in, c->in_len);
    if (HTTP_PARSER_ERRNO(&p) == HPE_OK)
        http_parser_execute(&p, &s, NULL, 0); /* EOF */
    if (n != c->in_len || HTTP_PARSER_ERRNO(&p) != HPE_OK)
        fprintf(stderr, "fuzz_http: malformed response stream (%s at byte %zu):\n%.*s\n",
                http_errno_name(HTTP_PARSER_ERRNO(&p)), n, (int)c->in_len, c->in);
    FUZZ_CHECK(n == c->in_len && HTTP_PARSER_ERRNO(&p) == HPE_OK);
    FUZZ_CHECK(rc.n >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server)
        start_server();
    client *c = xcalloc(1, sizeof *c);
    c->data = data;
    c->size = size;
    FUZZ_CHECK(uv_pipe_init(&loop, &c->pipe, 0) == 0);
    c->pipe.data = c;
    c->connect.data = c;
    uv_pipe_connect(&c->connect, &c->pipe, sock_path, on_connected);
    while (!c->connected)
        uv_run(&loop, UV_RUN_ONCE);
    if (size && (data[size - 1] & 1)) {
        for (size_t off = 0, k = 0; off < size; k++) {
            size_t n = 1 + data[(k * 7) % size] % 64;
            if (n > size - off)
                n = size - off;
            client_write(c, off, n);
            off += n;
            /* the server's turn: it reads what is in the socket now */
            uv_run(&loop, UV_RUN_NOWAIT);
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    } else if (size) {
        client_write(c, 0, size);
    }
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, on_shut);
    /* Until our end is closed and the server has freed its end. */
    while (!c->closed || http_server_conn_count(server) > 0 || fake.laters > 0)
        uv_run(&loop, UV_RUN_ONCE);
    check_responses(c);
    free(c->in);
    free(c);
    return 0;
}

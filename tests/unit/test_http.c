/*
 * test_http — the HTTP/1.1 transport (daemon/service/http.c) driven over
 * real sockets: the server's loop runs in a thread, the test talks to it with
 * plain blocking sockets and reads answers with http_parser.
 */
#include <check.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "traind/http.h"
#include "traind/util.h"
#include "tl.h"

/* ------------------------------------------------------------------ */
/* the server under test                                                */

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    http_server *srv;
    pthread_t thread;
    char addr[160];
    int port;
    int closed_called;
} fixture;

/* An answer given from a timer: /later?MS answers "later MS|body" MS
 * milliseconds on (0: within the handler itself). */
typedef struct later {
    uv_timer_t timer;
    http_deferred *answer;
    char *text;
} later;

static void later_closed(uv_handle_t *h)
{
    later *l = h->data;
    free(l->text);
    free(l);
}

static void later_fire(uv_timer_t *t)
{
    later *l = t->data;
    http_response res = {.status = 200};
    http_response_set(&res, 202, "text/plain", l->text, strlen(l->text));
    l->text = NULL;
    http_deferred_respond(l->answer, &res);
    uv_close((uv_handle_t *)t, later_closed);
}

static void answer_later(fixture *f, const http_request *req, http_response *res)
{
    /* what the handler set before deferring is dropped */
    http_response_set(res, 500, "text/plain", xstrdup("dropped"), 7);
    http_response_add_header(res, "X-Dropped", "1");
    later *l = xcalloc(1, sizeof *l);
    l->answer = http_response_defer(res);
    long ms = atol(req->query);
    l->text = xasprintf("later %ld|%.*s", ms, (int)req->body_len, req->body);
    uv_timer_init(&f->loop, &l->timer);
    l->timer.data = l;
    if (ms == 0)
        later_fire(&l->timer);
    else
        uv_timer_start(&l->timer, later_fire, (uint64_t)ms, 0);
}

/* Echo handler: "METHOD path?query|body" plus a few special paths. */
static void handler(void *ctx, const http_request *req, http_response *res)
{
    if (strcmp(req->path, "/later") == 0) {
        answer_later(ctx, req, res);
        return;
    }
    if (strcmp(req->path, "/big") == 0) {
        size_t n = 1024 * 1024;
        char *b = xmalloc(n);
        for (size_t i = 0; i < n; i++)
            b[i] = (char)('a' + i % 26);
        http_response_set(res, 200, "text/plain", b, n);
        return;
    }
    if (strcmp(req->path, "/auth") == 0) {
        const char *a = http_request_header(req, "authorization");
        const char *t = http_request_header(req, "Content-Type");
        char *s = xasprintf("%s|%s", a ? a : "(none)", t ? t : "(none)");
        http_response_set(res, 200, "text/plain", s, strlen(s));
        return;
    }
    if (strcmp(req->path, "/allow") == 0) {
        http_response_error(res, 405, "nope");
        ck_assert_int_eq(http_response_add_header(res, "Allow", "GET"), 0);
        ck_assert_int_eq(http_response_add_header(res, "X-Bad", "a\r\nInjected: 1"), -EINVAL);
        return;
    }
    if (strcmp(req->path, "/peer") == 0) {
        char *b = xstrdup(req->peer ? req->peer : "(null)");
        http_response_set(res, 200, "text/plain", b, strlen(b));
        return;
    }
    if (strcmp(req->path, "/limits") == 0) {
        /* on the loop thread, as a SIGHUP handler would do it */
        fixture *f = ctx;
        http_server_opts o = {.max_conns = 2, .idle_timeout_ms = 300};
        http_server_set_limits(f->srv, &o);
        http_response_set(res, 200, "text/plain", xstrdup("ok"), 2);
        return;
    }
    if (strcmp(req->path, "/close") == 0)
        res->close = true;
    char *s = xasprintf("%s %s?%s|%.*s", req->method, req->path, req->query, (int)req->body_len, req->body);
    http_response_set(res, 200, "text/plain", s, strlen(s));
}

static void on_stop(uv_async_t *a)
{
    fixture *f = a->data;
    http_server_stop(f->srv, NULL, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_thread(void *arg)
{
    fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void start_server(fixture *f, const char *listen, const http_server_opts *o)
{
    memset(f, 0, sizeof *f);
    ck_assert_int_eq(uv_loop_init(&f->loop), 0);
    int r = http_server_start(&f->loop, listen, o, handler, f, &f->srv);
    ck_assert_msg(r == 0, "http_server_start(%s): %s", listen, uv_strerror(r));
    snprintf(f->addr, sizeof f->addr, "%s", http_server_address(f->srv));
    const char *colon = strrchr(f->addr, ':');
    f->port = colon ? atoi(colon + 1) : 0;
    uv_async_init(&f->loop, &f->stop, on_stop);
    f->stop.data = f;
    ck_assert_int_eq(pthread_create(&f->thread, NULL, loop_thread, f), 0);
}

static void stop_server(fixture *f)
{
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    ck_assert_int_eq(uv_loop_close(&f->loop), 0);
}

static http_server_opts fast_opts(void)
{
    http_server_opts o;
    http_server_opts_default(&o);
    o.idle_timeout_ms = 3000;
    o.request_timeout_ms = 3000;
    return o;
}

/* ------------------------------------------------------------------ */
/* a tiny client                                                        */

static void set_timeout(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static int connect_tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    set_timeout(fd, 5000);
    return fd;
}

static int connect_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    set_timeout(fd, 5000);
    return fd;
}

static void send_str(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        s += w;
        n -= (size_t)w;
    }
}
#define SEND(fd, s) send_str((fd), (s), strlen(s))

typedef struct client {
    int fd;
    char buf[64 * 1024];
    size_t len;             /* unparsed bytes in buf */
    http_parser p;
    /* the response being read */
    int status;
    char *body;
    size_t body_len;
    char hdr_name[64];
    char conn_hdr[64], server_hdr[64], allow_hdr[64], clen_hdr[32];
    char *cur;              /* where the current header value goes */
    size_t cur_size;
    bool done, head;
} client;

static int c_on_header_field(http_parser *p, const char *at, size_t n)
{
    client *c = p->data;
    snprintf(c->hdr_name, sizeof c->hdr_name, "%.*s", (int)n, at);
    c->cur_size = 64;
    if (!strcasecmp(c->hdr_name, "Content-Length"))
        c->cur_size = sizeof c->clen_hdr;
    c->cur = !strcasecmp(c->hdr_name, "Connection")       ? c->conn_hdr
             : !strcasecmp(c->hdr_name, "Server")         ? c->server_hdr
             : !strcasecmp(c->hdr_name, "Allow")          ? c->allow_hdr
             : !strcasecmp(c->hdr_name, "Content-Length") ? c->clen_hdr
                                                          : NULL;
    return 0;
}

static int c_on_header_value(http_parser *p, const char *at, size_t n)
{
    client *c = p->data;
    if (c->cur)
        snprintf(c->cur, c->cur_size, "%.*s", (int)n, at);
    return 0;
}

static int c_on_headers_complete(http_parser *p)
{
    client *c = p->data;
    c->status = p->status_code;
    return c->head ? 1 : 0;
}

static int c_on_body(http_parser *p, const char *at, size_t n)
{
    client *c = p->data;
    c->body = xrealloc(c->body, c->body_len + n + 1);
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return 0;
}

static int c_on_message_complete(http_parser *p)
{
    client *c = p->data;
    c->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings client_settings = {
    .on_header_field = c_on_header_field,
    .on_header_value = c_on_header_value,
    .on_headers_complete = c_on_headers_complete,
    .on_body = c_on_body,
    .on_message_complete = c_on_message_complete,
};

static client *client_new(int fd)
{
    client *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    http_parser_init(&c->p, HTTP_RESPONSE);
    c->p.data = c;
    return c;
}

static void client_free(client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->body);
    free(c);
}

/* Reads one response; returns its status, 0 when the connection ended first. */
static int client_read(client *c)
{
    free(c->body);
    c->body = NULL;
    c->body_len = 0;
    c->done = false;
    c->status = 0;
    c->conn_hdr[0] = c->server_hdr[0] = c->allow_hdr[0] = c->clen_hdr[0] = '\0';
    http_parser_pause(&c->p, 0);
    for (;;) {
        if (c->len) {
            size_t n = http_parser_execute(&c->p, &client_settings, c->buf, c->len);
            memmove(c->buf, c->buf + n, c->len - n);
            c->len -= n;
            if (c->done)
                return c->status;
            ck_assert_msg(HTTP_PARSER_ERRNO(&c->p) == HPE_OK, "client parse error: %s",
                          http_errno_name(HTTP_PARSER_ERRNO(&c->p)));
        }
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r <= 0)
            return 0;
        c->len += (size_t)r;
    }
}

/* Whether the peer closes the connection within ms (reading and dropping). */
static bool closed_within(int fd, int ms)
{
    set_timeout(fd, ms);
    char b[4096];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false;
    }
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* tests                                                                */

START_TEST(simple_get)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    ck_assert_int_gt(f.port, 0);
    ck_assert(strncmp(f.addr, "127.0.0.1:", 10) == 0);
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /hello?x=1|");
    ck_assert(strncmp(c->server_hdr, "traind/", 7) == 0);
    ck_assert_str_eq(c->clen_hdr, "15");
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(keep_alive)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /one?|");
    ck_assert_str_eq(c->conn_hdr, "");
    SEND(c->fd, "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "POST /two?|abc");
    /* headers looked up case-insensitively */
    SEND(c->fd, "GET /auth HTTP/1.1\r\nAUTHORIZATION: Bearer xyz\r\ncontent-type: text/yaml\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "Bearer xyz|text/yaml");
    /* extra headers, and a header with CR LF refused */
    SEND(c->fd, "GET /allow HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 405);
    ck_assert_str_eq(c->allow_hdr, "GET");
    ck_assert_str_eq(c->body, "{\"error\":\"nope\"}");
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(pipelined)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nxyGET /c?q HTTP/1.1\r\n\r\n"
                "HEAD /d HTTP/1.1\r\n\r\nGET /e HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /a?|");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "POST /b?|xy");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /c?q|");
    c->head = true; /* HEAD: Content-Length of the body, no body */
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_ptr_null(c->body);
    ck_assert_str_eq(c->clen_hdr, "9");
    c->head = false;
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /e?|");
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(body_too_large)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "POST /x HTTP/1.1\r\nContent-Length: 2097152\r\n\r\n");
    ck_assert_int_eq(client_read(c), 413);
    ck_assert_str_eq(c->conn_hdr, "close");
    ck_assert(strstr(c->body, "\"error\""));
    ck_assert(closed_within(c->fd, 3000));
    client_free(c);

    /* chunked: the limit holds on the decoded body as it grows */
    c = client_new(connect_tcp(f.port));
    SEND(c->fd, "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *chunk = xmalloc(64 * 1024 + 32);
    int n = sprintf(chunk, "%x\r\n", 64 * 1024);
    memset(chunk + n, 'z', 64 * 1024);
    memcpy(chunk + n + 64 * 1024, "\r\n", 2);
    int status = 0;
    for (int i = 0; i < 20; i++) {
        ssize_t w = send(c->fd, chunk, (size_t)n + 64 * 1024 + 2, MSG_NOSIGNAL);
        if (w <= 0)
            break;
    }
    status = client_read(c);
    ck_assert_int_eq(status, 413);
    free(chunk);
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(headers_too_large)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    size_t n = 20 * 1024;
    char *req = xmalloc(n + 100);
    strcpy(req, "GET / HTTP/1.1\r\nX-Big: ");
    size_t l = strlen(req);
    memset(req + l, 'h', n);
    strcpy(req + l + n, "\r\n\r\n");
    SEND(c->fd, req);
    ck_assert_int_eq(client_read(c), 431);
    ck_assert(closed_within(c->fd, 3000));
    client_free(c);

    /* many small headers count too */
    c = client_new(connect_tcp(f.port));
    strcpy(req, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 3000; i++) /* 18 KB */
        strcat(req, "A: b\r\n");
    strcat(req, "\r\n");
    SEND(c->fd, req);
    ck_assert_int_eq(client_read(c), 431);
    client_free(c);

    /* a request-target alone over the limit: 414 */
    c = client_new(connect_tcp(f.port));
    strcpy(req, "GET /");
    memset(req + 5, 'u', 17 * 1024);
    strcpy(req + 5 + 17 * 1024, " HTTP/1.1\r\n\r\n");
    SEND(c->fd, req);
    ck_assert_int_eq(client_read(c), 414);
    client_free(c);

    /* a 15 KiB header is fine */
    c = client_new(connect_tcp(f.port));
    strcpy(req, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + l, 'h', 15 * 1024);
    strcpy(req + l + 15 * 1024, "\r\n\r\n");
    SEND(c->fd, req);
    ck_assert_int_eq(client_read(c), 200);
    free(req);
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(garbage)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    static const char *bad[] = {
        "HELLO THERE\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        "GET * HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        client *c = client_new(connect_tcp(f.port));
        SEND(c->fd, bad[i]);
        int st = client_read(c);
        ck_assert_msg(st == 400, "request %zu answered %d", i, st);
        ck_assert_str_eq(c->conn_hdr, "close");
        ck_assert(closed_within(c->fd, 3000));
        client_free(c);
    }
    /* a good request after a pipelined one, then garbage: 200, then 400 */
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /ok HTTP/1.1\r\n\r\n\x01\x02garbage\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_int_eq(client_read(c), 400);
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(lying_content_length)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort");
    shutdown(c->fd, SHUT_WR);
    ck_assert_int_eq(client_read(c), 0); /* no answer to an incomplete request, just the close */
    client_free(c);
    /* and the server is fine */
    c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /still HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    client_free(c);
    /* complete requests before a half-close are still answered */
    c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /2?|");
    ck_assert(closed_within(c->fd, 3000));
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(chunked_body)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n"
                "X-Trailer: t\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "POST /c?|hello world");
    /* Expect: 100-continue gets its interim answer before the body is sent */
    SEND(c->fd, "POST /e HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    ck_assert_int_eq(client_read(c), 100);
    SEND(c->fd, "body");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "POST /e?|body");
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(connection_close_and_http10)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->conn_hdr, "close");
    ck_assert_int_eq(client_read(c), 0);
    client_free(c);

    c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /b HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /b?|");
    ck_assert(closed_within(c->fd, 3000));
    client_free(c);

    c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->conn_hdr, "keep-alive");
    SEND(c->fd, "GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    client_free(c);

    /* the handler can ask for the close */
    c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /close HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->conn_hdr, "close");
    ck_assert(closed_within(c->fd, 3000));
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(idle_and_slow_timeouts)
{
    fixture f;
    http_server_opts o;
    http_server_opts_default(&o);
    o.idle_timeout_ms = 300;
    o.request_timeout_ms = 400;
    start_server(&f, "127.0.0.1:0", &o);

    /* idle after a request */
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET / HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    double t0 = mono();
    ck_assert(closed_within(c->fd, 3000));
    double dt = mono() - t0;
    ck_assert_msg(dt > 0.2 && dt < 2.0, "idle close after %.3f s", dt);
    client_free(c);

    /* a connection that never says anything */
    c = client_new(connect_tcp(f.port));
    ck_assert(closed_within(c->fd, 3000));
    client_free(c);

    /* slowloris: a byte every 100 ms keeps it busy but never completes */
    c = client_new(connect_tcp(f.port));
    const char *req = "GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    t0 = mono();
    bool closed = false;
    for (size_t i = 0; req[i] && mono() - t0 < 3; i++) {
        if (send(c->fd, req + i, 1, MSG_NOSIGNAL) <= 0) {
            closed = true;
            break;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0) {
            closed = true;
            break;
        }
    }
    if (!closed)
        closed = closed_within(c->fd, 2000);
    dt = mono() - t0;
    ck_assert(closed);
    ck_assert_msg(dt < 1.5, "slow request closed after %.3f s", dt);
    client_free(c);
    stop_server(&f);
}
END_TEST

START_TEST(connection_cap)
{
    fixture f;
    http_server_opts o = fast_opts();
    o.max_conns = 2;
    start_server(&f, "127.0.0.1:0", &o);
    client *a = client_new(connect_tcp(f.port));
    client *b = client_new(connect_tcp(f.port));
    SEND(a->fd, "GET /a HTTP/1.1\r\n\r\n");
    SEND(b->fd, "GET /b HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(a), 200);
    ck_assert_int_eq(client_read(b), 200);
    client *c = client_new(connect_tcp(f.port));
    ck_assert_int_eq(client_read(c), 503);
    ck_assert(closed_within(c->fd, 3000));
    client_free(c);
    /* a slot frees up when one closes */
    client_free(a);
    usleep(100 * 1000);
    c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /c HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    client_free(c);
    client_free(b);
    stop_server(&f);
}
END_TEST

START_TEST(limits_change_at_run_time)
{
    fixture f;
    http_server_opts o = fast_opts();
    o.max_conns = 1;
    start_server(&f, "127.0.0.1:0", &o);
    client *a = client_new(connect_tcp(f.port));
    SEND(a->fd, "GET /x HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(a), 200);
    client *b = client_new(connect_tcp(f.port));
    ck_assert_int_eq(client_read(b), 503);   /* the cap is 1 */
    client_free(b);
    usleep(50 * 1000);
    SEND(a->fd, "GET /limits HTTP/1.1\r\n\r\n");   /* max_conns 2, idle 300 ms */
    ck_assert_int_eq(client_read(a), 200);
    b = client_new(connect_tcp(f.port));
    SEND(b->fd, "GET /y HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(b), 200);
    client *c = client_new(connect_tcp(f.port));
    ck_assert_int_eq(client_read(c), 503);   /* the new cap is 2 */
    client_free(c);
    /* the new idle timeout applies to timers started from now on */
    double t0 = mono();
    ck_assert(closed_within(b->fd, 3000));
    ck_assert_msg(mono() - t0 < 1.5, "idle connection closed after %.3f s", mono() - t0);
    client_free(b);
    client_free(a);
    stop_server(&f);
}
END_TEST

START_TEST(peer_address)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    SEND(c->fd, "GET /peer HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "127.0.0.1");
    client_free(c);
    stop_server(&f);

    /* IPv6 loopback, where the machine has it */
    uv_loop_t l;
    uv_loop_init(&l);
    http_server *probe = NULL;
    bool v6 = http_server_start(&l, "[::1]:0", NULL, handler, NULL, &probe) == 0;
    if (v6)
        http_server_stop(probe, NULL, NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    uv_loop_close(&l);
    if (v6) {
        start_server(&f, "[::1]:0", NULL);
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)f.port),
                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        set_timeout(fd, 5000);
        c = client_new(fd);
        SEND(c->fd, "GET /peer HTTP/1.1\r\n\r\n");
        ck_assert_int_eq(client_read(c), 200);
        ck_assert_str_eq(c->body, "::1");
        client_free(c);
        stop_server(&f);
    }

    /* every client of a Unix socket is "unix" */
    char dir[] = "/tmp/traind-http-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[100], listen[160];
    snprintf(path, sizeof path, "%s/api.sock", dir);
    snprintf(listen, sizeof listen, "unix:%s", path);
    start_server(&f, listen, NULL);
    c = client_new(connect_unix(path));
    SEND(c->fd, "GET /peer HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "unix");
    client_free(c);
    stop_server(&f);
    rmdir(dir);
}
END_TEST

START_TEST(unix_socket)
{
    char dir[] = "/tmp/traind-http-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[100], listen[160];
    snprintf(path, sizeof path, "%s/api.sock", dir);
    snprintf(listen, sizeof listen, "unix:%s", path);

    /* a stale socket file from a previous run is replaced */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    close(s);

    fixture f;
    start_server(&f, listen, NULL);
    ck_assert_str_eq(f.addr, listen);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0660);

    /* a second server on a live socket is refused */
    uv_loop_t l2;
    uv_loop_init(&l2);
    http_server *s2 = NULL;
    ck_assert_int_eq(http_server_start(&l2, listen, NULL, handler, NULL, &s2), -EADDRINUSE);
    ck_assert_ptr_null(s2);
    uv_loop_close(&l2);

    client *c = client_new(connect_unix(path));
    SEND(c->fd, "GET /u HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /u?|");
    client_free(c);
    stop_server(&f);
    ck_assert_int_eq(stat(path, &st), -1); /* removed on stop */

    /* something that is not a socket is never deleted */
    FILE *fp = fopen(path, "w");
    fputs("precious", fp);
    fclose(fp);
    uv_loop_init(&l2);
    ck_assert_int_eq(http_server_start(&l2, listen, NULL, handler, NULL, &s2), -EEXIST);
    uv_loop_close(&l2);
    ck_assert_int_eq(stat(path, &st), 0);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(addresses)
{
    uv_loop_t l;
    uv_loop_init(&l);
    http_server *s = NULL;
    static const char *bad[] = {"nonsense", "127.0.0.1:99999", "127.0.0.1:", "127.0.0.1:-1", "::1:80", "unix:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = http_server_start(&l, bad[i], NULL, handler, NULL, &s);
        ck_assert_msg(r < 0, "%s accepted", bad[i]);
        ck_assert_ptr_null(s);
    }
    ck_assert_int_eq(uv_loop_close(&l), 0);

    /* IPv6 loopback, where the machine has it */
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
    if (probe >= 0)
        close(probe);
    if (have6) {
        fixture f;
        start_server(&f, "[::1]:0", NULL);
        ck_assert(strncmp(f.addr, "[::1]:", 6) == 0);
        ck_assert_int_gt(f.port, 0);
        stop_server(&f);
    }
    fixture f;
    start_server(&f, "localhost:0", NULL);
    ck_assert_int_gt(f.port, 0);
    stop_server(&f);
}
END_TEST

START_TEST(backpressure)
{
    /* 12 pipelined requests for 1 MiB each, read only after all are sent:
     * the server must pause (not buffer 12 MiB) and still answer all. */
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    char req[1024] = "";
    for (int i = 0; i < 12; i++)
        strcat(req, "GET /big HTTP/1.1\r\n\r\n");
    strcat(req, "GET /last HTTP/1.1\r\n\r\n");
    SEND(c->fd, req);
    usleep(200 * 1000);
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(client_read(c), 200);
        ck_assert_uint_eq(c->body_len, 1024 * 1024);
        ck_assert(c->body[0] == 'a' && c->body[1024 * 1024 - 1] == (char)('a' + (1024 * 1024 - 1) % 26));
    }
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /last?|");
    client_free(c);
    stop_server(&f);
}
END_TEST

/* Deferred answers: order kept behind them, nothing read meanwhile, and a
 * client or a server gone before the answer costs nothing. */
START_TEST(deferred_answers)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *c = client_new(connect_tcp(f.port));
    double t0 = mono();
    SEND(c->fd, "POST /later?300 HTTP/1.1\r\nContent-Length: 2\r\n\r\nabGET /a HTTP/1.1\r\n\r\n"
                "GET /later?0 HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 202);
    ck_assert_str_eq(c->body, "later 300|ab");
    ck_assert(mono() - t0 >= 0.29);
    ck_assert_int_eq(client_read(c), 200);          /* waited its turn */
    ck_assert_str_eq(c->body, "GET /a?|");
    ck_assert_int_eq(client_read(c), 202);          /* answered within the handler */
    ck_assert_str_eq(c->body, "later 0|");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /b?|");
    /* the same connection goes on */
    SEND(c->fd, "GET /later?20 HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 202);
    ck_assert_str_eq(c->body, "later 20|");

    /* a client that leaves before its answer: the answer is dropped */
    client *gone = client_new(connect_tcp(f.port));
    SEND(gone->fd, "GET /later?150 HTTP/1.1\r\n\r\n");
    usleep(20 * 1000);
    client_free(gone);
    usleep(250 * 1000);
    SEND(c->fd, "GET /c HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(c), 200);
    ck_assert_str_eq(c->body, "GET /c?|");

    /* Connection: close on a deferred request closes after its answer */
    SEND(c->fd, "GET /later?10 HTTP/1.1\r\nConnection: close\r\n\r\n");
    ck_assert_int_eq(client_read(c), 202);
    ck_assert_str_eq(c->conn_hdr, "close");
    ck_assert(closed_within(c->fd, 1000));
    client_free(c);

    /* the server stopping while an answer is owed: stop still completes */
    client *d = client_new(connect_tcp(f.port));
    SEND(d->fd, "GET /later?400 HTTP/1.1\r\n\r\n");
    usleep(50 * 1000);
    stop_server(&f);
    client_free(d);
}
END_TEST

START_TEST(stop_closes_connections)
{
    fixture f;
    start_server(&f, "127.0.0.1:0", NULL);
    client *a = client_new(connect_tcp(f.port));
    client *b = client_new(connect_tcp(f.port));
    SEND(a->fd, "GET / HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(client_read(a), 200);
    SEND(b->fd, "GET / HTTP/1.1\r\nX-Partial: ");
    usleep(50 * 1000);
    double t0 = mono();
    stop_server(&f); /* joins the loop thread: every handle closed */
    ck_assert(mono() - t0 < 2.0);
    ck_assert(closed_within(a->fd, 1000));
    ck_assert(closed_within(b->fd, 1000));
    client_free(a);
    client_free(b);
}
END_TEST

START_TEST(pct_decode_and_query)
{
    char *s = NULL;
    ck_assert_int_eq(http_pct_decode("a%20b%2Fc", 9, false, false, &s), 0);
    ck_assert_str_eq(s, "a b/c");
    free(s);
    ck_assert_int_eq(http_pct_decode("a%2Fb", 5, true, false, &s), -EINVAL);
    ck_assert_int_eq(http_pct_decode("a/b", 3, true, false, &s), -EINVAL);
    ck_assert_int_eq(http_pct_decode("a%00b", 5, false, false, &s), -EINVAL);
    ck_assert_int_eq(http_pct_decode("a%zzb", 5, false, false, &s), -EINVAL);
    ck_assert_int_eq(http_pct_decode("a%2", 3, false, false, &s), -EINVAL);
    ck_assert_int_eq(http_pct_decode("%", 1, false, false, &s), -EINVAL);
    ck_assert_int_eq(http_pct_decode("%ff", 3, false, false, &s), -EINVAL);       /* not UTF-8 */
    ck_assert_int_eq(http_pct_decode("%c0%af", 6, false, false, &s), -EINVAL);    /* overlong '/' */
    ck_assert_int_eq(http_pct_decode("%ed%a0%80", 9, false, false, &s), -EINVAL); /* surrogate */
    ck_assert_int_eq(http_pct_decode("%e2%82", 6, false, false, &s), -EINVAL);    /* truncated */
    ck_assert_int_eq(http_pct_decode("%e2%82%ac+x", 11, false, false, &s), 0);
    ck_assert_str_eq(s, "\xe2\x82\xac+x");
    free(s);
    ck_assert_int_eq(http_pct_decode("a+b", 3, false, true, &s), 0);
    ck_assert_str_eq(s, "a b");
    free(s);

    char *v = NULL;
    ck_assert_int_eq(http_query_get("since=10&max=5", "max", &v), 1);
    ck_assert_str_eq(v, "5");
    free(v);
    ck_assert_int_eq(http_query_get("since=10&max=5", "min", &v), 0);
    ck_assert_int_eq(http_query_get("", "x", &v), 0);
    ck_assert_int_eq(http_query_get("flag&x=a%20b", "flag", &v), 1);
    ck_assert_str_eq(v, "");
    free(v);
    ck_assert_int_eq(http_query_get("flag&x=a%20b", "x", &v), 1);
    ck_assert_str_eq(v, "a b");
    free(v);
    ck_assert_int_eq(http_query_get("x=%zz", "x", &v), -EINVAL);
    ck_assert_int_eq(http_query_get("st%61te=run", "state", &v), 1);
    ck_assert_str_eq(v, "run");
    free(v);

    ck_assert_str_eq(http_status_text(404), "Not Found");
    ck_assert_str_eq(http_status_text(431), "Request Header Fields Too Large");
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("server");
    tcase_set_timeout(tc, 15);
    tcase_add_test(tc, simple_get);
    tcase_add_test(tc, keep_alive);
    tcase_add_test(tc, pipelined);
    tcase_add_test(tc, body_too_large);
    tcase_add_test(tc, headers_too_large);
    tcase_add_test(tc, garbage);
    tcase_add_test(tc, lying_content_length);
    tcase_add_test(tc, chunked_body);
    tcase_add_test(tc, connection_close_and_http10);
    tcase_add_test(tc, idle_and_slow_timeouts);
    tcase_add_test(tc, connection_cap);
    tcase_add_test(tc, limits_change_at_run_time);
    tcase_add_test(tc, peer_address);
    tcase_add_test(tc, unix_socket);
    tcase_add_test(tc, addresses);
    tcase_add_test(tc, backpressure);
    tcase_add_test(tc, stop_closes_connections);
    tcase_add_test(tc, deferred_answers);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("helpers");
    tcase_add_test(tp, pct_decode_and_query);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    int failed = tl_run_suite(http_suite());
    return failed ? 1 : 0;
}

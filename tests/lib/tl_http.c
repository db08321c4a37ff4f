/*
 * tl_http — the tests' one HTTP/1.1 client, over plain blocking sockets.
 * See tl.h.
 *
 * One reader (conn_read) serves both ways the tests talk to traind: a
 * request per connection ("Connection: close": tl_http, tl_http_raw,
 * tl_oneshot; what arrived before the server closed is kept), and a
 * connection held open for keep-alive, pipelining and abuse tests (tl_dial,
 * tl_send_all, tl_conn_read: whole answers only, one at a time, the bytes
 * after an answer kept for the next).
 */
#include <check.h>
#include "tl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "traind/util.h"

void tl_resp_free(tl_resp *r)
{
    free(r->body);
    free(r->head);
    r->body = r->head = NULL;
    r->len = 0;
    r->status = 0;
}

char *tl_header(const tl_resp *r, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = r->head; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return xstrndup(v, (size_t)(eol - v));
        }
        p = eol + 2;
    }
    return NULL;
}

int tl_dial(const char *addr)
{
    char host[128];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int tl_send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more into c; false at EOF, error or the deadline. */
static bool fill(tl_conn *c, double deadline)
{
    if (c->eof)
        return false;
    for (;;) {
        int left = (int)((deadline - tl_now()) * 1000);
        if (left <= 0)
            return false;
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return false;
        if (c->len + 65536 + 1 > c->cap) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->p = xrealloc(c->p, c->cap);
        }
        ssize_t r = recv(c->fd, c->p + c->len, c->cap - c->len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            c->eof = true;
            return false;
        }
        c->len += (size_t)r;
        c->p[c->len] = '\0';
        return true;
    }
}

/* One answer off c (head: it answers a HEAD request, so no body).  Whole
 * answers only, unless partial_ok: then what came before EOF or the deadline
 * (status 0 without a status line). */
static int conn_read(tl_conn *c, bool head, int timeout_ms, bool partial_ok, tl_resp *out)
{
    memset(out, 0, sizeof *out);
    double deadline = tl_now() + timeout_ms / 1000.0;
    bool whole = false;
    size_t hlen = 0, clen = 0;      /* hlen: bytes up to the blank line, once seen (c->p may move) */
    for (;;) {
        if (!hlen && c->p) {
            const char *eoh = memmem(c->p, c->len, "\r\n\r\n", 4);
            if (eoh) {
                hlen = (size_t)(eoh - c->p) + 4;
                char *heads = xstrndup(c->p, hlen);
                const char *cl = strcasestr(heads, "\r\ncontent-length:");
                clen = cl && !head ? (size_t)atol(cl + 17) : 0;
                free(heads);
            }
        }
        if (hlen && c->len >= hlen + clen) {
            whole = true;
            break;
        }
        if (!fill(c, deadline))
            break;
    }
    if (!whole && !partial_ok)
        return 0;
    const char *p = c->p ? c->p : "";
    size_t used = whole ? hlen + clen : c->len;
    bool is_http = strncmp(p, "HTTP/1.", 7) == 0 && used >= 12;
    out->status = is_http ? atoi(p + 9) : partial_ok ? 0 : -1;
    if (hlen) {
        out->head = xstrndup(p, hlen - 2);
        out->len = used - hlen;
        out->body = xstrndup(p + hlen, out->len);
    } else {
        out->head = xstrndup(p, used);
        out->body = xstrdup("");
    }
    if (c->p) {
        memmove(c->p, c->p + used, c->len - used);
        c->len -= used;
        c->p[c->len] = '\0';
    }
    return out->status;
}

int tl_conn_read(tl_conn *c, bool head, int timeout_ms, tl_resp *out)
{
    return conn_read(c, head, timeout_ms, false, out);
}

void tl_conn_close(tl_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->p);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

bool tl_closed_within(int fd, int ms, size_t *got)
{
    double deadline = tl_now() + ms / 1000.0;
    char b[4096];
    for (;;) {
        int left = (int)((deadline - tl_now()) * 1000);
        if (left <= 0)
            return false;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, left) <= 0)
            return false;
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE)))
            return true;
        if (r > 0 && got)
            *got += (size_t)r;
    }
}

/* Sends req on a fresh connection and reads one answer (partial_ok: what
 * came before the server closed). */
static int request_once(const char *addr, const void *req, size_t len, bool head, int timeout_ms, bool partial_ok,
                        tl_resp *out)
{
    memset(out, 0, sizeof *out);
    tl_conn c = {.fd = tl_dial(addr)};
    if (c.fd < 0) {
        out->body = xstrdup("");
        return -1;
    }
    tl_send_all(c.fd, req, len);   /* the server may refuse midway: read what it said */
    int st = conn_read(&c, head, timeout_ms, partial_ok, out);
    tl_conn_close(&c);
    return st;
}

int tl_http(const char *addr, const char *method, const char *path, const char *token,
            const char *body, size_t body_len, tl_resp *out)
{
    char auth[300] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    char *head = xasprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n"
                           "Content-Type: application/yaml\r\nContent-Length: %zu\r\n\r\n",
                           method, path, addr, auth, body ? body_len : 0);
    size_t hl = strlen(head), bl = body ? body_len : 0;
    char *req = xmalloc(hl + bl + 1);
    memcpy(req, head, hl);
    if (bl)
        memcpy(req + hl, body, bl);
    int st = request_once(addr, req, hl + bl, strcmp(method, "HEAD") == 0, 10000, true, out);
    free(head);
    free(req);
    return st > 0 ? 0 : -1;
}

int tl_http_raw(const char *addr, const void *req, size_t len, int timeout_ms, tl_resp *out)
{
    int st = request_once(addr, req, len, false, timeout_ms, true, out);
    return st > 0 ? 0 : -1;
}

int tl_oneshot(const char *addr, const void *req, size_t len, bool head, tl_resp *out)
{
    tl_conn c = {.fd = tl_dial(addr)};
    ck_assert_msg(c.fd >= 0, "cannot connect to %s: %s", addr, strerror(errno));
    ck_assert_int_eq(tl_send_all(c.fd, req, len), 0);
    int st = conn_read(&c, head, 10000, false, out);
    tl_conn_close(&c);
    return st;
}

cJSON *tl_get_json(const char *addr, const char *path, int *status)
{
    tl_resp r;
    tl_http(addr, "GET", path, NULL, NULL, 0, &r);
    if (status)
        *status = r.status;
    cJSON *j = r.status >= 200 && r.status < 300 ? cJSON_Parse(r.body) : NULL;
    tl_resp_free(&r);
    return j;
}

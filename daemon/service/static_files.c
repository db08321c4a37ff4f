/*
 * static_files — the dashboard's files (index.html, app.js, Chart.js) served
 * from two folders, confined, with ETags for the browser's cache, read on the
 * thread pool (no cache of our own: each answer is one stat or one read).  See
 * traind/static_files.h.
 */
#include "traind/static_files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/api.h"
#include "traind/util.h"

#define UI_PREFIX "/ui/"
#define LIB_PREFIX "/lib/chart.js/"

struct static_files {
    uv_loop_t *loop;
    pthread_mutex_t mu;          /* the dirs: SIGHUP replaces them while reads run */
    char *www, *chartjs;
};

static_files *static_files_new(uv_loop_t *loop, const char *www_dir, const char *chartjs_dir)
{
    static_files *sf = xcalloc(1, sizeof *sf);
    sf->loop = loop;
    pthread_mutex_init(&sf->mu, NULL);
    static_files_set_dirs(sf, www_dir, chartjs_dir);
    return sf;
}

void static_files_set_dirs(static_files *sf, const char *www_dir, const char *chartjs_dir)
{
    pthread_mutex_lock(&sf->mu);
    free(sf->www);
    free(sf->chartjs);
    sf->www = www_dir && *www_dir ? xstrdup(www_dir) : NULL;
    sf->chartjs = chartjs_dir && *chartjs_dir ? xstrdup(chartjs_dir) : NULL;
    pthread_mutex_unlock(&sf->mu);
}

void static_files_free(static_files *sf)
{
    if (!sf)
        return;
    free(sf->www);
    free(sf->chartjs);
    pthread_mutex_destroy(&sf->mu);
    free(sf);
}

bool static_files_is_route(const char *path)
{
    return strcmp(path, "/") == 0 || strncmp(path, UI_PREFIX, strlen(UI_PREFIX)) == 0 ||
           strncmp(path, LIB_PREFIX, strlen(LIB_PREFIX)) == 0;
}

const char *static_files_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
    };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Every segment of a decoded relative path is a plain name: not empty, not
 * "." or "..", no dot file, no backslash. */
static bool rel_ok(const char *rel)
{
    if (!*rel)
        return false;
    const char *p = rel;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || p[0] == '.' || memchr(p, '\\', n))
            return false;
        if (!end)
            break;
        p = end + 1;
        if (!*p)
            return false;   /* a trailing slash: a folder */
    }
    return true;
}

int static_files_resolve(const char *root, const char *raw, char **out)
{
    if (!root || !*root)
        return -ENOENT;
    char *rel = NULL;
    if (http_pct_decode(raw, strlen(raw), false, false, &rel) < 0)
        return -ENOENT;
    int rc = -ENOENT;
    char *root_real = NULL, *full = NULL, *real = NULL;
    if (!rel_ok(rel))
        goto out;
    root_real = realpath(root, NULL);
    if (!root_real)
        goto out;
    full = xasprintf("%s/%s", root_real, rel);
    real = realpath(full, NULL);
    size_t rl = strlen(root_real);
    /* "/" as the root holds everything; else real must be below root_real */
    bool under = real && (rl == 1 ? real[0] == '/' : strncmp(real, root_real, rl) == 0 && real[rl] == '/');
    struct stat st;
    if (!under || stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        goto out;
    *out = real;
    real = NULL;
    rc = 0;
out:
    free(rel);
    free(root_real);
    free(full);
    free(real);
    return rc;
}

/* ---- a read on the thread pool ---------------------------------------- */

typedef struct read_req {
    uv_work_t work;
    http_deferred *answer;
    char *root;                  /* NULL: 404 */
    char *raw;                   /* the path below root, still encoded */
    char *if_none_match;         /* or NULL */
    bool chartjs;
    /* results */
    int status;
    const char *type;
    char etag[96];
    char *body;
    size_t len;
} read_req;

/* Does an If-None-Match list ("a", W/"b", *) hold etag?  Weak comparison
 * (RFC 9110 §13.1.2). */
static bool etag_listed(const char *list, const char *etag)
{
    size_t el = strlen(etag);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (*p != '"')
            return false;
        const char *end = strchr(p + 1, '"');
        if (!end)
            return false;
        if ((size_t)(end + 1 - p) == el && memcmp(p, etag, el) == 0)
            return true;
        p = end + 1;
    }
    return false;
}

static void read_file_work(read_req *r)
{
    r->status = 404;
    char *path = NULL;
    if (!r->root || static_files_resolve(r->root, r->raw, &path) < 0)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_MAX_FILE) {
        if (fd >= 0)
            close(fd);
        free(path);
        return;
    }
    r->type = static_files_type(path);
    free(path);
    snprintf(r->etag, sizeof r->etag, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 ".%09ld\"", (uint64_t)st.st_ino,
             (uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
    if (r->if_none_match && etag_listed(r->if_none_match, r->etag)) {
        close(fd);
        r->status = 304;
        return;
    }
    size_t want = (size_t)st.st_size, got = 0;
    char *buf = xmalloc(want + 1);
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != want) {   /* shrank under us: not a file we can vouch for */
        free(buf);
        r->status = 500;
        return;
    }
    buf[got] = '\0';
    r->body = buf;
    r->len = got;
    r->status = 200;
}

static void on_read_work(uv_work_t *w)
{
    read_file_work(w->data);
}

/* The page's CSP: scripts and styles from this daemon only; no plug-ins,
 * no framing, no <base>.  (Inline style attributes are allowed: Chart.js
 * sizes its canvas through them.) */
#define PAGE_CSP                                                                                                  \
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "            \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

static void fill_response(read_req *r, http_response *res)
{
    if (r->status == 200 || r->status == 304) {
        if (r->status == 200) {
            http_response_set(res, 200, r->type, r->body, r->len);
            r->body = NULL;
        } else {
            http_response_set(res, 304, r->type, NULL, 0);
        }
        http_response_add_header(res, "ETag", r->etag);
        http_response_add_header(res, "Cache-Control", r->chartjs ? "public, max-age=3600" : "no-cache");
        if (strncmp(r->type, "text/html", 9) == 0) {
            http_response_add_header(res, "Content-Security-Policy", PAGE_CSP);
            http_response_add_header(res, "Referrer-Policy", "no-referrer");
        }
        return;
    }
    http_response_error(res, r->status, r->status == 404 ? "no such file" : "the file changed while it was read");
    http_response_add_header(res, "Cache-Control", "no-store");
}

static void read_req_free(read_req *r)
{
    free(r->root);
    free(r->raw);
    free(r->if_none_match);
    free(r->body);
    free(r);
}

static void on_read_done(uv_work_t *w, int status)
{
    read_req *r = w->data;
    http_response res = {.status = 200};
    if (status < 0)
        http_response_error(&res, 503, API_SHUTTING_DOWN);
    else
        fill_response(r, &res);
    http_deferred_respond(r->answer, &res);
    read_req_free(r);
}

void static_files_handle(static_files *sf, const http_request *req, http_response *res)
{
    /* what api_handle set (no-store) does not apply to files */
    free(res->extra_headers);
    res->extra_headers = NULL;
    res->extra_len = 0;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        http_response_error(res, 405, "method not allowed");
        http_response_add_header(res, "Allow", "GET, HEAD");
        return;
    }
    read_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    const char *path = req->path;
    if (sf)
        pthread_mutex_lock(&sf->mu);
    if (strcmp(path, "/") == 0) {
        r->root = sf && sf->www ? xstrdup(sf->www) : NULL;
        r->raw = xstrdup("index.html");
    } else if (strncmp(path, UI_PREFIX, strlen(UI_PREFIX)) == 0) {
        r->root = sf && sf->www ? xstrdup(sf->www) : NULL;
        r->raw = xstrdup(path + strlen(UI_PREFIX));
    } else {
        r->root = sf && sf->chartjs ? xstrdup(sf->chartjs) : NULL;
        r->raw = xstrdup(path + strlen(LIB_PREFIX));
        r->chartjs = true;
    }
    if (sf)
        pthread_mutex_unlock(&sf->mu);
    const char *inm = http_request_header(req, "If-None-Match");
    r->if_none_match = inm ? xstrdup(inm) : NULL;
    if (sf && sf->loop && r->root) {
        r->answer = http_response_defer(res);
        if (uv_queue_work(sf->loop, &r->work, on_read_work, on_read_done) == 0)
            return;
        http_response res2 = {.status = 200};
        http_response_error(&res2, 503, "cannot queue the read");
        http_deferred_respond(r->answer, &res2);
        read_req_free(r);
        return;
    }
    read_file_work(r);
    fill_response(r, res);
    read_req_free(r);
}

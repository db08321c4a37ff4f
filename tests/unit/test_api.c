/*
 * test_api — the routes of traind(8) HTTP API (daemon/service/api.c) over a fake
 * backend, called directly with built requests; the Prometheus writer
 * (daemon/service/prom.c); and one request through the real HTTP server.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "traind/api.h"
#include "traind/hostcheck.h"
#include "traind/http.h"
#include "traind/prom.h"
#include "traind/static_files.h"
#include "traind/util.h"
#include "tl.h"
#include "tl_fake_backend.h"

/* ------------------------------------------------------------------ */
/* the fake backend                                                     */

static const char *fake_jobs_json =
    "[{\"id\":\"a\",\"name\":\"alpha\",\"state\":\"running\",\"step\":10,\"total_steps\":100,\"lr\":0.001,"
    "\"loss\":0.5,\"steps_per_s\":250.5,\"errors\":[]},"
    "{\"id\":\"b\",\"name\":\"beta\",\"state\":\"queued\",\"step\":0,\"total_steps\":50,\"lr\":null,"
    "\"loss\":null,\"steps_per_s\":null,\"queue_position\":1,\"errors\":[]},"
    "{\"id\":\"c.v2\",\"name\":\"gamma\",\"state\":\"succeeded\",\"step\":20,\"total_steps\":20,\"lr\":0,"
    "\"loss\":0.25,\"eval_loss\":0.3,\"steps_per_s\":99,\"errors\":[]}]";

/* The fake's checks as this suite's assertions. */
static void fake_check(bool ok, const char *what)
{
    ck_assert_msg(ok, "%s", what);
}

static tl_fake F;
static api_backend BE;
static const char *g_peer = "127.0.0.1";   /* the peer of call()'s requests */

static void setup(void)
{
    tl_fake_init(&F, fake_jobs_json);
    F.check = fake_check;
    BE = tl_fake_backend(&F);
}

static void teardown(void)
{
    rate_limit_free(BE.write_limit);
    BE.write_limit = NULL;
    g_peer = "127.0.0.1";
    tl_fake_free(&F);
}

/* ------------------------------------------------------------------ */
/* calling the API                                                      */

typedef struct reply {
    int status;
    const char *ctype;
    char *body;
    char *headers;
    cJSON *json; /* body parsed, when it is JSON */
} reply;

static void reply_free(reply *r)
{
    free(r->body);
    free(r->headers);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

/* Calls api_handle with METHOD TARGET [auth] [body]. */
static reply call(const char *method, const char *target, const char *auth, const char *body)
{
    char *path, *query;
    const char *q = strchr(target, '?');
    path = q ? xstrndup(target, (size_t)(q - target)) : xstrdup(target);
    query = xstrdup(q ? q + 1 : "");
    http_header hs[2];
    size_t nh = 0;
    if (auth)
        hs[nh++] = (http_header){"Authorization", auth};
    hs[nh++] = (http_header){"Content-Type", "application/yaml"};
    http_request req = {
        .method = method,
        .target = target,
        .path = path,
        .query = query,
        .headers = hs,
        .n_headers = nh,
        .body = body ? body : "",
        .body_len = body ? strlen(body) : 0,
        .http_major = 1,
        .http_minor = 1,
        .peer = g_peer,
    };
    http_response res = {.status = 200};
    api_handle(&BE, &req, &res);
    ck_assert(http_response_resolve(&res));   /* the fake backend answers at once */
    reply r = {.status = res.status, .ctype = res.content_type};
    r.body = res.body ? xstrndup(res.body, res.body_len) : xstrdup("");
    r.headers = res.extra_headers ? xstrndup(res.extra_headers, res.extra_len) : xstrdup("");
    free(res.body);
    free(res.extra_headers);
    if (!r.ctype || strncmp(r.ctype, "application/json", 16) == 0) {
        r.json = cJSON_Parse(r.body);
        ck_assert_msg(r.json != NULL, "%s %s: not JSON: %s", method, target, r.body);
    }
    free(path);
    free(query);
    return r;
}

static const char *jstr(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsNumber(x), "%s is not a number", k);
    return x->valuedouble;
}

#define EXPECT(r, code)                                                                                      \
    ck_assert_msg((r).status == (code), "expected %d, got %d: %s", (code), (r).status, (r).body)

/* ------------------------------------------------------------------ */
/* tests                                                                */

START_TEST(status_route)
{
    reply r = call("GET", "/status", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_str_eq(jstr(r.json, "version"), TRAIND_VERSION);
    ck_assert(jnum(r.json, "uptime_s") == 12.5);
    cJSON *jobs = cJSON_GetObjectItem(r.json, "jobs");
    ck_assert_int_eq(cJSON_GetArraySize(jobs), 3);
    cJSON *a = cJSON_GetArrayItem(jobs, 0), *b = cJSON_GetArrayItem(jobs, 1);
    ck_assert_str_eq(jstr(a, "id"), "a");
    ck_assert_str_eq(jstr(a, "state"), "running");
    ck_assert(jnum(a, "step") == 10 && jnum(a, "total_steps") == 100 && jnum(a, "lr") == 0.001 &&
              jnum(a, "loss") == 0.5);
    ck_assert_int_eq(cJSON_GetArraySize(a), 6); /* the summary, not the whole job */
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(b, "lr")));
    reply_free(&r);

    r = call("HEAD", "/status", NULL, NULL);
    EXPECT(r, 200);
    reply_free(&r);
    r = call("GET", "/healthz", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    reply_free(&r);
}
END_TEST

START_TEST(jobs_list_and_get)
{
    reply r = call("GET", "/jobs", NULL, NULL);
    EXPECT(r, 200);
    ck_assert(cJSON_IsArray(r.json));
    ck_assert_int_eq(cJSON_GetArraySize(r.json), 3);
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(r.json, 0), "id"), "a");
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetArrayItem(r.json, 0), "errors"));
    reply_free(&r);

    r = call("GET", "/jobs?state=running", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(r.json), 1);
    reply_free(&r);
    r = call("GET", "/jobs?state=failed", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(r.json), 0);
    reply_free(&r);
    r = call("GET", "/jobs?state=bogus", NULL, NULL);
    EXPECT(r, 400);
    ck_assert_ptr_nonnull(jstr(r.json, "error"));
    reply_free(&r);
    r = call("GET", "/jobs?state=%zz", NULL, NULL);
    EXPECT(r, 400);
    reply_free(&r);

    r = call("GET", "/jobs/a", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_str_eq(jstr(r.json, "name"), "alpha");
    reply_free(&r);
    r = call("GET", "/jobs/c%2Ev2", NULL, NULL); /* percent-decoded */
    EXPECT(r, 200);
    ck_assert_str_eq(jstr(r.json, "id"), "c.v2");
    reply_free(&r);
    r = call("GET", "/jobs/nope", NULL, NULL);
    EXPECT(r, 404);
    ck_assert_str_eq(jstr(r.json, "error"), "no such job");
    ck_assert_str_eq(F.last_id, "nope");
    reply_free(&r);
}
END_TEST

START_TEST(traversal_ids)
{
    static const char *bad[] = {
        "/jobs/..%2f..%2fetc",   "/jobs/..%2F..%2Fetc%2Fpasswd", "/jobs/..",          "/jobs/.",
        "/jobs/%2e%2e",          "/jobs/.hidden",                "/jobs/a%00b",       "/jobs/%ff",
        "/jobs/a%2fb",           "/jobs/a b",                    "/jobs/a%20b",       "/jobs/.x..y",
        "/jobs/",                "/jobs//metrics",               "/jobs/a/b/c",       "/jobs/%",
        "/jobs/..%2f..%2fetc/metrics", "/jobs/%c3%a9t%c3%a9",   "/jobs/a/metrics/x", "/jobs/a%5cb",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reply r = call("GET", bad[i], NULL, NULL);
        ck_assert_msg(r.status == 404, "%s answered %d", bad[i], r.status);
        reply_free(&r);
    }
    char longid[300] = "/jobs/";
    memset(longid + 6, 'x', 200);
    reply r = call("GET", longid, NULL, NULL);
    EXPECT(r, 404);
    reply_free(&r);
    ck_assert_int_eq(F.calls, 0); /* none of them reached the backend */

    r = call("POST", "/jobs/..%2f..%2fetc/cancel", "Bearer s3cret", NULL);
    EXPECT(r, 404);
    reply_free(&r);
    ck_assert_int_eq(F.calls, 0);
}
END_TEST

START_TEST(metrics_route)
{
    reply r = call("GET", "/jobs/a/metrics", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_str_eq(jstr(r.json, "id"), "a");
    cJSON *pts = cJSON_GetObjectItem(r.json, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 100);
    ck_assert_int_eq(F.since, -1);
    ck_assert_int_eq(F.max, 0);
    cJSON *p0 = cJSON_GetArrayItem(pts, 0);
    static const char *keys[] = {"step", "lr", "loss", "loss_avg", "grad_norm", "time"};
    for (size_t k = 0; k < 6; k++)
        ck_assert_ptr_nonnull(cJSON_GetObjectItem(p0, keys[k]));
    reply_free(&r);

    r = call("GET", "/jobs/a/metrics?since=90", NULL, NULL);
    EXPECT(r, 200);
    pts = cJSON_GetObjectItem(r.json, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 10);
    ck_assert(jnum(cJSON_GetArrayItem(pts, 0), "step") == 91);
    ck_assert_int_eq(F.since, 90);
    reply_free(&r);

    r = call("GET", "/jobs/a/metrics?max=10&since=0", NULL, NULL);
    EXPECT(r, 200);
    pts = cJSON_GetObjectItem(r.json, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 10);
    ck_assert(jnum(cJSON_GetArrayItem(pts, 0), "step") == 1);
    ck_assert(jnum(cJSON_GetArrayItem(pts, 9), "step") == 100);
    for (int i = 1; i < 10; i++)
        ck_assert(jnum(cJSON_GetArrayItem(pts, i), "step") > jnum(cJSON_GetArrayItem(pts, i - 1), "step"));
    ck_assert_int_eq(F.max, 10);
    reply_free(&r);

    r = call("GET", "/jobs/b/metrics", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "points")), 0);
    reply_free(&r);

    static const char *bad[] = {"since=abc", "since=", "since=1e3", "since=5x", "max=0", "max=-3",
                                "max=99999999999999999999", "max= 5", "since=%zz", "max=1.5", "since=+4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char t[128];
        snprintf(t, sizeof t, "/jobs/a/metrics?%s", bad[i]);
        r = call("GET", t, NULL, NULL);
        ck_assert_msg(r.status == 400, "%s answered %d", t, r.status);
        ck_assert_ptr_nonnull(jstr(r.json, "error"));
        reply_free(&r);
    }
    r = call("GET", "/jobs/nope/metrics", NULL, NULL);
    EXPECT(r, 404);
    reply_free(&r);
    r = call("POST", "/jobs/a/metrics", "Bearer s3cret", NULL);
    EXPECT(r, 405);
    ck_assert(strstr(r.headers, "Allow: GET, HEAD\r\n"));
    reply_free(&r);
}
END_TEST

START_TEST(submit_auth)
{
    const char *yaml = "name: x\nschedule: {total_steps: 10}\n";
    reply r = call("POST", "/jobs", NULL, yaml);
    EXPECT(r, 401);
    ck_assert(strstr(r.headers, "WWW-Authenticate: Bearer realm=\"traind\"\r\n"));
    ck_assert_ptr_nonnull(jstr(r.json, "error"));
    ck_assert_ptr_null(F.last_yaml);
    reply_free(&r);

    static const char *wrong[] = {"Bearer wrong", "Bearer s3cre", "Bearer s3cret2", "Basic czNjcmV0",
                                  "Bearer", "Bearer ", "s3cret", "Bearers3cret"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        r = call("POST", "/jobs", wrong[i], yaml);
        ck_assert_msg(r.status == 401, "'%s' answered %d", wrong[i], r.status);
        ck_assert(strstr(r.headers, "WWW-Authenticate: Bearer"));
        reply_free(&r);
    }
    ck_assert_ptr_null(F.last_yaml);

    r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 201);
    ck_assert_str_eq(jstr(r.json, "id"), "new-job");
    ck_assert_str_eq(F.last_yaml, yaml);
    reply_free(&r);
    r = call("POST", "/jobs", "bearer   s3cret", yaml);
    EXPECT(r, 201);
    reply_free(&r);

    /* no token configured: every write refused */
    F.token = "";
    r = call("POST", "/jobs", "Bearer ", yaml);
    EXPECT(r, 401);
    reply_free(&r);
    F.token = NULL;
    r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 401);
    reply_free(&r);
    F.token = "s3cret";

    /* invalid configs: 400 with every error */
    r = call("POST", "/jobs", "Bearer s3cret", "bad: true\n");
    EXPECT(r, 400);
    ck_assert_ptr_nonnull(jstr(r.json, "error"));
    cJSON *errs = cJSON_GetObjectItem(r.json, "errors");
    ck_assert_int_eq(cJSON_GetArraySize(errs), 1);
    cJSON *e = cJSON_GetArrayItem(errs, 0);
    ck_assert_str_eq(jstr(e, "path"), "schedule.warmup_steps");
    ck_assert(jnum(e, "line") == 7 && jnum(e, "column") == 18);
    ck_assert_str_eq(jstr(e, "message"), "must be an integer >= 0, got -5");
    reply_free(&r);

    r = call("POST", "/jobs", "Bearer s3cret", "");
    EXPECT(r, 400);
    reply_free(&r);
    r = call("POST", "/jobs", "Bearer s3cret", "boom");
    EXPECT(r, 500);
    reply_free(&r);
}
END_TEST

START_TEST(queue_full)
{
    const char *yaml = "name: crowded\n";
    reply r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 429);
    ck_assert_str_eq(jstr(r.json, "error"), "the queue is full; try again later");
    ck_assert(strstr(r.headers, "Retry-After: 5\r\n"));
    reply_free(&r);
    F.queued = 1000;
    r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 429);
    ck_assert_str_eq(jstr(r.json, "error"), "the queue is full (1000 jobs waiting); try again later");
    reply_free(&r);
    /* the token is still checked first */
    r = call("POST", "/jobs", NULL, yaml);
    EXPECT(r, 401);
    reply_free(&r);
}
END_TEST

static bool has_header(const reply *r, const char *line)
{
    return strstr(r->headers, line) != NULL;
}

/* Token-less noise from a host does not make its real clients' writes 429. */
START_TEST(rate_limit_separates_unauthenticated)
{
    BE.write_limit = rate_limit_new(2, 3, 16);
    const char *yaml = "name: x\n";
    int limited = 0;
    for (int i = 0; i < 20; i++) {
        reply r = call("POST", "/jobs", i % 2 ? "Bearer wrong" : NULL, yaml);
        ck_assert(r.status == 401 || r.status == 429);
        limited += r.status == 429;
        reply_free(&r);
    }
    ck_assert_int_ge(limited, 15);   /* the noise itself is limited */
    for (int i = 0; i < 3; i++) {
        reply r = call("POST", "/jobs", "Bearer s3cret", yaml);
        EXPECT(r, 201);
        reply_free(&r);
    }
}
END_TEST

/* Pages of jobs and of metrics points, and the Link to the next. */
START_TEST(pages_over_plain_backend)
{
    reply r = call("GET", "/jobs?limit=2", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(r.json), 2);
    ck_assert_msg(has_header(&r, "Link: </jobs?limit=2&after=b>; rel=\"next\"\r\n"), "%s", r.headers);
    reply_free(&r);
    r = call("GET", "/jobs?limit=2&after=b", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(r.json), 1);
    ck_assert(!has_header(&r, "Link:"));
    reply_free(&r);
    r = call("GET", "/jobs?after=zzz", NULL, NULL);
    EXPECT(r, 400);
    reply_free(&r);
    r = call("GET", "/jobs?limit=x", NULL, NULL);
    EXPECT(r, 400);
    reply_free(&r);
    r = call("GET", "/jobs/a/metrics?limit=30&since=10", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "points")), 30);
    ck_assert_int_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "next_since")), 40);
    reply_free(&r);
    r = call("GET", "/jobs/a/metrics", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "points")), 100);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "next_since")));
    reply_free(&r);
}
END_TEST

/* The Host check against DNS rebinding (hostcheck.c), and the route's 403. */
START_TEST(host_check)
{
    char *allowed[] = {"traind.example"};
    static const char *const ok[] = {NULL, "127.0.0.1", "127.0.0.1:8080", "10.1.2.3:80", "[::1]:8080", "[::1]",
                                     "localhost", "LOCALHOST:1", "localhost.", "a.localhost", "traind.example",
                                     "Traind.Example:8080", "box.lan:8080"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        ck_assert_msg(host_allowed(ok[i], "box.lan:8080", allowed, 1), "%s refused", ok[i] ? ok[i] : "(none)");
    static const char *const bad[] = {"evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                                      "localhost.evil.example", "", ":80", "[::1", "::1", "traind.example.evil"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!host_allowed(bad[i], "box.lan:8080", allowed, 1), "%s allowed", bad[i]);
    char *any[] = {"*"};
    ck_assert(host_allowed("evil.example", "127.0.0.1:8080", any, 1));
    ck_assert(host_allowed("evil.example", "unix:/run/traind/api.sock", NULL, 0));
}
END_TEST

START_TEST(write_rate_limit)
{
    BE.write_limit = rate_limit_new(2, 3, 16);   /* 2 writes/s, 3 at once */
    const char *yaml = "name: x\n";
    for (int i = 0; i < 3; i++) {
        reply r = call("POST", "/jobs", "Bearer s3cret", yaml);
        EXPECT(r, 201);
        reply_free(&r);
    }
    reply r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 429);
    ck_assert_str_eq(jstr(r.json, "error"), "too many requests from 127.0.0.1: limit is 2 writes/s");
    ck_assert_msg(has_header(&r, "Retry-After: 1\r\n"), "%s", r.headers);
    reply_free(&r);
    /* every authenticated write counts, cancels too */
    r = call("POST", "/jobs/a/cancel", "Bearer s3cret", NULL);
    EXPECT(r, 429);
    reply_free(&r);
    /* unauthenticated writes have a bucket of their own */
    r = call("POST", "/jobs", NULL, yaml);
    EXPECT(r, 401);
    reply_free(&r);
    /* reads are never limited */
    for (int i = 0; i < 20; i++) {
        r = call("GET", "/jobs/a", NULL, NULL);
        EXPECT(r, 200);
        reply_free(&r);
    }
    /* another client has its own bucket */
    g_peer = "::1";
    r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 201);
    reply_free(&r);
    g_peer = "unix";
    for (int i = 0; i < 3; i++) {
        r = call("POST", "/jobs", "Bearer s3cret", yaml);
        EXPECT(r, 201);
        reply_free(&r);
    }
    r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 429);
    ck_assert_str_eq(jstr(r.json, "error"), "too many requests from unix: limit is 2 writes/s");
    reply_free(&r);
    /* a token comes back after 1/rate s */
    g_peer = "127.0.0.1";
    usleep(600 * 1000);
    r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 201);
    reply_free(&r);
    r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 429);
    reply_free(&r);
    /* rate 0: unlimited */
    rate_limit_configure(BE.write_limit, 0, 0);
    for (int i = 0; i < 50; i++) {
        r = call("POST", "/jobs", "Bearer s3cret", yaml);
        EXPECT(r, 201);
        reply_free(&r);
    }
    /* a request with no peer (a test harness) is one client, "unknown" */
    rate_limit_configure(BE.write_limit, 1, 1);
    g_peer = NULL;
    r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 201);
    reply_free(&r);
    r = call("POST", "/jobs", "Bearer s3cret", yaml);
    EXPECT(r, 429);
    ck_assert_str_eq(jstr(r.json, "error"), "too many requests from unknown: limit is 1 writes/s");
    reply_free(&r);
}
END_TEST

START_TEST(cancel_route)
{
    reply r = call("POST", "/jobs/a/cancel", "Bearer s3cret", NULL);
    EXPECT(r, 202);
    ck_assert_str_eq(jstr(r.json, "id"), "a");
    reply_free(&r);
    r = call("POST", "/jobs/b/cancel", "Bearer s3cret", NULL);
    EXPECT(r, 202);
    reply_free(&r);
    r = call("POST", "/jobs/c.v2/cancel", "Bearer s3cret", NULL);
    EXPECT(r, 409);
    ck_assert_ptr_nonnull(jstr(r.json, "error"));
    reply_free(&r);
    r = call("POST", "/jobs/nope/cancel", "Bearer s3cret", NULL);
    EXPECT(r, 404);
    reply_free(&r);
    int calls = F.calls;
    r = call("POST", "/jobs/a/cancel", NULL, NULL);
    EXPECT(r, 401);
    reply_free(&r);
    r = call("POST", "/jobs/a/cancel", "Bearer nope", NULL);
    EXPECT(r, 401);
    reply_free(&r);
    ck_assert_int_eq(F.calls, calls);
    r = call("GET", "/jobs/a/cancel", NULL, NULL);
    EXPECT(r, 405);
    ck_assert(strstr(r.headers, "Allow: POST\r\n"));
    reply_free(&r);
}
END_TEST

START_TEST(unknown_and_methods)
{
    static const char *nf[] = {"/nope", "/statusx", "/jobs/a/other", "/jobsx", "/Jobs", "//jobs", "/metrics/x"};
    for (size_t i = 0; i < sizeof nf / sizeof nf[0]; i++) {
        reply r = call("GET", nf[i], NULL, NULL);
        ck_assert_msg(r.status == 404, "%s answered %d", nf[i], r.status);
        ck_assert_ptr_nonnull(jstr(r.json, "error"));
        reply_free(&r);
    }
    struct {
        const char *m, *path, *allow;
    } cases[] = {
        {"DELETE", "/jobs", "GET, HEAD, POST"}, {"PUT", "/jobs/a", "GET, HEAD"}, {"POST", "/status", "GET, HEAD"},
        {"POST", "/healthz", "GET, HEAD"},      {"POST", "/metrics", "GET, HEAD"}, {"DELETE", "/", "GET, HEAD"},
        {"OPTIONS", "/jobs/a/cancel", "POST"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r = call(cases[i].m, cases[i].path, "Bearer s3cret", NULL);
        ck_assert_msg(r.status == 405, "%s %s answered %d", cases[i].m, cases[i].path, r.status);
        char want[64];
        snprintf(want, sizeof want, "Allow: %s\r\n", cases[i].allow);
        ck_assert_msg(strstr(r.headers, want), "%s %s: headers %s", cases[i].m, cases[i].path, r.headers);
        reply_free(&r);
    }
}
END_TEST

START_TEST(prometheus_route)
{
    reply r = call("GET", "/metrics", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_str_eq(r.ctype, PROM_CONTENT_TYPE);
    const char *b = r.body;
    ck_assert(strstr(b, "# TYPE traind_up gauge\ntraind_up 1\n"));
    ck_assert(strstr(b, "traind_jobs{state=\"running\"} 1\n"));
    ck_assert(strstr(b, "traind_jobs{state=\"queued\"} 1\n"));
    ck_assert(strstr(b, "traind_jobs{state=\"succeeded\"} 1\n"));
    ck_assert(strstr(b, "traind_jobs{state=\"failed\"} 0\n"));
    ck_assert(strstr(b, "traind_jobs{state=\"cancelled\"} 0\n"));
    ck_assert(strstr(b, "traind_jobs{state=\"rejected\"} 0\n"));
    ck_assert(strstr(b, "traind_job_step{job=\"a\"} 10\n"));
    ck_assert(strstr(b, "traind_job_step{job=\"b\"} 0\n"));
    ck_assert(strstr(b, "traind_job_lr{job=\"a\"} 0.001\n"));
    ck_assert(!strstr(b, "traind_job_lr{job=\"b\"}")); /* null: no sample */
    ck_assert(strstr(b, "traind_job_loss{job=\"c.v2\"} 0.25\n"));
    ck_assert(strstr(b, "traind_job_steps_per_second{job=\"a\"} 250.5\n"));
    ck_assert(strstr(b, "traind_job_eval_loss{job=\"c.v2\"} 0.3\n"));
    ck_assert(!strstr(b, "traind_job_eval_loss{job=\"a\"}"));
    ck_assert(strstr(b, "traind_uptime_seconds 12.5\n"));
    ck_assert(strstr(b, "# TYPE traind_extra counter\ntraind_extra 7\n"));
    /* HELP and TYPE once per family, before its samples */
    static const char *fams[] = {"traind_up", "traind_jobs", "traind_job_step", "traind_job_lr",
                                 "traind_job_loss", "traind_job_steps_per_second", "traind_job_eval_loss"};
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        char help[96], type[96], sample[96];
        snprintf(help, sizeof help, "# HELP %s ", fams[i]);
        snprintf(type, sizeof type, "# TYPE %s gauge\n", fams[i]);
        snprintf(sample, sizeof sample, "\n%s", fams[i]);
        const char *h = strstr(b, help);
        ck_assert_msg(h, "no HELP for %s", fams[i]);
        ck_assert_msg(!strstr(h + 1, help), "two HELP lines for %s", fams[i]);
        const char *t = strstr(b, type);
        ck_assert(t && !strstr(t + 1, type) && t > h);
        const char *s = strstr(b, sample);
        ck_assert(s && s > t);
    }
    ck_assert_int_eq(b[strlen(b) - 1], '\n');
    reply_free(&r);
}
END_TEST

START_TEST(prom_writer)
{
    prom_buf b;
    prom_buf_init(&b);
    const char *labels[] = {"job", "a\"b\\c\nd", "x", "", NULL};
    prom_family(&b, "m", "gauge", "Help with \\ and\nnewline.");
    prom_sample(&b, "m", labels, 1);
    prom_sample(&b, "m", NULL, NAN);
    prom_sample(&b, "m", NULL, INFINITY);
    prom_sample(&b, "m", NULL, -INFINITY);
    prom_sample(&b, "m", NULL, 0.1);
    prom_sample(&b, "m", NULL, 1200);
    prom_sample(&b, "m", NULL, 1e-300);
    prom_sample(&b, "m", NULL, -2.5e22);
    size_t len;
    char *s = prom_buf_take(&b, &len);
    ck_assert_uint_eq(len, strlen(s));
    ck_assert_str_eq(s, "# HELP m Help with \\\\ and\\nnewline.\n"
                        "# TYPE m gauge\n"
                        "m{job=\"a\\\"b\\\\c\\nd\",x=\"\"} 1\n"
                        "m NaN\n"
                        "m +Inf\n"
                        "m -Inf\n"
                        "m 0.1\n"
                        "m 1200\n"
                        "m 1e-300\n"
                        "m -2.5e+22\n");
    free(s);
    ck_assert_ptr_null(b.p);
    s = prom_buf_take(&b, &len);
    ck_assert_str_eq(s, "");
    free(s);

    char num[32];
    prom_format_value(0.000187, num, sizeof num);
    ck_assert_str_eq(num, "0.000187");
    prom_format_value(1.0 / 3.0, num, sizeof num);
    ck_assert(strtod(num, NULL) == 1.0 / 3.0);
}
END_TEST

START_TEST(dashboard)
{
    /* no www dir: 404, never the API's JSON */
    reply r = call("GET", "/", NULL, NULL);
    EXPECT(r, 404);
    reply_free(&r);
    char *dir = tl_tmpdir("api-www");
    char *f = xasprintf("%s/index.html", dir);
    ck_assert_int_eq(tl_write(f, "<!doctype html><p>hi</p>"), 0);
    BE.files = static_files_new(NULL, dir, NULL);
    r = call("GET", "/", NULL, NULL);
    EXPECT(r, 200);
    ck_assert(strncmp(r.ctype, "text/html", 9) == 0);
    ck_assert_str_eq(r.body, "<!doctype html><p>hi</p>");
    ck_assert(strstr(r.headers, "ETag: \""));
    ck_assert(strstr(r.headers, "Cache-Control: no-cache"));
    ck_assert(!strstr(r.headers, "no-store"));
    ck_assert(strstr(r.headers, "Content-Security-Policy: default-src 'self'; script-src 'self'"));
    reply_free(&r);
    r = call("GET", "/ui/index.html", NULL, NULL);
    EXPECT(r, 200);
    reply_free(&r);
    r = call("GET", "/ui/../index.html", NULL, NULL);
    EXPECT(r, 404);
    reply_free(&r);
    r = call("GET", "/lib/chart.js/chart.min.js", NULL, NULL);   /* no Chart.js dir given */
    EXPECT(r, 404);
    reply_free(&r);
    r = call("POST", "/", "Bearer s3cret", "x");
    EXPECT(r, 405);
    reply_free(&r);
    static_files_free(BE.files);
    BE.files = NULL;
    tl_rmtree(dir);
    free(f);
    free(dir);
}
END_TEST

START_TEST(empty_backend)
{
    api_backend empty = {0};
    api_backend saved = BE;
    BE = empty;
    reply r = call("GET", "/jobs", NULL, NULL);
    EXPECT(r, 200);
    ck_assert_str_eq(r.body, "[]");
    reply_free(&r);
    r = call("GET", "/status", NULL, NULL);
    EXPECT(r, 200);
    reply_free(&r);
    r = call("GET", "/metrics", NULL, NULL);
    EXPECT(r, 200);
    reply_free(&r);
    r = call("GET", "/jobs/a", NULL, NULL);
    EXPECT(r, 404);
    reply_free(&r);
    r = call("POST", "/jobs", "Bearer x", "a: 1");
    EXPECT(r, 401);
    reply_free(&r);
    BE = saved;
}
END_TEST

START_TEST(helpers)
{
    ck_assert(api_id_valid("cosine-demo"));
    ck_assert(api_id_valid("a.b_c-2"));
    ck_assert(api_id_valid("A9"));
    ck_assert(!api_id_valid(""));
    ck_assert(!api_id_valid(NULL));
    ck_assert(!api_id_valid("."));
    ck_assert(!api_id_valid(".."));
    ck_assert(!api_id_valid(".x"));
    ck_assert(api_id_valid("a..b"));   /* v1..2 is valid by traind(8) THE SPOOL: one rule everywhere */
    ck_assert(api_id_valid("v1..2"));
    ck_assert(!api_id_valid("a/b"));
    ck_assert(!api_id_valid("a b"));
    ck_assert(!api_id_valid("\xc3\xa9"));
    char big[200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert(!api_id_valid(big));
    big[48] = '\0';   /* SPOOL_ID_MAX */
    ck_assert(api_id_valid(big));
    big[48] = 'a';
    big[49] = '\0';
    ck_assert(!api_id_valid(big));

    ck_assert(api_token_equal("abc", "abc"));
    ck_assert(!api_token_equal("abd", "abc"));
    ck_assert(!api_token_equal("ab", "abc"));
    ck_assert(!api_token_equal("abcd", "abc"));
    ck_assert(!api_token_equal("", "abc"));
    ck_assert(api_token_equal("", ""));

    for (long max = 1; max <= 12; max++) {
        cJSON *arr = cJSON_CreateArray();
        for (int i = 0; i < 10; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(i));
        api_thin_points(arr, max);
        int n = cJSON_GetArraySize(arr);
        ck_assert_int_eq(n, max < 10 ? max : 10);
        ck_assert_int_eq(cJSON_GetArrayItem(arr, n - 1)->valueint, 9);
        if (max > 1)
            ck_assert_int_eq(cJSON_GetArrayItem(arr, 0)->valueint, 0);
        for (int i = 1; i < n; i++)
            ck_assert_int_gt(cJSON_GetArrayItem(arr, i)->valueint, cJSON_GetArrayItem(arr, i - 1)->valueint);
        cJSON_Delete(arr);
    }
}
END_TEST

/* One round trip through the real server with api_handle as its handler. */
static void *run_loop(void *arg)
{
    uv_run(arg, UV_RUN_DEFAULT);
    return NULL;
}

static void on_stop(uv_async_t *a)
{
    http_server_stop(a->data, NULL, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

START_TEST(over_http)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_server *srv;
    ck_assert_int_eq(http_server_start(&loop, "127.0.0.1:0", NULL, api_handle, &BE, &srv), 0);
    int port = atoi(strrchr(http_server_address(srv), ':') + 1);
    uv_async_t stop;
    uv_async_init(&loop, &stop, on_stop);
    stop.data = srv;
    pthread_t t;
    pthread_create(&t, NULL, run_loop, &loop);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *req = "GET /jobs/a%2F..%2Fx HTTP/1.1\r\n\r\n"
                      "POST /jobs HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 8\r\n"
                      "Connection: close\r\n\r\nname: x\n";
    ck_assert_int_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    char buf[8192];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf - 1 && (k = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0)
        n += (size_t)k;
    buf[n] = '\0';
    close(fd);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 404 Not Found\r\n", 24) == 0, "%s", buf);
    char *second = strstr(buf + 1, "HTTP/1.1 ");
    ck_assert_ptr_nonnull(second);
    ck_assert_msg(strncmp(second, "HTTP/1.1 201 Created\r\n", 22) == 0, "%s", second);
    ck_assert(strstr(second, "Cache-Control: no-store\r\n"));
    ck_assert(strstr(second, "\r\n\r\n{\"id\":\"new-job\"}"));
    ck_assert_str_eq(F.last_yaml, "name: x\n");

    uv_async_send(&stop);
    pthread_join(t, NULL);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("routes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, status_route);
    tcase_add_test(tc, jobs_list_and_get);
    tcase_add_test(tc, traversal_ids);
    tcase_add_test(tc, metrics_route);
    tcase_add_test(tc, submit_auth);
    tcase_add_test(tc, queue_full);
    tcase_add_test(tc, write_rate_limit);
    tcase_add_test(tc, cancel_route);
    tcase_add_test(tc, rate_limit_separates_unauthenticated);
    tcase_add_test(tc, host_check);
    tcase_add_test(tc, pages_over_plain_backend);
    tcase_add_test(tc, unknown_and_methods);
    tcase_add_test(tc, prometheus_route);
    tcase_add_test(tc, dashboard);
    tcase_add_test(tc, empty_backend);
    tcase_add_test(tc, over_http);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("prom+helpers");
    tcase_add_test(tp, prom_writer);
    tcase_add_test(tp, helpers);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    int failed = tl_run_suite(api_suite());
    return failed ? 1 : 0;
}

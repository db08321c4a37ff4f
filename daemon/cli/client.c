/*
 * trainctl's daemon commands: submit, status, watch, cancel, logs, fork, compare.
 *
 * HTTP goes through libcurl; answers are parsed with cJSON.  Where to find
 * the daemon, in order: --url, $TRAIND_URL, the address a port-0 daemon wrote
 * to <spool>/traind.addr, the daemon config's `listen`, http://127.0.0.1:8080.
 * The bearer token for writes: --token-file, $TRAIND_TOKEN_FILE, the daemon
 * config's api_token_file, <spool>/api.token (one named by the first two
 * must be readable: exit 2 otherwise).
 *
 * Ids go into URLs percent-escaped (one path segment, never resolved as a
 * path); answers over CLIENT_MAX_ANSWER are abandoned (exit 3); submit sends
 * an Idempotency-Key and retries with it (post_with_retries).
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "traind/util.h"
#include "traind/yamltree.h"

#define DEFAULT_DAEMON_CONFIG "/etc/traind/traind.yaml"

typedef struct client {
    char *base_url;          /* "http://127.0.0.1:8080", no trailing slash */
    char *unix_socket;       /* when listening on unix:PATH */
    char *token;
    char *token_missing;     /* the --token-file / $TRAIND_TOKEN_FILE that could not be read */
    bool json;
} client;

typedef struct response {
    long status;
    char *body;
    size_t len, cap;         /* cap: body's allocation (grown by doubling) */
    bool too_big;            /* the answer passed CLIENT_MAX_ANSWER: dropped */
    bool transport_failed;   /* no HTTP answer at all (refused, reset, timed out) */
    char *next;              /* a paged answer's Link: <PATH>; rel="next" (malloc'd), else NULL */
} response;

/* The largest answer read (the daemon's are a few MiB at most: paged
 * lists, capped metrics, a 1 MiB log tail); anything longer is not traind. */
#define CLIENT_MAX_ANSWER ((size_t)16 << 20)

/* submit: tries when no answer came or the daemon said "not now" (the
 * Idempotency-Key makes a retry safe), waiting 0.25 s, 0.5 s, ... between. */
#define SUBMIT_TRIES 6

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    response *r = ctx;
    size_t add = size * n;
    if (r->len + add > CLIENT_MAX_ANSWER) {
        r->too_big = true;
        return 0;   /* curl stops with CURLE_WRITE_ERROR */
    }
    if (r->len + add + 1 > r->cap) {
        /* doubling: a realloc per chunk copied the whole answer each time
         * (quadratic: seconds for a 16 MiB one) */
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + add + 1)
            cap *= 2;
        r->body = xrealloc(r->body, cap);
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

/* The one header read: a page's Link: <PATH>; rel="next" (GET /jobs). */
static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    response *r = ctx;
    size_t len = size * n;
    if (len > 5 && !strncasecmp(data, "Link:", 5)) {
        const char *lt = memchr(data, '<', len), *gt = lt ? memchr(lt, '>', len - (size_t)(lt - data)) : NULL;
        if (gt && memmem(gt, len - (size_t)(gt - data), "rel=\"next\"", 10)) {
            free(r->next);
            r->next = xstrndup(lt + 1, (size_t)(gt - lt - 1));
        }
    }
    return len;
}

/* One request.  extra_header: one more "Name: value" line, or NULL.
 * quiet: do not print why it failed (the caller retries).  Returns 0, or
 * EXIT_UNREACHABLE (after printing why, unless quiet). */
static int http_ex(const client *c, const char *method, const char *path, const char *body, size_t body_len,
                   const char *extra_header, bool quiet, response *out)
{
    memset(out, 0, sizeof *out);
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "trainctl: cannot initialise libcurl\n");
        return EXIT_UNREACHABLE;
    }
    char *url = xasprintf("%s%s", c->base_url, path);
    struct curl_slist *hdrs = NULL;
    char *auth = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    /* the path as built (ids escaped): never "resolve" dot segments in it */
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c->unix_socket)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_socket);
    if (c->token) {
        auth = xasprintf("Authorization: Bearer %s", c->token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (extra_header)
        hdrs = curl_slist_append(hdrs, extra_header);
    if (!strcmp(method, "POST")) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/yaml");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (out->too_big) {
        fprintf(stderr, "trainctl: the answer from %s is larger than %zu MiB; giving up\n", c->base_url,
                CLIENT_MAX_ANSWER >> 20);
        ret = EXIT_UNREACHABLE;
    } else if (rc != CURLE_OK) {
        if (!quiet)
            fprintf(stderr, "trainctl: cannot reach traind at %s%s%s: %s\n", c->base_url,
                    c->unix_socket ? " via " : "", c->unix_socket ? c->unix_socket : "",
                    curl_easy_strerror(rc));
        out->transport_failed = true;
        ret = EXIT_UNREACHABLE;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    }
    if (ret) {
        free(out->body);
        out->body = NULL;
        out->len = out->cap = 0;
        free(out->next);
        out->next = NULL;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(auth);
    free(url);
    return ret;
}

static int http(const client *c, const char *method, const char *path, const char *body, size_t body_len,
                response *out)
{
    return http_ex(c, method, path, body, body_len, NULL, false, out);
}

/* "/jobs/ID" + tail with ID percent-escaped: an id is one path segment,
 * whatever it holds ("a/../b" stays a name, never a path). */
static char *job_path(const char *id, const char *tail)
{
    char *e = curl_easy_escape(NULL, id, 0);
    char *p = xasprintf("/jobs/%s%s", e ? e : "", tail);
    curl_free(e);
    return p;
}

static char *trim_dup(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return xstrndup(s, n);
}

static char *read_small(const char *path)
{
    char *buf;
    size_t len;
    if (read_file(path, 4096, &buf, &len) != 0)   /* never waits on a FIFO */
        return NULL;
    char *t = trim_dup(buf);
    free(buf);
    return t;
}

/* The daemon config's scalar value for key, or NULL. */
static char *daemon_config_value(const char *key)
{
    char *buf;
    size_t len;
    if (read_file(DEFAULT_DAEMON_CONFIG, 1 << 20, &buf, &len) != 0)
        return NULL;
    diag_list_t errs = DIAG_LIST_INIT;
    ynode *root = ytree_parse(buf, len, &errs);
    char *v = NULL;
    const ynode *n = root && root->kind == YNODE_MAP ? ymap_get(root, key) : NULL;
    if (n && n->kind == YNODE_SCALAR)
        v = xstrdup(n->value);
    ytree_free(root);
    diag_free(&errs);
    free(buf);
    return v;
}

static void set_listen(client *c, const char *listen)
{
    if (!strncmp(listen, "unix:", 5)) {
        c->unix_socket = xstrdup(listen + 5);
        c->base_url = xstrdup("http://localhost");
    } else if (!strncmp(listen, "http://", 7) || !strncmp(listen, "https://", 8)) {
        c->base_url = xstrdup(listen);
    } else {
        c->base_url = xasprintf("http://%s", listen);
    }
    size_t n = strlen(c->base_url);
    while (n > 0 && c->base_url[n - 1] == '/')
        c->base_url[--n] = '\0';
}

static void locate_daemon(client *c, const char *url, const char *spool, const char *token_file)
{
    char *conf_spool = spool ? NULL : daemon_config_value("spool");
    const char *sp = spool ? spool : conf_spool ? conf_spool : "var/spool";
    char *addr_file = xasprintf("%s/traind.addr", sp);
    char *addr = NULL;
    if (!url)
        url = getenv("TRAIND_URL");
    if (!url && (addr = read_small(addr_file)))
        url = addr;
    char *conf_listen = url ? NULL : daemon_config_value("listen");
    set_listen(c, url ? url : conf_listen ? conf_listen : "127.0.0.1:8080");

    if (!token_file)
        token_file = getenv("TRAIND_TOKEN_FILE");
    char *conf_token = token_file ? NULL : daemon_config_value("api_token_file");
    char *spool_token = xasprintf("%s/api.token", sp);
    c->token = read_small(token_file ? token_file : conf_token ? conf_token : spool_token);
    /* a token file named by the user must be there: a write would only be
     * refused later with a puzzling 401 */
    c->token_missing = token_file && !c->token ? xstrdup(token_file) : NULL;
    free(conf_spool);
    free(addr_file);
    free(addr);
    free(conf_listen);
    free(conf_token);
    free(spool_token);
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Prints a non-2xx answer's error (and errors list) and returns the exit code. */
static int report_error(const char *what, const response *r)
{
    cJSON *j = r->body ? cli_json_parse(r->body) : NULL;
    const char *msg = j ? json_str(j, "error") : NULL;
    fprintf(stderr, "trainctl: %s: HTTP %ld: ", what, r->status);
    if (msg)
        fputs(msg, stderr);
    else if (r->body)   /* not JSON: the daemon's bytes, escaped */
        cli_write_text(stderr, r->body, strlen(r->body));
    fputc('\n', stderr);
    const cJSON *errs = j ? cJSON_GetObjectItemCaseSensitive(j, "errors") : NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, errs) {
        double line = json_num(e, "line"), col = json_num(e, "column");
        const char *path = json_str(e, "path"), *m = json_str(e, "message");
        if (line > 0)
            fprintf(stderr, "  %s:%.0f:%.0f: %s: %s\n", what, line, col, path ? path : "", m ? m : "");
        else
            fprintf(stderr, "  %s: %s: %s\n", what, path ? path : "", m ? m : "");
    }
    cJSON_Delete(j);
    return EXIT_FAIL;
}

/* "Idempotency-Key: <32 random hex digits>". */
static void idempotency_key(char *out, size_t len)
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof raw) {   /* no entropy source: time and pid still make it unique enough */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(out, len, "Idempotency-Key: %lld-%ld-%d", (long long)ts.tv_sec, ts.tv_nsec, (int)getpid());
        return;
    }
    int n = snprintf(out, len, "Idempotency-Key: ");
    for (size_t i = 0; i < sizeof raw && (size_t)n + 2 < len; i++)
        n += snprintf(out + n, len - (size_t)n, "%02x", raw[i]);
}

/* Worth another try with the same key: no answer, "busy with this key",
 * or the daemon restarting / overloaded. */
static bool retryable(int ret, const response *r)
{
    if (ret)
        return r->transport_failed;
    return r->status == 409 || r->status == 502 || r->status == 503 || r->status == 504;
}

/* POST path with the Idempotency-Key, retried (with the same key) while
 * retryable; prints why when it gives up. */
static int post_with_retries(const client *c, const char *path, const char *body, size_t len, const char *key,
                             response *r)
{
    useconds_t wait = 250 * 1000;
    for (int attempt = 1;; attempt++) {
        bool last = attempt == SUBMIT_TRIES;
        int ret = http_ex(c, "POST", path, body, len, key, !last, r);
        if (!retryable(ret, r) || last)
            return ret;
        free(r->body);
        r->body = NULL;
        usleep(wait);
        wait *= 2;
    }
}

static int do_submit(client *c, const char *config)
{
    char *buf;
    size_t len;
    int rc = read_file(config, 1 << 20, &buf, &len);
    if (rc != 0) {
        fprintf(stderr, "trainctl submit: cannot read %s: %s\n", config, file_error_text(rc));
        return EXIT_FAIL;
    }
    /* The file's stem names a config that has no `name`, as in incoming/. */
    const char *base = strrchr(config, '/') ? strrchr(config, '/') + 1 : config;
    size_t stem_len = strlen(base);
    if (stem_len > 5 && !strcmp(base + stem_len - 5, ".yaml"))
        stem_len -= 5;
    else if (stem_len > 4 && !strcmp(base + stem_len - 4, ".yml"))
        stem_len -= 4;
    char *stem = curl_easy_escape(NULL, base, (int)stem_len);
    /* an experiment (a sweep: section) goes to /experiments, one job per trial */
    bool experiment = cli_is_experiment(config);
    char *path = experiment ? xstrdup("/experiments") : xasprintf("/jobs?name=%s", stem ? stem : "");
    curl_free(stem);
    char key[80];
    idempotency_key(key, sizeof key);
    response r;
    int ret = post_with_retries(c, path, buf, len, key, &r);
    free(path);
    free(buf);
    if (ret)
        return ret;
    if (r.status == 201) {
        cJSON *j = cli_json_parse(r.body);
        const char *id = j ? json_str(j, "id") : NULL;
        printf("%s\n", id ? id : r.body);
        cJSON_Delete(j);
    } else {
        ret = report_error(config, &r);
    }
    free(r.body);
    return ret;
}

static void print_job_line(const cJSON *job)
{
    const char *id = json_str(job, "id"), *state = json_str(job, "state");
    double total = json_num(job, "total_steps");   /* null for a rejected job */
    printf("%-32s %-10s %8.0f/", id ? id : "?", state ? state : "?", json_num(job, "step"));
    if (isnan(total))
        printf("%-8s", "-");
    else
        printf("%-8.0f", total);
    double lr = json_num(job, "lr"), loss = json_num(job, "loss");
    if (!isnan(lr))
        printf("  lr %.4e", lr);
    if (!isnan(loss))
        printf("  loss %.6g", loss);
    putchar('\n');
}

/* "2026-11-24 13:45:00 UTC" from the daemon's "2026-11-24T13:45:00Z"; NULL when absent. */
static const char *job_time(const cJSON *job, const char *key, char *buf, size_t len)
{
    const char *t = json_str(job, key);
    if (!t || strlen(t) < 19)
        return NULL;
    snprintf(buf, len, "%.10s %.8s UTC", t, t + 11);
    return buf;
}

/* trainctl status ID: the job object as a person reads it — what it is
 * doing, how far, how well, when, and why it ended if it did.  Fields the
 * job does not have (null: a queued job's lr, a rejected job's total) are
 * left out rather than printed as nan. */
static void print_job_summary(const cJSON *j)
{
    const char *id = json_str(j, "id"), *name = json_str(j, "name"), *state = json_str(j, "state");
    printf("%s", id ? id : "?");
    if (name && id && strcmp(name, id) != 0)
        printf(" (%s)", name);
    printf(": %s", state ? state : "?");
    double qp = json_num(j, "queue_position");
    if (!isnan(qp))
        printf(", position %.0f in the queue", qp);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "held")))
        printf(" (held at a rung)");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "cancel_requested")))
        printf(" (cancelling)");
    putchar('\n');
    double step = json_num(j, "step"), total = json_num(j, "total_steps");
    if (!isnan(total))
        printf("  %-12s %.0f/%.0f (%.0f%%)\n", "step", step, total, total > 0 ? 100 * step / total : 0.0);
    double v;
    if (!isnan(v = json_num(j, "lr")))
        printf("  %-12s %.4e\n", "lr", v);
    if (!isnan(v = json_num(j, "loss"))) {
        printf("  %-12s %.6g", "loss", v);
        if (!isnan(v = json_num(j, "loss_avg")))
            printf(" (mean since the last point %.6g)", v);
        putchar('\n');
    }
    if (!isnan(v = json_num(j, "eval_loss")))
        printf("  %-12s %.6g\n", "eval loss", v);
    if (!isnan(v = json_num(j, "grad_norm")))
        printf("  %-12s %.4g\n", "grad norm", v);
    if (!isnan(v = json_num(j, "steps_per_s"))) {
        char eta[32] = "?";
        cli_format_duration(json_num(j, "eta_s"), eta, sizeof eta);
        printf("  %-12s %.0f steps/s", "speed", v);
        double tps = json_num(j, "tokens_per_s");
        if (!isnan(tps))
            printf(", %.0f tokens/s", tps);
        printf(", ETA %s\n", eta);
    }
    char b1[40], b2[40];
    const char *t;
    if ((t = job_time(j, "submitted_at", b1, sizeof b1)))
        printf("  %-12s %s\n", "submitted", t);
    if ((t = job_time(j, "started_at", b1, sizeof b1)))
        printf("  %-12s %s\n", "started", t);
    if ((t = job_time(j, "finished_at", b2, sizeof b2))) {
        printf("  %-12s %s", "finished", t);
        double a = cli_parse_utc(json_str(j, "started_at")), b = cli_parse_utc(json_str(j, "finished_at"));
        if (a > 0 && b >= a) {
            char wall[32];
            cli_format_duration(b - a, wall, sizeof wall);
            printf(" (%s after its start)", wall);
        }
        putchar('\n');
    }
    if (!isnan(v = json_num(j, "checkpoint_step")))
        printf("  %-12s step %.0f\n", "checkpoint", v);
    double restarts = json_num(j, "restarts"), ranks = json_num(j, "ranks");
    if (restarts > 0)
        printf("  %-12s %.0f\n", "restarts", restarts);
    if (ranks > 1)
        printf("  %-12s %.0f\n", "ranks", ranks);
    if (!isnan(v = json_num(j, "pid")))
        printf("  %-12s %.0f\n", "pid", v);
    if ((t = json_str(j, "parent")))
        printf("  %-12s %s at step %.0f\n", "forked from", t, json_num(j, "forked_at"));
    if ((t = json_str(j, "experiment"))) {
        char *params = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "params"));
        printf("  %-12s %s %s\n", "experiment", t, params ? params : "");
        free(params);
    }
    if ((t = json_str(j, "stop_reason")))
        printf("  %-12s %s\n", "stopped", t);
    if ((t = json_str(j, "slurm_job_id")))
        printf("  %-12s %s%s%s\n", "slurm job", t, json_str(j, "slurm_reason") ? ", waiting: " : "",
               json_str(j, "slurm_reason") ? json_str(j, "slurm_reason") : "");
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(j, "errors"), *e;
    if (cJSON_GetArraySize(errs) > 0) {
        printf("  errors:\n");
        cJSON_ArrayForEach(e, errs) {
            if (cJSON_IsString(e)) {
                printf("    %s\n", e->valuestring);
                continue;
            }
            const char *path = json_str(e, "path"), *m = json_str(e, "message");
            double line = json_num(e, "line"), col = json_num(e, "column");
            printf("    %s", path && *path ? path : "");
            if (line > 0)
                printf(":%.0f:%.0f", line, isnan(col) ? 0.0 : col);
            printf("%s%s\n", path && *path ? ": " : "", m ? m : "");
        }
    }
}

/* GET path as JSON (200 only); an exit code otherwise, reported. */
static int get_json(client *c, const char *path, const char *what, cJSON **out, char **next)
{
    response r;
    *out = NULL;
    int ret = http(c, "GET", path, NULL, 0, &r);
    if (ret)
        return ret;
    if (r.status != 200) {
        ret = report_error(what, &r);
    } else if (!(*out = cli_json_parse(r.body))) {
        fprintf(stderr, "trainctl: the daemon's answer is not JSON\n");
        ret = EXIT_FAIL;
    }
    if (next && !ret)
        *next = r.next;
    else
        free(r.next);
    free(r.body);
    return ret;
}

/* trainctl status --all: every job, newest first, walking GET /jobs page by
 * page as its Link: rel="next" header says (a page holds at most 1000). */
static int do_status_all(client *c)
{
    char *path = xstrdup("/jobs?limit=1000");
    cJSON *all = c->json ? cJSON_CreateArray() : NULL;
    long n = 0;
    int ret = EXIT_OK;
    if (!c->json)
        printf("%-32s %-10s %8s/%-8s\n", "job", "state", "step", "total");
    while (path) {
        cJSON *page;
        char *next = NULL;
        ret = get_json(c, path, "status --all", &page, &next);
        free(path);
        path = next;
        if (ret)
            break;
        cJSON *job;
        while ((job = cJSON_DetachItemFromArray(page, 0)) != NULL) {
            n++;
            if (all) {
                cJSON_AddItemToArray(all, job);
            } else {
                print_job_line(job);
                cJSON_Delete(job);
            }
        }
        cJSON_Delete(page);
    }
    free(path);
    if (ret == EXIT_OK) {
        if (all) {
            char *s = cJSON_Print(all);
            puts(s ? s : "[]");
            free(s);
        } else {
            printf("(%ld job%s)\n", n, n == 1 ? "" : "s");
        }
    }
    cJSON_Delete(all);
    return ret;
}

static int do_status(client *c, const char *id, bool all)
{
    if (all)
        return do_status_all(c);
    char *path = id ? job_path(id, "") : xstrdup("/status");
    cJSON *j;
    int ret = get_json(c, path, id ? id : "status", &j, NULL);
    free(path);
    if (ret)
        return ret;
    if (c->json) {
        char *s = cJSON_Print(j);
        puts(s);
        free(s);
    } else if (id) {
        print_job_summary(j);
    } else {
        printf("traind %s, up %.0fs\n", json_str(j, "version") ? json_str(j, "version") : "?",
               json_num(j, "uptime_s"));
        const cJSON *job;
        cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(j, "jobs"))
            print_job_line(job);
        double omitted = json_num(j, "jobs_omitted");   /* /status lists the active and newest jobs only */
        if (omitted > 0)
            printf("(%.0f more job%s not listed: trainctl status --all lists every one)\n", omitted,
                   omitted == 1 ? "" : "s");
    }
    cJSON_Delete(j);
    return EXIT_OK;
}

static bool state_ended(const char *s)
{
    return s && (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled") ||
                 !strcmp(s, "rejected") || !strcmp(s, "stopped"));
}

/* One line of watch: the job's progress bar.  Returns true when it has ended
 * (its errors printed, *ret its exit code). */
static bool watch_line(const char *id, const cJSON *j, bool tty, int *ret)
{
    const char *state = json_str(j, "state");
    double step = json_num(j, "step"), total = json_num(j, "total_steps");
    double frac = total > 0 ? step / total : 0;
    char bar[32];
    for (int i = 0; i < 24; i++)
        bar[i] = i < (int)(frac * 24) ? '#' : '.';
    bar[24] = '\0';
    /* only what the job has: a queued job has no lr or loss yet, an ended
     * one no rate or ETA (null in the job object, never printed as nan) */
    printf("%s%s %-9s [%s] %.0f/", tty ? "\r\033[K" : "", id, state ? state : "?", bar, step);
    if (isnan(total))
        printf("-");
    else
        printf("%.0f", total);
    double lr = json_num(j, "lr"), loss = json_num(j, "loss"), rate = json_num(j, "steps_per_s");
    if (!isnan(lr))
        printf("  lr %.3e", lr);
    if (!isnan(loss))
        printf("  loss %.5g", loss);
    if (!state_ended(state) && !isnan(rate)) {
        char eta[32] = "?";
        cli_format_duration(json_num(j, "eta_s"), eta, sizeof eta);
        printf("  %.0f steps/s  ETA %s", rate, eta);
    }
    fputs(tty ? "" : "\n", stdout);
    fflush(stdout);
    if (!state_ended(state))
        return false;
    if (tty)
        putchar('\n');
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "errors")) {
        const char *m = json_str(e, "message"), *p = json_str(e, "path");
        fprintf(stderr, "  %s%s%s\n", p && *p ? p : "", p && *p ? ": " : "", m ? m : "");
    }
    *ret = !strcmp(state, "succeeded") ? EXIT_OK : EXIT_FAIL;
    return true;
}

/* GET /events?job=ID as it arrives: each `job` event replaces the job
 * shown, each `point` moves its step, lr and loss. */
typedef struct watch_stream {
    const char *id;
    bool tty;
    cJSON *job;               /* taken over from the caller */
    char *buf;
    size_t len;
    bool ended;
    int ret;
    char last_id[64];         /* for a reconnect */
    bool got_any;
    double prev_step, prev_time;   /* the last point: steps/s between points (-1 = none) */
} watch_stream;

static void watch_set(cJSON *o, const char *k, const cJSON *v)
{
    if (v)
        cJSON_ReplaceItemInObjectCaseSensitive(o, k, cJSON_Duplicate(v, 1));
}

static void watch_event(watch_stream *w, const char *event, const char *data)
{
    cJSON *d = cli_json_parse(data);
    if (!d)
        return;
    if (!strcmp(event, "job")) {
        cJSON_Delete(w->job);
        w->job = d;
        d = NULL;
    } else if (!strcmp(event, "point")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(d, "point");
        watch_set(w->job, "step", cJSON_GetObjectItemCaseSensitive(p, "step"));
        watch_set(w->job, "lr", cJSON_GetObjectItemCaseSensitive(p, "lr"));
        watch_set(w->job, "loss", cJSON_GetObjectItemCaseSensitive(p, "loss"));
        /* the rate between this point and the last (their worker's clock) */
        double step = json_num(p, "step"), t = json_num(p, "time");
        if (w->prev_step >= 0 && step > w->prev_step && t > w->prev_time) {
            double rate = (step - w->prev_step) / (t - w->prev_time);
            cJSON_ReplaceItemInObjectCaseSensitive(w->job, "steps_per_s", cJSON_CreateNumber(rate));
            double left = json_num(w->job, "total_steps") - step;
            cJSON_ReplaceItemInObjectCaseSensitive(w->job, "eta_s", cJSON_CreateNumber(left > 0 ? left / rate : 0));
        }
        w->prev_step = step;
        w->prev_time = t;
    }
    cJSON_Delete(d);
    if (strcmp(event, "hello") != 0)
        w->ended = watch_line(w->id, w->job, w->tty, &w->ret);
}

static size_t on_events(char *data, size_t size, size_t n, void *ctx)
{
    watch_stream *w = ctx;
    size_t add = size * n;
    if (w->len + add > CLIENT_MAX_ANSWER)
        return 0;   /* one event this large is not traind's */
    w->buf = xrealloc(w->buf, w->len + add + 1);
    memcpy(w->buf + w->len, data, add);
    w->len += add;
    w->buf[w->len] = '\0';
    char *sep;
    while (!w->ended && (sep = strstr(w->buf, "\n\n")) != NULL) {
        *sep = '\0';
        const char *event = "message", *payload = NULL;
        for (char *line = w->buf, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (!strncmp(line, "event: ", 7))
                event = line + 7;
            else if (!strncmp(line, "data: ", 6))
                payload = line + 6;
            else if (!strncmp(line, "id: ", 4))
                snprintf(w->last_id, sizeof w->last_id, "%s", line + 4);
        }
        w->got_any = true;
        if (payload)
            watch_event(w, event, payload);
        size_t used = (size_t)(sep + 2 - w->buf);
        memmove(w->buf, sep + 2, w->len - used + 1);
        w->len -= used;
    }
    return w->ended ? 0 : add;   /* 0 ends the transfer once the job has ended */
}

/* Streams the job's events until it ends: EXIT_OK/EXIT_FAIL as the job
 * ends, -1 when the daemon has no stream for us (an older traind, the
 * stream cap): the caller polls instead. */
static int watch_events(client *c, const char *id, cJSON *job, bool tty)
{
    watch_stream w = {.id = id, .tty = tty, .job = job, .prev_step = -1};
    char *esc = cli_escape(id);
    char *url = xasprintf("%s/events?job=%s", c->base_url, esc);
    free(esc);
    int result = -1;
    for (int attempt = 0; attempt < 5 && !w.ended; attempt++) {
        CURL *h = curl_easy_init();
        if (!h)
            break;
        struct curl_slist *hdrs = NULL;
        char *last = w.last_id[0] ? xasprintf("Last-Event-ID: %s", w.last_id) : NULL;
        if (last)
            hdrs = curl_slist_append(hdrs, last);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_events);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
        /* no overall timeout: the stream lasts as long as the job; the
         * daemon pings every 15 s, so 40 s of silence means it is gone */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 40L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        if (c->unix_socket)
            curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_socket);
        curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(h);
        free(last);
        if (status != 200 && !w.got_any)
            break;          /* no stream here: poll */
        w.len = 0;          /* a frame cut by the disconnect is sent again after Last-Event-ID */
    }
    if (w.ended)
        result = w.ret;
    cJSON_Delete(w.job);
    free(w.buf);
    free(url);
    return result;
}

static int do_watch(client *c, const char *id)
{
    char *path = job_path(id, "");
    bool tty = isatty(STDOUT_FILENO);
    int ret = EXIT_OK;
    bool streamed = false;
    for (;;) {
        response r;
        if ((ret = http(c, "GET", path, NULL, 0, &r)) != 0)
            break;
        if (r.status != 200) {
            ret = report_error(id, &r);
            free(r.body);
            break;
        }
        cJSON *j = cli_json_parse(r.body);
        free(r.body);
        if (!j) {
            fprintf(stderr, "trainctl: the daemon's answer is not JSON\n");
            ret = EXIT_FAIL;
            break;
        }
        if (watch_line(id, j, tty, &ret)) {
            cJSON_Delete(j);
            break;
        }
        if (!streamed) {
            /* pushed by GET /events from here on (it takes j); polled if the daemon has none */
            streamed = true;
            int sr = watch_events(c, id, j, tty);
            if (sr >= 0) {
                ret = sr;
                break;
            }
            continue;   /* no stream: the state now, then every 0.5 s */
        }
        cJSON_Delete(j);
        usleep(500 * 1000);
    }
    free(path);
    return ret;
}

static int do_cancel(client *c, const char *id)
{
    char *path = job_path(id, "/cancel");
    response r;
    int ret = http(c, "POST", path, NULL, 0, &r);
    free(path);
    if (ret)
        return ret;
    if (r.status == 202)
        printf("%s: cancelling (it checkpoints and ends cancelled)\n", id);
    else
        ret = report_error(id, &r);
    free(r.body);
    return ret;
}

/* "9 trials: 1 succeeded · 8 stopped": every trial accounted for, by its
 * job's state or `waiting` (no job yet): the experiment's `counts`. */
static void print_trial_counts(const cJSON *exp)
{
    printf("%.0f trials:", json_num(exp, "n_trials"));
    const char *sep = " ";
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(exp, "counts")) {
        if (!cJSON_IsNumber(c) || c->valuedouble <= 0)
            continue;
        printf("%s%.0f %s", sep, c->valuedouble, c->string);
        sep = " · ";
    }
    putchar('\n');
}

/* trainctl experiment ID: its state, its trials best first and every
 * early-stopping decision with its reason (--json: the object as is). */
static int do_experiment(client *c, const char *id)
{
    char *e = curl_easy_escape(NULL, id, 0);
    char *path = xasprintf("/experiments/%s", e ? e : "");
    curl_free(e);
    response r;
    int ret = http(c, "GET", path, NULL, 0, &r);
    free(path);
    if (ret)
        return ret;
    cJSON *j = r.status == 200 ? cli_json_parse(r.body) : NULL;
    if (!j) {
        ret = r.status == 200 ? (fprintf(stderr, "trainctl: the daemon's answer is not JSON\n"), EXIT_FAIL)
                              : report_error(id, &r);
        free(r.body);
        return ret;
    }
    if (c->json) {
        char *t = cJSON_Print(j);
        puts(t);
        free(t);
    } else {
        printf("experiment %s (%s): %s, %s sweep, metric %s\n", id, json_str(j, "name") ? json_str(j, "name") : "?",
               json_str(j, "state") ? json_str(j, "state") : "?", json_str(j, "method") ? json_str(j, "method") : "?",
               json_str(j, "metric") ? json_str(j, "metric") : "?");
        print_trial_counts(j);
        printf("%-6s %-32s %-10s %8s  %-12s %s\n", "trial", "job", "state", "step", "metric", "params");
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "trials")) {
            char *params = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(t, "params"));
            printf("%-6.0f %-32s %-10s %8.0f  %-12.6g %s\n", json_num(t, "trial"),
                   json_str(t, "job") ? json_str(t, "job") : "-", json_str(t, "state") ? json_str(t, "state") : "?",
                   json_num(t, "step"), json_num(t, "metric"), params ? params : "{}");
            free(params);
        }
        const cJSON *ds = cJSON_GetObjectItemCaseSensitive(j, "decisions");
        if (cJSON_GetArraySize(ds) > 0) {
            printf("early-stopping decisions:\n");
            cJSON_ArrayForEach(t, ds)
                printf("  trial %.0f (%s): %s — %s\n", json_num(t, "trial"),
                       json_str(t, "job") ? json_str(t, "job") : "-", json_str(t, "action") ? json_str(t, "action") : "?",
                       json_str(t, "reason") ? json_str(t, "reason") : "");
        }
    }
    cJSON_Delete(j);
    free(r.body);
    return ret;
}

/* trainctl fork ID --at STEP [--set key=value ...] [--name NAME]: prints the new job's id. */
static int do_fork(client *c, const char *id, long at, char **sets, size_t n_sets, const char *name)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "at_step", (double)at);
    cJSON *a = cJSON_AddArrayToObject(o, "set");
    for (size_t i = 0; i < n_sets; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(sets[i]));
    if (name)
        cJSON_AddStringToObject(o, "name", name);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *path = job_path(id, "/fork");
    char key[80];
    idempotency_key(key, sizeof key);
    response r;
    int ret = http_ex(c, "POST", path, body, strlen(body), key, false, &r);
    free(path);
    free(body);
    if (ret)
        return ret;
    cJSON *j = r.body ? cli_json_parse(r.body) : NULL;
    if (r.status == 201 && json_str(j, "id")) {
        if (c->json)
            printf("%s\n", r.body);
        else
            printf("%s\n", json_str(j, "id"));
    } else {
        ret = report_error(id, &r);
        const cJSON *steps = j ? cJSON_GetObjectItemCaseSensitive(j, "steps") : NULL;
        if (cJSON_IsArray(steps)) {
            fprintf(stderr, "  kept checkpoints of %s at steps:", id);
            const cJSON *e;
            cJSON_ArrayForEach(e, steps)
                fprintf(stderr, " %.0f", e->valuedouble);
            fprintf(stderr, "%s\n", cJSON_GetArraySize(steps) ? "" : " (none)");
        }
    }
    cJSON_Delete(j);
    free(r.body);
    return ret;
}

char *cli_job_path(const char *id, const char *tail)
{
    return job_path(id, tail);
}

char *cli_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = xstrdup(e ? e : "");
    curl_free(e);
    return out;
}

static int compare_get(void *ctx, const char *path, char **body, long *status)
{
    response r;
    int ret = http(ctx, "GET", path, NULL, 0, &r);
    if (ret)
        return ret;
    *body = r.body;
    *status = r.status;
    return 0;
}

static int do_logs(client *c, const char *id)
{
    char *path = job_path(id, "/log");
    response r;
    int ret = http(c, "GET", path, NULL, 0, &r);
    free(path);
    if (ret)
        return ret;
    if (r.status == 200)
        cli_write_text(stdout, r.body ? r.body : "", r.len);
    else
        ret = report_error(id, &r);
    free(r.body);
    return ret;
}

int cmd_client(const char *verb, int argc, char **argv)
{
    const char *url = NULL, *token_file = NULL, *spool = NULL, *arg = NULL;
    client c = {0};
    long fork_at = -1;
    char *operands[64];
    int n_operands = 0;
    char *sets[64];
    size_t n_sets = 0;
    const char *fork_name = NULL;
    bool opts_done = false;   /* after "--" every argument is an operand ("-rf" is an id) */
    bool status_all = false, compare_log = false;
    for (int i = 0; i < argc; i++) {
        if (!opts_done && !strcmp(argv[i], "--")) {
            opts_done = true;
            continue;
        }
        if (!strcmp(verb, "compare") && (opts_done || argv[i][0] != '-')) {
            if (n_operands < 64)
                operands[n_operands++] = argv[i];
            arg = argv[i];
            continue;
        }
        if (opts_done) {
            if (arg) {
                fprintf(stderr, "trainctl %s: unexpected argument '%s'\n", verb, argv[i]);
                return EXIT_USAGE;
            }
            arg = argv[i];
        } else if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--token-file") && i + 1 < argc)
            token_file = argv[++i];
        else if (!strcmp(argv[i], "--spool") && i + 1 < argc)
            spool = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            c.json = true;
        else if (!strcmp(verb, "status") && !strcmp(argv[i], "--all"))
            status_all = true;
        else if (!strcmp(verb, "compare") && !strcmp(argv[i], "--log"))
            compare_log = true;
        else if (!strcmp(verb, "fork") && !strcmp(argv[i], "--at") && i + 1 < argc) {
            char *end;
            errno = 0;
            fork_at = strtol(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || fork_at < 0) {
                fprintf(stderr, "trainctl fork: --at takes a step number >= 0, not '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
        } else if (!strcmp(verb, "fork") && !strcmp(argv[i], "--set") && i + 1 < argc) {
            if (!strchr(argv[i + 1], '=') || n_sets >= 64) {
                fprintf(stderr, "trainctl fork: --set takes key.path=value (at most 64), not '%s'\n", argv[i + 1]);
                return EXIT_USAGE;
            }
            sets[n_sets++] = argv[++i];
        } else if (!strcmp(verb, "fork") && !strcmp(argv[i], "--name") && i + 1 < argc)
            fork_name = argv[++i];
        else if (argv[i][0] == '-' || arg) {
            fprintf(stderr, "trainctl %s: unexpected argument '%s'\n", verb, argv[i]);
            return EXIT_USAGE;
        } else
            arg = argv[i];
    }
    bool needs_arg = strcmp(verb, "status") != 0;
    if (needs_arg && !arg) {
        fprintf(stderr, "usage: trainctl %s %s [--url URL] [--token-file FILE]\n", verb,
                !strcmp(verb, "submit") ? "CONFIG" : "ID");
        return EXIT_USAGE;
    }
    if (status_all && arg) {
        fprintf(stderr, "usage: trainctl status [ID | --all] [--json]\n");
        return EXIT_USAGE;
    }
    if (!strcmp(verb, "fork") && fork_at < 0) {
        fprintf(stderr, "usage: trainctl fork ID --at STEP [--set key=value ...] [--name NAME]\n");
        return EXIT_USAGE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    locate_daemon(&c, url, spool, token_file);
    int ret;
    if (c.token_missing) {
        fprintf(stderr, "trainctl %s: cannot read the token file %s\n", verb, c.token_missing);
        ret = EXIT_USAGE;
        goto out;
    }
    if (!strcmp(verb, "submit"))
        ret = do_submit(&c, arg);
    else if (!strcmp(verb, "status"))
        ret = do_status(&c, arg, status_all);
    else if (!strcmp(verb, "watch"))
        ret = do_watch(&c, arg);
    else if (!strcmp(verb, "cancel"))
        ret = do_cancel(&c, arg);
    else if (!strcmp(verb, "fork"))
        ret = do_fork(&c, arg, fork_at, sets, n_sets, fork_name);
    else if (!strcmp(verb, "experiment"))
        ret = do_experiment(&c, arg);
    else if (!strcmp(verb, "compare"))
        ret = cmd_compare(n_operands, operands, c.json, compare_log, compare_get, &c);
    else
        ret = do_logs(&c, arg);
out:
    free(c.token_missing);
    free(c.base_url);
    free(c.unix_socket);
    free(c.token);
    curl_global_cleanup();
    return ret;
}

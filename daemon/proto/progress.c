/* progress — the worker → daemon line protocol.  See traind/progress.h. */
#include "traind/progress.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "traind/util.h"

static const char *const ev_names[] = {
    [PEV_START] = "start", [PEV_NOTICE] = "notice", [PEV_LOG] = "log", [PEV_TICK] = "tick",
    [PEV_CKPT] = "ckpt", [PEV_EVAL] = "eval", [PEV_FAILED] = "failed", [PEV_DONE] = "done",
};
#define N_EV (sizeof ev_names / sizeof ev_names[0])

void progress_msg_init(progress_msg *m, progress_ev ev)
{
    memset(m, 0, sizeof *m);
    m->ev = ev;
    train_point_clear(&m->pt);
    m->total_steps = m->checkpoint_step = -1;
}

const char *progress_ev_name(progress_ev ev)
{
    return (unsigned)ev < N_EV ? ev_names[ev] : "?";
}

/* Encoded by hand rather than with cJSON_Print: cJSON prints doubles with a
 * tolerance, and the daemon must see the worker's numbers bit for bit. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void add_num(sbuf *b, const char *k, double v)
{
    if (isnan(v))
        return;   /* absent */
    if (isfinite(v))
        sb_printf(b, ",\"%s\":%.17g", k, v);
    else
        sb_printf(b, ",\"%s\":null", k);
}

static void add_long(sbuf *b, const char *k, long v)
{
    if (v >= 0)
        sb_printf(b, ",\"%s\":%ld", k, v);
}

static void add_string(sbuf *b, const char *k, const char *s)
{
    sb_printf(b, ",\"%s\":\"", k);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_put(b, e, 2);
        } else if (*p < 0x20) {
            sb_printf(b, "\\u%04x", *p);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

char *progress_encode(const progress_msg *m, size_t *len)
{
    sbuf b = {0};
    sb_printf(&b, "{\"ev\":\"%s\"", progress_ev_name(m->ev));
    add_long(&b, "step", m->pt.step);
    add_long(&b, "total_steps", m->total_steps);
    add_long(&b, "checkpoint_step", m->checkpoint_step);
    add_num(&b, "lr", m->pt.lr);
    add_num(&b, "loss", m->pt.loss);
    add_num(&b, "loss_avg", m->pt.loss_avg);
    add_num(&b, "grad_norm", m->pt.grad_norm);
    add_num(&b, "eval_loss", m->pt.eval_loss);
    add_num(&b, "elapsed_s", m->pt.time);
    add_num(&b, "steps_per_s", m->pt.steps_per_s);
    if (m->message[0])
        add_string(&b, "message", m->message);
    sb_put(&b, "}\n", 2);
    *len = b.len;
    return b.p;
}

/* A number field: absent → keep default; null → NAN (a non-finite value). */
static int get_num(const cJSON *o, const char *k, double *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v)
        return 0;
    if (cJSON_IsNull(v)) {
        *out = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(v)) {
        snprintf(err, errlen, "\"%s\" is not a number", k);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

static int get_long(const cJSON *o, const char *k, long *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9.0e15 ||
        v->valuedouble != floor(v->valuedouble)) {
        snprintf(err, errlen, "\"%s\" is not a step count", k);
        return -1;
    }
    *out = (long)v->valuedouble;
    return 0;
}

int progress_decode(const char *line, size_t len, progress_msg *m, char *err, size_t errlen)
{
    progress_msg_init(m, PEV_LOG);
    if (len > PROGRESS_MAX_LINE) {
        snprintf(err, errlen, "line longer than %d bytes", PROGRESS_MAX_LINE);
        return -1;
    }
    /* cJSON wants a NUL-terminated text to refuse trailing garbage */
    char *text = xstrndup(line, len);
    cJSON *o = cJSON_ParseWithOpts(text, NULL, 1);
    free(text);
    if (!o || !cJSON_IsObject(o)) {
        snprintf(err, errlen, "not a JSON object");
        cJSON_Delete(o);
        return -1;
    }
    int rc = -1;
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "ev");
    if (!cJSON_IsString(ev)) {
        snprintf(err, errlen, "no \"ev\" string");
        goto out;
    }
    size_t i;
    for (i = 0; i < N_EV; i++)
        if (strcmp(ev->valuestring, ev_names[i]) == 0)
            break;
    if (i == N_EV) {
        snprintf(err, errlen, "unknown event \"%.40s\"", ev->valuestring);
        goto out;
    }
    m->ev = (progress_ev)i;
    if (get_long(o, "step", &m->pt.step, err, errlen) ||
        get_long(o, "total_steps", &m->total_steps, err, errlen) ||
        get_long(o, "checkpoint_step", &m->checkpoint_step, err, errlen) ||
        get_num(o, "lr", &m->pt.lr, err, errlen) || get_num(o, "loss", &m->pt.loss, err, errlen) ||
        get_num(o, "loss_avg", &m->pt.loss_avg, err, errlen) ||
        get_num(o, "grad_norm", &m->pt.grad_norm, err, errlen) ||
        get_num(o, "eval_loss", &m->pt.eval_loss, err, errlen) ||
        get_num(o, "elapsed_s", &m->pt.time, err, errlen) ||
        get_num(o, "steps_per_s", &m->pt.steps_per_s, err, errlen))
        goto out;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message");
    if (msg && !cJSON_IsNull(msg)) {
        if (!cJSON_IsString(msg)) {
            snprintf(err, errlen, "\"message\" is not a string");
            goto out;
        }
        snprintf(m->message, sizeof m->message, "%s", msg->valuestring);
    }
    if ((m->ev == PEV_FAILED || m->ev == PEV_NOTICE) && !m->message[0])
        snprintf(m->message, sizeof m->message, "%s", m->ev == PEV_FAILED ? "training failed" : "notice");
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

void progress_reader_init(progress_reader *r)
{
    memset(r, 0, sizeof *r);
}

void progress_reader_free(progress_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static void handle_line(const char *line, size_t len, progress_msg_cb on_msg, progress_bad_cb on_bad,
                        void *ctx, progress_reader *r)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return;
    progress_msg m;
    char err[128];
    if (progress_decode(line, len, &m, err, sizeof err) == 0) {
        if (on_msg)
            on_msg(ctx, &m);
    } else {
        r->n_bad++;
        if (on_bad)
            on_bad(ctx, err);
    }
}

void progress_reader_feed(progress_reader *r, const char *data, size_t n,
                          progress_msg_cb on_msg, progress_bad_cb on_bad, void *ctx)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t chunk = nl ? (size_t)(nl - data) : n;
        if (r->discarding) {
            if (nl)
                r->discarding = false;
        } else if (r->len + chunk > PROGRESS_MAX_LINE) {
            r->len = 0;
            r->n_bad++;
            if (on_bad)
                on_bad(ctx, "line longer than 64 KiB dropped");
            r->discarding = !nl;
        } else if (nl && r->len == 0) {
            handle_line(data, chunk, on_msg, on_bad, ctx, r);   /* the common case: no copy */
        } else {
            if (r->len + chunk > r->cap) {
                r->cap = r->len + chunk + 256;
                r->buf = xrealloc(r->buf, r->cap);
            }
            memcpy(r->buf + r->len, data, chunk);
            r->len += chunk;
            if (nl) {
                handle_line(r->buf, r->len, on_msg, on_bad, ctx, r);
                r->len = 0;
            }
        }
        if (!nl)
            break;
        data = nl + 1;
        n -= chunk + 1;
    }
}

void progress_reader_finish(progress_reader *r, progress_msg_cb on_msg, progress_bad_cb on_bad, void *ctx)
{
    if (!r->discarding && r->len > 0)
        handle_line(r->buf, r->len, on_msg, on_bad, ctx, r);
    r->len = 0;
    r->discarding = false;
}

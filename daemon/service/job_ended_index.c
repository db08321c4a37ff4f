/* job_ended_index — <spool>/jobs.index of the ended jobs.  See traind/job_ended_index.h. */
#include "traind/job_ended_index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "traind/job_index.h"
#include "traind/log.h"
#include "traind/spool.h"
#include "traind/util.h"

static const char file_magic[8] = {'T', 'R', 'D', 'J', 'E', 'I', '1', '\n'};
#define REC_MAGIC 0x3149454au    /* "JEI1" little-endian */
#define REC_HEAD 12u             /* magic, length, crc */
#define N_STR 8
/* the fixed part of a payload: the stat (32), seq + 4 longs (40), 9
 * doubles (72), 3 ints (12), state, flags, string count (4) */
#define FIXED 160u
#define FLAG_EVAL 1u
#define FLAG_CONFIG 2u
#define STR_NONE 0xffffffffu

void jei_stat_of(const struct stat *st, jei_stat *out)
{
    out->ino = (uint64_t)st->st_ino;
    out->size = (int64_t)st->st_size;
    out->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    out->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

bool jei_stat_same(const jei_stat *a, const jei_stat *b)
{
    return a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* ------------------------------------------------------------ encoding */

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *v, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, v, n);
    b->len += n;
}

#define PUT(b, v)                                                                                                  \
    do {                                                                                                           \
        __typeof__(v) v_ = (v);                                                                                    \
        put(b, &v_, sizeof v_);                                                                                    \
    } while (0)

/* A string: u32 length (STR_NONE = NULL), its bytes, a NUL. */
static void put_str(buf *b, const char *s)
{
    if (!s) {
        PUT(b, (uint32_t)STR_NONE);
        return;
    }
    uint32_t n = (uint32_t)strlen(s);
    PUT(b, n);
    put(b, s, (size_t)n + 1);
}

static bool over(const char *s, size_t max)
{
    return s && strlen(s) > max;
}

static void put_stat(unsigned char *p, const jei_stat *st)
{
    memcpy(p, &st->ino, 8);
    memcpy(p + 8, &st->size, 8);
    memcpy(p + 16, &st->mtime_ns, 8);
    memcpy(p + 24, &st->ctime_ns, 8);
}

static void seal(jei_rec *r)
{
    uint32_t len = (uint32_t)(r->len - REC_HEAD), crc = crc32_update(0, r->bytes + REC_HEAD, len);
    uint32_t magic = REC_MAGIC;
    memcpy(r->bytes, &magic, 4);
    memcpy(r->bytes + 4, &len, 4);
    memcpy(r->bytes + 8, &crc, 4);
}

jei_rec *jei_encode(const jei_entry *e)
{
    if (!e->id || !e->name || strlen(e->id) > SPOOL_ID_MAX || over(e->name, JEI_NAME_MAX) ||
        over(e->idem_key, 512) /* the stored text of a scoped key (jobs_submit.c) */ || over(e->parent, SPOOL_ID_MAX) || over(e->experiment, SPOOL_ID_MAX) ||
        over(e->sched_id, 64) || over(e->params_json, JEI_JSON_MAX) || over(e->errors_json, JEI_JSON_MAX))
        return NULL;
    buf b = {0};
    unsigned char head[REC_HEAD + 32] = {0};
    put(&b, head, sizeof head);   /* the header and the stat, filled in below */
    put_stat(b.p + REC_HEAD, &e->st);
    PUT(&b, (uint64_t)e->seq);
    PUT(&b, (int64_t)e->step);
    PUT(&b, (int64_t)e->total_steps);
    PUT(&b, (int64_t)e->checkpoint_step);
    PUT(&b, (int64_t)e->forked_at);
    const double d[9] = {e->lr, e->loss, e->loss_avg, e->grad_norm, e->eval_loss, e->tokens_per_step,
                         e->submitted_at, e->started_at, e->finished_at};
    put(&b, d, sizeof d);
    PUT(&b, (int32_t)e->restarts);
    PUT(&b, (int32_t)e->crashes);
    PUT(&b, (int32_t)e->ranks);
    PUT(&b, (uint8_t)e->state);
    PUT(&b, (uint8_t)((e->has_eval ? FLAG_EVAL : 0) | (e->has_config ? FLAG_CONFIG : 0)));
    PUT(&b, (uint16_t)N_STR);
    const char *s[N_STR] = {e->id, e->name, e->idem_key, e->parent, e->experiment, e->sched_id,
                            e->params_json, e->errors_json};
    for (int i = 0; i < N_STR; i++)
        put_str(&b, s[i]);
    jei_rec *r = xmalloc(sizeof *r + b.len);
    r->len = b.len;
    memcpy(r->bytes, b.p, b.len);
    free(b.p);
    seal(r);
    return r;
}

void jei_rec_set_stat(jei_rec *r, const struct stat *st)
{
    jei_stat s;
    jei_stat_of(st, &s);
    put_stat(r->bytes + REC_HEAD, &s);
    seal(r);
}

/* ------------------------------------------------------------- decoding */

struct jei_table {
    char *data;                  /* the file */
    jei_entry *e;
    size_t n;
    job_index *by_id;            /* id → its last entry */
};

typedef struct rd {
    const unsigned char *p;
    size_t len, off;
} rd;

static bool get(rd *r, void *v, size_t n)
{
    if (r->len - r->off < n)
        return false;
    memcpy(v, r->p + r->off, n);
    r->off += n;
    return true;
}

/* A string of at most max bytes, NUL-terminated in place and without a
 * NUL inside; *s NULL for none. */
static bool get_str(rd *r, size_t max, const char **s)
{
    uint32_t n;
    if (!get(r, &n, 4))
        return false;
    if (n == STR_NONE) {
        *s = NULL;
        return true;
    }
    if (n > max || r->len - r->off < (size_t)n + 1)
        return false;
    const char *p = (const char *)r->p + r->off;
    if (p[n] != '\0' || memchr(p, '\0', n))
        return false;
    *s = p;
    r->off += (size_t)n + 1;
    return true;
}

static bool digits(const char *s)
{
    return s && *s && strspn(s, "0123456789") == strlen(s);
}

/* One payload into e; false when it is not well-formed. */
static bool decode(const unsigned char *p, size_t len, jei_entry *e)
{
    memset(e, 0, sizeof *e);
    rd r = {p, len, 0};
    uint64_t seq;
    int64_t l[4];
    double d[9];
    int32_t in[3];
    uint8_t state, flags;
    uint16_t nstr;
    if (!get(&r, &e->st.ino, 8) || !get(&r, &e->st.size, 8) || !get(&r, &e->st.mtime_ns, 8) ||
        !get(&r, &e->st.ctime_ns, 8) || !get(&r, &seq, 8) || !get(&r, l, sizeof l) || !get(&r, d, sizeof d) ||
        !get(&r, in, sizeof in) || !get(&r, &state, 1) || !get(&r, &flags, 1) || !get(&r, &nstr, 2) ||
        nstr != N_STR)
        return false;
    const char *s[N_STR];
    static const size_t max[N_STR] = {SPOOL_ID_MAX, JEI_NAME_MAX, 255, SPOOL_ID_MAX, SPOOL_ID_MAX, 64,
                                      JEI_JSON_MAX, JEI_JSON_MAX};
    for (int i = 0; i < N_STR; i++)
        if (!get_str(&r, max[i], &s[i]))
            return false;
    if (r.off != len || !s[0] || !spool_id_valid(s[0]) || !s[1] || (s[3] && !spool_id_valid(s[3])) ||
        (s[4] && !spool_id_valid(s[4])) || (s[5] && !digits(s[5])) || l[0] < 0 || seq == 0)
        return false;
    e->seq = seq;
    e->step = l[0];
    e->total_steps = l[1];
    e->checkpoint_step = l[2];
    e->forked_at = l[3];
    e->lr = d[0];
    e->loss = d[1];
    e->loss_avg = d[2];
    e->grad_norm = d[3];
    e->eval_loss = d[4];
    e->tokens_per_step = d[5];
    e->submitted_at = d[6];
    e->started_at = d[7];
    e->finished_at = d[8];
    e->restarts = in[0];
    e->crashes = in[1];
    e->ranks = in[2];
    e->state = state;
    e->has_eval = flags & FLAG_EVAL;
    e->has_config = flags & FLAG_CONFIG;
    e->id = s[0];
    e->name = s[1];
    e->idem_key = s[2];
    e->parent = s[3];
    e->experiment = s[4];
    e->sched_id = s[5];
    e->params_json = s[6];
    e->errors_json = s[7];
    return true;
}

jei_table *jei_load(const char *spool_dir, jei_load_info *info)
{
    static const char *const tmp_prefix[] = {JEI_FILE ".tmp."};   /* a rewrite that was killed */
    remove_stale_tmp(spool_dir, tmp_prefix, 1, false, NULL, NULL);
    char *path = xasprintf("%s/" JEI_FILE, spool_dir), *data = NULL;
    size_t len = 0;
    int rc = read_file_flags(path, JEI_FILE_MAX, O_NOFOLLOW, &data, &len);
    free(path);
    if (rc < 0) {
        jei_table *t = jei_parse(NULL, 0, info);
        info->missing = rc == -ENOENT;
        info->bad = !info->missing;
        if (info->bad)
            snprintf(info->why, sizeof info->why, "cannot be read: %s", file_error_text(rc));
        return t;
    }
    return jei_parse(data, len, info);
}

jei_table *jei_parse(char *data, size_t len, jei_load_info *info)
{
    memset(info, 0, sizeof *info);
    jei_table *t = xcalloc(1, sizeof *t);
    t->by_id = job_index_new();
    t->data = data;
    if (!data)
        return t;
    info->bytes = len;
    if (len < sizeof file_magic || memcmp(t->data, file_magic, sizeof file_magic) != 0) {
        info->bad = true;
        snprintf(info->why, sizeof info->why, "not a traind index (bad header)");
        return t;
    }
    size_t off = sizeof file_magic, cap = 0;
    while (off < len) {
        uint32_t magic, plen, crc;
        const char *bad = NULL;
        if (len - off < REC_HEAD) {
            bad = "a torn record header";
        } else {
            memcpy(&magic, t->data + off, 4);
            memcpy(&plen, t->data + off + 4, 4);
            memcpy(&crc, t->data + off + 8, 4);
            if (magic != REC_MAGIC)
                bad = "a bad record magic";
            else if (plen < FIXED || plen > JEI_REC_MAX)
                bad = "a bad record length";
            else if (len - off - REC_HEAD < plen)
                bad = "a torn record";
            else if (crc32_update(0, t->data + off + REC_HEAD, plen) != crc)
                bad = "a checksum mismatch";
        }
        if (!bad) {
            if (t->n == cap) {
                cap = cap ? 2 * cap : 1024;
                t->e = xrealloc(t->e, cap * sizeof *t->e);
            }
            if (!decode((const unsigned char *)t->data + off + REC_HEAD, plen, &t->e[t->n]))
                bad = "a malformed record";
        }
        if (bad) {
            info->bad = true;
            snprintf(info->why, sizeof info->why, "%s at byte %zu (record %zu); the records after it are not used",
                     bad, off, info->records + 1);
            break;
        }
        t->n++;
        info->records++;
        off += REC_HEAD + plen;
    }
    /* the last record of an id wins (the pointers stay: t->e is not resized
     * any more) */
    for (size_t i = 0; i < t->n; i++)
        job_index_put(t->by_id, t->e[i].id, &t->e[i]);
    return t;
}

const jei_entry *jei_find(const jei_table *t, const char *id)
{
    return job_index_get(t->by_id, id);
}

size_t jei_count(const jei_table *t)
{
    return job_index_count(t->by_id);
}

void jei_table_free(jei_table *t)
{
    if (!t)
        return;
    job_index_free(t->by_id);
    free(t->e);
    free(t->data);
    free(t);
}

/* -------------------------------------------------------------- writing */

typedef struct batch {
    uv_work_t work;
    struct jei_writer *w;
    bool rewrite;
    jei_rec **recs;
    size_t n;
    int rc;
    const char *what;            /* what failed */
} batch;

struct jei_writer {
    uv_loop_t *loop;
    char *path;
    int fd;                      /* open for appending (only the batch in flight touches it) */
    batch *inflight;
    jei_rec **rewrite;           /* a rewrite waiting: its records */
    size_t n_rewrite;
    bool rewrite_wanted;
    jei_rec **q;                 /* appends waiting */
    size_t nq, capq;
    bool error_logged;
    unsigned long appended;
    void (*on_idle)(void *);
    void *on_idle_ctx;
};

jei_writer *jei_writer_new(uv_loop_t *loop, const char *spool_dir)
{
    jei_writer *w = xcalloc(1, sizeof *w);
    w->loop = loop;
    w->path = xasprintf("%s/" JEI_FILE, spool_dir);
    w->fd = -1;
    return w;
}

static void free_recs(jei_rec **r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i]);
    free(r);
}

static int write_all(int fd, const struct iovec *iov, int iovcnt)
{
    /* one writev per batch of up to IOV_MAX; a short write is continued */
    while (iovcnt > 0) {
        ssize_t n = writev(fd, iov, iovcnt > 1024 ? 1024 : iovcnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        struct iovec *v = (struct iovec *)iov;
        while (iovcnt > 0 && (size_t)n >= v->iov_len) {
            n -= (ssize_t)v->iov_len;
            v++;
            iovcnt--;
        }
        if (iovcnt > 0 && n > 0) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= (size_t)n;
        }
        iov = v;
    }
    return 0;
}

static void do_rewrite(batch *b)
{
    jei_writer *w = b->w;
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    size_t total = sizeof file_magic;
    for (size_t i = 0; i < b->n; i++)
        total += b->recs[i]->len;
    char *data = xmalloc(total), *p = data;
    memcpy(p, file_magic, sizeof file_magic);
    p += sizeof file_magic;
    for (size_t i = 0; i < b->n; i++) {
        memcpy(p, b->recs[i]->bytes, b->recs[i]->len);
        p += b->recs[i]->len;
    }
    b->rc = write_file_atomic(w->path, data, total, 0644);
    b->what = "rewrite";
    free(data);
}

static void do_append(batch *b)
{
    jei_writer *w = b->w;
    b->what = "open";
    if (w->fd < 0) {
        w->fd = open(w->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (w->fd < 0) {
            b->rc = -errno;
            return;
        }
    }
    struct stat st;
    if (fstat(w->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        b->rc = S_ISREG(st.st_mode) ? -errno : -EINVAL;
        return;
    }
    bool fresh = st.st_size == 0;
    struct iovec *iov = xmalloc((b->n + 1) * sizeof *iov);
    int k = 0;
    if (fresh)
        iov[k++] = (struct iovec){(void *)file_magic, sizeof file_magic};
    for (size_t i = 0; i < b->n; i++)
        iov[k++] = (struct iovec){b->recs[i]->bytes, b->recs[i]->len};
    b->what = "append";
    b->rc = write_all(w->fd, iov, k);
    free(iov);
    if (b->rc == 0 && fsync(w->fd) < 0)
        b->rc = -errno;
    if (b->rc == 0 && fresh)
        b->rc = fsync_parent_dir(w->path);
    if (b->rc < 0 && ftruncate(w->fd, st.st_size) < 0) {
        /* cannot cut the torn batch off: the next start finds it (a torn
         * record), uses what is before it and rewrites the file */
        close(w->fd);
        w->fd = -1;
    }
}

static void batch_work(uv_work_t *wk)
{
    batch *b = wk->data;
    if (b->rewrite)
        do_rewrite(b);
    else
        do_append(b);
}

static void kick(jei_writer *w);

static void batch_done(uv_work_t *wk, int status)
{
    batch *b = wk->data;
    jei_writer *w = b->w;
    (void)status;
    w->inflight = NULL;
    if (b->rc < 0) {
        if (!w->error_logged)
            log_error("%s: %s failed: %s (%zu job summaries not kept; those jobs are read from their "
                      "status.json at the next start)", w->path, b->what, strerror(-b->rc), b->n);
        w->error_logged = true;
    } else {
        if (w->error_logged)
            log_info("%s: written again", w->path);
        w->error_logged = false;
        if (!b->rewrite)
            w->appended += b->n;
    }
    free_recs(b->recs, b->n);
    free(b);
    kick(w);
    if (!w->inflight && w->on_idle)
        w->on_idle(w->on_idle_ctx);
}

static void kick(jei_writer *w)
{
    if (w->inflight || (!w->rewrite_wanted && w->nq == 0))
        return;
    batch *b = xcalloc(1, sizeof *b);
    b->work.data = b;
    b->w = w;
    if (w->rewrite_wanted) {
        b->rewrite = true;
        b->recs = w->rewrite;
        b->n = w->n_rewrite;
        w->rewrite = NULL;
        w->n_rewrite = 0;
        w->rewrite_wanted = false;
    } else {
        b->recs = w->q;
        b->n = w->nq;
        w->q = NULL;
        w->nq = w->capq = 0;
    }
    w->inflight = b;
    int rc = uv_queue_work(w->loop, &b->work, batch_work, batch_done);
    if (rc < 0) {
        log_error("%s: cannot queue a write: %s", w->path, uv_strerror(rc));
        w->inflight = NULL;
        free_recs(b->recs, b->n);
        free(b);
    }
}

void jei_writer_rewrite(jei_writer *w, jei_rec **recs, size_t n)
{
    free_recs(w->rewrite, w->n_rewrite);
    w->rewrite = recs;
    w->n_rewrite = n;
    w->rewrite_wanted = true;
    /* appends queued before it are in it already or follow it */
    kick(w);
}

void jei_writer_append(jei_writer *w, jei_rec *r)
{
    if (w->nq == w->capq) {
        w->capq = w->capq ? 2 * w->capq : 64;
        w->q = xrealloc(w->q, w->capq * sizeof *w->q);
    }
    w->q[w->nq++] = r;
    kick(w);
}

bool jei_writer_idle(const jei_writer *w)
{
    return !w->inflight && !w->rewrite_wanted && w->nq == 0;
}

void jei_writer_set_on_idle(jei_writer *w, void (*cb)(void *), void *ctx)
{
    w->on_idle = cb;
    w->on_idle_ctx = ctx;
}

unsigned long jei_writer_appended(const jei_writer *w)
{
    return w->appended;
}

void jei_writer_free(jei_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free_recs(w->rewrite, w->n_rewrite);
    free_recs(w->q, w->nq);
    free(w->path);
    free(w);
}

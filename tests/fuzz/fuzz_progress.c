/*
 * fuzz_progress — the worker → daemon progress protocol (daemon/proto/progress.c):
 * progress_decode on the whole input, and the line reader fed the input in
 * pieces.
 *
 * Oracle:
 *  - a decoded message encodes to one line that decodes to the same message
 *    (numbers bit for bit; a non-finite number comes back as NaN, since it
 *    travels as null);
 *  - the reader finds the same messages and the same number of bad lines
 *    however the bytes are split into reads (all at once, byte by byte, and
 *    in pieces whose sizes come from the input);
 *  - an input starting with '!' is first preceded by a line just over the
 *    64 KiB limit, written in pieces, which must be dropped whole.
 */
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "traind/progress.h"
#include "traind/util.h"

static bool same_num(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* b is a after a trip through the wire. */
static void check_same(const progress_msg *a, const progress_msg *b)
{
    FUZZ_CHECK(a->ev == b->ev);
    FUZZ_CHECK(a->pt.step == b->pt.step && a->total_steps == b->total_steps);
    FUZZ_CHECK(a->checkpoint_step == b->checkpoint_step);
    const double va[] = {a->pt.lr, a->pt.loss, a->pt.loss_avg, a->pt.grad_norm, a->pt.eval_loss, a->pt.time, a->pt.steps_per_s};
    const double vb[] = {b->pt.lr, b->pt.loss, b->pt.loss_avg, b->pt.grad_norm, b->pt.eval_loss, b->pt.time, b->pt.steps_per_s};
    for (size_t i = 0; i < sizeof va / sizeof va[0]; i++)
        FUZZ_CHECK(same_num(isfinite(va[i]) ? va[i] : NAN, vb[i]));
    FUZZ_CHECK(strcmp(a->message, b->message) == 0);
}

static void check_msg(const progress_msg *m)
{
    FUZZ_CHECK(strcmp(progress_ev_name(m->ev), "?") != 0);
    FUZZ_CHECK(memchr(m->message, '\0', sizeof m->message));
    FUZZ_CHECK(m->pt.step >= -1 && m->total_steps >= -1 && m->checkpoint_step >= -1);
    if (m->ev == PEV_FAILED || m->ev == PEV_NOTICE)
        FUZZ_CHECK(m->message[0]);

    size_t len;
    char *line = progress_encode(m, &len);
    FUZZ_CHECK(line && len >= 2 && line[len - 1] == '\n' && strlen(line) == len);
    FUZZ_CHECK(memchr(line, '\n', len - 1) == NULL);
    progress_msg back;
    char err[128];
    int rc = progress_decode(line, len - 1, &back, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "fuzz_progress: own encoding refused (%s): %s", err, line);
    FUZZ_CHECK(rc == 0);
    check_same(m, &back);
    free(line);
}

/* What a reader saw: a running hash of the messages (by their encoding) and counts. */
typedef struct seen {
    uint64_t hash;
    unsigned long n_msg, n_bad;
} seen;

static void on_msg(void *ctx, const progress_msg *m)
{
    seen *s = ctx;
    FUZZ_CHECK(strcmp(progress_ev_name(m->ev), "?") != 0 && memchr(m->message, '\0', sizeof m->message));
    size_t len;
    char *line = progress_encode(m, &len);
    s->hash = fnv64_update(s->hash, line, len);
    free(line);
    s->n_msg++;
}

static void on_bad(void *ctx, const char *why)
{
    seen *s = ctx;
    FUZZ_CHECK(why && why[0]);
    s->n_bad++;
}

static char *long_line;
#define LONG_LINE (PROGRESS_MAX_LINE + 100)

/* Feeds the input in pieces: piece(i) gives the size of the i-th (0 = the rest). */
static seen read_all(const uint8_t *data, size_t size, size_t (*piece)(const uint8_t *, size_t, size_t))
{
    seen s = {FNV64_INIT, 0, 0};
    progress_reader r;
    progress_reader_init(&r);
    if (size && data[0] == '!') {
        for (size_t off = 0; off < LONG_LINE; off += 4096)
            progress_reader_feed(&r, long_line + off, LONG_LINE - off < 4096 ? LONG_LINE - off : 4096, on_msg,
                                 on_bad, &s);
        FUZZ_CHECK(s.n_msg == 0);
    }
    size_t off = 0;
    for (size_t i = 0; off < size; i++) {
        size_t n = piece(data, size, i);
        if (n == 0 || n > size - off)
            n = size - off;
        progress_reader_feed(&r, (const char *)data + off, n, on_msg, on_bad, &s);
        off += n;
    }
    progress_reader_finish(&r, on_msg, on_bad, &s);
    FUZZ_CHECK(r.n_bad == s.n_bad);
    progress_reader_free(&r);
    return s;
}

static size_t all_at_once(const uint8_t *d, size_t n, size_t i)
{
    return 0;
}

static size_t byte_by_byte(const uint8_t *d, size_t n, size_t i)
{
    return 1;
}

static size_t from_input(const uint8_t *d, size_t n, size_t i)
{
    return 1 + d[(i * 7) % n] % 23;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!long_line) {
        long_line = xmalloc(LONG_LINE);
        memset(long_line, 'x', LONG_LINE);
        memcpy(long_line, "{\"ev\":\"log\",\"message\":\"", 24);
    }
    progress_msg m;
    char err[128];
    if (progress_decode((const char *)data, size, &m, err, sizeof err) == 0)
        check_msg(&m);
    else
        FUZZ_CHECK(err[0]);

    seen a = read_all(data, size, all_at_once);
    seen b = read_all(data, size, byte_by_byte);
    seen c = read_all(data, size, from_input);
    if (fuzz_verbose())
        fprintf(stderr, "  %lu messages, %lu bad lines\n", a.n_msg, a.n_bad);
    FUZZ_CHECK(a.n_msg == b.n_msg && a.n_bad == b.n_bad && a.hash == b.hash);
    FUZZ_CHECK(a.n_msg == c.n_msg && a.n_bad == c.n_bad && a.hash == c.hash);
    return 0;
}

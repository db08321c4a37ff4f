/* test_progress — the worker → daemon line protocol: exact round trips,
 * and a daemon side that survives whatever a broken worker writes. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/progress.h"
#include "traind/util.h"
#include "tl.h"

typedef struct sink {
    progress_msg msgs[64];
    int n;
    int bad;
    char last_bad[128];
} sink;

static void on_msg(void *ctx, const progress_msg *m)
{
    sink *s = ctx;
    if (s->n < 64)
        s->msgs[s->n] = *m;
    s->n++;
}

static void on_bad(void *ctx, const char *why)
{
    sink *s = ctx;
    s->bad++;
    snprintf(s->last_bad, sizeof s->last_bad, "%s", why);
}

START_TEST(round_trip_is_exact)
{
    progress_msg m;
    progress_msg_init(&m, PEV_LOG);
    m.pt.step = 1200;
    m.total_steps = 5000;
    m.checkpoint_step = 1000;
    m.pt.lr = 0.1 + 0.2;                 /* not a short decimal */
    m.pt.loss = 0.021300000324845314;    /* a float widened to double */
    m.pt.loss_avg = 1.0 / 3.0;
    m.pt.grad_norm = 4.1e-300;
    m.pt.time = 12.5;
    m.pt.steps_per_s = 5321.0;
    size_t len;
    char *line = progress_encode(&m, &len);
    ck_assert_uint_eq(strlen(line), len);
    ck_assert_int_eq(line[len - 1], '\n');
    ck_assert_ptr_null(memchr(line, '\n', len - 1));
    progress_msg d;
    char err[128];
    ck_assert_int_eq(progress_decode(line, len - 1, &d, err, sizeof err), 0);
    ck_assert_int_eq(d.ev, PEV_LOG);
    ck_assert_int_eq(d.pt.step, 1200);
    ck_assert_int_eq(d.total_steps, 5000);
    ck_assert_int_eq(d.checkpoint_step, 1000);
    ck_assert(d.pt.lr == m.pt.lr);
    ck_assert(d.pt.loss == m.pt.loss);
    ck_assert(d.pt.loss_avg == m.pt.loss_avg);
    ck_assert(d.pt.grad_norm == m.pt.grad_norm);
    ck_assert(d.pt.time == m.pt.time);
    ck_assert(d.pt.steps_per_s == m.pt.steps_per_s);
    ck_assert(isnan(d.pt.eval_loss));
    ck_assert_str_eq(d.message, "");
    free(line);
}
END_TEST

START_TEST(every_event_and_messages)
{
    for (int ev = PEV_START; ev <= PEV_DONE; ev++) {
        progress_msg m;
        progress_msg_init(&m, (progress_ev)ev);
        m.pt.step = ev;
        snprintf(m.message, sizeof m.message, "line \"%d\"\n\twith \\ escapes ünïcode", ev);
        size_t len;
        char *line = progress_encode(&m, &len);
        progress_msg d;
        char err[128];
        ck_assert_int_eq(progress_decode(line, len - 1, &d, err, sizeof err), 0);
        ck_assert_int_eq(d.ev, ev);
        ck_assert_int_eq(d.pt.step, ev);
        ck_assert_str_eq(d.message, m.message);
        ck_assert_str_eq(progress_ev_name((progress_ev)ev), progress_ev_name(d.ev));
        free(line);
    }
}
END_TEST

START_TEST(non_finite_travel_as_null)
{
    progress_msg m;
    progress_msg_init(&m, PEV_TICK);
    m.pt.loss = INFINITY;
    m.pt.lr = NAN;   /* absent */
    size_t len;
    char *line = progress_encode(&m, &len);
    ck_assert_ptr_nonnull(strstr(line, "\"loss\":null"));
    ck_assert_ptr_null(strstr(line, "\"lr\""));
    progress_msg d;
    char err[128];
    ck_assert_int_eq(progress_decode(line, len - 1, &d, err, sizeof err), 0);
    ck_assert(isnan(d.pt.loss));
    free(line);
}
END_TEST

START_TEST(garbage_lines_are_refused)
{
    const char *bad[] = {
        "", "not json", "[1,2,3]", "42", "\"str\"", "{}", "{\"ev\":1}", "{\"ev\":\"explode\"}",
        "{\"ev\":\"log\",\"step\":\"12\"}", "{\"ev\":\"log\",\"step\":-1}", "{\"ev\":\"log\",\"step\":1.5}",
        "{\"ev\":\"log\",\"step\":1e300}", "{\"ev\":\"log\",\"lr\":\"fast\"}",
        "{\"ev\":\"failed\",\"message\":7}", "{\"ev\":\"log\"", "{\"ev\":\"log\"}}",
        "\xff\xfe\x00garbage",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        progress_msg d;
        char err[128] = "";
        ck_assert_msg(progress_decode(bad[i], strlen(bad[i]), &d, err, sizeof err) == -1, "accepted #%zu", i);
        ck_assert_msg(err[0] != '\0', "no reason for #%zu", i);
    }
    /* a failed line without a message still says something */
    progress_msg d;
    char err[128];
    ck_assert_int_eq(progress_decode("{\"ev\":\"failed\"}", 15, &d, err, sizeof err), 0);
    ck_assert_str_ne(d.message, "");
}
END_TEST

START_TEST(reader_splits_and_joins)
{
    sink s = {0};
    progress_reader r;
    progress_reader_init(&r);
    const char *stream = "{\"ev\":\"start\",\"step\":0}\n{\"ev\":\"log\",\"step\":10}\r\n\n"
                         "{\"ev\":\"log\",\"step\":20}\n{\"ev\":\"done\",\"step\":20}";
    /* byte by byte */
    for (size_t i = 0; stream[i]; i++)
        progress_reader_feed(&r, stream + i, 1, on_msg, on_bad, &s);
    ck_assert_int_eq(s.n, 3);
    progress_reader_finish(&r, on_msg, on_bad, &s);   /* the last line had no newline */
    ck_assert_int_eq(s.n, 4);
    ck_assert_int_eq(s.bad, 0);
    ck_assert_int_eq(s.msgs[0].ev, PEV_START);
    ck_assert_int_eq(s.msgs[2].pt.step, 20);
    ck_assert_int_eq(s.msgs[3].ev, PEV_DONE);
    /* all at once */
    sink t = {0};
    progress_reader_feed(&r, stream, strlen(stream), on_msg, on_bad, &t);
    progress_reader_finish(&r, on_msg, on_bad, &t);
    ck_assert_int_eq(t.n, 4);
    progress_reader_free(&r);
}
END_TEST

START_TEST(reader_skips_garbage_and_long_lines)
{
    sink s = {0};
    progress_reader r;
    progress_reader_init(&r);
    progress_reader_feed(&r, "garbage\n{\"ev\":\"log\",\"step\":1}\n", 31, on_msg, on_bad, &s);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(s.bad, 1);
    /* a line longer than 64 KiB, fed in pieces, is dropped whole */
    size_t big = PROGRESS_MAX_LINE + 1000;
    char *junk = xmalloc(big);
    memset(junk, 'x', big);
    memcpy(junk, "{\"ev\":\"log\",\"step\":2,\"message\":\"", 33);
    for (size_t off = 0; off < big; off += 7000)
        progress_reader_feed(&r, junk + off, big - off < 7000 ? big - off : 7000, on_msg, on_bad, &s);
    progress_reader_feed(&r, "\"}\n{\"ev\":\"log\",\"step\":3}\n", 26, on_msg, on_bad, &s);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(s.msgs[1].pt.step, 3);
    ck_assert_int_eq(s.bad, 2);
    ck_assert_ptr_nonnull(strstr(s.last_bad, "64 KiB"));
    /* a long line that arrives whole with its newline is dropped too */
    junk[big - 1] = '\n';
    progress_reader_feed(&r, junk, big, on_msg, on_bad, &s);
    progress_reader_feed(&r, "{\"ev\":\"log\",\"step\":4}\n", 23, on_msg, on_bad, &s);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.msgs[2].pt.step, 4);
    free(junk);
    progress_reader_free(&r);
}
END_TEST

START_TEST(reader_survives_random_bytes)
{
    progress_reader r;
    progress_reader_init(&r);
    sink s = {0};
    unsigned x = 12345;
    char buf[4096];
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + (x % sizeof buf);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            unsigned char c = (unsigned char)(x >> 16);
            /* bias towards JSON-ish bytes and newlines */
            static const char alphabet[] = "{}[]\":,\n0123456789.e-ntrulfasv";
            buf[i] = (x & 0x100) ? alphabet[c % (sizeof alphabet - 1)] : (char)c;
        }
        progress_reader_feed(&r, buf, n, on_msg, on_bad, &s);
    }
    progress_reader_finish(&r, on_msg, on_bad, &s);
    ck_assert_int_gt(s.bad, 0);
    progress_reader_free(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, round_trip_is_exact);
    tcase_add_test(tc, every_event_and_messages);
    tcase_add_test(tc, non_finite_travel_as_null);
    tcase_add_test(tc, garbage_lines_are_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("reader");
    tcase_add_test(tc, reader_splits_and_joins);
    tcase_add_test(tc, reader_skips_garbage_and_long_lines);
    tcase_add_test(tc, reader_survives_random_bytes);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed = tl_run_suite(suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

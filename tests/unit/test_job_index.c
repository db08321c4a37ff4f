/*
 * test_job_index — <spool>/jobs.index (job_ended_index.h), the ended jobs'
 * summaries a restart takes jobs from: untrusted input.
 *
 *   round trip      entries encode and decode field for field (strings
 *                   absent or at their bound, NaN, negative numbers); the
 *                   last record of an id wins; over-bound fields are not
 *                   encoded; the writer's rewrite and appends read back,
 *                   and a killed rewrite's temp file is removed
 *   truncation      every prefix of a file: the whole records before the
 *                   cut are used, a torn one is reported, nothing else
 *   flipped byte    a byte flipped anywhere (each field of the header and
 *                   the payload) ends the records used there; with the CRC
 *                   made right again the record is refused as malformed or
 *                   decodes to an entry whose strings are bounded, ids valid
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/job_ended_index.h"
#include "traind/spool.h"
#include "traind/util.h"
#include "tl.h"

#define HEAD 8    /* the file's magic */
#define REC_HEAD 12

static char long_name[JEI_NAME_MAX + 1];

static jei_entry entry(int k)
{
    jei_entry e = {
        .st = {.ino = 1000u + (unsigned)k, .size = 321, .mtime_ns = 1700000000123456789LL, .ctime_ns = -5},
        .id = k == 0 ? "job-a" : k == 1 ? "job-b" : "job-a",
        .name = k == 1 ? long_name : "a name with \"quotes\" and é",
        .idem_key = k == 0 ? "key-0" : NULL,
        .parent = k == 0 ? "job-p" : NULL,
        .experiment = k == 0 ? "exp-1" : NULL,
        .sched_id = k == 0 ? "123456" : NULL,
        .params_json = k == 0 ? "{\"optimizer.lr\":0.001}" : NULL,
        .errors_json = k == 1 ? "[{\"message\":\"boom\"}]" : "[]",
        .state = 3 + k,
        .has_eval = k == 0,
        .has_config = k != 1,
        .restarts = k,
        .crashes = -k,
        .ranks = 2,
        .seq = 10u + (unsigned)k,
        .step = 20 + k,
        .total_steps = 20,
        .checkpoint_step = -1,
        .forked_at = k == 0 ? 7 : -1,
        .lr = 1e-3,
        .loss = k == 1 ? NAN : 0.5,
        .loss_avg = -0.0,
        .grad_norm = 1e300,
        .eval_loss = 2.5,
        .tokens_per_step = 4096,
        .submitted_at = 1.7e9,
        .started_at = 1.7e9 + 1,
        .finished_at = 1.7e9 + 60.25,
    };
    return e;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_num(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static void assert_same(const jei_entry *a, const jei_entry *b)
{
    ck_assert(jei_stat_same(&a->st, &b->st));
    ck_assert(same_str(a->id, b->id) && same_str(a->name, b->name) && same_str(a->idem_key, b->idem_key));
    ck_assert(same_str(a->parent, b->parent) && same_str(a->experiment, b->experiment));
    ck_assert(same_str(a->sched_id, b->sched_id) && same_str(a->params_json, b->params_json));
    ck_assert(same_str(a->errors_json, b->errors_json));
    ck_assert_int_eq(a->state, b->state);
    ck_assert(a->has_eval == b->has_eval && a->has_config == b->has_config);
    ck_assert(a->restarts == b->restarts && a->crashes == b->crashes && a->ranks == b->ranks);
    ck_assert(a->seq == b->seq && a->step == b->step && a->total_steps == b->total_steps);
    ck_assert(a->checkpoint_step == b->checkpoint_step && a->forked_at == b->forked_at);
    const double da[] = {a->lr, a->loss, a->loss_avg, a->grad_norm, a->eval_loss, a->tokens_per_step,
                         a->submitted_at, a->started_at, a->finished_at};
    const double db[] = {b->lr, b->loss, b->loss_avg, b->grad_norm, b->eval_loss, b->tokens_per_step,
                         b->submitted_at, b->started_at, b->finished_at};
    for (size_t i = 0; i < sizeof da / sizeof da[0]; i++)
        ck_assert_msg(same_num(da[i], db[i]), "double %zu: %g, not %g", i, db[i], da[i]);
}

/* A file: the magic and the records of entries 0..n-1; *ends the offset
 * where each record ends. */
static char *file_of(int n, size_t *len, size_t *ends)
{
    char *f = xmalloc(HEAD);
    memcpy(f, "TRDJEI1\n", HEAD);
    *len = HEAD;
    for (int k = 0; k < n; k++) {
        jei_entry e = entry(k);
        jei_rec *r = jei_encode(&e);
        ck_assert_ptr_nonnull(r);
        f = xrealloc(f, *len + r->len);
        memcpy(f + *len, r->bytes, r->len);
        *len += r->len;
        ends[k] = *len;
        free(r);
    }
    return f;
}

static jei_table *parse_copy(const char *data, size_t len, jei_load_info *info)
{
    char *copy = xmalloc(len ? len : 1);   /* exactly len: ASan sees a read past it */
    memcpy(copy, data, len);
    return jei_parse(copy, len, info);
}

START_TEST(index_round_trip)
{
    memset(long_name, 'n', JEI_NAME_MAX);
    size_t len, ends[3];
    char *f = file_of(3, &len, ends);
    jei_load_info info;
    jei_table *t = parse_copy(f, len, &info);
    ck_assert_msg(!info.bad && !info.missing, "%s", info.why);
    ck_assert_uint_eq(info.records, 3);
    ck_assert_uint_eq(info.bytes, len);
    ck_assert_uint_eq(jei_count(t), 2);
    jei_entry a = entry(2), b = entry(1);   /* job-a: its last record */
    assert_same(&a, jei_find(t, "job-a"));
    assert_same(&b, jei_find(t, "job-b"));
    ck_assert_ptr_null(jei_find(t, "job-c"));
    jei_table_free(t);

    /* fields over their bounds are not encoded */
    jei_entry e = entry(0);
    char big[JEI_NAME_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    e.name = big;
    ck_assert_ptr_null(jei_encode(&e));
    e = entry(0);
    e.id = NULL;
    ck_assert_ptr_null(jei_encode(&e));
    e = entry(0);
    e.sched_id = "12345678901234567890123456789012345678901234567890123456789012345";
    ck_assert_ptr_null(jei_encode(&e));

    /* jei_rec_set_stat: the identity of the file written */
    e = entry(0);
    jei_rec *r = jei_encode(&e);
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_ino = 77;
    st.st_size = 5;
    st.st_mtim.tv_sec = 3;
    st.st_ctim.tv_nsec = 9;
    jei_rec_set_stat(r, &st);
    char *one = xmalloc(HEAD + r->len);
    memcpy(one, "TRDJEI1\n", HEAD);
    memcpy(one + HEAD, r->bytes, r->len);
    t = jei_parse(one, HEAD + r->len, &info);
    ck_assert(!info.bad);
    jei_stat want;
    jei_stat_of(&st, &want);
    e.st = want;
    assert_same(&e, jei_find(t, "job-a"));
    jei_table_free(t);
    free(r);

    /* the writer: a rewrite, then an append; a killed rewrite's temp file goes */
    char *dir = tl_tmpdir("traind-jei");
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    jei_writer *w = jei_writer_new(&loop, dir);
    jei_rec **recs = xmalloc(2 * sizeof *recs);
    for (int k = 0; k < 2; k++) {
        e = entry(k);
        recs[k] = jei_encode(&e);
    }
    jei_writer_rewrite(w, recs, 2);
    e = entry(2);
    jei_writer_append(w, jei_encode(&e));
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert(jei_writer_idle(w));
    ck_assert_uint_eq(jei_writer_appended(w), 1);
    jei_writer_free(w);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    char *tmp = xasprintf("%s/" JEI_FILE ".tmp.12345", dir);
    ck_assert_int_eq(tl_write(tmp, "half a rewrite"), 0);
    t = jei_load(dir, &info);
    ck_assert_msg(!info.bad && !info.missing, "%s", info.why);
    ck_assert_uint_eq(info.records, 3);
    assert_same(&a, jei_find(t, "job-a"));
    ck_assert_int_ne(access(tmp, F_OK), 0);
    jei_table_free(t);
    char *ip = xasprintf("%s/" JEI_FILE, dir);
    unlink(ip);
    t = jei_load(dir, &info);
    ck_assert(info.missing && !info.bad && jei_count(t) == 0);
    jei_table_free(t);
    free(ip);
    free(tmp);
    tl_rmtree(dir);
    free(dir);
    free(f);
}
END_TEST

START_TEST(index_every_truncation)
{
    memset(long_name, 'n', JEI_NAME_MAX);
    size_t len, ends[3];
    char *f = file_of(3, &len, ends);
    for (size_t cut = 0; cut < len; cut++) {
        jei_load_info info;
        jei_table *t = parse_copy(f, cut, &info);
        size_t whole = 0;
        while (whole < 3 && ends[whole] <= cut)
            whole++;
        bool boundary = cut == HEAD || (whole > 0 && ends[whole - 1] == cut);
        ck_assert_msg(info.records == whole, "cut at %zu: %zu records, not %zu", cut, info.records, whole);
        ck_assert_msg(info.bad == !boundary, "cut at %zu: bad %d (%s)", cut, info.bad, info.why);
        if (cut < HEAD)
            ck_assert_msg(strstr(info.why, "bad header"), "cut at %zu: %s", cut, info.why);
        else if (!boundary)
            ck_assert_msg(strstr(info.why, "torn"), "cut at %zu: %s", cut, info.why);
        for (size_t k = 0; k < whole; k++) {
            jei_entry e = entry((int)k);
            const jei_entry *got = jei_find(t, e.id);
            ck_assert_ptr_nonnull(got);
            if (k == whole - 1 || k == 1)
                assert_same(&e, got);
        }
        ck_assert_uint_eq(jei_count(t), whole >= 2 ? 2 : whole);
        jei_table_free(t);
    }
    free(f);
}
END_TEST

/* The payload's CRC made right again (after a byte of it was changed). */
static void reseal(char *rec)
{
    uint32_t plen;
    memcpy(&plen, rec + 4, 4);
    uint32_t crc = crc32_update(0, rec + REC_HEAD, plen);
    memcpy(rec + 8, &crc, 4);
}

/* An entry decoded from a record behind a good CRC: what the decoder
 * promises of any bytes. */
static void assert_sane(const jei_entry *e)
{
    ck_assert(e->id && spool_id_valid(e->id) && e->name && strlen(e->name) <= JEI_NAME_MAX);
    ck_assert(!e->parent || spool_id_valid(e->parent));
    ck_assert(!e->experiment || spool_id_valid(e->experiment));
    ck_assert(!e->sched_id || (strlen(e->sched_id) <= 64 && strspn(e->sched_id, "0123456789") == strlen(e->sched_id)));
    ck_assert(!e->idem_key || strlen(e->idem_key) <= 255);
    ck_assert(!e->params_json || strlen(e->params_json) <= JEI_JSON_MAX);
    ck_assert(!e->errors_json || strlen(e->errors_json) <= JEI_JSON_MAX);
    ck_assert(e->seq > 0 && e->step >= 0);
}

START_TEST(index_flipped_byte)
{
    memset(long_name, 'n', 40);   /* short records: every byte is flipped */
    long_name[40] = '\0';
    size_t len, ends[2];
    char *f = file_of(2, &len, ends);
    size_t starts[2] = {HEAD, ends[0]};
    static const unsigned char masks[] = {0x01, 0x80, 0xff};
    int malformed = 0, decoded = 0;
    for (size_t pos = 0; pos < len; pos++) {
        int rec = pos < HEAD ? -1 : pos < ends[0] ? 0 : 1;
        for (size_t m = 0; m < sizeof masks; m++) {
            f[pos] ^= (char)masks[m];
            jei_load_info info;
            jei_table *t = parse_copy(f, len, &info);
            /* as is: nothing from the flipped record on */
            ck_assert_msg(info.bad, "a flip at byte %zu went unnoticed", pos);
            ck_assert_msg(info.records == (size_t)(rec < 0 ? 0 : rec), "a flip at byte %zu: %zu records used", pos,
                          info.records);
            jei_table_free(t);
            /* a flip in a payload with its CRC made right: refused as
             * malformed, or an entry as sane as any */
            if (rec >= 0 && pos >= starts[rec] + REC_HEAD) {
                char *g = xmalloc(len);
                memcpy(g, f, len);
                reseal(g + starts[rec]);
                t = jei_parse(g, len, &info);
                if (info.bad) {
                    ck_assert_msg(strstr(info.why, "malformed"), "byte %zu: %s", pos, info.why);
                    ck_assert_uint_eq(info.records, (size_t)rec);
                    malformed++;
                } else {
                    ck_assert_uint_eq(info.records, 2);
                    for (int k = 0; k < 2; k++) {
                        jei_entry e = entry(k);
                        const jei_entry *got = jei_find(t, e.id);
                        if (got)
                            assert_sane(got);
                    }
                    decoded++;
                }
                jei_table_free(t);
            }
            f[pos] ^= (char)masks[m];
        }
    }
    /* both outcomes were reached: the string lengths and counts are
     * checked, the numbers are data */
    ck_assert_int_gt(malformed, 50);
    ck_assert_int_gt(decoded, 50);
    free(f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("job_index");
    TCase *tc = tcase_create("job_index");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, index_round_trip);
    tcase_add_test(tc, index_every_truncation);
    tcase_add_test(tc, index_flipped_byte);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tl_run_suite(suite()) ? 1 : 0;
}

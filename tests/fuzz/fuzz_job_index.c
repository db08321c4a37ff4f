/*
 * fuzz_job_index — <spool>/jobs.index, the ended jobs' summaries a restart
 * takes jobs from (jei_parse, daemon/service/job_ended_index.c).
 *
 * Each input is parsed twice: as it is (mostly the refusal of torn and
 * corrupt records: a CRC guards each), and "repaired" — the file's magic
 * put first and every record's CRC made right — so that mutations reach
 * the decoding of the payload behind the checksum.
 *
 * Oracle: the records used are whole records from the start of the file
 * (an input that is not refused is used to its last byte); every entry has
 * a valid id, bounded strings, valid parent / experiment ids and a numeric
 * scheduler id; it encodes again into a record that decodes to the same
 * entry, bit for bit; jei_find agrees with the table.
 */
#include <string.h>

#include "fuzz.h"
#include "traind/job_ended_index.h"
#include "traind/spool.h"
#include "traind/util.h"

#define HEAD 8
#define REC_HEAD 12

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_same(const jei_entry *a, const jei_entry *b)
{
    FUZZ_CHECK(jei_stat_same(&a->st, &b->st));
    FUZZ_CHECK(same_str(a->id, b->id) && same_str(a->name, b->name) && same_str(a->idem_key, b->idem_key));
    FUZZ_CHECK(same_str(a->parent, b->parent) && same_str(a->experiment, b->experiment));
    FUZZ_CHECK(same_str(a->sched_id, b->sched_id) && same_str(a->params_json, b->params_json));
    FUZZ_CHECK(same_str(a->errors_json, b->errors_json));
    FUZZ_CHECK((uint8_t)a->state == (uint8_t)b->state && a->has_eval == b->has_eval);
    FUZZ_CHECK(a->has_config == b->has_config);
    FUZZ_CHECK(a->restarts == b->restarts && a->crashes == b->crashes && a->ranks == b->ranks);
    FUZZ_CHECK(a->seq == b->seq && a->step == b->step && a->total_steps == b->total_steps);
    FUZZ_CHECK(a->checkpoint_step == b->checkpoint_step && a->forked_at == b->forked_at);
    const double da[] = {a->lr, a->loss, a->loss_avg, a->grad_norm, a->eval_loss, a->tokens_per_step,
                         a->submitted_at, a->started_at, a->finished_at};
    const double db[] = {b->lr, b->loss, b->loss_avg, b->grad_norm, b->eval_loss, b->tokens_per_step,
                         b->submitted_at, b->started_at, b->finished_at};
    FUZZ_CHECK(memcmp(da, db, sizeof da) == 0);
}

static void check_entry(const jei_table *t, const jei_entry *e)
{
    FUZZ_CHECK(e->id && spool_id_valid(e->id) && e->name && strlen(e->name) <= JEI_NAME_MAX);
    FUZZ_CHECK(!e->parent || spool_id_valid(e->parent));
    FUZZ_CHECK(!e->experiment || spool_id_valid(e->experiment));
    FUZZ_CHECK(!e->sched_id || (strlen(e->sched_id) <= 64 && strspn(e->sched_id, "0123456789") == strlen(e->sched_id)));
    FUZZ_CHECK(!e->idem_key || strlen(e->idem_key) <= 255);
    FUZZ_CHECK(!e->params_json || strlen(e->params_json) <= JEI_JSON_MAX);
    FUZZ_CHECK(!e->errors_json || strlen(e->errors_json) <= JEI_JSON_MAX);
    FUZZ_CHECK(e->seq > 0 && e->step >= 0);
    FUZZ_CHECK(jei_find(t, e->id) != NULL);
    /* encodes again, and back to the same entry */
    jei_rec *r = jei_encode(e);
    FUZZ_CHECK(r != NULL);
    char *one = xmalloc(HEAD + r->len);
    memcpy(one, "TRDJEI1\n", HEAD);
    memcpy(one + HEAD, r->bytes, r->len);
    jei_load_info info;
    jei_table *t1 = jei_parse(one, HEAD + r->len, &info);
    FUZZ_CHECK(!info.bad && info.records == 1 && jei_count(t1) == 1);
    const jei_entry *back = jei_find(t1, e->id);
    FUZZ_CHECK(back != NULL);
    check_same(e, back);
    jei_table_free(t1);
    free(r);
}

static void parse_one(const uint8_t *data, size_t size, bool repair)
{
    char *buf = xmalloc(size ? size : 1);
    memcpy(buf, data, size);
    if (repair) {
        if (size < HEAD) {
            free(buf);
            return;
        }
        memcpy(buf, "TRDJEI1\n", HEAD);
        for (size_t off = HEAD; size - off >= REC_HEAD;) {
            uint32_t plen;
            memcpy(&plen, buf + off + 4, 4);
            if (plen > size - off - REC_HEAD)
                break;
            uint32_t crc = crc32_update(0, buf + off + REC_HEAD, plen);
            memcpy(buf + off + 8, &crc, 4);
            off += REC_HEAD + plen;
        }
    }
    jei_load_info info;
    jei_table *t = jei_parse(buf, size, &info);   /* takes buf */
    if (fuzz_verbose())
        fprintf(stderr, "  %s: %zu records, %zu ids%s%s\n", repair ? "repaired" : "as is", info.records,
                jei_count(t), info.bad ? ", bad: " : "", info.bad ? info.why : "");
    FUZZ_CHECK(!info.missing && info.bytes == size);
    FUZZ_CHECK(info.bad == (info.why[0] != '\0'));
    FUZZ_CHECK(jei_count(t) <= info.records);
    /* the records used, walked again: whole, from the start, to the end
     * unless refused */
    size_t off = HEAD;
    for (size_t i = 0; i < info.records; i++) {
        FUZZ_CHECK(size - off >= REC_HEAD);
        uint32_t plen;
        memcpy(&plen, data + off + 4, 4);   /* the repair changed only magics and CRCs */
        FUZZ_CHECK(plen <= JEI_REC_MAX && size - off - REC_HEAD >= plen);
        off += REC_HEAD + plen;
    }
    if (!info.bad)
        FUZZ_CHECK(off == size);
    /* each entry, by id */
    off = HEAD;
    for (size_t i = 0; i < info.records; i++) {
        uint32_t plen;
        memcpy(&plen, data + off + 4, 4);
        /* the id: the first string after the fixed part (160 bytes); its
         * length and bytes are what jei_parse checked */
        const uint8_t *p = data + off + REC_HEAD + 160;
        uint32_t n;
        memcpy(&n, p, 4);
        char id[SPOOL_ID_MAX + 1];
        FUZZ_CHECK(n <= SPOOL_ID_MAX);
        memcpy(id, p + 4, n);
        id[n] = '\0';
        const jei_entry *e = jei_find(t, id);
        FUZZ_CHECK(e != NULL);
        check_entry(t, e);
        off += REC_HEAD + plen;
    }
    jei_table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_one(data, size, false);
    parse_one(data, size, true);
    return 0;
}

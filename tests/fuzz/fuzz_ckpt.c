/*
 * fuzz_ckpt — the checkpoint reader (ckpt_parse, daemon/core/ckpt.c).
 *
 * Each input is parsed twice: as it is (which mostly exercises the refusal
 * of foreign, truncated and corrupt files), and "repaired" — magic, version,
 * byte-order mark, length field, CRC and end marker made right — so that
 * mutations reach the section table behind the checksum.
 *
 * Oracle: a refusal says why; an accepted file's sections lie inside the
 * buffer, one after the other, and reading every byte of them is safe (ASan
 * checks the bounds); ckpt_find agrees with the table.
 */
#include <string.h>

#include "fuzz.h"
#include "traind/ckpt.h"
#include "traind/util.h"

/* The layout of ckpt.c: a 48-byte header, sections of a 16-byte head and
 * data padded to 8, an 8-byte trailer (CRC of everything before it, "END!"). */
#define MAGIC "TRAINDCK"
#define BOM 0x01020304u
#define END 0x21444e45u
#define HEADER_LEN 48
#define TRAILER_LEN 8

static void put_u32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put_u64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static volatile uint32_t sink;

static void parse_one(const uint8_t *data, size_t size, bool repair)
{
    unsigned char *buf = xmalloc(size ? size : 1);
    memcpy(buf, data, size);
    if (repair) {
        if (size < HEADER_LEN + TRAILER_LEN) {
            free(buf);
            return;
        }
        memcpy(buf, MAGIC, 8);
        put_u32(buf + 8, CKPT_VERSION);
        put_u32(buf + 12, BOM);
        put_u64(buf + 32, size);
        put_u32(buf + size - 8, crc32_update(0, buf, size - 8));
        put_u32(buf + size - 4, END);
    }
    ckpt_file f;
    char err[256] = "";
    int rc = ckpt_parse(buf, size, &f, err, sizeof err); /* takes buf */
    if (fuzz_verbose())
        fprintf(stderr, "  %s: %s\n", repair ? "repaired" : "as is", rc == 0 ? "accepted" : err);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && err[0]);
        FUZZ_CHECK(f.buf == NULL && f.n_sections == 0);
        return;
    }
    FUZZ_CHECK(f.buf && f.len == size);
    FUZZ_CHECK(f.n_sections >= 0 && f.n_sections <= (int)(sizeof f.sections / sizeof f.sections[0]));
    const unsigned char *prev_end = f.buf + HEADER_LEN;
    uint32_t sum = 0;
    for (int i = 0; i < f.n_sections; i++) {
        const ckpt_section *s = &f.sections[i];
        const unsigned char *p = s->data;
        FUZZ_CHECK(p >= prev_end && p <= f.buf + f.len - TRAILER_LEN);
        FUZZ_CHECK(s->len <= (uint64_t)(f.buf + f.len - TRAILER_LEN - p));
        for (uint64_t k = 0; k < s->len; k++)
            sum += p[k];
        prev_end = p + s->len;
        const ckpt_section *found = ckpt_find(&f, s->tag);
        FUZZ_CHECK(found && found->tag == s->tag && found <= s);
    }
    sink = sum;
    ckpt_close(&f);
    FUZZ_CHECK(f.buf == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_one(data, size, false);
    parse_one(data, size, true);
    return 0;
}

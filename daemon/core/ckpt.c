/*
 * ckpt — checkpoint container.  See traind/ckpt.h.
 *
 * Layout (little-endian hosts; the byte order mark rejects others):
 *
 *   offset 0   "TRAINDCK"          8 bytes magic
 *          8   u32 version         CKPT_VERSION
 *         12   u32 bom             0x01020304 as written by this host
 *         16   u64 cfg_hash
 *         24   u64 step
 *         32   u64 file_len        the whole file, trailer included
 *         40   u32 n_sections
 *         44   u32 reserved (0)
 *         48   sections: { u32 tag, u32 reserved, u64 len, len bytes, 0-7 pad bytes to 8 }
 *   file_len-8 u32 crc32 of bytes [0, file_len-8), u32 "END!" marker
 *
 * file_len in the header catches truncation before the CRC is even
 * computed, so the message can say "truncated" rather than "corrupt".
 */
#include "traind/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "traind/util.h"

#define CKPT_MAGIC "TRAINDCK"
#define CKPT_BOM 0x01020304u
#define CKPT_END 0x21444e45u    /* "END!" */
#define HEADER_LEN 48
#define SECTION_HEAD 16
#define TRAILER_LEN 8
#define MAX_SECTIONS ((int)(sizeof(((ckpt_file *)0)->sections) / sizeof(ckpt_section)))

static size_t pad8(uint64_t n)
{
    return (size_t)((8 - (n & 7)) & 7);
}

/* A buffered writer that keeps a running CRC and remembers the first error. */
typedef struct writer {
    int fd;
    int err;
    uint32_t crc;
    unsigned char buf[1 << 16];
    size_t used;
} writer;

static void w_flush(writer *w)
{
    size_t off = 0;
    while (off < w->used && !w->err) {
        ssize_t n = write(w->fd, w->buf + off, w->used - off);
        if (n < 0) {
            if (errno != EINTR)
                w->err = errno;
        } else {
            off += (size_t)n;
        }
    }
    w->used = 0;
}

static void w_put(writer *w, const void *data, size_t len)
{
    const unsigned char *p = data;
    w->crc = crc32_update(w->crc, p, len);
    while (len > 0 && !w->err) {
        if (w->used == sizeof w->buf)
            w_flush(w);
        size_t n = sizeof w->buf - w->used;
        if (n > len)
            n = len;
        memcpy(w->buf + w->used, p, n);
        w->used += n;
        p += n;
        len -= n;
    }
}

static void w_u32(writer *w, uint32_t v) { w_put(w, &v, 4); }
static void w_u64(writer *w, uint64_t v) { w_put(w, &v, 8); }

int ckpt_write(const char *path, uint64_t cfg_hash, uint64_t step,
               const ckpt_section *sections, int n_sections, char *err, size_t errlen)
{
    if (n_sections < 0 || n_sections > MAX_SECTIONS) {
        snprintf(err, errlen, "too many checkpoint sections (%d)", n_sections);
        return -EINVAL;
    }
    uint64_t file_len = HEADER_LEN + TRAILER_LEN;
    for (int i = 0; i < n_sections; i++)
        file_len += SECTION_HEAD + sections[i].len + pad8(sections[i].len);

    atomic_file af;
    writer *w = xcalloc(1, sizeof *w);
    int rc = atomic_file_open(&af, path, 0644);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
        goto out;
    }
    w->fd = af.fd;
    w_put(w, CKPT_MAGIC, 8);
    w_u32(w, CKPT_VERSION);
    w_u32(w, CKPT_BOM);
    w_u64(w, cfg_hash);
    w_u64(w, step);
    w_u64(w, file_len);
    w_u32(w, (uint32_t)n_sections);
    w_u32(w, 0);
    static const unsigned char zeros[8];
    for (int i = 0; i < n_sections; i++) {
        w_u32(w, sections[i].tag);
        w_u32(w, 0);
        w_u64(w, sections[i].len);
        w_put(w, sections[i].data, sections[i].len);
        w_put(w, zeros, pad8(sections[i].len));
    }
    uint32_t crc = w->crc;
    w_u32(w, crc);
    w_u32(w, CKPT_END);
    w_flush(w);
    if (w->err) {
        rc = -w->err;
        atomic_file_abort(&af);
    } else {
        rc = atomic_file_commit(&af);   /* fsync, rename, fsync the directory */
    }
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
out:
    free(w);
    return rc;
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

int ckpt_parse(unsigned char *buf, size_t len, ckpt_file *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = -EINVAL;
    if (memcmp(buf, CKPT_MAGIC, len < 8 ? len : 8) != 0) {
        snprintf(err, errlen, "not a traind checkpoint (bad magic)");
        goto fail;
    }
    if (len < HEADER_LEN + TRAILER_LEN) {
        snprintf(err, errlen, "checkpoint is truncated (%zu bytes, shorter than its header)", len);
        goto fail;
    }
    if (get_u32(buf + 12) != CKPT_BOM) {
        snprintf(err, errlen, "checkpoint was written on a machine of another byte order");
        goto fail;
    }
    uint32_t version = get_u32(buf + 8);
    if (version != CKPT_VERSION) {
        snprintf(err, errlen, "checkpoint format version %u is not supported (this build reads %d)",
                 version, CKPT_VERSION);
        goto fail;
    }
    uint64_t file_len = get_u64(buf + 32);
    if (file_len > len) {
        snprintf(err, errlen, "checkpoint is truncated (%zu of %llu bytes)", len,
                 (unsigned long long)file_len);
        goto fail;
    }
    if (file_len < len || file_len < HEADER_LEN + TRAILER_LEN) {
        snprintf(err, errlen, "checkpoint is corrupt (length field %llu, file %zu bytes)",
                 (unsigned long long)file_len, len);
        goto fail;
    }
    uint32_t want_crc = get_u32(buf + len - 8);
    if (get_u32(buf + len - 4) != CKPT_END || crc32_update(0, buf, len - 8) != want_crc) {
        snprintf(err, errlen, "checkpoint is corrupt (checksum mismatch)");
        goto fail;
    }
    uint32_t n = get_u32(buf + 40);
    if (n > (uint32_t)MAX_SECTIONS) {
        snprintf(err, errlen, "checkpoint is corrupt (%u sections)", n);
        goto fail;
    }
    size_t off = HEADER_LEN, end = len - TRAILER_LEN;
    for (uint32_t i = 0; i < n; i++) {
        if (end - off < SECTION_HEAD) {
            snprintf(err, errlen, "checkpoint is corrupt (section %u runs past the end)", i);
            goto fail;
        }
        uint64_t slen = get_u64(buf + off + 8);
        uint64_t room = end - off - SECTION_HEAD;
        if (slen > room || pad8(slen) > room - slen) {
            snprintf(err, errlen, "checkpoint is corrupt (section %u runs past the end)", i);
            goto fail;
        }
        out->sections[i] = (ckpt_section){get_u32(buf + off), buf + off + SECTION_HEAD, slen};
        off += SECTION_HEAD + slen + pad8(slen);
    }
    if (off != end) {
        snprintf(err, errlen, "checkpoint is corrupt (%zu unexplained bytes)", end - off);
        goto fail;
    }
    out->buf = buf;
    out->len = len;
    out->cfg_hash = get_u64(buf + 16);
    out->step = get_u64(buf + 24);
    out->n_sections = (int)n;
    return 0;
fail:
    free(buf);
    return rc;
}

int ckpt_read(const char *path, size_t max_bytes, ckpt_file *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    int rc = read_file(path, max_bytes, &buf, &len);
    if (rc == -ENOENT)
        return rc;
    if (rc == -EFBIG) {
        snprintf(err, errlen, "%s is larger than this model's checkpoint can be", path);
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
        return rc;
    }
    return ckpt_parse((unsigned char *)buf, len, out, err, errlen);
}

const ckpt_section *ckpt_find(const ckpt_file *f, uint32_t tag)
{
    for (int i = 0; i < f->n_sections; i++)
        if (f->sections[i].tag == tag)
            return &f->sections[i];
    return NULL;
}

void ckpt_close(ckpt_file *f)
{
    free(f->buf);
    memset(f, 0, sizeof *f);
}

bool ckpt_kept_name_step(const char *name, long *step)
{
    long s;
    int end = 0;
    if (sscanf(name, "step-%ld.bin%n", &s, &end) != 1 || name[end] != '\0' || s < 0)
        return false;
    *step = s;
    return true;
}

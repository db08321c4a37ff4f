/*
 * ckpt — the checkpoint container: a header (magic, format version, byte
 * order mark, config hash, step), tagged sections of raw bytes, and a CRC-32
 * over everything, written atomically (temp file, fsync, rename, directory
 * fsync).  The reader trusts nothing: every length is bounds-checked, and a
 * truncated, corrupt, foreign or mismatched file is refused with a message
 * that says which.
 *
 * What goes into the sections is the runner's business (see runner.c).
 */
#ifndef TRAIND_CKPT_H
#define TRAIND_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_VERSION 1

typedef struct ckpt_section {
    uint32_t tag;
    const void *data;
    uint64_t len;
} ckpt_section;

/* Writes the sections to path atomically.  Returns 0, or a negative errno
 * with a message in err (e.g. ENOSPC); the previous file is then untouched. */
int ckpt_write(const char *path, uint64_t cfg_hash, uint64_t step,
               const ckpt_section *sections, int n_sections, char *err, size_t errlen);

typedef struct ckpt_file {
    unsigned char *buf;       /* the whole file */
    size_t len;
    uint64_t cfg_hash;
    uint64_t step;
    int n_sections;
    ckpt_section sections[16];
} ckpt_file;

/* Reads and verifies path (at most max_bytes).  Returns 0, -ENOENT when
 * there is no file, or another negative errno with a message in err. */
int ckpt_read(const char *path, size_t max_bytes, ckpt_file *out, char *err, size_t errlen);

/* Verifies an in-memory image (used by ckpt_read and the fuzzer).  Takes
 * ownership of buf on success and on failure. */
int ckpt_parse(unsigned char *buf, size_t len, ckpt_file *out, char *err, size_t errlen);

/* The section with tag, or NULL. */
const ckpt_section *ckpt_find(const ckpt_file *f, uint32_t tag);

void ckpt_close(ckpt_file *f);

/* A kept checkpoint's name in a job's checkpoints/ ("step-S.bin", S >= 0):
 * true with *step.  Temp files (".step-S.bin.tmp.PID") and anything else:
 * false. */
bool ckpt_kept_name_step(const char *name, long *step);

#endif

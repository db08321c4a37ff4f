/*
 * diag — a list of located problems ("diagnostics") found in user input.
 *
 * Config parsing and validation collect every problem instead of stopping at
 * the first, so a user sees all of them at once.  Each carries the dotted key
 * path ("schedule.warmup_steps"), the 1-based line and column of the offending
 * YAML node (0 when there is no position, e.g. a missing key reported against
 * its parent), and a human sentence.
 */
#ifndef TRAIND_DIAG_H
#define TRAIND_DIAG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

typedef struct diag {
    char *path;     /* dotted key path, "" for the whole document */
    int line;       /* 1-based, 0 = unknown */
    int column;     /* 1-based, 0 = unknown */
    char *message;
} diag_t;

typedef struct diag_list {
    diag_t *items;
    size_t n;
    size_t cap;
} diag_list_t;

#define DIAG_LIST_INIT {NULL, 0, 0}

/* Appends one problem; message is printf-formatted.  Never fails (aborts on OOM). */
void diag_add(diag_list_t *list, const char *path, int line, int column,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* diag_add with a va_list (for callers that format their own way in). */
void diag_vadd(diag_list_t *list, const char *path, int line, int column, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
void diag_free(diag_list_t *list);

/* "FILE:LINE:COL: PATH: MESSAGE" one per line (FILE may be NULL). */
void diag_print(FILE *out, const char *file, const diag_list_t *list);

#endif

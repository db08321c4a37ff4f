/* diag — collected, located problems in user input.  See traind/diag.h. */
#include "traind/diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "traind/util.h"

void diag_vadd(diag_list_t *list, const char *path, int line, int column, const char *fmt, va_list ap)
{
    if (list->n == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 8;
        list->items = xrealloc(list->items, list->cap * sizeof *list->items);
    }
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    list->items[list->n++] = (diag_t){xstrdup(path ? path : ""), line, column, msg};
}

void diag_add(diag_list_t *list, const char *path, int line, int column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(list, path, line, column, fmt, ap);
    va_end(ap);
}

void diag_free(diag_list_t *list)
{
    for (size_t i = 0; i < list->n; i++) {
        free(list->items[i].path);
        free(list->items[i].message);
    }
    free(list->items);
    *list = (diag_list_t)DIAG_LIST_INIT;
}

void diag_print(FILE *out, const char *file, const diag_list_t *list)
{
    for (size_t i = 0; i < list->n; i++) {
        const diag_t *d = &list->items[i];
        if (file)
            fprintf(out, "%s:", file);
        if (d->line > 0)
            fprintf(out, "%d:%d:", d->line, d->column);
        if (d->path[0])
            fprintf(out, " %s:", d->path);
        fprintf(out, " %s\n", d->message);
    }
}

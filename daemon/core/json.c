/* json — exact number printing for cJSON.  See traind/json.h. */
#include "traind/json.h"

#include "traind/diag.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/util.h"

/* The shortest of 15, 16 or 17 significant digits that reads back as v.
 * Whole numbers (steps, counts) take the fast integer path.  Fixed format
 * strings: "%.*g" sends glibc down its slow positional path. */
void json_format_exact(double v, char *buf, size_t len)
{
    if (v == (double)(long long)v && fabs(v) < 1e15) {
        snprintf(buf, len, "%lld", (long long)v);
        return;
    }
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) == v)
        return;
    snprintf(buf, len, "%.16g", v);
    if (strtod(buf, NULL) == v)
        return;
    snprintf(buf, len, "%.17g", v);
}

void json_exact_numbers(cJSON *o)
{
    cJSON *next;
    for (cJSON *c = o ? o->child : NULL; c; c = next) {
        next = c->next;
        if (!cJSON_IsNumber(c)) {
            json_exact_numbers(c);
            continue;
        }
        if (!isfinite(c->valuedouble))
            continue;
        char buf[40];
        json_format_exact(c->valuedouble, buf, sizeof buf);
        cJSON *raw = cJSON_CreateRaw(buf);
        if (!raw)
            continue;
        /* Hand the key over to the replacement, so no lookup by name. */
        raw->string = c->string;
        raw->type |= c->type & cJSON_StringIsConst;
        c->string = NULL;
        cJSON_ReplaceItemViaPointer(o, c, raw);
    }
}

char *json_print_exact(cJSON *o)
{
    json_exact_numbers(o);
    return cJSON_PrintUnformatted(o);
}

cJSON *json_diag_list(const diag_list_t *errs)
{
    return json_diag_list_prefixed(errs, NULL);
}

cJSON *json_diag_list_prefixed(const diag_list_t *errs, const char *prefix)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < errs->n; i++) {
        const diag_t *d = &errs->items[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "path", d->path);
        cJSON_AddNumberToObject(e, "line", d->line);
        cJSON_AddNumberToObject(e, "column", d->column);
        if (prefix) {
            char *m = xasprintf("%s%s", prefix, d->message);
            cJSON_AddStringToObject(e, "message", m);
            free(m);
        } else {
            cJSON_AddStringToObject(e, "message", d->message);
        }
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

cJSON *json_error_doc(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "error", msg)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

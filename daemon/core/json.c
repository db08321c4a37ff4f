/* json — exact number printing for cJSON.  See traind/json.h. */
#include "traind/json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, c->valuedouble);
            if (strtod(buf, NULL) == c->valuedouble)
                break;
        }
        cJSON *raw = cJSON_CreateRaw(buf);
        if (!raw)
            continue;
        if (c->string)
            cJSON_ReplaceItemInObjectCaseSensitive(o, c->string, raw);   /* keeps the key */
        else
            cJSON_ReplaceItemViaPointer(o, c, raw);
    }
}

char *json_print_exact(cJSON *o)
{
    json_exact_numbers(o);
    return cJSON_PrintUnformatted(o);
}

/*
 * json — printing cJSON documents so that every number reads back as the
 * very same double.  cJSON prints "%1.15g" whenever that reads back within
 * an epsilon, which may be one unit off in the last place; status.json is
 * read back after a restart and API clients compare lrs to 1e-12, so both
 * print through here.
 */
#ifndef TRAIND_JSON_H
#define TRAIND_JSON_H

#include <stddef.h>

struct cJSON;

/* Replaces every finite number in o (recursively) by the shortest text of
 * 15 to 17 significant digits that reads back exactly.  Non-finite numbers
 * are left to cJSON, which prints them as null. */
void json_exact_numbers(struct cJSON *o);

/* The text json_exact_numbers gives a finite v (len >= 32), for writers
 * that print JSON without building a tree (hf_state.c). */
void json_format_exact(double v, char *buf, size_t len);

/* json_exact_numbers(o), then cJSON_PrintUnformatted(o): malloc'd, or NULL
 * when out of memory. */
char *json_print_exact(struct cJSON *o);

struct diag_list;

/* The API's form of a diagnostics list: an array of {"path", "line",
 * "column", "message"}, in the list's order (every "errors" array of the
 * HTTP API is one). */
struct cJSON *json_diag_list(const struct diag_list *errs);

/* The same, each message after prefix ("trial {...}: " for a sweep's trial). */
struct cJSON *json_diag_list_prefixed(const struct diag_list *errs, const char *prefix);

/* {"error": msg}: the body of every API error that is one sentence.  NULL
 * when out of memory. */
struct cJSON *json_error_doc(const char *msg);

#endif

/*
 * cli_common — what several trainctl commands share, in a file of its own so
 * that traind-mpi-worker (which runs `trainctl run`'s code as each rank of
 * `trainctl run --ranks N`) can link the commands without trainctl's main.
 */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "traind/dconfig.h"
#include "traind/util.h"

void cli_data_path_note(const char *path, const char *data_path, const diag_list_t *errs, const struct dconfig *dc)
{
    bool about_path = false;
    for (size_t i = 0; i < errs->n && !about_path; i++)
        about_path = !strcmp(errs->items[i].path, "data.path");
    if (!about_path)
        return;
    if (dc && dc->n_data_dirs == 0)
        return;   /* the error says so: it allows no data files */
    if (dc) {
        /* cfg_resolve_data_path: relative to the first data dir, inside any */
        fprintf(stderr, "  (looked where that daemon would: ");
        if (data_path && data_path[0] != '/')
            fprintf(stderr, "%s/%s, ", dc->data_dirs[0], data_path);
        fprintf(stderr, "inside its data_dirs:");
        for (size_t i = 0; i < dc->n_data_dirs; i++)
            fprintf(stderr, " %s", dc->data_dirs[i]);
        fprintf(stderr, ")\n");
        return;
    }
    if (data_path && data_path[0] == '/')
        return;
    char *copy = xstrdup(path);
    fprintf(stderr, "  (looked in the config's folder %s/, as trainctl run does; traind looks in its data_dirs "
                    "(default SPOOL/data): --daemon-config FILE looks where that daemon would)\n", dirname(copy));
    free(copy);
}

int cli_load_config(const char *path, run_config *cfg, char **data_path)
{
    diag_list_t errs = DIAG_LIST_INIT;
    *data_path = NULL;
    if (cfg_load_file(path, NULL, cfg, &errs) != 0) {
        diag_print(stderr, path, &errs);
        diag_free(&errs);
        return -1;
    }
    char *copy = xstrdup(path);
    *data_path = cfg_resolve_data_path(cfg, dirname(copy), NULL, 0, &errs);
    free(copy);
    if (errs.n > 0) {
        diag_print(stderr, path, &errs);
        cli_data_path_note(path, cfg->data.path, &errs, NULL);
        diag_free(&errs);
        cfg_free(cfg);
        free(*data_path);
        *data_path = NULL;
        return -1;
    }
    return 0;
}

void cli_format_duration(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, len, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, len, "%lds", t);
}

double cli_parse_utc(const char *s)
{
    struct tm tm = {0};
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
        return 0;
    return (double)timegm(&tm);
}

/* ---- what the daemon sent, made safe to print ------------------------ */

static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* s with every control byte written \xHH (malloc'd); NULL when it has none. */
static char *escape_controls(const char *s, bool keep_lines)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += is_control(*p) && !(keep_lines && (*p == '\n' || *p == '\t')) ? 1 : 0;
    if (n == 0)
        return NULL;
    char *out = xmalloc(strlen(s) + 3 * n + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (is_control(*p) && !(keep_lines && (*p == '\n' || *p == '\t')))
            o += sprintf(o, "\\x%02x", *p);
        else
            *o++ = (char)*p;
    }
    *o = '\0';
    return out;
}

void cli_json_sanitize(cJSON *j)
{
    for (; j; j = j->next) {
        char *e;
        if (j->string && !(j->type & cJSON_StringIsConst) && (e = escape_controls(j->string, false))) {
            free(j->string);
            j->string = e;
        }
        if (cJSON_IsString(j) && j->valuestring && (e = escape_controls(j->valuestring, false))) {
            free(j->valuestring);
            j->valuestring = e;
        }
        cli_json_sanitize(j->child);
    }
}

cJSON *cli_json_parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    cli_json_sanitize(j);
    return j;
}

void cli_write_text(FILE *f, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_control(c) && c != '\n' && c != '\t')
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

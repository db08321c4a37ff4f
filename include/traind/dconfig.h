/*
 * dconfig — the daemon config of SPEC.md §2 (/etc/traind/traind.yaml).
 *
 * Every key is optional.  Unknown keys, wrong types and out-of-range values
 * are errors with the line and column of the offending node (and a "did you
 * mean" hint for a misspelt key); every problem is reported at once.
 *
 * The order of precedence is: built-in defaults < the file < command-line
 * flags.  Callers build a dconfig with dconfig_init(), overlay the file with
 * dconfig_load(), overlay the flags (fields they set directly), then call
 * dconfig_finish() to derive what depends on other keys (the token file and
 * data dir inside the spool) and make every path absolute.
 */
#ifndef TRAIND_DCONFIG_H
#define TRAIND_DCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include "traind/diag.h"

#define DCONFIG_DEFAULT_PATH "/etc/traind/traind.yaml"
#define DCONFIG_DEFAULT_SPOOL "./var/spool"
#define DCONFIG_DEFAULT_LISTEN "127.0.0.1:8080"
#define DCONFIG_MAX_DATA_DIRS 64

typedef struct dconfig {
    char *spool;             /* NULL until set; dconfig_finish() defaults it */
    char *listen;            /* "HOST:PORT", "[V6]:PORT" or "unix:/PATH" */
    int max_jobs;            /* >= 1, default 1 */
    int threads_per_job;     /* >= 1, default 1 */
    char **data_dirs;        /* NULL-free array of n_data_dirs; default <spool>/data */
    size_t n_data_dirs;
    bool data_dirs_set;      /* given by the file (an empty list is allowed: no data files) */
    char *api_token_file;    /* default <spool>/api.token */
    long metrics_keep;       /* >= 2, default 100000 */
    int max_restarts;        /* >= 0, default 0 */
} dconfig;

/* Built-in defaults (spool/token/data dirs left for dconfig_finish). */
void dconfig_init(dconfig *c);
void dconfig_free(dconfig *c);

/* Overlays the keys present in buf onto c.  Returns 0, or -1 with every
 * problem in errs (c may then be partly updated: use a scratch copy). */
int dconfig_parse(const char *buf, size_t len, dconfig *c, diag_list_t *errs);

/* Reads path (capped at 1 MiB) and dconfig_parse()s it.  A file that cannot
 * be read is one diagnostic with the errno text. */
int dconfig_load(const char *path, dconfig *c, diag_list_t *errs);

/* Defaults that depend on the spool, then every path made absolute
 * (relative to the current directory). */
void dconfig_finish(dconfig *c);

/* Replaces *dst with a copy of s (NULL allowed). */
void dconfig_set_str(char **dst, const char *s);
void dconfig_set_data_dirs(dconfig *c, char *const *dirs, size_t n);

/* Checks a listen address: "HOST:PORT", "[V6]:PORT" or "unix:/PATH".
 * Returns NULL when fine, else a static message. */
const char *dconfig_check_listen(const char *s);

/* Levenshtein distance, used for "did you mean" hints. */
int dconfig_edit_distance(const char *a, const char *b);

#endif

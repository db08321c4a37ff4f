/*
 * config_internal — what the config_*.c files share and nobody else needs:
 * the validation context, typed value readers that report located errors,
 * and the per-section key tables that drive "unknown key" and "only used by"
 * checks.  Not installed, not part of any public contract.
 *
 * Every reader follows one convention: it returns CV_OK and stores the value,
 * CV_ABSENT (the key is not there; *out untouched, so it keeps its default),
 * or CV_BAD after adding one diagnostic (*out untouched).  Callers therefore
 * fill defaults first and read over them, and never stop at the first error.
 */
#ifndef TRAIND_CONFIG_INTERNAL_H
#define TRAIND_CONFIG_INTERNAL_H

#include <stdbool.h>
#include "traind/config.h"
#include "traind/yamltree.h"

typedef enum { CV_BAD = -1, CV_ABSENT = 0, CV_OK = 1 } cv_result;

#define CV_PATH_MAX 256

/* A key a section accepts.  types: bit (1 << t) for each type value t of the
 * section's discriminator (model.type, data.kind, ...) that uses the key; 0 =
 * every type. */
typedef struct cv_key {
    const char *name;
    unsigned types;
} cv_key;

#define CV_BIT(t) (1u << (t))

/* A section (a mapping) being validated.  map is NULL when the section is
 * absent or null; `at` is then the nearest existing ancestor, the position
 * that "required key is missing" errors point at. */
typedef struct cv_section {
    diag_list_t *errs;
    const ynode *map;
    const ynode *at;
    bool invalid;               /* present but not a mapping (reported once) */
    char path[CV_PATH_MAX];     /* "schedule", or "" for the root */
} cv_section;

/* A numeric interval; lo_open/hi_open make the ends exclusive; an infinite
 * end is no bound. */
typedef struct cv_range {
    double lo, hi;
    bool lo_open, hi_open;
} cv_range;

/* ---- config_value.c: nodes ---- */

void cv_error(diag_list_t *errs, const char *path, const ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "section.key" / "path[i]" into out (truncated to CV_PATH_MAX). */
void cv_path_key(char out[CV_PATH_MAX], const char *parent, const char *key);
void cv_path_index(char out[CV_PATH_MAX], const char *parent, size_t index);

/* "got ..." text describing a node for messages: "-5", "string \"abc\"",
 * "null", "a list".  Writes into buf and returns it. */
const char *cv_describe(const ynode *n, char *buf, size_t size);

/* User text for a message: at most 40 characters, control characters and
 * quotes made harmless. */
void cv_quote(const char *s, size_t len, char *buf, size_t size);

cv_result cv_int(diag_list_t *errs, const ynode *n, const char *path, long long lo, long long hi,
                 long long *out);
cv_result cv_num(diag_list_t *errs, const ynode *n, const char *path, cv_range r, double *out);
cv_result cv_bool(diag_list_t *errs, const ynode *n, const char *path, bool *out);
/* names: n_names strings; *out = the index. */
cv_result cv_enum(diag_list_t *errs, const ynode *n, const char *path, const char *const *names,
                  int n_names, int *out);
/* A non-null scalar of 1..max_len bytes without NUL or control characters. */
cv_result cv_str(diag_list_t *errs, const ynode *n, const char *path, size_t max_len,
                 const char **out);
/* A size in bytes: a plain whole number with an optional binary suffix K,
 * M, G, T or P (also Ki/KiB/KB, any case; 1K = 1024), in lo..hi, or 0 when
 * zero_ok ("no limit"). */
cv_result cv_bytes(diag_list_t *errs, const ynode *n, const char *path, size_t lo, size_t hi, bool zero_ok,
                   size_t *out);
/* The parse under cv_bytes: 0 with *out, -EINVAL (not a size) or -ERANGE
 * (over SIZE_MAX); *out untouched on error. */
int cv_parse_bytes(const char *s, size_t *out);
/* "512M", "8G", or the plain number of bytes when no unit divides it. */
void cv_format_bytes(size_t bytes, char *buf, size_t size);
/* A list of min..max items; reports and returns false otherwise. */
bool cv_list(diag_list_t *errs, const ynode *n, const char *path, size_t min, size_t max);

/* ---- config_value.c: sections ---- */

/* Opens key `name` of parent (NULL parent = root) as a section.  A present
 * but non-mapping, non-null value is reported and the section is empty. */
void cv_section_open(cv_section *s, const cv_section *parent, const char *name);
void cv_section_root(cv_section *s, diag_list_t *errs, const ynode *root);

/* The node of a key in the section, or NULL. */
const ynode *cv_get(const cv_section *s, const char *key);
/* Reports "required key is missing" at the section's position (unless the
 * section itself was reported as not a mapping). */
void cv_missing(const cv_section *s, const char *key, const char *why);

/* Typed reads of a section key; required = report a missing key. */
cv_result cv_get_int(const cv_section *s, const char *key, bool required, long long lo,
                     long long hi, long long *out);
cv_result cv_get_num(const cv_section *s, const char *key, bool required, cv_range r, double *out);
cv_result cv_get_bool(const cv_section *s, const char *key, bool *out);
cv_result cv_get_enum(const cv_section *s, const char *key, bool required,
                      const char *const *names, int n_names, int *out);

/* Reports every key of the section that is not in keys (with a "did you
 * mean" hint) and, when type >= 0, every key that the type does not use
 * ("cycles is only used by schedule type cosine_with_restarts").  type_names
 * and type_what ("schedule type") word the latter. */
void cv_check_keys(const cv_section *s, const cv_key *keys, int type, const char *const *type_names,
                   const char *type_what);

/* Reports key (a key node of s's mapping, not in keys) as unknown, with a
 * "did you mean" hint naming the nearest key of keys; other_sections also
 * looks for the key in the run config's other sections (cfg_key_home). */
void cv_unknown_key(const cv_section *s, const ynode *key, const cv_key *keys, bool other_sections);

/* Levenshtein distance, capped (returns cap+1 when larger). */
size_t cv_edit_distance(const char *a, const char *b, size_t cap);

/* ---- config.c ---- */

/* The section ("optimizer") that accepts key, or NULL; for cross-section hints. */
const char *cfg_key_home(const char *key);

/* Removes from doc's model, data, optimizer or schedule section the keys
 * that its type (as written, else the default) does not use.  For sweeps
 * over a type, where a key meant for one trial's type is no error in the
 * others. */
void cfg_prune_keys_for_type(ynode *doc, const char *section);

/* ---- config_schedule.c ---- */

/* Reads the schedule section into cfg->sched; lr_ok says cfg->optim.lr is
 * valid (min_lr is converted with it). */
void cfg_parse_schedule(const cv_section *root, run_config *cfg, bool lr_ok);
extern const cv_key cfg_schedule_keys[];

#endif

/*
 * config_value — typed reads of YAML nodes for config validation, each
 * reporting a located, human error instead of failing silently.
 * See config_internal.h for the conventions.
 *
 * Scalars are typed the YAML 1.2 core-schema way, by their plain text:
 * decimal integers, decimal floats ("2.0e-4", "1e-3", ".5"), true/false,
 * null/~/empty.  Quoted scalars are always strings, so "5" is not a number.
 * Deliberately refused, with a message saying why: hex/octal and leading
 * zeros (YAML 1.1 and 1.2 read "010" differently), .inf/.nan and anything
 * strtod would turn into them, and floats where an integer is expected.
 */
#include "config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "traind/util.h"

typedef enum { SC_INT, SC_FLOAT, SC_NONFINITE, SC_OTHERNUM, SC_BOOL, SC_NULL, SC_STRING } scalar_class;

/* ---- messages and paths ------------------------------------------------ */

void cv_error(diag_list_t *errs, const char *path, const ynode *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(errs, path, at ? at->line : 0, at ? at->column : 0, fmt, ap);
    va_end(ap);
}

/* out = a + b + c, truncated to CV_PATH_MAX - 1 bytes. */
static void path_concat(char out[CV_PATH_MAX], const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t used = 0;
    for (int i = 0; i < 3; i++)
        for (const char *p = parts[i]; *p && used < CV_PATH_MAX - 1; p++)
            out[used++] = *p;
    out[used] = '\0';
}

void cv_path_key(char out[CV_PATH_MAX], const char *parent, const char *key)
{
    char copy[CV_PATH_MAX];
    path_concat(copy, parent, "", "");      /* parent may alias out */
    path_concat(out, copy, copy[0] ? "." : "", key);
}

void cv_path_index(char out[CV_PATH_MAX], const char *parent, size_t index)
{
    char copy[CV_PATH_MAX], idx[32];
    path_concat(copy, parent, "", "");
    snprintf(idx, sizeof idx, "[%zu]", index);
    path_concat(out, copy, idx, "");
}

void cv_quote(const char *s, size_t len, char *buf, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 40) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\')
            buf[o++] = '\\';
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[o] = '\0';
}

/* ---- scalar typing ----------------------------------------------------- */

static const char *skip_sign(const char *s)
{
    return (*s == '+' || *s == '-') ? s + 1 : s;
}

static size_t count_digits(const char *s)
{
    size_t n = 0;
    while (isdigit((unsigned char)s[n]))
        n++;
    return n;
}

/* [-+]?[0-9]+ */
static bool is_decimal_int(const char *s)
{
    s = skip_sign(s);
    size_t n = count_digits(s);
    return n > 0 && s[n] == '\0';
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, not an integer. */
static bool is_decimal_float(const char *s)
{
    s = skip_sign(s);
    size_t mant = count_digits(s);
    s += mant;
    bool dot = *s == '.';
    if (dot) {
        size_t frac = count_digits(s + 1);
        if (mant == 0 && frac == 0)
            return false;
        s += 1 + frac;
    } else if (mant == 0) {
        return false;
    }
    bool exp = *s == 'e' || *s == 'E';
    if (exp) {
        s = skip_sign(s + 1);
        size_t e = count_digits(s);
        if (e == 0)
            return false;
        s += e;
    }
    return *s == '\0' && (dot || exp);
}

static bool is_nonfinite(const char *s)
{
    s = skip_sign(s);
    static const char *const words[] = {".inf", ".nan", "inf", "nan", "infinity"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcasecmp(s, words[i]) == 0)
            return true;
    return false;
}

/* Numbers in a notation we refuse: 0x1F, 0o17, 0b101, 010, 1_000. */
static bool is_other_number(const char *s)
{
    s = skip_sign(s);
    if (s[0] == '0' && s[1] && strchr("xXoObB", s[1]))
        return true;
    if (s[0] == '0' && isdigit((unsigned char)s[1]))
        return true;
    return isdigit((unsigned char)s[0]) && strchr(s, '_') && !strpbrk(s, " \t");
}

/* YAML 1.2 core booleans (not 1.1's yes/no/on/off). */
static bool is_bool_word(const char *s, bool *value)
{
    static const char *const words[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
    for (int i = 0; i < 6; i++)
        if (strcmp(s, words[i]) == 0) {
            *value = i < 3;
            return true;
        }
    return false;
}

static scalar_class classify(const ynode *n)
{
    if (!n->plain)
        return SC_STRING;
    if (yscalar_is_null(n))
        return SC_NULL;
    bool b;
    if (is_bool_word(n->value, &b))
        return SC_BOOL;
    if (is_decimal_int(n->value))
        return (is_other_number(n->value) ? SC_OTHERNUM : SC_INT);
    if (is_decimal_float(n->value))
        return SC_FLOAT;
    if (is_nonfinite(n->value))
        return SC_NONFINITE;
    if (is_other_number(n->value))
        return SC_OTHERNUM;
    return SC_STRING;
}

const char *cv_describe(const ynode *n, char *buf, size_t size)
{
    if (!n) {
        snprintf(buf, size, "nothing");
        return buf;
    }
    if (n->kind != YNODE_SCALAR) {
        snprintf(buf, size, "%s", n->kind == YNODE_SEQ ? "a list" : "a mapping");
        return buf;
    }
    char text[128];
    cv_quote(n->value, n->len, text, sizeof text);
    switch (classify(n)) {
    case SC_NULL:
        snprintf(buf, size, "null");
        break;
    case SC_STRING:
        snprintf(buf, size, "string \"%s\"", text);
        break;
    default:
        snprintf(buf, size, "%s", text);
        break;
    }
    return buf;
}

/* ---- typed readers ----------------------------------------------------- */

static void int_range_text(long long lo, long long hi, char *buf, size_t size)
{
    if (hi == LLONG_MAX)
        snprintf(buf, size, ">= %lld", lo);
    else
        snprintf(buf, size, "in %lld..%lld", lo, hi);
}

/* A float in exponent form that is an exact integer (1e15, 2.5e3, -3E2),
 * in exact decimal arithmetic (no double rounding): *out, or false when it
 * has a fraction or is out of long long's range (*overflow then). */
static bool exp_form_int(const char *s, long long *out, bool *overflow)
{
    *overflow = false;
    bool neg = *s == '-';
    s = skip_sign(s);
    char digits[64];
    size_t nd = 0, nfrac = 0;
    bool frac = false;
    for (; *s && *s != 'e' && *s != 'E'; s++) {
        if (*s == '.') {
            frac = true;
            continue;
        }
        if (nd == 0 && *s == '0') {   /* leading zeros: nothing */
            nfrac += frac;
            continue;
        }
        if (nd == sizeof digits)
            return *overflow = true, false;
        digits[nd++] = *s;
        nfrac += frac;
    }
    if (*s != 'e' && *s != 'E')
        return false;
    errno = 0;
    long e = strtol(s + 1, NULL, 10);
    if (errno == ERANGE || e > 1000 || e < -1000) {
        *overflow = nd > 0 && e > 0;
        if (nd == 0) {
            *out = 0;
            return true;
        }
        return false;
    }
    long shift = e - (long)nfrac;   /* value = digits x 10^shift */
    while (shift < 0 && nd > 0 && digits[nd - 1] == '0') {
        nd--;
        shift++;
    }
    if (nd == 0) {
        *out = 0;
        return true;
    }
    if (shift < 0)
        return false;   /* a fraction is left */
    unsigned long long v = 0, lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (size_t i = 0; i < nd + (size_t)shift; i++) {
        unsigned d = i < nd ? (unsigned)(digits[i] - '0') : 0;
        if (v > (lim - d) / 10)
            return *overflow = true, false;
        v = v * 10 + d;
    }
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

cv_result cv_int(diag_list_t *errs, const ynode *n, const char *path, long long lo, long long hi,
                 long long *out)
{
    char got[160], range[64];
    int_range_text(lo, hi, range, sizeof range);
    /* 1e15 is an integer, written as YAML and JSON writers print it */
    if (n->kind == YNODE_SCALAR && classify(n) == SC_FLOAT && strpbrk(n->value, "eE")) {
        long long v;
        bool overflow;
        if (exp_form_int(n->value, &v, &overflow) && v >= lo && v <= hi) {
            *out = v;
            return CV_OK;
        }
        if (overflow || exp_form_int(n->value, &v, &overflow)) {
            cv_error(errs, path, n, "must be an integer %s, got %s", range, cv_describe(n, got, sizeof got));
            return CV_BAD;
        }
    }
    if (n->kind != YNODE_SCALAR || classify(n) != SC_INT) {
        const char *what = n->kind == YNODE_SCALAR && classify(n) == SC_OTHERNUM
                               ? "must be a decimal integer" : "must be an integer";
        cv_error(errs, path, n, "%s, got %s", what, cv_describe(n, got, sizeof got));
        return CV_BAD;
    }
    errno = 0;
    long long v = strtoll(n->value, NULL, 10);
    if (errno == ERANGE || v < lo || v > hi) {
        cv_error(errs, path, n, "must be an integer %s, got %s", range, cv_describe(n, got, sizeof got));
        return CV_BAD;
    }
    *out = v;
    return CV_OK;
}

static void num_range_text(cv_range r, char *buf, size_t size)
{
    bool has_lo = isfinite(r.lo), has_hi = isfinite(r.hi);
    if (has_lo && has_hi)
        snprintf(buf, size, "in %c%.15g, %.15g%c", r.lo_open ? '(' : '[', r.lo, r.hi, r.hi_open ? ')' : ']');
    else if (has_lo)
        snprintf(buf, size, "%s %.15g", r.lo_open ? ">" : ">=", r.lo);
    else if (has_hi)
        snprintf(buf, size, "%s %.15g", r.hi_open ? "<" : "<=", r.hi);
    else
        buf[0] = '\0';
}

static bool in_range(cv_range r, double v)
{
    if (isfinite(r.lo) && (r.lo_open ? !(v > r.lo) : !(v >= r.lo)))
        return false;
    if (isfinite(r.hi) && (r.hi_open ? !(v < r.hi) : !(v <= r.hi)))
        return false;
    return true;
}

cv_result cv_num(diag_list_t *errs, const ynode *n, const char *path, cv_range r, double *out)
{
    char got[160], range[96];
    scalar_class c = n->kind == YNODE_SCALAR ? classify(n) : SC_STRING;
    if (n->kind != YNODE_SCALAR || (c != SC_INT && c != SC_FLOAT && c != SC_NONFINITE)) {
        const char *what = c == SC_OTHERNUM ? "must be a decimal number" : "must be a number";
        cv_error(errs, path, n, "%s, got %s", what, cv_describe(n, got, sizeof got));
        return CV_BAD;
    }
    double v = c == SC_NONFINITE ? INFINITY : strtod(n->value, NULL);
    if (!isfinite(v)) {
        cv_error(errs, path, n, "must be a finite number, got %s", cv_describe(n, got, sizeof got));
        return CV_BAD;
    }
    if (!in_range(r, v)) {
        num_range_text(r, range, sizeof range);
        cv_error(errs, path, n, "must be a number %s, got %s", range, cv_describe(n, got, sizeof got));
        return CV_BAD;
    }
    *out = v;
    return CV_OK;
}

cv_result cv_bool(diag_list_t *errs, const ynode *n, const char *path, bool *out)
{
    bool v;
    if (n->kind == YNODE_SCALAR && n->plain && is_bool_word(n->value, &v)) {
        *out = v;
        return CV_OK;
    }
    char got[160];
    cv_error(errs, path, n, "must be true or false, got %s", cv_describe(n, got, sizeof got));
    return CV_BAD;
}

int cv_parse_bytes(const char *s, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -ERANGE;
    unsigned shift = 0;
    if (*end) {
        static const char units[] = "KMGTP";
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (!u || !*u)
            return -EINVAL;
        shift = 10u * (unsigned)(u - units + 1);
        end++;
        /* K, Ki, KB, KiB (any case) all mean 1024 */
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end)
            return -EINVAL;
    }
    if (v > SIZE_MAX || (shift && v > (SIZE_MAX >> shift)))
        return -ERANGE;
    *out = (size_t)(v << shift);
    return 0;
}

void cv_format_bytes(size_t bytes, char *buf, size_t size)
{
    static const char units[] = "PTGMK";
    for (int i = 0; i < 5; i++) {
        unsigned shift = 10u * (unsigned)(5 - i);
        size_t unit = (size_t)1 << shift;
        if (bytes >= unit && bytes % unit == 0) {
            snprintf(buf, size, "%zu%c", bytes >> shift, units[i]);
            return;
        }
    }
    snprintf(buf, size, "%zu", bytes);
}

cv_result cv_bytes(diag_list_t *errs, const ynode *n, const char *path, size_t lo, size_t hi, bool zero_ok,
                   size_t *out)
{
    char got[160];
    size_t v;
    if (n->kind != YNODE_SCALAR || !n->plain || yscalar_is_null(n) || cv_parse_bytes(n->value, &v) != 0) {
        if (n->kind == YNODE_SCALAR && n->plain && !yscalar_is_null(n)) {
            char text[128];
            cv_quote(n->value, n->len, text, sizeof text);
            snprintf(got, sizeof got, "\"%s\"", text);
        } else {
            cv_describe(n, got, sizeof got);
        }
        cv_error(errs, path, n, "must be a size in bytes, with an optional suffix K, M, G, T or P "
                 "(such as 512M or 8G), got %s", got);
        return CV_BAD;
    }
    if ((v < lo || v > hi) && !(zero_ok && v == 0)) {
        char a[32], b[32];
        cv_format_bytes(lo, a, sizeof a);
        cv_format_bytes(hi, b, sizeof b);
        cv_quote(n->value, n->len, got, sizeof got);    /* a size, as written: "1K" */
        cv_error(errs, path, n, "must be a size in %s..%s%s, got %s", a, b, zero_ok ? " (or 0 for no limit)" : "",
                 got);
        return CV_BAD;
    }
    *out = v;
    return CV_OK;
}

/* The closest name to s if it is close enough to be a likely typo. */
static const char *nearest(const char *s, const char *const *names, int n_names)
{
    size_t len = strlen(s), best_d = SIZE_MAX;
    const char *best = NULL;
    for (int i = 0; i < n_names; i++) {
        size_t d = cv_edit_distance(s, names[i], 8);
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    if (best && best_d < len && (best_d <= 2 || best_d <= len / 3))
        return best;
    return NULL;
}

cv_result cv_enum(diag_list_t *errs, const ynode *n, const char *path, const char *const *names,
                  int n_names, int *out)
{
    if (n->kind == YNODE_SCALAR && !yscalar_is_null(n))
        for (int i = 0; i < n_names; i++)
            if (strcmp(n->value, names[i]) == 0) {
                *out = i;
                return CV_OK;
            }
    char list[512] = "", got[160], hint[128] = "";
    for (int i = 0; i < n_names; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    }
    if (n->kind == YNODE_SCALAR && !yscalar_is_null(n)) {
        char text[128];
        cv_quote(n->value, n->len, text, sizeof text);
        snprintf(got, sizeof got, "\"%s\"", text);
        const char *near = nearest(n->value, names, n_names);
        if (near)
            snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
    } else {
        cv_describe(n, got, sizeof got);
    }
    cv_error(errs, path, n, "must be one of %s, got %s%s", list, got, hint);
    return CV_BAD;
}

cv_result cv_str(diag_list_t *errs, const ynode *n, const char *path, size_t max_len,
                 const char **out)
{
    char got[160];
    if (n->kind != YNODE_SCALAR || yscalar_is_null(n)) {
        cv_error(errs, path, n, "must be a string, got %s", cv_describe(n, got, sizeof got));
        return CV_BAD;
    }
    if (n->len == 0) {
        cv_error(errs, path, n, "must not be empty");
        return CV_BAD;
    }
    if (n->len > max_len) {
        cv_error(errs, path, n, "must be at most %zu characters long, got %zu", max_len, n->len);
        return CV_BAD;
    }
    for (size_t i = 0; i < n->len; i++) {
        unsigned char c = (unsigned char)n->value[i];
        if (c < 0x20 || c == 0x7f) {
            cv_error(errs, path, n, "must not contain control characters (0x%02X at byte %zu)", c, i + 1);
            return CV_BAD;
        }
    }
    *out = n->value;
    return CV_OK;
}

bool cv_list(diag_list_t *errs, const ynode *n, const char *path, size_t min, size_t max)
{
    char got[160];
    if (n->kind != YNODE_SEQ) {
        cv_error(errs, path, n, "must be a list, got %s", cv_describe(n, got, sizeof got));
        return false;
    }
    if (n->n >= min && n->n <= max)
        return true;
    if (min == max)
        cv_error(errs, path, n, "must have exactly %zu items, got %zu", min, n->n);
    else
        cv_error(errs, path, n, "must have %zu to %zu items, got %zu", min, max, n->n);
    return false;
}

/* ---- sections ---------------------------------------------------------- */

void cv_section_root(cv_section *s, diag_list_t *errs, const ynode *root)
{
    s->errs = errs;
    s->map = root;
    s->at = root;
    s->invalid = false;
    s->path[0] = '\0';
}

void cv_section_open(cv_section *s, const cv_section *parent, const char *name)
{
    const ynode *n = cv_get(parent, name);
    s->errs = parent->errs;
    cv_path_key(s->path, parent->path, name);
    s->map = NULL;
    s->at = n ? n : parent->at;
    s->invalid = parent->invalid;
    if (!n || yscalar_is_null(n))   /* "train:" with nothing under it = empty */
        return;
    if (n->kind == YNODE_MAP) {
        s->map = n;
        return;
    }
    char got[160];
    cv_error(s->errs, s->path, n, "must be a mapping of keys to values, got %s",
             cv_describe(n, got, sizeof got));
    s->invalid = true;
}

const ynode *cv_get(const cv_section *s, const char *key)
{
    return ymap_get(s->map, key);
}

void cv_missing(const cv_section *s, const char *key, const char *why)
{
    if (s->invalid)
        return;                 /* "must be a mapping" already says it all */
    char path[CV_PATH_MAX];
    cv_path_key(path, s->path, key);
    cv_error(s->errs, path, s->at, "required key is missing%s%s%s", why ? " (" : "", why ? why : "",
             why ? ")" : "");
}

/* The node of key in s and its path, or NULL: then *absent is what the
 * reader returns (a missing required key is reported). */
static const ynode *section_key(const cv_section *s, const char *key, bool required, char path[CV_PATH_MAX],
                                cv_result *absent)
{
    const ynode *n = cv_get(s, key);
    if (!n) {
        if (required)
            cv_missing(s, key, NULL);
        *absent = required ? CV_BAD : CV_ABSENT;
        return NULL;
    }
    cv_path_key(path, s->path, key);
    return n;
}

cv_result cv_get_int(const cv_section *s, const char *key, bool required, long long lo,
                     long long hi, long long *out)
{
    char path[CV_PATH_MAX];
    cv_result absent;
    const ynode *n = section_key(s, key, required, path, &absent);
    return n ? cv_int(s->errs, n, path, lo, hi, out) : absent;
}

cv_result cv_get_num(const cv_section *s, const char *key, bool required, cv_range r, double *out)
{
    char path[CV_PATH_MAX];
    cv_result absent;
    const ynode *n = section_key(s, key, required, path, &absent);
    return n ? cv_num(s->errs, n, path, r, out) : absent;
}

cv_result cv_get_bool(const cv_section *s, const char *key, bool *out)
{
    char path[CV_PATH_MAX];
    cv_result absent;
    const ynode *n = section_key(s, key, false, path, &absent);
    return n ? cv_bool(s->errs, n, path, out) : absent;
}

cv_result cv_get_enum(const cv_section *s, const char *key, bool required,
                      const char *const *names, int n_names, int *out)
{
    char path[CV_PATH_MAX];
    cv_result absent;
    const ynode *n = section_key(s, key, required, path, &absent);
    return n ? cv_enum(s->errs, n, path, names, n_names, out) : absent;
}

/* ---- key checks -------------------------------------------------------- */

size_t cv_edit_distance(const char *a, const char *b, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return cap + 1;
    size_t prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof *prev);
    }
    return prev[lb] > cap ? cap + 1 : prev[lb];
}

void cv_unknown_key(const cv_section *s, const ynode *key, const cv_key *keys, bool other_sections)
{
    const char *names[64];
    int n = 0;
    for (; keys[n].name && n < 64; n++)
        names[n] = keys[n].name;
    char text[128], path[CV_PATH_MAX], hint[320] = "";
    cv_quote(key->value, key->len, text, sizeof text);
    cv_path_key(path, s->path, text);
    const char *near = nearest(key->value, names, n);
    const char *home = near || !other_sections ? NULL : cfg_key_home(key->value);
    if (near)
        snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
    else if (home && !home[0])
        snprintf(hint, sizeof hint, " (did you mean the top-level key '%s'?)", text);
    else if (home && strcmp(home, s->path) != 0)
        snprintf(hint, sizeof hint, " (did you mean '%s.%s'?)", home, text);
    cv_error(s->errs, path, key, "unknown key '%s'%s", text, hint);
}

/* "linear and mlp", "step, multistep and exponential". */
static void join_types(unsigned mask, const char *const *type_names, char *buf, size_t size)
{
    int total = __builtin_popcount(mask), seen = 0;
    size_t used = 0;
    buf[0] = '\0';
    for (int t = 0; t < 32 && used < size; t++) {
        if (!(mask & CV_BIT(t)))
            continue;
        seen++;
        const char *sep = seen == 1 ? "" : seen == total ? " and " : ", ";
        int w = snprintf(buf + used, size - used, "%s%s", sep, type_names[t]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

void cv_check_keys(const cv_section *s, const cv_key *keys, int type, const char *const *type_names,
                   const char *type_what)
{
    if (!s->map)
        return;
    for (size_t i = 0; i < s->map->n; i++) {
        const ynode *key = s->map->keys[i];
        const cv_key *k = keys;
        while (k->name && strcmp(k->name, key->value) != 0)
            k++;
        if (!k->name) {
            cv_unknown_key(s, key, keys, true);
            continue;
        }
        if (type < 0 || k->types == 0 || (k->types & CV_BIT(type)))
            continue;
        char path[CV_PATH_MAX], users[256], hint[CV_PATH_MAX + 24] = "";
        cv_path_key(path, s->path, k->name);
        join_types(k->types, type_names, users, sizeof users);
        /* a key of another section too (optimizer.warmup_steps, the schedule's) */
        const char *home = cfg_key_home(k->name);
        if (home && home[0] && strcmp(home, s->path) != 0)
            snprintf(hint, sizeof hint, " (did you mean '%s.%s'?)", home, k->name);
        cv_error(s->errs, path, key, "%s is only used by %s%s %s, not %s%s", k->name, type_what,
                 __builtin_popcount(k->types) > 1 ? "s" : "", users, type_names[type], hint);
    }
}

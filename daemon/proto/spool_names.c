/* spool_names — the spool's naming rules, pure functions.  See traind/spool_names.h. */
#include "traind/spool_names.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* .YAML and .Yml are YAML too (files from systems that upper-case names) */
static bool ends_with_nocase(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

bool spool_name_is_temp(const char *filename)
{
    return filename[0] == '.' || ends_with(filename, ".tmp") || ends_with(filename, ".part");
}

bool spool_intake_name(const char *filename, char *stem, size_t stemlen)
{
    if (!filename[0] || spool_name_is_temp(filename))
        return false;
    size_t n = strlen(filename), ext;
    if (ends_with_nocase(filename, ".yaml"))
        ext = 5;
    else if (ends_with_nocase(filename, ".yml"))
        ext = 4;
    else
        return false;
    if (n == ext)
        return false;
    if (stem && stemlen > 0) {
        size_t k = n - ext < stemlen - 1 ? n - ext : stemlen - 1;
        memcpy(stem, filename, k);
        stem[k] = '\0';
    }
    return true;
}

static bool id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

void spool_sanitize_id(const char *stem, char *out)
{
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)stem;
    while (*p == '.')
        p++;
    for (; *p && k < SPOOL_ID_MAX; p++)
        out[k++] = id_char(*p) ? (char)*p : '_';
    out[k] = '\0';
    if (k == 0)
        strcpy(out, "job");
}

void spool_id_candidate(const char *base, unsigned k, char *out)
{
    if (k <= 1) {
        snprintf(out, SPOOL_ID_MAX + 1, "%s", base);
        return;
    }
    char suffix[16];
    int sl = snprintf(suffix, sizeof suffix, "-%u", k);
    size_t bl = strlen(base);
    if (bl + (size_t)sl > SPOOL_ID_MAX)
        bl = SPOOL_ID_MAX - (size_t)sl;
    memcpy(out, base, bl);
    memcpy(out + bl, suffix, (size_t)sl + 1);
}

bool spool_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SPOOL_ID_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!id_char((unsigned char)s[i]))
            return false;
    return true;
}

bool spool_idem_key_valid(const char *key)
{
    size_t n = 0;
    for (const char *p = key; *p; p++, n++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || n >= SPOOL_IDEM_KEY_MAX)
            return false;
    return n > 0;
}

/*
 * config_path — where a config's data.path really points.
 *
 * Under the daemon a config comes from anyone who can POST or drop a file,
 * so data.path is untrusted: "../../etc/shadow" or a symlink planted inside
 * a data dir must not let a job read outside the data_dirs the operator
 * allowed.  The only robust check is on the fully resolved path: realpath()
 * both the candidate and each allowed dir (following every symlink) and
 * require the first to be the second or below it, component-wise (so
 * /data2/x is not "under" /data).  Under trainctl the user runs their own
 * config, so only existence is checked, relative to the config's folder.
 *
 * A window remains between this check and the worker's open (a component
 * could be swapped for a symlink); callers should open exactly the returned,
 * already-resolved path, and data_dirs should be writable only by trusted
 * users.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "traind/config.h"
#include "traind/util.h"

static void __attribute__((format(printf, 3, 4)))
path_error(diag_list_t *errs, const run_config *cfg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(errs, "data.path", cfg->data.path_line, cfg->data.path_column, fmt, ap);
    va_end(ap);
}

/* Is path equal to dir or inside it?  Both are realpath()s. */
static bool path_is_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return true;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static bool inside_any(const char *real, char *const *dirs, int n)
{
    for (int i = 0; i < n; i++) {
        char *rd = realpath(dirs[i], NULL);
        bool ok = rd && path_is_under(real, rd);
        free(rd);
        if (ok)
            return true;
    }
    return false;
}

/* path with "." and ".." components and repeated slashes resolved as text
 * (path absolute), touching no file. */
static char *lexical_clean(const char *path)
{
    size_t n = strlen(path);
    char *out = xmalloc(n + 2);
    size_t len = 0;
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 0)
            break;
        if (cl == 1 && p[0] == '.') {
            /* nothing */
        } else if (cl == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--;   /* the slash before it */
        } else {
            out[len++] = '/';
            memcpy(out + len, p, cl);
            len += cl;
        }
        p += cl;
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    return out;
}

/* Whether the absolute path, as text, is inside a data dir (as given or
 * resolved: a data dir may itself be a symlink). */
static bool lexically_inside(const char *path, char *const *dirs, int n)
{
    char *clean = lexical_clean(path);
    bool ok = false;
    for (int i = 0; i < n && !ok; i++) {
        char *cd = lexical_clean(dirs[i]);
        char *rd = realpath(dirs[i], NULL);
        ok = path_is_under(clean, cd) || (rd && path_is_under(clean, rd));
        free(cd);
        free(rd);
    }
    free(clean);
    return ok;
}

/* Under the daemon the messages say nothing about the file system outside
 * the data_dirs: not whether a path there exists, nor where a symlink
 * points (the config's author may be anyone who can POST). */
static char *resolve_confined(const run_config *cfg, const char *joined, char *const *data_dirs, int n_dirs,
                              diag_list_t *errs)
{
    const char *p = cfg->data.path;
    if (joined[0] != '/' || !lexically_inside(joined, data_dirs, n_dirs)) {
        path_error(errs, cfg, "%s is outside data_dirs", p);
        return NULL;
    }
    char *real = realpath(joined, NULL);
    if (!real) {
        if (errno == ENOENT || errno == ENOTDIR)
            path_error(errs, cfg, "no such file in data_dirs: %s", p);
        else
            path_error(errs, cfg, "cannot resolve %s: %s", p, strerror(errno));
        return NULL;
    }
    if (!inside_any(real, data_dirs, n_dirs)) {
        path_error(errs, cfg, "%s leads outside data_dirs (through a symbolic link)", p);
        free(real);
        return NULL;
    }
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
        path_error(errs, cfg, "%s is not a regular file", p);
        free(real);
        return NULL;
    }
    return real;
}

char *cfg_resolve_data_path(const run_config *cfg, const char *base_dir, char *const *data_dirs,
                            int n_dirs, diag_list_t *errs)
{
    const char *p = cfg->data.path;
    if (!p)
        return NULL;
    const char *base = n_dirs > 0 ? data_dirs[0] : base_dir ? base_dir : ".";
    char *joined = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", base, p);
    if (n_dirs > 0) {
        char *real = resolve_confined(cfg, joined, data_dirs, n_dirs, errs);
        free(joined);
        return real;
    }
    char *real = realpath(joined, NULL);
    if (!real) {
        if (errno == ENOENT || errno == ENOTDIR)
            path_error(errs, cfg, "no such file: %s", joined);
        else
            path_error(errs, cfg, "cannot resolve %s: %s", joined, strerror(errno));
        free(joined);
        return NULL;
    }
    free(joined);
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
        path_error(errs, cfg, "%s is not a regular file", real);
        free(real);
        return NULL;
    }
    return real;
}

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
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    diag_add(errs, "data.path", cfg->data.path_line, cfg->data.path_column, "%s",
             msg ? msg : "out of memory");
    free(msg);
}

/* Is path equal to dir or inside it?  Both are realpath()s. */
static bool path_is_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return true;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* "a, b, c" of the resolved data dirs (unresolvable ones as given). */
static char *join_dirs(char *const *dirs, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(dirs[i]) + 2;
    char *out = xmalloc(len);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(out, ", ");
        strcat(out, dirs[i]);
    }
    return out;
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

char *cfg_resolve_data_path(const run_config *cfg, const char *base_dir, char *const *data_dirs,
                            int n_dirs, diag_list_t *errs)
{
    const char *p = cfg->data.path;
    if (!p)
        return NULL;
    const char *base = n_dirs > 0 ? data_dirs[0] : base_dir ? base_dir : ".";
    char *joined = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", base, p);
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
    if (n_dirs > 0 && !inside_any(real, data_dirs, n_dirs)) {
        char *dirs = join_dirs(data_dirs, n_dirs);
        path_error(errs, cfg, "resolves to %s, outside the allowed data_dirs: %s", real, dirs);
        free(dirs);
        free(real);
        return NULL;
    }
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
        path_error(errs, cfg, "%s is not a regular file", real);
        free(real);
        return NULL;
    }
    return real;
}

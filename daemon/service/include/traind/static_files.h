/*
 * static_files — the dashboard's files over HTTP (documented in traind(8)):
 *
 *   GET /                     <www_dir>/index.html
 *   GET /ui/<path>            <www_dir>/<path>
 *   GET /lib/chart.js/<path>  <chartjs_dir>/<path>   (Debian's libjs-chart.js)
 *
 * Every answer carries a Content-Type by extension, a strong ETag (inode,
 * size and mtime to the nanosecond) — If-None-Match with it is 304 — and
 * Cache-Control (no-cache for the page's own files, so an edit shows at the
 * next load; an hour for Chart.js).  Nothing outside the two folders can be
 * reached: the path is percent-decoded once (a NUL, a bad escape or invalid
 * UTF-8 is 404), every segment must be a plain name (no "", ".", ".." and no
 * dot files), and the file's realpath must still lie under the folder's
 * realpath (a symlink out is 404); only regular files up to
 * STATIC_MAX_FILE are served, never a listing.
 *
 * The file system is touched only on the thread pool: the answer is
 * deferred (http_response_defer) and given back on the loop thread.
 */
#ifndef TRAIND_STATIC_FILES_H
#define TRAIND_STATIC_FILES_H

#include <stdbool.h>
#include <uv.h>

#include "traind/http.h"

#define STATIC_MAX_FILE (8u << 20)
#define STATIC_DEFAULT_CHARTJS_DIR "/usr/share/javascript/chart.js"

typedef struct static_files static_files;

/* The folders (copied; NULL = that route answers 404).  loop NULL: files
 * are read inline (unit tests only). */
static_files *static_files_new(uv_loop_t *loop, const char *www_dir, const char *chartjs_dir);
/* New folders (SIGHUP); reads in flight finish with the old ones. */
void static_files_set_dirs(static_files *sf, const char *www_dir, const char *chartjs_dir);
void static_files_free(static_files *sf);

/* Whether path is one of the routes above ("/", "/ui/...", "/lib/chart.js/...").
 * sf may be NULL. */
bool static_files_is_route(const char *path);

/* Answers a request whose path is a route (static_files_is_route): 405 for
 * a method other than GET and HEAD, else the file (deferred) or 404. */
void static_files_handle(static_files *sf, const http_request *req, http_response *res);

/* The file a raw (still percent-encoded) path below root names, checked as
 * above: 0 with *out (malloc'd realpath, a regular file under root's
 * realpath), -ENOENT for anything that is not such a file.  Touches the
 * file system: call off the loop. */
int static_files_resolve(const char *root, const char *raw, char **out);

/* The Content-Type for a file name, by extension (static string). */
const char *static_files_type(const char *name);

#endif

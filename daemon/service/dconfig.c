/* dconfig — the daemon config file.  See traind/dconfig.h. */
#include "traind/dconfig.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "traind/util.h"
#include "traind/yamltree.h"

static const char *const known_keys[] = {
    "spool", "listen", "max_jobs", "threads_per_job", "data_dirs",
    "api_token_file", "metrics_keep", "max_restarts", "max_queued_jobs", "max_model_memory",
    "write_rate_per_client", "write_burst_per_client", "max_connections", "request_timeout_ms",
    "idle_timeout_ms", "max_job_disk", "allowed_hosts", "executor", "slurm", "max_trials",
    "www_dir", "chartjs_dir", "max_event_streams",
};
#define N_KNOWN (sizeof known_keys / sizeof known_keys[0])

void dconfig_init(dconfig *c)
{
    memset(c, 0, sizeof *c);
    c->listen = xstrdup(DCONFIG_DEFAULT_LISTEN);
    c->max_jobs = 1;
    c->threads_per_job = 1;
    c->metrics_keep = 100000;
    c->max_restarts = 0;
    c->max_queued_jobs = DCONFIG_DEFAULT_MAX_QUEUED_JOBS;
    c->max_trials = DCONFIG_DEFAULT_MAX_TRIALS;
    c->max_event_streams = DCONFIG_DEFAULT_MAX_EVENT_STREAMS;
    c->max_model_memory = DCONFIG_DEFAULT_MAX_MODEL_MEMORY;
    c->write_rate_per_client = DCONFIG_DEFAULT_WRITE_RATE;
    c->write_burst_per_client = 0;
    c->max_connections = DCONFIG_DEFAULT_MAX_CONNECTIONS;
    c->request_timeout_ms = DCONFIG_DEFAULT_REQUEST_TIMEOUT_MS;
    c->idle_timeout_ms = DCONFIG_DEFAULT_IDLE_TIMEOUT_MS;
    c->executor = DCONFIG_EXEC_LOCAL;
    c->slurm.signal_grace_s = DCONFIG_DEFAULT_SIGNAL_GRACE_S;
}

long dconfig_write_burst(const dconfig *c)
{
    if (c->write_burst_per_client > 0)
        return c->write_burst_per_client;
    double b = ceil(2.0 * c->write_rate_per_client);
    return b < 1 ? 1 : b > 1e9 ? 1000000000L : (long)b;
}

int dconfig_parse_size(const char *s, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    if (*end) {
        static const char units[] = "KMGTP";
        const char *u = strchr(units, (char)(*end >= 'a' && *end <= 'z' ? *end - 32 : *end));
        if (!u || !*u)
            return -1;
        shift = 10u * (unsigned)(u - units + 1);
        end++;
        /* K, Ki, KB, KiB (any case) all mean 1024 */
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end)
            return -1;
    }
    if (shift && v > (SIZE_MAX >> shift))
        return -1;
    if (v > SIZE_MAX)
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

static void free_dirs(dconfig *c)
{
    for (size_t i = 0; i < c->n_data_dirs; i++)
        free(c->data_dirs[i]);
    free(c->data_dirs);
    c->data_dirs = NULL;
    c->n_data_dirs = 0;
}

void dconfig_free(dconfig *c)
{
    free(c->spool);
    free(c->listen);
    free(c->api_token_file);
    free(c->www_dir);
    free(c->chartjs_dir);
    free(c->slurm.partition);
    free(c->slurm.account);
    free(c->slurm.time_limit);
    free(c->slurm.extra_args);
    free_dirs(c);
    strv_free(c->allowed_hosts, c->n_allowed_hosts);
    memset(c, 0, sizeof *c);
}

void dconfig_set_str(char **dst, const char *s)
{
    char *copy = s ? xstrdup(s) : NULL;
    free(*dst);
    *dst = copy;
}

void dconfig_set_data_dirs(dconfig *c, char *const *dirs, size_t n)
{
    char **copy = xcalloc(n ? n : 1, sizeof *copy);
    for (size_t i = 0; i < n; i++)
        copy[i] = xstrdup(dirs[i]);
    free_dirs(c);
    c->data_dirs = copy;
    c->n_data_dirs = n;
}

int dconfig_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    int prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof cur);
    }
    return prev[lb];
}

const char *dconfig_check_listen(const char *s)
{
    if (!s || !*s)
        return "must not be empty";
    if (strncmp(s, "unix:", 5) == 0) {
        if (s[5] == '\0')
            return "unix: needs a socket path";
        if (strlen(s + 5) >= 108)
            return "unix socket path is too long (107 bytes at most)";
        return NULL;
    }
    const char *colon = strrchr(s, ':');
    if (!colon)
        return "must be HOST:PORT, [IPV6]:PORT or unix:/PATH";
    if (s[0] == '[' ? (colon == s || colon[-1] != ']') : memchr(s, ':', (size_t)(colon - s)) != NULL)
        return "an IPv6 address must be written [ADDR]:PORT";
    const char *port = colon + 1;
    if (!*port)
        return "missing port after ':'";
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (*end || errno || p < 0 || p > 65535 || *port == '-' || *port == '+')
        return "port must be a number from 0 to 65535";
    return NULL;
}

/* A file with only comments, blank lines and document markers: all keys
 * are optional, so it means "all defaults" rather than an error. */
static bool only_comments(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\r'))
            j++;
        size_t eol = j;
        while (eol < len && buf[eol] != '\n')
            eol++;
        if (j < eol && buf[j] != '#') {
            size_t n = eol - j;
            while (n > 0 && (buf[j + n - 1] == ' ' || buf[j + n - 1] == '\t' || buf[j + n - 1] == '\r'))
                n--;
            if (!((n == 3 && (!memcmp(buf + j, "---", 3) || !memcmp(buf + j, "...", 3)))))
                return false;
        }
        i = eol + 1;
    }
    return true;
}

static bool get_int(const ynode *v, const char *key, long lo, long hi, long *out, diag_list_t *errs)
{
    if (v->kind != YNODE_SCALAR || !v->plain || !v->value[0]) {
        diag_add(errs, key, v->line, v->column, "must be an integer from %ld to %ld", lo, hi);
        return false;
    }
    char *end;
    errno = 0;
    long x = strtol(v->value, &end, 10);
    if (*end || errno) {
        diag_add(errs, key, v->line, v->column, "must be an integer from %ld to %ld, got \"%s\"",
                 lo, hi, v->value);
        return false;
    }
    if (x < lo || x > hi) {
        diag_add(errs, key, v->line, v->column, "must be an integer from %ld to %ld, got %ld",
                 lo, hi, x);
        return false;
    }
    *out = x;
    return true;
}

static bool get_number(const ynode *v, const char *key, double lo, double hi, double *out,
                       diag_list_t *errs)
{
    if (v->kind != YNODE_SCALAR || !v->plain || !v->value[0]) {
        diag_add(errs, key, v->line, v->column, "must be a number from %g to %g", lo, hi);
        return false;
    }
    char *end;
    errno = 0;
    double x = strtod(v->value, &end);
    /* decimal only: no "inf", "nan" or hex floats */
    bool decimal = strspn(v->value, "0123456789.eE+-") == strlen(v->value);
    if (*end || errno || !decimal || !isfinite(x)) {
        diag_add(errs, key, v->line, v->column, "must be a number from %g to %g, got \"%s\"", lo, hi, v->value);
        return false;
    }
    if (x < lo || x > hi) {
        diag_add(errs, key, v->line, v->column, "must be a number from %g to %g, got %s", lo, hi, v->value);
        return false;
    }
    *out = x;
    return true;
}

#define SIZE_MIN_BYTES ((size_t)1 << 20)
#define SIZE_MAX_BYTES ((size_t)1 << 50)

static bool get_size(const ynode *v, const char *key, size_t *out, diag_list_t *errs)
{
    size_t x;
    if (v->kind != YNODE_SCALAR || !v->plain || dconfig_parse_size(v->value, &x) != 0) {
        diag_add(errs, key, v->line, v->column,
                 "must be a size in bytes, with an optional suffix K, M, G, T (such as 512M or 8G)%s%s%s",
                 v->kind == YNODE_SCALAR ? ", got \"" : "", v->kind == YNODE_SCALAR ? v->value : "",
                 v->kind == YNODE_SCALAR ? "\"" : "");
        return false;
    }
    if (x < SIZE_MIN_BYTES || x > SIZE_MAX_BYTES) {
        diag_add(errs, key, v->line, v->column, "must be from 1M to 1P, got %s", v->value);
        return false;
    }
    *out = x;
    return true;
}

static bool get_str(const ynode *v, const char *key, char **dst, diag_list_t *errs)
{
    if (v->kind != YNODE_SCALAR || v->value[0] == '\0') {
        diag_add(errs, key, v->line, v->column, "must be a non-empty string");
        return false;
    }
    if (memchr(v->value, '\0', v->len)) {
        diag_add(errs, key, v->line, v->column, "must not contain NUL bytes");
        return false;
    }
    dconfig_set_str(dst, v->value);
    return true;
}

/* max_job_disk: a size (1M at least), or 0 for no limit. */
static void parse_job_disk(const ynode *v, dconfig *c, diag_list_t *errs)
{
    if (v->kind == YNODE_SCALAR && v->plain && strcmp(v->value, "0") == 0) {
        c->max_job_disk = 0;
        return;
    }
    get_size(v, "max_job_disk", &c->max_job_disk, errs);
}

/* allowed_hosts: a list of host names (or "*"), as the Host header may name
 * this daemon besides its listen address, localhost and IP literals. */
static void parse_allowed_hosts(const ynode *v, dconfig *c, diag_list_t *errs)
{
    if (v->kind != YNODE_SEQ) {
        diag_add(errs, "allowed_hosts", v->line, v->column, "must be a list of host names (or [\"*\"])");
        return;
    }
    char **hosts = xcalloc(v->n ? v->n : 1, sizeof *hosts);
    size_t n = 0;
    bool ok = true;
    for (size_t i = 0; i < v->n; i++) {
        char path[40];
        snprintf(path, sizeof path, "allowed_hosts[%zu]", i);
        char *h = NULL;
        if (!get_str(v->items[i], path, &h, errs)) {
            ok = false;
            continue;
        }
        if (strcspn(h, " \t/:@[]") != strlen(h) && strcmp(h, "*") != 0) {
            diag_add(errs, path, v->items[i]->line, v->items[i]->column,
                     "must be a host name without port or scheme, got \"%s\"", h);
            free(h);
            ok = false;
            continue;
        }
        hosts[n++] = h;
    }
    if (!ok) {
        strv_free(hosts, n);
        return;
    }
    strv_free(c->allowed_hosts, c->n_allowed_hosts);
    c->allowed_hosts = hosts;
    c->n_allowed_hosts = n;
}

static void parse_data_dirs(const ynode *v, dconfig *c, diag_list_t *errs)
{
    if (v->kind == YNODE_SCALAR) {
        /* A single directory written as a scalar is accepted as a list of one. */
        char *one = NULL;
        if (get_str(v, "data_dirs", &one, errs)) {
            dconfig_set_data_dirs(c, &one, 1);
            c->data_dirs_set = true;
        }
        free(one);
        return;
    }
    if (v->kind != YNODE_SEQ) {
        diag_add(errs, "data_dirs", v->line, v->column, "must be a list of directories");
        return;
    }
    if (v->n > DCONFIG_MAX_DATA_DIRS) {
        diag_add(errs, "data_dirs", v->line, v->column, "at most %d directories", DCONFIG_MAX_DATA_DIRS);
        return;
    }
    char **dirs = xcalloc(v->n ? v->n : 1, sizeof *dirs);
    bool ok = true;
    for (size_t i = 0; i < v->n; i++) {
        char path[32];
        snprintf(path, sizeof path, "data_dirs[%zu]", i);
        if (!get_str(v->items[i], path, &dirs[i], errs))
            ok = false;
    }
    if (ok) {
        dconfig_set_data_dirs(c, dirs, v->n);
        c->data_dirs_set = true;
    }
    for (size_t i = 0; i < v->n; i++)
        free(dirs[i]);
    free(dirs);
}

/* A value passed to sbatch as one argument: printable, no white space
 * (partition, account) — sbatch would misread anything else. */
static bool get_word(const ynode *v, const char *key, const char *allowed, char **dst, diag_list_t *errs)
{
    char *tmp = NULL;
    if (!get_str(v, key, &tmp, errs))
        return false;
    for (const char *p = tmp; *p; p++) {
        bool ok = allowed ? strchr(allowed, *p) != NULL : (*p > ' ' && *p < 0x7f);
        if (!ok) {
            diag_add(errs, key, v->line, v->column, "%s, got \"%s\"",
                     allowed ? "must be a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS)"
                             : "must be one word of printable characters",
                     tmp);
            free(tmp);
            return false;
        }
    }
    free(*dst);
    *dst = tmp;
    return true;
}

static void parse_slurm(const ynode *v, dconfig *c, diag_list_t *errs)
{
    static const char *const keys[] = {"partition", "account", "time_limit", "extra_args", "signal_grace_s"};
    if (v->kind != YNODE_MAP) {
        diag_add(errs, "slurm", v->line, v->column,
                 "must be a mapping (partition, account, time_limit, extra_args, signal_grace_s)");
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const ynode *k = v->keys[i], *x = v->items[i];
        const char *key = k->value ? k->value : "";
        char path[96];
        snprintf(path, sizeof path, "slurm.%.80s", key);
        size_t j = 0;
        while (j < sizeof keys / sizeof keys[0] && strcmp(key, keys[j]) != 0)
            j++;
        if (j == sizeof keys / sizeof keys[0]) {
            diag_add(errs, path, k->line, k->column,
                     "unknown key \"%s\" (known: partition, account, time_limit, extra_args, signal_grace_s)", key);
            continue;
        }
        if (x->kind == YNODE_SCALAR && yscalar_is_null(x))
            continue;
        long n;
        if (j == 0)
            get_word(x, path, NULL, &c->slurm.partition, errs);
        else if (j == 1)
            get_word(x, path, NULL, &c->slurm.account, errs);
        else if (j == 2)
            get_word(x, path, "0123456789:-", &c->slurm.time_limit, errs);
        else if (j == 3)
            get_str(x, path, &c->slurm.extra_args, errs);
        else if (get_int(x, path, 1, 65535, &n, errs))
            c->slurm.signal_grace_s = (int)n;
    }
}

int dconfig_parse(const char *buf, size_t len, dconfig *c, diag_list_t *errs)
{
    size_t before = errs->n;
    if (only_comments(buf, len))
        return 0;
    ynode *root = ytree_parse(buf, len, errs);
    if (!root) {
        if (errs->n == before)
            diag_add(errs, "", 0, 0, "cannot parse the daemon config");
        return -1;
    }
    if (root->kind == YNODE_SCALAR && yscalar_is_null(root)) {
        ytree_free(root);
        return 0;
    }
    if (root->kind != YNODE_MAP) {
        diag_add(errs, "", root->line, root->column,
                 "the daemon config must be a mapping of keys (spool, listen, max_jobs, ...)");
        ytree_free(root);
        return -1;
    }
    for (size_t i = 0; i < root->n; i++) {
        const ynode *k = root->keys[i], *v = root->items[i];
        const char *key = k->value ? k->value : "";
        bool known = false;
        for (size_t j = 0; j < N_KNOWN; j++)
            if (strcmp(key, known_keys[j]) == 0)
                known = true;
        if (!known) {
            const char *best = NULL;
            int bestd = 99;
            for (size_t j = 0; j < N_KNOWN; j++) {
                int d = dconfig_edit_distance(key, known_keys[j]);
                if (d < bestd) {
                    bestd = d;
                    best = known_keys[j];
                }
            }
            if (best && bestd <= 3 && bestd < (int)strlen(key))
                diag_add(errs, key, k->line, k->column, "unknown key \"%s\" (did you mean \"%s\"?)",
                         key, best);
            else {
                char list[512];
                size_t off = 0;
                for (size_t j = 0; j < N_KNOWN && off < sizeof list; j++)
                    off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", j ? ", " : "", known_keys[j]);
                diag_add(errs, key, k->line, k->column, "unknown key \"%s\" (known: %s)", key, list);
            }
            continue;
        }
        if (v->kind == YNODE_SCALAR && yscalar_is_null(v))
            continue;   /* "key:" with no value: keep the default */
        long x;
        if (!strcmp(key, "spool"))
            get_str(v, key, &c->spool, errs);
        else if (!strcmp(key, "listen")) {
            char *tmp = NULL;
            if (get_str(v, key, &tmp, errs)) {
                const char *why = dconfig_check_listen(tmp);
                if (why)
                    diag_add(errs, key, v->line, v->column, "%s, got \"%s\"", why, tmp);
                else
                    dconfig_set_str(&c->listen, tmp);
            }
            free(tmp);
        } else if (!strcmp(key, "max_jobs")) {
            if (get_int(v, key, 1, 1024, &x, errs))
                c->max_jobs = (int)x;
        } else if (!strcmp(key, "threads_per_job")) {
            if (get_int(v, key, 1, 1024, &x, errs))
                c->threads_per_job = (int)x;
        } else if (!strcmp(key, "data_dirs"))
            parse_data_dirs(v, c, errs);
        else if (!strcmp(key, "api_token_file"))
            get_str(v, key, &c->api_token_file, errs);
        else if (!strcmp(key, "metrics_keep")) {
            if (get_int(v, key, 2, 100000000L, &x, errs))
                c->metrics_keep = x;
        } else if (!strcmp(key, "max_restarts")) {
            if (get_int(v, key, 0, 1000, &x, errs))
                c->max_restarts = (int)x;
        } else if (!strcmp(key, "max_queued_jobs")) {
            if (get_int(v, key, 1, 1000000, &x, errs))
                c->max_queued_jobs = x;
        } else if (!strcmp(key, "www_dir") || !strcmp(key, "chartjs_dir")) {
            get_str(v, key, key[0] == 'w' ? &c->www_dir : &c->chartjs_dir, errs);
        } else if (!strcmp(key, "max_event_streams")) {
            if (get_int(v, key, 1, 100000, &x, errs))
                c->max_event_streams = (int)x;
        } else if (!strcmp(key, "max_trials")) {
            if (get_int(v, key, 1, 1000000, &x, errs))
                c->max_trials = x;
        } else if (!strcmp(key, "max_model_memory")) {
            get_size(v, key, &c->max_model_memory, errs);
        } else if (!strcmp(key, "write_rate_per_client")) {
            get_number(v, key, 0, 1000000, &c->write_rate_per_client, errs);
        } else if (!strcmp(key, "write_burst_per_client")) {
            if (get_int(v, key, 0, 1000000, &x, errs))
                c->write_burst_per_client = x;
        } else if (!strcmp(key, "max_connections")) {
            if (get_int(v, key, 1, 1000000, &x, errs))
                c->max_connections = (int)x;
        } else if (!strcmp(key, "request_timeout_ms")) {
            if (get_int(v, key, 100, 3600000, &x, errs))
                c->request_timeout_ms = (unsigned)x;
        } else if (!strcmp(key, "executor")) {
            if (v->kind == YNODE_SCALAR && !strcmp(v->value, "local"))
                c->executor = DCONFIG_EXEC_LOCAL;
            else if (v->kind == YNODE_SCALAR && !strcmp(v->value, "slurm"))
                c->executor = DCONFIG_EXEC_SLURM;
            else
                diag_add(errs, key, v->line, v->column, "must be local or slurm%s%s%s",
                         v->kind == YNODE_SCALAR ? ", got \"" : "", v->kind == YNODE_SCALAR ? v->value : "",
                         v->kind == YNODE_SCALAR ? "\"" : "");
        } else if (!strcmp(key, "slurm")) {
            parse_slurm(v, c, errs);
        } else if (!strcmp(key, "idle_timeout_ms")) {
            if (get_int(v, key, 100, 3600000, &x, errs))
                c->idle_timeout_ms = (unsigned)x;
        } else if (!strcmp(key, "max_job_disk")) {
            parse_job_disk(v, c, errs);
        } else if (!strcmp(key, "allowed_hosts")) {
            parse_allowed_hosts(v, c, errs);
        }
    }
    ytree_free(root);
    return errs->n == before ? 0 : -1;
}

int dconfig_load(const char *path, dconfig *c, diag_list_t *errs)
{
    char *buf;
    size_t len;
    int rc = read_file(path, YTREE_MAX_BYTES, &buf, &len);
    if (rc < 0) {
        diag_add(errs, "", 0, 0, "cannot read %s: %s", path,
                 rc == -EFBIG ? "larger than 1 MiB" : file_error_text(rc));
        return -1;
    }
    rc = dconfig_parse(buf, len, c, errs);
    free(buf);
    return rc;
}

static char *absolute(const char *p)
{
    if (p[0] == '/')
        return xstrdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return xstrdup(p);
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    if (!strcmp(p, "."))
        return xstrdup(cwd);
    return xasprintf("%s/%s", cwd, p);
}

static void make_abs(char **p)
{
    if (*p) {
        char *a = absolute(*p);
        free(*p);
        *p = a;
    }
}

void dconfig_finish(dconfig *c)
{
    if (!c->spool)
        c->spool = xstrdup(DCONFIG_DEFAULT_SPOOL);
    make_abs(&c->spool);
    /* strip trailing slashes (but keep "/") */
    size_t n = strlen(c->spool);
    while (n > 1 && c->spool[n - 1] == '/')
        c->spool[--n] = '\0';
    if (!c->api_token_file)
        c->api_token_file = xasprintf("%s/api.token", c->spool);
    make_abs(&c->api_token_file);
    if (!c->chartjs_dir)
        c->chartjs_dir = xstrdup(DCONFIG_DEFAULT_CHARTJS_DIR);
    make_abs(&c->chartjs_dir);
    if (c->www_dir)
        make_abs(&c->www_dir);
    if (!c->data_dirs_set && c->n_data_dirs == 0) {
        char *d = xasprintf("%s/data", c->spool);
        dconfig_set_data_dirs(c, &d, 1);
        free(d);
    }
    for (size_t i = 0; i < c->n_data_dirs; i++)
        make_abs(&c->data_dirs[i]);
}

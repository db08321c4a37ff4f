/*
 * dconfig — the daemon config file (traind.yaml(5), /etc/traind/traind.yaml),
 * read through one table of keys.  See traind/dconfig.h.
 *
 * Every key is one row of `keys` below (after redis's config.c table): its
 * name, its type, its bounds, its default, where it lives in struct dconfig
 * (an offset and a width) and whether a running daemon may take a new value
 * of it on SIGHUP.  Defaults (dconfig_init), parsing (dconfig_parse), the
 * reload's list of changed keys (dconfig_diff) and the keeping of keys that
 * cannot change at runtime (dconfig_keep_fixed) all walk that table, so a new
 * key is one row.
 *
 * The values are read by the run config's own readers (config_value.c:
 * cv_int, cv_num, cv_bytes, cv_str, cv_enum, cv_list, and cv_unknown_key for
 * the "did you mean" hint), so a daemon-config error reads like a run-config
 * error and points at the line and column of the offending node.  This file
 * lives in the core, beside those readers, because it is config work only (no
 * loop, no sockets): `trainctl validate --daemon-config` uses it without the
 * service.
 */
#include "traind/dconfig.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config_internal.h"
#include "traind/util.h"
#include "traind/yamltree.h"

/* ---- the table ---------------------------------------------------------- */

typedef enum {
    K_INT,      /* a decimal integer in lo..hi; an int or long/size_t field (by width) */
    K_NUM,      /* a decimal number in [lo, hi]; a double field */
    K_BYTES,    /* a size (512M, 8G) in lo..hi; a size_t field */
    K_STR,      /* a non-empty string; a char * field */
    K_ENUM,     /* one of names; an int-sized enum field */
    K_LIST,     /* a list of non-empty strings; a char ** field, its count at count_off */
} key_type;

enum {
    DK_FIXED = 1,        /* cannot change while traind runs (a SIGHUP keeps the old value) */
    DK_ZERO_OFF = 2,     /* K_BYTES: 0 is allowed and means "no limit" */
    DK_SCALAR_OK = 4,    /* K_LIST: one string written alone is a list of one */
};

typedef struct dkey {
    const char *name;            /* "max_jobs", or "slurm.partition" for a key of the slurm section */
    key_type type;
    size_t off, size;            /* the field in struct dconfig */
    long long lo, hi;            /* K_INT, K_BYTES: bounds; K_LIST: most items (hi) */
    double dlo, dhi;             /* K_NUM: bounds */
    double def;                  /* K_INT, K_NUM, K_BYTES, K_ENUM: the default */
    const char *def_str;         /* K_STR: the default (NULL = none, or derived by dconfig_finish) */
    const char *const *names;    /* K_ENUM: the values, in the enum's order */
    int n_names;
    const char *(*check)(const char *s);   /* K_STR, K_LIST items: why s is refused, or NULL */
    unsigned flags;
    size_t count_off;            /* K_LIST: the size_t count */
    size_t set_off;              /* K_LIST, K_BYTES: a bool set when the file gives the key (0 = none) */
} dkey;

#define F(field) .off = offsetof(dconfig, field), .size = sizeof(((dconfig *)0)->field)
#define INT(key, field, l, h, d, fl) {.name = key, .type = K_INT, F(field), .lo = l, .hi = h, .def = d, .flags = fl}
#define STR(key, field, d, chk, fl) {.name = key, .type = K_STR, F(field), .def_str = d, .check = chk, .flags = fl}

#define MiB ((long long)1 << 20)
#define PiB ((long long)1 << 50)

static const char *const executor_names[] = {"local", "slurm"};

static const char *check_word(const char *s);
static const char *check_slurm_time(const char *s);
static const char *check_host(const char *s);
static const char *check_path(const char *s);

static const dkey keys[] = {
    STR("spool", spool, NULL, NULL, DK_FIXED),
    STR("listen", listen, DCONFIG_DEFAULT_LISTEN, dconfig_check_listen, DK_FIXED),
    INT("max_jobs", max_jobs, 1, 1024, 1, 0),
    INT("threads_per_job", threads_per_job, 1, 1024, 1, 0),
    {.name = "data_dirs", .type = K_LIST, F(data_dirs), .hi = DCONFIG_MAX_DATA_DIRS, .flags = DK_SCALAR_OK,
     .count_off = offsetof(dconfig, n_data_dirs), .set_off = offsetof(dconfig, data_dirs_set)},
    STR("api_token_file", api_token_file, NULL, NULL, 0),
    INT("metrics_keep", metrics_keep, 2, 100000000, 100000, 0),
    INT("max_restarts", max_restarts, 0, 1000, 0, 0),
    INT("stall_timeout_s", stall_timeout_s, 0, 604800, DCONFIG_DEFAULT_STALL_TIMEOUT_S, 0),
    INT("max_queued_jobs", max_queued_jobs, 1, 1000000, DCONFIG_DEFAULT_MAX_QUEUED_JOBS, 0),
    /* experiments read it when the daemon starts (exps_new) */
    INT("max_trials", max_trials, 1, 1000000, DCONFIG_DEFAULT_MAX_TRIALS, DK_FIXED),
    INT("max_event_streams", max_event_streams, 1, 100000, DCONFIG_DEFAULT_MAX_EVENT_STREAMS, 0),
    INT("event_stream_timeout_ms", event_stream_timeout_ms, 100, 3600000, DCONFIG_DEFAULT_EVENT_STREAM_TIMEOUT_MS, 0),
    /* the dashboard's folders (static_files_set_dirs on SIGHUP) */
    STR("www_dir", www_dir, NULL, NULL, 0),
    STR("chartjs_dir", chartjs_dir, NULL, NULL, 0),
    {.name = "max_model_memory", .type = K_BYTES, F(max_model_memory), .lo = MiB, .hi = PiB,
     .def = (double)DCONFIG_DEFAULT_MAX_MODEL_MEMORY},
    {.name = "write_rate_per_client", .type = K_NUM, F(write_rate_per_client), .dlo = 0, .dhi = 1000000,
     .def = DCONFIG_DEFAULT_WRITE_RATE},
    INT("write_burst_per_client", write_burst_per_client, 0, 1000000, 0, 0),
    INT("max_connections", max_connections, 1, 1000000, DCONFIG_DEFAULT_MAX_CONNECTIONS, 0),
    INT("request_timeout_ms", request_timeout_ms, 100, 3600000, DCONFIG_DEFAULT_REQUEST_TIMEOUT_MS, 0),
    INT("idle_timeout_ms", idle_timeout_ms, 100, 3600000, DCONFIG_DEFAULT_IDLE_TIMEOUT_MS, 0),
    /* not given: the table's default, a share of the spool's file system
     * (dconfig_default_job_disk); given, 0 is no limit */
    {.name = "max_job_disk", .type = K_BYTES, F(max_job_disk), .lo = MiB, .hi = PiB, .def = 0,
     .flags = DK_ZERO_OFF, .set_off = offsetof(dconfig, max_job_disk_set)},
    {.name = "allowed_hosts", .type = K_LIST, F(allowed_hosts), .hi = 1024, .check = check_host,
     .count_off = offsetof(dconfig, n_allowed_hosts)},
    /* the executor is made once at start: a SIGHUP does not move running jobs */
    {.name = "executor", .type = K_ENUM, F(executor), .def = DCONFIG_EXEC_LOCAL, .names = executor_names,
     .n_names = 2, .flags = DK_FIXED},
    /* executor: local only; mpirun --hostfile for N-rank jobs (traind.yaml(5), mpi_hostfile) */
    STR("mpi_hostfile", mpi_hostfile, NULL, check_path, DK_FIXED),
    STR("slurm.partition", slurm.partition, NULL, check_word, DK_FIXED),
    STR("slurm.account", slurm.account, NULL, check_word, DK_FIXED),
    STR("slurm.time_limit", slurm.time_limit, NULL, check_slurm_time, DK_FIXED),
    STR("slurm.extra_args", slurm.extra_args, NULL, NULL, DK_FIXED),
    INT("slurm.signal_grace_s", slurm.signal_grace_s, 1, 65535, DCONFIG_DEFAULT_SIGNAL_GRACE_S, DK_FIXED),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* The one section of the file; its keys are the rows named "slurm.*". */
#define SLURM "slurm"

/* Integer fields are int-sized (int, unsigned, enums) or long-sized (long, size_t). */
_Static_assert(sizeof(long) == sizeof(long long) && sizeof(size_t) == sizeof(long long), "LP64");

static void *field(dconfig *c, const dkey *k)
{
    return (char *)c + k->off;
}

static const void *cfield(const dconfig *c, const dkey *k)
{
    return (const char *)c + k->off;
}

static void set_int(dconfig *c, const dkey *k, long long v)
{
    if (k->size == sizeof(int)) {
        int x = (int)v;
        memcpy(field(c, k), &x, sizeof x);
    } else {
        memcpy(field(c, k), &v, sizeof v);
    }
}

static long long get_int(const dconfig *c, const dkey *k)
{
    if (k->size == sizeof(int)) {
        int x;
        memcpy(&x, cfield(c, k), sizeof x);
        return x;
    }
    long long v;
    memcpy(&v, cfield(c, k), sizeof v);
    return v;
}

static char **str_field(dconfig *c, const dkey *k)
{
    return (char **)field(c, k);
}

static size_t *count_field(dconfig *c, const dkey *k)
{
    return (size_t *)((char *)c + k->count_off);
}

static void set_list(dconfig *c, const dkey *k, char **items, size_t n)
{
    char ***list = (char ***)field(c, k);
    strv_free(*list, *count_field(c, k));
    *list = items;
    *count_field(c, k) = n;
    if (k->set_off)
        *(bool *)((char *)c + k->set_off) = true;
}

/* ---- string checks ------------------------------------------------------- */

/* partition, account: passed to sbatch as one argument, which would misread
 * white space or control characters. */
static const char *check_word(const char *s)
{
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return "must be one word of printable characters";
    return NULL;
}

static const char *check_slurm_time(const char *s)
{
    if (strspn(s, "0123456789:-") != strlen(s))
        return "must be a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS)";
    return NULL;
}

/* mpi_hostfile: one argument of mpirun, a file name without control characters. */
static const char *check_path(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            return "must be a file name without control characters";
    return NULL;
}

/* allowed_hosts: names as the Host header may give them, or "*". */
static const char *check_host(const char *s)
{
    if (strcmp(s, "*") != 0 && strcspn(s, " \t/:@[]") != strlen(s))
        return "must be a host name without port or scheme (or \"*\")";
    return NULL;
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

/* ---- defaults, copies, frees ------------------------------------------- */

void dconfig_init(dconfig *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_KEYS; i++) {
        const dkey *k = &keys[i];
        switch (k->type) {
        case K_INT:
        case K_BYTES:
        case K_ENUM:
            set_int(c, k, (long long)k->def);
            break;
        case K_NUM:
            memcpy(field(c, k), &k->def, sizeof(double));
            break;
        case K_STR:
            *str_field(c, k) = k->def_str ? xstrdup(k->def_str) : NULL;
            break;
        case K_LIST:
            break;
        }
    }
}

void dconfig_free(dconfig *c)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const dkey *k = &keys[i];
        if (k->type == K_STR)
            free(*str_field(c, k));
        else if (k->type == K_LIST)
            strv_free(*(char ***)field(c, k), *count_field(c, k));
    }
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
    strv_free(c->data_dirs, c->n_data_dirs);
    c->data_dirs = copy;
    c->n_data_dirs = n;
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
    return cv_parse_bytes(s, out) == 0 ? 0 : -1;
}

int dconfig_edit_distance(const char *a, const char *b)
{
    return (int)cv_edit_distance(a, b, 98);
}

/* ---- parsing ------------------------------------------------------------- */

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

/* One string: cv_str, then the key's own check. */
static bool read_string(diag_list_t *errs, const ynode *n, const char *path, const dkey *k, const char **out)
{
    if (cv_str(errs, n, path, PATH_MAX, out) != CV_OK)
        return false;
    const char *why = k->check ? k->check(*out) : NULL;
    if (why) {
        char text[128];
        cv_quote(n->value, n->len, text, sizeof text);
        cv_error(errs, path, n, "%s, got \"%s\"", why, text);
        return false;
    }
    return true;
}

/* A list is taken whole or not at all (every bad item is reported). */
static void read_list(diag_list_t *errs, const ynode *n, const char *path, const dkey *k, dconfig *c)
{
    const char *one;
    if (n->kind == YNODE_SCALAR && (k->flags & DK_SCALAR_OK)) {
        if (read_string(errs, n, path, k, &one)) {
            char **items = xcalloc(1, sizeof *items);
            items[0] = xstrdup(one);
            set_list(c, k, items, 1);
        }
        return;
    }
    if (!cv_list(errs, n, path, 0, (size_t)k->hi))
        return;
    char **items = xcalloc(n->n ? n->n : 1, sizeof *items);
    bool ok = true;
    for (size_t i = 0; i < n->n; i++) {
        char item_path[CV_PATH_MAX];
        cv_path_index(item_path, path, i);
        if (read_string(errs, n->items[i], item_path, k, &one))
            items[i] = xstrdup(one);
        else
            ok = false;
    }
    if (ok)
        set_list(c, k, items, n->n);
    else
        strv_free(items, n->n);
}

static void read_key(diag_list_t *errs, const ynode *n, const char *path, const dkey *k, dconfig *c)
{
    long long i;
    double d;
    size_t b;
    int e;
    const char *s;
    switch (k->type) {
    case K_INT:
        if (cv_int(errs, n, path, k->lo, k->hi, &i) == CV_OK)
            set_int(c, k, i);
        break;
    case K_NUM:
        if (cv_num(errs, n, path, (cv_range){k->dlo, k->dhi, false, false}, &d) == CV_OK)
            memcpy(field(c, k), &d, sizeof d);
        break;
    case K_BYTES:
        if (cv_bytes(errs, n, path, (size_t)k->lo, (size_t)k->hi, k->flags & DK_ZERO_OFF, &b) == CV_OK) {
            set_int(c, k, (long long)b);
            if (k->set_off)
                *(bool *)((char *)c + k->set_off) = true;
        }
        break;
    case K_ENUM:
        if (cv_enum(errs, n, path, k->names, k->n_names, &e) == CV_OK)
            set_int(c, k, e);
        break;
    case K_STR:
        if (read_string(errs, n, path, k, &s))
            dconfig_set_str(str_field(c, k), s);
        break;
    case K_LIST:
        read_list(errs, n, path, k, c);
        break;
    }
}

/* The row of key in section ("" = the top level), or NULL. */
static const dkey *find_key(const char *section, const char *key)
{
    size_t sl = strlen(section);
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *name = keys[i].name;
        if (sl ? (strncmp(name, section, sl) == 0 && name[sl] == '.' && strcmp(name + sl + 1, key) == 0)
               : (strchr(name, '.') == NULL && strcmp(name, key) == 0))
            return &keys[i];
    }
    return NULL;
}

/* The key names of a section, for "did you mean": the top level also names
 * the slurm section itself. */
static void section_keys(const char *section, cv_key out[N_KEYS + 2])
{
    size_t n = 0, sl = strlen(section);
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *name = keys[i].name, *dot = strchr(name, '.');
        if (sl ? (dot && (size_t)(dot - name) == sl && strncmp(name, section, sl) == 0) : !dot)
            out[n++] = (cv_key){sl ? dot + 1 : name, 0};
    }
    if (!sl)
        out[n++] = (cv_key){SLURM, 0};
    out[n] = (cv_key){NULL, 0};
}

/* Reads every key of the section s (file order), reporting unknown ones. */
static void read_section(const cv_section *s, const char *section, dconfig *c)
{
    if (!s->map)
        return;
    cv_key names[N_KEYS + 2];
    section_keys(section, names);
    for (size_t i = 0; i < s->map->n; i++) {
        const ynode *key = s->map->keys[i], *v = s->map->items[i];
        if (!section[0] && strcmp(key->value, SLURM) == 0)
            continue;               /* read as a section by the caller */
        const dkey *k = find_key(section, key->value);
        if (!k) {
            cv_unknown_key(s, key, names, false);
            continue;
        }
        if (yscalar_is_null(v))
            continue;               /* "key:" with no value keeps the default */
        char path[CV_PATH_MAX];
        cv_path_key(path, s->path, key->value);
        read_key(s->errs, v, path, k, c);
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
        char got[160];
        cv_error(errs, "", root, "the daemon config must be a mapping of keys to values, got %s",
                 cv_describe(root, got, sizeof got));
        ytree_free(root);
        return -1;
    }
    cv_section top, slurm;
    cv_section_root(&top, errs, root);
    read_section(&top, "", c);
    cv_section_open(&slurm, &top, SLURM);
    read_section(&slurm, SLURM, c);
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
    make_abs(&c->www_dir);
    make_abs(&c->mpi_hostfile);
    if (!c->data_dirs_set && c->n_data_dirs == 0) {
        char *d = xasprintf("%s/data", c->spool);
        dconfig_set_data_dirs(c, &d, 1);
        free(d);
    }
    for (size_t i = 0; i < c->n_data_dirs; i++)
        make_abs(&c->data_dirs[i]);
}

size_t dconfig_default_job_disk(unsigned long long fs_bytes)
{
    if (fs_bytes == 0)
        return DCONFIG_FALLBACK_JOB_DISK;
    unsigned long long share = fs_bytes / 10, floor = fs_bytes / 2 < (1ULL << 30) ? fs_bytes / 2 : (1ULL << 30);
    unsigned long long d = share > floor ? share : floor;
    if (d < (1ULL << 20))
        d = 1ULL << 20;   /* the least max_job_disk takes */
    return (size_t)d;
}

/* ---- reload: what changed, and what may ---------------------------------- */

#define VALUE_TEXT_MAX 512

/* The value of key k in c as the file would write it (lists "[a, b]",
 * truncated with "..." past VALUE_TEXT_MAX); malloc'd. */
static char *value_text(const dconfig *c, const dkey *k)
{
    char buf[64];
    switch (k->type) {
    case K_INT:
        return xasprintf("%lld", get_int(c, k));
    case K_NUM: {
        double d;
        memcpy(&d, cfield(c, k), sizeof d);
        return xasprintf("%.15g", d);
    }
    case K_BYTES:
        if (k->set_off && !*(const bool *)((const char *)c + k->set_off))
            return xstrdup("(default)");   /* max_job_disk: worked out by the daemon at start */
        cv_format_bytes((size_t)get_int(c, k), buf, sizeof buf);
        return xstrdup(buf);
    case K_ENUM: {
        long long e = get_int(c, k);
        return xstrdup(e >= 0 && e < k->n_names ? k->names[e] : "?");
    }
    case K_STR: {
        const char *s = *(char *const *)cfield(c, k);
        return xstrdup(s ? s : "(none)");
    }
    case K_LIST: {
        char *const *items = *(char **const *)cfield(c, k);
        size_t n = *(const size_t *)((const char *)c + k->count_off);
        char *out = xmalloc(VALUE_TEXT_MAX + 8);
        size_t used = 0;
        out[used++] = '[';
        for (size_t i = 0; i < n; i++) {
            int w = snprintf(out + used, VALUE_TEXT_MAX - used, "%s%s", i ? ", " : "", items[i]);
            if (w < 0 || used + (size_t)w >= VALUE_TEXT_MAX) {
                used = VALUE_TEXT_MAX;
                memcpy(out + used, "...", 3);
                used += 3;
                break;
            }
            used += (size_t)w;
        }
        out[used++] = ']';
        out[used] = '\0';
        return out;
    }
    }
    return xstrdup("?");
}

size_t dconfig_diff(const dconfig *running, const dconfig *next, dconfig_change **out)
{
    dconfig_change *ch = NULL;
    size_t n = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        char *was = value_text(running, &keys[i]), *now = value_text(next, &keys[i]);
        if (strcmp(was, now) == 0) {
            free(was);
            free(now);
            continue;
        }
        ch = xrealloc(ch, (n + 1) * sizeof *ch);
        ch[n++] = (dconfig_change){keys[i].name, was, now, (keys[i].flags & DK_FIXED) != 0};
    }
    *out = ch;
    return n;
}

void dconfig_changes_free(dconfig_change *ch, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ch[i].was);
        free(ch[i].now);
    }
    free(ch);
}

size_t dconfig_n_keys(void)
{
    return N_KEYS;
}

const char *dconfig_key_name(size_t i)
{
    return i < N_KEYS ? keys[i].name : NULL;
}

bool dconfig_key_reloads(size_t i)
{
    return i < N_KEYS && !(keys[i].flags & DK_FIXED);
}

void dconfig_keep_fixed(dconfig *next, const dconfig *running)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const dkey *k = &keys[i];
        if (!(k->flags & DK_FIXED))
            continue;
        switch (k->type) {
        case K_STR:
            dconfig_set_str(str_field(next, k), *(char *const *)cfield(running, k));
            break;
        case K_LIST: {
            size_t n = *(const size_t *)((const char *)running + k->count_off);
            set_list(next, k, strv_dup(*(char **const *)cfield(running, k), n), n);
            break;
        }
        default:
            memcpy(field(next, k), cfield(running, k), k->size);
            break;
        }
    }
}

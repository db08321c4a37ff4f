/*
 * dconfig — the daemon config of traind.yaml(5) (/etc/traind/traind.yaml).
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
 *
 * On SIGHUP the daemon reads the file again into a new dconfig, logs
 * dconfig_diff()'s list of changed keys, and dconfig_keep_fixed() puts back
 * the keys that cannot change while it runs (spool, listen, max_trials,
 * executor, slurm.*).  The messages are the run config's (config_value.c).
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

/* Defaults of the limits (traind.yaml(5) and man/traind.yaml.5). */
#define DCONFIG_DEFAULT_MAX_QUEUED_JOBS 1000L
#define DCONFIG_DEFAULT_MAX_TRIALS 1000L
#define DCONFIG_DEFAULT_MAX_EVENT_STREAMS 64
#define DCONFIG_DEFAULT_EVENT_STREAM_TIMEOUT_MS 30000
#define DCONFIG_DEFAULT_CHARTJS_DIR "/usr/share/javascript/chart.js"
#define DCONFIG_DEFAULT_MAX_MODEL_MEMORY ((size_t)8 << 30)
#define DCONFIG_DEFAULT_WRITE_RATE 20.0
#define DCONFIG_DEFAULT_MAX_CONNECTIONS 1024
#define DCONFIG_DEFAULT_REQUEST_TIMEOUT_MS 10000
#define DCONFIG_DEFAULT_IDLE_TIMEOUT_MS 30000
#define DCONFIG_DEFAULT_STALL_TIMEOUT_S 120

/* Where jobs run (traind.yaml(5) EXECUTOR): forked here, or handed to Slurm. */
typedef enum { DCONFIG_EXEC_LOCAL, DCONFIG_EXEC_SLURM } dconfig_executor;

#define DCONFIG_DEFAULT_SIGNAL_GRACE_S 60

/* executor: slurm — what sbatch is given (traind/executor_slurm.h). */
typedef struct dconfig_slurm {
    char *partition;         /* --partition; NULL = the cluster's default */
    char *account;           /* --account; NULL = none */
    char *time_limit;        /* --time, in Slurm's own format ("30", "2:00:00", "1-12"); NULL = the partition's */
    char *extra_args;        /* more sbatch options, split at white space (no quoting); NULL = none */
    int signal_grace_s;      /* --signal=B:TERM@this: seconds before the time limit; 1..65535, default 60 */
} dconfig_slurm;

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
    int stall_timeout_s;     /* a running job silent this long (at least) is killed as crashed; 0 = never;
                              * default 120 (traind.yaml(5), stall_timeout_s) */

    /* limits (reloaded by SIGHUP, but max_trials) */
    long max_queued_jobs;          /* jobs waiting (state queued) at most; 1..1000000, default 1000 */
    long max_trials;               /* trials per experiment (sweep) at most; 1..1000000, default 1000;
                                    * read at start only */
    int max_event_streams;         /* GET /events streams open at once; 1..100000, default 64 */
    unsigned event_stream_timeout_ms;   /* a stream whose client took nothing this long while output waited
                                         * is dropped; 100..3600000, default 30000 */

    /* the dashboard (static_files.h) */
    char *www_dir;                 /* NULL: <traind's folder>/../share/traind/www (as installed) */
    char *chartjs_dir;             /* default /usr/share/javascript/chart.js (libjs-chart.js) */
    size_t max_model_memory;       /* bytes a model may need (cfg_parse_opts.max_model_bytes), default 8 GiB */
    double write_rate_per_client;  /* POSTs per second per client address; 0 = unlimited; default 20 */
    long write_burst_per_client;   /* token-bucket depth; 0 = twice the rate (at least 1), default 0 */
    int max_connections;           /* open HTTP connections; 1..1000000, default 1024 */
    unsigned request_timeout_ms;   /* a request not complete this long after its first byte is closed */
    unsigned idle_timeout_ms;      /* a keep-alive connection with no request this long is closed */
    size_t max_job_disk;           /* bytes a job's directory may take; 0 = no limit; when not
                                    * max_job_disk_set, the daemon's default (dconfig_default_job_disk) */
    bool max_job_disk_set;         /* given by the file */
    char **allowed_hosts;          /* Host header names allowed besides the listen host, localhost and IP
                                    * literals; "*" = any (the check is off) */
    size_t n_allowed_hosts;

    /* executor (read at start only: a SIGHUP does not move running jobs) */
    dconfig_executor executor;     /* default local */
    dconfig_slurm slurm;
    char *mpi_hostfile;            /* executor local: Open MPI's hostfile for N-rank jobs (ranks on other
                                    * hosts, progress through the job folder); NULL = this host only */
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

/* The token-bucket depth in effect: write_burst_per_client, or twice the
 * rate (at least 1) when that is 0. */
long dconfig_write_burst(const dconfig *c);

/* max_job_disk when the file does not give it, for a spool file system of
 * fs_bytes (its size when the daemon starts; 0 = not known): a tenth of it,
 * but at least 1 GiB or half of it, whichever is less (a small disk still
 * holds a long run's history and checkpoints), and at least 1 MiB.  One
 * runaway job (log_every: 1, a checkpoint kept at every step) is stopped
 * long before the spool is full and every job fails with it. */
#define DCONFIG_FALLBACK_JOB_DISK ((size_t)10 << 30)   /* the size not known: 10 GiB */
size_t dconfig_default_job_disk(unsigned long long fs_bytes);

/* Parses a byte size: a whole number with an optional binary suffix K, M, G,
 * T or P (also written Ki/KiB/KB..., any case; 1K = 1024).  Returns 0 with
 * *out, or -1 (not a size, or over SIZE_MAX). */
int dconfig_parse_size(const char *s, size_t *out);

/* Checks a listen address: "HOST:PORT", "[V6]:PORT" or "unix:/PATH".
 * Returns NULL when fine, else a static message. */
const char *dconfig_check_listen(const char *s);

/* Levenshtein distance (case-insensitive), used for "did you mean" hints. */
int dconfig_edit_distance(const char *a, const char *b);

/* One key whose value differs between two configs (dconfig_diff). */
typedef struct dconfig_change {
    const char *key;       /* "max_jobs", "slurm.partition" (static) */
    char *was, *now;       /* the values as the file writes them ("8G", "[/a, /b]"), malloc'd */
    bool fixed;            /* cannot change while traind runs */
} dconfig_change;

/* The keys whose values differ between running and next, in the table's
 * order.  Returns their number; *out (NULL when none) is freed with
 * dconfig_changes_free. */
size_t dconfig_diff(const dconfig *running, const dconfig *next, dconfig_change **out);
void dconfig_changes_free(dconfig_change *ch, size_t n);

/* Sets every key of next that cannot change at runtime back to its value in
 * running, so that next can replace running. */
void dconfig_keep_fixed(dconfig *next, const dconfig *running);

/* The table's keys, for lists that must not drift from it (the SIGHUP
 * paragraph of traind.yaml(5) is checked against these by test_dconfig):
 * name of key i < dconfig_n_keys(), and whether a SIGHUP applies it (true)
 * or keeps the running value until the next start (false). */
size_t dconfig_n_keys(void);
const char *dconfig_key_name(size_t i);
bool dconfig_key_reloads(size_t i);

#endif

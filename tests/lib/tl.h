/*
 * tl — helpers for tests that drive the real traind: temp dirs, starting and
 * stopping the daemon on a spool, and a tiny blocking HTTP/1.1 client over
 * plain sockets (one request per connection, "Connection: close").
 */
#ifndef TRAIND_TESTS_TL_H
#define TRAIND_TESTS_TL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

/* ---- running ---- */

struct Suite;
/* Runs a Check suite (CK_NORMAL output) and returns its number of failed tests. */
int tl_run_suite(struct Suite *s);

/* ---- files ---- */

/* mkdtemp("/tmp/PREFIX-XXXXXX"); malloc'd path. */
char *tl_tmpdir(const char *prefix);
/* rm -rf (best effort). */
void tl_rmtree(const char *path);
/* Writes text to path (atomically). Returns 0 or -errno. */
int tl_write(const char *path, const char *text);
/* Whole file, malloc'd, NULL when it cannot be read. */
char *tl_read(const char *path, size_t *len);

/* ---- the daemon ---- */

typedef struct tl_daemon {
    pid_t pid;
    char *spool;
    char addr[128];      /* "127.0.0.1:PORT" */
    char token[128];
    char *log;           /* the daemon's stderr file */
} tl_daemon;

/* The traind binary: $TRAIND_BUILD/traind (default build/traind). */
const char *tl_traind_path(void);

/* Starts traind on spool (created if missing) listening on 127.0.0.1:0,
 * with extra arguments (NULL-terminated, may be NULL), stderr appended to
 * <spool>/daemon.log; waits (up to timeout_s) for <spool>/traind.addr.
 * Returns 0, or -1 when it did not come up (the log tells why). */
int tl_daemon_start(tl_daemon *d, const char *spool, const char *const *extra_args, double timeout_s);

/* Options of tl_daemon_start_opts (zero = the default). */
typedef struct tl_start_opts {
    unsigned long long fsize_limit;   /* RLIMIT_FSIZE of the daemon (its children inherit it); 0 = none */
    const char *log_path;             /* the daemon's stderr; NULL = <spool>/daemon.log */
} tl_start_opts;

/* tl_daemon_start with options (o may be NULL). */
int tl_daemon_start_opts(tl_daemon *d, const char *spool, const char *const *extra_args, double timeout_s,
                         const tl_start_opts *o);

/* Sends sig and waits up to timeout_s for the daemon to exit.  Returns its
 * wait status, or -1 on timeout (it is then SIGKILLed and reaped). */
int tl_daemon_stop(tl_daemon *d, int sig, double timeout_s);

/* The daemon's log (its stderr) so far, malloc'd ("" when unreadable). */
char *tl_daemon_log(const tl_daemon *d);
/* Polls the daemon's log every 20 ms until it holds needle or timeout_s
 * passes; whether it did. */
bool tl_log_wait(const tl_daemon *d, const char *needle, double timeout_s);
/* How many times needle occurs in text (NULL text: 0). */
int tl_count_in(const char *text, const char *needle);

/* Frees what start allocated (the spool path is kept by the caller). */
void tl_daemon_free(tl_daemon *d);

/* The trainctl binary: $TRAIND_BUILD/trainctl (default build/trainctl). */
const char *tl_trainctl_path(void);

/* Runs argv (argv[0] a path) with stdin /dev/null and stdout + stderr
 * written to out_path (NULL: /dev/null), waiting up to timeout_s (then it is
 * SIGKILLed).  Returns its exit code, 128 + the signal that ended it, or -1. */
int tl_run(const char *const *argv, const char *out_path, double timeout_s);

/* metrics.jsonl text without the "time" field of each line (wall clock
 * differs between runs); malloc'd. */
char *tl_strip_time(const char *text);

/* Whether a process exists (kill(pid, 0)). */
bool tl_pid_alive(pid_t pid);

/* ---- HTTP ---- */

typedef struct tl_resp {
    int status;          /* 0 when no answer could be read */
    char *body;          /* NUL-terminated, malloc'd */
    size_t len;
    char *head;          /* the status line and headers ("...\r\n" each), malloc'd */
} tl_resp;

/* The value of the first header called name (case-insensitive) in r->head,
 * malloc'd, or NULL. */
char *tl_header(const tl_resp *r, const char *name);

void tl_resp_free(tl_resp *r);

/* One request: method, path, optional bearer token, optional body. */
int tl_http(const char *addr, const char *method, const char *path, const char *token,
            const char *body, size_t body_len, tl_resp *out);

/* Sends raw bytes (a whole request as the test wants it, however broken),
 * then reads until the server closes or timeout_ms passes. */
int tl_http_raw(const char *addr, const void *req, size_t len, int timeout_ms, tl_resp *out);

/* GET path as JSON (NULL unless 2xx and JSON); *status gets the code. */
cJSON *tl_get_json(const char *addr, const char *path, int *status);

/* Polls GET /jobs/ID every 20 ms until pred(job) is true or timeout_s passes;
 * returns the job object that satisfied it (caller frees) or NULL. */
cJSON *tl_wait_job(const char *addr, const char *id, bool (*pred)(const cJSON *job, void *arg),
                   void *arg, double timeout_s);

/* Common predicates. arg: a state name. */
bool tl_job_in_state(const cJSON *job, void *state);
/* arg: a const long * minimum step; also true once the job has ended. */
bool tl_job_at_step(const cJSON *job, void *min_step);
bool tl_job_ended(const cJSON *job, void *unused);
/* arg: a const long * minimum checkpoint_step (<= 0: any).  True while the
 * job is running with a worker pid, past step 0, and checkpointed that far. */
bool tl_job_running_with(const cJSON *job, void *min_ckpt);

/* Field helpers. */
double tl_num(const cJSON *o, const char *key);      /* NAN when absent/not a number */
const char *tl_str(const cJSON *o, const char *key); /* NULL when absent */

double tl_now(void);
void tl_sleep_ms(int ms);

#endif

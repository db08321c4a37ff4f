/*
 * tl — helpers for tests that drive the real traind, shared by every suite:
 * temp dirs and files, starting and stopping the daemon on a spool and
 * reading its log (tl.c), one blocking HTTP/1.1 client over plain sockets
 * (tl_http.c), and jobs over the API: submit, wait, errors, incoming/
 * (tl_jobs.c).  A test file keeps only what is its own.
 */
#ifndef TRAIND_TESTS_TL_H
#define TRAIND_TESTS_TL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <check.h>
#include <cjson/cJSON.h>

/* ---- running ---- */

/* Runs a Check suite (CK_NORMAL output) and returns its number of failed tests. */
int tl_run_suite(Suite *s);

/* One check by name: TL_TEST=NAME runs only the check of that name (the
 * START_TEST name) in whichever suite has it, e.g.
 *     TL_TEST=second_daemon_refused build/tests/test_reliability
 *     make test TL_TEST=second_daemon_refused    (every suite; the rest run none)
 * Every suite registers its checks with tcase_add_test, which expands to
 * _tcase_add_test: that one name is redirected here, so no suite has to
 * know about the filter. */
void tl_tcase_add_test(TCase *tc, const TTest *tt, int signal, int allowed_exit, int start, int end);

/* A failure's message is cut to TL_MSG_MAX bytes (the whole of it goes to
 * stderr): Check refuses a longer one (4 KiB, CK_MAX_MSG_SIZE) by exiting
 * the test process with 2, "Early exit with return value 2", and the
 * message, a daemon's log that said why, was lost.  Raising Check's limit
 * instead costs every passing assertion (its location message is sized by
 * it: test_job_index 0.2 s -> 9.9 s). */
#define TL_MSG_MAX 3000
void tl_ck_assert_failed(const char *file, int line, const char *expr, const char *msg, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
#define _ck_assert_failed(...) tl_ck_assert_failed(__VA_ARGS__)
#define _tcase_add_test(tc, tt, sig, ex, s, e) tl_tcase_add_test((tc), (tt), (sig), (ex), (s), (e))

/* How this run is slowed: a check that trains sizes its work by these, so
 * that it takes about the same seconds in every build (make check's
 * AddressSanitizer trains about four times slower, Valgrind fifty). */
#if defined(__SANITIZE_ADDRESS__)
#define TL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TL_ASAN 1
#endif
#endif
#ifndef TL_ASAN
#define TL_ASAN 0
#endif
/* Under Valgrind (make valgrind)? */
bool tl_under_valgrind(void);

/* Skips the running check: prints "SKIPPED CHECK: why" (stdout, flushed),
 * which scripts/run-tests.sh counts as one skipped check and takes off the
 * passed ones (Check itself sees the check return and count it as passed).
 * Call it, then return, inside a START_TEST body.  A suite
 * that leaves checks out before it runs prints "SKIPPED: N checks: why"
 * instead (tl_skip_checks): those were never registered, so never passed. */
void tl_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tl_skip_checks(int n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- files ---- */

/* mkdtemp("/tmp/PREFIX-XXXXXX"); malloc'd path. */
char *tl_tmpdir(const char *prefix);
/* rm -rf (best effort). */
void tl_rmtree(const char *path);
/* The same for a path under prefix only (tl_nodes: /var/tmp/traind-nodes-). */
void tl_rmtree_under(const char *path, const char *prefix);
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

/* The per-test fixture of the integration suites: a fresh temp dir
 * (/tmp/PREFIX-XXXXXX) and a daemon not started yet; and at the end the
 * daemon killed if still there, freed, and the dir removed. */
void tl_fixture_begin(char **dir, tl_daemon *d, const char *prefix);
void tl_fixture_end(char **dir, tl_daemon *d);

/* tl_daemon_start on <dir>/spool, failing the test with the daemon's log
 * when it does not come up. */
void tl_start_in(tl_daemon *d, const char *dir, const char *const *extra_args, double timeout_s);
/* When d runs: SIGTERM, and fail the test (with the log's tail) unless it
 * exits 0 within timeout_s (a clean stop; under ASan, no leak either). */
void tl_stop_clean(tl_daemon *d, double timeout_s);

/* The daemon's log (its stderr: d->log, else <spool>/daemon.log) so far,
 * malloc'd ("" when unreadable). */
char *tl_daemon_log(const tl_daemon *d);
/* Polls the daemon's log every 20 ms until it holds needle or timeout_s
 * passes; whether it did. */
bool tl_log_wait(const tl_daemon *d, const char *needle, double timeout_s);
/* The same for one line holding a, and b unless NULL. */
bool tl_log_line_wait(const tl_daemon *d, const char *a, const char *b, double timeout_s);
/* tl_log_line_wait, failing the test with the log's tail when no such line came. */
void tl_assert_log(const tl_daemon *d, const char *a, const char *b, double timeout_s);
/* How many times needle occurs in the daemon's log so far. */
int tl_log_count(const tl_daemon *d, const char *needle);
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

/* <spool>/jobs/ID/metrics.jsonl through tl_strip_time; fails the test when
 * it cannot be read. */
char *tl_job_metrics(const char *spool, const char *id);
/* <dir>/metrics.jsonl (a run directory's) through tl_strip_time; fails the
 * test when it cannot be read. */
char *tl_dir_metrics(const char *dir);

/* Whether a process exists (kill(pid, 0)). */
bool tl_pid_alive(pid_t pid);

/* ---- processes through /proc, and a tmpfs (tl_proc.c) ---- */

/* The pids whose parent is ppid and that are not zombies; at most max. */
int tl_children_of(pid_t ppid, pid_t *out, int max);
/* Whether pid is gone (or a zombie nobody can run). */
bool tl_proc_gone(pid_t pid);
/* tl_proc_gone, waiting up to timeout_s for it. */
bool tl_proc_gone_within(pid_t pid, double timeout_s);
/* utime + stime of pid in seconds, or NAN. */
double tl_proc_cpu_seconds(pid_t pid);
/* Mounts a tmpfs of size_kib on dir in a new mount namespace of this
 * process (what it starts inherits it); false, with the check skipped
 * (tl_skip, naming check), where that is not allowed. */
bool tl_mount_tmpfs(const char *dir, unsigned size_kib, const char *check);

/* ---- HTTP (tl_http.c) ---- */

typedef struct tl_resp {
    int status;          /* 0 when no answer could be read; -1 (tl_conn_read) when it was not HTTP */
    char *body;          /* NUL-terminated, malloc'd */
    size_t len;
    char *head;          /* the status line and headers ("...\r\n" each), malloc'd */
} tl_resp;

/* The value of the first header called name (case-insensitive) in r->head,
 * malloc'd, or NULL. */
char *tl_header(const tl_resp *r, const char *name);

void tl_resp_free(tl_resp *r);

/* One request: method, path, optional bearer token, optional body.
 * Returns 0 when an answer came (r->status), else -1. */
int tl_http(const char *addr, const char *method, const char *path, const char *token,
            const char *body, size_t body_len, tl_resp *out);

/* Sends raw bytes (a whole request as the test wants it, however broken),
 * then reads until the server closes or timeout_ms passes. */
int tl_http_raw(const char *addr, const void *req, size_t len, int timeout_ms, tl_resp *out);

/* A connection held open: keep-alive, pipelining, slow or broken clients. */
typedef struct tl_conn {
    int fd;
    char *p;             /* bytes read and not yet taken by tl_conn_read */
    size_t len, cap;
    bool eof;
} tl_conn;

/* A TCP connection to "HOST:PORT" (IPv4); the fd, or -1 with errno. */
int tl_dial(const char *addr);
/* Writes all n bytes (no SIGPIPE). Returns 0 or -1. */
int tl_send_all(int fd, const void *buf, size_t n);
/* The next whole answer on c (head: it answers a HEAD, so no body), within
 * timeout_ms; bytes past it stay for the next call.  Returns its status, 0
 * when the connection ended or the time ran out first, -1 when the bytes are
 * not HTTP. */
int tl_conn_read(tl_conn *c, bool head, int timeout_ms, tl_resp *out);
/* Closes c's fd and frees its buffer. */
void tl_conn_close(tl_conn *c);
/* req on a fresh connection (failing the test if it cannot connect), one
 * whole answer read as by tl_conn_read. */
int tl_oneshot(const char *addr, const void *req, size_t len, bool head, tl_resp *out);
/* Whether the server ends the connection (EOF or reset) within ms; bytes it
 * sends meanwhile are read and dropped (counted in *got if given). */
bool tl_closed_within(int fd, int ms, size_t *got);

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

/* ---- jobs over the API (tl_jobs.c) ---- */

/* POST /jobs: body (len bytes) with token (NULL: none); the answer in *r.
 * Returns tl_http's answer. */
int tl_post_job(const tl_daemon *d, const char *token, const char *body, size_t len, tl_resp *r);
/* POST path with body (NUL-terminated) and token (NULL: none); the answer's
 * body in *out (malloc'd, "" when none) when out is not NULL.  Returns the
 * status (0 when no answer came). */
int tl_post(const tl_daemon *d, const char *path, const char *token, const char *body, char **out);
/* POST /jobs with d's token; fails the test unless it answers 201 with an
 * id.  Returns the new job's id, malloc'd. */
char *tl_submit(const tl_daemon *d, const char *body);
/* GET /jobs/ID (NULL unless 2xx). */
cJSON *tl_get_job(const tl_daemon *d, const char *id);
/* tl_wait_job on d that fails the test (with the log) if traind dies
 * meanwhile (d->pid is then 0); NULL on timeout. */
cJSON *tl_wait_job_of(tl_daemon *d, const char *id, bool (*pred)(const cJSON *job, void *arg), void *arg,
                      double timeout_s);
/* Waits for the job to be in state; fails the test otherwise, showing the
 * job as it is now and the daemon log's tail.  The job, caller frees. */
cJSON *tl_wait_state(tl_daemon *d, const char *id, const char *state, double timeout_s);
/* Waits for the job to run with a worker, past step 0 and checkpointed at
 * min_ckpt or later (tl_job_running_with); fails the test otherwise. */
cJSON *tl_wait_running(tl_daemon *d, const char *id, long min_ckpt, double timeout_s);
/* Whether an entry of the job's errors[] has a message containing a (and b,
 * unless NULL). */
bool tl_job_has_error(const cJSON *job, const char *a, const char *b);
/* Drops a file into <spool>/incoming/NAME as a client would: written beside
 * it, then renamed in; age_s > 0 back-dates it that many seconds. */
void tl_drop(const char *spool, const char *name, const char *text, double age_s);

/* Field helpers (tl.c). */
double tl_num(const cJSON *o, const char *key);      /* NAN when absent/not a number */
const char *tl_str(const cJSON *o, const char *key); /* NULL when absent */

double tl_now(void);
void tl_sleep_ms(int ms);

#endif

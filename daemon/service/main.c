/*
 * traind — the training daemon: main, flags, and the wiring of the loop.
 *
 *   traind [--config FILE] [--spool DIR] [--listen ADDR] [--max-jobs N] [--threads N]
 *
 * Start-up, in order: the daemon config (file, then flags), the spool's lock
 * (one daemon per spool: spool_lock.h; a second one exits before touching
 * anything), the spool layout and API token, the job table read back from disk (queued and interrupted
 * jobs are queued again), the HTTP server, the intake of incoming/, and
 * finally READY=1 to systemd.  Everything then happens on one libuv loop;
 * training happens in one child process per job (`traind --worker ...`,
 * see traind/worker.h), so the loop never computes and never waits for a disk.
 *
 * Signals: SIGTERM/SIGINT stop intake, let every training process
 * checkpoint (bounded wait), close HTTP and exit 0, the jobs staying queued
 * for the next start; SIGHUP re-reads the config file and the token, applies
 * every key of dconfig.c's table but those marked DK_FIXED (traind.yaml(5)
 * lists both kinds; test_dconfig checks that list against the table), logs
 * each key that changed (old -> new), and keeps and names the fixed ones
 * that changed until the next start.  The file and the token are
 * read on the thread pool (reload_work): a FIFO or a hung mount there must
 * not stop the loop.
 *
 * Limits: POST /jobs past max_queued_jobs waiting jobs is answered 429 and
 * intake leaves files in incoming/ until there is room; writes past a
 * client's write rate are answered 429 (rate_limit.h's rate_limit, keyed by the
 * peer address and whether the token was valid); connections past
 * max_connections get a 503 (http.c); a Host header that does not name this
 * daemon gets a 403 (hostcheck.h).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "traind/api.h"
#include "traind/dconfig.h"
#include "traind/events.h"
#include "traind/hostcheck.h"
#include "traind/http.h"
#include "traind/jobs.h"
#include "traind/json.h"
#include "traind/forks.h"
#include "traind/experiments.h"
#include "traind/log.h"
#include "traind/notify.h"
#include "traind/laws.h"
#include "traind/lrfind_job.h"
#include "traind/preview.h"
#include "traind/spool.h"
#include "traind/spool_lock.h"
#include "traind/static_files.h"
#include "traind/util.h"
#include "traind/mpilaunch.h"
#include "traind/worker.h"

#define SHUTDOWN_TIMEOUT_S 30.0

static const char usage_text[] =
    "usage: traind [--config FILE] [--spool DIR] [--listen ADDR] [--max-jobs N] [--threads N]\n"
    "              [--www-dir DIR]\n"
    "\n"
    "The training daemon: trains the run configs dropped into SPOOL/incoming/ or POSTed to\n"
    "/jobs, one training process per job, and answers over HTTP (see traind(8)).\n"
    "\n"
    "  --config FILE    daemon config (default " DCONFIG_DEFAULT_PATH " when it exists)\n"
    "  --spool DIR      job directory (default " DCONFIG_DEFAULT_SPOOL ")\n"
    "  --listen ADDR    HOST:PORT, [IPV6]:PORT or unix:/PATH (default " DCONFIG_DEFAULT_LISTEN ");\n"
    "                   port 0 picks a free port and writes it to SPOOL/traind.addr\n"
    "  --max-jobs N     jobs training at once (default 1)\n"
    "  --threads N      compute threads per job (default 1)\n"
    "  --www-dir DIR    the dashboard's files (default ../share/traind/www beside traind)\n"
    "  --help, --version\n"
    "\n"
    "Flags override the config file.  SIGHUP re-reads it; SIGTERM/SIGINT checkpoint every\n"
    "running job and exit (they resume at the next start).\n";

/* What the command line set; re-applied over the file on every (re)load. */
typedef struct flags {
    const char *config;
    const char *spool;
    const char *listen;
    int max_jobs;       /* 0 = not given */
    int threads;
    const char *www_dir;
} flags;

typedef struct daemon_state {
    uv_loop_t *loop;
    flags fl;
    const char *config_path;    /* the file in use, or NULL */
    dconfig cfg;
    char token[256];
    double started;
    job_table *jobs;
    exp_table *exps;
    spool *sp;
    http_server *http;
    static_files *files;
    api_backend api;
    rate_limit *write_limit;
    uv_signal_t sig_term, sig_int, sig_hup;
    char *addr_file;
    bool stopping;
    int lock_fd;                /* <spool>/traind.lock, held until exit */
    bool reloading;             /* a SIGHUP's reload is on the thread pool */
    bool reload_again;          /* another SIGHUP came meanwhile */
    const char *exe;            /* our own binary (self_exe), for the processes we start */
    lrfind_jobs *lrf;           /* POST /lr-find's running tests */
    lrfind_ctx lr_finds;        /* the API's context of POST /lr-find */
    preview_ctx previews;       /* the API's context of POST /validate and /schedule */
    laws_table *laws;           /* loss-curve laws (POST /laws...) */
    char *laws_dir;             /* <spool>/laws */
} daemon_state;

/* ------------------------------------------------------------ the config */

static void print_diags(const char *file, const diag_list_t *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        const diag_t *d = &errs->items[i];
        if (d->line > 0)
            log_error("%s:%d:%d: %s%s%s", file, d->line, d->column, d->path, d->path[0] ? ": " : "",
                      d->message);
        else
            log_error("%s: %s%s%s", file, d->path, d->path[0] ? ": " : "", d->message);
    }
}

/* mpi_hostfile (traind.yaml(5)): a file mpirun can read, and for the local
 * executor only (under Slurm, Slurm places the ranks).  0, or -1 logged. */
static int check_hostfile(const char *file, const dconfig *c)
{
    if (!c->mpi_hostfile)
        return 0;
    if (c->executor != DCONFIG_EXEC_LOCAL) {
        log_error("%s: mpi_hostfile: only for executor: local (under executor: slurm, Slurm places the ranks; "
                  "leave mpi_hostfile out)", file ? file : "config");
        return -1;
    }
    if (access(c->mpi_hostfile, R_OK) != 0) {
        log_error("%s: mpi_hostfile: cannot read %s: %s", file ? file : "config", c->mpi_hostfile,
                  strerror(errno));
        return -1;
    }
    return 0;
}

/* Defaults, then the file, then the flags.  Returns 0 or -1 (errors logged). */
static int load_config(const flags *fl, const char *path, dconfig *out)
{
    dconfig c;
    dconfig_init(&c);
    if (path) {
        diag_list_t errs = DIAG_LIST_INIT;
        if (dconfig_load(path, &c, &errs) != 0) {
            print_diags(path, &errs);
            diag_free(&errs);
            dconfig_free(&c);
            return -1;
        }
        diag_free(&errs);
    }
    if (fl->spool)
        dconfig_set_str(&c.spool, fl->spool);
    if (fl->listen)
        dconfig_set_str(&c.listen, fl->listen);
    if (fl->max_jobs > 0)
        c.max_jobs = fl->max_jobs;
    if (fl->threads > 0)
        c.threads_per_job = fl->threads;
    if (fl->www_dir)
        dconfig_set_str(&c.www_dir, fl->www_dir);
    dconfig_finish(&c);
    if (check_hostfile(path, &c) != 0) {
        dconfig_free(&c);
        return -1;
    }
    *out = c;
    return 0;
}

static int parse_count(const char *flag, const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 1 || v > 1024) {
        fprintf(stderr, "traind: %s must be a number from 1 to 1024, got \"%s\"\n", flag, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_flags(int argc, char **argv, flags *fl)
{
    enum { OPT_CONFIG = 256, OPT_SPOOL, OPT_LISTEN, OPT_MAX_JOBS, OPT_THREADS, OPT_WWW_DIR, OPT_HELP, OPT_VERSION };
    static const struct option opts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"spool", required_argument, NULL, OPT_SPOOL},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"max-jobs", required_argument, NULL, OPT_MAX_JOBS},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"www-dir", required_argument, NULL, OPT_WWW_DIR},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_CONFIG: fl->config = optarg; break;
        case OPT_SPOOL: fl->spool = optarg; break;
        case OPT_LISTEN: {
            const char *why = dconfig_check_listen(optarg);
            if (why) {
                fprintf(stderr, "traind: --listen: %s, got \"%s\"\n", why, optarg);
                return 2;
            }
            fl->listen = optarg;
            break;
        }
        case OPT_MAX_JOBS:
            if (parse_count("--max-jobs", optarg, &fl->max_jobs))
                return 2;
            break;
        case OPT_THREADS:
            if (parse_count("--threads", optarg, &fl->threads))
                return 2;
            break;
        case OPT_WWW_DIR: fl->www_dir = optarg; break;
        case 'h':
        case OPT_HELP: fputs(usage_text, stdout); return 0;
        case OPT_VERSION: printf("traind %s\n", TRAIND_VERSION); return 0;
        default:
            if (optopt && optopt < 256)
                fprintf(stderr, "traind: unknown or incomplete option -%c\n", optopt);
            else
                fprintf(stderr, "traind: unknown option or missing value: %s\n", argv[optind - 1]);
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "traind: unexpected argument \"%s\"\n", argv[optind]);
        fputs(usage_text, stderr);
        return 2;
    }
    return -1;   /* go on */
}

/* --------------------------------------------------------- the API's side */

/* Jobs waiting, counting POSTs still being saved (each may become one). */
static long queued_jobs(const daemon_state *d)
{
    int c[JOB_NSTATES];
    jobs_counts(d->jobs, c);
    return c[JOB_QUEUED] + jobs_submitting(d->jobs);
}

static long be_queued(void *ctx)
{
    return queued_jobs(ctx);
}

/* The admission of every new queued job (jobs_set_admission): below
 * max_queued_jobs, and a scan of incoming/ in flight shares the room left
 * with us. */
static bool admit_room(void *ctx)
{
    daemon_state *d = ctx;
    return queued_jobs(d) < d->cfg.max_queued_jobs && spool_reserve(d->sp);
}

/* How many files the next scan of incoming/ may take. */
static long spool_room(void *ctx)
{
    daemon_state *d = ctx;
    long room = d->cfg.max_queued_jobs - queued_jobs(d);
    return room > 0 ? room : 0;
}

static bool be_host_allowed(void *ctx, const char *host)
{
    daemon_state *d = ctx;
    return host_allowed(host, d->cfg.listen, d->cfg.allowed_hosts, d->cfg.n_allowed_hosts);
}

static const char *be_token(void *ctx)
{
    return ((daemon_state *)ctx)->token;
}

static double be_uptime(void *ctx)
{
    return now_monotonic() - ((daemon_state *)ctx)->started;
}

static void be_prom_extra(void *ctx, prom_buf *b)
{
    daemon_state *d = ctx;
    prom_family(b, "traind_http_connections", "gauge", "Open HTTP connections (max_connections at most).");
    prom_sample(b, "traind_http_connections", NULL, d->http ? http_server_conn_count(d->http) : 0);
    prom_family(b, "traind_event_streams", "gauge", "Open GET /events streams (max_event_streams at most).");
    prom_sample(b, "traind_event_streams", NULL, events_stream_count());
    prom_family(b, "traind_event_streams_dropped_total", "counter",
                "GET /events streams dropped for not reading (over their output cap, stalled past "
                "event_stream_timeout_ms, or behind the ring).");
    prom_sample(b, "traind_event_streams_dropped_total", NULL, (double)events_dropped());
    prom_family(b, "traind_event_streams_evicted_total", "counter",
                "Token-less GET /events streams closed to make room for a token holder's.");
    prom_sample(b, "traind_event_streams_evicted_total", NULL, (double)events_evicted());
    prom_family(b, "traind_event_points_coalesced_total", "counter",
                "Metrics points not pushed to GET /events because their job logged faster than its rate.");
    prom_sample(b, "traind_event_points_coalesced_total", NULL, (double)events_points_coalesced());
}

/* ------------------------------------------------------------- wiring */

static void on_jobs_changed(void *ctx)
{
    daemon_state *d = ctx;
    int c[JOB_NSTATES];
    jobs_counts(d->jobs, c);
    notify_status("%d running, %d queued, %d done", c[JOB_RUNNING], c[JOB_QUEUED],
                  c[JOB_SUCCEEDED] + c[JOB_FAILED] + c[JOB_CANCELLED] + c[JOB_REJECTED] + c[JOB_STOPPED]);
    /* files held in incoming/ for a full queue: take them as room frees up */
    if (d->sp && spool_holding(d->sp) && c[JOB_QUEUED] < d->cfg.max_queued_jobs)
        spool_rescan(d->sp);
    /* an ended trial makes room for the next of its experiment */
    exps_poke(d->exps);
}

static void http_opts_from(const dconfig *c, http_server_opts *o)
{
    http_server_opts_default(o);
    o->max_conns = (unsigned)c->max_connections;
    o->request_timeout_ms = c->request_timeout_ms;
    o->idle_timeout_ms = c->idle_timeout_ms;
    o->expect = api_expect;
}

/* Every connection is a file descriptor: raise the soft RLIMIT_NOFILE (to
 * the hard limit at most) so that max_connections fit, with room for the
 * listener, the spool, and the pipes of the training processes. */
static void raise_nofile(const dconfig *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)c->max_connections + 64 + 8 * (rlim_t)c->max_jobs;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        if (rl.rlim_cur > old && setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = old;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
        log_warn("max_connections %d needs about %llu file descriptors but only %llu are allowed (LimitNOFILE=, "
                 "ulimit -n): connections past that are refused",
                 c->max_connections, (unsigned long long)want, (unsigned long long)rl.rlim_cur);
}

/* An experiment dropped into incoming/: submitted as POST /experiments
 * would be, under a key that names the file, and removed from incoming/
 * once it is on disk (201, or 400: a rejected experiment keeps its errors).
 * Anything else (shutting down, the disk) leaves the file for the next
 * scan or start; the key makes a second submit of it the same experiment. */
typedef struct incoming_exp {
    uv_loop_t *loop;
    char *path;
    char *name;
} incoming_exp;

static void on_incoming_unlinked(uv_fs_t *req)
{
    incoming_exp *x = req->data;
    if (req->result < 0 && req->result != UV_ENOENT)
        log_error("incoming/%s: cannot remove it: %s", x->name, uv_strerror((int)req->result));
    uv_fs_req_cleanup(req);
    free(req);
    free(x->path);
    free(x->name);
    free(x);
}

static void on_incoming_exp_done(void *arg, int rc, cJSON *doc)
{
    incoming_exp *x = arg;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const char *eid = cJSON_IsString(id) ? id->valuestring : "?";
    if (rc == API_OK || rc == API_INVALID) {
        if (rc == API_OK)
            log_info("experiment %s: submitted from incoming/%s", eid, x->name);
        else
            log_warn("experiment %s: from incoming/%s: rejected", eid, x->name);
        uv_fs_t *req = xcalloc(1, sizeof *req);
        req->data = x;
        cJSON_Delete(doc);
        if (uv_fs_unlink(x->loop, req, x->path, on_incoming_unlinked) < 0) {
            free(req);
            free(x->path);
            free(x->name);
            free(x);
        }
        return;
    }
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    log_warn("incoming/%s: the experiment was not taken (%s%s%s); left there for a later scan", x->name,
             strerror(-rc), cJSON_IsString(err) ? ": " : "", cJSON_IsString(err) ? err->valuestring : "");
    cJSON_Delete(doc);
    free(x->path);
    free(x->name);
    free(x);
}

static void on_intake(void *ctx, spool_intake *it)
{
    daemon_state *d = ctx;
    if (it->experiment) {
        incoming_exp *x = xcalloc(1, sizeof *x);
        x->loop = d->loop;
        x->path = xasprintf("%s/incoming/%s", d->cfg.spool, it->source);
        x->name = xstrdup(it->source);
        if (d->stopping)
            on_incoming_exp_done(x, API_UNAVAILABLE, NULL);
        else
            exps_submit(d->exps, it->yaml, it->yaml_len, it->idem_key, 0, on_incoming_exp_done, x);
        spool_intake_free(it);
        return;
    }
    jobs_add_intake(d->jobs, it);
}

static void on_http_closed(void *arg)
{
    daemon_state *d = arg;
    d->http = NULL;
    log_info("HTTP server closed");
}

static void on_jobs_stopped(void *arg)
{
    daemon_state *d = arg;
    log_info("every job is stopped and saved");
    events_stop();   /* the streams end (flushed) with the rest of the connections */
    if (d->http)
        http_server_stop(d->http, on_http_closed, d);
    if (d->addr_file) {
        unlink(d->addr_file);
        free(d->addr_file);
        d->addr_file = NULL;
    }
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
    notify_close();
}

static void on_spool_closed(void *arg)
{
    (void)arg;
}

static void begin_shutdown(daemon_state *d, int signum)
{
    if (d->stopping) {
        /* A second request: do not wait for checkpoints any more.  The jobs
         * resume from their previous checkpoints at the next start. */
        log_warn("%s again: stopping now", strsignal(signum));
        jobs_kill_all(d->jobs);
        return;
    }
    d->stopping = true;
    log_info("%s: stopping: intake closed, running jobs checkpoint and resume at the next start",
             strsignal(signum));
    notify_stopping();
    api_shutdown();   /* no answer waits on the pool for the jobs' checkpoints */
    lrfind_jobs_shutdown(d->lrf);
    laws_shutdown(d->laws);
    if (d->sp) {
        spool_stop(d->sp, on_spool_closed, d);
        d->sp = NULL;
    }
    jobs_shutdown(d->jobs, SHUTDOWN_TIMEOUT_S, on_jobs_stopped, d);
}

static void log_limits(const dconfig *c, const char *prefix);
static void apply_www(daemon_state *d, bool check);

/* A SIGHUP's reading of the config file and the token, done on the thread
 * pool: a FIFO or a file on a hung mount there must not stop the loop (a
 * FIFO is refused at once; a hung mount holds one pool thread, not the
 * daemon).  Applied on the loop thread by reload_done. */
typedef struct reload_req {
    uv_work_t work;
    daemon_state *d;
    flags fl;
    const char *path;          /* the file in use, or NULL */
    bool ok;                   /* c was loaded */
    dconfig c;
    int token_rc;              /* spool_token_load_or_create's answer */
    char token[256];
} reload_req;

static void reload_work(uv_work_t *w)
{
    reload_req *r = w->data;
    if (!r->path && access(DCONFIG_DEFAULT_PATH, F_OK) == 0)
        r->path = DCONFIG_DEFAULT_PATH;
    log_info("SIGHUP: re-reading %s", r->path ? r->path : "(no config file; flags and defaults)");
    r->ok = load_config(&r->fl, r->path, &r->c) == 0;
    if (r->ok)
        r->token_rc = spool_token_load_or_create(r->c.api_token_file, r->token, sizeof r->token);
}

static void reload(daemon_state *d);

static void apply_reload(daemon_state *d, reload_req *r)
{
    dconfig c = r->c;
    /* each key that changed, old -> new; those that cannot change while
     * traind runs keep their running value (dconfig_keep_fixed) */
    dconfig_change *ch;
    size_t n_changed = dconfig_diff(&d->cfg, &c, &ch);
    for (size_t i = 0; i < n_changed; i++) {
        if (ch[i].fixed)
            log_warn("SIGHUP: %s cannot change while traind runs (%s -> %s); keeping %s until the next start",
                     ch[i].key, ch[i].was, ch[i].now, ch[i].was);
        else
            log_info("SIGHUP: %s: %s -> %s", ch[i].key, ch[i].was, ch[i].now);
    }
    if (n_changed == 0)
        log_info("SIGHUP: no key changed");
    dconfig_changes_free(ch, n_changed);
    dconfig_keep_fixed(&c, &d->cfg);
    if (r->token_rc < 0) {
        log_error("SIGHUP: cannot read the API token %s: %s; keeping the old one", c.api_token_file,
                  file_error_text(r->token_rc));
    } else {
        if (strcmp(r->token, d->token) != 0)
            log_info("SIGHUP: API token changed (%s)", c.api_token_file);
        memcpy(d->token, r->token, sizeof d->token);
    }
    dconfig_free(&d->cfg);
    d->cfg = c;
    d->config_path = r->path;
    jobs_configure(d->jobs, &d->cfg);
    if (d->sp)
        spool_set_data_dirs(d->sp, d->cfg.data_dirs, d->cfg.n_data_dirs);
    if (d->sp)
        spool_set_max_model_bytes(d->sp, d->cfg.max_model_memory);
    rate_limit_configure(d->write_limit, d->cfg.write_rate_per_client, dconfig_write_burst(&d->cfg));
    raise_nofile(&d->cfg);
    apply_www(d, false);
    events_set_max_streams(d->cfg.max_event_streams);
    events_set_stall_ms(d->cfg.event_stream_timeout_ms);
    if (d->http) {
        http_server_opts o;
        http_opts_from(&d->cfg, &o);
        http_server_set_limits(d->http, &o);
    }
    if (d->sp && spool_holding(d->sp))
        spool_rescan(d->sp);   /* max_queued_jobs may have grown */
    log_info("SIGHUP: max_jobs %d, threads_per_job %d, %zu data dir%s, max_restarts %d", d->cfg.max_jobs,
             d->cfg.threads_per_job, d->cfg.n_data_dirs, d->cfg.n_data_dirs == 1 ? "" : "s",
             d->cfg.max_restarts);
    log_limits(&d->cfg, "SIGHUP: ");
}

static void reload_done(uv_work_t *w, int status)
{
    reload_req *r = w->data;
    daemon_state *d = r->d;
    d->reloading = false;
    if (d->stopping || status < 0) {
        /* shutting down meanwhile: nothing to apply it to, and no READY=1
         * after STOPPING=1 */
        if (r->ok)
            dconfig_free(&r->c);
        free(r);
        return;
    }
    if (!r->ok)
        log_error("SIGHUP: config has errors; keeping the running configuration");
    else
        apply_reload(d, r);
    free(r);
    notify_ready();
    if (d->reload_again && !d->stopping) {
        d->reload_again = false;
        reload(d);
    }
}

static void reload(daemon_state *d)
{
    if (d->reloading) {
        /* one at a time: a later SIGHUP re-reads once the one in flight is done */
        d->reload_again = true;
        return;
    }
    notify_reloading();
    reload_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->d = d;
    r->fl = d->fl;
    r->path = d->config_path;
    int rc = uv_queue_work(d->loop, &r->work, reload_work, reload_done);
    if (rc < 0) {
        log_error("SIGHUP: cannot queue the reload: %s", uv_strerror(rc));
        free(r);
        notify_ready();
        return;
    }
    d->reloading = true;
}

static void log_limits(const dconfig *c, const char *prefix)
{
    char rate[64];
    if (c->write_rate_per_client > 0)
        snprintf(rate, sizeof rate, "%g writes/s per client (burst %ld)", c->write_rate_per_client,
                 dconfig_write_burst(c));
    else
        snprintf(rate, sizeof rate, "no write rate limit");
    log_info("%slimits: max_queued_jobs %ld, max_model_memory %zu MiB, %s, max_connections %d, "
             "request_timeout_ms %u, idle_timeout_ms %u",
             prefix, c->max_queued_jobs, c->max_model_memory >> 20, rate, c->max_connections,
             c->request_timeout_ms, c->idle_timeout_ms);
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_state *d = h->data;
    if (signum == SIGHUP) {
        if (!d->stopping)
            reload(d);
        return;
    }
    begin_shutdown(d, signum);
}

/* One daemon per spool: the lock is taken before anything in the spool is
 * read or written, and held (d->lock_fd) until exit. */
static int take_spool_lock(daemon_state *d)
{
    int rc = mkdir_p(d->cfg.spool, 0755);
    if (rc < 0) {
        log_error("cannot create the spool %s: %s", d->cfg.spool, strerror(-rc));
        return -1;
    }
    long holder = 0;
    rc = spool_lock(d->cfg.spool, &d->lock_fd, &holder);
    if (rc == -EWOULDBLOCK) {
        if (holder > 0)
            log_error("another traind (pid %ld) is using the spool %s; exiting", holder, d->cfg.spool);
        else
            log_error("another traind is using the spool %s; exiting", d->cfg.spool);
        return -1;
    }
    if (rc < 0) {
        log_error("cannot lock the spool: %s/%s: %s", d->cfg.spool, SPOOL_LOCK_NAME, file_error_text(rc));
        return -1;
    }
    return 0;
}

static const char *self_exe(char *buf, size_t len)
{
    /* /proc/self/exe runs the very binary this daemon is, even after an upgrade
     * replaced the file on disk: a worker always speaks its daemon's protocol. */
    if (access("/proc/self/exe", X_OK) == 0)
        return "/proc/self/exe";
    size_t n = len;
    if (uv_exepath(buf, &n) == 0)
        return buf;
    return NULL;
}

/* www_dir when the config does not say: <folder of traind>/../share/traind/www,
 * where make install puts the page (so any PREFIX works without a rebuild);
 * else, for a traind run from the source tree (build/traind, or any
 * BUILD=dir one level down), the tree's own daemon/www. */
static char *default_www_dir(void)
{
    char exe[PATH_MAX];
    size_t n = sizeof exe;
    if (uv_exepath(exe, &n) != 0)
        return NULL;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    char *installed = xasprintf("%s/../share/traind/www", exe);
    if (access(installed, X_OK) == 0)
        return installed;
    char *tree = xasprintf("%s/../daemon/www/index.html", exe);
    bool in_tree = access(tree, R_OK) == 0;
    free(tree);
    if (!in_tree)
        return installed;   /* named in the warning: where make install puts it */
    free(installed);
    return xasprintf("%s/../daemon/www", exe);
}

/* The dashboard's folders as the config now says. */
static void apply_www(daemon_state *d, bool check)
{
    char *dflt = d->cfg.www_dir ? NULL : default_www_dir();
    const char *www = d->cfg.www_dir ? d->cfg.www_dir : dflt;
    if (!d->files)
        d->files = static_files_new(d->loop, www, d->cfg.chartjs_dir);
    else
        static_files_set_dirs(d->files, www, d->cfg.chartjs_dir);
    if (!check)
        ;   /* a SIGHUP: the loop does not wait on a hung mount */
    else if (!www || access(www, R_OK | X_OK) != 0)
        log_warn("www_dir %s: %s (GET / answers 404; set www_dir in the daemon config)", www ? www : "(none)",
                 strerror(errno));
    if (check && access(d->cfg.chartjs_dir, R_OK | X_OK) != 0)
        log_warn("chartjs_dir %s: %s (the dashboard's charts need Debian's libjs-chart.js)", d->cfg.chartjs_dir,
                 strerror(errno));
    free(dflt);
}

/* ------------------------------------------------------------- start-up */

/* The daemon config: the file --config names (else the default one where
 * it exists), then the flags.  -1 when it has errors (logged). */
/* Open MPI told by traind's environment to put ranks on other hosts, while
 * traind.yaml does not say so: rank 0 there could not reach the progress
 * socket (it exists on this machine only).  Said once, at start. */
static void warn_env_hosts(const dconfig *c)
{
    static const char *const vars[] = {"OMPI_MCA_orte_default_hostfile", "OMPI_MCA_orte_default_dash_host"};
    if (c->executor != DCONFIG_EXEC_LOCAL || c->mpi_hostfile)
        return;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            log_warn("%s=%s is set in traind's environment: N-rank jobs whose rank 0 lands on another host "
                     "cannot report; set mpi_hostfile in traind.yaml instead (traind.yaml(5))", vars[i], v);
    }
}

static int read_config(daemon_state *d, const flags *fl)
{
    d->fl = *fl;
    d->config_path = fl->config;
    if (!d->config_path && access(DCONFIG_DEFAULT_PATH, F_OK) == 0)
        d->config_path = DCONFIG_DEFAULT_PATH;
    int rc = load_config(&d->fl, d->config_path, &d->cfg);
    if (rc == 0)
        warn_env_hosts(&d->cfg);
    return rc;
}

/* The process's settings: signals that must not kill it, and its file limit. */
static void prepare_process(const dconfig *c)
{
    /* A client that hangs up must not kill the daemon, and under a file
     * size limit (RLIMIT_FSIZE) a write over it must fail with EFBIG, to be
     * logged and retried, rather than kill it either. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    raise_nofile(c);
}

/* The data dirs: the default one created, each checked (a warning). */
static void check_data_dirs(const dconfig *c)
{
    if (!c->data_dirs_set && c->n_data_dirs == 1)
        mkdir_p(c->data_dirs[0], 0755);   /* the default <spool>/data */
    for (size_t i = 0; i < c->n_data_dirs; i++)
        if (access(c->data_dirs[i], R_OK | X_OK) != 0)
            log_warn("data dir %s: %s (jobs with data files there will be rejected)", c->data_dirs[i],
                     strerror(errno));
}

/* The spool's lock, its layout and data dirs, and the API token (read or
 * created).  -1 on failure (logged). */
static int prepare_spool(daemon_state *d)
{
    if (take_spool_lock(d) != 0)
        return -1;
    int rc = spool_prepare(d->cfg.spool);
    if (rc < 0) {
        log_error("cannot create the spool %s: %s", d->cfg.spool, strerror(-rc));
        return -1;
    }
    check_data_dirs(&d->cfg);
    rc = spool_token_load_or_create(d->cfg.api_token_file, d->token, sizeof d->token);
    if (rc < 0) {
        log_error("cannot read or create the API token %s: %s", d->cfg.api_token_file, strerror(-rc));
        return -1;
    }
    if (rc == 1)
        log_info("created the API token %s (mode 0600)", d->cfg.api_token_file);
    return 0;
}

/* The loop, with the thread pool's size, the LR tests and systemd's
 * notifications on it; logs the start and the limits. */
static void open_loop(daemon_state *d, const char *exe)
{
    /* Eight pool threads (libuv's default is four): every heavy kind of
     * request is capped at one at a time (renders, previews, experiment
     * checks, law fits), so half the pool always stays for POST /jobs and
     * the fsyncs of checkpoints and status files.  An operator's own
     * UV_THREADPOOL_SIZE wins. */
    setenv("UV_THREADPOOL_SIZE", "8", 0);
    d->loop = uv_default_loop();
    d->exe = exe;
    d->lrf = lrfind_jobs_new(d->loop);
    d->started = now_monotonic();
    notify_init(d->loop);
    log_info("traind %s starting: spool %s, max_jobs %d, threads_per_job %d%s%s", TRAIND_VERSION,
             d->cfg.spool, d->cfg.max_jobs, d->cfg.threads_per_job, d->config_path ? ", config " : "",
             d->config_path ? d->config_path : "");
    log_limits(&d->cfg, "");
}

/* The experiments and the laws read back from the spool (errors logged). */
static void load_exps_laws(daemon_state *d)
{
    d->exps = exps_new(d->jobs, d->cfg.spool, (size_t)d->cfg.max_trials, d->cfg.data_dirs, d->cfg.n_data_dirs,
                       d->cfg.max_model_memory);
    int rc = exps_load(d->exps);
    if (rc < 0)
        log_error("cannot read %s/experiments: %s", d->cfg.spool, strerror(-rc));
    else if (rc > 0)
        log_info("%d experiment%s on disk", rc, rc == 1 ? "" : "s");

    d->laws_dir = xasprintf("%s/" LAWS_DIR, d->cfg.spool);
    d->laws = laws_new(d->loop, d->jobs, d->exps, d->cfg.spool);
    rc = laws_load(d->laws);
    if (rc < 0)
        log_error("cannot read %s: %s", d->laws_dir, strerror(-rc));
    else if (rc > 0)
        log_info("%d law%s on disk", rc, rc == 1 ? "" : "s");
}

/* The event streams, and the jobs, experiments and laws read back from
 * the spool.  -1 when jobs/ cannot be read (logged). */
static int load_tables(daemon_state *d)
{
    events_init(d->loop, d->cfg.max_event_streams);
    events_set_stall_ms(d->cfg.event_stream_timeout_ms);
    d->jobs = jobs_new(d->loop, &d->cfg, d->exe);
    events_set_job_source(jobs_event_json, d->jobs);
    jobs_set_admission(d->jobs, admit_room, d);
    jobs_set_on_change(d->jobs, on_jobs_changed, d);
    int rc = jobs_load(d->jobs);
    if (rc < 0) {
        log_error("cannot read %s/jobs: %s", d->cfg.spool, strerror(-rc));
        return -1;
    }
    int counts[JOB_NSTATES];
    jobs_counts(d->jobs, counts);
    log_info("%d job%s on disk, %d to run", rc, rc == 1 ? "" : "s", counts[JOB_QUEUED]);
    load_exps_laws(d);
    events_start();   /* the jobs read from disk made no events; what happens from now on does */
    return 0;
}

/* The dashboard's files, and the API's backend (each module's operations
 * with the module's context; the daemon's own above) with its write rate
 * limit. */
static void wire_api(daemon_state *d)
{
    apply_www(d, true);
    d->previews = (preview_ctx){.loop = d->loop, .cfg = &d->cfg, .jobs = d->jobs, .laws_dir = d->laws_dir};
    d->lr_finds = (lrfind_ctx){.js = d->lrf, .exe = d->exe, .cfg = &d->cfg};
    d->api = (api_backend){
        .ctx = d,
        .token = be_token,
        .host_allowed = be_host_allowed,
        .uptime = be_uptime,
        .queued = be_queued,
        .prom_extra = be_prom_extra,
        .files = d->files,
        .loop = d->loop,

        .jobs = d->jobs,
        .list_page = jobs_page_json,
        .fill_page = jobs_fill_deferred,
        .list_prom = jobs_prom_json,
        .list_summaries = jobs_summary_json,
        .get_job = jobs_get,
        .submit = jobs_submit,
        .cancel = jobs_request_cancel,
        .metrics_points = jobs_metrics_points,
        .metrics_defer = jobs_metrics_defer,
        .metrics_read = jobs_metrics_read,
        .metrics_drop = jobs_metrics_drop,
        .log_tail = jobs_log,
        .config_text = jobs_config,
        .fork = forks_fork,
        .checkpoints = forks_checkpoints,

        .exps = d->exps,
        .list_experiments = exps_list,
        .get_experiment = exps_get,
        .submit_experiment = exps_post,
        .cancel_experiment = exps_request_cancel,

        .previews = &d->previews,
        .preview = preview_post,

        .lr_finds = &d->lr_finds,
        .lr_find = lrfind_post,

        .laws = d->laws,
        .list_laws = laws_list,
        .fit_law = laws_fit,
        .get_law = laws_get,
        .predict_law = laws_predict,
    };
    d->write_limit = rate_limit_new(d->cfg.write_rate_per_client, dconfig_write_burst(&d->cfg),
                                    API_RATELIMIT_CLIENTS);
    d->api.write_limit = d->write_limit;
}

/* The HTTP server on the configured address.  -1 when it cannot listen
 * (logged). */
static int open_http(daemon_state *d)
{
    http_server_opts hopts;
    http_opts_from(&d->cfg, &hopts);
    int rc = http_server_start(d->loop, d->cfg.listen, &hopts, api_handle, &d->api, &d->http);
    if (rc < 0) {
        log_error("cannot listen on %s: %s", d->cfg.listen, uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* A start-up given up once the tables are read: the jobs are let go as
 * they are on disk (none was started yet). */
static void abandon_start(daemon_state *d)
{
    jobs_shutdown(d->jobs, 0, NULL, NULL);
    uv_run(d->loop, UV_RUN_DEFAULT);
}

/* SIGTERM, SIGINT (shutdown) and SIGHUP (reload) handled from now on. */
static void handle_signals(daemon_state *d)
{
    /* Signals are handled from here on, before traind.addr announces us:
     * a script that sends SIGHUP as soon as the file appears must not kill
     * the daemon with the default action. */
    uv_signal_init(d->loop, &d->sig_term);
    uv_signal_init(d->loop, &d->sig_int);
    uv_signal_init(d->loop, &d->sig_hup);
    d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
}

/* Logs the address listened on, and writes it to <spool>/traind.addr for
 * port 0 (an earlier run's file removed either way). */
static void announce_address(daemon_state *d)
{
    const char *addr = http_server_address(d->http);
    log_info("listening on %s", addr);
    /* Port 0: say which port we got (tests and scripts read it).  A file
     * left by an earlier run is removed either way, so it is never stale. */
    d->addr_file = xasprintf("%s/traind.addr", d->cfg.spool);
    unlink(d->addr_file);
    size_t ll = strlen(d->cfg.listen);
    if (strncmp(d->cfg.listen, "unix:", 5) != 0 && ll >= 2 && strcmp(d->cfg.listen + ll - 2, ":0") == 0) {
        char *line = xasprintf("%s\n", addr);
        int rc = write_file_atomic(d->addr_file, line, strlen(line), 0644);
        free(line);
        if (rc < 0)
            log_warn("cannot write %s: %s", d->addr_file, strerror(-rc));
    } else {
        free(d->addr_file);
        d->addr_file = NULL;
    }
}

/* The queued jobs and pending trials started, incoming/ watched, and
 * READY=1 to systemd. */
static void start_serving(daemon_state *d)
{
    jobs_start(d->jobs);
    exps_poke(d->exps);   /* trials an earlier daemon had not submitted yet */
    int rc = spool_start(d->loop, d->cfg.spool, d->cfg.data_dirs, d->cfg.n_data_dirs, on_intake, d, &d->sp);
    if (rc == 0)
        spool_set_max_model_bytes(d->sp, d->cfg.max_model_memory);
    if (rc < 0)
        log_error("cannot watch %s/incoming: %s", d->cfg.spool, strerror(-rc));
    else
        spool_set_room(d->sp, spool_room, d);
    on_jobs_changed(d);
    notify_ready();
}

/* Closes the loop once it has run, draining whatever is left on it. */
static void close_loop(daemon_state *d)
{
    notify_close();   /* done by on_jobs_stopped, unless the start was given up */
    if (uv_loop_close(d->loop) == UV_EBUSY) {
        /* Should not happen; drain whatever is left rather than leak it. */
        uv_run(d->loop, UV_RUN_DEFAULT);
        uv_loop_close(d->loop);
    }
}

/* Frees the tables and what the API held, in reverse order of setup
 * (each may not have been made: NULL). */
static void free_tables(daemon_state *d)
{
    rate_limit_free(d->write_limit);
    static_files_free(d->files);
    laws_free(d->laws);
    free(d->laws_dir);
    exps_free(d->exps);
    jobs_free(d->jobs);
    events_free();
    lrfind_jobs_free(d->lrf);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--worker") == 0)
        return worker_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "--lr-find") == 0)
        return worker_lrfind_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "--mpi-launch") == 0)
        return mpilaunch_main(argc, argv);

    flags fl = {0};
    int rc = parse_flags(argc, argv, &fl);
    if (rc >= 0)
        return rc;
    log_init();

    static daemon_state d;
    char exebuf[PATH_MAX];
    const char *exe;
    if (read_config(&d, &fl) != 0)
        return 1;
    rc = 1;
    prepare_process(&d.cfg);
    if (prepare_spool(&d) != 0)
        goto out_config;
    if (!(exe = self_exe(exebuf, sizeof exebuf))) {
        log_error("cannot find my own executable to start training processes");
        goto out_config;
    }
    open_loop(&d, exe);
    if (load_tables(&d) != 0)
        goto out_tables;
    wire_api(&d);
    if (open_http(&d) != 0) {
        abandon_start(&d);
        goto out_loop;
    }
    handle_signals(&d);
    announce_address(&d);
    start_serving(&d);
    uv_run(d.loop, UV_RUN_DEFAULT);
    rc = 0;

out_loop:
    close_loop(&d);
out_tables:
    free_tables(&d);
out_config:
    dconfig_free(&d.cfg);
    if (rc == 0)
        log_info("traind stopped");
    return rc;
}

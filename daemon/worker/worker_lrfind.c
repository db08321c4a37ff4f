/*
 * worker_lrfind — the process of one POST /lr-find: the config on stdin,
 * the curve as JSON on stdout.  See traind/worker.h (worker_lrfind_main).
 * Started by the daemon (daemon/service/lrfind_job.c), never by hand.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "traind/intake.h"
#include "traind/json.h"
#include "traind/lrfind.h"
#include "traind/util.h"
#include "traind/worker.h"

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Prints doc on stdout (and frees it); the exit code. */
static int answer(cJSON *doc, int code)
{
    char *text = doc ? json_print_exact(doc) : NULL;
    cJSON_Delete(doc);
    if (!text)
        return WORKER_EXIT_FAILED;
    puts(text);
    free(text);
    return fflush(stdout) == 0 ? code : WORKER_EXIT_FAILED;
}

static int fail(const char *msg)
{
    return answer(json_error_doc(msg), WORKER_EXIT_FAILED);
}

/* stdin, up to max bytes; NULL when larger or unreadable. */
static char *read_stdin(size_t max, size_t *len)
{
    char *buf = xmalloc(max + 1);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            return NULL;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int parse_num(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int worker_lrfind_main(int argc, char **argv)
{
    lrfind_opts o = {LRFIND_DEFAULT_START, LRFIND_DEFAULT_END, LRFIND_DEFAULT_STEPS};
    int threads = 1;
    long ppid = 0;
    double steps = (double)o.steps, mmb = 0;
    char **dirs = xcalloc((size_t)argc, sizeof *dirs);
    size_t n_dirs = 0;
    bool bad = false;
    for (int i = 2; i < argc && !bad; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            bad = true;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--ppid"))
            ppid = atol(v);
        else if (!strcmp(a, "--data-dir"))
            dirs[n_dirs++] = (char *)v;
        else if (!strcmp(a, "--start"))
            bad = parse_num(v, &o.start) != 0;
        else if (!strcmp(a, "--end"))
            bad = parse_num(v, &o.end) != 0;
        else if (!strcmp(a, "--steps"))
            bad = parse_num(v, &steps) != 0 || steps != floor(steps) || fabs(steps) > 1e9;
        else if (!strcmp(a, "--max-model-bytes"))
            bad = parse_num(v, &mmb) != 0 || mmb < 0;
        else
            bad = true;
        i++;
    }
    if (bad) {
        free(dirs);
        fprintf(stderr, "usage: traind --lr-find --threads N [--ppid PID] [--max-model-bytes B] [--start LR] "
                        "[--end LR] [--steps N] [--data-dir DIR]... < CONFIG\n"
                        "(started by traind for POST /lr-find; not meant to be run by hand)\n");
        return WORKER_EXIT_USAGE;
    }
    o.steps = (long)steps;
    if (threads < 1)
        threads = 1;
    /* die with the daemon, as a job's worker does */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (ppid > 0 && getppid() != (pid_t)ppid) {
        free(dirs);
        return WORKER_EXIT_STOPPED;
    }
    unsetenv("NOTIFY_SOCKET");
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    if (lrfind_check_opts(&o, err, sizeof err) != 0) {
        free(dirs);
        return fail(err);
    }
    size_t len;
    char *yaml = read_stdin(CFG_MAX_FILE_BYTES, &len);
    if (!yaml) {
        free(dirs);
        return fail("cannot read the config (is it over the size limit?)");
    }
    intake_limits lim = {.data_dirs = dirs, .n_data_dirs = n_dirs, .max_model_bytes = (size_t)mmb};
    run_config cfg;
    char *data_path = NULL;
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = intake_validate(yaml, len, "lr-find", &lim, &cfg, &data_path, &errs);
    free(yaml);
    if (rc != 0) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddBoolToObject(doc, "ok", false);
        cJSON_AddItemToObject(doc, "errors", json_diag_list(&errs));
        diag_free(&errs);
        free(dirs);
        return answer(doc, WORKER_EXIT_FAILED);
    }
    diag_free(&errs);
    lrfind_result res;
    int code;
    if (lrfind_run(&cfg, &o, data_path, threads, &g_stop, &res, err, sizeof err) != 0) {
        code = fail(err);
    } else {
        char *text = lrfind_json(&res, &o);
        code = WORKER_EXIT_FAILED;
        if (text) {
            puts(text);
            code = fflush(stdout) == 0 ? WORKER_EXIT_OK : WORKER_EXIT_FAILED;
        }
        free(text);
        lrfind_free(&res);
    }
    free(data_path);
    cfg_free(&cfg);
    free(dirs);
    return code;
}

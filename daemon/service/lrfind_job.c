/* lrfind_job — POST /lr-find as a process of its own.  See traind/lrfind_job.h. */
#include "traind/lrfind_job.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "traind/result.h"
#include "traind/json.h"
#include "traind/log.h"
#include "traind/subproc.h"
#include "traind/util.h"
#include "traind/worker.h"

typedef struct lrf_run {
    lrfind_jobs *js;
    subproc_t *proc;
    lrfind_job_done done;
    void *arg;
    double timeout_s;
    bool killed;               /* by the shutdown */
    struct lrf_run *next;
} lrf_run;

struct lrfind_jobs {
    uv_loop_t *loop;
    lrf_run *running;
    int n_running;
    bool stopping;
};

lrfind_jobs *lrfind_jobs_new(uv_loop_t *loop)
{
    lrfind_jobs *js = xcalloc(1, sizeof *js);
    js->loop = loop;
    return js;
}

static void answer_error(lrfind_job_done done, void *arg, int rc, const char *msg)
{
    done(arg, rc, json_error_doc(msg));
}

static void unlink_run(lrf_run *r)
{
    for (lrf_run **p = &r->js->running; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    r->js->n_running--;
}

static void on_done(void *ctx, const subproc_result *res)
{
    lrf_run *r = ctx;
    unlink_run(r);
    cJSON *doc = res->out_len > 0 ? cJSON_Parse(res->out) : NULL;
    bool exited = res->rc == 0 && res->term_signal == 0;
    if (r->killed) {
        cJSON_Delete(doc);
        answer_error(r->done, r->arg, API_UNAVAILABLE, API_SHUTTING_DOWN);
    } else if (res->rc == -ETIMEDOUT) {
        cJSON_Delete(doc);
        char msg[128];
        snprintf(msg, sizeof msg, "the lr range test ran past %.0f s and was stopped", r->timeout_s);
        answer_error(r->done, r->arg, API_TIMED_OUT, msg);
    } else if (exited && res->exit_status == WORKER_EXIT_OK && cJSON_IsObject(doc)) {
        r->done(r->arg, API_OK, doc);
    } else if (exited && res->exit_status == WORKER_EXIT_FAILED && cJSON_IsObject(doc)) {
        r->done(r->arg, API_UNPROCESSABLE, doc);
    } else {
        cJSON_Delete(doc);
        /* the process's own words, when it said any (stderr, one line) */
        char why[256];
        size_t n = strcspn(res->err, "\n");
        snprintf(why, sizeof why, "%.*s", (int)(n < 200 ? n : 200), res->err);
        if (res->term_signal)
            log_warn("lr-find: the process was killed by signal %d", res->term_signal);
        else
            log_warn("lr-find: the process exited %ld: %s", (long)res->exit_status, why);
        char msg[320];
        snprintf(msg, sizeof msg, "the lr range test failed%s%s", why[0] ? ": " : "", why);
        answer_error(r->done, r->arg, -EIO, msg);
    }
    free(r);
}

void lrfind_jobs_start(lrfind_jobs *js, const lrfind_job_spec *spec, const char *yaml, size_t len,
                       const lrfind_opts *o, lrfind_job_done done, void *arg)
{
    if (js->stopping)
        return answer_error(done, arg, API_UNAVAILABLE, API_SHUTTING_DOWN);
    if (js->n_running >= LRFIND_JOB_MAX_RUNNING)
        return answer_error(done, arg, API_TRY_LATER, "an lr range test is running already; try again when it has ended");
    /* The body goes to the process as its stdin: a memfd, written here
     * (memory, at most the body's size) and read there at its own pace. */
    int fd = memfd_create("traind-lr-find", MFD_CLOEXEC);
    if (fd < 0)
        return answer_error(done, arg, -EIO, "cannot pass the config to the lr range test (memfd_create)");
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, yaml + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return answer_error(done, arg, -EIO, "cannot pass the config to the lr range test (write)");
        }
        off += (size_t)w;
    }
    lseek(fd, 0, SEEK_SET);

    char threads[16], ppid[24], mmb[32], start[32], end[32], steps[24];
    snprintf(threads, sizeof threads, "%d", spec->threads > 0 ? spec->threads : 1);
    snprintf(ppid, sizeof ppid, "%ld", (long)getpid());
    snprintf(mmb, sizeof mmb, "%zu", spec->max_model_bytes);
    snprintf(start, sizeof start, "%.17g", o->start);
    snprintf(end, sizeof end, "%.17g", o->end);
    snprintf(steps, sizeof steps, "%ld", o->steps);
    size_t n = 0;
    char **argv = xcalloc(16 + 2 * spec->n_data_dirs, sizeof *argv);
    char *fixed[] = {(char *)spec->exe, "--lr-find", "--threads", threads, "--ppid", ppid,
                     "--max-model-bytes", mmb, "--start", start, "--end", end, "--steps", steps};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = fixed[i];
    for (size_t i = 0; i < spec->n_data_dirs; i++) {
        argv[n++] = "--data-dir";
        argv[n++] = spec->data_dirs[i];
    }
    argv[n] = NULL;

    lrf_run *r = xcalloc(1, sizeof *r);
    r->js = js;
    r->done = done;
    r->arg = arg;
    r->timeout_s = spec->timeout_s > 0 ? spec->timeout_s : LRFIND_JOB_TIMEOUT_S;
    subproc_opts so = {.stdin_fd = fd, .handle = &r->proc};
    int rc = subproc_run_opts(js->loop, argv, r->timeout_s, &so, on_done, r);
    close(fd);
    free(argv);
    if (rc < 0) {
        free(r);
        log_warn("lr-find: cannot start %s: %s", spec->exe, strerror(-rc));
        return answer_error(done, arg, -EIO, "cannot start the lr range test");
    }
    log_info("lr-find: process %d started (%ld steps, lr %g to %g)", subproc_pid(r->proc), o->steps, o->start,
             o->end);
    r->next = js->running;
    js->running = r;
    js->n_running++;
}

void lrfind_post(void *lr_finds, const char *yaml, size_t len, const lrfind_opts *o, lrfind_job_done done,
                 void *arg)
{
    const lrfind_ctx *l = lr_finds;
    const dconfig *c = l->cfg;
    lrfind_job_spec spec = {.exe = l->exe, .threads = c->threads_per_job, .data_dirs = c->data_dirs,
                            .n_data_dirs = c->n_data_dirs, .max_model_bytes = c->max_model_memory};
    lrfind_jobs_start(l->js, &spec, yaml, len, o, done, arg);
}

void lrfind_jobs_shutdown(lrfind_jobs *js)
{
    js->stopping = true;
    for (lrf_run *r = js->running; r; r = r->next) {
        r->killed = true;
        subproc_kill(r->proc, SIGKILL);
    }
}

void lrfind_jobs_free(lrfind_jobs *js)
{
    free(js);
}

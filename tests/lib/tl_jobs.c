/*
 * tl_jobs — jobs over traind's API, for the integration tests: submit,
 * post, wait for a state (or any predicate), look into a job's errors, drop
 * a file into incoming/.  See tl.h.
 *
 * The waits fail the test at once, with the daemon's log, when traind has
 * died meanwhile, and on a timeout show the job as it is now and the log's
 * tail: a test that fails says why.
 */
#include <check.h>
#include "tl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "traind/util.h"

bool tl_job_in_state(const cJSON *job, void *state)
{
    const char *s = tl_str(job, "state");
    return s && strcmp(s, (const char *)state) == 0;
}

bool tl_job_ended(const cJSON *job, void *unused)
{
    (void)unused;
    const char *s = tl_str(job, "state");
    return s && strcmp(s, "queued") != 0 && strcmp(s, "running") != 0;
}

bool tl_job_at_step(const cJSON *job, void *min_step)
{
    return tl_num(job, "step") >= (double)*(const long *)min_step || tl_job_ended(job, NULL);
}

cJSON *tl_wait_job(const char *addr, const char *id, bool (*pred)(const cJSON *job, void *arg),
                   void *arg, double timeout_s)
{
    char *path = xasprintf("/jobs/%s", id);
    double deadline = tl_now() + timeout_s;
    cJSON *j = NULL;
    for (;;) {
        j = tl_get_json(addr, path, NULL);
        if (j && pred(j, arg))
            break;
        cJSON_Delete(j);
        j = NULL;
        if (tl_now() > deadline)
            break;
        tl_sleep_ms(20);
    }
    free(path);
    return j;
}

bool tl_job_running_with(const cJSON *j, void *min_ckpt)
{
    const char *s = tl_str(j, "state");
    long want = *(const long *)min_ckpt;
    return s && !strcmp(s, "running") && tl_num(j, "step") > 0 && tl_num(j, "pid") > 0 &&
           (want <= 0 || tl_num(j, "checkpoint_step") >= (double)want);
}


int tl_post_job(const tl_daemon *d, const char *token, const char *body, size_t len, tl_resp *r)
{
    return tl_http(d->addr, "POST", "/jobs", token, body, len, r);
}

int tl_post(const tl_daemon *d, const char *path, const char *token, const char *body, char **out)
{
    tl_resp r;
    tl_http(d->addr, "POST", path, token, body, strlen(body), &r);
    if (out)
        *out = xstrdup(r.body ? r.body : "");
    int st = r.status;
    tl_resp_free(&r);
    return st;
}

char *tl_submit(const tl_daemon *d, const char *body)
{
    tl_resp r;
    tl_post_job(d, d->token, body, strlen(body), &r);
    ck_assert_msg(r.status == 201, "POST /jobs: %d %s", r.status, r.body ? r.body : "");
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_msg(tl_str(j, "id") != NULL, "POST /jobs answered no id: %s", r.body);
    char *id = xstrdup(tl_str(j, "id"));
    cJSON_Delete(j);
    tl_resp_free(&r);
    return id;
}

cJSON *tl_get_job(const tl_daemon *d, const char *id)
{
    char *path = xasprintf("/jobs/%s", id);
    cJSON *j = tl_get_json(d->addr, path, NULL);
    free(path);
    return j;
}

/* The last 3000 bytes of the daemon's log, for failure messages; malloc'd. */
static char *log_tail(const tl_daemon *d)
{
    char *log = tl_daemon_log(d);
    size_t n = strlen(log);
    if (n > 3000)
        memmove(log, log + n - 3000, 3001);
    return log;
}

cJSON *tl_wait_job_of(tl_daemon *d, const char *id, bool (*pred)(const cJSON *job, void *arg), void *arg,
                      double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    for (;;) {
        cJSON *j = tl_get_job(d, id);
        if (j && pred(j, arg))
            return j;
        cJSON_Delete(j);
        int st;
        if (d->pid > 0 && waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            char *log = log_tail(d);
            ck_abort_msg("traind died (wait status %d) while job %s was watched; its log:\n%s", st, id, log);
        }
        if (tl_now() > deadline)
            return NULL;
        tl_sleep_ms(20);
    }
}

cJSON *tl_wait_state(tl_daemon *d, const char *id, const char *state, double timeout_s)
{
    cJSON *j = tl_wait_job_of(d, id, tl_job_in_state, (void *)state, timeout_s);
    if (!j) {
        cJSON *now = tl_get_job(d, id);
        char *text = now ? cJSON_PrintUnformatted(now) : xstrdup("(none)");
        char *log = log_tail(d);
        ck_abort_msg("job %s never reached %s; now: %.1500s\ndaemon log:\n%s", id, state, text, log);
    }
    return j;
}

cJSON *tl_wait_running(tl_daemon *d, const char *id, long min_ckpt, double timeout_s)
{
    cJSON *j = tl_wait_job_of(d, id, tl_job_running_with, &min_ckpt, timeout_s);
    if (!j) {
        cJSON *now = tl_get_job(d, id);
        char *text = now ? cJSON_PrintUnformatted(now) : xstrdup("(none)");
        char *log = log_tail(d);
        ck_abort_msg("job %s never ran with a checkpoint >= %ld; now: %.1500s\ndaemon log:\n%s", id, min_ckpt,
                     text, log);
    }
    return j;
}

bool tl_job_has_error(const cJSON *job, const char *a, const char *b)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(job, "errors")) {
        const char *m = tl_str(e, "message");
        if (m && strstr(m, a) && (!b || strstr(m, b)))
            return true;
    }
    return false;
}

void tl_drop(const char *spool, const char *name, const char *text, double age_s)
{
    char *dir = xasprintf("%s/incoming", spool);
    mkdir_p(dir, 0755);
    char *tmp = xasprintf("%s/staging.tmp", spool), *dst = xasprintf("%s/%s", dir, name);
    ck_assert_int_eq(tl_write(tmp, text), 0);
    if (age_s > 0) {
        time_t t = time(NULL) - (time_t)age_s;
        struct timeval when[2] = {{t, 0}, {t, 0}};
        ck_assert_int_eq(utimes(tmp, when), 0);
    }
    ck_assert_msg(rename(tmp, dst) == 0, "rename to %s: %s", dst, strerror(errno));
    free(tmp);
    free(dst);
    free(dir);
}

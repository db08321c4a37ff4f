/*
 * executor_slurm — jobs placed by Slurm.  traind does not place work across
 * machines itself: it hands each job to sbatch and keeps doing what it is for.
 *
 * Start: the job directory gets slurm.sh, a batch script that execs this very
 * binary's worker mode on the job directory (`exec` so that the worker is the
 * batch shell, which is what --signal=B:TERM@GRACE signals before the time
 * limit: the worker checkpoints and exits WORKER_EXIT_STOPPED); for N ranks
 * an srun step of N traind-mpi-worker ranks instead (batch_script).  Then
 *     sbatch --parsable --job-name=traind-ID --chdir=DIR --output=DIR/worker.log
 *            --open-mode=append --cpus-per-task=THREADS --ntasks=RANKS --no-requeue
 *            --signal=B:TERM@GRACE [--partition --account --time] [extra_args] DIR/slurm.sh
 * and the Slurm job id goes to DIR/slurm_job_id, so a restarted traind adopts
 * the job instead of submitting it twice (exec_adopt).  THREADS is what each
 * rank runs (exec_spec.threads: the config's threads capped by
 * threads_per_job / RANKS).  The same command with --test-only goes first: a
 * request that no node can ever satisfy fails the job at once with the
 * numbers (sinfo: the partition's CPUs) instead of pending for ever, and a
 * job that Slurm keeps pending for a reason that never clears
 * (PartitionConfig, ...) is cancelled and fails (traind.yaml(5), EXECUTOR).  sbatch rather than
 * srun: a batch job lives without traind, which may restart at any time.
 * --no-requeue: traind requeues itself (a fresh sbatch that resumes from the
 * checkpoint) — `scontrol requeue` holds a job ~2 minutes in BeginTime.
 *
 * Progress: the worker cannot inherit a pipe across machines, so it appends
 * its progress lines (traind/progress.h) to DIR/progress.jsonl on the shared
 * spool, and the daemon tails that file.  There is no connection to lose: a
 * file the daemon cannot read only delays the numbers, and the outcome comes
 * from Slurm's state and the worker's exit code.
 *
 * State: every SLURM_POLL_S `scontrol -o show job ID` (JobState, Reason,
 * ExitCode) — squeue cannot tell an exit code and accounting (sacct) is often
 * off.  "Invalid job id" means Slurm lost the job (or forgot it after
 * MinJobAge): reported as LOST, which end_job (outcome_of) hands to jobs.c
 * as EXEC_REQUEUE: it resumes from its checkpoint.
 * Any other failure of scontrol (controller down) is retried, never
 * believed.  After a final state the rest of progress.jsonl is read before
 * on_exit, so the worker's last "done" or "failed" line arrives first.
 *
 * Every command runs through subproc (uv_spawn, asynchronous pipes, a
 * timeout) and every file access on the thread pool: nothing here blocks the
 * loop.  Slurm's output is untrusted text, parsed defensively.
 */
#include "traind/executor.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "traind/log.h"
#include "traind/subproc.h"
#include "traind/util.h"
#include "traind/worker.h"

#define SLURM_POLL_MS 1000
#define SLURM_CMD_TIMEOUT_S 30.0
#define SLURM_READ_MAX (1u << 20)    /* progress bytes read per poll */

typedef struct slurm_exec {
    executor base;
    uv_loop_t *loop;
    char *exe;
    char *partition, *account, *time_limit;
    char **extra;
    size_t n_extra;
    int grace_s;
} slurm_exec;

typedef struct slurm_job {
    exec_job base;
    slurm_exec *se;
    exec_callbacks cb;
    void *ctx;
    char *id, *dir;
    int threads, ranks;
    int config_threads, threads_per_job;   /* what threads follows from (exec_spec) */
    char *mpi_worker;            /* ranks > 1: traind-mpi-worker */
    char **data_dirs;
    size_t n_data_dirs;
    char sched_id[EXEC_SCHED_ID_MAX + 1];

    progress_reader reader;
    long long offset;            /* how far progress.jsonl was read */
    bool skip_to_end;            /* adopted: the lines before now were seen by a previous traind */

    uv_timer_t timer;
    bool timer_open, polling;
    int busy;                    /* commands and thread-pool work in flight */
    bool ended;                  /* on_exit was called (or detached) */
    bool cancel_pending;         /* cancelled before sbatch answered */
    bool cancel_sent;            /* exec_cancel was called (traind's own cancel) */
    bool poll_error_logged;
    char state[32], reason[128]; /* last seen */
    /* a final state waiting for the last progress read */
    bool final, unlinking;
    bool found_live;             /* squeue found it live before sbatch (not submitted by us) */
    bool doomed;                 /* pending for a reason that never clears: being cancelled */
    char slurm_said[128];        /* why Slurm cannot run it (sbatch --test-only, or the reason) */
    char why[1000];              /* the end in words, when set (a request no node can satisfy) */
    long long exit_code, exit_signal;
} slurm_job;

static void poll_now(slurm_job *sj);
static void doom(slurm_job *sj, const char *reason);
static bool reason_never_clears(const char *reason);

/* ------------------------------------------------------------- helpers */

static void maybe_free(slurm_job *sj)
{
    if (!sj->ended || sj->busy > 0 || sj->timer_open)
        return;
    progress_reader_free(&sj->reader);
    strv_free(sj->data_dirs, sj->n_data_dirs);
    free(sj->id);
    free(sj->dir);
    free(sj->mpi_worker);
    free(sj);
}

static void on_timer_closed(uv_handle_t *h)
{
    slurm_job *sj = h->data;
    sj->timer_open = false;
    maybe_free(sj);
}

static void stop_timer(slurm_job *sj)
{
    if (sj->timer_open && !uv_is_closing((uv_handle_t *)&sj->timer))
        uv_close((uv_handle_t *)&sj->timer, on_timer_closed);
}

/* Slurm's final state of the job in the executor's terms (traind/executor.h),
 * so that jobs.c decides the same way whatever runs the job:
 *   COMPLETED, FAILED    the worker's own end: its exit code (WORKER_EXIT_*;
 *                        any other, such as 137 from an srun step whose rank
 *                        was killed, is a crash) or the signal that killed it
 *                        (a crash) — but for the stop code WORKER_EXIT_STOPPED,
 *                        the worker's answer to Slurm's time-limit signal;
 *                        FAILED with neither (0:0) is Slurm's own failure
 *   WORKER_EXIT_STOPPED, TIMEOUT, PREEMPTED, LOST (a job Slurm no longer knows)
 *                        stopped or lost by Slurm: run again
 *   CANCELLED            cancelled (scancel: traind's or someone's)
 *   SUBMIT_FAILED        sbatch refused it
 *   NODE_FAIL            a node of the job was lost (down, unreachable): a
 *                        crash, resumed from the checkpoint in a new batch
 *                        job while max_restarts allows
 *   OUT_OF_MEMORY, BOOT_FAIL, DEADLINE, ...
 *                        Slurm's own failure: the job fails with its state and
 *                        reason (traind.yaml(5), EXECUTOR) */
static exec_outcome outcome_of(const char *state, long long code, long long sig)
{
    bool completed = !strcmp(state, "COMPLETED"), failed = !strcmp(state, "FAILED");
    if ((completed || failed) && sig)
        return EXEC_KILLED;
    if (failed && code == WORKER_EXIT_STOPPED)
        return EXEC_REQUEUE;
    if (completed || (failed && code))
        return EXEC_EXITED;
    if (!strcmp(state, "TIMEOUT") || !strcmp(state, "PREEMPTED") || !strcmp(state, "LOST"))
        return EXEC_REQUEUE;
    if (!strcmp(state, "CANCELLED"))
        return EXEC_CANCELLED;
    if (!strcmp(state, "SUBMIT_FAILED"))
        return EXEC_NOT_STARTED;
    if (!strcmp(state, "NODE_FAIL"))
        return EXEC_NODE_LOST;
    return EXEC_SCHED_FAILED;
}

static void end_job(slurm_job *sj, const char *state, const char *reason, long long code, long long sig)
{
    if (sj->ended)
        return;
    sj->ended = true;
    stop_timer(sj);
    reason = reason && *reason ? reason : NULL;
    exec_end e = {
        .outcome = outcome_of(state, code, sig),
        .exit_status = code,
        .term_signal = (int)sig,
        .progress_lossy = true,
    };
    const char *sid = sj->sched_id[0] ? sj->sched_id : "?";
    char what[384];
    if (e.outcome == EXEC_NOT_STARTED)
        snprintf(what, sizeof what, "cannot submit to Slurm: %s", reason ? reason : "sbatch failed");
    else if (e.outcome == EXEC_CANCELLED)
        snprintf(what, sizeof what, "Slurm job %s was cancelled %s", sid,
                 sj->cancel_sent ? "by traind" : "outside traind (scancel)");
    else
        snprintf(what, sizeof what, "Slurm job %s ended %s (exit code %lld:%lld%s%s)", sid, state, code, sig,
                 reason ? ", " : "", reason ? reason : "");
    e.what = sj->why[0] ? sj->why : what;
    sj->cb.on_exit(sj->ctx, &e);
    /* the caller's maybe_free() frees it once nothing is in flight */
}

/* Copies a value of Slurm's output, keeping only characters that are safe
 * to log and show (the text is untrusted). */
static void copy_clean(char *dst, size_t cap, const char *src, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n && w + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[w++] = (isalnum(c) || strchr("_-.,:()/+@ ", c)) ? (char)c : '?';
    }
    dst[w] = '\0';
}

/* The value of KEY= in `scontrol -o` output (space-separated KEY=VALUE),
 * into dst; false when absent. */
static bool field(const char *text, const char *key, char *dst, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = text; (p = strstr(p, key)) != NULL; p += kl) {
        if ((p != text && p[-1] != ' ' && p[-1] != '\n') || p[kl] != '=')
            continue;
        const char *v = p + kl + 1;
        size_t n = strcspn(v, " \n");
        copy_clean(dst, cap, v, n);
        return true;
    }
    return false;
}

static bool state_final(const char *s)
{
    static const char *const finals[] = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                                         "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED",
                                         "SPECIAL_EXIT"};
    for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++)
        if (strcmp(s, finals[i]) == 0)
            return true;
    return false;
}

static char *shell_quote(const char *s)
{
    size_t n = 2;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *q = xmalloc(n + 1), *w = q;
    *w++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(w, "'\\''", 4);
            w += 4;
        } else {
            *w++ = *p;
        }
    }
    *w++ = '\'';
    *w = '\0';
    return q;
}

/* ------------------------------------------------------- progress file */

typedef struct read_req {
    uv_work_t work;
    slurm_job *sj;
    char *path;
    long long offset;
    bool skip_to_end;
    char *data;
    size_t len;
} read_req;

static void read_work(uv_work_t *w)
{
    read_req *r = w->data;
    int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if (st.st_size < r->offset)
            r->offset = 0;   /* replaced by a shorter file: read it from the start */
        if (r->skip_to_end)
            r->offset = st.st_size;
        size_t want = (size_t)(st.st_size - r->offset);
        if (want > SLURM_READ_MAX)
            want = SLURM_READ_MAX;
        r->data = xmalloc(want + 1);
        ssize_t got = want ? pread(fd, r->data, want, (off_t)r->offset) : 0;
        r->len = got > 0 ? (size_t)got : 0;
        r->offset += (long long)r->len;
    }
    close(fd);
}

static void on_bad(void *ctx, const char *why)
{
    slurm_job *sj = ctx;
    if (sj->reader.n_bad <= 10)
        log_warn("job %s (Slurm job %s): unreadable progress line ignored: %s", sj->id, sj->sched_id, why);
}

static void on_msg(void *ctx, const progress_msg *m)
{
    slurm_job *sj = ctx;
    if (!sj->ended)
        sj->cb.on_msg(sj->ctx, m);
}

/* After a poll: what scontrol said, now that the progress read so far is in. */
/* The Slurm job is over: DIR/slurm_job_id goes (thread pool) before the
 * job table hears of it, so a resubmission's new id is never removed late
 * and a restarted traind never adopts a job that has ended. */
static void on_unlinked(uv_fs_t *req)
{
    slurm_job *sj = req->data;
    uv_fs_req_cleanup(req);
    free(req);
    sj->busy--;
    end_job(sj, sj->state, sj->reason, sj->exit_code, sj->exit_signal);
    maybe_free(sj);
}

static void dispatch(slurm_job *sj)
{
    if (sj->ended || !sj->final || sj->unlinking)
        return;
    progress_reader_finish(&sj->reader, on_msg, on_bad, sj);
    uv_fs_t *req = xcalloc(1, sizeof *req);
    req->data = sj;
    char *path = xasprintf("%s/slurm_job_id", sj->dir);
    int rc = uv_fs_unlink(sj->se->loop, req, path, on_unlinked);
    free(path);
    if (rc == 0) {
        sj->busy++;
        sj->unlinking = true;
        stop_timer(sj);
    } else {
        free(req);
        end_job(sj, sj->state, sj->reason, sj->exit_code, sj->exit_signal);
    }
}

static void read_done(uv_work_t *w, int status)
{
    read_req *r = w->data;
    slurm_job *sj = r->sj;
    sj->busy--;
    sj->polling = false;
    (void)status;
    if (!sj->ended) {
        sj->offset = r->offset;
        sj->skip_to_end = false;
        if (r->len)
            progress_reader_feed(&sj->reader, r->data, r->len, on_msg, on_bad, sj);
        dispatch(sj);
    }
    free(r->data);
    free(r->path);
    free(r);
    maybe_free(sj);
}

static void read_progress(slurm_job *sj)
{
    read_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->sj = sj;
    r->path = xasprintf("%s/progress.jsonl", sj->dir);
    r->offset = sj->offset;
    r->skip_to_end = sj->skip_to_end;
    if (uv_queue_work(sj->se->loop, &r->work, read_work, read_done) < 0) {
        free(r->path);
        free(r);
        sj->polling = false;
        dispatch(sj);
        return;
    }
    sj->busy++;
}

/* ------------------------------------------------------------- polling */

static void poll_done(void *ctx, const subproc_result *res)
{
    slurm_job *sj = ctx;
    sj->busy--;
    if (sj->ended) {
        sj->polling = false;
        maybe_free(sj);
        return;
    }
    if (res->rc == 0 && res->term_signal == 0 && res->exit_status == 0) {
        char state[32] = "", reason[128] = "", exitc[32] = "";
        if (!field(res->out, "JobState", state, sizeof state)) {
            if (!sj->poll_error_logged)
                log_warn("job %s: scontrol show job %s: no JobState in its answer", sj->id, sj->sched_id);
            sj->poll_error_logged = true;
            sj->polling = false;
            return;
        }
        sj->poll_error_logged = false;
        field(res->out, "Reason", reason, sizeof reason);
        if (!strcmp(reason, "None"))
            reason[0] = '\0';
        if (state_final(state)) {
            long long code = 0, sig = 0;
            if (field(res->out, "ExitCode", exitc, sizeof exitc) && sscanf(exitc, "%lld:%lld", &code, &sig) != 2)
                code = sig = 0;
            if (code < 0 || code > 255)
                code = 255;
            if (sig < 0 || sig > 128)
                sig = 0;
            sj->final = true;
            sj->exit_code = code;
            sj->exit_signal = sig;
            snprintf(sj->state, sizeof sj->state, "%s", state);
            snprintf(sj->reason, sizeof sj->reason, "%s", reason);
            log_info("job %s: Slurm job %s ended %s (exit %lld:%lld%s%s)", sj->id, sj->sched_id, state, code, sig,
                     reason[0] ? ", " : "", reason);
        } else if (!strcmp(state, "PENDING") && reason_never_clears(reason)) {
            sj->polling = false;
            doom(sj, reason);
            return;
        } else if (strcmp(state, sj->state) != 0 || strcmp(reason, sj->reason) != 0) {
            snprintf(sj->state, sizeof sj->state, "%s", state);
            snprintf(sj->reason, sizeof sj->reason, "%s", reason);
            bool running = !strcmp(state, "RUNNING") || !strcmp(state, "COMPLETING") ||
                           !strcmp(state, "SIGNALING") || !strcmp(state, "STAGE_OUT");
            log_info("job %s: Slurm job %s %s%s%s", sj->id, sj->sched_id, state, reason[0] ? " " : "", reason);
            sj->cb.on_sched(sj->ctx, running, state, reason);
        }
        read_progress(sj);
        return;
    }
    if (res->rc == 0 && res->term_signal == 0 && strstr(res->err, "Invalid job id")) {
        log_warn("job %s: Slurm no longer knows its job %s", sj->id, sj->sched_id);
        sj->final = true;
        snprintf(sj->state, sizeof sj->state, "LOST");
        snprintf(sj->reason, sizeof sj->reason, "Slurm no longer knows job %s", sj->sched_id);
        sj->exit_code = sj->exit_signal = 0;
        read_progress(sj);   /* still polling until it is in */
        return;
    }
    sj->polling = false;
    if (!sj->poll_error_logged) {
        char err[200];
        copy_clean(err, sizeof err, res->err, strcspn(res->err, "\n"));
        log_warn("job %s: scontrol show job %s failed (%s%s); retrying", sj->id, sj->sched_id,
                 res->rc == -ETIMEDOUT ? "timed out" : "error", err[0] ? ": " : "");
        if (err[0])
            log_warn("job %s: scontrol: %s", sj->id, err);
    }
    sj->poll_error_logged = true;
}

static void poll_now(slurm_job *sj)
{
    if (sj->polling || sj->ended || sj->unlinking || sj->doomed || !sj->sched_id[0])
        return;
    char *argv[] = {"scontrol", "-o", "show", "job", sj->sched_id, NULL};
    int rc = subproc_run(sj->se->loop, argv, SLURM_CMD_TIMEOUT_S, poll_done, sj);
    if (rc < 0) {
        if (!sj->poll_error_logged)
            log_error("job %s: cannot run scontrol: %s", sj->id, uv_strerror(rc));
        sj->poll_error_logged = true;
        return;
    }
    sj->busy++;
    sj->polling = true;
}

static void on_tick(uv_timer_t *t)
{
    poll_now(t->data);
}

static void start_polling(slurm_job *sj)
{
    uv_timer_init(sj->se->loop, &sj->timer);
    sj->timer.data = sj;
    sj->timer_open = true;
    uv_timer_start(&sj->timer, on_tick, SLURM_POLL_MS, SLURM_POLL_MS);
}

/* ------------------------------------------------------------ cancel */

static void scancel_done(void *ctx, const subproc_result *res)
{
    slurm_job *sj = ctx;
    sj->busy--;
    if (res->rc != 0 || res->term_signal != 0 || res->exit_status != 0) {
        char err[200];
        copy_clean(err, sizeof err, res->err, strcspn(res->err, "\n"));
        log_warn("job %s: scancel %s failed%s%s", sj->id, sj->sched_id, err[0] ? ": " : "", err);
    }
    if (!sj->ended)
        poll_now(sj);
    maybe_free(sj);
}

static int run_scancel(slurm_job *sj)
{
    char *argv[] = {"scancel", sj->sched_id, NULL};
    int rc = subproc_run(sj->se->loop, argv, SLURM_CMD_TIMEOUT_S, scancel_done, sj);
    if (rc < 0) {
        log_error("job %s: cannot run scancel: %s", sj->id, uv_strerror(rc));
        return rc;
    }
    log_info("job %s: scancel %s", sj->id, sj->sched_id);
    sj->busy++;
    return 0;
}

/* ------------------------------------------------------------ submit */

typedef struct file_req {
    uv_work_t work;
    slurm_job *sj;
    char *path, *data;
    int rc;
    long long progress_size;
} file_req;

static void write_id_work(uv_work_t *w)
{
    file_req *r = w->data;
    r->rc = write_file_atomic(r->path, r->data, strlen(r->data), 0644);
}

static void write_id_done(uv_work_t *w, int status)
{
    file_req *r = w->data;
    slurm_job *sj = r->sj;
    (void)status;
    sj->busy--;
    if (r->rc < 0)
        log_error("job %s: cannot write %s: %s (a restarted traind would not find Slurm job %s)", sj->id, r->path,
                  strerror(-r->rc), sj->sched_id);
    free(r->path);
    free(r->data);
    free(r);
    maybe_free(sj);
}

static void sbatch_done(void *ctx, const subproc_result *res)
{
    slurm_job *sj = ctx;
    sj->busy--;
    /* --parsable: "ID" or "ID;CLUSTER" */
    size_t n = strspn(res->out, "0123456789");
    bool ok = res->rc == 0 && res->term_signal == 0 && res->exit_status == 0 && n > 0 && n <= EXEC_SCHED_ID_MAX &&
              (res->out[n] == '\0' || res->out[n] == '\n' || res->out[n] == ';');
    if (!ok) {
        char err[256];
        const char *src = res->err_len ? res->err : res->out;
        copy_clean(err, sizeof err, src, strcspn(src, "\n"));
        if (res->rc == -ETIMEDOUT)
            snprintf(err, sizeof err, "sbatch did not answer in %.0f s", SLURM_CMD_TIMEOUT_S);
        log_error("job %s: sbatch failed: %s", sj->id, err[0] ? err : "no job id in its answer");
        if (!sj->ended)
            end_job(sj, "SUBMIT_FAILED", err[0] ? err : "sbatch gave no job id", 0, 0);
        maybe_free(sj);
        return;
    }
    memcpy(sj->sched_id, res->out, n);
    sj->sched_id[n] = '\0';
    if (!sj->found_live)
        log_info("job %s: submitted to Slurm as job %s", sj->id, sj->sched_id);
    file_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->sj = sj;
    r->path = xasprintf("%s/slurm_job_id", sj->dir);
    r->data = xasprintf("%s\n", sj->sched_id);
    if (uv_queue_work(sj->se->loop, &r->work, write_id_work, write_id_done) == 0)
        sj->busy++;
    else {
        free(r->path);
        free(r->data);
        free(r);
    }
    if (sj->ended) {
        /* detached (shutdown) while sbatch ran: the job runs on in Slurm; the
         * id file (being written) lets the next traind adopt it */
        maybe_free(sj);
        return;
    }
    sj->cb.on_sched(sj->ctx, false, "PENDING", "");
    start_polling(sj);
    if (sj->cancel_pending)
        run_scancel(sj);
    else
        poll_now(sj);
}

static void script_work(uv_work_t *w)
{
    file_req *r = w->data;
    r->rc = write_file_atomic(r->path, r->data, strlen(r->data), 0755);
    struct stat st;
    char *pp = xasprintf("%s/progress.jsonl", r->sj->dir);
    r->progress_size = stat(pp, &st) == 0 ? (long long)st.st_size : 0;
    free(pp);
}

/* The CPUs one rank asks for (--cpus-per-task): its threads, cfg_rank_threads
 * of the config's threads and threads_per_job (traind.yaml(5), EXECUTOR). */
static int rank_cpus(const slurm_job *sj)
{
    return sj->threads > 0 ? sj->threads : 1;
}

static int job_ranks(const slurm_job *sj)
{
    return sj->ranks > 0 ? sj->ranks : 1;
}

/* The command line of sbatch for DIR/slurm.sh (with --test-only: Slurm's
 * answer whether the request can ever run, nothing submitted). */
typedef struct sbatch_cmd {
    char cpus[40], ntasks[40], grace[48], name[96], chdir_[PATH_MAX + 16], output[PATH_MAX + 32];
    char *part, *acct, *tl, *script;
    char **argv;
} sbatch_cmd;

static void sbatch_cmd_init(sbatch_cmd *c, const slurm_job *sj, bool test_only)
{
    const slurm_exec *se = sj->se;
    snprintf(c->cpus, sizeof c->cpus, "--cpus-per-task=%d", rank_cpus(sj));
    /* parallel.ranks → --ntasks; slurm.sh then runs the ranks as one srun
     * step (batch_script), each with --cpus-per-task of the threads. */
    snprintf(c->ntasks, sizeof c->ntasks, "--ntasks=%d", job_ranks(sj));
    snprintf(c->grace, sizeof c->grace, "--signal=B:TERM@%d", se->grace_s);
    snprintf(c->name, sizeof c->name, "--job-name=traind-%s", sj->id);
    snprintf(c->chdir_, sizeof c->chdir_, "--chdir=%s", sj->dir);
    snprintf(c->output, sizeof c->output, "--output=%s/worker.log", sj->dir);
    c->part = se->partition ? xasprintf("--partition=%s", se->partition) : NULL;
    c->acct = se->account ? xasprintf("--account=%s", se->account) : NULL;
    c->tl = se->time_limit ? xasprintf("--time=%s", se->time_limit) : NULL;
    c->script = xasprintf("%s/slurm.sh", sj->dir);
    char **argv = c->argv = xcalloc(17 + se->n_extra, sizeof *argv);
    size_t a = 0;
    argv[a++] = "sbatch";
    if (test_only)
        argv[a++] = "--test-only";
    argv[a++] = "--parsable";
    argv[a++] = c->name;
    argv[a++] = c->chdir_;
    argv[a++] = c->output;
    argv[a++] = "--open-mode=append";
    argv[a++] = c->cpus;
    argv[a++] = c->ntasks;
    argv[a++] = "--no-requeue";
    argv[a++] = c->grace;
    if (c->part)
        argv[a++] = c->part;
    if (c->acct)
        argv[a++] = c->acct;
    if (c->tl)
        argv[a++] = c->tl;
    for (size_t i = 0; i < se->n_extra; i++)
        argv[a++] = se->extra[i];
    argv[a++] = c->script;
    argv[a] = NULL;
}

static void sbatch_cmd_free(sbatch_cmd *c)
{
    free(c->argv);
    free(c->script);
    free(c->part);
    free(c->acct);
    free(c->tl);
}

/* sbatch of DIR/slurm.sh. */
static void submit_sbatch(slurm_job *sj)
{
    sbatch_cmd c;
    sbatch_cmd_init(&c, sj, false);
    int rc = subproc_run(sj->se->loop, c.argv, SLURM_CMD_TIMEOUT_S, sbatch_done, sj);
    sbatch_cmd_free(&c);
    if (rc < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "cannot run sbatch: %s", uv_strerror(rc));
        log_error("job %s: %s", sj->id, msg);
        end_job(sj, "SUBMIT_FAILED", msg, 0, 0);
    } else {
        sj->busy++;
    }
}

/* ------------------------------------------- a request no node can satisfy */

/* Slurm's answers (sbatch --test-only) to a request that no node of the
 * partition can ever satisfy, as opposed to one that waits for room. */
static bool never_fits(const char *text)
{
    static const char *const answers[] = {"Requested node configuration is not available",
                                          "More processors requested than permitted",
                                          "Node count specification invalid",
                                          "Requested partition configuration not available"};
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
        if (strstr(text, answers[i]))
            return true;
    return false;
}

/* Pending reasons that clear only when the cluster's configuration changes
 * (squeue(1), JOB REASON CODES): a job pending for one of them would wait
 * for ever (traind.yaml(5), EXECUTOR). */
static bool reason_never_clears(const char *reason)
{
    static const char *const reasons[] = {"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit",
                                          "BadConstraints", "InvalidAccount", "InvalidQOS",
                                          "DependencyNeverSatisfied"};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (!strcmp(reason, reasons[i]))
            return true;
    return false;
}

/* The partition's nodes, from sinfo: the most CPUs of one node and the CPUs
 * of all of them; 0 when unknown. */
typedef struct part_cpus {
    char name[64];
    long node_max, total;
} part_cpus;

/* One line "PARTITION|CPUS|NODES" of `sinfo -h -o %P|%c|%D` into pc, when
 * it is the partition's (the named one, or the default, marked '*'). */
static void part_cpus_add(part_cpus *pc, const char *want, const char *line, size_t len)
{
    const char *bar = memchr(line, '|', len);
    if (!bar)
        return;
    size_t pl = (size_t)(bar - line);
    bool dflt = pl > 0 && line[pl - 1] == '*';
    size_t nl = dflt ? pl - 1 : pl;
    if (want ? (strlen(want) != nl || memcmp(line, want, nl) != 0) : !dflt)
        return;
    char nums[64];
    size_t nn = len - pl - 1 < sizeof nums - 1 ? len - pl - 1 : sizeof nums - 1;
    memcpy(nums, bar + 1, nn);
    nums[nn] = '\0';
    char *end;
    long cpus = strtol(nums, &end, 10);   /* "2", or "2+" for nodes of 2 and more */
    const char *nb = strchr(end, '|');
    long nodes = nb ? strtol(nb + 1, NULL, 10) : 0;
    if (cpus <= 0 || nodes <= 0 || cpus > 1L << 24 || nodes > 1L << 24)
        return;
    copy_clean(pc->name, sizeof pc->name, line, nl);
    if (cpus > pc->node_max)
        pc->node_max = cpus;
    pc->total += cpus * nodes;
}

static part_cpus parse_part_cpus(const char *out, const char *want)
{
    part_cpus pc = {.name = "", .node_max = 0, .total = 0};
    for (const char *p = out; *p;) {
        size_t len = strcspn(p, "\n");
        part_cpus_add(&pc, want, p, len);
        p += len;
        if (*p)
            p++;
    }
    return pc;
}

/* What the job asks Slurm for and where that comes from, in the config's
 * keys, and what the partition has. */
static void describe_request(const slurm_job *sj, const part_cpus *pc, char *buf, size_t cap)
{
    int ranks = job_ranks(sj), cpus = rank_cpus(sj);
    char share[64] = "";
    if (ranks > 1)
        snprintf(share, sizeof share, " / parallel.ranks %d", ranks);
    int n = snprintf(buf, cap,
                     "it asks for %d rank%s × %d CPU%s (--ntasks=%d --cpus-per-task=%d: a rank's CPUs are its "
                     "threads, the config's threads %d capped by the daemon's threads_per_job %d%s)",
                     ranks, ranks == 1 ? "" : "s", cpus, cpus == 1 ? "" : "s", ranks, cpus, sj->config_threads,
                     sj->threads_per_job, share);
    if (n < 0 || (size_t)n >= cap || pc->node_max <= 0)
        return;
    snprintf(buf + n, cap - (size_t)n, ", and partition %s has nodes of at most %ld CPU%s, %ld in all",
             pc->name[0] ? pc->name : "(default)", pc->node_max, pc->node_max == 1 ? "" : "s", pc->total);
}

/* Does the request fit the partition's nodes, every one counted whatever
 * its state (sinfo lists down and drained nodes too)?  False when unknown. */
static bool fits_partition(const slurm_job *sj, const part_cpus *pc)
{
    long cpus = rank_cpus(sj), ranks = job_ranks(sj);
    return pc->node_max > 0 && cpus <= pc->node_max && cpus * ranks <= pc->total;
}

/* sinfo answered (or not): the job ends with what Slurm said and the
 * numbers, unless the partition's nodes, down ones included, have room
 * for it (then it is submitted, and waits). */
static void sinfo_done(void *ctx, const subproc_result *res)
{
    slurm_job *sj = ctx;
    sj->busy--;
    if (sj->ended) {
        maybe_free(sj);
        return;
    }
    bool ok = res->rc == 0 && res->term_signal == 0 && res->exit_status == 0;
    part_cpus pc = ok ? parse_part_cpus(res->out, sj->se->partition)
                      : (part_cpus){.name = "", .node_max = 0, .total = 0};
    char req[512];
    describe_request(sj, &pc, req, sizeof req);
    if (sj->doomed) {
        snprintf(sj->why, sizeof sj->why,
                 "Slurm job %s cannot start: it was pending for %s, which clears only if the cluster's "
                 "configuration changes, and traind cancelled it: %s",
                 sj->sched_id, sj->slurm_said, req);
        log_error("job %s: %s", sj->id, sj->why);
        sj->final = true;
        snprintf(sj->state, sizeof sj->state, "PENDING");
        snprintf(sj->reason, sizeof sj->reason, "%s", sj->slurm_said);
        sj->exit_code = sj->exit_signal = 0;
        dispatch(sj);
    } else if (fits_partition(sj, &pc)) {
        /* Slurm counts only the nodes up now: with one down (a lost node
         * being brought back) the same request is refused, though the
         * partition's nodes have room for it: it waits for them */
        log_warn("job %s: Slurm cannot place it now (sbatch --test-only: %s), but the partition's nodes, "
                 "down ones included, have room: %s; submitting, it waits for them", sj->id, sj->slurm_said, req);
        submit_sbatch(sj);
    } else {
        snprintf(sj->why, sizeof sj->why, "Slurm cannot run this job as asked (sbatch --test-only: %s): %s",
                 sj->slurm_said, req);
        log_error("job %s: %s", sj->id, sj->why);
        end_job(sj, "SUBMIT_FAILED", sj->slurm_said, 0, 0);
    }
    maybe_free(sj);
}

/* Asks sinfo for the CPUs of the partition's nodes, for the message. */
static void ask_partition_cpus(slurm_job *sj)
{
    char part[96] = "";
    if (sj->se->partition)
        snprintf(part, sizeof part, "--partition=%s", sj->se->partition);
    char *argv[] = {"sinfo", "-h", "-o", "%P|%c|%D", part[0] ? part : NULL, NULL};
    if (subproc_run(sj->se->loop, argv, SLURM_CMD_TIMEOUT_S, sinfo_done, sj) == 0) {
        sj->busy++;
        return;
    }
    subproc_result none = {.rc = -1, .out = "", .err = ""};
    sj->busy++;   /* sinfo_done's own decrement */
    sinfo_done(sj, &none);
}

/* Slurm keeps the job pending for a reason that never clears: it is
 * cancelled and fails (sinfo_done), instead of waiting for ever. */
static void doom(slurm_job *sj, const char *reason)
{
    sj->doomed = true;
    snprintf(sj->slurm_said, sizeof sj->slurm_said, "%s", reason);
    log_warn("job %s: Slurm job %s is pending for %s, which never clears by itself: cancelling it", sj->id,
             sj->sched_id, reason);
    run_scancel(sj);
    ask_partition_cpus(sj);
}

/* The line of Slurm's answer that says the request never fits ("allocation
 * failure: Requested node configuration is not available"), cleaned, into dst. */
static void said_line(const char *text, char *dst, size_t cap)
{
    for (const char *q = text; *q;) {
        size_t len = strcspn(q, "\n");
        copy_clean(dst, cap, q, len);
        if (never_fits(dst))
            return;
        q += len;
        if (*q)
            q++;
    }
    copy_clean(dst, cap, text, strcspn(text, "\n"));
}

/* sbatch --test-only answered: a request no node can satisfy fails now;
 * anything else (it fits, or Slurm could not say) goes to the real sbatch,
 * which has the last word. */
static void test_only_done(void *ctx, const subproc_result *res)
{
    slurm_job *sj = ctx;
    sj->busy--;
    if (sj->ended) {
        maybe_free(sj);
        return;
    }
    if (sj->cancel_pending) {
        end_job(sj, "CANCELLED", "cancelled before it was submitted", 0, 0);
        maybe_free(sj);
        return;
    }
    const char *text = res->err_len ? res->err : res->out;
    if (res->rc == 0 && res->term_signal == 0 && res->exit_status != 0 && never_fits(text)) {
        said_line(text, sj->slurm_said, sizeof sj->slurm_said);
        ask_partition_cpus(sj);
    } else {
        submit_sbatch(sj);
    }
    maybe_free(sj);
}

static void test_submit(slurm_job *sj)
{
    sbatch_cmd c;
    sbatch_cmd_init(&c, sj, true);
    int rc = subproc_run(sj->se->loop, c.argv, SLURM_CMD_TIMEOUT_S, test_only_done, sj);
    sbatch_cmd_free(&c);
    if (rc < 0)
        submit_sbatch(sj);
    else
        sj->busy++;
}

/* Before sbatch: is a live Slurm job of this job directory there already?
 * (A traind killed between sbatch's answer and DIR/slurm_job_id's write.)
 * Then it is adopted, not submitted twice.  Lines "ID|WORKDIR". */
static void squeue_done(void *ctx, const subproc_result *res)
{
    slurm_job *sj = ctx;
    sj->busy--;
    if (sj->ended) {
        maybe_free(sj);
        return;
    }
    char found[EXEC_SCHED_ID_MAX + 1] = "";
    if (res->rc == 0 && res->term_signal == 0 && res->exit_status == 0) {
        size_t dl = strlen(sj->dir);
        for (const char *p = res->out; *p;) {
            size_t len = strcspn(p, "\n"), n = strspn(p, "0123456789");
            if (n > 0 && n <= EXEC_SCHED_ID_MAX && n < len && p[n] == '|' && len - n - 1 == dl &&
                memcmp(p + n + 1, sj->dir, dl) == 0) {
                memcpy(found, p, n);
                found[n] = '\0';
            }
            p += len;
            if (*p)
                p++;
        }
    }
    if (!found[0]) {
        test_submit(sj);
        maybe_free(sj);
        return;
    }
    log_warn("job %s: Slurm job %s already runs this job directory; adopting it instead of submitting again",
             sj->id, found);
    subproc_result fake = {.out = found, .err = "", .out_len = strlen(found)};
    sj->found_live = true;
    sj->busy++;   /* sbatch_done's own decrement */
    sbatch_done(sj, &fake);
}

static void script_done(uv_work_t *w, int status)
{
    file_req *r = w->data;
    slurm_job *sj = r->sj;
    (void)status;
    sj->busy--;
    sj->offset = r->progress_size;
    if (sj->ended) {
        /* detached before anything was submitted */
    } else if (r->rc < 0) {
        char msg[PATH_MAX + 64];
        snprintf(msg, sizeof msg, "cannot write %s: %s", r->path, strerror(-r->rc));
        log_error("job %s: %s", sj->id, msg);
        end_job(sj, "SUBMIT_FAILED", msg, 0, 0);
    } else if (sj->cancel_pending) {
        end_job(sj, "CANCELLED", "cancelled before it was submitted", 0, 0);
    } else {
        char name[96];
        snprintf(name, sizeof name, "--name=traind-%s", sj->id);
        char *argv[] = {"squeue", "-h", name, "--states=PENDING,RUNNING,CONFIGURING,SUSPENDED", "-o", "%i|%Z",
                        NULL};
        if (subproc_run(sj->se->loop, argv, SLURM_CMD_TIMEOUT_S, squeue_done, sj) == 0)
            sj->busy++;
        else
            test_submit(sj);
    }
    free(r->path);
    free(r->data);
    free(r);
    maybe_free(sj);
}

/* " --data-dir D" for each of the daemon's data dirs, quoted. */
static char *data_dir_args(const slurm_job *sj)
{
    char *s = xstrdup("");
    for (size_t i = 0; i < sj->n_data_dirs; i++) {
        char *q = shell_quote(sj->data_dirs[i]);
        char *t = xasprintf("%s --data-dir %s", s, q);
        free(s);
        free(q);
        s = t;
    }
    return s;
}

/* One rank: the worker execs as the batch shell.  N ranks (parallel.ranks):
 *
 *   srun --mpi=pmix: Slurm's PMIx plugin starts the N ranks of
 *   traind-mpi-worker directly as the tasks of one step and Open MPI 4.1
 *   (Debian's, built against the same PMIx) initializes from it; no mpirun,
 *   so every rank is a task Slurm tracks, signals and accounts for on
 *   whichever nodes it allocated.  --cpus-per-task again: since 22.05 srun
 *   no longer takes it from the batch job.  --kill-on-bad-exit: a rank that
 *   fails on its own exits without MPI_Finalize (daemon/mpi/), and the
 *   others would wait in their collective until the time limit.
 *
 *   The shell stays (not exec): Slurm's time-limit signal (--signal=B:TERM)
 *   and scancel's SIGTERM reach the batch shell, and srun's answer to a
 *   SIGTERM of its own is to kill the step, too soon for a checkpoint.  The
 *   shell traps it and sends srun SIGUSR1, which srun passes on to every
 *   rank as it is: the MPI worker's "checkpoint and stop" (traind/mpilaunch.h),
 *   agreed by all ranks at the same step.  srun exits with the highest exit
 *   code of its tasks: rank 0's (the others exit 0), so Slurm's ExitCode is
 *   the worker's as for one rank.
 *
 *   mpi_yield_when_idle: a rank waiting in a collective yields the CPU (see
 *   mpilaunch_argv; srun does not go through it). */
static char *batch_script(const slurm_job *sj, const char *exe)
{
    char *qdir = shell_quote(sj->dir);
    char *ppath = xasprintf("%s/progress.jsonl", sj->dir);
    char *qprog = shell_quote(ppath);
    free(ppath);
    char *dd = data_dir_args(sj);
    int threads = sj->threads > 0 ? sj->threads : 1;
    char *s;
    if (sj->ranks > 1 && sj->mpi_worker) {
        char *qw = shell_quote(sj->mpi_worker);
        s = xasprintf("#!/bin/sh\n"
                      "# Written by traind (executor: slurm) for job %s: %d ranks of the MPI worker as one\n"
                      "# srun step.  Slurm's SIGTERM (time limit, scancel) becomes SIGUSR1 to srun, which\n"
                      "# passes it to every rank: checkpoint and stop (srun's own SIGTERM kills the step).\n"
                      "export OMPI_MCA_mpi_yield_when_idle=1\n"
                      "trap 'kill -USR1 $pid 2>/dev/null' TERM USR1\n"
                      "srun --mpi=pmix --ntasks=%d --cpus-per-task=%d --kill-on-bad-exit=1 --input=none \\\n"
                      "    %s --worker %s --threads %d --progress-file %s%s &\n"
                      "pid=$!\n"
                      "# wait returns early (> 128) when a trap ran: wait again while srun lives\n"
                      "while :; do\n"
                      "    wait $pid; rc=$?\n"
                      "    [ $rc -gt 128 ] && kill -0 $pid 2>/dev/null && continue\n"
                      "    break\n"
                      "done\n"
                      "exit $rc\n",
                      sj->id, sj->ranks, sj->ranks, threads, qw, qdir, threads, qprog, dd);
        free(qw);
    } else {
        char *qexe = shell_quote(exe);
        s = xasprintf("#!/bin/sh\n"
                      "# Written by traind (executor: slurm) for job %s.  exec: the worker is the batch\n"
                      "# shell, which --signal=B:TERM signals before the time limit (it checkpoints).\n"
                      "exec %s --worker %s --threads %d --progress-file %s%s\n",
                      sj->id, qexe, qdir, threads, qprog, dd);
        free(qexe);
    }
    free(qdir);
    free(qprog);
    free(dd);
    return s;
}

static slurm_job *job_new(slurm_exec *se, const exec_spec *spec, const exec_callbacks *cb, void *ctx)
{
    slurm_job *sj = xcalloc(1, sizeof *sj);
    sj->base.ex = &se->base;
    sj->se = se;
    sj->cb = *cb;
    sj->ctx = ctx;
    sj->id = xstrdup(spec->job_id);
    sj->dir = xstrdup(spec->job_dir);
    sj->threads = spec->threads;
    sj->ranks = spec->ranks;
    sj->config_threads = spec->config_threads;
    sj->threads_per_job = spec->threads_per_job;
    sj->mpi_worker = spec->mpi_worker ? xstrdup(spec->mpi_worker) : NULL;
    sj->data_dirs = strv_dup(spec->data_dirs, spec->n_data_dirs);
    sj->n_data_dirs = spec->n_data_dirs;
    progress_reader_init(&sj->reader);
    return sj;
}

static int slurm_start(executor *ex, const exec_spec *spec, const exec_callbacks *cb, void *ctx, exec_job **out)
{
    slurm_exec *se = (slurm_exec *)ex;
    slurm_job *sj = job_new(se, spec, cb, ctx);
    file_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->sj = sj;
    r->path = xasprintf("%s/slurm.sh", sj->dir);
    r->data = batch_script(sj, se->exe);
    int rc = uv_queue_work(se->loop, &r->work, script_work, script_done);
    if (rc < 0) {
        free(r->path);
        free(r->data);
        free(r);
        sj->ended = true;
        maybe_free(sj);
        return rc;
    }
    sj->busy++;
    *out = &sj->base;
    return 0;
}

static int slurm_adopt(executor *ex, const exec_spec *spec, const char *sched_id, const exec_callbacks *cb,
                       void *ctx, exec_job **out)
{
    size_t n = sched_id ? strlen(sched_id) : 0;
    if (n == 0 || n > EXEC_SCHED_ID_MAX || strspn(sched_id, "0123456789") != n)
        return -EINVAL;
    slurm_exec *se = (slurm_exec *)ex;
    slurm_job *sj = job_new(se, spec, cb, ctx);
    memcpy(sj->sched_id, sched_id, n + 1);
    sj->skip_to_end = true;
    log_info("job %s: adopting Slurm job %s", sj->id, sj->sched_id);
    start_polling(sj);
    poll_now(sj);
    *out = &sj->base;
    return 0;
}

static int slurm_cancel(exec_job *x)
{
    slurm_job *sj = (slurm_job *)x;
    if (sj->ended)
        return -ESRCH;
    sj->cancel_sent = true;
    if (!sj->sched_id[0]) {
        sj->cancel_pending = true;   /* scancel as soon as sbatch answers */
        return 0;
    }
    return run_scancel(sj);
}

static int slurm_kill(exec_job *x)
{
    (void)x;
    return 0;   /* Slurm's KillWait ends what scancel's SIGTERM did not */
}

static int slurm_shutdown(exec_job *x)
{
    slurm_job *sj = (slurm_job *)x;
    if (sj->ended)
        return 0;
    sj->ended = true;
    stop_timer(sj);
    if (sj->sched_id[0])
        log_info("job %s: left running as Slurm job %s; the next traind adopts it", sj->id, sj->sched_id);
    exec_end e = {.detached = true};
    sj->cb.on_exit(sj->ctx, &e);
    maybe_free(sj);
    return 0;
}

static int slurm_pid(const exec_job *x)
{
    (void)x;
    return 0;
}

static const char *slurm_sched_id(const exec_job *x)
{
    const slurm_job *sj = (const slurm_job *)x;
    return sj->sched_id[0] ? sj->sched_id : NULL;
}

static void slurm_free(executor *ex)
{
    slurm_exec *se = (slurm_exec *)ex;
    free(se->exe);
    free(se->partition);
    free(se->account);
    free(se->time_limit);
    strv_free(se->extra, se->n_extra);
    free(se);
}

static const executor_ops slurm_ops = {
    .name = "slurm",
    .sched_name = "Slurm",
    .starts_running = false,
    .launches_ranks = true,      /* srun, in the batch script */
    .start = slurm_start,
    .adopt = slurm_adopt,
    .cancel = slurm_cancel,
    .kill = slurm_kill,
    .shutdown = slurm_shutdown,
    .pid = slurm_pid,
    .sched_id = slurm_sched_id,
    .free = slurm_free,
};

executor *executor_slurm_new(uv_loop_t *loop, const char *exe, const dconfig_slurm *cfg)
{
    slurm_exec *se = xcalloc(1, sizeof *se);
    se->base.ops = &slurm_ops;
    se->loop = loop;
    /* The batch script runs on another machine: /proc/self/exe means
     * nothing there, the binary's real path (installed on every node) does. */
    char buf[PATH_MAX];
    ssize_t n = strcmp(exe, "/proc/self/exe") == 0 ? readlink(exe, buf, sizeof buf - 1) : -1;
    if (n > 0) {
        buf[n] = '\0';
        se->exe = xstrdup(buf);
    } else {
        se->exe = xstrdup(exe);
    }
    se->partition = cfg->partition ? xstrdup(cfg->partition) : NULL;
    se->account = cfg->account ? xstrdup(cfg->account) : NULL;
    se->time_limit = cfg->time_limit ? xstrdup(cfg->time_limit) : NULL;
    se->grace_s = cfg->signal_grace_s > 0 ? cfg->signal_grace_s : DCONFIG_DEFAULT_SIGNAL_GRACE_S;
    if (cfg->extra_args) {
        char *copy = xstrdup(cfg->extra_args), *save = NULL;
        size_t cap = 8;
        se->extra = xcalloc(cap, sizeof *se->extra);
        for (char *tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
            if (se->n_extra == cap) {
                cap *= 2;
                se->extra = xrealloc(se->extra, cap * sizeof *se->extra);
            }
            se->extra[se->n_extra++] = xstrdup(tok);
        }
        free(copy);
    }
    return &se->base;
}

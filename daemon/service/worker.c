/* worker — spawning and supervising a job's training process.  See traind/worker.h. */
#include "traind/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "traind/log.h"
#include "traind/util.h"

/* How long we wait for the pipe's EOF after the process exited (a grandchild
 * could hold it open): then we stop waiting. */
#define DRAIN_TIMEOUT_MS 1000

struct worker {
    uv_loop_t *loop;
    uv_process_t proc;
    uv_pipe_t pipe;
    uv_timer_t drain;
    worker_callbacks cb;
    void *ctx;
    progress_reader reader;
    int pid;
    char *job_dir;
    bool exited, eof, reported;
    int64_t exit_status;
    int term_signal;
    int open_handles;
};

static void on_closed(uv_handle_t *h)
{
    worker *w = h->data;
    if (--w->open_handles == 0) {
        progress_reader_free(&w->reader);
        free(w->job_dir);
        free(w);
    }
}

static void on_msg(void *ctx, const progress_msg *m)
{
    worker *w = ctx;
    if (!w->reported && w->cb.on_msg)
        w->cb.on_msg(w->ctx, m);
}

static void on_bad(void *ctx, const char *why)
{
    worker *w = ctx;
    if (w->reader.n_bad <= 10)
        log_warn("worker %d (%s): unreadable progress line ignored: %s", w->pid, w->job_dir, why);
    else if (w->reader.n_bad == 11)
        log_warn("worker %d (%s): more unreadable progress lines; no longer logging them", w->pid, w->job_dir);
}

static void finish(worker *w)
{
    if (w->reported || !w->exited || !w->eof)
        return;
    w->reported = true;
    w->cb.on_exit(w->ctx, w->exit_status, w->term_signal);
    uv_close((uv_handle_t *)&w->drain, on_closed);
    uv_close((uv_handle_t *)&w->proc, on_closed);
    if (!uv_is_closing((uv_handle_t *)&w->pipe))
        uv_close((uv_handle_t *)&w->pipe, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[64 * 1024];   /* the loop thread is the only reader */
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    worker *w = s->data;
    if (nread > 0) {
        progress_reader_feed(&w->reader, buf->base, (size_t)nread, on_msg, on_bad, w);
        return;
    }
    if (nread == 0)
        return;
    if (nread != UV_EOF)
        log_warn("worker %d: reading its progress pipe: %s", w->pid, uv_strerror((int)nread));
    progress_reader_finish(&w->reader, on_msg, on_bad, w);
    uv_read_stop(s);
    uv_close((uv_handle_t *)&w->pipe, on_closed);
    w->eof = true;
    finish(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    worker *w = t->data;
    if (!w->eof) {
        log_warn("worker %d: its progress pipe stayed open after it exited; closing it", w->pid);
        progress_reader_finish(&w->reader, on_msg, on_bad, w);
        uv_read_stop((uv_stream_t *)&w->pipe);
        uv_close((uv_handle_t *)&w->pipe, on_closed);
        w->eof = true;
        finish(w);
    }
}

static void on_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
    worker *w = p->data;
    w->exited = true;
    w->exit_status = exit_status;
    w->term_signal = term_signal;
    if (!w->eof)
        uv_timer_start(&w->drain, on_drain_timeout, DRAIN_TIMEOUT_MS, 0);
    finish(w);
}

/* Opens (creates) worker.log for appending, on the loop thread: a device
 * planted there is not even opened, a FIFO not waited on, a symlink not
 * followed.  The fd (blocking again), or -errno (-EINVAL: not a regular file). */
static int open_log(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return S_ISLNK(st.st_mode) ? -ELOOP : -EINVAL;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

int worker_spawn(uv_loop_t *loop, const worker_spec *spec, const worker_callbacks *cb, void *ctx,
                 worker **out)
{
    char *log_path = xasprintf("%s/worker.log", spec->job_dir);
    int log_fd = open_log(log_path);
    if (log_fd < 0) {
        log_error("cannot open %s: %s", log_path, file_error_text(log_fd));
        free(log_path);
        return log_fd;
    }
    free(log_path);

    worker *w = xcalloc(1, sizeof *w);
    w->loop = loop;
    w->cb = *cb;
    w->ctx = ctx;
    w->job_dir = xstrdup(spec->job_dir);
    progress_reader_init(&w->reader);
    uv_pipe_init(loop, &w->pipe, 0);
    uv_timer_init(loop, &w->drain);
    w->pipe.data = w->drain.data = w->proc.data = w;

    char threads[16], ppid[16];
    snprintf(threads, sizeof threads, "%d", spec->threads > 0 ? spec->threads : 1);
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    size_t argc = 0;
    char **args = xcalloc(8 + 2 * spec->n_data_dirs + 1, sizeof *args);
    args[argc++] = (char *)spec->exe;
    args[argc++] = "--worker";
    args[argc++] = (char *)spec->job_dir;
    args[argc++] = "--threads";
    args[argc++] = threads;
    args[argc++] = "--ppid";
    args[argc++] = ppid;
    for (size_t i = 0; i < spec->n_data_dirs; i++) {
        args[argc++] = "--data-dir";
        args[argc++] = spec->data_dirs[i];
    }
    args[argc] = NULL;

    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_IGNORE;                        /* /dev/null */
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = log_fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = log_fd;
    stdio[3].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE; /* the child writes progress */
    stdio[3].data.stream = (uv_stream_t *)&w->pipe;

    uv_process_options_t po = {
        .exit_cb = on_exit_cb,
        .file = spec->exe,
        .args = args,
        .cwd = spec->job_dir,
        .stdio = stdio,
        .stdio_count = 4,
    };
    int rc = uv_spawn(loop, &w->proc, &po);
    free(args);
    close(log_fd);
    if (rc < 0) {
        w->open_handles = 3;
        w->reported = true;
        uv_close((uv_handle_t *)&w->pipe, on_closed);
        uv_close((uv_handle_t *)&w->drain, on_closed);
        uv_close((uv_handle_t *)&w->proc, on_closed);
        return rc;
    }
    w->open_handles = 3;
    w->pid = w->proc.pid;
    rc = uv_read_start((uv_stream_t *)&w->pipe, on_alloc, on_read);
    if (rc < 0) {
        log_error("worker %d: cannot read its progress pipe: %s", w->pid, uv_strerror(rc));
        uv_close((uv_handle_t *)&w->pipe, on_closed);
        w->eof = true;
    }
    *out = w;
    return 0;
}

int worker_kill(worker *w, int signum)
{
    if (w->exited)
        return -ESRCH;
    return uv_process_kill(&w->proc, signum);
}

int worker_pid(const worker *w)
{
    return w->pid;
}

/* subproc — short commands with captured output, asynchronously.  See traind/subproc.h. */
#include "traind/subproc.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "traind/util.h"

typedef struct stream {
    uv_pipe_t pipe;
    char *buf;
    size_t len;
    struct sp *sp;
} stream;

typedef struct sp {
    uv_process_t proc;
    uv_timer_t timer;
    stream out, err;
    subproc_cb done;
    void *ctx;
    int open_handles;
    int streams_open;
    bool exited, timed_out;
    int64_t exit_status;
    int term_signal;
} sp;

static void on_closed(uv_handle_t *h)
{
    sp *p = h->data;
    if (--p->open_handles > 0)
        return;
    free(p->out.buf);
    free(p->err.buf);
    free(p);
}

static void finish(sp *p)
{
    if (!p->exited || p->streams_open > 0)
        return;
    subproc_result r = {
        .rc = p->timed_out ? -ETIMEDOUT : 0,
        .exit_status = p->exit_status,
        .term_signal = p->term_signal,
        .out = p->out.buf,
        .err = p->err.buf,
        .out_len = p->out.len,
        .err_len = p->err.len,
    };
    p->done(p->ctx, &r);
    uv_close((uv_handle_t *)&p->timer, on_closed);
    uv_close((uv_handle_t *)&p->proc, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[16 * 1024];   /* the loop thread is the only reader */
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    stream *st = s->data;
    if (nread > 0) {
        size_t room = SUBPROC_MAX_OUTPUT - st->len, n = (size_t)nread < room ? (size_t)nread : room;
        memcpy(st->buf + st->len, buf->base, n);
        st->len += n;
        st->buf[st->len] = '\0';
        return;
    }
    if (nread == 0)
        return;
    uv_read_stop(s);
    /* The handle's data must point at the sp for on_closed. */
    s->data = st->sp;
    uv_close((uv_handle_t *)s, on_closed);
    st->sp->streams_open--;
    finish(st->sp);
}

static void on_exit_cb(uv_process_t *proc, int64_t exit_status, int term_signal)
{
    sp *p = proc->data;
    p->exited = true;
    p->exit_status = exit_status;
    p->term_signal = term_signal;
    uv_timer_stop(&p->timer);
    finish(p);
}

static void on_timeout(uv_timer_t *t)
{
    sp *p = t->data;
    if (!p->exited) {
        p->timed_out = true;
        uv_process_kill(&p->proc, SIGKILL);
    }
}

int subproc_run(uv_loop_t *loop, char *const *argv, double timeout_s, subproc_cb done, void *ctx)
{
    return subproc_run_opts(loop, argv, timeout_s, NULL, done, ctx);
}

int subproc_pid(const subproc_t *p)
{
    return p->proc.pid;
}

int subproc_kill(subproc_t *p, int signum)
{
    return p->exited ? -ESRCH : uv_process_kill(&p->proc, signum);
}

int subproc_run_opts(uv_loop_t *loop, char *const *argv, double timeout_s, const subproc_opts *o, subproc_cb done,
                     void *ctx)
{
    sp *p = xcalloc(1, sizeof *p);
    p->done = done;
    p->ctx = ctx;
    p->out.buf = xmalloc(SUBPROC_MAX_OUTPUT + 1);
    p->err.buf = xmalloc(SUBPROC_MAX_OUTPUT + 1);
    p->out.buf[0] = p->err.buf[0] = '\0';
    p->out.sp = p->err.sp = p;
    uv_pipe_init(loop, &p->out.pipe, 0);
    uv_pipe_init(loop, &p->err.pipe, 0);
    uv_timer_init(loop, &p->timer);
    p->out.pipe.data = &p->out;
    p->err.pipe.data = &p->err;
    p->timer.data = p->proc.data = p;
    p->open_handles = 4;

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    if (o && o->stdin_fd >= 0) {
        stdio[0].flags = UV_INHERIT_FD;
        stdio[0].data.fd = o->stdin_fd;
    }
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err.pipe;
    uv_process_options_t po = {
        .exit_cb = on_exit_cb,
        .file = argv[0],
        .args = (char **)argv,
        .stdio = stdio,
        .stdio_count = 3,
    };
    int rc = uv_spawn(loop, &p->proc, &po);
    if (rc < 0) {
        p->out.pipe.data = p->err.pipe.data = p;
        uv_close((uv_handle_t *)&p->out.pipe, on_closed);
        uv_close((uv_handle_t *)&p->err.pipe, on_closed);
        uv_close((uv_handle_t *)&p->timer, on_closed);
        uv_close((uv_handle_t *)&p->proc, on_closed);
        return rc;
    }
    p->streams_open = 2;
    uv_read_start((uv_stream_t *)&p->out.pipe, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&p->err.pipe, on_alloc, on_read);
    uv_timer_start(&p->timer, on_timeout, (uint64_t)(timeout_s * 1000), 0);
    if (o && o->handle)
        *o->handle = p;
    return 0;
}

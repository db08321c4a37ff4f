/* supervisor — spawning and supervising a job's training process.  See traind/supervisor.h. */
#include "traind/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "traind/log.h"
#include "traind/mpilaunch.h"
#include "traind/util.h"

/* How long we wait for the progress socket's EOF after the process exited (a grandchild
 * could hold it open): then we stop waiting. */
#define DRAIN_TIMEOUT_MS 1000
/* How long a connection that is not accepted yet may take to show up after the exit. */
#define CONNECT_GRACE_MS 200
/* A job whose ranks mpi_hostfile places (traind.yaml(5)): how often its
 * progress file is read, and how much of it at most per read while it runs. */
#define TAIL_MS 200
#define TAIL_READ_MAX (1u << 20)

struct worker {
    uv_loop_t *loop;
    uv_signal_t chld;              /* SIGCHLD: reaps this worker's process (its pid only) */
    uv_pipe_t listener;            /* the progress socket, until the worker connects */
    uv_pipe_t *client;             /* the worker's connection; NULL until then */
    uv_timer_t drain;
    uv_timer_t tail;               /* progress_path: reads it every TAIL_MS */
    worker_callbacks cb;
    void *ctx;
    progress_reader reader;
    int pid;
    int ranks;
    char *job_dir;
    char *progress_path;           /* mpi_hostfile: JOBDIR/progress.jsonl, else NULL (the socket) */
    long long offset;              /* how far progress_path was read */
    bool reading;                  /* a read of progress_path is in the thread pool */
    bool exited, eof, reported;
    int64_t exit_status;
    int term_signal;
    int open_handles;              /* and reads in flight: w is freed when none is left */
};

/* One handle closed or one read done: w goes with the last. */
static void release(worker *w)
{
    if (--w->open_handles == 0) {
        progress_reader_free(&w->reader);
        free(w->job_dir);
        free(w->progress_path);
        free(w);
    }
}

static void on_closed(uv_handle_t *h)
{
    worker *w = h->data;
    if (w->client && h == (uv_handle_t *)w->client) {
        free(w->client);
        w->client = NULL;
    }
    release(w);
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
    uv_close((uv_handle_t *)&w->tail, on_closed);
    uv_close((uv_handle_t *)&w->chld, on_closed);
    if (w->client && !uv_is_closing((uv_handle_t *)w->client))
        uv_close((uv_handle_t *)w->client, on_closed);
    if (!uv_is_closing((uv_handle_t *)&w->listener))
        uv_close((uv_handle_t *)&w->listener, on_closed);
}

/* The reading side is done (EOF, error, or given up on). */
static void end_reading(worker *w)
{
    progress_reader_finish(&w->reader, on_msg, on_bad, w);
    if (w->client && !uv_is_closing((uv_handle_t *)w->client)) {
        uv_read_stop((uv_stream_t *)w->client);
        uv_close((uv_handle_t *)w->client, on_closed);
    }
    w->eof = true;
    finish(w);
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
        log_warn("worker %d: reading its progress socket: %s", w->pid, uv_strerror((int)nread));
    end_reading(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    worker *w = t->data;
    if (!w->eof) {
        if (w->client)
            log_warn("worker %d: its progress socket stayed open after it exited; closing it", w->pid);
        end_reading(w);
    }
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Only a process of our own user may speak for the job. */
static bool peer_is_us(uv_pipe_t *c)
{
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof cred;
    return uv_fileno((uv_handle_t *)c, &fd) == 0 &&
           getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid();
}

static void on_connection(uv_stream_t *srv, int status)
{
    worker *w = srv->data;
    if (status < 0)
        return;
    uv_pipe_t *c = xcalloc(1, sizeof *c);
    uv_pipe_init(w->loop, c, 0);
    if (uv_accept(srv, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, free_handle);
        return;
    }
    if (w->client || w->eof || !peer_is_us(c)) {
        log_warn("worker %d (%s): refused a second or foreign connection to its progress socket", w->pid,
                 w->job_dir);
        uv_close((uv_handle_t *)c, free_handle);
        return;
    }
    c->data = w;
    w->client = c;
    w->open_handles++;
    uv_close((uv_handle_t *)&w->listener, on_closed);   /* one connection per worker */
    int rc = uv_read_start((uv_stream_t *)c, on_alloc, on_read);
    if (rc < 0) {
        log_error("worker %d: cannot read its progress socket: %s", w->pid, uv_strerror(rc));
        end_reading(w);
    }
}

/* An abstract unix socket (no file to clean up, no path length limit of a
 * deep spool), named after this daemon and a counter; "@name" for the worker.
 * Returns the listening fd or -errno. */
static int listen_progress(char *addr, size_t addrlen)
{
    static unsigned long seq;
    snprintf(addr, addrlen, "@traind-%d-%lu-progress", (int)getpid(), ++seq);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(addr);
    memcpy(sa.sun_path + 1, addr + 1, len - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0 ||
        listen(fd, 4) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* A read of the progress file in the thread pool: a shared filesystem that
 * hangs holds up a pool thread, never the loop. */
typedef struct tail_read {
    uv_work_t req;
    worker *w;
    char *path;
    long long offset;
    size_t max;             /* bytes at most */
    bool after_exit;        /* started once the process had exited: sees all it wrote */
    char *data;             /* what was read (len bytes), malloc'd */
    size_t len;
} tail_read;

/* In a pool thread: up to r->max bytes from r->offset.  The job folder is the
 * daemon's, so a link planted there is not followed and a FIFO not waited on. */
static void tail_work(uv_work_t *req)
{
    tail_read *r = req->data;
    int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return;
    size_t cap = 0;
    while (r->len < r->max) {
        if (cap - r->len < 16384) {
            cap = cap ? 2 * cap : 65536;
            r->data = xrealloc(r->data, cap);
        }
        size_t want = cap - r->len < r->max - r->len ? cap - r->len : r->max - r->len;
        ssize_t n = pread(fd, r->data + r->len, want, (off_t)(r->offset + (long long)r->len));
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    close(fd);
}

static void start_read(worker *w, size_t max);

/* On the loop: the lines read go on; once the process has exited, reading
 * ends with a read that started after the exit and reached the file's end. */
static void tail_done(uv_work_t *req, int status)
{
    tail_read *r = req->data;
    worker *w = r->w;
    w->reading = false;
    if (status == 0 && r->len > 0) {
        w->offset += (long long)r->len;
        progress_reader_feed(&w->reader, r->data, r->len, on_msg, on_bad, w);
    }
    if (w->exited && !w->eof) {
        if (!r->after_exit || r->len == r->max)
            start_read(w, TAIL_READ_MAX);
        else
            end_reading(w);
    }
    free(r->data);
    free(r->path);
    free(r);
    release(w);
}

static void start_read(worker *w, size_t max)
{
    tail_read *r = xcalloc(1, sizeof *r);
    r->req.data = r;
    r->w = w;
    r->path = xstrdup(w->progress_path);
    r->offset = w->offset;
    r->max = max;
    r->after_exit = w->exited;
    if (uv_queue_work(w->loop, &r->req, tail_work, tail_done) != 0) {
        free(r->path);
        free(r);
        if (w->exited)
            end_reading(w);   /* cannot read what is left: the end as far as we know */
        return;
    }
    w->reading = true;
    w->open_handles++;
}

static void on_tail(uv_timer_t *t)
{
    worker *w = t->data;
    if (!w->reading)
        start_read(w, TAIL_READ_MAX);
}

/* Empties (creates) the progress file before a start, so that every line in
 * it is this start's.  0 or -errno. */
static int reset_progress_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

static void on_exit_cb(worker *w, int64_t exit_status, int term_signal)
{
    w->exited = true;
    w->exit_status = exit_status;
    w->term_signal = term_signal;
    if (w->progress_path) {
        /* the ranks are gone: what rank 0 wrote is all in the file, read
         * to its end (tail_done) unless a read is under way already */
        uv_timer_stop(&w->tail);
        if (!w->reading)
            start_read(w, TAIL_READ_MAX);
        return;
    }
    /* Not connected yet: a connection may still wait in the listen backlog
     * (the exit was seen first), with the line that says why it failed; if
     * none turns up soon, it never connected. */
    if (!w->eof)
        uv_timer_start(&w->drain, on_drain_timeout, w->client ? DRAIN_TIMEOUT_MS : CONNECT_GRACE_MS, 0);
    finish(w);
}

/* Any SIGCHLD: is it this worker's process?  (Each worker reaps its own pid
 * only, as libuv does for the processes it spawned.) */
static void on_sigchld(uv_signal_t *h, int signum)
{
    worker *w = h->data;
    (void)signum;
    if (w->exited)
        return;
    int st;
    pid_t r = waitpid(w->pid, &st, WNOHANG);
    if (r != w->pid)
        return;
    uv_signal_stop(h);
    on_exit_cb(w, WIFEXITED(st) ? WEXITSTATUS(st) : 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* Starts argv[0] (a PATH search as execvp) in dir with stdin /dev/null
 * and stdout and stderr on out_fd, every signal at its default and none
 * blocked.  posix_spawn, not fork: glibc's clone(CLONE_VM | CLONE_VFORK)
 * copies no page tables, so the cost of starting a job does not grow with
 * the daemon's memory (the summaries of 100,000 finished jobs made
 * uv_spawn's fork 3 times slower).  0 with *pid, or -errno. */
static int spawn_process(char **argv, const char *dir, int out_fd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
    if (!rc)
        rc = posix_spawn_file_actions_addchdir_np(&fa, dir);
    if (!rc)
        rc = posix_spawnattr_setsigdefault(&at, &all);
    if (!rc)
        rc = posix_spawnattr_setsigmask(&at, &none);
    if (!rc)
        rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    extern char **environ;
    if (!rc)
        rc = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return -rc;
}

/* The training process's argv: the worker itself for one rank, else the
 * mpirun launcher (traind/mpilaunch.h) over N ranks of the MPI worker.
 * threads and ppid: the caller's buffers (16 bytes), pause (24), pointed into by the result. */
static char **build_args(const worker_spec *spec, const char *addr, char *threads, char *ppid, char *pause,
                         char **mpirun_argv_out, const char *progress_path)
{
    snprintf(threads, 16, "%d", spec->threads > 0 ? spec->threads : 1);
    snprintf(ppid, 16, "%d", (int)getpid());
    bool mpi = spec->ranks > 1;
    size_t n = 0;
    char **wargs = xcalloc(12 + 2 * spec->n_data_dirs, sizeof *wargs);
    wargs[n++] = "--worker";
    wargs[n++] = (char *)spec->job_dir;
    wargs[n++] = "--threads";
    wargs[n++] = threads;
    wargs[n++] = "--ppid";
    wargs[n++] = mpi ? MPILAUNCH_SELF_PID : ppid;   /* a rank's parent is mpirun */
    wargs[n++] = progress_path ? "--progress-file" : "--progress";
    wargs[n++] = progress_path ? (char *)progress_path : (char *)addr;
    for (size_t i = 0; i < spec->n_data_dirs; i++) {
        wargs[n++] = "--data-dir";
        wargs[n++] = spec->data_dirs[i];
    }
    if (spec->pause_at > 0) {
        snprintf(pause, 24, "%ld", spec->pause_at);
        wargs[n++] = "--pause-at";
        wargs[n++] = pause;
    }
    char **args;
    if (mpi) {
        char **mv = mpilaunch_argv_hosts(spec->ranks, spec->hostfile, spec->mpi_worker, wargs, n);
        size_t mn = 0;
        while (mv[mn])
            mn++;
        args = xcalloc(mn + 4, sizeof *args);
        args[0] = (char *)spec->exe;
        args[1] = "--mpi-launch";
        args[2] = xstrdup(ppid);
        memcpy(args + 3, mv, mn * sizeof *mv);
        *mpirun_argv_out = (char *)mv;
    } else {
        args = xcalloc(n + 2, sizeof *args);
        args[0] = (char *)spec->exe;
        memcpy(args + 1, wargs, n * sizeof *wargs);
        *mpirun_argv_out = NULL;
    }
    free(wargs);
    return args;
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

/* A worker whose process never started: its handles closed, w freed after. */
static void close_unstarted(worker *w)
{
    w->reported = true;
    uv_close((uv_handle_t *)&w->listener, on_closed);
    uv_close((uv_handle_t *)&w->drain, on_closed);
    uv_close((uv_handle_t *)&w->tail, on_closed);
    uv_close((uv_handle_t *)&w->chld, on_closed);
}

int worker_spawn(uv_loop_t *loop, const worker_spec *spec, const worker_callbacks *cb, void *ctx,
                 worker **out)
{
    if (spec->ranks > 1 && !spec->mpi_worker)
        return -ENOENT;
    char *log_path = xasprintf("%s/worker.log", spec->job_dir);
    int log_fd = open_log(log_path);
    if (log_fd < 0) {
        log_error("cannot open %s: %s", log_path, file_error_text(log_fd));
        free(log_path);
        return log_fd;
    }
    free(log_path);
    char addr[108] = "";
    char *ppath = spec->ranks > 1 && spec->hostfile ? xasprintf("%s/progress.jsonl", spec->job_dir) : NULL;
    int lfd = ppath ? reset_progress_file(ppath) : listen_progress(addr, sizeof addr);
    if (lfd < 0) {
        if (ppath)
            log_error("cannot empty %s: %s", ppath, file_error_text(lfd));
        else
            log_error("cannot listen on a progress socket: %s", strerror(-lfd));
        free(ppath);
        close(log_fd);
        return lfd;
    }

    worker *w = xcalloc(1, sizeof *w);
    w->loop = loop;
    w->cb = *cb;
    w->ctx = ctx;
    w->ranks = spec->ranks > 1 ? spec->ranks : 1;
    w->job_dir = xstrdup(spec->job_dir);
    w->progress_path = ppath;
    progress_reader_init(&w->reader);
    uv_pipe_init(loop, &w->listener, 0);
    uv_timer_init(loop, &w->drain);
    uv_timer_init(loop, &w->tail);
    uv_signal_init(loop, &w->chld);
    w->listener.data = w->drain.data = w->tail.data = w->chld.data = w;
    w->open_handles = 4;   /* chld, listener, drain, tail; + the client once it connects */
    int rc = 0;
    if (!ppath) {
        rc = uv_pipe_open(&w->listener, lfd);
        if (rc < 0)
            close(lfd);   /* not the handle's yet */
        else
            rc = uv_listen((uv_stream_t *)&w->listener, 4, on_connection);
    }
    if (rc < 0) {
        log_error("cannot listen on a progress socket: %s", uv_strerror(rc));
        close(log_fd);
        close_unstarted(w);
        return rc;
    }

    char *mpirun_argv = NULL, threads[16], ppid[16], pause[24];
    char **args = build_args(spec, addr, threads, ppid, pause, &mpirun_argv, ppath);

    /* watching before the process exists: its exit cannot be missed */
    rc = uv_signal_start(&w->chld, on_sigchld, SIGCHLD);
    pid_t pid = -1;
    if (rc == 0)
        rc = spawn_process(args, spec->job_dir, log_fd, &pid);   /* args[0] is spec->exe */
    if (mpirun_argv) {
        free(args[2]);
        mpilaunch_argv_free((char **)mpirun_argv);
    }
    free(args);
    close(log_fd);
    if (rc < 0) {
        close_unstarted(w);
        return rc;
    }
    if (ppath)
        uv_timer_start(&w->tail, on_tail, TAIL_MS, TAIL_MS);
    w->pid = pid;   /* a SIGCHLD that came already is dispatched later: it finds the pid */
    *out = w;
    return 0;
}

int worker_kill(worker *w, int signum)
{
    if (w->exited)
        return -ESRCH;
    /* mpirun would SIGKILL the ranks a second after a SIGTERM; the signal it
     * forwards untouched is the ranks' "checkpoint and stop". */
    if (signum == SIGTERM && w->ranks > 1)
        signum = MPILAUNCH_STOP_SIGNAL;
    return kill(w->pid, signum) == 0 ? 0 : -errno;
}

int worker_pid(const worker *w)
{
    return w->pid;
}

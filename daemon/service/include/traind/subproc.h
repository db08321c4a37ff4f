/*
 * subproc — run a short command (sbatch, scancel, scontrol) off the loop
 * thread's back: uv_spawn with its stdout and stderr read asynchronously,
 * so the event loop never waits for a slow or hung cluster controller.
 *
 * The output is untrusted text: each stream is kept up to SUBPROC_MAX_OUTPUT
 * bytes (the rest is read and dropped) and handed over NUL-terminated.  A
 * command still running after its timeout is killed (SIGKILL) and reported
 * with rc -ETIMEDOUT.
 */
#ifndef TRAIND_SUBPROC_H
#define TRAIND_SUBPROC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define SUBPROC_MAX_OUTPUT (64 * 1024)

typedef struct subproc_result {
    int rc;                  /* 0, or -ETIMEDOUT (killed at its timeout) */
    int64_t exit_status;     /* when term_signal == 0 */
    int term_signal;
    const char *out, *err;   /* NUL-terminated, at most SUBPROC_MAX_OUTPUT bytes each */
    size_t out_len, err_len;
} subproc_result;

typedef void (*subproc_cb)(void *ctx, const subproc_result *r);

/* Starts argv[0] (looked up in PATH) with stdin /dev/null.  done runs once on
 * the loop thread after the process exited and both streams closed.  Returns
 * 0, or a negative errno (the command could not start; done never runs). */
int subproc_run(uv_loop_t *loop, char *const *argv, double timeout_s, subproc_cb done, void *ctx);

/* A running command, to signal until its done has run. */
typedef struct sp subproc_t;

typedef struct subproc_opts {
    int stdin_fd;          /* >= 0: the command's stdin (the caller keeps and closes its fd); -1: /dev/null */
    subproc_t **handle;    /* non-NULL: gets the command, valid until done has returned */
} subproc_opts;

/* subproc_run with options (o may be NULL). */
int subproc_run_opts(uv_loop_t *loop, char *const *argv, double timeout_s, const subproc_opts *o, subproc_cb done,
                     void *ctx);

/* Its process id. */
int subproc_pid(const subproc_t *p);

/* Sends signum to the command unless it has exited.  0 or a negative errno. */
int subproc_kill(subproc_t *p, int signum);

#endif

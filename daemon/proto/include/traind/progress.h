/*
 * progress — the worker → daemon progress protocol: one JSON object per line
 * on the unix socket the daemon listens on for each worker (fd 3 of the worker;
 * traind/supervisor.h).
 *
 *   {"ev":"start","step":1000,"total_steps":5000,"checkpoint_step":1000}
 *   {"ev":"log","step":1200,"total_steps":5000,"lr":1.8e-4,"loss":0.02,"loss_avg":0.023,
 *    "grad_norm":0.41,"elapsed_s":1.2,"steps_per_s":5321,"checkpoint_step":1000}
 *   {"ev":"tick", ...as log...}          progress between metrics points
 *   {"ev":"ckpt","step":1500,...}        checkpoint.bin now holds step 1500
 *   {"ev":"eval","step":1500,"eval_loss":0.03,...}
 *   {"ev":"notice","message":"..."}      something to show in the job's errors
 *   {"ev":"failed","message":"loss is NaN at step 812"}
 *   {"ev":"done","step":5000,...}
 *
 * Non-finite numbers travel as null.  The daemon treats the stream as
 * untrusted: a line that is not such an object is reported and skipped, and
 * a line longer than PROGRESS_MAX_LINE is dropped whole.
 */
#ifndef TRAIND_PROGRESS_H
#define TRAIND_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include "traind/train_point.h"

#define PROGRESS_MAX_LINE (64 * 1024)
#define PROGRESS_MAX_MESSAGE 1024

typedef enum {
    PEV_START, PEV_NOTICE, PEV_LOG, PEV_TICK, PEV_CKPT, PEV_EVAL, PEV_FAILED, PEV_DONE
} progress_ev;

typedef struct progress_msg {
    progress_ev ev;
    train_point pt;            /* step -1, numbers NAN when absent; pt.time is "elapsed_s" */
    long total_steps;          /* -1 when absent */
    long checkpoint_step;      /* -1 when absent / none */
    char message[PROGRESS_MAX_MESSAGE];                /* "" when absent */
} progress_msg;

/* A message with every field absent. */
void progress_msg_init(progress_msg *m, progress_ev ev);

const char *progress_ev_name(progress_ev ev);

/* Encodes m as one line ending in '\n' into a malloc'd string (*len without NUL). */
char *progress_encode(const progress_msg *m, size_t *len);

/* Decodes one line (without its '\n').  Returns 0, or -1 with a reason in err. */
int progress_decode(const char *line, size_t len, progress_msg *m, char *err, size_t errlen);

/*
 * A line splitter for the daemon's end of the pipe: feed it whatever a read
 * returned; it calls on_msg for every good line and on_bad for every line it
 * had to skip (with the reason).
 */
typedef struct progress_reader {
    char *buf;
    size_t len, cap;
    bool discarding;           /* inside an over-long line: drop up to the next '\n' */
    unsigned long n_bad;
} progress_reader;

typedef void (*progress_msg_cb)(void *ctx, const progress_msg *m);
typedef void (*progress_bad_cb)(void *ctx, const char *why);

void progress_reader_init(progress_reader *r);
void progress_reader_free(progress_reader *r);
void progress_reader_feed(progress_reader *r, const char *data, size_t n,
                          progress_msg_cb on_msg, progress_bad_cb on_bad, void *ctx);
/* At EOF: a last line without '\n' is decoded too. */
void progress_reader_finish(progress_reader *r, progress_msg_cb on_msg, progress_bad_cb on_bad, void *ctx);

#endif

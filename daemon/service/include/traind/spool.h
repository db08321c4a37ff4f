/*
 * spool — the job directory of traind(8) THE SPOOL on disk: its layout, job ids, the
 * API token, and the intake of incoming/.
 *
 *   <spool>/incoming/NAME.yaml   watched (inotify via uv_fs_event, a scan at
 *                                start-up and a rescan every 2 s as a safety
 *                                net); each file is renamed byte for byte to
 *   <spool>/jobs/<id>/config.yaml and validated (intake_validate), both on
 *                                the thread pool.
 *
 * A job id is claimed by creating its directory (mkdir is atomic), so two
 * submissions can never get the same id, whichever thread makes them.
 *
 * incoming/ or jobs/ removed while the daemon runs are made again (by the
 * next scan, or the next claim) and logged; incoming/ that cannot be read
 * is logged once, and intake resumes when it can be.
 *
 * A file still being written (someone cp'd it in, or appends to it line by
 * line, instead of mv'ing it) is left for a later scan: taken only once
 * nobody has it open for writing (where a read lease can be placed) and it
 * has not been modified for SPOOL_SETTLE_S.
 *
 * Only a regular file of its own is taken: it is opened with O_NOFOLLOW |
 * O_NONBLOCK and checked through the fd (symlinks, FIFOs, devices and
 * files with other hard links are refused with a log line, once until they
 * change), read and validated through that same fd, and after the rename
 * the file that arrived in jobs/<id>/ must be that very inode (a swap by
 * name in between is refused).  incoming/ itself is never followed when it
 * is a symlink.  Names that are not NAME.yaml / NAME.yml (any case) are
 * logged once and left alone.  While the queue is full, a valid config
 * waits in incoming/ but an invalid one is taken (and rejected) at once.
 */
#ifndef TRAIND_SPOOL_H
#define TRAIND_SPOOL_H

#include "traind/spool_names.h"
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "traind/config.h"
#include "traind/diag.h"
#include "traind/intake.h"

#define SPOOL_RESCAN_MS 2000
#define SPOOL_SETTLE_S 1.0
#define SPOOL_TOKEN_HEX 64

/* --- names and ids: traind/spool_names.h --- */

/* Claims a new id for stem by creating jobs_dir/<id> (mode 0755): the first
 * free candidate.  Returns 0 with the id in id_out (SPOOL_ID_MAX + 1 bytes)
 * or a negative errno. */
int spool_claim_id(const char *jobs_dir, const char *stem, char *id_out);

/* --- layout and token (blocking; call at start-up) --- */

/* Creates <spool>, incoming/ and jobs/ when missing. */
int spool_prepare(const char *spool_dir);

/* Reads the bearer token from path, or creates it (32 random bytes from
 * getrandom(), hex, mode 0600).  out gets SPOOL_TOKEN_HEX + 1 bytes at most.
 * Returns 0 (1 when it was created) or a negative errno. */
int spool_token_load_or_create(const char *path, char *out, size_t outlen);

/* --- intake --- */

typedef struct spool_intake {
    char id[SPOOL_ID_MAX + 1];
    char *source;           /* the name it had in incoming/ */
    char *stem;
    double submitted_at;    /* unix time it was taken */
    bool valid;
    run_config cfg;         /* when valid */
    diag_list_t errs;       /* when not valid */
    char *errors_json;      /* when not valid: errs as the API's "errors" array, JSON text made on the
                             * thread pool (spool_intake_errors_text), or NULL */
    /* An experiment (a sweep file, traind/sweep.h): left in incoming/ and
     * handed over whole, to be removed from there once the experiment is
     * on disk.  idem_key names this very file (name, inode, mtime, size), so
     * taking it again after a crash answers with the same experiment. */
    bool experiment;
    char *yaml;
    size_t yaml_len;
    char idem_key[160];
} spool_intake;

void spool_intake_free(spool_intake *it);

/* An invalid config's errors as JSON text, into it->errors_json: made on
 * the thread pool, where the config was validated, so that the loop's heap
 * never holds a rejected job's long errors (traind(8): an ended job keeps
 * its summary in memory). */
void spool_intake_errors_text(spool_intake *it);

/* Called on the loop thread for every file taken; the callee owns item
 * (spool_intake_free). */
typedef void (*spool_intake_cb)(void *ctx, spool_intake *item);

typedef struct spool spool;

/* Starts watching <spool_dir>/incoming and takes what is already there. */
int spool_start(uv_loop_t *loop, const char *spool_dir, char *const *data_dirs, size_t n_dirs,
                spool_intake_cb cb, void *ctx, spool **out);

/* New data dirs (SIGHUP) for later validations. */
void spool_set_data_dirs(spool *s, char *const *data_dirs, size_t n_dirs);

/* The memory cap later validations give cfg_parse (max_model_memory of the
 * daemon config; 0 = CFG_DEFAULT_MAX_MODEL_BYTES): intake_validate. */
void spool_set_max_model_bytes(spool *s, size_t bytes);

/* Caps intake (max_queued_jobs): room(ctx) is asked on the loop thread as
 * each scan starts — how many files it may take, < 0 = no cap.  The files
 * past it stay in incoming/ untouched (a warning is logged once, when that
 * starts) and are taken by a later scan once there is room. */
void spool_set_room(spool *s, long (*room)(void *ctx), void *ctx);

/* Whether the last scan left files in incoming/ for want of room (the owner
 * then calls spool_rescan when room frees up). */
bool spool_holding(const spool *s);

/* Admission of one job from elsewhere (POST /jobs) once the caller has seen
 * room in the queue: while a scan runs, it and the scan share the room the
 * scan was given, so that together they never go over it.  false: no room
 * left (answer "queue full"). */
bool spool_reserve(spool *s);

/* Scans incoming/ soon (coalesced with a scan already asked for). */
void spool_rescan(spool *s);

/* Stops intake: no scan starts after this.  The spool is freed once a scan
 * in flight has finished and the handles closed; then on_closed(arg).
 * Items of a scan that finishes after the stop are still delivered (their
 * files were already moved). */
void spool_stop(spool *s, void (*on_closed)(void *arg), void *arg);

#endif

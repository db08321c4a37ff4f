/*
 * spool_names — the spool's naming rules (traind(8) THE SPOOL), pure functions on
 * strings: which files in incoming/ are submissions, how a file's stem
 * becomes a job id, what a well-formed id and Idempotency-Key are.
 *
 * They are the contract between the daemon and everything around it (the
 * worker reading a fork's parent id, trainctl naming a config as the daemon
 * would), so they live in the proto layer, below the service, and touch no
 * file and no loop.  traind/spool.h includes this header.
 */
#ifndef TRAIND_SPOOL_NAMES_H
#define TRAIND_SPOOL_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define SPOOL_ID_MAX 48

/* A name intake skips without a word: hidden (".x"), or still being written
 * ("x.tmp", "x.part"). */
bool spool_name_is_temp(const char *filename);

/* Whether a file in incoming/ is a submission (NAME.yaml / NAME.yml in any case, not
 * hidden, not .tmp/.part); if so its stem is copied to stem (truncated to
 * stemlen - 1). */
bool spool_intake_name(const char *filename, char *stem, size_t stemlen);

/* The id base of a stem: every byte outside [A-Za-z0-9._-] made '_', leading
 * dots dropped, at most SPOOL_ID_MAX bytes; "job" when nothing is left.
 * out must hold SPOOL_ID_MAX + 1 bytes. */
void spool_sanitize_id(const char *stem, char *out);

/* The k-th candidate for a base (k = 1: the base itself; k >= 2: base-k,
 * the base shortened so the whole stays within SPOOL_ID_MAX). */
void spool_id_candidate(const char *base, unsigned k, char *out);

/* Whether s is a well-formed id (what spool_sanitize_id/candidate produce). */
bool spool_id_valid(const char *s);

/* An Idempotency-Key (POST /jobs, jobs/<id>/idempotency.key): 1..
 * SPOOL_IDEM_KEY_MAX visible ASCII bytes. */
#define SPOOL_IDEM_KEY_MAX 255
bool spool_idem_key_valid(const char *key);

#endif

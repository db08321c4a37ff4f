/*
 * cli.h — the pieces of trainctl, one file per command group:
 *   trainctl.c      main, usage, dispatch, validate
 *   cli_common.c    cli_load_config, cli_format_duration, cli_parse_utc
 *   cmd_run.c       run (foreground training with a progress bar; --ranks N under mpirun)
 *   cmd_schedule.c  schedule (terminal plot or JSON)
 *   cmd_sample.c    sample (text from a gpt checkpoint)
 *   cmd_lrfind.c    lr-find (the LR range test: terminal plot or JSON)
 *   cmd_experiment.c  validate and schedule of experiment (sweep) files
 *   client.c        submit, status, watch, cancel, logs, fork (HTTP to a running traind, via libcurl)
 *   cmd_compare.c   compare (a table and overlaid curves of jobs or experiments)
 *   cmd_law.c       law fit, predict, optimize (loss-curve laws, traind/law.h)
 */
#ifndef TRAIND_CLI_H
#define TRAIND_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include "traind/config.h"
#include "traind/cmd_run.h"
#include "traind/dist.h"

/* Exit codes (EXIT_OK ...): traind/cmd_run.h. */

/* Loads and validates a run config as the daemon would (data.path resolved
 * against the config's folder; *data_path gets the resolved file or NULL).
 * Prints every error to stderr and returns -1 when invalid. */
int cli_load_config(const char *path, run_config *cfg, char **data_path);

/* After errs were printed for the config at path: when one is about
 * data.path, where it was looked for — the config's folder (dc NULL, as
 * `trainctl run` takes it) or that daemon's data_dirs — on stderr.
 * data_path: the config's data.path as written (NULL if unknown). */
struct dconfig;
void cli_data_path_note(const char *path, const char *data_path, const diag_list_t *errs, const struct dconfig *dc);

/* Experiment files (a `sweep:` section): is it one, validate every trial
 * (dc: as that daemon would; NULL: as trainctl run would; 0 ok, -1 reported
 * on stderr), plot or print every distinct schedule (an exit code). */
bool cli_is_experiment(const char *path);
int cli_validate_experiment(const char *path, const struct dconfig *dc);
int cli_schedule_experiment(const char *path, bool json);

/* cmd_run, cmd_run_dist: traind/cmd_run.h */
int cmd_schedule(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_lrfind(int argc, char **argv);
int cmd_law(int argc, char **argv);
int cmd_client(const char *verb, int argc, char **argv);

/* GET path from the daemon: 0 with *body (malloc'd, may be NULL) and
 * *status, or an exit code (unreachable: already reported). */
typedef int (*cli_get_fn)(void *ctx, const char *path, char **body, long *status);
/* "/jobs/<escaped id><tail>" and an id escaped for a URL (malloc'd). */
char *cli_job_path(const char *id, const char *tail);
char *cli_escape(const char *s);

/* What the daemon sends is untrusted: parsed JSON whose every string (and
 * key) has its control bytes written \xHH, so that an id or an error
 * holding ESC cannot drive the terminal; and text (a job's log) written
 * so, newlines and tabs kept. */
struct cJSON;
struct cJSON *cli_json_parse(const char *text);
void cli_json_sanitize(struct cJSON *j);
void cli_write_text(FILE *f, const char *s, size_t len);
/* trainctl compare over get (client.c's connection); log_y: --log. */
int cmd_compare(int n_args, char **args, bool json, bool log_y, cli_get_fn get, void *ctx);

/* "1h02m", "3m07s", "12s" */
/* cli_plot.c: grid[r * w + c] is -1 (empty) or the curve drawn in that
 * cell (row 0 at the bottom); prints the h rows with the y labels top and
 * bottom, then the x axis line (no newline after it). */
void cli_plot_grid(const int *grid, int h, int w, const char *top, const char *bottom, bool colour);
/* Curve k's glyph, in its colour when colour. */
void cli_plot_mark(int k, bool colour);
/* The columns to fit: the terminal's (TIOCGWINSZ) when stdout is one, else
 * $COLUMNS, else 80; within 40..400. */
int cli_term_width(void);

void cli_format_duration(double seconds, char *buf, size_t len);
/* "2026-11-24T13:45:00Z" (the daemon's times) as Unix seconds; 0 when not one. */
double cli_parse_utc(const char *s);

#endif

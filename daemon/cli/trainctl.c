/*
 * trainctl — traind's command-line client, and a trainer on its own:
 * `run`, `validate`, `schedule`, `lr-find`, `sample` and `law` need no daemon; `submit`,
 * `status`, `watch`, `cancel` and `logs` talk to one over HTTP.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "traind/dconfig.h"
#include "traind/intake.h"
#include "traind/spool_names.h"
#include "traind/util.h"
#include "traind/yamltree.h"

static const char usage_text[] =
    "usage: trainctl COMMAND [ARGS]\n"
    "\n"
    "Without a daemon:\n"
    "  run CONFIG [--out DIR] [--threads N] [--ranks N] [--fresh]\n"
    "                                                  train in the foreground (DIR default ./runs/NAME);\n"
    "                                                  --ranks N: data-parallel on N processes (mpirun)\n"
    "  validate [--daemon-config FILE] CONFIG...       check configs; with FILE, against that daemon's\n"
    "                                                  limits and data_dirs\n"
    "  schedule CONFIG [--json]                        the lr of every step: a plot, or a JSON array\n"
    "                                                  (an experiment: every distinct schedule)\n"
    "  lr-find CONFIG [--start LR] [--end LR] [--steps N] [--threads N] [--json] [--out FILE]\n"
    "                                                  LR range test: loss against an exponential lr sweep\n"
    "                                                  (1e-7 to 10, 100 steps), the suggested and steepest lr\n"
    "  sample RUN_DIR [--prompt TEXT] [--tokens N] [--temperature T] [--seed S]\n"
    "                                                  generate text from a gpt run's checkpoint\n"
    "  law fit [--law mpl|momentum] [--metric loss|loss_avg|eval_loss] [-o LAW.json] CURVE...\n"
    "                                                  fit a loss-curve law to trained curves (LOO figures)\n"
    "  law predict LAW.json (CURVE | CONFIG | SWEEP)... [--json]\n"
    "                                                  observed against predicted; a config's curve; a\n"
    "                                                  sweep's trials ranked by predicted final loss\n"
    "  law optimize LAW.json [--config BASE] --steps T --peak LR [--warmup W] [--min-lr X] [-o CONFIG.yaml]\n"
    "                                                  the schedule the law predicts best, vs cosine and WSD\n"
    "With a running traind (--url URL, --token-file FILE):\n"
    "  submit CONFIG       queue a config; prints its job id (retried safely: Idempotency-Key)\n"
    "  status [ID|--all] [--json]\n"
    "                      the daemon and its active and newest jobs; --all every job;\n"
    "                      ID a summary of one (--json: the daemon's JSON)\n"
    "  watch ID            a live progress bar until the job ends\n"
    "  cancel ID           checkpoint and stop a job\n"
    "  logs ID             the job's training process log\n"
    "  fork ID --at STEP [--set key=value ...] [--name NAME]\n"
    "                      a new job from ID's kept checkpoint at STEP (prints its id)\n"
    "  experiment ID [--json]\n"
    "                      an experiment: its trials best first and every early-stopping decision\n"
    "  compare ID|EXPERIMENT ... [--json] [--log]\n"
    "                      final and best eval loss, steps, wall time; the config keys set that differ;\n"
    "                      overlaid curves (--log: log y axis, automatic past two decades)\n"
    "  (-- ends the options: trainctl cancel -- -rf)\n"
    "\n"
    "  --help, --version\n"
    "Exit codes: 0 ok, 1 failure (bad config, job failed), 2 usage, 3 daemon unreachable.\n";

static int usage(FILE *out, int code)
{
    fputs(usage_text, out);
    return code;
}

/* "ok", then the config's warnings (cfg_warnings) on stderr: they do not
 * make it fail. */
static void print_ok(const char *path, const run_config *cfg)
{
    printf("%s: ok (%s, %zu parameters, %s schedule, %ld steps)\n", path, cfg->name,
           cfg_param_count(&cfg->model), sched_type_name(cfg->sched.type), cfg->sched.total_steps);
    diag_list_t warns = DIAG_LIST_INIT;
    cfg_warnings(cfg, &warns);
    fflush(stdout);
    diag_print(stderr, path, &warns);
    diag_free(&warns);
}

/* data.path as the file writes it (for the note of where it was looked
 * for: a config that failed validation has no run_config to ask). */
static char *written_data_path(const char *buf, size_t len)
{
    diag_list_t scratch = DIAG_LIST_INIT;
    ynode *root = ytree_parse(buf, len, &scratch);
    diag_free(&scratch);
    const ynode *data = root && root->kind == YNODE_MAP ? ymap_get(root, "data") : NULL;
    const ynode *p = data && data->kind == YNODE_MAP ? ymap_get(data, "path") : NULL;
    char *v = p && p->kind == YNODE_SCALAR ? xstrdup(p->value) : NULL;
    ytree_free(root);
    return v;
}

/* One config as the daemon of dc would take it from incoming/: its limits,
 * data.path resolved in (and confined to) its data_dirs, the file's stem
 * naming a config without `name`.  0 ok, -1 reported on stderr. */
static int validate_for_daemon(const char *path, const dconfig *dc)
{
    char *buf;
    size_t len;
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = read_file(path, CFG_MAX_FILE_BYTES, &buf, &len);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", path,
                rc == -EFBIG ? "the config is larger than the daemon accepts (1 MiB)" : file_error_text(rc));
        return -1;
    }
    char stem[SPOOL_ID_MAX + 1];
    char *copy = xstrdup(path);
    if (!spool_intake_name(basename(copy), stem, sizeof stem))
        snprintf(stem, sizeof stem, "job");
    free(copy);
    run_config cfg;
    char *data_path = NULL;
    intake_limits lim = {dc->data_dirs, dc->n_data_dirs, dc->max_model_memory};
    rc = intake_validate(buf, len, stem, &lim, &cfg, &data_path, &errs);
    if (rc != 0) {
        diag_print(stderr, path, &errs);
        char *written = written_data_path(buf, len);
        cli_data_path_note(path, written, &errs, dc);
        free(written);
        diag_free(&errs);
        free(buf);
        return -1;
    }
    free(buf);
    print_ok(path, &cfg);
    free(data_path);
    cfg_free(&cfg);
    return 0;
}

/* validate [--daemon-config FILE] CONFIG...: without a daemon config, with
 * the built-in limits and data.path relative to the config's directory (as
 * `trainctl run` takes it). */
static int cmd_validate(int argc, char **argv)
{
    const char *dpath = NULL;
    char *configs[argc > 0 ? argc : 1];
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--daemon-config")) {
            if (i + 1 >= argc)
                return usage(stderr, EXIT_USAGE);
            dpath = argv[++i];
        } else {
            configs[n++] = argv[i];
        }
    }
    if (n < 1)
        return usage(stderr, EXIT_USAGE);
    dconfig dc;
    dconfig_init(&dc);
    if (dpath) {
        diag_list_t errs = DIAG_LIST_INIT;
        if (dconfig_load(dpath, &dc, &errs) != 0) {
            diag_print(stderr, dpath, &errs);
            diag_free(&errs);
            dconfig_free(&dc);
            return EXIT_FAIL;
        }
        dconfig_finish(&dc);
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (cli_is_experiment(configs[i])) {
            bad += cli_validate_experiment(configs[i], dpath ? &dc : NULL) != 0;
            continue;
        }
        if (dpath) {
            bad += validate_for_daemon(configs[i], &dc) != 0;
            continue;
        }
        run_config cfg;
        char *data_path;
        if (cli_load_config(configs[i], &cfg, &data_path) != 0) {
            bad++;
            continue;
        }
        print_ok(configs[i], &cfg);
        free(data_path);
        cfg_free(&cfg);
    }
    dconfig_free(&dc);
    return bad ? EXIT_FAIL : EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr, EXIT_USAGE);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help"))
        return usage(stdout, EXIT_OK);
    if (!strcmp(cmd, "--version")) {
        printf("trainctl %s\n", TRAIND_VERSION);
        return EXIT_OK;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return usage(stdout, EXIT_OK);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "validate"))
        return cmd_validate(argc - 2, argv + 2);
    if (!strcmp(cmd, "schedule"))
        return cmd_schedule(argc - 2, argv + 2);
    if (!strcmp(cmd, "lr-find"))
        return cmd_lrfind(argc - 2, argv + 2);
    if (!strcmp(cmd, "sample"))
        return cmd_sample(argc - 2, argv + 2);
    if (!strcmp(cmd, "law"))
        return cmd_law(argc - 2, argv + 2);
    if (!strcmp(cmd, "submit") || !strcmp(cmd, "status") || !strcmp(cmd, "watch") ||
        !strcmp(cmd, "cancel") || !strcmp(cmd, "logs") || !strcmp(cmd, "fork") ||
        !strcmp(cmd, "compare") || !strcmp(cmd, "experiment"))
        return cmd_client(cmd, argc - 2, argv + 2);
    fprintf(stderr, "trainctl: unknown command '%s'\n", cmd);
    return usage(stderr, EXIT_USAGE);
}

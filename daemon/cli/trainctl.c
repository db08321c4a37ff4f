/*
 * trainctl — traind's command-line client, and a trainer on its own:
 * `run`, `validate`, `schedule` and `sample` need no daemon; `submit`,
 * `status`, `watch`, `cancel` and `logs` talk to one over HTTP.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "traind/util.h"

static const char usage_text[] =
    "usage: trainctl COMMAND [ARGS]\n"
    "\n"
    "Without a daemon:\n"
    "  run CONFIG [--out DIR] [--threads N] [--fresh]   train in the foreground (DIR default ./runs/NAME)\n"
    "  validate CONFIG...                              check configs as the daemon would\n"
    "  schedule CONFIG [--json]                        the lr of every step: a plot, or a JSON array\n"
    "  sample RUN_DIR [--prompt TEXT] [--tokens N] [--temperature T] [--seed S]\n"
    "                                                  generate text from a gpt run's checkpoint\n"
    "With a running traind (--url URL, --token-file FILE):\n"
    "  submit CONFIG       queue a config; prints its job id\n"
    "  status [ID]         all jobs, or one job in full\n"
    "  watch ID            a live progress bar until the job ends\n"
    "  cancel ID           checkpoint and stop a job\n"
    "  logs ID             the job's training process log\n"
    "\n"
    "  --help, --version\n"
    "Exit codes: 0 ok, 1 failure (bad config, job failed), 2 usage, 3 daemon unreachable.\n";

static int usage(FILE *out, int code)
{
    fputs(usage_text, out);
    return code;
}

int cli_load_config(const char *path, run_config *cfg, char **data_path)
{
    diag_list_t errs = DIAG_LIST_INIT;
    *data_path = NULL;
    if (cfg_load_file(path, NULL, cfg, &errs) != 0) {
        diag_print(stderr, path, &errs);
        diag_free(&errs);
        return -1;
    }
    char *copy = xstrdup(path);
    *data_path = cfg_resolve_data_path(cfg, dirname(copy), NULL, 0, &errs);
    free(copy);
    if (errs.n > 0) {
        diag_print(stderr, path, &errs);
        diag_free(&errs);
        cfg_free(cfg);
        free(*data_path);
        *data_path = NULL;
        return -1;
    }
    return 0;
}

static int cmd_validate(int argc, char **argv)
{
    if (argc < 1)
        return usage(stderr, EXIT_USAGE);
    int bad = 0;
    for (int i = 0; i < argc; i++) {
        run_config cfg;
        char *data_path;
        if (cli_load_config(argv[i], &cfg, &data_path) != 0) {
            bad++;
            continue;
        }
        printf("%s: ok (%s, %zu parameters, %s schedule, %ld steps)\n", argv[i], cfg.name,
               cfg_param_count(&cfg.model), sched_type_name(cfg.sched.type), cfg.sched.total_steps);
        free(data_path);
        cfg_free(&cfg);
    }
    return bad ? EXIT_FAIL : EXIT_OK;
}

void cli_format_duration(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, len, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, len, "%lds", t);
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
    if (!strcmp(cmd, "sample"))
        return cmd_sample(argc - 2, argv + 2);
    if (!strcmp(cmd, "submit") || !strcmp(cmd, "status") || !strcmp(cmd, "watch") ||
        !strcmp(cmd, "cancel") || !strcmp(cmd, "logs"))
        return cmd_client(cmd, argc - 2, argv + 2);
    fprintf(stderr, "trainctl: unknown command '%s'\n", cmd);
    return usage(stderr, EXIT_USAGE);
}

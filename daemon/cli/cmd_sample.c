/*
 * trainctl sample — text from a gpt run's checkpoint, so a user can see what
 * the model learnt.  RUN_DIR is a `trainctl run` output folder or a daemon
 * job folder: both hold config.yaml and checkpoint.bin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "traind/gpt.h"
#include "traind/model.h"
#include "traind/rng.h"
#include "traind/runner.h"
#include "traind/util.h"

static int parse_num(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "trainctl sample: %s must be a number in [%g, %g], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_sample(int argc, char **argv)
{
    const char *dir = NULL, *prompt = "\n";
    double n_tokens = 200, temperature = 0.8, seed = 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
            prompt = argv[++i];
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            if (parse_num("--tokens", argv[++i], 1, 1e6, &n_tokens))
                return EXIT_USAGE;
        } else if (!strcmp(argv[i], "--temperature") && i + 1 < argc) {
            if (parse_num("--temperature", argv[++i], 0, 100, &temperature))
                return EXIT_USAGE;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            if (parse_num("--seed", argv[++i], 0, 9007199254740991.0, &seed))
                return EXIT_USAGE;
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "trainctl sample: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else
            dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "usage: trainctl sample RUN_DIR [--prompt TEXT] [--tokens N] [--temperature T] [--seed S]\n");
        return EXIT_USAGE;
    }
    char *cfg_path = xasprintf("%s/config.yaml", dir), *ckpt_path = xasprintf("%s/checkpoint.bin", dir);
    int code = EXIT_FAIL;
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    model_t *m = NULL;
    int32_t *tokens = NULL, *out = NULL;
    if (cfg_load_file(cfg_path, NULL, &cfg, &errs) != 0) {
        diag_print(stderr, cfg_path, &errs);
        diag_free(&errs);
        goto done_nocfg;
    }
    if (cfg.model.type != MODEL_GPT) {
        fprintf(stderr, "trainctl sample: %s is a %s model; sampling needs a gpt\n", dir,
                model_type_name(cfg.model.type));
        goto done;
    }
    char err[512];
    m = model_create(&cfg.model, 1, err, sizeof err);
    if (!m) {
        fprintf(stderr, "trainctl sample: %s\n", err);
        goto done;
    }
    if (runner_load_params(&cfg, ckpt_path, m->params, m->n_params, err, sizeof err) != 0) {
        fprintf(stderr, "trainctl sample: %s\n", err);
        goto done;
    }
    int n_prompt = (int)strlen(prompt);
    if (n_prompt == 0) {
        fprintf(stderr, "trainctl sample: --prompt must not be empty\n");
        code = EXIT_USAGE;
        goto done;
    }
    tokens = xcalloc((size_t)n_prompt, sizeof *tokens);
    for (int i = 0; i < n_prompt; i++)
        tokens[i] = (unsigned char)prompt[i];   /* byte-level: a byte is a token */
    out = xcalloc((size_t)n_tokens, sizeof *out);
    rng_t rng;
    rng_seed(&rng, (uint64_t)seed, RNG_STREAM_SAMPLE);
    if (gpt_sample(m, tokens, n_prompt, (int)n_tokens, temperature, &rng, out) != 0) {
        fprintf(stderr, "trainctl sample: the prompt has tokens outside this model's vocabulary\n");
        goto done;
    }
    fputs(prompt, stdout);
    for (int i = 0; i < (int)n_tokens; i++) {
        if (out[i] < 256)
            putchar(out[i]);
        else
            printf("<%d>", (int)out[i]);
    }
    putchar('\n');
    code = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
done:
    cfg_free(&cfg);
done_nocfg:
    model_free(m);
    free(tokens);
    free(out);
    free(cfg_path);
    free(ckpt_path);
    return code;
}

/*
 * test_config — the run config parser and validator (config*.c, yamltree.c).
 *
 * Three kinds of checks:
 *   - good configs (tests/data/configs/good/, the shared workloads among them)
 *     parse, with every default and derived value as documented;
 *   - bad configs (tests/data/configs/bad/) fail, each with the error its
 *     header names: "# expect: PATH:LINE" ("*" matches anything) and
 *     optionally "# message: TEXT" (a substring of that error's message);
 *   - properties: all errors at once, hostile YAML (alias bombs, deep
 *     nesting, random mutations) rejected quickly and without a crash or a
 *     leak, the config hash, the JSON form, data path resolution.
 *
 * The data directory is $TRAIND_TEST_DATA, else tests/data/configs relative
 * to the working directory (make runs tests from the repository root).
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "traind/config.h"
#include "traind/gpt.h"
#include "traind/model.h"
#include "traind/util.h"
#include "traind/yamltree.h"
#include "tl.h"

/* ---- helpers ----------------------------------------------------------- */

/* Time bounds: they catch blow-ups (an expanded billion laughs takes
 * minutes), not slowness, so they are loose enough for a loaded 2-core CI
 * box.  Sanitizers make allocation ~10x slower and Valgrind ~50x, so they
 * get more. */
#if defined(__SANITIZE_ADDRESS__)
#define SLOWDOWN 10.0
#elif __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SLOWDOWN (RUNNING_ON_VALGRIND ? 50.0 : 1.0)
#else
#define SLOWDOWN 1.0
#endif

static const char *data_dir(void)
{
    const char *d = getenv("TRAIND_TEST_DATA");
    return d && d[0] ? d : "tests/data/configs";
}

static void dump_diags(const char *what, const diag_list_t *e)
{
    fprintf(stderr, "--- %s: %zu diagnostics\n", what, e->n);
    diag_print(stderr, what, e);
}

static int parse(const char *yaml, run_config *cfg, diag_list_t *errs)
{
    return cfg_parse(yaml, strlen(yaml), NULL, cfg, errs);
}

/* Parses yaml, which must be valid; the caller frees cfg. */
static void parse_ok(const char *yaml, run_config *cfg)
{
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = parse(yaml, cfg, &errs);
    if (rc != 0)
        dump_diags("parse_ok", &errs);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(errs.n, 0);
    diag_free(&errs);
}

/* Does some diagnostic match?  path "*" / line -1 / msg NULL match anything. */
static bool has_diag(const diag_list_t *e, const char *path, int line, const char *msg)
{
    for (size_t i = 0; i < e->n; i++) {
        const diag_t *d = &e->items[i];
        if (strcmp(path, "*") != 0 && strcmp(d->path, path) != 0)
            continue;
        if (line >= 0 && d->line != line)
            continue;
        if (msg && !strstr(d->message, msg))
            continue;
        return true;
    }
    return false;
}

/* Parses yaml, which must fail with an error at path (and line, message). */
static void parse_bad(const char *yaml, const char *path, int line, const char *msg)
{
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(yaml, &cfg, &errs), -1);
    if (!has_diag(&errs, path, line, msg)) {
        dump_diags(path, &errs);
        ck_abort_msg("no error at %s:%d containing '%s'", path, line, msg ? msg : "");
    }
    ck_assert_ptr_null(cfg.name);   /* zeroed on failure */
    diag_free(&errs);
}

static char *path_join(const char *a, const char *b)
{
    return xasprintf("%s/%s", a, b);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Sorted *.yaml names of a directory; returns the count. */
static int list_yaml(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s (run from the repository root)", dir);
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!has_suffix(e->d_name, ".yaml"))
            continue;
        names = xrealloc(names, (size_t)(n + 1) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++)             /* insertion sort: a stable order */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    *out = names;
    return n;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static const char MINIMAL[] =
    "model: {type: mlp, input_dim: 4, output_dim: 2}\n"
    "schedule: {total_steps: 100}\n";

/* ---- defaults ---------------------------------------------------------- */

START_TEST(test_defaults_mlp)
{
    run_config c;
    parse_ok(MINIMAL, &c);
    ck_assert_str_eq(c.name, "run");
    ck_assert_uint_eq(c.seed, 0);
    ck_assert_int_eq(c.threads, 1);
    ck_assert_int_eq(c.model.type, MODEL_MLP);
    ck_assert_int_eq(c.model.input_dim, 4);
    ck_assert_int_eq(c.model.output_dim, 2);
    ck_assert_int_eq(c.model.n_hidden, 1);
    ck_assert_int_eq(c.model.hidden[0], 64);
    ck_assert_int_eq(c.model.activation, ACT_RELU);
    ck_assert_int_eq(c.data.kind, DATA_SYNTHETIC);
    ck_assert_int_eq(c.data.batch_size, 32);
    ck_assert_ptr_null(c.data.path);
    ck_assert_double_eq(c.data.noise, 0.01);
    ck_assert_double_eq(c.data.eval_fraction, 0);
    ck_assert_int_eq(c.optim.type, OPT_ADAMW);
    ck_assert_double_eq(c.optim.lr, 1e-3);
    ck_assert_double_eq(c.optim.beta1, 0.9);
    ck_assert_double_eq(c.optim.beta2, 0.999);
    ck_assert_double_eq(c.optim.eps, 1e-8);
    ck_assert_double_eq(c.optim.weight_decay, 0.01);
    ck_assert_double_eq(c.optim.momentum, 0);
    ck_assert(!c.optim.nesterov);
    ck_assert_double_eq(c.optim.grad_clip, 0);
    ck_assert_int_eq(c.sched.type, SCHED_COSINE);
    ck_assert_int_eq(c.sched.total_steps, 100);
    ck_assert_int_eq(c.sched.warmup_steps, 0);
    ck_assert_double_eq(c.sched.min_lr_ratio, 0);
    ck_assert_double_eq(c.sched.warmup_start_ratio, 0);
    ck_assert_double_eq(c.sched.cycles, 1);
    ck_assert_double_eq(c.sched.power, 1);
    ck_assert_int_eq(c.sched.timescale, 10000);
    ck_assert_double_eq(c.sched.gamma, 0.1);
    ck_assert_double_eq(c.sched.pct_start, 0.3);
    ck_assert_double_eq(c.sched.div_factor, 25);
    ck_assert_double_eq(c.sched.final_div_factor, 1e4);
    ck_assert(c.sched.anneal_cos);
    ck_assert(!c.sched.three_phase);
    ck_assert_int_eq(c.train.log_every, 10);
    ck_assert_int_eq(c.train.checkpoint_every, 500);
    ck_assert_int_eq(c.train.eval_every, 0);
    cfg_free(&c);
}
END_TEST

START_TEST(test_defaults_gpt_and_sgd)
{
    run_config c;
    parse_ok("model: {type: gpt, context: 16, d_model: 32, layers: 2, heads: 4}\n"
             "optimizer: {type: sgd}\n"
             "schedule: {total_steps: 10}\n", &c);
    ck_assert_int_eq(c.model.vocab_size, 256);
    ck_assert_int_eq(c.data.kind, DATA_TEXT);
    ck_assert_double_eq(c.optim.weight_decay, 0);   /* torch's default for sgd */
    cfg_free(&c);

    parse_ok("model: {type: linear, input_dim: 3, output_dim: 1}\n"
             "optimizer: {type: adam}\nschedule: {total_steps: 10}\n", &c);
    ck_assert_int_eq(c.model.n_hidden, 0);
    ck_assert_double_eq(c.optim.weight_decay, 0);
    cfg_free(&c);
}
END_TEST

START_TEST(test_number_forms)
{
    run_config c;
    parse_ok("model: {type: linear, input_dim: 4, output_dim: 2}\n"
             "optimizer: {lr: 2.0e-4, eps: 1e-6, weight_decay: .5, grad_clip: +1, betas: [0, 0.5E0]}\n"
             "data: {noise: 0}\n"
             "schedule: {total_steps: +100, warmup_start_ratio: 1}\n"
             "seed: 9007199254740991\n", &c);
    ck_assert_double_eq(c.optim.lr, 2.0e-4);
    ck_assert_double_eq(c.optim.eps, 1e-6);
    ck_assert_double_eq(c.optim.weight_decay, 0.5);
    ck_assert_double_eq(c.optim.grad_clip, 1);
    ck_assert_double_eq(c.optim.beta1, 0);
    ck_assert_double_eq(c.optim.beta2, 0.5);
    ck_assert_int_eq(c.sched.total_steps, 100);
    ck_assert_uint_eq(c.seed, 9007199254740991ULL);
    cfg_free(&c);
    parse_bad("model: {type: linear, input_dim: 4, output_dim: 2}\n"
              "schedule: {total_steps: 1_000}\n", "schedule.total_steps", 2, "decimal");
    parse_bad("model: {type: linear, input_dim: 4, output_dim: 2}\n"
              "schedule: {total_steps: 100}\nseed: 9007199254740992\n", "seed", 3, NULL);
    parse_bad("model: {type: linear, input_dim: 4, output_dim: 2}\n"
              "schedule: {total_steps: !!str 100}\n", "schedule.total_steps", 2, "string");
}
END_TEST

/* ---- good configs ------------------------------------------------------ */

/* to_json, print, parse back: the same config, hash included. */
static void check_json_round_trip(const run_config *c)
{
    cJSON *j = cfg_to_json(c);
    ck_assert_ptr_nonnull(j);
    char *text = cJSON_PrintUnformatted(j);
    run_config back;
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = parse(text, &back, &errs);
    if (rc != 0) {
        fprintf(stderr, "%s\n", text);
        dump_diags("round trip", &errs);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(cfg_hash(&back), cfg_hash(c));
    ck_assert_str_eq(back.name, c->name);
    ck_assert_int_eq(back.threads, c->threads);
    ck_assert_int_eq(back.train.log_every, c->train.log_every);
    cfg_free(&back);
    diag_free(&errs);
    free(text);
    cJSON_Delete(j);
}

START_TEST(test_good_directory)
{
    char *dir = path_join(data_dir(), "good"), **names;
    int n = list_yaml(dir, &names);
    ck_assert_int_ge(n, 16);
    for (int i = 0; i < n; i++) {
        char *file = path_join(dir, names[i]);
        run_config c;
        diag_list_t errs = DIAG_LIST_INIT;
        int rc = cfg_load_file(file, NULL, &c, &errs);
        if (rc != 0)
            dump_diags(file, &errs);
        ck_assert_msg(rc == 0, "%s should be valid", file);
        ck_assert_ptr_nonnull(c.name);
        check_json_round_trip(&c);
        cfg_free(&c);
        diag_free(&errs);
        free(file);
    }
    free_names(names, n);
    free(dir);
}
END_TEST

static void load_good(const char *name, run_config *c)
{
    char *file = xasprintf("%s/good/%s", data_dir(), name);
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = cfg_load_file(file, NULL, c, &errs);
    if (rc != 0)
        dump_diags(file, &errs);
    ck_assert_int_eq(rc, 0);
    diag_free(&errs);
    free(file);
}

START_TEST(test_workloads)
{
    run_config c;
    load_good("gpt-tiny.yaml", &c);
    ck_assert_str_eq(c.name, "gpt-tiny");
    ck_assert_uint_eq(c.seed, 1);
    ck_assert_int_eq(c.model.type, MODEL_GPT);
    ck_assert_int_eq(c.model.context, 128);
    ck_assert_int_eq(c.model.d_model, 128);
    ck_assert_int_eq(c.model.layers, 4);
    ck_assert_int_eq(c.model.heads, 4);
    ck_assert_int_eq(c.data.kind, DATA_TEXT);
    ck_assert_int_eq(c.data.batch_size, 8);
    ck_assert_double_eq(c.optim.beta2, 0.95);
    ck_assert_double_eq(c.optim.weight_decay, 0.1);
    ck_assert_double_eq(c.optim.grad_clip, 1.0);
    ck_assert_int_eq(c.sched.warmup_steps, 10);
    ck_assert_double_eq(c.sched.min_lr_ratio, 0.1);
    ck_assert_uint_eq(cfg_param_count(&c.model), 256 * 128 + 128 * 128 + 4 * (12 * 128 * 128 + 13 * 128) + 2 * 128);
    cfg_free(&c);

    load_good("mlp-medium.yaml", &c);
    ck_assert_int_eq(c.model.n_hidden, 2);
    ck_assert_int_eq(c.model.hidden[1], 1024);
    ck_assert_int_eq(c.model.activation, ACT_GELU);
    ck_assert_uint_eq(cfg_param_count(&c.model),
                      512 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 512 + 512);
    ck_assert_int_eq(c.train.log_every, 50);
    cfg_free(&c);

    load_good("seed-linear.yaml", &c);
    ck_assert_int_eq(c.model.type, MODEL_LINEAR);
    ck_assert_uint_eq(cfg_param_count(&c.model), 110);
    ck_assert_double_eq(c.optim.lr, 2.0e-4);
    ck_assert_int_eq(c.sched.total_steps, 5000);
    ck_assert_int_eq(c.sched.warmup_steps, 100);
    cfg_free(&c);

    load_good("sched-constant.yaml", &c);   /* no name: the file's stem */
    ck_assert_str_eq(c.name, "sched-constant");
    cfg_free(&c);
}
END_TEST

/* ---- schedules --------------------------------------------------------- */

#define LIN "model: {type: linear, input_dim: 2, output_dim: 1}\n"

START_TEST(test_schedule_types)
{
    static const struct { const char *yaml; sched_type type; } cases[] = {
        {"{type: constant, total_steps: 10}", SCHED_CONSTANT},
        {"{type: constant_with_warmup, total_steps: 10, warmup_steps: 2}", SCHED_CONSTANT_WITH_WARMUP},
        {"{type: linear, total_steps: 10}", SCHED_LINEAR},
        {"{type: cosine, total_steps: 10}", SCHED_COSINE},
        {"{type: cosine_with_restarts, total_steps: 10, cycles: 2.5}", SCHED_COSINE_WITH_RESTARTS},
        {"{type: polynomial, total_steps: 10, power: 0.5}", SCHED_POLYNOMIAL},
        {"{type: inverse_sqrt, total_steps: 10}", SCHED_INVERSE_SQRT},
        {"{type: warmup_stable_decay, total_steps: 10, decay_steps: 3}", SCHED_WSD},
        {"{type: step, total_steps: 10, step_size: 3}", SCHED_STEP},
        {"{type: multistep, total_steps: 10, milestones: [2, 5]}", SCHED_MULTISTEP},
        {"{type: exponential, total_steps: 10, gamma: 0.9}", SCHED_EXPONENTIAL},
        {"{type: onecycle, total_steps: 10}", SCHED_ONECYCLE},
        {"{type: piecewise, total_steps: 10, points: [[0, 1]]}", SCHED_PIECEWISE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *yaml = xasprintf(LIN "schedule: %s\n", cases[i].yaml);
        run_config c;
        parse_ok(yaml, &c);
        ck_assert_int_eq(c.sched.type, cases[i].type);
        char *spelled = xasprintf("type: %s,", sched_type_name(c.sched.type));
        ck_assert_ptr_nonnull(strstr(cases[i].yaml, spelled));
        free(spelled);
        cfg_free(&c);
        free(yaml);
    }
}
END_TEST

START_TEST(test_schedule_resolution)
{
    run_config c;
    /* W = ceil(ratio * T) in double, as HF: 0.07 * 100 = 7.000000000000001 -> 8. */
    parse_ok(LIN "schedule: {total_steps: 100, warmup_ratio: 0.07}\n", &c);
    ck_assert_int_eq(c.sched.warmup_steps, (long)ceil(0.07 * 100.0));
    ck_assert_int_eq(c.sched.warmup_steps, 8);
    cfg_free(&c);
    parse_ok(LIN "schedule: {total_steps: 1000, warmup_ratio: 0.1}\n", &c);
    ck_assert_int_eq(c.sched.warmup_steps, 100);
    ck_assert_int_eq(c.sched.timescale, 100);    /* default timescale = W */
    cfg_free(&c);

    /* min_lr is absolute; min_lr_ratio = min_lr / lr. */
    parse_ok(LIN "optimizer: {lr: 2.0e-4}\nschedule: {total_steps: 10, min_lr: 2.0e-5}\n", &c);
    ck_assert_double_eq(c.sched.min_lr_ratio, 2.0e-5 / 2.0e-4);
    cfg_free(&c);

    /* decay_ratio rounds half to even, as Python's round(). */
    parse_ok(LIN "schedule: {type: warmup_stable_decay, total_steps: 20, decay_ratio: 0.125}\n", &c);
    ck_assert_int_eq(c.sched.decay_steps, 2);    /* round(2.5) = 2 */
    cfg_free(&c);
    parse_ok(LIN "schedule: {type: warmup_stable_decay, total_steps: 28, decay_ratio: 0.125}\n", &c);
    ck_assert_int_eq(c.sched.decay_steps, 4);    /* round(3.5) = 4 */
    cfg_free(&c);
    parse_ok(LIN "schedule: {type: warmup_stable_decay, total_steps: 1000, warmup_steps: 100,"
                 " stable_steps: 700, warmup_type: cosine, decay_type: 1-sqrt}\n", &c);
    ck_assert_int_eq(c.sched.decay_steps, 200);
    ck_assert_int_eq(c.sched.warmup_type, SHAPE_COSINE);
    ck_assert_int_eq(c.sched.decay_type, SHAPE_1_SQRT);
    ck_assert_str_eq(wsd_shape_name(c.sched.decay_type), "1-sqrt");
    cfg_free(&c);
    parse_ok(LIN "schedule: {type: warmup_stable_decay, total_steps: 100, warmup_steps: 20, decay_steps: 80}\n", &c);
    ck_assert_int_eq(c.sched.decay_steps, 80);
    cfg_free(&c);

    parse_ok(LIN "schedule: {type: inverse_sqrt, total_steps: 10, timescale: 7}\n", &c);
    ck_assert_int_eq(c.sched.timescale, 7);
    cfg_free(&c);

    parse_ok(LIN "schedule: {type: multistep, total_steps: 100, milestones: [0, 30, 60], gamma: 0.5}\n", &c);
    ck_assert_int_eq(c.sched.n_milestones, 3);
    ck_assert_int_eq(c.sched.milestones[0], 0);
    ck_assert_int_eq(c.sched.milestones[2], 60);
    ck_assert_double_eq(c.sched.gamma, 0.5);
    cfg_free(&c);

    parse_ok(LIN "schedule: {type: piecewise, total_steps: 100, points: [[0, 0], [10, 1.5], [100, 0.25]]}\n", &c);
    ck_assert_int_eq(c.sched.n_points, 3);
    ck_assert_int_eq(c.sched.point_step[1], 10);
    ck_assert_double_eq(c.sched.point_ratio[1], 1.5);
    ck_assert_double_eq(c.sched.point_ratio[2], 0.25);
    cfg_free(&c);

    parse_ok(LIN "schedule: {type: onecycle, total_steps: 100, anneal: linear, three_phase: true, pct_start: 0.25}\n", &c);
    ck_assert(!c.sched.anneal_cos);
    ck_assert(c.sched.three_phase);
    ck_assert_double_eq(c.sched.pct_start, 0.25);
    cfg_free(&c);

    /* warmup may equal total_steps; constant takes warmup and ignores it, as HF does. */
    parse_ok(LIN "schedule: {type: constant, total_steps: 10, warmup_steps: 10}\n", &c);
    ck_assert_int_eq(c.sched.warmup_steps, 10);
    cfg_free(&c);

    /* A key whose type ignores it is an error, not a silent no-op. */
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_ne(parse(LIN "schedule: {type: exponential, gamma: 0.9, total_steps: 10,"
                               " min_lr_ratio: 0.5}\n", &c, &errs), 0);
    ck_assert(has_diag(&errs, "schedule.min_lr_ratio", 2, "only used by schedule types"));
    diag_free(&errs);
    ck_assert_int_ne(parse(LIN "schedule: {type: onecycle, total_steps: 100, warmup_steps: 5}\n",
                           &c, &errs), 0);
    ck_assert(has_diag(&errs, "schedule.warmup_steps", 2, "only used by schedule types"));
    diag_free(&errs);
    ck_assert_int_ne(parse(LIN "schedule: {type: warmup_stable_decay, total_steps: 100, decay_steps: 10,"
                               " warmup_start_ratio: 0.1}\n", &c, &errs), 0);
    ck_assert(has_diag(&errs, "schedule.warmup_start_ratio", 2, "only used by schedule types"));
    diag_free(&errs);
}
END_TEST

/* ---- bad configs ------------------------------------------------------- */

/* Reads the "# expect: PATH:LINE" and "# message: TEXT" header lines. */
static bool read_expectation(const char *file, char *path, size_t psize, int *line, char *msg,
                             size_t msize)
{
    FILE *f = fopen(file, "rb");
    ck_assert_ptr_nonnull(f);
    char buf[512];
    bool ok = false;
    msg[0] = '\0';
    for (int i = 0; i < 2 && fgets(buf, sizeof buf, f); i++) {
        buf[strcspn(buf, "\r\n")] = '\0';
        if (strncmp(buf, "# expect: ", 10) == 0) {
            char *colon = strrchr(buf + 10, ':');
            if (!colon)
                break;
            *colon = '\0';
            snprintf(path, psize, "%s", buf + 10);
            *line = strcmp(colon + 1, "*") == 0 ? -1 : atoi(colon + 1);
            ok = true;
        } else if (strncmp(buf, "# message: ", 11) == 0) {
            snprintf(msg, msize, "%s", buf + 11);
        }
    }
    fclose(f);
    return ok;
}

START_TEST(test_bad_directory)
{
    char *dir = path_join(data_dir(), "bad"), **names;
    int n = list_yaml(dir, &names);
    ck_assert_int_ge(n, 45);
    for (int i = 0; i < n; i++) {
        char *file = path_join(dir, names[i]);
        char path[512], msg[512];
        int line = 0;
        ck_assert_msg(read_expectation(file, path, sizeof path, &line, msg, sizeof msg),
                      "%s: no '# expect: PATH:LINE' header", file);
        run_config c;
        diag_list_t errs = DIAG_LIST_INIT;
        double t0 = now_monotonic();
        int rc = cfg_load_file(file, NULL, &c, &errs);
        double dt = now_monotonic() - t0;
        ck_assert_msg(rc == -1, "%s should be rejected", file);
        ck_assert_msg(errs.n > 0, "%s: rejected without a diagnostic", file);
        ck_assert_msg(dt < 0.5 * SLOWDOWN, "%s took %.3f s", file, dt);
        if (!has_diag(&errs, path, line, msg[0] ? msg : NULL)) {
            dump_diags(file, &errs);
            ck_abort_msg("%s: no error at %s:%d with message '%s'", file, path, line, msg);
        }
        for (size_t k = 0; k < errs.n; k++)     /* every error says something */
            ck_assert_msg(errs.items[k].message[0], "%s: empty message", file);
        diag_free(&errs);
        free(file);
    }
    free_names(names, n);
    free(dir);
}
END_TEST

START_TEST(test_unknown_key_hints)
{
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(LIN "schedule: {total_steps: 10, warmup_stpes: 2}\n", &c, &errs), -1);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.items[0].path, "schedule.warmup_stpes");
    ck_assert_str_eq(errs.items[0].message, "unknown key 'warmup_stpes' (did you mean 'warmup_steps'?)");
    ck_assert_int_eq(errs.items[0].line, 2);
    ck_assert_int_eq(errs.items[0].column, 29);
    diag_free(&errs);

    parse_bad(LIN "schedule: {total_steps: 10}\nTrain: {log_every: 1}\n", "Train", 3, "did you mean 'train'?");
    parse_bad(LIN "schedule: {total_steps: 10}\noptimizer: {learning_rate: 0.1}\n",
              "optimizer.learning_rate", 3, NULL);
    parse_bad(LIN "schedule: {total_steps: 10, batch_size: 3}\n", "schedule.batch_size", 2,
              "did you mean 'data.batch_size'?");
    parse_bad(LIN "schedule: {total_steps: 10}\nmodel2: 1\n", "model2", 3, "did you mean 'model'?");
    /* Far from everything: no hint. */
    run_config c2;
    ck_assert_int_eq(parse(LIN "schedule: {total_steps: 10}\nzzzzzz: 1\n", &c2, &errs), -1);
    ck_assert_str_eq(errs.items[0].message, "unknown key 'zzzzzz'");
    diag_free(&errs);
}
END_TEST

START_TEST(test_all_errors_at_once)
{
    const char *yaml =
        "name: \"\"\n"                                              /* 1 */
        "model:\n"                                                  /* 2 */
        "  type: mlp\n"                                             /* 3 */
        "  input_dim: 0\n"                                          /* 4 */
        "  output_dim: 2\n"                                         /* 5 */
        "  heads: 4\n"                                              /* 6 */
        "data: {batch_size: -1, eval_fraction: 2}\n"                /* 7 */
        "optimizer: {lr: .nan, betas: [0.9, 1.5], momentum: 0.5}\n" /* 8 */
        "schedule:\n"                                               /* 9 */
        "  type: cosine\n"                                          /* 10 */
        "  total_steps: 100\n"                                      /* 11 */
        "  warmup_steps: -5\n"                                      /* 12 */
        "  cycles: 2\n"                                             /* 13 */
        "train: {log_every: 0, speed: fast}\n";                     /* 14 */
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(yaml, &c, &errs), -1);
    static const struct { const char *path; int line; const char *msg; } want[] = {
        {"name", 1, "must not be empty"},
        {"model.input_dim", 4, "in 1..1000000, got 0"},
        {"model.heads", 6, "only used by model type gpt"},
        {"data.batch_size", 7, "got -1"},
        {"data.eval_fraction", 7, "in [0, 1)"},
        {"optimizer.lr", 8, "finite"},
        {"optimizer.betas[1]", 8, "got 1.5"},
        {"optimizer.momentum", 8, "only used by optimizer types sgd and muon"},
        {"schedule.warmup_steps", 12, "must be an integer >= 0, got -5"},
        {"schedule.cycles", 13, "cosine_with_restarts"},
        {"train.log_every", 14, "in 1..1000000000, got 0"},
        {"train.speed", 14, "unknown key"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!has_diag(&errs, want[i].path, want[i].line, want[i].msg)) {
            dump_diags("all at once", &errs);
            ck_abort_msg("missing %s:%d %s", want[i].path, want[i].line, want[i].msg);
        }
    ck_assert_uint_eq(errs.n, sizeof want / sizeof *want);   /* and nothing cascades */
    diag_free(&errs);
}
END_TEST

START_TEST(test_no_cascades_and_error_cap)
{
    /* A section that is not a mapping is one error, not one per required key. */
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse("model: mlp\nschedule: [1]\n", &c, &errs), -1);
    ck_assert_uint_eq(errs.n, 2);
    ck_assert(has_diag(&errs, "model", 1, "must be a mapping of keys to values, got string \"mlp\""));
    ck_assert(has_diag(&errs, "schedule", 2, "got a list"));
    diag_free(&errs);

    /* Thousands of problems: the first 99 and a count of the rest. */
    for (int dup = 0; dup < 2; dup++) {
        size_t n = 5000;
        char *s = xmalloc(n * 24 + 128);
        size_t o = (size_t)sprintf(s, LIN "schedule: {total_steps: 1}\n");
        for (size_t i = 0; i < n; i++)
            o += (size_t)sprintf(s + o, dup ? "k: %zu\n" : "bad_key_%zu: 1\n", i);
        ck_assert_int_eq(cfg_parse(s, o, NULL, &c, &errs), -1);
        ck_assert_uint_eq(errs.n, 100);
        ck_assert_str_eq(errs.items[99].message, dup ? "4900 more problems not listed"
                                                     : "4901 more problems not listed");
        diag_free(&errs);
        free(s);
    }
}
END_TEST

START_TEST(test_error_positions)
{
    /* Column of the offending value; a missing key points at its mapping. */
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(LIN "schedule:\n  total_steps: 100\n  warmup_steps: -5\n", &c, &errs), -1);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_int_eq(errs.items[0].line, 4);
    ck_assert_int_eq(errs.items[0].column, 17);
    ck_assert_str_eq(errs.items[0].message, "must be an integer >= 0, got -5");
    diag_free(&errs);

    ck_assert_int_eq(parse("model:\n  type: linear\n  input_dim: 3\nschedule: {total_steps: 1}\n", &c, &errs), -1);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.items[0].path, "model.output_dim");
    ck_assert_int_eq(errs.items[0].line, 2);     /* the model mapping starts on line 2 */
    ck_assert_int_eq(errs.items[0].column, 3);
    diag_free(&errs);
}
END_TEST

/* ---- hostile YAML ------------------------------------------------------ */

static char *billion_laughs(int levels)
{
    char *s = xstrdup("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (int i = 1; i < levels; i++) {
        char *line = xasprintf("a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
                               i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
        char *t = xasprintf("%s%s", s, line);
        free(s);
        free(line);
        s = t;
    }
    return s;
}

START_TEST(test_billion_laughs_is_fast)
{
    char *yaml = billion_laughs(9);   /* 10^9 "lol"s if expanded */
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    double t0 = now_monotonic();
    ck_assert_int_eq(parse(yaml, &c, &errs), -1);
    double dt = now_monotonic() - t0;
    ck_assert_msg(dt < 0.5 * SLOWDOWN, "billion laughs took %.3f s", dt);
    ck_assert(has_diag(&errs, "*", -1, "more than 100000 nodes"));
    diag_free(&errs);
    free(yaml);

    /* A big scalar aliased many times hits the byte cap, not memory. */
    size_t big = 512 * 1024;
    char *s = xmalloc(big + 200 + 4 * 2000);
    size_t o = (size_t)sprintf(s, "a: &a ");
    memset(s + o, 'x', big);
    o += big;
    o += (size_t)sprintf(s + o, "\nb: [");
    for (int i = 0; i < 2000; i++)
        o += (size_t)sprintf(s + o, "*a,");
    o += (size_t)sprintf(s + o, "*a]\n");
    t0 = now_monotonic();
    ck_assert_int_eq(cfg_parse(s, o, NULL, &c, &errs), -1);
    ck_assert(now_monotonic() - t0 < 0.5 * SLOWDOWN);
    ck_assert(has_diag(&errs, "*", -1, "MiB of text"));
    diag_free(&errs);
    free(s);
}
END_TEST

START_TEST(test_deep_nesting)
{
    /* Far deeper than the cap: rejected at depth 33, libyaml never recursing. */
    size_t depth = 100000;
    char *s = xmalloc(2 * depth + 16);
    size_t o = (size_t)sprintf(s, "x: ");
    memset(s + o, '[', depth);
    o += depth;
    memset(s + o, ']', depth);
    o += depth;
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(s, o, NULL, &c, &errs), -1);
    ck_assert(has_diag(&errs, "*", 1, "deeper than 32 levels"));
    diag_free(&errs);

    /* Exactly at the cap is fine for the tree (then an unknown key). */
    o = (size_t)sprintf(s, "x: ");
    memset(s + o, '[', 31);
    memset(s + o + 31, ']', 31);
    o += 62;
    diag_list_t e2 = DIAG_LIST_INIT;
    ynode *root = ytree_parse(s, o, &e2);
    ck_assert_ptr_nonnull(root);
    ck_assert_uint_eq(e2.n, 0);
    ytree_free(root);
    free(s);
}
END_TEST

START_TEST(test_duplicate_keys)
{
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(LIN "schedule:\n  total_steps: 10\n  total_steps: 20\n"
                           "optimizer: {lr: 1, lr: 2, lr: 3}\n", &c, &errs), -1);
    ck_assert(has_diag(&errs, "schedule.total_steps", 4,
                       "duplicate key 'total_steps' (at line 3 and again at line 4)"));
    ck_assert(has_diag(&errs, "optimizer.lr", 5, "duplicate key 'lr'"));
    ck_assert_uint_eq(errs.n, 3);
    diag_free(&errs);

    /* Many distinct keys are fine (and checked in n log n). */
    size_t n = 40000;
    char *s = xmalloc(n * 16 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(s + o, "k%zu: %zu\n", i, i);
    diag_list_t e2 = DIAG_LIST_INIT;
    double t0 = now_monotonic();
    ynode *root = ytree_parse(s, o, &e2);
    ck_assert(now_monotonic() - t0 < 1.0 * SLOWDOWN);
    ck_assert_ptr_nonnull(root);
    ck_assert_uint_eq(root->n, n);
    ck_assert_str_eq(ymap_get(root, "k39999")->value, "39999");
    ytree_free(root);
    free(s);
}
END_TEST

START_TEST(test_invalid_utf8_has_position)
{
    const char yaml[] = "model: {type: mlp, input_dim: 4, output_dim: 2}\nname: ab\xff\xfe\n";
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(yaml, sizeof yaml - 1, NULL, &c, &errs), -1);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_int_eq(errs.items[0].line, 2);
    ck_assert_int_eq(errs.items[0].column, 9);
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "UTF-8"));
    diag_free(&errs);

    /* A UTF-8 byte order mark is allowed; non-ASCII text is fine. */
    run_config ok;
    parse_ok("\xef\xbb\xbfname: caf\xc3\xa9\n" LIN "schedule: {total_steps: 1}\n", &ok);
    ck_assert_str_eq(ok.name, "caf\xc3\xa9");
    cfg_free(&ok);
}
END_TEST

START_TEST(test_empty_inputs)
{
    static const char *const empties[] = {"", "\n\n", "# only a comment\n", "---\n", "~\n", "--- null\n"};
    for (size_t i = 0; i < sizeof empties / sizeof *empties; i++)
        parse_bad(empties[i], "", -1, "empty config");
    parse_bad("a: 1\n---\nb: 2\n", "", 2, "only one YAML document");
    parse_bad("[1, 2]\n", "", 1, "must be a mapping of keys to values, got a list");
}
END_TEST

START_TEST(test_size_caps)
{
    /* cfg_parse: over YTREE_MAX_BYTES. */
    size_t n = YTREE_MAX_BYTES + 1;
    char *s = xmalloc(n);
    memset(s, '#', n);
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(s, n, NULL, &c, &errs), -1);
    ck_assert(has_diag(&errs, "", -1, "larger than 1 MiB"));
    diag_free(&errs);

    /* cfg_load_file: an over-size file. */
    char tmpl[] = "/tmp/test_config_big_XXXXXX";
    int fd = mkstemp(tmpl);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, s, n), (ssize_t)n);
    close(fd);
    ck_assert_int_eq(cfg_load_file(tmpl, NULL, &c, &errs), -1);
    ck_assert(has_diag(&errs, "", -1, "file is larger than 1 MiB"));
    diag_free(&errs);
    unlink(tmpl);
    free(s);

    ck_assert_int_eq(cfg_load_file("/nonexistent/x.yaml", NULL, &c, &errs), -1);
    ck_assert(has_diag(&errs, "", -1, "cannot read"));
    diag_free(&errs);
}
END_TEST

/* Random edits of a good config never crash or leak (ASan checks the rest). */
START_TEST(test_mutations_do_not_crash)
{
    static const char base[] =
        "name: demo\nseed: 1\nmodel: {type: gpt, context: 8, d_model: 8, layers: 1, heads: 2}\n"
        "data: {kind: text, batch_size: 2}\n"
        "optimizer: {type: adamw, lr: 1.0e-3, betas: [0.9, 0.95]}\n"
        "schedule: {type: piecewise, total_steps: 10, points: [[0, 0], [5, 1]]}\n"
        "train: {log_every: 1}\n&x a: *x\n";
    static const char alphabet[] = "[]{}:,-&*!|>'\"#%@`? \n\t0123456789abz.\xff\xc3";
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    char buf[sizeof base + 64];
    int accepted = 0;
    for (int iter = 0; iter < 4000; iter++) {
        size_t len = sizeof base - 1;
        memcpy(buf, base, len);
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits && len > 0; e++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(rng >> 33) % len;
            char ch = alphabet[(rng >> 17) % (sizeof alphabet - 1)];
            if ((rng >> 60) == 0)
                len = pos;                  /* truncate */
            else
                buf[pos] = ch;
        }
        run_config c;
        diag_list_t errs = DIAG_LIST_INIT;
        if (cfg_parse(buf, len, NULL, &c, &errs) == 0) {
            accepted++;
            cJSON_Delete(cfg_to_json(&c));
            cfg_free(&c);
        } else {
            ck_assert_uint_gt(errs.n, 0);
        }
        diag_free(&errs);
    }
    ck_assert_int_gt(accepted, 0);
}
END_TEST

/* ---- hash and JSON ----------------------------------------------------- */

static uint64_t hash_of(const char *yaml)
{
    run_config c;
    parse_ok(yaml, &c);
    uint64_t h = cfg_hash(&c);
    cfg_free(&c);
    return h;
}

START_TEST(test_hash)
{
    const char *a = "name: a\nmodel: {type: mlp, input_dim: 4, output_dim: 2}\nschedule: {total_steps: 100}\n";
    uint64_t h = hash_of(a);
    ck_assert_uint_eq(h, hash_of(a));
    /* What does not change the numbers does not change the hash. */
    ck_assert_uint_eq(h, hash_of("name: other\nthreads: 8\nmodel: {type: mlp, input_dim: 4, output_dim: 2}\n"
                                 "schedule: {total_steps: 100}\ntrain: {log_every: 1, checkpoint_every: 7, eval_every: 3}\n"));
    /* Defaults written out are the same config. */
    ck_assert_uint_eq(h, hash_of("model: {type: mlp, input_dim: 4, output_dim: 2, hidden: [64], activation: relu}\n"
                                 "optimizer: {type: adamw, lr: 0.001, weight_decay: 0.01}\n"
                                 "seed: 0\nschedule: {type: cosine, total_steps: 100, warmup_steps: 0}\n"));
    /* warmup_ratio resolving to the same W is the same schedule. */
    ck_assert_uint_eq(hash_of(LIN "schedule: {total_steps: 100, warmup_steps: 10}\n"),
                      hash_of(LIN "schedule: {total_steps: 100, warmup_ratio: 0.1}\n"));
    /* What changes the numbers changes the hash. */
    ck_assert_uint_ne(h, hash_of("model: {type: mlp, input_dim: 4, output_dim: 2}\noptimizer: {lr: 0.002}\n"
                                 "schedule: {total_steps: 100}\n"));
    ck_assert_uint_ne(h, hash_of("seed: 1\nmodel: {type: mlp, input_dim: 4, output_dim: 2}\n"
                                 "schedule: {total_steps: 100}\n"));
    ck_assert_uint_ne(h, hash_of("model: {type: mlp, input_dim: 4, output_dim: 2, hidden: [64, 64]}\n"
                                 "schedule: {total_steps: 100}\n"));
    ck_assert_uint_ne(h, hash_of("model: {type: mlp, input_dim: 4, output_dim: 2}\ndata: {batch_size: 16}\n"
                                 "schedule: {total_steps: 100}\n"));
    ck_assert_uint_ne(h, hash_of("model: {type: mlp, input_dim: 4, output_dim: 2}\n"
                                 "schedule: {total_steps: 100, min_lr_ratio: 0.1}\n"));
}
END_TEST

START_TEST(test_json)
{
    run_config c;
    parse_ok("name: j\nmodel: {type: linear, input_dim: 3, output_dim: 1}\n"
             "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n"
             "schedule: {type: step, total_steps: 50, step_size: 10, warmup_ratio: 0.1}\n", &c);
    cJSON *j = cfg_to_json(&c);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "name")->valuestring, "j");
    cJSON *model = cJSON_GetObjectItem(j, "model");
    ck_assert_str_eq(cJSON_GetObjectItem(model, "type")->valuestring, "linear");
    ck_assert_ptr_null(cJSON_GetObjectItem(model, "hidden"));      /* mlp only */
    ck_assert_ptr_null(cJSON_GetObjectItem(model, "d_model"));     /* gpt only */
    cJSON *opt = cJSON_GetObjectItem(j, "optimizer");
    ck_assert_double_eq(cJSON_GetObjectItem(opt, "momentum")->valuedouble, 0.9);
    ck_assert_ptr_null(cJSON_GetObjectItem(opt, "betas"));         /* adam only */
    cJSON *sched = cJSON_GetObjectItem(j, "schedule");
    ck_assert_str_eq(cJSON_GetObjectItem(sched, "type")->valuestring, "step");
    ck_assert_int_eq(cJSON_GetObjectItem(sched, "warmup_steps")->valueint, 5);
    ck_assert_int_eq(cJSON_GetObjectItem(sched, "step_size")->valueint, 10);
    ck_assert_double_eq(cJSON_GetObjectItem(sched, "gamma")->valuedouble, 0.1);
    ck_assert_ptr_null(cJSON_GetObjectItem(sched, "cycles"));
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "train"), "log_every")->valueint, 10);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "kind")->valuestring, "synthetic");
    check_json_round_trip(&c);
    cJSON_Delete(j);
    cfg_free(&c);
}
END_TEST

/* parallel.ranks: default, range, divisibility, JSON, not in the hash, memory per rank. */
START_TEST(test_parallel_ranks)
{
    const char *m = "model: {type: mlp, input_dim: 4, output_dim: 2}\nschedule: {total_steps: 100}\n";
    run_config c;
    parse_ok(m, &c);
    ck_assert_int_eq(c.ranks, 1);
    cfg_free(&c);
    char *slice = xasprintf("%sdata: {batch_size: 8}\n", m);
    parse_ok(slice, &c);
    size_t one = cfg_model_bytes(&c);
    cfg_free(&c);
    free(slice);
    char *y = xasprintf("%sdata: {batch_size: 32}\nparallel: {ranks: 4}\n", m);
    parse_ok(y, &c);
    ck_assert_int_eq(c.ranks, 4);
    cJSON *j = cfg_to_json(&c);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "parallel"), "ranks")->valueint, 4);
    cJSON_Delete(j);
    check_json_round_trip(&c);
    /* four processes, each with the parameters and an eighth of the batch */
    ck_assert_uint_eq(cfg_model_bytes(&c), 4 * one);
    cfg_free(&c);
    ck_assert_uint_eq(hash_of(m), hash_of(y));   /* a checkpoint resumes on any number of ranks */
    free(y);
    /* batch 32 on 3 ranks: at data.batch_size, line 3 */
    parse_bad("model: {type: mlp, input_dim: 4, output_dim: 2}\nschedule: {total_steps: 100}\n"
              "data: {batch_size: 32}\nparallel: {ranks: 3}\n",
              "data.batch_size", 3, "must be divisible by parallel.ranks (3)");
    /* the default batch (32) without data.batch_size: at parallel.ranks */
    parse_bad("model: {type: mlp, input_dim: 4, output_dim: 2}\nschedule: {total_steps: 100}\n"
              "parallel: {ranks: 5}\n", "parallel.ranks", 3, "data.batch_size (32) must be divisible");
    parse_bad("model: {type: mlp, input_dim: 4, output_dim: 2}\nschedule: {total_steps: 100}\n"
              "parallel: {ranks: 0}\n", "parallel.ranks", 3, NULL);
    parse_bad("model: {type: mlp, input_dim: 4, output_dim: 2}\nschedule: {total_steps: 100}\n"
              "parallel: {ranks: 2, nodes: 2}\n", "parallel.nodes", 3, NULL);
    parse_bad("model: {type: mlp, input_dim: 4, output_dim: 2}\nschedule: {total_steps: 100}\n"
              "parallel: 2\n", "parallel", 3, NULL);
}
END_TEST

/* ---- sizes ------------------------------------------------------------- */

START_TEST(test_sizes)
{
    model_cfg m = {.type = MODEL_MLP, .input_dim = 10, .output_dim = 3, .n_hidden = 2, .hidden = {5, 7}};
    ck_assert_uint_eq(cfg_param_count(&m), 10 * 5 + 5 + 5 * 7 + 7 + 7 * 3 + 3);
    /* Saturates rather than wrapping. */
    model_cfg huge = {.type = MODEL_MLP, .input_dim = INT_MAX, .output_dim = INT_MAX, .n_hidden = 16};
    for (int i = 0; i < 16; i++)
        huge.hidden[i] = INT_MAX;
    ck_assert_uint_gt(cfg_param_count(&huge), (size_t)1 << 62);
    run_config c = {.model = huge, .data = {.batch_size = 65536}};
    ck_assert_uint_eq(cfg_model_bytes(&c), SIZE_MAX);

    model_cfg g = {.type = MODEL_GPT, .vocab_size = 256, .context = 1 << 20, .d_model = 1 << 20,
                   .layers = 10000, .heads = 1 << 20};
    run_config cg = {.model = g, .data = {.batch_size = 65536}};
    ck_assert_uint_eq(cfg_model_bytes(&cg), SIZE_MAX);
    /* 12·d² alone wraps a 64-bit count to 0 at d = 2^31: must saturate. */
    model_cfg wide = {.type = MODEL_GPT, .vocab_size = 1, .context = 1, .d_model = INT_MAX,
                      .layers = 1, .heads = 1};
    ck_assert_uint_eq(cfg_param_count(&wide), SIZE_MAX);
    run_config cw = {.model = wide, .data = {.batch_size = 1}};
    ck_assert_uint_eq(cfg_model_bytes(&cw), SIZE_MAX);

    /* The figure is what model_create and the optimizer allocate, counted by
     * the models' own layout: 10-5-7-3 at batch 4 has an arena of
     * 2·16·2 (z, a of both hidden layers) + 16 (out) + 2·48 (gradient
     * buffers of the widest layer) + 16 (row losses) = 256 floats, plus
     * params and grads (121 each) and the two moments (121 each). */
    run_config cm = {.model = m, .data = {.batch_size = 4}};
    ck_assert_uint_eq(model_memory_bytes(&m, 4), (256 + 2 * 121) * sizeof(float));
    ck_assert_uint_eq(cfg_model_bytes(&cm), (256 + 4 * 121) * sizeof(float));
    model_cfg tg = {.type = MODEL_GPT, .vocab_size = 256, .context = 16, .d_model = 32,
                    .layers = 2, .heads = 4};
    run_config ct = {.model = tg, .data = {.batch_size = 3}};
    ck_assert_uint_eq(cfg_model_bytes(&ct), gpt_memory_bytes(&tg, 3) + 2 * cfg_param_count(&tg) * sizeof(float));
    ck_assert_uint_eq(model_memory_bytes(&tg, 0), SIZE_MAX);

    /* The memory cap is configurable and names both sizes. */
    cfg_parse_opts opts = {.max_model_bytes = (size_t)1 << 20};
    const char *yaml = "model: {type: mlp, input_dim: 1000, output_dim: 1000}\nschedule: {total_steps: 1}\n";
    run_config out;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(yaml, strlen(yaml), &opts, &out, &errs), -1);
    ck_assert(has_diag(&errs, "model", 1, "more than the 1.0 MiB allowed"));
    diag_free(&errs);
    opts.max_model_bytes = 0;               /* default cap: fine */
    ck_assert_int_eq(cfg_parse(yaml, strlen(yaml), &opts, &out, &errs), 0);
    cfg_free(&out);
}
END_TEST

/* The threads each rank runs (traind.yaml(5), threads_per_job): the
 * config's threads capped by the budget's share, never 0. */
START_TEST(test_rank_threads)
{
    ck_assert_int_eq(cfg_rank_threads(1, 64, 2), 1);    /* a rank of threads: 1 uses 1, whatever the budget */
    ck_assert_int_eq(cfg_rank_threads(4, 64, 2), 4);
    ck_assert_int_eq(cfg_rank_threads(8, 8, 2), 4);     /* capped by threads_per_job / ranks */
    ck_assert_int_eq(cfg_rank_threads(8, 5, 2), 2);
    ck_assert_int_eq(cfg_rank_threads(3, 2, 1), 2);     /* one rank: the whole budget */
    ck_assert_int_eq(cfg_rank_threads(1, 1, 4), 1);     /* never 0 (more ranks than budget is refused earlier) */
    ck_assert_int_eq(cfg_rank_threads(0, 4, 1), 1);     /* no threads given: the default, 1 */
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(sched_type_name(SCHED_WSD), "warmup_stable_decay");
    ck_assert_str_eq(sched_type_name(SCHED_PIECEWISE), "piecewise");
    ck_assert_str_eq(sched_type_name((sched_type)99), "?");
    ck_assert_str_eq(model_type_name(MODEL_GPT), "gpt");
    ck_assert_str_eq(activation_name(ACT_GELU), "gelu");
    ck_assert_str_eq(data_kind_name(DATA_TOKENS), "tokens");
    ck_assert_str_eq(optim_type_name(OPT_SGD), "sgd");
    ck_assert_str_eq(wsd_shape_name(SHAPE_1_SQRT), "1-sqrt");
}
END_TEST

/* ---- data paths -------------------------------------------------------- */

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("1,2\n", f);
    fclose(f);
}

/* Resolves a config whose data.path is `path`; returns the result (or NULL)
 * and the first error message in *msg (malloc'd, or NULL). */
static char *resolve(const char *path, const char *base, char *const *dirs, int n, char **msg)
{
    char *yaml = xasprintf("model: {type: linear, input_dim: 1, output_dim: 1}\n"
                           "data: {kind: csv, path: '%s'}\nschedule: {total_steps: 1}\n", path);
    run_config c;
    parse_ok(yaml, &c);
    diag_list_t errs = DIAG_LIST_INIT;
    char *r = cfg_resolve_data_path(&c, base, dirs, n, &errs);
    *msg = NULL;
    if (errs.n) {
        ck_assert_str_eq(errs.items[0].path, "data.path");
        ck_assert_int_eq(errs.items[0].line, 2);
        *msg = xstrdup(errs.items[0].message);
    }
    ck_assert((r == NULL) == (errs.n > 0));
    diag_free(&errs);
    cfg_free(&c);
    free(yaml);
    return r;
}

START_TEST(test_resolve_data_path)
{
    char tmpl[] = "/tmp/test_config_paths_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    char *root = realpath(tmpl, NULL);
    char *data = path_join(root, "data"), *data2 = path_join(root, "data2"), *outside = path_join(root, "outside");
    ck_assert_int_eq(mkdir(data, 0700), 0);
    ck_assert_int_eq(mkdir(data2, 0700), 0);
    ck_assert_int_eq(mkdir(outside, 0700), 0);
    char *in_file = path_join(data, "train.csv"), *out_file = path_join(outside, "secret.csv");
    char *d2_file = path_join(data2, "other.csv");
    touch(in_file);
    touch(out_file);
    touch(d2_file);
    char *link_out = path_join(data, "escape.csv"), *link_in = path_join(data, "alias.csv");
    ck_assert_int_eq(symlink(out_file, link_out), 0);
    ck_assert_int_eq(symlink(in_file, link_in), 0);
    char *dirs[] = {data, data2};
    char *msg, *r;

    /* No data.path: NULL and no error. */
    run_config c;
    parse_ok(MINIMAL, &c);
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_ptr_null(cfg_resolve_data_path(&c, NULL, dirs, 2, &errs));
    ck_assert_uint_eq(errs.n, 0);
    cfg_free(&c);

    /* Daemon: relative to data_dirs[0]; absolute inside any data dir. */
    r = resolve("train.csv", NULL, dirs, 2, &msg);
    ck_assert_str_eq(r, in_file);
    free(r);
    r = resolve(d2_file, NULL, dirs, 2, &msg);
    ck_assert_str_eq(r, d2_file);
    free(r);
    r = resolve("alias.csv", NULL, dirs, 2, &msg);   /* a symlink that stays inside */
    ck_assert_str_eq(r, in_file);
    free(r);

    /* Escapes: a symlink out, ../, an absolute path elsewhere, /etc/passwd. */
    static const char *const escapes[] = {"escape.csv", "../outside/secret.csv", "../data/../outside/secret.csv"};
    /* (the message names neither the symlink's target nor the
     * data dirs, and says the same whether a path outside exists or not) */
    for (size_t i = 0; i < sizeof escapes / sizeof *escapes; i++) {
        ck_assert_ptr_null(resolve(escapes[i], NULL, dirs, 2, &msg));
        ck_assert_msg(strstr(msg, "outside data_dirs") && !strstr(msg, out_file) && !strstr(msg, data), "%s", msg);
        free(msg);
    }
    ck_assert_ptr_null(resolve("/etc/passwd", NULL, dirs, 2, &msg));
    ck_assert_str_eq(msg, "/etc/passwd is outside data_dirs");
    free(msg);
    ck_assert_ptr_null(resolve("/etc/no-such-file", NULL, dirs, 2, &msg));
    ck_assert_str_eq(msg, "/etc/no-such-file is outside data_dirs");
    free(msg);
    /* A sibling whose name starts with the data dir's is not inside it. */
    char *data_x = path_join(root, "datax");
    ck_assert_int_eq(mkdir(data_x, 0700), 0);
    char *datax_file = path_join(data_x, "f.csv");
    touch(datax_file);
    ck_assert_ptr_null(resolve("../datax/f.csv", NULL, dirs, 1, &msg));
    free(msg);

    /* Missing file, a directory. */
    ck_assert_ptr_null(resolve("nope.csv", NULL, dirs, 2, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "no such file in data_dirs: nope.csv"));
    free(msg);
    ck_assert_ptr_null(resolve(".", NULL, dirs, 2, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "not a regular file"));
    free(msg);

    /* trainctl: relative to the config's folder, anywhere allowed. */
    r = resolve("../outside/secret.csv", data, NULL, 0, &msg);
    ck_assert_str_eq(r, out_file);
    free(r);
    r = resolve("escape.csv", data, NULL, 0, &msg);
    ck_assert_str_eq(r, out_file);
    free(r);

    unlink(link_out);
    unlink(link_in);
    unlink(in_file);
    unlink(out_file);
    unlink(d2_file);
    unlink(datax_file);
    rmdir(data_x);
    rmdir(data);
    rmdir(data2);
    rmdir(outside);
    rmdir(root);
    free(datax_file);
    free(data_x);
    free(link_out);
    free(link_in);
    free(in_file);
    free(out_file);
    free(d2_file);
    free(data);
    free(data2);
    free(outside);
    free(root);
}
END_TEST

/* ---- yamltree ---------------------------------------------------------- */

START_TEST(test_yamltree_basics)
{
    const char *y = "a: 1\nb: 'q'\nc: [x, {d: ~}]\ne: &v hello\nf: *v\n";
    diag_list_t errs = DIAG_LIST_INIT;
    ynode *root = ytree_parse(y, strlen(y), &errs);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(root->kind, YNODE_MAP);
    const ynode *a = ymap_get(root, "a");
    ck_assert(a->plain);
    ck_assert_int_eq(a->line, 1);
    ck_assert_int_eq(a->column, 4);
    ck_assert(!ymap_get(root, "b")->plain);
    const ynode *cn = ymap_get(root, "c");
    ck_assert_int_eq(cn->kind, YNODE_SEQ);
    ck_assert_uint_eq(cn->n, 2);
    ck_assert(yscalar_is_null(ymap_get(cn->items[1], "d")));
    const ynode *f = ymap_get(root, "f");
    ck_assert_str_eq(f->value, "hello");
    ck_assert_int_eq(f->line, 5);           /* an alias copy sits where the alias is */
    ck_assert_ptr_null(ymap_get(root, "zz"));
    ck_assert_ptr_null(ymap_get(a, "x"));   /* not a mapping */
    ytree_free(root);
    ck_assert_uint_eq(errs.n, 0);
    ytree_free(NULL);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_defaults_mlp);
    tcase_add_test(tc, test_defaults_gpt_and_sgd);
    tcase_add_test(tc, test_number_forms);
    tcase_add_test(tc, test_good_directory);
    tcase_add_test(tc, test_workloads);
    tcase_add_test(tc, test_schedule_types);
    tcase_add_test(tc, test_schedule_resolution);
    tcase_add_test(tc, test_bad_directory);
    tcase_add_test(tc, test_unknown_key_hints);
    tcase_add_test(tc, test_all_errors_at_once);
    tcase_add_test(tc, test_no_cascades_and_error_cap);
    tcase_add_test(tc, test_error_positions);
    tcase_add_test(tc, test_billion_laughs_is_fast);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_duplicate_keys);
    tcase_add_test(tc, test_invalid_utf8_has_position);
    tcase_add_test(tc, test_empty_inputs);
    tcase_add_test(tc, test_size_caps);
    tcase_add_test(tc, test_mutations_do_not_crash);
    tcase_add_test(tc, test_hash);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_parallel_ranks);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_rank_threads);
    tcase_add_test(tc, test_resolve_data_path);
    tcase_add_test(tc, test_yamltree_basics);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed = tl_run_suite(config_suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * Muon (traind/optim_muon.h): against the torch reference
 * (tests/data/optim/muon_*.json, written by tests/gen_torch_ref.py muon),
 * the models' parameter layouts, the AdamW group, Newton-Schulz's
 * orthogonality, and end to end through the runner: the byte GPT learns, a
 * stopped run resumes bit-identically, forks continue and may not change
 * the optimizer type, and the config's keys are validated.
 *
 * Precision against torch: the momentum buffer is elementwise (torch.lerp
 * is fma on its AVX2 kernels, fmaf here) and must match bit for bit.  The
 * parameters go through Newton-Schulz's products, summed by OpenBLAS in
 * another order than torch's matmul and after a norm that we sum in double,
 * so they are held to MUON_REL_TOL of the parameter (with a floor at the
 * size of the step, for a parameter passing near 0); report() prints the
 * worst error seen and how many values were bit-identical.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/ckpt.h"
#include "traind/config.h"
#include "traind/fork.h"
#include "traind/gpt.h"
#include "traind/model.h"
#include "traind/optim.h"
#include "traind/optim_muon.h"
#include "traind/runner.h"
#include "traind/util.h"
#include "tl.h"
#include "optim_ref.h"

#define OPTIM_DIR "tests/data/optim"
#define MAX_CASES 32
#define MUON_REL_TOL 1e-6
#define MUON_STEP_TOL 2e-4

static char *case_names[MAX_CASES];
static int n_cases;

/* ---- the reference cases -------------------------------------------------- */

static double num(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(x) ? x->valuedouble : 0.0;
}

typedef struct tally {
    long values, exact, m_values, m_exact;
    double worst_rel;           /* max |got - want| / max |want| of a matrix */
    double worst_step_rel;      /* max |got - want| / the largest change torch made in the step */
} tally;

/* This file's cases: muon*.json. */
static bool is_muon_case(const char *file)
{
    return strncmp(file, "muon", 4) == 0;
}

static void find_cases(void)
{
    n_cases = optim_ref_find(OPTIM_DIR, is_muon_case, case_names, MAX_CASES);
}

/* Replays tests/data/optim/NAME.json on one hidden matrix.  0, or -1 with err. */
static int replay_case(const char *name, tally *t, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s.json", OPTIM_DIR, name);
    cJSON *j = optim_ref_load(path);
    float *p = NULL, *g = NULL, *want = NULL, *prev = NULL, *m = NULL, *v = NULL;
    optim_muon *mu = NULL;
    int rc = -1, k = 0;
    if (!j) {
        snprintf(err, errlen, "cannot read %s", path);
        goto out;
    }
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "optimizer");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    int n = (int)num(j, "n");
    if (cJSON_GetArraySize(shape) != 2 || n <= 0 || n > 1000000) {
        snprintf(err, errlen, "%s: no shape or n", path);
        goto out;
    }
    int rows = cJSON_GetArrayItem(shape, 0)->valueint, cols = cJSON_GetArrayItem(shape, 1)->valueint;
    const char *adjust = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "adjust_lr"));
    optim_cfg cfg = {.type = OPT_MUON, .momentum = num(o, "momentum"),
                     .nesterov = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "nesterov")),
                     .ns_steps = (int)num(o, "ns_steps"), .weight_decay = num(o, "weight_decay"),
                     .adjust_lr = adjust && !strcmp(adjust, "match_rms_adamw") ? MUON_ADJUST_MATCH_RMS_ADAMW
                                                                              : MUON_ADJUST_ORIGINAL};
    if (rows * cols != n || cfg.ns_steps < 1) {
        snprintf(err, errlen, "%s: shape %d x %d, n %d, ns_steps %d", path, rows, cols, n, cfg.ns_steps);
        goto out;
    }
    model_tensor mt = {0, (size_t)rows, (size_t)cols, MODEL_TENSOR_HIDDEN};
    mu = optim_muon_create(&mt, 1, (size_t)n, err, errlen);
    if (!mu)
        goto out;
    p = xcalloc(n, sizeof *p);
    g = xcalloc(n, sizeof *g);
    want = xcalloc(n, sizeof *want);
    prev = xcalloc(n, sizeof *prev);
    m = xcalloc(n, sizeof *m);
    v = xcalloc(n, sizeof *v);
    optim_state st = {.m = m, .v = v, .muon = mu};
    if (optim_ref_floats(cJSON_GetObjectItemCaseSensitive(j, "params0"), p, n) != n) {
        snprintf(err, errlen, "%s: params0 is not %d floats", path, n);
        goto out;
    }
    memcpy(prev, p, (size_t)n * sizeof *prev);
    const cJSON *step;
    cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(j, "steps")) {
        k++;
        double lr = num(step, "lr");
        cfg.lr = lr;
        if (optim_ref_floats(cJSON_GetObjectItemCaseSensitive(step, "grad"), g, n) != n ||
            optim_ref_floats(cJSON_GetObjectItemCaseSensitive(step, "m"), want, n) != n) {
            snprintf(err, errlen, "%s step %d: grad or m is not %d floats", path, k, n);
            goto out;
        }
        optim_step(&cfg, &st, p, g, (size_t)n, lr);
        for (int i = 0; i < n; i++) {
            t->m_values++;
            t->m_exact += memcmp(&m[i], &want[i], sizeof(float)) == 0;
            if (memcmp(&m[i], &want[i], sizeof(float)) != 0) {
                snprintf(err, errlen, "%s step %d m[%d]: %.9g, torch %.9g (must be bit-identical)", name, k, i,
                         m[i], want[i]);
                goto out;
            }
        }
        if (optim_ref_floats(cJSON_GetObjectItemCaseSensitive(step, "params"), want, n) != n) {
            snprintf(err, errlen, "%s step %d: params is not %d floats", path, k, n);
            goto out;
        }
        /* the error against the matrix's largest entry, and against the largest change torch
         * made to it this step (prev: torch's parameters before it) */
        double dmax = 0, pmax = 0, stepmax = 0;
        for (int i = 0; i < n; i++) {
            dmax = fmax(dmax, fabs((double)p[i] - (double)want[i]));
            pmax = fmax(pmax, fabs((double)want[i]));
            stepmax = fmax(stepmax, fabs((double)want[i] - (double)prev[i]));
            t->values++;
            t->exact += p[i] == want[i];
        }
        t->worst_rel = fmax(t->worst_rel, dmax / pmax);
        t->worst_step_rel = fmax(t->worst_step_rel, dmax / stepmax);
        if (dmax > MUON_REL_TOL * pmax || dmax > MUON_STEP_TOL * stepmax) {
            snprintf(err, errlen, "%s step %d: parameters %.3g from torch's, %.3g of the largest (bound %g), "
                     "%.3g of the largest change (bound %g)", name, k, dmax, dmax / pmax, MUON_REL_TOL,
                     dmax / stepmax, MUON_STEP_TOL);
            goto out;
        }
        memcpy(prev, want, (size_t)n * sizeof *prev);
    }
    if (k != 5) {
        snprintf(err, errlen, "%s: %d steps, expected 5", path, k);
        goto out;
    }
    rc = 0;
out:
    free(p);
    free(g);
    free(want);
    free(prev);
    free(m);
    free(v);
    optim_muon_free(mu);
    cJSON_Delete(j);
    free(path);
    return rc;
}

START_TEST(test_cases_present)
{
    ck_assert_msg(n_cases >= 6, "expected the muon cases in %s (run from the repository root), found %d",
                  OPTIM_DIR, n_cases);
}
END_TEST

START_TEST(test_case_matches_torch)
{
    char err[512] = "";
    tally t = {0};
    int rc = replay_case(case_names[_i], &t, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

static void report(void)
{
    tally t = {0};
    char err[512];
    for (int i = 0; i < n_cases; i++)
        replay_case(case_names[i], &t, err, sizeof err);
    fprintf(stderr, "muon: %d cases; momentum %ld values, %ld bit-identical; parameters %ld values, %ld "
            "bit-identical, worst error %.3g of the matrix's largest entry (bound %g), %.3g of the step's "
            "largest change (bound %g)\n", n_cases, t.m_values, t.m_exact, t.values, t.exact, t.worst_rel,
            MUON_REL_TOL, t.worst_step_rel, MUON_STEP_TOL);
}

/* ---- layouts, the AdamW group, Newton-Schulz ------------------------------ */

static model_cfg gpt_cfg(int V, int T, int C, int L, int H)
{
    return (model_cfg){.type = MODEL_GPT, .vocab_size = V, .context = T, .d_model = C, .layers = L, .heads = H};
}

/* The tensors tile the parameters in order; returns the hidden matrices' count. */
static int check_tiling(const model_cfg *cfg)
{
    int n = model_tensor_count(cfg), hidden = 0;
    size_t at = 0;
    model_tensor t;
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(model_tensor_at(cfg, i, &t), 0);
        ck_assert_uint_eq(t.offset, at);
        at += t.rows * t.cols;
        hidden += t.kind == MODEL_TENSOR_HIDDEN;
        if (t.kind == MODEL_TENSOR_VECTOR)
            ck_assert_uint_eq(t.rows, 1);
    }
    ck_assert_int_eq(model_tensor_at(cfg, n, &t), -1);
    ck_assert_uint_eq(at, model_param_count(cfg));
    return hidden;
}

START_TEST(test_gpt_layout)
{
    model_cfg c = gpt_cfg(256, 16, 24, 3, 2);
    ck_assert_int_eq(check_tiling(&c), 4 * 3);
    /* the hidden matrices, by name, with their (out, in) shapes */
    int n = model_tensor_count(&c), seen = 0;
    for (int i = 0; i < n; i++) {
        model_tensor t;
        gpt_tensor g;
        model_tensor_at(&c, i, &t);
        gpt_tensor_info(&c, i, &g);
        ck_assert_uint_eq(t.offset, g.offset);
        ck_assert_uint_eq(t.rows * t.cols, g.size);
        const char *leaf = g.name;
        if (strstr(leaf, "qkv.weight"))
            ck_assert(t.kind == MODEL_TENSOR_HIDDEN && t.rows == 72 && t.cols == 24), seen++;
        else if (strstr(leaf, "proj.weight"))
            ck_assert(t.kind == MODEL_TENSOR_HIDDEN && t.rows == 24 && t.cols == 24), seen++;
        else if (strstr(leaf, "fc2.weight"))
            ck_assert(t.kind == MODEL_TENSOR_HIDDEN && t.rows == 24 && t.cols == 96), seen++;
        else if (strstr(leaf, "fc.weight"))
            ck_assert(t.kind == MODEL_TENSOR_HIDDEN && t.rows == 96 && t.cols == 24), seen++;
        else if (!strcmp(g.name, "wte.weight"))
            ck_assert(t.kind == MODEL_TENSOR_INPUT && t.rows == 256 && t.cols == 24);
        else if (!strcmp(g.name, "wpe.weight"))
            ck_assert(t.kind == MODEL_TENSOR_INPUT && t.rows == 16 && t.cols == 24);
        else
            ck_assert_msg(t.kind == MODEL_TENSOR_VECTOR, "%s", g.name);
    }
    ck_assert_int_eq(seen, 12);
}
END_TEST

START_TEST(test_mlp_layout)
{
    model_cfg lin = {.type = MODEL_LINEAR, .input_dim = 5, .output_dim = 2};
    ck_assert_int_eq(check_tiling(&lin), 0);
    model_cfg one = {.type = MODEL_MLP, .input_dim = 5, .output_dim = 2, .hidden = {7}, .n_hidden = 1};
    ck_assert_int_eq(check_tiling(&one), 0);
    model_cfg three = {.type = MODEL_MLP, .input_dim = 5, .output_dim = 2, .hidden = {7, 9, 11}, .n_hidden = 3};
    ck_assert_int_eq(check_tiling(&three), 2);
    model_tensor t;
    model_tensor_at(&three, 0, &t);
    ck_assert(t.kind == MODEL_TENSOR_INPUT && t.rows == 7 && t.cols == 5);
    model_tensor_at(&three, 2, &t);
    ck_assert(t.kind == MODEL_TENSOR_HIDDEN && t.rows == 9 && t.cols == 7 && t.offset == 7 * 5 + 7);
    model_tensor_at(&three, 5, &t);
    ck_assert(t.kind == MODEL_TENSOR_VECTOR && t.cols == 11);
    model_tensor_at(&three, 6, &t);
    ck_assert(t.kind == MODEL_TENSOR_OUTPUT && t.rows == 2 && t.cols == 11);
    ck_assert(!optim_muon_model_has_hidden(&one) && optim_muon_model_has_hidden(&three));
    model_cfg bad = {.type = MODEL_MLP, .input_dim = 0, .output_dim = 2};
    ck_assert_int_eq(model_tensor_count(&bad), 0);
}
END_TEST

/* A plan refuses tensors that do not tile the array. */
START_TEST(test_plan_refuses_gaps)
{
    char err[256];
    model_tensor gap[2] = {{0, 2, 3, MODEL_TENSOR_HIDDEN}, {7, 1, 4, MODEL_TENSOR_VECTOR}};
    ck_assert_ptr_null(optim_muon_create(gap, 2, 11, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "does not follow"));
    model_tensor shortt[1] = {{0, 2, 3, MODEL_TENSOR_HIDDEN}};
    ck_assert_ptr_null(optim_muon_create(shortt, 1, 10, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "cover 6 of its 10"));
}
END_TEST

/* The tensors Muon leaves out get exactly traind's AdamW with optimizer.adamw's
 * keys, at adamw.lr scaled as the schedule scales lr; the matrix gets Muon. */
START_TEST(test_aux_tensors_get_adamw)
{
    enum { R = 6, C = 10, NV = 13, N = NV + R * C + 5 };
    model_tensor t[3] = {{0, 1, NV, MODEL_TENSOR_VECTOR}, {NV, R, C, MODEL_TENSOR_HIDDEN},
                         {NV + R * C, 1, 5, MODEL_TENSOR_INPUT}};
    char err[256];
    optim_muon *mu = optim_muon_create(t, 3, N, err, sizeof err);
    ck_assert_msg(mu != NULL, "%s", err);
    ck_assert_int_eq(optim_muon_matrices(mu), 1);
    optim_cfg cfg = {.type = OPT_MUON, .lr = 0.02, .momentum = 0.95, .nesterov = true, .ns_steps = 5,
                     .weight_decay = 0.1, .adamw = {3e-4, 0.9, 0.95, 1e-10, 0.05}};
    optim_cfg aw = {.type = OPT_ADAMW, .lr = 3e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-10,
                    .weight_decay = 0.05};
    float p[N], g[N], m[N] = {0}, v[N] = {0}, q[N], qm[N] = {0}, qv[N] = {0};
    for (int i = 0; i < N; i++)
        p[i] = q[i] = sinf((float)i * 1.3f);
    optim_state st = {.m = m, .v = v, .muon = mu}, ref = {.m = qm, .v = qv};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < N; i++)
            g[i] = cosf((float)(i * (k + 2))) * 0.1f;
        double lr = 0.02 * (1.0 - 0.2 * k);                  /* a decaying schedule */
        optim_step(&cfg, &st, p, g, N, lr);
        optim_step(&aw, &ref, q, g, N, 3e-4 * (lr / 0.02));
        ck_assert_int_eq(st.step, k + 1);
        ck_assert(memcmp(p, q, NV * sizeof(float)) == 0);
        ck_assert(memcmp(p + NV + R * C, q + NV + R * C, 5 * sizeof(float)) == 0);
        ck_assert(memcmp(m + NV + R * C, qm + NV + R * C, 5 * sizeof(float)) == 0);
        ck_assert(memcmp(v, qv, NV * sizeof(float)) == 0);
        for (int i = NV; i < NV + R * C; i++)
            ck_assert(v[i] == 0.0f && p[i] != q[i]);          /* Muon's: no second moment */
    }
    optim_muon_free(mu);
}
END_TEST

/* One step from zero momentum, lr 1, no decay, nesterov off: p = -s·X with X
 * Newton-Schulz's near-orthogonal factor, X·Xᵀ close to the identity (the
 * quintic leaves singular values in about [0.7, 1.2], not exactly 1). */
START_TEST(test_update_is_near_orthogonal)
{
    static const int shapes[][2] = {{8, 20}, {20, 8}, {16, 16}};
    for (int c = 0; c < 3; c++) {
        int r = shapes[c][0], k = shapes[c][1], n = r * k, mn = r < k ? r : k;
        model_tensor t = {0, (size_t)r, (size_t)k, MODEL_TENSOR_HIDDEN};
        char err[256];
        optim_muon *mu = optim_muon_create(&t, 1, (size_t)n, err, sizeof err);
        ck_assert_ptr_nonnull(mu);
        float *p = xcalloc(n, sizeof *p), *g = xcalloc(n, sizeof *g), *m = xcalloc(n, sizeof *m);
        for (int i = 0; i < n; i++)
            g[i] = sinf((float)(i * i) * 0.37f + (float)i);
        optim_cfg cfg = {.type = OPT_MUON, .lr = 1, .momentum = 0.95, .ns_steps = 5};
        optim_state st = {.m = m, .v = m, .muon = mu};
        optim_step(&cfg, &st, p, g, (size_t)n, 1.0);
        double s = sqrt(r > k ? (double)r / k : 1.0);
        /* G = -p/s; Gram matrix of the short side */
        for (int a = 0; a < mn; a++)
            for (int b = 0; b < mn; b++) {
                double dot = 0;
                for (int l = 0; l < (r > k ? r : k); l++) {
                    double xa = r <= k ? p[a * k + l] : p[l * k + a];
                    double xb = r <= k ? p[b * k + l] : p[l * k + b];
                    dot += xa * xb / (s * s);
                }
                if (a == b)
                    ck_assert_msg(dot > 0.45 && dot < 1.45, "%dx%d: diagonal %d: %g", r, k, a, dot);
                else
                    ck_assert_msg(fabs(dot) < 0.35, "%dx%d: (%d,%d): %g", r, k, a, b, dot);
            }
        free(p);
        free(g);
        free(m);
        optim_muon_free(mu);
    }
}
END_TEST

/* ---- end to end ------------------------------------------------------------ */

static const char *GPT_MUON_CFG =
    "name: m\nseed: 7\n"
    "model: {type: gpt, vocab_size: 256, context: 32, d_model: 32, layers: 2, heads: 2}\n"
    "data: {kind: text, path: corpus.txt, batch_size: 8}\n"
    "optimizer: {type: muon, lr: 0.02, momentum: 0.95, adamw: {lr: 3.0e-3, betas: [0.9, 0.95]}}\n"
    "schedule: {type: cosine, warmup_steps: 20, total_steps: %d}\n"
    "train: {log_every: %d, checkpoint_every: 50, keep_every: 100}\n";

static void parse_ok(const char *yaml, run_config *cfg)
{
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = cfg_parse(yaml, strlen(yaml), NULL, cfg, &errs);
    if (rc != 0)
        diag_print(stderr, "test", &errs);
    ck_assert_int_eq(rc, 0);
    diag_free(&errs);
}

static char *gpt_yaml(int steps, int log_every)
{
    return xasprintf(GPT_MUON_CFG, steps, log_every);
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/traind-muon-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

/* The byte GPT's corpus: a few sentences, repeated. */
static char *write_corpus(const char *dir)
{
    char *path = xasprintf("%s/corpus.txt", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 150; i++)
        fputs("the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs. ", f);
    fclose(f);
    return path;
}

typedef struct recorder {
    volatile sig_atomic_t stop;
    long stop_at;
    long kill_at;               /* kill -9 this process once this step is reached */
    long start_step;
    char notices[1024];
} recorder;

static void on_event(void *ctx, const run_event *ev)
{
    recorder *r = ctx;
    if (ev->type == RUN_EVENT_START)
        r->start_step = ev->pt.step;
    if (ev->type == RUN_EVENT_NOTICE)
        strncat(r->notices, ev->message, sizeof r->notices - strlen(r->notices) - 2);
    if (r->stop_at > 0 && ev->pt.step >= r->stop_at)
        r->stop = 1;
    if (r->kill_at > 0 && ev->pt.step >= r->kill_at)
        raise(SIGKILL);
}

static run_result train(const run_config *cfg, const char *dir, const char *data, bool fresh, recorder *rec,
                        const char *fork_from, char *err)
{
    char *metrics = fork_from ? xasprintf("%s", fork_from) : NULL;
    if (metrics)
        strcpy(strstr(metrics, "/checkpoints/"), "/metrics.jsonl");
    runner_opts o = {.out_dir = dir, .data_path = data, .threads = 1, .fresh = fresh, .stop = &rec->stop,
                     .tick_interval_s = rec->kill_at > 0 ? 1e-9 : 0, .on_event = on_event, .ctx = rec,
                     .fork_from = fork_from, .fork_metrics = metrics};
    run_result r = runner_run(cfg, &o, err, 512);
    free(metrics);
    return r;
}

static char *read_text(const char *dir, const char *file)
{
    char *path = xasprintf("%s/%s", dir, file), *buf;
    size_t len;
    ck_assert_int_eq(read_file(path, 1 << 26, &buf, &len), 0);
    free(path);
    return buf;
}

/* The losses of metrics.jsonl, in order (at most max). */
static int losses(const char *dir, double *out, int max)
{
    char *buf = read_text(dir, "metrics.jsonl");
    int n = 0;
    for (const char *p = buf; n < max && (p = strstr(p, "\"loss\":")) != NULL; p += 7)
        out[n++] = strtod(p + 7, NULL);
    free(buf);
    return n;
}

/* Every section of two checkpoints, byte for byte (parameters, m, v, counters but the clock, data). */
static void same_checkpoints(const char *a, const char *b)
{
    char err[512];
    ckpt_file fa, fb;
    char *pa = xasprintf("%s/checkpoint.bin", a), *pb = xasprintf("%s/checkpoint.bin", b);
    ck_assert_int_eq(ckpt_read(pa, 1 << 26, &fa, err, sizeof err), 0);
    ck_assert_int_eq(ckpt_read(pb, 1 << 26, &fb, err, sizeof err), 0);
    static const uint32_t tags[] = {0x50524d53, 0x4f50544d, 0x4f505456, 0x44415441};   /* PRMS OPTM OPTV DATA */
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
        const ckpt_section *sa = ckpt_find(&fa, tags[i]), *sb = ckpt_find(&fb, tags[i]);
        ck_assert_ptr_nonnull(sa);
        ck_assert_ptr_nonnull(sb);
        ck_assert_uint_eq(sa->len, sb->len);
        ck_assert_msg(memcmp(sa->data, sb->data, sa->len) == 0, "section %zu differs", i);
    }
    ck_assert_uint_eq(fa.step, fb.step);
    ckpt_close(&fa);
    ckpt_close(&fb);
    free(pa);
    free(pb);
}

START_TEST(test_gpt_learns_with_muon)
{
    char *dir = tmpdir(), *data = write_corpus(dir), *yaml = gpt_yaml(300, 1), err[512] = "";
    run_config cfg;
    parse_ok(yaml, &cfg);
    recorder rec = {0};
    char *out = xasprintf("%s/run", dir);
    ck_assert_msg(train(&cfg, out, data, true, &rec, NULL, err) == RUN_OK, "%s", err);
    double l[300];
    ck_assert_int_eq(losses(out, l, 300), 300);
    double tail = 0;
    for (int i = 280; i < 300; i++)
        tail += l[i] / 20;
    fprintf(stderr, "muon gpt run: loss at step 1 %.3f, mean of the last 20 %.3f\n", l[0], tail);
    ck_assert(l[0] > 4.5);                  /* ~ln(256) at GPT-2 init */
    ck_assert_msg(l[0] - tail > 2.0, "loss fell only from %g to %g", l[0], tail);
    cfg_free(&cfg);
    tl_rmtree(dir);
    free(out);
    free(yaml);
    free(data);
    free(dir);
}
END_TEST

/* A stop between checkpoints and a kill -9 each resume bit for bit. */
START_TEST(test_resume_is_bit_identical)
{
    char *dir = tmpdir(), *data = write_corpus(dir), *yaml = gpt_yaml(160, 7), err[512] = "";
    char *ref = xasprintf("%s/ref", dir), *run = xasprintf("%s/run", dir);
    run_config cfg;
    parse_ok(yaml, &cfg);
    recorder r0 = {0}, r1 = {.stop_at = 61}, r2 = {0};
    ck_assert_msg(train(&cfg, ref, data, true, &r0, NULL, err) == RUN_OK, "%s", err);
    /* stopped between checkpoints and log points, then resumed from its checkpoint */
    ck_assert_int_eq(train(&cfg, run, data, false, &r1, NULL, err), RUN_STOPPED);
    ck_assert_msg(train(&cfg, run, data, false, &r2, NULL, err) == RUN_OK, "%s", err);
    ck_assert_str_eq(r2.notices, "");
    char *a = tl_dir_metrics(ref), *b = tl_dir_metrics(run);
    ck_assert_str_eq(a, b);
    same_checkpoints(ref, run);
    /* kill -9 at step 130 (a child process): nothing saved since the
     * checkpoint of step 100, from which it resumes */
    char *killed = xasprintf("%s/killed", dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        recorder rk = {.kill_at = 130};
        train(&cfg, killed, data, false, &rk, NULL, err);
        _exit(0);   /* not reached */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    recorder r3 = {0};
    ck_assert_msg(train(&cfg, killed, data, false, &r3, NULL, err) == RUN_OK, "%s", err);
    ck_assert_int_eq(r3.start_step, 100);
    char *c = tl_dir_metrics(killed);
    ck_assert_str_eq(a, c);
    same_checkpoints(ref, killed);
    free(c);
    free(killed);
    free(a);
    free(b);
    cfg_free(&cfg);
    tl_rmtree(dir);
    free(ref);
    free(run);
    free(yaml);
    free(data);
    free(dir);
}
END_TEST

/* A fork of a Muon run with no change trains on bit-identically, one with a
 * new lr takes it; a fork to another optimizer type is refused, both ways. */
START_TEST(test_forks)
{
    char *dir = tmpdir(), *data = write_corpus(dir), *yaml = gpt_yaml(200, 10), err[512] = "";
    char *parent = xasprintf("%s/parent", dir), *same = xasprintf("%s/same", dir),
         *lower = xasprintf("%s/lower", dir);
    run_config pc, sc, lc;
    parse_ok(yaml, &pc);
    recorder rec = {0};
    ck_assert_msg(train(&pc, parent, data, true, &rec, NULL, err) == RUN_OK, "%s", err);
    char *from = xasprintf("%s/checkpoints/step-100.bin", parent);

    diag_list_t errs = DIAG_LIST_INIT;
    char *child;
    cfg_fork_req req = {.at_step = 100};
    ck_assert_int_eq(cfg_fork(yaml, strlen(yaml), "m", &req, NULL, &sc, &child, &errs), 0);
    free(child);
    ck_assert_msg(train(&sc, same, data, false, &rec, from, err) == RUN_OK, "%s", err);
    char *a = tl_dir_metrics(parent), *b = tl_dir_metrics(same);
    ck_assert_str_eq(a, b);
    same_checkpoints(parent, same);

    static const char *const lr_set[] = {"optimizer.lr=0.01", "optimizer.type=muon"};
    req = (cfg_fork_req){.at_step = 100, .sets = lr_set, .n_sets = 2};
    ck_assert_int_eq(cfg_fork(yaml, strlen(yaml), "m", &req, NULL, &lc, &child, &errs), 0);
    ck_assert_double_eq(lc.optim.lr, 0.01);
    free(child);
    ck_assert_msg(train(&lc, lower, data, false, &rec, from, err) == RUN_OK, "%s", err);
    char *c = tl_dir_metrics(lower);
    ck_assert_str_ne(a, c);

    /* to adamw: refused, naming the key and both types */
    static const char *const to_adamw[] = {"optimizer.type=adamw"};
    req = (cfg_fork_req){.at_step = 100, .sets = to_adamw, .n_sets = 1};
    run_config bad;
    ck_assert_int_eq(cfg_fork(yaml, strlen(yaml), "m", &req, NULL, &bad, &child, &errs), -1);
    ck_assert_ptr_null(child);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.items[0].path, "--set optimizer.type");
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "keeps its parent's optimizer"));
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "optimizer.type muon, which adamw cannot continue"));
    diag_free(&errs);
    /* and from adamw to muon */
    const char *adamw_parent = "model: {type: gpt, vocab_size: 256, context: 8, d_model: 8, layers: 1, heads: 1}\n"
                               "schedule: {total_steps: 100}\n";
    static const char *const to_muon[] = {"optimizer.type=muon"};
    req = (cfg_fork_req){.at_step = 50, .sets = to_muon, .n_sets = 1};
    ck_assert_int_eq(cfg_fork(adamw_parent, strlen(adamw_parent), "p", &req, NULL, &bad, &child, &errs), -1);
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "optimizer.type adamw, which muon cannot continue"));
    diag_free(&errs);

    /* and a checkpoint of the same run under adamw is not of the muon run's line */
    run_config ac = pc;
    ac.optim.type = OPT_ADAMW;
    ck_assert_uint_ne(cfg_lineage_hash(&ac), cfg_lineage_hash(&pc));
    free(a);
    free(b);
    free(c);
    free(from);
    cfg_free(&pc);
    cfg_free(&sc);
    cfg_free(&lc);
    tl_rmtree(dir);
    free(parent);
    free(same);
    free(lower);
    free(yaml);
    free(data);
    free(dir);
}
END_TEST

/* ---- the config ------------------------------------------------------------ */

static const char *MUON_BASE = "model: {type: gpt, vocab_size: 256, context: 8, d_model: 8, layers: 1, heads: 1}\n"
                               "schedule: {total_steps: 100}\n";

/* base + "optimizer: {...}" must fail with one error at path containing needle. */
static void bad_optimizer(const char *optimizer, const char *path, const char *needle)
{
    char *yaml = xasprintf("%soptimizer: %s\n", MUON_BASE, optimizer);
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_msg(cfg_parse(yaml, strlen(yaml), NULL, &c, &errs) == -1, "accepted: %s", optimizer);
    bool found = false;
    for (size_t i = 0; i < errs.n; i++)
        found |= !strcmp(errs.items[i].path, path) && strstr(errs.items[i].message, needle) != NULL;
    if (!found)
        diag_print(stderr, optimizer, &errs);
    ck_assert_msg(found, "%s: no '%s' at %s", optimizer, needle, path);
    diag_free(&errs);
    free(yaml);
}

START_TEST(test_config_defaults_and_round_trip)
{
    char *yaml = xasprintf("%soptimizer: {type: muon}\n", MUON_BASE);
    run_config c, back;
    parse_ok(yaml, &c);
    ck_assert_int_eq(c.optim.type, OPT_MUON);
    ck_assert_double_eq(c.optim.lr, 0.02);
    ck_assert_double_eq(c.optim.momentum, 0.95);
    ck_assert(c.optim.nesterov);
    ck_assert_int_eq(c.optim.ns_steps, 5);
    ck_assert_int_eq(c.optim.adjust_lr, MUON_ADJUST_ORIGINAL);
    ck_assert_double_eq(c.optim.weight_decay, 0);
    ck_assert_double_eq(c.optim.adamw.lr, 3e-4);
    ck_assert_double_eq(c.optim.adamw.beta1, 0.9);
    ck_assert_double_eq(c.optim.adamw.beta2, 0.95);
    ck_assert_double_eq(c.optim.adamw.eps, 1e-10);
    ck_assert_double_eq(c.optim.adamw.weight_decay, 0);
    free(yaml);

    yaml = xasprintf("%soptimizer: {type: muon, lr: 0.01, momentum: 0.9, nesterov: false, ns_steps: 3, "
                     "adjust_lr: match_rms_adamw, weight_decay: 0.1, grad_clip: 1.0,\n"
                     "  adamw: {lr: 1.0e-3, betas: [0.8, 0.99], eps: 1.0e-8, weight_decay: 0.01}}\n", MUON_BASE);
    run_config d;
    parse_ok(yaml, &d);
    ck_assert(!d.optim.nesterov && d.optim.ns_steps == 3 && d.optim.adjust_lr == MUON_ADJUST_MATCH_RMS_ADAMW);
    ck_assert(d.optim.adamw.beta1 == 0.8 && d.optim.adamw.beta2 == 0.99 && d.optim.adamw.weight_decay == 0.01);
    ck_assert_uint_ne(cfg_hash(&c), cfg_hash(&d));
    /* the JSON form parses back to the same config */
    cJSON *j = cfg_to_json(&d);
    char *text = cJSON_PrintUnformatted(j);
    ck_assert_ptr_nonnull(strstr(text, "\"adjust_lr\":\"match_rms_adamw\""));
    parse_ok(text, &back);
    ck_assert_uint_eq(cfg_hash(&back), cfg_hash(&d));
    /* every Muon key is in the hash */
    run_config e = d;
    e.optim.adamw.eps = 1e-9;
    ck_assert_uint_ne(cfg_hash(&e), cfg_hash(&d));
    e = d;
    e.optim.ns_steps = 4;
    ck_assert_uint_ne(cfg_hash(&e), cfg_hash(&d));
    cJSON_Delete(j);
    free(text);
    free(yaml);
    cfg_free(&c);
    cfg_free(&d);
    cfg_free(&back);
}
END_TEST

START_TEST(test_config_errors)
{
    bad_optimizer("{type: muon, ns_steps: 0}", "optimizer.ns_steps", "1..100");
    bad_optimizer("{type: muon, ns_steps: 2.5}", "optimizer.ns_steps", "integer");
    bad_optimizer("{type: muon, momentum: 1}", "optimizer.momentum", "must be");
    bad_optimizer("{type: muon, momentum: -0.1}", "optimizer.momentum", "must be");
    bad_optimizer("{type: muon, lr: 0}", "optimizer.lr", "must be");
    bad_optimizer("{type: muon, weight_decay: -1}", "optimizer.weight_decay", "must be");
    bad_optimizer("{type: muon, nesterov: maybe}", "optimizer.nesterov", "");
    bad_optimizer("{type: muon, adjust_lr: moonshot}", "optimizer.adjust_lr", "original");
    bad_optimizer("{type: muon, betas: [0.9, 0.95]}", "optimizer.betas", "only used by optimizer types adamw, adam and schedule_free_adamw");
    bad_optimizer("{type: muon, eps: 1.0e-8}", "optimizer.eps", "only used by");
    bad_optimizer("{type: adamw, ns_steps: 5}", "optimizer.ns_steps", "only used by optimizer type muon");
    bad_optimizer("{type: adamw, adamw: {lr: 1.0e-3}}", "optimizer.adamw", "only used by optimizer type muon");
    bad_optimizer("{type: muon, adamw: 3}", "optimizer.adamw", "mapping");
    bad_optimizer("{type: muon, adamw: {lr: -1}}", "optimizer.adamw.lr", "must be");
    bad_optimizer("{type: muon, adamw: {betas: [0.9, 1.0]}}", "optimizer.adamw.betas[1]", "must be");
    bad_optimizer("{type: muon, adamw: {betas: [0.9]}}", "optimizer.adamw.betas", "");
    bad_optimizer("{type: muon, adamw: {eps: 0}}", "optimizer.adamw.eps", "must be");
    bad_optimizer("{type: muon, adamw: {weight_decay: -0.5}}", "optimizer.adamw.weight_decay", "must be");
    bad_optimizer("{type: muon, adamw: {momentum: 0.9}}", "optimizer.adamw.momentum", "unknown");
    bad_optimizer("{type: muonn}", "optimizer.type", "muon");

    /* a model without hidden matrices */
    const char *lin = "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
                      "optimizer: {type: muon}\nschedule: {total_steps: 10}\n";
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(lin, strlen(lin), NULL, &c, &errs), -1);
    ck_assert_str_eq(errs.items[0].path, "optimizer.type");
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "Keller Jordan"));
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "has none"));
    diag_free(&errs);
    const char *deep = "model: {type: mlp, input_dim: 4, hidden: [8, 8], output_dim: 2}\n"
                       "optimizer: {type: muon}\nschedule: {total_steps: 10}\n";
    parse_ok(deep, &c);
    cfg_free(&c);
}
END_TEST

static Suite *muon_suite(void)
{
    Suite *s = suite_create("optim_muon");
    TCase *tc = tcase_create("torch");
    tcase_add_test(tc, test_cases_present);
    tcase_add_loop_test(tc, test_case_matches_torch, 0, n_cases);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("properties");
    tcase_add_test(tp, test_gpt_layout);
    tcase_add_test(tp, test_mlp_layout);
    tcase_add_test(tp, test_plan_refuses_gaps);
    tcase_add_test(tp, test_aux_tensors_get_adamw);
    tcase_add_test(tp, test_update_is_near_orthogonal);
    suite_add_tcase(s, tp);

    TCase *tcfg = tcase_create("config");
    tcase_add_test(tcfg, test_config_defaults_and_round_trip);
    tcase_add_test(tcfg, test_config_errors);
    suite_add_tcase(s, tcfg);

    /* Training runs of a GPT take minutes under Valgrind (make valgrind, ~50x
     * slower); make test and make check (ASan) run them. */
    if (tl_under_valgrind()) {
        printf("SKIPPED: 3 checks: the training runs, under Valgrind (make test and make check run them)\n");
    } else {
        TCase *tr = tcase_create("runner");
        tcase_set_timeout(tr, 600);
        tcase_add_test(tr, test_gpt_learns_with_muon);
        tcase_add_test(tr, test_resume_is_bit_identical);
        tcase_add_test(tr, test_forks);
        suite_add_tcase(s, tr);
    }
    return s;
}

int main(void)
{
    find_cases();
    int failed = tl_run_suite(muon_suite());
    fflush(stdout);
    report();
    for (int i = 0; i < n_cases; i++)
        free(case_names[i]);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

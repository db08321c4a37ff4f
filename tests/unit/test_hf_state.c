/*
 * hf_state: trainer_state.json streamed from metrics.jsonl is byte for byte
 * the document the former cJSON tree gave (kept here as the reference), on
 * generated histories with evals, torn and foreign lines and odd numbers;
 * and writing it for a long history takes constant memory.  With the cache
 * of log_history beside metrics.jsonl: the same bytes when lines were
 * appended since it was made, and whenever it is stale (metrics.jsonl
 * rewritten in place, replaced, cut back; the cache torn or damaged) —
 * and a valid cache is used, not the history parsed again.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/config.h"
#include "traind/hf_state.h"
#include "traind/json.h"
#include "traind/rng.h"
#include "traind/util.h"
#include "tl.h"

/* ---- the reference: trainer_state.json as one cJSON tree, as it was --- */

static bool ref_num(const cJSON *o, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

static char *ref_trainer_state(const char *out_dir, const run_config *cfg)
{
    char *mpath = xasprintf("%s/metrics.jsonl", out_dir);
    FILE *f = fopen(mpath, "re");
    free(mpath);
    ck_assert_ptr_nonnull(f);
    cJSON *root = cJSON_CreateObject(), *hist = cJSON_CreateArray();
    double best = NAN, last_step = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *p = cJSON_Parse(line);
        double step, v;
        if (!p || !ref_num(p, "step", &step)) {
            cJSON_Delete(p);
            continue;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNullToObject(e, "epoch");
        if (ref_num(p, "grad_norm", &v))
            cJSON_AddNumberToObject(e, "grad_norm", v);
        if (ref_num(p, "lr", &v))
            cJSON_AddNumberToObject(e, "learning_rate", v);
        if (ref_num(p, "loss_avg", &v) || ref_num(p, "loss", &v))
            cJSON_AddNumberToObject(e, "loss", v);
        cJSON_AddNumberToObject(e, "step", step);
        cJSON_AddItemToArray(hist, e);
        if (ref_num(p, "eval_loss", &v)) {
            cJSON *ev = cJSON_CreateObject();
            cJSON_AddNullToObject(ev, "epoch");
            cJSON_AddNumberToObject(ev, "eval_loss", v);
            cJSON_AddNumberToObject(ev, "step", step);
            cJSON_AddItemToArray(hist, ev);
            if (isnan(best) || v < best)
                best = v;
        }
        last_step = step;
        cJSON_Delete(p);
    }
    free(line);
    fclose(f);
    if (isnan(best))
        cJSON_AddNullToObject(root, "best_metric");
    else
        cJSON_AddNumberToObject(root, "best_metric", best);
    cJSON_AddNullToObject(root, "best_model_checkpoint");
    cJSON_AddNullToObject(root, "epoch");
    cJSON_AddNumberToObject(root, "eval_steps", (double)cfg->train.eval_every);
    cJSON_AddNumberToObject(root, "global_step", last_step);
    cJSON_AddFalseToObject(root, "is_hyper_param_search");
    cJSON_AddTrueToObject(root, "is_local_process_zero");
    cJSON_AddTrueToObject(root, "is_world_process_zero");
    cJSON_AddItemToObject(root, "log_history", hist);
    cJSON_AddNumberToObject(root, "logging_steps", (double)cfg->train.log_every);
    cJSON_AddNumberToObject(root, "max_steps", (double)cfg->sched.total_steps);
    cJSON_AddNumberToObject(root, "num_input_tokens_seen", 0);
    cJSON_AddNumberToObject(root, "num_train_epochs", 0);
    cJSON_AddNumberToObject(root, "save_steps", (double)cfg->train.checkpoint_every);
    cJSON_AddNumberToObject(root, "total_flos", 0);
    cJSON_AddNumberToObject(root, "train_batch_size", cfg->data.batch_size);
    cJSON_AddNullToObject(root, "trial_name");
    cJSON_AddNullToObject(root, "trial_params");
    char *text = json_print_exact(root);
    cJSON_Delete(root);
    return text;
}

/* ---- helpers ----------------------------------------------------------- */

static const char *CFG =
    "name: hf\nseed: 3\n"
    "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 16, eval_fraction: 0.1}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 10, total_steps: 5000}\n"
    "train: {log_every: 7, checkpoint_every: 250, eval_every: 70}\n";

static void parse(run_config *cfg)
{
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = cfg_parse(CFG, strlen(CFG), NULL, cfg, &errs);
    if (rc != 0)
        diag_print(stderr, "test", &errs);
    ck_assert_int_eq(rc, 0);
    diag_free(&errs);
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/traind-hf-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

/* A double of any magnitude and precision, as the runner prints them. */
static double any_double(rng_t *r)
{
    double u = rng_uniform(r);
    switch (rng_below(r, 6)) {
    case 0: return u;
    case 1: return u * 1e-9;
    case 2: return (double)(float)(u * 10);
    case 3: return floor(u * 1000);          /* a whole number: printed as one */
    case 4: return u * 1e17;                 /* past the integer fast path */
    default: return -u * 3e-300;
    }
}

/* n points as the runner writes them, with eval_loss every eval_every-th,
 * and the odd lines a history may hold: torn, foreign, not JSON, a loss
 * without loss_avg, a step that is not an integer, a number out of range. */
static void write_lines(const char *dir, const char *mode, uint64_t seed, long from, long n, int eval_every,
                        bool odd)
{
    char *path = xasprintf("%s/metrics.jsonl", dir);
    FILE *f = fopen(path, mode);
    ck_assert_ptr_nonnull(f);
    rng_t r;
    rng_seed(&r, seed, 0);
    for (long s = from; s <= n; s++) {
        fprintf(f, "{\"step\":%ld,\"lr\":%.17g,\"loss\":%.9g,\"loss_avg\":%.17g,\"grad_norm\":%.17g,\"time\":%.6f",
                s, any_double(&r), (double)(float)any_double(&r), any_double(&r), any_double(&r), s * 0.001);
        if (eval_every > 0 && s % eval_every == 0)
            fprintf(f, ",\"eval_loss\":%.9g", (double)(float)(2.0 - (double)s / (double)n + rng_uniform(&r)));
        fprintf(f, "}\n");
        if (odd && s % 97 == 0) {
            static const char *const lines[] = {
                "{\"step\":12,\"lr\":0.5,\"lo",                       /* torn */
                "{\"foreign\":true}",                                 /* no step */
                "not json at all",
                "",
                "{\"step\":13,\"loss\":1.25}",                        /* loss, no loss_avg, no lr */
                "{\"step\":13.5,\"lr\":1e400,\"loss_avg\":-1e400}",   /* infinities print as null */
                "{\"step\":\"14\",\"lr\":1}",                         /* a step that is no number */
                "{\"step\":1e300,\"eval_loss\":-0.0}",
                "[1,2,3]",
            };
            fprintf(f, "%s\n", lines[(s / 97) % (sizeof lines / sizeof *lines)]);
        }
    }
    fclose(f);
    free(path);
}

static void write_history(const char *dir, long n, int eval_every, bool odd)
{
    write_lines(dir, "we", 7, 1, n, eval_every, odd);
}

static char *read_state(const char *dir)
{
    char *path = xasprintf("%s/trainer_state.json", dir), *text;
    size_t len;
    ck_assert_int_eq(read_file(path, (size_t)1 << 32, &text, &len), 0);
    free(path);
    return text;
}

/* trainer_state.json written for dir now is the reference's. */
static void check_dir(const char *dir, const run_config *cfg, const char *what)
{
    char err[256];
    ck_assert_msg(hf_write_trainer_state(dir, cfg, err, sizeof err) == 0, "%s: %s", what, err);
    char *want = ref_trainer_state(dir, cfg), *got = read_state(dir);
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    ck_assert_msg(want[i] == got[i], "%s: differ at byte %zu: want ...%.60s, got ...%.60s", what, i,
                  want + (i > 20 ? i - 20 : 0), got + (i > 20 ? i - 20 : 0));
    free(want);
    free(got);
}

static void check_same(long n, int eval_every, bool odd)
{
    run_config cfg;
    parse(&cfg);
    char *dir = tmpdir();
    write_history(dir, n, eval_every, odd);
    char what[64];
    snprintf(what, sizeof what, "%ld points", n);
    check_dir(dir, &cfg, what);
    check_dir(dir, &cfg, "again, from the cache");
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}

/* ---- checks ------------------------------------------------------------ */

START_TEST(empty_history_same_as_tree)
{
    check_same(0, 0, false);
}
END_TEST

START_TEST(history_same_as_tree)
{
    check_same(1, 0, false);
    check_same(1, 1, false);
    check_same(3000, 70, false);
}
END_TEST

START_TEST(odd_lines_same_as_tree)
{
    check_same(5000, 13, true);
}
END_TEST

/* Lines in the runner's exact shape whose numbers take every path of the
 * fast one (texts re-laid-out, rounded to 15 or 16 digits, kept at 17;
 * whole numbers past 1e15, -0, huge and tiny, non-finite as %.17g prints
 * them), next to torn and foreign lines. */
START_TEST(fast_path_numbers_same_as_tree)
{
    run_config cfg;
    parse(&cfg);
    char *dir = tmpdir(), err[256];
    char *path = xasprintf("%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "we");
    ck_assert_ptr_nonnull(f);
    static const double fixed[] = {0.0, -0.0, 1e15, 1e15 - 1, 1e16, 7.711821418249008e16, 0.1, 1e-5, 1e-4,
                                   123456789.0, 1234567890.0, 1.5e300, -2.5e-300, 4.9e-324, 1.7976931348623157e308,
                                   INFINITY, -INFINITY, NAN, 0.30000000000000004, 9.9999999999999995e-05};
    rng_t r;
    rng_seed(&r, 11, 0);
    for (long s = 1; s <= 40000; s++) {
        double v[4];
        for (int k = 0; k < 4; k++) {
            uint64_t bits = rng_u64(&r);
            double d;
            memcpy(&d, &bits, sizeof d);
            v[k] = s % 3 == 0 ? fixed[rng_below(&r, sizeof fixed / sizeof *fixed)] : s % 3 == 1 ? d : any_double(&r);
        }
        fprintf(f, "{\"step\":%ld,\"lr\":%.17g,\"loss\":%.9g,\"loss_avg\":%.17g,\"grad_norm\":%.17g,\"time\":%.6f", s,
                v[0], v[1], v[2], v[3], s * 0.001);
        if (s % 5 == 0)
            fprintf(f, ",\"eval_loss\":%.9g", v[(s / 5) % 4]);
        fprintf(f, "}\n");
        if (s % 101 == 0)
            fprintf(f, "{\"step\":%ld,\"lr\":0.5,\"lo\n{\"step\":%ld,\"lr\":01,\"loss\":1,\"loss_avg\":1,"
                       "\"grad_norm\":1,\"time\":1}\n",
                    s, s);
    }
    fclose(f);
    free(path);
    ck_assert_msg(hf_write_trainer_state(dir, &cfg, err, sizeof err) == 0, "%s", err);
    char *want = ref_trainer_state(dir, &cfg), *got = read_state(dir);
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    ck_assert_msg(want[i] == got[i], "differ at byte %zu: want ...%.60s, got ...%.60s", i,
                  want + (i > 20 ? i - 20 : 0), got + (i > 20 ? i - 20 : 0));
    free(want);
    free(got);
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

/* ---- the cache --------------------------------------------------------- */

static char *file_in(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static off_t size_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

static void append_text(const char *dir, const char *text)
{
    char *path = file_in(dir, "metrics.jsonl");
    FILE *f = fopen(path, "ae");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    free(path);
}

/* metrics.jsonl rewritten in place (the same inode), in its first `size`
 * bytes each digit of a step and an eval_loss turned to the next (never to
 * 0): other lines, the same length, numbers as the runner prints them (the
 * fast path takes a 17-digit text for %.17g's, which an arbitrary edit of
 * one is not). */
static void rewrite_in_place(const char *dir, off_t size)
{
    char *path = file_in(dir, "metrics.jsonl"), *text;
    size_t len;
    ck_assert_int_eq(read_file(path, (size_t)1 << 30, &text, &len), 0);
    for (size_t i = 0; i < len && (off_t)i < size; i++) {
        size_t k = 0;
        if (strncmp(text + i, "\"step\":", 7) == 0)
            k = 7;
        else if (strncmp(text + i, "\"eval_loss\":", 12) == 0)
            k = 12;
        for (i += k; k && i < len && (off_t)i < size && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.'); i++)
            if (text[i] != '.')
                text[i] = text[i] == '9' ? '1' : (char)(text[i] + 1);
    }
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    free(text);
    free(path);
}

/* A cache made from the first lines, then lines appended (some with
 * evals, some odd), a last line without its newline, then its newline and
 * more: the reference's bytes at each stop, and the cache kept up to date
 * by hf_cache_update between them. */
START_TEST(cache_appended_lines_same_as_tree)
{
    run_config cfg;
    parse(&cfg);
    char *dir = tmpdir();
    write_lines(dir, "we", 7, 1, 3000, 70, true);
    check_dir(dir, &cfg, "3000 points");
    write_lines(dir, "ae", 8, 3001, 3500, 13, true);
    check_dir(dir, &cfg, "500 more");
    write_lines(dir, "ae", 9, 3501, 3700, 7, false);
    ck_assert_int_eq(hf_cache_update(dir), 0);
    write_lines(dir, "ae", 10, 3701, 3800, 7, true);
    ck_assert_int_eq(hf_cache_update(dir), 0);
    check_dir(dir, &cfg, "after updates");
    /* a whole point, but its newline not written yet: in the document,
     * not in the cache */
    append_text(dir, "{\"step\":3801,\"lr\":0.5,\"loss\":1,\"loss_avg\":0.25,\"grad_norm\":2,\"time\":1,"
                     "\"eval_loss\":0.0001}");
    check_dir(dir, &cfg, "a last line without its newline");
    ck_assert_int_eq(hf_cache_update(dir), 0);
    check_dir(dir, &cfg, "that line again");
    append_text(dir, "\n{\"step\":3802,\"lr\":0.5,\"lo");
    check_dir(dir, &cfg, "the newline, and a torn line");
    append_text(dir, "\n");
    write_lines(dir, "ae", 11, 3803, 4000, 5, true);
    check_dir(dir, &cfg, "and more");
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

/* A valid cache is what the document is made of: a byte changed in its
 * log_history shows in the next document (no line was parsed again),
 * until metrics.jsonl no longer matches it. */
START_TEST(cache_is_used)
{
    run_config cfg;
    parse(&cfg);
    char *dir = tmpdir(), err[256];
    write_history(dir, 2000, 70, false);
    check_dir(dir, &cfg, "2000 points");
    char *cpath = file_in(dir, HF_CACHE_NAME);
    off_t csize = size_of(cpath);
    ck_assert_int_gt(csize, 2000 * 60);
    /* "epoch":null -> "epoch":nul_ in the middle of log_history */
    int fd = open(cpath, O_RDWR | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    char buf[4096];
    off_t at = csize / 2;
    ck_assert_int_eq(pread(fd, buf, sizeof buf, at), (ssize_t)sizeof buf);
    char *p = memmem(buf, sizeof buf, "null", 4);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pwrite(fd, "_", 1, at + (p - buf) + 3), 1);
    close(fd);
    ck_assert_int_eq(hf_write_trainer_state(dir, &cfg, err, sizeof err), 0);
    char *got = read_state(dir);
    ck_assert_ptr_nonnull(strstr(got, "\"epoch\":nul_"));
    free(got);
    /* other lines of the same length in place: rebuilt */
    char *mpath = file_in(dir, "metrics.jsonl");
    rewrite_in_place(dir, size_of(mpath));
    free(mpath);
    check_dir(dir, &cfg, "rewritten in place");
    got = read_state(dir);
    ck_assert_ptr_null(strstr(got, "nul_"));
    free(got);
    free(cpath);
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

/* Each way a cache goes stale gives the reference's bytes. */
START_TEST(stale_cache_same_as_tree)
{
    run_config cfg;
    parse(&cfg);
    char *dir = tmpdir(), *mpath = file_in(dir, "metrics.jsonl"), *cpath = file_in(dir, HF_CACHE_NAME);

    /* metrics.jsonl truncated and rewritten, other lines: the same size, a bigger one */
    write_history(dir, 3000, 70, true);
    check_dir(dir, &cfg, "3000 points");
    rewrite_in_place(dir, size_of(mpath));
    check_dir(dir, &cfg, "rewritten in place, the same size");
    write_history(dir, 3000, 70, true);
    check_dir(dir, &cfg, "back");
    write_lines(dir, "we", 12, 1, 3300, 70, true);
    check_dir(dir, &cfg, "rewritten in place, bigger");
    /* the same lines up to the cache's end and its last line changed */
    write_history(dir, 3000, 70, false);
    check_dir(dir, &cfg, "3000 plain");
    rewrite_in_place(dir, 20);   /* the first line's step only */
    check_dir(dir, &cfg, "its first line changed");
    write_history(dir, 3000, 70, false);
    check_dir(dir, &cfg, "3000 plain again");
    {
        char *text;
        size_t len;
        ck_assert_int_eq(read_file(mpath, (size_t)1 << 30, &text, &len), 0);
        ck_assert(len > 10 && text[len - 1] == '\n' && text[len - 3] >= '0' && text[len - 3] <= '8');
        text[len - 3]++;                  /* the last line's time */
        FILE *f = fopen(mpath, "r+e");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fwrite(text, 1, len, f), len);
        fclose(f);
        free(text);
    }
    check_dir(dir, &cfg, "its last line changed");

    /* another inode: the same text replaced by rename, then other text */
    write_history(dir, 3000, 70, false);
    check_dir(dir, &cfg, "3000 plain once more");
    {
        char *text, *tmp = file_in(dir, "m.tmp");
        size_t len;
        ck_assert_int_eq(read_file(mpath, (size_t)1 << 30, &text, &len), 0);
        ck_assert_int_eq(write_file_atomic(tmp, text, len, 0644), 0);
        ck_assert_int_eq(rename(tmp, mpath), 0);
        check_dir(dir, &cfg, "replaced, the same text");
        /* the same size, first and last lines; a step in the middle other */
        char *mid = strstr(text + len / 2, "\"step\":");
        ck_assert_ptr_nonnull(mid);
        mid[7] = mid[7] == '9' ? '1' : (char)(mid[7] + 1);
        ck_assert_int_eq(write_file_atomic(tmp, text, len, 0644), 0);
        ck_assert_int_eq(rename(tmp, mpath), 0);
        check_dir(dir, &cfg, "replaced, a line in the middle other");
        write_lines(dir, "ae", 13, 3001, 3100, 7, true);
        ck_assert_int_eq(write_file_atomic(tmp, text, len, 0644), 0);
        ck_assert_int_eq(rename(tmp, mpath), 0);
        check_dir(dir, &cfg, "replaced by a shorter file");
        free(text);
        free(tmp);
    }

    /* covering past metrics.jsonl's end: cut back a few lines, then fewer
     * lines than it covered appended */
    write_history(dir, 3000, 70, true);
    check_dir(dir, &cfg, "3000 odd");
    off_t full = size_of(mpath);
    ck_assert_int_eq(truncate(mpath, full - 500), 0);
    check_dir(dir, &cfg, "cut back");
    write_history(dir, 3000, 70, true);
    check_dir(dir, &cfg, "whole");
    ck_assert_int_eq(truncate(mpath, full - 1000), 0);
    write_lines(dir, "ae", 14, 2990, 2995, 7, false);
    ck_assert_int_lt(size_of(mpath), full);
    check_dir(dir, &cfg, "cut back, then other lines");

    /* the cache torn or damaged: its head cut short, its log_history cut
     * short, a byte of the head flipped, emptied, not a regular file */
    write_history(dir, 3000, 70, true);
    check_dir(dir, &cfg, "3000 odd again");
    ck_assert_int_eq(truncate(cpath, 100), 0);
    check_dir(dir, &cfg, "the cache's head torn");
    ck_assert_int_eq(truncate(cpath, size_of(cpath) - 10), 0);
    check_dir(dir, &cfg, "the cache's log_history torn");
    for (off_t at = 0; at < 80; at += 7) {
        int fd = open(cpath, O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        unsigned char c;
        ck_assert_int_eq(pread(fd, &c, 1, at), 1);
        c ^= 0x40;
        ck_assert_int_eq(pwrite(fd, &c, 1, at), 1);
        close(fd);
        check_dir(dir, &cfg, "a byte of the cache's head flipped");
    }
    ck_assert_int_eq(truncate(cpath, 0), 0);
    check_dir(dir, &cfg, "the cache empty");
    unlink(cpath);
    ck_assert_int_eq(mkdir(cpath, 0755), 0);
    check_dir(dir, &cfg, "the cache a directory");
    rmdir(cpath);
    ck_assert_int_eq(symlink(mpath, cpath), 0);
    check_dir(dir, &cfg, "the cache a symlink");
    char *mtext;
    size_t mlen;
    ck_assert_int_eq(read_file(mpath, (size_t)1 << 30, &mtext, &mlen), 0);   /* never written through */
    free(mtext);
    unlink(cpath);
    check_dir(dir, &cfg, "no cache");

    /* hf_cache_cut keeps a cache within the bytes kept, removes one past them */
    write_history(dir, 3000, 70, false);
    check_dir(dir, &cfg, "3000 plain, cut");
    full = size_of(mpath);
    ck_assert_int_eq(hf_cache_cut(dir, (uint64_t)full), 0);
    ck_assert_int_eq(access(cpath, F_OK), 0);
    ck_assert_int_eq(hf_cache_cut(dir, (uint64_t)full - 1), 0);
    ck_assert_int_ne(access(cpath, F_OK), 0);
    check_dir(dir, &cfg, "after the cut");
    ck_assert_int_eq(hf_cache_remove(dir), 0);
    ck_assert_int_ne(access(cpath, F_OK), 0);
    ck_assert_int_eq(hf_cache_remove(dir), 0);

    free(mpath);
    free(cpath);
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

/* A kill -9 at any point of a cache update, played as every length the
 * cache file may be left at (appended bytes past the committed end, a
 * head zeroed before a rebuild): the reference's bytes each time. */
START_TEST(cache_killed_mid_update_same_as_tree)
{
    run_config cfg;
    parse(&cfg);
    char *dir = tmpdir(), *cpath = file_in(dir, HF_CACHE_NAME);
    write_lines(dir, "we", 7, 1, 400, 13, true);
    check_dir(dir, &cfg, "400 points");
    off_t committed = size_of(cpath);
    char *old;
    size_t old_len;
    ck_assert_int_eq(read_file(cpath, (size_t)1 << 30, &old, &old_len), 0);
    write_lines(dir, "ae", 8, 401, 600, 13, true);
    ck_assert_int_eq(hf_cache_update(dir), 0);
    char *full;
    size_t full_len;
    ck_assert_int_eq(read_file(cpath, (size_t)1 << 30, &full, &full_len), 0);
    ck_assert_int_gt((long)full_len, (long)committed);
    /* the old head with any part of the new bytes after it */
    for (size_t cut = (size_t)committed; cut <= full_len; cut += 997) {
        char *mix = xmalloc(cut);
        memcpy(mix, old, (size_t)committed);
        memcpy(mix + committed, full + committed, cut - (size_t)committed);
        ck_assert_int_eq(write_file_atomic(cpath, mix, cut, 0644), 0);
        free(mix);
        check_dir(dir, &cfg, "old head, new bytes after");
    }
    /* a rebuild's zeroed head, with the old bytes or part of them */
    memset(full, 0, 256);
    ck_assert_int_eq(write_file_atomic(cpath, full, full_len / 2, 0644), 0);
    check_dir(dir, &cfg, "a zeroed head");
    free(old);
    free(full);
    free(cpath);
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

/* The peak RSS of a child that writes trainer_state.json for an n-point
 * history, in KiB (getrusage of the child, wait4). */
static long child_peak_kib(const char *dir, const run_config *cfg)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char err[256];
        _exit(hf_write_trainer_state(dir, cfg, err, sizeof err) == 0 ? 0 : 1);
    }
    int st;
    struct rusage ru;
    ck_assert_int_eq(wait4(pid, &st, 0, &ru), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return ru.ru_maxrss;
}

/* Constant memory: the child's peak for 400,000 points stays within a few
 * MiB of its peak for 1,000 (the tree took about 850 bytes a point: 330 MB
 * here). */
START_TEST(long_history_constant_memory)
{
    run_config cfg;
    parse(&cfg);
    char *small = tmpdir(), *big = tmpdir();
    write_history(small, 1000, 70, false);
    long n = tl_under_valgrind() ? 20000 : 400000;
    write_history(big, n, 70, false);
    long k_small = child_peak_kib(small, &cfg);
    double t0 = now_monotonic();
    long k_big = child_peak_kib(big, &cfg);
    double dt = now_monotonic() - t0;
    fprintf(stderr, "trainer_state.json: %ld points: peak RSS %ld KiB in %.2f s; 1000 points: %ld KiB\n", n, k_big,
            dt, k_small);
    ck_assert_msg(k_big < k_small + 8 * 1024, "peak RSS %ld KiB for %ld points, %ld KiB for 1000", k_big, n,
                  k_small);
    tl_rmtree(small);
    tl_rmtree(big);
    free(small);
    free(big);
    cfg_free(&cfg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hf_state");
    TCase *tc = tcase_create("hf_state");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, empty_history_same_as_tree);
    tcase_add_test(tc, history_same_as_tree);
    tcase_add_test(tc, odd_lines_same_as_tree);
    tcase_add_test(tc, fast_path_numbers_same_as_tree);
    tcase_add_test(tc, cache_appended_lines_same_as_tree);
    tcase_add_test(tc, cache_is_used);
    tcase_add_test(tc, stale_cache_same_as_tree);
    tcase_add_test(tc, cache_killed_mid_update_same_as_tree);
    tcase_add_test(tc, long_history_constant_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tl_run_suite(suite()) ? 1 : 0;
}

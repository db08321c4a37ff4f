/*
 * trainctl as a user runs it: exit codes of trainctl(1) EXIT STATUS, validate's report,
 * schedule --json, run's files, SIGINT → checkpoint, exit 130, resume;
 * lr-find's JSON, plot and usage, and that it writes nothing.
 */
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/util.h"
#include "tl.h"

static char *g_dir;

static void write_text(const char *path, const char *text)
{
    ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0644), 0);
}

/* Runs trainctl with args (NULL-terminated); stdout+stderr into *out. */
static int run_cli(char **out, const char *arg0, ...)
{
    const char *argv[32];
    int n = 0;
    char *exe = xstrdup(tl_trainctl_path());
    argv[n++] = exe;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && n < 30; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char *log = xasprintf("%s/out.txt", g_dir);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        (void)f;
        dup2(STDOUT_FILENO, STDERR_FILENO);
        setenv("TRAIND_URL", "http://127.0.0.1:1", 1);   /* no daemon there */
        execv(exe, (char **)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    size_t len;
    if (out)
        ck_assert_int_eq(read_file(log, 1 << 24, out, &len), 0);
    free(log);
    free(exe);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *GOOD =
    "model: {type: linear, input_dim: 3, output_dim: 2}\n"
    "data: {batch_size: 4}\n"
    "optimizer: {type: adamw, lr: 1.0e-2}\n"
    "schedule: {type: linear, warmup_steps: 3, total_steps: 10}\n"
    "train: {log_every: 2}\n";

static void setup(void) { g_dir = tl_tmpdir("traind-cli"); }
static void teardown(void)
{
    char *cmd = xasprintf("rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_dir);
    free(cmd);
    free(g_dir);
}

START_TEST(exit_codes)
{
    char *out;
    ck_assert_int_eq(run_cli(&out, "--help", NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: trainctl"));
    free(out);
    ck_assert_int_eq(run_cli(&out, "--version", NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "trainctl "));
    free(out);
    ck_assert_int_eq(run_cli(NULL, NULL), 2);
    ck_assert_int_eq(run_cli(NULL, "frobnicate", NULL), 2);
    ck_assert_int_eq(run_cli(NULL, "run", NULL), 2);
    ck_assert_int_eq(run_cli(NULL, "run", "x.yaml", "--threads", "zero", NULL), 2);
    ck_assert_int_eq(run_cli(NULL, "status", NULL), 3);            /* nobody at 127.0.0.1:1 */
    ck_assert_int_eq(run_cli(NULL, "watch", "some-job", NULL), 3);
}
END_TEST

START_TEST(validate_reports_every_error)
{
    char *good = xasprintf("%s/good.yaml", g_dir), *bad = xasprintf("%s/bad.yaml", g_dir), *out;
    write_text(good, GOOD);
    write_text(bad, "model: {type: linear, input_dim: 3, output_dim: 2}\n"
                    "schedule:\n"
                    "  total_steps: 10\n"
                    "  warmup_steps: -5\n"
                    "  warmup_stpes: 3\n");
    ck_assert_int_eq(run_cli(&out, "validate", good, NULL), 0);
    free(out);
    ck_assert_int_eq(run_cli(&out, "validate", good, bad, NULL), 1);
    ck_assert_msg(strstr(out, "bad.yaml:4:") && strstr(out, "schedule.warmup_steps"), "%s", out);
    ck_assert_msg(strstr(out, "bad.yaml:5:") && strstr(out, "warmup_steps'?"), "%s", out);
    free(out);
    free(good);
    free(bad);
}
END_TEST

/* With --daemon-config: that daemon's max_model_memory and data_dirs. */
START_TEST(validate_against_a_daemon_config)
{
    char *big = xasprintf("%s/big.yaml", g_dir), *csv = xasprintf("%s/csv.yaml", g_dir);
    char *dcfg = xasprintf("%s/traind.yaml", g_dir), *data = xasprintf("%s/data", g_dir), *out;
    ck_assert_int_eq(mkdir_p(data, 0755), 0);
    char *t = xasprintf("%s/t.csv", data);
    write_text(t, "x,y\n1,2\n");
    write_text(big, "model: {type: mlp, input_dim: 512, hidden: [512], output_dim: 512}\n"
                    "schedule: {total_steps: 10}\n");
    write_text(csv, "model: {type: linear, input_dim: 1, output_dim: 1}\n"
                    "data: {kind: csv, path: t.csv}\n"
                    "schedule: {total_steps: 10}\n");
    char *d = xasprintf("max_model_memory: 1M\nspool: %s/spool\ndata_dirs: [%s]\n", g_dir, data);
    write_text(dcfg, d);
    /* built-in limits, data.path next to the config: big fits, t.csv is not there */
    ck_assert_int_eq(run_cli(&out, "validate", big, NULL), 0);
    free(out);
    ck_assert_int_eq(run_cli(&out, "validate", csv, NULL), 1);
    ck_assert_msg(strstr(out, "csv.yaml:2:") && strstr(out, "data.path"), "%s", out);
    free(out);
    /* the daemon's: big is over its 1 MiB, t.csv is found in its data_dirs */
    ck_assert_int_eq(run_cli(&out, "validate", "--daemon-config", dcfg, big, csv, NULL), 1);
    ck_assert_msg(strstr(out, "big.yaml:1:") && strstr(out, "more than the 1.0 MiB allowed"), "%s", out);
    ck_assert_msg(strstr(out, "csv.yaml: ok (csv,"), "%s", out);
    free(out);
    ck_assert_int_eq(run_cli(&out, "validate", csv, "--daemon-config", dcfg, NULL), 0);
    free(out);
    /* a daemon config that does not load is an error of its own */
    write_text(dcfg, "max_model_memory: 8X\n");
    ck_assert_int_eq(run_cli(&out, "validate", "--daemon-config", dcfg, csv, NULL), 1);
    ck_assert_msg(strstr(out, "traind.yaml:1:") && strstr(out, "max_model_memory"), "%s", out);
    free(out);
    ck_assert_int_eq(run_cli(NULL, "validate", csv, "--daemon-config", NULL), 2);
    free(d);
    free(t);
    free(data);
    free(dcfg);
    free(csv);
    free(big);
}
END_TEST

/* A relative data.path is looked for where the daemon would look with
 * --daemon-config (its spool's data dir by default), and every miss says
 * where it looked; a daemon with no data_dirs takes no data file at all. */
START_TEST(validate_says_where_data_path_was_looked_for)
{
    char *cfgdir = xasprintf("%s/configs", g_dir), *csv = xasprintf("%s/configs/csv.yaml", g_dir);
    char *dcfg = xasprintf("%s/traind.yaml", g_dir), *data = xasprintf("%s/spool/data", g_dir), *out;
    ck_assert_int_eq(mkdir_p(cfgdir, 0755), 0);
    ck_assert_int_eq(mkdir_p(data, 0755), 0);
    char *t = xasprintf("%s/t.csv", data);
    write_text(t, "x,y\n1,2\n");
    write_text(csv, "model: {type: linear, input_dim: 1, output_dim: 1}\n"
                    "data: {kind: csv, path: t.csv}\n"
                    "schedule: {total_steps: 10}\n");
    /* no data_dirs key: the spool's data dir, as the daemon defaults */
    char *d = xasprintf("spool: %s/spool\n", g_dir);
    write_text(dcfg, d);
    free(d);
    ck_assert_int_eq(run_cli(&out, "validate", "--daemon-config", dcfg, csv, NULL), 0);
    ck_assert_msg(strstr(out, "csv.yaml: ok (csv,"), "%s", out);
    free(out);
    /* without it: the config's folder, and it says so */
    ck_assert_int_eq(run_cli(&out, "validate", csv, NULL), 1);
    char *folder = xasprintf("looked in the config's folder %s/", cfgdir);
    ck_assert_msg(strstr(out, folder) && strstr(out, "--daemon-config"), "%s", out);
    free(folder);
    free(out);
    /* not in the daemon's data dir either: the file it looked for */
    ck_assert_int_eq(unlink(t), 0);
    ck_assert_int_eq(run_cli(&out, "validate", "--daemon-config", dcfg, csv, NULL), 1);
    char *where = xasprintf("looked where that daemon would: %s/t.csv", data);
    ck_assert_msg(strstr(out, "csv.yaml:2:") && strstr(out, where), "%s", out);
    free(where);
    free(out);
    /* data_dirs: [] allows no data file, not even an absolute path that exists */
    write_text(t, "x,y\n1,2\n");
    char *abs = xasprintf("model: {type: linear, input_dim: 1, output_dim: 1}\n"
                          "data: {kind: csv, path: %s}\nschedule: {total_steps: 10}\n", t);
    write_text(csv, abs);
    free(abs);
    ck_assert_int_eq(run_cli(&out, "validate", csv, NULL), 0);   /* trainctl run would read it */
    free(out);
    d = xasprintf("spool: %s/spool\ndata_dirs: []\n", g_dir);
    write_text(dcfg, d);
    free(d);
    ck_assert_int_eq(run_cli(&out, "validate", "--daemon-config", dcfg, csv, NULL), 1);
    ck_assert_msg(strstr(out, "allows no data files"), "%s", out);
    free(out);
    free(t);
    free(data);
    free(dcfg);
    free(csv);
    free(cfgdir);
}
END_TEST

START_TEST(schedule_json_has_every_step)
{
    char *cfg = xasprintf("%s/s.yaml", g_dir), *out;
    write_text(cfg, GOOD);
    ck_assert_int_eq(run_cli(&out, "schedule", cfg, "--json", NULL), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(cJSON_GetArraySize(j), 10);
    /* linear, W=3, T=10, lr 1e-2: 0, 1/3, 2/3, then (1 - (s-3)/7) */
    ck_assert_double_eq_tol(cJSON_GetArrayItem(j, 0)->valuedouble, 0.0, 1e-18);
    ck_assert_double_eq_tol(cJSON_GetArrayItem(j, 1)->valuedouble, 1e-2 / 3, 1e-17);
    ck_assert_double_eq_tol(cJSON_GetArrayItem(j, 3)->valuedouble, 1e-2, 1e-17);
    ck_assert_double_eq_tol(cJSON_GetArrayItem(j, 9)->valuedouble, 1e-2 / 7, 1e-17);
    cJSON_Delete(j);
    free(out);
    ck_assert_int_eq(run_cli(&out, "schedule", cfg, NULL), 0);       /* the plot */
    ck_assert_ptr_nonnull(strstr(out, "*"));
    free(out);
    free(cfg);
}
END_TEST

START_TEST(experiments_validate_and_schedule)
{
    char *cfg = xasprintf("%s/sweep.yaml", g_dir), *out;
    write_text(cfg, "name: sw\n"
                    "model: {type: linear, input_dim: 3, output_dim: 2}\n"
                    "optimizer: {type: adamw, lr: 1.0e-2}\n"
                    "schedule: {type: cosine, warmup_steps: 3, total_steps: 10, decay_ratio: 0.2}\n"
                    "sweep:\n"
                    "  method: grid\n"
                    "  parameters:\n"
                    "    schedule.type: [cosine, linear, warmup_stable_decay]\n"
                    "    optimizer.lr: [1.0e-2, 1.0e-3]\n"
                    "    seed: [1, 2]\n");
    ck_assert_int_eq(run_cli(&out, "validate", cfg, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "experiment sw: grid of 12 trials over schedule.type, optimizer.lr, seed"));
    free(out);
    /* the seed changes no schedule: 6 distinct curves of 12 trials, each its own */
    ck_assert_int_eq(run_cli(&out, "schedule", cfg, "--json", NULL), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(cJSON_GetArraySize(j), 6);
    cJSON *third = cJSON_GetArrayItem(j, 2);       /* trial 5: linear, lr 1e-2 */
    ck_assert_int_eq((int)cJSON_GetObjectItem(third, "trial")->valuedouble, 5);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(third, "params"), "schedule.type")->valuestring,
                     "linear");
    cJSON *lr = cJSON_GetObjectItem(third, "lr");
    ck_assert_int_eq(cJSON_GetArraySize(lr), 10);
    ck_assert_double_eq_tol(cJSON_GetArrayItem(lr, 9)->valuedouble, 1e-2 / 7, 1e-17);
    cJSON_Delete(j);
    free(out);
    ck_assert_int_eq(run_cli(&out, "schedule", cfg, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "6 distinct schedules of 12 trials"));
    free(out);
    /* an error names the sweep entry, its line and column, and the trial */
    write_text(cfg, "model: {type: linear, input_dim: 3, output_dim: 2}\n"
                    "schedule: {total_steps: 10}\n"
                    "sweep:\n"
                    "  method: grid\n"
                    "  parameters:\n"
                    "    optimizer.lr: [1.0e-2, -1]\n");
    ck_assert_int_eq(run_cli(&out, "validate", cfg, NULL), 1);
    ck_assert_ptr_nonnull(strstr(out, "sweep.yaml:6:28: sweep.parameters.optimizer.lr[1]: trial 2 (optimizer.lr=-1)"));
    free(out);
    free(cfg);
}
END_TEST

START_TEST(run_writes_metrics_and_checkpoint)
{
    char *cfg = xasprintf("%s/r.yaml", g_dir), *dir = xasprintf("%s/out", g_dir), *out;
    write_text(cfg, GOOD);
    ck_assert_int_eq(run_cli(&out, "run", cfg, "--out", dir, NULL), 0);
    free(out);
    char *m = xasprintf("%s/metrics.jsonl", dir), *c = xasprintf("%s/checkpoint.bin", dir), *buf;
    size_t len;
    ck_assert_int_eq(read_file(m, 1 << 20, &buf, &len), 0);
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 5);   /* steps 2, 4, 6, 8, 10 */
    char *last = strstr(buf, "{\"step\":10,");
    ck_assert_ptr_nonnull(last);
    cJSON *j = cJSON_Parse(last);
    ck_assert_ptr_nonnull(j);
    const char *keys[] = {"step", "lr", "loss", "loss_avg", "grad_norm", "time"};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItem(j, keys[i])), "no %s", keys[i]);
    cJSON_Delete(j);
    free(buf);
    struct stat st;
    ck_assert_int_eq(stat(c, &st), 0);
    /* Once more without --fresh: the checkpoint is at the end, nothing to do but succeed. */
    ck_assert_int_eq(run_cli(&out, "run", cfg, "--out", dir, NULL), 0);
    free(out);
    ck_assert_int_eq(read_file(m, 1 << 20, &buf, &len), 0);
    lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 5);   /* no step twice */
    free(buf);
    free(m);
    free(c);
    free(cfg);
    free(dir);
}
END_TEST

START_TEST(sigint_checkpoints_and_resumes)
{
    char *cfg = xasprintf("%s/long.yaml", g_dir), *dir = xasprintf("%s/out", g_dir);
    write_text(cfg, "model: {type: mlp, input_dim: 64, hidden: [256, 256], output_dim: 64}\n"
                    "data: {batch_size: 64}\n"
                    "schedule: {type: cosine, total_steps: 200000}\n"
                    "train: {log_every: 100, checkpoint_every: 0}\n");
    char *exe = xstrdup(tl_trainctl_path());
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", 1);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(exe, exe, "run", cfg, "--out", dir, (char *)NULL);
        _exit(127);
    }
    char *m = xasprintf("%s/metrics.jsonl", dir);
    struct stat st;
    for (int i = 0; i < 200 && (stat(m, &st) != 0 || st.st_size < 300); i++)
        usleep(20000);
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 130);
    char *c = xasprintf("%s/checkpoint.bin", dir);
    ck_assert_int_eq(stat(c, &st), 0);
    /* A second run resumes (says so) and is stopped again with SIGTERM → 143. */
    char *log = xasprintf("%s/second.txt", g_dir);
    pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, STDOUT_FILENO);
        execl(exe, exe, "run", cfg, "--out", dir, (char *)NULL);
        _exit(127);
    }
    usleep(300000);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    ck_assert_int_eq(WEXITSTATUS(status), 143);
    char *buf;
    size_t len;
    ck_assert_int_eq(read_file(log, 1 << 20, &buf, &len), 0);
    ck_assert_msg(strstr(buf, "resuming from step"), "%s", buf);
    free(buf);
    free(log);
    free(c);
    free(m);
    free(exe);
    free(cfg);
    free(dir);
}
END_TEST


/* After a resume, run's done line counts the steps this run trained (not
 * total_steps) and its steps/s is those over this run's time: it once
 * reported 7,530 steps/s against ~1,600 real. */
START_TEST(resumed_run_reports_its_own_steps)
{
    char *cfg = xasprintf("%s/resume.yaml", g_dir), *dir = xasprintf("%s/out", g_dir);
    const long total = TL_ASAN ? 6000 : 20000;
    char *yaml = xasprintf("model: {type: mlp, input_dim: 32, hidden: [64], output_dim: 8}\n"
                           "data: {batch_size: 16}\n"
                           "schedule: {type: constant, total_steps: %ld}\n"
                           "train: {log_every: 100, checkpoint_every: 0}\n", total);
    write_text(cfg, yaml);
    free(yaml);
    char *exe = xstrdup(tl_trainctl_path());
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(exe, exe, "run", cfg, "--out", dir, "--threads", "1", (char *)NULL);
        _exit(127);
    }
    char *m = xasprintf("%s/metrics.jsonl", dir);
    struct stat st;
    for (int i = 0; i < 500 && (stat(m, &st) != 0 || st.st_size < 300); i++)
        usleep(10000);
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_int_eq(WEXITSTATUS(status), 130);
    char *out;
    double t0 = tl_now();
    ck_assert_int_eq(run_cli(&out, "run", cfg, "--out", dir, "--threads", "1", NULL), 0);
    double wall = tl_now() - t0;
    const char *r = strstr(out, "resuming from step ");
    ck_assert_msg(r, "%s", out);
    long from = strtol(r + 19, NULL, 10);
    ck_assert_msg(from > 0 && from < total, "%s", out);
    const char *d = strstr(out, ": done: ");
    ck_assert_msg(d, "%s", out);
    long steps = 0, a = 0, b = 0;
    double secs = 0, rate = 0;
    ck_assert_msg(sscanf(d, ": done: %ld steps (from step %ld to %ld) in %lfs (%lf steps/s", &steps, &a, &b, &secs,
                         &rate) == 5, "%s", d);
    ck_assert_int_eq(steps, total - from);
    ck_assert_int_eq(a, from);
    ck_assert_int_eq(b, total);
    ck_assert_msg(secs > 0 && secs <= wall, "%.3f s reported, %.3f s taken", secs, wall);
    /* the rate is this run's steps over this run's time (to the printed rounding) */
    ck_assert_msg(fabs(rate - (double)steps / secs) <= 0.05 + 1e-3 * rate, "%s", d);
    ck_assert_msg(rate < (double)total / secs, "%s", d);
    free(out);
    free(m);
    free(exe);
    free(cfg);
    free(dir);
}
END_TEST

START_TEST(sample_continues_learnt_text)
{
    char *text = xasprintf("%s/text.txt", g_dir), *cfg = xasprintf("%s/g.yaml", g_dir);
    char *dir = xasprintf("%s/grun", g_dir), *out;
    size_t n = 0;
    char *body = xcalloc(1, 64 * 200 + 1);
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(body + n, "the quick brown fox jumps over the lazy dog. ");
    write_text(text, body);
    free(body);
    write_text(cfg, "model: {type: gpt, context: 32, d_model: 32, layers: 2, heads: 2}\n"
                    "data: {kind: text, batch_size: 8, path: text.txt}\n"
                    "optimizer: {type: adamw, lr: 3.0e-3}\n"
                    "schedule: {type: cosine, warmup_steps: 20, total_steps: 300}\n"
                    "train: {log_every: 100}\n");
    ck_assert_int_eq(run_cli(&out, "run", cfg, "--out", dir, NULL), 0);
    free(out);
    ck_assert_int_eq(run_cli(&out, "sample", dir, "--prompt", "the quick", "--tokens", "40",
                             "--temperature", "0", NULL), 0);
    ck_assert_msg(strstr(out, "the quick brown fox jumps over the lazy dog"), "%s", out);
    free(out);
    ck_assert_int_eq(run_cli(&out, "sample", dir, "--temperature", "-1", NULL), 2);
    free(out);
    ck_assert_int_eq(run_cli(&out, "sample", g_dir, NULL), 1);    /* no config.yaml there */
    free(out);
    free(text);
    free(cfg);
    free(dir);
}
END_TEST

/* ---- trainctl lr-find ---- */

static const char *LRF_CFG =
    "name: lrf-cli\nseed: 2\n"
    "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 4, activation: gelu}\n"
    "data: {kind: synthetic, batch_size: 16}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 10, total_steps: 40}\n"
    "train: {log_every: 5, checkpoint_every: 10}\n";

/* The names in dir, sorted, joined by spaces (malloc'd). */
static char *listing(const char *dir)
{
    char *cmd = xasprintf("ls -A '%s' > '%s.ls'", dir, dir), *out, *path = xasprintf("%s.ls", dir);
    ck_assert_int_eq(system(cmd), 0);
    size_t len;
    ck_assert_int_eq(read_file(path, 1 << 20, &out, &len), 0);
    unlink(path);
    for (char *c = out; *c; c++)
        if (*c == '\n')
            *c = ' ';
    free(cmd);
    free(path);
    return out;
}

START_TEST(lr_find_json_diverges_and_writes_nothing)
{
    char *cfg = xasprintf("%s/lrf.yaml", g_dir), *out;
    write_text(cfg, LRF_CFG);
    struct stat st;
    ck_assert_int_ne(stat("runs/lrf-cli", &st), 0);
    ck_assert_int_eq(run_cli(&out, "lr-find", cfg, "--json", "--steps", "80", NULL), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    cJSON *sug = cJSON_GetObjectItem(j, "suggestion"), *steep = cJSON_GetObjectItem(j, "steepest"),
          *pts = cJSON_GetObjectItem(j, "points");
    ck_assert(cJSON_IsNumber(sug) && cJSON_IsNumber(steep) && cJSON_IsArray(pts));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "stopped")->valuestring, "diverged");
    int n = cJSON_GetArraySize(pts);
    ck_assert_int_gt(n, 20);
    ck_assert_int_lt(n, 80);
    /* exponential: lr_i = 1e-7 * (10 / 1e-7) ** (i / 80) */
    double q = pow(10.0 / 1e-7, 1.0 / 80), best = INFINITY, last = NAN;
    for (int i = 0; i < n; i++) {
        cJSON *p = cJSON_GetArrayItem(pts, i);
        ck_assert_int_eq(cJSON_GetArraySize(p), 2);
        double lr = cJSON_GetArrayItem(p, 0)->valuedouble, loss = cJSON_GetArrayItem(p, 1)->valuedouble;
        ck_assert_double_eq_tol(lr, 1e-7 * pow(q, i), 1e-12 * lr);
        if (i + 1 < n && loss < best)
            best = loss;
        last = loss;
    }
    ck_assert(last > 4 * best);          /* stopped on the first point past 4x the best */
    /* the suggestion and the steepest point are points of the curve */
    int si = cJSON_GetObjectItem(j, "suggestion_index")->valueint;
    ck_assert(si >= 8 && si < n - 5);
    ck_assert(cJSON_GetArrayItem(cJSON_GetArrayItem(pts, si), 0)->valuedouble == sug->valuedouble);
    cJSON_Delete(j);
    free(out);
    /* nothing written: no run directory, nothing beside the config but trainctl's captured output */
    ck_assert_int_ne(stat("runs/lrf-cli", &st), 0);
    char *ls = listing(g_dir);
    ck_assert_str_eq(ls, "lrf.yaml out.txt ");
    free(ls);

    /* --out FILE: asked for, the same JSON lands there */
    char *file = xasprintf("%s/curve.json", g_dir), *saved;
    ck_assert_int_eq(run_cli(&out, "lr-find", cfg, "--json", "--steps", "40", "--out", file, NULL), 0);
    size_t len;
    ck_assert_int_eq(read_file(file, 1 << 24, &saved, &len), 0);
    ck_assert_ptr_nonnull(strstr(out, saved));
    free(saved);
    free(file);
    free(out);
    free(cfg);
}
END_TEST

START_TEST(lr_find_plot_and_usage)
{
    char *cfg = xasprintf("%s/lrf.yaml", g_dir), *bad = xasprintf("%s/bad.yaml", g_dir), *out;
    write_text(cfg, LRF_CFG);
    write_text(bad, "model: {type: mlp}\n");
    ck_assert_int_eq(run_cli(&out, "lr-find", cfg, "--steps", "60", NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "lr range test, "));
    ck_assert_ptr_nonnull(strstr(out, "suggestion (valley):   lr "));
    ck_assert_ptr_nonnull(strstr(out, "steepest:              lr "));
    ck_assert_ptr_nonnull(strstr(out, "(lr, log scale)"));
    ck_assert_ptr_nonnull(strstr(out, "brackets the peak lr"));
    /* the curve, the suggestion and the steepest point are drawn */
    ck_assert_ptr_nonnull(strstr(out, " |"));
    ck_assert_ptr_nonnull(strchr(out, '+'));
    ck_assert_ptr_nonnull(strchr(out, 'o'));
    free(out);
    ck_assert_int_eq(run_cli(NULL, "lr-find", cfg, "--steps", "3", NULL), 2);
    ck_assert_int_eq(run_cli(NULL, "lr-find", cfg, "--start", "0", NULL), 2);
    ck_assert_int_eq(run_cli(NULL, "lr-find", cfg, "--start", "1", "--end", "0.5", NULL), 2);
    ck_assert_int_eq(run_cli(NULL, "lr-find", NULL), 2);
    ck_assert_int_eq(run_cli(&out, "lr-find", bad, NULL), 1);
    free(out);
    free(bad);
    free(cfg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("trainctl");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, exit_codes);
    tcase_add_test(tc, validate_reports_every_error);
    tcase_add_test(tc, validate_against_a_daemon_config);
    tcase_add_test(tc, validate_says_where_data_path_was_looked_for);
    tcase_add_test(tc, schedule_json_has_every_step);
    tcase_add_test(tc, experiments_validate_and_schedule);
    tcase_add_test(tc, run_writes_metrics_and_checkpoint);
    tcase_add_test(tc, sigint_checkpoints_and_resumes);
    tcase_add_test(tc, resumed_run_reports_its_own_steps);
    tcase_add_test(tc, sample_continues_learnt_text);
    tcase_add_test(tc, lr_find_json_diverges_and_writes_nothing);
    tcase_add_test(tc, lr_find_plot_and_usage);
    suite_add_tcase(s, tc);
    int failed = tl_run_suite(s);
    return failed ? 1 : 0;
}

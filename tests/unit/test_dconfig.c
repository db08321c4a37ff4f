/* test_dconfig — the daemon config file (traind.yaml(5)): defaults, every key,
 * located errors with hints, flags-over-file precedence helpers. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/config.h"
#include "traind/dconfig.h"
#include "traind/util.h"
#include "tl.h"

static int parse(const char *text, dconfig *c, diag_list_t *errs)
{
    dconfig_init(c);
    return dconfig_parse(text, strlen(text), c, errs);
}

static const diag_t *find_diag(const diag_list_t *errs, const char *path)
{
    for (size_t i = 0; i < errs->n; i++)
        if (strcmp(errs->items[i].path, path) == 0)
            return &errs->items[i];
    return NULL;
}

START_TEST(executor_keys)
{
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    dconfig_init(&c);
    ck_assert_int_eq(c.executor, DCONFIG_EXEC_LOCAL);
    ck_assert_int_eq(c.slurm.signal_grace_s, 60);
    dconfig_free(&c);
    ck_assert_int_eq(parse("executor: slurm\n"
                           "slurm: {partition: gpu, account: lab-a, time_limit: \"1-12:00:00\",\n"
                           "        extra_args: \"--qos=normal --exclusive\", signal_grace_s: 120}\n",
                           &c, &errs), 0);
    ck_assert_int_eq(c.executor, DCONFIG_EXEC_SLURM);
    ck_assert_str_eq(c.slurm.partition, "gpu");
    ck_assert_str_eq(c.slurm.account, "lab-a");
    ck_assert_str_eq(c.slurm.time_limit, "1-12:00:00");
    ck_assert_str_eq(c.slurm.extra_args, "--qos=normal --exclusive");
    ck_assert_int_eq(c.slurm.signal_grace_s, 120);
    dconfig_free(&c);
    ck_assert_int_eq(parse("executor: local\n", &c, &errs), 0);
    ck_assert_int_eq(c.executor, DCONFIG_EXEC_LOCAL);
    dconfig_free(&c);
    diag_free(&errs);

    ck_assert_int_eq(parse("executor: pbs\nslurm: {partiton: x, time_limit: 1h, signal_grace_s: 0,\n"
                           "        partition: \"a b\"}\n", &c, &errs), -1);
    ck_assert_ptr_nonnull(find_diag(&errs, "executor"));
    ck_assert_ptr_nonnull(strstr(find_diag(&errs, "executor")->message, "one of local, slurm"));
    ck_assert_ptr_nonnull(find_diag(&errs, "slurm.partiton"));
    ck_assert_ptr_nonnull(find_diag(&errs, "slurm.time_limit"));
    ck_assert_ptr_nonnull(find_diag(&errs, "slurm.signal_grace_s"));
    ck_assert_ptr_nonnull(find_diag(&errs, "slurm.partition"));
    ck_assert_int_eq(find_diag(&errs, "slurm.time_limit")->line, 2);
    dconfig_free(&c);
    diag_free(&errs);
    ck_assert_int_eq(parse("slurm: gpu\n", &c, &errs), -1);
    ck_assert_ptr_nonnull(find_diag(&errs, "slurm"));
    dconfig_free(&c);
    diag_free(&errs);
}
END_TEST

START_TEST(defaults)
{
    dconfig c;
    dconfig_init(&c);
    ck_assert_ptr_null(c.spool);
    ck_assert_str_eq(c.listen, "127.0.0.1:8080");
    ck_assert_int_eq(c.max_jobs, 1);
    ck_assert_int_eq(c.threads_per_job, 1);
    ck_assert_int_eq(c.metrics_keep, 100000);
    ck_assert_int_eq(c.max_restarts, 0);
    ck_assert_int_eq(c.max_queued_jobs, 1000);
    ck_assert_uint_eq(c.max_model_memory, (size_t)8 << 30);
    ck_assert_double_eq(c.write_rate_per_client, 20);
    ck_assert_int_eq(dconfig_write_burst(&c), 40);
    ck_assert_int_eq(c.max_connections, 1024);
    ck_assert_uint_eq(c.request_timeout_ms, 10000);
    ck_assert_uint_eq(c.idle_timeout_ms, 30000);
    dconfig_finish(&c);
    char cwd[4096];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    char *want = xasprintf("%s/var/spool", cwd);
    ck_assert_str_eq(c.spool, want);
    char *tok = xasprintf("%s/api.token", want);
    ck_assert_str_eq(c.api_token_file, tok);
    ck_assert_uint_eq(c.n_data_dirs, 1);
    char *data = xasprintf("%s/data", want);
    ck_assert_str_eq(c.data_dirs[0], data);
    free(want);
    free(tok);
    free(data);
    dconfig_free(&c);
}
END_TEST

START_TEST(every_key)
{
    const char *text =
        "# a full daemon config\n"
        "spool: /var/lib/traind\n"
        "listen: unix:/run/traind/api.sock\n"
        "max_jobs: 3\n"
        "threads_per_job: 4\n"
        "data_dirs: [/srv/data, /mnt/more]\n"
        "api_token_file: /etc/traind/token\n"
        "metrics_keep: 5000\n"
        "max_restarts: 2\n";
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(text, &c, &errs), 0);
    ck_assert_uint_eq(errs.n, 0);
    dconfig_finish(&c);
    ck_assert_str_eq(c.spool, "/var/lib/traind");
    ck_assert_str_eq(c.listen, "unix:/run/traind/api.sock");
    ck_assert_int_eq(c.max_jobs, 3);
    ck_assert_int_eq(c.threads_per_job, 4);
    ck_assert_uint_eq(c.n_data_dirs, 2);
    ck_assert_str_eq(c.data_dirs[0], "/srv/data");
    ck_assert_str_eq(c.data_dirs[1], "/mnt/more");
    ck_assert_str_eq(c.api_token_file, "/etc/traind/token");
    ck_assert_int_eq(c.metrics_keep, 5000);
    ck_assert_int_eq(c.max_restarts, 2);
    dconfig_free(&c);
}
END_TEST

START_TEST(empty_and_comment_only_files_are_defaults)
{
    const char *texts[] = {"", "\n\n", "# nothing here\n  # at all\n", "---\n# x\n...\n"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        dconfig c;
        diag_list_t errs = DIAG_LIST_INIT;
        ck_assert_msg(parse(texts[i], &c, &errs) == 0, "text %zu", i);
        ck_assert_int_eq(c.max_jobs, 1);
        diag_free(&errs);
        dconfig_free(&c);
    }
}
END_TEST

START_TEST(null_value_keeps_default)
{
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse("max_jobs:\nlisten: ~\n", &c, &errs), 0);
    ck_assert_int_eq(c.max_jobs, 1);
    ck_assert_str_eq(c.listen, "127.0.0.1:8080");
    dconfig_free(&c);
}
END_TEST

START_TEST(unknown_key_with_line_and_hint)
{
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse("spool: /tmp/x\nmax_job: 2\nfrobnicate: 1\n", &c, &errs), -1);
    ck_assert_uint_eq(errs.n, 2);
    const diag_t *d = find_diag(&errs, "max_job");
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->line, 2);
    ck_assert_int_eq(d->column, 1);
    ck_assert_ptr_nonnull(strstr(d->message, "did you mean 'max_jobs'"));
    d = find_diag(&errs, "frobnicate");
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->line, 3);
    ck_assert_ptr_null(strstr(d->message, "did you mean"));
    diag_free(&errs);
    dconfig_free(&c);
}
END_TEST

START_TEST(bad_values_all_reported)
{
    const char *text =
        "max_jobs: 0\n"                 /* line 1: out of range */
        "threads_per_job: two\n"        /* line 2: not an integer */
        "listen: localhost\n"           /* line 3: no port */
        "data_dirs: {a: 1}\n"           /* line 4: not a list */
        "metrics_keep: \"100\"\n"       /* line 5: quoted: a string */
        "max_restarts: -1\n"            /* line 6 */
        "spool: [a, b]\n";              /* line 7: not a string */
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(text, &c, &errs), -1);
    const char *paths[] = {"max_jobs", "threads_per_job", "listen", "data_dirs", "metrics_keep",
                           "max_restarts", "spool"};
    for (int i = 0; i < 7; i++) {
        const diag_t *d = find_diag(&errs, paths[i]);
        ck_assert_msg(d != NULL, "no error for %s", paths[i]);
        ck_assert_int_eq(d->line, i + 1);
    }
    ck_assert_ptr_nonnull(strstr(find_diag(&errs, "max_jobs")->message, "got 0"));
    diag_free(&errs);
    dconfig_free(&c);
}
END_TEST

/* Max_job_disk (a size or 0) and allowed_hosts (names or "*"). */
START_TEST(disk_and_host_keys)
{
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse("max_job_disk: 50G\nallowed_hosts: [traind.example, \"*\"]\n", &c, &errs), 0);
    ck_assert_uint_eq(c.max_job_disk, (size_t)50 << 30);
    ck_assert(c.max_job_disk_set);
    ck_assert_uint_eq(c.n_allowed_hosts, 2);
    ck_assert_str_eq(c.allowed_hosts[0], "traind.example");
    dconfig_free(&c);
    ck_assert_int_eq(parse("max_job_disk: 0\n", &c, &errs), 0);
    ck_assert_uint_eq(c.max_job_disk, 0);
    ck_assert(c.max_job_disk_set);   /* 0 given: no limit, not the default */
    dconfig_free(&c);
    /* not given: the default, a share of the spool's file system */
    ck_assert_int_eq(parse("max_jobs: 2\n", &c, &errs), 0);
    ck_assert(!c.max_job_disk_set);
    dconfig sized;
    ck_assert_int_eq(parse("max_job_disk: 0\n", &sized, &errs), 0);
    dconfig_change *ch;
    size_t n = dconfig_diff(&sized, &c, &ch);   /* 0 -> the default is a change, shown as such */
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(ch[1].key, "max_job_disk");
    ck_assert_str_eq(ch[1].now, "(default)");
    dconfig_changes_free(ch, n);
    dconfig_free(&sized);
    dconfig_free(&c);
    ck_assert_uint_eq(dconfig_default_job_disk(1000ULL << 30), 100ULL << 30);   /* a tenth */
    ck_assert_uint_eq(dconfig_default_job_disk(4ULL << 30), 1ULL << 30);        /* at least 1 GiB */
    ck_assert_uint_eq(dconfig_default_job_disk(64ULL << 20), 32ULL << 20);      /* or half a small one */
    ck_assert_uint_eq(dconfig_default_job_disk(1ULL << 20), 1ULL << 20);        /* and 1 MiB */
    ck_assert_uint_eq(dconfig_default_job_disk(0), DCONFIG_FALLBACK_JOB_DISK);
    ck_assert_int_eq(parse("max_job_disk: 10K\nallowed_hosts: [\"http://x:80\"]\n", &c, &errs), -1);
    ck_assert_ptr_nonnull(find_diag(&errs, "max_job_disk"));
    ck_assert_ptr_nonnull(find_diag(&errs, "allowed_hosts[0]"));
    diag_free(&errs);
    dconfig_free(&c);
    ck_assert_int_eq(parse("allowed_hosts: traind.example\n", &c, &errs), -1);
    diag_free(&errs);
    dconfig_free(&c);
}
END_TEST

START_TEST(data_dirs_forms)
{
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse("data_dirs: /one\n", &c, &errs), 0);
    ck_assert_uint_eq(c.n_data_dirs, 1);
    ck_assert_str_eq(c.data_dirs[0], "/one");
    dconfig_free(&c);

    ck_assert_int_eq(parse("data_dirs: []\n", &c, &errs), 0);
    dconfig_finish(&c);
    ck_assert_uint_eq(c.n_data_dirs, 0);   /* explicitly none: no default added */
    dconfig_free(&c);

    ck_assert_int_eq(parse("data_dirs:\n  - /a\n  - ''\n", &c, &errs), -1);
    ck_assert_ptr_nonnull(find_diag(&errs, "data_dirs[1]"));
    ck_assert_int_eq(find_diag(&errs, "data_dirs[1]")->line, 3);
    diag_free(&errs);
    dconfig_free(&c);
}
END_TEST

START_TEST(not_a_mapping_and_broken_yaml)
{
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse("- a\n- b\n", &c, &errs), -1);
    ck_assert_uint_ge(errs.n, 1);
    diag_free(&errs);
    dconfig_free(&c);
    ck_assert_int_eq(parse("max_jobs: [1\n", &c, &errs), -1);
    ck_assert_uint_ge(errs.n, 1);
    ck_assert_int_gt(errs.items[0].line, 0);
    diag_free(&errs);
    dconfig_free(&c);
    ck_assert_int_eq(parse("max_jobs: 1\nmax_jobs: 2\n", &c, &errs), -1);   /* duplicate key */
    diag_free(&errs);
    dconfig_free(&c);
}
END_TEST

START_TEST(listen_forms)
{
    ck_assert_ptr_null(dconfig_check_listen("127.0.0.1:8080"));
    ck_assert_ptr_null(dconfig_check_listen("0.0.0.0:0"));
    ck_assert_ptr_null(dconfig_check_listen("[::1]:80"));
    ck_assert_ptr_null(dconfig_check_listen("localhost:9000"));
    ck_assert_ptr_null(dconfig_check_listen("unix:/run/traind/api.sock"));
    ck_assert_ptr_nonnull(dconfig_check_listen(""));
    ck_assert_ptr_nonnull(dconfig_check_listen("unix:"));
    ck_assert_ptr_nonnull(dconfig_check_listen("127.0.0.1"));
    ck_assert_ptr_nonnull(dconfig_check_listen("127.0.0.1:"));
    ck_assert_ptr_nonnull(dconfig_check_listen("127.0.0.1:65536"));
    ck_assert_ptr_nonnull(dconfig_check_listen("127.0.0.1:-1"));
    ck_assert_ptr_nonnull(dconfig_check_listen("127.0.0.1:80x"));
    ck_assert_ptr_nonnull(dconfig_check_listen("::1:80"));
}
END_TEST

START_TEST(load_file_and_missing_file)
{
    char dir[] = "/tmp/traind-dconfig-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *path = xasprintf("%s/traind.yaml", dir);
    const char *text = "max_jobs: 2\nspool: rel/spool\n";
    ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0644), 0);
    dconfig c;
    dconfig_init(&c);
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(dconfig_load(path, &c, &errs), 0);
    ck_assert_int_eq(c.max_jobs, 2);
    /* a flag overrides the file */
    c.max_jobs = 5;
    dconfig_finish(&c);
    ck_assert_int_eq(c.max_jobs, 5);
    ck_assert(c.spool[0] == '/');   /* made absolute */
    ck_assert_ptr_nonnull(strstr(c.spool, "/rel/spool"));
    dconfig_free(&c);
    unlink(path);
    dconfig_init(&c);
    ck_assert_int_eq(dconfig_load(path, &c, &errs), -1);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "No such file"));
    diag_free(&errs);
    dconfig_free(&c);
    rmdir(dir);
    free(path);
}
END_TEST

START_TEST(example_config_is_valid)
{
    /* config/traind.yaml, the documented example, parses cleanly (run from the repo root) */
    if (access("config/traind.yaml", R_OK) != 0) {
        tl_skip("example_config_is_valid: config/traind.yaml not found (run from the repository root)");
        return;
    }
    dconfig c;
    dconfig_init(&c);
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = dconfig_load("config/traind.yaml", &c, &errs);
    if (rc != 0)
        diag_print(stderr, "config/traind.yaml", &errs);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(c.spool, "/var/lib/traind");
    ck_assert_uint_eq(c.n_data_dirs, 1);
    diag_free(&errs);
    dconfig_free(&c);
}
END_TEST

START_TEST(limit_keys)
{
    const char *text =
        "max_queued_jobs: 50\n"
        "max_model_memory: 512M\n"
        "write_rate_per_client: 2.5\n"
        "write_burst_per_client: 7\n"
        "max_connections: 2000\n"
        "request_timeout_ms: 1000\n"
        "idle_timeout_ms: 1500\n";
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(text, &c, &errs), 0);
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_int_eq(c.max_queued_jobs, 50);
    ck_assert_uint_eq(c.max_model_memory, (size_t)512 << 20);
    ck_assert_double_eq(c.write_rate_per_client, 2.5);
    ck_assert_int_eq(c.write_burst_per_client, 7);
    ck_assert_int_eq(dconfig_write_burst(&c), 7);
    ck_assert_int_eq(c.max_connections, 2000);
    ck_assert_uint_eq(c.request_timeout_ms, 1000);
    ck_assert_uint_eq(c.idle_timeout_ms, 1500);
    dconfig_free(&c);

    /* burst left out: twice the rate, at least 1; rate 0 means unlimited */
    ck_assert_int_eq(parse("write_rate_per_client: 2.5\n", &c, &errs), 0);
    ck_assert_int_eq(dconfig_write_burst(&c), 5);
    dconfig_free(&c);
    ck_assert_int_eq(parse("write_rate_per_client: 0\n", &c, &errs), 0);
    ck_assert_double_eq(c.write_rate_per_client, 0);
    ck_assert_int_eq(dconfig_write_burst(&c), 1);
    dconfig_free(&c);
    ck_assert_int_eq(parse("max_model_memory: 17179869184\n", &c, &errs), 0);
    ck_assert_uint_eq(c.max_model_memory, (size_t)16 << 30);
    dconfig_free(&c);
    diag_free(&errs);
}
END_TEST

START_TEST(limit_keys_bad_values)
{
    const char *text =
        "max_queued_jobs: 0\n"           /* line 1: out of range */
        "max_model_memory: 8X\n"         /* line 2: unknown suffix */
        "write_rate_per_client: -1\n"    /* line 3 */
        "write_burst_per_client: 1.5\n"  /* line 4: not an integer */
        "max_connections: 0\n"           /* line 5 */
        "request_timeout_ms: 5\n"        /* line 6: under 100 */
        "idle_timeout_ms: soon\n";       /* line 7 */
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse(text, &c, &errs), -1);
    const char *paths[] = {"max_queued_jobs", "max_model_memory", "write_rate_per_client",
                           "write_burst_per_client", "max_connections", "request_timeout_ms",
                           "idle_timeout_ms"};
    for (int i = 0; i < 7; i++) {
        const diag_t *d = find_diag(&errs, paths[i]);
        ck_assert_msg(d != NULL, "no error for %s", paths[i]);
        ck_assert_int_eq(d->line, i + 1);
        ck_assert_int_eq(d->column, (int)strlen(paths[i]) + 3);
    }
    ck_assert_uint_eq(errs.n, 7);
    ck_assert_ptr_nonnull(strstr(find_diag(&errs, "max_model_memory")->message, "512M or 8G"));
    ck_assert_ptr_nonnull(strstr(find_diag(&errs, "max_model_memory")->message, "got \"8X\""));
    ck_assert_ptr_nonnull(strstr(find_diag(&errs, "request_timeout_ms")->message, "in 100..3600000, got 5"));
    diag_free(&errs);
    dconfig_free(&c);

    /* sizes out of range, rates that are not decimal numbers */
    const char *bad[] = {"max_model_memory: 1K\n", "max_model_memory: 2P\n", "max_model_memory: \"8G\"\n",
                         "max_model_memory: -8G\n", "write_rate_per_client: inf\n",
                         "write_rate_per_client: 0x10\n", "write_rate_per_client: 2000000\n",
                         "max_queued_jobs: 1000001\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(parse(bad[i], &c, &errs) == -1, "accepted %s", bad[i]);
        ck_assert_uint_eq(errs.n, 1);
        diag_free(&errs);
        dconfig_free(&c);
    }

    /* a misspelt new key gets a hint */
    ck_assert_int_eq(parse("max_queue_jobs: 5\n", &c, &errs), -1);
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "did you mean 'max_queued_jobs'"));
    diag_free(&errs);
    dconfig_free(&c);
}
END_TEST

START_TEST(parse_size)
{
    size_t x = 0;
    ck_assert_int_eq(dconfig_parse_size("0", &x), 0);
    ck_assert_uint_eq(x, 0);
    ck_assert_int_eq(dconfig_parse_size("1048576", &x), 0);
    ck_assert_uint_eq(x, 1048576);
    ck_assert_int_eq(dconfig_parse_size("512M", &x), 0);
    ck_assert_uint_eq(x, (size_t)512 << 20);
    ck_assert_int_eq(dconfig_parse_size("8G", &x), 0);
    ck_assert_uint_eq(x, (size_t)8 << 30);
    ck_assert_int_eq(dconfig_parse_size("8g", &x), 0);
    ck_assert_uint_eq(x, (size_t)8 << 30);
    ck_assert_int_eq(dconfig_parse_size("8GiB", &x), 0);
    ck_assert_uint_eq(x, (size_t)8 << 30);
    ck_assert_int_eq(dconfig_parse_size("8GB", &x), 0);
    ck_assert_uint_eq(x, (size_t)8 << 30);
    ck_assert_int_eq(dconfig_parse_size("64k", &x), 0);
    ck_assert_uint_eq(x, 65536);
    ck_assert_int_eq(dconfig_parse_size("2T", &x), 0);
    ck_assert_uint_eq(x, (size_t)2 << 40);
    ck_assert_int_eq(dconfig_parse_size("1P", &x), 0);
    ck_assert_uint_eq(x, (size_t)1 << 50);
    const char *bad[] = {"", "G", "-1", "+5", " 5", "5 G", "5X", "5GiBs", "1.5G", "5Gi B",
                         "99999999999999999999", "20000000P"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        x = 7;
        ck_assert_msg(dconfig_parse_size(bad[i], &x) == -1, "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(x, 7);
    }
}
END_TEST

START_TEST(edit_distance)
{
    ck_assert_int_eq(dconfig_edit_distance("max_jobs", "max_jobs"), 0);
    ck_assert_int_eq(dconfig_edit_distance("max_job", "max_jobs"), 1);
    ck_assert_int_eq(dconfig_edit_distance("spoll", "spool"), 1);
    ck_assert_int_eq(dconfig_edit_distance("", "abc"), 3);
}
END_TEST

/* The daemon config's errors are the run config's, word for word. */
static const char *run_config_message(const char *train_section, const char *path)
{
    static char msg[512];
    char *text = xasprintf("model: {type: linear, input_dim: 4, output_dim: 2}\n"
                           "schedule: {total_steps: 10}\ntrain: %s\n", train_section);
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(text, strlen(text), NULL, &cfg, &errs), -1);
    const diag_t *d = find_diag(&errs, path);
    ck_assert_msg(d != NULL, "the run config has no error at %s", path);
    snprintf(msg, sizeof msg, "%s", d->message);
    diag_free(&errs);
    free(text);
    return msg;
}

START_TEST(error_wording_is_the_run_configs)
{
    static const struct {
        const char *yaml, *path, *message;
    } cases[] = {
        {"max_jobs: 2.5\n", "max_jobs", "must be an integer, got 2.5"},
        {"max_jobs: 0x10\n", "max_jobs", "must be a decimal integer, got 0x10"},
        {"threads_per_job: \"4\"\n", "threads_per_job", "must be an integer, got string \"4\""},
        {"max_restarts: 5000\n", "max_restarts", "must be an integer in 0..1000, got 5000"},
        {"write_rate_per_client: -1\n", "write_rate_per_client", "must be a number in [0, 1000000], got -1"},
        {"write_rate_per_client: .inf\n", "write_rate_per_client", "must be a finite number, got .inf"},
        {"executor: slrum\n", "executor", "must be one of local, slurm, got \"slrum\" (did you mean 'slurm'?)"},
        {"spool: [a, b]\n", "spool", "must be a string, got a list"},
        {"data_dirs: {a: 1}\n", "data_dirs", "must be a list, got a mapping"},
        {"max_job: 2\n", "max_job", "unknown key 'max_job' (did you mean 'max_jobs'?)"},
        {"slurm: {acount: x}\n", "slurm.acount", "unknown key 'acount' (did you mean 'account'?)"},
        /* a run-config key in the daemon config: no hint into the run config's sections */
        {"lr: 0.1\n", "lr", "unknown key 'lr'"},
        {"max_model_memory: 1K\n", "max_model_memory", "must be a size in 1M..1P, got 1K"},
        {"max_job_disk: 10K\n", "max_job_disk", "must be a size in 1M..1P (or 0 for no limit), got 10K"},
        {"listen: localhost\n", "listen", "must be HOST:PORT, [IPV6]:PORT or unix:/PATH, got \"localhost\""},
        {"slurm: gpu\n", "slurm", "must be a mapping of keys to values, got string \"gpu\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dconfig c;
        diag_list_t errs = DIAG_LIST_INIT;
        ck_assert_msg(parse(cases[i].yaml, &c, &errs) == -1, "accepted %s", cases[i].yaml);
        ck_assert_uint_eq(errs.n, 1);
        ck_assert_str_eq(errs.items[0].path, cases[i].path);
        ck_assert_str_eq(errs.items[0].message, cases[i].message);
        ck_assert_int_eq(errs.items[0].line, 1);
        ck_assert_int_gt(errs.items[0].column, 0);
        diag_free(&errs);
        dconfig_free(&c);
    }

    /* the same mistakes in a run config read the same */
    dconfig c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse("max_jobs: 2.5\nmax_restarts: \"1\"\n", &c, &errs), -1);
    ck_assert_str_eq(find_diag(&errs, "max_jobs")->message, run_config_message("{log_every: 2.5}", "train.log_every"));
    ck_assert_str_eq(find_diag(&errs, "max_restarts")->message,
                     run_config_message("{log_every: \"1\"}", "train.log_every"));
    diag_free(&errs);
    dconfig_free(&c);
}
END_TEST

static const dconfig_change *find_change(const dconfig_change *ch, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ch[i].key, key) == 0)
            return &ch[i];
    return NULL;
}

/* What a SIGHUP logs (each changed key, old and new) and keeps. */
START_TEST(reload_diff_and_fixed_keys)
{
    dconfig a, b;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(parse("spool: /srv/a\nmax_jobs: 2\ndata_dirs: [/d1]\nmax_model_memory: 8G\n", &a, &errs), 0);
    dconfig_finish(&a);
    ck_assert_int_eq(parse("spool: /srv/a\nmax_jobs: 2\ndata_dirs: [/d1]\nmax_model_memory: 8G\n", &b, &errs), 0);
    dconfig_finish(&b);
    dconfig_change *ch;
    ck_assert_uint_eq(dconfig_diff(&a, &b, &ch), 0);   /* the same file: nothing changed */
    ck_assert_ptr_null(ch);
    dconfig_free(&b);

    ck_assert_int_eq(parse("spool: /srv/b\nmax_jobs: 3\ndata_dirs: [/d1, /d2]\nmax_model_memory: 512M\n"
                           "listen: 127.0.0.1:9999\nwrite_rate_per_client: 2.5\nexecutor: slurm\n"
                           "slurm: {partition: gpu}\nmax_trials: 7\n", &b, &errs), 0);
    dconfig_finish(&b);
    size_t n = dconfig_diff(&a, &b, &ch);
    const struct {
        const char *key, *was, *now;
        bool fixed;
    } want[] = {
        {"spool", "/srv/a", "/srv/b", true},
        {"listen", "127.0.0.1:8080", "127.0.0.1:9999", true},
        {"max_jobs", "2", "3", false},
        {"data_dirs", "[/d1]", "[/d1, /d2]", false},
        {"api_token_file", "/srv/a/api.token", "/srv/b/api.token", false},
        {"max_trials", "1000", "7", true},
        {"max_model_memory", "8G", "512M", false},
        {"write_rate_per_client", "20", "2.5", false},
        {"executor", "local", "slurm", true},
        {"slurm.partition", "(none)", "gpu", true},
    };
    ck_assert_uint_eq(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(ch[i].key, want[i].key);   /* in the table's order */
        ck_assert_str_eq(ch[i].was, want[i].was);
        ck_assert_str_eq(ch[i].now, want[i].now);
        ck_assert_int_eq(ch[i].fixed, want[i].fixed);
    }
    dconfig_changes_free(ch, n);

    /* the keys that cannot change go back to the running values; the rest stay new */
    dconfig_keep_fixed(&b, &a);
    ck_assert_str_eq(b.spool, "/srv/a");
    ck_assert_str_eq(b.listen, "127.0.0.1:8080");
    ck_assert_int_eq(b.executor, DCONFIG_EXEC_LOCAL);
    ck_assert_ptr_null(b.slurm.partition);
    ck_assert_int_eq(b.max_trials, 1000);
    ck_assert_int_eq(b.max_jobs, 3);
    ck_assert_uint_eq(b.n_data_dirs, 2);
    ck_assert_uint_eq(b.max_model_memory, (size_t)512 << 20);
    n = dconfig_diff(&a, &b, &ch);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(!ch[i].fixed, "%s still differs", ch[i].key);
    ck_assert_ptr_nonnull(find_change(ch, n, "max_jobs"));
    ck_assert_ptr_null(find_change(ch, n, "spool"));
    dconfig_changes_free(ch, n);
    dconfig_free(&a);
    dconfig_free(&b);
    diag_free(&errs);
}
END_TEST

/* The SIGHUP paragraph of traind.yaml(5) names every key of the table: the
 * ones a reload applies before "cannot change while the daemon runs", the
 * fixed ones after it ("the slurm keys" standing for slurm.*).  A key added
 * to the table without a word in the man page fails here. */
static bool man_names(const char *text, const char *key)
{
    char dotted[128];
    const char *word = key;
    if (strncmp(key, "slurm.", 6) == 0)
        word = "slurm";
    /* roff writes keys as ".B key", ".BR key ," or ".RB ( key ," */
    const char *forms[] = {"B %s\n", "BR %s ", "RB ( %s ", "BR %s\n", "RB ( %s\n"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(dotted, sizeof dotted, forms[i], word);
        if (strstr(text, dotted))
            return true;
    }
    return false;
}

START_TEST(sighup_keys_documented)
{
    char *man = tl_read("man/traind.yaml.5", NULL);
    if (!man) {
        tl_skip("sighup_keys_documented: man/traind.yaml.5 not found (run from the repository root)");
        return;
    }
    char *start = strstr(man, ".B SIGHUP\n");
    ck_assert_msg(start, "traind.yaml(5) has no SIGHUP paragraph");
    char *end = strstr(start, "\n.PP");
    ck_assert_ptr_nonnull(end);
    *end = '\0';
    char *fixed = strstr(start, "cannot change while the daemon runs");
    ck_assert_msg(fixed, "traind.yaml(5)'s SIGHUP paragraph does not say which keys cannot change");
    /* the fixed keys are named in the sentence that ends with those words */
    char *fixed_from = fixed;
    while (fixed_from > start && strncmp(fixed_from, "\n.PP", 4) != 0 && strncmp(fixed_from, "). ", 3) != 0 &&
           strncmp(fixed_from, ").\n", 3) != 0)
        fixed_from--;
    ck_assert_msg(fixed_from > start, "cannot find where the fixed keys' sentence begins");
    char *reloaded = xstrndup(start, (size_t)(fixed_from - start));
    char *fixed_part = xstrndup(fixed_from, (size_t)(fixed - fixed_from));
    for (size_t i = 0; i < dconfig_n_keys(); i++) {
        const char *k = dconfig_key_name(i);
        if (dconfig_key_reloads(i))
            ck_assert_msg(man_names(reloaded, k), "traind.yaml(5) does not list %s among the keys SIGHUP reloads", k);
        else
            ck_assert_msg(man_names(fixed_part, k), "traind.yaml(5) does not list %s among the keys SIGHUP keeps", k);
    }
    free(reloaded);
    free(fixed_part);
    free(man);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dconfig");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, every_key);
    tcase_add_test(tc, empty_and_comment_only_files_are_defaults);
    tcase_add_test(tc, null_value_keeps_default);
    tcase_add_test(tc, unknown_key_with_line_and_hint);
    tcase_add_test(tc, bad_values_all_reported);
    tcase_add_test(tc, data_dirs_forms);
    tcase_add_test(tc, disk_and_host_keys);
    tcase_add_test(tc, not_a_mapping_and_broken_yaml);
    tcase_add_test(tc, listen_forms);
    tcase_add_test(tc, load_file_and_missing_file);
    tcase_add_test(tc, example_config_is_valid);
    tcase_add_test(tc, limit_keys);
    tcase_add_test(tc, limit_keys_bad_values);
    tcase_add_test(tc, parse_size);
    tcase_add_test(tc, edit_distance);
    tcase_add_test(tc, executor_keys);
    tcase_add_test(tc, error_wording_is_the_run_configs);
    tcase_add_test(tc, reload_diff_and_fixed_keys);
    tcase_add_test(tc, sighup_keys_documented);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed = tl_run_suite(suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

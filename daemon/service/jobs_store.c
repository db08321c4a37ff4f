/*
 * jobs_store — the table on disk: status.json written atomically on the
 * thread pool (and who waits for it), jobs/ read back at start-up
 * (jobs_load: status.json, or a job rebuilt from its config.yaml; stale
 * temp files and empty directories removed; an ended job from its
 * <spool>/jobs.index entry, checked against its status.json once traind
 * serves, and each ended job's entry appended once its status.json is
 * written), a
 * compacted job's config read back, and the tail of a job's worker.log.
 */
#include "jobs_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/intake.h"
#include "traind/forkfile.h"
#include "traind/json.h"
#include "traind/log.h"
#include "traind/util.h"
#include "traind/spool.h"
#include "traind/yamltree.h"

/* ---------------------------------------------------------- persistence */

typedef struct write_req {
    uv_work_t work;
    job *j;
    char *path;
    char *data;
    size_t len;
    int rc;
    unsigned long seq;               /* j->writes_started when it began */
    jei_rec *rec;                    /* an ended job: its jobs.index record, once the file is down */
    /* errors_on_disk: data has no "errors"; they are put in here, on the
     * pool (never a rejected job's 70 KB of errors built on the loop's
     * heap, among the summaries it keeps) */
    bool splice;
    const char *errors;              /* j->errors_pending (the job frees it once written), or NULL: the
                                      * file's own errors */
    char *summary;                   /* the job's summary: when neither can be had */
    char *whole;                     /* data with the errors put in (made on the pool), or NULL */
    size_t block_len;                /* the request and its texts: one block (write_block) */
} write_req;

/* A write's request with its path and texts, in one block outside the
 * heap (mmap) where it can: it lives until the pool has written the file,
 * and a burst (a thousand rejected files taken at once) has a thousand of
 * them in flight; on the heap they were freed among the summaries the
 * loop keeps of those jobs meanwhile, which kept their pages (some
 * 2 KiB of RSS per job).  malloc when mmap fails. */
static write_req *write_block(const char *path, const char *data, size_t len, const char *summary)
{
    size_t pl = strlen(path) + 1, sl = summary ? strlen(summary) + 1 : 0;
    size_t total = sizeof(write_req) + pl + len + 1 + sl;
    size_t mapped = (total + 4095) & ~(size_t)4095;
    void *p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    write_req *r;
    if (p == MAP_FAILED) {
        r = xmalloc(total);
        mapped = 0;
    } else {
        r = p;
    }
    memset(r, 0, sizeof *r);
    r->block_len = mapped;
    char *c = (char *)(r + 1);
    r->path = memcpy(c, path, pl);
    c += pl;
    r->data = memcpy(c, data, len + 1);
    r->len = len;
    c += len + 1;
    r->summary = summary ? memcpy(c, summary, sl) : NULL;
    return r;
}

static void write_block_free(write_req *r)
{
    free(r->whole);
    if (r->block_len)
        munmap(r, r->block_len);
    else
        free(r);
}

/* The errors array of the status.json in dir as JSON text, or NULL. */
static char *errors_text_from_dir(const char *dir)
{
    cJSON *e = errors_from_dir(dir);
    char *text = e ? json_print_exact(e) : NULL;
    cJSON_Delete(e);
    return text;
}

/* data, an object's JSON text, with "errors": errors put in before its
 * closing brace (new). */
static char *with_errors(const char *data, size_t len, const char *errors, size_t *out_len)
{
    size_t end = len;
    while (end > 0 && data[end - 1] != '}')
        end--;
    if (end == 0)
        return NULL;
    end--;   /* at the '}' */
    size_t k = end;
    while (k > 0 && (data[k - 1] == ' ' || data[k - 1] == '\n' || data[k - 1] == '\t'))
        k--;
    bool empty = k > 0 && data[k - 1] == '{';
    size_t el = strlen(errors);
    char *out = xmalloc(len + el + 16);
    size_t n = 0;
    memcpy(out, data, k);
    n = k;
    n += (size_t)sprintf(out + n, "%s\"errors\":", empty ? "" : ",");
    memcpy(out + n, errors, el);
    n += el;
    memcpy(out + n, data + end, len - end);
    n += len - end;
    out[n] = '\0';
    *out_len = n;
    return out;
}

static jei_rec *ended_record(const job *j);

static void write_work(uv_work_t *w)
{
    write_req *r = w->data;
    if (r->splice) {
        char *own = r->errors ? NULL : errors_text_from_dir(r->j->dir);
        const char *errors = r->errors ? r->errors : own ? own : r->summary;
        size_t len = 0;
        r->whole = with_errors(r->data, r->len, errors, &len);
        free(own);
        if (r->whole) {
            r->data = r->whole;
            r->len = len;
        }
    }
    r->rc = write_file_atomic(r->path, r->data, r->len, 0644);
    struct stat st;   /* the record names the file just written (the job's writes are one at a time) */
    if (r->rec && (r->rc < 0 || lstat(r->path, &st) < 0)) {
        free(r->rec);
        r->rec = NULL;
    } else if (r->rec) {
        jei_rec_set_stat(r->rec, &st);
    }
}

static void start_write(job *j);

static void write_done(uv_work_t *w, int status)
{
    write_req *r = w->data;
    job *j = r->j;
    job_table *t = j->t;
    t->pending_work--;
    j->write_inflight = false;
    if (r->rc < 0) {
        if (!j->write_error_logged)
            log_error("job %s: cannot write %s: %s (retrying every %.0f s; the file on disk keeps "
                      "its previous content)", j->id, r->path, strerror(-r->rc), JOBS_STATUS_INTERVAL_S);
        j->write_error_logged = true;
        /* Retried from the tick (not here: that would spin on a full
         * disk); at shutdown the last attempt stands. */
        j->write_failed = !t->shutting_down;
    } else {
        if (j->write_error_logged)
            log_info("job %s: %s written again", j->id, r->path);
        j->write_error_logged = false;
        j->write_failed = false;
    }
    if (r->rec)
        jei_writer_append(t->eidx, r->rec);
    if (r->rc == 0 && r->errors && r->errors == j->errors_pending) {
        free(j->errors_pending);   /* in status.json now: read from there when asked */
        j->errors_pending = NULL;
    }
    durable_wait_wake(&j->waiters, r->seq, r->rc);
    write_block_free(r);
    (void)status;
    if (j->dirty)
        start_write(j);
    jobs_check_shutdown_done(t);
}

static void start_write(job *j)
{
    if (j->write_inflight)
        return;
    job_live_add(j);   /* the tick retries a failed write */
    bool splice = j->errors_on_disk;
    char *summary = splice ? cJSON_PrintUnformatted(j->errors) : NULL;
    cJSON *o = splice ? job_status_json(j) : job_to_json(j, 0);
    char *path = xasprintf("%s/status.json", j->dir);
    char *data = json_print_exact(o);   /* read back after a restart: exact */
    cJSON_Delete(o);
    if (!data)
        abort();
    write_req *r = write_block(path, data, strlen(data), summary);
    free(path);
    free(data);
    free(summary);
    r->work.data = r;
    r->j = j;
    j->write_failed = false;
    r->splice = splice;
    r->errors = splice ? j->errors_pending : NULL;
    r->rec = ended_record(j);
    j->dirty = false;
    j->progress_dirty = false;
    j->last_write = now_monotonic();
    r->seq = ++j->writes_started;
    int rc = uv_queue_work(j->t->loop, &r->work, write_work, write_done);
    if (rc < 0) {
        log_error("job %s: cannot queue a write: %s", j->id, uv_strerror(rc));
        free(r->rec);
        write_block_free(r);
        j->dirty = true;
        j->writes_started--;
        return;
    }
    j->write_inflight = true;
    j->t->pending_work++;
}

/* State changed: write status.json now (after a write in flight). */
void job_persist(job *j)
{
    j->dirty = true;
    start_write(j);
}

/* job_persist(j), then cb(arg, rc) once the job as it is now is on disk. */
void job_persist_then(job *j, void (*cb)(void *arg, int rc), void *arg)
{
    /* a write in flight holds an older snapshot: the next one is ours */
    durable_wait_add(&j->waiters, j->writes_started + 1, cb, arg);
    job_persist(j);
}

int jobs_log_tail(job_table *t, const char *id, size_t max_bytes, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    const job *j = job_find(t, id);
    if (!j)
        return -ENOENT;
    char *path = xasprintf("%s/worker.log", j->dir);
    struct stat pre;
    if (lstat(path, &pre) == 0 && !S_ISREG(pre.st_mode)) {   /* a device is not even opened */
        free(path);
        return -EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);   /* never waits on a FIFO */
    free(path);
    if (fd < 0) {
        if (errno != ENOENT)
            return -errno;
        *out = xstrdup("");   /* never started: an empty log */
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    size_t size = (size_t)st.st_size, want = size < max_bytes ? size : max_bytes;
    off_t from = (off_t)(size - want);
    char *buf = xmalloc(want + 1);
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, buf + got, want - got, from + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    if (from > 0) {
        /* cut at a line start and say what was left out */
        char *nl = memchr(buf, '\n', got);
        size_t skip = nl ? (size_t)(nl - buf) + 1 : 0;
        char *text = xasprintf("[... %lld earlier bytes not shown ...]\n%s", (long long)from + (long long)skip,
                               buf + skip);
        free(buf);
        *out_len = strlen(text);
        *out = text;
        return 0;
    }
    *out = buf;
    *out_len = got;
    return 0;
}

void jobs_log(void *jobs, const char *id, size_t max_bytes, api_done done, void *arg)
{
    char *text;
    size_t len;
    int r = jobs_log_tail(jobs, id, max_bytes, &text, &len);
    if (r < 0) {
        free(text);
        return done(arg, r == -ENOENT ? API_NOT_FOUND : r, NULL);
    }
    done(arg, API_OK, api_text_doc(text, len));
}

void jobs_config(void *jobs, const char *id, api_done done, void *arg)
{
    char *text;
    size_t len;
    int r = jobs_config_text(jobs, id, &text, &len);
    if (r < 0) {
        free(text);
        return done(arg, r == -ENOENT ? API_NOT_FOUND : r, NULL);
    }
    done(arg, API_OK, api_text_doc(text, len));
}

int jobs_config_text(job_table *t, const char *id, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    const job *j = job_find(t, id);
    if (!j)
        return -ENOENT;
    char *path = xasprintf("%s/config.yaml", j->dir);
    /* the file the job was made of: never a FIFO or a link planted there */
    int rc = read_file_flags(path, CFG_MAX_FILE_BYTES, O_NOFOLLOW, out, out_len);
    free(path);
    return rc == -ENOENT ? -ENODATA : rc;   /* -ENOENT says "no such job" */
}

/* The config object of a compacted job: status.json's, else (an old or
 * partial status.json) config.yaml parsed again.  NULL when neither can
 * be read.  One small read (the page cache has it, mostly). */
cJSON *config_from_disk(const job *j)
{
    return config_from_dir(j->dir, j->id);
}

cJSON *errors_from_dir(const char *dir)
{
    char *path = xasprintf("%s/status.json", dir);
    char *buf;
    size_t len;
    cJSON *errors = NULL;
    if (read_file_flags(path, STATUS_MAX_BYTES, O_NOFOLLOW, &buf, &len) == 0) {
        cJSON *o = cJSON_ParseWithLength(buf, len);
        if (cJSON_IsArray(jobs_json_item(o, "errors")))
            errors = cJSON_DetachItemFromObjectCaseSensitive(o, "errors");
        cJSON_Delete(o);
        free(buf);
    }
    free(path);
    return errors;
}

/* Thread-safe: touches only the files (jobs_fill_deferred runs on the pool). */
cJSON *config_from_dir(const char *dir, const char *id)
{
    char *path = xasprintf("%s/status.json", dir);
    char *buf;
    size_t len;
    cJSON *config = NULL;
    if (read_file_flags(path, STATUS_MAX_BYTES, O_NOFOLLOW, &buf, &len) == 0) {
        cJSON *o = cJSON_ParseWithLength(buf, len);
        if (cJSON_IsObject(jobs_json_item(o, "config")))
            config = cJSON_DetachItemFromObjectCaseSensitive(o, "config");
        cJSON_Delete(o);
        free(buf);
    }
    free(path);
    if (config)
        return config;
    path = xasprintf("%s/config.yaml", dir);
    if (read_file_flags(path, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &buf, &len) == 0) {
        run_config cfg;
        diag_list_t errs = DIAG_LIST_INIT;
        cfg_parse_opts po = {.default_name = id};
        if (cfg_parse(buf, len, &po, &cfg, &errs) == 0) {
            config = cfg_to_json(&cfg);
            cfg_free(&cfg);
        }
        diag_free(&errs);
        free(buf);
    }
    free(path);
    return config;
}

/* The leaf keys of a YAML mapping as dotted paths, in file order; a
 * sequence (model.hidden) is one leaf. */
static void yaml_keys(const ynode *n, const char *prefix, cJSON *out)
{
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i]->value ? n->keys[i]->value : "";
        char *path = prefix ? xasprintf("%s.%s", prefix, k) : xstrdup(k);
        if (n->items[i]->kind == YNODE_MAP && n->items[i]->n)
            yaml_keys(n->items[i], path, out);
        else
            cJSON_AddItemToArray(out, cJSON_CreateString(path));
        free(path);
    }
}

/* Thread-safe (the pool): the keys dir/config.yaml sets, or NULL when it
 * cannot be read or parsed (a rejected job's may not). */
cJSON *config_keys_from_dir(const char *dir)
{
    char *path = xasprintf("%s/config.yaml", dir), *buf;
    size_t len;
    cJSON *keys = NULL;
    if (read_file_flags(path, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &buf, &len) == 0) {
        diag_list_t errs = DIAG_LIST_INIT;
        ynode *root = ytree_parse(buf, len, &errs);
        if (root && root->kind == YNODE_MAP) {
            keys = cJSON_CreateArray();
            yaml_keys(root, NULL, keys);
        }
        ytree_free(root);
        diag_free(&errs);
        free(buf);
    }
    free(path);
    return keys;
}

/* A job that will run again, from a status.json written before it held
 * tokens_per_step: what follows from its config (ranks, tokens per step;
 * traind/intake.h) is taken from config.yaml as its intake took it.  One that no longer validates (a data dir gone) keeps what its
 * status.json says; its training process reports the problem. */
static void retake_config(job *j)
{
    char *path = xasprintf("%s/config.yaml", j->dir);
    char *buf;
    size_t len;
    if (read_file_flags(path, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &buf, &len) == 0) {
        run_config cfg;
        char *data_path = NULL;
        diag_list_t errs = DIAG_LIST_INIT;
        intake_limits lim = {j->t->data_dirs, j->t->n_data_dirs, j->t->max_model_bytes};
        if (intake_validate(buf, len, j->id, &lim, &cfg, &data_path, &errs) == 0) {
            long total = j->total_steps;
            job_take_config(j, &cfg, NULL);
            if (total > 0)
                j->total_steps = total;
            cfg_free(&cfg);
        }
        free(data_path);
        diag_free(&errs);
        free(buf);
    }
    free(path);
}

/* No usable status.json: rebuild the job from its config.yaml. */
static int rebuild(job_table *t, job *j, const char *why)
{
    char *path = xasprintf("%s/config.yaml", j->dir);
    char *buf;
    size_t len;
    int rc = read_file_flags(path, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &buf, &len);
    struct stat st;
    double mtime = lstat(path, &st) == 0 ? (double)st.st_mtim.tv_sec : now_unix();
    free(path);
    if (rc == -ENOENT)
        return -1;   /* nothing was ever submitted here */
    j->submitted_at = mtime;
    if (rc < 0) {
        j->name = xstrdup(j->id);
        job_add_error(j, "cannot read config.yaml: %s", file_error_text(rc));
        job_set_ended(j, JOB_FAILED);
    } else {
        run_config cfg;
        char *data_path = NULL;
        diag_list_t errs = DIAG_LIST_INIT;
        intake_limits lim = {t->data_dirs, t->n_data_dirs, t->max_model_bytes};
        bool valid = intake_validate(buf, len, j->id, &lim, &cfg, &data_path, &errs) == 0;
        j->name = xstrdup(valid ? cfg.name : j->id);
        job_set_state(j, JOB_QUEUED);
        job_take_config(j, valid ? &cfg : NULL, &errs);
        if (valid)
            cfg_free(&cfg);
        free(data_path);
        diag_free(&errs);
        free(buf);
    }
    log_warn("job %s: %s; rebuilt from config.yaml as %s", j->id, why, job_state_name(j->state));
    return 0;
}

/* The Idempotency-Key a job was POSTed with (jobs/<id>/idempotency.key). */
static void load_idem_key(job *j)
{
    char *p = xasprintf("%s/" JOBS_IDEM_KEY_FILE, j->dir);
    char *buf;
    size_t len;
    if (read_file_flags(p, JOB_IDEM_TEXT_MAX, O_NOFOLLOW, &buf, &len) == 0) {
        if (strlen(buf) != len || !job_idem_load(j, buf))
            log_warn("job %s: %s is not a key; ignored", j->id, JOBS_IDEM_KEY_FILE);
        free(buf);
    }
    free(p);
}

/* A fork's parent and step (fork.json, forkfile.h); an unreadable one is
 * told (its training process fails on it too). */
static void load_fork_info(job *j)
{
    forkfile f;
    int rc = forkfile_read(j->dir, &f);
    if (rc == -ENOENT)
        return;
    if (rc < 0) {
        log_warn("job %s: its " FORKFILE_NAME " is not valid; shown as no fork", j->id);
        return;
    }
    j->parent = xstrdup(f.parent);
    j->forked_at = f.at_step;
}

/* A key saved by a submit that died before its config.yaml: no job came of
 * it (nothing was answered), so the directory is as good as empty. */
/* A trial's experiment and values (trial.json); an invalid one is ignored. */
static void load_trial_info(job *j)
{
    char *p = xasprintf("%s/" JOBS_TRIAL_FILE, j->dir);
    char *buf;
    size_t len;
    if (read_file_flags(p, 1 << 16, O_NOFOLLOW, &buf, &len) == 0) {
        cJSON *o = cJSON_ParseWithLength(buf, len);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "experiment");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "params");
        if (cJSON_IsString(e) && spool_id_valid(e->valuestring) && cJSON_IsObject(v)) {
            j->experiment = xstrdup(e->valuestring);
            j->params = cJSON_Duplicate(v, 1);
        }
        cJSON_Delete(o);
        free(buf);
    }
    free(p);
}

static void drop_lone_key(const char *dir)
{
    char *c = xasprintf("%s/config.yaml", dir), *k = xasprintf("%s/" JOBS_IDEM_KEY_FILE, dir);
    struct stat st;
    if (lstat(c, &st) < 0 && errno == ENOENT) {
        unlink(k);
        forkfile_remove(dir);   /* a fork's links and fork.json, written before config.yaml */
        char *tr = xasprintf("%s/" JOBS_TRIAL_FILE, dir);
        unlink(tr);
        free(tr);
    }
    free(c);
    free(k);
}

/* A job that will run: its files must be its own — a FIFO, device or
 * symlink planted as one of them fails the job (the training process would
 * wait on it or follow it). */
static void check_job_files(job *j)
{
    static const char *const names[] = {"config.yaml", "metrics.jsonl", "checkpoint.bin", "worker.log"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = xasprintf("%s/%s", j->dir, names[i]);
        struct stat st;
        bool bad = lstat(p, &st) == 0 && !S_ISREG(st.st_mode);
        free(p);
        if (!bad)
            continue;
        log_error("job %s: jobs/%s/%s is not a regular file (a %s); the job fails", j->id, j->id, names[i],
                  S_ISLNK(st.st_mode) ? "symbolic link" : S_ISFIFO(st.st_mode) ? "FIFO" : "device or socket");
        job_add_error(j, "%s is not a regular file; refused", names[i]);
        job_set_ended(j, JOB_FAILED);
        j->dirty = true;
        return;
    }
}

/* Submission order.  A job rebuilt from config.yaml alone has no seq (0):
 * its status.json was never written, so it is the newest of all; it
 * queues behind every job that has one, not ahead of them. */
static int cmp_seq(const void *a, const void *b)
{
    const job *x = *(job *const *)a, *y = *(job *const *)b;
    if ((x->seq == 0) != (y->seq == 0))
        return x->seq == 0 ? 1 : -1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->submitted_at != y->submitted_at)
        return x->submitted_at < y->submitted_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Removes NAME.tmp.PID files of the daemon's own atomic writes (status.json,
 * config.yaml) left by a process that was killed while writing them. */
/* What one pass over a job directory found (so that loading a job costs
 * one readdir, not a probe per file). */
typedef struct dir_scan {
    bool opened;
    size_t entries;                  /* besides . and .., after the stale temp files went */
    bool has_key, has_config;
} dir_scan;

static void scan_job_dir(const char *dir, dir_scan *ds)
{
    memset(ds, 0, sizeof *ds);
    DIR *d = opendir(dir);
    if (!d)
        return;
    ds->opened = true;
    /* trainer_state.json is the worker's, but a job that ended as its
     * worker was killed writing it is never resumed to sweep it */
    static const char *const prefixes[] = {"status.json.tmp.", "config.yaml.tmp.", JOBS_IDEM_KEY_FILE ".tmp.",
                                           "trainer_state.json.tmp.", FORKFILE_NAME ".tmp.", JOBS_TRIAL_FILE ".tmp.",
                                           "." FORKFILE_CKPT ".tmp.", "." FORKFILE_METRICS ".tmp."};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        ds->entries++;
        if (strcmp(e->d_name, JOBS_IDEM_KEY_FILE) == 0)
            ds->has_key = true;
        else if (strcmp(e->d_name, "config.yaml") == 0)
            ds->has_config = true;
        if (stale_tmp_name(e->d_name, prefixes, sizeof prefixes / sizeof prefixes[0], false) &&
            unlinkat(dirfd(d), e->d_name, 0) == 0)
            ds->entries--;
    }
    closedir(d);
}

/* read_file_flags(jobs/<id>/status.json, O_NOFOLLOW) for the start-up
 * loop, in fewer system calls: relative to the jobs directory (a shorter
 * path walk), without an access-time update (O_NOATIME where the daemon
 * owns the file: a first read after a write would journal one per job),
 * and one read for a file that does not grow (a short read of a regular
 * file is its end).  The same checks: no symlink followed, no device or
 * FIFO opened, the size bounded.  The same errors. */
static int read_status_at(int dfd, const char *id, char **out, size_t *out_len, jei_stat *ident)
{
    *out = NULL;
    *out_len = 0;
    char rel[NAME_MAX + 16];
    snprintf(rel, sizeof rel, "%s/status.json", id);
    struct stat st;
    if (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return S_ISDIR(st.st_mode) ? -EISDIR : S_ISLNK(st.st_mode) ? -ELOOP : -EINVAL;
    int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    int fd = openat(dfd, rel, flags | O_NOATIME);
    if (fd < 0 && errno == EPERM)
        fd = openat(dfd, rel, flags);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return S_ISREG(st.st_mode) ? -e : S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    }
    if ((size_t)st.st_size > STATUS_MAX_BYTES) {
        close(fd);
        return -EFBIG;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return -e;
        }
        len += (size_t)r;
        if (r == 0 || len < cap)
            break;   /* the end */
        if (cap > STATUS_MAX_BYTES) {
            free(buf);
            close(fd);
            return -EFBIG;
        }
        cap *= 2;   /* it grew meanwhile */
        buf = xrealloc(buf, cap + 1);
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    jei_stat_of(&st, ident);
    return 0;
}

/* ------------------------------------ jobs.index (job_ended_index.h) */

/* An ended job's jobs.index record (the identity of its status.json is put
 * in once that is written), or NULL for a job that has not ended. */
static jei_rec *ended_record(const job *j)
{
    if (!job_state_ended(j->state) || j->cancel_requested || j->state == JOB_STOPPED)
        return NULL;   /* a stopped trial is not final (a promotion resumes it): status.json, with its stop_reason */
    cJSON *pc = j->params ? cJSON_Duplicate(j->params, 1) : NULL;
    char *params = pc ? json_print_exact(pc) : NULL, *errors = cJSON_PrintUnformatted(j->errors);
    cJSON_Delete(pc);
    char *key = j->idem_key ? job_idem_text(j->idem_key, j->idem_fp) : NULL;
    jei_entry e = {
        .id = j->id, .name = j->name ? j->name : j->id, .idem_key = key, .parent = j->parent,
        .experiment = j->experiment, .sched_id = j->sched_id[0] ? j->sched_id : NULL, .params_json = params,
        .errors_json = errors, .state = (int)j->state, .has_eval = j->has_eval,
        .has_config = j->config || j->config_on_disk, .restarts = j->restarts, .crashes = j->crashes,
        .ranks = j->ranks, .seq = j->seq, .step = j->pt.step, .total_steps = j->total_steps,
        .checkpoint_step = j->checkpoint_step, .forked_at = j->forked_at, .lr = j->pt.lr, .loss = j->pt.loss,
        .loss_avg = j->pt.loss_avg, .grad_norm = j->pt.grad_norm, .eval_loss = j->pt.eval_loss,
        .tokens_per_step = j->tokens_per_step, .submitted_at = j->submitted_at, .started_at = j->started_at,
        .finished_at = j->finished_at,
    };
    jei_rec *r = (params || !j->params) && errors ? jei_encode(&e) : NULL;
    free(key);
    free(params);
    free(errors);
    return r;
}

/* Loads an ended job from its jobs.index entry, with no system call: an
 * ended job's status.json is not written again (a write appends a newer
 * entry), so restarting costs a readdir of jobs/ and the index, not a stat
 * per job.  Whether each entry still describes its status.json is checked
 * after start-up, off the loop (check_index_*, below).  false (j untouched)
 * for an entry that is not plausible or says "read the files" (inode 0):
 * the job is read the slow way. */
static bool job_from_index(job *j, const jei_entry *e)
{
    if (e->state < 0 || e->state >= JOB_NSTATES || !job_state_ended((job_state)e->state) ||
        e->state == JOB_STOPPED || e->st.ino == 0 ||
        strcmp(e->id, j->id) != 0 ||
        (e->sched_id && strlen(e->sched_id) > EXEC_SCHED_ID_MAX) || e->seq > (1ULL << 53))
        return false;
    cJSON *errors = e->errors_json ? cJSON_Parse(e->errors_json) : cJSON_CreateArray();
    cJSON *params = e->params_json ? cJSON_Parse(e->params_json) : NULL;
    if (!cJSON_IsArray(errors) || (e->params_json && !cJSON_IsObject(params))) {
        cJSON_Delete(errors);
        cJSON_Delete(params);
        return false;
    }
    job_set_state(j, (job_state)e->state);
    j->name = xstrdup(e->name);
    j->seq = (unsigned long)e->seq;
    j->pt.step = (long)e->step;
    j->total_steps = (long)e->total_steps;
    j->checkpoint_step = e->checkpoint_step >= 0 ? (long)e->checkpoint_step : -1;
    j->pt.lr = e->lr;
    j->pt.loss = e->loss;
    j->pt.loss_avg = e->loss_avg;
    j->pt.grad_norm = e->grad_norm;
    j->pt.eval_loss = e->eval_loss;
    j->has_eval = e->has_eval;
    j->tokens_per_step = e->tokens_per_step;
    j->ranks = e->ranks >= 1 ? e->ranks : 1;
    j->restarts = e->restarts;
    j->crashes = e->crashes;
    j->submitted_at = e->submitted_at;
    j->started_at = e->started_at;
    j->finished_at = e->finished_at;
    cJSON_Delete(j->errors);
    j->errors = errors;
    job_compact_errors(j);   /* now: the heap never holds every rejected job's errors */
    j->params = params;
    if (e->parent) {
        j->parent = xstrdup(e->parent);
        j->forked_at = (long)e->forked_at;
    }
    j->experiment = e->experiment ? xstrdup(e->experiment) : NULL;
    if (e->idem_key && !job_idem_load(j, e->idem_key))
        log_warn("job %s: its jobs.index record holds no valid key; the key is ignored", j->id);
    if (e->sched_id)
        snprintf(j->sched_id, sizeof j->sched_id, "%s", e->sched_id);
    j->config_on_disk = e->has_config;
    j->hist_on_disk = true;
    return true;
}

/* The record of a job loaded at start-up whose status.json is st. */
static jei_rec *loaded_record(const job *j, const jei_stat *st)
{
    jei_rec *r = ended_record(j);
    if (r) {
        struct stat s;
        memset(&s, 0, sizeof s);
        s.st_ino = (ino_t)st->ino;
        s.st_size = (off_t)st->size;
        s.st_mtim.tv_sec = (time_t)(st->mtime_ns / 1000000000);
        s.st_mtim.tv_nsec = (long)(st->mtime_ns % 1000000000);
        s.st_ctim.tv_sec = (time_t)(st->ctime_ns / 1000000000);
        s.st_ctim.tv_nsec = (long)(st->ctime_ns % 1000000000);
        jei_rec_set_stat(r, &s);
    }
    return r;
}

/* -------------- after start-up: jobs.index's entries against status.json */

/* The jobs loaded from jobs.index, each with the identity of the
 * status.json its entry was taken from, are stat'ed on the thread pool,
 * CHECK_CHUNK at a time (other work of the pool runs in between), once
 * traind serves.  The few whose status.json changed behind the index's back
 * (edited by hand, or a crash between a write and its entry) are read again
 * on the loop: status.json stays the truth, a moment after start-up, and a
 * restart costs what changed, not a stat per job (traind(8), FILES). */
#define CHECK_CHUNK 4096

typedef struct check_item {
    job *j;
    jei_stat st;                     /* of the entry */
    bool stale;
} check_item;

typedef struct index_check {
    uv_work_t work;
    job_table *t;
    int dfd;                         /* jobs/ */
    check_item *items;
    size_t n, cap, from, to;
    size_t stale, reread;
    double t0;
} index_check;

static void check_work(uv_work_t *w)
{
    index_check *c = w->data;
    for (size_t i = c->from; i < c->to; i++) {
        check_item *it = &c->items[i];
        char rel[NAME_MAX + 16];
        snprintf(rel, sizeof rel, "%s/status.json", it->j->id);   /* an id never changes: read off the loop */
        struct stat st;
        jei_stat now;
        if (fstatat(c->dfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
            it->stale = true;
            continue;
        }
        jei_stat_of(&st, &now);
        it->stale = !jei_stat_same(&now, &it->st);
    }
}

/* What an ended job shows, taken from src (a job loaded from its
 * status.json); what comes from its other files (key, fork, trial) stays. */
static void take_summary(job *j, job *src)
{
    job_set_state(j, src->state);
    char *name = j->name;
    j->name = src->name;
    src->name = name;
    cJSON *errors = j->errors;
    j->errors = src->errors;
    src->errors = errors;
    j->pt = src->pt;
    j->total_steps = src->total_steps;
    j->checkpoint_step = src->checkpoint_step;
    j->restarts = src->restarts;
    j->crashes = src->crashes;
    j->ranks = src->ranks;
    j->has_eval = src->has_eval;
    j->tokens_per_step = src->tokens_per_step;
    j->submitted_at = src->submitted_at;
    j->started_at = src->started_at;
    j->finished_at = src->finished_at;
    j->config_on_disk = j->config_on_disk || src->config;
    if (src->sched_id[0])
        memcpy(j->sched_id, src->sched_id, sizeof j->sched_id);
}

/* j's status.json is not what its entry describes: read it again.  An
 * ended state at the same seq (the same place in the table) is taken now,
 * and a new entry appended.  Anything else (a state that is not final, a
 * file gone or corrupt) is left to the next start: j keeps the entry's
 * summary meanwhile, and the entry appended says "read the files" (inode
 * 0, refused by job_from_index).  true when j changed. */
static bool reread_stale(index_check *c, job *j)
{
    char *buf = NULL;
    size_t len = 0;
    jei_stat ident;
    int rc = read_status_at(c->dfd, j->id, &buf, &len, &ident);
    cJSON *o = rc == 0 ? cJSON_ParseWithLength(buf, len) : NULL;
    free(buf);
    job *src = job_alloc(c->t, j->id);
    const char *why = rc < 0 ? strerror(-rc) : !o || job_load_status(src, o) != 0 ? "is corrupt" :
                      !job_state_ended(src->state) || src->state == JOB_STOPPED ? "no longer says it ended" :
                      src->seq != j->seq ? "has another seq" : NULL;
    cJSON_Delete(o);
    jei_rec *r;
    if (!why) {
        take_summary(j, src);
        r = loaded_record(j, &ident);
        log_info("job %s: status.json changed since its " JEI_FILE " entry; read again (%s)", j->id,
                 job_state_name(j->state));
    } else {
        r = ended_record(j);
        struct stat none;
        memset(&none, 0, sizeof none);
        if (r)
            jei_rec_set_stat(r, &none);
        log_warn("job %s: status.json changed since its " JEI_FILE " entry and %s%s; the job shows the entry's "
                 "summary until traind restarts, which reads its files", j->id, rc < 0 ? "cannot be read: " : "",
                 why);
    }
    job_free(src);
    if (r)
        jei_writer_append(c->t->eidx, r);
    return !why;
}

static void check_done(uv_work_t *w, int status);

static int check_queue(index_check *c)
{
    c->to = c->from + CHECK_CHUNK < c->n ? c->from + CHECK_CHUNK : c->n;
    return uv_queue_work(c->t->loop, &c->work, check_work, check_done);
}

static void check_done(uv_work_t *w, int status)
{
    index_check *c = w->data;
    job_table *t = c->t;
    bool changed = false;
    for (size_t i = c->from; i < c->to && status == 0; i++) {
        check_item *it = &c->items[i];
        job *j = it->j;
        /* written by this traind since: that write appended its own entry */
        if (!it->stale || j->writes_started > 0 || j->write_inflight || !job_state_ended(j->state))
            continue;
        c->stale++;
        if (reread_stale(c, j)) {
            c->reread++;
            changed = true;
        }
    }
    if (status == 0)
        c->from = c->to;
    if (changed)
        jobs_changed(t);
    if (status == 0 && c->from < c->n && !t->shutting_down && check_queue(c) == 0)
        return;
    log_info(JEI_FILE ": %zu of %zu entries checked against their status.json in %.2f s, %zu changed since, %zu "
             "read again", c->from, c->n, now_monotonic() - c->t0, c->stale, c->reread);
    close(c->dfd);
    free(c->items);
    free(c);
    jobs_work_end(t);
}

/* Starts the check of c's entries (takes c). */
static void check_start(job_table *t, index_check *c)
{
    c->t = t;
    c->work.data = c;
    c->t0 = now_monotonic();
    c->dfd = c->n ? open(t->jobs_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    int rc = c->dfd < 0 ? -1 : check_queue(c);
    if (rc != 0) {
        if (c->n)
            log_warn(JEI_FILE ": cannot check its entries against their status.json: %s",
                     c->dfd < 0 ? strerror(errno) : uv_strerror(rc));
        if (c->dfd >= 0)
            close(c->dfd);
        free(c->items);
        free(c);
        return;
    }
    jobs_work_begin(t);
}

static void check_add(index_check *c, job *j, const jei_stat *st)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->items = xrealloc(c->items, c->cap * sizeof *c->items);
    }
    c->items[c->n++] = (check_item){j, *st, false};
}

/* One start-up read of jobs/: what jobs.index gave, and what is to be
 * written back to it once every job is in the table. */
typedef struct load_run {
    job_table *t;
    jei_table *idx;
    jei_load_info ii;
    bool rewrite;                    /* jobs.index is written again whole */
    jei_rec **recs;                  /* ended jobs' records, for the index */
    size_t n_recs, cap_recs;
    size_t from_index;
    int loaded;
    index_check *check;              /* the entries taken, checked once traind serves */
} load_run;

/* Reads jobs.index and decides whether it is rewritten or appended to. */
static void load_begin(load_run *lr, job_table *t)
{
    memset(lr, 0, sizeof *lr);
    lr->t = t;
    /* ended jobs come from jobs.index where it describes their status.json;
     * an index that is missing, damaged or mostly dead records is written
     * again whole, else the ended jobs read the slow way are appended */
    lr->idx = jei_load(t->spool, &lr->ii);
    if (lr->ii.bad)
        log_warn("%s/" JEI_FILE ": %s; those jobs are read from their status.json and the index is rewritten",
                 t->spool, lr->ii.why);
    lr->rewrite = lr->ii.missing || lr->ii.bad || lr->ii.records > 2 * jei_count(lr->idx) + 1000;
    lr->check = xcalloc(1, sizeof *lr->check);
}

/* A job for a directory entry of jobs/, or NULL: not a job's name, already
 * in the table, or not a directory. */
static job *job_for_entry(job_table *t, const struct dirent *e)
{
    if (!spool_id_valid(e->d_name) || job_find(t, e->d_name))
        return NULL;
    job *j = job_alloc(t, e->d_name);
    struct stat st;
    /* readdir's type spares a stat per job (lstat where it cannot tell) */
    if (e->d_type != DT_DIR && (lstat(j->dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
        if (S_ISLNK(st.st_mode))   /* its files would be read and written wherever it points */
            log_warn("jobs/%s: a symbolic link, not a job directory; ignored (never followed)", e->d_name);
        job_free(j);
        return NULL;
    }
    return j;
}

/* Cleans up j's directory unless status.json (o) says it ended; true when
 * the directory was empty and is removed. */
static bool tidy_job_dir(job *j, const cJSON *o, dir_scan *ds)
{
    /* A job that ended (its last status.json written whole) has no
     * writer's temp files to clean up: its directory is not scanned.
     * The rest are: stale temp files, a lone key, an empty directory. */
    const cJSON *st0 = jobs_json_item(o, "state");
    int s0 = cJSON_IsString(st0) ? job_state_from_name(st0->valuestring) : -1;
    bool ended0 = s0 >= 0 && job_state_ended((job_state)s0) && !cJSON_IsTrue(jobs_json_item(o, "cancel_requested"));
    memset(ds, 0, sizeof *ds);
    if (ended0)
        return false;
    scan_job_dir(j->dir, ds);
    if (ds->has_key && !ds->has_config) {
        drop_lone_key(j->dir);
        ds->entries--;
        ds->has_key = false;
    }
    if ((!ds->opened || ds->entries == 0) && rmdir(j->dir) == 0) {
        /* an id claimed by a daemon that died before the file arrived
         * (the submission was never acknowledged) */
        log_info("jobs/%s: empty (a submission that never arrived); removed", j->id);
        return true;
    }
    return false;
}

/* A job cancelled (202) before traind stopped: it stays cancelled, at its
 * last checkpoint. */
static void settle_cancel(job *j)
{
    job_set_ended(j, JOB_CANCELLED);
    j->cancel_requested = false;
    log_info("job %s: its cancel was requested before traind stopped; cancelled at step %ld", j->id, j->pt.step);
    j->dirty = true;
}

/* A Slurm job's id from its directory's slurm_job_id, and whether to adopt it. */
static void read_sched_id(job *j)
{
    /* the id in the job directory is the one to trust: it is written
     * as soon as sbatch answers, status.json a moment later */
    char *ipath = xasprintf("%s/slurm_job_id", j->dir), *ibuf;
    size_t ilen;
    if (read_file(ipath, 64, &ibuf, &ilen) == 0) {
        size_t n = strspn(ibuf, "0123456789");
        if (n > 0 && n <= EXEC_SCHED_ID_MAX) {
            memcpy(j->sched_id, ibuf, n);
            j->sched_id[n] = '\0';
        }
        free(ibuf);
    } else {
        j->sched_id[0] = '\0';   /* its Slurm job ended (the file goes with it) */
    }
    free(ipath);
    j->adopt = j->sched_id[0] != '\0';
}

/* A job read from its files, made ready to join the table (why: it was
 * rebuilt from config.yaml, or NULL). */
static void settle_loaded(job_table *t, job *j, const char *why, const dir_scan *ds)
{
    if (!j->config && j->state != JOB_REJECTED)
        j->config = config_from_disk(j);   /* an old or partial status.json: from config.yaml */
    if (!why && !job_state_ended(j->state) && !j->facts_known)
        retake_config(j);
    load_fork_info(j);
    load_trial_info(j);
    if (ds->has_key || !ds->opened)
        load_idem_key(j);   /* after those two: an old key's scope follows from them */
    if (!job_state_ended(j->state))
        check_job_files(j);
    if (j->cancel_requested)
        settle_cancel(j);
    if (t->slurm && !job_state_ended(j->state))
        read_sched_id(j);
    if (j->state == JOB_RUNNING && j->adopt) {
        log_info("job %s: was running in Slurm job %s when traind stopped; adopting it", j->id, j->sched_id);
    } else if (j->state == JOB_RUNNING) {
        job_set_state(j, JOB_QUEUED);   /* resumes from its checkpoint; start_job counts the restart */
        log_info("job %s: was running at step %ld when traind stopped; queued to resume", j->id, j->pt.step);
    }
    if (why || j->state == JOB_QUEUED)
        j->dirty = true;
    /* an ended job's history is read from metrics.jsonl when asked for
     * (one rebuilt from its files is read now: it may fill in the
     * progress) */
    if (job_state_ended(j->state) && !why)
        j->hist_on_disk = true;
    job_compact(j);   /* now, not after the loop: the heap never holds every config */
}

/* j read from its status.json, or rebuilt from its config.yaml; NULL when
 * the job is dropped (j freed). */
static job *load_from_files(job_table *t, int dfd, job *j, jei_stat *ident)
{
    char *buf = NULL;
    size_t len;
    int rc = read_status_at(dfd, j->id, &buf, &len, ident);
    cJSON *o = rc == 0 ? cJSON_ParseWithLength(buf, len) : NULL;
    dir_scan ds;
    if (tidy_job_dir(j, o, &ds)) {
        cJSON_Delete(o);
        free(buf);
        job_free(j);
        return NULL;
    }
    const char *why = NULL;
    if (rc == 0) {
        if (job_load_status(j, o) != 0) {
            why = "status.json is corrupt";
            /* start from a clean slate */
            job *fresh = job_alloc(t, j->id);
            job_free(j);
            j = fresh;
        }
        cJSON_Delete(o);
        free(buf);
    } else {
        why = rc == -ENOENT ? "status.json is missing" :
              rc == -EINVAL || rc == -ELOOP ? "status.json is not a regular file" : "status.json cannot be read";
    }
    if (why && rebuild(t, j, why) != 0) {
        log_warn("jobs/%s: no config.yaml and no status.json; ignored", j->id);
        job_free(j);
        return NULL;
    }
    settle_loaded(t, j, why, &ds);
    return j;
}

/* Keeps j's jobs.index record when the index is to get one (an ended job
 * read from its files, or any ended job when the index is rewritten). */
static void keep_record(load_run *lr, job *j, const jei_stat *ident, bool fast)
{
    if (!job_state_ended(j->state) || j->dirty || !(lr->rewrite || !fast))
        return;
    jei_rec *r = loaded_record(j, ident);
    if (!r)
        return;
    if (lr->n_recs == lr->cap_recs) {
        lr->cap_recs = lr->cap_recs ? 2 * lr->cap_recs : 256;
        lr->recs = xrealloc(lr->recs, lr->cap_recs * sizeof *lr->recs);
    }
    lr->recs[lr->n_recs++] = r;
}

/* Reads one entry of jobs/ into the table: from its jobs.index entry, else
 * from its files. */
static void load_entry(load_run *lr, int dfd, const struct dirent *e)
{
    job *j = job_for_entry(lr->t, e);
    if (!j)
        return;
    const jei_entry *ie = jei_find(lr->idx, e->d_name);
    jei_stat ident;
    memset(&ident, 0, sizeof ident);
    bool fast = ie && job_from_index(j, ie);
    if (fast) {
        ident = ie->st;
        check_add(lr->check, j, &ident);
        lr->from_index++;
    } else if (!(j = load_from_files(lr->t, dfd, j, &ident))) {
        return;
    }
    keep_record(lr, j, &ident, fast);
    jobs_append(lr->t, j);
    lr->loaded++;
}

/* Puts the table in submission order and numbers the positions and seqs. */
static void order_jobs(job_table *t)
{
    if (t->n > 1)
        qsort(t->jobs, t->n, sizeof *t->jobs, cmp_seq);
    for (size_t i = 0; i < t->n; i++)
        t->jobs[i]->pos = i;
    for (size_t i = 0; i < t->n; i++) {
        job *j = t->jobs[i];
        if (j->seq >= t->next_seq)
            t->next_seq = j->seq + 1;
    }
}

/* A loaded job's seq (one rebuilt: the next), history, and status.json
 * written where it changed. */
static void finish_job(job_table *t, job *j)
{
    if (j->seq == 0)
        j->seq = t->next_seq++;
    if (!j->hist_on_disk) {
        char *mpath = xasprintf("%s/metrics.jsonl", j->dir);
        char *fpath = xasprintf("%s/" FORKFILE_METRICS, j->dir);
        /* a fork that has not trained yet: its parent's points (job_load_history) */
        if (access(mpath, F_OK) == 0 || (j->parent && access(fpath, F_OK) == 0))
            job_load_history(j);
        free(fpath);
        free(mpath);
    }
    if (j->dirty)
        start_write(j);
    else
        job_compact(j);
}

/* Writes jobs.index back (whole, or the new records appended), frees the
 * index read, and starts the check of its entries. */
static void load_end(load_run *lr)
{
    job_table *t = lr->t;
    log_info("jobs: %d loaded, %zu of them from " JEI_FILE " (%zu entries, %zu records), %d read from their files",
             lr->loaded, lr->from_index, jei_count(lr->idx), lr->ii.records, lr->loaded - (int)lr->from_index);
    jei_table_free(lr->idx);
    if (lr->rewrite) {
        jei_writer_rewrite(t->eidx, lr->recs, lr->n_recs);
    } else {
        for (size_t i = 0; i < lr->n_recs; i++)
            jei_writer_append(t->eidx, lr->recs[i]);
        free(lr->recs);
    }
    check_start(t, lr->check);
}

int jobs_load(job_table *t)
{
    DIR *d = opendir(t->jobs_dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    load_run lr;
    load_begin(&lr, t);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        load_entry(&lr, dirfd(d), e);
    closedir(d);
    order_jobs(t);
    for (size_t i = 0; i < t->n; i++)
        finish_job(t, t->jobs[i]);
    t->queue_hint = 0;
    load_end(&lr);
    malloc_trim(0);   /* the parse trees of every status.json are gone: give their pages back */
    jobs_changed(t);
    return lr.loaded;
}

/*
 * forkfile — a fork job's own files (fork.json and the links to its
 * parent's checkpoint and metrics) and the listing of kept checkpoints.
 * See traind/forkfile.h for why hard links: the parent's rolling
 * retention may delete step-S.bin while the fork still waits in the queue.
 */
#include "traind/forkfile.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/ckpt.h"
#include "traind/json.h"
#include "traind/util.h"

/* link(2) under a temporary name, then rename: whole or absent. */
static int link_into(const char *src, const char *dir, const char *name)
{
    char *dst = xasprintf("%s/%s", dir, name);
    int rc = link_file_atomic(src, dst);
    free(dst);
    return rc;
}

static bool regular(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int forkfile_create(const char *job_dir, const char *parent_id, const char *parent_dir, long at_step,
                    int from_latest)
{
    char *ckpt = from_latest ? xasprintf("%s/checkpoint.bin", parent_dir)
                             : xasprintf("%s/checkpoints/step-%ld.bin", parent_dir, at_step);
    char *metrics = xasprintf("%s/metrics.jsonl", parent_dir);
    int rc = regular(ckpt) ? link_into(ckpt, job_dir, FORKFILE_CKPT) : -ENOENT;
    bool have_metrics = rc == 0 && regular(metrics);
    if (have_metrics)
        rc = link_into(metrics, job_dir, FORKFILE_METRICS);
    if (rc == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "parent", parent_id);
        cJSON_AddNumberToObject(o, "at_step", (double)at_step);
        cJSON_AddStringToObject(o, "checkpoint", FORKFILE_CKPT);
        cJSON_AddStringToObject(o, "metrics", have_metrics ? FORKFILE_METRICS : "");
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        char *path = xasprintf("%s/" FORKFILE_NAME, job_dir);
        rc = text ? write_file_atomic(path, text, strlen(text), 0644) : -ENOMEM;
        free(path);
        free(text);
    }
    if (rc == 0)
        rc = fsync_parent_dir(job_dir);   /* the links' entries too */
    if (rc < 0)
        forkfile_remove(job_dir);
    free(ckpt);
    free(metrics);
    return rc;
}

void forkfile_remove(const char *job_dir)
{
    static const char *const names[] = {FORKFILE_NAME, FORKFILE_CKPT, FORKFILE_METRICS};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = xasprintf("%s/%s", job_dir, names[i]);
        unlink(p);
        free(p);
    }
}

/* A plain file name: [A-Za-z0-9._-], not starting with '.', no '/'. */
static bool plain_name(const char *s)
{
    if (!s[0] || s[0] == '.' || strlen(s) >= 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!(( *p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

int forkfile_read(const char *job_dir, forkfile *out)
{
    memset(out, 0, sizeof *out);
    char *path = xasprintf("%s/" FORKFILE_NAME, job_dir);
    char *text;
    size_t len;
    int rc = read_file_flags(path, FORKFILE_MAX_BYTES, O_NOFOLLOW, &text, &len);
    free(path);
    if (rc < 0)
        return rc == -ENOENT ? -ENOENT : -EINVAL;
    cJSON *o = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "parent");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "at_step");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "checkpoint");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metrics");
    rc = -EINVAL;
    if (cJSON_IsString(p) && spool_id_valid(p->valuestring) && cJSON_IsNumber(s) && s->valuedouble >= 0 &&
        s->valuedouble <= 1e15 && s->valuedouble == (double)(long)s->valuedouble && cJSON_IsString(c) &&
        plain_name(c->valuestring) && cJSON_IsString(m) && (!m->valuestring[0] || plain_name(m->valuestring))) {
        snprintf(out->parent, sizeof out->parent, "%s", p->valuestring);
        out->at_step = (long)s->valuedouble;
        snprintf(out->checkpoint, sizeof out->checkpoint, "%s", c->valuestring);
        snprintf(out->metrics, sizeof out->metrics, "%s", m->valuestring);
        rc = 0;
    }
    cJSON_Delete(o);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    const ckpt_entry *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return x->latest - y->latest;
}

static void push(ckpt_entry **v, size_t *n, size_t *cap, long step, const struct stat *st, int latest)
{
    if (*n == *cap)
        *v = xrealloc(*v, (*cap = *cap ? 2 * *cap : 16) * sizeof **v);
    (*v)[(*n)++] = (ckpt_entry){.step = step,
                                .bytes = (long long)st->st_size,
                                .mtime = (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9,
                                .latest = latest};
}

int ckpt_list(const char *job_dir, long latest_step, size_t max, ckpt_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    char *dir = xasprintf("%s/checkpoints", job_dir);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            long s;
            if (!ckpt_kept_name_step(e->d_name, &s))
                continue;
            struct stat st;
            if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
                continue;
            push(out, n, &cap, s, &st, 0);
        }
        closedir(d);
    }
    free(dir);
    if (latest_step >= 0) {
        char *p = xasprintf("%s/checkpoint.bin", job_dir);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            push(out, n, &cap, latest_step, &st, 1);
        free(p);
    }
    if (*n > 1)
        qsort(*out, *n, sizeof **out, cmp_entry);
    if (max > 0 && *n > max) {
        memmove(*out, *out + (*n - max), max * sizeof **out);
        *n = max;
    }
    return 0;
}

int ckpt_kept(const char *job_dir, long step)
{
    char *p = xasprintf("%s/checkpoints/step-%ld.bin", job_dir, step);
    bool ok = regular(p);
    free(p);
    return ok;
}

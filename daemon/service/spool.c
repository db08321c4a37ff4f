/* spool — the job directory, ids, token, intake of incoming/.  See traind/spool.h. */
#include "traind/spool.h"
#include "traind/sweep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "traind/json.h"
#include "traind/log.h"
#include "traind/util.h"

int spool_claim_id(const char *jobs_dir, const char *stem, char *id_out)
{
    char base[SPOOL_ID_MAX + 1];
    spool_sanitize_id(stem, base);
    bool remade = false;
    for (unsigned k = 1; k < 100000; k++) {
        spool_id_candidate(base, k, id_out);
        char *dir = xasprintf("%s/%s", jobs_dir, id_out);
        int rc = mkdir(dir, 0755);
        int e = errno;
        free(dir);
        if (rc == 0)
            return 0;
        if (e == ENOENT && !remade) {
            /* jobs/ itself was removed: make it again (not the spool above it) */
            if (mkdir(jobs_dir, 0755) == 0)
                log_warn("%s was missing; created it again", jobs_dir);
            else if (errno != EEXIST)
                return -e;
            remade = true;
            k--;   /* the same candidate once more */
            continue;
        }
        if (e != EEXIST)
            return -e;
    }
    return -EEXIST;
}

/* ------------------------------------------------------- layout and token */

int spool_prepare(const char *spool_dir)
{
    const char *subs[] = {"", "/incoming", "/jobs"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char *p = xasprintf("%s%s", spool_dir, subs[i]);
        int rc = mkdir_p(p, 0755);
        free(p);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int spool_token_load_or_create(const char *path, char *out, size_t outlen)
{
    char *buf;
    size_t len;
    int rc = read_file(path, 4096, &buf, &len);
    if (rc == 0) {
        size_t a = 0, b = len;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\n' || buf[a] == '\r'))
            a++;
        while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\n' || buf[b - 1] == '\r'))
            b--;
        if (b > a) {
            if (b - a >= outlen || memchr(buf + a, '\n', b - a)) {
                free(buf);
                return -EINVAL;
            }
            memcpy(out, buf + a, b - a);
            out[b - a] = '\0';
            free(buf);
            struct stat st;
            if (stat(path, &st) == 0 && (st.st_mode & 077))
                log_warn("%s is readable by other users (mode %03o); chmod 600 it", path,
                         (unsigned)(st.st_mode & 0777));
            return 0;
        }
        free(buf);   /* empty: make a new one */
    } else if (rc != -ENOENT) {
        return rc;
    }
    if (outlen < SPOOL_TOKEN_HEX + 1)
        return -EINVAL;
    unsigned char raw[32];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)r;
    }
    static const char hex[] = "0123456789abcdef";
    char text[SPOOL_TOKEN_HEX + 2];
    for (size_t i = 0; i < sizeof raw; i++) {
        text[2 * i] = hex[raw[i] >> 4];
        text[2 * i + 1] = hex[raw[i] & 15];
    }
    text[SPOOL_TOKEN_HEX] = '\n';
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        mkdir_p(dir, 0755);
    }
    free(dir);
    rc = write_file_atomic(path, text, SPOOL_TOKEN_HEX + 1, 0600);
    if (rc < 0)
        return rc;
    memcpy(out, text, SPOOL_TOKEN_HEX);
    out[SPOOL_TOKEN_HEX] = '\0';
    return 1;
}

/* ------------------------------------------------------------- validation */

void spool_intake_free(spool_intake *it)
{
    if (!it)
        return;
    free(it->source);
    free(it->stem);
    free(it->yaml);
    if (it->valid)
        cfg_free(&it->cfg);
    diag_free(&it->errs);
    free(it->errors_json);
    free(it);
}

void spool_intake_errors_text(spool_intake *it)
{
    if (it->valid || it->errors_json)
        return;
    cJSON *a = json_diag_list(&it->errs);
    it->errors_json = json_print_exact(a);
    cJSON_Delete(a);
}

/* ----------------------------------------------------------------- intake */

/* Files intake could not take (not a regular file, cannot be moved), so
 * that the rescan every 2 s does not log them again and again.  A file is
 * tried again once it changes (its ctime).  Only scans touch it, and only
 * one scan runs at a time. */
typedef struct memo_ent {
    char *name;
    ino_t ino;
    struct timespec ctime;
} memo_ent;

typedef struct memo {
    memo_ent *e;
    size_t n, cap;
} memo;

static bool memo_has(const memo *m, const char *name, const struct stat *st)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->e[i].name, name) && m->e[i].ino == st->st_ino &&
            m->e[i].ctime.tv_sec == st->st_ctim.tv_sec && m->e[i].ctime.tv_nsec == st->st_ctim.tv_nsec)
            return true;
    return false;
}

static void memo_add(memo *m, const char *name, const struct stat *st)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 8;
        m->e = xrealloc(m->e, m->cap * sizeof *m->e);
    }
    m->e[m->n++] = (memo_ent){xstrdup(name), st->st_ino, st->st_ctim};
}

static void memo_free(memo *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->e[i].name);
    free(m->e);
    memset(m, 0, sizeof *m);
}

typedef struct scan_req {
    uv_work_t work;
    spool *s;
    char *spool_dir;
    char **dirs;            /* snapshot of the data dirs */
    size_t n_dirs;
    size_t max_model_bytes;
    spool_intake **items;   /* results */
    size_t n_items, cap_items;
    bool deferred;          /* a file was left for later (still being written) */
    int dir_err;            /* errno when incoming/ could not be read, else 0 */
    bool recreated;         /* incoming/ was missing and this scan made it again */
    bool capped;            /* room applies: files are taken against s->budget */
    size_t held;            /* files left in incoming/ for want of room */
    memo *memo;             /* the spool's, lent to this scan */
} scan_req;

struct spool {
    uv_loop_t *loop;
    char *dir, *incoming, *jobs;
    char **dirs;
    size_t n_dirs;
    size_t max_model_bytes;     /* intake_validate's memory cap */
    spool_intake_cb cb;
    void *ctx;
    uv_fs_event_t watch;
    bool watching;
    int dir_err;            /* the last scan's trouble with incoming/ (logged once) */
    uv_timer_t rescan;      /* the periodic safety net */
    uv_timer_t soon;        /* a scan asked for by an event or a deferred file */
    bool scanning, again, stopped;
    long (*room)(void *);   /* max_queued_jobs: see spool_set_room */
    void *room_ctx;
    bool holding;           /* the last scan held files back */
    _Atomic long budget;    /* room left while a capped scan runs, shared with spool_reserve */
    memo memo;
    bool nospace_logged;    /* a full disk kept files in incoming/ (said once); scans only */
    int open_handles;
    void (*on_closed)(void *);
    void *closed_arg;
};

/* Nobody has the file open for writing?  1 yes, 0 no, -1 cannot tell. */
static int write_closed(int fd)
{
    if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
        fcntl(fd, F_SETLEASE, F_UNLCK);
        return 1;
    }
    return errno == EAGAIN ? 0 : -1;
}

/* Writes buf as dst and unlinks name in incoming/ (where the spool spans
 * file systems and rename(2) cannot move it): the bytes arrive unchanged
 * and the name leaves incoming/. */
static int copy_out(int incfd, const char *name, const char *dst, const char *buf, size_t len)
{
    int rc = write_file_atomic(dst, buf, len, 0644);
    if (rc < 0)
        return rc;
    return unlinkat(incfd, name, 0) < 0 ? -errno : 0;
}

/* Whether what is at path now is the very file st describes (not a FIFO
 * or a symlink swapped in by name between our checks and the rename). */
static bool same_file(const char *path, const struct stat *st)
{
    struct stat now;
    return lstat(path, &now) == 0 && S_ISREG(now.st_mode) && now.st_ino == st->st_ino &&
           now.st_dev == st->st_dev;
}

/* Refuses name (logged once: the memo keeps it until it changes). */
static void refuse(scan_req *r, const char *name, const struct stat *st, const char *why)
{
    log_warn("incoming/%s: %s; left alone", name, why);
    memo_add(r->memo, name, st);
}

/* Reads the config through fd (a regular file already checked): what is
 * validated is exactly what was opened.  0, -EFBIG or -errno. */
static int read_fd(int fd, char **out, size_t *out_len)
{
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > (size_t)CFG_MAX_FILE_BYTES + 1) {
                free(buf);
                return -EFBIG;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = pread(fd, buf + len, cap - len - 1, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > CFG_MAX_FILE_BYTES) {
        free(buf);
        return -EFBIG;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* Opens incoming/NAME for intake: a regular file with one link, complete
 * (nobody has it open for writing and it has not changed for
 * SPOOL_SETTLE_S).  Returns the fd, or -1 (refused and logged, or
 * deferred: r->deferred). */
static int open_candidate(scan_req *r, int incfd, const char *name, struct stat *st)
{
    /* What the name is, first: a device is never even opened (opening some
     * has effects), a symlink never followed. */
    struct stat lst;
    if (fstatat(incfd, name, &lst, AT_SYMLINK_NOFOLLOW) < 0)
        return -1;   /* gone meanwhile */
    if (S_ISLNK(lst.st_mode) || S_ISCHR(lst.st_mode) || S_ISBLK(lst.st_mode) || S_ISSOCK(lst.st_mode)) {
        refuse(r, name, &lst, S_ISLNK(lst.st_mode) ? "a symbolic link, not a regular file" : "not a regular file");
        return -1;
    }
    /* O_NOFOLLOW | O_NONBLOCK: a symlink swapped in meanwhile is refused, a
     * FIFO never waited on; fstat then says what was opened. */
    int fd = openat(incfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            refuse(r, name, &lst, "a symbolic link, not a regular file");
        else if (e != ENOENT)
            refuse(r, name, &lst, strerror(e));
        return -1;
    }
    const char *why = NULL;
    if (fstat(fd, st) < 0)
        why = strerror(errno);
    else if (!S_ISREG(st->st_mode))
        why = S_ISFIFO(st->st_mode) ? "a FIFO, not a regular file" : "not a regular file";
    else if (st->st_nlink > 1)
        /* a hard link may be anyone's file (/etc/shadow): taking it would
         * move it away and echo its content in errors */
        why = "has other hard links; only a file of its own is taken (write it, then mv it here)";
    if (why) {
        refuse(r, name, st, why);
        close(fd);
        return -1;
    }
    int closed = write_closed(fd);
    double age = now_unix() - ((double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec * 1e-9);
    /* Complete only once it is closed for writing and quiet: a file
     * appended to line by line is closed between lines. */
    if (closed == 0 || (age >= 0 && age < SPOOL_SETTLE_S)) {
        r->deferred = true;     /* still being written: a later scan takes it */
        close(fd);
        return -1;
    }
    return fd;
}

/* Moves incoming/NAME (open as fd, described by st, content buf) to a new
 * jobs/<id>/config.yaml.  0, or -1 (logged; nothing left behind in jobs/). */
/* A full disk is not the file's fault: it stays in incoming/ and is taken
 * again by a later scan once there is room (logged once while it lasts),
 * rather than be set aside until it changes.  Whether rc was that. */
static bool no_space(scan_req *r, const char *name, int rc)
{
    if (rc != -ENOSPC && rc != -EDQUOT)
        return false;
    if (!r->s->nospace_logged)
        log_warn("incoming/%s: cannot be taken now: %s; files wait in incoming/ until there is room", name,
                 strerror(-rc));
    r->s->nospace_logged = true;
    r->deferred = true;
    return true;
}

static int move_in(scan_req *r, int incfd, const char *name, const char *stem, const struct stat *st,
                   const char *buf, size_t len, spool_intake *it)
{
    char *jobs = xasprintf("%s/jobs", r->spool_dir);
    int rc = spool_claim_id(jobs, stem, it->id);
    if (rc < 0) {
        if (!no_space(r, name, rc))
            log_error("incoming/%s: cannot create a job directory in %s: %s", name, jobs, strerror(-rc));
        free(jobs);
        return -1;
    }
    char *jd = xasprintf("%s/%s", jobs, it->id);
    char *dst = xasprintf("%s/config.yaml", jd);
    rc = renameat(incfd, name, AT_FDCWD, dst) == 0 ? 0 : -errno;
    if (rc == -EXDEV && buf)
        rc = copy_out(incfd, name, dst, buf, len);
    else if (rc == 0 && !same_file(dst, st)) {
        /* swapped by name after our checks: refuse what arrived */
        log_warn("incoming/%s: replaced while it was being taken (not the file checked); refused", name);
        rc = -ESTALE;
    }
    if (rc < 0) {
        unlink(dst);
        rmdir(jd);
        if (rc != -ENOENT && rc != -ESTALE && !no_space(r, name, rc)) {
            log_error("incoming/%s: cannot move it to jobs/%s/config.yaml: %s (left in incoming/ until it changes)",
                      name, it->id, strerror(-rc));
            memo_add(r->memo, name, st);
        }
    } else {
        r->s->nospace_logged = false;
        /* The rename is durable once both directories are. */
        fsync_parent_dir(dst);
        fsync(incfd);
    }
    free(dst);
    free(jd);
    free(jobs);
    return rc < 0 ? -1 : 0;
}

static void push_item(scan_req *r, spool_intake *it)
{
    if (r->n_items == r->cap_items) {
        r->cap_items = r->cap_items ? 2 * r->cap_items : 8;
        r->items = xrealloc(r->items, r->cap_items * sizeof *r->items);
    }
    r->items[r->n_items++] = it;
}

/* Takes one file (thread pool): checked and read through one fd, validated,
 * then moved into a new job directory.  room: whether the queue has room;
 * without it only an invalid config is taken (it becomes a rejected job,
 * which waits for nothing).  Returns whether a valid config was held back
 * for want of room. */
static bool take_file(scan_req *r, int incfd, const char *name, const char *stem, bool room)
{
    struct stat st;
    int fd = open_candidate(r, incfd, name, &st);
    if (fd < 0)
        return false;
    spool_intake *it = xcalloc(1, sizeof *it);
    char *buf = NULL;
    size_t len = 0;
    int rc = read_fd(fd, &buf, &len);
    close(fd);
    if (rc == 0 && sweep_is_experiment(buf, len)) {
        /* an experiment: not moved into a job directory (its trials will be
         * jobs); the loop hands it to the experiment table */
        it->experiment = true;
        it->yaml = buf;
        it->yaml_len = len;
        it->source = xstrdup(name);
        it->stem = xstrdup(stem);
        snprintf(it->idem_key, sizeof it->idem_key, "incoming:%.80s:%llu:%lld.%09ld:%lld", name,
                 (unsigned long long)st.st_ino, (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec,
                 (long long)st.st_size);
        push_item(r, it);
        return false;
    }
    if (rc == -EFBIG)
        diag_add(&it->errs, "", 0, 0, "the config is larger than %u bytes", CFG_MAX_FILE_BYTES);
    else if (rc < 0)
        diag_add(&it->errs, "", 0, 0, "cannot read the config: %s", strerror(-rc));
    else {
        char *data_path = NULL;
        intake_limits lim = {r->dirs, r->n_dirs, r->max_model_bytes};
        if (intake_validate(buf, len, stem, &lim, &it->cfg, &data_path, &it->errs) == 0)
            it->valid = true;
        free(data_path);
    }
    if (it->valid && !room) {
        free(buf);
        spool_intake_free(it);
        return true;
    }
    if (move_in(r, incfd, name, stem, &st, buf, len, it) < 0) {
        free(buf);
        spool_intake_free(it);
        return false;
    }
    free(buf);
    it->source = xstrdup(name);
    it->stem = xstrdup(stem);
    it->submitted_at = now_unix();
    spool_intake_errors_text(it);
    push_item(r, it);
    return false;
}

/* Names are taken in a stable order (oldest mtime first, then by name) so a
 * batch of files dropped together is queued in a predictable order. */
typedef struct cand {
    char *name;
    double mtime;
    bool known_bad;
    bool ignored;           /* not NAME.yaml / NAME.yml */
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Opens incoming/ itself, never through a symlink (files would be moved
 * out of wherever it points).  The fd, or -errno. */
static int open_incoming(scan_req *r, const char *inc)
{
    int fd = open(inc, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        /* Someone removed incoming/: make it again (only it, not the spool),
         * so that files dropped there later are still taken. */
        if (mkdir(inc, 0755) == 0)
            r->recreated = true;
        fd = open(inc, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        struct stat st;
        /* O_NOFOLLOW on a symlink to a directory says ENOTDIR */
        if (lstat(inc, &st) == 0 && S_ISLNK(st.st_mode))
            e = ELOOP;
        return -(e ? e : EIO);
    }
    return fd;
}

/* A name in incoming/ that is not a submission: said once (until it
 * changes), unless it is one the convention hides (.name, .tmp, .part). */
static void note_ignored(scan_req *r, int incfd, const char *name)
{
    if (spool_name_is_temp(name))
        return;
    struct stat st;
    if (fstatat(incfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || memo_has(r->memo, name, &st))
        return;
    refuse(r, name, &st, "ignored: only NAME.yaml and NAME.yml files are taken");
}

static void scan_work(uv_work_t *w)
{
    scan_req *r = w->data;
    char *inc = xasprintf("%s/incoming", r->spool_dir);
    int incfd = open_incoming(r, inc);
    DIR *d = incfd >= 0 ? fdopendir(dup(incfd)) : NULL;
    if (!d) {
        r->dir_err = incfd < 0 ? -incfd : errno ? errno : EIO;   /* reported once by scan_done */
        if (incfd >= 0)
            close(incfd);
        free(inc);
        return;
    }
    cand *c = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        bool ignored = !spool_intake_name(e->d_name, NULL, 0);
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (ignored && (spool_name_is_temp(e->d_name)))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            c = xrealloc(c, cap * sizeof *c);
        }
        c[n].name = xstrdup(e->d_name);
        c[n].mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec * 1e-9;
        c[n].known_bad = memo_has(r->memo, e->d_name, &st);
        c[n].ignored = ignored;
        n++;
    }
    closedir(d);
    /* forget refused files that are gone or changed */
    size_t keep = 0;
    for (size_t i = 0; i < r->memo->n; i++) {
        bool still = false;
        for (size_t k = 0; k < n && !still; k++)
            still = c[k].known_bad && !strcmp(c[k].name, r->memo->e[i].name);
        if (still)
            r->memo->e[keep++] = r->memo->e[i];
        else
            free(r->memo->e[i].name);
    }
    r->memo->n = keep;
    if (n > 1)
        qsort(c, n, sizeof *c, cand_cmp);
    for (size_t i = 0; i < n; i++) {
        char stem[256];
        if (c[i].known_bad) {
            ;
        } else if (c[i].ignored) {
            note_ignored(r, incfd, c[i].name);
        } else {
            spool_intake_name(c[i].name, stem, sizeof stem);
            /* a place in the queue, if there is one; without, only an
             * invalid config is taken (see take_file) */
            bool room = !r->capped || atomic_fetch_sub(&r->s->budget, 1) > 0;
            if (!room && r->capped)
                atomic_fetch_add(&r->s->budget, 1);
            size_t before = r->n_items;
            bool held = take_file(r, incfd, c[i].name, stem, room);
            if (held)
                r->held++;   /* no room in the queue: stays in incoming/, untouched */
            if (r->capped && room && (r->n_items == before || !r->items[r->n_items - 1]->valid))
                atomic_fetch_add(&r->s->budget, 1);   /* not queued after all */
        }
        free(c[i].name);
    }
    free(c);
    close(incfd);
    free(inc);
}

static void maybe_free(spool *s);
static void start_scan(spool *s);
static void on_soon(uv_timer_t *t);

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status);

/* (Re)starts watching incoming/: after it was made again, the old inotify
 * watch is dead with the directory it watched. */
static void watch_incoming(spool *s)
{
    if (s->watching)
        uv_fs_event_stop(&s->watch);
    int rc = uv_fs_event_start(&s->watch, on_fs_event, s->incoming, 0);
    s->watching = rc == 0;
    if (rc < 0)
        log_warn("cannot watch %s: %s (new files are found by the rescan every %d s)", s->incoming,
                 uv_strerror(rc), SPOOL_RESCAN_MS / 1000);
}

static void scan_done(uv_work_t *w, int status)
{
    scan_req *r = w->data;
    spool *s = r->s;
    if (r->dir_err) {
        if (r->dir_err != s->dir_err)
            log_error("cannot read %s: %s; nothing is taken from it until it can be read (tried every %d s)",
                      s->incoming, r->dir_err == ELOOP ? "it is a symbolic link (never followed)" :
                      strerror(r->dir_err), SPOOL_RESCAN_MS / 1000);
        s->dir_err = r->dir_err;
    } else {
        if (r->recreated)
            log_warn("%s was removed; created it again", s->incoming);
        else if (s->dir_err)
            log_info("%s can be read again; intake resumes", s->incoming);
        if ((r->recreated || s->dir_err) && !s->stopped)
            watch_incoming(s);
        s->dir_err = 0;
    }
    for (size_t i = 0; i < r->n_items; i++) {
        spool_intake *it = r->items[i];
        if (it->experiment)
            log_info("incoming/%s: an experiment; submitting it", it->source);
        else if (it->valid)
            log_info("job %s: taken from incoming/%s", it->id, it->source);
        else
            log_warn("job %s: taken from incoming/%s: rejected (%zu problem%s)", it->id, it->source,
                     it->errs.n, it->errs.n == 1 ? "" : "s");
        s->cb(s->ctx, it);
    }
    free(r->items);
    if (r->held && !s->holding)
        log_warn("the job queue is full: %zu file%s left in incoming/ until there is room (max_queued_jobs)",
                 r->held, r->held == 1 ? "" : "s");
    else if (!r->held && s->holding)
        log_info("the job queue has room again: taking files from incoming/");
    s->holding = r->held > 0;
    bool deferred = r->deferred;
    free(r->spool_dir);
    strv_free(r->dirs, r->n_dirs);
    free(r);
    s->scanning = false;
    if (s->stopped) {
        maybe_free(s);
        return;
    }
    if (s->again) {
        s->again = false;
        start_scan(s);
    } else if (deferred && !uv_is_active((uv_handle_t *)&s->soon)) {
        uv_timer_start(&s->soon, on_soon, 250, 0);
    }
    (void)status;
}

static void start_scan(spool *s)
{
    if (s->stopped)
        return;
    if (s->scanning) {
        s->again = true;
        return;
    }
    scan_req *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->work.data = r;
    r->spool_dir = xstrdup(s->dir);
    r->dirs = strv_dup(s->dirs, s->n_dirs);
    r->n_dirs = s->n_dirs;
    r->max_model_bytes = s->max_model_bytes;
    r->memo = &s->memo;
    long room = s->room ? s->room(s->room_ctx) : -1;
    r->capped = room >= 0;
    s->budget = room;
    int rc = uv_queue_work(s->loop, &r->work, scan_work, scan_done);
    if (rc < 0) {
        log_error("cannot queue a scan of incoming/: %s", uv_strerror(rc));
        free(r->spool_dir);
        strv_free(r->dirs, r->n_dirs);
        free(r);
        return;
    }
    s->scanning = true;
}

static void on_soon(uv_timer_t *t)
{
    start_scan(t->data);
}

void spool_rescan(spool *s)
{
    if (!s->stopped && !uv_is_active((uv_handle_t *)&s->soon))
        uv_timer_start(&s->soon, on_soon, 0, 0);
}

static void on_rescan(uv_timer_t *t)
{
    start_scan(t->data);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    spool *s = h->data;
    if (status < 0) {
        log_warn("watching incoming/: %s (falling back to the periodic rescan)", uv_strerror(status));
        return;
    }
    const char *base = strrchr(s->incoming, '/');
    bool self = filename && base && strcmp(filename, base + 1) == 0;   /* incoming/ itself moved or removed */
    if (filename && !self && !spool_intake_name(filename, NULL, 0))
        return;
    /* Coalesce a burst of events into one scan a moment later. */
    if (!uv_is_active((uv_handle_t *)&s->soon))
        uv_timer_start(&s->soon, on_soon, 20, 0);
    (void)events;
}

int spool_start(uv_loop_t *loop, const char *spool_dir, char *const *data_dirs, size_t n_dirs,
                spool_intake_cb cb, void *ctx, spool **out)
{
    spool *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->dir = xstrdup(spool_dir);
    s->incoming = xasprintf("%s/incoming", spool_dir);
    s->jobs = xasprintf("%s/jobs", spool_dir);
    s->dirs = strv_dup(data_dirs, n_dirs);
    s->n_dirs = n_dirs;
    s->cb = cb;
    s->ctx = ctx;
    uv_timer_init(loop, &s->rescan);
    uv_timer_init(loop, &s->soon);
    s->rescan.data = s->soon.data = s;
    s->open_handles = 2;
    uv_fs_event_init(loop, &s->watch);
    s->watch.data = s;
    s->open_handles++;
    watch_incoming(s);
    uv_timer_start(&s->rescan, on_rescan, SPOOL_RESCAN_MS, SPOOL_RESCAN_MS);
    /* The first scan on the next turn of the loop, so that the caller can
     * spool_set_room() first. */
    uv_timer_start(&s->soon, on_soon, 0, 0);
    *out = s;
    return 0;
}

void spool_set_max_model_bytes(spool *s, size_t bytes)
{
    s->max_model_bytes = bytes;
}

void spool_set_data_dirs(spool *s, char *const *data_dirs, size_t n_dirs)
{
    char **c = strv_dup(data_dirs, n_dirs);
    strv_free(s->dirs, s->n_dirs);
    s->dirs = c;
    s->n_dirs = n_dirs;
}

void spool_set_room(spool *s, long (*room)(void *ctx), void *ctx)
{
    s->room = room;
    s->room_ctx = ctx;
}

bool spool_holding(const spool *s)
{
    return s && s->holding;
}

bool spool_reserve(spool *s)
{
    if (!s || !s->scanning || !s->room)
        return true;
    if (atomic_fetch_sub(&s->budget, 1) > 0)
        return true;
    atomic_fetch_add(&s->budget, 1);
    return false;
}

static void on_handle_closed(uv_handle_t *h)
{
    spool *s = h->data;
    s->open_handles--;
    maybe_free(s);
}

static void maybe_free(spool *s)
{
    if (s->open_handles > 0 || s->scanning)
        return;
    void (*cb)(void *) = s->on_closed;
    void *arg = s->closed_arg;
    free(s->dir);
    free(s->incoming);
    free(s->jobs);
    strv_free(s->dirs, s->n_dirs);
    memo_free(&s->memo);
    free(s);
    if (cb)
        cb(arg);
}

void spool_stop(spool *s, void (*on_closed)(void *arg), void *arg)
{
    s->stopped = true;
    s->on_closed = on_closed;
    s->closed_arg = arg;
    uv_close((uv_handle_t *)&s->rescan, on_handle_closed);
    uv_close((uv_handle_t *)&s->soon, on_handle_closed);
    uv_close((uv_handle_t *)&s->watch, on_handle_closed);
}

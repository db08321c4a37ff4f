/* tl_nodes — the simulated nodes of tests/cluster/nodes.sh from C.  See tl_nodes.h. */
#include "tl_nodes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tl.h"
#include "traind/util.h"

const char *tl_nodes_script(void)
{
    const char *s = getenv("TRAIND_NODES_SH");
    return s && *s ? s : "tests/cluster/nodes.sh";
}

int tl_nodes_run(const char *dir, const char *cmd, const char *node, const char *out_path, double timeout_s)
{
    const char *argv[] = {tl_nodes_script(), cmd, dir, node, NULL};
    return tl_run(argv, out_path, timeout_s);
}

char *tl_nodes_start(char **why)
{
    char tmpl[] = "/var/tmp/traind-nodes-XXXXXX";
    if (!mkdtemp(tmpl)) {
        *why = xasprintf("cannot make a folder under /var/tmp: %s", strerror(errno));
        return NULL;
    }
    char *dir = xstrdup(tmpl), *out = xasprintf("%s.start", dir);
    int rc = access(tl_nodes_script(), X_OK) == 0 ? tl_nodes_run(dir, "start", NULL, out, 60) : -1;
    if (rc == 0) {
        unlink(out);
        free(out);
        return dir;
    }
    char *text = tl_read(out, NULL);
    char *line = text ? strstr(text, "cannot start: ") : NULL;
    if (line)
        line[strcspn(line, "\n")] = '\0';
    *why = rc == -1 && !text ? xasprintf("%s: %s", tl_nodes_script(), strerror(ENOENT))
                             : xstrdup(line ? line + 14 : "nodes.sh start failed");
    free(text);
    unlink(out);
    free(out);
    tl_nodes_stop(dir);
    free(dir);
    return NULL;
}

int tl_nodes_stop(const char *dir)
{
    int rc = tl_nodes_run(dir, "stop", NULL, NULL, 60);
    tl_nodes_rmtree(dir);
    return rc;
}

void tl_nodes_rmtree(const char *path)
{
    tl_rmtree_under(path, "/var/tmp/traind-nodes-");
}

/* The pid that holds node's namespaces (DIR/NODE.pid), or 0. */
static pid_t holder(const char *dir, const char *node)
{
    char *p = xasprintf("%s/%s.pid", dir, node), *text = tl_read(p, NULL);
    free(p);
    long v = text ? strtol(text, NULL, 10) : 0;
    free(text);
    return v > 0 && v <= INT_MAX ? (pid_t)v : 0;
}

bool tl_node_enter(const char *dir, const char *node)
{
    pid_t h = holder(dir, node);
    char cwd[PATH_MAX];
    if (!h || !getcwd(cwd, sizeof cwd))
        return false;
    static const char *const kinds[] = {"net", "uts", "mnt"};
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("/proc/%d/ns/%s", (int)h, kinds[i]);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        free(p);
        if (fd < 0)
            return false;
        int rc = setns(fd, 0);
        close(fd);
        if (rc != 0)
            return false;
    }
    return chdir(cwd) == 0;   /* entering a mount namespace leaves us at its root */
}

void tl_nodes_mpi_env(const char *dir)
{
    char *p = xasprintf("%s/mpi.env", dir), *text = tl_read(p, NULL);
    free(p);
    char *save = NULL;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        setenv(line, eq + 1, 1);
    }
    free(text);
}

/* readlink of /proc/PID/ns/net into buf; false when it cannot be read (gone, a zombie). */
static bool net_ns_of(pid_t pid, char *buf, size_t n)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/ns/net", (int)pid);
    ssize_t len = readlink(p, buf, n - 1);
    if (len <= 0)
        return false;
    buf[len] = '\0';
    return true;
}

static bool comm_starts(pid_t pid, const char *prefix)
{
    if (!prefix)
        return true;
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/comm", (int)pid);
    char *text = tl_read(p, NULL);
    bool ok = text && strncmp(text, prefix, strlen(prefix)) == 0;
    free(text);
    return ok;
}

int tl_node_procs(const char *dir, const char *node, const char *prefix, pid_t *out, int max)
{
    pid_t h = holder(dir, node);
    char want[64], ns[64];
    if (!h || !net_ns_of(h, want, sizeof want))
        return 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == h)
            continue;
        if (net_ns_of((pid_t)pid, ns, sizeof ns) && !strcmp(ns, want) && comm_starts((pid_t)pid, prefix))
            out[n++] = (pid_t)pid;
    }
    if (d)
        closedir(d);
    return n;
}

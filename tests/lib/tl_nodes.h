/*
 * tl_nodes — the two simulated nodes of tests/cluster/nodes.sh, from C: start
 * and stop them, move the calling process into one (its network, UTS and
 * mount namespaces), load Open MPI's settings for them, and find a node's
 * processes.  test_cluster uses them; see README.md, "Beyond one machine".
 */
#ifndef TRAIND_TESTS_TL_NODES_H
#define TRAIND_TESTS_TL_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* nodes.sh: $TRAIND_NODES_SH, else tests/cluster/nodes.sh (from the repository root). */
const char *tl_nodes_script(void);

/* A new shared folder /var/tmp/traind-nodes-XXXXXX (not under /tmp: each node
 * has its own) with nodes n1 and n2 started in it.  Returns the folder
 * (malloc'd), or NULL with why (malloc'd, the script's own words). */
char *tl_nodes_start(char **why);

/* nodes.sh stop DIR, then the folder removed.  Returns 0 when nothing was
 * left, else the script's exit code (its complaint on stderr). */
int tl_nodes_stop(const char *dir);

/* rm -rf of a folder under /var/tmp/traind-nodes-* (nothing else: tl_rmtree's
 * care for /tmp only); kept when TRAIND_TEST_KEEP is set. */
void tl_nodes_rmtree(const char *path);

/* nodes.sh CMD DIR [NODE], output to out_path (NULL: /dev/null), within
 * timeout_s.  Its exit code (tl_run's). */
int tl_nodes_run(const char *dir, const char *cmd, const char *node, const char *out_path, double timeout_s);

/* Moves this process (single-threaded: a check's forked process) into node:
 * its network, UTS and mount namespaces; the working folder is kept.
 * Whether it could. */
bool tl_node_enter(const char *dir, const char *node);

/* Puts DIR/mpi.env (KEY=VALUE lines: the rsh agent, Open MPI's interfaces)
 * into this process's environment. */
void tl_nodes_mpi_env(const char *dir);

/* The processes of node (its network namespace) whose name (comm) starts
 * with prefix (NULL: every one but the one that holds the namespaces); at
 * most max in out.  Their number. */
int tl_node_procs(const char *dir, const char *node, const char *prefix, pid_t *out, int max);

#endif

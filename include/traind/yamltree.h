/*
 * yamltree — a YAML document as a small tree whose every node remembers
 * where it came from (line, column), built from libyaml's event stream.
 *
 * The builder is guarded against hostile input: a byte cap, a nesting depth
 * cap, a cap on the total number of nodes (so alias expansion — "billion
 * laughs" — is stopped early), duplicate mapping keys, several documents,
 * invalid UTF-8.  Problems are reported into a diag_list_t.
 */
#ifndef TRAIND_YAMLTREE_H
#define TRAIND_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>
#include "traind/diag.h"

#define YTREE_MAX_BYTES (1u << 20)   /* 1 MiB */
#define YTREE_MAX_DEPTH 32
#define YTREE_MAX_NODES 100000

typedef enum { YNODE_SCALAR, YNODE_SEQ, YNODE_MAP } ynode_kind;

typedef struct ynode {
    ynode_kind kind;
    int line, column;            /* 1-based start mark */
    /* YNODE_SCALAR */
    char *value;                 /* NUL-terminated */
    size_t len;
    bool plain;                  /* unquoted scalar (may be a number, bool, null) */
    /* YNODE_SEQ: items[0..n); YNODE_MAP: keys[i] (scalars) -> items[i] */
    size_t n;
    struct ynode **items;
    struct ynode **keys;
} ynode;

/* Parses buf (len bytes).  Returns the root node, or NULL with at least one
 * diagnostic added.  An empty document is an error. */
ynode *ytree_parse(const char *buf, size_t len, diag_list_t *errs);
void ytree_free(ynode *node);

/* The value for key in a mapping node, or NULL. */
const ynode *ymap_get(const ynode *map, const char *key);

/* A plain scalar that YAML 1.1/1.2 would read as null ("~", "null", empty). */
bool yscalar_is_null(const ynode *n);

/* Editing, for sweeps (which build each trial's tree from the file's): nodes
 * keep the marks they are given, so errors still point into the file. */
ynode *ytree_clone(const ynode *n);
ynode *yscalar_new(const char *text, bool plain, int line, int column);
ynode *ymap_new(int line, int column);
/* Sets key to value (taking it), replacing an existing value. */
void ymap_put(ynode *map, const char *key, ynode *value);
void ymap_delete(ynode *map, const char *key);
/* Sets "section.key" (creating the section) or a top-level "key" of a
 * mapping document, taking value.  -1 (value freed) when the section is
 * there but not a mapping. */
int ytree_set_path(ynode *doc, const char *path, ynode *value);
/* The tree as a YAML document (libyaml's emitter; malloc'd), or NULL.
 * Quoted scalars are written double-quoted, plain ones plain. */
char *ytree_emit(const ynode *root);

#endif

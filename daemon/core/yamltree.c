/*
 * yamltree — a YAML document as a tree of ynodes, each remembering its start
 * mark, built from libyaml's event stream.  See traind/yamltree.h.
 *
 * Why events and not libyaml's document API: the document loader expands
 * nothing but also guards nothing — it happily builds a million-node graph
 * for a "billion laughs" file and keeps duplicate keys.  Driving the event
 * parser ourselves lets every guard act as the input streams in:
 *
 *   - the input is capped at YTREE_MAX_BYTES before libyaml sees it;
 *   - containers nest at most YTREE_MAX_DEPTH deep (an alias copy counts at
 *     the depth where it lands), so every later recursion is shallow;
 *   - an alias is expanded by deep copy, but every node made, copied or not,
 *     counts against YTREE_MAX_NODES and every scalar byte against
 *     TREE_MAX_SCALAR_BYTES, so alias bombs die after ~10^5 allocations;
 *   - a second document, a non-scalar mapping key or a duplicate key is an
 *     error (keys are checked when their mapping closes, by sorting, so a
 *     mapping with 10^5 keys costs n log n, not n^2).
 *
 * Ownership: a node is linked into its parent the moment it is created (a
 * map's value slot is NULL until its value arrives), so on any error freeing
 * the root frees everything.  Hard errors (libyaml errors, limits) stop the
 * parse; soft ones (duplicate or non-scalar keys) are collected and the parse
 * goes on so the user sees all of them; either way the result is NULL.
 */
#include "traind/yamltree.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "traind/util.h"

/* Scalar bytes the tree may hold after alias expansion (the input is 1 MiB). */
#define TREE_MAX_SCALAR_BYTES ((size_t)16 << 20)

#define TAG_PREFIX "tag:yaml.org,2002:"

/* An anchor name -> the node it names (owned by the tree, not the table). */
typedef struct anchor {
    char *name;
    ynode *node;
} anchor;

/* Open-addressing hash table of anchors; a redefinition replaces the entry. */
typedef struct anchor_table {
    anchor *slots;
    size_t cap, n;              /* cap is a power of two, or 0 */
} anchor_table;

/* One open container. */
typedef struct frame {
    ynode *node;
    size_t cap;                 /* allocated length of node->items (and keys) */
    bool want_key;              /* mapping: the next node is a key */
} frame;

typedef struct builder {
    yaml_parser_t parser;
    const char *buf;
    size_t len;
    diag_list_t *errs;
    size_t errs_before;         /* errs->n at the start: any more = failure */
    bool fatal;                 /* stop reading events */
    ynode *root;
    int documents;
    frame stack[YTREE_MAX_DEPTH];
    int depth;                  /* open containers */
    size_t n_nodes;
    size_t scalar_bytes;
    anchor_table anchors;
    int ev_line, ev_column;     /* start of the event being handled: where limits are reported */
    size_t bom;                 /* bytes of UTF-8 byte order mark skipped before buf */
} builder;

/* ---- errors ------------------------------------------------------------ */

/* The dotted path of the node being built inside the first nframes frames:
 * each frame contributes its newest child (children are linked on creation).
 * pending: the node in question is not linked yet, so in the innermost frame
 * it is the next child, not the newest. */
static void frames_path(const builder *b, int nframes, bool pending, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < nframes && used < size; i++) {
        const frame *f = &b->stack[i];
        const ynode *n = f->node;
        bool next = pending && i == nframes - 1;
        int w;
        if (n->kind == YNODE_SEQ) {
            if (n->n == 0 && !next)
                break;
            w = snprintf(out + used, size - used, "[%zu]", next ? n->n : n->n - 1);
        } else {
            if (n->n == 0 || (next && f->want_key))
                break;          /* the node is a key: the mapping's path */
            const ynode *k = n->keys[n->n - 1];
            const char *name = k && k->kind == YNODE_SCALAR && k->value ? k->value : "?";
            w = snprintf(out + used, size - used, "%s%s", used ? "." : "", name);
        }
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* Reports a problem with the node at (line, column); pending as above. */
static void __attribute__((format(printf, 5, 6)))
tree_error(builder *b, bool pending, int line, int column, const char *fmt, ...)
{
    char path[256];
    frames_path(b, b->depth, pending, path, sizeof path);
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(b->errs, path, line, column, fmt, ap);
    va_end(ap);
}

static void fatal_error_at_mark(builder *b, yaml_mark_t m, const char *msg)
{
    tree_error(b, false, (int)m.line + 1, (int)m.column + 1, "%s", msg);
    b->fatal = true;
}

/* 1-based line and column (in characters) of a byte offset into the input. */
static void offset_position(const builder *b, size_t offset, int *line, int *column)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < offset && i < b->len; i++) {
        unsigned char ch = (unsigned char)b->buf[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {   /* not a UTF-8 continuation byte */
            c++;
        }
    }
    *line = l;
    *column = c;
}

/* Turns libyaml's error state into one diagnostic. */
static void report_parser_error(builder *b)
{
    const yaml_parser_t *p = &b->parser;
    const char *problem = p->problem ? p->problem : "unknown error";
    b->fatal = true;
    switch (p->error) {
    case YAML_READER_ERROR: {
        /* Reader errors carry a byte offset, not a mark. */
        int line, column;
        offset_position(b, p->problem_offset, &line, &column);
        const char *what = strstr(problem, "UTF-8") ? "the config is not valid UTF-8"
                                                    : "the config contains a character YAML does not allow";
        if (p->problem_value >= 0)
            diag_add(b->errs, "", line, column, "%s: %s (byte 0x%02X at offset %zu)", what,
                     problem, (unsigned)p->problem_value, p->problem_offset + b->bom);
        else
            diag_add(b->errs, "", line, column, "%s: %s (at offset %zu)", what, problem,
                     p->problem_offset + b->bom);
        break;
    }
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
        if (p->context)
            diag_add(b->errs, "", (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                     "invalid YAML: %s (%s at line %d column %d)", problem, p->context,
                     (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
        else
            diag_add(b->errs, "", (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                     "invalid YAML: %s", problem);
        break;
    default:
        diag_add(b->errs, "", 0, 0, "invalid YAML: %s", problem);
        break;
    }
}

/* ---- anchors ----------------------------------------------------------- */

static size_t anchor_hash(const char *name)
{
    return (size_t)fnv64_update(FNV64_INIT, name, strlen(name));
}

static anchor *anchor_slot(anchor_table *t, const char *name)
{
    size_t mask = t->cap - 1;
    for (size_t i = anchor_hash(name) & mask;; i = (i + 1) & mask)
        if (!t->slots[i].name || strcmp(t->slots[i].name, name) == 0)
            return &t->slots[i];
}

static void anchor_grow(anchor_table *t)
{
    anchor_table bigger = {xcalloc(t->cap ? t->cap * 2 : 16, sizeof(anchor)),
                           t->cap ? t->cap * 2 : 16, t->n};
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].name)
            *anchor_slot(&bigger, t->slots[i].name) = t->slots[i];
    free(t->slots);
    *t = bigger;
}

static void anchor_set(anchor_table *t, const char *name, ynode *node)
{
    if (2 * (t->n + 1) > t->cap)
        anchor_grow(t);
    anchor *a = anchor_slot(t, name);
    if (!a->name) {
        a->name = xstrdup(name);
        t->n++;
    }
    a->node = node;
}

static ynode *anchor_get(const anchor_table *t, const char *name)
{
    if (!t->cap)
        return NULL;
    anchor *a = anchor_slot((anchor_table *)t, name);
    return a->name ? a->node : NULL;
}

static void anchor_free(anchor_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].name);
    free(t->slots);
    *t = (anchor_table){NULL, 0, 0};
}

/* ---- nodes ------------------------------------------------------------- */

static const char *kind_name(ynode_kind k)
{
    return k == YNODE_SCALAR ? "a scalar" : k == YNODE_SEQ ? "a list" : "a mapping";
}

/* A fresh node, counted against the node cap; NULL (fatal) past it. */
static ynode *node_new(builder *b, ynode_kind kind, int line, int column)
{
    if (b->n_nodes >= YTREE_MAX_NODES) {
        if (!b->fatal)
            tree_error(b, true, b->ev_line, b->ev_column,
                       "the document has more than %d nodes (after expanding aliases)",
                       YTREE_MAX_NODES);
        b->fatal = true;
        return NULL;
    }
    b->n_nodes++;
    ynode *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    n->line = line;
    n->column = column;
    return n;
}

/* Sets a scalar's text, counted against the scalar byte cap. */
static bool node_set_value(builder *b, ynode *n, const char *value, size_t len)
{
    if (len > TREE_MAX_SCALAR_BYTES - b->scalar_bytes) {
        if (!b->fatal)
            tree_error(b, false, b->ev_line, b->ev_column,
                       "the document holds more than %zu MiB of text (after expanding aliases)",
                       TREE_MAX_SCALAR_BYTES >> 20);
        b->fatal = true;
        return false;
    }
    b->scalar_bytes += len;
    n->value = xstrndup(value, len);
    n->len = len;
    return true;
}

void ytree_free(ynode *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n; i++) {
        ytree_free(node->items[i]);
        if (node->keys)
            ytree_free(node->keys[i]);
    }
    free(node->items);
    free(node->keys);
    free(node->value);
    free(node);
}

/* Deep copy of src for an alias; the copy's root starts at (line, column)
 * and sits at nesting depth `depth` (containers only).  NULL (fatal) when a
 * limit is hit; a partial copy is freed. */
static ynode *node_copy(builder *b, const ynode *src, int depth, int line, int column)
{
    if (src->kind != YNODE_SCALAR && depth > YTREE_MAX_DEPTH) {
        tree_error(b, true, b->ev_line, b->ev_column,
                   "nesting is deeper than %d levels (after expanding aliases)", YTREE_MAX_DEPTH);
        b->fatal = true;
        return NULL;
    }
    ynode *n = node_new(b, src->kind, line, column);
    if (!n)
        return NULL;
    if (src->kind == YNODE_SCALAR) {
        n->plain = src->plain;
        if (!node_set_value(b, n, src->value, src->len)) {
            ytree_free(n);
            return NULL;
        }
        return n;
    }
    n->items = xcalloc(src->n, sizeof *n->items);
    if (src->kind == YNODE_MAP)
        n->keys = xcalloc(src->n, sizeof *n->keys);
    for (size_t i = 0; i < src->n; i++) {
        n->n = i + 1;           /* slots are NULL until filled: freeing is safe */
        if (src->kind == YNODE_MAP) {
            const ynode *k = src->keys[i];
            if (!(n->keys[i] = node_copy(b, k, depth + 1, k->line, k->column)))
                goto fail;
        }
        const ynode *v = src->items[i];
        if (!(n->items[i] = node_copy(b, v, depth + 1, v->line, v->column)))
            goto fail;
    }
    return n;
fail:
    ytree_free(n);
    return NULL;
}

/* ---- building ---------------------------------------------------------- */

/* Links a new node into the open container (or makes it the root). */
static void attach(builder *b, ynode *child)
{
    if (b->depth == 0) {
        b->root = child;
        return;
    }
    frame *f = &b->stack[b->depth - 1];
    ynode *p = f->node;
    if (p->kind == YNODE_MAP && !f->want_key) {
        p->items[p->n - 1] = child;
        f->want_key = true;
        return;
    }
    if (p->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4;
        p->items = xrealloc(p->items, f->cap * sizeof *p->items);
        if (p->kind == YNODE_MAP)
            p->keys = xrealloc(p->keys, f->cap * sizeof *p->keys);
    }
    if (p->kind == YNODE_MAP) {
        p->keys[p->n] = child;
        p->items[p->n] = NULL;
        f->want_key = false;
    } else {
        p->items[p->n] = child;
    }
    p->n++;
}

static void remember_anchor(builder *b, const yaml_char_t *name, ynode *node)
{
    if (name)
        anchor_set(&b->anchors, (const char *)name, node);
}

/* Explicit tags: the YAML core ones are allowed ("!!str 5" is a string, not
 * a number); anything else (a language-specific type) is refused. */
static bool check_tag(builder *b, const yaml_char_t *tag, yaml_mark_t m, ynode *scalar)
{
    if (!tag)
        return true;
    const char *t = (const char *)tag;
    if (strcmp(t, "!") == 0 || strcmp(t, TAG_PREFIX "str") == 0) {
        if (scalar)
            scalar->plain = false;
        return true;
    }
    static const char *const scalar_tags[] = {"int", "float", "bool", "null"};
    static const char *const container_tags[] = {"seq", "map"};
    size_t plen = strlen(TAG_PREFIX);
    if (strncmp(t, TAG_PREFIX, plen) == 0) {
        const char *const *ok = scalar ? scalar_tags : container_tags;
        size_t n_ok = scalar ? 4 : 2;
        for (size_t i = 0; i < n_ok; i++)
            if (strcmp(t + plen, ok[i]) == 0) {
                if (scalar)
                    scalar->plain = true;
                return true;
            }
    }
    tree_error(b, false, (int)m.line + 1, (int)m.column + 1, "YAML tag '%.64s' is not supported here", t);
    return false;
}

static void on_scalar(builder *b, const yaml_event_t *ev)
{
    yaml_mark_t m = ev->start_mark;
    ynode *n = node_new(b, YNODE_SCALAR, (int)m.line + 1, (int)m.column + 1);
    if (!n)
        return;
    attach(b, n);
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (!node_set_value(b, n, (const char *)ev->data.scalar.value, ev->data.scalar.length))
        return;
    check_tag(b, ev->data.scalar.tag, m, n);
    remember_anchor(b, ev->data.scalar.anchor, n);
}

static void on_container_start(builder *b, const yaml_event_t *ev, ynode_kind kind)
{
    yaml_mark_t m = ev->start_mark;
    ynode *n = node_new(b, kind, (int)m.line + 1, (int)m.column + 1);
    if (!n)
        return;
    attach(b, n);
    if (b->depth == YTREE_MAX_DEPTH) {
        tree_error(b, false, n->line, n->column, "nesting is deeper than %d levels", YTREE_MAX_DEPTH);
        b->fatal = true;
        return;
    }
    b->stack[b->depth++] = (frame){n, 0, true};
    const yaml_char_t *tag = kind == YNODE_MAP ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    const yaml_char_t *anchor_name =
        kind == YNODE_MAP ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    check_tag(b, tag, m, NULL);
    remember_anchor(b, anchor_name, n);
}

static void on_alias(builder *b, const yaml_event_t *ev)
{
    yaml_mark_t m = ev->start_mark;
    const char *name = (const char *)ev->data.alias.anchor;
    ynode *target = anchor_get(&b->anchors, name);
    if (!target) {
        /* libyaml's parser does not check this; the document API would. */
        tree_error(b, true, (int)m.line + 1, (int)m.column + 1, "alias *%.64s names no anchor", name);
        b->fatal = true;
        return;
    }
    for (int i = 0; i < b->depth; i++)
        if (b->stack[i].node == target) {
            tree_error(b, true, (int)m.line + 1, (int)m.column + 1,
                       "alias *%.64s refers to a node that contains it", name);
            b->fatal = true;
            return;
        }
    ynode *copy = node_copy(b, target, b->depth + 1, (int)m.line + 1, (int)m.column + 1);
    if (copy)
        attach(b, copy);
}

static int compare_keys(const void *pa, const void *pb)
{
    const ynode *a = *(const ynode *const *)pa, *b = *(const ynode *const *)pb;
    int c = strcmp(a->value, b->value);
    if (c)
        return c;
    /* Ties in document order, so the first of a group is the original. */
    return a->line != b->line ? (a->line < b->line ? -1 : 1)
                              : (a->column < b->column ? -1 : a->column > b->column);
}

/* A closed mapping: keys must be scalars and distinct.  Errors name the
 * later occurrence's position and path, and the first one's line. */
static void check_mapping_keys(builder *b, const ynode *map)
{
    char path[256];
    frames_path(b, b->depth - 1, false, path, sizeof path);   /* the mapping itself */
    const ynode **sorted = xmalloc((map->n ? map->n : 1) * sizeof *sorted);
    size_t n = 0;
    for (size_t i = 0; i < map->n; i++) {
        const ynode *k = map->keys[i];
        if (k->kind == YNODE_SCALAR)
            sorted[n++] = k;
        else
            diag_add(b->errs, path, k->line, k->column, "mapping keys must be scalars, got %s",
                     kind_name(k->kind));
    }
    qsort(sorted, n, sizeof *sorted, compare_keys);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (strcmp(sorted[i]->value, sorted[first]->value) != 0) {
            first = i;
            continue;
        }
        char *kpath = xasprintf("%s%s%.64s", path, path[0] ? "." : "", sorted[i]->value);
        diag_add(b->errs, kpath, sorted[i]->line, sorted[i]->column,
                 "duplicate key '%.64s' (at line %d and again at line %d)", sorted[i]->value,
                 sorted[first]->line, sorted[i]->line);
        free(kpath);
    }
    free(sorted);
}

static void on_container_end(builder *b)
{
    if (b->depth == 0)
        return;
    const ynode *n = b->stack[b->depth - 1].node;
    if (n->kind == YNODE_MAP)
        check_mapping_keys(b, n);
    b->depth--;
}

static void handle_event(builder *b, const yaml_event_t *ev)
{
    b->ev_line = (int)ev->start_mark.line + 1;
    b->ev_column = (int)ev->start_mark.column + 1;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1) {
            char msg[96];
            snprintf(msg, sizeof msg, "only one YAML document is allowed; a second one starts at line %d",
                     (int)ev->start_mark.line + 1);
            fatal_error_at_mark(b, ev->start_mark, msg);
        }
        break;
    case YAML_SCALAR_EVENT:
        on_scalar(b, ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
        on_container_start(b, ev, YNODE_SEQ);
        break;
    case YAML_MAPPING_START_EVENT:
        on_container_start(b, ev, YNODE_MAP);
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        on_container_end(b);
        break;
    case YAML_ALIAS_EVENT:
        on_alias(b, ev);
        break;
    default:
        break;
    }
}

static void run_parser(builder *b)
{
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&b->parser, &ev)) {
            report_parser_error(b);
            return;
        }
        bool end = ev.type == YAML_STREAM_END_EVENT;
        handle_event(b, &ev);
        yaml_event_delete(&ev);
        if (end || b->fatal)
            return;
    }
}

ynode *ytree_parse(const char *buf, size_t len, diag_list_t *errs)
{
    if (len > YTREE_MAX_BYTES) {
        diag_add(errs, "", 0, 0, "the config is larger than %u MiB", YTREE_MAX_BYTES >> 20);
        return NULL;
    }
    builder *b = xcalloc(1, sizeof *b);
    /* libyaml skips a BOM but counts it as a column when the encoding is
     * given, so drop it here; the encoding is fixed so that only UTF-8 is
     * accepted (a UTF-16 config is almost certainly a mistake). */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        b->bom = 3;
    b->buf = buf + b->bom;
    b->len = len - b->bom;
    b->errs = errs;
    b->errs_before = errs->n;
    if (!yaml_parser_initialize(&b->parser)) {
        diag_add(errs, "", 0, 0, "cannot initialise the YAML parser (out of memory)");
        free(b);
        return NULL;
    }
    yaml_parser_set_input_string(&b->parser, (const unsigned char *)b->buf, b->len);
    yaml_parser_set_encoding(&b->parser, YAML_UTF8_ENCODING);
    run_parser(b);

    ynode *root = b->root;
    if (errs->n == b->errs_before && (!root || yscalar_is_null(root)))
        diag_add(errs, "", 1, 1,
                 "empty config: a run config needs at least a model and a schedule, such as "
                 "\"model: {type: linear, input_dim: 4, output_dim: 1}\" and \"schedule: {total_steps: 100}\"");
    if (errs->n != b->errs_before) {
        ytree_free(root);
        root = NULL;
    }
    yaml_parser_delete(&b->parser);
    anchor_free(&b->anchors);
    free(b);
    return root;
}

const ynode *ymap_get(const ynode *map, const char *key)
{
    if (!map || map->kind != YNODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++) {
        const ynode *k = map->keys[i];
        if (k && k->kind == YNODE_SCALAR && strcmp(k->value, key) == 0)
            return map->items[i];
    }
    return NULL;
}

bool yscalar_is_null(const ynode *n)
{
    if (!n || n->kind != YNODE_SCALAR || !n->plain)
        return false;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
        if (strcmp(n->value, nulls[i]) == 0)
            return true;
    return false;
}

/* ---- editing and writing (sweeps build each trial's tree from the file's) */

ynode *ytree_clone(const ynode *src)
{
    if (!src)
        return NULL;
    ynode *n = xcalloc(1, sizeof *n);
    n->kind = src->kind;
    n->line = src->line;
    n->column = src->column;
    if (src->kind == YNODE_SCALAR) {
        n->plain = src->plain;
        n->value = xstrndup(src->value, src->len);
        n->len = src->len;
        return n;
    }
    n->n = src->n;
    n->items = xcalloc(src->n ? src->n : 1, sizeof *n->items);
    if (src->kind == YNODE_MAP)
        n->keys = xcalloc(src->n ? src->n : 1, sizeof *n->keys);
    for (size_t i = 0; i < src->n; i++) {
        n->items[i] = ytree_clone(src->items[i]);
        if (src->kind == YNODE_MAP)
            n->keys[i] = ytree_clone(src->keys[i]);
    }
    return n;
}

ynode *yscalar_new(const char *text, bool plain, int line, int column)
{
    ynode *n = xcalloc(1, sizeof *n);
    n->kind = YNODE_SCALAR;
    n->line = line;
    n->column = column;
    n->plain = plain;
    n->len = strlen(text);
    n->value = xstrndup(text, n->len);
    return n;
}

ynode *ymap_new(int line, int column)
{
    ynode *n = xcalloc(1, sizeof *n);
    n->kind = YNODE_MAP;
    n->line = line;
    n->column = column;
    return n;
}

static ssize_t ymap_index(const ynode *map, const char *key)
{
    for (size_t i = 0; i < map->n; i++)
        if (map->keys[i] && map->keys[i]->kind == YNODE_SCALAR && strcmp(map->keys[i]->value, key) == 0)
            return (ssize_t)i;
    return -1;
}

void ymap_put(ynode *map, const char *key, ynode *value)
{
    ssize_t i = ymap_index(map, key);
    if (i >= 0) {
        ytree_free(map->items[i]);
        map->items[i] = value;
        return;
    }
    map->items = xrealloc(map->items, (map->n + 1) * sizeof *map->items);
    map->keys = xrealloc(map->keys, (map->n + 1) * sizeof *map->keys);
    map->keys[map->n] = yscalar_new(key, true, value->line, value->column);
    map->items[map->n] = value;
    map->n++;
}

void ymap_delete(ynode *map, const char *key)
{
    ssize_t i = ymap_index(map, key);
    if (i < 0)
        return;
    ytree_free(map->keys[i]);
    ytree_free(map->items[i]);
    memmove(map->keys + i, map->keys + i + 1, (map->n - (size_t)i - 1) * sizeof *map->keys);
    memmove(map->items + i, map->items + i + 1, (map->n - (size_t)i - 1) * sizeof *map->items);
    map->n--;
}

int ytree_set_path(ynode *doc, const char *path, ynode *value)
{
    const char *dot = strchr(path, '.');
    if (!dot) {
        ymap_put(doc, path, value);
        return 0;
    }
    char section[64];
    if ((size_t)(dot - path) >= sizeof section) {
        ytree_free(value);
        return -1;
    }
    memcpy(section, path, (size_t)(dot - path));
    section[dot - path] = '\0';
    ynode *sec = (ynode *)ymap_get(doc, section);
    if (!sec || yscalar_is_null(sec)) {
        sec = ymap_new(value->line, value->column);
        ymap_put(doc, section, sec);
    } else if (sec->kind != YNODE_MAP) {
        ytree_free(value);
        return -1;
    }
    ymap_put(sec, dot + 1, value);
    return 0;
}

typedef struct emit_buf {
    char *data;
    size_t len, cap;
} emit_buf;

static int emit_write(void *ctx, unsigned char *buf, size_t size)
{
    emit_buf *b = ctx;
    if (b->len + size + 1 > b->cap) {
        b->cap = (b->len + size + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, buf, size);
    b->len += size;
    b->data[b->len] = '\0';
    return 1;
}

static bool emit_node(yaml_emitter_t *e, const ynode *n)
{
    yaml_event_t ev;
    int ok;
    switch (n->kind) {
    case YNODE_SCALAR:
        ok = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)n->value, (int)n->len,
                                          n->plain, !n->plain,
                                          n->plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        return ok && yaml_emitter_emit(e, &ev);
    case YNODE_SEQ:
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_ANY_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(e, &ev))
            return false;
        for (size_t i = 0; i < n->n; i++)
            if (!emit_node(e, n->items[i]))
                return false;
        return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(e, &ev);
    case YNODE_MAP:
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_ANY_MAPPING_STYLE) ||
            !yaml_emitter_emit(e, &ev))
            return false;
        for (size_t i = 0; i < n->n; i++)
            if (!emit_node(e, n->keys[i]) || !emit_node(e, n->items[i]))
                return false;
        return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(e, &ev);
    }
    return false;
}

char *ytree_emit(const ynode *root)
{
    yaml_emitter_t e;
    yaml_event_t ev;
    emit_buf b = {0};
    if (!yaml_emitter_initialize(&e))
        return NULL;
    yaml_emitter_set_output(&e, emit_write, &b);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    bool ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && yaml_emitter_emit(&e, &ev) &&
              yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) && yaml_emitter_emit(&e, &ev) &&
              emit_node(&e, root) && yaml_document_end_event_initialize(&ev, 1) &&
              yaml_emitter_emit(&e, &ev) && yaml_stream_end_event_initialize(&ev) &&
              yaml_emitter_emit(&e, &ev) && yaml_emitter_flush(&e);
    yaml_emitter_delete(&e);
    if (!ok) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

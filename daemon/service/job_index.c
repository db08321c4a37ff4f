/* job_index — string → pointer hash index.  See traind/job_index.h. */
#include "traind/job_index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "traind/util.h"

typedef struct {
    const char *key;   /* NULL = empty; TOMB = removed */
    void *value;
    uint64_t hash;
} slot;

static const char tomb_mark;
#define TOMB (&tomb_mark)

struct job_index {
    slot *s;
    size_t cap;        /* a power of two */
    size_t n;          /* live entries */
    size_t used;       /* live + tombstones */
};

/* FNV-1a, 64 bits. */
static uint64_t hash_str(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

job_index *job_index_new(void)
{
    job_index *x = xcalloc(1, sizeof *x);
    x->cap = 64;
    x->s = xcalloc(x->cap, sizeof *x->s);
    return x;
}

void job_index_free(job_index *x)
{
    if (!x)
        return;
    free(x->s);
    free(x);
}

size_t job_index_count(const job_index *x)
{
    return x->n;
}

/* The slot holding key, or NULL. */
static slot *lookup(const job_index *x, const char *key, uint64_t h)
{
    size_t mask = x->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        slot *s = &x->s[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
            return s;
    }
}

static void insert_fresh(job_index *x, const char *key, void *value, uint64_t h)
{
    size_t mask = x->cap - 1;
    size_t i = (size_t)h & mask;
    while (x->s[i].key && x->s[i].key != TOMB)
        i = (i + 1) & mask;
    if (!x->s[i].key)
        x->used++;
    x->s[i] = (slot){key, value, h};
    x->n++;
}

static void grow(job_index *x)
{
    slot *old = x->s;
    size_t old_cap = x->cap;
    /* doubles unless most of the load was tombstones */
    if (x->n * 2 >= x->cap * 7 / 10)
        x->cap *= 2;
    x->s = xcalloc(x->cap, sizeof *x->s);
    x->n = x->used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key && old[i].key != TOMB)
            insert_fresh(x, old[i].key, old[i].value, old[i].hash);
    free(old);
}

void *job_index_get(const job_index *x, const char *key)
{
    slot *s = lookup(x, key, hash_str(key));
    return s ? s->value : NULL;
}

void job_index_put(job_index *x, const char *key, void *value)
{
    uint64_t h = hash_str(key);
    slot *s = lookup(x, key, h);
    if (s) {
        s->key = key;
        s->value = value;
        return;
    }
    if ((x->used + 1) * 10 > x->cap * 7)
        grow(x);
    insert_fresh(x, key, value, h);
}

void job_index_del(job_index *x, const char *key)
{
    slot *s = lookup(x, key, hash_str(key));
    if (!s)
        return;
    s->key = TOMB;
    s->value = NULL;
    x->n--;
}

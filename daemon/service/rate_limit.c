/*
 * rate_limit — the per-client write limit of the HTTP API: a token bucket
 * per client key in a bounded table (hash chains + an LRU list), so a flood
 * of distinct peers costs at most max_clients entries.  See
 * include/traind/rate_limit.h.
 */
#include "traind/rate_limit.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/util.h"


#define RL_KEY_MAX 48
#define RL_NONE UINT32_MAX

typedef struct rl_ent {
    char key[RL_KEY_MAX];
    double tokens, last;
    uint32_t hnext;       /* next in its hash chain */
    uint32_t prev, next;  /* LRU list, most recent first */
} rl_ent;

struct rate_limit {
    double rate, burst;
    rl_ent *e;
    size_t cap, n;
    uint32_t *buckets;
    size_t nbuckets;      /* a power of two, >= 2 cap */
    uint32_t head, tail;
};

static uint32_t rl_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

rate_limit *rate_limit_new(double rate, long burst, size_t max_clients)
{
    rate_limit *rl = xcalloc(1, sizeof *rl);
    rl->cap = max_clients ? max_clients : API_RATELIMIT_CLIENTS;
    if (rl->cap > RL_NONE / 4)
        rl->cap = RL_NONE / 4;
    rl->nbuckets = 1;
    while (rl->nbuckets < 2 * rl->cap)
        rl->nbuckets *= 2;
    rl->e = xcalloc(rl->cap, sizeof *rl->e);
    rl->buckets = xmalloc(rl->nbuckets * sizeof *rl->buckets);
    for (size_t i = 0; i < rl->nbuckets; i++)
        rl->buckets[i] = RL_NONE;
    rl->head = rl->tail = RL_NONE;
    rate_limit_configure(rl, rate, burst);
    return rl;
}

void rate_limit_configure(rate_limit *rl, double rate, long burst)
{
    rl->rate = rate > 0 && isfinite(rate) ? rate : 0;
    rl->burst = burst >= 1 ? (double)burst : 1;
}

void rate_limit_free(rate_limit *rl)
{
    if (!rl)
        return;
    free(rl->e);
    free(rl->buckets);
    free(rl);
}

size_t rate_limit_clients(const rate_limit *rl)
{
    return rl ? rl->n : 0;
}

double rate_limit_rate(const rate_limit *rl)
{
    return rl ? rl->rate : 0;
}

static void rl_unlink(rate_limit *rl, uint32_t i)
{
    rl_ent *x = &rl->e[i];
    if (x->prev != RL_NONE)
        rl->e[x->prev].next = x->next;
    else
        rl->head = x->next;
    if (x->next != RL_NONE)
        rl->e[x->next].prev = x->prev;
    else
        rl->tail = x->prev;
    x->prev = x->next = RL_NONE;
}

static void rl_push_front(rate_limit *rl, uint32_t i)
{
    rl_ent *x = &rl->e[i];
    x->prev = RL_NONE;
    x->next = rl->head;
    if (rl->head != RL_NONE)
        rl->e[rl->head].prev = i;
    rl->head = i;
    if (rl->tail == RL_NONE)
        rl->tail = i;
}

double rate_limit_take(rate_limit *rl, const char *key, double now)
{
    if (!rl || rl->rate <= 0)
        return 0;
    char k[RL_KEY_MAX];
    snprintf(k, sizeof k, "%s", key ? key : "");
    uint32_t *slot = &rl->buckets[rl_hash(k) & (rl->nbuckets - 1)];
    uint32_t i = *slot;
    while (i != RL_NONE && strcmp(rl->e[i].key, k) != 0)
        i = rl->e[i].hnext;
    rl_ent *x;
    if (i != RL_NONE) {
        x = &rl->e[i];
        double dt = now - x->last;
        if (dt > 0)
            x->tokens += dt * rl->rate;
        if (x->tokens > rl->burst)
            x->tokens = rl->burst;
        x->last = now > x->last ? now : x->last;
        rl_unlink(rl, i);
    } else {
        if (rl->n < rl->cap) {
            i = (uint32_t)rl->n++;
        } else {
            /* forget the client seen least recently */
            i = rl->tail;
            rl_unlink(rl, i);
            uint32_t *p = &rl->buckets[rl_hash(rl->e[i].key) & (rl->nbuckets - 1)];
            while (*p != i)
                p = &rl->e[*p].hnext;
            *p = rl->e[i].hnext;
        }
        x = &rl->e[i];
        memcpy(x->key, k, sizeof k);
        x->tokens = rl->burst;
        x->last = now;
        x->hnext = *slot;
        *slot = i;
    }
    rl_push_front(rl, i);
    if (x->tokens >= 1 - 1e-9) {   /* tolerate rounding: 0.1 s at 10/s is a whole token */
        x->tokens -= 1;
        return 0;
    }
    return (1 - x->tokens) / rl->rate;
}

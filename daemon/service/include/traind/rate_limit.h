/*
 * rate_limit — token buckets per client for the API's write limit
 * (traind(8) HTTP API: a client over its write rate gets 429 with Retry-After).
 */
#ifndef TRAIND_RATE_LIMIT_H
#define TRAIND_RATE_LIMIT_H

#include <stddef.h>

/* A token bucket per client (keyed by the peer address of http_request):
 * rate tokens a second, at most burst of them; a write takes one.  At most
 * max_clients clients are remembered; when a new one comes, the one seen
 * least recently is forgotten (it starts again with a full bucket, so the
 * table's bound can only make the limit more lenient, never stricter).
 * Not thread-safe: the loop thread owns it. */
typedef struct rate_limit rate_limit;

#define API_RATELIMIT_CLIENTS 4096

/* rate <= 0: unlimited.  burst < 1 is taken as 1. */
rate_limit *rate_limit_new(double rate, long burst, size_t max_clients);
/* New rate and burst (SIGHUP); the clients' buckets are kept (capped at the new burst). */
void rate_limit_configure(rate_limit *rl, double rate, long burst);
void rate_limit_free(rate_limit *rl);
/* Takes a token for key at time now (seconds, any monotonic origin).
 * Returns 0 when the write may go on, else the seconds until the next
 * token (> 0). */
double rate_limit_take(rate_limit *rl, const char *key, double now);
/* Clients remembered right now. */
size_t rate_limit_clients(const rate_limit *rl);
/* The rate (tokens a second; 0 = unlimited). */
double rate_limit_rate(const rate_limit *rl);

#endif

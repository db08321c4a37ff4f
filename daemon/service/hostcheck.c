/* hostcheck — the Host header check.  See traind/hostcheck.h. */
#include "traind/hostcheck.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

/* The host part of "name:port" / "[v6]:port" into out (lower case); false
 * when it does not fit or is malformed. */
static bool host_part(const char *h, char *out, size_t len, bool *is_v6)
{
    *is_v6 = false;
    size_t n;
    if (h[0] == '[') {
        const char *end = strchr(h, ']');
        if (!end || (end[1] && end[1] != ':'))
            return false;
        h++;
        n = (size_t)(end - h);
        *is_v6 = true;
    } else {
        const char *colon = strrchr(h, ':');
        n = colon ? (size_t)(colon - h) : strlen(h);
        if (colon && strchr(h, ':') != colon)
            return false;   /* a bare IPv6 literal is not a Host value */
    }
    if (n == 0 || n >= len)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)h[i]);
    out[n] = '\0';
    if (n > 1 && out[n - 1] == '.')
        out[n - 1] = '\0';   /* "localhost." is localhost */
    return true;
}

static bool is_ip_literal(const char *name, bool v6)
{
    unsigned char buf[16];
    return inet_pton(v6 ? AF_INET6 : AF_INET, name, buf) == 1;
}

static bool is_localhost(const char *name)
{
    size_t n = strlen(name);
    return strcmp(name, "localhost") == 0 || (n > 10 && strcmp(name + n - 10, ".localhost") == 0);
}

/* Whether name is the host of listen ("name:port"). */
static bool is_listen_host(const char *name, const char *listen)
{
    if (!listen || strncmp(listen, "unix:", 5) == 0)
        return false;
    char lh[256];
    bool v6;
    return host_part(listen, lh, sizeof lh, &v6) && strcmp(lh, name) == 0;
}

bool host_allowed(const char *host, const char *listen, char *const *allowed, size_t n_allowed)
{
    if (!host || (listen && strncmp(listen, "unix:", 5) == 0))
        return true;
    for (size_t i = 0; i < n_allowed; i++)
        if (strcmp(allowed[i], "*") == 0)
            return true;
    char name[256];
    bool v6;
    if (!host_part(host, name, sizeof name, &v6))
        return false;
    if (is_ip_literal(name, v6))
        return true;
    if (v6)
        return false;
    if (is_localhost(name) || is_listen_host(name, listen))
        return true;
    for (size_t i = 0; i < n_allowed; i++)
        if (strcasecmp(allowed[i], name) == 0)
            return true;
    return false;
}

const char *host_of_request(const char *target, const char *host, char *out, size_t len)
{
    const char *sep = target ? strstr(target, "://") : NULL;
    if (!target || target[0] == '/' || !sep)
        return host;   /* origin-form (or *, or CONNECT's authority-form) */
    const char *a = sep + 3;
    size_t n = strcspn(a, "/?#");
    const char *at = memchr(a, '@', n);
    if (at) {          /* userinfo@host: the host is after it */
        n -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    if (n == 0 || n >= len) {
        out[0] = '\0';
        return out;
    }
    memcpy(out, a, n);
    out[n] = '\0';
    return out;
}

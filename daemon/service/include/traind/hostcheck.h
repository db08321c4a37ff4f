/*
 * hostcheck — the Host header check against DNS rebinding.
 *
 * A web page on evil.example whose name is made to resolve to 127.0.0.1
 * can make a browser send requests to traind; the browser then sends
 * "Host: evil.example".  traind answers only requests whose Host names it:
 * an IP literal (rebinding needs a name), localhost (and *.localhost), the
 * host of its listen address, or a name in the daemon config's
 * allowed_hosts ("*" there turns the check off).  A request without Host
 * (HTTP/1.0 tools) and every request over a Unix socket pass.
 */
#ifndef TRAIND_HOSTCHECK_H
#define TRAIND_HOSTCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* host: the header's value ("name", "name:port", "[v6]:port"), NULL when
 * absent.  listen: the daemon's listen address (HOST:PORT or unix:PATH). */
bool host_allowed(const char *host, const char *listen, char *const *allowed, size_t n_allowed);

/* The host a request names: for an absolute-form target
 * ("http://name:port/path", RFC 9112 §3.2.2, where the target's authority
 * replaces Host) its authority, userinfo dropped, into out; else the Host
 * header's value (host, maybe NULL).  An absolute target with no usable
 * authority gives "" (never allowed). */
const char *host_of_request(const char *target, const char *host, char *out, size_t len);

#endif

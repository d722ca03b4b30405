/*
 * qsupd --metrics-listen ADDR:PORT: /metrics over HTTP, served by
 * libmicrohttpd on a thread of its own. That thread reads only the last
 * published text (an immutable, reference-counted snapshot swapped under a
 * mutex by the loop): a scraper never touches the loop, the guests or QMP.
 * Connections are bounded (SV_HTTP_MAX_CONN at once, SV_HTTP_PER_IP per
 * address, SV_HTTP_TIMEOUT_S idle, a small memory pool each), so a slow or
 * flooding scraper cannot grow qsupd without bound: at most
 * SV_HTTP_MAX_CONN + 1 snapshots are alive at once.
 */
#ifndef SV_METRICS_HTTP_H
#define SV_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sv_error;
struct sv_http;

#define SV_HTTP_MAX_CONN 32
#define SV_HTTP_PER_IP 16
#define SV_HTTP_TIMEOUT_S 10
#define SV_HTTP_CONN_MEMORY (32 * 1024)

/* Parse ADDR:PORT (IPv4 "127.0.0.1:9120", IPv6 "[::1]:9120"; ":PORT" or
 * "PORT" alone: 127.0.0.1) into ss. Returns 0 or -EINVAL with err set. */
int sv_http_parse_listen(const char *s, struct sockaddr_storage *ss, struct sv_error *err);

/* Listen on ss and serve GET /metrics from the last published text (503
 * until the first). Returns NULL with err set when it cannot listen. */
struct sv_http *sv_http_start(const struct sockaddr_storage *ss, const char *what,
                              struct sv_error *err);

/* Publish text (taken: malloc'd, len bytes) as the answer of the next
 * scrapes. Thread-safe against the server's thread; never blocks long
 * (a pointer swap under a mutex). */
void sv_http_publish(struct sv_http *h, char *text, size_t len);

/* The port it listens on (for --metrics-listen 127.0.0.1:0). */
unsigned sv_http_port(const struct sv_http *h);

/* Stop the thread, close every connection, free h. NULL: nothing. */
void sv_http_stop(struct sv_http *h);

#endif

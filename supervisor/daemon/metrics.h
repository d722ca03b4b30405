/*
 * Metrics: the guests' resource use and qsupd's own, gathered on a timer
 * (qsupd --stats-interval, default SV_STATS_INTERVAL_S) and kept as a
 * snapshot that the stats verb (JSON), the metrics verb and
 * --metrics-listen (the Prometheus text format, metrics_http.h) read.
 *
 * One round per tick: for each guest, QEMU's CPU time and RSS from
 * /proc/PID/stat and statm, the tap-backed NICs' counters from
 * /sys/class/net/TAP/statistics (small reads of in-memory files, on the
 * loop), and one batched QMP round (query-blockstats; query-balloon when
 * the guest has a balloon) with the health probe's deadline. A guest whose
 * QEMU does not answer (unresponsive, or its last round still out) is
 * marked stale and never waited for. A stats request while no round is out
 * starts one and is answered when it is over (at most SV_PROBE_DEADLINE_MS
 * later); during one, it waits for that one.
 *
 * qsupd's own: guests by state, control clients, requests by verb and
 * result, request latency and the stats rounds' QMP round trips as
 * histograms, event-loop lag (how late the stats timer fired), its RSS and
 * CPU time.
 */
#ifndef SV_METRICS_H
#define SV_METRICS_H

#include <stdint.h>
#include <jansson.h>

struct sv_daemon;
struct sv_error;
struct sv_request;

#define SV_STATS_INTERVAL_S 10u
#define SV_STATS_INTERVAL_MAX_S 3600u

/* Start the stats timer and, with --metrics-listen, the HTTP server.
 * Returns 0 or a negative errno with err set (the address cannot be
 * listened on). */
int sv_metrics_init(struct sv_daemon *d, struct sv_error *err);

/* At exit: stop the timer and the HTTP server, answer the stats requests
 * still waiting. The rest goes with sv_metrics_free(), once the loop is
 * done (QMP replies still out come back to it until then). */
void sv_metrics_close(struct sv_daemon *d);
void sv_metrics_free(struct sv_daemon *d);

/* A request was answered with msg (request.h's route hook): count it by
 * verb and result (ok, or the error class) and its latency. */
void sv_metrics_request_done(struct sv_daemon *d, const struct sv_request *req,
                             json_t *msg);

/* An event went out (control.c): a guest entering backoff is a restart,
 * counted by the class of the ending that caused it. */
void sv_metrics_event(struct sv_daemon *d, json_t *event);

/* A QMP command of any guest got its reply, ns after it went out. */
void sv_metrics_qmp_replied(struct sv_daemon *d, uint64_t ns);

/* The verbs: stats {"names": [NAME...]} (JSON: one object per guest, each
 * guest's stats as of the round this request waited for), metrics
 * ({"text": the Prometheus text exposition}). */
void sv_metrics_stats_cmd(struct sv_daemon *d, struct sv_request *req, json_t *args);
void sv_metrics_metrics_cmd(struct sv_daemon *d, struct sv_request *req, json_t *args);

/* stats' argument check (pure): "names", when given, is an array of valid
 * guest names. */
int sv_metrics_stats_check(json_t *args, struct sv_error *err);

#endif

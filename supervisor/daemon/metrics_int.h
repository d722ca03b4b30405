/*
 * Internal to metrics (metrics.c, metrics_proc.c, metrics_prom.c): the
 * snapshot the stats rounds leave, and what the files share.
 *
 * metrics.c       the slots, the QMP round, the stats verb's JSON, the
 *                 rounds and their timer, the verbs, counting, life
 * metrics_proc.c  /proc and /sys: QEMU's CPU time and RSS, the tap-backed
 *                 NICs' counters
 * metrics_prom.c  the Prometheus text (the metrics verb, --metrics-listen)
 */
#ifndef SV_METRICS_INT_H
#define SV_METRICS_INT_H

#include <jansson.h>
#include <uv.h>

#include "daemon.h"
#include "guest.h"
#include "metrics_http.h"
#include "promtext.h"


/* One guest's last figures. */
struct gslot {
	char *name;
	uint64_t gen;                   /* tells a slot from a later one of the same name */
	bool seen;                      /* still a guest at this round */
	unsigned inflight;              /* QMP commands of ours still out */
	bool stale;                     /* QEMU did not answer the last round */
	bool have_proc;
	double time;                    /* monotonic seconds of the /proc read */
	double cpu_user, cpu_system;    /* seconds */
	double rss;                     /* bytes */
	json_t *disks;                  /* array, from query-blockstats */
	json_t *nics;                   /* array, from /sys/class/net */
	json_t *balloon;                /* object, from query-balloon; NULL: none */
	json_t *taps;                   /* {nic id: tap name} found by MAC */
	uint64_t restarts[SV_EXIT_LAST + 1];    /* by the class of the ending */
};

struct swait {
	struct swait *next;
	struct sv_request *req;
	json_t *names;                  /* NULL: every guest */
	bool text;                      /* the metrics verb: the Prometheus text */
};

struct sv_metrics {
	struct sv_daemon *d;
	uv_timer_t timer;
	bool timer_ready, closing;
	uint64_t interval_ms;
	uint64_t due_hr;                /* uv_hrtime() the tick is due */
	struct gslot **slots;
	size_t nslots, cap;
	uint64_t next_gen;
	unsigned round_out;             /* a round is out: its commands, plus one while sending */
	char **round_names;             /* the guests the round out visits, in turns */
	size_t round_n, round_next;
	uv_timer_t turn;                /* the round's next turn */
	bool turn_ready;
	struct swait *waiting;          /* answered when the round out is done */
	struct swait *waiting_next;     /* came while it was out: the next round's */
	struct sv_http *http;
	json_t *requests;               /* {verb: {result: count}} */
	struct sv_hist req_lat, qmp_rtt, lag, collect;
	double lag_max;
	uint64_t rounds;
	uint64_t wanted_until;          /* uv_now(): rounds run until then (no http) */
	uint64_t last_round;            /* uv_now() the last round ended, or 0 */
};

/* metrics.c: the slot of guest name, or NULL. */
struct gslot *metrics_slot_find(struct sv_metrics *m, const char *name);

/* metrics_proc.c */

/* CPU seconds (user, system) and RSS bytes of process pid ("self" when 0). */
bool metrics_proc_usage(int pid, double *user, double *sys, double *rss);
/* g's QEMU's CPU time and RSS, and its tap-backed NICs' counters, into s. */
void metrics_collect_host(struct gslot *s, struct sv_guest *g);

/* metrics_prom.c: the Prometheus text of every family (malloc'ed, *len
 * its length), or NULL: out of memory. */
char *metrics_render(struct sv_daemon *d, size_t *len);

#endif

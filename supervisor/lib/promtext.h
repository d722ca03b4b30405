/*
 * The Prometheus text exposition format (version 0.0.4), written into a
 * growing buffer: families with their HELP and TYPE lines, samples with
 * labels (values escaped: backslash, double quote and newline), and
 * histograms with cumulative buckets. Pure: no I/O, no clock; tested in
 * tests/unit/test-promtext.c and checked by promtool in
 * tests/integration/test-metrics.c.
 */
#ifndef SV_PROMTEXT_H
#define SV_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A text being written. Zero-initialise; a failed allocation sets oom and
 * every later write does nothing. */
struct sv_prom {
	char *buf;
	size_t len, cap;
	bool oom;
};

/* Append formatted text. */
void sv_prom_printf(struct sv_prom *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append s as a label value: \ as \\, " as \", newline as \n. */
void sv_prom_escape(struct sv_prom *p, const char *s);

/* "# HELP name help" and "# TYPE name type" (help escaped: \ and newline). */
void sv_prom_family(struct sv_prom *p, const char *name, const char *type,
                    const char *help);

/* One sample: name{k1="v1",...} value. labels: NULL, or NULL-terminated
 * pairs of key and value (a NULL value skips its pair). */
void sv_prom_sample(struct sv_prom *p, const char *name, const char *const *labels,
                    double value);

/* A value as the format spells it: +Inf, -Inf, NaN, integers without a
 * fraction (below 2^53), else %.9g. buf holds at least 32 bytes. */
void sv_prom_value(double v, char *buf, size_t size);

/* The buffer, NUL-terminated (taken from p; NULL when out of memory). */
char *sv_prom_take(struct sv_prom *p, size_t *len);

/* A histogram with fixed upper bounds (ascending; +Inf is implicit). */
#define SV_HIST_MAX 16
struct sv_hist {
	const double *bounds;
	size_t nbounds;                 /* at most SV_HIST_MAX */
	uint64_t counts[SV_HIST_MAX];   /* per bucket, not cumulative */
	uint64_t count;                 /* every observation (the +Inf bucket) */
	double sum;
};

void sv_hist_init(struct sv_hist *h, const double *bounds, size_t n);
void sv_hist_observe(struct sv_hist *h, double v);

/* The histogram's family (TYPE histogram) and its _bucket (cumulative,
 * le="..."), _sum and _count samples. */
void sv_prom_histogram(struct sv_prom *p, const char *name, const char *help,
                       const struct sv_hist *h);

#endif

/* The Prometheus text exposition format (promtext.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promtext.h"

static bool reserve(struct sv_prom *p, size_t more)
{
	if (p->oom)
		return false;
	if (p->len + more + 1 <= p->cap)
		return true;
	size_t cap = p->cap ? p->cap : 4096;
	while (cap < p->len + more + 1)
		cap *= 2;
	char *b = realloc(p->buf, cap);
	if (!b) {
		p->oom = true;
		return false;
	}
	p->buf = b;
	p->cap = cap;
	return true;
}

static void put(struct sv_prom *p, const char *s, size_t n)
{
	if (!reserve(p, n))
		return;
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

void sv_prom_printf(struct sv_prom *p, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		put(p, small, (size_t)n);
		return;
	}
	if (!reserve(p, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(p->buf + p->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	p->len += (size_t)n;
}

/* s escaped: backslash and newline always, the double quote in label
 * values only (HELP text keeps it). */
static void escape(struct sv_prom *p, const char *s, bool quote)
{
	for (const char *q = s; *q; q++) {
		size_t run = strcspn(q, quote ? "\\\"\n" : "\\\n");
		put(p, q, run);
		q += run;
		if (!*q)
			break;
		put(p, *q == '\n' ? "\\n" : *q == '"' ? "\\\"" : "\\\\", 2);
	}
}

void sv_prom_escape(struct sv_prom *p, const char *s)
{
	escape(p, s, true);
}

void sv_prom_family(struct sv_prom *p, const char *name, const char *type,
                    const char *help)
{
	sv_prom_printf(p, "# HELP %s ", name);
	escape(p, help, false);
	sv_prom_printf(p, "\n# TYPE %s %s\n", name, type);
}

void sv_prom_value(double v, char *buf, size_t size)
{
	if (isnan(v))
		snprintf(buf, size, "NaN");
	else if (isinf(v))
		snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
	else if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(long long)v)
		snprintf(buf, size, "%lld", (long long)v);
	else
		snprintf(buf, size, "%.9g", v);
}

static void labels_out(struct sv_prom *p, const char *const *labels, const char *le)
{
	bool first = true;
	for (size_t i = 0; labels && labels[i]; i += 2) {
		if (!labels[i + 1])
			continue;
		sv_prom_printf(p, "%s%s=\"", first ? "{" : ",", labels[i]);
		sv_prom_escape(p, labels[i + 1]);
		put(p, "\"", 1);
		first = false;
	}
	if (le) {
		sv_prom_printf(p, "%sle=\"%s\"", first ? "{" : ",", le);
		first = false;
	}
	if (!first)
		put(p, "}", 1);
}

void sv_prom_sample(struct sv_prom *p, const char *name, const char *const *labels,
                    double value)
{
	char v[32];
	sv_prom_value(value, v, sizeof(v));
	put(p, name, strlen(name));
	labels_out(p, labels, NULL);
	sv_prom_printf(p, " %s\n", v);
}

char *sv_prom_take(struct sv_prom *p, size_t *len)
{
	char *b = p->oom ? NULL : p->buf;
	if (!p->oom && !b)
		b = calloc(1, 1);
	if (p->oom)
		free(p->buf);
	if (len)
		*len = b ? p->len : 0;
	*p = (struct sv_prom){ 0 };
	return b;
}

void sv_hist_init(struct sv_hist *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->nbounds = n < SV_HIST_MAX ? n : SV_HIST_MAX;
}

void sv_hist_observe(struct sv_hist *h, double v)
{
	for (size_t i = 0; i < h->nbounds; i++)
		if (v <= h->bounds[i]) {
			h->counts[i]++;
			break;
		}
	h->count++;
	h->sum += v;
}

void sv_prom_histogram(struct sv_prom *p, const char *name, const char *help,
                       const struct sv_hist *h)
{
	char le[32], v[32];
	uint64_t cum = 0;
	sv_prom_family(p, name, "histogram", help);
	for (size_t i = 0; i < h->nbounds; i++) {
		cum += h->counts[i];
		sv_prom_value(h->bounds[i], le, sizeof(le));
		sv_prom_printf(p, "%s_bucket{le=\"%s\"} %llu\n", name, le, (unsigned long long)cum);
	}
	sv_prom_printf(p, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
	sv_prom_value(h->sum, v, sizeof(v));
	sv_prom_printf(p, "%s_sum %s\n%s_count %llu\n", name, v, name,
	               (unsigned long long)h->count);
}

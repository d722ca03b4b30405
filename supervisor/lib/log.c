/* qsupd's log: see log.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static enum sv_log_level min_level = SV_LOG_INFO;

void sv_log_set_level(enum sv_log_level level)
{
	min_level = level;
}

bool sv_log_enabled(enum sv_log_level level)
{
	return level >= min_level;
}

int sv_log_level_parse(const char *s, enum sv_log_level *out)
{
	static const struct { const char *name; enum sv_log_level level; } names[] = {
		{ "debug", SV_LOG_DEBUG }, { "info", SV_LOG_INFO },
		{ "warning", SV_LOG_WARN }, { "warn", SV_LOG_WARN }, { "error", SV_LOG_ERR },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

void sv_log(enum sv_log_level level, const char *guest, const char *fmt, ...)
{
	static const char *const tags[] = { "debug: ", "", "warning: ", "error: " };
	if (level < min_level)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One write per line, so that lines never interleave. */
	fprintf(stderr, "qsupd: %s%s%s%s\n", tags[level], guest ? guest : "",
	        guest ? ": " : "", msg);
}

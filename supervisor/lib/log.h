/*
 * qsupd's log: one line per message on stderr (journald or the terminal add
 * time stamps), prefixed with the guest's name when there is one:
 *   qsupd: web1: restarting in 4s (crash 3 of 5 in 300s)
 * Full QMP and control traffic is logged at debug level only.
 */
#ifndef SV_LOG_H
#define SV_LOG_H

#include <stdbool.h>

enum sv_log_level { SV_LOG_DEBUG, SV_LOG_INFO, SV_LOG_WARN, SV_LOG_ERR };

/* Messages below level are dropped. The default is SV_LOG_INFO. */
void sv_log_set_level(enum sv_log_level level);

/* True when messages of level would be printed (to skip costly formatting). */
bool sv_log_enabled(enum sv_log_level level);

/* Parse "debug", "info", "warning" (or "warn"), "error". Returns 0 or -EINVAL. */
int sv_log_level_parse(const char *s, enum sv_log_level *out);

/* Log a message; guest may be NULL. */
void sv_log(enum sv_log_level level, const char *guest, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
